/* progress.c - build progress output (see progress.h). */
#include "build/progress.h"
#include "util/alloc.h"
#include "util/strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TAIL_LINES 12

struct progress
{
  progress_mode mode;
  FILE *out;
  struct timespec start, step_start;
  int next_id, cur;
  char *tail[TAIL_LINES];
  size_t tail_pos, tail_n;
};

int
progress_parse_mode (const char *s, progress_mode *out, kiln_error **err)
{
  if (strcmp (s, "auto") == 0 || strcmp (s, "plain") == 0)
    *out = PROGRESS_PLAIN;
  else if (strcmp (s, "json") == 0)
    *out = PROGRESS_JSON;
  else if (strcmp (s, "tty") == 0)
    return kiln_error_make (err, EINVAL, "--progress=tty is not implemented yet (use auto, plain or json)");
  else
    return kiln_error_make (err, EINVAL, "--progress '%s': expected auto, plain or json", s);
  return 0;
}

static double
since (const struct timespec *t)
{
  struct timespec now;
  clock_gettime (CLOCK_MONOTONIC, &now);
  return (now.tv_sec - t->tv_sec) + (now.tv_nsec - t->tv_nsec) / 1e9;
}

progress *
progress_new (progress_mode mode, FILE *out)
{
  progress *p = xzalloc (sizeof *p);
  p->mode = mode;
  p->out = out;
  p->next_id = 1;
  clock_gettime (CLOCK_MONOTONIC, &p->start);
  return p;
}

void
progress_free (progress *p)
{
  if (!p)
    return;
  for (size_t i = 0; i < TAIL_LINES; i++)
    free (p->tail[i]);
  free (p);
}

double
progress_elapsed (const progress *p)
{
  return since (&p->start);
}

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
  fputs (sb->buf, p->out);
  fputc ('\n', p->out);
  fflush (p->out);
}

int
progress_step_begin (progress *p, const char *stage, size_t i, size_t n, const char *text)
{
  p->cur = p->next_id++;
  clock_gettime (CLOCK_MONOTONIC, &p->step_start);
  for (size_t k = 0; k < TAIL_LINES; k++)
    {
      free (p->tail[k]);
      p->tail[k] = NULL;
    }
  p->tail_n = p->tail_pos = 0;
  autostrbuf strbuf sb = STRBUF_INIT;
  switch (p->mode)
    {
    case PROGRESS_PLAIN:
      strbuf_addf (&sb, "#%d [%s%s%zu/%zu] %s", p->cur, stage ? stage : "", stage ? " " : "", i, n, text);
      emit (p, &sb);
      break;
    case PROGRESS_JSON:
      strbuf_addf (&sb, "{\"event\":\"step\",\"id\":%d,\"time\":%.3f", p->cur, since (&p->start));
      if (stage)
        json_str (&sb, "stage", stage, strlen (stage));
      strbuf_addf (&sb, ",\"step\":%zu,\"total\":%zu", i, n);
      json_str (&sb, "text", text, strlen (text));
      strbuf_addch (&sb, '}');
      emit (p, &sb);
      break;
    case PROGRESS_QUIET:
      break;
    }
  return p->cur;
}

void
progress_step_output (progress *p, int stream, const char *line, size_t len)
{
  free (p->tail[p->tail_pos]);
  p->tail[p->tail_pos] = xstrndup (line, len);
  p->tail_pos = (p->tail_pos + 1) % TAIL_LINES;
  if (p->tail_n < TAIL_LINES)
    p->tail_n++;
  autostrbuf strbuf sb = STRBUF_INIT;
  switch (p->mode)
    {
    case PROGRESS_PLAIN:
      strbuf_addf (&sb, "#%d %.3f ", p->cur, since (&p->step_start));
      strbuf_add (&sb, line, len);
      emit (p, &sb);
      break;
    case PROGRESS_JSON:
      strbuf_addf (&sb, "{\"event\":\"output\",\"id\":%d,\"stream\":\"%s\"", p->cur, stream == 2 ? "stderr" : "stdout");
      json_str (&sb, "line", line, len);
      strbuf_addch (&sb, '}');
      emit (p, &sb);
      break;
    case PROGRESS_QUIET:
      break;
    }
}

void
progress_step_end (progress *p, const char *status)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  double d = since (&p->step_start);
  switch (p->mode)
    {
    case PROGRESS_PLAIN:
      if (strcmp (status, "CACHED") == 0)
        strbuf_addf (&sb, "#%d CACHED", p->cur);
      else
        strbuf_addf (&sb, "#%d %s %.1fs", p->cur, status, d);
      emit (p, &sb);
      break;
    case PROGRESS_JSON:
      strbuf_addf (&sb, "{\"event\":\"done\",\"id\":%d,\"status\":\"%s\",\"seconds\":%.3f}", p->cur, status, d);
      emit (p, &sb);
      break;
    case PROGRESS_QUIET:
      break;
    }
}

void
progress_note (progress *p, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  autofree char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  autostrbuf strbuf sb = STRBUF_INIT;
  switch (p->mode)
    {
    case PROGRESS_PLAIN:
      strbuf_addf (&sb, "#%d %s", p->cur, msg);
      emit (p, &sb);
      break;
    case PROGRESS_JSON:
      strbuf_addf (&sb, "{\"event\":\"note\",\"id\":%d", p->cur);
      json_str (&sb, "text", msg, strlen (msg));
      strbuf_addch (&sb, '}');
      emit (p, &sb);
      break;
    case PROGRESS_QUIET:
      break;
    }
}

char *
progress_tail (progress *p)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  size_t first = (p->tail_pos + TAIL_LINES - p->tail_n) % TAIL_LINES;
  for (size_t k = 0; k < p->tail_n; k++)
    {
      const char *l = p->tail[(first + k) % TAIL_LINES];
      if (sb.len)
        strbuf_addch (&sb, '\n');
      strbuf_adds (&sb, "  > ");
      strbuf_adds (&sb, l ? l : "");
    }
  return strbuf_detach (&sb, NULL);
}

void
progress_summary (progress *p, const char *digest, unsigned long long size, size_t layers, const double *phase_secs,
                  const char *const *phase_names, size_t n_phases)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  switch (p->mode)
    {
    case PROGRESS_PLAIN:
      strbuf_addf (&sb, "#%d built %s: %zu layer%s, %.1f MB compressed, %.1fs total (", p->next_id, digest, layers,
                   layers == 1 ? "" : "s", size / 1e6, since (&p->start));
      for (size_t i = 0; i < n_phases; i++)
        strbuf_addf (&sb, "%s%s %.2fs", i ? ", " : "", phase_names[i], phase_secs[i]);
      strbuf_addch (&sb, ')');
      emit (p, &sb);
      break;
    case PROGRESS_JSON:
      strbuf_addf (&sb, "{\"event\":\"summary\",\"digest\":\"%s\",\"size\":%llu,\"layers\":%zu,\"seconds\":%.3f",
                   digest, size, layers, since (&p->start));
      for (size_t i = 0; i < n_phases; i++)
        strbuf_addf (&sb, ",\"%s_seconds\":%.3f", phase_names[i], phase_secs[i]);
      strbuf_addch (&sb, '}');
      emit (p, &sb);
      break;
    case PROGRESS_QUIET:
      break;
    }
}

/* Id-based variants for steps of parallel stages. This plain/json printer
 * keeps one current step, so they forward to it. */
void
progress_step_output_id (progress *p, int id, int stream, const char *line, size_t len)
{
  (void) id;
  progress_step_output (p, stream, line, len);
}

void
progress_step_end_id (progress *p, int id, const char *status)
{
  (void) id;
  progress_step_end (p, status);
}

char *
progress_tail_id (progress *p, int id)
{
  (void) id;
  return progress_tail (p);
}
