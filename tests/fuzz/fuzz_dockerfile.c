/* libFuzzer target: parse + plan + JSON render + expansion of arbitrary
 * Dockerfile text. The first byte picks options so the fuzzer also explores
 * --target, --skip-unused-stages and build-args. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "build/dockerfile.h"
#include "build/expand.h"
#include "build/plan.h"
#include "build/plan_json.h"
#include "util/alloc.h"
#include "util/log.h"

static expand_lookup_result
lk (void *ctx, const char *name, size_t n, const char **value)
{
  (void) ctx;
  if (n == 1 && name[0] == 'A')
    {
      *value = "a.b.c";
      return EXPAND_SET;
    }
  return n % 2 ? EXPAND_UNSET : EXPAND_UNKNOWN;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  uint8_t mode = data[0];
  data++;
  size--;
  log_setup (LOG_LEVEL_ERROR, LOG_FORMAT_TEXT, false, NULL);

  /* expansion of the raw text as one word and as words */
  char *txt = xstrndup ((const char *) data, size);
  expand_opts eo = { .escape = (mode & 1) ? '`' : '\\', .lookup = lk, .raw_quotes = mode & 2, .raw_escapes = mode & 4 };
  char *w = NULL;
  kiln_error *err = NULL;
  if (expand_word (&eo, txt, &w, &err) == 0)
    free (w);
  kiln_error_free (err);
  err = NULL;
  char **ws = NULL;
  if (expand_words (&eo, txt, &ws, &err) == 0)
    strv_free (ws);
  kiln_error_free (err);
  err = NULL;
  free (txt);

  dockerfile *df = NULL;
  if (dockerfile_parse ("Dockerfile", (const char *) data, size, &df, &err) < 0)
    {
      kiln_error_free (err);
      return 0;
    }
  char *ba[] = { "A=1", "HTTP_PROXY=x", "B", NULL };
  plan_options o = {
    .build_args = (mode & 8) ? ba : NULL,
    .target = (mode & 16) ? "b" : NULL,
    .platform = (mode & 32) ? "linux/arm/v7" : "linux/amd64",
    .skip_unused_stages = !(mode & 64),
  };
  plan *p = NULL;
  if (plan_build (df, &o, &p, &err) < 0)
    {
      kiln_error_free (err);
      return 0;
    }
  char *json = NULL;
  if (plan_json_render (p, &json, &err) == 0)
    free (json);
  kiln_error_free (err);
  plan_free (p);
  return 0;
}
