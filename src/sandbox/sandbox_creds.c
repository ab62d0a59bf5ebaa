/* sandbox_creds.c - single ID mode's fake credentials: the user namespace
 * maps only uid 0, so the ids a step's processes switch to (su, setpriv,
 * apt's _apt user, USER 1000) live here, per process, and the supervisor
 * answers the get*id and set*id calls from this table (with the kernel's
 * rules: an effective uid 0 may set anything, others only swap among their
 * real, effective and saved ids). The overlay asks for the fs ids of the
 * process that creates a file (sandbox_creds_fsids).
 *
 * Processes are keyed by thread group id and checked against their start
 * time (a pid reused is a new process). A process without an entry has
 * the credentials of its nearest ancestor with one, else the step's; when
 * a process changes its ids, its children without an entry of their own
 * first get a copy of the old ones (what they inherited at fork). */
#include "sandbox/sandbox_internal.h"
#include "util/alloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CREDS_MAX_GROUPS 65536
#define CREDS_MAX_DEPTH 64

typedef struct creds
{
  unsigned ruid, euid, suid, fsuid;
  unsigned rgid, egid, sgid, fsgid;
  size_t n_groups;
  gid_t *groups;
  /* CAP_SETUID / CAP_SETGID in the effective set, and the permitted set
   * kept over a switch away from uid 0 (assumed: only a program that kept
   * them with PR_SET_KEEPCAPS raises them again with capset) */
  bool cap_uid, cap_gid, cap_perm;
  /* the process's start of code when these were set: another one means
   * it exec'd since (the kernel recomputes capabilities on exec) */
  unsigned long long code;
} creds;

typedef struct creds_entry
{
  pid_t tgid;
  unsigned long long start;
  creds c;
} creds_entry;

struct sandbox_creds
{
  pthread_mutex_t lock;
  creds def;
  creds_entry *v;
  size_t n;
  size_t prune_at;   /* entries of processes gone are dropped at this size */
};

#define CREDS_PRUNE_MIN 256

static void
creds_copy (creds *dst, const creds *src)
{
  *dst = *src;
  dst->groups = src->n_groups ? xmemdup (src->groups, src->n_groups * sizeof (gid_t)) : NULL;
}

sandbox_creds *
sandbox_creds_new (uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups)
{
  sandbox_creds *t = xzalloc (sizeof *t);
  pthread_mutex_init (&t->lock, NULL);
  t->prune_at = CREDS_PRUNE_MIN;
  t->def = (creds) { uid, uid, uid, uid, gid, gid, gid, gid, n_groups, (gid_t *) groups, uid == 0, uid == 0, uid == 0, 0 };
  creds_copy (&t->def, &t->def);
  return t;
}

void
sandbox_creds_free (sandbox_creds *t)
{
  if (!t)
    return;
  for (size_t i = 0; i < t->n; i++)
    free (t->v[i].c.groups);
  free (t->v);
  free (t->def.groups);
  pthread_mutex_destroy (&t->lock);
  free (t);
}

/* Read a small /proc file; 0 or -errno. */
static int
read_proc (const char *path, char *buf, size_t size)
{
  autoclose int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  ssize_t n;
  do
    n = read (fd, buf, size - 1);
  while (n < 0 && errno == EINTR);
  if (n <= 0)
    return n < 0 ? -errno : -EIO;
  buf[n] = '\0';
  return 0;
}

/* A process's parent, start time and start of code from /proc/PID/stat
 * (for a thread id: its process's parent). */
static int
proc_stat_code (pid_t pid, pid_t *ppid, unsigned long long *start, unsigned long long *code)
{
  char p[64], buf[1024];
  snprintf (p, sizeof p, "/proc/%d/stat", (int) pid);
  if (read_proc (p, buf, sizeof buf) < 0)
    return -1;
  const char *s = strrchr (buf, ')');
  int pp;
  /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
   * utime stime cutime cstime priority nice threads itrealvalue starttime
   * vsize rss rsslim startcode */
  unsigned long long c = 0;
  if (!s
      || sscanf (s + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu %*u %*d %*u %llu",
                 &pp, start, &c) < 2)
    return -1;
  *ppid = pp;
  if (code)
    *code = c;
  return 0;
}

static int
proc_stat (pid_t pid, pid_t *ppid, unsigned long long *start)
{
  return proc_stat_code (pid, ppid, start, NULL);
}

/* The thread group of a thread id (a notification's or a FUSE request's
 * pid is the calling thread's). */
static pid_t
thread_group (pid_t tid)
{
  char p[64], buf[4096];
  snprintf (p, sizeof p, "/proc/%d/status", (int) tid);
  if (read_proc (p, buf, sizeof buf) < 0)
    return -1;
  const char *s = strstr (buf, "\nTgid:");
  return s ? (pid_t) atoi (s + 6) : -1;
}

static creds_entry *
find (sandbox_creds *t, pid_t tgid)
{
  for (size_t i = 0; i < t->n; i++)
    if (t->v[i].tgid == tgid)
      return &t->v[i];
  return NULL;
}

static void
drop (sandbox_creds *t, creds_entry *e)
{
  free (e->c.groups);
  *e = t->v[--t->n];
}

static void prune (sandbox_creds *t);

/* A new entry (c must not point into the table: it may move). */
static creds_entry *
add (sandbox_creds *t, pid_t tgid, unsigned long long start, const creds *c)
{
  if (t->n >= t->prune_at)
    prune (t);
  t->v = xreallocarray (t->v, t->n + 1, sizeof *t->v);
  creds_entry *e = &t->v[t->n++];
  e->tgid = tgid;
  e->start = start;
  creds_copy (&e->c, c);
  return e;
}

/* The live entry of process tgid (start time checked), or NULL. */
static creds_entry *
live (sandbox_creds *t, pid_t tgid, unsigned long long start)
{
  creds_entry *e = find (t, tgid);
  if (e && e->start != start)
    {
      drop (t, e);
      e = NULL;
    }
  return e;
}

/* Drop the entries of processes that are gone. */
static void
prune (sandbox_creds *t)
{
  for (size_t i = 0; i < t->n;)
    {
      pid_t ppid;
      unsigned long long start;
      if (proc_stat (t->v[i].tgid, &ppid, &start) < 0 || start != t->v[i].start)
        drop (t, &t->v[i]);
      else
        i++;
    }
  t->prune_at = t->n * 2 > CREDS_PRUNE_MIN ? t->n * 2 : CREDS_PRUNE_MIN;
}

/* The credentials process tgid has now: its entry, its nearest ancestor's,
 * or the step's. Once some process switched (t->n), the answer becomes
 * tgid's own entry (what it inherited stays its own), so the next lookup
 * reads one /proc file. The result points into the table: valid until the
 * next change of it. Lock held. */
static const creds *
resolve (sandbox_creds *t, pid_t tgid)
{
  if (!t->n)
    return &t->def;
  pid_t cur = tgid;
  unsigned long long own_start = 0;
  const creds *found = &t->def;
  for (int depth = 0; cur > 0 && depth < CREDS_MAX_DEPTH; depth++)
    {
      pid_t ppid;
      unsigned long long start;
      if (proc_stat (cur, &ppid, &start) < 0)
        break;
      creds_entry *e = live (t, cur, start);
      if (e && depth == 0)
        return &e->c;
      if (depth == 0)
        own_start = start;
      if (e)
        {
          found = &e->c;
          break;
        }
      cur = ppid;
    }
  if (!own_start)
    return found;
  creds c;
  creds_copy (&c, found);
  creds_entry *e = add (t, tgid, own_start, &c);
  free (c.groups);
  return &e->c;
}

/* resolve for a thread id (a notification's or a FUSE request's pid): its
 * own entry when it leads its thread group (most do), else its group's.
 * Lock held. */
static const creds *
resolve_thread (sandbox_creds *t, pid_t tid)
{
  if (!t->n)
    return &t->def;
  pid_t ppid;
  unsigned long long start;
  creds_entry *e = proc_stat (tid, &ppid, &start) == 0 ? live (t, tid, start) : NULL;
  if (e)
    return &e->c;
  pid_t tgid = thread_group (tid);
  return tgid > 0 ? resolve (t, tgid) : &t->def;
}

int
sandbox_creds_fsids (void *ctx, pid_t pid, uid_t *uid, gid_t *gid)
{
  sandbox_creds *t = ctx;
  pthread_mutex_lock (&t->lock);
  int found = 0;
  if (t->n)
    {
      const creds *c = resolve_thread (t, pid);
      *uid = c->fsuid;
      *gid = c->fsgid;
      found = 1;
    }
  pthread_mutex_unlock (&t->lock);
  return found;
}

/* Before process tgid changes its ids: each child without an entry keeps
 * the ids it inherited (old). Lock held. */
static void
pin_children (sandbox_creds *t, pid_t tgid, const creds *old)
{
  DIR *d = opendir ("/proc");
  if (!d)
    return;
  struct dirent *de;
  while ((de = readdir (d)))
    {
      if (de->d_name[0] < '1' || de->d_name[0] > '9')
        continue;
      pid_t pid = (pid_t) atoi (de->d_name), ppid;
      unsigned long long start;
      if (pid != tgid && proc_stat (pid, &ppid, &start) == 0 && ppid == tgid && !live (t, pid, start))
        add (t, pid, start, old);
    }
  closedir (d);
}

/* The entry of process tgid, made from what it inherited. Lock held. */
static creds_entry *
own_entry (sandbox_creds *t, pid_t tgid)
{
  pid_t ppid;
  unsigned long long start;
  if (proc_stat (tgid, &ppid, &start) < 0)
    return NULL;
  creds_entry *e = live (t, tgid, start);
  if (e)
    return e;
  creds inherited;
  creds_copy (&inherited, resolve (t, tgid));
  /* resolve may have made it */
  e = live (t, tgid, start);
  if (!e)
    e = add (t, tgid, start, &inherited);
  free (inherited.groups);
  return e;
}

/* ---- the kernel's rules (kernel/sys.c), on one half of the ids ---- */

/* ---- answering the calls ---- */

typedef enum
{
  ID_NONE,
  ID_GETUID, ID_GETEUID, ID_GETGID, ID_GETEGID, ID_GETRESUID, ID_GETRESGID, ID_GETGROUPS,
  ID_SETUID, ID_SETGID, ID_SETREUID, ID_SETREGID, ID_SETRESUID, ID_SETRESGID, ID_SETFSUID, ID_SETFSGID,
  ID_SETGROUPS,
} id_call;

static const char *const id_names[] = {
  [ID_GETUID] = "getuid",       [ID_GETEUID] = "geteuid",     [ID_GETGID] = "getgid",
  [ID_GETEGID] = "getegid",     [ID_GETRESUID] = "getresuid", [ID_GETRESGID] = "getresgid",
  [ID_GETGROUPS] = "getgroups", [ID_SETUID] = "setuid",       [ID_SETGID] = "setgid",
  [ID_SETREUID] = "setreuid",   [ID_SETREGID] = "setregid",   [ID_SETRESUID] = "setresuid",
  [ID_SETRESGID] = "setresgid", [ID_SETFSUID] = "setfsuid",   [ID_SETFSGID] = "setfsgid",
  [ID_SETGROUPS] = "setgroups",
};

/* The call a syscall name is ("getuid32" too); *legacy16: the 16-bit ids of
 * the i386 calls without the 32 suffix. */
static id_call
id_call_of (const char *name, uint32_t arch, bool *legacy16)
{
  size_t l = strlen (name);
  bool has32 = l > 2 && strcmp (name + l - 2, "32") == 0;
  *legacy16 = !has32 && (arch == SCMP_ARCH_X86 || arch == SCMP_ARCH_ARM);
  for (size_t i = 1; i < sizeof id_names / sizeof *id_names; i++)
    if (strncmp (name, id_names[i], l - (has32 ? 2 : 0)) == 0 && strlen (id_names[i]) == l - (has32 ? 2 : 0))
      return (id_call) i;
  return ID_NONE;
}

typedef struct id_args
{
  pid_t pid;
  int mem;            /* /proc/PID/mem, read-write */
  bool legacy16;
  const __u64 *a;
} id_args;

static unsigned
arg_id (const id_args *x, int i)
{
  unsigned v = (unsigned) x->a[i];
  if (x->legacy16)
    v = (v & 0xffff) == 0xffff ? (unsigned) -1 : (v & 0xffff);
  return v;
}

static unsigned
shown_id (const id_args *x, unsigned v)
{
  return x->legacy16 && v > 0xffff ? 65534 : v;
}

static long
put_ids (const id_args *x, unsigned a, unsigned b, unsigned c)
{
  unsigned v[3] = { shown_id (x, a), shown_id (x, b), shown_id (x, c) };
  size_t sz = x->legacy16 ? 2 : 4;
  for (int i = 0; i < 3; i++)
    {
      uint16_t s = (uint16_t) v[i];
      if (pwrite (x->mem, x->legacy16 ? (void *) &s : (void *) &v[i], sz, (off_t) x->a[i]) != (ssize_t) sz)
        return -EFAULT;
    }
  return 0;
}

static long
get_groups (const id_args *x, const creds *c)
{
  long size = (long) (int) x->a[0];
  if (size < 0)
    return -EINVAL;
  if (size == 0 || c->n_groups == 0)
    return (long) c->n_groups;
  if ((size_t) size < c->n_groups)
    return -EINVAL;
  size_t sz = x->legacy16 ? 2 : 4;
  autofree unsigned char *buf = xcalloc (c->n_groups, sz);
  for (size_t i = 0; i < c->n_groups; i++)
    {
      unsigned v = shown_id (x, c->groups[i]);
      uint16_t s = (uint16_t) v;
      memcpy (buf + i * sz, x->legacy16 ? (void *) &s : (void *) &v, sz);
    }
  if (pwrite (x->mem, buf, c->n_groups * sz, (off_t) x->a[1]) != (ssize_t) (c->n_groups * sz))
    return -EFAULT;
  return (long) c->n_groups;
}

static long
set_groups (const id_args *x, creds *c)
{
  long n = (long) (int) x->a[0];
  if (n < 0 || n > CREDS_MAX_GROUPS)
    return -EINVAL;
  size_t sz = x->legacy16 ? 2 : 4;
  autofree unsigned char *buf = n ? xcalloc ((size_t) n, sz) : NULL;
  if (n && pread (x->mem, buf, (size_t) n * sz, (off_t) x->a[1]) != (ssize_t) ((size_t) n * sz))
    return -EFAULT;
  gid_t *g = n ? xcalloc ((size_t) n, sizeof (gid_t)) : NULL;
  for (long i = 0; i < n; i++)
    {
      uint16_t s;
      unsigned v;
      memcpy (x->legacy16 ? (void *) &s : (void *) &v, buf + (size_t) i * sz, sz);
      g[i] = x->legacy16 ? s : v;
    }
  free (c->groups);
  c->groups = g;
  c->n_groups = (size_t) n;
  return 0;
}

static long
get_call (const id_args *x, id_call call, const creds *c)
{
  switch (call)
    {
    case ID_GETUID: return shown_id (x, c->ruid);
    case ID_GETEUID: return shown_id (x, c->euid);
    case ID_GETGID: return shown_id (x, c->rgid);
    case ID_GETEGID: return shown_id (x, c->egid);
    case ID_GETRESUID: return put_ids (x, c->ruid, c->euid, c->suid);
    case ID_GETRESGID: return put_ids (x, c->rgid, c->egid, c->sgid);
    default: return get_groups (x, c);
    }
}

/* cap_emulate_setxuid (security/commoncap.c) for the two capabilities
 * that decide set*id: leaving uid 0 for good drops the permitted set
 * unless kept (see creds.cap_perm), a non-zero euid the effective one, a
 * return to euid 0 raises the permitted. */
static void
uid_changed (creds *c, const creds *old)
{
  bool old_root = old->ruid == 0 || old->euid == 0 || old->suid == 0;
  if (old_root && c->ruid && c->euid && c->suid)
    c->cap_perm = old->cap_perm;
  if (old->euid == 0 && c->euid != 0)
    c->cap_uid = c->cap_gid = false;
  if (old->euid != 0 && c->euid == 0)
    c->cap_uid = c->cap_gid = c->cap_perm;
}

static long
set_call (const id_args *x, id_call call, creds *c)
{
  sandbox_idset u = { &c->ruid, &c->euid, &c->suid, &c->fsuid };
  sandbox_idset g = { &c->rgid, &c->egid, &c->sgid, &c->fsgid };
  creds old = *c;
  long ret;
  switch (call)
    {
    case ID_SETUID: ret = sandbox_ids_set_one (u, c->cap_uid, arg_id (x, 0)); break;
    case ID_SETREUID: ret = sandbox_ids_set_re (u, c->cap_uid, arg_id (x, 0), arg_id (x, 1)); break;
    case ID_SETRESUID: ret = sandbox_ids_set_res (u, c->cap_uid, arg_id (x, 0), arg_id (x, 1), arg_id (x, 2)); break;
    case ID_SETFSUID: return sandbox_ids_set_fs (u, c->cap_uid, arg_id (x, 0));
    case ID_SETGID: return sandbox_ids_set_one (g, c->cap_gid, arg_id (x, 0));
    case ID_SETREGID: return sandbox_ids_set_re (g, c->cap_gid, arg_id (x, 0), arg_id (x, 1));
    case ID_SETRESGID: return sandbox_ids_set_res (g, c->cap_gid, arg_id (x, 0), arg_id (x, 1), arg_id (x, 2));
    case ID_SETFSGID: return sandbox_ids_set_fs (g, c->cap_gid, arg_id (x, 0));
    default: return c->cap_gid ? set_groups (x, c) : -EPERM;
    }
  if (ret == 0)
    uid_changed (c, &old);
  return ret;
}

static bool
same_creds (const creds *a, const creds *b)
{
  return a->cap_uid == b->cap_uid && a->cap_gid == b->cap_gid && a->cap_perm == b->cap_perm
         && a->ruid == b->ruid && a->euid == b->euid && a->suid == b->suid && a->fsuid == b->fsuid
         && a->rgid == b->rgid && a->egid == b->egid && a->sgid == b->sgid && a->fsgid == b->fsgid
         && a->n_groups == b->n_groups
         && (!a->n_groups || memcmp (a->groups, b->groups, a->n_groups * sizeof (gid_t)) == 0);
}

/* A set*id call: on a copy of the caller's ids; when they change, the
 * children keep the old ones and the caller gets its own entry. Lock held. */
/* The caller's ids before a change, with its capabilities as exec left
 * them if it exec'd since they were set: all for uid 0, none otherwise.
 * Lock held. */
static void
current (sandbox_creds *t, pid_t tgid, creds *now)
{
  creds_copy (now, resolve (t, tgid));
  pid_t ppid;
  unsigned long long start, code;
  if (proc_stat_code (tgid, &ppid, &start, &code) == 0 && code != now->code)
    {
      now->cap_uid = now->cap_gid = now->euid == 0;
      now->cap_perm = now->euid == 0 || now->ruid == 0;
      now->code = code;
    }
}

static long
set_for (sandbox_creds *t, const id_args *x, id_call call, pid_t tgid)
{
  creds now;
  current (t, tgid, &now);
  creds next;
  creds_copy (&next, &now);
  long ret = set_call (x, call, &next);
  if (ret >= 0 && !same_creds (&now, &next))
    {
      pin_children (t, tgid, &now);
      creds_entry *e = own_entry (t, tgid);
      if (e)
        {
          free (e->c.groups);
          creds_copy (&e->c, &next);
        }
      else
        ret = -ESRCH;
    }
  free (now.groups);
  free (next.groups);
  return ret;
}

/* capset (left to the kernel; the real process holds every capability of
 * a root step): note whether CAP_SETUID and CAP_SETGID stay effective. */
static void
note_capset (sandbox_creds *t, const id_args *x, pid_t tgid)
{
  struct
  {
    uint32_t version;
    int pid;
  } hdr;
  struct
  {
    uint32_t effective, permitted, inheritable;
  } data;
  if (x->mem < 0 || pread (x->mem, &hdr, sizeof hdr, (off_t) x->a[0]) != (ssize_t) sizeof hdr
      || hdr.version < 0x20071026 /* v2, v3; the pid can only be the caller's own (in its namespace) */
      || pread (x->mem, &data, sizeof data, (off_t) x->a[1]) != (ssize_t) sizeof data)
    return;
  creds now;
  current (t, tgid, &now);
  creds next;
  creds_copy (&next, &now);
  next.cap_uid = now.cap_perm && (data.effective & (1u << 7));
  next.cap_gid = now.cap_perm && (data.effective & (1u << 6));
  next.cap_perm = now.cap_perm && (data.permitted & (3u << 6)) == (3u << 6);
  if (!same_creds (&now, &next))
    {
      pin_children (t, tgid, &now);
      creds_entry *e = own_entry (t, tgid);
      if (e)
        {
          free (e->c.groups);
          creds_copy (&e->c, &next);
        }
    }
  free (now.groups);
  free (next.groups);
}

int
sandbox_creds_answer (sandbox_creds *t, int listener, const struct seccomp_notif *req, const char *name,
                      struct seccomp_notif_resp *resp)
{
  if (strcmp (name, "capset") == 0)
    {
      id_args x = { .pid = (pid_t) req->pid, .a = req->data.args };
      char p[64];
      snprintf (p, sizeof p, "/proc/%d/mem", (int) req->pid);
      autoclose int mem = open (p, O_RDONLY | O_CLOEXEC);
      x.mem = mem;
      if (seccomp_notify_id_valid (listener, req->id) < 0)
        return -1;
      pid_t tgid = thread_group (x.pid);
      pthread_mutex_lock (&t->lock);
      if (tgid > 0)
        note_capset (t, &x, tgid);
      pthread_mutex_unlock (&t->lock);
      resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
      return 1;
    }
  id_args x = { .pid = (pid_t) req->pid, .a = req->data.args };
  id_call call = id_call_of (name, req->data.arch, &x.legacy16);
  if (call == ID_NONE)
    return 0;
  /* Opened before the id is checked: it stays on the caller's memory. */
  autoclose int mem = -1;
  if (call == ID_GETRESUID || call == ID_GETRESGID || call == ID_GETGROUPS || call == ID_SETGROUPS)
    {
      char p[64];
      snprintf (p, sizeof p, "/proc/%d/mem", (int) req->pid);
      mem = open (p, O_RDWR | O_CLOEXEC);
    }
  x.mem = mem;
  if (seccomp_notify_id_valid (listener, req->id) < 0)
    return -1;
  long ret;
  pthread_mutex_lock (&t->lock);
  if (call < ID_SETUID)
    ret = get_call (&x, call, resolve_thread (t, x.pid));
  else
    {
      pid_t tgid = thread_group (x.pid);
      ret = tgid > 0 ? set_for (t, &x, call, tgid) : -ESRCH;
    }
  pthread_mutex_unlock (&t->lock);
  resp->error = ret < 0 ? (int) ret : 0;
  resp->val = ret < 0 ? 0 : ret;
  return 1;
}

int
sandbox_creds_may_chown (sandbox_creds *t, pid_t pid, uid_t owner, gid_t group, uid_t uid, gid_t gid)
{
  pthread_mutex_lock (&t->lock);
  const creds *c = resolve_thread (t, pid);
  /* CAP_CHOWN goes with an fs uid 0 (cap_emulate_setxuid, fsuid rules). */
  int ret = 0;
  if (c->fsuid != 0)
    {
      bool group_ok = gid == (gid_t) -1 || gid == group || gid == c->fsgid;
      for (size_t i = 0; !group_ok && i < c->n_groups; i++)
        group_ok = c->groups[i] == gid;
      if (owner != c->fsuid || (uid != (uid_t) -1 && uid != owner) || !group_ok)
        ret = -EPERM;
    }
  pthread_mutex_unlock (&t->lock);
  return ret;
}
