/* fuzz_cache_components.c - cache_components_parse on arbitrary bytes (the
 * components label of a build cache entry's config comes from a registry
 * with --cache-repo: untrusted). What parses must serialise and parse back
 * to the same bytes, and explaining it against itself or nothing must not
 * crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "build/build_cache_explain.h"
#include "util/alloc.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  cache_components *c = NULL, *c2 = NULL;
  kiln_error *err = NULL;
  if (cache_components_parse ((const char *) data, size, &c, &err) < 0)
    {
      if (err == NULL || c != NULL)
        abort ();
      kiln_error_free (err);
      return 0;
    }
  char *j = NULL, *j2 = NULL;
  size_t len = 0, len2 = 0;
  if (cache_components_to_json (c, &j, &len, &err) < 0 || cache_components_parse (j, len, &c2, &err) < 0
      || cache_components_to_json (c2, &j2, &len2, &err) < 0 || len != len2 || memcmp (j, j2, len) != 0)
    abort ();
  if (cache_components_distance (c, c2) != 0)
    abort ();
  char *text = NULL, *json = NULL;
  cache_explain (c, c2, &text, &json);
  free (text);
  free (json);
  cache_explain (NULL, c, &text, &json);
  free (text);
  free (json);
  free (j);
  free (j2);
  cache_components_free (c);
  cache_components_free (c2);
  return 0;
}
