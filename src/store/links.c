/* links.c - records of store files hard-linked to user-writable names, and
 * their verification on reuse (see links.h). */
#include "store/links.h"
#include "store/extract.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/hash.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINKS_MAGIC "kiln-links 1\n"

/* ---- records ------------------------------------------------------------ */

void
store_links_add (store_links *l, const char *path, const struct stat *st)
{
  if (l->n == l->cap)
    {
      l->cap = l->cap ? l->cap * 2 : 16;
      l->v = xreallocarray (l->v, l->cap, sizeof *l->v);
    }
  l->v[l->n++] = (store_link) {
    .path = xstrdup (path),
    .ino = (uint64_t) st->st_ino,
    .nlink = (uint64_t) st->st_nlink,
    .size = (uint64_t) st->st_size,
    .ctime_sec = st->st_ctim.tv_sec,
    .ctime_nsec = (uint32_t) st->st_ctim.tv_nsec,
    .mtime_sec = st->st_mtim.tv_sec,
    .mtime_nsec = (uint32_t) st->st_mtim.tv_nsec,
  };
}

void
store_links_free (store_links *l)
{
  for (size_t i = 0; i < l->n; i++)
    free (l->v[i].path);
  free (l->v);
  memset (l, 0, sizeof *l);
}

bool
store_link_same (const store_link *r, const struct stat *st)
{
  return S_ISREG (st->st_mode) && r->ino == (uint64_t) st->st_ino && r->size == (uint64_t) st->st_size
         && r->ctime_sec == st->st_ctim.tv_sec && r->ctime_nsec == (uint32_t) st->st_ctim.tv_nsec
         && r->mtime_sec == st->st_mtim.tv_sec && r->mtime_nsec == (uint32_t) st->st_mtim.tv_nsec;
}

void
store_links_format (const store_links *l, strbuf *out)
{
  strbuf_adds (out, LINKS_MAGIC);
  for (size_t i = 0; i < l->n; i++)
    {
      const store_link *r = &l->v[i];
      strbuf_addf (out, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRId64 ".%09" PRIu32 " %" PRId64 ".%09" PRIu32 " %zu ",
                   r->ino, r->nlink, r->size, r->ctime_sec, r->ctime_nsec, r->mtime_sec, r->mtime_nsec,
                   strlen (r->path));
      strbuf_adds (out, r->path);
      strbuf_addch (out, '\n');
    }
}

/* ---- parser: kiln's own file, but checked like input -------------------- */

typedef struct cursor
{
  const char *p, *end;
} cursor;

/* Decimal digits up to the separator sep; at most 20 digits, no sign. */
static bool
take_u64 (cursor *c, char sep, uint64_t *out)
{
  uint64_t v = 0;
  size_t nd = 0;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
    {
      unsigned d = (unsigned) (*c->p - '0');
      if (v > (UINT64_MAX - d) / 10)
        return false;
      v = v * 10 + d;
      c->p++;
      nd++;
    }
  if (nd == 0 || nd > 20 || c->p >= c->end || *c->p != sep)
    return false;
  c->p++;
  *out = v;
  return true;
}

/* SEC.NSEC: an optional '-', seconds, '.', exactly 9 digits. */
static bool
take_time (cursor *c, int64_t *sec, uint32_t *nsec)
{
  bool neg = c->p < c->end && *c->p == '-';
  if (neg)
    c->p++;
  uint64_t s;
  if (!take_u64 (c, '.', &s) || s > (uint64_t) INT64_MAX)
    return false;
  if (c->end - c->p < 10)
    return false;
  uint32_t ns = 0;
  for (int i = 0; i < 9; i++, c->p++)
    {
      if (*c->p < '0' || *c->p > '9')
        return false;
      ns = ns * 10 + (uint32_t) (*c->p - '0');
    }
  if (*c->p++ != ' ')
    return false;
  *sec = neg ? -(int64_t) s : (int64_t) s;
  *nsec = ns;
  return true;
}

static bool
take_record (cursor *c, store_link *r)
{
  uint64_t plen;
  if (!take_u64 (c, ' ', &r->ino) || !take_u64 (c, ' ', &r->nlink) || !take_u64 (c, ' ', &r->size) || !take_time (c, &r->ctime_sec, &r->ctime_nsec)
      || !take_time (c, &r->mtime_sec, &r->mtime_nsec) || !take_u64 (c, ' ', &plen))
    return false;
  if (plen == 0 || plen > STORE_LINKS_MAX_PATH || (uint64_t) (c->end - c->p) < plen + 1 || c->p[plen] != '\n'
      || memchr (c->p, '\0', plen) != NULL)
    return false;
  r->path = xstrndup (c->p, (size_t) plen);
  c->p += plen + 1;
  return true;
}

int
store_links_parse (const char *data, size_t len, store_links *out, kiln_error **err)
{
  memset (out, 0, sizeof *out);
  size_t ml = strlen (LINKS_MAGIC);
  if (len < ml || memcmp (data, LINKS_MAGIC, ml) != 0)
    return kiln_error_make (err, EINVAL, "not a kiln links file");
  cursor c = { data + ml, data + len };
  while (c.p < c.end)
    {
      store_link r = { 0 };
      if (!take_record (&c, &r))
        {
          size_t at = (size_t) (c.p - data), rec = out->n + 1;
          store_links_free (out);
          return kiln_error_make (err, EINVAL, "invalid links record %zu (near byte %zu)", rec, at);
        }
      if (out->n == out->cap)
        {
          out->cap = out->cap ? out->cap * 2 : 16;
          out->v = xreallocarray (out->v, out->cap, sizeof *out->v);
        }
      out->v[out->n++] = r;
    }
  return 0;
}

/* 1 and *out when dirfd/name exists, 0 when it does not. */
static int
links_read_at (int dirfd, const char *name, const char *what, store_links *out, kiln_error **err)
{
  autoclose int fd = openat (dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    {
      if (errno == ENOENT)
        return 0;
      return kiln_error_make (err, errno, "open '%s'", what);
    }
  autofree char *buf = NULL;
  size_t len;
  if (fs_read_fd (fd, STORE_LINKS_MAX_FILE, &buf, &len, err) < 0
      || store_links_parse (buf, len, out, err) < 0)
    return kiln_error_wrap (err, "'%s'", what);
  return 1;
}

/* A blob whose link count alone moved (its layout was deleted, or copied
 * with cp -l), with size and mtime as recorded, and which nobody but its
 * owner, kiln's own user, may write: a write through any name moves
 * mtime, which only the owner or root can set back, and they can write
 * the store's own name anyway: the link gave nobody a new way into the
 * store. Accepted without hashing it again (a layout of a 328 MB image
 * would cost as much as copying it). Not used for a layer's tree: a build
 * context file is there to be edited, and its edits must always show. */
static bool
link_relinked (const store_link *r, const struct stat *st)
{
  return S_ISREG (st->st_mode) && r->ino == (uint64_t) st->st_ino && r->size == (uint64_t) st->st_size
         && r->mtime_sec == st->st_mtim.tv_sec && r->mtime_nsec == (uint32_t) st->st_mtim.tv_nsec
         && r->nlink != (uint64_t) st->st_nlink && st->st_uid == geteuid () && !(st->st_mode & 022);
}

/* ---- ctime moves kiln made itself -------------------------------------- */

/* Linking a file moves its ctime. When kiln links one context file into
 * several layers (a file two parallel stages COPY, `COPY package.json`
 * then `COPY . .`), the second COPY's step read the file before the first
 * link, and the first layer's record predates the second link: both would
 * look changed. So this process remembers, per inode, the chain of ctimes
 * its own links produced, each link made from the ctime the chain ended
 * in (nothing else changed the file in between): two ctimes of one chain
 * are the same content. Another process's links are not known: its
 * changes count as changes (a false "changed during the build", or one
 * re-extraction). */
typedef struct own_chain
{
  uint64_t dev, ino;
  struct timespec *ct;
  size_t n;
  struct own_chain *next;
} own_chain;

#define OWN_BUCKETS 4096
static own_chain *own_tab[OWN_BUCKETS];
static pthread_mutex_t own_lock = PTHREAD_MUTEX_INITIALIZER;

static own_chain **
own_slot (uint64_t dev, uint64_t ino)
{
  uint64_t h = hash_fnv1a (HASH_FNV1A_OFFSET, &dev, sizeof dev);
  h = hash_fnv1a (h, &ino, sizeof ino);
  own_chain **p = &own_tab[h % OWN_BUCKETS];
  while (*p && ((*p)->dev != dev || (*p)->ino != ino))
    p = &(*p)->next;
  return p;
}

static bool
ts_eq (const struct timespec *a, const struct timespec *b)
{
  return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

void
store_links_note_own (const struct stat *before, const struct stat *after)
{
  pthread_mutex_lock (&own_lock);
  own_chain **p = own_slot ((uint64_t) before->st_dev, (uint64_t) before->st_ino);
  own_chain *c = *p;
  if (c == NULL)
    {
      c = *p = xzalloc (sizeof *c);
      c->dev = (uint64_t) before->st_dev;
      c->ino = (uint64_t) before->st_ino;
    }
  if (c->n == 0 || !ts_eq (&c->ct[c->n - 1], &before->st_ctim))
    {
      /* a new chain: whatever came before is not known to be ours */
      c->ct = xreallocarray (c->ct, 2, sizeof *c->ct);
      c->ct[0] = before->st_ctim;
      c->n = 1;
    }
  else
    c->ct = xreallocarray (c->ct, c->n + 1, sizeof *c->ct);
  c->ct[c->n++] = after->st_ctim;
  pthread_mutex_unlock (&own_lock);
}

bool
store_links_own_moved (const struct stat *now, int64_t from_sec, uint32_t from_nsec)
{
  struct timespec from = { from_sec, (long) from_nsec };
  bool ok = false;
  pthread_mutex_lock (&own_lock);
  own_chain *c = *own_slot ((uint64_t) now->st_dev, (uint64_t) now->st_ino);
  for (size_t i = 0; c && i < c->n && !ok; i++)
    if (ts_eq (&c->ct[i], &from))
      for (size_t j = i; j < c->n && !ok; j++)
        ok = ts_eq (&c->ct[j], &now->st_ctim);
  pthread_mutex_unlock (&own_lock);
  return ok;
}

static double
ms_since (const struct timespec *t0)
{
  struct timespec t1;
  clock_gettime (CLOCK_MONOTONIC, &t1);
  return (double) (t1.tv_sec - t0->tv_sec) * 1e3 + (double) (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* ---- layers: verify, re-extract ----------------------------------------- */

/* Only kiln's own links of it since the record (store_links_note_own). */
static bool
own_relink (const store_link *r, const struct stat *st)
{
  return S_ISREG (st->st_mode) && r->ino == (uint64_t) st->st_ino && r->size == (uint64_t) st->st_size
         && r->mtime_sec == st->st_mtim.tv_sec && r->mtime_nsec == (uint32_t) st->st_mtim.tv_nsec
         && store_links_own_moved (st, r->ctime_sec, r->ctime_nsec);
}

/* Index of the first record in [from, to) whose file is not the recorded
 * inode, or -1. */
static ssize_t
changed_in (int treefd, const store_links *l, size_t from, size_t to, struct stat *st)
{
  for (size_t i = from; i < to; i++)
    {
      if (fstatat (treefd, l->v[i].path, st, AT_SYMLINK_NOFOLLOW) < 0)
        {
          memset (st, 0, sizeof *st);
          return (ssize_t) i;
        }
      if (!store_link_same (&l->v[i], st) && !own_relink (&l->v[i], st))
        return (ssize_t) i;
    }
  return -1;
}

/* One fstatat per record: 20,000 context files took 32-48 ms on one core
 * (bench/RESULTS.md, "Issue 16 item 2"), on the path of the next RUN step.
 * Long lists are split over up to four threads. */
#define LINKS_CHECK_THREADS 4
#define LINKS_CHECK_SLICE 2048

typedef struct check_slice
{
  int treefd;
  const store_links *l;
  size_t from, to;
  ssize_t bad;
  struct stat st;
} check_slice;

static void *
check_slice_run (void *arg)
{
  check_slice *c = arg;
  c->bad = changed_in (c->treefd, c->l, c->from, c->to, &c->st);
  return NULL;
}

/* Index of the first record whose file is not the recorded inode, or -1. */
static ssize_t
first_changed (int treefd, const store_links *l, struct stat *st)
{
  long cpus = sysconf (_SC_NPROCESSORS_ONLN);
  size_t nt = l->n / LINKS_CHECK_SLICE;
  if (cpus > 0 && nt > (size_t) cpus)
    nt = (size_t) cpus;
  if (nt > LINKS_CHECK_THREADS)
    nt = LINKS_CHECK_THREADS;
  if (nt < 2)
    return changed_in (treefd, l, 0, l->n, st);
  check_slice sl[LINKS_CHECK_THREADS];
  pthread_t th[LINKS_CHECK_THREADS];
  bool started[LINKS_CHECK_THREADS] = { false };
  for (size_t k = 0; k < nt; k++)
    {
      sl[k] = (check_slice) { .treefd = treefd, .l = l, .from = l->n * k / nt, .to = l->n * (k + 1) / nt };
      started[k] = k > 0 && pthread_create (&th[k], NULL, check_slice_run, &sl[k]) == 0;
    }
  for (size_t k = 0; k < nt; k++)
    if (!started[k])
      check_slice_run (&sl[k]);
  for (size_t k = 0; k < nt; k++)
    if (started[k])
      pthread_join (th[k], NULL);
  for (size_t k = 0; k < nt; k++)
    if (sl[k].bad >= 0)
      {
        *st = sl[k].st;
        return sl[k].bad;
      }
  return -1;
}

/* The blob digest the layer at dfd came from (its "blob" file). */
static int
layer_blob (int dfd, const char *diff_id, char out[DIGEST_STRING_SIZE], kiln_error **err)
{
  autofree char *buf = NULL;
  size_t len;
  autoclose int fd = openat (dfd, "blob", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 || fs_read_fd (fd, 128, &buf, &len, err) < 0)
    return fd < 0 ? kiln_error_make (err, errno, "layer %s: its blob record", diff_id) : -1;
  buf[strcspn (buf, "\n ")] = '\0';
  if (digest_validate (buf, err) < 0)
    return kiln_error_wrap (err, "layer %s: its blob record", diff_id);
  memcpy (out, buf, DIGEST_STRING_SIZE);
  return 0;
}

/* Extract blob into a new temp dir and swap it with layers/sha256/HEX;
 * the old directory goes to tmp/ (removed when the store is next idle:
 * another kiln may still read its files). Caller holds the layer lock. */
static int
reextract (store *s, const char *diff_id, const char *blob, kiln_error **err)
{
  autofree char *tmp = NULL;
  autoclose int tfd = -1;
  if (store_mktemp (s, "relayer", &tmp, &tfd, err) < 0)
    return -1;
  autoclose int bfd = store_open_blob (s, blob, err);
  extract_opts o = { .max_entries = s->max_layer_entries };
  extract_result res;
  int r = bfd < 0 ? -1 : extract_layer (tfd, extract_read_fd, &bfd, &o, &res, err);
  if (r == 0 && (strcmp (res.diff_id, diff_id) != 0 || strcmp (res.blob_digest, blob) != 0))
    r = kiln_error_make (err, EINVAL, "blob %s does not make layer %s", blob, diff_id);
  if (r == 0)
    r = fs_write_file_unsynced_at (tfd, "blob", blob, strlen (blob), 0644, err);
  if (r == 0 && syncfs (tfd) < 0)
    r = kiln_error_make (err, errno, "syncfs '%s/tmp/%s'", s->root, tmp);
  autofree char *from = xasprintf ("tmp/%s", tmp);
  autofree char *to = xasprintf ("layers/sha256/%s", digest_hex (diff_id));
  if (r == 0 && renameat2 (s->rootfd, from, s->rootfd, to, RENAME_EXCHANGE) < 0)
    r = kiln_error_make (err, errno, "replace '%s/%s'", s->root, to);
  if (r < 0)
    {
      store_rmtemp (s, tmp);
      return kiln_error_wrap (err, "extracting layer %s again from blob %s", diff_id, blob);
    }
  autoclose int lfd = openat (s->rootfd, "layers/sha256", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (lfd >= 0)
    fsync (lfd);
  log_debug ("store: the old tree of layer %s is '%s/%s' until the store is idle", diff_id, s->root, from);
  return 0;
}

int
store_links_check_layer (store *s, const char *diff_id, int *dfd, kiln_error **err)
{
  store_links l = { 0 };
  int r = links_read_at (*dfd, STORE_LINKS_FILE, diff_id, &l, err);
  if (r <= 0)
    return r < 0 ? kiln_error_wrap (err, "layer %s", diff_id) : 0;
  autoclose int treefd = openat (*dfd, "tree", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct timespec t0;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  struct stat now = { 0 };
  ssize_t bad = treefd < 0 ? 0 : first_changed (treefd, &l, &now);
  log_debug ("store: layer %s: %zu linked files checked in %.1f ms", diff_id, l.n, ms_since (&t0));
  if (bad < 0)
    {
      store_links_free (&l);
      return 0;
    }
  const char *p = l.n ? l.v[bad].path : "tree";
  if (l.n)
    log_debug ("store: '%s' recorded ino %" PRIu64 " nlink %" PRIu64 " size %" PRIu64 " ctime %" PRId64 ".%09" PRIu32
               ", now ino %llu nlink %llu size %lld ctime %lld.%09ld", p, l.v[bad].ino, l.v[bad].nlink, l.v[bad].size,
               l.v[bad].ctime_sec, l.v[bad].ctime_nsec, (unsigned long long) now.st_ino,
               (unsigned long long) now.st_nlink, (long long) now.st_size, (long long) now.st_ctim.tv_sec,
               now.st_ctim.tv_nsec);
  /* Linked or unlinked elsewhere (another layer linked the same context
   * file, the user removed it): ctime moved with the link count. Whatever
   * else changed, the tree is no longer trusted. */
  if (l.n && now.st_nlink && now.st_nlink != l.v[bad].nlink && now.st_size == (off_t) l.v[bad].size
      && now.st_mtim.tv_sec == l.v[bad].mtime_sec)
    log_info ("store: layer %s: '%s', hard-linked from a build context, was linked or unlinked elsewhere since "
              "the layer was stored; extracting the layer again from its blob", diff_id, p);
  else
    log_warn ("store: layer %s: '%s', hard-linked from a build context, changed after the layer was stored; "
              "extracting the layer again from its blob", diff_id, p);
  store_links_free (&l);
  char blob[DIGEST_STRING_SIZE];
  if (layer_blob (*dfd, diff_id, blob, err) < 0)
    return -1;
  autoclose int lock = store_lock_layer (s, blob, err);
  if (lock < 0)
    return kiln_error_wrap (err, "locking layer %s", blob);
  /* Another kiln may have replaced it meanwhile (the new tree has no
   * links file). */
  autofree char *rel = xasprintf ("layers/sha256/%s", digest_hex (diff_id));
  autoclose int cur = openat (s->rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (cur < 0)
    return kiln_error_make (err, errno, "open layer %s", diff_id);
  if (faccessat (cur, STORE_LINKS_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0 && reextract (s, diff_id, blob, err) < 0)
    return -1;
  int nfd = openat (s->rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (nfd < 0)
    return kiln_error_make (err, errno, "open layer %s", diff_id);
  close (*dfd);
  *dfd = nfd;
  return 0;
}

/* ---- blobs linked out into layouts -------------------------------------- */

static char *
record_rel (const char *digest)
{
  return xasprintf ("bloblinks/sha256/%s", digest_hex (digest));
}

/* Written by rename, not fsynced (two fsyncs per blob cost a warm w1 more
 * than the rest of its layout): a record lost in a crash leaves a blob with
 * more than one link and no record, which store_blob_check_links hashes
 * again before it trusts it; a damaged one is hashed again too. */
static int
record_blob (store *s, const char *digest, const struct stat *st, kiln_error **err)
{
  store_links l = { 0 };
  store_links_add (&l, digest_hex (digest), st);
  autostrbuf strbuf sb = STRBUF_INIT;
  store_links_format (&l, &sb);
  store_links_free (&l);
  autofree char *rel = record_rel (digest);
  autofree char *tmp = xasprintf ("bloblinks/sha256/.%s.%ld", digest_hex (digest), (long) getpid ());
  autoclose int fd = openat (s->rootfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return kiln_error_make (err, errno, "create '%s/%s'", s->root, tmp);
  if (fs_write_all (fd, sb.buf, sb.len, err) < 0 || renameat (s->rootfd, tmp, s->rootfd, rel) < 0)
    {
      int e = errno;
      unlinkat (s->rootfd, tmp, 0);
      return *err ? kiln_error_wrap (err, "'%s/%s'", s->root, tmp)
                  : kiln_error_make (err, e, "rename '%s/%s'", s->root, tmp);
    }
  return 0;
}

int
store_blob_link_out (store *s, const char *digest, int dirfd, const char *name, kiln_error **err)
{
  if (digest_validate (digest, err) < 0)
    return -1;
  autofree char *rel = xasprintf ("blobs/sha256/%s", digest_hex (digest));
  if (linkat (s->rootfd, rel, dirfd, name, 0) < 0)
    {
      if (errno == EXDEV || errno == EMLINK || errno == EPERM || errno == EACCES)
        return 1;
      return kiln_error_make (err, errno, "link blob %s to '%s'", digest, name);
    }
  struct stat st;
  if (fstatat (s->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_make (err, errno, "stat blob %s", digest);
  if (record_blob (s, digest, &st, err) < 0)
    return kiln_error_wrap (err, "recording the link of blob %s", digest);
  return 0;
}

/* The record no longer matches: hash the blob again. */
static int
blob_recheck (store *s, const char *digest, int fd, const char *rel, kiln_error **err)
{
  char got[DIGEST_STRING_SIZE];
  struct stat before, after;
  if (fstat (fd, &before) < 0 || lseek (fd, 0, SEEK_SET) < 0 || digest_fd (fd, got, NULL, err) < 0
      || lseek (fd, 0, SEEK_SET) < 0 || fstat (fd, &after) < 0)
    return *err ? kiln_error_wrap (err, "hashing blob %s", digest)
                : kiln_error_make (err, errno, "hashing blob %s", digest);
  if (strcmp (got, digest) == 0)
    {
      /* a chmod, or a link without a record: record what was hashed,
       * unless it changed meanwhile */
      if (before.st_ctim.tv_sec == after.st_ctim.tv_sec && before.st_ctim.tv_nsec == after.st_ctim.tv_nsec)
        return record_blob (s, digest, &after, err);
      return kiln_error_make (err, 0, "store blob %s is being modified (hard-linked into an --oci-layout?)",
                              digest);
    }
  autofree char *brel = xasprintf ("blobs/sha256/%s", digest_hex (digest));
  if (unlinkat (s->rootfd, brel, 0) < 0 && errno != ENOENT)
    return kiln_error_make (err, errno, "remove modified blob %s", digest);
  unlinkat (s->rootfd, rel, 0);
  return kiln_error_make (err, ENOENT, "store blob %s was modified after it was written (hard-linked into an "
                          "--oci-layout?): removed; pull or build the image again", digest);
}

int
store_blob_check_links (store *s, const char *digest, int fd, kiln_error **err)
{
  struct stat st;
  if (fstat (fd, &st) < 0)
    return kiln_error_make (err, errno, "stat blob %s", digest);
  autofree char *rel = record_rel (digest);
  store_links l = { 0 };
  autoerror kiln_error *rerr = NULL;
  int r = links_read_at (s->rootfd, rel, rel, &l, &rerr);
  /* No record: the blob's own name only, else a link whose record a crash
   * lost (or an older kiln's): hash it. A damaged record: hash it. */
  if (r == 0 && st.st_nlink <= 1)
    return 0;
  bool ok = r > 0 && l.n == 1 && (store_link_same (&l.v[0], &st) || link_relinked (&l.v[0], &st));
  store_links_free (&l);
  return ok ? 0 : blob_recheck (s, digest, fd, rel, err);
}
