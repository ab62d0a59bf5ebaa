/* expand.c - Dockerfile shell-word processing; see expand.h.
 *
 * Follows BuildKit's frontend/dockerfile/shell lexer so that a Dockerfile
 * means the same thing under kiln as under `docker build`. */
#include "build/expand.h"
#include "util/alloc.h"
#include "util/strbuf.h"

#include <stdlib.h>
#include <string.h>

typedef struct words
{
  strbuf word;
  bool in_word;
  char **v;
} words;

typedef struct lexer
{
  const expand_opts *o;
  const char *s;
  size_t len;
  size_t pos;
  bool raw_escapes;
} lexer;

#define LEX_EOF (-1)

static int
peek (const lexer *lx)
{
  return lx->pos < lx->len ? (unsigned char) lx->s[lx->pos] : LEX_EOF;
}

static int
next (lexer *lx)
{
  return lx->pos < lx->len ? (unsigned char) lx->s[lx->pos++] : LEX_EOF;
}

static bool
is_space (int c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static void
words_push (words *w)
{
  strv_push (&w->v, w->word.buf);
  strbuf_reset (&w->word);
  w->in_word = false;
}

static void
words_add_char (words *w, int c)
{
  if (w == NULL)
    return;
  if (is_space (c))
    {
      if (w->in_word && w->word.len > 0)
        words_push (w);
      return;
    }
  strbuf_addch (&w->word, c);
  w->in_word = true;
}

static void
words_add_raw_char (words *w, int c)
{
  if (w == NULL)
    return;
  strbuf_addch (&w->word, c);
  w->in_word = true;
}

static void
words_add_string (words *w, const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    words_add_char (w, (unsigned char) s[i]);
}

static void
words_add_raw_string (words *w, const char *s, size_t n)
{
  if (w == NULL)
    return;
  strbuf_add (&w->word, s, n);
  w->in_word = true;
}

static int process_stop_on (lexer *lx, int stop, bool raw_escapes, strbuf *out, words *w,
                            kiln_error **err);

static int
process_single_quote (lexer *lx, strbuf *out, kiln_error **err)
{
  int c = next (lx);
  if (lx->o->raw_quotes)
    strbuf_addch (out, c);
  for (;;)
    {
      c = next (lx);
      if (c == LEX_EOF)
        return kiln_error_make (err, 0, "unexpected end of statement while looking for matching single-quote");
      if (c == '\'')
        {
          if (lx->o->raw_quotes)
            strbuf_addch (out, c);
          return 0;
        }
      strbuf_addch (out, c);
    }
}

static int process_dollar (lexer *lx, strbuf *out, kiln_error **err);

static int
process_double_quote (lexer *lx, strbuf *out, kiln_error **err)
{
  int c = next (lx);
  if (lx->o->raw_quotes)
    strbuf_addch (out, c);
  for (;;)
    {
      int p = peek (lx);
      if (p == LEX_EOF)
        return kiln_error_make (err, 0, "unexpected end of statement while looking for matching double-quote");
      if (p == '"')
        {
          c = next (lx);
          if (lx->o->raw_quotes)
            strbuf_addch (out, c);
          return 0;
        }
      if (p == '$')
        {
          if (process_dollar (lx, out, err) < 0)
            return -1;
          continue;
        }
      c = next (lx);
      if (c == lx->o->escape)
        {
          if (lx->raw_escapes)
            strbuf_addch (out, c);
          int q = peek (lx);
          if (q == LEX_EOF)
            continue; /* an escape at the very end is dropped */
          if (q == '"' || q == '$' || q == lx->o->escape)
            c = next (lx);
        }
      strbuf_addch (out, c);
    }
}

static bool
is_name_char (int c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static bool
is_special_param (int c)
{
  return c == '@' || c == '*' || c == '#' || c == '?' || c == '-' || c == '$' || c == '!' || c == '0';
}

/* Read a name: digits-only positional, one special parameter, or
 * [A-Za-z0-9_]+. Returns its start; *n its length. */
static const char *
process_name (lexer *lx, size_t *n)
{
  size_t start = lx->pos;
  int c = peek (lx);
  if (c >= '0' && c <= '9')
    {
      while (peek (lx) >= '0' && peek (lx) <= '9')
        lx->pos++;
    }
  else if (c != LEX_EOF && is_special_param (c))
    lx->pos++;
  else
    while (peek (lx) != LEX_EOF && is_name_char (peek (lx)))
      lx->pos++;
  *n = lx->pos - start;
  return lx->s + start;
}

static expand_lookup_result
lookup (lexer *lx, const char *name, size_t n, const char **value)
{
  *value = "";
  if (lx->o->lookup == NULL)
    return EXPAND_UNSET;
  expand_lookup_result r = lx->o->lookup (lx->o->ctx, name, n, value);
  if (r != EXPAND_SET || *value == NULL)
    *value = "";
  return r;
}

/* ---- patterns of the # % / modifiers ---- */

typedef enum
{
  TOK_LIT,
  TOK_ANY,
  TOK_STAR,
} tok_kind;

typedef struct tok
{
  tok_kind kind;
  char lit[4];
  unsigned char lit_len;
} tok;

static size_t
utf8_len (const char *s, size_t n)
{
  unsigned char c = (unsigned char) s[0];
  size_t want = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (want > n)
    return 1;
  for (size_t i = 1; i < want; i++)
    if (((unsigned char) s[i] >> 6) != 2)
      return 1;
  return want;
}

/* Compile a pattern; escapes: \* \? \\ are literals, \} and \/ drop the
 * backslash (they were needed to write the character inside ${}). */
static int
compile_pattern (const char *p, size_t n, tok **out, size_t *n_out, kiln_error **err)
{
  autofree tok *t = xcalloc (n + 1, sizeof *t);
  size_t k = 0;
  for (size_t i = 0; i < n;)
    {
      if (p[i] == '*')
        {
          t[k++].kind = TOK_STAR;
          i++;
          continue;
        }
      if (p[i] == '?')
        {
          t[k++].kind = TOK_ANY;
          i++;
          continue;
        }
      if (p[i] == '\\')
        {
          if (i + 1 < n && (p[i + 1] == '}' || p[i + 1] == '/'))
            {
              i++;
              continue;
            }
          if (i + 1 >= n || (p[i + 1] != '*' && p[i + 1] != '?' && p[i + 1] != '\\'))
            return kiln_error_make (err, 0, "invalid pattern (%.*s) in substitution: invalid escape '\\%.*s'",
                                    (int) n, p, i + 1 < n ? 1 : 0, p + i + 1);
          i++;
        }
      size_t l = utf8_len (p + i, n - i);
      t[k].kind = TOK_LIT;
      memcpy (t[k].lit, p + i, l);
      t[k].lit_len = (unsigned char) l;
      k++;
      i += l;
    }
  *out = steal_pointer (&t);
  *n_out = k;
  return 0;
}

static void
closure (const tok *t, size_t nt, bool *st)
{
  for (size_t k = 0; k < nt; k++)
    if (st[k] && t[k].kind == TOK_STAR)
      st[k + 1] = true;
}

/* Run the pattern from s[0]; for every end position e (0..n) with a full
 * match of s[0..e), set ends[e]. Returns whether any end matched. */
static bool
match_ends (const tok *t, size_t nt, const char *s, size_t n, bool *ends)
{
  autofree bool *cur = xcalloc (nt + 1, sizeof (bool));
  autofree bool *nxt = xcalloc (nt + 1, sizeof (bool));
  bool any = false;
  cur[0] = true;
  closure (t, nt, cur);
  size_t i = 0;
  for (;;)
    {
      if (cur[nt])
        {
          ends[i] = true;
          any = true;
        }
      if (i >= n)
        break;
      size_t l = utf8_len (s + i, n - i);
      memset (nxt, 0, (nt + 1) * sizeof (bool));
      bool alive = false;
      for (size_t k = 0; k < nt; k++)
        {
          if (!cur[k])
            continue;
          switch (t[k].kind)
            {
            case TOK_STAR:
              if (s[i] != '\n')
                nxt[k] = alive = true;
              break;
            case TOK_ANY:
              if (s[i] != '\n')
                nxt[k + 1] = alive = true;
              break;
            case TOK_LIT:
              if (t[k].lit_len == l && memcmp (t[k].lit, s + i, l) == 0)
                nxt[k + 1] = alive = true;
              break;
            }
        }
      if (!alive)
        break;
      closure (t, nt, nxt);
      bool *tmp = cur;
      cur = nxt;
      nxt = tmp;
      i += l;
    }
  return any;
}

bool
expand_glob_match (const char *pat, size_t plen, const char *s, size_t slen)
{
  autofree tok *t = NULL;
  size_t nt;
  kiln_error *e = NULL;
  if (compile_pattern (pat, plen, &t, &nt, &e) < 0)
    {
      kiln_error_free (e);
      return false;
    }
  autofree bool *ends = xcalloc (slen + 1, sizeof (bool));
  match_ends (t, nt, s, slen, ends);
  return ends[slen];
}

static bool
char_boundary (const char *s, size_t n, size_t i)
{
  /* Start positions are walked rune by rune by the callers; this accepts any
   * byte that is not a UTF-8 continuation byte. */
  return i >= n || ((unsigned char) s[i] >> 6) != 2;
}

/* ${v#pat} ${v##pat} */
static int
trim_prefix (const char *pat, size_t plen, const char *v, bool greedy, strbuf *out, kiln_error **err)
{
  autofree tok *t = NULL;
  size_t nt;
  if (compile_pattern (pat, plen, &t, &nt, err) < 0)
    return -1;
  size_t n = strlen (v);
  autofree bool *ends = xcalloc (n + 1, sizeof (bool));
  size_t cut = 0;
  if (match_ends (t, nt, v, n, ends))
    {
      if (greedy)
        {
          for (size_t e = n + 1; e-- > 0;)
            if (ends[e])
              {
                cut = e;
                break;
              }
        }
      else
        for (size_t e = 0; e <= n; e++)
          if (ends[e])
            {
              cut = e;
              break;
            }
    }
  strbuf_adds (out, v + cut);
  return 0;
}

/* ${v%pat} ${v%%pat}: shortest (largest start) or longest suffix. */
static int
trim_suffix (const char *pat, size_t plen, const char *v, bool greedy, strbuf *out, kiln_error **err)
{
  autofree tok *t = NULL;
  size_t nt;
  if (compile_pattern (pat, plen, &t, &nt, err) < 0)
    return -1;
  size_t n = strlen (v);
  autofree bool *ends = xcalloc (n + 1, sizeof (bool));
  size_t keep = n;
  if (greedy)
    {
      for (size_t i = 0; i <= n; i++)
        {
          if (!char_boundary (v, n, i))
            continue;
          memset (ends, 0, n + 1);
          match_ends (t, nt, v + i, n - i, ends);
          if (ends[n - i])
            {
              keep = i;
              break;
            }
        }
    }
  else
    for (size_t i = n + 1; i-- > 0;)
      {
        if (!char_boundary (v, n, i))
          continue;
        memset (ends, 0, n + 1);
        match_ends (t, nt, v + i, n - i, ends);
        if (ends[n - i])
          {
            keep = i;
            break;
          }
      }
  strbuf_add (out, v, keep);
  return 0;
}

/* ${v/pat/repl} and ${v//pat/repl}: leftmost match, longest from there;
 * for "all", Go's ReplaceAll rules for empty matches. */
static int
replace (const char *pat, size_t plen, const char *v, const char *repl, bool all, strbuf *out,
         kiln_error **err)
{
  autofree tok *t = NULL;
  size_t nt;
  if (compile_pattern (pat, plen, &t, &nt, err) < 0)
    return -1;
  size_t n = strlen (v);
  autofree bool *ends = xcalloc (n + 1, sizeof (bool));
  size_t i = 0;
  bool replaced = false;
  long prev_end = -1;
  while (i <= n)
    {
      memset (ends, 0, n + 1);
      long end = -1;
      if ((!replaced || all) && match_ends (t, nt, v + i, n - i, ends))
        for (size_t e = n - i + 1; e-- > 0;)
          if (ends[e])
            {
              end = (long) (i + e);
              break;
            }
      if (end >= 0 && !(end == (long) i && (long) i == prev_end))
        {
          strbuf_adds (out, repl);
          replaced = true;
          prev_end = end;
          if (end > (long) i)
            {
              i = (size_t) end;
              continue;
            }
        }
      if (i >= n)
        break;
      size_t l = utf8_len (v + i, n - i);
      strbuf_add (out, v + i, l);
      i += l;
      if (replaced && !all)
        {
          strbuf_adds (out, v + i);
          break;
        }
    }
  return 0;
}

/* $name, after the '$': the value, or the text as written when it is
 * unknown; a '$' not followed by a name stays a '$'. */
static int
process_plain_dollar (lexer *lx, strbuf *out)
{
  size_t n;
  const char *name = process_name (lx, &n);
  if (n == 0)
    {
      strbuf_addch (out, '$');
      return 0;
    }
  const char *value;
  if (lookup (lx, name, n, &value) == EXPAND_UNKNOWN)
    {
      strbuf_addch (out, '$');
      strbuf_add (out, name, n);
      return 0;
    }
  strbuf_adds (out, value);
  return 0;
}

/* Read a modifier's word up to STOP; running out of input is reported as
 * MISSING. */
static int
process_modifier_word (lexer *lx, int stop, bool raw_escapes, strbuf *word, const char *missing, kiln_error **err)
{
  if (process_stop_on (lx, stop, raw_escapes, word, NULL, err) < 0)
    {
      if (peek (lx) == LEX_EOF)
        {
          kiln_error_clear (err);
          return kiln_error_make (err, 0, "%s", missing);
        }
      return -1;
    }
  return 0;
}

/* Apply modifier C of ${NAME<chs>WORD} to the VALUE of a known variable (SET
 * false: unset); NULL_IS_UNSET for the ':' forms. */
static int
apply_modifier (int c, bool null_is_unset, const char *name, size_t n, bool set, const char *value,
                const strbuf *word, const char *chs, strbuf *out, kiln_error **err)
{
  switch (c)
    {
    case '-':
      strbuf_adds (out, (!set || (null_is_unset && *value == '\0')) ? word->buf : value);
      return 0;
    case '+':
      if (!(!set || (null_is_unset && *value == '\0')))
        strbuf_adds (out, word->buf);
      return 0;
    case '?':
      if (!set)
        return kiln_error_make (err, 0, "%.*s: %s", (int) n, name,
                                word->len ? word->buf : "is not allowed to be unset");
      if (null_is_unset && *value == '\0')
        return kiln_error_make (err, 0, "%.*s: %s", (int) n, name,
                                word->len ? word->buf : "is not allowed to be empty");
      strbuf_adds (out, value);
      return 0;
    case '#':
    case '%':
      {
        bool greedy = word->len > 0 && word->buf[0] == c;
        const char *p = word->buf + (greedy ? 1 : 0);
        size_t pl = word->len - (greedy ? 1 : 0);
        if (c == '%')
          return trim_suffix (p, pl, value, greedy, out, err);
        return trim_prefix (p, pl, value, greedy, out, err);
      }
    default:
      return kiln_error_make (err, 0, "unsupported modifier (%s) in substitution", chs);
    }
}

/* ${NAME:-w} ${NAME-w} ${NAME:+w} ${NAME+w} ${NAME:?w} ${NAME?w} ${NAME#p}
 * ${NAME##p} ${NAME%p} ${NAME%%p}, after the modifier character C (already
 * in CHS). */
static int
process_modifier (lexer *lx, const char *name, size_t n, int c, strbuf *chs, strbuf *out, kiln_error **err)
{
  bool null_is_unset = false;
  if (c == ':')
    {
      null_is_unset = true;
      c = next (lx);
      if (c != LEX_EOF)
        strbuf_addch (chs, c);
    }
  autostrbuf strbuf word = STRBUF_INIT;
  if (process_modifier_word (lx, '}', c == '#' || c == '%', &word, "syntax error: missing '}'", err) < 0)
    return -1;
  const char *value;
  expand_lookup_result r = lookup (lx, name, n, &value);
  if (r == EXPAND_UNKNOWN)
    {
      strbuf_addf (out, "${%.*s%s%s}", (int) n, name, chs->buf, word.buf);
      return 0;
    }
  return apply_modifier (c, null_is_unset, name, n, r == EXPAND_SET, value, &word, chs->buf, out, err);
}

/* ${NAME/pat/repl} ${NAME//pat/repl}, after the first '/'. */
static int
process_replace (lexer *lx, const char *name, size_t n, strbuf *out, kiln_error **err)
{
  bool all = peek (lx) == '/';
  if (all)
    next (lx);
  autostrbuf strbuf pat = STRBUF_INIT;
  autostrbuf strbuf repl = STRBUF_INIT;
  if (process_modifier_word (lx, '/', true, &pat, "syntax error: missing '/' in ${}", err) < 0
      || process_modifier_word (lx, '}', true, &repl, "syntax error: missing '}'", err) < 0)
    return -1;
  const char *value;
  if (lookup (lx, name, n, &value) == EXPAND_UNKNOWN)
    {
      strbuf_addf (out, "${%.*s/%s/%s}", (int) n, name, pat.buf, repl.buf);
      return 0;
    }
  return replace (pat.buf, pat.len, value, repl.buf, all, out, err);
}

static int
process_dollar (lexer *lx, strbuf *out, kiln_error **err)
{
  next (lx); /* '$' */
  if (peek (lx) != '{')
    return process_plain_dollar (lx, out);
  next (lx); /* '{' */
  int c = peek (lx);
  if (c == LEX_EOF)
    return kiln_error_make (err, 0, "syntax error: missing '}'");
  if (c == '{' || c == '}' || c == ':')
    return kiln_error_make (err, 0, "syntax error: bad substitution");
  size_t n;
  const char *name = process_name (lx, &n);
  c = next (lx);
  if (c == LEX_EOF)
    return kiln_error_make (err, 0, "syntax error: missing '}'");
  autostrbuf strbuf chs = STRBUF_INIT;
  strbuf_addch (&chs, c);
  switch (c)
    {
    case '}':
      {
        const char *value;
        if (lookup (lx, name, n, &value) == EXPAND_UNKNOWN)
          strbuf_addf (out, "${%.*s}", (int) n, name);
        else
          strbuf_adds (out, value);
        return 0;
      }
    case ':':
    case '+':
    case '-':
    case '?':
    case '#':
    case '%':
      return process_modifier (lx, name, n, c, &chs, out, err);
    case '/':
      return process_replace (lx, name, n, out, err);
    default:
      return kiln_error_make (err, 0, "unsupported modifier (%s) in substitution", chs.buf);
    }
}

static int
process_stop_on (lexer *lx, int stop, bool raw_escapes, strbuf *out, words *w, kiln_error **err)
{
  bool saved = lx->raw_escapes;
  lx->raw_escapes = raw_escapes;
  int ret = 0;
  while (peek (lx) != LEX_EOF)
    {
      int c = peek (lx);
      if (stop != LEX_EOF && c == stop)
        {
          next (lx);
          goto done;
        }
      if (c == '$' || c == '\'' || c == '"')
        {
          autostrbuf strbuf tmp = STRBUF_INIT;
          int r = c == '$' ? process_dollar (lx, &tmp, err)
                  : c == '\'' ? process_single_quote (lx, &tmp, err)
                              : process_double_quote (lx, &tmp, err);
          if (r < 0)
            {
              ret = -1;
              goto done;
            }
          strbuf_add (out, tmp.buf, tmp.len);
          if (c == '$')
            words_add_string (w, tmp.buf, tmp.len);
          else
            words_add_raw_string (w, tmp.buf, tmp.len);
          continue;
        }
      c = next (lx);
      if (c == lx->o->escape)
        {
          if (lx->raw_escapes)
            {
              words_add_raw_char (w, c);
              strbuf_addch (out, c);
            }
          c = next (lx);
          if (c == LEX_EOF)
            break;
          words_add_raw_char (w, c);
        }
      else
        words_add_char (w, c);
      strbuf_addch (out, c);
    }
  if (stop != LEX_EOF)
    ret = kiln_error_make (err, 0, "unexpected end of statement while looking for matching %c", stop);
done:
  lx->raw_escapes = saved;
  return ret;
}

static int
run (const expand_opts *o, const char *in, strbuf *out, words *w, kiln_error **err)
{
  lexer lx = { .o = o, .s = in, .len = strlen (in), .pos = 0, .raw_escapes = o->raw_escapes };
  if (process_stop_on (&lx, LEX_EOF, o->raw_escapes, out, w, err) < 0)
    return kiln_error_wrap (err, "failed to process \"%s\"", in);
  return 0;
}

int
expand_word (const expand_opts *o, const char *in, char **out, kiln_error **err)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  if (run (o, in, &sb, NULL, err) < 0)
    return -1;
  *out = strbuf_detach (&sb, NULL);
  return 0;
}

int
expand_words (const expand_opts *o, const char *in, char ***out, kiln_error **err)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  words w = { .word = STRBUF_INIT, .in_word = false, .v = NULL };
  if (run (o, in, &sb, &w, err) < 0)
    {
      strbuf_release (&w.word);
      strv_free (w.v);
      return -1;
    }
  if (w.word.len > 0)
    words_push (&w);
  strbuf_release (&w.word);
  if (w.v == NULL)
    w.v = xcalloc (1, sizeof (char *));
  *out = w.v;
  return 0;
}

void
expand_vars_init (expand_vars *v)
{
  memset (v, 0, sizeof *v);
}

void
expand_vars_free (expand_vars *v)
{
  for (size_t i = 0; i < v->n; i++)
    {
      free (v->keys[i]);
      free (v->values[i]);
    }
  free (v->keys);
  free (v->values);
  memset (v, 0, sizeof *v);
}

long
expand_vars_find (const expand_vars *v, const char *key, size_t klen)
{
  for (size_t i = v->n; i-- > 0;)
    if (strlen (v->keys[i]) == klen && memcmp (v->keys[i], key, klen) == 0)
      return (long) i;
  return -1;
}

void
expand_vars_set (expand_vars *v, const char *key, const char *value)
{
  long i = expand_vars_find (v, key, strlen (key));
  if (i >= 0)
    {
      free (v->values[i]);
      v->values[i] = value ? xstrdup (value) : NULL;
      return;
    }
  if (v->n == v->alloc)
    {
      v->alloc = v->alloc ? v->alloc * 2 : 8;
      v->keys = xreallocarray (v->keys, v->alloc, sizeof (char *));
      v->values = xreallocarray (v->values, v->alloc, sizeof (char *));
    }
  v->keys[v->n] = xstrdup (key);
  v->values[v->n] = value ? xstrdup (value) : NULL;
  v->n++;
}

void
expand_vars_copy (expand_vars *dst, const expand_vars *src)
{
  expand_vars_init (dst);
  for (size_t i = 0; i < src->n; i++)
    expand_vars_set (dst, src->keys[i], src->values[i]);
}
