/* overlay_worker.h - what libfuse's worker threads need besides the
 * request handlers (overlay.c). */
#ifndef KILN_OVERLAY_OVERLAY_WORKER_H
#define KILN_OVERLAY_OVERLAY_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* A buffer of at least size bytes owned by the calling thread (freed when
 * it exits): READ is answered from it with one pread and fuse_reply_buf,
 * never by splicing (docs/design/overlay.md, "Threading"). */
char *overlay_worker_read_buffer (size_t size);

/* kiln's own I/O on /dev/fuse (libfuse's fuse_session_custom_io), for one
 * thing: libfuse 3.14 leaves two flags a filesystem asks for out of its
 * INIT reply, FUSE_PARALLEL_DIROPS (libfuse pull request 861, 3.16) and
 * FUSE_HANDLE_KILLPRIV (issue 884), so the kernel never saw them, and it
 * knows nothing of FUSE_HANDLE_KILLPRIV_V2. overlay_worker_writev adds them
 * to the INIT reply, once, where the kernel offered them (V2 with
 * HANDLE_KILLPRIV); every other message goes out unchanged. */
struct fuse_session;
struct overlay_ring;
typedef struct overlay_worker_io
{
  uint32_t init_flags;   /* FUSE_* INIT flags to add (overlay_worker_io_want) */
  bool init_sent;        /* the INIT reply went out */
  bool uring_wanted;     /* ask for FUSE over io_uring (overlay_ring_wanted at attach) */
  bool uring_offered;    /* the kernel's INIT offered it */
  struct fuse_session *se;
  struct overlay_ring *ring; /* the io_uring queues, once started (overlay_ring.h) */
} overlay_worker_io;

/* Called from the filesystem's init handler with what it wants and the
 * kernel offers (conn->want & conn->capable). */
void overlay_worker_io_want (overlay_worker_io *io, bool parallel_dirops, bool handle_killpriv);
/* Serve the mounted /dev/fuse fd with session se through kiln's I/O: read(2)
 * for what comes in (never splice(2): see overlay_worker_request_fix),
 * overlay_worker_writev for what goes out.
 * libfuse hands the I/O functions the session's user data, so that must
 * begin with io. Where the kernel offers FUSE over io_uring and
 * overlay_ring_wanted(), the INIT reply asks for it and the queues start
 * once it went out (overlay_ring.h). Returns fuse_session_custom_io's
 * result (0, or -errno and fd unused). */
int overlay_worker_io_attach (overlay_worker_io *io, struct fuse_session *se, int fd);
/* Stop the io_uring queues, if any: after the connection ended (the
 * session loop returned), before the session is destroyed. */
void overlay_worker_io_stop (overlay_worker_io *io);
/* A request as read from the device or an io_uring entry, before libfuse
 * sees it: libfuse 3.14 knows no FUSE_TMPFILE (it would answer ENOSYS and
 * the kernel fail every O_TMPFILE open with EOPNOTSUPP), so one becomes the
 * FUSE_CREATE it is shaped like, with the name "/" no CREATE can carry;
 * overlay.c's create handler tells them apart by it. Everything else is
 * left as it is. */
void overlay_worker_request_fix (void *buf, size_t len);
/* writev(2) of a reply or notification to the device; the INIT reply (the
 * first reply: no request comes before INIT is answered) carries
 * io->init_flags. A ring thread's reply to its own request goes into its
 * io_uring entry instead. Returns what writev returns, errno set. */
ssize_t overlay_worker_writev (overlay_worker_io *io, int fd, struct iovec *iov, int count);

#endif
