/* cmd.h - kiln's commands: one file per command in src/cmd/, each a
 * front-end over the library folders (flags -> options -> library calls).
 * src/main.c looks the command up in cmd_table and calls its entry point.
 *
 * Every entry point takes argv with argv[0] the command's name ("build")
 * and returns an exit code: KILN_EXIT_OK, KILN_EXIT_USAGE for a usage
 * error, KILN_EXIT_FAILURE (or 128 + signal) otherwise; on a non-zero code
 * *err says why, and main() prints it once.
 */
#ifndef KILN_CMD_CMD_H
#define KILN_CMD_CMD_H

#include <stddef.h>
#include <stdio.h>
#include "util/error.h"

/* `kiln build` (build.c): build an image from a Dockerfile. */
int cmd_build_main (int argc, char **argv, kiln_error **err);
/* `kiln pull REF --oci-layout DIR[:TAG]` / `--store` (pull.c). */
int cmd_pull_main (int argc, char **argv, kiln_error **err);
/* `kiln warm IMAGE...` (warm.c): pull images into the store ahead of
 * builds (kaniko's warmer). */
int cmd_warm_main (int argc, char **argv, kiln_error **err);
/* `kiln push --oci-layout DIR[:TAG] REF...` (push.c). */
int cmd_push_main (int argc, char **argv, kiln_error **err);
/* `kiln prune` (prune.c): remove store content no kept image or cache
 * entry references (--all: everything; --dry-run: report only). */
int cmd_prune_main (int argc, char **argv, kiln_error **err);
/* `kiln run` (run.c): run a command in an image or a root filesystem inside
 * the step sandbox. */
int cmd_run_main (int argc, char **argv, kiln_error **err);
/* `kiln version` (version.c): kiln's and the linked libraries' versions. */
int cmd_version_main (int argc, char **argv, kiln_error **err);
/* kiln's version and git commit as `kiln version` prints them (provenance). */
void cmd_version_strings (const char **version, const char **commit);
/* `kiln help [COMMAND]` (help.c): the usage below, or COMMAND --help. */
int cmd_help_main (int argc, char **argv, kiln_error **err);

typedef int (*cmd_fn) (int argc, char **argv, kiln_error **err);

typedef struct cmd_entry
{
  const char *name;
  cmd_fn fn;
  const char *summary;  /* one line in `kiln help` */
} cmd_entry;

/* Every command, in the order `kiln help` lists them (help.c). */
extern const cmd_entry cmd_table[];
extern const size_t cmd_table_count;

/* The command called name, or NULL. */
const cmd_entry *cmd_find (const char *name);

/* kiln's usage: what it is and the command table. */
void cmd_usage (FILE *out);

#endif
