/* fuzz_units.c - duration and size parsers on arbitrary strings; a parsed
 * duration formats and never crashes, parse results never exceed range. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/units.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size > 4096)
    return 0;
  char *s = xstrndup ((const char *) data, size);
  kiln_error *err = NULL;
  int64_t ns = 0;
  uint64_t b = 0;
  char buf[UNITS_BUF_SIZE];
  if (units_parse_duration (s, &ns, &err) == 0)
    {
      units_format_duration (ns, buf);
      if (strlen (buf) >= UNITS_BUF_SIZE)
        abort ();
    }
  else if (err == NULL)
    abort ();
  kiln_error_clear (&err);
  if (units_parse_size (s, &b, &err) == 0)
    units_format_size (b, buf);
  else if (err == NULL)
    abort ();
  kiln_error_clear (&err);
  if (units_parse_size_si (s, &b, &err) < 0 && err == NULL)
    abort ();
  kiln_error_clear (&err);
  free (s);
  return 0;
}
