/* context.h - opening the files a build context names (the Dockerfile and
 * its .dockerignore) without letting a hostile context reach outside it.
 *
 * A context is untrusted: a repository whose Dockerfile is a symlink to
 * /etc/shadow, /proc/self/environ or a credentials file must not make kiln
 * read that file (and quote its first line in a parse error). Files inside
 * the context are therefore looked up beneath it (openat2 RESOLVE_BENEATH or
 * fsutil's fallback walk); a file the user names outside the context with
 * -f is theirs and is opened as it is.
 */
#ifndef KILN_BUILD_CONTEXT_H
#define KILN_BUILD_CONTEXT_H

#include "util/error.h"

/* Open path with flags (O_CLOEXEC added). When context_dir is not NULL and
 * path lies lexically inside it (both taken relative to the working
 * directory), the lookup stays beneath the context: a symlink that leads
 * outside it (an absolute target, or ".." above it) fails with EXDEV,
 * "'PATH' leads outside the build context 'DIR' (a symlink?): not read",
 * and nothing is read. Other errors keep their errno and name path. */
int context_open_file (const char *context_dir, const char *path, int flags, kiln_error **err);

#endif
