/* test_image.c - image config and manifest JSON. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "store/image.h"
#include "store/layer_writer.h"
#include "util/alloc.h"
#include "util/json.h"

#include <string.h>

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static void
test_config_roundtrip (void **state)
{
  (void) state;
  image_spec s;
  image_spec_init (&s);
  s.architecture = xstrdup ("arm64");
  s.os = xstrdup ("linux");
  s.variant = xstrdup ("v8");
  s.created = 1700000000;
  s.user = xstrdup ("1000:1000");
  strv_push (&s.env, "PATH=/usr/bin");
  strv_push (&s.entrypoint, "/bin/sh");
  strv_push (&s.entrypoint, "-c");
  s.cmd = xcalloc (1, sizeof (char *)); /* [] is not null */
  s.working_dir = xstrdup ("/app");
  strv_push (&s.exposed_ports, "80/tcp");
  strv_push (&s.volumes, "/data");
  strv_push (&s.labels, "org.opencontainers.image.title=x=y");
  s.stop_signal = xstrdup ("SIGTERM");
  s.healthcheck_json = xstrdup ("{\"Test\":[\"CMD\",\"true\"]}");
  strv_push (&s.diff_ids, D1);
  image_spec_add_history (&s, 1700000000, "/bin/sh -c make", NULL, false);
  image_spec_add_history (&s, 1700000001, "ENV PATH=/usr/bin", "kiln", true);
  autoerror kiln_error *err = NULL;
  autofree char *json = NULL;
  size_t len;
  assert_ok (image_config_json (&s, &json, &len, &err), err);
  assert_non_null (strstr (json, "\"architecture\":\"arm64\""));
  assert_non_null (strstr (json, "\"created\":\"2023-11-14T22:13:20Z\""));
  assert_non_null (strstr (json, "\"Cmd\":[]"));
  assert_non_null (strstr (json, "\"ExposedPorts\":{\"80/tcp\":{}}"));
  assert_non_null (strstr (json, "\"org.opencontainers.image.title\":\"x=y\""));
  assert_non_null (strstr (json, "\"empty_layer\":true"));
  assert_non_null (strstr (json, "\"diff_ids\":[\"" D1 "\"]"));

  image_spec t;
  image_spec_init (&t);
  assert_ok (image_spec_from_config (&t, json, len, &err), err);
  autofree char *json2 = NULL;
  size_t len2;
  assert_ok (image_config_json (&t, &json2, &len2, &err), err);
  assert_string_equal (json, json2);

  /* a layer without history entry is an error */
  strv_push (&t.diff_ids, D2);
  autofree char *j3 = NULL;
  assert_true (image_config_json (&t, &j3, &len2, &err) < 0);
  assert_true (test_err_contains (err, "diff_ids"));
  image_spec_free (&s);
  image_spec_free (&t);
}

static void
test_manifest (void **state)
{
  (void) state;
  image_descriptor l[] = { { mediatype_layer (LAYER_COMPRESS_GZIP, false), D1, 123 } };
  autoerror kiln_error *err = NULL;
  autofree char *m = NULL;
  size_t len;
  assert_ok (image_manifest_json (IMAGE_FORMAT_OCI, D2, 456, l, 1, &m, &len, &err), err);
  assert_string_equal (m, "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                          "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D2
                          "\",\"size\":456},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
                          "\"digest\":\"" D1 "\",\"size\":123}]}");
  autofree char *d = NULL;
  l[0].media_type = mediatype_layer (LAYER_COMPRESS_GZIP, true);
  assert_ok (image_manifest_json (IMAGE_FORMAT_DOCKER, D2, 456, l, 1, &d, &len, &err), err);
  assert_non_null (strstr (d, "application/vnd.docker.distribution.manifest.v2+json"));
  assert_non_null (strstr (d, "application/vnd.docker.container.image.v1+json"));
  assert_non_null (strstr (d, "application/vnd.docker.image.rootfs.diff.tar.gzip"));
  image_format f;
  assert_ok (image_parse_format ("docker", &f, &err), err);
  assert_int_equal (f, IMAGE_FORMAT_DOCKER);
  assert_true (image_parse_format ("v1", &f, &err) < 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_config_roundtrip),
    cmocka_unit_test (test_manifest),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
