/* transfer.h - the registry client's transfer scheduler: one libcurl multi
 * handle for every HTTP request of a pull or push, and one job pool for
 * running blob transfers in parallel.
 *
 * The engine owns a curl multi handle driven by one I/O thread. Callers keep
 * the simple blocking style of curl_easy_perform: transfer_perform() hands
 * an easy handle to the multi and waits for it to finish. What that buys
 * over one easy handle per thread: one connection cache for all transfers
 * (a connection freed by one blob is reused by the next, whichever thread
 * asks), HTTP/2 multiplexing of parallel blobs over one connection where the
 * server offers it (CURLPIPE_MULTIPLEX, PIPEWAIT), and a bound on the
 * connections per host.
 *
 * Body data is not consumed on the I/O thread: it is buffered (up to
 * TRANSFER_BUFFER bytes per transfer, then the transfer is paused with
 * CURL_WRITEFUNC_PAUSE) and handed to the caller's write function on the
 * calling thread. So hashing, decompression and extraction of different
 * blobs run on their own threads while one thread does all network I/O,
 * and a slow consumer throttles only its own transfer. Header, read
 * (upload) and progress callbacks do run on the I/O thread; they must only
 * touch state of their own transfer.
 *
 * transfer_jobs() is the one worker pool used by pull (layers) and push
 * (layers, and the children of an index): up to `parallel` jobs at a time,
 * each on its own thread, stopping at the first failure.
 */
#ifndef KILN_REGISTRY_TRANSFER_H
#define KILN_REGISTRY_TRANSFER_H

#include <curl/curl.h>
#include <stddef.h>
#include "util/error.h"

/* Buffered body bytes per transfer before it is paused. */
#define TRANSFER_BUFFER (1024 * 1024)
/* Connections per registry host (HTTP/1.1; HTTP/2 multiplexes on fewer). */
#define TRANSFER_MAX_HOST_CONNECTIONS 6
/* Blob jobs run at once by pull and push. */
#define TRANSFER_PARALLEL 3

typedef struct transfer_engine transfer_engine;

/* A new engine with one reference. The I/O thread starts on first use. */
transfer_engine *transfer_engine_new (void);
transfer_engine *transfer_engine_ref (transfer_engine *e);
/* Drop a reference; the last one stops the I/O thread. No transfer may be
 * running. */
void transfer_engine_unref (transfer_engine *e);

/* Run the configured easy handle h to completion through the engine and
 * return its result. Body data goes to write_fn(ptr, 1, n, write_ud) on
 * the calling thread, in order; a return other than n fails the transfer
 * with CURLE_WRITE_ERROR. Do not set CURLOPT_WRITEFUNCTION/WRITEDATA or
 * CURLOPT_PRIVATE on h. Falls back to curl_easy_perform when the I/O thread
 * cannot be started. */
CURLcode transfer_perform (transfer_engine *e, CURL *h, curl_write_callback write_fn, void *write_ud);

/* Run job(ctx, i, err) for i in [0, n) on up to `parallel` threads. After
 * the first failure no new job starts; the first error is returned. Jobs
 * run on the calling thread if no thread can be created. */
int transfer_jobs (size_t n, size_t parallel, int (*job) (void *ctx, size_t i, kiln_error **err), void *ctx,
                   kiln_error **err);

#endif
