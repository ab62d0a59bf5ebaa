/* cli.c - declarative option parsing. */
#include "util/cli.h"
#include "util/alloc.h"
#include "util/strbuf.h"

#include <getopt.h>
#include <string.h>

int
cli_parse_bool (const char *flag, const char *value, bool *out, kiln_error **err)
{
  static const char *const yes[] = { "true", "1", "yes", "on", "TRUE", "True" };
  static const char *const no[] = { "false", "0", "no", "off", "FALSE", "False" };
  for (size_t i = 0; i < ARRAY_SIZE (yes); i++)
    if (strcmp (value, yes[i]) == 0)
      {
        *out = true;
        return 0;
      }
  for (size_t i = 0; i < ARRAY_SIZE (no); i++)
    if (strcmp (value, no[i]) == 0)
      {
        *out = false;
        return 0;
      }
  return kiln_error_make (err, 0, "invalid value '%s' for --%s (expected true or false)", value, flag);
}

#define HELP_ID -1000

static const cli_option *
find_long (const cli_option *opts, size_t n_opts, const char *name, size_t len)
{
  for (size_t i = 0; i < n_opts; i++)
    if (strlen (opts[i].name) == len && strncmp (opts[i].name, name, len) == 0)
      return &opts[i];
  return NULL;
}

/* getopt_long accepts any unambiguous prefix of a long option, so "--cache"
 * would set "--cache-dir" when only the latter is implemented: a flag
 * silently taken for another. Check every long flag is an exact name first,
 * walking argv the way getopt will (values of value flags are skipped). */
static int
check_exact_names (int argc, char **argv, const cli_option *opts, size_t n_opts, kiln_error **err)
{
  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      if (strcmp (a, "--") == 0)
        break;
      if (a[0] != '-' || a[1] == '\0')
        continue;
      if (strcmp (a, "-h") == 0)
        return 0;
      if (a[1] != '-')
        {
          /* A short cluster: a value flag takes the rest, or the next arg. */
          for (const char *p = a + 1; *p; p++)
            {
              const cli_option *o = NULL;
              for (size_t k = 0; k < n_opts; k++)
                if (opts[k].short_name == *p)
                  o = &opts[k];
              if (o && o->kind == CLI_VALUE)
                {
                  if (p[1] == '\0')
                    i++;
                  break;
                }
            }
          continue;
        }
      const char *name = a + 2;
      size_t len = strcspn (name, "=");
      if (len == 4 && strncmp (name, "help", 4) == 0)
        return 0; /* parsing stops at --help */
      const cli_option *o = find_long (opts, n_opts, name, len);
      if (o == NULL)
        return kiln_error_make (err, 0, "unknown flag '--%.*s'", (int) len, name);
      if (o->kind == CLI_VALUE && name[len] == '\0')
        i++;
    }
  return 0;
}

int
cli_parse (int argc, char **argv, const cli_option *opts, size_t n_opts, cli_handler handler, void *ctx,
           char ***positional, bool *help_requested, kiln_error **err)
{
  autofree struct option *lopts = xcalloc (n_opts + 2, sizeof *lopts);
  autostrbuf strbuf shorts = STRBUF_INIT;
  /* Leading ':' reports a missing value as ':' rather than '?'. GNU
   * permutation stays on, so flags may follow positional arguments. */
  strbuf_adds (&shorts, ":h");
  for (size_t i = 0; i < n_opts; i++)
    {
      lopts[i].name = opts[i].name;
      lopts[i].has_arg = opts[i].kind == CLI_VALUE ? required_argument : optional_argument;
      lopts[i].flag = NULL;
      lopts[i].val = 1000 + (int) i;
      if (opts[i].short_name)
        {
          strbuf_addch (&shorts, opts[i].short_name);
          if (opts[i].kind == CLI_VALUE)
            strbuf_addch (&shorts, ':');
        }
    }
  lopts[n_opts].name = "help";
  lopts[n_opts].has_arg = no_argument;
  lopts[n_opts].val = HELP_ID;

  *help_requested = false;
  *positional = NULL;
  if (check_exact_names (argc, argv, opts, n_opts, err) < 0)
    return -1;
  autostrv char **pos = xcalloc (1, sizeof (char *));
  optind = 0; /* full reinitialisation of getopt state */
  opterr = 0;
  for (;;)
    {
      int li = -1;
      int c = getopt_long (argc, argv, shorts.buf, lopts, &li);
      if (c == -1)
        break;
      if (c == HELP_ID || c == 'h')
        {
          *help_requested = true;
          return 0;
        }
      if (c == '?')
        {
          if (optopt > 0 && optopt < 1000)
            return kiln_error_make (err, 0, "unknown flag '-%c'", optopt);
          /* A known long flag given "=value" it does not take (--help=x). */
          if (optopt != 0)
            return kiln_error_make (err, 0, "flag '%s' does not take a value", argv[optind - 1]);
          return kiln_error_make (err, 0, "unknown flag '%s'", argv[optind - 1]);
        }
      if (c == ':')
        {
          if (optopt && optopt < 1000)
            return kiln_error_make (err, 0, "flag '-%c' needs a value", optopt);
          return kiln_error_make (err, 0, "flag '%s' needs a value", argv[optind - 1]);
        }
      const cli_option *o = NULL;
      if (c >= 1000 && c < 1000 + (int) n_opts)
        o = &opts[c - 1000];
      else
        for (size_t i = 0; i < n_opts; i++)
          if (opts[i].short_name == c)
            o = &opts[i];
      if (o == NULL)
        return kiln_error_make (err, 0, "unknown flag '-%c'", c);
      const char *value = optarg;
      switch (o->kind)
        {
        case CLI_BOOL:
          {
            bool b = true;
            if (value && cli_parse_bool (o->name, value, &b, err) < 0)
              return -1;
            value = b ? "true" : "false";
            break;
          }
        case CLI_VALUE:
          break;
        }
      if (handler (ctx, o->id, value, err) < 0)
        return -1;
    }
  for (int i = optind; i < argc; i++)
    strv_push (&pos, argv[i]);
  *positional = steal_pointer (&pos);
  return 0;
}

void
cli_print_options (FILE *out, const cli_option *opts, size_t n_opts)
{
  for (size_t i = 0; i < n_opts; i++)
    {
      const cli_option *o = &opts[i];
      if (o->help == NULL)
        continue;
      autostrbuf strbuf left = STRBUF_INIT;
      if (o->short_name)
        strbuf_addf (&left, "  -%c, --%s", o->short_name, o->name);
      else
        strbuf_addf (&left, "      --%s", o->name);
      if (o->kind == CLI_VALUE)
        strbuf_addf (&left, " %s", o->metavar ? o->metavar : "VALUE");
      if (left.len < 34)
        fprintf (out, "%-34s %s\n", left.buf, o->help);
      else
        fprintf (out, "%s\n%-34s %s\n", left.buf, "", o->help);
    }
  fprintf (out, "%-34s %s\n", "  -h, --help", "show this help");
}

#include "util/log.h"
#include <stdlib.h>

const cli_option cli_common_options[] = {
  { "verbosity", 'v', CLI_VALUE, "LEVEL", "log level: error, warn, info (default), debug, trace", CLI_COMMON_VERBOSITY },
  { "log-format", 0, CLI_VALUE, "FORMAT", "log line format: text (default; json with kiln build --progress=json), "
    "color (text with coloured levels) or json", CLI_COMMON_LOG_FORMAT },
  { "log-timestamp", 0, CLI_BOOL, NULL, "prefix log lines with UTC timestamps", CLI_COMMON_LOG_TIMESTAMP },
  { "root", 0, CLI_VALUE, "DIR", "store directory (default $KILN_ROOT, else ${XDG_DATA_HOME:-~/.local/share}/kiln)", CLI_COMMON_ROOT },
};
const size_t cli_common_options_count = ARRAY_SIZE (cli_common_options);

void
cli_common_init (cli_common *c)
{
  c->verbosity = LOG_LEVEL_INFO;
  c->verbosity_set = false;
  c->log_format = LOG_FORMAT_TEXT;
  c->log_format_set = false;
  c->log_timestamp = false;
  c->root = NULL;
}

void
cli_common_free (cli_common *c)
{
  free (c->root);
  c->root = NULL;
}

int
cli_common_handle (cli_common *c, int id, const char *value, kiln_error **err)
{
  switch (id)
    {
    case CLI_COMMON_VERBOSITY:
      {
        log_level l;
        if (log_parse_level (value, &l, err) < 0)
          return -1;
        c->verbosity = l;
        c->verbosity_set = true;
        return 1;
      }
    case CLI_COMMON_LOG_FORMAT:
      {
        log_format f;
        if (log_parse_format (value, &f, err) < 0)
          return -1;
        c->log_format = f;
        c->log_format_set = true;
        return 1;
      }
    case CLI_COMMON_LOG_TIMESTAMP:
      c->log_timestamp = strcmp (value, "true") == 0;
      return 1;
    case CLI_COMMON_ROOT:
      if (*value == '\0')
        return kiln_error_make (err, 0, "--root needs a non-empty directory");
      free (c->root);
      c->root = xstrdup (value);
      return 1;
    default:
      return 0;
    }
}

void
cli_common_apply (const cli_common *c)
{
  log_setup ((log_level) c->verbosity, (log_format) c->log_format, c->log_timestamp, NULL);
}

cli_option *
cli_options_concat (const cli_option *a, size_t na, const cli_option *b, size_t nb)
{
  cli_option *r = xcalloc (na + nb, sizeof *r);
  if (na)
    memcpy (r, a, na * sizeof *r);
  if (nb)
    memcpy (r + na, b, nb * sizeof *r);
  return r;
}
