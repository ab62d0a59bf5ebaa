/* test_squash.c - merging store layers into one change list: hardlinks
 * (many of them: the target lookup must not be a scan per link) whose
 * targets a newer layer hides become regular files with their data; the
 * others stay links; whiteouts and replaced files hide older entries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "build/squash.h"
#include "helpers/testutil.h"
#include "store/extract.h"
#include "store/layer_writer.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/fsutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/* Publish changes as a layer; its diff_id in diff (made up, unique per name). */
static void
publish (store *s, const char *name, const layer_change *ch, size_t n, char diff[DIGEST_STRING_SIZE])
{
  char blob[DIGEST_STRING_SIZE];
  autofree char *b = xasprintf ("blob-%s", name);
  digest_buffer (name, strlen (name), diff);
  digest_buffer (b, strlen (b), blob);
  autoerror kiln_error *err = NULL;
  assert_ok (extract_from_changes (s, ch, n, NULL, diff, blob, &err), err);
}

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* N files a/fNNNNN and N links b/lNNNNN to them in the older layer; the
 * newer layer deletes every 4th file, replaces a/f00001 and adds a file with
 * a link of its own. N: 5000, or $KILN_TEST_SQUASH_LINKS (up to 99999; the
 * figures in bench/results/tidy.md use 20000). */
static void
test_many_hardlinks (void **state)
{
  (void) state;
  const char *env = getenv ("KILN_TEST_SQUASH_LINKS");
  size_t N = env && *env ? strtoul (env, NULL, 10) : 5000;
  assert_true (N >= 8 && N <= 99999);
  autofree char *root = xasprintf ("%s/store", g_dir);
  autostore store *s = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (store_open (root, 0, &s, &err), err);
  autofree char *data = NULL;
  autoclose int datafd = -1;
  assert_ok (fs_mkdtemp_at (g_dirfd, "data-", &data, &datafd, &err), err);
  test_write_file (datafd, "new", "replaced");

  layer_change *old = xcalloc (2 * N + 2, sizeof *old);
  char **strs = xcalloc (3 * N + 1, sizeof *strs);
  size_t n = 0, ns = 0;
  old[n++] = (layer_change) { .path = "a", .kind = LAYER_CHANGE_ADD, .meta = { .type = LAYER_INDEX_DIR, .mode = 0755 } };
  old[n++] = (layer_change) { .path = "b", .kind = LAYER_CHANGE_ADD, .meta = { .type = LAYER_INDEX_DIR, .mode = 0755 } };
  for (size_t i = 0; i < N; i++)
    {
      char *f = strs[ns++] = xasprintf ("a/f%05zu", i);
      char *d = strs[ns++] = xasprintf ("d%05zu", i);
      test_write_file (datafd, d, f);
      old[n++] = (layer_change) { .path = f, .kind = LAYER_CHANGE_ADD,
                                  .meta = { .type = LAYER_INDEX_REG, .mode = 0644 }, .data_dirfd = datafd,
                                  .data_path = d };
    }
  for (size_t i = 0; i < N; i++)
    old[n++] = (layer_change) { .path = strs[ns++] = xasprintf ("b/l%05zu", i), .kind = LAYER_CHANGE_ADD,
                                .meta = { .type = LAYER_INDEX_REG, .mode = 0644 }, .hardlink_target = strs[2 * i] };
  char d0[DIGEST_STRING_SIZE], d1[DIGEST_STRING_SIZE];
  publish (s, "old", old, n, d0);

  layer_change *newer = xcalloc (N / 4 + 4, sizeof *newer);
  size_t m = 0;
  for (size_t i = 0; i < N; i += 4)
    newer[m++] = (layer_change) { .path = strs[2 * i], .kind = LAYER_CHANGE_WHITEOUT };
  newer[m++] = (layer_change) { .path = "a/f00001", .kind = LAYER_CHANGE_ADD,
                                .meta = { .type = LAYER_INDEX_REG, .mode = 0600 }, .data_dirfd = datafd,
                                .data_path = "new" };
  newer[m++] = (layer_change) { .path = "c", .kind = LAYER_CHANGE_ADD,
                                .meta = { .type = LAYER_INDEX_REG, .mode = 0600 }, .data_dirfd = datafd,
                                .data_path = "new" };
  newer[m++] = (layer_change) { .path = "d", .kind = LAYER_CHANGE_ADD,
                                .meta = { .type = LAYER_INDEX_REG, .mode = 0600 }, .hardlink_target = "c" };
  publish (s, "new", newer, m, d1);

  char *ids[] = { d0, d1, NULL };
  squash *q = NULL;
  double t0 = now ();
  assert_ok (squash_new (s, ids, 2, &q, &err), err);
  print_message ("# squash_new: %zu files, %zu hardlinks, %zu whiteouts: %.3f s\n", N, N + 1, N / 4,
                 now () - t0);
  size_t nc = 0;
  const layer_change *ch = squash_changes (q, &nc);
  size_t links = 0, files = 0, seen_d = 0, whiteouts = 0;
  for (size_t i = 0; i < nc; i++)
    {
      const layer_change *c = &ch[i];
      if (c->kind == LAYER_CHANGE_WHITEOUT)
        {
          whiteouts++;
          continue;
        }
      if (strcmp (c->path, "d") == 0)
        {
          seen_d++;
          assert_non_null (c->hardlink_target);
          assert_string_equal (c->hardlink_target, "c");
          continue;
        }
      if (strncmp (c->path, "b/l", 3) != 0)
        continue;
      size_t k = strtoul (c->path + 3, NULL, 10);
      bool hidden = k % 4 == 0 || k == 1;
      if (hidden)
        {
          /* a file of its own, with the old data */
          assert_null (c->hardlink_target);
          assert_non_null (c->data_path);
          autofree char *got = NULL;
          size_t len = 0;
          assert_ok (fs_read_file_at (c->data_dirfd, c->data_path, 64, &got, &len, &err), err);
          char want[32];
          snprintf (want, sizeof want, "a/f%05zu", k);
          assert_int_equal (len, strlen (want));
          assert_memory_equal (got, want, len);
          files++;
        }
      else
        {
          assert_non_null (c->hardlink_target);
          char want[32];
          snprintf (want, sizeof want, "a/f%05zu", k);
          assert_string_equal (c->hardlink_target, want);
          links++;
        }
    }
  assert_int_equal (seen_d, 1);
  assert_int_equal (whiteouts, N / 4);
  assert_int_equal (files, N / 4 + 1);
  assert_int_equal (links, N - N / 4 - 1);
  squash_free (q);
  for (size_t i = 0; i < ns; i++)
    free (strs[i]);
  free (strs);
  free (old);
  free (newer);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_many_hardlinks),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
