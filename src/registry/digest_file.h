/* digest_file.h - the files a pull, push or build leaves for CI pipelines
 * to read (--digest-file, --image-name-with-digest-file): written
 * atomically, so a reader never sees half of one. */
#ifndef KILN_REGISTRY_DIGEST_FILE_H
#define KILN_REGISTRY_DIGEST_FILE_H

#include <stddef.h>
#include "util/error.h"

/* Write data to a user-given path atomically (temp + rename), mode 0644. */
int registry_write_user_file (const char *path, const void *data, size_t len, kiln_error **err);
/* Write digest to the user-given path (--digest-file). */
int registry_write_digest_file (const char *path, const char *digest, kiln_error **err);

#endif
