/* overlay_worker.c - what libfuse's worker threads need besides the
 * request handlers: a per-thread READ buffer, the INIT flags libfuse 3.14
 * drops (overlay_worker_writev), and a perror with which a worker cancelled
 * by libfuse cannot leave stderr locked. */
#include "overlay/overlay_worker.h"
#include "overlay/overlay_ring.h"
#include "util/alloc.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct read_buf
{
  size_t cap;
  char data[];
} read_buf;

static pthread_key_t read_buf_key;
static pthread_once_t read_buf_once = PTHREAD_ONCE_INIT;

static void
read_buf_key_init (void)
{
  if (pthread_key_create (&read_buf_key, free) != 0)
    abort ();
}

char *
overlay_worker_read_buffer (size_t size)
{
  pthread_once (&read_buf_once, read_buf_key_init);
  read_buf *b = pthread_getspecific (read_buf_key);
  if (b == NULL || b->cap < size)
    {
      free (b);
      b = xmalloc (sizeof *b + size);
      b->cap = size;
      pthread_setspecific (read_buf_key, b);
    }
  return b->data;
}

void
overlay_worker_io_want (overlay_worker_io *io, bool parallel_dirops, bool handle_killpriv)
{
  /* V2 (Linux 5.11+; an older kernel ignores the bit) sets SB_NOSEC on the
   * mount: a write stops asking for security.capability once the kernel
   * found none, until the inode's attributes change. Every write still goes
   * through file_remove_privs, which sends the SETATTR overlay.c's
   * kill_priv_mask answers, so FUSE_WRITE_KILL_SUIDGID (which libfuse 3.14
   * does not pass on) is not needed. */
  io->init_flags = (parallel_dirops ? FUSE_PARALLEL_DIROPS : 0)
                   | (handle_killpriv ? FUSE_HANDLE_KILLPRIV | FUSE_HANDLE_KILLPRIV_V2 : 0);
}

/* The INIT reply's payload size for the io_uring entries: the largest
 * request argument the kernel may send (a WRITE of max_write) or answer it
 * may ask for (a READ of max_pages). */
static size_t
init_max_payload (const struct fuse_init_out *a, size_t len)
{
  size_t p = a->max_write, page = (size_t) sysconf (_SC_PAGESIZE);
  if (len >= offsetof (struct fuse_init_out, max_pages) + sizeof a->max_pages && (a->flags & FUSE_MAX_PAGES)
      && (size_t) a->max_pages * page > p)
    p = (size_t) a->max_pages * page;
  return p;
}

ssize_t
overlay_worker_writev (overlay_worker_io *io, int fd, struct iovec *iov, int count)
{
  ssize_t done;
  if (overlay_ring_reply (iov, count, &done))
    return done;
  /* libfuse sends a reply as the header and then its argument: the INIT
   * reply is a successful reply (notifications have unique 0) whose
   * argument is a struct fuse_init_out of protocol 7 (shorter for kernels
   * before 7.23, which kiln does not run on) */
  if (!__atomic_load_n (&io->init_sent, __ATOMIC_ACQUIRE) && count >= 2 && iov[0].iov_len == sizeof (struct fuse_out_header)
      && iov[1].iov_len >= offsetof (struct fuse_init_out, max_write))
    {
      const struct fuse_out_header *h = iov[0].iov_base;
      struct fuse_init_out *a = iov[1].iov_base;
      if (h->error == 0 && h->unique != 0 && a->major == FUSE_KERNEL_VERSION)
        {
          a->flags |= io->init_flags;
          bool uring = io->uring_wanted && io->uring_offered && (a->flags & FUSE_INIT_EXT)
                       && iov[1].iov_len >= offsetof (struct fuse_init_out, flags2) + sizeof a->flags2;
          if (uring)
            a->flags2 |= OVERLAY_RING_INIT_FLAGS2_URING;
          __atomic_store_n (&io->init_sent, true, __ATOMIC_RELEASE);
          ssize_t n = writev (fd, iov, count);
          /* the kernel took the reply: the connection is initialized and
           * the queues may register */
          if (n >= 0 && uring)
            {
              int e = errno;
              io->ring = overlay_ring_start (io->se, fd, init_max_payload (a, iov[1].iov_len));
              errno = e;
            }
          return n;
        }
    }
  return writev (fd, iov, count);
}

static ssize_t
io_writev (int fd, struct iovec *iov, int count, void *ud)
{
  return overlay_worker_writev (ud, fd, iov, count);
}

/* Whether the kernel's INIT offers FUSE over io_uring (flags2, which
 * libfuse 3.14 does not keep). */
static void
note_init (overlay_worker_io *io, const void *buf, ssize_t n)
{
  const struct fuse_in_header *h = buf;
  const struct fuse_init_in *a = (const struct fuse_init_in *) (h + 1);
  if (n < (ssize_t) (sizeof *h + offsetof (struct fuse_init_in, flags2) + sizeof a->flags2) || h->opcode != FUSE_INIT)
    return;
  io->uring_offered = (a->flags & FUSE_INIT_EXT) && (a->flags2 & OVERLAY_RING_INIT_FLAGS2_URING);
  /* a kernel that has FUSE over io_uring but was not told to offer it:
   * say so once, for whoever reads the debug log wondering */
  static bool told;
  if (!io->uring_offered && io->uring_wanted && !__atomic_exchange_n (&told, true, __ATOMIC_RELAXED)
      && access ("/sys/module/fuse/parameters/enable_uring", F_OK) == 0)
    log_debug ("fuse: requests through /dev/fuse; this kernel has FUSE over io_uring, off as the fuse "
               "module's enable_uring parameter is (/sys/module/fuse/parameters/enable_uring)");
}

void
overlay_worker_request_fix (void *buf, size_t len)
{
  /* FUSE_TMPFILE carries what a CREATE does (fuse_create_in, then the
   * name, "/" for every O_TMPFILE open: vfs_tmpfile's dentry) */
  struct fuse_in_header *h = buf;
  static const char slash[] = "/";
  if (len != sizeof *h + sizeof (struct fuse_create_in) + sizeof slash || h->opcode != FUSE_TMPFILE
      || h->len != len || memcmp ((char *) buf + len - sizeof slash, slash, sizeof slash) != 0)
    return;
  h->opcode = FUSE_CREATE;
}

static ssize_t
io_read (int fd, void *buf, size_t len, void *ud)
{
  overlay_worker_io *io = ud;
  ssize_t n = read (fd, buf, len);
  if (n > 0 && !__atomic_load_n (&io->init_sent, __ATOMIC_ACQUIRE))
    note_init (io, buf, n);
  if (n > 0)
    overlay_worker_request_fix (buf, (size_t) n);
  return n;
}

/* No splice functions: libfuse then never splices (it offers the
 * filesystem no SPLICE_* capability), so every request passes io_read. */
static const struct fuse_custom_io worker_io = {
  .writev = io_writev,
  .read = io_read,
};

int
overlay_worker_io_attach (overlay_worker_io *io, struct fuse_session *se, int fd)
{
  io->se = se;
  io->uring_wanted = overlay_ring_wanted ();
  return fuse_session_custom_io (se, &worker_io, fd);
}

void
overlay_worker_io_stop (overlay_worker_io *io)
{
  if (io->ring)
    log_debug ("fuse io_uring: %llu requests answered through the queues",
               (unsigned long long) overlay_ring_answered (io->ring));
  overlay_ring_stop (io->ring);
  io->ring = NULL;
}

/* libfuse 3.14's session loop ends by pthread_cancel()ing its workers, and
 * a worker is cancellable while it reads the device; when that read fails
 * (ECONNABORTED as a stage's namespace goes away), it calls perror() there.
 * glibc's perror takes stderr's lock with no cancellation clean-up: a
 * worker cancelled inside its write(2) dies holding the lock, and kiln's
 * next progress line waits for it for ever (CI run 5 of session 6: one
 * thread left, in a futex). This definition, found before libc's by the
 * dynamic linker for libfuse's calls too, writes the same line with one
 * write(2), no lock and cancellation off. */
void
perror (const char *s)
{
  int e = errno, old;
  /* That read failing with ECONNABORTED is the end of a stage's mount,
   * not an error (libfuse itself is silent about ENODEV, the same end
   * seen earlier): no line in the build's output for it. */
  if (e == ECONNABORTED && s && strcmp (s, "fuse: reading device") == 0)
    return;
  pthread_setcancelstate (PTHREAD_CANCEL_DISABLE, &old);
  char msg[512], eb[128];
  const char *es = strerror_r (e, eb, sizeof eb);
  int n = snprintf (msg, sizeof msg, "%s%s%s\n", s && *s ? s : "", s && *s ? ": " : "", es);
  if (n > (int) sizeof msg - 1)
    {
      n = (int) sizeof msg - 1;
      msg[n - 1] = '\n';
    }
  ssize_t off = 0;
  while (off < n)
    {
      ssize_t w = write (STDERR_FILENO, msg + off, (size_t) (n - off));
      if (w > 0)
        off += w;
      else if (w == 0 || errno != EINTR)
        break;
    }
  pthread_setcancelstate (old, NULL);
  errno = e;
}
