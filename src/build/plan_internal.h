/* plan_internal.h - what the two files of the plan module share. PRIVATE to
 * src/build/plan.c and src/build/plan_step.c: nothing else includes it; the
 * module's API is plan.h.
 *
 * Where things are:
 *   plan.c       plan_build: platforms and their automatic ARGs, the ARG and
 *                ENV scopes (global ARGs, ARG resolution against
 *                --build-arg, the base image's ENV), stages (FROM), the
 *                dispatch of one instruction to its step (build_step), stage
 *                references, the dependency graph, cycles, needed stages and
 *                waves, unused build-arg warnings, plan_free
 *   plan_step.c  the per-instruction steps and their checks: expanded flags,
 *                words (ADD COPY VOLUME USER WORKDIR STOPSIGNAL), EXPOSE
 *                ports, ENV/LABEL pairs, the verbatim commands (RUN's argv
 *                and build env, SHELL, HEALTHCHECK, ONBUILD), RUN --mount,
 *                COPY/ADD --chmod/--checksum/--chown, heredoc bodies
 *
 * Functions declared here are named after the module (plan_).
 */
#ifndef KILN_BUILD_PLAN_INTERNAL_H
#define KILN_BUILD_PLAN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include "build/dockerfile.h"
#include "build/expand.h"
#include "build/plan.h"
#include "util/error.h"

/* ---- state while building ---- */

typedef struct scope
{
  expand_vars env;   /* ENV */
  bool env_known;    /* false: the base image's ENV is unknown (dry run) */
  expand_vars args;  /* ARGs in scope */
  char **shell;
  char **unresolved; /* collected for the current step */
} scope;

typedef struct builder
{
  plan *p;
  const plan_options *o;
  expand_vars build_args;   /* from --build-arg */
  expand_vars globals;      /* global ARGs, resolved */
  expand_vars auto_args;    /* platform ARGs */
  char **consumed;          /* build-arg names some ARG declared */
} builder;

/* plan.c */

/* Whether K is one of the proxy build-args (HTTP_PROXY, no_proxy, ...). */
bool plan_is_proxy_arg (const char *k);
/* The expand_lookup_fn of a scope (CTX): ENV, then the ARGs in scope; with
 * the base image's ENV unknown, other names are unknown (and collected). */
expand_lookup_result plan_scope_lookup (void *ctx, const char *name, size_t n, const char **value);
/* Expand the word IN in scope S. */
int plan_sexpand (builder *b, scope *s, const char *in, char **out, kiln_error **err);
/* Re-issue an expansion error as "FILE:LINE: KEYWORD: why" plus the line. */
int plan_step_error (builder *b, const dockerfile_instr *in, kiln_error **err);

/* plan_step.c: one function per group of instructions, called by
 * build_step; each fills ST from IN in scope S. */

int plan_expand_flags (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err);
int plan_step_words (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err);
int plan_step_expose (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err);
int plan_step_pairs (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err);
int plan_step_verbatim (builder *b, scope *s, plan_stage *stg, const dockerfile_instr *in, plan_step *st,
                        kiln_error **err);
int plan_check_copy_flags (builder *b, const dockerfile_instr *in, const plan_step *st, kiln_error **err);
int plan_step_heredocs (builder *b, scope *s, const dockerfile_instr *in, plan_step *st, kiln_error **err);

#endif
