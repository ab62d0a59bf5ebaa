/* attest_internal.h - what sbom.c, provenance.c and attest.c share: the
 * final image's layers opened from the store and looked at as the merged
 * tree a container would see (top layer wins, whiteouts and opaque
 * directories hide lower layers). PRIVATE to src/build/{sbom,provenance,
 * attest,attest_layers}.c.
 *
 * Paths are index paths ("var/lib/dpkg/status": no leading "/"). Symlinks
 * in a path are not followed: a database below a symlinked directory is
 * not found (documented in docs/status.md, issue 22). File data is read
 * from the layer's tree with fs_open_in_root (FS_RESOLVE_BENEATH |
 * FS_RESOLVE_NO_SYMLINKS), bounded by the caller's max.
 */
#ifndef KILN_BUILD_ATTEST_INTERNAL_H
#define KILN_BUILD_ATTEST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "build/attest.h"
#include "build/build_exec.h"
#include "store/layer_index.h"
#include "store/store.h"
#include "util/error.h"

typedef struct attest_layers
{
  size_t n;
  int *tree;            /* O_DIRECTORY fds on the layers' trees */
  layer_index **idx;
} attest_layers;

int attest_layers_open (store *s, const build_result *res, attest_layers *out, kiln_error **err);
void attest_layers_close (attest_layers *l);

/* The topmost layer at or below top (top < n) whose entry is what path is
 * in the merged view of layers 0..top, or -1 (absent, deleted, or hidden
 * by an opaque directory); *id gets the entry. */
int attest_layers_find (const attest_layers *l, size_t top, const char *path, uint32_t *id);

/* Read the regular file path of layer i (at most max bytes: larger is an
 * error, EFBIG). */
int attest_layers_read (const attest_layers *l, size_t i, const char *path, size_t max, char **buf, size_t *len,
                        kiln_error **err);

/* Open the regular file path of layer i for reading. */
int attest_layers_open_file (const attest_layers *l, size_t i, const char *path, kiln_error **err);

/* Whether the regular files a (layer la) and b (layer lb) have the same
 * bytes; 1 same, 0 different, negative on a read error. */
int attest_layers_same_data (const attest_layers *l, size_t la, size_t lb, const char *path, kiln_error **err);


/* ---- the documents ---- */

typedef struct attest_meta
{
  const char *name;          /* the image's name (first destination, or "image") */
  int64_t created;           /* document time (the epoch under --reproducible) */
  const char *kiln_version;
  const char *kiln_commit;
} attest_meta;

/* sbom.c: the SPDX 2.3 JSON document of the image's packages. */
int sbom_spdx_json (const attest_layers *l, const build_result *res, const attest_meta *m, char **out, size_t *len,
                    kiln_error **err);

/* provenance.c: the in-toto statement with the SLSA v1 predicate. */
int provenance_json (const attest_layers *l, const build_result *res, const attest_meta *m,
                     const attest_opts *o, char **out, size_t *len, kiln_error **err);

/* "2026-01-02T03:04:05Z" */
void attest_time (int64_t t, char buf[32]);

#endif
