/* build_opts.c - `kiln build`'s flags: the table (docker build, BuildKit
 * and kaniko executor spellings), --help, and each flag stored into
 * build_cmd_opts (build_opts.h). */
#include "cmd/build_opts.h"
#include "cmd/cmd_common.h"
#include "build/run_mounts.h"
#include "registry/reference.h"
#include "store/layer_writer.h"
#include "util/alloc.h"
#include "util/cli.h"
#include "util/log.h"
#include "util/units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    "the image's digest does not change; several platforms: one per platform image (DIR/sbom-OS-ARCH.spdx.json)",
    OPT_SBOM },
  { "provenance", 0, CLI_BOOL, NULL, "(BuildKit) attach a SLSA v1 provenance statement (in-toto): builder, "
    "Dockerfile digest, target, platform, build args, base image digests, context digest, and for every layer the "
    "step that made it and its exact file list with each path's change (added, modified, deleted, metadata); "
    "attached as --sbom (DIR/provenance.json in --oci-layout)", OPT_PROVENANCE },
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
  { "jobs", 'j', CLI_VALUE, "N", "build up to N independent stages at once, the platforms of --platform a,b "
    "too (default: the number of cores)",
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
    "(default true, unlike kaniko: rebuilding one from the context needs the files of every layer below it, "
    "which a cached build otherwise never downloads); false: neither the store nor the registry caches them",
    OPT_CACHE_COPY_LAYERS },
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
  "Environment:\n"
  "  KILN_ROOT               the store directory when --root is not given\n"
  "  KILN_POLICY_DIR         the directory of the default seccomp profile, default.json (default:\n"
  "                          policies/ next to kiln, then /usr/local/share/kiln/policies,\n"
  "                          /usr/share/kiln/policies)\n"
  "  KILN_MAX_LAYER_ENTRIES  the most entries a layer may have (default 1000000)\n"
  "  KILN_FUSE_URING         auto (default): the overlay takes requests through FUSE over io_uring\n"
  "                          where the kernel offers it (Linux 6.14+, fuse module parameter\n"
  "                          enable_uring=Y); off: always through /dev/fuse\n\n"
  "Examples:\n"
  "  kiln build -t registry.example.com/app:1.0 .\n"
  "  kiln build --no-push --oci-layout out:latest -f docker/Dockerfile .\n\nFlags:\n";

/* kaniko's --cache-ttl default: two weeks. */
#define BUILD_CACHE_TTL_DEFAULT ((int64_t) 336 * 3600)

/* --cache=true without --cache-repo: <first destination's repository>/cache,
 * as kaniko infers it, so that ephemeral runners share a cache at all. */
int
build_opts_default_cache_repo (build_cmd_opts *o, kiln_error **err)
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

/* The build cache's flags, kaniko's no-ops and kaniko's own (build_handle's
 * remaining cases). */
static int
handle_cache_and_kaniko (build_cmd_opts *o, int id, const char *value, kiln_error **err)
{
  int r;
  switch (id)
    {
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
    default:
      return handle_cache_and_kaniko (o, id, value, err);
    }
}

void
build_opts_init (build_cmd_opts *o)
{
  *o = (build_cmd_opts) { .skip_unused_stages = true, .reg = { .retries = -1 }, .cache = true,
                          .cache_run_layers = true, .cache_copy_layers = true,
                          .cache_ttl = BUILD_CACHE_TTL_DEFAULT, .kaniko = CMD_KANIKO_OPTS_INIT };
  cli_common_init (&o->common);
  sandbox_limits_default (&o->limits);
}

int
build_opts_parse (build_cmd_opts *o, int argc, char **argv, char ***pos, kiln_error **err)
{
  return cmd_parse_args ("build", argc, argv, build_options, N_BUILD_OPTIONS, &o->common, build_handle, o,
                         build_usage_head, pos, err);
}

int
build_opts_print_kaniko_table (FILE *out, kiln_error **err)
{
  autofree cli_option *all = cli_options_concat (build_options, N_BUILD_OPTIONS, cli_common_options,
                                                 cli_common_options_count);
  return cmd_kaniko_print_table (out, all, N_BUILD_OPTIONS + cli_common_options_count, err);
}

void
build_opts_free (build_cmd_opts *o)
{
  cmd_flags_free (&build_flags, o);
  free (o->context);
  free (o->sbom_file);
  free (o->provenance_file);
  strv_free (o->build_args);
  strv_free (o->platforms);
  strv_free (o->destinations);
  strv_free (o->labels);
  strv_free (o->secrets);
  strv_free (o->mirrors);
  strv_free (o->ignore_paths);
  strv_free (o->noop_notes);
  cmd_kaniko_free (&o->kaniko);
}
