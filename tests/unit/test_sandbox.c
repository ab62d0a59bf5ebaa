/* test_sandbox.c - sandbox helpers that run without namespaces. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sandbox/sandbox.h"
#include "util/alloc.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
test_parse_modes (void **state)
{
  (void) state;
  sandbox_userns_mode u;
  sandbox_net_mode n;
  kiln_error *err = NULL;
  assert_int_equal (sandbox_parse_userns ("single", &u, &err), 0);
  assert_int_equal (u, SANDBOX_USERNS_SINGLE);
  assert_int_equal (sandbox_parse_userns ("full", &u, &err), 0);
  assert_int_equal (u, SANDBOX_USERNS_FULL);
  assert_true (sandbox_parse_userns ("half", &u, &err) < 0);
  assert_non_null (strstr (err->msg, "'half'"));
  kiln_error_clear (&err);
  assert_int_equal (sandbox_parse_network ("none", &n, &err), 0);
  assert_int_equal (n, SANDBOX_NET_NONE);
  assert_int_equal (sandbox_parse_network ("default", &n, &err), 0);
  assert_int_equal (n, SANDBOX_NET_HOST);
  assert_true (sandbox_parse_network ("bridge", &n, &err) < 0);
  kiln_error_clear (&err);
}

static void
test_describe (void **state)
{
  (void) state;
  sandbox_result r = { true, 2 };
  char *s = sandbox_result_describe (&r);
  assert_string_equal (s, "exited with status 2");
  free (s);
  r = (sandbox_result) { false, 9 };
  s = sandbox_result_describe (&r);
  assert_non_null (strstr (s, "killed by signal 9"));
  free (s);
  sandbox_idmap m = { .mode = SANDBOX_USERNS_SINGLE, .host_uid = 1000, .host_gid = 1000 };
  s = sandbox_idmap_describe (&m);
  assert_non_null (strstr (s, "single (container 0 -> host 1000:1000"));
  free (s);
}

static void
test_idmap_root_never_zero (void **state)
{
  (void) state;
  if (geteuid () != 0)
    skip ();
  sandbox_idmap m;
  kiln_error *err = NULL;
  assert_int_equal (sandbox_idmap_resolve (SANDBOX_USERNS_AUTO, 0, &m, &err), 0);
  assert_int_equal (m.mode, SANDBOX_USERNS_FULL);
  assert_true (m.host_uid != 0 && m.host_gid != 0);
  assert_int_equal (m.host_uid, SANDBOX_ROOT_MAP_BASE);
  assert_true (sandbox_idmap_resolve (SANDBOX_USERNS_AUTO, 4294967000u, &m, &err) < 0);
  kiln_error_clear (&err);
}

static void
test_mountpoints_created_and_removed (void **state)
{
  (void) state;
  char tmpl[] = "/tmp/kiln-test-sbx.XXXXXX";
  assert_non_null (mkdtemp (tmpl));
  int fd = open (tmpl, O_PATH | O_DIRECTORY);
  assert_true (fd >= 0);
  assert_int_equal (mkdirat (fd, "proc", 0755), 0);
  char **created = NULL;
  kiln_error *err = NULL;
  assert_int_equal (sandbox_prepare_mountpoints (fd, &created, &err), 0);
  /* proc existed; dev, sys, etc and the three etc files were created */
  assert_int_equal (strv_len (created), 6);
  assert_string_equal (created[0], "dev");
  assert_string_equal (created[2], "etc");
  struct stat st;
  assert_int_equal (fstatat (fd, "etc/hosts", &st, AT_SYMLINK_NOFOLLOW), 0);
  assert_true (S_ISREG (st.st_mode));
  sandbox_remove_mountpoints (fd, created);
  assert_true (fstatat (fd, "etc", &st, 0) < 0);
  assert_true (fstatat (fd, "dev", &st, 0) < 0);
  assert_int_equal (fstatat (fd, "proc", &st, 0), 0);
  strv_free (created);
  created = NULL;
  /* A symlinked /etc is refused, never followed. */
  assert_int_equal (symlinkat ("/", fd, "etc"), 0);
  assert_true (sandbox_prepare_mountpoints (fd, &created, &err) < 0);
  assert_non_null (strstr (err->msg, "'/etc'"));
  kiln_error_clear (&err);
  sandbox_remove_mountpoints (fd, created);
  strv_free (created);
  unlinkat (fd, "etc", 0);
  unlinkat (fd, "proc", AT_REMOVEDIR);
  close (fd);
  assert_int_equal (rmdir (tmpl), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_modes),
    cmocka_unit_test (test_describe),
    cmocka_unit_test (test_idmap_root_never_zero),
    cmocka_unit_test (test_mountpoints_created_and_removed),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
