/* copy.c - COPY/ADD change lists from the context or from layers (copy.h). */
#include "build/copy_internal.h"
#include "build/rootfs.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/hash.h"
#include "util/strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>


static void
owned_clear (struct copy_owned *o)
{
  free (o->path);
  free (o->symlink);
  free (o->hardlink);
  free (o->data_path);
  for (size_t i = 0; i < o->n_xattrs; i++)
    {
      free (o->xattr_names[i]);
      free (o->xattr_values[i]);
    }
  free (o->xattr_names);
  free (o->xattr_values);
  free (o->xattrs);
  memset (o, 0, sizeof *o);
}

void
copy_changes_free (copy_changes *c)
{
  for (size_t i = 0; i < c->n; i++)
    owned_clear (&c->owned[i]);
  free (c->owned);
  free (c->v);
  free (c->hash);
  memset (c, 0, sizeof *c);
}

static void
hash_insert (copy_changes *c, size_t idx)
{
  size_t m = c->hash_cap - 1;
  for (size_t h = hash_fnv1a_str (c->v[idx].path) & m;; h = (h + 1) & m)
    if (c->hash[h] == 0)
      {
        c->hash[h] = idx + 1;
        return;
      }
}

static ssize_t
changes_find (const copy_changes *c, const char *path)
{
  if (c->hash_cap == 0)
    return -1;
  size_t m = c->hash_cap - 1;
  for (size_t h = hash_fnv1a_str (path) & m; c->hash[h]; h = (h + 1) & m)
    if (strcmp (c->v[c->hash[h] - 1].path, path) == 0)
      return (ssize_t) (c->hash[h] - 1);
  return -1;
}

/* The (cleared) entry for path: a new one, or the existing one reset. */
static layer_change *
changes_put (copy_changes *c, const char *path, struct copy_owned **owned)
{
  ssize_t i = changes_find (c, path);
  if (i >= 0)
    {
      owned_clear (&c->owned[i]);
      c->owned[i].path = xstrdup (path);
      memset (&c->v[i], 0, sizeof c->v[i]);
      c->v[i].path = c->owned[i].path;
      c->v[i].data_dirfd = -1;
      *owned = &c->owned[i];
      return &c->v[i];
    }
  if (c->n == c->cap)
    {
      c->cap = c->cap ? c->cap * 2 : 64;
      c->v = xreallocarray (c->v, c->cap, sizeof *c->v);
      c->owned = xreallocarray (c->owned, c->cap, sizeof *c->owned);
    }
  if ((c->n + 1) * 2 > c->hash_cap)
    {
      free (c->hash);
      c->hash_cap = c->hash_cap ? c->hash_cap * 2 : 128;
      while ((c->n + 1) * 2 > c->hash_cap)
        c->hash_cap *= 2;
      c->hash = xcalloc (c->hash_cap, sizeof *c->hash);
      for (size_t k = 0; k < c->n; k++)
        hash_insert (c, k);
    }
  size_t k = c->n++;
  memset (&c->owned[k], 0, sizeof c->owned[k]);
  memset (&c->v[k], 0, sizeof c->v[k]);
  c->owned[k].path = xstrdup (path);
  c->v[k].path = c->owned[k].path;
  c->v[k].data_dirfd = -1;
  hash_insert (c, k);
  *owned = &c->owned[k];
  return &c->v[k];
}

int
copy_parse_chmod (const char *s, mode_t *out, kiln_error **err)
{
  char *end;
  errno = 0;
  unsigned long v = strtoul (s, &end, 8);
  if (*s == '\0' || *end || errno || v > 07777)
    return kiln_error_make (err, EINVAL, "--chmod '%s': only octal modes (e.g. 755) are supported", s);
  *out = v;
  return 0;
}

/* ---- the copy itself ---- */

typedef struct copy_run
{
  source *src;
  overlay_lower *dest_view;
  const copy_request *req;
  copy_changes *out;
  /* hardlink identities seen in this COPY (context only) */
  struct hl
  {
    dev_t dev;
    ino_t ino;
    char *path;
  } *hls;
  size_t n_hls;
  dockerignore *excl;   /* --exclude patterns */
  const char *base;     /* the top-level source being copied */
} copy_run;

static bool
has_glob (const char *s)
{
  return strpbrk (s, "*?[\\") != NULL;
}

/* Clean a source pattern: strip leading '/', "./", collapse "//"; reject
 * ".." that would leave the root. */
static int
clean_rel (const char *in, char **out, kiln_error **err)
{
  if (fs_path_clean (in, false, out) < 0)
    return kiln_error_make (err, EINVAL, "source '%s' is outside the build context", in);
  return 0;
}

static char *
join (const char *a, const char *b)
{
  if (*a == '\0')
    return xstrdup (b);
  if (*b == '\0')
    return xstrdup (a);
  return xasprintf ("%s/%s", a, b);
}

static const char *
rel_to_base (copy_run *c, const char *path)
{
  size_t bl = c->base ? strlen (c->base) : 0;
  if (bl && strncmp (path, c->base, bl) == 0 && path[bl] == '/')
    return path + bl + 1;
  return path;
}

static bool
excluded (copy_run *c, const char *path)
{
  if (c->src->ign && *path && dockerignore_excluded (c->src->ign, path))
    return true;
  if (c->excl && *path)
    {
      /* --exclude patterns match below the source being copied (and the
       * source path itself, for patterns naming it). */
      const char *rel = rel_to_base (c, path);
      if (dockerignore_excluded (c->excl, rel) || (rel != path && dockerignore_excluded (c->excl, path)))
        return true;
    }
  return false;
}

/* May the walk skip excluded directory path (no exception can match below)? */
static bool
can_skip_dir (copy_run *c, const char *path)
{
  if (c->src->ign && dockerignore_excluded (c->src->ign, path))
    return dockerignore_can_skip_dir (c->src->ign, path);
  if (c->excl)
    {
      const char *rel = rel_to_base (c, path);
      if (dockerignore_excluded (c->excl, rel))
        return dockerignore_can_skip_dir (c->excl, rel);
      return dockerignore_can_skip_dir (c->excl, path);
    }
  return true;
}

/* Expand a wildcard pattern against the source (component by component). */
static int
expand_glob (copy_run *c, const char *dir, const char *pat, char ***out)
{
  const char *slash = strchr (pat, '/');
  autofree char *comp = slash ? xstrndup (pat, slash - pat) : xstrdup (pat);
  const char *rest = slash ? slash + 1 : NULL;
  if (!has_glob (comp))
    {
      autofree char *p = join (dir, comp);
      if (!rest)
        {
          src_stat st;
          if (c->src->stat (c->src, p, &st) == 0)
            {
              free (st.symlink);
              strv_push (out, p);
            }
          return 0;
        }
      return expand_glob (c, p, rest, out);
    }
  autostrv char **names = NULL;
  int r = c->src->list (c->src, dir, &names);
  if (r < 0)
    return r == -ENOENT || r == -ENOTDIR ? 0 : r;
  for (char **n = names; n && *n; n++)
    {
      if (fnmatch (comp, *n, FNM_PATHNAME | FNM_PERIOD * 0) != 0)
        continue;
      autofree char *p = join (dir, *n);
      if (excluded (c, p))
        continue;
      if (!rest)
        strv_push (out, p);
      else if ((r = expand_glob (c, p, rest, out)) < 0)
        return r;
    }
  return 0;
}

/* Is the directory a wildcard lists missing (the literal components
 * before its first wildcard; excluded counts as missing)? */
static bool
glob_dir_missing (copy_run *c, const char *pat)
{
  autofree char *dir = xstrdup ("");
  for (const char *p = pat;;)
    {
      const char *slash = strchr (p, '/');
      if (!slash)
        break;
      autofree char *comp = xstrndup (p, slash - p);
      if (has_glob (comp))
        break;
      char *n = join (dir, comp);
      free (dir);
      dir = n;
      p = slash + 1;
    }
  if (*dir == '\0')
    return false;
  src_stat st;
  if (c->src->stat (c->src, dir, &st) < 0)
    return true;
  free (st.symlink);
  return !S_ISDIR (st.mode) || (excluded (c, dir) && can_skip_dir (c, dir));
}

/* A directory already in the image goes into the layer with its own
 * metadata (a layer must carry its parents; their modes must not change). */
static void
put_existing_dir (copy_run *c, const char *path, const rootfs_entry *e)
{
  struct copy_owned *o;
  layer_change *ch = changes_put (c->out, path, &o);
  ch->kind = LAYER_CHANGE_ADD;
  ch->meta.type = LAYER_INDEX_DIR;
  ch->meta.mode = e->attr.mode & 07777;
  ch->meta.uid = e->attr.uid;
  ch->meta.gid = e->attr.gid;
  ch->meta.mtime_sec = e->attr.mtime.tv_sec;
  ch->meta.mtime_nsec = e->attr.mtime.tv_nsec;
}

/* Parent directories of dest path (relative) into the change list. */
static int
add_parents (copy_run *c, const char *path)
{
  autofree char *acc = xstrdup ("");
  const char *p = path;
  for (;;)
    {
      const char *slash = strchr (p, '/');
      if (!slash)
        break;
      autofree char *comp = xstrndup (p, slash - p);
      char *n = join (acc, comp);
      free (acc);
      acc = n;
      p = slash + 1;
      if (changes_find (c->out, acc) >= 0)
        continue;
      rootfs_entry e;
      int r = c->req->link ? -ENOENT : rootfs_stat (c->dest_view, acc, &e);
      struct copy_owned *o;
      if (r == 0)
        {
          if (!S_ISDIR (e.attr.mode))
            {
              mode_t m = e.attr.mode;
              rootfs_entry_clear (&e);
              if (S_ISLNK (m))
                return -ELOOP;
              return -ENOTDIR;
            }
          put_existing_dir (c, acc, &e);
          rootfs_entry_clear (&e);
          continue;
        }
      if (r != -ENOENT)
        return r;
      layer_change *ch = changes_put (c->out, acc, &o);
      ch->kind = LAYER_CHANGE_ADD;
      ch->meta.type = LAYER_INDEX_DIR;
      ch->meta.mode = 0755;
      /* BuildKit: missing parents belong to the --chown user; a --link
       * layer is made on scratch, its parents are plain root 0755. */
      ch->meta.uid = c->req->chown && !c->req->link ? c->req->uid : 0;
      ch->meta.gid = c->req->chown && !c->req->link ? c->req->gid : 0;
      ch->meta.mtime_sec = c->req->now;
    }
  return 0;
}

static layer_index_type
index_type (mode_t m)
{
  switch (m & S_IFMT)
    {
    case S_IFREG: return LAYER_INDEX_REG;
    case S_IFDIR: return LAYER_INDEX_DIR;
    case S_IFLNK: return LAYER_INDEX_SYMLINK;
    case S_IFCHR: return LAYER_INDEX_CHR;
    case S_IFBLK: return LAYER_INDEX_BLK;
    case S_IFIFO: return LAYER_INDEX_FIFO;
    default: return LAYER_INDEX_SOCK;
    }
}

/* One entry: source path sp -> destination path dp (relative). */
static int
copy_entry (copy_run *c, const char *sp, const char *dp, const src_stat *st, kiln_error **err)
{
  struct copy_owned *o;
  layer_change *ch = changes_put (c->out, dp, &o);
  ch->kind = LAYER_CHANGE_ADD;
  ch->meta.type = index_type (st->mode);
  ch->meta.mode = c->req->chmod ? c->req->mode : (st->mode & 07777);
  if (S_ISLNK (st->mode))
    ch->meta.mode = 0777;
  /* A directory named as a source is the destination directory, which
   * BuildKit creates owned by --chown or root; its contents keep theirs. */
  bool keep = c->req->keep_owner
              && (c->req->keep_owner_top || !S_ISDIR (st->mode) || !c->base || strcmp (sp, c->base) != 0);
  ch->meta.uid = c->req->chown ? c->req->uid : keep ? st->uid : 0;
  ch->meta.gid = c->req->chown ? c->req->gid : keep ? st->gid : 0;
  ch->meta.mtime_sec = st->mtime_sec;
  ch->meta.mtime_nsec = st->mtime_nsec;
  ch->meta.rdev_major = major (st->rdev);
  ch->meta.rdev_minor = minor (st->rdev);
  if (S_ISLNK (st->mode))
    {
      o->symlink = xstrdup (st->symlink ? st->symlink : "");
      ch->meta.link_target = o->symlink;
      ch->meta.size = strlen (o->symlink);
      return 0;
    }
  if (S_ISREG (st->mode))
    {
      if (st->nlink > 1)
        {
          for (size_t i = 0; i < c->n_hls; i++)
            if (c->hls[i].dev == st->dev && c->hls[i].ino == st->ino && changes_find (c->out, c->hls[i].path) >= 0)
              {
                o->hardlink = xstrdup (c->hls[i].path);
                ch->hardlink_target = o->hardlink;
                return 0;
              }
          c->hls = xreallocarray (c->hls, c->n_hls + 1, sizeof *c->hls);
          c->hls[c->n_hls++] = (struct hl) { st->dev, st->ino, xstrdup (dp) };
        }
      int dfd;
      if (c->src->data (c->src, sp, st, &dfd, &o->data_path, &ch->data_private) < 0)
        return kiln_error_make (err, EIO, "%s: no data for '%s'", c->req->what, sp);
      ch->data_dirfd = dfd;
      ch->data_path = o->data_path;
      ch->meta.size = st->size;
      if (!ch->data_private)
        {
          ch->src_ino = (uint64_t) st->ino;
          ch->src_ctime_sec = st->ctime_sec;
          ch->src_ctime_nsec = st->ctime_nsec;
          ch->src_settled = st->ctime_settled;
        }
    }
  c->src->xattrs (c->src, sp, st, o);
  ch->meta.xattrs = o->xattrs;
  ch->meta.n_xattrs = o->n_xattrs;
  return 0;
}

/* An existing directory at dp keeps its own metadata (a COPY into /tmp
 * must not reset its 1777); returns true if it exists. */
static bool
keep_existing_dir (copy_run *c, const char *dp)
{
  if (c->req->link || *dp == '\0')
    return false;
  rootfs_entry e;
  if (rootfs_stat (c->dest_view, dp, &e) < 0)
    return false;
  bool dir = S_ISDIR (e.attr.mode);
  if (dir)
    put_existing_dir (c, dp, &e);
  rootfs_entry_clear (&e);
  return dir;
}

static int
copy_tree (copy_run *c, const char *sp, const char *dp, const src_stat *st, kiln_error **err)
{
  if (!(S_ISDIR (st->mode) && keep_existing_dir (c, dp)) && copy_entry (c, sp, dp, st, err) < 0)
    return -1;
  if (!S_ISDIR (st->mode))
    return 0;
  autostrv char **names = NULL;
  int r = c->src->list (c->src, sp, &names);
  if (r < 0)
    return kiln_error_make (err, -r, "%s: list '%s'", c->req->what, sp);
  for (char **n = names; n && *n; n++)
    {
      autofree char *csp = join (sp, *n);
      autofree char *cdp = join (dp, *n);
      src_stat cst;
      r = c->src->stat (c->src, csp, &cst);
      if (r < 0)
        return kiln_error_make (err, -r, "%s: stat '%s'", c->req->what, csp);
      /* An excluded directory is still walked when an exception pattern
       * may match below it; its children are filtered one by one. */
      if (excluded (c, csp) && (!S_ISDIR (cst.mode) || can_skip_dir (c, csp)))
        {
          free (cst.symlink);
          continue;
        }
      r = copy_tree (c, csp, cdp, &cst, err);
      free (cst.symlink);
      if (r < 0)
        return -1;
    }
  return 0;
}

static const char *
base_name (const char *p)
{
  const char *s = strrchr (p, '/');
  return s ? s + 1 : p;
}

/* Docker follows a symlink named as a source (not those found inside a
 * copied directory), resolving it inside the source root. */
static int
follow_source (copy_run *c, const char *path, char **target, src_stat *st)
{
  autofree char *cur = xstrdup (path);
  for (int hops = 0;; hops++)
    {
      int r = c->src->stat (c->src, cur, st);
      if (r < 0)
        return r;
      if (!S_ISLNK (st->mode))
        break;
      if (hops >= 40)
        {
          free (st->symlink);
          return -ELOOP;
        }
      const char *slash = strrchr (cur, '/');
      autofree char *dir = slash ? xstrndup (cur, slash - cur) : xstrdup ("");
      autofree char *joined = st->symlink[0] == '/' ? xstrdup (st->symlink) : join (dir, st->symlink);
      free (st->symlink);
      st->symlink = NULL;
      /* ".." above the root stays at the root, as in a chroot. */
      autofree char *clean = NULL;
      fs_path_clean (joined, true, &clean);
      free (cur);
      cur = steal_pointer (&clean);
    }
  *target = steal_pointer (&cur);
  return 0;
}

/* The sources of the request, wildcards expanded and checked (clean
 * relative paths into *matches); *n_src counts the request's sources. */
static int
collect_matches (copy_run *c, char ***matches, size_t *n_src, kiln_error **err)
{
  const copy_request *req = c->req;
  if (req->excludes && !c->excl)
    {
      autostrbuf strbuf pats = STRBUF_INIT;
      for (char **e = req->excludes; *e; e++)
        {
          strbuf_adds (&pats, *e);
          strbuf_addch (&pats, '\n');
        }
      if (dockerignore_parse (pats.buf, pats.len, &c->excl, err) < 0)
        return kiln_error_wrap (err, "%s --exclude", req->what);
    }
  *n_src = 0;
  for (char **s = req->srcs; s && *s; s++, (*n_src)++)
    {
      autofree char *clean = NULL;
      if (clean_rel (*s, &clean, err) < 0)
        return kiln_error_wrap (err, "%s", req->what);
      if (has_glob (clean))
        {
          size_t before = strv_len (*matches);
          int r = expand_glob (c, "", clean, matches);
          if (r < 0)
            return kiln_error_make (err, -r, "%s: expanding '%s'", req->what, *s);
          /* BuildKit copies nothing for a wildcard that matches nothing
           * (AllowEmptyWildcard), as long as the directory it lists is there. */
          if (strv_len (*matches) == before && glob_dir_missing (c, clean))
            return kiln_error_make (err, ENOENT, "%s: source '%s': its directory is not in the %s%s", req->what, *s,
                                    c->src->ign ? "build context" : "stage or image",
                                    c->src->ign ? " (or it is excluded by .dockerignore)" : "");
          continue;
        }
      src_stat st;
      int r = c->src->stat (c->src, clean, &st);
      free (st.symlink);
      if (r < 0 || (*clean && excluded (c, clean)))
        return kiln_error_make (err, r < 0 ? -r : ENOENT, "%s: source '%s' not found%s", req->what, *s,
                                c->src->ign ? " in the build context (or excluded by .dockerignore)" : "");
      strv_push (matches, clean);
    }
  return 0;
}

/* A directory's contents copied into the root (the root itself is not in
 * a layer). */
static int
copy_into_root (copy_run *c, const char *target, kiln_error **err)
{
  autostrv char **names = NULL;
  int r = c->src->list (c->src, target, &names);
  for (char **n = names; r == 0 && n && *n; n++)
    {
      autofree char *csp = join (target, *n);
      if (excluded (c, csp))
        continue;
      src_stat cst;
      if (c->src->stat (c->src, csp, &cst) < 0)
        continue;
      r = copy_tree (c, csp, *n, &cst, err) < 0 ? -1 : 0;
      free (cst.symlink);
    }
  return r < 0 ? -1 : 0;
}

/* One matched source m to its destination under dest (c->base is the
 * followed source while it runs). */
static int
copy_match_at (copy_run *c, const char *m, const char *dest, bool dest_dir, kiln_error **err)
{
  const copy_request *req = c->req;
  src_stat st;
  autofree char *target = NULL;
  int r = follow_source (c, m, &target, &st);
  if (r < 0)
    return kiln_error_make (err, -r, "%s: source '%s'", req->what, m);
  c->base = target;
  if (req->take_file && S_ISREG (st.mode))
    {
      r = req->take_file (req->take_ud, target, err);
      if (r != 0)
        {
          free (st.symlink);
          return r < 0 ? -1 : 0;
        }
    }
  autofree char *dp = NULL;
  if (req->parents)
    dp = join (dest, m);
  else if (S_ISDIR (st.mode))
    dp = xstrdup (dest);
  else if (dest_dir)
    dp = join (dest, base_name (m));
  else
    dp = xstrdup (dest);
  if (*dp && (r = add_parents (c, dp)) < 0)
    {
      free (st.symlink);
      return kiln_error_make (err, -r, "%s: destination '/%s': a parent is not a directory%s", req->what, dp,
                              r == -ELOOP ? " (symlinked parents are not followed yet)" : "");
    }
  if (S_ISDIR (st.mode) && *dp == '\0')
    r = copy_into_root (c, target, err);
  else
    r = copy_tree (c, target, dp, &st, err);
  free (st.symlink);
  return r < 0 ? -1 : 0;
}

static int
copy_match (copy_run *c, const char *m, const char *dest, bool dest_dir, kiln_error **err)
{
  int r = copy_match_at (c, m, dest, dest_dir, err);
  c->base = NULL; /* it pointed into copy_match_at's copy of the path */
  return r;
}

static int
run_copy (copy_run *c, kiln_error **err)
{
  const copy_request *req = c->req;
  autofree char *dest = NULL;
  if (clean_rel (req->dest, &dest, err) < 0)
    return -1;
  size_t n_src = 0;
  autostrv char **matches = NULL;
  if (collect_matches (c, &matches, &n_src, err) < 0)
    return -1;
  /* A wildcard that matches one file copies it as a file (Docker: only
   * several sources make the destination a directory). */
  bool dest_dir = req->dest_is_dir || n_src > 1 || strv_len (matches) > 1 || *dest == '\0';
  if (!dest_dir && matches && matches[0])
    {
      rootfs_entry e;
      if (!req->link && rootfs_stat (c->dest_view, dest, &e) == 0)
        {
          dest_dir = S_ISDIR (e.attr.mode);
          rootfs_entry_clear (&e);
        }
    }
  for (char **m = matches; m && *m; m++)
    if (copy_match (c, *m, dest, dest_dir, err) < 0)
      return -1;
  return 0;
}

static void
run_free (copy_run *c)
{
  dockerignore_free (c->excl);
  for (size_t i = 0; i < c->n_hls; i++)
    free (c->hls[i].path);
  free (c->hls);
}

int
copy_from_context (int ctx_dirfd, const dockerignore *ign, overlay_lower *dest_view, const copy_request *req,
                   copy_changes *out, kiln_error **err)
{
  source s;
  copy_source_context (&s, ctx_dirfd, ign);
  copy_run c = { .src = &s, .dest_view = dest_view, .req = req, .out = out };
  int r = run_copy (&c, err);
  run_free (&c);
  return r;
}

int
copy_from_layers (overlay_lower *src, overlay_lower *dest_view, const copy_request *req, copy_changes *out,
                  kiln_error **err)
{
  source s;
  copy_source_layers (&s, src);
  copy_run c = { .src = &s, .dest_view = dest_view, .req = req, .out = out };
  int r = run_copy (&c, err);
  run_free (&c);
  return r;
}

int
copy_add_file (overlay_lower *dest_view, const copy_request *req, int data_dirfd, const char *data_path, mode_t mode,
               int64_t mtime, copy_changes *out, kiln_error **err)
{
  autofree char *dest = NULL;
  if (clean_rel (req->dest, &dest, err) < 0)
    return -1;
  source s;
  copy_source_context (&s, data_dirfd, NULL);
  copy_run c = { .src = &s, .dest_view = dest_view, .req = req, .out = out };
  int r = add_parents (&c, dest);
  run_free (&c);
  if (r < 0)
    return kiln_error_make (err, -r, "%s: destination '/%s': a parent is not a directory", req->what, dest);
  struct stat sb;
  if (fstatat (data_dirfd, data_path, &sb, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_make (err, errno, "stat '%s'", data_path);
  struct copy_owned *o;
  layer_change *ch = changes_put (out, dest, &o);
  ch->kind = LAYER_CHANGE_ADD;
  ch->meta.type = LAYER_INDEX_REG;
  ch->meta.mode = req->chmod ? req->mode : mode;
  ch->meta.uid = req->chown ? req->uid : 0;
  ch->meta.gid = req->chown ? req->gid : 0;
  ch->meta.size = sb.st_size;
  ch->meta.mtime_sec = mtime;
  o->data_path = xstrdup (data_path);
  ch->data_dirfd = data_dirfd;
  ch->data_path = o->data_path;
  ch->data_private = true;
  return 0;
}

int
copy_mkdir (overlay_lower *dest_view, const char *path, uid_t uid, gid_t gid, int64_t now, copy_changes *out,
            kiln_error **err)
{
  autofree char *rel = NULL;
  if (clean_rel (path, &rel, err) < 0)
    return -1;
  if (*rel == '\0')
    return 0;
  rootfs_entry e;
  int r = rootfs_stat (dest_view, rel, &e);
  if (r == 0)
    {
      bool dir = S_ISDIR (e.attr.mode);
      rootfs_entry_clear (&e);
      if (dir)
        return 0;
      return kiln_error_make (err, ENOTDIR, "'/%s' exists and is not a directory", rel);
    }
  copy_request req = { .chown = true, .uid = uid, .gid = gid, .what = "WORKDIR", .now = now };
  source s;
  copy_source_context (&s, -1, NULL);
  copy_run c = { .src = &s, .dest_view = dest_view, .req = &req, .out = out };
  autofree char *child = xasprintf ("%s/x", rel);
  r = add_parents (&c, child);
  run_free (&c);
  if (r < 0)
    return kiln_error_make (err, -r, "creating '/%s': a parent is not a directory", rel);
  return (int) out->n;
}
