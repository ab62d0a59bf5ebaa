/* test_units.c - Go-style durations, docker-style sizes, formatting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "util/units.h"

#include <errno.h>
#include <string.h>

#define NS 1LL
#define US (1000 * NS)
#define MS (1000 * US)
#define SEC (1000 * MS)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

static void
dur_ok (const char *s, int64_t want)
{
  int64_t got = 12345;
  autoerror kiln_error *err = NULL;
  int r = units_parse_duration (s, &got, &err);
  if (r < 0)
    fail_msg ("duration '%s': %s", s, err->msg);
  if (got != want)
    fail_msg ("duration '%s': got %lld, want %lld", s, (long long) got, (long long) want);
}

static void
dur_bad (const char *s, const char *needle)
{
  int64_t got = 12345;
  autoerror kiln_error *err = NULL;
  if (units_parse_duration (s, &got, &err) >= 0)
    fail_msg ("duration '%s' parsed as %lld", s, (long long) got);
  assert_int_equal (got, 12345);
  if (!test_err_contains (err, needle))
    fail_msg ("duration '%s': error '%s' lacks '%s'", s, err->msg, needle);
}

static void
test_durations (void **state)
{
  (void) state;
  /* Cases from Go's time package tests. */
  dur_ok ("0", 0);
  dur_ok ("5s", 5 * SEC);
  dur_ok ("30s", 30 * SEC);
  dur_ok ("1478s", 1478 * SEC);
  dur_ok ("-5s", -5 * SEC);
  dur_ok ("+5s", 5 * SEC);
  dur_ok ("-0", 0);
  dur_ok ("+0", 0);
  dur_ok ("5.0s", 5 * SEC);
  dur_ok ("5.6s", 5 * SEC + 600 * MS);
  dur_ok ("5.s", 5 * SEC);
  dur_ok (".5s", 500 * MS);
  dur_ok ("1.0s", 1 * SEC);
  dur_ok ("1.00s", 1 * SEC);
  dur_ok ("1.004s", 1 * SEC + 4 * MS);
  dur_ok ("1.0040s", 1 * SEC + 4 * MS);
  dur_ok ("100.00100s", 100 * SEC + 1 * MS);
  dur_ok ("10ns", 10 * NS);
  dur_ok ("11us", 11 * US);
  dur_ok ("12\xc2\xb5s", 12 * US);
  dur_ok ("12\xce\xbcs", 12 * US);
  dur_ok ("13ms", 13 * MS);
  dur_ok ("14s", 14 * SEC);
  dur_ok ("15m", 15 * MIN);
  dur_ok ("16h", 16 * HOUR);
  dur_ok ("336h", 336 * HOUR);
  dur_ok ("3h30m", 3 * HOUR + 30 * MIN);
  dur_ok ("10.5s4m", 4 * MIN + 10 * SEC + 500 * MS);
  dur_ok ("-2m3.4s", -(2 * MIN + 3 * SEC + 400 * MS));
  dur_ok ("1h2m3s4ms5us6ns", 1 * HOUR + 2 * MIN + 3 * SEC + 4 * MS + 5 * US + 6 * NS);
  dur_ok ("39h9m14.425s", 39 * HOUR + 9 * MIN + 14 * SEC + 425 * MS);
  dur_ok ("52763797000ns", 52763797000 * NS);
  dur_ok ("0.3333333333333333333h", 20 * MIN);
  dur_ok ("9007199254740993ns", (1LL << 53) + 1);
  dur_ok ("9223372036854775807ns", INT64_MAX);
  dur_ok ("9223372036854775.807us", INT64_MAX);
  dur_ok ("-9223372036854775808ns", INT64_MIN);
  dur_ok ("0.100000000000000000000h", 6 * MIN);
  dur_ok ("0.830103483285477580700h", 49 * MIN + 48 * SEC + 372539827 * NS);

  dur_bad ("", "invalid duration");
  dur_bad ("3", "missing unit");
  dur_bad ("-", "invalid duration");
  dur_bad ("s", "invalid duration");
  dur_bad (".", "invalid duration");
  dur_bad ("-.", "invalid duration");
  dur_bad (".s", "invalid duration");
  dur_bad ("+.s", "invalid duration");
  dur_bad ("1d", "unknown unit 'd'");
  dur_bad ("3000000h", "out of range");
  dur_bad ("9223372036854775808ns", "out of range");
  dur_bad ("9223372036854775.808us", "out of range");
  dur_bad ("9223372036854ms775us808ns", "out of range");
  dur_bad ("-9223372036854775809ns", "out of range");
  dur_bad ("99999999999999999999999999h", "out of range");
  dur_bad ("1h 30m", "unknown unit");
  dur_bad ("1.5.5s", "invalid duration");
}

static void
size_ok (int si, const char *s, uint64_t want)
{
  uint64_t got = 12345;
  autoerror kiln_error *err = NULL;
  int r = si ? units_parse_size_si (s, &got, &err) : units_parse_size (s, &got, &err);
  if (r < 0)
    fail_msg ("size '%s': %s", s, err->msg);
  if (got != want)
    fail_msg ("size '%s': got %llu, want %llu", s, (unsigned long long) got, (unsigned long long) want);
}

static void
size_bad (const char *s, const char *needle)
{
  uint64_t got = 12345;
  autoerror kiln_error *err = NULL;
  if (units_parse_size (s, &got, &err) >= 0)
    fail_msg ("size '%s' parsed as %llu", s, (unsigned long long) got);
  assert_int_equal (got, 12345);
  if (!test_err_contains (err, needle))
    fail_msg ("size '%s': error '%s' lacks '%s'", s, err->msg, needle);
}

static void
test_sizes (void **state)
{
  (void) state;
  /* docker's RAMInBytes cases: binary. */
  size_ok (0, "32", 32);
  size_ok (0, "32b", 32);
  size_ok (0, "32B", 32);
  size_ok (0, "32k", 32 * 1024);
  size_ok (0, "32K", 32 * 1024);
  size_ok (0, "32kb", 32 * 1024);
  size_ok (0, "32Kb", 32 * 1024);
  size_ok (0, "32Mb", 32ULL << 20);
  size_ok (0, "32Gb", 32ULL << 30);
  size_ok (0, "32Tb", 32ULL << 40);
  size_ok (0, "32Pb", 32ULL << 50);
  size_ok (0, "32PB", 32ULL << 50);
  size_ok (0, "32P", 32ULL << 50);
  size_ok (0, "10KiB", 10240);
  size_ok (0, "1.5GiB", 3ULL << 29);
  size_ok (0, "0.5k", 512);
  size_ok (0, "3 M", 3ULL << 20);
  size_ok (0, "0", 0);
  size_ok (0, "18446744073709551615", UINT64_MAX);
  size_ok (0, "15.99999999999999999999999p", (16ULL << 50) - 1);
  /* Decimal variant: docker's FromHumanSize. */
  size_ok (1, "10KB", 10000);
  size_ok (1, "1.5GB", 1500000000ULL);
  size_ok (1, "3M", 3000000);
  size_ok (1, "32", 32);

  size_bad ("", "expected a number");
  size_bad ("k", "expected a number");
  size_bad ("-1", "expected a number");
  size_bad ("1.", "digits after");
  size_bad ("1.5.5k", "unknown suffix");
  size_bad ("32bm", "unknown suffix");
  size_bad ("32mbb", "unknown suffix");
  size_bad ("12x", "unknown suffix");
  size_bad ("1  k", "unknown suffix");
  size_bad ("18446744073709551616", "out of range");
  size_bad ("16384P", "out of range");
  size_bad ("99999999999999999999999999999999999999999", "out of range");
}

static void
test_format (void **state)
{
  (void) state;
  char b[UNITS_BUF_SIZE];
  assert_string_equal (units_format_size (0, b), "0 B");
  assert_string_equal (units_format_size (999, b), "999 B");
  assert_string_equal (units_format_size (1000, b), "1.0 kB");
  assert_string_equal (units_format_size (1234567, b), "1.2 MB");
  assert_string_equal (units_format_size (999999, b), "1.0 MB");
  assert_string_equal (units_format_size (12345678901ULL, b), "12.3 GB");
  assert_string_equal (units_format_size (UINT64_MAX, b), "18.4 EB");
  assert_string_equal (units_format_duration (0, b), "0ns");
  assert_string_equal (units_format_duration (850 * US, b), "850\xc2\xb5s");
  assert_string_equal (units_format_duration (450 * MS, b), "450ms");
  assert_string_equal (units_format_duration (1234 * MS, b), "1.2s");
  assert_string_equal (units_format_duration (59 * SEC, b), "59.0s");
  assert_string_equal (units_format_duration (59960 * MS, b), "1m0s");
  assert_string_equal (units_format_duration (3 * MIN + 4 * SEC, b), "3m4s");
  assert_string_equal (units_format_duration (2 * HOUR + 3 * MIN + 10 * SEC, b), "2h3m");
  assert_string_equal (units_format_duration (-1500 * MS, b), "-1.5s");
  assert_string_equal (units_format_duration (INT64_MIN, b), "-2562047h47m");
  /* What we print parses back (for the units Go knows). */
  int64_t ns;
  autoerror kiln_error *err = NULL;
  assert_ok (units_parse_duration (units_format_duration (3 * MIN + 4 * SEC, b), &ns, &err), err);
  assert_int_equal (ns, 3 * MIN + 4 * SEC);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_durations),
    cmocka_unit_test (test_sizes),
    cmocka_unit_test (test_format),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
