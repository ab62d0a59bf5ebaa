/* ocilayout.h - OCI image layout directories (oci-layout, index.json,
 * blobs/sha256/HEX), written as a registry_pull consumer.
 *
 * Blobs are written to a temporary file beside their final name and renamed
 * only after the registry client verified size and digest, so a layout never
 * holds a partial or corrupt blob. index.json is rewritten atomically; an
 * existing entry with the same "org.opencontainers.image.ref.name" is
 * replaced, other entries are kept.
 */
#ifndef KILN_REGISTRY_OCILAYOUT_H
#define KILN_REGISTRY_OCILAYOUT_H

#include <stdint.h>
#include "registry/pull.h"
#include "util/error.h"

typedef struct ocilayout ocilayout;

/* Open (creating if needed) the layout directory path. */
int ocilayout_open (const char *path, ocilayout **out, kiln_error **err);
/* Open an existing layout for reading only: nothing is created or
 * rewritten (the directory may be read-only or another user's). */
int ocilayout_open_existing (const char *path, ocilayout **out, kiln_error **err);
void ocilayout_free (ocilayout *l);
void cleanup_ocilayoutp (ocilayout **l);
#define autoocilayout __attribute__ ((cleanup (cleanup_ocilayoutp)))

/* The consumer that stores pulled blobs and manifests in the layout (ctx is
 * the ocilayout). */
extern const registry_pull_consumer ocilayout_consumer;

/* Add (or replace) the index.json entry for a manifest; tag may be NULL. */
int ocilayout_set_ref (ocilayout *l, const char *tag, const char *media_type, const char *digest, int64_t size,
                       kiln_error **err);

/* Add (or replace, by digest) an untagged index.json entry for an artifact
 * manifest (an SBOM or provenance whose subject is an image of the
 * layout): the descriptor carries "artifactType", and lookups without a
 * tag (the only image) do not count such entries. */
int ocilayout_add_artifact (ocilayout *l, const char *media_type, const char *digest, int64_t size,
                            const char *artifact_type, kiln_error **err);

/* Find the manifest for tag (NULL: the only entry). Caller frees the
 * strings. */
int ocilayout_resolve (ocilayout *l, const char *tag, char **media_type, char **digest, int64_t *size,
                       kiln_error **err);
/* The image tagged tag (NULL: the only entry) as the bytes to push and
 * their media type: the manifest or index blob the entry names (digest and
 * size checked), or, when several entries carry the tag (one per
 * platform), a new OCI image index listing them (each needs a platform).
 * Caller frees. */
int ocilayout_load_image (ocilayout *l, const char *tag, char **data, size_t *len, char **media_type,
                          kiln_error **err);
/* Read a small blob (manifest, config) and verify its digest. */
int ocilayout_read_blob (ocilayout *l, const char *digest, size_t max, char **data, size_t *len, kiln_error **err);
/* Open a blob for reading (O_NOFOLLOW, regular file); *size from fstat. */
int ocilayout_open_blob (ocilayout *l, const char *digest, int *fd, int64_t *size, kiln_error **err);

/* Split "DIR[:TAG]" (the last ':' after the last '/'). Caller frees. */
void ocilayout_split_arg (const char *arg, char **dir, char **tag);

#endif
