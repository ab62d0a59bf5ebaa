/* strbuf.c - growable byte buffer. */
#include "util/strbuf.h"
#include "util/alloc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char strbuf_empty_[1];

void
strbuf_init (strbuf *sb, size_t hint)
{
  sb->buf = strbuf_empty_;
  sb->len = 0;
  sb->alloc = 0;
  if (hint)
    strbuf_grow (sb, hint);
}

void
strbuf_release (strbuf *sb)
{
  if (sb->alloc)
    free (sb->buf);
  strbuf_init (sb, 0);
}

void
cleanup_strbufp (strbuf *sb)
{
  strbuf_release (sb);
}

char *
strbuf_detach (strbuf *sb, size_t *len)
{
  char *r;
  if (len)
    *len = sb->len;
  if (sb->alloc == 0)
    r = xstrdup ("");
  else
    r = sb->buf;
  strbuf_init (sb, 0);
  return r;
}

void
strbuf_reset (strbuf *sb)
{
  strbuf_setlen (sb, 0);
}

void
strbuf_grow (strbuf *sb, size_t extra)
{
  if (extra > (size_t) -1 - sb->len - 1)
    {
      fprintf (stderr, "kiln: strbuf size overflow\n");
      abort ();
    }
  size_t need = sb->len + extra + 1;
  if (need <= sb->alloc)
    return;
  size_t na = sb->alloc ? sb->alloc : 64;
  while (na < need)
    na = na < ((size_t) -1) / 2 ? na * 2 : need;
  if (sb->alloc == 0)
    {
      sb->buf = xmalloc (na);
      sb->buf[0] = '\0';
    }
  else
    sb->buf = xrealloc (sb->buf, na);
  sb->alloc = na;
}

void
strbuf_setlen (strbuf *sb, size_t len)
{
  if (sb->alloc == 0)
    return;
  if (len > sb->alloc - 1)
    len = sb->alloc - 1;
  sb->len = len;
  sb->buf[len] = '\0';
}

void
strbuf_add (strbuf *sb, const void *data, size_t len)
{
  strbuf_grow (sb, len);
  if (len)
    memcpy (sb->buf + sb->len, data, len);
  sb->len += len;
  sb->buf[sb->len] = '\0';
}

void
strbuf_adds (strbuf *sb, const char *s)
{
  strbuf_add (sb, s, strlen (s));
}

void
strbuf_addch (strbuf *sb, int c)
{
  strbuf_grow (sb, 1);
  sb->buf[sb->len++] = (char) c;
  sb->buf[sb->len] = '\0';
}

void
strbuf_vaddf (strbuf *sb, const char *fmt, va_list ap)
{
  va_list cp;
  va_copy (cp, ap);
  int n = vsnprintf (NULL, 0, fmt, cp);
  va_end (cp);
  if (n < 0)
    return;
  strbuf_grow (sb, (size_t) n);
  vsnprintf (sb->buf + sb->len, (size_t) n + 1, fmt, ap);
  sb->len += (size_t) n;
}

void
strbuf_addf (strbuf *sb, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  strbuf_vaddf (sb, fmt, ap);
  va_end (ap);
}

/* Length of the well-formed UTF-8 sequence at s (n bytes left), RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF; 0 if there is
 * none. */
static size_t
utf8_seq_len (const unsigned char *s, size_t n)
{
  unsigned char c = s[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xbf; /* bounds of the second byte */
  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2;
  else if (c >= 0xe0 && c <= 0xef)
    {
      len = 3;
      if (c == 0xe0)
        lo = 0xa0;
      else if (c == 0xed)
        hi = 0x9f;
    }
  else if (c >= 0xf0 && c <= 0xf4)
    {
      len = 4;
      if (c == 0xf0)
        lo = 0x90;
      else if (c == 0xf4)
        hi = 0x8f;
    }
  else
    return 0;
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if ((s[i] & 0xc0) != 0x80)
      return 0;
  return len;
}

void
strbuf_add_json_escaped (strbuf *sb, const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++)
    {
      unsigned char c = (unsigned char) s[i];
      if (c >= 0x80)
        {
          size_t k = utf8_seq_len ((const unsigned char *) s + i, len - i);
          if (k == 0)
            strbuf_adds (sb, "\\ufffd");
          else
            {
              strbuf_add (sb, s + i, k);
              i += k - 1;
            }
          continue;
        }
      switch (c)
        {
        case '"':
          strbuf_adds (sb, "\\\"");
          break;
        case '\\':
          strbuf_adds (sb, "\\\\");
          break;
        case '\n':
          strbuf_adds (sb, "\\n");
          break;
        case '\r':
          strbuf_adds (sb, "\\r");
          break;
        case '\t':
          strbuf_adds (sb, "\\t");
          break;
        case '\b':
          strbuf_adds (sb, "\\b");
          break;
        case '\f':
          strbuf_adds (sb, "\\f");
          break;
        default:
          if (c < 0x20 || c == 0x7f)
            strbuf_addf (sb, "\\u%04x", c);
          else
            strbuf_addch (sb, c);
        }
    }
}

void
strbuf_rtrim (strbuf *sb)
{
  while (sb->len > 0 && isspace ((unsigned char) sb->buf[sb->len - 1]))
    sb->len--;
  if (sb->alloc)
    sb->buf[sb->len] = '\0';
}
