/* tmpfile.c - open(2) with O_TMPFILE as installers use it, for images
 * without a compiler (busybox), built by the tests with gcc -static:
 *
 *   tmpfile link DIR NAME TEXT MODE   an unnamed file in DIR holding TEXT,
 *                                     fchmod MODE (octal), then linked as
 *                                     DIR/NAME through /proc/self/fd (as
 *                                     systemd's and gnulib's helpers do)
 *   tmpfile excl DIR NAME             O_TMPFILE | O_EXCL: the link must
 *                                     fail with ENOENT
 *   tmpfile anon DIR TEXT             an unnamed file that is written, read
 *                                     back and closed without a name
 *   tmpfile relink DIR NAME           link, unlink, link again: the second
 *                                     link must fail with ENOENT
 *
 * Prints "tmpfile: OP ok" or "tmpfile: STEP: ERRNO-NAME" and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
fail (const char *what)
{
  printf ("tmpfile: %s: %s\n", what, strerrorname_np (errno) ? strerrorname_np (errno) : "?");
  return 1;
}

/* NAME is in DIR, as the file's directory is the one it was made in */
static int
link_fd (int fd, const char *dir, const char *name)
{
  char p[64];
  snprintf (p, sizeof p, "/proc/self/fd/%d", fd);
  int dfd = open (dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return -1;
  int r = linkat (AT_FDCWD, p, dfd, name, AT_SYMLINK_FOLLOW);
  int e = errno;
  close (dfd);
  errno = e;
  return r;
}

static int
write_all (int fd, const char *s)
{
  size_t n = strlen (s);
  return write (fd, s, n) == (ssize_t) n ? 0 : -1;
}

static int
do_link (const char *dir, const char *name, const char *text, const char *mode)
{
  int fd = open (dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    return fail ("open O_TMPFILE");
  struct stat st;
  if (fstat (fd, &st) < 0)
    return fail ("fstat");
  if (st.st_nlink != 0 || !S_ISREG (st.st_mode))
    {
      printf ("tmpfile: unnamed file has nlink %lu mode %o\n", (unsigned long) st.st_nlink, st.st_mode);
      return 1;
    }
  if (write_all (fd, text) < 0 || fchmod (fd, (mode_t) strtoul (mode, NULL, 8)) < 0)
    return fail ("write");
  if (link_fd (fd, dir, name) < 0)
    return fail ("linkat");
  if (fstat (fd, &st) < 0 || st.st_nlink != 1)
    {
      printf ("tmpfile: linked file has nlink %lu\n", (unsigned long) st.st_nlink);
      return 1;
    }
  /* written after the link: the name shows it */
  if (write_all (fd, "+") < 0)
    return fail ("write after link");
  close (fd);
  puts ("tmpfile: link ok");
  return 0;
}

static int
do_excl (const char *dir, const char *name)
{
  int fd = open (dir, O_TMPFILE | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    return fail ("open O_TMPFILE|O_EXCL");
  if (link_fd (fd, dir, name) == 0)
    {
      puts ("tmpfile: O_EXCL file was linked");
      return 1;
    }
  if (errno != ENOENT)
    return fail ("linkat of O_EXCL file");
  close (fd);
  puts ("tmpfile: excl ok");
  return 0;
}

static int
do_anon (const char *dir, const char *text)
{
  int fd = open (dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    return fail ("open O_TMPFILE");
  char buf[256] = "";
  if (write_all (fd, text) < 0 || pread (fd, buf, sizeof buf - 1, 0) != (ssize_t) strlen (text))
    return fail ("write and read back");
  if (strcmp (buf, text) != 0)
    {
      printf ("tmpfile: read back '%s'\n", buf);
      return 1;
    }
  close (fd);
  puts ("tmpfile: anon ok");
  return 0;
}

static int
do_relink (const char *dir, const char *name)
{
  int fd = open (dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0)
    return fail ("open O_TMPFILE");
  if (link_fd (fd, dir, name) < 0)
    return fail ("first linkat");
  int dfd = open (dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || unlinkat (dfd, name, 0) < 0)
    return fail ("unlink");
  close (dfd);
  if (link_fd (fd, dir, name) == 0)
    {
      puts ("tmpfile: an unlinked file was linked again");
      return 1;
    }
  if (errno != ENOENT)
    return fail ("second linkat");
  close (fd);
  puts ("tmpfile: relink ok");
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc == 6 && strcmp (argv[1], "link") == 0)
    return do_link (argv[2], argv[3], argv[4], argv[5]);
  if (argc == 4 && strcmp (argv[1], "excl") == 0)
    return do_excl (argv[2], argv[3]);
  if (argc == 4 && strcmp (argv[1], "anon") == 0)
    return do_anon (argv[2], argv[3]);
  if (argc == 4 && strcmp (argv[1], "relink") == 0)
    return do_relink (argv[2], argv[3]);
  fprintf (stderr, "usage: tmpfile link DIR NAME TEXT MODE | excl DIR NAME | anon DIR TEXT | relink DIR NAME\n");
  return 2;
}
