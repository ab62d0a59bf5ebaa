/* layer_writer.c - deterministic PAX tar + parallel gzip / zstd + digests in
 * one pass (see layer_writer.h). */
#include "store/layer_writer.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define CHUNK (128 * 1024)
#define DICT (32 * 1024)

typedef struct chunk
{
  struct chunk *next;
  uint64_t seq;
  unsigned char *in;
  size_t in_len;
  unsigned char *dict;
  size_t dict_len;
  unsigned char *out;
  size_t out_len;
  uint32_t crc;
  bool last, claimed, compressed, hashed;
} chunk;

typedef struct pipeline
{
  pthread_mutex_t mu;
  pthread_cond_t cv;
  chunk *head, *tail;
  size_t inflight, max_inflight;
  bool producing_done;
  bool failed;
  int err_status;
  char *err_msg;
  layer_compression comp;
  int level;
  int out_fd;
  digest_ctx *diff, *blob;
  uint64_t diff_size, blob_size;
  uint64_t next_seq, next_hash;
  chunk *cur;
  unsigned char lastdict[DICT];
  size_t lastdict_len;
  uint32_t crc;
  uint64_t total_in;
  ZSTD_CCtx *zc;
  int threads;
} pipeline;

static void
pipe_fail (pipeline *p, int status, const char *msg)
{
  /* called with p->mu held */
  if (!p->failed)
    {
      p->failed = true;
      p->err_status = status;
      p->err_msg = xstrdup (msg);
    }
  pthread_cond_broadcast (&p->cv);
}

static void
chunk_free (chunk *c)
{
  free (c->in);
  free (c->dict);
  free (c->out);
  free (c);
}

/* A worker's deflate engine: ISA-L for gzip levels 1-3, zlib for 0 and 4-9
 * (see layer_writer.h). Either way every chunk is compressed from a reset
 * state with the previous 32 KiB as dictionary, so a chunk's bytes depend
 * only on its input and dictionary, never on which worker took it. */
typedef struct deflater
{
  bool isal;
  z_stream z;
  struct isal_zstream is;
  unsigned char *level_buf;
} deflater;

static bool
isal_level (int level)
{
  return level >= 1 && level <= ISAL_DEF_MAX_LEVEL;
}

static int
effective_level (const layer_writer_opts *o)
{
  if (o->level >= 0)
    return o->level;
  return o->compression == LAYER_COMPRESS_ZSTD ? 3 : LAYER_WRITER_GZIP_DEFAULT_LEVEL;
}

const char *
layer_writer_encoder (const layer_writer_opts *opts, int *level)
{
  switch (opts->compression)
    {
    case LAYER_COMPRESS_GZIP:
      *level = effective_level (opts);
      return isal_level (*level) ? "isa-l" : "zlib";
    case LAYER_COMPRESS_ZSTD:
      *level = effective_level (opts);
      return "zstd";
    case LAYER_COMPRESS_NONE:
      break;
    }
  *level = 0;
  return "none";
}

static int
deflater_init (deflater *d, int level)
{
  memset (d, 0, sizeof *d);
  d->isal = isal_level (level);
  if (!d->isal)
    return deflateInit2 (&d->z, level, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK ? 0 : -1;
  isal_deflate_init (&d->is);
  d->is.level = level;
  d->is.level_buf_size = level == 1 ? ISAL_DEF_LVL1_DEFAULT
                         : level == 2 ? ISAL_DEF_LVL2_DEFAULT
                                      : ISAL_DEF_LVL3_DEFAULT;
  d->level_buf = xmalloc (d->is.level_buf_size);
  d->is.level_buf = d->level_buf;
  d->is.gzip_flag = IGZIP_DEFLATE; /* raw deflate: the output thread writes the gzip header and trailer */
  d->is.flush = SYNC_FLUSH;
  return 0;
}

static void
deflater_end (deflater *d)
{
  if (!d->isal)
    deflateEnd (&d->z);
  free (d->level_buf);
}

static int
compress_zlib (z_stream *z, chunk *c)
{
  if (deflateReset (z) != Z_OK)
    return -1;
  if (c->dict_len && deflateSetDictionary (z, c->dict, c->dict_len) != Z_OK)
    return -1;
  size_t cap = deflateBound (z, c->in_len) + 64;
  c->out = xmalloc (cap);
  z->next_in = c->in;
  z->avail_in = c->in_len;
  z->next_out = c->out;
  z->avail_out = cap;
  int r = deflate (z, c->last ? Z_FINISH : Z_SYNC_FLUSH);
  if ((c->last && r != Z_STREAM_END) || (!c->last && (r != Z_OK || z->avail_in != 0)))
    return -1;
  c->out_len = cap - z->avail_out;
  return 0;
}

static int
compress_isal (struct isal_zstream *s, chunk *c)
{
  /* reset keeps level, level_buf, flush and gzip_flag; the dictionary must
   * be set after it (set_dict is only valid on a fresh stream). */
  isal_deflate_reset (s);
  if (c->dict_len && isal_deflate_set_dict (s, c->dict, c->dict_len) != COMP_OK)
    return -1;
  s->end_of_stream = c->last;
  s->next_in = c->in;
  s->avail_in = c->in_len;
  /* Room for stored blocks plus block headers, so one call normally
   * finishes; should it not, the loop grows the buffer. Either way the
   * sizes depend on in_len only, so the calls (and bytes) are the same on
   * every run and for every thread count. */
  size_t cap = c->in_len + c->in_len / 8 + 1024, used = 0;
  c->out = xmalloc (cap);
  for (;;)
    {
      s->next_out = c->out + used;
      s->avail_out = cap - used;
      size_t before_in = s->avail_in, before_used = used;
      if (isal_deflate (s) != COMP_OK)
        return -1;
      used = cap - s->avail_out;
      /* Done: last chunk when the final block and its end are written
       * (ZSTATE_END); otherwise when all input is consumed and the sync
       * flush's empty stored block is out (back to ZSTATE_NEW_HDR). */
      if (c->last ? s->internal_state.state == ZSTATE_END
                  : s->avail_in == 0 && s->internal_state.state == ZSTATE_NEW_HDR)
        break;
      if (s->avail_out < 1024)
        {
          cap *= 2;
          c->out = xrealloc (c->out, cap);
        }
      else if (s->avail_in == before_in && used == before_used)
        return -1; /* no progress with room left: never loop forever */
    }
  c->out_len = used;
  return 0;
}

static int
compress_gzip_chunk (deflater *d, chunk *c)
{
  int r = d->isal ? compress_isal (&d->is, c) : compress_zlib (&d->z, c);
  if (r == 0)
    c->crc = crc32_gzip_refl (0, c->in, c->in_len);
  return r;
}

static void *
worker_main (void *arg)
{
  pipeline *p = arg;
  deflater d;
  if (deflater_init (&d, p->level) < 0)
    {
      pthread_mutex_lock (&p->mu);
      pipe_fail (p, ENOMEM, "initialising the deflate stream failed");
      pthread_mutex_unlock (&p->mu);
      return NULL;
    }
  pthread_mutex_lock (&p->mu);
  for (;;)
    {
      chunk *c = NULL;
      while (!p->failed)
        {
          for (c = p->head; c && c->claimed; c = c->next)
            ;
          if (c || p->producing_done)
            break;
          pthread_cond_wait (&p->cv, &p->mu);
        }
      if (p->failed || c == NULL)
        break;
      c->claimed = true;
      pthread_mutex_unlock (&p->mu);
      int r = compress_gzip_chunk (&d, c);
      pthread_mutex_lock (&p->mu);
      if (r < 0)
        pipe_fail (p, EIO, d.isal ? "isal_deflate failed" : "deflate failed");
      c->compressed = true;
      pthread_cond_broadcast (&p->cv);
    }
  pthread_mutex_unlock (&p->mu);
  deflater_end (&d);
  return NULL;
}

static void *
hasher_main (void *arg)
{
  pipeline *p = arg;
  pthread_mutex_lock (&p->mu);
  for (;;)
    {
      chunk *c = NULL;
      while (!p->failed)
        {
          for (c = p->head; c && c->seq != p->next_hash; c = c->next)
            ;
          if (c || (p->producing_done && p->next_hash == p->next_seq))
            break;
          pthread_cond_wait (&p->cv, &p->mu);
        }
      if (p->failed || c == NULL)
        break;
      pthread_mutex_unlock (&p->mu);
      digest_update (p->diff, c->in, c->in_len);
      pthread_mutex_lock (&p->mu);
      c->hashed = true;
      p->diff_size += c->in_len;
      p->next_hash++;
      pthread_cond_broadcast (&p->cv);
    }
  pthread_mutex_unlock (&p->mu);
  return NULL;
}

static int
out_write (pipeline *p, const void *buf, size_t len)
{
  autoerror kiln_error *err = NULL;
  if (len == 0)
    return 0;
  if (fs_write_all (p->out_fd, buf, len, &err) < 0)
    {
      pthread_mutex_lock (&p->mu);
      pipe_fail (p, err->status, "writing layer blob");
      pthread_mutex_unlock (&p->mu);
      return -1;
    }
  digest_update (p->blob, buf, len);
  p->blob_size += len;
  return 0;
}

static int
output_zstd (pipeline *p, chunk *c)
{
  size_t cap = ZSTD_CStreamOutSize ();
  autofree unsigned char *buf = xmalloc (cap);
  ZSTD_inBuffer in = { c->in, c->in_len, 0 };
  for (;;)
    {
      ZSTD_outBuffer out = { buf, cap, 0 };
      size_t r = ZSTD_compressStream2 (p->zc, &out, &in, c->last ? ZSTD_e_end : ZSTD_e_continue);
      if (ZSTD_isError (r))
        {
          pthread_mutex_lock (&p->mu);
          pipe_fail (p, EIO, ZSTD_getErrorName (r));
          pthread_mutex_unlock (&p->mu);
          return -1;
        }
      if (out_write (p, buf, out.pos) < 0)
        return -1;
      if (c->last ? r == 0 : in.pos == in.size)
        return 0;
    }
}

static void *
output_main (void *arg)
{
  pipeline *p = arg;
  if (p->comp == LAYER_COMPRESS_GZIP)
    {
      static const unsigned char hdr[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff };
      if (out_write (p, hdr, sizeof hdr) < 0)
        return NULL;
    }
  pthread_mutex_lock (&p->mu);
  for (;;)
    {
      chunk *c = NULL;
      while (!p->failed)
        {
          c = p->head;
          if (c && (p->comp != LAYER_COMPRESS_GZIP || c->compressed))
            break;
          if (c == NULL && p->producing_done)
            break;
          pthread_cond_wait (&p->cv, &p->mu);
        }
      if (p->failed || c == NULL)
        break;
      pthread_mutex_unlock (&p->mu);
      int r = 0;
      switch (p->comp)
        {
        case LAYER_COMPRESS_GZIP:
          r = out_write (p, c->out, c->out_len);
          p->crc = crc32_combine (p->crc, c->crc, c->in_len);
          p->total_in += c->in_len;
          if (r == 0 && c->last)
            {
              unsigned char tr[8];
              uint32_t isz = (uint32_t) p->total_in;
              for (int i = 0; i < 4; i++)
                {
                  tr[i] = (p->crc >> (8 * i)) & 0xff;
                  tr[4 + i] = (isz >> (8 * i)) & 0xff;
                }
              r = out_write (p, tr, 8);
            }
          break;
        case LAYER_COMPRESS_ZSTD:
          r = output_zstd (p, c);
          break;
        case LAYER_COMPRESS_NONE:
          r = out_write (p, c->in, c->in_len);
          break;
        }
      pthread_mutex_lock (&p->mu);
      if (r < 0)
        break;
      while (!c->hashed && !p->failed)
        pthread_cond_wait (&p->cv, &p->mu);
      if (p->failed)
        break;
      p->head = c->next;
      if (p->head == NULL)
        p->tail = NULL;
      p->inflight--;
      chunk_free (c);
      pthread_cond_broadcast (&p->cv);
    }
  pthread_mutex_unlock (&p->mu);
  return NULL;
}

/* Producer side: hand the current chunk to the pipeline. */
static int
submit (pipeline *p, bool last)
{
  chunk *c = p->cur;
  if (c == NULL)
    {
      c = xzalloc (sizeof *c);
      c->in = xmalloc (CHUNK);
    }
  p->cur = NULL;
  c->last = last;
  if (p->comp == LAYER_COMPRESS_GZIP && p->lastdict_len)
    {
      c->dict = xmemdup (p->lastdict, p->lastdict_len);
      c->dict_len = p->lastdict_len;
    }
  size_t keep = c->in_len < DICT ? c->in_len : DICT;
  if (c->in_len >= DICT || p->lastdict_len == 0)
    {
      memcpy (p->lastdict, c->in + c->in_len - keep, keep);
      p->lastdict_len = keep;
    }
  else
    {
      /* A short chunk (only the last one): dictionary no longer needed. */
      p->lastdict_len = 0;
    }
  pthread_mutex_lock (&p->mu);
  while (p->inflight >= p->max_inflight && !p->failed)
    pthread_cond_wait (&p->cv, &p->mu);
  if (p->failed)
    {
      pthread_mutex_unlock (&p->mu);
      chunk_free (c);
      return -1;
    }
  c->seq = p->next_seq++;
  if (p->tail)
    p->tail->next = c;
  else
    p->head = c;
  p->tail = c;
  p->inflight++;
  if (last)
    p->producing_done = true;
  pthread_cond_broadcast (&p->cv);
  pthread_mutex_unlock (&p->mu);
  return 0;
}

static la_ssize_t
archive_write_cb (struct archive *a, void *ctx, const void *buf, size_t len)
{
  pipeline *p = ctx;
  const unsigned char *s = buf;
  size_t left = len;
  while (left)
    {
      if (p->cur == NULL)
        {
          p->cur = xzalloc (sizeof *p->cur);
          p->cur->in = xmalloc (CHUNK);
        }
      size_t n = CHUNK - p->cur->in_len;
      if (n > left)
        n = left;
      memcpy (p->cur->in + p->cur->in_len, s, n);
      p->cur->in_len += n;
      s += n;
      left -= n;
      if (p->cur->in_len == CHUNK && submit (p, false) < 0)
        {
          archive_set_error (a, EIO, "layer pipeline failed");
          return -1;
        }
    }
  return len;
}

/* ---- ordering ----------------------------------------------------------- */

int
layer_writer_path_cmp (const char *a, const char *b)
{
  for (;; a++, b++)
    {
      unsigned ca = (unsigned char) *a, cb = (unsigned char) *b;
      if (ca == cb)
        {
          if (ca == 0)
            return 0;
          continue;
        }
      if (ca == 0)
        return -1;
      if (cb == 0)
        return 1;
      if (ca == '/')
        return -1;
      if (cb == '/')
        return 1;
      return ca < cb ? -1 : 1;
    }
}

typedef struct item
{
  const layer_change *c;
  char *path; /* normalised */
} item;

static int
item_cmp (const void *pa, const void *pb)
{
  const item *a = pa, *b = pb;
  int r = layer_writer_path_cmp (a->path, b->path);
  if (r)
    return r;
  return (int) a->c->kind - (int) b->c->kind;
}

bool
layer_writer_level_range (layer_compression c, int *min, int *max)
{
  switch (c)
    {
    case LAYER_COMPRESS_GZIP:
      *min = 0;
      *max = 9;
      return true;
    case LAYER_COMPRESS_ZSTD:
      *min = 1;
      *max = ZSTD_maxCLevel ();
      return true;
    case LAYER_COMPRESS_NONE:
      break;
    }
  return false;
}

int
layer_writer_check_level (layer_compression c, int level, kiln_error **err)
{
  int min, max;
  if (!layer_writer_level_range (c, &min, &max) || (level >= min && level <= max))
    return 0;
  return kiln_error_make (err, 0, "%s compression level %d out of range %d..%d",
                          c == LAYER_COMPRESS_GZIP ? "gzip" : "zstd", level, min, max);
}

static mode_t
type_bits (layer_index_type t)
{
  switch (t)
    {
    case LAYER_INDEX_REG:
      return AE_IFREG;
    case LAYER_INDEX_DIR:
      return AE_IFDIR;
    case LAYER_INDEX_SYMLINK:
      return AE_IFLNK;
    case LAYER_INDEX_CHR:
      return AE_IFCHR;
    case LAYER_INDEX_BLK:
      return AE_IFBLK;
    case LAYER_INDEX_FIFO:
      return AE_IFIFO;
    case LAYER_INDEX_SOCK:
    case LAYER_INDEX_WHITEOUT:
      return 0;
    }
  return 0;
}

static int
write_item (struct archive *a, struct archive_entry *e, const item *it, const layer_writer_opts *o,
            kiln_error **err)
{
  const layer_change *c = it->c;
  archive_entry_clear (e);
  autofree char *name = NULL;
  int64_t mt = c->meta.mtime_sec;
  /* Whole seconds only: libarchive's restricted PAX writer keeps
   * nanoseconds only for members that need a PAX header anyway, so a
   * layer's times would depend on its names and xattrs. Whole seconds for
   * every member make the index built from a change list
   * (extract_from_changes) identical to an extraction of the tar. */
  long mns = 0;
  if (o->clamp_mtime && mt >= o->clamp_epoch)
    mt = o->clamp_epoch;
  autoclose int fd = -1;
  switch (c->kind)
    {
    case LAYER_CHANGE_WHITEOUT:
    case LAYER_CHANGE_OPAQUE:
      {
        const char *slash = strrchr (it->path, '/');
        if (c->kind == LAYER_CHANGE_OPAQUE)
          name = *it->path ? xasprintf ("%s/.wh..wh..opq", it->path) : xstrdup (".wh..wh..opq");
        else if (slash)
          name = xasprintf ("%.*s/.wh.%s", (int) (slash - it->path), it->path, slash + 1);
        else
          name = xasprintf (".wh.%s", it->path);
        archive_entry_set_pathname (e, name);
        archive_entry_set_filetype (e, AE_IFREG);
        archive_entry_set_perm (e, 0);
        archive_entry_set_size (e, 0);
        archive_entry_set_mtime (e, o->clamp_mtime ? o->clamp_epoch : 0, 0);
        break;
      }
    case LAYER_CHANGE_ADD:
      {
        if (c->meta.type == LAYER_INDEX_SOCK || c->meta.type == LAYER_INDEX_WHITEOUT)
          return kiln_error_make (err, EINVAL, "'%s': %s cannot be stored in a tar layer", it->path,
                                  c->meta.type == LAYER_INDEX_SOCK ? "a socket" : "a whiteout entry");
        name = *it->path ? xstrdup (it->path) : xstrdup (".");
        archive_entry_set_pathname (e, name);
        archive_entry_set_uid (e, c->meta.uid);
        archive_entry_set_gid (e, c->meta.gid);
        archive_entry_set_mtime (e, mt, mns);
        if (c->hardlink_target)
          {
            archive_entry_set_filetype (e, AE_IFREG);
            archive_entry_set_perm (e, c->meta.mode & 07777);
            archive_entry_set_hardlink (e, c->hardlink_target);
            archive_entry_set_size (e, 0);
            break;
          }
        archive_entry_set_filetype (e, type_bits (c->meta.type));
        archive_entry_set_perm (e, c->meta.mode & 07777);
        if (c->meta.type == LAYER_INDEX_SYMLINK)
          archive_entry_set_symlink (e, c->meta.link_target);
        if (c->meta.type == LAYER_INDEX_CHR || c->meta.type == LAYER_INDEX_BLK)
          {
            archive_entry_set_rdevmajor (e, c->meta.rdev_major);
            archive_entry_set_rdevminor (e, c->meta.rdev_minor);
          }
        for (size_t i = 0; i < c->meta.n_xattrs; i++)
          archive_entry_xattr_add_entry (e, c->meta.xattrs[i].name, c->meta.xattrs[i].value,
                                         c->meta.xattrs[i].value_len);
        archive_entry_set_size (e, 0);
        if (c->meta.type == LAYER_INDEX_REG)
          {
            if (c->data_path == NULL)
              return kiln_error_make (err, EINVAL, "'%s': regular file without data source", it->path);
            fd = fs_open_in_root (c->data_dirfd, c->data_path, O_RDONLY | O_NOFOLLOW, 0,
                                  FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, err);
            if (fd < 0)
              return kiln_error_wrap (err, "data of '%s'", it->path);
            struct stat st;
            if (fstat (fd, &st) < 0)
              return kiln_error_make (err, errno, "stat data of '%s'", it->path);
            if (!S_ISREG (st.st_mode))
              return kiln_error_make (err, EINVAL, "data of '%s' is not a regular file", it->path);
            archive_entry_set_size (e, st.st_size);
          }
        break;
      }
    }
  if (archive_write_header (a, e) < ARCHIVE_WARN)
    return kiln_error_make (err, EIO, "tar header for '%s': %s", name, archive_error_string (a));
  if (fd >= 0)
    {
      autofree char *buf = xmalloc (CHUNK);
      int64_t left = archive_entry_size (e);
      while (left > 0)
        {
          ssize_t n = read (fd, buf, left < CHUNK ? left : CHUNK);
          if (n < 0 && errno == EINTR)
            continue;
          if (n < 0)
            return kiln_error_make (err, errno, "read data of '%s'", it->path);
          if (n == 0)
            return kiln_error_make (err, EIO, "data of '%s' shrank while writing the layer", it->path);
          if (archive_write_data (a, buf, n) != n)
            return kiln_error_make (err, EIO, "tar data of '%s': %s", it->path, archive_error_string (a));
          left -= n;
        }
    }
  return 0;
}

static int
check_items (item *items, size_t n, kiln_error **err)
{
  for (size_t i = 1; i < n; i++)
    if (layer_writer_path_cmp (items[i - 1].path, items[i].path) == 0)
      {
        layer_change_kind a = items[i - 1].c->kind, b = items[i].c->kind;
        bool dir_then_opaque = a == LAYER_CHANGE_ADD && b == LAYER_CHANGE_OPAQUE
                               && items[i - 1].c->meta.type == LAYER_INDEX_DIR;
        if (!dir_then_opaque)
          return kiln_error_make (err, EINVAL, "change list has '%s' twice", items[i].path);
      }
  return 0;
}

/* Normalise the change list's paths into items (*ni of them, each path
 * owned), drop the root unless it is wanted, sort and check for twins. */
static int
collect_items (const layer_change *changes, size_t n, const layer_writer_opts *o, item *items, size_t *ni,
               kiln_error **err)
{
  for (size_t i = 0; i < n; i++)
    {
      char *np;
      if (layer_index_normalize_path (changes[i].path, &np, err) < 0)
        return kiln_error_wrap (err, "layer change %zu", i);
      if (*np == '\0' && changes[i].kind == LAYER_CHANGE_ADD && !o->add_root)
        {
          free (np);
          continue;
        }
      if (*np == '\0' && changes[i].kind == LAYER_CHANGE_WHITEOUT)
        {
          free (np);
          return kiln_error_make (err, EINVAL, "cannot white out the root");
        }
      items[*ni].c = &changes[i];
      items[*ni].path = np;
      (*ni)++;
    }
  qsort (items, *ni, sizeof *items, item_cmp);
  if (check_items (items, *ni, err) < 0)
    return -1;
  return 0;
}

/* Size the pipeline (threads, level) and set up its compressor, lock and
 * digests; nothing to undo when this fails. */
static int
pipeline_init (pipeline *p, const layer_writer_opts *o, kiln_error **err)
{
  long cores = sysconf (_SC_NPROCESSORS_ONLN);
  p->threads = o->threads > 0 ? o->threads : (cores > 0 ? cores : 1);
  p->max_inflight = p->threads * 4 + 4;
  p->level = effective_level (o);
  int ret = layer_writer_check_level (o->compression, p->level, err);
  if (ret < 0)
    return ret;
  if (o->compression == LAYER_COMPRESS_ZSTD)
    {
      p->zc = ZSTD_createCCtx ();
      ZSTD_CCtx_setParameter (p->zc, ZSTD_c_compressionLevel, p->level);
      ZSTD_CCtx_setParameter (p->zc, ZSTD_c_checksumFlag, 1);
      if (p->threads > 1)
        ZSTD_CCtx_setParameter (p->zc, ZSTD_c_nbWorkers, p->threads); /* ignored without MT support */
    }
  pthread_mutex_init (&p->mu, NULL);
  pthread_cond_init (&p->cv, NULL);
  p->diff = digest_new ();
  p->blob = digest_new ();
  p->crc = crc32 (0, NULL, 0);
  return 0;
}

/* Free what pipeline_init and the threads left; the threads are joined. */
static void
pipeline_destroy (pipeline *p)
{
  while (p->head)
    {
      chunk *c = p->head;
      p->head = c->next;
      chunk_free (c);
    }
  if (p->cur)
    chunk_free (p->cur);
  free (p->err_msg);
  digest_free (p->diff);
  digest_free (p->blob);
  ZSTD_freeCCtx (p->zc);
  pthread_mutex_destroy (&p->mu);
  pthread_cond_destroy (&p->cv);
}

/* Write the items as a tar stream into the pipeline (archive_write_cb). */
static int
write_tar (pipeline *p, const item *items, size_t ni, const layer_writer_opts *o, kiln_error **err)
{
  int ret = 0;
  struct archive *a = archive_write_new ();
  struct archive_entry *e = archive_entry_new ();
  archive_write_set_format_pax_restricted (a);
  /* Only SCHILY.xattr.* (what Docker, BuildKit and GNU tar write and read);
   * LIBARCHIVE.xattr.* duplicates would make GNU tar warn. */
  if (archive_write_set_format_option (a, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK)
    ret = kiln_error_make (err, EIO, "tar writer: %s", archive_error_string (a));
  archive_write_set_bytes_per_block (a, 512);
  archive_write_set_bytes_in_last_block (a, 1);
  if (ret == 0 && archive_write_open (a, p, NULL, archive_write_cb, NULL) != ARCHIVE_OK)
    ret = kiln_error_make (err, EIO, "tar writer: %s", archive_error_string (a));
  for (size_t i = 0; ret == 0 && i < ni; i++)
    if (write_item (a, e, &items[i], o, err) < 0)
      ret = -1;
  if (ret == 0 && archive_write_close (a) != ARCHIVE_OK)
    ret = kiln_error_make (err, EIO, "tar writer: %s", archive_error_string (a));
  archive_entry_free (e);
  archive_write_free (a);
  return ret;
}

int
layer_writer_write (const layer_change *changes, size_t n, const layer_writer_opts *opts, int out_fd,
                    layer_writer_result *res, kiln_error **err)
{
  memset (res, 0, sizeof *res);
  layer_writer_opts o = opts ? *opts : (layer_writer_opts) { .level = -1 };
  item *items = xcalloc (n ? n : 1, sizeof *items);
  size_t ni = 0;
  int ret = collect_items (changes, n, &o, items, &ni, err);
  if (ret < 0)
    goto out_items;

  pipeline p = { .comp = o.compression, .out_fd = out_fd };
  if ((ret = pipeline_init (&p, &o, err)) < 0)
    goto out_items;

  int nworkers = o.compression == LAYER_COMPRESS_GZIP ? p.threads : 0;
  pthread_t *workers = xcalloc (nworkers + 2, sizeof *workers);
  pthread_create (&workers[0], NULL, hasher_main, &p);
  pthread_create (&workers[1], NULL, output_main, &p);
  for (int i = 0; i < nworkers; i++)
    pthread_create (&workers[2 + i], NULL, worker_main, &p);

  ret = write_tar (&p, items, ni, &o, err);
  if (ret == 0)
    {
      if (submit (&p, true) < 0)
        ret = -1;
    }
  else
    {
      pthread_mutex_lock (&p.mu);
      pipe_fail (&p, ECANCELED, "cancelled");
      pthread_mutex_unlock (&p.mu);
    }
  for (int i = 0; i < nworkers + 2; i++)
    pthread_join (workers[i], NULL);
  free (workers);
  /* A failure of the pipeline itself (the blob's write: ENOSPC, EIO) is the
   * cause; the tar writer only saw "layer pipeline failed". ECANCELED is the
   * tar writer's own failure, already in err. */
  if (p.failed && p.err_status != ECANCELED)
    ret = kiln_error_make (err, p.err_status, "%s", p.err_msg);
  if (ret == 0)
    {
      digest_final (p.diff, res->diff_id);
      digest_final (p.blob, res->blob_digest);
      res->diff_size = p.diff_size;
      res->blob_size = p.blob_size;
      res->entries = ni;
      if (o.compression == LAYER_COMPRESS_NONE)
        memcpy (res->blob_digest, res->diff_id, sizeof res->diff_id);
    }
  pipeline_destroy (&p);
out_items:
  for (size_t i = 0; i < ni; i++)
    free (items[i].path);
  free (items);
  return ret;
}

/* ---- whole-layer change lists ------------------------------------------ */

void
layer_writer_changes_free (layer_changes *c)
{
  free (c->v);
  strv_free (c->paths);
  strv_free (c->strings);
  free (c->xattrs);
  memset (c, 0, sizeof *c);
}

int
layer_writer_changes_from_index (const layer_index *idx, int tree_fd, layer_changes *out, kiln_error **err)
{
  (void) err;
  memset (out, 0, sizeof *out);
  uint32_t n = layer_index_count (idx);
  uint32_t groups = layer_index_hardlink_groups (idx);
  char **paths = xcalloc ((size_t) n + 1, sizeof *paths);
  /* first (in writer order) member of each hardlink group */
  uint32_t *gfirst = xcalloc ((size_t) groups + 1, sizeof *gfirst);
  size_t total_x = 0;
  for (uint32_t i = 0; i < n; i++)
    {
      strbuf sb = STRBUF_INIT;
      layer_index_path (idx, i, &sb);
      paths[i] = strbuf_detach (&sb, NULL);
      const layer_index_disk_entry *e = layer_index_entry (idx, i);
      total_x += e->xattr_count;
      uint32_t g = e->hardlink_group;
      if (g && (gfirst[g] == 0 || layer_writer_path_cmp (paths[i], paths[gfirst[g] - 1]) < 0))
        gfirst[g] = i + 1;
    }
  out->v = xcalloc ((size_t) n * 2 + 1, sizeof *out->v);
  out->xattrs = xcalloc (total_x + 1, sizeof *out->xattrs);
  size_t xi = 0;
  for (uint32_t i = 0; i < n; i++)
    {
      const layer_index_disk_entry *e = layer_index_entry (idx, i);
      bool implicit = e->type == LAYER_INDEX_DIR && (e->flags & LAYER_INDEX_F_IMPLICIT);
      if (e->type == LAYER_INDEX_WHITEOUT)
        {
          out->v[out->n++] = (layer_change) { .path = paths[i], .kind = LAYER_CHANGE_WHITEOUT };
          continue;
        }
      if (!implicit && i != 0)
        {
          layer_change *c = &out->v[out->n++];
          *c = (layer_change) { .path = paths[i], .kind = LAYER_CHANGE_ADD, .data_dirfd = tree_fd };
          c->meta.type = e->type;
          c->meta.mode = e->mode;
          c->meta.uid = e->uid;
          c->meta.gid = e->gid;
          c->meta.size = e->size;
          c->meta.mtime_sec = e->mtime_sec;
          c->meta.mtime_nsec = e->mtime_nsec;
          c->meta.rdev_major = e->rdev_major;
          c->meta.rdev_minor = e->rdev_minor;
          if (e->type == LAYER_INDEX_SYMLINK)
            {
              size_t ll;
              const char *l = layer_index_link (idx, i, &ll);
              char *t = xstrndup (l, ll);
              strv_push (&out->strings, t);
              free (t);
              c->meta.link_target = out->strings[strv_len (out->strings) - 1];
            }
          if (e->type == LAYER_INDEX_REG)
            {
              c->data_path = paths[i];
              c->data_private = true; /* a store layer's tree */
            }
          if (e->hardlink_group && gfirst[e->hardlink_group] != i + 1)
            c->hardlink_target = paths[gfirst[e->hardlink_group] - 1];
          c->meta.xattrs = &out->xattrs[xi];
          c->meta.n_xattrs = e->xattr_count;
          for (uint32_t x = 0; x < e->xattr_count; x++)
            {
              const char *name;
              size_t nl, vl;
              const void *v;
              layer_index_get_xattr (idx, i, x, &name, &nl, &v, &vl);
              char *nm = xstrndup (name, nl);
              strv_push (&out->strings, nm);
              free (nm);
              out->xattrs[xi++] = (layer_index_xattr) { out->strings[strv_len (out->strings) - 1], v, vl };
            }
        }
      if (e->type == LAYER_INDEX_DIR && (e->flags & LAYER_INDEX_F_OPAQUE))
        out->v[out->n++] = (layer_change) { .path = paths[i], .kind = LAYER_CHANGE_OPAQUE };
    }
  free (gfirst);
  out->paths = paths; /* NULL-terminated: freed with strv_free */
  return 0;
}
