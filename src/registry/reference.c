/* reference.c - Docker image references (see reference.h for the grammar). */
#include "registry/reference.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/digest.h"

static bool
is_lower_alnum (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
is_alnum (char c)
{
  return is_lower_alnum (c) || (c >= 'A' && c <= 'Z');
}

static bool
is_word (char c)
{
  return is_alnum (c) || c == '_';
}

bool
registry_tag_valid (const char *tag)
{
  size_t n = strlen (tag);
  if (n == 0 || n > REGISTRY_TAG_MAX || !is_word (tag[0]))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!is_word (tag[i]) && tag[i] != '.' && tag[i] != '-')
      return false;
  return true;
}

/* component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )* over
 * [s, s+n). */
static bool
component_valid (const char *s, size_t n)
{
  size_t i = 0;
  if (n == 0 || !is_lower_alnum (s[0]))
    return false;
  while (i < n)
    {
      while (i < n && is_lower_alnum (s[i]))
        i++;
      if (i == n)
        return true;
      /* A separator, then at least one alnum. */
      if (s[i] == '.')
        i++;
      else if (s[i] == '_')
        i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
      else if (s[i] == '-')
        while (i < n && s[i] == '-')
          i++;
      else
        return false;
      if (i == n || !is_lower_alnum (s[i]))
        return false;
    }
  return true;
}

bool
registry_path_valid (const char *path)
{
  const char *p = path;
  for (;;)
    {
      const char *slash = strchr (p, '/');
      size_t n = slash ? (size_t) (slash - p) : strlen (p);
      if (!component_valid (p, n))
        return false;
      if (!slash)
        return true;
      p = slash + 1;
    }
}

/* domain-component := [A-Za-z0-9] | [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9] */
static bool
dns_name_valid (const char *s, size_t n)
{
  size_t start = 0;
  if (n == 0)
    return false;
  for (size_t i = 0; i <= n; i++)
    {
      if (i < n && s[i] != '.')
        {
          if (!is_alnum (s[i]) && s[i] != '-')
            return false;
          continue;
        }
      if (i == start || s[start] == '-' || s[i - 1] == '-')
        return false;
      start = i + 1;
    }
  return true;
}

bool
registry_domain_valid (const char *domain)
{
  const char *host_end;
  if (domain[0] == '[')
    {
      const char *close = strchr (domain, ']');
      if (!close || close == domain + 1)
        return false;
      for (const char *c = domain + 1; c < close; c++)
        if (!isxdigit ((unsigned char) *c) && *c != ':')
          return false;
      host_end = close + 1;
      if (*host_end != '\0' && *host_end != ':')
        return false;
    }
  else
    {
      host_end = strchr (domain, ':');
      if (!host_end)
        host_end = domain + strlen (domain);
      if (!dns_name_valid (domain, (size_t) (host_end - domain)))
        return false;
    }
  if (*host_end == '\0')
    return true;
  /* ":" port */
  const char *port = host_end + 1;
  if (*port == '\0' || strlen (port) > 5)
    return false;
  for (const char *c = port; *c; c++)
    if (*c < '0' || *c > '9')
      return false;
  return true;
}

static bool
is_64_hex (const char *s)
{
  if (strlen (s) != 64)
    return false;
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
      return false;
  return true;
}

static bool
has_upper (const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (s[i] >= 'A' && s[i] <= 'Z')
      return true;
  return false;
}

void
registry_ref_free (registry_ref *ref)
{
  if (!ref)
    return;
  free (ref->domain);
  free (ref->path);
  free (ref->tag);
  free (ref->digest);
  free (ref);
}

void
cleanup_registry_refp (registry_ref **ref)
{
  registry_ref_free (*ref);
  *ref = NULL;
}

registry_ref *
registry_ref_dup (const registry_ref *ref)
{
  registry_ref *r = xzalloc (sizeof *r);
  r->domain = xstrdup (ref->domain);
  r->path = xstrdup (ref->path);
  r->tag = ref->tag ? xstrdup (ref->tag) : NULL;
  r->digest = ref->digest ? xstrdup (ref->digest) : NULL;
  return r;
}

static int
bad (kiln_error **err, const char *s, const char *why)
{
  return kiln_error_make (err, 0, "invalid reference '%s': %s", s, why);
}

int
registry_ref_parse (const char *s, registry_ref **out, kiln_error **err)
{
  autofree char *name = NULL;
  autofree char *tag = NULL;
  autofree char *digest = NULL;
  autofree char *domain = NULL;
  autofree char *path = NULL;

  if (s[0] == '\0')
    return kiln_error_make (err, 0, "invalid reference '': empty");
  /* Keep hostile input out of error messages when it is absurdly long. */
  if (strlen (s) > 4096)
    return kiln_error_make (err, 0, "invalid reference: longer than 4096 characters");
  for (const char *c = s; *c; c++)
    if ((unsigned char) *c <= ' ' || (unsigned char) *c >= 0x7f)
      return kiln_error_make (err, 0, "invalid reference: contains whitespace, a control or non-ASCII character");

  const char *at = strchr (s, '@');
  if (at)
    {
      autoerror kiln_error *derr = NULL;
      if (strchr (at + 1, '@'))
        return bad (err, s, "more than one '@'");
      if (digest_validate (at + 1, &derr) < 0)
        return kiln_error_make (err, 0, "invalid reference '%s': invalid digest: %s", s, derr->msg);
      digest = xstrdup (at + 1);
      name = xstrndup (s, (size_t) (at - s));
    }
  else
    name = xstrdup (s);

  /* A tag is a ':' after the last '/' (a ':' before it is a port). */
  char *last_slash = strrchr (name, '/');
  char *colon = strrchr (last_slash ? last_slash : name, ':');
  if (colon && !(name[0] == '[' && !last_slash))
    {
      *colon = '\0';
      if (!registry_tag_valid (colon + 1))
        return bad (err, s, "invalid tag (allowed: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})");
      tag = xstrdup (colon + 1);
    }
  if (name[0] == '\0')
    return bad (err, s, "missing repository name");

  const char *slash = strchr (name, '/');
  size_t first_len = slash ? (size_t) (slash - name) : 0;
  bool explicit_domain = slash
                         && (name[0] == '[' || memchr (name, '.', first_len) || memchr (name, ':', first_len)
                             || (first_len == 9 && memcmp (name, "localhost", 9) == 0)
                             || has_upper (name, first_len));
  if (explicit_domain)
    {
      domain = xstrndup (name, first_len);
      path = xstrdup (slash + 1);
      if (!registry_domain_valid (domain))
        return kiln_error_make (err, 0, "invalid reference '%s': invalid registry host '%s'", s, domain);
    }
  else
    {
      domain = xstrdup (REGISTRY_DOCKER_HUB);
      path = xstrdup (name);
    }
  if (path[0] == '\0')
    return bad (err, s, "missing repository name");
  if (has_upper (path, strlen (path)))
    return bad (err, s, "repository name must be lowercase");
  if (!registry_path_valid (path))
    return bad (err, s, "invalid repository name (components are lowercase letters and digits, "
                        "separated by '/', and within a component by '.', '_', '__' or '-')");
  if (is_64_hex (path))
    return bad (err, s, "repository name cannot be a 64-character hexadecimal string (an image ID)");

  if (strcmp (domain, "index.docker.io") == 0)
    {
      free (domain);
      domain = xstrdup (REGISTRY_DOCKER_HUB);
    }
  if (strcmp (domain, REGISTRY_DOCKER_HUB) == 0 && !strchr (path, '/'))
    {
      char *p = xasprintf ("library/%s", path);
      free (path);
      path = p;
    }
  /* "library/<64 hex>" would print as a bare image ID. */
  if (strcmp (domain, REGISTRY_DOCKER_HUB) == 0 && strncmp (path, "library/", 8) == 0 && is_64_hex (path + 8))
    return bad (err, s, "repository name cannot be a 64-character hexadecimal string (an image ID)");
  /* Checked on the normalised name so that the normalised string parses. */
  if (strlen (domain) + 1 + strlen (path) > REGISTRY_NAME_MAX)
    return bad (err, s, "repository name longer than 255 characters (with its registry)");
  if (!tag && !digest)
    tag = xstrdup ("latest");

  registry_ref *r = xzalloc (sizeof *r);
  r->domain = steal_pointer (&domain);
  r->path = steal_pointer (&path);
  r->tag = steal_pointer (&tag);
  r->digest = steal_pointer (&digest);
  *out = r;
  return 0;
}

char *
registry_ref_name (const registry_ref *ref)
{
  return xasprintf ("%s/%s", ref->domain, ref->path);
}

static char *
with_suffix (const char *name, const registry_ref *ref)
{
  return xasprintf ("%s%s%s%s%s", name, ref->tag ? ":" : "", ref->tag ? ref->tag : "", ref->digest ? "@" : "",
                    ref->digest ? ref->digest : "");
}

char *
registry_ref_string (const registry_ref *ref)
{
  autofree char *name = registry_ref_name (ref);
  return with_suffix (name, ref);
}

char *
registry_ref_familiar (const registry_ref *ref)
{
  if (strcmp (ref->domain, REGISTRY_DOCKER_HUB) != 0)
    return registry_ref_string (ref);
  const char *p = ref->path;
  /* Unlike Docker, keep the domain when dropping it would make the first
   * component read as a domain ("docker.io/a.b/c" is not "a.b/c"). */
  size_t first = strcspn (p, "/");
  if (p[first] == '/' && (memchr (p, '.', first) || (first == 9 && strncmp (p, "localhost", 9) == 0)))
    return registry_ref_string (ref);
  if (strncmp (p, "library/", 8) == 0 && !strchr (p + 8, '/'))
    p += 8;
  return with_suffix (p, ref);
}

const char *
registry_domain_api_host (const char *domain)
{
  if (strcmp (domain, REGISTRY_DOCKER_HUB) == 0)
    return REGISTRY_DOCKER_HUB_API;
  return domain;
}

const char *
registry_ref_manifest_id (const registry_ref *ref)
{
  return ref->digest ? ref->digest : ref->tag;
}
