/* plan.h - the build plan: stages, resolved arguments and expanded
 * instructions, ready for the executor.
 *
 * plan_build() takes a parsed Dockerfile and the user's options
 * (--build-arg, --target, --platform, --skip-unused-stages) and resolves:
 *   - global ARGs (before the first FROM) and FROM lines, including the
 *     automatic platform ARGs (BUILDPLATFORM, TARGETPLATFORM, *OS, *ARCH,
 *     *VARIANT);
 *   - per stage the ARG scope (global ARGs only after re-declaration,
 *     --build-arg overrides, ARG without value = build-arg or unset) and ENV
 *     (ENV wins over an ARG of the same name);
 *   - expansion of exactly the instructions the reference lists: ADD COPY ENV
 *     EXPOSE FROM LABEL STOPSIGNAL USER VOLUME WORKDIR ARG plus the values of
 *     COPY/ADD --from/--chown/--chmod/--checksum/--exclude and RUN --mount.
 *     RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK commands are not expanded (the
 *     shell does that at run time);
 *   - stage references (FROM <stage>, COPY --from=<name|index>, RUN
 *     --mount=from=<stage>), the dependency graph with cycle detection, the
 *     stages the target needs, and "waves": stages in the same wave do not
 *     depend on each other and may be built in parallel.
 *
 * The base image's ENV is not known without contacting a registry. With
 * image_env == NULL (dry run) variables that could come from it are kept
 * literally (e.g. "$PATH") and listed in plan_step.unresolved; the executor
 * passes image_env to get final values.
 *
 * All strings are owned by the plan; plan_free() releases everything
 * including the dockerfile handed to plan_build().
 */
#ifndef KILN_BUILD_PLAN_H
#define KILN_BUILD_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include "build/dockerfile.h"
#include "util/error.h"

/* Return the ENV of IMAGE for PLATFORM as "K=V" strings in *env (caller
 * frees with strv_free). */
typedef int (*plan_image_env_fn) (void *ctx, const char *image, const char *platform, char ***env,
                                  kiln_error **err);

typedef struct plan_options
{
  char **build_args;           /* "K=V" or "K" (value from the environment, as docker) */
  const char *target;          /* stage name, or NULL for the last stage */
  const char *platform;        /* "os/arch[/variant]" or NULL for the host */
  bool skip_unused_stages;     /* true (BuildKit): build only what the target needs */
  plan_image_env_fn image_env; /* NULL for dry runs */
  void *image_env_ctx;
} plan_options;

typedef struct plan_kv
{
  char *key;
  char *value; /* NULL: ARG declared without a value */
} plan_kv;

typedef struct plan_heredoc
{
  char *name;
  char *body;   /* COPY/ADD: expanded unless the delimiter was quoted; RUN: as written */
  bool expand;
  bool chomp;
} plan_heredoc;

/* RUN --mount, parsed and validated (BuildKit's keys; aliases normalised:
 * dst/destination -> target, src -> source, ro -> readonly, rw -> readonly=false). */
typedef struct plan_mount
{
  char *type;       /* bind (default), cache, tmpfs, secret, ssh */
  plan_kv *opts;    /* remaining key=value options in order; bare keys get "true" */
  size_t n_opts;
} plan_mount;

typedef struct plan_step
{
  const dockerfile_instr *instr; /* source node: line, keyword, original text */
  dockerfile_kind kind;
  /* Expanded arguments:
   *  ADD/COPY: sources then destination; heredoc sources as "<<NAME";
   *  VOLUME: paths; EXPOSE: normalised "port/proto" entries (ranges kept as
   *  "a-b/proto"); USER/WORKDIR/STOPSIGNAL/MAINTAINER: one value;
   *  RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK: as written (not expanded);
   *  ONBUILD: the trigger text. */
  char **args;
  bool json;              /* exec form */
  char **argv;            /* RUN/CMD/ENTRYPOINT/HEALTHCHECK CMD: final argv
                           * (shell form = current SHELL + [command]) */
  plan_kv *kvs;           /* ENV, LABEL, ARG (after --build-arg), expanded */
  size_t n_kvs;
  plan_kv *flags;         /* flags with expanded values, in order */
  size_t n_flags;
  plan_heredoc *heredocs;
  size_t n_heredocs;
  int from_stage;         /* COPY --from: stage index, or -1 */
  char *from_image;       /* COPY --from an image reference, or NULL */
  plan_mount *mounts;     /* RUN --mount, in order */
  size_t n_mounts;
  int *mount_stages;      /* RUN --mount from=<stage>: stage indexes */
  size_t n_mount_stages;
  char **build_env;       /* RUN: "K=V" of ARGs in scope and proxy build-args;
                           * set for the command only, never in the image */
  char **unresolved;      /* variables kept literally (base image ENV unknown) */
} plan_step;

typedef struct plan_stage
{
  int index;
  char *name;             /* lowercased AS name, or NULL */
  char *base;             /* expanded FROM image or stage name */
  int base_stage;         /* index of the base stage, or -1 */
  bool scratch;
  char *platform;         /* "os/arch[/variant]" */
  bool platform_explicit; /* FROM --platform given */
  plan_step *steps;
  size_t n_steps;
  int *deps;              /* stages this one needs (sorted, unique) */
  size_t n_deps;
  bool needed;            /* built for this target */
  int wave;               /* 0-based; -1 if not needed */
  char **onbuild;         /* ONBUILD triggers this stage records (text) */
} plan_stage;

typedef struct plan
{
  dockerfile *df;
  char *build_platform;
  char *target_platform;
  plan_kv *global_args;   /* ARGs before the first FROM, resolved */
  size_t n_global_args;
  plan_stage *stages;
  size_t n_stages;
  int target;             /* index of the target stage */
  char **warnings;        /* e.g. unused build-args */
} plan;

/* Takes ownership of df (also on failure). */
int plan_build (dockerfile *df, const plan_options *opts, plan **out, kiln_error **err);
void plan_free (plan *p);

/* --platform's comma-separated list, each normalised ("linux/aarch64" ->
 * "linux/arm64"), into a NULL-terminated *out (strv_free); a platform
 * listed twice is an error. */
int plan_platform_list (const char *arg, char ***out, kiln_error **err);

/* "linux/amd64" etc. for this machine. */
char *plan_host_platform (void);

/* Value of option KEY of a mount, NULL if absent. */
const char *plan_mount_opt (const plan_mount *m, const char *key);

/* Value of flag NAME on a step (last wins), NULL if absent. */
const char *plan_step_flag (const plan_step *s, const char *name);

#endif
