/* test_fsutil.c - safe path resolution, mkdir -p, atomic write, rm -rf. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct fx
{
  char *tmp;    /* temp dir path */
  int tmpfd;
  int rootfd;   /* tmp/root */
} fx;

static int
setup (void **state)
{
  fx *f = xzalloc (sizeof *f);
  f->tmp = test_mkdtemp (&f->tmpfd);
  assert_int_equal (mkdirat (f->tmpfd, "root", 0755), 0);
  f->rootfd = openat (f->tmpfd, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (f->rootfd >= 0);
  test_write_file (f->tmpfd, "outside", "secret");
  assert_int_equal (mkdirat (f->tmpfd, "outdir", 0755), 0);
  test_write_file (f->tmpfd, "outdir/keep", "keep me");
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  fx *f = *state;
  close (f->rootfd);
  close (f->tmpfd);
  test_rmtree (f->tmp);
  free (f->tmp);
  free (f);
  return 0;
}

static char *
read_fd_str (int fd)
{
  char *buf = NULL;
  size_t len;
  autoerror kiln_error *err = NULL;
  int r = fs_read_fd (fd, 1 << 20, &buf, &len, &err);
  assert_ok (r, err);
  return buf;
}

/* The tree used by the resolution tests, built inside root. */
static void
make_links (fx *f)
{
  test_write_file (f->rootfd, "outside", "decoy in root");
  assert_int_equal (mkdirat (f->rootfd, "sub", 0755), 0);
  test_write_file (f->rootfd, "sub/f", "inside");
  autofree char *abs_out = xasprintf ("%s/outside", f->tmp);
  assert_int_equal (symlinkat (abs_out, f->rootfd, "abs"), 0);
  assert_int_equal (symlinkat ("../outside", f->rootfd, "rel"), 0);
  assert_int_equal (symlinkat ("../../../../../../outside", f->rootfd, "reldeep"), 0);
  assert_int_equal (symlinkat ("c2", f->rootfd, "c1"), 0);
  assert_int_equal (symlinkat ("sub/../c3", f->rootfd, "c2"), 0);
  assert_int_equal (symlinkat ("../outside", f->rootfd, "c3"), 0);
  assert_int_equal (symlinkat ("/sub/f", f->rootfd, "absin"), 0);
  assert_int_equal (symlinkat ("l2", f->rootfd, "l1"), 0);
  assert_int_equal (symlinkat ("l1", f->rootfd, "l2"), 0);
  assert_int_equal (symlinkat ("..", f->rootfd, "up"), 0);
  assert_int_equal (symlinkat ("/newfile", f->rootfd, "dangling"), 0);
  assert_int_equal (symlinkat ("sub", f->rootfd, "subl"), 0);
  assert_int_equal (symlinkat ("/outside", f->rootfd, "sub/absup"), 0);
  assert_int_equal (symlinkat ("/../sub/../../outside", f->rootfd, "sub/absdots"), 0);
}

static const int modes[] = { 0, FS_RESOLVE_FORCE_FALLBACK };

static void
expect_content (fx *f, const char *path, int resolve, const char *want)
{
  autoerror kiln_error *err = NULL;
  int fd = fs_open_in_root (f->rootfd, path, O_RDONLY, 0, resolve, &err);
  if (fd < 0)
    fail_msg ("open '%s' (resolve %#x): %s", path, resolve, err->msg);
  autofree char *s = read_fd_str (fd);
  close (fd);
  if (strcmp (s, want) != 0)
    fail_msg ("open '%s' (resolve %#x): got '%s', want '%s'", path, resolve, s, want);
}

static void
expect_errno (fx *f, const char *path, int flags, int resolve, int want)
{
  autoerror kiln_error *err = NULL;
  int fd = fs_open_in_root (f->rootfd, path, flags, 0, resolve, &err);
  if (fd >= 0)
    {
      autofree char *s = read_fd_str (fd);
      close (fd);
      fail_msg ("open '%s' (resolve %#x) succeeded with '%s', want errno %d", path, resolve, s, want);
    }
  assert_non_null (err);
  if (err->status != want)
    fail_msg ("open '%s' (resolve %#x): errno %d (%s), want %d", path, resolve, err->status, err->msg, want);
}

static void
test_in_root_clamps_escapes (void **state)
{
  fx *f = *state;
  make_links (f);
  for (size_t m = 0; m < ARRAY_SIZE (modes); m++)
    {
      int r = FS_RESOLVE_IN_ROOT | modes[m];
      autofree char *abs_out = xasprintf ("%s/outside", f->tmp);
      /* The absolute link target is looked up inside root, where it does
       * not exist: the host file must not be reached. */
      expect_errno (f, "abs", O_RDONLY, r, ENOENT);
      expect_errno (f, abs_out, O_RDONLY, r, ENOENT);
      /* Relative escapes are clamped at the root: they reach root/outside. */
      expect_content (f, "rel", r, "decoy in root");
      expect_content (f, "reldeep", r, "decoy in root");
      expect_content (f, "c1", r, "decoy in root");
      expect_content (f, "../outside", r, "decoy in root");
      expect_content (f, "/../../outside", r, "decoy in root");
      expect_content (f, "up/up/outside", r, "decoy in root");
      expect_content (f, "absin", r, "inside");
      expect_content (f, "sub/absup", r, "decoy in root");
      expect_content (f, "subl/absdots", r, "decoy in root");
      expect_content (f, "subl/f", r, "inside");
      expect_content (f, "subl/../sub/./f", r, "inside");
      expect_content (f, "/sub/f", r, "inside");
      expect_errno (f, "l1", O_RDONLY, r, ELOOP);
      expect_errno (f, "sub/f/x", O_RDONLY, r, ENOTDIR);
      expect_errno (f, "subl", O_RDONLY | O_NOFOLLOW, r, ELOOP);
      expect_errno (f, "rel", O_RDONLY, r | FS_RESOLVE_NO_SYMLINKS, ELOOP);
    }
}

static void
test_beneath_rejects_escapes (void **state)
{
  fx *f = *state;
  make_links (f);
  for (size_t m = 0; m < ARRAY_SIZE (modes); m++)
    {
      int r = FS_RESOLVE_BENEATH | modes[m];
      expect_errno (f, "abs", O_RDONLY, r, EXDEV);
      expect_errno (f, "rel", O_RDONLY, r, EXDEV);
      expect_errno (f, "c1", O_RDONLY, r, EXDEV);
      expect_errno (f, "../outside", O_RDONLY, r, EXDEV);
      expect_errno (f, "up/outside", O_RDONLY, r, EXDEV);
      expect_errno (f, "/sub/f", O_RDONLY, r, EXDEV);
      expect_errno (f, "sub/absup", O_RDONLY, r, EXDEV);
      expect_content (f, "subl/f", r, "inside");
      expect_content (f, "sub/../outside", r, "decoy in root");
    }
}

static void
test_open_create_and_opath (void **state)
{
  fx *f = *state;
  make_links (f);
  for (size_t m = 0; m < ARRAY_SIZE (modes); m++)
    {
      int r = FS_RESOLVE_IN_ROOT | modes[m];
      autoerror kiln_error *err = NULL;
      /* Creating through a dangling absolute link creates inside root. */
      int fd = fs_open_in_root (f->rootfd, "dangling", O_WRONLY | O_CREAT, 0600, r, &err);
      assert_ok (fd, err);
      close (fd);
      struct stat st;
      assert_int_equal (fstatat (f->rootfd, "newfile", &st, 0), 0);
      assert_int_equal (st.st_mode & 07777, 0600);
      assert_int_equal (unlinkat (f->rootfd, "newfile", 0), 0);
      /* O_PATH|O_NOFOLLOW opens the link itself. */
      fd = fs_open_in_root (f->rootfd, "subl", O_PATH | O_NOFOLLOW, 0, r, &err);
      assert_ok (fd, err);
      assert_int_equal (fstat (fd, &st), 0);
      assert_true (S_ISLNK (st.st_mode));
      close (fd);
      /* A trailing slash follows the link and requires a directory. */
      fd = fs_open_in_root (f->rootfd, "subl/", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, r, &err);
      assert_ok (fd, err);
      close (fd);
      /* The empty path is the root itself. */
      fd = fs_open_in_root (f->rootfd, "", O_RDONLY | O_DIRECTORY, 0, r, &err);
      assert_ok (fd, err);
      assert_int_equal (fstat (fd, &st), 0);
      struct stat rst;
      assert_int_equal (fstat (f->rootfd, &rst), 0);
      assert_int_equal (st.st_ino, rst.st_ino);
      close (fd);
    }
}

/* Differential test: the fallback must agree with the kernel's openat2 on
 * many generated paths (same inode, or the same errno). */
static void
test_fallback_matches_kernel (void **state)
{
  fx *f = *state;
  if (!fs_have_openat2 ())
    test_skip ("kernel has no openat2 to compare with");
  make_links (f);
  assert_int_equal (symlinkat ("sub/f/", f->rootfd, "filedir"), 0);
  assert_int_equal (symlinkat ("missing/x", f->rootfd, "dang2"), 0);
  static const char *const comps[] = { "..", ".", "sub", "subl", "up", "rel", "c1", "abs", "absin",
                                       "f", "absup", "absdots", "outside", "l1", "filedir",
                                       "dang2", "dangling", "nope", "" };
  static const int flagsets[] = { O_PATH, O_PATH | O_NOFOLLOW, O_RDONLY, O_RDONLY | O_DIRECTORY };
  static const int res[] = { FS_RESOLVE_IN_ROOT, FS_RESOLVE_BENEATH };
  uint64_t x = 42;
  int compared = 0;
  for (int iter = 0; iter < 3000; iter++)
    {
      char path[256] = "";
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      int n = 1 + (int) ((x >> 33) % 4);
      if ((x >> 40) % 5 == 0)
        strcat (path, "/");
      for (int k = 0; k < n; k++)
        {
          x = x * 6364136223846793005ULL + 1442695040888963407ULL;
          if (k)
            strcat (path, "/");
          strcat (path, comps[(x >> 33) % ARRAY_SIZE (comps)]);
        }
      if ((x >> 45) % 7 == 0)
        strcat (path, "/");
      int flags = flagsets[(x >> 50) % ARRAY_SIZE (flagsets)];
      int r = res[(x >> 55) % 2];
      kiln_error *e1 = NULL, *e2 = NULL;
      int fd1 = fs_open_in_root (f->rootfd, path, flags, 0, r, &e1);
      int fd2 = fs_open_in_root (f->rootfd, path, flags, 0, r | FS_RESOLVE_FORCE_FALLBACK, &e2);
      if ((fd1 < 0) != (fd2 < 0))
        fail_msg ("'%s' (flags %#x resolve %d): kernel %s, fallback %s", path, flags, r,
                  fd1 < 0 ? e1->msg : "ok", fd2 < 0 ? e2->msg : "ok");
      if (fd1 < 0)
        {
          if (e1->status != e2->status)
            fail_msg ("'%s' (flags %#x resolve %d): kernel errno %d, fallback %d (%s)", path, flags, r,
                      e1->status, e2->status, e2->msg);
        }
      else
        {
          struct stat s1, s2;
          assert_int_equal (fstat (fd1, &s1), 0);
          assert_int_equal (fstat (fd2, &s2), 0);
          if (s1.st_ino != s2.st_ino || s1.st_dev != s2.st_dev)
            fail_msg ("'%s' (flags %#x resolve %d): different files", path, flags, r);
          /* The fallback's last openat carries O_NOFOLLOW (and O_DIRECTORY
           * for a trailing slash): visible in the file flags, no effect on
           * an open file. */
          int ign = O_NOFOLLOW | O_DIRECTORY;
          int fl1 = fcntl (fd1, F_GETFL) & ~ign, fl2 = fcntl (fd2, F_GETFL) & ~ign;
          assert_int_equal (fl1, fl2);
          assert_true (fcntl (fd2, F_GETFD) & FD_CLOEXEC);
          close (fd1);
          close (fd2);
          compared++;
        }
      kiln_error_free (e1);
      kiln_error_free (e2);
    }
  assert_true (compared > 100);
}

/* Without openat2 (old kernel, or a seccomp filter answering ENOSYS) the
 * fallback takes over by itself. */
static int
enosys_child (fx *f)
{
  scmp_filter_ctx ctx = seccomp_init (SCMP_ACT_ALLOW);
  if (ctx == NULL || seccomp_rule_add (ctx, SCMP_ACT_ERRNO (ENOSYS), SCMP_SYS (openat2), 0) < 0
      || seccomp_load (ctx) < 0)
    return 10;
  seccomp_release (ctx);
  kiln_error *err = NULL;
  /* The parent may have cached "openat2 works": the first ENOSYS must
   * switch to the fallback and remember it. */
  int fd = fs_open_in_root (f->rootfd, "c1", O_RDONLY, 0, FS_RESOLVE_IN_ROOT, &err);
  if (fd < 0)
    return 12;
  if (fs_have_openat2 ())
    return 11;
  char buf[64] = "";
  if (read (fd, buf, sizeof buf - 1) < 0 || strcmp (buf, "decoy in root") != 0)
    return 13;
  close (fd);
  fd = fs_open_in_root (f->rootfd, "rel", O_RDONLY, 0, FS_RESOLVE_BENEATH, &err);
  if (fd >= 0 || err->status != EXDEV)
    return 14;
  kiln_error_free (err);
  return 0;
}

static void
test_enosys_fallback (void **state)
{
  fx *f = *state;
  make_links (f);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    _exit (enosys_child (f));
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status));
  if (WEXITSTATUS (status) == 10)
    test_skip ("cannot install a seccomp filter here");
  assert_int_equal (WEXITSTATUS (status), 0);
}

static void
test_mkdir_p (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  assert_ok (fs_mkdir_p_at (f->rootfd, "a/b//c/", 0755, &err), err);
  assert_ok (fs_mkdir_p_at (f->rootfd, "a/b/c", 0755, &err), err);
  int fd = fs_mkdir_p_open_at (f->rootfd, "/a/b/d", 0700, &err);
  assert_ok (fd, err);
  test_write_file (fd, "x", "y");
  close (fd);
  struct stat st;
  assert_int_equal (fstatat (f->rootfd, "a/b/d/x", &st, 0), 0);

  /* A symlink component is an error, and nothing is created through it. */
  autofree char *outdir = xasprintf ("%s/outdir", f->tmp);
  assert_int_equal (symlinkat (outdir, f->rootfd, "evil"), 0);
  assert_true (fs_mkdir_p_at (f->rootfd, "evil/made", 0755, &err) < 0);
  assert_int_equal (err->status, ELOOP);
  assert_true (test_err_contains (err, "evil"));
  assert_int_equal (fstatat (f->tmpfd, "outdir/made", &st, 0), -1);
  kiln_error_clear (&err);
  assert_int_equal (symlinkat ("../../outdir", f->rootfd, "a/rel"), 0);
  assert_true (fs_mkdir_p_at (f->rootfd, "a/rel/made", 0755, &err) < 0);
  assert_int_equal (err->status, ELOOP);
  kiln_error_clear (&err);
  /* A final symlink component also counts. */
  assert_true (fs_mkdir_p_at (f->rootfd, "evil", 0755, &err) < 0);
  kiln_error_clear (&err);

  test_write_file (f->rootfd, "file", "");
  assert_true (fs_mkdir_p_at (f->rootfd, "file/sub", 0755, &err) < 0);
  assert_int_equal (err->status, ENOTDIR);
  kiln_error_clear (&err);
  assert_true (fs_mkdir_p_at (f->rootfd, "a/../b", 0755, &err) < 0);
  assert_int_equal (err->status, EINVAL);
}

static bool
dir_has_prefix (int dirfd, const char *sub, const char *prefix)
{
  int fd = openat (dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (fd >= 0);
  DIR *d = fdopendir (fd);
  struct dirent *de;
  bool found = false;
  while ((de = readdir (d)) != NULL)
    if (strncmp (de->d_name, prefix, strlen (prefix)) == 0)
      found = true;
  closedir (d);
  return found;
}

static void
test_atomic_write (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  assert_ok (fs_write_file_atomic_at (f->rootfd, "f", "one", 3, 0640, &err), err);
  int old = openat (f->rootfd, "f", O_RDONLY | O_CLOEXEC);
  assert_true (old >= 0);
  assert_ok (fs_write_file_atomic_at (f->rootfd, "f", "two!", 4, 0600, &err), err);
  /* The old inode is untouched (replaced by rename, not rewritten). */
  autofree char *o = read_fd_str (old);
  close (old);
  assert_string_equal (o, "one");
  char *buf;
  size_t len;
  assert_ok (fs_read_file_at (f->rootfd, "f", 100, &buf, &len, &err), err);
  assert_int_equal (len, 4);
  assert_string_equal (buf, "two!");
  free (buf);
  struct stat st;
  assert_int_equal (fstatat (f->rootfd, "f", &st, 0), 0);
  assert_int_equal (st.st_mode & 07777, 0600);

  /* Failure (target is a non-empty directory): no temp file is left. */
  assert_int_equal (mkdirat (f->rootfd, "d", 0755), 0);
  test_write_file (f->rootfd, "d/x", "");
  assert_true (fs_write_file_atomic_at (f->rootfd, "d", "zz", 2, 0644, &err) < 0);
  assert_non_null (err);
  kiln_error_clear (&err);
  assert_false (dir_has_prefix (f->rootfd, ".", ".d.tmp"));

  /* Subdirectory names work, escapes are refused. */
  assert_ok (fs_write_file_atomic_at (f->rootfd, "d/y", "in d", 4, 0644, &err), err);
  assert_int_equal (fstatat (f->rootfd, "d/y", &st, 0), 0);
  assert_int_equal (symlinkat ("..", f->rootfd, "d/up"), 0);
  assert_true (fs_write_file_atomic_at (f->rootfd, "d/up/up/escaped", "x", 1, 0644, &err) < 0);
  kiln_error_clear (&err);
  assert_int_equal (fstatat (f->tmpfd, "escaped", &st, 0), -1);

  /* Streaming: abort removes the temp file and leaves the old content. */
  {
    autoatomic fs_atomic_file a = FS_ATOMIC_FILE_INIT;
    assert_ok (fs_atomic_open (f->rootfd, "f", 0644, &a, &err), err);
    assert_ok (fs_write_all (a.fd, "partial", 7, &err), err);
    assert_true (dir_has_prefix (f->rootfd, ".", ".f.tmp-"));
  }
  assert_false (dir_has_prefix (f->rootfd, ".", ".f.tmp-"));
  assert_ok (fs_read_file_at (f->rootfd, "f", 100, &buf, &len, &err), err);
  assert_string_equal (buf, "two!");
  free (buf);
}

static void
test_bounded_read (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  char big[100];
  memset (big, 'x', sizeof big);
  assert_ok (fs_write_file_atomic_at (f->rootfd, "big", big, sizeof big, 0644, &err), err);
  char *buf = NULL;
  size_t len = 0;
  assert_ok (fs_read_file_at (f->rootfd, "big", 100, &buf, &len, &err), err);
  assert_int_equal (len, 100);
  assert_int_equal (buf[100], '\0');
  free (buf);
  assert_ok (fs_read_file_at (f->rootfd, "big", SIZE_MAX, &buf, &len, &err), err);
  assert_int_equal (len, 100);
  free (buf);
  assert_ok (fs_write_file_atomic_at (f->rootfd, "empty", "", 0, 0644, &err), err);
  assert_ok (fs_read_file_at (f->rootfd, "empty", 0, &buf, &len, &err), err);
  assert_int_equal (len, 0);
  assert_string_equal (buf, "");
  free (buf);
  assert_true (fs_read_file_at (f->rootfd, "big", 99, &buf, &len, &err) < 0);
  assert_int_equal (err->status, EFBIG);
  kiln_error_clear (&err);
  /* A stream with no size (pipe) is cut off at the limit too. */
  int p[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  assert_ok (fs_write_all (p[1], big, sizeof big, &err), err);
  close (p[1]);
  assert_true (fs_read_fd (p[0], 50, &buf, &len, &err) < 0);
  assert_int_equal (err->status, EFBIG);
  kiln_error_clear (&err);
  close (p[0]);
  assert_true (fs_read_file_at (f->rootfd, "missing", 10, &buf, &len, &err) < 0);
  assert_int_equal (err->status, ENOENT);
  assert_true (test_err_contains (err, "'missing'"));
  /* read_all: short only at EOF. */
  kiln_error_clear (&err);
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  assert_ok (fs_write_all (p[1], "abc", 3, &err), err);
  close (p[1]);
  char rb[10];
  assert_int_equal (fs_read_all (p[0], rb, sizeof rb, &err), 3);
  close (p[0]);
}

static void
make_tree (int dirfd, const char *top)
{
  autoerror kiln_error *err = NULL;
  autofree char *deep = xasprintf ("%s/a/b/c", top);
  assert_ok (fs_mkdir_p_at (dirfd, deep, 0755, &err), err);
  autofree char *f1 = xasprintf ("%s/a/file", top);
  test_write_file (dirfd, f1, "1");
  autofree char *f2 = xasprintf ("%s/a/b/c/file", top);
  test_write_file (dirfd, f2, "2");
  autofree char *ro = xasprintf ("%s/ro", top);
  assert_int_equal (mkdirat (dirfd, ro, 0755), 0);
  autofree char *rof = xasprintf ("%s/ro/f", top);
  test_write_file (dirfd, rof, "3");
  autofree char *ros = xasprintf ("%s/ro/sub", top);
  assert_int_equal (mkdirat (dirfd, ros, 0000), 0);
  assert_int_equal (fchmodat (dirfd, ro, 0500, 0), 0);
}

static void
test_rm_rf_basic (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  make_tree (f->rootfd, "t");
  autofree char *outdir = xasprintf ("%s/outdir", f->tmp);
  assert_int_equal (symlinkat (outdir, f->rootfd, "t/a/out"), 0);
  assert_int_equal (symlinkat ("../../../outdir", f->rootfd, "t/a/b/rel"), 0);
  assert_int_equal (mkfifoat (f->rootfd, "t/fifo", 0600), 0);
  assert_ok (fs_rm_rf_at (f->rootfd, "t", &err), err);
  struct stat st;
  assert_int_equal (fstatat (f->rootfd, "t", &st, AT_SYMLINK_NOFOLLOW), -1);
  assert_int_equal (errno, ENOENT);
  /* The link targets outside are intact. */
  assert_int_equal (fstatat (f->tmpfd, "outdir/keep", &st, 0), 0);
  /* Missing is fine; a symlink at the top is removed, not followed. */
  assert_ok (fs_rm_rf_at (f->rootfd, "t", &err), err);
  assert_int_equal (symlinkat (outdir, f->rootfd, "top"), 0);
  assert_ok (fs_rm_rf_at (f->rootfd, "top", &err), err);
  assert_int_equal (fstatat (f->tmpfd, "outdir/keep", &st, 0), 0);
  assert_true (fs_rm_rf_at (f->rootfd, "..", &err) < 0);
  kiln_error_clear (&err);
  assert_true (fs_rm_rf_at (f->rootfd, "", &err) < 0);
}

static void
test_rm_rf_deep (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  /* Deeper than PATH_MAX and than the number of DIRs kept open. */
  int fd = openat (f->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const char *n = "dddddddddddddddddddddddddddddddddddddddddddddddddd";
  for (int i = 0; i < 300; i++)
    {
      assert_int_equal (mkdirat (fd, i == 0 ? "deep" : n, 0755), 0);
      test_write_file (fd, i == 0 ? "sibling" : "f", "x");
      int nfd = openat (fd, i == 0 ? "deep" : n, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      assert_true (nfd >= 0);
      close (fd);
      fd = nfd;
    }
  close (fd);
  assert_ok (fs_rm_rf_at (f->rootfd, "deep", &err), err);
  struct stat st;
  assert_int_equal (fstatat (f->rootfd, "deep", &st, AT_SYMLINK_NOFOLLOW), -1);
  assert_int_equal (fstatat (f->rootfd, "sibling", &st, 0), 0);
}

/* As an unprivileged user (how kiln usually runs), read-only directories from
 * layers must still be removable. */
static void
test_rm_rf_readonly_unprivileged (void **state)
{
  fx *f = *state;
  if (geteuid () != 0)
    {
      /* Already unprivileged: run in-process. */
      autoerror kiln_error *err = NULL;
      make_tree (f->rootfd, "t");
      assert_ok (fs_rm_rf_at (f->rootfd, "t", &err), err);
      return;
    }
  assert_int_equal (mkdirat (f->rootfd, "box", 0755), 0);
  int boxfd = openat (f->rootfd, "box", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  make_tree (boxfd, "t");
  /* Hand box and the tree to nobody (65534). */
  const char *paths[] = { ".", "t", "t/a", "t/a/file", "t/a/b", "t/a/b/c", "t/a/b/c/file",
                          "t/ro", "t/ro/f", "t/ro/sub" };
  for (size_t i = 0; i < ARRAY_SIZE (paths); i++)
    assert_int_equal (fchownat (boxfd, paths[i], 65534, 65534, AT_SYMLINK_NOFOLLOW), 0);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      if (setgroups (0, NULL) < 0 || setresgid (65534, 65534, 65534) < 0 || setresuid (65534, 65534, 65534) < 0)
        _exit (3);
      kiln_error *err = NULL;
      if (fs_rm_rf_at (boxfd, "t", &err) < 0)
        {
          fprintf (stderr, "rm_rf as nobody: %s\n", err->msg);
          _exit (1);
        }
      _exit (0);
    }
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status));
  assert_int_equal (WEXITSTATUS (status), 0);
  struct stat st;
  assert_int_equal (fstatat (boxfd, "t", &st, AT_SYMLINK_NOFOLLOW), -1);
  close (boxfd);
}

/* Child body for the mount test; returns an exit code (0 = pass). */
static int
mount_child (int rootfd, const char *rootpath)
{
  if (unshare (CLONE_NEWNS) < 0)
    return 10;
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return 11;
  autofree char *mnt = xasprintf ("%s/t/a/mnt", rootpath);
  if (mount ("tmpfs", mnt, "tmpfs", 0, "size=1m") < 0)
    return 12;
  int mfd = open (mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  test_write_file (mfd, "on-tmpfs", "keep");
  kiln_error *err = NULL;
  if (fs_rm_rf_at (rootfd, "t", &err) >= 0 || err->status != EBUSY || !strstr (err->msg, "mnt"))
    return 13;
  kiln_error_clear (&err);
  struct stat st;
  if (fstatat (mfd, "on-tmpfs", &st, 0) < 0)
    return 14;
  /* The top itself being a mount point is refused too. */
  if (fs_rm_rf_at (rootfd, "t/a/mnt", &err) >= 0 || err->status != EBUSY)
    return 15;
  kiln_error_clear (&err);
  close (mfd);
  if (umount2 (mnt, MNT_DETACH) < 0)
    return 16;
  /* A bind mount of the same filesystem (same st_dev, other mount id). */
  autofree char *src = xasprintf ("%s/bsrc", rootpath);
  autofree char *dst = xasprintf ("%s/t/a/mnt", rootpath);
  if (mount (src, dst, NULL, MS_BIND, NULL) < 0)
    return 17;
  if (fs_rm_rf_at (rootfd, "t", &err) >= 0 || err->status != EBUSY)
    return 18;
  kiln_error_clear (&err);
  if (fstatat (rootfd, "bsrc/keep", &st, 0) < 0)
    return 19;
  umount2 (dst, MNT_DETACH);
  return 0;
}

static void
test_rm_rf_mount_point (void **state)
{
  fx *f = *state;
  if (geteuid () != 0)
    test_skip ("needs root to mount a tmpfs inside the tree");
  autoerror kiln_error *err = NULL;
  assert_ok (fs_mkdir_p_at (f->rootfd, "t/a/mnt", 0755, &err), err);
  assert_ok (fs_mkdir_p_at (f->rootfd, "bsrc", 0755, &err), err);
  test_write_file (f->rootfd, "bsrc/keep", "k");
  autofree char *rootpath = xasprintf ("%s/root", f->tmp);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    _exit (mount_child (f->rootfd, rootpath));
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status));
  if (WEXITSTATUS (status) == 10 || WEXITSTATUS (status) == 11)
    test_skip ("cannot create a private mount namespace here");
  assert_int_equal (WEXITSTATUS (status), 0);
  /* With the mounts gone (namespace exited), removal succeeds. */
  assert_ok (fs_rm_rf_at (f->rootfd, "t", &err), err);
}

static void
test_copy_fd (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  size_t n = 3 * 1024 * 1024 + 17;
  autofree char *data = xmalloc (n);
  for (size_t i = 0; i < n; i++)
    data[i] = (char) (i * 7 + i / 4096);
  assert_ok (fs_write_file_atomic_at (f->rootfd, "src", data, n, 0644, &err), err);
  /* File to file (copy_file_range). */
  int in = openat (f->rootfd, "src", O_RDONLY | O_CLOEXEC);
  int out = openat (f->rootfd, "dst", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  uint64_t copied = 0;
  assert_ok (fs_copy_fd (in, out, UINT64_MAX, &copied, &err), err);
  assert_int_equal (copied, n);
  close (out);
  char *buf;
  size_t len;
  assert_ok (fs_read_file_at (f->rootfd, "dst", n, &buf, &len, &err), err);
  assert_int_equal (len, n);
  assert_memory_equal (buf, data, n);
  free (buf);
  /* Bounded copy from the current offset. */
  assert_int_equal (lseek (in, 10, SEEK_SET), 10);
  out = openat (f->rootfd, "part", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  assert_ok (fs_copy_fd (in, out, 100, &copied, &err), err);
  assert_int_equal (copied, 100);
  close (out);
  assert_ok (fs_read_file_at (f->rootfd, "part", 1000, &buf, &len, &err), err);
  assert_int_equal (len, 100);
  assert_memory_equal (buf, data + 10, 100);
  free (buf);
  /* Into a pipe (read/write fallback). */
  assert_int_equal (lseek (in, 0, SEEK_SET), 0);
  int p[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  assert_ok (fs_copy_fd (in, p[1], 1000, &copied, &err), err);
  assert_int_equal (copied, 1000);
  close (p[1]);
  char pb[2000];
  assert_int_equal (fs_read_all (p[0], pb, sizeof pb, &err), 1000);
  assert_memory_equal (pb, data, 1000);
  close (p[0]);
  close (in);
  /* A read error is reported. */
  out = openat (f->rootfd, "dst2", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  int dirin = openat (f->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (fs_copy_fd (dirin, out, UINT64_MAX, &copied, &err) < 0);
  assert_int_equal (err->status, EISDIR);
  close (dirin);
  close (out);
}

static void
test_lock (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  int a = fs_lock_at (f->rootfd, "lock", FS_LOCK_EXCLUSIVE, &err);
  assert_ok (a, err);
  /* OFD locks conflict even within one process. */
  assert_true (fs_lock_at (f->rootfd, "lock", FS_LOCK_SHARED | FS_LOCK_NONBLOCK, &err) < 0);
  assert_int_equal (err->status, EAGAIN);
  kiln_error_clear (&err);
  close (a);
  int s1 = fs_lock_at (f->rootfd, "lock", FS_LOCK_SHARED | FS_LOCK_NONBLOCK, &err);
  assert_ok (s1, err);
  int s2 = fs_lock_at (f->rootfd, "lock", FS_LOCK_SHARED | FS_LOCK_NONBLOCK, &err);
  assert_ok (s2, err);
  assert_true (fs_lock_at (f->rootfd, "lock", FS_LOCK_EXCLUSIVE | FS_LOCK_NONBLOCK, &err) < 0);
  kiln_error_clear (&err);
  close (s1);
  close (s2);
  a = fs_lock_at (f->rootfd, "lock", FS_LOCK_EXCLUSIVE | FS_LOCK_NONBLOCK, &err);
  assert_ok (a, err);
  close (a);
  /* Never through a symlink. */
  autofree char *out = xasprintf ("%s/outside", f->tmp);
  assert_int_equal (symlinkat (out, f->rootfd, "lnk"), 0);
  assert_true (fs_lock_at (f->rootfd, "lnk", FS_LOCK_EXCLUSIVE, &err) < 0);
  assert_int_equal (err->status, ELOOP);
}

static void
test_mkdtemp_at (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  char *name = NULL;
  int fd = -1;
  assert_ok (fs_mkdtemp_at (f->rootfd, "work-", &name, &fd, &err), err);
  assert_true (strncmp (name, "work-", 5) == 0);
  assert_int_equal (strlen (name), 11);
  struct stat st;
  assert_int_equal (fstat (fd, &st), 0);
  assert_int_equal (st.st_mode & 07777, 0700);
  close (fd);
  char *name2 = NULL;
  assert_ok (fs_mkdtemp_at (f->rootfd, "work-", &name2, NULL, &err), err);
  assert_string_not_equal (name, name2);
  free (name);
  free (name2);
}

/* Lexical cleaning: empty and "." components vanish, ".." pops; above
 * the top it clamps (chroot) or fails. */
static void
test_path_clean (void **state)
{
  (void) state;
  static const struct
  {
    const char *in;
    bool clamp;
    const char *out; /* NULL: failure */
  } cases[] = {
    { "", false, "" },           { "/", false, "" },          { "a//b/./c/", false, "a/b/c" },
    { "/a/b/../c", false, "a/c" }, { "a/..", false, "" },      { "..", false, NULL },
    { "a/../../b", false, NULL }, { "a/../../b", true, "b" },  { "/../../etc/passwd", true, "etc/passwd" },
    { "./x/.", true, "x" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      char *out = NULL;
      int r = fs_path_clean (cases[i].in, cases[i].clamp, &out);
      if (cases[i].out == NULL)
        {
          assert_int_equal (r, -1);
          assert_null (out);
        }
      else
        {
          assert_int_equal (r, 0);
          assert_string_equal (out, cases[i].out);
        }
      free (out);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_in_root_clamps_escapes, setup, teardown),
    cmocka_unit_test_setup_teardown (test_beneath_rejects_escapes, setup, teardown),
    cmocka_unit_test_setup_teardown (test_open_create_and_opath, setup, teardown),
    cmocka_unit_test_setup_teardown (test_fallback_matches_kernel, setup, teardown),
    cmocka_unit_test_setup_teardown (test_enosys_fallback, setup, teardown),
    cmocka_unit_test_setup_teardown (test_mkdir_p, setup, teardown),
    cmocka_unit_test_setup_teardown (test_atomic_write, setup, teardown),
    cmocka_unit_test_setup_teardown (test_bounded_read, setup, teardown),
    cmocka_unit_test_setup_teardown (test_rm_rf_basic, setup, teardown),
    cmocka_unit_test_setup_teardown (test_rm_rf_deep, setup, teardown),
    cmocka_unit_test_setup_teardown (test_rm_rf_readonly_unprivileged, setup, teardown),
    cmocka_unit_test_setup_teardown (test_rm_rf_mount_point, setup, teardown),
    cmocka_unit_test_setup_teardown (test_mkdtemp_at, setup, teardown),
    cmocka_unit_test_setup_teardown (test_copy_fd, setup, teardown),
    cmocka_unit_test_setup_teardown (test_lock, setup, teardown),
    cmocka_unit_test (test_path_clean),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
