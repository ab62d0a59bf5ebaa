/* build_cmd.c - `kiln build`. */
#include "build/build_cmd.h"
#include "build/dockerfile.h"
#include "build/plan.h"
#include "build/plan_json.h"
#include "util/alloc.h"
#include "util/cli.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>

#include <string.h>

typedef struct build_cmd_opts
{
  cli_common common;
  bool dry_run;
  char *file;
  char *context;
  char **build_args;
  char *target;
  char *platform;
  bool skip_unused_stages;
} build_cmd_opts;

enum
{
  OPT_DRY_RUN = 1,
  OPT_FILE,
  OPT_BUILD_ARG,
  OPT_TARGET,
  OPT_PLATFORM,
  OPT_SKIP_UNUSED,
  OPT_CONTEXT,
};

static const cli_option build_options[] = {
  { "dry-run", 0, CLI_BOOL, NULL,
    "parse the Dockerfile, resolve arguments and stages, print the build plan as JSON and exit "
    "(reads no context, contacts no registry)", OPT_DRY_RUN },
  { "file", 'f', CLI_VALUE, "PATH", "Dockerfile to use (default: CONTEXT/Dockerfile)", OPT_FILE },
  { "dockerfile", 'd', CLI_VALUE, "PATH", NULL, OPT_FILE },
  { "build-arg", 0, CLI_VALUE, "KEY[=VALUE]", "set a build-time variable (repeatable); without =VALUE the value "
    "comes from the environment", OPT_BUILD_ARG },
  { "target", 0, CLI_VALUE, "STAGE", "build this stage (default: the last one)", OPT_TARGET },
  { "platform", 0, CLI_VALUE, "OS/ARCH[/VARIANT]", "target platform (default: this machine)", OPT_PLATFORM },
  { "skip-unused-stages", 0, CLI_BOOL, NULL, "build only the stages the target needs (default true; "
    "false builds every stage up to the target)", OPT_SKIP_UNUSED },
  { "context", 'c', CLI_VALUE, "DIR", "build context directory (kaniko; plain path or dir://PATH)", OPT_CONTEXT },
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
  if (r == 1)
    return 0;
  switch (id)
    {
    case OPT_DRY_RUN:
      return cli_parse_bool ("dry-run", value, &o->dry_run, err);
    case OPT_SKIP_UNUSED:
      return cli_parse_bool ("skip-unused-stages", value, &o->skip_unused_stages, err);
    case OPT_FILE:
      free (o->file);
      o->file = xstrdup (value);
      return 0;
    case OPT_BUILD_ARG:
      strv_push (&o->build_args, value);
      return 0;
    case OPT_TARGET:
      free (o->target);
      o->target = xstrdup (value);
      return 0;
    case OPT_PLATFORM:
      free (o->platform);
      o->platform = xstrdup (value);
      return 0;
    case OPT_CONTEXT:
      if (strncmp (value, "dir://", 6) == 0)
        value += 6;
      else if (strstr (value, "://"))
        return kiln_error_make (err, 0, "--context '%s': only local directories are supported", value);
      free (o->context);
      o->context = xstrdup (value);
      return 0;
    default:
      return kiln_error_make (err, 0, "internal: unhandled build option id %d", id);
    }
}

static int
build_run (build_cmd_opts *o, kiln_error **err)
{
  autofree char *df_path = o->file ? xstrdup (o->file) : xasprintf ("%s/Dockerfile", o->context ? o->context : ".");
  dockerfile *df = NULL;
  if (dockerfile_parse_file (df_path, &df, err) < 0)
    {
      kiln_error_wrap (err, "kiln build");
      return KILN_EXIT_FAILURE;
    }
  plan_options po = {
    .build_args = o->build_args,
    .target = o->target,
    .platform = o->platform,
    .skip_unused_stages = o->skip_unused_stages,
  };
  plan *p = NULL;
  if (plan_build (df, &po, &p, err) < 0)
    {
      kiln_error_wrap (err, "kiln build");
      return KILN_EXIT_FAILURE;
    }
  for (size_t i = 0; p->warnings && p->warnings[i]; i++)
    log_warn ("%s", p->warnings[i]);
  if (!o->dry_run)
    {
      plan_free (p);
      kiln_error_make (err, 0, "kiln build: the build engine is not implemented yet (use --dry-run to see the plan)");
      return KILN_EXIT_FAILURE;
    }
  autofree char *json = NULL;
  int r = plan_json_render (p, &json, err);
  plan_free (p);
  if (r < 0)
    return KILN_EXIT_FAILURE;
  fputs (json, stdout);
  if (fflush (stdout) != 0)
    {
      kiln_error_make (err, 0, "writing the plan to stdout failed");
      return KILN_EXIT_FAILURE;
    }
  return KILN_EXIT_OK;
}

int
build_cmd_main (int argc, char **argv, kiln_error **err)
{
  build_cmd_opts o = { .skip_unused_stages = true };
  cli_common_init (&o.common);
  size_t n = N_BUILD_OPTIONS + cli_common_options_count;
  autofree cli_option *opts = cli_options_concat (build_options, N_BUILD_OPTIONS, cli_common_options,
                                                  cli_common_options_count);
  autostrv char **pos = NULL;
  bool help = false;
  int ret = cli_parse (argc, argv, opts, n, build_handle, &o, &pos, &help, err);
  int rc = KILN_EXIT_FAILURE;
  if (ret < 0)
    {
      kiln_error_wrap (err, "kiln build");
      rc = KILN_EXIT_USAGE;
      goto out;
    }
  if (help)
    {
      build_usage (stdout, opts, n);
      rc = KILN_EXIT_OK;
      goto out;
    }
  cli_common_apply (&o.common);
  if (pos && pos[0] && pos[1])
    {
      kiln_error_make (err, 0, "kiln build: expected at most one CONTEXT argument, got '%s' and '%s'", pos[0], pos[1]);
      rc = KILN_EXIT_USAGE;
      goto out;
    }
  if (pos && pos[0])
    {
      if (o.context)
        {
          kiln_error_make (err, 0, "kiln build: CONTEXT given both as argument and with --context");
          rc = KILN_EXIT_USAGE;
          goto out;
        }
      o.context = xstrdup (pos[0]);
    }
  rc = build_run (&o, err);
out:
  cli_common_free (&o.common);
  free (o.file);
  free (o.context);
  strv_free (o.build_args);
  free (o.target);
  free (o.platform);
  return rc;
}
