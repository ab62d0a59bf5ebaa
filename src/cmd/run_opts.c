/* run_opts.c - `kiln run`'s flags: the option table, their values into
 * run_opts, where kiln's flags end and the command begins, and the
 * combinations that are usage errors. */
#include "cmd/run_opts.h"
#include "cmd/cmd.h"
#include "cmd/cmd_common.h"
#include "util/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum
{
  OPT_ROOTFS = 1,
  OPT_ROOTFS_RO,
  OPT_USERNS,
  OPT_NETWORK,
  OPT_SECCOMP,
  OPT_USER,
  OPT_ENV,
  OPT_WORKDIR,
  OPT_HOSTNAME,
  OPT_OVERLAY,
  OPT_SHOW_CHANGES,
  OPT_OCI_LAYOUT,
  OPT_ENTRYPOINT,
  OPT_PULL,
  OPT_PLATFORM,
  OPT_MIRROR,
  OPT_ISOLATION,
};

static const cli_option run_options[] = {
  { "oci-layout", 0, CLI_VALUE, "DIR[:TAG]",
    "run the image tagged TAG (or the only image) of this OCI image layout instead of IMAGE; its layers "
    "are extracted into the store once (verified), the layout is only read",
    OPT_OCI_LAYOUT },
  { "rootfs", 0, CLI_VALUE, "DIR",
    "run in this directory instead of an image. Without --overlay the command's writes go to DIR "
    "itself unless --rootfs-readonly is given",
    OPT_ROOTFS },
  { "overlay", 0, CLI_BOOL, NULL,
    "with --rootfs: run on kiln's FUSE overlay: DIR is a read-only lower layer (never written; files "
    "named .wh.* are OCI whiteouts), writes go to a temporary upper that is discarded afterwards. The "
    "mount is made inside the step's user namespace; /dev/fuse must be mode 0666",
    OPT_OVERLAY },
  { "show-changes", 0, CLI_BOOL, NULL,
    "with an image or --overlay: print the command's change list after it ends, one line per entry: "
    "'add MODE UID:GID /path' (true owners), 'link /path -> /target', 'whiteout /path', 'opaque /dir'",
    OPT_SHOW_CHANGES },
  { "rootfs-readonly", 0, CLI_BOOL, NULL, "with --rootfs: mount the root filesystem read-only", OPT_ROOTFS_RO },
  { "entrypoint", 0, CLI_VALUE, "PROGRAM",
    "override the image's Entrypoint with PROGRAM (one word, not split; '' clears it); as with docker "
    "run, the image's Cmd is then not used",
    OPT_ENTRYPOINT },
  { "user", 'u', CLI_VALUE, "USER[:GROUP]",
    "user and group to run as: names or ids resolved through the image's /etc/passwd and /etc/group "
    "(default: the image's User, else 0); numeric UID[:GID] only with --rootfs",
    OPT_USER },
  { "env", 'e', CLI_VALUE, "KEY=VALUE", "set an environment variable, replacing the image's (repeatable)", OPT_ENV },
  { "workdir", 'w', CLI_VALUE, "DIR",
    "absolute working directory inside the root (default: the image's WorkingDir, else /)", OPT_WORKDIR },
  { "userns", 0, CLI_VALUE, "MODE", "ID mapping: auto (default), full or single", OPT_USERNS },
  { "isolation", 0, CLI_VALUE, "MODE",
    "how the step is isolated: userns (namespaces, FUSE), ptrace (where user namespaces, mounts and "
    "/dev/fuse are denied, as in a default Docker container or a Restricted pod: kiln traces the "
    "step's file-system and id calls, Landlock confines it to the root; with --rootfs only, not "
    "--overlay; --network private becomes host; the host name is the host's) or auto (default: "
    "userns when user namespaces work, else ptrace, saying why)",
    OPT_ISOLATION },
  { "network", 0, CLI_VALUE, "MODE", "private/default (a network namespace of its own, outbound through pasta; the "
    "host's loopback out of reach), host (share the host's network) or none (loopback only)",
    OPT_NETWORK },
  { "seccomp-policy", 0, CLI_VALUE, "FILE",
    "seccomp profile in Docker's JSON format (default: policies/default.json); 'unconfined' disables "
    "seccomp",
    OPT_SECCOMP },
  { "hostname", 0, CLI_VALUE, "NAME", "host name inside the step (default kiln)", OPT_HOSTNAME },
  { "pull", 0, CLI_VALUE, "POLICY",
    "IMAGE from a registry: missing (default: use the copy in the store if there is one), always "
    "(fetch the manifest again; unchanged layers are not downloaded), never (store only)",
    OPT_PULL },
  { "platform", 0, CLI_VALUE, "OS/ARCH[/VARIANT]", "platform to select from an index (default: the host)",
    OPT_PLATFORM },
  { "registry-mirror", 0, CLI_VALUE, "HOST", "try this mirror first for docker.io images, then the origin (repeatable)",
    OPT_MIRROR },
  CMD_TRANSPORT_OPTIONS
  { NULL, 0, CLI_BOOL, NULL, NULL, 0 },
};
#define N_RUN_OPTIONS (ARRAY_SIZE (run_options) - 1)

int
run_opts_parse_id (const char *s, unsigned long *out)
{
  if (*s == '\0')
    return -1;
  char *end;
  errno = 0;
  unsigned long v = strtoul (s, &end, 10);
  if (errno || *end || v > 4294967294UL || s[0] == '-')
    return -1;
  *out = v;
  return 0;
}
static const cmd_string_flag run_strings[] = {
  CMD_STRING_FLAG (OPT_OCI_LAYOUT, run_opts, layout),
  CMD_STRING_FLAG (OPT_PLATFORM, run_opts, platform),
  CMD_STRING_FLAG (OPT_ROOTFS, run_opts, rootfs),
  CMD_STRING_FLAG (OPT_SECCOMP, run_opts, seccomp),
};
static const cmd_flags run_flags = CMD_FLAGS (run_opts, run_strings);

static int
run_handle (void *ctx, int id, const char *value, kiln_error **err)
{
  run_opts *o = ctx;
  int r = cmd_flags_handle (&run_flags, o, id, value, err);
  if (r != 0)
    return r < 0 ? r : 0;
  switch (id)
    {
    case OPT_ENTRYPOINT:
      cmd_set_string (&o->entrypoint, value);
      o->entrypoint_set = true;
      return 0;
    case OPT_PULL:
      return store_parse_pull_policy (value, &o->pull, err);
    case OPT_MIRROR:
      return cmd_mirror_handle (&o->reg, &o->mirrors, value, err);
    case OPT_ROOTFS_RO:
      o->rootfs_ro = strcmp (value, "true") == 0;
      return 0;
    case OPT_USERNS:
      return sandbox_parse_userns (value, &o->userns, err);
    case OPT_NETWORK:
      return sandbox_parse_network (value, &o->network, err);
    case OPT_ISOLATION:
      return sandbox_parse_isolation (value, &o->isolation, err);
    case OPT_USER:
      if (*value == '\0')
        return kiln_error_make (err, 0, "--user: empty value");
      cmd_set_string (&o->user, value);
      return 0;
    case OPT_ENV:
      if (strchr (value, '=') == NULL || value[0] == '=')
        return kiln_error_make (err, 0, "--env '%s': expected KEY=VALUE", value);
      strv_push (&o->env, value);
      return 0;
    case OPT_WORKDIR:
      if (value[0] != '/')
        return kiln_error_make (err, 0, "--workdir '%s': must be an absolute path", value);
      cmd_set_string (&o->workdir, value);
      return 0;
    case OPT_HOSTNAME:
      if (strlen (value) == 0 || strlen (value) > 63)
        return kiln_error_make (err, 0, "--hostname '%s': must be 1 to 63 bytes", value);
      cmd_set_string (&o->hostname, value);
      return 0;
    case OPT_OVERLAY:
      o->overlay = strcmp (value, "true") == 0;
      return 0;
    case OPT_SHOW_CHANGES:
      o->show_changes = strcmp (value, "true") == 0;
      return 0;
    default:
      return kiln_error_make (err, 0, "internal: unhandled run option id %d", id);
    }
}
void
run_opts_free (run_opts *o)
{
  cmd_flags_free (&run_flags, o);
  strv_free (o->env);
  free (o->workdir);
  free (o->hostname);
  free (o->user);
  free (o->entrypoint);
  strv_free (o->mirrors);
}

/* Index of the first argument that is not a flag (IMAGE, or the command
 * with --rootfs / --oci-layout), or of a "--": kiln's flags end there, as
 * with docker run, so the command's own flags are never taken for kiln's. */
static int
flags_end (int argc, char **argv)
{
  size_t n_opts = N_RUN_OPTIONS + cli_common_options_count;
  autofree cli_option *opts = cli_options_concat (run_options, N_RUN_OPTIONS, cli_common_options,
                                                  cli_common_options_count);
  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      if (strcmp (a, "--") == 0 || a[0] != '-' || a[1] == '\0')
        return i;
      const cli_option *o = NULL;
      if (a[1] != '-')
        {
          /* A short cluster: a value flag takes the rest, or the next arg. */
          for (const char *c = a + 1; *c && o == NULL; c++)
            for (size_t k = 0; k < n_opts; k++)
              if (opts[k].short_name == *c && opts[k].kind == CLI_VALUE)
                {
                  o = &opts[k];
                  if (c[1] == '\0')
                    i++;
                  break;
                }
          continue;
        }
      size_t len = strcspn (a + 2, "=");
      for (size_t k = 0; k < n_opts && o == NULL; k++)
        if (strlen (opts[k].name) == len && strncmp (opts[k].name, a + 2, len) == 0)
          o = &opts[k];
      if (o && o->kind == CLI_VALUE && a[2 + len] == '\0')
        i++;
    }
  return argc;
}

static const char run_usage_head[] =
  "Usage: kiln run [FLAGS] IMAGE [COMMAND [ARG...]]\n"
  "       kiln run [FLAGS] --oci-layout DIR[:TAG] [COMMAND [ARG...]]\n"
  "       kiln run [FLAGS] --rootfs DIR [--overlay] COMMAND [ARG...]\n\n"
  "Run a command inside kiln's step sandbox, as a RUN step of a build runs: user, mount,\n"
  "pid, ipc, uts, cgroup and network namespaces (the network private through pasta unless\n"
  "--network host or none), seccomp,\n"
  "reduced capabilities, ID mapping chosen as for builds (--userns).\n\n"
  "IMAGE is looked up in this order: an image kiln built into the store (the -t, or\n"
  "--oci-layout argument given to kiln build, or 'latest'), an image pulled into the store\n"
  "earlier, then the registry (pulled into the store like kiln pull --store; see --pull\n"
  "and the registry flags). The root filesystem is kiln's FUSE overlay of the image's\n"
  "store layers with a temporary upper in the store's tmp/: the command's writes are\n"
  "discarded when it ends, also on SIGINT/SIGTERM, and nothing is committed\n"
  "(--show-changes lists them). The image config's Env, WorkingDir, User, Entrypoint\n"
  "and Cmd apply as with docker run; -e, -w, -u and --entrypoint override them.\n\n"
  "The first argument that is not a flag ends kiln's flags: what follows IMAGE (or,\n"
  "with --oci-layout or --rootfs, the first argument) is the command and its arguments.\n\n"
  "Exit status: the command's; 128+N when it was killed by signal N or kiln was\n"
  "interrupted by signal N; 1 when kiln failed; 2 for usage errors.\n\n"
  "Environment: KILN_ROOT, KILN_POLICY_DIR and KILN_FUSE_URING as for kiln build\n"
  "(kiln build --help).\n\n"
  "Examples:\n"
  "  kiln build -t app --no-push . && kiln run app\n"
  "  kiln run --insecure-registry localhost:5000 localhost:5000/tools:1 make -C /src\n"
  "  kiln run --oci-layout out:latest -u 1000 -e DEBUG=1 -- sh -c 'id; env'\n\nFlags:\n";

static int
check_combination (const run_opts *o, char **pos, kiln_error **err)
{
  if (o->rootfs && o->layout)
    return kiln_error_make (err, 0, "--rootfs and --oci-layout are exclusive");
  if (!o->rootfs && (o->overlay || o->rootfs_ro))
    return kiln_error_make (err, 0, "--%s needs --rootfs", o->overlay ? "overlay" : "rootfs-readonly");
  if (o->rootfs && o->show_changes && !o->overlay)
    return kiln_error_make (err, 0, "--show-changes needs --overlay (or an image)");
  if (o->rootfs && (o->entrypoint_set || o->pull != STORE_PULL_MISSING || o->platform || o->mirrors))
    return kiln_error_make (err, 0, "--entrypoint, --pull, --platform and --registry-mirror need an image, "
                                    "not --rootfs");
  if (o->rootfs && (pos == NULL || pos[0] == NULL))
    return kiln_error_make (err, 0, "no command given");
  if (!o->rootfs && !o->layout && (pos == NULL || pos[0] == NULL))
    return kiln_error_make (err, 0, "no IMAGE given (or --oci-layout DIR[:TAG], or --rootfs DIR)");
  return 0;
}

int
run_opts_parse (int argc, char **argv, run_opts *o, char ***pos, kiln_error **err)
{
  memset (o, 0, sizeof *o);
  o->network = SANDBOX_NET_PRIVATE;
  o->pull = STORE_PULL_MISSING;
  o->reg.retries = -1;
  cli_common_init (&o->common);
  *pos = NULL;
  int end = flags_end (argc, argv);
  autostrv char **flag_pos = NULL;
  int r = cmd_parse_args ("run", end, argv, run_options, N_RUN_OPTIONS, &o->common, run_handle, o, run_usage_head,
                          &flag_pos, err);
  if (r <= 0)
    return r;
  char **p = argv + end;
  if (end < argc && strcmp (argv[end], "--") == 0)
    p++;
  if (check_combination (o, p, err) < 0)
    return kiln_error_wrap (err, "kiln run");
  *pos = p;
  return 1;
}
