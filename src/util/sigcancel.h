/* sigcancel.h - SIGINT/SIGTERM as a request to stop a long command
 * (`kiln build`, `kiln pull`, `kiln push`).
 *
 * The handler only records the signal in a flag and, when a notify fd is
 * set, writes one byte to it (a self-pipe: the build's RUN steps run on
 * other threads and poll its read end, since the signal may land on a thread
 * that is not running the step). Commands poll the flag and unwind through
 * their normal error paths, which already discard temporary blobs, staging
 * directories, mounts and child processes; they exit with 128 + the signal
 * number (130 / 143), as a shell reports a killed command.
 *
 * The flag is process-wide state because a signal handler has nowhere else
 * to write; one command runs per process.
 */
#ifndef KILN_UTIL_SIGCANCEL_H
#define KILN_UTIL_SIGCANCEL_H

#include <signal.h>

/* Install the SIGINT and SIGTERM handlers (SA_RESTART: waits that must
 * stop poll the flag or the notify fd) and set the notify fd (-1: none; it
 * should be non-blocking, a full pipe loses nothing since one byte wakes
 * every poller). Returns the flag: 0 until a signal arrives, then the signal
 * number. Callers may store a signal number in it themselves (the sandbox
 * reports a signal that stopped a RUN step that way). */
volatile sig_atomic_t *sigcancel_install (int notify_fd);

/* Change the notify fd (-1: none). Clear it before closing the fd, so a late
 * signal cannot write to a reused descriptor. */
void sigcancel_set_notify_fd (int notify_fd);

/* 128 + the signal number once a signal arrived, else rc. */
int sigcancel_exit_code (int rc);

/* A command's cancellation, level-triggered: a pipe that is written and
 * never read. Once anything was written its read end stays readable, so
 * every thread that polls it sees the cancellation and none can consume it
 * from the others (a signalfd or a pending signal is consumed by the first
 * reader: the hang of issue 14). Writers: the signal handler (a SIGINT or
 * SIGTERM) and sigcancel_trigger (the command's own reasons, e.g. a
 * failed stage of a parallel build). */
typedef struct sigcancel_pipe
{
  int rfd; /* poll for POLLIN; never read */
  int wfd;
} sigcancel_pipe;

/* Make the pipe (non-blocking, O_CLOEXEC) and install the handlers with its
 * write end as the notify fd. Returns the flag as sigcancel_install does.
 * Without a pipe (fd exhaustion) rfd and wfd are -1 and only the flag
 * records a signal: callers treat rfd < 0 as "no cancellation fd". */
volatile sig_atomic_t *sigcancel_open (sigcancel_pipe *p);

/* Cancel without a signal: the flag stays 0, the read end becomes readable. */
void sigcancel_trigger (const sigcancel_pipe *p);

/* Clear the notify fd, then close both ends. */
void sigcancel_close (sigcancel_pipe *p);

#endif
