/* dockerfile_args.c - one instruction line of a Dockerfile: the keyword,
 * builder flags, JSON vs shell form and each instruction's arguments; see
 * dockerfile.h and dockerfile_internal.h. */
#include "build/dockerfile.h"
#include "build/dockerfile_internal.h"
#include "util/alloc.h"
#include "util/strbuf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_parse.h>

static const char *const kind_names[DF_KIND_COUNT] = {
  [DF_ADD] = "ADD", [DF_ARG] = "ARG", [DF_CMD] = "CMD", [DF_COPY] = "COPY",
  [DF_ENTRYPOINT] = "ENTRYPOINT", [DF_ENV] = "ENV", [DF_EXPOSE] = "EXPOSE", [DF_FROM] = "FROM",
  [DF_HEALTHCHECK] = "HEALTHCHECK", [DF_LABEL] = "LABEL", [DF_MAINTAINER] = "MAINTAINER",
  [DF_ONBUILD] = "ONBUILD", [DF_RUN] = "RUN", [DF_SHELL] = "SHELL", [DF_STOPSIGNAL] = "STOPSIGNAL",
  [DF_USER] = "USER", [DF_VOLUME] = "VOLUME", [DF_WORKDIR] = "WORKDIR",
};

const char *
dockerfile_kind_name (dockerfile_kind k)
{
  return (unsigned) k < DF_KIND_COUNT ? kind_names[k] : "?";
}

/* Flags each instruction accepts (the dockerfile:1 reference). */
typedef enum
{
  FLAG_BOOL,
  FLAG_STRING,
  FLAG_STRINGS, /* may repeat */
} flag_type;

typedef struct flag_spec
{
  dockerfile_kind kind;
  const char *name;
  flag_type type;
} flag_spec;

static const flag_spec flag_specs[] = {
  { DF_FROM, "platform", FLAG_STRING },
  { DF_RUN, "mount", FLAG_STRINGS },
  { DF_RUN, "network", FLAG_STRING },
  { DF_RUN, "security", FLAG_STRING },
  { DF_COPY, "from", FLAG_STRING },
  { DF_COPY, "chown", FLAG_STRING },
  { DF_COPY, "chmod", FLAG_STRING },
  { DF_COPY, "link", FLAG_BOOL },
  { DF_COPY, "parents", FLAG_BOOL },
  { DF_COPY, "exclude", FLAG_STRINGS },
  { DF_ADD, "chown", FLAG_STRING },
  { DF_ADD, "chmod", FLAG_STRING },
  { DF_ADD, "link", FLAG_BOOL },
  { DF_ADD, "parents", FLAG_BOOL },
  { DF_ADD, "exclude", FLAG_STRINGS },
  { DF_ADD, "checksum", FLAG_STRING },
  { DF_ADD, "keep-git-dir", FLAG_BOOL },
  { DF_ADD, "unpack", FLAG_BOOL },
  { DF_HEALTHCHECK, "interval", FLAG_STRING },
  { DF_HEALTHCHECK, "timeout", FLAG_STRING },
  { DF_HEALTHCHECK, "start-period", FLAG_STRING },
  { DF_HEALTHCHECK, "start-interval", FLAG_STRING },
  { DF_HEALTHCHECK, "retries", FLAG_STRING },
};

/* ---- word splitting ---- */

/* Whitespace split without quote handling (parseStringsWhitespaceDelimited). */
static char **
split_ws (const char *s)
{
  char **v = xcalloc (1, sizeof (char *));
  for (;;)
    {
      s = dockerfile_skip_ws (s);
      if (*s == '\0')
        break;
      const char *e = s;
      while (*e && !dockerfile_ws (*e))
        e++;
      autofree char *w = xstrndup (s, e - s);
      strv_push (&v, w);
      s = e;
    }
  return v;
}

/* parseWords: split on whitespace, keeping quotes and escapes in the words. */
static char **
split_words_quoted (const char *rest, char esc)
{
  char **v = xcalloc (1, sizeof (char *));
  autostrbuf strbuf w = STRBUF_INIT;
  enum { IN_SPACES, IN_WORD, IN_QUOTE } phase = IN_SPACES;
  char quote = 0;
  bool blank_ok = false;
  size_t n = strlen (rest);
  for (size_t pos = 0; pos <= n; pos++)
    {
      char ch = pos < n ? rest[pos] : 0;
      if (phase == IN_SPACES)
        {
          if (pos == n)
            break;
          if (dockerfile_ws (ch))
            continue;
          phase = IN_WORD;
        }
      if (pos == n)
        {
          if (blank_ok || w.len > 0)
            strv_push (&v, w.buf);
          break;
        }
      if (phase == IN_WORD)
        {
          if (dockerfile_ws (ch))
            {
              phase = IN_SPACES;
              if (blank_ok || w.len > 0)
                strv_push (&v, w.buf);
              strbuf_reset (&w);
              blank_ok = false;
              continue;
            }
          if (ch == '\'' || ch == '"')
            {
              quote = ch;
              blank_ok = true;
              phase = IN_QUOTE;
            }
          if (ch == esc)
            {
              if (pos + 1 == n)
                continue;
              strbuf_addch (&w, ch);
              ch = rest[++pos];
            }
          strbuf_addch (&w, ch);
          continue;
        }
      /* IN_QUOTE */
      if (ch == quote)
        phase = IN_WORD;
      if (ch == esc && quote != '\'')
        {
          if (pos + 1 == n)
            {
              phase = IN_WORD;
              continue;
            }
          strbuf_addch (&w, ch);
          ch = rest[++pos];
        }
      strbuf_addch (&w, ch);
    }
  return v;
}

/* ---- JSON form ---- */

typedef struct json_ctx
{
  int depth;
  bool bad;       /* a non-string element or nesting */
  bool started;
  char **items;
} json_ctx;

static int
j_string (void *c, const unsigned char *s, size_t l)
{
  json_ctx *j = c;
  if (j->depth != 1)
    j->bad = true;
  else
    {
      autofree char *v = xstrndup ((const char *) s, l);
      if (strlen (v) != l)
        j->bad = true; /* embedded NUL cannot be passed to exec */
      strv_push (&j->items, v);
    }
  return 1;
}

static int
j_other (void *c)
{
  ((json_ctx *) c)->bad = true;
  return 1;
}

static int
j_bool (void *c, int b)
{
  (void) b;
  return j_other (c);
}

static int
j_num (void *c, const char *s, size_t l)
{
  (void) s;
  (void) l;
  return j_other (c);
}

static int
j_map_key (void *c, const unsigned char *s, size_t l)
{
  (void) s;
  (void) l;
  return j_other (c);
}

static int
j_start_array (void *c)
{
  json_ctx *j = c;
  if (j->depth > 0)
    j->bad = true;
  j->depth++;
  j->started = true;
  return 1;
}

static int
j_end_array (void *c)
{
  json_ctx *j = c;
  j->depth--;
  return 1;
}

static int
j_start_map (void *c)
{
  json_ctx *j = c;
  j->bad = true;
  j->depth++;
  return 1;
}

static int
j_end_map (void *c)
{
  ((json_ctx *) c)->depth--;
  return 1;
}

static const yajl_callbacks json_cb = {
  j_other, j_bool, NULL, NULL, j_num, j_string, j_start_map, j_map_key, j_end_map, j_start_array, j_end_array,
};

typedef enum
{
  JSON_NO,      /* not JSON: use the shell form */
  JSON_YES,
  JSON_NOT_STRINGS,
} json_result;

/* parseJSON: the first JSON value of REST (trailing text is ignored, as Go's
 * json.Decoder does) must be an array of strings. */
static json_result
parse_json_array (const char *rest, char ***out)
{
  rest = dockerfile_skip_ws (rest);
  if (*rest != '[')
    return JSON_NO;
  json_ctx j = { 0 };
  yajl_handle h = yajl_alloc (&json_cb, NULL, &j);
  yajl_config (h, yajl_allow_trailing_garbage, 1);
  yajl_status st = yajl_parse (h, (const unsigned char *) rest, strlen (rest));
  if (st == yajl_status_ok)
    st = yajl_complete_parse (h);
  yajl_free (h);
  if (st != yajl_status_ok)
    {
      strv_free (j.items);
      return JSON_NO;
    }
  if (j.bad)
    {
      strv_free (j.items);
      return JSON_NOT_STRINGS;
    }
  *out = j.items ? j.items : xcalloc (1, sizeof (char *));
  return JSON_YES;
}

/* Docker silently runs `CMD ['a', 'b']` through /bin/sh; kiln refuses text
 * that is clearly a botched JSON array: '[' then a quote, a quote-comma
 * sequence, ending in a quote and ']'. */
static bool
looks_like_bad_json (const char *rest)
{
  const char *s = dockerfile_skip_ws (rest);
  if (*s != '[')
    return false;
  const char *a = dockerfile_skip_ws (s + 1);
  if (*a != '"' && *a != '\'')
    return false;
  size_t n = strlen (s);
  while (n > 0 && dockerfile_ws (s[n - 1]))
    n--;
  if (n < 3 || s[n - 1] != ']')
    return false;
  size_t k = n - 1;
  while (k > 0 && dockerfile_ws (s[k - 1]))
    k--;
  if (k == 0 || (s[k - 1] != '"' && s[k - 1] != '\''))
    return false;
  for (size_t i = 0; i + 1 < n; i++)
    if (s[i] == '\'' || s[i] == '"')
      {
        size_t m = i + 1;
        while (m < n && dockerfile_ws (s[m]))
          m++;
        if (m < n && s[m] == ',')
          return true;
      }
  /* ['single'] */
  return s[1] == '\'' && s[n - 2] == '\'';
}

/* ---- "did you mean" ---- */

static size_t
edit_distance (const char *a, const char *b)
{
  size_t la = strlen (a), lb = strlen (b);
  if (la > 32 || lb > 32)
    return 99;
  size_t d[33][33];
  for (size_t i = 0; i <= la; i++)
    d[i][0] = i;
  for (size_t j = 0; j <= lb; j++)
    d[0][j] = j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++)
      {
        size_t c = d[i - 1][j - 1] + (toupper ((unsigned char) a[i - 1]) != toupper ((unsigned char) b[j - 1]));
        size_t x = d[i - 1][j] + 1, y = d[i][j - 1] + 1;
        d[i][j] = c < x ? (c < y ? c : y) : (x < y ? x : y);
      }
  return d[la][lb];
}

static const char *
suggest (const char *word, const char *const *cands, size_t n)
{
  const char *best = NULL;
  size_t bd = 3;
  for (size_t i = 0; i < n; i++)
    {
      if (cands[i] == NULL)
        continue;
      size_t d = edit_distance (word, cands[i]);
      if (d < bd)
        {
          bd = d;
          best = cands[i];
        }
    }
  return best;
}

/* ---- one instruction line ---- */

typedef struct parser
{
  dockerfile *df;
} parser;

/* extractBuilderFlags: leading "--..." words (quotes allowed) before the
 * arguments. Returns the remaining text. */
static const char *
extract_flags (const char *line, char ***flags)
{
  size_t n = strlen (line);
  autostrbuf strbuf w = STRBUF_INIT;
  enum { IN_SPACES, IN_WORD, IN_QUOTE } phase = IN_SPACES;
  char quote = 0;
  bool blank_ok = false;
  *flags = xcalloc (1, sizeof (char *));
  for (size_t pos = 0; pos <= n; pos++)
    {
      char ch = pos < n ? line[pos] : 0;
      if (phase == IN_SPACES)
        {
          if (pos == n)
            break;
          if (dockerfile_ws (ch))
            continue;
          if (ch != '-' || pos + 1 == n || line[pos + 1] != '-')
            return line + pos;
          phase = IN_WORD;
        }
      if (pos == n)
        {
          if (strcmp (w.buf, "--") != 0 && (blank_ok || w.len > 0))
            strv_push (flags, w.buf);
          break;
        }
      if (phase == IN_WORD)
        {
          if (dockerfile_ws (ch))
            {
              phase = IN_SPACES;
              if (strcmp (w.buf, "--") == 0)
                return line + pos;
              if (blank_ok || w.len > 0)
                strv_push (flags, w.buf);
              strbuf_reset (&w);
              blank_ok = false;
              continue;
            }
          if (ch == '\'' || ch == '"')
            {
              quote = ch;
              blank_ok = true;
              phase = IN_QUOTE;
              continue;
            }
          if (ch == '\\')
            {
              if (pos + 1 == n)
                continue;
              ch = line[++pos];
            }
          strbuf_addch (&w, ch);
          continue;
        }
      if (ch == quote)
        {
          phase = IN_WORD;
          continue;
        }
      if (ch == '\\')
        {
          if (pos + 1 == n)
            {
              phase = IN_WORD;
              continue;
            }
          ch = line[++pos];
        }
      strbuf_addch (&w, ch);
    }
  return line + n;
}

static int
parse_flags (parser *p, dockerfile_instr *in, char **words, kiln_error **err)
{
  for (size_t i = 0; words[i]; i++)
    {
      const char *a = words[i];
      if (strncmp (a, "--", 2) != 0)
        return dockerfile_error (p->df, in->line, err, "%s: flag should start with --: '%s'", in->keyword, a);
      a += 2;
      const char *eq = strchr (a, '=');
      autofree char *name = eq ? xstrndup (a, eq - a) : xstrdup (a);
      const flag_spec *spec = NULL;
      const char *cands[ARRAY_SIZE (flag_specs)] = { 0 };
      for (size_t k = 0; k < ARRAY_SIZE (flag_specs); k++)
        if (flag_specs[k].kind == in->kind)
          {
            cands[k] = flag_specs[k].name;
            if (strcmp (flag_specs[k].name, name) == 0)
              spec = &flag_specs[k];
          }
      if (spec == NULL)
        {
          const char *s = suggest (name, cands, ARRAY_SIZE (cands));
          if (s)
            return dockerfile_error (p->df, in->line, err, "%s: unknown flag '--%s' (did you mean '--%s'?)",
                                     in->keyword, name, s);
          return dockerfile_error (p->df, in->line, err, "%s: unknown flag '--%s'", in->keyword, name);
        }
      bool present;
      dockerfile_instr_flag (in, name, &present);
      if (present && spec->type != FLAG_STRINGS)
        return dockerfile_error (p->df, in->line, err, "%s: duplicate flag specified: '--%s'", in->keyword, name);
      char *value = NULL;
      switch (spec->type)
        {
        case FLAG_BOOL:
          if (eq && eq[1] == '\0')
            return dockerfile_error (p->df, in->line, err, "%s: missing a value on flag '--%s'", in->keyword, name);
          if (eq && strcasecmp (eq + 1, "true") != 0 && strcasecmp (eq + 1, "false") != 0)
            return dockerfile_error (p->df, in->line, err, "%s: expecting boolean value for flag '--%s', not: '%s'",
                                     in->keyword, name, eq + 1);
          value = xstrdup (eq && strcasecmp (eq + 1, "false") == 0 ? "false" : "true");
          break;
        case FLAG_STRING:
        case FLAG_STRINGS:
          if (eq == NULL)
            return dockerfile_error (p->df, in->line, err, "%s: missing a value on flag '--%s'", in->keyword, name);
          value = xstrdup (eq + 1);
          break;
        }
      in->flags = xreallocarray (in->flags, in->n_flags + 1, sizeof *in->flags);
      in->flags[in->n_flags].name = steal_pointer (&name);
      in->flags[in->n_flags].value = value;
      in->n_flags++;
    }
  return 0;
}

static int
parse_kvs (parser *p, dockerfile_instr *in, kiln_error **err)
{
  autostrv char **words = split_words_quoted (in->rest, p->df->escape);
  if (words[0] == NULL)
    {
      if (in->kind == DF_ARG)
        return dockerfile_error (p->df, in->line, err, "ARG requires at least one argument");
      return dockerfile_error (p->df, in->line, err, "%s requires at least one argument", in->keyword);
    }
  if (in->kind == DF_ARG)
    {
      for (size_t i = 0; words[i]; i++)
        {
          char *eq = strchr (words[i], '=');
          in->kvs = xreallocarray (in->kvs, in->n_kvs + 1, sizeof *in->kvs);
          in->kvs[in->n_kvs].key = eq ? xstrndup (words[i], eq - words[i]) : xstrdup (words[i]);
          in->kvs[in->n_kvs].value = eq ? xstrdup (eq + 1) : NULL;
          if (in->kvs[in->n_kvs++].key[0] == '\0')
            return dockerfile_error (p->df, in->line, err, "ARG names can not be blank");
        }
      return 0;
    }
  if (strchr (words[0], '=') == NULL)
    {
      /* Legacy "ENV name value" / "LABEL name value": the rest of the line. */
      const char *s = dockerfile_skip_ws (in->rest);
      const char *e = s;
      while (*e && !dockerfile_ws (*e))
        e++;
      const char *v = dockerfile_skip_ws (e);
      if (*v == '\0')
        return dockerfile_error (p->df, in->line, err, "%s must have two arguments", in->keyword);
      in->kvs = xcalloc (1, sizeof *in->kvs);
      in->kvs[0].key = xstrndup (s, e - s);
      in->kvs[0].value = dockerfile_trim_dup (v);
      in->n_kvs = 1;
      dockerfile_add_warning (p->df, in->line, "legacy '%s key value' format; use '%s key=value'", in->keyword,
                              in->keyword);
      return 0;
    }
  for (size_t i = 0; words[i]; i++)
    {
      char *eq = strchr (words[i], '=');
      if (eq == NULL)
        return dockerfile_error (p->df, in->line, err,
                                 "%s: syntax error - can't find = in '%s'; must be of the form: name=value",
                                 in->keyword, words[i]);
      if (eq == words[i])
        return dockerfile_error (p->df, in->line, err, "%s names can not be blank", in->keyword);
      in->kvs = xreallocarray (in->kvs, in->n_kvs + 1, sizeof *in->kvs);
      in->kvs[in->n_kvs].key = xstrndup (words[i], eq - words[i]);
      in->kvs[in->n_kvs].value = xstrdup (eq + 1);
      in->n_kvs++;
    }
  return 0;
}

static bool
valid_stage_name (const char *s)
{
  if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z'))
    return false;
  for (s++; *s; s++)
    if (!isalnum ((unsigned char) *s) && *s != '-' && *s != '_' && *s != '.')
      return false;
  return true;
}

static int
parse_line (parser *p, const char *line, int lineno, bool in_onbuild, dockerfile_instr *in, kiln_error **err);

/* FROM image [AS name] */
static int
parse_from_args (parser *p, dockerfile_instr *in, kiln_error **err)
{
  dockerfile *df = p->df;
  in->args = split_ws (in->rest);
  size_t n = strv_len (in->args);
  if (n != 1 && !(n == 3 && strcasecmp (in->args[1], "as") == 0))
    return dockerfile_error (df, in->line, err, "FROM requires either one or three arguments (FROM image [AS name])");
  if (n == 3 && !valid_stage_name (in->args[2]))
    return dockerfile_error (df, in->line, err,
                             "invalid name for build stage: '%s', name can't start with a number or contain symbols",
                             in->args[2]);
  return 0;
}

/* ADD, COPY, VOLUME: a JSON array or words. */
static int
parse_path_args (parser *p, dockerfile_instr *in, kiln_error **err)
{
  dockerfile *df = p->df;
  const char *kw = kind_names[in->kind];
  const char *rest = in->rest;
  json_result jr = parse_json_array (rest, &in->args);
  if (jr == JSON_NOT_STRINGS)
    return dockerfile_error (df, in->line, err, "%s: JSON arrays must contain only strings", kw);
  if (jr == JSON_YES)
    in->json = true;
  else
    {
      if (looks_like_bad_json (rest))
        return dockerfile_error (df, in->line, err,
                                 "%s: bad JSON form (JSON arrays need double-quoted strings separated by commas)", kw);
      in->args = split_ws (rest);
    }
  size_t n = strv_len (in->args);
  if (in->kind == DF_VOLUME)
    {
      if (n == 0)
        return dockerfile_error (df, in->line, err, "VOLUME requires at least one argument");
      for (size_t i = 0; i < n; i++)
        if (in->args[i][0] == '\0')
          return dockerfile_error (df, in->line, err, "VOLUME specified can not be an empty string");
    }
  else if (n < 2)
    return dockerfile_error (df, in->line, err,
                             "%s requires at least two arguments, but only %zu provided (source and destination)", kw, n);
  return 0;
}

/* RUN, CMD, ENTRYPOINT, SHELL: a JSON array or (not for SHELL) the rest of
 * the line as one shell command. */
static int
parse_command_args (parser *p, dockerfile_instr *in, kiln_error **err)
{
  dockerfile *df = p->df;
  const char *kw = kind_names[in->kind];
  const char *rest = in->rest;
  json_result jr = parse_json_array (rest, &in->args);
  if (jr == JSON_NOT_STRINGS)
    return dockerfile_error (df, in->line, err, "%s: JSON arrays must contain only strings", kw);
  if (jr == JSON_YES)
    {
      in->json = true;
      if (in->kind == DF_SHELL && in->args[0] == NULL)
        return dockerfile_error (df, in->line, err, "SHELL requires at least one argument");
      return 0;
    }
  if (in->kind == DF_SHELL)
    return dockerfile_error (df, in->line, err, "SHELL requires the arguments to be in JSON form");
  if (looks_like_bad_json (rest))
    return dockerfile_error (df, in->line, err,
                             "%s: bad JSON form (JSON arrays need double-quoted strings separated by commas)", kw);
  if (*rest == '\0')
    return dockerfile_error (df, in->line, err, "%s requires at least one argument", kw);
  in->args = xcalloc (2, sizeof (char *));
  in->args[0] = xstrdup (rest);
  return 0;
}

/* HEALTHCHECK NONE | HEALTHCHECK CMD command */
static int
parse_healthcheck_args (parser *p, dockerfile_instr *in, kiln_error **err)
{
  dockerfile *df = p->df;
  const char *s = dockerfile_skip_ws (in->rest);
  const char *e = s;
  while (*e && !dockerfile_ws (*e))
    e++;
  if (e == s)
    return dockerfile_error (df, in->line, err, "HEALTHCHECK requires an argument (CMD or NONE)");
  in->health_type = xstrndup (s, e - s);
  for (char *c = in->health_type; *c; c++)
    *c = (char) toupper ((unsigned char) *c);
  const char *cmd = dockerfile_skip_ws (e);
  if (strcmp (in->health_type, "NONE") == 0)
    {
      if (*cmd != '\0')
        return dockerfile_error (df, in->line, err, "HEALTHCHECK NONE takes no arguments");
      if (in->n_flags > 0)
        return dockerfile_error (df, in->line, err, "HEALTHCHECK NONE takes no flags");
      in->args = xcalloc (1, sizeof (char *));
      return 0;
    }
  if (strcmp (in->health_type, "CMD") != 0)
    return dockerfile_error (df, in->line, err, "unknown type '%s' in HEALTHCHECK (try CMD)", in->health_type);
  json_result jr = parse_json_array (cmd, &in->args);
  if (jr == JSON_NOT_STRINGS)
    return dockerfile_error (df, in->line, err, "HEALTHCHECK: JSON arrays must contain only strings");
  if (jr == JSON_YES)
    {
      in->json = true;
      if (in->args[0] == NULL)
        return dockerfile_error (df, in->line, err, "missing command after HEALTHCHECK CMD");
      return 0;
    }
  if (looks_like_bad_json (cmd))
    return dockerfile_error (df, in->line, err,
                             "HEALTHCHECK: bad JSON form (JSON arrays need double-quoted strings separated by commas)");
  if (*cmd == '\0')
    return dockerfile_error (df, in->line, err, "missing command after HEALTHCHECK CMD");
  in->args = xcalloc (2, sizeof (char *));
  in->args[0] = dockerfile_trim_dup (cmd);
  return 0;
}

/* ONBUILD instruction: the trigger is parsed now, into in->trigger. */
static int
parse_onbuild_args (parser *p, dockerfile_instr *in, bool in_onbuild, kiln_error **err)
{
  dockerfile *df = p->df;
  if (in_onbuild)
    return dockerfile_error (df, in->line, err, "chaining ONBUILD via 'ONBUILD ONBUILD' isn't allowed");
  if (*in->rest == '\0')
    return dockerfile_error (df, in->line, err, "ONBUILD requires at least one argument");
  const char *s = dockerfile_skip_ws (in->rest);
  const char *e = s;
  while (*e && !dockerfile_ws (*e))
    e++;
  autofree char *trig = xstrndup (s, e - s);
  if (strcasecmp (trig, "ONBUILD") == 0)
    return dockerfile_error (df, in->line, err, "chaining ONBUILD via 'ONBUILD ONBUILD' isn't allowed");
  if (strcasecmp (trig, "FROM") == 0 || strcasecmp (trig, "MAINTAINER") == 0)
    return dockerfile_error (df, in->line, err, "%s isn't allowed as an ONBUILD trigger", trig);
  in->args = xcalloc (2, sizeof (char *));
  in->args[0] = xstrdup (in->rest);
  in->trigger = xzalloc (sizeof *in->trigger);
  return parse_line (p, in->rest, in->line, true, in->trigger, err);
}

/* Arguments per instruction (BuildKit's dispatch table plus the checks of
 * its instructions package). */
static int
parse_args (parser *p, dockerfile_instr *in, bool in_onbuild, kiln_error **err)
{
  dockerfile *df = p->df;
  const char *kw = kind_names[in->kind];
  const char *rest = in->rest;
  switch (in->kind)
    {
    case DF_FROM:
      return parse_from_args (p, in, err);
    case DF_EXPOSE:
      in->args = split_ws (rest);
      if (in->args[0] == NULL)
        return dockerfile_error (df, in->line, err, "EXPOSE requires at least one argument");
      return 0;
    case DF_ADD:
    case DF_COPY:
    case DF_VOLUME:
      return parse_path_args (p, in, err);
    case DF_RUN:
    case DF_CMD:
    case DF_ENTRYPOINT:
    case DF_SHELL:
      return parse_command_args (p, in, err);
    case DF_USER:
    case DF_WORKDIR:
    case DF_STOPSIGNAL:
    case DF_MAINTAINER:
      if (*rest == '\0')
        return dockerfile_error (df, in->line, err, "%s requires exactly one argument", kw);
      in->args = xcalloc (2, sizeof (char *));
      in->args[0] = xstrdup (rest);
      return 0;
    case DF_ENV:
    case DF_LABEL:
    case DF_ARG:
      return parse_kvs (p, in, err);
    case DF_HEALTHCHECK:
      return parse_healthcheck_args (p, in, err);
    case DF_ONBUILD:
      return parse_onbuild_args (p, in, in_onbuild, err);
    case DF_KIND_COUNT:
      break;
    }
  return dockerfile_error (df, in->line, err, "internal: unhandled instruction");
}

static int
parse_line (parser *p, const char *line, int lineno, bool in_onbuild, dockerfile_instr *in, kiln_error **err)
{
  const char *s = dockerfile_skip_ws (line);
  const char *e = s;
  while (*e && !dockerfile_ws (*e))
    e++;
  in->line = in->end_line = lineno;
  in->keyword = xstrndup (s, e - s);
  int kind = -1;
  for (int k = 0; k < DF_KIND_COUNT; k++)
    if (strcasecmp (in->keyword, kind_names[k]) == 0)
      kind = k;
  if (kind < 0)
    {
      const char *sug = suggest (in->keyword, kind_names, DF_KIND_COUNT);
      if (sug)
        return dockerfile_error (p->df, lineno, err, "unknown instruction '%s' (did you mean '%s'?)", in->keyword, sug);
      return dockerfile_error (p->df, lineno, err, "unknown instruction '%s'", in->keyword);
    }
  in->kind = (dockerfile_kind) kind;
  autostrv char **flags = NULL;
  const char *rest = extract_flags (e, &flags);
  in->rest = dockerfile_trim_dup (rest);
  if (parse_flags (p, in, flags, err) < 0)
    return -1;
  return parse_args (p, in, in_onbuild, err);
}

/* The parser loop (dockerfile.c) calls this for each logical line. */
int
dockerfile_parse_line (dockerfile *df, const char *line, int lineno, dockerfile_instr *in, kiln_error **err)
{
  parser p = { .df = df };
  return parse_line (&p, line, lineno, false, in, err);
}
