/* build_exec.h - the build engine: run a build plan into an image in the
 * store.
 *
 * Data flow (docs/architecture.md, "A build"):
 *   FROM image  -> store_fetch_image (pulled once; warm FROM costs nothing)
 *   FROM stage  -> that stage's layers and config
 *   RUN         -> overlay over the stage's store layers, mounted inside the
 *                  step's sandbox; the overlay's write log becomes the change
 *                  list -> layer_writer (tar + compress + digests, one pass)
 *                  -> blob in the store -> extracted as the next step's lower
 *   COPY/ADD    -> change list straight from the sources (copy.h)
 *   metadata    -> image_spec (config), history entries
 * The target stage's config and manifest are written to the store; outputs
 * (push, OCI layout, docker archive) are the caller's (cmd/build.c).
 */
#ifndef KILN_BUILD_BUILD_EXEC_H
#define KILN_BUILD_BUILD_EXEC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "build/plan.h"
#include "build/progress.h"
#include "registry/client.h"
#include "sandbox/sandbox.h"
#include "store/image.h"
#include "store/layer_writer.h"
#include "store/store.h"
#include "store/fetch.h"
#include "util/digest.h"
#include "util/error.h"
#include "util/sigcancel.h"

typedef struct build_exec_opts
{
  store *store;
  const char *context_dir;      /* NULL: no context (COPY from the context is an error) */
  const char *dockerfile_path;  /* for .dockerignore beside the Dockerfile */
  const registry_options *reg;
  char **mirrors;               /* --registry-mirror hosts for docker.io */
  /* --pull: ALWAYS (default) resolves every base image's tag again and
   * falls back to the store's last resolution, with a warning, when the
   * registry cannot be reached; MISSING uses the store's copy when there
   * is one; NEVER only the store. */
  store_pull_policy pull;
  char **build_args;            /* --build-arg, for ONBUILD triggers */
  layer_writer_opts layer;      /* compression, level, threads, mtime clamp */
  image_format format;
  bool reproducible;            /* created times = epoch; mtimes clamped */
  int64_t epoch;                /* SOURCE_DATE_EPOCH or 0 */
  sandbox_userns_mode userns;
  sandbox_net_mode network;     /* default for RUN (RUN --network overrides) */
  bool network_set;             /* --network given (else private, or host under ptrace isolation) */
  sandbox_isolation isolation;  /* --isolation (AUTO: chosen before the first RUN) */
  const char *seccomp_policy;   /* NULL: the default profile; "unconfined" */
  char **labels;                /* --label K=V, applied to the target */
  char **secrets;               /* --secret id=ID,src=PATH|env=VAR */
  progress *progress;
  struct build_cache *cache;    /* NULL: no build cache (--no-cache) */
  struct build_cache_mounts *cache_mounts; /* --cache-mounts-repo, or NULL */
  char **ignore_paths;          /* kaniko --ignore-path: left out of every layer */
  bool single_snapshot;         /* kaniko --single-snapshot: one layer for the target stage's steps */
  bool allow_insecure;          /* --allow security.insecure: RUN --security=insecure is granted */
  int jobs;                     /* independent stages built at once (<= 1: one after another) */
  bool platform_labels;         /* several platforms: progress and errors name a stage "linux/arm64 NAME" */
  sandbox_limits limits;        /* --memory, --pids-limit: per RUN step (zero: none) */
  /* The build's cancellation (NULL: none): readable once SIGINT/SIGTERM
   * arrived; every RUN step and stage mount set-up polls its read end
   * (sandbox cancel_fd), and a failing stage triggers it to stop the
   * others. */
  const sigcancel_pipe *cancel;
  /* Set to SIGINT/SIGTERM by the caller's signal handler (and only by it);
   * checked between steps. */
  volatile sig_atomic_t *signal_flag;
} build_exec_opts;

typedef struct build_layer
{
  char diff_id[DIGEST_STRING_SIZE];
  char digest[DIGEST_STRING_SIZE];
  char *media_type;
  int64_t size;
  /* The step that made the layer: "stage 1 (name) step 3: RUN ..." for a
   * step of this build (built or from the cache), NULL for a layer that
   * came with a base image (provenance, build/provenance.h). */
  char *origin;
  /* A lazy layer (docs/design/build.md "Lazy layers"): the image that lists
   * it, "DOMAIN/PATH@sha256:MANIFEST" (a base image or a --cache-repo
   * entry), where it is fetched from when its files or blob are needed and
   * the store lacks them; NULL for a layer this build made. */
  char *source;
} build_layer;

typedef struct build_result
{
  char manifest_digest[DIGEST_STRING_SIZE];
  char *manifest;
  size_t manifest_len;
  const char *manifest_media_type;
  char config_digest[DIGEST_STRING_SIZE];
  build_layer *layers;
  size_t n_layers;
  uint64_t size;                /* config + layers, compressed */
  /* Every image the build fetched (FROM, COPY --from, RUN --mount from):
   * "REF@PLATFORM" and its manifest digest, pairs (provenance). */
  char **fetched;
  /* ADD URLs of the build: the URL and the sha256 digest of what it gave,
   * pairs (provenance). */
  char **add_urls;
  /* seconds per phase */
  double t_pull, t_run, t_snapshot, t_pack, t_copy;
  char *os, *architecture, *variant; /* the image config's platform (variant may be NULL) */
  /* A multi-platform build (build_output_index): one image per platform,
   * and manifest* above are then the index's. */
  struct build_result *images;
  size_t n_images;
} build_result;

void build_result_clear (build_result *r);

typedef struct build_exec build_exec;

int build_exec_new (const build_exec_opts *opts, build_exec **out, kiln_error **err);
void build_exec_free (build_exec *b);

/* plan_options.image_env callback (ctx = build_exec): fetches the image. */
int build_exec_image_env (void *ctx, const char *image, const char *platform, char ***env, kiln_error **err);

/* Up front: every needed stage with RUN steps for another architecture
 * has a binfmt_misc handler to run them (sandbox_binfmt_check), and
 * --isolation=ptrace was not asked for (it runs native programs only; an
 * automatic choice of ptrace is checked before each RUN). Also the first
 * thing build_exec_run does. */
int build_exec_check_emulation (build_exec *b, const plan *p, kiln_error **err);

/* The digest of the build context as a whole (provenance): the sha256 of
 * a listing of everything COPY . / would take from it (.dockerignore
 * applied, a store inside it left out), sorted by path, one entry per file:
 * TYPE NUL MODE NUL PATH NUL VALUE NUL, where TYPE is f d l h c b p s
 * (regular, directory, symlink, another name of a file COPY's sorted walk
 * met before, devices, fifo, socket), MODE the four octal permission
 * digits, VALUE the content's "sha256:HEX" (f), the link target (l), that
 * first name (h), "MAJOR,MINOR" (c, b) or empty.
 * Owners, times and xattrs are left out (COPY sets the owner; times are not
 * content). docs/design/build.md, "Attestations". */
int build_exec_context_digest (build_exec *b, char out[DIGEST_STRING_SIZE], kiln_error **err);

/* Build the plan's target stage. */
int build_exec_run (build_exec *b, plan *p, build_result *res, kiln_error **err);

#endif
