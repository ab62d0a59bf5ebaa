/* fuzz_authfile.c - config.json / auth.json parsing and credential-helper
 * output on arbitrary bytes; lookups on whatever parsed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/authfile.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  registry_authfile *f = NULL;
  kiln_error *err = NULL;
  if (registry_authfile_parse ((const char *) data, size, "fuzz.json", &f, &err) < 0)
    {
      if (!err || f)
        abort ();
      kiln_error_clear (&err);
    }
  else
    {
      static const char *const domains[] = { "docker.io", "localhost:5000", "quay.io", "h" };
      for (size_t i = 0; i < 4; i++)
        {
          registry_credential c;
          if (registry_authfile_lookup (f, domains[i], "a/b", &c) > 0)
            registry_credential_clear (&c);
        }
      registry_authfile_free (f);
    }
  registry_credential c;
  if (registry_credhelper_parse ((const char *) data, size, "fuzz", &c, &err) < 0)
    kiln_error_clear (&err);
  else
    registry_credential_clear (&c);
  return 0;
}
