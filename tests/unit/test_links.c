/* test_links.c - the store's records of hard-linked files (store/links.h):
 * the side-file format, settling, and blobs linked out into a layout. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "store/extract.h"
#include "store/layer_writer.h"
#include "store/links.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *g_dir;
static int g_dirfd = -1;

static int
setup (void **state)
{
  (void) state;
  g_dir = test_mkdtemp (&g_dirfd);
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  close (g_dirfd);
  test_rmtree (g_dir);
  free (g_dir);
  return 0;
}

static void
test_roundtrip (void **state)
{
  (void) state;
  store_links l = { 0 };
  struct stat st = { .st_mode = S_IFREG | 0644, .st_ino = 123456789012ULL, .st_size = 42 };
  st.st_ctim = (struct timespec) { 1700000000, 5 };
  st.st_mtim = (struct timespec) { -12, 999999999 };
  store_links_add (&l, "a/b c", &st);
  st.st_ino = 1;
  store_links_add (&l, "new\nline", &st);
  autostrbuf strbuf sb = STRBUF_INIT;
  store_links_format (&l, &sb);
  store_links p = { 0 };
  autoerror kiln_error *err = NULL;
  assert_ok (store_links_parse (sb.buf, sb.len, &p, &err), err);
  assert_int_equal (p.n, 2);
  assert_string_equal (p.v[0].path, "a/b c");
  assert_string_equal (p.v[1].path, "new\nline");
  assert_int_equal (p.v[0].ino, 123456789012ULL);
  assert_int_equal (p.v[0].ctime_nsec, 5);
  assert_int_equal (p.v[0].mtime_sec, -12);
  assert_int_equal (p.v[0].mtime_nsec, 999999999);
  assert_true (store_link_same (&p.v[1], &st));
  st.st_ctim.tv_nsec++;
  assert_false (store_link_same (&p.v[1], &st));
  store_links_free (&p);
  store_links_free (&l);
  /* empty list */
  assert_ok (store_links_parse ("kiln-links 1\n", 13, &p, &err), err);
  assert_int_equal (p.n, 0);
}

static void
test_rejects (void **state)
{
  (void) state;
  static const char *const bad[] = {
    "",
    "kiln-links 2\n",
    "kiln-links 1\n1 1 2 3.000000000 4.000000000 1 a",            /* no newline */
    "kiln-links 1\n1 1 2 3.000000000 4.000000000 0 \n",           /* empty path */
    "kiln-links 1\n1 1 2 3.000000000 4.000000000 9 a\n",          /* path past the end */
    "kiln-links 1\n1 1 2 3.00000000 4.000000000 1 a\n",           /* 8-digit nsec */
    "kiln-links 1\n1 1 2 3.000000000 4.0000000000 1 a\n",         /* 10-digit nsec */
    "kiln-links 1\n-1 1 2 3.000000000 4.000000000 1 a\n",         /* negative inode */
    "kiln-links 1\n18446744073709551616 1 2 3.000000000 4.000000000 1 a\n", /* overflow */
    "kiln-links 1\n1 1 2 9223372036854775808.000000000 4.000000000 1 a\n",  /* past int64 */
    "kiln-links 1\n1 1  2 3.000000000 4.000000000 1 a\n",         /* two spaces */
    "kiln-links 1\n1 1 2 3.000000000 4.000000000 4097 a\n",       /* path too long */
    "kiln-links 1\n1 1 2 3.000000000 4.000000000 1 ab\n",         /* length mismatch */
    "kiln-links 1\n1 1 2 3 4 1 a\n",                              /* no fractions */
  };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      store_links p = { 0 };
      autoerror kiln_error *err = NULL;
      if (store_links_parse (bad[i], strlen (bad[i]), &p, &err) == 0)
        fail_msg ("accepted bad input %zu", i);
      assert_non_null (err);
      assert_int_equal (p.n, 0);
    }
  /* a NUL inside the path */
  const char nul[] = "kiln-links 1\n1 1 2 3.000000000 4.000000000 3 a\0b\n";
  store_links p = { 0 };
  autoerror kiln_error *err = NULL;
  assert_true (store_links_parse (nul, sizeof nul - 1, &p, &err) < 0);
}

static void
put_blob (store *s, const char *data, char digest[DIGEST_STRING_SIZE])
{
  autoerror kiln_error *err = NULL;
  digest_buffer (data, strlen (data), digest);
  assert_ok (store_put_blob (s, digest, data, strlen (data), &err), err);
}

/* A blob linked out: a chmod of the layout's name keeps it (hashed again,
 * record renewed); a write removes it from the store. */
static void
test_blob_link_out (void **state)
{
  (void) state;
  autofree char *root = xasprintf ("%s/store", g_dir);
  autostore store *s = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (store_open (root, 0, &s, &err), err);
  autoclose int lfd = -1;
  autofree char *lname = NULL;
  assert_ok (fs_mkdtemp_at (g_dirfd, "layout-", &lname, &lfd, &err), err);
  char d[DIGEST_STRING_SIZE];
  put_blob (s, "the blob's bytes", d);
  assert_int_equal (store_blob_link_out (s, d, lfd, "b", &err), 0);
  assert_true (store_has_blob (s, d));
  assert_int_equal (fchmodat (lfd, "b", 0600, 0), 0);
  int fd = store_open_blob (s, d, &err);
  assert_ok (fd, err);
  close (fd);
  /* another name for it (and a layout deleted) moves only the link count:
   * accepted without hashing, the record is left as it is */
  autofree char *rec = xasprintf ("bloblinks/sha256/%s", digest_hex (d));
  struct stat r0, r1;
  assert_int_equal (fstatat (s->rootfd, rec, &r0, 0), 0);
  assert_int_equal (linkat (lfd, "b", lfd, "b2", 0), 0);
  fd = store_open_blob (s, d, &err);
  assert_ok (fd, err);
  close (fd);
  assert_int_equal (fstatat (s->rootfd, rec, &r1, 0), 0);
  assert_int_equal (r0.st_ino, r1.st_ino);
  /* in place, same size */
  fd = openat (lfd, "b", O_WRONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, "EVIL", 4, 0), 4);
  close (fd);
  assert_true (store_open_blob (s, d, &err) < 0);
  assert_true (test_err_contains (err, "was modified after it was written"));
  assert_int_equal (err->status, ENOENT);
  assert_false (store_has_blob (s, d));
  /* a blob never linked out has no record and opens as before */
  char d2[DIGEST_STRING_SIZE];
  put_blob (s, "another blob", d2);
  kiln_error_clear (&err);
  fd = store_open_blob (s, d2, &err);
  assert_ok (fd, err);
  close (fd);
}

/* A layer whose tree links a user's file: published with a links file;
 * an in-place edit (same size, mtime put back) makes store_open_layer
 * extract the layer again from its blob, which holds what was packed. */
/* The layer of changes ch (n of them), written, adopted and extracted
 * into s as a build commits one. */
static void
commit_changes (store *s, const layer_change *ch, size_t n, layer_writer_result *wr)
{
  autoerror kiln_error *err = NULL;
  int bfd = -1;
  autofree char *btmp = NULL;
  assert_ok (store_blob_tmpfile (s, &bfd, &btmp, &err), err);
  layer_writer_opts wo = { .compression = LAYER_COMPRESS_GZIP, .level = -1 };
  assert_ok (layer_writer_write (ch, n, &wo, bfd, wr, &err), err);
  close (bfd);
  assert_ok (store_blob_adopt (s, btmp, wr->blob_digest, &err), err);
  assert_ok (extract_from_changes (s, ch, n, &wo, wr->diff_id, wr->blob_digest, &err), err);
}

static void
test_layer_relink (void **state)
{
  (void) state;
  autofree char *root = xasprintf ("%s/store-layer", g_dir);
  autostore store *s = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (store_open (root, 0, &s, &err), err);
  autoclose int cfd = -1;
  autofree char *cname = NULL;
  assert_ok (fs_mkdtemp_at (g_dirfd, "ctx-", &cname, &cfd, &err), err);
  test_write_file (cfd, "app.sh", "echo original\n");
  struct timespec old[2] = { { 1600000000, 0 }, { 1600000000, 123 } };
  assert_int_equal (utimensat (cfd, "app.sh", old, 0), 0);
  struct stat st;
  usleep (20000); /* the ctime settles (copy.c: ctime_settled) */
  assert_int_equal (fstatat (cfd, "app.sh", &st, 0), 0);
  layer_change ch = { .path = "app.sh", .kind = LAYER_CHANGE_ADD,
                      .meta = { .type = LAYER_INDEX_REG, .mode = 0755, .size = (uint64_t) st.st_size,
                                .mtime_sec = st.st_mtim.tv_sec, .mtime_nsec = (uint32_t) st.st_mtim.tv_nsec },
                      .data_dirfd = cfd, .data_path = "app.sh", .src_ino = st.st_ino,
                      .src_ctime_sec = st.st_ctim.tv_sec, .src_ctime_nsec = (uint32_t) st.st_ctim.tv_nsec,
                      .src_settled = true };
  layer_writer_opts wo = { .compression = LAYER_COMPRESS_GZIP, .level = -1 };
  layer_writer_result wr;
  commit_changes (s, &ch, 1, &wr);
  autofree char *lrel = xasprintf ("layers/sha256/%s/links", digest_hex (wr.diff_id));
  autofree char *frel = xasprintf ("layers/sha256/%s/tree/app.sh", digest_hex (wr.diff_id));
  struct stat ts;
  assert_int_equal (fstatat (s->rootfd, lrel, &ts, 0), 0);
  assert_int_equal (fstatat (s->rootfd, frel, &ts, 0), 0);
  assert_int_equal (ts.st_ino, st.st_ino); /* linked, not copied */
  /* untouched: opens as it is */
  int tfd = -1;
  assert_ok (store_open_layer (s, wr.diff_id, &tfd, NULL, &err), err);
  close (tfd);
  assert_int_equal (fstatat (s->rootfd, lrel, &ts, 0), 0);
  /* the user edits it in place, puts the mtime back and links it
   * elsewhere: a tree, unlike a blob, gets no exception for a moved link
   * count (link_relinked) */
  int fd = openat (cfd, "app.sh", O_WRONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, "echo EVILEVIL", 13, 0), 13);
  struct timespec keep[2] = { st.st_atim, st.st_mtim };
  assert_int_equal (futimens (fd, keep), 0);
  close (fd);
  assert_int_equal (linkat (cfd, "app.sh", cfd, "other", 0), 0);
  /* the same layer made again from the old change list: it exists, but
   * its source no longer is what the step read */
  assert_true (extract_from_changes (s, &ch, 1, &wo, wr.diff_id, wr.blob_digest, &err) < 0);
  assert_true (test_err_contains (err, "changed during the build"));
  kiln_error_clear (&err);
  assert_ok (store_open_layer (s, wr.diff_id, &tfd, NULL, &err), err);
  autofree char *got = NULL;
  size_t len = 0;
  assert_ok (fs_read_file_at (tfd, "app.sh", 4096, &got, &len, &err), err);
  close (tfd);
  assert_int_equal (len, 14);
  assert_memory_equal (got, "echo original\n", 14);
  /* the new tree is the store's own: no links file, another inode */
  assert_true (fstatat (s->rootfd, lrel, &ts, 0) < 0 && errno == ENOENT);
  assert_int_equal (fstatat (s->rootfd, frel, &ts, 0), 0);
  assert_true (ts.st_ino != st.st_ino);
}

/* A layer of many context files: the check is split over threads
 * (links.c, first_changed); an edit in the last slice is still found. */
static void
test_layer_many (void **state)
{
  (void) state;
  enum { N = 5000 };
  autofree char *root = xasprintf ("%s/store-many", g_dir);
  autostore store *s = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (store_open (root, 0, &s, &err), err);
  autoclose int cfd = -1;
  autofree char *cname = NULL;
  assert_ok (fs_mkdtemp_at (g_dirfd, "ctx-many-", &cname, &cfd, &err), err);
  layer_change *ch = xcalloc (N, sizeof *ch);
  char **names = xcalloc (N, sizeof *names);
  struct timespec old[2] = { { 1600000000, 0 }, { 1600000000, 0 } };
  for (int i = 0; i < N; i++)
    {
      names[i] = xasprintf ("f%05d", i);
      test_write_file (cfd, names[i], "original");
      assert_int_equal (utimensat (cfd, names[i], old, 0), 0);
    }
  usleep (20000); /* the ctimes settle (copy.c: ctime_settled) */
  for (int i = 0; i < N; i++)
    {
      struct stat st;
      assert_int_equal (fstatat (cfd, names[i], &st, 0), 0);
      ch[i] = (layer_change) { .path = names[i], .kind = LAYER_CHANGE_ADD,
                               .meta = { .type = LAYER_INDEX_REG, .mode = 0644, .size = (uint64_t) st.st_size,
                                         .mtime_sec = st.st_mtim.tv_sec, .mtime_nsec = (uint32_t) st.st_mtim.tv_nsec },
                               .data_dirfd = cfd, .data_path = names[i], .src_ino = st.st_ino,
                               .src_ctime_sec = st.st_ctim.tv_sec, .src_ctime_nsec = (uint32_t) st.st_ctim.tv_nsec,
                               .src_settled = true };
    }
  layer_writer_result wr;
  commit_changes (s, ch, N, &wr);
  autofree char *lrel = xasprintf ("layers/sha256/%s/links", digest_hex (wr.diff_id));
  struct stat ls;
  int tfd = -1;
  assert_ok (store_open_layer (s, wr.diff_id, &tfd, NULL, &err), err);
  close (tfd);
  assert_int_equal (fstatat (s->rootfd, lrel, &ls, 0), 0); /* nothing changed: kept */
  int fd = openat (cfd, names[N - 1], O_WRONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, "EVILEVI", 7, 0), 7);
  assert_int_equal (futimens (fd, old), 0);
  close (fd);
  assert_ok (store_open_layer (s, wr.diff_id, &tfd, NULL, &err), err);
  autofree char *got = NULL;
  size_t len = 0;
  assert_ok (fs_read_file_at (tfd, names[N - 1], 4096, &got, &len, &err), err);
  close (tfd);
  assert_int_equal (len, 8);
  assert_memory_equal (got, "original", 8);
  assert_true (fstatat (s->rootfd, lrel, &ls, 0) < 0 && errno == ENOENT); /* extracted again */
  for (int i = 0; i < N; i++)
    free (names[i]);
  free (names);
  free (ch);
}

/* Layer of one user file (settled, as copy.c reports it) at path. */
static void
make_user_layer (store *s, int cfd, const char *name, const char *path, const struct stat *st, char diff[DIGEST_STRING_SIZE])
{
  layer_change ch = { .path = path, .kind = LAYER_CHANGE_ADD,
                      .meta = { .type = LAYER_INDEX_REG, .mode = 0644, .size = (uint64_t) st->st_size,
                                .mtime_sec = st->st_mtim.tv_sec, .mtime_nsec = (uint32_t) st->st_mtim.tv_nsec },
                      .data_dirfd = cfd, .data_path = name, .src_ino = st->st_ino,
                      .src_ctime_sec = st->st_ctim.tv_sec, .src_ctime_nsec = (uint32_t) st->st_ctim.tv_nsec,
                      .src_settled = true };
  layer_writer_result wr;
  commit_changes (s, &ch, 1, &wr);
  memcpy (diff, wr.diff_id, DIGEST_STRING_SIZE);
}

/* One context file in two layers of one build (`COPY package.json ./`,
 * then `COPY . .`, both read before either was linked): the second link
 * moves ctime, which this process knows is its own doing, so neither the
 * second commit nor an open of the first layer sees a change. */
static void
test_own_relinks (void **state)
{
  (void) state;
  autofree char *root = xasprintf ("%s/store-own", g_dir);
  autostore store *s = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (store_open (root, 0, &s, &err), err);
  autoclose int cfd = -1;
  autofree char *cname = NULL;
  assert_ok (fs_mkdtemp_at (g_dirfd, "ctx-own-", &cname, &cfd, &err), err);
  test_write_file (cfd, "package.json", "{}\n");
  usleep (20000);
  struct stat st;
  assert_int_equal (fstatat (cfd, "package.json", &st, 0), 0);
  char d1[DIGEST_STRING_SIZE], d2[DIGEST_STRING_SIZE];
  make_user_layer (s, cfd, "package.json", "app/package.json", &st, d1);
  make_user_layer (s, cfd, "package.json", "srv/package.json", &st, d2); /* read before the first link */
  int tfd = -1;
  assert_ok (store_open_layer (s, d1, &tfd, NULL, &err), err);
  close (tfd);
  autofree char *l1 = xasprintf ("layers/sha256/%s/links", digest_hex (d1));
  struct stat ls;
  assert_int_equal (fstatat (s->rootfd, l1, &ls, 0), 0); /* not extracted again */
  /* a write after both is a change */
  int fd = openat (cfd, "package.json", O_WRONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, "[]", 2, 0), 2);
  close (fd);
  assert_ok (store_open_layer (s, d1, &tfd, NULL, &err), err);
  close (tfd);
  assert_true (fstatat (s->rootfd, l1, &ls, 0) < 0 && errno == ENOENT);
}

/* A blob with a second name and no record (a crash lost the record, or an
 * older kiln linked it) is hashed before it is trusted; so is one whose
 * record is damaged. */
static void
test_blob_unrecorded (void **state)
{
  (void) state;
  autofree char *root = xasprintf ("%s/store-unrec", g_dir);
  autostore store *s = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (store_open (root, 0, &s, &err), err);
  char d[DIGEST_STRING_SIZE];
  put_blob (s, "linked by an older kiln", d);
  autofree char *brel = xasprintf ("blobs/sha256/%s", digest_hex (d));
  autofree char *rec = xasprintf ("bloblinks/sha256/%s", digest_hex (d));
  assert_int_equal (linkat (s->rootfd, brel, g_dirfd, "old-layout-blob", 0), 0);
  int fd = store_open_blob (s, d, &err);
  assert_ok (fd, err);
  close (fd);
  struct stat st;
  assert_int_equal (fstatat (s->rootfd, rec, &st, 0), 0); /* hashed, recorded */
  /* a damaged record */
  assert_int_equal (fs_write_file_atomic_at (s->rootfd, rec, "garbage", 7, 0600, &err), 0);
  assert_true (store_has_blob (s, d));
  /* the second name writes it, and the record is gone */
  assert_int_equal (unlinkat (s->rootfd, rec, 0), 0);
  fd = openat (g_dirfd, "old-layout-blob", O_WRONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, "EVIL", 4, 0), 4);
  close (fd);
  assert_false (store_has_blob (s, d));
  assert_true (fstatat (s->rootfd, brel, &st, 0) < 0 && errno == ENOENT);
  unlinkat (g_dirfd, "old-layout-blob", 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_roundtrip),
    cmocka_unit_test (test_rejects),
    cmocka_unit_test (test_blob_link_out),
    cmocka_unit_test (test_layer_relink),
    cmocka_unit_test (test_layer_many),
    cmocka_unit_test (test_blob_unrecorded),
    cmocka_unit_test (test_own_relinks),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
