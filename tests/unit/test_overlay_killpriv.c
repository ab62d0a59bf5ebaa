/* test_overlay_killpriv.c - FUSE_HANDLE_KILLPRIV (issue 21): the kernel
 * leaves clearing setuid/setgid to kiln, and stops fetching attributes
 * before every chown.
 *
 * kiln's writev on /dev/fuse adds the INIT flags libfuse 3.14 leaves out of
 * its reply (FUSE_PARALLEL_DIROPS, FUSE_HANDLE_KILLPRIV; overlay_worker.h)
 * to the INIT reply only: once, never to an error reply or a notification,
 * and only what was asked for (the messages go through a pipe and are read
 * back as the kernel would). The model clears what the kernel would for a
 * process without CAP_FSETID: setuid, setgid with group execute, and on
 * chown file capabilities (tests/integration/overlay_cache.bats checks the
 * same through a mount in every ID mode).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "overlay/overlay.h"
#include "overlay/overlay_model.h"
#include "overlay/overlay_ring.h"
#include "overlay/overlay_worker.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct msg
{
  struct fuse_out_header h;
  struct fuse_init_out a;
} msg;

/* Send an INIT-reply-shaped message (unique, error, flags) through io and
 * return it as read back from the pipe. */
static msg
send_init (overlay_worker_io *io, uint64_t unique, int32_t error, uint32_t flags)
{
  int p[2];
  assert_int_equal (pipe (p), 0);
  msg in = { .h = { .len = sizeof (msg), .error = error, .unique = unique },
             .a = { .major = FUSE_KERNEL_VERSION, .minor = 31, .max_readahead = 4096, .flags = flags,
                    .max_write = 1 << 20 } };
  struct iovec iov[2] = { { &in.h, sizeof in.h }, { &in.a, sizeof in.a } };
  assert_int_equal (overlay_worker_writev (io, p[1], iov, 2), (ssize_t) sizeof (msg));
  msg out;
  assert_int_equal (read (p[0], &out, sizeof out), (ssize_t) sizeof out);
  close (p[0]);
  close (p[1]);
  assert_int_equal (out.a.max_write, 1 << 20);
  assert_int_equal (out.a.max_readahead, 4096);
  return out;
}

static void
test_init_reply_completed_once (void **state)
{
  (void) state;
  overlay_worker_io io = { 0 };
  overlay_worker_io_want (&io, true, true);
  /* a notification (unique 0) or an error reply is not the INIT reply */
  assert_int_equal (send_init (&io, 0, 0, FUSE_ASYNC_READ).a.flags, FUSE_ASYNC_READ);
  assert_int_equal (send_init (&io, 2, -EPROTO, FUSE_ASYNC_READ).a.flags, FUSE_ASYNC_READ);
  assert_int_equal (send_init (&io, 2, 0, FUSE_ASYNC_READ | FUSE_WRITEBACK_CACHE).a.flags,
                    FUSE_ASYNC_READ | FUSE_WRITEBACK_CACHE | FUSE_PARALLEL_DIROPS | FUSE_HANDLE_KILLPRIV
                        | FUSE_HANDLE_KILLPRIV_V2);
  /* later replies of the same size go out as they are */
  assert_int_equal (send_init (&io, 4, 0, FUSE_ASYNC_READ).a.flags, FUSE_ASYNC_READ);
}

static void
test_only_what_was_asked (void **state)
{
  (void) state;
  overlay_worker_io none = { 0 }, dirops = { 0 }, kill = { 0 };
  overlay_worker_io_want (&none, false, false);
  overlay_worker_io_want (&dirops, true, false);
  overlay_worker_io_want (&kill, false, true);
  assert_int_equal (send_init (&none, 2, 0, FUSE_ASYNC_READ).a.flags, FUSE_ASYNC_READ);
  assert_int_equal (send_init (&dirops, 2, 0, FUSE_ASYNC_READ).a.flags, FUSE_ASYNC_READ | FUSE_PARALLEL_DIROPS);
  assert_int_equal (send_init (&kill, 2, 0, FUSE_ASYNC_READ).a.flags,
                    FUSE_ASYNC_READ | FUSE_HANDLE_KILLPRIV | FUSE_HANDLE_KILLPRIV_V2);
}

typedef struct fx
{
  char *tmp;
  int tmpfd;
  overlay_model *m;
} fx;

static int
setup (void **state)
{
  fx *f = xzalloc (sizeof *f);
  autoerror kiln_error *err = NULL;
  f->tmp = test_mkdtemp (&f->tmpfd);
  overlay_config cfg = { .scratch_dirfd = f->tmpfd, .id_mode = OVERLAY_IDS_FULL };
  assert_ok (overlay_model_new (&cfg, &f->m, &err), err);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  fx *f = *state;
  overlay_model_free (f->m);
  close (f->tmpfd);
  test_rmtree (f->tmp);
  free (f->tmp);
  free (f);
  return 0;
}

/* a file MODE under the root; its inode number */
static uint64_t
mk (overlay_model *m, const char *name, mode_t mode)
{
  struct stat st;
  assert_int_equal (overlay_model_mknod (m, OVERLAY_ROOT_INO, name, mode, 0, NULL, 0, 0, &st), 0);
  return st.st_ino;
}

static unsigned
perm (overlay_model *m, uint64_t ino)
{
  struct stat st;
  assert_int_equal (overlay_model_getattr (m, ino, &st), 0);
  return st.st_mode & 07777;
}

static void
test_setattr_kill (void **state)
{
  fx *f = *state;
  struct stat in = { .st_uid = 5, .st_size = 1 };
  uint64_t a = mk (f->m, "a", S_IFREG | 06755), b = mk (f->m, "b", S_IFREG | 02745);
  uint64_t c = mk (f->m, "c", S_IFREG | 04755), d = mk (f->m, "d", S_IFDIR | 06755);
  /* the request the kernel sends before a write to such a file: nothing to set */
  struct stat st;
  assert_int_equal (overlay_model_setattr (f->m, a, &in, OVL_SET_KILL_SUIDGID, &st), 0);
  assert_int_equal (st.st_mode & 07777, 0755);
  /* setgid without group execute is no privilege: kept */
  assert_int_equal (overlay_model_setattr (f->m, b, &in, OVL_SET_SIZE | OVL_SET_KILL_SUIDGID, &st), 0);
  assert_int_equal (st.st_mode & 07777, 02745);
  assert_int_equal (st.st_size, 1);
  /* chown: the owner changes and setuid goes */
  assert_int_equal (overlay_model_setattr (f->m, c, &in, OVL_SET_UID | OVL_SET_KILL_SUIDGID, &st), 0);
  assert_int_equal (st.st_mode & 07777, 0755);
  assert_int_equal (st.st_uid, 5);
  /* directories keep theirs (setgid there is inheritance) */
  assert_int_equal (overlay_model_setattr (f->m, d, &in, OVL_SET_UID | OVL_SET_KILL_SUIDGID, &st), 0);
  assert_int_equal (st.st_mode & 07777, 06755);
  /* without the bit nothing is cleared: the kernel does it */
  uint64_t e = mk (f->m, "e", S_IFREG | 06755);
  assert_int_equal (overlay_model_setattr (f->m, e, &in, OVL_SET_UID, &st), 0);
  assert_int_equal (st.st_mode & 07777, 06755);
}

/* open(O_TRUNC): the kernel truncates through OPEN and sends no SETATTR */
static void
test_open_trunc_kill (void **state)
{
  fx *f = *state;
  uint64_t a = mk (f->m, "a", S_IFREG | 06755), b = mk (f->m, "b", S_IFREG | 06755);
  bool imm;
  int fd = overlay_model_open (f->m, a, O_WRONLY | O_TRUNC, &imm);
  assert_true (fd >= 0);
  close (fd);
  overlay_model_release (f->m, a);
  assert_int_equal (perm (f->m, a), 06755);
  overlay_model_set_kill_priv (f->m, true);
  fd = overlay_model_open (f->m, b, O_WRONLY | O_TRUNC, &imm);
  assert_true (fd >= 0);
  close (fd);
  overlay_model_release (f->m, b);
  assert_int_equal (perm (f->m, b), 0755);
  /* a plain open for writing changes nothing: the write's own request does */
  uint64_t c = mk (f->m, "c", S_IFREG | 06755);
  fd = overlay_model_open (f->m, c, O_WRONLY, &imm);
  assert_true (fd >= 0);
  close (fd);
  overlay_model_release (f->m, c);
  assert_int_equal (perm (f->m, c), 06755);
}

/* chown recorded by the seccomp supervisor (single ID mode) drops file
 * capabilities as chown(2) does */
static void
test_recorded_chown_drops_caps (void **state)
{
  fx *f = *state;
  static const char cap[20] = { 1, 0, 0, 2, 0, 0x20 };
  uint64_t a = mk (f->m, "a", S_IFREG | 04755), d = mk (f->m, "d", S_IFDIR | 0755);
  assert_int_equal (overlay_model_setxattr (f->m, a, "security.capability", cap, sizeof cap, 0), 0);
  assert_int_equal (overlay_model_setxattr (f->m, a, "user.keep", "v", 1, 0), 0);
  assert_int_equal (overlay_model_setxattr (f->m, d, "security.capability", cap, sizeof cap, 0), 0);
  assert_int_equal (overlay_model_chown (f->m, a, 1000, 1000), 0);
  assert_int_equal (overlay_model_chown (f->m, d, 1000, 1000), 0);
  char buf[64];
  assert_int_equal (overlay_model_getxattr (f->m, a, "security.capability", buf, sizeof buf), -ENODATA);
  assert_int_equal (overlay_model_getxattr (f->m, a, "user.keep", buf, sizeof buf), 1);
  assert_int_equal (overlay_model_getxattr (f->m, d, "security.capability", buf, sizeof buf), (int) sizeof cap);
  assert_int_equal (perm (f->m, a), 0755);
}

/* FUSE over io_uring (overlay_ring.h): the INIT reply asks for it only
 * where kiln wants it, the kernel's INIT offered it and the reply has
 * FUSE_INIT_EXT (flags2 means nothing without it); then the queues start,
 * here on a pipe, which refuses their registration (a warning), and stop. */
static uint32_t
send_init_flags2 (overlay_worker_io *io, uint32_t flags)
{
  msg out = send_init (io, 2, 0, flags);
  assert_int_equal (out.a.flags & flags, flags);
  return out.a.flags2;
}

static void
test_init_reply_uring (void **state)
{
  (void) state;
  overlay_worker_io io = { .uring_wanted = true, .uring_offered = false };
  assert_int_equal (send_init_flags2 (&io, FUSE_INIT_EXT), 0);
  assert_null (io.ring);
  io = (overlay_worker_io) { .uring_wanted = false, .uring_offered = true };
  assert_int_equal (send_init_flags2 (&io, FUSE_INIT_EXT), 0);
  assert_null (io.ring);
  io = (overlay_worker_io) { .uring_wanted = true, .uring_offered = true };
  assert_int_equal (send_init_flags2 (&io, FUSE_ASYNC_READ), 0);
  assert_null (io.ring);
  io = (overlay_worker_io) { .uring_wanted = true, .uring_offered = true };
  assert_int_equal (send_init_flags2 (&io, FUSE_INIT_EXT), OVERLAY_RING_INIT_FLAGS2_URING);
  /* started where this process can set up an io_uring at all */
  if (overlay_ring_wanted ())
    assert_non_null (io.ring);
  overlay_worker_io_stop (&io);
  assert_null (io.ring);
  /* once only: a later reply of the same shape is not the INIT reply */
  assert_int_equal (send_init_flags2 (&io, FUSE_INIT_EXT), 0);
  assert_null (io.ring);
}

/* FUSE_TMPFILE, which libfuse 3.14 would answer ENOSYS, reaches it as the
 * CREATE it is shaped like; nothing else changes */
typedef struct
{
  struct fuse_in_header h;
  struct fuse_create_in c;
  char name[8];
} create_req;

static size_t
make_req (create_req *r, uint32_t opcode, const char *name)
{
  memset (r, 0, sizeof *r);
  size_t len = sizeof r->h + sizeof r->c + strlen (name) + 1;
  r->h.len = (uint32_t) len;
  r->h.opcode = opcode;
  r->h.unique = 7;
  r->c.mode = S_IFREG | 0600;
  memcpy (r->name, name, strlen (name) + 1);
  return len;
}

static void
test_request_fix_tmpfile (void **state)
{
  (void) state;
  create_req r;
  size_t len = make_req (&r, FUSE_TMPFILE, "/");
  overlay_worker_request_fix (&r, len);
  assert_int_equal (r.h.opcode, FUSE_CREATE);
  assert_int_equal (r.h.unique, 7);
  assert_string_equal (r.name, "/");
  /* a real CREATE, any other opcode, a short read, another name: as they are */
  len = make_req (&r, FUSE_CREATE, "a");
  overlay_worker_request_fix (&r, len);
  assert_int_equal (r.h.opcode, FUSE_CREATE);
  assert_string_equal (r.name, "a");
  len = make_req (&r, FUSE_MKNOD, "/");
  overlay_worker_request_fix (&r, len);
  assert_int_equal (r.h.opcode, FUSE_MKNOD);
  len = make_req (&r, FUSE_TMPFILE, "/");
  overlay_worker_request_fix (&r, len - 1);
  assert_int_equal (r.h.opcode, FUSE_TMPFILE);
  len = make_req (&r, FUSE_TMPFILE, "x");
  overlay_worker_request_fix (&r, len);
  assert_int_equal (r.h.opcode, FUSE_TMPFILE);
  len = make_req (&r, FUSE_TMPFILE, "/");
  r.h.len = (uint32_t) len + 1;
  overlay_worker_request_fix (&r, len);
  assert_int_equal (r.h.opcode, FUSE_TMPFILE);
}

int
main (void)
{
  umask (022);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_init_reply_completed_once),
    cmocka_unit_test (test_only_what_was_asked),
    cmocka_unit_test (test_init_reply_uring),
    cmocka_unit_test (test_request_fix_tmpfile),
    cmocka_unit_test_setup_teardown (test_setattr_kill, setup, teardown),
    cmocka_unit_test_setup_teardown (test_open_trunc_kill, setup, teardown),
    cmocka_unit_test_setup_teardown (test_recorded_chown_drops_caps, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
