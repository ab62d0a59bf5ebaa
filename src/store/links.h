/* links.h - store files that share an inode with a file a user can write,
 * and their verification on reuse (issue 16 item 2).
 *
 * Two kinds of store files are hard links to something outside the store:
 *   - a COPY/ADD layer's tree links the build context's files (no copy of
 *     the data: allocating a file with data costs 10-25x a link on ext4);
 *   - an --oci-layout written on the store's filesystem links the store's
 *     blobs.
 * The user can write either name. So the store records, when it makes such
 * a link, each inode's identity: st_ino, st_size, st_ctime and st_mtime
 * (seconds and nanoseconds). No user can set ctime, and every write,
 * truncate, chmod, chown, link or unlink of the inode moves it. kiln stats
 * the file right after it made the link (on kernels with multigrain
 * timestamps, 6.13+, that query makes the next change visible even within
 * the same clock tick), having first written back its dirty pages (a
 * shared writable mapping then faults, and moves ctime, on its next
 * store). Whenever the store hands such a file out it stats it and
 * compares:
 *   - a layer with a `links` file (next to its index, published with it)
 *     is checked by store_open_layer, the one door to a layer's tree
 *     (overlay lowers, COPY --from sources, squash, re-packing); on a
 *     mismatch the tree is re-extracted from the layer's blob (kiln's own
 *     file, never linked to the context), the new tree swapped in and the
 *     old one moved to tmp/, and a warning names the file;
 *   - a blob with a record in bloblinks/sha256/HEX is checked by
 *     store_open_blob; on a mismatch the blob is hashed again: still its
 *     digest (a chmod, a link, an unlink), the record is renewed; else the
 *     blob is removed from the store and the open fails as for a missing
 *     blob, saying so.
 * A blob whose link count alone moved (a layout deleted) while size and
 * mtime stayed, and which only its owner, kiln's own user, may write, is
 * accepted without hashing (link_relinked in links.c: whoever could write
 * it could write the store directly). A layer's tree gets no such
 * exception: a build context file is there to be edited.
 *
 * On-disk format (the layer's `links` file and a blob's record; text,
 * validated when read):
 *   kiln-links 1\n
 *   then per linked file one line:
 *   INO NLINK SIZE CTIME_SEC.CTIME_NSEC MTIME_SEC.MTIME_NSEC PATHLEN PATH\n
 *   numbers in decimal (times may be negative), nanoseconds as 9 digits,
 *   PATH exactly PATHLEN (1..4096) bytes, no NUL; a blob's record has one
 *   line whose PATH is the blob's hex digest.
 */
#ifndef KILN_STORE_LINKS_H
#define KILN_STORE_LINKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include "store/store.h"
#include "util/error.h"
#include "util/strbuf.h"

#define STORE_LINKS_FILE "links"
#define STORE_LINKS_MAX_PATH 4096
/* A links file is read whole; 256 MiB is ~2.5 million records. */
#define STORE_LINKS_MAX_FILE (256u << 20)

typedef struct store_link
{
  char *path;          /* in the layer's tree ("a/b"), or a blob's hex */
  uint64_t ino, nlink, size;  /* nlink: for messages only (ctime moves with it) */
  int64_t ctime_sec, mtime_sec;
  uint32_t ctime_nsec, mtime_nsec;
} store_link;

typedef struct store_links
{
  store_link *v;
  size_t n, cap;
} store_links;

void store_links_add (store_links *l, const char *path, const struct stat *st);
void store_links_free (store_links *l);
/* Does st still show the inode the record describes? */
bool store_link_same (const store_link *r, const struct stat *st);

void store_links_format (const store_links *l, strbuf *out);
/* Parse the format above; anything else is an error (EINVAL). */
int store_links_parse (const char *data, size_t len, store_links *out, kiln_error **err);

/* kiln linked a file (before/after: its stat around the link): remember
 * the ctime move as its own (links.c, "ctime moves kiln made itself"). */
void store_links_note_own (const struct stat *before, const struct stat *after);
/* Did only this process's links move the file's ctime from from_sec.nsec
 * to now's? */
bool store_links_own_moved (const struct stat *now, int64_t from_sec, uint32_t from_nsec);

/* Verify layer dir dfd (of diff_id) before its tree is used: nothing to do
 * without a links file; on a mismatch re-extract the tree from the layer's
 * blob (under the layer's lock) and swap it in. *dfd may be replaced by
 * the new layer directory. */
int store_links_check_layer (store *s, const char *diff_id, int *dfd, kiln_error **err);

/* Hard-link store blob digest to name below dirfd and record it. Returns 0
 * when linked, 1 when the filesystem does not allow a link (EXDEV, EMLINK,
 * EPERM, EACCES: the caller copies), negative on error. */
int store_blob_link_out (store *s, const char *digest, int dirfd, const char *name, kiln_error **err);
/* Called by store_open_blob on the blob it opened: without a record, 0;
 * a record that still matches, 0; else see above (ENOENT when removed). */
int store_blob_check_links (store *s, const char *digest, int fd, kiln_error **err);

#endif
