/* cli.h - declarative command-line options on top of getopt_long.
 *
 * Each command describes its flags in a table; the same table drives parsing
 * and --help, so help lists exactly the flags that are implemented and an
 * unknown flag is always an error (exit 2). Accepted forms: `--flag value`,
 * `--flag=value`, `-f value`, and for booleans `--flag`, `--flag=true|false`
 * (kaniko/pflag style; a boolean never consumes the next argument).
 */
#ifndef KILN_UTIL_CLI_H
#define KILN_UTIL_CLI_H

#include <stdbool.h>
#include <stdio.h>
#include "util/error.h"

typedef enum
{
  CLI_BOOL,   /* optional =true|false */
  CLI_VALUE,  /* required argument */
} cli_kind;

typedef struct cli_option
{
  const char *name;      /* long name without "--" */
  int short_name;        /* 0 if none */
  cli_kind kind;
  const char *metavar;   /* for CLI_VALUE, shown in help */
  const char *help;      /* NULL hides the option from --help (aliases) */
  int id;                /* passed to the handler */
} cli_option;

/* Called for each option in order. For CLI_BOOL, value is "true" or "false". */
typedef int (*cli_handler) (void *ctx, int id, const char *value, kiln_error **err);

/* Parse argv[1..] (argv[0] is the command name). Positional arguments are
 * returned in *positional (NULL-terminated, owned by the caller, strv_free).
 * `--help`/`-h` sets *help_requested and stops parsing.
 * Usage errors return a negative value with err->status == 0; callers exit 2. */
int cli_parse (int argc, char **argv, const cli_option *opts, size_t n_opts,
               cli_handler handler, void *ctx, char ***positional,
               bool *help_requested, kiln_error **err);

/* Parse "true"/"false"/"1"/"0"/"yes"/"no". */
int cli_parse_bool (const char *flag, const char *value, bool *out, kiln_error **err);

/* Print the option table, one flag per line, wrapped help text. */
void cli_print_options (FILE *out, const cli_option *opts, size_t n_opts);

/* Options every command takes (logging and the store location). Commands
 * append cli_common_options to their own table and pass unknown ids to
 * cli_common_handle(). */
typedef struct cli_common
{
  int verbosity;      /* log_level */
  bool verbosity_set; /* -v/--verbosity given */
  int log_format;     /* log_format */
  bool log_format_set; /* --log-format given */
  bool log_timestamp;
  char *root;         /* --root, or NULL for KILN_ROOT / the default */
} cli_common;

enum
{
  CLI_COMMON_VERBOSITY = 9000,
  CLI_COMMON_LOG_FORMAT,
  CLI_COMMON_LOG_TIMESTAMP,
  CLI_COMMON_ROOT,
};

extern const cli_option cli_common_options[];
extern const size_t cli_common_options_count;

void cli_common_init (cli_common *c);
void cli_common_free (cli_common *c);
/* Returns 1 if id was a common option (and handled), 0 if not, <0 on error. */
int cli_common_handle (cli_common *c, int id, const char *value, kiln_error **err);
/* Configure logging from the parsed options. */
void cli_common_apply (const cli_common *c);

/* Concatenate two option tables (caller frees the result). */
cli_option *cli_options_concat (const cli_option *a, size_t na, const cli_option *b, size_t nb);

/* Exit codes. */
#define KILN_EXIT_OK 0
#define KILN_EXIT_FAILURE 1
#define KILN_EXIT_USAGE 2

#endif
