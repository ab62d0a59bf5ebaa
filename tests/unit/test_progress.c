/* test_progress.c - progress output in every mode: plain and json lines,
 * quiet, the tty frames (with a fixed size and a fake clock), auto
 * detection on a real pseudo-terminal, and use from two threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "build/progress.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "helpers/testutil.h"

#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---- */

typedef struct cap
{
  char *buf;
  size_t len;
  FILE *f;
  size_t mark; /* start of the text since the last cap_since */
} cap;

static void
cap_open (cap *c)
{
  memset (c, 0, sizeof *c);
  c->f = open_memstream (&c->buf, &c->len);
  assert_non_null (c->f);
}

/* Text written since the previous call (caller frees). */
static char *
cap_since (cap *c)
{
  fflush (c->f);
  char *s = xstrndup (c->buf + c->mark, c->len - c->mark);
  c->mark = c->len;
  return s;
}

static void
cap_close (cap *c)
{
  fclose (c->f);
  free (c->buf);
}

static bool
matches (const char *s, const char *re)
{
  regex_t r;
  assert_int_equal (regcomp (&r, re, REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0);
  bool m = regexec (&r, s, 0, NULL, 0) == 0;
  regfree (&r);
  return m;
}

#define assert_matches(s, re)                                                 \
  do                                                                          \
    {                                                                         \
      if (!matches ((s), (re)))                                               \
        fail_msg ("'%s' does not match /%s/", (s), (re));                     \
    }                                                                         \
  while (0)

static size_t
count (const char *s, const char *needle)
{
  size_t n = 0;
  for (const char *q = s; (q = strstr (q, needle)); q += strlen (needle))
    n++;
  return n;
}

/* The fake clock: tests move it by hand. */
static double fake_now;

static double
fake_clock (void *ctx)
{
  (void) ctx;
  return fake_now;
}

static progress *
tty_new (cap *c, int width, int height, bool colour)
{
  fake_now = 100.0;
  progress_tty_opts o = { .width = width, .height = height, .manual = true, .clock = fake_clock,
                          .no_colour = !colour, .colour = colour };
  return progress_new_tty (c->f, &o);
}

/* Display columns of each line of a frame (SGR/erase/cursor sequences
 * skipped, UTF-8 continuation bytes not counted; the tests only use
 * narrow characters here); the largest. */
static int
widest_line (const char *s)
{
  int widest = 0, cols = 0;
  for (const char *q = s; *q; q++)
    {
      if (*q == '\033')
        {
          q++;
          if (*q == '[')
            while (q[1] && !(q[1] >= 0x40 && q[1] <= 0x7e))
              q++;
          if (q[1])
            q++;
          continue;
        }
      if (*q == '\n' || *q == '\r')
        {
          cols = 0;
          continue;
        }
      if (((unsigned char) *q & 0xc0) != 0x80)
        cols++;
      if (cols > widest)
        widest = cols;
    }
  return widest;
}

/* ---- modes ---- */

static void
test_parse_mode (void **state)
{
  (void) state;
  progress_mode m;
  autoerror kiln_error *err = NULL;
  assert_int_equal (progress_parse_mode ("auto", &m, &err), 0);
  assert_int_equal (m, PROGRESS_AUTO);
  assert_int_equal (progress_parse_mode ("plain", &m, &err), 0);
  assert_int_equal (m, PROGRESS_PLAIN);
  assert_int_equal (progress_parse_mode ("tty", &m, &err), 0);
  assert_int_equal (m, PROGRESS_TTY);
  assert_int_equal (progress_parse_mode ("json", &m, &err), 0);
  assert_int_equal (m, PROGRESS_JSON);
  assert_true (progress_parse_mode ("fancy", &m, &err) < 0);
  assert_non_null (strstr (err->msg, "'fancy'"));
  assert_non_null (strstr (err->msg, "auto, plain, tty or json"));
}

static void
test_auto_mode (void **state)
{
  (void) state;
  int nul = open ("/dev/null", O_WRONLY | O_CLOEXEC);
  assert_true (nul >= 0);
  assert_int_equal (progress_auto_mode (nul, "xterm"), PROGRESS_PLAIN);
  close (nul);
  int master = posix_openpt (O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || grantpt (master) < 0 || unlockpt (master) < 0)
    {
      print_message ("# skip reason: no pseudo-terminals here\n");
      if (master >= 0)
        close (master);
      skip ();
    }
  int slave = open (ptsname (master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  assert_true (slave >= 0);
  assert_int_equal (progress_auto_mode (slave, "xterm-256color"), PROGRESS_TTY);
  assert_int_equal (progress_auto_mode (slave, "dumb"), PROGRESS_PLAIN);
  assert_int_equal (progress_auto_mode (slave, ""), PROGRESS_PLAIN);
  assert_int_equal (progress_auto_mode (slave, NULL), PROGRESS_PLAIN);

  /* progress_new resolves AUTO against the stream it writes to. */
  FILE *f = fdopen (slave, "w");
  assert_non_null (f);
  setenv ("TERM", "xterm", 1);
  progress *p = progress_new (PROGRESS_AUTO, f);
  assert_int_equal (progress_get_mode (p), PROGRESS_TTY);
  progress_free (p);
  setenv ("TERM", "dumb", 1);
  p = progress_new (PROGRESS_AUTO, f);
  assert_int_equal (progress_get_mode (p), PROGRESS_PLAIN);
  progress_free (p);
  fclose (f);
  close (master);

  cap c;
  cap_open (&c);
  setenv ("TERM", "xterm", 1);
  p = progress_new (PROGRESS_AUTO, c.f);
  assert_int_equal (progress_get_mode (p), PROGRESS_PLAIN);
  progress_free (p);
  cap_close (&c);
}

/* ---- plain, json, quiet ---- */

static void
run_script (progress *p)
{
  progress_note (p, "pulling %s", "docker.io/library/busybox");
  int a = progress_step_begin (p, "build", 1, 3, "FROM busybox");
  progress_step_end (p, "DONE");
  int b = progress_step_begin (p, "build", 2, 3, "RUN make");
  assert_int_equal (b, a + 1);
  progress_step_cache_miss_id (p, b, "src/a.c changed",
                               "{\"reason\":\"files_changed\",\"text\":\"src/a.c changed\",\"reasons\":[]}");
  progress_step_output (p, 1, "cc -o app main.c", 16);
  progress_step_output_id (p, b, 2, "warning: \"x\"", 12);
  progress_step_end_id (p, b, "DONE");
  progress_step_begin (p, NULL, 3, 3, "COPY . /");
  progress_step_end (p, "CACHED");
  progress_note (p, "pushing %s", "localhost/app");
  double secs[] = { 0.5, 1.25 };
  const char *names[] = { "pull", "run" };
  progress_summary (p, "sha256:abc", 2500000, 2, secs, names, 2);
}

static void
test_plain (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  progress *p = progress_new (PROGRESS_PLAIN, c.f);
  assert_int_equal (progress_get_mode (p), PROGRESS_PLAIN);
  run_script (p);
  progress_free (p);
  autofree char *out = cap_since (&c);
  assert_matches (out, "^#0 pulling docker.io/library/busybox\n"
                       "#1 \\[build 1/3\\] FROM busybox\n"
                       "#1 DONE [0-9]+\\.[0-9]s\n"
                       "#2 \\[build 2/3\\] RUN make\n"
                       "#2 cache miss: src/a.c changed\n"
                       "#2 [0-9]+\\.[0-9]{3} cc -o app main.c\n"
                       "#2 [0-9]+\\.[0-9]{3} warning: \"x\"\n"
                       "#2 DONE [0-9.]+s\n"
                       "#3 \\[3/3\\] COPY \\. /\n"
                       "#3 CACHED\n"
                       "#3 pushing localhost/app\n"
                       "#4 built sha256:abc: 2 layers, 2\\.5 MB compressed, [0-9.]+s total \\(pull 0\\.50s, run 1\\.25s\\); "
                       "cache: 1 hit, 1 miss\n$");
  assert_null (strchr (out, '\033'));
  cap_close (&c);
}

static void
test_json (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  progress *p = progress_new (PROGRESS_JSON, c.f);
  run_script (p);
  progress_free (p);
  autofree char *out = cap_since (&c);
  const char *want[] = { "note", "step", "done", "step", "cache", "output", "output", "done", "step", "done", "note",
                         "summary" };
  size_t n = 0;
  for (char *line = out, *nl; (nl = strchr (line, '\n')); line = nl + 1, n++)
    {
      autoerror kiln_error *err = NULL;
      json_value *v = NULL;
      assert_ok (json_parse (line, (size_t) (nl - line), 1 << 20, &v, &err), err);
      assert_true (n < sizeof want / sizeof *want);
      assert_string_equal (json_get_string (v, "event"), want[n]);
      if (n == 3)
        {
          assert_string_equal (json_get_string (v, "stage"), "build");
          assert_string_equal (json_get_string (v, "text"), "RUN make");
        }
      if (n == 4)
        {
          int64_t id = 0;
          assert_ok (json_get_int64 (v, "id", &id, &err) < 0 ? -1 : 0, err);
          assert_int_equal (id, 2);
          assert_string_equal (json_get_string (v, "result"), "miss");
          assert_string_equal (json_get_string (v, "reason"), "files_changed");
          assert_string_equal (json_get_string (v, "text"), "src/a.c changed");
        }
      if (n == 6)
        {
          assert_string_equal (json_get_string (v, "stream"), "stderr");
          assert_string_equal (json_get_string (v, "line"), "warning: \"x\"");
        }
      if (n == 9)
        assert_string_equal (json_get_string (v, "status"), "CACHED");
      if (n == 11)
        {
          int64_t hits = -1, misses = -1;
          assert_string_equal (json_get_string (v, "digest"), "sha256:abc");
          assert_non_null (json_get (v, "run_seconds"));
          assert_ok (json_get_int64 (v, "cache_hits", &hits, &err) < 0
                         || json_get_int64 (v, "cache_misses", &misses, &err) < 0 ? -1 : 0, err);
          assert_int_equal (hits, 1);
          assert_int_equal (misses, 1);
        }
      json_free (v);
    }
  assert_int_equal (n, sizeof want / sizeof *want);
  cap_close (&c);
}

static void
test_quiet (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  progress *p = progress_new (PROGRESS_QUIET, c.f);
  run_script (p);
  /* The tail is kept whatever the mode: error messages need it. */
  int id = progress_step_begin (p, "s", 1, 1, "RUN false");
  progress_step_output (p, 2, "boom", 4);
  autofree char *t = progress_tail_id (p, id);
  assert_string_equal (t, "  > boom");
  progress_free (p);
  autofree char *out = cap_since (&c);
  assert_string_equal (out, "");
  cap_close (&c);
}

static void
test_tail (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  progress *p = progress_new (PROGRESS_QUIET, c.f);
  autofree char *none = progress_tail (p);
  assert_string_equal (none, "");
  int id = progress_step_begin (p, NULL, 1, 1, "RUN x");
  for (int i = 0; i < 15; i++)
    {
      char l[16];
      int n = snprintf (l, sizeof l, "line %d", i);
      progress_step_output (p, 1, l, (size_t) n);
    }
  autofree char *big = xmalloc (10000);
  memset (big, 'x', 10000);
  progress_step_output (p, 1, big, 10000);
  progress_step_end (p, "ERROR");
  /* After the end the tail is still the step's (error messages come after). */
  autofree char *t = progress_tail (p);
  assert_true (strncmp (t, "  > line 4\n  > line 5\n", 22) == 0);
  assert_int_equal (count (t, "\n"), 11);
  assert_int_equal (strlen (strrchr (t, '\n') + 1), 4 + 4096);
  autofree char *unknown = progress_tail_id (p, id + 7);
  assert_string_equal (unknown, "");
  /* Unknown ids are ignored, not a crash. */
  progress_step_output_id (p, 99, 1, "x", 1);
  progress_step_end_id (p, -1, "DONE");
  progress_free (p);
  cap_close (&c);
}

/* ---- tty ---- */

static void
test_tty_cache_miss (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  progress *p = tty_new (&c, 80, 24, false);
  int a = progress_step_begin (p, "s", 2, 2, "COPY . /src");
  progress_step_cache_miss_id (p, a, "src/a.c changed", NULL);
  progress_step_end_id (p, a, "DONE");
  fake_now += 0.5;
  progress_render (p);
  autofree char *f = cap_since (&c);
  assert_non_null (strstr (f, " => [s 2/2] COPY . /src: cache miss: src/a.c changed"));
  progress_free (p);
  cap_close (&c);
}

static void
test_tty_frames (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  progress *p = tty_new (&c, 40, 24, false);
  assert_int_equal (progress_get_mode (p), PROGRESS_TTY);

  /* Nothing to show yet: no frame, not even the cursor hidden. */
  progress_render (p);
  autofree char *f0 = cap_since (&c);
  assert_string_equal (f0, "");

  int a = progress_step_begin (p, "s", 1, 2, "FROM scratch");
  fake_now += 0.3;
  progress_render (p);
  autofree char *f1 = cap_since (&c);
  assert_string_equal (f1, "\033[?25l"
                           "[+] Building 0.3s (0/1)\033[K\n"
                           " => [s 1/2] FROM scratch           0.3s\033[K\n");

  progress_step_end_id (p, a, "DONE");
  int b = progress_step_begin (p, "s", 2, 2, "RUN make");
  for (int i = 1; i <= 8; i++)
    {
      char l[16];
      int n = snprintf (l, sizeof l, "out %d", i);
      progress_step_output_id (p, b, 1, l, (size_t) n);
    }
  fake_now += 1.0;
  progress_render (p);
  autofree char *f2 = cap_since (&c);
  assert_string_equal (f2, "\r\033[2A"
                           "[+] Building 1.3s (1/2)\033[K\n"
                           " => [s 1/2] FROM scratch           0.3s\033[K\n"
                           " => [s 2/2] RUN make               1.0s\033[K\n"
                           " => => # out 3\033[K\n"
                           " => => # out 4\033[K\n"
                           " => => # out 5\033[K\n"
                           " => => # out 6\033[K\n"
                           " => => # out 7\033[K\n"
                           " => => # out 8\033[K\n");

  /* The running step's timer moves without events. */
  fake_now += 0.5;
  progress_render (p);
  autofree char *f3 = cap_since (&c);
  assert_non_null (strstr (f3, "\r\033[9A[+] Building 1.8s (1/2)"));
  assert_non_null (strstr (f3, "RUN make               1.5s"));

  /* Success collapses the output; the shorter frame clears what is left. */
  progress_step_end_id (p, b, "DONE");
  progress_note (p, "pushing %s", "localhost:5000/app:latest");
  progress_render (p);
  autofree char *f4 = cap_since (&c);
  assert_string_equal (f4, "\r\033[9A"
                           "[+] Building 1.8s (2/2)\033[K\n"
                           " => [s 1/2] FROM scratch           0.3s\033[K\n"
                           " => [s 2/2] RUN make               1.5s\033[K\n"
                           " => pushing localhost:5000/app:latest\033[K\n"
                           "\033[J");

  double secs[] = { 1 };
  const char *names[] = { "run" };
  progress_summary (p, "sha256:0123", 1000, 1, secs, names, 1);
  autofree char *f5 = cap_since (&c);
  assert_string_equal (f5, "\r\033[4A"
                           "[+] Building 1.8s (2/2) FINISHED\033[K\n"
                           " => [s 1/2] FROM scratch           0.3s\033[K\n"
                           " => [s 2/2] RUN make               1.5s\033[K\n"
                           " => pushing localhost:5000/app:latest\033[K\n"
                           "\033[?25h"
                           "built sha256:0123: 1 layer, 0.0 MB compressed, 1.8s total (run 1.00s)\n");

  /* After the final frame: nothing more is drawn, later lines are plain. */
  progress_render (p);
  progress_note (p, "late");
  progress_free (p);
  autofree char *f6 = cap_since (&c);
  assert_string_equal (f6, "#2 late\n");
  cap_close (&c);
}

static void
test_tty_error_keeps_tail (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  progress *p = tty_new (&c, 50, 24, true);
  progress_step_begin (p, "s", 1, 1, "RUN ./build.sh");
  progress_step_output (p, 2, "compiling", 9);
  progress_step_output (p, 2, "fatal: no", 9);
  progress_render (p);
  autofree char *live = cap_since (&c);
  /* Colour on: running step's output dimmed. */
  assert_non_null (strstr (live, "\033[2m => => # fatal: no\033[0m\033[K\n"));
  fake_now += 2;
  progress_step_end (p, "ERROR");
  progress_free (p);
  autofree char *fin = cap_since (&c);
  assert_string_equal (fin, "\r\033[4A"
                            "\033[31m[+] Building 2.0s (1/1) FAILED\033[0m\033[K\n"
                            "\033[31m => ERROR [s 1/1] RUN ./build.sh             2.0s\033[0m\033[K\n"
                            "\033[31m => => # compiling\033[0m\033[K\n"
                            "\033[31m => => # fatal: no\033[0m\033[K\n"
                            "\033[?25h");
  cap_close (&c);
}

static void
test_tty_interrupted (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  progress *p = tty_new (&c, 60, 24, false);
  progress_step_begin (p, "s", 1, 1, "RUN sleep 100");
  progress_step_output (p, 1, "zzz", 3);
  progress_render (p);
  autofree char *live = cap_since (&c);
  assert_non_null (strstr (live, "\033[?25l"));
  /* Freed while the step runs (SIGINT unwound the build): the final frame
   * keeps the step and its output, and the cursor comes back. */
  fake_now += 3;
  progress_free (p);
  autofree char *fin = cap_since (&c);
  assert_string_equal (fin, "\r\033[3A"
                            "[+] Building 3.0s (0/1) FAILED\033[K\n"
                            " => [s 1/1] RUN sleep 100                              3.0s\033[K\n"
                            " => => # zzz\033[K\n"
                            "\033[?25h");
  cap_close (&c);
}

static void
test_tty_width_and_untrusted_text (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  progress *p = tty_new (&c, 30, 24, false);
  progress_step_begin (p, "a-rather-long-stage-name", 10, 12,
                       "RUN apt-get update && apt-get install -y build-essential");
  const char *evil[] = {
    "\033]0;pwned title\a\033[2J\033[Hcleared?",
    "\033[31mred\033[0m plain\033(B",
    "50%\r100%",
    "a\tb",
    "bell\a and \x7f del \x01 ctl",
    "bad \xff\xfe utf8",
    "\xc2\x9b" "31m c1 csi",
    "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe6\x97\xa5\xe6\x9c\xac",
  };
  /* 4 lines each for a failed and a running step: both show them all. */
  for (size_t i = 0; i < 4; i++)
    progress_step_output (p, 1, evil[i], strlen (evil[i]));
  progress_step_end (p, "ERROR");
  progress_step_begin (p, NULL, 11, 12, "RUN x");
  for (size_t i = 4; i < sizeof evil / sizeof *evil; i++)
    progress_step_output (p, 1, evil[i], strlen (evil[i]));
  progress_render (p);
  autofree char *f = cap_since (&c);
  /* Only kiln's own sequences: hide cursor, erase line; nothing from the
   * step's output (no OSC, no clear screen, no colour, no C1 CSI). */
  assert_null (strstr (f, "\033]"));
  assert_null (strstr (f, "\033[2J"));
  assert_null (strstr (f, "\033[H"));
  assert_null (strstr (f, "\033[31m"));
  assert_null (strstr (f, "\xc2\x9b"));
  assert_null (strchr (f, '\a'));
  assert_null (strchr (f, '\t'));
  assert_null (strchr (f, '\x7f'));
  assert_null (strchr (f, '\x01'));
  /* 11 lines (header, 2 steps, 4 output lines each), each erased to its
   * end, and the cursor hidden. */
  assert_int_equal (count (f, "\033["), 11 + 1);
  /* The step line: cut to 29 columns with the time at the right edge. */
  assert_non_null (strstr (f, "\n => ERROR [a-rather-long 0.0s\033[K\n"));
  assert_non_null (strstr (f, "\n => [11/12] RUN x        0.0s\033[K\n"));
  assert_non_null (strstr (f, " => => # cleared?\033[K"));
  assert_non_null (strstr (f, " => => # red plain\033[K"));
  assert_non_null (strstr (f, " => => # bell and  del  ctl\033[K"));
  assert_non_null (strstr (f, " => => # bad ?? utf8\033[K"));
  assert_non_null (strstr (f, " => => # 31m c1 csi\033[K"));
  /* Wide characters count two columns: 20 columns left after the prefix. */
  assert_non_null (strstr (f, " => => # caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe6\x97\xa5\xe6\x9c\xac"
                              "\xe8\xaa\x9e\xe6\x97\xa5\033[K"));
  assert_true (widest_line (f) <= 29);
  progress_free (p);
  autofree char *fin = cap_since (&c);
  assert_true (widest_line (fin) <= 29);
  cap_close (&c);
}

static void
test_tty_cr_and_tabs (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  progress *p = tty_new (&c, 80, 24, false);
  progress_step_begin (p, NULL, 1, 1, "RUN x");
  progress_step_output (p, 1, "50%\r100%\r", 9);
  progress_step_output (p, 1, "a\tb", 3);
  progress_render (p);
  autofree char *f = cap_since (&c);
  assert_non_null (strstr (f, " => => # 100%\033[K\n"));
  /* Tab stops count from the start of the line: " => => # a" is 10
   * columns, so the tab reaches column 16. */
  assert_non_null (strstr (f, " => => # a      b\033[K\n"));
  progress_free (p);
  cap_close (&c);
}

static void
test_tty_height (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  progress *p = tty_new (&c, 60, 8, false);
  for (int i = 1; i <= 10; i++)
    {
      char t[32];
      snprintf (t, sizeof t, "COPY f%d /", i);
      progress_step_begin (p, "s", (size_t) i, 11, t);
      progress_step_end (p, "DONE");
    }
  int run = progress_step_begin (p, "s", 11, 11, "RUN long");
  for (int i = 0; i < 10; i++)
    progress_step_output_id (p, run, 1, "tick", 4);
  progress_render (p);
  autofree char *f = cap_since (&c);
  /* 7 lines at most on an 8-row terminal: the header, the running step
   * and 5 lines of its output; the finished steps went first. */
  assert_int_equal (count (f, "\n"), 7);
  assert_non_null (strstr (f, "[+] Building 0.0s (10/11)"));
  assert_null (strstr (f, "COPY f"));
  assert_non_null (strstr (f, "RUN long"));
  assert_int_equal (count (f, " => => # tick"), 5);

  /* Many steps running at once on a tiny terminal: outputs go first, then
   * the oldest running steps. */
  for (int i = 0; i < 8; i++)
    progress_step_begin (p, "t", 1, 1, "RUN par");
  progress_render (p);
  autofree char *g = cap_since (&c);
  assert_non_null (strstr (g, "\r\033[7A"));
  assert_int_equal (count (g, "\n"), 7);
  assert_int_equal (count (g, "RUN par"), 6);
  assert_null (strstr (g, "tick"));

  /* The final frame lists everything, however tall. */
  progress_free (p);
  autofree char *fin = cap_since (&c);
  assert_int_equal (count (fin, "\n"), 1 + 11 + 6 + 8);
  assert_non_null (strstr (fin, "COPY f1 /"));
  cap_close (&c);
}

static void
test_tty_no_colour_env (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  setenv ("NO_COLOR", "1", 1);
  progress_tty_opts o = { .width = 40, .height = 10, .manual = true };
  progress *p = progress_new_tty (c.f, &o);
  progress_step_begin (p, NULL, 1, 1, "RUN x");
  progress_step_output (p, 1, "o", 1);
  progress_render (p);
  progress_step_end (p, "ERROR");
  progress_free (p);
  autofree char *f = cap_since (&c);
  assert_null (strstr (f, "\033[31m"));
  assert_null (strstr (f, "\033[34m"));
  assert_null (strstr (f, "\033[2m"));
  assert_null (strstr (f, "\033[0m"));
  assert_non_null (strstr (f, " => ERROR [1/1] RUN x"));
  assert_non_null (strstr (f, "\033[?25h"));

  /* Empty NO_COLOR does not count (no-color.org). */
  setenv ("NO_COLOR", "", 1);
  p = progress_new_tty (c.f, &o);
  progress_step_begin (p, NULL, 1, 1, "RUN x");
  progress_step_end (p, "DONE");
  progress_free (p);
  autofree char *g = cap_since (&c);
  assert_non_null (strstr (g, "\033[34m => [1/1] RUN x"));
  unsetenv ("NO_COLOR");
  cap_close (&c);
}

/* Real clock and render thread: frames appear by themselves while a step
 * runs, and the final frame ends the display. */
static void
test_tty_render_thread (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  progress_tty_opts o = { .width = 60, .height = 20, .no_colour = true };
  struct timespec t0, t1;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  progress *p = progress_new_tty (c.f, &o);
  progress_step_begin (p, "s", 1, 1, "RUN sleep");
  progress_step_output (p, 1, "a", 1);
  /* ~0.35 s: the thread draws about 3 more frames for the timer. */
  struct timespec ts = { 0, 350000000L };
  nanosleep (&ts, NULL);
  progress_step_output (p, 1, "b", 1);
  progress_step_end (p, "DONE");
  double secs[] = { 0 };
  const char *names[] = { "run" };
  progress_summary (p, "sha256:1", 1, 1, secs, names, 1);
  progress_free (p);
  clock_gettime (CLOCK_MONOTONIC, &t1);
  double secs_taken = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  autofree char *f = cap_since (&c);
  size_t frames = count (f, "[+] Building");
  /* Drawn at once on the first event, by the thread in between, and the
   * final one; never more than 10 a second (+ first and final). */
  assert_true (frames >= 3);
  assert_true (frames <= 2 + (size_t) (secs_taken * 10) + 1);
  assert_int_equal (count (f, "\033[?25l"), 1);
  assert_int_equal (count (f, "\033[?25h"), 1);
  assert_int_equal (count (f, "FINISHED"), 1);
  const char *tail = strstr (f, "FINISHED");
  assert_non_null (strstr (tail, "\033[?25hbuilt sha256:1: "));
  cap_close (&c);
}

static void
test_log_stream (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  /* tty: log lines become notes inside the frame. */
  progress *p = tty_new (&c, 60, 24, false);
  log_setup (LOG_LEVEL_INFO, LOG_FORMAT_TEXT, false, progress_log_stream (p));
  progress_step_begin (p, "s", 1, 1, "FROM busybox");
  log_info ("layer sha256:%s 0.9 MB downloaded", "ab12");
  log_warn ("mirror m failed");
  FILE *ls = progress_log_stream (p);
  fputs ("a line in ", ls);
  fputs ("two writes\nand a rest", ls);
  progress_render (p);
  autofree char *f = cap_since (&c);
  assert_string_equal (f, "\033[?25l"
                          "[+] Building 0.0s (0/1)\033[K\n"
                          " => [s 1/1] FROM busybox                               0.0s\033[K\n"
                          " => layer sha256:ab12 0.9 MB downloaded\033[K\n"
                          " => warn: mirror m failed\033[K\n"
                          " => a line in two writes\033[K\n");
  log_setup (LOG_LEVEL_INFO, LOG_FORMAT_TEXT, false, NULL);
  progress_step_end (p, "DONE");
  double secs[] = { 0 };
  const char *names[] = { "run" };
  progress_summary (p, "sha256:1", 1, 1, secs, names, 1);
  /* After the display finished, lines pass through (the rest first). */
  fputs ("!\n", ls);
  progress_free (p);
  autofree char *g = cap_since (&c);
  assert_non_null (strstr (g, "FINISHED"));
  assert_true (strlen (g) > 14);
  assert_string_equal (g + strlen (g) - 12, "and a rest!\n");

  /* plain: unchanged, between the progress lines. */
  p = progress_new (PROGRESS_PLAIN, c.f);
  log_setup (LOG_LEVEL_INFO, LOG_FORMAT_TEXT, false, progress_log_stream (p));
  progress_step_begin (p, NULL, 1, 1, "FROM x");
  log_info ("pulled");
  progress_step_end (p, "DONE");
  log_setup (LOG_LEVEL_INFO, LOG_FORMAT_TEXT, false, NULL);
  progress_free (p);
  autofree char *h = cap_since (&c);
  assert_matches (h, "^#1 \\[1/1\\] FROM x\npulled\n#1 DONE [0-9.]+s\n$");
  cap_close (&c);
}

/* ---- threads ---- */

typedef struct worker
{
  progress *p;
  const char *stage;
  bool legacy; /* id-less functions (per-thread current step) */
  int id;
  int lines;
} worker;

static void *
worker_main (void *arg)
{
  worker *w = arg;
  int id = progress_step_begin (w->p, w->stage, 1, 1, "RUN work");
  w->id = id;
  for (int i = 0; i < w->lines; i++)
    {
      char l[64];
      int n = snprintf (l, sizeof l, "%s line %d", w->stage, i);
      if (w->legacy)
        progress_step_output (w->p, 1, l, (size_t) n);
      else
        progress_step_output_id (w->p, id, 1, l, (size_t) n);
      if (i % 50 == 0)
        {
          if (w->legacy)
            progress_note (w->p, "%s note %d", w->stage, i);
          else
            progress_note_id (w->p, id, "%s note %d", w->stage, i);
        }
    }
  if (w->legacy)
    progress_step_end (w->p, "DONE");
  else
    progress_step_end_id (w->p, id, "DONE");
  return NULL;
}

static void
run_workers (worker *w)
{
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal (pthread_create (&t[i], NULL, worker_main, &w[i]), 0);
  for (int i = 0; i < 2; i++)
    pthread_join (t[i], NULL);
}

static void
test_threads_plain (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  progress *p = progress_new (PROGRESS_PLAIN, c.f);
  worker w[2] = { { .p = p, .stage = "alpha", .legacy = true, .lines = 400 },
                  { .p = p, .stage = "beta", .legacy = false, .lines = 400 } };
  run_workers (w);
  autofree char *ta = progress_tail_id (p, w[0].id);
  autofree char *tb = progress_tail_id (p, w[1].id);
  assert_non_null (strstr (ta, "alpha line 399"));
  assert_null (strstr (ta, "beta"));
  assert_non_null (strstr (tb, "beta line 399"));
  assert_null (strstr (tb, "alpha"));
  progress_free (p);
  autofree char *out = cap_since (&c);
  /* Every line whole and under its own step's id. */
  size_t n = 0;
  for (char *line = out, *nl; (nl = strchr (line, '\n')); line = nl + 1, n++)
    {
      *nl = 0;
      int id;
      char stage[16];
      if (sscanf (line, "#%d %*f %15s line", &id, stage) == 2 && strstr (line, " line "))
        assert_int_equal (id, strcmp (stage, "alpha") == 0 ? w[0].id : w[1].id);
      else if (sscanf (line, "#%d %15s note", &id, stage) == 2 && strstr (line, " note "))
        assert_int_equal (id, strcmp (stage, "alpha") == 0 ? w[0].id : w[1].id);
      else
        assert_true (matches (line, "^#[12] (\\[(alpha|beta) 1/1\\] RUN work|DONE [0-9.]+s)$"));
    }
  assert_int_equal (n, 2 * (1 + 400 + 8 + 1));
  cap_close (&c);
}

static void
test_threads_tty (void **state)
{
  (void) state;
  cap c;
  cap_open (&c);
  progress_tty_opts o = { .width = 70, .height = 30, .no_colour = true };
  progress *p = progress_new_tty (c.f, &o);
  worker w[2] = { { .p = p, .stage = "alpha", .legacy = false, .lines = 3000 },
                  { .p = p, .stage = "beta", .legacy = true, .lines = 3000 } };
  run_workers (w);
  double secs[] = { 0 };
  const char *names[] = { "run" };
  progress_summary (p, "sha256:1", 1, 1, secs, names, 1);
  progress_free (p);
  autofree char *out = cap_since (&c);
  const char *fin = strstr (out, "FINISHED");
  assert_non_null (fin);
  assert_non_null (strstr (fin, "[alpha 1/1] RUN work"));
  assert_non_null (strstr (fin, "[beta 1/1] RUN work"));
  assert_null (strstr (fin, "line"));
  assert_non_null (strstr (fin, "alpha note 2950"));
  assert_int_equal (count (out, "\033[?25h"), 1);
  assert_true (widest_line (out) <= 69);
  cap_close (&c);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_mode),
    cmocka_unit_test (test_auto_mode),
    cmocka_unit_test (test_plain),
    cmocka_unit_test (test_json),
    cmocka_unit_test (test_quiet),
    cmocka_unit_test (test_tail),
    cmocka_unit_test (test_tty_frames),
    cmocka_unit_test (test_tty_cache_miss),
    cmocka_unit_test (test_tty_error_keeps_tail),
    cmocka_unit_test (test_tty_interrupted),
    cmocka_unit_test (test_tty_width_and_untrusted_text),
    cmocka_unit_test (test_tty_cr_and_tabs),
    cmocka_unit_test (test_tty_height),
    cmocka_unit_test (test_tty_no_colour_env),
    cmocka_unit_test (test_tty_render_thread),
    cmocka_unit_test (test_log_stream),
    cmocka_unit_test (test_threads_plain),
    cmocka_unit_test (test_threads_tty),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
