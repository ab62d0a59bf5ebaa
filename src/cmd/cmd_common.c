/* cmd_common.c - what the command front-ends share. */
#include "cmd/cmd_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/reference.h"
#include "util/alloc.h"
#include "util/cli.h"

/* Handle a transport flag: 1 if id was one, 0 if not, <0 on error. */
static int
cmd_transport_handle (registry_options *reg, int id, const char *value, kiln_error **err)
{
  switch (id)
    {
    case CMD_OPT_INSECURE_REGISTRY:
      strv_push (&reg->insecure_registries, value);
      return 1;
    case CMD_OPT_INSECURE:
      return cli_parse_bool ("--insecure", value, &reg->insecure, err) < 0 ? -1 : 1;
    case CMD_OPT_SKIP_TLS_VERIFY:
      return cli_parse_bool ("--skip-tls-verify", value, &reg->skip_tls_verify, err) < 0 ? -1 : 1;
    case CMD_OPT_REGISTRY_CERT:
      if (!strchr (value, '=') || value[0] == '=' || strchr (value, '=')[1] == '\0')
        return kiln_error_make (err, 0, "--registry-certificate: expected REGISTRY=CA.pem, got '%s'", value);
      strv_push (&reg->registry_certs, value);
      return 1;
    case CMD_OPT_SKIP_TLS_VERIFY_REGISTRY:
      if (!registry_domain_valid (value))
        return kiln_error_make (err, 0, "--skip-tls-verify-registry: invalid registry '%s'", value);
      strv_push (&reg->skip_tls_verify_registries, value);
      return 1;
    case CMD_OPT_REGISTRY_CLIENT_CERT:
      {
        const char *eq = strchr (value, '=');
        const char *comma = eq ? strchr (eq, ',') : NULL;
        if (!eq || eq == value || !comma || comma == eq + 1 || comma[1] == '\0')
          return kiln_error_make (err, 0, "--registry-client-cert: expected REGISTRY=CERT,KEY, got '%s'", value);
        strv_push (&reg->registry_client_certs, value);
        return 1;
      }
    case CMD_OPT_RETRIES:
      {
        char *end;
        long n = strtol (value, &end, 10);
        if (end == value || *end || n < 0 || n > 100)
          return kiln_error_make (err, 0, "--retries: expected a number from 0 to 100, got '%s'", value);
        reg->retries = (int) n;
        return 1;
      }
    default:
      return 0;
    }
}

void
cmd_set_string (char **dst, const char *value)
{
  free (*dst);
  *dst = xstrdup (value);
}

int
cmd_flags_handle (const cmd_flags *f, void *opts, int id, const char *value, kiln_error **err)
{
  char *base = opts;
  int r = cli_common_handle ((cli_common *) (base + f->common_offset), id, value, err);
  if (r == 0)
    r = cmd_transport_handle ((registry_options *) (base + f->reg_offset), id, value, err);
  for (size_t i = 0; r == 0 && i < f->n_strings; i++)
    if (f->strings[i].id == id)
      {
        cmd_set_string ((char **) (base + f->strings[i].offset), value);
        r = 1;
      }
  return r;
}

void
cmd_flags_free (const cmd_flags *f, void *opts)
{
  char *base = opts;
  registry_options *reg = (registry_options *) (base + f->reg_offset);
  cli_common_free ((cli_common *) (base + f->common_offset));
  strv_free (reg->insecure_registries);
  strv_free (reg->registry_certs);
  strv_free (reg->skip_tls_verify_registries);
  strv_free (reg->registry_client_certs);
  for (size_t i = 0; i < f->n_strings; i++)
    free (*(char **) (base + f->strings[i].offset));
}

int
cmd_mirror_handle (registry_options *reg, char ***mirrors, const char *value, kiln_error **err)
{
  /* kaniko accepts "host", "https://host" and "http://host". */
  const char *h = value;
  if (strncmp (h, "https://", 8) == 0)
    h += 8;
  else if (strncmp (h, "http://", 7) == 0)
    h += 7;
  autofree char *host = xstrndup (h, strcspn (h, "/"));
  if (!registry_domain_valid (host) || h[strlen (host)] != '\0')
    return kiln_error_make (err, 0, "--registry-mirror: invalid host '%s'", value);
  if (strncmp (value, "http://", 7) == 0)
    strv_push (&reg->insecure_registries, host);
  strv_push (mirrors, host);
  return 0;
}

int
cmd_parse_args (const char *name, int argc, char **argv, const cli_option *own, size_t n_own,
                cli_common *common, cli_handler handler, void *ctx, const char *usage_head, char ***pos,
                kiln_error **err)
{
  size_t n = n_own + cli_common_options_count;
  autofree cli_option *opts = cli_options_concat (own, n_own, cli_common_options, cli_common_options_count);
  bool help = false;
  if (cli_parse (argc, argv, opts, n, handler, ctx, pos, &help, err) < 0)
    return kiln_error_wrap (err, "kiln %s", name);
  if (help)
    {
      fputs (usage_head, stdout);
      cli_print_options (stdout, opts, n);
      return 0;
    }
  cli_common_apply (common);
  return 1;
}
