/* test_challenge.c - WWW-Authenticate parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "registry/challenge.h"
#include "util/alloc.h"

#include <string.h>

static registry_challenges *
ok (const char *h)
{
  registry_challenges *c = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (registry_challenges_parse (h, &c, &err), err);
  return c;
}

static void
ko (const char *h, const char *needle)
{
  registry_challenges *c = NULL;
  autoerror kiln_error *err = NULL;
  if (registry_challenges_parse (h, &c, &err) >= 0)
    fail_msg ("accepted '%s'", h);
  assert_null (c);
  if (!test_err_contains (err, needle))
    fail_msg ("error '%s' lacks '%s'", err->msg, needle);
}

static void
test_bearer (void **state)
{
  (void) state;
  autochallenges registry_challenges *c
      = ok ("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
            "scope=\"repository:samalba/my-app:pull,push\"");
  assert_int_equal (c->n, 1);
  const registry_challenge *b = registry_challenges_find (c, "bearer");
  assert_non_null (b);
  assert_string_equal (b->scheme, "bearer");
  assert_string_equal (registry_challenge_param (b, "realm"), "https://auth.docker.io/token");
  assert_string_equal (registry_challenge_param (b, "SERVICE"), "registry.docker.io");
  assert_string_equal (registry_challenge_param (b, "scope"), "repository:samalba/my-app:pull,push");
  assert_null (registry_challenge_param (b, "error"));
  assert_null (registry_challenges_find (c, "basic"));
}

static void
test_variants (void **state)
{
  (void) state;
  autochallenges registry_challenges *c = ok ("basic realm=\"Registry Realm\"");
  assert_string_equal (c->items[0].scheme, "basic");
  assert_string_equal (registry_challenge_param (&c->items[0], "realm"), "Registry Realm");

  autochallenges registry_challenges *m
      = ok ("Basic realm=\"a\\\"b\\\\c\" , Bearer  realm = tok , error=\"insufficient_scope\", Negotiate abc+/==");
  assert_int_equal (m->n, 3);
  assert_string_equal (registry_challenge_param (&m->items[0], "realm"), "a\"b\\c");
  assert_string_equal (registry_challenge_param (&m->items[1], "realm"), "tok");
  assert_string_equal (registry_challenge_param (&m->items[1], "error"), "insufficient_scope");
  assert_string_equal (m->items[2].scheme, "negotiate");
  assert_string_equal (registry_challenge_param (&m->items[2], "token68"), "abc+/==");

  autochallenges registry_challenges *e = ok ("Basic, Bearer realm=x");
  assert_int_equal (e->n, 2);
  assert_int_equal (e->items[0].n_params, 0);
  assert_string_equal (registry_challenge_param (&e->items[1], "realm"), "x");
  autochallenges registry_challenges *s = ok ("Bearer");
  assert_int_equal (s->n, 1);
}

static void
test_malformed (void **state)
{
  (void) state;
  ko ("", "no challenge");
  ko ("  , ,", "no challenge");
  ko ("Bearer realm=\"unterminated", "unterminated");
  ko ("Bearer realm=\"esc\\", "unterminated");
  ko ("Bearer realm=", "missing parameter value");
  ko ("Bearer realm=a realm2=b", "expected ','");
  ko ("Bearer realm=a, REALM=b", "duplicate");
  ko ("=x", "expected an auth scheme");
  ko ("Bearer\"x\"", "unexpected character");
  ko ("Bearer realm=\"a\nb\"", "control character");
  ko ("Bearer @@@", "unexpected character");
  char big[9000];
  memset (big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  ko (big, "longer than");
  /* Too many challenges. */
  char many[400] = "";
  for (int i = 0; i < 20; i++)
    strcat (many, "Basic, ");
  ko (many, "too many challenges");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_bearer),
    cmocka_unit_test (test_variants),
    cmocka_unit_test (test_malformed),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
