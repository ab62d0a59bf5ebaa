/* overlay_fx.c - see overlay_fx.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/overlay_fx.h"
#include "helpers/testutil.h"
#include "util/alloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

void
overlay_fx_make_lowers (int tmpfd)
{
  assert_int_equal (mkdirat (tmpfd, "l0", 0755), 0);
  assert_int_equal (mkdirat (tmpfd, "l1", 0755), 0);
  int l0 = openat (tmpfd, "l0", O_RDONLY | O_DIRECTORY);
  int l1 = openat (tmpfd, "l1", O_RDONLY | O_DIRECTORY);
  test_put_file (l0, "etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0644);
  test_put_file (l0, "usr/bin/tool", "#!/bin/sh\necho tool\n", 0755);
  test_put_file (l0, "a/f1", "one", 0644);
  test_put_file (l0, "a/sub/f2", "two", 0600);
  test_put_file (l0, "gone", "bye", 0644);
  test_put_file (l0, "op/old", "old", 0644);
  test_put_file (l0, "d/x", "x", 0644);
  assert_int_equal (mkdirat (l0, "empty", 0755), 0);
  assert_int_equal (symlinkat ("/etc/passwd", l0, "link"), 0);
  test_put_file (l1, "a/f1", "one-v2", 0644);
  test_put_file (l1, ".wh.gone", "", 0644);
  test_put_file (l1, "op/.wh..wh..opq", "", 0644);
  test_put_file (l1, "op/new", "new", 0644);
  close (l0);
  close (l1);
}

overlay_lower *
overlay_fx_lowers (overlay_fx *f, const char *const *names, unsigned n)
{
  autoerror kiln_error *err = NULL;
  overlay_lower *lower = NULL;
  char *paths[16] = { 0 };
  assert_true (n <= 16);
  for (unsigned i = 0; i < n; i++)
    paths[i] = xasprintf ("%s/%s", f->tmp, names[i]);
  int r = overlay_lower_open_dirs ((const char *const *) paths, n, &lower, &err);
  for (unsigned i = 0; i < n; i++)
    free (paths[i]);
  assert_ok (r, err);
  return lower;
}

void
overlay_fx_start (overlay_fx *f, overlay_id_mode mode, const char *const *lowers, unsigned n)
{
  autoerror kiln_error *err = NULL;
  overlay_lower *lower = overlay_fx_lowers (f, lowers, n);
  static int nscratch;
  char sname[32];
  snprintf (sname, sizeof sname, "scratch%d", nscratch++);
  assert_int_equal (mkdirat (f->tmpfd, sname, 0700), 0);
  int sfd = openat (f->tmpfd, sname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  static const char *const masks[] = { "proc/", "dev/", "etc/hosts", "etc/resolv.conf", NULL };
  overlay_config cfg = { .lower = lower, .scratch_dirfd = sfd, .id_mode = mode,
                         .present_uid = 0, .present_gid = 0, .mask_paths = masks };
  assert_ok (overlay_new (&cfg, &f->ovl, &err), err);
  close (sfd);
  f->mode = mode;
  mkdirat (f->tmpfd, "mnt", 0755);
  assert_ok (overlay_mount (f->ovl, f->mnt, &err), err);
}

void
overlay_fx_stop (overlay_fx *f)
{
  overlay_free (f->ovl);
  f->ovl = NULL;
}

overlay_fx *
overlay_fx_new (void)
{
  overlay_fx *f = xzalloc (sizeof *f);
  f->tmp = test_mkdtemp (&f->tmpfd);
  f->mnt = xasprintf ("%s/mnt", f->tmp);
  overlay_fx_make_lowers (f->tmpfd);
  static const char *const lowers[] = { "l0", "l1" };
  overlay_fx_start (f, OVERLAY_IDS_FULL, lowers, 2);
  return f;
}

void
overlay_fx_free (overlay_fx *f)
{
  if (!f)
    return;
  if (f->ovl)
    overlay_fx_stop (f);
  close (f->tmpfd);
  test_rmtree (f->tmp);
  free (f->tmp);
  free (f->mnt);
  free (f);
}

char *
test_slurp (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  char *buf = xzalloc (65536);
  ssize_t n = read (fd, buf, 65535);
  close (fd);
  if (n < 0)
    {
      free (buf);
      return NULL;
    }
  return buf;
}

void
overlay_fx_assert_file (overlay_fx *f, const char *rel, const char *want)
{
  autofree char *p = xasprintf ("%s/%s", f->mnt, rel);
  autofree char *c = test_slurp (p);
  if (!c || strcmp (c, want))
    fail_msg ("'%s' reads '%s', not '%s'", rel, c ? c : "(unreadable)", want);
}

const char *const overlay_fx_pool[] = { "a", "a/f1", "a/sub", "a/sub/f2", "d", "d/x", "n1", "n2",
                                        "a/n3", "d/n4", "empty", "op", "op/new", "usr/bin/tool", "n1/deep" };
const size_t overlay_fx_pool_n = sizeof overlay_fx_pool / sizeof *overlay_fx_pool;

int
overlay_fx_do_op (const char *root, unsigned op, const char *p1, const char *p2, unsigned arg)
{
  autofree char *a = xasprintf ("%s/%s", root, p1), *b = xasprintf ("%s/%s", root, p2);
  int r = 0, fd;
  char buf[32];
  errno = 0;
  switch (op)
    {
    case 0:
      fd = open (a, O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_CLOEXEC, 0644);
      if (fd < 0)
        return -errno;
      snprintf (buf, sizeof buf, "w%u;", arg);
      r = write (fd, buf, strlen (buf)) < 0 ? -errno : 0;
      close (fd);
      return r;
    case 1: r = truncate (a, arg % 7); break;
    case 2: r = rename (a, b); break;
    case 3: r = unlink (a); break;
    case 4: r = mkdir (a, 0700 + (arg % 0100)); break;
    case 5: r = rmdir (a); break;
    case 6: r = link (a, b); break;
    case 7: r = symlink (p2, a); break;
    case 8: r = fchmodat (AT_FDCWD, a, 0600 + (arg % 0200), 0); break;
    case 9: r = lchown (a, arg % 3000, arg % 5000); break;
    case 10: r = setxattr (a, "user.p", buf, snprintf (buf, sizeof buf, "%u", arg), 0); break;
    case 11: r = mknod (a, S_IFIFO | 0644, 0); break;
    default: r = renameat2 (AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE); break;
    }
  return r < 0 ? -errno : 0;
}

void
overlay_fx_compare_trees (const char *x, const char *y, const char *rel)
{
  autofree char *px = xasprintf ("%s/%s", x, rel), *py = xasprintf ("%s/%s", y, rel);
  struct stat sx, sy;
  assert_int_equal (lstat (px, &sx), 0);
  if (lstat (py, &sy) != 0)
    fail_msg ("'%s' missing from the rebuilt tree", rel);
  if (sx.st_mode != sy.st_mode || sx.st_uid != sy.st_uid || sx.st_gid != sy.st_gid)
    fail_msg ("'%s': mode/owner %o %u:%u vs %o %u:%u", rel, sx.st_mode, sx.st_uid, sx.st_gid, sy.st_mode,
              sy.st_uid, sy.st_gid);
  if (S_ISREG (sx.st_mode))
    {
      autofree char *cx = test_slurp (px), *cy = test_slurp (py);
      if (!cx || !cy || strcmp (cx, cy))
        fail_msg ("'%s': content differs", rel);
    }
  if (S_ISLNK (sx.st_mode))
    {
      char lx[256] = { 0 }, ly[256] = { 0 };
      assert_true (readlink (px, lx, 255) >= 0 && readlink (py, ly, 255) >= 0);
      assert_string_equal (lx, ly);
    }
  if (!S_ISDIR (sx.st_mode))
    return;
  for (int pass = 0; pass < 2; pass++)
    {
      DIR *d = opendir (pass ? py : px);
      assert_non_null (d);
      struct dirent *de;
      while ((de = readdir (d)))
        {
          if (!strcmp (de->d_name, ".") || !strcmp (de->d_name, ".."))
            continue;
          autofree char *sub = *rel ? xasprintf ("%s/%s", rel, de->d_name) : xstrdup (de->d_name);
          if (pass)
            {
              autofree char *o = xasprintf ("%s/%s", x, sub);
              struct stat so;
              if (lstat (o, &so) != 0)
                fail_msg ("'%s' only in the rebuilt tree", sub);
            }
          else
            overlay_fx_compare_trees (x, y, sub);
        }
      closedir (d);
    }
}
