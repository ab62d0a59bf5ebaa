/* sbom_parse.h - parsers of the package databases an SBOM is made from:
 * dpkg's status database, apk's installed database, Python *.dist-info
 * METADATA, npm's package-lock.json and node_modules package.json.
 *
 * All input is untrusted bytes read from image layers: the parsers take a
 * buffer (the caller bounds its size), never read past it, keep at most
 * SBOM_MAX_PACKAGES packages per database, and turn every byte outside
 * printable ASCII in a name, version, architecture or license into '?' (the
 * SPDX document is JSON, which must be valid UTF-8). Each parser has a
 * libFuzzer target (tests/fuzz/fuzz_sbom_*.c).
 *
 * Go binaries: the ELF section ".go.buildinfo" (Go >= 1.18 writes the
 * version and module information inline: a 32-byte header starting
 * "\xff Go buildinf:", flags & 2, then two uvarint-length strings: the Go
 * version and the module info framed by 16 bytes at each end, whose lines
 * are "mod PATH VERSION SUM", "dep PATH VERSION SUM", "=> PATH VERSION SUM"
 * (replaces the dep before), tab-separated). Older layouts (pointers into
 * the data segment) and binaries without section headers are skipped.
 */
#ifndef KILN_BUILD_SBOM_PARSE_H
#define KILN_BUILD_SBOM_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include "util/error.h"

#define SBOM_MAX_PACKAGES 100000
/* Longest field value kept (longer ones are cut). */
#define SBOM_MAX_FIELD 1024

typedef enum
{
  SBOM_DEB = 1,
  SBOM_APK,
  SBOM_PYPI,
  SBOM_NPM,
  SBOM_GOLANG,
} sbom_kind;

typedef struct sbom_pkg
{
  sbom_kind kind;
  char *name;
  char *version;
  char *arch;      /* NULL if not recorded */
  char *license;   /* as recorded (NULL if not) */
  char *path;      /* the database file it was read from ("/var/lib/dpkg/status") */
  int layer;       /* index of the layer that introduced it (-1: not known yet) */
} sbom_pkg;

typedef struct sbom_pkgs
{
  sbom_pkg *v;
  size_t n;
} sbom_pkgs;

void sbom_pkgs_clear (sbom_pkgs *p);

/* Each appends the packages found in data[0..len) to out (path is recorded
 * in each). Malformed input is an error (EINVAL) naming what is wrong; the
 * packages parsed before it stay in out. */
/* dpkg status (RFC 822 paragraphs): packages whose files are on disk (state
 * installed, unpacked, half-installed, half-configured, triggers-*; not
 * config-files or not-installed). */
int sbom_parse_dpkg_status (const char *data, size_t len, const char *path, sbom_pkgs *out, kiln_error **err);
/* apk's lib/apk/db/installed: "K:value" lines, blank-line separated. */
int sbom_parse_apk_installed (const char *data, size_t len, const char *path, sbom_pkgs *out, kiln_error **err);
/* A *.dist-info/METADATA (email headers): one package. */
int sbom_parse_dist_info (const char *data, size_t len, const char *path, sbom_pkgs *out, kiln_error **err);
/* package-lock.json (lockfileVersion 1: "dependencies", 2 and 3:
 * "packages"); the root project itself is left out. */
int sbom_parse_package_lock (const char *data, size_t len, const char *path, sbom_pkgs *out, kiln_error **err);
/* node_modules/NAME/package.json: one package. */
int sbom_parse_package_json (const char *data, size_t len, const char *path, sbom_pkgs *out, kiln_error **err);

/* The ".go.buildinfo" section of the ELF file fd (size bytes): 1 with the
 * section's first bytes (at most 1 MiB) in *data, 0 if fd is no
 * little-endian ELF file or has no such section, negative on a read
 * error. */
int sbom_elf_go_buildinfo (int fd, uint64_t size, char **data, size_t *len, kiln_error **err);
/* Its packages: the Go standard library (pkg:golang/stdlib@1.21.0), the
 * main module unless its version is "(devel)", and every dependency
 * (replacements applied). */
int sbom_parse_go_buildinfo (const char *data, size_t len, const char *path, sbom_pkgs *out, kiln_error **err);

/* The package URL (purl spec) of p; distro is the os-release ID for deb and
 * apk ("debian", "alpine"). Caller frees. */
char *sbom_purl (const sbom_pkg *p, const char *distro);

#endif
