/* fuzz_open_in_root.c - differential fuzzing of fs_open_in_root's userspace
 * fallback against the kernel's openat2 on a fixed tree full of escaping,
 * looping and dangling symlinks. Input: one byte choosing flags and mode,
 * then the path. Both must open the same inode or fail with the same errno;
 * the fallback must never reach a file outside the root. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/fsutil.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int rootfd = -1;
static struct stat outside_st;

static void
must (int ok, const char *what)
{
  if (!ok)
    {
      perror (what);
      abort ();
    }
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  (void) argc;
  (void) argv;
  /* run.sh points TMPDIR at its scratch directory, removed afterwards. */
  const char *tmp = getenv ("TMPDIR");
  char *dir = xasprintf ("%s/kiln-fuzz-root.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  must (mkdtemp (dir) != NULL, "mkdtemp");
  int top = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  must (top >= 0, "open tmp");
  must (mkdirat (top, "root", 0755) == 0, "mkdir root");
  int fd = openat (top, "outside", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  must (fd >= 0 && fstat (fd, &outside_st) == 0, "outside");
  close (fd);
  rootfd = openat (top, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  must (rootfd >= 0, "open root");
  char *abs_out = xasprintf ("%s/outside", dir);
  static const char *const dirs[] = { "a", "a/b", "a/b/c", "d" };
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    must (mkdirat (rootfd, dirs[i], 0755) == 0, "mkdir");
  static const char *const files[] = { "f", "a/f", "a/b/f", "a/b/c/f", "outside" };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
    {
      fd = openat (rootfd, files[i], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      must (fd >= 0, "create");
      close (fd);
    }
  const char *links[][2] = {
    { "..", "up" }, { "../..", "a/up2" }, { "../../../..", "a/b/up4" }, { "/", "slash" },
    { abs_out, "abs" }, { "/outside", "a/absin" }, { "../outside", "rel" }, { "b/c", "a/bc" },
    { "/a/b", "d/ab" }, { "l2", "l1" }, { "l1", "l2" }, { "missing/x", "dang" }, { "f/", "filedir" },
    { "/proc/self/root", "proc" }, { "a/../../a/./b/up4/outside", "mix" }, { "self", "self" },
  };
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
    must (symlinkat (links[i][0], rootfd, links[i][1]) == 0, "symlink");
  free (abs_out);
  free (dir);
  close (top);
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const int flagsets[] = { O_PATH, O_PATH | O_NOFOLLOW, O_RDONLY, O_RDONLY | O_DIRECTORY,
                                  O_RDONLY | O_NOFOLLOW, O_PATH | O_DIRECTORY, O_RDONLY, O_PATH };
  if (size < 1 || size > 1024 || !fs_have_openat2 ())
    return 0;
  int flags = flagsets[data[0] & 7];
  int resolve = (data[0] & 8) ? FS_RESOLVE_BENEATH : FS_RESOLVE_IN_ROOT;
  if (data[0] & 16)
    resolve |= FS_RESOLVE_NO_SYMLINKS;
  char *path = xstrndup ((const char *) data + 1, size - 1);
  kiln_error *e1 = NULL, *e2 = NULL;
  int fd1 = fs_open_in_root (rootfd, path, flags, 0, resolve, &e1);
  int fd2 = fs_open_in_root (rootfd, path, flags, 0, resolve | FS_RESOLVE_FORCE_FALLBACK, &e2);
  if ((fd1 < 0) != (fd2 < 0) || (fd1 < 0 && e1->status != e2->status))
    {
      fprintf (stderr, "mismatch for '%s' flags %#x resolve %#x: kernel %s (%d), fallback %s (%d)\n", path,
               flags, resolve, fd1 < 0 ? e1->msg : "ok", fd1 < 0 ? e1->status : 0, fd2 < 0 ? e2->msg : "ok",
               fd2 < 0 ? e2->status : 0);
      abort ();
    }
  if (fd1 >= 0)
    {
      struct stat s1, s2;
      if (fstat (fd1, &s1) < 0 || fstat (fd2, &s2) < 0 || s1.st_ino != s2.st_ino || s1.st_dev != s2.st_dev)
        {
          fprintf (stderr, "mismatch for '%s': different files\n", path);
          abort ();
        }
      if (s2.st_ino == outside_st.st_ino && s2.st_dev == outside_st.st_dev)
        {
          fprintf (stderr, "'%s' escaped the root\n", path);
          abort ();
        }
      close (fd1);
      close (fd2);
    }
  kiln_error_free (e1);
  kiln_error_free (e2);
  free (path);
  return 0;
}
