/* store.c - store layout, locks, temp dirs, atomic publication. */
#include "store/store.h"
#include "store/extract.h"
#include "store/links.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const store_dirs[] = {
  "blobs", "blobs/sha256", "layers", "layers/sha256", "diffids", "diffids/sha256", "locks", "tmp",
  "bloblinks", "bloblinks/sha256",
};

int
store_default_root (const char *root_opt, char **out, kiln_error **err)
{
  if (root_opt && *root_opt)
    {
      *out = xstrdup (root_opt);
      return 0;
    }
  const char *e = getenv ("KILN_ROOT");
  if (e && *e)
    {
      *out = xstrdup (e);
      return 0;
    }
  e = getenv ("XDG_DATA_HOME");
  if (e && *e == '/')
    {
      *out = xasprintf ("%s/kiln", e);
      return 0;
    }
  e = getenv ("HOME");
  if (e && *e == '/')
    {
      *out = xasprintf ("%s/.local/share/kiln", e);
      return 0;
    }
  return kiln_error_make (err, 0, "cannot choose a store directory: set --root, KILN_ROOT or HOME");
}

static int
lock_convert (int fd, short type, bool wait, kiln_error **err)
{
  struct flock fl = { .l_type = type, .l_whence = SEEK_SET };
  int r;
  do
    r = fcntl (fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return kiln_error_make (err, errno == EACCES ? EAGAIN : errno, "lock store");
  return 0;
}

/* KILN_MAX_LAYER_ENTRIES: a decimal count, 1 .. the index format's limit. */
static int
max_layer_entries_from_env (uint64_t *out, kiln_error **err)
{
  *out = EXTRACT_DEFAULT_MAX_ENTRIES;
  const char *e = getenv ("KILN_MAX_LAYER_ENTRIES");
  if (e == NULL || *e == '\0')
    return 0;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull (e, &end, 10);
  if (*e < '0' || *e > '9' || *end != '\0' || errno == ERANGE || v == 0 || v >= UINT32_MAX - 1)
    return kiln_error_make (err, EINVAL, "invalid KILN_MAX_LAYER_ENTRIES '%s': expected a number of "
                            "entries between 1 and %u", e, UINT32_MAX - 2);
  *out = v;
  return 0;
}

int
store_open (const char *root_opt, int flags, store **out, kiln_error **err)
{
  uint64_t max_entries;
  if (max_layer_entries_from_env (&max_entries, err) < 0)
    return -1;
  autofree char *root = NULL;
  if (store_default_root (root_opt, &root, err) < 0)
    return -1;
  /* The root itself is the user's choice (may be a symlink); below it
   * nothing is followed. */
  autoclose int base = open ("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (base < 0)
    return kiln_error_make (err, errno, "open '/'");
  int mk;
  if (root[0] == '/')
    mk = mkdir (root, 0700);
  else
    mk = mkdirat (AT_FDCWD, root, 0700);
  if (mk < 0 && errno == ENOENT)
    {
      /* Parents missing: create them (0700 like the root). */
      if (fs_mkdir_p_at (root[0] == '/' ? base : AT_FDCWD, root, 0700, err) < 0)
        return kiln_error_wrap (err, "creating store '%s'", root);
    }
  autoclose int rootfd = open (root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return kiln_error_make (err, errno, "open store '%s'", root);
  for (size_t i = 0; i < ARRAY_SIZE (store_dirs); i++)
    if (mkdirat (rootfd, store_dirs[i], 0700) < 0 && errno != EEXIST)
      return kiln_error_make (err, errno, "create '%s/%s'", root, store_dirs[i]);

  bool excl = flags & STORE_OPEN_EXCLUSIVE;
  /* Try exclusive first: if nobody else uses the store, leftovers in tmp/
   * belong to dead processes and can go. */
  autoerror kiln_error *lerr = NULL;
  autoclose int lockfd = fs_lock_at (rootfd, "lock", FS_LOCK_EXCLUSIVE | FS_LOCK_NONBLOCK, &lerr);
  bool have_excl = lockfd >= 0;
  if (!have_excl)
    {
      if (lerr->status != EAGAIN)
        {
          *err = steal_pointer (&lerr);
          return kiln_error_wrap (err, "store '%s'", root);
        }
      if (excl)
        return kiln_error_make (err, EAGAIN, "store '%s' is in use by another kiln process", root);
      lockfd = fs_lock_at (rootfd, "lock", FS_LOCK_SHARED, err);
      if (lockfd < 0)
        return kiln_error_wrap (err, "store '%s'", root);
    }
  store *s = xzalloc (sizeof *s);
  /* Absolute from here on: paths below the root are handed to other
   * processes and to ptrace isolation's binds, which need absolute ones. */
  if (root[0] != '/')
    {
      autofree char *cwd = getcwd (NULL, 0);
      if (cwd)
        {
          char *abs = xasprintf ("%s/%s", cwd, root);
          free (root);
          root = abs;
        }
    }
  s->root = steal_pointer (&root);
  s->rootfd = steal_fd (&rootfd);
  s->lockfd = steal_fd (&lockfd);
  s->exclusive = excl;
  s->max_layer_entries = max_entries;
  if (have_excl)
    {
      autoerror kiln_error *cerr = NULL;
      if (store_clean_tmp (s, &cerr) < 0)
        log_warn ("store: cleaning stale temporary files: %s", cerr->msg);
      if (!excl && lock_convert (s->lockfd, F_RDLCK, false, err) < 0)
        {
          store_close (s);
          return -1;
        }
    }
  *out = s;
  return 0;
}

void
store_close (store *s)
{
  if (s == NULL)
    return;
  if (s->lockfd >= 0)
    close (s->lockfd);
  if (s->rootfd >= 0)
    close (s->rootfd);
  free (s->root);
  free (s);
}

void
cleanup_storep (store **s)
{
  store_close (*s);
  *s = NULL;
}

static int store_rm_at (store *s, int dirfd, const char *name, kiln_error **err);

int
store_clean_tmp (store *s, kiln_error **err)
{
  autoclose int tfd = openat (s->rootfd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (tfd < 0)
    return kiln_error_make (err, errno, "open '%s/tmp'", s->root);
  int dupfd = dup (tfd);
  if (dupfd < 0)
    return kiln_error_make (err, errno, "dup");
  DIR *d = fdopendir (dupfd);
  if (d == NULL)
    {
      close (dupfd);
      return kiln_error_make (err, errno, "opendir '%s/tmp'", s->root);
    }
  autostrv char **names = NULL;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      strv_push (&names, de->d_name);
  closedir (d);
  int n = 0;
  for (size_t i = 0; names && names[i]; i++)
    {
      if (store_rm_at (s, tfd, names[i], err) < 0)
        return kiln_error_wrap (err, "removing stale '%s/tmp/%s'", s->root, names[i]);
      log_debug ("store: removed stale temporary '%s'", names[i]);
      n++;
    }
  return n;
}

/* fs_rm_rf_at, then remove_fallback for what a plain user may not remove. */
static int
store_rm_at (store *s, int dirfd, const char *name, kiln_error **err)
{
  autoerror kiln_error *e = NULL;
  if (fs_rm_rf_at (dirfd, name, &e) == 0)
    return 0;
  if (s->remove_fallback && (e->status == EACCES || e->status == EPERM))
    {
      log_debug ("store: '%s': %s; removing it inside a user namespace", name, e->msg);
      return s->remove_fallback (dirfd, name, err);
    }
  *err = steal_pointer (&e);
  return -1;
}

int
store_mktemp (store *s, const char *prefix, char **name, int *fd, kiln_error **err)
{
  autoclose int tfd = openat (s->rootfd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (tfd < 0)
    return kiln_error_make (err, errno, "open '%s/tmp'", s->root);
  autofree char *p = xasprintf ("%s-%d-", prefix, (int) getpid ());
  if (fs_mkdtemp_at (tfd, p, name, fd, err) < 0)
    return kiln_error_wrap (err, "store '%s'", s->root);
  return 0;
}

void
store_rmtemp (store *s, const char *name)
{
  autoclose int tfd = openat (s->rootfd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (tfd < 0)
    return;
  autoerror kiln_error *err = NULL;
  if (store_rm_at (s, tfd, name, &err) < 0)
    log_warn ("store: removing '%s/tmp/%s': %s", s->root, name, err->msg);
}

static int
lock_layer (store *s, const char *digest, int how, kiln_error **err)
{
  if (digest_validate (digest, err) < 0)
    return -1;
  autoclose int lfd = openat (s->rootfd, "locks", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (lfd < 0)
    return kiln_error_make (err, errno, "open '%s/locks'", s->root);
  autofree char *n = xasprintf ("%s.lock", digest_hex (digest));
  return fs_lock_at (lfd, n, how, err);
}

int
store_lock_layer (store *s, const char *digest, kiln_error **err)
{
  return lock_layer (s, digest, FS_LOCK_EXCLUSIVE, err);
}

int
store_trylock_layer (store *s, const char *digest, kiln_error **err)
{
  return lock_layer (s, digest, FS_LOCK_EXCLUSIVE | FS_LOCK_NONBLOCK, err);
}

static char *
layer_rel (const char *diff_id)
{
  return xasprintf ("layers/sha256/%s", digest_hex (diff_id));
}

bool
store_has_layer (store *s, const char *diff_id)
{
  autoerror kiln_error *err = NULL;
  if (digest_validate (diff_id, &err) < 0)
    return false;
  autofree char *rel = xasprintf ("layers/sha256/%s/index", digest_hex (diff_id));
  struct stat st;
  return fstatat (s->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG (st.st_mode);
}

int
store_layer_for_blob (store *s, const char *blob_digest, char diff_id_out[DIGEST_STRING_SIZE],
                      kiln_error **err)
{
  if (digest_validate (blob_digest, err) < 0)
    return -1;
  autofree char *rel = xasprintf ("diffids/sha256/%s", digest_hex (blob_digest));
  autoclose int fd = openat (s->rootfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    {
      if (errno == ENOENT)
        return 0;
      return kiln_error_make (err, errno, "open '%s/%s'", s->root, rel);
    }
  autofree char *buf = NULL;
  size_t len;
  if (fs_read_fd (fd, 128, &buf, &len, err) < 0)
    return -1;
  buf[strcspn (buf, "\n ")] = '\0';
  autoerror kiln_error *verr = NULL;
  /* written without fsync: after a crash it may be empty (the layer is
   * then extracted again, and the record written anew) */
  if (digest_validate (buf, &verr) < 0)
    {
      log_debug ("store: '%s/%s' is not a diffID record (%s); extracting the layer again", s->root, rel,
                 verr->msg);
      return 0;
    }
  if (!store_has_layer (s, buf))
    return 0;
  memcpy (diff_id_out, buf, DIGEST_STRING_SIZE);
  return 1;
}

int
store_publish_layer (store *s, const char *tmpname, const char *diff_id, const char *blob_digest,
                     kiln_error **err)
{
  if (digest_validate (diff_id, err) < 0)
    return -1;
  autofree char *from = xasprintf ("tmp/%s", tmpname);
  autofree char *to = layer_rel (diff_id);
  if (blob_digest)
    {
      autofree char *b = xasprintf ("tmp/%s/blob", tmpname);
      if (fs_write_file_unsynced_at (s->rootfd, b, blob_digest, strlen (blob_digest), 0644, err) < 0)
        return -1;
    }
  /* Make the data durable before the name appears: one syncfs for the
   * whole temp directory (its tree, index, links and blob record), none
   * of which was fsynced on its own. */
  autoclose int fd = openat (s->rootfd, from, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_make (err, errno, "open '%s/%s'", s->root, from);
  if (syncfs (fd) < 0)
    return kiln_error_make (err, errno, "syncfs '%s/%s'", s->root, from);
  if (renameat2 (s->rootfd, from, s->rootfd, to, RENAME_NOREPLACE) < 0)
    {
      int e = errno;
      if (e != EEXIST && e != ENOTEMPTY)
        return kiln_error_make (err, e, "publish layer %s: rename '%s' to '%s'", diff_id, from, to);
      log_debug ("store: layer %s already published; dropping duplicate", diff_id);
      store_rmtemp (s, tmpname);
    }
  autoclose int lfd = openat (s->rootfd, "layers/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lfd >= 0)
    fsync (lfd);
  /* Not synced: a record a crash lost or emptied reads as absent
   * (store_layer_for_blob), which costs a lookup by blob digest the
   * layer's extraction again, nothing more. */
  if (blob_digest)
    {
      autofree char *rel = xasprintf ("diffids/sha256/%s", digest_hex (blob_digest));
      if (fs_write_file_unsynced_at (s->rootfd, rel, diff_id, strlen (diff_id), 0644, err) < 0)
        return kiln_error_wrap (err, "recording diffID of blob %s", blob_digest);
    }
  return 0;
}

int
store_open_layer (store *s, const char *diff_id, int *tree_fd, layer_index **idx, kiln_error **err)
{
  if (digest_validate (diff_id, err) < 0)
    return -1;
  autofree char *rel = layer_rel (diff_id);
  autoclose int dfd = openat (s->rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    return kiln_error_make (err, errno, "open layer %s ('%s/%s')", diff_id, s->root, rel);
  /* A tree that links build context files is verified before any use
   * (store/links.h). */
  if (tree_fd && store_links_check_layer (s, diff_id, &dfd, err) < 0)
    return -1;
  layer_index *ix = NULL;
  if (idx && layer_index_open_at (dfd, "index", &ix, err) < 0)
    return kiln_error_wrap (err, "layer %s", diff_id);
  if (tree_fd)
    {
      int t = openat (dfd, "tree", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (t < 0)
        {
          int e = errno;
          layer_index_close (ix);
          return kiln_error_make (err, e, "open tree of layer %s", diff_id);
        }
      *tree_fd = t;
    }
  if (idx)
    *idx = ix;
  return 0;
}

static char *
blob_rel (const char *digest)
{
  return xasprintf ("blobs/sha256/%s", digest_hex (digest));
}

/* A blob linked into a layout (a record, or more than one link) is checked
 * (store/links.h): false when it was modified and removed, with a warning. */
static bool
blob_still_good (store *s, const char *digest, const struct stat *st)
{
  autofree char *rec = xasprintf ("bloblinks/sha256/%s", digest_hex (digest));
  if (st->st_nlink <= 1 && faccessat (s->rootfd, rec, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
    return true;
  autoerror kiln_error *err = NULL;
  autoclose int fd = store_open_blob (s, digest, &err);
  if (fd >= 0)
    return true;
  log_warn ("%s", err->msg);
  return false;
}

bool
store_has_blob (store *s, const char *digest)
{
  autoerror kiln_error *err = NULL;
  if (digest_validate (digest, &err) < 0)
    return false;
  autofree char *rel = blob_rel (digest);
  struct stat st;
  if (fstatat (s->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG (st.st_mode))
    return false;
  return blob_still_good (s, digest, &st);
}

int
store_put_blob (store *s, const char *digest, const void *data, size_t len, kiln_error **err)
{
  if (digest_validate (digest, err) < 0)
    return -1;
  char got[DIGEST_STRING_SIZE];
  digest_buffer (data, len, got);
  if (strcmp (got, digest) != 0)
    return kiln_error_make (err, EINVAL, "blob content hashes to %s, expected %s", got, digest);
  autofree char *rel = blob_rel (digest);
  return fs_write_file_atomic_at (s->rootfd, rel, data, len, 0644, err);
}

int
store_open_blob (store *s, const char *digest, kiln_error **err)
{
  if (digest_validate (digest, err) < 0)
    return -1;
  autofree char *rel = blob_rel (digest);
  int fd = openat (s->rootfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_make (err, errno, "open blob %s", digest);
  /* A blob linked into an --oci-layout is checked before it is handed
   * out (store/links.h). */
  if (store_blob_check_links (s, digest, fd, err) < 0)
    {
      close (fd);
      return -1;
    }
  return fd;
}

int
store_get_blob (store *s, const char *digest, size_t max_size, char **data, size_t *len, kiln_error **err)
{
  autoclose int fd = store_open_blob (s, digest, err);
  if (fd < 0)
    return -1;
  autofree char *buf = NULL;
  size_t n;
  if (fs_read_fd (fd, max_size, &buf, &n, err) < 0)
    return kiln_error_wrap (err, "blob %s", digest);
  char got[DIGEST_STRING_SIZE];
  digest_buffer (buf, n, got);
  if (strcmp (got, digest) != 0)
    return kiln_error_make (err, EIO, "blob %s in the store is corrupt (hashes to %s)", digest, got);
  *data = steal_pointer (&buf);
  *len = n;
  return 0;
}

/* ---- refs and prune ----------------------------------------------------- */

static char *
ref_name (const char *name)
{
  strbuf sb = STRBUF_INIT;
  for (const unsigned char *p = (const unsigned char *) name; *p; p++)
    {
      if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-'
          || *p == '_' || (*p == '.' && p != (const unsigned char *) name))
        strbuf_addch (&sb, *p);
      else
        strbuf_addf (&sb, "%%%02X", *p);
    }
  return strbuf_detach (&sb, NULL);
}

int
store_set_ref (store *s, const char *name, const char *manifest_digest, kiln_error **err)
{
  if (*name == '\0')
    return kiln_error_make (err, EINVAL, "empty ref name");
  if (digest_validate (manifest_digest, err) < 0)
    return -1;
  if (mkdirat (s->rootfd, "refs", 0700) < 0 && errno != EEXIST)
    return kiln_error_make (err, errno, "create '%s/refs'", s->root);
  autofree char *n = ref_name (name);
  autofree char *rel = xasprintf ("refs/%s", n);
  return fs_write_file_atomic_at (s->rootfd, rel, manifest_digest, strlen (manifest_digest), 0644, err);
}

int
store_remove_ref (store *s, const char *name, kiln_error **err)
{
  autofree char *n = ref_name (name);
  autofree char *rel = xasprintf ("refs/%s", n);
  if (unlinkat (s->rootfd, rel, 0) < 0 && errno != ENOENT)
    return kiln_error_make (err, errno, "remove ref '%s'", name);
  return 0;
}

int
store_get_ref (store *s, const char *name, char digest_out[DIGEST_STRING_SIZE], kiln_error **err)
{
  autofree char *n = ref_name (name);
  autofree char *rel = xasprintf ("refs/%s", n);
  autoclose int fd = openat (s->rootfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    {
      if (errno == ENOENT)
        return 0;
      return kiln_error_make (err, errno, "open ref '%s'", name);
    }
  autofree char *buf = NULL;
  size_t len;
  if (fs_read_fd (fd, 256, &buf, &len, err) < 0)
    return kiln_error_wrap (err, "ref '%s'", name);
  buf[strcspn (buf, "\n ")] = '\0';
  autoerror kiln_error *verr = NULL;
  if (digest_validate (buf, &verr) < 0)
    return kiln_error_make (err, EINVAL, "ref '%s' in '%s' holds no valid digest", name, s->root);
  memcpy (digest_out, buf, DIGEST_STRING_SIZE);
  return 1;
}

static int
list_dir (int dirfd, const char *rel, char ***out, kiln_error **err)
{
  int fd = openat (dirfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    {
      if (errno == ENOENT)
        return 0;
      return kiln_error_make (err, errno, "open '%s'", rel);
    }
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      close (fd);
      return kiln_error_make (err, errno, "opendir '%s'", rel);
    }
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      strv_push (out, de->d_name);
  closedir (d);
  return 0;
}

/* Allocated bytes below dirfd/name (no symlinks followed, no mount crossing
 * checks needed: the store is ours). */
static uint64_t
du_at (int dirfd, const char *name)
{
  struct stat st;
  if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return 0;
  uint64_t total = (uint64_t) st.st_blocks * 512;
  if (!S_ISDIR (st.st_mode))
    return total;
  autoclose int fd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return total;
  autostrv char **names = NULL;
  autoerror kiln_error *err = NULL;
  if (list_dir (fd, ".", &names, &err) < 0)
    return total;
  for (size_t i = 0; names && names[i]; i++)
    total += du_at (fd, names[i]);
  return total;
}

static bool
strv_has (char **v, const char *s)
{
  for (size_t i = 0; v && v[i]; i++)
    if (strcmp (v[i], s) == 0)
      return true;
  return false;
}

static void
keep_push (char ***v, const char *digest)
{
  autoerror kiln_error *err = NULL;
  if (digest && digest_validate (digest, &err) == 0 && !strv_has (*v, digest_hex (digest)))
    strv_push (v, digest_hex (digest));
}

/* Mark what a manifest / index / config blob references. */
static void
mark_blob (store *s, const char *digest, int depth, char ***blobs, char ***layers)
{
  autoerror kiln_error *err = NULL;
  if (depth > 4 || digest_validate (digest, &err) < 0)
    return;
  keep_push (blobs, digest);
  autofree char *data = NULL;
  size_t len;
  if (store_get_blob (s, digest, JSON_DEFAULT_MAX_SIZE, &data, &len, &err) < 0)
    return; /* layer blob not kept, or not JSON-sized: nothing more to follow */
  autojson json_value *root = NULL;
  if (json_parse (data, len, JSON_DEFAULT_MAX_SIZE, &root, &err) < 0 || !json_is_object (root))
    return;
  json_value *cfg = json_get_object (root, "config");
  const char *cd = cfg ? json_get_string (cfg, "digest") : NULL;
  if (cd)
    mark_blob (s, cd, depth + 1, blobs, layers);
  json_value *arr = json_get_array (root, "layers");
  for (size_t i = 0; arr && i < json_array_size (arr); i++)
    {
      const char *ld = json_get_string (json_array_get (arr, i), "digest");
      keep_push (blobs, ld);
      char diff[DIGEST_STRING_SIZE];
      autoerror kiln_error *e2 = NULL;
      if (ld && store_layer_for_blob (s, ld, diff, &e2) > 0)
        keep_push (layers, diff);
    }
  arr = json_get_array (root, "manifests");
  for (size_t i = 0; arr && i < json_array_size (arr); i++)
    mark_blob (s, json_get_string (json_array_get (arr, i), "digest"), depth + 1, blobs, layers);
  json_value *rootfs = json_get_object (root, "rootfs");
  arr = rootfs ? json_get_array (rootfs, "diff_ids") : NULL;
  for (size_t i = 0; arr && i < json_array_size (arr); i++)
    keep_push (layers, json_string (json_array_get (arr, i)));
}

static int
prune_dir (store *s, const char *rel, char **keep, bool dry_run, uint64_t *count, uint64_t *bytes,
           kiln_error **err)
{
  autostrv char **names = NULL;
  if (list_dir (s->rootfd, rel, &names, err) < 0)
    return -1;
  autoclose int dfd = openat (s->rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  for (size_t i = 0; names && names[i]; i++)
    {
      if (strv_has (keep, names[i]))
        continue;
      uint64_t b = du_at (dfd, names[i]);
      log_info ("%s %s/%s (%llu bytes)", dry_run ? "would remove" : "removing", rel, names[i],
                (unsigned long long) b);
      if (!dry_run && store_rm_at (s, dfd, names[i], err) < 0)
        return kiln_error_wrap (err, "pruning '%s/%s'", rel, names[i]);
      (*count)++;
      *bytes += b;
    }
  return 0;
}

int
store_prune (store *s, bool all, bool dry_run, store_prune_stats *st, kiln_error **err)
{
  memset (st, 0, sizeof *st);
  if (!s->exclusive)
    return kiln_error_make (err, EINVAL, "internal: prune needs the store opened exclusively");
  autostrv char **keep_blobs = NULL;
  autostrv char **keep_layers = NULL;
  autostrv char **keep_refs = NULL;
  if (!all)
    {
      autostrv char **refs = NULL;
      if (list_dir (s->rootfd, "refs", &refs, err) < 0)
        return -1;
      for (size_t i = 0; refs && refs[i]; i++)
        {
          autofree char *rel = xasprintf ("refs/%s", refs[i]);
          autofree char *buf = NULL;
          size_t len;
          autoerror kiln_error *e2 = NULL;
          if (fs_read_file_at (s->rootfd, rel, 256, &buf, &len, &e2) < 0)
            continue;
          buf[strcspn (buf, "\n ")] = '\0';
          strv_push (&keep_refs, refs[i]);
          mark_blob (s, buf, 0, &keep_blobs, &keep_layers);
        }
    }
  if (prune_dir (s, "blobs/sha256", keep_blobs, dry_run, &st->blobs, &st->bytes, err) < 0
      || prune_dir (s, "layers/sha256", keep_layers, dry_run, &st->layers, &st->bytes, err) < 0
      || prune_dir (s, "bloblinks/sha256", keep_blobs, dry_run, &st->other, &st->bytes, err) < 0)
    return -1;
  /* diffID records: keep those whose layer stays. */
  autostrv char **recs = NULL;
  if (list_dir (s->rootfd, "diffids/sha256", &recs, err) < 0)
    return -1;
  autostrv char **keep_recs = NULL;
  for (size_t i = 0; recs && recs[i]; i++)
    {
      autofree char *bd = xasprintf ("sha256:%s", recs[i]);
      char diff[DIGEST_STRING_SIZE];
      autoerror kiln_error *e2 = NULL;
      if (store_layer_for_blob (s, bd, diff, &e2) > 0 && strv_has (keep_layers, digest_hex (diff)))
        strv_push (&keep_recs, recs[i]);
    }
  if (prune_dir (s, "diffids/sha256", keep_recs, dry_run, &st->other, &st->bytes, err) < 0
      || prune_dir (s, "locks", NULL, dry_run, &st->other, &st->bytes, err) < 0
      || prune_dir (s, "tmp", NULL, dry_run, &st->other, &st->bytes, err) < 0)
    return -1;
  if (all && (prune_dir (s, "refs", keep_refs, dry_run, &st->other, &st->bytes, err) < 0
              || prune_dir (s, "cache", NULL, dry_run, &st->other, &st->bytes, err) < 0))
    return -1;
  return 0;
}

/* ---- streaming blob writer ---------------------------------------------- */

struct store_blob_writer
{
  store *s;
  int fd;
  char *tmpname;
  digest_ctx *d;
};

static int
open_tmp_dir (store *s, kiln_error **err)
{
  int tfd = openat (s->rootfd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (tfd < 0)
    return kiln_error_make (err, errno, "open '%s/tmp'", s->root);
  return tfd;
}

int
store_blob_tmpfile (store *s, int *fd, char **tmpname, kiln_error **err)
{
  autoclose int tfd = open_tmp_dir (s, err);
  if (tfd < 0)
    return -1;
  static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (int attempt = 0; attempt < 100; attempt++)
    {
      unsigned char rnd[8];
      if (getentropy (rnd, sizeof rnd) < 0)
        return kiln_error_make (err, errno, "getentropy");
      char sfx[sizeof rnd + 1];
      for (size_t i = 0; i < sizeof rnd; i++)
        sfx[i] = chars[rnd[i] % (sizeof chars - 1)];
      sfx[sizeof rnd] = '\0';
      autofree char *name = xasprintf ("blob-%d-%s", (int) getpid (), sfx);
      int f;
      do
        f = openat (tfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      while (f < 0 && errno == EINTR);
      if (f >= 0)
        {
          *fd = f;
          *tmpname = steal_pointer (&name);
          return 0;
        }
      if (errno != EEXIST)
        return kiln_error_make (err, errno, "create temporary blob '%s/tmp/%s'", s->root, name);
    }
  return kiln_error_make (err, EEXIST, "create temporary blob in '%s/tmp': no unused name found", s->root);
}

void
store_blob_discard (store *s, const char *tmpname)
{
  autoclose int tfd = openat (s->rootfd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (tfd >= 0 && unlinkat (tfd, tmpname, 0) < 0 && errno != ENOENT)
    log_warn ("store: removing '%s/tmp/%s': %s", s->root, tmpname, strerror (errno));
}

/* fsync fd, then move tmp/TMPNAME to blobs/sha256/HEX and make the rename
 * durable. A concurrent writer of the same digest wrote the same bytes, so
 * replacing its file is harmless. */
static int
blob_publish (store *s, int fd, const char *tmpname, const char *digest, kiln_error **err)
{
  if (fchmod (fd, 0644) < 0)
    return kiln_error_make (err, errno, "chmod temporary blob '%s/tmp/%s'", s->root, tmpname);
  if (fsync (fd) < 0)
    return kiln_error_make (err, errno, "fsync temporary blob '%s/tmp/%s'", s->root, tmpname);
  autofree char *from = xasprintf ("tmp/%s", tmpname);
  autofree char *to = blob_rel (digest);
  if (renameat (s->rootfd, from, s->rootfd, to) < 0)
    return kiln_error_make (err, errno, "store blob %s: rename '%s' to '%s'", digest, from, to);
  autoclose int bfd = openat (s->rootfd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (bfd >= 0)
    fsync (bfd);
  return 0;
}

int
store_blob_adopt (store *s, const char *tmpname, const char *digest, kiln_error **err)
{
  if (digest_validate (digest, err) < 0)
    {
      store_blob_discard (s, tmpname);
      return -1;
    }
  autofree char *rel = xasprintf ("tmp/%s", tmpname);
  autoclose int fd = openat (s->rootfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_make (err, errno, "open temporary blob '%s/%s'", s->root, rel);
  char got[DIGEST_STRING_SIZE];
  uint64_t size;
  int r = digest_fd (fd, got, &size, err);
  if (r >= 0 && strcmp (got, digest) != 0)
    r = kiln_error_make (err, EINVAL, "blob '%s/%s' hashes to %s, expected %s", s->root, rel, got, digest);
  if (r >= 0)
    r = blob_publish (s, fd, tmpname, digest, err);
  if (r < 0)
    store_blob_discard (s, tmpname);
  return r;
}

int
store_blob_begin (store *s, store_blob_writer **out, kiln_error **err)
{
  int fd;
  char *name;
  if (store_blob_tmpfile (s, &fd, &name, err) < 0)
    return -1;
  store_blob_writer *w = xzalloc (sizeof *w);
  w->s = s;
  w->fd = fd;
  w->tmpname = name;
  w->d = digest_new ();
  *out = w;
  return 0;
}

int
store_blob_write (store_blob_writer *w, const void *data, size_t len, kiln_error **err)
{
  if (fs_write_all (w->fd, data, len, err) < 0)
    return kiln_error_wrap (err, "writing temporary blob '%s/tmp/%s'", w->s->root, w->tmpname);
  digest_update (w->d, data, len);
  return 0;
}

uint64_t
store_blob_written (const store_blob_writer *w)
{
  return digest_bytes (w->d);
}

int
store_blob_reopen (store_blob_writer *w, kiln_error **err)
{
  autofree char *rel = xasprintf ("tmp/%s", w->tmpname);
  int fd = openat (w->s->rootfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_make (err, errno, "open temporary blob '%s/%s'", w->s->root, rel);
  return fd;
}

static void
blob_writer_free (store_blob_writer *w)
{
  if (w->fd >= 0)
    close (w->fd);
  digest_free (w->d);
  free (w->tmpname);
  free (w);
}

void
store_blob_abort (store_blob_writer *w)
{
  if (w == NULL)
    return;
  store_blob_discard (w->s, w->tmpname);
  blob_writer_free (w);
}

int
store_blob_commit (store_blob_writer *w, const char *expected, char digest_out[DIGEST_STRING_SIZE],
                   kiln_error **err)
{
  char got[DIGEST_STRING_SIZE];
  digest_final (w->d, got);
  int r = 0;
  if (expected && digest_validate (expected, err) < 0)
    r = -1;
  else if (expected && strcmp (got, expected) != 0)
    r = kiln_error_make (err, EINVAL, "blob content hashes to %s, expected %s", got, expected);
  else
    r = blob_publish (w->s, w->fd, w->tmpname, got, err);
  if (r < 0)
    {
      store_blob_abort (w);
      return -1;
    }
  if (digest_out)
    memcpy (digest_out, got, DIGEST_STRING_SIZE);
  blob_writer_free (w);
  return 0;
}

int
store_blob_size (store *s, const char *digest, int64_t *size, kiln_error **err)
{
  if (digest_validate (digest, err) < 0)
    return -1;
  autofree char *rel = blob_rel (digest);
  struct stat st;
  if (fstatat (s->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
    {
      if (errno == ENOENT)
        return 0;
      return kiln_error_make (err, errno, "stat blob %s", digest);
    }
  if (!S_ISREG (st.st_mode))
    return kiln_error_make (err, EINVAL, "blob %s in '%s' is not a regular file", digest, s->root);
  if (!blob_still_good (s, digest, &st))
    return 0;
  *size = st.st_size;
  return 1;
}
