/* test_alloc.c - checked allocation, strv helpers, ownership transfer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/alloc.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void
test_strv (void **state)
{
  (void) state;
  char **v = NULL;
  assert_int_equal (strv_len (v), 0);
  strv_push (&v, "a");
  strv_push (&v, "bb");
  strv_push (&v, "");
  assert_int_equal (strv_len (v), 3);
  assert_string_equal (v[0], "a");
  assert_string_equal (v[1], "bb");
  assert_string_equal (v[2], "");
  assert_null (v[3]);
  autostrv char **d = strv_dup (v);
  strv_free (v);
  assert_int_equal (strv_len (d), 3);
  assert_string_equal (d[1], "bb");
  autostrv char **e = strv_dup (NULL);
  assert_non_null (e);
  assert_null (e[0]);
  strv_free (NULL);
  for (int i = 0; i < 1000; i++)
    strv_push (&e, "x");
  assert_int_equal (strv_len (e), 1000);
}

static char *
make_owned (void)
{
  autofree char *p = xstrdup ("owned");
  /* Without steal_pointer the cleanup would free what we return. */
  return steal_pointer (&p);
}

static void
test_steal (void **state)
{
  (void) state;
  autofree char *s = make_owned ();
  assert_string_equal (s, "owned");
  char *p = xstrdup ("x");
  char *q = steal_pointer (&p);
  assert_null (p);
  free (q);
  int fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  int g = steal_fd (&fd);
  assert_int_equal (fd, -1);
  assert_true (g >= 0);
  {
    autoclose int h = g;
    (void) h;
  }
  /* The autoclose closed it. */
  assert_int_equal (fcntl (g, F_GETFD), -1);
}

static void
test_strings (void **state)
{
  (void) state;
  autofree char *a = xasprintf ("%s-%d", "x", 42);
  assert_string_equal (a, "x-42");
  autofree char *b = xstrndup ("abcdef", 3);
  assert_string_equal (b, "abc");
  autofree char *c = xmemdup ("a\0b", 3);
  assert_memory_equal (c, "a\0b", 3);
  autofree int *z = xzalloc (16 * sizeof (int));
  for (int i = 0; i < 16; i++)
    assert_int_equal (z[i], 0);
  autofree int *arr = xcalloc (4, sizeof (int));
  arr = xreallocarray (arr, 1000, sizeof (int));
  arr[999] = 1;
  assert_int_equal (ARRAY_SIZE ((int[7]){ 0 }), 7);
}

/* Secrets are freed (ASan would report a leak otherwise); NULL is fine. */
static void
test_free_secret (void **state)
{
  (void) state;
  xfree_secret (xstrdup ("hunter2"));
  xfree_secret (xstrdup (""));
  xfree_secret (NULL);
}

/* Overflowing size computations abort instead of returning a short buffer. */
static void
test_overflow_aborts (void **state)
{
  (void) state;
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      /* Keep the sanitizer/abort report out of the TAP stream. */
      int fd = open ("/dev/null", O_WRONLY);
      dup2 (fd, 2);
      void *p = xreallocarray (NULL, SIZE_MAX / 2, 4);
      (void) p;
      _exit (0);
    }
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_false (WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_strv),
    cmocka_unit_test (test_steal),
    cmocka_unit_test (test_strings),
    cmocka_unit_test (test_free_secret),
    cmocka_unit_test (test_overflow_aborts),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
