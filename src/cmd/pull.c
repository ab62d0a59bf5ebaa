/* pull.c - `kiln pull`: registry image into an OCI layout directory or the
 * store. */
#include "cmd/cmd.h"
#include "cmd/cmd_common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/blobprogress.h"
#include "registry/client.h"
#include "registry/digest_file.h"
#include "registry/dockerarchive.h"
#include "registry/ocilayout.h"
#include "registry/pull.h"
#include "registry/reference.h"
#include "store/fetch.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/cli.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/sigcancel.h"

enum
{
  OPT_OCI_LAYOUT = 1,
  OPT_PLATFORM,
  OPT_DIGEST_FILE,
  OPT_MIRROR,
  OPT_TAR_PATH,
  OPT_STORE,
};

static const cli_option pull_options[] = {
  { "oci-layout", 0, CLI_VALUE, "DIR[:TAG]", "write the image to this OCI layout directory", OPT_OCI_LAYOUT },
  { "store", 0, CLI_BOOL, NULL, "pull into kiln's store (--root / KILN_ROOT): blobs kept, layers extracted", OPT_STORE },
  { "platform", 0, CLI_VALUE, "OS/ARCH[/VARIANT]", "platform to select from an index (default: the host)", OPT_PLATFORM },
  { "digest-file", 0, CLI_VALUE, "FILE", "write the pulled manifest digest to FILE", OPT_DIGEST_FILE },
  { "tar-path", 0, CLI_VALUE, "FILE", "also write the image as a `docker load` archive", OPT_TAR_PATH },
  { "registry-mirror", 0, CLI_VALUE, "HOST", "try this mirror first for docker.io images, then the origin (repeatable)",
    OPT_MIRROR },
  CMD_TRANSPORT_OPTIONS
};
#define N_PULL_OPTIONS ARRAY_SIZE (pull_options)

typedef struct pull_opts
{
  cli_common common;
  char *layout;
  char *platform;
  char *digest_file;
  char **mirrors;
  char *tar_path;
  bool store;
  registry_options reg;
} pull_opts;

static const cmd_string_flag pull_strings[] = {
  CMD_STRING_FLAG (OPT_OCI_LAYOUT, pull_opts, layout),
  CMD_STRING_FLAG (OPT_PLATFORM, pull_opts, platform),
  CMD_STRING_FLAG (OPT_DIGEST_FILE, pull_opts, digest_file),
  CMD_STRING_FLAG (OPT_TAR_PATH, pull_opts, tar_path),
};
static const cmd_flags pull_flags = CMD_FLAGS (pull_opts, pull_strings);

static int
pull_handle (void *ctx, int id, const char *value, kiln_error **err)
{
  pull_opts *o = ctx;
  int r = cmd_flags_handle (&pull_flags, o, id, value, err);
  if (r != 0)
    return r < 0 ? r : 0;
  switch (id)
    {
    case OPT_STORE:
      return cli_parse_bool ("--store", value, &o->store, err);
    case OPT_MIRROR:
      return cmd_mirror_handle (&o->reg, &o->mirrors, value, err);
    default:
      return kiln_error_make (err, 0, "internal: unhandled pull option id %d", id);
    }
}

static void
pull_opts_free (pull_opts *o)
{
  cmd_flags_free (&pull_flags, o);
  strv_free (o->mirrors);
}

static int run_pull_into (pull_opts *o, const registry_ref *ref, const char *os, const char *arch,
                          const char *variant, const char *dir, const char *tag, kiln_error **err);

static const char *
fetch_how_name (store_fetch_how how)
{
  switch (how)
    {
    case STORE_FETCH_DOWNLOADED:
      return "downloaded";
    case STORE_FETCH_CACHED:
      return "cached";
    case STORE_FETCH_LOCAL_BLOB:
      return "extracted from stored blob";
    case STORE_FETCH_LAZY:
      return "not fetched";
    }
  return "?";
}

/* --store: registry image into the layer store (mirrors first, like the
 * layout path). */
static int
run_pull_store (pull_opts *o, const registry_ref *ref, const char *os, const char *arch, const char *variant,
                kiln_error **err)
{
  autostore store *s = NULL;
  if (store_open (o->common.root, 0, &s, err) < 0)
    return -1;
  autofree char *full = registry_ref_string (ref);
  store_fetch_result res = { 0 };
  log_info ("pulling %s into store '%s'", full, s->root);
  if (store_fetch_image_mirrored (s, &o->reg, o->mirrors, ref, os, arch, variant, false, &res, err) < 0)
    return -1;
  for (size_t i = 0; i < res.n_layers; i++)
    log_debug ("layer %zu/%zu %s diffID %s (%s)", i + 1, res.n_layers, res.layers[i].digest, res.layers[i].diff_id,
               fetch_how_name (res.layers[i].how));
  log_info ("%s: %zu layers, %.1f MB downloaded, platform %s/%s%s%s, recorded as '%s'", full, res.n_layers,
            (double) res.bytes_downloaded / 1e6, res.os, res.arch, res.variant ? "/" : "",
            res.variant ? res.variant : "", res.ref_name);
  int r = 0;
  if (o->digest_file)
    r = registry_write_digest_file (o->digest_file, res.manifest_digest, err);
  if (r >= 0)
    printf ("%s\n", res.manifest_digest);
  store_fetch_result_clear (&res);
  return r;
}

static int
run_pull (pull_opts *o, const char *refstr, kiln_error **err)
{
  autoref registry_ref *ref = NULL;
  if (registry_ref_parse (refstr, &ref, err) < 0)
    return -1;
  autofree char *os = NULL, *arch = NULL, *variant = NULL;
  if (o->platform && platform_parse (o->platform, &os, &arch, &variant, err) < 0)
    return -1;
  if (o->store)
    return run_pull_store (o, ref, os, arch, variant, err);
  autofree char *dir = NULL, *tag = NULL;
  autofree char *tmpdir = NULL;
  if (o->layout)
    ocilayout_split_arg (o->layout, &dir, &tag);
  else
    {
      /* Only --tar-path: stage the blobs in a private temporary layout. */
      const char *t = getenv ("TMPDIR");
      tmpdir = xasprintf ("%s/kiln-pull-XXXXXX", t && *t ? t : "/tmp");
      if (!mkdtemp (tmpdir))
        return kiln_error_make (err, errno, "mkdtemp '%s'", tmpdir);
      dir = xasprintf ("%s/layout", tmpdir);
    }
  int ret = run_pull_into (o, ref, os, arch, variant, dir, tag, err);
  if (tmpdir)
    {
      kiln_error *rerr = NULL;
      char *slash = strrchr (tmpdir, '/');
      *slash = '\0';
      autoclose int pfd = open (slash == tmpdir ? "/" : tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (pfd < 0 || fs_rm_rf_at (pfd, slash + 1, &rerr) < 0)
        {
          log_warn ("could not remove temporary directory '%s/%s'", tmpdir, slash + 1);
          kiln_error_free (rerr);
        }
    }
  return ret;
}

static int
interrupted (const pull_opts *o, kiln_error **err)
{
  if (!o->reg.cancel || !*o->reg.cancel)
    return 0;
  return kiln_error_make (err, EINTR, "interrupted by %s", *o->reg.cancel == SIGINT ? "SIGINT" : "SIGTERM");
}

static int
run_pull_into (pull_opts *o, const registry_ref *ref, const char *os, const char *arch, const char *variant,
               const char *dir, const char *tag, kiln_error **err)
{
  if (tag && !registry_tag_valid (tag))
    return kiln_error_make (err, 0, "--oci-layout '%s': invalid tag '%s'", o->layout, tag);
  autoocilayout ocilayout *l = NULL;
  if (ocilayout_open (dir, &l, err) < 0)
    return -1;
  autofree char *full = registry_ref_string (ref);
  registry_pull_result res;
  bool done = false;
  /* Mirrors first (docker.io only), then the origin. Blobs a failed
   * mirror already delivered are verified and stay; the rest come from the
   * next source. */
  if (strcmp (ref->domain, REGISTRY_DOCKER_HUB) == 0)
    for (char **m = o->mirrors; m && *m && !done; m++)
      {
        autoref registry_ref *mref = registry_ref_dup (ref);
        free (mref->domain);
        mref->domain = xstrdup (*m);
        autoclient registry_client *mc = NULL;
        kiln_error *merr = NULL;
        log_info ("pulling %s from mirror %s", full, *m);
        if (registry_client_new (&o->reg, *m, &mc, &merr) >= 0
            && registry_pull (mc, mref, os, arch, variant, &ocilayout_consumer, l, &res, &merr) >= 0)
          done = true;
        else if (o->reg.cancel && *o->reg.cancel)
          {
            kiln_error_free (*err);
            *err = merr;
            return kiln_error_wrap (err, "pulling '%s' from mirror %s", full, *m);
          }
        else
          {
            autofree char *msg = kiln_error_string (merr);
            log_warn ("mirror %s failed (%s); trying the next source", *m, msg);
            kiln_error_free (merr);
          }
      }
  if (!done)
    {
      autoclient registry_client *c = NULL;
      if (registry_client_new (&o->reg, ref->domain, &c, err) < 0)
        return -1;
      log_info ("pulling %s", full);
      if (registry_pull (c, ref, os, arch, variant, &ocilayout_consumer, l, &res, err) < 0)
        return kiln_error_wrap (err, "pulling '%s'", full);
    }
  /* A signal that came after the last transfer still stops the command
   * between steps (each step's output is written atomically). */
  int r = interrupted (o, err);
  if (r >= 0)
    r = ocilayout_set_ref (l, tag, res.media_type, res.manifest_digest, res.manifest_size, err);
  if (r >= 0 && o->tar_path)
    r = interrupted (o, err);
  if (r >= 0 && o->tar_path)
    {
      autofree char *fam = registry_ref_familiar (ref);
      /* RepoTags wants name:tag; a digest-only reference gets none. */
      r = dockerarchive_write (l, tag, ref->tag && !ref->digest ? fam : NULL, o->tar_path, err);
    }
  if (r >= 0)
    r = interrupted (o, err);
  if (r >= 0 && o->digest_file)
    r = registry_write_digest_file (o->digest_file, res.manifest_digest, err);
  if (r >= 0)
    printf ("%s\n", res.manifest_digest);
  registry_pull_result_clear (&res);
  return r;
}

static const char pull_usage_head[] =
  "Usage: kiln pull [FLAGS] REFERENCE --oci-layout DIR[:TAG]\n"
  "       kiln pull [FLAGS] REFERENCE --store [--root DIR]\n\n"
  "Pull an image from a registry into an OCI image layout, or into kiln's store\n"
  "(layers extracted once, compressed blobs kept).\n\nFlags:\n";

int
cmd_pull_main (int argc, char **argv, kiln_error **err)
{
  pull_opts o;
  memset (&o, 0, sizeof o);
  o.reg.retries = -1;
  cli_common_init (&o.common);
  autostrv char **pos = NULL;
  int r = cmd_parse_args ("pull", argc, argv, pull_options, N_PULL_OPTIONS, &o.common, pull_handle, &o,
                          pull_usage_head, &pos, err);
  if (r <= 0)
    {
      pull_opts_free (&o);
      return r < 0 ? KILN_EXIT_USAGE : KILN_EXIT_OK;
    }
  if (o.store && (o.layout || o.tar_path))
    {
      pull_opts_free (&o);
      kiln_error_make (err, 0, "kiln pull: --store cannot be combined with --oci-layout or --tar-path");
      return KILN_EXIT_USAGE;
    }
  if (strv_len (pos) != 1 || (!o.layout && !o.tar_path && !o.store))
    {
      pull_opts_free (&o);
      kiln_error_make (err, 0,
                       "kiln pull: expected one REFERENCE and --oci-layout DIR[:TAG] and/or --tar-path FILE, or --store");
      return KILN_EXIT_USAGE;
    }
  o.reg.cancel = sigcancel_install (-1);
  /* In-place per-blob progress on a terminal; plain log lines otherwise. */
  if (o.common.log_format != LOG_FORMAT_JSON && log_enabled (LOG_LEVEL_INFO))
    o.reg.progress = blobprogress_new (stderr);
  r = run_pull (&o, pos[0], err);
  blobprogress_free (o.reg.progress);
  pull_opts_free (&o);
  return r < 0 ? sigcancel_exit_code (KILN_EXIT_FAILURE) : KILN_EXIT_OK;
}
