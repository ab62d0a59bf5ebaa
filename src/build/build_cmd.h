/* build_cmd.h - the `kiln build` command: option parsing and dispatch. */
#ifndef KILN_BUILD_BUILD_CMD_H
#define KILN_BUILD_BUILD_CMD_H

#include "util/error.h"

/* Run `kiln build`; argv[0] is "build". Returns an exit code; on a non-zero
 * code *err says why (usage errors return KILN_EXIT_USAGE). */
int build_cmd_main (int argc, char **argv, kiln_error **err);

#endif
