/* test_seccomp_profile.c - Docker seccomp profile parsing and compiled filters. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sandbox/seccomp_profile.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static seccomp_profile *
parse_ok (const char *json)
{
  seccomp_profile *p = NULL;
  kiln_error *err = NULL;
  int r = seccomp_profile_parse (json, strlen (json), "t.json", &p, &err);
  if (r < 0)
    fail_msg ("unexpected error: %s", err->msg);
  return p;
}

/* Parsing must fail and the message must contain `want`. */
static void
parse_fails (const char *json, size_t len, const char *want)
{
  seccomp_profile *p = NULL;
  kiln_error *err = NULL;
  int r = seccomp_profile_parse (json, len, "t.json", &p, &err);
  assert_true (r < 0);
  assert_null (p);
  assert_non_null (err);
  if (strstr (err->msg, want) == NULL)
    fail_msg ("error '%s' lacks '%s'", err->msg, want);
  assert_non_null (strstr (err->msg, "t.json"));
  kiln_error_free (err);
}
#define PARSE_FAILS(j, w) parse_fails (j, strlen (j), w)

static void
test_default_profile_parses (void **state)
{
  (void) state;
  seccomp_profile *p = NULL;
  kiln_error *err = NULL;
  assert_int_equal (seccomp_profile_load_file ("policies/default.json", &p, &err), 0);
  assert_int_equal (p->default_action, SCMP_ACT_ERRNO (EPERM));
  assert_true (p->n_rules > 20);
  seccomp_profile_env env = { seccomp_profile_docker_default_caps, 0, 0, SECCOMP_PROFILE_PLAIN, false };
  seccomp_filter *f = NULL;
  assert_int_equal (seccomp_profile_compile (p, &env, &f, &err), 0);
  assert_true (f->n_insns > 50);
  assert_false (f->needs_listener);
  seccomp_filter_free (f);
  seccomp_profile_free (p);
}

static void
test_rejects_bad_input (void **state)
{
  (void) state;
  PARSE_FAILS ("{", "invalid JSON");
  PARSE_FAILS ("[]", "must be a JSON object");
  PARSE_FAILS ("{}", "missing 'defaultAction'");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_NOPE\"}", "unknown action 'SCMP_ACT_NOPE'");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_NOTIFY\"}", "not supported");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[]}", "unsupported key 'flags'");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"defaultAction\":\"SCMP_ACT_ALLOW\"}", "duplicate key");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":5000}", "out of range");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":-1}", "non-negative");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"defaultErrnoRet\":1}", "takes none");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_Z80\"]}", "unknown architecture");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[],\"action\":\"SCMP_ACT_ERRNO\"}]}",
               "syscalls[0]: a rule needs at least one syscall name");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"../x\"],\"action\":\"SCMP_ACT_ERRNO\"}]}",
               "invalid syscall name");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"]}]}", "needs an 'action'");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\","
               "\"args\":[{\"index\":6,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
               "syscalls[0].args[0].index: integer 6 out of range");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\","
               "\"args\":[{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_XX\"}]}]}",
               "unknown operator");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\","
               "\"args\":[{\"index\":0,\"value\":18446744073709551616,\"op\":\"SCMP_CMP_EQ\"}]}]}",
               "out of range");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\","
               "\"includes\":{\"caps\":[\"CAP_NOPE\"]}}]}",
               "unknown capability 'CAP_NOPE'");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\","
               "\"includes\":{\"minKernel\":\"4.x\"}}]}",
               "invalid kernel version");
  PARSE_FAILS ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\","
               "\"excludes\":{\"arches\":[\"vax\"]}}]}",
               "unknown architecture 'vax'");
  parse_fails ("{\"defaultAction\":\0\"SCMP_ACT_ALLOW\"}", 33, "NUL byte");
  char deep[200];
  memset (deep, '[', sizeof deep);
  parse_fails (deep, sizeof deep, "nested deeper");
}

/* Run fn in a child that loaded the filter; return the child's exit status. */
static int
in_child (const seccomp_filter *f, int (*fn) (void))
{
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        _exit (100);
      int r = seccomp_filter_load (f);
      if (r < 0)
        _exit (101);
      _exit (fn ());
    }
  int st;
  assert_int_equal (waitpid (pid, &st, 0), pid);
  assert_true (WIFEXITED (st));
  return WEXITSTATUS (st);
}

static seccomp_filter *
compile (const char *json, seccomp_profile_mode mode, unsigned kmaj, unsigned kmin)
{
  seccomp_profile *p = NULL;
  kiln_error *err = NULL;
  if (json)
    p = parse_ok (json);
  else
    assert_int_equal (seccomp_profile_load_file ("policies/default.json", &p, &err), 0);
  seccomp_profile_env env = { seccomp_profile_docker_default_caps, kmaj, kmin, mode, false };
  seccomp_filter *f = NULL;
  if (seccomp_profile_compile (p, &env, &f, &err) < 0)
    fail_msg ("compile: %s", err->msg);
  seccomp_profile_free (p);
  return f;
}

/* Each check returns 0 when the call failed with the expected errno. */
static int
default_denials (void)
{
  if (getpid () <= 0)
    return 1;
  errno = 0;
  if (syscall (SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno != EPERM)
    return 2;
  if (unshare (CLONE_NEWUSER) != -1 || errno != EPERM)
    return 3;
  if (socket (AF_VSOCK, SOCK_STREAM, 0) != -1 || errno != EPERM)
    return 4;
  if (socket (AF_ALG, SOCK_SEQPACKET, 0) != -1 || errno != EPERM)
    return 5;
  int s = socket (AF_UNIX, SOCK_STREAM, 0);
  if (s < 0)
    return 6;
  close (s);
  struct clone_args ca = { .exit_signal = SIGCHLD };
  if (syscall (SYS_clone3, &ca, sizeof ca) != -1 || errno != ENOSYS)
    return 7;
  if (syscall (SYS_bpf, 0, NULL, 0) != -1 || errno != EPERM)
    return 8;
  if (syscall (SYS_io_uring_setup, 1, NULL) != -1 || errno != EPERM)
    return 9;
  if (syscall (SYS_mount, "none", "/", "tmpfs", 0, NULL) != -1 || errno != EPERM)
    return 10;
  if (syscall (SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0) != -1 || errno != EPERM)
    return 11;
  /* A plain fork (clone without namespace flags) still works. */
  pid_t pid = fork ();
  if (pid == 0)
    _exit (0);
  if (pid < 0 || waitpid (pid, NULL, 0) != pid)
    return 12;
  return 0;
}

static void
test_default_filter_denies (void **state)
{
  (void) state;
  seccomp_filter *f = compile (NULL, SECCOMP_PROFILE_PLAIN, 0, 0);
  assert_int_equal (in_child (f, default_denials), 0);
  seccomp_filter_free (f);
}

static int
errno_ret_check (void)
{
  if (syscall (SYS_getppid) != -1 || errno != 42)
    return 1;
  /* args: only umask(0777) is refused */
  if (syscall (SYS_umask, 022) < 0)
    return 2;
  if (syscall (SYS_umask, 0777) != -1 || errno != 7)
    return 3;
  return 0;
}

static void
test_errno_ret_and_args (void **state)
{
  (void) state;
  seccomp_filter *f = compile ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                               "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":42},"
                               "{\"names\":[\"umask\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":7,"
                               "\"args\":[{\"index\":0,\"value\":511,\"valueTwo\":511,\"op\":\"SCMP_CMP_MASKED_EQ\"}]}]}",
                               SECCOMP_PROFILE_PLAIN, 0, 0);
  assert_int_equal (in_child (f, errno_ret_check), 0);
  seccomp_filter_free (f);
}

static int
getppid_denied (void)
{
  return syscall (SYS_getppid) == -1 && errno == EPERM ? 0 : 1;
}

static void
test_includes_excludes (void **state)
{
  (void) state;
  /* getppid allowed only with CAP_SYS_ADMIN (not in the default set): denied. */
  const char *caps_json = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                          "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ERRNO\","
                          "\"excludes\":{\"caps\":[\"CAP_SYS_ADMIN\"]}}]}";
  seccomp_filter *f = compile (caps_json, SECCOMP_PROFILE_PLAIN, 0, 0);
  assert_int_equal (in_child (f, getppid_denied), 0);
  seccomp_filter_free (f);
  /* excluded when CAP_KILL is held (it is): getppid works. */
  const char *ex_json = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                        "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ERRNO\","
                        "\"excludes\":{\"caps\":[\"CAP_KILL\"]}}]}";
  f = compile (ex_json, SECCOMP_PROFILE_PLAIN, 0, 0);
  assert_int_equal (in_child (f, getppid_denied), 1);
  seccomp_filter_free (f);
  /* minKernel: applies on 5.10, not on 4.19. */
  const char *mk_json = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                        "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ERRNO\","
                        "\"includes\":{\"minKernel\":\"5.4\"}}]}";
  f = compile (mk_json, SECCOMP_PROFILE_PLAIN, 5, 10);
  assert_int_equal (in_child (f, getppid_denied), 0);
  seccomp_filter_free (f);
  f = compile (mk_json, SECCOMP_PROFILE_PLAIN, 4, 19);
  assert_int_equal (in_child (f, getppid_denied), 1);
  seccomp_filter_free (f);
  /* arches: a rule for arm64 only does not apply on x86_64 hosts. */
  const char *arch_json = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                          "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ERRNO\","
                          "\"includes\":{\"arches\":[\"amd64\"]}}]}";
  f = compile (arch_json, SECCOMP_PROFILE_PLAIN, 0, 0);
  assert_int_equal (in_child (f, getppid_denied), seccomp_arch_native () == SCMP_ARCH_X86_64 ? 0 : 1);
  seccomp_filter_free (f);
}

/* The id calls go to the supervisor (sandbox_creds.c): with the listener
 * closed the kernel fails them with ENOSYS, and nothing changed. */
static int
fake_ids_check (void)
{
  if (syscall (SYS_setuid, 4321) != -1 || errno != ENOSYS)
    return 1;
  if (syscall (SYS_setresgid, 7, 7, 7) != -1 || errno != ENOSYS)
    return 2;
  gid_t g = 99;
  if (syscall (SYS_setgroups, 1, &g) != -1 || errno != ENOSYS)
    return 3;
  if (syscall (SYS_getuid) != -1 || errno != ENOSYS || syscall (SYS_getegid) != -1 || errno != ENOSYS)
    return 4;
  if (syscall (SYS_setfsuid, 5) != -1 || errno != ENOSYS)
    return 5;
  return 0;
}

static void
test_fake_ids_mode (void **state)
{
  (void) state;
  seccomp_filter *f = compile (NULL, SECCOMP_PROFILE_FAKE_IDS, 0, 0);
  assert_true (f->needs_listener);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        _exit (100);
      int listener = seccomp_filter_load (f);
      if (listener < 0)
        _exit (101);
      close (listener);
      _exit (fake_ids_check ());
    }
  int st;
  assert_int_equal (waitpid (pid, &st, 0), pid);
  assert_true (WIFEXITED (st));
  assert_int_equal (WEXITSTATUS (st), 0);
  seccomp_filter_free (f);
}

#if defined(__x86_64__)
/* An i386 system call from this 64-bit process (int 0x80: the kernel's
 * IA-32 entry, seccomp sees AUDIT_ARCH_I386). */
static long
int80 (long nr, long a, long b, long c)
{
  long ret;
  __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
  return ret;
}

/* Whether this machine runs i386 system calls at all: some hypervisors
 * fault int 0x80 (SIGSEGV) although the kernel has IA32 emulation. Asked
 * in a child with the default action for the fault. */
static bool
i386_syscalls_work (void)
{
  pid_t pid = fork ();
  if (pid == 0)
    {
      /* cmocka's handler would catch the fault and go on with the tests */
      signal (SIGSEGV, SIG_DFL);
      signal (SIGILL, SIG_DFL);
      _exit (int80 (20, 0, 0, 0) > 0 ? 0 : 1);
    }
  int st;
  return pid > 0 && waitpid (pid, &st, 0) == pid && WIFEXITED (st) && WEXITSTATUS (st) == 0;
}
#endif

/* Single mode's stat-family calls go to the supervisor: with the listener
 * closed the kernel fails them with ENOSYS (the answer of a notify filter
 * nobody listens to); other calls are unaffected. */
static void
test_fake_ids_stat_notified (void **state)
{
  (void) state;
  seccomp_filter *f = compile (NULL, SECCOMP_PROFILE_FAKE_IDS, 0, 0);
#if defined(__x86_64__)
  bool i386 = i386_syscalls_work ();
  if (!i386)
    print_message ("this machine faults i386 system calls (int 0x80): their checks are left out\n");
#endif
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        _exit (100);
      int listener = seccomp_filter_load (f);
      if (listener < 0)
        _exit (101);
      close (listener);
      struct stat st;
      struct statx sx;
      if (syscall (SYS_newfstatat, AT_FDCWD, "/", &st, 0) != -1 || errno != ENOSYS)
        _exit (1);
      if (syscall (SYS_fstat, 0, &st) != -1 || errno != ENOSYS)
        _exit (2);
      if (syscall (SYS_statx, AT_FDCWD, "/", 0, STATX_UID, &sx) != -1 || errno != ENOSYS)
        _exit (3);
#ifdef SYS_stat
      if (syscall (SYS_stat, "/", &st) != -1 || errno != ENOSYS || syscall (SYS_lstat, "/", &st) != -1
          || errno != ENOSYS)
        _exit (4);
#endif
      if (syscall (SYS_getpid) <= 0)
        _exit (5);
#if defined(__x86_64__)
      /* i386's stat64 (195), lstat64 (196), fstat64 (197), fstatat64 (300),
       * statx (383), getuid32 (199), setfsuid32 (215); getpid (20) is not. */
      if (i386
          && (int80 (195, 0, 0, 0) != -ENOSYS || int80 (196, 0, 0, 0) != -ENOSYS
              || int80 (197, 0, 0, 0) != -ENOSYS || int80 (300, 0, 0, 0) != -ENOSYS
              || int80 (383, 0, 0, 0) != -ENOSYS || int80 (199, 0, 0, 0) != -ENOSYS
              || int80 (215, 0, 0, 0) != -ENOSYS))
        _exit (6);
      if (i386 && int80 (20, 0, 0, 0) <= 0)
        _exit (7);
#endif
      _exit (0);
    }
  int st;
  assert_int_equal (waitpid (pid, &st, 0), pid);
  assert_true (WIFEXITED (st));
  assert_int_equal (WEXITSTATUS (st), 0);
  seccomp_filter_free (f);
}

static seccomp_filter *
compile_lazy (const char *json, seccomp_profile_mode mode)
{
  seccomp_profile *p = NULL;
  kiln_error *err = NULL;
  if (json)
    p = parse_ok (json);
  else
    assert_int_equal (seccomp_profile_load_file ("policies/default.json", &p, &err), 0);
  seccomp_profile_env env = { seccomp_profile_docker_default_caps, 0, 0, mode, true };
  seccomp_filter *f = NULL;
  if (seccomp_profile_compile (p, &env, &f, &err) < 0)
    fail_msg ("compile: %s", err->msg);
  seccomp_profile_free (p);
  return f;
}

/* In a child with f loaded and its listener closed (a notified call then
 * fails with ENOSYS): 0 when socket(domain) fails with want_errno (0: works). */
static int
socket_result (const seccomp_filter *f, int domain, int want_errno)
{
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        _exit (100);
      int listener = seccomp_filter_load (f);
      if (listener < 0)
        _exit (101);
      if (listener > 0)
        close (listener);
      errno = 0;
      int fd = socket (domain, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (want_errno == 0)
        _exit (fd >= 0 ? 0 : 1);
      _exit (fd < 0 && errno == want_errno ? 0 : 2);
    }
  int st;
  assert_int_equal (waitpid (pid, &st, 0), pid);
  assert_true (WIFEXITED (st));
  return WEXITSTATUS (st);
}

/* lazy_net: the network sockets the profile allows go to the listener, the
 * AF_UNIX ones run, the ones it denies stay denied; in both ID modes. */
static void
test_lazy_net_socket_notified (void **state)
{
  (void) state;
  seccomp_profile_mode modes[] = { SECCOMP_PROFILE_PLAIN, SECCOMP_PROFILE_FAKE_IDS };
  for (size_t i = 0; i < 2; i++)
    {
      seccomp_filter *f = compile_lazy (NULL, modes[i]);
      assert_true (f->lazy_net && f->needs_listener);
      assert_int_equal (socket_result (f, AF_INET, ENOSYS), 0);
      assert_int_equal (socket_result (f, AF_INET6, ENOSYS), 0);
      assert_int_equal (socket_result (f, AF_NETLINK, ENOSYS), 0);
      assert_int_equal (socket_result (f, AF_UNIX, 0), 0);
      assert_int_equal (socket_result (f, AF_VSOCK, EPERM), 0); /* Docker's profile denies it */
      seccomp_filter_free (f);
    }
  /* Without lazy_net, network sockets run. */
  seccomp_filter *plain = compile (NULL, SECCOMP_PROFILE_PLAIN, 0, 0);
  assert_false (plain->lazy_net);
  assert_int_equal (socket_result (plain, AF_INET, 0), 0);
  seccomp_filter_free (plain);
}

/* A profile that allows by default cannot be made lazy (its steps start
 * the network up front); one whose socket rule leaves AF_UNIX out hands
 * AF_UNIX to the listener too rather than allow what it did not. */
static void
test_lazy_net_profiles (void **state)
{
  (void) state;
  seccomp_filter *f = compile_lazy ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[]}",
                                    SECCOMP_PROFILE_PLAIN);
  assert_false (f->lazy_net);
  assert_false (f->needs_listener);
  seccomp_filter_free (f);
  f = compile_lazy ("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":["
                    "{\"names\":[\"socket\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":"
                    "[{\"index\":0,\"value\":2,\"op\":\"SCMP_CMP_GE\"}]},"
                    /* what the child needs, and what ASan's socket() interceptor
                     * calls (make asan: denied, it spins in its error path) */
                    "{\"names\":[\"prctl\",\"seccomp\",\"close\",\"exit_group\",\"exit\","
                    "\"sigaltstack\",\"gettid\",\"getpid\",\"write\",\"mmap\",\"munmap\",\"madvise\","
                    "\"rt_sigprocmask\",\"rt_sigaction\",\"tgkill\",\"futex\",\"sched_yield\"],"
                    "\"action\":\"SCMP_ACT_ALLOW\"}]}",
                    SECCOMP_PROFILE_PLAIN);
  assert_true (f->lazy_net);
  assert_int_equal (socket_result (f, AF_INET, ENOSYS), 0);
  assert_int_equal (socket_result (f, AF_UNIX, EPERM), 0);
  seccomp_filter_free (f);
}

static void
test_load_missing_file (void **state)
{
  (void) state;
  seccomp_profile *p = NULL;
  kiln_error *err = NULL;
  assert_true (seccomp_profile_load_file ("/nonexistent/x.json", &p, &err) < 0);
  assert_int_equal (err->status, ENOENT);
  assert_non_null (strstr (err->msg, "/nonexistent/x.json"));
  kiln_error_free (err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_default_profile_parses), cmocka_unit_test (test_rejects_bad_input),
    cmocka_unit_test (test_default_filter_denies),  cmocka_unit_test (test_errno_ret_and_args),
    cmocka_unit_test (test_includes_excludes),      cmocka_unit_test (test_fake_ids_mode),
    cmocka_unit_test (test_fake_ids_stat_notified), cmocka_unit_test (test_load_missing_file),
    cmocka_unit_test (test_lazy_net_socket_notified), cmocka_unit_test (test_lazy_net_profiles),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
