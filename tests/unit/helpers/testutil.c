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
#include <stdlib.h>
#include <string.h>
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

bool
test_err_contains (const kiln_error *err, const char *needle)
{
  return err && err->msg && strstr (err->msg, needle) != NULL;
}
