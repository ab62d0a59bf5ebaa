/* context.c - files the build context names, opened beneath it (see context.h). */
#include "build/context.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* path made absolute against the working directory, then cleaned: "a/b"
 * for "/a/b" (fs_path_clean's form); NULL when it climbs above "/". */
static char *
clean_absolute (const char *path)
{
  autofree char *abs = NULL;
  if (path[0] != '/')
    {
      autofree char *cwd = getcwd (NULL, 0);
      if (cwd == NULL)
        return NULL;
      abs = xasprintf ("%s/%s", cwd, path);
    }
  char *out = NULL;
  if (fs_path_clean (abs ? abs : path, false, &out) < 0)
    return NULL;
  return out;
}

/* True when path is dir or below it (lexically); *rel is then the rest
 * ("" for dir itself; caller frees). */
static bool
path_below (const char *dir, const char *path, char **rel)
{
  autofree char *d = clean_absolute (dir);
  autofree char *p = clean_absolute (path);
  if (d == NULL || p == NULL)
    return false;
  size_t n = strlen (d);
  if (n > 0 && (strncmp (p, d, n) != 0 || (p[n] != '/' && p[n] != '\0')))
    return false;
  *rel = xstrdup (n == 0 ? p : p[n] == '/' ? p + n + 1 : "");
  return true;
}

int
context_open_file (const char *context_dir, const char *path, int flags, kiln_error **err)
{
  autofree char *rel = NULL;
  if (context_dir == NULL || !path_below (context_dir, path, &rel))
    {
      int fd = open (path, flags | O_CLOEXEC);
      if (fd < 0)
        return kiln_error_make (err, errno, "open '%s'", path);
      return fd;
    }
  autoclose int dfd = open (context_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return kiln_error_make (err, errno, "open build context '%s'", context_dir);
  autoerror kiln_error *e = NULL;
  int fd = fs_open_in_root (dfd, rel, flags, 0, FS_RESOLVE_BENEATH, &e);
  if (fd >= 0)
    return fd;
  if (e->status == EXDEV)
    return kiln_error_make (err, EXDEV, "'%s' leads outside the build context '%s' (a symlink?): not read", path,
                            context_dir);
  return kiln_error_make (err, e->status, "open '%s'", path);
}
