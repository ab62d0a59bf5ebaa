/* blobprogress.h - per-blob transfer progress of `kiln pull` / `kiln push`
 * on a terminal.
 *
 * One line per blob, redrawn in place (ANSI cursor movement, at most ten
 * times a second) while transfers run in parallel:
 *
 *   sha256:3f4ca61a1b2c  pull   12.3/45.6 MB   8.1 MB/s
 *   sha256:9a0e52c7d411  push   done 45.6 MB in 5.6 s (8.1 MB/s)
 *
 * When no blob is in flight the finished lines are left as ordinary output
 * and the next blob starts a new block, so log lines in between (manifest
 * pushes, warnings) stay readable. Only created for a terminal with text
 * logs at info level; otherwise the callers log one plain line per blob as
 * before. Thread-safe: updates come from the transfer job threads and from
 * the transfer engine's I/O thread.
 */
#ifndef KILN_REGISTRY_BLOBPROGRESS_H
#define KILN_REGISTRY_BLOBPROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct blobprogress blobprogress;

/* A display on out if it is a terminal (and TERM is not "dumb"), else NULL. */
blobprogress *blobprogress_new (FILE *out);
void blobprogress_free (blobprogress *p);

/* Start a blob line; verb is a short static word ("pull", "push"); total
 * < 0 if unknown. Returns the line's id. */
int blobprogress_begin (blobprogress *p, const char *digest, const char *verb, int64_t total);
/* Bytes transferred so far for this blob (absolute: a retry may go back). */
void blobprogress_set (blobprogress *p, int id, uint64_t done);
/* Finish the line: "done ..." or status (a static word like "exists",
 * "mounted", "failed"). */
void blobprogress_end (blobprogress *p, int id, bool ok, const char *status);

#endif
