/* layer_index.c - build and write layer metadata indexes (the reader, its
 * validation and the lookups are in layer_index_read.c).
 * The format is documented in layer_index.h and docs/design/store.md ("Metadata index"). */
#include "store/layer_index.h"
#include "store/layer_index_internal.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/hash.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* ======================================================================
 * Builder: a tree of nodes plus a hash table keyed by (parent, name).
 * ====================================================================== */

typedef struct bxattr
{
  char *name;
  void *value;
  size_t len;
} bxattr;

typedef struct node
{
  struct node *parent;
  char *name;
  size_t name_len;
  struct node **children;
  size_t n_children, cap_children;
  uint8_t type;
  uint8_t flags;
  uint32_t mode, uid, gid;
  uint64_t size;
  int64_t mtime_sec;
  uint32_t mtime_nsec;
  uint32_t rdev_major, rdev_minor;
  char *link;
  bxattr *xattrs;
  size_t n_xattrs;
  uint32_t group;  /* builder-local hardlink group id, 0 = none */
  uint32_t index;  /* position while serialising */
  size_t slot_in_parent;
} node;

struct layer_index_builder
{
  node *root;
  node **table;     /* open addressing, linear probing */
  size_t table_cap; /* power of two */
  size_t count;     /* nodes excluding root */
  uint32_t next_group;
};

static uint64_t
hash_key (const node *parent, const char *name, size_t len)
{
  /* FNV-1a over the parent pointer (least significant byte first) and the
   * name. */
  uintptr_t p = (uintptr_t) parent;
  unsigned char pb[sizeof p];
  for (size_t i = 0; i < sizeof p; i++)
    pb[i] = (unsigned char) (p >> (i * 8));
  uint64_t h = hash_fnv1a (hash_fnv1a (HASH_FNV1A_OFFSET, pb, sizeof pb), name, len);
  return h ^ (h >> 29);
}

static bool
node_matches (const node *n, const node *parent, const char *name, size_t len)
{
  return n->parent == parent && n->name_len == len && memcmp (n->name, name, len) == 0;
}

static size_t
table_find_slot (const layer_index_builder *b, const node *parent, const char *name, size_t len)
{
  size_t mask = b->table_cap - 1;
  size_t i = hash_key (parent, name, len) & mask;
  while (b->table[i] != NULL && !node_matches (b->table[i], parent, name, len))
    i = (i + 1) & mask;
  return i;
}

static void table_insert (layer_index_builder *b, node *n);

static void
table_grow (layer_index_builder *b)
{
  node **old = b->table;
  size_t old_cap = b->table_cap;
  b->table_cap = old_cap ? old_cap * 2 : 1024;
  b->table = xcalloc (b->table_cap, sizeof *b->table);
  for (size_t i = 0; i < old_cap; i++)
    if (old[i])
      b->table[table_find_slot (b, old[i]->parent, old[i]->name, old[i]->name_len)] = old[i];
  free (old);
}

static void
table_insert (layer_index_builder *b, node *n)
{
  if ((b->count + 1) * 2 >= b->table_cap)
    table_grow (b);
  b->table[table_find_slot (b, n->parent, n->name, n->name_len)] = n;
}

static void
table_remove (layer_index_builder *b, node *n)
{
  size_t mask = b->table_cap - 1;
  size_t i = table_find_slot (b, n->parent, n->name, n->name_len);
  if (b->table[i] != n)
    return;
  b->table[i] = NULL;
  /* Backward-shift deletion keeps probe chains intact without tombstones. */
  size_t j = i;
  for (;;)
    {
      j = (j + 1) & mask;
      node *m = b->table[j];
      if (m == NULL)
        break;
      size_t home = hash_key (m->parent, m->name, m->name_len) & mask;
      bool between = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
      if (between)
        continue;
      b->table[i] = m;
      b->table[j] = NULL;
      i = j;
    }
}

static node *
table_get (const layer_index_builder *b, const node *parent, const char *name, size_t len)
{
  if (b->table_cap == 0)
    return NULL;
  return b->table[table_find_slot (b, parent, name, len)];
}

static void
node_clear_meta (node *n)
{
  free (n->link);
  n->link = NULL;
  for (size_t i = 0; i < n->n_xattrs; i++)
    {
      free (n->xattrs[i].name);
      free (n->xattrs[i].value);
    }
  free (n->xattrs);
  n->xattrs = NULL;
  n->n_xattrs = 0;
}

static void
node_free_tree (layer_index_builder *b, node *n)
{
  for (size_t i = 0; i < n->n_children; i++)
    node_free_tree (b, n->children[i]);
  if (b && n->parent)
    {
      table_remove (b, n);
      b->count--;
    }
  free (n->children);
  node_clear_meta (n);
  free (n->name);
  free (n);
}

layer_index_builder *
layer_index_builder_new (void)
{
  layer_index_builder *b = xzalloc (sizeof *b);
  b->root = xzalloc (sizeof *b->root);
  b->root->name = xstrdup ("");
  b->root->type = LAYER_INDEX_DIR;
  b->root->mode = 0755;
  b->root->flags = LAYER_INDEX_F_IMPLICIT;
  table_grow (b);
  return b;
}

void
layer_index_builder_free (layer_index_builder *b)
{
  if (b == NULL)
    return;
  node_free_tree (NULL, b->root);
  free (b->table);
  free (b);
}

void
cleanup_layer_index_builderp (layer_index_builder **b)
{
  layer_index_builder_free (*b);
  *b = NULL;
}

size_t
layer_index_builder_count (const layer_index_builder *b)
{
  return b->count + 1;
}

/* The next component of the path at *p (*len bytes at *name), skipping
 * repeated slashes and "." components, and advance *p past it; false at the
 * end. ".." comes back like any other name: the callers refuse it. */
bool
layer_index_next_component (const char **p, const char **name, size_t *len)
{
  for (;;)
    {
      while (**p == '/')
        (*p)++;
      if (**p == '\0')
        return false;
      const char *s = *p;
      while (**p && **p != '/')
        (*p)++;
      size_t n = (size_t) (*p - s);
      if (n == 1 && s[0] == '.')
        continue;
      *name = s;
      *len = n;
      return true;
    }
}

int
layer_index_normalize_path (const char *path, char **out, kiln_error **err)
{
  size_t in_len = strlen (path);
  if (in_len > LAYER_INDEX_PATH_MAX)
    return kiln_error_make (err, ENAMETOOLONG, "path '%.64s...' is longer than %d bytes", path,
                            LAYER_INDEX_PATH_MAX);
  strbuf sb = STRBUF_INIT;
  const char *p = path, *s;
  size_t len;
  while (layer_index_next_component (&p, &s, &len))
    {
      if (len == 2 && s[0] == '.' && s[1] == '.')
        {
          strbuf_release (&sb);
          return kiln_error_make (err, EINVAL, "path '%s' contains a '..' component", path);
        }
      if (len > LAYER_INDEX_NAME_MAX)
        {
          strbuf_release (&sb);
          return kiln_error_make (err, ENAMETOOLONG, "path '%.64s...' has a component longer than %d bytes",
                                  path, LAYER_INDEX_NAME_MAX);
        }
      if (sb.len)
        strbuf_addch (&sb, '/');
      strbuf_add (&sb, s, len);
    }
  *out = strbuf_detach (&sb, NULL);
  return 0;
}

static void
node_add_child (node *parent, node *child)
{
  if (parent->n_children == parent->cap_children)
    {
      parent->cap_children = parent->cap_children ? parent->cap_children * 2 : 4;
      parent->children = xreallocarray (parent->children, parent->cap_children, sizeof *parent->children);
    }
  child->slot_in_parent = parent->n_children;
  parent->children[parent->n_children++] = child;
  child->parent = parent;
}

/* Walk the directories of normalised path (all but the last component),
 * creating implicit ones; return the parent node and the last name. */
static int
walk_parents (layer_index_builder *b, const char *npath, node **parent_out, const char **name_out,
              kiln_error **err)
{
  node *cur = b->root;
  const char *p = npath;
  for (;;)
    {
      const char *slash = strchr (p, '/');
      if (slash == NULL)
        break;
      size_t len = slash - p;
      node *n = table_get (b, cur, p, len);
      if (n && n->type == LAYER_INDEX_WHITEOUT)
        {
          /* A member below a whited-out name: the directory is recreated in
           * this layer, hiding the lower one entirely. */
          n->type = LAYER_INDEX_DIR;
          n->mode = 0755;
          n->uid = n->gid = 0;
          n->flags = LAYER_INDEX_F_IMPLICIT | LAYER_INDEX_F_OPAQUE;
        }
      else if (n && n->type != LAYER_INDEX_DIR)
        return kiln_error_make (err, ENOTDIR, "'%.*s' is not a directory (in '%s')",
                                (int) (slash - npath), npath, npath);
      else if (n == NULL)
        {
          n = xzalloc (sizeof *n);
          n->name = xstrndup (p, len);
          n->name_len = len;
          n->type = LAYER_INDEX_DIR;
          n->mode = 0755;
          n->flags = LAYER_INDEX_F_IMPLICIT;
          node_add_child (cur, n);
          table_insert (b, n);
          b->count++;
        }
      cur = n;
      p = slash + 1;
    }
  *parent_out = cur;
  *name_out = p;
  return 0;
}

static int
xattr_cmp (const void *a, const void *b)
{
  return strcmp (((const bxattr *) a)->name, ((const bxattr *) b)->name);
}

static int
check_meta (const char *path, const layer_index_meta *m, kiln_error **err)
{
  switch (m->type)
    {
    case LAYER_INDEX_REG:
    case LAYER_INDEX_DIR:
    case LAYER_INDEX_CHR:
    case LAYER_INDEX_BLK:
    case LAYER_INDEX_FIFO:
    case LAYER_INDEX_SOCK:
    case LAYER_INDEX_WHITEOUT:
      break;
    case LAYER_INDEX_SYMLINK:
      if (m->link_target == NULL || m->link_target[0] == '\0')
        return kiln_error_make (err, EINVAL, "symlink '%s' has an empty target", path);
      if (strlen (m->link_target) > LAYER_INDEX_LINK_MAX)
        return kiln_error_make (err, ENAMETOOLONG, "symlink '%s': target longer than %d bytes", path,
                                LAYER_INDEX_LINK_MAX);
      break;
    default:
      return kiln_error_make (err, EINVAL, "'%s': invalid entry type %d", path, (int) m->type);
    }
  if (m->mtime_nsec >= 1000000000u)
    return kiln_error_make (err, EINVAL, "'%s': mtime nanoseconds out of range", path);
  if (m->n_xattrs > XATTR_COUNT_MAX)
    return kiln_error_make (err, E2BIG, "'%s': more than %d xattrs", path, XATTR_COUNT_MAX);
  for (size_t i = 0; i < m->n_xattrs; i++)
    {
      size_t nl = strlen (m->xattrs[i].name);
      if (nl == 0 || nl > LAYER_INDEX_XATTR_NAME_MAX)
        return kiln_error_make (err, EINVAL, "'%s': invalid xattr name length %zu", path, nl);
      if (m->xattrs[i].value_len > LAYER_INDEX_XATTR_VALUE_MAX)
        return kiln_error_make (err, E2BIG, "'%s': xattr '%s' value larger than %d bytes", path,
                                m->xattrs[i].name, LAYER_INDEX_XATTR_VALUE_MAX);
      for (size_t j = 0; j < i; j++)
        if (strcmp (m->xattrs[j].name, m->xattrs[i].name) == 0)
          return kiln_error_make (err, EINVAL, "'%s': duplicate xattr '%s'", path, m->xattrs[i].name);
    }
  return 0;
}

static void
node_set_meta (node *n, const layer_index_meta *m)
{
  node_clear_meta (n);
  n->type = m->type;
  n->flags = m->type == LAYER_INDEX_DIR ? (m->flags & LAYER_INDEX_F_OPAQUE) : 0;
  bool wh = m->type == LAYER_INDEX_WHITEOUT;
  n->mode = wh ? 0 : m->mode & 07777;
  n->uid = wh ? 0 : m->uid;
  n->gid = wh ? 0 : m->gid;
  n->mtime_sec = wh ? 0 : m->mtime_sec;
  n->mtime_nsec = wh ? 0 : m->mtime_nsec;
  bool dev = m->type == LAYER_INDEX_CHR || m->type == LAYER_INDEX_BLK;
  n->rdev_major = dev ? m->rdev_major : 0;
  n->rdev_minor = dev ? m->rdev_minor : 0;
  n->size = m->type == LAYER_INDEX_REG ? m->size : 0;
  if (m->type == LAYER_INDEX_SYMLINK)
    {
      n->link = xstrdup (m->link_target);
      n->size = strlen (n->link);
    }
  if (!wh && m->n_xattrs)
    {
      n->xattrs = xcalloc (m->n_xattrs, sizeof *n->xattrs);
      for (size_t i = 0; i < m->n_xattrs; i++)
        {
          n->xattrs[i].name = xstrdup (m->xattrs[i].name);
          n->xattrs[i].value = xmemdup (m->xattrs[i].value, m->xattrs[i].value_len);
          n->xattrs[i].len = m->xattrs[i].value_len;
        }
      n->n_xattrs = m->n_xattrs;
      qsort (n->xattrs, n->n_xattrs, sizeof *n->xattrs, xattr_cmp);
    }
}

static void
node_drop_children (layer_index_builder *b, node *n)
{
  for (size_t i = 0; i < n->n_children; i++)
    node_free_tree (b, n->children[i]);
  free (n->children);
  n->children = NULL;
  n->n_children = n->cap_children = 0;
}

/* Find or create the node for a normalised path, applying replacement rules
 * for a new entry of type new_type. *created tells whether it is new. */
static int
prepare_node (layer_index_builder *b, const char *npath, int new_type, node **out, int *replaced,
              kiln_error **err)
{
  if (replaced)
    *replaced = 0;
  if (*npath == '\0')
    {
      if (new_type != LAYER_INDEX_DIR)
        return kiln_error_make (err, EINVAL, "the layer root must be a directory");
      if (replaced)
        *replaced = LAYER_INDEX_DIR;
      *out = b->root;
      return 0;
    }
  node *parent = NULL;
  const char *name = NULL;
  if (walk_parents (b, npath, &parent, &name, err) < 0)
    return -1;
  size_t len = strlen (name);
  node *n = table_get (b, parent, name, len);
  if (n)
    {
      if (replaced)
        *replaced = n->type;
      if (n->type == LAYER_INDEX_DIR && new_type != LAYER_INDEX_DIR)
        node_drop_children (b, n);
      *out = n;
      return 0;
    }
  n = xzalloc (sizeof *n);
  n->name = xstrndup (name, len);
  n->name_len = len;
  node_add_child (parent, n);
  table_insert (b, n);
  b->count++;
  *out = n;
  return 0;
}

static node *
builder_find (layer_index_builder *b, const char *npath)
{
  node *cur = b->root;
  const char *p = npath;
  while (*p)
    {
      const char *slash = strchr (p, '/');
      size_t len = slash ? (size_t) (slash - p) : strlen (p);
      cur = table_get (b, cur, p, len);
      if (cur == NULL)
        return NULL;
      if (slash == NULL)
        break;
      p = slash + 1;
    }
  return cur;
}

int
layer_index_builder_add (layer_index_builder *b, const char *path, const layer_index_meta *meta,
                         int *replaced, kiln_error **err)
{
  autofree char *npath = NULL;
  if (layer_index_normalize_path (path, &npath, err) < 0)
    return -1;
  if (check_meta (npath, meta, err) < 0)
    return -1;
  int old = 0;
  node *n;
  if (meta->type == LAYER_INDEX_WHITEOUT)
    {
      node *existing = builder_find (b, npath);
      if (existing && existing->type == LAYER_INDEX_DIR)
        {
          existing->flags |= LAYER_INDEX_F_OPAQUE;
          if (replaced)
            *replaced = LAYER_INDEX_DIR;
          return 0;
        }
      if (existing && existing->type != LAYER_INDEX_WHITEOUT)
        {
          if (replaced)
            *replaced = 0;
          return 0;
        }
    }
  if (prepare_node (b, npath, meta->type, &n, &old, err) < 0)
    return -1;
  if (replaced)
    *replaced = old;
  uint8_t keep_flags = 0;
  if (meta->type == LAYER_INDEX_DIR && old == LAYER_INDEX_DIR)
    keep_flags = n->flags & LAYER_INDEX_F_OPAQUE;
  if (meta->type == LAYER_INDEX_DIR && old == LAYER_INDEX_WHITEOUT)
    keep_flags = LAYER_INDEX_F_OPAQUE;
  n->group = 0;
  node_set_meta (n, meta);
  n->flags |= keep_flags;
  return 0;
}

int
layer_index_builder_add_hardlink (layer_index_builder *b, const char *path, const char *target,
                                  int *replaced, kiln_error **err)
{
  autofree char *npath = NULL;
  autofree char *ntarget = NULL;
  if (layer_index_normalize_path (path, &npath, err) < 0
      || layer_index_normalize_path (target, &ntarget, err) < 0)
    return -1;
  node *t = builder_find (b, ntarget);
  if (t == NULL || t->type == LAYER_INDEX_WHITEOUT)
    return kiln_error_make (err, ENOENT, "hardlink '%s': target '%s' is not in this layer", npath, ntarget);
  if (t->type == LAYER_INDEX_DIR)
    return kiln_error_make (err, EPERM, "hardlink '%s': target '%s' is a directory", npath, ntarget);
  if (strcmp (npath, ntarget) == 0)
    return 0;
  node *existing = builder_find (b, npath);
  if (existing && existing->type == LAYER_INDEX_DIR)
    return kiln_error_make (err, EEXIST, "hardlink '%s': a directory of that name exists", npath);
  node *n;
  if (prepare_node (b, npath, t->type, &n, replaced, err) < 0)
    return -1;
  /* prepare_node frees nothing here: path is not a directory, so no
   * subtree is dropped, and t is not a directory. */
  layer_index_meta m = {
    .type = t->type, .mode = t->mode, .uid = t->uid, .gid = t->gid, .size = t->size,
    .mtime_sec = t->mtime_sec, .mtime_nsec = t->mtime_nsec, .rdev_major = t->rdev_major,
    .rdev_minor = t->rdev_minor, .link_target = t->link,
  };
  layer_index_xattr *xs = NULL;
  if (t->n_xattrs)
    {
      xs = xcalloc (t->n_xattrs, sizeof *xs);
      for (size_t i = 0; i < t->n_xattrs; i++)
        xs[i] = (layer_index_xattr) { t->xattrs[i].name, t->xattrs[i].value, t->xattrs[i].len };
      m.xattrs = xs;
      m.n_xattrs = t->n_xattrs;
    }
  node_set_meta (n, &m);
  free (xs);
  if (t->group == 0)
    t->group = ++b->next_group;
  n->group = t->group;
  return 0;
}

int
layer_index_builder_set_opaque (layer_index_builder *b, const char *path, kiln_error **err)
{
  autofree char *npath = NULL;
  if (layer_index_normalize_path (path, &npath, err) < 0)
    return -1;
  node *n = builder_find (b, npath);
  if (n == NULL || n->type == LAYER_INDEX_WHITEOUT)
    {
      layer_index_meta m = { .type = LAYER_INDEX_DIR, .mode = 0755, .flags = LAYER_INDEX_F_OPAQUE };
      if (layer_index_builder_add (b, npath, &m, NULL, err) < 0)
        return -1;
      n = builder_find (b, npath);
      n->flags |= LAYER_INDEX_F_IMPLICIT;
      return 0;
    }
  if (n->type != LAYER_INDEX_DIR)
    return kiln_error_make (err, ENOTDIR, "opaque marker in '%s', which is not a directory", npath);
  n->flags |= LAYER_INDEX_F_OPAQUE;
  return 0;
}

int
layer_index_builder_type (layer_index_builder *b, const char *path)
{
  autoerror kiln_error *err = NULL;
  autofree char *npath = NULL;
  if (layer_index_normalize_path (path, &npath, &err) < 0)
    return 0;
  node *n = builder_find (b, npath);
  return n ? n->type : 0;
}

/* ---- serialisation ---------------------------------------------------- */

int
layer_index_name_cmp (const char *a, size_t al, const char *b, size_t bl)
{
  int c = memcmp (a, b, al < bl ? al : bl);
  if (c)
    return c;
  return al < bl ? -1 : al > bl;
}

static int
node_ptr_cmp (const void *pa, const void *pb)
{
  const node *a = *(node *const *) pa;
  const node *b = *(node *const *) pb;
  return layer_index_name_cmp (a->name, a->name_len, b->name, b->name_len);
}

/* Number the nodes breadth-first into order (n slots), each directory's
 * children sorted by name. */
static void
order_nodes (layer_index_builder *b, node **order, size_t n)
{
  size_t q = 0;
  order[q++] = b->root;
  for (size_t i = 0; i < q; i++)
    {
      node *d = order[i];
      d->index = i;
      if (d->n_children == 0)
        continue;
      qsort (d->children, d->n_children, sizeof *d->children, node_ptr_cmp);
      for (size_t c = 0; c < d->n_children; c++)
        {
          d->children[c]->slot_in_parent = c;
          order[q++] = d->children[c];
        }
    }
  assert (q == n);
}

/* Hardlink groups: count the members of each (gcount), renumber them
 * densely in entry order (gmap), dropping groups of one. Returns the number
 * of groups left. */
static uint32_t
number_hardlink_groups (node *const *order, size_t n, uint32_t *gcount, uint32_t *gmap)
{
  for (size_t i = 0; i < n; i++)
    gcount[order[i]->group]++;
  uint32_t groups = 0;
  for (size_t i = 0; i < n; i++)
    {
      uint32_t g = order[i]->group;
      if (g && gcount[g] > 1 && gmap[g] == 0)
        gmap[g] = ++groups;
    }
  return groups;
}

/* Fill the disk entry of d, appending its name and link target to strings
 * and its xattrs to xattrs. */
static void
encode_entry (const node *d, const uint32_t *gcount, const uint32_t *gmap, layer_index_disk_entry *e,
              strbuf *strings, strbuf *xattrs)
{
  e->parent = d->parent ? d->parent->index : 0;
  e->name_off = strings->len;
  e->name_len = d->name_len;
  strbuf_add (strings, d->name, d->name_len);
  e->type = d->type;
  e->flags = d->flags;
  e->mode = d->mode;
  e->uid = d->uid;
  e->gid = d->gid;
  e->size = d->size;
  e->mtime_sec = d->mtime_sec;
  e->mtime_nsec = d->mtime_nsec;
  e->rdev_major = d->rdev_major;
  e->rdev_minor = d->rdev_minor;
  e->hardlink_group = (d->group && gcount[d->group] > 1) ? gmap[d->group] : 0;
  e->nlink = e->hardlink_group ? gcount[d->group] : 1;
  if (d->n_children)
    {
      e->first_child = d->children[0]->index;
      e->n_children = d->n_children;
    }
  if (d->link)
    {
      e->link_off = strings->len;
      e->link_len = strlen (d->link);
      strbuf_adds (strings, d->link);
    }
  e->xattr_off = xattrs->len;
  e->xattr_count = d->n_xattrs;
  for (size_t x = 0; x < d->n_xattrs; x++)
    {
      uint16_t nl = strlen (d->xattrs[x].name);
      uint32_t vl = d->xattrs[x].len;
      strbuf_add (xattrs, &nl, sizeof nl);
      strbuf_add (xattrs, &vl, sizeof vl);
      strbuf_add (xattrs, d->xattrs[x].name, nl);
      strbuf_add (xattrs, d->xattrs[x].value, vl);
    }
  if (d->n_xattrs == 0)
    e->xattr_off = 0;
}

/* Lay out header, entries, strings and xattrs in one buffer. */
static int
assemble_index (const layer_index_disk_entry *ents, size_t n, uint32_t groups, strbuf *strings, strbuf *xattrs,
                void **data, size_t *len, kiln_error **err)
{
  layer_index_disk_header h = { .version = LAYER_INDEX_VERSION, .header_size = sizeof h };
  memcpy (h.magic, LAYER_INDEX_MAGIC, sizeof LAYER_INDEX_MAGIC);
  h.entry_count = n;
  h.entry_size = sizeof (layer_index_disk_entry);
  h.entries_off = sizeof h;
  uint64_t strings_off = h.entries_off + (uint64_t) n * sizeof (layer_index_disk_entry);
  uint64_t total = strings_off + strings->len + xattrs->len;
  if (total > UINT32_MAX)
    {
      strbuf_release (strings);
      strbuf_release (xattrs);
      return kiln_error_make (err, E2BIG, "layer index: file would exceed 4 GiB");
    }
  h.strings_off = strings_off;
  h.strings_size = strings->len;
  h.xattrs_off = strings_off + strings->len;
  h.xattrs_size = xattrs->len;
  h.file_size = total;
  h.hardlink_groups = groups;

  char *buf = xmalloc (total ? total : 1);
  memcpy (buf, &h, sizeof h);
  memcpy (buf + h.entries_off, ents, (size_t) n * sizeof *ents);
  memcpy (buf + h.strings_off, strings->buf, strings->len);
  memcpy (buf + h.xattrs_off, xattrs->buf, xattrs->len);
  strbuf_release (strings);
  strbuf_release (xattrs);
  *data = buf;
  *len = total;
  return 0;
}

int
layer_index_builder_serialize (layer_index_builder *b, void **data, size_t *len, kiln_error **err)
{
  size_t n = b->count + 1;
  if (n >= UINT32_MAX)
    return kiln_error_make (err, E2BIG, "layer index: too many entries (%zu)", n);
  autofree node **order = xcalloc (n, sizeof *order);
  order_nodes (b, order, n);

  autofree uint32_t *gcount = xcalloc (b->next_group + 1, sizeof *gcount);
  autofree uint32_t *gmap = xcalloc (b->next_group + 1, sizeof *gmap);
  uint32_t groups = number_hardlink_groups (order, n, gcount, gmap);

  strbuf strings = STRBUF_INIT;
  strbuf xattrs = STRBUF_INIT;
  autofree layer_index_disk_entry *ents = xcalloc (n, sizeof *ents);
  for (size_t i = 0; i < n; i++)
    {
      encode_entry (order[i], gcount, gmap, &ents[i], &strings, &xattrs);
      if (strings.len > UINT32_MAX || xattrs.len > UINT32_MAX)
        {
          strbuf_release (&strings);
          strbuf_release (&xattrs);
          return kiln_error_make (err, E2BIG, "layer index: string table or xattrs over 4 GiB");
        }
    }
  return assemble_index (ents, n, groups, &strings, &xattrs, data, len, err);
}

int
layer_index_builder_write_at (layer_index_builder *b, int dirfd, const char *name, kiln_error **err)
{
  autofree void *data = NULL;
  size_t len;
  if (layer_index_builder_serialize (b, &data, &len, err) < 0)
    return -1;
  if (fs_write_file_unsynced_at (dirfd, name, data, len, 0644, err) < 0)
    return kiln_error_wrap (err, "writing layer index '%s'", name);
  return 0;
}
