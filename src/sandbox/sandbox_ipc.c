/* sandbox_ipc.c - what kiln and its sandbox children use to talk and wait:
 * one-byte messages with fds over the sync socket, the set-up error pipe,
 * waiting with cancellation, forking with signals held, the fork lock. */
#include "sandbox/sandbox_internal.h"
#include "util/strbuf.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The one definition (see sandbox_internal.h and start_helper in sandbox.c). */
pthread_mutex_t sandbox_fork_lock = PTHREAD_MUTEX_INITIALIZER;

int
sandbox_send_fds (int sock, char tag, const int *fds, int n)
{
  char cbuf[CMSG_SPACE (3 * sizeof (int))];
  memset (cbuf, 0, sizeof cbuf);
  struct iovec iov = { &tag, 1 };
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
  if (n > 0)
    {
      mh.msg_control = cbuf;
      mh.msg_controllen = CMSG_SPACE ((size_t) n * sizeof (int));
      struct cmsghdr *cm = CMSG_FIRSTHDR (&mh);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN ((size_t) n * sizeof (int));
      memcpy (CMSG_DATA (cm), fds, (size_t) n * sizeof (int));
    }
  ssize_t r;
  do
    r = sendmsg (sock, &mh, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r == 1 ? 0 : -1;
}

int
sandbox_send_fd (int sock, char tag, int fd)
{
  return sandbox_send_fds (sock, tag, &fd, 1);
}

char
sandbox_wait_ack (int sock)
{
  char ack = 0;
  ssize_t n;
  do
    n = read (sock, &ack, 1);
  while (n < 0 && errno == EINTR);
  return n == 1 ? ack : 0;
}

int
sandbox_recv_msg (int sock, char *tag, int *fds, int max, pid_t *pid)
{
  char cbuf[CMSG_SPACE (4 * sizeof (int)) + CMSG_SPACE (sizeof (struct ucred))];
  memset (cbuf, 0, sizeof cbuf);
  struct iovec iov = { tag, 1 };
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  ssize_t n;
  do
    n = recvmsg (sock, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n <= 0)
    {
      if (n == 0)
        errno = 0;
      return -1;
    }
  int got = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR (&mh); cm; cm = CMSG_NXTHDR (&mh, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
      {
        size_t k = (cm->cmsg_len - CMSG_LEN (0)) / sizeof (int);
        for (size_t i = 0; i < k; i++)
          {
            int fd;
            memcpy (&fd, CMSG_DATA (cm) + i * sizeof (int), sizeof fd);
            if (got < max)
              fds[got++] = fd;
            else
              close (fd);
          }
      }
    else if (pid && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS)
      {
        struct ucred uc;
        memcpy (&uc, CMSG_DATA (cm), sizeof uc);
        *pid = uc.pid;
      }
  if (mh.msg_flags & MSG_CTRUNC)
    {
      while (got > 0)
        close (fds[--got]);
      errno = EMSGSIZE;
      return -1;
    }
  return got;
}

int
sandbox_recv_fd (int sock)
{
  char tag;
  int fd;
  return sandbox_recv_msg (sock, &tag, &fd, 1, NULL) == 1 ? fd : -1;
}

void
sandbox_close_fd (int *fd)
{
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

int
sandbox_read_setup_error (int fd, kiln_error **err)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  char buf[512];
  for (;;)
    {
      ssize_t n = read (fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      strbuf_add (&sb, buf, (size_t) n);
    }
  if (sb.len == 0)
    return 0;
  char *colon = strchr (sb.buf, ':');
  int e = atoi (sb.buf);
  return kiln_error_make (err, e, "%s", colon ? colon + 1 : sb.buf);
}

int
sandbox_cancel_error (const volatile sig_atomic_t *signo, int *interrupted, const char *suffix, kiln_error **err)
{
  int s = signo ? (int) *signo : 0;
  if (s == 0)
    return kiln_error_make (err, ECANCELED, "cancelled by kiln (another part of the build failed)%s", suffix);
  if (interrupted)
    *interrupted = s;
  return kiln_error_make (err, EINTR, "interrupted by signal %d (%s)%s", s, strsignal (s), suffix);
}

bool
sandbox_cancelled (int cancel_fd)
{
  if (cancel_fd <= 0)
    return false;
  struct pollfd pf = { cancel_fd, POLLIN, 0 };
  int r;
  while ((r = poll (&pf, 1, 0)) < 0 && errno == EINTR)
    ;
  return r == 1 && (pf.revents & POLLIN);
}

int
sandbox_wait_fds (const int *fds, int n, int cancel_fd, int timeout_s)
{
  return sandbox_wait_fds_ms (fds, n, cancel_fd, timeout_s > 0 ? timeout_s * 1000 : 0);
}

int
sandbox_wait_fds_ms (const int *fds, int n, int cancel_fd, int timeout_ms)
{
  struct pollfd pf[5];
  for (int i = 0; i < n; i++)
    pf[i] = (struct pollfd) { fds[i], POLLIN, 0 };
  pf[n] = (struct pollfd) { cancel_fd > 0 ? cancel_fd : -1, POLLIN, 0 };
  struct timespec now, end;
  clock_gettime (CLOCK_MONOTONIC, &end);
  end.tv_sec += timeout_ms / 1000;
  end.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
  if (end.tv_nsec >= 1000000000L)
    {
      end.tv_sec++;
      end.tv_nsec -= 1000000000L;
    }
  for (;;)
    {
      int ms = -1;
      if (timeout_ms > 0)
        {
          clock_gettime (CLOCK_MONOTONIC, &now);
          long long left = (end.tv_sec - now.tv_sec) * 1000LL + (end.tv_nsec - now.tv_nsec) / 1000000;
          ms = left < 0 ? 0 : (int) left;
        }
      int r = poll (pf, (nfds_t) n + 1, ms);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return -1;
      if (pf[n].revents & POLLIN)
        {
          errno = ECANCELED;
          return -1;
        }
      for (int i = 0; i < n; i++)
        if (pf[i].revents)
          return i;
      if (r == 0)
        {
          errno = ETIMEDOUT;
          return -1;
        }
    }
}

pid_t
sandbox_fork_child (void)
{
  sigset_t block, old;
  sigemptyset (&block);
  sigaddset (&block, SIGINT);
  sigaddset (&block, SIGTERM);
  pthread_sigmask (SIG_BLOCK, &block, &old);
  pid_t pid = fork ();
  if (pid == 0)
    {
      signal (SIGINT, SIG_DFL);
      signal (SIGTERM, SIG_DFL);
      return 0;
    }
  int e = errno;
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  errno = e;
  return pid;
}

void
sandbox_kill_and_reap (pid_t pid)
{
  kill (pid, SIGKILL);
  while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
    ;
}
