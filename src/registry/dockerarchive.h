/* dockerarchive.h - write `docker load` archives (docker-archive format):
 * manifest.json ([{"Config","RepoTags","Layers"}]), repositories, the config
 * as HEX.json and each layer blob as HEX.tar (the compressed blob verbatim;
 * docker load and skopeo decompress it). Written to a temporary file beside
 * path and renamed into place, so path never holds a partial archive.
 */
#ifndef KILN_REGISTRY_DOCKERARCHIVE_H
#define KILN_REGISTRY_DOCKERARCHIVE_H

#include "registry/ocilayout.h"
#include "util/error.h"

/* Write the image tagged tag (NULL: the only one) in layout l to path, with
 * repo_tag ("name:tag", may be NULL) as its RepoTags entry. */
int dockerarchive_write (ocilayout *l, const char *tag, const char *repo_tag, const char *path, kiln_error **err);

#endif
