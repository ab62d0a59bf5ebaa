/* ocilayout.c - OCI image layout writer (see ocilayout.h). */
#include "registry/ocilayout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/manifest.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/json.h"

#define REF_NAME "org.opencontainers.image.ref.name"

struct ocilayout
{
  char *path;
  int dirfd;
  int blobsfd; /* blobs/sha256 */
};

typedef struct ocilayout_blob
{
  ocilayout *l;
  fs_atomic_file f;
  char *digest;
} ocilayout_blob;

void
ocilayout_free (ocilayout *l)
{
  if (!l)
    return;
  if (l->dirfd >= 0)
    close (l->dirfd);
  if (l->blobsfd >= 0)
    close (l->blobsfd);
  free (l->path);
  free (l);
}

void
cleanup_ocilayoutp (ocilayout **l)
{
  ocilayout_free (*l);
  *l = NULL;
}

void
ocilayout_split_arg (const char *arg, char **dir, char **tag)
{
  const char *slash = strrchr (arg, '/');
  const char *colon = strrchr (slash ? slash : arg, ':');
  if (colon)
    {
      *dir = xstrndup (arg, (size_t) (colon - arg));
      *tag = colon[1] ? xstrdup (colon + 1) : NULL;
    }
  else
    {
      *dir = xstrdup (arg);
      *tag = NULL;
    }
}

int
ocilayout_open (const char *path, ocilayout **out, kiln_error **err)
{
  ocilayout *l = xzalloc (sizeof *l);
  l->dirfd = l->blobsfd = -1;
  l->path = xstrdup (path);
  int r;
  /* The destination is the user's choice (like mkdir, not mkdir -p). */
  if (mkdir (path, 0755) < 0 && errno != EEXIST)
    {
      r = kiln_error_make (err, errno, "mkdir '%s'", path);
      goto fail;
    }
  l->dirfd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (l->dirfd < 0)
    {
      r = kiln_error_make (err, errno, "open '%s'", path);
      goto fail;
    }
  if ((r = fs_mkdir_p_at (l->dirfd, "blobs/sha256", 0755, err)) < 0)
    goto fail;
  l->blobsfd = openat (l->dirfd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (l->blobsfd < 0)
    {
      r = kiln_error_make (err, errno, "open '%s/blobs/sha256'", path);
      goto fail;
    }
  const char *layout = "{\"imageLayoutVersion\":\"1.0.0\"}";
  if ((r = fs_write_file_atomic_at (l->dirfd, "oci-layout", layout, strlen (layout), 0644, err)) < 0)
    goto fail;
  *out = l;
  return 0;
fail:
  ocilayout_free (l);
  return kiln_error_wrap (err, "OCI layout '%s'", path);
}

int
ocilayout_open_existing (const char *path, ocilayout **out, kiln_error **err)
{
  ocilayout *l = xzalloc (sizeof *l);
  l->dirfd = l->blobsfd = -1;
  l->path = xstrdup (path);
  struct stat st;
  l->dirfd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (l->dirfd < 0)
    {
      kiln_error_make (err, errno, "open '%s'", path);
      goto fail;
    }
  /* The marker file says this is a layout (and not some other directory). */
  if (fstatat (l->dirfd, "oci-layout", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG (st.st_mode))
    {
      kiln_error_make (err, 0, "not an OCI image layout (no regular file 'oci-layout')");
      goto fail;
    }
  l->blobsfd = openat (l->dirfd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (l->blobsfd < 0)
    {
      kiln_error_make (err, errno, "open '%s/blobs/sha256'", path);
      goto fail;
    }
  *out = l;
  return 0;
fail:
  ocilayout_free (l);
  return kiln_error_wrap (err, "OCI layout '%s'", path);
}

static int
have_blob (void *ctx, const manifest_descriptor *d, kiln_error **err)
{
  ocilayout *l = ctx;
  struct stat st;
  (void) err;
  if (fstatat (l->blobsfd, digest_hex (d->digest), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG (st.st_mode)
      && st.st_size == d->size)
    return 1;
  return 0;
}

static int
blob_begin (void *ctx, registry_blob_kind kind, const manifest_descriptor *d, void **blob, kiln_error **err)
{
  ocilayout *l = ctx;
  (void) kind;
  ocilayout_blob *b = xzalloc (sizeof *b);
  fs_atomic_file init = FS_ATOMIC_FILE_INIT;
  b->f = init;
  b->l = l;
  b->digest = xstrdup (d->digest);
  if (fs_atomic_open (l->blobsfd, digest_hex (d->digest), 0644, &b->f, err) < 0)
    {
      free (b->digest);
      free (b);
      return kiln_error_wrap (err, "OCI layout '%s'", l->path);
    }
  *blob = b;
  return 0;
}

static int
blob_data (void *blob, const void *data, size_t len, kiln_error **err)
{
  ocilayout_blob *b = blob;
  if (fs_write_all (b->f.fd, data, len, err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s': writing blob %s", b->l->path, b->digest);
  return 0;
}

static int
blob_end (void *blob, bool ok, kiln_error **err)
{
  ocilayout_blob *b = blob;
  int r = 0;
  if (ok)
    {
      if ((r = fs_atomic_commit (&b->f, err)) < 0)
        kiln_error_wrap (err, "OCI layout '%s': storing blob %s", b->l->path, b->digest);
    }
  fs_atomic_abort (&b->f);
  free (b->digest);
  free (b);
  return r;
}

static int
store_manifest (void *ctx, const char *data, size_t len, const char *media_type, const char *digest,
                kiln_error **err)
{
  ocilayout *l = ctx;
  (void) media_type;
  if (fs_write_file_atomic_at (l->blobsfd, digest_hex (digest), data, len, 0644, err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s'", l->path);
  return 0;
}

const registry_pull_consumer ocilayout_consumer = { have_blob, blob_begin, blob_data, blob_end, store_manifest };

/* An OCI image index up to the opening of its "manifests" array: the caller
 * adds the entries and closes the array and the object. */
static json_writer *
index_begin (void)
{
  json_writer *w = json_writer_new ();
  json_writer_begin_object (w);
  json_writer_kv_int (w, "schemaVersion", 2);
  json_writer_kv_string (w, "mediaType", MEDIA_OCI_INDEX);
  json_writer_key (w, "manifests");
  json_writer_begin_array (w);
  return w;
}

static int write_entry (ocilayout *l, const char *tag, const char *media_type, const char *digest, int64_t size,
                        const char *artifact_type, kiln_error **err);

int
ocilayout_set_ref (ocilayout *l, const char *tag, const char *media_type, const char *digest, int64_t size,
                   kiln_error **err)
{
  return write_entry (l, tag, media_type, digest, size, NULL, err);
}

int
ocilayout_add_artifact (ocilayout *l, const char *media_type, const char *digest, int64_t size,
                        const char *artifact_type, kiln_error **err)
{
  return write_entry (l, NULL, media_type, digest, size, artifact_type, err);
}

/* index.json is what makes blobs part of the layout: the names of the
 * blobs put in without an fsync of their directory (hard links from the
 * store, build_output.c) must be durable before it is. One fsync for all of
 * them instead of one per blob. */
static int
blobs_durable (ocilayout *l, kiln_error **err)
{
  if (fsync (l->blobsfd) < 0 && errno != EINVAL && errno != EROFS)
    return kiln_error_make (err, errno, "fsync '%s/blobs/sha256'", l->path);
  return 0;
}

static int
write_entry (ocilayout *l, const char *tag, const char *media_type, const char *digest, int64_t size,
             const char *artifact_type, kiln_error **err)
{
  autofree char *old = NULL;
  size_t old_len = 0;
  autojson json_value *idx = NULL;
  kiln_error *rerr = NULL;
  if (fs_read_file_at (l->dirfd, "index.json", JSON_DEFAULT_MAX_SIZE, &old, &old_len, &rerr) < 0)
    {
      if (rerr->status != ENOENT)
        {
          *err = rerr;
          return kiln_error_wrap (err, "OCI layout '%s'", l->path);
        }
      kiln_error_free (rerr);
    }
  else if (json_parse (old, old_len, JSON_DEFAULT_MAX_SIZE, &idx, err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s': index.json", l->path);
  autojsonwriter json_writer *w = index_begin ();
  json_value *ms = json_get_array (idx, "manifests");
  for (size_t i = 0; i < json_array_size (ms); i++)
    {
      json_value *e = json_array_get (ms, i);
      const char *name = json_get_string (json_get_object (e, "annotations"), REF_NAME);
      if (tag ? (name && strcmp (name, tag) == 0) : (!name && strcmp (json_get_string (e, "digest") ?: "", digest) == 0))
        continue;
      json_writer_value (w, e);
    }
  json_writer_begin_object (w);
  json_writer_kv_string (w, "mediaType", media_type);
  json_writer_kv_string (w, "digest", digest);
  json_writer_kv_int (w, "size", size);
  if (artifact_type)
    json_writer_kv_string (w, "artifactType", artifact_type);
  if (tag)
    {
      json_writer_key (w, "annotations");
      json_writer_begin_object (w);
      json_writer_kv_string (w, REF_NAME, tag);
      json_writer_end_object (w);
    }
  json_writer_end_object (w);
  json_writer_end_array (w);
  json_writer_end_object (w);
  autofree char *out = NULL;
  size_t len = 0;
  if (json_writer_finish (w, &out, &len, err) < 0
      || blobs_durable (l, err) < 0
      || fs_write_file_atomic_at (l->dirfd, "index.json", out, len, 0644, err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s': writing index.json", l->path);
  return 0;
}

/* The layout's index.json, parsed. */
static int
read_index (ocilayout *l, json_value **idx, kiln_error **err)
{
  autofree char *data = NULL;
  size_t len = 0;
  if (fs_read_file_at (l->dirfd, "index.json", JSON_DEFAULT_MAX_SIZE, &data, &len, err) < 0
      || json_parse (data, len, JSON_DEFAULT_MAX_SIZE, idx, err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s': index.json", l->path);
  return 0;
}

/* Entries that are images: without "artifactType" (attestations that
 * name an image as their subject are not images of the layout). */
static size_t
count_images (const json_value *ms)
{
  size_t n = 0;
  for (size_t i = 0; i < json_array_size (ms); i++)
    n += json_get_string (json_array_get (ms, i), "artifactType") == NULL;
  return n;
}

int
ocilayout_resolve (ocilayout *l, const char *tag, char **media_type, char **digest, int64_t *size, kiln_error **err)
{
  autojson json_value *idx = NULL;
  if (read_index (l, &idx, err) < 0)
    return -1;
  json_value *ms = json_get_array (idx, "manifests");
  json_value *found = NULL;
  size_t n = count_images (ms);
  for (size_t i = 0; i < json_array_size (ms); i++)
    {
      json_value *e = json_array_get (ms, i);
      const char *name = json_get_string (json_get_object (e, "annotations"), REF_NAME);
      if (tag ? (name && strcmp (name, tag) == 0) : (n == 1 && !json_get_string (e, "artifactType")))
        found = e;
    }
  if (!found)
    {
      if (tag)
        return kiln_error_make (err, 0, "OCI layout '%s': no image tagged '%s' in index.json", l->path, tag);
      return kiln_error_make (err, 0, "OCI layout '%s': index.json has %zu images; say which with DIR:TAG", l->path, n);
    }
  const char *mt = json_get_string (found, "mediaType");
  const char *d = json_get_string (found, "digest");
  int64_t sz = -1;
  if (!mt || !d || digest_validate (d, err) < 0 || json_get_int64 (found, "size", &sz, err) < 0 || sz < 0)
    {
      kiln_error_clear (err);
      return kiln_error_make (err, 0, "OCI layout '%s': invalid index.json entry for '%s'", l->path, tag ? tag : "(only)");
    }
  *media_type = xstrdup (mt);
  *digest = xstrdup (d);
  *size = sz;
  return 0;
}

/* Several index.json entries for one tag (one per platform, as some tools
 * write a multi-platform image): an OCI image index of them. */
static int
synth_index (ocilayout *l, const char *tag, json_value **entries, size_t n, char **data, size_t *len,
             kiln_error **err)
{
  autojsonwriter json_writer *w = index_begin ();
  for (size_t i = 0; i < n; i++)
    {
      json_value *e = entries[i];
      const char *mt = json_get_string (e, "mediaType");
      const char *d = json_get_string (e, "digest");
      json_value *plat = json_get_object (e, "platform");
      int64_t sz = -1;
      if (!mt || (strcmp (mt, MEDIA_OCI_MANIFEST) != 0 && strcmp (mt, MEDIA_DOCKER_MANIFEST) != 0))
        return kiln_error_make (err, 0, "OCI layout '%s': several entries tagged '%s' and one is not an image manifest",
                                l->path, tag);
      if (!d || digest_validate (d, NULL) < 0 || json_get_int64 (e, "size", &sz, NULL) < 0 || sz < 0)
        return kiln_error_make (err, 0, "OCI layout '%s': invalid index.json entry for '%s'", l->path, tag);
      if (!plat || !json_get_string (plat, "os") || !json_get_string (plat, "architecture"))
        return kiln_error_make (err, 0,
                                "OCI layout '%s': several images tagged '%s' and entry %s has no platform "
                                "(os, architecture) to tell them apart",
                                l->path, tag, d);
      json_writer_begin_object (w);
      json_writer_kv_string (w, "mediaType", mt);
      json_writer_kv_string (w, "digest", d);
      json_writer_kv_int (w, "size", sz);
      json_writer_key (w, "platform");
      json_writer_value (w, plat);
      json_writer_end_object (w);
    }
  json_writer_end_array (w);
  json_writer_end_object (w);
  return json_writer_finish (w, data, len, err);
}

int
ocilayout_load_image (ocilayout *l, const char *tag, char **data, size_t *len, char **media_type, kiln_error **err)
{
  autojson json_value *idx = NULL;
  if (read_index (l, &idx, err) < 0)
    return -1;
  json_value *ms = json_get_array (idx, "manifests");
  size_t n = count_images (ms);
  autofree json_value **found = xcalloc (json_array_size (ms) + 1, sizeof *found);
  size_t nf = 0;
  for (size_t i = 0; i < json_array_size (ms); i++)
    {
      json_value *e = json_array_get (ms, i);
      const char *name = json_get_string (json_get_object (e, "annotations"), REF_NAME);
      if (tag ? (name && strcmp (name, tag) == 0) : (n == 1 && !json_get_string (e, "artifactType")))
        found[nf++] = e;
    }
  if (nf == 0)
    {
      if (tag)
        return kiln_error_make (err, 0, "OCI layout '%s': no image tagged '%s' in index.json", l->path, tag);
      return kiln_error_make (err, 0, "OCI layout '%s': index.json has %zu images; say which with DIR:TAG", l->path, n);
    }
  if (nf > 1)
    {
      if (synth_index (l, tag, found, nf, data, len, err) < 0)
        return -1;
      *media_type = xstrdup (MEDIA_OCI_INDEX);
      return 0;
    }
  const char *mt = json_get_string (found[0], "mediaType");
  const char *d = json_get_string (found[0], "digest");
  int64_t sz = -1;
  if (!mt || !d || digest_validate (d, NULL) < 0 || json_get_int64 (found[0], "size", &sz, NULL) < 0 || sz < 0)
    return kiln_error_make (err, 0, "OCI layout '%s': invalid index.json entry for '%s'", l->path, tag ? tag : "(only)");
  if (ocilayout_read_blob (l, d, REGISTRY_MANIFEST_MAX_SIZE, data, len, err) < 0)
    return -1;
  if ((int64_t) *len != sz)
    {
      free (*data);
      *data = NULL;
      return kiln_error_make (err, 0, "OCI layout '%s': manifest %s is %zu bytes, index.json says %lld", l->path, d,
                              *len, (long long) sz);
    }
  *media_type = xstrdup (mt);
  return 0;
}

int
ocilayout_open_blob (ocilayout *l, const char *digest, int *fd, int64_t *size, kiln_error **err)
{
  if (digest_validate (digest, err) < 0)
    return -1;
  int f = openat (l->blobsfd, digest_hex (digest), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (f < 0)
    return kiln_error_make (err, errno, "OCI layout '%s': open blob %s", l->path, digest);
  struct stat st;
  if (fstat (f, &st) < 0 || !S_ISREG (st.st_mode))
    {
      close (f);
      return kiln_error_make (err, 0, "OCI layout '%s': blob %s is not a regular file", l->path, digest);
    }
  *fd = f;
  *size = st.st_size;
  return 0;
}

int
ocilayout_read_blob (ocilayout *l, const char *digest, size_t max, char **data, size_t *len, kiln_error **err)
{
  autoclose int fd = -1;
  int64_t size;
  if (ocilayout_open_blob (l, digest, &fd, &size, err) < 0)
    return -1;
  autofree char *buf = NULL;
  size_t n = 0;
  if (fs_read_fd (fd, max, &buf, &n, err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s': blob %s", l->path, digest);
  char got[DIGEST_STRING_SIZE];
  digest_buffer (buf, n, got);
  if (strcmp (got, digest) != 0)
    return kiln_error_make (err, 0, "OCI layout '%s': blob %s has digest %s (corrupted)", l->path, digest, got);
  *data = steal_pointer (&buf);
  *len = n;
  return 0;
}
