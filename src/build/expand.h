/* expand.h - Dockerfile shell-word processing (BuildKit's shell lexer rules).
 *
 * Implements what the Dockerfile reference calls "environment replacement":
 * $VAR, ${VAR} and the modifiers ${VAR:-w} ${VAR-w} ${VAR:+w} ${VAR+w}
 * ${VAR:?msg} ${VAR?msg} ${VAR#pat} ${VAR##pat} ${VAR%pat} ${VAR%%pat}
 * ${VAR/pat/repl} ${VAR//pat/repl}, plus quote removal ('...' literal,
 * "..." with $ expansion and escapes of " $ and the escape character) and the
 * escape character (\ or ` from the escape directive).
 *
 * Variables are looked up through a callback that can answer "set", "unset"
 * or "unknown". "Unknown" is for dry runs, where a base image's ENV is not
 * available: the reference is then kept literally (${VAR...} text) so that the
 * output never pretends a value it does not know.
 */
#ifndef KILN_BUILD_EXPAND_H
#define KILN_BUILD_EXPAND_H

#include <stdbool.h>
#include <stddef.h>
#include "util/error.h"

typedef enum
{
  EXPAND_UNSET = 0,
  EXPAND_SET,
  EXPAND_UNKNOWN,
} expand_lookup_result;

/* Look up NAME (name_len bytes, not NUL-terminated). On EXPAND_SET store the
 * value (borrowed) in *value. */
typedef expand_lookup_result (*expand_lookup_fn) (void *ctx, const char *name, size_t name_len,
                                                  const char **value);

typedef struct expand_opts
{
  char escape;             /* '\\' or '`' */
  expand_lookup_fn lookup; /* NULL: every variable is unset */
  void *ctx;
  bool raw_quotes;         /* keep quote characters in the result */
  bool raw_escapes;        /* keep escape characters in the result */
} expand_opts;

/* Process IN as one word (ProcessWord): *out is the expanded text. */
int expand_word (const expand_opts *o, const char *in, char **out, kiln_error **err);

/* Process IN and split into words on unquoted whitespace (ProcessWords), as
 * EXPOSE does. *out is a NULL-terminated vector. */
int expand_words (const expand_opts *o, const char *in, char ***out, kiln_error **err);

/* Glob match used by the # % / modifiers: '*' any run, '?' one character,
 * '\\' escapes; neither wildcard matches a newline (Go regexp '.'). */
bool expand_glob_match (const char *pat, size_t plen, const char *s, size_t slen);

/* A small ordered variable table (later set wins). */
typedef struct expand_vars
{
  char **keys;
  char **values; /* NULL value: declared but unset (ARG without value) */
  size_t n, alloc;
} expand_vars;

void expand_vars_init (expand_vars *v);
void expand_vars_free (expand_vars *v);
void expand_vars_copy (expand_vars *dst, const expand_vars *src);
/* value may be NULL (declared, no value). */
void expand_vars_set (expand_vars *v, const char *key, const char *value);
/* Returns the index or -1. */
long expand_vars_find (const expand_vars *v, const char *key, size_t klen);

#endif
