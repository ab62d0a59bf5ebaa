/* container-env - run a command the way a default container runtime would:
 * the environments kiln must work in without privileges of its own
 * (issue 15). Root only (it sets the environment up, then gives up what
 * a container does not have).
 *
 *   container-env docker     [--profile FILE] [--dev-fuse] [--dev-tun] [--ca PEM] -- CMD [ARG...]
 *   container-env restricted [--profile FILE] [--dev-fuse] [--dev-tun] [--ca PEM] -- CMD [ARG...]
 *
 * docker: root with Docker's default capability set (CHOWN, DAC_OVERRIDE,
 * FSETID, FOWNER, MKNOD, NET_RAW, SETGID, SETUID, SETFCAP, SETPCAP,
 * NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE) in every set including
 * the bounding set; GitLab's Docker executor, kaniko's Kubernetes Job.
 * restricted: uid and gid 1000, no capabilities in any set, no_new_privs;
 * a Restricted pod (runAsNonRoot, drop ALL, allowPrivilegeEscalation
 * false).
 *
 * Both: a private mount namespace whose /dev is a fresh tmpfs holding what
 * a container's /dev holds (null, zero, full, random, urandom, tty, a
 * private devpts, shm, fd and std* links) and no fuse and no net/tun
 * unless --dev-fuse / --dev-tun (a device plugin's). The seccomp profile,
 * in Docker's JSON format, is compiled by kiln's compiler against the
 * environment's capability set, as runc evaluates "includes.caps":
 * default policies/default.json, Docker's default allow-list (kiln's copy
 * also denies io_uring, which moby's default does too since Docker 25, and
 * AF_ALG sockets); --profile gives a Localhost profile instead. --ca
 * binds PEM over the system's CA bundle (/etc/ssl/certs/ca-certificates.crt)
 * in the private mount namespace: an image whose trust store knows the
 * registry's CA (the test registry's, for the CI examples).
 */
#include "sandbox/seccomp_profile.h"
#include "util/alloc.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static const char *const docker_caps[] = {
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
  "CAP_AUDIT_WRITE", NULL,
};
static const char *const no_caps[] = { NULL };

static void __attribute__ ((noreturn, format (printf, 1, 2)))
die (const char *fmt, ...)
{
  int e = errno;
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "container-env: ");
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fprintf (stderr, e ? ": %s\n" : "\n", strerror (e));
  exit (125);
}

static void
node (const char *name, mode_t mode, unsigned maj, unsigned min)
{
  char p[64];
  snprintf (p, sizeof p, "/dev/%s", name);
  if (mknod (p, S_IFCHR | mode, makedev (maj, min)) < 0 || chmod (p, mode) < 0)
    die ("mknod '%s'", p);
}

/* /dev as a container runtime makes it. */
static void
container_dev (bool fuse, bool tun)
{
  if (unshare (CLONE_NEWNS) < 0)
    die ("unshare a mount namespace");
  if (mount (NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
    die ("make mounts slaves");
  if (mount ("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k") < 0)
    die ("mount a tmpfs on /dev");
  node ("null", 0666, 1, 3);
  node ("zero", 0666, 1, 5);
  node ("full", 0666, 1, 7);
  node ("random", 0666, 1, 8);
  node ("urandom", 0666, 1, 9);
  node ("tty", 0666, 5, 0);
  if (fuse)
    node ("fuse", 0666, 10, 229);
  if (tun)
    {
      if (mkdir ("/dev/net", 0755) < 0)
        die ("mkdir /dev/net");
      node ("net/tun", 0666, 10, 200);
    }
  if (mkdir ("/dev/pts", 0755) < 0 || mkdir ("/dev/shm", 01777) < 0 || mkdir ("/dev/mqueue", 0755) < 0)
    die ("mkdir in /dev");
  if (mount ("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") < 0)
    die ("mount devpts");
  if (mount ("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k") < 0)
    die ("mount /dev/shm");
  const char *links[][2] = { { "pts/ptmx", "/dev/ptmx" },       { "/proc/self/fd", "/dev/fd" },
                             { "/proc/self/fd/0", "/dev/stdin" }, { "/proc/self/fd/1", "/dev/stdout" },
                             { "/proc/self/fd/2", "/dev/stderr" } };
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
    if (symlink (links[i][0], links[i][1]) < 0)
      die ("symlink '%s'", links[i][1]);
}

/* The image's trust store: pem instead of the system's CA bundle. */
static void
trust_ca (const char *pem)
{
  const char *bundle = "/etc/ssl/certs/ca-certificates.crt";
  if (mount (pem, bundle, NULL, MS_BIND, NULL) < 0)
    die ("bind '%s' over '%s'", pem, bundle);
}

static seccomp_filter *
compile_profile (const char *path, const char *const *caps)
{
  kiln_error *err = NULL;
  seccomp_profile *p = NULL;
  seccomp_filter *f = NULL;
  seccomp_profile_env env = { .caps = caps };
  if (seccomp_profile_load_file (path, &p, &err) < 0 || seccomp_profile_compile (p, &env, &f, &err) < 0)
    {
      fprintf (stderr, "container-env: profile '%s': %s\n", path, err->msg);
      exit (125);
    }
  seccomp_profile_free (p);
  return f;
}

/* The bounding set keeps only keep. CAP_SETPCAP is needed to shrink it,
 * so it goes last (docker keeps it anyway). */
static void
drop_bounding (const char *const *keep)
{
  for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++)
    {
      bool k = false;
      for (const char *const *n = keep; *n; n++)
        {
          cap_value_t v;
          if (cap_from_name (*n, &v) == 0 && v == c)
            k = true;
        }
      if (!k && c != CAP_SETPCAP && prctl (PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
        die ("drop capability %d from the bounding set", c);
    }
  bool keep_setpcap = false;
  for (const char *const *n = keep; *n; n++)
    keep_setpcap |= strcmp (*n, "CAP_SETPCAP") == 0;
  if (!keep_setpcap && prctl (PR_CAPBSET_DROP, CAP_SETPCAP, 0, 0, 0) < 0)
    die ("drop CAP_SETPCAP from the bounding set");
  prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

/* Capabilities of the environment, in every set. */
static void
set_caps (const char *const *keep)
{
  drop_bounding (keep);
  cap_t caps = cap_init ();
  for (const char *const *n = keep; *n; n++)
    {
      cap_value_t v;
      if (cap_from_name (*n, &v) < 0)
        die ("capability name '%s'", *n);
      cap_set_flag (caps, CAP_EFFECTIVE, 1, &v, CAP_SET);
      cap_set_flag (caps, CAP_PERMITTED, 1, &v, CAP_SET);
      cap_set_flag (caps, CAP_INHERITABLE, 1, &v, CAP_SET);
    }
  if (cap_set_proc (caps) < 0)
    die ("set capabilities");
  cap_free (caps);
}

int
main (int argc, char **argv)
{
  if (argc < 3)
    {
      fprintf (stderr, "usage: container-env docker|restricted [--profile FILE] [--dev-fuse] [--dev-tun] [--ca PEM] -- "
               "CMD...\n");
      return 125;
    }
  bool restricted = strcmp (argv[1], "restricted") == 0;
  if (!restricted && strcmp (argv[1], "docker") != 0)
    die ("unknown environment '%s' (docker or restricted)", argv[1]);
  const char *profile = NULL, *ca = NULL;
  bool fuse = false, tun = false;
  int i = 2;
  for (; i < argc && strcmp (argv[i], "--") != 0; i++)
    if (strcmp (argv[i], "--profile") == 0 && i + 1 < argc)
      profile = argv[++i];
    else if (strcmp (argv[i], "--dev-fuse") == 0)
      fuse = true;
    else if (strcmp (argv[i], "--dev-tun") == 0)
      tun = true;
    else if (strcmp (argv[i], "--ca") == 0 && i + 1 < argc)
      ca = argv[++i];
    else
      die ("unknown option '%s'", argv[i]);
  if (i + 1 >= argc)
    die ("no command after --");
  char **cmd = argv + i + 1;
  if (geteuid () != 0)
    die ("must run as root");
  autofree char *dflt = NULL;
  if (!profile)
    {
      kiln_error *err = NULL;
      if (seccomp_profile_default_path (&dflt, &err) < 0)
        die ("find policies/default.json: %s", err->msg);
      profile = dflt;
    }
  seccomp_filter *filter = compile_profile (profile, restricted ? no_caps : docker_caps);
  container_dev (fuse, tun);
  if (ca)
    trust_ca (ca);
  if (restricted)
    {
      /* The bounding set first (that needs CAP_SETPCAP), then the uid
       * change clears the other sets. */
      drop_bounding (no_caps);
      if (setgroups (0, NULL) < 0 || setresgid (1000, 1000, 1000) < 0 || setresuid (1000, 1000, 1000) < 0)
        die ("become uid 1000");
      if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        die ("set no_new_privs");
      if (seccomp_filter_load (filter) < 0)
        die ("load the seccomp filter");
    }
  else
    {
      /* runc loads the filter while it still may (CAP_SYS_ADMIN), then
       * the container keeps Docker's set only. */
      prctl (PR_SET_KEEPCAPS, 1, 0, 0, 0);
      if (seccomp_filter_load (filter) < 0)
        die ("load the seccomp filter");
      set_caps (docker_caps);
    }
  seccomp_filter_free (filter);
  execvp (cmd[0], cmd);
  die ("exec '%s'", cmd[0]);
}
