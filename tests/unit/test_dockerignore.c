/* Tests for dockerignore.c; rules from the Dockerfile reference section
 * ".dockerignore file" (Go filepath.Match, "**", "!" exceptions, cleaning). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <fcntl.h>

#include "build/dockerignore.h"
#include "util/alloc.h"

static dockerignore *
load (const char *text)
{
  dockerignore *d = NULL;
  kiln_error *err = NULL;
  if (dockerignore_parse (text, strlen (text), &d, &err) < 0)
    fail_msg ("unexpected error: %s", err->msg);
  return d;
}

/* Reference example: "# comment", "STAR/temp*", "STAR/STAR/temp*", "temp?". */
static void
test_reference_example (void **state)
{
  (void) state;
  dockerignore *d = load ("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
  assert_int_equal (dockerignore_count (d), 3);
  assert_true (dockerignore_excluded (d, "somedir/temporary.txt"));
  assert_true (dockerignore_excluded (d, "somedir/temp"));
  assert_true (dockerignore_excluded (d, "somedir/subdir/temporary.txt"));
  assert_true (dockerignore_excluded (d, "tempa"));
  assert_true (dockerignore_excluded (d, "tempb"));
  assert_false (dockerignore_excluded (d, "temp"));      /* ? needs one character */
  assert_false (dockerignore_excluded (d, "temporary.txt"));
  assert_false (dockerignore_excluded (d, "a/b/c/temp")); /* * does not cross / */
  dockerignore_free (d);
}

/* "**" matches any number of directories, including zero. */
static void
test_double_star (void **state)
{
  (void) state;
  dockerignore *d = load ("**/*.go\nvendor/**\n");
  assert_true (dockerignore_excluded (d, "main.go"));
  assert_true (dockerignore_excluded (d, "a/b/c.go"));
  assert_false (dockerignore_excluded (d, "a/b/c.goo"));
  assert_true (dockerignore_excluded (d, "vendor/x/y"));
  assert_false (dockerignore_excluded (d, "vendor"));     /* needs something below vendor */
  dockerignore_free (d);
}

/* "!" exceptions, last match wins; a matched parent directory excludes its
 * contents. */
static void
test_exceptions (void **state)
{
  (void) state;
  dockerignore *d = load ("*.md\n!README*.md\nREADME-secret.md\n");
  assert_true (dockerignore_excluded (d, "CHANGES.md"));
  assert_false (dockerignore_excluded (d, "README.md"));
  assert_true (dockerignore_excluded (d, "README-secret.md"));
  dockerignore_free (d);
  d = load ("docs\n!docs/keep.txt\n");
  assert_true (dockerignore_excluded (d, "docs"));
  assert_true (dockerignore_excluded (d, "docs/a.txt"));
  assert_false (dockerignore_excluded (d, "docs/keep.txt"));
  dockerignore_free (d);
}

/* Leading "/" and "./" are cleaned; whitespace trimmed; "#" only at col 0. */
static void
test_cleaning (void **state)
{
  (void) state;
  dockerignore *d = load ("/abs\n./rel/../other\n  spaced  \n! neg\n  #notcomment\n\n");
  assert_string_equal (dockerignore_pattern_text (d, 0), "abs");
  assert_string_equal (dockerignore_pattern_text (d, 1), "other");
  assert_string_equal (dockerignore_pattern_text (d, 2), "spaced");
  assert_string_equal (dockerignore_pattern_text (d, 3), "neg");
  assert_string_equal (dockerignore_pattern_text (d, 4), "#notcomment");
  assert_true (dockerignore_excluded (d, "abs/x"));
  assert_true (dockerignore_excluded (d, "other"));
  dockerignore_free (d);
}

/* filepath.Match syntax: classes, ranges, negation, escapes; bad patterns fail. */
static void
test_match_syntax (void **state)
{
  (void) state;
  dockerignore *d = load ("file[0-9].txt\nx[^a]y\nlit\\*star\n");
  assert_true (dockerignore_excluded (d, "file7.txt"));
  assert_false (dockerignore_excluded (d, "filea.txt"));
  assert_true (dockerignore_excluded (d, "xby"));
  assert_false (dockerignore_excluded (d, "xay"));
  assert_true (dockerignore_excluded (d, "lit*star"));
  assert_false (dockerignore_excluded (d, "litXstar"));
  dockerignore_free (d);
  dockerignore *bad = NULL;
  kiln_error *err = NULL;
  assert_int_equal (dockerignore_parse ("[abc\n", 5, &bad, &err), -1);
  assert_non_null (strstr (err->msg, "syntax error in pattern"));
  kiln_error_free (err);
  err = NULL;
  assert_int_equal (dockerignore_parse ("!\n", 2, &bad, &err), -1);
  assert_non_null (strstr (err->msg, "illegal exclusion pattern"));
  kiln_error_free (err);
}

/* Walk optimisation: an ignored directory can be skipped unless an exception
 * could match below it. */
static void
test_can_skip_dir (void **state)
{
  (void) state;
  dockerignore *d = load ("node_modules\nbuild\n!build/keep/**\n");
  assert_true (dockerignore_can_skip_dir (d, "node_modules"));
  assert_false (dockerignore_can_skip_dir (d, "build"));
  assert_true (dockerignore_can_skip_dir (d, "build/other"));
  assert_false (dockerignore_can_skip_dir (d, "src"));         /* not excluded */
  dockerignore_free (d);
  d = load ("*/cache\n!*/cache/important\n");
  assert_false (dockerignore_can_skip_dir (d, "a/cache"));     /* wildcard exception below */
  assert_false (dockerignore_excluded (d, "a/cache/important"));
  assert_true (dockerignore_excluded (d, "a/cache/other"));
  dockerignore_free (d);
  d = load ("*\n!src\n");
  assert_true (dockerignore_can_skip_dir (d, "docs"));
  assert_false (dockerignore_excluded (d, "src/main.c"));
  dockerignore_free (d);
}

/* <Dockerfile>.dockerignore wins over the context's .dockerignore. */
static void
test_load (void **state)
{
  (void) state;
  char dir[] = "/tmp/kiln-di-XXXXXX";
  assert_non_null (mkdtemp (dir));
  autofree char *ctx_ign = xasprintf ("%s/.dockerignore", dir);
  autofree char *df = xasprintf ("%s/app.Dockerfile", dir);
  autofree char *df_ign = xasprintf ("%s/app.Dockerfile.dockerignore", dir);
  FILE *f = fopen (ctx_ign, "w");
  fputs ("from-context\n", f);
  fclose (f);
  dockerignore *d = NULL;
  kiln_error *err = NULL;
  assert_int_equal (dockerignore_load (dir, df, &d, &err), 0);
  assert_string_equal (dockerignore_pattern_text (d, 0), "from-context");
  dockerignore_free (d);
  f = fopen (df_ign, "w");
  fputs ("from-dockerfile\n", f);
  fclose (f);
  assert_int_equal (dockerignore_load (dir, df, &d, &err), 0);
  assert_string_equal (dockerignore_pattern_text (d, 0), "from-dockerfile");
  assert_int_equal (dockerignore_count (d), 1);
  dockerignore_free (d);
  unlink (df_ign);
  unlink (ctx_ign);
  assert_int_equal (dockerignore_load (dir, NULL, &d, &err), 0);
  assert_int_equal (dockerignore_count (d), 0);
  dockerignore_free (d);
  rmdir (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_reference_example), cmocka_unit_test (test_double_star),
    cmocka_unit_test (test_exceptions),        cmocka_unit_test (test_cleaning),
    cmocka_unit_test (test_match_syntax),      cmocka_unit_test (test_can_skip_dir),
    cmocka_unit_test (test_load),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
