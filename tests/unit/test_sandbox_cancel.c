/* test_sandbox_cancel.c - parallel sandboxes stopped by SIGINT/SIGTERM or
 * by the caller's own cancellation, at chosen moments, many times: every
 * supervisor returns (issue 14: a supervisor blocked for ever in read() on a
 * signalfd whose signal another thread had taken). Needs root (the steps
 * bind-mount a directory root); skipped otherwise. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sandbox/sandbox.h"
#include "helpers/testutil.h"
#include "util/alloc.h"
#include "util/sigcancel.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define THREADS 4
#define ROUNDS 100
#define DEADLINE_S 20 /* a step is killed within milliseconds; this is a hang */

typedef enum
{
  AT_RUNNING_SIGTERM,
  AT_RUNNING_SIGINT,
  AT_RUNNING_TRIGGER, /* a failed stage cancels the others: no signal */
  AT_SETUP_SIGTERM,   /* while the sandboxes are being set up */
  AT_SETUP_TRIGGER,
  N_MOMENTS
} moment;

typedef struct step
{
  const char *rootfs;
  int cancel_fd;
  volatile sig_atomic_t *flag;
  atomic_int *started;
  int ret;
  int status; /* the error's errno */
  char msg[256];
  atomic_bool done;
} step;

static void
on_output (void *ctx, sandbox_stream stream, const char *line, size_t len)
{
  (void) stream;
  step *s = ctx;
  if (len == 7 && memcmp (line, "started", 7) == 0)
    atomic_fetch_add (s->started, 1);
}

static void *
step_main (void *arg)
{
  step *s = arg;
  char *argv[] = { (char *) "/bin/busybox", (char *) "sh", (char *) "-c", (char *) "echo started; exec sleep 100",
                   NULL };
  char *env[] = { (char *) "PATH=/bin", NULL };
  kiln_error *err = NULL;
  sandbox_idmap map;
  s->ret = sandbox_idmap_resolve (SANDBOX_USERNS_AUTO, 0, &map, &err);
  if (s->ret == 0)
    {
      sandbox_config cfg = { .rootfs = s->rootfs, .rootfs_readonly = true, .argv = argv, .env = env, .idmap = &map,
                             .output = on_output, .output_ctx = s, .cancel_fd = s->cancel_fd,
                             .cancel_signal = s->flag };
      sandbox_result res;
      s->ret = sandbox_run (&cfg, &res, &err);
    }
  if (err)
    {
      s->status = err->status;
      snprintf (s->msg, sizeof s->msg, "%s", err->msg);
      kiln_error_free (err);
    }
  atomic_store (&s->done, true);
  return NULL;
}

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* A root with /bin/busybox and the sandbox's mount points. */
static char *
make_rootfs (int *fd)
{
  char *dir = test_mkdtemp (fd);
  assert_int_equal (chmod (dir, 0755), 0);
  assert_int_equal (mkdirat (*fd, "bin", 0755), 0);
  int in = open ("/bin/busybox", O_RDONLY | O_CLOEXEC);
  int out = openat (*fd, "bin/busybox", O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
  assert_true (in >= 0 && out >= 0);
  char buf[65536];
  ssize_t n;
  while ((n = read (in, buf, sizeof buf)) > 0)
    assert_int_equal (write (out, buf, (size_t) n), n);
  close (in);
  close (out);
  char **created = NULL;
  kiln_error *err = NULL;
  assert_ok (sandbox_prepare_mountpoints (*fd, &created, &err), err);
  strv_free (created);
  return dir;
}

static void
run_round (const char *rootfs, moment m, int round)
{
  sigcancel_pipe cancel;
  volatile sig_atomic_t *flag = sigcancel_open (&cancel);
  *flag = 0;
  assert_true (cancel.rfd >= 0);
  atomic_int started = 0;
  step steps[THREADS];
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    {
      memset (&steps[i], 0, sizeof steps[i]);
      steps[i].rootfs = rootfs;
      steps[i].cancel_fd = cancel.rfd;
      steps[i].flag = flag;
      steps[i].started = &started;
      assert_int_equal (pthread_create (&t[i], NULL, step_main, &steps[i]), 0);
    }
  bool setup = m == AT_SETUP_SIGTERM || m == AT_SETUP_TRIGGER;
  if (setup)
    usleep ((useconds_t) (round % 5) * 3000); /* 0..12 ms: inside the set-up */
  else
    {
      double until = now_s () + DEADLINE_S;
      while (atomic_load (&started) < THREADS && now_s () < until)
        usleep (2000);
      for (int i = 0; atomic_load (&started) < THREADS && i < THREADS; i++)
        print_message ("# step %d: %s, ret %d, errno %d: %s\n", i, atomic_load (&steps[i].done) ? "done" : "running",
                       steps[i].ret, steps[i].status, steps[i].msg);
      assert_int_equal (atomic_load (&started), THREADS);
    }
  switch (m)
    {
    case AT_RUNNING_SIGTERM:
    case AT_SETUP_SIGTERM:
      assert_int_equal (kill (getpid (), SIGTERM), 0);
      break;
    case AT_RUNNING_SIGINT:
      assert_int_equal (kill (getpid (), SIGINT), 0);
      break;
    case AT_RUNNING_TRIGGER:
    case AT_SETUP_TRIGGER:
      sigcancel_trigger (&cancel);
      break;
    case N_MOMENTS:
      fail ();
    }
  double until = now_s () + DEADLINE_S;
  for (int i = 0; i < THREADS; i++)
    {
      while (!atomic_load (&steps[i].done) && now_s () < until)
        usleep (2000);
      if (!atomic_load (&steps[i].done))
        fail_msg ("round %d (moment %d): step %d's supervisor has not returned %d s after the cancellation", round,
                  (int) m, i, DEADLINE_S);
      pthread_join (t[i], NULL);
    }
  int want_sig = m == AT_RUNNING_SIGINT ? SIGINT : SIGTERM;
  bool by_signal = m != AT_RUNNING_TRIGGER && m != AT_SETUP_TRIGGER;
  for (int i = 0; i < THREADS; i++)
    {
      if (steps[i].ret >= 0)
        fail_msg ("round %d: step %d ran to completion though it was cancelled", round, i);
      if (by_signal)
        {
          assert_int_equal (steps[i].status, EINTR);
          char want[64];
          snprintf (want, sizeof want, "interrupted by signal %d", want_sig);
          if (strstr (steps[i].msg, want) == NULL)
            fail_msg ("round %d, step %d: '%s' does not say '%s'", round, i, steps[i].msg, want);
        }
      else
        {
          assert_int_equal (steps[i].status, ECANCELED);
          assert_non_null (strstr (steps[i].msg, "cancelled by kiln"));
        }
    }
  if (by_signal)
    assert_int_equal (*flag, want_sig);
  sigcancel_close (&cancel);
  *flag = 0;
  /* every helper and init was reaped */
  errno = 0;
  assert_int_equal (waitpid (-1, NULL, WNOHANG), -1);
  assert_int_equal (errno, ECHILD);
}

static void
test_parallel_cancel_at_chosen_moments (void **state)
{
  (void) state;
  struct stat st;
  if (geteuid () != 0 || stat ("/bin/busybox", &st) < 0)
    test_skip ("needs root and /bin/busybox");
  int fd;
  char *rootfs = make_rootfs (&fd);
  for (int r = 0; r < ROUNDS; r++)
    run_round (rootfs, (moment) (r % N_MOMENTS), r);
  close (fd);
  test_rmtree (rootfs);
  free (rootfs);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parallel_cancel_at_chosen_moments),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
