/* pull_cmd.h - `kiln pull REF --oci-layout DIR[:TAG]`. */
#ifndef KILN_REGISTRY_PULL_CMD_H
#define KILN_REGISTRY_PULL_CMD_H

#include "util/error.h"

/* Returns an exit code; on non-zero *err says why. */
int pull_cmd_main (int argc, char **argv, kiln_error **err);

#endif
