/* tracer_xattr.c - extended attributes, emulated: getxattr, listxattr,
 * setxattr, removexattr and their l- and f- forms never reach the real
 * files of the root (security.* and trusted.* would need capabilities the
 * step lacks, and a hard-linked store file must never change). The tracer
 * does what the kernel's VFS does before a filesystem is asked (name and
 * size limits, flags, xattr_permission and the capability checks, for the
 * fake credentials and the file as the step sees it), then asks the ops
 * (overlay_dir's table for builds) and writes the answer into the tracee's
 * buffer. Files in binds and fds that are not files of the root (pipes,
 * sockets) are the kernel's for reads; writes to bind files fail
 * EOPNOTSUPP. With no ops (kiln run --rootfs on a plain directory) reads
 * pass through to the real files and writes fail ENOTSUP, as before.
 * setxattrat & co. (6.13) are refused ENOSYS in the filter: libc and tools
 * fall back to the calls here. */
#include "sandbox/tracer_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* the kernel's limits (<linux/limits.h>) */
#define TX_NAME_MAX 255
#define TX_SIZE_MAX 65536
#define TX_LIST_MAX 65536

typedef enum { X_GET, X_LIST, X_SET, X_REMOVE } xop;

/* One call: what it does and its arguments. */
typedef struct xcall
{
  xop op;
  bool fd_form, follow;
  char *name;          /* GET, SET, REMOVE */
  void *value;         /* SET: the tracee's bytes */
  size_t size;         /* GET/LIST: the buffer's (clamped), SET: the value's */
  unsigned long buf;   /* GET/LIST: the tracee's buffer */
  int flags;           /* SET */
} xcall;


static void
xcall_clear (xcall *x)
{
  free (x->name);
  free (x->value);
}

static tracer_action
done (tracer_call *c, long r)
{
  tracer_skip (&c->regs, r);
  return TR_CONTINUE;
}

static const char *
rel (const char *guest)
{
  return guest + strspn (guest, "/");
}

static void
classify (tsc sc, xcall *x)
{
  x->fd_form = sc == TSC_FGETXATTR || sc == TSC_FLISTXATTR || sc == TSC_FSETXATTR || sc == TSC_FREMOVEXATTR;
  x->follow = sc == TSC_GETXATTR || sc == TSC_LISTXATTR || sc == TSC_SETXATTR || sc == TSC_REMOVEXATTR;
  switch (sc)
    {
    case TSC_GETXATTR: case TSC_LGETXATTR: case TSC_FGETXATTR: x->op = X_GET; break;
    case TSC_LISTXATTR: case TSC_LLISTXATTR: case TSC_FLISTXATTR: x->op = X_LIST; break;
    case TSC_SETXATTR: case TSC_LSETXATTR: case TSC_FSETXATTR: x->op = X_SET; break;
    default: x->op = X_REMOVE; break;
    }
}

/* The arguments from registers and the tracee's memory, in the kernel's
 * order of checks (flags, name, size, value: before the path is looked
 * up). Names of 1..255 bytes (else ERANGE), values up to 64 KiB (E2BIG). */
static int
read_args (tracer_call *c, xcall *x)
{
  pid_t tid = c->te->tid;
  if (x->op == X_SET)
    {
      x->flags = (int) tracer_arg (&c->regs, 4);
      if (x->flags & ~(XATTR_CREATE | XATTR_REPLACE))
        return -EINVAL;
    }
  if (x->op != X_LIST)
    {
      int r = tracer_mem_string (tid, tracer_arg (&c->regs, 1), TX_NAME_MAX, &x->name);
      if (r == -ENAMETOOLONG || (r == 0 && !x->name[0]))
        return -ERANGE;
      if (r < 0)
        return r;
    }
  int size_arg = x->op == X_LIST ? 2 : 3, buf_arg = x->op == X_LIST ? 1 : 2;
  x->size = x->op == X_REMOVE ? 0 : (size_t) tracer_arg (&c->regs, size_arg);
  x->buf = tracer_arg (&c->regs, buf_arg);
  if (x->op == X_SET)
    {
      if (x->size > TX_SIZE_MAX)
        return -E2BIG;
      x->value = xmalloc (x->size ? x->size : 1);
      if (x->size && tracer_mem_read (tid, x->buf, x->value, x->size) < 0)
        return -EFAULT;
    }
  else if (x->op == X_GET && x->size > TX_SIZE_MAX)
    x->size = TX_SIZE_MAX;
  else if (x->op == X_LIST && x->size > TX_LIST_MAX)
    x->size = TX_LIST_MAX;
  return 0;
}

/* The object: the fd of the f- forms, else the path (followed but for
 * the l- forms). */
static int
resolve (tracer_call *c, const xcall *x, tracer_target *t)
{
  if (x->fd_form)
    return tracer_target_resolve (c, (int) tracer_arg (&c->regs, 0), 0, 0, true, t);
  return tracer_target_resolve (c, AT_FDCWD, tracer_arg (&c->regs, 0), x->follow ? TR_FOLLOW : 0, false, t);
}

/* ---- the kernel's checks, for the fake credentials ---- */

static bool
in_group (const tracer_creds *cr, gid_t gid)
{
  if (cr->fsgid == gid)
    return true;
  for (size_t i = 0; i < cr->n_groups; i++)
    if (cr->groups[i] == gid)
      return true;
  return false;
}

/* inode_permission: the mode bits the step sees; fsuid 0 has
 * CAP_DAC_OVERRIDE (a fake root, as root in the userns mode). */
static int
may (const tracer_creds *cr, const struct stat *st, bool write)
{
  if (cr->fsuid == 0)
    return 0;
  mode_t bits = cr->fsuid == st->st_uid ? st->st_mode >> 6 : in_group (cr, st->st_gid) ? st->st_mode >> 3
                                                                                         : st->st_mode;
  mode_t want = write ? 2 : 4;
  return (bits & want) == want ? 0 : -EACCES;
}

/* xattr_permission and the capability hooks (cap_inode_setxattr,
 * cap_convert_nscap): trusted.* needs CAP_SYS_ADMIN in the initial
 * namespace (never: a read finds nothing), writing security.* the fake
 * root's capabilities, user.* a regular file or directory (a sticky
 * directory's owner for writes) and the mode bits. */
static int
permission (tracer_call *c, int fd, const char *name, bool write)
{
  const tracer_config *cfg = c->t->cfg;
  const tracer_creds *cr = c->te->creds;
  if (!strncmp (name, "security.", 9))
    return write && cr->euid != 0 ? -EPERM : 0;
  if (!strncmp (name, "system.", 7))
    return 0;
  if (!strncmp (name, "trusted.", 8))
    return write ? -EPERM : -ENODATA;
  struct stat real, st;
  if (fstatat (fd, "", &real, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
    return -errno;
  st = real;
  if (cfg->ops->present)
    cfg->ops->present (cfg->ops_ctx, &real, &st);
  if (!strncmp (name, "user.", 5))
    {
      if (!S_ISREG (st.st_mode) && !S_ISDIR (st.st_mode))
        return write ? -EPERM : -ENODATA;
      if (write && S_ISDIR (st.st_mode) && (st.st_mode & S_ISVTX) && cr->fsuid != st.st_uid && cr->fsuid != 0)
        return -EPERM;
    }
  return may (cr, &st, write);
}

/* cap_convert_nscap's validheader: a security.capability value is a
 * vfs_cap_data (20 bytes, revision 2) or vfs_ns_cap_data (24, revision 3).
 * The value is kept as given (the kernel of the userns mode keeps a v2 and
 * the rootid of a v3 of the step's own namespace as they are). */
static int
cap_value_ok (const xcall *x)
{
  if (x->op != X_SET || !x->size || strcmp (x->name, "security.capability"))
    return 0;
  const unsigned char *v = x->value;
  uint32_t magic = x->size >= 4 ? (uint32_t) v[0] | (uint32_t) v[1] << 8 | (uint32_t) v[2] << 16
                                      | (uint32_t) v[3] << 24
                                : 0;
  uint32_t rev = magic & 0xFF000000u;
  if ((x->size == 20 && rev == 0x02000000u) || (x->size == 24 && rev == 0x03000000u))
    return 0;
  return -EINVAL;
}

/* ---- the calls ---- */

/* No ops for this call, or not a file of the root: the kernel's. Reads
 * run on the translated path (or the fd); writes are refused. */
static tracer_action
not_emulated (tracer_call *c, const xcall *x, tracer_target *t, bool have_ops)
{
  bool write = x->op == X_SET || x->op == X_REMOVE;
  if (write)
    return done (c, have_ops ? -EOPNOTSUPP : -ENOTSUP);
  if (x->fd_form)
    return TR_CONTINUE;
  int r = tracer_set_path_arg (c, 0, t->p.host);
  return r < 0 ? done (c, r) : TR_CONTINUE;
}

static long
emulate (tracer_call *c, xcall *x, tracer_target *t)
{
  const tracer_config *cfg = c->t->cfg;
  const tracer_fs_ops *ops = cfg->ops;
  const char *path = rel (t->guest);
  bool write = x->op == X_SET || x->op == X_REMOVE;
  long r = cap_value_ok (x);
  if (r == 0 && x->op != X_LIST)
    r = permission (c, t->fd, x->name, write);
  if (r < 0)
    return r;
  autofree char *buf = (x->op == X_GET || x->op == X_LIST) && x->size ? xmalloc (x->size) : NULL;
  switch (x->op)
    {
    case X_GET: r = ops->get_xattr (cfg->ops_ctx, t->fd, path, x->name, buf, x->size); break;
    case X_LIST: r = ops->list_xattr (cfg->ops_ctx, t->fd, path, buf, x->size); break;
    case X_SET: r = ops->set_xattr (cfg->ops_ctx, t->fd, path, x->name, x->value, x->size, x->flags); break;
    case X_REMOVE: r = ops->remove_xattr (cfg->ops_ctx, t->fd, path, x->name); break;
    }
  if (r == -ERANGE && x->size >= (x->op == X_GET ? TX_SIZE_MAX : TX_LIST_MAX))
    return -E2BIG;   /* as the kernel: the answer can never fit */
  if (r > 0 && buf && tracer_mem_write (c->te->tid, x->buf, buf, (size_t) r) < 0)
    return -EFAULT;
  if (r == 0 && write && ops->changed)
    {
      tracer_change ch = { .kind = TRACER_CHANGE_META, .path = path, .uid = c->te->creds->fsuid,
                           .gid = c->te->creds->fsgid };
      ops->changed (cfg->ops_ctx, &ch);
    }
  return r;
}

static bool
have_op (const tracer_fs_ops *ops, xop op)
{
  if (!ops)
    return false;
  switch (op)
    {
    case X_GET: return ops->get_xattr != NULL;
    case X_LIST: return ops->list_xattr != NULL;
    case X_SET: return ops->set_xattr != NULL;
    default: return ops->remove_xattr != NULL;
    }
}

tracer_action
tracer_xattr (tracer_call *c)
{
  xcall x = { 0 };
  classify (c->sc, &x);
  bool have = have_op (c->t->cfg->ops, x.op);
  if (!have && (x.op == X_SET || x.op == X_REMOVE))
    return done (c, -ENOTSUP);
  if (!have && x.fd_form)
    return TR_CONTINUE;
  tracer_target t;
  memset (&t, 0, sizeof t);
  t.p.dirfd = t.p.fd = t.fd = t.owned_fd = -1;
  int r = have ? read_args (c, &x) : 0;
  if (r == 0)
    r = resolve (c, &x, &t);
  tracer_action a;
  if (r < 0)
    a = done (c, r);
  else if (!have || !t.in_root)
    a = not_emulated (c, &x, &t, have);
  else
    a = done (c, emulate (c, &x, &t));
  tracer_target_clear (&t);
  xcall_clear (&x);
  return a;
}
