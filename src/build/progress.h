/* progress.h - build progress for humans and CI parsers.
 *
 * plain (BuildKit's --progress=plain layout, on stderr):
 *   #3 [build 2/5] RUN make
 *   #3 0.412 cc -o app main.c          <- step output with seconds since the step began
 *   #3 DONE 1.3s                        <- or CACHED / ERROR
 * tty (BuildKit's interactive layout, redrawn in place with ANSI escapes):
 *   [+] Building 2.3s (3/4)
 *    => [build 1/5] FROM docker.io/library/debian              0.1s
 *    => CACHED [build 2/5] COPY . /src                          0.0s
 *    => [build 3/5] RUN make                                    1.3s
 *    => => # cc -o app main.c                  <- last lines of a running step, dimmed
 *    => pushing localhost:5000/app:latest      <- notes
 *   A render thread redraws at most 10 times a second; the terminal size is
 *   re-read for every frame (so a resize, SIGWINCH, takes effect at the next
 *   frame without a process-wide signal handler); lines are cut to the width
 *   and never wrap; the frame never grows past the terminal height (the
 *   oldest finished steps scroll out, the whole list is printed once at the
 *   end). A finished step's output collapses; an ERROR step keeps its last
 *   lines on screen. Step output is untrusted: control characters and escape
 *   sequences in it are dropped before it reaches the terminal. NO_COLOR (set
 *   and not empty) turns SGR colour off, cursor movement stays. The display
 *   is finished (final frame, cursor shown again) by progress_summary or, on
 *   failure or interruption, by progress_free, so the caller's error message
 *   prints below intact lines.
 * json: one object per line ({"event":"step"|"output"|"done"|"note"|"summary", ...}).
 * quiet: nothing (kiln build -q prints only the digest on stdout).
 * auto: tty when the output stream is a terminal and TERM is set and not
 *   "dumb", otherwise plain (resolved by progress_new).
 *
 * Threads: every function may be called from any thread; one mutex
 * serialises the object and its writes to the stream (each line or frame is
 * written whole). Several steps may be in flight at once (parallel stages):
 * use the *_id variants with the id progress_step_begin returned. The
 * id-less functions act on the calling thread's most recently begun step
 * (falling back to the most recent step of any thread), which is exactly
 * the old single-threaded behaviour.
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
  PROGRESS_TTY,
  PROGRESS_AUTO,
} progress_mode;

typedef struct progress progress;

/* "auto", "plain", "tty" or "json". */
int progress_parse_mode (const char *s, progress_mode *out, kiln_error **err);
/* What "auto" means for output on fd with the given $TERM (may be NULL):
 * PROGRESS_TTY or PROGRESS_PLAIN. */
progress_mode progress_auto_mode (int fd, const char *term);

/* A progress display writing to out (not closed by progress_free). AUTO is
 * resolved here against fileno (out) and $TERM; TTY starts the render thread
 * and takes its size from the terminal and its colour from $NO_COLOR. */
progress *progress_new (progress_mode mode, FILE *out);

/* tty mode with fixed parameters, for tests and for callers that know the
 * terminal better (fields left 0 mean: as progress_new would do). */
typedef struct progress_tty_opts
{
  int width, height;   /* columns and rows; 0 = ask the terminal (80x24 if it does not say) */
  bool no_colour;      /* no SGR sequences, as with NO_COLOR */
  bool colour;         /* force colour on even if NO_COLOR is set */
  bool manual;         /* no render thread: frames only by progress_render (deterministic tests) */
  double (*clock) (void *ctx); /* seconds, monotonic; NULL = CLOCK_MONOTONIC */
  void *clock_ctx;
} progress_tty_opts;
progress *progress_new_tty (FILE *out, const progress_tty_opts *o);

/* The mode after resolving AUTO. */
progress_mode progress_get_mode (const progress *p);
/* tty mode: draw a frame now (the render thread does this by itself);
 * no-op in other modes and after the display finished. */
void progress_render (progress *p);

/* Finishes a tty display if progress_summary did not (final frame with a
 * FAILED header: the build did not complete; cursor shown), stops the
 * render thread and frees. NULL is fine. */
void progress_free (progress *p);

/* Start a step: "[stage i/n] TEXT" (stage may be NULL). Returns its id
 * (> 0), also the calling thread's current step from now on. */
int progress_step_begin (progress *p, const char *stage, size_t i, size_t n, const char *text);

/* A line of a step's output (stream 1 stdout, 2 stderr). The last lines
 * (12, each cut at 4 KiB) are kept for error messages (progress_tail). An
 * unknown id is ignored. */
void progress_step_output_id (progress *p, int id, int stream, const char *line, size_t len);
void progress_step_output (progress *p, int stream, const char *line, size_t len);

/* End a step: status "DONE", "CACHED" or "ERROR" (another word is shown
 * as given and counts as a failure in tty mode). */
void progress_step_end_id (progress *p, int id, const char *status);
void progress_step_end (progress *p, const char *status);

/* The step missed the build cache, and why (text: one line; json: an
 * object, see cache_explain, or NULL). plain: "#N cache miss: TEXT"; tty:
 * ": cache miss: TEXT" after the step's text; json: {"event":"cache",
 * "id":N,"result":"miss", then json's members}. Counted for the summary
 * (hits are the steps that end CACHED). */
void progress_step_cache_miss_id (progress *p, int id, const char *text, const char *json);

/* A line outside step output (pull progress, pushes). plain prefixes the
 * step id (0 before the first step), tty shows it as its own line. */
void progress_note_id (progress *p, int id, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));
void progress_note (progress *p, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* The last output lines of a step, each as "  > LINE", "\n"-joined ("" if
 * none or the id is unknown); caller frees. progress_tail: the calling
 * thread's current (or last) step. */
char *progress_tail_id (progress *p, int id);
char *progress_tail (progress *p);

/* A stream to give the logger (log_setup) while the display is up, so log
 * lines (layer pulls, retries, warnings) do not break a tty frame: there
 * each line becomes a note in the frame; in the other modes, and once the
 * tty display finished, lines go to the progress stream unchanged. Owned
 * by p and closed by progress_free: point the logger elsewhere before
 * that. Safe from any thread. */
FILE *progress_log_stream (progress *p);

/* Seconds since progress_new. */
double progress_elapsed (const progress *p);

/* Final summary: plain prints one "#N built DIGEST: ..." line (ending
 * "; cache: H hits, M misses" when steps were looked up), json one
 * "summary" event (with "cache_hits" and "cache_misses"); tty finishes the display and prints the same text as
 * plain without the "#N " prefix below it. */
void progress_summary (progress *p, const char *digest, unsigned long long size, size_t layers,
                       const double *phase_secs, const char *const *phase_names, size_t n_phases);

#endif
