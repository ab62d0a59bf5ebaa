/* test_cli.c - declarative flag parsing on getopt_long. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "util/alloc.h"
#include "util/cli.h"
#include "util/strbuf.h"

#include <stdlib.h>
#include <string.h>

enum { OPT_OUTPUT = 1, OPT_PUSH, OPT_CACHE_DIR, OPT_VERBOSE, OPT_FAIL };

static const cli_option opts[] = {
  { "output", 'o', CLI_VALUE, "FILE", "where to write", OPT_OUTPUT },
  { "push", 0, CLI_BOOL, NULL, "push the image", OPT_PUSH },
  { "cache-dir", 0, CLI_VALUE, "DIR", "cache directory", OPT_CACHE_DIR },
  { "verbose", 'V', CLI_BOOL, NULL, NULL, OPT_VERBOSE },
  { "fail", 0, CLI_VALUE, NULL, "handler rejects this", OPT_FAIL },
};

/* Every handler call as "id=value;". */
typedef struct rec
{
  strbuf log;
} rec;

static int
handler (void *ctx, int id, const char *value, kiln_error **err)
{
  rec *r = ctx;
  if (id == OPT_FAIL)
    return kiln_error_make (err, 0, "bad value '%s' for --fail", value);
  strbuf_addf (&r->log, "%d=%s;", id, value);
  return 0;
}

typedef struct result
{
  int ret;
  bool help;
  char *log;
  char *pos;   /* positional args joined with ',' */
  char *err;
} result;

static result
run (const char *const *args)
{
  size_t n = 0;
  while (args[n])
    n++;
  /* getopt permutes argv, so hand it a private copy. */
  char **argv = xcalloc (n + 2, sizeof *argv);
  argv[0] = xstrdup ("test");
  for (size_t i = 0; i < n; i++)
    argv[i + 1] = xstrdup (args[i]);
  rec r;
  strbuf_init (&r.log, 0);
  char **pos = NULL;
  kiln_error *err = NULL;
  result res = { 0 };
  res.ret = cli_parse ((int) n + 1, argv, opts, ARRAY_SIZE (opts), handler, &r, &pos, &res.help, &err);
  strbuf sp = STRBUF_INIT;
  for (size_t i = 0; pos && pos[i]; i++)
    strbuf_addf (&sp, "%s%s", i ? "," : "", pos[i]);
  res.pos = strbuf_detach (&sp, NULL);
  res.log = strbuf_detach (&r.log, NULL);
  res.err = err ? xstrdup (err->msg) : NULL;
  if (err)
    assert_int_equal (err->status, 0); /* usage errors: exit 2 */
  kiln_error_free (err);
  strv_free (pos);
  strv_free (argv);
  return res;
}

static void
result_free (result *r)
{
  free (r->log);
  free (r->pos);
  free (r->err);
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void
expect_ok (const char *const *args, const char *log, const char *pos)
{
  result r = run (args);
  if (r.ret < 0)
    fail_msg ("parse failed: %s", r.err);
  assert_string_equal (r.log, log);
  assert_string_equal (r.pos, pos);
  result_free (&r);
}

static void
expect_err (const char *const *args, const char *needle)
{
  result r = run (args);
  assert_true (r.ret < 0);
  assert_non_null (r.err);
  if (strstr (r.err, needle) == NULL)
    fail_msg ("error '%s' lacks '%s'", r.err, needle);
  result_free (&r);
}

static void
test_value_forms (void **state)
{
  (void) state;
  expect_ok (ARGS ("--output", "x"), "1=x;", "");
  expect_ok (ARGS ("--output=x"), "1=x;", "");
  expect_ok (ARGS ("--output="), "1=;", "");
  expect_ok (ARGS ("-o", "x"), "1=x;", "");
  expect_ok (ARGS ("-ox"), "1=x;", "");
  expect_ok (ARGS ("--output", "--push"), "1=--push;", "");
  expect_ok (ARGS ("--cache-dir=/a=b"), "3=/a=b;", "");
  /* Repeats are passed on in order. */
  expect_ok (ARGS ("-o", "a", "--output", "b"), "1=a;1=b;", "");
}

static void
test_bools (void **state)
{
  (void) state;
  expect_ok (ARGS ("--push"), "2=true;", "");
  expect_ok (ARGS ("--push=true"), "2=true;", "");
  expect_ok (ARGS ("--push=false"), "2=false;", "");
  expect_ok (ARGS ("--push=0"), "2=false;", "");
  expect_ok (ARGS ("-V"), "4=true;", "");
  /* A bool never takes the next argument (pflag semantics). */
  expect_ok (ARGS ("--push", "false"), "2=true;", "false");
  expect_err (ARGS ("--push=maybe"), "invalid value 'maybe' for --push");
}

static void
test_errors (void **state)
{
  (void) state;
  expect_err (ARGS ("--nope"), "unknown flag '--nope'");
  expect_err (ARGS ("--nope=1"), "unknown flag '--nope'");
  expect_err (ARGS ("-x"), "unknown flag '-x'");
  expect_err (ARGS ("ctx", "--output"), "needs a value");
  expect_err (ARGS ("-o"), "needs a value");
  /* Prefixes of long flags are not accepted (getopt_long would). */
  expect_err (ARGS ("--cache", "x"), "unknown flag '--cache'");
  expect_err (ARGS ("--out=x"), "unknown flag '--out'");
  expect_err (ARGS ("--fail", "v"), "bad value 'v' for --fail");
}

static void
test_positional (void **state)
{
  (void) state;
  expect_ok (ARGS ("a", "--output", "x", "b", "--push", "c"), "1=x;2=true;", "a,b,c");
  expect_ok (ARGS ("a", "--", "--output", "-o"), "", "a,--output,-o");
  expect_ok (ARGS ("-", "x"), "", "-,x");
  /* A value that looks like a flag is still a value. */
  expect_ok (ARGS ("--cache-dir", "--nope", "p"), "3=--nope;", "p");
  expect_ok (ARGS ("-o", "--nope"), "1=--nope;", "");
}

static void
test_help (void **state)
{
  (void) state;
  result r = run (ARGS ("--push", "--help", "--nope"));
  assert_int_equal (r.ret, 0);
  assert_true (r.help);
  result_free (&r);
  r = run (ARGS ("-h"));
  assert_true (r.help);
  result_free (&r);
  /* Help lists the documented flags and hides those without help text. */
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream (&buf, &len);
  cli_print_options (f, opts, ARRAY_SIZE (opts));
  fclose (f);
  assert_non_null (strstr (buf, "-o, --output FILE"));
  assert_non_null (strstr (buf, "--cache-dir DIR"));
  assert_non_null (strstr (buf, "--help"));
  assert_null (strstr (buf, "--verbose"));
  free (buf);
}

static void
test_parse_bool (void **state)
{
  (void) state;
  bool b = false;
  autoerror kiln_error *err = NULL;
  assert_int_equal (cli_parse_bool ("x", "yes", &b, &err), 0);
  assert_true (b);
  assert_int_equal (cli_parse_bool ("x", "False", &b, &err), 0);
  assert_false (b);
  assert_true (cli_parse_bool ("x", "", &b, &err) < 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_value_forms),
    cmocka_unit_test (test_bools),
    cmocka_unit_test (test_errors),
    cmocka_unit_test (test_positional),
    cmocka_unit_test (test_help),
    cmocka_unit_test (test_parse_bool),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
