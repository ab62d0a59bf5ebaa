/* fetch.c - registry image into the store, pipelined (see fetch.h). */
#include "store/fetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "registry/manifest.h"
#include "registry/platform.h"
#include "registry/pull.h"
#include "store/extract.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strbuf.h"

/* Bytes buffered between a download thread and its extraction thread: big
 * enough to absorb bursts of either side, small enough for 3 layers at
 * once. */
#define FEED_CAPACITY (4u * 1024 * 1024)

/* ---- bounded byte queue: download thread -> extraction thread ------------ */

typedef struct feed
{
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned char *buf;
  size_t head, len;  /* ring: data at [head, head+len) mod FEED_CAPACITY */
  bool eof;          /* producer finished, blob verified */
  bool aborted;      /* producer gave up: the reader must fail */
  bool reader_done;  /* reader returned: further data is dropped */
} feed;

static void
feed_init (feed *q)
{
  pthread_mutex_init (&q->mu, NULL);
  pthread_cond_init (&q->cv, NULL);
  q->buf = xmalloc (FEED_CAPACITY);
}

static void
feed_destroy (feed *q)
{
  pthread_mutex_destroy (&q->mu);
  pthread_cond_destroy (&q->cv);
  free (q->buf);
}

/* Copy data in, blocking while the queue is full. Returns false if the
 * reader is gone (the data was dropped). */
static bool
feed_put (feed *q, const unsigned char *data, size_t len)
{
  pthread_mutex_lock (&q->mu);
  while (len > 0 && !q->reader_done)
    {
      while (q->len == FEED_CAPACITY && !q->reader_done)
        pthread_cond_wait (&q->cv, &q->mu);
      if (q->reader_done)
        break;
      size_t tail = (q->head + q->len) % FEED_CAPACITY;
      size_t room = FEED_CAPACITY - q->len;
      size_t contig = FEED_CAPACITY - tail;
      size_t n = len < room ? len : room;
      if (n > contig)
        n = contig;
      memcpy (q->buf + tail, data, n);
      q->len += n;
      data += n;
      len -= n;
      pthread_cond_broadcast (&q->cv);
    }
  bool alive = !q->reader_done;
  pthread_mutex_unlock (&q->mu);
  return alive;
}

static void
feed_close (feed *q, bool ok)
{
  pthread_mutex_lock (&q->mu);
  if (ok)
    q->eof = true;
  else
    q->aborted = true;
  pthread_cond_broadcast (&q->cv);
  pthread_mutex_unlock (&q->mu);
}

static void
feed_reader_done (feed *q)
{
  pthread_mutex_lock (&q->mu);
  q->reader_done = true;
  pthread_cond_broadcast (&q->cv);
  pthread_mutex_unlock (&q->mu);
}

/* extract_read_fn over a feed. */
static ssize_t
feed_read (void *ctx, void *buf, size_t len, kiln_error **err)
{
  feed *q = ctx;
  pthread_mutex_lock (&q->mu);
  while (q->len == 0 && !q->eof && !q->aborted)
    pthread_cond_wait (&q->cv, &q->mu);
  if (q->aborted)
    {
      pthread_mutex_unlock (&q->mu);
      return kiln_error_make (err, ECANCELED, "download interrupted");
    }
  size_t n = q->len < len ? q->len : len;
  size_t contig = FEED_CAPACITY - q->head;
  if (n > contig)
    n = contig;
  memcpy (buf, q->buf + q->head, n);
  q->head = (q->head + n) % FEED_CAPACITY;
  q->len -= n;
  pthread_cond_broadcast (&q->cv);
  pthread_mutex_unlock (&q->mu);
  return (ssize_t) n;
}

/* ---- fetch state --------------------------------------------------------- */

typedef struct layer_rec
{
  char digest[DIGEST_STRING_SIZE];
  char diff_id[DIGEST_STRING_SIZE];
  store_fetch_how how;
  bool extracted;
} layer_rec;

typedef struct fetch_ctx
{
  store *s;
  pthread_mutex_t mu;
  /* Set once the config is known (before any layer starts). */
  bool have_config;
  char config_digest[DIGEST_STRING_SIZE];
  char *config_media_type;
  char *config;
  size_t config_len;
  char **diff_ids;
  /* Per layer blob, filled by worker threads under mu. */
  layer_rec *recs;
  size_t n_recs;
  uint64_t downloaded;
  /* Image manifest (the index, if any, only goes to blobs/). */
  char *manifest;
  size_t manifest_len;
  bool lazy;            /* layers not in the store are recorded, not fetched */
} fetch_ctx;

typedef struct fetch_blob
{
  fetch_ctx *f;
  registry_blob_kind kind;
  char digest[DIGEST_STRING_SIZE];
  char *media_type;
  int64_t size;
  store_blob_writer *w;
  strbuf config;        /* config bytes (kept for parsing) */
  feed q;
  bool thread_started;
  pthread_t thread;
  int th_ret;           /* extraction result, valid once q.reader_done */
  bool deferred;        /* layer lock was busy: extract (or find) in blob_end */
  kiln_error *th_err;
  char diff_id[DIGEST_STRING_SIZE];
  bool existed;
  struct timespec t0;
} fetch_blob;

static void
fetch_ctx_free (fetch_ctx *f)
{
  pthread_mutex_destroy (&f->mu);
  free (f->config_media_type);
  free (f->config);
  strv_free (f->diff_ids);
  free (f->recs);
  free (f->manifest);
}

static void
short_digest (const char *digest, char out[20])
{
  snprintf (out, 20, "%.12s", strchr (digest, ':') ? strchr (digest, ':') + 1 : digest);
}

static double
elapsed (const struct timespec *t0)
{
  struct timespec t1;
  clock_gettime (CLOCK_MONOTONIC, &t1);
  return (double) (t1.tv_sec - t0->tv_sec) + (double) (t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
record_layer (fetch_ctx *f, const char *digest, const char *diff_id, store_fetch_how how, bool extracted)
{
  pthread_mutex_lock (&f->mu);
  f->recs = xreallocarray (f->recs, f->n_recs + 1, sizeof *f->recs);
  layer_rec *r = &f->recs[f->n_recs++];
  snprintf (r->digest, sizeof r->digest, "%s", digest);
  snprintf (r->diff_id, sizeof r->diff_id, "%s", diff_id);
  r->how = how;
  r->extracted = extracted;
  pthread_mutex_unlock (&f->mu);
}

static bool
config_has_diff_id (fetch_ctx *f, const char *diff_id)
{
  for (char **p = f->diff_ids; p && *p; p++)
    if (strcmp (*p, diff_id) == 0)
      return true;
  return false;
}

/* Parse the config far enough to know its diffIDs; keep the bytes. */
static int
set_config (fetch_ctx *f, const manifest_descriptor *d, char *data, size_t len, kiln_error **err)
{
  autojson json_value *root = NULL;
  if (json_parse (data, len, JSON_DEFAULT_MAX_SIZE, &root, err) < 0)
    return kiln_error_wrap (err, "image config %s", d->digest);
  if (!json_is_object (root))
    return kiln_error_make (err, EINVAL, "image config %s: not a JSON object", d->digest);
  json_value *ids = json_lookup (root, "rootfs", "diff_ids", NULL);
  autostrv char **v = NULL;
  if (ids == NULL || !json_is_array (ids))
    return kiln_error_make (err, EINVAL, "image config %s: no rootfs.diff_ids array", d->digest);
  if (json_to_strv (ids, "rootfs.diff_ids", &v, err) < 0)
    return kiln_error_wrap (err, "image config %s", d->digest);
  for (char **p = v; p && *p; p++)
    if (digest_validate (*p, err) < 0)
      return kiln_error_wrap (err, "image config %s: rootfs.diff_ids", d->digest);
  snprintf (f->config_digest, sizeof f->config_digest, "%s", d->digest);
  f->config_media_type = xstrdup (d->media_type);
  f->config = data;
  f->config_len = len;
  f->diff_ids = steal_pointer (&v);
  f->have_config = true;
  return 0;
}

/* Extract one layer under its lock (keyed by blob digest, like
 * extract_to_store), refusing to publish a layer whose diffID the image
 * config does not list. With busy non-NULL the lock is only tried: if
 * someone else holds it (extracting the same layer), *busy is set and
 * nothing is read. */
static int
extract_layer_checked (fetch_ctx *f, const char *blob_digest, extract_read_fn read_fn, void *rctx,
                       char diff_id[DIGEST_STRING_SIZE], bool *existed, bool *busy, kiln_error **err)
{
  store *s = f->s;
  *existed = false;
  autoclose int lock = -1;
  if (busy)
    {
      *busy = false;
      autoerror kiln_error *lerr = NULL;
      lock = store_trylock_layer (s, blob_digest, &lerr);
      if (lock < 0 && lerr->status == EAGAIN)
        {
          *busy = true;
          return 0;
        }
      if (lock < 0)
        {
          *err = steal_pointer (&lerr);
          return kiln_error_wrap (err, "locking layer %s", blob_digest);
        }
    }
  else if ((lock = store_lock_layer (s, blob_digest, err)) < 0)
    return kiln_error_wrap (err, "locking layer %s", blob_digest);
  int r = store_layer_for_blob (s, blob_digest, diff_id, err);
  if (r < 0)
    return -1;
  if (r > 0)
    {
      *existed = true;
      return 0;
    }
  autofree char *tmp = NULL;
  autoclose int dfd = -1;
  if (store_mktemp (s, "layer", &tmp, &dfd, err) < 0)
    return -1;
  extract_result res;
  extract_opts o = { .max_entries = s->max_layer_entries };
  if (extract_layer (dfd, read_fn, rctx, &o, &res, err) < 0)
    {
      store_rmtemp (s, tmp);
      return -1;
    }
  if (strcmp (res.blob_digest, blob_digest) != 0)
    {
      store_rmtemp (s, tmp);
      return kiln_error_make (err, EINVAL, "blob digest mismatch: content hashes to %s", res.blob_digest);
    }
  if (!config_has_diff_id (f, res.diff_id))
    {
      store_rmtemp (s, tmp);
      return kiln_error_make (err, EINVAL, "diffID %s is not in the image config's rootfs.diff_ids", res.diff_id);
    }
  if (store_publish_layer (s, tmp, res.diff_id, blob_digest, err) < 0)
    {
      store_rmtemp (s, tmp);
      return -1;
    }
  memcpy (diff_id, res.diff_id, DIGEST_STRING_SIZE);
  return 0;
}

static void *
extract_thread (void *arg)
{
  fetch_blob *b = arg;
  kiln_error *err = NULL;
  /* If another process or thread is extracting this layer, do not wait for
   * it here: the download would stall behind a full queue for as long as
   * that takes. Keep downloading the blob; blob_end finishes the job. */
  int r = extract_layer_checked (b->f, b->digest, feed_read, &b->q, b->diff_id, &b->existed, &b->deferred, &err);
  pthread_mutex_lock (&b->q.mu);
  b->th_ret = r;
  b->th_err = err;
  pthread_mutex_unlock (&b->q.mu);
  feed_reader_done (&b->q);
  return NULL;
}

static void
log_layer (const manifest_descriptor *d, const char *what, double secs)
{
  char sd[20];
  short_digest (d->digest, sd);
  double mb = (double) d->size / 1e6;
  if (secs >= 0)
    log_info ("layer %s %.1f MB %s in %.2f s (%.1f MB/s)", sd, mb, what, secs, secs > 0 ? mb / secs : 0.0);
  else
    log_info ("layer %s %.1f MB %s", sd, mb, what);
}

/* Layer blobs this process downloaded (store_fetch_downloaded). */
static uint64_t layers_downloaded, layer_bytes_downloaded;

void
store_fetch_downloaded (uint64_t *layers, uint64_t *bytes)
{
  *layers = __atomic_load_n (&layers_downloaded, __ATOMIC_RELAXED);
  *bytes = __atomic_load_n (&layer_bytes_downloaded, __ATOMIC_RELAXED);
}

/* ---- consumer callbacks -------------------------------------------------- */

static int
fetch_have_blob (void *ctx, const manifest_descriptor *d, kiln_error **err)
{
  fetch_ctx *f = ctx;
  store *s = f->s;
  int64_t size;
  int r = store_blob_size (s, d->digest, &size, err);
  if (r < 0)
    return -1;
  bool blob_ok = r > 0 && size == d->size;
  if (!f->have_config)
    {
      /* The config always comes first, from the calling thread. */
      if (!blob_ok)
        return 0;
      autofree char *data = NULL;
      size_t len;
      autoerror kiln_error *gerr = NULL;
      if (store_get_blob (s, d->digest, JSON_DEFAULT_MAX_SIZE, &data, &len, &gerr) < 0)
        {
          log_warn ("stored config %s unreadable (%s); downloading it again", d->digest, gerr->msg);
          return 0;
        }
      if (set_config (f, d, data, len, err) < 0)
        return -1;
      steal_pointer (&data);
      return 1;
    }
  if (!blob_ok && f->lazy)
    {
      /* Known by its digest only: the diffID comes from the config by
       * position (result_layers), and is verified when it is fetched. */
      record_layer (f, d->digest, "", STORE_FETCH_LAZY, false);
      log_layer (d, "not fetched (needed only if a step or an output reads it)", -1);
      return 1;
    }
  if (!blob_ok)
    return 0;
  char diff_id[DIGEST_STRING_SIZE];
  r = store_layer_for_blob (s, d->digest, diff_id, err);
  if (r < 0)
    return -1;
  if (r > 0)
    {
      record_layer (f, d->digest, diff_id, STORE_FETCH_CACHED, false);
      log_layer (d, "cached", -1);
      return 1;
    }
  /* The blob is here but its layer is not (pruned, or stored by a push):
   * extract from the stored blob instead of the network, once the blob is
   * known to be intact (a damaged one is dropped and downloaded again, so
   * extraction errors below are real ones). */
  autoclose int fd = store_open_blob (s, d->digest, err);
  if (fd < 0)
    return -1;
  struct timespec t0;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  char got[DIGEST_STRING_SIZE];
  uint64_t n;
  if (digest_fd (fd, got, &n, err) < 0)
    return kiln_error_wrap (err, "stored blob %s", d->digest);
  if (strcmp (got, d->digest) != 0)
    {
      log_warn ("stored blob %s is damaged (hashes to %s); downloading it again", d->digest, got);
      autofree char *rel = xasprintf ("blobs/sha256/%s", digest_hex (d->digest));
      if (unlinkat (s->rootfd, rel, 0) < 0 && errno != ENOENT)
        return kiln_error_make (err, errno, "remove damaged blob '%s/%s'", s->root, rel);
      return 0;
    }
  if (lseek (fd, 0, SEEK_SET) < 0)
    return kiln_error_make (err, errno, "seek blob %s", d->digest);
  bool existed;
  if (extract_layer_checked (f, d->digest, extract_read_fd, &fd, diff_id, &existed, NULL, err) < 0)
    return kiln_error_wrap (err, "layer %s (from the stored blob)", d->digest);
  record_layer (f, d->digest, diff_id, existed ? STORE_FETCH_CACHED : STORE_FETCH_LOCAL_BLOB, !existed);
  log_layer (d, existed ? "cached" : "extracted from stored blob", existed ? -1 : elapsed (&t0));
  return 1;
}

static void
fetch_blob_free (fetch_blob *b)
{
  if (b->thread_started)
    feed_destroy (&b->q);
  kiln_error_free (b->th_err);
  strbuf_release (&b->config);
  free (b->media_type);
  free (b);
}

static int
fetch_blob_begin (void *ctx, registry_blob_kind kind, const manifest_descriptor *d, void **out, kiln_error **err)
{
  fetch_ctx *f = ctx;
  fetch_blob *b = xzalloc (sizeof *b);
  b->f = f;
  b->kind = kind;
  b->size = d->size;
  b->media_type = xstrdup (d->media_type);
  strbuf_init (&b->config, 0);
  snprintf (b->digest, sizeof b->digest, "%s", d->digest);
  clock_gettime (CLOCK_MONOTONIC, &b->t0);
  if (store_blob_begin (f->s, &b->w, err) < 0)
    {
      fetch_blob_free (b);
      return -1;
    }
  if (kind == REGISTRY_BLOB_LAYER)
    {
      if (!f->have_config)
        {
          store_blob_abort (b->w);
          fetch_blob_free (b);
          return kiln_error_make (err, 0, "internal: layer %s before the image config", d->digest);
        }
      feed_init (&b->q);
      int e = pthread_create (&b->thread, NULL, extract_thread, b);
      if (e != 0)
        {
          feed_destroy (&b->q);
          store_blob_abort (b->w);
          fetch_blob_free (b);
          return kiln_error_make (err, e, "start extraction thread for layer %s", d->digest);
        }
      b->thread_started = true;
    }
  *out = b;
  return 0;
}

static int
fetch_blob_data (void *blob, const void *data, size_t len, kiln_error **err)
{
  fetch_blob *b = blob;
  if (store_blob_write (b->w, data, len, err) < 0)
    return -1;
  if (b->kind == REGISTRY_BLOB_CONFIG)
    {
      if (b->config.len + len > JSON_DEFAULT_MAX_SIZE)
        return kiln_error_make (err, EFBIG, "image config %s larger than %u bytes", b->digest,
                                (unsigned) JSON_DEFAULT_MAX_SIZE);
      strbuf_add (&b->config, data, len);
      return 0;
    }
  if (!feed_put (&b->q, data, len))
    {
      /* The extractor stopped early: fine if the layer was already there
       * (the blob is still kept), fatal if extraction failed. */
      pthread_mutex_lock (&b->q.mu);
      int r = b->th_ret;
      kiln_error *e = steal_pointer (&b->th_err);
      pthread_mutex_unlock (&b->q.mu);
      if (r < 0)
        {
          if (e)
            *err = e;
          else
            kiln_error_make (err, 0, "extraction failed");
          return kiln_error_wrap (err, "extracting layer %s into store '%s'", b->digest, b->f->s->root);
        }
    }
  return 0;
}

static int
fetch_blob_end (void *blob, bool ok, kiln_error **err)
{
  fetch_blob *b = blob;
  fetch_ctx *f = b->f;
  int ret = 0;
  if (b->thread_started)
    {
      feed_close (&b->q, ok);
      pthread_join (b->thread, NULL);
      if (ok && b->th_ret < 0)
        {
          *err = steal_pointer (&b->th_err);
          ret = kiln_error_wrap (err, "extracting layer %s into store '%s'", b->digest, f->s->root);
        }
    }
  if (ok && ret == 0 && b->deferred)
    {
      /* The complete, verified blob is in the temp file: wait for the
       * other extractor, then extract from the file if it did not publish
       * the layer after all. */
      autoclose int rfd = store_blob_reopen (b->w, err);
      if (rfd < 0
          || extract_layer_checked (f, b->digest, extract_read_fd, &rfd, b->diff_id, &b->existed, NULL, err) < 0)
        ret = kiln_error_wrap (err, "extracting layer %s into store '%s'", b->digest, f->s->root);
    }
  if (!ok || ret < 0)
    {
      store_blob_abort (b->w);
      fetch_blob_free (b);
      return ret < 0 ? ret : 0;
    }
  uint64_t n = store_blob_written (b->w);
  if (store_blob_commit (b->w, b->digest, NULL, err) < 0)
    {
      fetch_blob_free (b);
      return kiln_error_wrap (err, "storing blob %s", b->digest);
    }
  pthread_mutex_lock (&f->mu);
  f->downloaded += n;
  pthread_mutex_unlock (&f->mu);
  if (b->kind == REGISTRY_BLOB_LAYER)
    {
      __atomic_add_fetch (&layers_downloaded, 1, __ATOMIC_RELAXED);
      __atomic_add_fetch (&layer_bytes_downloaded, n, __ATOMIC_RELAXED);
    }
  if (b->kind == REGISTRY_BLOB_CONFIG)
    {
      manifest_descriptor d = { .digest = b->digest, .size = b->size, .media_type = b->media_type };
      size_t len;
      char *data = strbuf_detach (&b->config, &len);
      if (set_config (f, &d, data, len, err) < 0)
        {
          free (data);
          fetch_blob_free (b);
          return -1;
        }
    }
  else
    {
      record_layer (f, b->digest, b->diff_id, STORE_FETCH_DOWNLOADED, !b->existed);
      manifest_descriptor d = { .digest = b->digest, .size = b->size };
      log_layer (&d, b->existed ? "downloaded (layer already extracted)" : "downloaded", elapsed (&b->t0));
    }
  fetch_blob_free (b);
  return 0;
}

static int
fetch_manifest (void *ctx, const char *data, size_t len, const char *media_type, const char *digest,
                kiln_error **err)
{
  fetch_ctx *f = ctx;
  if (!store_has_blob (f->s, digest) && store_put_blob (f->s, digest, data, len, err) < 0)
    return kiln_error_wrap (err, "storing manifest %s", digest);
  if (media_type && strcmp (media_type, MEDIA_OCI_INDEX) != 0 && strcmp (media_type, MEDIA_DOCKER_LIST) != 0)
    {
      free (f->manifest);
      f->manifest = xmalloc (len + 1);
      memcpy (f->manifest, data, len);
      f->manifest[len] = '\0';
      f->manifest_len = len;
    }
  return 0;
}

static const registry_pull_consumer store_consumer = {
  .have_blob = fetch_have_blob,
  .blob_begin = fetch_blob_begin,
  .blob_data = fetch_blob_data,
  .blob_end = fetch_blob_end,
  .manifest = fetch_manifest,
};

/* ---- result -------------------------------------------------------------- */

void
store_fetch_result_clear (store_fetch_result *r)
{
  free (r->manifest_media_type);
  free (r->manifest);
  free (r->config_media_type);
  free (r->config);
  for (size_t i = 0; i < r->n_layers; i++)
    free (r->layers[i].media_type);
  free (r->layers);
  free (r->os);
  free (r->arch);
  free (r->variant);
  free (r->ref_name);
  memset (r, 0, sizeof *r);
}

char *
store_fetch_ref_name (const registry_ref *ref, const char *os, const char *arch, const char *variant)
{
  platform_default (&os, &arch, &variant);
  autofree char *full = registry_ref_string (ref);
  return xasprintf ("image/%s@%s/%s%s%s", full, os, arch, variant ? "/" : "", variant ? variant : "");
}

/* Platform from the config (falling back to what was asked for). */
static void
result_platform (store_fetch_result *out, const char *config, size_t len, const char *os, const char *arch,
                 const char *variant)
{
  autojson json_value *root = NULL;
  autoerror kiln_error *err = NULL;
  const char *cos = NULL, *carch = NULL, *cvar = NULL;
  if (json_parse (config, len, JSON_DEFAULT_MAX_SIZE, &root, &err) == 0 && json_is_object (root))
    {
      cos = json_get_string (root, "os");
      carch = json_get_string (root, "architecture");
      cvar = json_get_string (root, "variant");
    }
  platform_default (&os, &arch, &variant);
  out->os = xstrdup (cos ? cos : os);
  out->arch = xstrdup (carch ? carch : arch);
  if (cvar || carch)
    out->variant = cvar && *cvar ? xstrdup (cvar) : NULL;
  else
    out->variant = variant ? xstrdup (variant) : NULL;
}

/* Fill the layer list from the manifest, matching the diffIDs the fetch
 * recorded against the config's rootfs.diff_ids position by position. */
static int
result_layers (store_fetch_result *out, const manifest *m, char **diff_ids, const layer_rec *recs, size_t n_recs,
               kiln_error **err)
{
  size_t n_ids = strv_len (diff_ids);
  if (n_ids != m->n_layers)
    return kiln_error_make (err, EINVAL, "manifest lists %zu layers but the image config has %zu diffIDs",
                            m->n_layers, n_ids);
  out->layers = xcalloc (m->n_layers ? m->n_layers : 1, sizeof *out->layers);
  out->n_layers = m->n_layers;
  for (size_t i = 0; i < m->n_layers; i++)
    {
      const manifest_descriptor *d = &m->layers[i];
      store_fetch_layer *l = &out->layers[i];
      snprintf (l->digest, sizeof l->digest, "%s", d->digest);
      l->media_type = xstrdup (d->media_type);
      l->size = d->size;
      const layer_rec *rec = NULL;
      for (size_t j = 0; j < n_recs && !rec; j++)
        if (strcmp (recs[j].digest, d->digest) == 0)
          rec = &recs[j];
      if (rec == NULL)
        return kiln_error_make (err, 0, "internal: layer %zu (%s) was not fetched", i + 1, d->digest);
      if (rec->how == STORE_FETCH_LAZY)
        {
          snprintf (l->diff_id, sizeof l->diff_id, "%s", diff_ids[i]);
          l->how = STORE_FETCH_LAZY;
          continue;
        }
      if (strcmp (rec->diff_id, diff_ids[i]) != 0)
        return kiln_error_make (err, EINVAL, "layer %zu (%s): diffID %s does not match the image config's %s", i + 1,
                                d->digest, rec->diff_id, diff_ids[i]);
      snprintf (l->diff_id, sizeof l->diff_id, "%s", rec->diff_id);
      l->how = rec->how;
      l->extracted = rec->extracted;
    }
  return 0;
}

static int
fetch_image (store *s, registry_client *c, const registry_ref *ref, const char *os, const char *arch,
             const char *variant, bool lazy, store_fetch_result *out, kiln_error **err)
{
  memset (out, 0, sizeof *out);
  fetch_ctx f = { .s = s, .lazy = lazy };
  pthread_mutex_init (&f.mu, NULL);
  registry_pull_result pr;
  memset (&pr, 0, sizeof pr);
  store_fetch_result r = { 0 };
  autofree char *full = registry_ref_string (ref);
  int ret = -1;
  if (registry_pull (c, ref, os, arch, variant, &store_consumer, &f, &pr, err) < 0)
    {
      kiln_error_wrap (err, "fetching '%s' into the store", full);
      goto out;
    }
  if (!f.have_config || f.manifest == NULL)
    {
      kiln_error_make (err, 0, "fetching '%s': internal: no config or manifest received", full);
      goto out;
    }
  if (result_layers (&r, pr.manifest, f.diff_ids, f.recs, f.n_recs, err) < 0)
    {
      kiln_error_wrap (err, "registry '%s', repository '%s': image '%s'", ref->domain, ref->path, full);
      goto out;
    }
  snprintf (r.manifest_digest, sizeof r.manifest_digest, "%s", pr.manifest_digest);
  r.manifest_media_type = xstrdup (pr.media_type);
  r.manifest = steal_pointer (&f.manifest);
  r.manifest_len = f.manifest_len;
  if (pr.index_digest)
    snprintf (r.index_digest, sizeof r.index_digest, "%s", pr.index_digest);
  snprintf (r.config_digest, sizeof r.config_digest, "%s", f.config_digest);
  r.config_media_type = xstrdup (pr.manifest->config.media_type ? pr.manifest->config.media_type : "");
  r.config = steal_pointer (&f.config);
  r.config_len = f.config_len;
  result_platform (&r, r.config, r.config_len, os, arch, variant);
  r.bytes_downloaded = f.downloaded;
  r.ref_name = store_fetch_ref_name (ref, os, arch, variant);
  if (store_set_ref (s, r.ref_name, r.manifest_digest, err) < 0)
    {
      kiln_error_wrap (err, "recording '%s'", r.ref_name);
      goto out;
    }
  *out = r;
  memset (&r, 0, sizeof r);
  ret = 0;
out:
  store_fetch_result_clear (&r);
  registry_pull_result_clear (&pr);
  fetch_ctx_free (&f);
  return ret;
}

int
store_fetch_image (store *s, registry_client *c, const registry_ref *ref, const char *os, const char *arch,
                   const char *variant, store_fetch_result *out, kiln_error **err)
{
  return fetch_image (s, c, ref, os, arch, variant, false, out, err);
}

int
store_fetch_image_lazy (store *s, registry_client *c, const registry_ref *ref, const char *os, const char *arch,
                        const char *variant, store_fetch_result *out, kiln_error **err)
{
  return fetch_image (s, c, ref, os, arch, variant, true, out, err);
}

/* ---- offline lookup ------------------------------------------------------ */

int
store_image_lookup (store *s, const registry_ref *ref, const char *os, const char *arch, const char *variant,
                    store_fetch_result *out, kiln_error **err)
{
  memset (out, 0, sizeof *out);
  autofree char *name = store_fetch_ref_name (ref, os, arch, variant);
  char mdigest[DIGEST_STRING_SIZE];
  int r = store_get_ref (s, name, mdigest, err);
  if (r <= 0)
    return r;
  if (!store_has_blob (s, mdigest))
    return 0;
  store_fetch_result res = { 0 };
  res.ref_name = steal_pointer (&name);
  int ret = -1;
  automanifest manifest *m = NULL;
  if (store_get_blob (s, mdigest, REGISTRY_MANIFEST_MAX_SIZE, &res.manifest, &res.manifest_len, err) < 0
      || manifest_parse (res.manifest, res.manifest_len, NULL, &m, err) < 0)
    {
      kiln_error_wrap (err, "stored manifest of '%s'", res.ref_name);
      goto out;
    }
  if (manifest_kind_is_index (m->kind))
    {
      kiln_error_make (err, EINVAL, "stored manifest %s of '%s' is an index", mdigest, res.ref_name);
      goto out;
    }
  snprintf (res.manifest_digest, sizeof res.manifest_digest, "%s", mdigest);
  res.manifest_media_type = xstrdup (m->media_type);
  if (!store_has_blob (s, m->config.digest))
    {
      ret = 0;
      goto out;
    }
  if (store_get_blob (s, m->config.digest, JSON_DEFAULT_MAX_SIZE, &res.config, &res.config_len, err) < 0)
    goto out;
  snprintf (res.config_digest, sizeof res.config_digest, "%s", m->config.digest);
  res.config_media_type = xstrdup (m->config.media_type);
  fetch_ctx f = { .s = s };
  pthread_mutex_init (&f.mu, NULL);
  char *copy = xmalloc (res.config_len + 1);
  memcpy (copy, res.config, res.config_len);
  copy[res.config_len] = '\0';
  r = set_config (&f, &m->config, copy, res.config_len, err);
  if (r < 0)
    free (copy);
  if (r == 0)
    {
      bool complete = true;
      for (size_t i = 0; i < m->n_layers && complete; i++)
        {
          char diff[DIGEST_STRING_SIZE];
          int k = store_layer_for_blob (s, m->layers[i].digest, diff, err);
          if (k < 0)
            r = -1;
          if (k <= 0)
            complete = false;
          else
            record_layer (&f, m->layers[i].digest, diff, STORE_FETCH_CACHED, false);
        }
      if (r == 0 && complete)
        r = result_layers (&res, m, f.diff_ids, f.recs, f.n_recs, err) < 0 ? -1 : 1;
    }
  fetch_ctx_free (&f);
  if (r < 0)
    goto out;
  if (r == 0)
    {
      ret = 0;
      goto out;
    }
  result_platform (&res, res.config, res.config_len, os, arch, variant);
  *out = res;
  memset (&res, 0, sizeof res);
  ret = 1;
out:
  store_fetch_result_clear (&res);
  return ret;
}

/* ---- push source ---------------------------------------------------------- */

static int
store_open_blob_cb (void *ctx, const char *digest, int *fd, int64_t *size, kiln_error **err)
{
  store *s = ctx;
  int bfd = store_open_blob (s, digest, err);
  if (bfd < 0)
    return -1;
  struct stat st;
  if (fstat (bfd, &st) < 0)
    {
      int e = errno;
      close (bfd);
      return kiln_error_make (err, e, "stat blob %s", digest);
    }
  if (!S_ISREG (st.st_mode))
    {
      close (bfd);
      return kiln_error_make (err, EINVAL, "blob %s in '%s' is not a regular file", digest, s->root);
    }
  *fd = bfd;
  *size = st.st_size;
  return 0;
}

static const registry_push_source store_source = { .open_blob = store_open_blob_cb };

const registry_push_source *
store_push_source (void)
{
  return &store_source;
}

static bool
is_docker_hub (const char *domain)
{
  return strcmp (domain, REGISTRY_DOCKER_HUB) == 0 || strcmp (domain, "index.docker.io") == 0
         || strcmp (domain, REGISTRY_DOCKER_HUB_API) == 0;
}

/* The host mirror entry m serves domain from, or NULL: "HOST" mirrors
 * docker.io, "SRC=HOST" (kaniko's --registry-map) mirrors SRC. */
static char *
mirror_for (const char *m, const char *domain)
{
  const char *eq = strchr (m, '=');
  if (!eq)
    return is_docker_hub (domain) ? xstrdup (m) : NULL;
  autofree char *src = xstrndup (m, (size_t) (eq - m));
  if (strcmp (src, domain) == 0 || (is_docker_hub (src) && is_docker_hub (domain)))
    return xstrdup (eq + 1);
  return NULL;
}

int
store_fetch_image_mirrored (store *s, const registry_options *reg, char *const *mirrors, const registry_ref *ref,
                            const char *os, const char *arch, const char *variant, bool lazy,
                            store_fetch_result *out, kiln_error **err)
{
  bool mirrored = false;
  for (char *const *m = mirrors; m && *m; m++)
    {
      autofree char *host = mirror_for (*m, ref->domain);
      if (!host)
        continue;
      mirrored = true;
      autoref registry_ref *mref = registry_ref_dup (ref);
      free (mref->domain);
      mref->domain = xstrdup (host);
      autoclient registry_client *mc = NULL;
      kiln_error *merr = NULL;
      autofree char *full = registry_ref_string (ref);
      log_info ("pulling %s from mirror %s", full, host);
      if (registry_client_new (reg, host, &mc, &merr) >= 0
          && fetch_image (s, mc, mref, os, arch, variant, lazy, out, &merr) >= 0)
        {
          autofree char *name = store_fetch_ref_name (ref, os, arch, variant);
          if (store_set_ref (s, name, out->manifest_digest, err) < 0)
            {
              store_fetch_result_clear (out);
              return kiln_error_wrap (err, "recording '%s'", name);
            }
          free (out->ref_name);
          out->ref_name = steal_pointer (&name);
          return 0;
        }
      autofree char *msg = kiln_error_string (merr);
      log_warn ("mirror %s failed (%s); trying the next source", host, msg);
      kiln_error_free (merr);
    }
  if (mirrored && reg->mirrors_only)
    {
      autofree char *full = registry_ref_string (ref);
      return kiln_error_make (err, 0, "pulling '%s': every mirror failed and --skip-default-registry-fallback "
                              "forbids pulling from '%s' itself", full, ref->domain);
    }
  autoclient registry_client *c = NULL;
  if (registry_client_new (reg, ref->domain, &c, err) < 0)
    return -1;
  return fetch_image (s, c, ref, os, arch, variant, lazy, out, err);
}

int
store_parse_pull_policy (const char *s, store_pull_policy *out, kiln_error **err)
{
  if (strcmp (s, "always") == 0 || strcmp (s, "true") == 0)
    *out = STORE_PULL_ALWAYS;
  else if (strcmp (s, "missing") == 0)
    *out = STORE_PULL_MISSING;
  else if (strcmp (s, "never") == 0)
    *out = STORE_PULL_NEVER;
  else
    return kiln_error_make (err, 0, "--pull '%s': expected always, missing or never", s);
  return 0;
}
