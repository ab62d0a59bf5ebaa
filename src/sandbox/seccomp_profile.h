/* seccomp_profile.h - Docker seccomp profiles: parse, validate, compile to BPF.
 *
 * A profile (policies/default.json, or --seccomp-policy FILE) is untrusted
 * input in Docker's JSON format:
 *
 *   { "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
 *     "architectures": [...] | "archMap": [{"architecture", "subArchitectures"}],
 *     "syscalls": [{ "names": [...], "action": "...", "errnoRet": N,
 *                    "args": [{"index", "value", "valueTwo", "op"}],
 *                    "includes": {"caps", "arches", "minKernel"},
 *                    "excludes": {"caps", "arches", "minKernel"} }] }
 *
 * seccomp_profile_parse() checks every field (types, ranges, known actions,
 * operators, capability and architecture names, nesting depth, size) and
 * rejects keys it does not implement instead of ignoring them. Unknown syscall
 * names are accepted and skipped at compile time, as Docker does, because a
 * profile lists calls of every architecture and kernel.
 *
 * seccomp_profile_compile() evaluates includes/excludes against the
 * capabilities the steps hold, the native architecture and the running
 * kernel, and produces a classic BPF program (libseccomp's
 * seccomp_export_bpf). The build compiles once; every step loads the same
 * program with one seccomp(2) call (seccomp_filter_load).
 */
#ifndef KILN_SANDBOX_SECCOMP_PROFILE_H
#define KILN_SANDBOX_SECCOMP_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/filter.h>
#include "util/error.h"

/* Largest profile file accepted (Docker's default is ~13 KiB). */
#define SECCOMP_PROFILE_MAX_SIZE (4u << 20)

typedef struct seccomp_profile_arg
{
  unsigned index;      /* 0..5 */
  uint64_t value;
  uint64_t value_two;
  int op;              /* enum scmp_compare */
} seccomp_profile_arg;

typedef struct seccomp_profile_filter
{
  char **caps;         /* "CAP_SYS_ADMIN" ..., NULL-terminated or NULL */
  char **arches;       /* Docker/Go names: "amd64", "x86", ..., or NULL */
  bool has_min_kernel;
  unsigned min_kernel_major, min_kernel_minor;
} seccomp_profile_filter;

typedef struct seccomp_profile_rule
{
  char **names;        /* NULL-terminated, at least one */
  uint32_t action;     /* SCMP_ACT_* with errno/trace data applied */
  seccomp_profile_arg *args;
  size_t n_args;
  seccomp_profile_filter includes, excludes;
} seccomp_profile_rule;

typedef struct seccomp_profile
{
  uint32_t default_action;     /* SCMP_ACT_* */
  uint32_t *arches;            /* SCMP_ARCH_* tokens, n_arches entries */
  size_t n_arches;
  /* archMap: for each listed main arch, its sub-arches (flattened pairs). */
  uint32_t *arch_map_main;
  uint32_t *arch_map_sub;
  size_t n_arch_map;
  seccomp_profile_rule *rules;
  size_t n_rules;
} seccomp_profile;

/* Parse a profile from memory. `source` names it in error messages (a file
 * name); errors also name the JSON location, e.g. "syscalls[3].args[0].op". */
int seccomp_profile_parse (const char *data, size_t len, const char *source, seccomp_profile **out,
                           kiln_error **err);
/* Read and parse a file (at most SECCOMP_PROFILE_MAX_SIZE bytes). */
int seccomp_profile_load_file (const char *path, seccomp_profile **out, kiln_error **err);
void seccomp_profile_free (seccomp_profile *p);

/* What the compiled filter is for. */
typedef enum
{
  /* The profile as written. */
  SECCOMP_PROFILE_PLAIN = 0,
  /* Single-uid mode: chown, fchown, lchown and fchownat, the stat family
   * (also i386's stat64, lstat64, fstat64, fstatat64) and the get*id and
   * set*id calls (getuid ... getgroups, setuid ... setfsgid, setgroups, +
   * *32) and capset go to a user notification listener (SCMP_ACT_NOTIFY) answered by
   * the sandbox supervisor. Overrides the profile's rules for these calls. */
  SECCOMP_PROFILE_FAKE_IDS,
} seccomp_profile_mode;

typedef struct seccomp_profile_env
{
  /* Capabilities the step may hold (the bounding set), as CAP_* names;
   * NULL-terminated. Rules whose includes.caps are not all held, or whose
   * excludes.caps are, are dropped (Docker's semantics). */
  const char *const *caps;
  /* Kernel version for minKernel; 0.0 means "read uname()". */
  unsigned kernel_major, kernel_minor;
  seccomp_profile_mode mode;
  /* Also hand socket() calls the profile allows to the listener (except
   * AF_UNIX ones the profile allows unconditionally, which run at once):
   * a stage's private network is started by the first step that opens a
   * network socket (sandbox_net.c, "Started on demand"). */
  bool lazy_net;
} seccomp_profile_env;

/* A compiled filter: classic BPF instructions, ready for seccomp(2). */
typedef struct seccomp_filter
{
  struct sock_filter *insns;
  size_t n_insns;
  bool needs_listener;   /* SECCOMP_PROFILE_FAKE_IDS or lazy_net: load with NEW_LISTENER */
  bool lazy_net;         /* compiled with seccomp_profile_env.lazy_net */
  bool fake_ids;         /* compiled for SECCOMP_PROFILE_FAKE_IDS */
} seccomp_filter;

int seccomp_profile_compile (const seccomp_profile *p, const seccomp_profile_env *env, seccomp_filter **out,
                             kiln_error **err);
void seccomp_filter_free (seccomp_filter *f);

/* Install f on the calling thread (after PR_SET_NO_NEW_PRIVS). Returns the
 * listener fd (>= 0) when f->needs_listener, else 0. Async-signal-safe: it
 * only makes system calls, so it may run in a freshly forked child. */
int seccomp_filter_load (const seccomp_filter *f);

/* policies/default.json as built into the binary (seccomp_builtin.c). */
extern const char seccomp_builtin_default[], seccomp_builtin_default_end[];

/* Locate policies/default.json: $KILN_POLICY_DIR, then policies/ next to
 * the kiln binary (a source tree), then PREFIX/share/kiln/policies for
 * /usr/local and /usr. Caller frees *out. */
int seccomp_profile_default_path (char **out, kiln_error **err);

/* What --seccomp-policy FILE means to kiln build and kiln run: load the
 * profile at path (NULL: seccomp_profile_default_path) and compile it for
 * mode with Docker's default capabilities; errors name the file. The value
 * "unconfined" is the caller's to handle (it loads nothing). */
int seccomp_profile_load_filter (const char *path, seccomp_profile_mode mode, seccomp_filter **out,
                                 kiln_error **err);

/* The two halves of seccomp_profile_load_filter, for a caller that
 * compiles more than one filter from one profile (kiln build: with and
 * without lazy_net, each when first needed). seccomp_profile_load reads the
 * profile at path (NULL: the default one, else the built-in copy) and sets
 * *name to what errors should call it (caller frees both).
 * seccomp_profile_compile_for compiles it for mode with Docker's default
 * capabilities; its errors name the profile. */
int seccomp_profile_load (const char *path, seccomp_profile **out, char **name, kiln_error **err);
int seccomp_profile_compile_for (const seccomp_profile *p, const char *name, seccomp_profile_mode mode, bool lazy_net,
                                 seccomp_filter **out, kiln_error **err);

/* Go's GOARCH spelling (as Docker's includes/excludes "arches" use it) of a
 * libseccomp architecture token, or NULL. */
const char *seccomp_profile_go_arch_name (uint32_t token);

/* Docker's default capability set for root in a container. */
extern const char *const seccomp_profile_docker_default_caps[];

#endif
