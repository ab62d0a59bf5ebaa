/* tracer_ids.c - the step's identity, faked: getuid() & co. report the
 * configured user, setuid() & co. change only the fake ids, with the
 * kernel's rules (an effective uid 0 may set anything, others only swap
 * among their real, effective and saved ids). The step's processes really
 * run as kiln's uid without capabilities. Credentials are per process and
 * shared by its threads (glibc's setxid broadcast makes every thread call
 * in anyway); a fork copies them.
 *
 * Below Landlock ABI 6 (no signal scoping) the kill family is checked
 * here: a step may signal its own tasks only. */
#include "sandbox/tracer_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NGROUPS_MAX_KERNEL 65536

tracer_creds *
tracer_creds_new (const tracer_config *cfg)
{
  tracer_creds *c = xzalloc (sizeof *c);
  c->refs = 1;
  c->ruid = c->euid = c->suid = c->fsuid = cfg->uid;
  c->rgid = c->egid = c->sgid = c->fsgid = cfg->gid;
  c->n_groups = cfg->n_groups;
  c->groups = cfg->n_groups ? xmemdup (cfg->groups, cfg->n_groups * sizeof (gid_t)) : NULL;
  return c;
}

tracer_creds *
tracer_creds_copy (const tracer_creds *src)
{
  tracer_creds *c = xmemdup (src, sizeof *c);
  c->refs = 1;
  c->groups = src->n_groups ? xmemdup (src->groups, src->n_groups * sizeof (gid_t)) : NULL;
  return c;
}

void
tracer_creds_unref (tracer_creds *c)
{
  if (!c || --c->refs > 0)
    return;
  free (c->groups);
  free (c);
}

/* setresuid's rule for one value: -1 keeps it; otherwise privileged, or
 * one of the current three. */

static long
put_ids (tracer_call *c, unsigned a, unsigned b, unsigned d)
{
  unsigned v[3] = { a, b, d };
  for (int i = 0; i < 3; i++)
    if (tracer_mem_write (c->te->tid, tracer_arg (&c->regs, i), &v[i], sizeof v[i]) < 0)
      return -EFAULT;
  return 0;
}

static long
get_groups (tracer_call *c, tracer_creds *cr)
{
  long size = (long) (int) tracer_arg (&c->regs, 0);
  if (size < 0)
    return -EINVAL;
  if (size == 0)
    return (long) cr->n_groups;
  if ((size_t) size < cr->n_groups)
    return -EINVAL;
  if (cr->n_groups
      && tracer_mem_write (c->te->tid, tracer_arg (&c->regs, 1), cr->groups, cr->n_groups * sizeof (gid_t)) < 0)
    return -EFAULT;
  return (long) cr->n_groups;
}

static long
set_groups (tracer_call *c, tracer_creds *cr)
{
  long n = (long) (int) tracer_arg (&c->regs, 0);
  if (cr->euid != 0)
    return -EPERM;
  if (n < 0 || n > NGROUPS_MAX_KERNEL)
    return -EINVAL;
  gid_t *g = n ? xcalloc ((size_t) n, sizeof (gid_t)) : NULL;
  if (n && tracer_mem_read (c->te->tid, tracer_arg (&c->regs, 1), g, (size_t) n * sizeof (gid_t)) < 0)
    {
      free (g);
      return -EFAULT;
    }
  free (cr->groups);
  cr->groups = g;
  cr->n_groups = (size_t) n;
  return 0;
}

tracer_action
tracer_ids (tracer_call *c)
{
  tracer_creds *cr = c->te->creds;
  sandbox_idset u = { &cr->ruid, &cr->euid, &cr->suid, &cr->fsuid };
  sandbox_idset g = { &cr->rgid, &cr->egid, &cr->sgid, &cr->fsgid };
  bool priv = cr->euid == 0;
  unsigned a0 = (unsigned) tracer_arg (&c->regs, 0), a1 = (unsigned) tracer_arg (&c->regs, 1),
           a2 = (unsigned) tracer_arg (&c->regs, 2);
  long ret;
  switch (c->sc)
    {
    case TSC_GETUID: ret = cr->ruid; break;
    case TSC_GETEUID: ret = cr->euid; break;
    case TSC_GETGID: ret = cr->rgid; break;
    case TSC_GETEGID: ret = cr->egid; break;
    case TSC_GETRESUID: ret = put_ids (c, cr->ruid, cr->euid, cr->suid); break;
    case TSC_GETRESGID: ret = put_ids (c, cr->rgid, cr->egid, cr->sgid); break;
    case TSC_GETGROUPS: ret = get_groups (c, cr); break;
    case TSC_SETUID: ret = sandbox_ids_set_one (u, priv, a0); break;
    case TSC_SETGID: ret = sandbox_ids_set_one (g, priv, a0); break;
    case TSC_SETREUID: ret = sandbox_ids_set_re (u, priv, a0, a1); break;
    case TSC_SETREGID: ret = sandbox_ids_set_re (g, priv, a0, a1); break;
    case TSC_SETRESUID: ret = sandbox_ids_set_res (u, priv, a0, a1, a2); break;
    case TSC_SETRESGID: ret = sandbox_ids_set_res (g, priv, a0, a1, a2); break;
    case TSC_SETFSUID: ret = sandbox_ids_set_fs (u, priv, a0); break;
    case TSC_SETFSGID: ret = sandbox_ids_set_fs (g, priv, a0); break;
    case TSC_SETGROUPS: ret = set_groups (c, cr); break;
    default: ret = -ENOSYS; break;
    }
  tracer_skip (&c->regs, ret);
  return TR_CONTINUE;
}

/* ---- signals (Landlock < 6) ---- */

static bool
is_tracee_process (tracer *t, pid_t pid)
{
  for (size_t i = 0; i < t->cap; i++)
    if (t->tab[i] && (t->tab[i]->tgid == pid || t->tab[i]->tid == pid))
      return true;
  return false;
}

static bool
is_tracee_group (tracer *t, pid_t pgid)
{
  for (size_t i = 0; i < t->cap; i++)
    if (t->tab[i] && getpgid (t->tab[i]->tid) == pgid)
      return true;
  return false;
}

/* The process a pidfd of the tracee refers to (fdinfo "Pid:"), or 0. */
static pid_t
pidfd_target (pid_t tid, int fd)
{
  char path[64], line[128];
  snprintf (path, sizeof path, "/proc/%d/fdinfo/%d", (int) tid, fd);
  FILE *f = fopen (path, "re");
  pid_t pid = 0;
  if (!f)
    return 0;
  while (fgets (line, sizeof line, f))
    if (strncmp (line, "Pid:", 4) == 0)
      pid = (pid_t) atoi (line + 4);
  fclose (f);
  return pid;
}

tracer_action
tracer_signal (tracer_call *c)
{
  tracer *t = c->t;
  pid_t a0 = (pid_t) tracer_arg (&c->regs, 0), a1 = (pid_t) tracer_arg (&c->regs, 1);
  bool ok;
  switch (c->sc)
    {
    case TSC_KILL:
      ok = a0 == 0 || (a0 > 0 && is_tracee_process (t, a0)) || (a0 < -1 && is_tracee_group (t, -a0));
      break;
    case TSC_TKILL:
    case TSC_RT_SIGQUEUEINFO:
      ok = a0 > 0 && is_tracee_process (t, a0);
      break;
    case TSC_TGKILL:
    case TSC_RT_TGSIGQUEUEINFO:
      ok = a0 > 0 && a1 > 0 && is_tracee_process (t, a0) && is_tracee_process (t, a1);
      break;
    case TSC_PIDFD_SEND_SIGNAL:
      {
        pid_t target = pidfd_target (c->te->tid, a0);
        ok = target > 0 && is_tracee_process (t, target);
        break;
      }
    default:
      ok = false;
    }
  if (!ok)
    tracer_skip (&c->regs, -EPERM);
  return TR_CONTINUE;
}
