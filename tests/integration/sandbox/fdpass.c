/* fdpass.c - a hostile RUN step helper for build_immutable.bats (issue 16,
 * item 1): one stage's step hands an O_RDWR fd of a file on its FUSE root
 * to a parallel stage's step, which writes through it once the first step
 * was committed. Static (busybox images have no libc to link against).
 *
 *   fdpass send SOCK FILE
 *       open FILE O_RDWR, listen on the unix socket SOCK, send the fd to the
 *       first client, wait for its acknowledgement, exit.
 *   fdpass recv SOCK WAITFILE DONEFILE DATA
 *       connect to SOCK (retrying until it exists), receive the fd,
 *       acknowledge, wait until WAITFILE exists (the sender's step has been
 *       committed), then pwrite DATA at offset 0 and fsync; print
 *       "fdpass: write=... fsync=..." and create DONEFILE.
 *
 * Exit status 0 unless the set-up itself failed: the writes failing is what
 * the test wants, so it reads the printed line. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void
die (const char *what)
{
  fprintf (stderr, "fdpass: %s: %s\n", what, strerror (errno));
  exit (1);
}

static void
nap (void)
{
  struct timespec ts = { 0, 100 * 1000 * 1000 };
  nanosleep (&ts, NULL);
}

static struct sockaddr_un
address (const char *path)
{
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  if (strlen (path) >= sizeof a.sun_path)
    {
      errno = ENAMETOOLONG;
      die (path);
    }
  strcpy (a.sun_path, path);
  return a;
}

static int
do_send (const char *sock, const char *file)
{
  int fd = open (file, O_RDWR | O_CLOEXEC);
  if (fd < 0)
    die (file);
  struct sockaddr_un a = address (sock);
  unlink (sock);
  int l = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l < 0 || bind (l, (struct sockaddr *) &a, sizeof a) < 0 || listen (l, 1) < 0)
    die ("listen");
  int c = accept (l, NULL, NULL);
  if (c < 0)
    die ("accept");
  char byte = 'F';
  struct iovec iov = { &byte, 1 };
  union
  {
    struct cmsghdr h;
    char buf[CMSG_SPACE (sizeof (int))];
  } u;
  memset (&u, 0, sizeof u);
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN (sizeof (int));
  memcpy (CMSG_DATA (cm), &fd, sizeof fd);
  if (sendmsg (c, &msg, 0) != 1)
    die ("sendmsg");
  if (read (c, &byte, 1) != 1)
    die ("read ack");
  unlink (sock);
  printf ("fdpass: sent the fd of %s\n", file);
  return 0;
}

static int
do_recv (const char *sock, const char *waitfile, const char *donefile, const char *data)
{
  struct sockaddr_un a = address (sock);
  int c = -1;
  for (int i = 0; i < 600; i++, nap ())
    {
      c = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (c < 0)
        die ("socket");
      if (connect (c, (struct sockaddr *) &a, sizeof a) == 0)
        break;
      close (c);
      c = -1;
    }
  if (c < 0)
    die ("connect");
  char byte;
  struct iovec iov = { &byte, 1 };
  union
  {
    struct cmsghdr h;
    char buf[CMSG_SPACE (sizeof (int))];
  } u;
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  if (recvmsg (c, &msg, MSG_CMSG_CLOEXEC) != 1)
    die ("recvmsg");
  struct cmsghdr *cm = CMSG_FIRSTHDR (&msg);
  if (!cm || cm->cmsg_type != SCM_RIGHTS)
    {
      errno = EPROTO;
      die ("no fd received");
    }
  int fd;
  memcpy (&fd, CMSG_DATA (cm), sizeof fd);
  if (write (c, "A", 1) != 1)
    die ("ack");
  close (c);
  printf ("fdpass: received the fd\n");
  fflush (stdout);
  int i = 0;
  for (; i < 1200 && access (waitfile, F_OK) < 0; i++)
    nap ();
  if (access (waitfile, F_OK) < 0)
    {
      errno = ETIMEDOUT;
      die (waitfile);
    }
  ssize_t w = pwrite (fd, data, strlen (data), 0);
  int we = errno;
  int f = fsync (fd);
  int fe = errno;
  printf ("fdpass: write=%s fsync=%s\n", w == (ssize_t) strlen (data) ? "ok" : strerror (we), f == 0 ? "ok" : strerror (fe));
  fflush (stdout);
  int d = open (donefile, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (d < 0)
    die (donefile);
  close (d);
  return 0;
}

int
main (int argc, char **argv)
{
  setvbuf (stdout, NULL, _IOLBF, 0);
  if (argc == 4 && strcmp (argv[1], "send") == 0)
    return do_send (argv[2], argv[3]);
  if (argc == 6 && strcmp (argv[1], "recv") == 0)
    return do_recv (argv[2], argv[3], argv[4], argv[5]);
  fprintf (stderr, "usage: fdpass send SOCK FILE | fdpass recv SOCK WAITFILE DONEFILE DATA\n");
  return 2;
}
