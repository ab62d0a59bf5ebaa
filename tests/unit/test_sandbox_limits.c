/* test_sandbox_limits.c - the syntax of --memory and --pids-limit, the
 * formatting of memory limits in messages, and a limiter without limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sandbox/sandbox.h"
#include "util/alloc.h"

static void
test_parse_memory (void **state)
{
  (void) state;
  static const struct
  {
    const char *in;
    uint64_t want;
  } ok[] = { { "512m", 512ULL << 20 }, { "1g", 1ULL << 30 }, { "1.5GiB", 3ULL << 29 }, { "4m", 4ULL << 20 },
             { "65536k", 64ULL << 20 }, { "none", 0 }, { "0", 0 }, { "-1", 0 }, { "8388608", 8ULL << 20 } };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    {
      uint64_t v = 1;
      kiln_error *e = NULL;
      assert_int_equal (sandbox_parse_memory (ok[i].in, &v, &e), 0);
      assert_null (e);
      assert_true (v == ok[i].want);
    }
  static const char *const bad[] = { "1k", "3m", "lots", "", "12q", "-5m", "512 m b" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      uint64_t v = 7;
      kiln_error *e = NULL;
      assert_true (sandbox_parse_memory (bad[i], &v, &e) < 0);
      assert_non_null (e);
      assert_true (v == 7);
      kiln_error_free (e);
    }
  kiln_error *e = NULL;
  uint64_t v;
  assert_true (sandbox_parse_memory ("1k", &v, &e) < 0);
  assert_string_equal (e->msg, "memory limit '1k' is below the minimum of 4m (none disables the limit)");
  kiln_error_free (e);
}

static void
test_parse_pids (void **state)
{
  (void) state;
  uint64_t v;
  kiln_error *e = NULL;
  assert_int_equal (sandbox_parse_pids ("4096", &v, &e), 0);
  assert_true (v == 4096);
  assert_int_equal (sandbox_parse_pids ("1", &v, &e), 0);
  assert_true (v == 1);
  assert_int_equal (sandbox_parse_pids ("4194304", &v, &e), 0);
  assert_true (v == 4194304);
  for (const char *const *n = (const char *const[]) { "none", "0", "-1", NULL }; *n; n++)
    {
      v = 9;
      assert_int_equal (sandbox_parse_pids (*n, &v, &e), 0);
      assert_true (v == 0);
    }
  for (const char *const *b = (const char *const[]) { "4194305", "12x", "", "-5", " 7", "+7", "1e3", NULL }; *b; b++)
    {
      assert_true (sandbox_parse_pids (*b, &v, &e) < 0);
      assert_non_null (e);
      assert_non_null (strstr (e->msg, "invalid process limit"));
      kiln_error_free (e);
      e = NULL;
    }
}

static void
test_format_and_defaults (void **state)
{
  (void) state;
  char b[UNITS_BUF_SIZE];
  assert_string_equal (sandbox_format_memory (512ULL << 20, b), "512m");
  assert_string_equal (sandbox_format_memory (1ULL << 30, b), "1g");
  assert_string_equal (sandbox_format_memory (3ULL << 29, b), "1536m");
  assert_string_equal (sandbox_format_memory (4096, b), "4k");
  assert_string_equal (sandbox_format_memory (1000, b), "1000");
  assert_string_equal (sandbox_format_memory (0, b), "none");
  sandbox_limits l;
  sandbox_limits_default (&l);
  assert_true (l.pids == SANDBOX_DEFAULT_PIDS);
  assert_true (l.memory > 0 && l.memory % (1 << 20) == 0);
  /* No limits: no mechanism to choose, and the log says so. */
  sandbox_limits none = { 0, 0 };
  sandbox_limiter *lim = sandbox_limiter_new (&none);
  autofree char *d = sandbox_limiter_describe (lim);
  assert_string_equal (d, "none (--memory none --pids-limit none)");
  sandbox_limiter_free (lim);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_memory),
    cmocka_unit_test (test_parse_pids),
    cmocka_unit_test (test_format_and_defaults),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
