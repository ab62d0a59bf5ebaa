/* overlay_model_commit.c - the write log becomes a change list: commit
 * visits only the names marked in the step (see overlay_model.c) and starts
 * a new upper generation; see overlay_model_internal.h.
 */
#include "overlay/overlay_model_internal.h"
#include "store/layer_index.h"
#include "util/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
  char *too_long;  /* the start of the first path over LAYER_INDEX_PATH_MAX */
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
  overlay_model_strset_clear (&n->dirty);
  overlay_model_strset_clear (&n->deleted);
}

/* path/name, or NULL when that is longer than a layer can hold (the store's
 * LAYER_INDEX_PATH_MAX, Linux's PATH_MAX): the first such path is kept for
 * the commit's error. Checked here, before the string is made, so a tree
 * nested deeper than that costs no full path per level (a 1,500-level tree
 * of 255-byte names held each path in the recursion and again in the
 * change list: 568 MB). */
static char *
child_path (emit_ctx *c, const char *path, size_t plen, const char *name, size_t *len)
{
  size_t nl = strlen (name);
  *len = plen + (plen ? 1 : 0) + nl;
  if (*len <= LAYER_INDEX_PATH_MAX)
    return overlay_model_join (path, name);
  if (!c->too_long)
    c->too_long = xasprintf ("%.96s", plen ? path : name);
  return NULL;
}

/* A name that is new in this step: ship it and everything below it. */
static void
emit_full (emit_ctx *c, dentry *d, const char *path, size_t plen)
{
  if (d->mask == MASK_SKIP)
    return;
  inode *n = d->inode;
  emit (c, OVERLAY_CHANGE_ADD, path, n);
  d->base = true;
  if (S_ISDIR (n->mode))
    {
      overlay_model_load_dir (c->m, n);
      for (size_t b = 0; b < n->nbuckets && !c->too_long; b++)
        for (dentry *k = n->buckets[b]; k; k = k->hnext)
          {
            size_t len;
            autofree char *p = child_path (c, path, plen, k->name, &len);
            if (p)
              emit_full (c, k, p, len);
          }
    }
  settle (n);
}

static void
emit_dirty (emit_ctx *c, inode *dir, const char *path, size_t plen)
{
  for (size_t s = 0; s < dir->dirty.cap && !c->too_long; s++)
    {
      const char *name = dir->dirty.slot[s];
      if (!name)
        continue;
      dentry *d = overlay_model_dir_find (dir, name);
      bool deleted = overlay_model_strset_has (&dir->deleted, name);
      if ((d && d->mask == MASK_SKIP) || (!d && !deleted))
        continue; /* masked, or made and removed again within the step */
      size_t len;
      autofree char *p = child_path (c, path, plen, name, &len);
      if (!p)
        continue;
      if (!d)
        {
          emit (c, OVERLAY_CHANGE_WHITEOUT, p, NULL);
          continue;
        }
      if (deleted || !d->base)
        {
          /* a replaced directory must hide what the lowers had below it */
          if (deleted && S_ISDIR (d->inode->mode))
            emit (c, OVERLAY_CHANGE_OPAQUE, p, d->inode);
          emit_full (c, d, p, len);
          continue;
        }
      if (d->inode->changed)
        emit (c, OVERLAY_CHANGE_ADD, p, d->inode);
      if (S_ISDIR (d->inode->mode))
        {
          size_t before = c->n;
          emit_dirty (c, d->inode, p, len);
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
  overlay_model_fill_stat (m, n, &st);
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
    overlay_model_copy_up (m, n);
  if (S_ISREG (n->mode))
    {
      if (n->has_upper)
        {
          ch->data_dirfd = m->scratch_fd;
          ch->data_path = xasprintf ("upper-%u/%llu", n->upper_gen, (unsigned long long) n->ino);
          /* frozen by this commit; overlay_commit revokes every handle
           * that could still write it */
          ch->data_private = true;
        }
      else if (n->lpath)
        {
          ch->data_dirfd = overlay_lower_dirfd (m->lower, n->llayers[0]);
          ch->data_path = xstrdup (n->lpath);
          ch->data_private = overlay_lower_is_store (m->lower, n->llayers[0]);
        }
    }
  overlay_model_load_xattrs (m, n);
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

int
overlay_model_commit (overlay_model *m, overlay_changes **out, kiln_error **err)
{
  int ret = 0;
  LOCKED (m)
  {
    emit_ctx c = { .m = m };
    m->commits++;
    m->noticed = 0;
    emit_dirty (&c, m->root, "", 0);
    if (c.too_long)
      {
        ret = kiln_error_make (err, ENAMETOOLONG,
                               "the step made a path longer than %d bytes, more than a layer can hold "
                               "(Linux's PATH_MAX): '%s...'",
                               LAYER_INDEX_PATH_MAX, c.too_long);
        for (size_t i = 0; i < c.n; i++)
          free (c.v[i].path);
        free (c.v);
        free (c.too_long);
        break;
      }
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
            /* compared only within this commit: borrowing is safe */
            p->inode->emit_commit = m->commits;
            p->inode->emit_path = p->path;
          }
        if (p->kind == OVERLAY_CHANGE_ADD)
          fill_change (m, ch, p->inode);
      }
    free (c.v);
    if ((ret = overlay_model_new_upper (m, err)) < 0)
      {
        overlay_changes_free (res);
        break;
      }
    *out = res;
  }
  return ret;
}
