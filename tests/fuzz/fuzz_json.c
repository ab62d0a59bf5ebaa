/* fuzz_json.c - json_parse on arbitrary bytes; a parsed document must
 * regenerate to compact JSON that parses again and regenerates to the same
 * bytes (generation is a fixed point). Getters must not crash on any tree. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/json.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
walk (const json_value *v)
{
  int64_t i;
  kiln_error *err = NULL;
  for (size_t k = 0; k < json_object_size (v); k++)
    {
      const char *key = json_object_key (v, k);
      (void) json_get_string (v, key);
      (void) json_get_bool (v, key, false);
      if (json_get_int64 (v, key, &i, &err) < 0)
        kiln_error_clear (&err);
      walk (json_object_value (v, k));
    }
  for (size_t k = 0; k < json_array_size (v); k++)
    walk (json_array_get (v, k));
  char **sv = NULL;
  if (json_to_strv (v, "x", &sv, &err) < 0)
    kiln_error_clear (&err);
  strv_free (sv);
  (void) json_type_name (v);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  json_value *v = NULL;
  kiln_error *err = NULL;
  if (json_parse ((const char *) data, size, 1 << 20, &v, &err) < 0)
    {
      if (err == NULL || strncmp (err->msg, "parsing JSON: ", 14) != 0)
        abort ();
      kiln_error_free (err);
      return 0;
    }
  walk (v);
  char *out1 = NULL, *out2 = NULL;
  size_t len1 = 0, len2 = 0;
  if (json_generate (v, &out1, &len1, &err) < 0)
    {
      /* Everything the parser accepts must be writable. */
      fprintf (stderr, "generate failed: %s\n", err->msg);
      abort ();
    }
  json_free (v);
  if (json_parse (out1, len1, 1 << 20, &v, &err) < 0)
    {
      fprintf (stderr, "reparse failed: %s\n", err->msg);
      abort ();
    }
  if (json_generate (v, &out2, &len2, &err) < 0)
    abort ();
  if (len1 != len2 || memcmp (out1, out2, len1) != 0)
    {
      fprintf (stderr, "generation is not a fixed point\n");
      abort ();
    }
  json_free (v);
  free (out1);
  free (out2);
  return 0;
}
