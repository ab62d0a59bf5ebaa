/* cancel.c - SIGINT/SIGTERM for pull and push (see cancel.h). */
#include "registry/cancel.h"

#include <string.h>

/* A signal handler has nowhere else to write. */
static volatile sig_atomic_t cancel_signal;

static void
on_signal (int sig)
{
  cancel_signal = sig;
}

const volatile sig_atomic_t *
registry_cancel_install (void)
{
  struct sigaction sa;
  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  return &cancel_signal;
}

int
registry_cancel_exit_code (int rc)
{
  return cancel_signal ? 128 + (int) cancel_signal : rc;
}
