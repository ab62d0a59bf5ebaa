/* libFuzzer target: .dockerignore parsing and matching. Input: ignore file,
 * a NUL byte, then newline-separated paths to test. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "build/dockerignore.h"
#include "util/alloc.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const char *s = (const char *) data;
  const char *nul = memchr (s, '\0', size);
  size_t ilen = nul ? (size_t) (nul - s) : size;
  dockerignore *d = NULL;
  kiln_error *err = NULL;
  if (dockerignore_parse (s, ilen, &d, &err) < 0)
    {
      kiln_error_free (err);
      return 0;
    }
  if (nul)
    {
      char *paths = xstrndup (nul + 1, size - ilen - 1);
      char *save = NULL;
      for (char *p = strtok_r (paths, "\n", &save); p; p = strtok_r (NULL, "\n", &save))
        {
          bool ex = dockerignore_excluded (d, p);
          bool skip = dockerignore_can_skip_dir (d, p);
          if (skip && !ex)
            abort (); /* a skippable directory must be excluded */
        }
      free (paths);
    }
  dockerignore_free (d);
  return 0;
}
