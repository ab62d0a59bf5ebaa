/* build_cmd.c - `kiln build`. */
#include "build/build_cmd.h"
#include "util/alloc.h"
#include "util/cli.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct build_cmd_opts
{
  cli_common common;
} build_cmd_opts;

static const cli_option build_options[] = {
  /* Flags are added here as the features behind them are implemented. */
  { NULL, 0, CLI_BOOL, NULL, NULL, 0 },
};
/* The sentinel above keeps the array non-empty; it is not part of the table. */
#define N_BUILD_OPTIONS (ARRAY_SIZE (build_options) - 1)

static void
build_usage (FILE *out, const cli_option *opts, size_t n)
{
  fprintf (out, "Usage: kiln build [FLAGS] [CONTEXT]\n\n"
                "Build an image from a Dockerfile.\n\nFlags:\n");
  cli_print_options (out, opts, n);
}

static int
build_handle (void *ctx, int id, const char *value, kiln_error **err)
{
  build_cmd_opts *o = ctx;
  int r = cli_common_handle (&o->common, id, value, err);
  if (r < 0)
    return r;
  if (r == 0)
    return kiln_error_make (err, 0, "internal: unhandled build option id %d", id);
  return 0;
}

int
build_cmd_main (int argc, char **argv, kiln_error **err)
{
  build_cmd_opts o;
  cli_common_init (&o.common);
  size_t n = N_BUILD_OPTIONS + cli_common_options_count;
  autofree cli_option *opts = cli_options_concat (build_options, N_BUILD_OPTIONS, cli_common_options,
                                                  cli_common_options_count);
  autostrv char **pos = NULL;
  bool help = false;
  int ret = cli_parse (argc, argv, opts, n, build_handle, &o, &pos, &help, err);
  if (ret < 0)
    {
      cli_common_free (&o.common);
      kiln_error_wrap (err, "kiln build");
      return KILN_EXIT_USAGE;
    }
  if (help)
    {
      build_usage (stdout, opts, n);
      cli_common_free (&o.common);
      return KILN_EXIT_OK;
    }
  cli_common_apply (&o.common);
  cli_common_free (&o.common);
  kiln_error_make (err, 0, "kiln build: the build engine is not implemented yet");
  return KILN_EXIT_FAILURE;
}
