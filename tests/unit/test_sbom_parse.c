/* test_sbom_parse.c - the SBOM's package database parsers and purls. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "build/sbom_parse.h"
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char DPKG[] =
  "Package: adduser\n"
  "Status: install ok installed\n"
  "Priority: important\n"
  "Architecture: all\n"
  "Version: 3.134\n"
  "Description: add and remove users\n"
  " This package includes: adduser\n"
  " .\n"
  " more: text with a colon\n"
  "\n"
  "Package: gone\n"
  "Status: deinstall ok config-files\n"
  "Version: 1.0\n"
  "\n"
  "Package: half\n"
  "Status: install reinstreq half-installed\n"
  "Version: 2\n"
  "\n"
  "Package: libc6\n"
  "Status: install ok installed\n"
  "Architecture: amd64\n"
  "Version: 2.36-9+deb12u4\n";

static void
test_dpkg (void **state)
{
  (void) state;
  sbom_pkgs p = { 0 };
  kiln_error *err = NULL;
  assert_int_equal (sbom_parse_dpkg_status (DPKG, strlen (DPKG), "/var/lib/dpkg/status", &p, &err), 0);
  assert_int_equal (p.n, 3);
  assert_string_equal (p.v[0].name, "adduser");
  assert_string_equal (p.v[0].version, "3.134");
  assert_string_equal (p.v[0].arch, "all");
  assert_string_equal (p.v[1].name, "half");
  assert_string_equal (p.v[2].name, "libc6");
  autofree char *purl = sbom_purl (&p.v[2], "debian");
  assert_string_equal (purl, "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64");
  sbom_pkgs_clear (&p);
  /* a line without ':' is an error; what came before stays */
  const char bad[] = "Package: a\nStatus: install ok installed\nVersion: 1\n\nnonsense\n";
  assert_true (sbom_parse_dpkg_status (bad, strlen (bad), "s", &p, &err) < 0);
  assert_non_null (err);
  kiln_error_clear (&err);
  assert_int_equal (p.n, 1);
  sbom_pkgs_clear (&p);
}

static void
test_dpkg_epoch_and_bytes (void **state)
{
  (void) state;
  const char s[] = "Package: x\nStatus: install ok installed\nVersion: 1:2.0~rc1\nArchitecture: amd64\n"
                   "\n\nPackage: y\xff\nStatus: install ok installed\nVersion: 1\n";
  sbom_pkgs p = { 0 };
  kiln_error *err = NULL;
  assert_int_equal (sbom_parse_dpkg_status (s, sizeof s - 1, "s", &p, &err), 0);
  assert_int_equal (p.n, 2);
  autofree char *purl = sbom_purl (&p.v[0], NULL);
  assert_string_equal (purl, "pkg:deb/debian/x@1%3A2.0~rc1?arch=amd64");
  assert_string_equal (p.v[1].name, "y?");
  sbom_pkgs_clear (&p);
}

static void
test_apk (void **state)
{
  (void) state;
  const char s[] = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\nT:the musl c library\n\n"
                   "P:busybox\nV:1.36.1-r5\nA:x86_64\nL:GPL-2.0-only\n";
  sbom_pkgs p = { 0 };
  kiln_error *err = NULL;
  assert_int_equal (sbom_parse_apk_installed (s, strlen (s), "/lib/apk/db/installed", &p, &err), 0);
  assert_int_equal (p.n, 2);
  assert_string_equal (p.v[0].license, "MIT");
  autofree char *purl = sbom_purl (&p.v[1], "alpine");
  assert_string_equal (purl, "pkg:apk/alpine/busybox@1.36.1-r5?arch=x86_64");
  sbom_pkgs_clear (&p);
}

static void
test_dist_info (void **state)
{
  (void) state;
  const char s[] = "Metadata-Version: 2.1\nName: Typing_Extensions\nVersion: 4.7.1\nLicense: PSF\n"
                   "\nName: not-a-header\n";
  sbom_pkgs p = { 0 };
  kiln_error *err = NULL;
  assert_int_equal (sbom_parse_dist_info (s, strlen (s), "m", &p, &err), 0);
  assert_int_equal (p.n, 1);
  assert_string_equal (p.v[0].license, "PSF");
  autofree char *purl = sbom_purl (&p.v[0], NULL);
  assert_string_equal (purl, "pkg:pypi/typing-extensions@4.7.1");
  sbom_pkgs_clear (&p);
}

static void
test_package_lock (void **state)
{
  (void) state;
  const char v3[] = "{\"lockfileVersion\":3,\"packages\":{\"\":{\"name\":\"app\",\"version\":\"1.0.0\"},"
                    "\"node_modules/@scope/a\":{\"version\":\"2.0.0\",\"license\":\"MIT\"},"
                    "\"node_modules/b/node_modules/c\":{\"version\":\"0.1.0\"},"
                    "\"node_modules/linked\":{\"link\":true,\"resolved\":\"x\"},"
                    "\"packages/ws\":{\"version\":\"9\"}}}";
  sbom_pkgs p = { 0 };
  kiln_error *err = NULL;
  assert_int_equal (sbom_parse_package_lock (v3, strlen (v3), "l", &p, &err), 0);
  assert_int_equal (p.n, 2);
  autofree char *purl = sbom_purl (&p.v[0], NULL);
  assert_string_equal (purl, "pkg:npm/%40scope/a@2.0.0");
  assert_string_equal (p.v[1].name, "c");
  sbom_pkgs_clear (&p);
  const char v1[] = "{\"lockfileVersion\":1,\"dependencies\":{\"a\":{\"version\":\"1.0.0\","
                    "\"dependencies\":{\"b\":{\"version\":\"2.0.0\"}}}}}";
  assert_int_equal (sbom_parse_package_lock (v1, strlen (v1), "l", &p, &err), 0);
  assert_int_equal (p.n, 2);
  assert_string_equal (p.v[1].name, "b");
  sbom_pkgs_clear (&p);
  assert_true (sbom_parse_package_lock ("[1]", 3, "l", &p, &err) < 0);
  kiln_error_clear (&err);
  assert_true (sbom_parse_package_lock ("{\"a\":1,\"a\":2}", 13, "l", &p, &err) < 0);
  kiln_error_clear (&err);
  const char pj[] = "{\"name\":\"left-pad\",\"version\":\"1.3.0\",\"license\":{\"type\":\"WTFPL\"}}";
  assert_int_equal (sbom_parse_package_json (pj, strlen (pj), "p", &p, &err), 0);
  assert_int_equal (p.n, 1);
  assert_string_equal (p.v[0].license, "WTFPL");
  sbom_pkgs_clear (&p);
}

/* A .go.buildinfo section as Go >= 1.18 writes it: header, then the
 * version and the framed module info as uvarint-length strings. */
static size_t
go_section (char *buf, const char *version, const char *modinfo)
{
  memset (buf, 0, 32);
  memcpy (buf, "\xff Go buildinf:", 14);
  buf[14] = 8;
  buf[15] = 2;
  size_t pos = 32, vl = strlen (version), ml = strlen (modinfo) + 32;
  buf[pos++] = (char) vl;
  memcpy (buf + pos, version, vl);
  pos += vl;
  buf[pos++] = (char) (0x80 | (ml & 0x7f));
  buf[pos++] = (char) (ml >> 7);
  memset (buf + pos, 'S', 16);
  memcpy (buf + pos + 16, modinfo, ml - 32);
  memset (buf + pos + ml - 16, 'E', 16);
  buf[pos + ml - 17] = '\n';
  return pos + ml;
}

static void
test_go_buildinfo (void **state)
{
  (void) state;
  char sec[1024];
  const char mi[] = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\n"
                    "dep\tgithub.com/a/b\tv1.2.3\th1:x=\n"
                    "dep\tgolang.org/x/sys\tv0.1.0\th1:y=\n=>\tgolang.org/x/sys\tv0.2.0\th1:z=\n"
                    "dep\texample.com/local\tv0.0.0\n=>\t../local\t\t\n"
                    "build\tGOOS=linux";
  size_t n = go_section (sec, "go1.21.5 X:boringcrypto", mi);
  sbom_pkgs p = { 0 };
  kiln_error *err = NULL;
  assert_int_equal (sbom_parse_go_buildinfo (sec, n, "/bin/app", &p, &err), 0);
  assert_int_equal (p.n, 3);
  autofree char *p0 = sbom_purl (&p.v[0], NULL);
  assert_string_equal (p0, "pkg:golang/stdlib@1.21.5");
  autofree char *p1 = sbom_purl (&p.v[1], NULL);
  assert_string_equal (p1, "pkg:golang/github.com/a/b@v1.2.3");
  assert_string_equal (p.v[2].name, "golang.org/x/sys");
  assert_string_equal (p.v[2].version, "v0.2.0");
  sbom_pkgs_clear (&p);
  /* strings running past the section */
  sec[33] = 100;
  assert_true (sbom_parse_go_buildinfo (sec, 40, "/bin/app", &p, &err) < 0);
  kiln_error_clear (&err);
  assert_int_equal (p.n, 0);
}

/* A minimal little-endian ELF64 file: header, the section, the section
 * name table, three section headers (null, .go.buildinfo, .shstrtab). */
static void
test_elf_section (void **state)
{
  (void) state;
  char file[4096] = { 0 };
  unsigned char *h = (unsigned char *) file;
  memcpy (h, "\x7f" "ELF", 4);
  h[4] = 2, h[5] = 1, h[6] = 1;
  char sec[512];
  size_t slen = go_section (sec, "go1.22.0", "mod\tm\tv1.0.0\t\n");
  memcpy (file + 64, sec, slen);
  const char names[] = "\0.go.buildinfo\0.shstrtab\0";
  size_t str_off = 64 + slen;
  memcpy (file + str_off, names, sizeof names);
  size_t shoff = (str_off + sizeof names + 7) & ~(size_t) 7;
  uint64_t v;
#define PUT(off, val, n) (v = (uint64_t) (val), memcpy (file + (off), &v, (n)))
  PUT (40, shoff, 8);
  PUT (58, 64, 2);
  PUT (60, 3, 2);
  PUT (62, 2, 2);
  PUT (shoff + 64 + 0, 1, 4);
  PUT (shoff + 64 + 24, 64, 8);
  PUT (shoff + 64 + 32, slen, 8);
  PUT (shoff + 128 + 0, 15, 4);
  PUT (shoff + 128 + 24, str_off, 8);
  PUT (shoff + 128 + 32, sizeof names, 8);
#undef PUT
  size_t flen = shoff + 3 * 64;
  char tmpl[] = "/tmp/kiln-elf-XXXXXX";
  int fd = mkstemp (tmpl);
  assert_true (fd >= 0);
  unlink (tmpl);
  assert_int_equal (write (fd, file, flen), (ssize_t) flen);
  char *data = NULL;
  size_t len = 0;
  kiln_error *err = NULL;
  assert_int_equal (sbom_elf_go_buildinfo (fd, flen, &data, &len, &err), 1);
  assert_int_equal (len, slen);
  sbom_pkgs p = { 0 };
  assert_int_equal (sbom_parse_go_buildinfo (data, len, "/m", &p, &err), 0);
  assert_int_equal (p.n, 2);
  assert_string_equal (p.v[0].version, "1.22.0");
  assert_string_equal (p.v[1].name, "m");
  sbom_pkgs_clear (&p);
  free (data);
  /* a section header table beyond the file: no section, no error */
  assert_int_equal (sbom_elf_go_buildinfo (fd, flen - 64, &data, &len, &err), 0);
  /* not ELF */
  assert_int_equal (pwrite (fd, "\x7f" "ELG", 4, 0), 4);
  assert_int_equal (sbom_elf_go_buildinfo (fd, flen, &data, &len, &err), 0);
  close (fd);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_dpkg),
    cmocka_unit_test (test_dpkg_epoch_and_bytes),
    cmocka_unit_test (test_apk),
    cmocka_unit_test (test_dist_info),
    cmocka_unit_test (test_package_lock),
    cmocka_unit_test (test_go_buildinfo),
    cmocka_unit_test (test_elf_section),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
