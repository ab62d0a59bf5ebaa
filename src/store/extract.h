/* extract.h - safe, streaming extraction of OCI layer blobs into the store.
 *
 * Input is the compressed blob as a byte stream (a read callback, so the
 * registry can feed bytes as they arrive: download -> decompress -> extract
 * pipelined, no temporary tarball). kiln decompresses itself (ISA-L's
 * isal_inflate for gzip, about 3x zlib's speed, including multi-member
 * streams, each member's CRC-32 and size checked; libzstd for zstd; plain tar passes
 * through; detected by magic bytes) and hands the *uncompressed* tar to
 * libarchive through archive_read_open's callback. That single pass gives:
 *   - the blob digest: SHA-256 of the bytes read from the callback;
 *   - the diffID: SHA-256 of the decompressed bytes, including anything
 *     after the tar end-of-archive blocks (drained after the last member);
 *   - the tree and the metadata index.
 *
 * Safety: every member name is normalised (leading "/" stripped, "." and
 * repeated "/" removed); ".." components, NULs and overlong names reject the
 * layer with an error naming the member. The tree only ever contains
 * directories and regular files (symlinks, devices, fifos, sockets, whiteouts
 * live in the index), all created with *at() calls relative to directory
 * fds opened without following symlinks (fs_mkdir_p_open_at /
 * fs_open_in_root with RESOLVE_BENEATH|NO_SYMLINKS), O_CREAT|O_EXCL|
 * O_NOFOLLOW for files; a member below a non-directory (e.g. a symlink to
 * "/" and then "link/etc/passwd") is rejected; hardlinks must target an
 * earlier member of the same layer. Nothing is chowned and no device node is
 * created: files are 0600, directories 0700, owned by the running user, with
 * the true metadata in the index, so extraction as root and as a plain user
 * give byte-identical indexes.
 *
 * Streams that end early are errors, with one exception: a layer whose last
 * member's data is complete but which lacks the padding and end-of-archive
 * blocks after it (umoci 0.4.7 `umoci insert`, umoci#436) is accepted, as
 * Go's archive/tar (docker, containerd, buildah) accepts it.
 */
#ifndef KILN_STORE_EXTRACT_H
#define KILN_STORE_EXTRACT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "store/layer_writer.h"
#include "store/store.h"
#include "util/digest.h"
#include "util/error.h"

/* Read up to len bytes of the compressed blob into buf; return the count,
 * 0 at end of stream, or negative with *err set. */
typedef ssize_t (*extract_read_fn) (void *ctx, void *buf, size_t len, kiln_error **err);

typedef enum
{
  EXTRACT_COMPRESSION_NONE = 0,
  EXTRACT_COMPRESSION_GZIP,
  EXTRACT_COMPRESSION_ZSTD,
} extract_compression;

/* Limits that bound what one (possibly hostile) layer can cost. Real layers
 * have at most a few hundred thousand members (a full TeX Live or a large
 * node_modules); a tar bomb of a million empty files is rejected at member
 * 1,000,001 with an error naming the layer. The index builder holds about
 * 200 bytes per member plus its names, link targets and xattrs, and writing
 * the index briefly doubles that, so the defaults keep one extraction under
 * roughly 1 GiB of memory whatever the stream holds. Users with a genuine
 * bigger layer raise the entry limit with KILN_MAX_LAYER_ENTRIES (read by
 * store_open). */
#define EXTRACT_DEFAULT_MAX_ENTRIES 1000000ULL
/* Names + symlink targets + xattr names and values, summed over every member
 * as read (so replaced members count too). Real layers: a few MB. */
#define EXTRACT_DEFAULT_MAX_META_BYTES (256ULL << 20)

typedef struct extract_opts
{
  uint64_t max_entries;     /* members (headers) per layer; 0: EXTRACT_DEFAULT_MAX_ENTRIES */
  uint64_t max_meta_bytes;  /* 0: EXTRACT_DEFAULT_MAX_META_BYTES */
  /* Regular file data, summed over the members' header sizes before any
   * is written (a small blob can inflate to anything); 0: no limit. */
  uint64_t max_data_bytes;
} extract_opts;

typedef struct extract_result
{
  char diff_id[DIGEST_STRING_SIZE];      /* sha256 of the uncompressed tar */
  char blob_digest[DIGEST_STRING_SIZE];  /* sha256 of the input stream */
  uint64_t blob_size, diff_size;
  uint64_t entries;                      /* index entries incl. root */
  extract_compression compression;
  bool existed;                          /* store: layer was already there */
} extract_result;

const char *extract_compression_name (extract_compression c);

/* Extract the stream into layer_dirfd (an empty directory): creates
 * layer_dirfd/tree/ and layer_dirfd/index. On error the directory may hold
 * partial results; the caller removes it. */
int extract_layer (int layer_dirfd, extract_read_fn read_fn, void *ctx, const extract_opts *opts,
                   extract_result *res, kiln_error **err);

/* Read callback over a file descriptor (ctx is an int *). */
ssize_t extract_read_fd (void *ctx, void *buf, size_t len, kiln_error **err);

/* Extract into the store, once: under the layer lock (keyed by blob_digest,
 * or diff_id when blob_digest is NULL), return at once if the layer is
 * published (res->existed; the stream is not read), else extract into a temp
 * dir, verify the blob digest and diffID against the expected values (either
 * may be NULL = unknown), and publish atomically. Requires at least one of
 * blob_digest / diff_id. opts NULL or a zero max_entries: the store's limit
 * (s->max_layer_entries). On any error the temp dir is removed and nothing
 * is published. */
int extract_to_store (store *s, const char *blob_digest, const char *diff_id, extract_read_fn read_fn,
                      void *ctx, const extract_opts *opts, extract_result *res, kiln_error **err);

/* Publish the layer a change list makes (the same list the layer writer
 * packed into diff_id / blob_digest) without reading the blob back: the
 * index is built from the changes (mtimes clamped as opts clamps them in the
 * tar), and the tree gets each regular file as a hardlink to its data (the
 * overlay's frozen upper, or a lower layer's tree; a copy when linking is
 * not possible). Same result as extracting the blob, at the cost of a
 * directory walk of the changed paths only. Under the layer lock; nothing
 * is done when the layer is already published. */
int extract_from_changes (store *s, const layer_change *ch, size_t n, const layer_writer_opts *opts,
                          const char *diff_id, const char *blob_digest, kiln_error **err);

#endif
