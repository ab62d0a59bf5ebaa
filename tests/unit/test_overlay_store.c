/* test_overlay_store.c - the overlay over store layers (lowers served from
 * the mmap'd layer indexes), the change list with its ancestor directories,
 * and its conversion into a layer blob, read back with libarchive.
 *
 * The mount test needs root (a private mount namespace and /dev/fuse); the
 * model-level tests need neither.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "overlay/overlay.h"
#include "overlay/overlay_model.h"
#include "store/extract.h"
#include "store/layer_index.h"
#include "store/layer_writer.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/fsutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static bool can_mount;
static const char *skip_reason = "cannot mount fuse here";

/* ---- building store layers from tars made here ---- */

typedef struct spec
{
  const char *path;
  mode_t mode;          /* type | permissions */
  unsigned uid, gid;
  const char *data;     /* regular files */
  const char *link;     /* symlink target */
  const char *hardlink; /* tar hardlink target */
  const char *xname;    /* one xattr */
  const char *xval;
} spec;

static void
write_tar (const char *path, const spec *v, size_t n)
{
  struct archive *a = archive_write_new ();
  archive_write_set_format_pax_restricted (a);
  assert_int_equal (archive_write_open_filename (a, path), ARCHIVE_OK);
  struct archive_entry *e = archive_entry_new ();
  for (size_t i = 0; i < n; i++)
    {
      archive_entry_clear (e);
      archive_entry_set_pathname (e, v[i].path);
      archive_entry_set_mode (e, v[i].mode);
      archive_entry_set_uid (e, v[i].uid);
      archive_entry_set_gid (e, v[i].gid);
      archive_entry_set_mtime (e, 1700000000 + (time_t) i, 0);
      if (v[i].link)
        archive_entry_set_symlink (e, v[i].link);
      if (v[i].hardlink)
        {
          archive_entry_set_hardlink (e, v[i].hardlink);
          archive_entry_set_size (e, 0);
        }
      else
        archive_entry_set_size (e, v[i].data ? strlen (v[i].data) : 0);
      if (v[i].xname)
        archive_entry_xattr_add_entry (e, v[i].xname, v[i].xval, strlen (v[i].xval));
      assert_int_equal (archive_write_header (a, e), ARCHIVE_OK);
      if (v[i].data && !v[i].hardlink)
        assert_int_equal (archive_write_data (a, v[i].data, strlen (v[i].data)),
                          (la_ssize_t) strlen (v[i].data));
    }
  archive_entry_free (e);
  assert_int_equal (archive_write_close (a), ARCHIVE_OK);
  archive_write_free (a);
}

/* Extract tar file path into the store; the layer's diffID into diff. */
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

#define D(p, m, u, g) { .path = p, .mode = S_IFDIR | (m), .uid = u, .gid = g }
#define F(p, m, u, g, d) { .path = p, .mode = S_IFREG | (m), .uid = u, .gid = g, .data = d }

/* Layer 0: usr/ and usr/lib/ implicit. */
static const spec layer0[] = {
  D ("./", 0711, 0, 0),
  D ("etc/", 0751, 0, 42),
  F ("etc/passwd", 0644, 0, 0, "root:x:0:0::/root:/bin/sh\n"),
  D ("shared/", 01777, 1000, 1000),
  F ("shared/old.txt", 0644, 1000, 1000, "old"),
  D ("opq/", 0750, 0, 0),
  F ("opq/a", 0644, 0, 0, "a"),
  F ("opq/b", 0644, 0, 0, "b"),
  D ("bin/", 0755, 0, 0),
  { .path = "bin/ping", .mode = S_IFREG | 0755, .data = "ping", .xname = "user.test",
    .xval = "hello" },
  F ("bin/tool", 0755, 0, 0, "tool"),
  { .path = "bin/tool2", .mode = S_IFREG | 0755, .hardlink = "bin/tool" },
  { .path = "bin/sh", .mode = S_IFLNK | 0777, .link = "tool" },
  F ("usr/lib/libx.so", 0644, 0, 0, "elf"),
  F ("gone.txt", 0644, 0, 0, "bye"),
  D ("deep/", 0710, 0, 3),
  D ("deep/inner/", 0700, 5, 5),
  F ("deep/inner/f", 0644, 5, 5, "f"),
};

/* Layer 1: the root, etc/ and shared/ implicit (their metadata comes from
 * layer 0), gone.txt whited out. */
static const spec layer1[] = {
  F ("etc/conf/x", 0600, 0, 0, "x"),
  F ("shared/new.txt", 0600, 1000, 1000, "new"),
  F (".wh.gone.txt", 0644, 0, 0, ""),
  /* deep/ implicit and opaque: its own metadata from layer 0, but layer
   * 0's deep/inner is hidden, so the implicit deep/inner keeps defaults */
  F ("deep/.wh..wh..opq", 0644, 0, 0, ""),
  F ("deep/inner/g", 0644, 0, 0, "g"),
};

typedef struct fx
{
  char *tmp;
  int tmpfd;
  char *mnt;
  store *s;
  char diffs[2][DIGEST_STRING_SIZE];
  overlay *ovl;
} fx;

static int
setup (void **state)
{
  fx *f = xzalloc (sizeof *f);
  autoerror kiln_error *err = NULL;
  f->tmp = test_mkdtemp (&f->tmpfd);
  f->mnt = xasprintf ("%s/mnt", f->tmp);
  assert_int_equal (mkdirat (f->tmpfd, "mnt", 0755), 0);
  assert_int_equal (mkdirat (f->tmpfd, "scratch", 0700), 0);
  autofree char *root = xasprintf ("%s/store", f->tmp);
  assert_ok (store_open (root, 0, &f->s, &err), err);
  autofree char *t0 = xasprintf ("%s/l0.tar", f->tmp), *t1 = xasprintf ("%s/l1.tar", f->tmp);
  write_tar (t0, layer0, sizeof layer0 / sizeof *layer0);
  write_tar (t1, layer1, sizeof layer1 / sizeof *layer1);
  add_layer (f->s, t0, f->diffs[0]);
  add_layer (f->s, t1, f->diffs[1]);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  fx *f = *state;
  overlay_free (f->ovl);
  store_close (f->s);
  close (f->tmpfd);
  test_rmtree (f->tmp);
  free (f->tmp);
  free (f->mnt);
  free (f);
  return 0;
}

static overlay_lower *
open_lower (fx *f)
{
  autoerror kiln_error *err = NULL;
  char *ids[] = { f->diffs[0], f->diffs[1] };
  overlay_lower *l = NULL;
  assert_ok (overlay_lower_open_store (f->s, ids, 2, &l, &err), err);
  assert_int_equal (overlay_lower_count (l), 2);
  return l;
}

static overlay_config
config (fx *f, overlay_lower *l, int sfd)
{
  (void) f;
  static const char *const masks[] = { "proc/", "etc/hosts", NULL };
  return (overlay_config) { .lower = l, .scratch_dirfd = sfd, .id_mode = OVERLAY_IDS_FULL,
                            .mask_paths = masks };
}

/* ---- model level (no mount needed) ---- */

static uint64_t
lookup (overlay_model *m, const char *path, struct stat *st)
{
  uint64_t ino = OVERLAY_ROOT_INO;
  autofree char *dup = xstrdup (path);
  char *save = NULL;
  for (char *c = strtok_r (dup, "/", &save); c; c = strtok_r (NULL, "/", &save))
    {
      int r = overlay_model_lookup (m, ino, c, st);
      if (r < 0)
        return 0;
      ino = st->st_ino;
    }
  if (ino == OVERLAY_ROOT_INO)
    assert_int_equal (overlay_model_getattr (m, ino, st), 0);
  return ino;
}

static void
read_ino (overlay_model *m, uint64_t ino, char *buf, size_t len)
{
  bool imm;
  int fd = overlay_model_open (m, ino, O_RDONLY, &imm);
  assert_true (fd >= 0);
  ssize_t n = pread (fd, buf, len - 1, 0);
  assert_true (n >= 0);
  buf[n] = '\0';
  overlay_model_release (m, ino);
}

static void
test_model_view (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  autoclose int sfd = openat (f->tmpfd, "scratch", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  overlay_config cfg = config (f, open_lower (f), sfd);
  overlay_model *m = NULL;
  assert_ok (overlay_model_new (&cfg, &m, &err), err);
  struct stat st;
  /* implicit root in the top layer: layer 0's root */
  assert_int_equal (lookup (m, "", &st), OVERLAY_ROOT_INO);
  assert_int_equal (st.st_mode, S_IFDIR | 0711);
  /* implicit in layer 1: metadata of layer 0 */
  assert_true (lookup (m, "etc", &st));
  assert_int_equal (st.st_mode, S_IFDIR | 0751);
  assert_int_equal (st.st_gid, 42);
  assert_true (lookup (m, "shared", &st));
  assert_int_equal (st.st_mode, S_IFDIR | 01777);
  assert_int_equal (st.st_uid, 1000);
  assert_int_equal (st.st_gid, 1000);
  /* implicit in the only layer that has it: defaults */
  assert_true (lookup (m, "usr/lib", &st));
  assert_int_equal (st.st_mode, S_IFDIR | 0755);
  assert_int_equal (st.st_uid, 0);
  assert_true (lookup (m, "deep", &st));
  assert_int_equal (st.st_mode, S_IFDIR | 0710);
  assert_int_equal (st.st_gid, 3);
  assert_true (lookup (m, "deep/inner", &st));
  assert_int_equal (st.st_mode, S_IFDIR | 0755);
  assert_int_equal (st.st_uid, 0);
  assert_true (lookup (m, "deep/inner/g", &st));
  assert_int_equal (lookup (m, "deep/inner/f", &st), 0);
  /* merged contents, whiteout applied */
  assert_true (lookup (m, "etc/conf/x", &st));
  assert_true (lookup (m, "etc/passwd", &st));
  assert_int_equal (st.st_size, 26);
  assert_int_equal (lookup (m, "gone.txt", &st), 0);
  assert_true (lookup (m, "shared/new.txt", &st));
  assert_int_equal (st.st_mode, S_IFREG | 0600);
  /* symlink from the index */
  uint64_t sh = lookup (m, "bin/sh", &st);
  assert_true (sh);
  assert_int_equal (st.st_mode & S_IFMT, S_IFLNK);
  autofree char *target = NULL;
  assert_int_equal (overlay_model_readlink (m, sh, &target), 0);
  assert_string_equal (target, "tool");
  /* hardlink group: both names read the same data */
  char b1[64], b2[64];
  read_ino (m, lookup (m, "bin/tool", &st), b1, sizeof b1);
  read_ino (m, lookup (m, "bin/tool2", &st), b2, sizeof b2);
  assert_string_equal (b1, "tool");
  assert_string_equal (b2, "tool");
  assert_int_equal (st.st_nlink, 2);
  assert_true (lookup (m, "bin/ping", &st));
  assert_int_equal (st.st_nlink, 1);
  /* xattrs from the index */
  uint64_t ping = lookup (m, "bin/ping", &st);
  char xv[64];
  assert_int_equal (overlay_model_getxattr (m, ping, "user.test", xv, sizeof xv), 5);
  assert_memory_equal (xv, "hello", 5);
  /* readdir of the merged root: whiteout and its name hidden, mask present */
  overlay_listing *l = NULL;
  assert_int_equal (overlay_model_opendir (m, OVERLAY_ROOT_INO, &l), 0);
  const overlay_dirent *de = l->v;
  size_t nd = l->n;
  const char *want[] = { "bin", "deep", "etc", "opq", "proc", "shared", "usr" };
  size_t seen = 0;
  for (size_t i = 0; i < nd; i++)
    {
      assert_null (strstr (de[i].name, ".wh."));
      assert_string_not_equal (de[i].name, "gone.txt");
      for (size_t k = 0; k < sizeof want / sizeof *want; k++)
        seen += !strcmp (de[i].name, want[k]);
    }
  assert_int_equal (seen, 7);
  overlay_model_closedir (m, l);
  overlay_model_free (m);
}

/* A store layer with n_dirs directories of per_dir files (prefix p). */
static void
synthetic_layer (store *s, unsigned n_dirs, unsigned per_dir, const char *p, char diff[DIGEST_STRING_SIZE])
{
  autoerror kiln_error *err = NULL;
  autoindexbuilder layer_index_builder *b = layer_index_builder_new ();
  layer_index_meta dm = { .type = LAYER_INDEX_DIR, .mode = 0755, .mtime_sec = 1 };
  layer_index_meta fm = { .type = LAYER_INDEX_REG, .mode = 0644, .uid = 7, .mtime_sec = 1 };
  char path[64];
  for (unsigned d = 0; d < n_dirs; d++)
    {
      snprintf (path, sizeof path, "d%05u", d);
      assert_ok (layer_index_builder_add (b, path, &dm, NULL, &err), err);
      for (unsigned i = 0; i < per_dir; i++)
        {
          snprintf (path, sizeof path, "d%05u/%s%04u", d, p, i);
          assert_ok (layer_index_builder_add (b, path, &fm, NULL, &err), err);
        }
    }
  autofree char *tmpname = NULL;
  autoclose int tfd = -1;
  assert_ok (store_mktemp (s, "synth-", &tmpname, &tfd, &err), err);
  assert_int_equal (mkdirat (tfd, "tree", 0700), 0);
  assert_ok (layer_index_builder_write_at (b, tfd, "index", &err), err);
  digest_buffer (p, strlen (p), diff);
  autoclose int lk = store_lock_layer (s, diff, &err);
  assert_ok (lk, err);
  assert_ok (store_publish_layer (s, tmpname, diff, NULL, &err), err);
}

static double
ms_since (const struct timespec *t0)
{
  struct timespec t1;
  clock_gettime (CLOCK_MONOTONIC, &t1);
  return (t1.tv_sec - t0->tv_sec) * 1e3 + (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void
test_load_time_200k (void **state)
{
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  char d0[DIGEST_STRING_SIZE], d1[DIGEST_STRING_SIZE];
  /* 2 x (1000 dirs + 100,000 files): 202,000 entries plus the roots */
  synthetic_layer (f->s, 1000, 100, "f", d0);
  synthetic_layer (f->s, 1000, 100, "g", d1);
  char *ids[] = { d0, d1 };
  autoclose int sfd = openat (f->tmpfd, "scratch", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  struct timespec t0;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  overlay_lower *l = NULL;
  assert_ok (overlay_lower_open_store (f->s, ids, 2, &l, &err), err);
  overlay_config cfg = { .lower = l, .scratch_dirfd = sfd, .id_mode = OVERLAY_IDS_FULL };
  overlay_model *m = NULL;
  assert_ok (overlay_model_new (&cfg, &m, &err), err);
  struct stat st;
  /* first use: merge the root (1000 names from each layer), then one dir */
  assert_true (lookup (m, "d00500/g0099", &st));
  double ms = ms_since (&t0);

  print_message ("# overlay store stack of 202,002 index entries: open + first lookup %.2f ms\n", ms);
#if defined(__SANITIZE_ADDRESS__)
  double limit = 1000; /* ASan/UBSan instrumentation: same code, looser bound */
#else
  double limit = 100;
#endif
  assert_true (ms < limit);
  assert_int_equal (st.st_uid, 7);
  assert_int_equal (st.st_mode, S_IFREG | 0644);
  overlay_listing *ls = NULL;
  uint64_t dir = lookup (m, "d00500", &st);
  assert_int_equal (overlay_model_opendir (m, dir, &ls), 0);
  size_t real = 0;
  for (size_t i = 0; i < ls->n; i++)
    real += strcmp (ls->v[i].name, ".") && strcmp (ls->v[i].name, "..");
  assert_int_equal (real, 200);
  overlay_model_closedir (m, ls);
  assert_int_equal (overlay_model_opendir (m, OVERLAY_ROOT_INO, &ls), 0);
  real = 0;
  for (size_t i = 0; i < ls->n; i++)
    real += strcmp (ls->v[i].name, ".") && strcmp (ls->v[i].name, "..");
  assert_int_equal (real, 1000);
  overlay_model_closedir (m, ls);
  overlay_model_free (m);
}

/* ---- change list conversion without a mount ---- */

static void
test_to_layer_errors (void **state)
{
  (void) state;
  autoerror kiln_error *err = NULL;
  overlay_change v[2] = {
    { .kind = OVERLAY_CHANGE_ADD, .path = (char *) "f", .mode = S_IFREG | 0644, .data_dirfd = -1 },
    { .kind = OVERLAY_CHANGE_HARDLINK, .path = (char *) "g", .link_target = (char *) "nope" },
  };
  overlay_changes c = { .v = v, .n = 1 };
  layer_change *out = NULL;
  size_t n = 0;
  assert_true (overlay_changes_to_layer (&c, &out, &n, &err) < 0);
  assert_true (test_err_contains (err, "no data"));
  kiln_error_clear (&err);
  v[0].data_dirfd = 0;
  v[0].data_path = (char *) "f";
  c.n = 2;
  assert_true (overlay_changes_to_layer (&c, &out, &n, &err) < 0);
  assert_true (test_err_contains (err, "'nope'"));
  kiln_error_clear (&err);
  /* sockets are dropped, a hardlinked symlink ships as a copy */
  overlay_change w[4] = {
    { .kind = OVERLAY_CHANGE_ADD, .path = (char *) "l", .mode = S_IFLNK | 0777, .symlink = (char *) "t",
      .data_dirfd = -1 },
    { .kind = OVERLAY_CHANGE_ADD, .path = (char *) "s", .mode = S_IFSOCK | 0755, .data_dirfd = -1 },
    { .kind = OVERLAY_CHANGE_HARDLINK, .path = (char *) "z", .link_target = (char *) "l" },
    { .kind = OVERLAY_CHANGE_WHITEOUT, .path = (char *) "zz" },
  };
  c = (overlay_changes) { .v = w, .n = 4 };
  assert_ok (overlay_changes_to_layer (&c, &out, &n, &err), err);
  assert_int_equal (n, 3);
  assert_string_equal (out[0].path, "l");
  assert_int_equal (out[0].meta.type, LAYER_INDEX_SYMLINK);
  assert_string_equal (out[1].path, "z");
  assert_null (out[1].hardlink_target);
  assert_string_equal (out[1].meta.link_target, "t");
  assert_int_equal (out[2].kind, LAYER_CHANGE_WHITEOUT);
  free (out);
  /* hardlinks ship their target's xattrs: room for them (found by
   * fuzz_overlay: a heap overflow when a linked file had xattrs) */
  overlay_xattr xa[2] = { { (char *) "security.capability", (void *) "cap", 3 },
                          { (char *) "user.k", (void *) "v", 1 } };
  overlay_change h[4] = {
    { .kind = OVERLAY_CHANGE_ADD, .path = (char *) "a", .mode = S_IFREG | 0755, .data_dirfd = 0,
      .data_path = (char *) "a", .xattrs = xa, .n_xattrs = 2 },
    { .kind = OVERLAY_CHANGE_HARDLINK, .path = (char *) "b", .link_target = (char *) "a" },
    { .kind = OVERLAY_CHANGE_HARDLINK, .path = (char *) "c", .link_target = (char *) "a" },
    { .kind = OVERLAY_CHANGE_HARDLINK, .path = (char *) "d", .link_target = (char *) "a" },
  };
  c = (overlay_changes) { .v = h, .n = 4 };
  assert_ok (overlay_changes_to_layer (&c, &out, &n, &err), err);
  assert_int_equal (n, 4);
  for (size_t i = 1; i < 4; i++)
    {
      assert_string_equal (out[i].hardlink_target, "a");
      assert_int_equal (out[i].meta.n_xattrs, 2);
      assert_string_equal (out[i].meta.xattrs[1].name, "user.k");
      assert_memory_equal (out[i].meta.xattrs[0].value, "cap", 3);
    }
  free (out);
}

/* ---- on a mount ---- */

typedef struct tar_ent
{
  char *name;
  mode_t mode;
  unsigned uid, gid;
  int64_t size;
  char *link, *hardlink, *data;
  char *xname;
  size_t xlen;
  char xval[64];
} tar_ent;

static size_t
read_tar (const char *path, tar_ent *v, size_t max)
{
  struct archive *a = archive_read_new ();
  archive_read_support_format_tar (a);
  assert_int_equal (archive_read_open_filename (a, path, 65536), ARCHIVE_OK);
  struct archive_entry *e;
  size_t n = 0;
  while (archive_read_next_header (a, &e) == ARCHIVE_OK)
    {
      assert_true (n < max);
      tar_ent *t = &v[n++];
      memset (t, 0, sizeof *t);
      t->name = xstrdup (archive_entry_pathname (e));
      t->mode = archive_entry_mode (e);
      t->uid = archive_entry_uid (e);
      t->gid = archive_entry_gid (e);
      t->size = archive_entry_size (e);
      t->link = archive_entry_symlink (e) ? xstrdup (archive_entry_symlink (e)) : NULL;
      t->hardlink = archive_entry_hardlink (e) ? xstrdup (archive_entry_hardlink (e)) : NULL;
      if (archive_entry_xattr_reset (e) > 0)
        {
          const char *xn;
          const void *xv;
          size_t xl;
          archive_entry_xattr_next (e, &xn, &xv, &xl);
          t->xname = xstrdup (xn);
          t->xlen = xl < sizeof t->xval ? xl : sizeof t->xval;
          memcpy (t->xval, xv, t->xlen);
        }
      if (t->size > 0)
        {
          t->data = xzalloc (t->size + 1);
          assert_int_equal (archive_read_data (a, t->data, t->size), t->size);
        }
    }
  archive_read_free (a);
  return n;
}

static char *
P (fx *f, const char *rel)
{
  return xasprintf ("%s/%s", f->mnt, rel);
}

static void
spit (const char *path, const char *s, int flags, mode_t mode)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, mode);
  assert_true (fd >= 0);
  assert_int_equal (write (fd, s, strlen (s)), (ssize_t) strlen (s));
  assert_int_equal (close (fd), 0);
}

static void
test_mount_ops_to_layer (void **state)
{
  if (!can_mount)
    test_skip (skip_reason);
  fx *f = *state;
  autoerror kiln_error *err = NULL;
  autoclose int sfd = openat (f->tmpfd, "scratch", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  overlay_config cfg = config (f, open_lower (f), sfd);
  assert_ok (overlay_new (&cfg, &f->ovl, &err), err);
  assert_ok (overlay_mount (f->ovl, f->mnt, &err), err);

  /* the view through the kernel */
  struct stat st;
  autofree char *etc = P (f, "etc"), *shared = P (f, "shared"), *tool2 = P (f, "bin/tool2");
  assert_int_equal (stat (etc, &st), 0);
  assert_int_equal (st.st_mode, S_IFDIR | 0751);
  assert_int_equal (st.st_gid, 42);
  assert_int_equal (stat (shared, &st), 0);
  assert_int_equal (st.st_mode, S_IFDIR | 01777);
  assert_int_equal (st.st_uid, 1000);
  char buf[64] = { 0 };
  int fd = open (tool2, O_RDONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (read (fd, buf, sizeof buf), 4);
  close (fd);
  assert_string_equal (buf, "tool");

  /* the step */
  autofree char *nd = P (f, "newdir"), *sub = P (f, "newdir/sub"), *file = P (f, "newdir/sub/file.txt");
  assert_int_equal (mkdir (nd, 0755), 0);
  assert_int_equal (mkdir (sub, 0700), 0);
  spit (file, "fresh", O_EXCL, 0644);
  autofree char *old = P (f, "shared/old.txt");
  spit (old, "+more", O_APPEND, 0);
  autofree char *passwd = P (f, "etc/passwd");
  assert_int_equal (unlink (passwd), 0);
  autofree char *opq = P (f, "opq"), *oa = P (f, "opq/a"), *ob = P (f, "opq/b"), *oc = P (f, "opq/c");
  assert_int_equal (unlink (oa), 0);
  assert_int_equal (unlink (ob), 0);
  assert_int_equal (rmdir (opq), 0);
  assert_int_equal (mkdir (opq, 0700), 0);
  spit (oc, "c", O_EXCL, 0640);
  autofree char *tool = P (f, "bin/tool");
  assert_int_equal (chmod (tool, 0700), 0);
  autofree char *lnk = P (f, "newdir/link"), *hl = P (f, "newdir/hl");
  assert_int_equal (symlink ("../etc/passwd", lnk), 0);
  assert_int_equal (link (file, hl), 0);
  autofree char *ping = P (f, "newdir/ping");
  spit (ping, "p", O_EXCL, 0755);
  /* VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_RAW */
  const uint32_t cap[5] = { 0x02000001, 1u << 13, 0, 0, 0 };
  assert_int_equal (setxattr (ping, "security.capability", cap, sizeof cap, 0), 0);

  overlay_changes *c = NULL;
  assert_ok (overlay_commit (f->ovl, &c, &err), err);
  layer_change *lc = NULL;
  size_t n = 0;
  assert_ok (overlay_changes_to_layer (c, &lc, &n, &err), err);
  autofree char *tarp = xasprintf ("%s/step.tar", f->tmp);
  autoclose int out = open (tarp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  assert_true (out >= 0);
  layer_writer_opts o = { .compression = LAYER_COMPRESS_NONE, .level = -1, .threads = 1 };
  layer_writer_result wr;
  assert_ok (layer_writer_write (lc, n, &o, out, &wr, &err), err);
  free (lc);
  overlay_changes_free (c);

  tar_ent v[64];
  size_t nv = read_tar (tarp, v, 64);
  for (size_t i = 0; i < nv; i++)
    print_message ("#   %s 0%o %u:%u %lld%s%s\n", v[i].name, (unsigned) v[i].mode, v[i].uid, v[i].gid,
                   (long long) v[i].size, v[i].hardlink ? " link to " : "", v[i].hardlink ? v[i].hardlink : "");
  static const struct
  {
    const char *name;
    mode_t mode;
    unsigned uid, gid;
    const char *data;
  } want[] = {
    { "bin/", S_IFDIR | 0755, 0, 0, NULL },
    { "bin/tool", S_IFREG | 0700, 0, 0, "tool" },
    { "etc/", S_IFDIR | 0751, 0, 42, NULL },
    { "etc/.wh.passwd", S_IFREG, 0, 0, NULL },
    { "newdir/", S_IFDIR | 0755, 0, 0, NULL },
    { "newdir/hl", S_IFREG | 0644, 0, 0, "fresh" },
    { "newdir/link", S_IFLNK | 0777, 0, 0, NULL },
    { "newdir/ping", S_IFREG | 0755, 0, 0, "p" },
    { "newdir/sub/", S_IFDIR | 0700, 0, 0, NULL },
    /* a tar hardlink member (typeflag '1') reads back without type bits */
    { "newdir/sub/file.txt", 0644, 0, 0, NULL },
    { "opq/", S_IFDIR | 0700, 0, 0, NULL },
    { "opq/.wh..wh..opq", S_IFREG, 0, 0, NULL },
    { "opq/c", S_IFREG | 0640, 0, 0, "c" },
    { "shared/", S_IFDIR | 01777, 1000, 1000, NULL },
    { "shared/old.txt", S_IFREG | 0644, 1000, 1000, "old+more" },
  };
  size_t nw = sizeof want / sizeof *want;
  assert_int_equal (nv, nw);
  for (size_t i = 0; i < nw; i++)
    {
      assert_string_equal (v[i].name, want[i].name);
      assert_int_equal (v[i].mode, want[i].mode);
      assert_int_equal (v[i].uid, want[i].uid);
      assert_int_equal (v[i].gid, want[i].gid);
      if (want[i].data)
        assert_string_equal (v[i].data, want[i].data);
    }
  assert_string_equal (v[6].link, "../etc/passwd");
  assert_string_equal (v[9].hardlink, "newdir/hl");
  assert_non_null (v[7].xname);
  assert_string_equal (v[7].xname, "security.capability");
  assert_int_equal (v[7].xlen, sizeof cap);
  assert_memory_equal (v[7].xval, cap, sizeof cap);
  assert_int_equal (wr.entries, nw);

  /* round trip: the layer extracted on top of the stack gives the view the
   * step left (a fresh model over three store layers) */
  char d2[DIGEST_STRING_SIZE];
  add_layer (f->s, tarp, d2);
  assert_string_equal (d2, wr.diff_id);
  char *ids[] = { f->diffs[0], f->diffs[1], d2 };
  overlay_lower *l3 = NULL;
  assert_ok (overlay_lower_open_store (f->s, ids, 3, &l3, &err), err);
  assert_int_equal (mkdirat (f->tmpfd, "scratch2", 0700), 0);
  autoclose int sfd2 = openat (f->tmpfd, "scratch2", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  overlay_config cfg3 = config (f, l3, sfd2);
  overlay_model *m = NULL;
  assert_ok (overlay_model_new (&cfg3, &m, &err), err);
  assert_int_equal (lookup (m, "etc/passwd", &st), 0);
  assert_int_equal (lookup (m, "opq/a", &st), 0);
  assert_true (lookup (m, "opq/c", &st));
  assert_true (lookup (m, "etc/conf/x", &st));
  assert_true (lookup (m, "etc", &st));
  assert_int_equal (st.st_mode, S_IFDIR | 0751);
  assert_int_equal (st.st_gid, 42);
  assert_true (lookup (m, "shared", &st));
  assert_int_equal (st.st_mode, S_IFDIR | 01777);
  assert_int_equal (st.st_uid, 1000);
  assert_true (lookup (m, "shared/new.txt", &st));
  read_ino (m, lookup (m, "shared/old.txt", &st), buf, sizeof buf);
  assert_string_equal (buf, "old+more");
  read_ino (m, lookup (m, "newdir/sub/file.txt", &st), buf, sizeof buf);
  assert_string_equal (buf, "fresh");
  uint64_t pi = lookup (m, "newdir/ping", &st);
  char cv[64];
  assert_int_equal (overlay_model_getxattr (m, pi, "security.capability", cv, sizeof cv), (int) sizeof cap);
  assert_int_equal (lookup (m, "bin/tool", &st) != 0, 1);
  assert_int_equal (st.st_mode, S_IFREG | 0700);
  overlay_model_free (m);
  for (size_t i = 0; i < nv; i++)
    {
      free (v[i].name);
      free (v[i].link);
      free (v[i].hardlink);
      free (v[i].data);
      free (v[i].xname);
    }
}

static int
group_setup (void **state)
{
  (void) state;
  umask (022);
  if (geteuid () != 0)
    {
      skip_reason = "mount test needs root (as in CI)";
      return 0;
    }
  skip_reason = test_fuse_namespace ();
  can_mount = skip_reason == NULL;
  return 0;
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_model_view, setup, teardown),
    cmocka_unit_test_setup_teardown (test_load_time_200k, setup, teardown),
    cmocka_unit_test (test_to_layer_errors),
    cmocka_unit_test_setup_teardown (test_mount_ops_to_layer, setup, teardown),
  };
  return cmocka_run_group_tests (tests, group_setup, NULL);
}
