/* test_extract.c - streaming extraction: formats and compressions, digests,
 * the hostile tar corpus (tests/store/mktars.py), sparse files, a bounded
 * tar bomb, store publication once, concurrency and kill -9. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "store/extract.h"
#include "store/layer_index.h"
#include "store/layer_writer.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

static char *g_dir;   /* temp dir for everything */
static int g_dirfd = -1;
static char *g_corpus; /* g_dir/c */

static int
setup (void **state)
{
  (void) state;
  g_dir = test_mkdtemp (&g_dirfd);
  g_corpus = xasprintf ("%s/c", g_dir);
  autofree char *cmd = xasprintf (
    "set -e; mkdir -p '%s'; python3 tests/store/mktars.py '%s';"
    "cd '%s'; mkdir sp; printf head > sp/sparse; truncate -s 20M sp/sparse; printf tail >> sp/sparse;"
    "tar -S --format=gnu -cf sparse-gnu.tar -C sp sparse; tar -S --format=pax -cf sparse-pax.tar -C sp sparse;"
    "if command -v zstd >/dev/null; then zstd -q -T2 -o normal.tar.zst normal.tar; fi;"
    /* gzip members: one with FNAME and MTIME set, an empty one, and many
     * small ones (boundaries at every offset of the read buffer) */
    "{ head -c 5000 normal.tar | gzip -n; printf '' | gzip -n; tail -c +5001 normal.tar > rest.bin;"
    "  gzip -c rest.bin; } > normal-multi.tar.gz; rm rest.bin;"
    "mkdir parts; split -b 777 normal.tar parts/p; for f in parts/p*; do gzip -n -c $f; done > normal-many.tar.gz;"
    "rm -r parts; python3 -c 'import sys\n"
    "d = open(\"normal.tar.gz\", \"rb\").read()\n"
    "for name, off in ((\"crc\", -8), (\"isize\", -4), (\"data\", 200)):\n"
    "  b = bytearray(d); b[off] ^= 0x10; open(\"normal-bad%%s.tar.gz\" %% name, \"wb\").write(b)\n"
    "open(\"normal-junk.tar.gz\", \"wb\").write(d + b\"this is not a gzip member\")';",
    g_corpus, g_corpus, g_corpus);
  if (system (cmd) != 0)
    fail_msg ("generating the tar corpus failed (python3, tar needed)");
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  close (g_dirfd);
  test_rmtree (g_dir);
  free (g_dir);
  free (g_corpus);
  return 0;
}

/* Extract corpus file name into a fresh directory; returns its fd (or -1 on
 * failure with *err set). */
static int
extract_file (const char *name, extract_result *res, kiln_error **err, char **dir_out)
{
  autofree char *path = xasprintf ("%s/%s", g_corpus, name);
  int in = open (path, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    fail_msg ("open '%s'", path);
  char *ldir = NULL;
  int lfd = -1;
  autoerror kiln_error *e2 = NULL;
  if (fs_mkdtemp_at (g_dirfd, "layer-", &ldir, &lfd, &e2) < 0)
    fail_msg ("mkdtemp: %s", e2->msg);
  int r = extract_layer (lfd, extract_read_fd, &in, NULL, res, err);
  close (in);
  *dir_out = ldir;
  if (r < 0)
    {
      close (lfd);
      return -1;
    }
  return lfd;
}

static void
file_digest (const char *name, char out[DIGEST_STRING_SIZE])
{
  autofree char *path = xasprintf ("%s/%s", g_corpus, name);
  autoclose int fd = open (path, O_RDONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  autoerror kiln_error *err = NULL;
  assert_ok (digest_fd (fd, out, NULL, &err), err);
}

static void
check_normal (const char *name)
{
  extract_result res;
  autoerror kiln_error *err = NULL;
  autofree char *ldir = NULL;
  autoclose int lfd = extract_file (name, &res, &err, &ldir);
  assert_ok (lfd, err);
  char want[DIGEST_STRING_SIZE];
  file_digest ("normal.tar", want);
  assert_string_equal (res.diff_id, want);
  file_digest (name, want);
  assert_string_equal (res.blob_digest, want);

  autoindex layer_index *idx = NULL;
  assert_ok (layer_index_open_at (lfd, "index", &idx, &err), err);
  autoclose int tfd = openat (lfd, "tree", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (tfd >= 0);

  uint32_t id = layer_index_lookup (idx, "usr/bin/ping");
  assert_int_not_equal (id, LAYER_INDEX_NONE);
  const layer_index_disk_entry *e = layer_index_entry (idx, id);
  assert_int_equal (layer_index_st_mode (e), S_IFREG | 04755);
  assert_int_equal (e->nlink, 2);
  const void *v;
  size_t vl;
  assert_true (layer_index_xattr_find (idx, id, "security.capability", &v, &vl));
  assert_int_equal (vl, 20);
  assert_true (layer_index_xattr_find (idx, id, "user.note", &v, &vl));
  assert_memory_equal (v, "hello", 5);
  struct stat a, b;
  assert_int_equal (fstatat (tfd, "usr/bin/ping", &a, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (fstatat (tfd, "usr/bin/ping4", &b, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (a.st_ino, b.st_ino);
  assert_int_equal (a.st_mode, S_IFREG | 0600);
  assert_int_equal (a.st_uid, getuid ());

  id = layer_index_lookup (idx, "usr/bin/ping6");
  size_t ll;
  const char *lt = layer_index_link (idx, id, &ll);
  assert_int_equal (ll, 4);
  assert_memory_equal (lt, "ping", 4);
  assert_true (fstatat (tfd, "usr/bin/ping6", &a, AT_SYMLINK_NOFOLLOW) < 0);

  e = layer_index_entry (idx, layer_index_lookup (idx, "dev/null"));
  assert_int_equal (layer_index_st_mode (e), S_IFCHR | 0666);
  assert_int_equal (e->rdev_major, 1);
  assert_int_equal (e->rdev_minor, 3);
  assert_true (fstatat (tfd, "dev/null", &a, AT_SYMLINK_NOFOLLOW) < 0);
  e = layer_index_entry (idx, layer_index_lookup (idx, "dev/sda"));
  assert_int_equal (layer_index_st_mode (e), S_IFBLK | 0660);
  assert_int_equal (layer_index_entry (idx, layer_index_lookup (idx, "run/fifo"))->type, LAYER_INDEX_FIFO);
  assert_true (fstatat (tfd, "run/fifo", &a, AT_SYMLINK_NOFOLLOW) < 0);
  assert_int_equal (layer_index_entry (idx, layer_index_lookup (idx, "var/lib/gone"))->type,
                    LAYER_INDEX_WHITEOUT);
  assert_int_equal (layer_index_lookup (idx, "var/lib/.wh.gone"), LAYER_INDEX_NONE);
  assert_true (layer_index_entry (idx, layer_index_lookup (idx, "opt/app"))->flags & LAYER_INDEX_F_OPAQUE);
  assert_int_not_equal (layer_index_lookup (idx, "opt/app/new"), LAYER_INDEX_NONE);
  e = layer_index_entry (idx, layer_index_lookup (idx, "tmp"));
  assert_int_equal (e->mode, 01777);
  e = layer_index_entry (idx, layer_index_lookup (idx, "home/u"));
  assert_int_equal (e->mode, 02750);
  assert_int_equal (e->uid, 1000);
  e = layer_index_entry (idx, layer_index_lookup (idx, "home/u/.profile"));
  assert_int_equal (e->size, 100000);
  assert_int_equal (fstatat (tfd, "home/u/.profile", &a, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (a.st_size, 100000);
  assert_int_equal (e->mtime_sec, 1700000000);
  /* the 1300-byte path */
  bool found_long = false;
  for (uint32_t i = 0; i < layer_index_count (idx); i++)
    {
      size_t nl;
      const char *n = layer_index_name (idx, i, &nl);
      if (nl == 4 && memcmp (n, "file", 4) == 0)
        found_long = true;
    }
  assert_true (found_long);
  close (lfd);
  lfd = -1;
  autofree char *p = xasprintf ("%s/%s", g_dir, ldir);
  test_rmtree (p);
}

static void
test_normal_formats (void **state)
{
  (void) state;
  check_normal ("normal.tar");
  check_normal ("normal.tar.gz");
  autofree char *zst = xasprintf ("%s/normal.tar.zst", g_corpus);
  if (access (zst, R_OK) == 0)
    check_normal ("normal.tar.zst");
  else
    print_message ("# zstd CLI missing: zstd layer not tested here\n");
}

/* gzip streams other than one member: concatenated members (with header
 * fields, empty ones, many small ones) are one layer; bad checksums, bad
 * lengths, corrupt data and trailing garbage are errors. */
static void
test_gzip_members (void **state)
{
  (void) state;
  check_normal ("normal-multi.tar.gz");
  check_normal ("normal-many.tar.gz");
  /* a flipped data bit may garble a tar header before the CRC is checked */
  static const char *bad[] = { "normal-badcrc.tar.gz", "normal-badisize.tar.gz", "normal-junk.tar.gz",
                               "normal-baddata.tar.gz" };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      extract_result res;
      autoerror kiln_error *err = NULL;
      autofree char *ldir = NULL;
      int lfd = extract_file (bad[i], &res, &err, &ldir);
      if (lfd >= 0)
        fail_msg ("%s: accepted", bad[i]);
      print_message ("# %s: %s\n", bad[i], err->msg);
      if (i < 3 && !test_err_contains (err, "gzip"))
        fail_msg ("%s: error '%s' does not name gzip", bad[i], err->msg);
      autofree char *p = xasprintf ("%s/%s", g_dir, ldir);
      test_rmtree (p);
    }
}

static void
test_gnu_format (void **state)
{
  (void) state;
  extract_result res;
  autoerror kiln_error *err = NULL;
  autofree char *ldir = NULL;
  autoclose int lfd = extract_file ("normal-gnu.tar.gz", &res, &err, &ldir);
  assert_ok (lfd, err);
  assert_int_equal (res.compression, EXTRACT_COMPRESSION_GZIP);
  autoindex layer_index *idx = NULL;
  assert_ok (layer_index_open_at (lfd, "index", &idx, &err), err);
  assert_int_equal (layer_index_entry (idx, layer_index_lookup (idx, "usr/bin/ping6"))->type,
                    LAYER_INDEX_SYMLINK);
  char want[DIGEST_STRING_SIZE];
  file_digest ("normal-gnu.tar", want);
  assert_string_equal (res.diff_id, want);
}

static void
test_sparse (void **state)
{
  (void) state;
  const char *names[] = { "sparse-gnu.tar", "sparse-pax.tar" };
  for (int i = 0; i < 2; i++)
    {
      extract_result res;
      autoerror kiln_error *err = NULL;
      autofree char *ldir = NULL;
      autoclose int lfd = extract_file (names[i], &res, &err, &ldir);
      assert_ok (lfd, err);
      autoclose int tfd = openat (lfd, "tree", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      autofree char *buf = NULL;
      size_t len;
      assert_ok (fs_read_file_at (tfd, "sparse", 64 << 20, &buf, &len, &err), err);
      assert_int_equal (len, (20 << 20) + 4);
      assert_memory_equal (buf, "head", 4);
      assert_memory_equal (buf + (20 << 20), "tail", 4);
      for (size_t k = 4; k < (20 << 20); k += 4096)
        assert_int_equal (buf[k], 0);
      struct stat st;
      assert_int_equal (fstatat (tfd, "sparse", &st, 0), 0);
      /* the hole stays a hole */
      assert_true (st.st_blocks * 512 < (1 << 20));
      autoindex layer_index *idx = NULL;
      assert_ok (layer_index_open_at (lfd, "index", &idx, &err), err);
      assert_int_equal (layer_index_entry (idx, layer_index_lookup (idx, "sparse"))->size, (20 << 20) + 4);
    }
}

static bool
exists_outside (void)
{
  const char *paths[] = { "escaped", "abs-escaped", "escaped-rel", "c/escaped", "/tmp/escaped-through-link",
                          "/escaped-rel", "/abs-escaped" };
  for (size_t i = 0; i < ARRAY_SIZE (paths); i++)
    {
      struct stat st;
      int r = paths[i][0] == '/' ? lstat (paths[i], &st) : fstatat (g_dirfd, paths[i], &st, AT_SYMLINK_NOFOLLOW);
      if (r == 0)
        {
          print_message ("# found '%s'\n", paths[i]);
          return true;
        }
    }
  return false;
}

static void
test_hostile (void **state)
{
  (void) state;
  static const struct
  {
    const char *file;
    bool ok;
    const char *needle;
  } cases[] = {
    { "hostile-dotdot.tar", false, "'..'" },
    { "hostile-dotdot-deep.tar", false, "'..'" },
    { "hostile-absolute.tar", true, NULL },
    { "hostile-symlink-escape.tar", false, "not a directory" },
    { "hostile-symlink-relative.tar", false, "not a directory" },
    { "hostile-hardlink-passwd.tar", false, "not in this layer" },
    { "hostile-hardlink-dotdot.tar", false, "'..'" },
    { "hostile-devices.tar", true, NULL },
    { "hostile-huge-header.tar", false, "longer than 255" },
    { "hostile-longpath.tar", false, "longer than 4096" },
    { "hostile-truncated.tar", false, "runcated" },
    { "hostile-truncated.tar.gz", false, "truncated gzip" },
    { "hostile-garbage.tar", false, NULL },
    { "hostile-huge-pax.tar", false, "too large" },
    { "hostile-truncated-data.tar", false, "runcated" },
    { "hostile-truncated-data.tar.gz", false, "runcated" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++)
    {
      extract_result res;
      autoerror kiln_error *err = NULL;
      autofree char *ldir = NULL;
      int lfd = extract_file (cases[i].file, &res, &err, &ldir);
      if (cases[i].ok && lfd < 0)
        fail_msg ("%s: unexpected error: %s", cases[i].file, err->msg);
      if (!cases[i].ok)
        {
          if (lfd >= 0)
            fail_msg ("%s: accepted", cases[i].file);
          print_message ("# %s: %s\n", cases[i].file, err->msg);
          if (cases[i].needle && !test_err_contains (err, cases[i].needle))
            fail_msg ("%s: error '%s' lacks '%s'", cases[i].file, err->msg, cases[i].needle);
        }
      if (lfd >= 0)
        {
          autoindex layer_index *idx = NULL;
          assert_ok (layer_index_open_at (lfd, "index", &idx, &err), err);
          if (strcmp (cases[i].file, "hostile-absolute.tar") == 0)
            assert_int_not_equal (layer_index_lookup (idx, "abs-escaped"), LAYER_INDEX_NONE);
          if (strcmp (cases[i].file, "hostile-devices.tar") == 0)
            {
              const layer_index_disk_entry *e = layer_index_entry (idx, layer_index_lookup (idx, "dev/mem"));
              assert_int_equal (e->type, LAYER_INDEX_CHR);
              struct stat st;
              assert_true (fstatat (lfd, "tree/dev/mem", &st, AT_SYMLINK_NOFOLLOW) < 0);
              assert_true (fstatat (lfd, "tree/fifo", &st, AT_SYMLINK_NOFOLLOW) < 0);
            }
          close (lfd);
        }
      assert_false (exists_outside ());
      autofree char *p = xasprintf ("%s/%s", g_dir, ldir);
      test_rmtree (p);
    }
}

/* umoci 0.4.7 `insert` layers end right after the last member's data; they
 * are accepted (as Go's archive/tar does), with digests over exactly the
 * bytes there are. */
static void
test_unpadded_end (void **state)
{
  (void) state;
  const char *names[] = { "unpadded-end.tar", "unpadded-end.tar.gz", "unpadded-mid-pad.tar",
                          "unpadded-mid-pad.tar.gz" };
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      extract_result res;
      autoerror kiln_error *err = NULL;
      autofree char *ldir = NULL;
      autoclose int lfd = extract_file (names[i], &res, &err, &ldir);
      if (lfd < 0)
        fail_msg ("%s: %s", names[i], err->msg);
      autoindex layer_index *idx = NULL;
      assert_ok (layer_index_open_at (lfd, "index", &idx, &err), err);
      uint32_t app = layer_index_lookup (idx, "opt/app");
      assert_int_not_equal (app, LAYER_INDEX_NONE);
      assert_true (layer_index_entry (idx, app)->flags & LAYER_INDEX_F_OPAQUE);
      autofree char *data = NULL;
      size_t len;
      assert_ok (fs_read_file_at (lfd, "tree/opt/app/new", 100, &data, &len, &err), err);
      assert_int_equal (len, 4);
      assert_memory_equal (data, "new\n", 4);
      autofree char *plain = xstrdup (names[i]);
      char *gz = strstr (plain, ".gz");
      if (gz)
        *gz = '\0';
      char want[DIGEST_STRING_SIZE];
      file_digest (plain, want);
      assert_string_equal (res.diff_id, want);
    }
}

static void
test_bomb (void **state)
{
  (void) state;
  extract_result res;
  autoerror kiln_error *err = NULL;
  autofree char *ldir = NULL;
  autoclose int lfd = extract_file ("bomb.tar.gz", &res, &err, &ldir);
  assert_ok (lfd, err);
  assert_int_equal (res.entries, 20000 + 100 + 2);
  /* the member limit turns a bigger bomb into a clear error */
  autofree char *path = xasprintf ("%s/bomb.tar", g_corpus);
  autoclose int in = open (path, O_RDONLY | O_CLOEXEC);
  autofree char *d2 = NULL;
  autoclose int l2 = -1;
  assert_ok (fs_mkdtemp_at (g_dirfd, "layer-", &d2, &l2, &err), err);
  extract_opts o = { .max_entries = 1000 };
  assert_true (extract_layer (l2, extract_read_fd, &in, &o, &res, &err) < 0);
  assert_true (test_err_contains (err, "more than 1000 members (a tar bomb?)"));
  assert_true (test_err_contains (err, "KILN_MAX_LAYER_ENTRIES"));
  /* the limit is exact: 20,000 members (the directories are implicit) */
  kiln_error_clear (&err);
  assert_int_equal (lseek (in, 0, SEEK_SET), 0);
  autofree char *d3 = NULL;
  autoclose int l3 = -1;
  assert_ok (fs_mkdtemp_at (g_dirfd, "layer-", &d3, &l3, &err), err);
  o.max_entries = 20000;
  assert_ok (extract_layer (l3, extract_read_fd, &in, &o, &res, &err), err);
  assert_int_equal (lseek (in, 0, SEEK_SET), 0);
  autofree char *d4 = NULL;
  autoclose int l4 = -1;
  assert_ok (fs_mkdtemp_at (g_dirfd, "layer-", &d4, &l4, &err), err);
  o.max_entries = 19999;
  assert_true (extract_layer (l4, extract_read_fd, &in, &o, &res, &err) < 0);
  assert_true (test_err_contains (err, "more than 19999 members"));
}

/* The metadata budget bounds what xattrs can make the index builder hold. */
static void
test_xattr_bomb (void **state)
{
  (void) state;
  extract_result res;
  autoerror kiln_error *err = NULL;
  autofree char *ldir = NULL;
  autoclose int lfd = extract_file ("xattr-bomb.tar.gz", &res, &err, &ldir);
  assert_ok (lfd, err);
  autoindex layer_index *idx = NULL;
  assert_ok (layer_index_open_at (lfd, "index", &idx, &err), err);
  const void *v;
  size_t vlen;
  assert_true (layer_index_xattr_find (idx, layer_index_lookup (idx, "x/09"), "user.p7", &v, &vlen));
  assert_int_equal (vlen, 60000);
  autofree char *path = xasprintf ("%s/xattr-bomb.tar.gz", g_corpus);
  autoclose int in = open (path, O_RDONLY | O_CLOEXEC);
  autofree char *d2 = NULL;
  autoclose int l2 = -1;
  assert_ok (fs_mkdtemp_at (g_dirfd, "layer-", &d2, &l2, &err), err);
  extract_opts o = { .max_meta_bytes = 2 << 20 };
  assert_true (extract_layer (l2, extract_read_fd, &in, &o, &res, &err) < 0);
  assert_true (test_err_contains (err, "layer metadata (names, link targets, xattrs) exceeds 2 MiB"));
  assert_true (test_err_contains (err, "layer member 'x/04'"));
}

/* The data budget: a 20 MiB sparse file is a few blocks of tar, and is
 * refused by its header size before anything is written. */
static void
test_data_limit (void **state)
{
  (void) state;
  extract_result res;
  autoerror kiln_error *err = NULL;
  autofree char *path = xasprintf ("%s/sparse-pax.tar", g_corpus);
  autoclose int in = open (path, O_RDONLY | O_CLOEXEC);
  assert_true (in >= 0);
  autofree char *d1 = NULL;
  autoclose int l1 = -1;
  assert_ok (fs_mkdtemp_at (g_dirfd, "layer-", &d1, &l1, &err), err);
  extract_opts o = { .max_data_bytes = 10 << 20 };
  assert_true (extract_layer (l1, extract_read_fd, &in, &o, &res, &err) < 0);
  assert_true (test_err_contains (err, "more than 10485760 bytes of file data (at 'sparse')"));
  struct stat sb;
  assert_true (fstatat (l1, "tree/sparse", &sb, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT);
  kiln_error_clear (&err);
  assert_int_equal (lseek (in, 0, SEEK_SET), 0);
  autofree char *d2 = NULL;
  autoclose int l2 = -1;
  assert_ok (fs_mkdtemp_at (g_dirfd, "layer-", &d2, &l2, &err), err);
  o.max_data_bytes = 30 << 20;
  assert_ok (extract_layer (l2, extract_read_fd, &in, &o, &res, &err), err);
}

/* ---- store ------------------------------------------------------------- */

typedef struct slow_src
{
  int fd;
  int delay_us;
} slow_src;

static ssize_t
slow_read (void *ctx, void *buf, size_t len, kiln_error **err)
{
  slow_src *s = ctx;
  if (s->delay_us)
    usleep (s->delay_us);
  if (len > 65536)
    len = 65536;
  return extract_read_fd (&s->fd, buf, len, err);
}

static int
store_extract_file (const char *root, const char *name, const char *blob, int delay_us, extract_result *res,
                    kiln_error **err)
{
  autostore store *s = NULL;
  if (store_open (root, 0, &s, err) < 0)
    return -1;
  autofree char *path = xasprintf ("%s/%s", g_corpus, name);
  slow_src src = { open (path, O_RDONLY | O_CLOEXEC), delay_us };
  int r = extract_to_store (s, blob, NULL, slow_read, &src, NULL, res, err);
  close (src.fd);
  return r;
}

static void
test_store_once (void **state)
{
  (void) state;
  autofree char *root = xasprintf ("%s/store1", g_dir);
  char blob[DIGEST_STRING_SIZE], diff[DIGEST_STRING_SIZE];
  file_digest ("normal.tar.gz", blob);
  file_digest ("normal.tar", diff);
  extract_result res;
  autoerror kiln_error *err = NULL;
  assert_ok (store_extract_file (root, "normal.tar.gz", blob, 0, &res, &err), err);
  assert_false (res.existed);
  assert_string_equal (res.diff_id, diff);
  assert_ok (store_extract_file (root, "normal.tar.gz", blob, 0, &res, &err), err);
  assert_true (res.existed);
  assert_string_equal (res.diff_id, diff);
  /* a wrong expected digest is an error and publishes nothing */
  autostore store *s = NULL;
  assert_ok (store_open (root, 0, &s, &err), err);
  autofree char *path = xasprintf ("%s/bomb.tar", g_corpus);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  const char *bogus = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
  assert_true (extract_to_store (s, bogus, NULL, extract_read_fd, &fd, NULL, &res, &err) < 0);
  close (fd);
  assert_true (test_err_contains (err, "digest mismatch"));
  kiln_error_clear (&err);
  char bdiff[DIGEST_STRING_SIZE];
  file_digest ("bomb.tar", bdiff);
  assert_false (store_has_layer (s, bdiff));
  /* the published layer opens */
  int tfd = -1;
  layer_index *idx = NULL;
  assert_ok (store_open_layer (s, diff, &tfd, &idx, &err), err);
  assert_int_not_equal (layer_index_lookup (idx, "usr/bin/ping"), LAYER_INDEX_NONE);
  layer_index_close (idx);
  close (tfd);
  /* the blob's diffID record is written without fsync: one a crash
   * emptied reads as absent, and extracting the blob again (its layer is
   * already there) records it anew */
  char found[DIGEST_STRING_SIZE];
  assert_int_equal (store_layer_for_blob (s, blob, found, &err), 1);
  assert_string_equal (found, diff);
  autofree char *rec = xasprintf ("%s/diffids/sha256/%s", root, blob + 7);
  assert_int_equal (truncate (rec, 0), 0);
  assert_int_equal (store_layer_for_blob (s, blob, found, &err), 0);
  assert_null (err);
  assert_ok (store_extract_file (root, "normal.tar.gz", blob, 0, &res, &err), err);
  assert_string_equal (res.diff_id, diff);
  assert_int_equal (store_layer_for_blob (s, blob, found, &err), 1);
  assert_string_equal (found, diff);
  /* tmp/ is empty */
  autoclose int t = openat (s->rootfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_int_equal (unlinkat (t, "nonexistent", AT_REMOVEDIR) < 0 ? errno : 0, ENOENT);
  int n = store_clean_tmp (s, &err);
  assert_int_equal (n, 0);
}

static void
test_store_concurrent (void **state)
{
  (void) state;
  autofree char *root = xasprintf ("%s/store2", g_dir);
  char blob[DIGEST_STRING_SIZE];
  file_digest ("normal.tar.gz", blob);
  pid_t pids[2];
  for (int i = 0; i < 2; i++)
    {
      pids[i] = fork ();
      assert_true (pids[i] >= 0);
      if (pids[i] == 0)
        {
          extract_result res;
          kiln_error *err = NULL;
          if (store_extract_file (root, "normal.tar.gz", blob, 2000, &res, &err) < 0)
            {
              fprintf (stderr, "child: %s\n", err->msg);
              _exit (1);
            }
          _exit (res.existed ? 10 : 0);
        }
    }
  int codes[2];
  for (int i = 0; i < 2; i++)
    {
      int st;
      assert_int_equal (waitpid (pids[i], &st, 0), pids[i]);
      assert_true (WIFEXITED (st));
      codes[i] = WEXITSTATUS (st);
    }
  /* both succeed; exactly one extracted */
  assert_int_equal (codes[0] + codes[1], 10);
}

static void
test_store_kill9 (void **state)
{
  (void) state;
  autofree char *root = xasprintf ("%s/store3", g_dir);
  char blob[DIGEST_STRING_SIZE], diff[DIGEST_STRING_SIZE];
  file_digest ("normal.tar", blob);
  file_digest ("normal.tar", diff);
  int p[2];
  assert_int_equal (pipe (p), 0);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      close (p[1]);
      extract_result res;
      kiln_error *err = NULL;
      autostore store *s = NULL;
      if (store_open (root, 0, &s, &err) < 0)
        _exit (1);
      extract_to_store (s, blob, NULL, extract_read_fd, &p[0], NULL, &res, &err);
      _exit (2);
    }
  close (p[0]);
  /* Feed half the layer, then kill the extractor mid-stream. */
  autofree char *path = xasprintf ("%s/normal.tar", g_corpus);
  autofree char *data = NULL;
  size_t len;
  autoerror kiln_error *err = NULL;
  assert_ok (fs_read_file_at (AT_FDCWD, path, 64 << 20, &data, &len, &err), err);
  assert_ok (fs_write_all (p[1], data, len / 2, &err), err);
  /* wait until the temp dir has the big file's start */
  autofree char *tmpd = xasprintf ("%s/tmp", root);
  for (int i = 0; i < 200; i++)
    {
      autofree char *cmd = xasprintf ("test -n \"$(ls -A '%s' 2>/dev/null)\"", tmpd);
      if (system (cmd) == 0)
        break;
      usleep (10000);
    }
  kill (pid, SIGKILL);
  int st;
  waitpid (pid, &st, 0);
  close (p[1]);
  assert_true (WIFSIGNALED (st));
  /* nothing visible, the leftover is in tmp/ until the next store_open */
  autostore store *s = NULL;
  autofree char *chk = xasprintf ("test -n \"$(ls -A '%s' 2>/dev/null)\"", tmpd);
  if (system (chk) != 0)
    fail_msg ("the killed extraction left nothing in tmp/ (killed too early?)");
  assert_ok (store_open (root, 0, &s, &err), err);
  assert_false (store_has_layer (s, diff));
  autoclose int t = openat (s->rootfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_int_equal (store_clean_tmp (s, &err), 0); /* already cleaned by open */
  store_close (s);
  s = NULL;
  extract_result res;
  assert_ok (store_extract_file (root, "normal.tar", blob, 0, &res, &err), err);
  assert_false (res.existed);
  assert_string_equal (res.diff_id, diff);
}

/* Extract corpus file name into a fresh dir owned by uid (dropping to uid in
 * a child when uid != 0); returns the index bytes. */
static char *
extract_as (const char *name, uid_t uid, size_t *len)
{
  autoerror kiln_error *err = NULL;
  autofree char *ldir = NULL;
  autoclose int lfd = -1;
  assert_ok (fs_mkdtemp_at (g_dirfd, "as-", &ldir, &lfd, &err), err);
  assert_int_equal (fchown (lfd, uid, uid), 0);
  autofree char *path = xasprintf ("%s/%s", g_corpus, name);
  autoclose int in = open (path, O_RDONLY | O_CLOEXEC);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      if (uid != 0 && (setgroups (0, NULL) < 0 || setgid (uid) < 0 || setuid (uid) < 0))
        _exit (3);
      if (uid != 0 && setuid (0) == 0)
        _exit (4); /* privileges really dropped */
      extract_result res;
      kiln_error *e = NULL;
      if (extract_layer (lfd, extract_read_fd, &in, NULL, &res, &e) < 0)
        {
          fprintf (stderr, "extract as %d: %s\n", (int) uid, e->msg);
          _exit (1);
        }
      _exit (0);
    }
  int st;
  assert_int_equal (waitpid (pid, &st, 0), pid);
  assert_true (WIFEXITED (st) && WEXITSTATUS (st) == 0);
  char *buf = NULL;
  assert_ok (fs_read_file_at (lfd, "index", 64 << 20, &buf, len, &err), err);
  struct stat sb;
  assert_int_equal (fstatat (lfd, "tree/usr/bin/ping", &sb, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (sb.st_uid, uid);
  assert_int_equal (sb.st_mode, S_IFREG | 0600);
  return buf;
}

static void
test_root_vs_plain_user (void **state)
{
  (void) state;
  if (geteuid () != 0)
    test_skip ("needs root to compare root and plain-user extraction (CI runs as root)");
  size_t l1, l2;
  autofree char *as_root = extract_as ("normal.tar.gz", 0, &l1);
  autofree char *as_user = extract_as ("normal.tar.gz", 65534, &l2);
  assert_int_equal (l1, l2);
  assert_memory_equal (as_root, as_user, l1);
}

/* Extract, rebuild the layer from tree + index with the layer writer, and
 * compare both tars with an independent reader (Python's tarfile). */
static void
rewrite_and_compare (const char *src_path, const char *label)
{
  autoerror kiln_error *err = NULL;
  autofree char *ldir = NULL;
  autoclose int lfd = -1;
  assert_ok (fs_mkdtemp_at (g_dirfd, "rw-", &ldir, &lfd, &err), err);
  autoclose int in = open (src_path, O_RDONLY | O_CLOEXEC);
  assert_true (in >= 0);
  extract_result res;
  assert_ok (extract_layer (lfd, extract_read_fd, &in, NULL, &res, &err), err);
  autoindex layer_index *idx = NULL;
  assert_ok (layer_index_open_at (lfd, "index", &idx, &err), err);
  autoclose int tfd = openat (lfd, "tree", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  layer_changes ch;
  assert_ok (layer_writer_changes_from_index (idx, tfd, &ch, &err), err);
  autoclose int out = openat (lfd, "rewritten.tar.zst", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  layer_writer_opts o = { .compression = LAYER_COMPRESS_ZSTD, .level = -1 };
  layer_writer_result wr;
  assert_ok (layer_writer_write (ch.v, ch.n, &o, out, &wr, &err), err);
  layer_writer_changes_free (&ch);
  autofree char *cmd = xasprintf ("python3 tests/store/tarcmp.py '%s' '%s/%s/rewritten.tar.zst' > '%s/%s/cmp.log' 2>&1;"
                                  " rc=$?; tail -3 '%s/%s/cmp.log'; exit $rc",
                                  src_path, g_dir, ldir, g_dir, ldir, g_dir, ldir);
  print_message ("# round trip %s:\n", label);
  int rc = system (cmd);
  if (rc != 0)
    fail_msg ("%s: the rewritten layer differs from the original", label);
  autofree char *p = xasprintf ("%s/%s", g_dir, ldir);
  close (lfd);
  lfd = -1;
  test_rmtree (p);
}

static void
test_rewrite_roundtrip (void **state)
{
  (void) state;
  const char *names[] = { "normal.tar.gz", "normal-gnu.tar.gz", "sparse-pax.tar", "bomb.tar.gz" };
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      autofree char *p = xasprintf ("%s/%s", g_corpus, names[i]);
      rewrite_and_compare (p, names[i]);
    }
  /* Images made by other tools: the cached fixture layouts (built with
   * debootstrap/umoci by scripts/make-base-images.sh), when present. */
  FILE *f = popen ("ls -S /var/cache/kiln-test/oci/*/blobs/sha256/* 2>/dev/null | head -2", "r");
  char line[4096];
  int n = 0;
  while (f && fgets (line, sizeof line, f))
    {
      line[strcspn (line, "\n")] = 0;
      rewrite_and_compare (line, line);
      n++;
    }
  if (f)
    pclose (f);
  if (n == 0)
    print_message ("# fixture layouts not cached: only the generated corpus was round-tripped\n");
}

static void
test_prune (void **state)
{
  (void) state;
  autofree char *root = xasprintf ("%s/store4", g_dir);
  char blob[DIGEST_STRING_SIZE], diff[DIGEST_STRING_SIZE], bblob[DIGEST_STRING_SIZE], bdiff[DIGEST_STRING_SIZE];
  file_digest ("normal.tar.gz", blob);
  file_digest ("normal.tar", diff);
  file_digest ("bomb.tar.gz", bblob);
  file_digest ("bomb.tar", bdiff);
  extract_result res;
  autoerror kiln_error *err = NULL;
  assert_ok (store_extract_file (root, "normal.tar.gz", blob, 0, &res, &err), err);
  assert_ok (store_extract_file (root, "bomb.tar.gz", bblob, 0, &res, &err), err);
  autostore store *s = NULL;
  assert_ok (store_open (root, STORE_OPEN_EXCLUSIVE, &s, &err), err);
  /* a second exclusive user is refused with a clear message */
  store *s2 = NULL;
  assert_true (store_open (root, STORE_OPEN_EXCLUSIVE, &s2, &err) < 0);
  assert_true (test_err_contains (err, "in use"));
  kiln_error_clear (&err);
  autofree char *config = xasprintf ("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}", diff);
  char cdig[DIGEST_STRING_SIZE], mdig[DIGEST_STRING_SIZE];
  digest_buffer (config, strlen (config), cdig);
  assert_ok (store_put_blob (s, cdig, config, strlen (config), &err), err);
  autofree char *manifest = xasprintf ("{\"schemaVersion\":2,\"config\":{\"digest\":\"%s\"},"
                                       "\"layers\":[{\"digest\":\"%s\"}]}", cdig, blob);
  digest_buffer (manifest, strlen (manifest), mdig);
  assert_ok (store_put_blob (s, mdig, manifest, strlen (manifest), &err), err);
  assert_ok (store_set_ref (s, "localhost/app:latest", mdig, &err), err);
  store_prune_stats st;
  assert_ok (store_prune (s, false, true, &st, &err), err);
  assert_int_equal (st.layers, 1);
  assert_true (st.bytes > 0);
  assert_true (store_has_layer (s, bdiff));
  assert_ok (store_prune (s, false, false, &st, &err), err);
  assert_int_equal (st.layers, 1);
  assert_false (store_has_layer (s, bdiff));
  assert_true (store_has_layer (s, diff));
  assert_true (store_has_blob (s, mdig));
  assert_true (store_has_blob (s, cdig));
  char d2[DIGEST_STRING_SIZE];
  assert_int_equal (store_layer_for_blob (s, blob, d2, &err), 1);
  assert_int_equal (store_layer_for_blob (s, bblob, d2, &err), 0);
  assert_ok (store_prune (s, true, false, &st, &err), err);
  assert_int_equal (st.layers, 1);
  assert_int_equal (st.blobs, 2);
  assert_false (store_has_layer (s, diff));
}

/* extract_from_changes: files of many directories given in no particular
 * order (the function sorts; its parent-directory cache must serve the right
 * directory for each), a hardlink into another directory, a root-level file,
 * a symlink (index only) and a file below a plain file (refused). */
static void
test_from_changes (void **state)
{
  (void) state;
  autofree char *root = xasprintf ("%s/store-fc", g_dir);
  autostore store *s = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (store_open (root, 0, &s, &err), err);
  autoclose int datafd = -1;
  autofree char *data = NULL;
  assert_ok (fs_mkdtemp_at (g_dirfd, "fcdata-", &data, &datafd, &err), err);
  enum { NDIRS = 7, PER_DIR = 40, N = NDIRS * PER_DIR };
  layer_change ch[N + 8];
  char *paths[N], *dpaths[N];
  size_t n = 0;
  /* Round-robin over the directories: consecutive inputs never share one. */
  for (size_t i = 0; i < N; i++)
    {
      size_t d = i % NDIRS, k = i / NDIRS;
      paths[i] = xasprintf ("top/d%zu/sub/f%03zu", d, k);
      dpaths[i] = xasprintf ("data%03zu", i);
      test_write_file (datafd, dpaths[i], paths[i]);
      ch[n++] = (layer_change) { .path = paths[i], .kind = LAYER_CHANGE_ADD,
                                 .meta = { .type = LAYER_INDEX_REG, .mode = 0644 },
                                 .data_dirfd = datafd, .data_path = dpaths[i] };
    }
  test_write_file (datafd, "rootdata", "root file");
  ch[n++] = (layer_change) { .path = "/rootfile", .kind = LAYER_CHANGE_ADD,
                             .meta = { .type = LAYER_INDEX_REG, .mode = 0600 }, .data_dirfd = datafd,
                             .data_path = "rootdata" };
  ch[n++] = (layer_change) { .path = "top/d3", .kind = LAYER_CHANGE_ADD,
                             .meta = { .type = LAYER_INDEX_DIR, .mode = 0750 } };
  ch[n++] = (layer_change) { .path = "zz/link", .kind = LAYER_CHANGE_ADD,
                             .meta = { .type = LAYER_INDEX_REG, .mode = 0644 },
                             .hardlink_target = "top/d5/sub/f007" };
  ch[n++] = (layer_change) { .path = "top/d1/sub/sym", .kind = LAYER_CHANGE_ADD,
                             .meta = { .type = LAYER_INDEX_SYMLINK, .mode = 0777, .link_target = "/etc" } };
  char diff[DIGEST_STRING_SIZE], blob[DIGEST_STRING_SIZE];
  digest_buffer ("fc-diff", 7, diff);
  digest_buffer ("fc-blob", 7, blob);
  assert_ok (extract_from_changes (s, ch, n, NULL, diff, blob, &err), err);
  int tfd = -1;
  layer_index *idx = NULL;
  assert_ok (store_open_layer (s, diff, &tfd, &idx, &err), err);
  for (size_t i = 0; i < N; i++)
    {
      autofree char *got = NULL;
      size_t len = 0;
      assert_ok (fs_read_file_at (tfd, paths[i], 4096, &got, &len, &err), err);
      assert_int_equal (len, strlen (paths[i]));
      assert_memory_equal (got, paths[i], len);
      uint32_t id = layer_index_lookup (idx, paths[i]);
      assert_int_not_equal (id, LAYER_INDEX_NONE);
      assert_int_equal (layer_index_entry (idx, id)->type, LAYER_INDEX_REG);
      assert_int_equal (layer_index_entry (idx, id)->size, len);
    }
  struct stat a, b;
  assert_int_equal (fstatat (tfd, "zz/link", &a, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (fstatat (tfd, "top/d5/sub/f007", &b, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (a.st_ino, b.st_ino);
  assert_int_equal (fstatat (tfd, "rootfile", &a, AT_SYMLINK_NOFOLLOW), 0);
  assert_true (S_ISREG (a.st_mode));
  /* symlinks live in the index only */
  assert_int_equal (fstatat (tfd, "top/d1/sub/sym", &a, AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0, ENOENT);
  uint32_t sid = layer_index_lookup (idx, "top/d1/sub/sym");
  assert_int_not_equal (sid, LAYER_INDEX_NONE);
  assert_int_equal (layer_index_entry (idx, sid)->type, LAYER_INDEX_SYMLINK);
  assert_int_equal (layer_index_entry (idx, layer_index_lookup (idx, "top/d3"))->mode & 07777, 0750);
  layer_index_close (idx);
  close (tfd);

  /* a file below a regular file: an error naming the path, nothing published */
  layer_change bad[] = {
    { .path = "x/plain", .kind = LAYER_CHANGE_ADD, .meta = { .type = LAYER_INDEX_REG, .mode = 0644 },
      .data_dirfd = datafd, .data_path = "rootdata" },
    { .path = "x/plain/below", .kind = LAYER_CHANGE_ADD, .meta = { .type = LAYER_INDEX_REG, .mode = 0644 },
      .data_dirfd = datafd, .data_path = "rootdata" },
  };
  digest_buffer ("fc-bad", 6, diff);
  digest_buffer ("fc-bad-blob", 11, blob);
  assert_true (extract_from_changes (s, bad, 2, NULL, diff, blob, &err) < 0);
  assert_true (test_err_contains (err, "x/plain/below"));
  assert_false (store_has_layer (s, diff));
  for (size_t i = 0; i < N; i++)
    {
      free (paths[i]);
      free (dpaths[i]);
    }
  close (datafd);
  datafd = -1;
  autofree char *dpath = xasprintf ("%s/%s", g_dir, data);
  test_rmtree (dpath);
}

/* The store never shares an inode with a file a user can write: data that
 * is not kiln's own (data_private false, e.g. a build context file) is
 * copied, and editing the source in place afterwards leaves the store's
 * file as it was; kiln's own data (a frozen upper, a store tree) is
 * hard-linked. */
static void
test_from_changes_private (void **state)
{
  (void) state;
  autofree char *root = xasprintf ("%s/store-fcp", g_dir);
  autostore store *s = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (store_open (root, 0, &s, &err), err);
  autoclose int datafd = -1;
  autofree char *data = NULL;
  assert_ok (fs_mkdtemp_at (g_dirfd, "fcpdata-", &data, &datafd, &err), err);
  test_write_file (datafd, "user", "user data");
  test_write_file (datafd, "own", "own data");
  layer_change ch[] = {
    { .path = "user", .kind = LAYER_CHANGE_ADD, .meta = { .type = LAYER_INDEX_REG, .mode = 0644 },
      .data_dirfd = datafd, .data_path = "user" },
    { .path = "own", .kind = LAYER_CHANGE_ADD, .meta = { .type = LAYER_INDEX_REG, .mode = 0644 },
      .data_dirfd = datafd, .data_path = "own", .data_private = true },
  };
  char diff[DIGEST_STRING_SIZE], blob[DIGEST_STRING_SIZE];
  digest_buffer ("fcp-diff", 8, diff);
  digest_buffer ("fcp-blob", 8, blob);
  assert_ok (extract_from_changes (s, ch, 2, NULL, diff, blob, &err), err);
  int tfd = -1;
  layer_index *idx = NULL;
  assert_ok (store_open_layer (s, diff, &tfd, &idx, &err), err);
  struct stat src, dst;
  assert_int_equal (fstatat (datafd, "user", &src, 0), 0);
  assert_int_equal (fstatat (tfd, "user", &dst, AT_SYMLINK_NOFOLLOW), 0);
  assert_true (src.st_ino != dst.st_ino);
  assert_int_equal (layer_index_entry (idx, layer_index_lookup (idx, "user"))->size, 9);
  assert_int_equal (fstatat (datafd, "own", &src, 0), 0);
  assert_int_equal (fstatat (tfd, "own", &dst, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (src.st_ino, dst.st_ino);
  /* the user edits the source in place, same size */
  int fd = openat (datafd, "user", O_WRONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, "EVIL", 4, 0), 4);
  close (fd);
  autofree char *got = NULL;
  size_t len = 0;
  assert_ok (fs_read_file_at (tfd, "user", 4096, &got, &len, &err), err);
  assert_int_equal (len, 9);
  assert_memory_equal (got, "user data", 9);
  layer_index_close (idx);
  close (tfd);
  close (datafd);
  datafd = -1;
  autofree char *dpath = xasprintf ("%s/%s", g_dir, data);
  test_rmtree (dpath);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_normal_formats),
    cmocka_unit_test (test_gnu_format),
    cmocka_unit_test (test_gzip_members),
    cmocka_unit_test (test_sparse),
    cmocka_unit_test (test_hostile),
    cmocka_unit_test (test_unpadded_end),
    cmocka_unit_test (test_bomb),
    cmocka_unit_test (test_xattr_bomb),
    cmocka_unit_test (test_data_limit),
    cmocka_unit_test (test_store_once),
    cmocka_unit_test (test_store_concurrent),
    cmocka_unit_test (test_store_kill9),
    cmocka_unit_test (test_prune),
    cmocka_unit_test (test_rewrite_roundtrip),
    cmocka_unit_test (test_root_vs_plain_user),
    cmocka_unit_test (test_from_changes),
    cmocka_unit_test (test_from_changes_private),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
