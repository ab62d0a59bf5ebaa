/* digest_file.c - --digest-file and friends, written atomically. */
#include "registry/digest_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/fsutil.h"

int
registry_write_digest_file (const char *path, const char *digest, kiln_error **err)
{
  if (registry_write_user_file (path, digest, strlen (digest), err) < 0)
    return kiln_error_wrap (err, "--digest-file");
  return 0;
}

int
registry_write_user_file (const char *path, const void *data, size_t len, kiln_error **err)
{
  /* Atomically (temp file + rename in the same directory): a reader of a
   * digest file never sees half of it. */
  autofree char *dir = xstrdup (path);
  char *slash = strrchr (dir, '/');
  const char *base = path;
  if (slash)
    {
      base = path + (slash - dir) + 1;
      if (slash == dir)
        slash[1] = '\0';
      else
        *slash = '\0';
    }
  else
    {
      free (dir);
      dir = xstrdup (".");
    }
  if (*base == '\0')
    return kiln_error_make (err, EISDIR, "'%s' names a directory", path);
  autoclose int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return kiln_error_make (err, errno, "open directory of '%s'", path);
  if (fs_write_file_atomic_at (dfd, base, data, len, 0644, err) < 0)
    return kiln_error_wrap (err, "writing '%s'", path);
  return 0;
}
