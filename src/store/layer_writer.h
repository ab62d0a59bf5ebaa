/* layer_writer.h - produce an OCI layer blob from a change list.
 *
 * One pass: libarchive writes a PAX tar (ustar headers, PAX extensions only
 * when needed: long names, big ids, xattrs as SCHILY.xattr.*) in
 * deterministic order into a pipeline of 128 KiB chunks:
 *   - a hashing thread computes the diffID over the uncompressed chunks;
 *   - gzip: every core compresses chunks independently (raw deflate, the
 *     previous 32 KiB as dictionary, ending in a sync flush), and the output
 *     thread concatenates them behind one gzip header with a crc32_combine'd
 *     trailer: one standard gzip member, as pigz does. Levels 1-3 use Intel
 *     ISA-L's igzip (isal_deflate, its levels 1-3: about a fifth of zlib
 *     level 6's CPU time for 0-12% larger output), levels 0 and 4-9 zlib
 *     at that level.
 *     The default is 3 (ISA-L level 3). Every chunk starts from a reset
 *     stream, so the bytes never depend on the thread count; ISA-L picks
 *     SIMD kernels by CPU, so byte identity of levels 1-3 across different
 *     machines is not promised: use level >= 4 (zlib) for that (see
 *     docs/design/store.md, "ISA-L for gzip layers");
 *   - zstd: the output thread feeds libzstd with ZSTD_c_nbWorkers = cores;
 *   - uncompressed: chunks are written as they are;
 *   - the output thread writes the blob and computes the blob digest.
 * Owners, modes, times, xattrs and link targets come from the change list
 * (i.e. from kiln's indexes), never from host inodes; file data is read from
 * the store trees through directory fds without following symlinks.
 */
#ifndef KILN_STORE_LAYER_WRITER_H
#define KILN_STORE_LAYER_WRITER_H

#include <stdbool.h>
#include <stdint.h>
#include "registry/mediatype.h"
#include "store/layer_index.h"
#include "util/digest.h"
#include "util/error.h"

typedef enum
{
  LAYER_CHANGE_ADD = 0,   /* path with meta (and data for regular files) */
  LAYER_CHANGE_WHITEOUT,  /* delete path from lower layers: ".wh.NAME" */
  LAYER_CHANGE_OPAQUE,    /* hide lower contents of directory path: ".wh..wh..opq" */
} layer_change_kind;

typedef struct layer_change
{
  const char *path;             /* "a/b" (normalised like the index); "" = root */
  layer_change_kind kind;
  layer_index_meta meta;        /* ADD: type, mode, uid, gid, mtime, rdev, link target, xattrs */
  const char *hardlink_target;  /* ADD: non-NULL = hardlink to that path (also in this list) */
  int data_dirfd;               /* regular files: data at data_path below data_dirfd */
  const char *data_path;        /*   (opened RESOLVE_BENEATH, no symlinks); size from the file */
  /* The data file is kiln's own and nothing can write it any more (a
   * store layer's tree, a frozen overlay upper, a kiln temp file), so the
   * store layer may hard-link it. Otherwise (a build context file, which
   * its user may edit later) extract_from_changes links it only with the
   * identity below, recorded and verified whenever the store opens the
   * layer, else copies it. */
  bool data_private;
  /* A user's file (!data_private) as the step saw it: its inode and ctime
   * (src_ino 0: unknown); src_settled: that ctime was older than the clock
   * tick of the step's stat (a change in the same tick would not move it).
   * extract_from_changes hard-links a settled file into the store only
   * while it is still that inode, and records it for verification on reuse
   * (store/links.h); otherwise it copies it, checking it is still that
   * inode. */
  uint64_t src_ino;
  int64_t src_ctime_sec;
  uint32_t src_ctime_nsec;
  bool src_settled;
} layer_change;

/* gzip: levels 1..3 ISA-L, 0 and 4..9 zlib. */
#define LAYER_WRITER_GZIP_DEFAULT_LEVEL 3

typedef struct layer_writer_opts
{
  layer_compression compression;
  int level;                /* -1: default (gzip 3 = ISA-L, zstd 3) */
  int threads;              /* 0: all online cores */
  bool clamp_mtime;         /* --reproducible / SOURCE_DATE_EPOCH */
  int64_t clamp_epoch;      /* mtimes above this become this; nsec dropped */
  bool add_root;            /* emit "./"? (default false, as Docker) */
} layer_writer_opts;

typedef struct layer_writer_result
{
  char diff_id[DIGEST_STRING_SIZE];
  char blob_digest[DIGEST_STRING_SIZE];
  uint64_t diff_size, blob_size;
  uint64_t entries;
} layer_writer_result;

/* What the writer uses for opts: the level with the default resolved, and
 * the encoder's name ("isa-l", "zlib", "zstd" or "none"). The same tar from
 * another encoder or level is another blob, so cache keys name both. */
const char *layer_writer_encoder (const layer_writer_opts *opts, int *level);

/* The range of levels compression c takes: gzip 0..9 (0 stored, 1-3 ISA-L,
 * 4-9 zlib), zstd 1..ZSTD_maxCLevel(); false for uncompressed, which takes
 * none. Option parsers bound --compression-level with it. */
bool layer_writer_level_range (layer_compression c, int *min, int *max);

/* Fail, naming the compression and its range, when level is outside
 * layer_writer_level_range (c); uncompressed layers accept any level (it is
 * not used). layer_writer_write checks the level it will use with it. */
int layer_writer_check_level (layer_compression c, int level, kiln_error **err);

/* The member order of layers kiln writes (normalised paths): component-wise,
 * '/' before every other byte, so a directory's subtree directly follows it
 * (parents before children). */
int layer_writer_path_cmp (const char *a, const char *b);

/* Write the layer for changes (any order; sorted here so parents come before
 * children, names compared bytewise per component, a directory's opaque
 * marker right after it) to out_fd. Parent directories that are not in the
 * list are not invented (a made-up 0755 header would reset e.g. /tmp's mode
 * when applied): callers include every directory whose metadata belongs in
 * the layer. Duplicate paths are an error; hardlink targets must be regular
 * files of this list that sort before the link. */
int layer_writer_write (const layer_change *changes, size_t n, const layer_writer_opts *opts, int out_fd,
                        layer_writer_result *res, kiln_error **err);

/* The change list that recreates a whole store layer (re-compression,
 * re-push, round-trip checks): every index entry except implicit
 * directories and an unlisted root; whiteouts and opaque markers as such;
 * hardlink groups as one file plus links to it (the member that sorts
 * first); data from tree_fd, a store layer's tree (data_private). All strings are owned by *out (free with
 * layer_writer_changes_free). */
typedef struct layer_changes
{
  layer_change *v;
  size_t n;
  char **paths;    /* owned entry paths */
  char **strings;  /* owned link targets and xattr names */
  layer_index_xattr *xattrs;
} layer_changes;

int layer_writer_changes_from_index (const layer_index *idx, int tree_fd, layer_changes *out, kiln_error **err);
void layer_writer_changes_free (layer_changes *c);

#endif
