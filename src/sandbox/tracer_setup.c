/* tracer_setup.c - before the step runs: the tracer's seccomp filter, the
 * Landlock ruleset, and the step's process from fork to its execve (which
 * is already the tracer's to handle).
 *
 * Order in the child (each step needs the previous): death signal, own
 * process group, stdio, working directory, no capabilities in any set
 * (a uid-0 step would otherwise regain the bounding set at execve), no new
 * privileges, Landlock, kiln's seccomp profile, the tracer's filter, then
 * the tracer's go-ahead (it has seized us: a SECCOMP_RET_TRACE without a
 * tracer fails the call with ENOSYS) and execve. */
#include "sandbox/sandbox_internal.h"
#include "sandbox/tracer_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <linux/prctl.h>
#include <linux/securebits.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

int
tracer_landlock_abi (void)
{
  long abi = syscall (SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return abi < 0 ? -errno : (int) abi;
}

/* ---- the filter ---- */

static uint32_t
refusal (tsc t)
{
  switch (t)
    {
    /* newer calls with a path, or memory the filter cannot see: ENOSYS
     * makes libc and tools fall back to calls the tracer handles */
    case TSC_SETXATTRAT: case TSC_GETXATTRAT: case TSC_LISTXATTRAT: case TSC_REMOVEXATTRAT:
    case TSC_FILE_GETATTR: case TSC_FILE_SETATTR: case TSC_STATMOUNT: case TSC_LISTMOUNT:
    case TSC_OPEN_TREE_ATTR: case TSC_CLONE3:
      return SCMP_ACT_ERRNO (ENOSYS);
    default:
      return SCMP_ACT_ERRNO (EPERM);
    }
}

static bool
is_signal_call (tsc t)
{
  return t >= TSC_KILL && t <= TSC_RT_TGSIGQUEUEINFO;
}

/* A comparison of the first argument, every field set (libseccomp's
 * SCMP_A0 leaves datum_b to the compiler, which clang warns about). */
static struct scmp_arg_cmp
arg0 (enum scmp_compare op, scmp_datum_t a, scmp_datum_t b)
{
  return (struct scmp_arg_cmp){ .arg = 0, .op = op, .datum_a = a, .datum_b = b };
}

static int
add_rules (scmp_filter_ctx ctx, const tracer_config *cfg, int abi, kiln_error **err)
{
  int r = 0;
  for (tsc t = TSC_NONE + 1; t < TSC_COUNT && r == 0; t++)
    {
      long nr = tracer_sysno (t);
      if (nr < 0 || t == TSC_SOCKET)
        continue;
      /* Landlock >= 6 scopes signals: the kernel keeps the step's to itself */
      if (is_signal_call (t) && abi >= 6)
        continue;
      uint32_t act = t < TSC_N_TRACED ? SCMP_ACT_TRACE (t) : refusal (t);
      /* Without ops that keep them (a plain --rootfs), writing extended
       * attributes is refused whatever the path (tracer_xattr.c): in the
       * filter, without a stop (cp -a tries it for every file). */
      if (t >= TSC_SETXATTR && t <= TSC_FREMOVEXATTR && !(cfg->ops && cfg->ops->set_xattr))
        act = SCMP_ACT_ERRNO (ENOTSUP);
      r = seccomp_rule_add (ctx, act, (int) nr, 0);
      if (r < 0)
        return kiln_error_make (err, -r, "seccomp rule for %s", tracer_sysname (t));
    }
  if (cfg->network == SANDBOX_NET_NONE)
    {
      r = seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EAFNOSUPPORT), (int) tracer_sysno (TSC_SOCKET), 1,
                            arg0 (SCMP_CMP_NE, AF_UNIX, 0));
      if (r < 0)
        return kiln_error_make (err, -r, "seccomp rule for socket");
    }
  /* Namespaces would give the step mounts and a view of paths the tracer
   * does not share. clone's flags are its first argument on both
   * architectures; CLONE_NEWTIME is clone3/unshare only (0x80 is CSIGNAL
   * in clone). */
  static const unsigned long ns[] = { CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                      CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET };
  for (size_t i = 0; i < ARRAY_SIZE (ns); i++)
    {
      r = seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), SCMP_SYS (clone), 1,
                            arg0 (SCMP_CMP_MASKED_EQ, ns[i], ns[i]));
      if (r < 0)
        return kiln_error_make (err, -r, "seccomp rule for clone");
    }
  return 0;
}

int
tracer_filter_build (const tracer_config *cfg, int landlock_abi, struct sock_fprog **out, kiln_error **err)
{
  scmp_filter_ctx ctx = seccomp_init (SCMP_ACT_ALLOW);
  if (!ctx)
    return kiln_error_make (err, ENOMEM, "seccomp_init");
  /* Other architectures' calls (x32, i386 through int 0x80) are killed:
   * the tracer knows the native table only. */
  int r = seccomp_attr_set (ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (r < 0)
    r = kiln_error_make (err, -r, "seccomp bad-arch action");
  else
    r = add_rules (ctx, cfg, landlock_abi, err);
  int mfd = -1;
  if (r == 0)
    {
      mfd = memfd_create ("kiln-tracer-bpf", MFD_CLOEXEC);
      if (mfd < 0)
        r = kiln_error_make (err, errno, "memfd_create");
      else if ((r = seccomp_export_bpf (ctx, mfd)) < 0)
        r = kiln_error_make (err, -r, "export the tracer's seccomp filter");
    }
  seccomp_release (ctx);
  if (r < 0)
    {
      if (mfd >= 0)
        close (mfd);
      return r;
    }
  off_t len = lseek (mfd, 0, SEEK_END);
  struct sock_fprog *p = xzalloc (sizeof *p);
  p->filter = xmalloc ((size_t) len + 1);
  p->len = (unsigned short) ((size_t) len / sizeof (struct sock_filter));
  if (len <= 0 || pread (mfd, p->filter, (size_t) len, 0) != len)
    {
      int e = errno;
      close (mfd);
      tracer_filter_free (p);
      return kiln_error_make (err, e, "read back the tracer's seccomp filter");
    }
  close (mfd);
  *out = p;
  return 0;
}

void
tracer_filter_free (struct sock_fprog *p)
{
  if (!p)
    return;
  free (p->filter);
  free (p);
}

/* ---- Landlock ---- */

#define LL_FILE (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE \
                 | LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)
#define LL_WRITE_DIR (LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE \
                      | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK \
                      | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_SYM | LANDLOCK_ACCESS_FS_REFER)

static uint64_t
fs_handled (int abi)
{
  uint64_t a = (1ULL << 13) - 1;   /* ABI 1: EXECUTE .. MAKE_SYM */
  if (abi >= 2)
    a |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3)
    a |= LANDLOCK_ACCESS_FS_TRUNCATE;
  if (abi >= 5)
    a |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
  return a;
}

/* What a bind may do: /proc is read, device files read and write (and
 * their ioctls: a terminal's), others read, plus write when writable. */
static uint64_t
bind_access (const tracer_bind *b, bool dir, uint64_t handled)
{
  uint64_t a;
  if (strcmp (b->guest, "/proc") == 0)
    a = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
  else
    {
      a = LANDLOCK_ACCESS_FS_READ_FILE | (dir ? LANDLOCK_ACCESS_FS_READ_DIR : 0);
      if (b->writable)
        a |= LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | (dir ? LL_WRITE_DIR : 0);
      /* Devices (also a directory of them: /dev/pts) are read and
       * written, and take their ioctls (a terminal's: TIOCSCTTY). */
      if (strncmp (b->guest, "/dev/", 5) == 0)
        a |= LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV;
    }
  if (!dir)
    a &= LL_FILE;
  return a & handled;
}

static int
add_path_rule (int ruleset, const char *path, uint64_t access, kiln_error **err)
{
  int fd = open (path, O_PATH | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_make (err, errno, "landlock rule: open '%s'", path);
  struct landlock_path_beneath_attr pb = { .allowed_access = access, .parent_fd = fd };
  long r = syscall (SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
  int e = errno;
  close (fd);
  if (r < 0)
    return kiln_error_make (err, e, "landlock rule for '%s'", path);
  return 0;
}

int
tracer_landlock_ruleset (const tracer_config *cfg, const tracer_fs *fs, int abi, kiln_error **err)
{
  struct
  {
    uint64_t fs, net, scoped;
  } attr = { fs_handled (abi), 0, 0 };
  size_t size = sizeof (uint64_t);
  if (abi >= 4)
    {
      size = 2 * sizeof (uint64_t);
      /* handled without a rule: no TCP bind or connect at all */
      if (cfg->network == SANDBOX_NET_NONE)
        attr.net = LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
    }
  if (abi >= 6)
    {
      size = sizeof attr;
      attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
    }
  long rs = syscall (SYS_landlock_create_ruleset, &attr, size, 0);
  if (rs < 0)
    return kiln_error_make (err, errno, "landlock_create_ruleset (ABI %d)", abi);
  int ruleset = (int) rs;
  if (add_path_rule (ruleset, fs->root, attr.fs, err) < 0)
    goto fail;
  for (size_t i = 0; i < fs->n_binds; i++)
    if (add_path_rule (ruleset, fs->binds[i].host, bind_access (&fs->binds[i], fs->bind_dir[i], attr.fs), err) < 0)
      goto fail;
  return ruleset;
fail:
  close (ruleset);
  return -1;
}

/* ---- the child ---- */

static void __attribute__ ((noreturn, format (printf, 3, 4)))
child_die (const tracer_child *c, int errnum, const char *fmt, ...)
{
  char buf[1024];
  int n = snprintf (buf, sizeof buf, "%d:", errnum);
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (buf + n, sizeof buf - (size_t) n, fmt, ap);
  va_end (ap);
  ssize_t w = write (c->err_fd, buf, strlen (buf));
  (void) w;
  _exit (SETUP_FAILED);
}

static void
drop_privileges (const tracer_child *c)
{
  /* Securebits first (needs CAP_SETPCAP, which we may not have): uid 0
   * gets no capabilities from execve. The bounding set is what makes it
   * certain: emptied, execve cannot grant anything. */
  if (prctl (PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP
                                  | SECBIT_NO_SETUID_FIXUP_LOCKED) < 0
      && errno != EPERM)
    child_die (c, errno, "set securebits");
  for (cap_value_t v = 0; v <= CAP_LAST_CAP; v++)
    if (prctl (PR_CAPBSET_DROP, v, 0, 0, 0) < 0 && errno != EINVAL && errno != EPERM)
      child_die (c, errno, "drop capability %d from the bounding set", (int) v);
  if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    child_die (c, errno, "clear ambient capabilities");
  cap_t none = cap_init ();
  if (!none || cap_set_proc (none) < 0)
    child_die (c, errno, "drop capabilities");
  cap_free (none);
  if (getuid () == 0 || geteuid () == 0)
    for (cap_value_t v = 0; v <= CAP_LAST_CAP; v++)
      if (prctl (PR_CAPBSET_READ, v, 0, 0, 0) == 1)
        child_die (c, EPERM, "capability %d stays in the bounding set of a uid-0 step (no CAP_SETPCAP?)",
                   (int) v);
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    child_die (c, errno, "set no_new_privs");
}

void
tracer_child_main (const tracer_child *c)
{
  if (prctl (PR_SET_PDEATHSIG, SIGKILL) < 0)
    child_die (c, errno, "set the parent-death signal");
  if (setpgid (0, 0) < 0)
    child_die (c, errno, "setpgid");
  /* Limits first: every process of the step is born inside them. */
  for (int i = 0; i < SANDBOX_MAX_CGROUPS; i++)
    if (c->cgroup_procs[i] >= 0 && write (c->cgroup_procs[i], "0", 1) != 1)
      child_die (c, errno, "move the step into its cgroup");
  const char *what = "";
  int lr = sandbox_limits_set_rlimits (c->cfg->limiter, &what);
  if (lr < 0)
    child_die (c, -lr, "%s", what);
  int null = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0 || dup2 (null, 0) < 0 || dup2 (c->out_fd, 1) < 0 || dup2 (c->err_out_fd, 2) < 0)
    child_die (c, errno, "set up stdio");
  /* Whatever other threads of kiln opened without O_CLOEXEC stays out. */
  syscall (SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  if (chdir (c->host_cwd) < 0)
    child_die (c, errno, "chdir to '%s'", c->cfg->cwd ? c->cfg->cwd : "/");
  umask (0022);
  drop_privileges (c);
  if (c->ruleset_fd >= 0 && syscall (SYS_landlock_restrict_self, c->ruleset_fd, 0) < 0)
    child_die (c, errno, "landlock_restrict_self");
  if (c->cfg->seccomp)
    {
      int r = seccomp_filter_load (c->cfg->seccomp);
      if (r < 0)
        child_die (c, -r, "load the seccomp profile");
    }
  if (syscall (SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, c->filter) < 0)
    child_die (c, errno, "load the tracer's seccomp filter");
  sigset_t all;
  sigemptyset (&all);
  sigprocmask (SIG_SETMASK, &all, NULL);
  char go = 0;
  ssize_t n;
  do
    n = read (c->go_fd, &go, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1 || go != 'g')
    _exit (SETUP_FAILED);
  execve (c->exec_path, c->cfg->argv, c->cfg->env);
  child_die (c, errno, "exec '%s'", c->exec_path);
}
