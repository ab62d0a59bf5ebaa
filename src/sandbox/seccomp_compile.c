/* seccomp_compile.c - compile a parsed Docker seccomp profile to a BPF
 * filter with libseccomp (the ID modes' and lazy network's notification
 * rules included), load it, and find and load the default profile. */
#include "sandbox/seccomp_profile.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

static const char *const fake_chown_calls[] = { "chown", "fchown", "lchown", "fchownat", "chown32",
                                                 "fchown32", "lchown32", NULL };
/* Answered by the supervisor with the owners kiln recorded (the kernel can
 * show only the one mapped id); the native 64-bit ABI's calls. */
static const char *const fake_stat_calls[] = { "stat", "lstat", "fstat", "newfstatat", "statx",
                                                "stat64", "lstat64", "fstat64", "fstatat64", NULL };
/* Answered from the step's fake credentials (sandbox_creds.c); capset is
 * only noted there (which set*id calls the process may still make). */
static const char *const fake_id_calls[] = { "setuid", "setgid", "setgroups", "setreuid", "setregid",
                                              "setresuid", "setresgid", "setfsuid", "setfsgid",
                                              "setuid32", "setgid32", "setgroups32", "setreuid32",
                                              "setregid32", "setresuid32", "setresgid32", "setfsuid32",
                                              "setfsgid32", "getuid", "geteuid", "getgid", "getegid",
                                              "getresuid", "getresgid", "getgroups", "getuid32",
                                              "geteuid32", "getgid32", "getegid32", "getresuid32",
                                              "getresgid32", "getgroups32", "capset", NULL };

static bool
strv_has (const char *const *v, const char *s)
{
  for (; v && *v; v++)
    if (strcmp (*v, s) == 0)
      return true;
  return false;
}

static bool
kernel_at_least (const seccomp_profile_env *env, unsigned maj, unsigned min)
{
  return env->kernel_major > maj || (env->kernel_major == maj && env->kernel_minor >= min);
}


/* Docker: a rule applies when every includes condition holds (all listed
 * caps held, native arch listed, kernel new enough) and no excludes
 * condition does (any listed cap held, native arch listed, kernel new enough). */
static bool
rule_applies (const seccomp_profile_rule *r, const seccomp_profile_env *env, const char *arch)
{
  const seccomp_profile_filter *in = &r->includes, *ex = &r->excludes;
  for (char **p = in->caps; p && *p; p++)
    if (!strv_has (env->caps, *p))
      return false;
  if (in->arches && !strv_has ((const char *const *) in->arches, arch))
    return false;
  if (in->has_min_kernel && !kernel_at_least (env, in->min_kernel_major, in->min_kernel_minor))
    return false;
  for (char **p = ex->caps; p && *p; p++)
    if (strv_has (env->caps, *p))
      return false;
  if (ex->arches && strv_has ((const char *const *) ex->arches, arch))
    return false;
  if (ex->has_min_kernel && kernel_at_least (env, ex->min_kernel_major, ex->min_kernel_minor))
    return false;
  return true;
}

static int
add_rule (scmp_filter_ctx ctx, uint32_t def, const seccomp_profile_rule *r, const char *name, int nr,
          kiln_error **err)
{
  if (r->action == def)
    return 0; /* libseccomp refuses rules that repeat the default */
  struct scmp_arg_cmp cmp[6];
  bool unique = true;
  for (size_t i = 0; i < r->n_args; i++)
    {
      cmp[i] = (struct scmp_arg_cmp) { r->args[i].index, (enum scmp_compare) r->args[i].op, r->args[i].value,
                                       r->args[i].value_two };
      for (size_t j = 0; j < i; j++)
        unique &= r->args[j].index != r->args[i].index;
    }
  int rc;
  if (r->n_args == 0 || unique)
    rc = seccomp_rule_add_array (ctx, r->action, nr, (unsigned) r->n_args, cmp);
  else
    {
      /* Conditions on the same argument are alternatives (as in runc). */
      rc = 0;
      for (size_t i = 0; i < r->n_args && rc == 0; i++)
        rc = seccomp_rule_add_array (ctx, r->action, nr, 1, &cmp[i]);
    }
  if (rc < 0)
    return kiln_error_make (err, -rc, "seccomp: add rule for '%s'", name);
  return 0;
}

/* What the profile's socket rules were, for a lazy_net filter. */
typedef struct lazy_socket
{
  bool unix_allowed; /* an allowing rule matches every socket(AF_UNIX, ...) */
  bool other_action; /* a rule for socket with another action (e.g. ERRNO) */
} lazy_socket;

/* Does an allowing rule match socket(AF_UNIX, any, any)? Its conditions
 * must all be on the domain (alternatives, as add_rule adds them). */
static bool
rule_allows_unix (const seccomp_profile_rule *r)
{
  if (r->n_args == 0)
    return true;
  bool any = false;
  for (size_t i = 0; i < r->n_args; i++)
    {
      const seccomp_profile_arg *a = &r->args[i];
      if (a->index != 0)
        return false;
      uint64_t v = AF_UNIX;
      switch ((enum scmp_compare) a->op)
        {
        case SCMP_CMP_NE: any |= v != a->value; break;
        case SCMP_CMP_LT: any |= v < a->value; break;
        case SCMP_CMP_LE: any |= v <= a->value; break;
        case SCMP_CMP_EQ: any |= v == a->value; break;
        case SCMP_CMP_GE: any |= v >= a->value; break;
        case SCMP_CMP_GT: any |= v > a->value; break;
        case SCMP_CMP_MASKED_EQ: any |= (v & a->value) == a->value_two; break;
        case _SCMP_CMP_MIN:
        case _SCMP_CMP_MAX:
          break;
        }
    }
  return any;
}

/* A lazy_net filter's socket rule: what the profile allows goes to the
 * listener instead (the supervisor lets it run once the network is up). */
static int
add_socket_rule (scmp_filter_ctx ctx, uint32_t def, const seccomp_profile_rule *r, int nr, lazy_socket *ls,
                 kiln_error **err)
{
  if (r->action != SCMP_ACT_ALLOW)
    {
      ls->other_action |= r->action != def;
      return add_rule (ctx, def, r, "socket", nr, err);
    }
  ls->unix_allowed |= rule_allows_unix (r);
  seccomp_profile_rule notify = *r;
  notify.action = SCMP_ACT_NOTIFY;
  return add_rule (ctx, def, &notify, "socket", nr, err);
}

static int
export_bpf (scmp_filter_ctx ctx, seccomp_filter *f, kiln_error **err)
{
  autoclose int fd = memfd_create ("kiln-seccomp", MFD_CLOEXEC);
  if (fd < 0)
    return kiln_error_make (err, errno, "memfd_create");
  int rc = seccomp_export_bpf (ctx, fd);
  if (rc < 0)
    return kiln_error_make (err, -rc, "seccomp_export_bpf");
  struct stat st;
  if (fstat (fd, &st) < 0)
    return kiln_error_make (err, errno, "fstat seccomp memfd");
  if (st.st_size <= 0 || st.st_size % (off_t) sizeof (struct sock_filter) != 0
      || st.st_size / (off_t) sizeof (struct sock_filter) > BPF_MAXINSNS)
    return kiln_error_make (err, 0, "seccomp: compiled filter has invalid size %lld bytes",
                            (long long) st.st_size);
  f->n_insns = (size_t) st.st_size / sizeof (struct sock_filter);
  f->insns = xmalloc ((size_t) st.st_size);
  size_t done = 0;
  while (done < (size_t) st.st_size)
    {
      ssize_t n = pread (fd, (char *) f->insns + done, (size_t) st.st_size - done, (off_t) done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return kiln_error_make (err, n < 0 ? errno : EIO, "read compiled seccomp filter");
      done += (size_t) n;
    }
  return 0;
}

static void
ctx_releasep (scmp_filter_ctx *c)
{
  if (*c)
    seccomp_release (*c);
}

int
seccomp_profile_compile (const seccomp_profile *p, const seccomp_profile_env *env_in, seccomp_filter **out,
                         kiln_error **err)
{
  *out = NULL;
  seccomp_profile_env env = *env_in;
  if (env.kernel_major == 0 && env.kernel_minor == 0)
    {
      struct utsname u;
      if (uname (&u) == 0)
        sscanf (u.release, "%u.%u", &env.kernel_major, &env.kernel_minor);
    }
  __attribute__ ((cleanup (ctx_releasep))) scmp_filter_ctx ctx = seccomp_init (p->default_action);
  if (ctx == NULL)
    return kiln_error_make (err, 0, "seccomp_init failed");
  uint32_t native = seccomp_arch_native ();
  int rc;
  for (size_t i = 0; i < p->n_arches; i++)
    if ((rc = seccomp_arch_add (ctx, p->arches[i])) < 0 && rc != -EEXIST)
      return kiln_error_make (err, -rc, "seccomp: add architecture %#x", p->arches[i]);
  for (size_t i = 0; i < p->n_arch_map; i++)
    if (p->arch_map_main[i] == native && (rc = seccomp_arch_add (ctx, p->arch_map_sub[i])) < 0
        && rc != -EEXIST)
      return kiln_error_make (err, -rc, "seccomp: add architecture %#x", p->arch_map_sub[i]);

  const char *arch = seccomp_profile_go_arch_name (native);
  if (arch == NULL)
    arch = "";
  bool fake = env.mode == SECCOMP_PROFILE_FAKE_IDS;
  /* A profile that allows by default has no socket rule to turn into a
   * notification: its steps start the network up front. */
  bool lazy = env.lazy_net && p->default_action != SCMP_ACT_ALLOW;
  lazy_socket ls = { false, false };
  for (size_t i = 0; i < p->n_rules; i++)
    {
      const seccomp_profile_rule *r = &p->rules[i];
      if (!rule_applies (r, &env, arch))
        continue;
      for (char **n = r->names; *n; n++)
        {
          if (fake && (strv_has (fake_chown_calls, *n) || strv_has (fake_stat_calls, *n) || strv_has (fake_id_calls, *n)))
            continue;
          int nr = seccomp_syscall_resolve_name (*n);
          if (nr == __NR_SCMP_ERROR)
            continue; /* not a call of any architecture in this filter */
          rc = lazy && strcmp (*n, "socket") == 0 ? add_socket_rule (ctx, p->default_action, r, nr, &ls, err)
                                                     : add_rule (ctx, p->default_action, r, *n, nr, err);
          if (rc < 0)
            return kiln_error_wrap (err, "compiling syscalls[%zu]", i);
        }
    }
  const struct scmp_arg_cmp unix_domain = { 0, SCMP_CMP_EQ, AF_UNIX, 0 };
  if (lazy && ls.unix_allowed && !ls.other_action
      && (rc = seccomp_rule_add_array (ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name ("socket"), 1,
                                       &unix_domain)) < 0)
    return kiln_error_make (err, -rc, "seccomp: add rule for AF_UNIX sockets");
  if (fake)
    {
      for (const char *const *n = fake_chown_calls; *n; n++)
        {
          int nr = seccomp_syscall_resolve_name (*n);
          if (nr != __NR_SCMP_ERROR && (rc = seccomp_rule_add (ctx, SCMP_ACT_NOTIFY, nr, 0)) < 0)
            return kiln_error_make (err, -rc, "seccomp: add notify rule for '%s'", *n);
        }
      for (const char *const *n = fake_stat_calls; *n; n++)
        {
          int nr = seccomp_syscall_resolve_name (*n);
          if (nr != __NR_SCMP_ERROR && (rc = seccomp_rule_add (ctx, SCMP_ACT_NOTIFY, nr, 0)) < 0)
            return kiln_error_make (err, -rc, "seccomp: add notify rule for '%s'", *n);
        }
      for (const char *const *n = fake_id_calls; *n; n++)
        {
          int nr = seccomp_syscall_resolve_name (*n);
          if (nr != __NR_SCMP_ERROR && (rc = seccomp_rule_add (ctx, SCMP_ACT_NOTIFY, nr, 0)) < 0)
            return kiln_error_make (err, -rc, "seccomp: add notify rule for '%s'", *n);
        }
    }
  seccomp_filter *f = xzalloc (sizeof *f);
  f->needs_listener = fake || lazy;
  f->lazy_net = lazy;
  f->fake_ids = fake;
  if (export_bpf (ctx, f, err) < 0)
    {
      seccomp_filter_free (f);
      return -1;
    }
  *out = f;
  return 0;
}

void
seccomp_filter_free (seccomp_filter *f)
{
  if (f == NULL)
    return;
  free (f->insns);
  free (f);
}

int
seccomp_filter_load (const seccomp_filter *f)
{
  struct sock_fprog prog = { .len = (unsigned short) f->n_insns, .filter = f->insns };
  unsigned flags = f->needs_listener ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
  long r = syscall (SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
  if (r < 0)
    return -errno;
  return f->needs_listener ? (int) r : 0;
}

int
seccomp_profile_default_path (char **out, kiln_error **err)
{
  const char *env = getenv ("KILN_POLICY_DIR");
  if (env && *env)
    {
      *out = xasprintf ("%s/default.json", env);
      return 0;
    }
  char exe[PATH_MAX];
  ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0)
    {
      exe[n] = '\0';
      char *slash = strrchr (exe, '/');
      if (slash)
        {
          *slash = '\0';
          autofree char *p = xasprintf ("%s/policies/default.json", exe);
          if (access (p, R_OK) == 0)
            {
              *out = steal_pointer (&p);
              return 0;
            }
        }
    }
  static const char *const dirs[] = { "/usr/local/share/kiln/policies", "/usr/share/kiln/policies" };
  for (size_t i = 0; i < ARRAY_SIZE (dirs); i++)
    {
      autofree char *p = xasprintf ("%s/default.json", dirs[i]);
      if (access (p, R_OK) == 0)
        {
          *out = steal_pointer (&p);
          return 0;
        }
    }
  return kiln_error_make (err, ENOENT, "find the default seccomp profile (set KILN_POLICY_DIR or pass "
                                       "--seccomp-policy FILE)");
}

int
seccomp_profile_load (const char *path, seccomp_profile **out, char **name, kiln_error **err)
{
  *out = NULL;
  *name = NULL;
  autofree char *found = NULL;
  if (path == NULL)
    {
      autoerror kiln_error *nf = NULL;
      if (seccomp_profile_default_path (&found, &nf) < 0)
        {
          /* A binary without its policies/: the copy built into it. */
          path = "(built-in policies/default.json)";
          log_debug ("no policies/default.json found (%s): using the built-in copy", nf->msg);
          if (seccomp_profile_parse (seccomp_builtin_default,
                                     (size_t) (seccomp_builtin_default_end - seccomp_builtin_default), path, out,
                                     err) < 0)
            return -1;
          *name = xstrdup (path);
          return 0;
        }
      path = found;
    }
  if (seccomp_profile_load_file (path, out, err) < 0)
    return -1;
  *name = xstrdup (path);
  return 0;
}

int
seccomp_profile_compile_for (const seccomp_profile *p, const char *name, seccomp_profile_mode mode, bool lazy_net,
                             seccomp_filter **out, kiln_error **err)
{
  seccomp_profile_env env = { seccomp_profile_docker_default_caps, 0, 0, mode, lazy_net };
  if (seccomp_profile_compile (p, &env, out, err) < 0)
    return kiln_error_wrap (err, "compiling seccomp profile '%s'", name);
  log_debug ("seccomp profile '%s' compiled to %zu BPF instructions%s", name, (*out)->n_insns,
             lazy_net ? " (network sockets notified)" : "");
  return 0;
}

int
seccomp_profile_load_filter (const char *path, seccomp_profile_mode mode, seccomp_filter **out,
                             kiln_error **err)
{
  *out = NULL;
  seccomp_profile *p = NULL;
  autofree char *name = NULL;
  if (seccomp_profile_load (path, &p, &name, err) < 0)
    return -1;
  int r = seccomp_profile_compile_for (p, name, mode, false, out, err);
  seccomp_profile_free (p);
  return r;
}
