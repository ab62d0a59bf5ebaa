/* version.c - `kiln version`: kiln's version and git commit (defined by the
 * Makefile for this file), the versions of the linked libraries and the
 * default seccomp profile RUN steps get. */
#include "cmd/cmd.h"
#include "sandbox/seccomp_profile.h"
#include "util/alloc.h"
#include "util/cli.h"

#include <archive.h>
#include <curl/curl.h>
#include <fuse_lowlevel.h>
#include <openssl/crypto.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_version.h>
#include <zlib.h>
#include <zstd.h>

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif
#ifndef KILN_GIT_COMMIT
#define KILN_GIT_COMMIT "unknown"
#endif
#ifndef KILN_LIBISAL_VERSION
#define KILN_LIBISAL_VERSION "unknown"
#endif
#ifndef KILN_LIBCAP_VERSION
#define KILN_LIBCAP_VERSION "unknown"
#endif

void
cmd_version_strings (const char **version, const char **commit)
{
  *version = KILN_VERSION;
  *commit = KILN_GIT_COMMIT;
}

int
cmd_version_main (int argc, char **argv, kiln_error **err)
{
  if (argc == 2 && (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0))
    {
      printf ("Usage: kiln version\n\nPrint kiln's version, git commit, the versions of the linked libraries and "
              "the default seccomp profile (the file found, as kiln build and kiln run look for it, or the copy "
              "built into kiln).\n");
      return KILN_EXIT_OK;
    }
  if (argc > 1)
    {
      kiln_error_make (err, 0, "kiln version: unexpected argument '%s'", argv[1]);
      return KILN_EXIT_USAGE;
    }
  const struct scmp_version *sv = seccomp_version ();
  int yv = yajl_version ();
  printf ("kiln %s\n", KILN_VERSION);
  printf ("commit: %s\n", KILN_GIT_COMMIT);
  printf ("libseccomp: %u.%u.%u\n", sv->major, sv->minor, sv->micro);
  printf ("libcap: %s\n", KILN_LIBCAP_VERSION);
  printf ("isa-l: %s (build time)\n", KILN_LIBISAL_VERSION);
  printf ("libarchive: %s\n", archive_version_details ());
  printf ("libcurl: %s\n", curl_version ());
  printf ("yajl: %d.%d.%d\n", yv / 10000, (yv / 100) % 100, yv % 100);
  printf ("libfuse: %s\n", fuse_pkgversion ());
  printf ("openssl: %s\n", OpenSSL_version (OPENSSL_VERSION));
  printf ("zlib: %s\n", zlibVersion ());
  printf ("zstd: %s\n", ZSTD_versionString ());
  /* The same search seccomp_profile_load_filter makes without --seccomp-policy. */
  autofree char *policy = NULL;
  autoerror kiln_error *perr = NULL;
  if (seccomp_profile_default_path (&policy, &perr) == 0)
    printf ("seccomp profile: %s\n", policy);
  else
    printf ("seccomp profile: built-in (policies/default.json of this build; none found on disk)\n");
  return KILN_EXIT_OK;
}
