/* progress.h - build progress for humans and CI parsers.
 *
 * plain (default; BuildKit's --progress=plain layout, on stderr):
 *   #3 [build 2/5] RUN make
 *   #3 0.412 cc -o app main.c          <- step output with seconds since start
 *   #3 DONE 1.3s                        <- or CACHED / ERROR
 * json: one object per line ({"event":"step"|"output"|"done"|"note"|"summary", ...}).
 * quiet: nothing (kiln build -q prints only the digest on stdout).
 * The progress object is only used from the build's main thread.
 */
#ifndef KILN_BUILD_PROGRESS_H
#define KILN_BUILD_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "util/error.h"

typedef enum
{
  PROGRESS_PLAIN = 0,
  PROGRESS_JSON,
  PROGRESS_QUIET,
} progress_mode;

typedef struct progress progress;

/* "auto" and "plain" -> plain, "json"; "tty" is refused (not implemented). */
int progress_parse_mode (const char *s, progress_mode *out, kiln_error **err);

progress *progress_new (progress_mode mode, FILE *out);
void progress_free (progress *p);

/* Start a step: "[stage i/n] TEXT" (stage may be NULL). Returns its id. */
int progress_step_begin (progress *p, const char *stage, size_t i, size_t n, const char *text);
/* A line of the current step's output (stream 1 stdout, 2 stderr). The last
 * lines are kept for error messages (progress_tail). */
void progress_step_output (progress *p, int stream, const char *line, size_t len);
/* End the current step: status "DONE", "CACHED" or "ERROR". */
void progress_step_end (progress *p, const char *status);
/* The same for step id (as returned by progress_step_begin), for steps of
 * stages that run in parallel. */
void progress_step_output_id (progress *p, int id, int stream, const char *line, size_t len);
void progress_step_end_id (progress *p, int id, const char *status);
char *progress_tail_id (progress *p, int id);
/* A line outside steps (pull progress, pushes). */
void progress_note (progress *p, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
/* The last output lines of the current (or last) step, "\n"-joined;
 * caller frees. */
char *progress_tail (progress *p);
/* Seconds since progress_new. */
double progress_elapsed (const progress *p);
/* Final summary (key/value pairs as text in plain mode). */
void progress_summary (progress *p, const char *digest, unsigned long long size, size_t layers,
                       const double *phase_secs, const char *const *phase_names, size_t n_phases);

#endif
