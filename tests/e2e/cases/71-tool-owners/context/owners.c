/* owners.c - the ways tools set and read file owners, for kiln's e2e case
 * 71-tool-owners (built static by its prepare script). Each command prints
 * one line so the image records what the step saw.
 *
 *   owners copyown REF NEW        fstat REF, write NEW.tmp, fchown it to REF's
 *                                 owner, rename it to NEW (shadow's commonio,
 *                                 as useradd rewrites /etc/shadow)
 *   owners emptypath FILE U G     fchownat(fd, "", U, G, AT_EMPTY_PATH)
 *   owners opath FILE U G         the same on an O_PATH fd, then fchown() on it
 *                                 (the kernel refuses that one: EBADF)
 *   owners fsids U G FILE         setfsgid/setfsuid, then create FILE
 *   owners stat FILE...           the owner through stat, lstat, fstat,
 *                                 fstatat (relative to a directory fd), statx
 *   owners stat32 FILE...         the same through the i386 ABI (int 0x80:
 *                                 stat64, lstat64, fstat64, fstatat64, statx),
 *                                 as a 32-bit program makes them (x86-64 only)
 *   owners loop FILE N            N stat() calls; prints the time per call
 *   owners idloop N               N getuid() calls; prints the time per call
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int
fail (const char *what)
{
  printf ("%s: %s\n", what, strerror (errno));
  return 1;
}

static int
copyown (const char *ref, const char *dst)
{
  struct stat st;
  char tmp[4096];
  int rfd = open (ref, O_RDONLY | O_CLOEXEC);
  if (rfd < 0 || fstat (rfd, &st) < 0)
    return fail ("fstat ref");
  snprintf (tmp, sizeof tmp, "%s.tmp", dst);
  int fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return fail ("create tmp");
  if (fchown (fd, st.st_uid, st.st_gid) < 0)
    return fail ("fchown tmp");
  if (fchmod (fd, st.st_mode & 07777) < 0 || write (fd, "copied\n", 7) != 7 || close (fd) < 0)
    return fail ("write tmp");
  if (rename (tmp, dst) < 0)
    return fail ("rename");
  printf ("copyown %s: %u:%u\n", dst, (unsigned) st.st_uid, (unsigned) st.st_gid);
  return 0;
}

static int
chown_fd (const char *file, int oflags, uid_t u, gid_t g)
{
  int fd = open (file, oflags | O_CLOEXEC);
  if (fd < 0)
    return fail ("open");
  int r = fchownat (fd, "", u, g, AT_EMPTY_PATH);
  printf ("fchownat AT_EMPTY_PATH%s %s: %s\n", oflags & O_PATH ? " (O_PATH)" : "", file,
          r < 0 ? strerror (errno) : "ok");
  if (oflags & O_PATH)
    {
      r = fchown (fd, 0, 0);
      printf ("fchown (O_PATH) %s: %s\n", file, r < 0 ? strerror (errno) : "ok");
    }
  return 0;
}

static void
show (const char *file)
{
  struct stat a, b, c, d;
  struct statx x;
  char buf[4096];
  snprintf (buf, sizeof buf, "%s", file);
  int dfd = open (dirname (buf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  snprintf (buf, sizeof buf, "%s", file);
  const char *base = basename (buf);
  int fd = open (file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  printf ("%s:", file);
  if (stat (file, &a) == 0)
    printf (" stat %u:%u", (unsigned) a.st_uid, (unsigned) a.st_gid);
  if (lstat (file, &b) == 0)
    printf (" lstat %u:%u", (unsigned) b.st_uid, (unsigned) b.st_gid);
  if (fd >= 0 && fstat (fd, &c) == 0)
    printf (" fstat %u:%u", (unsigned) c.st_uid, (unsigned) c.st_gid);
  if (dfd >= 0 && fstatat (dfd, base, &d, AT_SYMLINK_NOFOLLOW) == 0)
    printf (" fstatat %u:%u", (unsigned) d.st_uid, (unsigned) d.st_gid);
  if (statx (AT_FDCWD, file, AT_SYMLINK_NOFOLLOW, STATX_UID | STATX_GID, &x) == 0)
    printf (" statx %u:%u", (unsigned) x.stx_uid, (unsigned) x.stx_gid);
  printf ("\n");
  if (fd >= 0)
    close (fd);
  if (dfd >= 0)
    close (dfd);
}

#if defined(__x86_64__)
/* An i386 system call (the kernel's IA-32 entry); pointers below 4 GiB. */
static long
int80 (long nr, long b, long c, long d, long si, long di)
{
  long ret;
  __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(nr), "b"(b), "c"(c), "d"(d), "S"(si), "D"(di) : "memory");
  return ret;
}

/* uid and gid of i386's struct stat64 (offsets 24, 28) and of struct statx
 * (20, 24). */
static void
show32 (char *low, const char *file)
{
  char *path = low, *base = low + 4096, *buf = low + 8192;
  unsigned *st = (unsigned *) buf;
  snprintf (path, 4096, "%s", file);
  snprintf (base, 4096, "%s", file);
  int dfd = open (dirname (base), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  snprintf (base, 4096, "%s", file);
  memmove (base, basename (base), strlen (basename (base)) + 1);
  int fd = open (file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  printf ("%s:", file);
  if (int80 (195, (long) path, (long) buf, 0, 0, 0) == 0)
    printf (" stat64 %u:%u", st[6], st[7]);
  if (int80 (196, (long) path, (long) buf, 0, 0, 0) == 0)
    printf (" lstat64 %u:%u", st[6], st[7]);
  if (fd >= 0 && int80 (197, fd, (long) buf, 0, 0, 0) == 0)
    printf (" fstat64 %u:%u", st[6], st[7]);
  if (dfd >= 0 && int80 (300, dfd, (long) base, (long) buf, AT_SYMLINK_NOFOLLOW, 0) == 0)
    printf (" fstatat64 %u:%u", st[6], st[7]);
  if (int80 (383, AT_FDCWD, (long) path, AT_SYMLINK_NOFOLLOW, STATX_UID | STATX_GID, (long) buf) == 0)
    printf (" statx %u:%u", st[5], st[6]);
  printf ("\n");
  if (fd >= 0)
    close (fd);
  if (dfd >= 0)
    close (dfd);
}
#endif

int
main (int argc, char **argv)
{
  setvbuf (stdout, NULL, _IOLBF, 0);
  if (argc == 4 && strcmp (argv[1], "copyown") == 0)
    return copyown (argv[2], argv[3]);
  if (argc == 5 && strcmp (argv[1], "emptypath") == 0)
    return chown_fd (argv[2], O_RDONLY, atoi (argv[3]), atoi (argv[4]));
  if (argc == 5 && strcmp (argv[1], "opath") == 0)
    return chown_fd (argv[2], O_PATH, atoi (argv[3]), atoi (argv[4]));
  if (argc == 5 && strcmp (argv[1], "fsids") == 0)
    {
      setfsgid (atoi (argv[3]));
      setfsuid (atoi (argv[2]));
      int fd = open (argv[4], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0)
        return fail ("create");
      close (fd);
      return 0;
    }
  if (argc >= 3 && strcmp (argv[1], "stat") == 0)
    {
      for (int i = 2; i < argc; i++)
        show (argv[i]);
      return 0;
    }
#if defined(__x86_64__)
  if (argc >= 3 && strcmp (argv[1], "stat32") == 0)
    {
      char *low = mmap (NULL, 16384, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
      if (low == MAP_FAILED)
        return fail ("mmap below 4 GiB");
      for (int i = 2; i < argc; i++)
        show32 (low, argv[i]);
      return 0;
    }
#endif
  if (argc == 3 && strcmp (argv[1], "idloop") == 0)
    {
      struct timespec t0, t1;
      long n = atol (argv[2]);
      clock_gettime (CLOCK_MONOTONIC, &t0);
      for (long i = 0; i < n; i++)
        (void) getuid ();
      clock_gettime (CLOCK_MONOTONIC, &t1);
      double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
      fprintf (stderr, "getuid: %.1f us per call\n", ns / n / 1000);
      return 0;
    }
  if (argc == 4 && strcmp (argv[1], "loop") == 0)
    {
      struct timespec t0, t1;
      struct stat st;
      long n = atol (argv[3]);
      clock_gettime (CLOCK_MONOTONIC, &t0);
      for (long i = 0; i < n; i++)
        if (stat (argv[2], &st) < 0)
          return fail ("stat");
      clock_gettime (CLOCK_MONOTONIC, &t1);
      double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
      fprintf (stderr, "stat: %.1f us per call\n", ns / n / 1000);
      return 0;
    }
  fprintf (stderr, "usage: see owners.c\n");
  return 2;
}
