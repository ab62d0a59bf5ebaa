/* fuzz_progress.c - untrusted step output through the tty display: the
 * first byte picks the terminal width, the rest are output lines. Whatever
 * the output, the frames hold only kiln's own escape sequences, no control
 * characters, valid UTF-8, and no line wider than the terminal minus one. */
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "build/progress.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static double
fixed_clock (void *ctx)
{
  (void) ctx;
  return 1.0;
}

/* Length of one of kiln's sequences at s (after ESC), 0 if it is not one. */
static size_t
own_sequence (const char *s)
{
  static const char *const own[] = { "[?25l", "[?25h", "[K", "[J", "[0m", "[2m", "[31m", "[34m" };
  for (size_t i = 0; i < sizeof own / sizeof *own; i++)
    if (strncmp (s, own[i], strlen (own[i])) == 0)
      return strlen (own[i]);
  if (s[0] == '[' && s[1] >= '1' && s[1] <= '9')
    {
      size_t n = 1;
      while (s[n] >= '0' && s[n] <= '9')
        n++;
      if (s[n] == 'A')
        return n + 1;
    }
  return 0;
}

static void
check (const char *out, size_t len, int width)
{
  locale_t l = newlocale (LC_CTYPE_MASK, "C.UTF-8", (locale_t) 0);
  locale_t old = l ? uselocale (l) : (locale_t) 0;
  int cols = 0;
  mbstate_t st;
  memset (&st, 0, sizeof st);
  for (size_t i = 0; i < len;)
    {
      unsigned char c = (unsigned char) out[i];
      if (c == 0x1b)
        {
          size_t n = own_sequence (out + i + 1);
          if (!n)
            abort ();
          i += 1 + n;
          continue;
        }
      if (c == '\n' || c == '\r')
        {
          cols = 0;
          i++;
          continue;
        }
      if (c < 0x20 || c == 0x7f)
        abort ();
      if (!l)
        {
          cols++;
          i++;
        }
      else
        {
          wchar_t wc;
          size_t n = mbrtowc (&wc, out + i, len - i, &st);
          if (n == (size_t) -1 || n == (size_t) -2 || n == 0)
            abort ();
          int w = wcwidth (wc);
          if (w < 0)
            abort ();
          cols += w;
          i += n;
        }
      if (cols > (width > 1 ? width - 1 : 1))
        abort ();
    }
  if (l)
    {
      uselocale (old);
      freelocale (l);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1 || size > 16384)
    return 0;
  int width = data[0] ? data[0] : 1;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream (&buf, &len);
  if (!f)
    return 0;
  progress_tty_opts o = { .width = width, .height = 12, .manual = true, .colour = true, .clock = fixed_clock };
  progress *p = progress_new_tty (f, &o);
  const char *s = (const char *) data + 1, *end = (const char *) data + size;
  int id = progress_step_begin (p, "fuzz", 1, 2, "RUN x");
  while (s < end)
    {
      const char *nl = memchr (s, '\n', (size_t) (end - s));
      size_t n = nl ? (size_t) (nl - s) : (size_t) (end - s);
      progress_step_output_id (p, id, 1, s, n);
      s += n + 1;
    }
  progress_render (p);
  progress_step_end_id (p, id, "ERROR");
  /* The same bytes as a step's text and a note. */
  char *text = strndup ((const char *) data + 1, size - 1);
  if (text)
    {
      for (char *q = text; (q = strchr (q, '\n'));)
        *q = ' ';
      progress_step_begin (p, NULL, 2, 2, text);
      progress_note (p, "%s", text);
      progress_render (p);
      free (text);
    }
  progress_free (p);
  fclose (f);
  check (buf, len, width);
  free (buf);
  return 0;
}
