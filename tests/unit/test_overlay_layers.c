/* test_overlay_layers.c - the overlay's view over many steps on one mount:
 * what a step's change list holds (a layer rebuilt from it shows what the
 * step saw) and layers added under a live mount (overlay_add_layers: the
 * view then shows what a fresh mount of the whole stack shows, through the
 * kernel's caches). Random operations on a real mount, compared with a
 * plain directory and with fresh mounts.
 *
 * Runs as root in a private mount namespace; as a plain user in a user
 * namespace mapping its uid to 0 (helpers/testutil.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/overlay_fx.h"
#include "helpers/testutil.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool can_mount;
static const char *skip_reason = "cannot mount fuse here";

#define NEED_MOUNT()                                                                                         \
  do                                                                                                         \
    {                                                                                                        \
      if (!can_mount)                                                                                        \
        test_skip (skip_reason);                                                                             \
    }                                                                                                        \
  while (0)

static int
setup (void **state)
{
  *state = can_mount ? overlay_fx_new () : NULL;
  return 0;
}

static int
teardown (void **state)
{
  overlay_fx_free (*state);
  return 0;
}

static bool
trace (void)
{
  return getenv ("KILN_OVERLAY_PROP_TRACE") != NULL;
}

static void
sh (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  autofree char *cmd = NULL;
  assert_true (vasprintf (&cmd, fmt, ap) >= 0);
  va_end (ap);
  assert_int_equal (system (cmd), 0);
}

/* Commit the mount's step and write its layer as plain directory name. */
static void
commit_to (overlay_fx *f, const char *name)
{
  autoerror kiln_error *err = NULL;
  overlay_changes *c = NULL;
  assert_ok (overlay_commit (f->ovl, &c, &err), err);
  for (size_t k = 0; trace () && k < c->n; k++)
    print_message ("  change %d %s mode %o -> %s\n", c->v[k].kind, c->v[k].path, c->v[k].mode,
                   c->v[k].link_target ? c->v[k].link_target : "");
  assert_int_equal (mkdirat (f->tmpfd, name, 0755), 0);
  int lfd = openat (f->tmpfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_ok (overlay_changes_materialize (c, lfd, true, &err), err);
  close (lfd);
  overlay_changes_free (c);
}

/* count random operations on the mount and on the plain directory ref:
 * each must give the same result. */
static void
random_ops (overlay_fx *f, const char *ref, unsigned run, int count)
{
  for (int i = 0; i < count; i++)
    {
      unsigned op = random () % OVERLAY_FX_OPS, arg = random ();
      const char *p1 = overlay_fx_pool[random () % overlay_fx_pool_n];
      const char *p2 = overlay_fx_pool[random () % overlay_fx_pool_n];
      int r1 = overlay_fx_do_op (f->mnt, op, p1, p2, arg), r2 = overlay_fx_do_op (ref, op, p1, p2, arg);
      if (trace ())
        print_message ("run %u: op %u %s %s %u -> %d\n", run, op, p1, p2, arg % 01000, r1);
      if (r1 != r2)
        fail_msg ("run %u op %u (%s, %s): overlay %d, plain directory %d", run, op, p1, p2, r1, r2);
    }
}

/* ---- a step's layer shows what the step saw ---- */

static void
test_property_random_sequences (void **state)
{
  NEED_MOUNT ();
  overlay_fx *f = *state;
  const char *env = getenv ("KILN_OVERLAY_PROP_RUNS");
  unsigned runs = env ? (unsigned) atoi (env) : 40;
  srandom (getenv ("KILN_SEED") ? (unsigned) atoi (getenv ("KILN_SEED")) : 12345);
  for (unsigned run = 0; run < runs; run++)
    {
      if (!f->ovl)
        {
          static const char *const lowers[] = { "l0", "l1" };
          overlay_fx_start (f, OVERLAY_IDS_FULL, lowers, 2);
        }
      autofree char *ref = xasprintf ("%s/ref", f->tmp);
      mkdir (ref, 0755);
      sh ("rm -rf '%s' && cp -a '%s/.' '%s'", ref, f->mnt, ref);
      random_ops (f, ref, run, 25);
      /* the step's layer, as a plain tree, on top of the same lowers */
      char lname[32];
      snprintf (lname, sizeof lname, "L%u", run);
      commit_to (f, lname);
      overlay_fx_stop (f);
      const char *const lowers[] = { "l0", "l1", lname };
      overlay_fx_start (f, OVERLAY_IDS_FULL, lowers, 3);
      overlay_fx_compare_trees (ref, f->mnt, "");
      overlay_fx_stop (f);
      sh ("rm -rf '%s/%s' '%s'", f->tmp, lname, ref);
    }
}

/* ---- layers added under a live mount ---- */

static int
add_layers (overlay_fx *f, const char *const *names, unsigned n, unsigned first)
{
  overlay_lower *lower = overlay_fx_lowers (f, names, n);
  int r = overlay_add_layers (f->ovl, lower, first);
  /* the added layers moved to the mount, or came back for a new one */
  assert_int_equal (overlay_lower_count (lower), r == 0 ? first : n);
  overlay_lower_free (lower);
  return r;
}

static void
assert_absent (overlay_fx *f, const char *rel)
{
  autofree char *p = xasprintf ("%s/%s", f->mnt, rel);
  struct stat st;
  if (lstat (p, &st) == 0 || errno != ENOENT)
    fail_msg ("'%s' is still there", rel);
}

/* A COPY-like layer over a view the kernel has cached: replaced, added and
 * whited-out names, a directory a step made, one never loaded; then a step
 * on the same mount copies a file of the new layer up. */
static void
test_add_layers_view (void **state)
{
  NEED_MOUNT ();
  overlay_fx *f = *state;
  /* what the kernel caches: entries, attributes, data, listings */
  overlay_fx_assert_file (f, "a/f1", "one-v2");
  overlay_fx_assert_file (f, "d/x", "x");
  sh ("ls -la '%s/a' '%s/d' '%s' > /dev/null", f->mnt, f->mnt, f->mnt);
  assert_absent (f, "a/new");
  sh ("mkdir '%s/mk' && echo m1 > '%s/mk/m1'", f->mnt, f->mnt);
  commit_to (f, "s1");
  assert_int_equal (mkdirat (f->tmpfd, "t", 0755), 0);
  int t = openat (f->tmpfd, "t", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  test_put_file (t, "a/f1", "copied", 0600);
  test_put_file (t, "a/new", "new", 0644);
  test_put_file (t, ".wh.d", "", 0644);
  test_put_file (t, "mk/m2", "m2", 0644);
  test_put_file (t, "usr/bin/tool2", "t2", 0755);
  test_put_file (t, "fresh/x", "fx", 0644);
  assert_int_equal (fchmodat (t, "a", 0750, 0), 0);
  close (t);
  static const char *const stack[] = { "l0", "l1", "t" };
  assert_int_equal (add_layers (f, stack, 3, 2), 0);
  overlay_fx_assert_file (f, "a/f1", "copied");
  overlay_fx_assert_file (f, "a/new", "new");
  overlay_fx_assert_file (f, "a/sub/f2", "two");
  assert_absent (f, "d/x");
  assert_absent (f, "d");
  overlay_fx_assert_file (f, "mk/m1", "m1\n");
  overlay_fx_assert_file (f, "mk/m2", "m2");
  overlay_fx_assert_file (f, "usr/bin/tool2", "t2");
  overlay_fx_assert_file (f, "usr/bin/tool", "#!/bin/sh\necho tool\n");
  overlay_fx_assert_file (f, "fresh/x", "fx");
  struct stat st;
  autofree char *a = xasprintf ("%s/a", f->mnt), *f1 = xasprintf ("%s/a/f1", f->mnt);
  assert_int_equal (stat (a, &st), 0);
  assert_int_equal (st.st_mode & 07777, 0750);
  assert_int_equal (stat (f1, &st), 0);
  assert_int_equal (st.st_mode & 07777, 0600);
  assert_int_equal (st.st_size, 6);
  /* listings: the new names, not the whited-out one */
  autofree char *ls = xasprintf ("%s/ls", f->tmp);
  sh ("ls '%s' '%s/a' > '%s'", f->mnt, f->mnt, ls);
  autofree char *listed = test_slurp (ls);
  assert_non_null (strstr (listed, "fresh\n"));
  assert_non_null (strstr (listed, "new\n"));
  assert_null (strstr (listed, "d\n"));
  /* the next step changes a file of the added layer: copied up, in its layer */
  sh ("echo more >> '%s/a/f1'", f->mnt);
  overlay_fx_assert_file (f, "a/f1", "copiedmore\n");
  commit_to (f, "s2");
  int s2 = openat (f->tmpfd, "s2", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_int_equal (fstatat (s2, "a/f1", &st, 0), 0);
  assert_int_equal (st.st_size, 11);
  assert_int_equal (fstatat (s2, "a/new", &st, 0), -1);
  close (s2);
}

/* A layer name over l0, l1 with the one (empty) file path: the mount,
 * which shows l0 and l1, must refuse it. */
static void
refused_layer (overlay_fx *f, const char *name, const char *path)
{
  assert_int_equal (mkdirat (f->tmpfd, name, 0755), 0);
  int t = openat (f->tmpfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  test_put_file (t, path, "", 0644);
  close (t);
  const char *const stack[] = { "l0", "l1", name };
  assert_true (add_layers (f, stack, 3, 2) < 0);
}

/* What the view cannot take in place is refused, for the caller to mount
 * afresh: a mask placeholder the view made (proc/), an opaque directory over
 * a loaded one. (Where the view has not loaded the directory yet, it merges
 * the layer as a fresh mount would.) */
static void
test_add_layers_refused (void **state)
{
  NEED_MOUNT ();
  overlay_fx *f = *state;
  sh ("ls '%s' > /dev/null", f->mnt); /* the root loaded, with its placeholders */
  commit_to (f, "s1");
  refused_layer (f, "t", "proc/x");
  overlay_fx_stop (f);
  static const char *const lowers[] = { "l0", "l1" };
  overlay_fx_start (f, OVERLAY_IDS_FULL, lowers, 2);
  sh ("ls '%s/a' > /dev/null", f->mnt);
  commit_to (f, "s2");
  refused_layer (f, "u", "a/.wh..wh..opq");
}

/* Random layer content in directory name: files, directories, symlinks,
 * whiteouts and (rarely) opaque directories on the pool's paths. */
static void
random_layer (overlay_fx *f, const char *name)
{
  assert_int_equal (mkdirat (f->tmpfd, name, 0755), 0);
  int t = openat (f->tmpfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int picks = 1 + (int) (random () % 6);
  for (int i = 0; i < picks; i++)
    {
      const char *p = overlay_fx_pool[random () % overlay_fx_pool_n];
      unsigned kind = random () % 5, arg = random ();
      /* parents as directories, unless the layer has a non-directory or a
       * whiteout there (a store layer never lists a name and its whiteout:
       * its index keeps the entry, src/store/layer_index.c) */
      autofree char *par = xstrdup (p);
      char *slash = strrchr (par, '/');
      const char *base = slash ? slash + 1 : p;
      int pd = dup (t);
      if (slash)
        {
          *slash = '\0';
          for (char *c = par, *next; pd >= 0 && c; c = next)
            {
              next = strchr (c, '/');
              if (next)
                *next++ = '\0';
              autofree char *cwh = xasprintf (".wh.%s", c);
              struct stat cst;
              int sub = -1;
              if (fstatat (pd, cwh, &cst, 0) != 0)
                {
                  mkdirat (pd, c, 0755);
                  sub = openat (pd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                }
              close (pd);
              pd = sub;
            }
        }
      if (pd < 0)
        continue;
      autofree char *wh = xasprintf (".wh.%s", base);
      struct stat st;
      bool taken = fstatat (pd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 || fstatat (pd, wh, &st, 0) == 0;
      if (!taken || (kind == 1 && S_ISDIR (st.st_mode)))
        switch (kind)
          {
          case 0:
            {
              char c[32];
              int fd = openat (pd, base, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600 + (arg % 0200));
              if (fd >= 0)
                {
                  assert_true (write (fd, c, snprintf (c, sizeof c, "t%u;", arg % 1000)) > 0);
                  close (fd);
                }
              break;
            }
          case 1: mkdirat (pd, base, 0700 + (arg % 0100)); break;
          case 2: close (openat (pd, wh, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)); break;
          case 3:
            if (!taken && arg % 4 == 0 && mkdirat (pd, base, 0755) == 0)
              {
                autofree char *o = xasprintf ("%s/.wh..wh..opq", base);
                close (openat (pd, o, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
              }
            break;
          default: symlinkat (overlay_fx_pool[arg % overlay_fx_pool_n], pd, base); break;
          }
      close (pd);
    }
  close (t);
}

/* Steps on one mount with random layers added between them: right after
 * the layers are added the mount shows what a fresh mount of the stack
 * shows, and the next step's layer is right on top of them. Some runs read
 * the whole view first (every directory loaded and cached), some only what
 * the operations touched. */
static void
test_add_layers_random (void **state)
{
  NEED_MOUNT ();
  overlay_fx *f = *state;
  overlay_fx_stop (f);
  const char *env = getenv ("KILN_OVERLAY_PROP_RUNS");
  unsigned runs = env ? (unsigned) atoi (env) : 40, added = 0;
  srandom (getenv ("KILN_SEED") ? (unsigned) atoi (getenv ("KILN_SEED")) : 4321);
  autofree char *ref = xasprintf ("%s/ref", f->tmp), *view = xasprintf ("%s/view", f->tmp);
  for (unsigned run = 0; run < runs; run++)
    {
      static const char *const lowers[] = { "l0", "l1" };
      overlay_fx_start (f, OVERLAY_IDS_FULL, lowers, 2);
      mkdir (ref, 0755);
      sh ("rm -rf '%s' && cp -a '%s/.' '%s'", ref, f->mnt, ref);
      random_ops (f, ref, run, 15);
      char la[32], t[32], lb[32];
      snprintf (la, sizeof la, "A%u", run);
      snprintf (t, sizeof t, "T%u", run);
      snprintf (lb, sizeof lb, "B%u", run);
      commit_to (f, la);
      if (run % 3 == 0)
        sh ("cp -a '%s/.' '%s/warm' && rm -rf '%s/warm'", f->mnt, f->tmp, f->tmp);
      random_layer (f, t);
      const char *const stack[] = { "l0", "l1", la, t, NULL };
      if (add_layers (f, stack, 4, 3) < 0)
        {
          if (trace ())
            print_message ("run %u: refused\n", run);
          overlay_fx_stop (f);
          sh ("rm -rf '%s/%s' '%s/%s' '%s'", f->tmp, la, f->tmp, t, ref);
          continue;
        }
      added++;
      if (trace ())
        sh ("cd '%s/%s' && find . -printf '  layer %%p %%y %%m\\n' >&2", f->tmp, t);
      mkdir (view, 0755);
      sh ("rm -rf '%s' '%s' && cp -a '%s/.' '%s' && cp -a '%s/.' '%s'", view, ref, f->mnt, view, f->mnt, ref);
      random_ops (f, ref, run, 15);
      commit_to (f, lb);
      overlay_fx_stop (f);
      overlay_fx_start (f, OVERLAY_IDS_FULL, stack, 4);
      if (trace ())
        print_message ("run %u: the view after the layer was added\n", run);
      overlay_fx_compare_trees (view, f->mnt, "");
      if (trace ())
        print_message ("run %u: the view after the next step\n", run);
      overlay_fx_stop (f);
      const char *const stack_b[] = { "l0", "l1", la, t, lb };
      overlay_fx_start (f, OVERLAY_IDS_FULL, stack_b, 5);
      overlay_fx_compare_trees (ref, f->mnt, "");
      overlay_fx_stop (f);
      sh ("rm -rf '%s/%s' '%s/%s' '%s/%s' '%s' '%s'", f->tmp, la, f->tmp, t, f->tmp, lb, ref, view);
    }
  print_message ("# %u of %u runs added their layer in place\n", added, runs);
  /* most random layers can be taken in place */
  assert_true (added * 2 > runs);
}

static int
group_setup (void **state)
{
  (void) state;
  skip_reason = test_fuse_namespace ();
  can_mount = skip_reason == NULL;
  return 0;
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_property_random_sequences, setup, teardown),
    cmocka_unit_test_setup_teardown (test_add_layers_view, setup, teardown),
    cmocka_unit_test_setup_teardown (test_add_layers_refused, setup, teardown),
    cmocka_unit_test_setup_teardown (test_add_layers_random, setup, teardown),
  };
  return cmocka_run_group_tests (tests, group_setup, NULL);
}
