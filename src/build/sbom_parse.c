/* sbom_parse.c - package database parsers (see sbom_parse.h). */
#include "build/sbom_parse.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/strbuf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
sbom_pkgs_clear (sbom_pkgs *p)
{
  for (size_t i = 0; i < p->n; i++)
    {
      free (p->v[i].name);
      free (p->v[i].version);
      free (p->v[i].arch);
      free (p->v[i].license);
      free (p->v[i].path);
    }
  free (p->v);
  p->v = NULL;
  p->n = 0;
}

/* A field value as kept: surrounding blanks trimmed, at most SBOM_MAX_FIELD
 * bytes, bytes outside printable ASCII replaced by '?'. NULL if empty. */
static char *
clean_value (const char *s, size_t len)
{
  while (len > 0 && (*s == ' ' || *s == '\t'))
    s++, len--;
  while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
    len--;
  if (len == 0)
    return NULL;
  if (len > SBOM_MAX_FIELD)
    len = SBOM_MAX_FIELD;
  char *r = xstrndup (s, len);
  for (char *c = r; *c; c++)
    if ((unsigned char) *c < 0x20 || (unsigned char) *c > 0x7e)
      *c = '?';
  return r;
}

static int
add_pkg (sbom_pkgs *out, sbom_kind kind, char **name, char **version, char **arch, char **license, const char *path,
         kiln_error **err)
{
  if (!*name || !*version)
    return 0;
  if (out->n >= SBOM_MAX_PACKAGES)
    return kiln_error_make (err, E2BIG, "'%s': more than %d packages", path, SBOM_MAX_PACKAGES);
  out->v = xreallocarray (out->v, out->n + 1, sizeof *out->v);
  out->v[out->n++] = (sbom_pkg) { kind, steal_pointer (name), steal_pointer (version), arch ? steal_pointer (arch) : NULL,
                                  license ? steal_pointer (license) : NULL, xstrdup (path), -1 };
  return 0;
}

/* ---- "Key: value" paragraphs (dpkg, apk, METADATA) ---- */

typedef struct para
{
  char *name, *version, *arch, *license, *status;
} para;

static void
para_clear (para *p)
{
  free (p->name);
  free (p->version);
  free (p->arch);
  free (p->license);
  free (p->status);
  memset (p, 0, sizeof *p);
}

/* Set *slot from the value (first occurrence wins). */
static void
set_field (char **slot, const char *v, size_t len)
{
  if (!*slot)
    *slot = clean_value (v, len);
}

/* Walk data line by line; sep is ':' for "Key: value" (dpkg, METADATA),
 * apk's lines are "K:value" too. fn gets each key/value; a blank line ends
 * a paragraph (end_fn). Continuation lines (leading blank) are skipped. */
typedef int (*para_line_fn) (para *p, const char *key, size_t klen, const char *val, size_t vlen);
typedef int (*para_end_fn) (para *p, const char *path, sbom_pkgs *out, kiln_error **err);

static int
walk_paragraphs (const char *data, size_t len, const char *path, para_line_fn line_fn, para_end_fn end_fn,
                 bool stop_at_blank, sbom_pkgs *out, kiln_error **err)
{
  para p = { 0 };
  size_t pos = 0;
  int r = 0;
  while (pos < len && r == 0)
    {
      const char *line = data + pos;
      const char *nl = memchr (line, '\n', len - pos);
      size_t ll = nl ? (size_t) (nl - line) : len - pos;
      pos += ll + (nl ? 1 : 0);
      if (ll > 0 && line[ll - 1] == '\r')
        ll--;
      if (ll == 0)
        {
          r = end_fn (&p, path, out, err);
          para_clear (&p);
          if (stop_at_blank)
            break;
          continue;
        }
      if (line[0] == ' ' || line[0] == '\t' || line[0] == '#')
        continue;
      const char *colon = memchr (line, ':', ll);
      if (!colon)
        {
          para_clear (&p);
          return kiln_error_make (err, EINVAL, "'%s': line without ':' at byte %zu", path, (size_t) (line - data));
        }
      line_fn (&p, line, (size_t) (colon - line), colon + 1, ll - (size_t) (colon - line) - 1);
    }
  if (r == 0)
    r = end_fn (&p, path, out, err);
  para_clear (&p);
  return r;
}

static bool
key_is (const char *key, size_t klen, const char *want)
{
  return strlen (want) == klen && strncasecmp (key, want, klen) == 0;
}

static int
dpkg_line (para *p, const char *key, size_t klen, const char *val, size_t vlen)
{
  if (key_is (key, klen, "Package"))
    set_field (&p->name, val, vlen);
  else if (key_is (key, klen, "Version"))
    set_field (&p->version, val, vlen);
  else if (key_is (key, klen, "Architecture"))
    set_field (&p->arch, val, vlen);
  else if (key_is (key, klen, "Status"))
    set_field (&p->status, val, vlen);
  return 0;
}

static int
dpkg_end (para *p, const char *path, sbom_pkgs *out, kiln_error **err)
{
  /* "install ok installed": the third word is the state */
  const char *st = p->status ? strrchr (p->status, ' ') : NULL;
  if (!st || strcmp (st + 1, "installed") != 0)
    return 0;
  return add_pkg (out, SBOM_DEB, &p->name, &p->version, &p->arch, NULL, path, err);
}

int
sbom_parse_dpkg_status (const char *data, size_t len, const char *path, sbom_pkgs *out, kiln_error **err)
{
  return walk_paragraphs (data, len, path, dpkg_line, dpkg_end, false, out, err);
}

static int
apk_line (para *p, const char *key, size_t klen, const char *val, size_t vlen)
{
  if (klen != 1)
    return 0;
  switch (key[0])
    {
    case 'P': set_field (&p->name, val, vlen); break;
    case 'V': set_field (&p->version, val, vlen); break;
    case 'A': set_field (&p->arch, val, vlen); break;
    case 'L': set_field (&p->license, val, vlen); break;
    default: break;
    }
  return 0;
}

static int
apk_end (para *p, const char *path, sbom_pkgs *out, kiln_error **err)
{
  return add_pkg (out, SBOM_APK, &p->name, &p->version, &p->arch, &p->license, path, err);
}

int
sbom_parse_apk_installed (const char *data, size_t len, const char *path, sbom_pkgs *out, kiln_error **err)
{
  return walk_paragraphs (data, len, path, apk_line, apk_end, false, out, err);
}

static int
meta_line (para *p, const char *key, size_t klen, const char *val, size_t vlen)
{
  if (key_is (key, klen, "Name"))
    set_field (&p->name, val, vlen);
  else if (key_is (key, klen, "Version"))
    set_field (&p->version, val, vlen);
  else if (key_is (key, klen, "License-Expression"))
    {
      free (p->license);
      p->license = clean_value (val, vlen);
    }
  else if (key_is (key, klen, "License") && !p->license)
    p->license = clean_value (val, vlen);
  return 0;
}

static int
meta_end (para *p, const char *path, sbom_pkgs *out, kiln_error **err)
{
  return add_pkg (out, SBOM_PYPI, &p->name, &p->version, NULL, &p->license, path, err);
}

int
sbom_parse_dist_info (const char *data, size_t len, const char *path, sbom_pkgs *out, kiln_error **err)
{
  /* the headers end at the first blank line; the body is the description */
  return walk_paragraphs (data, len, path, meta_line, meta_end, true, out, err);
}

/* ---- npm ---- */

/* "license": "MIT" or the old { "type": "MIT" }. */
static char *
npm_license (const json_value *o)
{
  const char *l = json_get_string (o, "license");
  if (!l)
    l = json_get_string (json_get_object (o, "license"), "type");
  return l ? clean_value (l, strlen (l)) : NULL;
}

static int
npm_add (sbom_pkgs *out, const char *name, size_t nlen, const json_value *o, const char *path, kiln_error **err)
{
  const char *v = json_get_string (o, "version");
  if (!v || json_get_bool (o, "link", false))
    return 0;
  autofree char *n = clean_value (name, nlen);
  autofree char *ver = clean_value (v, strlen (v));
  autofree char *lic = npm_license (o);
  return add_pkg (out, SBOM_NPM, &n, &ver, NULL, &lic, path, err);
}

/* lockfileVersion 1: nested "dependencies" maps. */
static int
npm_deps_v1 (const json_value *deps, const char *path, sbom_pkgs *out, int depth, kiln_error **err)
{
  if (depth > 64)
    return kiln_error_make (err, EINVAL, "'%s': dependencies nested too deep", path);
  for (size_t i = 0; i < json_object_size (deps); i++)
    {
      const char *name = json_object_key (deps, i);
      const json_value *d = json_object_value (deps, i);
      if (!json_is_object (d))
        continue;
      if (npm_add (out, name, strlen (name), d, path, err) < 0)
        return -1;
      const json_value *sub = json_get_object (d, "dependencies");
      if (sub && npm_deps_v1 (sub, path, out, depth + 1, err) < 0)
        return -1;
    }
  return 0;
}

int
sbom_parse_package_lock (const char *data, size_t len, const char *path, sbom_pkgs *out, kiln_error **err)
{
  autojson json_value *root = NULL;
  if (json_parse (data, len, len + 1, &root, err) < 0)
    return kiln_error_wrap (err, "'%s'", path);
  if (!json_is_object (root))
    return kiln_error_make (err, EINVAL, "'%s': not a JSON object", path);
  const json_value *pkgs = json_get_object (root, "packages");
  if (pkgs)
    {
      for (size_t i = 0; i < json_object_size (pkgs); i++)
        {
          const char *key = json_object_key (pkgs, i);
          const json_value *o = json_object_value (pkgs, i);
          /* "node_modules/a/node_modules/@s/b": the name follows the last
           * "node_modules/"; "" is the project itself, other keys are
           * workspace folders */
          const char *nm = NULL;
          for (const char *f = key; (f = strstr (f, "node_modules/")); f++)
            nm = f + strlen ("node_modules/");
          if (!nm || !*nm || !json_is_object (o))
            continue;
          const char *name = json_get_string (o, "name");
          if (npm_add (out, name ? name : nm, strlen (name ? name : nm), o, path, err) < 0)
            return -1;
        }
      return 0;
    }
  const json_value *deps = json_get_object (root, "dependencies");
  return deps ? npm_deps_v1 (deps, path, out, 0, err) : 0;
}

int
sbom_parse_package_json (const char *data, size_t len, const char *path, sbom_pkgs *out, kiln_error **err)
{
  autojson json_value *root = NULL;
  if (json_parse (data, len, len + 1, &root, err) < 0)
    return kiln_error_wrap (err, "'%s'", path);
  if (!json_is_object (root))
    return kiln_error_make (err, EINVAL, "'%s': not a JSON object", path);
  const char *name = json_get_string (root, "name");
  if (!name)
    return 0;
  return npm_add (out, name, strlen (name), root, path, err);
}

/* ---- purl ---- */

/* Percent-encode everything but the purl spec's unreserved characters
 * (extra: bytes also kept, e.g. "/" between an npm scope and name). */
static void
purl_enc (strbuf *sb, const char *s, const char *extra)
{
  for (const unsigned char *c = (const unsigned char *) s; *c; c++)
    {
      if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr ("-._~", *c)
          || (extra && strchr (extra, *c)))
        strbuf_addch (sb, (char) *c);
      else
        strbuf_addf (sb, "%%%02X", *c);
    }
}

char *
sbom_purl (const sbom_pkg *p, const char *distro)
{
  strbuf sb = STRBUF_INIT;
  switch (p->kind)
    {
    case SBOM_DEB:
    case SBOM_APK:
      strbuf_adds (&sb, p->kind == SBOM_DEB ? "pkg:deb/" : "pkg:apk/");
      purl_enc (&sb, distro ? distro : p->kind == SBOM_DEB ? "debian" : "alpine", NULL);
      strbuf_addch (&sb, '/');
      purl_enc (&sb, p->name, NULL);
      break;
    case SBOM_PYPI:
      {
        /* PEP 503 normalisation: lower case, runs of "-_." are one "-" */
        autofree char *n = xstrdup (p->name);
        size_t k = 0;
        for (size_t i = 0; n[i]; i++)
          {
            char c = n[i];
            if (c == '_' || c == '.' || c == '-')
              {
                if (k == 0 || n[k - 1] != '-')
                  n[k++] = '-';
                continue;
              }
            n[k++] = (char) (c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
          }
        n[k] = '\0';
        strbuf_adds (&sb, "pkg:pypi/");
        purl_enc (&sb, n, NULL);
        break;
      }
    case SBOM_NPM:
      strbuf_adds (&sb, "pkg:npm/");
      {
        const char *slash = p->name[0] == '@' ? strchr (p->name, '/') : NULL;
        if (slash)
          {
            autofree char *scope = xstrndup (p->name, (size_t) (slash - p->name));
            purl_enc (&sb, scope, NULL);
            strbuf_addch (&sb, '/');
            purl_enc (&sb, slash + 1, NULL);
          }
        else
          purl_enc (&sb, p->name, NULL);
      }
      break;
    }
  strbuf_addch (&sb, '@');
  purl_enc (&sb, p->version, NULL);
  if (p->arch && (p->kind == SBOM_DEB || p->kind == SBOM_APK))
    {
      strbuf_adds (&sb, "?arch=");
      purl_enc (&sb, p->arch, NULL);
    }
  return strbuf_detach (&sb, NULL);
}
