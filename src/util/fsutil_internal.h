/* fsutil_internal.h - what the files of the fsutil module share. PRIVATE to
 * src/util/fsutil.c and src/util/fsutil_resolve.c: nothing else includes
 * it; the module's API is fsutil.h.
 *
 * Where things are:
 *   fsutil.c          mkdir -p, temp names, atomic files, reads and writes,
 *                     rm -rf, copies, locks, path cleaning
 *   fsutil_resolve.c  fs_open_in_root: openat2 when the kernel has it, else
 *                     the userspace walk (the fallback resolver)
 */
#ifndef KILN_UTIL_FSUTIL_INTERNAL_H
#define KILN_UTIL_FSUTIL_INTERNAL_H

#include <sys/types.h>

/* openat(2) with O_CLOEXEC added, retried on EINTR (fsutil.c). */
int fs_xopenat (int dirfd, const char *path, int flags, mode_t mode);

#endif /* KILN_UTIL_FSUTIL_INTERNAL_H */
