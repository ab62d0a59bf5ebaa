/* units.c - duration and size parsing/formatting. */
#include "util/units.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- durations (port of Go's time.ParseDuration) ---- */

static const struct
{
  const char *name;
  uint64_t ns;
} duration_units[] = {
  { "ns", 1 },
  { "us", 1000 },
  { "\xc2\xb5s", 1000 }, /* U+00B5 micro sign */
  { "\xce\xbcs", 1000 }, /* U+03BC greek mu */
  { "ms", 1000000 },
  { "s", 1000000000ULL },
  { "m", 60ULL * 1000000000ULL },
  { "h", 3600ULL * 1000000000ULL },
};

#define DURATION_MAX ((uint64_t) 1 << 63)

int
units_parse_duration (const char *orig, int64_t *ns, kiln_error **err)
{
  const char *s = orig;
  bool neg = false;
  uint64_t d = 0;

  if (*s == '-' || *s == '+')
    neg = *s++ == '-';
  if (strcmp (s, "0") == 0)
    {
      *ns = 0;
      return 0;
    }
  if (*s == '\0')
    return kiln_error_make (err, 0, "invalid duration '%s'", orig);
  while (*s)
    {
      uint64_t v = 0, f = 0;
      double scale = 1;
      if (!(*s == '.' || isdigit ((unsigned char) *s)))
        return kiln_error_make (err, 0, "invalid duration '%s'", orig);
      const char *start = s;
      for (; isdigit ((unsigned char) *s); s++)
        {
          if (v > (DURATION_MAX - 1) / 10)
            return kiln_error_make (err, ERANGE, "invalid duration '%s': out of range", orig);
          v = v * 10 + (uint64_t) (*s - '0');
          if (v > DURATION_MAX)
            return kiln_error_make (err, ERANGE, "invalid duration '%s': out of range", orig);
        }
      bool pre = s != start, post = false;
      if (*s == '.')
        {
          s++;
          const char *fs = s;
          bool overflow = false;
          for (; isdigit ((unsigned char) *s); s++)
            {
              if (overflow)
                continue;
              if (f > (UINT64_MAX >> 1) / 10)
                {
                  overflow = true; /* further digits are below precision */
                  continue;
                }
              f = f * 10 + (uint64_t) (*s - '0');
              scale *= 10;
            }
          post = s != fs;
        }
      if (!pre && !post)
        return kiln_error_make (err, 0, "invalid duration '%s'", orig);
      size_t ul = 0;
      while (s[ul] && s[ul] != '.' && !isdigit ((unsigned char) s[ul]))
        ul++;
      if (ul == 0)
        return kiln_error_make (err, 0, "invalid duration '%s': missing unit", orig);
      uint64_t unit = 0;
      for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++)
        if (strlen (duration_units[i].name) == ul && memcmp (s, duration_units[i].name, ul) == 0)
          unit = duration_units[i].ns;
      if (unit == 0)
        return kiln_error_make (err, 0, "invalid duration '%s': unknown unit '%.*s'", orig, (int) ul, s);
      s += ul;
      if (v > DURATION_MAX / unit)
        return kiln_error_make (err, ERANGE, "invalid duration '%s': out of range", orig);
      v *= unit;
      if (f > 0)
        {
          v += (uint64_t) ((double) f * ((double) unit / scale));
          if (v > DURATION_MAX)
            return kiln_error_make (err, ERANGE, "invalid duration '%s': out of range", orig);
        }
      d += v;
      if (d > DURATION_MAX)
        return kiln_error_make (err, ERANGE, "invalid duration '%s': out of range", orig);
    }
  if (neg)
    *ns = d == DURATION_MAX ? INT64_MIN : -(int64_t) d;
  else if (d > DURATION_MAX - 1)
    return kiln_error_make (err, ERANGE, "invalid duration '%s': out of range", orig);
  else
    *ns = (int64_t) d;
  return 0;
}

/* ---- sizes (docker's units.RAMInBytes / FromHumanSize) ---- */

static int
parse_size (const char *orig, uint64_t base, uint64_t *bytes, kiln_error **err)
{
  const char *s = orig;
  unsigned __int128 ip = 0, frac = 0, fscale = 1;
  const char *start = s;
  for (; isdigit ((unsigned char) *s); s++)
    {
      ip = ip * 10 + (unsigned) (*s - '0');
      if (ip > UINT64_MAX)
        return kiln_error_make (err, ERANGE, "invalid size '%s': out of range", orig);
    }
  if (s == start)
    return kiln_error_make (err, 0, "invalid size '%s': expected a number", orig);
  if (*s == '.')
    {
      s++;
      const char *fs = s;
      for (; isdigit ((unsigned char) *s); s++)
        if (fscale < (unsigned __int128) 1000000000000000000ULL)
          {
            frac = frac * 10 + (unsigned) (*s - '0');
            fscale *= 10;
          }
      if (s == fs)
        return kiln_error_make (err, 0, "invalid size '%s': expected digits after '.'", orig);
    }
  if (*s == ' ')
    s++;
  unsigned exp = 0;
  static const char prefixes[] = "kmgtp";
  const char *pfx = *s ? strchr (prefixes, tolower ((unsigned char) *s)) : NULL;
  if (pfx)
    {
      exp = (unsigned) (pfx - prefixes) + 1;
      s++;
      if (*s == 'i' || *s == 'I')
        s++;
    }
  if (*s == 'b' || *s == 'B')
    s++;
  if (*s != '\0')
    return kiln_error_make (err, 0, "invalid size '%s': unknown suffix '%s' (expected b, k, m, g, t or p)",
                            orig, s);
  unsigned __int128 mul = 1;
  for (unsigned i = 0; i < exp; i++)
    mul *= base;
  unsigned __int128 total = ip * mul + frac * mul / fscale;
  if (total > UINT64_MAX)
    return kiln_error_make (err, ERANGE, "invalid size '%s': out of range", orig);
  *bytes = (uint64_t) total;
  return 0;
}

int
units_parse_size (const char *s, uint64_t *bytes, kiln_error **err)
{
  return parse_size (s, 1024, bytes, err);
}

int
units_parse_size_si (const char *s, uint64_t *bytes, kiln_error **err)
{
  return parse_size (s, 1000, bytes, err);
}

/* ---- formatting ---- */

const char *
units_format_size (uint64_t bytes, char buf[UNITS_BUF_SIZE])
{
  static const char *const names[] = { "kB", "MB", "GB", "TB", "PB", "EB" };
  if (bytes < 1000)
    {
      snprintf (buf, UNITS_BUF_SIZE, "%" PRIu64 " B", bytes);
      return buf;
    }
  double v = (double) bytes;
  size_t i = 0;
  v /= 1000;
  /* Move up a unit when rounding to one decimal would print "1000.0". */
  while (v >= 999.95 && i + 1 < sizeof names / sizeof names[0])
    {
      v /= 1000;
      i++;
    }
  snprintf (buf, UNITS_BUF_SIZE, "%.1f %s", v, names[i]);
  return buf;
}

const char *
units_format_duration (int64_t ns, char buf[UNITS_BUF_SIZE])
{
  const char *sign = "";
  uint64_t u;
  if (ns < 0)
    {
      sign = "-";
      u = (uint64_t) 0 - (uint64_t) ns;
    }
  else
    u = (uint64_t) ns;
  if (u < 1000)
    snprintf (buf, UNITS_BUF_SIZE, "%s%" PRIu64 "ns", sign, u);
  else if (u < 1000000)
    snprintf (buf, UNITS_BUF_SIZE, "%s%" PRIu64 "\xc2\xb5s", sign, u / 1000);
  else if (u < 1000000000)
    snprintf (buf, UNITS_BUF_SIZE, "%s%" PRIu64 "ms", sign, u / 1000000);
  else if (u < 59950000000ULL) /* below 59.95s, which would print "60.0s" */
    snprintf (buf, UNITS_BUF_SIZE, "%s%.1fs", sign, (double) u / 1e9);
  else
    {
      uint64_t s = (u + 500000000) / 1000000000;
      if (s < 3600)
        snprintf (buf, UNITS_BUF_SIZE, "%s%" PRIu64 "m%" PRIu64 "s", sign, s / 60, s % 60);
      else
        snprintf (buf, UNITS_BUF_SIZE, "%s%" PRIu64 "h%" PRIu64 "m", sign, s / 3600, (s % 3600) / 60);
    }
  return buf;
}
