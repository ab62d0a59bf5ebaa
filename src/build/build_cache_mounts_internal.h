/* build_cache_mounts_internal.h - shared by build_cache_mounts.c (state,
 * import) and build_cache_mounts_export.c. */
#ifndef KILN_BUILD_BUILD_CACHE_MOUNTS_INTERNAL_H
#define KILN_BUILD_BUILD_CACHE_MOUNTS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include "build/build_cache_mounts.h"
#include "registry/reference.h"
#include "util/digest.h"

#define CM_LABEL_ID "dev.kiln.cache-mount.id"
#define CM_LABEL_SIZE "dev.kiln.cache-mount.size"

typedef struct build_cm_id
{
  char *id;
  char hash[DIGEST_SHA256_HEX_LEN + 1];
  bool writable;               /* a step mounted it writable: an export candidate */
} build_cm_id;

struct build_cache_mounts
{
  build_cache_mounts_opts o;
  registry_ref *repo;
  registry_client *client;     /* made on first use */
  bool client_failed;          /* warned once: nothing more is asked */
  pthread_mutex_t mu;          /* build_cache_mounts_use from stage threads */
  build_cm_id *ids;
  size_t n_ids;
  sandbox_idmap map;           /* the steps' ID mapping (first use) */
  bool have_map;
  bool owners_presented;
  pthread_t thread;
  bool started;
  bool done;                   /* exported (or tried) */
  int exported;
};

/* A cache directory's entries (root first, then in layer order) with their
 * lstat, symlink targets, the sum of regular file sizes and the stamp. */
typedef struct build_cm_item
{
  char *path;                  /* "" for the root */
  struct stat st;
  char *link;
} build_cm_item;

typedef struct build_cm_tree
{
  build_cm_item *v;
  size_t n;
  uint64_t bytes;
  char stamp[DIGEST_STRING_SIZE];
} build_cm_tree;

int build_cm_tree_scan (int dirfd, build_cm_tree *t, kiln_error **err);
void build_cm_tree_free (build_cm_tree *t);

/* Seconds on the monotonic clock. */
double build_cm_now (void);
int build_cm_client (build_cache_mounts *cm);
int build_cm_record_read (store *s, const char *hash, char digest[DIGEST_STRING_SIZE], char stamp[DIGEST_STRING_SIZE]);
int build_cm_record_write (store *s, const char *hash, const char *digest, const char *stamp, kiln_error **err);
/* flock cache/HASH.lock (LOCK_SH / LOCK_EX, as run_mounts.c): the fd. */
int build_cm_lock (store *s, const char *hash, int how, const char *id, kiln_error **err);
/* registry_sink into a strbuf, at most 1 MiB. */
int build_cm_sink_strbuf (void *ctx, const void *data, size_t len, kiln_error **err);

#endif
