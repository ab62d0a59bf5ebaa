/* mediatype.h - OCI and Docker media types, and layer compression.
 *
 * The vocabulary every layer of kiln shares: the registry code reads media
 * types from manifests, the store writes layers and names them, the build
 * turns one format's names into the other's. Each string is spelt once,
 * here, so a reader and a writer can never disagree on a letter.
 *
 * Why registry/ and not util/: media types are the distribution format's
 * words, and registry/ is the lowest folder that speaks it (util/ knows no
 * image format). Everything above (store, overlay, build, ...) may include
 * this header; it includes nothing of the project but util/error.h, so
 * including it never drags a module in (store/layer_writer.h and
 * registry/manifest.h both re-export it).
 */
#ifndef KILN_REGISTRY_MEDIATYPE_H
#define KILN_REGISTRY_MEDIATYPE_H

#include <stdbool.h>
#include "util/error.h"

/* Manifests, indexes and configs. */
#define MEDIA_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MEDIA_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MEDIA_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MEDIA_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MEDIA_DOCKER_SCHEMA1 "application/vnd.docker.distribution.manifest.v1+json"
#define MEDIA_DOCKER_SCHEMA1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"
#define MEDIA_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"

/* Layers. ND: OCI's non-distributable variants; FOREIGN: Docker's (blobs
 * that may have to come from the descriptor's urls). */
#define MEDIA_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define MEDIA_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MEDIA_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define MEDIA_OCI_LAYER_ND "application/vnd.oci.image.layer.nondistributable.v1.tar"
#define MEDIA_OCI_LAYER_ND_GZIP "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
#define MEDIA_OCI_LAYER_ND_ZSTD "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
#define MEDIA_DOCKER_LAYER "application/vnd.docker.image.rootfs.diff.tar"
#define MEDIA_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define MEDIA_DOCKER_LAYER_ZSTD "application/vnd.docker.image.rootfs.diff.tar.zstd"
#define MEDIA_DOCKER_LAYER_FOREIGN_GZIP "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

/* How a layer blob is compressed: what the media type says, what the layer
 * writer produces and what the extractor undoes. */
typedef enum
{
  LAYER_COMPRESS_GZIP = 0,
  LAYER_COMPRESS_ZSTD,
  LAYER_COMPRESS_NONE,
} layer_compression;

/* The media type kiln gives a layer it writes with compression c (docker:
 * the Docker names, for --format docker). "" for a value outside the enum. */
const char *mediatype_layer (layer_compression c, bool docker);

/* Classify a layer media type read from a manifest. Only the types registries
 * serve are accepted (OCI's six, Docker's gzip and foreign gzip); anything
 * else, Docker's plain-tar and zstd names included, is an error naming it,
 * because kiln cannot know how to unpack it. */
int mediatype_layer_compression (const char *media_type, layer_compression *out, kiln_error **err);

/* The same layer's media type in the other format: an OCI layer type for
 * docker, the Docker one otherwise (the blob bytes do not change, only their
 * name). Types without a twin come back unchanged. */
const char *mediatype_layer_for_format (const char *media_type, bool docker);

/* Parse a --compression value: "gzip", "zstd", "uncompressed" or "none". */
int mediatype_parse_compression (const char *s, layer_compression *out, kiln_error **err);

#endif
