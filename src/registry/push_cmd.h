/* push_cmd.h - `kiln push --oci-layout DIR[:TAG] REF...`. */
#ifndef KILN_REGISTRY_PUSH_CMD_H
#define KILN_REGISTRY_PUSH_CMD_H

#include "util/error.h"

int push_cmd_main (int argc, char **argv, kiln_error **err);

#endif
