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
#include <unistd.h>

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
  /* "install ok installed": the third word is the state. Packages whose
   * files are on disk count (installed, unpacked, half-installed,
   * half-configured, triggers-*); config-files (removed, not purged) and
   * not-installed do not. */
  static const char *const on_disk[] = { "installed", "unpacked", "half-installed", "half-configured",
                                         "triggers-awaited", "triggers-pending" };
  const char *st = p->status ? strrchr (p->status, ' ') : NULL;
  bool found = false;
  for (size_t i = 0; st && i < sizeof on_disk / sizeof on_disk[0]; i++)
    found = found || strcmp (st + 1, on_disk[i]) == 0;
  if (!found)
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

/* ---- Go build info ---- */

#define GO_MAGIC "\xff Go buildinf:"
#define GO_MAGIC_LEN 14
#define GO_SECTION_MAX (1u << 20)
#define ELF_MAX_SECTIONS 65535u

static int
pread_exact (int fd, void *buf, size_t len, uint64_t off, kiln_error **err)
{
  size_t got = 0;
  while (got < len)
    {
      ssize_t n = pread (fd, (char *) buf + got, len - got, (off_t) (off + got));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return kiln_error_make (err, errno, "read");
      if (n == 0)
        return 0;
      got += (size_t) n;
    }
  return 1;
}

static uint64_t
le (const unsigned char *p, size_t n)
{
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;)
    v = v << 8 | p[i];
  return v;
}

int
sbom_elf_go_buildinfo (int fd, uint64_t size, char **data, size_t *len, kiln_error **err)
{
  unsigned char eh[64];
  int r = size >= 52 ? pread_exact (fd, eh, size >= 64 ? 64 : 52, 0, err) : 0;
  if (r <= 0)
    return r;
  /* ELF, little-endian (EI_DATA 1), 32 or 64 bits */
  if (memcmp (eh, "\x7f" "ELF", 4) != 0 || eh[5] != 1 || (eh[4] != 1 && eh[4] != 2) || (eh[4] == 2 && size < 64))
    return 0;
  bool is64 = eh[4] == 2;
  uint64_t shoff = is64 ? le (eh + 40, 8) : le (eh + 32, 4);
  uint64_t shentsize = le (eh + (is64 ? 58 : 46), 2), shnum = le (eh + (is64 ? 60 : 48), 2);
  uint64_t shstrndx = le (eh + (is64 ? 62 : 50), 2);
  if (shnum == 0 || shnum > ELF_MAX_SECTIONS || shstrndx >= shnum || shentsize < (is64 ? 64u : 40u)
      || shoff > size || shnum * shentsize > size - shoff)
    return 0;
  /* a section header: name, offset, size */
  unsigned char sh[64];
#define SH_AT(i) pread_exact (fd, sh, is64 ? 64 : 40, shoff + (uint64_t) (i) * shentsize, err)
#define SH_NAME le (sh, 4)
#define SH_OFF (is64 ? le (sh + 24, 8) : le (sh + 16, 4))
#define SH_SIZE (is64 ? le (sh + 32, 8) : le (sh + 20, 4))
  if ((r = SH_AT (shstrndx)) <= 0)
    return r;
  uint64_t stroff = SH_OFF, strsize = SH_SIZE;
  if (stroff > size || strsize > size - stroff)
    return 0;
  static const char want[] = ".go.buildinfo";
  for (uint64_t i = 0; i < shnum; i++)
    {
      if ((r = SH_AT (i)) <= 0)
        return r;
      uint64_t name = SH_NAME, off = SH_OFF, ssize = SH_SIZE;
      char nm[sizeof want];
      if (name >= strsize || strsize - name < sizeof want)
        continue;
      if ((r = pread_exact (fd, nm, sizeof want, stroff + name, err)) < 0)
        return r;
      if (r == 0 || memcmp (nm, want, sizeof want) != 0)
        continue;
      if (off > size || ssize > size - off || ssize < 32)
        return 0;
      size_t n = ssize > GO_SECTION_MAX ? GO_SECTION_MAX : (size_t) ssize;
      char *buf = xmalloc (n);
      if ((r = pread_exact (fd, buf, n, off, err)) <= 0)
        {
          free (buf);
          return r;
        }
      *data = buf;
      *len = n;
      return 1;
    }
#undef SH_AT
#undef SH_NAME
#undef SH_OFF
#undef SH_SIZE
  return 0;
}

/* A uvarint-length string at *pos; false when it does not fit. */
static bool
go_string (const char *data, size_t len, size_t *pos, const char **s, size_t *slen)
{
  uint64_t n = 0;
  for (int shift = 0;; shift += 7)
    {
      if (*pos >= len || shift > 63)
        return false;
      unsigned char c = (unsigned char) data[(*pos)++];
      n |= (uint64_t) (c & 0x7f) << shift;
      if (c < 0x80)
        break;
    }
  if (n > len - *pos)
    return false;
  *s = data + *pos;
  *slen = (size_t) n;
  *pos += (size_t) n;
  return true;
}

static int
go_add (sbom_pkgs *out, const char *name, size_t nlen, const char *ver, size_t vlen, const char *path,
        kiln_error **err)
{
  autofree char *n = clean_value (name, nlen);
  autofree char *v = clean_value (ver, vlen);
  if (v && strcmp (v, "(devel)") == 0)
    return 0;
  return add_pkg (out, SBOM_GOLANG, &n, &v, NULL, NULL, path, err);
}

int
sbom_parse_go_buildinfo (const char *data, size_t len, const char *path, sbom_pkgs *out, kiln_error **err)
{
  if (len < 32 || memcmp (data, GO_MAGIC, GO_MAGIC_LEN) != 0)
    return kiln_error_make (err, EINVAL, "'%s': no Go build info header", path);
  if (!(data[15] & 2))
    return 0; /* before Go 1.18: pointers into the data segment */
  size_t pos = 32, vlen, mlen;
  const char *ver, *mod;
  if (!go_string (data, len, &pos, &ver, &vlen) || !go_string (data, len, &pos, &mod, &mlen))
    return kiln_error_make (err, EINVAL, "'%s': Go build info strings out of bounds", path);
  /* "go1.21.0" (a toolchain may add " X:..." experiments) */
  if (vlen > 2 && memcmp (ver, "go", 2) == 0)
    {
      const char *sp = memchr (ver + 2, ' ', vlen - 2);
      if (go_add (out, "stdlib", 6, ver + 2, sp ? (size_t) (sp - ver - 2) : vlen - 2, path, err) < 0)
        return -1;
    }
  if (mlen >= 33 && mod[mlen - 17] == '\n')
    {
      mod += 16;
      mlen -= 32;
    }
  for (size_t p = 0; p < mlen;)
    {
      const char *line = mod + p;
      const char *nl = memchr (line, '\n', mlen - p);
      size_t ll = nl ? (size_t) (nl - line) : mlen - p;
      p += ll + (nl ? 1 : 0);
      /* KIND \t PATH \t VERSION [\t SUM] */
      const char *t1 = memchr (line, '\t', ll);
      if (!t1)
        continue;
      size_t klen = (size_t) (t1 - line);
      const char *mp = t1 + 1;
      const char *t2 = memchr (mp, '\t', ll - (size_t) (mp - line));
      if (!t2)
        continue;
      const char *mv = t2 + 1;
      const char *t3 = memchr (mv, '\t', ll - (size_t) (mv - line));
      size_t mvlen = t3 ? (size_t) (t3 - mv) : ll - (size_t) (mv - line);
      bool is_mod = klen == 3 && memcmp (line, "mod", 3) == 0;
      bool is_dep = klen == 3 && memcmp (line, "dep", 3) == 0;
      bool is_repl = klen == 2 && memcmp (line, "=>", 2) == 0;
      if (is_repl && out->n > 0 && out->v[out->n - 1].kind == SBOM_GOLANG && strcmp (out->v[out->n - 1].path, path) == 0)
        {
          /* the module before is replaced: its version is the replacement's */
          sbom_pkg *last = &out->v[out->n - 1];
          free (last->name);
          free (last->version);
          last->name = clean_value (mp, (size_t) (t2 - mp));
          last->version = clean_value (mv, mvlen);
          if (!last->name || !last->version || strcmp (last->version, "(devel)") == 0)
            {
              free (last->name);
              free (last->version);
              free (last->arch);
              free (last->license);
              free (last->path);
              out->n--;
            }
          continue;
        }
      if ((is_mod || is_dep) && go_add (out, mp, (size_t) (t2 - mp), mv, mvlen, path, err) < 0)
        return -1;
    }
  return 0;
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
    case SBOM_GOLANG:
      /* pkg:golang/github.com/a/b@v1.2.3: the path's "/" stay */
      strbuf_adds (&sb, "pkg:golang/");
      purl_enc (&sb, p->name, "/");
      break;
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
