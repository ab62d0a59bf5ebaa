/* overlay_model.c - node table, merged lookups and the read-only requests.
 *
 * Namespace: every inode lives in a table keyed by its number (stable for
 * the mount's life); directories hold a hash of dentries (name -> inode).
 * A lower directory is merged lazily, on first use, from the layers that
 * contribute to it (top first, whiteouts and opaque markers applied).
 * Write log: each directory keeps the set of child names touched in the
 * current step (created, deleted, renamed, changed) and the subset deleted
 * from what the step started with; touching a name marks the directory's
 * own name in its parent, up to the root. Commit visits only marked names.
 * Copy-up and the changing requests are in overlay_model_ops.c, commit in
 * overlay_model_commit.c, per-step masks in overlay_model_step.c; what they
 * share is overlay_model_internal.h.
 */
#include "overlay/overlay_model_internal.h"
#include "util/alloc.h"
#include "util/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ---- small string set (write log sets) ---- */
bool
overlay_model_strset_has (const strset *s, const char *k)
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
  if (overlay_model_strset_has (s, k))
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

void
overlay_model_strset_clear (strset *s)
{
  for (size_t i = 0; i < s->cap; i++)
    free (s->slot[i]);
  free (s->slot);
  *s = (strset) { 0 };
}

/* ---- nodes ---- */
struct timespec
overlay_model_now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_REALTIME, &t);
  return t;
}

inode *
overlay_model_ino_get (overlay_model *m, uint64_t ino)
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

inode *
overlay_model_inode_new (overlay_model *m, mode_t mode)
{
  inode *n = xzalloc (sizeof *n);
  n->ino = m->next_ino++;
  n->mode = mode;
  n->atime = n->mtime = n->ctime = overlay_model_now ();
  itab_insert (m, n);
  return n;
}

void
overlay_model_data_name (const inode *n, char *buf, size_t len)
{
  snprintf (buf, len, "%llu", (unsigned long long) n->ino);
}

void
overlay_model_inode_destroy (overlay_model *m, inode *n)
{
  itab_remove (m, n);
  if (n->has_upper && n->upper_gen == m->gen)
    {
      char nm[32];
      overlay_model_data_name (n, nm, sizeof nm);
      unlinkat (m->upper_fds[m->gen], nm, 0);
    }
  overlay_model_xattrs_free (m, n);
  if (n->listing)
    n->listing->dir = NULL; /* its holders keep it; nothing caches it now */
  free (n->symlink);
  free (n->lpath);
  free (n->llayers);
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
  overlay_model_strset_clear (&n->dirty);
  overlay_model_strset_clear (&n->deleted);
  free (n);
}

void
overlay_model_maybe_free (overlay_model *m, inode *n)
{
  if (n != m->root && !n->nlookup && !n->open_count && !n->aliases)
    overlay_model_inode_destroy (m, n);
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
/* The directory's entries change: handles that hold its listing keep their
 * snapshot, the next opendir makes a new one. */
static void
listing_stale (inode *dir)
{
  if (dir->listing)
    {
      dir->listing->dir = NULL;
      dir->listing = NULL;
    }
}

dentry *
overlay_model_dir_find (inode *dir, const char *name)
{
  if (!dir->nbuckets)
    return NULL;
  for (dentry *d = dir->buckets[hash_fnv1a_str (name) & (dir->nbuckets - 1)]; d; d = d->hnext)
    if (!strcmp (d->name, name))
      return d;
  return NULL;
}

dentry *
overlay_model_dir_add (inode *dir, const char *name, inode *child, bool base)
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
  listing_stale (dir);
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
inode *
overlay_model_dir_del (inode *dir, dentry *d)
{
  listing_stale (dir);
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

void
overlay_model_mark_changed (overlay_model *m, inode *n)
{
  n->changed = true;
  n->ctime = overlay_model_now ();
  for (dentry *d = n->aliases; d; d = d->alias_next)
    mark_name (m, d->parent, d->name);
}

/* A base name goes away: the layer needs a whiteout for it. */
void
overlay_model_log_removed (overlay_model *m, inode *dir, dentry *d)
{
  if (d->base)
    strset_add (&dir->deleted, d->name);
  mark_name (m, dir, d->name);
}

/* ---- lower merging ---- */
char *
overlay_model_join (const char *a, const char *b)
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

inode *
overlay_model_lower_inode (overlay_model *m, const char *dir_lpath, const char *name, unsigned layer,
                           const overlay_lower_attr *a)
{
  inode *n = overlay_model_inode_new (m, a->mode);
  n->uid = a->uid;
  n->gid = a->gid;
  n->size = a->size;
  n->rdev = a->rdev;
  n->atime = n->mtime = n->ctime = a->mtime;
  n->symlink = a->symlink ? xstrdup (a->symlink) : NULL;
  n->limplicit = a->implicit && S_ISDIR (a->mode);
  n->lnlink = S_ISDIR (a->mode) ? 0 : a->nlink;
  n->lpath = overlay_model_join (dir_lpath, name);
  ll_push (n, layer);
  return n;
}

static int
merge_cb (void *ud, const char *name, overlay_lower_kind kind, const overlay_lower_attr *a)
{
  merge_ctx *c = ud;
  if (!*name || !strcmp (name, ".") || !strcmp (name, "..") || strchr (name, '/'))
    return 0;
  dentry *d = overlay_model_dir_find (c->dir, name);
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
  if (overlay_model_strset_has (&c->hidden, name))
    return 0;
  if (kind == OVERLAY_LOWER_WHITEOUT)
    {
      strset_add (&c->hidden, name);
      return 0;
    }
  inode *n = overlay_model_lower_inode (c->m, c->dir->lpath, name, c->layer, a);
  overlay_model_dir_add (c->dir, name, n, true);
  return 0;
}

static char *
path_of (overlay_model *m, inode *dir)
{
  if (dir == m->root || !dir->aliases)
    return xstrdup ("");
  autofree char *up = path_of (m, dir->aliases->parent);
  return overlay_model_join (up, dir->aliases->name);
}

dentry *
overlay_model_add_placeholder (overlay_model *m, inode *dir, const char *name, bool isdir)
{
  inode *n = overlay_model_inode_new (m, (isdir ? S_IFDIR | 0755 : S_IFREG | 0644));
  n->xloaded = true;
  dentry *d = overlay_model_dir_add (dir, name, n, true);
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
      dentry *d = overlay_model_dir_find (dir, name);
      if (!d)
        d = overlay_model_add_placeholder (m, dir, name, isdir);
      if (last)
        d->mask = MASK_SKIP;
    }
}

bool
overlay_model_masks_under (const overlay_model *m, const char *p)
{
  size_t pl = strlen (p);
  for (char **mk = m->masks; mk && *mk; mk++)
    if (!pl || (!strncmp (*mk, p, pl) && ((*mk)[pl] == '\0' || (*mk)[pl] == '/')))
      return true;
  return false;
}

/* Only the directories on the way to a mask path are visited: renaming a
 * big loaded tree costs nothing where no mask lies below it. */
void
overlay_model_remask (overlay_model *m, inode *n)
{
  if (!m->masks || !S_ISDIR (n->mode) || !n->loaded)
    return;
  autofree char *p = path_of (m, n);
  if (!overlay_model_masks_under (m, p))
    return;
  apply_masks (m, n);
  for (size_t b = 0; b < n->nbuckets; b++)
    for (dentry *d = n->buckets[b]; d; d = d->hnext)
      overlay_model_remask (m, d->inode);
}

void
overlay_model_load_dir (overlay_model *m, inode *dir)
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
      overlay_model_strset_clear (&c.hidden);
    }
  apply_masks (m, dir);
}

typedef struct xload_ctx
{
  overlay_model *m;
  inode *n;
} xload_ctx;

/* Lower xattrs are counted but never refused: the store's index already
 * bounds them per layer, and refusing would hide part of the image. */
static void
load_xattrs_cb (void *ud, const char *name, const void *value, size_t len)
{
  xload_ctx *c = ud;
  inode *n = c->n;
  n->x = xreallocarray (n->x, n->nx + 1, sizeof *n->x);
  n->x[n->nx].name = xstrdup (name);
  n->x[n->nx].val = xmemdup (value, len ? len : 1);
  n->x[n->nx].len = len;
  n->nx++;
  c->m->xattr_bytes += OVERLAY_XATTR_COST (strlen (name), len);
}

void
overlay_model_load_xattrs (overlay_model *m, inode *n)
{
  if (n->xloaded)
    return;
  n->xloaded = true;
  xload_ctx c = { m, n };
  if (n->lpath && n->nll)
    overlay_lower_xattrs (m->lower, n->llayers[0], n->lpath, load_xattrs_cb, &c);
}

void
overlay_model_xattrs_free (overlay_model *m, inode *n)
{
  for (size_t i = 0; i < n->nx; i++)
    {
      m->xattr_bytes -= OVERLAY_XATTR_COST (strlen (n->x[i].name), n->x[i].len);
      free (n->x[i].name);
      free (n->x[i].val);
    }
  free (n->x);
  n->x = NULL;
  n->nx = 0;
}

/* ---- budget notices ---- */
void
overlay_model_notice (overlay_model *m, unsigned what)
{
  m->notice |= what & ~m->noticed;
}

char *
overlay_model_take_notice (overlay_model *m)
{
  char *msg = NULL;
  LOCKED (m)
  {
    unsigned what = m->notice & -m->notice; /* one at a time */
    m->noticed |= what;
    m->notice &= ~what;
    if (what & NOTICE_XATTR)
      msg = xasprintf ("overlay: setxattr failed with ENOSPC: the step's extended attributes would take more "
                       "than %zu MiB of kiln's memory, or a file would carry more than %d of them",
                       OVERLAY_XATTR_BUDGET >> 20, OVERLAY_XATTRS_PER_INODE);
    else if (what & NOTICE_LISTING)
      msg = xasprintf ("overlay: opendir failed with ENOMEM: the step's open directory listings would take "
                       "more than %zu MiB of kiln's memory (a handle opened after its directory changed "
                       "holds a snapshot of its own)",
                       OVERLAY_LISTING_BUDGET >> 20);
  }
  return msg;
}

/* ---- attributes ---- */
int
overlay_model_upper_fd_of (overlay_model *m, const inode *n)
{
  return m->upper_fds[n->upper_gen];
}

void
overlay_model_fill_stat (overlay_model *m, inode *n, struct stat *st)
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
      overlay_model_data_name (n, nm, sizeof nm);
      if (fstatat (overlay_model_upper_fd_of (m, n), nm, &ds, AT_SYMLINK_NOFOLLOW) == 0)
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

/* ---- public operations ---- */
int
overlay_model_valid_name (const char *name)
{
  size_t l = strlen (name);
  if (!l || !strcmp (name, ".") || !strcmp (name, "..") || strchr (name, '/'))
    return -EINVAL;
  if (l > 255)
    return -ENAMETOOLONG;
  return 0;
}

int
overlay_model_get_dir (overlay_model *m, uint64_t ino, inode **out)
{
  inode *d = overlay_model_ino_get (m, ino);
  if (!d)
    return -ESTALE;
  if (!S_ISDIR (d->mode))
    return -ENOTDIR;
  if (!d->aliases && d != m->root)
    return -ENOENT; /* removed directory */
  overlay_model_load_dir (m, d);
  *out = d;
  return 0;
}

int
overlay_model_get_ino (overlay_model *m, uint64_t ino, inode **out)
{
  *out = overlay_model_ino_get (m, ino);
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
    if ((ret = overlay_model_get_dir (m, parent, &dir)) < 0 || (ret = overlay_model_valid_name (name)) < 0)
      break;
    if (!(d = overlay_model_dir_find (dir, name)))
      {
        ret = -ENOENT;
        break;
      }
    overlay_model_load_dir (m, d->inode);
    d->inode->nlookup++;
    overlay_model_fill_stat (m, d->inode, st);
  }
  return ret;
}

void
overlay_model_forget (overlay_model *m, uint64_t ino, uint64_t n)
{
  LOCKED (m)
  {
    inode *i = overlay_model_ino_get (m, ino);
    if (!i)
      break;
    i->nlookup = i->nlookup > n ? i->nlookup - n : 0;
    overlay_model_maybe_free (m, i);
  }
}

int
overlay_model_getattr (overlay_model *m, uint64_t ino, struct stat *st)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = overlay_model_get_ino (m, ino, &i)) < 0)
      break;
    overlay_model_load_dir (m, i);
    overlay_model_fill_stat (m, i, st);
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
    if ((ret = overlay_model_get_ino (m, ino, &i)) < 0)
      break;
    if (!S_ISLNK (i->mode) || !i->symlink)
      ret = -EINVAL;
    else
      *target = xstrdup (i->symlink);
  }
  return ret;
}

static int
cmp_dirent (const void *a, const void *b)
{
  return strcmp (((const overlay_dirent *) a)->name, ((const overlay_dirent *) b)->name);
}

/* One allocation: the header, the entries, then their names. */
static overlay_listing *
listing_new (inode *dir)
{
  size_t names = 0;
  for (size_t b = 0; b < dir->nbuckets; b++)
    for (dentry *d = dir->buckets[b]; d; d = d->hnext)
      names += strlen (d->name) + 1;
  size_t bytes = sizeof (overlay_listing) + dir->nentries * sizeof (overlay_dirent) + names;
  overlay_listing *l = xmalloc (bytes);
  overlay_dirent *v = (overlay_dirent *) (l + 1);
  char *p = (char *) (v + dir->nentries);
  size_t k = 0;
  for (size_t b = 0; b < dir->nbuckets; b++)
    for (dentry *d = dir->buckets[b]; d; d = d->hnext)
      {
        v[k] = (overlay_dirent) { .name = p, .ino = d->inode->ino, .type = d->inode->mode & S_IFMT };
        p = stpcpy (p, d->name) + 1;
        k++;
      }
  qsort (v, k, sizeof *v, cmp_dirent);
  *l = (overlay_listing) { .n = k, .v = v, .refs = 1, .bytes = bytes, .dir = dir };
  return l;
}

int
overlay_model_opendir (overlay_model *m, uint64_t ino, overlay_listing **out)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *dir;
    if ((ret = overlay_model_get_dir (m, ino, &dir)) < 0)
      break;
    if (dir->listing)
      {
        dir->listing->refs++;
        *out = dir->listing;
        break;
      }
    overlay_listing *l = listing_new (dir);
    if (m->listings && m->listing_bytes + l->bytes > OVERLAY_LISTING_BUDGET)
      {
        free (l);
        overlay_model_notice (m, NOTICE_LISTING);
        ret = -ENOMEM;
        break;
      }
    dir->listing = l;
    m->listing_bytes += dir->listing->bytes;
    m->listings++;
    *out = dir->listing;
  }
  return ret;
}

void
overlay_model_closedir (overlay_model *m, overlay_listing *l)
{
  LOCKED (m)
  {
    if (--l->refs)
      break;
    if (l->dir)
      ((inode *) l->dir)->listing = NULL;
    m->listing_bytes -= l->bytes;
    m->listings--;
    free (l);
  }
}

int
overlay_model_statfs (overlay_model *m, struct statvfs *st)
{
  return fstatvfs (m->scratch_fd, st) < 0 ? -errno : 0;
}

/* ---- lifecycle ---- */
int
overlay_model_new_upper (overlay_model *m, kiln_error **err)
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
  pthread_cond_init (&m->copied, NULL);
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
  m->masks = overlay_model_masks_copy (cfg->mask_paths);
  if (overlay_model_new_upper (m, err) < 0)
    {
      overlay_model_free (m);
      return -1;
    }
  m->root = overlay_model_inode_new (m, S_IFDIR | 0755);
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
        overlay_model_inode_destroy (m, i);
      }
  free (m->itab);
  for (unsigned g = 0; m->upper_fds && g <= m->gen; g++)
    close (m->upper_fds[g]);
  free (m->upper_fds);
  if (m->scratch_fd >= 0)
    close (m->scratch_fd);
  overlay_lower_free (m->lower);
  strv_free (m->masks);
  pthread_cond_destroy (&m->copied);
  pthread_mutex_destroy (&m->lock);
  free (m);
}
