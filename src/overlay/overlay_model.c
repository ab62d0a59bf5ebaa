/* overlay_model.c - node table, merged lookups, copy-up and the write log.
 *
 * Namespace: every inode lives in a table keyed by its number (stable for
 * the mount's life); directories hold a hash of dentries (name -> inode).
 * A lower directory is merged lazily, on first use, from the layers that
 * contribute to it (top first, whiteouts and opaque markers applied).
 * Write log: each directory keeps the set of child names touched in the
 * current step (created, deleted, renamed, changed) and the subset deleted
 * from what the step started with; touching a name marks the directory's
 * own name in its parent, up to the root. Commit visits only marked names.
 */
#include "overlay/overlay_model.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#define RENAME_EXCHANGE (1 << 1)
#endif

/* ---- small string set (write log sets) ---- */
typedef struct strset
{
  char **slot;
  size_t cap, n;
} strset;

static bool
strset_has (const strset *s, const char *k)
{
  if (!s->cap)
    return false;
  for (size_t i = hash_fnv1a_str (k) & (s->cap - 1);; i = (i + 1) & (s->cap - 1))
    {
      if (!s->slot[i])
        return false;
      if (!strcmp (s->slot[i], k))
        return true;
    }
}

/* Returns true if added, false if present. */
static bool
strset_add (strset *s, const char *k)
{
  if (strset_has (s, k))
    return false;
  if ((s->n + 1) * 2 > s->cap)
    {
      strset ns = { .cap = s->cap ? s->cap * 2 : 8 };
      ns.slot = xcalloc (ns.cap, sizeof *ns.slot);
      for (size_t i = 0; i < s->cap; i++)
        if (s->slot[i])
          {
            size_t j = hash_fnv1a_str (s->slot[i]) & (ns.cap - 1);
            while (ns.slot[j])
              j = (j + 1) & (ns.cap - 1);
            ns.slot[j] = s->slot[i];
            ns.n++;
          }
      free (s->slot);
      *s = ns;
    }
  size_t j = hash_fnv1a_str (k) & (s->cap - 1);
  while (s->slot[j])
    j = (j + 1) & (s->cap - 1);
  s->slot[j] = xstrdup (k);
  s->n++;
  return true;
}

static void
strset_clear (strset *s)
{
  for (size_t i = 0; i < s->cap; i++)
    free (s->slot[i]);
  free (s->slot);
  *s = (strset) { 0 };
}

/* ---- nodes ---- */
typedef struct inode inode;
typedef struct dentry dentry;

enum { MASK_NONE, MASK_SKIP };

struct dentry
{
  char *name;
  inode *parent;
  inode *inode;
  dentry *hnext;       /* chain in parent's hash */
  dentry *alias_next;  /* other names of the same inode */
  bool base;           /* existed when the step started */
  uint8_t mask;
  /* A placeholder the view made for a mask path the image lacks; it goes
   * away again when a later step on the same mount no longer masks it
   * (unless a layer shipped it meanwhile). */
  bool synth;
};

typedef struct xattr_ent
{
  char *name;
  void *val;
  size_t len;
} xattr_ent;

struct inode
{
  uint64_t ino;
  inode *tnext;
  uint64_t nlookup;
  unsigned open_count;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  dev_t rdev;
  uint64_t size;
  struct timespec atime, mtime, ctime;
  char *symlink;
  char *lpath;               /* path in the lower layers, NULL if none */
  uint16_t *llayers;         /* dirs: contributing layers, top first; files: [0] */
  unsigned nll;
  bool lchain_closed;        /* while merging the parent: lower layers stop here */
  bool limplicit;            /* attributes are an implicit directory's defaults */
  unsigned lnlink;           /* lower data's link count (its other names are
                              * separate inodes here, as in overlayfs) */
  bool has_upper;
  unsigned upper_gen;
  bool xloaded;
  xattr_ent *x;
  size_t nx;
  dentry *aliases;
  bool changed;
  /* commit bookkeeping */
  uint64_t emit_commit;
  char *emit_path;
  /* directories */
  bool loaded;
  dentry **buckets;
  size_t nbuckets, nentries;
  unsigned nsubdirs;
  strset dirty;
  strset deleted;
};

struct overlay_model
{
  pthread_mutex_t lock;
  overlay_lower *lower;
  int scratch_fd;
  int *upper_fds;            /* by generation */
  unsigned gen;
  overlay_id_mode id_mode;
  uid_t present_uid;
  gid_t present_gid;
  uid_t create_uid;
  gid_t create_gid;
  char **masks;
  inode **itab;
  size_t itab_cap, itab_n;
  uint64_t next_ino;
  uint64_t commits;
  inode *root;
};

static struct timespec
now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_REALTIME, &t);
  return t;
}

static inode *
ino_get (overlay_model *m, uint64_t ino)
{
  if (!m->itab_cap)
    return NULL;
  for (inode *i = m->itab[ino & (m->itab_cap - 1)]; i; i = i->tnext)
    if (i->ino == ino)
      return i;
  return NULL;
}

static void
itab_insert (overlay_model *m, inode *n)
{
  if (m->itab_n + 1 > m->itab_cap)
    {
      size_t ncap = m->itab_cap ? m->itab_cap * 2 : 1024;
      inode **nt = xcalloc (ncap, sizeof *nt);
      for (size_t b = 0; b < m->itab_cap; b++)
        for (inode *i = m->itab[b], *next; i; i = next)
          {
            next = i->tnext;
            i->tnext = nt[i->ino & (ncap - 1)];
            nt[i->ino & (ncap - 1)] = i;
          }
      free (m->itab);
      m->itab = nt;
      m->itab_cap = ncap;
    }
  n->tnext = m->itab[n->ino & (m->itab_cap - 1)];
  m->itab[n->ino & (m->itab_cap - 1)] = n;
  m->itab_n++;
}

static void
itab_remove (overlay_model *m, inode *n)
{
  for (inode **p = &m->itab[n->ino & (m->itab_cap - 1)]; *p; p = &(*p)->tnext)
    if (*p == n)
      {
        *p = n->tnext;
        m->itab_n--;
        return;
      }
}

static inode *
inode_new (overlay_model *m, mode_t mode)
{
  inode *n = xzalloc (sizeof *n);
  n->ino = m->next_ino++;
  n->mode = mode;
  n->atime = n->mtime = n->ctime = now ();
  itab_insert (m, n);
  return n;
}

static void
data_name (const inode *n, char *buf, size_t len)
{
  snprintf (buf, len, "%llu", (unsigned long long) n->ino);
}

static void
inode_destroy (overlay_model *m, inode *n)
{
  itab_remove (m, n);
  if (n->has_upper && n->upper_gen == m->gen)
    {
      char nm[32];
      data_name (n, nm, sizeof nm);
      unlinkat (m->upper_fds[m->gen], nm, 0);
    }
  for (size_t i = 0; i < n->nx; i++)
    {
      free (n->x[i].name);
      free (n->x[i].val);
    }
  free (n->x);
  free (n->symlink);
  free (n->lpath);
  free (n->llayers);
  free (n->emit_path);
  /* a live directory is empty when freed; at teardown every inode is
   * destroyed from the table, so only the dentries are ours to free */
  for (size_t b = 0; b < n->nbuckets; b++)
    for (dentry *d = n->buckets[b], *next; d; d = next)
      {
        next = d->hnext;
        free (d->name);
        free (d);
      }
  free (n->buckets);
  strset_clear (&n->dirty);
  strset_clear (&n->deleted);
  free (n);
}

static void
maybe_free (overlay_model *m, inode *n)
{
  if (n != m->root && !n->nlookup && !n->open_count && !n->aliases)
    inode_destroy (m, n);
}

static unsigned
nlink_of (const inode *n)
{
  if (S_ISDIR (n->mode))
    return 2 + n->nsubdirs;
  unsigned c = 0;
  for (dentry *d = n->aliases; d; d = d->alias_next)
    c++;
  /* lower hardlinks keep reporting their lower count until copied up, as
   * overlayfs does; an unlinked inode reports 0 */
  if (c && !n->has_upper && n->lnlink > 1)
    c += n->lnlink - 1;
  return c;
}

/* ---- directory hash ---- */
static dentry *
dir_find (inode *dir, const char *name)
{
  if (!dir->nbuckets)
    return NULL;
  for (dentry *d = dir->buckets[hash_fnv1a_str (name) & (dir->nbuckets - 1)]; d; d = d->hnext)
    if (!strcmp (d->name, name))
      return d;
  return NULL;
}

static dentry *
dir_add (inode *dir, const char *name, inode *child, bool base)
{
  if (dir->nentries + 1 > dir->nbuckets)
    {
      size_t nb = dir->nbuckets ? dir->nbuckets * 2 : 16;
      dentry **t = xcalloc (nb, sizeof *t);
      for (size_t b = 0; b < dir->nbuckets; b++)
        for (dentry *d = dir->buckets[b], *next; d; d = next)
          {
            next = d->hnext;
            size_t h = hash_fnv1a_str (d->name) & (nb - 1);
            d->hnext = t[h];
            t[h] = d;
          }
      free (dir->buckets);
      dir->buckets = t;
      dir->nbuckets = nb;
    }
  dentry *d = xzalloc (sizeof *d);
  d->name = xstrdup (name);
  d->parent = dir;
  d->inode = child;
  d->base = base;
  size_t h = hash_fnv1a_str (name) & (dir->nbuckets - 1);
  d->hnext = dir->buckets[h];
  dir->buckets[h] = d;
  d->alias_next = child->aliases;
  child->aliases = d;
  dir->nentries++;
  if (S_ISDIR (child->mode))
    dir->nsubdirs++;
  return d;
}

/* Unhook d from its directory and its inode; returns the inode. */
static inode *
dir_del (inode *dir, dentry *d)
{
  for (dentry **p = &dir->buckets[hash_fnv1a_str (d->name) & (dir->nbuckets - 1)]; *p; p = &(*p)->hnext)
    if (*p == d)
      {
        *p = d->hnext;
        break;
      }
  inode *c = d->inode;
  for (dentry **p = &c->aliases; *p; p = &(*p)->alias_next)
    if (*p == d)
      {
        *p = d->alias_next;
        break;
      }
  dir->nentries--;
  if (S_ISDIR (c->mode))
    dir->nsubdirs--;
  free (d->name);
  free (d);
  return c;
}

/* ---- write log ---- */
static void
mark_name (overlay_model *m, inode *dir, const char *name)
{
  while (strset_add (&dir->dirty, name) && dir != m->root && dir->aliases)
    {
      dentry *up = dir->aliases;
      name = up->name;
      dir = up->parent;
    }
}

static void
mark_changed (overlay_model *m, inode *n)
{
  n->changed = true;
  n->ctime = now ();
  for (dentry *d = n->aliases; d; d = d->alias_next)
    mark_name (m, d->parent, d->name);
}

/* A base name goes away: the layer needs a whiteout for it. */
static void
log_removed (overlay_model *m, inode *dir, dentry *d)
{
  if (d->base)
    strset_add (&dir->deleted, d->name);
  mark_name (m, dir, d->name);
}

/* ---- lower merging ---- */
static char *
join (const char *a, const char *b)
{
  return *a ? xasprintf ("%s/%s", a, b) : xstrdup (b);
}

typedef struct merge_ctx
{
  overlay_model *m;
  inode *dir;
  unsigned layer;
  strset hidden;
} merge_ctx;

static void
ll_push (inode *n, unsigned layer)
{
  n->llayers = xreallocarray (n->llayers, n->nll + 1, sizeof *n->llayers);
  n->llayers[n->nll++] = layer;
}

static int
merge_cb (void *ud, const char *name, overlay_lower_kind kind, const overlay_lower_attr *a)
{
  merge_ctx *c = ud;
  if (!*name || !strcmp (name, ".") || !strcmp (name, "..") || strchr (name, '/'))
    return 0;
  dentry *d = dir_find (c->dir, name);
  if (d)
    {
      inode *n = d->inode;
      if (n->lpath && S_ISDIR (n->mode) && !n->lchain_closed && kind == OVERLAY_LOWER_ENTRY
          && S_ISDIR (a->mode))
        {
          ll_push (n, c->layer);
          if (n->limplicit && !a->implicit)
            {
              /* the first layer that really has the directory owns its
               * attributes; the merge runs before any use of n */
              n->uid = a->uid;
              n->gid = a->gid;
              n->mode = a->mode;
              n->atime = n->mtime = n->ctime = a->mtime;
              n->limplicit = false;
            }
        }
      else
        n->lchain_closed = true;
      return 0;
    }
  if (strset_has (&c->hidden, name))
    return 0;
  if (kind == OVERLAY_LOWER_WHITEOUT)
    {
      strset_add (&c->hidden, name);
      return 0;
    }
  inode *n = inode_new (c->m, a->mode);
  n->uid = a->uid;
  n->gid = a->gid;
  n->size = a->size;
  n->rdev = a->rdev;
  n->atime = n->mtime = n->ctime = a->mtime;
  n->symlink = a->symlink ? xstrdup (a->symlink) : NULL;
  n->limplicit = a->implicit && S_ISDIR (a->mode);
  n->lnlink = S_ISDIR (a->mode) ? 0 : a->nlink;
  n->lpath = join (c->dir->lpath, name);
  ll_push (n, c->layer);
  dir_add (c->dir, name, n, true);
  return 0;
}

static char *
path_of (overlay_model *m, inode *dir)
{
  if (dir == m->root || !dir->aliases)
    return xstrdup ("");
  autofree char *up = path_of (m, dir->aliases->parent);
  return join (up, dir->aliases->name);
}

static dentry *
add_placeholder (overlay_model *m, inode *dir, const char *name, bool isdir)
{
  inode *n = inode_new (m, (isdir ? S_IFDIR | 0755 : S_IFREG | 0644));
  n->xloaded = true;
  dentry *d = dir_add (dir, name, n, true);
  d->synth = true;
  return d;
}

static void
apply_masks (overlay_model *m, inode *dir)
{
  if (!m->masks)
    return;
  autofree char *p = path_of (m, dir);
  size_t pl = strlen (p);
  for (char **mk = m->masks; *mk; mk++)
    {
      const char *rest = *mk;
      if (pl)
        {
          if (strncmp (rest, p, pl) || rest[pl] != '/')
            continue;
          rest += pl + 1;
        }
      size_t nl = strcspn (rest, "/");
      if (!nl)
        continue;
      autofree char *name = xstrndup (rest, nl);
      bool last = rest[nl] == '\0' || (rest[nl] == '/' && rest[nl + 1] == '\0');
      bool isdir = rest[nl] == '/';
      dentry *d = dir_find (dir, name);
      if (!d)
        d = add_placeholder (m, dir, name, isdir);
      if (last)
        d->mask = MASK_SKIP;
    }
}

static void
load_dir (overlay_model *m, inode *dir)
{
  if (dir->loaded || !S_ISDIR (dir->mode))
    return;
  dir->loaded = true;
  if (dir->lpath)
    {
      merge_ctx c = { .m = m, .dir = dir };
      for (unsigned i = 0; i < dir->nll; i++)
        {
          int opaque = 0;
          c.layer = dir->llayers[i];
          overlay_lower_list (m->lower, c.layer, dir->lpath, &opaque, merge_cb, &c);
          if (opaque)
            break;
        }
      strset_clear (&c.hidden);
    }
  apply_masks (m, dir);
}

static void
load_xattrs_cb (void *ud, const char *name, const void *value, size_t len)
{
  inode *n = ud;
  n->x = xreallocarray (n->x, n->nx + 1, sizeof *n->x);
  n->x[n->nx].name = xstrdup (name);
  n->x[n->nx].val = xmemdup (value, len ? len : 1);
  n->x[n->nx].len = len;
  n->nx++;
}

static void
load_xattrs (overlay_model *m, inode *n)
{
  if (n->xloaded)
    return;
  n->xloaded = true;
  if (n->lpath && n->nll)
    overlay_lower_xattrs (m->lower, n->llayers[0], n->lpath, load_xattrs_cb, n);
}

/* ---- attributes ---- */
static int
upper_fd_of (overlay_model *m, const inode *n)
{
  return m->upper_fds[n->upper_gen];
}

static void
fill_stat (overlay_model *m, inode *n, struct stat *st)
{
  memset (st, 0, sizeof *st);
  st->st_ino = n->ino;
  st->st_mode = n->mode;
  st->st_nlink = nlink_of (n);
  if (m->id_mode == OVERLAY_IDS_SINGLE)
    {
      st->st_uid = m->present_uid;
      st->st_gid = m->present_gid;
    }
  else
    {
      st->st_uid = n->uid;
      st->st_gid = n->gid;
    }
  st->st_rdev = n->rdev;
  st->st_size = n->size;
  st->st_blksize = 4096;
  /* Whole 4 KiB blocks, as a disk filesystem reports them (du, ls -s). */
  st->st_blocks = (n->size + 4095) / 4096 * 8;
  st->st_atim = n->atime;
  st->st_mtim = n->mtime;
  st->st_ctim = n->ctime;
  if (n->has_upper)
    {
      char nm[32];
      struct stat ds;
      data_name (n, nm, sizeof nm);
      if (fstatat (upper_fd_of (m, n), nm, &ds, AT_SYMLINK_NOFOLLOW) == 0)
        {
          st->st_size = ds.st_size;
          st->st_blocks = ds.st_blocks;
          st->st_mtim = ds.st_mtim;
          if (ds.st_ctim.tv_sec > n->ctime.tv_sec
              || (ds.st_ctim.tv_sec == n->ctime.tv_sec && ds.st_ctim.tv_nsec > n->ctime.tv_nsec))
            st->st_ctim = ds.st_ctim;
        }
    }
  else if (S_ISDIR (n->mode))
    {
      st->st_size = 4096;
      st->st_blocks = 8;
    }
}

static int
copy_up (overlay_model *m, inode *n)
{
  if (n->has_upper && n->upper_gen == m->gen)
    return 0;
  char nm[32];
  data_name (n, nm, sizeof nm);
  int src = -1;
  if (n->has_upper)
    {
      src = openat (upper_fd_of (m, n), nm, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (src < 0)
        return -errno;
    }
  else if (n->lpath && n->nll)
    {
      src = overlay_lower_open (m->lower, n->llayers[0], n->lpath);
      if (src < 0)
        return src;
    }
  int dst = openat (m->upper_fds[m->gen], nm, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (dst < 0)
    {
      int e = errno;
      if (src >= 0)
        close (src);
      return -e;
    }
  int ret = 0;
  if (src >= 0)
    {
      if (ioctl (dst, FICLONE, src) < 0)
        {
          autoerror kiln_error *err = NULL;
          if (fs_copy_fd (src, dst, UINT64_MAX, NULL, &err) < 0)
            ret = err && err->status ? -err->status : -EIO;
        }
      close (src);
      struct timespec ts[2] = { n->atime, n->mtime };
      futimens (dst, ts);
    }
  close (dst);
  if (ret < 0)
    {
      unlinkat (m->upper_fds[m->gen], nm, 0);
      return ret;
    }
  n->has_upper = true;
  n->upper_gen = m->gen;
  return 0;
}

/* ---- public operations ---- */
static pthread_mutex_t *
lock_it (pthread_mutex_t *l)
{
  pthread_mutex_lock (l);
  return l;
}

static void
unlock_it (pthread_mutex_t **l)
{
  pthread_mutex_unlock (*l);
}

/* Body runs once under the model lock; `break` leaves it and the cleanup
 * attribute releases the lock on every exit path. */
#define LOCKED(m)                                                                        \
  for (pthread_mutex_t *_lk __attribute__ ((cleanup (unlock_it))) = lock_it (&(m)->lock), \
                       *_once = _lk;                                                     \
       _once; _once = NULL)

static int
valid_name (const char *name)
{
  size_t l = strlen (name);
  if (!l || !strcmp (name, ".") || !strcmp (name, "..") || strchr (name, '/'))
    return -EINVAL;
  if (l > 255)
    return -ENAMETOOLONG;
  return 0;
}

/* A name the step creates must be representable in a layer: an OCI layer
 * reads ".wh.NAME" as the deletion of NAME (and ".wh..wh..opq" as an opaque
 * marker), so a file of that name would silently turn into a whiteout when
 * the layer is applied. Refuse it rather than ship a different tree. */
static int
valid_new_name (const char *name)
{
  int ret = valid_name (name);
  if (ret == 0 && strncmp (name, ".wh.", 4) == 0)
    ret = -EPERM;
  return ret;
}

static int
get_dir (overlay_model *m, uint64_t ino, inode **out)
{
  inode *d = ino_get (m, ino);
  if (!d)
    return -ESTALE;
  if (!S_ISDIR (d->mode))
    return -ENOTDIR;
  if (!d->aliases && d != m->root)
    return -ENOENT; /* removed directory */
  load_dir (m, d);
  *out = d;
  return 0;
}

static int
get_ino (overlay_model *m, uint64_t ino, inode **out)
{
  *out = ino_get (m, ino);
  return *out ? 0 : -ESTALE;
}

int
overlay_model_lookup (overlay_model *m, uint64_t parent, const char *name, struct stat *st)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *dir;
    dentry *d;
    if ((ret = get_dir (m, parent, &dir)) < 0 || (ret = valid_name (name)) < 0)
      break;
    if (!(d = dir_find (dir, name)))
      {
        ret = -ENOENT;
        break;
      }
    load_dir (m, d->inode);
    d->inode->nlookup++;
    fill_stat (m, d->inode, st);
  }
  return ret;
}

void
overlay_model_forget (overlay_model *m, uint64_t ino, uint64_t n)
{
  LOCKED (m)
  {
    inode *i = ino_get (m, ino);
    if (!i)
      break;
    i->nlookup = i->nlookup > n ? i->nlookup - n : 0;
    maybe_free (m, i);
  }
}

int
overlay_model_getattr (overlay_model *m, uint64_t ino, struct stat *st)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = get_ino (m, ino, &i)) < 0)
      break;
    load_dir (m, i);
    fill_stat (m, i, st);
  }
  return ret;
}

static bool times_writeback_only (const inode *i, const struct stat *in, int mask);

static int
setattr_locked (overlay_model *m, inode *i, const struct stat *in, int mask)
{
  int ret = 0;
  if (times_writeback_only (i, in, mask))
    {
      if (mask & OVL_SET_CTIME)
        i->ctime = in->st_ctim;
      return 0;
    }
  char nm[32];
  data_name (i, nm, sizeof nm);
  if (mask & OVL_SET_SIZE)
    {
      if (!S_ISREG (i->mode))
        return S_ISDIR (i->mode) ? -EISDIR : -EINVAL;
      if (in->st_size < 0)
        return -EINVAL;
      if ((ret = copy_up (m, i)) < 0)
        return ret;
      int fd = openat (upper_fd_of (m, i), nm, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0)
        return -errno;
      ret = ftruncate (fd, in->st_size) < 0 ? -errno : 0;
      close (fd);
      if (ret < 0)
        return ret;
    }
  if ((mask & OVL_SET_MTIME) && S_ISREG (i->mode) && i->has_upper && i->upper_gen != m->gen
      && (ret = copy_up (m, i)) < 0)
    return ret; /* frozen data carries the time: copy up to change it */
  if (mask & OVL_SET_MODE)
    i->mode = (i->mode & S_IFMT) | (in->st_mode & 07777);
  if (mask & OVL_SET_UID)
    i->uid = in->st_uid;
  if (mask & OVL_SET_GID)
    i->gid = in->st_gid;
  if (mask & (OVL_SET_ATIME | OVL_SET_MTIME))
    {
      struct timespec t = now ();
      if (mask & OVL_SET_ATIME)
        i->atime = (mask & OVL_SET_ATIME_NOW) ? t : in->st_atim;
      if (mask & OVL_SET_MTIME)
        i->mtime = (mask & OVL_SET_MTIME_NOW) ? t : in->st_mtim;
      if (i->has_upper && i->upper_gen == m->gen)
        {
          struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
          if (mask & OVL_SET_ATIME)
            ts[0] = i->atime;
          if (mask & OVL_SET_MTIME)
            ts[1] = i->mtime;
          utimensat (upper_fd_of (m, i), nm, ts, AT_SYMLINK_NOFOLLOW);
        }
    }
  mark_changed (m, i);
  return 0;
}

/* With the writeback cache the kernel writes back the times it caches
 * (mtime and ctime together) whenever the inode is dirty, e.g. after
 * another name of a hardlinked file was unlinked. An unchanged mtime with
 * a new ctime is no change a layer records (layers carry no ctime), so it
 * must not ship the file. */
static bool
times_writeback_only (const inode *i, const struct stat *in, int mask)
{
  if (mask & ~(OVL_SET_MTIME | OVL_SET_CTIME))
    return false;
  return !(mask & OVL_SET_MTIME)
         || (in->st_mtim.tv_sec == i->mtime.tv_sec && in->st_mtim.tv_nsec == i->mtime.tv_nsec);
}

int
overlay_model_setattr (overlay_model *m, uint64_t ino, const struct stat *in, int mask, struct stat *st)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = get_ino (m, ino, &i)) < 0 || (ret = setattr_locked (m, i, in, mask)) < 0)
      break;
    fill_stat (m, i, st);
  }
  return ret;
}

int
overlay_model_chown (overlay_model *m, uint64_t ino, uid_t uid, gid_t gid)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = get_ino (m, ino, &i)) < 0)
      break;
    if (uid != (uid_t) -1)
      i->uid = uid;
    if (gid != (gid_t) -1)
      i->gid = gid;
    if (S_ISREG (i->mode))
      {
        i->mode &= ~S_ISUID;
        if (i->mode & S_IXGRP)
          i->mode &= ~S_ISGID;
      }
    mark_changed (m, i);
  }
  return ret;
}

int
overlay_model_mknod (overlay_model *m, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
                     const char *symlink, uid_t uid, gid_t gid, struct stat *st)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *dir;
    if ((ret = get_dir (m, parent, &dir)) < 0 || (ret = valid_new_name (name)) < 0)
      break;
    if (dir_find (dir, name))
      {
        ret = -EEXIST;
        break;
      }
    switch (mode & S_IFMT)
      {
      case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO: case S_IFSOCK:
        break;
      default:
        ret = -EINVAL;
      }
    if (ret < 0)
      break;
    if (S_ISLNK (mode) && (!symlink || !*symlink || strlen (symlink) >= 4096))
      {
        ret = symlink && *symlink ? -ENAMETOOLONG : -ENOENT;
        break;
      }
    inode *n = inode_new (m, mode);
    n->uid = m->id_mode == OVERLAY_IDS_SINGLE ? m->create_uid : uid;
    n->gid = m->id_mode == OVERLAY_IDS_SINGLE ? m->create_gid : gid;
    if (dir->mode & S_ISGID)
      {
        n->gid = dir->gid;
        if (S_ISDIR (mode))
          n->mode |= S_ISGID;
      }
    n->rdev = (S_ISCHR (mode) || S_ISBLK (mode)) ? rdev : 0;
    n->xloaded = true;
    n->loaded = S_ISDIR (mode);
    if (S_ISLNK (mode))
      {
        n->symlink = xstrdup (symlink);
        n->size = strlen (symlink);
        n->mode = S_IFLNK | 0777;
      }
    if (S_ISREG (mode) && (ret = copy_up (m, n)) < 0)
      {
        inode_destroy (m, n);
        break;
      }
    dir_add (dir, name, n, false);
    dir->mtime = dir->ctime = now ();
    mark_changed (m, n);
    n->nlookup++;
    fill_stat (m, n, st);
  }
  return ret;
}

static bool
is_ancestor (overlay_model *m, inode *a, inode *d)
{
  for (inode *x = d; x; x = x->aliases ? x->aliases->parent : NULL)
    {
      if (x == a)
        return true;
      if (x == m->root)
        break;
    }
  return false;
}

int
overlay_model_link (overlay_model *m, uint64_t ino, uint64_t newparent, const char *name, struct stat *st)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *dir, *i;
    if ((ret = get_dir (m, newparent, &dir)) < 0 || (ret = valid_new_name (name)) < 0
        || (ret = get_ino (m, ino, &i)) < 0)
      break;
    if (S_ISDIR (i->mode))
      ret = -EPERM;
    else if (!i->aliases)
      ret = -ENOENT;
    else if (dir_find (dir, name))
      ret = -EEXIST;
    if (ret < 0)
      break;
    dir_add (dir, name, i, false);
    dir->mtime = dir->ctime = now ();
    /* a hardlink only exists within one layer: ship every name */
    mark_changed (m, i);
    i->nlookup++;
    fill_stat (m, i, st);
  }
  return ret;
}

static int
remove_entry (overlay_model *m, uint64_t parent, const char *name, bool want_dir)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *dir;
    dentry *d;
    if ((ret = get_dir (m, parent, &dir)) < 0 || (ret = valid_name (name)) < 0)
      break;
    if (!(d = dir_find (dir, name)))
      {
        ret = -ENOENT;
        break;
      }
    inode *c = d->inode;
    if (want_dir)
      {
        if (!S_ISDIR (c->mode))
          ret = -ENOTDIR;
        else
          {
            load_dir (m, c);
            if (c->nentries)
              ret = -ENOTEMPTY;
          }
      }
    else if (S_ISDIR (c->mode))
      ret = -EISDIR;
    if (ret == 0 && d->mask == MASK_SKIP)
      ret = -EBUSY;
    if (ret < 0)
      break;
    log_removed (m, dir, d);
    dir_del (dir, d);
    dir->mtime = dir->ctime = now ();
    /* The other names of a hardlinked file lose only a link count and gain
     * a ctime, which no layer records: they are not shipped for it (as on
     * overlayfs, where the other names stay untouched in the lower). */
    c->ctime = now ();
    maybe_free (m, c);
  }
  return ret;
}

int
overlay_model_unlink (overlay_model *m, uint64_t parent, const char *name)
{
  return remove_entry (m, parent, name, false);
}

int
overlay_model_rmdir (overlay_model *m, uint64_t parent, const char *name)
{
  return remove_entry (m, parent, name, true);
}

static int
rename_check_target (overlay_model *m, inode *si, inode *ti)
{
  if (S_ISDIR (si->mode) && !S_ISDIR (ti->mode))
    return -ENOTDIR;
  if (!S_ISDIR (si->mode) && S_ISDIR (ti->mode))
    return -EISDIR;
  if (S_ISDIR (ti->mode))
    {
      load_dir (m, ti);
      if (ti->nentries)
        return -ENOTEMPTY;
    }
  return 0;
}

int
overlay_model_rename (overlay_model *m, uint64_t parent, const char *name, uint64_t newparent,
                      const char *newname, unsigned flags)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *sd, *dd;
    dentry *s, *t;
    if ((ret = get_dir (m, parent, &sd)) < 0 || (ret = get_dir (m, newparent, &dd)) < 0
        || (ret = valid_name (name)) < 0 || (ret = valid_new_name (newname)) < 0)
      break;
    if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
        || ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)))
      {
        ret = -EINVAL;
        break;
      }
    if (!(s = dir_find (sd, name)))
      {
        ret = -ENOENT;
        break;
      }
    t = dir_find (dd, newname);
    inode *si = s->inode, *ti = t ? t->inode : NULL;
    if (s->mask == MASK_SKIP || (t && t->mask == MASK_SKIP))
      {
        ret = -EBUSY;
        break;
      }
    if (s == t)
      break;
    if (flags & RENAME_EXCHANGE)
      {
        if (!t)
          ret = -ENOENT;
        else if ((S_ISDIR (si->mode) && is_ancestor (m, si, dd))
                 || (S_ISDIR (ti->mode) && is_ancestor (m, ti, sd)))
          ret = -EINVAL;
        if (ret < 0)
          break;
        log_removed (m, sd, s);
        log_removed (m, dd, t);
        dir_del (sd, s);
        dir_del (dd, t);
        dir_add (sd, name, ti, false);
        dir_add (dd, newname, si, false);
        mark_changed (m, ti);
      }
    else
      {
        if (S_ISDIR (si->mode) && is_ancestor (m, si, dd))
          ret = -EINVAL;
        else if (t && (flags & RENAME_NOREPLACE))
          ret = -EEXIST;
        if (ret < 0)
          break;
        if (t && ti == si)
          break; /* two names of one inode: POSIX says do nothing */
        if (t)
          {
            if ((ret = rename_check_target (m, si, ti)) < 0)
              break;
            log_removed (m, dd, t);
            dir_del (dd, t);
            ti->ctime = now ();
            if (ti->aliases)
              mark_changed (m, ti);
            maybe_free (m, ti);
          }
        log_removed (m, sd, s);
        dir_del (sd, s);
        dir_add (dd, newname, si, false);
      }
    sd->mtime = sd->ctime = dd->mtime = dd->ctime = now ();
    mark_changed (m, si);
  }
  return ret;
}

int
overlay_model_readlink (overlay_model *m, uint64_t ino, char **target)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = get_ino (m, ino, &i)) < 0)
      break;
    if (!S_ISLNK (i->mode) || !i->symlink)
      ret = -EINVAL;
    else
      *target = xstrdup (i->symlink);
  }
  return ret;
}

int
overlay_model_open (overlay_model *m, uint64_t ino, int flags, bool *immutable)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = get_ino (m, ino, &i)) < 0)
      break;
    if (!S_ISREG (i->mode))
      {
        ret = S_ISDIR (i->mode) ? -EISDIR : -EINVAL;
        break;
      }
    bool wr = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
    /* placeholders (masked paths kiln mounts over) have no lower data */
    if (wr || (!i->has_upper && !i->lpath))
      {
        if ((ret = copy_up (m, i)) < 0)
          break;
        if (wr)
          mark_changed (m, i);
      }
    int fd;
    *immutable = true;
    if (i->has_upper)
      {
        char nm[32];
        data_name (i, nm, sizeof nm);
        /* under writeback caching the kernel may read pages back: RDWR, and
         * never O_APPEND (the kernel computes offsets itself) */
        fd = openat (upper_fd_of (m, i), nm, (wr ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
          fd = -errno;
        *immutable = i->upper_gen != m->gen;
      }
    else
      fd = overlay_lower_open (m->lower, i->llayers[0], i->lpath);
    if (fd < 0)
      {
        ret = fd;
        break;
      }
    if ((flags & O_TRUNC) && ftruncate (fd, 0) < 0)
      {
        ret = -errno;
        close (fd);
        break;
      }
    i->open_count++;
    ret = fd;
  }
  return ret;
}

void
overlay_model_release (overlay_model *m, uint64_t ino)
{
  LOCKED (m)
  {
    inode *i = ino_get (m, ino);
    if (!i || !i->open_count)
      break;
    i->open_count--;
    maybe_free (m, i);
  }
}

static int
cmp_dirent (const void *a, const void *b)
{
  return strcmp (((const overlay_dirent *) a)->name, ((const overlay_dirent *) b)->name);
}

int
overlay_model_readdir (overlay_model *m, uint64_t ino, overlay_dirent **out, size_t *n)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *dir;
    if ((ret = get_dir (m, ino, &dir)) < 0)
      break;
    overlay_dirent *v = xcalloc (dir->nentries + 1, sizeof *v);
    size_t k = 0;
    for (size_t b = 0; b < dir->nbuckets; b++)
      for (dentry *d = dir->buckets[b]; d; d = d->hnext)
        {
          v[k].name = xstrdup (d->name);
          v[k].ino = d->inode->ino;
          v[k].type = d->inode->mode & S_IFMT;
          k++;
        }
    qsort (v, k, sizeof *v, cmp_dirent);
    *out = v;
    *n = k;
  }
  return ret;
}

void
overlay_model_dirents_free (overlay_dirent *d, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free (d[i].name);
  free (d);
}

static int
xattr_name_ok (const char *name)
{
  if (strlen (name) > 255)
    return -ERANGE;
  if (!strncmp (name, "user.", 5) && name[5])
    return 0;
  if (!strcmp (name, "security.capability"))
    return 0;
  return -EOPNOTSUPP;
}

static xattr_ent *
xattr_find (inode *i, const char *name)
{
  for (size_t k = 0; k < i->nx; k++)
    if (!strcmp (i->x[k].name, name))
      return &i->x[k];
  return NULL;
}

int
overlay_model_getxattr (overlay_model *m, uint64_t ino, const char *name, void *buf, size_t size)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = get_ino (m, ino, &i)) < 0)
      break;
    load_xattrs (m, i);
    xattr_ent *x = xattr_name_ok (name) < 0 ? NULL : xattr_find (i, name);
    if (!x)
      ret = -ENODATA;
    else if (size && size < x->len)
      ret = -ERANGE;
    else
      {
        if (size)
          memcpy (buf, x->val, x->len);
        ret = x->len;
      }
  }
  return ret;
}

int
overlay_model_listxattr (overlay_model *m, uint64_t ino, char *buf, size_t size)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = get_ino (m, ino, &i)) < 0)
      break;
    load_xattrs (m, i);
    size_t need = 0;
    for (size_t k = 0; k < i->nx; k++)
      need += strlen (i->x[k].name) + 1;
    if (size && size < need)
      {
        ret = -ERANGE;
        break;
      }
    if (size)
      {
        char *p = buf;
        for (size_t k = 0; k < i->nx; k++)
          p = stpcpy (p, i->x[k].name) + 1;
      }
    ret = need;
  }
  return ret;
}

int
overlay_model_setxattr (overlay_model *m, uint64_t ino, const char *name, const void *value, size_t size,
                        int flags)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = get_ino (m, ino, &i)) < 0 || (ret = xattr_name_ok (name)) < 0)
      break;
    if (size > 65536)
      {
        ret = -E2BIG;
        break;
      }
    if (!strncmp (name, "user.", 5) && !S_ISREG (i->mode) && !S_ISDIR (i->mode))
      {
        ret = -EPERM;
        break;
      }
    load_xattrs (m, i);
    xattr_ent *x = xattr_find (i, name);
    if (x && (flags & XATTR_CREATE))
      ret = -EEXIST;
    else if (!x && (flags & XATTR_REPLACE))
      ret = -ENODATA;
    if (ret < 0)
      break;
    if (!x)
      {
        i->x = xreallocarray (i->x, i->nx + 1, sizeof *i->x);
        x = &i->x[i->nx++];
        x->name = xstrdup (name);
      }
    else
      free (x->val);
    x->val = xmemdup (value, size ? size : 1);
    x->len = size;
    mark_changed (m, i);
  }
  return ret;
}

int
overlay_model_removexattr (overlay_model *m, uint64_t ino, const char *name)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = get_ino (m, ino, &i)) < 0)
      break;
    load_xattrs (m, i);
    xattr_ent *x = xattr_name_ok (name) < 0 ? NULL : xattr_find (i, name);
    if (!x)
      {
        ret = -ENODATA;
        break;
      }
    free (x->name);
    free (x->val);
    *x = i->x[--i->nx];
    mark_changed (m, i);
  }
  return ret;
}

int
overlay_model_statfs (overlay_model *m, struct statvfs *st)
{
  return fstatvfs (m->scratch_fd, st) < 0 ? -errno : 0;
}

/* ---- commit ---- */
typedef struct pending
{
  char *path;
  overlay_change_kind kind;
  inode *inode;
} pending;

typedef struct emit_ctx
{
  overlay_model *m;
  pending *v;
  size_t n, cap;
} emit_ctx;

static void
emit (emit_ctx *c, overlay_change_kind kind, const char *path, inode *n)
{
  if (c->n == c->cap)
    {
      c->cap = c->cap ? c->cap * 2 : 64;
      c->v = xreallocarray (c->v, c->cap, sizeof *c->v);
    }
  c->v[c->n++] = (pending) { .path = xstrdup (path), .kind = kind, .inode = n };
  /* shipped in a layer: no longer a placeholder of the view */
  for (dentry *d = n ? n->aliases : NULL; d; d = d->alias_next)
    d->synth = false;
}

/* Changed flags are cleared only after the whole traversal: an inode with
 * several names must be emitted under each of them. */
static void
settle (inode *n)
{
  strset_clear (&n->dirty);
  strset_clear (&n->deleted);
}

/* A name that is new in this step: ship it and everything below it. */
static void
emit_full (emit_ctx *c, dentry *d, const char *path)
{
  if (d->mask == MASK_SKIP)
    return;
  inode *n = d->inode;
  emit (c, OVERLAY_CHANGE_ADD, path, n);
  d->base = true;
  if (S_ISDIR (n->mode))
    {
      load_dir (c->m, n);
      for (size_t b = 0; b < n->nbuckets; b++)
        for (dentry *k = n->buckets[b]; k; k = k->hnext)
          {
            autofree char *p = join (path, k->name);
            emit_full (c, k, p);
          }
    }
  settle (n);
}

static void
emit_dirty (emit_ctx *c, inode *dir, const char *path)
{
  for (size_t s = 0; s < dir->dirty.cap; s++)
    {
      const char *name = dir->dirty.slot[s];
      if (!name)
        continue;
      autofree char *p = join (path, name);
      dentry *d = dir_find (dir, name);
      bool deleted = strset_has (&dir->deleted, name);
      if (d && d->mask == MASK_SKIP)
        continue;
      if (!d)
        {
          if (deleted)
            emit (c, OVERLAY_CHANGE_WHITEOUT, p, NULL);
          continue;
        }
      if (deleted || !d->base)
        {
          /* a replaced directory must hide what the lowers had below it */
          if (deleted && S_ISDIR (d->inode->mode))
            emit (c, OVERLAY_CHANGE_OPAQUE, p, d->inode);
          emit_full (c, d, p);
          continue;
        }
      if (d->inode->changed)
        emit (c, OVERLAY_CHANGE_ADD, p, d->inode);
      if (S_ISDIR (d->inode->mode))
        {
          size_t before = c->n;
          emit_dirty (c, d->inode, p);
          /* As Docker and buildah do, a layer carries every directory above
           * a change with its current metadata (a tar applier would
           * otherwise invent one, e.g. 0755 root over a 1777 /tmp). The root
           * itself is left out unless it changed (as layer writers omit
           * "./"). */
          if (c->n > before && !d->inode->changed)
            emit (c, OVERLAY_CHANGE_ADD, p, d->inode);
        }
    }
  settle (dir);
}

/* Order: parents before children, siblings by name ('/' sorts first). */
static int
cmp_path (const char *a, const char *b)
{
  for (; *a && *a == *b; a++, b++)
    ;
  unsigned char x = *a == '/' ? 1 : (unsigned char) *a, y = *b == '/' ? 1 : (unsigned char) *b;
  return x < y ? -1 : x > y;
}

static int
cmp_pending (const void *a, const void *b)
{
  const pending *x = a, *y = b;
  int r = cmp_path (x->path, y->path);
  return r ? r : (int) x->kind - (int) y->kind;
}

static void
fill_change (overlay_model *m, overlay_change *ch, inode *n)
{
  struct stat st;
  fill_stat (m, n, &st);
  ch->mode = n->mode;
  ch->uid = n->uid;
  ch->gid = n->gid;
  ch->size = S_ISREG (n->mode) ? (uint64_t) st.st_size : 0;
  ch->mtime = st.st_mtim;
  ch->rdev = n->rdev;
  ch->symlink = n->symlink ? xstrdup (n->symlink) : NULL;
  ch->data_dirfd = -1;
  /* A placeholder file (made for a mask path, no lower data) that ships —
   * a later step unmasked and renamed or linked it — is an empty file:
   * give it empty data so the layer can carry it. */
  if (S_ISREG (n->mode) && !n->has_upper && !n->lpath)
    copy_up (m, n);
  if (S_ISREG (n->mode))
    {
      if (n->has_upper)
        {
          ch->data_dirfd = m->scratch_fd;
          ch->data_path = xasprintf ("upper-%u/%llu", n->upper_gen, (unsigned long long) n->ino);
        }
      else if (n->lpath)
        {
          ch->data_dirfd = overlay_lower_dirfd (m->lower, n->llayers[0]);
          ch->data_path = xstrdup (n->lpath);
        }
    }
  load_xattrs (m, n);
  if (n->nx)
    {
      ch->xattrs = xcalloc (n->nx, sizeof *ch->xattrs);
      for (size_t k = 0; k < n->nx; k++)
        {
          ch->xattrs[k].name = xstrdup (n->x[k].name);
          ch->xattrs[k].value = xmemdup (n->x[k].val, n->x[k].len ? n->x[k].len : 1);
          ch->xattrs[k].len = n->x[k].len;
        }
      ch->n_xattrs = n->nx;
    }
}

/* ---- per-step settings on a live mount ---- */

/* The mask paths as the model keeps them: relative (leading '/' dropped),
 * empty ones left out; NULL when there are none. */
static char **
masks_copy (const char *const *paths)
{
  char **v = NULL;
  for (const char *const *p = paths; p && *p; p++)
    {
      const char *s = *p;
      while (*s == '/')
        s++;
      if (*s)
        strv_push (&v, s);
    }
  return v;
}

/* "a/b/" and "a/b" name the same mask path. */
static bool
mask_listed (char **v, const char *p)
{
  size_t pl = strlen (p);
  while (pl && p[pl - 1] == '/')
    pl--;
  for (; v && *v; v++)
    {
      size_t l = strlen (*v);
      while (l && (*v)[l - 1] == '/')
        l--;
      if (l == pl && !strncmp (*v, p, pl))
        return true;
    }
  return false;
}

static void
inval_push (overlay_model_inval **v, size_t *n, uint64_t parent, const char *name)
{
  *v = xreallocarray (*v, *n + 1, sizeof **v);
  (*v)[(*n)++] = (overlay_model_inval) { parent, xstrdup (name) };
}

/* The dentries along mask path p, through directories already loaded (a
 * directory not loaded yet gets its masks from load_dir); *whole tells
 * whether the chain reached p itself. */
static size_t
mask_chain (overlay_model *m, const char *p, dentry **chain, size_t max, bool *whole)
{
  autostrv char **comps = NULL;
  for (const char *s = p; *s;)
    {
      size_t l = strcspn (s, "/");
      if (l)
        {
          autofree char *c = xstrndup (s, l);
          strv_push (&comps, c);
        }
      s += l + (s[l] == '/');
    }
  size_t n = 0;
  inode *dir = m->root;
  for (size_t i = 0; comps && comps[i] && n < max; i++)
    {
      dentry *d;
      if (!S_ISDIR (dir->mode) || !dir->loaded || !(d = dir_find (dir, comps[i])))
        break;
      chain[n++] = d;
      dir = d->inode;
    }
  *whole = comps && n == strv_len (comps);
  return n;
}

/* Make mask path p exist in the loaded part of the view. */
static void
mask_apply_live (overlay_model *m, const char *p, overlay_model_inval **inv, size_t *n_inv)
{
  inode *dir = m->root;
  while (*p == '/')
    p++;
  while (*p)
    {
      size_t l = strcspn (p, "/");
      bool last = p[l] == '\0' || (p[l] == '/' && p[l + 1] == '\0');
      bool isdir = p[l] == '/';
      if (!S_ISDIR (dir->mode) || !dir->loaded)
        return; /* load_dir applies it */
      autofree char *name = xstrndup (p, l);
      dentry *d = dir_find (dir, name);
      if (!d)
        {
          d = add_placeholder (m, dir, name, isdir);
          inval_push (inv, n_inv, dir->ino, name); /* the kernel may cache its absence */
        }
      if (last)
        {
          d->mask = MASK_SKIP;
          return;
        }
      dir = d->inode;
      p += l + 1;
    }
}

#define MASK_DEPTH_MAX 256

/* Path p is no longer masked: it becomes an ordinary name again, and the
 * placeholders the view made for it disappear (deepest first) unless they
 * are still needed, were changed, or hold anything. */
static void
mask_clear_live (overlay_model *m, const char *p, bool prune, overlay_model_inval **inv, size_t *n_inv)
{
  dentry *chain[MASK_DEPTH_MAX];
  bool whole;
  size_t n = mask_chain (m, p, chain, MASK_DEPTH_MAX, &whole);
  if (!prune)
    {
      if (n && whole)
        chain[n - 1]->mask = MASK_NONE;
      return;
    }
  for (size_t i = n; i > 0; i--)
    {
      dentry *d = chain[i - 1];
      inode *c = d->inode;
      if (!d->synth || d->mask == MASK_SKIP || c->changed || c->has_upper || c->aliases != d || d->alias_next
          || (S_ISDIR (c->mode) && c->nentries) || (S_ISREG (c->mode) && c->size))
        return;
      inode *dir = d->parent;
      inval_push (inv, n_inv, dir->ino, d->name);
      dir_del (dir, d);
      maybe_free (m, c);
    }
}

int
overlay_model_set_step (overlay_model *m, uid_t create_uid, gid_t create_gid, const char *const *mask_paths,
                        overlay_model_inval **inv, size_t *n_inv)
{
  *inv = NULL;
  *n_inv = 0;
  LOCKED (m)
  {
    m->create_uid = create_uid;
    m->create_gid = create_gid;
    char **nm = masks_copy (mask_paths);
    char **old = m->masks;
    for (char **o = old; o && *o; o++)
      if (!mask_listed (nm, *o))
        mask_clear_live (m, *o, false, inv, n_inv);
    m->masks = nm;
    for (char **p = nm; p && *p; p++)
      if (!mask_listed (old, *p))
        mask_apply_live (m, *p, inv, n_inv);
    for (char **o = old; o && *o; o++)
      if (!mask_listed (nm, *o))
        mask_clear_live (m, *o, true, inv, n_inv);
    strv_free (old);
  }
  return 0;
}

void
overlay_model_invals_free (overlay_model_inval *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free (v[i].name);
  free (v);
}

static int new_upper (overlay_model *m, kiln_error **err);

int
overlay_model_commit (overlay_model *m, overlay_changes **out, kiln_error **err)
{
  int ret = 0;
  LOCKED (m)
  {
    emit_ctx c = { .m = m };
    m->commits++;
    emit_dirty (&c, m->root, "");
    if (m->root->changed)
      {
        emit (&c, OVERLAY_CHANGE_ADD, "", m->root);
        m->root->changed = false;
      }
    if (c.n)
      qsort (c.v, c.n, sizeof *c.v, cmp_pending);
    for (size_t i = 0; i < c.n; i++)
      if (c.v[i].inode)
        c.v[i].inode->changed = false;
    overlay_changes *res = xzalloc (sizeof *res);
    res->v = xcalloc (c.n + 1, sizeof *res->v);
    for (size_t i = 0; i < c.n; i++)
      {
        pending *p = &c.v[i];
        overlay_change *ch = &res->v[res->n];
        if (i && p->kind == c.v[i - 1].kind && !strcmp (p->path, c.v[i - 1].path))
          {
            free (p->path);
            continue;
          }
        ch->path = p->path;
        ch->kind = p->kind;
        ch->data_dirfd = -1;
        res->n++;
        if (p->kind == OVERLAY_CHANGE_ADD && !S_ISDIR (p->inode->mode))
          {
            if (p->inode->emit_commit == m->commits)
              {
                ch->kind = OVERLAY_CHANGE_HARDLINK;
                ch->link_target = xstrdup (p->inode->emit_path);
                ch->mode = p->inode->mode;
                continue;
              }
            p->inode->emit_commit = m->commits;
            free (p->inode->emit_path);
            p->inode->emit_path = xstrdup (p->path);
          }
        if (p->kind == OVERLAY_CHANGE_ADD)
          fill_change (m, ch, p->inode);
      }
    free (c.v);
    if ((ret = new_upper (m, err)) < 0)
      {
        overlay_changes_free (res);
        break;
      }
    *out = res;
  }
  return ret;
}

/* ---- lifecycle ---- */
static int
new_upper (overlay_model *m, kiln_error **err)
{
  unsigned g = m->upper_fds ? m->gen + 1 : 0;
  char nm[32];
  snprintf (nm, sizeof nm, "upper-%u", g);
  if (mkdirat (m->scratch_fd, nm, 0700) < 0)
    return kiln_error_make (err, errno, "create upper directory '%s'", nm);
  int fd = openat (m->scratch_fd, nm, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return kiln_error_make (err, errno, "open upper directory '%s'", nm);
  m->upper_fds = xreallocarray (m->upper_fds, g + 1, sizeof *m->upper_fds);
  m->upper_fds[g] = fd;
  m->gen = g;
  return 0;
}

int
overlay_model_new (const overlay_config *cfg, overlay_model **out, kiln_error **err)
{
  overlay_model *m = xzalloc (sizeof *m);
  pthread_mutex_init (&m->lock, NULL);
  m->lower = cfg->lower;
  m->id_mode = cfg->id_mode;
  m->present_uid = cfg->present_uid;
  m->present_gid = cfg->present_gid;
  m->create_uid = cfg->create_uid;
  m->create_gid = cfg->create_gid;
  m->next_ino = OVERLAY_ROOT_INO;
  m->scratch_fd = fcntl (cfg->scratch_dirfd, F_DUPFD_CLOEXEC, 3);
  if (m->scratch_fd < 0)
    {
      int e = errno;
      overlay_model_free (m);
      return kiln_error_make (err, e, "dup scratch directory fd");
    }
  m->masks = masks_copy (cfg->mask_paths);
  if (new_upper (m, err) < 0)
    {
      overlay_model_free (m);
      return -1;
    }
  m->root = inode_new (m, S_IFDIR | 0755);
  m->root->lpath = xstrdup ("");
  m->root->xloaded = true;
  unsigned nl = m->lower ? overlay_lower_count (m->lower) : 0;
  for (unsigned k = nl; k > 0; k--)
    ll_push (m->root, k - 1);
  overlay_lower_attr ra;
  if (nl && overlay_lower_root_attr (m->lower, &ra) == 0)
    {
      m->root->mode = S_IFDIR | (ra.mode & 07777);
      m->root->uid = ra.uid;
      m->root->gid = ra.gid;
      m->root->atime = m->root->mtime = m->root->ctime = ra.mtime;
    }
  *out = m;
  return 0;
}

void
overlay_model_free (overlay_model *m)
{
  if (!m)
    return;
  for (size_t b = 0; b < m->itab_cap; b++)
    for (inode *i = m->itab[b], *next; i; i = next)
      {
        next = i->tnext;
        inode_destroy (m, i);
      }
  free (m->itab);
  for (unsigned g = 0; m->upper_fds && g <= m->gen; g++)
    close (m->upper_fds[g]);
  free (m->upper_fds);
  if (m->scratch_fd >= 0)
    close (m->scratch_fd);
  overlay_lower_free (m->lower);
  strv_free (m->masks);
  pthread_mutex_destroy (&m->lock);
  free (m);
}
