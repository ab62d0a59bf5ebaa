/* rootfs.c - merged, read-only view of a layer stack (see rootfs.h). */
#include "build/rootfs.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void
rootfs_entry_clear (rootfs_entry *e)
{
  free (e->name);
  free (e->attr.symlink);
  memset (e, 0, sizeof *e);
}

void
rootfs_entries_free (rootfs_entry *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    rootfs_entry_clear (&v[i]);
  free (v);
}

/* One name looked up in one layer's listing of a directory. */
typedef struct find_ctx
{
  const char *name;
  bool found;
  overlay_lower_kind kind;
  overlay_lower_attr attr;
} find_ctx;

static int
find_cb (void *ud, const char *name, overlay_lower_kind kind, const overlay_lower_attr *attr)
{
  find_ctx *f = ud;
  if (strcmp (name, f->name) != 0)
    return 0;
  f->found = true;
  f->kind = kind;
  if (attr)
    {
      f->attr = *attr;
      f->attr.symlink = attr->symlink ? xstrdup (attr->symlink) : NULL;
    }
  return 1; /* stop the listing */
}

/* Layers (top first) in which directory path is part of the merged view.
 * The result is the stack of directories that merge into path. */
static int
dir_layers (overlay_lower *l, const char *path, unsigned **out, size_t *n_out)
{
  unsigned n = overlay_lower_count (l);
  autofree unsigned *active = xcalloc (n ? n : 1, sizeof *active);
  size_t n_active = 0;
  for (unsigned i = n; i-- > 0;)
    active[n_active++] = i;
  autofree char *dir = xstrdup ("");
  const char *p = path;
  while (*p)
    {
      const char *slash = strchr (p, '/');
      size_t len = slash ? (size_t) (slash - p) : strlen (p);
      autofree char *name = xstrndup (p, len);
      p += len;
      while (*p == '/')
        p++;
      if (len == 0)
        continue;
      autofree unsigned *next = xcalloc (n ? n : 1, sizeof *next);
      size_t n_next = 0;
      for (size_t k = 0; k < n_active; k++)
        {
          find_ctx f = { .name = name };
          int opaque = 0;
          int r = overlay_lower_list (l, active[k], dir, &opaque, find_cb, &f);
          free (f.attr.symlink);
          if (r < 0 && r != -ENOENT)
            return r;
          if (r == -ENOENT)
            continue; /* layer has no such directory: look further down */
          if (f.found && f.kind == OVERLAY_LOWER_WHITEOUT)
            break;
          if (f.found)
            {
              if (!S_ISDIR (f.attr.mode))
                {
                  if (n_next == 0)
                    return -ENOTDIR;
                  break;
                }
              next[n_next++] = active[k];
            }
          if (opaque)
            break;
        }
      if (n_next == 0)
        return -ENOENT;
      free (active);
      active = steal_pointer (&next);
      n_active = n_next;
      char *nd = *dir ? xasprintf ("%s/%s", dir, name) : xstrdup (name);
      free (dir);
      dir = nd;
    }
  *out = steal_pointer (&active);
  *n_out = n_active;
  return 0;
}

static void
split_path (const char *path, char **dir, const char **base)
{
  while (*path == '/')
    path++;
  const char *slash = strrchr (path, '/');
  if (slash)
    {
      *dir = xstrndup (path, slash - path);
      *base = slash + 1;
    }
  else
    {
      *dir = xstrdup ("");
      *base = path;
    }
}

int
rootfs_stat (overlay_lower *l, const char *path, rootfs_entry *e)
{
  memset (e, 0, sizeof *e);
  while (*path == '/')
    path++;
  autofree char *dir = NULL;
  const char *base;
  split_path (path, &dir, &base);
  if (*base == '\0')
    {
      /* The root: the top layer's root directory attributes. */
      unsigned n = overlay_lower_count (l);
      if (n == 0)
        {
          e->name = xstrdup ("");
          e->attr.mode = S_IFDIR | 0755;
          return 0;
        }
      autofree unsigned *layers = NULL;
      size_t nl = 0;
      int r = dir_layers (l, "", &layers, &nl);
      if (r < 0)
        return r;
      e->name = xstrdup ("");
      e->attr.mode = S_IFDIR | 0755;
      e->layer = layers[0];
      return 0;
    }
  autofree unsigned *layers = NULL;
  size_t nl = 0;
  int r = dir_layers (l, dir, &layers, &nl);
  if (r < 0)
    return r == -ENOTDIR ? -ENOENT : r;
  for (size_t k = 0; k < nl; k++)
    {
      find_ctx f = { .name = base };
      int opaque = 0;
      r = overlay_lower_list (l, layers[k], dir, &opaque, find_cb, &f);
      if (r < 0 && r != -ENOENT)
        {
          free (f.attr.symlink);
          return r;
        }
      if (f.found && f.kind == OVERLAY_LOWER_WHITEOUT)
        return -ENOENT;
      if (f.found)
        {
          e->name = xstrdup (path);
          e->attr = f.attr;
          e->layer = layers[k];
          return 0;
        }
      if (opaque)
        break;
    }
  return -ENOENT;
}

typedef struct list_ctx
{
  rootfs_entry *v;
  size_t n, cap;
  size_t n_before;   /* entries from higher layers (already decided) */
  char **hidden;     /* whiteouts seen in higher layers */
  size_t n_hidden;
  unsigned layer;
} list_ctx;

static bool
seen (list_ctx *c, const char *name)
{
  for (size_t i = 0; i < c->n_before; i++)
    if (strcmp (c->v[i].name, name) == 0)
      return true;
  for (size_t i = 0; i < c->n_hidden; i++)
    if (strcmp (c->hidden[i], name) == 0)
      return true;
  return false;
}

static int
list_cb (void *ud, const char *name, overlay_lower_kind kind, const overlay_lower_attr *attr)
{
  list_ctx *c = ud;
  if (seen (c, name))
    return 0;
  if (kind == OVERLAY_LOWER_WHITEOUT)
    {
      c->hidden = xreallocarray (c->hidden, c->n_hidden + 1, sizeof *c->hidden);
      c->hidden[c->n_hidden++] = xstrdup (name);
      return 0;
    }
  if (c->n == c->cap)
    {
      c->cap = c->cap ? c->cap * 2 : 32;
      c->v = xreallocarray (c->v, c->cap, sizeof *c->v);
    }
  rootfs_entry *e = &c->v[c->n++];
  memset (e, 0, sizeof *e);
  e->name = xstrdup (name);
  e->attr = *attr;
  e->attr.symlink = attr->symlink ? xstrdup (attr->symlink) : NULL;
  e->layer = c->layer;
  return 0;
}

static int
entry_cmp (const void *a, const void *b)
{
  return strcmp (((const rootfs_entry *) a)->name, ((const rootfs_entry *) b)->name);
}

int
rootfs_list (overlay_lower *l, const char *path, rootfs_entry **out, size_t *n_out)
{
  *out = NULL;
  *n_out = 0;
  while (*path == '/')
    path++;
  autofree unsigned *layers = NULL;
  size_t nl = 0;
  int r = dir_layers (l, path, &layers, &nl);
  if (r < 0)
    return r;
  list_ctx c = { 0 };
  for (size_t k = 0; k < nl; k++)
    {
      int opaque = 0;
      c.layer = layers[k];
      size_t before = c.n;
      r = overlay_lower_list (l, layers[k], path, &opaque, list_cb, &c);
      c.n_before = c.n;
      (void) before;
      if (r < 0 && r != -ENOENT)
        break;
      r = 0;
      if (opaque)
        break;
    }
  for (size_t i = 0; i < c.n_hidden; i++)
    free (c.hidden[i]);
  free (c.hidden);
  if (r < 0)
    {
      rootfs_entries_free (c.v, c.n);
      return r;
    }
  if (c.n > 1)
    qsort (c.v, c.n, sizeof *c.v, entry_cmp);
  *out = c.v;
  *n_out = c.n;
  return 0;
}

int
rootfs_read_file (overlay_lower *l, const char *path, size_t max, char **data, size_t *len, kiln_error **err)
{
  rootfs_entry e;
  int r = rootfs_stat (l, path, &e);
  if (r < 0)
    return kiln_error_make (err, -r, "'/%s' in the image", path);
  unsigned layer = e.layer;
  mode_t mode = e.attr.mode;
  rootfs_entry_clear (&e);
  if (!S_ISREG (mode))
    return kiln_error_make (err, EINVAL, "'/%s' in the image is not a regular file", path);
  autoclose int fd = overlay_lower_open (l, layer, path);
  if (fd < 0)
    return kiln_error_make (err, -fd, "open '/%s' in the image", path);
  autoerror kiln_error *rerr = NULL;
  if (fs_read_fd (fd, max, data, len, &rerr) < 0)
    return rerr->status == EFBIG
             ? kiln_error_make (err, EFBIG, "'/%s' in the image is larger than %zu bytes", path, max)
             : kiln_error_make (err, rerr->status, "read '/%s' in the image", path);
  return 0;
}

/* ---- users and groups ---- */

static bool
parse_id (const char *s, unsigned long *out)
{
  if (*s == '\0')
    return false;
  char *end;
  errno = 0;
  unsigned long v = strtoul (s, &end, 10);
  if (errno || *end || s[0] == '-' || v > UINT32_MAX - 1)
    return false;
  *out = v;
  return true;
}

/* Field f (0-based) of a ':'-separated line, copied. */
static char *
field (const char *line, int f)
{
  const char *p = line;
  for (int i = 0; i < f; i++)
    {
      p = strchr (p, ':');
      if (!p)
        return NULL;
      p++;
    }
  size_t len = strcspn (p, ":\n");
  return xstrndup (p, len);
}

/* Iterate lines of a passwd/group file: the line whose field key_field
 * equals key (or whose id field equals the numeric key). */
static char *
find_line (const char *data, const char *key, int key_field)
{
  const char *p = data;
  while (p && *p)
    {
      const char *nl = strchr (p, '\n');
      size_t len = nl ? (size_t) (nl - p) : strlen (p);
      autofree char *line = xstrndup (p, len);
      autofree char *k = field (line, key_field);
      if (k && strcmp (k, key) == 0 && line[0] != '#')
        return steal_pointer (&line);
      p = nl ? nl + 1 : NULL;
    }
  return NULL;
}

static int
read_db (overlay_lower *l, const char *path, char **data)
{
  size_t len;
  autoerror kiln_error *e = NULL;
  if (rootfs_read_file (l, path, 16 << 20, data, &len, &e) < 0)
    {
      *data = NULL;
      return -1;
    }
  return 0;
}

int
rootfs_resolve_user (overlay_lower *l, const char *spec, uid_t *uid_out, gid_t *gid_out, gid_t **groups_out,
                     size_t *n_groups, char **home_out, kiln_error **err)
{
  if (home_out)
    *home_out = NULL;
  if (groups_out)
    {
      *groups_out = NULL;
      *n_groups = 0;
    }
  autofree char *user = xstrdup (spec);
  char *group = strchr (user, ':');
  if (group)
    *group++ = '\0';
  if (*user == '\0' && !group)
    return kiln_error_make (err, EINVAL, "user '%s': empty user name", spec);
  if (*user == '\0')
    {
      /* ":GROUP" (COPY --chown): user root, the given group. */
      free (user);
      user = xasprintf ("0:%s", spec + 1);
      group = strchr (user, ':') + 1;
      user[1] = '\0';
    }
  autofree char *passwd = NULL;
  autofree char *groupdb = NULL;
  read_db (l, "etc/passwd", &passwd);
  read_db (l, "etc/group", &groupdb);

  unsigned long id;
  uid_t uid;
  gid_t gid = 0;
  autofree char *uname = NULL;
  autofree char *pwline = NULL;
  if (parse_id (user, &id))
    {
      uid = id;
      if (passwd)
        pwline = find_line (passwd, user, 2);
    }
  else
    {
      pwline = passwd ? find_line (passwd, user, 0) : NULL;
      /* BuildKit: "root" is uid 0 without a passwd entry (a stage FROM
       * scratch has no /etc/passwd). */
      if (!pwline && strcmp (user, "root") == 0)
        uid = 0;
      else if (!passwd)
        return kiln_error_make (err, ENOENT, "user '%s': the image has no /etc/passwd", user);
      else if (!pwline)
        return kiln_error_make (err, ENOENT, "user '%s' not found in the image's /etc/passwd", user);
      else
        {
          autofree char *u = field (pwline, 2);
          if (!u || !parse_id (u, &id))
            return kiln_error_make (err, EINVAL, "user '%s': bad uid in /etc/passwd", user);
          uid = id;
        }
    }
  if (pwline)
    {
      uname = field (pwline, 0);
      if (home_out)
        *home_out = field (pwline, 5);
      autofree char *g = field (pwline, 3);
      if (g && parse_id (g, &id))
        gid = id;
    }
  if (group)
    {
      if (parse_id (group, &id))
        gid = id;
      else
        {
          autofree char *gl = groupdb ? find_line (groupdb, group, 0) : NULL;
          if (!gl && strcmp (group, "root") == 0)
            gid = 0; /* as "root" for the user */
          else if (!groupdb)
            return kiln_error_make (err, ENOENT, "group '%s': the image has no /etc/group", group);
          else if (!gl)
            return kiln_error_make (err, ENOENT, "group '%s' not found in the image's /etc/group", group);
          else
            {
              autofree char *g = field (gl, 2);
              if (!g || !parse_id (g, &id))
                return kiln_error_make (err, EINVAL, "group '%s': bad gid in /etc/group", group);
              gid = id;
            }
        }
    }
  if (groups_out && uname && groupdb && !group)
    {
      /* Supplementary groups: every group whose member list names the user. */
      const char *p = groupdb;
      while (p && *p)
        {
          const char *nl = strchr (p, '\n');
          size_t len = nl ? (size_t) (nl - p) : strlen (p);
          autofree char *line = xstrndup (p, len);
          autofree char *members = field (line, 3);
          autofree char *g = field (line, 2);
          bool member = false;
          for (char *tok = members, *save = NULL; members && (tok = strtok_r (tok, ",", &save)); tok = NULL)
            member |= strcmp (tok, uname) == 0;
          if (member && g && parse_id (g, &id) && (gid_t) id != gid)
            {
              *groups_out = xreallocarray (*groups_out, *n_groups + 1, sizeof **groups_out);
              (*groups_out)[(*n_groups)++] = id;
            }
          p = nl ? nl + 1 : NULL;
        }
    }
  *uid_out = uid;
  *gid_out = gid;
  return 0;
}

/* Append component c to the resolved prefix (or pop it for ".."). */
static void
push_component (strbuf *sb, const char *c, size_t len)
{
  if (len == 1 && c[0] == '.')
    return;
  if (len == 2 && c[0] == '.' && c[1] == '.')
    {
      char *slash = sb->len ? strrchr (sb->buf, '/') : NULL;
      strbuf_setlen (sb, slash ? (size_t) (slash - sb->buf) : 0);
      return;
    }
  if (sb->len)
    strbuf_addch (sb, '/');
  strbuf_add (sb, c, len);
}

int
rootfs_resolve_in_root (overlay_lower *l, const char *path, char **out)
{
  autostrbuf strbuf done = STRBUF_INIT;
  autofree char *todo = xstrdup (path);
  int links = 0;
  strbuf_addch (&done, '\0');
  strbuf_setlen (&done, 0);
  bool missing = false;
  for (;;)
    {
      char *p = todo;
      while (*p == '/')
        p++;
      if (*p == '\0')
        break;
      size_t len = strcspn (p, "/");
      size_t before = done.len;
      push_component (&done, p, len);
      char *rest = xstrdup (p + len);
      free (todo);
      todo = rest;
      if (missing || done.len <= before)
        continue;
      rootfs_entry e;
      int r = rootfs_stat (l, done.buf, &e);
      if (r == -ENOENT)
        {
          missing = true;
          continue;
        }
      if (r < 0)
        return r;
      if (S_ISLNK (e.attr.mode) && e.attr.symlink)
        {
          if (++links > 40)
            {
              rootfs_entry_clear (&e);
              return -ELOOP;
            }
          /* Replace the component by the target and go on resolving. */
          char *slash = strrchr (done.buf, '/');
          strbuf_setlen (&done, slash ? (size_t) (slash - done.buf) : 0);
          if (e.attr.symlink[0] == '/')
            strbuf_setlen (&done, 0);
          char *nt = xasprintf ("%s/%s", e.attr.symlink, todo);
          free (todo);
          todo = nt;
        }
      rootfs_entry_clear (&e);
    }
  *out = strbuf_detach (&done, NULL);
  return 0;
}
