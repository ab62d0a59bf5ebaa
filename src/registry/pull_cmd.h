/* pull_cmd.h - `kiln pull REF --oci-layout DIR[:TAG]`. */
#ifndef KILN_REGISTRY_PULL_CMD_H
#define KILN_REGISTRY_PULL_CMD_H

#include <stddef.h>
#include "registry/client.h"
#include "util/error.h"

/* Transport flags shared by pull and push (ids 100..). */
enum
{
  OPT_INSECURE_REGISTRY = 100,
  OPT_INSECURE,
  OPT_SKIP_TLS_VERIFY,
  OPT_REGISTRY_CERT,
  OPT_RETRIES,
};
#define TRANSPORT_OPTIONS                                                                                   \
  { "insecure-registry", 0, CLI_VALUE, "REGISTRY", "use plain HTTP for REGISTRY (repeatable)", OPT_INSECURE_REGISTRY }, \
  { "insecure", 0, CLI_BOOL, NULL, "use plain HTTP for every registry", OPT_INSECURE },                            \
  { "skip-tls-verify", 0, CLI_BOOL, NULL, "do not verify registry TLS certificates", OPT_SKIP_TLS_VERIFY },        \
  { "registry-certificate", 0, CLI_VALUE, "REGISTRY=CA.pem", "trust CA.pem for REGISTRY (repeatable)",            \
    OPT_REGISTRY_CERT },                                                                                        \
  { "retries", 0, CLI_VALUE, "N", "retries of a failed request (default 4)", OPT_RETRIES },

/* Handle a transport flag: 1 if id was one, 0 if not, <0 on error. */
int registry_transport_handle (registry_options *reg, int id, const char *value, kiln_error **err);
/* Write data to a user-given path atomically (temp + rename), mode 0644. */
int registry_write_user_file (const char *path, const void *data, size_t len, kiln_error **err);
/* Write digest to the user-given path (--digest-file). */
int registry_write_digest_file (const char *path, const char *digest, kiln_error **err);

/* --registry-mirror VALUE ("host", "https://host", "http://host": plain HTTP
 * for that host): appended to *mirrors. */
int registry_mirror_handle (registry_options *reg, char ***mirrors, const char *value, kiln_error **err);

/* Returns an exit code; on non-zero *err says why. */
int pull_cmd_main (int argc, char **argv, kiln_error **err);

#endif
