/* pid1probe.c - what a RUN --security=insecure step can reach through the
 * step's pid 1 (kiln's init, a fork of kiln): prints NAME=RESULT per
 * attempt, RESULT being "ok" (the access worked) or the errno name.
 * Usage: pid1probe MARKER — also prints environ_marker=found when MARKER
 * (a value of kiln's environment) is readable anywhere through pid 1.
 * Built static by build_leaks.bats and run as a RUN step. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *
result (long r)
{
  return r < 0 ? strerrorname_np (errno) : "ok";
}

/* Read a whole file of pid 1; report and look for the marker. */
static void
try_file (const char *name, const char *path, const char *marker, int *found)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      printf ("%s=%s\n", name, result (-1));
      return;
    }
  static char buf[1 << 20];
  ssize_t n, total = 0;
  while ((n = read (fd, buf + total, sizeof buf - 1 - (size_t) total)) > 0)
    total += n;
  close (fd);
  printf ("%s=%s\n", name, n < 0 && total == 0 ? result (-1) : "ok");
  if (total > 0 && memmem (buf, (size_t) total, marker, strlen (marker)))
    *found = 1;
}

/* Look for the marker in every readable mapping of pid 1 (kiln's heap
 * holds copies of its environment and arguments). */
static void
scan_mem (int mem, const char *marker, int *found)
{
  FILE *maps = fopen ("/proc/1/maps", "re");
  char line[512];
  static char buf[1 << 16];
  while (maps && fgets (line, sizeof line, maps))
    {
      unsigned long start, end;
      char perms[8];
      if (sscanf (line, "%lx-%lx %7s", &start, &end, perms) != 3 || perms[0] != 'r')
        continue;
      for (unsigned long a = start; a < end; a += sizeof buf - 256)
        {
          ssize_t n = pread (mem, buf, sizeof buf, (off_t) a);
          if (n > 0 && memmem (buf, (size_t) n, marker, strlen (marker)))
            *found = 1;
        }
    }
  if (maps)
    fclose (maps);
}

/* Every fd of pid 1, by listing /proc/1/fd and by guessing numbers: an fd
 * that opens is an escape route (openat relative to it, ".." from a
 * directory of another mount namespace). */
static void
try_fds (void)
{
  DIR *d = opendir ("/proc/1/fd");
  printf ("fd_list=%s\n", d ? "ok" : result (-1));
  if (d)
    {
      struct dirent *e;
      while ((e = readdir (d)))
        if (e->d_name[0] != '.')
          printf ("fd_listed=%s\n", e->d_name);
      closedir (d);
    }
  int opened = 0, last_errno = ENOENT;
  for (int i = 0; i < 256; i++)
    {
      char p[64];
      snprintf (p, sizeof p, "/proc/1/fd/%d", i);
      int fd = open (p, O_PATH | O_CLOEXEC);
      if (fd < 0)
        {
          if (errno != ENOENT)
            last_errno = errno;
          continue;
        }
      opened++;
      int up = openat (fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (up >= 0)
        {
          struct stat a, b;
          if (fstat (up, &a) == 0 && stat ("/", &b) == 0 && (a.st_dev != b.st_dev || a.st_ino != b.st_ino))
            printf ("fd_escape=%d\n", i);
          close (up);
        }
      close (fd);
    }
  errno = last_errno;
  printf ("fd_open=%s\n", opened ? "ok" : result (-1));
}

int
main (int argc, char **argv)
{
  const char *marker = argc > 1 ? argv[1] : "kiln-probe-marker";
  int found = 0;
  setvbuf (stdout, NULL, _IOLBF, 0);
  try_file ("environ", "/proc/1/environ", marker, &found);
  try_file ("maps", "/proc/1/maps", marker, &found);
  int mem = open ("/proc/1/mem", O_RDONLY | O_CLOEXEC);
  printf ("mem=%s\n", result (mem));
  if (mem >= 0)
    {
      scan_mem (mem, marker, &found);
      close (mem);
    }
  try_fds ();
  long r = ptrace (PTRACE_ATTACH, 1, NULL, NULL);
  printf ("ptrace_attach=%s\n", result (r));
  if (r == 0)
    {
      waitpid (1, NULL, __WALL);
      ptrace (PTRACE_DETACH, 1, NULL, NULL);
    }
  r = ptrace (PTRACE_SEIZE, 1, NULL, NULL);
  printf ("ptrace_seize=%s\n", result (r));
  if (r == 0)
    ptrace (PTRACE_DETACH, 1, NULL, NULL);
  /* An address that is certainly unmapped: EFAULT means the access check passed. */
  char b[8];
  struct iovec local = { b, sizeof b }, remote = { (void *) 16, sizeof b };
  r = process_vm_readv (1, &local, 1, &remote, 1, 0);
  printf ("vm_readv=%s\n", r < 0 && errno == EFAULT ? "ok" : result (r));
  int pidfd = (int) syscall (SYS_pidfd_open, 1, 0);
  if (pidfd < 0)
    printf ("pidfd_getfd=%s\n", result (-1));
  else
    {
      int got = -1;
      for (int i = 0; i < 64 && got < 0; i++)
        {
          got = (int) syscall (SYS_pidfd_getfd, pidfd, i, 0);
          if (got < 0 && errno != EBADF)
            break;
        }
      printf ("pidfd_getfd=%s\n", result (got));
    }
  printf ("environ_marker=%s\n", found ? "found" : "absent");
  return 0;
}
