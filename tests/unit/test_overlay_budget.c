/* test_overlay_budget.c - what a step can make kiln's overlay hold in memory
 * (issue 16, item 7): the path length a commit accepts. Drives overlay_model
 * directly (no mount, no root); the numbers pinned here are the documented
 * ones (docs/design/overlay.md, "Memory bounds").
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "overlay/overlay.h"
#include "overlay/overlay_model.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

typedef struct fx
{
  char *tmp;
  int tmpfd;
  overlay_model *m;
} fx;

static int
setup (void **state)
{
  fx *f = xzalloc (sizeof *f);
  autoerror kiln_error *err = NULL;
  f->tmp = test_mkdtemp (&f->tmpfd);
  overlay_config cfg = { .scratch_dirfd = f->tmpfd, .id_mode = OVERLAY_IDS_FULL };
  assert_ok (overlay_model_new (&cfg, &f->m, &err), err);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  fx *f = *state;
  overlay_model_free (f->m);
  close (f->tmpfd);
  test_rmtree (f->tmp);
  free (f->tmp);
  free (f);
  return 0;
}

/* mknod of any type under parent; returns the new inode number. */
static uint64_t
mk (overlay_model *m, uint64_t parent, const char *name, mode_t mode)
{
  struct stat st;
  int ret = overlay_model_mknod (m, parent, name, mode, 0, NULL, 0, 0, &st);
  if (ret < 0)
    fail_msg ("mknod '%s': %s", name, strerror (-ret));
  return st.st_ino;
}

/* nested directories of `len`-byte names until the path is `total` bytes
 * long (the last name shorter); returns the deepest directory. */
static uint64_t
nest (overlay_model *m, uint64_t dir, size_t len, size_t total)
{
  char name[256];
  size_t path = 0;
  for (int depth = 0; path < total; depth++)
    {
      size_t room = total - path - (path ? 1 : 0), l = len < room ? len : room;
      if (room - l == 1)
        l--; /* leave room for "/" and a name of one byte */
      memset (name, 'a' + depth % 26, l);
      name[l] = '\0';
      dir = mk (m, dir, name, S_IFDIR | 0755);
      path += (path ? 1 : 0) + l;
    }
  return dir;
}

/* A layer path is at most 4096 bytes (the store's LAYER_INDEX_PATH_MAX):
 * the commit refuses a longer one with ENAMETOOLONG and a clear message,
 * without building a full path per level of the tree. */
static void
test_commit_path_limit (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  overlay_changes *ch = NULL;
  /* exactly 4096 bytes: fine */
  uint64_t deepest = nest (f->m, OVERLAY_ROOT_INO, 255, 4096);
  assert_ok (overlay_model_commit (f->m, &ch, &err), err);
  size_t longest = 0;
  for (size_t i = 0; i < ch->n; i++)
    longest = strlen (ch->v[i].path) > longest ? strlen (ch->v[i].path) : longest;
  assert_int_equal (longest, 4096);
  overlay_changes_free (ch);

  /* one byte more: refused */
  mk (f->m, deepest, "x", S_IFIFO | 0644);
  assert_true (overlay_model_commit (f->m, &ch, &err) < 0);
  assert_int_equal (err->status, ENAMETOOLONG);
  assert_true (test_err_contains (err, "longer than 4096 bytes"));
  assert_true (test_err_contains (err, "'aaaa"));
}

/* 1,500 levels of 255-byte names (what issue 16 measured at 568 MB): the
 * commit fails at once; a tree made and removed within the step is no
 * error at all. */
static void
test_commit_deep_tree (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  overlay_changes *ch = NULL;
  uint64_t top = mk (f->m, OVERLAY_ROOT_INO, "gone", S_IFDIR | 0755);
  nest (f->m, top, 255, 1500 * 256);
  /* the model holds the tree: a name per level */
  struct timespec t0, t1;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  assert_true (overlay_model_commit (f->m, &ch, &err) < 0);
  clock_gettime (CLOCK_MONOTONIC, &t1);
  assert_int_equal (err->status, ENAMETOOLONG);
  double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
  print_message ("# commit of a 1,500-level tree refused in %.2f ms\n", ms);
  assert_true (ms < 1000);
}

static void
test_commit_deep_tree_removed (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  overlay_changes *ch = NULL;
  enum { LEVELS = 20 };
  uint64_t dirs[LEVELS + 1];
  char name[256];
  memset (name, 'n', 255);
  name[255] = '\0';
  uint64_t tmp = mk (f->m, OVERLAY_ROOT_INO, "tmp", S_IFDIR | 0755);
  dirs[0] = mk (f->m, tmp, "t", S_IFDIR | 0755);
  for (int i = 1; i <= LEVELS; i++)
    dirs[i] = mk (f->m, dirs[i - 1], name, S_IFDIR | 0755);
  /* moved to the root and taken apart from below, as rm -r would */
  assert_int_equal (overlay_model_rename (f->m, tmp, "t", OVERLAY_ROOT_INO, "moved", 0), 0);
  for (int i = LEVELS; i > 0; i--)
    assert_int_equal (overlay_model_rmdir (f->m, dirs[i - 1], name), 0);
  assert_int_equal (overlay_model_rmdir (f->m, OVERLAY_ROOT_INO, "moved"), 0);
  assert_ok (overlay_model_commit (f->m, &ch, &err), err);
  assert_int_equal (ch->n, 1);
  assert_string_equal (ch->v[0].path, "tmp");
  overlay_changes_free (ch);
}

int
main (void)
{
  umask (022);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_commit_path_limit, setup, teardown),
    cmocka_unit_test_setup_teardown (test_commit_deep_tree, setup, teardown),
    cmocka_unit_test_setup_teardown (test_commit_deep_tree_removed, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
