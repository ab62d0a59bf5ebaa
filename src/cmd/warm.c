/* warm.c - `kiln warm IMAGE...`: kaniko's warmer as a command. Pulls base
 * images into the store (--root) ahead of builds, e.g. when a CI image or
 * a cache volume is prepared, so `kiln build --pull=missing` (or never)
 * finds them without a registry. Every image is tried (for every
 * --platform); the exit status says whether all of them made it, and the
 * error names those that did not. */
#include "cmd/cmd.h"
#include "cmd/cmd_common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "registry/blobprogress.h"
#include "registry/platform.h"
#include "registry/reference.h"
#include "store/fetch.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/sigcancel.h"
#include "util/strbuf.h"

enum
{
  OPT_IMAGE = 1,
  OPT_PLATFORM,
  OPT_MIRROR,
};

static const cli_option warm_options[] = {
  { "image", 'i', CLI_VALUE, "IMAGE", "an image to pull (kaniko's warmer flag; repeatable, as the arguments)",
    OPT_IMAGE },
  { "platform", 0, CLI_VALUE, "OS/ARCH[/VARIANT]", "platform to select from an index (repeatable: each image for "
    "each; default: the host)", OPT_PLATFORM },
  { "registry-mirror", 0, CLI_VALUE, "HOST", "try this mirror first for docker.io images, then the origin (repeatable)",
    OPT_MIRROR },
  CMD_TRANSPORT_OPTIONS
};
#define N_WARM_OPTIONS ARRAY_SIZE (warm_options)

typedef struct warm_opts
{
  cli_common common;
  char **images;
  char **platforms;
  char **mirrors;
  registry_options reg;
} warm_opts;

static const cmd_flags warm_flags = { offsetof (warm_opts, common), offsetof (warm_opts, reg), NULL, 0 };

static int
warm_handle (void *ctx, int id, const char *value, kiln_error **err)
{
  warm_opts *o = ctx;
  int r = cmd_flags_handle (&warm_flags, o, id, value, err);
  if (r != 0)
    return r < 0 ? r : 0;
  switch (id)
    {
    case OPT_IMAGE:
      strv_push (&o->images, value);
      return 0;
    case OPT_PLATFORM:
      {
        autofree char *os = NULL, *arch = NULL, *variant = NULL;
        if (platform_parse (value, &os, &arch, &variant, err) < 0)
          return kiln_error_wrap (err, "--platform");
        strv_push (&o->platforms, value);
        return 0;
      }
    case OPT_MIRROR:
      return cmd_mirror_handle (&o->reg, &o->mirrors, value, err);
    default:
      return kiln_error_make (err, 0, "internal: unhandled warm option id %d", id);
    }
}

static void
warm_opts_free (warm_opts *o)
{
  cmd_flags_free (&warm_flags, o);
  strv_free (o->images);
  strv_free (o->platforms);
  strv_free (o->mirrors);
}

/* One image for one platform (NULL: the host's) into s; prints
 * "REF PLATFORM DIGEST" on stdout. */
static int
warm_one (warm_opts *o, store *s, const char *image, const char *platform, kiln_error **err)
{
  autoref registry_ref *ref = NULL;
  if (registry_ref_parse (image, &ref, err) < 0)
    return -1;
  autofree char *os = NULL, *arch = NULL, *variant = NULL;
  if (platform && platform_parse (platform, &os, &arch, &variant, err) < 0)
    return -1;
  autofree char *full = registry_ref_string (ref);
  store_fetch_result res = { 0 };
  log_info ("warming %s%s%s", full, platform ? " for " : "", platform ? platform : "");
  if (store_fetch_image_mirrored (s, &o->reg, o->mirrors, ref, os, arch, variant, false, &res, err) < 0)
    return -1;
  log_info ("%s: %zu layers, %.1f MB downloaded, platform %s/%s%s%s", full, res.n_layers,
            (double) res.bytes_downloaded / 1e6, res.os, res.arch, res.variant ? "/" : "",
            res.variant ? res.variant : "");
  printf ("%s %s/%s%s%s %s\n", full, res.os, res.arch, res.variant ? "/" : "", res.variant ? res.variant : "",
          res.manifest_digest);
  fflush (stdout);
  store_fetch_result_clear (&res);
  return 0;
}

static int
run_warm (warm_opts *o, kiln_error **err)
{
  autostore store *s = NULL;
  if (store_open (o->common.root, 0, &s, err) < 0)
    return -1;
  char *host[] = { NULL, NULL };
  char **platforms = o->platforms ? o->platforms : host;
  size_t n = strv_len (o->images), n_plat = o->platforms ? strv_len (o->platforms) : 1, failed = 0;
  autostrbuf strbuf why = STRBUF_INIT;
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < n_plat; k++)
      {
        autoerror kiln_error *e = NULL;
        if (warm_one (o, s, o->images[i], platforms[k], &e) == 0)
          continue;
        if (o->reg.cancel && *o->reg.cancel)
          {
            *err = steal_pointer (&e);
            return kiln_error_wrap (err, "warming '%s'", o->images[i]);
          }
        autofree char *msg = kiln_error_string (e);
        log_error ("warming '%s'%s%s failed: %s", o->images[i], platforms[k] ? " for " : "",
                   platforms[k] ? platforms[k] : "", msg);
        strbuf_addf (&why, "%s'%s'%s%s", failed ? ", " : "", o->images[i], platforms[k] ? " for " : "",
                     platforms[k] ? platforms[k] : "");
        failed++;
      }
  if (failed)
    return kiln_error_make (err, 0, "kiln warm: %zu of %zu image%s failed: %s", failed, n * n_plat,
                            n * n_plat == 1 ? "" : "s", why.buf);
  log_info ("warmed %zu image%s into store '%s'", n * n_plat, n * n_plat == 1 ? "" : "s", s->root);
  return 0;
}

static const char warm_usage_head[] =
  "Usage: kiln warm [FLAGS] IMAGE...\n\n"
  "Pull images into kiln's store (--root / KILN_ROOT) ahead of builds, as kaniko's\n"
  "warmer fills its cache directory: manifests, configs and compressed blobs kept,\n"
  "layers extracted once. A later `kiln build --pull=missing` (or --pull=never) uses\n"
  "them without contacting the registry. Every image is tried; each one pulled is\n"
  "printed as \"REFERENCE PLATFORM DIGEST\" on stdout. Exit status 1 if any failed\n"
  "(the error names them), 2 for a usage error.\n\nFlags:\n";

int
cmd_warm_main (int argc, char **argv, kiln_error **err)
{
  warm_opts o;
  memset (&o, 0, sizeof o);
  o.reg.retries = -1;
  cli_common_init (&o.common);
  autostrv char **pos = NULL;
  int r = cmd_parse_args ("warm", argc, argv, warm_options, N_WARM_OPTIONS, &o.common, warm_handle, &o,
                          warm_usage_head, &pos, err);
  if (r <= 0)
    {
      warm_opts_free (&o);
      return r < 0 ? KILN_EXIT_USAGE : KILN_EXIT_OK;
    }
  for (char **p = pos; p && *p; p++)
    strv_push (&o.images, *p);
  if (strv_len (o.images) == 0)
    {
      warm_opts_free (&o);
      kiln_error_make (err, 0, "kiln warm: expected at least one IMAGE (arguments or --image)");
      return KILN_EXIT_USAGE;
    }
  o.reg.cancel = sigcancel_install (-1);
  if (o.common.log_format != LOG_FORMAT_JSON && log_enabled (LOG_LEVEL_INFO))
    o.reg.progress = blobprogress_new (stderr);
  r = run_warm (&o, err);
  blobprogress_free (o.reg.progress);
  warm_opts_free (&o);
  return r < 0 ? sigcancel_exit_code (KILN_EXIT_FAILURE) : KILN_EXIT_OK;
}
