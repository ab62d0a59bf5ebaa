/* push.c - `kiln push`: an image from an OCI layout to registries. */
#include "cmd/cmd.h"
#include "cmd/cmd_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/blobprogress.h"
#include "registry/client.h"
#include "registry/digest_file.h"
#include "registry/manifest.h"
#include "registry/ocilayout.h"
#include "registry/push.h"
#include "registry/reference.h"
#include "util/alloc.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/sigcancel.h"

enum
{
  OPT_OCI_LAYOUT = 1,
  OPT_DIGEST_FILE,
  OPT_PUSH_RETRY,
  OPT_MOUNT_FROM,
};

static const cli_option push_options[] = {
  { "oci-layout", 0, CLI_VALUE, "DIR[:TAG]", "push the image from this OCI layout directory (required)", OPT_OCI_LAYOUT },
  { "digest-file", 0, CLI_VALUE, "FILE", "write the pushed manifest digest to FILE", OPT_DIGEST_FILE },
  { "push-retry", 0, CLI_VALUE, "N", "retry a failed push of a destination N times (default 0)", OPT_PUSH_RETRY },
  { "mount-from", 0, CLI_VALUE, "REPOSITORY", "mount missing blobs from this repository of the same registry",
    OPT_MOUNT_FROM },
  CMD_TRANSPORT_OPTIONS
};
#define N_PUSH_OPTIONS ARRAY_SIZE (push_options)

typedef struct push_opts
{
  cli_common common;
  char *layout;
  char *digest_file;
  char *mount_from;
  int push_retry;
  registry_options reg;
} push_opts;

static const cmd_string_flag push_strings[] = {
  CMD_STRING_FLAG (OPT_OCI_LAYOUT, push_opts, layout),
  CMD_STRING_FLAG (OPT_DIGEST_FILE, push_opts, digest_file),
};
static const cmd_flags push_flags = CMD_FLAGS (push_opts, push_strings);

static int
push_handle (void *ctx, int id, const char *value, kiln_error **err)
{
  push_opts *o = ctx;
  int r = cmd_flags_handle (&push_flags, o, id, value, err);
  if (r != 0)
    return r < 0 ? r : 0;
  switch (id)
    {
    case OPT_MOUNT_FROM:
      if (!registry_path_valid (value))
        return kiln_error_make (err, 0, "--mount-from: invalid repository '%s'", value);
      cmd_set_string (&o->mount_from, value);
      return 0;
    case OPT_PUSH_RETRY:
      {
        char *end;
        long n = strtol (value, &end, 10);
        if (end == value || *end || n < 0 || n > 100)
          return kiln_error_make (err, 0, "--push-retry: expected a number from 0 to 100, got '%s'", value);
        o->push_retry = (int) n;
        return 0;
      }
    default:
      return kiln_error_make (err, 0, "internal: unhandled push option id %d", id);
    }
}

static void
push_opts_free (push_opts *o)
{
  cmd_flags_free (&push_flags, o);
  free (o->mount_from);
}

static int
layout_open_blob (void *ctx, const char *digest, int *fd, int64_t *size, kiln_error **err)
{
  return ocilayout_open_blob (ctx, digest, fd, size, err);
}

static const registry_push_source layout_source = { .open_blob = layout_open_blob };

static int
push_to (push_opts *o, ocilayout *l, const char *data, size_t len, const char *mt, const char *dest,
         char digest[DIGEST_STRING_SIZE], kiln_error **err)
{
  autoref registry_ref *ref = NULL;
  if (registry_ref_parse (dest, &ref, err) < 0)
    return -1;
  if (ref->digest)
    return kiln_error_make (err, 0, "push destination '%s': cannot push to a digest reference", dest);
  autoclient registry_client *c = NULL;
  if (registry_client_new (&o->reg, ref->domain, &c, err) < 0)
    return -1;
  autofree char *full = registry_ref_string (ref);
  char *tags[] = { ref->tag, NULL };
  for (int attempt = 0;; attempt++)
    {
      log_info ("pushing %s", full);
      if (registry_push_image (c, ref->path, tags, data, len, mt, &layout_source, l, o->mount_from, digest, err) >= 0)
        return 0;
      if (attempt >= o->push_retry || *o->reg.cancel)
        return kiln_error_wrap (err, "pushing '%s'", full);
      autofree char *msg = kiln_error_string (*err);
      log_warn ("pushing %s failed (%s); retrying (%d/%d)", full, msg, attempt + 1, o->push_retry);
      kiln_error_clear (err);
    }
}

static int
run_push (push_opts *o, char **dests, kiln_error **err)
{
  autofree char *dir = NULL, *tag = NULL;
  ocilayout_split_arg (o->layout, &dir, &tag);
  autoocilayout ocilayout *l = NULL;
  if (ocilayout_open (dir, &l, err) < 0)
    return -1;
  autofree char *mt = NULL;
  autofree char *data = NULL;
  size_t len = 0;
  if (ocilayout_load_image (l, tag, &data, &len, &mt, err) < 0)
    return -1;
  char digest[DIGEST_STRING_SIZE];
  for (char **d = dests; *d; d++)
    if (push_to (o, l, data, len, mt, *d, digest, err) < 0)
      return -1;
  if (o->digest_file && registry_write_digest_file (o->digest_file, digest, err) < 0)
    return -1;
  printf ("%s\n", digest);
  return 0;
}

static const char push_usage_head[] =
  "Usage: kiln push [FLAGS] --oci-layout DIR[:TAG] DESTINATION...\n\n"
  "Push an image from an OCI image layout to one or more registry references.\n"
  "A multi-platform image (an image index, or several index.json entries for TAG,\n"
  "one per platform) is pushed whole: every platform's image, then the index.\n\nFlags:\n";

int
cmd_push_main (int argc, char **argv, kiln_error **err)
{
  push_opts o;
  memset (&o, 0, sizeof o);
  o.reg.retries = -1;
  cli_common_init (&o.common);
  autostrv char **pos = NULL;
  int r = cmd_parse_args ("push", argc, argv, push_options, N_PUSH_OPTIONS, &o.common, push_handle, &o,
                          push_usage_head, &pos, err);
  if (r <= 0)
    {
      push_opts_free (&o);
      return r < 0 ? KILN_EXIT_USAGE : KILN_EXIT_OK;
    }
  if (strv_len (pos) < 1 || !o.layout)
    {
      push_opts_free (&o);
      kiln_error_make (err, 0, "kiln push: expected --oci-layout DIR[:TAG] and at least one DESTINATION");
      return KILN_EXIT_USAGE;
    }
  o.reg.cancel = sigcancel_install (-1);
  /* In-place per-blob progress on a terminal; plain log lines otherwise. */
  if (o.common.log_format != LOG_FORMAT_JSON && log_enabled (LOG_LEVEL_INFO))
    o.reg.progress = blobprogress_new (stderr);
  r = run_push (&o, pos, err);
  blobprogress_free (o.reg.progress);
  push_opts_free (&o);
  return r < 0 ? sigcancel_exit_code (KILN_EXIT_FAILURE) : KILN_EXIT_OK;
}
