/* test_authfile.c - config.json / auth.json credentials and helper output. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "registry/authfile.h"
#include "util/alloc.h"

#include <string.h>

/* base64("alice:s3cr:et") = YWxpY2U6czNjcjpldA== ; base64("bob:pw") = Ym9iOnB3 */
static const char *config
    = "{\"auths\":{"
      "\"https://index.docker.io/v1/\":{\"auth\":\"YWxpY2U6czNjcjpldA==\"},"
      "\"http://localhost:5000\":{\"username\":\"u1\",\"password\":\"p1\"},"
      "\"quay.io/org/repo\":{\"auth\":\"Ym9iOnB3\"},"
      "\"quay.io\":{\"username\":\"generic\",\"password\":\"g\"},"
      "\"token.example\":{\"identitytoken\":\"refresh-123\"},"
      "\"empty.example\":{}"
      "},\"credHelpers\":{\"gcr.io\":\"gcloud\"},\"credsStore\":\"desktop\"}";

static registry_authfile *
parse_ok (const char *s)
{
  registry_authfile *f = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (registry_authfile_parse (s, strlen (s), "config.json", &f, &err), err);
  return f;
}

static void
test_lookup (void **state)
{
  (void) state;
  autoauthfile registry_authfile *f = parse_ok (config);
  registry_credential c;
  assert_int_equal (registry_authfile_lookup (f, "docker.io", "library/busybox", &c), 1);
  assert_string_equal (c.username, "alice");
  assert_string_equal (c.password, "s3cr:et");
  assert_null (c.helper);
  registry_credential_clear (&c);
  assert_int_equal (registry_authfile_lookup (f, "localhost:5000", "a", &c), 1);
  assert_string_equal (c.username, "u1");
  assert_string_equal (c.password, "p1");
  registry_credential_clear (&c);
  /* Podman's per-repository keys: the most specific wins. */
  assert_int_equal (registry_authfile_lookup (f, "quay.io", "org/repo", &c), 1);
  assert_string_equal (c.username, "bob");
  registry_credential_clear (&c);
  assert_int_equal (registry_authfile_lookup (f, "quay.io", "org/repo/sub", &c), 1);
  assert_string_equal (c.username, "bob");
  registry_credential_clear (&c);
  assert_int_equal (registry_authfile_lookup (f, "quay.io", "org/other", &c), 1);
  assert_string_equal (c.username, "generic");
  registry_credential_clear (&c);
  assert_int_equal (registry_authfile_lookup (f, "token.example", NULL, &c), 1);
  assert_string_equal (c.identity_token, "refresh-123");
  assert_null (c.username);
  registry_credential_clear (&c);
  /* credHelpers before auths; credsStore for everything else. */
  assert_int_equal (registry_authfile_lookup (f, "gcr.io", "p/i", &c), 1);
  assert_string_equal (c.helper, "gcloud");
  registry_credential_clear (&c);
  assert_int_equal (registry_authfile_lookup (f, "other.example", "x", &c), 1);
  assert_string_equal (c.helper, "desktop");
  registry_credential_clear (&c);

  autoauthfile registry_authfile *g = parse_ok ("{\"auths\":{\"registry-1.docker.io\":{\"auth\":\"Ym9iOnB3\"}}}");
  assert_int_equal (registry_authfile_lookup (g, "docker.io", "library/a", &c), 1);
  assert_string_equal (c.username, "bob");
  registry_credential_clear (&c);
  assert_int_equal (registry_authfile_lookup (g, "localhost:5000", "a", &c), 0);
  autoauthfile registry_authfile *e = parse_ok ("{}");
  assert_int_equal (registry_authfile_lookup (e, "docker.io", NULL, &c), 0);
}

static void
test_normalize (void **state)
{
  (void) state;
  const char *cases[][2] = {
    { "https://index.docker.io/v1/", "docker.io" },
    { "index.docker.io", "docker.io" },
    { "docker.io/library/x", "docker.io/library/x" },
    { "http://localhost:5000/v2/", "localhost:5000" },
    { "quay.io/org/", "quay.io/org" },
    { "[::1]:5000", "[::1]:5000" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      autofree char *n = registry_auth_key_normalize (cases[i][0]);
      assert_string_equal (n, cases[i][1]);
    }
}

static void
bad (const char *s, const char *needle)
{
  registry_authfile *f = NULL;
  autoerror kiln_error *err = NULL;
  if (registry_authfile_parse (s, strlen (s), "cfg.json", &f, &err) >= 0)
    fail_msg ("accepted %s", s);
  if (!test_err_contains (err, needle))
    fail_msg ("error '%s' lacks '%s'", err->msg, needle);
  assert_true (test_err_contains (err, "cfg.json"));
  /* Secrets from the input never reach the message. */
  assert_false (test_err_contains (err, "SECRET"));
  assert_false (test_err_contains (err, "U0VDUkVU"));
}

static void
test_errors (void **state)
{
  (void) state;
  bad ("[]", "expected an object");
  bad ("{\"auths\":[]}", "\"auths\" is a array");
  bad ("{\"auths\":{\"h\":1}}", "auths.\"h\" is a number");
  bad ("{\"auths\":{\"h\":{\"auth\":\"U0VDUkVU!\"}}}", "not valid base64");
  bad ("{\"auths\":{\"h\":{\"auth\":\"U0VDUkVU\"}}}", "does not decode to");
  bad ("{\"auths\":{\"h\":{\"auth\":7}}}", "\"auth\" is a number");
  bad ("{\"auths\":{\"h\":{\"password\":[\"SECRET\"]}}}", "\"password\" is a array");
  bad ("{\"credHelpers\":{\"h\":1}}", "credHelpers.\"h\" is not a string");
  bad ("{\"credHelpers\":{\"h\":\"../../bin/sh\"}}", "invalid credential helper name");
  bad ("{\"credsStore\":\"a b\"}", "invalid credential helper name");
  bad ("{\"auths\":{\"h\":{\"password\":\"SECRET\"", "parsing JSON");
}

static void
test_helper_output (void **state)
{
  (void) state;
  registry_credential c;
  autoerror kiln_error *err = NULL;
  const char *o = "{\"ServerURL\":\"localhost:5000\",\"Username\":\"hu\",\"Secret\":\"hs\"}";
  assert_ok (registry_credhelper_parse (o, strlen (o), "test", &c, &err), err);
  assert_string_equal (c.username, "hu");
  assert_string_equal (c.password, "hs");
  registry_credential_clear (&c);
  const char *t = "{\"ServerURL\":\"x\",\"Username\":\"<token>\",\"Secret\":\"rt\"}";
  assert_ok (registry_credhelper_parse (t, strlen (t), "test", &c, &err), err);
  assert_null (c.username);
  assert_string_equal (c.identity_token, "rt");
  registry_credential_clear (&c);
  const char *bads[] = { "credentials not found in native keychain", "{\"Username\":\"u\"}",
                         "{\"Secret\":\"SECRET\"", "{\"Secret\":1}" };
  for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++)
    {
      kiln_error *e = NULL;
      assert_true (registry_credhelper_parse (bads[i], strlen (bads[i]), "test", &c, &e) < 0);
      assert_true (test_err_contains (e, "docker-credential-test"));
      assert_false (test_err_contains (e, "SECRET"));
      kiln_error_free (e);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_lookup),
    cmocka_unit_test (test_normalize),
    cmocka_unit_test (test_errors),
    cmocka_unit_test (test_helper_output),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
