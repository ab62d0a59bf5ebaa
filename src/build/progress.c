/* progress.c - build progress output (see progress.h). */
#include "build/progress.h"
#include "util/alloc.h"
#include "util/strbuf.h"

#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

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

/* ---- modes ---- */

int
progress_parse_mode (const char *s, progress_mode *out, kiln_error **err)
{
  if (strcmp (s, "auto") == 0)
    *out = PROGRESS_AUTO;
  else if (strcmp (s, "plain") == 0)
    *out = PROGRESS_PLAIN;
  else if (strcmp (s, "tty") == 0)
    *out = PROGRESS_TTY;
  else if (strcmp (s, "json") == 0)
    *out = PROGRESS_JSON;
  else
    return kiln_error_make (err, EINVAL, "--progress '%s': expected auto, plain, tty or json", s);
  return 0;
}

progress_mode
progress_auto_mode (int fd, const char *term)
{
  /* An unset TERM says as little about the terminal as "dumb" does. */
  if (fd < 0 || !isatty (fd) || !term || !*term || strcmp (term, "dumb") == 0)
    return PROGRESS_PLAIN;
  return PROGRESS_TTY;
}

/* ---- time ---- */

static double
mono_now (void *ctx)
{
  (void) ctx;
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static double
now_locked (const progress *p)
{
  return p->clock (p->clock_ctx) - p->t0;
}

/* ---- construction ---- */

static progress *
alloc_progress (progress_mode mode, FILE *out, double (*clock) (void *), void *clock_ctx)
{
  progress *p = xzalloc (sizeof *p);
  p->mode = mode;
  p->out = out;
  p->next_id = 1;
  p->clock = clock ? clock : mono_now;
  p->clock_ctx = clock_ctx;
  p->t0 = p->clock (p->clock_ctx);
  strbuf_init (&p->log_partial, 0);
  pthread_mutex_init (&p->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&p->wake, &ca);
  pthread_condattr_destroy (&ca);
  return p;
}

static void *render_main (void *arg);

progress *
progress_new_tty (FILE *out, const progress_tty_opts *o)
{
  static const progress_tty_opts defaults = { 0 };
  if (!o)
    o = &defaults;
  progress *p = alloc_progress (PROGRESS_TTY, out, o->clock, o->clock_ctx);
  p->width = o->width > 0 ? o->width : 0;
  p->height = o->height > 0 ? o->height : 0;
  const char *nc = getenv ("NO_COLOR");
  p->colour = o->colour || (!o->no_colour && !(nc && *nc));
  p->manual = o->manual;
  p->last_draw = -1e9;
  /* Step output is UTF-8 in practice; measure it so regardless of the
   * process locale (kiln never calls setlocale). */
  p->utf8 = newlocale (LC_CTYPE_MASK, "C.UTF-8", (locale_t) 0);
  if (!p->manual)
    {
      /* The render thread takes no signals: SIGINT/SIGTERM must reach the
       * build's thread, where they interrupt the sandbox's waits. */
      sigset_t all, old;
      sigfillset (&all);
      pthread_sigmask (SIG_SETMASK, &all, &old);
      p->thread_started = pthread_create (&p->thread, NULL, render_main, p) == 0;
      pthread_sigmask (SIG_SETMASK, &old, NULL);
      /* Without the thread, events still draw (timers only move then). */
    }
  return p;
}

progress *
progress_new (progress_mode mode, FILE *out)
{
  if (mode == PROGRESS_AUTO)
    mode = progress_auto_mode (fileno (out), getenv ("TERM"));
  if (mode == PROGRESS_TTY)
    return progress_new_tty (out, NULL);
  return alloc_progress (mode, out, NULL, NULL);
}

progress_mode
progress_get_mode (const progress *p)
{
  return p->mode;
}

double
progress_elapsed (const progress *p)
{
  return now_locked (p);
}

/* ---- items ---- */

static void
item_free (item *it)
{
  if (!it)
    return;
  free (it->text);
  free (it->status);
  for (size_t i = 0; i < TAIL_LINES; i++)
    free (it->tail[i]);
  free (it);
}

static item *
add_item (progress *p, item_kind kind, char *text)
{
  item *it = xzalloc (sizeof *it);
  it->kind = kind;
  it->text = text;
  it->start = it->end = now_locked (p);
  p->items = xreallocarray (p->items, p->n_items + 1, sizeof *p->items);
  p->items[p->n_items++] = it;
  return it;
}

static item *
step_by_id (progress *p, int id)
{
  if (id <= 0 || id >= p->next_id)
    return NULL;
  return p->items[p->step_item[id]];
}

/* The calling thread's most recent step, else the most recent of all. */
static item *
current_step (progress *p)
{
  pthread_t self = pthread_self ();
  for (size_t i = p->n_items; i-- > 0;)
    if (p->items[i]->kind == ITEM_STEP && pthread_equal (p->items[i]->owner, self))
      return p->items[i];
  return step_by_id (p, p->last_id);
}

static int
current_id (progress *p)
{
  item *it = current_step (p);
  return it ? it->id : 0;
}

static step_state
parse_status (const char *status)
{
  if (strcmp (status, "DONE") == 0)
    return STEP_DONE;
  if (strcmp (status, "CACHED") == 0)
    return STEP_CACHED;
  return STEP_FAILED;
}

/* ---- plain and json lines ---- */

static void
json_str (strbuf *sb, const char *key, const char *v, size_t len)
{
  strbuf_addf (sb, ",\"%s\":\"", key);
  strbuf_add_json_escaped (sb, v, len);
  strbuf_addch (sb, '"');
}

static void
emit (progress *p, strbuf *sb)
{
  strbuf_addch (sb, '\n');
  fwrite (sb->buf, 1, sb->len, p->out);
  fflush (p->out);
}

/* How events are printed: a finished tty display goes on as plain lines. */
static progress_mode
line_mode (const progress *p)
{
  return p->mode == PROGRESS_TTY && p->finished ? PROGRESS_PLAIN : p->mode;
}

static void tty_draw (progress *p, bool final, bool completed);

/* An event draws at once unless a frame went out less than 0.1 s ago; the
 * render thread then picks the change up at its next tick (and keeps the
 * running steps' timers moving). */
static void
tty_changed (progress *p)
{
  p->dirty = true;
  if (!p->manual && now_locked (p) - p->last_draw >= TTY_INTERVAL_NS / 1e9)
    tty_draw (p, false, false);
}

/* ---- events ---- */

int
progress_step_begin (progress *p, const char *stage, size_t i, size_t n, const char *text)
{
  pthread_mutex_lock (&p->mu);
  int id = p->next_id++;
  p->step_item = xreallocarray (p->step_item, p->next_id, sizeof *p->step_item);
  p->step_item[id] = p->n_items;
  item *it = add_item (p, ITEM_STEP, xasprintf ("[%s%s%zu/%zu] %s", stage ? stage : "", stage ? " " : "", i, n, text));
  it->id = id;
  it->owner = pthread_self ();
  it->state = STEP_RUNNING;
  p->last_id = id;
  autostrbuf strbuf sb = STRBUF_INIT;
  switch (line_mode (p))
    {
    case PROGRESS_PLAIN:
      strbuf_addf (&sb, "#%d %s", id, it->text);
      emit (p, &sb);
      break;
    case PROGRESS_JSON:
      strbuf_addf (&sb, "{\"event\":\"step\",\"id\":%d,\"time\":%.3f", id, it->start);
      if (stage)
        json_str (&sb, "stage", stage, strlen (stage));
      strbuf_addf (&sb, ",\"step\":%zu,\"total\":%zu", i, n);
      json_str (&sb, "text", text, strlen (text));
      strbuf_addch (&sb, '}');
      emit (p, &sb);
      break;
    case PROGRESS_TTY:
      tty_changed (p);
      break;
    case PROGRESS_QUIET:
    case PROGRESS_AUTO:
      break;
    }
  pthread_mutex_unlock (&p->mu);
  return id;
}

static void
output_locked (progress *p, item *it, int stream, const char *line, size_t len)
{
  free (it->tail[it->tail_pos]);
  it->tail[it->tail_pos] = xstrndup (line, len < TAIL_LINE_MAX ? len : TAIL_LINE_MAX);
  it->tail_pos = (it->tail_pos + 1) % TAIL_LINES;
  if (it->tail_n < TAIL_LINES)
    it->tail_n++;
  autostrbuf strbuf sb = STRBUF_INIT;
  switch (line_mode (p))
    {
    case PROGRESS_PLAIN:
      strbuf_addf (&sb, "#%d %.3f ", it->id, now_locked (p) - it->start);
      strbuf_add (&sb, line, len);
      emit (p, &sb);
      break;
    case PROGRESS_JSON:
      strbuf_addf (&sb, "{\"event\":\"output\",\"id\":%d,\"stream\":\"%s\"", it->id, stream == 2 ? "stderr" : "stdout");
      json_str (&sb, "line", line, len);
      strbuf_addch (&sb, '}');
      emit (p, &sb);
      break;
    case PROGRESS_TTY:
      if (it->state == STEP_RUNNING)
        tty_changed (p);
      break;
    case PROGRESS_QUIET:
    case PROGRESS_AUTO:
      break;
    }
}

void
progress_step_output_id (progress *p, int id, int stream, const char *line, size_t len)
{
  pthread_mutex_lock (&p->mu);
  item *it = step_by_id (p, id);
  if (it)
    output_locked (p, it, stream, line, len);
  pthread_mutex_unlock (&p->mu);
}

void
progress_step_output (progress *p, int stream, const char *line, size_t len)
{
  pthread_mutex_lock (&p->mu);
  item *it = current_step (p);
  if (it)
    output_locked (p, it, stream, line, len);
  pthread_mutex_unlock (&p->mu);
}

static void
end_locked (progress *p, item *it, const char *status)
{
  it->end = now_locked (p);
  free (it->status);
  it->status = xstrdup (status);
  it->state = parse_status (status);
  p->cache_hits += it->state == STEP_CACHED;
  double d = it->end - it->start;
  autostrbuf strbuf sb = STRBUF_INIT;
  switch (line_mode (p))
    {
    case PROGRESS_PLAIN:
      if (it->state == STEP_CACHED)
        strbuf_addf (&sb, "#%d CACHED", it->id);
      else
        strbuf_addf (&sb, "#%d %s %.1fs", it->id, status, d);
      emit (p, &sb);
      break;
    case PROGRESS_JSON:
      strbuf_addf (&sb, "{\"event\":\"done\",\"id\":%d", it->id);
      json_str (&sb, "status", status, strlen (status));
      strbuf_addf (&sb, ",\"seconds\":%.3f}", d);
      emit (p, &sb);
      break;
    case PROGRESS_TTY:
      tty_changed (p);
      break;
    case PROGRESS_QUIET:
    case PROGRESS_AUTO:
      break;
    }
}

void
progress_step_end_id (progress *p, int id, const char *status)
{
  pthread_mutex_lock (&p->mu);
  item *it = step_by_id (p, id);
  if (it)
    end_locked (p, it, status);
  pthread_mutex_unlock (&p->mu);
}

void
progress_step_end (progress *p, const char *status)
{
  pthread_mutex_lock (&p->mu);
  item *it = current_step (p);
  if (it)
    end_locked (p, it, status);
  pthread_mutex_unlock (&p->mu);
}

void
progress_step_cache_miss_id (progress *p, int id, const char *text, const char *json)
{
  pthread_mutex_lock (&p->mu);
  p->cache_misses++;
  item *it = step_by_id (p, id);
  autostrbuf strbuf sb = STRBUF_INIT;
  switch (it ? line_mode (p) : PROGRESS_QUIET)
    {
    case PROGRESS_PLAIN:
      strbuf_addf (&sb, "#%d cache miss: %s", id, text);
      emit (p, &sb);
      break;
    case PROGRESS_JSON:
      strbuf_addf (&sb, "{\"event\":\"cache\",\"id\":%d,\"result\":\"miss\"", id);
      if (json && json[0] == '{' && json[1] != '}')
        strbuf_addf (&sb, ",%s", json + 1);
      else
        {
          json_str (&sb, "text", text, strlen (text));
          strbuf_addch (&sb, '}');
        }
      emit (p, &sb);
      break;
    case PROGRESS_TTY:
      strbuf_addf (&sb, "%s: cache miss: %s", it->text, text);
      free (it->text);
      it->text = strbuf_detach (&sb, NULL);
      tty_changed (p);
      break;
    case PROGRESS_QUIET:
    case PROGRESS_AUTO:
      break;
    }
  pthread_mutex_unlock (&p->mu);
}

static void
note_locked (progress *p, int id, char *msg)
{
  item *it = add_item (p, ITEM_NOTE, msg);
  it->id = id;
  autostrbuf strbuf sb = STRBUF_INIT;
  switch (line_mode (p))
    {
    case PROGRESS_PLAIN:
      strbuf_addf (&sb, "#%d %s", id, msg);
      emit (p, &sb);
      break;
    case PROGRESS_JSON:
      strbuf_addf (&sb, "{\"event\":\"note\",\"id\":%d", id);
      json_str (&sb, "text", msg, strlen (msg));
      strbuf_addch (&sb, '}');
      emit (p, &sb);
      break;
    case PROGRESS_TTY:
      tty_changed (p);
      break;
    case PROGRESS_QUIET:
    case PROGRESS_AUTO:
      break;
    }
}

void
progress_note_id (progress *p, int id, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  pthread_mutex_lock (&p->mu);
  note_locked (p, id, msg);
  pthread_mutex_unlock (&p->mu);
}

void
progress_note (progress *p, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  pthread_mutex_lock (&p->mu);
  note_locked (p, current_id (p), msg);
  pthread_mutex_unlock (&p->mu);
}

static char *
tail_of (const item *it)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  size_t n = it ? it->tail_n : 0;
  size_t first = n ? (it->tail_pos + TAIL_LINES - n) % TAIL_LINES : 0;
  for (size_t k = 0; k < n; k++)
    {
      const char *l = it->tail[(first + k) % TAIL_LINES];
      if (sb.len)
        strbuf_addch (&sb, '\n');
      strbuf_adds (&sb, "  > ");
      strbuf_adds (&sb, l ? l : "");
    }
  if (!sb.buf)
    return xstrdup ("");
  return strbuf_detach (&sb, NULL);
}

char *
progress_tail_id (progress *p, int id)
{
  pthread_mutex_lock (&p->mu);
  char *s = tail_of (step_by_id (p, id));
  pthread_mutex_unlock (&p->mu);
  return s;
}

char *
progress_tail (progress *p)
{
  pthread_mutex_lock (&p->mu);
  char *s = tail_of (current_step (p));
  pthread_mutex_unlock (&p->mu);
  return s;
}

/* ---- the logger's stream ---- */

static ssize_t
log_write (void *cookie, const char *buf, size_t size)
{
  progress *p = cookie;
  pthread_mutex_lock (&p->mu);
  if (!(p->mode == PROGRESS_TTY && !p->finished))
    {
      /* Other modes: the lines as they are, between whole progress lines
       * (after what the tty display had not taken yet). */
      fwrite (p->log_partial.buf, 1, p->log_partial.len, p->out);
      strbuf_reset (&p->log_partial);
      fwrite (buf, 1, size, p->out);
      fflush (p->out);
    }
  else
    {
      strbuf_add (&p->log_partial, buf, size);
      char *start = p->log_partial.buf, *nl;
      while ((nl = memchr (start, '\n', p->log_partial.len - (size_t) (start - p->log_partial.buf))))
        {
          note_locked (p, 0, xstrndup (start, (size_t) (nl - start)));
          start = nl + 1;
        }
      size_t rest = p->log_partial.len - (size_t) (start - p->log_partial.buf);
      memmove (p->log_partial.buf, start, rest);
      strbuf_setlen (&p->log_partial, rest);
    }
  pthread_mutex_unlock (&p->mu);
  return (ssize_t) size;
}

FILE *
progress_log_stream (progress *p)
{
  pthread_mutex_lock (&p->mu);
  if (!p->log_stream)
    {
      cookie_io_functions_t io = { .write = log_write };
      p->log_stream = fopencookie (p, "w", io);
      if (p->log_stream)
        setvbuf (p->log_stream, NULL, _IONBF, 0);
    }
  FILE *f = p->log_stream ? p->log_stream : p->out;
  pthread_mutex_unlock (&p->mu);
  return f;
}

/* ---- tty rendering ---- */

/* Terminal text from untrusted step output: escape sequences and control
 * characters dropped (they could move the cursor or retitle the window),
 * tabs expanded, only what follows the last carriage return kept (what a
 * terminal would show), cut at max_cols display columns. Returns the
 * columns used. */
static int
tty_text (const progress *p, strbuf *dst, const char *s, size_t len, int col0, int max_cols)
{
  while (len && s[len - 1] == '\r')
    len--;
  const char *cr = memrchr (s, '\r', len);
  if (cr)
    {
      len -= (size_t) (cr + 1 - s);
      s = cr + 1;
    }
  locale_t old = p->utf8 ? uselocale (p->utf8) : (locale_t) 0;
  int cols = 0;
  mbstate_t st;
  memset (&st, 0, sizeof st);
  size_t i = 0;
  while (i < len && cols < max_cols)
    {
      unsigned char c = (unsigned char) s[i];
      if (c == 0x1b)
        {
          i++;
          if (i >= len)
            break;
          unsigned char k = (unsigned char) s[i++];
          if (k == '[')
            while (i < len && !((unsigned char) s[i] >= 0x40 && (unsigned char) s[i] <= 0x7e))
              i++;
          else if (k == ']' || k == 'P' || k == '_' || k == '^' || k == 'X')
            while (i < len && s[i] != '\a' && !(s[i] == 0x1b && i + 1 < len && s[i + 1] == '\\'))
              i++;
          else if (k >= 0x20 && k <= 0x2f) /* ESC ( B and the like: intermediates, then a final byte */
            while (i < len && (unsigned char) s[i] >= 0x20 && (unsigned char) s[i] <= 0x2f)
              i++;
          else
            continue;
          if (i < len)
            i += s[i] == 0x1b ? 2 : 1;
          continue;
        }
      if (c == '\t')
        {
          int spaces = 8 - (col0 + cols) % 8;
          for (; spaces > 0 && cols < max_cols; spaces--, cols++)
            strbuf_addch (dst, ' ');
          i++;
          continue;
        }
      if (c < 0x20 || c == 0x7f)
        {
          i++;
          continue;
        }
      if (c < 0x80)
        {
          strbuf_addch (dst, (char) c);
          cols++;
          i++;
          continue;
        }
      wchar_t wc;
      size_t n = p->utf8 ? mbrtowc (&wc, s + i, len - i, &st) : (size_t) -1;
      if (n == (size_t) -1 || n == (size_t) -2 || n == 0)
        {
          memset (&st, 0, sizeof st);
          strbuf_addch (dst, '?');
          cols++;
          i++;
          continue;
        }
      int w = (wc >= 0x80 && wc < 0xa0) ? -1 : wcwidth (wc);
      if (w >= 0)
        {
          if (cols + w > max_cols)
            break;
          strbuf_add (dst, s + i, n);
          cols += w;
        }
      i += n;
    }
  if (p->utf8)
    uselocale (old);
  return cols;
}

static void
term_size (const progress *p, int *w, int *h)
{
  struct winsize ws;
  memset (&ws, 0, sizeof ws);
  /* Read for every frame: that is how a resize (SIGWINCH) is noticed. */
  if ((!p->width || !p->height) && ioctl (fileno (p->out), TIOCGWINSZ, &ws) < 0)
    memset (&ws, 0, sizeof ws);
  *w = p->width ? p->width : ws.ws_col ? ws.ws_col : 80;
  *h = p->height ? p->height : ws.ws_row ? ws.ws_row : 24;
}

typedef struct frame
{
  strbuf sb;
  const progress *p;
  int cut;   /* columns a line may use: never the last one, so nothing wraps */
  int lines;
} frame;

/* One line: prefix and text (untrusted) on the left, right (a duration)
 * flush with the right edge if it fits. */
static void
frame_line (frame *f, const char *sgr, const char *prefix, const char *text, size_t len, const char *right)
{
  const progress *p = f->p;
  if (sgr && p->colour)
    strbuf_adds (&f->sb, sgr);
  int rw = right ? (int) strlen (right) : 0;
  int room = f->cut;
  if (right && room >= rw + 10)
    room -= rw + 1;
  else
    right = NULL;
  int cols = tty_text (p, &f->sb, prefix, strlen (prefix), 0, room);
  cols += tty_text (p, &f->sb, text, len, cols, room - cols);
  if (right)
    {
      for (; cols < room + 1; cols++)
        strbuf_addch (&f->sb, ' ');
      strbuf_adds (&f->sb, right);
    }
  if (sgr && p->colour)
    strbuf_adds (&f->sb, SGR_RESET);
  strbuf_adds (&f->sb, "\033[K\n");
  f->lines++;
}

static bool
shows_tail (const item *it)
{
  if (it->kind != ITEM_STEP)
    return false;
  /* Running steps show their output live; a step still running in the
   * final frame was interrupted, so its output stays, as a failed one's. */
  return it->state == STEP_FAILED || it->state == STEP_RUNNING;
}

static size_t
tail_count (const item *it, size_t max)
{
  return it->tail_n < max ? it->tail_n : max;
}

static void
frame_step (frame *f, const item *it, double now, size_t tail_max)
{
  const char *sgr = NULL, *prefix = " => ";
  autofree char *pre = NULL;
  switch (it->state)
    {
    case STEP_RUNNING:
      break;
    case STEP_DONE:
      sgr = SGR_BLUE;
      break;
    case STEP_CACHED:
      sgr = SGR_BLUE;
      prefix = " => CACHED ";
      break;
    case STEP_FAILED:
      sgr = SGR_RED;
      prefix = pre = xasprintf (" => %s ", it->status);
      break;
    }
  char right[32];
  snprintf (right, sizeof right, "%.1fs", (it->state == STEP_RUNNING ? now : it->end) - it->start);
  frame_line (f, sgr, prefix, it->text, strlen (it->text), right);
  size_t n = tail_count (it, tail_max);
  for (size_t k = it->tail_n - n; k < it->tail_n; k++)
    {
      const char *l = it->tail[(it->tail_pos + TAIL_LINES - it->tail_n + k) % TAIL_LINES];
      frame_line (f, it->state == STEP_FAILED ? SGR_RED : SGR_DIM, " => => # ", l, strlen (l), NULL);
    }
}

/* Draw a frame over the previous one. The final frame has no height limit
 * (it scrolls into the terminal's history), shows the cursor again and says
 * FINISHED if the build completed (progress_summary), else FAILED. */
static void
tty_draw (progress *p, bool final, bool completed)
{
  if (p->finished || (p->n_items == 0 && p->drawn == 0))
    return;
  int w, h;
  term_size (p, &w, &h);
  frame f = { .p = p, .cut = w > 1 ? w - 1 : 1 };
  strbuf_init (&f.sb, 256);
  if (p->drawn)
    strbuf_addf (&f.sb, "\r\033[%dA", p->drawn);
  else if (!final && !p->cursor_hidden)
    {
      strbuf_adds (&f.sb, "\033[?25l");
      p->cursor_hidden = true;
    }

  /* What fits: the header, then items; past the height, drop the oldest
   * finished items, then shorten the running steps' output, then drop the
   * oldest running steps. */
  size_t limit = final ? (size_t) -1 : (size_t) (h > 2 ? h - 1 : 1);
  bool *skip = xcalloc (p->n_items ? p->n_items : 1, sizeof *skip);
  size_t tail_max = TTY_TAIL_SHOWN, steps = 0, done = 0;
  size_t need = 1;
  for (size_t i = 0; i < p->n_items; i++)
    {
      const item *it = p->items[i];
      need += 1 + (shows_tail (it) ? tail_count (it, tail_max) : 0);
      if (it->kind == ITEM_STEP)
        {
          steps++;
          done += it->state != STEP_RUNNING;
        }
    }
  for (size_t i = 0; i < p->n_items && need > limit; i++)
    if (p->items[i]->kind == ITEM_NOTE || p->items[i]->state != STEP_RUNNING)
      {
        skip[i] = true;
        need -= 1 + (shows_tail (p->items[i]) ? tail_count (p->items[i], tail_max) : 0);
      }
  while (need > limit && tail_max > 0)
    {
      for (size_t i = 0; i < p->n_items; i++)
        if (!skip[i] && shows_tail (p->items[i]) && p->items[i]->tail_n >= tail_max)
          need--;
      tail_max--;
    }
  for (size_t i = 0; i < p->n_items && need > limit; i++)
    if (!skip[i])
      {
        skip[i] = true;
        need--;
      }

  double now = now_locked (p);
  autofree char *head = xasprintf ("[+] Building %.1fs (%zu/%zu)%s", now, done, steps,
                                   !final ? "" : completed ? " FINISHED" : " FAILED");
  frame_line (&f, final ? (completed ? SGR_BLUE : SGR_RED) : NULL, "", head, strlen (head), NULL);
  for (size_t i = 0; i < p->n_items; i++)
    {
      const item *it = p->items[i];
      if (skip[i])
        continue;
      if (it->kind == ITEM_NOTE)
        frame_line (&f, NULL, " => ", it->text, strlen (it->text), NULL);
      else
        frame_step (&f, it, now, shows_tail (it) ? tail_max : 0);
    }
  free (skip);
  /* Clear what a taller previous frame left below. */
  if ((size_t) p->drawn > (size_t) f.lines)
    strbuf_adds (&f.sb, "\033[J");
  if (final && p->cursor_hidden)
    {
      strbuf_adds (&f.sb, "\033[?25h");
      p->cursor_hidden = false;
    }
  fwrite (f.sb.buf, 1, f.sb.len, p->out);
  fflush (p->out);
  strbuf_release (&f.sb);
  p->drawn = f.lines;
  p->dirty = false;
  p->last_draw = now;
  if (final)
    p->finished = true;
}

static bool
any_running (const progress *p)
{
  for (size_t i = p->n_items; i-- > 0;)
    if (p->items[i]->kind == ITEM_STEP && p->items[i]->state == STEP_RUNNING)
      return true;
  return false;
}

static void *
render_main (void *arg)
{
  progress *p = arg;
  struct timespec next;
  pthread_mutex_lock (&p->mu);
  while (!p->stop)
    {
      /* From now, not from the last deadline: a late wake-up (a loaded
       * machine) must not turn into a burst of catch-up frames. */
      clock_gettime (CLOCK_MONOTONIC, &next);
      next.tv_nsec += TTY_INTERVAL_NS;
      if (next.tv_nsec >= 1000000000L)
        {
          next.tv_sec++;
          next.tv_nsec -= 1000000000L;
        }
      int r = 0;
      while (!p->stop && r != ETIMEDOUT)
        r = pthread_cond_timedwait (&p->wake, &p->mu, &next);
      if (p->stop)
        break;
      /* A running step's timer moves: redraw it even without events; but
       * not right after an event drew (10 frames a second in all). */
      if ((p->dirty || any_running (p)) && now_locked (p) - p->last_draw >= 0.9 * TTY_INTERVAL_NS / 1e9)
        tty_draw (p, false, false);
    }
  pthread_mutex_unlock (&p->mu);
  return NULL;
}

void
progress_render (progress *p)
{
  pthread_mutex_lock (&p->mu);
  if (p->mode == PROGRESS_TTY)
    tty_draw (p, false, false);
  pthread_mutex_unlock (&p->mu);
}

/* Stop the render thread and draw the final frame. */
static void
tty_finish (progress *p, bool completed)
{
  if (p->mode != PROGRESS_TTY)
    return;
  pthread_mutex_lock (&p->mu);
  bool join = p->thread_started && !p->stop;
  p->stop = true;
  pthread_cond_broadcast (&p->wake);
  pthread_mutex_unlock (&p->mu);
  if (join)
    pthread_join (p->thread, NULL);
  pthread_mutex_lock (&p->mu);
  tty_draw (p, true, completed);
  pthread_mutex_unlock (&p->mu);
}

void
progress_summary (progress *p, const char *digest, unsigned long long size, size_t layers, const double *phase_secs,
                  const char *const *phase_names, size_t n_phases)
{
  tty_finish (p, true);
  pthread_mutex_lock (&p->mu);
  autostrbuf strbuf sb = STRBUF_INIT;
  double total = now_locked (p);
  size_t hits = p->cache_hits;
  switch (p->mode)
    {
    case PROGRESS_PLAIN:
    case PROGRESS_TTY:
      if (p->mode == PROGRESS_PLAIN)
        strbuf_addf (&sb, "#%d ", p->next_id);
      strbuf_addf (&sb, "built %s: %zu layer%s, %.1f MB compressed, %.1fs total (", digest, layers,
                   layers == 1 ? "" : "s", size / 1e6, total);
      for (size_t i = 0; i < n_phases; i++)
        strbuf_addf (&sb, "%s%s %.2fs", i ? ", " : "", phase_names[i], phase_secs[i]);
      strbuf_addch (&sb, ')');
      if (hits + p->cache_misses)
        strbuf_addf (&sb, "; cache: %zu hit%s, %zu miss%s", hits, hits == 1 ? "" : "s", p->cache_misses,
                     p->cache_misses == 1 ? "" : "es");
      emit (p, &sb);
      break;
    case PROGRESS_JSON:
      strbuf_addf (&sb, "{\"event\":\"summary\",\"digest\":\"%s\",\"size\":%llu,\"layers\":%zu,\"seconds\":%.3f",
                   digest, size, layers, total);
      for (size_t i = 0; i < n_phases; i++)
        strbuf_addf (&sb, ",\"%s_seconds\":%.3f", phase_names[i], phase_secs[i]);
      strbuf_addf (&sb, ",\"cache_hits\":%zu,\"cache_misses\":%zu}", hits, p->cache_misses);
      emit (p, &sb);
      break;
    case PROGRESS_QUIET:
    case PROGRESS_AUTO:
      break;
    }
  pthread_mutex_unlock (&p->mu);
}

void
progress_free (progress *p)
{
  if (!p)
    return;
  tty_finish (p, false);
  if (p->log_stream)
    {
      /* A line the logger left unterminated: flush it as its own line. */
      if (p->log_partial.len)
        fputs ("\n", p->log_stream);
      fclose (p->log_stream);
    }
  strbuf_release (&p->log_partial);
  for (size_t i = 0; i < p->n_items; i++)
    item_free (p->items[i]);
  free (p->items);
  free (p->step_item);
  if (p->utf8)
    freelocale (p->utf8);
  pthread_cond_destroy (&p->wake);
  pthread_mutex_destroy (&p->mu);
  free (p);
}
