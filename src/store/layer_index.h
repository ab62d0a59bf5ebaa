/* layer_index.h - per-layer metadata index: the true ownership, modes, device
 * numbers, link targets, xattrs and whiteouts of one extracted layer.
 *
 * A store layer is a tree of plain directories and regular files owned by the
 * user running kiln (tree/) plus this index (index), which holds what the
 * tree cannot: owners, full modes, mtimes, symlinks, device nodes, fifos,
 * sockets, hardlink groups, xattrs, whiteouts and opaque markers. The FUSE
 * overlay loads a stack of indexes once per stage and answers lookup/getattr/
 * readdir from them, so the format is built for that:
 *
 * - one file, mapped read-only with mmap; opening validates every offset,
 *   length, name and link of the (untrusted) file once, in O(n), so later
 *   accessors need no checks and never read outside the mapping;
 * - entries are fixed-size records in breadth-first order: entry 0 is the
 *   layer's root directory, and the children of every directory are one
 *   contiguous run sorted by name (memcmp order, a shorter prefix first). A
 *   FUSE lookup (parent, name) is one binary search in the parent's run; a
 *   readdir is the run itself (stable offsets = positions in the run); a path
 *   lookup walks its components.
 *
 * On-disk format, version 1, all integers little-endian (the reader refuses
 * to build on big-endian hosts rather than byte-swap):
 *
 *   offset size  header (layer_index_disk_header, 64 bytes)
 *   0      8     magic "KILNIDX\0"
 *   8      4     version (1)
 *   12     4     header_size (64)
 *   16     8     file_size: the exact size of the file
 *   24     4     entry_count (>= 1; entry 0 is the root directory)
 *   28     4     entry_size (88)
 *   32     8     entries_off (64): entry_count records follow
 *   40     4     strings_off   \ string table: names and symlink targets,
 *   44     4     strings_size  / not NUL-terminated (offset + length)
 *   48     4     xattrs_off    \ xattr area: per entry a run of xattr_count
 *   52     4     xattrs_size   / records, see below
 *   56     4     hardlink_groups: number of hardlink groups (ids 1..N)
 *   60     4     reserved, 0
 *
 *   Sections appear in that order (header, entries, strings, xattrs), each
 *   starting where the previous ends, and end exactly at file_size.
 *
 *   entry (layer_index_disk_entry, 88 bytes)
 *   0   4  parent        index of the parent directory (root: 0)
 *   4   4  name_off      name in the string table (root: empty)
 *   8   2  name_len      1..255; no '/', no NUL, not "." or ".."
 *   10  1  type          layer_index_type
 *   11  1  flags         LAYER_INDEX_F_*
 *   12  4  mode          permission bits incl. setuid/setgid/sticky (07777)
 *   16  4  uid
 *   20  4  gid
 *   24  8  size          regular files: content size; symlinks: target length
 *   32  8  mtime_sec     signed seconds since the epoch
 *   40  4  mtime_nsec    < 1e9
 *   44  4  nlink         members of the entry's hardlink group (1 if none)
 *   48  4  rdev_major    character and block devices
 *   52  4  rdev_minor
 *   56  4  first_child   directories: index of the first child
 *   60  4  n_children    directories: number of children
 *   64  4  link_off      symlink target in the string table
 *   68  4  link_len      symlinks: 1..4095; else 0
 *   72  4  hardlink_group 0: none; else 1..hardlink_groups
 *   76  4  xattr_off     offset of the entry's run in the xattr area
 *   80  4  xattr_count
 *   84  4  reserved, 0
 *
 *   xattr record: u16 name_len (1..255), u32 value_len (<= 65536), name bytes
 *   (no NUL), value bytes; packed, no padding. Names are unique per entry.
 *
 * Ordering invariants checked at open: parent[i] < i for i > 0 and is a
 * directory; parents are non-decreasing along the array; names strictly
 * increase within a parent; each directory's first_child/n_children is the
 * exact run of entries whose parent it is (empty runs have first_child 0).
 * Whiteout entries (type WHITEOUT) have no children, mode 0 and no data.
 *
 * Semantics for the overlay:
 * - WHITEOUT: the name is deleted in lower layers (from a ".wh.NAME" member).
 * - LAYER_INDEX_F_OPAQUE on a directory: lower layers' contents of it are
 *   hidden (".wh..wh..opq", or a whiteout and a directory of the same name in
 *   one layer).
 * - LAYER_INDEX_F_IMPLICIT: a directory the tar never listed but that had to
 *   exist for its children (mode 0755, root-owned, mtime 0); prefer a lower
 *   layer's metadata for it.
 * - Regular files have their data at the same path below the layer's tree;
 *   members of one hardlink group are hardlinks of one tree inode.
 *   Directories exist in the tree; symlinks, devices, fifos, sockets and
 *   whiteouts exist only here.
 */
#ifndef KILN_STORE_LAYER_INDEX_H
#define KILN_STORE_LAYER_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "util/error.h"
#include "util/strbuf.h"

#define LAYER_INDEX_MAGIC "KILNIDX"
#define LAYER_INDEX_VERSION 1
#define LAYER_INDEX_ROOT 0u
#define LAYER_INDEX_NONE UINT32_MAX
#define LAYER_INDEX_NAME_MAX 255
#define LAYER_INDEX_LINK_MAX 4095
#define LAYER_INDEX_XATTR_NAME_MAX 255
#define LAYER_INDEX_XATTR_VALUE_MAX 65536
/* Paths given to the builder: at most PATH_MAX bytes. */
#define LAYER_INDEX_PATH_MAX 4096

typedef enum
{
  LAYER_INDEX_REG = 1,
  LAYER_INDEX_DIR = 2,
  LAYER_INDEX_SYMLINK = 3,
  LAYER_INDEX_CHR = 4,
  LAYER_INDEX_BLK = 5,
  LAYER_INDEX_FIFO = 6,
  LAYER_INDEX_SOCK = 7,
  LAYER_INDEX_WHITEOUT = 8,
} layer_index_type;

enum
{
  LAYER_INDEX_F_OPAQUE = 1 << 0,
  LAYER_INDEX_F_IMPLICIT = 1 << 1,
  LAYER_INDEX_F_ALL = (1 << 2) - 1,
};

typedef struct layer_index_disk_header
{
  char magic[8];
  uint32_t version;
  uint32_t header_size;
  uint64_t file_size;
  uint32_t entry_count;
  uint32_t entry_size;
  uint64_t entries_off;
  uint32_t strings_off;
  uint32_t strings_size;
  uint32_t xattrs_off;
  uint32_t xattrs_size;
  uint32_t hardlink_groups;
  uint32_t reserved;
} layer_index_disk_header;

typedef struct layer_index_disk_entry
{
  uint32_t parent;
  uint32_t name_off;
  uint16_t name_len;
  uint8_t type;
  uint8_t flags;
  uint32_t mode;
  uint32_t uid;
  uint32_t gid;
  uint64_t size;
  int64_t mtime_sec;
  uint32_t mtime_nsec;
  uint32_t nlink;
  uint32_t rdev_major;
  uint32_t rdev_minor;
  uint32_t first_child;
  uint32_t n_children;
  uint32_t link_off;
  uint32_t link_len;
  uint32_t hardlink_group;
  uint32_t xattr_off;
  uint32_t xattr_count;
  uint32_t reserved;
} layer_index_disk_entry;

/* ---- metadata as the builder takes it -------------------------------- */

typedef struct layer_index_xattr
{
  const char *name;   /* NUL-terminated, e.g. "security.capability" */
  const void *value;
  size_t value_len;
} layer_index_xattr;

typedef struct layer_index_meta
{
  layer_index_type type;
  uint32_t mode;        /* 07777 bits; type bits are ignored */
  uint32_t uid, gid;
  uint64_t size;        /* regular files; symlinks get strlen(link_target) */
  int64_t mtime_sec;
  uint32_t mtime_nsec;
  uint32_t rdev_major, rdev_minor;
  const char *link_target;  /* symlinks only */
  uint32_t flags;           /* LAYER_INDEX_F_OPAQUE (directories only) */
  const layer_index_xattr *xattrs;
  size_t n_xattrs;
} layer_index_meta;

/* ---- building and writing --------------------------------------------- */

typedef struct layer_index_builder layer_index_builder;

layer_index_builder *layer_index_builder_new (void);
void layer_index_builder_free (layer_index_builder *b);
void cleanup_layer_index_builderp (layer_index_builder **b);
#define autoindexbuilder __attribute__ ((cleanup (cleanup_layer_index_builderp)))

/* Normalise a tar-style member name into the index's form: leading "/" and
 * "./" and trailing "/" dropped, "." components and repeated "/" removed; ""
 * names the root. ".." components, NUL bytes, names over NAME_MAX and paths
 * over LAYER_INDEX_PATH_MAX are errors (EINVAL / ENAMETOOLONG). Returns a new
 * string in *out. */
int layer_index_normalize_path (const char *path, char **out, kiln_error **err);

/* Add or replace the entry at path (normalised by the caller or not; it is
 * normalised here) with tar-application semantics, in member order:
 * - missing parents are created as LAYER_INDEX_F_IMPLICIT directories; a
 *   parent that exists but is not a directory is an error (ENOTDIR), so a
 *   member can never be placed "through" a symlink;
 * - a directory over an existing directory updates its metadata and keeps
 *   its children; any other replacement drops the old entry (and its
 *   subtree);
 * - a WHITEOUT over an existing directory marks it opaque, over another
 *   non-whiteout entry it is ignored (it only hides lower layers), and an
 *   entry over a whiteout replaces it (a directory becomes opaque);
 * - path "" (the root) must be a directory.
 * *replaced (may be NULL) is set to the type of the entry that was there
 * before (0 if none), so the extractor can remove stale tree data. */
int layer_index_builder_add (layer_index_builder *b, const char *path, const layer_index_meta *meta,
                             int *replaced, kiln_error **err);

/* Add path as a hardlink to the existing entry target (same layer): path gets
 * target's metadata and both join one hardlink group. The target must exist
 * and must not be a directory or a whiteout (errors ENOENT / EPERM). */
int layer_index_builder_add_hardlink (layer_index_builder *b, const char *path, const char *target,
                                      int *replaced, kiln_error **err);

/* Mark directory path opaque (creating it as an implicit directory). */
int layer_index_builder_set_opaque (layer_index_builder *b, const char *path, kiln_error **err);

/* Type of the entry at path (0 if absent; path is normalised first). */
int layer_index_builder_type (layer_index_builder *b, const char *path);

/* Number of entries including the root. */
size_t layer_index_builder_count (const layer_index_builder *b);

/* Serialise into file name below dirfd atomically (temp file + rename),
 * mode 0644, without fsync: dirfd is a store temp layer directory, which
 * store_publish_layer syncs before publishing it. Limits: < 2^32-1
 * entries, 4 GiB of strings/xattrs. */
int layer_index_builder_write_at (layer_index_builder *b, int dirfd, const char *name, kiln_error **err);
/* Serialise into a malloc'd buffer (tests, fuzzing). */
int layer_index_builder_serialize (layer_index_builder *b, void **data, size_t *len, kiln_error **err);

/* ---- reading ------------------------------------------------------------ */

typedef struct layer_index layer_index;

/* Map and validate the index file name below dirfd (opened O_NOFOLLOW). Any
 * inconsistency is an error (status EINVAL) naming what is wrong. */
int layer_index_open_at (int dirfd, const char *name, layer_index **out, kiln_error **err);
/* Same on an open file descriptor (the mapping does not keep fd). */
int layer_index_open_fd (int fd, layer_index **out, kiln_error **err);
/* Validate and use a copy of a memory buffer (tests, fuzzing). */
int layer_index_open_mem (const void *data, size_t len, layer_index **out, kiln_error **err);
void layer_index_close (layer_index *idx);
void cleanup_layer_indexp (layer_index **idx);
#define autoindex __attribute__ ((cleanup (cleanup_layer_indexp)))

uint32_t layer_index_count (const layer_index *idx);
uint32_t layer_index_hardlink_groups (const layer_index *idx);

/* The validated record of entry id (id < count; no check). Pointers into
 * the mapping stay valid until layer_index_close. */
const layer_index_disk_entry *layer_index_entry (const layer_index *idx, uint32_t id);
/* Name of entry id (not NUL-terminated; the root's is empty). */
const char *layer_index_name (const layer_index *idx, uint32_t id, size_t *len);
/* Symlink target (not NUL-terminated), or NULL with *len 0. */
const char *layer_index_link (const layer_index *idx, uint32_t id, size_t *len);
/* st_mode: type bits | permission bits (whiteouts: S_IFCHR 0/0 as overlayfs). */
mode_t layer_index_st_mode (const layer_index_disk_entry *e);

/* Child named name (len bytes) of directory dir, or LAYER_INDEX_NONE. */
uint32_t layer_index_lookup_child (const layer_index *idx, uint32_t dir, const char *name, size_t len);
/* Entry at path ("a/b", leading "/" and "." components allowed), or
 * LAYER_INDEX_NONE (also for ".." components and paths through non-dirs). */
uint32_t layer_index_lookup (const layer_index *idx, const char *path);
/* Full path of id ("" for the root, "a/b" otherwise) appended to out. */
void layer_index_path (const layer_index *idx, uint32_t id, strbuf *out);

/* i-th xattr (i < xattr_count) of entry id. */
void layer_index_get_xattr (const layer_index *idx, uint32_t id, uint32_t i, const char **name,
                        size_t *name_len, const void **value, size_t *value_len);
/* Value of xattr name of entry id; returns false if absent. */
bool layer_index_xattr_find (const layer_index *idx, uint32_t id, const char *name, const void **value,
                             size_t *value_len);

#endif
