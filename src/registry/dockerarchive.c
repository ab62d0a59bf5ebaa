/* dockerarchive.c - docker-archive writer (see dockerarchive.h). */
#include "registry/dockerarchive.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/manifest.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/json.h"

static int
add_entry (struct archive *a, const char *name, int64_t size, kiln_error **err)
{
  struct archive_entry *e = archive_entry_new ();
  archive_entry_set_pathname (e, name);
  archive_entry_set_size (e, size);
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0644);
  archive_entry_set_mtime (e, 0, 0);
  int r = archive_write_header (a, e);
  archive_entry_free (e);
  if (r != ARCHIVE_OK)
    return kiln_error_make (err, 0, "writing '%s': %s", name, archive_error_string (a));
  return 0;
}

static int
add_buffer (struct archive *a, const char *name, const char *data, size_t len, kiln_error **err)
{
  if (add_entry (a, name, (int64_t) len, err) < 0)
    return -1;
  if (len && archive_write_data (a, data, len) != (la_ssize_t) len)
    return kiln_error_make (err, 0, "writing '%s': %s", name, archive_error_string (a));
  return 0;
}

static int
add_blob (struct archive *a, ocilayout *l, const char *digest, int64_t size, const char *name, kiln_error **err)
{
  int fd = -1;
  int64_t have;
  if (ocilayout_open_blob (l, digest, &fd, &have, err) < 0)
    return -1;
  int ret = 0;
  if (have != size)
    ret = kiln_error_make (err, 0, "blob %s is %lld bytes, the manifest says %lld", digest, (long long) have,
                           (long long) size);
  else if ((ret = add_entry (a, name, size, err)) == 0)
    {
      autodigest digest_ctx *d = digest_new ();
      char buf[65536];
      for (;;)
        {
          ssize_t n = read (fd, buf, sizeof buf);
          if (n < 0 && errno == EINTR)
            continue;
          if (n < 0)
            {
              ret = kiln_error_make (err, errno, "reading blob %s", digest);
              break;
            }
          if (n == 0)
            break;
          digest_update (d, buf, (size_t) n);
          if (archive_write_data (a, buf, (size_t) n) != n)
            {
              ret = kiln_error_make (err, 0, "writing '%s': %s", name, archive_error_string (a));
              break;
            }
        }
      if (ret == 0 && digest_verify (d, digest, err) < 0)
        ret = -1;
    }
  close (fd);
  return ret;
}

static int
write_archive (struct archive *a, ocilayout *l, const manifest *m, const char *config, size_t config_len,
               const char *repo_tag, kiln_error **err)
{
  autofree char *config_name = xasprintf ("%s.json", digest_hex (m->config.digest));
  if (add_buffer (a, config_name, config, config_len, err) < 0)
    return -1;
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_begin_array (w);
  json_writer_begin_object (w);
  json_writer_kv_string (w, "Config", config_name);
  json_writer_key (w, "RepoTags");
  json_writer_begin_array (w);
  if (repo_tag)
    json_writer_string (w, repo_tag);
  json_writer_end_array (w);
  json_writer_key (w, "Layers");
  json_writer_begin_array (w);
  for (size_t i = 0; i < m->n_layers; i++)
    {
      autofree char *name = xasprintf ("%s.tar", digest_hex (m->layers[i].digest));
      json_writer_string (w, name);
      /* The same blob twice in one image is stored once. */
      bool dup = false;
      for (size_t j = 0; j < i; j++)
        dup = dup || strcmp (m->layers[j].digest, m->layers[i].digest) == 0;
      if (!dup && add_blob (a, l, m->layers[i].digest, m->layers[i].size, name, err) < 0)
        return -1;
    }
  json_writer_end_array (w);
  json_writer_end_object (w);
  json_writer_end_array (w);
  autofree char *mj = NULL;
  size_t mj_len = 0;
  if (json_writer_finish (w, &mj, &mj_len, err) < 0 || add_buffer (a, "manifest.json", mj, mj_len, err) < 0)
    return -1;
  if (repo_tag && m->n_layers > 0)
    {
      /* "repositories": {"name": {"tag": "<top layer id>"}} for old docker load. */
      const char *colon = strrchr (repo_tag, ':');
      autofree char *name = colon ? xstrndup (repo_tag, (size_t) (colon - repo_tag)) : xstrdup (repo_tag);
      autojsonwriter json_writer *rw = json_writer_new ();
      json_writer_begin_object (rw);
      json_writer_key (rw, name);
      json_writer_begin_object (rw);
      json_writer_kv_string (rw, colon ? colon + 1 : "latest", digest_hex (m->layers[m->n_layers - 1].digest));
      json_writer_end_object (rw);
      json_writer_end_object (rw);
      autofree char *rj = NULL;
      size_t rj_len = 0;
      if (json_writer_finish (rw, &rj, &rj_len, err) < 0 || add_buffer (a, "repositories", rj, rj_len, err) < 0)
        return -1;
    }
  return 0;
}

int
dockerarchive_write (ocilayout *l, const char *tag, const char *repo_tag, const char *path, kiln_error **err)
{
  autofree char *mt = NULL, *mdigest = NULL;
  int64_t msize;
  if (ocilayout_resolve (l, tag, &mt, &mdigest, &msize, err) < 0)
    return -1;
  autofree char *mdata = NULL;
  size_t mlen = 0;
  if (ocilayout_read_blob (l, mdigest, REGISTRY_MANIFEST_MAX_SIZE, &mdata, &mlen, err) < 0)
    return -1;
  automanifest manifest *m = NULL;
  if (manifest_parse (mdata, mlen, mt, &m, err) < 0)
    return -1;
  if (manifest_kind_is_index (m->kind))
    return kiln_error_make (err, 0, "docker archive: '%s' is an index; select one platform", tag ? tag : "image");
  autofree char *config = NULL;
  size_t config_len = 0;
  if (ocilayout_read_blob (l, m->config.digest, JSON_DEFAULT_MAX_SIZE, &config, &config_len, err) < 0)
    return -1;

  autofree char *tmp = xasprintf ("%s.tmp-XXXXXX", path);
  int fd = mkostemp (tmp, O_CLOEXEC);
  if (fd < 0)
    return kiln_error_make (err, errno, "create '%s'", tmp);
  (void) fchmod (fd, 0644);
  struct archive *a = archive_write_new ();
  archive_write_set_format_pax_restricted (a);
  int ret = 0;
  if (archive_write_open_fd (a, fd) != ARCHIVE_OK)
    ret = kiln_error_make (err, 0, "writing '%s': %s", path, archive_error_string (a));
  else
    ret = write_archive (a, l, m, config, config_len, repo_tag, err);
  if (archive_write_close (a) != ARCHIVE_OK && ret == 0)
    ret = kiln_error_make (err, 0, "writing '%s': %s", path, archive_error_string (a));
  archive_write_free (a);
  if (ret == 0 && fsync (fd) < 0)
    ret = kiln_error_make (err, errno, "fsync '%s'", tmp);
  close (fd);
  if (ret == 0 && rename (tmp, path) < 0)
    ret = kiln_error_make (err, errno, "rename '%s' to '%s'", tmp, path);
  if (ret < 0)
    {
      unlink (tmp);
      return kiln_error_wrap (err, "docker archive '%s'", path);
    }
  return 0;
}
