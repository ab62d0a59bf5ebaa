/* xattr.c - a tiny static setfattr/getfattr/setcap for images that have
 * none (busybox), built by the tests with gcc -static:
 *
 *   xattr set PATH NAME VALUE [create|replace]   setxattr
 *   xattr lset PATH NAME VALUE                   lsetxattr
 *   xattr fset PATH NAME VALUE                   fsetxattr on an O_RDONLY fd
 *   xattr get PATH NAME                          getxattr: the value
 *   xattr fget PATH NAME                         fgetxattr
 *   xattr list PATH                              listxattr: names, sorted, one a line
 *   xattr rm PATH NAME                           removexattr
 *   xattr setcap PATH                            security.capability = cap_net_raw+ep (v2),
 *                                                what `setcap cap_net_raw+ep PATH` writes
 *   xattr getcap PATH                            security.capability in hex
 *   xattr probe PATH                             size query, ERANGE, long names, big values
 *
 * Errors print "xattr: OP: ERRNO-NAME" and exit 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

static int
fail (const char *op)
{
  printf ("xattr: %s: %s\n", op, strerrorname_np (errno) ? strerrorname_np (errno) : "?");
  return 1;
}

static int
cmp (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static int
list (const char *path)
{
  ssize_t n = listxattr (path, NULL, 0);
  if (n < 0)
    return fail ("list");
  char *buf = malloc ((size_t) n + 1);
  n = listxattr (path, buf, (size_t) n);
  if (n < 0)
    return fail ("list");
  char *names[4096];
  size_t k = 0;
  for (char *p = buf; p < buf + n && k < 4096; p += strlen (p) + 1)
    names[k++] = p;
  qsort (names, k, sizeof *names, cmp);
  for (size_t i = 0; i < k; i++)
    printf ("%s\n", names[i]);
  return 0;
}

static int
get (const char *path, const char *name, int fd, int hex)
{
  char buf[65536];
  ssize_t n = fd >= 0 ? fgetxattr (fd, name, buf, sizeof buf) : getxattr (path, name, buf, sizeof buf);
  if (n < 0)
    return fail ("get");
  for (ssize_t i = 0; i < n; i++)
    printf (hex ? "%02x" : "%c", hex ? (unsigned char) buf[i] : buf[i]);
  printf ("\n");
  return 0;
}

/* The kernel's answers at the edges. */
static int
probe (const char *path)
{
  char small[2], name[300], *big = calloc (1, 70000);
  if (setxattr (path, "user.probe", "abcdef", 6, 0) < 0)
    return fail ("probe set");
  printf ("size0=%zd\n", getxattr (path, "user.probe", NULL, 0));
  printf ("erange=%s\n", getxattr (path, "user.probe", small, sizeof small) < 0 ? strerrorname_np (errno) : "ok");
  memset (name, 'n', sizeof name);
  memcpy (name, "user.", 5);
  name[255] = '\0';
  printf ("name255=%s\n", setxattr (path, name, "v", 1, 0) < 0 ? strerrorname_np (errno) : "ok");
  printf ("rm255=%s\n", removexattr (path, name) < 0 ? strerrorname_np (errno) : "ok");
  name[255] = 'n';
  name[256] = '\0';
  printf ("name256=%s\n", setxattr (path, name, "v", 1, 0) < 0 ? strerrorname_np (errno) : "ok");
  printf ("empty=%s\n", getxattr (path, "", small, sizeof small) < 0 ? strerrorname_np (errno) : "ok");
  printf ("big=%s\n", setxattr (path, "user.big", big, 65537, 0) < 0 ? strerrorname_np (errno) : "ok");
  printf ("max=%s\n", setxattr (path, "user.max", big, 65536, 0) < 0 ? strerrorname_np (errno) : "ok");
  printf ("rmmax=%s\n", removexattr (path, "user.max") < 0 ? strerrorname_np (errno) : "ok");
  printf ("flags=%s\n", setxattr (path, "user.f", "v", 1, 4) < 0 ? strerrorname_np (errno) : "ok");
  printf ("create=%s\n", setxattr (path, "user.probe", "v", 1, XATTR_CREATE) < 0 ? strerrorname_np (errno) : "ok");
  printf ("replace=%s\n", setxattr (path, "user.none", "v", 1, XATTR_REPLACE) < 0 ? strerrorname_np (errno) : "ok");
  printf ("nodata=%s\n", getxattr (path, "user.none", small, sizeof small) < 0 ? strerrorname_np (errno) : "ok");
  printf ("rmnone=%s\n", removexattr (path, "user.none") < 0 ? strerrorname_np (errno) : "ok");
  printf ("trusted=%s\n", setxattr (path, "trusted.t", "v", 1, 0) < 0 ? strerrorname_np (errno) : "ok");
  printf ("other=%s\n", setxattr (path, "other.t", "v", 1, 0) < 0 ? strerrorname_np (errno) : "ok");
  printf ("rmprobe=%s\n", removexattr (path, "user.probe") < 0 ? strerrorname_np (errno) : "ok");
  printf ("missing=%s\n", getxattr ("/no/such", "user.x", small, sizeof small) < 0 ? strerrorname_np (errno) : "ok");
  free (big);
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc < 3)
    return 2;
  const char *op = argv[1], *path = argv[2];
  if (!strcmp (op, "list"))
    return list (path);
  if (!strcmp (op, "probe"))
    return probe (path);
  if (!strcmp (op, "getcap"))
    return get (path, "security.capability", -1, 1);
  if (!strcmp (op, "setcap"))
    {
      /* struct vfs_cap_data, revision 2, effective: CAP_NET_RAW (13) */
      unsigned char v[20] = { 0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00 };
      return setxattr (path, "security.capability", v, sizeof v, 0) < 0 ? fail ("setcap") : 0;
    }
  if (argc < 4)
    return 2;
  const char *name = argv[3];
  if (!strcmp (op, "get"))
    return get (path, name, -1, 0);
  if (!strcmp (op, "fget"))
    {
      int fd = open (path, O_RDONLY | O_CLOEXEC);
      return fd < 0 ? fail ("open") : get (path, name, fd, 0);
    }
  if (!strcmp (op, "rm"))
    return removexattr (path, name) < 0 ? fail ("rm") : 0;
  if (argc < 5)
    return 2;
  const char *value = argv[4];
  int flags = argc > 5 && !strcmp (argv[5], "create") ? XATTR_CREATE
              : argc > 5 && !strcmp (argv[5], "replace") ? XATTR_REPLACE : 0;
  if (!strcmp (op, "set"))
    return setxattr (path, name, value, strlen (value), flags) < 0 ? fail ("set") : 0;
  if (!strcmp (op, "lset"))
    return lsetxattr (path, name, value, strlen (value), flags) < 0 ? fail ("lset") : 0;
  if (!strcmp (op, "fset"))
    {
      int fd = open (path, O_RDONLY | O_CLOEXEC);
      return fd < 0 ? fail ("open") : fsetxattr (fd, name, value, strlen (value), flags) < 0 ? fail ("fset") : 0;
    }
  return 2;
}
