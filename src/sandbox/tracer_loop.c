/* tracer_loop.c - the wait loop of the tracing thread: every task of the
 * step is a tracee (auto-attached at fork, vfork and clone), seen through
 * waitpid(-1, __WALL | __WNOTHREAD), so the other threads' children are
 * never reaped here and ours never there.
 *
 * A new task may report its first stop before its creator's fork event:
 * it then waits ("parked") until the event says whose credentials it gets
 * (a copy for a process, the same for a thread). When the step's first
 * process exits, every other tracee is killed and the loop runs until the
 * last one has been reaped. */
#include "sandbox/tracer_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif

/* ---- the table, by tid ---- */

static size_t
slot (const tracer *t, pid_t tid)
{
  return ((size_t) tid * 2654435761u) & (t->cap - 1);
}

tracee *
tracer_find (tracer *t, pid_t tid)
{
  if (t->cap == 0)
    return NULL;
  for (size_t i = slot (t, tid);; i = (i + 1) & (t->cap - 1))
    {
      if (!t->tab[i])
        return NULL;
      if (t->tab[i]->tid == tid)
        return t->tab[i];
    }
}

static void
insert (tracer *t, tracee *te)
{
  size_t i = slot (t, te->tid);
  while (t->tab[i])
    i = (i + 1) & (t->cap - 1);
  t->tab[i] = te;
}

static tracee *
add (tracer *t, pid_t tid)
{
  if ((t->n + 1) * 2 > t->cap)
    {
      tracee **old = t->tab;
      size_t ocap = t->cap;
      t->cap = ocap ? ocap * 2 : 64;
      t->tab = xcalloc (t->cap, sizeof *t->tab);
      for (size_t i = 0; i < ocap; i++)
        if (old[i])
          insert (t, old[i]);
      free (old);
    }
  tracee *te = xzalloc (sizeof *te);
  te->tid = tid;
  te->tgid = tid;
  insert (t, te);
  t->n++;
  return te;
}

static void
tracee_free (tracee *te)
{
  tracer_creds_unref (te->creds);
  free (te->change_path);
  free (te->change_path2);
  free (te);
}

static void
del (tracer *t, pid_t tid)
{
  if (t->cap == 0)
    return;
  size_t i = slot (t, tid);
  while (t->tab[i] && t->tab[i]->tid != tid)
    i = (i + 1) & (t->cap - 1);
  if (!t->tab[i])
    return;
  tracee_free (t->tab[i]);
  t->tab[i] = NULL;
  t->n--;
  /* re-place the rest of the cluster */
  for (size_t j = (i + 1) & (t->cap - 1); t->tab[j]; j = (j + 1) & (t->cap - 1))
    {
      tracee *te = t->tab[j];
      t->tab[j] = NULL;
      insert (t, te);
    }
}

void
tracer_clear (tracer *t)
{
  for (size_t i = 0; i < t->cap; i++)
    if (t->tab[i])
      tracee_free (t->tab[i]);
  free (t->tab);
  t->tab = NULL;
  t->cap = t->n = 0;
  free (t->owners);
  free (t->ldsos);
  free (t->stats);
  t->stats = NULL;
}

static void
kill_all (tracer *t)
{
  for (size_t i = 0; i < t->cap; i++)
    if (t->tab[i])
      kill (t->tab[i]->tid, SIGKILL);
}

static void
resume (pid_t tid, int sig)
{
  ptrace (PTRACE_CONT, tid, NULL, (void *) (long) sig);
}

/* The thread group of a new task. */
static pid_t
tgid_of (pid_t tid)
{
  char path[64], line[256];
  snprintf (path, sizeof path, "/proc/%d/status", (int) tid);
  FILE *f = fopen (path, "re");
  pid_t tgid = tid;
  if (!f)
    return tgid;
  while (fgets (line, sizeof line, f))
    if (strncmp (line, "Tgid:", 5) == 0)
      {
        tgid = (pid_t) atoi (line + 5);
        break;
      }
  fclose (f);
  return tgid;
}

/* ---- stops ---- */

static void
on_seccomp (tracer *t, tracee *te)
{
  /* The call comes from the syscall number: one ptrace request less than
   * PTRACE_GETEVENTMSG (the filter's data is the same). */
  tracer_call c = { .t = t, .te = te };
  tracer_action a = TR_CONTINUE;
  struct timespec t0 = { 0, 0 };
  if (t->stats)
    clock_gettime (CLOCK_MONOTONIC, &t0);
  if (t->killing || tracer_regs_get (te->tid, &c.regs) < 0)
    {
      resume (te->tid, 0);
      return;
    }
  c.sc = tracer_tsc_of (c.regs.nr);
  tracer_scratch_init (&c.scratch, te->tid, &c.regs);
  if (c.sc >= TSC_GETUID && c.sc <= TSC_SETGROUPS)
    a = tracer_ids (&c);
  else if (c.sc >= TSC_KILL && c.sc <= TSC_RT_TGSIGQUEUEINFO)
    a = tracer_signal (&c);
  else if (c.sc == TSC_EXECVE || c.sc == TSC_EXECVEAT)
    a = tracer_exec (&c);
  else if (c.sc > TSC_NONE && c.sc < TSC_N_TRACED)
    a = tracer_sys (&c);
  else
    tracer_skip (&c.regs, -ENOSYS);
  if (tracer_regs_put (te->tid, &c.regs) < 0)
    a = TR_CONTINUE;
  if (a == TR_EXIT_STOP)
    {
      te->in_exit = true;
      ptrace (PTRACE_SYSCALL, te->tid, NULL, NULL);
    }
  else
    resume (te->tid, 0);
  if (t->stats)
    {
      struct timespec t1;
      clock_gettime (CLOCK_MONOTONIC, &t1);
      struct tracer_stat *s = &t->stats[c.sc < TSC_N_TRACED ? c.sc : TSC_NONE];
      s->n++;
      s->exits += a == TR_EXIT_STOP;
      s->secs += (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
    }
}

static void
stats_print (const tracer *t)
{
  unsigned long n = 0;
  double secs = 0;
  for (int i = 0; i < TSC_N_TRACED; i++)
    {
      n += t->stats[i].n;
      secs += t->stats[i].secs;
    }
  fprintf (stderr, "kiln tracer: %lu stops, %.3f s in the tracer\n", n, secs);
  for (int i = 0; i < TSC_N_TRACED; i++)
    if (t->stats[i].n)
      fprintf (stderr, "kiln tracer: %-18s %8lu stops %6lu exit stops %8.3f s %6.1f us/stop\n",
               tracer_sysname ((tsc) i), t->stats[i].n, t->stats[i].exits, t->stats[i].secs,
               t->stats[i].secs * 1e6 / (double) t->stats[i].n);
}

static void
on_syscall_exit (tracer *t, tracee *te)
{
  tracer_call c = { .t = t, .te = te };
  te->in_exit = false;
  if (tracer_regs_get (te->tid, &c.regs) == 0)
    {
      tracer_sys_exit (&c);
      tracer_regs_put (te->tid, &c.regs);
    }
  te->exit_kind = 0;
  resume (te->tid, 0);
}

static void
on_new_task (tracer *t, tracee *parent, int event)
{
  unsigned long msg = 0;
  ptrace (PTRACE_GETEVENTMSG, parent->tid, NULL, &msg);
  pid_t child = (pid_t) msg;
  tracee *nte = tracer_find (t, child);
  if (!nte)
    nte = add (t, child);
  nte->tgid = event == PTRACE_EVENT_CLONE ? tgid_of (child) : child;
  if (!nte->creds)
    nte->creds = nte->tgid == parent->tgid ? (parent->creds->refs++, parent->creds)
                                           : tracer_creds_copy (parent->creds);
  nte->known = true;
  if (nte->parked)
    {
      nte->parked = false;
      resume (child, 0);
    }
  if (t->killing)
    kill (child, SIGKILL);
  resume (parent->tid, 0);
}

static void
on_stop (tracer *t, pid_t tid, int status)
{
  int sig = WSTOPSIG (status), event = (status >> 16) & 0xff;
  tracee *te = tracer_find (t, tid);
  if (!te)
    {
      /* a new task before its creator's event */
      te = add (t, tid);
      te->attached = true;
      te->parked = true;
      if (t->killing)
        kill (tid, SIGKILL);
      return;
    }
  switch (event)
    {
    case PTRACE_EVENT_SECCOMP:
      on_seccomp (t, te);
      return;
    case PTRACE_EVENT_FORK:
    case PTRACE_EVENT_VFORK:
    case PTRACE_EVENT_CLONE:
      on_new_task (t, te, event);
      return;
    case PTRACE_EVENT_EXEC:
      {
        /* a thread other than the leader exec'd: it took the leader's tid */
        unsigned long old = 0;
        ptrace (PTRACE_GETEVENTMSG, tid, NULL, &old);
        if ((pid_t) old != tid)
          del (t, (pid_t) old);
        resume (tid, 0);
        return;
      }
    case PTRACE_EVENT_STOP:
      if (!te->attached)
        te->attached = true;   /* the initial stop of a known task */
      /* else a group-stop: without PTRACE_LISTEN the task just runs on */
      resume (tid, 0);
      return;
    default:
      break;
    }
  if (sig == (SIGTRAP | 0x80))
    {
      if (te->in_exit)
        on_syscall_exit (t, te);
      else
        resume (tid, 0);
      return;
    }
  /* signal-delivery stop: deliver it */
  resume (tid, sig);
}

int
tracer_loop (tracer *t, pid_t main_pid, int *main_status)
{
  tracee *m = add (t, main_pid);
  m->creds = tracer_creds_new (t->cfg);
  m->known = m->attached = true;
  t->main_pid = main_pid;
  bool main_done = false;
  const char *st = getenv ("KILN_TRACER_STATS");
  if (st && *st && !t->stats)
    t->stats = xcalloc (TSC_N_TRACED, sizeof *t->stats);
  for (;;)
    {
      int status;
      pid_t tid = waitpid (-1, &status, __WALL | __WNOTHREAD);
      if (tid < 0)
        {
          if (errno == EINTR)
            continue;
          int e = errno;
          if (t->stats)
            stats_print (t);
          return main_done ? 0 : -e;
        }
      if (WIFEXITED (status) || WIFSIGNALED (status))
        {
          del (t, tid);
          if (tid == main_pid)
            {
              *main_status = status;
              main_done = true;
              t->killing = true;
            }
          if (t->killing)
            kill_all (t);
          continue;
        }
      if (WIFSTOPPED (status))
        on_stop (t, tid, status);
    }
}
