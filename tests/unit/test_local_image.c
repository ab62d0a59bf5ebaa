/* test_local_image.c - images from OCI layouts and from manifests in the
 * store (store/local_image.h). The layout is written here by hand (tar,
 * gzip, JSON); checks: extraction once then cached, the layout never
 * written, an index followed to the host platform, lying diffIDs and a
 * corrupted blob refused with nothing published, a directory that is no
 * layout refused, and images by manifest digest (complete / pruned). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "registry/manifest.h"
#include "store/local_image.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *g_dir;
static int g_dirfd = -1;
static char g_blob[DIGEST_STRING_SIZE], g_diff[DIGEST_STRING_SIZE];
static int64_t g_blob_size;

static void
sh (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  autofree char *cmd = xvasprintf (fmt, ap);
  va_end (ap);
  if (system (cmd) != 0)
    fail_msg ("command failed: %s", cmd);
}

static void
file_digest (const char *path, char out[DIGEST_STRING_SIZE], int64_t *size)
{
  autoclose int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail_msg ("open '%s'", path);
  autoerror kiln_error *err = NULL;
  uint64_t n;
  assert_ok (digest_fd (fd, out, &n, &err), err);
  if (size)
    *size = (int64_t) n;
}

/* Store data as a blob of layout dir; its digest into out. */
static void
layout_put (const char *dir, const char *data, char out[DIGEST_STRING_SIZE])
{
  digest_buffer (data, strlen (data), out);
  autofree char *path = xasprintf ("%s/blobs/sha256/%s", dir, digest_hex (out));
  FILE *f = fopen (path, "w");
  assert_non_null (f);
  fputs (data, f);
  fclose (f);
}

/* A layout NAME with the test layer; diff_id is what the config claims.
 * With an index, the tag points to an index listing s390x (or amd64 on
 * s390x hosts) first and the host platform second. Returns the image
 * manifest's digest in mdigest. */
static char *
make_layout (const char *name, const char *diff_id, bool index, char mdigest[DIGEST_STRING_SIZE])
{
  char *dir = xasprintf ("%s/%s", g_dir, name);
  sh ("set -e; mkdir -p '%s/blobs/sha256'; cp '%s/layer.tar.gz' '%s/blobs/sha256/%s';"
      "echo '{\"imageLayoutVersion\":\"1.0.0\"}' > '%s/oci-layout'",
      dir, g_dir, dir, digest_hex (g_blob), dir);
  const char *os, *arch, *variant;
  platform_host (&os, &arch, &variant);
  autofree char *config = xasprintf ("{\"architecture\":\"%s\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"/bin/sh\"]},"
                                     "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}", arch, diff_id);
  char cdigest[DIGEST_STRING_SIZE];
  layout_put (dir, config, cdigest);
  autofree char *mjson = xasprintf (
    "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu},"
    "\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%lld}]}",
    MEDIA_OCI_MANIFEST, MEDIA_OCI_CONFIG, cdigest, strlen (config), MEDIA_OCI_LAYER_GZIP, g_blob,
    (long long) g_blob_size);
  layout_put (dir, mjson, mdigest);
  autofree char *top_mt = xstrdup (MEDIA_OCI_MANIFEST);
  char top[DIGEST_STRING_SIZE];
  size_t top_len = strlen (mjson);
  snprintf (top, sizeof top, "%s", mdigest);
  if (index)
    {
      /* The other platform's entry points to a blob that does not exist:
       * following it would fail. */
      autofree char *idx = xasprintf (
        "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":["
        "{\"mediaType\":\"%s\",\"digest\":\"sha256:%064d\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"%s\"}},"
        "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"os\":\"linux\",\"architecture\":\"%s\"%s%s%s}}]}",
        MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, 0, strcmp (arch, "s390x") ? "s390x" : "amd64", MEDIA_OCI_MANIFEST,
        mdigest, strlen (mjson), arch, variant ? ",\"variant\":\"" : "", variant ? variant : "",
        variant ? "\"" : "");
      layout_put (dir, idx, top);
      top_len = strlen (idx);
      free (top_mt);
      top_mt = xstrdup (MEDIA_OCI_INDEX);
    }
  sh ("printf '%%s' '{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,"
      "\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"}}]}' > '%s/index.json'",
      top_mt, top, top_len, dir);
  return dir;
}

static char *
tree_state (const char *dir)
{
  autofree char *out = xasprintf ("%s/state.txt", g_dir);
  sh ("cd '%s' && find . -printf '%%p %%s %%T@\\n' | sort > '%s'", dir, out);
  FILE *f = fopen (out, "r");
  assert_non_null (f);
  char *buf = xzalloc (65536);
  size_t n = fread (buf, 1, 65535, f);
  buf[n] = '\0';
  fclose (f);
  return buf;
}

static store *
store_at (const char *name)
{
  autofree char *root = xasprintf ("%s/%s", g_dir, name);
  store *s = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (store_open (root, 0, &s, &err), err);
  return s;
}

static int
count_entries (store *s, const char *rel)
{
  autofree char *path = xasprintf ("%s/%s", s->root, rel);
  DIR *d = opendir (path);
  if (!d)
    return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir (d)))
    n += e->d_name[0] != '.';
  closedir (d);
  return n;
}

static int
setup (void **state)
{
  (void) state;
  log_setup (LOG_LEVEL_WARN, LOG_FORMAT_TEXT, false, stderr);
  g_dir = test_mkdtemp (&g_dirfd);
  sh ("set -e; d='%s'; mkdir -p $d/r/etc $d/r/bin; echo hello > $d/r/etc/hello; ln -s hello $d/r/etc/link;"
      "tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C $d/r -cf $d/layer.tar .;"
      "gzip -n -c $d/layer.tar > $d/layer.tar.gz",
      g_dir);
  autofree char *blob = xasprintf ("%s/layer.tar.gz", g_dir);
  autofree char *tar = xasprintf ("%s/layer.tar", g_dir);
  file_digest (blob, g_blob, &g_blob_size);
  file_digest (tar, g_diff, NULL);
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  close (g_dirfd);
  test_rmtree (g_dir);
  free (g_dir);
  return 0;
}

static void
test_layout_extract_then_cached (void **state)
{
  (void) state;
  char mdigest[DIGEST_STRING_SIZE];
  autofree char *dir = make_layout ("plain", g_diff, false, mdigest);
  autofree char *before = tree_state (dir);
  store *s = store_at ("s1");
  autoerror kiln_error *err = NULL;
  store_fetch_result r;
  assert_ok (local_image_from_layout (s, dir, "v1", NULL, NULL, NULL, &r, &err), err);
  assert_string_equal (r.manifest_digest, mdigest);
  assert_int_equal (r.n_layers, 1);
  assert_string_equal (r.layers[0].diff_id, g_diff);
  assert_string_equal (r.layers[0].digest, g_blob);
  assert_int_equal (r.layers[0].how, STORE_FETCH_LOCAL_BLOB);
  assert_true (r.layers[0].extracted);
  assert_true (store_has_layer (s, g_diff));
  assert_non_null (strstr (r.config, "/bin/sh"));
  assert_string_equal (r.os, "linux");
  assert_null (r.ref_name);
  store_fetch_result_clear (&r);
  /* Again (and without a tag: the only image): nothing extracted. */
  assert_ok (local_image_from_layout (s, dir, NULL, NULL, NULL, NULL, &r, &err), err);
  assert_int_equal (r.layers[0].how, STORE_FETCH_CACHED);
  assert_false (r.layers[0].extracted);
  store_fetch_result_clear (&r);
  assert_int_equal (count_entries (s, "tmp"), 0);
  autofree char *after = tree_state (dir);
  assert_string_equal (before, after);
  /* An unknown tag. */
  assert_int_equal (local_image_from_layout (s, dir, "nope", NULL, NULL, NULL, &r, &err), -1);
  assert_true (test_err_contains (err, "no image tagged 'nope'"));
  store_close (s);
}

static void
test_layout_index (void **state)
{
  (void) state;
  char mdigest[DIGEST_STRING_SIZE];
  autofree char *dir = make_layout ("indexed", g_diff, true, mdigest);
  store *s = store_at ("s2");
  autoerror kiln_error *err = NULL;
  store_fetch_result r;
  assert_ok (local_image_from_layout (s, dir, "v1", NULL, NULL, NULL, &r, &err), err);
  assert_string_equal (r.manifest_digest, mdigest);
  assert_true (r.index_digest[0] != '\0');
  store_fetch_result_clear (&r);
  /* A platform the index lacks. */
  assert_int_equal (local_image_from_layout (s, dir, "v1", "linux", "mips64le", NULL, &r, &err), -1);
  assert_non_null (err);
  store_close (s);
}

static void
test_layout_refused (void **state)
{
  (void) state;
  store *s = store_at ("s3");
  autoerror kiln_error *err = NULL;
  store_fetch_result r;
  /* The config's diffID lies. */
  char mdigest[DIGEST_STRING_SIZE];
  char fake[DIGEST_STRING_SIZE];
  digest_buffer ("not the layer", 13, fake);
  autofree char *liar = make_layout ("liar", fake, false, mdigest);
  assert_int_equal (local_image_from_layout (s, liar, "v1", NULL, NULL, NULL, &r, &err), -1);
  assert_true (test_err_contains (err, "diffID mismatch"));
  kiln_error_clear (&err);
  assert_false (store_has_layer (s, g_diff));
  assert_false (store_has_layer (s, fake));
  /* A corrupted layer blob (same size). */
  autofree char *bad = make_layout ("bad", g_diff, false, mdigest);
  sh ("printf X | dd of='%s/blobs/sha256/%s' bs=1 seek=40 conv=notrunc 2>/dev/null", bad, digest_hex (g_blob));
  assert_int_equal (local_image_from_layout (s, bad, "v1", NULL, NULL, NULL, &r, &err), -1);
  assert_non_null (err);
  kiln_error_clear (&err);
  assert_false (store_has_layer (s, g_diff));
  assert_int_equal (count_entries (s, "layers/sha256"), 0);
  assert_int_equal (count_entries (s, "tmp"), 0);
  /* Not a layout: refused, and nothing is created in it. */
  autofree char *plain = xasprintf ("%s/notalayout", g_dir);
  assert_int_equal (mkdir (plain, 0755), 0);
  assert_int_equal (local_image_from_layout (s, plain, NULL, NULL, NULL, NULL, &r, &err), -1);
  assert_true (test_err_contains (err, "not an OCI image layout"));
  kiln_error_clear (&err);
  autofree char *blobs = xasprintf ("%s/blobs", plain);
  assert_int_equal (access (blobs, F_OK), -1);
  autofree char *absent = xasprintf ("%s/absent", g_dir);
  assert_int_equal (local_image_from_layout (s, absent, NULL, NULL, NULL, NULL, &r, &err), -1);
  assert_int_equal (access (absent, F_OK), -1);
  store_close (s);
}

static void
put_file_blob (store *s, const char *path)
{
  autofree char *data = NULL;
  size_t len = 0;
  FILE *f = fopen (path, "r");
  assert_non_null (f);
  data = xmalloc (1 << 20);
  len = fread (data, 1, 1 << 20, f);
  fclose (f);
  char d[DIGEST_STRING_SIZE];
  digest_buffer (data, len, d);
  autoerror kiln_error *err = NULL;
  assert_ok (store_put_blob (s, d, data, len, &err), err);
}

static void
test_from_store (void **state)
{
  (void) state;
  char mdigest[DIGEST_STRING_SIZE];
  autofree char *dir = make_layout ("forstore", g_diff, false, mdigest);
  store *s = store_at ("s4");
  autoerror kiln_error *err = NULL;
  store_fetch_result r;
  /* Unknown manifest: 0. */
  assert_int_equal (local_image_from_store (s, mdigest, &r, &err), 0);
  /* Manifest and config stored, layer not: 0 (pruned). */
  autofree char *mpath = xasprintf ("%s/blobs/sha256/%s", dir, digest_hex (mdigest));
  put_file_blob (s, mpath);
  assert_int_equal (local_image_from_store (s, mdigest, &r, &err), 0);
  autofree char *cfg_list = xasprintf ("%s/cfglist", g_dir);
  sh ("cd '%s/blobs/sha256' && for f in *; do case $f in %s|%s) ;; *) echo $f;; esac; done > '%s'", dir,
      digest_hex (mdigest), digest_hex (g_blob), cfg_list);
  FILE *f = fopen (cfg_list, "r");
  assert_non_null (f);
  char hex[80] = "";
  assert_non_null (fgets (hex, sizeof hex, f));
  fclose (f);
  hex[strcspn (hex, "\n")] = '\0';
  autofree char *cpath = xasprintf ("%s/blobs/sha256/%s", dir, hex);
  put_file_blob (s, cpath);
  assert_int_equal (local_image_from_store (s, mdigest, &r, &err), 0);
  /* With the layer (extracted from the layout): complete. */
  assert_ok (local_image_from_layout (s, dir, "v1", NULL, NULL, NULL, &r, &err), err);
  store_fetch_result_clear (&r);
  assert_int_equal (local_image_from_store (s, mdigest, &r, &err), 1);
  assert_string_equal (r.manifest_digest, mdigest);
  assert_int_equal (r.n_layers, 1);
  assert_string_equal (r.layers[0].diff_id, g_diff);
  assert_int_equal (r.layers[0].how, STORE_FETCH_CACHED);
  store_fetch_result_clear (&r);
  /* Not a digest. */
  assert_int_equal (local_image_from_store (s, "sha256:xyz", &r, &err), -1);
  store_close (s);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_layout_extract_then_cached),
    cmocka_unit_test (test_layout_index),
    cmocka_unit_test (test_layout_refused),
    cmocka_unit_test (test_from_store),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
