/* challenge.c - WWW-Authenticate parsing (see challenge.h). */
#include "registry/challenge.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/strbuf.h"

#define MAX_HEADER 8192
#define MAX_CHALLENGES 16
#define MAX_PARAMS 32

/* RFC 7230 tchar */
static bool
is_tchar (char c)
{
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  return c != '\0' && strchr ("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool
is_token68_char (char c)
{
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  return c != '\0' && strchr ("-._~+/", c) != NULL;
}

static void
skip_ws (const char **p)
{
  while (**p == ' ' || **p == '\t')
    (*p)++;
}

static char *
lower_dup (const char *s, size_t n)
{
  char *r = xstrndup (s, n);
  for (char *c = r; *c; c++)
    if (*c >= 'A' && *c <= 'Z')
      *c = (char) (*c - 'A' + 'a');
  return r;
}

/* At p: token BWS "=" ? Does not consume. */
static bool
at_param (const char *p)
{
  const char *q = p;
  while (is_tchar (*q))
    q++;
  if (q == p)
    return false;
  while (*q == ' ' || *q == '\t')
    q++;
  return *q == '=' && q[1] != '=';
}

void
registry_challenges_free (registry_challenges *c)
{
  if (!c)
    return;
  for (size_t i = 0; i < c->n; i++)
    {
      for (size_t j = 0; j < c->items[i].n_params; j++)
        {
          free (c->items[i].params[j].name);
          free (c->items[i].params[j].value);
        }
      free (c->items[i].params);
      free (c->items[i].scheme);
    }
  free (c->items);
  free (c);
}

void
cleanup_registry_challengesp (registry_challenges **c)
{
  registry_challenges_free (*c);
  *c = NULL;
}

static int
bad (kiln_error **err, const char *start, const char *p, const char *why)
{
  return kiln_error_make (err, 0, "parsing WWW-Authenticate header: %s at offset %zu", why, (size_t) (p - start));
}

static void
add_param (registry_challenge *ch, char *name, char *value)
{
  ch->params = xreallocarray (ch->params, ch->n_params + 1, sizeof *ch->params);
  ch->params[ch->n_params].name = name;
  ch->params[ch->n_params].value = value;
  ch->n_params++;
}

/* Parse one auth-param at p (at_param(p) is true). */
static int
parse_param (const char *start, const char **pp, registry_challenge *ch, kiln_error **err)
{
  const char *p = *pp;
  const char *name = p;
  while (is_tchar (*p))
    p++;
  autofree char *lname = lower_dup (name, (size_t) (p - name));
  skip_ws (&p);
  p++; /* '=' */
  skip_ws (&p);
  autostrbuf strbuf val = STRBUF_INIT;
  if (*p == '"')
    {
      p++;
      for (;;)
        {
          if (*p == '\0')
            return bad (err, start, p, "unterminated quoted string");
          if (*p == '"')
            break;
          if (*p == '\\')
            {
              p++;
              if (*p == '\0')
                return bad (err, start, p, "unterminated quoted string");
            }
          if ((unsigned char) *p < 0x20 && *p != '\t')
            return bad (err, start, p, "control character in quoted string");
          strbuf_addch (&val, *p);
          p++;
        }
      p++;
    }
  else
    {
      const char *v = p;
      while (is_tchar (*p))
        p++;
      if (p == v)
        return bad (err, start, p, "missing parameter value");
      strbuf_add (&val, v, (size_t) (p - v));
    }
  if (ch->n_params >= MAX_PARAMS)
    return bad (err, start, p, "too many parameters");
  for (size_t i = 0; i < ch->n_params; i++)
    if (strcmp (ch->params[i].name, lname) == 0)
      return bad (err, start, name, "duplicate parameter");
  add_param (ch, steal_pointer (&lname), strbuf_detach (&val, NULL));
  *pp = p;
  return 0;
}

int
registry_challenges_parse (const char *header, registry_challenges **out, kiln_error **err)
{
  const char *start = header, *p = header;
  if (strlen (header) > MAX_HEADER)
    return kiln_error_make (err, 0, "parsing WWW-Authenticate header: longer than %d bytes", MAX_HEADER);
  registry_challenges *res = xzalloc (sizeof *res);
  int r = 0;
  for (;;)
    {
      while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
      if (*p == '\0')
        break;
      const char *scheme = p;
      while (is_tchar (*p))
        p++;
      if (p == scheme)
        {
          r = bad (err, start, p, "expected an auth scheme");
          break;
        }
      if (res->n >= MAX_CHALLENGES)
        {
          r = bad (err, start, p, "too many challenges");
          break;
        }
      res->items = xreallocarray (res->items, res->n + 1, sizeof *res->items);
      registry_challenge *ch = &res->items[res->n++];
      memset (ch, 0, sizeof *ch);
      ch->scheme = lower_dup (scheme, (size_t) (p - scheme));
      if (*p != '\0' && *p != ' ' && *p != '\t' && *p != ',')
        {
          r = bad (err, start, p, "unexpected character after auth scheme");
          break;
        }
      skip_ws (&p);
      if (*p != '\0' && *p != ',' && !at_param (p))
        {
          /* token68 */
          const char *t = p;
          while (is_token68_char (*p))
            p++;
          while (*p == '=')
            p++;
          if (p == t)
            {
              r = bad (err, start, p, "unexpected character");
              break;
            }
          add_param (ch, xstrdup ("token68"), xstrndup (t, (size_t) (p - t)));
          skip_ws (&p);
          if (*p != '\0' && *p != ',')
            {
              r = bad (err, start, p, "unexpected character after token68");
              break;
            }
          continue;
        }
      /* auth-params, comma separated, until something that is not a param
       * (the next challenge) or the end. */
      while (at_param (p))
        {
          if ((r = parse_param (start, &p, ch, err)) < 0)
            break;
          skip_ws (&p);
          if (*p == '\0')
            break;
          if (*p != ',')
            {
              r = bad (err, start, p, "expected ',' between parameters");
              break;
            }
          while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        }
      if (r < 0)
        break;
    }
  if (r == 0 && res->n == 0)
    r = kiln_error_make (err, 0, "parsing WWW-Authenticate header: no challenge");
  if (r < 0)
    {
      registry_challenges_free (res);
      return r;
    }
  *out = res;
  return 0;
}

const registry_challenge *
registry_challenges_find (const registry_challenges *c, const char *scheme)
{
  for (size_t i = 0; i < c->n; i++)
    if (strcasecmp (c->items[i].scheme, scheme) == 0)
      return &c->items[i];
  return NULL;
}

const char *
registry_challenge_param (const registry_challenge *c, const char *name)
{
  for (size_t i = 0; i < c->n_params; i++)
    if (strcasecmp (c->params[i].name, name) == 0)
      return c->params[i].value;
  return NULL;
}
