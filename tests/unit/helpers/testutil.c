/* testutil.c - shared helpers for cmocka unit tests. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

char *
test_mkdtemp (int *fd)
{
  const char *tmp = getenv ("TMPDIR");
  char *path = xasprintf ("%s/kiln-unit.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp (path) == NULL)
    fail_msg ("mkdtemp '%s' failed", path);
  *fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (*fd < 0)
    fail_msg ("open '%s' failed", path);
  return path;
}

void
test_rmtree (const char *path)
{
  autofree char *dir = xstrdup (path);
  char *slash = strrchr (dir, '/');
  assert_non_null (slash);
  *slash = '\0';
  int dfd = open (*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (dfd >= 0);
  autoerror kiln_error *err = NULL;
  int r = fs_rm_rf_at (dfd, slash + 1, &err);
  close (dfd);
  assert_ok (r, err);
}

void
test_write_file (int dirfd, const char *path, const char *content)
{
  int fd = openat (dirfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    fail_msg ("create '%s' failed", path);
  size_t len = strlen (content);
  assert_int_equal (write (fd, content, len), (ssize_t) len);
  close (fd);
}

void
test_put_file (int dirfd, const char *path, const char *content, unsigned mode)
{
  kiln_error *err = NULL;
  const char *slash = strrchr (path, '/');
  if (slash)
    {
      char *dir = xstrndup (path, (size_t) (slash - path));
      int r = fs_mkdir_p_at (dirfd, dir, 0755, &err);
      free (dir);
      assert_ok (r, err);
    }
  test_write_file (dirfd, path, content);
  assert_int_equal (fchmodat (dirfd, path, (mode_t) mode, 0), 0);
}

bool
test_err_contains (const kiln_error *err, const char *needle)
{
  return err && err->msg && strstr (err->msg, needle) != NULL;
}

static bool
write_proc (const char *path, const char *text)
{
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  bool ok = write (fd, text, strlen (text)) == (ssize_t) strlen (text);
  close (fd);
  return ok;
}

const char *
test_fuse_namespace (void)
{
  if (geteuid () != 0)
    {
      uid_t uid = getuid ();
      gid_t gid = getgid ();
      if (unshare (CLONE_NEWUSER | CLONE_NEWNS) < 0)
        return "cannot create a user namespace";
      char map[64];
      write_proc ("/proc/self/setgroups", "deny");
      snprintf (map, sizeof map, "0 %u 1", (unsigned) uid);
      if (!write_proc ("/proc/self/uid_map", map))
        return "cannot write the user namespace's uid_map";
      snprintf (map, sizeof map, "0 %u 1", (unsigned) gid);
      if (!write_proc ("/proc/self/gid_map", map))
        return "cannot write the user namespace's gid_map";
    }
  else if (unshare (CLONE_NEWNS) < 0)
    return "cannot create a mount namespace";
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return "cannot make mounts private";
  if (access ("/dev/fuse", R_OK | W_OK) < 0)
    return "/dev/fuse is not accessible (chmod 0666 /dev/fuse)";
  return NULL;
}
