/* layer_index_read.c - map and validate layer metadata indexes, and the
 * lookups on a validated index. The format is documented in layer_index.h
 * and docs/design/store.md ("Metadata index"); the builder and writer are in
 * layer_index.c. */
#include "store/layer_index.h"
#include "store/layer_index_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ======================================================================
 * Reader
 * ====================================================================== */

struct layer_index
{
  const char *base;
  size_t len;
  bool mapped;
  const layer_index_disk_header *h;
  const layer_index_disk_entry *e;
  const char *strings;
  const unsigned char *xattrs;
};

static int
bad (kiln_error **err, const char *what, uint32_t id)
{
  if (id == LAYER_INDEX_NONE)
    return kiln_error_make (err, EINVAL, "corrupt layer index: %s", what);
  return kiln_error_make (err, EINVAL, "corrupt layer index: entry %u: %s", id, what);
}

static bool
name_ok (const char *s, size_t len)
{
  if (len == 0 || len > LAYER_INDEX_NAME_MAX)
    return false;
  if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
    return false;
  return memchr (s, '/', len) == NULL && memchr (s, '\0', len) == NULL;
}

static int
validate_xattrs (const layer_index *idx, uint32_t id, const layer_index_disk_entry *e, kiln_error **err)
{
  if (e->xattr_count == 0)
    return e->xattr_off == 0 ? 0 : bad (err, "xattr offset without xattrs", id);
  if (e->xattr_count > XATTR_COUNT_MAX)
    return bad (err, "too many xattrs", id);
  if (e->type == LAYER_INDEX_WHITEOUT)
    return bad (err, "whiteout with xattrs", id);
  uint64_t off = e->xattr_off;
  uint64_t end = idx->h->xattrs_size;
  const unsigned char *prev = NULL;
  size_t prev_len = 0;
  for (uint32_t i = 0; i < e->xattr_count; i++)
    {
      if (off + 6 > end)
        return bad (err, "xattr record out of bounds", id);
      uint16_t nl;
      uint32_t vl;
      memcpy (&nl, idx->xattrs + off, 2);
      memcpy (&vl, idx->xattrs + off + 2, 4);
      if (nl == 0 || nl > LAYER_INDEX_XATTR_NAME_MAX || vl > LAYER_INDEX_XATTR_VALUE_MAX)
        return bad (err, "xattr name or value length out of range", id);
      if (off + 6 + nl + vl > end)
        return bad (err, "xattr record out of bounds", id);
      const unsigned char *name = idx->xattrs + off + 6;
      if (memchr (name, '\0', nl))
        return bad (err, "xattr name contains NUL", id);
      if (prev && layer_index_name_cmp ((const char *) prev, prev_len, (const char *) name, nl) >= 0)
        return bad (err, "xattr names not sorted or not unique", id);
      prev = name;
      prev_len = nl;
      off += 6 + nl + vl;
    }
  return 0;
}

static int
validate_entry (const layer_index *idx, uint32_t i, kiln_error **err)
{
  const layer_index_disk_entry *e = &idx->e[i];
  const layer_index_disk_header *h = idx->h;
  if (e->type < LAYER_INDEX_REG || e->type > LAYER_INDEX_WHITEOUT)
    return bad (err, "invalid type", i);
  if (e->flags & ~LAYER_INDEX_F_ALL)
    return bad (err, "unknown flags", i);
  if (e->flags && e->type != LAYER_INDEX_DIR)
    return bad (err, "directory flags on a non-directory", i);
  if (e->mode & ~07777u)
    return bad (err, "mode has bits outside 07777", i);
  if (e->mtime_nsec >= 1000000000u)
    return bad (err, "mtime nanoseconds out of range", i);
  if (e->reserved)
    return bad (err, "reserved field not zero", i);
  if ((uint64_t) e->name_off + e->name_len > h->strings_size)
    return bad (err, "name out of bounds", i);
  if (i == 0)
    {
      if (e->parent != 0 || e->name_len != 0 || e->type != LAYER_INDEX_DIR)
        return bad (err, "root is not an unnamed directory", i);
    }
  else
    {
      if (!name_ok (idx->strings + e->name_off, e->name_len))
        return bad (err, "invalid name", i);
      if (e->parent >= i || idx->e[e->parent].type != LAYER_INDEX_DIR)
        return bad (err, "parent is not an earlier directory", i);
      if (i > 1)
        {
          const layer_index_disk_entry *p = &idx->e[i - 1];
          if (e->parent < p->parent)
            return bad (err, "entries not grouped by parent", i);
          if (e->parent == p->parent
              && layer_index_name_cmp (idx->strings + p->name_off, p->name_len, idx->strings + e->name_off,
                                       e->name_len) >= 0)
            return bad (err, "names not sorted or not unique", i);
        }
    }
  if (e->type == LAYER_INDEX_SYMLINK)
    {
      if (e->link_len == 0 || e->link_len > LAYER_INDEX_LINK_MAX
          || (uint64_t) e->link_off + e->link_len > h->strings_size
          || memchr (idx->strings + e->link_off, '\0', e->link_len))
        return bad (err, "invalid symlink target", i);
    }
  else if (e->link_off || e->link_len)
    return bad (err, "link target on a non-symlink", i);
  if (e->type != LAYER_INDEX_DIR && (e->first_child || e->n_children))
    return bad (err, "children on a non-directory", i);
  if (e->type == LAYER_INDEX_DIR && e->n_children == 0 && e->first_child)
    return bad (err, "first child without children", i);
  if (e->type != LAYER_INDEX_CHR && e->type != LAYER_INDEX_BLK && (e->rdev_major || e->rdev_minor))
    return bad (err, "device number on a non-device", i);
  if (e->hardlink_group > h->hardlink_groups)
    return bad (err, "hardlink group out of range", i);
  if (e->hardlink_group == 0 ? e->nlink != 1 : (e->nlink < 2 || e->type == LAYER_INDEX_DIR
                                                || e->type == LAYER_INDEX_WHITEOUT))
    return bad (err, "invalid link count or hardlink group", i);
  if (e->type == LAYER_INDEX_WHITEOUT && (e->mode || e->size || e->uid || e->gid))
    return bad (err, "whiteout with metadata", i);
  return validate_xattrs (idx, i, e, err);
}

static int
validate_children (const layer_index *idx, kiln_error **err)
{
  uint32_t n = idx->h->entry_count;
  uint64_t claimed = 0;
  for (uint32_t i = 0; i < n; i++)
    if (idx->e[i].type == LAYER_INDEX_DIR)
      claimed += idx->e[i].n_children;
  if (claimed != (uint64_t) n - 1)
    return bad (err, "directory child counts do not add up", LAYER_INDEX_NONE);
  uint32_t i = 1;
  while (i < n)
    {
      uint32_t p = idx->e[i].parent;
      uint32_t start = i;
      while (i < n && idx->e[i].parent == p)
        i++;
      if (idx->e[p].first_child != start || idx->e[p].n_children != i - start)
        return bad (err, "child run does not match its directory", p);
    }
  return 0;
}

static int
validate_groups (const layer_index *idx, kiln_error **err)
{
  uint32_t g = idx->h->hardlink_groups;
  if (g == 0)
    return 0;
  autofree uint32_t *count = xcalloc ((size_t) g + 1, sizeof *count);
  uint32_t n = idx->h->entry_count;
  for (uint32_t i = 0; i < n; i++)
    count[idx->e[i].hardlink_group]++;
  for (uint32_t i = 0; i < n; i++)
    {
      uint32_t hg = idx->e[i].hardlink_group;
      if (hg && count[hg] != idx->e[i].nlink)
        return bad (err, "link count differs from its hardlink group size", i);
    }
  for (uint32_t k = 1; k <= g; k++)
    if (count[k] < 2)
      return bad (err, "hardlink group with fewer than two members", LAYER_INDEX_NONE);
  return 0;
}

static int
validate (layer_index *idx, kiln_error **err)
{
  if (idx->len < sizeof (layer_index_disk_header))
    return bad (err, "file shorter than its header", LAYER_INDEX_NONE);
  const layer_index_disk_header *h = (const layer_index_disk_header *) idx->base;
  if (memcmp (h->magic, LAYER_INDEX_MAGIC, sizeof LAYER_INDEX_MAGIC) != 0)
    return bad (err, "bad magic", LAYER_INDEX_NONE);
  if (h->version != LAYER_INDEX_VERSION)
    return kiln_error_make (err, EINVAL, "layer index: unsupported version %u (this kiln reads %d)",
                            h->version, LAYER_INDEX_VERSION);
  if (h->header_size != sizeof *h || h->entry_size != sizeof (layer_index_disk_entry)
      || h->entries_off != sizeof *h || h->reserved != 0)
    return bad (err, "unexpected header or entry size", LAYER_INDEX_NONE);
  if (h->file_size != idx->len)
    return bad (err, "file size does not match the header", LAYER_INDEX_NONE);
  if (h->entry_count == 0 || h->entry_count == UINT32_MAX)
    return bad (err, "entry count out of range", LAYER_INDEX_NONE);
  uint64_t ents_end = h->entries_off + (uint64_t) h->entry_count * sizeof (layer_index_disk_entry);
  if (ents_end != h->strings_off || (uint64_t) h->strings_off + h->strings_size != h->xattrs_off
      || (uint64_t) h->xattrs_off + h->xattrs_size != h->file_size)
    return bad (err, "sections do not tile the file", LAYER_INDEX_NONE);
  if (h->hardlink_groups > h->entry_count / 2)
    return bad (err, "too many hardlink groups", LAYER_INDEX_NONE);
  idx->h = h;
  idx->e = (const layer_index_disk_entry *) (idx->base + h->entries_off);
  idx->strings = idx->base + h->strings_off;
  idx->xattrs = (const unsigned char *) idx->base + h->xattrs_off;
  for (uint32_t i = 0; i < h->entry_count; i++)
    if (validate_entry (idx, i, err) < 0)
      return -1;
  if (validate_children (idx, err) < 0 || validate_groups (idx, err) < 0)
    return -1;
  return 0;
}

int
layer_index_open_fd (int fd, layer_index **out, kiln_error **err)
{
  struct stat st;
  if (fstat (fd, &st) < 0)
    return kiln_error_make (err, errno, "stat layer index");
  if (!S_ISREG (st.st_mode))
    return kiln_error_make (err, EINVAL, "layer index is not a regular file");
  if ((uint64_t) st.st_size < sizeof (layer_index_disk_header) || (uint64_t) st.st_size > UINT32_MAX)
    return kiln_error_make (err, EINVAL, "corrupt layer index: size %lld out of range", (long long) st.st_size);
  void *p = mmap (NULL, st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED)
    return kiln_error_make (err, errno, "mmap layer index");
  layer_index *idx = xzalloc (sizeof *idx);
  idx->base = p;
  idx->len = st.st_size;
  idx->mapped = true;
  if (validate (idx, err) < 0)
    {
      layer_index_close (idx);
      return -1;
    }
  *out = idx;
  return 0;
}

int
layer_index_open_at (int dirfd, const char *name, layer_index **out, kiln_error **err)
{
  autoclose int fd = openat (dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return kiln_error_make (err, errno, "open layer index '%s'", name);
  if (layer_index_open_fd (fd, out, err) < 0)
    return kiln_error_wrap (err, "'%s'", name);
  return 0;
}

int
layer_index_open_mem (const void *data, size_t len, layer_index **out, kiln_error **err)
{
  layer_index *idx = xzalloc (sizeof *idx);
  /* malloc's alignment satisfies the records' 8-byte fields. */
  idx->base = xmemdup (data, len ? len : 1);
  idx->len = len;
  if (validate (idx, err) < 0)
    {
      layer_index_close (idx);
      return -1;
    }
  *out = idx;
  return 0;
}

void
layer_index_close (layer_index *idx)
{
  if (idx == NULL)
    return;
  if (idx->mapped)
    munmap ((void *) idx->base, idx->len);
  else
    free ((void *) idx->base);
  free (idx);
}

void
cleanup_layer_indexp (layer_index **idx)
{
  layer_index_close (*idx);
  *idx = NULL;
}

uint32_t
layer_index_count (const layer_index *idx)
{
  return idx->h->entry_count;
}

uint32_t
layer_index_hardlink_groups (const layer_index *idx)
{
  return idx->h->hardlink_groups;
}

const layer_index_disk_entry *
layer_index_entry (const layer_index *idx, uint32_t id)
{
  return &idx->e[id];
}

const char *
layer_index_name (const layer_index *idx, uint32_t id, size_t *len)
{
  *len = idx->e[id].name_len;
  return idx->strings + idx->e[id].name_off;
}

const char *
layer_index_link (const layer_index *idx, uint32_t id, size_t *len)
{
  *len = idx->e[id].link_len;
  return idx->e[id].link_len ? idx->strings + idx->e[id].link_off : NULL;
}

mode_t
layer_index_st_mode (const layer_index_disk_entry *e)
{
  switch ((layer_index_type) e->type)
    {
    case LAYER_INDEX_REG:
      return S_IFREG | e->mode;
    case LAYER_INDEX_DIR:
      return S_IFDIR | e->mode;
    case LAYER_INDEX_SYMLINK:
      return S_IFLNK | e->mode;
    case LAYER_INDEX_CHR:
      return S_IFCHR | e->mode;
    case LAYER_INDEX_BLK:
      return S_IFBLK | e->mode;
    case LAYER_INDEX_FIFO:
      return S_IFIFO | e->mode;
    case LAYER_INDEX_SOCK:
      return S_IFSOCK | e->mode;
    case LAYER_INDEX_WHITEOUT:
      return S_IFCHR;
    }
  return 0;
}

uint32_t
layer_index_lookup_child (const layer_index *idx, uint32_t dir, const char *name, size_t len)
{
  const layer_index_disk_entry *d = &idx->e[dir];
  if (d->type != LAYER_INDEX_DIR)
    return LAYER_INDEX_NONE;
  uint32_t lo = d->first_child, hi = d->first_child + d->n_children;
  while (lo < hi)
    {
      uint32_t mid = lo + (hi - lo) / 2;
      const layer_index_disk_entry *m = &idx->e[mid];
      int c = layer_index_name_cmp (idx->strings + m->name_off, m->name_len, name, len);
      if (c == 0)
        return mid;
      if (c < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  return LAYER_INDEX_NONE;
}

uint32_t
layer_index_lookup (const layer_index *idx, const char *path)
{
  uint32_t cur = LAYER_INDEX_ROOT;
  const char *p = path, *s;
  size_t len;
  while (layer_index_next_component (&p, &s, &len))
    {
      if (len == 2 && s[0] == '.' && s[1] == '.')
        return LAYER_INDEX_NONE;
      cur = layer_index_lookup_child (idx, cur, s, len);
      if (cur == LAYER_INDEX_NONE)
        return cur;
    }
  return cur;
}

void
layer_index_path (const layer_index *idx, uint32_t id, strbuf *out)
{
  /* The chain ends: parent < id for every non-root entry (validated). */
  size_t total = 0;
  for (uint32_t c = id; c != 0; c = idx->e[c].parent)
    total += idx->e[c].name_len + 1;
  if (total == 0)
    return;
  total--;
  size_t start = out->len;
  strbuf_grow (out, total);
  size_t pos = start + total;
  for (uint32_t c = id; c != 0; c = idx->e[c].parent)
    {
      const layer_index_disk_entry *e = &idx->e[c];
      pos -= e->name_len;
      memcpy (out->buf + pos, idx->strings + e->name_off, e->name_len);
      if (e->parent != 0)
        out->buf[--pos] = '/';
    }
  strbuf_setlen (out, start + total);
}

void
layer_index_get_xattr (const layer_index *idx, uint32_t id, uint32_t i, const char **name, size_t *name_len,
                   const void **value, size_t *value_len)
{
  const unsigned char *p = idx->xattrs + idx->e[id].xattr_off;
  for (uint32_t k = 0;; k++)
    {
      uint16_t nl;
      uint32_t vl;
      memcpy (&nl, p, 2);
      memcpy (&vl, p + 2, 4);
      if (k == i)
        {
          *name = (const char *) p + 6;
          *name_len = nl;
          *value = p + 6 + nl;
          *value_len = vl;
          return;
        }
      p += 6 + nl + vl;
    }
}

bool
layer_index_xattr_find (const layer_index *idx, uint32_t id, const char *name, const void **value,
                        size_t *value_len)
{
  size_t want = strlen (name);
  for (uint32_t i = 0; i < idx->e[id].xattr_count; i++)
    {
      const char *n;
      size_t nl;
      layer_index_get_xattr (idx, id, i, &n, &nl, value, value_len);
      if (nl == want && memcmp (n, name, nl) == 0)
        return true;
    }
  return false;
}
