/* dockerfile.h - Dockerfile parser (dockerfile:1 syntax) into a plain AST.
 *
 * Parsing follows BuildKit's frontend/dockerfile/parser: parser directives
 * (syntax, escape, check) at the top, comments, line continuations with the
 * escape character (comment and blank lines inside a continuation are
 * skipped), builder flags (--name[=value]) in front of the arguments, JSON
 * (exec) form vs shell form, and heredocs on RUN/COPY/ADD. Nothing is
 * expanded here: variable expansion needs ARG/ENV state and happens in plan.c.
 * Errors name the file and line, quote the line and say what is wrong.
 */
#ifndef KILN_BUILD_DOCKERFILE_H
#define KILN_BUILD_DOCKERFILE_H

#include <stdbool.h>
#include <stddef.h>
#include "util/error.h"

typedef enum
{
  DF_ADD,
  DF_ARG,
  DF_CMD,
  DF_COPY,
  DF_ENTRYPOINT,
  DF_ENV,
  DF_EXPOSE,
  DF_FROM,
  DF_HEALTHCHECK,
  DF_LABEL,
  DF_MAINTAINER,
  DF_ONBUILD,
  DF_RUN,
  DF_SHELL,
  DF_STOPSIGNAL,
  DF_USER,
  DF_VOLUME,
  DF_WORKDIR,
  DF_KIND_COUNT,
} dockerfile_kind;

typedef struct dockerfile_flag
{
  char *name;  /* without "--" */
  char *value; /* NULL for a bare boolean --flag */
} dockerfile_flag;

typedef struct dockerfile_heredoc
{
  char *name;      /* delimiter word with quotes removed */
  char *body;      /* lines between the instruction and the delimiter, each
                    * ending in "\n"; for <<- leading tabs already stripped */
  bool expand;     /* false when any part of the delimiter was quoted */
  bool chomp;      /* <<- */
} dockerfile_heredoc;

typedef struct dockerfile_kv
{
  char *key;   /* raw: quotes and escapes still present, not expanded */
  char *value; /* raw; NULL for ARG without default */
} dockerfile_kv;

typedef struct dockerfile_instr
{
  dockerfile_kind kind;
  char *keyword;            /* as written (case preserved) */
  int line;                 /* first line, 1-based */
  int end_line;             /* last line, including heredoc bodies */
  char *original;           /* the source lines of the instruction */
  dockerfile_flag *flags;
  size_t n_flags;
  char *rest;               /* argument text after the flags (continuations joined) */
  bool json;                /* exec form: args are the JSON array */
  /* Arguments, unexpanded:
   *  - JSON form: the array elements.
   *  - FROM, EXPOSE, ADD, COPY, VOLUME (shell form): whitespace-separated words.
   *  - RUN/CMD/ENTRYPOINT shell form, USER, WORKDIR, STOPSIGNAL, MAINTAINER:
   *    one element, the whole text.
   *  - HEALTHCHECK: the command (JSON or one shell string), empty for NONE. */
  char **args;
  dockerfile_kv *kvs;       /* ENV, LABEL, ARG */
  size_t n_kvs;
  dockerfile_heredoc *heredocs;
  size_t n_heredocs;
  char *health_type;        /* HEALTHCHECK: "CMD" or "NONE" */
  struct dockerfile_instr *trigger; /* ONBUILD: the parsed trigger instruction */
} dockerfile_instr;

typedef struct dockerfile
{
  char *path;       /* for messages */
  char escape;      /* '\\' or '`' */
  char *syntax;     /* # syntax= value or NULL */
  char *check;      /* # check= value or NULL */
  dockerfile_instr *instrs;
  size_t n_instrs;
  char **lines;     /* the source split in lines, for error messages */
  size_t n_lines;
  char **warnings;  /* "FILE:LINE: text" */
} dockerfile;

/* Parse DATA (len bytes, need not be NUL-terminated). NAME is used in
 * messages. */
int dockerfile_parse (const char *name, const char *data, size_t len, dockerfile **out, kiln_error **err);
/* Read and parse a file (at most 16 MiB). A path inside context_dir (not
 * NULL) is opened beneath it: a Dockerfile that is a symlink leading out
 * of the build context is an error and is not read (context_open_file). */
int dockerfile_parse_file (const char *path, const char *context_dir, dockerfile **out, kiln_error **err);
void dockerfile_free (dockerfile *df);

/* "FROM", "RUN", ... */
const char *dockerfile_kind_name (dockerfile_kind k);

/* Flag value by name (last one wins), NULL if absent; *present says whether
 * the flag was given at all (bare boolean flags have a NULL value). */
const char *dockerfile_instr_flag (const dockerfile_instr *in, const char *name, bool *present);

/* Make an error "FILE:LINE: MESSAGE" followed by the quoted source line. */
int dockerfile_error (const dockerfile *df, int line, kiln_error **err, const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));

#endif
