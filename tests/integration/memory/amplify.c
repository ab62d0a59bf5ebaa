/* amplify.c - a RUN step's tries at making kiln's own memory grow much
 * faster than what the step itself spends (issue 16, item 7). Built static
 * by tests/integration/build_memory.bats and copied into a busybox image.
 *
 *   amplify deep N LEN          N nested directories with LEN-byte names
 *                               (created relative to the cwd: a path string
 *                               would hit PATH_MAX long before)
 *   amplify xattrs FILE N SIZE  N user.* xattrs of SIZE bytes on FILE;
 *                               prints "set=K" and the errno that stopped it
 *   amplify files DIR N         N empty files in DIR
 *   amplify opendirs DIR N      N directory streams of DIR kept open, each
 *                               read once to the end (the fd limit raised
 *                               to the hard limit); prints "open=K"
 *   amplify opendirs-churn DIR N
 *                               the same, creating a file in DIR between two
 *                               opendirs (no two handles see the same listing)
 * Exit status: 0 when everything was done, 3 when a request failed (the
 * errno is printed), 2 on bad usage.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static int
deep (long n, long len)
{
  char name[256];
  if (len < 1 || len > 255)
    return 2;
  memset (name, 'd', (size_t) len);
  name[len] = '\0';
  for (long i = 0; i < n; i++)
    if (mkdir (name, 0755) < 0 || chdir (name) < 0)
      {
        printf ("deep=%ld errno=%s\n", i, strerrorname_np (errno));
        return 3;
      }
  printf ("deep=%ld\n", n);
  return 0;
}

static int
xattrs (const char *file, long n, long size)
{
  char *val = malloc ((size_t) size + 1);
  if (!val)
    return 2;
  memset (val, 'x', (size_t) size);
  for (long i = 0; i < n; i++)
    {
      char name[64];
      snprintf (name, sizeof name, "user.amplify.%ld", i);
      if (setxattr (file, name, val, (size_t) size, 0) < 0)
        {
          printf ("set=%ld errno=%s\n", i, strerrorname_np (errno));
          return 3;
        }
    }
  printf ("set=%ld\n", n);
  return 0;
}

static int
files (const char *dir, long n)
{
  int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return 3;
  for (long i = 0; i < n; i++)
    {
      char name[64];
      snprintf (name, sizeof name, "file-with-a-longish-name-%08ld", i);
      int fd = openat (dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0)
        {
          printf ("files=%ld errno=%s\n", i, strerrorname_np (errno));
          return 3;
        }
      close (fd);
    }
  printf ("files=%ld\n", n);
  return 0;
}

static int
opendirs (const char *dir, long n, int churn)
{
  long entries = 0;
  /* every stream is an fd: as many as the hard limit allows */
  struct rlimit rl;
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
    {
      rl.rlim_cur = rl.rlim_max;
      setrlimit (RLIMIT_NOFILE, &rl);
    }
  for (long i = 0; i < n; i++)
    {
      DIR *d = opendir (dir);
      if (!d)
        {
          printf ("open=%ld errno=%s\n", i, strerrorname_np (errno));
          return 3;
        }
      /* kept open on purpose: every stream lives until the step ends */
      for (struct dirent *e; (e = readdir (d));)
        entries++;
      if (churn)
        {
          char name[PATH_MAX];
          snprintf (name, sizeof name, "%s/churn-%ld", dir, i);
          int fd = open (name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
          if (fd < 0)
            {
              printf ("open=%ld churn errno=%s\n", i, strerrorname_np (errno));
              return 3;
            }
          close (fd);
        }
    }
  printf ("open=%ld entries=%ld\n", n, entries);
  return 0;
}

int
main (int argc, char **argv)
{
  setvbuf (stdout, NULL, _IOLBF, 0);
  if (argc == 4 && !strcmp (argv[1], "deep"))
    return deep (atol (argv[2]), atol (argv[3]));
  if (argc == 5 && !strcmp (argv[1], "xattrs"))
    return xattrs (argv[2], atol (argv[3]), atol (argv[4]));
  if (argc == 4 && !strcmp (argv[1], "files"))
    return files (argv[2], atol (argv[3]));
  if (argc == 4 && !strcmp (argv[1], "opendirs"))
    return opendirs (argv[2], atol (argv[3]), 0);
  if (argc == 4 && !strcmp (argv[1], "opendirs-churn"))
    return opendirs (argv[2], atol (argv[3]), 1);
  fprintf (stderr, "usage: amplify deep N LEN | xattrs FILE N SIZE | files DIR N | opendirs[-churn] DIR N\n");
  return 2;
}
