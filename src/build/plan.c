/* plan.c - resolve a parsed Dockerfile into a build plan; see plan.h. The
 * per-instruction steps are in plan_step.c (see plan_internal.h). */
#include "build/plan.h"
#include "build/plan_internal.h"
#include "sandbox/sandbox.h"
#include "build/expand.h"
#include "util/alloc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

static const char *const proxy_args[] = {
  "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
  "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
};

bool
plan_is_proxy_arg (const char *k)
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

int
plan_platform_list (const char *arg, char ***out, kiln_error **err)
{
  autostrv char **list = NULL;
  const char *p = arg;
  for (;;)
    {
      size_t n = strcspn (p, ",");
      autofree char *one = xstrndup (p, n);
      autofree char *norm = NULL;
      if (normalize_platform (one, &norm, err) < 0)
        return kiln_error_wrap (err, "--platform '%s'", arg);
      for (char **q = list; q && *q; q++)
        if (strcmp (*q, norm) == 0)
          return kiln_error_make (err, 0, "--platform '%s': platform '%s' is listed twice", arg, norm);
      strv_push (&list, norm);
      if (!p[n])
        break;
      p += n + 1;
    }
  *out = steal_pointer (&list);
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

expand_lookup_result
plan_scope_lookup (void *ctx, const char *name, size_t n, const char **value)
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

int
plan_sexpand (builder *b, scope *s, const char *in, char **out, kiln_error **err)
{
  expand_opts o = { .escape = b->p->df->escape, .lookup = plan_scope_lookup, .ctx = s };
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

/* Re-issue an expansion error as "FILE:LINE: KEYWORD: why" plus the line;
 * the cause's errno becomes text ("...: No space left on device"), since
 * the new error has none. */
int
plan_step_error (builder *b, const dockerfile_instr *in, kiln_error **err)
{
  if (err == NULL || *err == NULL)
    return dockerfile_error (b->p->df, in->line, err, "%s: failed", in->keyword);
  autofree char *msg = (*err)->msg ? kiln_error_string (*err) : xstrdup ("");
  kiln_error_clear (err);
  return dockerfile_error (b->p->df, in->line, err, "%s: %s", in->keyword, msg);
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
      if (plan_sexpand (b, s, in->kvs[i].key, &keys[i], err) < 0
          || (in->kvs[i].value && plan_sexpand (b, s, in->kvs[i].value, &defs[i], err) < 0))
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
    return plan_step_error (b, in, err);
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
  if (plan_expand_flags (b, s, in, st, err) < 0)
    return plan_step_error (b, in, err);
  int r = 0;
  switch (in->kind)
    {
    case DF_ADD:
    case DF_COPY:
    case DF_VOLUME:
    case DF_USER:
    case DF_WORKDIR:
    case DF_STOPSIGNAL:
      r = plan_step_words (b, s, in, st, err);
      break;
    case DF_EXPOSE:
      r = plan_step_expose (b, s, in, st, err);
      break;
    case DF_ENV:
    case DF_LABEL:
      r = plan_step_pairs (b, s, in, st, err);
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
      r = plan_step_verbatim (b, s, stg, in, st, err);
      break;
    case DF_FROM:
    case DF_KIND_COUNT:
      return dockerfile_error (b->p->df, in->line, err, "internal: unexpected instruction");
    }
  if (r < 0)
    return r;
  if ((in->kind == DF_COPY || in->kind == DF_ADD) && (r = plan_check_copy_flags (b, in, st, err)) < 0)
    return r;
  if (in->n_heredocs && (r = plan_step_heredocs (b, s, in, st, err)) < 0)
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
  if (plan_sexpand (b, g, in->args[0], &cur->base, err) < 0)
    return plan_step_error (b, in, err);
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
  if (plan_sexpand (b, g, pf, &e, err) < 0)
    return plan_step_error (b, in, err);
  if (normalize_platform (e, &cur->platform, err) < 0)
    return plan_step_error (b, in, err);
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
    return plan_step_error (b, in, err);
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
          /* the caller builds each platform of a list on its own (plan_platform_list) */
          kiln_error_make (err, 0, "--platform '%s': plan one platform at a time", o->platform);
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
      bool used = plan_is_proxy_arg (k);
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
