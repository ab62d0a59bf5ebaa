/* run.c - `kiln run`: a command in an image or a root filesystem inside the
 * step sandbox. */
#include "cmd/cmd.h"
#include "cmd/cmd_common.h"
#include "build/build_ptrace.h"
#include "build/rootfs.h"
#include "overlay/overlay.h"
#include "registry/manifest.h"
#include "registry/ocilayout.h"
#include "registry/reference.h"
#include "cmd/run_ptrace.h"
#include "cmd/run_opts.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp_profile.h"
#include "store/fetch.h"
#include "store/image.h"
#include "store/local_image.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/cli.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/sigcancel.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
static void
print_line (void *ctx, sandbox_stream stream, const char *line, size_t len)
{
  (void) ctx;
  FILE *f = stream == SANDBOX_STDOUT ? stdout : stderr;
  fwrite (line, 1, len, f);
  fputc ('\n', f);
  fflush (f);
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
  return seccomp_profile_load_filter (o->seccomp, mode, out, err);
}

/* ---- --overlay ---- */


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

/* The overlay over lower (taken, also on failure) with its upper in
 * scratch_fd. The mount is made in the step's user namespace, so the
 * overlay deals in container ids: single mode presents everything as the
 * step's root and records uid:gid (the step's user) as the true owner of
 * what the step creates. */
/* The sandbox's mount points as overlay mask paths ("proc/"). */
static char **
mount_masks (void)
{
  const sandbox_mountpoint *mp;
  size_t n = sandbox_mountpoints (&mp);
  char **mask = NULL;
  for (size_t i = 0; i < n; i++)
    {
      autofree char *p = xasprintf ("%s%s", mp[i].path, mp[i].is_dir ? "/" : "");
      strv_push (&mask, p);
    }
  return mask;
}

static int
overlay_open (overlay_lower *lower, const sandbox_idmap *map, int scratch_fd, uid_t uid, gid_t gid, overlay **out,
              kiln_error **err)
{
  autostrv char **mask = mount_masks ();
  overlay_config cfg = {
    .lower = lower, .scratch_dirfd = scratch_fd,
    .id_mode = map->mode == SANDBOX_USERNS_SINGLE ? OVERLAY_IDS_SINGLE : OVERLAY_IDS_FULL,
    .present_uid = 0, .present_gid = 0, .create_uid = uid, .create_gid = gid,
    .mask_paths = (const char *const *) mask,
  };
  return overlay_new (&cfg, out, err);
}

/* What the command runs as and with, resolved from the options (and the
 * image config). */
typedef struct run_plan
{
  char **argv;
  char **env;
  char *cwd;
  uid_t uid;
  gid_t gid;
  gid_t *groups;
  size_t n_groups;
} run_plan;

static void
run_plan_clear (run_plan *p)
{
  strv_free (p->argv);
  strv_free (p->env);
  free (p->cwd);
  free (p->groups);
  memset (p, 0, sizeof *p);
}

/* The sandbox state both sources share: ID mapping and seccomp filter. */
typedef struct run_sandbox
{
  sandbox_idmap map;
  seccomp_filter *filter;
  bool ptrace;               /* ptrace isolation on overlay_dir (an image where namespaces are denied) */
} run_sandbox;

static int
run_sandbox_init (const run_opts *o, run_sandbox *sb, kiln_error **err)
{
  sb->filter = NULL;
  sb->ptrace = false;
  /* An image, or --rootfs with --overlay, runs on kiln's FUSE overlay, or
   * where namespaces or FUSE are denied on overlay_dir under ptrace. */
  sandbox_probe_req pr = { .fuse = !o->rootfs || o->overlay, .network = o->network };
  sandbox_isolation iso;
  if (sandbox_choose_isolation (&pr, o->isolation, &iso, err) < 0)
    return -1;
  if (iso == SANDBOX_ISOLATION_PTRACE)
    {
      sb->ptrace = true;
      return 0;
    }
  if (sandbox_idmap_resolve (o->userns, 0, &sb->map, err) < 0)
    return -1;
  autofree char *desc = sandbox_idmap_describe (&sb->map);
  log_info ("user namespace: %s", desc);
  seccomp_profile_mode mode = sb->map.mode == SANDBOX_USERNS_SINGLE ? SECCOMP_PROFILE_FAKE_IDS
                                                                     : SECCOMP_PROFILE_PLAIN;
  return load_filter (o, mode, &sb->filter, err);
}

/* Run p in the sandbox: on the directory o->rootfs when lower is NULL,
 * else on an overlay of lower (taken) with its upper in scratch_fd.
 * Returns 0 when the command exited 0, its exit status (or 128 + signal)
 * when it failed or kiln was interrupted, negative when kiln failed. */
/* What kiln run returns for the command's result: 0, or its exit status
 * (128 + N for signal N) with an error main() prints once. */
static int
command_status (const run_plan *p, const sandbox_result *res, kiln_error **err)
{
  if (res->exited && res->status == 0)
    return 0;
  autofree char *what = sandbox_result_describe (res);
  kiln_error_make (err, 0, "command '%s' %s", p->argv[0], what);
  return res->exited ? res->status : 128 + res->status;
}

static int execute_ptrace (const run_opts *o, const run_plan *p, const char *root, overlay_dir *od,
                           kiln_error **err);

/* An image under ptrace isolation: overlay_dir over lower (taken), the
 * tracer on it; --show-changes from its write log. */
static int
execute_overlay_dir (const run_opts *o, const run_plan *p, overlay_lower *lower, int scratch_fd, kiln_error **err)
{
  autostrv char **mask = mount_masks ();
  overlay_dir_config oc = { .lower = lower, .scratch_dirfd = scratch_fd, .mask_paths = (const char *const *) mask,
                            .create_uid = p->uid, .create_gid = p->gid };
  overlay_dir *od = NULL;
  if (overlay_dir_new (&oc, &od, err) < 0)
    return -1;
  int r = build_ptrace_dev_links (od, err);
  if (r == 0)
    r = execute_ptrace (o, p, overlay_dir_root_path (od), od, err);
  if (r == 0 && o->show_changes)
    {
      overlay_changes *changes = NULL;
      if (overlay_dir_commit (od, &changes, err) < 0)
        r = -1;
      else
        print_changes (changes);
      overlay_changes_free (changes);
    }
  overlay_dir_free (od);
  return r;
}

static int
execute (const run_opts *o, const run_plan *p, const run_sandbox *sb, overlay_lower *lower, int scratch_fd,
         kiln_error **err)
{
  if (sb->ptrace && lower)
    return execute_overlay_dir (o, p, lower, scratch_fd, err);
  overlay *ovl = NULL;
  if (lower && overlay_open (lower, &sb->map, scratch_fd, p->uid, p->gid, &ovl, err) < 0)
    return -1;
  sandbox_config cfg = {
    .rootfs = o->rootfs, .rootfs_readonly = o->rootfs_ro, .argv = p->argv, .env = p->env, .cwd = p->cwd,
    .uid = p->uid, .gid = p->gid, .groups = p->groups, .n_groups = p->n_groups, .hostname = o->hostname,
    .network = o->network, .idmap = &sb->map, .seccomp = sb->filter, .output = print_line,
    .record_chown = log_chown, .cancel_fd = o->cancel.rfd, .cancel_signal = o->signal_flag,
  };
  if (ovl)
    {
      cfg.rootfs = NULL;
      cfg.rootfs_fuse = overlay_serve_cb;
      cfg.rootfs_fuse_ctx = ovl;
      cfg.record_chown = overlay_record_chown_cb;
      cfg.record_chown_ctx = ovl;
      cfg.owner = overlay_owner_cb;
      cfg.owner_ctx = ovl;
    }
  int sig = 0;
  cfg.interrupted = &sig;
  sandbox_result res;
  int r = sandbox_run (&cfg, &res, err);
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
    }
  if (r < 0)
    return sig ? 128 + sig : -1;
  return command_status (p, &res, err);
}

/* ---- --rootfs DIR ---- */

static int
parse_numeric_user (const char *value, uid_t *uid, gid_t *gid, kiln_error **err)
{
  autofree char *u = xstrdup (value);
  char *colon = strchr (u, ':');
  unsigned long n_uid, n_gid = 0;
  if (colon)
    *colon = '\0';
  if (run_opts_parse_id (u, &n_uid) < 0 || (colon && run_opts_parse_id (colon + 1, &n_gid) < 0))
    return kiln_error_make (err, 0, "--user '%s': with --rootfs expected numeric UID[:GID] (names are "
                                    "resolved only in an image)", value);
  *uid = (uid_t) n_uid;
  *gid = (gid_t) n_gid;
  return 0;
}


/* --isolation: whether this run goes under the tracer. auto: when user
 * namespaces are denied, saying why (sandbox_choose_isolation); an image
 * (or --overlay) needs the userns mode, whose path probes for itself. */
static int
use_ptrace (const run_opts *o, bool *out, kiln_error **err)
{
  *out = false;
  if (o->isolation == SANDBOX_ISOLATION_USERNS
      || (o->isolation == SANDBOX_ISOLATION_AUTO && (!o->rootfs || o->overlay)))
    return 0;
  sandbox_probe_req pr = { .fuse = false, .network = o->network };
  sandbox_isolation got;
  if (sandbox_choose_isolation (&pr, o->isolation, &got, err) < 0)
    return -1;
  *out = got == SANDBOX_ISOLATION_PTRACE;
  return 0;
}

/* Under the tracer on root: a plain directory (od NULL), or overlay_dir
 * od's root with its ops. */
static int
execute_ptrace (const run_opts *o, const run_plan *p, const char *root, overlay_dir *od, kiln_error **err)
{
  seccomp_filter *filter = NULL;
  if (load_filter (o, SECCOMP_PROFILE_PLAIN, &filter, err) < 0)
    return -1;
  sandbox_net_mode net = o->network;
  if (net == SANDBOX_NET_PRIVATE)
    {
      log_info ("ptrace isolation has no network namespace of its own: the step shares the host's network "
                "(--network host; --network none forbids it)");
      net = SANDBOX_NET_HOST;
    }
  run_ptrace_args a = {
    .rootfs = root, .ops = od ? build_ptrace_ops () : NULL, .ops_ctx = od, .argv = p->argv, .env = p->env, .cwd = p->cwd, .uid = p->uid, .gid = p->gid,
    .hostname = o->hostname, .network = net, .seccomp = filter, .output = print_line,
    .cancel_fd = o->cancel.rfd, .cancel_signal = o->signal_flag,
  };
  sandbox_result res;
  int r = run_ptrace (&a, &res, err);
  seccomp_filter_free (filter);
  if (r < 0)
    return o->signal_flag && *o->signal_flag ? 128 + *o->signal_flag : -1;
  return command_status (p, &res, err);
}

static int
do_run_rootfs_ptrace (run_opts *o, char **cmd, int rootfd, kiln_error **err)
{
  if (o->rootfs_ro)
    return kiln_error_make (err, ENOTSUP, "--isolation ptrace with --rootfs-readonly: not yet");
  run_plan p = { 0 };
  if (o->user && parse_numeric_user (o->user, &p.uid, &p.gid, err) < 0)
    return -1;
  p.argv = strv_dup (cmd);
  p.env = strv_dup (o->env);
  sandbox_env_ensure_path (&p.env);
  p.cwd = o->workdir ? xstrdup (o->workdir) : NULL;
  autostrv char **created = NULL;
  int r;
  if (sandbox_prepare_mountpoints (rootfd, &created, err) < 0)
    r = kiln_error_wrap (err, "preparing '%s'", o->rootfs);
  else
    r = execute_ptrace (o, &p, o->rootfs, NULL, err);
  sandbox_remove_mountpoints (rootfd, created);
  run_plan_clear (&p);
  return r;
}

static int
do_run_rootfs (run_opts *o, char **cmd, kiln_error **err)
{
  autoclose int rootfd = open (o->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return kiln_error_make (err, errno, "open root filesystem '%s'", o->rootfs);
  bool ptrace;
  if (use_ptrace (o, &ptrace, err) < 0)
    return -1;
  /* (With --overlay the step runs on overlay_dir: execute.) */
  if (ptrace && !o->overlay)
    return do_run_rootfs_ptrace (o, cmd, rootfd, err);
  run_plan p = { 0 };
  if (o->user && parse_numeric_user (o->user, &p.uid, &p.gid, err) < 0)
    return -1;
  run_sandbox sb;
  if (run_sandbox_init (o, &sb, err) < 0)
    return -1;
  p.argv = strv_dup (cmd);
  p.env = strv_dup (o->env);
  sandbox_env_ensure_path (&p.env);
  p.cwd = o->workdir ? xstrdup (o->workdir) : NULL;
  int r;
  if (o->overlay)
    {
      scratch scr = { -1, NULL, -1 };
      overlay_lower *lower = NULL;
      const char *paths[] = { o->rootfs };
      if (scratch_make (&scr, err) < 0)
        r = -1;
      else if (overlay_lower_open_dirs (paths, 1, &lower, err) < 0)
        r = kiln_error_wrap (err, "opening '%s' as the overlay's lower layer", o->rootfs);
      else
        r = execute (o, &p, &sb, lower, scr.fd, err);
      scratch_remove (&scr);
    }
  else
    {
      autostrv char **created = NULL;
      if (sandbox_prepare_mountpoints (rootfd, &created, err) < 0)
        r = kiln_error_wrap (err, "preparing '%s'", o->rootfs);
      else
        r = execute (o, &p, &sb, NULL, -1, err);
      sandbox_remove_mountpoints (rootfd, created);
    }
  seccomp_filter_free (sb.filter);
  run_plan_clear (&p);
  return r;
}

/* ---- images ---- */

/* A build result: refs/build/NAME as `kiln build` records it (its -t,
 * --oci-layout or "latest"), tried as typed and in normalised form. */
static int
find_built (store *s, const char *image, const registry_ref *ref, store_fetch_result *fr, kiln_error **err)
{
  autofree char *full = ref ? registry_ref_string (ref) : NULL;
  const char *names[] = { image, full };
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      if (names[i] == NULL || (i > 0 && strcmp (names[i], image) == 0))
        continue;
      autofree char *refname = xasprintf ("build/%s", names[i]);
      char digest[DIGEST_STRING_SIZE];
      int k = store_get_ref (s, refname, digest, err);
      if (k < 0)
        return -1;
      if (k == 0)
        continue;
      k = local_image_from_store (s, digest, fr, err);
      if (k < 0)
        return kiln_error_wrap (err, "image '%s' (refs/%s)", image, refname);
      if (k > 0)
        {
          log_info ("image: '%s' built by kiln, manifest %s", image, digest);
          return 1;
        }
      log_warn ("refs/%s names manifest %s, which is no longer complete in the store", refname, digest);
    }
  return 0;
}

/* IMAGE (or --oci-layout) into the store: see the help text for the order. */
static int
resolve_image (const run_opts *o, store *s, const char *image, store_fetch_result *fr, kiln_error **err)
{
  autofree char *os = NULL, *arch = NULL, *variant = NULL;
  if (o->platform && platform_parse (o->platform, &os, &arch, &variant, err) < 0)
    return kiln_error_wrap (err, "--platform");
  if (o->layout)
    {
      autofree char *dir = NULL, *tag = NULL;
      ocilayout_split_arg (o->layout, &dir, &tag);
      if (local_image_from_layout (s, dir, tag, os, arch, variant, fr, err) < 0)
        return -1;
      log_info ("image: OCI layout '%s', manifest %s", o->layout, fr->manifest_digest);
      return 0;
    }
  autoref registry_ref *ref = NULL;
  autoerror kiln_error *perr = NULL;
  bool valid = registry_ref_parse (image, &ref, &perr) >= 0;
  if (o->pull != STORE_PULL_ALWAYS)
    {
      int k = find_built (s, image, valid ? ref : NULL, fr, err);
      if (k != 0)
        return k < 0 ? -1 : 0;
    }
  if (!valid)
    {
      autofree char *why = kiln_error_string (perr);
      return kiln_error_make (err, EINVAL, "image '%s': no kiln build of that name in store '%s', and not an image "
                              "reference (%s)", image, s->root, why);
    }
  autofree char *full = registry_ref_string (ref);
  if (o->pull != STORE_PULL_ALWAYS)
    {
      int k = store_image_lookup (s, ref, os, arch, variant, fr, err);
      if (k < 0)
        return kiln_error_wrap (err, "image '%s'", image);
      if (k > 0)
        {
          log_info ("image: %s from the store, manifest %s", full, fr->manifest_digest);
          return 0;
        }
    }
  if (o->pull == STORE_PULL_NEVER)
    return kiln_error_make (err, ENOENT, "image '%s' is not in store '%s' (--pull=never)", image, s->root);
  log_info ("pulling %s into store '%s'", full, s->root);
  if (store_fetch_image_mirrored (s, &o->reg, o->mirrors, ref, os, arch, variant, false, fr, err) < 0)
    return kiln_error_wrap (err, "image '%s'", image);
  return 0;
}

/* Set KEY=VALUE in env, replacing an entry with the same key. */
static void
env_put (char ***env, const char *kv)
{
  size_t kl = strcspn (kv, "=");
  for (char **e = *env; e && *e; e++)
    if (strncmp (*e, kv, kl) == 0 && (*e)[kl] == '=')
      {
        free (*e);
        *e = xstrdup (kv);
        return;
      }
  strv_push (env, kv);
}

/* argv as docker run builds it: Entrypoint (or --entrypoint) followed by
 * the command given, else by the image's Cmd (dropped with --entrypoint). */
static int
plan_argv (const run_opts *o, const image_spec *spec, char **cmd, run_plan *p, const char *image, kiln_error **err)
{
  if (o->entrypoint_set)
    {
      if (*o->entrypoint)
        strv_push (&p->argv, o->entrypoint);
    }
  else
    for (char **e = spec->entrypoint; e && *e; e++)
      strv_push (&p->argv, *e);
  if (cmd && cmd[0])
    for (char **c = cmd; *c; c++)
      strv_push (&p->argv, *c);
  else if (!o->entrypoint_set)
    for (char **c = spec->cmd; c && *c; c++)
      strv_push (&p->argv, *c);
  if (p->argv == NULL || p->argv[0] == NULL || p->argv[0][0] == '\0')
    return kiln_error_make (err, 0, "image '%s' has no Entrypoint or Cmd: give a COMMAND", image);
  return 0;
}

static int
plan_image (const run_opts *o, const image_spec *spec, overlay_lower *lower, char **cmd, const char *image,
            run_plan *p, kiln_error **err)
{
  const char *user = o->user ? o->user : spec->user && *spec->user ? spec->user : "0";
  autofree char *home = NULL;
  if (rootfs_resolve_user (lower, user, &p->uid, &p->gid, &p->groups, &p->n_groups, &home, err) < 0)
    return kiln_error_wrap (err, "%s '%s'", o->user ? "--user" : "the image's User", user);
  p->env = strv_dup (spec->env);
  for (char **e = o->env; e && *e; e++)
    env_put (&p->env, *e);
  /* Docker sets HOME from the user's passwd entry unless the image or -e does. */
  bool has_home = false;
  for (char **e = p->env; e && *e; e++)
    has_home |= strncmp (*e, "HOME=", 5) == 0;
  if (!has_home)
    {
      autofree char *h = xasprintf ("HOME=%s", home && *home ? home : "/");
      strv_push (&p->env, h);
    }
  sandbox_env_ensure_path (&p->env);
  const char *wd = o->workdir ? o->workdir : spec->working_dir && *spec->working_dir ? spec->working_dir : "/";
  if (wd[0] != '/')
    return kiln_error_make (err, EINVAL, "image '%s': WorkingDir '%s' is not absolute", image, wd);
  p->cwd = xstrdup (wd);
  return plan_argv (o, spec, cmd, p, image, err);
}

static int
do_run_image (run_opts *o, const char *image, char **cmd, kiln_error **err)
{
  const char *name = image ? image : o->layout;
  autostore store *s = NULL;
  if (store_open (o->common.root, 0, &s, err) < 0)
    return -1;
  s->remove_fallback = sandbox_rm_at_fallback;
  store_fetch_result fr = { 0 };
  if (resolve_image (o, s, image, &fr, err) < 0)
    return -1;
  image_spec spec;
  image_spec_init (&spec);
  run_plan p = { 0 };
  run_sandbox sb = { .filter = NULL };
  overlay_lower *lower = NULL;
  char **ids = NULL;
  char *tmpname = NULL;
  int r = -1;
  if (image_spec_from_config (&spec, fr.config, fr.config_len, err) < 0)
    {
      kiln_error_wrap (err, "config of image '%s'", name);
      goto out;
    }
  const char *hos, *harch, *hvar;
  platform_host (&hos, &harch, &hvar);
  if (fr.arch && strcmp (fr.arch, harch) != 0)
    log_warn ("image '%s' is for linux/%s on a linux/%s host: its programs need binfmt_misc emulation", name,
              fr.arch, harch);
  ids = xcalloc (fr.n_layers + 1, sizeof *ids);
  for (size_t i = 0; i < fr.n_layers; i++)
    ids[i] = fr.layers[i].diff_id;
  if (overlay_lower_open_store (s, ids, fr.n_layers, &lower, err) < 0)
    {
      kiln_error_wrap (err, "layers of image '%s'", name);
      goto out;
    }
  if (plan_image (o, &spec, lower, cmd, name, &p, err) < 0 || run_sandbox_init (o, &sb, err) < 0)
    goto out;
  int tmpfd = -1;
  if (store_mktemp (s, "run-", &tmpname, &tmpfd, err) >= 0)
    {
      r = execute (o, &p, &sb, steal_pointer (&lower), tmpfd, err);
      close (tmpfd);
      store_rmtemp (s, tmpname);
    }
out:
  free (tmpname);
  free (ids);
  overlay_lower_free (lower);
  seccomp_filter_free (sb.filter);
  run_plan_clear (&p);
  image_spec_free (&spec);
  store_fetch_result_clear (&fr);
  return r;
}

int
cmd_run_main (int argc, char **argv, kiln_error **err)
{
  run_opts o;
  char **pos = NULL;
  int r = run_opts_parse (argc, argv, &o, &pos, err);
  if (r <= 0)
    {
      run_opts_free (&o);
      return r < 0 ? KILN_EXIT_USAGE : KILN_EXIT_OK;
    }
  int rc;
  /* Signals become a cancellation the step's supervisor sees; every path
   * out of the run then unwinds normally, removing the upper and mounts. */
  o.signal_flag = sigcancel_open (&o.cancel);
  o.reg.cancel = o.signal_flag;
  if (o.rootfs)
    rc = do_run_rootfs (&o, pos, err);
  else if (o.layout)
    rc = do_run_image (&o, NULL, pos, err);
  else
    {
      /* A "--" may also separate IMAGE from the command. */
      char **cmd = pos + 1;
      if (cmd[0] && strcmp (cmd[0], "--") == 0)
        cmd++;
      rc = do_run_image (&o, pos[0], cmd, err);
    }
  if (rc > 0)
    kiln_error_wrap (err, "kiln run");
  else if (rc < 0)
    {
      kiln_error_wrap (err, "kiln run");
      rc = sigcancel_exit_code (KILN_EXIT_FAILURE);
    }
  sigcancel_close (&o.cancel);
  run_opts_free (&o);
  return rc;
}
