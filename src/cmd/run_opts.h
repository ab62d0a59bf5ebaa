/* run_opts.h - `kiln run`'s options: what its flags set (run_opts.c parses
 * them and checks their combination; run.c runs the command from them). */
#ifndef KILN_CMD_RUN_OPTS_H
#define KILN_CMD_RUN_OPTS_H

#include <signal.h>
#include <stdbool.h>
#include "registry/client.h"
#include "sandbox/sandbox.h"
#include "store/fetch.h"
#include "util/cli.h"
#include "util/error.h"
#include "util/sigcancel.h"

typedef struct run_opts
{
  cli_common common;
  char *rootfs;
  bool rootfs_ro;
  sandbox_userns_mode userns;
  sandbox_isolation isolation;
  sandbox_net_mode network;
  char *seccomp;
  char *user;
  char **env;
  char *workdir;
  char *hostname;
  bool overlay;
  bool show_changes;
  char *layout;
  char *entrypoint;
  bool entrypoint_set;
  store_pull_policy pull;
  char *platform;
  char **mirrors;
  registry_options reg;
  /* SIGINT/SIGTERM: the flag (also reg.cancel) and the level-triggered fd
   * the step's supervisor polls. */
  volatile sig_atomic_t *signal_flag;
  sigcancel_pipe cancel;
} run_opts;

/* Parse kiln run's command line into o (zeroed and given its defaults
 * here). Returns 1 with *pos at the first argument after kiln's flags (IMAGE
 * and the command, or the command with --rootfs / --oci-layout; inside
 * argv), 0 when --help was printed (nothing to run), -1 on a usage error
 * (*err, prefixed with "kiln run" for a bad combination of flags). o is to
 * be freed with run_opts_free in every case. */
int run_opts_parse (int argc, char **argv, run_opts *o, char ***pos, kiln_error **err);
void run_opts_free (run_opts *o);

/* A numeric user or group id as --user takes it (0..4294967294). */
int run_opts_parse_id (const char *s, unsigned long *out);

#endif
