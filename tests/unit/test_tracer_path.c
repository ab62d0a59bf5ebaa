/* test_tracer_path.c - ptrace isolation's guest path translation
 * (src/sandbox/tracer_path.c): symlinks resolved in the guest, ".." clamped
 * at the root, binds, parents of missing names, errors; and tracer_probe. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "sandbox/tracer_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fx
{
  char *tmp;
  int tmpfd;
  char *root;
  char *hostsfile;
  tracer_bind binds[3];
  tracer_fs fs;
} fx;

static void
mk (fx *f, const char *rel, bool dir)
{
  autofree char *p = xasprintf ("%s/%s", f->root, rel);
  if (dir)
    assert_int_equal (mkdir (p, 0755), 0);
  else
    {
      int fd = open (p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      assert_true (fd >= 0);
      close (fd);
    }
}

static void
ln (fx *f, const char *target, const char *rel)
{
  autofree char *p = xasprintf ("%s/%s", f->root, rel);
  assert_int_equal (symlink (target, p), 0);
}

static int
setup (void **state)
{
  fx *f = xzalloc (sizeof *f);
  f->tmp = test_mkdtemp (&f->tmpfd);
  f->root = xasprintf ("%s/root", f->tmp);
  assert_int_equal (mkdir (f->root, 0755), 0);
  mk (f, "etc", true);
  mk (f, "etc/passwd", false);
  mk (f, "usr", true);
  mk (f, "usr/bin", true);
  mk (f, "usr/bin/env", false);
  mk (f, "proc", true);
  ln (f, "usr/bin", "bin");           /* relative */
  ln (f, "/etc", "abs");              /* absolute: from the root */
  ln (f, "../../../../etc", "usr/up"); /* .. clamped */
  ln (f, "loop2", "loop1");
  ln (f, "loop1", "loop2");
  ln (f, "/nonexistent/x", "dangling");
  f->hostsfile = xasprintf ("%s/hosts", f->tmp);
  int fd = open (f->hostsfile, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  close (fd);
  f->binds[0] = (tracer_bind){ .guest = "/proc", .host = "/proc" };
  f->binds[1] = (tracer_bind){ .guest = "/etc/hosts", .host = f->hostsfile };
  kiln_error *err = NULL;
  assert_int_equal (tracer_fs_init (&f->fs, f->root, f->binds, 2, &err), 0);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  fx *f = *state;
  tracer_fs_clear (&f->fs);
  test_rmtree (f->tmp);
  close (f->tmpfd);
  free (f->tmp);
  free (f->root);
  free (f->hostsfile);
  free (f);
  return 0;
}

/* Resolve and check the guest path (NULL: expect error e). */
static void
check (fx *f, const char *base, const char *path, int flags, const char *guest, int e, bool exists)
{
  tracer_path p;
  int r = tracer_resolve (&f->fs, base, path, flags, &p);
  if (!guest)
    {
      assert_int_equal (r, -e);
      return;
    }
  assert_int_equal (r, 0);
  assert_string_equal (p.guest, guest);
  if (!p.bind)
    {
      autofree char *host = xasprintf ("%s%s", f->fs.root, strcmp (guest, "/") == 0 ? "" : guest);
      assert_string_equal (p.host, host);
      assert_int_equal (p.fd >= 0, exists);
    }
  tracer_path_clear (&p);
}

static void
test_symlinks (void **state)
{
  fx *f = *state;
  check (f, "/", "/bin/env", TR_FOLLOW, "/usr/bin/env", 0, true);
  check (f, "/", "/abs/passwd", TR_FOLLOW, "/etc/passwd", 0, true);
  check (f, "/", "/usr/up/passwd", 0, "/etc/passwd", 0, true);
  check (f, "/", "/abs", 0, "/abs", 0, true);     /* not followed: the link */
  check (f, "/", "/abs", TR_FOLLOW, "/etc", 0, true);
  check (f, "/", "/abs/", 0, "/etc", 0, true);    /* a trailing slash follows */
  check (f, "/", "/loop1", TR_FOLLOW, NULL, ELOOP, false);
  check (f, "/", "/loop1/x", 0, NULL, ELOOP, false);
  check (f, "/", "/dangling", 0, "/dangling", 0, true);
  check (f, "/", "/dangling", TR_FOLLOW, NULL, ENOENT, false);
  check (f, "/", "/abs", TR_NOSYMLINKS | TR_FOLLOW, NULL, ELOOP, false);
}

static void
test_dots_and_relative (void **state)
{
  fx *f = *state;
  check (f, "/", "/../../..", 0, "/", 0, true);
  check (f, "/", "../../etc/./passwd", 0, "/etc/passwd", 0, true);
  check (f, "/usr/bin", "../../../etc", 0, "/etc", 0, true);
  check (f, "/usr", "bin/env", 0, "/usr/bin/env", 0, true);
  check (f, "/", "/etc/passwd/x", 0, NULL, ENOTDIR, false);
  check (f, "/", "/etc/passwd/", 0, NULL, ENOTDIR, false);
  check (f, "/", "/nope/x", 0, NULL, ENOENT, false);
  /* a missing last name: its parent and name, for creation */
  tracer_path p;
  assert_int_equal (tracer_resolve (&f->fs, "/", "/abs/newfile", 0, &p), 0);
  assert_int_equal (p.fd, -1);
  assert_true (p.dirfd >= 0);
  assert_string_equal (p.name, "newfile");
  assert_string_equal (p.guest, "/etc/newfile");
  tracer_path_clear (&p);
}

static void
test_binds (void **state)
{
  fx *f = *state;
  tracer_path p;
  assert_int_equal (tracer_resolve (&f->fs, "/", "/proc/self/fd/1", TR_FOLLOW, &p), 0);
  assert_non_null (p.bind);
  assert_string_equal (p.host, "/proc/self/fd/1");
  tracer_path_clear (&p);
  /* through a symlink into the bind, and out again with .. */
  ln (f, "/proc/self", "me");
  assert_int_equal (tracer_resolve (&f->fs, "/", "/me/status", TR_FOLLOW, &p), 0);
  assert_string_equal (p.host, "/proc/self/status");
  tracer_path_clear (&p);
  check (f, "/", "/proc/../etc/passwd", 0, "/etc/passwd", 0, true);
  assert_int_equal (tracer_resolve (&f->fs, "/", "/abs/hosts", TR_FOLLOW, &p), 0);
  assert_string_equal (p.host, f->hostsfile);
  tracer_path_clear (&p);
  check (f, "/", "/etc/hosts/x", 0, NULL, ENOTDIR, false);
  /* relative to a cwd inside a bind */
  assert_int_equal (tracer_resolve (&f->fs, "/proc/self", "../1/stat", 0, &p), 0);
  assert_string_equal (p.host, "/proc/1/stat");
  tracer_path_clear (&p);
}

static void
test_host_to_guest (void **state)
{
  fx *f = *state;
  autofree char *a = tracer_host_to_guest (&f->fs, f->fs.root);
  assert_string_equal (a, "/");
  autofree char *in = xasprintf ("%s/etc/passwd", f->fs.root);
  autofree char *b = tracer_host_to_guest (&f->fs, in);
  assert_string_equal (b, "/etc/passwd");
  autofree char *c = tracer_host_to_guest (&f->fs, "/proc/12/cwd");
  assert_string_equal (c, "/proc/12/cwd");
  autofree char *d = tracer_host_to_guest (&f->fs, f->hostsfile);
  assert_string_equal (d, "/etc/hosts");
  autofree char *sibling = xasprintf ("%sx/etc", f->fs.root);
  assert_null (tracer_host_to_guest (&f->fs, sibling));
  assert_null (tracer_host_to_guest (&f->fs, "/etc/shadow"));
}

/* The one-openat2 fast path (no symlink, ".", ".." or bind on the way)
 * and its fall-backs give what the walk gives. */
static void
test_fast_path (void **state)
{
  fx *f = *state;
  tracer_path p;
  /* an existing object: no parent fd until asked for */
  assert_int_equal (tracer_resolve (&f->fs, "/", "//usr//bin/env", 0, &p), 0);
  assert_string_equal (p.guest, "/usr/bin/env");
  assert_string_equal (p.name, "env");
  assert_true (p.fd >= 0);
  int d = tracer_path_dirfd (&f->fs, &p);
  assert_true (d >= 0);
  struct stat a, b;
  autofree char *bin = xasprintf ("%s/usr/bin", f->fs.root);
  assert_int_equal (fstat (d, &a), 0);
  assert_int_equal (stat (bin, &b), 0);
  assert_true (a.st_ino == b.st_ino);
  tracer_path_clear (&p);
  /* a missing last name: parent and name; TR_EXISTING: ENOENT at once */
  assert_int_equal (tracer_resolve (&f->fs, "/usr", "bin/newfile", 0, &p), 0);
  assert_int_equal (p.fd, -1);
  assert_true (p.dirfd >= 0);
  assert_string_equal (p.guest, "/usr/bin/newfile");
  tracer_path_clear (&p);
  check (f, "/", "/usr/bin/newfile", TR_EXISTING, NULL, ENOENT, false);
  check (f, "/", "/usr/nope/newfile", 0, NULL, ENOENT, false);
  /* a final symlink not followed is the link; followed takes the walk */
  check (f, "/", "/usr/up", 0, "/usr/up", 0, true);
  check (f, "/", "/usr/up", TR_FOLLOW, "/etc", 0, true);
  /* after a symlink the rest goes the fast way again */
  check (f, "/", "/bin/env", 0, "/usr/bin/env", 0, true);
  check (f, "/", "/bin/nope", TR_EXISTING, NULL, ENOENT, false);
  check (f, "/", "/abs/newfile", TR_EXISTING, NULL, ENOENT, false);
  /* TR_DIR: a file is ENOTDIR */
  check (f, "/", "/etc/passwd", TR_DIR | TR_FOLLOW, NULL, ENOTDIR, false);
  /* binds are never the fast path's */
  assert_int_equal (tracer_resolve (&f->fs, "/", "/etc/hosts", TR_FOLLOW, &p), 0);
  assert_non_null (p.bind);
  tracer_path_clear (&p);
  /* the root's own file vs a bind (file bind: by inode) */
  autofree char *pw = xasprintf ("%s/etc/passwd", f->fs.root);
  assert_int_equal (stat (pw, &a), 0);
  assert_true (tracer_fs_in_root (&f->fs, &a, pw));
  assert_int_equal (stat (f->hostsfile, &b), 0);
  assert_false (tracer_fs_in_root (&f->fs, &b, f->hostsfile));
}

static void
test_normalize (void **state)
{
  (void) state;
  const char *cases[][2] = { { "/", "/" }, { "//a//b/", "/a/b" }, { "/a/./b/../c", "/a/c" },
                             { "/../..", "/" }, { "/a/b/../../..", "/" } };
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++)
    {
      autofree char *n = tracer_path_normalize (cases[i][0]);
      assert_string_equal (n, cases[i][1]);
    }
}

static void
test_probe (void **state)
{
  (void) state;
  int abi = -1;
  kiln_error *err = NULL;
  int r = tracer_probe (&abi, &err);
  if (r < 0)
    {
      /* say why, but this machine is expected to have it all */
      fprintf (stderr, "tracer_probe: %s\n", err->msg);
      kiln_error_free (err);
    }
  assert_int_equal (r, 0);
  assert_true (abi >= 1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_symlinks, setup, teardown),
    cmocka_unit_test_setup_teardown (test_dots_and_relative, setup, teardown),
    cmocka_unit_test_setup_teardown (test_binds, setup, teardown),
    cmocka_unit_test_setup_teardown (test_host_to_guest, setup, teardown),
    cmocka_unit_test_setup_teardown (test_fast_path, setup, teardown),
    cmocka_unit_test (test_normalize),
    cmocka_unit_test (test_probe),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
