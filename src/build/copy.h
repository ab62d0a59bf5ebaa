/* copy.h - COPY and ADD: build a step's change list straight from its
 * sources, without a sandbox and without touching the image's tree.
 *
 * A source is either the build context (a host directory, walked with *at()
 * calls that never follow a symlink out of it, .dockerignore applied) or a
 * stage / image (its merged layer stack, see rootfs.h). The destination view
 * (the stage's current layers) decides directory-vs-file destinations and
 * supplies the metadata of existing parent directories, which a layer must
 * carry (copy_changes has one entry per path; later entries replace earlier
 * ones, so a copied directory overrides the parent entry made for it).
 *
 * Semantics follow Docker/BuildKit: a directory source copies its contents;
 * several sources (given or matched by wildcards) or a trailing '/' make the
 * destination a directory (one file matched by a wildcard is copied as a
 * file); a wildcard that matches nothing copies nothing when the directory
 * it lists exists; owners become --chown, else 0:0 for the context and the
 * source's numeric owners for --from (keep_owner, as Docker/BuildKit);
 * --chmod applies to every copied entry; modes, mtimes, symlinks, hardlinks
 * (within one COPY) and xattrs (user.*, security.capability) are kept; new
 * parent directories are 0755 and owned by the --chown user. Wildcards use
 * fnmatch(3) with FNM_PATHNAME, which matches Go's filepath.Match for
 * everything Docker documents.
 */
#ifndef KILN_BUILD_COPY_H
#define KILN_BUILD_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "build/dockerignore.h"
#include "overlay/overlay_lower.h"
#include "store/layer_writer.h"
#include "util/error.h"

/* A change list with owned strings. */
typedef struct copy_changes
{
  layer_change *v;
  size_t n, cap;
  struct copy_owned *owned;   /* per entry: owned strings */
  size_t *hash;               /* open addressing: path -> index + 1 */
  size_t hash_cap;
} copy_changes;

void copy_changes_free (copy_changes *c);

typedef struct copy_request
{
  char **srcs;            /* sources as written (expanded), relative to the source root */
  const char *dest;       /* absolute destination in the image (WORKDIR applied) */
  bool dest_is_dir;       /* trailing '/' given */
  bool chown;             /* --chown given: uid/gid */
  uid_t uid;
  gid_t gid;
  bool chmod;             /* --chmod given (octal) */
  mode_t mode;
  char **excludes;        /* --exclude patterns */
  bool link;              /* --link: parents are not taken from the image */
  bool parents;           /* --parents: keep the source path below the destination */
  const char *what;       /* "COPY" / "ADD" for messages */
  int64_t now;            /* mtime of directories the copy creates */
  bool keep_owner;        /* owners from the source (--from, ADD of an archive), unless chown */
  bool keep_owner_top;    /* with keep_owner, also for a directory named as source (an archive's root) */
  /* ADD: offered each source (after wildcards and symlinks) that is a
   * regular file; 1: it took the file (an archive it extracted), 0: copy
   * it, negative: failure. Files inside a copied directory are never
   * offered (Docker extracts only archives named or matched directly). */
  int (*take_file) (void *ud, const char *src, kiln_error **err);
  void *take_ud;
} copy_request;

/* Copy from the build context directory ctx_dirfd. */
int copy_from_context (int ctx_dirfd, const dockerignore *ign, overlay_lower *dest_view, const copy_request *req,
                       copy_changes *out, kiln_error **err);

/* Copy from another stage's or image's merged layers. */
int copy_from_layers (overlay_lower *src, overlay_lower *dest_view, const copy_request *req, copy_changes *out,
                      kiln_error **err);

/* Add a regular file at dest whose data is data_path below data_dirfd
 * (heredoc COPY, ADD of a URL), with its parents. The data file must be
 * kiln's own (a store temp file nothing writes after this): the store
 * layer may hard-link it (layer_change.data_private). */
int copy_add_file (overlay_lower *dest_view, const copy_request *req, int data_dirfd, const char *data_path,
                   mode_t mode, int64_t mtime, copy_changes *out, kiln_error **err);

/* Add directory path (absolute) and its missing parents, owned uid:gid,
 * mode 0755 (WORKDIR). Existing directories produce no change; returns the
 * number of entries added. */
int copy_mkdir (overlay_lower *dest_view, const char *path, uid_t uid, gid_t gid, int64_t now, copy_changes *out,
                kiln_error **err);

/* Parse --chmod: octal ("755", "0644"); symbolic modes are an error naming
 * the value. */
int copy_parse_chmod (const char *s, mode_t *out, kiln_error **err);

#endif
