/* build_run.c - RUN steps: the stage's shared FUSE mount (a run session),
 * the sandbox's ID mapping and seccomp filter, the step's user,
 * environment and --mount mounts, and the commit of the overlay's write log
 * as the step's layer (see build_internal.h). */
#include "build/build_internal.h"
#include "build/rootfs.h"
#include "build/run_mounts.h"
#include "overlay/overlay.h"
#include "registry/manifest.h"
#include "sandbox/seccomp_profile.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct run_ctx
{
  build_exec *b;
  overlay *ovl;
  int step_id;               /* progress step the output belongs to */
} run_ctx;

static void
run_output (void *ctx, sandbox_stream stream, const char *line, size_t len)
{
  run_ctx *rc = ctx;
  progress_step_output_id (rc->b->o.progress, rc->step_id, stream == SANDBOX_STDERR ? 2 : 1, line, len);
}

/* ---- the stage's mount ---- */

/* Consecutive RUN steps of a stage share one overlay mount (a
 * sandbox_session): the overlay's commit starts a fresh upper on the same
 * mount, and the kernel keeps its dentry, attribute and page caches from
 * step to step. The view is the stage's layers: its own commits are in it
 * already, and layers the stage gained otherwise (a COPY, a cached step)
 * are added to it before the next RUN (overlay_add_layers). A failure, or
 * a stage whose layers are no longer those the view was made of
 * (--single-snapshot), ends it, and the next RUN mounts the stage's layers
 * afresh. */
struct run_session
{
  sandbox_session *sess;
  char *tmpname;       /* store temp dir: the uppers and the mount point */
  size_t n_layers;     /* the stage's layer count the view shows */
  char **ids;          /* their diffIDs */
  unsigned steps;      /* RUN steps run on it */
  run_ctx rc;          /* its overlay is rc.ovl */
};

/* The view shows the stage's layers as they are now. */
static void
session_shows (run_session *rs, const stage_state *st)
{
  strv_free (rs->ids);
  rs->ids = xcalloc (st->n_layers + 1, sizeof *rs->ids);
  for (size_t i = 0; i < st->n_layers; i++)
    rs->ids[i] = xstrdup (st->layers[i].diff_id);
  rs->n_layers = st->n_layers;
}

/* The stage's layers are those the view shows, and possibly more above. */
static bool
session_below (const run_session *rs, const stage_state *st)
{
  if (st->n_layers < rs->n_layers)
    return false;
  for (size_t i = 0; i < rs->n_layers; i++)
    if (strcmp (rs->ids[i], st->layers[i].diff_id))
      return false;
  return true;
}

void
build_run_session_end (build_exec *b, stage_state *st)
{
  build_run_ptrace_end (b, st);
  run_session *rs = st->rs;
  if (!rs)
    return;
  st->rs = NULL;
  /* The namespaces first (the mount and the FUSE connection go with them,
   * while the session loop still answers), then the loop. */
  sandbox_session_free (rs->sess);
  overlay_free (rs->rc.ovl);
  if (rs->tmpname)
    store_rmtemp (b->o.store, rs->tmpname);
  free (rs->tmpname);
  strv_free (rs->ids);
  free (rs);
}

/* The stage's mount for the next RUN step, with that step's owner for new
 * files and mask paths. Takes lower (the stage's layers), also on failure. */
static run_session *
run_session_get (build_exec *b, stage_state *st, overlay_lower *lower, uid_t uid, gid_t gid,
                 const char *const *masks, kiln_error **err)
{
  if (st->rs && !session_below (st->rs, st))
    build_run_session_end (b, st);
  if (st->rs && st->rs->n_layers < st->n_layers)
    {
      size_t added = st->n_layers - st->rs->n_layers;
      if (overlay_add_layers (st->rs->rc.ovl, lower, st->rs->n_layers) < 0)
        {
          log_debug ("the stage's mount cannot show the %zu layer%s added since: a new mount", added,
                     added == 1 ? "" : "s");
          build_run_session_end (b, st);
        }
      else
        {
          log_debug ("added %zu layer%s to the stage's mount", added, added == 1 ? "" : "s");
          session_shows (st->rs, st);
        }
    }
  if (st->rs)
    {
      overlay_lower_free (lower);
      overlay_begin_step (st->rs->rc.ovl, uid, gid, masks);
      log_debug ("RUN on the stage's mount of %zu layers, step %u on it", st->rs->n_layers, ++st->rs->steps);
      return st->rs;
    }
  run_session *rs = xzalloc (sizeof *rs);
  rs->rc.b = b;
  autoclose int tmpfd = -1;
  if (store_mktemp (b->o.store, "run-", &rs->tmpname, &tmpfd, err) < 0)
    {
      overlay_lower_free (lower);
      free (rs);
      return NULL;
    }
  st->rs = rs;
  overlay_config oc = {
    .lower = lower,
    .scratch_dirfd = tmpfd,
    .id_mode = b->idmap.mode == SANDBOX_USERNS_SINGLE ? OVERLAY_IDS_SINGLE : OVERLAY_IDS_FULL,
    .present_uid = 0,
    .present_gid = 0,
    .create_uid = uid,
    .create_gid = gid,
    .mask_paths = masks,
  };
  if (overlay_new (&oc, &rs->rc.ovl, err) < 0)
    goto fail;
  sandbox_session_config sc = { .idmap = &b->idmap, .rootfs_fuse = overlay_serve_cb, .rootfs_fuse_ctx = rs->rc.ovl,
                                .dirfd = tmpfd, .cancel_fd = b->o.cancel ? b->o.cancel->rfd : -1,
                                .cancel_signal = b->o.signal_flag, .network = b->o.network };
  if (sandbox_session_new (&sc, &rs->sess, err) < 0)
    goto fail;
  session_shows (rs, st);
  rs->steps = 1;
  log_debug ("RUN on a new mount of the stage's %zu layers", rs->n_layers);
  return rs;
fail:
  build_run_session_end (b, st);
  return NULL;
}

/* ---- the sandbox ---- */

static int ensure_sandbox_locked (build_exec *b, kiln_error **err);

/* Under ptrace isolation there is no network namespace: the default
 * private network becomes the host's (the container's), said in the log;
 * asking for a private one is an error. */
static int
ptrace_network (build_exec *b, kiln_error **err)
{
  if (b->o.network != SANDBOX_NET_PRIVATE)
    return 0;
  if (b->o.network_set)
    return kiln_error_make (err, 0, "--network private needs a network namespace, which --isolation=ptrace "
                            "cannot make: pass --network host (the container's network) or none");
  b->o.network = SANDBOX_NET_HOST;
  log_info ("--isolation=ptrace: RUN steps share the container's network (no network namespace here; "
            "--network none cuts them off)");
  return 0;
}

/* The ID mapping, the limits' mechanism and the compiled seccomp filter,
 * made once per build. */
static int
ensure_sandbox (build_exec *b, kiln_error **err)
{
  pthread_mutex_lock (&b->lock);
  int r = ensure_sandbox_locked (b, err);
  pthread_mutex_unlock (&b->lock);
  return r;
}

static int
ensure_sandbox_locked (build_exec *b, kiln_error **err)
{
  if (!b->idmap_ready)
    {
      sandbox_probe_req pr = { .fuse = true, .network = b->o.network };
      if (sandbox_choose_isolation (&pr, b->o.isolation, &b->isolation, err) < 0)
        return -1;
      if (b->isolation == SANDBOX_ISOLATION_PTRACE)
        {
          if (ptrace_network (b, err) < 0)
            return -1;
          /* The step runs as kiln's own ids; its container ids are
           * kiln's records, as in single mode. */
          b->idmap = (sandbox_idmap){ .mode = SANDBOX_USERNS_SINGLE, .host_uid = geteuid (),
                                      .host_gid = getegid () };
          b->idmap_ready = true;
        }
      else
        {
          if (sandbox_idmap_resolve (b->o.userns, 0, &b->idmap, err) < 0)
            return -1;
          b->idmap_ready = true;
          autofree char *d = sandbox_idmap_describe (&b->idmap);
          log_info ("user namespace: %s", d);
        }
    }
  if (!b->limiter)
    {
      /* Chosen and logged once: which mechanism applies depends on the
       * machine (docs/architecture.md, "Resource limits"). */
      b->limiter = sandbox_limiter_new (&b->o.limits);
      autofree char *d = sandbox_limiter_describe (b->limiter);
      log_info ("resource limits: %s", d);
    }
  if (!b->filter_ready)
    {
      b->filter_ready = true;
      if (b->o.seccomp_policy && strcmp (b->o.seccomp_policy, "unconfined") == 0)
        {
          log_warn ("seccomp disabled (--seccomp-policy=unconfined): RUN steps may use every system call");
          return 0;
        }
      b->filter_mode = b->idmap.mode == SANDBOX_USERNS_SINGLE && b->isolation != SANDBOX_ISOLATION_PTRACE
                         ? SECCOMP_PROFILE_FAKE_IDS
                         : SECCOMP_PROFILE_PLAIN;
      if (seccomp_profile_load (b->o.seccomp_policy, &b->profile, &b->profile_name, err) < 0)
        return -1;
    }
  return 0;
}

int
build_run_filter (build_exec *b, bool lazy_net, seccomp_filter **out, kiln_error **err)
{
  *out = NULL;
  pthread_mutex_lock (&b->lock);
  int r = 0;
  seccomp_filter **f = lazy_net ? &b->filter_lazy_net : &b->filter;
  if (b->profile && !*f)
    r = seccomp_profile_compile_for (b->profile, b->profile_name, b->filter_mode, lazy_net, f, err);
  *out = *f;
  pthread_mutex_unlock (&b->lock);
  return r;
}

/* A RUN for another architecture needs binfmt_misc emulation (e.g. Debian's
 * qemu-user-static registers /proc/sys/fs/binfmt_misc/qemu-aarch64). The
 * stage's real architecture is its base image's. */
/* Under ptrace isolation the tracer handles the system calls of native
 * programs only (its seccomp filter and syscall tables are the host's; a
 * foreign ELF would be qemu's guest, whose calls qemu makes on its behalf):
 * tracer_exec refuses foreign ELF files, so say so before the step. */
static int
check_foreign (const char *arch, sandbox_isolation iso, kiln_error **err)
{
  const char *os, *host, *variant;
  platform_host (&os, &host, &variant);
  if (iso != SANDBOX_ISOLATION_PTRACE || strcmp (arch, host) == 0)
    return 0;
  return kiln_error_make (err, ENOEXEC, "RUN steps for linux/%s cannot run under --isolation=ptrace on this linux/%s "
                          "host: the tracer runs programs of its own architecture only (binfmt_misc emulation needs "
                          "--isolation=userns)", arch, host);
}

static int
check_emulation (build_exec *b, const stage_state *st, kiln_error **err)
{
  if (!st->spec.architecture)
    return 0;
  if (check_foreign (st->spec.architecture, b->isolation, err) < 0)
    return -1;
  return sandbox_binfmt_check (st->spec.architecture, err);
}

int
build_exec_check_emulation (build_exec *b, const plan *p, kiln_error **err)
{
  for (size_t i = 0; i < p->n_stages; i++)
    {
      const plan_stage *ps = &p->stages[i];
      bool runs = false;
      for (size_t k = 0; k < ps->n_steps && !runs; k++)
        runs = ps->steps[k].kind == DF_RUN;
      if (!ps->needed || !runs)
        continue;
      autofree char *os = NULL, *arch = NULL, *variant = NULL;
      if (platform_parse (ps->platform, &os, &arch, &variant, err) < 0)
        return -1;
      if (check_foreign (arch, b->o.isolation, err) < 0 || sandbox_binfmt_check (arch, err) < 0)
        return ps->name ? kiln_error_wrap (err, "stage '%s'", ps->name) : kiln_error_wrap (err, "stage %zu", i);
    }
  return 0;
}

/* ---- the step's environment and mounts ---- */

static char *
join_argv (char **v)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  for (char **a = v; a && *a; a++)
    {
      if (a != v)
        strbuf_addch (&sb, ' ');
      strbuf_adds (&sb, *a);
    }
  return strbuf_detach (&sb, NULL);
}

/* The step's environment: the stage's ENV, HOME, the build-args ENV does
 * not set, PATH. */
static char **
run_env (const stage_state *st, const plan_step *s, const char *home)
{
  char **env = strv_dup (st->spec.env);
  /* Docker sets HOME from the user's passwd entry unless ENV sets it. */
  bool has_home = false;
  for (char **e = env; e && *e; e++)
    has_home |= strncmp (*e, "HOME=", 5) == 0;
  if (!has_home)
    {
      autofree char *h = xasprintf ("HOME=%s", home && *home ? home : "/");
      strv_push (&env, h);
    }
  for (char **e = s->build_env; e && *e; e++)
    {
      size_t kl = strcspn (*e, "=");
      bool have = false;
      for (char **x = env; x && *x && !have; x++)
        have = strncmp (*x, *e, kl) == 0 && (*x)[kl] == '=';
      if (!have)
        strv_push (&env, *e);
    }
  sandbox_env_ensure_path (&env);
  return env;
}

/* RUN bind mounts from=X: a built stage (by name or index), else an image
 * reference (for the running stage's platform). */
typedef struct from_ctx
{
  build_exec *b;
  const stage_state *st;
} from_ctx;

static int
open_from (void *ctx, const char *from, overlay_lower **out, kiln_error **err)
{
  from_ctx *fc = ctx;
  build_exec *b = fc->b;
  int i = build_from_find_stage (b, from);
  if (i < 0)
    return build_from_image_lower (b, fc->st, from, out, err);
  if (!b->stages[i].built)
    return kiln_error_make (err, EINVAL, "stage '%s' is not built before this step", from);
  return build_from_stage_lower (b, &b->stages[i], out, err);
}

/* The step's --mount mounts and kiln's own files on its /dev (a heredoc
 * script). Nothing to release on failure. */
static int
run_prepare_mounts (build_exec *b, stage_state *st, const plan_step *s, run_mounts *mounts, kiln_error **err)
{
  from_ctx fc = { b, st };
  run_mounts_env menv = { b->o.store, b->ctxfd, &b->idmap, b->o.secrets, st->spec.working_dir, open_from, &fc,
                          b->isolation == SANDBOX_ISOLATION_PTRACE, b->o.cache_mounts,
                          b->o.cancel ? b->o.cancel->rfd : -1 };
  if (run_mounts_prepare (&menv, s, mounts, err) < 0)
    return -1;
  /* (apt's switch to its _apt user works in every mode: single mode's
   * supervisor keeps the ids it switches to, sandbox_creds.c.) */
  if (s->argv && s->argv[0] && strncmp (s->argv[0], "/dev/pipes/", 11) == 0 && s->n_heredocs
      && run_mounts_add_script (s->argv[0] + 11, s->heredocs[0].body, mounts, err) < 0)
    {
      run_mounts_release (mounts);
      return -1;
    }
  return 0;
}

/* The overlay's mask paths: the sandbox's own mount points and the step's
 * mount targets. The strings are in *mask_store. */
static const char **
run_masks (const run_mounts *mounts, char ***mask_store)
{
  const sandbox_mountpoint *mps;
  size_t n_mps = sandbox_mountpoints (&mps);
  for (size_t i = 0; i < n_mps; i++)
    {
      autofree char *m = xasprintf ("%s%s", mps[i].path, mps[i].is_dir ? "/" : "");
      strv_push (mask_store, m);
    }
  for (char **m = mounts->masks; m && *m; m++)
    strv_push (mask_store, *m);
  const char **masks = xcalloc (strv_len (*mask_store) + 1, sizeof *masks);
  for (size_t i = 0; (*mask_store)[i]; i++)
    masks[i] = (*mask_store)[i];
  return masks;
}

/* ---- running and committing ---- */

/* A step killed (or failed after an OOM kill) at one of its limits: say
 * which, with the flag that sets it. */
static int
limit_error (build_exec *b, stage_state *st, const sandbox_result *res, kiln_error **err)
{
  char mb[UNITS_BUF_SIZE];
  autofree char *tail = progress_tail_id (b->o.progress, st->step_id);
  const char *more = *tail ? "; last output:\n" : "";
  if (res->limit == SANDBOX_LIMIT_MEMORY)
    return kiln_error_make (err, 0, "RUN step killed: out of memory (--memory %s)%s%s",
                            sandbox_format_memory (b->o.limits.memory, mb), more, tail);
  return kiln_error_make (err, 0, "RUN step killed: it reached its process limit (--pids-limit %" PRIu64 ")%s%s",
                          b->o.limits.pids, more, tail);
}

/* The step ran: its exit status (or the limit that killed it) decides. */
static int
step_result (build_exec *b, stage_state *st, const plan_step *s, const sandbox_result *res, kiln_error **err)
{
  if (res->limit != SANDBOX_LIMIT_NONE)
    return limit_error (b, st, res, err);
  if (!res->exited || res->status != 0)
    {
      autofree char *what = sandbox_result_describe (res);
      autofree char *tail = progress_tail_id (b->o.progress, st->step_id);
      autofree char *cmd = join_argv (s->argv);
      int r = kiln_error_make (err, 0, "command '%s' %s%s%s", cmd, what, *tail ? "; last output:\n" : "", tail);
      /* kiln exits with the step's status (kaniko does), 128+N for a signal
       * as a shell reports it. */
      (*err)->exit_code = res->exited ? res->status : 128 + res->status;
      return r;
    }
  return 0;
}

/* Run the step in the sandbox sc describes; a command that did not exit 0
 * is an error with the end of its output. */
static int
run_in_sandbox (build_exec *b, stage_state *st, const plan_step *s, sandbox_config *sc, bool insecure,
                kiln_error **err)
{
  if (insecure)
    {
      /* Every capability in the step's user namespace, no seccomp filter;
       * single mode keeps the filter, whose supervisor fakes chown. */
      sc->all_caps = true;
      if (b->filter_mode != SECCOMP_PROFILE_FAKE_IDS)
        sc->seccomp = NULL;
      log_warn ("RUN --security=insecure: all capabilities in the step's user namespace%s",
                sc->seccomp ? "" : ", no seccomp filter");
    }
  sandbox_result res;
  double t0 = now_s ();
  if (sandbox_run (sc, &res, err) < 0)
    return -1;
  add_time (b, &b->res->t_run, now_s () - t0);
  return step_result (b, st, s, &res, err);
}

/* Write the step's cached data back before the commit. A write-back the
 * overlay refused (a file handle that outlived its step, written through
 * from another stage's process: overlay_commit) is reported to the next
 * syncfs of the mount as EBADF, like any write-back error. It is not this
 * step's error (the writer got it too): sync again, which reports only the
 * errors since. */
static int
sync_root (run_session *rs, kiln_error **err)
{
  for (int tries = 1;; tries++)
    {
      if (sandbox_session_sync (rs->sess, err) == 0)
        return 0;
      if (tries == 3 || (*err)->status != EBADF || overlay_refused_writes (rs->rc.ovl) == 0)
        return -1;
      log_warn ("RUN: writes through a file handle of an earlier step (passed to another process) were refused");
      kiln_error_clear (err);
    }
}

int
build_run_commit_changes (build_exec *b, stage_state *st, overlay_changes *changes, double t0,
                          const char *created_by, const char *key, kiln_error **err)
{
  layer_change *lch = NULL;
  size_t n_lch = 0;
  if (overlay_changes_to_layer (changes, &lch, &n_lch, err) < 0)
    {
      overlay_changes_free (changes);
      return -1;
    }
  add_time (b, &b->res->t_snapshot, now_s () - t0);
  int ret = build_exec_commit_layer (b, st, lch, n_lch, created_by, key, true, err);
  free (lch);
  overlay_changes_free (changes);
  return ret;
}

/* The overlay's write log of the step becomes its layer, under key. */
static int
run_commit (build_exec *b, stage_state *st, const char *created_by, run_session *rs, const char *key,
            kiln_error **err)
{
  double t0 = now_s ();
  if (sync_root (rs, err) < 0)
    return -1;
  overlay_changes *changes = NULL;
  if (overlay_commit (rs->rc.ovl, &changes, err) < 0)
    return -1;
  int ret = build_run_commit_changes (b, st, changes, t0, created_by, key, err);
  /* --ignore-path leaves changes out of the layer, which the view still
   * shows: the next step gets a fresh mount of the stage's layers. */
  if (ret == 0 && !b->o.ignore_paths)
    session_shows (rs, st);
  return ret;
}

int
build_run_step (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err)
{
  const char *sec = plan_step_flag (s, "security");
  bool insecure = sec && strcmp (sec, "insecure") == 0;
  if (insecure && !b->o.allow_insecure)
    return kiln_error_make (err, EPERM, "RUN --security=insecure needs the entitlement: pass --allow "
                            "security.insecure (as BuildKit does)");
  char key[DIGEST_STRING_SIZE] = "";
  if (build_key_run (b, st, s, key, err) < 0)
    return -1;
  autofree char *joined = join_argv (s->argv);
  autofree char *created_by = xasprintf ("RUN %s # kiln", joined);
  int hit = build_key_lookup (b, st, key, true, created_by, err);
  if (hit != 0)
    return hit < 0 ? -1 : 0;
  if (ensure_sandbox (b, err) < 0)
    return -1;
  /* After ensure_sandbox: ptrace isolation turns the default network into
   * the host's. */
  sandbox_net_mode net = b->o.network;
  const char *nf = plan_step_flag (s, "network");
  if (nf && strcmp (nf, "none") == 0)
    net = SANDBOX_NET_NONE;
  else if (nf && strcmp (nf, "host") == 0)
    net = SANDBOX_NET_HOST;
  if (check_emulation (b, st, err) < 0)
    return -1;

  overlay_lower *lower = NULL;
  if (build_from_stage_lower (b, st, &lower, err) < 0)
    return -1;
  uid_t uid = 0;
  gid_t gid = 0;
  autofree gid_t *groups = NULL;
  size_t n_groups = 0;
  autofree char *home = NULL;
  if (rootfs_resolve_user (lower, st->spec.user && *st->spec.user ? st->spec.user : "0", &uid, &gid, &groups,
                           &n_groups, &home, err) < 0)
    {
      overlay_lower_free (lower);
      return kiln_error_wrap (err, "USER");
    }
  autostrv char **env = run_env (st, s, home);
  run_mounts mounts;
  if (run_prepare_mounts (b, st, s, &mounts, err) < 0)
    {
      overlay_lower_free (lower);
      return -1;
    }
  autostrv char **mask_store = NULL;
  autofree const char **masks = run_masks (&mounts, &mask_store);

  autofree char *cwd = build_meta_clean_abs (st->spec.working_dir && *st->spec.working_dir ? st->spec.working_dir
                                                                                           : "/");
  if (b->isolation == SANDBOX_ISOLATION_PTRACE)
    {
      sandbox_result res;
      build_run_args ra = { .lower = lower, .uid = uid, .gid = gid, .groups = groups, .n_groups = n_groups,
                            .argv = s->argv, .env = env, .cwd = cwd, .mounts = mounts.v, .n_mounts = mounts.n,
                            .masks = masks, .net = net, .insecure = insecure, .res = &res };
      int ret = build_run_ptrace (b, st, &ra, err);
      if (ret == 0)
        ret = step_result (b, st, s, &res, err);
      if (ret == 0)
        ret = build_run_ptrace_commit (b, st, created_by, key, err);
      if (ret < 0 || b->o.ignore_paths)
        build_run_ptrace_end (b, st);
      run_mounts_release (&mounts);
      return ret;
    }
  run_session *rs = run_session_get (b, st, lower, uid, gid, masks, err);
  if (!rs)
    {
      run_mounts_release (&mounts);
      return -1;
    }
  rs->rc.step_id = st->step_id;
  /* Until the stage's network is up, the filter whose first network socket
   * starts it. */
  seccomp_filter *filter = NULL;
  if (build_run_filter (b, net == SANDBOX_NET_PRIVATE && !sandbox_session_net_started (rs->sess), &filter, err) < 0)
    {
      run_mounts_release (&mounts);
      return -1;
    }
  sandbox_config sc = {
    .argv = s->argv, .env = env, .cwd = cwd, .uid = uid, .gid = gid, .groups = groups, .n_groups = n_groups,
    .hostname = NULL, .network = net, .idmap = &b->idmap, .seccomp = filter,
    .output = run_output, .output_ctx = &rs->rc, .record_chown = overlay_record_chown_cb, .record_chown_ctx = rs->rc.ovl,
    .owner = overlay_owner_cb, .owner_ctx = rs->rc.ovl,
    .session = rs->sess, .mounts = mounts.v, .n_mounts = mounts.n,
    .cancel_fd = b->o.cancel ? b->o.cancel->rfd : -1, .cancel_signal = b->o.signal_flag,
    .limiter = b->limiter,
  };
  /* Single mode: the ids the step's processes switch to are kiln's to
   * keep; files they create get their fs ids. */
  sandbox_creds *creds = NULL;
  if (b->idmap.mode == SANDBOX_USERNS_SINGLE && filter && b->filter_mode == SECCOMP_PROFILE_FAKE_IDS)
    {
      sc.creds = creds = sandbox_creds_new (uid, gid, groups, n_groups);
      overlay_set_creator (rs->rc.ovl, sandbox_creds_fsids, creds);
    }
  int ret = run_in_sandbox (b, st, s, &sc, insecure, err);
  if (creds)
    {
      overlay_set_creator (rs->rc.ovl, NULL, NULL);
      sandbox_creds_free (creds);
    }
  if (ret == 0)
    ret = run_commit (b, st, created_by, rs, key, err);
  if (ret < 0 || b->o.ignore_paths)
    build_run_session_end (b, st);
  run_mounts_release (&mounts);
  return ret;
}
