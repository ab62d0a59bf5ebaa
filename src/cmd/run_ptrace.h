/* run_ptrace.h - `kiln run --rootfs DIR --isolation ptrace`: the command
 * under the tracer (src/sandbox/tracer.h) instead of namespaces. */
#ifndef KILN_CMD_RUN_PTRACE_H
#define KILN_CMD_RUN_PTRACE_H

#include "sandbox/sandbox.h"
#include "sandbox/tracer.h"

typedef struct run_ptrace_args
{
  const char *rootfs;
  const tracer_fs_ops *ops;     /* NULL: a plain directory */
  void *ops_ctx;
  char *const *argv;
  char *const *env;
  const char *cwd;
  uid_t uid;
  gid_t gid;
  const char *hostname;
  sandbox_net_mode network;     /* HOST or NONE */
  const seccomp_filter *seccomp;
  sandbox_output_fn output;
  int cancel_fd;
  const volatile sig_atomic_t *cancel_signal;
} run_ptrace_args;

/* Binds (/proc, device files, /sys read-only, generated /etc/hosts and
 * /etc/resolv.conf in a temporary directory removed afterwards), then
 * tracer_run with ops NULL. */
int run_ptrace (const run_ptrace_args *a, sandbox_result *res, kiln_error **err);

#endif
