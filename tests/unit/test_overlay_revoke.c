/* test_overlay_revoke.c - a committed upper generation never changes again,
 * whatever handles are still open (issue 16, item 1).
 *
 * overlay_commit freezes the step's upper files, which the store links into
 * the published layer. A file handle opened before the commit (an fd a step
 * passed to another stage's process) must then fail every write: WRITE
 * (write-back and O_DIRECT), ftruncate, fallocate, copy_file_range; reads
 * keep working; the next step reads the committed bytes; a new open writes a
 * new generation. The commit also waits for writes in flight: after it
 * returns, the frozen file stays as it is while a writer keeps trying.
 *
 * Runs as root in a private mount namespace; as a plain user in a user
 * namespace mapping its uid to 0 (as test_overlay.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "overlay/overlay.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static bool can_mount;
static const char *skip_reason = "cannot mount fuse here";
static const char *const masks[] = { "proc/", "dev/", NULL };

typedef struct fx
{
  char *tmp;
  int tmpfd;
  int scratch;
  char *mnt;
  overlay *ovl;
  /* files the test opened on the mount: closed before the overlay stops
   * (a failed assertion leaves them open, and the session loop would wait
   * for them) */
  int fds[8];
  unsigned nfds;
} fx;

static int
setup (void **state)
{
  if (!can_mount)
    return 0;
  fx *f = xzalloc (sizeof *f);
  f->tmp = test_mkdtemp (&f->tmpfd);
  f->mnt = xasprintf ("%s/mnt", f->tmp);
  assert_int_equal (mkdirat (f->tmpfd, "l0", 0755), 0);
  assert_int_equal (mkdirat (f->tmpfd, "mnt", 0755), 0);
  assert_int_equal (mkdirat (f->tmpfd, "scratch", 0700), 0);
  int l0 = openat (f->tmpfd, "l0", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  test_write_file (l0, "lowfile", "lower data");
  close (l0);
  f->scratch = openat (f->tmpfd, "scratch", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  autoerror kiln_error *err = NULL;
  autofree char *lp = xasprintf ("%s/l0", f->tmp);
  const char *paths[] = { lp };
  overlay_lower *lower = NULL;
  assert_ok (overlay_lower_open_dirs (paths, 1, &lower, &err), err);
  overlay_config cfg = { .lower = lower, .scratch_dirfd = f->scratch, .id_mode = OVERLAY_IDS_FULL,
                         .mask_paths = masks };
  assert_ok (overlay_new (&cfg, &f->ovl, &err), err);
  assert_ok (overlay_mount (f->ovl, f->mnt, &err), err);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  fx *f = *state;
  if (!f)
    return 0;
  for (unsigned i = 0; i < f->nfds; i++)
    if (f->fds[i] >= 0)
      close (f->fds[i]);
  overlay_free (f->ovl);
  close (f->scratch);
  close (f->tmpfd);
  test_rmtree (f->tmp);
  free (f->tmp);
  free (f->mnt);
  free (f);
  return 0;
}

#define NEED_MOUNT()               \
  do                               \
    {                              \
      if (!can_mount)              \
        test_skip (skip_reason);   \
    }                              \
  while (0)

static int
open_in (fx *f, const char *rel, int flags)
{
  autofree char *p = xasprintf ("%s/%s", f->mnt, rel);
  int fd = open (p, flags | O_CLOEXEC, 0644);
  if (fd >= 0 && f->nfds < 8)
    f->fds[f->nfds++] = fd;
  return fd;
}

/* close an fd open_in gave */
static int
close_in (fx *f, int fd)
{
  for (unsigned i = 0; i < f->nfds; i++)
    if (f->fds[i] == fd)
      f->fds[i] = -1;
  return close (fd);
}

static overlay_changes *
commit (fx *f)
{
  autoerror kiln_error *err = NULL;
  overlay_changes *c = NULL;
  assert_ok (overlay_commit (f->ovl, &c, &err), err);
  return c;
}

/* The data file of path in a change list, read from the scratch dir. */
static char *
data_of (fx *f, const overlay_changes *c, const char *path, char **data_path)
{
  for (size_t i = 0; i < c->n; i++)
    if (c->v[i].kind == OVERLAY_CHANGE_ADD && strcmp (c->v[i].path, path) == 0)
      {
        assert_true (c->v[i].data_private);
        struct stat a, b;
        assert_int_equal (fstat (c->v[i].data_dirfd, &a), 0);
        assert_int_equal (fstat (f->scratch, &b), 0);
        assert_true (a.st_dev == b.st_dev && a.st_ino == b.st_ino);
        autoerror kiln_error *err = NULL;
        char *buf = NULL;
        size_t len = 0;
        assert_ok (fs_read_file_at (f->scratch, c->v[i].data_path, 1 << 20, &buf, &len, &err), err);
        if (data_path)
          *data_path = xstrdup (c->v[i].data_path);
        return buf;
      }
  fail_msg ("'%s' not in the change list", path);
  return NULL;
}

static char *
slurp (fx *f, const char *rel)
{
  autoerror kiln_error *err = NULL;
  autofree char *p = xasprintf ("%s/%s", f->mnt, rel);
  char *buf = NULL;
  size_t len = 0;
  assert_ok (fs_read_file_at (AT_FDCWD, p, 1 << 20, &buf, &len, &err), err);
  return buf;
}

static void
test_revoked_handle (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  int w = open_in (f, "new", O_RDWR | O_CREAT);
  int up = open_in (f, "lowfile", O_RDWR);
  int src = open_in (f, "lowfile", O_RDONLY);
  assert_true (w >= 0 && up >= 0 && src >= 0);
  assert_int_equal (pwrite (w, "committed", 9, 0), 9);
  assert_int_equal (pwrite (up, "LOWER", 5, 0), 5);
  /* the step's data reaches the upper when it closes or syncs its files
   * (syncfs does not wait for FUSE write-back on current kernels) */
  assert_int_equal (fsync (w), 0);
  assert_int_equal (fsync (up), 0);
  overlay_changes *c = commit (f);
  assert_int_equal (overlay_refused_writes (f->ovl), 0);
  autofree char *dnew = NULL, *dlow = NULL;
  autofree char *got = data_of (f, c, "new", &dnew);
  assert_string_equal (got, "committed");
  autofree char *got2 = data_of (f, c, "lowfile", &dlow);
  assert_string_equal (got2, "LOWER data");
  overlay_changes_free (c);

  /* every way to write through the old handles fails, reads work */
  errno = 0;
  if (pwrite (w, "POISONED!", 9, 0) == 9) /* the kernel's cache may take it... */
    assert_true (fsync (w) < 0);        /* ...the write-back is refused */
  assert_int_equal (ftruncate (w, 2), -1);
  assert_int_equal (errno, EBADF);
  int r = fallocate (up, 0, 0, 1 << 16);
  assert_true (r < 0 && (errno == EBADF || errno == EOPNOTSUPP));
  loff_t a = 0, b = 0;
  ssize_t n = copy_file_range (src, &a, up, &b, 5, 0);
  if (n == 5)
    assert_true (fsync (up) < 0);
  char buf[16];
  assert_true (pread (w, buf, sizeof buf, 0) >= 0);
  assert_true (overlay_refused_writes (f->ovl) > 0);
  /* the committed files did not change */
  autofree char *after = NULL, *after2 = NULL;
  size_t len = 0;
  autoerror kiln_error *err = NULL;
  assert_ok (fs_read_file_at (f->scratch, dnew, 4096, &after, &len, &err), err);
  assert_string_equal (after, "committed");
  assert_ok (fs_read_file_at (f->scratch, dlow, 4096, &after2, &len, &err), err);
  assert_string_equal (after2, "LOWER data");

  /* the next step reads what was committed, and writes a new generation */
  overlay_begin_step (f->ovl, 0, 0, masks);
  autofree char *seen = slurp (f, "new");
  assert_string_equal (seen, "committed");
  int w2 = open_in (f, "new", O_RDWR);
  assert_true (w2 >= 0);
  assert_int_equal (pwrite (w2, "step two!", 9, 0), 9);
  assert_int_equal (close_in (f, w2), 0);
  c = commit (f);
  autofree char *d2 = NULL;
  autofree char *got3 = data_of (f, c, "new", &d2);
  assert_string_equal (got3, "step two!");
  assert_string_not_equal (d2, dnew);
  overlay_changes_free (c);
  autofree char *still = NULL;
  assert_ok (fs_read_file_at (f->scratch, dnew, 4096, &still, &len, &err), err);
  assert_string_equal (still, "committed");
  close_in (f, w);
  close_in (f, up);
  close_in (f, src);
}

typedef struct writer
{
  int fd;
  atomic_bool stop;
  atomic_bool committed;
  atomic_uint ok_after, failed_after;
} writer;

static void *
write_loop (void *ud)
{
  writer *wr = ud;
  static char block[1 << 16];
  unsigned i = 0;
  while (!atomic_load (&wr->stop))
    {
      memset (block, 'a' + (int) (i % 26), sizeof block);
      bool after = atomic_load (&wr->committed);
      ssize_t n = pwrite (wr->fd, block, sizeof block, (off_t) (i % 16) * (off_t) sizeof block);
      bool ok = n == (ssize_t) sizeof block && fdatasync (wr->fd) == 0;
      if (after)
        atomic_fetch_add (ok ? &wr->ok_after : &wr->failed_after, 1);
      i++;
    }
  return NULL;
}

/* The data file of path in c (below the scratch dir), or NULL; no
 * assertion, for use while a thread still writes. */
static char *
data_path_of (const overlay_changes *c, const char *path)
{
  for (size_t i = 0; i < c->n; i++)
    if (c->v[i].kind == OVERLAY_CHANGE_ADD && strcmp (c->v[i].path, path) == 0 && c->v[i].data_path)
      return xstrdup (c->v[i].data_path);
  return NULL;
}

/* A writer hammers a file while the step is committed: once overlay_commit
 * returned, the frozen data file never changes, and the writer only fails.
 * Nothing is asserted before the writer has stopped. */
static void
test_commit_waits_for_writes (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  /* O_DIRECT: every write is a WRITE request of its own, racing the commit */
  int fd = open_in (f, "busy", O_RDWR | O_CREAT | O_DIRECT);
  if (fd < 0)
    fd = open_in (f, "busy", O_RDWR | O_CREAT);
  assert_true (fd >= 0);
  writer wr = { .fd = fd };
  pthread_t t;
  assert_int_equal (pthread_create (&t, NULL, write_loop, &wr), 0);
  struct timespec ms20 = { 0, 20 * 1000 * 1000 }, ms150 = { 0, 150 * 1000 * 1000 };
  nanosleep (&ms20, NULL);
  autoerror kiln_error *err = NULL, *rerr = NULL;
  overlay_changes *c = NULL;
  int r = overlay_commit (f->ovl, &c, &err);
  atomic_store (&wr.committed, true);
  autofree char *dp = r == 0 ? data_path_of (c, "busy") : NULL;
  autofree char *snap = NULL, *now = NULL;
  size_t len0 = 0, len1 = 0;
  int r0 = dp ? fs_read_file_at (f->scratch, dp, 1 << 21, &snap, &len0, &rerr) : -1;
  nanosleep (&ms150, NULL);
  atomic_store (&wr.stop, true);
  pthread_join (t, NULL);
  overlay_changes_free (c);
  assert_ok (r, err);
  assert_non_null (dp);
  assert_ok (r0, rerr);
  assert_ok (fs_read_file_at (f->scratch, dp, 1 << 21, &now, &len1, &rerr), rerr);
  assert_true (len0 > 0);
  assert_int_equal (len0, len1);
  assert_memory_equal (snap, now, len0);
  assert_int_equal (atomic_load (&wr.ok_after), 0);
  assert_true (atomic_load (&wr.failed_after) > 0);
  close_in (f, fd);
}

static int
group_setup (void **state)
{
  (void) state;
  skip_reason = test_fuse_namespace ();
  can_mount = skip_reason == NULL;
  return 0;
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_revoked_handle, setup, teardown),
    cmocka_unit_test_setup_teardown (test_commit_waits_for_writes, setup, teardown),
  };
  return cmocka_run_group_tests (tests, group_setup, NULL);
}
