/* overlay_dir.c - the metadata table, path sets, materialization of the
 * lower layers as a real tree, mask paths, new/free and present; see
 * overlay_dir_internal.h and docs/design/overlay-dir.md.
 */
#include "overlay/overlay_dir_internal.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/openat2.h>

/* ---- sets ---- */
static size_t
set_find (const od_set *s, const char *k)
{
  for (size_t i = hash_fnv1a_str (k) & (s->cap - 1);; i = (i + 1) & (s->cap - 1))
    if (!s->slot[i] || !strcmp (s->slot[i], k))
      return i;
}

bool
od_set_has (const od_set *s, const char *k)
{
  return s->cap && s->slot[set_find (s, k)];
}

bool
od_set_add (od_set *s, const char *k)
{
  if (od_set_has (s, k))
    return false;
  if ((s->n + 1) * 4 > s->cap * 3)
    {
      od_set ns = { .cap = s->cap ? s->cap * 2 : 64 };
      ns.slot = xcalloc (ns.cap, sizeof *ns.slot);
      for (size_t i = 0; i < s->cap; i++)
        if (s->slot[i])
          ns.slot[set_find (&ns, s->slot[i])] = s->slot[i];
      ns.n = s->n;
      free (s->slot);
      *s = ns;
    }
  s->slot[set_find (s, k)] = xstrdup (k);
  s->n++;
  return true;
}

void
od_set_clear (od_set *s)
{
  for (size_t i = 0; i < s->cap; i++)
    free (s->slot[i]);
  free (s->slot);
  *s = (od_set) { 0 };
}

/* ---- table ---- */
static size_t
meta_hash (uint64_t dev, uint64_t ino)
{
  uint64_t h = (ino ^ (dev << 32) ^ (dev >> 32)) * 0x9E3779B97F4A7C15ull;
  return (size_t) (h ^ (h >> 29));
}

static size_t
meta_find (const overlay_dir *od, uint64_t dev, uint64_t ino)
{
  for (size_t i = meta_hash (dev, ino) & (od->tab_cap - 1);; i = (i + 1) & (od->tab_cap - 1))
    if (!od->tab[i].ino || (od->tab[i].ino == ino && od->tab[i].dev == dev))
      return i;
}

static bool
meta_stale (const od_meta *e, const struct stat *st, int64_t btime)
{
  mode_t want = (e->flags & OD_PLACEHOLDER) ? S_IFREG : (e->mode & S_IFMT);
  if ((st->st_mode & S_IFMT) != want)
    return true;
  return btime && e->btime && btime != e->btime;
}

od_meta *
od_meta_get (overlay_dir *od, const struct stat *st, int64_t btime)
{
  if (!od->tab_cap || !st->st_ino)
    return NULL;
  od_meta *e = &od->tab[meta_find (od, st->st_dev, st->st_ino)];
  if (!e->ino || meta_stale (e, st, btime))
    return NULL;
  return e;
}

void
od_meta_free_xattrs (overlay_dir *od, od_meta *e)
{
  for (uint32_t k = 0; k < e->nx; k++)
    {
      od_xattr_account (od, OD_XATTR_COST (e->x[k].name, e->x[k].len), 0);
      free (e->x[k].name);
      free (e->x[k].value);
    }
  free (e->x);
  e->x = NULL;
  e->nx = 0;
  strv_free (e->names);
  e->names = NULL;
}

od_meta *
od_meta_put (overlay_dir *od, const struct stat *st, int64_t btime)
{
  if ((od->tab_n + 1) * 4 > od->tab_cap * 3)
    {
      size_t oc = od->tab_cap;
      od_meta *old = od->tab;
      od->tab_cap = oc ? oc * 2 : 1024;
      od->tab = xcalloc (od->tab_cap, sizeof *od->tab);
      for (size_t i = 0; i < oc; i++)
        if (old[i].ino)
          od->tab[meta_find (od, old[i].dev, old[i].ino)] = old[i];
      free (old);
    }
  od_meta *e = &od->tab[meta_find (od, st->st_dev, st->st_ino)];
  if (!e->ino)
    od->tab_n++;
  else if (!meta_stale (e, st, btime))
    return e;
  od_meta_free_xattrs (od, e);
  *e = (od_meta) { .dev = st->st_dev, .ino = st->st_ino, .btime = btime, .mode = st->st_mode,
                   .atime = st->st_atim, .mtime = st->st_mtim };
  return e;
}

size_t
overlay_dir_table_entry_size (void)
{
  return sizeof (od_meta);
}

size_t
overlay_dir_table_entries (const overlay_dir *od)
{
  return od->tab_n;
}

/* ---- paths ---- */
char *
od_join (const char *a, const char *b)
{
  return *a ? xasprintf ("%s/%s", a, b) : xstrdup (b);
}

mode_t
od_ro_mode (mode_t mode)
{
  return (mode & 0111) ? 0555 : 0444;
}

int
od_chmod_fd (int fd, mode_t mode)
{
  char p[64];
  snprintf (p, sizeof p, "/proc/self/fd/%d", fd);
  return chmod (p, mode) < 0 ? -errno : 0;
}

/* statx into the fields of struct stat kiln uses, plus the birth time. */
static int
od_statx (int dirfd, const char *name, struct stat *st, int64_t *btime)
{
  struct statx x;
  int fl = AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT | (*name ? 0 : AT_EMPTY_PATH);
  if (statx (dirfd, name, fl, STATX_BASIC_STATS | STATX_BTIME, &x) < 0)
    return -errno;
  memset (st, 0, sizeof *st);
  st->st_dev = makedev (x.stx_dev_major, x.stx_dev_minor);
  st->st_ino = x.stx_ino;
  st->st_mode = x.stx_mode;
  st->st_nlink = x.stx_nlink;
  st->st_uid = x.stx_uid;
  st->st_gid = x.stx_gid;
  st->st_rdev = makedev (x.stx_rdev_major, x.stx_rdev_minor);
  st->st_size = (off_t) x.stx_size;
  st->st_atim = (struct timespec) { x.stx_atime.tv_sec, x.stx_atime.tv_nsec };
  st->st_mtim = (struct timespec) { x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec };
  st->st_ctim = (struct timespec) { x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec };
  if (btime)
    *btime = (x.stx_mask & STATX_BTIME)
                 ? (int64_t) x.stx_btime.tv_sec * 1000000000 + x.stx_btime.tv_nsec
                 : 0;
  return 0;
}

int64_t
od_btime (int dirfd, const char *name)
{
  struct stat st;
  int64_t b = 0;
  return od_statx (dirfd, name, &st, &b) < 0 ? 0 : b;
}

/* The step made the tree: never follow a symlink in it, never leave it. */
static int
open_beneath (overlay_dir *od, const char *path, int flags)
{
  if (!*path)
    {
      int d = fcntl (od->root_fd, F_DUPFD_CLOEXEC, 3);
      return d < 0 ? -errno : d;
    }
  struct open_how how = { .flags = (uint64_t) (flags | O_CLOEXEC | O_NOFOLLOW),
                          .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
  int fd;
  do
    fd = (int) syscall (SYS_openat2, od->root_fd, path, &how, sizeof how);
  while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  return fd < 0 ? -errno : fd;
}

int
od_open_parent (overlay_dir *od, const char *path, const char **name)
{
  const char *slash = strrchr (path, '/');
  if (!*path)
    return -EINVAL;
  *name = slash ? slash + 1 : path;
  autofree char *dir = slash ? xstrndup (path, (size_t) (slash - path)) : xstrdup ("");
  return open_beneath (od, dir, O_PATH | O_DIRECTORY);
}

int
od_lstat (overlay_dir *od, const char *path, struct stat *st, int64_t *btime)
{
  if (!*path)
    return od_statx (od->root_fd, "", st, btime);
  const char *name;
  autoclose int dfd = od_open_parent (od, path, &name);
  if (dfd < 0)
    return dfd;
  return od_statx (dfd, name, st, btime);
}

bool
od_masked (overlay_dir *od, const char *path, const struct stat *st)
{
  od_meta *e = st ? od_meta_get (od, st, 0) : NULL;
  if (e && (e->flags & OD_MASKED))
    return true;
  size_t pl = strlen (path);
  for (char **m = od->masks; m && *m; m++)
    {
      size_t ml = strlen (*m);
      if (pl >= ml && !strncmp (path, *m, ml) && (path[ml] == '\0' || path[ml] == '/'))
        return true;
    }
  return false;
}

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

static int
materialize (overlay_dir *od, kiln_error **err)
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

/* ---- mask paths ---- */
static void
set_masks (overlay_dir *od, const char *const *paths)
{
  strv_free (od->masks);
  free (od->mask_isdir);
  od->masks = NULL;
  size_t n = 0;
  for (const char *const *p = paths; p && *p; p++)
    n++;
  od->mask_isdir = xcalloc (n + 1, sizeof *od->mask_isdir);
  n = 0;
  for (const char *const *p = paths; p && *p; p++)
    {
      const char *s = *p;
      while (*s == '/')
        s++;
      size_t l = strlen (s);
      bool isdir = l && s[l - 1] == '/';
      while (l && s[l - 1] == '/')
        l--;
      if (!l)
        continue;
      autofree char *v = xstrndup (s, l);
      strv_push (&od->masks, v);
      od->mask_isdir[n++] = isdir;
    }
}

/* A placeholder for a mask path (or a directory above one) the image lacks:
 * kiln binds over it; it is part of the step's starting state. */
static int
mask_make (overlay_dir *od, int dfd, const char *name, const char *path, bool isdir)
{
  if (isdir ? mkdirat (dfd, name, 0755) < 0 : mknodat (dfd, name, S_IFREG | 0644, 0) < 0)
    return -errno;
  struct stat st;
  int64_t bt;
  int r = od_statx (dfd, name, &st, &bt);
  if (r < 0)
    return r;
  od_meta *m = od_meta_put (od, &st, bt);
  m->mode = isdir ? S_IFDIR | 0755 : S_IFREG | 0644;
  m->uid = 0;
  m->gid = 0;
  m->flags = OD_MASK_MADE;
  od_set_add (&od->base, path);
  return 0;
}

static void
ensure_masks (overlay_dir *od)
{
  for (size_t i = 0; od->masks && od->masks[i]; i++)
    {
      const char *mk = od->masks[i];
      autoclose int dfd = fcntl (od->root_fd, F_DUPFD_CLOEXEC, 3);
      for (const char *p = mk; dfd >= 0;)
        {
          size_t nl = strcspn (p, "/");
          bool last = p[nl] == '\0';
          autofree char *name = xstrndup (p, nl);
          autofree char *path = xstrndup (mk, (size_t) (p - mk) + nl);
          struct stat st;
          if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0
              && (mask_make (od, dfd, name, path, !last || od->mask_isdir[i]) < 0
                  || fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0))
            break;
          if (last)
            {
              od_meta *m = od_meta_get (od, &st, 0);
              if (!m)
                {
                  m = od_meta_put (od, &st, 0);
                  m->uid = m->gid = 0;
                }
              m->flags |= OD_MASKED;
              break;
            }
          int sub = openat (dfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          close (dfd);
          dfd = sub;
          p += nl + 1;
        }
    }
}

/* Placeholders of paths no longer masked go unless shipped or filled. */
static void
prune_masks (overlay_dir *od, char **old)
{
  for (size_t i = 0; i < od->tab_cap; i++)
    od->tab[i].flags &= ~(uint32_t) OD_MASKED;
  for (char **p = old; p && *p; p++)
    {
      if (od_masked (od, *p, NULL))
        continue;
      struct stat st;
      int64_t bt;
      const char *name;
      if (od_lstat (od, *p, &st, &bt) < 0)
        continue;
      od_meta *m = od_meta_get (od, &st, bt);
      if (!m || !(m->flags & OD_MASK_MADE) || (S_ISREG (st.st_mode) && st.st_size))
        continue;
      autoclose int dfd = od_open_parent (od, *p, &name);
      if (dfd >= 0 && unlinkat (dfd, name, S_ISDIR (st.st_mode) ? AT_REMOVEDIR : 0) == 0)
        {
          /* no longer part of any step's starting state: rebuild base without it */
          od_set nb = { 0 };
          for (size_t k = 0; k < od->base.cap; k++)
            if (od->base.slot[k] && strcmp (od->base.slot[k], *p))
              od_set_add (&nb, od->base.slot[k]);
          od_set_clear (&od->base);
          od->base = nb;
        }
    }
}

int
overlay_dir_begin_step (overlay_dir *od, uid_t create_uid, gid_t create_gid, const char *const *mask_paths)
{
  od->create_uid = create_uid;
  od->create_gid = create_gid;
  autostrv char **old = od->masks;
  od->masks = NULL;
  set_masks (od, mask_paths);
  prune_masks (od, old);
  ensure_masks (od);
  return 0;
}

/* ---- new / free ---- */
int
overlay_dir_new (const overlay_dir_config *cfg, overlay_dir **out, kiln_error **err)
{
  overlay_dir *od = xzalloc (sizeof *od);
  od->lower = cfg->lower;
  od->root_fd = -1;
  od->gen = 1;
  od->create_uid = cfg->create_uid;
  od->create_gid = cfg->create_gid;
  od->scratch_fd = fcntl (cfg->scratch_dirfd, F_DUPFD_CLOEXEC, 3);
  if (od->scratch_fd < 0)
    {
      int e = errno;
      overlay_dir_free (od);
      return kiln_error_make (err, e, "overlay dir: dup scratch directory");
    }
  char link[64], buf[PATH_MAX];
  snprintf (link, sizeof link, "/proc/self/fd/%d", od->scratch_fd);
  ssize_t n = readlink (link, buf, sizeof buf - 1);
  int r = 0;
  if (n < 0)
    r = kiln_error_make (err, errno, "overlay dir: path of the scratch directory");
  else if (mkdirat (od->scratch_fd, "root", 0755) < 0)
    r = kiln_error_make (err, errno, "overlay dir: mkdir 'root' in the scratch directory");
  else if ((od->root_fd = openat (od->scratch_fd, "root", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
    r = kiln_error_make (err, errno, "overlay dir: open 'root'");
  if (r < 0)
    {
      overlay_dir_free (od);
      return r;
    }
  buf[n] = '\0';
  od->root_path = xasprintf ("%s/root", buf);
  fchmod (od->root_fd, 0755);
  set_masks (od, cfg->mask_paths);
  if ((r = materialize (od, err)) < 0)
    {
      overlay_dir_free (od);
      return kiln_error_wrap (err, "overlay dir: materialize the layers");
    }
  ensure_masks (od);
  *out = od;
  return 0;
}

void
overlay_dir_free (overlay_dir *od)
{
  if (!od)
    return;
  if (od->scratch_fd >= 0)
    {
      autoerror kiln_error *err = NULL;
      if (od->root_fd >= 0)
        fs_rm_rf_at (od->scratch_fd, "root", &err);
      for (unsigned g = 1; g < od->gen; g++)
        {
          char nm[32];
          snprintf (nm, sizeof nm, "frozen-%u", g);
          kiln_error_clear (&err);
          fs_rm_rf_at (od->scratch_fd, nm, &err);
        }
      close (od->scratch_fd);
    }
  if (od->root_fd >= 0)
    close (od->root_fd);
  for (size_t i = 0; i < od->tab_cap; i++)
    if (od->tab[i].ino)
      od_meta_free_xattrs (od, &od->tab[i]);
  free (od->tab);
  od_set_clear (&od->base);
  od_set_clear (&od->dirty);
  od_set_clear (&od->deleted);
  strv_free (od->masks);
  free (od->mask_isdir);
  free (od->bw_path);
  free (od->root_path);
  overlay_lower_free (od->lower);
  free (od);
}

const char *
overlay_dir_root_path (const overlay_dir *od)
{
  return od->root_path;
}

int
overlay_dir_root_fd (const overlay_dir *od)
{
  return od->root_fd;
}

void
overlay_dir_present (overlay_dir *od, const struct stat *real, struct stat *shown)
{
  *shown = *real;
  od_meta *e = od_meta_get (od, real, 0);
  if (!e)
    {
      shown->st_uid = od->create_uid;
      shown->st_gid = od->create_gid;
      return;
    }
  shown->st_mode = e->mode;
  shown->st_uid = e->uid;
  shown->st_gid = e->gid;
  shown->st_rdev = (dev_t) e->rdev;
  if (e->flags & OD_LOWER)
    {
      shown->st_atim = e->atime;
      shown->st_mtim = e->mtime;
    }
}
