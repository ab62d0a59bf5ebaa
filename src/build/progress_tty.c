/* progress_tty.c - the tty mode of build progress: frames of the running
 * and finished steps with the tail of their output, redrawn in place by a
 * render thread (see progress.h). */
#include "build/progress_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

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
void
progress_tty_draw (progress *p, bool final, bool completed)
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

  double now = progress_now_locked (p);
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

void *
progress_tty_render_main (void *arg)
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
      if ((p->dirty || any_running (p)) && progress_now_locked (p) - p->last_draw >= 0.9 * TTY_INTERVAL_NS / 1e9)
        progress_tty_draw (p, false, false);
    }
  pthread_mutex_unlock (&p->mu);
  return NULL;
}

void
progress_render (progress *p)
{
  pthread_mutex_lock (&p->mu);
  if (p->mode == PROGRESS_TTY)
    progress_tty_draw (p, false, false);
  pthread_mutex_unlock (&p->mu);
}

/* Stop the render thread and draw the final frame. */
void
progress_tty_finish (progress *p, bool completed)
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
  progress_tty_draw (p, true, completed);
  pthread_mutex_unlock (&p->mu);
}
