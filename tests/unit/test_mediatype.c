/* test_mediatype.c - media types, layer compression and platforms. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "registry/mediatype.h"
#include "registry/platform.h"
#include "store/layer_writer.h"

#include <string.h>

static void
test_written_layer_types (void **state)
{
  (void) state;
  assert_string_equal (mediatype_layer (LAYER_COMPRESS_GZIP, false), "application/vnd.oci.image.layer.v1.tar+gzip");
  assert_string_equal (mediatype_layer (LAYER_COMPRESS_ZSTD, false), "application/vnd.oci.image.layer.v1.tar+zstd");
  assert_string_equal (mediatype_layer (LAYER_COMPRESS_NONE, false), "application/vnd.oci.image.layer.v1.tar");
  assert_string_equal (mediatype_layer (LAYER_COMPRESS_GZIP, true), "application/vnd.docker.image.rootfs.diff.tar.gzip");
  assert_string_equal (mediatype_layer (LAYER_COMPRESS_ZSTD, true), "application/vnd.docker.image.rootfs.diff.tar.zstd");
  assert_string_equal (mediatype_layer (LAYER_COMPRESS_NONE, true), "application/vnd.docker.image.rootfs.diff.tar");
  assert_string_equal (mediatype_layer ((layer_compression) 7, false), "");
}

static void
test_for_format (void **state)
{
  (void) state;
  for (int c = LAYER_COMPRESS_GZIP; c <= LAYER_COMPRESS_NONE; c++)
    for (int from = 0; from < 2; from++)
      for (int to = 0; to < 2; to++)
        assert_string_equal (mediatype_layer_for_format (mediatype_layer ((layer_compression) c, from), to),
                             mediatype_layer ((layer_compression) c, to));
  /* No twin: unchanged (the same pointer). */
  const char *nd = MEDIA_OCI_LAYER_ND_GZIP;
  assert_ptr_equal (mediatype_layer_for_format (nd, true), nd);
}

static void
test_classify (void **state)
{
  (void) state;
  autoerror kiln_error *err = NULL;
  layer_compression c;
  assert_ok (mediatype_layer_compression (MEDIA_OCI_LAYER_ND_ZSTD, &c, &err), err);
  assert_int_equal (c, LAYER_COMPRESS_ZSTD);
  assert_ok (mediatype_layer_compression (MEDIA_DOCKER_LAYER_FOREIGN_GZIP, &c, &err), err);
  assert_int_equal (c, LAYER_COMPRESS_GZIP);
  assert_ok (mediatype_layer_compression (MEDIA_OCI_LAYER, &c, &err), err);
  assert_int_equal (c, LAYER_COMPRESS_NONE);
  /* Docker's zstd and plain names are not accepted from registries. */
  assert_true (mediatype_layer_compression (MEDIA_DOCKER_LAYER_ZSTD, &c, &err) < 0);
  assert_true (test_err_contains (err, "unsupported layer media type"));
  kiln_error_clear (&err);
  assert_ok (mediatype_parse_compression ("none", &c, &err), err);
  assert_int_equal (c, LAYER_COMPRESS_NONE);
  assert_true (mediatype_parse_compression ("brotli", &c, &err) < 0);
  assert_true (test_err_contains (err, "unknown compression 'brotli'"));
}

static void
test_levels (void **state)
{
  (void) state;
  autoerror kiln_error *err = NULL;
  int lo, hi;
  assert_true (layer_writer_level_range (LAYER_COMPRESS_GZIP, &lo, &hi));
  assert_int_equal (lo, 0);
  assert_int_equal (hi, 9);
  assert_true (layer_writer_level_range (LAYER_COMPRESS_ZSTD, &lo, &hi));
  assert_int_equal (lo, 1);
  assert_int_equal (hi, 22);
  assert_false (layer_writer_level_range (LAYER_COMPRESS_NONE, &lo, &hi));
  assert_ok (layer_writer_check_level (LAYER_COMPRESS_GZIP, 0, &err), err);
  assert_ok (layer_writer_check_level (LAYER_COMPRESS_NONE, 99, &err), err);
  assert_true (layer_writer_check_level (LAYER_COMPRESS_GZIP, 10, &err) < 0);
  assert_string_equal (err->msg, "gzip compression level 10 out of range 0..9");
  kiln_error_clear (&err);
  assert_true (layer_writer_check_level (LAYER_COMPRESS_ZSTD, 0, &err) < 0);
  assert_string_equal (err->msg, "zstd compression level 0 out of range 1..22");
}

static void
test_platform_default (void **state)
{
  (void) state;
  const char *hos, *harch, *hvar;
  platform_host (&hos, &harch, &hvar);
  const char *os = NULL, *arch = NULL, *variant = NULL;
  platform_default (&os, &arch, &variant);
  assert_string_equal (os, hos);
  assert_string_equal (arch, harch);
  assert_ptr_equal (variant, hvar);
  /* An arch without a variant keeps it absent. */
  os = "freebsd";
  arch = "s390x";
  variant = NULL;
  platform_default (&os, &arch, &variant);
  assert_string_equal (os, "freebsd");
  assert_string_equal (arch, "s390x");
  assert_null (variant);
  assert_true (platform_variant_equal ("arm64", NULL, "v8"));
  assert_false (platform_variant_equal ("arm", NULL, "v7"));
  assert_true (platform_variant_equal ("arm", NULL, NULL));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_written_layer_types),
    cmocka_unit_test (test_for_format),
    cmocka_unit_test (test_classify),
    cmocka_unit_test (test_levels),
    cmocka_unit_test (test_platform_default),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
