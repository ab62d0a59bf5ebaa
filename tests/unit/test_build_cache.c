/* test_build_cache.c - build cache keys: what changes a key and what must not. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "build/build_cache.h"
#include "util/alloc.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
key_of (const char *prev, const layer_change *ch, size_t n, char out[DIGEST_STRING_SIZE])
{
  build_cache_key k;
  build_cache_key_begin (&k, prev);
  build_cache_key_add (&k, "kind", "COPY");
  kiln_error *err = NULL;
  assert_int_equal (build_cache_key_add_changes (&k, ch, n, &err), 0);
  build_cache_key_end (&k, out);
}

static layer_change
file_change (int dirfd, const char *path, const char *data_path, int64_t mtime)
{
  layer_change c = { .path = path, .kind = LAYER_CHANGE_ADD, .data_dirfd = dirfd, .data_path = data_path };
  c.meta.type = LAYER_INDEX_REG;
  c.meta.mode = 0644;
  c.meta.mtime_sec = mtime;
  return c;
}

static void
test_content_not_mtime (void **state)
{
  (void) state;
  int fd;
  autofree char *dir = test_mkdtemp (&fd);
  test_write_file (fd, "a", "hello");
  test_write_file (fd, "b", "hello");
  test_write_file (fd, "c", "world");
  char k1[DIGEST_STRING_SIZE], k2[DIGEST_STRING_SIZE], k3[DIGEST_STRING_SIZE], k4[DIGEST_STRING_SIZE];
  layer_change one[] = { file_change (fd, "x/f", "a", 1000) };
  key_of ("seed", one, 1, k1);
  /* Same content from another file and another mtime: same key. */
  layer_change two[] = { file_change (fd, "x/f", "b", 99999) };
  key_of ("seed", two, 1, k2);
  assert_string_equal (k1, k2);
  /* Other content: another key. */
  layer_change three[] = { file_change (fd, "x/f", "c", 1000) };
  key_of ("seed", three, 1, k3);
  assert_string_not_equal (k1, k3);
  /* Another previous key: another key. */
  key_of ("other seed", one, 1, k4);
  assert_string_not_equal (k1, k4);
  close (fd);
  test_rmtree (dir);
}

static void
test_metadata_and_order (void **state)
{
  (void) state;
  int fd;
  autofree char *dir = test_mkdtemp (&fd);
  test_write_file (fd, "a", "hello");
  char k1[DIGEST_STRING_SIZE], k2[DIGEST_STRING_SIZE], k3[DIGEST_STRING_SIZE], k4[DIGEST_STRING_SIZE];
  layer_change d = { .path = "x", .kind = LAYER_CHANGE_ADD };
  d.meta.type = LAYER_INDEX_DIR;
  d.meta.mode = 0755;
  layer_change ab[] = { d, file_change (fd, "x/f", "a", 1) };
  layer_change ba[] = { file_change (fd, "x/f", "a", 1), d };
  key_of ("s", ab, 2, k1);
  key_of ("s", ba, 2, k2);
  assert_string_equal (k1, k2); /* any order */
  ab[1].meta.mode = 0755;
  key_of ("s", ab, 2, k3);
  assert_string_not_equal (k1, k3); /* mode */
  ab[1].meta.mode = 0644;
  ab[1].meta.uid = 1000;
  key_of ("s", ab, 2, k4);
  assert_string_not_equal (k1, k4); /* owner */
  /* A whiteout differs from an opaque marker at the same path. */
  layer_change w[] = { { .path = "x", .kind = LAYER_CHANGE_WHITEOUT } };
  layer_change o[] = { { .path = "x", .kind = LAYER_CHANGE_OPAQUE } };
  key_of ("s", w, 1, k1);
  key_of ("s", o, 1, k2);
  assert_string_not_equal (k1, k2);
  close (fd);
  test_rmtree (dir);
}

static void
test_fields_are_delimited (void **state)
{
  (void) state;
  /* ("ab","c") and ("a","bc") must not collide. */
  char k1[DIGEST_STRING_SIZE], k2[DIGEST_STRING_SIZE], k3[DIGEST_STRING_SIZE];
  build_cache_key k;
  build_cache_key_begin (&k, "p");
  build_cache_key_add (&k, "arg", "ab");
  build_cache_key_add (&k, "arg", "c");
  build_cache_key_end (&k, k1);
  build_cache_key_begin (&k, "p");
  build_cache_key_add (&k, "arg", "a");
  build_cache_key_add (&k, "arg", "bc");
  build_cache_key_end (&k, k2);
  assert_string_not_equal (k1, k2);
  /* NULL (an ARG without value) differs from "". */
  build_cache_key_begin (&k, "p");
  build_cache_key_add (&k, "value", NULL);
  build_cache_key_end (&k, k1);
  build_cache_key_begin (&k, "p");
  build_cache_key_add (&k, "value", "");
  build_cache_key_end (&k, k3);
  assert_string_not_equal (k1, k3);
}

static void
test_missing_data_is_an_error (void **state)
{
  (void) state;
  int fd;
  autofree char *dir = test_mkdtemp (&fd);
  layer_change c[] = { file_change (fd, "f", "does-not-exist", 1) };
  build_cache_key k;
  build_cache_key_begin (&k, "s");
  kiln_error *err = NULL;
  assert_true (build_cache_key_add_changes (&k, c, 1, &err) < 0);
  assert_true (test_err_contains (err, "'f'"));
  kiln_error_free (err);
  build_cache_key_abort (&k);
  close (fd);
  test_rmtree (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_content_not_mtime),
    cmocka_unit_test (test_metadata_and_order),
    cmocka_unit_test (test_fields_are_delimited),
    cmocka_unit_test (test_missing_data_is_an_error),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
