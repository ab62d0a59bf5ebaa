/* overlay_dir.c - the metadata table, path sets, paths in the root,
 * mask paths, new/free and present (materialization: overlay_dir_mat.c); see
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

bool
od_gone_below (const od_set *gone_self, const od_set *gone_under, const char *path)
{
  if (od_set_has (gone_self, path))
    return true;
  autofree char *p = xstrdup (path);
  for (char *s; (s = strrchr (p, '/'));)
    {
      *s = '\0';
      if (od_set_has (gone_under, p) || od_set_has (gone_self, p))
        return true;
    }
  return *path && (od_set_has (gone_under, "") || od_set_has (gone_self, ""));
}

/* Keep the names of base that are not gone (od_gone_below). */
void
od_base_drop_gone (overlay_dir *od, const od_set *gone_self, const od_set *gone_under)
{
  if (!gone_self->n && !gone_under->n)
    return;
  od_set nb = { 0 };
  for (size_t k = 0; k < od->base.cap; k++)
    if (od->base.slot[k] && !od_gone_below (gone_self, gone_under, od->base.slot[k]))
      od_set_add (&nb, od->base.slot[k]);
  od_set_clear (&od->base);
  od->base = nb;
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
int
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
  if ((r = od_materialize (od, err)) < 0)
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
