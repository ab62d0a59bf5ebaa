/* build_kaniko.c - kaniko executor flags of `kiln build`, their table and
 * the push access check (build_kaniko.h). */
#include "cmd/build_kaniko.h"
#include "cmd/cmd_common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry/reference.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/strbuf.h"

/* Every flag of kaniko's executor, v1.24.0 (cmd/executor/cmd/root.go; the
 * deprecated camelCase and whitelist spellings included), in root.go's
 * order, with its short form and, where kiln's meaning differs from
 * kaniko's in a way its help does not say, a remark for the table.
 * tests/integration/kaniko-executor-flags.txt is the same list extracted
 * from kaniko's source; kaniko.bats checks they agree. */
static const struct
{
  const char *name;
  char short_name;
  const char *remark;
} kaniko_flags[] = {
  { "verbosity", 'v', NULL },
  { "log-format", 0, "kaniko's default is color" },
  { "log-timestamp", 0, NULL },
  { "force", 0, NULL },
  { "dockerfile", 'f', "a relative path is looked up in the working directory, then in the context (as kaniko)" },
  { "context", 'c', "kiln: a directory, `dir://`, `tar://` or `-`; kaniko's bucket, git and URL contexts are an "
    "error naming these forms" },
  { "context-sub-path", 0, "kaniko applies it to `dir://`, `tar://` and remote contexts only, kiln to every "
    "context" },
  { "bucket", 'b', NULL },
  { "destination", 'd', NULL },
  { "snapshot-mode", 0, NULL },
  { "custom-platform", 0, NULL },
  { "build-arg", 0, NULL },
  { "insecure", 0, "kaniko: pushes only; kiln: every registry" },
  { "skip-tls-verify", 0, "kaniko: pushes only; kiln: every registry" },
  { "insecure-pull", 0, NULL },
  { "skip-tls-verify-pull", 0, NULL },
  { "push-retry", 0, NULL },
  { "push-ignore-immutable-tag-errors", 0, NULL },
  { "image-fs-extract-retry", 0, NULL },
  { "image-download-retry", 0, NULL },
  { "kaniko-dir", 0, NULL },
  { "tar-path", 0, NULL },
  { "single-snapshot", 0, NULL },
  { "reproducible", 0, NULL },
  { "target", 0, NULL },
  { "no-push", 0, NULL },
  { "no-push-cache", 0, NULL },
  { "cache-repo", 0, "kaniko's `oci:` layout cache is not supported" },
  { "cache-dir", 0, NULL },
  { "digest-file", 0, NULL },
  { "image-name-with-digest-file", 0, NULL },
  { "image-name-tag-with-digest-file", 0, NULL },
  { "oci-layout-path", 0, NULL },
  { "compression", 0, NULL },
  { "compression-level", 0, NULL },
  { "cache", 0, "kaniko's default is false: kiln caches in its store unless --no-cache; --cache=true adds the registry cache as kaniko's does" },
  { "compressed-caching", 0, NULL },
  { "cleanup", 0, NULL },
  { "cache-ttl", 0, NULL },
  { "insecure-registry", 0, NULL },
  { "skip-tls-verify-registry", 0, NULL },
  { "registry-certificate", 0, NULL },
  { "registry-client-cert", 0, NULL },
  { "registry-map", 0, NULL },
  { "registry-mirror", 0, NULL },
  { "skip-default-registry-fallback", 0, NULL },
  { "ignore-var-run", 0, "kaniko's default is true; kiln's (flag not given) keeps /var/run as Docker does" },
  { "label", 0, NULL },
  { "skip-unused-stages", 0, "kaniko's default is false" },
  { "use-new-run", 0, NULL },
  { "git", 0, NULL },
  { "cache-copy-layers", 0, NULL },
  { "cache-run-layers", 0, NULL },
  { "ignore-path", 0, NULL },
  { "force-build-metadata", 0, NULL },
  { "skip-push-permission-check", 0, NULL },
  { "snapshotMode", 0, NULL },
  { "customPlatform", 0, NULL },
  { "tarPath", 0, NULL },
  { "whitelist-var-run", 0, NULL },
};

/* The one line logged for a flag kiln accepts but has nothing to do for:
 * what kiln does instead. */
static const char *const kaniko_notes[] = {
  [CMD_KANIKO_NOTE_FORCE - CMD_KANIKO_NOTE_FORCE]
  = "--force has no effect: kiln runs inside a container or outside it alike, and never changes the host's files",
  [CMD_KANIKO_NOTE_KANIKO_DIR - CMD_KANIKO_NOTE_FORCE]
  = "--kaniko-dir has no effect: kiln keeps its state in its store (--root DIR or $KILN_ROOT)",
  [CMD_KANIKO_NOTE_EXTRACT_RETRY - CMD_KANIKO_NOTE_FORCE]
  = "--image-fs-extract-retry has no effect: kiln extracts layers from blobs it verified on download (downloads "
    "are retried, --retries)",
  [CMD_KANIKO_NOTE_COMPRESSED_CACHING - CMD_KANIKO_NOTE_FORCE]
  = "--compressed-caching has no effect: kiln's cache entries are the build's own layers, compressed once",
  [CMD_KANIKO_NOTE_GIT - CMD_KANIKO_NOTE_FORCE]
  = "--git has no effect: kiln has no git contexts (clone the repository and give its directory as --context)",
  [CMD_KANIKO_NOTE_FORCE_METADATA - CMD_KANIKO_NOTE_FORCE]
  = "--force-build-metadata has no effect: kiln records metadata-only instructions in the image config without "
    "adding layers, as Docker does",
  [CMD_KANIKO_NOTE_CACHE_DIR - CMD_KANIKO_NOTE_FORCE]
  = "--cache-dir has no effect: kiln keeps base images in its store; to keep them between runs put the store on "
    "the cache volume (--root DIR)",
  [CMD_KANIKO_NOTE_AZURE - CMD_KANIKO_NOTE_FORCE]
  = "--azure-container-registry-config has no effect: kiln reads registry credentials from auth.json, "
    "config.json and credential helpers",
};

static int
parse_retry (const char *flag, const char *value, int *out, kiln_error **err)
{
  char *end;
  errno = 0;
  long n = strtol (value, &end, 10);
  if (*value == '\0' || *end || errno || n < 0 || n > 100)
    return kiln_error_make (err, EINVAL, "--%s: expected a number from 0 to 100, got '%s'", flag, value);
  *out = (int) n;
  return 0;
}

/* --registry-map SRC=DST[;SRC=DST...] (kaniko: repeatable too). */
static int
registry_map_handle (char ***mirrors, const char *value, kiln_error **err)
{
  autofree char *copy = xstrdup (value);
  char *save = NULL;
  for (char *p = strtok_r (copy, ";", &save); p; p = strtok_r (NULL, ";", &save))
    {
      char *eq = strchr (p, '=');
      autofree char *src = eq ? xstrndup (p, (size_t) (eq - p)) : NULL;
      if (!eq || !registry_domain_valid (src) || !registry_domain_valid (eq + 1))
        return kiln_error_make (err, EINVAL, "--registry-map: expected REGISTRY=MIRROR[;REGISTRY=MIRROR...] (host "
                                "names), got '%s'", p);
      strv_push (mirrors, p);
    }
  return 0;
}

static bool
strv_has (char *const *v, const char *s)
{
  for (; v && *v; v++)
    if (strcmp (*v, s) == 0)
      return true;
  return false;
}

int
cmd_kaniko_handle (cmd_kaniko_opts *k, registry_options *reg, char ***mirrors, char ***notes, int id,
                   const char *value, kiln_error **err)
{
  if (id >= CMD_KANIKO_NOTE_FORCE && id < CMD_KANIKO_NOTE_END)
    {
      strv_push (notes, kaniko_notes[id - CMD_KANIKO_NOTE_FORCE]);
      return 1;
    }
  int r = 0;
  switch (id)
    {
    case CMD_KANIKO_SKIP_TLS_VERIFY_PULL:
      r = cli_parse_bool ("skip-tls-verify-pull", value, &k->skip_tls_verify_pull, err);
      break;
    case CMD_KANIKO_NAME_TAG_DIGEST_FILE:
      cmd_set_string (&k->name_tag_digest_file, value);
      break;
    case CMD_KANIKO_CONTEXT_SUB_PATH:
      if (value[0] == '/' || strcmp (value, "..") == 0 || strncmp (value, "../", 3) == 0 || strstr (value, "/../")
          || (strlen (value) >= 3 && strcmp (value + strlen (value) - 3, "/..") == 0))
        return kiln_error_make (err, EINVAL, "--context-sub-path '%s': expected a relative path inside the context",
                                value);
      cmd_set_string (&k->context_sub_path, value);
      break;
    case CMD_KANIKO_NO_PUSH_CACHE:
      r = cli_parse_bool ("no-push-cache", value, &k->no_push_cache, err);
      break;
    case CMD_KANIKO_IGNORE_VAR_RUN:
      {
        bool b;
        r = cli_parse_bool ("ignore-var-run", value, &b, err);
        k->ignore_var_run = b;
        break;
      }
    case CMD_KANIKO_REGISTRY_MAP:
      r = registry_map_handle (mirrors, value, err);
      break;
    case CMD_KANIKO_SKIP_DEFAULT_FALLBACK:
      r = cli_parse_bool ("skip-default-registry-fallback", value, &reg->mirrors_only, err);
      break;
    case CMD_KANIKO_PUSH_IGNORE_IMMUTABLE:
      r = cli_parse_bool ("push-ignore-immutable-tag-errors", value, &k->push_ignore_immutable, err);
      break;
    case CMD_KANIKO_IMAGE_DOWNLOAD_RETRY:
      r = parse_retry ("image-download-retry", value, &k->image_download_retry, err);
      break;
    case CMD_KANIKO_SKIP_PUSH_CHECK:
      r = cli_parse_bool ("skip-push-permission-check", value, &k->skip_push_check, err);
      break;
    case CMD_KANIKO_HELP_TABLE:
      k->print_table = true;
      break;
    case CMD_KANIKO_BUCKET:
      return kiln_error_make (err, ENOTSUP, "--bucket '%s': kiln cannot fetch a build context from a bucket; "
                              "download the archive and give --context tar://FILE", value);
    default:
      return 0;
    }
  return r < 0 ? r : 1;
}

void
cmd_kaniko_finish (const cmd_kaniko_opts *k, char ***ignore_paths)
{
  if (k->ignore_var_run == 1)
    strv_push (ignore_paths, "/var/run");
}

void
cmd_kaniko_free (cmd_kaniko_opts *k)
{
  free (k->name_tag_digest_file);
  free (k->context_sub_path);
  k->name_tag_digest_file = k->context_sub_path = NULL;
}

static const cli_option *
find_name (const cli_option *opts, size_t n, const char *name)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (opts[i].name, name) == 0)
      return &opts[i];
  return NULL;
}

/* The documented option with o's id (o itself when it has help). */
static const cli_option *
primary_of (const cli_option *opts, size_t n, const cli_option *o)
{
  if (o->help)
    return o;
  for (size_t i = 0; i < n; i++)
    if (opts[i].id == o->id && opts[i].help)
      return &opts[i];
  return NULL;
}

/* A Markdown table cell: | would end it. */
static void
add_cell (strbuf *sb, const char *text)
{
  for (const char *p = text; *p; p++)
    {
      if (*p == '|')
        strbuf_addch (sb, '\\');
      strbuf_addch (sb, *p);
    }
}

int
cmd_kaniko_print_table (FILE *out, const cli_option *opts, size_t n_opts, kiln_error **err)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  strbuf_adds (&sb, "| kaniko flag | kiln flag | in kiln |\n| --- | --- | --- |\n");
  for (size_t i = 0; i < ARRAY_SIZE (kaniko_flags); i++)
    {
      const char *name = kaniko_flags[i].name;
      const cli_option *o = find_name (opts, n_opts, name);
      if (!o)
        return kiln_error_make (err, 0, "kaniko flag '--%s' is missing from kiln build's flag table", name);
      char ks = kaniko_flags[i].short_name;
      if (ks)
        {
          const cli_option *s = NULL;
          for (size_t j = 0; j < n_opts; j++)
            if (opts[j].short_name == ks)
              s = &opts[j];
          if (!s || s->id != o->id)
            return kiln_error_make (err, 0, "kaniko's '-%c' (--%s) means something else in kiln build", ks, name);
        }
      const cli_option *p = primary_of (opts, n_opts, o);
      if (!p)
        return kiln_error_make (err, 0, "kaniko flag '--%s' has no documented kiln flag", name);
      strbuf_addf (&sb, "| `--%s`", name);
      if (ks)
        strbuf_addf (&sb, ", `-%c`", ks);
      strbuf_adds (&sb, " | ");
      if (p == o)
        strbuf_adds (&sb, "same");
      else if (p->short_name)
        strbuf_addf (&sb, "`-%c`, `--%s`", p->short_name, p->name);
      else
        strbuf_addf (&sb, "`--%s`", p->name);
      strbuf_adds (&sb, " | ");
      add_cell (&sb, strncmp (p->help, "(kaniko) ", 9) == 0 ? p->help + 9 : p->help);
      if (kaniko_flags[i].remark)
        {
          strbuf_adds (&sb, " *(");
          add_cell (&sb, kaniko_flags[i].remark);
          strbuf_adds (&sb, ")*");
        }
      strbuf_adds (&sb, " |\n");
    }
  fputs (sb.buf, out);
  return 0;
}

int
cmd_kaniko_check_push (const registry_options *reg, char *const *destinations, bool no_push, const char *cache_repo,
                       bool no_push_cache, kiln_error **err)
{
  autostrv char **targets = NULL;
  if (!no_push)
    for (char *const *d = destinations; d && *d; d++)
      strv_push (&targets, *d);
  if (cache_repo && !no_push_cache)
    strv_push (&targets, cache_repo);
  autostrv char **checked = NULL;
  for (char **t = targets; t && *t; t++)
    {
      bool is_cache = cache_repo && !no_push_cache && t[1] == NULL;
      autoref registry_ref *ref = NULL;
      if (registry_ref_parse (*t, &ref, err) < 0)
        return kiln_error_wrap (err, "'%s'", *t);
      autofree char *name = registry_ref_name (ref);
      if (strv_has (checked, name))
        continue;
      strv_push (&checked, name);
      autoclient registry_client *c = NULL;
      if (registry_client_new (reg, ref->domain, &c, err) < 0 || registry_check_push (c, ref->path, err) < 0)
        {
          /* A cache registry that is down costs a warning (the build goes
           * on without it); wrong credentials or names are errors. */
          if (is_cache && *err && (*err)->kind == KILN_ERROR_UNREACHABLE)
            {
              autofree char *msg = kiln_error_string (*err);
              log_warn ("--cache-repo '%s': %s", cache_repo, msg);
              kiln_error_clear (err);
              continue;
            }
          return kiln_error_wrap (err, "no push access to '%s' (checked before the build as kaniko does; "
                                  "--skip-push-permission-check skips the check)", name);
        }
      log_debug ("push access to %s: ok", name);
    }
  return 0;
}

char *
cmd_kaniko_dockerfile_path (const char *file, const char *ctx_dir, bool in_context)
{
  if (!file)
    return xasprintf ("%s/Dockerfile", ctx_dir);
  if (file[0] == '/')
    return xstrdup (file);
  if (in_context || access (file, F_OK) < 0)
    {
      autofree char *inside = xasprintf ("%s/%s", ctx_dir, file);
      if (in_context || access (inside, F_OK) == 0)
        return steal_pointer (&inside);
    }
  return xstrdup (file);
}
