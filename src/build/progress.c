/* progress.c - build progress output (see progress.h): steps and notes as
 * events, plain and json lines, the logger's stream, the summary; the tty
 * mode's frames are in progress_tty.c. */
#include "build/progress_internal.h"
#include "util/alloc.h"
#include "util/strbuf.h"

#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

double
progress_now_locked (const progress *p)
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
      p->thread_started = pthread_create (&p->thread, NULL, progress_tty_render_main, p) == 0;
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
  return progress_now_locked (p);
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
  it->start = it->end = progress_now_locked (p);
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


/* An event draws at once unless a frame went out less than 0.1 s ago; the
 * render thread then picks the change up at its next tick (and keeps the
 * running steps' timers moving). */
static void
tty_changed (progress *p)
{
  p->dirty = true;
  if (!p->manual && progress_now_locked (p) - p->last_draw >= TTY_INTERVAL_NS / 1e9)
    progress_tty_draw (p, false, false);
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
      strbuf_addf (&sb, "#%d %.3f ", it->id, progress_now_locked (p) - it->start);
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
  it->end = progress_now_locked (p);
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

void
progress_summary (progress *p, const char *digest, unsigned long long size, size_t layers, const double *phase_secs,
                  const char *const *phase_names, size_t n_phases)
{
  progress_tty_finish (p, true);
  pthread_mutex_lock (&p->mu);
  autostrbuf strbuf sb = STRBUF_INIT;
  double total = progress_now_locked (p);
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
  progress_tty_finish (p, false);
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
