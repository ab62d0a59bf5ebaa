/* overlay_dir_commit.c - the write log becomes the step's change list, the
 * same one overlay_model_commit.c makes for the same operations: only dirty
 * names are visited (a name new in the step ships with everything below
 * it); the data of changed files is frozen in place. See
 * overlay_dir_internal.h.
 */
#include "overlay/overlay_dir_internal.h"
#include "store/layer_index.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct pending
{
  char *path;
  overlay_change_kind kind;
  struct stat st;
} pending;

typedef struct commit_ctx
{
  overlay_dir *od;
  pending *v;
  size_t n, cap;
  char **dirty;      /* the dirty set, sorted parents first */
  size_t nd;
  char *too_long;
  int frozen_fd;
  char frozen_name[32];
} commit_ctx;

static void
emit (commit_ctx *c, overlay_change_kind kind, const char *path, const struct stat *st)
{
  if (c->n == c->cap)
    {
      c->cap = c->cap ? c->cap * 2 : 64;
      c->v = xreallocarray (c->v, c->cap, sizeof *c->v);
    }
  c->v[c->n++] = (pending) { .path = xstrdup (path), .kind = kind, .st = *st };
}

/* Order: parents before children, siblings by name ('/' sorts first). */
static int
cmp_path (const char *a, const char *b)
{
  for (; *a && *a == *b; a++, b++)
    ;
  unsigned char x = *a == '/' ? 1 : (unsigned char) *a, y = *b == '/' ? 1 : (unsigned char) *b;
  return x < y ? -1 : x > y;
}

static int
cmp_str (const void *a, const void *b)
{
  return cmp_path (*(char *const *) a, *(char *const *) b);
}

static int
cmp_pending (const void *a, const void *b)
{
  const pending *x = a, *y = b;
  int r = cmp_path (x->path, y->path);
  return r ? r : (int) x->kind - (int) y->kind;
}

static bool
under (const char *p, const char *dir, size_t dl)
{
  return !dl || (!strncmp (p, dir, dl) && p[dl] == '/');
}

static char *
child_path (commit_ctx *c, const char *path, const char *name)
{
  size_t len = strlen (path) + (*path ? 1 : 0) + strlen (name);
  if (len <= LAYER_INDEX_PATH_MAX)
    return od_join (path, name);
  if (!c->too_long)
    c->too_long = xasprintf ("%.96s", *path ? path : name);
  return NULL;
}

/* A name that is new in this step: ship it and everything below it. */
static void
emit_full (commit_ctx *c, int dirfd, const char *name, const char *path, const struct stat *st)
{
  if (od_masked (c->od, path, st))
    return;
  emit (c, OVERLAY_CHANGE_ADD, path, st);
  if (!S_ISDIR (st->st_mode))
    return;
  int fd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d = fd < 0 ? NULL : fdopendir (fd);
  if (!d)
    {
      if (fd >= 0)
        close (fd);
      return;
    }
  struct dirent *de;
  while ((de = readdir (d)) && !c->too_long)
    {
      if (!strcmp (de->d_name, ".") || !strcmp (de->d_name, ".."))
        continue;
      struct stat cst;
      autofree char *p = child_path (c, path, de->d_name);
      if (p && fstatat (fd, de->d_name, &cst, AT_SYMLINK_NOFOLLOW) == 0)
        emit_full (c, fd, de->d_name, p, &cst);
    }
  closedir (d);
}

static size_t
skip_below (commit_ctx *c, size_t i, const char *p)
{
  size_t pl = strlen (p);
  while (i < c->nd && under (c->dirty[i], p, pl))
    i++;
  return i;
}

/* The dirty names below dir (from index i of the sorted dirty set; the
 * first is a direct child since every directory above a dirty name is
 * dirty): returns the index after dir's block. */
static size_t
emit_dirty (commit_ctx *c, int dirfd, const char *dir, size_t i)
{
  overlay_dir *od = c->od;
  size_t dl = strlen (dir);
  while (i < c->nd && under (c->dirty[i], dir, dl) && !c->too_long)
    {
      const char *p = c->dirty[i++];
      const char *name = p + (dl ? dl + 1 : 0);
      struct stat st;
      if (strlen (p) > LAYER_INDEX_PATH_MAX)
        {
          if (!c->too_long)
            c->too_long = xasprintf ("%.96s", p);
          break;
        }
      bool exists = fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
      bool deleted = od_set_has (&od->deleted, p);
      bool descend = false;
      if (od_masked (od, p, exists ? &st : NULL))
        ;
      else if (!exists)
        {
          if (deleted)
            emit (c, OVERLAY_CHANGE_WHITEOUT, p, &(struct stat) { 0 });
        }
      else if (deleted || !od_set_has (&od->base, p))
        {
          /* a replaced directory must hide what the lowers had below it */
          if (deleted && S_ISDIR (st.st_mode))
            emit (c, OVERLAY_CHANGE_OPAQUE, p, &st);
          emit_full (c, dirfd, name, p, &st);
        }
      else
        {
          od_meta *e = od_meta_get (od, &st, 0);
          bool changed = !e || e->changed == od->gen;
          if (changed)
            emit (c, OVERLAY_CHANGE_ADD, p, &st);
          descend = S_ISDIR (st.st_mode);
          if (descend)
            {
              size_t before = c->n;
              autoclose int sub = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
              if (sub >= 0)
                i = emit_dirty (c, sub, p, i);
              /* as Docker and buildah, the directories above a change ship
               * with their current metadata */
              if (c->n > before && !changed)
                emit (c, OVERLAY_CHANGE_ADD, p, &st);
            }
        }
      i = skip_below (c, i, p);
    }
  return i;
}

/* ---- filling the list ---- */
static int
freeze (commit_ctx *c, const char *path, const struct stat *st, od_meta *e, overlay_change *ch,
        kiln_error **err)
{
  overlay_dir *od = c->od;
  if (c->frozen_fd < 0)
    {
      snprintf (c->frozen_name, sizeof c->frozen_name, "frozen-%u", od->gen);
      if (mkdirat (od->scratch_fd, c->frozen_name, 0700) < 0 && errno != EEXIST)
        return kiln_error_make (err, errno, "overlay dir: mkdir '%s'", c->frozen_name);
      c->frozen_fd = openat (od->scratch_fd, c->frozen_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (c->frozen_fd < 0)
        return kiln_error_make (err, errno, "overlay dir: open '%s'", c->frozen_name);
    }
  char nm[32];
  snprintf (nm, sizeof nm, "%llu", (unsigned long long) ++od->frozen_seq);
  const char *name;
  autoclose int dfd = od_open_parent (od, path, &name);
  if (dfd < 0)
    return kiln_error_make (err, -dfd, "overlay dir: open the directory of '/%s'", path);
  if (linkat (dfd, name, c->frozen_fd, nm, 0) == 0)
    {
      /* read-only from now on: the next step copies it up before writing */
      if (!(e->flags & OD_LOWER))
        {
          autoclose int fd = openat (dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
          int r = fd < 0 ? -errno : od_chmod_fd (fd, od_ro_mode (e->mode));
          if (r < 0)
            return kiln_error_make (err, -r, "overlay dir: freeze '/%s'", path);
          e->atime = st->st_atim;
          e->mtime = st->st_mtim;
          e->flags |= OD_LOWER;
        }
    }
  else
    {
      /* too many links (or another filesystem): freeze a copy */
      int e0 = errno;
      autoclose int src = openat (dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      autoclose int dst = openat (c->frozen_fd, nm, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
      if (src < 0 || dst < 0)
        return kiln_error_make (err, src < 0 ? errno : e0, "overlay dir: freeze '/%s'", path);
      if (fs_copy_fd (src, dst, UINT64_MAX, NULL, err) < 0)
        return kiln_error_wrap (err, "overlay dir: freeze '/%s'", path);
    }
  ch->data_dirfd = od->scratch_fd;
  ch->data_path = xasprintf ("%s/%s", c->frozen_name, nm);
  ch->data_private = true;
  return 0;
}

static int
fill_change (commit_ctx *c, overlay_change *ch, const pending *p, kiln_error **err)
{
  overlay_dir *od = c->od;
  od_meta *e = od_meta_get (od, &p->st, 0);
  if (!e)
    {
      /* made behind the ops' back: real status, the step's owner */
      e = od_meta_put (od, &p->st, 0);
      e->uid = od->create_uid;
      e->gid = od->create_gid;
      if (S_ISLNK (p->st.st_mode))
        e->mode = S_IFLNK | 0777;
    }
  e->flags &= ~(uint32_t) (OD_MASK_MADE | OD_JUST_MADE);
  ch->mode = e->mode;
  ch->uid = e->uid;
  ch->gid = e->gid;
  ch->rdev = (dev_t) e->rdev;
  ch->mtime = (e->flags & OD_LOWER) ? e->mtime : p->st.st_mtim;
  ch->size = S_ISREG (e->mode) ? (uint64_t) p->st.st_size : 0;
  ch->data_dirfd = -1;
  if (S_ISLNK (p->st.st_mode))
    {
      const char *name;
      autoclose int dfd = od_open_parent (od, p->path, &name);
      char buf[PATH_MAX];
      ssize_t n = dfd < 0 ? -1 : readlinkat (dfd, name, buf, sizeof buf - 1);
      if (n < 0)
        return kiln_error_make (err, errno, "overlay dir: read the link '/%s'", p->path);
      ch->symlink = xstrndup (buf, (size_t) n);
    }
  if (e->nx)
    {
      ch->xattrs = xcalloc (e->nx, sizeof *ch->xattrs);
      for (size_t k = 0; k < e->nx; k++)
        ch->xattrs[k] = (overlay_xattr) { .name = xstrdup (e->x[k].name),
                                          .value = xmemdup (e->x[k].value, e->x[k].len ? e->x[k].len : 1),
                                          .len = e->x[k].len };
      ch->n_xattrs = e->nx;
    }
  if (S_ISREG (e->mode))
    return freeze (c, p->path, &p->st, e, ch, err);
  return 0;
}

/* The first path each inode was shipped under in this commit. */
typedef struct first_name
{
  uint64_t dev, ino;
  const char *path;
} first_name;

static const char *
first_of (first_name *t, size_t cap, const struct stat *st, const char *path)
{
  for (size_t i = (st->st_ino * 0x9E3779B97F4A7C15ull >> 7) & (cap - 1);; i = (i + 1) & (cap - 1))
    {
      if (!t[i].path)
        {
          t[i] = (first_name) { st->st_dev, st->st_ino, path };
          return NULL;
        }
      if (t[i].ino == st->st_ino && t[i].dev == st->st_dev)
        return t[i].path;
    }
}

/* ---- the next step's starting state ---- */
static void
update_base (overlay_dir *od, const overlay_changes *res)
{
  od_set gself = { 0 }, gunder = { 0 };
  for (size_t i = 0; i < res->n; i++)
    if (res->v[i].kind == OVERLAY_CHANGE_WHITEOUT)
      od_set_add (&gself, res->v[i].path);
    else if (res->v[i].kind == OVERLAY_CHANGE_OPAQUE)
      od_set_add (&gunder, res->v[i].path);
  /* a name shipped new replaces what was there: drop the old subtree */
  for (size_t i = 0; i < res->n; i++)
    if (res->v[i].kind == OVERLAY_CHANGE_ADD && S_ISDIR (res->v[i].mode)
        && od_set_has (&od->deleted, res->v[i].path))
      od_set_add (&gunder, res->v[i].path);
  od_base_drop_gone (od, &gself, &gunder);
  for (size_t i = 0; i < res->n; i++)
    if (res->v[i].kind == OVERLAY_CHANGE_ADD || res->v[i].kind == OVERLAY_CHANGE_HARDLINK)
      od_set_add (&od->base, res->v[i].path);
  od_set_clear (&gself);
  od_set_clear (&gunder);
}

static int
build_list (commit_ctx *c, overlay_changes **out, kiln_error **err)
{
  overlay_changes *res = xzalloc (sizeof *res);
  res->v = xcalloc (c->n + 1, sizeof *res->v);
  size_t cap = 16;
  while (cap < c->n * 2)
    cap *= 2;
  autofree first_name *firsts = xcalloc (cap, sizeof *firsts);
  int r = 0;
  for (size_t i = 0; i < c->n && r >= 0; i++)
    {
      pending *p = &c->v[i];
      if (i && p->kind == c->v[i - 1].kind && !strcmp (p->path, c->v[i - 1].path))
        continue;
      overlay_change *ch = &res->v[res->n++];
      ch->path = xstrdup (p->path);
      ch->kind = p->kind;
      ch->data_dirfd = -1;
      if (p->kind != OVERLAY_CHANGE_ADD)
        continue;
      if (!S_ISDIR (p->st.st_mode))
        {
          const char *first = first_of (firsts, cap, &p->st, p->path);
          if (first)
            {
              od_meta *e = od_meta_get (c->od, &p->st, 0);
              if (e && !e->names)
                strv_push (&e->names, first);
              if (e)
                strv_push (&e->names, p->path);
              ch->kind = OVERLAY_CHANGE_HARDLINK;
              ch->link_target = xstrdup (first);
              ch->mode = e ? e->mode : p->st.st_mode;
              continue;
            }
        }
      r = fill_change (c, ch, p, err);
    }
  if (r < 0)
    {
      overlay_changes_free (res);
      return r;
    }
  *out = res;
  return 0;
}

int
overlay_dir_commit (overlay_dir *od, overlay_changes **out, kiln_error **err)
{
  commit_ctx c = { .od = od, .frozen_fd = -1 };
  c.dirty = xcalloc (od->dirty.n + 1, sizeof *c.dirty);
  for (size_t k = 0; k < od->dirty.cap; k++)
    if (od->dirty.slot[k])
      c.dirty[c.nd++] = od->dirty.slot[k];
  if (c.nd > 1)
    qsort (c.dirty, c.nd, sizeof *c.dirty, cmp_str);
  emit_dirty (&c, od->root_fd, "", 0);
  free (c.dirty);
  int r = 0;
  if (c.too_long)
    r = kiln_error_make (err, ENAMETOOLONG,
                         "the step made a path longer than %d bytes, more than a layer can hold "
                         "(Linux's PATH_MAX): '%s...'",
                         LAYER_INDEX_PATH_MAX, c.too_long);
  struct stat rst;
  od_meta *re;
  if (r == 0 && fstat (od->root_fd, &rst) == 0 && (re = od_meta_get (od, &rst, 0)) && re->changed == od->gen)
    emit (&c, OVERLAY_CHANGE_ADD, "", &rst);
  if (c.n > 1)
    qsort (c.v, c.n, sizeof *c.v, cmp_pending);
  if (r == 0)
    r = build_list (&c, out, err);
  for (size_t i = 0; i < c.n; i++)
    free (c.v[i].path);
  free (c.v);
  free (c.too_long);
  if (c.frozen_fd >= 0)
    close (c.frozen_fd);
  if (r < 0)
    return r;
  update_base (od, *out);
  od_set_clear (&od->dirty);
  od_set_clear (&od->deleted);
  free (od->bw_path);
  od->bw_path = NULL;
  od->gen++;
  return 0;
}
