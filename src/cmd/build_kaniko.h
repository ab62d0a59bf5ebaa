/* build_kaniko.h - the kaniko executor flags of `kiln build` (issue 18)
 * that kiln's own flags do not already cover: their ids and what they set,
 * the one-line notes of flags that have nothing to do in kiln, the Markdown
 * table of every kaniko flag (docs/compatibility.md, generated from the
 * build flag table by `kiln build --help-kaniko-table`), and the push
 * access check kaniko makes before a build.
 *
 * The flags themselves are rows of build.c's table, which drives parsing
 * and --help; build.c passes the ids below to cmd_kaniko_handle. */
#ifndef KILN_CMD_BUILD_KANIKO_H
#define KILN_CMD_BUILD_KANIKO_H

#include <stdbool.h>
#include <stdio.h>
#include "registry/client.h"
#include "util/cli.h"
#include "util/error.h"

enum
{
  CMD_KANIKO_SKIP_TLS_VERIFY_PULL = 500,
  CMD_KANIKO_NAME_TAG_DIGEST_FILE,
  CMD_KANIKO_CONTEXT_SUB_PATH,
  CMD_KANIKO_NO_PUSH_CACHE,
  CMD_KANIKO_IGNORE_VAR_RUN,
  CMD_KANIKO_REGISTRY_MAP,
  CMD_KANIKO_SKIP_DEFAULT_FALLBACK,
  CMD_KANIKO_PUSH_IGNORE_IMMUTABLE,
  CMD_KANIKO_IMAGE_DOWNLOAD_RETRY,
  CMD_KANIKO_SKIP_PUSH_CHECK,
  CMD_KANIKO_BUCKET,
  CMD_KANIKO_HELP_TABLE,
  /* accepted with a note (cmd_kaniko_note) */
  CMD_KANIKO_NOTE_FORCE,
  CMD_KANIKO_NOTE_KANIKO_DIR,
  CMD_KANIKO_NOTE_EXTRACT_RETRY,
  CMD_KANIKO_NOTE_COMPRESSED_CACHING,
  CMD_KANIKO_NOTE_GIT,
  CMD_KANIKO_NOTE_FORCE_METADATA,
  CMD_KANIKO_NOTE_CACHE_DIR,
  CMD_KANIKO_NOTE_AZURE,
  CMD_KANIKO_NOTE_END,
};

/* What the kaniko flags set that has no field of kiln's own. */
typedef struct cmd_kaniko_opts
{
  bool skip_tls_verify_pull;
  char *name_tag_digest_file;
  char *context_sub_path;
  bool no_push_cache;
  int ignore_var_run;        /* -1 not given, else 0 / 1 */
  bool push_ignore_immutable;
  int image_download_retry;  /* -1 not given */
  bool skip_push_check;
  bool print_table;          /* --help-kaniko-table */
} cmd_kaniko_opts;

#define CMD_KANIKO_OPTS_INIT { .ignore_var_run = -1, .image_download_retry = -1 }

/* Handle id if it is one of the ids above: 1 if it was, 0 if not, <0 on a
 * bad value. reg, *mirrors (kaniko's --registry-map adds SRC=HOST entries)
 * and *notes (the one-line notes logged when the build starts) belong to
 * the build's options. */
int cmd_kaniko_handle (cmd_kaniko_opts *k, registry_options *reg, char ***mirrors, char ***notes, int id,
                       const char *value, kiln_error **err);

/* After parsing: --ignore-var-run adds /var/run to *ignore_paths. */
void cmd_kaniko_finish (const cmd_kaniko_opts *k, char ***ignore_paths);

void cmd_kaniko_free (cmd_kaniko_opts *k);

/* Print docs/compatibility.md's table of kaniko's executor flags from the
 * flag table opts (build's flags and the common ones): for every kaniko
 * flag, kiln's flag with the same id and its help text. An error when a
 * kaniko flag is missing from opts or its short form differs. */
int cmd_kaniko_print_table (FILE *out, const cli_option *opts, size_t n_opts, kiln_error **err);

/* kaniko's push permission check before the build: every destination
 * (unless no_push) and the cache repository (unless no_push_cache), each
 * repository once, with registry_check_push. A cache repository whose
 * registry cannot be reached is a warning (the build cache goes on
 * without it, as before); everything else is an error. */
int cmd_kaniko_check_push (const registry_options *reg, char *const *destinations, bool no_push,
                           const char *cache_repo, bool no_push_cache, kiln_error **err);

/* The Dockerfile as kaniko finds it: file (relative to the working
 * directory, else to the context directory), or CONTEXT/Dockerfile.
 * in_context: the context was unpacked by kiln (tar), so a relative file
 * is inside it. Caller frees. */
char *cmd_kaniko_dockerfile_path (const char *file, const char *ctx_dir, bool in_context);

#endif
