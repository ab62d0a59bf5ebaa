/* plan_json.c - render a plan as JSON with yajl_gen. */
#include "build/plan_json.h"
#include "util/alloc.h"

#include <string.h>
#include <yajl/yajl_gen.h>

static void
str (yajl_gen g, const char *s)
{
  if (s == NULL)
    yajl_gen_null (g);
  else
    yajl_gen_string (g, (const unsigned char *) s, strlen (s));
}

static void
key (yajl_gen g, const char *k)
{
  str (g, k);
}

static void
strv (yajl_gen g, char *const *v)
{
  yajl_gen_array_open (g);
  for (size_t i = 0; v && v[i]; i++)
    str (g, v[i]);
  yajl_gen_array_close (g);
}

static void
kvs (yajl_gen g, const plan_kv *kv, size_t n)
{
  yajl_gen_array_open (g);
  for (size_t i = 0; i < n; i++)
    {
      yajl_gen_map_open (g);
      key (g, "key");
      str (g, kv[i].key);
      key (g, "value");
      str (g, kv[i].value);
      yajl_gen_map_close (g);
    }
  yajl_gen_array_close (g);
}

static void
step (yajl_gen g, const plan_step *s)
{
  yajl_gen_map_open (g);
  key (g, "line");
  yajl_gen_integer (g, s->instr->line);
  key (g, "end_line");
  yajl_gen_integer (g, s->instr->end_line);
  key (g, "instruction");
  str (g, dockerfile_kind_name (s->kind));
  key (g, "original");
  str (g, s->instr->original);
  key (g, "form");
  str (g, s->json ? "exec" : "shell");
  key (g, "flags");
  kvs (g, s->flags, s->n_flags);
  switch (s->kind)
    {
    case DF_ENV:
    case DF_LABEL:
    case DF_ARG:
      key (g, s->kind == DF_ARG ? "args" : "pairs");
      kvs (g, s->kvs, s->n_kvs);
      break;
    default:
      key (g, "args");
      strv (g, s->args);
      break;
    }
  if (s->argv)
    {
      key (g, "argv");
      strv (g, s->argv);
    }
  if (s->kind == DF_HEALTHCHECK)
    {
      key (g, "healthcheck");
      str (g, s->instr->health_type);
    }
  if (s->kind == DF_COPY)
    {
      key (g, "from_stage");
      if (s->from_stage >= 0)
        yajl_gen_integer (g, s->from_stage);
      else
        yajl_gen_null (g);
      key (g, "from_image");
      str (g, s->from_image);
    }
  if (s->kind == DF_RUN)
    {
      key (g, "mounts");
      yajl_gen_array_open (g);
      for (size_t i = 0; i < s->n_mounts; i++)
        {
          yajl_gen_map_open (g);
          key (g, "type");
          str (g, s->mounts[i].type);
          key (g, "options");
          kvs (g, s->mounts[i].opts, s->mounts[i].n_opts);
          yajl_gen_map_close (g);
        }
      yajl_gen_array_close (g);
      key (g, "mount_stages");
      yajl_gen_array_open (g);
      for (size_t i = 0; i < s->n_mount_stages; i++)
        yajl_gen_integer (g, s->mount_stages[i]);
      yajl_gen_array_close (g);
      key (g, "build_env");
      strv (g, s->build_env);
    }
  if (s->n_heredocs)
    {
      key (g, "heredocs");
      yajl_gen_array_open (g);
      for (size_t i = 0; i < s->n_heredocs; i++)
        {
          yajl_gen_map_open (g);
          key (g, "name");
          str (g, s->heredocs[i].name);
          key (g, "expand");
          yajl_gen_bool (g, s->heredocs[i].expand);
          key (g, "strip_tabs");
          yajl_gen_bool (g, s->heredocs[i].chomp);
          key (g, "body");
          str (g, s->heredocs[i].body);
          yajl_gen_map_close (g);
        }
      yajl_gen_array_close (g);
    }
  if (s->kind == DF_ONBUILD && s->instr->trigger)
    {
      key (g, "trigger");
      str (g, dockerfile_kind_name (s->instr->trigger->kind));
    }
  if (s->unresolved && s->unresolved[0])
    {
      key (g, "unresolved");
      strv (g, s->unresolved);
    }
  yajl_gen_map_close (g);
}

int
plan_json_render (const plan *p, char **out, kiln_error **err)
{
  yajl_gen g = yajl_gen_alloc (NULL);
  yajl_gen_config (g, yajl_gen_beautify, 1);
  yajl_gen_config (g, yajl_gen_indent_string, "  ");
  yajl_gen_map_open (g);
  key (g, "version");
  yajl_gen_integer (g, 1);
  key (g, "dockerfile");
  str (g, p->df->path);
  key (g, "syntax");
  str (g, p->df->syntax);
  key (g, "check");
  str (g, p->df->check);
  key (g, "escape");
  char esc[2] = { p->df->escape, 0 };
  str (g, esc);
  key (g, "build_platform");
  str (g, p->build_platform);
  key (g, "target_platform");
  str (g, p->target_platform);
  key (g, "target");
  yajl_gen_integer (g, p->target);
  key (g, "global_args");
  kvs (g, p->global_args, p->n_global_args);
  key (g, "stages");
  yajl_gen_array_open (g);
  for (size_t i = 0; i < p->n_stages; i++)
    {
      const plan_stage *s = &p->stages[i];
      yajl_gen_map_open (g);
      key (g, "index");
      yajl_gen_integer (g, s->index);
      key (g, "name");
      str (g, s->name);
      key (g, "base");
      str (g, s->base);
      key (g, "base_stage");
      if (s->base_stage >= 0)
        yajl_gen_integer (g, s->base_stage);
      else
        yajl_gen_null (g);
      key (g, "platform");
      str (g, s->platform);
      key (g, "platform_explicit");
      yajl_gen_bool (g, s->platform_explicit);
      key (g, "needed");
      yajl_gen_bool (g, s->needed);
      key (g, "wave");
      if (s->wave >= 0)
        yajl_gen_integer (g, s->wave);
      else
        yajl_gen_null (g);
      key (g, "depends_on");
      yajl_gen_array_open (g);
      for (size_t d = 0; d < s->n_deps; d++)
        yajl_gen_integer (g, s->deps[d]);
      yajl_gen_array_close (g);
      key (g, "instructions");
      yajl_gen_array_open (g);
      for (size_t k = 0; k < s->n_steps; k++)
        step (g, &s->steps[k]);
      yajl_gen_array_close (g);
      yajl_gen_map_close (g);
    }
  yajl_gen_array_close (g);
  key (g, "warnings");
  strv (g, p->warnings);
  yajl_gen_map_close (g);
  const unsigned char *buf;
  size_t len;
  if (yajl_gen_get_buf (g, &buf, &len) != yajl_gen_status_ok)
    {
      yajl_gen_free (g);
      return kiln_error_make (err, 0, "generating the plan JSON failed");
    }
  *out = xstrndup ((const char *) buf, len);
  yajl_gen_free (g);
  return 0;
}
