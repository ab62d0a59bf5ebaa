/* frontend_bench.c - time the Dockerfile frontend and the .dockerignore
 * matcher (driven by bench/frontend.sh).
 *   frontend_bench dockerfile PATH        parse + plan + JSON render
 *   frontend_bench ignore IGNOREFILE PATHS   match every path (and the
 *                                           can-skip query for directories) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "build/dockerfile.h"
#include "build/dockerignore.h"
#include "build/plan.h"
#include "build/plan_json.h"
#include "util/alloc.h"
#include "util/strbuf.h"

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *
slurp (const char *path, size_t *len)
{
  FILE *f = fopen (path, "r");
  if (!f)
    {
      perror (path);
      exit (1);
    }
  strbuf sb = STRBUF_INIT;
  char buf[65536];
  size_t n;
  while ((n = fread (buf, 1, sizeof buf, f)) > 0)
    strbuf_add (&sb, buf, n);
  fclose (f);
  return strbuf_detach (&sb, len);
}

int
main (int argc, char **argv)
{
  kiln_error *err = NULL;
  if (argc == 3 && strcmp (argv[1], "dockerfile") == 0)
    {
      size_t len;
      char *data = slurp (argv[2], &len);
      double t0 = now ();
      dockerfile *df = NULL;
      if (dockerfile_parse (argv[2], data, len, &df, &err) < 0)
        {
          fprintf (stderr, "%s\n", err->msg);
          return 1;
        }
      double t1 = now ();
      plan_options o = { .platform = "linux/amd64", .skip_unused_stages = true };
      plan *p = NULL;
      if (plan_build (df, &o, &p, &err) < 0)
        {
          fprintf (stderr, "%s\n", err->msg);
          return 1;
        }
      double t2 = now ();
      char *json = NULL;
      plan_json_render (p, &json, &err);
      double t3 = now ();
      printf ("dockerfile: %zu lines, %zu instructions, %zu stages\n", df->n_lines, df->n_instrs, p->n_stages);
      printf ("parse %.1f ms, plan %.1f ms, json %.1f ms (%zu bytes), total %.1f ms\n", (t1 - t0) * 1e3,
              (t2 - t1) * 1e3, (t3 - t2) * 1e3, strlen (json), (t3 - t0) * 1e3);
      free (json);
      plan_free (p);
      free (data);
      return 0;
    }
  if (argc == 4 && strcmp (argv[1], "ignore") == 0)
    {
      size_t len, plen;
      char *data = slurp (argv[2], &len);
      char *paths = slurp (argv[3], &plen);
      dockerignore *d = NULL;
      if (dockerignore_parse (data, len, &d, &err) < 0)
        {
          fprintf (stderr, "%s\n", err->msg);
          return 1;
        }
      double t0 = now ();
      size_t n = 0, excluded = 0, skippable = 0;
      char *save = NULL;
      for (char *p = strtok_r (paths, "\n", &save); p; p = strtok_r (NULL, "\n", &save))
        {
          n++;
          excluded += dockerignore_excluded (d, p);
          if (p[strlen (p) - 1] != 'c') /* every path not ending in .c is also queried as a directory */
            skippable += dockerignore_can_skip_dir (d, p);
        }
      double t1 = now ();
      printf ("dockerignore: %zu patterns, %zu paths, %zu excluded, %zu skippable dirs\n", dockerignore_count (d), n,
              excluded, skippable);
      printf ("match %.1f ms (%.2f us/path)\n", (t1 - t0) * 1e3, (t1 - t0) * 1e6 / (double) n);
      dockerignore_free (d);
      free (data);
      free (paths);
      return 0;
    }
  fprintf (stderr, "usage: frontend_bench dockerfile PATH | ignore IGNOREFILE PATHS\n");
  return 2;
}
