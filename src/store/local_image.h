/* local_image.h - images from local sources, in the same form as a registry
 * fetch (store_fetch_result, fetch.h), so callers that run or build on an
 * image need not care where it came from:
 *   - a manifest already in the store (what `kiln build` records under
 *     refs/build/NAME, or any other ref);
 *   - an OCI image layout directory (`--oci-layout DIR[:TAG]`), whose layers
 *     are extracted into the store once.
 *
 * Both read manifests and configs by digest (verified), take the diffIDs from
 * the config's rootfs.diff_ids (their count must match the manifest's
 * layers) and fill out->layers in manifest order. A layout is untrusted
 * input: its index.json is only a pointer, every blob is checked against
 * the digest that names it, and each layer is extracted through
 * extract_to_store, which verifies the blob digest and the diffID before
 * publishing. Nothing is written into the layout.
 */
#ifndef KILN_STORE_LOCAL_IMAGE_H
#define KILN_STORE_LOCAL_IMAGE_H

#include "store/fetch.h"
#include "store/store.h"
#include "util/error.h"

/* The image whose manifest (not an index) is the store blob manifest_digest.
 * Returns 1 with *out filled (layers' how = STORE_FETCH_CACHED, os/arch from
 * the config, ref_name NULL), 0 when the manifest, the config or a layer is
 * not in the store (pruned), negative on an unparsable or inconsistent
 * manifest or config. */
int local_image_from_store (store *s, const char *manifest_digest, store_fetch_result *out, kiln_error **err);

/* The image tagged tag (NULL: the layout's only image) in the OCI layout
 * directory dir. An index is followed to the manifest for os/arch/variant
 * (NULL: the host platform). Layers not yet in the store are extracted into
 * it (how = STORE_FETCH_LOCAL_BLOB, extracted = true; already present:
 * STORE_FETCH_CACHED). No ref is recorded: the extracted layers are a cache
 * that `kiln prune` may remove once no run holds the store. */
int local_image_from_layout (store *s, const char *dir, const char *tag, const char *os, const char *arch,
                             const char *variant, store_fetch_result *out, kiln_error **err);

#endif
