/* overlay_ring.h - FUSE over io_uring for libfuse 3.14, which has no client
 * for it (libfuse 3.18 has one).
 *
 * Linux 6.14+ can hand a FUSE server its requests through io_uring instead
 * of read(2)/writev(2) on /dev/fuse: one queue per CPU, each a set of
 * entries (a header and a payload buffer the server registered), and a
 * request from a task on CPU n goes to queue n. kiln serves queue n from one
 * thread pinned to CPU n, so the step's request and kiln's answer run on the
 * same core one after the other: no wake-up of the other core, no second
 * system call (the answer and the fetch of the next request are one SQE).
 *
 * The kernel offers it only when the fuse module's enable_uring parameter is
 * on (off by default; an administrator's choice: kiln never changes it) and
 * io_uring is usable (not denied by seccomp, as Docker's default profile
 * does, nor by the io_uring_disabled sysctl). Otherwise, and with
 * KILN_FUSE_URING=off in the environment, every request goes through
 * /dev/fuse as before. FORGET and INTERRUPT always do.
 *
 * The requests are libfuse's: a ring thread puts the header and the
 * per-opcode argument in front of the payload, in the layout a read(2) of
 * /dev/fuse gives, and calls fuse_session_process_buf; libfuse's reply comes
 * back through overlay_worker_writev, which hands it to overlay_ring_reply
 * when the calling thread is answering a ring request. */
#ifndef KILN_OVERLAY_OVERLAY_RING_H
#define KILN_OVERLAY_OVERLAY_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Bits of the fuse_init_in/out flags2 word (protocol 7.42), which Debian
 * 12's <linux/fuse.h> (7.38) does not define. */
#define OVERLAY_RING_INIT_FLAGS2_URING (1u << (41 - 32)) /* FUSE_OVER_IO_URING */

typedef struct overlay_ring overlay_ring;
struct fuse_session;

/* Whether kiln should ask the kernel for io_uring on a new mount: not
 * switched off with KILN_FUSE_URING=off and an io_uring with 128-byte SQEs
 * can be set up in this process (probed once). */
bool overlay_ring_wanted (void);

/* Start the queues for session se on the /dev/fuse fd, after the INIT reply
 * that asked for io_uring went out: one thread per possible CPU, each
 * registering its entries (payload buffers of max_payload bytes: the
 * kernel's max_write or max_pages, whichever is larger). Returns NULL, with
 * a warning logged, if a thread or its ring could not be set up; requests
 * then keep going through /dev/fuse (the kernel uses the rings only once
 * every queue has an entry). */
overlay_ring *overlay_ring_start (struct fuse_session *se, int fd, size_t max_payload);

/* Stop and free the queues (after the connection ended, or to give up on
 * them); NULL is a no-op. */
void overlay_ring_stop (overlay_ring *r);

/* Called with the reply libfuse writes (iov[0] the fuse_out_header): if the
 * calling thread is a ring thread answering that request, the reply goes
 * into the entry (committed when the handler returns) and *written is the
 * length written(2) would have returned: returns true. Otherwise (another
 * thread, a notification, another request) returns false. */
bool overlay_ring_reply (const struct iovec *iov, int count, ssize_t *written);

/* Requests answered through the rings so far by r (for tests and the debug
 * log); 0 for NULL. */
uint64_t overlay_ring_answered (const overlay_ring *r);

#endif
