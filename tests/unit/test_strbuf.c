/* test_strbuf.c - growable buffer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/alloc.h"
#include "util/strbuf.h"

#include <stdlib.h>
#include <string.h>

static void
test_empty_and_growth (void **state)
{
  (void) state;
  autostrbuf strbuf sb = STRBUF_INIT;
  assert_non_null (sb.buf);
  assert_string_equal (sb.buf, "");
  assert_int_equal (sb.len, 0);
  for (int i = 0; i < 100000; i++)
    strbuf_addch (&sb, 'a' + i % 26);
  assert_int_equal (sb.len, 100000);
  assert_true (sb.alloc > sb.len);
  assert_int_equal (sb.buf[sb.len], '\0');
  assert_int_equal (sb.buf[99999], 'a' + 99999 % 26);
  strbuf_reset (&sb);
  assert_int_equal (sb.len, 0);
  assert_string_equal (sb.buf, "");
  strbuf_adds (&sb, "hello");
  strbuf_setlen (&sb, 2);
  assert_string_equal (sb.buf, "he");
}

static void
test_addf (void **state)
{
  (void) state;
  autostrbuf strbuf sb;
  strbuf_init (&sb, 0);
  strbuf_addf (&sb, "%s=%d;", "x", 1);
  strbuf_addf (&sb, "%s", "");
  assert_string_equal (sb.buf, "x=1;");
  /* Longer than any initial allocation. */
  autofree char *big = xmalloc (5001);
  memset (big, 'z', 5000);
  big[5000] = '\0';
  strbuf_addf (&sb, "[%s]", big);
  assert_int_equal (sb.len, 4 + 5002);
  assert_int_equal (sb.buf[sb.len - 1], ']');
  assert_int_equal (strlen (sb.buf), sb.len);
}

static void
test_json_escape (void **state)
{
  (void) state;
  autostrbuf strbuf sb = STRBUF_INIT;
  const char in[] = "a\"b\\c\n\r\t\b\f\x01\x1f\x7f/\xc3\xa9";
  strbuf_add_json_escaped (&sb, in, sizeof in - 1);
  assert_string_equal (sb.buf, "a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\\u007f/\xc3\xa9");
  strbuf_reset (&sb);
  strbuf_add_json_escaped (&sb, "x\0y", 3);
  assert_string_equal (sb.buf, "x\\u0000y");
  /* Valid UTF-8 is kept byte for byte: 2, 3 and 4 byte forms. */
  strbuf_reset (&sb);
  strbuf_add_json_escaped (&sb, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
  assert_string_equal (sb.buf, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  /* Anything else becomes U+FFFD, one per byte that starts no sequence: a
   * stray continuation, 0xff, a truncated sequence, an overlong '/', a
   * surrogate, a code point above U+10FFFF. */
  const struct
  {
    const char *in;
    size_t len;
    const char *out;
  } bad[] = {
    { "a\x80" "b", 3, "a\\ufffdb" },
    { "\xff\xfe", 2, "\\ufffd\\ufffd" },
    { "\xe2\x82", 2, "\\ufffd\\ufffd" },
    { "\xc0\xaf", 2, "\\ufffd\\ufffd" },
    { "\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd" },
    { "\xf4\x90\x80\x80", 4, "\\ufffd\\ufffd\\ufffd\\ufffd" },
    { "\xe2\x82x", 3, "\\ufffd\\ufffdx" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      strbuf_reset (&sb);
      strbuf_add_json_escaped (&sb, bad[i].in, bad[i].len);
      assert_string_equal (sb.buf, bad[i].out);
    }
}

static void
test_detach_and_rtrim (void **state)
{
  (void) state;
  strbuf sb = STRBUF_INIT;
  size_t len = 99;
  char *s = strbuf_detach (&sb, &len);
  assert_string_equal (s, "");
  assert_int_equal (len, 0);
  free (s);
  strbuf_adds (&sb, "line \t\n\n");
  strbuf_rtrim (&sb);
  assert_string_equal (sb.buf, "line");
  assert_int_equal (sb.len, 4);
  s = strbuf_detach (&sb, &len);
  assert_string_equal (s, "line");
  assert_int_equal (len, 4);
  assert_int_equal (sb.len, 0);
  assert_string_equal (sb.buf, "");
  free (s);
  strbuf_adds (&sb, "   ");
  strbuf_rtrim (&sb);
  assert_int_equal (sb.len, 0);
  strbuf_release (&sb);
  strbuf_release (&sb);
}

static void
test_binary (void **state)
{
  (void) state;
  autostrbuf strbuf sb = STRBUF_INIT;
  unsigned char bin[256];
  for (int i = 0; i < 256; i++)
    bin[i] = (unsigned char) i;
  strbuf_add (&sb, bin, sizeof bin);
  strbuf_add (&sb, bin, sizeof bin);
  strbuf_add (&sb, NULL, 0);
  assert_int_equal (sb.len, 512);
  assert_memory_equal (sb.buf, bin, 256);
  assert_memory_equal (sb.buf + 256, bin, 256);
  assert_int_equal (sb.buf[512], '\0');
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_empty_and_growth),
    cmocka_unit_test (test_addf),
    cmocka_unit_test (test_json_escape),
    cmocka_unit_test (test_detach_and_rtrim),
    cmocka_unit_test (test_binary),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
