/* test_error.c - error values and context chaining. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/alloc.h"
#include "util/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int
inner (kiln_error **err)
{
  return kiln_error_make (err, ENOENT, "open '%s'", "foo");
}

static int
middle (kiln_error **err)
{
  if (inner (err) < 0)
    return kiln_error_wrap (err, "reading %s", "config");
  return 0;
}

static void
test_make_and_wrap (void **state)
{
  (void) state;
  autoerror kiln_error *err = NULL;
  int r = middle (&err);
  assert_int_equal (r, -ENOENT);
  assert_int_equal (err->status, ENOENT);
  assert_string_equal (err->msg, "reading config: open 'foo'");
  assert_int_equal (kiln_error_wrap (&err, "pulling layer %s", "sha256:ab"), -ENOENT);
  assert_string_equal (err->msg, "pulling layer sha256:ab: reading config: open 'foo'");
  autofree char *s = kiln_error_string (err);
  autofree char *want = xasprintf ("pulling layer sha256:ab: reading config: open 'foo': %s", strerror (ENOENT));
  assert_string_equal (s, want);
}

static void
test_status_zero (void **state)
{
  (void) state;
  autoerror kiln_error *err = NULL;
  assert_int_equal (kiln_error_make (&err, 0, "bad %d", 42), -1);
  assert_int_equal (err->status, 0);
  autofree char *s = kiln_error_string (err);
  assert_string_equal (s, "bad 42");
  assert_int_equal (kiln_error_wrap (&err, "ctx"), -1);
  assert_string_equal (err->msg, "ctx: bad 42");
}

static void
test_wrap_null (void **state)
{
  (void) state;
  autoerror kiln_error *err = NULL;
  /* A callee that failed without setting an error: context is kept. */
  assert_int_equal (kiln_error_wrap (&err, "doing %s", "x"), -1);
  assert_non_null (err);
  assert_string_equal (err->msg, "doing x: unknown error");
  /* A NULL err pointer means the caller does not want details. */
  assert_int_equal (kiln_error_make (NULL, EIO, "ignored"), -EIO);
  assert_int_equal (kiln_error_wrap (NULL, "ignored"), -1);
  autofree char *s = kiln_error_string (NULL);
  assert_string_equal (s, "unknown error");
}

static void
test_make_replaces_and_clear (void **state)
{
  (void) state;
  kiln_error *err = NULL;
  kiln_error_make (&err, EPERM, "first");
  /* The old error is freed (ASan's leak check would catch it otherwise). */
  kiln_error_make (&err, EACCES, "second");
  assert_string_equal (err->msg, "second");
  assert_int_equal (err->status, EACCES);
  kiln_error_clear (&err);
  assert_null (err);
  kiln_error_clear (&err);
  kiln_error_clear (NULL);
  kiln_error_free (NULL);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_make_and_wrap),
    cmocka_unit_test (test_status_zero),
    cmocka_unit_test (test_wrap_null),
    cmocka_unit_test (test_make_replaces_and_clear),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
