/* test_sigcancel.c - SIGINT/SIGTERM recorded in the flag, the notify fd
 * written (errno untouched), the exit code, clearing the notify fd. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "util/sigcancel.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Bytes waiting in the pipe's read end (non-blocking). */
static int
drain (int rfd)
{
  char buf[16];
  int n = 0;
  ssize_t r;
  while ((r = read (rfd, buf, sizeof buf)) > 0)
    n += (int) r;
  return n;
}

static void
test_flag_and_exit_code (void **state)
{
  (void) state;
  volatile sig_atomic_t *flag = sigcancel_install (-1);
  *flag = 0;
  assert_int_equal (sigcancel_exit_code (1), 1);
  assert_int_equal (raise (SIGTERM), 0); /* the handler runs before raise returns */
  assert_int_equal (*flag, SIGTERM);
  assert_int_equal (sigcancel_exit_code (1), 143);
  assert_int_equal (raise (SIGINT), 0);
  assert_int_equal (*flag, SIGINT);
  assert_int_equal (sigcancel_exit_code (1), 130);
  /* installing again returns the same flag */
  assert_ptr_equal (sigcancel_install (-1), flag);
  *flag = 0;
}

static void
test_notify_fd (void **state)
{
  (void) state;
  int p[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC | O_NONBLOCK), 0);
  volatile sig_atomic_t *flag = sigcancel_install (p[1]);
  *flag = 0;
  errno = 1234;
  assert_int_equal (raise (SIGINT), 0);
  assert_int_equal (errno, 1234);
  assert_int_equal (*flag, SIGINT);
  assert_int_equal (drain (p[0]), 1);
  /* one byte per signal */
  assert_int_equal (raise (SIGTERM), 0);
  assert_int_equal (raise (SIGTERM), 0);
  assert_int_equal (drain (p[0]), 2);
  /* cleared: no more writes */
  sigcancel_set_notify_fd (-1);
  assert_int_equal (raise (SIGTERM), 0);
  assert_int_equal (drain (p[0]), 0);
  assert_int_equal (*flag, SIGTERM);
  sigcancel_set_notify_fd (p[1]);
  assert_int_equal (raise (SIGTERM), 0);
  assert_int_equal (drain (p[0]), 1);
  sigcancel_set_notify_fd (-1);
  close (p[0]);
  close (p[1]);
  *flag = 0;
}

/* SA_RESTART: a blocking read interrupted by the signal resumes. */
static void
test_restart (void **state)
{
  (void) state;
  volatile sig_atomic_t *flag = sigcancel_install (-1);
  *flag = 0;
  int p[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      close (p[0]);
      usleep (100 * 1000);
      kill (getppid (), SIGINT);
      usleep (100 * 1000);
      ssize_t w = write (p[1], "y", 1);
      _exit (w == 1 ? 0 : 1);
    }
  close (p[1]);
  char c = 0;
  ssize_t r = read (p[0], &c, 1);
  assert_int_equal (r, 1);
  assert_int_equal (c, 'y');
  assert_int_equal (*flag, SIGINT);
  close (p[0]);
  int st;
  assert_int_equal (waitpid (pid, &st, 0), pid);
  *flag = 0;
}

/* The pipe is level-triggered: readable for every poller, for ever, once
 * a signal or a trigger wrote it; nobody reads it. */
static bool
readable (int fd)
{
  struct pollfd pf = { fd, POLLIN, 0 };
  return poll (&pf, 1, 0) == 1 && (pf.revents & POLLIN);
}

static void
test_pipe_level_triggered (void **state)
{
  (void) state;
  sigcancel_pipe p;
  volatile sig_atomic_t *flag = sigcancel_open (&p);
  *flag = 0;
  assert_true (p.rfd >= 0 && p.wfd >= 0);
  assert_false (readable (p.rfd));
  assert_int_equal (raise (SIGTERM), 0);
  assert_int_equal (*flag, SIGTERM);
  for (int i = 0; i < 3; i++) /* polling does not consume it */
    assert_true (readable (p.rfd));
  sigcancel_close (&p);
  assert_int_equal (p.rfd, -1);
  /* a trigger: readable, the flag untouched */
  flag = sigcancel_open (&p);
  *flag = 0;
  sigcancel_trigger (&p);
  sigcancel_trigger (&p);
  assert_true (readable (p.rfd));
  assert_int_equal (*flag, 0);
  assert_int_equal (sigcancel_exit_code (1), 1);
  sigcancel_close (&p);
  /* closed: a late signal writes nowhere */
  assert_int_equal (raise (SIGINT), 0);
  assert_int_equal (*flag, SIGINT);
  *flag = 0;
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_flag_and_exit_code),
    cmocka_unit_test (test_notify_fd),
    cmocka_unit_test (test_restart),
    cmocka_unit_test (test_pipe_level_triggered),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
