/* build_copy.c - COPY and ADD steps: the destination and the flags, then
 * the sources: URLs (downloaded), local archives (extracted), heredocs,
 * and the rest copied from the context, a stage or an image by copy.c
 * (see build_internal.h). */
#include "build/build_internal.h"
#include "build/copy.h"
#include "build/rootfs.h"
#include "build/url_fetch.h"
#include "store/extract.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool
is_url (const char *s)
{
  return strncmp (s, "http://", 7) == 0 || strncmp (s, "https://", 8) == 0;
}

/* BuildKit treats these as git repositories. */
static bool
is_git (const char *s)
{
  if (strncmp (s, "git@", 4) == 0 || strncmp (s, "git://", 6) == 0 || strncmp (s, "ssh://", 6) == 0)
    return true;
  size_t len = strcspn (s, "#?");
  return is_url (s) && len > 4 && strncmp (s + len - 4, ".git", 4) == 0;
}

/* ---- ADD <URL> ---- */

/* ADD <URL>: download into tmpfd (a private temp dir) and add it as a
 * file: mode 0600 as Docker, mtime from Last-Modified. */
static int
add_url (build_exec *b, const char *url, int idx, int tmpfd, overlay_lower *dest_view, const copy_request *req,
         bool into_dir, const char *checksum, copy_changes *ch, kiln_error **err)
{
  char name[32];
  snprintf (name, sizeof name, "url-%d", idx);
  autoclose int fd = openat (tmpfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return kiln_error_make (err, errno, "ADD '%s': temporary file", url);
  progress_note (b->o.progress, "downloading %s", url);
  url_fetch_result ur;
  if (url_fetch_to_fd (url, fd, (uint64_t) 16 << 30, &ur, err) < 0)
    return -1;
  if (checksum && strcmp (checksum, ur.digest) != 0)
    return kiln_error_make (err, EINVAL, "ADD '%s': checksum mismatch: expected %s, got %s", url, checksum, ur.digest);
  pthread_mutex_lock (&b->lock);
  strv_push (&b->add_urls, url);
  strv_push (&b->add_urls, ur.digest);
  pthread_mutex_unlock (&b->lock);
  copy_request ureq = *req;
  autofree char *base = url_fetch_basename (url);
  if (into_dir && !base)
    return kiln_error_make (err, EINVAL, "ADD '%s': cannot name the file (the URL has no path); give a file "
                            "destination", url);
  autofree char *dest = into_dir ? xasprintf ("%s/%s", req->dest, base) : xstrdup (req->dest);
  ureq.dest = dest;
  return copy_add_file (dest_view, &ureq, tmpfd, name, 0600, ur.mtime >= 0 ? ur.mtime : created_time (b), ch, err);
}

/* ---- ADD of a local archive ---- */

typedef enum
{
  ARCHIVE_NONE = 0,
  ARCHIVE_EXTRACTABLE,   /* tar, gzip or zstd: what the store extractor reads */
  ARCHIVE_RAW,           /* bzip2, xz: decompressed by libarchive first */
} archive_kind;

/* Is fd a tar archive (possibly compressed)? Like Docker, a compressed file
 * that does not hold a tar is not an archive and is copied as it is. */
static archive_kind
archive_kind_fd (int fd)
{
  if (lseek (fd, 0, SEEK_SET) < 0)
    return ARCHIVE_NONE;
  struct archive *a = archive_read_new ();
  struct archive_entry *e;
  archive_kind k = ARCHIVE_NONE;
  archive_read_support_filter_all (a);
  archive_read_support_format_tar (a);
  archive_read_support_format_gnutar (a);
  if (archive_read_open_fd (a, fd, 1 << 16) == ARCHIVE_OK && archive_read_next_header (a, &e) == ARCHIVE_OK)
    switch (archive_filter_code (a, 0))
      {
      case ARCHIVE_FILTER_NONE:
      case ARCHIVE_FILTER_GZIP:
      case ARCHIVE_FILTER_ZSTD:
        k = ARCHIVE_EXTRACTABLE;
        break;
      case ARCHIVE_FILTER_BZIP2:
      case ARCHIVE_FILTER_XZ:
        k = ARCHIVE_RAW;
        break;
      default:
        k = ARCHIVE_NONE; /* e.g. compress(1), lz4: copied as files, as Docker does */
      }
  archive_read_free (a);
  lseek (fd, 0, SEEK_SET);
  return k;
}

/* Open a context file named by ADD (not through symlinks); -1 if it is not
 * a regular file there. */
static int
open_context_file (build_exec *b, const char *src)
{
  autoerror kiln_error *e = NULL;
  while (*src == '/')
    src++;
  int fd = fs_open_in_root (b->ctxfd, src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0,
                            FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, &e);
  struct stat sb;
  if (fd >= 0 && (fstat (fd, &sb) < 0 || !S_ISREG (sb.st_mode)))
    {
      close (fd);
      return -1;
    }
  return fd;
}

/* bzip2 and xz: libarchive's raw format decompresses the stream, which the
 * store extractor then reads as a plain tar. */
typedef struct raw_stream
{
  struct archive *a;
  const char *src;
} raw_stream;

static int
raw_open (int fd, const char *src, raw_stream *rs, kiln_error **err)
{
  if (lseek (fd, 0, SEEK_SET) < 0)
    return kiln_error_make (err, errno, "ADD '%s': seek", src);
  rs->src = src;
  rs->a = archive_read_new ();
  struct archive_entry *e;
  if (archive_read_support_filter_bzip2 (rs->a) != ARCHIVE_OK || archive_read_support_filter_xz (rs->a) != ARCHIVE_OK
      || archive_read_support_format_raw (rs->a) != ARCHIVE_OK || archive_read_open_fd (rs->a, fd, 1 << 16) != ARCHIVE_OK
      || archive_read_next_header (rs->a, &e) != ARCHIVE_OK)
    {
      kiln_error_make (err, EINVAL, "ADD '%s': decompressing: %s", src, archive_error_string (rs->a));
      archive_read_free (rs->a);
      rs->a = NULL;
      return -1;
    }
  return 0;
}

static ssize_t
raw_read (void *ctx, void *buf, size_t len, kiln_error **err)
{
  raw_stream *rs = ctx;
  la_ssize_t n = archive_read_data (rs->a, buf, len);
  if (n < 0)
    return kiln_error_make (err, EINVAL, "ADD '%s': decompressing: %s", rs->src, archive_error_string (rs->a));
  return n;
}

static ssize_t
read_fd_cb (void *ctx, void *buf, size_t len, kiln_error **err)
{
  return extract_read_fd (ctx, buf, len, err);
}

/* Extract archive fd into the store; the layer's diffID out. */
static int
extract_archive (build_exec *b, int fd, const char *src, bool raw, char diff_id[DIGEST_STRING_SIZE],
                 kiln_error **err)
{
  char blob[DIGEST_STRING_SIZE];
  extract_result xr;
  if (!raw)
    {
      if (digest_fd (fd, blob, NULL, err) < 0)
        return kiln_error_wrap (err, "ADD '%s'", src);
      if (lseek (fd, 0, SEEK_SET) < 0)
        return kiln_error_make (err, errno, "ADD '%s': seek", src);
      int rfd = fd;
      if (extract_to_store (b->o.store, blob, NULL, read_fd_cb, &rfd, NULL, &xr, err) < 0)
        return -1;
    }
  else
    {
      /* Two passes: the digest of the decompressed stream keys the layer. */
      raw_stream rs;
      if (raw_open (fd, src, &rs, err) < 0)
        return -1;
      autodigest digest_ctx *d = digest_new ();
      char buf[1 << 16];
      ssize_t n;
      while ((n = raw_read (&rs, buf, sizeof buf, err)) > 0)
        digest_update (d, buf, n);
      archive_read_free (rs.a);
      if (n < 0)
        return -1;
      digest_final (d, blob);
      if (raw_open (fd, src, &rs, err) < 0)
        return -1;
      int r = extract_to_store (b->o.store, blob, NULL, raw_read, &rs, NULL, &xr, err);
      archive_read_free (rs.a);
      if (r < 0)
        return -1;
    }
  memcpy (diff_id, xr.diff_id, DIGEST_STRING_SIZE);
  return 0;
}

/* ADD of a local archive: extract it (safely, with the store's extractor)
 * as a store layer, then copy that layer's contents into dest, keeping the
 * archive's owners and modes unless --chown/--chmod say otherwise. */
static int
add_archive (build_exec *b, int fd, const char *src, bool raw, overlay_lower *dest_view, const copy_request *req,
             copy_changes *ch, overlay_lower **lower_out, kiln_error **err)
{
  char diff_id[DIGEST_STRING_SIZE];
  if (extract_archive (b, fd, src, raw, diff_id, err) < 0)
    return kiln_error_wrap (err, "ADD '%s': extracting the archive", src);
  overlay_lower *lower = NULL;
  char *ids[] = { diff_id, NULL };
  int r = overlay_lower_open_store (b->o.store, ids, 1, &lower, err);
  if (r < 0)
    return -1;
  char *root[] = { (char *) "", NULL };
  copy_request areq = *req;
  areq.srcs = root;
  areq.dest_is_dir = true;
  areq.keep_owner = true;
  areq.keep_owner_top = true;
  areq.excludes = NULL;
  /* BuildKit unpacks an archive with the modes it holds: --chmod is not
   * applied to its contents. */
  areq.chmod = false;
  r = copy_from_layers (lower, dest_view, &areq, ch, err);
  /* The change list reads file data through the layer's tree fd: the
   * caller frees the lower after writing the layer. */
  *lower_out = lower;
  return r < 0 ? kiln_error_wrap (err, "ADD '%s'", src) : 0;
}

/* ---- the step ---- */

/* One COPY/ADD step: what its parts share, and what copy_job_release frees
 * when the step ends. */
typedef struct copy_job
{
  build_exec *b;
  const stage_state *st;       /* the stage copied into */
  const plan_step *s;
  bool add;
  const char *what;            /* "COPY" or "ADD" */
  size_t n_args;               /* sources and the destination */
  const char *checksum;        /* ADD --checksum */
  overlay_lower *dest_view;    /* the stage's layers, where the sources go */
  bool dest_dir;               /* the destination names a directory */
  char *cdest;                 /* the destination, resolved in the image */
  copy_request req;
  char **excludes;             /* --exclude (req.excludes) */
  char **srcs;                 /* sources copy.c copies */
  overlay_lower **archives;    /* extracted ADD archives: the changes read their files */
  size_t n_archives;
  overlay_lower *src_lower;    /* --from stage or image */
  char *tmpname;               /* store temp dir of downloads and heredocs */
  int tmpfd;
  copy_changes ch;
  bool key_only;               /* onto an empty view, for the key (build_key_lazy) */
  char from_manifest[DIGEST_STRING_SIZE]; /* key_only, --from=IMAGE: its manifest digest */
} copy_job;

static void
copy_job_release (copy_job *j)
{
  copy_changes_free (&j->ch);
  for (size_t i = 0; i < j->n_archives; i++)
    overlay_lower_free (j->archives[i]);
  overlay_lower_free (j->src_lower);
  overlay_lower_free (j->dest_view);
  if (j->tmpname)
    store_rmtemp (j->b->o.store, j->tmpname);
  if (j->tmpfd >= 0)
    close (j->tmpfd);
  free (j->tmpname);
  free (j->archives);
  strv_free (j->srcs);
  strv_free (j->excludes);
  free (j->cdest);
}

/* What can be refused before anything is read. */
static int
copy_job_check (const copy_job *j, kiln_error **err)
{
  const plan_step *s = j->s;
  if (j->n_args < 2)
    return kiln_error_make (err, EINVAL, "%s needs a source and a destination", j->what);
  bool present = false;
  dockerfile_instr_flag (s->instr, "keep-git-dir", &present);
  if (present)
    return kiln_error_make (err, ENOTSUP, "ADD --keep-git-dir: git sources are not supported yet");
  size_t n_urls = 0;
  for (size_t i = 0; i + 1 < j->n_args; i++)
    {
      if (is_git (s->args[i]))
        return kiln_error_make (err, ENOTSUP, "ADD '%s': git sources are not supported yet", s->args[i]);
      if (is_url (s->args[i]))
        {
          if (!j->add)
            return kiln_error_make (err, EINVAL, "COPY '%s': COPY takes no URLs (use ADD)", s->args[i]);
          if (s->from_stage >= 0 || s->from_image)
            return kiln_error_make (err, EINVAL, "ADD '%s': a URL with --from makes no sense", s->args[i]);
          n_urls++;
        }
    }
  if (j->checksum && (n_urls != 1 || j->n_args != 2))
    return kiln_error_make (err, EINVAL, "ADD --checksum needs exactly one source, a URL");
  if (j->checksum && strncmp (j->checksum, "sha256:", 7) != 0)
    return kiln_error_make (err, ENOTSUP, "ADD --checksum '%s': only sha256: digests are supported", j->checksum);
  return 0;
}

/* The destination and the flags: j->req. */
static int
copy_job_request (copy_job *j, stage_state *st, kiln_error **err)
{
  const plan_step *s = j->s;
  const char *dest_arg = s->args[j->n_args - 1];
  autofree char *dest = build_meta_resolve_dir (st->spec.working_dir, dest_arg);
  size_t dl = strlen (dest_arg);
  j->dest_dir = (dl && dest_arg[dl - 1] == '/') || strcmp (dest_arg, ".") == 0
                || (dl >= 2 && strcmp (dest_arg + dl - 2, "/.") == 0);
  j->cdest = build_meta_clean_abs (dest);
  /* Symlinks in the destination resolve inside the image (Docker's
   * FollowSymlinkInScope): COPY x /var/run/y writes below /run. */
  if (!j->key_only)
  {
    autofree char *resolved = NULL;
    int r = rootfs_resolve_in_root (j->dest_view, j->cdest, &resolved);
    if (r < 0)
      return kiln_error_make (err, -r, "%s: resolving destination '%s' in the image", j->what, j->cdest);
    free (j->cdest);
    j->cdest = xasprintf ("/%s", resolved);
  }
  copy_request *req = &j->req;
  *req = (copy_request) { .dest = j->cdest, .dest_is_dir = j->dest_dir, .what = j->what, .now = created_time (j->b) };
  const char *chown = plan_step_flag (s, "chown");
  if (chown && !j->key_only) /* key_only: the key has the flag's text */
    {
      if (rootfs_resolve_user (j->dest_view, chown, &req->uid, &req->gid, NULL, NULL, NULL, err) < 0)
        return kiln_error_wrap (err, "%s --chown", j->what);
      req->chown = true;
    }
  const char *chmod = plan_step_flag (s, "chmod");
  if (chmod)
    {
      if (copy_parse_chmod (chmod, &req->mode, err) < 0)
        return -1;
      req->chmod = true;
    }
  dockerfile_instr_flag (s->instr, "link", &req->link);
  const char *lv = plan_step_flag (s, "link");
  if (lv && strcmp (lv, "false") == 0)
    req->link = false;
  dockerfile_instr_flag (s->instr, "parents", &req->parents);
  const char *pv = plan_step_flag (s, "parents");
  if (pv && strcmp (pv, "false") == 0)
    req->parents = false;
  for (size_t i = 0; i < s->n_flags; i++)
    if (strcmp (s->flags[i].key, "exclude") == 0)
      strv_push (&j->excludes, s->flags[i].value);
  req->excludes = j->excludes;
  return 0;
}

/* ADD from the context: a source file (named, or matched by a wildcard)
 * that is an archive is extracted into the destination instead of copied
 * (copy_request.take_file). */
static int
add_take_archive (void *ud, const char *src, kiln_error **err)
{
  copy_job *j = ud;
  autoclose int afd = open_context_file (j->b, src);
  archive_kind k = afd >= 0 ? archive_kind_fd (afd) : ARCHIVE_NONE;
  if (k == ARCHIVE_NONE)
    return 0;
  j->archives = xreallocarray (j->archives, j->n_archives + 1, sizeof *j->archives);
  j->archives[j->n_archives] = NULL;
  copy_request areq = j->req;
  areq.take_file = NULL;
  int r = add_archive (j->b, afd, src, k == ARCHIVE_RAW, j->dest_view, &areq, &j->ch, &j->archives[j->n_archives],
                       err);
  j->n_archives++;
  return r < 0 ? -1 : 1;
}

/* ADD's URLs go in one by one. Heredoc sources become
 * files in a temp dir; the rest go together (gathered in j->srcs). */
static int
copy_job_sources (copy_job *j, kiln_error **err)
{
  build_exec *b = j->b;
  const plan_step *s = j->s;
  size_t hd = 0;
  for (size_t i = 0; i + 1 < j->n_args; i++)
    {
      if (j->add && is_url (s->args[i]))
        {
          if (j->tmpfd < 0 && store_mktemp (b->o.store, "add-", &j->tmpname, &j->tmpfd, err) < 0)
            return -1;
          if (add_url (b, s->args[i], (int) i, j->tmpfd, j->dest_view, &j->req, j->dest_dir || j->n_args > 2,
                       j->checksum, &j->ch, err) < 0)
            return -1;
          continue;
        }
      if (strncmp (s->args[i], "<<", 2) != 0 || hd >= s->n_heredocs)
        {
          strv_push (&j->srcs, s->args[i]);
          continue;
        }
      const plan_heredoc *h = &s->heredocs[hd++];
      if (j->tmpfd < 0 && store_mktemp (b->o.store, "heredoc-", &j->tmpname, &j->tmpfd, err) < 0)
        return -1;
      if (fs_write_file_atomic_at (j->tmpfd, h->name, h->body, strlen (h->body), 0644, err) < 0)
        return -1;
      copy_request hreq = j->req;
      hreq.dest = (j->dest_dir || j->n_args > 2) ? xasprintf ("%s/%s", j->cdest, h->name) : xstrdup (j->cdest);
      int r = copy_add_file (j->dest_view, &hreq, j->tmpfd, h->name, 0644, created_time (b), &j->ch, err);
      free ((char *) hreq.dest);
      if (r < 0)
        return -1;
    }
  return 0;
}

/* The gathered sources, from a --from stage or image or the context. */
static int
copy_job_gathered (copy_job *j, kiln_error **err)
{
  build_exec *b = j->b;
  const plan_step *s = j->s;
  if (!j->srcs)
    return 0;
  j->req.srcs = j->srcs;
  if (j->key_only && s->from_image)
    {
      /* the image's manifest, not its files (the stage's key names a
       * --from stage) */
      const store_fetch_result *fr;
      if (build_from_fetch_image (b, s->from_image, build_from_stage_platform (b, j->st), &fr, err) < 0)
        return -1;
      snprintf (j->from_manifest, sizeof j->from_manifest, "%s", fr->manifest_digest);
      return 0;
    }
  if (j->key_only && s->from_stage >= 0)
    return 0;
  if (s->from_stage >= 0 || s->from_image)
    {
      if (s->from_stage >= 0)
        {
          if (build_from_stage_lower (b, &b->stages[s->from_stage], &j->src_lower, err) < 0)
            return -1;
        }
      else if (build_from_image_lower (b, j->st, s->from_image, &j->src_lower, err) < 0)
        return -1;
      /* Docker/BuildKit: without --chown a stage's or image's files keep
       * their numeric owners (the context's become 0:0). */
      j->req.keep_owner = true;
      return copy_from_layers (j->src_lower, j->dest_view, &j->req, &j->ch, err) < 0 ? -1 : 0;
    }
  if (b->ctxfd < 0)
    return kiln_error_make (err, EINVAL, "%s from the build context, but the build has no context", j->what);
  if (j->add)
    {
      j->req.take_file = add_take_archive;
      j->req.take_ud = j;
    }
  return copy_from_context (b->ctxfd, b->ign, j->dest_view, &j->req, &j->ch, err) < 0 ? -1 : 0;
}

/* The step's key without the layers below it (build_key_lazy): its
 * sources copied onto an empty view. 1 hit, 0 miss (key set), negative
 * error. */
static int
copy_lazy_lookup (build_exec *b, stage_state *st, const plan_step *s, const char *created_by,
                  char key[DIGEST_STRING_SIZE], kiln_error **err)
{
  copy_job j = { .b = b, .st = st, .s = s, .add = s->kind == DF_ADD, .tmpfd = -1, .key_only = true };
  j.what = j.add ? "ADD" : "COPY";
  j.n_args = strv_len (s->args);
  j.checksum = plan_step_flag (s, "checksum");
  int r = overlay_lower_open_store (b->o.store, NULL, 0, &j.dest_view, err);
  if (r == 0 && (copy_job_request (&j, st, err) < 0 || copy_job_sources (&j, err) < 0 || copy_job_gathered (&j, err) < 0))
    r = -1;
  if (r == 0 && j.from_manifest[0])
    build_cache_key_add (&st->ckey, "from-image-manifest", j.from_manifest);
  if (r == 0)
    r = build_key_lazy_finish (st, j.ch.v, j.ch.n, key, err);
  copy_job_release (&j);
  if (r < 0)
    return -1;
  return build_key_lookup (b, st, key, false, created_by, err);
}

/* ADD's URLs are read when the step runs: such a step is keyed the usual
 * way. */
static bool
has_url (const plan_step *s, size_t n_args)
{
  for (size_t i = 0; i + 1 < n_args; i++)
    if (is_url (s->args[i]))
      return true;
  return false;
}

int
build_copy_step (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err)
{
  copy_job j = { .b = b, .st = st, .s = s, .add = s->kind == DF_ADD, .tmpfd = -1 };
  j.what = j.add ? "ADD" : "COPY";
  j.n_args = strv_len (s->args);
  j.checksum = plan_step_flag (s, "checksum");
  if (copy_job_check (&j, err) < 0)
    return -1;
  autofree char *text = build_meta_one_line (s->instr->original);
  autofree char *created_by = xasprintf ("%s # kiln", text);
  char key[DIGEST_STRING_SIZE] = "";
  if (build_key_lazy (st) && !has_url (s, j.n_args))
    {
      int hit = copy_lazy_lookup (b, st, s, created_by, key, err);
      if (hit != 0)
        return hit < 0 ? -1 : 0;
    }
  if (build_from_stage_lower (b, st, &j.dest_view, err) < 0)
    return -1;
  int ret = -1;
  if (copy_job_request (&j, st, err) == 0 && copy_job_sources (&j, err) == 0 && copy_job_gathered (&j, err) == 0)
    ret = build_exec_commit_layer (b, st, j.ch.v, j.ch.n, created_by, *key ? key : NULL, false, err);
  copy_job_release (&j);
  return ret;
}
