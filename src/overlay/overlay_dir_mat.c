/* overlay_dir_mat.c - the lower layers made a real tree: the whole merge
 * (overlay_dir_new) and further layers applied on top of a tree that
 * already shows the layers below them (overlay_dir_apply); see
 * overlay_dir_internal.h and docs/design/overlay-dir.md.
 */
#include "overlay/overlay_dir_internal.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/hash.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- materialization ---- */
typedef struct mat_ent
{
  char *name;
  overlay_lower_attr attr;   /* of the layer that supplies it (symlink owned) */
  unsigned layer;
  unsigned *dlayers;         /* directories: contributing layers, top first */
  size_t ndl;
  bool closed;               /* directories: a layer below no longer adds to it */
  bool whiteout;             /* hides the name in the layers below */
} mat_ent;

typedef struct mat_list
{
  mat_ent *v;
  size_t n, cap;
  size_t *idx;               /* hash of names -> index + 1 */
  size_t icap;
  unsigned layer;
} mat_list;

static mat_ent *
mat_lookup (mat_list *c, const char *name, size_t **slot)
{
  if ((c->n + 1) * 2 > c->icap)
    {
      free (c->idx);
      c->icap = c->icap ? c->icap * 2 : 64;
      c->idx = xcalloc (c->icap, sizeof *c->idx);
      for (size_t k = 0; k < c->n; k++)
        {
          size_t i = hash_fnv1a_str (c->v[k].name) & (c->icap - 1);
          while (c->idx[i])
            i = (i + 1) & (c->icap - 1);
          c->idx[i] = k + 1;
        }
    }
  for (size_t i = hash_fnv1a_str (name) & (c->icap - 1);; i = (i + 1) & (c->icap - 1))
    {
      if (!c->idx[i])
        {
          *slot = &c->idx[i];
          return NULL;
        }
      if (!strcmp (c->v[c->idx[i] - 1].name, name))
        return &c->v[c->idx[i] - 1];
    }
}

static int
mat_list_cb (void *ud, const char *name, overlay_lower_kind kind, const overlay_lower_attr *attr)
{
  mat_list *c = ud;
  size_t *slot;
  mat_ent *e = mat_lookup (c, name, &slot);
  if (e)
    {
      /* a directory of a higher layer merges with the same directory below
       * until a layer replaces or deletes it */
      if (e->whiteout || e->closed || !S_ISDIR (e->attr.mode))
        return 0;
      if (kind == OVERLAY_LOWER_WHITEOUT || !S_ISDIR (attr->mode))
        {
          e->closed = true;
          return 0;
        }
      e->dlayers = xreallocarray (e->dlayers, e->ndl + 1, sizeof *e->dlayers);
      e->dlayers[e->ndl++] = c->layer;
      if (e->attr.implicit && !attr->implicit)
        {
          e->attr = *attr;
          e->attr.symlink = NULL;
          e->layer = c->layer;
        }
      return 0;
    }
  if (c->n == c->cap)
    {
      c->cap = c->cap ? c->cap * 2 : 32;
      c->v = xreallocarray (c->v, c->cap, sizeof *c->v);
    }
  e = &c->v[c->n];
  *e = (mat_ent) { .name = xstrdup (name), .layer = c->layer, .whiteout = kind == OVERLAY_LOWER_WHITEOUT };
  if (attr)
    {
      e->attr = *attr;
      e->attr.symlink = attr->symlink ? xstrdup (attr->symlink) : NULL;
      if (S_ISDIR (attr->mode))
        {
          e->dlayers = xmalloc (sizeof *e->dlayers);
          e->dlayers[0] = c->layer;
          e->ndl = 1;
        }
    }
  *slot = ++c->n;
  return 0;
}

static void
mat_list_free (mat_list *c)
{
  for (size_t i = 0; i < c->n; i++)
    {
      free (c->v[i].name);
      free (c->v[i].attr.symlink);
      free (c->v[i].dlayers);
    }
  free (c->v);
  free (c->idx);
}

typedef struct mat_ctx
{
  overlay_dir *od;
  size_t linked, copied;
} mat_ctx;

typedef struct xattr_ctx
{
  overlay_dir *od;
  od_meta *e;
} xattr_ctx;

static void
xattr_cb (void *ud, const char *name, const void *value, size_t len)
{
  xattr_ctx *c = ud;
  od_meta *e = c->e;
  e->x = xreallocarray (e->x, e->nx + 1, sizeof *e->x);
  e->x[e->nx++] = (overlay_xattr) { .name = xstrdup (name), .value = xmemdup (value, len ? len : 1),
                                    .len = len };
  od_xattr_account (c->od, 0, OD_XATTR_COST (name, len));
}

/* Register the inode just made at dfd/name with the lower's attributes. */
static int
mat_register (mat_ctx *c, int dfd, const char *name, const char *path, const mat_ent *e, uint32_t flags,
              kiln_error **err)
{
  overlay_dir *od = c->od;
  struct stat st;
  int64_t bt;
  int r = od_statx (dfd, name, &st, &bt);
  if (r < 0)
    return kiln_error_make (err, -r, "stat '/%s' in the root", path);
  od_meta *m = od_meta_put (od, &st, bt);
  m->mode = e->attr.mode;
  m->uid = e->attr.uid;
  m->gid = e->attr.gid;
  m->rdev = e->attr.rdev;
  m->flags = flags;
  if (flags & OD_LOWER)
    m->mtime = m->atime = e->attr.mtime;
  if (!m->nx)
    {
      xattr_ctx xc = { od, m };
      overlay_lower_xattrs (od->lower, e->layer, path, xattr_cb, &xc);
    }
  od_set_add (&od->base, path);
  return 0;
}

static int
mat_copy (mat_ctx *c, int dfd, const char *name, const char *path, const mat_ent *e, kiln_error **err)
{
  autoclose int src = overlay_lower_open (c->od->lower, e->layer, path);
  if (src < 0)
    return kiln_error_make (err, -src, "open '/%s' in layer %u", path, e->layer);
  autoclose int dst = openat (dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (dst < 0)
    return kiln_error_make (err, errno, "create '/%s' in the root", path);
  if (fs_copy_fd (src, dst, UINT64_MAX, NULL, err) < 0)
    return kiln_error_wrap (err, "copy '/%s'", path);
  c->copied++;
  return 0;
}

static int
mat_file (mat_ctx *c, int dfd, const char *name, const char *path, const mat_ent *e, kiln_error **err)
{
  overlay_dir *od = c->od;
  bool linked = false;
  /* Plain-directory layers are somebody's files (tests, a context): never
   * share or chmod their inodes. */
  /* A store file with more links than its layer's hardlink group may be a
   * user's: a COPY source the store links and verifies on reuse
   * (src/store/links.c), whose mode and ctime must not change. Only files
   * that are the store's alone are shared (and made read-only); a group
   * already linked into this root (an earlier name of it) is ours. */
  struct stat lst;
  unsigned group = e->attr.nlink ? e->attr.nlink : 1;
  if (overlay_lower_is_store (od->lower, e->layer)
      && fstatat (overlay_lower_dirfd (od->lower, e->layer), path, &lst, AT_SYMLINK_NOFOLLOW) == 0
      && (lst.st_nlink <= group || od_meta_get (od, &lst, 0)))
    {
      if (linkat (overlay_lower_dirfd (od->lower, e->layer), path, dfd, name, 0) == 0)
        linked = true;
      else if (errno != EXDEV && errno != EMLINK && errno != EPERM)
        return kiln_error_make (err, errno, "link '/%s' from layer %u", path, e->layer);
    }
  int r = linked ? 0 : mat_copy (c, dfd, name, path, e, err);
  if (r < 0)
    return r;
  c->linked += linked;
  struct stat st;
  if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_make (err, errno, "stat '/%s' in the root", path);
  mode_t ro = od_ro_mode (e->attr.mode);
  if ((st.st_mode & 07777) != ro && fchmodat (dfd, name, ro, 0) < 0)
    return kiln_error_make (err, errno, "make '/%s' read-only", path);
  return mat_register (c, dfd, name, path, e, OD_LOWER, err);
}

static int mat_dir (mat_ctx *c, const char *path, int dfd, const unsigned *layers, size_t nl,
                    kiln_error **err);

static int
mat_entry (mat_ctx *c, int dfd, const char *path, const mat_ent *e, kiln_error **err)
{
  const char *name = e->name;
  mode_t t = e->attr.mode & S_IFMT;
  int r = 0;
  uint32_t flags = 0;
  if (t == S_IFREG)
    return mat_file (c, dfd, name, path, e, err);
  if (t == S_IFDIR)
    {
      if (mkdirat (dfd, name, 0755) < 0)
        return kiln_error_make (err, errno, "mkdir '/%s' in the root", path);
      autoclose int sub = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0)
        return kiln_error_make (err, errno, "open '/%s' in the root", path);
      fchmod (sub, 0755); /* whatever the umask took */
      if ((r = mat_register (c, dfd, name, path, e, 0, err)) < 0
          || (r = mat_dir (c, path, sub, e->dlayers, e->ndl, err)) < 0)
        return r;
      struct timespec ts[2] = { e->attr.mtime, e->attr.mtime };
      futimens (sub, ts);
      return 0;
    }
  if (t == S_IFLNK)
    r = symlinkat (e->attr.symlink ? e->attr.symlink : "", dfd, name);
  else if (t == S_IFIFO)
    r = mknodat (dfd, name, S_IFIFO | 0644, 0);
  else
    {
      /* a device is never a real node here, nor a socket */
      int fd = openat (dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      r = fd < 0 ? -1 : close (fd);
      flags = OD_PLACEHOLDER;
    }
  if (r < 0)
    return kiln_error_make (err, errno, "make '/%s' in the root", path);
  struct timespec ts[2] = { e->attr.mtime, e->attr.mtime };
  utimensat (dfd, name, ts, AT_SYMLINK_NOFOLLOW);
  return mat_register (c, dfd, name, path, e, flags, err);
}

static int
mat_dir (mat_ctx *c, const char *path, int dfd, const unsigned *layers, size_t nl, kiln_error **err)
{
  mat_list l = { 0 };
  int r = 0;
  for (size_t k = 0; k < nl && r >= 0; k++)
    {
      int opaque = 0;
      l.layer = layers[k];
      r = overlay_lower_list (c->od->lower, layers[k], path, &opaque, mat_list_cb, &l);
      if (r == -ENOENT)
        r = 0;
      else if (r < 0)
        r = kiln_error_make (err, -r, "list '/%s' in layer %u", path, layers[k]);
      if (opaque)
        break;
    }
  for (size_t i = 0; i < l.n && r >= 0; i++)
    if (!l.v[i].whiteout)
      {
        autofree char *p = od_join (path, l.v[i].name);
        r = mat_entry (c, dfd, p, &l.v[i], err);
      }
  mat_list_free (&l);
  return r;
}

int
od_materialize (overlay_dir *od, kiln_error **err)
{
  mat_ctx c = { .od = od };
  unsigned n = overlay_lower_count (od->lower);
  autofree unsigned *layers = xcalloc (n + 1, sizeof *layers);
  for (unsigned k = 0; k < n; k++)
    layers[k] = n - 1 - k;
  overlay_lower_attr ra = { .mode = S_IFDIR | 0755 };
  if (n && overlay_lower_root_attr (od->lower, &ra) == 0)
    free (ra.symlink);
  struct stat st;
  int64_t bt;
  int r = od_statx (od->root_fd, "", &st, &bt);
  if (r < 0)
    return kiln_error_make (err, -r, "stat the root");
  od_meta *m = od_meta_put (od, &st, bt);
  m->mode = S_IFDIR | (ra.mode & 07777);
  m->uid = ra.uid;
  m->gid = ra.gid;
  od_set_add (&od->base, "");
  if ((r = mat_dir (&c, "", od->root_fd, layers, n, err)) < 0)
    return r;
  struct timespec ts[2] = { ra.mtime, ra.mtime };
  futimens (od->root_fd, ts);
  return 0;
}

/* ---- further layers on top of the tree ---- */
typedef struct apply_ctx
{
  mat_ctx m;
  od_set gone_self, gone_under; /* base names removed / emptied below */
  size_t removed;
} apply_ctx;

static int apply_dir (apply_ctx *c, const char *path, int dfd, const unsigned *layers, size_t nl,
                      kiln_error **err);

static int
apply_remove (apply_ctx *c, int dfd, const char *name, const char *path, kiln_error **err)
{
  if (fs_rm_rf_at (dfd, name, err) < 0)
    return kiln_error_wrap (err, "remove '/%s' from the root", path);
  od_set_add (&c->gone_self, path);
  c->removed++;
  return 0;
}

/* An opaque directory of a new layer: nothing below it from the tree stays. */
static int
apply_clear (apply_ctx *c, int dfd, const char *path, kiln_error **err)
{
  int d = fcntl (dfd, F_DUPFD_CLOEXEC, 3);
  DIR *dir = d < 0 ? NULL : fdopendir (d);
  if (!dir)
    {
      int e = errno;
      if (d >= 0)
        close (d);
      return kiln_error_make (err, e, "list '/%s' in the root", path);
    }
  autostrv char **names = NULL;
  for (struct dirent *de; (de = readdir (dir));)
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      strv_push (&names, de->d_name);
  closedir (dir);
  for (char **n = names; n && *n; n++)
    {
      autofree char *p = od_join (path, *n);
      if (apply_remove (c, dfd, *n, p, err) < 0)
        return -1;
    }
  od_set_add (&c->gone_under, path);
  return 0;
}

/* A directory of the new layers that merges with the tree's: its own
 * attributes when a new layer lists it explicitly, then its entries. */
static int
apply_merge_dir (apply_ctx *c, int dfd, const char *path, const mat_ent *e, const struct stat *st,
                 kiln_error **err)
{
  overlay_dir *od = c->m.od;
  autoclose int sub = openat (dfd, e->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sub < 0)
    return kiln_error_make (err, errno, "open '/%s' in the root", path);
  struct timespec ts[2] = { st->st_atim, st->st_mtim };
  if (!e->attr.implicit)
    {
      od_meta *m = od_meta_get (od, st, 0);
      if (m)
        od_meta_free_xattrs (od, m);
      if (mat_register (&c->m, dfd, e->name, path, e, 0, err) < 0)
        return -1;
      ts[0] = ts[1] = e->attr.mtime;
    }
  if (apply_dir (c, path, sub, e->dlayers, e->ndl, err) < 0)
    return -1;
  futimens (sub, ts);
  return 0;
}

static int
apply_entry (apply_ctx *c, int dfd, const char *path, const mat_ent *e, kiln_error **err)
{
  struct stat st;
  bool exists = fstatat (dfd, e->name, &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (!exists && errno != ENOENT)
    return kiln_error_make (err, errno, "stat '/%s' in the root", path);
  if (e->whiteout)
    return exists ? apply_remove (c, dfd, e->name, path, err) : 0;
  /* a directory merges with the tree's unless a new layer below the one
   * that lists it replaced or deleted it (closed) */
  if (exists && S_ISDIR (st.st_mode) && S_ISDIR (e->attr.mode) && !e->closed)
    return apply_merge_dir (c, dfd, path, e, &st, err);
  if (exists && apply_remove (c, dfd, e->name, path, err) < 0)
    return -1;
  return mat_entry (&c->m, dfd, path, e, err);
}

static int
apply_dir (apply_ctx *c, const char *path, int dfd, const unsigned *layers, size_t nl, kiln_error **err)
{
  mat_list l = { 0 };
  int r = 0, opaque = 0;
  for (size_t k = 0; k < nl && r >= 0 && !opaque; k++)
    {
      l.layer = layers[k];
      r = overlay_lower_list (c->m.od->lower, layers[k], path, &opaque, mat_list_cb, &l);
      if (r == -ENOENT)
        r = 0;
      else if (r < 0)
        r = kiln_error_make (err, -r, "list '/%s' in layer %u", path, layers[k]);
    }
  if (r >= 0 && opaque)
    r = apply_clear (c, dfd, path, err);
  for (size_t i = 0; i < l.n && r >= 0; i++)
    {
      autofree char *p = od_join (path, l.v[i].name);
      r = apply_entry (c, dfd, p, &l.v[i], err);
    }
  mat_list_free (&l);
  return r;
}

int
overlay_dir_apply (overlay_dir *od, overlay_lower *lower, unsigned from, kiln_error **err)
{
  unsigned n = overlay_lower_count (lower);
  if (from > n)
    {
      overlay_lower_free (lower);
      return kiln_error_make (err, EINVAL, "overlay dir: apply layers from %u of %u", from, n);
    }
  overlay_lower_free (od->lower);
  od->lower = lower;
  if (from == n)
    return 0;
  apply_ctx c = { .m = { .od = od } };
  /* mat_register adds what it makes to od->base: collect that apart, so
   * that dropping the removed names afterwards keeps it */
  od_set old_base = od->base;
  od->base = (od_set) { 0 };
  autofree unsigned *layers = xcalloc (n - from, sizeof *layers);
  for (unsigned k = 0; k < n - from; k++)
    layers[k] = n - 1 - k;
  int r = apply_dir (&c, "", od->root_fd, layers, n - from, err);
  od_set made = od->base;
  od->base = old_base;
  od_base_drop_gone (od, &c.gone_self, &c.gone_under);
  for (size_t k = 0; k < made.cap; k++)
    if (made.slot[k])
      od_set_add (&od->base, made.slot[k]);
  od_set_clear (&made);
  od_set_clear (&c.gone_self);
  od_set_clear (&c.gone_under);
  if (r < 0)
    return kiln_error_wrap (err, "overlay dir: apply layers %u to %u", from + 1, n);
  overlay_lower_attr ra = { .mode = S_IFDIR | 0755 };
  if (overlay_lower_root_attr (od->lower, &ra) == 0)
    {
      free (ra.symlink);
      struct stat st;
      od_meta *m = fstat (od->root_fd, &st) == 0 ? od_meta_get (od, &st, 0) : NULL;
      if (m)
        {
          m->mode = S_IFDIR | (ra.mode & 07777);
          m->uid = ra.uid;
          m->gid = ra.gid;
        }
      struct timespec ts[2] = { ra.mtime, ra.mtime };
      futimens (od->root_fd, ts);
    }
  log_debug ("overlay dir: layers %u to %u applied to the tree (%zu linked, %zu copied, %zu removed)", from + 1,
             n, c.m.linked, c.m.copied, c.removed);
  return 0;
}
