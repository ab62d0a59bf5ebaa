/* escape.c - escape attempts run inside a kiln step; prints NAME=RESULT per
 * attempt, RESULT being "ok" (the call succeeded) or the errno name.
 * Usage: escape HOST_MARKER_PATH HOST_PID
 * Built static by sandbox_escape.bats and run in a busybox root. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kexec.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void
report (const char *name, long r)
{
  printf ("%s=%s\n", name, r < 0 ? strerrorname_np (errno) : "ok");
}

#define TRY(name, expr)                                                                            \
  do                                                                                               \
    {                                                                                              \
      errno = 0;                                                                                   \
      report (name, (long) (expr));                                                                \
    }                                                                                              \
  while (0)

/* Open a path and report ok only when it yields data. */
static void
try_read (const char *name, const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      report (name, -1);
      return;
    }
  char b[16];
  ssize_t n = read (fd, b, sizeof b);
  close (fd);
  if (n < 0)
    report (name, -1);
  else
    printf ("%s=%s\n", name, n == 0 ? "empty" : "ok");
}

static void
try_write (const char *name, const char *path, const char *data)
{
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    {
      report (name, -1);
      return;
    }
  ssize_t n = write (fd, data, strlen (data));
  close (fd);
  report (name, n < 0 ? -1 : 0);
}

int
main (int argc, char **argv)
{
  if (argc < 3)
    {
      fprintf (stderr, "usage: escape HOST_MARKER HOST_PID\n");
      return 2;
    }
  const char *marker = argv[1];
  pid_t hostpid = atoi (argv[2]);
  char p[4096];

  TRY ("mount", mount ("tmpfs", "/tmp", "tmpfs", 0, NULL));
  TRY ("umount", umount2 ("/proc", MNT_DETACH));
  TRY ("unshare_user", unshare (CLONE_NEWUSER));
  TRY ("unshare_mnt", unshare (CLONE_NEWNS));
  int nsfd = open ("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC);
  TRY ("setns", setns (nsfd, 0));
  TRY ("pivot_root", syscall (SYS_pivot_root, "/", "/"));
  TRY ("keyctl", syscall (SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
  TRY ("add_key", syscall (SYS_add_key, "user", "k", "v", 1, KEY_SPEC_SESSION_KEYRING));
  TRY ("bpf", syscall (SYS_bpf, 0, NULL, 0));
  TRY ("perf_event_open", syscall (SYS_perf_event_open, NULL, 0, -1, -1, 0));
  TRY ("init_module", syscall (SYS_init_module, NULL, 0, ""));
  TRY ("finit_module", syscall (SYS_finit_module, 0, "", 0));
  TRY ("kexec_load", syscall (SYS_kexec_load, 0, 0, NULL, 0));
  TRY ("ptrace_host", ptrace (PTRACE_ATTACH, hostpid, NULL, NULL));
  TRY ("kill_host", kill (hostpid, SIGKILL));
  try_read ("read_kcore", "/proc/kcore");
  try_read ("read_host_file", marker);
  try_write ("write_proc_sys", "/proc/sys/kernel/hostname", "pwned");
  try_write ("write_sysrq", "/proc/sysrq-trigger", "h");
  TRY ("mknod_disk", mknod ("/dev/shm/sda", S_IFBLK | 0600, makedev (8, 0)));
  TRY ("symlink", symlink ("/", "/dev/shm/l"));
  snprintf (p, sizeof p, "/dev/shm/l%s", marker);
  try_read ("symlink_host_file", p);
  snprintf (p, sizeof p, "/proc/self/root%s", marker);
  try_read ("proc_self_root", p);
  snprintf (p, sizeof p, "/proc/1/root%s", marker);
  try_read ("proc_1_root", p);
  TRY ("open_by_handle_at", syscall (SYS_open_by_handle_at, AT_FDCWD, NULL, 0));
  TRY ("io_uring_setup", syscall (SYS_io_uring_setup, 1, NULL));
  TRY ("socket_vsock", socket (AF_VSOCK, SOCK_STREAM, 0));
  TRY ("socket_alg", socket (AF_ALG, SOCK_SEQPACKET, 0));
  TRY ("sethostname", sethostname ("x", 1));
  struct timespec ts = { 0, 0 };
  TRY ("clock_settime", clock_settime (CLOCK_REALTIME, &ts));
  TRY ("reboot", reboot (RB_POWER_OFF));
  TRY ("swapon", swapon ("/dev/null", 0));
  TRY ("acct", acct ("/dev/null"));
  TRY ("iopl", syscall (SYS_iopl, 3));
  TRY ("userfaultfd", syscall (SYS_userfaultfd, 0));

  /* chroot escape: chroot into a subdirectory, climb, chroot("."). */
  mkdir ("/dev/shm/c", 0700);
  int r = chroot ("/dev/shm/c");
  report ("chroot", r);
  if (r == 0)
    {
      for (int i = 0; i < 64; i++)
        if (chdir ("..") < 0)
          break;
      chroot (".");
      struct stat st;
      printf ("chroot_escape=%s\n", stat (marker, &st) == 0 ? "escaped" : "contained");
    }
  return 0;
}
