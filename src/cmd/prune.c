/* prune.c - `kiln prune`. */
#include "cmd/cmd.h"
#include "cmd/cmd_common.h"
#include "sandbox/sandbox.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/units.h"

#include <errno.h>
#include <stdio.h>

typedef struct prune_opts
{
  cli_common common;
  bool all;
  bool dry_run;
} prune_opts;

enum
{
  OPT_ALL = 1,
  OPT_DRY_RUN,
};

static const cli_option prune_options[] = {
  { "all", 0, CLI_BOOL, NULL, "remove everything, kept images and cache included", OPT_ALL },
  { "dry-run", 0, CLI_BOOL, NULL, "only report what would be removed and the space it frees", OPT_DRY_RUN },
};

static int
prune_handle (void *ctx, int id, const char *value, kiln_error **err)
{
  prune_opts *o = ctx;
  switch (id)
    {
    case OPT_ALL:
      return cli_parse_bool ("--all", value, &o->all, err);
    case OPT_DRY_RUN:
      return cli_parse_bool ("--dry-run", value, &o->dry_run, err);
    default:
      break;
    }
  int r = cli_common_handle (&o->common, id, value, err);
  if (r < 0)
    return r;
  if (r == 0)
    return kiln_error_make (err, 0, "internal: unhandled prune option id %d", id);
  return 0;
}

static const char prune_usage_head[] =
  "Usage: kiln prune [FLAGS]\n\nRemove layers, blobs and temporary files that no kept image or "
  "cache entry references.\n\nFlags:\n";

int
cmd_prune_main (int argc, char **argv, kiln_error **err)
{
  prune_opts o = { 0 };
  cli_common_init (&o.common);
  autostrv char **pos = NULL;
  int ret = cmd_parse_args ("prune", argc, argv, prune_options, ARRAY_SIZE (prune_options), &o.common,
                            prune_handle, &o, prune_usage_head, &pos, err);
  if (ret > 0 && pos && pos[0])
    {
      kiln_error_make (err, 0, "kiln prune: unexpected argument '%s'", pos[0]);
      ret = -1;
    }
  if (ret <= 0)
    {
      cli_common_free (&o.common);
      return ret < 0 ? KILN_EXIT_USAGE : KILN_EXIT_OK;
    }
  autostore store *s = NULL;
  ret = store_open (o.common.root, STORE_OPEN_EXCLUSIVE, &s, err);
  cli_common_free (&o.common);
  if (s)
    s->remove_fallback = sandbox_rm_at_fallback;
  if (ret < 0)
    {
      kiln_error_wrap (err, "kiln prune");
      return KILN_EXIT_FAILURE;
    }
  store_prune_stats st;
  if (store_prune (s, o.all, o.dry_run, &st, err) < 0)
    {
      kiln_error_wrap (err, "kiln prune");
      return KILN_EXIT_FAILURE;
    }
  char buf[UNITS_BUF_SIZE];
  printf ("%s %llu blobs, %llu layers, %llu other entries; %s %s\n", o.dry_run ? "would remove" : "removed",
          (unsigned long long) st.blobs, (unsigned long long) st.layers, (unsigned long long) st.other,
          o.dry_run ? "would free" : "freed", units_format_size (st.bytes, buf));
  return KILN_EXIT_OK;
}
