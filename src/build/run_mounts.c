/* run_mounts.c - RUN --mount (see run_mounts.h). */
#include "build/run_mounts.h"
#include "build/build_cache_mounts.h"
#include "build/rootfs.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/units.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *
keep (run_mounts *m, char *s)
{
  strv_push (&m->strings, s);
  free (s);
  return m->strings[strv_len (m->strings) - 1];
}

void
run_mounts_release (run_mounts *m)
{
  for (size_t i = 0; i < m->n_fds; i++)
    close (m->fds[i]);
  free (m->fds);
  strv_free (m->locked);
  for (char **t = m->tmpnames; t && *t; t++)
    store_rmtemp (m->store, *t);
  strv_free (m->tmpnames);
  for (size_t i = 0; i < m->n_data; i++)
    {
      explicit_bzero (m->data[i], m->data_len[i]);
      free (m->data[i]);
    }
  free (m->data);
  free (m->data_len);
  strv_free (m->masks);
  strv_free (m->strings);
  free (m->v);
  memset (m, 0, sizeof *m);
}

/* Make sm a FILE mount of data (taken: wiped and freed by
 * run_mounts_release): the step's memory holds it, never the disk
 * (SANDBOX_MOUNT_FILE). */
static void
set_file_data (run_mounts *m, sandbox_mount *sm, char *data, size_t len, unsigned mode, uid_t uid, gid_t gid)
{
  m->data = xreallocarray (m->data, m->n_data + 1, sizeof *m->data);
  m->data_len = xreallocarray (m->data_len, m->n_data + 1, sizeof *m->data_len);
  m->data[m->n_data] = data;
  m->data_len[m->n_data++] = len;
  sm->type = SANDBOX_MOUNT_FILE;
  sm->data = data;
  sm->data_len = len;
  sm->file_mode = mode;
  sm->owner_uid = uid;
  sm->owner_gid = gid;
  sm->readonly = true;
}

/* Host id of container id u under the step's mapping (as root the step's
 * ids live in a high range, so kiln-made files must be given to them). */
static uid_t
host_id (const sandbox_idmap *map, unsigned long u, bool gid)
{
  if (u == 0)
    return gid ? map->host_gid : map->host_uid;
  return (gid ? map->sub_gid : map->sub_uid) + u - 1;
}

/* A plain user in single ID mode has only root mapped: what kiln makes
 * for the step cannot belong to other ids. */
static int
owner_unmapped (const char *what, kiln_error **err)
{
  return kiln_error_make (err, ENOTSUP, "%s: uid/gid other than 0 need subordinate ID ranges (full ID mapping) or "
                          "kiln running as root; single ID mode maps only root", what);
}

/* Give a file kiln made for the step (a new cache directory, a secret) to
 * container uid:gid. As root kiln chowns it to the mapped host ids. A plain
 * user cannot (the ids are subordinate ones), so in full mode *defer is set:
 * the step's init chowns the mount's root from inside the user namespace,
 * where container root may (sandbox_mount.set_owner). */
static int
give_to_step (const run_mounts_env *env, int fd, unsigned long uid, unsigned long gid, const char *what,
              bool *defer, kiln_error **err)
{
  const sandbox_idmap *map = env->idmap;
  if (defer)
    *defer = false;
  if (env->owners_presented)
    {
      if (defer)
        *defer = uid != 0 || gid != 0;
      return 0;
    }
  if (!map->as_root)
    {
      /* A plain user owns container 0's files already. */
      if (uid == 0 && gid == 0)
        return 0;
      if (map->mode == SANDBOX_USERNS_SINGLE || !defer)
        return owner_unmapped (what, err);
      *defer = true;
      return 0;
    }
  if (fchown (fd, host_id (map, uid, false), host_id (map, gid, true)) < 0)
    return kiln_error_make (err, errno, "%s: chown", what);
  return 0;
}

static int
parse_ulong (const char *what, const char *key, const char *v, int base, unsigned long max, unsigned long *out,
             kiln_error **err)
{
  char *end;
  errno = 0;
  unsigned long n = strtoul (v, &end, base);
  if (!*v || *end || errno || n > max)
    return kiln_error_make (err, EINVAL, "%s: bad %s '%s'", what, key, v);
  *out = n;
  return 0;
}

static const char *
opt (const plan_mount *pm, const char *k)
{
  return plan_mount_opt (pm, k);
}

static bool
opt_true (const plan_mount *pm, const char *k)
{
  const char *v = opt (pm, k);
  return v && (strcmp (v, "true") == 0 || strcmp (v, "1") == 0);
}

static sandbox_mount *
add_mount (run_mounts *m, const char *target, bool is_dir)
{
  m->v = xreallocarray (m->v, m->n + 1, sizeof *m->v);
  sandbox_mount *sm = &m->v[m->n++];
  memset (sm, 0, sizeof *sm);
  sm->target = target;
  const char *rel = target;
  while (*rel == '/')
    rel++;
  autofree char *mask = xasprintf ("%s%s", rel, is_dir ? "/" : "");
  strv_push (&m->masks, mask);
  return sm;
}

static char *
abs_target (const run_mounts_env *env, const char *t)
{
  if (t[0] == '/')
    return xstrdup (t);
  const char *wd = env->workdir && *env->workdir ? env->workdir : "/";
  return xasprintf ("%s%s%s", wd, wd[strlen (wd) - 1] == '/' ? "" : "/", t);
}

/* flock with how; a lock another step or build holds is waited for in
 * steps of 100 ms so that a cancelled build stops waiting (flock itself
 * restarts after kiln's signal handlers). -1 with errno (EWOULDBLOCK for
 * LOCK_NB, ECANCELED). */
static int
cache_lock (int lfd, int how, int cancel_fd, const char *id)
{
  for (bool said = false;;)
    {
      if (flock (lfd, how | LOCK_NB) == 0)
        return 0;
      if (errno == EINTR)
        continue;
      if (errno != EWOULDBLOCK || (how & LOCK_NB))
        return -1;
      if (!said)
        log_info ("cache mount '%s' is locked by another step or build: waiting", id);
      said = true;
      struct pollfd p = { .fd = cancel_fd, .events = POLLIN };
      if (poll (&p, cancel_fd >= 0 ? 1 : 0, 100) > 0)
        {
          errno = ECANCELED;
          return -1;
        }
    }
}

/* The bind of a cache directory (store-relative dir_rel) at target. */
static int
cache_bind (const run_mounts_env *env, run_mounts *m, const char *target, const char *dir_rel, const plan_mount *pm,
            bool defer_owner, uid_t uid, gid_t gid)
{
  autofree char *t = abs_target (env, target);
  sandbox_mount *sm = add_mount (m, keep (m, steal_pointer (&t)), true);
  sm->type = SANDBOX_MOUNT_BIND;
  sm->source = keep (m, xasprintf ("%s/%s", env->store->root, dir_rel));
  sm->set_owner = defer_owner;
  sm->owner_uid = uid;
  sm->owner_gid = gid;
  sm->readonly = opt_true (pm, "readonly");
  return 0;
}

static int
mount_cache (const run_mounts_env *env, const plan_mount *pm, run_mounts *m, kiln_error **err)
{
  const char *target = opt (pm, "target");
  if (!target)
    return kiln_error_make (err, EINVAL, "RUN --mount=type=cache needs target=");
  if (opt (pm, "from") || opt (pm, "source"))
    return kiln_error_make (err, ENOTSUP, "RUN --mount=type=cache,from=/source= is not supported yet");
  const char *id = opt (pm, "id") ? opt (pm, "id") : target;
  const char *sharing = opt (pm, "sharing") ? opt (pm, "sharing") : "shared";
  if (strcmp (sharing, "shared") != 0 && strcmp (sharing, "locked") != 0 && strcmp (sharing, "private") != 0)
    return kiln_error_make (err, EINVAL, "RUN --mount=type=cache: sharing must be shared, private or locked, not '%s'",
                            sharing);
  unsigned long mode = 0755, uid = 0, gid = 0;
  if ((opt (pm, "mode") && parse_ulong ("cache mount", "mode", opt (pm, "mode"), 8, 07777, &mode, err) < 0)
      || (opt (pm, "uid") && parse_ulong ("cache mount", "uid", opt (pm, "uid"), 10, 65535, &uid, err) < 0)
      || (opt (pm, "gid") && parse_ulong ("cache mount", "gid", opt (pm, "gid"), 10, 65535, &gid, err) < 0))
    return -1;
  char hex[DIGEST_STRING_SIZE];
  digest_buffer (id, strlen (id), hex);
  const char *h = hex + 7;
  if (fs_mkdir_p_at (env->store->rootfd, "cache", 0700, err) < 0)
    return kiln_error_wrap (err, "cache mount '%s'", id);
  autofree char *rel = xasprintf ("cache/%s", h);
  autofree char *lockname = xasprintf ("cache/%s.lock", h);
  const char *dir_rel = rel;
  autofree char *tmpname = NULL;
  /* The same id twice in one step: one directory under the lock already
   * held (a second flock from this process on another open of the lock
   * file would wait for ever on the first). */
  for (char **l = m->locked; l && *l; l++)
    if (strcmp (*l, h) == 0)
      return cache_bind (env, m, target, rel, pm, false, 0, 0);
  /* Before the step's own lock: the import takes the exclusive one. */
  build_cache_mounts_use (env->cache_mounts, id, h, !opt_true (pm, "readonly"), env->idmap, env->owners_presented);
  int lfd = openat (env->store->rootfd, lockname, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lfd < 0)
    return kiln_error_make (err, errno, "cache mount '%s': lock", id);
  int how = strcmp (sharing, "private") == 0 ? LOCK_EX | LOCK_NB : strcmp (sharing, "locked") == 0 ? LOCK_EX
                                                                                                   : LOCK_SH;
  int r = cache_lock (lfd, how, env->cancel_fd, id);
  if (r < 0 && errno == EWOULDBLOCK)
    {
      /* private and busy: this step gets a fresh, throwaway directory. */
      close (lfd);
      autoclose int tfd = -1;
      if (store_mktemp (env->store, "cache-", &tmpname, &tfd, err) < 0)
        return -1;
      strv_push (&m->tmpnames, tmpname);
      free (rel);
      rel = xasprintf ("tmp/%s/dir", tmpname);
      dir_rel = rel;
    }
  else if (r < 0)
    {
      int e = errno;
      close (lfd);
      return kiln_error_make (err, e, "cache mount '%s': lock", id);
    }
  else
    {
      m->fds = xreallocarray (m->fds, m->n_fds + 1, sizeof *m->fds);
      m->fds[m->n_fds++] = lfd;
      strv_push (&m->locked, h);
    }
  struct stat sb;
  bool defer_owner = false;
  if (fstatat (env->store->rootfd, dir_rel, &sb, AT_SYMLINK_NOFOLLOW) < 0)
    {
      if (mkdirat (env->store->rootfd, dir_rel, 0700) < 0 && errno != EEXIST)
        return kiln_error_make (err, errno, "cache mount '%s': mkdir", id);
      autoclose int dfd = openat (env->store->rootfd, dir_rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (dfd < 0 || fchmod (dfd, mode) < 0)
        return kiln_error_make (err, errno, "cache mount '%s': mode", id);
      if (give_to_step (env, dfd, uid, gid, "cache mount", &defer_owner, err) < 0)
        return -1;
    }
  else if (!S_ISDIR (sb.st_mode))
    return kiln_error_make (err, ENOTDIR, "cache mount '%s': '%s' is not a directory", id, dir_rel);
  return cache_bind (env, m, target, dir_rel, pm, defer_owner, (uid_t) uid, (gid_t) gid);
}

/* "id=ID,src=PATH" / "id=ID,env=VAR" */
static int
secret_parse (const char *spec, char **id, char **src, char **env, kiln_error **err)
{
  *id = *src = *env = NULL;
  autofree char *copy = xstrdup (spec);
  char *save = NULL;
  for (char *tok = strtok_r (copy, ",", &save); tok; tok = strtok_r (NULL, ",", &save))
    {
      char *eq = strchr (tok, '=');
      if (!eq)
        return kiln_error_make (err, EINVAL, "--secret '%s': expected id=ID,src=PATH or id=ID,env=VAR", spec);
      *eq = '\0';
      char **slot = strcmp (tok, "id") == 0                                     ? id
                    : strcmp (tok, "src") == 0 || strcmp (tok, "source") == 0 ? src
                    : strcmp (tok, "env") == 0                                 ? env
                                                                                : NULL;
      if (!slot)
        return kiln_error_make (err, EINVAL, "--secret '%s': unknown key '%s'", spec, tok);
      free (*slot);
      *slot = xstrdup (eq + 1);
    }
  if (!*id || !**id || (!*src && !*env) || (*src && *env))
    return kiln_error_make (err, EINVAL, "--secret '%s': expected id=ID and one of src=PATH or env=VAR", spec);
  return 0;
}

int
run_mounts_check_secret (const char *spec, kiln_error **err)
{
  autofree char *id = NULL, *src = NULL, *env = NULL;
  return secret_parse (spec, &id, &src, &env, err);
}

static int
mount_secret (const run_mounts_env *env, const plan_mount *pm, run_mounts *m, kiln_error **err)
{
  const char *target = opt (pm, "target");
  const char *id = opt (pm, "id");
  if (!id && target)
    id = strrchr (target, '/') ? strrchr (target, '/') + 1 : target;
  if (!id || !*id)
    return kiln_error_make (err, EINVAL, "RUN --mount=type=secret needs id= or target=");
  autofree char *sid = NULL, *src = NULL, *var = NULL;
  for (char **s = env->secrets; s && *s; s++)
    {
      autofree char *i = NULL, *p = NULL, *v = NULL;
      if (secret_parse (*s, &i, &p, &v, err) < 0)
        return -1;
      if (strcmp (i, id) == 0)
        {
          free (sid);
          free (src);
          free (var);
          sid = steal_pointer (&i);
          src = steal_pointer (&p);
          var = steal_pointer (&v);
        }
    }
  if (!sid)
    {
      if (opt_true (pm, "required"))
        return kiln_error_make (err, ENOENT, "secret '%s' is required but no --secret id=%s was given", id, id);
      return 0;
    }
  autofree char *data = NULL;
  size_t len = 0;
  if (src)
    {
      if (fs_read_file_at (AT_FDCWD, src, 1 << 20, &data, &len, err) < 0)
        return kiln_error_wrap (err, "secret '%s'", id);
    }
  else
    {
      const char *v = getenv (var);
      if (!v)
        return kiln_error_make (err, ENOENT, "secret '%s': environment variable %s is not set", id, var);
      data = xstrdup (v);
      len = strlen (v);
    }
  unsigned long mode = 0400, uid = 0, gid = 0;
  if ((opt (pm, "mode") && parse_ulong ("secret mount", "mode", opt (pm, "mode"), 8, 07777, &mode, err) < 0)
      || (opt (pm, "uid") && parse_ulong ("secret mount", "uid", opt (pm, "uid"), 10, 65535, &uid, err) < 0)
      || (opt (pm, "gid") && parse_ulong ("secret mount", "gid", opt (pm, "gid"), 10, 65535, &gid, err) < 0))
    return -1;
  /* Only root is mapped in single mode: other owners cannot be given. */
  if ((uid || gid) && !env->owners_presented && !env->idmap->as_root && env->idmap->mode == SANDBOX_USERNS_SINGLE)
    {
      explicit_bzero (data, len);
      return owner_unmapped ("secret mount", err);
    }
  char *t = target ? abs_target (env, target) : xasprintf ("/run/secrets/%s", id);
  sandbox_mount *sm = add_mount (m, keep (m, t), false);
  set_file_data (m, sm, steal_pointer (&data), len, (unsigned) mode, (uid_t) uid, (gid_t) gid);
  return 0;
}

/* Copy path of the merged layers to name below dirfd: directories,
 * regular files (data copied), symlinks; modes kept; owners mapped to the
 * step's ids as root (a plain user's files belong to the step's root). */
static int
materialize (const run_mounts_env *env, overlay_lower *l, const char *path, const overlay_lower_attr *a,
             unsigned layer, int dirfd, const char *name, kiln_error **err)
{
  int r = 0;
  switch (a->mode & S_IFMT)
    {
    case S_IFDIR:
      {
        if (mkdirat (dirfd, name, 0700) < 0)
          return kiln_error_make (err, errno, "bind source: mkdir '%s'", path);
        autoclose int dfd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
          return kiln_error_make (err, errno, "bind source: open '%s'", path);
        rootfs_entry *v = NULL;
        size_t n = 0;
        r = rootfs_list (l, path, &v, &n);
        if (r < 0)
          return kiln_error_make (err, -r, "bind source: list '%s'", path);
        for (size_t i = 0; i < n && r == 0; i++)
          {
            autofree char *child = *path ? xasprintf ("%s/%s", path, v[i].name) : xstrdup (v[i].name);
            r = materialize (env, l, child, &v[i].attr, v[i].layer, dfd, v[i].name, err);
          }
        rootfs_entries_free (v, n);
        if (r == 0 && fchmod (dfd, a->mode & 07777) < 0)
          r = kiln_error_make (err, errno, "bind source: chmod '%s'", path);
        if (r == 0 && env->idmap->as_root
            && fchown (dfd, host_id (env->idmap, a->uid, false), host_id (env->idmap, a->gid, true)) < 0)
          r = kiln_error_make (err, errno, "bind source: chown '%s'", path);
        return r;
      }
    case S_IFREG:
      {
        autoclose int in = overlay_lower_open (l, layer, path);
        if (in < 0)
          return kiln_error_make (err, -in, "bind source: open '%s'", path);
        autoclose int out = openat (dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out < 0)
          return kiln_error_make (err, errno, "bind source: create '%s'", path);
        if (fs_copy_fd (in, out, UINT64_MAX, NULL, err) < 0)
          return kiln_error_wrap (err, "bind source '%s'", path);
        if (fchmod (out, a->mode & 07777) < 0)
          return kiln_error_make (err, errno, "bind source: chmod '%s'", path);
        if (env->idmap->as_root
            && fchown (out, host_id (env->idmap, a->uid, false), host_id (env->idmap, a->gid, true)) < 0)
          return kiln_error_make (err, errno, "bind source: chown '%s'", path);
        return 0;
      }
    case S_IFLNK:
      if (symlinkat (a->symlink ? a->symlink : "", dirfd, name) < 0)
        return kiln_error_make (err, errno, "bind source: symlink '%s'", path);
      return 0;
    default:
      return 0; /* devices, fifos, sockets: not reproduced */
    }
}

static int
mount_bind_from (const run_mounts_env *env, const plan_mount *pm, const char *from, const char *target,
                 run_mounts *m, kiln_error **err)
{
  if (!env->open_from)
    return kiln_error_make (err, ENOTSUP, "RUN --mount=type=bind,from=: no stage source available");
  overlay_lower *l = NULL;
  if (env->open_from (env->open_from_ctx, from, &l, err) < 0)
    return kiln_error_wrap (err, "RUN --mount=type=bind,from=%s", from);
  const char *src = opt (pm, "source") ? opt (pm, "source") : "/";
  while (*src == '/')
    src++;
  autofree char *resolved = NULL;
  int r = rootfs_resolve_in_root (l, src, &resolved);
  rootfs_entry e = { 0 };
  if (r == 0)
    r = rootfs_stat (l, resolved, &e);
  if (r < 0)
    {
      overlay_lower_free (l);
      return kiln_error_make (err, -r, "RUN --mount=type=bind,from=%s: source '/%s'", from, src);
    }
  char *tmpname = NULL;
  autoclose int tfd = -1;
  if (store_mktemp (env->store, "bind-", &tmpname, &tfd, err) < 0)
    {
      rootfs_entry_clear (&e);
      overlay_lower_free (l);
      return -1;
    }
  strv_push (&m->tmpnames, tmpname);
  r = materialize (env, l, resolved, &e.attr, e.layer, tfd, "src", err);
  bool is_dir = S_ISDIR (e.attr.mode);
  rootfs_entry_clear (&e);
  overlay_lower_free (l);
  if (r < 0)
    {
      free (tmpname);
      return -1;
    }
  if (env->idmap->as_root && give_to_step (env, tfd, 0, 0, "bind mount", NULL, err) < 0)
    {
      free (tmpname);
      return -1;
    }
  autofree char *t = abs_target (env, target);
  sandbox_mount *sm = add_mount (m, keep (m, steal_pointer (&t)), is_dir);
  sm->type = SANDBOX_MOUNT_BIND;
  sm->source = keep (m, xasprintf ("%s/tmp/%s/src", env->store->root, tmpname));
  const char *ro = opt (pm, "readonly");
  sm->readonly = !(ro && strcmp (ro, "false") == 0);
  free (tmpname);
  return 0;
}

/* Copy the context entry open as fd (O_PATH, stat sb) to name below dirfd,
 * never following symlinks; the copy belongs to the step's root. */
static int
copy_host_tree (const run_mounts_env *env, int fd, const struct stat *sb, int dst, const char *name,
                const char *what, kiln_error **err)
{
  if (S_ISLNK (sb->st_mode))
    {
      char target[PATH_MAX];
      ssize_t n = readlinkat (fd, "", target, sizeof target - 1);
      if (n < 0)
        return kiln_error_make (err, errno, "bind source: readlink '%s'", what);
      target[n] = '\0';
      return symlinkat (target, dst, name) < 0 ? kiln_error_make (err, errno, "bind source: symlink '%s'", what) : 0;
    }
  if (S_ISREG (sb->st_mode))
    {
      char proc[64];
      snprintf (proc, sizeof proc, "/proc/self/fd/%d", fd);
      autoclose int in = open (proc, O_RDONLY | O_CLOEXEC);
      autoclose int out = openat (dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (in < 0 || out < 0)
        return kiln_error_make (err, errno, "bind source: copy '%s'", what);
      if (fs_copy_fd (in, out, UINT64_MAX, NULL, err) < 0)
        return kiln_error_wrap (err, "bind source '%s'", what);
      if (fchmod (out, sb->st_mode & 07777) < 0)
        return kiln_error_make (err, errno, "bind source: chmod '%s'", what);
      return give_to_step (env, out, 0, 0, "bind mount", NULL, err);
    }
  if (!S_ISDIR (sb->st_mode))
    return 0;
  if (mkdirat (dst, name, 0700) < 0)
    return kiln_error_make (err, errno, "bind source: mkdir '%s'", what);
  autoclose int dfd = openat (dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  char proc[64];
  snprintf (proc, sizeof proc, "/proc/self/fd/%d", fd);
  int lfd = open (proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || lfd < 0)
    {
      int e = errno;
      if (lfd >= 0)
        close (lfd);
      return kiln_error_make (err, e, "bind source: open '%s'", what);
    }
  DIR *d = fdopendir (lfd);
  if (!d)
    {
      int e = errno;
      close (lfd);
      return kiln_error_make (err, e, "bind source: list '%s'", what);
    }
  int r = 0;
  struct dirent *de;
  while (r == 0 && (de = readdir (d)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      autoclose int cfd = openat (dirfd (d), de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      struct stat csb;
      if (cfd < 0 || fstat (cfd, &csb) < 0)
        {
          r = kiln_error_make (err, errno, "bind source: '%s/%s'", what, de->d_name);
          break;
        }
      autofree char *cw = xasprintf ("%s/%s", what, de->d_name);
      r = copy_host_tree (env, cfd, &csb, dfd, de->d_name, cw, err);
    }
  closedir (d);
  if (r == 0 && fchmod (dfd, sb->st_mode & 07777) < 0)
    r = kiln_error_make (err, errno, "bind source: chmod '%s'", what);
  if (r == 0)
    r = give_to_step (env, dfd, 0, 0, "bind mount", NULL, err);
  return r;
}

static int
mount_bind (const run_mounts_env *env, const plan_mount *pm, run_mounts *m, kiln_error **err)
{
  const char *target = opt (pm, "target");
  if (!target)
    return kiln_error_make (err, EINVAL, "RUN --mount=type=bind needs target=");
  if (opt (pm, "from"))
    return mount_bind_from (env, pm, opt (pm, "from"), target, m, err);
  const char *ro = opt (pm, "readonly");
  bool rw = ro && strcmp (ro, "false") == 0;
  if (env->ctxfd < 0)
    return kiln_error_make (err, EINVAL, "RUN --mount=type=bind: the build has no context");
  const char *src = opt (pm, "source") ? opt (pm, "source") : ".";
  /* Resolve inside the context (its symlinks cannot leave it), then hand
   * the sandbox the resulting real path. */
  autoclose int fd = fs_open_in_root (env->ctxfd, src, O_PATH, 0, FS_RESOLVE_IN_ROOT, err);
  if (fd < 0)
    return kiln_error_wrap (err, "RUN --mount=type=bind,source=%s", src);
  char proc[64], path[PATH_MAX];
  snprintf (proc, sizeof proc, "/proc/self/fd/%d", fd);
  ssize_t n = readlink (proc, path, sizeof path - 1);
  if (n < 0)
    return kiln_error_make (err, errno, "RUN --mount=type=bind,source=%s", src);
  path[n] = '\0';
  struct stat sb;
  if (fstat (fd, &sb) < 0)
    return kiln_error_make (err, errno, "RUN --mount=type=bind,source=%s", src);
  autofree char *t = abs_target (env, target);
  autofree char *source = xstrdup (path);
  if (rw)
    {
      /* Writes must not reach the context: the step gets a copy. */
      char *tmpname = NULL;
      autoclose int tfd = -1;
      if (store_mktemp (env->store, "bind-", &tmpname, &tfd, err) < 0)
        return -1;
      strv_push (&m->tmpnames, tmpname);
      int r = copy_host_tree (env, fd, &sb, tfd, "src", src, err);
      if (r == 0 && env->idmap->as_root)
        r = give_to_step (env, tfd, 0, 0, "bind mount", NULL, err);
      free (source);
      source = xasprintf ("%s/tmp/%s/src", env->store->root, tmpname);
      free (tmpname);
      if (r < 0)
        return -1;
    }
  sandbox_mount *sm = add_mount (m, keep (m, steal_pointer (&t)), S_ISDIR (sb.st_mode));
  sm->type = SANDBOX_MOUNT_BIND;
  sm->source = keep (m, steal_pointer (&source));
  sm->readonly = !rw;
  return 0;
}

static int
mount_tmpfs (const run_mounts_env *env, const plan_mount *pm, run_mounts *m, kiln_error **err)
{
  const char *target = opt (pm, "target");
  if (!target)
    return kiln_error_make (err, EINVAL, "RUN --mount=type=tmpfs needs target=");
  uint64_t size = 0;
  if (opt (pm, "size") && units_parse_size (opt (pm, "size"), &size, err) < 0)
    return kiln_error_wrap (err, "RUN --mount=type=tmpfs,size=");
  autofree char *t = abs_target (env, target);
  sandbox_mount *sm = add_mount (m, keep (m, steal_pointer (&t)), true);
  sm->type = SANDBOX_MOUNT_TMPFS;
  sm->tmpfs_size = size;
  sm->tmpfs_mode = 01777;
  return 0;
}

void
run_mounts_add_file (const char *target, const char *body, mode_t mode, run_mounts *m)
{
  /* below kiln's own /dev: no mask path, the target is created there */
  m->v = xreallocarray (m->v, m->n + 1, sizeof *m->v);
  sandbox_mount *sm = &m->v[m->n++];
  memset (sm, 0, sizeof *sm);
  sm->target = keep (m, xstrdup (target));
  sm->create = true;
  set_file_data (m, sm, xstrdup (body), strlen (body), (unsigned) mode, 0, 0);
}

int
run_mounts_add_script (const char *name, const char *body, run_mounts *m, kiln_error **err)
{
  if (!*name || strchr (name, '/') || strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
    return kiln_error_make (err, EINVAL, "heredoc name '%s' cannot be a file name", name);
  autofree char *target = xasprintf ("/dev/pipes/%s", name);
  run_mounts_add_file (target, body, 0755, m);
  return 0;
}

int
run_mounts_prepare (const run_mounts_env *env, const plan_step *s, run_mounts *out, kiln_error **err)
{
  memset (out, 0, sizeof *out);
  out->store = env->store;
  for (size_t i = 0; i < s->n_mounts; i++)
    {
      const plan_mount *pm = &s->mounts[i];
      int r;
      if (strcmp (pm->type, "cache") == 0)
        r = mount_cache (env, pm, out, err);
      else if (strcmp (pm->type, "secret") == 0)
        r = mount_secret (env, pm, out, err);
      else if (strcmp (pm->type, "bind") == 0)
        r = mount_bind (env, pm, out, err);
      else if (strcmp (pm->type, "tmpfs") == 0)
        r = mount_tmpfs (env, pm, out, err);
      else
        r = kiln_error_make (err, ENOTSUP, "RUN --mount=type=%s is not supported", pm->type);
      if (r < 0)
        {
          run_mounts_release (out);
          return -1;
        }
    }
  return 0;
}
