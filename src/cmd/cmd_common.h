/* cmd_common.h - what the command front-ends (src/cmd/) share: the
 * registry transport flags of pull, push, build and run, and
 * --registry-mirror. */
#ifndef KILN_CMD_CMD_COMMON_H
#define KILN_CMD_CMD_COMMON_H

#include "registry/client.h"
#include "util/cli.h"
#include "util/error.h"

/* Transport flags shared by pull, push, build and run (ids 100..). */
enum
{
  CMD_OPT_INSECURE_REGISTRY = 100,
  CMD_OPT_INSECURE,
  CMD_OPT_SKIP_TLS_VERIFY,
  CMD_OPT_REGISTRY_CERT,
  CMD_OPT_RETRIES,
};
#define CMD_TRANSPORT_OPTIONS                                                                               \
  { "insecure-registry", 0, CLI_VALUE, "REGISTRY", "use plain HTTP for REGISTRY (repeatable)",               \
    CMD_OPT_INSECURE_REGISTRY },                                                                            \
  { "insecure", 0, CLI_BOOL, NULL, "use plain HTTP for every registry", CMD_OPT_INSECURE },                 \
  { "skip-tls-verify", 0, CLI_BOOL, NULL, "do not verify registry TLS certificates", CMD_OPT_SKIP_TLS_VERIFY }, \
  { "registry-certificate", 0, CLI_VALUE, "REGISTRY=CA.pem", "trust CA.pem for REGISTRY (repeatable)",      \
    CMD_OPT_REGISTRY_CERT },                                                                                \
  { "retries", 0, CLI_VALUE, "N", "retries of a failed request (default 4)", CMD_OPT_RETRIES },

/* Handle a transport flag: 1 if id was one, 0 if not, <0 on error. */
int cmd_transport_handle (registry_options *reg, int id, const char *value, kiln_error **err);

/* --registry-mirror VALUE ("host", "https://host", "http://host": plain HTTP
 * for that host): appended to *mirrors. */
int cmd_mirror_handle (registry_options *reg, char ***mirrors, const char *value, kiln_error **err);

#endif
