/* squash.h - one change list for a run of store layers (kaniko's
 * --single-snapshot): what applying the layers in order on any parent
 * does, as one layer.
 *
 * Layers are read newest first from their indexes (no tree walk of the
 * image): a path a newer layer decided hides the same path in older ones;
 * a newer whiteout or non-directory hides everything below it, a newer
 * opaque directory everything below it in older layers. An older whiteout
 * hidden by a newer directory turns that directory opaque (the parent's
 * contents were deleted, then the directory made again). A hardlink whose
 * target is hidden becomes a regular file with its own data.
 */
#ifndef KILN_BUILD_SQUASH_H
#define KILN_BUILD_SQUASH_H

#include <stddef.h>
#include "store/layer_writer.h"
#include "store/store.h"
#include "util/error.h"

typedef struct squash squash;

/* Merge the published layers diff_ids[0..n) (oldest first). */
int squash_new (store *s, char *const *diff_ids, size_t n, squash **out, kiln_error **err);
/* The merged changes (valid until squash_free; data read from the layers'
 * trees, kept open by q). */
const layer_change *squash_changes (const squash *q, size_t *n);
void squash_free (squash *q);

#endif
