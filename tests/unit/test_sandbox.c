/* test_sandbox.c - sandbox helpers that run without namespaces, and the
 * failure paths of the FUSE root filesystem handoff (which need user
 * namespaces and a usable /dev/fuse; skipped otherwise). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "overlay/overlay.h"
#include "sandbox/sandbox.h"
#include "helpers/testutil.h"
#include "util/alloc.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
  assert_int_equal (n, SANDBOX_NET_PRIVATE);
  assert_int_equal (sandbox_parse_network ("private", &n, &err), 0);
  assert_int_equal (n, SANDBOX_NET_PRIVATE);
  assert_int_equal (sandbox_parse_network ("host", &n, &err), 0);
  assert_int_equal (n, SANDBOX_NET_HOST);
  assert_true (sandbox_parse_network ("bridge", &n, &err) < 0);
  assert_non_null (strstr (err->msg, "expected private, default, host or none"));
  kiln_error_clear (&err);
}

static void
test_describe (void **state)
{
  (void) state;
  sandbox_result r = { true, 2, SANDBOX_LIMIT_NONE };
  char *s = sandbox_result_describe (&r);
  assert_string_equal (s, "exited with status 2");
  free (s);
  r = (sandbox_result) { false, 9, SANDBOX_LIMIT_NONE };
  s = sandbox_result_describe (&r);
  assert_non_null (strstr (s, "killed by signal 9"));
  free (s);
  r = (sandbox_result) { false, 9, SANDBOX_LIMIT_MEMORY };
  s = sandbox_result_describe (&r);
  assert_string_equal (s, "killed: out of memory");
  free (s);
  r = (sandbox_result) { false, 9, SANDBOX_LIMIT_PIDS };
  s = sandbox_result_describe (&r);
  assert_string_equal (s, "killed: process limit reached");
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

/* ---- FUSE root filesystem handoff ---- */

/* User namespaces work and /dev/fuse is open to their root (mode 0666). */
static bool
can_mount_fuse_in_userns (void)
{
  struct stat st;
  if (stat ("/dev/fuse", &st) < 0 || (st.st_mode & 0006) != 0006)
    return false;
  pid_t p = fork ();
  if (p == 0)
    _exit (unshare (CLONE_NEWUSER) == 0 ? 0 : 1);
  int status;
  return p > 0 && waitpid (p, &status, 0) == p && WIFEXITED (status) && WEXITSTATUS (status) == 0;
}

typedef struct fuse_cb_state
{
  int calls;
  bool fail;
} fuse_cb_state;

/* Never serves: either refuses, or drops the fd (the connection dies). */
static int
fuse_cb (void *ctx, int fuse_fd, kiln_error **err)
{
  fuse_cb_state *s = ctx;
  s->calls++;
  close (fuse_fd);
  if (s->fail)
    return kiln_error_make (err, 0, "refused by the test");
  return 0;
}

static int
run_fuse_step (fuse_cb_state *s, sandbox_userns_mode mode, kiln_error **err)
{
  sandbox_idmap map;
  if (sandbox_idmap_resolve (mode, 0, &map, err) < 0)
    return -1;
  char *argv[] = { (char *) "true", NULL };
  char *env[] = { NULL };
  sandbox_config cfg = { .argv = argv, .env = env, .idmap = &map, .rootfs_fuse = fuse_cb,
                         .rootfs_fuse_ctx = s };
  sandbox_result res;
  alarm (30); /* a hang fails the test instead of blocking the suite */
  int r = sandbox_run (&cfg, &res, err);
  alarm (0);
  return r;
}

static void
assert_no_children (void)
{
  errno = 0;
  assert_int_equal (waitpid (-1, NULL, WNOHANG), -1);
  assert_int_equal (errno, ECHILD);
}

static void
test_rootfs_fuse_callback_failure_kills_step (void **state)
{
  (void) state;
  if (!can_mount_fuse_in_userns ())
    skip ();
  fuse_cb_state s = { 0, true };
  kiln_error *err = NULL;
  assert_true (run_fuse_step (&s, SANDBOX_USERNS_AUTO, &err) < 0);
  assert_int_equal (s.calls, 1);
  assert_non_null (err);
  assert_non_null (strstr (err->msg, "serving the FUSE root filesystem: refused by the test"));
  kiln_error_clear (&err);
  assert_no_children ();
}

static void
test_rootfs_fuse_dropped_fd_fails_setup (void **state)
{
  (void) state;
  if (!can_mount_fuse_in_userns ())
    skip ();
  /* The callback "succeeds" but closes the fd: the connection is aborted,
   * init's first access to the mount fails (ENOTCONN) instead of hanging. */
  fuse_cb_state s = { 0, false };
  kiln_error *err = NULL;
  assert_true (run_fuse_step (&s, SANDBOX_USERNS_AUTO, &err) < 0);
  assert_int_equal (s.calls, 1);
  assert_non_null (err);
  assert_non_null (strstr (err->msg, "setting up the sandbox"));
  assert_int_equal (err->status, ENOTCONN);
  kiln_error_clear (&err);
  assert_no_children ();
}

static void
test_rootfs_fuse_single_mode_as_root_refused (void **state)
{
  (void) state;
  if (geteuid () != 0)
    skip ();
  fuse_cb_state s = { 0, true };
  kiln_error *err = NULL;
  assert_true (run_fuse_step (&s, SANDBOX_USERNS_SINGLE, &err) < 0);
  assert_int_equal (s.calls, 0);
  assert_non_null (strstr (err->msg, "single ID mode needs kiln to run as the host user"));
  kiln_error_clear (&err);
}

static int
serve_overlay (void *ctx, int fuse_fd, kiln_error **err)
{
  return overlay_serve_fd (ctx, fuse_fd, err);
}

static void
collect_output (void *ctx, sandbox_stream stream, const char *line, size_t len)
{
  (void) stream;
  char **out = ctx;
  char *n = xasprintf ("%s%.*s\n", *out ? *out : "", (int) len, line);
  free (*out);
  *out = n;
}

static void
run_on_overlay (overlay *ovl, const sandbox_idmap *map, const char *script, char **out)
{
  char *argv[] = { (char *) "/bin/busybox", (char *) "sh", (char *) "-c", (char *) script, NULL };
  char *env[] = { NULL };
  sandbox_config cfg = { .argv = argv, .env = env, .idmap = map, .rootfs_fuse = serve_overlay,
                         .rootfs_fuse_ctx = ovl, .output = collect_output, .output_ctx = out };
  sandbox_result res;
  kiln_error *err = NULL;
  alarm (30);
  int r = sandbox_run (&cfg, &res, &err);
  alarm (0);
  assert_ok (r, err);
  assert_true (res.exited);
  assert_int_equal (res.status, 0);
  /* The step's mount namespace is gone: the session loop ends by itself. */
  overlay_stop (ovl);
}

static const overlay_change *
find_change (const overlay_changes *c, const char *path)
{
  for (size_t i = 0; i < c->n; i++)
    if (strcmp (c->v[i].path, path) == 0)
      return &c->v[i];
  return NULL;
}

static void
test_rootfs_fuse_overlay_consecutive_steps (void **state)
{
  (void) state;
  struct stat st;
  if (!can_mount_fuse_in_userns () || stat ("/bin/busybox", &st) < 0)
    test_skip ("needs user namespaces, /dev/fuse mode 0666 and /bin/busybox");
  int lfd, sfd;
  char *lower_dir = test_mkdtemp (&lfd);
  char *scratch_dir = test_mkdtemp (&sfd);
  assert_int_equal (chmod (lower_dir, 0755), 0);
  assert_int_equal (mkdirat (lfd, "bin", 0755), 0);
  {
    int in = open ("/bin/busybox", O_RDONLY | O_CLOEXEC);
    int o = openat (lfd, "bin/busybox", O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
    assert_true (in >= 0 && o >= 0);
    char buf[65536];
    ssize_t n;
    while ((n = read (in, buf, sizeof buf)) > 0)
      assert_int_equal (write (o, buf, (size_t) n), n);
    close (in);
    close (o);
  }
  test_write_file (lfd, "greeting", "from the lower\n");
  kiln_error *err = NULL;
  sandbox_idmap map;
  assert_ok (sandbox_idmap_resolve (SANDBOX_USERNS_AUTO, 0, &map, &err), err);
  const char *paths[] = { lower_dir };
  overlay_lower *lower = NULL;
  assert_ok (overlay_lower_open_dirs (paths, 1, &lower, &err), err);
  const char *mask[] = { "proc/", "dev/", "sys/", "etc/resolv.conf", "etc/hosts", "etc/hostname", NULL };
  overlay_config oc = { .lower = lower, .scratch_dirfd = sfd,
                        .id_mode = map.mode == SANDBOX_USERNS_SINGLE ? OVERLAY_IDS_SINGLE : OVERLAY_IDS_FULL,
                        .mask_paths = mask };
  overlay *ovl = NULL;
  assert_ok (overlay_new (&oc, &ovl, &err), err);

  /* Step 1 writes; its change list has the new file owned by the step's root. */
  char *out = NULL;
  run_on_overlay (ovl, &map, "read x < /greeting; echo \"$x\"; echo one > /f1", &out);
  assert_string_equal (out, "from the lower\n");
  overlay_changes *ch = NULL;
  assert_ok (overlay_commit (ovl, &ch, &err), err);
  assert_int_equal (ch->n, 1);
  assert_string_equal (ch->v[0].path, "f1");
  assert_int_equal (ch->v[0].uid, 0);
  assert_int_equal (ch->v[0].gid, 0);
  overlay_changes_free (ch);

  /* Step 2, on a new connection to the same overlay, sees step 1's file. */
  free (out);
  out = NULL;
  run_on_overlay (ovl, &map, "read x < /f1; echo \"$x\"; echo two > /f2; /bin/busybox rm /f1", &out);
  assert_string_equal (out, "one\n");
  assert_ok (overlay_commit (ovl, &ch, &err), err);
  assert_int_equal (ch->n, 2);
  const overlay_change *c1 = find_change (ch, "f1"), *c2 = find_change (ch, "f2");
  assert_non_null (c1);
  assert_non_null (c2);
  assert_int_equal (c1->kind, OVERLAY_CHANGE_WHITEOUT);
  assert_int_equal (c2->kind, OVERLAY_CHANGE_ADD);
  overlay_changes_free (ch);
  free (out);
  overlay_free (ovl);
  assert_no_children ();
  /* the lower was never written */
  assert_int_equal (faccessat (lfd, "f1", F_OK, AT_SYMLINK_NOFOLLOW), -1);
  assert_int_equal (faccessat (lfd, "proc", F_OK, AT_SYMLINK_NOFOLLOW), -1);
  close (lfd);
  close (sfd);
  test_rmtree (lower_dir);
  test_rmtree (scratch_dir);
  free (lower_dir);
  free (scratch_dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_modes),
    cmocka_unit_test (test_describe),
    cmocka_unit_test (test_idmap_root_never_zero),
    cmocka_unit_test (test_mountpoints_created_and_removed),
    cmocka_unit_test (test_rootfs_fuse_callback_failure_kills_step),
    cmocka_unit_test (test_rootfs_fuse_dropped_fd_fails_setup),
    cmocka_unit_test (test_rootfs_fuse_single_mode_as_root_refused),
    cmocka_unit_test (test_rootfs_fuse_overlay_consecutive_steps),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
