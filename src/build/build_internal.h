/* build_internal.h - what the files of the build executor share. PRIVATE to
 * src/build/build_*.c files of the executor (build_exec, build_from,
 * build_key, build_run, build_copy, build_meta); nothing else includes it.
 * The executor's API is build_exec.h.
 *
 * Where things are:
 *   build_exec.c  the API, the stage loop (one switch over step kinds), the
 *                 waves of parallel stages, a stage's layers (written,
 *                 committed, taken from the cache) and the final image
 *   build_from.c  FROM, and every other place layers come from: base images
 *                 (pulled once per build), stages, --from/from= images
 *   build_key.c   the build cache key of a stage and of each step, its
 *                 lookup and record, and the chaining into the stage's key
 *   build_run.c   RUN: the stage's shared mount, the sandbox, the commit
 *   build_copy.c  COPY and ADD (URLs, archives, heredocs; copy.c copies)
 *   build_meta.c  ENV, LABEL, USER, WORKDIR, ... (the image config), and
 *                 the text and path helpers the other steps share
 *
 * Functions declared here are named after the file that defines them.
 */
#ifndef KILN_BUILD_BUILD_INTERNAL_H
#define KILN_BUILD_BUILD_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "build/build_cache.h"
#include "build/build_exec.h"
#include "build/dockerignore.h"
#include "build/plan.h"
#include "overlay/overlay.h"
#include "overlay/overlay_lower.h"
#include "sandbox/seccomp_profile.h"
#include "store/fetch.h"
#include "store/layer_writer.h"
#include "util/error.h"

typedef struct fetched
{
  char *key;                 /* "REF@PLATFORM" */
  store_fetch_result res;    /* address stable: stages keep pointers */
} fetched;

/* A step of a stage so far, for explaining cache misses (build_key.c). */
typedef struct build_ancestor
{
  char label[32];             /* "1" (FROM), "3", "onbuild 1" */
  char kind[16];              /* "FROM", "RUN", ... */
  char key[DIGEST_STRING_SIZE]; /* the stage's key after it */
  bool ran;                   /* looked up in the cache and missed */
} build_ancestor;

/* A stage's mount shared by its consecutive RUN steps (build_run.c). */
typedef struct run_session run_session;

typedef struct stage_state
{
  bool built;
  image_spec spec;
  build_layer *layers;
  size_t n_layers;
  bool cmd_set;               /* CMD given in this stage (ENTRYPOINT then keeps it) */
  char key[DIGEST_STRING_SIZE]; /* build cache key of the state so far */
  size_t n_base_layers;       /* layers that came with FROM */
  int step_id;                /* progress id of the step being run */
  double pack_secs;           /* time this stage spent packing layers */
  /* The step being run (stages may run in parallel, each on its own
   * thread): its cache key under construction, and where its result came
   * from ("local"/"registry"; NULL: built). */
  build_cache_key ckey;
  bool ckey_open;
  const char *cached;
  /* Why a miss missed: the step's label (set by the stage loop before
   * run_step), its position, its key's components, whether it missed,
   * and the stage's steps so far. */
  char step_label[32];
  char position[DIGEST_SHA256_HEX_LEN + 1];
  cache_components *comp;
  bool missed;
  build_ancestor *anc;
  size_t n_anc;
  run_session *rs;            /* the mount consecutive RUN steps share */
  struct ptrace_session *ps;  /* --isolation=ptrace: the stage's root directory */
} stage_state;

struct build_exec
{
  build_exec_opts o;
  fetched **fetched;
  size_t n_fetched;
  int ctxfd;
  dockerignore *ign;
  sandbox_idmap idmap;
  bool idmap_ready;
  sandbox_isolation isolation; /* USERNS or PTRACE once idmap_ready */
  /* The seccomp profile (NULL: unconfined), read once; its two filters
   * are compiled when a step first needs each (build_run_filter). */
  seccomp_profile *profile;
  char *profile_name;
  seccomp_profile_mode filter_mode;
  seccomp_filter *filter;
  seccomp_filter *filter_lazy_net; /* with lazy_net: a stage's steps until its network is up */
  bool filter_ready;
  sandbox_limiter *limiter;  /* how RUN steps' limits are enforced; NULL until the first RUN */
  plan *p;
  stage_state *stages;
  build_result *res;
  double t_pull;             /* fetches, also those made while planning */
  /* Parallel stages: lock for fetched, the lazily made sandbox pieces and
   * the phase times; failed stops the other stages between steps. */
  pthread_mutex_t lock;
  volatile bool failed;
  char **add_urls;           /* ADD URLs fetched: URL, sha256 digest, pairs (provenance; under lock) */
};

static inline void
add_time (build_exec *b, double *field, double secs)
{
  pthread_mutex_lock (&b->lock);
  *field += secs;
  pthread_mutex_unlock (&b->lock);
}

static inline double
now_s (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static inline int64_t
created_time (build_exec *b)
{
  return b->o.reproducible ? b->o.epoch : (int64_t) time (NULL);
}

/* ---- build_exec.c: a stage's layers ---- */


void build_exec_add_layer (stage_state *st, const char *diff_id, const char *digest, const char *media_type,
                           int64_t size);

/* A step result taken from the build cache (or just recorded in it). */
void build_exec_apply_entry (build_exec *b, stage_state *st, const build_cache_entry *e, const char *created_by);

/* Write changes as a new layer of st: blob into the store, extracted so the
 * next step can stack on it, diffID and history recorded (no layer, only a
 * history entry, when n is 0). The step's cache key is final_key (RUN:
 * known before the step ran) or the open key with the change list folded
 * in (COPY/ADD/WORKDIR: their sources' content). run: the step is a RUN
 * (the cache may be kept for RUN steps only). */
int build_exec_commit_layer (build_exec *b, stage_state *st, const layer_change *ch, size_t n,
                             const char *created_by, const char *final_key, bool run, kiln_error **err);

/* ---- build_from.c: where layers come from ---- */

/* The FROM of stage ps into st: config, layers and the stage's first key. */
int build_from_stage (build_exec *b, const plan_stage *ps, stage_state *st, kiln_error **err);

/* Memoised per (image, platform); stages may call it at once. */
int build_from_fetch_image (build_exec *b, const char *image, const char *platform, const store_fetch_result **out,
                            kiln_error **err);

/* Fetch what layers[0..n) lack in the store (lazy layers' files, see
 * build_lazy.h), counted as pull time. */
int build_from_fetch_lazy (build_exec *b, const build_layer *layers, size_t n, kiln_error **err);
/* Seconds the calling thread spent in build_from_fetch_lazy so far (a
 * step's phase time leaves them out: they count as pull). */
double build_from_lazy_secs (void);

/* The merged layers of stage st so far (its lazy layers fetched first). */
int build_from_stage_lower (build_exec *b, const stage_state *st, overlay_lower **out, kiln_error **err);

/* The merged layers of an image (fetched into the store if needed): COPY
 * --from=IMAGE and RUN --mount=type=bind,from=IMAGE, for the platform of
 * the stage st (build_from_stage_platform: that of the stage's key, so a
 * multi-platform build reads each platform's image). */
int build_from_image_lower (build_exec *b, const stage_state *st, const char *image, overlay_lower **out,
                            kiln_error **err);
const char *build_from_stage_platform (const build_exec *b, const stage_state *st);

/* The stage "from=" names (by name or index), or -1 (then it is an image). */
int build_from_find_stage (build_exec *b, const char *from);

/* ---- build_key.c: build cache keys ---- */

/* The first key of a stage: what its layers start from ("from-stage",
 * "from-image", "scratch" and the base's key, digest or platform). */
void build_key_stage (build_exec *b, stage_state *st, const char *what, const char *base);

/* Begin the step's key: the stage's key and the expanded step (and its
 * components, st->step_label naming it). */
void build_key_step_begin (build_exec *b, stage_state *st, const plan_step *s);

/* End the step's key after the step: ok, a key still open (metadata steps:
 * the step text is the key) becomes the stage's key; else it is dropped.
 * The step joins the stage's ancestry. */
void build_key_step_end (stage_state *st, const plan_step *s, bool ok);

/* Free what build_key keeps in st. */
void build_key_stage_free (stage_state *st);

/* A RUN step's final key into key (left "" when the cache is off): what
 * its bind mounts show is added to the open key. */
int build_key_run (build_exec *b, stage_state *st, const plan_step *s, char key[DIGEST_STRING_SIZE],
                   kiln_error **err);

/* COPY/ADD/WORKDIR: fold the step's change list into the open key and
 * finish it into key. */
int build_key_changes (stage_state *st, const layer_change *ch, size_t n, char key[DIGEST_STRING_SIZE],
                       kiln_error **err);

/* COPY, ADD (without URLs), WORKDIR and VOLUME are keyed without the
 * files of the layers below, so a hit needs none of them (lazy layers,
 * build_lazy.h): the stage's key already names those layers (it chains
 * their diffIDs), and what the step adds is its text (--chown names, not
 * the ids they resolve to) and its sources' content, taken as a copy onto
 * an empty view (ch: a walk and stat of the context; the files are hashed
 * once, here). build_key_lazy: the open key takes this path (the cache is
 * on; whether such steps are looked up or only chained is
 * build_cache_wants'); build_key_lazy_finish: finish it into key. */
bool build_key_lazy (stage_state *st);
int build_key_lazy_finish (stage_state *st, const layer_change *ch, size_t n, char key[DIGEST_STRING_SIZE],
                           kiln_error **err);

/* Look the finished key up; on a hit apply the entry. 1 hit, 0 miss. */
int build_key_lookup (build_exec *b, stage_state *st, const char *key, bool run, const char *created_by,
                      kiln_error **err);

/* After a step that was built: record it under key (if its kind is
 * cached) and chain its result into the stage key. */
int build_key_record (build_exec *b, stage_state *st, const char *key, bool run, const build_cache_entry *e,
                      const char *created_by, kiln_error **err);

/* ---- build_run.c: RUN ---- */

int build_run_step (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err);
/* The compiled seccomp filter for a step (with lazy_net: the one whose
 * first network socket starts the stage's private network), compiled on
 * first use; *out NULL when RUN steps are unconfined. After ensure_sandbox. */
int build_run_filter (build_exec *b, bool lazy_net, seccomp_filter **out, kiln_error **err);

/* Unmount the stage's shared RUN mount (or remove its ptrace tree), if it
 * has one. */
void build_run_session_end (build_exec *b, stage_state *st);

/* A step's change list (taken) becomes its layer under key; the time since
 * t0 counts as snapshot time. Both isolations' commits end here. */
int build_run_commit_changes (build_exec *b, stage_state *st, overlay_changes *changes, double t0,
                              const char *created_by, const char *key, kiln_error **err);

/* ---- build_run_ptrace.c: RUN under --isolation=ptrace ---- */

/* One RUN step, everything build_run_step resolved for it. */
typedef struct build_run_args
{
  overlay_lower *lower;            /* the stage's layers: taken */
  uid_t uid;
  gid_t gid;
  const gid_t *groups;
  size_t n_groups;
  char *const *argv;
  char *const *env;
  const char *cwd;
  const sandbox_mount *mounts;     /* RUN --mount */
  size_t n_mounts;
  const char *const *masks;        /* mount points, never in a layer */
  sandbox_net_mode net;
  bool insecure;
  sandbox_result *res;             /* out */
} build_run_args;

/* Run the step on the stage's tree (made from a->lower when the stage has
 * none or its layers changed); 0 once it ran, whatever its status. */
int build_run_ptrace (build_exec *b, stage_state *st, const build_run_args *a, kiln_error **err);
/* The step's write log becomes its layer, under key. */
int build_run_ptrace_commit (build_exec *b, stage_state *st, const char *created_by, const char *key,
                             kiln_error **err);
void build_run_ptrace_end (build_exec *b, stage_state *st);

/* ---- build_copy.c: COPY and ADD ---- */

int build_copy_step (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err);

/* ---- build_meta.c: metadata steps and shared helpers ---- */

/* ENV, LABEL, EXPOSE, CMD, ENTRYPOINT, USER, SHELL, STOPSIGNAL,
 * HEALTHCHECK, ONBUILD, MAINTAINER, ARG: the image config and history. */
int build_meta_step (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err);

/* WORKDIR and VOLUME: the config, and a layer with the missing directories
 * (owned by the current USER). */
int build_meta_workdir (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err);
int build_meta_volume (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err);

/* Set KEY=VALUE in a "K=V" list (ENV, LABEL), replacing KEY's entry. */
void build_meta_env_set (char ***env, const char *key, const char *value);

/* An instruction's text on one line, runs of white space made one space
 * (history and progress). */
char *build_meta_one_line (const char *s);
/* The same without the line continuations (escape, '\\' or '`', at the end
 * of a line): a step's title in the progress output and errors. */
char *build_meta_title (const char *s, char escape);

/* path against WORKDIR (absolute paths as they are). */
char *build_meta_resolve_dir (const char *workdir, const char *path);

/* Clean an absolute path: collapse "//", ".", ".." (never above "/"). */
char *build_meta_clean_abs (const char *p);

#endif
