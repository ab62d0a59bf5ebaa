/* main.c - kiln command-line entry point: dispatch to commands, print errors. */
#include "build/build_cmd.h"
#include "registry/pull_cmd.h"
#include "registry/push_cmd.h"
#include "store/prune_cmd.h"
#include "sandbox/run_cmd.h"
#include "util/alloc.h"
#include "util/cli.h"
#include "util/error.h"

#include <archive.h>
#include <curl/curl.h>
#include <errno.h>
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

typedef int (*command_fn) (int argc, char **argv, kiln_error **err);

static int cmd_version (int argc, char **argv, kiln_error **err);
static int cmd_help (int argc, char **argv, kiln_error **err);

static const struct command
{
  const char *name;
  command_fn fn;
  const char *summary;
} commands[] = {
  { "build", build_cmd_main, "build an image from a Dockerfile" },
  { "pull", pull_cmd_main, "pull an image from a registry into an OCI layout" },
  { "push", push_cmd_main, "push an image from an OCI layout to registries" },
  { "prune", prune_cmd_main, "remove unreferenced layers and blobs from the store" },
  { "run", run_cmd_main, "run a command in an image (or a directory) inside the step sandbox" },
  { "version", cmd_version, "print version information" },
  { "help", cmd_help, "show help for kiln or a command" },
};

static void
usage (FILE *out)
{
  fprintf (out, "kiln - build OCI images from Dockerfiles, without a daemon and without root\n\n"
                "Usage: kiln COMMAND [FLAGS] [ARGS]\n\nCommands:\n");
  for (size_t i = 0; i < ARRAY_SIZE (commands); i++)
    fprintf (out, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf (out, "\nRun 'kiln COMMAND --help' for a command's flags.\n");
}

static const struct command *
find_command (const char *name)
{
  for (size_t i = 0; i < ARRAY_SIZE (commands); i++)
    if (strcmp (commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static int
cmd_version (int argc, char **argv, kiln_error **err)
{
  if (argc == 2 && (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0))
    {
      printf ("Usage: kiln version\n\nPrint kiln's version, git commit and the versions of the linked libraries.\n");
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
  return KILN_EXIT_OK;
}

static int
cmd_help (int argc, char **argv, kiln_error **err)
{
  if (argc < 2)
    {
      usage (stdout);
      return KILN_EXIT_OK;
    }
  const struct command *c = find_command (argv[1]);
  if (c == NULL)
    {
      kiln_error_make (err, 0, "kiln help: unknown command '%s'", argv[1]);
      return KILN_EXIT_USAGE;
    }
  char *hargv[] = { (char *) c->name, (char *) "--help", NULL };
  return c->fn (2, hargv, err);
}

int
main (int argc, char **argv)
{
  if (argc < 2)
    {
      usage (stderr);
      return KILN_EXIT_USAGE;
    }
  const char *name = argv[1];
  if (strcmp (name, "--help") == 0 || strcmp (name, "-h") == 0)
    name = "help";
  else if (strcmp (name, "--version") == 0)
    name = "version";
  const struct command *c = find_command (name);
  if (c == NULL)
    {
      fprintf (stderr, "kiln: unknown command '%s'\n\n", argv[1]);
      usage (stderr);
      return KILN_EXIT_USAGE;
    }
  kiln_error *err = NULL;
  int rc = c->fn (argc - 1, argv + 1, &err);
  if (rc != KILN_EXIT_OK || err)
    {
      autofree char *msg = kiln_error_string (err);
      fprintf (stderr, "kiln: error: %s\n", msg);
      kiln_error_free (err);
      if (rc == KILN_EXIT_OK)
        rc = KILN_EXIT_FAILURE;
    }
  return rc;
}
