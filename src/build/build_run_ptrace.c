/* build_run_ptrace.c - RUN steps under --isolation=ptrace: the stage's
 * layers as a real directory (overlay_dir) that the step works on through
 * kiln's tracer (sandbox/tracer.h), which reports every change; the write
 * log becomes the step's layer as the FUSE overlay's does.
 *
 * Consecutive RUN steps of a stage share the directory (as they share the
 * FUSE mount in the userns mode): the commit freezes the step's files and
 * the next step starts on the same tree. A COPY, a cached step or a
 * failure ends it, and the next RUN makes the stage's tree afresh. */
#include "build/build_internal.h"
#include "build/build_ptrace.h"
#include "overlay/overlay_dir.h"
#include "sandbox/tracer.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ptrace_session
{
  overlay_dir *od;
  char *tmpname;       /* store temp dir: the root, frozen data, kiln's files */
  char *tmppath;       /* its host path */
  int tmpfd;
  char *shm;           /* a private directory in /dev/shm for RUN --mount files (secrets) */
  size_t n_layers;     /* the stage's layer count the tree shows */
  char **diff_ids;     /* and those layers */
  bool exact;          /* the tree shows those layers and nothing else */
  unsigned steps;
  build_exec *b;
  int step_id;
};

/* Remove the files of the session's /dev/shm directory (and it, if
 * rmdir): secrets live there only while their step runs. */
static void
shm_clear (const char *dir, bool rmdir_too)
{
  autoclose int fd = open (dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0)
    {
      DIR *d = fdopendir (dup (fd));
      for (struct dirent *e; d && (e = readdir (d));)
        if (strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0)
          (void) unlinkat (fd, e->d_name, 0);
      if (d)
        closedir (d);
    }
  if (rmdir_too)
    (void) rmdir (dir);
}

static void
session_free (build_exec *b, struct ptrace_session *ps)
{
  if (!ps)
    return;
  overlay_dir_free (ps->od);
  if (ps->tmpfd >= 0)
    close (ps->tmpfd);
  if (ps->tmpname)
    store_rmtemp (b->o.store, ps->tmpname);
  free (ps->tmpname);
  free (ps->tmppath);
  strv_free (ps->diff_ids);
  if (ps->shm)
    shm_clear (ps->shm, true);
  free (ps->shm);
  free (ps);
}

void
build_run_ptrace_end (build_exec *b, stage_state *st)
{
  struct ptrace_session *ps = st->ps;
  st->ps = NULL;
  session_free (b, ps);
}

/* ---- tracer_fs_ops on the stage's overlay_dir ---- */

static int
op_before_write (void *ctx, int dirfd, const char *name, const char *path)
{
  return overlay_dir_before_write (ctx, dirfd, name, path);
}

static void
op_changed (void *ctx, const tracer_change *c)
{
  overlay_dir_change oc = { .kind = (overlay_dir_change_kind) c->kind, .path = c->path, .path2 = c->path2,
                            .flags = c->flags, .uid = c->uid, .gid = c->gid };
  overlay_dir_changed (ctx, &oc);
}

static int
op_set_owner (void *ctx, int fd, const char *path, uid_t uid, gid_t gid)
{
  return overlay_dir_set_owner (ctx, fd, path, uid, gid);
}

static int
op_set_mode (void *ctx, int fd, const char *path, mode_t mode)
{
  return overlay_dir_set_mode (ctx, fd, path, mode);
}

static int
op_set_times (void *ctx, int fd, const char *path, const struct timespec ts[2])
{
  return overlay_dir_set_times (ctx, fd, path, ts);
}

static int
op_mknod (void *ctx, int dirfd, const char *name, const char *path, mode_t mode, dev_t rdev, uid_t uid, gid_t gid)
{
  return overlay_dir_mknod (ctx, dirfd, name, path, mode, rdev, uid, gid);
}

static void
op_present (void *ctx, const struct stat *real, struct stat *shown)
{
  overlay_dir_present (ctx, real, shown);
}

static int
op_get_xattr (void *ctx, int fd, const char *path, const char *name, void *value, size_t size)
{
  return overlay_dir_get_xattr (ctx, fd, path, name, value, size);
}

static int
op_list_xattr (void *ctx, int fd, const char *path, char *list, size_t size)
{
  return overlay_dir_list_xattr (ctx, fd, path, list, size);
}

static int
op_set_xattr (void *ctx, int fd, const char *path, const char *name, const void *value, size_t size, int flags)
{
  return overlay_dir_set_xattr (ctx, fd, path, name, value, size, flags);
}

static int
op_remove_xattr (void *ctx, int fd, const char *path, const char *name)
{
  return overlay_dir_remove_xattr (ctx, fd, path, name);
}

static const tracer_fs_ops dir_ops_table = {
  .before_write = op_before_write, .changed = op_changed, .set_owner = op_set_owner, .set_mode = op_set_mode,
  .set_times = op_set_times, .mknod = op_mknod, .get_xattr = op_get_xattr, .list_xattr = op_list_xattr,
  .set_xattr = op_set_xattr, .remove_xattr = op_remove_xattr, .present = op_present,
};

const tracer_fs_ops *
build_ptrace_ops (void)
{
  return &dir_ops_table;
}

/* The tracer's change kinds are the overlay_dir's, one for one. */
_Static_assert ((int) TRACER_CHANGE_WRITE == (int) OVERLAY_DIR_WRITE
                && (int) TRACER_CHANGE_CREATE == (int) OVERLAY_DIR_CREATE
                && (int) TRACER_CHANGE_LINK == (int) OVERLAY_DIR_LINK
                && (int) TRACER_CHANGE_REMOVE == (int) OVERLAY_DIR_REMOVE
                && (int) TRACER_CHANGE_RENAME == (int) OVERLAY_DIR_RENAME
                && (int) TRACER_CHANGE_META == (int) OVERLAY_DIR_META,
                "tracer_change_kind and overlay_dir_change_kind differ");

/* ---- the stage's tree ---- */

/* The usual /dev links into /proc (their targets resolve in the step's
 * view, where /proc is the host's): in the root's /dev, a mask path, so
 * never in a layer. */
int
build_ptrace_dev_links (overlay_dir *od, kiln_error **err)
{
  static const char *const links[][2] = { { "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
                                          { "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" } };
  autoclose int dev = openat (overlay_dir_root_fd (od), "dev", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dev < 0)
    return kiln_error_make (err, errno, "open '%s/dev'", overlay_dir_root_path (od));
  for (size_t i = 0; i < ARRAY_SIZE (links); i++)
    if (symlinkat (links[i][1], dev, links[i][0]) < 0 && errno != EEXIST)
      return kiln_error_make (err, errno, "create '%s/dev/%s'", overlay_dir_root_path (od), links[i][0]);
  return 0;
}

/* The tree now shows the stage's layers. */
static void
session_shows (struct ptrace_session *ps, const stage_state *st)
{
  strv_free (ps->diff_ids);
  ps->diff_ids = xcalloc (st->n_layers + 1, sizeof *ps->diff_ids);
  for (size_t i = 0; i < st->n_layers; i++)
    ps->diff_ids[i] = xstrdup (st->layers[i].diff_id);
  ps->n_layers = st->n_layers;
  ps->exact = true;
}

/* Layers added on top of what the tree shows (a COPY, a cached step) are
 * applied to it instead of making a new tree: a base's directories and
 * symlinks are new inodes each time, which this machine's ext4 without a
 * journal makes slowly after removals (bench/RESULTS.md, "ptrace
 * isolation"). */
static bool
session_can_apply (const struct ptrace_session *ps, const stage_state *st)
{
  if (!ps->exact || ps->n_layers >= st->n_layers)
    return false;
  for (size_t i = 0; i < ps->n_layers; i++)
    if (strcmp (ps->diff_ids[i], st->layers[i].diff_id))
      return false;
  return true;
}

static struct ptrace_session *
session_make (build_exec *b, stage_state *st, overlay_lower *lower, uid_t uid, gid_t gid,
              const char *const *masks, kiln_error **err)
{
  if (st->ps)
    {
      overlay_lower_free (lower);
      int r = overlay_dir_begin_step (st->ps->od, uid, gid, masks);
      if (r < 0)
        {
          kiln_error_make (err, -r, "preparing the stage's tree for the next step");
          build_run_ptrace_end (b, st);
          return NULL;
        }
      log_debug ("RUN on the stage's tree of %zu layers, step %u on it", st->ps->n_layers, ++st->ps->steps);
      return st->ps;
    }
  struct ptrace_session *ps = xzalloc (sizeof *ps);
  ps->tmpfd = -1;
  ps->b = b;
  if (store_mktemp (b->o.store, "run-", &ps->tmpname, &ps->tmpfd, err) < 0)
    {
      overlay_lower_free (lower);
      free (ps);
      return NULL;
    }
  st->ps = ps;
  char buf[PATH_MAX];
  autofree char *link = xasprintf ("/proc/self/fd/%d", ps->tmpfd);
  ssize_t n = readlink (link, buf, sizeof buf - 1);
  if (n <= 0 || buf[0] != '/')
    {
      overlay_lower_free (lower);
      kiln_error_make (err, errno, "read the path of the store's temporary directory '%s'", ps->tmpname);
      build_run_ptrace_end (b, st);
      return NULL;
    }
  ps->tmppath = xstrndup (buf, (size_t) n);
  double t0 = now_s ();
  overlay_dir_config oc = { .lower = lower, .scratch_dirfd = ps->tmpfd, .mask_paths = masks,
                            .create_uid = uid, .create_gid = gid };
  if (overlay_dir_new (&oc, &ps->od, err) < 0)
    {
      build_run_ptrace_end (b, st);
      return NULL;
    }
  if (build_ptrace_dev_links (ps->od, err) < 0)
    {
      build_run_ptrace_end (b, st);
      return NULL;
    }
  session_shows (ps, st);
  ps->steps = 1;
  log_debug ("RUN on a new tree of the stage's %zu layers (%.0f ms)", ps->n_layers, (now_s () - t0) * 1000);
  return ps;
}

static struct ptrace_session *
session_get (build_exec *b, stage_state *st, overlay_lower *lower, uid_t uid, gid_t gid,
             const char *const *masks, kiln_error **err)
{
  /* A tree of fewer layers (a COPY came between) is removed only after the
   * new one is made: ext4 without a journal skips inodes freed in the last
   * dirty_expire_interval (30 s) when it allocates, one inode-table lookup
   * each, so a tree made right after thousands of removals took seconds
   * instead of tenths (bench/RESULTS.md, "ptrace isolation"). */
  struct ptrace_session *old = NULL;
  if (st->ps && session_can_apply (st->ps, st))
    {
      double t0 = now_s ();
      size_t from = st->ps->n_layers;
      int r = overlay_dir_apply (st->ps->od, lower, (unsigned) from, err);
      lower = NULL;
      if (r < 0)
        {
          build_run_ptrace_end (b, st);
          kiln_error_wrap (err, "adding the stage's new layers to its tree");
          return NULL;
        }
      session_shows (st->ps, st);
      log_debug ("the stage's tree: layers %zu to %zu added (%.0f ms)", from + 1, st->n_layers,
                 (now_s () - t0) * 1000);
    }
  else if (st->ps && st->ps->n_layers != st->n_layers)
    {
      old = st->ps;
      st->ps = NULL;
    }
  struct ptrace_session *ps = session_make (b, st, lower, uid, gid, masks, err);
  session_free (b, old);
  return ps;
}

/* ---- the step's binds ---- */

/* A FILE mount (a secret, a heredoc script) in memory: a file in the
 * session's private directory on /dev/shm (a tmpfs in every container
 * runtime's default set-up), never on disk; removed after the step. */
static int
shm_file (struct ptrace_session *ps, const char *name, const sandbox_mount *m, char **path, kiln_error **err)
{
  if (!ps->shm)
    {
      char tmpl[] = "/dev/shm/kiln-XXXXXX";
      if (!mkdtemp (tmpl))
        return kiln_error_make (err, errno, "files of RUN --mount (secrets) under --isolation=ptrace live in "
                                "memory, in a private directory on /dev/shm, which cannot be made here");
      ps->shm = xstrdup (tmpl);
    }
  autofree char *p = xasprintf ("%s/%s", ps->shm, name);
  (void) unlink (p);
  mode_t mode = m->file_mode ? m->file_mode : 0400;
  autoclose int fd = open (p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0)
    return kiln_error_make (err, errno, "create '%s'", p);
  if (fchmod (fd, mode) < 0)
    return kiln_error_make (err, errno, "chmod '%s'", p);
  if (fs_write_all (fd, m->data, m->data_len, err) < 0)
    return kiln_error_wrap (err, "write '%s'", p);
  *path = steal_pointer (&p);
  return 0;
}

/* A target kiln makes (m->create: below its own mounts, e.g.
 * /dev/pipes/NAME) must exist in the root for the tracer to reach its
 * bind: a placeholder under the root's /dev, a mask path (never in a
 * layer). */
static int
make_target (struct ptrace_session *ps, const sandbox_mount *m, kiln_error **err)
{
  int root = overlay_dir_root_fd (ps->od);
  const char *rel = m->target + strspn (m->target, "/");
  const char *slash = strrchr (rel, '/');
  autofree char *parent = slash ? xstrndup (rel, (size_t) (slash - rel)) : xstrdup (".");
  const char *name = slash ? slash + 1 : rel;
  if (strncmp (rel, "dev/", 4) != 0 || !*name)
    return kiln_error_make (err, EINVAL, "RUN --mount target '%s': kiln makes targets only below /dev", m->target);
  if (fs_mkdir_p_at (root, parent, 0755, err) < 0)
    return kiln_error_wrap (err, "RUN --mount target '%s'", m->target);
  autoclose int pfd = openat (root, parent, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (pfd < 0)
    return kiln_error_make (err, errno, "RUN --mount target '%s'", m->target);
  if (m->target_is_dir)
    {
      if (mkdirat (pfd, name, 0755) < 0 && errno != EEXIST)
        return kiln_error_make (err, errno, "RUN --mount target '%s'", m->target);
      return 0;
    }
  autoclose int fd = openat (pfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    return kiln_error_make (err, errno, "RUN --mount target '%s'", m->target);
  return 0;
}

static int
mount_binds (struct ptrace_session *ps, const sandbox_mount *m, size_t n, tracer_binds *l, kiln_error **err)
{
  for (size_t i = 0; i < n; i++)
    {
      if (m[i].create && make_target (ps, &m[i], err) < 0)
        return -1;
      autofree char *host = NULL;
      autofree char *name = xasprintf ("m%zu", i);
      switch (m[i].type)
        {
        case SANDBOX_MOUNT_BIND:
          tracer_binds_add (l, m[i].target, m[i].source, !m[i].readonly);
          if (m[i].set_owner)
            tracer_binds_own (l, m[i].owner_uid, m[i].owner_gid);
          continue;
        case SANDBOX_MOUNT_TMPFS:
          /* A directory of the session's, emptied with it: not memory
           * but disk, and no size limit (said in docs/design/ptrace.md). */
          (void) unlinkat (ps->tmpfd, name, AT_REMOVEDIR);
          if (mkdirat (ps->tmpfd, name, m[i].tmpfs_mode ? m[i].tmpfs_mode : 01777) < 0)
            return kiln_error_make (err, errno, "RUN --mount=type=tmpfs,target=%s: create '%s/%s'", m[i].target,
                                    ps->tmppath, name);
          host = xasprintf ("%s/%s", ps->tmppath, name);
          tracer_binds_add (l, m[i].target, host, !m[i].readonly);
          continue;
        case SANDBOX_MOUNT_FILE:
          if (shm_file (ps, name, &m[i], &host, err) < 0)
            return kiln_error_wrap (err, "RUN --mount at '%s'", m[i].target);
          tracer_binds_add (l, m[i].target, host, false);
          if (m[i].owner_uid || m[i].owner_gid)
            tracer_binds_own (l, m[i].owner_uid, m[i].owner_gid);
          continue;
        }
    }
  return 0;
}

static int
step_binds (struct ptrace_session *ps, sandbox_net_mode net, const sandbox_mount *m, size_t n, tracer_binds *l,
            kiln_error **err)
{
  if (tracer_binds_standard (l, ps->tmpfd, ps->tmppath, net, NULL, err) < 0)
    return -1;
  (void) mkdirat (ps->tmpfd, "shm", 01777);
  autofree char *shm = xasprintf ("%s/shm", ps->tmppath);
  tracer_binds_add (l, "/dev/shm", shm, true);
  return mount_binds (ps, m, n, l, err);
}

/* ---- one step ---- */

static void
ptrace_output (void *ctx, sandbox_stream stream, const char *line, size_t len)
{
  struct ptrace_session *ps = ctx;
  progress_step_output_id (ps->b->o.progress, ps->step_id, stream == SANDBOX_STDERR ? 2 : 1, line, len);
}

int
build_run_ptrace (build_exec *b, stage_state *st, const build_run_args *a, kiln_error **err)
{
  if (a->insecure)
    return kiln_error_make (err, EPERM, "RUN --security=insecure is not available under --isolation=ptrace "
                            "(there is no namespace to grant capabilities in)");
  struct ptrace_session *ps = session_get (b, st, a->lower, a->uid, a->gid, a->masks, err);
  if (!ps)
    return -1;
  ps->step_id = st->step_id;
  tracer_binds binds = { 0 };
  seccomp_filter *filter = NULL;
  int ret = build_run_filter (b, false, &filter, err);
  if (ret == 0)
    ret = step_binds (ps, a->net, a->mounts, a->n_mounts, &binds, err);
  if (ret == 0)
    {
      tracer_config tc = {
        .argv = a->argv, .env = a->env, .cwd = a->cwd, .uid = a->uid, .gid = a->gid, .groups = a->groups,
        .n_groups = a->n_groups, .root = overlay_dir_root_path (ps->od), .binds = binds.v, .n_binds = binds.n,
        .ops = &dir_ops_table, .ops_ctx = ps->od, .seccomp = filter, .network = a->net, .output = ptrace_output,
        .output_ctx = ps, .limiter = b->limiter, .cancel_fd = b->o.cancel ? b->o.cancel->rfd : -1, .cancel_signal = b->o.signal_flag,
      };
      double t0 = now_s ();
      ret = tracer_run (&tc, a->res, err);
      add_time (b, &b->res->t_run, now_s () - t0);
    }
  tracer_binds_free (&binds);
  if (ps->shm)
    shm_clear (ps->shm, false);
  if (ret < 0)
    build_run_ptrace_end (b, st);
  return ret;
}

int
build_run_ptrace_commit (build_exec *b, stage_state *st, const char *created_by, const char *key, kiln_error **err)
{
  struct ptrace_session *ps = st->ps;
  double t0 = now_s ();
  overlay_changes *changes = NULL;
  if (overlay_dir_commit (ps->od, &changes, err) < 0)
    return -1;
  int ret = build_run_commit_changes (b, st, changes, t0, created_by, key, err);
  /* with --ignore-path the tree keeps changes its layer lacks */
  if (ret == 0 && !b->o.ignore_paths)
    session_shows (ps, st);
  else
    ps->exact = false;
  return ret;
}
