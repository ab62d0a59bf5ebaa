/* plan.c - resolve a parsed Dockerfile into a build plan; see plan.h. */
#include "build/plan.h"
#include "sandbox/sandbox.h"
#include "build/expand.h"
#include "util/alloc.h"
#include "util/strbuf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

static const char *const proxy_args[] = {
  "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
  "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
};

static bool
is_proxy_arg (const char *k)
{
  for (size_t i = 0; i < ARRAY_SIZE (proxy_args); i++)
    if (strcmp (proxy_args[i], k) == 0)
      return true;
  return false;
}

char *
plan_host_platform (void)
{
  struct utsname u;
  const char *arch = "amd64";
  if (uname (&u) == 0)
    {
      if (strcmp (u.machine, "aarch64") == 0)
        arch = "arm64";
      else if (strncmp (u.machine, "armv7", 5) == 0)
        arch = "arm/v7";
      else if (strncmp (u.machine, "armv6", 5) == 0)
        arch = "arm/v6";
      else if (strcmp (u.machine, "ppc64le") == 0 || strcmp (u.machine, "s390x") == 0
               || strcmp (u.machine, "riscv64") == 0)
        arch = u.machine;
      else if (strcmp (u.machine, "i686") == 0 || strcmp (u.machine, "i386") == 0)
        arch = "386";
    }
  return xasprintf ("linux/%s", arch);
}

/* Normalise "os/arch[/variant]" the way containerd's platforms package does
 * for the common cases. */
static int
normalize_platform (const char *in, char **out, kiln_error **err)
{
  autofree char *s = xstrdup (in);
  for (char *c = s; *c; c++)
    *c = (char) tolower ((unsigned char) *c);
  char *parts[4] = { 0 };
  size_t n = 0;
  for (char *tok = s, *sl; tok && n < 4; tok = sl ? sl + 1 : NULL)
    {
      sl = strchr (tok, '/');
      if (sl)
        *sl = '\0';
      parts[n++] = tok;
    }
  if (n < 2 || n > 3 || parts[0][0] == '\0' || parts[1][0] == '\0' || (n == 3 && parts[2][0] == '\0'))
    return kiln_error_make (err, 0, "invalid platform '%s' (expected os/arch[/variant])", in);
  const char *arch = parts[1];
  const char *variant = n == 3 ? parts[2] : "";
  if (strcmp (arch, "x86_64") == 0 || strcmp (arch, "x86-64") == 0)
    arch = "amd64";
  else if (strcmp (arch, "aarch64") == 0)
    arch = "arm64";
  if (strcmp (arch, "arm64") == 0 && strcmp (variant, "v8") == 0)
    variant = "";
  if (strcmp (arch, "arm") == 0 && *variant == '\0')
    variant = "v7";
  *out = *variant ? xasprintf ("%s/%s/%s", parts[0], arch, variant) : xasprintf ("%s/%s", parts[0], arch);
  return 0;
}

static void
platform_args (expand_vars *v, const char *prefix, const char *platform)
{
  autofree char *s = xstrdup (platform);
  char *arch = strchr (s, '/');
  *arch++ = '\0';
  char *variant = strchr (arch, '/');
  if (variant)
    *variant++ = '\0';
  autofree char *k1 = xasprintf ("%sPLATFORM", prefix);
  autofree char *k2 = xasprintf ("%sOS", prefix);
  autofree char *k3 = xasprintf ("%sARCH", prefix);
  autofree char *k4 = xasprintf ("%sVARIANT", prefix);
  expand_vars_set (v, k1, platform);
  expand_vars_set (v, k2, s);
  expand_vars_set (v, k3, arch);
  expand_vars_set (v, k4, variant ? variant : "");
}

/* ---- state while building ---- */

typedef struct scope
{
  expand_vars env;   /* ENV */
  bool env_known;    /* false: the base image's ENV is unknown (dry run) */
  expand_vars args;  /* ARGs in scope */
  char **shell;
  char **unresolved; /* collected for the current step */
} scope;

typedef struct builder
{
  plan *p;
  const plan_options *o;
  expand_vars build_args;   /* from --build-arg */
  expand_vars globals;      /* global ARGs, resolved */
  expand_vars auto_args;    /* platform ARGs */
  char **consumed;          /* build-arg names some ARG declared */
} builder;

static expand_lookup_result
scope_lookup (void *ctx, const char *name, size_t n, const char **value)
{
  scope *s = ctx;
  long i = expand_vars_find (&s->env, name, n);
  if (i >= 0)
    {
      *value = s->env.values[i];
      return EXPAND_SET;
    }
  i = expand_vars_find (&s->args, name, n);
  if (i >= 0)
    {
      *value = s->args.values[i];
      return s->args.values[i] ? EXPAND_SET : (s->env_known ? EXPAND_UNSET : EXPAND_UNKNOWN);
    }
  if (!s->env_known)
    {
      autofree char *nm = xstrndup (name, n);
      bool dup = false;
      for (size_t k = 0; s->unresolved && s->unresolved[k]; k++)
        dup |= strcmp (s->unresolved[k], nm) == 0;
      if (!dup)
        strv_push (&s->unresolved, nm);
      return EXPAND_UNKNOWN;
    }
  return EXPAND_UNSET;
}

static int
sexpand (builder *b, scope *s, const char *in, char **out, kiln_error **err)
{
  expand_opts o = { .escape = b->p->df->escape, .lookup = scope_lookup, .ctx = s };
  return expand_word (&o, in, out, err);
}

static void
scope_free (scope *s)
{
  expand_vars_free (&s->env);
  expand_vars_free (&s->args);
  strv_free (s->shell);
  strv_free (s->unresolved);
}

static void
consume (builder *b, const char *k)
{
  strv_push (&b->consumed, k);
}

/* Resolve an ARG declaration KEY[=default] against build-args. */
static void
resolve_arg (builder *b, scope *s, const char *key, const char *def_expanded, bool global_redecl_ok,
             plan_kv *out)
{
  consume (b, key);
  long i = expand_vars_find (&b->build_args, key, strlen (key));
  const char *v = NULL;
  if (i >= 0)
    v = b->build_args.values[i];
  else if (def_expanded)
    v = def_expanded;
  else if (global_redecl_ok)
    {
      long g = expand_vars_find (&b->globals, key, strlen (key));
      if (g >= 0)
        v = b->globals.values[g];
      else
        {
          g = expand_vars_find (&b->auto_args, key, strlen (key));
          if (g >= 0)
            v = b->auto_args.values[g];
        }
    }
  expand_vars_set (&s->args, key, v);
  out->key = xstrdup (key);
  out->value = v ? xstrdup (v) : NULL;
}

/* Re-issue an expansion error as "FILE:LINE: KEYWORD: why" plus the line. */
static int
step_error (builder *b, const dockerfile_instr *in, kiln_error **err)
{
  if (err == NULL || *err == NULL)
    return dockerfile_error (b->p->df, in->line, err, "%s: failed", in->keyword);
  autofree char *msg = xstrdup ((*err)->msg ? (*err)->msg : "");
  kiln_error_clear (err);
  return dockerfile_error (b->p->df, in->line, err, "%s: %s", in->keyword, msg);
}

static bool
valid_chmod (const char *v)
{
  if (*v >= '0' && *v <= '7')
    {
      size_t n = strspn (v, "01234567");
      return v[n] == '\0' && strtoul (v, NULL, 8) <= 07777;
    }
  /* symbolic: [ugoa]*[+-=][rwxXst]* (, ...)* */
  const char *p = v;
  for (;;)
    {
      p += strspn (p, "ugoa");
      if (*p != '+' && *p != '-' && *p != '=')
        return false;
      while (*p == '+' || *p == '-' || *p == '=')
        {
          p++;
          p += strspn (p, "rwxXst");
        }
      if (*p == '\0')
        return true;
      if (*p != ',')
        return false;
      p++;
    }
}

static int
parse_port (const char *s, long *out)
{
  if (*s == '\0' || strlen (s) > 5 || strspn (s, "0123456789") != strlen (s))
    return -1;
  long v = strtol (s, NULL, 10);
  if (v < 0 || v > 65535)
    return -1;
  *out = v;
  return 0;
}

static int
normalize_expose (const char *w, char **out)
{
  autofree char *s = xstrdup (w);
  char *proto = strchr (s, '/');
  if (proto)
    *proto++ = '\0';
  const char *pr = proto ? proto : "tcp";
  autofree char *lp = xstrdup (pr);
  for (char *c = lp; *c; c++)
    *c = (char) tolower ((unsigned char) *c);
  if (strcmp (lp, "tcp") != 0 && strcmp (lp, "udp") != 0 && strcmp (lp, "sctp") != 0)
    return -1;
  char *dash = strchr (s, '-');
  long a, z;
  if (dash)
    {
      *dash = '\0';
      if (parse_port (s, &a) < 0 || parse_port (dash + 1, &z) < 0 || z < a)
        return -1;
      *out = a == z ? xasprintf ("%ld/%s", a, lp) : xasprintf ("%ld-%ld/%s", a, z, lp);
      return 0;
    }
  if (parse_port (s, &a) < 0)
    return -1;
  *out = xasprintf ("%ld/%s", a, lp);
  return 0;
}

/* Go time.ParseDuration subset: [0-9.]+(ns|us|µs|ms|s|m|h) repeated, or 0. */
static bool
valid_duration (const char *s)
{
  if (strcmp (s, "0") == 0)
    return true;
  if (*s == '\0')
    return false;
  while (*s)
    {
      size_t n = strspn (s, "0123456789.");
      if (n == 0)
        return false;
      s += n;
      if (strncmp (s, "ns", 2) == 0 || strncmp (s, "us", 2) == 0 || strncmp (s, "ms", 2) == 0)
        s += 2;
      else if (strncmp (s, "\xc2\xb5s", 3) == 0)
        s += 3;
      else if (*s == 's' || *s == 'm' || *s == 'h')
        s++;
      else
        return false;
    }
  return true;
}

static int
find_stage (builder *b, const char *name, size_t upto)
{
  for (size_t i = 0; i < upto && i < b->p->n_stages; i++)
    if (b->p->stages[i].name && strcasecmp (b->p->stages[i].name, name) == 0)
      return (int) i;
  return -1;
}

static void
add_dep (plan_stage *st, int d)
{
  for (size_t i = 0; i < st->n_deps; i++)
    if (st->deps[i] == d)
      return;
  st->deps = xreallocarray (st->deps, st->n_deps + 1, sizeof (int));
  st->deps[st->n_deps++] = d;
}

static char **
shell_argv (char **shell, const char *cmd)
{
  char **v = strv_dup (shell);
  strv_push (&v, cmd);
  return v;
}

/* BuildKit's rules for shell-form commands with heredocs: a command that is
 * only one heredoc runs the body (directly as /dev/pipes/NAME when it starts
 * with "#!", else as the shell's command string); otherwise the heredocs are
 * appended to the command line and the shell handles them. */
static char **
run_argv (scope *s, const dockerfile_instr *in)
{
  if (in->n_heredocs == 0)
    return shell_argv (s->shell, in->args[0]);
  const char *a = in->args[0];
  if (in->n_heredocs == 1 && strncmp (a, "<<", 2) == 0 && strpbrk (a, " \t") == NULL)
    {
      const dockerfile_heredoc *h = &in->heredocs[0];
      if (strncmp (h->body, "#!", 2) == 0)
        {
          char **v = NULL;
          autofree char *path = xasprintf ("/dev/pipes/%s", h->name);
          strv_push (&v, path);
          return v;
        }
      return shell_argv (s->shell, h->body);
    }
  autostrbuf strbuf sb = STRBUF_INIT;
  strbuf_adds (&sb, a);
  strbuf_addch (&sb, '\n');
  for (size_t i = 0; i < in->n_heredocs; i++)
    {
      strbuf_adds (&sb, in->heredocs[i].body);
      strbuf_adds (&sb, in->heredocs[i].name);
      strbuf_addch (&sb, '\n');
    }
  return shell_argv (s->shell, sb.buf);
}

static bool
in_list (const char *k, const char *const *list)
{
  for (; *list; list++)
    if (strcmp (k, *list) == 0)
      return true;
  return false;
}

const char *
plan_mount_opt (const plan_mount *m, const char *key)
{
  const char *v = NULL;
  for (size_t i = 0; i < m->n_opts; i++)
    if (strcmp (m->opts[i].key, key) == 0)
      v = m->opts[i].value;
  return v;
}

/* Parse one (already expanded) --mount value: comma-separated key[=value]. */
static int
parse_mount (builder *b, const dockerfile_instr *in, plan_step *st, const char *value, kiln_error **err)
{
  static const char *const k_bind[] = { "target", "source", "from", "readonly", NULL };
  static const char *const k_cache[] = { "target", "id", "sharing", "from", "source", "mode", "uid", "gid", "readonly", NULL };
  static const char *const k_tmpfs[] = { "target", "size", NULL };
  static const char *const k_secret[] = { "target", "id", "env", "required", "mode", "uid", "gid", NULL };
  static const char *const k_ssh[] = { "target", "id", "required", "mode", "uid", "gid", NULL };
  plan_mount m = { 0 };
  autofree char *copy = xstrdup (value);
  char *save = NULL;
  int ret = -1;
  for (char *tok = strtok_r (copy, ",", &save); tok; tok = strtok_r (NULL, ",", &save))
    {
      char *eq = strchr (tok, '=');
      if (eq)
        *eq = '\0';
      const char *k = tok;
      const char *v = eq ? eq + 1 : "true";
      for (char *c = tok; *c; c++)
        *c = (char) tolower ((unsigned char) *c);
      if (strcmp (k, "dst") == 0 || strcmp (k, "destination") == 0)
        k = "target";
      else if (strcmp (k, "src") == 0)
        k = "source";
      else if (strcmp (k, "ro") == 0)
        k = "readonly";
      else if (strcmp (k, "rw") == 0 || strcmp (k, "readwrite") == 0)
        {
          k = "readonly";
          v = strcasecmp (v, "false") == 0 ? "true" : "false";
        }
      if (strcmp (k, "type") == 0)
        {
          if (m.type)
            {
              dockerfile_error (b->p->df, in->line, err, "RUN --mount: type given twice in '%s'", value);
              goto out;
            }
          m.type = xstrdup (v);
          continue;
        }
      m.opts = xreallocarray (m.opts, m.n_opts + 1, sizeof (plan_kv));
      m.opts[m.n_opts].key = xstrdup (k);
      m.opts[m.n_opts].value = xstrdup (v);
      m.n_opts++;
    }
  if (m.type == NULL)
    m.type = xstrdup ("bind");
  const char *const *allowed = strcmp (m.type, "bind") == 0     ? k_bind
                               : strcmp (m.type, "cache") == 0  ? k_cache
                               : strcmp (m.type, "tmpfs") == 0  ? k_tmpfs
                               : strcmp (m.type, "secret") == 0 ? k_secret
                               : strcmp (m.type, "ssh") == 0    ? k_ssh
                                                                : NULL;
  if (allowed == NULL)
    {
      dockerfile_error (b->p->df, in->line, err, "RUN --mount: unsupported mount type '%s' (bind, cache, tmpfs, secret, ssh)",
                        m.type);
      goto out;
    }
  for (size_t i = 0; i < m.n_opts; i++)
    if (!in_list (m.opts[i].key, allowed))
      {
        dockerfile_error (b->p->df, in->line, err, "RUN --mount: unknown option '%s' for a %s mount", m.opts[i].key, m.type);
        goto out;
      }
  if (plan_mount_opt (&m, "target") == NULL && strcmp (m.type, "secret") != 0 && strcmp (m.type, "ssh") != 0)
    {
      dockerfile_error (b->p->df, in->line, err, "RUN --mount: a %s mount needs target=", m.type);
      goto out;
    }
  const char *sh = plan_mount_opt (&m, "sharing");
  if (sh && strcmp (sh, "shared") != 0 && strcmp (sh, "private") != 0 && strcmp (sh, "locked") != 0)
    {
      dockerfile_error (b->p->df, in->line, err, "RUN --mount: unsupported sharing value '%s' (shared, private, locked)", sh);
      goto out;
    }
  st->mounts = xreallocarray (st->mounts, st->n_mounts + 1, sizeof (plan_mount));
  st->mounts[st->n_mounts++] = m;
  memset (&m, 0, sizeof m);
  ret = 0;
out:
  free (m.type);
  for (size_t i = 0; i < m.n_opts; i++)
    {
      free (m.opts[i].key);
      free (m.opts[i].value);
    }
  free (m.opts);
  return ret;
}

static int
expand_flags (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err)
{
  for (size_t i = 0; i < in->n_flags; i++)
    {
      const char *n = in->flags[i].name;
      const char *v = in->flags[i].value;
      char *ev = NULL;
      bool expandable = strcmp (n, "from") == 0 || strcmp (n, "chown") == 0 || strcmp (n, "chmod") == 0
                        || strcmp (n, "checksum") == 0 || strcmp (n, "exclude") == 0 || strcmp (n, "mount") == 0;
      if (expandable && v)
        {
          if (sexpand (b, s, v, &ev, err) < 0)
            return -1;
        }
      else
        ev = v ? xstrdup (v) : NULL;
      st->flags = xreallocarray (st->flags, st->n_flags + 1, sizeof *st->flags);
      st->flags[st->n_flags].key = xstrdup (n);
      st->flags[st->n_flags].value = ev;
      st->n_flags++;
    }
  return 0;
}

static int
resolve_stage_ref (builder *b, size_t self, const char *ref, int *out)
{
  int idx = find_stage (b, ref, b->p->n_stages);
  if (idx >= 0)
    {
      *out = idx;
      return 1;
    }
  if (*ref && strspn (ref, "0123456789") == strlen (ref) && strlen (ref) < 9)
    {
      long n = strtol (ref, NULL, 10);
      if (n >= (long) b->p->n_stages)
        return -1;
      *out = (int) n;
      return 1;
    }
  (void) self;
  return 0;
}

/* Second pass: stage references (they may point at later stages). */
static int
link_refs (builder *b, kiln_error **err)
{
  plan *p = b->p;
  for (size_t si = 0; si < p->n_stages; si++)
    {
      plan_stage *st = &p->stages[si];
      if (st->base_stage >= 0)
        add_dep (st, st->base_stage);
      for (size_t k = 0; k < st->n_steps; k++)
        {
          plan_step *sp = &st->steps[k];
          if (sp->kind == DF_COPY)
            {
              const char *from = plan_step_flag (sp, "from");
              if (from)
                {
                  int idx;
                  int r = resolve_stage_ref (b, si, from, &idx);
                  if (r < 0)
                    return dockerfile_error (p->df, sp->instr->line, err, "COPY --from=%s: invalid stage index %s (there are %zu stages)",
                                             from, from, p->n_stages);
                  if (r > 0)
                    {
                      sp->from_stage = idx;
                      add_dep (st, idx);
                    }
                  else
                    sp->from_image = xstrdup (from);
                }
            }
          for (size_t f = 0; f < sp->n_mounts; f++)
            {
              const char *from = plan_mount_opt (&sp->mounts[f], "from");
              if (from == NULL)
                continue;
              int idx;
              int r = resolve_stage_ref (b, si, from, &idx);
              if (r < 0)
                return dockerfile_error (p->df, sp->instr->line, err, "RUN --mount from=%s: invalid stage index", from);
              if (r > 0)
                {
                  sp->mount_stages = xreallocarray (sp->mount_stages, sp->n_mount_stages + 1, sizeof (int));
                  sp->mount_stages[sp->n_mount_stages++] = idx;
                  add_dep (st, idx);
                }
            }
        }
    }
  return 0;
}

/* DFS colouring for cycles; then mark needed stages and waves. */
static int
visit (builder *b, int s, int *color, kiln_error **err)
{
  plan_stage *st = &b->p->stages[s];
  if (color[s] == 2)
    return 0;
  if (color[s] == 1)
    return kiln_error_make (err, 0, "%s: circular dependency detected on stage '%s'", b->p->df->path,
                            st->name ? st->name : "");
  color[s] = 1;
  int w = 0;
  for (size_t i = 0; i < st->n_deps; i++)
    {
      if (visit (b, st->deps[i], color, err) < 0)
        {
          if (color[s] == 1)
            {
              color[s] = 0;
            }
          return -1;
        }
      int dw = b->p->stages[st->deps[i]].wave + 1;
      if (dw > w)
        w = dw;
    }
  st->wave = w;
  color[s] = 2;
  return 0;
}

static int
cmp_int (const void *a, const void *c)
{
  return *(const int *) a - *(const int *) c;
}

static int
mark_needed (builder *b, kiln_error **err)
{
  plan *p = b->p;
  autofree int *color = xcalloc (p->n_stages, sizeof (int));
  for (size_t i = 0; i < p->n_stages; i++)
    {
      p->stages[i].wave = -1;
      if (p->stages[i].n_deps > 1)
        qsort (p->stages[i].deps, p->stages[i].n_deps, sizeof (int), cmp_int);
    }
  for (size_t i = 0; i < p->n_stages; i++)
    if (visit (b, (int) i, color, err) < 0)
      {
        /* name the stage for a self-cycle without a name */
        return -1;
      }
  /* needed set */
  autofree int *stack = xcalloc (p->n_stages + 1, sizeof (int));
  size_t sp = 0;
  if (b->o->skip_unused_stages)
    stack[sp++] = p->target;
  else
    for (int i = 0; i <= p->target; i++)
      stack[sp++] = i;
  while (sp > 0)
    {
      int s = stack[--sp];
      if (p->stages[s].needed)
        continue;
      p->stages[s].needed = true;
      for (size_t d = 0; d < p->stages[s].n_deps; d++)
        if (!p->stages[p->stages[s].deps[d]].needed)
          {
            stack = xreallocarray (stack, sp + 1 + p->n_stages, sizeof (int));
            stack[sp++] = p->stages[s].deps[d];
          }
    }
  for (size_t i = 0; i < p->n_stages; i++)
    if (!p->stages[i].needed)
      p->stages[i].wave = -1;
  return 0;
}

/* ADD, COPY, VOLUME, USER, WORKDIR, STOPSIGNAL: expand each word; a heredoc
 * source "<<NAME" is kept as written. */
static int
step_words (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err)
{
  st->args = xcalloc (1, sizeof (char *));
  size_t next_heredoc = 0;
  for (size_t i = 0; in->args[i]; i++)
    {
      /* Heredoc sources appear in the same order as the heredocs. */
      const char *heredoc_src = NULL;
      if (strncmp (in->args[i], "<<", 2) == 0 && next_heredoc < in->n_heredocs && in->args[i + 1] != NULL)
        heredoc_src = in->heredocs[next_heredoc++].name;
      autofree char *e = NULL;
      if (heredoc_src && in->args[i + 1] != NULL)
        e = xasprintf ("<<%s", heredoc_src);
      else if (sexpand (b, s, in->args[i], &e, err) < 0)
        return step_error (b, in, err);
      strv_push (&st->args, e);
    }
  if ((in->kind == DF_USER || in->kind == DF_WORKDIR) && st->args[0][0] == '\0')
    return dockerfile_error (b->p->df, in->line, err, "%s: value is empty after variable expansion", in->keyword);
  return 0;
}

/* EXPOSE: split each argument into words after expansion and normalise the
 * ports. */
static int
step_expose (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err)
{
  st->args = xcalloc (1, sizeof (char *));
  for (size_t i = 0; in->args[i]; i++)
    {
      autostrv char **w = NULL;
      expand_opts o = { .escape = b->p->df->escape, .lookup = scope_lookup, .ctx = s };
      if (expand_words (&o, in->args[i], &w, err) < 0)
        return step_error (b, in, err);
      for (size_t k = 0; w[k]; k++)
        {
          char *np = NULL;
          if (strchr (w[k], '$'))
            np = xstrdup (w[k]); /* unresolved variable: kept as is */
          else if (normalize_expose (w[k], &np) < 0)
            return dockerfile_error (b->p->df, in->line, err, "EXPOSE: invalid port '%s'", w[k]);
          strv_push (&st->args, np);
          free (np);
        }
    }
  return 0;
}

/* ENV, LABEL: expand the pairs; ENV then updates the scope. */
static int
step_pairs (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err)
{
  /* All pairs see the state before the instruction. */
  st->kvs = xcalloc (in->n_kvs, sizeof *st->kvs);
  for (size_t i = 0; i < in->n_kvs; i++)
    {
      if (sexpand (b, s, in->kvs[i].key, &st->kvs[i].key, err) < 0
          || sexpand (b, s, in->kvs[i].value, &st->kvs[i].value, err) < 0)
        {
          st->n_kvs = i + 1;
          return step_error (b, in, err);
        }
      st->n_kvs = i + 1;
      if (st->kvs[i].key[0] == '\0')
        return dockerfile_error (b->p->df, in->line, err, "%s names can not be blank", in->keyword);
    }
  if (in->kind == DF_ENV)
    for (size_t i = 0; i < st->n_kvs; i++)
      expand_vars_set (&s->env, st->kvs[i].key, st->kvs[i].value);
  return 0;
}

/* ARG: expand every name and default first, then resolve them in order. */
static int
step_arg (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err)
{
  st->kvs = xcalloc (in->n_kvs, sizeof *st->kvs);
  autofree char **defs = xcalloc (in->n_kvs + 1, sizeof (char *));
  autofree char **keys = xcalloc (in->n_kvs + 1, sizeof (char *));
  int rc = 0;
  for (size_t i = 0; i < in->n_kvs && rc == 0; i++)
    {
      if (sexpand (b, s, in->kvs[i].key, &keys[i], err) < 0
          || (in->kvs[i].value && sexpand (b, s, in->kvs[i].value, &defs[i], err) < 0))
        rc = -1;
    }
  for (size_t i = 0; i < in->n_kvs && rc == 0; i++)
    {
      resolve_arg (b, s, keys[i], defs[i], true, &st->kvs[i]);
      st->n_kvs = i + 1;
    }
  for (size_t i = 0; i < in->n_kvs; i++)
    {
      free (defs[i]);
      free (keys[i]);
    }
  if (rc < 0)
    return step_error (b, in, err);
  return 0;
}

/* HEALTHCHECK --retries is a count, the other flags are durations. */
static int
check_healthcheck_flags (builder *b, const dockerfile_instr *in, const plan_step *st, kiln_error **err)
{
  for (size_t i = 0; i < st->n_flags; i++)
    {
      const char *v = st->flags[i].value;
      if (strcmp (st->flags[i].key, "retries") == 0)
        {
          if (*v == '\0' || strspn (v, "0123456789") != strlen (v) || strlen (v) > 9)
            return dockerfile_error (b->p->df, in->line, err,
                                     "HEALTHCHECK: --retries must be a non-negative integer, not '%s'", v);
        }
      else if (!valid_duration (v))
        return dockerfile_error (b->p->df, in->line, err, "HEALTHCHECK: --%s: invalid duration '%s'",
                                 st->flags[i].key, v);
    }
  return 0;
}

/* The build-time environment of a RUN: the ARGs in scope that ENV does not
 * shadow, then the proxy build-args no ARG declared. */
static void
run_build_env (builder *b, scope *s, plan_step *st)
{
  st->build_env = xcalloc (1, sizeof (char *));
  for (size_t i = 0; i < s->args.n; i++)
    if (s->args.values[i] && expand_vars_find (&s->env, s->args.keys[i], strlen (s->args.keys[i])) < 0)
      {
        autofree char *kv = xasprintf ("%s=%s", s->args.keys[i], s->args.values[i]);
        strv_push (&st->build_env, kv);
      }
  for (size_t i = 0; i < b->build_args.n; i++)
    if (is_proxy_arg (b->build_args.keys[i]) && b->build_args.values[i]
        && expand_vars_find (&s->args, b->build_args.keys[i], strlen (b->build_args.keys[i])) < 0)
      {
        autofree char *kv = xasprintf ("%s=%s", b->build_args.keys[i], b->build_args.values[i]);
        strv_push (&st->build_env, kv);
      }
}

/* RUN --network, --security and --mount. */
static int
check_run_flags (builder *b, const dockerfile_instr *in, plan_step *st, kiln_error **err)
{
  const char *net = plan_step_flag (st, "network");
  if (net && strcmp (net, "default") != 0 && strcmp (net, "none") != 0 && strcmp (net, "host") != 0)
    return dockerfile_error (b->p->df, in->line, err, "RUN --network: unsupported value '%s' (default, none, host)", net);
  const char *sec = plan_step_flag (st, "security");
  if (sec && strcmp (sec, "sandbox") != 0 && strcmp (sec, "insecure") != 0)
    return dockerfile_error (b->p->df, in->line, err, "RUN --security: unsupported value '%s' (sandbox, insecure)", sec);
  for (size_t i = 0; i < st->n_flags; i++)
    if (strcmp (st->flags[i].key, "mount") == 0 && parse_mount (b, in, st, st->flags[i].value, err) < 0)
      return -1;
  return 0;
}

/* RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER, ONBUILD: the
 * arguments are kept unexpanded (the shell does that at run time). */
static int
step_verbatim (builder *b, scope *s, plan_stage *stg, const dockerfile_instr *in, plan_step *st, kiln_error **err)
{
  st->args = strv_dup (in->args);
  if (in->kind == DF_SHELL)
    {
      strv_free (s->shell);
      s->shell = strv_dup (in->args);
    }
  if (in->kind == DF_RUN || in->kind == DF_CMD || in->kind == DF_ENTRYPOINT
      || (in->kind == DF_HEALTHCHECK && in->args[0]))
    st->argv = in->json ? strv_dup (in->args) : run_argv (s, in);
  if (in->kind == DF_ONBUILD)
    strv_push (&stg->onbuild, in->args[0]);
  if (in->kind == DF_HEALTHCHECK && check_healthcheck_flags (b, in, st, err) < 0)
    return -1;
  if (in->kind == DF_RUN)
    {
      run_build_env (b, s, st);
      return check_run_flags (b, in, st, err);
    }
  return 0;
}

/* COPY/ADD --chmod, --checksum and --chown, when no variable is left in them. */
static int
check_copy_flags (builder *b, const dockerfile_instr *in, const plan_step *st, kiln_error **err)
{
  const char *cm = plan_step_flag (st, "chmod");
  if (cm && !strchr (cm, '$') && !valid_chmod (cm))
    return dockerfile_error (b->p->df, in->line, err, "%s --chmod: invalid mode '%s' (octal like 0755 or symbolic like u+x)",
                             in->keyword, cm);
  const char *ck = plan_step_flag (st, "checksum");
  if (ck && !strchr (ck, '$') && strncmp (ck, "sha256:", 7) != 0 && strncmp (ck, "sha384:", 7) != 0
      && strncmp (ck, "sha512:", 7) != 0)
    return dockerfile_error (b->p->df, in->line, err, "ADD --checksum: unsupported digest '%s'", ck);
  const char *ch = plan_step_flag (st, "chown");
  if (ch && *ch == '\0')
    return dockerfile_error (b->p->df, in->line, err, "%s --chown: empty value", in->keyword);
  return 0;
}

/* Heredoc bodies: expanded now unless quoted or fed to RUN (whose shell
 * expands them). */
static int
step_heredocs (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err)
{
  st->heredocs = xcalloc (in->n_heredocs, sizeof *st->heredocs);
  for (size_t h = 0; h < in->n_heredocs; h++)
    {
      const dockerfile_heredoc *hd = &in->heredocs[h];
      plan_heredoc *ph = &st->heredocs[h];
      st->n_heredocs = h + 1;
      ph->name = xstrdup (hd->name);
      ph->expand = hd->expand;
      ph->chomp = hd->chomp;
      if (hd->expand && in->kind != DF_RUN)
        {
          /* Quotes in the body are content, not syntax. */
          expand_opts o = { .escape = b->p->df->escape, .lookup = scope_lookup, .ctx = s, .raw_quotes = true };
          if (expand_word (&o, hd->body, &ph->body, err) < 0)
            return step_error (b, in, err);
        }
      else
        ph->body = xstrdup (hd->body);
    }
  return 0;
}

static int
build_step (builder *b, scope *s, plan_stage *stg, const dockerfile_instr *in, plan_step *st, kiln_error **err)
{
  st->instr = in;
  st->kind = in->kind;
  st->json = in->json;
  st->from_stage = -1;
  strv_free (s->unresolved);
  s->unresolved = NULL;
  if (expand_flags (b, s, in, st, err) < 0)
    return step_error (b, in, err);
  int r = 0;
  switch (in->kind)
    {
    case DF_ADD:
    case DF_COPY:
    case DF_VOLUME:
    case DF_USER:
    case DF_WORKDIR:
    case DF_STOPSIGNAL:
      r = step_words (b, s, in, st, err);
      break;
    case DF_EXPOSE:
      r = step_expose (b, s, in, st, err);
      break;
    case DF_ENV:
    case DF_LABEL:
      r = step_pairs (b, s, in, st, err);
      break;
    case DF_ARG:
      r = step_arg (b, s, in, st, err);
      break;
    case DF_RUN:
    case DF_CMD:
    case DF_ENTRYPOINT:
    case DF_SHELL:
    case DF_HEALTHCHECK:
    case DF_MAINTAINER:
    case DF_ONBUILD:
      r = step_verbatim (b, s, stg, in, st, err);
      break;
    case DF_FROM:
    case DF_KIND_COUNT:
      return dockerfile_error (b->p->df, in->line, err, "internal: unexpected instruction");
    }
  if (r < 0)
    return r;
  if ((in->kind == DF_COPY || in->kind == DF_ADD) && (r = check_copy_flags (b, in, st, err)) < 0)
    return r;
  if (in->n_heredocs && (r = step_heredocs (b, s, in, st, err)) < 0)
    return r;
  st->unresolved = steal_pointer (&s->unresolved);
  return 0;
}

static void
step_free (plan_step *st)
{
  strv_free (st->args);
  strv_free (st->argv);
  for (size_t i = 0; i < st->n_kvs; i++)
    {
      free (st->kvs[i].key);
      free (st->kvs[i].value);
    }
  free (st->kvs);
  for (size_t i = 0; i < st->n_flags; i++)
    {
      free (st->flags[i].key);
      free (st->flags[i].value);
    }
  free (st->flags);
  for (size_t i = 0; i < st->n_heredocs; i++)
    {
      free (st->heredocs[i].name);
      free (st->heredocs[i].body);
    }
  free (st->heredocs);
  free (st->from_image);
  free (st->mount_stages);
  for (size_t i = 0; i < st->n_mounts; i++)
    {
      free (st->mounts[i].type);
      for (size_t k = 0; k < st->mounts[i].n_opts; k++)
        {
          free (st->mounts[i].opts[k].key);
          free (st->mounts[i].opts[k].value);
        }
      free (st->mounts[i].opts);
    }
  free (st->mounts);
  strv_free (st->build_env);
  strv_free (st->unresolved);
}

void
plan_free (plan *p)
{
  if (p == NULL)
    return;
  for (size_t i = 0; i < p->n_stages; i++)
    {
      plan_stage *s = &p->stages[i];
      for (size_t k = 0; k < s->n_steps; k++)
        step_free (&s->steps[k]);
      free (s->steps);
      free (s->name);
      free (s->base);
      free (s->platform);
      free (s->deps);
      strv_free (s->onbuild);
    }
  free (p->stages);
  for (size_t i = 0; i < p->n_global_args; i++)
    {
      free (p->global_args[i].key);
      free (p->global_args[i].value);
    }
  free (p->global_args);
  free (p->build_platform);
  free (p->target_platform);
  strv_free (p->warnings);
  dockerfile_free (p->df);
  free (p);
}

const char *
plan_step_flag (const plan_step *s, const char *name)
{
  const char *v = NULL;
  for (size_t i = 0; i < s->n_flags; i++)
    if (strcmp (s->flags[i].key, name) == 0)
      v = s->flags[i].value ? s->flags[i].value : "true";
  return v;
}

static int
env_from_image (builder *b, plan_stage *st, scope *s, kiln_error **err)
{
  if (st->scratch)
    {
      s->env_known = true;
      expand_vars_set (&s->env, "PATH", SANDBOX_DEFAULT_PATH);
      return 0;
    }
  if (b->o->image_env == NULL)
    {
      s->env_known = false;
      return 0;
    }
  autostrv char **env = NULL;
  if (b->o->image_env (b->o->image_env_ctx, st->base, st->platform, &env, err) < 0)
    return kiln_error_wrap (err, "reading the configuration of '%s'", st->base);
  for (size_t i = 0; env && env[i]; i++)
    {
      autofree char *k = xstrdup (env[i]);
      char *eq = strchr (k, '=');
      if (eq)
        *eq = '\0';
      expand_vars_set (&s->env, k, eq ? eq + 1 : "");
    }
  s->env_known = true;
  return 0;
}

/* Record the ARGs of a global ARG step in b->globals and p->global_args. */
static void
add_global_args (builder *b, const plan_step *tmp)
{
  plan *p = b->p;
  for (size_t k = 0; k < tmp->n_kvs; k++)
    {
      expand_vars_set (&b->globals, tmp->kvs[k].key, tmp->kvs[k].value);
      p->global_args = xreallocarray (p->global_args, p->n_global_args + 1, sizeof (plan_kv));
      p->global_args[p->n_global_args].key = xstrdup (tmp->kvs[k].key);
      p->global_args[p->n_global_args].value = tmp->kvs[k].value ? xstrdup (tmp->kvs[k].value) : NULL;
      p->n_global_args++;
    }
}

/* The instructions before the first FROM (only ARG is allowed there), in
 * scope G; *NEXT is the index of the first FROM. */
static int
build_global_args (builder *b, scope *g, size_t *next, kiln_error **err)
{
  dockerfile *df = b->p->df;
  size_t i = 0;
  for (; i < df->n_instrs && df->instrs[i].kind != DF_FROM; i++)
    {
      const dockerfile_instr *in = &df->instrs[i];
      if (in->kind != DF_ARG)
        return dockerfile_error (df, in->line, err, "%s before the first FROM: only ARG is allowed here", in->keyword);
      plan_step tmp = { 0 };
      if (build_step (b, g, NULL, in, &tmp, err) < 0)
        {
          step_free (&tmp);
          return -1;
        }
      add_global_args (b, &tmp);
      step_free (&tmp);
    }
  if (i == df->n_instrs)
    return kiln_error_make (err, 0, "%s: no build stage in the Dockerfile (it needs a FROM instruction)", df->path);
  *next = i;
  return 0;
}

/* FROM ... [AS name]: the base (expanded with the global ARGs in G) and the
 * stage name, which must be new. */
static int
stage_base_and_name (builder *b, scope *g, const dockerfile_instr *in, plan_stage *cur, kiln_error **err)
{
  dockerfile *df = b->p->df;
  if (sexpand (b, g, in->args[0], &cur->base, err) < 0)
    return step_error (b, in, err);
  if (cur->base[0] == '\0')
    return dockerfile_error (df, in->line, err, "FROM: base name '%s' is empty after variable expansion", in->args[0]);
  if (in->args[1])
    {
      cur->name = xstrdup (in->args[2]);
      for (char *c = cur->name; *c; c++)
        *c = (char) tolower ((unsigned char) *c);
      if (find_stage (b, cur->name, b->p->n_stages - 1) >= 0)
        return dockerfile_error (df, in->line, err, "duplicate stage name '%s'", cur->name);
    }
  return 0;
}

/* FROM --platform, or the target platform. */
static int
stage_platform (builder *b, scope *g, const dockerfile_instr *in, plan_stage *cur, kiln_error **err)
{
  const char *pf = dockerfile_instr_flag (in, "platform", NULL);
  if (pf == NULL)
    {
      cur->platform = xstrdup (b->p->target_platform);
      return 0;
    }
  autofree char *e = NULL;
  if (sexpand (b, g, pf, &e, err) < 0)
    return step_error (b, in, err);
  if (normalize_platform (e, &cur->platform, err) < 0)
    return step_error (b, in, err);
  cur->platform_explicit = true;
  return 0;
}

/* The starting scope SC of stage CUR: a copy of the scope of the stage it
 * builds on (whose platform it takes), or /bin/sh -c and the base image's
 * ENV. */
static int
stage_scope (builder *b, scope *stage_scopes, const dockerfile_instr *in, plan_stage *cur, scope *sc,
             kiln_error **err)
{
  plan *p = b->p;
  int bs = find_stage (b, cur->base, p->n_stages - 1);
  sc->shell = xcalloc (1, sizeof (char *));
  if (bs >= 0)
    {
      cur->base_stage = bs;
      scope *ps = &stage_scopes[bs];
      expand_vars_copy (&sc->env, &ps->env);
      sc->env_known = ps->env_known;
      strv_free (sc->shell);
      sc->shell = strv_dup (ps->shell);
      free (cur->platform);
      cur->platform = xstrdup (p->stages[bs].platform);
      return 0;
    }
  cur->scratch = strcasecmp (cur->base, "scratch") == 0;
  strv_push (&sc->shell, "/bin/sh");
  strv_push (&sc->shell, "-c");
  if (env_from_image (b, cur, sc, err) < 0)
    return step_error (b, in, err);
  return 0;
}

/* FROM: open a new stage; its scope is stage_scopes[its index]. */
static int
begin_stage (builder *b, scope *g, scope *stage_scopes, const dockerfile_instr *in, kiln_error **err)
{
  plan *p = b->p;
  p->stages = xreallocarray (p->stages, p->n_stages + 1, sizeof (plan_stage));
  plan_stage *cur = &p->stages[p->n_stages];
  memset (cur, 0, sizeof *cur);
  cur->index = (int) p->n_stages;
  cur->base_stage = -1;
  p->n_stages++;
  scope *sc = &stage_scopes[cur->index];
  if (stage_base_and_name (b, g, in, cur, err) < 0 || stage_platform (b, g, in, cur, err) < 0
      || stage_scope (b, stage_scopes, in, cur, sc, err) < 0)
    return -1;
  return 0;
}

static int
build_all (builder *b, kiln_error **err)
{
  plan *p = b->p;
  dockerfile *df = p->df;
  scope g = { 0 };
  g.env_known = true;
  expand_vars_copy (&g.args, &b->auto_args);
  size_t i = 0;
  int ret = -1;
  /* One scope per stage, indexed like p->stages. */
  scope *stage_scopes = xcalloc (df->n_instrs + 1, sizeof (scope));
  if (build_global_args (b, &g, &i, err) < 0)
    goto out;
  for (; i < df->n_instrs; i++)
    {
      const dockerfile_instr *in = &df->instrs[i];
      if (in->kind == DF_FROM)
        {
          if (begin_stage (b, &g, stage_scopes, in, err) < 0)
            goto out;
          continue;
        }
      plan_stage *cur = &p->stages[p->n_stages - 1];
      cur->steps = xreallocarray (cur->steps, cur->n_steps + 1, sizeof (plan_step));
      plan_step *st = &cur->steps[cur->n_steps++];
      memset (st, 0, sizeof *st);
      if (build_step (b, &stage_scopes[p->n_stages - 1], cur, in, st, err) < 0)
        goto out;
    }
  ret = 0;
out:
  for (size_t k = 0; k < p->n_stages; k++)
    scope_free (&stage_scopes[k]);
  free (stage_scopes);
  scope_free (&g);
  return ret;
}

int
plan_build (dockerfile *df, const plan_options *o, plan **out, kiln_error **err)
{
  plan *p = xzalloc (sizeof *p);
  p->df = df;
  builder b = { .p = p, .o = o };
  expand_vars_init (&b.build_args);
  expand_vars_init (&b.globals);
  expand_vars_init (&b.auto_args);
  int ret = -1;
  p->build_platform = plan_host_platform ();
  if (o->platform && *o->platform)
    {
      if (strchr (o->platform, ','))
        {
          kiln_error_make (err, 0, "--platform '%s': multi-platform builds are not supported yet", o->platform);
          goto out;
        }
      if (normalize_platform (o->platform, &p->target_platform, err) < 0)
        goto out;
    }
  else
    p->target_platform = xstrdup (p->build_platform);
  platform_args (&b.auto_args, "BUILD", p->build_platform);
  platform_args (&b.auto_args, "TARGET", p->target_platform);
  for (size_t i = 0; o->build_args && o->build_args[i]; i++)
    {
      autofree char *k = xstrdup (o->build_args[i]);
      char *eq = strchr (k, '=');
      if (eq)
        *eq = '\0';
      if (*k == '\0')
        {
          kiln_error_make (err, 0, "--build-arg '%s': empty name", o->build_args[i]);
          goto out;
        }
      const char *v = eq ? eq + 1 : getenv (k);
      if (v)
        expand_vars_set (&b.build_args, k, v);
    }
  if (build_all (&b, err) < 0)
    goto out;
  p->target = (int) p->n_stages - 1;
  if (o->target)
    {
      p->target = find_stage (&b, o->target, p->n_stages);
      if (p->target < 0)
        {
          kiln_error_make (err, 0, "target stage '%s' could not be found in '%s'", o->target, df->path);
          goto out;
        }
    }
  if (link_refs (&b, err) < 0 || mark_needed (&b, err) < 0)
    goto out;
  for (size_t i = 0; i < b.build_args.n; i++)
    {
      const char *k = b.build_args.keys[i];
      bool used = is_proxy_arg (k);
      for (size_t c = 0; !used && b.consumed && b.consumed[c]; c++)
        used = strcmp (b.consumed[c], k) == 0;
      if (!used)
        {
          autofree char *w = xasprintf ("build-arg '%s' was not consumed by any ARG instruction", k);
          strv_push (&p->warnings, w);
        }
    }
  for (size_t i = 0; df->warnings && df->warnings[i]; i++)
    strv_push (&p->warnings, df->warnings[i]);
  ret = 0;
out:
  expand_vars_free (&b.build_args);
  expand_vars_free (&b.globals);
  expand_vars_free (&b.auto_args);
  strv_free (b.consumed);
  if (ret < 0)
    {
      plan_free (p);
      return -1;
    }
  *out = p;
  return 0;
}
