/* progress_bench.c - cost of one line of step output in each progress mode
 * (the sandbox calls progress_step_output for every line a RUN prints).
 * Usage: progress_bench LINES; writes to /dev/null, tty mode with its
 * render thread and a fixed 120x40 size, prints ns per line per mode. */
#include "build/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static double
run (progress *p, long lines)
{
  char l[128];
  double t0 = now ();
  int id = progress_step_begin (p, "bench", 1, 1, "RUN make");
  for (long i = 0; i < lines; i++)
    {
      int n = snprintf (l, sizeof l, "cc -O2 -c -o obj/file%ld.o src/file%ld.c  # \033[32mok\033[0m", i, i);
      progress_step_output_id (p, id, 1, l, (size_t) n);
    }
  progress_step_end_id (p, id, "DONE");
  progress_free (p);
  return (now () - t0) / (double) lines * 1e9;
}

int
main (int argc, char **argv)
{
  long lines = argc > 1 ? atol (argv[1]) : 200000;
  FILE *null = fopen ("/dev/null", "w");
  if (!null)
    return 1;
  printf ("plain %.0f ns/line\n", run (progress_new (PROGRESS_PLAIN, null), lines));
  printf ("json  %.0f ns/line\n", run (progress_new (PROGRESS_JSON, null), lines));
  progress_tty_opts o = { .width = 120, .height = 40 };
  printf ("tty   %.0f ns/line\n", run (progress_new_tty (null, &o), lines));
  printf ("quiet %.0f ns/line\n", run (progress_new (PROGRESS_QUIET, null), lines));
  fclose (null);
  return 0;
}
