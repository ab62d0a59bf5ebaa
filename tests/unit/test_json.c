/* test_json.c - yajl-based parsing, getters and deterministic generation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "util/alloc.h"
#include "util/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static json_value *
parse_ok (const char *s)
{
  json_value *v = NULL;
  autoerror kiln_error *err = NULL;
  int r = json_parse (s, strlen (s), JSON_DEFAULT_MAX_SIZE, &v, &err);
  assert_ok (r, err);
  assert_non_null (v);
  return v;
}

/* Parse must fail and the error must contain needle. */
static void
parse_bad (const char *s, size_t len, const char *needle)
{
  json_value *v = NULL;
  autoerror kiln_error *err = NULL;
  if (json_parse (s, len, JSON_DEFAULT_MAX_SIZE, &v, &err) >= 0)
    fail_msg ("parsing '%.*s' succeeded", (int) (len > 60 ? 60 : len), s);
  assert_null (v);
  assert_non_null (err);
  if (!test_err_contains (err, needle))
    fail_msg ("error '%s' lacks '%s'", err->msg, needle);
  assert_true (strncmp (err->msg, "parsing JSON: ", 14) == 0);
}

static char *
regen (const char *s)
{
  autojson json_value *v = parse_ok (s);
  char *out = NULL;
  size_t len = 0;
  autoerror kiln_error *err = NULL;
  assert_ok (json_generate (v, &out, &len, &err), err);
  assert_int_equal (len, strlen (out));
  return out;
}

static void
test_round_trip (void **state)
{
  (void) state;
  const char *in = " { \"schemaVersion\" : 2, \"z\":[1, -2, 3.5e10, true, false, null, \"s\\n\\u00e9/\"],\n"
                   "\"a\": {\"nested\": {}}, \"empty\": [], \"big\": 123456789012345678901234567890 } ";
  autofree char *out = regen (in);
  assert_string_equal (out, "{\"schemaVersion\":2,\"z\":[1,-2,3.5e10,true,false,null,\"s\\n\xc3\xa9/\"],"
                            "\"a\":{\"nested\":{}},\"empty\":[],"
                            "\"big\":123456789012345678901234567890}");
  /* Generating is a fixed point. */
  autofree char *out2 = regen (out);
  assert_string_equal (out, out2);
  autofree char *s = regen ("\"just a string\"");
  assert_string_equal (s, "\"just a string\"");
  autofree char *ctl = regen ("[\"\\u0001\\t\\\"\\\\\"]");
  assert_string_equal (ctl, "[\"\\u0001\\t\\\"\\\\\"]");
}

static void
test_getters (void **state)
{
  (void) state;
  autojson json_value *v = parse_ok ("{\"s\":\"str\",\"i\":42,\"neg\":-7,\"f\":1.5,\"huge\":1e30,"
                                     "\"toobig\":9223372036854775808,\"max\":9223372036854775807,"
                                     "\"o\":{\"p\":{\"q\":\"deep\"}},\"a\":[\"x\",\"y\"],\"t\":true,\"n\":null,"
                                     "\"mixed\":[\"x\",1]}");
  autoerror kiln_error *err = NULL;
  assert_string_equal (json_get_string (v, "s"), "str");
  assert_null (json_get_string (v, "i"));
  assert_null (json_get_string (v, "missing"));
  assert_null (json_get_string (NULL, "s"));
  assert_non_null (json_get_object (v, "o"));
  assert_null (json_get_object (v, "a"));
  assert_non_null (json_get_array (v, "a"));
  assert_null (json_get_array (v, "o"));
  assert_true (json_get_bool (v, "t", false));
  assert_true (json_get_bool (v, "s", true));
  assert_false (json_get_bool (v, "missing", false));
  int64_t i = 5;
  assert_int_equal (json_get_int64 (v, "i", &i, &err), 1);
  assert_int_equal (i, 42);
  assert_int_equal (json_get_int64 (v, "neg", &i, &err), 1);
  assert_int_equal (i, -7);
  assert_int_equal (json_get_int64 (v, "max", &i, &err), 1);
  assert_true (i == INT64_MAX);
  i = 5;
  assert_int_equal (json_get_int64 (v, "missing", &i, &err), 0);
  assert_int_equal (json_get_int64 (v, "n", &i, &err), 0);
  assert_int_equal (i, 5);
  assert_true (json_get_int64 (v, "f", &i, &err) < 0);
  assert_true (test_err_contains (err, "'f'"));
  kiln_error_clear (&err);
  assert_true (json_get_int64 (v, "huge", &i, &err) < 0);
  kiln_error_clear (&err);
  assert_true (json_get_int64 (v, "toobig", &i, &err) < 0);
  kiln_error_clear (&err);
  assert_true (json_get_int64 (v, "s", &i, &err) < 0);
  assert_true (test_err_contains (err, "string"));
  kiln_error_clear (&err);
  assert_string_equal (json_string (json_lookup (v, "o", "p", "q", NULL)), "deep");
  assert_null (json_lookup (v, "o", "x", "q", NULL));
  assert_null (json_lookup (v, "s", "x", NULL));
  assert_ptr_equal (json_lookup (v, NULL), v);
  assert_int_equal (json_object_size (v), 12);
  assert_string_equal (json_object_key (v, 0), "s");
  assert_null (json_object_key (v, 12));
  json_value *a = json_get_array (v, "a");
  assert_int_equal (json_array_size (a), 2);
  assert_string_equal (json_string (json_array_get (a, 1)), "y");
  assert_null (json_array_get (a, 2));
  assert_string_equal (json_number_text (json_get (v, "f")), "1.5");
  assert_string_equal (json_type_name (json_get (v, "n")), "null");
  assert_string_equal (json_type_name (json_get (v, "nope")), "missing");
  char **sv = NULL;
  assert_ok (json_to_strv (a, "a", &sv, &err), err);
  assert_int_equal (strv_len (sv), 2);
  assert_string_equal (sv[0], "x");
  strv_free (sv);
  assert_ok (json_to_strv (json_get (v, "n"), "n", &sv, &err), err);
  assert_int_equal (strv_len (sv), 0);
  strv_free (sv);
  assert_true (json_to_strv (json_get (v, "mixed"), "Cmd", &sv, &err) < 0);
  assert_true (test_err_contains (err, "Cmd"));
  kiln_error_clear (&err);
  assert_true (json_to_strv (json_get (v, "s"), "Cmd", &sv, &err) < 0);
}

static void
test_hostile (void **state)
{
  (void) state;
  parse_bad ("", 0, "parsing JSON");
  parse_bad ("{", 1, "parsing JSON");
  parse_bad ("{\"a\":1,}", 8, "parsing JSON");
  parse_bad ("[1] [2]", 7, "parsing JSON");
  parse_bad ("{\"a\":1} x", 9, "parsing JSON");
  parse_bad ("{\"a\":1, \"a\":2}", 14, "duplicate key 'a'");
  parse_bad ("[1 /* c */]", 11, "comments");
  parse_bad ("// c\n[1]", 8, "comments");
  parse_bad ("[\"a\\u0000b\"]", 12, "\\u0000");
  parse_bad ("[1]\0[2]", 7, "NUL byte");
  parse_bad ("[\"\xff\xfe\"]", 6, "parsing JSON");
  parse_bad ("[\"\xc3\"]", 5, "parsing JSON");
  parse_bad ("[\"a\x01\"]", 6, "parsing JSON");
  parse_bad ("[nan]", 5, "parsing JSON");
  /* Deep nesting is rejected before yajl recurses. */
  size_t n = 100000;
  autofree char *deep = xmalloc (n);
  memset (deep, '[', n);
  parse_bad (deep, n, "nesting");
  /* Depth exactly at the limit parses; one more does not. */
  char ok[2 * JSON_MAX_DEPTH + 2];
  memset (ok, '[', JSON_MAX_DEPTH);
  memset (ok + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
  ok[2 * JSON_MAX_DEPTH] = '\0';
  autofree char *okout = regen (ok);
  assert_string_equal (okout, ok);
  char bad[2 * JSON_MAX_DEPTH + 3];
  memset (bad, '[', JSON_MAX_DEPTH + 1);
  memset (bad + JSON_MAX_DEPTH + 1, ']', JSON_MAX_DEPTH + 1);
  parse_bad (bad, 2 * JSON_MAX_DEPTH + 2, "nesting");
  /* Brackets inside strings do not count toward depth. */
  autofree char *instr = xmalloc (n + 3);
  instr[0] = '"';
  memset (instr + 1, '[', n);
  instr[n + 1] = '"';
  instr[n + 2] = '\0';
  json_free (parse_ok (instr));
  /* An escaped quote does not end the string. */
  json_free (parse_ok ("[\"\\\"[[[\"]"));
  /* Size limit. */
  json_value *v = NULL;
  autoerror kiln_error *err = NULL;
  assert_true (json_parse ("[1,2,3]", 7, 6, &v, &err) < 0);
  assert_int_equal (err->status, EFBIG);
  /* Huge numbers are numbers, not integers. */
  autojson json_value *h = parse_ok ("[1e999999, -1e-999999, 99999999999999999999999]");
  assert_true (json_is_number (json_array_get (h, 0)));
  assert_false (json_is_integer (json_array_get (h, 2)));
}

static void
test_writer (void **state)
{
  (void) state;
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_begin_object (w);
  json_writer_kv_int (w, "schemaVersion", 2);
  json_writer_kv_string (w, "mediaType", "application/vnd.oci.image.manifest.v1+json");
  json_writer_key (w, "layers");
  json_writer_begin_array (w);
  json_writer_begin_object (w);
  json_writer_kv_int (w, "size", INT64_MAX);
  json_writer_kv_bool (w, "b", false);
  json_writer_key (w, "n");
  json_writer_null (w);
  json_writer_key (w, "s");
  json_writer_string (w, NULL);
  json_writer_end_object (w);
  json_writer_string_len (w, "a\"b\\c\n\x7f\xc3\xa9", 9);
  json_writer_int (w, -1);
  json_writer_raw (w, " { \"x\" : [ 1 , 2.50 ] } ", 24);
  json_writer_end_array (w);
  json_writer_end_object (w);
  char *out = NULL;
  size_t len = 0;
  autoerror kiln_error *err = NULL;
  assert_ok (json_writer_finish (w, &out, &len, &err), err);
  assert_string_equal (out, "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                            "\"layers\":[{\"size\":9223372036854775807,\"b\":false,\"n\":null,\"s\":null},"
                            "\"a\\\"b\\\\c\\n\x7f\xc3\xa9\",-1,{\"x\":[1,2.50]}]}");
  assert_int_equal (len, strlen (out));
  /* The output parses back to the same bytes. */
  autofree char *again = regen (out);
  assert_string_equal (again, out);
  free (out);
}

/* Run a misuse sequence and expect finish to fail mentioning needle. */
static void
expect_writer_error (void (*fn) (json_writer *), const char *needle)
{
  autojsonwriter json_writer *w = json_writer_new ();
  fn (w);
  char *out = NULL;
  size_t len;
  autoerror kiln_error *err = NULL;
  assert_true (json_writer_finish (w, &out, &len, &err) < 0);
  assert_null (out);
  if (!test_err_contains (err, needle))
    fail_msg ("error '%s' lacks '%s'", err->msg, needle);
}

static void misuse_value_without_key (json_writer *w) { json_writer_begin_object (w); json_writer_int (w, 1); json_writer_end_object (w); }
static void misuse_key_in_array (json_writer *w) { json_writer_begin_array (w); json_writer_key (w, "k"); }
static void misuse_unbalanced (json_writer *w) { json_writer_begin_array (w); json_writer_end_object (w); }
static void misuse_incomplete (json_writer *w) { json_writer_begin_array (w); }
static void misuse_empty (json_writer *w) { (void) w; }
static void misuse_two_values (json_writer *w) { json_writer_int (w, 1); json_writer_int (w, 2); }
static void misuse_dangling_key (json_writer *w) { json_writer_begin_object (w); json_writer_key (w, "k"); json_writer_end_object (w); }
static void misuse_bad_utf8 (json_writer *w) { json_writer_string (w, "\xff"); }
static void misuse_bad_raw (json_writer *w) { json_writer_begin_array (w); json_writer_raw (w, "{", 1); json_writer_end_array (w); }
static void
misuse_too_deep (json_writer *w)
{
  for (int i = 0; i <= JSON_MAX_DEPTH; i++)
    json_writer_begin_array (w);
}

static void
test_writer_misuse (void **state)
{
  (void) state;
  expect_writer_error (misuse_value_without_key, "without a key");
  expect_writer_error (misuse_key_in_array, "key outside");
  expect_writer_error (misuse_unbalanced, "without a matching begin");
  expect_writer_error (misuse_incomplete, "incomplete");
  expect_writer_error (misuse_empty, "incomplete");
  expect_writer_error (misuse_two_values, "more than one");
  expect_writer_error (misuse_dangling_key, "key without a value");
  expect_writer_error (misuse_bad_utf8, "UTF-8");
  expect_writer_error (misuse_bad_raw, "parsing JSON");
  expect_writer_error (misuse_too_deep, "deeper");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_round_trip),
    cmocka_unit_test (test_getters),
    cmocka_unit_test (test_hostile),
    cmocka_unit_test (test_writer),
    cmocka_unit_test (test_writer_misuse),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
