/* overlay.c - FUSE low-level glue: requests -> overlay_model, mounting and
 * the multithreaded session loop. Data requests (read/write/fsync/
 * fallocate/copy_file_range/lseek) work on the file handle's fd only and
 * never take the model lock; those that write hold the commit lock shared
 * (see "Revocation" below).
 */
#include "overlay/overlay.h"
#include "overlay/overlay_model.h"
#include "overlay/overlay_worker.h"
#include "util/alloc.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Only the overlay changes the tree, so the kernel may cache for long. */
#define OVL_TIMEOUT 86400.0

/* Open handles are listed (under hlock): overlay_stop frees those whose
 * RELEASE or RELEASEDIR never came (the mount went away first). */
typedef struct hnode
{
  struct hnode *prev, *next;
} hnode;

/* A directory handle holds a reference to the directory's shared listing
 * (overlay_model_opendir): a thousand opendirs of one directory cost one
 * listing, not a thousand copies. */
typedef struct dir_handle
{
  hnode node;
  overlay_listing *l;
} dir_handle;

/* An open regular file (fi->fh). epoch: commits made when it was opened; a
 * writable handle's data file is in the upper generation current then
 * (open copies up), which the next commit freezes. */
typedef struct ovl_file
{
  hnode node;
  int fd;
  fuse_ino_t ino;
  uint64_t epoch;
} ovl_file;

/* Revocation (docs/design/overlay.md, "Revocation"). A committed upper is
 * the data of a published layer, yet a handle can outlive its step (an fd
 * passed to another stage's process). Every request that writes through a
 * handle holds commit_lock shared and goes ahead only if no commit came
 * since the handle was opened; overlay_commit holds it exclusively: it
 * waits for the writes in flight and revokes every older handle (reads
 * still work). Writer-preferring: writes cannot hold a commit off. Inodes
 * of refused writes are "stale": the kernel keeps the refused page cached;
 * overlay_begin_step drops it. */
struct overlay
{
  overlay_worker_io io; /* first: libfuse passes the overlay to kiln's I/O (overlay_worker.h) */
  overlay_model *m;
  struct fuse_session *se;
  pthread_t thread;
  bool running;
  char *mountpoint;   /* set when overlay_mount made the mount */
  pthread_mutex_t hlock;
  hnode *dirs, *files;
  pthread_rwlock_t commit_lock;
  uint64_t epoch;     /* commits made (commit_lock) */
  pthread_mutex_t stale_lock;
  uint64_t *stale;    /* open-addressing set of inode numbers, 0 = empty */
  size_t stale_cap, stale_n;
  uint64_t refused;   /* writes refused so far (atomic) */
  bool single;        /* OVERLAY_IDS_SINGLE */
  pthread_rwlock_t creator_lock; /* held (read) while creator runs */
  overlay_creator_fn creator;    /* single mode: the creating process's fs ids */
  void *creator_ctx;
  bool kill_priv;     /* FUSE_CAP_HANDLE_KILLPRIV negotiated (op_init) */
};
_Static_assert (offsetof (struct overlay, io) == 0, "kiln's I/O on /dev/fuse finds its state at the overlay's start");

static void
hlist_add (overlay *o, hnode **head, hnode *h)
{
  pthread_mutex_lock (&o->hlock);
  h->prev = NULL;
  h->next = *head;
  if (*head)
    (*head)->prev = h;
  *head = h;
  pthread_mutex_unlock (&o->hlock);
}

static void
hlist_del (overlay *o, hnode **head, hnode *h)
{
  pthread_mutex_lock (&o->hlock);
  if (h->prev)
    h->prev->next = h->next;
  else
    *head = h->next;
  if (h->next)
    h->next->prev = h->prev;
  pthread_mutex_unlock (&o->hlock);
}

static void
dirh_free (overlay *o, dir_handle *h)
{
  hlist_del (o, &o->dirs, &h->node);
  overlay_model_closedir (o->m, h->l);
  free (h);
}

/* Close and forget h; the model's open count is the caller's. */
static void
fileh_free (overlay *o, ovl_file *h)
{
  hlist_del (o, &o->files, &h->node);
  close (h->fd);
  free (h);
}

#define FH(fi) ((ovl_file *) (uintptr_t) (fi)->fh)

/* Put ino into the open-addressing set v of cap slots (0: empty); true if
 * it was not there. */
static bool
ino_set_put (uint64_t *v, size_t cap, uint64_t ino)
{
  size_t j = ino % cap;
  while (v[j] && v[j] != ino)
    j = (j + 1) % cap;
  bool added = !v[j];
  v[j] = ino;
  return added;
}

/* Remember ino for overlay_begin_step, once (a writer may retry). */
static void
stale_add (overlay *o, fuse_ino_t ino)
{
  __atomic_add_fetch (&o->refused, 1, __ATOMIC_RELAXED);
  pthread_mutex_lock (&o->stale_lock);
  if (2 * (o->stale_n + 1) > o->stale_cap)
    {
      size_t cap = o->stale_cap ? 2 * o->stale_cap : 16;
      uint64_t *v = xcalloc (cap, sizeof *v);
      for (size_t i = 0; i < o->stale_cap; i++)
        if (o->stale[i])
          ino_set_put (v, cap, o->stale[i]);
      free (o->stale);
      o->stale = v;
      o->stale_cap = cap;
    }
  o->stale_n += ino_set_put (o->stale, o->stale_cap, ino);
  pthread_mutex_unlock (&o->stale_lock);
}

/* Whether a write through h may go ahead. If so the commit lock is held
 * shared until write_end, so the commit that would freeze h's data waits
 * for it. If a commit already did (the handle outlived its step), the write
 * is refused, the lock not held, and the caller answers EBADF: the handle
 * is no longer open for writing. */
static bool
write_begin (overlay *o, fuse_ino_t ino, const ovl_file *h)
{
  pthread_rwlock_rdlock (&o->commit_lock);
  if (h->epoch == o->epoch)
    return true;
  pthread_rwlock_unlock (&o->commit_lock);
  stale_add (o, ino);
  return false;
}

static void
write_end (overlay *o)
{
  pthread_rwlock_unlock (&o->commit_lock);
}

static overlay_model *
M (fuse_req_t req)
{
  return ((overlay *) fuse_req_userdata (req))->m;
}

static void
reply_entry (fuse_req_t req, int ret, const struct stat *st)
{
  if (ret < 0)
    {
      if (ret == -ENOENT)
        {
          /* negative entry: cached as long as positive ones */
          struct fuse_entry_param e = { .ino = 0, .entry_timeout = OVL_TIMEOUT };
          fuse_reply_entry (req, &e);
          return;
        }
      fuse_reply_err (req, -ret);
      return;
    }
  struct fuse_entry_param e = { .ino = st->st_ino, .attr = *st, .attr_timeout = OVL_TIMEOUT,
                                .entry_timeout = OVL_TIMEOUT };
  fuse_reply_entry (req, &e);
}

static void
op_init (void *ud, struct fuse_conn_info *conn)
{
  overlay *o = ud;
  /* CACHE_SYMLINKS: kiln is the only writer of the mount and a symlink's
   * target never changes in place (a new one is a new inode), so the kernel
   * may keep targets in its page cache: w5's apt step sent 13,814 READLINKs
   * without it (bench/fuse-ops.sh, bench/RESULTS.md). */
  /* No SPLICE_READ: overlay_worker_request_fix must see every request in
   * memory (io_read), and libfuse 3.14 spliced none even when asked (strace
   * of a build writing 20 MiB: no splice(2) call), so a WRITE's data was
   * always read into the worker's buffer. */
  unsigned want = FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_ASYNC_DIO
                  | FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_HANDLE_KILLPRIV;
  conn->want |= want & conn->capable;
  /* HANDLE_KILLPRIV: the model clears setuid/setgid on chown, truncate and
   * the kernel's write-time request (see op_setattr). Without it the kernel
   * fetched the attributes again (GETATTR) before every chown of a file:
   * 11,615 of w6's requests. */
  o->kill_priv = (conn->want & FUSE_CAP_HANDLE_KILLPRIV) != 0;
  overlay_model_set_kill_priv (o->m, o->kill_priv);
  /* libfuse 3.14 does not pass these on: overlay_worker_writev does (and
   * HANDLE_KILLPRIV_V2 with HANDLE_KILLPRIV) */
  overlay_worker_io_want (&o->io, (conn->want & FUSE_CAP_PARALLEL_DIROPS) != 0, o->kill_priv);
  /* No replies through splice: when the kernel refuses a spliced reply
   * (seen on 6.18 with several mounts reading the same lower file: "fuse:
   * splice from pipe: Invalid argument"), libfuse drops the request
   * unanswered and the step waits for ever on a locked page. op_read
   * answers from its own buffer instead. */
  conn->want &= ~(unsigned) (FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  conn->max_write = 1 << 20;
  conn->max_readahead = 1 << 20;
}

static void
op_lookup (fuse_req_t req, fuse_ino_t parent, const char *name)
{
  struct stat st;
  int ret = overlay_model_lookup (M (req), parent, name, &st);
  reply_entry (req, ret, &st);
}

static void
op_forget (fuse_req_t req, fuse_ino_t ino, uint64_t n)
{
  overlay_model_forget (M (req), ino, n);
  fuse_reply_none (req);
}

static void
op_forget_multi (fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
  for (size_t i = 0; i < count; i++)
    overlay_model_forget (M (req), f[i].ino, f[i].nlookup);
  fuse_reply_none (req);
}

static void
op_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void) fi;
  struct stat st;
  int ret = overlay_model_getattr (M (req), ino, &st);
  if (ret < 0)
    fuse_reply_err (req, -ret);
  else
    fuse_reply_attr (req, &st, OVL_TIMEOUT);
}

/* With HANDLE_KILLPRIV the kernel drops the mode it would have sent to clear
 * setuid/setgid (fuse_setattr), and kiln clears them itself: on chown and
 * truncate (the kernel always clears them there for a caller without
 * CAP_FSETID in the initial namespace, which no process in a step has), and
 * on the request the kernel sends before a write to such a file: a SETATTR
 * with nothing to set (file_remove_privs; only the ctime at most). */
static int
kill_priv_mask (overlay *o, int to_set)
{
  if (!o->kill_priv)
    return 0;
  if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE))
    return OVL_SET_KILL_SUIDGID;
  return (to_set & ~FUSE_SET_ATTR_CTIME) ? 0 : OVL_SET_KILL_SUIDGID;
}

static void
op_setattr (fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
  /* With a handle: ftruncate, or the kernel flushing the times a write
   * through it set; a revoked handle may not change the file at all. */
  overlay *o = fuse_req_userdata (req);
  if (fi && !write_begin (o, ino, FH (fi)))
    {
      fuse_reply_err (req, EBADF);
      return;
    }
  struct stat st;
  int ret = overlay_model_setattr (o->m, ino, attr, to_set | kill_priv_mask (o, to_set), &st);
  if (fi)
    write_end (o);
  if (ret < 0)
    fuse_reply_err (req, -ret);
  else
    fuse_reply_attr (req, &st, OVL_TIMEOUT);
}

static void
op_readlink (fuse_req_t req, fuse_ino_t ino)
{
  char *t = NULL;
  int ret = overlay_model_readlink (M (req), ino, &t);
  if (ret < 0)
    fuse_reply_err (req, -ret);
  else
    fuse_reply_readlink (req, t);
  free (t);
}

/* The owner of a node a request creates: the caller's ids as the kernel
 * passes them, or in single mode the fs ids the calling process switched
 * to (overlay_set_creator), else (uid_t)-1 for the step's (create_uid). */
static void
creator_ids (fuse_req_t req, uid_t *uid, gid_t *gid)
{
  const struct fuse_ctx *ctx = fuse_req_ctx (req);
  overlay *ovl = fuse_req_userdata (req);
  *uid = ctx->uid;
  *gid = ctx->gid;
  if (!ovl->single)
    return;
  pthread_rwlock_rdlock (&ovl->creator_lock);
  if (!ovl->creator || ovl->creator (ovl->creator_ctx, ctx->pid, uid, gid) <= 0)
    {
      *uid = (uid_t) -1;
      *gid = (gid_t) -1;
    }
  pthread_rwlock_unlock (&ovl->creator_lock);
}

/* Waits for the requests using the previous creator: after it, ctx may be
 * freed. */
void
overlay_set_creator (overlay *ovl, overlay_creator_fn fn, void *ctx)
{
  pthread_rwlock_wrlock (&ovl->creator_lock);
  ovl->creator = fn;
  ovl->creator_ctx = ctx;
  pthread_rwlock_unlock (&ovl->creator_lock);
}

static void
make_node (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev, const char *link)
{
  uid_t uid;
  gid_t gid;
  creator_ids (req, &uid, &gid);
  struct stat st;
  int ret = overlay_model_mknod (M (req), parent, name, mode, rdev, link, uid, gid, &st);
  if (ret < 0)
    fuse_reply_err (req, -ret);
  else
    reply_entry (req, 0, &st);
}

static void
op_mknod (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
  make_node (req, parent, name, mode, rdev, NULL);
}

static void
op_mkdir (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
  make_node (req, parent, name, S_IFDIR | (mode & 07777), 0, NULL);
}

static void
op_symlink (fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
  make_node (req, parent, name, S_IFLNK | 0777, 0, link);
}

static void
op_unlink (fuse_req_t req, fuse_ino_t parent, const char *name)
{
  fuse_reply_err (req, -overlay_model_unlink (M (req), parent, name));
}

static void
op_rmdir (fuse_req_t req, fuse_ino_t parent, const char *name)
{
  fuse_reply_err (req, -overlay_model_rmdir (M (req), parent, name));
}

static void
op_rename (fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname,
           unsigned int flags)
{
  fuse_reply_err (req, -overlay_model_rename (M (req), parent, name, newparent, newname, flags));
}

static void
op_link (fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
  struct stat st;
  int ret = overlay_model_link (M (req), ino, newparent, newname, &st);
  if (ret < 0)
    fuse_reply_err (req, -ret);
  else
    reply_entry (req, 0, &st);
}

static int
do_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  overlay *o = fuse_req_userdata (req);
  bool immutable = false;
  /* the commit lock shared: no commit comes between the model's open (and
   * copy-up) and reading the epoch its data file belongs to */
  pthread_rwlock_rdlock (&o->commit_lock);
  int fd = overlay_model_open (o->m, ino, fi->flags, &immutable);
  uint64_t epoch = o->epoch;
  pthread_rwlock_unlock (&o->commit_lock);
  if (fd < 0)
    return fd;
  ovl_file *h = xzalloc (sizeof *h);
  *h = (ovl_file) { .fd = fd, .ino = ino, .epoch = epoch };
  hlist_add (o, &o->files, &h->node);
  fi->fh = (uintptr_t) h;
  fi->keep_cache = immutable;
  return 0;
}

static void
op_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  int ret = do_open (req, ino, fi);
  if (ret < 0)
    fuse_reply_err (req, -ret);
  else
    fuse_reply_open (req, fi);
}

static void
op_create (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
  uid_t uid;
  gid_t gid;
  creator_ids (req, &uid, &gid);
  struct stat st;
  /* "/" is no name a CREATE can carry: it is an O_TMPFILE open, handed on
   * as a CREATE by overlay_worker_request_fix (the name the kernel sends) */
  int ret = strcmp (name, "/") == 0
              ? overlay_model_tmpfile (M (req), parent, mode, uid, gid, &st)
              : overlay_model_mknod (M (req), parent, name, S_IFREG | (mode & 07777), 0, NULL, uid, gid, &st);
  if (ret < 0)
    {
      fuse_reply_err (req, -ret);
      return;
    }
  fi->flags &= ~O_TRUNC;
  if ((ret = do_open (req, st.st_ino, fi)) < 0)
    {
      overlay_model_forget (M (req), st.st_ino, 1);
      fuse_reply_err (req, -ret);
      return;
    }
  struct fuse_entry_param e = { .ino = st.st_ino, .attr = st, .attr_timeout = OVL_TIMEOUT,
                                .entry_timeout = OVL_TIMEOUT };
  if (fuse_reply_create (req, &e, fi) < 0)
    {
      fileh_free (fuse_req_userdata (req), FH (fi));
      overlay_model_release (M (req), st.st_ino);
    }
}

/* Each session thread's read buffer, kept for the thread's life (a READ is
 * up to max_pages; allocating that per request would map and unmap it). */
static void
op_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
  (void) ino;
  char *buf = overlay_worker_read_buffer (size);
  size_t got = 0;
  while (got < size)
    {
      ssize_t n = pread (FH (fi)->fd, buf + got, size - got, off + (off_t) got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          fuse_reply_err (req, errno);
          return;
        }
      if (n == 0)
        break;
      got += (size_t) n;
    }
  fuse_reply_buf (req, buf, got);
}

static void
op_write_buf (fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off, struct fuse_file_info *fi)
{
  overlay *o = fuse_req_userdata (req);
  size_t size = fuse_buf_size (in);
  if (!write_begin (o, ino, FH (fi)))
    {
      /* consume it all the same: spliced data waits in the thread's pipe */
      struct fuse_bufvec sink = FUSE_BUFVEC_INIT (size);
      sink.buf[0].mem = overlay_worker_read_buffer (size);
      fuse_buf_copy (&sink, in, 0);
      fuse_reply_err (req, EBADF);
      return;
    }
  struct fuse_bufvec out = FUSE_BUFVEC_INIT (size);
  out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
  out.buf[0].fd = FH (fi)->fd;
  out.buf[0].pos = off;
  ssize_t n = fuse_buf_copy (&out, in, 0);
  write_end (o);
  if (n < 0)
    fuse_reply_err (req, -n);
  else
    fuse_reply_write (req, n);
}

static void
op_release (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  fileh_free (fuse_req_userdata (req), FH (fi));
  overlay_model_release (M (req), ino);
  fuse_reply_err (req, 0);
}

static void
op_fsync (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
  (void) ino;
  int fd = FH (fi)->fd;
  int r = datasync ? fdatasync (fd) : fsync (fd);
  fuse_reply_err (req, r < 0 ? errno : 0);
}

static void
op_fallocate (fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
  overlay *o = fuse_req_userdata (req);
  if (!write_begin (o, ino, FH (fi)))
    {
      fuse_reply_err (req, EBADF);
      return;
    }
  int r = fallocate (FH (fi)->fd, mode, off, len) < 0 ? errno : 0;
  write_end (o);
  fuse_reply_err (req, r);
}

static void
op_copy_file_range (fuse_req_t req, fuse_ino_t ino_in, off_t off_in, struct fuse_file_info *fi_in,
                    fuse_ino_t ino_out, off_t off_out, struct fuse_file_info *fi_out, size_t len, int flags)
{
  (void) ino_in;
  overlay *o = fuse_req_userdata (req);
  if (!write_begin (o, ino_out, FH (fi_out)))
    {
      fuse_reply_err (req, EBADF);
      return;
    }
  loff_t a = off_in, b = off_out;
  ssize_t n = copy_file_range (FH (fi_in)->fd, &a, FH (fi_out)->fd, &b, len, flags);
  int e = errno;
  write_end (o);
  if (n < 0)
    fuse_reply_err (req, e);
  else
    fuse_reply_write (req, n);
}

static void
op_lseek (fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
  (void) ino;
  off_t r = lseek (FH (fi)->fd, off, whence);
  if (r < 0)
    fuse_reply_err (req, errno);
  else
    fuse_reply_lseek (req, r);
}

/* A memory budget refused the request: say so in the build log (the step
 * only sees an errno). Called by a libfuse worker, which libfuse may cancel
 * when the session ends: no cancellation inside the logger's locks (see
 * perror below). */
static void
log_budget_notices (fuse_req_t req)
{
  for (char *msg; (msg = overlay_model_take_notice (M (req)));)
    {
      int old;
      pthread_setcancelstate (PTHREAD_CANCEL_DISABLE, &old);
      log_warn ("%s", msg);
      pthread_setcancelstate (old, NULL);
      free (msg);
    }
}

static void
op_opendir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  dir_handle *h = xzalloc (sizeof *h);
  int ret = overlay_model_opendir (M (req), ino, &h->l);
  if (ret < 0)
    {
      free (h);
      if (ret == -ENOMEM)
        log_budget_notices (req);
      fuse_reply_err (req, -ret);
      return;
    }
  fi->fh = (uintptr_t) h;
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  overlay *o = fuse_req_userdata (req);
  hlist_add (o, &o->dirs, &h->node);
  if (fuse_reply_open (req, fi) < 0)
    dirh_free (o, h);
}

/* Offsets are positions in the listing taken at opendir: stable for the
 * handle's life whatever happens to the directory meanwhile. The listing is
 * immutable, so it is read without the model lock. */
static void
do_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi, bool plus)
{
  dir_handle *h = (dir_handle *) (uintptr_t) fi->fh;
  const overlay_dirent *v = h->l->v;
  autofree char *buf = xmalloc (size);
  size_t used = 0;
  for (size_t i = off < 0 ? 0 : off; i < h->l->n + 2; i++)
    {
      const char *name = i == 0 ? "." : i == 1 ? ".." : v[i - 2].name;
      struct stat st = { .st_ino = i < 2 ? ino : v[i - 2].ino, .st_mode = i < 2 ? S_IFDIR : v[i - 2].type };
      size_t n;
      if (!plus)
        n = fuse_add_direntry (req, buf + used, size - used, name, &st, i + 1);
      else
        {
          struct fuse_entry_param e = { 0 };
          if (i >= 2)
            {
              if (overlay_model_lookup (M (req), ino, name, &e.attr) < 0)
                continue; /* removed since opendir */
              e.ino = e.attr.st_ino;
              e.attr_timeout = e.entry_timeout = OVL_TIMEOUT;
            }
          else
            e.attr = st;
          n = fuse_add_direntry_plus (req, buf + used, size - used, name, &e, i + 1);
          if (n > size - used && e.ino)
            overlay_model_forget (M (req), e.ino, 1);
        }
      if (n > size - used)
        break;
      used += n;
    }
  fuse_reply_buf (req, buf, used);
}

static void
op_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
  do_readdir (req, ino, size, off, fi, false);
}

static void
op_readdirplus (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
  do_readdir (req, ino, size, off, fi, true);
}

static void
op_releasedir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void) ino;
  dirh_free (fuse_req_userdata (req), (dir_handle *) (uintptr_t) fi->fh);
  fuse_reply_err (req, 0);
}

static void
op_fsyncdir (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
  (void) ino;
  (void) datasync;
  (void) fi;
  fuse_reply_err (req, 0);
}

static void
op_statfs (fuse_req_t req, fuse_ino_t ino)
{
  (void) ino;
  struct statvfs st;
  int ret = overlay_model_statfs (M (req), &st);
  if (ret < 0)
    fuse_reply_err (req, -ret);
  else
    fuse_reply_statfs (req, &st);
}

static void
op_setxattr (fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags)
{
  int ret = overlay_model_setxattr (M (req), ino, name, value, size, flags);
  if (ret == -ENOSPC)
    log_budget_notices (req);
  fuse_reply_err (req, -ret);
}

/* getxattr/listxattr protocol: size 0 asks for the length only; ret is the
 * model's answer (a length, or -errno). */
static void
reply_xattr (fuse_req_t req, int ret, const char *buf, size_t size)
{
  if (ret < 0)
    fuse_reply_err (req, -ret);
  else if (!size)
    fuse_reply_xattr (req, ret);
  else
    fuse_reply_buf (req, buf, ret);
}

static void
op_getxattr (fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
  autofree char *buf = size ? xmalloc (size) : NULL;
  reply_xattr (req, overlay_model_getxattr (M (req), ino, name, buf, size), buf, size);
}

static void
op_listxattr (fuse_req_t req, fuse_ino_t ino, size_t size)
{
  autofree char *buf = size ? xmalloc (size) : NULL;
  reply_xattr (req, overlay_model_listxattr (M (req), ino, buf, size), buf, size);
}

static void
op_removexattr (fuse_req_t req, fuse_ino_t ino, const char *name)
{
  fuse_reply_err (req, -overlay_model_removexattr (M (req), ino, name));
}

static void
op_access (fuse_req_t req, fuse_ino_t ino, int mask)
{
  (void) mask;
  struct stat st;
  /* default_permissions: the kernel already checked the mode bits */
  fuse_reply_err (req, -overlay_model_getattr (M (req), ino, &st) > 0 ? ESTALE : 0);
}

static const struct fuse_lowlevel_ops ovl_ops = {
  .init = op_init,
  .lookup = op_lookup,
  .forget = op_forget,
  .forget_multi = op_forget_multi,
  .getattr = op_getattr,
  .setattr = op_setattr,
  .readlink = op_readlink,
  .mknod = op_mknod,
  .mkdir = op_mkdir,
  .symlink = op_symlink,
  .unlink = op_unlink,
  .rmdir = op_rmdir,
  .rename = op_rename,
  .link = op_link,
  .open = op_open,
  .create = op_create,
  .read = op_read,
  .write_buf = op_write_buf,
  /* no .flush: nothing to do at close (data goes straight to the upper
   * file), and the ENOSYS libfuse answers makes the kernel stop sending
   * FLUSH, one round trip less per close(2) */
  .release = op_release,
  .fsync = op_fsync,
  .fallocate = op_fallocate,
  .copy_file_range = op_copy_file_range,
  .lseek = op_lseek,
  .opendir = op_opendir,
  .readdir = op_readdir,
  .readdirplus = op_readdirplus,
  .releasedir = op_releasedir,
  .fsyncdir = op_fsyncdir,
  .statfs = op_statfs,
  .setxattr = op_setxattr,
  .getxattr = op_getxattr,
  .listxattr = op_listxattr,
  .removexattr = op_removexattr,
  .access = op_access,
};

int
overlay_new (const overlay_config *cfg, overlay **out, kiln_error **err)
{
  overlay *o = xzalloc (sizeof *o);
  o->single = cfg->id_mode == OVERLAY_IDS_SINGLE;
  if (overlay_model_new (cfg, &o->m, err) < 0)
    {
      free (o);
      return kiln_error_wrap (err, "creating overlay");
    }
  pthread_mutex_init (&o->hlock, NULL);
  pthread_mutex_init (&o->stale_lock, NULL);
  pthread_rwlock_init (&o->creator_lock, NULL);
  pthread_rwlockattr_t ra;
  pthread_rwlockattr_init (&ra);
  pthread_rwlockattr_setkind_np (&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&o->commit_lock, &ra);
  pthread_rwlockattr_destroy (&ra);
  *out = o;
  return 0;
}

int
overlay_mount_fd (const char *mountpoint, uid_t owner_uid, gid_t owner_gid, int *fd_out, kiln_error **err)
{
  int fd = open ("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_make (err, errno, "open '/dev/fuse'");
  char opts[256];
  snprintf (opts, sizeof opts, "fd=%d,rootmode=40000,user_id=%u,group_id=%u,default_permissions,allow_other",
            fd, (unsigned) owner_uid, (unsigned) owner_gid);
  if (mount ("kiln", mountpoint, "fuse.kiln", MS_NOSUID | MS_NODEV, opts) < 0)
    {
      int e = errno;
      close (fd);
      return kiln_error_make (err, e, "mount fuse on '%s'", mountpoint);
    }
  *fd_out = fd;
  return 0;
}

static void *
loop_thread (void *ud)
{
  overlay *o = ud;
  struct fuse_loop_config cfg = { .clone_fd = 0, .max_idle_threads = 16 };
  fuse_session_loop_mt (o->se, &cfg);
  return NULL;
}

int
overlay_serve_fd (overlay *ovl, int fuse_fd, kiln_error **err)
{
  if (ovl->se)
    {
      close (fuse_fd);
      return kiln_error_make (err, EBUSY, "overlay is already being served");
    }
  char *argv[] = { (char *) "kiln", NULL };
  struct fuse_args args = FUSE_ARGS_INIT (1, argv);
  ovl->se = fuse_session_new (&args, &ovl_ops, sizeof ovl_ops, ovl);
  fuse_opt_free_args (&args);
  if (!ovl->se)
    {
      close (fuse_fd);
      return kiln_error_make (err, 0, "create fuse session");
    }
  /* the session adopts the mounted fd, with kiln's I/O on it */
  if (overlay_worker_io_attach (&ovl->io, ovl->se, fuse_fd) != 0)
    {
      close (fuse_fd);
      fuse_session_destroy (ovl->se);
      ovl->se = NULL;
      return kiln_error_make (err, 0, "attach fuse session to fd %d", fuse_fd);
    }
  int e = pthread_create (&ovl->thread, NULL, loop_thread, ovl);
  if (e)
    {
      fuse_session_unmount (ovl->se);
      fuse_session_destroy (ovl->se);
      ovl->se = NULL;
      return kiln_error_make (err, e, "start fuse session thread");
    }
  ovl->running = true;
  return 0;
}

int
overlay_mount (overlay *ovl, const char *mountpoint, kiln_error **err)
{
  int fd;
  if (overlay_mount_fd (mountpoint, getuid (), getgid (), &fd, err) < 0)
    return -1;
  ovl->mountpoint = xstrdup (mountpoint);
  if (overlay_serve_fd (ovl, fd, err) < 0)
    {
      umount2 (mountpoint, MNT_DETACH);
      free (ovl->mountpoint);
      ovl->mountpoint = NULL;
      return -1;
    }
  return 0;
}

void
overlay_stop (overlay *ovl)
{
  if (!ovl->se)
    return;
  fuse_session_exit (ovl->se);
  if (ovl->mountpoint)
    {
      /* ends the connection: the loop's reads fail with ENODEV */
      umount2 (ovl->mountpoint, MNT_DETACH);
      free (ovl->mountpoint);
      ovl->mountpoint = NULL;
    }
  if (ovl->running)
    pthread_join (ovl->thread, NULL);
  ovl->running = false;
  overlay_worker_io_stop (&ovl->io);
  fuse_session_unmount (ovl->se);
  fuse_session_destroy (ovl->se);
  ovl->se = NULL;
  while (ovl->dirs)
    dirh_free (ovl, (dir_handle *) ovl->dirs);
  while (ovl->files)
    {
      fuse_ino_t ino = ((ovl_file *) ovl->files)->ino;
      fileh_free (ovl, (ovl_file *) ovl->files);
      overlay_model_release (ovl->m, ino);
    }
}

void
overlay_free (overlay *ovl)
{
  if (!ovl)
    return;
  overlay_stop (ovl);
  overlay_model_free (ovl->m);
  pthread_mutex_destroy (&ovl->hlock);
  pthread_mutex_destroy (&ovl->stale_lock);
  pthread_rwlock_destroy (&ovl->commit_lock);
  pthread_rwlock_destroy (&ovl->creator_lock);
  free (ovl->stale);
  free (ovl);
}

int
overlay_record_chown (overlay *ovl, uint64_t ino, uid_t uid, gid_t gid, kiln_error **err)
{
  int ret = overlay_model_chown (ovl->m, ino, uid, gid);
  if (ret < 0)
    return kiln_error_make (err, -ret, "record owner of inode %llu", (unsigned long long) ino);
  /* the mode may have lost setuid/setgid: drop the kernel's cached attrs */
  if (ovl->se)
    fuse_lowlevel_notify_inval_inode (ovl->se, ino, -1, 0);
  return 0;
}

int
overlay_serve_cb (void *ovl, int fuse_fd, kiln_error **err)
{
  return overlay_serve_fd (ovl, fuse_fd, err);
}

int
overlay_record_chown_cb (void *ovl, int target_fd, const char *path, uid_t uid, gid_t gid)
{
  struct stat st;
  if (fstat (target_fd, &st) < 0)
    return -errno;
  autoerror kiln_error *e = NULL;
  if (overlay_record_chown (ovl, st.st_ino, uid, gid, &e) < 0)
    {
      log_debug ("recording chown of '%s': %s", path, e ? e->msg : "failed");
      return e && e->status ? -e->status : -EIO;
    }
  log_debug ("chown '%s' to %d:%d recorded in the overlay", path, (int) uid, (int) gid);
  return 0;
}

int
overlay_owner_cb (void *ovl, uint64_t ino, uid_t *uid, gid_t *gid)
{
  return overlay_model_owner (((overlay *) ovl)->m, ino, uid, gid);
}

/* No request is in flight between steps, so the kernel can take these
 * now; they are sent outside the model lock all the same. With parents,
 * the parent's attributes (link count, times) and cached listing of each
 * name are dropped too; otherwise the list names those inodes itself (name
 * NULL), once per directory. */
static void
send_invals (overlay *ovl, overlay_model_inval *inv, size_t n, bool parents)
{
  for (size_t i = 0; ovl->se && i < n; i++)
    {
      if (inv[i].name)
        fuse_lowlevel_notify_inval_entry (ovl->se, inv[i].parent, inv[i].name, strlen (inv[i].name));
      if (parents || !inv[i].name)
        fuse_lowlevel_notify_inval_inode (ovl->se, inv[i].parent, 0, 0);
    }
  overlay_model_invals_free (inv, n);
}

int
overlay_add_layers (overlay *ovl, overlay_lower *lower, unsigned first)
{
  overlay_model_inval *inv;
  size_t n;
  int r = overlay_model_push_layers (ovl->m, lower, first, &inv, &n);
  send_invals (ovl, inv, n, false);
  return r;
}

int
overlay_begin_step (overlay *ovl, uid_t create_uid, gid_t create_gid, const char *const *mask_paths)
{
  overlay_model_inval *inv;
  size_t n;
  overlay_model_set_step (ovl->m, create_uid, create_gid, mask_paths, &inv, &n);
  send_invals (ovl, inv, n, true);
  /* Pages a revoked handle wrote into the kernel's cache stayed there when
   * their write-back was refused: the step reads what its layers hold. */
  pthread_mutex_lock (&ovl->stale_lock);
  autofree uint64_t *stale = steal_pointer (&ovl->stale);
  size_t cap = ovl->stale_cap;
  ovl->stale_cap = ovl->stale_n = 0;
  pthread_mutex_unlock (&ovl->stale_lock);
  for (size_t i = 0; ovl->se && i < cap; i++)
    if (stale[i])
      fuse_lowlevel_notify_inval_inode (ovl->se, stale[i], 0, 0);
  return 0;
}

uint64_t
overlay_refused_writes (overlay *ovl)
{
  return __atomic_load_n (&ovl->refused, __ATOMIC_RELAXED);
}

int
overlay_commit (overlay *ovl, overlay_changes **out, kiln_error **err)
{
  /* waits for the writes in flight; then every older handle only reads */
  pthread_rwlock_wrlock (&ovl->commit_lock);
  int r = overlay_model_commit (ovl->m, out, err);
  ovl->epoch++;
  pthread_rwlock_unlock (&ovl->commit_lock);
  if (r < 0)
    return kiln_error_wrap (err, "committing overlay");
  return 0;
}
