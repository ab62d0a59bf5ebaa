/* overlay_fx.h - a FUSE overlay mounted over plain-directory lowers, for the
 * unit tests of src/overlay/ that drive it through the kernel
 * (test_overlay.c, test_overlay_layers.c). Lowers are plain directories
 * with OCI whiteout files under the fixture's temp directory; the mount
 * point is its "mnt". Call test_fuse_namespace () first. */
#ifndef KILN_TEST_OVERLAY_FX_H
#define KILN_TEST_OVERLAY_FX_H

#include <stddef.h>
#include "overlay/overlay.h"

typedef struct overlay_fx
{
  char *tmp;
  int tmpfd;
  char *mnt;
  overlay *ovl;
  overlay_id_mode mode;
} overlay_fx;

/* A temp directory with the lowers "l0" and "l1" (overlay_fx_make_lowers),
 * mounted over both in full ID mode. */
overlay_fx *overlay_fx_new (void);
/* Unmounts if mounted, removes the temp directory. NULL is fine. */
void overlay_fx_free (overlay_fx *f);
/* l0: etc/passwd, usr/bin/tool, a/f1, a/sub/f2, gone, op/old, d/x, empty/,
 * link -> /etc/passwd; l1: a/f1 changed, gone whited out, op opaque with
 * op/new. */
void overlay_fx_make_lowers (int tmpfd);
/* The plain-directory stack of the fixture's directories names (bottom
 * first). */
overlay_lower *overlay_fx_lowers (overlay_fx *f, const char *const *names, unsigned n);
/* Mount a new overlay over lowers (masks proc/, dev/, etc/hosts,
 * etc/resolv.conf, as a build's first step has) at f->mnt. */
void overlay_fx_start (overlay_fx *f, overlay_id_mode mode, const char *const *lowers, unsigned n);
void overlay_fx_stop (overlay_fx *f);

/* A file's first 64 KiB as a string, NULL if it cannot be read. */
char *test_slurp (const char *path);

/* Fails the test unless rel under the mount reads exactly want. */
void overlay_fx_assert_file (overlay_fx *f, const char *rel, const char *want);

/* Fails the test where trees x and y differ below rel (names, types,
 * modes, owners, file contents, symlink targets). */
void overlay_fx_compare_trees (const char *x, const char *y, const char *rel);

/* Paths the random operations pick from, and operation op (0..12: append,
 * truncate, rename, unlink, mkdir, rmdir, link, symlink, chmod, chown,
 * setxattr, mkfifo, exchange) on root/p1 (p2 the second path, arg a
 * random number): 0 or -errno. */
extern const char *const overlay_fx_pool[];
extern const size_t overlay_fx_pool_n;
#define OVERLAY_FX_OPS 13
int overlay_fx_do_op (const char *root, unsigned op, const char *p1, const char *p2, unsigned arg);

#endif
