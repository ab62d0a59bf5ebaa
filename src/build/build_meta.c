/* build_meta.c - the steps that change the image config: ENV, LABEL,
 * EXPOSE, VOLUME, CMD, ENTRYPOINT, USER, SHELL, STOPSIGNAL, HEALTHCHECK,
 * ONBUILD, MAINTAINER, ARG, and WORKDIR and VOLUME (which also make their
 * directories),
 * and the text and path helpers the other steps share (see
 * build_internal.h). */
#include "build/build_internal.h"
#include "build/copy.h"
#include "build/rootfs.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/strbuf.h"
#include "util/units.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- metadata helpers ---- */

void
build_meta_env_set (char ***env, const char *key, const char *value)
{
  size_t kl = strlen (key);
  autofree char *kv = xasprintf ("%s=%s", key, value ? value : "");
  for (char **e = *env; e && *e; e++)
    if (strncmp (*e, key, kl) == 0 && (*e)[kl] == '=')
      {
        free (*e);
        *e = steal_pointer (&kv);
        return;
      }
  strv_push (env, kv);
}

static void
strv_add_unique (char ***v, const char *s)
{
  for (char **e = *v; e && *e; e++)
    if (strcmp (*e, s) == 0)
      return;
  strv_push (v, s);
}

char *
build_meta_one_line (const char *s)
{
  return build_meta_title (s, '\0');
}

/* escape followed by blanks up to the end of its line: a continuation. */
static bool
continuation_at (const char *s, char escape)
{
  if (escape == '\0' || *s != escape)
    return false;
  s++;
  while (*s == ' ' || *s == '\t' || *s == '\r')
    s++;
  return *s == '\n' || *s == '\0';
}

char *
build_meta_title (const char *s, char escape)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  bool space = false;
  for (; *s; s++)
    {
      if (continuation_at (s, escape))
        {
          space = sb.len > 0;
          continue;
        }
      if (*s == '\n' || *s == '\r' || *s == '\t' || *s == ' ')
        {
          space = sb.len > 0;
          continue;
        }
      if (space)
        strbuf_addch (&sb, ' ');
      space = false;
      strbuf_addch (&sb, *s);
    }
  return strbuf_detach (&sb, NULL);
}

static char *
healthcheck_json (const plan_step *s, kiln_error **err)
{
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_begin_object (w);
  json_writer_key (w, "Test");
  json_writer_begin_array (w);
  if (!s->args || !s->args[0])
    json_writer_string (w, "NONE");
  else if (s->json)
    {
      json_writer_string (w, "CMD");
      for (char **a = s->args; *a; a++)
        json_writer_string (w, *a);
    }
  else
    {
      json_writer_string (w, "CMD-SHELL");
      json_writer_string (w, s->args[0]);
    }
  json_writer_end_array (w);
  static const char *const durs[][2] = { { "interval", "Interval" }, { "timeout", "Timeout" },
                                         { "start-period", "StartPeriod" }, { "start-interval", "StartInterval" } };
  for (size_t i = 0; i < ARRAY_SIZE (durs); i++)
    {
      const char *v = plan_step_flag (s, durs[i][0]);
      int64_t ns;
      if (!v)
        continue;
      if (units_parse_duration (v, &ns, err) < 0)
        return NULL;
      json_writer_kv_int (w, durs[i][1], ns);
    }
  const char *retries = plan_step_flag (s, "retries");
  if (retries)
    json_writer_kv_int (w, "Retries", strtoll (retries, NULL, 10));
  json_writer_end_object (w);
  char *out = NULL;
  size_t len;
  if (json_writer_finish (w, &out, &len, err) < 0)
    return NULL;
  return out;
}

char *
build_meta_resolve_dir (const char *workdir, const char *path)
{
  if (path[0] == '/')
    return xstrdup (path);
  const char *wd = workdir && *workdir ? workdir : "/";
  size_t l = strlen (wd);
  return xasprintf ("%s%s%s", wd, l && wd[l - 1] == '/' ? "" : "/", path);
}

char *
build_meta_clean_abs (const char *p)
{
  autofree char *rel = NULL;
  fs_path_clean (p, true, &rel);
  return xasprintf ("/%s", rel);
}

/* ---- WORKDIR and VOLUME ---- */

/* Make the missing directories dirs (absolute, clean) in one layer, owned
 * by the current USER (BuildKit's WORKDIR; kiln's VOLUME too), with the
 * history line created_by. Symlinks in a path resolve inside the image
 * (/var/run/x makes /run/x); skip_files: a path that is there and is not a
 * directory is left alone (VOLUME), else an error (WORKDIR). */
static int
mkdirs_as_user (build_exec *b, stage_state *st, char **dirs, bool skip_files, const char *created_by,
                kiln_error **err)
{
  /* lazy layers: the step's text and the stage's key say it all */
  char key[DIGEST_STRING_SIZE] = "";
  if (build_key_lazy (st))
    {
      int hit = build_key_lazy_finish (st, NULL, 0, key, err);
      if (hit == 0)
        hit = build_key_lookup (b, st, key, false, created_by, err);
      if (hit != 0)
        return hit < 0 ? -1 : 0;
    }
  overlay_lower *view = NULL;
  if (build_from_stage_lower (b, st, &view, err) < 0)
    return -1;
  copy_changes ch = { 0 };
  uid_t uid = 0;
  gid_t gid = 0;
  int r = 0;
  if (st->spec.user && *st->spec.user
      && rootfs_resolve_user (view, st->spec.user, &uid, &gid, NULL, NULL, NULL, err) < 0)
    r = kiln_error_wrap (err, "USER");
  for (char **d = dirs; r >= 0 && d && *d; d++)
    {
      autofree char *resolved = NULL;
      int rr = rootfs_resolve_in_root (view, *d, &resolved);
      if (rr < 0)
        {
          r = kiln_error_make (err, -rr, "resolving '%s' in the image", *d);
          break;
        }
      autofree char *abs = xasprintf ("/%s", resolved);
      rootfs_entry e;
      if (skip_files && *resolved && rootfs_stat (view, resolved, &e) == 0)
        {
          bool dir = S_ISDIR (e.attr.mode);
          rootfs_entry_clear (&e);
          if (!dir)
            continue;
        }
      r = copy_mkdir (view, abs, uid, gid, created_time (b), &ch, err);
    }
  overlay_lower_free (view);
  if (r >= 0)
    r = build_exec_commit_layer (b, st, ch.v, ch.n, created_by, *key ? key : NULL, false, err);
  copy_changes_free (&ch);
  return r;
}

int
build_meta_workdir (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err)
{
  autofree char *dir = build_meta_resolve_dir (st->spec.working_dir, s->args[0]);
  autofree char *clean = build_meta_clean_abs (dir);
  free (st->spec.working_dir);
  st->spec.working_dir = xstrdup (clean);
  autofree char *created_by = xasprintf ("WORKDIR %s", clean);
  char *dirs[] = { clean, NULL };
  return mkdirs_as_user (b, st, dirs, false, created_by, err);
}

/* VOLUME records its paths and makes the missing directories, so a later
 * step can write there (Docker's classic builder and buildah create them;
 * what is written below them stays in the image, as in BuildKit). */
int
build_meta_volume (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err)
{
  autostrv char **dirs = NULL;
  for (char **a = s->args; a && *a; a++)
    {
      strv_add_unique (&st->spec.volumes, *a);
      autofree char *dir = build_meta_resolve_dir (st->spec.working_dir, *a);
      autofree char *clean = build_meta_clean_abs (dir);
      strv_push (&dirs, clean);
    }
  autofree char *created_by = build_meta_one_line (s->instr->original);
  if (mkdirs_as_user (b, st, dirs, true, created_by, err) < 0)
    return kiln_error_wrap (err, "VOLUME");
  return 0;
}

/* ---- the other metadata steps ---- */

static char *
json_argv_text (char **v)
{
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_begin_array (w);
  for (char **a = v; a && *a; a++)
    json_writer_string (w, *a);
  json_writer_end_array (w);
  char *out = NULL;
  size_t len;
  autoerror kiln_error *e = NULL;
  if (json_writer_finish (w, &out, &len, &e) < 0)
    return xstrdup ("[]");
  return out;
}

int
build_meta_step (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err)
{
  image_spec *sp = &st->spec;
  autofree char *text = build_meta_one_line (s->instr->original);
  switch (s->kind)
    {
    case DF_ENV:
      for (size_t i = 0; i < s->n_kvs; i++)
        build_meta_env_set (&sp->env, s->kvs[i].key, s->kvs[i].value);
      break;
    case DF_LABEL:
      for (size_t i = 0; i < s->n_kvs; i++)
        build_meta_env_set (&sp->labels, s->kvs[i].key, s->kvs[i].value);
      break;
    case DF_EXPOSE:
      for (char **a = s->args; a && *a; a++)
        strv_add_unique (&sp->exposed_ports, *a);
      break;
    case DF_CMD:
      strv_free (sp->cmd);
      sp->cmd = strv_dup (s->argv);
      st->cmd_set = true;
      break;
    case DF_ENTRYPOINT:
      strv_free (sp->entrypoint);
      sp->entrypoint = strv_dup (s->argv);
      if (!st->cmd_set)
        {
          strv_free (sp->cmd);
          sp->cmd = NULL;
        }
      break;
    case DF_USER:
      free (sp->user);
      sp->user = xstrdup (s->args[0]);
      break;
    case DF_SHELL:
      strv_free (sp->shell);
      sp->shell = strv_dup (s->args);
      break;
    case DF_STOPSIGNAL:
      free (sp->stop_signal);
      sp->stop_signal = xstrdup (s->args[0]);
      break;
    case DF_HEALTHCHECK:
      {
        char *j = healthcheck_json (s, err);
        if (!j)
          return -1;
        free (sp->healthcheck_json);
        sp->healthcheck_json = j;
        break;
      }
    case DF_ONBUILD:
      strv_push (&sp->onbuild, s->args[0]);
      break;
    case DF_MAINTAINER:
      free (sp->author);
      sp->author = xstrdup (s->args[0]);
      break;
    case DF_ARG:
      return 0; /* no history entry (BuildKit) */
    case DF_ADD:
    case DF_COPY:
    case DF_RUN:
    case DF_WORKDIR:
    case DF_VOLUME:
    case DF_FROM:
    case DF_KIND_COUNT:
      return kiln_error_make (err, EINVAL, "internal: %s is not a metadata instruction", dockerfile_kind_name (s->kind));
    }
  if (s->kind == DF_CMD || s->kind == DF_ENTRYPOINT)
    {
      autofree char *j = json_argv_text (s->argv);
      autofree char *cb = xasprintf ("%s %s", s->kind == DF_CMD ? "CMD" : "ENTRYPOINT", j);
      image_spec_add_history (sp, created_time (b), cb, NULL, true);
    }
  else
    image_spec_add_history (sp, created_time (b), text, NULL, true);
  return 0;
}
