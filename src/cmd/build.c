/* build.c - `kiln build`: flags (docker build, BuildKit and kaniko
 * executor spellings), then plan -> build_exec -> build_output. */
#include "cmd/cmd.h"
#include "cmd/cmd_common.h"
#include "cmd/build_kaniko.h"
#include "build/attest.h"
#include "build/build_cache.h"
#include "build/build_cache_mounts.h"
#include "build/build_exec.h"
#include "build/build_output.h"
#include "build/dockerfile.h"
#include "build/plan.h"
#include "build/plan_json.h"
#include "build/progress.h"
#include "build/run_mounts.h"
#include "registry/reference.h"
#include "sandbox/sandbox.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/sigcancel.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/units.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

enum
{
  OPT_DRY_RUN = 1,
  OPT_FILE,
  OPT_BUILD_ARG,
  OPT_TARGET,
  OPT_PLATFORM,
  OPT_SKIP_UNUSED,
  OPT_CONTEXT,
  OPT_TAG,
  OPT_NO_PUSH,
  OPT_OCI_LAYOUT,
  OPT_TAR_PATH,
  OPT_DIGEST_FILE_B,
  OPT_NAME_DIGEST_FILE,
  OPT_REPRODUCIBLE,
  OPT_COMPRESSION,
  OPT_COMPRESSION_LEVEL,
  OPT_FORMAT,
  OPT_LABEL,
  OPT_PROGRESS,
  OPT_QUIET,
  OPT_USERNS,
  OPT_NETWORK,
  OPT_ISOLATION,
  OPT_SECCOMP,
  OPT_INSECURE_PULL,
  OPT_PUSH_RETRY_B,
  OPT_SINGLE_SNAPSHOT,
  OPT_NOOP_SNAPSHOT_MODE,
  OPT_NOOP_USE_NEW_RUN,
  OPT_NOOP_CLEANUP,
  OPT_SECRET,
  OPT_MIRROR_B,
  OPT_PULL_POLICY,
  OPT_NO_CACHE,
  OPT_IGNORE_PATH,
  OPT_JOBS,
  OPT_ALLOW,
  OPT_MEMORY,
  OPT_PIDS_LIMIT,
  OPT_CACHE,
  OPT_CACHE_REPO,
  OPT_CACHE_MOUNTS_REPO,
  OPT_CACHE_MOUNTS_MAX,
  OPT_CACHE_TTL,
  OPT_CACHE_RUN_LAYERS,
  OPT_CACHE_COPY_LAYERS,
  OPT_SBOM,
  OPT_PROVENANCE,
  OPT_ATTEST,
  OPT_SBOM_FILE,
  OPT_PROVENANCE_FILE,
};

static const cli_option build_options[] = {
  { "dry-run", 0, CLI_BOOL, NULL,
    "parse the Dockerfile, resolve arguments and stages, print the build plan as JSON and exit "
    "(reads no context, contacts no registry)", OPT_DRY_RUN },
  { "file", 'f', CLI_VALUE, "PATH", "Dockerfile to use (default: CONTEXT/Dockerfile)", OPT_FILE },
  { "dockerfile", 0, CLI_VALUE, "PATH", NULL, OPT_FILE },
  { "context", 'c', CLI_VALUE, "DIR", "build context: a directory (PATH, dir://PATH), a tar archive "
    "(tar://PATH; gzip/bzip2/xz/zstd) or - for a tar on stdin (the Dockerfile is then read from it)", OPT_CONTEXT },
  { "build-arg", 0, CLI_VALUE, "KEY[=VALUE]", "set a build-time variable (repeatable); without =VALUE the value "
    "comes from the environment", OPT_BUILD_ARG },
  { "target", 0, CLI_VALUE, "STAGE", "build this stage (default: the last one)", OPT_TARGET },
  { "platform", 0, CLI_VALUE, "OS/ARCH[/VARIANT][,...]", "target platform(s) (default: this machine); several make one image index", OPT_PLATFORM },
  { "custom-platform", 0, CLI_VALUE, "OS/ARCH[/VARIANT]", NULL, OPT_PLATFORM },
  { "skip-unused-stages", 0, CLI_BOOL, NULL, "build only the stages the target needs (default true; "
    "false builds every stage up to the target)", OPT_SKIP_UNUSED },
  { "tag", 't', CLI_VALUE, "IMAGE", "push the result to IMAGE (registry/repository:tag; repeatable)", OPT_TAG },
  { "destination", 'd', CLI_VALUE, "IMAGE", NULL, OPT_TAG },
  { "no-push", 0, CLI_BOOL, NULL, "build (and write --oci-layout/--tar-path) but push nothing", OPT_NO_PUSH },
  { "oci-layout", 0, CLI_VALUE, "DIR[:TAG]", "also write the image into an OCI layout directory", OPT_OCI_LAYOUT },
  { "oci-layout-path", 0, CLI_VALUE, "DIR[:TAG]", NULL, OPT_OCI_LAYOUT },
  { "tar-path", 0, CLI_VALUE, "FILE", "also write the image as a `docker load` archive", OPT_TAR_PATH },
  { "sbom", 0, CLI_BOOL, NULL, "(BuildKit) attach an SPDX 2.3 JSON SBOM of the image: packages of dpkg, apk, "
    "Python (*.dist-info), npm (package-lock.json, node_modules) and Go binaries' build info, each with its purl and the layer that "
    "introduced it; read from the layers, nothing is run. Attached as an OCI 1.1 artifact whose subject is the "
    "image (pushed with the referrers tag sha256-HEX; in --oci-layout an index.json entry and DIR/sbom.spdx.json); "
    "the image's digest does not change", OPT_SBOM },
  { "provenance", 0, CLI_BOOL, NULL, "(BuildKit) attach a SLSA v1 provenance statement (in-toto): builder, "
    "Dockerfile digest, target, platform, build args, base image digests, and for every layer the step that made "
    "it and its exact file list with each path's change (added, modified, deleted, metadata); attached as --sbom "
    "(DIR/provenance.json in --oci-layout)", OPT_PROVENANCE },
  { "attest", 0, CLI_VALUE, "type=sbom|provenance[,...]", "(BuildKit) the long form of --sbom and --provenance "
    "(repeatable; provenance takes mode=min|max, both give the full statement; other options are an error)",
    OPT_ATTEST },
  { "sbom-file", 0, CLI_VALUE, "FILE", "also write the SBOM to FILE (implies --sbom)", OPT_SBOM_FILE },
  { "provenance-file", 0, CLI_VALUE, "FILE", "also write the provenance statement to FILE (implies --provenance)",
    OPT_PROVENANCE_FILE },
  { "digest-file", 0, CLI_VALUE, "FILE", "write the image manifest digest to FILE", OPT_DIGEST_FILE_B },
  { "image-name-with-digest-file", 0, CLI_VALUE, "FILE", "write NAME@DIGEST for every destination to FILE",
    OPT_NAME_DIGEST_FILE },
  { "reproducible", 0, CLI_BOOL, NULL, "identical inputs give an identical digest: timestamps set to "
    "$SOURCE_DATE_EPOCH (default 0), file mtimes clamped to it", OPT_REPRODUCIBLE },
  { "compression", 0, CLI_VALUE, "gzip|zstd|none", "layer compression (default gzip)", OPT_COMPRESSION },
  { "compression-level", 0, CLI_VALUE, "N", "compression level (gzip 1-9: 1-3 ISA-L, 4-9 zlib, byte-identical across machines only with zlib; zstd 1-22; default 3 / 3)",
    OPT_COMPRESSION_LEVEL },
  { "format", 0, CLI_VALUE, "oci|docker", "manifest and config format (default oci)", OPT_FORMAT },
  { "label", 0, CLI_VALUE, "KEY=VALUE", "add a label to the image (repeatable)", OPT_LABEL },
  { "secret", 0, CLI_VALUE, "id=ID,src=PATH|env=VAR", "a secret for RUN --mount=type=secret (repeatable); never "
    "stored in a layer or printed", OPT_SECRET },
  { "progress", 0, CLI_VALUE, "auto|plain|tty|json", "progress output on stderr: tty redraws in place, plain is "
    "BuildKit's line log, json one event per line; auto (default) is tty on a terminal with TERM not dumb, else "
    "plain", OPT_PROGRESS },
  { "quiet", 'q', CLI_BOOL, NULL, "print only the image digest", OPT_QUIET },
  { "isolation", 0, CLI_VALUE, "auto|userns|ptrace", "how RUN steps are isolated. userns: user, mount, pid, ipc, "
    "uts and network namespaces on kiln's FUSE overlay; ptrace: where a container's runtime denies namespaces, "
    "mounts or /dev/fuse (Docker's and containerd's default seccomp profile, Restricted pods), the step's system "
    "calls are intercepted (its paths translated into the stage's root, its ids faked, its writes recorded) and "
    "Landlock confines it to that root; it shares the container's network and pids. auto (default): userns "
    "where it works, else ptrace, saying why in the log", OPT_ISOLATION },
  { "userns", 0, CLI_VALUE, "auto|full|single", "user namespace mode for RUN (default auto)", OPT_USERNS },
  { "network", 0, CLI_VALUE, "private|host|none", "network for RUN steps (RUN --network overrides). private "
    "(default): a network namespace of the step's own with outbound TCP/UDP through pasta (Debian's passt), DNS "
    "forwarded to the host's resolver, no inbound ports, the host's loopback services and abstract unix sockets "
    "out of reach; host: the host's network namespace, with everything listening on the host's loopback and its "
    "abstract unix sockets; none: loopback only",
    OPT_NETWORK },
  { "seccomp-policy", 0, CLI_VALUE, "FILE|unconfined", "seccomp profile for RUN (Docker JSON; default "
    "policies/default.json)", OPT_SECCOMP },
  CMD_TRANSPORT_OPTIONS
  { "registry-mirror", 0, CLI_VALUE, "HOST", "pull docker.io images from this mirror first, then docker.io "
    "(repeatable; http://HOST for plain HTTP)", OPT_MIRROR_B },
  { "insecure-pull", 0, CLI_BOOL, NULL, "use plain HTTP for every registry images are pulled from", OPT_INSECURE_PULL },
  { "pull", 0, CLI_VALUE, "always|missing|never", "base images: always (default, as BuildKit) resolves each tag "
    "again, and uses the store's last resolution, with a warning naming its digest, when the registry cannot be "
    "reached; missing uses the store's copy when there is one; never only the store", OPT_PULL_POLICY },
  { "push-retry", 0, CLI_VALUE, "N", "retry a failed push N times (default 0)", OPT_PUSH_RETRY_B },
  { "allow", 0, CLI_VALUE, "security.insecure", "grant an entitlement (BuildKit's): security.insecure lets RUN "
    "--security=insecure steps keep every capability and run without seccomp, still inside their user namespace",
    OPT_ALLOW },
  { "jobs", 'j', CLI_VALUE, "N", "build up to N independent stages at once (default: the number of cores)",
    OPT_JOBS },
  { "memory", 'm', CLI_VALUE, "SIZE|none", "memory limit of each RUN step, all its processes together (e.g. 512m, "
    "2g; default: 3/4 of the machine's memory); a step that runs out is killed (\"out of memory\"). Enforced with "
    "a cgroup where kiln may make one (root, a delegated systemd subtree), else per-process rlimits and kiln's own "
    "accounting; the build's log says which", OPT_MEMORY },
  { "pids-limit", 0, CLI_VALUE, "N|none", "task (process and thread) limit of each RUN step (default 4096); a step "
    "that reaches it is killed, which stops fork bombs", OPT_PIDS_LIMIT },
  { "no-cache", 0, CLI_BOOL, NULL, "do not use or record the build cache (every step is built)", OPT_NO_CACHE },
  { "cache", 0, CLI_BOOL, NULL, "(kaniko) the build cache is on by default in the store (--root); --cache=true "
    "also shares it through --cache-repo, by default <first destination's repository>/cache (kaniko's); "
    "--cache=false is --no-cache", OPT_CACHE },
  { "cache-repo", 0, CLI_VALUE, "REGISTRY/REPO", "also share the build cache through this repository: a local miss "
    "is looked up there; new entries, and local hits the repository lacks, are pushed as REPO:<cache key> after "
    "the build", OPT_CACHE_REPO },
  { "cache-ttl", 0, CLI_VALUE, "DURATION", "cache entries older than this are rebuilt (default 336h, two weeks, "
    "as kaniko; 0: no limit)", OPT_CACHE_TTL },
  { "cache-mounts-repo", 0, CLI_VALUE, "REGISTRY/REPO", "share RUN --mount=type=cache directories through this "
    "repository, one tag per cache id (mount-<sha256 of the id>): imported before the first step that mounts "
    "the id (an entry older than --cache-ttl is ignored), exported after the build (while the image is pushed) "
    "when a step changed it; independent of --no-cache", OPT_CACHE_MOUNTS_REPO },
  { "cache-mounts-max-size", 0, CLI_VALUE, "SIZE", "a cache mount with more file data than this is not exported, "
    "and an entry with a larger blob or more file data is not imported (default 1g)", OPT_CACHE_MOUNTS_MAX },
  { "cache-run-layers", 0, CLI_BOOL, NULL, "cache RUN layers (default true)", OPT_CACHE_RUN_LAYERS },
  { "cache-copy-layers", 0, CLI_BOOL, NULL, "(kaniko) also share COPY/ADD/WORKDIR layers through --cache-repo "
    "(default false, as kaniko: they are rebuilt from the context); the store caches them unless this is "
    "false", OPT_CACHE_COPY_LAYERS },
  { "cache-dir", 0, CLI_VALUE, "DIR", "(kaniko) accepted, no effect: base images live in kiln's store; to keep "
    "them put the store on the cache volume (--root DIR)", CMD_KANIKO_NOTE_CACHE_DIR },
  { "single-snapshot", 0, CLI_BOOL, NULL, "(kaniko) one layer for everything the target stage adds to its base "
    "(steps still run and cache one by one)", OPT_SINGLE_SNAPSHOT },
  { "ignore-path", 0, CLI_VALUE, "PATH", "(kaniko) leave PATH and everything below it out of every layer kiln "
    "makes (repeatable)", OPT_IGNORE_PATH },
  { "snapshot-mode", 0, CLI_VALUE, "MODE", "(kaniko) accepted and unused: kiln snapshots from the overlay's "
    "write log", OPT_NOOP_SNAPSHOT_MODE },
  { "use-new-run", 0, CLI_BOOL, NULL, "(kaniko) accepted and unused: kiln always runs steps on its overlay",
    OPT_NOOP_USE_NEW_RUN },
  { "cleanup", 0, CLI_BOOL, NULL, "(kaniko) accepted and unused: kiln never modifies the host filesystem",
    OPT_NOOP_CLEANUP },
  /* kaniko's other executor flags (build_kaniko.h) */
  { "context-sub-path", 0, CLI_VALUE, "PATH", "(kaniko) use the directory PATH inside the context as the context",
    CMD_KANIKO_CONTEXT_SUB_PATH },
  { "bucket", 'b', CLI_VALUE, "BUCKET", "(kaniko) an error: kiln cannot fetch a context from a bucket; download it "
    "and give --context tar://FILE", CMD_KANIKO_BUCKET },
  { "skip-tls-verify-pull", 0, CLI_BOOL, NULL, "do not verify the TLS certificates of the registries images are "
    "pulled from", CMD_KANIKO_SKIP_TLS_VERIFY_PULL },
  { "image-download-retry", 0, CLI_VALUE, "N", "retry a failed request of a base image download N times (default: "
    "--retries)", CMD_KANIKO_IMAGE_DOWNLOAD_RETRY },
  { "image-name-tag-with-digest-file", 0, CLI_VALUE, "FILE", "write NAME:TAG@DIGEST for every destination to FILE",
    CMD_KANIKO_NAME_TAG_DIGEST_FILE },
  { "push-ignore-immutable-tag-errors", 0, CLI_BOOL, NULL, "a push refused because the tag is immutable (Artifact "
    "Registry, ECR) is not an error", CMD_KANIKO_PUSH_IGNORE_IMMUTABLE },
  { "skip-push-permission-check", 0, CLI_BOOL, NULL, "do not check push access to every destination and the cache "
    "repository before the build (checked by default, as kaniko does)", CMD_KANIKO_SKIP_PUSH_CHECK },
  { "no-push-cache", 0, CLI_BOOL, NULL, "look build cache entries up in --cache-repo but push none",
    CMD_KANIKO_NO_PUSH_CACHE },
  { "registry-map", 0, CLI_VALUE, "REGISTRY=MIRROR[;...]", "pull images of REGISTRY from MIRROR first, then from "
    "REGISTRY (repeatable)", CMD_KANIKO_REGISTRY_MAP },
  { "skip-default-registry-fallback", 0, CLI_BOOL, NULL, "an image a mirror serves (--registry-mirror, "
    "--registry-map) is never pulled from its own registry", CMD_KANIKO_SKIP_DEFAULT_FALLBACK },
  { "ignore-var-run", 0, CLI_BOOL, NULL, "(kaniko) =true leaves /var/run out of every layer kiln makes (as "
    "--ignore-path /var/run); RUN steps' /run is a mount, never in a layer", CMD_KANIKO_IGNORE_VAR_RUN },
  { "force", 0, CLI_BOOL, NULL, "(kaniko) accepted, no effect: kiln runs inside a container or outside it alike",
    CMD_KANIKO_NOTE_FORCE },
  { "kaniko-dir", 0, CLI_VALUE, "DIR", "(kaniko) accepted, no effect: kiln's state is in its store (--root)",
    CMD_KANIKO_NOTE_KANIKO_DIR },
  { "image-fs-extract-retry", 0, CLI_VALUE, "N", "(kaniko) accepted, no effect: kiln extracts layers from verified "
    "blobs in its store", CMD_KANIKO_NOTE_EXTRACT_RETRY },
  { "compressed-caching", 0, CLI_BOOL, NULL, "(kaniko) accepted, no effect: cache entries are the build's own "
    "layers, compressed once", CMD_KANIKO_NOTE_COMPRESSED_CACHING },
  { "git", 0, CLI_VALUE, "branch=B,...", "(kaniko) accepted, no effect: kiln has no git contexts",
    CMD_KANIKO_NOTE_GIT },
  { "force-build-metadata", 0, CLI_BOOL, NULL, "(kaniko) accepted, no effect: metadata-only instructions change the "
    "config, add no layer (as Docker)", CMD_KANIKO_NOTE_FORCE_METADATA },
  { "azure-container-registry-config", 0, CLI_VALUE, "FILE", NULL, CMD_KANIKO_NOTE_AZURE },
  { "snapshotMode", 0, CLI_VALUE, "MODE", NULL, OPT_NOOP_SNAPSHOT_MODE },
  { "customPlatform", 0, CLI_VALUE, "OS/ARCH[/VARIANT]", NULL, OPT_PLATFORM },
  { "tarPath", 0, CLI_VALUE, "FILE", NULL, OPT_TAR_PATH },
  { "whitelist-var-run", 0, CLI_BOOL, NULL, NULL, CMD_KANIKO_IGNORE_VAR_RUN },
  { "help-kaniko-table", 0, CLI_BOOL, NULL, NULL, CMD_KANIKO_HELP_TABLE },
  { NULL, 0, CLI_BOOL, NULL, NULL, 0 },
};
/* The sentinel above keeps the array non-empty; it is not part of the table. */
#define N_BUILD_OPTIONS (ARRAY_SIZE (build_options) - 1)

static const char build_usage_head[] =
  "Usage: kiln build [FLAGS] [CONTEXT]\n\n"
  "Build an image from a Dockerfile without a daemon and without root: RUN steps run in\n"
  "user namespaces with seccomp on kiln's FUSE overlay, or, in a container that denies those,\n"
  "under ptrace isolation (--isolation); layers come from the write log of what each step\n"
  "changed. The result is pushed to every -t/--destination and/or written with\n"
  "--oci-layout / --tar-path. Images and layers are kept in the store (--root).\n\n"
  "Exit status: 0 when the image was built (and pushed); the command's own status when a RUN\n"
  "step failed (kaniko's behaviour; 128+N when it was killed by signal N); 130/143 when kiln got\n"
  "SIGINT/SIGTERM; 2 for usage errors; 1 for every other failure.\n\n"
  "Examples:\n"
  "  kiln build -t registry.example.com/app:1.0 .\n"
  "  kiln build --no-push --oci-layout out:latest -f docker/Dockerfile .\n\nFlags:\n";

/* kaniko's --cache-ttl default: two weeks. */
#define BUILD_CACHE_TTL_DEFAULT ((int64_t) 336 * 3600)

/* --cache=true without --cache-repo: <first destination's repository>/cache,
 * as kaniko infers it, so that ephemeral runners share a cache at all. */
static int
default_cache_repo (build_cmd_opts *o, kiln_error **err)
{
  if (!o->cache || !o->cache_given || o->cache_repo || o->no_push || !o->destinations || !o->destinations[0])
    return 0;
  registry_ref *r = NULL;
  if (registry_ref_parse (o->destinations[0], &r, err) < 0)
    return kiln_error_wrap (err, "destination '%s'", o->destinations[0]);
  o->cache_repo = xasprintf ("%s/%s/cache", r->domain, r->path);
  registry_ref_free (r);
  log_info ("--cache=true without --cache-repo: the registry cache is '%s' (kaniko's default)", o->cache_repo);
  return 0;
}

static int
parse_int (const char *flag, const char *v, int lo, int hi, int *out, kiln_error **err)
{
  char *end;
  errno = 0;
  long n = strtol (v, &end, 10);
  if (*v == '\0' || *end || errno || n < lo || n > hi)
    return kiln_error_make (err, EINVAL, "--%s: expected a number from %d to %d, got '%s'", flag, lo, hi, v);
  *out = (int) n;
  return 0;
}

/* --attest type=sbom | type=provenance[,mode=min|max] (BuildKit's). */
static int
parse_attest (build_cmd_opts *o, const char *value, kiln_error **err)
{
  autofree char *copy = xstrdup (value);
  bool *which = NULL;
  bool on = true;
  char *save = NULL;
  for (char *f = strtok_r (copy, ",", &save); f; f = strtok_r (NULL, ",", &save))
    {
      if (strcmp (f, "type=sbom") == 0)
        which = &o->sbom;
      else if (strcmp (f, "type=provenance") == 0)
        which = &o->provenance;
      else if (strcmp (f, "disabled=true") == 0)
        on = false;
      else if (strcmp (f, "disabled=false") != 0 && strcmp (f, "mode=min") != 0 && strcmp (f, "mode=max") != 0)
        return kiln_error_make (err, 0, "--attest '%s': '%s' is not supported (type=sbom, type=provenance, "
                                "mode=min|max, disabled=true|false)", value, f);
    }
  if (!which)
    return kiln_error_make (err, 0, "--attest '%s': expected type=sbom or type=provenance", value);
  *which = on;
  return 0;
}

static const cmd_string_flag build_strings[] = {
  CMD_STRING_FLAG (OPT_FILE, build_cmd_opts, file),
  CMD_STRING_FLAG (OPT_TARGET, build_cmd_opts, target),
  CMD_STRING_FLAG (OPT_PLATFORM, build_cmd_opts, platform),
  CMD_STRING_FLAG (OPT_OCI_LAYOUT, build_cmd_opts, oci_layout),
  CMD_STRING_FLAG (OPT_TAR_PATH, build_cmd_opts, tar_path),
  CMD_STRING_FLAG (OPT_DIGEST_FILE_B, build_cmd_opts, digest_file),
  CMD_STRING_FLAG (OPT_NAME_DIGEST_FILE, build_cmd_opts, name_digest_file),
  CMD_STRING_FLAG (OPT_COMPRESSION, build_cmd_opts, compression),
  CMD_STRING_FLAG (OPT_FORMAT, build_cmd_opts, format),
  CMD_STRING_FLAG (OPT_PROGRESS, build_cmd_opts, progress),
  CMD_STRING_FLAG (OPT_USERNS, build_cmd_opts, userns),
  CMD_STRING_FLAG (OPT_NETWORK, build_cmd_opts, network),
  CMD_STRING_FLAG (OPT_ISOLATION, build_cmd_opts, isolation),
  CMD_STRING_FLAG (OPT_SECCOMP, build_cmd_opts, seccomp),
  CMD_STRING_FLAG (OPT_CACHE_REPO, build_cmd_opts, cache_repo),
  CMD_STRING_FLAG (OPT_CACHE_MOUNTS_REPO, build_cmd_opts, cache_mounts_repo),
};
static const cmd_flags build_flags = CMD_FLAGS (build_cmd_opts, build_strings);

static int
build_handle (void *ctx, int id, const char *value, kiln_error **err)
{
  build_cmd_opts *o = ctx;
  int r = cmd_flags_handle (&build_flags, o, id, value, err);
  if (r != 0)
    return r < 0 ? r : 0;
  switch (id)
    {
    case OPT_DRY_RUN:
      return cli_parse_bool ("dry-run", value, &o->dry_run, err);
    case OPT_SKIP_UNUSED:
      return cli_parse_bool ("skip-unused-stages", value, &o->skip_unused_stages, err);
    case OPT_BUILD_ARG:
      strv_push (&o->build_args, value);
      return 0;
    case OPT_CONTEXT:
      if (strncmp (value, "dir://", 6) == 0)
        value += 6;
      else if (strstr (value, "://") && strncmp (value, "tar://", 6) != 0)
        return kiln_error_make (err, 0, "--context '%s': supported are a directory (PATH, dir://PATH), a tar "
                                "archive (tar://PATH, plain or compressed) and - (a tar on stdin)", value);
      cmd_set_string (&o->context, value);
      return 0;
    case OPT_TAG:
      strv_push (&o->destinations, value);
      return 0;
    case OPT_NO_PUSH:
      return cli_parse_bool ("no-push", value, &o->no_push, err);
    case OPT_REPRODUCIBLE:
      return cli_parse_bool ("reproducible", value, &o->reproducible, err);
    case OPT_SBOM:
      return cli_parse_bool ("sbom", value, &o->sbom, err);
    case OPT_PROVENANCE:
      return cli_parse_bool ("provenance", value, &o->provenance, err);
    case OPT_ATTEST:
      return parse_attest (o, value, err);
    case OPT_SBOM_FILE:
      o->sbom = true;
      cmd_set_string (&o->sbom_file, value);
      return 0;
    case OPT_PROVENANCE_FILE:
      o->provenance = true;
      cmd_set_string (&o->provenance_file, value);
      return 0;
    case OPT_COMPRESSION_LEVEL:
      {
        /* the widest range of any compression; exec_opts_from checks the chosen one */
        int lo, hi;
        layer_writer_level_range (LAYER_COMPRESS_ZSTD, &lo, &hi);
        return parse_int ("compression-level", value, 1, hi, &o->compression_level, err);
      }
    case OPT_LABEL:
      if (!strchr (value, '=') || value[0] == '=')
        return kiln_error_make (err, EINVAL, "--label '%s': expected KEY=VALUE", value);
      strv_push (&o->labels, value);
      return 0;
    case OPT_MIRROR_B:
      return cmd_mirror_handle (&o->reg, &o->mirrors, value, err);
    case OPT_SECRET:
      if (run_mounts_check_secret (value, err) < 0)
        return -1;
      strv_push (&o->secrets, value);
      return 0;
    case OPT_QUIET:
      return cli_parse_bool ("quiet", value, &o->quiet, err);
    case OPT_INSECURE_PULL:
      return cli_parse_bool ("insecure-pull", value, &o->insecure_pull, err);
    case OPT_PULL_POLICY:
      return store_parse_pull_policy (value, &o->pull, err);
    case OPT_PUSH_RETRY_B:
      return parse_int ("push-retry", value, 0, 100, &o->push_retry, err);
    case OPT_SINGLE_SNAPSHOT:
      return cli_parse_bool ("single-snapshot", value, &o->single_snapshot, err);
    case OPT_ALLOW:
      if (strcmp (value, "security.insecure") != 0)
        return kiln_error_make (err, EINVAL, "--allow '%s': the only entitlement kiln knows is security.insecure "
                                "(RUN --network=host needs none)", value);
      o->allow_insecure = true;
      return 0;
    case OPT_JOBS:
      return parse_int ("jobs", value, 1, 256, &o->jobs, err);
    case OPT_MEMORY:
      if (sandbox_parse_memory (value, &o->limits.memory, err) < 0)
        return kiln_error_wrap (err, "--memory");
      return 0;
    case OPT_PIDS_LIMIT:
      if (sandbox_parse_pids (value, &o->limits.pids, err) < 0)
        return kiln_error_wrap (err, "--pids-limit");
      return 0;
    case OPT_IGNORE_PATH:
      if (value[0] != '/' || strstr (value, "/../") || strcmp (value, "/") == 0)
        return kiln_error_make (err, EINVAL, "--ignore-path '%s': expected an absolute path below /", value);
      strv_push (&o->ignore_paths, value);
      return 0;
    case OPT_NO_CACHE:
      {
        bool v;
        if (cli_parse_bool ("no-cache", value, &v, err) < 0)
          return -1;
        o->cache = !v;
        return 0;
      }
    case OPT_CACHE:
      if (cli_parse_bool ("cache", value, &o->cache, err) < 0)
        return -1;
      o->cache_given = o->cache;
      return 0;
    case OPT_CACHE_MOUNTS_MAX:
      if (units_parse_size (value, &o->cache_mounts_max, err) < 0)
        return kiln_error_wrap (err, "--cache-mounts-max-size");
      if (o->cache_mounts_max == 0)
        return kiln_error_make (err, EINVAL, "--cache-mounts-max-size: expected a size above 0");
      return 0;
    case OPT_CACHE_TTL:
      {
        int64_t ns;
        if (units_parse_duration (value, &ns, err) < 0)
          return kiln_error_wrap (err, "--cache-ttl");
        o->cache_ttl = ns / 1000000000;
        return 0;
      }
    case OPT_CACHE_RUN_LAYERS:
      return cli_parse_bool ("cache-run-layers", value, &o->cache_run_layers, err);
    case OPT_CACHE_COPY_LAYERS:
      o->cache_copy_given = true;
      return cli_parse_bool ("cache-copy-layers", value, &o->cache_copy_layers, err);
    case OPT_NOOP_SNAPSHOT_MODE:
      if (strcmp (value, "full") != 0 && strcmp (value, "redo") != 0 && strcmp (value, "time") != 0)
        return kiln_error_make (err, EINVAL, "--snapshot-mode '%s': expected full, redo or time", value);
      strv_push (&o->noop_notes, "--snapshot-mode has no effect: kiln never scans the filesystem; each layer comes "
                                 "from the overlay's write log");
      return 0;
    case OPT_NOOP_USE_NEW_RUN:
      strv_push (&o->noop_notes, "--use-new-run has no effect: kiln always records RUN changes as they happen");
      return 0;
    case OPT_NOOP_CLEANUP:
      strv_push (&o->noop_notes, "--cleanup has no effect: kiln builds in its store and never modifies the host "
                                 "filesystem");
      return 0;
    default:
      r = cmd_kaniko_handle (&o->kaniko, &o->reg, &o->mirrors, &o->noop_notes, id, value, err);
      if (r != 0)
        return r < 0 ? r : 0;
      return kiln_error_make (err, 0, "internal: unhandled build option id %d", id);
    }
}

static int
dry_run (plan *p, kiln_error **err)
{
  autofree char *json = NULL;
  if (plan_json_render (p, &json, err) < 0)
    return KILN_EXIT_FAILURE;
  fputs (json, stdout);
  if (fflush (stdout) != 0)
    {
      kiln_error_make (err, 0, "writing the plan to stdout failed");
      return KILN_EXIT_FAILURE;
    }
  return KILN_EXIT_OK;
}

static int
exec_opts_from (build_cmd_opts *o, build_exec_opts *eo, progress_mode *pm, kiln_error **err)
{
  eo->layer.level = o->compression_level > 0 ? o->compression_level : -1;
  if (o->compression && mediatype_parse_compression (o->compression, &eo->layer.compression, err) < 0)
    return -1;
  int lo, hi;
  /* 0 is "the default" on the command line, so levels start at 1 here. */
  bool has_levels = layer_writer_level_range (eo->layer.compression, &lo, &hi);
  if (o->compression_level > 0 && (!has_levels || o->compression_level > hi))
    {
      char range[32] = "no level";
      if (has_levels)
        snprintf (range, sizeof range, "1 to %d", hi);
      return kiln_error_make (err, EINVAL, "--compression-level %d: %s takes %s", o->compression_level,
                              o->compression ? o->compression : "gzip", range);
    }
  if (o->format && image_parse_format (o->format, &eo->format, err) < 0)
    return -1;
  if (o->userns && sandbox_parse_userns (o->userns, &eo->userns, err) < 0)
    return -1;
  eo->network = SANDBOX_NET_PRIVATE;
  if (o->network && sandbox_parse_network (o->network, &eo->network, err) < 0)
    return -1;
  eo->network_set = o->network != NULL;
  if (o->isolation && sandbox_parse_isolation (o->isolation, &eo->isolation, err) < 0)
    return -1;
  *pm = PROGRESS_AUTO;
  if (o->progress && progress_parse_mode (o->progress, pm, err) < 0)
    return -1;
  if (o->quiet)
    {
      *pm = PROGRESS_QUIET;
      /* Nothing but the digest: info lines (pulls, pushes) too are quiet. */
      if (!o->common.verbosity_set && o->common.verbosity > LOG_LEVEL_WARN)
        {
          o->common.verbosity = LOG_LEVEL_WARN;
          cli_common_apply (&o->common);
        }
    }
  /* One JSON object per line on stderr: log lines too, unless asked
   * otherwise. */
  if (*pm == PROGRESS_JSON && !o->common.log_format_set)
    {
      o->common.log_format = LOG_FORMAT_JSON;
      cli_common_apply (&o->common);
    }
  if (eo->network == SANDBOX_NET_HOST)
    log_info ("--network host: RUN steps share the host's network namespace: they reach every service on "
              "the host's loopback and its abstract unix sockets");
  if (o->reproducible)
    {
      eo->reproducible = true;
      const char *sde = getenv ("SOURCE_DATE_EPOCH");
      if (sde && *sde)
        {
          char *end;
          long long v = strtoll (sde, &end, 10);
          if (*end || v < 0)
            return kiln_error_make (err, EINVAL, "SOURCE_DATE_EPOCH '%s' is not a non-negative integer", sde);
          eo->epoch = v;
        }
      eo->layer.clamp_mtime = true;
      eo->layer.clamp_epoch = eo->epoch;
    }
  eo->seccomp_policy = o->seccomp;
  eo->single_snapshot = o->single_snapshot;
  eo->allow_insecure = o->allow_insecure;
  eo->limits = o->limits;
  if (o->jobs > 0)
    eo->jobs = o->jobs;
  else
    {
      long n = sysconf (_SC_NPROCESSORS_ONLN);
      eo->jobs = n > 0 ? (int) n : 1;
    }
  eo->ignore_paths = o->ignore_paths;
  eo->labels = o->labels;
  eo->secrets = o->secrets;
  return 0;
}

/* A tar context (tar://PATH or - for stdin) is unpacked by libarchive into
 * a private directory of the store's tmp/ with its secure-extraction flags
 * (no "..", no absolute names, nothing through symlinks, no owners), and
 * the build then uses that directory. */
static int
context_from_tar (store *s, const char *spec, char **tmpname, char **dir, kiln_error **err)
{
  const char *path = strcmp (spec, "-") == 0 ? NULL : spec + 6;
  autoclose int tfd = -1;
  if (store_mktemp (s, "context-", tmpname, &tfd, err) < 0)
    return -1;
  *dir = xasprintf ("%s/tmp/%s/ctx", s->root, *tmpname);
  if (mkdirat (tfd, "ctx", 0700) < 0)
    return kiln_error_make (err, errno, "context directory");
  struct archive *a = archive_read_new ();
  struct archive *w = archive_write_disk_new ();
  archive_read_support_filter_all (a);
  archive_read_support_format_tar (a);
  archive_read_support_format_gnutar (a);
  archive_write_disk_set_options (w, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_NODOTDOT
                                         | ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS
                                         | ARCHIVE_EXTRACT_NO_OVERWRITE);
  int r = path ? archive_read_open_filename (a, path, 1 << 16) : archive_read_open_fd (a, 0, 1 << 16);
  const char *what = path ? path : "stdin";
  int ret = 0;
  if (r != ARCHIVE_OK)
    ret = kiln_error_make (err, EINVAL, "context '%s': %s", what, archive_error_string (a));
  struct archive_entry *e;
  /* archive_write_disk works relative to the current directory, and its
   * secure flags refuse absolute names: extract from inside the context
   * directory (no other thread runs yet), then go back. */
  autoclose int oldcwd = open (".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  autoclose int cfd = openat (tfd, "ctx", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (ret == 0 && (oldcwd < 0 || cfd < 0 || fchdir (cfd) < 0))
    ret = kiln_error_make (err, errno, "context directory");
  while (ret == 0 && (r = archive_read_next_header (a, &e)) == ARCHIVE_OK)
    {
      int ft = archive_entry_filetype (e);
      if (ft != AE_IFREG && ft != AE_IFDIR && ft != AE_IFLNK)
        continue; /* devices, fifos: nothing a context needs */
      if (archive_write_header (w, e) != ARCHIVE_OK)
        ret = kiln_error_make (err, EINVAL, "context '%s': %s", what, archive_error_string (w));
      const void *buf;
      size_t len;
      la_int64_t off;
      while (ret == 0 && (r = archive_read_data_block (a, &buf, &len, &off)) == ARCHIVE_OK)
        if (archive_write_data_block (w, buf, len, off) != ARCHIVE_OK)
          ret = kiln_error_make (err, EIO, "context '%s': %s", what, archive_error_string (w));
      if (ret == 0 && r != ARCHIVE_EOF)
        ret = kiln_error_make (err, EINVAL, "context '%s': %s", what, archive_error_string (a));
      if (ret == 0 && archive_write_finish_entry (w) != ARCHIVE_OK)
        ret = kiln_error_make (err, EIO, "context '%s': %s", what, archive_error_string (w));
    }
  if (ret == 0 && r != ARCHIVE_EOF)
    ret = kiln_error_make (err, EINVAL, "context '%s': %s", what, archive_error_string (a));
  archive_read_free (a);
  archive_write_free (w);
  if (oldcwd >= 0 && fchdir (oldcwd) < 0 && ret == 0)
    ret = kiln_error_make (err, errno, "returning to the working directory");
  return ret;
}

static int build_run_in (build_cmd_opts *o, const char *ctx_dir, store **sp, kiln_error **err);

static int
build_run (build_cmd_opts *o, kiln_error **err)
{
  const char *ctx_dir = o->context ? o->context : ".";
  autostore store *s = NULL;
  autofree char *ctx_tmp = NULL, *ctx_buf = NULL;
  if (o->context && (strcmp (o->context, "-") == 0 || strncmp (o->context, "tar://", 6) == 0))
    {
      if (store_open (o->common.root, 0, &s, err) < 0)
        return -1;
      int r = context_from_tar (s, o->context, &ctx_tmp, &ctx_buf, err);
      if (r < 0)
        {
          if (ctx_tmp)
            store_rmtemp (s, ctx_tmp);
          return -1;
        }
      ctx_dir = ctx_buf;
    }
  autofree char *sub_dir = NULL;
  if (o->kaniko.context_sub_path)
    {
      sub_dir = xasprintf ("%s/%s", ctx_dir, o->kaniko.context_sub_path);
      if (access (sub_dir, F_OK) < 0)
        {
          kiln_error_make (err, errno, "--context-sub-path '%s': '%s'", o->kaniko.context_sub_path, sub_dir);
          if (ctx_tmp)
            store_rmtemp (s, ctx_tmp);
          return -1;
        }
      ctx_dir = sub_dir;
    }
  int rc = build_run_in (o, ctx_dir, &s, err);
  if (ctx_tmp)
    store_rmtemp (s, ctx_tmp);
  return rc;
}

/* Check the output names and the executor options, parse the Dockerfile
 * and make sure the build has somewhere to go: *dfp is then the caller's. */
static int
build_load (build_cmd_opts *o, const char *ctx_dir, const char *df_path, build_exec_opts *eo, progress_mode *pm,
            dockerfile **dfp, kiln_error **err)
{
  for (char **d = o->destinations; d && *d; d++)
    {
      autoref registry_ref *ref = NULL;
      if (registry_ref_parse (*d, &ref, err) < 0)
        return kiln_error_wrap (err, "--tag '%s'", *d);
      if (strcmp (ref->domain, REGISTRY_DOCKER_HUB) == 0 && strncmp (*d, "docker.io/", 10) != 0
          && strncmp (*d, "index.docker.io/", 16) != 0 && !o->dry_run)
        {
          autofree char *full = registry_ref_string (ref);
          log_info ("'%s' names no registry: it means %s (Docker Hub, Docker's default)", *d, full);
        }
    }
  if (exec_opts_from (o, eo, pm, err) < 0)
    return -1;
  for (char **n = o->noop_notes; n && *n; n++)
    log_info ("%s", *n);

  dockerfile *df = NULL;
  if (dockerfile_parse_file (df_path, ctx_dir, &df, err) < 0)
    return -1;
  for (char **w = df->warnings; w && *w; w++)
    log_warn ("%s", *w);
  if (!o->dry_run && !o->destinations && !o->no_push && !o->oci_layout && !o->tar_path)
    {
      dockerfile_free (df);
      return kiln_error_make (err, EINVAL, "no output: give -t/--destination IMAGE, --oci-layout DIR or --tar-path "
                              "FILE (or --no-push to only build into the store)");
    }
  *dfp = df;
  return 0;
}

/* --dry-run: plan the build (plan_build takes df) and print the plan. */
static int
build_dry_run (dockerfile *df, const plan_options *po, kiln_error **err)
{
  plan *p = NULL;
  if (plan_build (df, po, &p, err) < 0)
    return -1;
  for (size_t i = 0; p->warnings && p->warnings[i]; i++)
    log_warn ("%s", p->warnings[i]);
  int rc = dry_run (p, err);
  plan_free (p);
  return rc == KILN_EXIT_OK ? 0 : -1;
}

/* After a successful build: keep the result under a ref, write the
 * outputs (unless a signal came meanwhile) and print the summary. */
static int
build_publish (build_cmd_opts *o, store *s, progress *prog, build_result *res,
               volatile sig_atomic_t *build_signal, kiln_error **err)
{
  double t0 = progress_elapsed (prog);
  build_output_opts oo = {
    .destinations = o->destinations, .no_push = o->no_push, .reg = &o->reg, .push_retry = o->push_retry,
    .oci_layout = o->oci_layout, .tar_path = o->tar_path, .digest_file = o->digest_file,
    .name_digest_file = o->name_digest_file, .progress = prog,
    .name_tag_digest_file = o->kaniko.name_tag_digest_file, .ignore_immutable_tags = o->kaniko.push_ignore_immutable,
  };
  /* --sbom, --provenance: documents from the image's layers, attached to
   * every output; the image's manifest is not touched. */
  autoattestset attest_set att = { 0 };
  if (o->sbom || o->provenance)
    {
      autofree char *df_digest = NULL;
      autofree char *df_data = NULL;
      size_t df_len = 0;
      if (o->df_path && fs_read_file_at (AT_FDCWD, o->df_path, 16u << 20, &df_data, &df_len, err) < 0)
        return kiln_error_wrap (err, "provenance: Dockerfile");
      if (df_data)
        {
          df_digest = xmalloc (DIGEST_STRING_SIZE);
          digest_buffer (df_data, df_len, df_digest);
        }
      const char *version, *commit;
      cmd_version_strings (&version, &commit);
      attest_opts ao = {
        .sbom = o->sbom, .provenance = o->provenance, .sbom_file = o->sbom_file,
        .provenance_file = o->provenance_file,
        .name = o->destinations && o->destinations[0] ? o->destinations[0] : o->oci_layout,
        .created = o->reproducible ? o->epoch : (int64_t) time (NULL),
        .started = o->reproducible ? 0 : o->started, .finished = (int64_t) time (NULL),
        .kiln_version = version, .kiln_commit = commit, .dockerfile_path = o->df_path,
        .dockerfile_digest = df_digest, .target = o->target, .platform = o->platform,
        .build_args = o->build_args, .context = o->context, .add_urls = res->add_urls,
      };
      if (!o->sbom_file && !o->provenance_file && !o->oci_layout && (o->no_push || !o->destinations))
        log_warn ("--sbom/--provenance: the documents go nowhere: nothing is pushed, and there is no --oci-layout, "
                  "--sbom-file or --provenance-file (a --tar-path archive cannot carry them)");
      int id = progress_step_begin (prog, "attest", 1, 1, "making the SBOM and provenance");
      int r = attest_make (s, res, &ao, &att, err);
      progress_step_end_id (prog, id, r < 0 ? "ERROR" : "DONE");
      if (r < 0)
        return -1;
      oo.attest = &att;
    }
  /* Keep the result: prune removes what no ref reaches. */
  {
    autofree char *refname = xasprintf ("build/%s", o->destinations && o->destinations[0] ? o->destinations[0]
                                                    : o->oci_layout ? o->oci_layout : "latest");
    if (store_set_ref (s, refname, res->manifest_digest, err) < 0)
      return -1;
  }
  if (*build_signal)
    {
      kiln_error_make (err, EINTR, "interrupted by signal %d (%s) before pushing", (int) *build_signal,
                       strsignal ((int) *build_signal));
      return -1;
    }
  /* The outputs are a step of their own: push lines belong to no
   * Dockerfile step. */
  bool any = (!o->no_push && o->destinations) || o->oci_layout || o->tar_path;
  int out_id = any ? progress_step_begin (prog, "output", 1, 1, "exporting the image") : 0;
  int r = build_output_write (s, res, &oo, err);
  if (any)
    progress_step_end_id (prog, out_id, r < 0 ? "ERROR" : "DONE");
  if (r < 0)
    return -1;
  double t_push = progress_elapsed (prog) - t0;
  const char *names[] = { "pull", "run", "snapshot", "pack", "copy", "push" };
  double secs[] = { res->t_pull, res->t_run, res->t_snapshot, res->t_pack, res->t_copy, t_push };
  progress_summary (prog, res->manifest_digest, (unsigned long long) res->size, res->n_layers, secs, names, 6);
  if (o->quiet)
    printf ("%s\n", res->manifest_digest);
  return 0;
}

/* The build for every platform of --platform (takes df). Several: every
 * platform is planned first (base images resolved per platform) and checked
 * for emulation (build_exec_check_emulation), so a missing binfmt_misc
 * handler fails before anything runs; then the platforms are built one after
 * another in the same executor and store: a stage that is the same for all
 * of them (FROM --platform=$BUILDPLATFORM, not using TARGET*) is built by the
 * first and a cache hit for the others, and each platform's independent
 * stages still run on --jobs threads. The images become one index
 * (build_output_index). */
static int
build_platforms (build_cmd_opts *o, store *s, build_exec *b, dockerfile *df, const char *df_path, const char *ctx_dir,
                 image_format format, plan_options *po, build_result *res, kiln_error **err)
{
  po->image_env = build_exec_image_env;
  po->image_env_ctx = b;
  size_t n = strv_len (o->platforms) ? strv_len (o->platforms) : 1;
  plan **plans = xcalloc (n, sizeof *plans);
  build_result *images = xcalloc (n, sizeof *images);
  int ret = -1;
  size_t i;
  for (i = 0; i < n; i++)
    {
      if (i > 0 && dockerfile_parse_file (df_path, ctx_dir, &df, err) < 0)
        goto out;
      po->platform = o->platforms ? o->platforms[i] : NULL;
      if (plan_build (df, po, &plans[i], err) < 0)
        goto out;
      for (size_t k = 0; i == 0 && plans[i]->warnings && plans[i]->warnings[k]; k++)
        log_warn ("%s", plans[i]->warnings[k]);
      if (build_exec_check_emulation (b, plans[i], err) < 0)
        goto out;
    }
  for (i = 0; i < n; i++)
    {
      if (n > 1)
        log_info ("building for %s (platform %zu of %zu)", o->platforms[i], i + 1, n);
      if (build_exec_run (b, plans[i], n > 1 ? &images[i] : res, err) < 0)
        goto out;
    }
  ret = n > 1 ? build_output_index (s, format, steal_pointer (&images), n, res, err) : 0;
out:
  if (ret < 0 && n > 1 && i < n)
    kiln_error_wrap (err, "platform %s", o->platforms[i]);
  for (size_t k = 0; k < n; k++)
    {
      plan_free (plans[k]);
      if (images)
        build_result_clear (&images[k]);
    }
  free (plans);
  free (images);
  return ret;
}

/* The build proper in the open store s: set up cancellation, progress,
 * cache and executor, plan (plan_build takes df), run, publish; then
 * tear everything down in reverse. */
static int
build_in_store (build_cmd_opts *o, store *s, const char *ctx_dir, const char *df_path, build_exec_opts *eo,
                progress_mode pm, dockerfile *df, plan_options *po, kiln_error **err)
{
  s->remove_fallback = sandbox_rm_at_fallback;
  /* Level-triggered cancellation that every RUN step polls (sandbox
   * cancel_fd): with stages on several threads the signal may land on any
   * thread. The build checks the flag between steps. */
  sigcancel_pipe cancel;
  volatile sig_atomic_t *build_signal = sigcancel_open (&cancel);
  eo->cancel = &cancel;
  /* Pulls and pushes stop at SIGINT/SIGTERM too, not only RUN steps. */
  o->reg.cancel = build_signal;
  registry_options pull_reg = o->reg;
  if (o->insecure_pull)
    pull_reg.insecure = true;
  if (o->kaniko.skip_tls_verify_pull)
    pull_reg.skip_tls_verify = true;
  if (o->kaniko.image_download_retry >= 0)
    pull_reg.retries = o->kaniko.image_download_retry;
  progress *prog = progress_new (pm, stderr);
  /* Log lines become notes of the tty frame instead of breaking it. */
  bool log_to_frame = progress_get_mode (prog) == PROGRESS_TTY;
  if (log_to_frame)
    log_setup ((log_level) o->common.verbosity, (log_format) o->common.log_format, o->common.log_timestamp,
               progress_log_stream (prog));
  eo->store = s;
  eo->context_dir = ctx_dir;
  eo->dockerfile_path = df_path;
  o->df_path = df_path;
  o->epoch = eo->epoch;
  o->started = (int64_t) time (NULL);
  eo->reg = &pull_reg;
  eo->mirrors = o->mirrors;
  eo->pull = o->pull;
  eo->build_args = o->build_args;
  eo->progress = prog;
  eo->signal_flag = build_signal;
  build_exec *b = NULL;
  int ret = -1;
  build_result res = { 0 };
  build_cache *cache = NULL;
  build_cache_mounts *mounts = NULL;
  build_cache_opts co = {
    .store = s, .enabled = o->cache, .cache_run = o->cache_run_layers, .cache_copy = o->cache_copy_layers,
    .cache_copy_remote = o->cache_copy_given && o->cache_copy_layers,
    .repo = o->cache_repo, .reg = &o->reg, .ttl = o->cache_ttl, .format = eo->format, .progress = prog,
    .no_push = o->kaniko.no_push_cache,
  };
  if (!o->cache && o->cache_repo)
    log_warn ("--cache-repo '%s' is not used: the build cache is off", o->cache_repo);
  if (default_cache_repo (o, err) < 0)
    {
      dockerfile_free (df);
      goto out;
    }
  co.repo = o->cache_repo;
  /* Before anything is pulled or run, as kaniko (CheckPushPermissions). */
  if (!o->kaniko.skip_push_check
      && cmd_kaniko_check_push (&o->reg, o->destinations, o->no_push, o->cache ? o->cache_repo : NULL,
                                o->kaniko.no_push_cache, err) < 0)
    {
      dockerfile_free (df);
      goto out;
    }
  if (o->cache && build_cache_new (&co, &cache, err) < 0)
    {
      dockerfile_free (df);
      goto out;
    }
  eo->cache = cache;
  build_cache_mounts_opts cmo = {
    .store = s, .repo = o->cache_mounts_repo, .reg = &o->reg, .ttl = o->cache_ttl, .max_size = o->cache_mounts_max,
    .compression = eo->layer.compression, .level = eo->layer.level, .progress = prog,
  };
  if (o->cache_mounts_repo && build_cache_mounts_new (&cmo, &mounts, err) < 0)
    {
      dockerfile_free (df);
      goto out;
    }
  eo->cache_mounts = mounts;
  eo->platform_labels = strv_len (o->platforms) > 1;
  if (build_exec_new (eo, &b, err) < 0)
    {
      dockerfile_free (df);
      goto out;
    }
  if (build_platforms (o, s, b, df, df_path, ctx_dir, eo->format, po, &res, err) < 0)
    {
      /* Steps that succeeded are worth sharing: the rerun starts there. */
      if (!*build_signal)
        {
          build_cache_flush (cache);
          build_cache_mounts_finish (mounts);
        }
      goto out;
    }
  /* Cache mounts are packed and pushed while the build cache and the
   * image are. */
  build_cache_mounts_start (mounts);
  build_cache_flush (cache);
  if (build_publish (o, s, prog, &res, build_signal, err) < 0)
    goto out;
  build_cache_mounts_finish (mounts);
  ret = 0;
out:
  build_result_clear (&res);
  build_exec_free (b);
  build_cache_mounts_free (mounts);
  build_cache_free (cache);
  if (log_to_frame) /* progress_free closes the log stream */
    log_setup ((log_level) o->common.verbosity, (log_format) o->common.log_format, o->common.log_timestamp, NULL);
  progress_free (prog);
  sigcancel_close (&cancel);
  return ret;
}

static int
build_run_in (build_cmd_opts *o, const char *ctx_dir, store **sp, kiln_error **err)
{
  /* A tar context (kept in the store) also names the Dockerfile inside it;
   * else a relative one is looked up here, then in the context (kaniko). */
  bool unpacked = o->context && (strcmp (o->context, "-") == 0 || strncmp (o->context, "tar://", 6) == 0);
  autofree char *df_path = cmd_kaniko_dockerfile_path (o->file, ctx_dir, unpacked);
  build_exec_opts eo = { 0 };
  progress_mode pm;
  dockerfile *df = NULL;
  if (o->platform && *o->platform && plan_platform_list (o->platform, &o->platforms, err) < 0)
    return -1;
  if (strv_len (o->platforms) > 1 && o->dry_run)
    return kiln_error_make (err, EINVAL, "--dry-run plans one platform: give one --platform, not '%s'", o->platform);
  if (strv_len (o->platforms) > 1 && (o->sbom || o->provenance))
    return kiln_error_make (err, ENOTSUP, "--sbom/--provenance with several platforms are not supported yet (the "
                            "documents describe one image): build each --platform on its own to attest it");
  if (strv_len (o->platforms) > 1 && o->tar_path)
    return kiln_error_make (err, EINVAL, "--tar-path '%s': a docker archive holds one image, not an index of "
                            "several platforms: use --oci-layout DIR (or build one --platform)", o->tar_path);
  if (build_load (o, ctx_dir, df_path, &eo, &pm, &df, err) < 0)
    return -1;
  plan_options po = {
    .build_args = o->build_args, .target = o->target, .platform = o->platforms ? o->platforms[0] : NULL,
    .skip_unused_stages = o->skip_unused_stages,
  };
  if (o->dry_run)
    return build_dry_run (df, &po, err);

  if (!*sp && store_open (o->common.root, 0, sp, err) < 0)
    {
      dockerfile_free (df);
      return -1;
    }
  return build_in_store (o, *sp, ctx_dir, df_path, &eo, pm, df, &po, err);
}

int
cmd_build_main (int argc, char **argv, kiln_error **err)
{
  build_cmd_opts o = { .skip_unused_stages = true, .reg = { .retries = -1 }, .cache = true, .cache_run_layers = true,
                       .cache_copy_layers = true, .cache_ttl = BUILD_CACHE_TTL_DEFAULT,
                       .kaniko = CMD_KANIKO_OPTS_INIT };
  cli_common_init (&o.common);
  sandbox_limits_default (&o.limits);
  autostrv char **pos = NULL;
  int rc = KILN_EXIT_FAILURE;
  int r = cmd_parse_args ("build", argc, argv, build_options, N_BUILD_OPTIONS, &o.common, build_handle, &o,
                          build_usage_head, &pos, err);
  if (r <= 0)
    {
      rc = r < 0 ? KILN_EXIT_USAGE : KILN_EXIT_OK;
      goto out;
    }
  if (o.kaniko.print_table)
    {
      autofree cli_option *all = cli_options_concat (build_options, N_BUILD_OPTIONS, cli_common_options,
                                                     cli_common_options_count);
      rc = cmd_kaniko_print_table (stdout, all, N_BUILD_OPTIONS + cli_common_options_count, err) < 0
             ? KILN_EXIT_FAILURE : KILN_EXIT_OK;
      goto out;
    }
  cmd_kaniko_finish (&o.kaniko, &o.ignore_paths);
  if (pos && pos[0] && pos[1])
    {
      kiln_error_make (err, 0, "kiln build: expected at most one CONTEXT argument, got '%s' and '%s'", pos[0], pos[1]);
      rc = KILN_EXIT_USAGE;
      goto out;
    }
  if (pos && pos[0])
    {
      if (o.context)
        {
          kiln_error_make (err, 0, "kiln build: CONTEXT given both as argument and with --context");
          rc = KILN_EXIT_USAGE;
          goto out;
        }
      o.context = xstrdup (strncmp (pos[0], "dir://", 6) == 0 ? pos[0] + 6 : pos[0]);
      if (strstr (o.context, "://") && strncmp (o.context, "tar://", 6) != 0)
        {
          kiln_error_make (err, 0, "kiln build: context '%s': supported are a directory, tar://PATH and -", pos[0]);
          rc = KILN_EXIT_USAGE;
          goto out;
        }
    }
  if (build_run (&o, err) < 0)
    {
      kiln_error_wrap (err, "kiln build");
      /* 130 / 143 as a shell reports a command killed by SIGINT / SIGTERM;
       * a failed RUN step's own status (kaniko's behaviour). */
      rc = sigcancel_exit_code (KILN_EXIT_FAILURE);
      if (rc == KILN_EXIT_FAILURE && *err && (*err)->exit_code > 0 && (*err)->exit_code < 256)
        rc = (*err)->exit_code;
    }
  else
    rc = KILN_EXIT_OK;
out:
  cmd_flags_free (&build_flags, &o);
  free (o.context);
  free (o.sbom_file);
  free (o.provenance_file);
  strv_free (o.build_args);
  strv_free (o.platforms);
  strv_free (o.destinations);
  strv_free (o.labels);
  strv_free (o.secrets);
  strv_free (o.mirrors);
  strv_free (o.ignore_paths);
  strv_free (o.noop_notes);
  cmd_kaniko_free (&o.kaniko);
  return rc;
}
