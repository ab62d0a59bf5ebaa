/* fuzz_reference.c - registry_ref_parse on arbitrary strings; an accepted
 * reference must print to a string that parses back to the same string. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/reference.h"
#include "util/alloc.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *s = xstrndup ((const char *) data, size);
  registry_ref *r = NULL, *r2 = NULL;
  kiln_error *err = NULL;
  if (registry_ref_parse (s, &r, &err) < 0)
    {
      if (err == NULL || strncmp (err->msg, "invalid reference", 17) != 0)
        abort ();
      kiln_error_free (err);
      free (s);
      return 0;
    }
  char *full = registry_ref_string (r);
  char *fam = registry_ref_familiar (r);
  if (registry_ref_parse (full, &r2, &err) < 0)
    {
      fprintf (stderr, "normalised '%s' does not parse: %s\n", full, err->msg);
      abort ();
    }
  char *full2 = registry_ref_string (r2);
  if (strcmp (full, full2) != 0)
    abort ();
  registry_ref_free (r2);
  r2 = NULL;
  if (registry_ref_parse (fam, &r2, &err) < 0)
    abort ();
  free (full2);
  full2 = registry_ref_string (r2);
  if (strcmp (full, full2) != 0)
    {
      fprintf (stderr, "familiar '%s' of '%s' parses to '%s'\n", fam, full, full2);
      abort ();
    }
  registry_ref_free (r);
  registry_ref_free (r2);
  free (full);
  free (full2);
  free (fam);
  free (s);
  return 0;
}
