/* cmd_common.c - what the command front-ends share. */
#include "cmd/cmd_common.h"

#include <stdlib.h>
#include <string.h>

#include "registry/reference.h"
#include "util/alloc.h"
#include "util/cli.h"

int
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
