/* sigcancel.c - SIGINT/SIGTERM as a stop request (see sigcancel.h). */
#include "util/sigcancel.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* A signal handler has nowhere else to write. */
static volatile sig_atomic_t cancel_signal;
static volatile sig_atomic_t cancel_notify_fd = -1;

static void
on_signal (int sig)
{
  cancel_signal = sig;
  int fd = cancel_notify_fd;
  if (fd >= 0)
    {
      int e = errno; /* write(2) is async-signal-safe; its errno must not leak */
      ssize_t r = write (fd, "x", 1);
      (void) r;
      errno = e;
    }
}

volatile sig_atomic_t *
sigcancel_install (int notify_fd)
{
  cancel_notify_fd = notify_fd;
  struct sigaction sa;
  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  return &cancel_signal;
}

void
sigcancel_set_notify_fd (int notify_fd)
{
  cancel_notify_fd = notify_fd;
}

int
sigcancel_exit_code (int rc)
{
  return cancel_signal ? 128 + (int) cancel_signal : rc;
}

volatile sig_atomic_t *
sigcancel_open (sigcancel_pipe *p)
{
  int fds[2];
  if (pipe2 (fds, O_CLOEXEC | O_NONBLOCK) < 0)
    fds[0] = fds[1] = -1;
  p->rfd = fds[0];
  p->wfd = fds[1];
  return sigcancel_install (p->wfd);
}

void
sigcancel_trigger (const sigcancel_pipe *p)
{
  /* A full pipe is fine: it is readable already. */
  if (p->wfd >= 0)
    {
      ssize_t r = write (p->wfd, "x", 1);
      (void) r;
    }
}

void
sigcancel_close (sigcancel_pipe *p)
{
  sigcancel_set_notify_fd (-1);
  if (p->rfd >= 0)
    close (p->rfd);
  if (p->wfd >= 0)
    close (p->wfd);
  p->rfd = p->wfd = -1;
}
