/* overlay_model_step.c - per-step settings on a live mount: the owner of
 * created files and the mask paths (placeholders made and pruned); see
 * overlay_model_internal.h.
 */
#include "overlay/overlay_model_internal.h"
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

/* ---- per-step settings on a live mount ---- */

/* The mask paths as the model keeps them: relative (leading '/' dropped),
 * empty ones left out; NULL when there are none. */
char **
overlay_model_masks_copy (const char *const *paths)
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
 * directory not loaded yet gets its masks from overlay_model_load_dir); *whole tells
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
      if (!S_ISDIR (dir->mode) || !dir->loaded || !(d = overlay_model_dir_find (dir, comps[i])))
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
        return; /* overlay_model_load_dir applies it */
      autofree char *name = xstrndup (p, l);
      dentry *d = overlay_model_dir_find (dir, name);
      if (!d)
        {
          d = overlay_model_add_placeholder (m, dir, name, isdir);
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
      overlay_model_dir_del (dir, d);
      overlay_model_maybe_free (m, c);
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
    char **nm = overlay_model_masks_copy (mask_paths);
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
