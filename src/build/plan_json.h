/* plan_json.h - the `kiln build --dry-run` output (docs/dry-run-format.md). */
#ifndef KILN_BUILD_PLAN_JSON_H
#define KILN_BUILD_PLAN_JSON_H

#include <stdio.h>
#include "build/plan.h"
#include "util/error.h"

/* Serialise P as pretty JSON (format version 1) into *out (caller frees). */
int plan_json_render (const plan *p, char **out, kiln_error **err);

#endif
