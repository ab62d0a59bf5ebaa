/* fuzz_seccomp_profile.c - libFuzzer target for the seccomp profile parser and compiler. */
#include "sandbox/seccomp_profile.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  seccomp_profile *p = NULL;
  kiln_error *err = NULL;
  if (seccomp_profile_parse ((const char *) data, size, "fuzz", &p, &err) == 0)
    {
      /* Compiling exercises the validated values against libseccomp. */
      seccomp_profile_env env = { seccomp_profile_docker_default_caps, 5, 10, SECCOMP_PROFILE_PLAIN, false };
      for (int lazy = 0; lazy < 2; lazy++)
        {
          /* Also with socket rules turned into notifications (lazy_net). */
          env.lazy_net = lazy;
          seccomp_filter *f = NULL;
          if (seccomp_profile_compile (p, &env, &f, &err) == 0)
            seccomp_filter_free (f);
          kiln_error_free (err);
          err = NULL;
        }
      seccomp_profile_free (p);
    }
  kiln_error_free (err);
  return 0;
}
