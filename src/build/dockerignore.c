/* dockerignore.c - see dockerignore.h. Patterns compile to a small NFA
 * equivalent to the regular expressions Docker's patternmatcher builds. */
#include "build/dockerignore.h"
#include "build/context.h"
#include "util/alloc.h"
#include "util/strbuf.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum
{
  T_LIT,
  T_ANY,        /* ?  : one char except '/' */
  T_STAR,       /* *  : run without '/' */
  T_DSTAR_MID,  /* ** followed by more: (.* /)? */
  T_DSTAR_END,  /* ** at the end: .* */
  T_CLASS,
} ttype;

typedef struct token
{
  ttype t;
  unsigned char c;
  bool negate;
  bool set[256];
} token;

struct dockerignore_pattern
{
  char *text;
  bool exception;
  token *toks;
  size_t n;
  char *lit_prefix; /* leading literal characters every match starts with */
};

/* Go's filepath.Clean for '/'-separated paths. */
static char *
clean_path (const char *p)
{
  if (*p == '\0')
    return xstrdup (".");
  bool rooted = *p == '/';
  size_t n = strlen (p);
  char *out = xmalloc (n + 2);
  size_t w = 0, r = 0, dotdot = 0;
  if (rooted)
    {
      out[w++] = '/';
      r = 1;
      dotdot = 1;
    }
  while (r < n)
    {
      if (p[r] == '/')
        r++;
      else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/'))
        r++;
      else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == n || p[r + 2] == '/'))
        {
          r += 2;
          if (w > dotdot)
            {
              w--;
              while (w > dotdot && out[w] != '/')
                w--;
            }
          else if (!rooted)
            {
              if (w > 0)
                out[w++] = '/';
              out[w++] = '.';
              out[w++] = '.';
              dotdot = w;
            }
        }
      else
        {
          if ((rooted && w != 1) || (!rooted && w != 0))
            out[w++] = '/';
          while (r < n && p[r] != '/')
            out[w++] = p[r++];
        }
    }
  if (w == 0)
    out[w++] = '.';
  out[w] = '\0';
  return out;
}

static int
compile (dockerignore_pattern *pt, kiln_error **err)
{
  const char *p = pt->text;
  size_t n = strlen (p);
  pt->toks = xcalloc (n + 1, sizeof (token));
  size_t k = 0;
  for (size_t i = 0; i < n;)
    {
      token *t = &pt->toks[k];
      char c = p[i];
      if (c == '*')
        {
          if (p[i + 1] == '*')
            {
              i += 2;
              if (p[i] == '/')
                i++;
              t->t = i >= n ? T_DSTAR_END : T_DSTAR_MID;
            }
          else
            {
              t->t = T_STAR;
              i++;
            }
        }
      else if (c == '?')
        {
          t->t = T_ANY;
          i++;
        }
      else if (c == '\\')
        {
          t->t = T_LIT;
          t->c = (unsigned char) (i + 1 < n ? p[i + 1] : '\\');
          i += i + 1 < n ? 2 : 1;
        }
      else if (c == '[')
        {
          t->t = T_CLASS;
          i++;
          if (p[i] == '^')
            {
              t->negate = true;
              i++;
            }
          bool closed = false, any = false;
          while (i < n)
            {
              if (p[i] == ']' && any)
                {
                  closed = true;
                  i++;
                  break;
                }
              unsigned char lo = (unsigned char) p[i];
              if (lo == '\\' && i + 1 < n)
                lo = (unsigned char) p[++i];
              i++;
              unsigned char hi = lo;
              if (p[i] == '-' && i + 1 < n && p[i + 1] != ']')
                {
                  i++;
                  hi = (unsigned char) p[i];
                  if (hi == '\\' && i + 1 < n)
                    hi = (unsigned char) p[++i];
                  i++;
                  if (hi < lo)
                    return kiln_error_make (err, 0, "syntax error in pattern '%s': bad range", p);
                }
              for (unsigned v = lo; v <= hi; v++)
                t->set[v] = true;
              any = true;
            }
          if (!closed)
            return kiln_error_make (err, 0, "syntax error in pattern '%s': unterminated '['", p);
        }
      else
        {
          t->t = T_LIT;
          t->c = (unsigned char) c;
          i++;
        }
      k++;
    }
  pt->n = k;
  size_t l = 0;
  while (l < k && pt->toks[l].t == T_LIT)
    l++;
  pt->lit_prefix = xmalloc (l + 1);
  for (size_t i = 0; i < l; i++)
    pt->lit_prefix[i] = (char) pt->toks[i].c;
  pt->lit_prefix[l] = '\0';
  return 0;
}

/* NFA states: 0..n regular, n+1.. "inside ** of token k". */
static void
close_states (const dockerignore_pattern *pt, bool *st)
{
  size_t n = pt->n;
  for (size_t k = 0; k < n; k++)
    if (st[k])
      switch (pt->toks[k].t)
        {
        case T_STAR:
        case T_DSTAR_END:
          st[k + 1] = true;
          break;
        case T_DSTAR_MID:
          st[k + 1] = true;
          st[n + 1 + k] = true;
          break;
        case T_LIT:
        case T_ANY:
        case T_CLASS:
          break;
        }
}

/* Feed S to the NFA; returns whether it accepts, and *alive whether any
 * state survives (a longer path could still match). */
static bool
run (const dockerignore_pattern *pt, const char *s, size_t len, bool parents, bool *alive)
{
  size_t n = pt->n, ns = 2 * n + 2;
  bool stack_a[64], stack_b[64];
  bool *cur = ns <= 64 ? stack_a : xcalloc (ns, 1);
  bool *nxt = ns <= 64 ? stack_b : xcalloc (ns, 1);
  memset (cur, 0, ns);
  cur[0] = true;
  close_states (pt, cur);
  bool any = true;
  bool early = false;
  for (size_t i = 0; i < len && any; i++)
    {
      unsigned char c = (unsigned char) s[i];
      if (parents && c == '/' && i > 0 && cur[n])
        {
          /* the parent directory s[0..i) matches */
          early = true;
          break;
        }
      memset (nxt, 0, ns);
      any = false;
      for (size_t k = 0; k < n; k++)
        {
          if (cur[n + 1 + k])
            {
              nxt[n + 1 + k] = any = true; /* .* inside (.* /)? */
              if (c == '/')
                nxt[k + 1] = true;
            }
          if (!cur[k])
            continue;
          const token *t = &pt->toks[k];
          switch (t->t)
            {
            case T_LIT:
              if (c == t->c)
                nxt[k + 1] = any = true;
              break;
            case T_ANY:
              if (c != '/')
                nxt[k + 1] = any = true;
              break;
            case T_STAR:
              if (c != '/')
                nxt[k] = any = true;
              break;
            case T_DSTAR_END:
              nxt[k] = any = true;
              break;
            case T_DSTAR_MID:
              break;
            case T_CLASS:
              if (t->set[c] != t->negate)
                nxt[k + 1] = any = true;
              break;
            }
        }
      close_states (pt, nxt);
      if (!any)
        for (size_t k = 0; k <= n; k++)
          any |= nxt[k];
      bool *tmp = cur;
      cur = nxt;
      nxt = tmp;
    }
  bool acc = early || (any && cur[n]);
  if (alive)
    {
      bool a = false;
      for (size_t k = 0; k < ns && any; k++)
        a |= cur[k];
      *alive = a;
    }
  if (ns > 64)
    {
      free (cur);
      free (nxt);
    }
  return acc;
}

static bool
pattern_matches_or_parent (const dockerignore_pattern *pt, const char *path)
{
  /* The path and each parent start at offset 0, so they share the pattern's
   * literal prefix: a cheap filter before the NFA. */
  if (pt->lit_prefix && strncmp (path, pt->lit_prefix, strlen (pt->lit_prefix)) != 0)
    return false;
  /* One pass: a match at any '/' boundary is a matching parent directory. */
  return run (pt, path, strlen (path), true, NULL);
}

bool
dockerignore_excluded (const dockerignore *d, const char *path)
{
  bool matched = false;
  for (size_t i = 0; d && i < d->n_patterns; i++)
    {
      const dockerignore_pattern *pt = &d->patterns[i];
      if (pt->exception != matched)
        continue;
      if (pattern_matches_or_parent (pt, path))
        matched = !pt->exception;
    }
  return matched;
}

bool
dockerignore_can_skip_dir (const dockerignore *d, const char *dir)
{
  if (!dockerignore_excluded (d, dir))
    return false;
  if (!d->has_exceptions)
    return true;
  autofree char *prefix = xasprintf ("%s/", dir);
  for (size_t i = 0; i < d->n_patterns; i++)
    {
      const dockerignore_pattern *pt = &d->patterns[i];
      if (!pt->exception)
        continue;
      bool alive = false;
      run (pt, prefix, strlen (prefix), false, &alive);
      if (alive)
        return false;
    }
  return true;
}

static int
add_pattern (dockerignore *d, const char *raw, kiln_error **err)
{
  const char *p = raw;
  bool exc = false;
  if (*p == '!')
    {
      exc = true;
      p++;
      while (*p == ' ' || *p == '\t')
        p++;
    }
  autofree char *c = NULL;
  if (*p)
    {
      c = clean_path (p);
      if (c[0] == '/' && c[1] != '\0')
        memmove (c, c + 1, strlen (c));
    }
  else
    c = xstrdup ("");
  if (exc && *c == '\0')
    return kiln_error_make (err, 0, "illegal exclusion pattern: \"!\"");
  d->patterns = xreallocarray (d->patterns, d->n_patterns + 1, sizeof *d->patterns);
  dockerignore_pattern *pt = &d->patterns[d->n_patterns];
  memset (pt, 0, sizeof *pt);
  pt->text = steal_pointer (&c);
  pt->exception = exc;
  d->n_patterns++;
  d->has_exceptions |= exc;
  if (compile (pt, err) < 0)
    return -1;
  return 0;
}

int
dockerignore_parse (const char *data, size_t len, dockerignore **out, kiln_error **err)
{
  dockerignore *d = xzalloc (sizeof *d);
  size_t start = 0;
  int lineno = 0;
  for (size_t i = 0; i <= len; i++)
    {
      if (i < len && data[i] != '\n')
        continue;
      autofree char *line = xstrndup (data + start, i - start);
      start = i + 1;
      lineno++;
      char *l = line;
      if (lineno == 1 && (unsigned char) l[0] == 0xEF && (unsigned char) l[1] == 0xBB && (unsigned char) l[2] == 0xBF)
        l += 3;
      if (*l == '#')
        continue;
      while (*l == ' ' || *l == '\t' || *l == '\r' || *l == '\v' || *l == '\f')
        l++;
      size_t n = strlen (l);
      while (n > 0 && (l[n - 1] == ' ' || l[n - 1] == '\t' || l[n - 1] == '\r' || l[n - 1] == '\v' || l[n - 1] == '\f'))
        l[--n] = '\0';
      if (n == 0)
        continue;
      if (add_pattern (d, l, err) < 0)
        {
          kiln_error_wrap (err, ".dockerignore line %d", lineno);
          dockerignore_free (d);
          return -1;
        }
    }
  *out = d;
  return 0;
}

/* 1 with the bytes of fd, named name, in *data (at most 16 MiB). */
static int
read_fd (int fd, const char *name, char **data, size_t *len, kiln_error **err)
{
  autoerror kiln_error *rerr = NULL;
  if (fs_read_fd (fd, 16 * 1024 * 1024, data, len, &rerr) < 0)
    return rerr->status == EFBIG ? kiln_error_make (err, 0, "'%s' is larger than 16 MiB", name)
                                 : kiln_error_make (err, rerr->status, "read '%s'", name);
  return 1;
}

/* 1 with the file's bytes in *data (at most 16 MiB), 0 when it does not
 * exist (*data untouched). */
static int
read_at (int dirfd, const char *name, char **data, size_t *len, kiln_error **err)
{
  autoclose int fd = openat (dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return errno == ENOENT ? 0 : kiln_error_make (err, errno, "open '%s'", name);
  return read_fd (fd, name, data, len, err);
}

int
dockerignore_load (const char *context_dir, const char *dockerfile_path, dockerignore **out, kiln_error **err)
{
  autofree char *data = NULL;
  size_t len = 0;
  int r = 0;
  if (dockerfile_path)
    {
      /* beside the Dockerfile: beneath the context when the Dockerfile is
       * in it, a symlink is refused as for .dockerignore */
      autofree char *p = xasprintf ("%s.dockerignore", dockerfile_path);
      autoerror kiln_error *e = NULL;
      autoclose int fd = context_open_file (context_dir, p, O_RDONLY | O_NOFOLLOW, &e);
      if (fd < 0 && e->status != ENOENT)
        {
          *err = steal_pointer (&e);
          return -1;
        }
      r = fd < 0 ? 0 : read_fd (fd, p, &data, &len, err);
      if (r < 0)
        return -1;
    }
  if (r == 0)
    {
      autoclose int dfd = open (context_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd < 0)
        return kiln_error_make (err, errno, "open context directory '%s'", context_dir);
      if (read_at (dfd, ".dockerignore", &data, &len, err) < 0)
        return -1;
    }
  return dockerignore_parse (data ? data : "", len, out, err);
}

void
dockerignore_free (dockerignore *d)
{
  if (d == NULL)
    return;
  for (size_t i = 0; i < d->n_patterns; i++)
    {
      free (d->patterns[i].text);
      free (d->patterns[i].toks);
      free (d->patterns[i].lit_prefix);
    }
  free (d->patterns);
  free (d);
}

size_t
dockerignore_count (const dockerignore *d)
{
  return d->n_patterns;
}

const char *
dockerignore_pattern_text (const dockerignore *d, size_t i)
{
  return i < d->n_patterns ? d->patterns[i].text : NULL;
}

int
dockerignore_exclude_dir (dockerignore *d, const char *dir, kiln_error **err)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  for (const char *p = dir; *p; p++)
    {
      if (strchr ("*?[]\\", *p))
        strbuf_addch (&sb, '\\');
      strbuf_addch (&sb, *p);
    }
  return add_pattern (d, sb.buf, err);
}
