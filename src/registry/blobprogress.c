/* blobprogress.c - in-place per-blob progress lines (see blobprogress.h). */
#include "registry/blobprogress.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"

typedef struct line
{
  char label[20]; /* "sha256:" + 12 hex */
  const char *verb;
  int64_t total;
  uint64_t done;
  double t0;
  double t1;      /* end time */
  bool ended;
  bool ok;
  const char *status;
} line;

struct blobprogress
{
  pthread_mutex_t lock;
  FILE *out;
  line *lines; /* the current block */
  size_t n;
  size_t drawn;   /* lines of the block already on the terminal */
  size_t active;  /* lines not ended */
  unsigned gen;   /* block number: ids of finished blocks never match */
  double last_draw;
};

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

blobprogress *
blobprogress_new (FILE *out)
{
  const char *term = getenv ("TERM");
  if (!out || !isatty (fileno (out)) || (term && strcmp (term, "dumb") == 0))
    return NULL;
  blobprogress *p = xzalloc (sizeof *p);
  pthread_mutex_init (&p->lock, NULL);
  p->out = out;
  return p;
}

void
blobprogress_free (blobprogress *p)
{
  if (!p)
    return;
  pthread_mutex_destroy (&p->lock);
  free (p->lines);
  free (p);
}

static void
format_line (const line *l, double t, char *buf, size_t size)
{
  /* kB for small blobs (configs), MB otherwise. */
  uint64_t scale_of = l->total >= 0 ? (uint64_t) l->total : l->done;
  double div = scale_of < 1000000 ? 1e3 : 1e6;
  const char *unit = scale_of < 1000000 ? "kB" : "MB";
  double amount = (double) l->done / div;
  if (l->ended)
    {
      double secs = l->t1 - l->t0;
      if (!l->ok || l->status)
        snprintf (buf, size, "%s  %s   %s", l->label, l->verb, l->status ? l->status : "failed");
      else
        snprintf (buf, size, "%s  %s   done %.1f %s in %.1f s (%.1f MB/s)", l->label, l->verb, amount, unit, secs,
                  secs > 0 ? (double) l->done / 1e6 / secs : 0.0);
      return;
    }
  double secs = t - l->t0;
  double rate = secs > 0.2 ? (double) l->done / 1e6 / secs : 0.0;
  if (l->total >= 0)
    snprintf (buf, size, "%s  %s   %.1f/%.1f %s   %.1f MB/s", l->label, l->verb, amount, (double) l->total / div,
              unit, rate);
  else
    snprintf (buf, size, "%s  %s   %.1f %s   %.1f MB/s", l->label, l->verb, amount, unit, rate);
}

/* Lock held. Move up over the lines drawn before and rewrite the block. */
static void
draw (blobprogress *p, double t)
{
  if (p->drawn)
    fprintf (p->out, "\033[%zuA", p->drawn);
  for (size_t i = 0; i < p->n; i++)
    {
      char buf[160];
      format_line (&p->lines[i], t, buf, sizeof buf);
      fprintf (p->out, "\r\033[K%s\n", buf);
    }
  fflush (p->out);
  p->drawn = p->n;
  p->last_draw = t;
  if (p->active == 0)
    {
      /* Block finished: its lines stay as plain output. */
      p->n = 0;
      p->drawn = 0;
      p->gen = (p->gen + 1) & 0x7fff;
    }
}

/* Lock held. The line of id in the current block, or NULL. */
static line *
lookup (blobprogress *p, int id)
{
  unsigned gen = (unsigned) id >> 16, idx = (unsigned) id & 0xffff;
  return gen == p->gen && idx < p->n ? &p->lines[idx] : NULL;
}

int
blobprogress_begin (blobprogress *p, const char *digest, const char *verb, int64_t total)
{
  if (!p)
    return -1;
  pthread_mutex_lock (&p->lock);
  p->lines = xrealloc (p->lines, (p->n + 1) * sizeof *p->lines);
  line *l = &p->lines[p->n];
  memset (l, 0, sizeof *l);
  snprintf (l->label, sizeof l->label, "%s", digest);
  l->verb = verb;
  l->total = total;
  l->t0 = now ();
  int id = (int) ((p->gen << 16) | (unsigned) p->n++);
  p->active++;
  draw (p, l->t0);
  pthread_mutex_unlock (&p->lock);
  return id;
}

void
blobprogress_set (blobprogress *p, int id, uint64_t done)
{
  if (!p || id < 0)
    return;
  pthread_mutex_lock (&p->lock);
  line *l = lookup (p, id);
  if (l && !l->ended)
    {
      l->done = done;
      double t = now ();
      if (t - p->last_draw >= 0.1)
        draw (p, t);
    }
  pthread_mutex_unlock (&p->lock);
}

void
blobprogress_end (blobprogress *p, int id, bool ok, const char *status)
{
  if (!p || id < 0)
    return;
  pthread_mutex_lock (&p->lock);
  line *l = lookup (p, id);
  if (l && !l->ended)
    {
      l->ended = true;
      l->ok = ok;
      l->status = status;
      l->t1 = now ();
      p->active--;
      draw (p, l->t1);
    }
  pthread_mutex_unlock (&p->lock);
}
