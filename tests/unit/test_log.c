/* test_log.c - log levels and line formats. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/alloc.h"
#include "util/json.h"
#include "util/log.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

typedef struct cap
{
  char *buf;
  size_t len;
  FILE *f;
} cap;

static void
cap_start (cap *c, log_level level, log_format fmt, bool ts)
{
  c->buf = NULL;
  c->len = 0;
  c->f = open_memstream (&c->buf, &c->len);
  assert_non_null (c->f);
  log_setup (level, fmt, ts, c->f);
}

static char *
cap_end (cap *c)
{
  log_setup (LOG_LEVEL_INFO, LOG_FORMAT_TEXT, false, NULL);
  fclose (c->f);
  return c->buf;
}

static bool
matches (const char *s, const char *re)
{
  regex_t r;
  assert_int_equal (regcomp (&r, re, REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0);
  bool m = regexec (&r, s, 0, NULL, 0) == 0;
  regfree (&r);
  return m;
}

static void
test_text_and_filter (void **state)
{
  (void) state;
  cap c;
  cap_start (&c, LOG_LEVEL_INFO, LOG_FORMAT_TEXT, false);
  log_error ("e %d", 1);
  log_warn ("w");
  log_info ("i");
  log_debug ("d");
  log_trace ("t");
  assert_true (log_enabled (LOG_LEVEL_INFO));
  assert_false (log_enabled (LOG_LEVEL_DEBUG));
  autofree char *out = cap_end (&c);
  assert_string_equal (out, "error: e 1\nwarn: w\ni\n");
}

static void
test_levels_all_and_error_only (void **state)
{
  (void) state;
  cap c;
  cap_start (&c, LOG_LEVEL_TRACE, LOG_FORMAT_TEXT, false);
  log_debug ("d");
  log_trace ("t");
  autofree char *out = cap_end (&c);
  assert_string_equal (out, "debug: d\ntrace: t\n");
  cap_start (&c, LOG_LEVEL_ERROR, LOG_FORMAT_TEXT, false);
  log_warn ("w");
  log_error ("e");
  autofree char *out2 = cap_end (&c);
  assert_string_equal (out2, "error: e\n");
}

static void
test_timestamps (void **state)
{
  (void) state;
  cap c;
  cap_start (&c, LOG_LEVEL_INFO, LOG_FORMAT_TEXT, true);
  log_info ("hello");
  autofree char *out = cap_end (&c);
  assert_true (matches (out, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z hello$"));
}

static void
test_json_lines (void **state)
{
  (void) state;
  cap c;
  cap_start (&c, LOG_LEVEL_DEBUG, LOG_FORMAT_JSON, false);
  log_info ("quote \" backslash \\ newline \n tab \t");
  log_debug ("second");
  log_trace ("filtered");
  autofree char *out = cap_end (&c);
  /* Exactly two lines, each a JSON object with time, level and msg. */
  char *nl = strchr (out, '\n');
  assert_non_null (nl);
  assert_non_null (strchr (nl + 1, '\n'));
  assert_string_equal (strchr (nl + 1, '\n') + 1, "");
  json_value *v = NULL;
  autoerror kiln_error *err = NULL;
  assert_int_equal (json_parse (out, (size_t) (nl - out), 4096, &v, &err), 0);
  assert_string_equal (json_get_string (v, "level"), "info");
  assert_string_equal (json_get_string (v, "msg"), "quote \" backslash \\ newline \n tab \t");
  assert_true (matches (json_get_string (v, "time"), "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z$"));
  json_free (v);
  char *second = nl + 1;
  assert_int_equal (json_parse (second, strlen (second) - 1, 4096, &v, &err), 0);
  assert_string_equal (json_get_string (v, "level"), "debug");
  assert_string_equal (json_get_string (v, "msg"), "second");
  json_free (v);
}

/* --log-format=color (kaniko's default): the text layout with the level
 * in colour, every level named. */
static void
test_color (void **state)
{
  (void) state;
  cap c;
  cap_start (&c, LOG_LEVEL_INFO, LOG_FORMAT_COLOR, false);
  log_warn ("w");
  log_info ("i");
  autofree char *out = cap_end (&c);
  assert_string_equal (out, "\033[33mwarn\033[0m: w\n\033[36minfo\033[0m: i\n");
}

static void
test_parse_names (void **state)
{
  (void) state;
  log_level l;
  log_format f;
  autoerror kiln_error *err = NULL;
  assert_int_equal (log_parse_level ("debug", &l, &err), 0);
  assert_int_equal (l, LOG_LEVEL_DEBUG);
  assert_int_equal (log_parse_level ("fatal", &l, &err), 0);
  assert_int_equal (l, LOG_LEVEL_ERROR);
  assert_true (log_parse_level ("loud", &l, &err) < 0);
  assert_non_null (strstr (err->msg, "'loud'"));
  assert_int_equal (log_parse_format ("json", &f, &err), 0);
  assert_int_equal (f, LOG_FORMAT_JSON);
  assert_int_equal (log_parse_format ("color", &f, &err), 0);
  assert_int_equal (f, LOG_FORMAT_COLOR);
  assert_true (log_parse_format ("xml", &f, &err) < 0);
  assert_non_null (strstr (err->msg, "'xml'"));
  kiln_error_clear (&err);
  assert_true (log_parse_format ("Text", &f, &err) < 0);
  assert_string_equal (log_level_name (LOG_LEVEL_WARN), "warn");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_text_and_filter),
    cmocka_unit_test (test_levels_all_and_error_only),
    cmocka_unit_test (test_timestamps),
    cmocka_unit_test (test_json_lines),
    cmocka_unit_test (test_color),
    cmocka_unit_test (test_parse_names),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
