/* build_cache_mounts.h - RUN --mount=type=cache directories through a
 * registry (--cache-mounts-repo REGISTRY/REPO).
 *
 * Each cache id is one tag of the repository, mount-<sha256 of the id>
 * (the name of its local directory, STORE/cache/<sha256 of the id>), an
 * OCI image manifest whose single layer is the directory's tar (root
 * included: its mode and owner) and whose config records the id and the
 * size (labels dev.kiln.cache-mount.id / .size) and the time (created).
 *
 * Import: before the first step of the build that mounts the id (lazily:
 * a build whose cache mount steps are all cache hits asks nothing), the
 * tag is resolved; an entry older than --cache-ttl, larger than the size
 * limit (its blob; its file data while it is extracted), with another id
 * or of another shape is ignored with a warning. When STORE/cache/<hash>.remote already names the entry's
 * layer digest, nothing is downloaded. Else the blob is downloaded
 * (digest verified), extracted by the store's safe extractor (extract.h:
 * "..", absolute names, members below symlinks are refused) into a temp
 * directory, turned into a real tree (directories, regular files
 * hard-linked out of the extracted tree, symlinks created as links and
 * never followed; devices, fifos, sockets and xattrs are dropped; owners
 * mapped to the step's ids as root, the running user's otherwise) and
 * swapped in with one rename under the cache's exclusive lock
 * (STORE/cache/<hash>.lock, flock: shared while a step mounts it).
 *
 * Export: after the build, in the background of the push, every id a step
 * of this build mounted writable is packed (layer_writer: PAX tar,
 * --compression) unless unchanged — its tree stamp (SHA-256 over every
 * path, type, mode, owner, size, mtime, ctime and inode) equals the one
 * recorded after the last import or export — or larger than the size
 * limit (a warning). Blob, config and manifest are pushed, then the tag:
 * a manifest PUT is atomic, so concurrent builds exporting one id leave
 * the last writer's whole entry, never a torn one. The directory is read
 * under the shared lock, through directory fds without following
 * symlinks. Secrets are never in it: they are in-memory file mounts
 * (SANDBOX_MOUNT_FILE), not files of the cache directory.
 *
 * Nothing here fails a build: registry and extraction errors are warnings
 * and the step uses the local directory as it is.
 */
#ifndef KILN_BUILD_BUILD_CACHE_MOUNTS_H
#define KILN_BUILD_BUILD_CACHE_MOUNTS_H

#include <stdbool.h>
#include <stdint.h>
#include "build/progress.h"
#include "registry/client.h"
#include "registry/mediatype.h"
#include "sandbox/sandbox.h"
#include "store/store.h"
#include "util/error.h"

/* Default --cache-mounts-max-size: 1 GiB. */
#define BUILD_CACHE_MOUNTS_MAX_SIZE_DEFAULT (1ULL << 30)

typedef struct build_cache_mounts_opts
{
  store *store;
  const char *repo;             /* --cache-mounts-repo REGISTRY/REPO (no tag) */
  const registry_options *reg;
  int64_t ttl;                  /* seconds; older entries are ignored; 0: no limit */
  uint64_t max_size;            /* bytes of file data (export) and of the blob (import) */
  layer_compression compression;
  int level;                    /* -1: default */
  progress *progress;
} build_cache_mounts_opts;

typedef struct build_cache_mounts build_cache_mounts;

int build_cache_mounts_new (const build_cache_mounts_opts *o, build_cache_mounts **out, kiln_error **err);
void build_cache_mounts_free (build_cache_mounts *cm);

/* A step is about to mount cache id (local directory STORE/cache/<hash>,
 * hash the hex SHA-256 of id): import the registry's entry the first time
 * in this build, and remember the id for export when writable. map and
 * owners_presented (ptrace isolation) decide the owners of imported files.
 * Thread-safe; never fails (warnings). cm may be NULL. */
void build_cache_mounts_use (build_cache_mounts *cm, const char *id, const char *hash, bool writable,
                             const sandbox_idmap *map, bool owners_presented);

/* Export the changed ids on a thread of its own (the push runs meanwhile);
 * build_cache_mounts_finish waits for it and returns the number of entries
 * pushed. Without a start, finish exports on the calling thread. */
void build_cache_mounts_start (build_cache_mounts *cm);
int build_cache_mounts_finish (build_cache_mounts *cm);

#endif
