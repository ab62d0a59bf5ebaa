/* sbom.c - the SPDX 2.3 JSON SBOM of a built image, read from the merged
 * view of its layers in the store (nothing from the image is run):
 *
 *   var/lib/dpkg/status            dpkg (Debian, Ubuntu)
 *   lib/apk/db/installed           apk (Alpine)
 *   ** / *.dist-info/METADATA      Python distributions
 *   ** /package-lock.json,         npm lockfiles (the root project left out)
 *   ** /node_modules/.package-lock.json
 *   ** /node_modules/[@S/]N/package.json  installed npm packages
 *   executable ELF files with .go.buildinfo  Go binaries (stdlib, modules)
 *
 * A package's layer is the one that introduced it: for dpkg and apk the
 * lowest layer from which every layer's copy of the database up to the top
 * lists the package with its final version; for the others the layer of
 * the file it was read from. Duplicates (a lockfile and node_modules) are
 * listed once. */
#include "build/attest_internal.h"
#include "build/sbom_parse.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Largest database file read (a big dpkg status is a few MiB). */
#define SBOM_MAX_FILE (64u << 20)

typedef enum
{
  DB_NONE,
  DB_DPKG,
  DB_APK,
  DB_DIST_INFO,
  DB_NPM_LOCK,
  DB_NPM_PACKAGE,
} db_kind;

static bool
ends_with (const char *s, size_t len, const char *suffix)
{
  size_t n = strlen (suffix);
  return len >= n && memcmp (s + len - n, suffix, n) == 0;
}

/* What database the index path p is, if any. */
static db_kind
classify (const char *p)
{
  size_t len = strlen (p);
  if (strcmp (p, "var/lib/dpkg/status") == 0)
    return DB_DPKG;
  if (strcmp (p, "lib/apk/db/installed") == 0)
    return DB_APK;
  const char *base = strrchr (p, '/');
  base = base ? base + 1 : p;
  size_t dlen = (size_t) (base - p);
  if (strcmp (base, "METADATA") == 0 && dlen > 1 && ends_with (p, dlen - 1, ".dist-info"))
    return DB_DIST_INFO;
  if (strcmp (base, "package-lock.json") == 0 || ends_with (p, len, "node_modules/.package-lock.json"))
    return DB_NPM_LOCK;
  if (strcmp (base, "package.json") == 0 && dlen > 1)
    {
      /* node_modules/N/package.json or node_modules/@S/N/package.json */
      autofree char *dir = xstrndup (p, dlen - 1);
      char *s = strrchr (dir, '/');
      if (!s)
        return DB_NONE;
      *s = '\0';
      if (ends_with (dir, strlen (dir), "node_modules"))
        return DB_NPM_PACKAGE;
      char *s2 = strrchr (dir, '/');
      if (s2 && s2[1] == '@' && (size_t) (s2 - dir) >= strlen ("node_modules")
          && memcmp (s2 - strlen ("node_modules"), "node_modules", strlen ("node_modules")) == 0)
        return DB_NPM_PACKAGE;
    }
  return DB_NONE;
}

static int
parse_db (db_kind k, const char *data, size_t len, const char *path, sbom_pkgs *out, kiln_error **err)
{
  switch (k)
    {
    case DB_DPKG: return sbom_parse_dpkg_status (data, len, path, out, err);
    case DB_APK: return sbom_parse_apk_installed (data, len, path, out, err);
    case DB_DIST_INFO: return sbom_parse_dist_info (data, len, path, out, err);
    case DB_NPM_LOCK: return sbom_parse_package_lock (data, len, path, out, err);
    case DB_NPM_PACKAGE: return sbom_parse_package_json (data, len, path, out, err);
    case DB_NONE: break;
    }
  return 0;
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Every database path of any layer, sorted, once. */
static char **
candidates (const attest_layers *l)
{
  char **v = NULL;
  size_t n = 0;
  autostrbuf strbuf sb = STRBUF_INIT;
  for (size_t i = 0; i < l->n; i++)
    for (uint32_t id = 1; id < layer_index_count (l->idx[i]); id++)
      {
        const layer_index_disk_entry *e = layer_index_entry (l->idx[i], id);
        if (e->type != LAYER_INDEX_REG)
          continue;
        size_t nl;
        const char *name = layer_index_name (l->idx[i], id, &nl);
        /* cheap filter before building the path */
        if (!(nl == 6 && memcmp (name, "status", 6) == 0) && !(nl == 9 && memcmp (name, "installed", 9) == 0)
            && !(nl == 8 && memcmp (name, "METADATA", 8) == 0) && !ends_with (name, nl, "package-lock.json")
            && !(nl == 12 && memcmp (name, "package.json", 12) == 0))
          continue;
        strbuf_reset (&sb);
        layer_index_path (l->idx[i], id, &sb);
        if (classify (sb.buf) == DB_NONE)
          continue;
        v = xreallocarray (v, n + 2, sizeof *v);
        v[n++] = xstrdup (sb.buf);
        v[n] = NULL;
      }
  if (n == 0)
    return NULL;
  qsort (v, n, sizeof *v, cmp_str);
  size_t k = 1;
  for (size_t i = 1; i < n; i++)
    {
      if (strcmp (v[i], v[k - 1]) == 0)
        free (v[i]);
      else
        v[k++] = v[i];
    }
  v[k] = NULL;
  return v;
}

/* dpkg and apk: the layer that introduced each package of final (read from
 * the top copy of path). */
static void
attribute_db (const attest_layers *l, db_kind k, const char *path, sbom_pkgs *final)
{
  for (size_t i = 0; i < final->n; i++)
    final->v[i].layer = -1;
  for (size_t i = 0; i < l->n; i++)
    {
      bool hidden = false;
      uint32_t id = layer_index_lookup (l->idx[i], path);
      if (id == LAYER_INDEX_NONE)
        continue;
      const layer_index_disk_entry *e = layer_index_entry (l->idx[i], id);
      sbom_pkgs here = { 0 };
      if (e->type == LAYER_INDEX_REG)
        {
          autofree char *buf = NULL;
          size_t len;
          autoerror kiln_error *err = NULL;
          if (attest_layers_read (l, i, path, SBOM_MAX_FILE, &buf, &len, &err) < 0
              || parse_db (k, buf, len, path, &here, &err) < 0)
            hidden = true; /* unreadable: no package counts as kept */
        }
      for (size_t p = 0; p < final->n; p++)
        {
          bool kept = false;
          for (size_t q = 0; !hidden && q < here.n && !kept; q++)
            kept = strcmp (here.v[q].name, final->v[p].name) == 0
                   && strcmp (here.v[q].version, final->v[p].version) == 0;
          if (!kept)
            final->v[p].layer = -1;
          else if (final->v[p].layer < 0)
            final->v[p].layer = (int) i;
        }
      sbom_pkgs_clear (&here);
    }
}

static int
cmp_pkg (const void *a, const void *b)
{
  const sbom_pkg *x = a, *y = b;
  if (x->kind != y->kind)
    return x->kind < y->kind ? -1 : 1;
  int c = strcmp (x->name, y->name);
  if (c == 0)
    c = strcmp (x->version, y->version);
  if (c == 0)
    c = (x->layer > y->layer) - (x->layer < y->layer);
  return c ? c : strcmp (x->path, y->path);
}

static void
free_pkg (sbom_pkg *p)
{
  free (p->name);
  free (p->version);
  free (p->arch);
  free (p->license);
  free (p->path);
}

/* Sorted, without repeats of (kind, name, version): the lowest layer's
 * copy stays. */
static void
dedupe (sbom_pkgs *all)
{
  if (all->n == 0)
    return;
  qsort (all->v, all->n, sizeof *all->v, cmp_pkg);
  size_t k = 1;
  for (size_t i = 1; i < all->n; i++)
    {
      sbom_pkg *prev = &all->v[k - 1], *p = &all->v[i];
      if (p->kind == prev->kind && strcmp (p->name, prev->name) == 0 && strcmp (p->version, prev->version) == 0)
        {
          free_pkg (p);
          continue;
        }
      all->v[k++] = *p;
    }
  all->n = k;
}

/* Go binaries: every executable regular file of the merged view whose
 * ELF section headers name ".go.buildinfo" (a few small reads per
 * executable; the rest of the file is never read). */
static void
collect_go (const attest_layers *l, sbom_pkgs *all)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  for (size_t i = 0; i < l->n; i++)
    for (uint32_t id = 1; id < layer_index_count (l->idx[i]); id++)
      {
        const layer_index_disk_entry *e = layer_index_entry (l->idx[i], id);
        if (e->type != LAYER_INDEX_REG || !(e->mode & 0111) || e->size < 64)
          continue;
        strbuf_reset (&sb);
        layer_index_path (l->idx[i], id, &sb);
        uint32_t top;
        if (attest_layers_find (l, l->n - 1, sb.buf, &top) != (int) i || top != id)
          continue; /* replaced or deleted above */
        autoerror kiln_error *err = NULL;
        autoclose int fd = attest_layers_open_file (l, i, sb.buf, &err);
        autofree char *data = NULL;
        size_t len = 0;
        autofree char *abs = xasprintf ("/%s", sb.buf);
        sbom_pkgs got = { 0 };
        int r = fd < 0 ? -1 : sbom_elf_go_buildinfo (fd, e->size, &data, &len, &err);
        if (r > 0)
          r = sbom_parse_go_buildinfo (data, len, abs, &got, &err);
        if (r < 0)
          {
            autofree char *msg = kiln_error_string (err);
            log_warn ("sbom: Go build info of '%s': %s", abs, msg);
          }
        for (size_t k = 0; k < got.n; k++)
          got.v[k].layer = (int) i;
        all->v = xreallocarray (all->v, all->n + got.n + 1, sizeof *all->v);
        memcpy (all->v + all->n, got.v, got.n * sizeof *got.v);
        all->n += got.n;
        free (got.v);
      }
}

/* All packages of the image. A database that cannot be read or parsed is
 * skipped with a warning (a broken file in an image does not fail the
 * build). */
static void
collect (const attest_layers *l, sbom_pkgs *all)
{
  autostrv char **paths = candidates (l);
  for (char **p = paths; p && *p; p++)
    {
      uint32_t id;
      int li = attest_layers_find (l, l->n - 1, *p, &id);
      if (li < 0 || layer_index_entry (l->idx[li], id)->type != LAYER_INDEX_REG)
        continue;
      db_kind k = classify (*p);
      autofree char *buf = NULL;
      autofree char *abs = xasprintf ("/%s", *p);
      size_t len;
      autoerror kiln_error *err = NULL;
      sbom_pkgs got = { 0 };
      if (attest_layers_read (l, (size_t) li, *p, SBOM_MAX_FILE, &buf, &len, &err) < 0
          || parse_db (k, buf, len, abs, &got, &err) < 0)
        {
          autofree char *msg = kiln_error_string (err);
          log_warn ("sbom: %s (its packages are left out)", msg);
        }
      if (k == DB_DPKG || k == DB_APK)
        attribute_db (l, k, *p, &got);
      else
        for (size_t i = 0; i < got.n; i++)
          got.v[i].layer = li;
      all->v = xreallocarray (all->v, all->n + got.n + 1, sizeof *all->v);
      memcpy (all->v + all->n, got.v, got.n * sizeof *got.v);
      all->n += got.n;
      free (got.v);
    }
  collect_go (l, all);
  dedupe (all);
}

/* os-release's ID (NULL if none). */
static char *
distro_id (const attest_layers *l)
{
  static const char *const where[] = { "etc/os-release", "usr/lib/os-release" };
  for (size_t w = 0; w < ARRAY_SIZE (where); w++)
    {
      uint32_t id;
      int li = l->n ? attest_layers_find (l, l->n - 1, where[w], &id) : -1;
      if (li < 0 || layer_index_entry (l->idx[li], id)->type != LAYER_INDEX_REG)
        continue;
      autofree char *buf = NULL;
      size_t len;
      autoerror kiln_error *err = NULL;
      if (attest_layers_read (l, (size_t) li, where[w], 1 << 16, &buf, &len, &err) < 0)
        continue;
      for (char *line = buf; line && *line; line = strchr (line, '\n') ? strchr (line, '\n') + 1 : NULL)
        if (strncmp (line, "ID=", 3) == 0)
          {
            char *v = line + 3;
            v += strspn (v, "\"'");
            size_t n = strcspn (v, "\"'\n");
            char *r = xstrndup (v, n);
            for (char *c = r; *c; c++)
              if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.'))
                *c = '-';
            return *r ? r : (free (r), NULL);
          }
    }
  return NULL;
}

/* A license as recorded, if it reads as an SPDX license expression. */
static bool
spdx_expression (const char *s)
{
  if (!s || !*s || strlen (s) > 256)
    return false;
  for (const char *c = s; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr ("-.+() :", *c)))
      return false;
  return strcmp (s, "UNKNOWN") != 0;
}

void
attest_time (int64_t t, char buf[32])
{
  time_t tt = (time_t) t;
  struct tm tm;
  gmtime_r (&tt, &tm);
  strftime (buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *const kind_ids[] = { "", "deb", "apk", "pypi", "npm", "golang" };

static void
write_package (json_writer *w, const sbom_pkg *p, size_t i, const build_result *res, const char *distro)
{
  json_writer_begin_object (w);
  autofree char *id = xasprintf ("SPDXRef-Package-%s-%zu", kind_ids[p->kind], i);
  json_writer_kv_string (w, "SPDXID", id);
  json_writer_kv_string (w, "name", p->name);
  json_writer_kv_string (w, "versionInfo", p->version);
  json_writer_kv_string (w, "downloadLocation", "NOASSERTION");
  json_writer_kv_bool (w, "filesAnalyzed", false);
  json_writer_kv_string (w, "licenseConcluded", "NOASSERTION");
  json_writer_kv_string (w, "licenseDeclared", spdx_expression (p->license) ? p->license : "NOASSERTION");
  json_writer_kv_string (w, "copyrightText", "NOASSERTION");
  autofree char *src = NULL;
  if (p->layer >= 0 && (size_t) p->layer < res->n_layers)
    src = xasprintf ("layer %d (diffID %s, blob %s): %s", p->layer, res->layers[p->layer].diff_id,
                     res->layers[p->layer].digest, p->path);
  else
    src = xasprintf ("layer not known: %s", p->path);
  json_writer_kv_string (w, "sourceInfo", src);
  json_writer_key (w, "externalRefs");
  json_writer_begin_array (w);
  json_writer_begin_object (w);
  json_writer_kv_string (w, "referenceCategory", "PACKAGE-MANAGER");
  json_writer_kv_string (w, "referenceType", "purl");
  autofree char *purl = sbom_purl (p, distro);
  json_writer_kv_string (w, "referenceLocator", purl);
  json_writer_end_object (w);
  json_writer_end_array (w);
  json_writer_end_object (w);
}

static void
write_relationship (json_writer *w, const char *a, const char *type, const char *b)
{
  json_writer_begin_object (w);
  json_writer_kv_string (w, "spdxElementId", a);
  json_writer_kv_string (w, "relationshipType", type);
  json_writer_kv_string (w, "relatedSpdxElement", b);
  json_writer_end_object (w);
}

int
sbom_spdx_json (const attest_layers *l, const build_result *res, const attest_meta *m, char **out, size_t *len,
                kiln_error **err)
{
  sbom_pkgs all = { 0 };
  collect (l, &all);
  autofree char *distro = distro_id (l);
  char created[32];
  attest_time (m->created, created);
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_begin_object (w);
  json_writer_kv_string (w, "spdxVersion", "SPDX-2.3");
  json_writer_kv_string (w, "dataLicense", "CC0-1.0");
  json_writer_kv_string (w, "SPDXID", "SPDXRef-DOCUMENT");
  json_writer_kv_string (w, "name", m->name);
  autofree char *ns = xasprintf ("https://spdx.org/spdxdocs/kiln-%s", res->manifest_digest + strlen ("sha256:"));
  json_writer_kv_string (w, "documentNamespace", ns);
  json_writer_key (w, "creationInfo");
  json_writer_begin_object (w);
  json_writer_kv_string (w, "created", created);
  json_writer_key (w, "creators");
  json_writer_begin_array (w);
  autofree char *tool = xasprintf ("Tool: kiln-%s", m->kiln_version);
  json_writer_string (w, tool);
  json_writer_end_array (w);
  json_writer_end_object (w);
  json_writer_key (w, "documentDescribes");
  json_writer_begin_array (w);
  json_writer_string (w, "SPDXRef-Image");
  json_writer_end_array (w);
  json_writer_key (w, "packages");
  json_writer_begin_array (w);
  json_writer_begin_object (w);
  json_writer_kv_string (w, "SPDXID", "SPDXRef-Image");
  json_writer_kv_string (w, "name", m->name);
  json_writer_kv_string (w, "versionInfo", res->manifest_digest);
  json_writer_kv_string (w, "downloadLocation", "NOASSERTION");
  json_writer_kv_bool (w, "filesAnalyzed", false);
  json_writer_kv_string (w, "primaryPackagePurpose", "CONTAINER");
  json_writer_key (w, "checksums");
  json_writer_begin_array (w);
  json_writer_begin_object (w);
  json_writer_kv_string (w, "algorithm", "SHA256");
  json_writer_kv_string (w, "checksumValue", res->manifest_digest + strlen ("sha256:"));
  json_writer_end_object (w);
  json_writer_end_array (w);
  json_writer_end_object (w);
  for (size_t i = 0; i < all.n; i++)
    write_package (w, &all.v[i], i, res, distro);
  json_writer_end_array (w);
  json_writer_key (w, "relationships");
  json_writer_begin_array (w);
  write_relationship (w, "SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image");
  for (size_t i = 0; i < all.n; i++)
    {
      autofree char *id = xasprintf ("SPDXRef-Package-%s-%zu", kind_ids[all.v[i].kind], i);
      write_relationship (w, "SPDXRef-Image", "CONTAINS", id);
    }
  json_writer_end_array (w);
  json_writer_end_object (w);
  sbom_pkgs_clear (&all);
  if (json_writer_finish (w, out, len, err) < 0)
    return kiln_error_wrap (err, "SBOM");
  return 0;
}
