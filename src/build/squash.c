/* squash.c - merge a run of store layers into one change list (see squash.h). */
#include "build/squash.h"
#include "store/layer_index.h"
#include "util/alloc.h"

#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum
{
  DECIDED = 1,     /* a newer layer has an entry at this path */
  CUT = 2,         /* ... and nothing at or below it in older layers shows */
  CUT_BELOW = 4,   /* ... nothing strictly below it in older layers shows */
  OPAQUE_MADE = 8, /* an opaque marker for it is in the result */
};

struct squash
{
  size_t n_layers;
  int *tree_fds;
  layer_index **idx;
  layer_changes *lc;
  layer_change *v;      /* result */
  size_t n, cap;
  struct hsearch_data tab;
  bool tab_ready;
  char **extra;         /* owned strings made here */
};

static void
push (squash *q, layer_change c)
{
  if (q->n == q->cap)
    {
      q->cap = q->cap ? q->cap * 2 : 256;
      q->v = xreallocarray (q->v, q->cap, sizeof *q->v);
    }
  q->v[q->n++] = c;
}

/* The flags word of path (created as 0 when missing). */
static uintptr_t *
flags_of (squash *q, const char *path)
{
  ENTRY e = { (char *) path, NULL }, *r = NULL;
  if (!hsearch_r (e, ENTER, &r, &q->tab) || !r)
    return NULL;
  return (uintptr_t *) &r->data;
}

static uintptr_t
flags_get (squash *q, const char *path)
{
  ENTRY e = { (char *) path, NULL }, *r = NULL;
  if (!hsearch_r (e, FIND, &r, &q->tab) || !r)
    return 0;
  return (uintptr_t) r->data;
}

/* Hidden by a newer layer: the path itself is decided or cut, or an
 * ancestor is cut or cut below. */
static bool
hidden (squash *q, const char *path, char *buf)
{
  uintptr_t f = flags_get (q, path);
  if (f & (DECIDED | CUT))
    return true;
  size_t len = strlen (path);
  memcpy (buf, path, len + 1);
  for (size_t i = len; i-- > 0;)
    if (buf[i] == '/')
      {
        buf[i] = '\0';
        if (flags_get (q, buf) & (CUT | CUT_BELOW))
          return true;
      }
  return false;
}

static int
mark (squash *q, const char *path, uintptr_t add, kiln_error **err)
{
  uintptr_t *f = flags_of (q, path);
  if (!f)
    return kiln_error_make (err, ENOMEM, "squashing layers: path table full at '%s'", path);
  *f |= add;
  return 0;
}

static int
path_cmp (const void *a, const void *b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* The paths of the entries of lc that show and can be hardlink targets,
 * sorted for bsearch: a lookup per link instead of a scan of the layer,
 * which made layers with many hardlinks quadratic. */
static const char **
link_targets (const layer_changes *lc, const bool *show, size_t *n)
{
  const char **v = xcalloc (lc->n + 1, sizeof *v);
  *n = 0;
  for (size_t j = 0; j < lc->n; j++)
    if (show[j] && lc->v[j].kind == LAYER_CHANGE_ADD)
      v[(*n)++] = lc->v[j].path;
  qsort (v, *n, sizeof *v, path_cmp);
  return v;
}

static int
take_layer (squash *q, const layer_changes *lc, kiln_error **err)
{
  autofree char *buf = NULL;
  size_t maxlen = 0;
  for (size_t i = 0; i < lc->n; i++)
    if (strlen (lc->v[i].path) > maxlen)
      maxlen = strlen (lc->v[i].path);
  buf = xmalloc (maxlen + 1);
  /* Decide what shows first, then mark: entries of one layer never hide
   * each other. */
  autofree bool *show = xcalloc (lc->n + 1, sizeof *show);
  for (size_t i = 0; i < lc->n; i++)
    {
      const layer_change *c = &lc->v[i];
      show[i] = !hidden (q, c->path, buf);
      /* An older whiteout under a newer directory: that directory was
       * emptied and made again, so it must hide the parent's contents. */
      if (!show[i] && c->kind == LAYER_CHANGE_WHITEOUT && (flags_get (q, c->path) & DECIDED)
          && !(flags_get (q, c->path) & (CUT | OPAQUE_MADE)))
        {
          push (q, (layer_change) { .path = c->path, .kind = LAYER_CHANGE_OPAQUE });
          if (mark (q, c->path, OPAQUE_MADE, err) < 0)
            return -1;
        }
    }
  autofree const char **targets = NULL; /* made at the first hardlink */
  size_t n_targets = 0;
  for (size_t i = 0; i < lc->n; i++)
    {
      if (!show[i])
        continue;
      layer_change c = lc->v[i];
      switch (c.kind)
        {
        case LAYER_CHANGE_WHITEOUT:
          push (q, c);
          if (mark (q, c.path, DECIDED | CUT, err) < 0)
            return -1;
          break;
        case LAYER_CHANGE_OPAQUE:
          if (flags_get (q, c.path) & OPAQUE_MADE)
            break;
          push (q, c);
          if (mark (q, c.path, CUT_BELOW | OPAQUE_MADE, err) < 0)
            return -1;
          break;
        case LAYER_CHANGE_ADD:
          if (c.hardlink_target)
            {
              /* Its target is in this layer; if a newer layer hid it, the
               * link becomes a file with the same data. */
              if (!targets)
                targets = link_targets (lc, show, &n_targets);
              if (!bsearch (&c.hardlink_target, targets, n_targets, sizeof *targets, path_cmp))
                c.hardlink_target = NULL;
            }
          push (q, c);
          if (mark (q, c.path, DECIDED | (c.meta.type == LAYER_INDEX_DIR ? 0 : CUT), err) < 0)
            return -1;
          break;
        }
    }
  return 0;
}

int
squash_new (store *s, char *const *diff_ids, size_t n, squash **out, kiln_error **err)
{
  squash *q = xzalloc (sizeof *q);
  q->n_layers = n;
  q->tree_fds = xcalloc (n + 1, sizeof *q->tree_fds);
  q->idx = xcalloc (n + 1, sizeof *q->idx);
  q->lc = xcalloc (n + 1, sizeof *q->lc);
  for (size_t i = 0; i < n; i++)
    q->tree_fds[i] = -1;
  size_t total = 0;
  int r = 0;
  for (size_t i = 0; i < n && r == 0; i++)
    {
      r = store_open_layer (s, diff_ids[i], &q->tree_fds[i], &q->idx[i], err);
      if (r == 0)
        r = layer_writer_changes_from_index (q->idx[i], q->tree_fds[i], &q->lc[i], err);
      if (r < 0)
        kiln_error_wrap (err, "squashing layer %s", diff_ids[i]);
      else
        total += q->lc[i].n;
    }
  if (r == 0 && !hcreate_r (total * 2 + 64, &q->tab))
    r = kiln_error_make (err, errno, "squashing layers: path table");
  q->tab_ready = r == 0;
  for (size_t i = n; r == 0 && i-- > 0;)
    r = take_layer (q, &q->lc[i], err);
  if (r < 0)
    {
      squash_free (q);
      return -1;
    }
  *out = q;
  return 0;
}

const layer_change *
squash_changes (const squash *q, size_t *n)
{
  *n = q->n;
  return q->v;
}

void
squash_free (squash *q)
{
  if (!q)
    return;
  if (q->tab_ready)
    hdestroy_r (&q->tab);
  for (size_t i = 0; i < q->n_layers; i++)
    {
      layer_writer_changes_free (&q->lc[i]);
      if (q->idx[i])
        layer_index_close (q->idx[i]);
      if (q->tree_fds[i] >= 0)
        close (q->tree_fds[i]);
    }
  free (q->lc);
  free (q->idx);
  free (q->tree_fds);
  free (q->v);
  strv_free (q->extra);
  free (q);
}
