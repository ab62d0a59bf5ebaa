/* test_reference.c - Docker reference grammar and normalisation (cases from
 * distribution/reference's normalize_test.go and reference_test.go). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "registry/reference.h"
#include "util/alloc.h"

#include <string.h>

#define D64 "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"

static void
ok (const char *in, const char *domain, const char *path, const char *tag, const char *digest, const char *full)
{
  autoref registry_ref *r = NULL;
  autoerror kiln_error *err = NULL;
  int ret = registry_ref_parse (in, &r, &err);
  if (ret < 0)
    fail_msg ("'%s': %s", in, err->msg);
  assert_string_equal (r->domain, domain);
  assert_string_equal (r->path, path);
  if (tag)
    assert_string_equal (r->tag, tag);
  else
    assert_null (r->tag);
  if (digest)
    assert_string_equal (r->digest, digest);
  else
    assert_null (r->digest);
  autofree char *s = registry_ref_string (r);
  assert_string_equal (s, full);
  /* The normalised string parses to itself. */
  autoref registry_ref *r2 = NULL;
  assert_ok (registry_ref_parse (s, &r2, &err), err);
  autofree char *s2 = registry_ref_string (r2);
  assert_string_equal (s, s2);
}

static void
ko (const char *in, const char *needle)
{
  autoref registry_ref *r = NULL;
  autoerror kiln_error *err = NULL;
  if (registry_ref_parse (in, &r, &err) >= 0)
    fail_msg ("'%s' was accepted", in);
  assert_null (r);
  if (!test_err_contains (err, needle))
    fail_msg ("'%s': error '%s' lacks '%s'", in, err->msg, needle);
  assert_true (strncmp (err->msg, "invalid reference", 17) == 0);
}

static void
test_docker_hub (void **state)
{
  (void) state;
  ok ("busybox", "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest");
  ok ("busybox:1.36", "docker.io", "library/busybox", "1.36", NULL, "docker.io/library/busybox:1.36");
  ok ("library/busybox", "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest");
  ok ("docker.io/busybox", "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest");
  ok ("index.docker.io/busybox", "docker.io", "library/busybox", "latest", NULL,
      "docker.io/library/busybox:latest");
  ok ("user/app", "docker.io", "user/app", "latest", NULL, "docker.io/user/app:latest");
  ok ("docker.io/user/app:v1", "docker.io", "user/app", "v1", NULL, "docker.io/user/app:v1");
  ok ("a/b/c", "docker.io", "a/b/c", "latest", NULL, "docker.io/a/b/c:latest");
  /* "localhost:5000" with no slash is the image "localhost" tagged 5000. */
  ok ("localhost:5000", "docker.io", "library/localhost", "5000", NULL, "docker.io/library/localhost:5000");
  ok ("foo_bar.com:8080", "docker.io", "library/foo_bar.com", "8080", NULL,
      "docker.io/library/foo_bar.com:8080");
}

static void
test_domains (void **state)
{
  (void) state;
  ok ("localhost/app", "localhost", "app", "latest", NULL, "localhost/app:latest");
  ok ("localhost:5000/app:t", "localhost:5000", "app", "t", NULL, "localhost:5000/app:t");
  ok ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", "latest", NULL, "127.0.0.1:5000/a/b:latest");
  ok ("ghcr.io/org/app:1.0", "ghcr.io", "org/app", "1.0", NULL, "ghcr.io/org/app:1.0");
  ok ("my-registry.example.com/x", "my-registry.example.com", "x", "latest", NULL,
      "my-registry.example.com/x:latest");
  ok ("[::1]:5000/app:tag", "[::1]:5000", "app", "tag", NULL, "[::1]:5000/app:tag");
  ok ("[2001:db8::1]/app", "[2001:db8::1]", "app", "latest", NULL, "[2001:db8::1]/app:latest");
  /* An upper-case first component is a domain (Docker's rule). */
  ok ("Foo/bar", "Foo", "bar", "latest", NULL, "Foo/bar:latest");
  ok ("host:5000/a" "@" D64, "host:5000", "a", NULL, D64, "host:5000/a@" D64);
}

static void
test_digests (void **state)
{
  (void) state;
  ok ("busybox@" D64, "docker.io", "library/busybox", NULL, D64, "docker.io/library/busybox@" D64);
  ok ("busybox:1@" D64, "docker.io", "library/busybox", "1", D64, "docker.io/library/busybox:1@" D64);
  autoref registry_ref *r = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (registry_ref_parse ("a:t@" D64, &r, &err), err);
  assert_string_equal (registry_ref_manifest_id (r), D64);
  autoref registry_ref *r2 = NULL;
  assert_ok (registry_ref_parse ("a:t", &r2, &err), err);
  assert_string_equal (registry_ref_manifest_id (r2), "t");
}

static void
test_separators (void **state)
{
  (void) state;
  ok ("a.b_c__d-e--f", "docker.io", "library/a.b_c__d-e--f", "latest", NULL,
      "docker.io/library/a.b_c__d-e--f:latest");
  ko ("a___b", "invalid repository name");
  ko ("a..b", "invalid repository name");
  ko ("-a", "invalid repository name");
  ko ("a-", "invalid repository name");
  ko ("a_", "invalid repository name");
  ko ("a//b", "invalid repository name");
  ko ("a/", "invalid repository name");
  ko ("/a", "invalid repository name");
  ko (".a", "invalid repository name");
}

static void
test_errors (void **state)
{
  (void) state;
  ko ("", "empty");
  ko ("Busybox", "must be lowercase");
  ko ("docker.io/User/app", "must be lowercase");
  ko ("busybox:", "invalid tag");
  ko ("busybox:-x", "invalid tag");
  ko ("busybox:.x", "invalid tag");
  ko ("busybox:a b", "whitespace");
  ko ("busybox@sha256:abc", "invalid digest");
  ko ("busybox@md5:00", "invalid digest");
  ko ("busybox@" D64 "@" D64, "more than one");
  ko ("busybox@", "invalid digest");
  ko (":tag", "missing repository name");
  ko ("@" D64, "missing repository name");
  ko ("localhost:5000/", "missing repository name");
  ko ("-host.com/a", "invalid registry host");
  ko ("host-.com/a", "invalid registry host");
  ko ("host..com/a", "invalid registry host");
  ko ("host.com:/a", "invalid registry host");
  ko ("host.com:50a/a", "invalid registry host");
  ko ("[::1/a", "invalid registry host");
  ko ("[]/a", "invalid registry host");
  ko ("[zz::1]/a", "invalid registry host");
  ko ("[::1]x/a", "invalid registry host");
  ko ("[::1]:5000", "invalid");
  ko ("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "hexadecimal");
  ko ("b\xc3\xa9", "non-ASCII");
  ko ("library/ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "hexadecimal");
  /* Tag length 128 is fine, 129 is not. */
  char tag[200];
  memset (tag, 'x', sizeof tag);
  memcpy (tag, "a:", 2);
  tag[2 + 128] = '\0';
  autoref registry_ref *r = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (registry_ref_parse (tag, &r, &err), err);
  tag[2 + 128] = 'x';
  tag[2 + 129] = '\0';
  ko (tag, "invalid tag");
  /* Name length limit of 255, counted on the normalised name. */
  char name[300];
  memset (name, 'a', sizeof name);
  memcpy (name, "localhost/", 10);
  name[255] = '\0';
  autoref registry_ref *r2 = NULL;
  assert_ok (registry_ref_parse (name, &r2, &err), err);
  name[255] = 'a';
  name[256] = '\0';
  ko (name, "longer than 255");
  memset (name, 'a', sizeof name);
  name[255 - 18] = '\0'; /* "docker.io/library/" is 18 */
  autoref registry_ref *r3 = NULL;
  assert_ok (registry_ref_parse (name, &r3, &err), err);
  name[255 - 18] = 'a';
  name[255 - 17] = '\0';
  ko (name, "longer than 255");
}

static void
test_familiar (void **state)
{
  (void) state;
  const char *cases[][2] = {
    { "busybox", "busybox:latest" },
    { "docker.io/library/busybox:1", "busybox:1" },
    { "user/app", "user/app:latest" },
    { "docker.io/library/a/b", "library/a/b:latest" },
    { "ghcr.io/a/b:t", "ghcr.io/a/b:t" },
    /* Found by fuzz_reference: the familiar form must not change meaning. */
    { "index.docker.io/ucker.io/uss7reapp", "docker.io/ucker.io/uss7reapp:latest" },
    { "docker.io/localhost/a", "docker.io/localhost/a:latest" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      autoref registry_ref *r = NULL;
      autoerror kiln_error *err = NULL;
      assert_ok (registry_ref_parse (cases[i][0], &r, &err), err);
      autofree char *f = registry_ref_familiar (r);
      assert_string_equal (f, cases[i][1]);
    }
  assert_string_equal (registry_domain_api_host ("docker.io"), "registry-1.docker.io");
  assert_string_equal (registry_domain_api_host ("localhost:5000"), "localhost:5000");
  autoref registry_ref *r = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (registry_ref_parse ("localhost:1/a:b", &r, &err), err);
  autoref registry_ref *d = registry_ref_dup (r);
  autofree char *n = registry_ref_name (d);
  assert_string_equal (n, "localhost:1/a");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_docker_hub), cmocka_unit_test (test_domains),   cmocka_unit_test (test_digests),
    cmocka_unit_test (test_separators), cmocka_unit_test (test_errors),    cmocka_unit_test (test_familiar),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
