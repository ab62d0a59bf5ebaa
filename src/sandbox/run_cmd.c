/* run_cmd.c - `kiln run`. */
#include "sandbox/run_cmd.h"
#include "overlay/overlay.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp_profile.h"
#include "util/alloc.h"
#include "util/cli.h"
#include "util/fsutil.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum
{
  OPT_ROOTFS = 1,
  OPT_ROOTFS_RO,
  OPT_USERNS,
  OPT_NETWORK,
  OPT_SECCOMP,
  OPT_USER,
  OPT_ENV,
  OPT_WORKDIR,
  OPT_HOSTNAME,
  OPT_OVERLAY,
  OPT_SHOW_CHANGES,
};

static const cli_option run_options[] = {
  { "rootfs", 0, CLI_VALUE, "DIR",
    "directory to use as the root filesystem (required). Without --overlay the command's writes go "
    "to DIR itself unless --rootfs-readonly is given",
    OPT_ROOTFS },
  { "overlay", 0, CLI_BOOL, NULL,
    "run on kiln's FUSE overlay: DIR is a read-only lower layer (never written; files named .wh.* "
    "are OCI whiteouts), writes go to a temporary upper that is discarded afterwards. The mount is "
    "made inside the step's user namespace; /dev/fuse must be mode 0666",
    OPT_OVERLAY },
  { "show-changes", 0, CLI_BOOL, NULL,
    "with --overlay: print the step's change list after it ends, one line per entry: "
    "'add MODE UID:GID /path' (true owners), 'link /path -> /target', 'whiteout /path', 'opaque /dir'",
    OPT_SHOW_CHANGES },
  { "rootfs-readonly", 0, CLI_BOOL, NULL, "mount the root filesystem read-only", OPT_ROOTFS_RO },
  { "userns", 0, CLI_VALUE, "MODE", "ID mapping: auto (default), full or single", OPT_USERNS },
  { "network", 0, CLI_VALUE, "MODE", "host/default (share the host network) or none (loopback only)",
    OPT_NETWORK },
  { "seccomp-policy", 0, CLI_VALUE, "FILE",
    "seccomp profile in Docker's JSON format (default: policies/default.json); 'unconfined' disables "
    "seccomp",
    OPT_SECCOMP },
  { "user", 'u', CLI_VALUE, "UID[:GID]", "numeric user and group to run as (default 0:0)", OPT_USER },
  { "env", 'e', CLI_VALUE, "KEY=VALUE", "set an environment variable (repeatable)", OPT_ENV },
  { "workdir", 'w', CLI_VALUE, "DIR", "absolute working directory inside the root (default /)", OPT_WORKDIR },
  { "hostname", 0, CLI_VALUE, "NAME", "host name inside the step (default kiln)", OPT_HOSTNAME },
  { NULL, 0, CLI_BOOL, NULL, NULL, 0 },
};
#define N_RUN_OPTIONS (ARRAY_SIZE (run_options) - 1)

typedef struct run_opts
{
  cli_common common;
  char *rootfs;
  bool rootfs_ro;
  sandbox_userns_mode userns;
  sandbox_net_mode network;
  char *seccomp;
  uid_t uid;
  gid_t gid;
  char **env;
  char *workdir;
  char *hostname;
  bool overlay;
  bool show_changes;
} run_opts;

static int
parse_id (const char *s, unsigned long *out)
{
  if (*s == '\0')
    return -1;
  char *end;
  errno = 0;
  unsigned long v = strtoul (s, &end, 10);
  if (errno || *end || v > 4294967294UL || s[0] == '-')
    return -1;
  *out = v;
  return 0;
}

static int
run_handle (void *ctx, int id, const char *value, kiln_error **err)
{
  run_opts *o = ctx;
  int r = cli_common_handle (&o->common, id, value, err);
  if (r != 0)
    return r < 0 ? r : 0;
  switch (id)
    {
    case OPT_ROOTFS:
      free (o->rootfs);
      o->rootfs = xstrdup (value);
      return 0;
    case OPT_ROOTFS_RO:
      o->rootfs_ro = strcmp (value, "true") == 0;
      return 0;
    case OPT_USERNS:
      return sandbox_parse_userns (value, &o->userns, err);
    case OPT_NETWORK:
      return sandbox_parse_network (value, &o->network, err);
    case OPT_SECCOMP:
      free (o->seccomp);
      o->seccomp = xstrdup (value);
      return 0;
    case OPT_USER:
      {
        autofree char *u = xstrdup (value);
        char *colon = strchr (u, ':');
        unsigned long uid, gid = 0;
        if (colon)
          *colon = '\0';
        if (parse_id (u, &uid) < 0 || (colon && parse_id (colon + 1, &gid) < 0))
          return kiln_error_make (err, 0, "--user '%s': expected numeric UID[:GID] (names are resolved "
                                          "by the build engine, not by kiln run)", value);
        o->uid = (uid_t) uid;
        o->gid = (gid_t) gid;
        return 0;
      }
    case OPT_ENV:
      if (strchr (value, '=') == NULL || value[0] == '=')
        return kiln_error_make (err, 0, "--env '%s': expected KEY=VALUE", value);
      strv_push (&o->env, value);
      return 0;
    case OPT_WORKDIR:
      if (value[0] != '/')
        return kiln_error_make (err, 0, "--workdir '%s': must be an absolute path", value);
      free (o->workdir);
      o->workdir = xstrdup (value);
      return 0;
    case OPT_HOSTNAME:
      if (strlen (value) == 0 || strlen (value) > 63)
        return kiln_error_make (err, 0, "--hostname '%s': must be 1 to 63 bytes", value);
      free (o->hostname);
      o->hostname = xstrdup (value);
      return 0;
    case OPT_OVERLAY:
      o->overlay = strcmp (value, "true") == 0;
      return 0;
    case OPT_SHOW_CHANGES:
      o->show_changes = strcmp (value, "true") == 0;
      return 0;
    default:
      return kiln_error_make (err, 0, "internal: unhandled run option id %d", id);
    }
}

static void
print_line (void *ctx, sandbox_stream stream, const char *line, size_t len)
{
  (void) ctx;
  FILE *f = stream == SANDBOX_STDOUT ? stdout : stderr;
  fwrite (line, 1, len, f);
  fputc ('\n', f);
  fflush (f);
}

static void
run_opts_free (run_opts *o)
{
  cli_common_free (&o->common);
  free (o->rootfs);
  free (o->seccomp);
  strv_free (o->env);
  free (o->workdir);
  free (o->hostname);
}

/* kiln run commits nothing: single mode's chown records have nowhere to go,
 * so they are logged (debug) and the call succeeds, as it would in a build. */
static int
log_chown (void *ctx, int fd, const char *path, uid_t uid, gid_t gid)
{
  (void) ctx;
  (void) fd;
  log_debug ("chown '%s' to %d:%d recorded (kiln run keeps no metadata)", path, (int) uid, (int) gid);
  return 0;
}

static int
load_filter (const run_opts *o, seccomp_profile_mode mode, seccomp_filter **out, kiln_error **err)
{
  *out = NULL;
  if (o->seccomp && strcmp (o->seccomp, "unconfined") == 0)
    {
      log_warn ("seccomp disabled (--seccomp-policy=unconfined): the step may use every system call");
      return 0;
    }
  autofree char *path = NULL;
  if (o->seccomp)
    path = xstrdup (o->seccomp);
  else if (seccomp_profile_default_path (&path, err) < 0)
    return -1;
  seccomp_profile *p = NULL;
  if (seccomp_profile_load_file (path, &p, err) < 0)
    return -1;
  seccomp_profile_env env = { seccomp_profile_docker_default_caps, 0, 0, mode };
  int r = seccomp_profile_compile (p, &env, out, err);
  seccomp_profile_free (p);
  if (r < 0)
    return kiln_error_wrap (err, "compiling seccomp profile '%s'", path);
  log_debug ("seccomp profile '%s' compiled to %zu BPF instructions", path, (*out)->n_insns);
  return 0;
}

/* ---- --overlay ---- */

static int
serve_overlay (void *ctx, int fuse_fd, kiln_error **err)
{
  return overlay_serve_fd (ctx, fuse_fd, err);
}

/* Single mode: the supervisor hands us an O_PATH fd on the overlay mount;
 * its st_ino is the overlay's inode number. */
static int
record_overlay_chown (void *ctx, int fd, const char *path, uid_t uid, gid_t gid)
{
  struct stat st;
  if (fstat (fd, &st) < 0)
    return -errno;
  autoerror kiln_error *e = NULL;
  if (overlay_record_chown (ctx, st.st_ino, uid, gid, &e) < 0)
    {
      log_warn ("chown '%s': %s", path, e->msg);
      return e->status ? -e->status : -EIO;
    }
  log_debug ("chown '%s' to %d:%d recorded in the overlay", path, (int) uid, (int) gid);
  return 0;
}

static void
print_changes (const overlay_changes *c)
{
  for (size_t i = 0; i < c->n; i++)
    {
      const overlay_change *ch = &c->v[i];
      switch (ch->kind)
        {
        case OVERLAY_CHANGE_ADD:
          printf ("add %06o %u:%u /%s\n", (unsigned) ch->mode, (unsigned) ch->uid, (unsigned) ch->gid, ch->path);
          break;
        case OVERLAY_CHANGE_HARDLINK:
          printf ("link /%s -> /%s\n", ch->path, ch->link_target);
          break;
        case OVERLAY_CHANGE_WHITEOUT:
          printf ("whiteout /%s\n", ch->path);
          break;
        case OVERLAY_CHANGE_OPAQUE:
          printf ("opaque /%s\n", ch->path);
          break;
        }
    }
  fflush (stdout);
}

/* A scratch directory for the overlay's upper, removed again by
 * scratch_remove. In $TMPDIR (default /tmp). */
typedef struct scratch
{
  int parent_fd;
  char *name;
  int fd;
} scratch;

static int
scratch_make (scratch *s, kiln_error **err)
{
  const char *tmp = getenv ("TMPDIR");
  if (tmp == NULL || tmp[0] == '\0')
    tmp = "/tmp";
  s->name = NULL;
  s->fd = -1;
  s->parent_fd = open (tmp, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (s->parent_fd < 0)
    return kiln_error_make (err, errno, "open temporary directory '%s'", tmp);
  if (fs_mkdtemp_at (s->parent_fd, "kiln-run-", &s->name, &s->fd, err) < 0)
    return kiln_error_wrap (err, "creating the overlay's scratch directory in '%s'", tmp);
  return 0;
}

static void
scratch_remove (scratch *s)
{
  if (s->fd >= 0)
    close (s->fd);
  if (s->name)
    {
      autoerror kiln_error *e = NULL;
      if (fs_rm_rf_at (s->parent_fd, s->name, &e) < 0)
        log_warn ("removing the overlay's scratch directory: %s", e->msg);
    }
  if (s->parent_fd >= 0)
    close (s->parent_fd);
  free (s->name);
}

static int
overlay_open (const run_opts *o, const sandbox_idmap *map, int scratch_fd, overlay **out, kiln_error **err)
{
  const char *paths[] = { o->rootfs };
  overlay_lower *lower = NULL;
  if (overlay_lower_open_dirs (paths, 1, &lower, err) < 0)
    return kiln_error_wrap (err, "opening '%s' as the overlay's lower layer", o->rootfs);
  const sandbox_mountpoint *mp;
  size_t n = sandbox_mountpoints (&mp);
  autostrv char **mask = NULL;
  for (size_t i = 0; i < n; i++)
    {
      autofree char *p = xasprintf ("%s%s", mp[i].path, mp[i].is_dir ? "/" : "");
      strv_push (&mask, p);
    }
  /* The mount is made in the step's user namespace, so the overlay deals in
   * container ids: single mode presents everything as the step's root. */
  overlay_config cfg = {
    .lower = lower, .scratch_dirfd = scratch_fd,
    .id_mode = map->mode == SANDBOX_USERNS_SINGLE ? OVERLAY_IDS_SINGLE : OVERLAY_IDS_FULL,
    .present_uid = 0, .present_gid = 0, .mask_paths = (const char *const *) mask,
  };
  return overlay_new (&cfg, out, err);
}

static int
do_run (run_opts *o, char **argv, kiln_error **err)
{
  autoclose int rootfd = open (o->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return kiln_error_make (err, errno, "open root filesystem '%s'", o->rootfs);
  sandbox_idmap map;
  if (sandbox_idmap_resolve (o->userns, 0, &map, err) < 0)
    return -1;
  autofree char *desc = sandbox_idmap_describe (&map);
  log_info ("user namespace: %s", desc);
  seccomp_filter *filter = NULL;
  seccomp_profile_mode mode = map.mode == SANDBOX_USERNS_SINGLE ? SECCOMP_PROFILE_FAKE_IDS : SECCOMP_PROFILE_PLAIN;
  if (load_filter (o, mode, &filter, err) < 0)
    return -1;
  overlay *ovl = NULL;
  scratch scr = { -1, NULL, -1 };
  if (o->overlay
      && (scratch_make (&scr, err) < 0 || overlay_open (o, &map, scr.fd, &ovl, err) < 0))
    {
      scratch_remove (&scr);
      seccomp_filter_free (filter);
      return -1;
    }
  autostrv char **created = NULL;
  if (!o->overlay && sandbox_prepare_mountpoints (rootfd, &created, err) < 0)
    {
      seccomp_filter_free (filter);
      sandbox_remove_mountpoints (rootfd, created);
      return kiln_error_wrap (err, "preparing '%s'", o->rootfs);
    }
  bool has_path = false;
  for (char **e = o->env; e && *e; e++)
    has_path |= strncmp (*e, "PATH=", 5) == 0;
  if (!has_path)
    strv_push (&o->env, "PATH=" SANDBOX_DEFAULT_PATH);
  sandbox_config cfg = {
    .rootfs = o->rootfs, .rootfs_readonly = o->rootfs_ro, .argv = argv, .env = o->env,
    .cwd = o->workdir, .uid = o->uid, .gid = o->gid, .hostname = o->hostname, .network = o->network,
    .idmap = &map, .seccomp = filter, .output = print_line, .record_chown = log_chown,
  };
  if (ovl)
    {
      cfg.rootfs = NULL;
      cfg.rootfs_fuse = serve_overlay;
      cfg.rootfs_fuse_ctx = ovl;
      cfg.record_chown = record_overlay_chown;
      cfg.record_chown_ctx = ovl;
    }
  sandbox_result res;
  int r = sandbox_run (&cfg, &res, err);
  sandbox_remove_mountpoints (rootfd, created);
  seccomp_filter_free (filter);
  if (ovl)
    {
      /* sandbox_run returned after the step's mount namespace, and with it
       * the mount, went away: the session loop has ended or ends now. */
      overlay_stop (ovl);
      overlay_changes *changes = NULL;
      if (r == 0 && o->show_changes)
        {
          if (overlay_commit (ovl, &changes, err) < 0)
            r = -1;
          else
            print_changes (changes);
          overlay_changes_free (changes);
        }
      overlay_free (ovl);
      scratch_remove (&scr);
    }
  if (r < 0)
    return -1;
  autofree char *what = sandbox_result_describe (&res);
  if (res.exited && res.status == 0)
    return 0;
  /* main() prints this once and exits with the command's status. */
  kiln_error_make (err, 0, "command '%s' %s", argv[0], what);
  return res.exited ? res.status : 128 + res.status;
}

int
run_cmd_main (int argc, char **argv, kiln_error **err)
{
  run_opts o;
  memset (&o, 0, sizeof o);
  cli_common_init (&o.common);
  size_t n = N_RUN_OPTIONS + cli_common_options_count;
  autofree cli_option *opts = cli_options_concat (run_options, N_RUN_OPTIONS, cli_common_options,
                                                  cli_common_options_count);
  autostrv char **pos = NULL;
  bool help = false;
  if (cli_parse (argc, argv, opts, n, run_handle, &o, &pos, &help, err) < 0)
    {
      run_opts_free (&o);
      kiln_error_wrap (err, "kiln run");
      return KILN_EXIT_USAGE;
    }
  if (help)
    {
      printf ("Usage: kiln run --rootfs DIR [FLAGS] COMMAND [ARG...]\n\n"
              "Run a command inside kiln's step sandbox (user, mount, pid, ipc, uts and cgroup\n"
              "namespaces, seccomp, reduced capabilities), on DIR itself or, with --overlay, on\n"
              "kiln's FUSE overlay of DIR (writes discarded; --show-changes lists them). Image\n"
              "sources (store, registry, --oci-layout) are not implemented yet.\n\nFlags:\n");
      cli_print_options (stdout, opts, n);
      run_opts_free (&o);
      return KILN_EXIT_OK;
    }
  cli_common_apply (&o.common);
  int rc;
  if (o.rootfs == NULL)
    {
      kiln_error_make (err, 0, "kiln run: --rootfs DIR is required");
      rc = KILN_EXIT_USAGE;
    }
  else if (o.show_changes && !o.overlay)
    {
      kiln_error_make (err, 0, "kiln run: --show-changes needs --overlay");
      rc = KILN_EXIT_USAGE;
    }
  else if (pos == NULL || pos[0] == NULL)
    {
      kiln_error_make (err, 0, "kiln run: no command given");
      rc = KILN_EXIT_USAGE;
    }
  else
    {
      rc = do_run (&o, pos, err);
      if (rc > 0)
        kiln_error_wrap (err, "kiln run");
      else if (rc < 0)
        {
          kiln_error_wrap (err, "kiln run");
          rc = KILN_EXIT_FAILURE;
        }
    }
  run_opts_free (&o);
  return rc;
}
