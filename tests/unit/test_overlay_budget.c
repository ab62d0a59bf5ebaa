/* test_overlay_budget.c - what a step can make kiln's overlay hold in memory
 * (issue 16, item 7): shared directory listings and their budget, the xattr
 * budget, and the path length a commit accepts. Drives overlay_model
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

#define XATTR_BUDGET ((size_t) 16 << 20)
#define XATTRS_PER_FILE 4096
#define LISTING_BUDGET ((size_t) 64 << 20)

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

static bool
listing_has (const overlay_listing *l, const char *name)
{
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp (l->v[i].name, name))
      return true;
  return false;
}

/* Handles of an unchanged directory share one listing; a change makes the
 * next opendir take a new one and leaves the old one intact for its holders. */
static void
test_listing_shared_and_stale (void **state)
{
  fx *f = *state;
  uint64_t d = mk (f->m, OVERLAY_ROOT_INO, "d", S_IFDIR | 0755);
  char nm[32];
  for (int i = 0; i < 1000; i++)
    {
      snprintf (nm, sizeof nm, "e%04d", i);
      mk (f->m, d, nm, S_IFIFO | 0644);
    }
  overlay_listing *a = NULL, *b = NULL, *c = NULL, *e = NULL;
  assert_int_equal (overlay_model_opendir (f->m, d, &a), 0);
  assert_int_equal (overlay_model_opendir (f->m, d, &b), 0);
  assert_ptr_equal (a, b);
  assert_int_equal (a->n, 1000);
  for (size_t i = 1; i < a->n; i++)
    assert_true (strcmp (a->v[i - 1].name, a->v[i].name) < 0);
  assert_int_equal (a->v[0].type, S_IFIFO);

  mk (f->m, d, "new", S_IFREG | 0644);
  assert_int_equal (overlay_model_opendir (f->m, d, &c), 0);
  assert_ptr_not_equal (c, a);
  assert_int_equal (c->n, 1001);
  assert_true (listing_has (c, "new"));
  assert_int_equal (a->n, 1000);
  assert_false (listing_has (a, "new"));

  /* closing every handle of the old snapshot leaves the new one shared */
  overlay_model_closedir (f->m, a);
  overlay_model_closedir (f->m, b);
  assert_int_equal (overlay_model_opendir (f->m, d, &e), 0);
  assert_ptr_equal (e, c);
  overlay_model_closedir (f->m, e);

  /* a removal makes it stale as well */
  assert_int_equal (overlay_model_unlink (f->m, d, "new"), 0);
  assert_int_equal (overlay_model_opendir (f->m, d, &e), 0);
  assert_ptr_not_equal (e, c);
  assert_false (listing_has (e, "new"));
  assert_true (listing_has (c, "new"));
  overlay_model_closedir (f->m, c);
  overlay_model_closedir (f->m, e);

  /* the last close drops the cache: nothing stays behind */
  assert_int_equal (overlay_model_opendir (f->m, d, &e), 0);
  assert_int_equal (e->n, 1000);
  overlay_model_closedir (f->m, e);
}

/* A step that changes a directory between opendirs and keeps every handle
 * gets ENOMEM once the snapshots would pass 64 MiB, with a notice; closing
 * handles gives the room back. */
static void
test_listing_budget (void **state)
{
  fx *f = *state;
  uint64_t d = mk (f->m, OVERLAY_ROOT_INO, "big", S_IFDIR | 0755);
  char nm[64];
  for (int i = 0; i < 10000; i++)
    {
      snprintf (nm, sizeof nm, "a-fairly-long-file-name-%06d", i);
      mk (f->m, d, nm, S_IFIFO | 0644);
    }
  enum { MAX_HELD = 400 };
  overlay_listing *held[MAX_HELD];
  size_t n = 0, bytes = 0;
  int ret = 0;
  for (; n < MAX_HELD; n++)
    {
      if ((ret = overlay_model_opendir (f->m, d, &held[n])) < 0)
        break;
      bytes += held[n]->bytes;
      snprintf (nm, sizeof nm, "churn-%zu", n);
      mk (f->m, d, nm, S_IFIFO | 0644);
    }
  assert_int_equal (ret, -ENOMEM);
  print_message ("# %zu snapshots of a 10,000-entry directory held (%zu bytes) before ENOMEM\n", n, bytes);
  assert_true (bytes <= LISTING_BUDGET);
  assert_true (bytes + held[n - 1]->bytes > LISTING_BUDGET);
  char *msg = overlay_model_take_notice (f->m);
  assert_non_null (msg);
  assert_non_null (strstr (msg, "64 MiB"));
  assert_non_null (strstr (msg, "ENOMEM"));
  free (msg);
  assert_null (overlay_model_take_notice (f->m));
  /* refused again: no second notice before the next commit */
  assert_int_equal (overlay_model_opendir (f->m, d, &held[n]), -ENOMEM);
  assert_null (overlay_model_take_notice (f->m));
  /* room again once a handle goes; an unchanged directory shares it... */
  overlay_listing *again = NULL;
  overlay_model_closedir (f->m, held[0]);
  assert_int_equal (overlay_model_opendir (f->m, d, &again), 0);
  overlay_listing *same = NULL;
  assert_int_equal (overlay_model_opendir (f->m, d, &same), 0);
  assert_ptr_equal (same, again);
  overlay_model_closedir (f->m, same);
  overlay_model_closedir (f->m, again);
  for (size_t i = 1; i < n; i++)
    overlay_model_closedir (f->m, held[i]);
  /* ...and a lone listing is always granted, however big */
  assert_int_equal (overlay_model_opendir (f->m, d, &again), 0);
  overlay_model_closedir (f->m, again);
}

/* xattrs: 16 MiB per mount (names + values + bookkeeping), ENOSPC beyond,
 * shrinking and removing always work and give the room back. */
static void
test_xattr_budget (void **state)
{
  fx *f = *state;
  uint64_t a = mk (f->m, OVERLAY_ROOT_INO, "a", S_IFREG | 0644);
  uint64_t b = mk (f->m, OVERLAY_ROOT_INO, "b", S_IFDIR | 0755);
  autofree char *val = xmalloc (65536);
  memset (val, 'v', 65536);
  char nm[64];
  int ret = 0;
  size_t set = 0;
  for (; set < 1000; set++)
    {
      snprintf (nm, sizeof nm, "user.big.%zu", set);
      if ((ret = overlay_model_setxattr (f->m, set % 2 ? a : b, nm, val, 65536, 0)) < 0)
        break;
    }
  assert_int_equal (ret, -ENOSPC);
  print_message ("# %zu xattrs of 64 KiB set before ENOSPC\n", set);
  assert_true (set >= 250 && set <= 256);
  char *msg = overlay_model_take_notice (f->m);
  assert_non_null (msg);
  assert_non_null (strstr (msg, "16 MiB"));
  free (msg);
  assert_null (overlay_model_take_notice (f->m));
  /* small ones still fit in what is left; a big replacement does not */
  assert_int_equal (overlay_model_setxattr (f->m, a, "user.small", "x", 1, 0), 0);
  assert_int_equal (overlay_model_setxattr (f->m, a, "user.small", val, 65536, 0), -ENOSPC);
  /* shrinking a value is always allowed */
  assert_int_equal (overlay_model_setxattr (f->m, b, "user.big.0", "y", 1, XATTR_REPLACE), 0);
  char got[8];
  assert_int_equal (overlay_model_getxattr (f->m, b, "user.big.0", got, sizeof got), 1);
  /* which made room for one more big one */
  assert_int_equal (overlay_model_setxattr (f->m, a, "user.after-shrink", val, 65536, 0), 0);
  assert_int_equal (overlay_model_setxattr (f->m, a, "user.one-more", val, 65536, 0), -ENOSPC);
  /* removing gives room back */
  assert_int_equal (overlay_model_removexattr (f->m, a, "user.big.1"), 0);
  assert_int_equal (overlay_model_setxattr (f->m, a, "user.one-more", val, 65536, 0), 0);
  /* no second notice before a commit; after one, a refusal notices again */
  assert_int_equal (overlay_model_setxattr (f->m, a, "user.refused", val, 65536, 0), -ENOSPC);
  assert_null (overlay_model_take_notice (f->m));
  overlay_changes *ch = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (overlay_model_commit (f->m, &ch, &err), err);
  overlay_changes_free (ch);
  assert_int_equal (overlay_model_setxattr (f->m, a, "user.refused", val, 65536, 0), -ENOSPC);
  msg = overlay_model_take_notice (f->m);
  assert_non_null (msg);
  free (msg);
}

/* The budget is live: a file's xattrs leave it when the file goes away. */
static void
test_xattr_budget_freed_with_inode (void **state)
{
  fx *f = *state;
  autofree char *val = xmalloc (65536);
  memset (val, 'v', 65536);
  char nm[64];
  for (int round = 0; round < 3; round++)
    {
      uint64_t a = mk (f->m, OVERLAY_ROOT_INO, "victim", S_IFREG | 0644);
      for (int i = 0; i < 200; i++)
        {
          snprintf (nm, sizeof nm, "user.x.%d", i);
          assert_int_equal (overlay_model_setxattr (f->m, a, nm, val, 65536, 0), 0);
        }
      assert_int_equal (overlay_model_unlink (f->m, OVERLAY_ROOT_INO, "victim"), 0);
      overlay_model_forget (f->m, a, 1); /* mk's lookup reference */
    }
}

/* At most 4096 xattrs on one file: the store's layer index takes no more
 * for one entry, so more could never be committed. */
static void
test_xattr_count_per_file (void **state)
{
  fx *f = *state;
  uint64_t a = mk (f->m, OVERLAY_ROOT_INO, "a", S_IFREG | 0644);
  uint64_t b = mk (f->m, OVERLAY_ROOT_INO, "b", S_IFREG | 0644);
  char nm[64];
  for (int i = 0; i < XATTRS_PER_FILE; i++)
    {
      snprintf (nm, sizeof nm, "user.n%d", i);
      assert_int_equal (overlay_model_setxattr (f->m, a, nm, "1", 1, 0), 0);
    }
  assert_int_equal (overlay_model_setxattr (f->m, a, "user.one-too-many", "1", 1, 0), -ENOSPC);
  /* replacing one of them is fine, and so is another file */
  assert_int_equal (overlay_model_setxattr (f->m, a, "user.n7", "22", 2, 0), 0);
  assert_int_equal (overlay_model_setxattr (f->m, b, "user.one-too-many", "1", 1, 0), 0);
  overlay_changes *ch = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (overlay_model_commit (f->m, &ch, &err), err);
  const overlay_change *ca = NULL;
  for (size_t i = 0; i < ch->n; i++)
    if (!strcmp (ch->v[i].path, "a"))
      ca = &ch->v[i];
  assert_non_null (ca);
  assert_int_equal (ca->n_xattrs, XATTRS_PER_FILE);
  overlay_changes_free (ch);
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
    cmocka_unit_test_setup_teardown (test_listing_shared_and_stale, setup, teardown),
    cmocka_unit_test_setup_teardown (test_listing_budget, setup, teardown),
    cmocka_unit_test_setup_teardown (test_xattr_budget, setup, teardown),
    cmocka_unit_test_setup_teardown (test_xattr_budget_freed_with_inode, setup, teardown),
    cmocka_unit_test_setup_teardown (test_xattr_count_per_file, setup, teardown),
    cmocka_unit_test_setup_teardown (test_commit_path_limit, setup, teardown),
    cmocka_unit_test_setup_teardown (test_commit_deep_tree, setup, teardown),
    cmocka_unit_test_setup_teardown (test_commit_deep_tree_removed, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
