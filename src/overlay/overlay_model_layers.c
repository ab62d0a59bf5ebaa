/* overlay_model_layers.c - layers added under a live mount. A layer the
 * build made between two steps on one mount (a COPY, a cached step) joins
 * the top of the lower stack, and the part of the view already loaded takes
 * its entries as a fresh mount of the new stack would show them; the rest
 * of the view merges it when it loads. See overlay_model_internal.h and
 * docs/design/overlay.md, "Layers added to a live mount".
 */
#include "overlay/overlay_model_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One name of the layer's listing of a directory, copied out of the
 * listing's callback so the directory can be changed while walking it. */
typedef struct push_ent
{
  char *name;
  overlay_lower_kind kind;
  overlay_lower_attr a; /* a.symlink owned */
} push_ent;

typedef struct push_list
{
  push_ent *v;
  size_t n;
} push_list;

typedef struct push_ctx
{
  overlay_model *m;
  unsigned layer;
  overlay_model_inval **inv;
  size_t *n_inv;
} push_ctx;

static int
collect_cb (void *ud, const char *name, overlay_lower_kind kind, const overlay_lower_attr *a)
{
  push_list *l = ud;
  if (!*name || !strcmp (name, ".") || !strcmp (name, "..") || strchr (name, '/'))
    return 0;
  l->v = xreallocarray (l->v, l->n + 1, sizeof *l->v);
  push_ent *e = &l->v[l->n++];
  *e = (push_ent) { .name = xstrdup (name), .kind = kind };
  if (a)
    {
      e->a = *a;
      e->a.symlink = a->symlink ? xstrdup (a->symlink) : NULL;
    }
  return 0;
}

static void
push_list_free (push_list *l)
{
  for (size_t i = 0; i < l->n; i++)
    {
      free (l->v[i].name);
      free (l->v[i].a.symlink);
    }
  free (l->v);
}

/* name NULL: the inode's attributes and cached listing only. */
static void
inval (push_ctx *c, uint64_t ino, const char *name)
{
  *c->inv = xreallocarray (*c->inv, *c->n_inv + 1, sizeof **c->inv);
  (*c->inv)[(*c->n_inv)++] = (overlay_model_inval) { ino, name ? xstrdup (name) : NULL };
}

static void
ll_prepend (inode *n, unsigned layer)
{
  n->llayers = xreallocarray (n->llayers, n->nll + 1, sizeof *n->llayers);
  memmove (n->llayers + 1, n->llayers, n->nll * sizeof *n->llayers);
  n->llayers[0] = layer;
  n->nll++;
}

/* Take d out of dir, and a directory's names with it (they are unreachable
 * once d goes; an inode the kernel still holds lives on, nameless, until
 * it forgets it, as after rm -rf). */
static void
detach (overlay_model *m, inode *dir, dentry *d)
{
  inode *n = overlay_model_dir_del (dir, d);
  if (S_ISDIR (n->mode))
    for (size_t b = 0; b < n->nbuckets; b++)
      while (n->buckets[b])
        detach (m, n, n->buckets[b]);
  overlay_model_maybe_free (m, n);
}

static int push_dir (push_ctx *c, inode *dir, const char *path);

/* The layer has directory path where the view has directory n too: its
 * attributes (a; NULL or implicit when the layer has none) and xattrs are
 * the layer's, the layer joins the directory's own stack, and a loaded n
 * takes the layer's listing of it. n is invalidated once if any of that
 * changed what the kernel caches. */
static int
push_into_dir (push_ctx *c, inode *n, const char *path, const overlay_lower_attr *a)
{
  /* A directory renamed by an earlier step on this mount still reads its
   * lower entries under its old path: this layer cannot join that stack. */
  if (n->lpath && strcmp (n->lpath, path))
    return -EAGAIN;
  bool attrs = a && !a->implicit;
  if (attrs)
    {
      n->mode = S_IFDIR | (a->mode & 07777);
      n->uid = a->uid;
      n->gid = a->gid;
      n->atime = n->mtime = n->ctime = a->mtime;
      n->limplicit = false;
      /* the root's xattrs never come from a layer (overlay_model_new) */
      if (n != c->m->root)
        {
          overlay_model_xattrs_free (c->m, n);
          n->xloaded = false;
        }
    }
  if (!n->lpath)
    n->lpath = xstrdup (path);
  ll_prepend (n, c->layer);
  int taken = n->loaded ? push_dir (c, n, path) : 0;
  if (taken < 0)
    return taken;
  if (attrs || taken > 0)
    inval (c, n->ino, NULL);
  return 0;
}

static int
push_entry (push_ctx *c, inode *dir, const char *path, const push_ent *e)
{
  overlay_model *m = c->m;
  dentry *d = overlay_model_dir_find (dir, e->name);
  /* mask placeholders and masked names belong to the step's settings */
  if (d && (d->synth || d->mask != MASK_NONE))
    return -EAGAIN;
  autofree char *p = overlay_model_join (path, e->name);
  bool merge = d && S_ISDIR (d->inode->mode) && e->kind == OVERLAY_LOWER_ENTRY && S_ISDIR (e->a.mode);
  if (d && !merge && overlay_model_masks_under (m, p))
    return -EAGAIN;
  if (merge)
    return push_into_dir (c, d->inode, p, &e->a);
  if (e->kind == OVERLAY_LOWER_WHITEOUT)
    {
      if (d)
        {
          detach (m, dir, d);
          inval (c, dir->ino, e->name);
        }
      return 0;
    }
  if (d)
    detach (m, dir, d);
  inode *n = overlay_model_lower_inode (m, path, e->name, c->layer, &e->a);
  overlay_model_dir_add (dir, e->name, n, true);
  inval (c, dir->ino, e->name);
  return 0;
}

/* Loaded directory dir (at path) takes the layer's entries of path: the
 * number of names it took, or a negative errno. */
static int
push_dir (push_ctx *c, inode *dir, const char *path)
{
  push_list l = { 0 };
  int opaque = 0;
  int r = overlay_lower_list (c->m->lower, c->layer, path, &opaque, collect_cb, &l);
  if (r == -ENOENT)
    r = 0; /* the layer has no such directory (its root only implied) */
  /* An opaque directory hides what the view loaded from below: the next
   * step gets a fresh mount rather than a second merge here. */
  if (r == 0 && opaque)
    r = -EAGAIN;
  for (size_t i = 0; r == 0 && i < l.n; i++)
    r = push_entry (c, dir, path, &l.v[i]);
  if (r == 0)
    r = (int) l.n;
  push_list_free (&l);
  return r;
}

static int
push_root (push_ctx *c)
{
  overlay_lower_attr ra;
  bool has = overlay_lower_layer_root_attr (c->m->lower, c->layer, &ra) == 0;
  return push_into_dir (c, c->m->root, "", has ? &ra : NULL);
}

int
overlay_model_push_layers (overlay_model *m, overlay_lower *from, unsigned first, overlay_model_inval **inv,
                           size_t *n_inv)
{
  *inv = NULL;
  *n_inv = 0;
  int r = 0;
  LOCKED (m)
  {
    unsigned n = overlay_lower_count (from);
    if (!m->lower || first > n)
      {
        r = -EAGAIN;
        break;
      }
    unsigned base = overlay_lower_count (m->lower);
    overlay_lower_take (m->lower, from, first);
    for (unsigned k = 0; r == 0 && k < n - first; k++)
      {
        push_ctx c = { .m = m, .layer = base + k, .inv = inv, .n_inv = n_inv };
        r = push_root (&c);
      }
    /* the caller mounts from's whole stack afresh */
    if (r < 0)
      overlay_lower_take (from, m->lower, base);
  }
  return r;
}
