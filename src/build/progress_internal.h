/* progress_internal.h - what progress.c (events, plain and json lines, the
 * summary) and progress_tty.c (the tty's frames and their render thread)
 * share. PRIVATE to those two files; the API is progress.h. */
#ifndef KILN_BUILD_PROGRESS_INTERNAL_H
#define KILN_BUILD_PROGRESS_INTERNAL_H

#include "build/progress.h"
#include "util/strbuf.h"

#include <locale.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#define TAIL_LINES 12
#define TAIL_LINE_MAX 4096
/* Output lines shown under a running (or failed) step in tty mode. */
#define TTY_TAIL_SHOWN 6
#define TTY_INTERVAL_NS 100000000L

#define SGR_RESET "\033[0m"
#define SGR_DIM "\033[2m"
#define SGR_RED "\033[31m"
#define SGR_BLUE "\033[34m"

typedef enum
{
  ITEM_STEP,
  ITEM_NOTE,
} item_kind;

typedef enum
{
  STEP_RUNNING,
  STEP_DONE,
  STEP_CACHED,
  STEP_FAILED, /* "ERROR" or any other word */
} step_state;

typedef struct item
{
  item_kind kind;
  int id;            /* steps: their id; notes: the step they belong to (0: none) */
  char *text;        /* "[stage i/n] TEXT", or the note */
  char *status;      /* as given to step_end; NULL while running */
  step_state state;
  pthread_t owner;   /* thread that began the step */
  double start, end; /* seconds since the progress began */
  char *tail[TAIL_LINES];
  size_t tail_pos, tail_n;
} item;

struct progress
{
  progress_mode mode;
  FILE *out;
  pthread_mutex_t mu;
  double (*clock) (void *ctx);
  void *clock_ctx;
  double t0;
  item **items; /* steps and notes in the order they happened */
  size_t n_items;
  size_t *step_item; /* step id -> index in items */
  int next_id, last_id;
  size_t cache_hits, cache_misses;

  /* tty */
  int width, height; /* 0: ask the terminal at every frame */
  bool colour, manual;
  double last_draw;    /* time of the last frame */
  bool finished;      /* final frame drawn; later events print as plain */
  bool cursor_hidden;
  bool dirty;
  int drawn;          /* lines of the last frame; the cursor is below them */
  locale_t utf8;      /* for mbrtowc/wcwidth of step output; 0 if unavailable */
  bool thread_started, stop;
  pthread_t thread;
  pthread_cond_t wake;

  FILE *log_stream;   /* progress_log_stream */
  strbuf log_partial; /* a line written in pieces */
};


/* Seconds since the progress began; p->mu held. */
double progress_now_locked (const progress *p);

/* ---- progress_tty.c ---- */

/* Draw a frame (p->mu held): the steps, their tails, the status line;
 * final: the last frame (every step, cursor shown again). */
void progress_tty_draw (progress *p, bool final, bool completed);
/* The render thread: a frame every 100 ms while a step runs. */
void *progress_tty_render_main (void *arg);
/* Stop the render thread and draw the final frame (tty mode only). */
void progress_tty_finish (progress *p, bool completed);

#endif
