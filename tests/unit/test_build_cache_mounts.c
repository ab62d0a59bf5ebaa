/* test_build_cache_mounts.c - the tree stamp that decides whether a cache
 * mount is exported: reads leave it, every kind of change moves it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "build/build_cache_mounts_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void
stamp (int dfd, char out[DIGEST_STRING_SIZE], size_t *n, uint64_t *bytes)
{
  build_cm_tree t;
  autoerror kiln_error *err = NULL;
  assert_ok (build_cm_tree_scan (dfd, &t, &err), err);
  memcpy (out, t.stamp, DIGEST_STRING_SIZE);
  if (n)
    *n = t.n;
  if (bytes)
    *bytes = t.bytes;
  build_cm_tree_free (&t);
}

/* The stamp moved (and becomes the new reference). */
static void
moved (int dfd, char ref[DIGEST_STRING_SIZE], const char *what)
{
  char now[DIGEST_STRING_SIZE];
  stamp (dfd, now, NULL, NULL);
  if (strcmp (now, ref) == 0)
    fail_msg ("the stamp did not move after: %s", what);
  memcpy (ref, now, DIGEST_STRING_SIZE);
}

static void
test_stamp (void **state)
{
  (void) state;
  int dfd;
  autofree char *dir = test_mkdtemp (&dfd);
  test_put_file (dfd, "a", "one", 0644);
  assert_int_equal (mkdirat (dfd, "d", 0755), 0);
  test_put_file (dfd, "d/b", "two!", 0600);
  assert_int_equal (symlinkat ("/etc/passwd", dfd, "d/l"), 0);
  assert_int_equal (mkfifoat (dfd, "fifo", 0644), 0);
  char ref[DIGEST_STRING_SIZE], again[DIGEST_STRING_SIZE];
  size_t n;
  uint64_t bytes;
  stamp (dfd, ref, &n, &bytes);
  /* root, a, d, d/b, d/l: the fifo is not shared; 3 + 4 bytes of data. */
  assert_int_equal (n, 5);
  assert_int_equal (bytes, 7);
  /* Reading changes nothing. */
  char buf[8];
  autoclose int fd = openat (dfd, "d/b", O_RDONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_true (read (fd, buf, sizeof buf) == 4);
  stamp (dfd, again, NULL, NULL);
  assert_string_equal (ref, again);
  /* A rewrite with the same bytes and size (ctime moves). */
  struct timespec ts = { 0, 2 * 1000 * 1000 };
  nanosleep (&ts, NULL);
  test_put_file (dfd, "a", "one", 0644);
  moved (dfd, ref, "rewrite of a");
  assert_int_equal (fchmodat (dfd, "d/b", 0640, 0), 0);
  moved (dfd, ref, "chmod d/b");
  assert_int_equal (unlinkat (dfd, "d/l", 0), 0);
  assert_int_equal (symlinkat ("/etc/group", dfd, "d/l"), 0);
  moved (dfd, ref, "symlink retargeted");
  assert_int_equal (renameat (dfd, "a", dfd, "c"), 0);
  moved (dfd, ref, "rename a -> c");
  assert_int_equal (unlinkat (dfd, "c", 0), 0);
  moved (dfd, ref, "unlink c");
  assert_int_equal (mkdirat (dfd, "e", 0700), 0);
  moved (dfd, ref, "mkdir e");
  close (dfd);
  test_rmtree (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_stamp),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
