/* seccomp_profile.c - parse Docker seccomp profiles (JSON) into data;
 * seccomp_compile.c compiles them with libseccomp. */
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
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

/* JSON deeper than this is not a profile; the limit also keeps yajl's
 * recursive tree free from exhausting the stack on hostile input. */
#define MAX_DEPTH 16
#define MAX_RULES 4096
#define MAX_NAMES 4096
#define MAX_NAME_LEN 64

const char *const seccomp_profile_docker_default_caps[] = {
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
  "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE", NULL,
};

static const struct
{
  const char *name;
  uint32_t token;
} scmp_arches[] = {
  { "SCMP_ARCH_X86", SCMP_ARCH_X86 },
  { "SCMP_ARCH_X86_64", SCMP_ARCH_X86_64 },
  { "SCMP_ARCH_X32", SCMP_ARCH_X32 },
  { "SCMP_ARCH_ARM", SCMP_ARCH_ARM },
  { "SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64 },
  { "SCMP_ARCH_MIPS", SCMP_ARCH_MIPS },
  { "SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64 },
  { "SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32 },
  { "SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL },
  { "SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64 },
  { "SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32 },
  { "SCMP_ARCH_PPC", SCMP_ARCH_PPC },
  { "SCMP_ARCH_PPC64", SCMP_ARCH_PPC64 },
  { "SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE },
  { "SCMP_ARCH_S390", SCMP_ARCH_S390 },
  { "SCMP_ARCH_S390X", SCMP_ARCH_S390X },
  { "SCMP_ARCH_PARISC", SCMP_ARCH_PARISC },
  { "SCMP_ARCH_PARISC64", SCMP_ARCH_PARISC64 },
  { "SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64 },
};

/* Names used by includes/excludes "arches" (Go's GOARCH spelling as Docker
 * uses it), with the libseccomp token each stands for. */
static const struct
{
  const char *name;
  uint32_t token;
} go_arches[] = {
  { "amd64", SCMP_ARCH_X86_64 },   { "x86", SCMP_ARCH_X86 },         { "386", SCMP_ARCH_X86 },
  { "x32", SCMP_ARCH_X32 },        { "arm", SCMP_ARCH_ARM },         { "arm64", SCMP_ARCH_AARCH64 },
  { "mips", SCMP_ARCH_MIPS },      { "mipsle", SCMP_ARCH_MIPSEL },   { "mips64", SCMP_ARCH_MIPS64 },
  { "mips64le", SCMP_ARCH_MIPSEL64 }, { "mips64n32", SCMP_ARCH_MIPS64N32 },
  { "mips64len32", SCMP_ARCH_MIPSEL64N32 }, { "ppc", SCMP_ARCH_PPC }, { "ppc64", SCMP_ARCH_PPC64 },
  { "ppc64le", SCMP_ARCH_PPC64LE }, { "s390", SCMP_ARCH_S390 },      { "s390x", SCMP_ARCH_S390X },
  { "riscv64", SCMP_ARCH_RISCV64 },
};

static const struct
{
  const char *name;
  uint32_t action;
  bool takes_ret;  /* errnoRet meaningful */
} actions[] = {
  { "SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD, false },
  { "SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD, false },
  { "SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS, false },
  { "SCMP_ACT_TRAP", SCMP_ACT_TRAP, false },
  { "SCMP_ACT_ERRNO", SCMP_ACT_ERRNO (0), true },
  { "SCMP_ACT_TRACE", SCMP_ACT_TRACE (0), true },
  { "SCMP_ACT_ALLOW", SCMP_ACT_ALLOW, false },
  { "SCMP_ACT_LOG", SCMP_ACT_LOG, false },
};

static const struct
{
  const char *name;
  int op;
} ops[] = {
  { "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT }, { "SCMP_CMP_LE", SCMP_CMP_LE },
  { "SCMP_CMP_EQ", SCMP_CMP_EQ }, { "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
  { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
};

/* Parsing context: the source name and the JSON path of the current value. */
typedef struct pctx
{
  const char *source;
  strbuf path;
} pctx;

static int
perr (pctx *c, kiln_error **err, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static int
perr (pctx *c, kiln_error **err, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  autofree char *m = xvasprintf (fmt, ap);
  va_end (ap);
  return kiln_error_make (err, 0, "seccomp profile '%s': %s: %s", c->source,
                          c->path.len ? c->path.buf : "(top level)", m);
}

static size_t
path_push (pctx *c, const char *key, long index)
{
  size_t old = c->path.len;
  if (key)
    strbuf_addf (&c->path, "%s%s", c->path.len ? "." : "", key);
  else
    strbuf_addf (&c->path, "[%ld]", index);
  return old;
}

static void
path_pop (pctx *c, size_t old)
{
  strbuf_setlen (&c->path, old);
}

/* Reject nesting deeper than MAX_DEPTH before yajl builds a tree. */
static bool
depth_ok (const char *s, size_t len)
{
  int depth = 0;
  bool in_str = false, esc = false;
  for (size_t i = 0; i < len; i++)
    {
      char ch = s[i];
      if (in_str)
        {
          if (esc)
            esc = false;
          else if (ch == '\\')
            esc = true;
          else if (ch == '"')
            in_str = false;
          continue;
        }
      if (ch == '"')
        in_str = true;
      else if (ch == '[' || ch == '{')
        {
          if (++depth > MAX_DEPTH)
            return false;
        }
      else if (ch == ']' || ch == '}')
        depth--;
    }
  return true;
}

static int
get_string (pctx *c, yajl_val v, size_t maxlen, const char **out, kiln_error **err)
{
  if (!YAJL_IS_STRING (v))
    return perr (c, err, "expected a string");
  const char *s = YAJL_GET_STRING (v);
  size_t n = strlen (s);
  if (n == 0 || n > maxlen)
    return perr (c, err, "string must be 1 to %zu bytes long", maxlen);
  *out = s;
  return 0;
}

/* JSON integer to uint64 without losing precision (yajl's own integer parse
 * stops at LLONG_MAX, and Docker's values are uint64). */
static int
get_u64 (pctx *c, yajl_val v, uint64_t max, uint64_t *out, kiln_error **err)
{
  if (!YAJL_IS_NUMBER (v))
    return perr (c, err, "expected a number");
  const char *r = v->u.number.r;
  if (r == NULL || *r == '\0')
    return perr (c, err, "expected a number");
  for (const char *p = r; *p; p++)
    if (*p < '0' || *p > '9')
      return perr (c, err, "expected a non-negative integer, got '%s'", r);
  errno = 0;
  unsigned long long x = strtoull (r, NULL, 10);
  if (errno == ERANGE || x > max)
    return perr (c, err, "integer %s out of range (at most %llu)", r, (unsigned long long) max);
  *out = x;
  return 0;
}

/* Read an array of strings (or null) into a NULL-terminated strv. */
static int
get_strv (pctx *c, yajl_val v, size_t maxn, char ***out, kiln_error **err)
{
  *out = NULL;
  if (v == NULL || YAJL_IS_NULL (v))
    return 0;
  if (!YAJL_IS_ARRAY (v))
    return perr (c, err, "expected an array of strings");
  size_t n = YAJL_GET_ARRAY (v)->len;
  if (n > maxn)
    return perr (c, err, "too many entries (%zu, at most %zu)", n, maxn);
  autostrv char **res = xcalloc (n + 1, sizeof (char *));
  for (size_t i = 0; i < n; i++)
    {
      size_t o = path_push (c, NULL, (long) i);
      const char *s;
      if (get_string (c, YAJL_GET_ARRAY (v)->values[i], MAX_NAME_LEN, &s, err) < 0)
        return -1;
      path_pop (c, o);
      res[i] = xstrdup (s);
    }
  *out = steal_pointer (&res);
  return 0;
}

static int
lookup_scmp_arch (pctx *c, const char *name, uint32_t *out, kiln_error **err)
{
  for (size_t i = 0; i < ARRAY_SIZE (scmp_arches); i++)
    if (strcmp (scmp_arches[i].name, name) == 0)
      {
        *out = scmp_arches[i].token;
        return 0;
      }
  return perr (c, err, "unknown architecture '%s'", name);
}

static int
parse_action (pctx *c, yajl_val v, yajl_val ret, uint32_t *out, kiln_error **err)
{
  const char *name;
  if (get_string (c, v, MAX_NAME_LEN, &name, err) < 0)
    return -1;
  for (size_t i = 0; i < ARRAY_SIZE (actions); i++)
    {
      if (strcmp (actions[i].name, name) != 0)
        continue;
      uint32_t a = actions[i].action;
      if (actions[i].takes_ret)
        {
          /* Docker: ERRNO without errnoRet means EPERM; TRACE means 0. */
          uint64_t r = strcmp (name, "SCMP_ACT_ERRNO") == 0 ? EPERM : 0;
          if (ret && !YAJL_IS_NULL (ret) && get_u64 (c, ret, 4095, &r, err) < 0)
            return kiln_error_wrap (err, "errnoRet");
          a = strcmp (name, "SCMP_ACT_ERRNO") == 0 ? SCMP_ACT_ERRNO ((uint16_t) r)
                                                   : SCMP_ACT_TRACE ((uint16_t) r);
        }
      else if (ret && !YAJL_IS_NULL (ret))
        return perr (c, err, "errnoRet given for action '%s', which takes none", name);
      *out = a;
      return 0;
    }
  if (strcmp (name, "SCMP_ACT_NOTIFY") == 0)
    return perr (c, err, "action SCMP_ACT_NOTIFY is not supported in profiles (kiln owns the listener)");
  return perr (c, err, "unknown action '%s'", name);
}

static bool
key_in (const char *key, const char *const *allowed)
{
  for (; *allowed; allowed++)
    if (strcmp (key, *allowed) == 0)
      return true;
  return false;
}

static int
check_keys (pctx *c, yajl_val obj, const char *const *allowed, kiln_error **err)
{
  if (!YAJL_IS_OBJECT (obj))
    return perr (c, err, "expected an object");
  for (size_t i = 0; i < YAJL_GET_OBJECT (obj)->len; i++)
    {
      const char *k = YAJL_GET_OBJECT (obj)->keys[i];
      if (!key_in (k, allowed))
        return perr (c, err, "unsupported key '%s'", k);
      for (size_t j = 0; j < i; j++)
        if (strcmp (YAJL_GET_OBJECT (obj)->keys[j], k) == 0)
          return perr (c, err, "duplicate key '%s'", k);
    }
  return 0;
}

static yajl_val
obj_get (yajl_val obj, const char *key)
{
  for (size_t i = 0; i < YAJL_GET_OBJECT (obj)->len; i++)
    if (strcmp (YAJL_GET_OBJECT (obj)->keys[i], key) == 0)
      return YAJL_GET_OBJECT (obj)->values[i];
  return NULL;
}

static int
parse_filter (pctx *c, yajl_val v, seccomp_profile_filter *f, kiln_error **err)
{
  static const char *const keys[] = { "caps", "arches", "minKernel", NULL };
  if (v == NULL || YAJL_IS_NULL (v))
    return 0;
  if (check_keys (c, v, keys, err) < 0)
    return -1;
  size_t o = path_push (c, "caps", 0);
  if (get_strv (c, obj_get (v, "caps"), 64, &f->caps, err) < 0)
    return -1;
  for (char **p = f->caps; p && *p; p++)
    {
      cap_value_t cv;
      if (cap_from_name (*p, &cv) < 0 || strncasecmp (*p, "CAP_", 4) != 0)
        return perr (c, err, "unknown capability '%s'", *p);
    }
  path_pop (c, o);
  o = path_push (c, "arches", 0);
  if (get_strv (c, obj_get (v, "arches"), 64, &f->arches, err) < 0)
    return -1;
  for (char **p = f->arches; p && *p; p++)
    {
      bool found = false;
      for (size_t i = 0; i < ARRAY_SIZE (go_arches); i++)
        found |= strcmp (go_arches[i].name, *p) == 0;
      if (!found)
        return perr (c, err, "unknown architecture '%s'", *p);
    }
  path_pop (c, o);
  yajl_val mk = obj_get (v, "minKernel");
  if (mk && !YAJL_IS_NULL (mk))
    {
      o = path_push (c, "minKernel", 0);
      const char *s;
      if (get_string (c, mk, 32, &s, err) < 0)
        return -1;
      unsigned maj, min;
      int nread = 0;
      if (sscanf (s, "%3u.%3u%n", &maj, &min, &nread) != 2 || (size_t) nread != strlen (s))
        return perr (c, err, "invalid kernel version '%s' (expected MAJOR.MINOR)", s);
      f->has_min_kernel = true;
      f->min_kernel_major = maj;
      f->min_kernel_minor = min;
      path_pop (c, o);
    }
  return 0;
}

static int
parse_arg (pctx *c, yajl_val v, seccomp_profile_arg *a, kiln_error **err)
{
  static const char *const keys[] = { "index", "value", "valueTwo", "op", NULL };
  if (check_keys (c, v, keys, err) < 0)
    return -1;
  yajl_val idx = obj_get (v, "index"), val = obj_get (v, "value"), op = obj_get (v, "op");
  if (idx == NULL || val == NULL || op == NULL)
    return perr (c, err, "an argument needs 'index', 'value' and 'op'");
  uint64_t x;
  size_t o = path_push (c, "index", 0);
  if (get_u64 (c, idx, 5, &x, err) < 0)
    return -1;
  a->index = (unsigned) x;
  path_pop (c, o);
  o = path_push (c, "value", 0);
  if (get_u64 (c, val, UINT64_MAX, &a->value, err) < 0)
    return -1;
  path_pop (c, o);
  yajl_val two = obj_get (v, "valueTwo");
  a->value_two = 0;
  if (two && !YAJL_IS_NULL (two))
    {
      o = path_push (c, "valueTwo", 0);
      if (get_u64 (c, two, UINT64_MAX, &a->value_two, err) < 0)
        return -1;
      path_pop (c, o);
    }
  o = path_push (c, "op", 0);
  const char *s;
  if (get_string (c, op, MAX_NAME_LEN, &s, err) < 0)
    return -1;
  a->op = -1;
  for (size_t i = 0; i < ARRAY_SIZE (ops); i++)
    if (strcmp (ops[i].name, s) == 0)
      a->op = ops[i].op;
  if (a->op < 0)
    return perr (c, err, "unknown operator '%s'", s);
  path_pop (c, o);
  return 0;
}

static bool
valid_syscall_name (const char *s)
{
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
      return false;
  return true;
}

static int
parse_rule (pctx *c, yajl_val v, seccomp_profile_rule *r, kiln_error **err)
{
  static const char *const keys[] = { "names", "name", "action", "errnoRet", "args", "includes",
                                      "excludes", "comment", NULL };
  if (check_keys (c, v, keys, err) < 0)
    return -1;
  yajl_val names = obj_get (v, "names"), name = obj_get (v, "name");
  size_t o;
  if (names && name)
    return perr (c, err, "give either 'names' or 'name', not both");
  if (names)
    {
      o = path_push (c, "names", 0);
      if (get_strv (c, names, MAX_NAMES, &r->names, err) < 0)
        return -1;
      path_pop (c, o);
    }
  else if (name)
    {
      o = path_push (c, "name", 0);
      const char *s;
      if (get_string (c, name, MAX_NAME_LEN, &s, err) < 0)
        return -1;
      strv_push (&r->names, s);
      path_pop (c, o);
    }
  if (r->names == NULL || r->names[0] == NULL)
    return perr (c, err, "a rule needs at least one syscall name");
  for (char **p = r->names; *p; p++)
    if (!valid_syscall_name (*p))
      return perr (c, err, "invalid syscall name '%s'", *p);
  yajl_val action = obj_get (v, "action");
  if (action == NULL)
    return perr (c, err, "a rule needs an 'action'");
  o = path_push (c, "action", 0);
  if (parse_action (c, action, obj_get (v, "errnoRet"), &r->action, err) < 0)
    return -1;
  path_pop (c, o);
  yajl_val comment = obj_get (v, "comment");
  if (comment && !YAJL_IS_STRING (comment) && !YAJL_IS_NULL (comment))
    return perr (c, err, "'comment' must be a string");
  yajl_val args = obj_get (v, "args");
  if (args && !YAJL_IS_NULL (args))
    {
      o = path_push (c, "args", 0);
      if (!YAJL_IS_ARRAY (args))
        return perr (c, err, "expected an array");
      size_t n = YAJL_GET_ARRAY (args)->len;
      if (n > 6)
        return perr (c, err, "at most 6 argument conditions");
      r->args = xcalloc (n ? n : 1, sizeof *r->args);
      for (size_t i = 0; i < n; i++)
        {
          size_t o2 = path_push (c, NULL, (long) i);
          if (parse_arg (c, YAJL_GET_ARRAY (args)->values[i], &r->args[i], err) < 0)
            return -1;
          r->n_args++;
          path_pop (c, o2);
        }
      path_pop (c, o);
    }
  o = path_push (c, "includes", 0);
  if (parse_filter (c, obj_get (v, "includes"), &r->includes, err) < 0)
    return -1;
  path_pop (c, o);
  o = path_push (c, "excludes", 0);
  if (parse_filter (c, obj_get (v, "excludes"), &r->excludes, err) < 0)
    return -1;
  path_pop (c, o);
  return 0;
}

static int
parse_arch_map (pctx *c, yajl_val v, seccomp_profile *p, kiln_error **err)
{
  if (!YAJL_IS_ARRAY (v))
    return perr (c, err, "expected an array");
  size_t n = YAJL_GET_ARRAY (v)->len;
  if (n > 64)
    return perr (c, err, "too many entries");
  for (size_t i = 0; i < n; i++)
    {
      static const char *const keys[] = { "architecture", "subArchitectures", NULL };
      size_t o = path_push (c, NULL, (long) i);
      yajl_val e = YAJL_GET_ARRAY (v)->values[i];
      if (check_keys (c, e, keys, err) < 0)
        return -1;
      yajl_val a = obj_get (e, "architecture");
      const char *s;
      uint32_t main_arch = 0;
      if (a == NULL)
        return perr (c, err, "missing 'architecture'");
      if (get_string (c, a, MAX_NAME_LEN, &s, err) < 0 || lookup_scmp_arch (c, s, &main_arch, err) < 0)
        return -1;
      autostrv char **subs = NULL;
      if (get_strv (c, obj_get (e, "subArchitectures"), 16, &subs, err) < 0)
        return -1;
      /* Record the main arch itself, then each sub-arch, as pairs. */
      size_t nsub = strv_len (subs);
      p->arch_map_main = xreallocarray (p->arch_map_main, p->n_arch_map + nsub + 1, sizeof (uint32_t));
      p->arch_map_sub = xreallocarray (p->arch_map_sub, p->n_arch_map + nsub + 1, sizeof (uint32_t));
      p->arch_map_main[p->n_arch_map] = main_arch;
      p->arch_map_sub[p->n_arch_map++] = main_arch;
      for (size_t j = 0; j < nsub; j++)
        {
          uint32_t t = 0;
          if (lookup_scmp_arch (c, subs[j], &t, err) < 0)
            return -1;
          p->arch_map_main[p->n_arch_map] = main_arch;
          p->arch_map_sub[p->n_arch_map++] = t;
        }
      path_pop (c, o);
    }
  return 0;
}

static int
parse_tree (pctx *c, yajl_val root, seccomp_profile *p, kiln_error **err)
{
  static const char *const keys[] = { "defaultAction", "defaultErrnoRet", "architectures", "archMap",
                                      "syscalls", "comment", NULL };
  if (!YAJL_IS_OBJECT (root))
    return perr (c, err, "a profile must be a JSON object");
  if (check_keys (c, root, keys, err) < 0)
    return -1;
  yajl_val da = obj_get (root, "defaultAction");
  if (da == NULL)
    return perr (c, err, "missing 'defaultAction'");
  size_t o = path_push (c, "defaultAction", 0);
  if (parse_action (c, da, obj_get (root, "defaultErrnoRet"), &p->default_action, err) < 0)
    return -1;
  path_pop (c, o);

  yajl_val arches = obj_get (root, "architectures");
  if (arches && !YAJL_IS_NULL (arches))
    {
      o = path_push (c, "architectures", 0);
      autostrv char **names = NULL;
      if (get_strv (c, arches, 32, &names, err) < 0)
        return -1;
      p->n_arches = strv_len (names);
      p->arches = xcalloc (p->n_arches ? p->n_arches : 1, sizeof (uint32_t));
      for (size_t i = 0; i < p->n_arches; i++)
        if (lookup_scmp_arch (c, names[i], &p->arches[i], err) < 0)
          return -1;
      path_pop (c, o);
    }
  yajl_val am = obj_get (root, "archMap");
  if (am && !YAJL_IS_NULL (am))
    {
      o = path_push (c, "archMap", 0);
      if (parse_arch_map (c, am, p, err) < 0)
        return -1;
      path_pop (c, o);
    }
  yajl_val sc = obj_get (root, "syscalls");
  if (sc && !YAJL_IS_NULL (sc))
    {
      o = path_push (c, "syscalls", 0);
      if (!YAJL_IS_ARRAY (sc))
        return perr (c, err, "expected an array");
      size_t n = YAJL_GET_ARRAY (sc)->len;
      if (n > MAX_RULES)
        return perr (c, err, "too many rules (%zu, at most %d)", n, MAX_RULES);
      p->rules = xcalloc (n ? n : 1, sizeof *p->rules);
      for (size_t i = 0; i < n; i++)
        {
          size_t o2 = path_push (c, NULL, (long) i);
          p->n_rules++;
          if (parse_rule (c, YAJL_GET_ARRAY (sc)->values[i], &p->rules[i], err) < 0)
            return -1;
          path_pop (c, o2);
        }
      path_pop (c, o);
    }
  return 0;
}

int
seccomp_profile_parse (const char *data, size_t len, const char *source, seccomp_profile **out,
                       kiln_error **err)
{
  pctx c = { source ? source : "(memory)", STRBUF_INIT };
  *out = NULL;
  if (len > SECCOMP_PROFILE_MAX_SIZE)
    return kiln_error_make (err, 0, "seccomp profile '%s': larger than %u bytes", c.source,
                            SECCOMP_PROFILE_MAX_SIZE);
  if (memchr (data, '\0', len) != NULL)
    return kiln_error_make (err, 0, "seccomp profile '%s': contains a NUL byte", c.source);
  if (!depth_ok (data, len))
    return kiln_error_make (err, 0, "seccomp profile '%s': JSON nested deeper than %d levels", c.source,
                            MAX_DEPTH);
  autofree char *copy = xstrndup (data, len);
  char ebuf[256] = "";
  yajl_val root = yajl_tree_parse (copy, ebuf, sizeof ebuf);
  if (root == NULL)
    {
      /* yajl's message spans lines and quotes the input; keep the first. */
      char *nl = strchr (ebuf, '\n');
      if (nl)
        *nl = '\0';
      return kiln_error_make (err, 0, "seccomp profile '%s': invalid JSON: %s", c.source,
                              ebuf[0] ? ebuf : "parse error");
    }
  seccomp_profile *p = xzalloc (sizeof *p);
  int r = parse_tree (&c, root, p, err);
  yajl_tree_free (root);
  strbuf_release (&c.path);
  if (r < 0)
    {
      seccomp_profile_free (p);
      return -1;
    }
  *out = p;
  return 0;
}

int
seccomp_profile_load_file (const char *path, seccomp_profile **out, kiln_error **err)
{
  autoclose int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return kiln_error_make (err, errno, "open seccomp profile '%s'", path);
  struct stat st;
  if (fstat (fd, &st) < 0)
    return kiln_error_make (err, errno, "stat seccomp profile '%s'", path);
  if (!S_ISREG (st.st_mode))
    return kiln_error_make (err, 0, "seccomp profile '%s': not a regular file", path);
  autofree char *data = NULL;
  size_t len;
  autoerror kiln_error *rerr = NULL;
  if (fs_read_fd (fd, SECCOMP_PROFILE_MAX_SIZE, &data, &len, &rerr) < 0)
    return rerr->status == EFBIG ? kiln_error_make (err, 0, "seccomp profile '%s': larger than %u bytes", path,
                                                    SECCOMP_PROFILE_MAX_SIZE)
                                 : kiln_error_make (err, rerr->status, "read seccomp profile '%s'", path);
  return seccomp_profile_parse (data, len, path, out, err);
}

static void
filter_release (seccomp_profile_filter *f)
{
  strv_free (f->caps);
  strv_free (f->arches);
}

void
seccomp_profile_free (seccomp_profile *p)
{
  if (p == NULL)
    return;
  for (size_t i = 0; i < p->n_rules; i++)
    {
      strv_free (p->rules[i].names);
      free (p->rules[i].args);
      filter_release (&p->rules[i].includes);
      filter_release (&p->rules[i].excludes);
    }
  free (p->rules);
  free (p->arches);
  free (p->arch_map_main);
  free (p->arch_map_sub);
  free (p);
}

const char *
seccomp_profile_go_arch_name (uint32_t token)
{
  for (size_t i = 0; i < ARRAY_SIZE (go_arches); i++)
    if (go_arches[i].token == token)
      return go_arches[i].name;
  return NULL;
}
