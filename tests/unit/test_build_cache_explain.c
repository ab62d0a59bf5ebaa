/* test_build_cache_explain.c - a cache key's recorded components: JSON round
 * trip, the parser on bad input, and what cache_explain says. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "build/build_cache.h"
#include "build/build_cache_explain.h"
#include "util/alloc.h"
#include "util/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define K2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define K3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static void
add_file (cache_components *c, const char *name, const char *content)
{
  cache_components_file_begin (c, name);
  cache_components_add (c, "path", name);
  cache_components_add (c, "data", content);
}

/* A COPY step: parent, instruction, a build-arg, files. */
static cache_components *
make (const char *parent, const char *instr, const char *version, int n_files, const char *file3)
{
  cache_components *c = cache_components_new ();
  cache_components_set_parent (c, parent);
  cache_components_note (c, "instruction", instr);
  cache_components_note (c, "user", "");
  cache_components_ancestor (c, "1", "FROM", K1, false);
  cache_components_ancestor (c, "2", "RUN", strcmp (parent, K3) == 0 ? K3 : K2, strcmp (parent, K3) == 0);
  cache_components_add (c, "kind", "RUN");
  cache_components_add (c, "arg", instr);
  if (version)
    {
      autofree char *kv = xasprintf ("VERSION=%s", version);
      cache_components_add (c, "build-env", kv);
    }
  cache_components_add (c, "build-env", "OTHER=x");
  cache_components_add (c, "changes", "5");
  for (int i = 1; i <= n_files; i++)
    {
      char name[32];
      snprintf (name, sizeof name, "src/file%d.txt", i);
      add_file (c, name, i == 3 && file3 ? file3 : "same");
    }
  cache_components_file_end (c);
  return c;
}

static void
explain (const cache_components *old, const cache_components *now, char **text, char **reason)
{
  autofree char *json = NULL;
  cache_explain (old, now, text, &json);
  autojson json_value *v = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (json_parse (json, strlen (json), 1 << 20, &v, &err), err);
  *reason = xstrdup (json_get_string (v, "reason"));
  assert_string_equal (json_get_string (v, "text"), *text);
}

static void
test_round_trip (void **state)
{
  (void) state;
  autocomponents cache_components *c = make (K2, "COPY src/ /srv/", "1.2", 5, NULL);
  autofree char *j = NULL, *j2 = NULL;
  size_t len, len2;
  autoerror kiln_error *err = NULL;
  assert_ok (cache_components_to_json (c, &j, &len, &err), err);
  autocomponents cache_components *back = NULL;
  assert_ok (cache_components_parse (j, len, &back, &err), err);
  assert_ok (cache_components_to_json (back, &j2, &len2, &err), err);
  assert_string_equal (j, j2);
  assert_int_equal (cache_components_distance (back, c), 0);
  /* "changes" is not a field: the file list says it. */
  assert_null (strstr (j, "\"changes\""));
}

static void
test_reasons (void **state)
{
  (void) state;
  autocomponents cache_components *base = make (K2, "COPY src/ /srv/", "1.2", 5, NULL);
  char *text, *reason;

  explain (NULL, base, &text, &reason);
  assert_string_equal (text, "no earlier build of this step");
  assert_string_equal (reason, "no_earlier_build");
  free (text), free (reason);

  autocomponents cache_components *f = make (K2, "COPY src/ /srv/", "1.2", 5, "edited");
  explain (base, f, &text, &reason);
  assert_string_equal (text, "src/file3.txt changed");
  assert_string_equal (reason, "files_changed");
  free (text), free (reason);

  autocomponents cache_components *f2 = make (K2, "COPY src/ /srv/", "1.2", 7, "edited");
  explain (base, f2, &text, &reason);
  assert_string_equal (text, "src/file3.txt changed (and 2 more files)");
  free (text), free (reason);
  explain (f2, base, &text, &reason);
  assert_string_equal (text, "src/file3.txt changed (and 2 more files)");
  free (text), free (reason);
  autocomponents cache_components *f4 = make (K2, "COPY src/ /srv/", "1.2", 4, NULL);
  explain (base, f4, &text, &reason);
  assert_string_equal (text, "src/file5.txt removed");
  free (text), free (reason);

  autocomponents cache_components *a = make (K2, "COPY src/ /srv/", "1.3", 5, NULL);
  explain (base, a, &text, &reason);
  assert_string_equal (text, "build-arg VERSION changed (1.2 -> 1.3)");
  assert_string_equal (reason, "build_arg_changed");
  free (text), free (reason);
  autocomponents cache_components *a0 = make (K2, "COPY src/ /srv/", NULL, 5, NULL);
  explain (base, a0, &text, &reason);
  assert_string_equal (text, "build-arg VERSION unset (was 1.2)");
  free (text), free (reason);
  explain (a0, base, &text, &reason);
  assert_string_equal (text, "build-arg VERSION set (1.2)");
  free (text), free (reason);

  autocomponents cache_components *i = make (K2, "COPY src/ /opt/", "1.2", 5, NULL);
  explain (base, i, &text, &reason);
  assert_string_equal (text, "instruction changed (was: COPY src/ /srv/)");
  assert_string_equal (reason, "instruction_changed");
  free (text), free (reason);

  autocomponents cache_components *p = make (K3, "COPY src/ /srv/", "1.2", 5, NULL);
  explain (base, p, &text, &reason);
  assert_string_equal (text, "parent changed (step 2 re-ran)");
  assert_string_equal (reason, "parent_changed");
  free (text), free (reason);

  /* Same inputs: the entry was there but unusable. */
  explain (base, base, &text, &reason);
  assert_string_equal (reason, "entry_unusable");
  free (text), free (reason);

  /* Closest: same parent and one file beats another parent. */
  assert_true (cache_components_distance (f, base) < cache_components_distance (p, base));
}

static void
test_file_cap (void **state)
{
  (void) state;
  autocomponents cache_components *a = cache_components_new ();
  autocomponents cache_components *b = cache_components_new ();
  cache_components_set_parent (a, K1);
  cache_components_set_parent (b, K1);
  for (int i = 0; i < CACHE_COMPONENTS_MAX_FILES + 5; i++)
    {
      char name[32];
      snprintf (name, sizeof name, "f%06d", i);
      add_file (a, name, "x");
      add_file (b, name, i == CACHE_COMPONENTS_MAX_FILES + 2 ? "y" : "x");
    }
  cache_components_file_end (a);
  cache_components_file_end (b);
  autofree char *j = NULL;
  size_t len;
  autoerror kiln_error *err = NULL;
  assert_ok (cache_components_to_json (a, &j, &len, &err), err);
  assert_true (len < (2u << 20));
  autofree char *text = NULL, *reason = NULL;
  explain (a, b, &text, &reason);
  assert_string_equal (reason, "files_changed");
  assert_non_null (strstr (text, "past the first"));
}

static void
test_parse_rejects (void **state)
{
  (void) state;
  static const char *const bad[] = {
    "", "[]", "{}", "{\"v\":2,\"parent\":\"x\"}", "{\"v\":1}", "{\"v\":1,\"parent\":1}",
    "{\"v\":1,\"parent\":\"x\",\"files\":[[\"a\"]]}", "{\"v\":1,\"parent\":\"x\",\"files\":[[\"a\",1]]}",
    "{\"v\":1,\"parent\":\"x\",\"ancestry\":[[\"1\",\"FROM\"]]}", "{\"v\":1,\"parent\":\"x\",\"files_total\":-1}",
    "{\"v\":1,\"parent\":\"x\",\"files_rest\":5}", "{\"v\":1,\"parent\":\"x\",\"notes\":{}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    {
      cache_components *c = NULL;
      kiln_error *err = NULL;
      assert_true (cache_components_parse (bad[i], strlen (bad[i]), &c, &err) < 0);
      assert_null (c);
      assert_non_null (err);
      kiln_error_free (err);
    }
  autocomponents cache_components *ok = NULL;
  autoerror kiln_error *err = NULL;
  const char *min = "{\"v\":1,\"parent\":\"x\"}";
  assert_ok (cache_components_parse (min, strlen (min), &ok, &err), err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_round_trip),
    cmocka_unit_test (test_reasons),
    cmocka_unit_test (test_file_cap),
    cmocka_unit_test (test_parse_rejects),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
