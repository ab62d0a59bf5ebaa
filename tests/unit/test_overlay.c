/* test_overlay.c - POSIX behaviour of the FUSE overlay, on a real mount, and
 * the change list its write log produces.
 *
 * Runs as root in a private mount namespace (unshare(CLONE_NEWNS)); as a
 * plain user it first enters a new user namespace mapping its uid to 0.
 * Lowers are plain directories with OCI whiteout files (the fixture:
 * helpers/overlay_fx.c). The property tests are test_overlay_layers.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/overlay_fx.h"
#include "helpers/testutil.h"
#include "overlay/overlay.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#define RENAME_EXCHANGE (1 << 1)
#endif

static bool can_mount;
/* plain user in a user namespace mapping only its own uid to 0 */
static bool rootless;
static const char *skip_reason = "cannot mount fuse here";

typedef overlay_fx fx;

static int
setup (void **state)
{
  if (!can_mount)
    return 0;
  *state = overlay_fx_new ();
  return 0;
}

static int
teardown (void **state)
{
  overlay_fx_free (*state);
  return 0;
}

#define NEED_MOUNT()          \
  do                          \
    {                         \
      if (!can_mount)         \
        test_skip (skip_reason); \
    }                         \
  while (0)

static char *
P (fx *f, const char *rel)
{
  return xasprintf ("%s/%s", f->mnt, rel);
}

static void
spit (const char *path, const char *s, int flags)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
  assert_true (fd >= 0);
  assert_int_equal (write (fd, s, strlen (s)), (ssize_t) strlen (s));
  assert_int_equal (close (fd), 0);
}

#define ASSERT_FILE(f, rel, want) overlay_fx_assert_file ((f), (rel), (want))

#define ASSERT_ERRNO(expr, e)                              \
  do                                                       \
    {                                                      \
      errno = 0;                                           \
      assert_int_equal ((expr), -1);                       \
      assert_int_equal (errno, (e));                       \
    }                                                      \
  while (0)

static const overlay_change *
find_change (const overlay_changes *c, overlay_change_kind kind, const char *path)
{
  for (size_t i = 0; i < c->n; i++)
    if (c->v[i].kind == kind && !strcmp (c->v[i].path, path))
      return &c->v[i];
  return NULL;
}

static overlay_changes *
commit (fx *f)
{
  autoerror kiln_error *err = NULL;
  overlay_changes *c = NULL;
  assert_ok (overlay_commit (f->ovl, &c, &err), err);
  return c;
}

/* ---- tests ---- */

static void
test_merged_view (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  ASSERT_FILE (f, "a/f1", "one-v2");
  ASSERT_FILE (f, "a/sub/f2", "two");
  ASSERT_FILE (f, "op/new", "new");
  autofree char *gone = P (f, "gone"), *old = P (f, "op/old"), *wh = P (f, ".wh.gone");
  struct stat st;
  ASSERT_ERRNO (lstat (gone, &st), ENOENT);
  ASSERT_ERRNO (lstat (old, &st), ENOENT);
  ASSERT_ERRNO (lstat (wh, &st), ENOENT);
  /* directory listing: merged, whiteouts and markers hidden, masks present */
  autofree char *root = P (f, "");
  DIR *d = opendir (root);
  assert_non_null (d);
  int seen = 0;
  struct dirent *de;
  while ((de = readdir (d)))
    {
      assert_null (strstr (de->d_name, ".wh."));
      assert_string_not_equal (de->d_name, "gone");
      if (!strcmp (de->d_name, "a") || !strcmp (de->d_name, "proc") || !strcmp (de->d_name, "dev")
          || !strcmp (de->d_name, "usr"))
        seen++;
    }
  closedir (d);
  assert_int_equal (seen, 4);
  autofree char *link = P (f, "link");
  char buf[64] = { 0 };
  assert_int_equal (readlink (link, buf, sizeof buf), 11);
  assert_string_equal (buf, "/etc/passwd");
  /* inode numbers stable across lookups; st_nlink of directories */
  autofree char *a = P (f, "a");
  struct stat s1, s2;
  assert_int_equal (stat (a, &s1), 0);
  assert_int_equal (s1.st_nlink, 3);
  assert_int_equal (stat (a, &s2), 0);
  assert_int_equal (s1.st_ino, s2.st_ino);
  overlay_changes_free (commit (f));
}

static void
test_write_copy_up (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  autofree char *p = P (f, "a/sub/f2");
  spit (p, "+more", O_APPEND);
  ASSERT_FILE (f, "a/sub/f2", "two+more");
  /* the lower tree is untouched */
  autofree char *lower = xasprintf ("%s/l0/a/sub/f2", f->tmp);
  autofree char *lc = test_slurp (lower);
  assert_string_equal (lc, "two");
  struct stat st;
  assert_int_equal (stat (p, &st), 0);
  assert_int_equal (st.st_size, 8);
  assert_int_equal (st.st_mode & 07777, 0600);
  overlay_changes *c = commit (f);
  const overlay_change *ch = find_change (c, OVERLAY_CHANGE_ADD, "a/sub/f2");
  assert_non_null (ch);
  assert_int_equal (ch->size, 8);
  assert_true (ch->data_dirfd >= 0);
  assert_null (find_change (c, OVERLAY_CHANGE_ADD, "a/f1"));
  overlay_changes_free (c);
  /* next step: unchanged files ship nothing; the committed data stays */
  c = commit (f);
  assert_int_equal (c->n, 0);
  overlay_changes_free (c);
  ASSERT_FILE (f, "a/sub/f2", "two+more");
  spit (p, "!", O_APPEND);
  ASSERT_FILE (f, "a/sub/f2", "two+more!");
  c = commit (f);
  /* the file and, with their metadata, the lower directories above it */
  assert_int_equal (c->n, 3);
  assert_non_null (find_change (c, OVERLAY_CHANGE_ADD, "a"));
  assert_non_null (find_change (c, OVERLAY_CHANGE_ADD, "a/sub"));
  assert_non_null (find_change (c, OVERLAY_CHANGE_ADD, "a/sub/f2"));
  assert_null (find_change (c, OVERLAY_CHANGE_ADD, ""));
  overlay_changes_free (c);
}

static void
test_create_unlink_whiteout (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  autofree char *nf = P (f, "newfile"), *f1 = P (f, "a/f1"), *tmpf = P (f, "tmpfile");
  autofree char *nd = P (f, "newdir"), *nd2 = P (f, "newdir/inner"), *e = P (f, "empty");
  spit (nf, "hello", O_EXCL);
  ASSERT_ERRNO (open (nf, O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
  assert_int_equal (unlink (f1), 0);
  ASSERT_ERRNO (unlink (f1), ENOENT);
  spit (tmpf, "x", 0);
  assert_int_equal (unlink (tmpf), 0);
  assert_int_equal (mkdir (nd, 0750), 0);
  ASSERT_ERRNO (mkdir (nd, 0750), EEXIST);
  assert_int_equal (mkdir (nd2, 0700), 0);
  ASSERT_ERRNO (rmdir (nd), ENOTEMPTY);
  ASSERT_ERRNO (unlink (nd), EISDIR);
  ASSERT_ERRNO (rmdir (nf), ENOTDIR);
  assert_int_equal (rmdir (e), 0);
  overlay_changes *c = commit (f);
  assert_non_null (find_change (c, OVERLAY_CHANGE_WHITEOUT, "a/f1"));
  assert_non_null (find_change (c, OVERLAY_CHANGE_WHITEOUT, "empty"));
  assert_non_null (find_change (c, OVERLAY_CHANGE_ADD, "newfile"));
  const overlay_change *d = find_change (c, OVERLAY_CHANGE_ADD, "newdir");
  assert_non_null (d);
  assert_int_equal (d->mode, S_IFDIR | 0750);
  assert_non_null (find_change (c, OVERLAY_CHANGE_ADD, "newdir/inner"));
  assert_null (find_change (c, OVERLAY_CHANGE_ADD, "tmpfile"));
  assert_null (find_change (c, OVERLAY_CHANGE_WHITEOUT, "tmpfile"));
  /* parents before children */
  for (size_t i = 1; i < c->n; i++)
    assert_true (strncmp (c->v[i].path, c->v[i - 1].path, strlen (c->v[i].path)) != 0
                 || strlen (c->v[i].path) >= strlen (c->v[i - 1].path));
  overlay_changes_free (c);
  /* a lower directory removed and recreated is opaque */
  autofree char *op = P (f, "op"), *opn = P (f, "op/new");
  assert_int_equal (unlink (opn), 0);
  assert_int_equal (rmdir (op), 0);
  assert_int_equal (mkdir (op, 0755), 0);
  c = commit (f);
  assert_non_null (find_change (c, OVERLAY_CHANGE_OPAQUE, "op"));
  overlay_changes_free (c);
}

static void
test_rename (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  autofree char *a = P (f, "a"), *b = P (f, "b"), *bf1 = P (f, "b/f1"), *d = P (f, "d"), *dx = P (f, "d/x");
  autofree char *pw = P (f, "etc/passwd"), *tool = P (f, "usr/bin/tool"), *e = P (f, "empty");
  assert_int_equal (rename (a, b), 0);
  struct stat st;
  ASSERT_ERRNO (lstat (a, &st), ENOENT);
  ASSERT_FILE (f, "b/f1", "one-v2");
  ASSERT_FILE (f, "b/sub/f2", "two");
  /* file over file replaces */
  assert_int_equal (rename (pw, dx), 0);
  ASSERT_FILE (f, "d/x", "root:x:0:0::/root:/bin/sh\n");
  /* errors */
  ASSERT_ERRNO (rename (tool, e), EISDIR);
  ASSERT_ERRNO (rename (e, tool), ENOTDIR);
  ASSERT_ERRNO (rename (e, d), ENOTEMPTY);
  ASSERT_ERRNO (rename (e, bf1), ENOTDIR);
  autofree char *bsub = P (f, "b/sub/in");
  ASSERT_ERRNO (rename (b, bsub), EINVAL);
  ASSERT_ERRNO (renameat2 (AT_FDCWD, tool, AT_FDCWD, dx, RENAME_NOREPLACE), EEXIST);
  assert_int_equal (renameat2 (AT_FDCWD, tool, AT_FDCWD, dx, RENAME_EXCHANGE), 0);
  ASSERT_FILE (f, "usr/bin/tool", "root:x:0:0::/root:/bin/sh\n");
  ASSERT_FILE (f, "d/x", "#!/bin/sh\necho tool\n");
  /* empty dir over empty dir */
  autofree char *nd = P (f, "nd");
  assert_int_equal (mkdir (nd, 0755), 0);
  assert_int_equal (rename (nd, e), 0);
  overlay_changes *c = commit (f);
  assert_non_null (find_change (c, OVERLAY_CHANGE_WHITEOUT, "a"));
  assert_non_null (find_change (c, OVERLAY_CHANGE_ADD, "b"));
  assert_non_null (find_change (c, OVERLAY_CHANGE_ADD, "b/f1"));
  assert_non_null (find_change (c, OVERLAY_CHANGE_ADD, "b/sub/f2"));
  assert_non_null (find_change (c, OVERLAY_CHANGE_WHITEOUT, "etc/passwd"));
  const overlay_change *x = find_change (c, OVERLAY_CHANGE_ADD, "d/x");
  assert_non_null (x);
  assert_int_equal (x->mode & 0777, 0755);
  assert_non_null (find_change (c, OVERLAY_CHANGE_OPAQUE, "empty"));
  overlay_changes_free (c);
}

static void
test_hardlinks (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  autofree char *tool = P (f, "usr/bin/tool"), *t2 = P (f, "t2"), *d = P (f, "d");
  assert_int_equal (link (tool, t2), 0);
  ASSERT_ERRNO (link (tool, t2), EEXIST);
  autofree char *t3 = P (f, "t3");
  ASSERT_ERRNO (link (d, t3), EPERM);
  struct stat s1, s2;
  assert_int_equal (stat (tool, &s1), 0);
  assert_int_equal (stat (t2, &s2), 0);
  assert_int_equal (s1.st_ino, s2.st_ino);
  assert_int_equal (s1.st_nlink, 2);
  /* copy-up through one name is seen through the other */
  spit (t2, "changed", O_TRUNC);
  ASSERT_FILE (f, "usr/bin/tool", "changed");
  overlay_changes *c = commit (f);
  const overlay_change *a = find_change (c, OVERLAY_CHANGE_ADD, "t2");
  const overlay_change *h = find_change (c, OVERLAY_CHANGE_HARDLINK, "usr/bin/tool");
  assert_non_null (a);
  assert_non_null (h);
  assert_string_equal (h->link_target, "t2");
  overlay_changes_free (c);
  assert_int_equal (unlink (t2), 0);
  assert_int_equal (stat (tool, &s1), 0);
  assert_int_equal (s1.st_nlink, 1);
}

static void
test_unlink_open_and_sparse (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  autofree char *p = P (f, "open-unlinked"), *s = P (f, "sparse");
  int fd = open (p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (unlink (p), 0);
  assert_int_equal (pwrite (fd, "abc", 3, 0), 3);
  char buf[4] = { 0 };
  assert_int_equal (pread (fd, buf, 3, 0), 3);
  assert_string_equal (buf, "abc");
  struct stat st;
  assert_int_equal (fstat (fd, &st), 0);
  assert_int_equal (st.st_nlink, 0);
  close (fd);
  fd = open (s, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  off_t big = 1LL << 30;
  assert_int_equal (pwrite (fd, "z", 1, big), 1);
  assert_int_equal (fsync (fd), 0);
  assert_int_equal (fstat (fd, &st), 0);
  assert_int_equal (st.st_size, big + 1);
  assert_true (st.st_blocks < 1024);
  assert_int_equal (pread (fd, buf, 1, 4096), 1);
  assert_int_equal (buf[0], 0);
  off_t data = lseek (fd, 0, SEEK_DATA);
  assert_true (data > 0);
  close (fd);
  assert_int_equal (truncate (s, 10), 0);
  assert_int_equal (stat (s, &st), 0);
  assert_int_equal (st.st_size, 10);
  overlay_changes *c = commit (f);
  assert_null (find_change (c, OVERLAY_CHANGE_ADD, "open-unlinked"));
  assert_non_null (find_change (c, OVERLAY_CHANGE_ADD, "sparse"));
  overlay_changes_free (c);
}

static void
test_special_files (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  autofree char *l = P (f, "sl"), *fifo = P (f, "fifo"), *dev = P (f, "null2");
  assert_int_equal (symlink ("a/f1", l), 0);
  ASSERT_FILE (f, "sl", "one-v2");
  char buf[16] = { 0 };
  assert_int_equal (readlink (l, buf, sizeof buf), 4);
  assert_int_equal (mkfifo (fifo, 0640), 0);
  if (rootless)
    {
      /* the kernel refuses device nodes without CAP_MKNOD in the initial namespace */
      ASSERT_ERRNO (mknod (dev, S_IFCHR | 0666, makedev (1, 3)), EPERM);
      assert_int_equal (mknod (dev, S_IFSOCK | 0666, 0), 0);
    }
  else
    assert_int_equal (mknod (dev, S_IFCHR | 0666, makedev (1, 3)), 0);
  struct stat st;
  assert_int_equal (lstat (fifo, &st), 0);
  assert_true (S_ISFIFO (st.st_mode));
  assert_int_equal (lstat (dev, &st), 0);
  assert_true (rootless ? S_ISSOCK (st.st_mode) : S_ISCHR (st.st_mode));
  assert_int_equal (st.st_rdev, rootless ? 0 : makedev (1, 3));
  overlay_changes *c = commit (f);
  const overlay_change *ch = find_change (c, OVERLAY_CHANGE_ADD, "sl");
  assert_non_null (ch);
  assert_string_equal (ch->symlink, "a/f1");
  ch = find_change (c, OVERLAY_CHANGE_ADD, "null2");
  assert_non_null (ch);
  assert_int_equal (ch->rdev, rootless ? 0 : makedev (1, 3));
  assert_non_null (find_change (c, OVERLAY_CHANGE_ADD, "fifo"));
  overlay_changes_free (c);
}

static void
test_metadata_changes (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  autofree char *f1 = P (f, "a/f1"), *tool = P (f, "usr/bin/tool");
  assert_int_equal (chmod (f1, 04711), 0);
  /* rootless: only id 0 is mapped, so the kernel passes only chown to 0 */
  uid_t u = rootless ? 0 : 1000;
  gid_t g = rootless ? 0 : 1001;
  assert_int_equal (lchown (tool, u, g), 0);
  struct timespec ts[2] = { { 1000, 0 }, { 2000, 0 } };
  assert_int_equal (utimensat (AT_FDCWD, f1, ts, 0), 0);
  struct stat st;
  assert_int_equal (stat (f1, &st), 0);
  assert_int_equal (st.st_mode & 07777, 04711);
  assert_int_equal (st.st_mtim.tv_sec, 2000);
  assert_int_equal (stat (tool, &st), 0);
  assert_int_equal (st.st_uid, u);
  overlay_changes *c = commit (f);
  /* a metadata-only change ships the whole file, data from the lower */
  const overlay_change *ch = find_change (c, OVERLAY_CHANGE_ADD, "a/f1");
  assert_non_null (ch);
  assert_int_equal (ch->mode, S_IFREG | 04711);
  assert_int_equal (ch->size, 6);
  assert_int_equal (ch->mtime.tv_sec, 2000);
  assert_true (ch->data_dirfd >= 0);
  ch = find_change (c, OVERLAY_CHANGE_ADD, "usr/bin/tool");
  assert_non_null (ch);
  assert_int_equal (ch->uid, u);
  assert_int_equal (ch->gid, g);
  overlay_changes_free (c);
}

static void
test_xattrs_and_setcap (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  autofree char *tool = P (f, "usr/bin/tool");
  assert_int_equal (setxattr (tool, "user.k", "v", 1, 0), 0);
  ASSERT_ERRNO (setxattr (tool, "user.k", "v", 1, XATTR_CREATE), EEXIST);
  ASSERT_ERRNO (setxattr (tool, "user.none", "v", 1, XATTR_REPLACE), ENODATA);
  char buf[256];
  assert_int_equal (getxattr (tool, "user.k", buf, sizeof buf), 1);
  ASSERT_ERRNO (getxattr (tool, "user.missing", buf, sizeof buf), ENODATA);
  ASSERT_ERRNO (setxattr (tool, "trusted.x", "v", 1, 0), rootless ? EPERM : EOPNOTSUPP);
  assert_int_equal (listxattr (tool, buf, sizeof buf), 7);
  if (system ("command -v setcap >/dev/null && command -v getcap >/dev/null") != 0)
    {
      overlay_changes_free (commit (f));
      test_skip ("setcap/getcap (libcap2-bin) not installed");
    }
  autofree char *cmd = xasprintf ("setcap cap_net_raw+ep '%s'", tool);
  assert_int_equal (system (cmd), 0);
  autofree char *cmd2 = xasprintf ("getcap '%s' | grep -q cap_net_raw", tool);
  assert_int_equal (system (cmd2), 0);
  assert_true (getxattr (tool, "security.capability", buf, sizeof buf) > 0);
  overlay_changes *c = commit (f);
  const overlay_change *ch = find_change (c, OVERLAY_CHANGE_ADD, "usr/bin/tool");
  assert_non_null (ch);
  bool cap = false, user = false;
  for (size_t k = 0; k < ch->n_xattrs; k++)
    {
      cap |= !strcmp (ch->xattrs[k].name, "security.capability");
      user |= !strcmp (ch->xattrs[k].name, "user.k");
    }
  assert_true (cap);
  assert_true (user);
  overlay_changes_free (c);
}

static void
test_masked_paths (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  autofree char *dev = P (f, "dev"), *proc = P (f, "proc"), *hosts = P (f, "etc/hosts"), *x = P (f, "proc/x");
  struct stat st;
  assert_int_equal (stat (proc, &st), 0);
  assert_true (S_ISDIR (st.st_mode));
  assert_int_equal (stat (hosts, &st), 0);
  assert_true (S_ISREG (st.st_mode));
  spit (x, "hidden", 0);
  spit (hosts, "127.0.0.1 localhost\n", O_TRUNC);
  ASSERT_ERRNO (rmdir (dev), EBUSY);
  ASSERT_ERRNO (rmdir (proc), ENOTEMPTY);
  overlay_changes *c = commit (f);
  for (size_t i = 0; i < c->n; i++)
    {
      assert_true (strncmp (c->v[i].path, "proc", 4) != 0);
      assert_string_not_equal (c->v[i].path, "etc/hosts");
      assert_string_not_equal (c->v[i].path, "etc");
    }
  overlay_changes_free (c);
  /* a directory exchanged into the place of the mask's parent: its own
   * "hosts" is masked there (found by fuzz_overlay) */
  autofree char *nd = P (f, "newetc"), *nh = P (f, "newetc/hosts"), *etc = P (f, "etc");
  assert_int_equal (mkdir (nd, 0755), 0);
  spit (nh, "mine", 0);
  assert_int_equal (renameat2 (AT_FDCWD, nd, AT_FDCWD, etc, RENAME_EXCHANGE), 0);
  c = commit (f);
  bool etc_shipped = false;
  for (size_t i = 0; i < c->n; i++)
    {
      assert_string_not_equal (c->v[i].path, "etc/hosts");
      etc_shipped = etc_shipped || !strcmp (c->v[i].path, "etc");
    }
  assert_true (etc_shipped);
  overlay_changes_free (c);
}

static void
test_single_id_mode (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  overlay_fx_stop (f);
  static const char *const lowers[] = { "l0", "l1" };
  overlay_fx_start (f, OVERLAY_IDS_SINGLE, lowers, 2);
  autofree char *tool = P (f, "usr/bin/tool"), *pw = P (f, "etc/passwd");
  assert_int_equal (chmod (tool, 04755), 0);
  struct stat st;
  assert_int_equal (stat (pw, &st), 0);
  assert_int_equal (st.st_uid, 0);
  autoerror kiln_error *err = NULL;
  assert_ok (overlay_record_chown (f->ovl, st.st_ino, 1000, 1000, &err), err);
  assert_int_equal (stat (pw, &st), 0);
  assert_int_equal (st.st_uid, 0); /* presented as the mapped id */
  assert_int_equal (stat (tool, &st), 0);
  assert_ok (overlay_record_chown (f->ovl, st.st_ino, 5, (gid_t) -1, &err), err);
  assert_int_equal (stat (tool, &st), 0);
  assert_int_equal (st.st_mode & 07777, 0755); /* chown clears setuid */
  assert_true (overlay_record_chown (f->ovl, 999999, 1, 1, &err) < 0);
  kiln_error_clear (&err);
  overlay_changes *c = commit (f);
  const overlay_change *ch = find_change (c, OVERLAY_CHANGE_ADD, "etc/passwd");
  assert_non_null (ch);
  assert_int_equal (ch->uid, 1000);
  assert_int_equal (ch->gid, 1000);
  ch = find_change (c, OVERLAY_CHANGE_ADD, "usr/bin/tool");
  assert_int_equal (ch->uid, 5);
  overlay_changes_free (c);
}


static int
group_setup (void **state)
{
  (void) state;
  rootless = geteuid () != 0;
  skip_reason = test_fuse_namespace ();
  can_mount = skip_reason == NULL;
  return 0;
}


/* ".wh.NAME" would turn into a whiteout when the layer is applied: a step
 * cannot create such a name by any route; O_TMPFILE is a clear EOPNOTSUPP
 * (libfuse 3.14's low-level API has no tmpfile operation). */
static void
test_whiteout_names (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  autofree char *wf = P (f, "a/.wh.f1"), *wd = P (f, ".wh.dir"), *ws = P (f, "a/.wh.s");
  autofree char *wl = P (f, "a/.wh.l"), *f1 = P (f, "a/f1"), *wo = P (f, "a/.wh..wh..opq");
  autofree char *gone = P (f, "gone"), *wgone = P (f, ".wh.gone"), *dir = P (f, "a");
  ASSERT_ERRNO (open (wf, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), EPERM);
  ASSERT_ERRNO (open (wo, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), EPERM);
  ASSERT_ERRNO (mkdir (wd, 0755), EPERM);
  ASSERT_ERRNO (symlink ("f1", ws), EPERM);
  ASSERT_ERRNO (mknod (ws, S_IFIFO | 0644, 0), EPERM);
  ASSERT_ERRNO (link (f1, wl), EPERM);
  ASSERT_ERRNO (rename (f1, wf), EPERM);
  ASSERT_FILE (f, "a/f1", "one-v2");
  struct stat st;
  ASSERT_ERRNO (lstat (wf, &st), ENOENT);
  /* l1 deletes "gone": neither the name nor its whiteout file is visible */
  ASSERT_ERRNO (lstat (gone, &st), ENOENT);
  ASSERT_ERRNO (lstat (wgone, &st), ENOENT);
  overlay_changes *c = commit (f);
  for (size_t i = 0; i < c->n; i++)
    assert_null (strstr (c->v[i].path, ".wh."));
  overlay_changes_free (c);
}

/* linkat(2) of an O_TMPFILE fd, as installers name a finished file */
static int
link_fd (int fd, const char *to)
{
  char p[64];
  snprintf (p, sizeof p, "/proc/self/fd/%d", fd);
  return linkat (AT_FDCWD, p, AT_FDCWD, to, AT_SYMLINK_FOLLOW);
}

static void
test_tmpfile (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  autofree char *dir = P (f, "a"), *named = P (f, "a/named"), *again = P (f, "a/again");
  autofree char *wh = P (f, "a/.wh.x"), *never = P (f, "a/never");
  int fd = open (dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0640);
  assert_true (fd >= 0);
  struct stat st;
  assert_int_equal (fstat (fd, &st), 0);
  assert_true (S_ISREG (st.st_mode));
  assert_int_equal (st.st_nlink, 0);
  assert_int_equal (pwrite (fd, "data", 4, 0), 4);
  ASSERT_ERRNO (link_fd (fd, wh), EPERM);
  assert_int_equal (link_fd (fd, named), 0);
  assert_int_equal (fstat (fd, &st), 0);
  assert_int_equal (st.st_nlink, 1);
  ASSERT_FILE (f, "a/named", "data");
  /* its first name taken and gone again, it is an unlinked file like any */
  assert_int_equal (unlink (named), 0);
  ASSERT_ERRNO (link_fd (fd, again), ENOENT);
  assert_int_equal (link_fd (fd, named), -1);
  close (fd);
  fd = open (dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, "kept", 4, 0), 4);
  assert_int_equal (link_fd (fd, named), 0);
  close (fd);
  /* O_EXCL: never linkable (the kernel's check); unlinked: no change */
  fd = open (dir, O_TMPFILE | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  assert_true (fd >= 0);
  ASSERT_ERRNO (link_fd (fd, never), ENOENT);
  close (fd);
  fd = open (dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, "gone", 4, 0), 4);
  close (fd);
  overlay_changes *c = commit (f);
  assert_non_null (find_change (c, OVERLAY_CHANGE_ADD, "a/named"));
  assert_null (find_change (c, OVERLAY_CHANGE_ADD, "a/never"));
  assert_null (find_change (c, OVERLAY_CHANGE_ADD, "a/again"));
  /* the directory changed for the name only: named is all there is */
  size_t files = 0;
  for (size_t i = 0; i < c->n; i++)
    files += c->v[i].kind == OVERLAY_CHANGE_ADD && S_ISREG (c->v[i].mode);
  assert_int_equal (files, 1);
  overlay_changes_free (c);
  ASSERT_FILE (f, "a/named", "kept");
}

/* A copy-up of a big file does not hold the model lock: the step's other
 * requests go on while it copies (issue 21). The file is made and
 * committed first, so opening it for writing copies it up from the frozen
 * generation; meanwhile the main thread creates files and times each. */
typedef struct copy_job
{
  const char *path;
  double ms;
  int err;
  volatile int done;
} copy_job;

static double
ms_now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return (double) t.tv_sec * 1e3 + (double) t.tv_nsec / 1e6;
}

static void *
copy_job_run (void *arg)
{
  copy_job *j = arg;
  double t0 = ms_now ();
  int fd = open (j->path, O_WRONLY | O_CLOEXEC);
  j->err = fd < 0 ? errno : 0;
  j->ms = ms_now () - t0;
  if (fd >= 0)
    {
      if (pwrite (fd, "X", 1, 0) != 1)
        j->err = errno;
      close (fd);
    }
  __atomic_store_n (&j->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void
test_copy_up_unlocked (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  const size_t chunk = 1 << 20, chunks = 768;
  autofree char *big = P (f, "big"), *buf = xmalloc (chunk);
  int fd = open (big, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  for (size_t i = 0; i < chunks; i++)
    {
      memset (buf, 'a' + (int) (i % 26), chunk);
      assert_int_equal (write (fd, buf, chunk), (ssize_t) chunk);
    }
  close (fd);
  struct stat before;
  assert_int_equal (stat (big, &before), 0);
  overlay_changes_free (commit (f));

  copy_job j = { .path = big };
  pthread_t t;
  double start = ms_now ();
  assert_int_equal (pthread_create (&t, NULL, copy_job_run, &j), 0);
  double worst = 0;
  int during = 0;
  for (int i = 0; !__atomic_load_n (&j.done, __ATOMIC_ACQUIRE); i++)
    {
      autofree char *c = xasprintf ("%s/c%d", f->mnt, i);
      double t0 = ms_now ();
      int cfd = open (c, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      double dt = ms_now () - t0;
      assert_true (cfd >= 0);
      close (cfd);
      if (!__atomic_load_n (&j.done, __ATOMIC_ACQUIRE))
        {
          during++;
          if (dt > worst)
            worst = dt;
        }
    }
  pthread_join (t, NULL);
  assert_int_equal (j.err, 0);
  double copy_ms = ms_now () - start;
  print_message ("copy-up of %zu MiB: %.0f ms; %d creates meanwhile, the slowest %.1f ms\n", chunks, copy_ms,
                 during, worst);
  if (copy_ms < 100)
    skip (); /* a filesystem that clones the file: nothing to overlap */
  /* with the lock held, one create would have waited for most of the copy */
  assert_true (during >= 3);
  assert_true (worst < copy_ms / 3);
  /* the copy is the file: first and last chunk, size, and the time kept */
  struct stat after;
  assert_int_equal (stat (big, &after), 0);
  assert_int_equal (after.st_size, before.st_size);
  fd = open (big, O_RDONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  char c2[2];
  assert_int_equal (pread (fd, c2, 2, 0), 2);
  assert_int_equal (c2[0], 'X');
  assert_int_equal (c2[1], 'a');
  assert_int_equal (pread (fd, c2, 1, (off_t) (chunks * chunk - 1)), 1);
  assert_int_equal (c2[0], 'a' + (int) ((chunks - 1) % 26));
  close (fd);
  overlay_changes *c = commit (f);
  assert_non_null (find_change (c, OVERLAY_CHANGE_ADD, "big"));
  overlay_changes_free (c);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_merged_view, setup, teardown),
    cmocka_unit_test_setup_teardown (test_write_copy_up, setup, teardown),
    cmocka_unit_test_setup_teardown (test_create_unlink_whiteout, setup, teardown),
    cmocka_unit_test_setup_teardown (test_rename, setup, teardown),
    cmocka_unit_test_setup_teardown (test_hardlinks, setup, teardown),
    cmocka_unit_test_setup_teardown (test_unlink_open_and_sparse, setup, teardown),
    cmocka_unit_test_setup_teardown (test_special_files, setup, teardown),
    cmocka_unit_test_setup_teardown (test_metadata_changes, setup, teardown),
    cmocka_unit_test_setup_teardown (test_xattrs_and_setcap, setup, teardown),
    cmocka_unit_test_setup_teardown (test_masked_paths, setup, teardown),
    cmocka_unit_test_setup_teardown (test_single_id_mode, setup, teardown),
    cmocka_unit_test_setup_teardown (test_whiteout_names, setup, teardown),
    cmocka_unit_test_setup_teardown (test_tmpfile, setup, teardown),
    cmocka_unit_test_setup_teardown (test_copy_up_unlocked, setup, teardown),
  };
  return cmocka_run_group_tests (tests, group_setup, NULL);
}
