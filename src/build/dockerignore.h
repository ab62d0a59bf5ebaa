/* dockerignore.h - .dockerignore rules (Docker's patternmatcher semantics).
 *
 * Lines: '#' at column 0 starts a comment, blank lines are skipped, text is
 * trimmed, a leading '!' makes an exception, patterns are cleaned like Go's
 * filepath.Clean and a leading '/' is dropped. Matching: Go filepath.Match
 * syntax ('*' and '?' never match '/', [classes], '\\' escapes) plus '**'
 * (any number of directories). A path is excluded when the last pattern that
 * matches it, or one of its parent directories, is not an exception.
 */
#ifndef KILN_BUILD_DOCKERIGNORE_H
#define KILN_BUILD_DOCKERIGNORE_H

#include <stdbool.h>
#include <stddef.h>
#include "util/error.h"

typedef struct dockerignore_pattern dockerignore_pattern;

typedef struct dockerignore
{
  dockerignore_pattern *patterns;
  size_t n_patterns;
  bool has_exceptions;
} dockerignore;

/* Parse the text of a .dockerignore file. */
int dockerignore_parse (const char *data, size_t len, dockerignore **out, kiln_error **err);

/* Load the ignore file for a build: "<dockerfile>.dockerignore" beside the
 * Dockerfile wins over CONTEXT_DIR/.dockerignore; neither present gives an
 * empty matcher. Symlinks are not followed. */
int dockerignore_load (const char *context_dir, const char *dockerfile_path, dockerignore **out,
                       kiln_error **err);

void dockerignore_free (dockerignore *d);

/* Exclude directory dir (relative to the context, clean) and everything
 * below it whatever the file's patterns say: appended last, and the last
 * matching pattern decides. Glob characters in dir are escaped. */
int dockerignore_exclude_dir (dockerignore *d, const char *dir, kiln_error **err);

/* Is PATH (relative to the context, '/'-separated, clean) excluded? */
bool dockerignore_excluded (const dockerignore *d, const char *path);

/* May a context walk skip directory DIR entirely: it is excluded and no
 * exception pattern could match anything below it. */
bool dockerignore_can_skip_dir (const dockerignore *d, const char *dir);

/* The cleaned pattern texts, in order ("!" prefix for exceptions). */
size_t dockerignore_count (const dockerignore *d);
const char *dockerignore_pattern_text (const dockerignore *d, size_t i);

#endif
