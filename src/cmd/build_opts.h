/* build_opts.h - `kiln build`'s options: what its flags set (build_opts.c
 * parses them; build.c runs the build from them). */
#ifndef KILN_CMD_BUILD_OPTS_H
#define KILN_CMD_BUILD_OPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "cmd/build_kaniko.h"
#include "registry/client.h"
#include "sandbox/sandbox.h"
#include "store/fetch.h"
#include "store/store.h"
#include "util/cli.h"
#include "util/error.h"

typedef struct build_cmd_opts
{
  cli_common common;
  bool dry_run;
  char *file;
  char *context;
  char **build_args;
  char *target;
  char *platform;
  char **platforms;             /* --platform's list, normalised (NULL: the host's) */
  bool skip_unused_stages;
  char **destinations;
  bool no_push;
  char *oci_layout;
  char *tar_path;
  char *digest_file;
  char *name_digest_file;
  bool reproducible;
  char *compression;
  int compression_level;
  char *format;
  char **labels;
  char **secrets;
  char **mirrors;
  char *progress;
  bool quiet;
  char *userns;
  char *network;
  char *isolation;
  char *seccomp;
  registry_options reg;       /* pushes and pulls */
  bool insecure_pull;
  store_pull_policy pull;
  int push_retry;
  char **noop_notes;          /* kaniko flags kiln does not need */
  bool cache;                 /* build cache on (--no-cache / --cache=false turn it off) */
  char *cache_repo;
  char *cache_mounts_repo;    /* RUN --mount=type=cache directories through this repository */
  uint64_t cache_mounts_max;  /* bytes; 0: the default */
  int64_t cache_ttl;          /* seconds, 0 = no limit */
  bool single_snapshot;
  char **ignore_paths;
  int jobs;                   /* 0: the number of online cores */
  bool allow_insecure;        /* --allow security.insecure */
  sandbox_limits limits;      /* --memory, --pids-limit (defaults: sandbox_limits_default) */
  bool cache_run_layers, cache_copy_layers;
  bool cache_given;           /* --cache=true: kaniko's registry cache, <destination>/cache by default */
  bool cache_copy_given;      /* --cache-copy-layers given: COPY layers through --cache-repo too */
  cmd_kaniko_opts kaniko;     /* kaniko's flags without a field above (build_kaniko.h) */
  bool sbom, provenance;      /* --sbom, --provenance, --attest (build/attest.h) */
  char *sbom_file, *provenance_file;
  const char *df_path;        /* the Dockerfile read (provenance) */
  int64_t epoch;              /* the documents' time under --reproducible */
  int64_t started;            /* the build's start (provenance) */
} build_cmd_opts;

/* kiln's defaults (kaniko's where it has one). */
void build_opts_init (build_cmd_opts *o);
/* argv into o, positional arguments into *pos; as cmd_parse_args: 1
 * parsed, 0 --help shown, -1 a usage error (in *err). */
int build_opts_parse (build_cmd_opts *o, int argc, char **argv, char ***pos, kiln_error **err);
/* The flag table in docs/compatibility.md's kaniko form (--help-kaniko-table). */
int build_opts_print_kaniko_table (FILE *out, kiln_error **err);
/* --cache=true without --cache-repo: <first destination's repository>/cache,
 * as kaniko infers it, so that ephemeral runners share a cache at all. */
int build_opts_default_cache_repo (build_cmd_opts *o, kiln_error **err);
void build_opts_free (build_cmd_opts *o);

#endif
