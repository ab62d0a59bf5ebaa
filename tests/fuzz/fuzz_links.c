/* fuzz_links.c - the store's links side-file parser (store/links.h) on
 * arbitrary bytes: never crashes, and what it accepts formats back to the
 * same bytes and parses again to the same records. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/links.h"
#include "util/alloc.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size > (1u << 20))
    return 0;
  store_links l = { 0 };
  kiln_error *err = NULL;
  if (store_links_parse ((const char *) data, size, &l, &err) < 0)
    {
      if (err == NULL || l.n != 0)
        abort ();
      kiln_error_clear (&err);
      return 0;
    }
  strbuf sb = STRBUF_INIT;
  store_links_format (&l, &sb);
  store_links again = { 0 };
  if (store_links_parse (sb.buf, sb.len, &again, &err) < 0 || again.n != l.n)
    abort ();
  for (size_t i = 0; i < l.n; i++)
    if (strcmp (l.v[i].path, again.v[i].path) != 0 || l.v[i].ino != again.v[i].ino
        || l.v[i].ctime_sec != again.v[i].ctime_sec || l.v[i].mtime_nsec != again.v[i].mtime_nsec)
      abort ();
  /* canonical input formats back to itself (leading zeros are not) */
  if (sb.len == size && memcmp (sb.buf, data, size) != 0 && memchr (data, '0', size) == NULL)
    abort ();
  strbuf_release (&sb);
  store_links_free (&l);
  store_links_free (&again);
  return 0;
}
