/* overlay_ring.c - FUSE over io_uring for libfuse 3.14 (overlay_ring.h).
 *
 * The protocol (Linux 6.14, fs/fuse/dev_uring.c, uapi 7.42): each entry
 * registers two buffers with FUSE_IO_URING_CMD_REGISTER, a 288-byte header
 * (the fuse_in_header, the request's first argument, and the entry's
 * in/out record) and a payload buffer for the other arguments. The SQE
 * completes when a request is in them; the answer goes back, with the
 * fetch of the next request, as FUSE_IO_URING_CMD_COMMIT_AND_FETCH naming
 * the request's commit id: the fuse_out_header in the header buffer, every
 * reply argument in the payload. */
#include "overlay/overlay_ring.h"
#include "overlay/overlay_worker.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

/* uapi 7.42 (not in Debian 12's <linux/fuse.h>) */
#define URING_IN_OUT_HEADER_SZ 128
#define URING_OP_IN_OUT_SZ 128
enum
{
  URING_CMD_REGISTER = 1,
  URING_CMD_COMMIT_AND_FETCH = 2,
};
struct uring_ent_in_out
{
  uint64_t flags;
  uint64_t commit_id;
  uint32_t payload_sz;
  uint32_t padding;
  uint64_t reserved;
};
struct uring_req_header
{
  char in_out[URING_IN_OUT_HEADER_SZ];
  char op_in[URING_OP_IN_OUT_SZ];
  struct uring_ent_in_out ent;
};
struct uring_cmd_req
{
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};
_Static_assert (sizeof (struct uring_req_header) == 288, "fuse_uring_req_header is 288 bytes");
_Static_assert (sizeof (struct uring_cmd_req) <= 80, "the command fits a 128-byte SQE");

/* Entries per queue: one thread answers them in turn, the others hold the
 * requests that arrive meanwhile (writeback sends several at once). */
#define QUEUE_DEPTH 4
/* Room in front of the payload for the fuse_in_header and the first
 * argument, so libfuse gets one contiguous request without a copy of the
 * payload (a WRITE's data). */
#define PAYLOAD_LEAD 4096
/* Registrations again of one entry (command_failed): REGISTER before the
 * kernel marked the connection initialized answers EAGAIN, though the INIT
 * reply's writev has returned by then; a refused commit. */
#define REGISTER_RETRIES 1000

typedef struct ring_queue ring_queue;

typedef struct ring_ent
{
  ring_queue *q;
  struct uring_req_header *hdr; /* page-aligned, its own page */
  char *area;                   /* PAYLOAD_LEAD + the payload */
  char *payload;
  struct iovec iov[2];
  uint64_t commit_id;
  int last_cmd;
  int retries;
  bool replied;
} ring_ent;

struct ring_queue
{
  overlay_ring *r;
  int qid;
  int efd;
  pthread_t tid;
  bool started;
  bool warned; /* one warning per queue, not one per entry */
  struct io_uring ring;
  bool ring_ok;
  ring_ent ent[QUEUE_DEPTH];
};

struct overlay_ring
{
  struct fuse_session *se;
  int fd;
  size_t payload_sz;
  int nq;
  ring_queue *qs;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int ready, failed;
  uint64_t answered;
};

/* the entry whose request the calling ring thread is answering */
static __thread ring_ent *cur_ent;

static int
possible_cpus (void)
{
  /* the kernel has one queue per possible CPU (num_possible_cpus), numbered
   * by CPU: "0-1", "0-3,8-11" */
  autofree char *buf = NULL;
  size_t len;
  autoerror kiln_error *err = NULL;
  /* a sysfs file says it is a page long whatever it holds: the limit is a page */
  if (fs_read_file_at (AT_FDCWD, "/sys/devices/system/cpu/possible", (size_t) sysconf (_SC_PAGESIZE), &buf, &len,
                       &err) < 0)
    return -1;
  int count = 0;
  for (char *p = buf; *p && *p != '\n';)
    {
      char *end;
      long a = strtol (p, &end, 10), b = a;
      if (end == p)
        return -1;
      if (*end == '-')
        {
          p = end + 1;
          b = strtol (p, &end, 10);
          if (end == p || b < a)
            return -1;
        }
      count += (int) (b - a + 1);
      p = *end == ',' ? end + 1 : end;
    }
  return count > 0 && count <= 4096 ? count : -1;
}

static int
ring_init (struct io_uring *ring, unsigned entries)
{
  struct io_uring_params p = { .flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE, .cq_entries = 2 * entries };
  return io_uring_queue_init_params (entries, ring, &p);
}

static bool wanted;

static void
probe_once (void)
{
  const char *v = getenv ("KILN_FUSE_URING");
  if (v && (strcmp (v, "off") == 0 || strcmp (v, "0") == 0))
    return;
  if (v && *v && strcmp (v, "auto") != 0)
    log_warn ("KILN_FUSE_URING='%s' is neither 'auto' nor 'off': using auto", v);
  struct io_uring ring;
  if (ring_init (&ring, 2) < 0)
    return;
  io_uring_queue_exit (&ring);
  wanted = true;
}

bool
overlay_ring_wanted (void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once (&once, probe_once);
  return wanted;
}

static void
sqe_cmd (struct io_uring_sqe *sqe, ring_ent *e, int cmd)
{
  memset (sqe, 0, 128);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = e->q->r->fd;
  sqe->cmd_op = (uint32_t) cmd;
  io_uring_sqe_set_data (sqe, e);
  struct uring_cmd_req *req = (struct uring_cmd_req *) sqe->cmd;
  req->qid = (uint16_t) e->q->qid;
  if (cmd == URING_CMD_REGISTER)
    {
      sqe->addr = (uint64_t) (uintptr_t) e->iov;
      sqe->len = 2;
    }
  else
    req->commit_id = e->commit_id;
  e->last_cmd = cmd;
}

/* The queue has QUEUE_DEPTH + 1 SQEs: one per entry and the stop poll, and
 * an entry has at most one command in flight, so there is always one. */
static void
queue_cmd (ring_queue *q, ring_ent *e, int cmd)
{
  struct io_uring_sqe *sqe = io_uring_get_sqe (&q->ring);
  if (!sqe)
    {
      log_warn ("fuse io_uring queue %d: no free submission entry", q->qid);
      return;
    }
  sqe_cmd (sqe, e, cmd);
}

/* Rebuild the request as read(2) of /dev/fuse would give it and let libfuse
 * dispatch it; its reply lands in the entry through overlay_ring_reply. */
static void
answer (ring_queue *q, ring_ent *e)
{
  struct fuse_in_header in;
  memcpy (&in, e->hdr->in_out, sizeof in);
  uint32_t psz = e->hdr->ent.payload_sz;
  e->commit_id = e->hdr->ent.commit_id;
  size_t lead = sizeof in;
  bool ok = in.len >= sizeof in + (size_t) psz && psz <= q->r->payload_sz;
  if (ok)
    {
      size_t oplen = in.len - sizeof in - psz;
      ok = oplen <= URING_OP_IN_OUT_SZ;
      lead += oplen;
    }
  e->replied = false;
  if (ok)
    {
      char *start = e->payload - lead;
      memcpy (start, &in, sizeof in);
      memcpy (start + sizeof in, e->hdr->op_in, lead - sizeof in);
      overlay_worker_request_fix (start, in.len);
      struct fuse_buf buf = { .size = in.len, .mem = start };
      cur_ent = e;
      fuse_session_process_buf (q->r->se, &buf);
      cur_ent = NULL;
    }
  if (!e->replied)
    {
      /* a request libfuse does not answer (or a malformed one): the entry
       * must still go back to the kernel, with an error for the request */
      struct fuse_out_header out = { .len = sizeof out, .error = -EIO, .unique = in.unique };
      memcpy (e->hdr->in_out, &out, sizeof out);
      e->hdr->ent.payload_sz = 0;
    }
  __atomic_add_fetch (&q->r->answered, 1, __ATOMIC_RELAXED);
  queue_cmd (q, e, URING_CMD_COMMIT_AND_FETCH);
}

bool
overlay_ring_reply (const struct iovec *iov, int count, ssize_t *written)
{
  ring_ent *e = cur_ent;
  if (!e || e->replied || count < 1 || iov[0].iov_len < sizeof (struct fuse_out_header))
    return false;
  struct fuse_out_header out;
  memcpy (&out, iov[0].iov_base, sizeof out);
  if (out.unique == 0 || out.unique != e->commit_id)
    return false;
  size_t cap = e->q->r->payload_sz, n = 0;
  for (int i = 1; i < count; i++)
    {
      if (iov[i].iov_len > cap - n)
        {
          out.error = -EIO;
          n = 0;
          break;
        }
      if ((char *) iov[i].iov_base != e->payload + n)
        memmove (e->payload + n, iov[i].iov_base, iov[i].iov_len);
      n += iov[i].iov_len;
    }
  out.len = (uint32_t) (sizeof out + n);
  memcpy (e->hdr->in_out, &out, sizeof out);
  e->hdr->ent.payload_sz = (uint32_t) n;
  e->replied = true;
  *written = (ssize_t) out.len;
  return true;
}

/* A failed command. The connection's end (unmount, abort) is the normal
 * way out. REGISTER before the kernel marked the connection initialized
 * answers EAGAIN: again. A commit the kernel refuses (its request gone)
 * leaves the entry stuck in the kernel, never to be handed a request: the
 * same buffers are registered again as a new entry, so the CPU's queue
 * never runs out of them (the kernel writes only into an entry it hands a
 * request, which the stuck one never is again). */
static void
command_failed (ring_queue *q, ring_ent *e, int res)
{
  if (res == -ENOTCONN || res == -ECONNABORTED || res == -ENODEV)
    return;
  bool again = e->last_cmd == URING_CMD_REGISTER && (res == -EAGAIN || res == -EINTR);
  if (!again && !q->warned)
    {
      q->warned = true;
      log_warn ("fuse io_uring queue %d: %s failed: %s", q->qid,
                e->last_cmd == URING_CMD_REGISTER ? "register" : "commit", strerror (-res));
    }
  if ((again || e->last_cmd == URING_CMD_COMMIT_AND_FETCH) && ++e->retries < REGISTER_RETRIES)
    {
      queue_cmd (q, e, URING_CMD_REGISTER);
      return;
    }
}

static void
queue_loop (ring_queue *q)
{
  for (;;)
    {
      int ret = io_uring_submit_and_wait (&q->ring, 1);
      if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
        {
          log_warn ("fuse io_uring queue %d: %s", q->qid, strerror (-ret));
          return;
        }
      struct io_uring_cqe *cqe;
      unsigned head, seen = 0, ready = io_uring_cq_ready (&q->ring);
      bool stop = false;
      io_uring_for_each_cqe (&q->ring, head, cqe)
        {
          seen++;
          ring_ent *e = io_uring_cqe_get_data (cqe);
          if (!e)
            stop = true;
          else if (cqe->res < 0)
            command_failed (q, e, cqe->res);
          else
            {
              answer (q, e);
              /* more requests waiting: this answer goes out now, not
               * after theirs (the last one goes with the next wait) */
              if (seen < ready)
                io_uring_submit (&q->ring);
            }
        }
      io_uring_cq_advance (&q->ring, seen);
      if (stop)
        return;
    }
}

static int
queue_setup (ring_queue *q)
{
  overlay_ring *r = q->r;
  if (ring_init (&q->ring, QUEUE_DEPTH + 1) < 0)
    return -1;
  q->ring_ok = true;
  long page = sysconf (_SC_PAGESIZE);
  for (int i = 0; i < QUEUE_DEPTH; i++)
    {
      ring_ent *e = &q->ent[i];
      e->q = q;
      e->hdr = mmap (NULL, (size_t) page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      e->area = mmap (NULL, PAYLOAD_LEAD + r->payload_sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (e->hdr == MAP_FAILED || e->area == MAP_FAILED)
        {
          e->hdr = e->hdr == MAP_FAILED ? NULL : e->hdr;
          e->area = e->area == MAP_FAILED ? NULL : e->area;
          return -1;
        }
      e->payload = e->area + PAYLOAD_LEAD;
      e->iov[0] = (struct iovec) { e->hdr, sizeof *e->hdr };
      e->iov[1] = (struct iovec) { e->payload, r->payload_sz };
      queue_cmd (q, e, URING_CMD_REGISTER);
    }
  struct io_uring_sqe *sqe = io_uring_get_sqe (&q->ring);
  if (!sqe)
    return -1;
  io_uring_prep_poll_add (sqe, q->efd, POLLIN);
  io_uring_sqe_set_data (sqe, NULL);
  return 0;
}

static void *
queue_thread (void *ud)
{
  ring_queue *q = ud;
  overlay_ring *r = q->r;
  /* on the queue's CPU: the kernel queues a task's request on the queue of
   * the CPU it runs on, so the answer runs where the request was made (a
   * cpuset without that CPU leaves the thread unpinned) */
  cpu_set_t set;
  CPU_ZERO (&set);
  CPU_SET (q->qid, &set);
  sched_setaffinity (0, sizeof set, &set);
  char name[16];
  snprintf (name, sizeof name, "kiln-fring-%d", q->qid);
  pthread_setname_np (pthread_self (), name);
  int ok = queue_setup (q);
  pthread_mutex_lock (&r->lock);
  if (ok < 0)
    r->failed++;
  r->ready++;
  pthread_cond_broadcast (&r->cond);
  pthread_mutex_unlock (&r->lock);
  if (ok == 0)
    queue_loop (q);
  return NULL;
}

static void
ring_free (overlay_ring *r)
{
  long page = sysconf (_SC_PAGESIZE);
  for (int i = 0; i < r->nq; i++)
    {
      ring_queue *q = &r->qs[i];
      if (q->started)
        {
          uint64_t one = 1;
          ssize_t w;
          do
            w = write (q->efd, &one, sizeof one);
          while (w < 0 && errno == EINTR);
          pthread_join (q->tid, NULL);
        }
      if (q->ring_ok)
        io_uring_queue_exit (&q->ring);
      if (q->efd >= 0)
        close (q->efd);
      for (int j = 0; j < QUEUE_DEPTH; j++)
        {
          if (q->ent[j].hdr)
            munmap (q->ent[j].hdr, (size_t) page);
          if (q->ent[j].area)
            munmap (q->ent[j].area, PAYLOAD_LEAD + r->payload_sz);
        }
    }
  free (r->qs);
  pthread_mutex_destroy (&r->lock);
  pthread_cond_destroy (&r->cond);
  free (r);
}

overlay_ring *
overlay_ring_start (struct fuse_session *se, int fd, size_t max_payload)
{
  int nq = possible_cpus ();
  if (nq < 1)
    {
      log_warn ("fuse io_uring: cannot read the possible CPUs: requests go through /dev/fuse");
      return NULL;
    }
  overlay_ring *r = xcalloc (1, sizeof *r);
  r->se = se;
  r->fd = fd;
  r->payload_sz = max_payload < 8192 ? 8192 : max_payload;
  r->nq = nq;
  r->qs = xcalloc ((size_t) nq, sizeof *r->qs);
  pthread_mutex_init (&r->lock, NULL);
  pthread_cond_init (&r->cond, NULL);
  /* the queue threads take no signal: kiln's main thread handles them */
  sigset_t all, old;
  sigfillset (&all);
  pthread_sigmask (SIG_BLOCK, &all, &old);
  int started = 0;
  for (int i = 0; i < nq; i++)
    {
      ring_queue *q = &r->qs[i];
      q->r = r;
      q->qid = i;
      q->efd = eventfd (0, EFD_CLOEXEC);
      if (q->efd < 0 || pthread_create (&q->tid, NULL, queue_thread, q) != 0)
        break;
      q->started = true;
      started++;
    }
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  pthread_mutex_lock (&r->lock);
  while (r->ready < started)
    pthread_cond_wait (&r->cond, &r->lock);
  bool ok = started == nq && r->failed == 0;
  pthread_mutex_unlock (&r->lock);
  if (!ok)
    {
      log_warn ("fuse io_uring: setting up %d queues failed: requests go through /dev/fuse", nq);
      ring_free (r);
      return NULL;
    }
  log_debug ("fuse io_uring: %d queues of %d entries", nq, QUEUE_DEPTH);
  return r;
}

void
overlay_ring_stop (overlay_ring *r)
{
  if (r)
    ring_free (r);
}

uint64_t
overlay_ring_answered (const overlay_ring *r)
{
  return r ? __atomic_load_n (&r->answered, __ATOMIC_RELAXED) : 0;
}
