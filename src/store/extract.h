/* extract.h - safe, streaming extraction of OCI layer blobs into the store.
 *
 * Input is the compressed blob as a byte stream (a read callback, so the
 * registry can feed bytes as they arrive: download -> decompress -> extract
 * pipelined, no temporary tarball). kiln decompresses itself (zlib for gzip,
 * including multi-member streams; libzstd for zstd; plain tar passes
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

typedef struct extract_opts
{
  uint64_t max_entries;  /* 0: default (5,000,000 members) */
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
 * blob_digest / diff_id. */
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
