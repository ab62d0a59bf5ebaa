/* Tests for expand.c. Expected values follow the Dockerfile reference,
 * section "Environment replacement", and BuildKit's shell lexer (the
 * reference implementation of that section). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <stdlib.h>

#include "build/expand.h"
#include "util/alloc.h"

/* Environment used by all cases. */
static const char *const env[][2] = {
  { "PWD", "/home" },     { "SHELL", "bash" },   { "KOREAN", "한국어" }, { "EMPTY", "" },
  { "FILE", "a.tar.gz" }, { "PATHV", "/usr/local/bin:/usr/bin" }, { "SPACES", "a  b c" },
  { "X", "xx" },
};

static expand_lookup_result
lk (void *ctx, const char *name, size_t n, const char **value)
{
  (void) ctx;
  for (size_t i = 0; i < ARRAY_SIZE (env); i++)
    if (strlen (env[i][0]) == n && memcmp (env[i][0], name, n) == 0)
      {
        *value = env[i][1];
        return EXPAND_SET;
      }
  return EXPAND_UNSET;
}

static expand_lookup_result
lk_unknown (void *ctx, const char *name, size_t n, const char **value)
{
  if (lk (ctx, name, n, value) == EXPAND_SET)
    return EXPAND_SET;
  return EXPAND_UNKNOWN;
}

static void
check_word (char esc, const char *in, const char *want)
{
  expand_opts o = { .escape = esc, .lookup = lk };
  char *out = NULL;
  kiln_error *err = NULL;
  int r = expand_word (&o, in, &out, &err);
  if (r < 0)
    fail_msg ("'%s': unexpected error: %s", in, err->msg);
  if (strcmp (out, want) != 0)
    fail_msg ("'%s': got '%s', want '%s'", in, out, want);
  free (out);
}

static void
check_error (const char *in, const char *want_sub)
{
  expand_opts o = { .escape = '\\', .lookup = lk };
  char *out = NULL;
  kiln_error *err = NULL;
  int r = expand_word (&o, in, &out, &err);
  if (r >= 0)
    fail_msg ("'%s': expected an error, got '%s'", in, out);
  if (strstr (err->msg, want_sub) == NULL)
    fail_msg ("'%s': error '%s' lacks '%s'", in, err->msg, want_sub);
  kiln_error_free (err);
}

/* Reference: "$variable_name or ${variable_name}" */
static void
test_plain_forms (void **state)
{
  (void) state;
  check_word ('\\', "$PWD", "/home");
  check_word ('\\', "${PWD}", "/home");
  check_word ('\\', "${PWD}x", "/homex");
  check_word ('\\', "$PWDx", "");          /* name is PWDx: unset */
  check_word ('\\', "${PWD}_$SHELL", "/home_bash");
  check_word ('\\', "$UNSET", "");
  check_word ('\\', "a$", "a$");           /* lone $ stays */
  check_word ('\\', "$ x", "$ x");
  check_word ('\\', "$1abc", "abc");       /* positional parameter, unset */
  check_word ('\\', "$$", "");             /* special parameter, never set */
  check_word ('\\', "${KOREAN}", "한국어");
}

/* Reference: ${variable:-word} and ${variable-word} (the latter keeps an empty value). */
static void
test_default_modifiers (void **state)
{
  (void) state;
  check_word ('\\', "${UNSET:-def}", "def");
  check_word ('\\', "${EMPTY:-def}", "def");
  check_word ('\\', "${PWD:-def}", "/home");
  check_word ('\\', "${UNSET-def}", "def");
  check_word ('\\', "${EMPTY-def}", "");
  check_word ('\\', "${UNSET:-$SHELL}", "bash");   /* word is expanded */
  check_word ('\\', "${UNSET:-'a b'}", "a b");     /* and quote-processed */
  check_word ('\\', "${UNSET:-}", "");
}

/* Reference: ${variable:+word} and ${variable+word}. */
static void
test_alternate_modifiers (void **state)
{
  (void) state;
  check_word ('\\', "${PWD:+alt}", "alt");
  check_word ('\\', "${EMPTY:+alt}", "");
  check_word ('\\', "${EMPTY+alt}", "alt");
  check_word ('\\', "${UNSET+alt}", "");
  check_word ('\\', "${UNSET:+alt}", "");
}

/* Reference: ${variable:?word} / ${variable?word} fail with the message. */
static void
test_error_modifiers (void **state)
{
  (void) state;
  check_word ('\\', "${PWD:?boom}", "/home");
  check_word ('\\', "${EMPTY?boom}", "");
  check_error ("${UNSET?boom}", "UNSET: boom");
  check_error ("${UNSET:?}", "UNSET: is not allowed to be unset");
  check_error ("${EMPTY:?}", "EMPTY: is not allowed to be empty");
  check_error ("${EMPTY:?must set}", "EMPTY: must set");
}

/* Reference: ${variable#pattern} ${variable##pattern} ${variable%pattern}
 * ${variable%%pattern} (shortest / longest prefix or suffix removal). */
static void
test_pattern_removal (void **state)
{
  (void) state;
  check_word ('\\', "${FILE#*.}", "tar.gz");
  check_word ('\\', "${FILE##*.}", "gz");
  check_word ('\\', "${FILE%.*}", "a.tar");
  check_word ('\\', "${FILE%%.*}", "a");
  check_word ('\\', "${FILE#a}", ".tar.gz");
  check_word ('\\', "${FILE#zzz}", "a.tar.gz");   /* no match: unchanged */
  check_word ('\\', "${FILE%?z}", "a.tar.");
  check_word ('\\', "${PATHV##*:}", "/usr/bin");
  check_word ('\\', "${PATHV%%:*}", "/usr/local/bin");
  check_word ('\\', "${UNSET#x}", "");
  check_word ('\\', "${FILE#\\*}", "a.tar.gz");   /* escaped * is literal */
  check_word ('\\', "${KOREAN#?}", "국어");        /* ? is one character, not one byte */
  check_word ('\\', "${KOREAN%?}", "한국");
}

/* Reference: ${variable/pattern/replacement} and ${variable//pattern/replacement}. */
static void
test_replacement (void **state)
{
  (void) state;
  check_word ('\\', "${PATHV/usr/opt}", "/opt/local/bin:/usr/bin");
  check_word ('\\', "${PATHV//usr/opt}", "/opt/local/bin:/opt/bin");
  check_word ('\\', "${FILE/.*/}", "a");           /* * is greedy in replacement */
  check_word ('\\', "${FILE//./_}", "a_tar_gz");
  check_word ('\\', "${FILE/zz/yy}", "a.tar.gz");
  check_word ('\\', "${X//x/ab}", "abab");
  check_word ('\\', "${FILE/\\//x}", "a.tar.gz");  /* \/ is a literal slash */
  check_error ("${FILE/a", "missing '/' in ${}");
}

/* Reference: "Escaping is possible by adding a \ before the variable". */
static void
test_escapes (void **state)
{
  (void) state;
  check_word ('\\', "\\$PWD", "$PWD");
  check_word ('\\', "\\${PWD}", "${PWD}");
  check_word ('\\', "a\\ b", "a b");
  check_word ('\\', "abc\\", "abc");              /* trailing escape dropped */
  check_word ('`', "`$PWD", "$PWD");              /* escape directive ` */
  check_word ('`', "\\$PWD", "\\/home");          /* \ is literal with escape=` */
}

/* Quote removal: '...' literal, "..." expands $ and escapes only " $ \. */
static void
test_quotes (void **state)
{
  (void) state;
  check_word ('\\', "'$PWD'", "$PWD");
  check_word ('\\', "\"$PWD\"", "/home");
  check_word ('\\', "\"a\\\"b\"", "a\"b");
  check_word ('\\', "\"a\\nb\"", "a\\nb");         /* \n is not an escape in "" */
  check_word ('\\', "\"\\$PWD\"", "$PWD");
  check_word ('\\', "'a\\b'", "a\\b");
  check_word ('\\', "x\"y z\"w", "xy zw");
  check_word ('\\', "\"'\"", "'");
  check_error ("\"abc", "matching double-quote");
  check_error ("'abc", "matching single-quote");
}

static void
test_syntax_errors (void **state)
{
  (void) state;
  check_error ("${", "missing '}'");
  check_error ("${PWD", "missing '}'");
  check_error ("${}", "bad substitution");
  check_error ("${:x}", "bad substitution");
  check_error ("${PWD:0:2}", "unsupported modifier (:0)");
  check_error ("${PWD^}", "unsupported modifier (^)");
  check_error ("${PWD:-abc", "missing '}'");
}

/* EXPOSE uses word splitting after expansion (ProcessWords). */
static void
test_words (void **state)
{
  (void) state;
  expand_opts o = { .escape = '\\', .lookup = lk };
  char **w = NULL;
  kiln_error *err = NULL;
  assert_int_equal (expand_words (&o, "$SPACES \"d e\" f\\ g", &w, &err), 0);
  assert_int_equal (strv_len (w), 5);
  assert_string_equal (w[0], "a");
  assert_string_equal (w[1], "b");
  assert_string_equal (w[2], "c");
  assert_string_equal (w[3], "d e");
  assert_string_equal (w[4], "f g");
  strv_free (w);
  assert_int_equal (expand_words (&o, "   ", &w, &err), 0);
  assert_int_equal (strv_len (w), 0);
  strv_free (w);
}

/* Dry runs: unknown variables keep their text. */
static void
test_unknown_kept (void **state)
{
  (void) state;
  expand_opts o = { .escape = '\\', .lookup = lk_unknown };
  char *out = NULL;
  kiln_error *err = NULL;
  assert_int_equal (expand_word (&o, "/x:$PATH:${PATH}:${PATH:-d}:$PWD", &out, &err), 0);
  assert_string_equal (out, "/x:$PATH:${PATH}:${PATH:-d}:/home");
  free (out);
}

static void
test_glob (void **state)
{
  (void) state;
  assert_true (expand_glob_match ("a*c", 3, "abbbc", 5));
  assert_false (expand_glob_match ("a*c", 3, "ab\nc", 4));
  assert_true (expand_glob_match ("a?c", 3, "abc", 3));
  assert_false (expand_glob_match ("a\\*c", 4, "abc", 3));
  assert_true (expand_glob_match ("a\\*c", 4, "a*c", 3));
}

static void
test_vars (void **state)
{
  (void) state;
  expand_vars v;
  expand_vars_init (&v);
  expand_vars_set (&v, "A", "1");
  expand_vars_set (&v, "B", NULL);
  expand_vars_set (&v, "A", "2");
  assert_int_equal (v.n, 2);
  assert_string_equal (v.values[expand_vars_find (&v, "A", 1)], "2");
  assert_null (v.values[expand_vars_find (&v, "B", 1)]);
  assert_int_equal (expand_vars_find (&v, "C", 1), -1);
  expand_vars_free (&v);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_plain_forms),      cmocka_unit_test (test_default_modifiers),
    cmocka_unit_test (test_alternate_modifiers), cmocka_unit_test (test_error_modifiers),
    cmocka_unit_test (test_pattern_removal),  cmocka_unit_test (test_replacement),
    cmocka_unit_test (test_escapes),          cmocka_unit_test (test_quotes),
    cmocka_unit_test (test_syntax_errors),    cmocka_unit_test (test_words),
    cmocka_unit_test (test_unknown_kept),     cmocka_unit_test (test_glob),
    cmocka_unit_test (test_vars),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
