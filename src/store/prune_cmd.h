/* prune_cmd.h - `kiln prune`: remove store content no kept image or cache
 * entry references (--all: everything; --dry-run: report only). */
#ifndef KILN_STORE_PRUNE_CMD_H
#define KILN_STORE_PRUNE_CMD_H

#include "util/error.h"

int prune_cmd_main (int argc, char **argv, kiln_error **err);

#endif
