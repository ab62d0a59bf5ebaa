/* test_fetch.c - store_fetch_image against a real docker-registry on
 * 127.0.0.1 (started here; skipped when it is not installed), plus the
 * store's streaming blob writer, refs and push source.
 *
 * The test images are made here with tar/gzip/zstd, their blobs put into a
 * source store (store_blob_tmpfile/adopt) and pushed with
 * registry_push_image from store_push_source, then fetched into fresh
 * stores: cold, warm, from a stored blob, two at once, with a config whose
 * diffIDs lie, and with a blob corrupted in the registry's storage. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers/testutil.h"
#include "registry/client.h"
#include "registry/manifest.h"
#include "registry/push.h"
#include "registry/reference.h"
#include "store/fetch.h"
#include "store/image.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *g_dir;
static int g_dirfd = -1;
static pid_t g_reg_pid = -1;
static char g_reg_addr[64];
static char *g_reg_data; /* registry storage root */
static bool g_have_zstd;
static size_t g_last_manifest_len; /* of the last push_image */

/* ---- helpers -------------------------------------------------------------- */

static void
sh (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  autofree char *cmd = xvasprintf (fmt, ap);
  va_end (ap);
  if (system (cmd) != 0)
    fail_msg ("command failed: %s", cmd);
}

static void
file_digest (const char *path, char out[DIGEST_STRING_SIZE], int64_t *size)
{
  autoclose int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail_msg ("open '%s'", path);
  autoerror kiln_error *err = NULL;
  uint64_t n;
  assert_ok (digest_fd (fd, out, &n, &err), err);
  if (size)
    *size = (int64_t) n;
}

static int
count_entries (const char *path)
{
  DIR *d = opendir (path);
  if (d == NULL)
    return errno == ENOENT ? 0 : -1;
  int n = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      n++;
  closedir (d);
  return n;
}

static int
start_registry (void)
{
  autofree char *rdir = xasprintf ("%s/registry", g_dir);
  g_reg_data = xasprintf ("%s/data", rdir);
  sh ("mkdir -p '%s'", g_reg_data);
  autofree char *cfg = xasprintf ("%s/config.yml", rdir);
  autofree char *logp = xasprintf ("%s/log", rdir);
  FILE *f = fopen (cfg, "w");
  assert_non_null (f);
  fprintf (f,
           "version: 0.1\nlog:\n  level: info\n  formatter: text\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
           "  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n  secret: kiln-unit-test\n",
           g_reg_data);
  fclose (f);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      prctl (PR_SET_PDEATHSIG, SIGKILL);
      int lfd = open (logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (lfd < 0)
        _exit (127);
      dup2 (lfd, 1);
      dup2 (lfd, 2);
      int nfd = open ("/dev/null", O_RDONLY);
      dup2 (nfd, 0);
      const char *path = getenv ("PATH");
      autofree char *penv = xasprintf ("PATH=%s", path ? path : "/usr/bin:/bin");
      char *envp[] = { penv, NULL };
      execle ("/usr/bin/docker-registry", "docker-registry", "serve", cfg, (char *) NULL, envp);
      _exit (127);
    }
  g_reg_pid = pid;
  for (int i = 0; i < 400; i++)
    {
      autofree char *buf = NULL;
      size_t len;
      autoerror kiln_error *err = NULL;
      if (fs_read_file_at (AT_FDCWD, logp, 1 << 20, &buf, &len, &err) == 0)
        {
          const char *p = strstr (buf, "listening on 127.0.0.1:");
          if (p)
            {
              p += strlen ("listening on ");
              size_t n = strspn (p, "0123456789.:");
              snprintf (g_reg_addr, sizeof g_reg_addr, "%.*s", (int) n, p);
              return 0;
            }
        }
      int st;
      if (waitpid (pid, &st, WNOHANG) == pid)
        {
          g_reg_pid = -1;
          fail_msg ("docker-registry exited at start-up (log '%s')", logp);
        }
      usleep (25000);
    }
  fail_msg ("docker-registry did not report its address (log '%s')", logp);
  return -1;
}

static void
stop_registry (void)
{
  if (g_reg_pid > 0)
    {
      kill (g_reg_pid, SIGKILL);
      waitpid (g_reg_pid, NULL, 0);
      g_reg_pid = -1;
    }
}

static registry_client *
client_new (void)
{
  char *ins[] = { g_reg_addr, NULL };
  registry_options o = { .insecure_registries = ins, .retries = 1 };
  registry_client *c = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (registry_client_new (&o, g_reg_addr, &c, &err), err);
  return c;
}

static store *
store_at (const char *name)
{
  autofree char *root = xasprintf ("%s/%s", g_dir, name);
  store *s = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (store_open (root, 0, &s, &err), err);
  return s;
}

static registry_ref *
ref_for (const char *repo_tag)
{
  autofree char *full = xasprintf ("%s/%s", g_reg_addr, repo_tag);
  registry_ref *r = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (registry_ref_parse (full, &r, &err), err);
  return r;
}

/* ---- test images ------------------------------------------------------------ */

typedef struct test_layer
{
  const char *file;     /* blob file below g_dir/img */
  const char *media;
  char digest[DIGEST_STRING_SIZE];
  char diff_id[DIGEST_STRING_SIZE];
  int64_t size;
} test_layer;

static test_layer g_layers[5] = {
  { "l1.tar.gz", MEDIA_OCI_LAYER_GZIP, "", "", 0 },
  { "l2.tar.zst", MEDIA_OCI_LAYER_ZSTD, "", "", 0 },
  { "l3.tar", MEDIA_OCI_LAYER, "", "", 0 },
  { "l4.tar.gz", MEDIA_OCI_LAYER_GZIP, "", "", 0 }, /* only in test/corrupt */
  { "l5.tar.gz", MEDIA_OCI_LAYER_GZIP, "", "", 0 }, /* only in test/hostile */
};

/* Put a file into the source store through the tmpfile/adopt API. */
static void
put_blob_file (store *src, const char *path, const char *digest)
{
  int fd;
  autofree char *tmp = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (store_blob_tmpfile (src, &fd, &tmp, &err), err);
  autoclose int in = open (path, O_RDONLY | O_CLOEXEC);
  assert_true (in >= 0);
  assert_ok (fs_copy_fd (in, fd, UINT64_MAX, NULL, &err), err);
  close (fd);
  assert_ok (store_blob_adopt (src, tmp, digest, &err), err);
}

/* Push an image of layers idx[0..n) with config diff_ids as given (NULL:
 * the true ones) as repo:v1; returns the manifest digest in out. */
static void
push_image (store *src, const char *repo, const size_t *idx, size_t n, const char *const *fake_diff_ids,
            char out[DIGEST_STRING_SIZE])
{
  autoerror kiln_error *err = NULL;
  image_spec spec;
  image_spec_init (&spec);
  const char *os, *arch, *variant;
  platform_host (&os, &arch, &variant);
  spec.os = xstrdup (os);
  spec.architecture = xstrdup (arch);
  spec.variant = variant ? xstrdup (variant) : NULL;
  image_descriptor descs[5];
  for (size_t i = 0; i < n; i++)
    {
      test_layer *l = &g_layers[idx[i]];
      strv_push (&spec.diff_ids, fake_diff_ids && fake_diff_ids[i] ? fake_diff_ids[i] : l->diff_id);
      image_spec_add_history (&spec, 0, "test layer", NULL, false);
      descs[i] = (image_descriptor) { l->media, l->digest, l->size };
      autofree char *p = xasprintf ("%s/img/%s", g_dir, l->file);
      if (!store_has_blob (src, l->digest))
        put_blob_file (src, p, l->digest);
    }
  autofree char *cfg = NULL;
  size_t cfg_len;
  assert_ok (image_config_json (&spec, &cfg, &cfg_len, &err), err);
  image_spec_free (&spec);
  char cfg_digest[DIGEST_STRING_SIZE];
  digest_buffer (cfg, cfg_len, cfg_digest);
  assert_ok (store_put_blob (src, cfg_digest, cfg, cfg_len, &err), err);
  autofree char *man = NULL;
  size_t man_len;
  assert_ok (image_manifest_json (IMAGE_FORMAT_OCI, cfg_digest, (int64_t) cfg_len, descs, n, &man, &man_len, &err),
             err);
  char *tags[] = { (char *) "v1", NULL };
  g_last_manifest_len = man_len;
  registry_client *c = client_new ();
  int r = registry_push_image (c, repo, tags, man, man_len, image_manifest_media_type (IMAGE_FORMAT_OCI),
                               store_push_source (), src, NULL, out, &err);
  registry_client_free (c);
  assert_ok (r, err);
}

static char g_good[DIGEST_STRING_SIZE];

static int
setup (void **state)
{
  (void) state;
  log_setup (LOG_LEVEL_WARN, LOG_FORMAT_TEXT, false, stderr);
  g_dir = test_mkdtemp (&g_dirfd);
  if (access ("/usr/bin/docker-registry", X_OK) != 0)
    return 0; /* every test skips */
  g_have_zstd = system ("command -v zstd >/dev/null 2>&1") == 0;
  if (!g_have_zstd)
    {
      g_layers[1].file = "l2.tar.gz";
      g_layers[1].media = MEDIA_OCI_LAYER_GZIP;
    }
  /* l1: > FEED_CAPACITY of incompressible data so the download side blocks
   * on a full queue; l2: a whiteout, a symlink and an empty file; l3: plain
   * tar; l4: its own random data (corrupted in the registry later). */
  sh ("set -e; d='%s/img'; mkdir -p $d/r1/etc $d/r1/bin $d/r2/etc $d/r3/usr/share $d/r4;"
      "echo hello > $d/r1/etc/hello; ln -s hello $d/r1/etc/link;"
      "head -c 6000000 /dev/urandom > $d/r1/bin/big; chmod 4755 $d/r1/bin/big;"
      "touch $d/r2/etc/.wh.hello $d/r2/etc/empty; ln -s /etc/empty $d/r2/abs;"
      "for i in $(seq 1 50); do echo $i > $d/r3/usr/share/f$i; done;"
      "head -c 3000000 /dev/urandom > $d/r4/rand;"
      "for i in 1 2 3 4; do tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C $d/r$i -cf $d/l$i.tar .; done;"
      "gzip -n -c $d/l1.tar > $d/l1.tar.gz; gzip -n -c $d/l4.tar > $d/l4.tar.gz;"
      "if [ %d = 1 ]; then zstd -q -o $d/l2.tar.zst $d/l2.tar; else gzip -n -c $d/l2.tar > $d/l2.tar.gz; fi;"
      /* l5: a member escaping with '..' early, then 8 MB more, so the
       * extractor fails while the download is still going. */
      "python3 -c 'import io,os,sys,tarfile\n"
      "t=tarfile.open(sys.argv[1],\"w\",format=tarfile.PAX_FORMAT)\n"
      "for n,b in ((\"ok\",b\"fine\"),(\"a/../../evil\",b\"x\"),(\"big\",os.urandom(8000000))):\n"
      " i=tarfile.TarInfo(n); i.size=len(b); t.addfile(i,io.BytesIO(b))\n"
      "t.close()' $d/l5.tar; gzip -n -c $d/l5.tar > $d/l5.tar.gz",
      g_dir, g_have_zstd ? 1 : 0);
  for (size_t i = 0; i < 5; i++)
    {
      autofree char *blob = xasprintf ("%s/img/%s", g_dir, g_layers[i].file);
      autofree char *tar = xasprintf ("%s/img/l%zu.tar", g_dir, i + 1);
      file_digest (blob, g_layers[i].digest, &g_layers[i].size);
      file_digest (tar, g_layers[i].diff_id, NULL);
    }
  start_registry ();
  store *src = store_at ("src");
  size_t good[] = { 0, 1, 2 };
  push_image (src, "test/img", good, 3, NULL, g_good);
  /* An index over it: the host platform and another one (same manifest),
   * in a repository that has the manifest (tag v1 is then moved). */
  char again[DIGEST_STRING_SIZE];
  push_image (src, "test/multi", good, 3, NULL, again);
  assert_string_equal (again, g_good);
  const char *os, *arch, *variant;
  platform_host (&os, &arch, &variant);
  autofree char *idx = xasprintf (
    "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":["
    "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"os\":\"linux\",\"architecture\":\"%s\"}},"
    "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"os\":\"%s\",\"architecture\":\"%s\"%s%s%s}}]}",
    MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, g_good, g_last_manifest_len, strcmp (arch, "s390x") ? "s390x" : "amd64",
    MEDIA_OCI_MANIFEST, g_good, g_last_manifest_len, os, arch, variant ? ",\"variant\":\"" : "",
    variant ? variant : "", variant ? "\"" : "");
  registry_client *c = client_new ();
  autoerror kiln_error *err = NULL;
  int r = registry_put_manifest (c, "test/multi", "v1", idx, strlen (idx), MEDIA_OCI_INDEX, &err);
  registry_client_free (c);
  assert_ok (r, err);
  store_close (src);
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  stop_registry ();
  close (g_dirfd);
  test_rmtree (g_dir);
  free (g_dir);
  free (g_reg_data);
  return 0;
}

#define REQUIRE_REGISTRY()                                              \
  do                                                                    \
    {                                                                   \
      if (g_reg_pid <= 0)                                               \
        test_skip ("docker-registry is not installed");                 \
    }                                                                   \
  while (0)

static void
assert_tmp_empty (store *s)
{
  autofree char *p = xasprintf ("%s/tmp", s->root);
  assert_int_equal (count_entries (p), 0);
}

static void
assert_layer_matches_tar (store *s, const char *diff_id)
{
  /* The extracted tree holds the tar's regular files with their content. */
  int tfd = -1;
  layer_index *ix = NULL;
  autoerror kiln_error *err = NULL;
  assert_ok (store_open_layer (s, diff_id, &tfd, &ix, &err), err);
  assert_true (layer_index_count (ix) > 1);
  layer_index_close (ix);
  close (tfd);
}

/* ---- tests --------------------------------------------------------------- */

static void
test_blob_writer (void **state)
{
  (void) state;
  autostore store *s = store_at ("bw");
  autoerror kiln_error *err = NULL;
  store_blob_writer *w = NULL;
  char d[DIGEST_STRING_SIZE], want[DIGEST_STRING_SIZE];
  digest_buffer ("hello world", 11, want);
  /* Commit with the right digest, in two writes. */
  assert_ok (store_blob_begin (s, &w, &err), err);
  assert_ok (store_blob_write (w, "hello ", 6, &err), err);
  assert_ok (store_blob_write (w, "world", 5, &err), err);
  assert_int_equal (store_blob_written (w), 11);
  assert_ok (store_blob_commit (w, want, d, &err), err);
  assert_string_equal (d, want);
  assert_true (store_has_blob (s, want));
  int64_t size = 0;
  assert_int_equal (store_blob_size (s, want, &size, &err), 1);
  assert_int_equal (size, 11);
  assert_tmp_empty (s);
  /* A mismatch stores nothing and leaves no temp file. */
  assert_ok (store_blob_begin (s, &w, &err), err);
  assert_ok (store_blob_write (w, "other", 5, &err), err);
  char other[DIGEST_STRING_SIZE];
  digest_buffer ("different", 9, other);
  assert_true (store_blob_commit (w, other, NULL, &err) < 0);
  assert_true (test_err_contains (err, "expected"));
  kiln_error_clear (&err);
  assert_false (store_has_blob (s, other));
  assert_tmp_empty (s);
  /* Abort. */
  assert_ok (store_blob_begin (s, &w, &err), err);
  assert_ok (store_blob_write (w, "x", 1, &err), err);
  store_blob_abort (w);
  assert_tmp_empty (s);
  /* tmpfile + adopt, good and bad digest. */
  int fd;
  autofree char *tmp = NULL;
  assert_ok (store_blob_tmpfile (s, &fd, &tmp, &err), err);
  assert_ok (fs_write_all (fd, "abc", 3, &err), err);
  close (fd);
  assert_true (store_blob_adopt (s, tmp, want, &err) < 0);
  assert_true (test_err_contains (err, "hashes to"));
  kiln_error_clear (&err);
  assert_tmp_empty (s);
  free (steal_pointer (&tmp));
  assert_ok (store_blob_tmpfile (s, &fd, &tmp, &err), err);
  assert_ok (fs_write_all (fd, "abc", 3, &err), err);
  close (fd);
  char abc[DIGEST_STRING_SIZE];
  digest_buffer ("abc", 3, abc);
  assert_ok (store_blob_adopt (s, tmp, abc, &err), err);
  assert_true (store_has_blob (s, abc));
  free (steal_pointer (&tmp));
  assert_ok (store_blob_tmpfile (s, &fd, &tmp, &err), err);
  close (fd);
  store_blob_discard (s, tmp);
  assert_tmp_empty (s);
  /* Push source over the store. */
  int bfd;
  assert_ok (store_push_source ()->open_blob (s, abc, &bfd, &size, &err), err);
  assert_int_equal (size, 3);
  close (bfd);
  assert_true (store_push_source ()->open_blob (s, other, &bfd, &size, &err) < 0);
  kiln_error_clear (&err);
  /* Refs. */
  assert_int_equal (store_get_ref (s, "image/x:y@linux/amd64", d, &err), 0);
  assert_ok (store_set_ref (s, "image/x:y@linux/amd64", abc, &err), err);
  assert_int_equal (store_get_ref (s, "image/x:y@linux/amd64", d, &err), 1);
  assert_string_equal (d, abc);
}

static void
test_fetch_cold_warm (void **state)
{
  (void) state;
  REQUIRE_REGISTRY ();
  autostore store *s = store_at ("cw");
  autoref registry_ref *ref = ref_for ("test/img:v1");
  autoclient registry_client *c = client_new ();
  autoerror kiln_error *err = NULL;
  store_fetch_result r;
  assert_ok (store_fetch_image (s, c, ref, NULL, NULL, NULL, &r, &err), err);
  assert_string_equal (r.manifest_digest, g_good);
  assert_string_equal (r.manifest_media_type, MEDIA_OCI_MANIFEST);
  assert_string_equal (r.index_digest, "");
  assert_int_equal (r.n_layers, 3);
  char md[DIGEST_STRING_SIZE];
  digest_buffer (r.manifest, r.manifest_len, md);
  assert_string_equal (md, g_good);
  char cd[DIGEST_STRING_SIZE];
  digest_buffer (r.config, r.config_len, cd);
  assert_string_equal (cd, r.config_digest);
  assert_true (store_has_blob (s, r.config_digest));
  assert_true (store_has_blob (s, r.manifest_digest));
  uint64_t want_bytes = (uint64_t) r.config_len;
  for (size_t i = 0; i < 3; i++)
    {
      assert_string_equal (r.layers[i].digest, g_layers[i].digest);
      assert_string_equal (r.layers[i].diff_id, g_layers[i].diff_id);
      assert_string_equal (r.layers[i].media_type, g_layers[i].media);
      assert_int_equal (r.layers[i].size, g_layers[i].size);
      assert_int_equal (r.layers[i].how, STORE_FETCH_DOWNLOADED);
      assert_true (r.layers[i].extracted);
      assert_true (store_has_blob (s, g_layers[i].digest));
      assert_true (store_has_layer (s, g_layers[i].diff_id));
      assert_layer_matches_tar (s, g_layers[i].diff_id);
      /* The kept blob is byte-identical to what was pushed. */
      char got[DIGEST_STRING_SIZE];
      autofree char *p = xasprintf ("%s/blobs/sha256/%s", s->root, digest_hex (g_layers[i].digest));
      file_digest (p, got, NULL);
      assert_string_equal (got, g_layers[i].digest);
      want_bytes += (uint64_t) g_layers[i].size;
    }
  assert_int_equal (r.bytes_downloaded, want_bytes);
  const char *os, *arch, *variant;
  platform_host (&os, &arch, &variant);
  assert_string_equal (r.os, os);
  assert_string_equal (r.arch, arch);
  autofree char *refname = store_fetch_ref_name (ref, NULL, NULL, NULL);
  assert_string_equal (r.ref_name, refname);
  char rd[DIGEST_STRING_SIZE];
  assert_int_equal (store_get_ref (s, refname, rd, &err), 1);
  assert_string_equal (rd, g_good);
  assert_tmp_empty (s);
  store_fetch_result_clear (&r);

  /* Warm: nothing downloaded, every layer cached. */
  assert_ok (store_fetch_image (s, c, ref, NULL, NULL, NULL, &r, &err), err);
  assert_int_equal (r.bytes_downloaded, 0);
  for (size_t i = 0; i < 3; i++)
    {
      assert_int_equal (r.layers[i].how, STORE_FETCH_CACHED);
      assert_false (r.layers[i].extracted);
      assert_string_equal (r.layers[i].diff_id, g_layers[i].diff_id);
    }
  store_fetch_result_clear (&r);

  /* Offline lookup gives the same image without a client. */
  assert_int_equal (store_image_lookup (s, ref, NULL, NULL, NULL, &r, &err), 1);
  assert_string_equal (r.manifest_digest, g_good);
  assert_int_equal (r.n_layers, 3);
  assert_string_equal (r.layers[2].diff_id, g_layers[2].diff_id);
  store_fetch_result_clear (&r);
  autoref registry_ref *other = ref_for ("test/img:nope");
  assert_int_equal (store_image_lookup (s, other, NULL, NULL, NULL, &r, &err), 0);

  /* A layer removed from layers/ but whose blob is kept is re-extracted
   * from the blob, without the network. */
  autofree char *lrel = xasprintf ("layers/sha256/%s", digest_hex (g_layers[1].diff_id));
  assert_ok (fs_rm_rf_at (s->rootfd, lrel, &err), err);
  assert_int_equal (store_image_lookup (s, ref, NULL, NULL, NULL, &r, &err), 0);
  assert_ok (store_fetch_image (s, c, ref, NULL, NULL, NULL, &r, &err), err);
  assert_int_equal (r.bytes_downloaded, 0);
  assert_int_equal (r.layers[1].how, STORE_FETCH_LOCAL_BLOB);
  assert_true (r.layers[1].extracted);
  assert_true (store_has_layer (s, g_layers[1].diff_id));
  store_fetch_result_clear (&r);

  /* A blob removed from blobs/ is downloaded again (the layer stays). */
  autofree char *brel = xasprintf ("blobs/sha256/%s", digest_hex (g_layers[0].digest));
  assert_int_equal (unlinkat (s->rootfd, brel, 0), 0);
  assert_ok (store_fetch_image (s, c, ref, NULL, NULL, NULL, &r, &err), err);
  assert_int_equal (r.layers[0].how, STORE_FETCH_DOWNLOADED);
  assert_false (r.layers[0].extracted);
  assert_int_equal (r.bytes_downloaded, (uint64_t) g_layers[0].size);
  assert_true (store_has_blob (s, g_layers[0].digest));
  assert_tmp_empty (s);
  store_fetch_result_clear (&r);

  /* A damaged stored blob whose layer is gone is not extracted: it is
   * dropped and downloaded again. */
  autofree char *lrel2 = xasprintf ("layers/sha256/%s", digest_hex (g_layers[2].diff_id));
  assert_ok (fs_rm_rf_at (s->rootfd, lrel2, &err), err);
  sh ("printf XXXX | dd of='%s/blobs/sha256/%s' bs=1 seek=600 conv=notrunc status=none", s->root,
      digest_hex (g_layers[2].digest));
  assert_ok (store_fetch_image (s, c, ref, NULL, NULL, NULL, &r, &err), err);
  assert_int_equal (r.layers[2].how, STORE_FETCH_DOWNLOADED);
  assert_true (r.layers[2].extracted);
  char got[DIGEST_STRING_SIZE];
  autofree char *bp = xasprintf ("%s/blobs/sha256/%s", s->root, digest_hex (g_layers[2].digest));
  file_digest (bp, got, NULL);
  assert_string_equal (got, g_layers[2].digest);
  assert_true (store_has_layer (s, g_layers[2].diff_id));
  store_fetch_result_clear (&r);
}

typedef struct par_arg
{
  const char *root;
  store_fetch_result r;
  int ret;
  char *msg;
} par_arg;

static void *
par_fetch (void *arg)
{
  par_arg *a = arg;
  store *s = NULL;
  kiln_error *err = NULL;
  registry_client *c = client_new ();
  registry_ref *ref = ref_for ("test/img:v1");
  a->ret = store_open (a->root, 0, &s, &err);
  if (a->ret >= 0)
    a->ret = store_fetch_image (s, c, ref, NULL, NULL, NULL, &a->r, &err);
  if (a->ret < 0)
    a->msg = xstrdup (err ? err->msg : "?");
  kiln_error_free (err);
  store_close (s);
  registry_ref_free (ref);
  registry_client_free (c);
  return NULL;
}

static void
test_fetch_concurrent (void **state)
{
  (void) state;
  REQUIRE_REGISTRY ();
  autofree char *root = xasprintf ("%s/par", g_dir);
  for (int round = 0; round < 3; round++)
    {
      sh ("rm -rf '%s'", root);
      par_arg a[2] = { { .root = root }, { .root = root } };
      pthread_t th[2];
      for (int i = 0; i < 2; i++)
        assert_int_equal (pthread_create (&th[i], NULL, par_fetch, &a[i]), 0);
      for (int i = 0; i < 2; i++)
        pthread_join (th[i], NULL);
      for (int i = 0; i < 2; i++)
        if (a[i].ret < 0)
          fail_msg ("concurrent fetch %d failed: %s", i, a[i].msg);
      /* Each layer extracted by exactly one of them. */
      for (size_t l = 0; l < 3; l++)
        assert_int_equal ((int) a[0].r.layers[l].extracted + (int) a[1].r.layers[l].extracted, 1);
      autofree char *lp = xasprintf ("%s/layers/sha256", root);
      assert_int_equal (count_entries (lp), 3);
      autofree char *tp = xasprintf ("%s/tmp", root);
      assert_int_equal (count_entries (tp), 0);
      for (int i = 0; i < 2; i++)
        store_fetch_result_clear (&a[i].r);
    }
}

/* Another holder of a layer's lock (an extraction elsewhere) does not
 * stall the download: the blob arrives in full, then the fetch waits for
 * the lock and, since the holder published nothing, extracts from the
 * complete temp blob. */
static void
test_fetch_lock_busy (void **state)
{
  (void) state;
  REQUIRE_REGISTRY ();
  autofree char *root = xasprintf ("%s/busy", g_dir);
  autostore store *s = store_at ("busy");
  autoerror kiln_error *err = NULL;
  int lock = store_lock_layer (s, g_layers[0].digest, &err);
  assert_ok (lock, err);
  par_arg a = { .root = root };
  pthread_t th;
  assert_int_equal (pthread_create (&th, NULL, par_fetch, &a), 0);
  /* Wait until the whole blob sits in tmp/ (the download was not held up
   * by the lock), then let go. */
  autofree char *tp = xasprintf ("%s/tmp", root);
  bool complete = false;
  for (int i = 0; i < 400 && !complete; i++)
    {
      DIR *d = opendir (tp);
      struct dirent *de;
      while (d && (de = readdir (d)) != NULL)
        {
          struct stat st;
          autofree char *p = xasprintf ("%s/%s", tp, de->d_name);
          if (strncmp (de->d_name, "blob-", 5) == 0 && stat (p, &st) == 0 && st.st_size == g_layers[0].size)
            complete = true;
        }
      if (d)
        closedir (d);
      usleep (25000);
    }
  assert_false (store_has_layer (s, g_layers[0].diff_id));
  close (lock);
  pthread_join (th, NULL);
  if (a.ret < 0)
    fail_msg ("fetch failed: %s", a.msg);
  assert_true (complete);
  assert_int_equal (a.r.layers[0].how, STORE_FETCH_DOWNLOADED);
  assert_true (a.r.layers[0].extracted);
  assert_true (store_has_layer (s, g_layers[0].diff_id));
  assert_true (store_has_blob (s, g_layers[0].digest));
  assert_tmp_empty (s);
  store_fetch_result_clear (&a.r);
}

static void
test_fetch_index (void **state)
{
  (void) state;
  REQUIRE_REGISTRY ();
  autostore store *s = store_at ("multi");
  autoref registry_ref *ref = ref_for ("test/multi:v1");
  autoclient registry_client *c = client_new ();
  autoerror kiln_error *err = NULL;
  store_fetch_result r;
  const char *os, *arch, *variant;
  platform_host (&os, &arch, &variant);
  const char *other = strcmp (arch, "s390x") ? "s390x" : "amd64";
  /* Host platform by default. */
  assert_ok (store_fetch_image (s, c, ref, NULL, NULL, NULL, &r, &err), err);
  assert_string_equal (r.manifest_digest, g_good);
  assert_true (r.index_digest[0] != '\0');
  assert_true (store_has_blob (s, r.index_digest));
  autofree char *host_ref = store_fetch_ref_name (ref, NULL, NULL, NULL);
  assert_string_equal (r.ref_name, host_ref);
  assert_int_equal (r.n_layers, 3);
  store_fetch_result_clear (&r);
  /* Another platform from the index: recorded under its own name, all
   * layers cached (same manifest). */
  assert_ok (store_fetch_image (s, c, ref, "linux", other, NULL, &r, &err), err);
  autofree char *want = xasprintf ("image/%s/test/multi:v1@linux/%s", g_reg_addr, other);
  assert_string_equal (r.ref_name, want);
  assert_int_equal (r.bytes_downloaded, 0);
  store_fetch_result_clear (&r);
  assert_int_equal (store_image_lookup (s, ref, "linux", other, NULL, &r, &err), 1);
  store_fetch_result_clear (&r);
  /* A platform the index does not offer: the error lists what it has. */
  assert_true (store_fetch_image (s, c, ref, "windows", "arm", "v5", &r, &err) < 0);
  print_message ("# expected error: %s\n", err->msg);
  assert_true (test_err_contains (err, other));
}

static void
test_fetch_bad_diff_id (void **state)
{
  (void) state;
  REQUIRE_REGISTRY ();
  autostore store *src = store_at ("src");
  size_t idx[] = { 0, 1, 2 };
  const char *fake[] = { NULL, "sha256:1111111111111111111111111111111111111111111111111111111111111111", NULL };
  char bad[DIGEST_STRING_SIZE];
  push_image (src, "test/bad", idx, 3, fake, bad);
  autostore store *s = store_at ("bad");
  autoref registry_ref *ref = ref_for ("test/bad:v1");
  autoclient registry_client *c = client_new ();
  autoerror kiln_error *err = NULL;
  store_fetch_result r;
  assert_true (store_fetch_image (s, c, ref, NULL, NULL, NULL, &r, &err) < 0);
  print_message ("# expected error: %s\n", err->msg);
  assert_true (test_err_contains (err, g_layers[1].digest));
  assert_true (test_err_contains (err, "diffID"));
  /* Nothing of the lying layer was kept. */
  assert_false (store_has_layer (s, g_layers[1].diff_id));
  assert_false (store_has_blob (s, g_layers[1].digest));
  char diff[DIGEST_STRING_SIZE];
  assert_int_equal (store_layer_for_blob (s, g_layers[1].digest, diff, &err), 0);
  assert_tmp_empty (s);
  autofree char *refname = store_fetch_ref_name (ref, NULL, NULL, NULL);
  assert_int_equal (store_get_ref (s, refname, diff, &err), 0);
  assert_int_equal (r.n_layers, 0);
  assert_null (r.config);
}

static void
test_fetch_corrupt_blob (void **state)
{
  (void) state;
  REQUIRE_REGISTRY ();
  autostore store *src = store_at ("src");
  size_t idx[] = { 3 };
  char dig[DIGEST_STRING_SIZE];
  push_image (src, "test/corrupt", idx, 1, NULL, dig);
  const char *hex = digest_hex (g_layers[3].digest);
  /* Same size, garbage in the middle: the registry serves it as is. */
  sh ("printf 'garbage-garbage-garbage' | dd of='%s/docker/registry/v2/blobs/sha256/%.2s/%s/data' bs=1 seek=1000000 "
      "conv=notrunc status=none",
      g_reg_data, hex, hex);
  autostore store *s = store_at ("corrupt");
  autoref registry_ref *ref = ref_for ("test/corrupt:v1");
  autoclient registry_client *c = client_new ();
  autoerror kiln_error *err = NULL;
  store_fetch_result r;
  assert_true (store_fetch_image (s, c, ref, NULL, NULL, NULL, &r, &err) < 0);
  print_message ("# expected error: %s\n", err->msg);
  assert_true (test_err_contains (err, g_layers[3].digest) || test_err_contains (err, hex));
  assert_false (store_has_blob (s, g_layers[3].digest));
  assert_false (store_has_layer (s, g_layers[3].diff_id));
  autofree char *lp = xasprintf ("%s/layers/sha256", s->root);
  assert_int_equal (count_entries (lp), 0);
  assert_tmp_empty (s);
}

static void
test_fetch_hostile_layer (void **state)
{
  (void) state;
  REQUIRE_REGISTRY ();
  autostore store *src = store_at ("src");
  size_t idx[] = { 0, 4 };
  char dig[DIGEST_STRING_SIZE];
  push_image (src, "test/hostile", idx, 2, NULL, dig);
  autostore store *s = store_at ("hostile");
  autoref registry_ref *ref = ref_for ("test/hostile:v1");
  autoclient registry_client *c = client_new ();
  autoerror kiln_error *err = NULL;
  store_fetch_result r;
  assert_true (store_fetch_image (s, c, ref, NULL, NULL, NULL, &r, &err) < 0);
  print_message ("# expected error: %s\n", err->msg);
  assert_true (test_err_contains (err, g_layers[4].digest));
  assert_true (test_err_contains (err, "evil"));
  assert_false (store_has_blob (s, g_layers[4].digest));
  assert_false (store_has_layer (s, g_layers[4].diff_id));
  char diff[DIGEST_STRING_SIZE];
  assert_int_equal (store_layer_for_blob (s, g_layers[4].digest, diff, &err), 0);
  assert_tmp_empty (s);
  /* Nothing escaped the store. */
  autofree char *evil = xasprintf ("%s/evil", g_dir);
  assert_int_equal (access (evil, F_OK), -1);
}

/* store_fetch_image_lazy: manifest and config only; the layers are
 * STORE_FETCH_LAZY with the config's diffIDs and nothing of them is in the
 * store; a later store_fetch_image by digest fetches exactly them. */
static void
test_fetch_lazy (void **state)
{
  (void) state;
  REQUIRE_REGISTRY ();
  autostore store *s = store_at ("lazy");
  autoref registry_ref *ref = ref_for ("test/img:v1");
  autoclient registry_client *c = client_new ();
  autoerror kiln_error *err = NULL;
  uint64_t n0, b0, n1, b1;
  store_fetch_downloaded (&n0, &b0);
  store_fetch_result r;
  assert_ok (store_fetch_image_lazy (s, c, ref, NULL, NULL, NULL, &r, &err), err);
  store_fetch_downloaded (&n1, &b1);
  assert_int_equal (n1, n0);
  assert_int_equal (b1, b0);
  assert_string_equal (r.manifest_digest, g_good);
  assert_true (store_has_blob (s, r.config_digest));
  assert_int_equal (r.bytes_downloaded, (uint64_t) r.config_len);
  assert_int_equal (r.n_layers, 3);
  for (size_t i = 0; i < 3; i++)
    {
      assert_int_equal (r.layers[i].how, STORE_FETCH_LAZY);
      assert_string_equal (r.layers[i].digest, g_layers[i].digest);
      assert_string_equal (r.layers[i].diff_id, g_layers[i].diff_id);
      assert_false (store_has_blob (s, g_layers[i].digest));
      assert_false (store_has_layer (s, g_layers[i].diff_id));
    }
  assert_tmp_empty (s);
  /* incomplete: an offline lookup does not hand it out */
  store_fetch_result o;
  assert_int_equal (store_image_lookup (s, ref, NULL, NULL, NULL, &o, &err), 0);
  /* by digest, eagerly: the layers come, verified and extracted */
  autofree char *pinned = xasprintf ("%s@%s", "test/img", r.manifest_digest);
  autoref registry_ref *dref = ref_for (pinned);
  store_fetch_result_clear (&r);
  assert_ok (store_fetch_image (s, c, dref, NULL, NULL, NULL, &r, &err), err);
  store_fetch_downloaded (&n1, &b1);
  assert_int_equal (n1, n0 + 3);
  for (size_t i = 0; i < 3; i++)
    {
      assert_int_equal (r.layers[i].how, STORE_FETCH_DOWNLOADED);
      assert_true (store_has_blob (s, g_layers[i].digest));
      assert_true (store_has_layer (s, g_layers[i].diff_id));
      assert_layer_matches_tar (s, g_layers[i].diff_id);
    }
  store_fetch_result_clear (&r);
  /* a lazy fetch of what the store has reports it as cached */
  assert_ok (store_fetch_image_lazy (s, c, ref, NULL, NULL, NULL, &r, &err), err);
  for (size_t i = 0; i < 3; i++)
    assert_int_equal (r.layers[i].how, STORE_FETCH_CACHED);
  store_fetch_result_clear (&r);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_blob_writer),
    cmocka_unit_test (test_fetch_cold_warm),
    cmocka_unit_test (test_fetch_lazy),
    cmocka_unit_test (test_fetch_concurrent),
    cmocka_unit_test (test_fetch_lock_busy),
    cmocka_unit_test (test_fetch_index),
    cmocka_unit_test (test_fetch_bad_diff_id),
    cmocka_unit_test (test_fetch_corrupt_blob),
    cmocka_unit_test (test_fetch_hostile_layer),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
