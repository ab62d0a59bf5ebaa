/* sandbox_limits.c - resource limits of a step (memory, tasks): parsing
 * the flags, choosing once per build how they are enforced (a cgroup v2
 * subtree delegated to kiln, cgroup v1 hierarchies kiln may write, else
 * rlimits plus kiln's own accounting), and per step: its cgroups, the
 * rlimits of its process, the checks while it runs, and the clean-up.
 *
 * Why a cgroup per step and where (docs/architecture.md, "Resource
 * limits"): a v2 cgroup with processes cannot enable controllers for its
 * children (the no-internal-process rule), so the step's cgroup goes below
 * the nearest ancestor of kiln's own cgroup that is writable by kiln and
 * already gives its children the controllers (root's, a systemd slice, a
 * user@UID.service subtree); in v1 directly below kiln's own cgroup. */
#include "sandbox/sandbox_internal.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/units.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

/* ---- parsing ---- */

/* The largest pid the kernel can hand out (PID_MAX_LIMIT on 64-bit). */
#define PIDS_MAX 4194304u

static bool
is_none (const char *s)
{
  return strcmp (s, "none") == 0 || strcmp (s, "0") == 0 || strcmp (s, "-1") == 0;
}

int
sandbox_parse_memory (const char *s, uint64_t *out, kiln_error **err)
{
  if (is_none (s))
    {
      *out = 0;
      return 0;
    }
  uint64_t v;
  if (units_parse_size (s, &v, err) < 0)
    return -1;
  if (v < SANDBOX_MIN_MEMORY)
    return kiln_error_make (err, EINVAL, "memory limit '%s' is below the minimum of 4m (none disables the limit)", s);
  *out = v;
  return 0;
}

int
sandbox_parse_pids (const char *s, uint64_t *out, kiln_error **err)
{
  if (is_none (s))
    {
      *out = 0;
      return 0;
    }
  char *end;
  errno = 0;
  unsigned long long v = strtoull (s, &end, 10);
  if (*s < '0' || *s > '9' || *end || errno || v > PIDS_MAX)
    return kiln_error_make (err, EINVAL, "invalid process limit '%s' (expected 1 to %u, or none)", s, PIDS_MAX);
  *out = v;
  return 0;
}

uint64_t
sandbox_default_memory (void)
{
  struct sysinfo si;
  if (sysinfo (&si) < 0 || si.totalram == 0)
    return 0;
  uint64_t total = (uint64_t) si.totalram * si.mem_unit;
  return total / 4 * 3 / (1 << 20) * (1 << 20); /* whole MiB: "--memory 18078m" in messages */
}

void
sandbox_limits_default (sandbox_limits *l)
{
  l->memory = sandbox_default_memory ();
  l->pids = SANDBOX_DEFAULT_PIDS;
}

const char *
sandbox_format_memory (uint64_t bytes, char buf[UNITS_BUF_SIZE])
{
  static const char units[] = "kmgtp";
  if (bytes == 0)
    {
      snprintf (buf, UNITS_BUF_SIZE, "none");
      return buf;
    }
  int u = -1;
  while (u < 4 && bytes % 1024 == 0)
    {
      bytes /= 1024;
      u++;
    }
  if (u < 0)
    snprintf (buf, UNITS_BUF_SIZE, "%" PRIu64, bytes);
  else
    snprintf (buf, UNITS_BUF_SIZE, "%" PRIu64 "%c", bytes, units[u]);
  return buf;
}

/* ---- choosing the mechanism (once per build) ---- */

enum
{
  CTL_MEMORY = 1,
  CTL_PIDS = 2,
};

typedef struct limiter_cgroup
{
  int version;    /* 1 or 2 */
  unsigned ctl;   /* CTL_* this cgroup enforces */
  int dirfd;      /* the parent of the steps' cgroups */
  char *path;
} limiter_cgroup;

struct sandbox_limiter
{
  sandbox_limits l;
  limiter_cgroup cg[SANDBOX_MAX_CGROUPS];
  int n_cg;
  unsigned rlimit_ctl; /* CTL_* left to rlimits and kiln's accounting */
};

/* Does the comma-separated list have the word? */
static bool
has_word (const char *list, const char *word, const char *seps)
{
  size_t n = strlen (word);
  for (const char *p = list; *p;)
    {
      size_t len = strcspn (p, seps);
      if (len == n && strncmp (p, word, n) == 0)
        return true;
      p += len;
      p += *p != '\0';
    }
  return false;
}

/* kiln's cgroup in the hierarchy whose /proc/self/cgroup controller field
 * is ctl ("" for v2, else a v1 controller name); NULL if none. */
static char *
own_cgroup (const char *ctl)
{
  autofclose FILE *f = fopen ("/proc/self/cgroup", "re");
  char line[4096];
  while (f && fgets (line, sizeof line, f))
    {
      line[strcspn (line, "\n")] = '\0';
      char *c1 = strchr (line, ':');
      char *c2 = c1 ? strchr (c1 + 1, ':') : NULL;
      if (!c2)
        continue;
      *c2 = '\0';
      bool match = *ctl ? has_word (c1 + 1, ctl, ",") : (strcmp (line, "0") == 0 && c1[1] == '\0');
      if (match && c2[1] == '/')
        return xstrdup (c2 + 1);
    }
  return NULL;
}

/* The directory of cgroup cg (a path in the hierarchy) under the mount of
 * that hierarchy (fstype "cgroup2", or "cgroup" with ctl among its
 * options), and the length of the mount point's path in *mnt_len; NULL if
 * it is not mounted or cg is outside the mount's root. */
static char *
cgroup_dir (const char *fstype, const char *ctl, const char *cg, size_t *mnt_len)
{
  autofclose FILE *f = fopen ("/proc/self/mountinfo", "re");
  char line[4096];
  while (f && fgets (line, sizeof line, f))
    {
      line[strcspn (line, "\n")] = '\0';
      char *sep = strstr (line, " - ");
      if (!sep || strchr (line, '\\'))
        continue; /* escaped names: never a cgroup mount kiln uses */
      char type[64], src[256], opts[1024], root[2048], mnt[2048];
      if (sscanf (sep + 3, "%63s %255s %1023s", type, src, opts) != 3 || strcmp (type, fstype) != 0)
        continue;
      if (*ctl && !has_word (opts, ctl, ","))
        continue;
      if (sscanf (line, "%*s %*s %*s %2047s %2047s", root, mnt) != 2)
        continue;
      size_t rl = strcmp (root, "/") == 0 ? 0 : strlen (root);
      if (strncmp (cg, root, rl) != 0 || (cg[rl] != '/' && cg[rl] != '\0'))
        continue;
      *mnt_len = strlen (mnt);
      return xasprintf ("%s%s", mnt, strcmp (cg + rl, "/") == 0 ? "" : cg + rl);
    }
  return NULL;
}

/* May kiln make cgroups in dir and move processes into them? */
static bool
writable_dir (int dirfd)
{
  return faccessat (dirfd, ".", W_OK | X_OK, AT_EACCESS) == 0
         && faccessat (dirfd, "cgroup.procs", W_OK, AT_EACCESS) == 0;
}

static bool
file_has_words (int dirfd, const char *name, unsigned ctl)
{
  autofree char *s = NULL;
  size_t len;
  autoclose int fd = openat (dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 || fs_read_fd (fd, 4096, &s, &len, NULL) < 0)
    return false;
  s[strcspn (s, "\n")] = '\0';
  return (!(ctl & CTL_MEMORY) || has_word (s, "memory", " ")) && (!(ctl & CTL_PIDS) || has_word (s, "pids", " "));
}

static void
limiter_add (sandbox_limiter *lim, int version, unsigned ctl, int dirfd, const char *path)
{
  limiter_cgroup *c = &lim->cg[lim->n_cg++];
  c->version = version;
  c->ctl = ctl;
  c->dirfd = dirfd;
  c->path = xstrdup (path);
}

/* cgroup v2: the nearest ancestor of kiln's cgroup (kiln's own only when
 * it is the hierarchy's root) that kiln may write and whose children get
 * every controller in ctl. */
static bool
find_v2 (sandbox_limiter *lim, unsigned ctl)
{
  autofree char *own = own_cgroup ("");
  size_t mnt_len = 0;
  autofree char *dir = own ? cgroup_dir ("cgroup2", "", own, &mnt_len) : NULL;
  if (!dir)
    return false;
  for (bool below = strlen (dir) > mnt_len;; below = true)
    {
      if (below)
        *strrchr (dir, '/') = '\0';
      int fd = open (dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (fd >= 0 && writable_dir (fd) && file_has_words (fd, "cgroup.subtree_control", ctl))
        {
          limiter_add (lim, 2, ctl, fd, dir);
          return true;
        }
      if (fd >= 0)
        close (fd);
      if (strlen (dir) <= mnt_len)
        return false;
    }
}

/* cgroup v1: kiln's own cgroup in the hierarchy of the controller. */
static bool
find_v1 (sandbox_limiter *lim, unsigned ctl)
{
  const char *name = ctl == CTL_MEMORY ? "memory" : "pids";
  autofree char *own = own_cgroup (name);
  size_t mnt_len;
  autofree char *dir = own ? cgroup_dir ("cgroup", name, own, &mnt_len) : NULL;
  if (!dir)
    return false;
  int fd = open (dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return false;
  if (!writable_dir (fd))
    {
      close (fd);
      return false;
    }
  limiter_add (lim, 1, ctl, fd, dir);
  return true;
}

sandbox_limiter *
sandbox_limiter_new (const sandbox_limits *l)
{
  sandbox_limiter *lim = xzalloc (sizeof *lim);
  lim->l = *l;
  unsigned want = (l->memory ? CTL_MEMORY : 0) | (l->pids ? CTL_PIDS : 0);
  if (want && !find_v2 (lim, want))
    for (unsigned c = CTL_MEMORY; c <= CTL_PIDS; c <<= 1)
      if ((want & c) && !find_v1 (lim, c))
        lim->rlimit_ctl |= c;
  return lim;
}

void
sandbox_limiter_free (sandbox_limiter *lim)
{
  if (!lim)
    return;
  for (int i = 0; i < lim->n_cg; i++)
    {
      close (lim->cg[i].dirfd);
      free (lim->cg[i].path);
    }
  free (lim);
}

char *
sandbox_limiter_describe (const sandbox_limiter *lim)
{
  char mb[UNITS_BUF_SIZE];
  autostrbuf strbuf sb = STRBUF_INIT;
  sandbox_format_memory (lim->l.memory, mb);
  strbuf_addf (&sb, "memory %s, %" PRIu64 " tasks", mb, lim->l.pids);
  if (!lim->l.pids)
    strbuf_addf (&sb, " (no task limit)");
  if (!lim->l.memory && !lim->l.pids)
    return xstrdup ("none (--memory none --pids-limit none)");
  strbuf_adds (&sb, " per step, enforced by");
  for (int i = 0; i < lim->n_cg; i++)
    strbuf_addf (&sb, "%s cgroup v%d%s%s (below '%s')", i ? " and" : "", lim->cg[i].version,
                 lim->cg[i].version == 1 ? (lim->cg[i].ctl == CTL_MEMORY ? " memory" : " pids") : "",
                 lim->cg[i].version == 2 ? (lim->cg[i].ctl == (CTL_MEMORY | CTL_PIDS) ? " memory+pids"
                                            : lim->cg[i].ctl == CTL_MEMORY ? " memory" : " pids")
                                         : "",
                 lim->cg[i].path);
  if (lim->rlimit_ctl)
    strbuf_addf (&sb, "%s rlimits (%s%s%s per process) and kiln's accounting of the step's %s (no writable cgroup "
                 "with the %s controller%s)", lim->n_cg ? " and" : "",
                 lim->rlimit_ctl & CTL_MEMORY ? "RLIMIT_DATA" : "",
                 lim->rlimit_ctl == (CTL_MEMORY | CTL_PIDS) ? ", " : "",
                 lim->rlimit_ctl & CTL_PIDS ? "RLIMIT_NPROC" : "",
                 lim->rlimit_ctl == (CTL_MEMORY | CTL_PIDS) ? "memory and tasks"
                 : lim->rlimit_ctl & CTL_MEMORY ? "memory" : "tasks",
                 lim->rlimit_ctl == (CTL_MEMORY | CTL_PIDS) ? "memory and pids"
                 : lim->rlimit_ctl & CTL_MEMORY ? "memory" : "pids",
                 lim->rlimit_ctl == (CTL_MEMORY | CTL_PIDS) ? "s" : "");
  return strbuf_detach (&sb, NULL);
}

/* ---- one step ---- */

static int
write_cg (int dirfd, const char *name, const char *value, bool optional, kiln_error **err)
{
  autoclose int fd = openat (dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && optional && errno == ENOENT)
    return 0;
  if (fd < 0)
    return kiln_error_make (err, errno, "open '%s'", name);
  ssize_t n;
  do
    n = write (fd, value, strlen (value));
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return kiln_error_make (err, errno, "write '%s' to '%s'", value, name);
  return 0;
}

static int
set_limits (const sandbox_limits *l, const limiter_cgroup *c, int dirfd, kiln_error **err)
{
  char v[32];
  if (c->ctl & CTL_MEMORY)
    {
      snprintf (v, sizeof v, "%" PRIu64, l->memory);
      /* Swap would let a step use more than its limit, and the machine's
       * swap is not the step's; one OOM kill ends the whole step (v2). */
      if (c->version == 2
          && (write_cg (dirfd, "memory.max", v, false, err) < 0 || write_cg (dirfd, "memory.swap.max", "0", true, err) < 0
              || write_cg (dirfd, "memory.oom.group", "1", true, err) < 0))
        return -1;
      if (c->version == 1
          && (write_cg (dirfd, "memory.limit_in_bytes", v, false, err) < 0
              || write_cg (dirfd, "memory.memsw.limit_in_bytes", v, true, err) < 0))
        return -1;
    }
  if (c->ctl & CTL_PIDS)
    {
      snprintf (v, sizeof v, "%" PRIu64, l->pids);
      if (write_cg (dirfd, "pids.max", v, false, err) < 0)
        return -1;
    }
  return 0;
}

/* Remove the empty cgroups that killed kilns left in c (kiln-PID-*, PID no
 * longer running): a SIGKILL gives kiln no chance to remove its own. */
static void
remove_stale (const limiter_cgroup *c)
{
  autoclose int fd = openat (c->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd < 0 ? NULL : fdopendir (fd);
  if (!d)
    return;
  fd = -1;
  struct dirent *e;
  while ((e = readdir (d)))
    {
      long pid;
      char rest[32];
      if (sscanf (e->d_name, "kiln-%ld-%31s", &pid, rest) != 2 || pid <= 0 || pid == getpid ())
        continue;
      if (kill ((pid_t) pid, 0) < 0 && errno == ESRCH)
        unlinkat (dirfd (d), e->d_name, AT_REMOVEDIR); /* fails while populated */
    }
  closedir (d);
}

static void
step_limits_clear (step_limits *sl, const sandbox_limiter *lim)
{
  memset (sl, 0, sizeof *sl);
  sl->lim = lim;
  for (int i = 0; i < SANDBOX_MAX_CGROUPS; i++)
    sl->dirfd[i] = sl->procs_fd[i] = -1;
}

int
sandbox_limits_step_begin (const sandbox_limiter *lim, step_limits *sl, kiln_error **err)
{
  step_limits_clear (sl, lim);
  if (!lim)
    return 0;
  for (int i = 0; i < lim->n_cg; i++)
    {
      const limiter_cgroup *c = &lim->cg[i];
      remove_stale (c);
      uint32_t rnd = 0;
      if (getrandom (&rnd, sizeof rnd, 0) != (ssize_t) sizeof rnd)
        rnd = (uint32_t) time (NULL) ^ (uint32_t) getpid ();
      sl->name[i] = xasprintf ("kiln-%d-%08x", (int) getpid (), rnd);
      if (mkdirat (c->dirfd, sl->name[i], 0755) < 0)
        {
          kiln_error_make (err, errno, "create cgroup '%s/%s'", c->path, sl->name[i]);
          free (steal_pointer (&sl->name[i]));
          goto fail;
        }
      sl->n = i + 1;
      sl->dirfd[i] = openat (c->dirfd, sl->name[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sl->dirfd[i] < 0)
        {
          kiln_error_make (err, errno, "open cgroup '%s/%s'", c->path, sl->name[i]);
          goto fail;
        }
      if (set_limits (&lim->l, c, sl->dirfd[i], err) < 0)
        {
          kiln_error_wrap (err, "limits of cgroup '%s/%s'", c->path, sl->name[i]);
          goto fail;
        }
      /* In v1 the helper (single-threaded: a fork of kiln) moves itself
       * through "tasks": a move of one thread skips the write lock of
       * cgroup_threadgroup_rwsem that "cgroup.procs" takes, whose rcu_sync
       * waits for an RCU grace period unless another move came in the last
       * ~20 ms: 6-13 ms for a session's first step (bench/cgroup-migrate.sh). */
      const char *procs = c->version == 1 ? "tasks" : "cgroup.procs";
      sl->procs_fd[i] = openat (sl->dirfd[i], procs, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
      if (sl->procs_fd[i] < 0)
        {
          kiln_error_make (err, errno, "open '%s/%s/%s'", c->path, sl->name[i], procs);
          goto fail;
        }
    }
  clock_gettime (CLOCK_MONOTONIC, &sl->last_poll);
  return 0;
fail:
  sandbox_limits_step_end (sl);
  return -1;
}

void
sandbox_limits_step_end (step_limits *sl)
{
  for (int i = 0; i < sl->n; i++)
    {
      sandbox_close_fd (&sl->procs_fd[i]);
      sandbox_close_fd (&sl->dirfd[i]);
      /* Every process of the step is gone (sandbox_run waited for init),
       * but the kernel may still be finishing an exit: retry for a second. */
      for (int tries = 0; tries < 100; tries++)
        {
          if (unlinkat (sl->lim->cg[i].dirfd, sl->name[i], AT_REMOVEDIR) == 0 || errno != EBUSY)
            break;
          struct timespec ts = { 0, 10 * 1000 * 1000 };
          nanosleep (&ts, NULL);
        }
      if (faccessat (sl->lim->cg[i].dirfd, sl->name[i], F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        log_warn ("could not remove cgroup '%s/%s'", sl->lim->cg[i].path, sl->name[i]);
      free (steal_pointer (&sl->name[i]));
    }
  sl->n = 0;
}

/* ---- in the children ---- */

void
sandbox_limits_child_enter (child_ctx *c)
{
  for (int i = 0; i < SANDBOX_MAX_CGROUPS; i++)
    if (c->cgroup_procs[i] >= 0)
      {
        /* "0" is the writer itself; its children (init, the step) follow. */
        if (write (c->cgroup_procs[i], "0", 1) != 1)
          sandbox_child_die (c, errno, "move the step into its cgroup");
        close (c->cgroup_procs[i]);
        c->cgroup_procs[i] = -1;
      }
}

int
sandbox_limits_set_rlimits (const sandbox_limiter *lim, const char **what)
{
  if (!lim)
    return 0;
  struct
  {
    unsigned ctl;
    int res;
    uint64_t v;
    const char *name;
  } r[] = { { CTL_MEMORY, RLIMIT_DATA, lim->l.memory, "setrlimit RLIMIT_DATA" },
            { CTL_PIDS, RLIMIT_NPROC, lim->l.pids, "setrlimit RLIMIT_NPROC" } };
  for (size_t i = 0; i < ARRAY_SIZE (r); i++)
    {
      if (!(lim->rlimit_ctl & r[i].ctl))
        continue;
      *what = r[i].name;
      struct rlimit cur;
      if (getrlimit (r[i].res, &cur) < 0)
        return -errno;
      /* Only ever lower: an unprivileged process cannot raise its hard limit. */
      rlim_t v = (rlim_t) r[i].v;
      if (cur.rlim_max != RLIM_INFINITY && cur.rlim_max < v)
        v = cur.rlim_max;
      struct rlimit nl = { v, v };
      if (setrlimit (r[i].res, &nl) < 0)
        return -errno;
    }
  return 0;
}

void
sandbox_limits_child_rlimits (child_ctx *c)
{
  const char *what = "";
  int r = sandbox_limits_set_rlimits (c->cfg->limiter, &what);
  if (r < 0)
    sandbox_child_die (c, -r, "%s", what);
}

/* ---- kiln's accounting (where rlimits enforce) ---- */

/* Pss_Anon of a process in bytes: its share of the anonymous memory it
 * maps, so pages a fork shares are not counted twice. 0 if unreadable
 * (init: not dumpable). */
static uint64_t
anon_bytes (pid_t pid)
{
  char p[64];
  snprintf (p, sizeof p, "/proc/%d/smaps_rollup", (int) pid);
  autofclose FILE *f = fopen (p, "re");
  char line[256];
  while (f && fgets (line, sizeof line, f))
    {
      unsigned long long kb;
      if (sscanf (line, "Pss_Anon: %llu kB", &kb) == 1)
        return kb * 1024;
    }
  return 0;
}

typedef struct pid_stack
{
  pid_t *v;
  size_t n, cap;
} pid_stack;

static void
push_children (pid_stack *st, pid_t pid, pid_t tid)
{
  char p[80];
  snprintf (p, sizeof p, "/proc/%d/task/%d/children", (int) pid, (int) tid);
  autofclose FILE *f = fopen (p, "re");
  long c;
  while (f && fscanf (f, "%ld", &c) == 1)
    {
      if (st->n == st->cap)
        {
          st->cap = st->cap ? st->cap * 2 : 256;
          st->v = xrealloc (st->v, st->cap * sizeof *st->v);
        }
      st->v[st->n++] = (pid_t) c;
    }
}

/* Walk the step's process tree from init (orphans are reparented to init,
 * the pid namespace's reaper, so nothing escapes the walk): tasks (threads
 * count, as for RLIMIT_NPROC and pids.max) and anonymous memory. Stops
 * early once a limit is over: a fork bomb is not walked to its end. */
static sandbox_limit_hit
account (step_limits *sl)
{
  const sandbox_limits *l = &sl->lim->l;
  bool mem = sl->lim->rlimit_ctl & CTL_MEMORY, pids = sl->lim->rlimit_ctl & CTL_PIDS;
  pid_stack st = { NULL, 0, 0 };
  uint64_t tasks = 0, anon = 0;
  sandbox_limit_hit hit = SANDBOX_LIMIT_NONE;
  push_children (&st, sl->init_pid, sl->init_pid);
  while (st.n > 0 && !hit)
    {
      pid_t pid = st.v[--st.n];
      char p[64];
      snprintf (p, sizeof p, "/proc/%d/task", (int) pid);
      DIR *d = opendir (p);
      struct dirent *e;
      while (d && (e = readdir (d)))
        if (e->d_name[0] != '.')
          {
            tasks++;
            push_children (&st, pid, (pid_t) atoi (e->d_name));
          }
      if (d)
        closedir (d);
      if (mem)
        anon += anon_bytes (pid);
      /* RLIMIT_NPROC refuses a fork exactly at the limit (counted per uid,
       * with kiln's helper and init), and a fork bomb churns below it,
       * often dying out within a second as its forks fail: a sample
       * rarely sees the limit itself, so 7/8 of it count as reached, and
       * samples come faster while the count is high (sl->busy). */
      if (pids && tasks + 1 >= l->pids - l->pids / 8)
        hit = SANDBOX_LIMIT_PIDS;
      else if (mem && anon > l->memory)
        hit = SANDBOX_LIMIT_MEMORY;
    }
  free (st.v);
  sl->busy = pids && tasks > l->pids / 4;
  return hit;
}

/* ---- while the step runs ---- */

/* The number after "key " in a flat-keyed cgroup file, 0 if absent. */
static uint64_t
cg_counter (int dirfd, const char *file, const char *key)
{
  autofree char *s = NULL;
  size_t len;
  autoclose int fd = openat (dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 || fs_read_fd (fd, 65536, &s, &len, NULL) < 0)
    return 0;
  size_t kl = strlen (key);
  for (char *line = s; line && *line; line = strchr (line, '\n') ? strchr (line, '\n') + 1 : NULL)
    if (strncmp (line, key, kl) == 0 && line[kl] == ' ')
      return strtoull (line + kl + 1, NULL, 10);
  return 0;
}

static sandbox_limit_hit
poll_cgroups (step_limits *sl)
{
  for (int i = 0; i < sl->n; i++)
    {
      const limiter_cgroup *c = &sl->lim->cg[i];
      if ((c->ctl & CTL_MEMORY)
          && cg_counter (sl->dirfd[i], c->version == 2 ? "memory.events" : "memory.oom_control", "oom_kill") > 0)
        return SANDBOX_LIMIT_MEMORY;
      if ((c->ctl & CTL_PIDS) && cg_counter (sl->dirfd[i], "pids.events", "max") > 0)
        return SANDBOX_LIMIT_PIDS;
    }
  return SANDBOX_LIMIT_NONE;
}

int
sandbox_limits_polling (const step_limits *sl)
{
  if (!(sl->n > 0 || (sl->lim && sl->lim->rlimit_ctl && sl->init_pid > 0)))
    return 0;
  return sl->busy ? SANDBOX_LIMITS_BUSY_POLL_MS : SANDBOX_LIMITS_POLL_MS;
}

sandbox_limit_hit
sandbox_limits_poll (step_limits *sl, bool force)
{
  if (sl->hit || !sl->lim)
    return sl->hit;
  struct timespec now;
  clock_gettime (CLOCK_MONOTONIC, &now);
  long long ms = (now.tv_sec - sl->last_poll.tv_sec) * 1000LL + (now.tv_nsec - sl->last_poll.tv_nsec) / 1000000;
  if (!force && ms < (sl->busy ? SANDBOX_LIMITS_BUSY_POLL_MS : SANDBOX_LIMITS_POLL_MS))
    return SANDBOX_LIMIT_NONE;
  sl->last_poll = now;
  sl->hit = poll_cgroups (sl);
  if (!sl->hit && sl->lim->rlimit_ctl && sl->init_pid > 0)
    sl->hit = account (sl);
  return sl->hit;
}
