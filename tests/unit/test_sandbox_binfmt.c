/* test_sandbox_binfmt.c - sandbox_binfmt_check_dir against fake
 * binfmt_misc directories: handlers as the kernel lists them (Debian's
 * qemu-aarch64 and qemu-s390x entries), enabled or not, with and without
 * the F flag, and the errors that say what is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "sandbox/sandbox.h"
#include "util/alloc.h"

/* What /proc/sys/fs/binfmt_misc/qemu-aarch64 reads on Debian 12. */
static const char aarch64[] = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n"
                              "magic 7f454c460201010000000000000000000200b700\n"
                              "mask ffffffffffffff00fffffffffffffffffeffffff\n";
static const char s390x[] = "enabled\ninterpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P\nflags: PF\noffset 0\n"
                            "magic 7f454c4602020100000000000000000000020016\n"
                            "mask fffffffffffffffcfffffffffffffffffffeffff\n";

static void
put (const char *dir, const char *name, const char *text)
{
  autofree char *p = xasprintf ("%s/%s", dir, name);
  FILE *f = fopen (p, "w");
  assert_non_null (f);
  fputs (text, f);
  fclose (f);
}

static char *
fake_dir (void)
{
  char tmpl[] = "/tmp/kiln-binfmt-XXXXXX";
  assert_non_null (mkdtemp (tmpl));
  put (tmpl, "status", "enabled\n");
  put (tmpl, "register", "");
  return xstrdup (tmpl);
}

static void
rm_dir (char *dir)
{
  autofree char *cmd = xasprintf ("rm -rf '%s'", dir);
  assert_int_equal (system (cmd), 0);
  free (dir);
}

/* The error of checking arch below dir (NULL: none). */
static char *
check (const char *dir, const char *arch)
{
  kiln_error *e = NULL;
  if (sandbox_binfmt_check_dir (dir, arch, &e) == 0)
    {
      assert_null (e);
      return NULL;
    }
  assert_non_null (e);
  char *m = xstrdup (e->msg);
  kiln_error_free (e);
  return m;
}

static void
test_handlers (void **state)
{
  (void) state;
  char *d = fake_dir ();
  /* none registered: the packages and the command */
  autofree char *m1 = check (d, "arm64");
  assert_non_null (m1);
  assert_non_null (strstr (m1, "no handler"));
  assert_non_null (strstr (m1, "qemu-user-static and binfmt-support"));
  assert_non_null (strstr (m1, "update-binfmts --enable qemu-aarch64"));
  /* Debian's handlers: each matches its own architecture only */
  put (d, "qemu-aarch64", aarch64);
  put (d, "qemu-s390x", s390x);
  put (d, "python3.11", "enabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic a70d0d0a\n");
  put (d, "jar", "enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n");
  assert_null (check (d, "arm64"));
  assert_null (check (d, "s390x"));
  autofree char *m2 = check (d, "riscv64");
  assert_non_null (m2);
  assert_non_null (strstr (m2, "update-binfmts --enable qemu-riscv64"));
  /* the F flag is needed: the interpreter is not in the step's root */
  char *noflag = xstrdup (aarch64);
  *strstr (noflag, "flags: PF") = '\0';
  autofree char *t = xasprintf ("%sflags: P\n%s", noflag, strstr (aarch64, "offset"));
  free (noflag);
  put (d, "qemu-aarch64", t);
  autofree char *m3 = check (d, "arm64");
  assert_non_null (m3);
  assert_non_null (strstr (m3, "has no F (fix-binary) flag"));
  assert_non_null (strstr (m3, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"));
  /* disabled */
  autofree char *off = xasprintf ("disabled%s", strchr (aarch64, '\n'));
  put (d, "qemu-aarch64", off);
  autofree char *m4 = check (d, "arm64");
  assert_non_null (m4);
  assert_non_null (strstr (m4, "is disabled"));
  /* an enabled handler with F wins over a disabled one of the same magic */
  put (d, "qemu-aarch64-2", aarch64);
  assert_null (check (d, "arm64"));
  /* binfmt_misc switched off as a whole */
  put (d, "status", "disabled\n");
  autofree char *m5 = check (d, "arm64");
  assert_non_null (strstr (m5, "switched off"));
  rm_dir (d);
}

static void
test_unmounted_and_unknown (void **state)
{
  (void) state;
  char tmpl[] = "/tmp/kiln-binfmt-XXXXXX";
  assert_non_null (mkdtemp (tmpl));
  autofree char *m1 = check (tmpl, "arm64");
  assert_non_null (strstr (m1, "binfmt_misc is not mounted"));
  assert_non_null (strstr (m1, "mount -t binfmt_misc"));
  autofree char *m2 = check (tmpl, "sparc64");
  assert_non_null (strstr (m2, "knows no ELF machine for 'sparc64'"));
  rmdir (tmpl);
  /* the host's own architecture needs no handler */
  kiln_error *e = NULL;
#if defined(__x86_64__)
  assert_int_equal (sandbox_binfmt_check ("amd64", &e), 0);
#elif defined(__aarch64__)
  assert_int_equal (sandbox_binfmt_check ("arm64", &e), 0);
#endif
  assert_null (e);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_handlers),
    cmocka_unit_test (test_unmounted_and_unknown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
