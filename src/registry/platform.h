/* platform.h - OCI platforms: os, architecture and optional variant.
 *
 * One vocabulary for every place that picks an image from an index, names a
 * stored image or reports what an image runs on: the names are Go's GOOS /
 * GOARCH (+ variant for arm), as in OCI image indexes, and a platform a
 * caller leaves out means the host's. Why registry/ and not util/: these
 * are the distribution format's words (registry/ is the lowest folder that
 * speaks it); the header includes nothing of the project but util/error.h,
 * so store/, build/ and the front-ends use it without depending on any
 * module (registry/manifest.h re-exports it).
 */
#ifndef KILN_REGISTRY_PLATFORM_H
#define KILN_REGISTRY_PLATFORM_H

#include <stdbool.h>
#include "util/error.h"

/* The platform kiln was compiled for, in OCI terms: os "linux"; arch
 * "amd64", "arm64", "arm" (variant "v7" or "v6"), "386", "ppc64le", "s390x",
 * "riscv64" or "unknown". *variant is NULL except on arm. Static strings. */
void platform_host (const char **os, const char **arch, const char **variant);

/* Fill in what the caller left out (NULL) with the host's: os, arch, and the
 * variant only when arch was left out too (a variant belongs to its arch:
 * "linux/arm" on an arm64 host must not become arm/v8). Pointers that were
 * set are kept. */
void platform_default (const char **os, const char **arch, const char **variant);

/* Whether variants a and b (either may be NULL) name the same platform for
 * arch: arm64's only variant is v8, which indexes often leave out. */
bool platform_variant_equal (const char *arch, const char *a, const char *b);

/* Parse "os/arch[/variant]" (Docker's --platform): two or three non-empty
 * parts of [a-z0-9_.-]. The caller frees the strings; *variant is NULL
 * without a third part. */
int platform_parse (const char *s, char **os, char **arch, char **variant, kiln_error **err);

#endif
