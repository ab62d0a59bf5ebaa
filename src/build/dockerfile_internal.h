/* dockerfile_internal.h - what the two files of the Dockerfile parser share.
 * PRIVATE to src/build/dockerfile.c and src/build/dockerfile_args.c:
 * nothing else includes it; the parser's API is dockerfile.h.
 *
 * Where things are:
 *   dockerfile.c       the lexing: lines, parser directives, comments,
 *                      continuations, heredoc bodies, errors and warnings,
 *                      the AST's accessors and its release
 *   dockerfile_args.c  one instruction line: the keyword ("did you mean"),
 *                      builder flags and the per-instruction flag tables,
 *                      JSON vs shell form and every instruction's argument
 *                      shape (ONBUILD's trigger included)
 *
 * Functions declared here are named after the module (dockerfile_).
 */
#ifndef KILN_BUILD_DOCKERFILE_INTERNAL_H
#define KILN_BUILD_DOCKERFILE_INTERNAL_H

#include <stdbool.h>
#include "build/dockerfile.h"
#include "util/error.h"

/* dockerfile.c */

/* Append "PATH:LINE: message" to df->warnings. */
void dockerfile_add_warning (dockerfile *df, int line, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* The whitespace of BuildKit's parser (space, \t, \v, \f, \r, \n). */
bool dockerfile_ws (char c);
/* S past its leading whitespace. */
const char *dockerfile_skip_ws (const char *s);
/* A copy of S without leading and trailing whitespace. */
char *dockerfile_trim_dup (const char *s);

/* dockerfile_args.c */

/* Parse LINE (one logical instruction line, continuations joined), which
 * starts on line LINENO of DF, into *IN: keyword, flags, arguments. */
int dockerfile_parse_line (dockerfile *df, const char *line, int lineno, dockerfile_instr *in, kiln_error **err);

#endif
