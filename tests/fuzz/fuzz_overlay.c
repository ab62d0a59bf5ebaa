/* fuzz_overlay.c - the overlay's request handlers (overlay_model, the layer
 * every FUSE callback calls into) under arbitrary request sequences.
 *
 * The input's first bytes build a small random stack of two plain-directory
 * lowers (files, directories, symlinks pointing out of the tree, whiteouts,
 * opaque markers) inside a per-process "jail" with a sentinel file and an
 * "outside" directory next to it; the rest is decoded into requests: lookup,
 * forget, getattr, setattr, mknod (all types), link, unlink, rmdir, rename
 * (with flags), readlink, open/write/truncate/release, readdir, xattrs,
 * statfs, chown, commit and new per-step mask paths, a lower pushed again on
 * top between steps (overlay_model_push_layers). Inode numbers come from earlier replies (or are
 * made up, to hit stale ones); names from a pool with hostile entries.
 *
 * Checked after every request and commit:
 * - replies agree with each other (a lookup under a non-directory fails, a
 *   created name is found by lookup with the same inode, a removed one is
 *   gone, a renamed one is found under its new name);
 * - every change list is consistent: overlay_changes_to_layer accepts it,
 *   paths are relative and clean, parents come before children as
 *   directory ADDs, no path appears twice, no name could be read as a
 *   whiteout, masked paths (also those a later step on the same mount
 *   switches to, overlay_model_set_step after a commit) never appear,
 *   hardlinks point at earlier files,
 *   regular-file data opens under its dirfd and has the recorded size;
 * - nothing escapes: the lower trees are unchanged, the sentinel is intact,
 *   the outside directory stays empty, the scratch holds only upper-GEN
 *   directories of numbered data files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "overlay/overlay.h"
#include "overlay/overlay_model.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#define RENAME_EXCHANGE (1 << 1)
#endif

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static char *jail;       /* absolute path of this process's jail */
static int jailfd = -1;

static void
remove_jail (void)
{
  static const char *const parts[] = { "l0", "l1", "scratch", "outside", "sentinel" };
  for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
    {
      kiln_error *err = NULL;
      if (fs_rm_rf_at (jailfd, parts[i], &err) < 0)
        kiln_error_free (err);
    }
  close (jailfd);
  rmdir (jail);
}

static void __attribute__ ((noreturn))
fail (const char *what, int line)
{
  fprintf (stderr, "fuzz_overlay: line %d: check failed: %s\n", line, what);
  remove_jail ();
  abort ();
}

#define CHECK(c) ((c) ? (void) 0 : fail (#c, __LINE__))

typedef struct input
{
  const uint8_t *p;
  size_t left;
} input;

static unsigned
take (input *in)
{
  if (!in->left)
    return 0;
  in->left--;
  return *in->p++;
}

static const char *const names[] = {
  "a", "b", "c", "d", "lnk", "out", "proc", "etc", "hosts", "x.txt",
  ".wh.a", ".wh..wh..opq", "..", ".", "", "a/b", "\xff\xfe", "é",
};
#define N_NAMES (sizeof names / sizeof *names)

static const char *const targets[] = { "a", "../../..", "/", "/etc/passwd", "b/c", "." };

static const char *const xnames[] = { "user.a", "user.b", "security.capability", "trusted.x",
                                      "system.posix_acl_access", "", "user." };

static const char *const masks[] = { "proc/", "etc/hosts", NULL };
/* Mask paths a later step on the same mount may use (overlay_model_set_step
 * after a commit): names from the pool, so they meet lower and created
 * entries, files and directories, nested and missing parents. */
static const char *const mask_pool[] = { "proc/", "etc/hosts", "a/b/", "c", "a/", "d/c/", "lnk/x/", NULL };
#define N_MASK_POOL 7

/* ---- the lower stack ---- */

static const char *
pick_name (input *in)
{
  unsigned b = take (in);
  if (b == 255)
    {
      /* an over-long name */
      static char longname[300];
      memset (longname, 'n', sizeof longname - 1);
      return longname;
    }
  return names[b % N_NAMES];
}

/* Up to 14 entries over two layers; parents are directories made earlier
 * (or the root). Failures (e.g. a file where a directory is wanted) are
 * fine: the lower is whatever the bytes built. */
static void
make_lower (input *in, int *lfd)
{
  char *dirs[2][16];
  unsigned ndirs[2] = { 1, 1 };
  dirs[0][0] = xstrdup ("");
  dirs[1][0] = xstrdup ("");
  unsigned n = take (in) % 15;
  for (unsigned k = 0; k < n; k++)
    {
      unsigned b = take (in);
      unsigned layer = b & 1, kind = (b >> 1) % 6;
      const char *parent = dirs[layer][take (in) % ndirs[layer]];
      const char *name = names[take (in) % 10]; /* only the plain names */
      autofree char *path = *parent ? xasprintf ("%s/%s", parent, name) : xstrdup (name);
      int d = lfd[layer];
      switch (kind)
        {
        case 0:
        case 1:
          {
            int fd = openat (d, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
            if (fd >= 0)
              {
                unsigned len = take (in) % 64;
                char buf[64];
                memset (buf, 'a' + (int) (len % 26), len);
                CHECK (write (fd, buf, len) == (ssize_t) len);
                if (kind == 1)
                  fsetxattr (fd, "user.lower", "v", 1, 0);
                close (fd);
              }
            break;
          }
        case 2:
          if (mkdirat (d, path, 0755) == 0 && ndirs[layer] < 16)
            dirs[layer][ndirs[layer]++] = xstrdup (path);
          break;
        case 3:
          {
            /* a symlink out of the tree: absolute to the outside dir, or relative */
            autofree char *t = take (in) & 1 ? xasprintf ("%s/outside", jail)
                                             : xstrdup (targets[take (in) % 6]);
            symlinkat (t, d, path);
            break;
          }
        case 4:
          {
            autofree char *wh = *parent ? xasprintf ("%s/.wh.%s", parent, name) : xasprintf (".wh.%s", name);
            int fd = openat (d, wh, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
            if (fd >= 0)
              close (fd);
            break;
          }
        case 5:
          {
            autofree char *op = *parent ? xasprintf ("%s/.wh..wh..opq", parent) : xstrdup (".wh..wh..opq");
            int fd = openat (d, op, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
            if (fd >= 0)
              close (fd);
            break;
          }
        }
    }
  for (unsigned l = 0; l < 2; l++)
    for (unsigned k = 0; k < ndirs[l]; k++)
      free (dirs[l][k]);
}

/* Listing of a tree (names, types, sizes, symlink targets), for "unchanged". */
static void
list_tree (int dfd, const char *prefix, strbuf *out)
{
  int d2 = openat (dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK (d2 >= 0);
  DIR *d = fdopendir (d2);
  CHECK (d);
  char *v[64];
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir (d)))
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, "..") && n < 64)
      v[n++] = xstrdup (de->d_name);
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (strcmp (v[i], v[j]) > 0)
        {
          char *t = v[i];
          v[i] = v[j];
          v[j] = t;
        }
  for (size_t i = 0; i < n; i++)
    {
      struct stat st;
      CHECK (fstatat (dirfd (d), v[i], &st, AT_SYMLINK_NOFOLLOW) == 0);
      strbuf_addf (out, "%s/%s %o %lld\n", prefix, v[i], (unsigned) st.st_mode, (long long) st.st_size);
      if (S_ISDIR (st.st_mode))
        {
          int sub = openat (dirfd (d), v[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          CHECK (sub >= 0);
          autofree char *p = xasprintf ("%s/%s", prefix, v[i]);
          list_tree (sub, p, out);
          close (sub);
        }
      free (v[i]);
    }
  closedir (d);
}

/* ---- invariants on a change list ---- */

static const overlay_change *
find_change (const overlay_changes *c, size_t before, const char *path, overlay_change_kind kind)
{
  for (size_t i = 0; i < before; i++)
    if (c->v[i].kind == kind && !strcmp (c->v[i].path, path))
      return &c->v[i];
  return NULL;
}

/* The mask paths of the step being run (NULL-terminated). */
static const char *cur_masks[N_MASK_POOL + 1];

static void
check_path (const char *p)
{
  CHECK (*p != '/');
  CHECK (!strstr (p, "//"));
  size_t l = strlen (p);
  CHECK (!l || p[l - 1] != '/');
  autofree char *dup = xstrdup (p);
  char *save = NULL;
  for (char *c = strtok_r (dup, "/", &save); c; c = strtok_r (NULL, "/", &save))
    {
      CHECK (strcmp (c, ".") && strcmp (c, ".."));
      CHECK (strncmp (c, ".wh.", 4) != 0);
    }
  for (const char **m = cur_masks; *m; m++)
    {
      size_t ml = strlen (*m);
      while (ml && (*m)[ml - 1] == '/')
        ml--;
      /* a masked path and everything below it stay out of the layer */
      CHECK (strncmp (p, *m, ml) || (p[ml] != '\0' && p[ml] != '/'));
    }
}

static void
check_changes (const overlay_changes *c)
{
  for (size_t i = 0; i < c->n; i++)
    {
      const overlay_change *ch = &c->v[i];
      check_path (ch->path);
      if (*ch->path)
        {
          /* parent before child, as a directory ADD */
          autofree char *parent = xstrdup (ch->path);
          char *slash = strrchr (parent, '/');
          if (slash)
            {
              *slash = '\0';
              const overlay_change *pc = find_change (c, i, parent, OVERLAY_CHANGE_ADD);
              CHECK (pc && S_ISDIR (pc->mode));
            }
        }
      /* no path twice, except a directory ADD paired with its OPAQUE marker */
      for (size_t j = 0; j < i; j++)
        if (!strcmp (c->v[j].path, ch->path))
          CHECK (c->v[j].kind == OVERLAY_CHANGE_ADD && S_ISDIR (c->v[j].mode)
                 && ch->kind == OVERLAY_CHANGE_OPAQUE);
      switch (ch->kind)
        {
        case OVERLAY_CHANGE_ADD:
          if (S_ISREG (ch->mode))
            {
              CHECK (ch->data_dirfd >= 0 && ch->data_path);
              CHECK (ch->data_path[0] != '/' && !strstr (ch->data_path, ".."));
              int fd = openat (ch->data_dirfd, ch->data_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
              CHECK (fd >= 0);
              struct stat st;
              CHECK (fstat (fd, &st) == 0 && S_ISREG (st.st_mode));
              CHECK ((uint64_t) st.st_size == ch->size);
              close (fd);
            }
          if (S_ISLNK (ch->mode))
            CHECK (ch->symlink && *ch->symlink);
          break;
        case OVERLAY_CHANGE_HARDLINK:
          {
            CHECK (ch->link_target);
            const overlay_change *t = find_change (c, i, ch->link_target, OVERLAY_CHANGE_ADD);
            CHECK (t && !S_ISDIR (t->mode));
            break;
          }
        case OVERLAY_CHANGE_WHITEOUT:
          CHECK (*ch->path);
          break;
        case OVERLAY_CHANGE_OPAQUE:
          break;
        }
    }
  layer_change *lc = NULL;
  size_t n = 0;
  kiln_error *err = NULL;
  int ret = overlay_changes_to_layer (c, &lc, &n, &err);
  if (ret < 0)
    fprintf (stderr, "fuzz_overlay: to_layer: %s\n", err->msg);
  CHECK (ret == 0);
  free (lc);
}

/* The scratch holds upper-GEN directories of numbered files only. */
static void
check_scratch (int sfd)
{
  int d2 = openat (sfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fdopendir (d2);
  CHECK (d);
  struct dirent *de;
  while ((de = readdir (d)))
    {
      if (!strcmp (de->d_name, ".") || !strcmp (de->d_name, ".."))
        continue;
      CHECK (!strncmp (de->d_name, "upper-", 6));
      int u = openat (dirfd (d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      CHECK (u >= 0);
      DIR *ud = fdopendir (u);
      CHECK (ud);
      struct dirent *f;
      while ((f = readdir (ud)))
        {
          if (!strcmp (f->d_name, ".") || !strcmp (f->d_name, ".."))
            continue;
          struct stat st;
          CHECK (fstatat (dirfd (ud), f->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG (st.st_mode));
        }
      closedir (ud);
    }
  closedir (d);
}

/* ---- the request sequence ---- */

#define MAX_INOS 32
#define MAX_FDS 8
#define MAX_LISTINGS 4

typedef struct state
{
  overlay_model *m;
  uint64_t inos[MAX_INOS];
  unsigned nino;
  struct
  {
    int fd;
    uint64_t ino;
  } fds[MAX_FDS];
  unsigned nfd;
  /* open directory listings, with a checksum taken when opened: they must
   * not change while held, whatever the requests in between do */
  struct
  {
    overlay_listing *l;
    uint64_t ino, sum;
  } lists[MAX_LISTINGS];
  unsigned nlist;
  /* overlay_model_push_layers refused: the engine would drop the mount */
  bool dropped;
} state;

static uint64_t
listing_sum (const overlay_listing *l)
{
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < l->n; i++)
    {
      for (const char *p = l->v[i].name; *p; p++)
        h = (h ^ (unsigned char) *p) * 1099511628211ULL;
      h = (h ^ l->v[i].ino ^ ((uint64_t) l->v[i].type << 40)) * 1099511628211ULL;
    }
  return h;
}

static void
close_listing (state *s, unsigned k)
{
  CHECK (listing_sum (s->lists[k].l) == s->lists[k].sum);
  overlay_model_closedir (s->m, s->lists[k].l);
  s->lists[k] = s->lists[--s->nlist];
}

static void
remember (state *s, uint64_t ino)
{
  if (s->nino < MAX_INOS)
    s->inos[s->nino++] = ino;
  else
    s->inos[ino % MAX_INOS] = ino;
}

static uint64_t
pick_ino (state *s, input *in)
{
  unsigned b = take (in);
  if (b >= 250)
    return b == 255 ? UINT64_MAX : (uint64_t) b * 1000; /* stale or never issued */
  return b % 4 == 0 || !s->nino ? OVERLAY_ROOT_INO : s->inos[b % s->nino];
}

static void
do_commit (state *s)
{
  overlay_changes *c = NULL;
  kiln_error *err = NULL;
  int ret = overlay_model_commit (s->m, &c, &err);
  if (ret < 0)
    {
      fprintf (stderr, "fuzz_overlay: commit: %s\n", err->msg);
      fail ("commit", __LINE__);
    }
  check_changes (c);
  overlay_changes_free (c);
}

/* Between steps: one of the lowers again, as a layer the build added on
 * top (a COPY, a cached step). */
static void
push_layer (state *s, unsigned which)
{
  autofree char *path = xasprintf ("%s/l%u", jail, which & 1);
  const char *paths[] = { path };
  overlay_lower *from = NULL;
  kiln_error *err = NULL;
  CHECK (overlay_lower_open_dirs (paths, 1, &from, &err) == 0);
  overlay_model_inval *inv = NULL;
  size_t n_inv = 0;
  int r = overlay_model_push_layers (s->m, from, 0, &inv, &n_inv);
  CHECK (r == 0 || r == -EAGAIN);
  CHECK (overlay_lower_count (from) == (r == 0 ? 0u : 1u));
  for (size_t i = 0; i < n_inv; i++)
    {
      CHECK (inv[i].parent >= OVERLAY_ROOT_INO);
      CHECK (!inv[i].name || (*inv[i].name && !strchr (inv[i].name, '/')));
    }
  overlay_model_invals_free (inv, n_inv);
  overlay_lower_free (from);
  s->dropped = r < 0;
}

static void
step (state *s, input *in)
{
  unsigned op = take (in) % 20;
  struct stat st, st2;
  switch (op)
    {
    case 0: /* lookup */
      {
        uint64_t p = pick_ino (s, in);
        const char *name = pick_name (in);
        int pr = overlay_model_getattr (s->m, p, &st2);
        if (overlay_model_lookup (s->m, p, name, &st) == 0)
          {
            CHECK (pr == 0 && S_ISDIR (st2.st_mode));
            CHECK (st.st_ino != 0);
            remember (s, st.st_ino);
          }
        break;
      }
    case 1: /* forget */
      overlay_model_forget (s->m, pick_ino (s, in), take (in) % 3);
      break;
    case 2: /* getattr */
      overlay_model_getattr (s->m, pick_ino (s, in), &st);
      break;
    case 3: /* setattr */
      {
        uint64_t ino = pick_ino (s, in);
        struct stat a = { 0 };
        a.st_mode = (take (in) << 4 | take (in)) & 07777;
        a.st_uid = take (in);
        a.st_gid = take (in);
        a.st_size = take (in) * 37;
        a.st_atim.tv_sec = a.st_mtim.tv_sec = take (in) * 1000;
        /* the FUSE_SET_ATTR_* bits and OVL_SET_KILL_SUIDGID */
        int mask = (int) (take (in) | take (in) << 8) & 0xfff;
        overlay_model_setattr (s->m, ino, &a, mask, &st);
        break;
      }
    case 4: /* mknod / create / mkdir / symlink */
      {
        static const mode_t types[] = { S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK, 0 };
        uint64_t p = pick_ino (s, in);
        const char *name = pick_name (in);
        mode_t mode = types[take (in) % 8] | ((take (in) << 1) & 07777);
        const char *t = take (in) % 4 ? targets[take (in) % 6] : "";
        if (overlay_model_mknod (s->m, p, name, mode, makedev (take (in), 3), t, take (in), 7, &st) == 0)
          {
            CHECK (overlay_model_lookup (s->m, p, name, &st2) == 0 && st2.st_ino == st.st_ino);
            overlay_model_forget (s->m, st2.st_ino, 1);
            remember (s, st.st_ino);
          }
        break;
      }
    case 5: /* link */
      {
        uint64_t ino = pick_ino (s, in), p = pick_ino (s, in);
        const char *name = pick_name (in);
        if (overlay_model_link (s->m, ino, p, name, &st) == 0)
          {
            CHECK (st.st_ino == ino);
            CHECK (overlay_model_lookup (s->m, p, name, &st2) == 0 && st2.st_ino == ino);
            overlay_model_forget (s->m, ino, 1);
          }
        break;
      }
    case 6: /* unlink */
    case 7: /* rmdir */
      {
        uint64_t p = pick_ino (s, in);
        const char *name = pick_name (in);
        int r = op == 6 ? overlay_model_unlink (s->m, p, name) : overlay_model_rmdir (s->m, p, name);
        if (r == 0)
          CHECK (overlay_model_lookup (s->m, p, name, &st) == -ENOENT);
        break;
      }
    case 8: /* rename */
      {
        static const unsigned flags[] = { 0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE, 4, 3 };
        uint64_t p = pick_ino (s, in), np = pick_ino (s, in);
        const char *name = pick_name (in), *newname = pick_name (in);
        unsigned f = flags[take (in) % 6];
        int had = overlay_model_lookup (s->m, p, name, &st);
        if (had == 0)
          overlay_model_forget (s->m, st.st_ino, 1);
        if (overlay_model_rename (s->m, p, name, np, newname, f) == 0)
          {
            CHECK (had == 0);
            CHECK (overlay_model_lookup (s->m, np, newname, &st2) == 0);
            overlay_model_forget (s->m, st2.st_ino, 1);
            CHECK (st2.st_ino == st.st_ino);
          }
        break;
      }
    case 9: /* readlink */
      {
        char *t = NULL;
        if (overlay_model_readlink (s->m, pick_ino (s, in), &t) == 0)
          CHECK (t && *t);
        free (t);
        break;
      }
    case 10: /* open */
      {
        static const int flags[] = { O_RDONLY, O_WRONLY, O_RDWR, O_RDONLY | O_TRUNC, O_WRONLY | O_APPEND, O_RDWR };
        uint64_t ino = pick_ino (s, in);
        unsigned k = take (in) % 6;
        bool imm;
        if (k == 5) /* O_TMPFILE: an unnamed file in ino, then its open */
          {
            if (overlay_model_tmpfile (s->m, ino, (take (in) << 1) & 07777, take (in), 7, &st) != 0)
              break;
            CHECK (S_ISREG (st.st_mode) && st.st_nlink == 0);
            remember (s, st.st_ino);
            ino = st.st_ino;
          }
        int fd = overlay_model_open (s->m, ino, flags[k], &imm);
        if (fd >= 0)
          {
            CHECK (fd > 2);
            if (s->nfd == MAX_FDS)
              {
                close (fd);
                overlay_model_release (s->m, ino);
              }
            else
              {
                s->fds[s->nfd].fd = fd;
                s->fds[s->nfd++].ino = ino;
              }
          }
        break;
      }
    case 11: /* write through an open fd */
      if (s->nfd)
        {
          unsigned k = take (in) % s->nfd, len = take (in) % 200;
          char buf[200];
          memset (buf, 'w', len);
          /* EBADF on read-only fds is fine */
          (void) !pwrite (s->fds[k].fd, buf, len, take (in) * 13);
        }
      break;
    case 12: /* release */
      if (s->nfd)
        {
          unsigned k = take (in) % s->nfd;
          close (s->fds[k].fd);
          overlay_model_release (s->m, s->fds[k].ino);
          s->fds[k] = s->fds[--s->nfd];
        }
      break;
    case 13: /* opendir, held for a while (closedir when full, or at the end) */
      {
        overlay_listing *l = NULL;
        uint64_t ino = pick_ino (s, in);
        if (overlay_model_opendir (s->m, ino, &l) == 0)
          {
            const overlay_dirent *d = l->v;
            for (size_t i = 0; i < l->n; i++)
              {
                CHECK (d[i].name && *d[i].name && !strchr (d[i].name, '/'));
                CHECK (strcmp (d[i].name, ".") && strcmp (d[i].name, ".."));
                CHECK (strncmp (d[i].name, ".wh.", 4) != 0);
                CHECK (i == 0 || strcmp (d[i - 1].name, d[i].name) < 0);
              }
            /* a directory that did not change since shares its listing */
            for (unsigned k = 0; k < s->nlist; k++)
              CHECK (s->lists[k].ino != ino || !s->lists[k].l->dir || s->lists[k].l == l);
            if (s->nlist == MAX_LISTINGS)
              close_listing (s, take (in) % s->nlist);
            s->lists[s->nlist].l = l;
            s->lists[s->nlist].ino = ino;
            s->lists[s->nlist++].sum = listing_sum (l);
          }
        break;
      }
    case 14: /* setxattr */
      {
        uint64_t ino = pick_ino (s, in);
        const char *name = xnames[take (in) % 7];
        unsigned len = take (in) % 40;
        char v[40];
        memset (v, 'v', len);
        static const int fl[] = { 0, XATTR_CREATE, XATTR_REPLACE, 7 };
        overlay_model_setxattr (s->m, ino, name, v, len, fl[take (in) % 4]);
        break;
      }
    case 15: /* getxattr / listxattr with small, exact and zero sizes */
      {
        uint64_t ino = pick_ino (s, in);
        size_t sz = take (in) % 64;
        char buf[64];
        int r = take (in) & 1 ? overlay_model_getxattr (s->m, ino, xnames[take (in) % 7], buf, sz)
                              : overlay_model_listxattr (s->m, ino, buf, sz);
        if (r >= 0 && sz)
          CHECK ((size_t) r <= sz);
        break;
      }
    case 16: /* removexattr */
      overlay_model_removexattr (s->m, pick_ino (s, in), xnames[take (in) % 7]);
      break;
    case 17: /* statfs */
      {
        struct statvfs sv;
        overlay_model_statfs (s->m, &sv);
        break;
      }
    case 18: /* chown recorded by the seccomp supervisor */
      {
        uint64_t ino = pick_ino (s, in);
        unsigned u = take (in);
        overlay_model_chown (s->m, ino, u == 255 ? (uid_t) -1 : u * 1000, take (in));
        break;
      }
    case 19: /* commit: only with no open files, as the engine does */
      while (s->nfd)
        {
          s->nfd--;
          close (s->fds[s->nfd].fd);
          overlay_model_release (s->m, s->fds[s->nfd].ino);
        }
      do_commit (s);
      if (in->left && take (in) % 3 == 0)
        push_layer (s, take (in));
      if (in->left && !s->dropped)
        {
          /* the next step on the same mount, with other mask paths */
          unsigned sel = take (in), n = 0;
          for (unsigned i = 0; i < N_MASK_POOL; i++)
            if (sel & (1u << i))
              cur_masks[n++] = mask_pool[i];
          cur_masks[n] = NULL;
          overlay_model_inval *inv = NULL;
          size_t n_inv = 0;
          CHECK (overlay_model_set_step (s->m, take (in) * 1000, 1000, cur_masks, &inv, &n_inv) == 0);
          for (size_t i = 0; i < n_inv; i++)
            {
              CHECK (inv[i].parent >= OVERLAY_ROOT_INO);
              CHECK (inv[i].name && *inv[i].name && !strchr (inv[i].name, '/'));
            }
          overlay_model_invals_free (inv, n_inv);
        }
      break;
    }
}

static void
setup_jail (void)
{
  if (jail)
    return;
  /* tmpfs when there is one: every input builds and removes a small tree */
  const char *t = access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv ("TMPDIR");
  jail = xasprintf ("%s/kiln-fuzz-overlay.XXXXXX", t && *t ? t : "/tmp");
  CHECK (mkdtemp (jail));
  jailfd = open (jail, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK (jailfd >= 0);
  CHECK (mkdirat (jailfd, "outside", 0755) == 0);
  atexit (remove_jail);
  int fd = openat (jailfd, "sentinel", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  CHECK (fd >= 0 && write (fd, "sentinel", 8) == 8);
  close (fd);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  setup_jail ();
  input in = { data, size };
  kiln_error *err = NULL;
  CHECK (mkdirat (jailfd, "l0", 0755) == 0 && mkdirat (jailfd, "l1", 0755) == 0
         && mkdirat (jailfd, "scratch", 0700) == 0);
  int lfd[2] = { openat (jailfd, "l0", O_RDONLY | O_DIRECTORY | O_CLOEXEC),
                 openat (jailfd, "l1", O_RDONLY | O_DIRECTORY | O_CLOEXEC) };
  int sfd = openat (jailfd, "scratch", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK (lfd[0] >= 0 && lfd[1] >= 0 && sfd >= 0);
  make_lower (&in, lfd);
  autostrbuf strbuf before = STRBUF_INIT, after = STRBUF_INIT;
  list_tree (lfd[0], "0", &before);
  list_tree (lfd[1], "1", &before);

  autofree char *l0 = xasprintf ("%s/l0", jail), *l1 = xasprintf ("%s/l1", jail);
  const char *paths[] = { l0, l1 };
  overlay_lower *lower = NULL;
  if (overlay_lower_open_dirs (paths, 2, &lower, &err) < 0)
    {
      fprintf (stderr, "fuzz_overlay: lowers: %s\n", err->msg);
      fail ("open lowers", __LINE__);
    }
  unsigned mode = take (&in);
  cur_masks[0] = mode & 2 ? masks[0] : NULL;
  cur_masks[1] = mode & 2 ? masks[1] : NULL;
  cur_masks[2] = NULL;
  overlay_config cfg = { .lower = lower, .scratch_dirfd = sfd,
                         .id_mode = mode & 1 ? OVERLAY_IDS_SINGLE : OVERLAY_IDS_FULL,
                         .create_uid = 1000, .create_gid = 1000, .mask_paths = mode & 2 ? masks : NULL };
  state s = { 0 };
  if (overlay_model_new (&cfg, &s.m, &err) < 0)
    {
      fprintf (stderr, "fuzz_overlay: model: %s\n", err->msg);
      fail ("model", __LINE__);
    }
  /* as a mount whose kernel left clearing setuid/setgid to kiln */
  overlay_model_set_kill_priv (s.m, (mode & 4) != 0);
  for (unsigned k = 0; k < 300 && in.left && !s.dropped; k++)
    step (&s, &in);
  while (s.nlist)
    close_listing (&s, 0);
  while (s.nfd)
    {
      s.nfd--;
      close (s.fds[s.nfd].fd);
      overlay_model_release (s.m, s.fds[s.nfd].ino);
    }
  if (!s.dropped)
    do_commit (&s);
  check_scratch (sfd);
  overlay_model_free (s.m);

  list_tree (lfd[0], "0", &after);
  list_tree (lfd[1], "1", &after);
  CHECK (before.len == after.len && !memcmp (before.buf, after.buf, before.len));
  autofree char *sentinel = NULL;
  size_t slen = 0;
  CHECK (fs_read_file_at (jailfd, "sentinel", 64, &sentinel, &slen, &err) == 0);
  CHECK (slen == 8 && !memcmp (sentinel, "sentinel", 8));
  int od = openat (jailfd, "outside", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK (od >= 0);
  DIR *d = fdopendir (od);
  struct dirent *de;
  while ((de = readdir (d)))
    CHECK (!strcmp (de->d_name, ".") || !strcmp (de->d_name, ".."));
  closedir (d);

  close (lfd[0]);
  close (lfd[1]);
  close (sfd);
  CHECK (fs_rm_rf_at (jailfd, "l0", &err) == 0 && fs_rm_rf_at (jailfd, "l1", &err) == 0
         && fs_rm_rf_at (jailfd, "scratch", &err) == 0);
  return 0;
}
