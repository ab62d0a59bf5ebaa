/* overlay_worker.h - what libfuse's worker threads need besides the
 * request handlers (overlay.c). */
#ifndef KILN_OVERLAY_OVERLAY_WORKER_H
#define KILN_OVERLAY_OVERLAY_WORKER_H

#include <stddef.h>

/* A buffer of at least size bytes owned by the calling thread (freed when
 * it exits): READ is answered from it with one pread and fuse_reply_buf,
 * never by splicing (docs/design/overlay.md, "Threading"). */
char *overlay_worker_read_buffer (size_t size);

#endif
