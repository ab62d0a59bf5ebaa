/* cmd_common.h - what the command front-ends (src/cmd/) share: the
 * registry transport flags of pull, push, build and run, --registry-mirror,
 * and the start of their option handlers (cmd_flags_handle): the logging and
 * store flags (cli_common), the transport flags, and the flags whose value
 * the command only keeps as a string. */
#ifndef KILN_CMD_CMD_COMMON_H
#define KILN_CMD_CMD_COMMON_H

#include <stddef.h>
#include "registry/client.h"
#include "util/alloc.h"
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
  CMD_OPT_SKIP_TLS_VERIFY_REGISTRY,
  CMD_OPT_REGISTRY_CLIENT_CERT,
};
#define CMD_TRANSPORT_OPTIONS                                                                                   \
  { "insecure-registry", 0, CLI_VALUE, "REGISTRY", "use plain HTTP for REGISTRY (repeatable)",                  \
    CMD_OPT_INSECURE_REGISTRY },                                                                                \
  { "insecure", 0, CLI_BOOL, NULL, "use plain HTTP for every registry", CMD_OPT_INSECURE },                     \
  { "skip-tls-verify", 0, CLI_BOOL, NULL, "do not verify registry TLS certificates", CMD_OPT_SKIP_TLS_VERIFY }, \
  { "registry-certificate", 0, CLI_VALUE, "REGISTRY=CA.pem", "trust CA.pem for REGISTRY (repeatable)",          \
    CMD_OPT_REGISTRY_CERT },                                                                                    \
  { "skip-tls-verify-registry", 0, CLI_VALUE, "REGISTRY", "do not verify the TLS certificate of REGISTRY "        \
    "(repeatable)", CMD_OPT_SKIP_TLS_VERIFY_REGISTRY },                                                         \
  { "registry-client-cert", 0, CLI_VALUE, "REGISTRY=CERT,KEY", "mutual TLS: present CERT (PEM) with KEY to "     \
    "REGISTRY (repeatable)", CMD_OPT_REGISTRY_CLIENT_CERT },                                                    \
  { "retries", 0, CLI_VALUE, "N", "retries of a failed request (default 4)", CMD_OPT_RETRIES },

/* A flag whose value the command keeps as it is: its id, and where the
 * char * it goes to sits in the command's options struct. */
typedef struct cmd_string_flag
{
  int id;
  size_t offset;
} cmd_string_flag;

#define CMD_STRING_FLAG(id, type, field) { (id), offsetof (type, field) }

/* Where a command's options struct keeps what cmd_flags_handle sets: its
 * `cli_common common`, its `registry_options reg` (CMD_FLAGS (type, table)
 * finds both) and the string flags of the table, each field once. */
typedef struct cmd_flags
{
  size_t common_offset;             /* of the cli_common */
  size_t reg_offset;                /* of the registry_options */
  const cmd_string_flag *strings;
  size_t n_strings;
} cmd_flags;

#define CMD_FLAGS(type, strings) \
  { offsetof (type, common), offsetof (type, reg), (strings), ARRAY_SIZE (strings) }

/* The start of a command's cli_handler: a common flag, a transport flag or
 * one of f->strings (its previous value freed, the new one copied) is
 * handled here. Returns 1 if id was one of them, 0 if not, <0 on error. */
int cmd_flags_handle (const cmd_flags *f, void *opts, int id, const char *value, kiln_error **err);

/* Free what cmd_flags_handle stored in opts: the cli_common, the transport
 * lists of the registry_options and the strings. */
void cmd_flags_free (const cmd_flags *f, void *opts);

/* Replace *dst by a copy of value. */
void cmd_set_string (char **dst, const char *value);

/* --registry-mirror VALUE ("host", "https://host", "http://host": plain HTTP
 * for that host): appended to *mirrors. */
int cmd_mirror_handle (registry_options *reg, char ***mirrors, const char *value, kiln_error **err);

/* How every command reads its arguments: its own flags (own, n_own)
 * followed by the common ones (cli_common_options), parsed into ctx by
 * handler over argv[0..argc). --help prints usage_head and the whole flag
 * table to stdout. Returns 1 to go on (positional arguments in *pos, the
 * common flags applied), 0 after --help, or a usage error wrapped
 * "kiln NAME" (negative). */
int cmd_parse_args (const char *name, int argc, char **argv, const cli_option *own, size_t n_own,
                    cli_common *common, cli_handler handler, void *ctx, const char *usage_head, char ***pos,
                    kiln_error **err);

#endif
