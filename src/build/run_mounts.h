/* run_mounts.h - RUN --mount: turn a step's mount options into sandbox
 * mounts backed by the store.
 *
 *   type=cache   a directory in the store (STORE/cache/<sha256 of id>), kept
 *                across builds and never in a layer; sharing=shared (a
 *                shared lock for the step: an import cannot swap the
 *                directory under it), locked (exclusive lock for the
 *                step), private (a fresh temporary directory when another
 *                step holds it); uid/gid/mode apply when the directory is
 *                created. With --cache-mounts-repo the registry's entry
 *                is imported first (build_cache_mounts.h).
 *   type=tmpfs   a tmpfs (size=).
 *   type=secret  the secret's bytes (--secret id=ID,src=PATH|env=VAR) in a
 *                private temporary file, bind-mounted read-only at
 *                /run/secrets/ID or target=; never in a layer, the log or a
 *                cache key. A missing secret is skipped unless required=true.
 *   type=bind    a file or directory of the build context (read-only), or
 *                of another stage or image (from=): that subtree is copied
 *                out of the store layers into a private temporary directory
 *                with its true modes (and, as root, owners), so rw writes
 *                are discarded with it.
 *                A rw bind of the context is a private copy (writes are
 *                discarded with it).
 * Not implemented (clear errors): cache from=/source=, type=ssh.
 *
 * Every target is also returned as an overlay mask path, so it exists in the
 * step's root and never reaches the layer.
 */
#ifndef KILN_BUILD_RUN_MOUNTS_H
#define KILN_BUILD_RUN_MOUNTS_H

#include <stddef.h>
#include <sys/types.h>
#include "build/plan.h"
#include "overlay/overlay_lower.h"
#include "sandbox/sandbox.h"
#include "store/store.h"
#include "util/error.h"

typedef struct run_mounts_env
{
  store *store;
  int ctxfd;                   /* build context, or -1 */
  const sandbox_idmap *idmap;  /* to give files to the step's ids */
  char **secrets;              /* --secret values: "id=ID,src=PATH" / "id=ID,env=VAR" */
  const char *workdir;         /* relative targets are below it */
  /* bind from=STAGE|IMAGE: the merged layers of that stage or image. */
  int (*open_from) (void *ctx, const char *from, overlay_lower **out, kiln_error **err);
  void *open_from_ctx;
  /* ptrace isolation: kiln shows the step any owner it records (the
   * tracer), so uid/gid of a mount are kept as set_owner whatever the ID
   * mapping. */
  bool owners_presented;
  /* --cache-mounts-repo: a cache id's registry entry is imported before
   * the first step that mounts it (NULL: none). */
  struct build_cache_mounts *cache_mounts;
  /* readable when the build is cancelled (SIGINT/SIGTERM, a failed stage):
   * ends a wait for a cache mount's lock; -1: none */
  int cancel_fd;
} run_mounts_env;

typedef struct run_mounts
{
  sandbox_mount *v;
  size_t n;
  char **masks;                /* overlay mask paths ("run/secrets/x", "cache/") */
  char **strings;              /* owned sources and targets */
  int *fds;                    /* held locks */
  size_t n_fds;
  char **locked;               /* cache ids (hashed) whose lock the step holds */
  char **tmpnames;             /* store tmp/ entries to remove */
  char **data;                 /* contents of FILE mounts (secrets: wiped on release) */
  size_t *data_len;
  size_t n_data;
  store *store;
} run_mounts;

int run_mounts_prepare (const run_mounts_env *env, const plan_step *s, run_mounts *out, kiln_error **err);
void run_mounts_release (run_mounts *m);

/* RUN <<EOF whose body starts with "#!": the body becomes an executable
 * file at /dev/pipes/NAME (where BuildKit puts it), on the step's own /dev. */
int run_mounts_add_script (const char *name, const char *body, run_mounts *m, kiln_error **err);

/* A read-only file with body at target (below /dev: kiln's own mounts),
 * held in the step's memory (SANDBOX_MOUNT_FILE), never on disk. */
void run_mounts_add_file (const char *target, const char *body, mode_t mode, run_mounts *m);

/* Validate a --secret value ("id=ID,src=PATH" or "id=ID,env=VAR"). */
int run_mounts_check_secret (const char *spec, kiln_error **err);

#endif
