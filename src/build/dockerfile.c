/* dockerfile.c - Dockerfile parser; see dockerfile.h. Hand-written so that
 * every rule of BuildKit's parser (continuations, flags, heredocs, legacy
 * forms) is explicit and each error can point at its line. This file reads
 * the lines (directives, continuations, heredocs); dockerfile_args.c parses
 * one instruction line (see dockerfile_internal.h). */
#include "build/dockerfile.h"
#include "build/dockerfile_internal.h"
#include "build/context.h"
#include "build/expand.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- errors ---- */

int
dockerfile_error (const dockerfile *df, int line, kiln_error **err, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  autofree char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  if (line >= 1 && (size_t) line <= df->n_lines)
    return kiln_error_make (err, 0, "%s:%d: %s\n  %5d | %s", df->path, line, msg, line, df->lines[line - 1]);
  return kiln_error_make (err, 0, "%s:%d: %s", df->path, line, msg);
}

void
dockerfile_add_warning (dockerfile *df, int line, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  autofree char *msg = xvasprintf (fmt, ap);
  va_end (ap);
  autofree char *w = xasprintf ("%s:%d: %s", df->path, line, msg);
  strv_push (&df->warnings, w);
}

static void
instr_free (dockerfile_instr *in)
{
  if (in == NULL)
    return;
  free (in->keyword);
  free (in->original);
  for (size_t i = 0; i < in->n_flags; i++)
    {
      free (in->flags[i].name);
      free (in->flags[i].value);
    }
  free (in->flags);
  free (in->rest);
  strv_free (in->args);
  for (size_t i = 0; i < in->n_kvs; i++)
    {
      free (in->kvs[i].key);
      free (in->kvs[i].value);
    }
  free (in->kvs);
  for (size_t i = 0; i < in->n_heredocs; i++)
    {
      free (in->heredocs[i].name);
      free (in->heredocs[i].body);
    }
  free (in->heredocs);
  free (in->health_type);
  if (in->trigger)
    {
      instr_free (in->trigger);
      free (in->trigger);
    }
}

void
dockerfile_free (dockerfile *df)
{
  if (df == NULL)
    return;
  for (size_t i = 0; i < df->n_instrs; i++)
    instr_free (&df->instrs[i]);
  free (df->instrs);
  free (df->path);
  free (df->syntax);
  free (df->check);
  strv_free (df->lines);
  strv_free (df->warnings);
  free (df);
}

const char *
dockerfile_instr_flag (const dockerfile_instr *in, const char *name, bool *present)
{
  const char *v = NULL;
  bool found = false;
  for (size_t i = 0; i < in->n_flags; i++)
    if (strcmp (in->flags[i].name, name) == 0)
      {
        v = in->flags[i].value;
        found = true;
      }
  if (present)
    *present = found;
  return v;
}

/* ---- small string helpers ---- */

bool
dockerfile_ws (char c)
{
  return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\n';
}

const char *
dockerfile_skip_ws (const char *s)
{
  while (*s && dockerfile_ws (*s))
    s++;
  return s;
}

char *
dockerfile_trim_dup (const char *s)
{
  s = dockerfile_skip_ws (s);
  size_t n = strlen (s);
  while (n > 0 && dockerfile_ws (s[n - 1]))
    n--;
  return xstrndup (s, n);
}

static bool
is_comment (const char *line)
{
  return *dockerfile_skip_ws (line) == '#';
}

/* ---- heredocs ---- */

static expand_lookup_result
lookup_unknown (void *ctx, const char *name, size_t n, const char **value)
{
  (void) ctx;
  (void) name;
  (void) n;
  (void) value;
  return EXPAND_UNKNOWN;
}

static size_t
count_quotes (const char *s)
{
  size_t n = 0;
  for (; *s; s++)
    n += *s == '\'' || *s == '"';
  return n;
}

/* A word "<<EOF", "<<-EOF", "3<<'EOF'"... (^(\d*)<<(-?)([^<]*)$). Returns 1
 * and fills *h for a heredoc word, 0 otherwise. */
static int
heredoc_from_word (const char *word, dockerfile_heredoc *h, kiln_error **err)
{
  const char *p = word;
  while (*p >= '0' && *p <= '9')
    p++;
  if (p[0] != '<' || p[1] != '<')
    return 0;
  p += 2;
  bool chomp = false;
  if (*p == '-')
    {
      chomp = true;
      p++;
    }
  if (*p == '\0' || strchr (p, '<'))
    return 0;
  expand_opts o = { .escape = '\\', .lookup = lookup_unknown };
  autostrv char **w = NULL;
  if (expand_words (&o, p, &w, err) < 0)
    return -1;
  if (strv_len (w) != 1)
    return 0;
  o.raw_quotes = true;
  autostrv char **raw = NULL;
  if (expand_words (&o, p, &raw, err) < 0)
    return -1;
  if (strv_len (raw) != 1)
    return kiln_error_make (err, 0, "internal lexing of heredoc produced inconsistent results: %s", p);
  h->name = xstrdup (w[0]);
  h->expand = count_quotes (w[0]) == count_quotes (raw[0]);
  h->chomp = chomp;
  h->body = NULL;
  return 1;
}

static int
heredocs_from_line (const char *line, dockerfile_heredoc **out, size_t *n_out, kiln_error **err)
{
  expand_opts o = { .escape = '\\', .lookup = lookup_unknown, .raw_quotes = true, .raw_escapes = true };
  autostrv char **words = NULL;
  kiln_error *e = NULL;
  /* BuildKit ignores lexing errors here; an unbalanced quote is reported
   * when the arguments are processed. */
  if (expand_words (&o, line, &words, &e) < 0)
    {
      kiln_error_free (e);
      return 0;
    }
  for (size_t i = 0; words[i]; i++)
    {
      dockerfile_heredoc h;
      int r = heredoc_from_word (words[i], &h, err);
      if (r < 0)
        return -1;
      if (r == 0)
        continue;
      *out = xreallocarray (*out, *n_out + 1, sizeof **out);
      (*out)[(*n_out)++] = h;
    }
  return 0;
}

/* ---- directives and the line loop ---- */

static void
split_lines (dockerfile *df, const char *data, size_t len)
{
  df->lines = xcalloc (1, sizeof (char *));
  size_t start = 0;
  for (size_t i = 0; i <= len; i++)
    {
      if (i < len && data[i] != '\n')
        continue;
      if (i == len && start == len)
        break;
      size_t end = i;
      while (end > start && data[end - 1] == '\r')
        end--;
      autofree char *l = xstrndup (data + start, end - start);
      /* A NUL byte cannot be part of a Dockerfile line; treat it as the end. */
      strv_push (&df->lines, l);
      df->n_lines++;
      start = i + 1;
    }
  if (df->n_lines > 0 && (unsigned char) df->lines[0][0] == 0xEF && (unsigned char) df->lines[0][1] == 0xBB
      && (unsigned char) df->lines[0][2] == 0xBF)
    memmove (df->lines[0], df->lines[0] + 3, strlen (df->lines[0] + 3) + 1);
}

/* Parser directives: "# key=value" lines at the very top. Returns the index
 * of the first line after them. */
static int
parse_directives (dockerfile *df, kiln_error **err)
{
  size_t i;
  bool seen_escape = false;
  for (i = 0; i < df->n_lines; i++)
    {
      const char *l = df->lines[i];
      if (*l != '#')
        break;
      const char *k = dockerfile_skip_ws (l + 1);
      const char *ke = k;
      while (isalnum ((unsigned char) *ke))
        ke++;
      if (ke == k || !isalpha ((unsigned char) *k))
        break;
      const char *eq = dockerfile_skip_ws (ke);
      if (*eq != '=')
        break;
      autofree char *key = xstrndup (k, ke - k);
      autofree char *val = dockerfile_trim_dup (eq + 1);
      if (*val == '\0')
        break;
      for (char *c = key; *c; c++)
        *c = (char) tolower ((unsigned char) *c);
      if (strcmp (key, "escape") == 0)
        {
          if (seen_escape)
            return dockerfile_error (df, (int) i + 1, err, "only one escape parser directive can be used");
          seen_escape = true;
          if (strcmp (val, "\\") != 0 && strcmp (val, "`") != 0)
            return dockerfile_error (df, (int) i + 1, err, "invalid escape token '%s' does not match ` or \\", val);
          df->escape = val[0];
        }
      else if (strcmp (key, "syntax") == 0)
        {
          if (df->syntax)
            return dockerfile_error (df, (int) i + 1, err, "only one syntax parser directive can be used");
          df->syntax = steal_pointer (&val);
        }
      else if (strcmp (key, "check") == 0)
        {
          if (df->check)
            return dockerfile_error (df, (int) i + 1, err, "only one check parser directive can be used");
          df->check = steal_pointer (&val);
        }
      else
        break; /* unknown directive: a comment, and the end of directives */
    }
  return (int) i;
}

/* trimContinuationCharacter: ESC [ \t]* at end of line. */
static bool
strip_continuation (strbuf *sb, char esc)
{
  size_t n = sb->len;
  while (n > 0 && (sb->buf[n - 1] == ' ' || sb->buf[n - 1] == '\t'))
    n--;
  if (n > 0 && sb->buf[n - 1] == esc)
    {
      strbuf_setlen (sb, n - 1);
      return true;
    }
  return false;
}

static void
strip_leading_tabs_lines (char *body)
{
  char *w = body;
  bool bol = true;
  for (char *r = body; *r; r++)
    {
      if (bol && *r == '\t')
        continue;
      bol = *r == '\n';
      *w++ = *r;
    }
  *w = '\0';
}

static bool
can_contain_heredoc (const dockerfile_instr *in)
{
  return (in->kind == DF_RUN || in->kind == DF_COPY || in->kind == DF_ADD) && !in->json;
}

int
dockerfile_parse (const char *name, const char *data, size_t len, dockerfile **out, kiln_error **err)
{
  dockerfile *df = xzalloc (sizeof *df);
  df->path = xstrdup (name);
  df->escape = '\\';
  split_lines (df, data, len);
  int ret = parse_directives (df, err);
  if (ret < 0)
    goto fail;
  for (size_t i = (size_t) ret; i < df->n_lines;)
    {
      const char *l = df->lines[i];
      int start = (int) i + 1;
      i++;
      const char *t = dockerfile_skip_ws (l);
      if (*t == '#' || *t == '\0')
        continue;
      autostrbuf strbuf line = STRBUF_INIT;
      strbuf_adds (&line, t);
      bool cont = strip_continuation (&line, df->escape);
      if (cont && *dockerfile_skip_ws (line.buf) == '\0' && line.len == 0)
        continue;
      bool empty_cont = false;
      while (cont && i < df->n_lines)
        {
          const char *c = df->lines[i++];
          if (is_comment (c))
            continue;
          if (*dockerfile_skip_ws (c) == '\0')
            {
              empty_cont = true;
              continue;
            }
          size_t before = line.len;
          strbuf_adds (&line, c);
          autostrbuf strbuf tail = STRBUF_INIT;
          strbuf_adds (&tail, line.buf + before);
          cont = strip_continuation (&tail, df->escape);
          strbuf_setlen (&line, before);
          strbuf_add (&line, tail.buf, tail.len);
        }
      if (*dockerfile_skip_ws (line.buf) == '\0')
        continue;
      if (empty_cont)
        dockerfile_add_warning (df, start, "empty continuation line");
      df->instrs = xreallocarray (df->instrs, df->n_instrs + 1, sizeof *df->instrs);
      dockerfile_instr *in = &df->instrs[df->n_instrs++];
      memset (in, 0, sizeof *in);
      if (dockerfile_parse_line (df, line.buf, start, in, err) < 0)
        goto fail;
      if (can_contain_heredoc (in) && strstr (line.buf, "<<"))
        {
          if (heredocs_from_line (line.buf, &in->heredocs, &in->n_heredocs, err) < 0)
            {
              kiln_error_wrap (err, "%s:%d", df->path, start);
              goto fail;
            }
          for (size_t h = 0; h < in->n_heredocs; h++)
            {
              dockerfile_heredoc *hd = &in->heredocs[h];
              autostrbuf strbuf body = STRBUF_INIT;
              bool done = false;
              while (i < df->n_lines)
                {
                  const char *b = df->lines[i++];
                  const char *cand = b;
                  if (hd->chomp)
                    while (*cand == '\t')
                      cand++;
                  if (strcmp (cand, hd->name) == 0)
                    {
                      done = true;
                      break;
                    }
                  strbuf_adds (&body, b);
                  strbuf_addch (&body, '\n');
                }
              if (!done)
                {
                  dockerfile_error (df, start, err, "unterminated heredoc '%s' (no line '%s' before the end of the file)",
                                    hd->name, hd->name);
                  goto fail;
                }
              hd->body = strbuf_detach (&body, NULL);
              if (hd->chomp)
                strip_leading_tabs_lines (hd->body);
            }
        }
      in->end_line = (int) i;
      autostrbuf strbuf orig = STRBUF_INIT;
      for (int k = start; k <= in->end_line && (size_t) k <= df->n_lines; k++)
        {
          if (k > start)
            strbuf_addch (&orig, '\n');
          strbuf_adds (&orig, df->lines[k - 1]);
        }
      in->original = strbuf_detach (&orig, NULL);
    }
  *out = df;
  return 0;
fail:
  dockerfile_free (df);
  return -1;
}

int
dockerfile_parse_file (const char *path, const char *context_dir, dockerfile **out, kiln_error **err)
{
  autoclose int fd = context_open_file (context_dir, path, O_RDONLY, err);
  if (fd < 0)
    return -1;
  struct stat st;
  if (fstat (fd, &st) < 0)
    return kiln_error_make (err, errno, "stat '%s'", path);
  if (!S_ISREG (st.st_mode))
    return kiln_error_make (err, 0, "'%s' is not a regular file", path);
  autofree char *data = NULL;
  size_t len;
  autoerror kiln_error *rerr = NULL;
  if (fs_read_fd (fd, 16 * 1024 * 1024, &data, &len, &rerr) < 0)
    return rerr->status == EFBIG ? kiln_error_make (err, 0, "'%s' is larger than 16 MiB", path)
                                 : kiln_error_make (err, rerr->status, "read '%s'", path);
  return dockerfile_parse (path, data, len, out, err);
}
