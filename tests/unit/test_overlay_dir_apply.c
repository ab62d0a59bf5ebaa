/* test_overlay_dir_apply.c - overlay_dir_apply: layers added on top of a
 * stage's tree (a COPY between two RUN steps under ptrace isolation) must
 * give exactly the tree overlay_dir_new makes of all the layers, and the
 * same change list for the same step afterwards (the set of names that
 * existed at the step's start decides its whiteouts).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "overlay/overlay_dir.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define N_LAYERS 4
static const char *const masks[] = { "proc/", "dev/", "etc/hosts", NULL };

typedef struct fx
{
  char *tmp;
  int tmpfd;
  int nscratch;
} fx;

static void
owner (int dfd, const char *path, uid_t uid)
{
  if (geteuid () == 0)
    assert_int_equal (fchownat (dfd, path, uid, uid, AT_SYMLINK_NOFOLLOW), 0);
}

static void
xattr (int dfd, const char *path, const char *name, const char *value)
{
  char p[PATH_MAX];
  snprintf (p, sizeof p, "/proc/self/fd/%d/%s", dfd, path);
  (void) lsetxattr (p, name, value, strlen (value), 0); /* where the filesystem takes user.* */
}

/* Four layers that replace, delete, empty and re-create what the ones
 * below have, in every combination the merge distinguishes. */
static void
make_layers (int tmpfd)
{
  int l[N_LAYERS];
  for (int i = 0; i < N_LAYERS; i++)
    {
      char nm[16]; /* room for any int: -O1 (make asan) cannot bound i */
      snprintf (nm, sizeof nm, "l%d", i);
      assert_int_equal (mkdirat (tmpfd, nm, 0755), 0);
      l[i] = openat (tmpfd, nm, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      assert_true (l[i] >= 0);
    }
  test_put_file (l[0], "etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0644);
  test_put_file (l[0], "a/f1", "one", 0644);
  test_put_file (l[0], "a/sub/f2", "two", 0600);
  test_put_file (l[0], "d/x", "x", 0644);
  test_put_file (l[0], "d/y/z", "z", 0644);
  test_put_file (l[0], "rep/file", "in a dir", 0644);
  test_put_file (l[0], "f2d", "a file", 0644);
  test_put_file (l[0], "keep/k", "k", 0644);
  test_put_file (l[0], "op/old", "old", 0644);
  test_put_file (l[0], "op/deep/o", "o", 0644);
  test_put_file (l[0], "h1", "hard", 0644);
  assert_int_equal (linkat (l[0], "h1", l[0], "h2", 0), 0);
  assert_int_equal (symlinkat ("a", l[0], "link"), 0);
  assert_int_equal (mkfifoat (l[0], "fifo", 0644), 0);
  assert_int_equal (mkdirat (l[0], "empty", 0755), 0);
  owner (l[0], "keep/k", 1000);

  test_put_file (l[1], ".wh.d", "", 0644);
  test_put_file (l[1], "a/f1", "one-v2", 0644);
  xattr (l[1], "a/f1", "user.x", "v1");
  test_put_file (l[1], "rep", "now a file", 0644);
  test_put_file (l[1], "f2d/in", "now a dir", 0644);
  test_put_file (l[1], "op/.wh..wh..opq", "", 0644);
  test_put_file (l[1], "op/new", "new", 0644);
  assert_int_equal (symlinkat ("keep", l[1], "link2"), 0);
  test_put_file (l[1], "new/dir/deep/file", "deep", 0640);
  owner (l[1], "new/dir", 123);
  assert_int_equal (mkdirat (l[1], "keep", 0700), 0);
  owner (l[1], "keep", 42);
  test_put_file (l[1], ".wh.fifo", "", 0644);

  test_put_file (l[2], ".wh.rep", "", 0644);
  test_put_file (l[2], "d/again", "again", 0644);
  test_put_file (l[2], "a/.wh.sub", "", 0644);
  test_put_file (l[2], "link", "a file now", 0644);
  test_put_file (l[2], "keep/k2", "k2", 0644);
  test_put_file (l[2], "h1", "h1 replaced", 0644);
  assert_int_equal (mkdirat (l[2], "empty", 0711), 0);
  xattr (l[2], "empty", "user.e", "dir");

  test_put_file (l[3], "new/.wh..wh..opq", "", 0644);
  test_put_file (l[3], "new/only", "only", 0644);
  test_put_file (l[3], "a/sub/f3", "three", 0644);
  test_put_file (l[3], "etc/hosts", "127.0.0.1 layer\n", 0644);
  assert_int_equal (mkfifoat (l[3], "fifo", 0600), 0);
  for (int i = 0; i < N_LAYERS; i++)
    close (l[i]);
}

static overlay_lower *
open_named (fx *f, const char *const *names, unsigned n)
{
  autoerror kiln_error *err = NULL;
  char *paths[N_LAYERS + 1] = { 0 };
  for (unsigned i = 0; i < n; i++)
    paths[i] = xasprintf ("%s/%s", f->tmp, names[i]);
  overlay_lower *lower = NULL;
  assert_ok (overlay_lower_open_dirs ((const char *const *) paths, n, &lower, &err), err);
  for (unsigned i = 0; i < n; i++)
    free (paths[i]);
  return lower;
}

static overlay_lower *
open_layers (fx *f, unsigned n)
{
  static const char *const names[N_LAYERS] = { "l0", "l1", "l2", "l3" };
  return open_named (f, names, n);
}

static overlay_dir *
new_tree (fx *f, unsigned n)
{
  autoerror kiln_error *err = NULL;
  char sname[32];
  snprintf (sname, sizeof sname, "scratch%d", f->nscratch++);
  assert_int_equal (mkdirat (f->tmpfd, sname, 0700), 0);
  autoclose int sfd = openat (f->tmpfd, sname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  overlay_dir_config cfg = { .lower = open_layers (f, n), .scratch_dirfd = sfd, .mask_paths = masks };
  overlay_dir *od = NULL;
  assert_ok (overlay_dir_new (&cfg, &od, &err), err);
  return od;
}

/* ---- the tree as the step sees it, one line per name ---- */
static void
describe_xattrs (overlay_dir *od, int fd, const char *path, strbuf *out)
{
  char list[1024], val[256];
  int n = overlay_dir_list_xattr (od, fd, path, list, sizeof list);
  for (int k = 0; k < n; k += (int) strlen (list + k) + 1)
    {
      int vl = overlay_dir_get_xattr (od, fd, path, list + k, val, sizeof val);
      strbuf_addf (out, " %s=%.*s", list + k, vl > 0 ? vl : 0, val);
    }
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static void
describe_tree (overlay_dir *od, int dfd, const char *path, strbuf *out)
{
  int d = openat (dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *dir = fdopendir (d);
  assert_non_null (dir);
  autostrv char **names = NULL;
  for (struct dirent *de; (de = readdir (dir));)
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      strv_push (&names, de->d_name);
  closedir (dir);
  size_t n = strv_len (names);
  if (n > 1)
    qsort (names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n; i++)
    {
      autofree char *p = *path ? xasprintf ("%s/%s", path, names[i]) : xstrdup (names[i]);
      struct stat real, shown;
      assert_int_equal (fstatat (dfd, names[i], &real, AT_SYMLINK_NOFOLLOW), 0);
      overlay_dir_present (od, &real, &shown);
      /* mask placeholders no layer ships are made when the tree is: their times differ */
      bool placeholder = !strcmp (p, "dev") || !strcmp (p, "proc");
      strbuf_addf (out, "%s %o %u:%u mtime %lld.%09ld size %lld", p, shown.st_mode, shown.st_uid, shown.st_gid,
                   placeholder ? 0LL : (long long) shown.st_mtim.tv_sec, placeholder ? 0L : shown.st_mtim.tv_nsec,
                   (long long) (S_ISDIR (shown.st_mode) ? 0 : shown.st_size));
      autoclose int fd = openat (dfd, names[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
      describe_xattrs (od, fd, p, out);
      if (S_ISLNK (real.st_mode))
        {
          char t[256];
          ssize_t tl = readlinkat (dfd, names[i], t, sizeof t);
          strbuf_addf (out, " -> %.*s", (int) (tl > 0 ? tl : 0), t);
        }
      else if (S_ISREG (real.st_mode))
        {
          autofree char *buf = NULL;
          size_t len = 0;
          autoerror kiln_error *err = NULL;
          assert_ok (fs_read_file_at (dfd, names[i], 1 << 16, &buf, &len, &err), err);
          strbuf_addf (out, " data %.*s", (int) len, buf ? buf : "");
        }
      strbuf_addch (out, '\n');
      if (S_ISDIR (real.st_mode))
        {
          autoclose int sub = openat (dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          assert_true (sub >= 0);
          describe_tree (od, sub, p, out);
        }
    }
}

static char *
tree_of (overlay_dir *od)
{
  strbuf out = STRBUF_INIT;
  struct stat real, shown;
  assert_int_equal (fstat (overlay_dir_root_fd (od), &real), 0);
  overlay_dir_present (od, &real, &shown);
  strbuf_addf (&out, "/ %o %u:%u\n", shown.st_mode, shown.st_uid, shown.st_gid);
  describe_tree (od, overlay_dir_root_fd (od), "", &out);
  return strbuf_detach (&out, NULL);
}

/* ---- one step on the tree: its change list ---- */
static void
remove_name (overlay_dir *od, const char *path, bool dir)
{
  int root = overlay_dir_root_fd (od);
  assert_int_equal (unlinkat (root, path, dir ? AT_REMOVEDIR : 0), 0);
  overlay_dir_change c = { .kind = OVERLAY_DIR_REMOVE, .path = path };
  overlay_dir_changed (od, &c);
}

static char *
step_of (overlay_dir *od)
{
  autoerror kiln_error *err = NULL;
  /* names from below the new layers, from them, and re-created by them */
  remove_name (od, "a/sub/f3", false);
  remove_name (od, "a/sub", true);
  remove_name (od, "d/again", false);
  remove_name (od, "keep/k", false);
  remove_name (od, "new/only", false);
  remove_name (od, "op/new", false);
  remove_name (od, "f2d/in", false);
  /* a name the new layers deleted, made and removed again: no whiteout
   * (it did not exist when the step began) */
  test_put_file (overlay_dir_root_fd (od), "d/x", "back", 0644);
  overlay_dir_change w = { .kind = OVERLAY_DIR_WRITE, .path = "d/x" };
  overlay_dir_changed (od, &w);
  remove_name (od, "d/x", false);
  overlay_changes *c = NULL;
  assert_ok (overlay_dir_commit (od, &c, &err), err);
  strbuf out = STRBUF_INIT;
  for (size_t i = 0; i < c->n; i++)
    strbuf_addf (&out, "%d %s %o\n", c->v[i].kind, c->v[i].path, c->v[i].mode);
  overlay_changes_free (c);
  return strbuf_detach (&out, NULL);
}

static void
expect_same (const char *want, const char *got, const char *what)
{
  if (strcmp (want, got))
    {
      /* long: to files for diff(1) */
      FILE *a = fopen ("/tmp/kiln-apply-whole.txt", "w"), *b = fopen ("/tmp/kiln-apply-grown.txt", "w");
      if (a && b)
        {
          fputs (want, a);
          fputs (got, b);
          print_message ("# %s: diff /tmp/kiln-apply-whole.txt /tmp/kiln-apply-grown.txt\n", what);
        }
      if (a)
        fclose (a);
      if (b)
        fclose (b);
      fail_msg ("%s differs", what);
    }
}

/* The tree of layers [0, k) plus layers [k, N) applied, in steps of
 * `stride` layers, against the tree made of all N at once. */
static void
check_split (fx *f, unsigned k, unsigned stride)
{
  autoerror kiln_error *err = NULL;
  overlay_dir *whole = new_tree (f, N_LAYERS), *grown = new_tree (f, k);
  for (unsigned at = k; at < N_LAYERS;)
    {
      unsigned to = at + stride < N_LAYERS ? at + stride : N_LAYERS;
      assert_ok (overlay_dir_apply (grown, open_layers (f, to), at, &err), err);
      assert_ok (overlay_dir_begin_step (grown, 0, 0, masks), err);
      at = to;
    }
  autofree char *tw = tree_of (whole), *tg = tree_of (grown);
  char what[64];
  snprintf (what, sizeof what, "tree (split %u, stride %u)", k, stride);
  expect_same (tw, tg, what);
  autofree char *sw = step_of (whole), *sg = step_of (grown);
  snprintf (what, sizeof what, "step (split %u, stride %u)", k, stride);
  expect_same (sw, sg, what);
  overlay_dir_free (whole);
  overlay_dir_free (grown);
}

static void
test_apply_equals_new (void **state)
{
  fx *f = *state;
  for (unsigned k = 0; k < N_LAYERS; k++)
    {
      check_split (f, k, N_LAYERS);
      check_split (f, k, 1);
    }
}

/* A step's own changes, committed, stay under the applied layers: what a
 * new layer does not touch keeps the step's content and owners. */
static void
test_apply_after_step (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  overlay_dir *od = new_tree (f, 1);
  int root = overlay_dir_root_fd (od);
  test_put_file (root, "made/by/step", "step", 0644);
  overlay_dir_change c = { .kind = OVERLAY_DIR_CREATE, .path = "made" };
  overlay_dir_changed (od, &c);
  c.path = "made/by";
  overlay_dir_changed (od, &c);
  c = (overlay_dir_change) { .kind = OVERLAY_DIR_WRITE, .path = "made/by/step", .uid = 7, .gid = 7 };
  overlay_dir_changed (od, &c);
  overlay_changes *ch = NULL;
  assert_ok (overlay_dir_commit (od, &ch, &err), err);
  overlay_changes_free (ch);
  /* the step's layer as the build publishes it, then two more */
  test_put_file (f->tmpfd, "s1/made/by/step", "step", 0644);
  static const char *const names[] = { "l0", "s1", "l1", "l2" };
  assert_ok (overlay_dir_apply (od, open_named (f, names, 4), 2, &err), err);
  struct stat real, shown;
  assert_int_equal (fstatat (root, "made/by/step", &real, AT_SYMLINK_NOFOLLOW), 0);
  overlay_dir_present (od, &real, &shown);
  assert_int_equal (shown.st_uid, 7);
  assert_int_equal (fstatat (root, "d/again", &real, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (fstatat (root, "d/x", &real, AT_SYMLINK_NOFOLLOW), -1);
  assert_int_equal (errno, ENOENT);
  /* the step's name is in a layer below now: removing it is a whiteout */
  assert_ok (overlay_dir_begin_step (od, 0, 0, masks), err);
  remove_name (od, "made/by/step", false);
  assert_ok (overlay_dir_commit (od, &ch, &err), err);
  bool wh = false;
  for (size_t i = 0; i < ch->n; i++)
    wh |= ch->v[i].kind == OVERLAY_CHANGE_WHITEOUT && !strcmp (ch->v[i].path, "made/by/step");
  assert_true (wh);
  overlay_changes_free (ch);
  overlay_dir_free (od);
}

static void
test_apply_bad_range (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  overlay_dir *od = new_tree (f, 2);
  assert_true (overlay_dir_apply (od, open_layers (f, 1), 2, &err) < 0);
  assert_true (test_err_contains (err, "apply layers"));
  overlay_dir_free (od);
}

static int
setup (void **state)
{
  fx *f = xzalloc (sizeof *f);
  f->tmp = test_mkdtemp (&f->tmpfd);
  umask (022);
  make_layers (f->tmpfd);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  fx *f = *state;
  close (f->tmpfd);
  test_rmtree (f->tmp);
  free (f->tmp);
  free (f);
  return 0;
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_apply_equals_new, setup, teardown),
    cmocka_unit_test_setup_teardown (test_apply_after_step, setup, teardown),
    cmocka_unit_test_setup_teardown (test_apply_bad_range, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
