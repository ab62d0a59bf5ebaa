/* build_output.c - push and export a built image (see build_output.h). */
#include "build/build_output.h"
#include "build/build_lazy.h"
#include "registry/dockerarchive.h"
#include "registry/ocilayout.h"
#include "registry/digest_file.h"
#include "registry/mediatype.h"
#include "registry/push.h"
#include "registry/reference.h"
#include "store/links.h"
#include "store/fetch.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* The registries' answers kaniko's --push-ignore-immutable-tag-errors
 * knows (Artifact Registry, ECR). */
static bool
immutable_tag_error (const kiln_error *e)
{
  static const char *const known[] = {
    "The repository has enabled tag immutability",
    "cannot be overwritten because the repository is immutable",
  };
  autofree char *msg = kiln_error_string (e);
  for (size_t i = 0; i < ARRAY_SIZE (known); i++)
    if (strstr (msg, known[i]))
      return true;
  return false;
}

static int
push_one (store *s, const build_result *res, const build_output_opts *o, const char *dest, kiln_error **err)
{
  autoref registry_ref *ref = NULL;
  if (registry_ref_parse (dest, &ref, err) < 0)
    return kiln_error_wrap (err, "destination '%s'", dest);
  if (ref->digest)
    return kiln_error_make (err, EINVAL, "destination '%s': cannot push to a digest reference", dest);
  autoclient registry_client *c = NULL;
  if (registry_client_new (o->reg, ref->domain, &c, err) < 0)
    return kiln_error_wrap (err, "destination '%s'", dest);
  autofree char *full = registry_ref_string (ref);
  char *tags[] = { ref->tag, NULL };
  char digest[DIGEST_STRING_SIZE];
  /* Lazy layers are mounted from their source repository or fetched when
   * the registry wants their bytes (build/build_lazy.h). */
  build_lazy_opts lo = { s, o->reg, o->mirrors };
  build_lazy_push lp;
  build_lazy_push_init (&lp, &lo, ref->domain, res);
  int pr;
  for (int attempt = 0;; attempt++)
    {
      progress_note (o->progress, "pushing %s", full);
      pr = registry_push_image (c, ref->path, tags, res->manifest, res->manifest_len, res->manifest_media_type,
                                build_lazy_push_source (), &lp, NULL, digest, err);
      if (pr >= 0)
        break;
      if (o->ignore_immutable_tags && immutable_tag_error (*err))
        {
          log_info ("pushing %s: the tag is immutable and already set; ignored (--push-ignore-immutable-tag-errors)",
                    full);
          kiln_error_clear (err);
          build_lazy_push_clear (&lp);
          return 0;
        }
      if (attempt >= o->push_retry)
        {
          build_lazy_push_clear (&lp);
          return kiln_error_wrap (err, "pushing '%s'", full);
        }
      autofree char *msg = kiln_error_string (*err);
      log_warn ("pushing %s failed (%s); retrying (%d/%d)", full, msg, attempt + 1, o->push_retry);
      kiln_error_clear (err);
    }
  build_lazy_push_clear (&lp);
  if (strcmp (digest, res->manifest_digest) != 0)
    return kiln_error_make (err, EIO, "pushing '%s': registry reports digest %s, expected %s", full, digest,
                            res->manifest_digest);
  progress_note (o->progress, "pushed %s@%s", full, digest);
  if (o->attest && o->attest->n > 0)
    {
      if (attest_push (c, ref->path, s, o->attest, err) < 0)
        return kiln_error_wrap (err, "pushing '%s'", full);
      autofree char *rtags = attest_referrers_tags (o->attest);
      progress_note (o->progress, "pushed %zu attestation(s) of %s (referrers tag %s)", o->attest->n, full, rtags);
    }
  return 0;
}

/* Put one store blob into the layout. The store verified it when it was
 * stored, so it is not hashed again. On the store's filesystem the layout
 * gets a hard link (no copy, no fsync of the data: a warm build's output
 * step was mostly copying the base layers), recorded by the store
 * (store_blob_link_out): a tool that rewrites the layout's blob in place
 * rewrites the store's, so the store checks the blob against the record
 * whenever it hands it out, and a changed blob is hashed again and removed
 * if its content is no longer its digest (store/links.h). Elsewhere, or
 * where a link is refused, the blob is copied into a temp file renamed into
 * place (FICLONE, else copy_file_range). */
static int
layout_put_blob (store *s, const char *dir, const char *digest, int64_t size, kiln_error **err)
{
  autofree char *blobs = xasprintf ("%s/blobs/sha256", dir);
  autoclose int bfd = open (blobs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (bfd < 0)
    return kiln_error_make (err, errno, "open '%s'", blobs);
  const char *hex = digest + 7;
  autofree char *rel = xasprintf ("blobs/sha256/%s", hex);
  autofree char *rec = xasprintf ("bloblinks/sha256/%s", hex);
  struct stat sb, st;
  bool in_store = fstatat (s->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG (st.st_mode);
  /* Already there; but a hard link to the store's blob without a record
   * (an older kiln's) is replaced. */
  if (fstatat (bfd, hex, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG (sb.st_mode) && sb.st_size == size)
    {
      if (!in_store || sb.st_dev != st.st_dev || sb.st_ino != st.st_ino
          || faccessat (s->rootfd, rec, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
      if (unlinkat (bfd, hex, 0) < 0)
        return kiln_error_make (err, errno, "remove '%s/%s'", blobs, hex);
    }
  /* store_open_blob checks the store's blob against its record first */
  autoclose int fd = store_open_blob (s, digest, err);
  if (fd < 0)
    return -1;
  if (in_store && st.st_size == size)
    {
      int r = store_blob_link_out (s, digest, bfd, hex, err);
      if (r < 0)
        return -1;
      /* its name is made durable with the others' before index.json
       * names it (ocilayout.c, blobs_durable) */
      if (r == 0)
        return 0;
    }
  fs_atomic_file a = FS_ATOMIC_FILE_INIT;
  if (fs_atomic_open (bfd, hex, 0644, &a, err) < 0)
    return -1;
  uint64_t copied = 0;
  if (ioctl (a.fd, FICLONE, fd) == 0)
    {
      struct stat cs;
      copied = fstat (a.fd, &cs) == 0 ? (uint64_t) cs.st_size : 0;
    }
  else if (fs_copy_fd (fd, a.fd, UINT64_MAX, &copied, err) < 0)
    copied = UINT64_MAX;
  if ((int64_t) copied != size)
    {
      fs_atomic_abort (&a);
      if (*err == NULL)
        kiln_error_make (err, EIO, "blob %s: copied %llu bytes, expected %lld", digest, (unsigned long long) copied,
                         (long long) size);
      return -1;
    }
  return fs_atomic_commit (&a, err);
}

/* Stream one store blob into the layout through its pull consumer, which
 * verifies and publishes it atomically. */
static int
layout_put_blob_verified (store *s, ocilayout *l, const char *media_type, const char *digest, int64_t size,
                          kiln_error **err)
{
  autoclose int fd = store_open_blob (s, digest, err);
  if (fd < 0)
    return -1;
  manifest_descriptor d = { .media_type = (char *) media_type, .digest = (char *) digest, .size = size };
  const registry_pull_consumer *pc = &ocilayout_consumer;
  int have = pc->have_blob ? pc->have_blob (l, &d, err) : 0;
  if (have < 0)
    return -1;
  if (have > 0)
    return 0;
  void *blob = NULL;
  if (pc->blob_begin (l, REGISTRY_BLOB_LAYER, &d, &blob, err) < 0)
    return -1;
  char buf[1 << 16];
  for (;;)
    {
      ssize_t n = read (fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int e = errno;
          pc->blob_end (blob, false, NULL);
          return kiln_error_make (err, e, "read blob %s from the store", digest);
        }
      if (n == 0)
        break;
      if (pc->blob_data (blob, buf, n, err) < 0)
        {
          pc->blob_end (blob, false, NULL);
          return -1;
        }
    }
  return pc->blob_end (blob, true, err);
}

/* mkdir -p for a path the user gave (not untrusted input). */
static int
mkdir_parents (const char *path, kiln_error **err)
{
  autofree char *p = xstrdup (path);
  for (char *s = p + 1; *s; s++)
    {
      if (*s != '/')
        continue;
      *s = '\0';
      if (mkdir (p, 0755) < 0 && errno != EEXIST)
        return kiln_error_make (err, errno, "mkdir '%s'", p);
      *s = '/';
    }
  return 0;
}

/* One image's blobs (layers, config, manifest) into the layout. */
static int
layout_put_image (store *s, ocilayout *l, const build_result *res, const char *dir, kiln_error **err)
{
  for (size_t i = 0; i < res->n_layers; i++)
    if (layout_put_blob (s, dir, res->layers[i].digest, res->layers[i].size, err) < 0)
      return -1;
  int64_t csize = 0;
  /* Config and manifest are small: through the verifying consumer. */
  if (store_blob_size (s, res->config_digest, &csize, err) <= 0
      || layout_put_blob_verified (s, l, MEDIA_OCI_CONFIG, res->config_digest, csize, err) < 0
      || layout_put_blob_verified (s, l, res->manifest_media_type, res->manifest_digest, (int64_t) res->manifest_len,
                                   err) < 0)
    return -1;
  return 0;
}

/* The image res (or every image of the index res, then the index) as tag
 * in the OCI layout dir. */
static int
write_layout (store *s, const build_result *res, const char *dir, const char *tag, kiln_error **err)
{
  autoocilayout ocilayout *l = NULL;
  if (mkdir_parents (dir, err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s'", dir);
  if (ocilayout_open (dir, &l, err) < 0)
    return -1;
  if (res->n_images == 0 && layout_put_image (s, l, res, dir, err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s'", dir);
  for (size_t i = 0; i < res->n_images; i++)
    if (layout_put_image (s, l, &res->images[i], dir, err) < 0)
      return kiln_error_wrap (err, "OCI layout '%s': image for %s/%s", dir, res->images[i].os,
                              res->images[i].architecture);
  if (res->n_images
      && layout_put_blob_verified (s, l, res->manifest_media_type, res->manifest_digest, (int64_t) res->manifest_len,
                                   err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s'", dir);
  if (ocilayout_set_ref (l, tag, res->manifest_media_type, res->manifest_digest, (int64_t) res->manifest_len, err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s'", dir);
  return 0;
}

int
build_output_index (store *s, image_format format, build_result *images, size_t n, build_result *out,
                    kiln_error **err)
{
  memset (out, 0, sizeof *out);
  out->images = images;
  out->n_images = n;
  autofree image_index_entry *e = xcalloc (n + 1, sizeof *e);
  for (size_t i = 0; i < n; i++)
    {
      const build_result *r = &images[i];
      e[i] = (image_index_entry) { r->manifest_media_type, r->manifest_digest, (int64_t) r->manifest_len, r->os,
                                   r->architecture, r->variant };
      out->size += r->size + r->manifest_len;
      out->n_layers += r->n_layers;
      if (r->t_pull > out->t_pull) /* the executor's total so far */
        out->t_pull = r->t_pull;
      out->t_run += r->t_run;
      out->t_snapshot += r->t_snapshot;
      out->t_pack += r->t_pack;
      out->t_copy += r->t_copy;
    }
  if (image_index_json (format, e, n, &out->manifest, &out->manifest_len, err) < 0)
    return kiln_error_wrap (err, "image index");
  digest_buffer (out->manifest, out->manifest_len, out->manifest_digest);
  out->manifest_media_type = image_index_media_type (format);
  if (store_put_blob (s, out->manifest_digest, out->manifest, out->manifest_len, err) < 0)
    return kiln_error_wrap (err, "image index");
  return 0;
}

/* The attestations of a: artifact manifests and their blobs as untagged
 * index.json entries (their subject is the image), and each document as
 * DIR/FILE_NAME. */
static int
write_layout_attest (store *s, const attest_set *a, const char *dir, kiln_error **err)
{
  autoocilayout ocilayout *l = NULL;
  if (ocilayout_open (dir, &l, err) < 0)
    return -1;
  char empty[DIGEST_STRING_SIZE];
  digest_buffer ("{}", 2, empty);
  autoclose int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return kiln_error_make (err, errno, "open '%s'", dir);
  for (size_t i = 0; i < a->n; i++)
    {
      const attest_doc *d = &a->docs[i];
      if (layout_put_blob_verified (s, l, ATTEST_EMPTY_MEDIA_TYPE, empty, 2, err) < 0
          || layout_put_blob_verified (s, l, d->media_type, d->digest, (int64_t) d->len, err) < 0
          || layout_put_blob_verified (s, l, MEDIA_OCI_MANIFEST, d->manifest_digest, (int64_t) d->manifest_len, err) < 0
          || ocilayout_add_artifact (l, MEDIA_OCI_MANIFEST, d->manifest_digest, (int64_t) d->manifest_len,
                                     d->media_type, err) < 0
          || fs_write_file_atomic_at (dfd, d->file_name, d->data, d->len, 0644, err) < 0)
        return kiln_error_wrap (err, "OCI layout '%s': %s attestation", dir, d->media_type);
    }
  return 0;
}

static int
write_tar (store *s, const build_result *res, const build_output_opts *o, kiln_error **err)
{
  autofree char *tmpname = NULL;
  autoclose int tmpfd = -1;
  if (store_mktemp (s, "tar-", &tmpname, &tmpfd, err) < 0)
    return -1;
  autofree char *dir = xasprintf ("%s/tmp/%s/layout", s->root, tmpname);
  int r = write_layout (s, res, dir, "kiln", err);
  autofree char *repo_tag = NULL;
  if (r == 0 && o->destinations && o->destinations[0])
    {
      autoref registry_ref *ref = NULL;
      autoerror kiln_error *e = NULL;
      if (registry_ref_parse (o->destinations[0], &ref, &e) == 0 && ref->tag)
        {
          autofree char *name = registry_ref_familiar (ref);
          repo_tag = strchr (name, ':') && !strchr (name, '@') ? xstrdup (name) : xasprintf ("%s:%s", name, ref->tag);
        }
    }
  if (r == 0)
    {
      autoocilayout ocilayout *l = NULL;
      r = ocilayout_open (dir, &l, err);
      if (r == 0)
        r = dockerarchive_write (l, "kiln", repo_tag, o->tar_path, err);
    }
  store_rmtemp (s, tmpname);
  return r < 0 ? kiln_error_wrap (err, "--tar-path '%s'", o->tar_path) : 0;
}

/* The layouts hold every blob: lazy layers' blobs are fetched first. */
static int
fetch_blobs (store *s, const build_result *res, const build_output_opts *o, kiln_error **err)
{
  build_lazy_opts lo = { s, o->reg, o->mirrors };
  if (res->layers && build_lazy_fetch (&lo, res->layers, res->n_layers, true, err) < 0)
    return -1;
  for (size_t i = 0; i < res->n_images; i++)
    if (build_lazy_fetch (&lo, res->images[i].layers, res->images[i].n_layers, true, err) < 0)
      return -1;
  return 0;
}

/* NAME@DIGEST (or NAME:TAG@DIGEST with_tag) for every destination. */
static int
write_name_digests (const build_result *res, const build_output_opts *o, const char *path, bool with_tag,
                    kiln_error **err)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  for (char **d = o->destinations; d && *d; d++)
    {
      autoref registry_ref *ref = NULL;
      if (registry_ref_parse (*d, &ref, err) < 0)
        return -1;
      autofree char *name = registry_ref_name (ref);
      if (with_tag && ref->tag)
        strbuf_addf (&sb, "%s:%s@%s\n", name, ref->tag, res->manifest_digest);
      else
        strbuf_addf (&sb, "%s@%s\n", name, res->manifest_digest);
    }
  return registry_write_user_file (path, sb.buf ? sb.buf : "", sb.len, err);
}

int
build_output_write (store *s, const build_result *res, const build_output_opts *o, kiln_error **err)
{
  if (o->tar_path && res->n_images)
    return kiln_error_make (err, EINVAL, "--tar-path '%s': a docker archive holds one image, not an index of %zu "
                            "platforms: use --oci-layout DIR (or build one --platform)", o->tar_path, res->n_images);
  if (!o->no_push)
    for (char **d = o->destinations; d && *d; d++)
      if (push_one (s, res, o, *d, err) < 0)
        return -1;
  if ((o->oci_layout || o->tar_path) && fetch_blobs (s, res, o, err) < 0)
    return kiln_error_wrap (err, "%s", o->oci_layout ? "--oci-layout" : "--tar-path");
  if (o->oci_layout)
    {
      autofree char *dir = NULL, *tag = NULL;
      ocilayout_split_arg (o->oci_layout, &dir, &tag);
      if (write_layout (s, res, dir, tag, err) < 0)
        return -1;
      if (o->attest && o->attest->n > 0 && write_layout_attest (s, o->attest, dir, err) < 0)
        return -1;
      progress_note (o->progress, "wrote OCI layout %s", o->oci_layout);
    }
  if (o->tar_path)
    {
      if (write_tar (s, res, o, err) < 0)
        return -1;
      progress_note (o->progress, "wrote docker archive %s", o->tar_path);
    }
  if (o->digest_file && registry_write_digest_file (o->digest_file, res->manifest_digest, err) < 0)
    return -1;
  if (o->name_digest_file && write_name_digests (res, o, o->name_digest_file, false, err) < 0)
    return kiln_error_wrap (err, "--image-name-with-digest-file");
  if (o->name_tag_digest_file && write_name_digests (res, o, o->name_tag_digest_file, true, err) < 0)
    return kiln_error_wrap (err, "--image-name-tag-with-digest-file");
  return 0;
}
