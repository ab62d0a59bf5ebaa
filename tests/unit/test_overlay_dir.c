/* test_overlay_dir.c - overlay_dir: the real-directory root of ptrace
 * isolation. Operations are driven as the tracer does (the real call on
 * the root, then the ops), and the change lists are compared with the FUSE
 * overlay's for the same operations (mounted in a private mount
 * namespace; those tests skip where FUSE cannot be mounted).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>

#include "helpers/overlay_fx.h"
#include "helpers/testutil.h"
#include "overlay/overlay.h"
#include "overlay/overlay_dir.h"
#include "store/extract.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static bool can_mount;
static const char *skip_reason = "cannot mount fuse here";
static const char *const masks[] = { "proc/", "dev/", "etc/hosts", "etc/resolv.conf", NULL };

typedef struct fx
{
  char *tmp;
  int tmpfd;
  char *mnt;
  overlay *ovl;
  overlay_dir *od;
  int nscratch;
} fx;

/* The FUSE tests' lowers (helpers/overlay_fx.c), with an xattr on a lower
 * file where the filesystem takes user.* */
static void
make_lowers (int tmpfd)
{
  overlay_fx_make_lowers (tmpfd);
  char low[64];
  snprintf (low, sizeof low, "/proc/self/fd/%d/l0/a/sub/f2", tmpfd);
  (void) setxattr (low, "user.low", "L", 1, 0);
}

static overlay_lower *
open_lowers (fx *f)
{
  autoerror kiln_error *err = NULL;
  autofree char *p0 = xasprintf ("%s/l0", f->tmp), *p1 = xasprintf ("%s/l1", f->tmp);
  const char *paths[] = { p0, p1 };
  overlay_lower *lower = NULL;
  assert_ok (overlay_lower_open_dirs (paths, 2, &lower, &err), err);
  return lower;
}

static int
new_scratch (fx *f)
{
  char sname[32];
  snprintf (sname, sizeof sname, "scratch%d", f->nscratch++);
  assert_int_equal (mkdirat (f->tmpfd, sname, 0700), 0);
  int sfd = openat (f->tmpfd, sname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (sfd >= 0);
  return sfd;
}

static void
start_od (fx *f, overlay_lower *lower)
{
  autoerror kiln_error *err = NULL;
  autoclose int sfd = new_scratch (f);
  overlay_dir_config cfg = { .lower = lower ? lower : open_lowers (f), .scratch_dirfd = sfd,
                             .mask_paths = masks };
  assert_ok (overlay_dir_new (&cfg, &f->od, &err), err);
}

static void
start_fuse (fx *f)
{
  autoerror kiln_error *err = NULL;
  autoclose int sfd = new_scratch (f);
  overlay_config cfg = { .lower = open_lowers (f), .scratch_dirfd = sfd, .id_mode = OVERLAY_IDS_FULL,
                         .mask_paths = masks };
  assert_ok (overlay_new (&cfg, &f->ovl, &err), err);
  assert_ok (overlay_mount (f->ovl, f->mnt, &err), err);
}

static int
setup (void **state)
{
  fx *f = xzalloc (sizeof *f);
  f->tmp = test_mkdtemp (&f->tmpfd);
  f->mnt = xasprintf ("%s/mnt", f->tmp);
  assert_int_equal (mkdirat (f->tmpfd, "mnt", 0755), 0);
  make_lowers (f->tmpfd);
  umask (022);
  *state = f;
  return 0;
}

static void
stop_all (fx *f)
{
  overlay_dir_free (f->od);
  f->od = NULL;
  overlay_free (f->ovl);
  f->ovl = NULL;
}

static int
teardown (void **state)
{
  fx *f = *state;
  stop_all (f);
  close (f->tmpfd);
  test_rmtree (f->tmp);
  free (f->tmp);
  free (f->mnt);
  free (f);
  return 0;
}

/* ---- operations, on a plain path (the FUSE mount) or as the tracer ---- */
typedef struct op
{
  char code;          /* W write-append, T truncate, M mkdir, R unlink, D rmdir, N rename,
                       * X exchange, L link p1 -> new p2, S symlink p2 at p1, C chmod,
                       * O lchown, F mkfifo, K mknod char 1:3, A setxattr (name by arg,
                       * following), Z removexattr, B commit boundary */
  const char *p1, *p2;
  unsigned arg;
} op;

/* setxattr's names and values: security.capability takes a valid v2
 * header only (the kernel checks it; so does the tracer). NB: 'A' follows
 * symlinks, and on the FUSE side an absolute target is the host's: only
 * relative symlinks in the scripts. */
static const char *const xnames[] = { "user.a", "user.b", "security.capability", "other.x" };
static const char cap_v2[20] = { 0x01, 0x00, 0x00, 0x02, 0x00, 0x20 };
#define XNAME(o) xnames[(o)->arg % ARRAY_SIZE (xnames)]
#define XVALUE(o) ((o)->arg % 4 == 2 ? cap_v2 : (o)->arg % 2 ? "odd-value" : "v")
#define XLEN(o) ((o)->arg % 4 == 2 ? sizeof cap_v2 : strlen (XVALUE (o)))

static int
do_plain (const char *root, const op *o)
{
  autofree char *a = xasprintf ("%s/%s", root, o->p1);
  autofree char *b = o->p2 ? xasprintf ("%s/%s", root, o->p2) : NULL;
  int r = 0, fd;
  char buf[32];
  switch (o->code)
    {
    case 'W':
      fd = open (a, O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_CLOEXEC, 0644);
      if (fd < 0)
        return -errno;
      snprintf (buf, sizeof buf, "w%u;", o->arg);
      r = write (fd, buf, strlen (buf)) < 0 ? -errno : 0;
      close (fd);
      return r;
    case 'T': r = truncate (a, o->arg % 7); break;
    case 'M': r = mkdir (a, o->arg); break;
    case 'R': r = unlink (a); break;
    case 'D': r = rmdir (a); break;
    case 'N': r = rename (a, b); break;
    case 'X': r = renameat2 (AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE); break;
    case 'L': r = link (a, b); break;
    case 'S': r = symlink (o->p2, a); break;
    case 'C': r = chmod (a, o->arg); break;
    case 'O': r = lchown (a, o->arg % 3000, o->arg % 5000); break;
    case 'F': r = mknod (a, S_IFIFO | 0644, 0); break;
    case 'K': r = mknod (a, S_IFCHR | 0600, makedev (1, 3)); break;
    case 'A': r = setxattr (a, XNAME (o), XVALUE (o), XLEN (o), 0); break;
    case 'Z': r = removexattr (a, XNAME (o)); break;
    default: fail_msg ("bad op %c", o->code);
    }
  return r < 0 ? -errno : 0;
}

static void
report (overlay_dir *od, overlay_dir_change_kind kind, const char *p, const char *p2, unsigned flags)
{
  overlay_dir_change c = { .kind = kind, .path = p, .path2 = p2, .flags = flags, .uid = 0, .gid = 0 };
  overlay_dir_changed (od, &c);
}

/* O_PATH fd of path's parent in the root and the last name (test paths
 * have no symlinks above their last component). */
static int
parent_of (overlay_dir *od, const char *path, const char **name)
{
  const char *s = strrchr (path, '/');
  *name = s ? s + 1 : path;
  autofree char *dir = s ? xstrndup (path, (size_t) (s - path)) : xstrdup (".");
  return openat (overlay_dir_root_fd (od), dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* The guest path a call that follows the last symlink acts on, as the
 * tracer reports it (symlinks resolved in the guest). */
static char *
resolve_last (overlay_dir *od, const char *path)
{
  char *p = xstrdup (path);
  for (int i = 0; i < 8; i++)
    {
      char buf[256];
      ssize_t n = readlinkat (overlay_dir_root_fd (od), p, buf, sizeof buf - 1);
      if (n < 0)
        break;
      buf[n] = '\0';
      const char *s = strrchr (p, '/');
      autofree char *dir = s ? xstrndup (p, (size_t) (s - p)) : xstrdup ("");
      autofree char *joined = buf[0] == '/' ? xstrdup (buf) : xasprintf ("%s/%s", dir, buf);
      char *clean = NULL;
      assert_int_equal (fs_path_clean (joined, true, &clean), 0);
      free (p);
      p = clean;
      while (*p == '/')
        memmove (p, p + 1, strlen (p));
    }
  return p;
}

/* path with the symlinks above its last component resolved, as the tracer
 * reports paths (NULL when that leaves the root). */
static char *
resolve_parent (overlay_dir *od, const char *path)
{
  const char *s = strrchr (path, '/');
  if (!s)
    return xstrdup (path);
  autofree char *dir = xasprintf ("%s/%.*s", overlay_dir_root_path (od), (int) (s - path), path);
  autofree char *real = realpath (dir, NULL);
  const char *root = overlay_dir_root_path (od);
  size_t rl = strlen (root);
  if (!real)
    return xstrdup (path);
  if (strncmp (real, root, rl) || (real[rl] && real[rl] != '/'))
    return NULL;
  return real[rl] ? xasprintf ("%s/%s", real + rl + 1, s + 1) : xstrdup (s + 1);
}

/* What the tracer does for the step's call: the call on the root, with
 * before_write / set_* / mknod and the change report around it. */
static int
do_traced (overlay_dir *od, const op *o)
{
  const char *root = overlay_dir_root_path (od);
  const char *name;
  int r = 0;
  autofree char *p1 = resolve_parent (od, o->p1);
  autofree char *p2 = o->p2 && strchr ("NXL", o->code) ? resolve_parent (od, o->p2) : NULL;
  if (!p1 || (o->p2 && strchr ("NXL", o->code) && !p2))
    return do_plain (root, o); /* leaves the root: not in the scripts */
  autofree char *target = strchr ("WTCAZ", o->code) ? resolve_last (od, p1) : xstrdup (p1);
  op ro = *o;
  ro.p1 = target;
  if (p2)
    ro.p2 = p2;
  o = &ro;
  autoclose int dfd = parent_of (od, o->p1, &name);
  if (dfd < 0)
    return -errno;
  switch (o->code)
    {
    case 'W':
    case 'T':
      if ((r = overlay_dir_before_write (od, dfd, name, o->p1)) < 0)
        return r;
      if ((r = do_plain (root, o)) == 0)
        report (od, OVERLAY_DIR_WRITE, o->p1, NULL, 0);
      return r;
    case 'M':
    case 'S':
      if ((r = do_plain (root, o)) == 0)
        report (od, OVERLAY_DIR_CREATE, o->p1, NULL, 0);
      return r;
    case 'R':
    case 'D':
      if ((r = do_plain (root, o)) == 0)
        report (od, OVERLAY_DIR_REMOVE, o->p1, NULL, 0);
      return r;
    case 'N':
    case 'X':
      if ((r = do_plain (root, o)) == 0)
        report (od, OVERLAY_DIR_RENAME, o->p1, o->p2, o->code == 'X' ? RENAME_EXCHANGE : 0);
      return r;
    case 'L':
      if ((r = do_plain (root, o)) == 0)
        report (od, OVERLAY_DIR_LINK, o->p2, o->p1, 0);
      return r;
    case 'C':
    case 'O':
      {
        autoclose int fd = openat (dfd, name, O_PATH | O_CLOEXEC | (o->code == 'O' ? O_NOFOLLOW : 0));
        if (fd < 0)
          return -errno;
        r = o->code == 'C' ? overlay_dir_set_mode (od, fd, o->p1, o->arg)
                           : overlay_dir_set_owner (od, fd, o->p1, o->arg % 3000, o->arg % 5000);
        if (r == 0)
          report (od, OVERLAY_DIR_META, o->p1, NULL, 0);
        return r;
      }
    case 'A':
    case 'Z':
      {
        autoclose int fd = openat (dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
          return -errno;
        r = o->code == 'A' ? overlay_dir_set_xattr (od, fd, o->p1, XNAME (o), XVALUE (o), XLEN (o), 0)
                           : overlay_dir_remove_xattr (od, fd, o->p1, XNAME (o));
        if (r == 0)
          report (od, OVERLAY_DIR_META, o->p1, NULL, 0);
        return r;
      }
    case 'F':
    case 'K':
      {
        struct stat st;
        if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
          return -EEXIST;
        r = o->code == 'F' ? overlay_dir_mknod (od, dfd, name, o->p1, S_IFIFO | 0644, 0, 0, 0)
                           : overlay_dir_mknod (od, dfd, name, o->p1, S_IFCHR | 0600, makedev (1, 3), 0, 0);
        if (r == 0)
          report (od, OVERLAY_DIR_CREATE, o->p1, NULL, 0);
        return r;
      }
    default:
      fail_msg ("bad op %c", o->code);
    }
  return 0;
}

/* ---- change lists ---- */
static char *
data_of (const overlay_change *c)
{
  if (c->data_dirfd < 0 || !c->data_path)
    return NULL;
  autofree char *buf = NULL;
  size_t len = 0;
  autoerror kiln_error *err = NULL;
  assert_ok (fs_read_file_at (c->data_dirfd, c->data_path, 1 << 20, &buf, &len, &err), err);
  return xstrndup (buf ? buf : "", len);
}

static char *
describe (const overlay_change *c)
{
  autofree char *data = c->kind == OVERLAY_CHANGE_ADD && S_ISREG (c->mode) ? data_of (c) : NULL;
  char x[512] = "";
  size_t at = 0;
  for (size_t k = 0; k < c->n_xattrs && at < sizeof x; k++)
    {
      at += (size_t) snprintf (x + at, sizeof x - at, " %s=", c->xattrs[k].name);
      for (size_t b = 0; b < c->xattrs[k].len && at < sizeof x; b++)
        at += (size_t) snprintf (x + at, sizeof x - at, "%02x", ((const unsigned char *) c->xattrs[k].value)[b]);
    }
  return xasprintf ("%d %s mode %o %u:%u size %llu rdev %llu sym %s link %s data %s xattrs%s", c->kind, c->path,
                    c->mode, c->uid, c->gid, (unsigned long long) c->size, (unsigned long long) c->rdev,
                    c->symlink ? c->symlink : "-", c->link_target ? c->link_target : "-",
                    data ? data : "-", x);
}

static const op *cur_ops;
static size_t cur_n;

static void
compare_lists (const overlay_changes *want, const overlay_changes *got, const char *what)
{
  size_t n = want->n > got->n ? want->n : got->n;
  bool same = want->n == got->n;
  for (size_t i = 0; i < n && same; i++)
    {
      autofree char *x = describe (&want->v[i]), *y = describe (&got->v[i]);
      same = !strcmp (x, y);
    }
  if (same)
    return;
  for (size_t i = 0; i < n; i++)
    {
      autofree char *x = i < want->n ? describe (&want->v[i]) : xstrdup ("(none)");
      autofree char *y = i < got->n ? describe (&got->v[i]) : xstrdup ("(none)");
      print_message ("%s [%zu]\n  fuse: %s\n  dir:  %s\n", what, i, x, y);
    }
  for (size_t i = 0; i < cur_n; i++)
    print_message ("  op %zu: %c %s %s %o\n", i, cur_ops[i].code, cur_ops[i].p1 ? cur_ops[i].p1 : "-",
                   cur_ops[i].p2 ? cur_ops[i].p2 : "-", cur_ops[i].arg);
  fail_msg ("%s: change lists differ", what);
}

static const overlay_change *
find (const overlay_changes *c, overlay_change_kind kind, const char *path)
{
  for (size_t i = 0; i < c->n; i++)
    if (c->v[i].kind == kind && !strcmp (c->v[i].path, path))
      return &c->v[i];
  return NULL;
}

static overlay_changes *
od_commit (fx *f)
{
  autoerror kiln_error *err = NULL;
  overlay_changes *c = NULL;
  assert_ok (overlay_dir_commit (f->od, &c, &err), err);
  assert_ok (overlay_dir_begin_step (f->od, 0, 0, masks), err);
  return c;
}

/* Run ops ('B' ends a step) through both and compare every step's list. */
static void
run_both (fx *f, const op *ops, size_t n, const char *what)
{
  start_fuse (f);
  start_od (f, NULL);
  cur_ops = ops;
  cur_n = n;
  for (size_t i = 0; i <= n; i++)
    {
      if (i == n || ops[i].code == 'B')
        {
          autoerror kiln_error *err = NULL;
          overlay_changes *a = NULL;
          assert_ok (overlay_commit (f->ovl, &a, &err), err);
          assert_ok (overlay_begin_step (f->ovl, 0, 0, masks), err);
          overlay_changes *b = od_commit (f);
          autofree char *w = xasprintf ("%s, step ending at op %zu", what, i);
          compare_lists (a, b, w);
          overlay_changes_free (a);
          overlay_changes_free (b);
          continue;
        }
      int r1 = do_plain (f->mnt, &ops[i]), r2 = do_traced (f->od, &ops[i]);
      if (r1 != r2)
        fail_msg ("%s op %zu %c %s: fuse %d, overlay_dir %d", what, i, ops[i].code, ops[i].p1, r1, r2);
    }
  stop_all (f);
}

#define NEED_MOUNT()               \
  do                               \
    {                              \
      if (!can_mount)              \
        test_skip (skip_reason);   \
    }                              \
  while (0)

#define OP(c, a, b, n) { c, a, b, n }

static const op s_write[] = { OP ('W', "n1", NULL, 1), OP ('W', "a/f1", NULL, 2), OP ('T', "a/sub/f2", NULL, 1),
                              OP ('W', "usr/bin/tool", NULL, 3), OP ('T', "n1", NULL, 0) };
static const op s_unlink[] = { OP ('R', "a/f1", NULL, 0), OP ('R', "d/x", NULL, 0), OP ('D', "d", NULL, 0),
                               OP ('R', "link", NULL, 0), OP ('W', "tmpf", NULL, 0), OP ('R', "tmpf", NULL, 0) };
static const op s_opaque[] = { OP ('R', "a/sub/f2", NULL, 0), OP ('D', "a/sub", NULL, 0),
                               OP ('M', "a/sub", NULL, 0750), OP ('W', "a/sub/new", NULL, 1),
                               OP ('R', "op/new", NULL, 0), OP ('D', "op", NULL, 0), OP ('M', "op", NULL, 0755) };
static const op s_rename[] = { OP ('N', "a/f1", "n1", 0), OP ('N', "a", "d2", 0), OP ('N', "op", "empty", 0),
                               OP ('N', "d/x", "d/y", 0), OP ('N', "d2/sub", "d2/sub2", 0),
                               OP ('X', "etc", "usr", 0) };
static const op s_links[] = { OP ('L', "a/f1", "a/h1", 0), OP ('W', "n1", NULL, 1), OP ('L', "n1", "n2", 0),
                              OP ('S', "sl", "/etc/passwd", 0), OP ('S', "a/sl2", "../x", 0),
                              OP ('L', "sl", "sl3", 0) };
static const op s_meta[] = { OP ('C', "a/f1", NULL, 04755), OP ('O', "a/f1", NULL, 1000),
                             OP ('C', "usr/bin/tool", NULL, 0700), OP ('M', "nd", NULL, 0755),
                             OP ('O', "nd", NULL, 7), OP ('C', "nd", NULL, 02775), OP ('C', "a", NULL, 0711),
                             OP ('O', "link", NULL, 42), OP ('W', "nf", NULL, 0), OP ('C', "nf", NULL, 0600) };
static const op s_nodes[] = { OP ('F', "fifo", NULL, 0), OP ('K', "a/chr", NULL, 0), OP ('M', "dev/x", NULL, 0755),
                              OP ('W', "proc/y", NULL, 0), OP ('W', "etc/new", NULL, 0) };
static const op s_xattr[] = { OP ('A', "a/f1", NULL, 0), OP ('A', "a/f1", NULL, 1), OP ('A', "a/f1", NULL, 5),
                              OP ('Z', "a/f1", NULL, 4), OP ('A', "a", NULL, 2), OP ('S', "sl", "a/sub/f2", 0),
                              OP ('A', "sl", NULL, 6),
                              OP ('A', "a/sub/f2", NULL, 3), OP ('Z', "a/sub/f2", NULL, 0), OP ('B', NULL, NULL, 0),
                              OP ('A', "a/f1", NULL, 4), OP ('Z', "a/f1", NULL, 1), OP ('Z', "a/f1", NULL, 1),
                              OP ('A', "a/sub/f2", NULL, 4), OP ('W', "nf", NULL, 0), OP ('A', "nf", NULL, 1),
                              OP ('B', NULL, NULL, 0), OP ('W', "a/f1", NULL, 3), OP ('N', "nf", "n2", 0) };
static const op s_steps[] = { OP ('W', "a/f1", NULL, 1), OP ('W', "n1", NULL, 1), OP ('M', "nd", NULL, 0755),
                              OP ('B', NULL, NULL, 0), OP ('W', "a/f1", NULL, 2), OP ('R', "n1", NULL, 0),
                              OP ('W', "tmp2", NULL, 0), OP ('R', "tmp2", NULL, 0), OP ('D', "nd", NULL, 0),
                              OP ('B', NULL, NULL, 0), OP ('C', "a/f1", NULL, 0600), OP ('N', "a", "b", 0) };

static void
test_compare_scripts (void **state)
{
  NEED_MOUNT ();
  fx *f = *state;
  run_both (f, s_write, ARRAY_SIZE (s_write), "write");
  run_both (f, s_unlink, ARRAY_SIZE (s_unlink), "unlink");
  run_both (f, s_opaque, ARRAY_SIZE (s_opaque), "opaque");
  run_both (f, s_rename, ARRAY_SIZE (s_rename), "rename");
  run_both (f, s_links, ARRAY_SIZE (s_links), "links");
  run_both (f, s_meta, ARRAY_SIZE (s_meta), "meta");
  if (geteuid () == 0)
    run_both (f, s_nodes, ARRAY_SIZE (s_nodes), "nodes");
  run_both (f, s_steps, ARRAY_SIZE (s_steps), "steps");
  run_both (f, s_xattr, ARRAY_SIZE (s_xattr), "xattr");
}

/* Random sequences over a small pool of names, as test_overlay's property
 * test: the two change lists must be equal after every step. */
static void
compare_random (fx *f, const char *codes, const char *what)
{
  static const char *const pool[] = { "a", "a/f1", "a/sub", "a/sub/f2", "d", "d/x", "n1", "n2",
                                      "a/n3", "d/n4", "empty", "op", "op/new", "usr/bin/tool", "n1/deep" };
  const char *env = getenv ("KILN_OVERLAY_PROP_RUNS");
  unsigned runs = env ? (unsigned) atoi (env) : 30;
  srandom (getenv ("KILN_SEED") ? (unsigned) atoi (getenv ("KILN_SEED")) : 4242);
  for (unsigned run = 0; run < runs; run++)
    {
      op ops[30];
      for (size_t i = 0; i < ARRAY_SIZE (ops); i++)
        {
          char code = codes[random () % strlen (codes)];
          unsigned arg = (unsigned) random ();
          if (code == 'M')
            arg = 0700 + arg % 0100;
          else if (code == 'C')
            arg = 0600 + arg % 0200;
          ops[i] = (op) { code, pool[random () % ARRAY_SIZE (pool)], pool[random () % ARRAY_SIZE (pool)], arg };
        }
      autofree char *w = xasprintf ("%s run %u (KILN_SEED)", what, run);
      run_both (f, ops, ARRAY_SIZE (ops), w);
    }
}

static void
test_compare_random (void **state)
{
  NEED_MOUNT ();
  compare_random (*state, "WTMRDNXLSCOFB", "random");
}

/* The same with setxattr/removexattr among the operations (without hard
 * links and exchanges, whose known differences the default seeds of the
 * test above steer clear of; docs/design/overlay-dir.md). */
static void
test_compare_random_xattr (void **state)
{
  NEED_MOUNT ();
  compare_random (*state, "WTMRDNSCOFBAAZ", "random xattr");
}

/* ---- overlay_dir alone ---- */
static char *
slurp_at (int dfd, const char *path)
{
  autofree char *buf = NULL;
  size_t len = 0;
  autoerror kiln_error *err = NULL;
  if (fs_read_file_at (dfd, path, 1 << 20, &buf, &len, &err) < 0)
    return NULL;
  return xstrndup (buf ? buf : "", len);
}

static void
test_view_and_present (void **state)
{
  fx *f = *state;
  start_od (f, NULL);
  int root = overlay_dir_root_fd (f->od);
  autofree char *f1 = slurp_at (root, "a/f1");
  assert_string_equal (f1, "one-v2");
  struct stat st, shown;
  assert_int_equal (fstatat (root, "gone", &st, AT_SYMLINK_NOFOLLOW), -1);
  assert_int_equal (fstatat (root, "op/old", &st, AT_SYMLINK_NOFOLLOW), -1);
  assert_int_equal (fstatat (root, "op/new", &st, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (fstatat (root, "proc", &st, AT_SYMLINK_NOFOLLOW), 0);
  assert_true (S_ISDIR (st.st_mode));
  assert_int_equal (fstatat (root, "etc/hosts", &st, AT_SYMLINK_NOFOLLOW), 0);
  /* lower files are read-only on disk, shown with their true mode */
  assert_int_equal (fstatat (root, "a/sub/f2", &st, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (st.st_mode & 07777, 0444);
  overlay_dir_present (f->od, &st, &shown);
  assert_int_equal (shown.st_mode, S_IFREG | 0600);
  assert_int_equal (fstatat (root, "usr/bin/tool", &st, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (st.st_mode & 07777, 0555);
  char buf[64] = { 0 };
  assert_true (readlinkat (root, "link", buf, sizeof buf - 1) > 0);
  assert_string_equal (buf, "/etc/passwd");
  /* a device is a placeholder file shown as the device */
  const char *name;
  autoclose int dfd = parent_of (f->od, "a/null", &name);
  assert_int_equal (overlay_dir_mknod (f->od, dfd, name, "a/null", S_IFCHR | 0666, makedev (1, 3), 7, 8), 0);
  assert_int_equal (fstatat (root, "a/null", &st, AT_SYMLINK_NOFOLLOW), 0);
  assert_true (S_ISREG (st.st_mode));
  overlay_dir_present (f->od, &st, &shown);
  assert_int_equal (shown.st_mode, S_IFCHR | 0666);
  assert_int_equal (shown.st_rdev, makedev (1, 3));
  assert_int_equal (shown.st_uid, 7);
  assert_true (overlay_dir_table_entries (f->od) > 10);
  stop_all (f);
}

/* Copy-up never writes the lower inode; chmod never makes a real setuid
 * file; the change list has the true metadata. */
static void
test_copy_up_and_meta (void **state)
{
  fx *f = *state;
  start_od (f, NULL);
  int root = overlay_dir_root_fd (f->od);
  struct stat before, after, lower_before, lower_after;
  assert_int_equal (fstatat (root, "a/f1", &before, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (fstatat (f->tmpfd, "l1/a/f1", &lower_before, 0), 0);
  op w = { 'W', "a/f1", NULL, 5 };
  assert_int_equal (do_traced (f->od, &w), 0);
  assert_int_equal (fstatat (root, "a/f1", &after, AT_SYMLINK_NOFOLLOW), 0);
  assert_true (after.st_ino != before.st_ino);
  autofree char *c = slurp_at (root, "a/f1");
  assert_string_equal (c, "one-v2w5;");
  autofree char *l = slurp_at (f->tmpfd, "l1/a/f1");
  assert_string_equal (l, "one-v2");
  assert_int_equal (fstatat (f->tmpfd, "l1/a/f1", &lower_after, 0), 0);
  assert_int_equal (lower_after.st_mode, lower_before.st_mode);
  op ch = { 'C', "usr/bin/tool", NULL, 04755 };
  assert_int_equal (do_traced (f->od, &ch), 0);
  struct stat tool;
  assert_int_equal (fstatat (root, "usr/bin/tool", &tool, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (tool.st_mode & 07000, 0);
  op own = { 'O', "usr/bin/tool", NULL, 1000 };
  assert_int_equal (do_traced (f->od, &own), 0);
  overlay_changes *cs = od_commit (f);
  const overlay_change *t = find (cs, OVERLAY_CHANGE_ADD, "usr/bin/tool");
  assert_non_null (t);
  assert_int_equal (t->mode, S_IFREG | 0755); /* chown cleared setuid */
  assert_int_equal (t->uid, 1000);
  assert_non_null (find (cs, OVERLAY_CHANGE_ADD, "usr/bin"));
  assert_non_null (find (cs, OVERLAY_CHANGE_ADD, "usr"));
  assert_null (find (cs, OVERLAY_CHANGE_ADD, "etc"));
  assert_non_null (find (cs, OVERLAY_CHANGE_ADD, "a/f1"));
  overlay_changes_free (cs);
  stop_all (f);
}

/* Step 1's data stays as committed while step 2 rewrites the file; a name
 * made in step 1 and removed in step 2 gets a whiteout, one made and
 * removed within step 2 nothing; mask paths never appear. */
static void
test_two_steps_frozen (void **state)
{
  fx *f = *state;
  start_od (f, NULL);
  static const op s1[] = { OP ('W', "a/f1", NULL, 1), OP ('W', "n1", NULL, 1), OP ('M', "proc/sys", NULL, 0755),
                           OP ('W', "etc/hosts", NULL, 0) };
  for (size_t i = 0; i < ARRAY_SIZE (s1); i++)
    assert_int_equal (do_traced (f->od, &s1[i]), 0);
  overlay_changes *c1 = od_commit (f);
  const overlay_change *a1 = find (c1, OVERLAY_CHANGE_ADD, "a/f1");
  assert_non_null (a1);
  assert_true (a1->data_private);
  assert_null (find (c1, OVERLAY_CHANGE_ADD, "proc"));
  assert_null (find (c1, OVERLAY_CHANGE_ADD, "proc/sys"));
  assert_null (find (c1, OVERLAY_CHANGE_ADD, "etc/hosts"));
  for (size_t i = 0; i < c1->n; i++)
    assert_null (strstr (c1->v[i].path, "proc"));
  static const op s2[] = { OP ('W', "a/f1", NULL, 2), OP ('T', "a/f1", NULL, 0), OP ('R', "n1", NULL, 0),
                           OP ('W', "tmp", NULL, 0), OP ('R', "tmp", NULL, 0) };
  for (size_t i = 0; i < ARRAY_SIZE (s2); i++)
    assert_int_equal (do_traced (f->od, &s2[i]), 0);
  autofree char *frozen = data_of (a1);
  assert_string_equal (frozen, "one-v2w1;");
  overlay_changes *c2 = od_commit (f);
  assert_non_null (find (c2, OVERLAY_CHANGE_WHITEOUT, "n1"));
  assert_null (find (c2, OVERLAY_CHANGE_WHITEOUT, "tmp"));
  assert_null (find (c2, OVERLAY_CHANGE_ADD, "tmp"));
  const overlay_change *a2 = find (c2, OVERLAY_CHANGE_ADD, "a/f1");
  assert_non_null (a2);
  assert_int_equal (a2->size, 0);
  autofree char *frozen_again = data_of (a1);
  assert_string_equal (frozen_again, "one-v2w1;");
  overlay_changes_free (c2);
  overlay_changes_free (c1);
  stop_all (f);
}

/* The xattr ops alone: the syscalls' answers (size query, ERANGE,
 * ENODATA, flags, limits), copy-up of a lower file, the budget. */
static int
xfd (overlay_dir *od, const char *path)
{
  return openat (overlay_dir_root_fd (od), path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
}

static void
test_xattr_ops (void **state)
{
  fx *f = *state;
  start_od (f, NULL);
  char buf[64], name[300];
  autoclose int low = xfd (f->od, "a/sub/f2");
  char lowv[8];
  autofree char *lowp = xasprintf ("%s/l0/a/sub/f2", f->tmp), *l1p = xasprintf ("%s/l1/a/f1", f->tmp);
  bool lower_has = getxattr (lowp, "user.low", NULL, 0) == 1;   /* the filesystem takes user.* */
  if (lower_has)
    {
      assert_int_equal (overlay_dir_get_xattr (f->od, low, "a/sub/f2", "user.low", NULL, 0), 1);
      assert_int_equal (overlay_dir_get_xattr (f->od, low, "a/sub/f2", "user.low", lowv, sizeof lowv), 1);
      assert_memory_equal (lowv, "L", 1);
    }
  struct stat before, after;
  assert_int_equal (fstatat (overlay_dir_root_fd (f->od), "a/f1", &before, AT_SYMLINK_NOFOLLOW), 0);
  autoclose int fd = xfd (f->od, "a/f1");
  assert_int_equal (overlay_dir_list_xattr (f->od, fd, "a/f1", NULL, 0), 0);
  assert_int_equal (overlay_dir_get_xattr (f->od, fd, "a/f1", "user.a", buf, sizeof buf), -ENODATA);
  assert_int_equal (overlay_dir_set_xattr (f->od, fd, "a/f1", "user.a", "abc", 3, XATTR_REPLACE), -ENODATA);
  assert_int_equal (overlay_dir_set_xattr (f->od, fd, "a/f1", "user.a", "abc", 3, XATTR_CREATE), 0);
  /* the lower inode was copied up: the name holds a new one, the lower file has no xattr */
  assert_int_equal (fstatat (overlay_dir_root_fd (f->od), "a/f1", &after, AT_SYMLINK_NOFOLLOW), 0);
  assert_true (after.st_ino != before.st_ino);
  char lv[8];
  assert_true (getxattr (l1p, "user.a", lv, sizeof lv) < 0);
  close (fd);
  fd = xfd (f->od, "a/f1");
  assert_int_equal (overlay_dir_set_xattr (f->od, fd, "a/f1", "user.a", "x", 1, XATTR_CREATE), -EEXIST);
  assert_int_equal (overlay_dir_set_xattr (f->od, fd, "a/f1", "security.capability", "\1\0\0\2", 4, 0), 0);
  assert_int_equal (overlay_dir_get_xattr (f->od, fd, "a/f1", "user.a", NULL, 0), 3);
  assert_int_equal (overlay_dir_get_xattr (f->od, fd, "a/f1", "user.a", buf, 2), -ERANGE);
  assert_int_equal (overlay_dir_get_xattr (f->od, fd, "a/f1", "user.a", buf, 3), 3);
  assert_memory_equal (buf, "abc", 3);
  assert_int_equal (overlay_dir_list_xattr (f->od, fd, "a/f1", NULL, 0), 27);
  assert_int_equal (overlay_dir_list_xattr (f->od, fd, "a/f1", buf, 26), -ERANGE);
  assert_int_equal (overlay_dir_list_xattr (f->od, fd, "a/f1", buf, sizeof buf), 27);
  assert_memory_equal (buf, "user.a\0security.capability\0", 27);
  /* the kernel's limits and the FUSE model's namespaces */
  memset (name, 'n', sizeof name);
  memcpy (name, "user.", 5);
  name[256] = '\0';
  assert_int_equal (overlay_dir_set_xattr (f->od, fd, "a/f1", name, "v", 1, 0), -ERANGE);
  autofree char *big = xzalloc (65537);
  assert_int_equal (overlay_dir_set_xattr (f->od, fd, "a/f1", "user.big", big, 65537, 0), -E2BIG);
  assert_int_equal (overlay_dir_set_xattr (f->od, fd, "a/f1", "user.max", big, 65536, 0), 0);
  assert_int_equal (overlay_dir_set_xattr (f->od, fd, "a/f1", "trusted.t", "v", 1, 0), -EOPNOTSUPP);
  assert_int_equal (overlay_dir_get_xattr (f->od, fd, "a/f1", "trusted.t", buf, sizeof buf), -ENODATA);
  assert_int_equal (overlay_dir_remove_xattr (f->od, fd, "a/f1", "user.max"), 0);
  assert_int_equal (overlay_dir_remove_xattr (f->od, fd, "a/f1", "user.max"), -ENODATA);
  /* user.* only on regular files and directories */
  autoclose int lnk = xfd (f->od, "link");
  assert_int_equal (overlay_dir_set_xattr (f->od, lnk, "link", "user.x", "v", 1, 0), -EPERM);
  assert_int_equal (overlay_dir_remove_xattr (f->od, lnk, "link", "user.x"), -EPERM);
  /* budgets: 4096 per file, 16 MiB in all, then ENOSPC; shrinking always works */
  autoclose int dir = xfd (f->od, "empty");
  for (int i = 0; i < 4096; i++)
    {
      snprintf (name, sizeof name, "user.n%d", i);
      assert_int_equal (overlay_dir_set_xattr (f->od, dir, "empty", name, "", 0, 0), 0);
    }
  assert_int_equal (overlay_dir_set_xattr (f->od, dir, "empty", "user.more", "", 0, 0), -ENOSPC);
  autoclose int d = xfd (f->od, "d");
  int r = 0, n = 0;
  for (; n < 300 && r == 0; n++)
    {
      snprintf (name, sizeof name, "user.b%d", n);
      r = overlay_dir_set_xattr (f->od, d, "d", name, big, 65536, 0);
    }
  assert_int_equal (r, -ENOSPC);
  assert_true (n > 200 && n < 260);
  assert_int_equal (overlay_dir_set_xattr (f->od, d, "d", "user.b0", "small", 5, 0), 0);
  /* the layer carries them */
  overlay_changes *cs = od_commit (f);
  const overlay_change *c = find (cs, OVERLAY_CHANGE_ADD, "a/f1");
  assert_non_null (c);
  assert_int_equal (c->n_xattrs, 2);
  assert_string_equal (c->xattrs[0].name, "user.a");
  assert_string_equal (c->xattrs[1].name, "security.capability");
  overlay_changes_free (cs);
  stop_all (f);
}

/* ---- store lowers: hard links, read-only shared inodes ---- */
static void
write_tar (const char *path)
{
  struct archive *a = archive_write_new ();
  archive_write_set_format_pax_restricted (a);
  assert_int_equal (archive_write_open_filename (a, path), ARCHIVE_OK);
  struct archive_entry *e = archive_entry_new ();
  static const struct
  {
    const char *path, *data, *hardlink;
    mode_t mode;
  } v[] = { { "bin/", NULL, NULL, S_IFDIR | 0755 },
            { "bin/tool", "tool", NULL, S_IFREG | 0755 },
            { "bin/tool2", NULL, "bin/tool", S_IFREG | 0755 },
            { "etc/", NULL, NULL, S_IFDIR | 0755 },
            { "etc/conf", "conf", NULL, S_IFREG | 0640 } };
  for (size_t i = 0; i < ARRAY_SIZE (v); i++)
    {
      archive_entry_clear (e);
      archive_entry_set_pathname (e, v[i].path);
      archive_entry_set_mode (e, v[i].mode);
      archive_entry_set_mtime (e, 1700000000, 0);
      if (v[i].hardlink)
        archive_entry_set_hardlink (e, v[i].hardlink);
      archive_entry_set_size (e, v[i].data ? strlen (v[i].data) : 0);
      if (!strcmp (v[i].path, "etc/conf"))
        archive_entry_xattr_add_entry (e, "user.k", "v", 1);
      assert_int_equal (archive_write_header (a, e), ARCHIVE_OK);
      if (v[i].data)
        assert_int_equal (archive_write_data (a, v[i].data, strlen (v[i].data)), (la_ssize_t) strlen (v[i].data));
    }
  archive_entry_free (e);
  assert_int_equal (archive_write_close (a), ARCHIVE_OK);
  archive_write_free (a);
}

static void
add_layer (store *s, const char *path, char diff[DIGEST_STRING_SIZE])
{
  autoerror kiln_error *err = NULL;
  char blob[DIGEST_STRING_SIZE];
  autoclose int fd = open (path, O_RDONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_ok (digest_fd (fd, blob, NULL, &err), err);
  assert_int_equal (lseek (fd, 0, SEEK_SET), 0);
  extract_result res;
  assert_ok (extract_to_store (s, blob, NULL, extract_read_fd, &fd, NULL, &res, &err), err);
  memcpy (diff, res.diff_id, DIGEST_STRING_SIZE);
}

static void
test_store_lower_linked (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  autofree char *sroot = xasprintf ("%s/store", f->tmp), *tar = xasprintf ("%s/l.tar", f->tmp);
  store *s = NULL;
  assert_ok (store_open (sroot, 0, &s, &err), err);
  write_tar (tar);
  char diff[DIGEST_STRING_SIZE];
  add_layer (s, tar, diff);
  char *ids[] = { diff };
  overlay_lower *l = NULL;
  assert_ok (overlay_lower_open_store (s, ids, 1, &l, &err), err);
  start_od (f, l);
  int ldir = overlay_lower_dirfd (l, 0), root = overlay_dir_root_fd (f->od);
  struct stat in_store, in_root, in_root2, st_after;
  assert_int_equal (fstatat (ldir, "bin/tool", &in_store, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (fstatat (root, "bin/tool", &in_root, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (fstatat (root, "bin/tool2", &in_root2, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (in_store.st_ino, in_root.st_ino);
  assert_int_equal (in_root2.st_ino, in_root.st_ino);
  assert_int_equal (in_root.st_mode & 07777, 0555);
  /* writing one name copies it up: the store's inode and the other name keep their data */
  op w = { 'W', "bin/tool", NULL, 9 };
  assert_int_equal (do_traced (f->od, &w), 0);
  autofree char *sd = slurp_at (ldir, "bin/tool"), *rd = slurp_at (root, "bin/tool2");
  autofree char *nd = slurp_at (root, "bin/tool");
  assert_string_equal (sd, "tool");
  assert_string_equal (rd, "tool");
  assert_string_equal (nd, "toolw9;");
  assert_int_equal (fstatat (ldir, "bin/tool", &st_after, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (st_after.st_mode, in_root.st_mode);
  op ch = { 'C', "etc/conf", NULL, 0600 };
  assert_int_equal (do_traced (f->od, &ch), 0);
  overlay_changes *c = od_commit (f);
  const overlay_change *conf = find (c, OVERLAY_CHANGE_ADD, "etc/conf");
  assert_non_null (conf);
  assert_int_equal (conf->mode, S_IFREG | 0600);
  assert_int_equal (conf->n_xattrs, 1);
  assert_string_equal (conf->xattrs[0].name, "user.k");
  assert_null (find (c, OVERLAY_CHANGE_ADD, "bin/tool2"));
  const overlay_change *t = find (c, OVERLAY_CHANGE_ADD, "bin/tool");
  assert_non_null (t);
  assert_int_equal (t->mode, S_IFREG | 0755);
  overlay_changes_free (c);
  stop_all (f);
  store_close (s);
}

/* Materialization time and table size of a real image: the Debian fixture
 * layer blob in KILN_ODIR_BLOB (skipped without it). */
static void
test_materialize_blob (void **state)
{
  fx *f = *state;
  const char *blob = getenv ("KILN_ODIR_BLOB");
  if (!blob)
    {
      /* a measurement, not a check: nothing to do without the blob (a
       * cmocka skip counts as a failure in tests/run-tests.sh) */
      print_message ("# KILN_ODIR_BLOB not set: no measurement\n");
      return;
    }
  autoerror kiln_error *err = NULL;
  autofree char *sroot = xasprintf ("%s/store", f->tmp);
  store *s = NULL;
  assert_ok (store_open (sroot, 0, &s, &err), err);
  char diff[DIGEST_STRING_SIZE];
  add_layer (s, blob, diff);
  char *ids[] = { diff };
  overlay_lower *l = NULL;
  assert_ok (overlay_lower_open_store (s, ids, 1, &l, &err), err);
  struct timespec t0, t1;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  start_od (f, l);
  clock_gettime (CLOCK_MONOTONIC, &t1);
  double ms = (double) (t1.tv_sec - t0.tv_sec) * 1e3 + (double) (t1.tv_nsec - t0.tv_nsec) / 1e6;
  size_t n = overlay_dir_table_entries (f->od);
  print_message ("# materialized %zu inodes in %.1f ms; table entry %zu bytes\n", n, ms,
                 overlay_dir_table_entry_size ());
  clock_gettime (CLOCK_MONOTONIC, &t0);
  stop_all (f);
  clock_gettime (CLOCK_MONOTONIC, &t1);
  ms = (double) (t1.tv_sec - t0.tv_sec) * 1e3 + (double) (t1.tv_nsec - t0.tv_nsec) / 1e6;
  print_message ("# removed in %.1f ms\n", ms);
  store_close (s);
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
    cmocka_unit_test_setup_teardown (test_view_and_present, setup, teardown),
    cmocka_unit_test_setup_teardown (test_copy_up_and_meta, setup, teardown),
    cmocka_unit_test_setup_teardown (test_two_steps_frozen, setup, teardown),
    cmocka_unit_test_setup_teardown (test_store_lower_linked, setup, teardown),
    cmocka_unit_test_setup_teardown (test_xattr_ops, setup, teardown),
    cmocka_unit_test_setup_teardown (test_compare_scripts, setup, teardown),
    cmocka_unit_test_setup_teardown (test_compare_random, setup, teardown),
    cmocka_unit_test_setup_teardown (test_compare_random_xattr, setup, teardown),
    cmocka_unit_test_setup_teardown (test_materialize_blob, setup, teardown),
  };
  return cmocka_run_group_tests (tests, group_setup, NULL);
}
