/* tracer.c - tracer_run: the step under ptrace isolation, and
 * tracer_probe.
 *
 * Threads: the caller's thread reads the step's output (lines to
 * cfg->output) and watches cancel_fd; a thread of our own forks the step
 * and traces it (ptrace requests must come from the thread that attached,
 * and waitpid with __WNOTHREAD sees only that thread's children and
 * tracees). On cancellation the caller's thread SIGKILLs the step's first
 * process; the tracer then kills the rest and reaps everything. */
#include "sandbox/sandbox_internal.h"
#include "sandbox/tracer_internal.h"
#include "util/alloc.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#define SEIZE_OPTIONS (PTRACE_O_TRACESECCOMP | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE \
                       | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD)

typedef struct run_state
{
  tracer t;
  tracer_child child;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool ready;               /* the fds below are set (or setup failed) */
  int out_r, err_r, setup_r, done_r;
  pid_t pid;                /* the step's first process, 0 until forked */
  int main_status;
  int rc;                   /* of the thread: 0, or -errno */
  const char *what;         /* what failed in the thread */
  step_limits sl;           /* the step's cgroups or rlimits, and kiln's accounting */
} run_state;

static void
publish (run_state *rs)
{
  pthread_mutex_lock (&rs->mu);
  rs->ready = true;
  pthread_cond_signal (&rs->cv);
  pthread_mutex_unlock (&rs->mu);
}

/* Pipes, fork and closing the child's ends, under the process-wide fork
 * lock (see sandbox_internal.h). */
static int
start_child (run_state *rs, int *go_w, int *done_w)
{
  int out[2] = { -1, -1 }, errs[2] = { -1, -1 }, setup[2] = { -1, -1 }, go[2] = { -1, -1 }, done[2] = { -1, -1 };
  pthread_mutex_lock (&sandbox_fork_lock);
  if (pipe2 (out, O_CLOEXEC) < 0 || pipe2 (errs, O_CLOEXEC) < 0 || pipe2 (setup, O_CLOEXEC) < 0
      || pipe2 (go, O_CLOEXEC) < 0 || pipe2 (done, O_CLOEXEC) < 0)
    {
      int e = errno;
      int *all[] = { out, errs, setup, go, done };
      for (size_t i = 0; i < ARRAY_SIZE (all); i++)
        {
          sandbox_close_fd (&all[i][0]);
          sandbox_close_fd (&all[i][1]);
        }
      pthread_mutex_unlock (&sandbox_fork_lock);
      rs->what = "create pipes";
      return -e;
    }
  rs->child.out_fd = out[1];
  rs->child.err_out_fd = errs[1];
  rs->child.err_fd = setup[1];
  rs->child.go_fd = go[0];
  pid_t pid = sandbox_fork_child ();
  if (pid == 0)
    tracer_child_main (&rs->child);
  int e = errno;
  close (out[1]);
  close (errs[1]);
  close (setup[1]);
  close (go[0]);
  pthread_mutex_unlock (&sandbox_fork_lock);
  rs->out_r = out[0];
  rs->err_r = errs[0];
  rs->setup_r = setup[0];
  rs->done_r = done[0];
  *go_w = go[1];
  *done_w = done[1];
  if (pid < 0)
    {
      rs->what = "fork";
      return -e;
    }
  __atomic_store_n (&rs->pid, pid, __ATOMIC_SEQ_CST);
  return 0;
}

static void *
tracer_thread (void *arg)
{
  run_state *rs = arg;
  int go_w = -1, done_w = -1;
  rs->rc = start_child (rs, &go_w, &done_w);
  publish (rs);
  if (rs->rc < 0)
    {
      sandbox_close_fd (&go_w);
      sandbox_close_fd (&done_w);
      return NULL;
    }
  pid_t pid = rs->pid;
  if (ptrace (PTRACE_SEIZE, pid, NULL, (void *) (long) SEIZE_OPTIONS) < 0)
    {
      rs->rc = -errno;
      rs->what = "ptrace the step (PTRACE_SEIZE)";
      close (go_w);   /* the child exits at EOF */
      int st;
      while (waitpid (pid, &st, __WALL) < 0 && errno == EINTR)
        ;
    }
  else
    {
      ssize_t w = write (go_w, "g", 1);
      (void) w;
      close (go_w);
      int r = tracer_loop (&rs->t, pid, &rs->main_status);
      if (r < 0)
        {
          rs->rc = r;
          rs->what = "wait for the step";
        }
    }
  ssize_t w = write (done_w, "d", 1);
  (void) w;
  close (done_w);
  return NULL;
}

/* ---- output ---- */

/* Until the tracer is done and the output drained; *cancelled when
 * cancel_fd fired (the step is then killed). */
static void
supervise (run_state *rs, const tracer_config *cfg, bool *cancelled)
{
  sandbox_outbuf o[2] = { { rs->out_r, SANDBOX_STDOUT, STRBUF_INIT }, { rs->err_r, SANDBOX_STDERR, STRBUF_INIT } };
  rs->out_r = rs->err_r = -1;
  bool done = false;
  rs->sl.init_pid = rs->pid;
  while (!done || o[0].fd >= 0 || o[1].fd >= 0)
    {
      int fds[3] = { o[0].fd, o[1].fd, done ? -1 : rs->done_r };
      int i = sandbox_wait_fds_ms (fds, 3, *cancelled ? -1 : cfg->cancel_fd,
                                   done || rs->sl.hit ? 0 : sandbox_limits_polling (&rs->sl));
      if (i < 0 && errno == ECANCELED)
        {
          *cancelled = true;
          kill (rs->pid, SIGKILL);
          continue;
        }
      if (i < 0 && errno == ETIMEDOUT)
        {
          /* A limit reached: the first process dies, the tracer kills
           * the rest when it sees that. */
          if (sandbox_limits_poll (&rs->sl, false) != SANDBOX_LIMIT_NONE)
            kill (rs->pid, SIGKILL);
          continue;
        }
      if (i < 0)
        break;
      if (i == 2)
        done = true;
      else
        sandbox_outbuf_read (&o[i], cfg->output, cfg->output_ctx);
    }
  for (int i = 0; i < 2; i++)
    sandbox_outbuf_finish (&o[i], cfg->output, cfg->output_ctx);
}

/* ---- preparation ---- */

static int
prepare (run_state *rs, const tracer_config *cfg, kiln_error **err)
{
  if (cfg->network != SANDBOX_NET_HOST && cfg->network != SANDBOX_NET_NONE)
    return kiln_error_make (err, ENOTSUP, "ptrace isolation: a private network needs a network namespace; use "
                                          "--network host or none");
  if (cfg->seccomp && cfg->seccomp->needs_listener)
    return kiln_error_make (err, ENOTSUP, "ptrace isolation: the seccomp profile asks for a supervisor (fake "
                                          "ids): the tracer fakes ids itself, load the plain profile");
  if (!cfg->argv || !cfg->argv[0])
    return kiln_error_make (err, EINVAL, "no command to run");
  int abi = tracer_landlock_abi ();
  if (abi < 1)
    return kiln_error_make (err, -abi, "ptrace isolation needs Landlock (landlock_create_ruleset)");
  rs->t.landlock_abi = abi;
  if (tracer_fs_init (&rs->t.fs, cfg->root, cfg->binds, cfg->n_binds, err) < 0)
    return -1;
  for (size_t i = 0; i < cfg->n_binds; i++)
    if (cfg->binds[i].owned)
      tracer_owner_seed (&rs->t, cfg->binds[i].host, cfg->binds[i].uid, cfg->binds[i].gid);
  const char *cwd = cfg->cwd && cfg->cwd[0] ? cfg->cwd : "/";
  tracer_path p;
  int r = tracer_resolve (&rs->t.fs, "/", cwd, TR_FOLLOW | TR_DIR, &p);
  if (r == 0 && (p.fd < 0 && !p.bind))
    r = -ENOENT;
  if (r < 0)
    return kiln_error_make (err, -r, "working directory '%s'", cwd);
  rs->child.host_cwd = steal_pointer (&p.host);
  autofree char *guest_cwd = steal_pointer (&p.guest);
  tracer_path_clear (&p);
  char *prog = NULL;
  r = tracer_find_program (&rs->t.fs, guest_cwd, cfg->argv[0], cfg->env, &prog);
  if (r < 0)
    return kiln_error_make (err, -r, "exec '%s'", cfg->argv[0]);
  rs->child.exec_path = prog;
  if (tracer_filter_build (cfg, abi, &rs->child.filter, err) < 0)
    return -1;
  rs->child.ruleset_fd = tracer_landlock_ruleset (cfg, &rs->t.fs, abi, err);
  return rs->child.ruleset_fd < 0 ? -1 : 0;
}

static void
run_state_clear (run_state *rs)
{
  sandbox_limits_step_end (&rs->sl);
  tracer_clear (&rs->t);
  tracer_fs_clear (&rs->t.fs);
  free ((char *) rs->child.host_cwd);
  free ((char *) rs->child.exec_path);
  tracer_filter_free (rs->child.filter);
  sandbox_close_fd (&rs->child.ruleset_fd);
  sandbox_close_fd (&rs->out_r);
  sandbox_close_fd (&rs->err_r);
  sandbox_close_fd (&rs->setup_r);
  sandbox_close_fd (&rs->done_r);
  pthread_mutex_destroy (&rs->mu);
  pthread_cond_destroy (&rs->cv);
}

int
tracer_run (const tracer_config *cfg, sandbox_result *res, kiln_error **err)
{
  memset (res, 0, sizeof *res);
  run_state *rs = xzalloc (sizeof *rs);
  pthread_mutex_init (&rs->mu, NULL);
  pthread_cond_init (&rs->cv, NULL);
  rs->out_r = rs->err_r = rs->setup_r = rs->done_r = rs->child.ruleset_fd = -1;
  rs->t.cfg = cfg;
  rs->t.kiln_uid = geteuid ();
  rs->t.kiln_gid = getegid ();
  rs->child.cfg = cfg;
  for (int i = 0; i < SANDBOX_MAX_CGROUPS; i++)
    rs->child.cgroup_procs[i] = -1;
  int r = sandbox_limits_step_begin (cfg->limiter, &rs->sl, err);
  if (r == 0)
    {
      for (int i = 0; i < SANDBOX_MAX_CGROUPS; i++)
        rs->child.cgroup_procs[i] = rs->sl.procs_fd[i];
      r = prepare (rs, cfg, err);
    }
  pthread_t th;
  if (r == 0 && (r = pthread_create (&th, NULL, tracer_thread, rs)) != 0)
    r = kiln_error_make (err, r, "create the tracer thread");
  if (r < 0)
    {
      run_state_clear (rs);
      free (rs);
      return -1;
    }
  pthread_mutex_lock (&rs->mu);
  while (!rs->ready)
    pthread_cond_wait (&rs->cv, &rs->mu);
  pthread_mutex_unlock (&rs->mu);
  bool cancelled = false;
  if (rs->rc == 0)
    supervise (rs, cfg, &cancelled);
  pthread_join (th, NULL);
  if (rs->rc < 0)
    r = kiln_error_make (err, -rs->rc, "ptrace isolation: %s", rs->what);
  else if (cancelled)
    r = sandbox_cancel_error (cfg->cancel_signal, NULL, "", err);
  else if (rs->setup_r >= 0 && sandbox_read_setup_error (rs->setup_r, err) < 0)
    r = -1;
  else
    {
      /* An OOM kill the last poll missed. */
      sandbox_limits_poll (&rs->sl, true);
      res->exited = WIFEXITED (rs->main_status);
      res->status = res->exited ? WEXITSTATUS (rs->main_status) : WTERMSIG (rs->main_status);
      res->limit = rs->sl.hit;
      if (rs->sl.hit)
        {
          res->exited = false;
          res->status = SIGKILL;
        }
    }
  run_state_clear (rs);
  free (rs);
  return r;
}

/* ---- probe ---- */

/* The probe child: no_new_privs, a filter that traces getpid, wait for
 * the tracer's go-ahead (it has seized us then: a go-ahead by pipe, not a
 * SIGSTOP, which raced with PTRACE_SEIZE), call getpid: it returns 4242
 * when the tracer could answer. */
static void __attribute__ ((noreturn))
probe_child (int go)
{
  struct sock_filter f[] = {
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, (uint32_t) offsetof (struct seccomp_data, nr)),
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, (uint32_t) SYS_getpid, 0, 1),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_TRACE | 1),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { ARRAY_SIZE (f), f };
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    _exit (10);
  if (syscall (SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
    _exit (11);
  char b = 0;
  while (read (go, &b, 1) < 0 && errno == EINTR)
    ;
  if (b != 'g')
    _exit (13);
  _exit (syscall (SYS_getpid) == 4242 ? 0 : 12);
}

static int
probe_trace (pid_t pid, int go, kiln_error **err)
{
  int st;
  if (ptrace (PTRACE_SEIZE, pid, NULL, (void *) (long) (PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL)) < 0)
    return kiln_error_make (err, errno, "ptrace denied (%s): PTRACE_SEIZE of a child failed (a seccomp "
                                        "profile or an LSM forbids ptrace?)", strerrorname_np (errno));
  if (write (go, "g", 1) != 1)
    return kiln_error_make (err, errno, "start the probe child");
  for (;;)
    {
      if (waitpid (pid, &st, __WALL) < 0)
        {
          if (errno == EINTR)
            continue;
          return kiln_error_make (err, errno, "wait for the probe child");
        }
      if (WIFEXITED (st) || WIFSIGNALED (st))
        break;
      if ((st >> 8) == (SIGTRAP | (PTRACE_EVENT_SECCOMP << 8)))
        {
          tracer_regs r;
          if (tracer_regs_get (pid, &r) == 0)
            {
              tracer_skip (&r, 4242);
              tracer_regs_put (pid, &r);
            }
          ptrace (PTRACE_CONT, pid, NULL, NULL);
        }
      else
        ptrace (PTRACE_CONT, pid, NULL, (void *) (long) ((st >> 16) ? 0 : WSTOPSIG (st)));
    }
  if (WIFEXITED (st) && WEXITSTATUS (st) == 0)
    return 0;
  int code = WIFEXITED (st) ? WEXITSTATUS (st) : -1;
  if (code == 10)
    return kiln_error_make (err, EPERM, "prctl(PR_SET_NO_NEW_PRIVS) failed in the probe child");
  if (code == 11)
    return kiln_error_make (err, EPERM, "seccomp denied: a filter cannot be loaded (seccomp(2) refused)");
  return kiln_error_make (err, ENOSYS, "a SECCOMP_RET_TRACE'd getpid was not answered by the tracer (status %d)",
                          code);
}

int
tracer_probe (int *abi_out, kiln_error **err)
{
  int abi = tracer_landlock_abi ();
  if (abi_out)
    *abi_out = abi < 0 ? 0 : abi;
  if (abi < 1)
    return kiln_error_make (err, -abi, "landlock unavailable (%s): landlock_create_ruleset failed (kernel "
                                       "without Landlock, or 'lsm=' lacks it, or seccomp denies it)",
                            strerrorname_np (-abi));
  int go[2];
  pthread_mutex_lock (&sandbox_fork_lock);
  if (pipe2 (go, O_CLOEXEC) < 0)
    {
      int e = errno;
      pthread_mutex_unlock (&sandbox_fork_lock);
      return kiln_error_make (err, e, "create a pipe");
    }
  pid_t pid = sandbox_fork_child ();
  if (pid == 0)
    probe_child (go[0]);
  int e = errno;
  close (go[0]);
  pthread_mutex_unlock (&sandbox_fork_lock);
  if (pid < 0)
    {
      close (go[1]);
      return kiln_error_make (err, e, "fork the probe child");
    }
  int r = probe_trace (pid, go[1], err);
  close (go[1]);
  if (r < 0)
    {
      kill (pid, SIGKILL);
      while (waitpid (pid, NULL, __WALL) < 0 && errno == EINTR)
        ;
    }
  return r;
}
