/* test_layer_writer.c - layers checked by independent tools (GNU tar, gzip -t,
 * zstd -t, sha256sum) and round-tripped through extract_layer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "store/extract.h"
#include "store/layer_index.h"
#include "store/layer_writer.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char *g_dir;
static int g_dirfd = -1;
static int g_datafd = -1;
static const char cap[] = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
static layer_index_xattr g_xattrs[] = { { "security.capability", cap, 20 }, { "user.k", "v", 1 } };
static layer_change g_changes[32];
static size_t g_n;

static layer_change
ch (const char *path, layer_index_type t, uint32_t mode, uint32_t uid)
{
  layer_change c = { .path = path, .kind = LAYER_CHANGE_ADD };
  c.meta.type = t;
  c.meta.mode = mode;
  c.meta.uid = uid;
  c.meta.gid = uid;
  c.meta.mtime_sec = 1700000000;
  c.meta.mtime_nsec = 5;
  c.data_dirfd = g_datafd;
  return c;
}

static int
setup (void **state)
{
  (void) state;
  g_dir = test_mkdtemp (&g_dirfd);
  assert_int_equal (mkdirat (g_dirfd, "data", 0700), 0);
  g_datafd = openat (g_dirfd, "data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  test_write_file (g_datafd, "hello", "hello world\n");
  test_write_file (g_datafd, "ping", "ELF");
  /* 3 MiB of mixed data: many 128 KiB chunks */
  autofree char *big = xmalloc (3 << 20);
  for (size_t i = 0; i < (3u << 20); i++)
    big[i] = (i % 7 == 0) ? (char) (rand () & 0xff) : (char) ('a' + (i / 4096) % 26);
  autoerror kiln_error *err = NULL;
  assert_ok (fs_write_file_atomic_at (g_datafd, "big", big, 3 << 20, 0600, &err), err);
  assert_int_equal (symlinkat ("/etc/passwd", g_datafd, "evil"), 0);

  g_n = 0;
  g_changes[g_n++] = ch ("usr/bin/ping", LAYER_INDEX_REG, 04755, 0);
  g_changes[g_n - 1].data_path = "ping";
  g_changes[g_n - 1].meta.xattrs = g_xattrs;
  g_changes[g_n - 1].meta.n_xattrs = 2;
  g_changes[g_n++] = ch ("usr", LAYER_INDEX_DIR, 0755, 0);
  g_changes[g_n++] = ch ("usr/bin", LAYER_INDEX_DIR, 0755, 0);
  g_changes[g_n++] = ch ("usr/bin/ping4", LAYER_INDEX_REG, 04755, 0);
  g_changes[g_n - 1].hardlink_target = "usr/bin/ping";
  g_changes[g_n++] = ch ("home", LAYER_INDEX_DIR, 0755, 0);
  g_changes[g_n++] = ch ("home/u", LAYER_INDEX_DIR, 02750, 1000);
  g_changes[g_n++] = ch ("home/u/hello", LAYER_INDEX_REG, 0640, 1000);
  g_changes[g_n - 1].data_path = "hello";
  g_changes[g_n++] = ch ("home/u/big", LAYER_INDEX_REG, 0600, 1000);
  g_changes[g_n - 1].data_path = "big";
  g_changes[g_n++] = ch ("home/u/link", LAYER_INDEX_SYMLINK, 0777, 1000);
  g_changes[g_n - 1].meta.link_target = "hello";
  g_changes[g_n++] = ch ("dev", LAYER_INDEX_DIR, 0755, 0);
  g_changes[g_n++] = ch ("dev/null", LAYER_INDEX_CHR, 0666, 0);
  g_changes[g_n - 1].meta.rdev_major = 1;
  g_changes[g_n - 1].meta.rdev_minor = 3;
  g_changes[g_n++] = ch ("dev/fifo", LAYER_INDEX_FIFO, 0600, 0);
  g_changes[g_n++] = ch ("tmp", LAYER_INDEX_DIR, 01777, 0);
  g_changes[g_n++] = (layer_change) { .path = "etc/gone", .kind = LAYER_CHANGE_WHITEOUT };
  g_changes[g_n++] = ch ("etc", LAYER_INDEX_DIR, 0755, 0);
  g_changes[g_n++] = (layer_change) { .path = "home/u", .kind = LAYER_CHANGE_OPAQUE };
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  close (g_datafd);
  close (g_dirfd);
  test_rmtree (g_dir);
  free (g_dir);
  return 0;
}

static char *
sh_out (const char *cmd)
{
  FILE *f = popen (cmd, "r");
  assert_non_null (f);
  char buf[65536];
  size_t n = fread (buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  int st = pclose (f);
  if (st != 0)
    fail_msg ("'%s' failed (%d): %s", cmd, st, buf);
  return xstrdup (buf);
}

static void
write_layer (const char *name, layer_writer_opts *o, layer_writer_result *res)
{
  autoerror kiln_error *err = NULL;
  autoclose int fd = openat (g_dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true (fd >= 0);
  assert_ok (layer_writer_write (g_changes, g_n, o, fd, res, &err), err);
}

static void
check_tools (const char *name, const char *decomp, const char *test_cmd, const layer_writer_result *res)
{
  autofree char *c1 = xasprintf ("cd '%s' && %s %s >/dev/null 2>&1 && echo ok", g_dir, test_cmd, name);
  if (*test_cmd)
    {
      autofree char *o = sh_out (c1);
      assert_string_equal (o, "ok\n");
    }
  autofree char *c2 = xasprintf ("cd '%s' && sha256sum < %s", g_dir, name);
  autofree char *blob = sh_out (c2);
  assert_memory_equal (blob, res->blob_digest + 7, 64);
  autofree char *c3 = xasprintf ("cd '%s' && %s < %s | sha256sum", g_dir, decomp, name);
  autofree char *diff = sh_out (c3);
  assert_memory_equal (diff, res->diff_id + 7, 64);
  autofree char *c4 = xasprintf ("cd '%s' && %s < %s | tar -tv --numeric-owner -f -", g_dir, decomp, name);
  autofree char *list = sh_out (c4);
  static const char *want[] = {
    "-rwsr-xr-x 0/0", "usr/bin/ping4 link to usr/bin/ping", "crw-rw-rw- 0/0", "1,3", "dev/null",
    "prw------- 0/0", "drwxrwxrwt 0/0", "etc/.wh.gone", "home/u/.wh..wh..opq", "drwxr-s--- 1000/1000",
    "home/u/link -> hello", "3145728", "-rw-r----- 1000/1000",
  };
  for (size_t i = 0; i < ARRAY_SIZE (want); i++)
    if (strstr (list, want[i]) == NULL)
      fail_msg ("tar listing lacks '%s':\n%s", want[i], list);
  /* parents before children, opaque marker right after its directory */
  const char *order[] = { "dev/\n", "dev/fifo", "dev/null", "etc/\n", "etc/.wh.gone", "home/\n", "home/u/\n",
                          "home/u/.wh..wh..opq", "home/u/big", "tmp/\n", "usr/\n", "usr/bin/\n",
                          "usr/bin/ping\n", "usr/bin/ping4" };
  const char *pos = list;
  for (size_t i = 0; i < ARRAY_SIZE (order); i++)
    {
      const char *f = strstr (pos, order[i]);
      if (f == NULL)
        fail_msg ("'%s' missing or out of order in:\n%s", order[i], list);
      pos = f;
    }
}

static void
roundtrip (const char *name, bool clamped)
{
  autoerror kiln_error *err = NULL;
  autofree char *ldir = NULL;
  autoclose int lfd = -1;
  assert_ok (fs_mkdtemp_at (g_dirfd, "rt-", &ldir, &lfd, &err), err);
  autoclose int in = openat (g_dirfd, name, O_RDONLY | O_CLOEXEC);
  extract_result xr;
  assert_ok (extract_layer (lfd, extract_read_fd, &in, NULL, &xr, &err), err);
  autoindex layer_index *idx = NULL;
  assert_ok (layer_index_open_at (lfd, "index", &idx, &err), err);
  for (size_t i = 0; i < g_n; i++)
    {
      const layer_change *c = &g_changes[i];
      uint32_t id = layer_index_lookup (idx, c->path);
      if (id == LAYER_INDEX_NONE)
        fail_msg ("'%s' missing after round trip", c->path);
      const layer_index_disk_entry *e = layer_index_entry (idx, id);
      if (c->kind == LAYER_CHANGE_WHITEOUT)
        {
          assert_int_equal (e->type, LAYER_INDEX_WHITEOUT);
          continue;
        }
      if (c->kind == LAYER_CHANGE_OPAQUE)
        {
          assert_true (e->flags & LAYER_INDEX_F_OPAQUE);
          continue;
        }
      assert_int_equal (e->type, c->meta.type);
      assert_int_equal (e->mode, c->meta.mode);
      assert_int_equal (e->uid, c->meta.uid);
      assert_int_equal (e->gid, c->meta.gid);
      assert_int_equal (e->rdev_major, c->meta.rdev_major);
      assert_int_equal (e->rdev_minor, c->meta.rdev_minor);
      assert_int_equal (e->mtime_sec, clamped ? 1000 : 1700000000);
      if (c->meta.type == LAYER_INDEX_SYMLINK)
        {
          size_t ll;
          const char *l = layer_index_link (idx, id, &ll);
          assert_int_equal (ll, strlen (c->meta.link_target));
          assert_memory_equal (l, c->meta.link_target, ll);
        }
      for (size_t x = 0; x < c->meta.n_xattrs; x++)
        {
          const void *v;
          size_t vl;
          assert_true (layer_index_xattr_find (idx, id, c->meta.xattrs[x].name, &v, &vl));
          assert_int_equal (vl, c->meta.xattrs[x].value_len);
          assert_memory_equal (v, c->meta.xattrs[x].value, vl);
        }
    }
  assert_int_equal (layer_index_entry (idx, layer_index_lookup (idx, "usr/bin/ping4"))->nlink, 2);
  autoclose int tfd = openat (lfd, "tree", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  autofree char *a = NULL, *b = NULL;
  size_t al, bl;
  assert_ok (fs_read_file_at (tfd, "home/u/big", 8 << 20, &a, &al, &err), err);
  assert_ok (fs_read_file_at (g_datafd, "big", 8 << 20, &b, &bl, &err), err);
  assert_int_equal (al, bl);
  assert_memory_equal (a, b, al);
}

static void
test_gzip (void **state)
{
  (void) state;
  layer_writer_opts o = { .compression = LAYER_COMPRESS_GZIP, .level = -1, .threads = 4 };
  layer_writer_result r4, r1;
  write_layer ("l.tar.gz", &o, &r4);
  check_tools ("l.tar.gz", "gzip -dc", "gzip -t", &r4);
  roundtrip ("l.tar.gz", false);
  /* the output does not depend on the thread count */
  o.threads = 1;
  write_layer ("l1.tar.gz", &o, &r1);
  assert_string_equal (r1.blob_digest, r4.blob_digest);
  assert_string_equal (r1.diff_id, r4.diff_id);
  assert_true (r4.blob_size < r4.diff_size);
}

/* Inflate blob `name` with zlib (not the library that wrote it): it must be
 * exactly one gzip member (nothing after its trailer, zlib checks the CRC and
 * size) whose content hashes to diff_id. */
static void
zlib_check (const char *name, const layer_writer_result *res)
{
  autoerror kiln_error *err = NULL;
  autofree char *gz = NULL;
  size_t gzlen;
  assert_ok (fs_read_file_at (g_dirfd, name, 64 << 20, &gz, &gzlen, &err), err);
  assert_int_equal (gzlen, res->blob_size);
  z_stream z = { 0 };
  assert_int_equal (inflateInit2 (&z, 16 + MAX_WBITS), Z_OK);
  autofree unsigned char *out = xmalloc (res->diff_size + 1);
  z.next_in = (unsigned char *) gz;
  z.avail_in = gzlen;
  z.next_out = out;
  z.avail_out = res->diff_size + 1;
  int r = inflate (&z, Z_FINISH);
  inflateEnd (&z);
  assert_int_equal (r, Z_STREAM_END);
  assert_int_equal (z.avail_in, 0);
  assert_int_equal (z.total_out, res->diff_size);
  char d[DIGEST_STRING_SIZE];
  digest_buffer (out, res->diff_size, d);
  assert_string_equal (d, res->diff_id);
}

/* Every gzip level (ISA-L for 1-3, zlib otherwise): the same tar, valid for
 * zlib and gzip, and the same bytes whatever the thread count. */
static void
test_gzip_levels (void **state)
{
  (void) state;
  static const int levels[] = { 1, 2, 3, -1, 0, 4, 6, 9 };
  layer_writer_result ref = { 0 };
  uint64_t size_l3 = 0, size_l9 = 0;
  for (size_t i = 0; i < ARRAY_SIZE (levels); i++)
    {
      layer_writer_result r[3];
      static const int threads[] = { 1, 2, 3 };
      for (size_t t = 0; t < ARRAY_SIZE (threads); t++)
        {
          layer_writer_opts o = { .compression = LAYER_COMPRESS_GZIP, .level = levels[i], .threads = threads[t] };
          autofree char *name = xasprintf ("lv%d-t%d.tar.gz", levels[i], threads[t]);
          write_layer (name, &o, &r[t]);
          if (t == 0)
            {
              zlib_check (name, &r[0]);
              autofree char *cmd = xasprintf ("cd '%s' && gzip -t %s && echo ok", g_dir, name);
              autofree char *ok = sh_out (cmd);
              assert_string_equal (ok, "ok\n");
            }
          else
            {
              if (strcmp (r[t].blob_digest, r[0].blob_digest) != 0)
                fail_msg ("level %d: %d threads gave %s, 1 thread %s", levels[i], threads[t], r[t].blob_digest,
                          r[0].blob_digest);
              assert_int_equal (r[t].blob_size, r[0].blob_size);
            }
        }
      if (i == 0)
        ref = r[0];
      assert_string_equal (r[0].diff_id, ref.diff_id);
      if (levels[i] == 3)
        size_l3 = r[0].blob_size;
      if (levels[i] == -1)
        {
          /* the default is ISA-L level 3 */
          assert_int_equal (r[0].blob_size, size_l3);
        }
      if (levels[i] == 9)
        size_l9 = r[0].blob_size;
      if (levels[i] == 0)
        assert_true (r[0].blob_size > r[0].diff_size); /* stored */
      else
        assert_true (r[0].blob_size < r[0].diff_size);
    }
  print_message ("# 3 MiB test layer: ISA-L level 3 %llu bytes, zlib level 9 %llu bytes\n",
                 (unsigned long long) size_l3, (unsigned long long) size_l9);
}

/* A tar of exactly two chunks (the last chunk handed to the compressor is
 * empty) of random bytes (stored blocks: output larger than input). */
static void
test_gzip_chunk_edges (void **state)
{
  (void) state;
  autoerror kiln_error *err = NULL;
  /* header 512 + data + end-of-archive 1024 = 2 * 128 KiB */
  size_t sz = 2 * 131072 - 512 - 1024;
  autofree char *rnd = xmalloc (sz);
  for (size_t i = 0; i < sz; i++)
    rnd[i] = (char) (rand () & 0xff);
  assert_ok (fs_write_file_atomic_at (g_datafd, "rnd", rnd, sz, 0600, &err), err);
  layer_change c = ch ("rnd", LAYER_INDEX_REG, 0644, 0);
  c.data_path = "rnd";
  static const int levels[] = { 1, 3, 6 };
  for (size_t i = 0; i < ARRAY_SIZE (levels); i++)
    {
      layer_writer_opts o = { .compression = LAYER_COMPRESS_GZIP, .level = levels[i], .threads = 2 };
      layer_writer_result r;
      autofree char *name = xasprintf ("rnd%d.tar.gz", levels[i]);
      autoclose int fd = openat (g_dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      assert_true (fd >= 0);
      assert_ok (layer_writer_write (&c, 1, &o, fd, &r, &err), err);
      assert_int_equal (r.diff_size, 2 * 131072);
      zlib_check (name, &r);
    }
  /* and an empty layer (only the end-of-archive blocks) */
  layer_writer_opts o = { .compression = LAYER_COMPRESS_GZIP, .level = 3 };
  layer_writer_result r;
  autoclose int fd = openat (g_dirfd, "empty.tar.gz", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_ok (layer_writer_write (NULL, 0, &o, fd, &r, &err), err);
  zlib_check ("empty.tar.gz", &r);
}

static void
test_zstd (void **state)
{
  (void) state;
  if (system ("command -v zstd >/dev/null") != 0)
    test_skip ("zstd CLI not installed (independent check impossible)");
  layer_writer_opts o = { .compression = LAYER_COMPRESS_ZSTD, .level = -1 };
  layer_writer_result r;
  write_layer ("l.tar.zst", &o, &r);
  check_tools ("l.tar.zst", "zstd -dc", "zstd -q -t", &r);
  roundtrip ("l.tar.zst", false);
}

static void
test_uncompressed_and_clamp (void **state)
{
  (void) state;
  layer_writer_opts o = { .compression = LAYER_COMPRESS_NONE, .level = -1, .clamp_mtime = true,
                          .clamp_epoch = 1000 };
  layer_writer_result r;
  write_layer ("l.tar", &o, &r);
  assert_string_equal (r.blob_digest, r.diff_id);
  check_tools ("l.tar", "cat", "", &r);
  roundtrip ("l.tar", true);
  /* same input, same bytes */
  layer_writer_result r2;
  write_layer ("l2.tar", &o, &r2);
  assert_string_equal (r.diff_id, r2.diff_id);
}

static void
test_errors (void **state)
{
  (void) state;
  autoerror kiln_error *err = NULL;
  layer_writer_result r;
  autoclose int fd = openat (g_dirfd, "bad.tar", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  layer_change c = ch ("x", LAYER_INDEX_REG, 0644, 0);
  c.data_path = "evil"; /* a symlink in the data tree is never followed */
  layer_writer_opts o = { .compression = LAYER_COMPRESS_GZIP, .level = -1 };
  assert_true (layer_writer_write (&c, 1, &o, fd, &r, &err) < 0);
  print_message ("# %s\n", err->msg);
  kiln_error_clear (&err);
  layer_change d[2] = { ch ("a", LAYER_INDEX_DIR, 0755, 0), ch ("a/", LAYER_INDEX_DIR, 0755, 0) };
  assert_true (layer_writer_write (d, 2, &o, fd, &r, &err) < 0);
  assert_true (test_err_contains (err, "twice"));
  kiln_error_clear (&err);
  o.level = 12;
  assert_true (layer_writer_write (d, 1, &o, fd, &r, &err) < 0);
  kiln_error_clear (&err);
  /* empty layer is valid */
  o.level = -1;
  assert_ok (layer_writer_write (NULL, 0, &o, fd, &r, &err), err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_gzip),
    cmocka_unit_test (test_gzip_levels),
    cmocka_unit_test (test_gzip_chunk_edges),
    cmocka_unit_test (test_zstd),
    cmocka_unit_test (test_uncompressed_and_clamp),
    cmocka_unit_test (test_errors),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
