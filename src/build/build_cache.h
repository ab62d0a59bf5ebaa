/* build_cache.h - the build cache: the layer a step produced, by cache key.
 *
 * Keys. Each stage carries a running key: the base (image manifest digest,
 * "scratch" + platform, or the base stage's final key) hashed with a salt
 * of everything that changes layer bytes (compression, level, format,
 * reproducible epoch), then every step folded in (kind, expanded
 * arguments, flags, heredoc bodies, build-time ARGs except the proxy
 * variables, as Docker). COPY/ADD (and WORKDIR) also fold in a digest of
 * their change list — paths, types, modes, owners, link targets, xattrs
 * and file contents, not mtimes (as BuildKit) — so an edited source misses
 * and an untouched checkout hits. RUN folds in the content of context bind
 * mounts and the keys of stages mounted with from=. Secret values are never
 * part of a key, only the mount's id/target.
 *
 * Entries. A cache entry is a one-layer image (or a zero-layer one for a
 * step that changed nothing) whose config records the step's history line:
 * locally refs/cache/<hex> -> its manifest, so `kiln prune` keeps the
 * layer, blob and index like any kept image (prune --all drops them); with
 * --cache-repo REPO the same image is pushed as REPO:<hex> (kaniko's
 * layout: one tag per key) at the end of the build and looked up there on a
 * local miss, so CI jobs with an empty store share layers.
 */
#ifndef KILN_BUILD_BUILD_CACHE_H
#define KILN_BUILD_BUILD_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include "build/build_cache_explain.h"
#include "build/progress.h"
#include "registry/client.h"
#include "store/image.h"
#include "store/layer_writer.h"
#include "store/store.h"
#include "util/digest.h"
#include "util/error.h"

typedef struct build_cache_opts
{
  store *store;
  bool enabled;              /* false: --no-cache (nothing looked up or recorded) */
  bool cache_run;            /* RUN layers (kaniko --cache-run-layers, default true) */
  bool cache_copy;           /* COPY/ADD/WORKDIR layers in the store (default true) */
  /* COPY/ADD/WORKDIR layers also through repo (kaniko's --cache-copy-layers;
   * default true, unlike kaniko: with lazy layers, rebuilding one from the
   * context would fetch every layer below it). */
  bool cache_copy_remote;
  const char *repo;          /* --cache-repo registry/repository, or NULL */
  bool no_push;              /* look entries up in repo but push none (kaniko's --no-push-cache) */
  const registry_options *reg;
  int64_t ttl;               /* seconds; entries older are misses; 0: no limit */
  image_format format;
  progress *progress;
} build_cache_opts;

/* What a step produced. */
typedef struct build_cache_entry
{
  bool empty;                           /* no layer (history empty_layer) */
  char diff_id[DIGEST_STRING_SIZE];
  char digest[DIGEST_STRING_SIZE];      /* compressed blob */
  char media_type[128];
  int64_t size;
  /* A --cache-repo hit: "DOMAIN/PATH@sha256:MANIFEST" of the entry, whose
   * layer is not fetched until needed (build_layer.source); "" otherwise. */
  char source[640];
} build_cache_entry;

typedef struct build_cache build_cache;

int build_cache_new (const build_cache_opts *o, build_cache **out, kiln_error **err);
void build_cache_free (build_cache *c);
/* Keys are computed (the cache is on; c may be NULL = off). */
bool build_cache_enabled (const build_cache *c);
/* The cache is on with --cache-repo: base images' layers are lazy
 * (build_lazy.h); the registry's entries always are. */
bool build_cache_lazy (const build_cache *c);
/* Results of RUN (run) or COPY/ADD/WORKDIR steps are looked up/recorded. */
bool build_cache_wants (const build_cache *c, bool run);

/* ---- keys ---- */

typedef struct build_cache_key
{
  digest_ctx *d;
  /* If set, what is folded in is also recorded there (the caller sets
   * it after build_cache_key_begin and owns it). */
  cache_components *rec;
  /* Change lists: a file whose data lies below this directory (the
   * context) is recorded by its path there, others by their layer path
   * ("/app/a.txt"); -1: none. */
  int name_dirfd;
} build_cache_key;

/* Start a key from prev (a key or any seed text). */
void build_cache_key_begin (build_cache_key *k, const char *prev);
/* Fold a named field in (length-prefixed: no two field lists collide). */
void build_cache_key_add (build_cache_key *k, const char *field, const char *value);
/* Fold in a change list (any order): metadata except mtimes, and the
 * SHA-256 of every regular file's data (read through its dirfd, never
 * following symlinks). */
int build_cache_key_add_changes (build_cache_key *k, const layer_change *ch, size_t n, kiln_error **err);
/* Finish into out ("sha256:<hex>") and free the context. */
void build_cache_key_end (build_cache_key *k, char out[DIGEST_STRING_SIZE]);
/* Drop an unfinished key. */
void build_cache_key_abort (build_cache_key *k);

/* ---- entries ---- */

/* Look key up: locally, then in --cache-repo (pulled into the store).
 * Returns 1 on a hit (*out filled, the layer extracted in the store and
 * its blob present; *where is "local" or "registry"), 0 on a miss,
 * negative on an error that is not a miss (a registry that fails for
 * another reason than "unknown tag" is logged as a warning and counts as
 * a miss: a cache must never fail a build). os/arch: the stage's; run:
 * a RUN step's (else COPY/ADD/WORKDIR: cache_copy_remote decides whether
 * the registry is asked). A local hit is also queued for --cache-repo,
 * pushed there by build_cache_flush if the repository lacks it (so a warm
 * runner fills the cache a fresh one reads). */
int build_cache_lookup (build_cache *c, const char *key, bool run, const char *os, const char *arch,
                        build_cache_entry *out, const char **where, kiln_error **err);
/* The step a key belongs to, for explaining misses: its position (hex of
 * the Dockerfile, stage, step number and kind: the same step across
 * builds) and its key's components (may be NULL). */
typedef struct build_cache_step
{
  const char *position;
  const cache_components *comp;
} build_cache_step;

/* Record what the step keyed key produced (created_by: its history line);
 * queued for --cache-repo (COPY/ADD/WORKDIR only with cache_copy_remote).
 * With step: its components go into the entry's config (label
 * CACHE_COMPONENTS_LABEL) and the entry becomes the newest of its position
 * (refs/cache-steps/<position>/0..3 locally; tag step-<position> in
 * --cache-repo). */
int build_cache_record (build_cache *c, const char *key, bool run, const char *os, const char *arch,
                        const build_cache_entry *e, const char *created_by, const build_cache_step *step,
                        kiln_error **err);

/* After a miss: why. The closest of the recent entries recorded at the
 * step's position (locally; else, when the registry cache is used for the
 * step, the newest in --cache-repo: one manifest and one config fetched)
 * is compared with now (cache_explain). Never fails: without an earlier
 * entry the reason is "no earlier build of this step". */
void build_cache_explain (build_cache *c, const build_cache_step *step, bool run, char **text, char **json);
/* Push the entries queued in this build to --cache-repo (no-op without
 * one): recorded ones, and local hits the repository lacks. Failures are
 * warnings: the image itself is what the user asked for. Returns the
 * number pushed. */
int build_cache_flush (build_cache *c);

#endif
