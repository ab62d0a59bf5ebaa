/* sandbox_idmap.c - the ID mapping of a step's user namespace: choosing it
 * (/etc/subuid, /etc/subgid, newuidmap) and writing it for a child. */
#include "sandbox/sandbox_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* First range of `name` or `id` in an /etc/subuid-style file; 0 if none. */
static int
find_subid (const char *file, const char *name, unsigned long id, unsigned long *start, unsigned long *count)
{
  autofclose FILE *f = fopen (file, "re");
  if (f == NULL)
    return 0;
  char line[512];
  char idstr[32];
  snprintf (idstr, sizeof idstr, "%lu", id);
  while (fgets (line, sizeof line, f))
    {
      char *save = NULL;
      char *who = strtok_r (line, ":\n", &save);
      char *s = strtok_r (NULL, ":\n", &save);
      char *c = strtok_r (NULL, ":\n", &save);
      if (!who || !s || !c)
        continue;
      if (!((name && strcmp (who, name) == 0) || strcmp (who, idstr) == 0))
        continue;
      char *e1, *e2;
      unsigned long st = strtoul (s, &e1, 10), n = strtoul (c, &e2, 10);
      if (*e1 || *e2 || n == 0 || st == 0 || st + n > UINT32_MAX)
        continue;
      *start = st;
      *count = n;
      return 1;
    }
  return 0;
}

static bool
overlaps_subid (const char *file, unsigned long base, unsigned long n)
{
  autofclose FILE *f = fopen (file, "re");
  if (f == NULL)
    return false;
  char line[512];
  while (fgets (line, sizeof line, f))
    {
      char *save = NULL;
      strtok_r (line, ":\n", &save);
      char *s = strtok_r (NULL, ":\n", &save), *c = strtok_r (NULL, ":\n", &save);
      if (!s || !c)
        continue;
      unsigned long st = strtoul (s, NULL, 10), cnt = strtoul (c, NULL, 10);
      if (st < base + n && base < st + cnt)
        return true;
    }
  return false;
}

static bool
have_helper (const char *name)
{
  char p[64];
  static const char *const dirs[] = { "/usr/bin", "/bin", "/usr/sbin", "/usr/local/bin" };
  for (size_t i = 0; i < ARRAY_SIZE (dirs); i++)
    {
      snprintf (p, sizeof p, "%s/%s", dirs[i], name);
      if (access (p, X_OK) == 0)
        return true;
    }
  return false;
}

int
sandbox_idmap_resolve (sandbox_userns_mode want, uid_t root_base, sandbox_idmap *m, kiln_error **err)
{
  memset (m, 0, sizeof *m);
  uid_t uid = geteuid ();
  gid_t gid = getegid ();
  if (uid == 0)
    {
      unsigned long base = root_base ? root_base : SANDBOX_ROOT_MAP_BASE;
      if (base == 0 || base + SANDBOX_ROOT_MAP_COUNT > UINT32_MAX)
        return kiln_error_make (err, 0, "invalid host id base %lu for the root mapping", base);
      if (overlaps_subid ("/etc/subuid", base, SANDBOX_ROOT_MAP_COUNT)
          || overlaps_subid ("/etc/subgid", base, SANDBOX_ROOT_MAP_COUNT))
        return kiln_error_make (err, 0, "host id range %lu+%u for the root mapping overlaps a range in "
                                        "/etc/subuid or /etc/subgid", base, SANDBOX_ROOT_MAP_COUNT);
      m->as_root = true;
      m->host_uid = (uid_t) base;
      m->host_gid = (gid_t) base;
      if (want == SANDBOX_USERNS_SINGLE)
        m->mode = SANDBOX_USERNS_SINGLE;
      else
        {
          m->mode = SANDBOX_USERNS_FULL;
          m->sub_uid = (uid_t) base + 1;
          m->sub_gid = (gid_t) base + 1;
          m->n_sub_uid = m->n_sub_gid = SANDBOX_ROOT_MAP_COUNT - 1;
        }
      return 0;
    }
  m->host_uid = uid;
  m->host_gid = gid;
  struct passwd *pw = getpwuid (uid);
  const char *name = pw ? pw->pw_name : NULL;
  unsigned long su = 0, nu = 0, sg = 0, ng = 0;
  bool have_u = find_subid ("/etc/subuid", name, uid, &su, &nu);
  bool have_g = find_subid ("/etc/subgid", name, uid, &sg, &ng);
  bool helpers = have_helper ("newuidmap") && have_helper ("newgidmap");
  if (want != SANDBOX_USERNS_SINGLE && have_u && have_g && helpers)
    {
      m->mode = SANDBOX_USERNS_FULL;
      m->use_helpers = true;
      m->sub_uid = (uid_t) su;
      m->sub_gid = (gid_t) sg;
      m->n_sub_uid = nu;
      m->n_sub_gid = ng;
      return 0;
    }
  if (want == SANDBOX_USERNS_FULL)
    return kiln_error_make (err, 0, "--userns=full needs %s for user '%s'",
                            !helpers ? "newuidmap and newgidmap (package uidmap)"
                                     : "ranges in /etc/subuid and /etc/subgid",
                            name ? name : "?");
  m->mode = SANDBOX_USERNS_SINGLE;
  return 0;
}

char *
sandbox_idmap_describe (const sandbox_idmap *m)
{
  if (m->mode == SANDBOX_USERNS_SINGLE)
    return xasprintf ("single (container 0 -> host %u:%u, setgroups denied)", (unsigned) m->host_uid,
                      (unsigned) m->host_gid);
  if (m->as_root)
    return xasprintf ("full (container 0..65535 -> host %u.., as root)", (unsigned) m->host_uid);
  return xasprintf ("full (container 0 -> host %u, 1..%lu -> subuid %u.. via newuidmap)",
                    (unsigned) m->host_uid, m->n_sub_uid, (unsigned) m->sub_uid);
}

int
sandbox_check_single_fuse (const sandbox_idmap *m, kiln_error **err)
{
  if (m->mode == SANDBOX_USERNS_SINGLE && (geteuid () != m->host_uid || getegid () != m->host_gid))
    return kiln_error_make (err, 0, "a FUSE root filesystem in single ID mode needs kiln to run as the host "
                                    "user of the step's root (%u:%u), so that the seccomp supervisor may "
                                    "resolve chown targets on it; use full ID mode",
                            (unsigned) m->host_uid, (unsigned) m->host_gid);
  return 0;
}

static int
write_proc_file (pid_t pid, const char *name, const char *content, kiln_error **err)
{
  char p[64];
  snprintf (p, sizeof p, "/proc/%d/%s", (int) pid, name);
  autoclose int fd = open (p, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_make (err, errno, "open '%s'", p);
  ssize_t n = write (fd, content, strlen (content));
  if (n < 0 || (size_t) n != strlen (content))
    return kiln_error_make (err, n < 0 ? errno : EIO, "write '%s' ('%s')", p, content);
  return 0;
}

static int
run_helper (const char *prog, char *const argv[], kiln_error **err)
{
  pid_t pid = sandbox_fork_child ();
  if (pid < 0)
    return kiln_error_make (err, errno, "fork for %s", prog);
  if (pid == 0)
    {
      sigset_t set;
      sigemptyset (&set);
      sigaddset (&set, SIGINT);
      sigaddset (&set, SIGTERM);
      sigprocmask (SIG_UNBLOCK, &set, NULL);
      execvp (prog, argv);
      _exit (127);
    }
  int st;
  while (waitpid (pid, &st, 0) < 0)
    if (errno != EINTR)
      return kiln_error_make (err, errno, "wait for %s", prog);
  if (!WIFEXITED (st) || WEXITSTATUS (st) != 0)
    return kiln_error_make (err, 0, "%s failed (status %d)", prog, WIFEXITED (st) ? WEXITSTATUS (st) : -1);
  return 0;
}

static int
write_id_maps (pid_t pid, const sandbox_idmap *m, kiln_error **err)
{
  char u[128], g[128];
  if (m->use_helpers)
    {
      char p[16], a[16], b[16], s[16], n[16];
      snprintf (p, sizeof p, "%d", (int) pid);
      snprintf (a, sizeof a, "%u", (unsigned) m->host_uid);
      snprintf (s, sizeof s, "%u", (unsigned) m->sub_uid);
      snprintf (n, sizeof n, "%lu", m->n_sub_uid);
      char *uargv[] = { "newuidmap", p, "0", a, "1", "1", s, n, NULL };
      if (run_helper ("newuidmap", uargv, err) < 0)
        return -1;
      snprintf (b, sizeof b, "%u", (unsigned) m->host_gid);
      snprintf (s, sizeof s, "%u", (unsigned) m->sub_gid);
      snprintf (n, sizeof n, "%lu", m->n_sub_gid);
      char *gargv[] = { "newgidmap", p, "0", b, "1", "1", s, n, NULL };
      return run_helper ("newgidmap", gargv, err);
    }
  if (m->mode == SANDBOX_USERNS_FULL)
    {
      snprintf (u, sizeof u, "0 %u %u\n", (unsigned) m->host_uid, SANDBOX_ROOT_MAP_COUNT);
      snprintf (g, sizeof g, "0 %u %u\n", (unsigned) m->host_gid, SANDBOX_ROOT_MAP_COUNT);
    }
  else
    {
      snprintf (u, sizeof u, "0 %u 1\n", (unsigned) m->host_uid);
      snprintf (g, sizeof g, "0 %u 1\n", (unsigned) m->host_gid);
      if (write_proc_file (pid, "setgroups", "deny", err) < 0)
        return -1;
    }
  if (write_proc_file (pid, "uid_map", u, err) < 0 || write_proc_file (pid, "gid_map", g, err) < 0)
    return -1;
  return 0;
}

int
sandbox_map_ids (pid_t pid, int sock, int errfd, const sandbox_idmap *m, int cancel_fd, kiln_error **err)
{
  char b;
  if (sandbox_wait_fds (&sock, 1, cancel_fd, HANDSHAKE_TIMEOUT_S) < 0)
    {
      if (errno == ETIMEDOUT)
        return kiln_error_make (err, 0, "the sandbox helper did not create its user namespace within %d s",
                                HANDSHAKE_TIMEOUT_S);
      return kiln_error_make (err, errno, "waiting for the sandbox helper");
    }
  if (read (sock, &b, 1) != 1)
    {
      if (sandbox_read_setup_error (errfd, err) == 0)
        kiln_error_make (err, 0, "sandbox helper exited before creating its user namespace");
      return -1;
    }
  if (write_id_maps (pid, m, err) < 0)
    return kiln_error_wrap (err, "writing the user namespace ID map");
  b = 'g';
  if (write (sock, &b, 1) != 1)
    return kiln_error_make (err, errno, "signal the sandbox helper");
  return 0;
}
