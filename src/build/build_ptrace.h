/* build_ptrace.h - a stage root for ptrace isolation: kiln's overlay_dir
 * (src/overlay/overlay_dir.h) joined to the tracer (src/sandbox/tracer.h)
 * by callbacks, for kiln build's RUN steps and kiln run of an image. */
#ifndef KILN_BUILD_BUILD_PTRACE_H
#define KILN_BUILD_BUILD_PTRACE_H

#include "overlay/overlay_dir.h"
#include "sandbox/tracer.h"
#include "util/error.h"

/* tracer_fs_ops over an overlay_dir: pass the overlay_dir as ops_ctx. */
const tracer_fs_ops *build_ptrace_ops (void);

/* The usual /dev links into /proc (fd, stdin, stdout, stderr) in the
 * root's /dev, a mask path (never in a layer): their targets resolve in
 * the step's view, where /proc is the host's. */
int build_ptrace_dev_links (overlay_dir *od, kiln_error **err);

#endif
