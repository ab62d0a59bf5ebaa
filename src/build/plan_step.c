/* plan_step.c - the steps of a plan, one function per group of
 * instructions, and their checks (modes, ports, durations, RUN flags and
 * mounts, COPY/ADD flags, heredoc bodies); see plan.h and plan_internal.h. */
#include "build/plan.h"
#include "build/plan_internal.h"
#include "build/expand.h"
#include "util/alloc.h"
#include "util/strbuf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

int
plan_expand_flags (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err)
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
          if (plan_sexpand (b, s, v, &ev, err) < 0)
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

/* ADD, COPY, VOLUME, USER, WORKDIR, STOPSIGNAL: expand each word; a heredoc
 * source "<<NAME" is kept as written. */
int
plan_step_words (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err)
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
      else if (plan_sexpand (b, s, in->args[i], &e, err) < 0)
        return plan_step_error (b, in, err);
      strv_push (&st->args, e);
    }
  if ((in->kind == DF_USER || in->kind == DF_WORKDIR) && st->args[0][0] == '\0')
    return dockerfile_error (b->p->df, in->line, err, "%s: value is empty after variable expansion", in->keyword);
  return 0;
}

/* EXPOSE: split each argument into words after expansion and normalise the
 * ports. */
int
plan_step_expose (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err)
{
  st->args = xcalloc (1, sizeof (char *));
  for (size_t i = 0; in->args[i]; i++)
    {
      autostrv char **w = NULL;
      expand_opts o = { .escape = b->p->df->escape, .lookup = plan_scope_lookup, .ctx = s };
      if (expand_words (&o, in->args[i], &w, err) < 0)
        return plan_step_error (b, in, err);
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
int
plan_step_pairs (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err)
{
  /* All pairs see the state before the instruction. */
  st->kvs = xcalloc (in->n_kvs, sizeof *st->kvs);
  for (size_t i = 0; i < in->n_kvs; i++)
    {
      if (plan_sexpand (b, s, in->kvs[i].key, &st->kvs[i].key, err) < 0
          || plan_sexpand (b, s, in->kvs[i].value, &st->kvs[i].value, err) < 0)
        {
          st->n_kvs = i + 1;
          return plan_step_error (b, in, err);
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
    if (plan_is_proxy_arg (b->build_args.keys[i]) && b->build_args.values[i]
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
int
plan_step_verbatim (builder *b, scope *s, plan_stage *stg, const dockerfile_instr *in, plan_step *st, kiln_error **err)
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
int
plan_check_copy_flags (builder *b, const dockerfile_instr *in, const plan_step *st, kiln_error **err)
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
int
plan_step_heredocs (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err)
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
          expand_opts o = { .escape = b->p->df->escape, .lookup = plan_scope_lookup, .ctx = s, .raw_quotes = true };
          if (expand_word (&o, hd->body, &ph->body, err) < 0)
            return plan_step_error (b, in, err);
        }
      else
        ph->body = xstrdup (hd->body);
    }
  return 0;
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
