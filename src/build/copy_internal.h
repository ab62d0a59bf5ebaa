/* copy_internal.h - what copy.c and copy_source.c share. PRIVATE to
 * src/build/copy*.c; the API is copy.h.
 *
 *   copy.c         the copy: sources matched, trees walked, change lists.
 *   copy_source.c  where sources come from: the build context (a directory
 *                  fd, .dockerignore applied) or a stage's/image's layers.
 */
#ifndef KILN_BUILD_COPY_INTERNAL_H
#define KILN_BUILD_COPY_INTERNAL_H

#include "build/copy.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* What a change of the list owns (its strings and xattrs). */
struct copy_owned
{
  char *path;
  char *symlink;
  char *hardlink;
  char *data_path;
  char **xattr_names;
  void **xattr_values;
  layer_index_xattr *xattrs;
  size_t n_xattrs;
};

typedef struct src_stat
{
  mode_t mode;
  uid_t uid;
  gid_t gid;
  uint64_t size;
  int64_t mtime_sec;
  uint32_t mtime_nsec;
  dev_t rdev;
  char *symlink;
  dev_t dev;          /* hardlink identity (context only) */
  ino_t ino;
  nlink_t nlink;
  unsigned layer;
  /* context: ctime, and whether it is safely in the past (a change in the
   * clock tick of the stat would not move it): layer_change.src_ino */
  int64_t ctime_sec;
  uint32_t ctime_nsec;
  bool ctime_settled;
} src_stat;

typedef struct source source;
struct source
{
  int (*stat) (source *s, const char *path, src_stat *st);
  int (*list) (source *s, const char *path, char ***names);
  /* Where the bytes of a regular file are (dirfd borrowed, path owned);
   * *owned: kiln's own immutable file (layer_change.data_private). */
  int (*data) (source *s, const char *path, const src_stat *st, int *dirfd, char **relpath, bool *owned);
  void (*xattrs) (source *s, const char *path, const src_stat *st, struct copy_owned *o);
  int ctxfd;
  const dockerignore *ign;
  overlay_lower *lower;
};

/* A source of the build context at ctxfd (ign: its .dockerignore, may be
 * NULL; ctxfd -1 for a source that is never read, e.g. copy_mkdir). */
void copy_source_context (source *s, int ctxfd, const dockerignore *ign);
/* A source of a stage's or image's layers. */
void copy_source_layers (source *s, overlay_lower *lower);
/* Appends an xattr (copied) to o. */
void copy_owned_add_xattr (struct copy_owned *o, const char *name, const void *val, size_t len);

#endif
