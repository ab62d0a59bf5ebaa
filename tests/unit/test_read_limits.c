/* test_read_limits.c - the file readers' size limits and read errors: the
 * Dockerfile, .dockerignore and seccomp profile loaders read through
 * fs_read_fd and keep their own messages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "build/dockerfile.h"
#include "build/dockerignore.h"
#include "helpers/testutil.h"
#include "sandbox/seccomp_profile.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A sparse file of size bytes at dirfd/name. */
static void
make_sparse (int dirfd, const char *name, off_t size)
{
  int fd = openat (dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (ftruncate (fd, size), 0);
  close (fd);
}

static void
test_dockerfile_limit (void **state)
{
  (void) state;
  int dfd;
  autofree char *dir = test_mkdtemp (&dfd);
  autofree char *path = xasprintf ("%s/Dockerfile", dir);
  make_sparse (dfd, "Dockerfile", 16 * 1024 * 1024 + 1);
  dockerfile *df = NULL;
  autoerror kiln_error *err = NULL;
  assert_int_equal (dockerfile_parse_file (path, NULL, &df, &err), -1);
  autofree char *want = xasprintf ("'%s' is larger than 16 MiB", path);
  assert_string_equal (err->msg, want);
  assert_int_equal (err->status, 0);
  kiln_error_clear (&err);
  test_write_file (dfd, "Dockerfile", "FROM scratch\n");
  assert_ok (dockerfile_parse_file (path, NULL, &df, &err), err);
  dockerfile_free (df);
  close (dfd);
  test_rmtree (dir);
}

static void
test_dockerignore_errors (void **state)
{
  (void) state;
  int dfd;
  autofree char *dir = test_mkdtemp (&dfd);
  dockerignore *d = NULL;
  autoerror kiln_error *err = NULL;
  make_sparse (dfd, ".dockerignore", 16 * 1024 * 1024 + 1);
  assert_int_equal (dockerignore_load (dir, NULL, &d, &err), -1);
  assert_string_equal (err->msg, "'.dockerignore' is larger than 16 MiB");
  assert_int_equal (err->status, 0);
  kiln_error_clear (&err);
  assert_int_equal (unlinkat (dfd, ".dockerignore", 0), 0);
  assert_int_equal (mkdirat (dfd, ".dockerignore", 0755), 0);
  assert_true (dockerignore_load (dir, NULL, &d, &err) < 0);
  assert_string_equal (err->msg, "read '.dockerignore'");
  assert_int_equal (err->status, EISDIR);
  kiln_error_clear (&err);
  assert_int_equal (unlinkat (dfd, ".dockerignore", AT_REMOVEDIR), 0);
  test_write_file (dfd, ".dockerignore", "a\nb\n");
  assert_ok (dockerignore_load (dir, NULL, &d, &err), err);
  assert_int_equal (dockerignore_count (d), 2);
  dockerignore_free (d);
  close (dfd);
  test_rmtree (dir);
}

static void
test_seccomp_limit (void **state)
{
  (void) state;
  int dfd;
  autofree char *dir = test_mkdtemp (&dfd);
  autofree char *path = xasprintf ("%s/p.json", dir);
  make_sparse (dfd, "p.json", SECCOMP_PROFILE_MAX_SIZE + 1);
  seccomp_profile *p = NULL;
  autoerror kiln_error *err = NULL;
  assert_int_equal (seccomp_profile_load_file (path, &p, &err), -1);
  autofree char *want = xasprintf ("seccomp profile '%s': larger than %u bytes", path, SECCOMP_PROFILE_MAX_SIZE);
  assert_string_equal (err->msg, want);
  assert_int_equal (err->status, 0);
  close (dfd);
  test_rmtree (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_dockerfile_limit),
    cmocka_unit_test (test_dockerignore_errors),
    cmocka_unit_test (test_seccomp_limit),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
