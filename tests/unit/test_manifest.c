/* test_manifest.c - manifest/index parsing of untrusted registry input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "registry/manifest.h"
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

#define DA "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DC "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

#define OCI_MANIFEST                                                                                  \
  "{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_OCI_MANIFEST "\","                                      \
  "\"config\":{\"mediaType\":\"" MEDIA_OCI_CONFIG "\",\"digest\":\"" DA "\",\"size\":123},"             \
  "\"layers\":[{\"mediaType\":\"" MEDIA_OCI_LAYER_GZIP "\",\"digest\":\"" DB "\",\"size\":1000},"        \
  "{\"mediaType\":\"" MEDIA_OCI_LAYER_ZSTD "\",\"digest\":\"" DC "\",\"size\":0}]}"

#define PLAT(os, arch, var) "\"platform\":{\"os\":\"" os "\",\"architecture\":\"" arch "\"" var "}"
#define INDEX_ENTRY(d, plat) "{\"mediaType\":\"" MEDIA_OCI_MANIFEST "\",\"digest\":\"" d "\",\"size\":5," plat "}"

static manifest *
parse_ok (const char *s, const char *ct)
{
  manifest *m = NULL;
  autoerror kiln_error *err = NULL;
  int r = manifest_parse (s, strlen (s), ct, &m, &err);
  assert_ok (r, err);
  return m;
}

static void
parse_bad (const char *s, const char *ct, const char *needle)
{
  manifest *m = NULL;
  autoerror kiln_error *err = NULL;
  if (manifest_parse (s, strlen (s), ct, &m, &err) >= 0)
    fail_msg ("accepted: %.100s", s);
  assert_null (m);
  if (!test_err_contains (err, needle))
    fail_msg ("error '%s' lacks '%s'", err->msg, needle);
}

static void
test_oci_manifest (void **state)
{
  (void) state;
  automanifest manifest *m = parse_ok (OCI_MANIFEST, MEDIA_OCI_MANIFEST "; charset=utf-8");
  assert_int_equal (m->kind, MANIFEST_KIND_OCI_MANIFEST);
  assert_false (manifest_kind_is_index (m->kind));
  assert_string_equal (m->config.digest, DA);
  assert_int_equal (m->config.size, 123);
  assert_int_equal (m->n_layers, 2);
  assert_string_equal (m->layers[1].digest, DC);
  layer_compression c;
  autoerror kiln_error *err = NULL;
  assert_ok (mediatype_layer_compression (m->layers[1].media_type, &c, &err), err);
  assert_int_equal (c, LAYER_COMPRESS_ZSTD);
  /* Without mediaType and Content-Type, the shape decides. */
  automanifest manifest *m2
      = parse_ok ("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" MEDIA_OCI_CONFIG "\",\"digest\":\"" DA
                  "\",\"size\":1},\"layers\":[]}",
                  "application/json");
  assert_int_equal (m2->kind, MANIFEST_KIND_OCI_MANIFEST);
  assert_int_equal (m2->n_layers, 0);
}

static void
test_docker_manifest (void **state)
{
  (void) state;
  automanifest manifest *m
      = parse_ok ("{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_DOCKER_MANIFEST "\",\"config\":{\"mediaType\":\"" MEDIA_DOCKER_CONFIG
                  "\",\"digest\":\"" DA "\",\"size\":7},\"layers\":[{\"mediaType\":\"" MEDIA_DOCKER_LAYER_GZIP
                  "\",\"digest\":\"" DB "\",\"size\":9},{\"mediaType\":\"" MEDIA_DOCKER_LAYER_FOREIGN_GZIP
                  "\",\"digest\":\"" DC "\",\"size\":9,\"urls\":[\"https://example.invalid/x\"]}]}",
                  NULL);
  assert_int_equal (m->kind, MANIFEST_KIND_DOCKER_MANIFEST);
  assert_string_equal (m->media_type, MEDIA_DOCKER_MANIFEST);
  assert_non_null (m->layers[1].urls);
  assert_string_equal (m->layers[1].urls[0], "https://example.invalid/x");
}

static void
test_index (void **state)
{
  (void) state;
  const char *idx = "{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_OCI_INDEX "\",\"manifests\":["
                    INDEX_ENTRY (DA, PLAT ("linux", "amd64", "")) ","
                    INDEX_ENTRY (DB, PLAT ("linux", "arm", ",\"variant\":\"v6\"")) ","
                    INDEX_ENTRY (DC, PLAT ("linux", "arm", ",\"variant\":\"v7\"")) ","
                    INDEX_ENTRY (DB, PLAT ("linux", "arm64", ",\"variant\":\"v8\"")) ","
                    INDEX_ENTRY (DC, PLAT ("unknown", "unknown", "")) "]}";
  automanifest manifest *m = parse_ok (idx, MEDIA_OCI_INDEX);
  assert_true (manifest_kind_is_index (m->kind));
  assert_int_equal (m->n_manifests, 5);
  size_t i = 99;
  autoerror kiln_error *err = NULL;
  assert_ok (manifest_select_platform (m, "linux", "amd64", NULL, &i, &err), err);
  assert_int_equal (i, 0);
  assert_ok (manifest_select_platform (m, "linux", "arm", "v7", &i, &err), err);
  assert_int_equal (i, 2);
  assert_ok (manifest_select_platform (m, "linux", "arm", NULL, &i, &err), err);
  assert_int_equal (i, 1);
  /* arm64 without variant matches v8. */
  assert_ok (manifest_select_platform (m, "linux", "arm64", NULL, &i, &err), err);
  assert_int_equal (i, 3);
  assert_true (manifest_select_platform (m, "linux", "s390x", NULL, &i, &err) < 0);
  assert_true (test_err_contains (err, "no image for platform linux/s390x"));
  assert_true (test_err_contains (err, "linux/arm/v7"));
  kiln_error_clear (&err);
  assert_true (manifest_select_platform (m, "linux", "arm", "v5", &i, &err) < 0);

  automanifest manifest *d = parse_ok ("{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_DOCKER_LIST "\",\"manifests\":[]}",
                                       MEDIA_DOCKER_LIST);
  assert_int_equal (d->kind, MANIFEST_KIND_DOCKER_LIST);
  automanifest manifest *o = parse_ok ("{\"schemaVersion\":2,\"manifests\":[]}", "");
  assert_int_equal (o->kind, MANIFEST_KIND_OCI_INDEX);
}

static void
test_rejects (void **state)
{
  (void) state;
  parse_bad ("{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}", NULL, "schema 1 is not supported");
  parse_bad ("{\"schemaVersion\":2}", MEDIA_DOCKER_SCHEMA1_SIGNED, "schema 1 is not supported");
  parse_bad ("{}", NULL, "missing \"schemaVersion\"");
  parse_bad ("{\"schemaVersion\":3,\"manifests\":[]}", NULL, "schemaVersion");
  parse_bad ("{\"schemaVersion\":\"2\",\"manifests\":[]}", NULL, "schemaVersion");
  parse_bad ("[]", NULL, "top level is a array");
  parse_bad ("{\"schemaVersion\":2,", NULL, "parsing manifest: parsing JSON");
  parse_bad ("{\"schemaVersion\":2,\"mediaType\":\"text/html\",\"manifests\":[]}", NULL, "unsupported manifest media type 'text/html'");
  parse_bad ("{\"schemaVersion\":2,\"manifests\":[]}", "application/vnd.foo", "unsupported manifest media type");
  parse_bad (OCI_MANIFEST, MEDIA_OCI_INDEX, "does not match the Content-Type");
  parse_bad ("{\"schemaVersion\":2,\"mediaType\":7}", NULL, "\"mediaType\" is a number");
  parse_bad ("{\"schemaVersion\":2}", NULL, "not recognisable");
  parse_bad ("{\"schemaVersion\":2,\"manifests\":[],\"layers\":[],\"config\":{}}", NULL, "both");
  parse_bad ("{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_OCI_INDEX "\"}", NULL, "missing \"manifests\"");
  parse_bad ("{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_OCI_INDEX "\",\"manifests\":{}}", NULL, "expected an array");
  parse_bad ("{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_OCI_INDEX "\",\"manifests\":[1]}", NULL, "manifests[0] is a number");
  parse_bad ("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"x\",\"digest\":\"sha256:00\",\"size\":1}]}", NULL,
             "manifests[0]");
  parse_bad ("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"x\",\"digest\":\"" DA "\",\"size\":-1}]}", NULL,
             "negative");
  parse_bad ("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"x\",\"digest\":\"" DA "\",\"size\":1.5}]}", NULL,
             "not an integer");
  parse_bad ("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"x\",\"digest\":\"" DA "\"}]}", NULL,
             "missing \"size\"");
  parse_bad ("{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"" DA "\",\"size\":1}]}", NULL, "missing \"mediaType\"");
  parse_bad ("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"x\",\"digest\":\"" DA "\",\"size\":1,\"platform\":{\"os\":\"linux\"}}]}",
             NULL, "missing \"architecture\"");
  parse_bad ("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"x\",\"digest\":\"" DA "\",\"size\":1,\"urls\":[1]}]}", NULL,
             "urls");
  parse_bad ("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/x\",\"digest\":\"" DA "\",\"size\":1},\"layers\":[]}", NULL,
             "not an image config");
  parse_bad ("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" MEDIA_OCI_CONFIG "\",\"digest\":\"" DA "\",\"size\":1},"
             "\"layers\":[{\"mediaType\":\"application/x-bzip\",\"digest\":\"" DA "\",\"size\":1}]}", NULL,
             "layers[0]: unsupported layer media type 'application/x-bzip'");
  parse_bad ("{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_OCI_MANIFEST "\",\"layers\":[]}", NULL, "missing \"config\"");
  parse_bad ("{\"schemaVersion\":2,\"schemaVersion\":2}", NULL, "duplicate");
  /* Oversized input is refused before parsing. */
  size_t big = REGISTRY_MANIFEST_MAX_SIZE + 1;
  char *buf = xmalloc (big);
  memset (buf, ' ', big);
  manifest *m = NULL;
  autoerror kiln_error *err = NULL;
  assert_true (manifest_parse (buf, big, NULL, &m, &err) < 0);
  assert_true (test_err_contains (err, "larger than"));
  free (buf);
}

static void
test_platform_parse (void **state)
{
  (void) state;
  autofree char *os = NULL, *arch = NULL, *var = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (platform_parse ("linux/arm/v7", &os, &arch, &var, &err), err);
  assert_string_equal (os, "linux");
  assert_string_equal (arch, "arm");
  assert_string_equal (var, "v7");
  const char *bad[] = { "linux", "linux/", "/amd64", "a/b/c/d", "linux/AMD64", "linux//x" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      char *o = NULL, *a = NULL, *v = NULL;
      kiln_error *e = NULL;
      if (platform_parse (bad[i], &o, &a, &v, &e) >= 0)
        fail_msg ("accepted platform '%s'", bad[i]);
      assert_true (test_err_contains (e, "invalid platform"));
      kiln_error_free (e);
    }
  const char *hos, *harch, *hvar;
  platform_host (&hos, &harch, &hvar);
  assert_string_equal (hos, "linux");
  assert_string_not_equal (harch, "unknown");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_oci_manifest), cmocka_unit_test (test_docker_manifest), cmocka_unit_test (test_index),
    cmocka_unit_test (test_rejects),      cmocka_unit_test (test_platform_parse),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
