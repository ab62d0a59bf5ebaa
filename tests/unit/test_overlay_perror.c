/* test_overlay_perror.c - a FUSE worker cancelled while it prints an error
 * must not leave stderr locked.
 *
 * libfuse's session loop pthread_cancel()s its workers at the end, and a
 * worker is cancellable where it calls perror() for a failed device read.
 * glibc's perror locks stderr with no cancellation clean-up, so a worker
 * cancelled in its write(2) kept the lock and the build's next line of
 * output waited for ever (a single-threaded kiln in a futex, CI run 5).
 * overlay_worker.c defines perror; these tests cancel a thread inside it while
 * its write blocks, then require that stderr still works. Against glibc's
 * perror the second test fails (the write after the cancel times out).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "overlay/overlay.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

/* What libfuse calls resolves to kiln's definition: the executable comes
 * first in the dynamic linker's global scope. */
static void
test_perror_is_kilns (void **state)
{
  (void) state;
  void (*global) (const char *) = (void (*) (const char *)) dlsym (RTLD_DEFAULT, "perror");
  void (*next) (const char *) = (void (*) (const char *)) dlsym (RTLD_NEXT, "perror");
  assert_non_null (global);
  assert_ptr_equal (global, perror);
  assert_ptr_not_equal (global, next);
  overlay_free (NULL); /* links overlay.o, and with it overlay_worker.o, which holds the definition */
}

/* The end of a stage's mount (a device read failing with ECONNABORTED)
 * prints nothing; other failures print libfuse's line. */
static void
test_end_of_mount_is_quiet (void **state)
{
  (void) state;
  int p[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC | O_NONBLOCK), 0);
  int saved = dup (STDERR_FILENO);
  assert_true (saved >= 0);
  assert_true (dup2 (p[1], STDERR_FILENO) >= 0);
  errno = ECONNABORTED;
  perror ("fuse: reading device");
  errno = EIO;
  perror ("fuse: reading device");
  errno = ECONNABORTED;
  perror ("fuse: writing device");
  dup2 (saved, STDERR_FILENO);
  close (saved);
  close (p[1]);
  char buf[512] = "";
  ssize_t n = read (p[0], buf, sizeof buf - 1);
  close (p[0]);
  assert_true (n > 0);
  buf[n] = '\0';
  assert_string_equal (buf, "fuse: reading device: Input/output error\n"
                            "fuse: writing device: Software caused connection abort\n");
}

static void *
worker_print (void *arg)
{
  (void) arg;
  errno = ECONNABORTED;
  perror ("fuse: reading device");
  return NULL;
}

static void *
print_line (void *arg)
{
  int *done = arg;
  fprintf (stderr, "stderr still works\n");
  fflush (stderr);
  __atomic_store_n (done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static void
drain (int fd)
{
  char buf[65536];
  while (read (fd, buf, sizeof buf) > 0)
    ;
}

static void
test_cancel_inside_perror (void **state)
{
  (void) state;
  int p[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  int saved = dup (STDERR_FILENO);
  assert_true (saved >= 0);
  /* stderr is a full pipe: the worker's write blocks, as a cancellation
   * point, with whatever perror holds. */
  assert_int_equal (dup2 (p[1], STDERR_FILENO), STDERR_FILENO);
  fcntl (p[1], F_SETFL, O_NONBLOCK);
  char junk[4096];
  memset (junk, 'x', sizeof junk);
  while (write (p[1], junk, sizeof junk) > 0)
    ;
  fcntl (p[1], F_SETFL, 0);
  fcntl (p[0], F_SETFL, O_NONBLOCK);
  fwide (stderr, -1); /* oriented, as in kiln: glibc's perror then locks stderr itself */

  pthread_t worker;
  assert_int_equal (pthread_create (&worker, NULL, worker_print, NULL), 0);
  struct timespec pause = { 0, 100 * 1000 * 1000 };
  nanosleep (&pause, NULL);
  pthread_cancel (worker);
  nanosleep (&pause, NULL);
  drain (p[0]);
  assert_int_equal (pthread_join (worker, NULL), 0);
  drain (p[0]);

  /* The build's next line: must not wait for a lock the worker took. On
   * a stack of its own: a thread on the worker's cached stack would have
   * the dead worker's thread pointer and take its recursive lock again. */
  int done = 0;
  pthread_t writer;
  pthread_attr_t attr;
  static char stack[1 << 20] __attribute__ ((aligned (64)));
  pthread_attr_init (&attr);
  pthread_attr_setstack (&attr, stack, sizeof stack);
  assert_int_equal (pthread_create (&writer, &attr, print_line, &done), 0);
  pthread_attr_destroy (&attr);
  for (int i = 0; i < 50 && !__atomic_load_n (&done, __ATOMIC_SEQ_CST); i++)
    {
      nanosleep (&pause, NULL);
      drain (p[0]);
    }
  int ok = __atomic_load_n (&done, __ATOMIC_SEQ_CST);
  dup2 (saved, STDERR_FILENO);
  close (saved);
  if (!ok)
    {
      /* cmocka reports on stderr, which is what stays locked. */
      printf ("FAILED: a write to stderr still waits 5 s after the worker was cancelled in perror\n");
      fflush (stdout);
      _exit (1);
    }
  pthread_join (writer, NULL);
  close (p[0]);
  close (p[1]);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_perror_is_kilns),
    cmocka_unit_test (test_end_of_mount_is_quiet),
    cmocka_unit_test (test_cancel_inside_perror),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
