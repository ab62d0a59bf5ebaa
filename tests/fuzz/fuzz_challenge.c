/* fuzz_challenge.c - WWW-Authenticate parsing on arbitrary strings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/challenge.h"
#include "util/alloc.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *s = xstrndup ((const char *) data, size);
  registry_challenges *c = NULL;
  kiln_error *err = NULL;
  if (registry_challenges_parse (s, &c, &err) < 0)
    {
      if (!err || c)
        abort ();
      kiln_error_free (err);
    }
  else
    {
      if (c->n == 0)
        abort ();
      for (size_t i = 0; i < c->n; i++)
        {
          if (c->items[i].scheme[0] == '\0')
            abort ();
          (void) registry_challenge_param (&c->items[i], "realm");
        }
      (void) registry_challenges_find (c, "bearer");
      registry_challenges_free (c);
    }
  free (s);
  return 0;
}
