/* run_cmd.h - `kiln run`: run a command in a root filesystem inside the step sandbox. */
#ifndef KILN_SANDBOX_RUN_CMD_H
#define KILN_SANDBOX_RUN_CMD_H

#include "util/error.h"

int run_cmd_main (int argc, char **argv, kiln_error **err);

#endif
