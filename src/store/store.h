/* store.h - kiln's content store on disk.
 *
 * Layout below the root (default ${XDG_DATA_HOME:-~/.local/share}/kiln,
 * overridden by KILN_ROOT, overridden by --root):
 *
 *   lock                      store-wide lock: every kiln holds it shared
 *                             while it uses the store; prune and stale
 *                             temp-dir cleanup take it exclusive
 *   blobs/sha256/HEX          compressed blobs, manifests, configs by digest
 *   layers/sha256/HEX/        extracted layer by diffID (published by rename):
 *       tree/                 directories and regular files, owned by the user
 *       index                 metadata index (store/layer_index.h)
 *       blob                  "sha256:..." of the compressed blob it came from
 *   diffids/sha256/HEX        blob digest -> diffID text (skip a download when
 *                             the layer is already extracted)
 *   locks/HEX.lock            per-layer extraction locks (by blob digest)
 *   refs/NAME                 kept images / cache entries: a manifest digest
 *   tmp/                      in-progress work; never visible as a result
 *
 * Publication protocol: a layer is extracted into tmp/NAME/, fsynced
 * (syncfs), then renamed to layers/sha256/HEX in one step while the layer's
 * lock is held; a reader either finds the complete directory or nothing.
 * A kill -9 leaves only tmp/NAME, which the next kiln that finds the store
 * otherwise idle (store-wide lock free) removes.
 */
#ifndef KILN_STORE_STORE_H
#define KILN_STORE_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include "store/layer_index.h"
#include "util/digest.h"
#include "util/error.h"

typedef struct store
{
  char *root;    /* absolute or as given */
  int rootfd;
  int lockfd;    /* store-wide lock (shared or exclusive) */
  bool exclusive;
  /* Member limit per extracted layer (extract_opts.max_entries): from
   * KILN_MAX_LAYER_ENTRIES (a positive count, e.g. 2000000), else
   * EXTRACT_DEFAULT_MAX_ENTRIES. */
  uint64_t max_layer_entries;
  /* When removing a temporary or pruned directory fails with EACCES/EPERM
   * (a plain user's store can hold files a step gave to subordinate ids,
   * e.g. a cache mount written by a non-root USER), try this instead (the
   * commands set sandbox_rm_at_fallback: rm -rf as root of a user
   * namespace with the user's full mapping). NULL: no fallback. */
  int (*remove_fallback) (int dirfd, const char *name, kiln_error **err);
} store;

enum
{
  /* Hold the store-wide lock exclusively (prune); fail with EAGAIN and a
   * clear message if another kiln uses the store. */
  STORE_OPEN_EXCLUSIVE = 1 << 0,
};

/* The root directory kiln would use: root_opt if non-NULL, else $KILN_ROOT,
 * else $XDG_DATA_HOME/kiln, else $HOME/.local/share/kiln. */
int store_default_root (const char *root_opt, char **out, kiln_error **err);

/* Open (creating with mode 0700) the store. Removes stale temp dirs of
 * killed processes when no other kiln holds the store. An invalid
 * KILN_MAX_LAYER_ENTRIES is an error (before anything is created). */
int store_open (const char *root_opt, int flags, store **out, kiln_error **err);
void store_close (store *s);
void cleanup_storep (store **s);
#define autostore __attribute__ ((cleanup (cleanup_storep)))

/* Remove everything in tmp/ (needs the exclusive store lock, or no other
 * kiln holding the shared one: tried non-blocking). Returns the count. */
int store_clean_tmp (store *s, kiln_error **err);

/* New private directory under tmp/ (0700); name and O_DIRECTORY fd out. */
int store_mktemp (store *s, const char *prefix, char **name, int *fd, kiln_error **err);
/* Remove tmp/NAME (best effort, never fails loudly). */
void store_rmtemp (store *s, const char *name);

/* Per-layer lock on key (a digest), exclusive, blocking. Returns the fd;
 * close it to release. */
int store_lock_layer (store *s, const char *digest, kiln_error **err);
/* Same without waiting: a lock held elsewhere is an error with status
 * EAGAIN. */
int store_trylock_layer (store *s, const char *digest, kiln_error **err);

/* True if the layer diff_id is published. */
bool store_has_layer (store *s, const char *diff_id);
/* If a layer extracted from blob digest is published, copy its diffID into
 * diff_id_out and return 1; 0 if not (also when the blob's record is
 * damaged: it is written without fsync, so a crash may leave it empty);
 * negative on error. */
int store_layer_for_blob (store *s, const char *blob_digest, char diff_id_out[DIGEST_STRING_SIZE],
                          kiln_error **err);

/* Publish tmp/TMPNAME (holding tree/ and index) as layer diff_id and record
 * blob_digest -> diff_id (blob_digest may be NULL). If the layer already
 * exists (published by someone else), tmp/TMPNAME is removed and this
 * succeeds. The caller holds the layer lock. */
int store_publish_layer (store *s, const char *tmpname, const char *diff_id, const char *blob_digest,
                         kiln_error **err);

/* Open a published layer: O_DIRECTORY fd on its tree and its mapped index
 * (either out pointer may be NULL). */
int store_open_layer (store *s, const char *diff_id, int *tree_fd, layer_index **idx, kiln_error **err);

/* Kept images and cache entries: refs/NAME holds a manifest (or index)
 * digest; prune keeps everything reachable from a ref. NAME is any string
 * (stored percent-encoded). */
int store_set_ref (store *s, const char *name, const char *manifest_digest, kiln_error **err);
int store_remove_ref (store *s, const char *name, kiln_error **err);
/* Read refs/NAME: 1 and the digest if it exists, 0 if not. */
int store_get_ref (store *s, const char *name, char digest_out[DIGEST_STRING_SIZE], kiln_error **err);

typedef struct store_prune_stats
{
  uint64_t blobs, layers, other;  /* items removed (or that would be) */
  uint64_t bytes;                 /* space freed (allocated blocks) */
} store_prune_stats;

/* Remove what no ref reaches (all: everything, refs included). Needs the
 * store opened with STORE_OPEN_EXCLUSIVE. dry_run: count only. Each removal
 * is logged at info level ("would remove" in a dry run). */
int store_prune (store *s, bool all, bool dry_run, store_prune_stats *st, kiln_error **err);

/* Blobs (compressed layers, manifests, configs). */
bool store_has_blob (store *s, const char *digest);
/* Write data as blob digest after verifying it hashes to digest. */
int store_put_blob (store *s, const char *digest, const void *data, size_t len, kiln_error **err);
/* Read a blob fully (at most max_size bytes) and verify its digest. */
int store_get_blob (store *s, const char *digest, size_t max_size, char **data, size_t *len,
                    kiln_error **err);
/* Open a blob for reading (O_RDONLY fd). */
int store_open_blob (store *s, const char *digest, kiln_error **err);

/* Streaming blob writer: bytes go to a private temp file in tmp/ (so a
 * kill -9 leaves only something the next idle store_open removes), hashed
 * as they are written; commit fsyncs, verifies the digest and renames into
 * blobs/sha256/HEX (replacing an identical blob another process stored
 * meanwhile). Abort unlinks the temp file. Either one frees the writer. */
typedef struct store_blob_writer store_blob_writer;

int store_blob_begin (store *s, store_blob_writer **out, kiln_error **err);
int store_blob_write (store_blob_writer *w, const void *data, size_t len, kiln_error **err);
/* Bytes written so far. */
uint64_t store_blob_written (const store_blob_writer *w);
/* A new read-only descriptor on what was written so far (offset 0), e.g.
 * to extract a complete blob before committing it. The caller closes it. */
int store_blob_reopen (store_blob_writer *w, kiln_error **err);
/* expected may be NULL (store under whatever the content hashes to); the
 * digest stored is written to digest_out (may be NULL). On failure the temp
 * file is removed too. w is freed in every case. */
int store_blob_commit (store_blob_writer *w, const char *expected, char digest_out[DIGEST_STRING_SIZE],
                       kiln_error **err);
void store_blob_abort (store_blob_writer *w);

/* For producers that need a plain fd (the layer writer): create an empty
 * temp file in tmp/ opened O_RDWR; *tmpname (caller frees) names it for
 * store_blob_adopt / store_blob_discard. The caller closes *fd. */
int store_blob_tmpfile (store *s, int *fd, char **tmpname, kiln_error **err);
/* Hash tmp/TMPNAME, check it against digest, fsync and rename it into
 * blobs/sha256/HEX. On a mismatch or any error the temp file is removed. */
int store_blob_adopt (store *s, const char *tmpname, const char *digest, kiln_error **err);
/* Remove tmp/TMPNAME (best effort). */
void store_blob_discard (store *s, const char *tmpname);

/* Size of a stored blob (open + fstat): 1 and *size if present, 0 if not. */
int store_blob_size (store *s, const char *digest, int64_t *size, kiln_error **err);

#endif
