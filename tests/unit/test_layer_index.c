/* test_layer_index.c - layer metadata index: build, write, map, look up,
 * validate untrusted files, load time of a 200k-entry layer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "store/layer_index.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static layer_index_meta
meta (layer_index_type t, uint32_t mode, uint32_t uid, uint32_t gid)
{
  layer_index_meta m = { .type = t, .mode = mode, .uid = uid, .gid = gid, .mtime_sec = 1700000000,
                         .mtime_nsec = 123456789 };
  return m;
}

static void
add (layer_index_builder *b, const char *path, layer_index_meta m)
{
  autoerror kiln_error *err = NULL;
  assert_ok (layer_index_builder_add (b, path, &m, NULL, &err), err);
}

static layer_index *
roundtrip (layer_index_builder *b)
{
  autoerror kiln_error *err = NULL;
  autofree void *data = NULL;
  size_t len;
  assert_ok (layer_index_builder_serialize (b, &data, &len, &err), err);
  layer_index *idx = NULL;
  assert_ok (layer_index_open_mem (data, len, &idx, &err), err);
  return idx;
}

static const char *
path_of (const layer_index *idx, uint32_t id, strbuf *sb)
{
  strbuf_reset (sb);
  layer_index_path (idx, id, sb);
  return sb->buf;
}

static void
test_basic (void **state)
{
  (void) state;
  autoindexbuilder layer_index_builder *b = layer_index_builder_new ();
  add (b, "./", meta (LAYER_INDEX_DIR, 0755, 0, 0));
  add (b, "usr/", meta (LAYER_INDEX_DIR, 0755, 0, 0));
  layer_index_meta su = meta (LAYER_INDEX_REG, 04755, 0, 0);
  su.size = 4242;
  static const char cap[] = "\x01\x00\x00\x02\x00\x20\x00\x00";
  layer_index_xattr xs[] = { { "user.test", "v", 1 }, { "security.capability", cap, 8 } };
  su.xattrs = xs;
  su.n_xattrs = 2;
  add (b, "usr/bin/ping", su);
  layer_index_meta ln = meta (LAYER_INDEX_SYMLINK, 0777, 0, 0);
  ln.link_target = "../usr/bin";
  add (b, "/bin", ln);
  layer_index_meta dev = meta (LAYER_INDEX_CHR, 0666, 0, 0);
  dev.rdev_major = 1;
  dev.rdev_minor = 3;
  add (b, "dev/null", dev);
  add (b, "tmp", meta (LAYER_INDEX_DIR, 01777, 0, 0));
  add (b, "run/fifo", meta (LAYER_INDEX_FIFO, 0600, 1000, 1000));
  add (b, "run/sock", meta (LAYER_INDEX_SOCK, 0600, 1000, 1000));
  add (b, "etc/gone", meta (LAYER_INDEX_WHITEOUT, 0, 0, 0));
  add (b, "home/u", meta (LAYER_INDEX_DIR, 02750, 1000, 100));
  { autoerror kiln_error *e2 = NULL; assert_ok (layer_index_builder_set_opaque (b, "home/u", &e2), e2); }
  layer_index_meta f = meta (LAYER_INDEX_REG, 0644, 5, 6);
  f.size = 3;
  add (b, "usr/share/a", f);
  autoerror kiln_error *err = NULL;
  assert_ok (layer_index_builder_add_hardlink (b, "usr/share/b", "usr/share/a", NULL, &err), err);
  assert_ok (layer_index_builder_add_hardlink (b, "usr/share/c", "/usr/share/./a", NULL, &err), err);

  autoindex layer_index *idx = roundtrip (b);
  autostrbuf strbuf sb = STRBUF_INIT;
  assert_int_equal (layer_index_count (idx), layer_index_builder_count (b));

  uint32_t id = layer_index_lookup (idx, "/usr/bin/ping");
  assert_int_not_equal (id, LAYER_INDEX_NONE);
  const layer_index_disk_entry *e = layer_index_entry (idx, id);
  assert_int_equal (e->type, LAYER_INDEX_REG);
  assert_int_equal (layer_index_st_mode (e), S_IFREG | 04755);
  assert_int_equal (e->size, 4242);
  assert_int_equal (e->mtime_sec, 1700000000);
  assert_int_equal (e->mtime_nsec, 123456789);
  assert_string_equal (path_of (idx, id, &sb), "usr/bin/ping");
  const void *v;
  size_t vl;
  assert_true (layer_index_xattr_find (idx, id, "security.capability", &v, &vl));
  assert_int_equal (vl, 8);
  assert_memory_equal (v, cap, 8);
  assert_false (layer_index_xattr_find (idx, id, "user.nope", &v, &vl));
  /* xattrs are stored sorted by name */
  const char *xn;
  size_t xnl;
  layer_index_get_xattr (idx, id, 0, &xn, &xnl, &v, &vl);
  assert_int_equal (xnl, strlen ("security.capability"));

  id = layer_index_lookup (idx, "bin");
  size_t ll;
  const char *lt = layer_index_link (idx, id, &ll);
  assert_int_equal (ll, strlen ("../usr/bin"));
  assert_memory_equal (lt, "../usr/bin", ll);
  assert_int_equal (layer_index_entry (idx, id)->size, ll);
  /* lookups never go through a symlink */
  assert_int_equal (layer_index_lookup (idx, "bin/ping"), LAYER_INDEX_NONE);

  e = layer_index_entry (idx, layer_index_lookup (idx, "dev/null"));
  assert_int_equal (layer_index_st_mode (e), S_IFCHR | 0666);
  assert_int_equal (e->rdev_major, 1);
  assert_int_equal (e->rdev_minor, 3);
  e = layer_index_entry (idx, layer_index_lookup (idx, "dev"));
  assert_true (e->flags & LAYER_INDEX_F_IMPLICIT);
  assert_int_equal (layer_index_st_mode (layer_index_entry (idx, layer_index_lookup (idx, "tmp"))),
                    S_IFDIR | 01777);
  assert_int_equal (layer_index_entry (idx, layer_index_lookup (idx, "run/fifo"))->type, LAYER_INDEX_FIFO);
  assert_int_equal (layer_index_entry (idx, layer_index_lookup (idx, "run/sock"))->type, LAYER_INDEX_SOCK);
  assert_int_equal (layer_index_entry (idx, layer_index_lookup (idx, "etc/gone"))->type,
                    LAYER_INDEX_WHITEOUT);
  e = layer_index_entry (idx, layer_index_lookup (idx, "home/u"));
  assert_true (e->flags & LAYER_INDEX_F_OPAQUE);
  assert_false (e->flags & LAYER_INDEX_F_IMPLICIT);
  assert_int_equal (e->mode, 02750);
  assert_int_equal (e->uid, 1000);
  assert_int_equal (e->gid, 100);
  assert_false (layer_index_entry (idx, 0)->flags & LAYER_INDEX_F_IMPLICIT);

  /* hardlinks */
  assert_int_equal (layer_index_hardlink_groups (idx), 1);
  const char *names[] = { "usr/share/a", "usr/share/b", "usr/share/c" };
  for (int i = 0; i < 3; i++)
    {
      e = layer_index_entry (idx, layer_index_lookup (idx, names[i]));
      assert_int_equal (e->hardlink_group, 1);
      assert_int_equal (e->nlink, 3);
      assert_int_equal (e->uid, 5);
      assert_int_equal (e->size, 3);
    }

  /* children of the root, sorted, contiguous */
  e = layer_index_entry (idx, 0);
  const char *want[] = { "bin", "dev", "etc", "home", "run", "tmp", "usr" };
  assert_int_equal (e->n_children, 7);
  for (uint32_t i = 0; i < e->n_children; i++)
    {
      size_t nl;
      const char *n = layer_index_name (idx, e->first_child + i, &nl);
      assert_int_equal (nl, strlen (want[i]));
      assert_memory_equal (n, want[i], nl);
      assert_int_equal (layer_index_lookup_child (idx, 0, want[i], strlen (want[i])), e->first_child + i);
    }
  assert_int_equal (layer_index_lookup_child (idx, 0, "zzz", 3), LAYER_INDEX_NONE);
  assert_int_equal (layer_index_lookup_child (idx, 0, "bi", 2), LAYER_INDEX_NONE);
  assert_int_equal (layer_index_lookup (idx, ""), LAYER_INDEX_ROOT);
  assert_int_equal (layer_index_lookup (idx, "/"), LAYER_INDEX_ROOT);
  assert_int_equal (layer_index_lookup (idx, "usr/../etc"), LAYER_INDEX_NONE);
  assert_string_equal (path_of (idx, 0, &sb), "");
  /* every entry's path looks up to itself */
  for (uint32_t i = 0; i < layer_index_count (idx); i++)
    assert_int_equal (layer_index_lookup (idx, path_of (idx, i, &sb)), i);
}

static void
test_replace_rules (void **state)
{
  (void) state;
  autoindexbuilder layer_index_builder *b = layer_index_builder_new ();
  autoerror kiln_error *err = NULL;
  int rep = -1;
  add (b, "d/x", meta (LAYER_INDEX_REG, 0644, 0, 0));
  /* a directory over a directory keeps children */
  layer_index_meta d = meta (LAYER_INDEX_DIR, 0700, 7, 7);
  assert_ok (layer_index_builder_add (b, "d", &d, &rep, &err), err);
  assert_int_equal (rep, LAYER_INDEX_DIR);
  assert_int_equal (layer_index_builder_type (b, "d/x"), LAYER_INDEX_REG);
  /* a file over a directory drops the subtree */
  layer_index_meta f = meta (LAYER_INDEX_REG, 0644, 0, 0);
  assert_ok (layer_index_builder_add (b, "d", &f, &rep, &err), err);
  assert_int_equal (rep, LAYER_INDEX_DIR);
  assert_int_equal (layer_index_builder_type (b, "d/x"), 0);
  /* nothing can be placed below a non-directory (a symlink in particular) */
  layer_index_meta ln = meta (LAYER_INDEX_SYMLINK, 0777, 0, 0);
  ln.link_target = "/";
  add (b, "escape", ln);
  assert_true (layer_index_builder_add (b, "escape/etc/passwd", &f, NULL, &err) < 0);
  assert_int_equal (err->status, ENOTDIR);
  kiln_error_clear (&err);
  /* whiteout then directory: opaque directory */
  add (b, "w", meta (LAYER_INDEX_WHITEOUT, 0, 0, 0));
  assert_ok (layer_index_builder_add (b, "w", &d, &rep, &err), err);
  assert_int_equal (rep, LAYER_INDEX_WHITEOUT);
  /* directory then whiteout: opaque too */
  add (b, "v", meta (LAYER_INDEX_DIR, 0755, 0, 0));
  add (b, "v", meta (LAYER_INDEX_WHITEOUT, 0, 0, 0));
  /* file then whiteout: the file stays */
  add (b, "u", f);
  add (b, "u", meta (LAYER_INDEX_WHITEOUT, 0, 0, 0));
  /* a file below a whiteout: the directory is recreated opaque */
  add (b, "t", meta (LAYER_INDEX_WHITEOUT, 0, 0, 0));
  add (b, "t/new", f);
  /* bad paths and metadata */
  assert_true (layer_index_builder_add (b, "a/../../etc/passwd", &f, NULL, &err) < 0);
  assert_true (test_err_contains (err, "'..'"));
  kiln_error_clear (&err);
  assert_true (layer_index_builder_add (b, "/", &f, NULL, &err) < 0);
  kiln_error_clear (&err);
  char longname[300];
  memset (longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  assert_true (layer_index_builder_add (b, longname, &f, NULL, &err) < 0);
  assert_int_equal (err->status, ENAMETOOLONG);
  kiln_error_clear (&err);
  layer_index_meta empty_link = meta (LAYER_INDEX_SYMLINK, 0777, 0, 0);
  assert_true (layer_index_builder_add (b, "l", &empty_link, NULL, &err) < 0);
  kiln_error_clear (&err);
  /* hardlinks: to outside, to a directory */
  assert_true (layer_index_builder_add_hardlink (b, "h", "/etc/passwd", NULL, &err) < 0);
  assert_int_equal (err->status, ENOENT);
  kiln_error_clear (&err);
  assert_true (layer_index_builder_add_hardlink (b, "h", "w", NULL, &err) < 0);
  kiln_error_clear (&err);
  assert_true (layer_index_builder_add_hardlink (b, "w", "u", NULL, &err) < 0);
  kiln_error_clear (&err);

  autoindex layer_index *idx = roundtrip (b);
  const layer_index_disk_entry *e = layer_index_entry (idx, layer_index_lookup (idx, "w"));
  assert_int_equal (e->type, LAYER_INDEX_DIR);
  assert_true (e->flags & LAYER_INDEX_F_OPAQUE);
  assert_int_equal (e->uid, 7);
  e = layer_index_entry (idx, layer_index_lookup (idx, "v"));
  assert_true (e->flags & LAYER_INDEX_F_OPAQUE);
  assert_int_equal (layer_index_entry (idx, layer_index_lookup (idx, "u"))->type, LAYER_INDEX_REG);
  e = layer_index_entry (idx, layer_index_lookup (idx, "t"));
  assert_int_equal (e->type, LAYER_INDEX_DIR);
  assert_true (e->flags & LAYER_INDEX_F_OPAQUE);
  assert_int_equal (layer_index_lookup (idx, "d/x"), LAYER_INDEX_NONE);
}

/* A file with n entries spread over directories of ~100 files, written to
 * disk; returns the temp dir path. */
static char *
write_big (int n, int *dirfd)
{
  char *dir = test_mkdtemp (dirfd);
  autoindexbuilder layer_index_builder *b = layer_index_builder_new ();
  char path[128];
  layer_index_meta f = meta (LAYER_INDEX_REG, 0644, 0, 0);
  f.size = 100;
  layer_index_xattr x = { "user.k", "value", 5 };
  for (int i = 0; (int) layer_index_builder_count (b) < n; i++)
    {
      snprintf (path, sizeof path, "usr/share/pkg%04d/sub%02d/file-%06d.txt", i / 1000, (i / 100) % 10, i);
      f.n_xattrs = (i % 50 == 0);
      f.xattrs = &x;
      add (b, path, f);
    }
  autoerror kiln_error *err = NULL;
  assert_ok (layer_index_builder_write_at (b, *dirfd, "index", &err), err);
  return dir;
}

static double
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
test_load_200k (void **state)
{
  (void) state;
  int dirfd;
  autofree char *dir = write_big (200000, &dirfd);
  autoerror kiln_error *err = NULL;
  /* Best of three: the first open may pay for page cache misses of a file
   * just written; the overlay loads warm, just-extracted indexes too. */
  double best = 1e9;
  for (int round = 0; round < 3; round++)
    {
      double t0 = now_ms ();
      layer_index *idx = NULL;
      assert_ok (layer_index_open_at (dirfd, "index", &idx, &err), err);
      double t = now_ms () - t0;
      if (t < best)
        best = t;
      assert_int_equal (layer_index_count (idx), 200000);
      layer_index_close (idx);
    }
  print_message ("# 200k-entry index: open+validate %.1f ms\n", best);
#if defined(__SANITIZE_ADDRESS__)
  const double limit = 1000; /* sanitizers slow validation ~5-10x */
#else
  const double limit = 100;
#endif
  if (best > limit)
    fail_msg ("opening a 200k-entry index took %.1f ms (limit %.0f ms)", best, limit);

  autoindex layer_index *idx = NULL;
  assert_ok (layer_index_open_at (dirfd, "index", &idx, &err), err);
  /* lookups of a sample */
  double t0 = now_ms ();
  char path[128];
  for (int i = 0; i < 190000; i += 7)
    {
      snprintf (path, sizeof path, "usr/share/pkg%04d/sub%02d/file-%06d.txt", i / 1000, (i / 100) % 10, i);
      uint32_t id = layer_index_lookup (idx, path);
      if (id == LAYER_INDEX_NONE)
        fail_msg ("'%s' not found", path);
    }
  print_message ("# 28k path lookups: %.1f ms\n", now_ms () - t0);
  close (dirfd);
  test_rmtree (dir);
}

/* ---- corrupted files --------------------------------------------------- */

static void
small_file (void **data, size_t *len)
{
  autoindexbuilder layer_index_builder *b = layer_index_builder_new ();
  layer_index_meta ln = meta (LAYER_INDEX_SYMLINK, 0777, 0, 0);
  ln.link_target = "target";
  add (b, "a/l", ln);
  layer_index_meta f = meta (LAYER_INDEX_REG, 0644, 0, 0);
  layer_index_xattr x[] = { { "user.a", "1", 1 }, { "user.b", "22", 2 } };
  f.xattrs = x;
  f.n_xattrs = 2;
  add (b, "a/f", f);
  add (b, "b", meta (LAYER_INDEX_DIR, 0755, 0, 0));
  add (b, "c/w", meta (LAYER_INDEX_WHITEOUT, 0, 0, 0));
  autoerror kiln_error *err = NULL;
  assert_ok (layer_index_builder_add_hardlink (b, "a/g", "a/f", NULL, &err), err);
  assert_ok (layer_index_builder_serialize (b, data, len, &err), err);
}

/* Use every accessor on an index that passed validation (ASan checks that
 * nothing reads outside the buffer). */
static void
exercise (layer_index *idx)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  for (uint32_t i = 0; i < layer_index_count (idx); i++)
    {
      const layer_index_disk_entry *e = layer_index_entry (idx, i);
      size_t nl;
      const char *n = layer_index_name (idx, i, &nl);
      if (i)
        assert_int_equal (layer_index_lookup_child (idx, e->parent, n, nl), i);
      strbuf_reset (&sb);
      layer_index_path (idx, i, &sb);
      assert_int_equal (layer_index_lookup (idx, sb.buf), i);
      layer_index_link (idx, i, &nl);
      for (uint32_t x = 0; x < e->xattr_count; x++)
        {
          const char *xn;
          size_t xnl, vl;
          const void *v;
          layer_index_get_xattr (idx, i, x, &xn, &xnl, &v, &vl);
        }
      layer_index_xattr_find (idx, i, "user.a", &(const void *) { NULL }, &nl);
    }
}

static void
expect_reject (const void *data, size_t len, const char *needle)
{
  autoerror kiln_error *err = NULL;
  layer_index *idx = NULL;
  if (layer_index_open_mem (data, len, &idx, &err) == 0)
    {
      layer_index_close (idx);
      fail_msg ("corrupt index accepted (expected '%s')", needle);
    }
  if (needle && !test_err_contains (err, needle))
    fail_msg ("error '%s' lacks '%s'", err->msg, needle);
}

static void
test_corrupt_targeted (void **state)
{
  (void) state;
  autofree void *data = NULL;
  size_t len;
  small_file (&data, &len);
  autofree char *c = xmalloc (len);
  layer_index_disk_header *h = (layer_index_disk_header *) c;
  layer_index_disk_entry *e = (layer_index_disk_entry *) (c + sizeof *h);

#define RESET() memcpy (c, data, len)
  RESET ();
  expect_reject (c, 0, "shorter");
  expect_reject (c, len - 1, "size");
  c[0] = 'X';
  expect_reject (c, len, "magic");
  RESET ();
  h->version = 2;
  expect_reject (c, len, "version 2");
  RESET ();
  h->entry_count = 1000;
  expect_reject (c, len, "tile");
  RESET ();
  h->strings_size += 1;
  expect_reject (c, len, "tile");
  RESET ();
  e[1].name_off = 0xfffffff0u;
  expect_reject (c, len, "name out of bounds");
  RESET ();
  e[1].parent = 1;
  expect_reject (c, len, "parent");
  RESET ();
  e[2].parent = 2;
  expect_reject (c, len, "parent");
  RESET ();
  e[0].n_children += 1;
  expect_reject (c, len, "child");
  RESET ();
  e[0].first_child = 2;
  expect_reject (c, len, "child run");
  RESET ();
  e[1].type = 99;
  expect_reject (c, len, "type");
  RESET ();
  e[1].mode = 0170755;
  expect_reject (c, len, "mode");
  RESET ();
  /* swap two siblings' names: order broken */
  uint32_t t = e[1].name_off;
  e[1].name_off = e[2].name_off;
  e[2].name_off = t;
  expect_reject (c, len, "sorted");
  RESET ();
  /* make a name contain '/' or be ".." */
  c[h->strings_off + e[1].name_off] = '/';
  expect_reject (c, len, "invalid name");
  /* bad link target, bad xattr lengths, bad hardlink counts */
  for (uint32_t i = 0; i < h->entry_count; i++)
    {
      RESET ();
      if (e[i].type == LAYER_INDEX_SYMLINK)
        {
          e[i].link_len = 100000;
          expect_reject (c, len, "symlink");
        }
      RESET ();
      if (e[i].xattr_count)
        {
          e[i].xattr_count = 3;
          expect_reject (c, len, "xattr");
          RESET ();
          uint16_t big = 0xffff;
          memcpy (c + h->xattrs_off + e[i].xattr_off, &big, 2);
          expect_reject (c, len, "xattr");
        }
      RESET ();
      if (e[i].hardlink_group)
        {
          e[i].nlink = 5;
          expect_reject (c, len, "link count");
          RESET ();
          e[i].hardlink_group = 0;
          expect_reject (c, len, NULL);
        }
    }
  RESET ();
  layer_index *idx = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (layer_index_open_mem (c, len, &idx, &err), err);
  exercise (idx);
  layer_index_close (idx);
#undef RESET
}

/* Every single-byte change and every truncation either is rejected or gives
 * an index whose accessors stay in bounds. */
static void
test_corrupt_exhaustive (void **state)
{
  (void) state;
  autofree void *data = NULL;
  size_t len;
  small_file (&data, &len);
  autofree unsigned char *c = xmalloc (len);
  static const unsigned char vals[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
  size_t accepted = 0;
  for (size_t i = 0; i < len; i++)
    for (size_t v = 0; v < sizeof vals; v++)
      {
        memcpy (c, data, len);
        if (c[i] == vals[v])
          continue;
        c[i] = vals[v];
        layer_index *idx = NULL;
        autoerror kiln_error *err = NULL;
        if (layer_index_open_mem (c, len, &idx, &err) == 0)
          {
            accepted++;
            exercise (idx);
            layer_index_close (idx);
          }
      }
  for (size_t l = 0; l < len; l++)
    expect_reject (data, l, NULL);
  print_message ("# %zu of %zu single-byte mutations still valid (mtime, uid, ...)\n", accepted,
                 len * sizeof vals);
}

static void
test_file_io (void **state)
{
  (void) state;
  int dirfd;
  autofree char *dir = test_mkdtemp (&dirfd);
  autoerror kiln_error *err = NULL;
  layer_index *idx = NULL;
  /* missing, symlink, directory, empty file */
  assert_true (layer_index_open_at (dirfd, "index", &idx, &err) < 0);
  assert_int_equal (err->status, ENOENT);
  kiln_error_clear (&err);
  assert_int_equal (symlinkat ("/etc/passwd", dirfd, "link"), 0);
  assert_true (layer_index_open_at (dirfd, "link", &idx, &err) < 0);
  assert_int_equal (err->status, ELOOP);
  kiln_error_clear (&err);
  assert_int_equal (mkdirat (dirfd, "d", 0700), 0);
  assert_true (layer_index_open_at (dirfd, "d", &idx, &err) < 0);
  kiln_error_clear (&err);
  test_write_file (dirfd, "empty", "");
  assert_true (layer_index_open_at (dirfd, "empty", &idx, &err) < 0);
  kiln_error_clear (&err);
  /* an empty layer (root only) round-trips through a file */
  autoindexbuilder layer_index_builder *b = layer_index_builder_new ();
  assert_ok (layer_index_builder_write_at (b, dirfd, "index", &err), err);
  assert_ok (layer_index_open_at (dirfd, "index", &idx, &err), err);
  assert_int_equal (layer_index_count (idx), 1);
  assert_true (layer_index_entry (idx, 0)->flags & LAYER_INDEX_F_IMPLICIT);
  layer_index_close (idx);
  close (dirfd);
  test_rmtree (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_basic),
    cmocka_unit_test (test_replace_rules),
    cmocka_unit_test (test_corrupt_targeted),
    cmocka_unit_test (test_corrupt_exhaustive),
    cmocka_unit_test (test_file_io),
    cmocka_unit_test (test_load_200k),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
