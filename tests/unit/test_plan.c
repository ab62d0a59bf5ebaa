/* Tests for plan.c: ARG/ENV scoping, stages, targets; rules cited from the
 * Dockerfile reference ("ARG", "Understand how ARG and FROM interact",
 * "Predefined ARGs", "Automatic platform ARGs", "ENV", multi-stage builds). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>
#include <stdlib.h>

#include "build/plan.h"
#include "util/alloc.h"

/* Stands in for the executor's registry lookup of a base image's ENV. */
static int
image_env (void *ctx, const char *image, const char *platform, char ***env, kiln_error **err)
{
  (void) ctx;
  (void) platform;
  (void) err;
  *env = NULL;
  strv_push (env, "IMGVAR=fromimage");
  strv_push (env, "PATH=/img/bin");
  if (strcmp (image, "fail") == 0)
    return kiln_error_make (err, 0, "no such image");
  if (strcmp (image, "full") == 0)
    return kiln_error_make (err, ENOSPC, "write member data");
  return 0;
}

static plan *
mkplan (const char *text, char **build_args, const char *target, bool skip_unused, kiln_error **err)
{
  dockerfile *df = NULL;
  if (dockerfile_parse ("Dockerfile", text, strlen (text), &df, err) < 0)
    return NULL;
  plan_options o = { .build_args = build_args, .target = target, .platform = "linux/arm64",
                     .skip_unused_stages = skip_unused, .image_env = image_env };
  plan *p = NULL;
  if (plan_build (df, &o, &p, err) < 0)
    return NULL;
  return p;
}

static plan *
ok (const char *text, char **build_args)
{
  kiln_error *err = NULL;
  plan *p = mkplan (text, build_args, NULL, true, &err);
  if (p == NULL)
    fail_msg ("unexpected error: %s", err->msg);
  return p;
}

static void
err_has (const char *text, char **ba, const char *target, const char *want)
{
  kiln_error *err = NULL;
  plan *p = mkplan (text, ba, target, true, &err);
  if (p != NULL)
    fail_msg ("expected an error containing '%s'", want);
  if (strstr (err->msg, want) == NULL)
    fail_msg ("error '%s' lacks '%s'", err->msg, want);
  kiln_error_free (err);
}

/* Last step of the last stage, argument 0. */
static const char *
last_arg (plan *p, size_t stage, size_t step)
{
  return p->stages[stage].steps[step].args[0];
}

/* "An ARG declared before a FROM is outside of a build stage, so it can't be
 * used in any instruction after a FROM" unless re-declared without a value. */
static void
test_global_arg_scope (void **state)
{
  (void) state;
  plan *p = ok ("ARG V=1.0\nFROM img:$V\nUSER u$V\nARG V\nUSER u$V\n", NULL);
  assert_string_equal (p->stages[0].base, "img:1.0");
  assert_string_equal (last_arg (p, 0, 0), "u");     /* not in scope yet */
  assert_string_equal (last_arg (p, 0, 2), "u1.0");  /* re-declared: global value */
  plan_free (p);
}

/* --build-arg overrides defaults, global and per stage. */
static void
test_build_arg_override (void **state)
{
  (void) state;
  char *ba[] = { "V=2.0", "S=cli", NULL };
  plan *p = ok ("ARG V=1.0\nFROM img:$V\nARG S=def\nUSER $S\nARG V\nWORKDIR /$V\n", ba);
  assert_string_equal (p->stages[0].base, "img:2.0");
  assert_string_equal (last_arg (p, 0, 1), "cli");
  assert_string_equal (last_arg (p, 0, 3), "/2.0");
  plan_free (p);
}

/* "ARG without a default value": build-arg or unset. */
static void
test_arg_without_value (void **state)
{
  (void) state;
  char *ba[] = { "B=given", NULL };
  plan *p = ok ("FROM scratch\nARG A\nARG B\nUSER x${A:-unset}${B}\n", ba);
  assert_string_equal (last_arg (p, 0, 2), "xunsetgiven");
  assert_null (p->stages[0].steps[0].kvs[0].value);
  plan_free (p);
}

/* "Environment variables defined using the ENV instruction always override an
 * ARG instruction of the same name." */
static void
test_env_wins_over_arg (void **state)
{
  (void) state;
  char *ba[] = { "V=fromarg", NULL };
  plan *p = ok ("FROM scratch\nARG V\nENV V=fromenv\nUSER $V\nARG V=x\nUSER $V\n", ba);
  assert_string_equal (last_arg (p, 0, 2), "fromenv");
  assert_string_equal (last_arg (p, 0, 4), "fromenv");
  plan_free (p);
}

/* "ENV abc=hello / ENV abc=bye def=$abc": def is hello (one instruction sees
 * the previous values). */
static void
test_env_same_instruction (void **state)
{
  (void) state;
  plan *p = ok ("FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n", NULL);
  assert_string_equal (p->stages[0].steps[1].kvs[1].value, "hello");
  assert_string_equal (p->stages[0].steps[2].kvs[0].value, "bye");
  plan_free (p);
}

/* "Automatic platform ARGs in the global scope"; in a stage only after ARG. */
static void
test_platform_args (void **state)
{
  (void) state;
  plan *p = ok ("FROM --platform=$BUILDPLATFORM img:$TARGETARCH AS b\nUSER [$TARGETOS]\nARG TARGETOS TARGETARCH TARGETVARIANT\n"
                "USER $TARGETOS/$TARGETARCH\n", NULL);
  assert_string_equal (p->stages[0].base, "img:arm64");
  assert_string_equal (p->stages[0].platform, p->build_platform);
  assert_true (p->stages[0].platform_explicit);
  assert_string_equal (last_arg (p, 0, 0), "[]");
  assert_string_equal (last_arg (p, 0, 2), "linux/arm64");
  plan_free (p);
}

/* "Predefined ARGs": proxy variables reach RUN without an ARG and are not
 * reported as unused. */
static void
test_proxy_args (void **state)
{
  (void) state;
  char *ba[] = { "HTTP_PROXY=http://p:3128", "UNUSED=1", NULL };
  plan *p = ok ("FROM scratch\nUSER x$HTTP_PROXY\nRUN true\n", ba);
  assert_string_equal (last_arg (p, 0, 0), "x"); /* not expanded in instructions */
  char **env = p->stages[0].steps[1].build_env;
  assert_string_equal (env[0], "HTTP_PROXY=http://p:3128");
  assert_int_equal (strv_len (p->warnings), 1);
  assert_non_null (strstr (p->warnings[0], "UNUSED"));
  plan_free (p);
}

/* RUN commands are not expanded by the builder; COPY/ADD args and flags are. */
static void
test_which_expand (void **state)
{
  (void) state;
  plan *p = ok ("FROM scratch\nARG D=/dst U=1000\nRUN echo $D\nCOPY --chown=$U:$U a $D\nCMD echo $D\n"
                "EXPOSE ${P:-80}/udp\nVOLUME $D\nSTOPSIGNAL SIG${S:-TERM}\nLABEL k=$D\n", NULL);
  plan_stage *s = &p->stages[0];
  assert_string_equal (s->steps[1].args[0], "echo $D");
  assert_string_equal (s->steps[2].args[1], "/dst");
  assert_string_equal (plan_step_flag (&s->steps[2], "chown"), "1000:1000");
  assert_string_equal (s->steps[3].argv[2], "echo $D");
  assert_string_equal (s->steps[4].args[0], "80/udp");
  assert_string_equal (s->steps[5].args[0], "/dst");
  assert_string_equal (s->steps[6].args[0], "SIGTERM");
  assert_string_equal (s->steps[7].kvs[0].value, "/dst");
  plan_free (p);
}

/* Dry run: the base image's ENV is unknown, references stay literal. */
static void
test_unknown_base_env (void **state)
{
  (void) state;
  dockerfile *df = NULL;
  kiln_error *err = NULL;
  const char *t = "FROM debian\nENV PATH=/opt:$PATH\nFROM scratch\nENV PATH=/opt:$PATH\n";
  assert_int_equal (dockerfile_parse ("Dockerfile", t, strlen (t), &df, &err), 0);
  plan_options o = { .skip_unused_stages = true };
  plan *p = NULL;
  assert_int_equal (plan_build (df, &o, &p, &err), 0);
  assert_string_equal (p->stages[0].steps[0].kvs[0].value, "/opt:$PATH");
  assert_string_equal (p->stages[0].steps[0].unresolved[0], "PATH");
  assert_string_equal (p->stages[1].steps[0].kvs[0].value,
                       "/opt:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  plan_free (p);
}

/* With the executor's image_env the base image's ENV is used (and ENV in the
 * image wins over an ARG of the same name). */
static void
test_known_base_env (void **state)
{
  (void) state;
  plan *p = ok ("FROM debian\nARG IMGVAR=arg\nENV PATH=/opt:$PATH X=$IMGVAR\nFROM debian AS two\nUSER x$X\n", NULL);
  assert_string_equal (p->stages[0].steps[1].kvs[0].value, "/opt:/img/bin");
  assert_string_equal (p->stages[0].steps[1].kvs[1].value, "fromimage");
  assert_null (p->stages[0].steps[1].unresolved);
  /* a new stage from an image does not see the previous stage's ENV */
  assert_string_equal (p->stages[1].steps[0].args[0], "x");
  plan_free (p);
  err_has ("FROM fail\n", NULL, NULL, "no such image");
  /* The cause's errno is kept: the re-issued error is FILE:LINE: text. */
  err_has ("FROM full\n", NULL, NULL, "FROM: reading the configuration of 'full': write member data: No space left on device");
}

/* Multi-stage: FROM stage, COPY --from by name and index and image,
 * RUN --mount from=, case-insensitive names, target pruning, waves. */
static void
test_stage_graph (void **state)
{
  (void) state;
  const char *df = "FROM alpine AS Base\nRUN a\n"
                   "FROM base AS deps\nRUN b\n"
                   "FROM alpine AS tools\nRUN c\n"
                   "FROM alpine AS unused\nRUN d\n"
                   "FROM scratch AS final\nCOPY --from=DEPS /x /x\nCOPY --from=2 /y /y\nCOPY --from=nginx:1 /z /z\n"
                   "RUN --mount=type=bind,from=tools,dst=/t true\n";
  plan *p = ok (df, NULL);
  assert_int_equal (p->target, 4);
  assert_int_equal (p->stages[1].base_stage, 0);
  assert_int_equal (p->stages[4].steps[0].from_stage, 1);
  assert_int_equal (p->stages[4].steps[1].from_stage, 2);
  assert_null (p->stages[4].steps[1].from_image);
  assert_string_equal (p->stages[4].steps[2].from_image, "nginx:1");
  assert_true (p->stages[0].needed && p->stages[1].needed && p->stages[2].needed);
  assert_false (p->stages[3].needed);
  assert_int_equal (p->stages[0].wave, 0);
  assert_int_equal (p->stages[2].wave, 0); /* parallel with base */
  assert_int_equal (p->stages[1].wave, 1);
  assert_int_equal (p->stages[4].wave, 2);
  assert_int_equal (p->stages[4].n_deps, 2);
  /* the mount is parsed with aliases normalised */
  plan_step *run = &p->stages[4].steps[3];
  assert_int_equal (run->n_mounts, 1);
  assert_string_equal (run->mounts[0].type, "bind");
  assert_string_equal (plan_mount_opt (&run->mounts[0], "target"), "/t");
  assert_int_equal (run->mount_stages[0], 2);
  plan_free (p);
  /* --target */
  kiln_error *err = NULL;
  p = mkplan (df, NULL, "deps", true, &err);
  assert_non_null (p);
  assert_int_equal (p->target, 1);
  assert_false (p->stages[2].needed);
  assert_false (p->stages[4].needed);
  plan_free (p);
  /* --skip-unused-stages=false builds every stage up to the target */
  p = mkplan (df, NULL, NULL, false, &err);
  assert_non_null (p);
  assert_true (p->stages[3].needed);
  plan_free (p);
}

static void
test_stage_errors (void **state)
{
  (void) state;
  err_has ("FROM a AS x\nFROM b AS X\n", NULL, NULL, "duplicate stage name 'x'");
  err_has ("FROM a AS x\n", NULL, "nope", "target stage 'nope' could not be found");
  err_has ("FROM a AS x\nCOPY --from=y /a /a\nFROM b AS y\nCOPY --from=x /a /a\n", NULL, NULL, "circular dependency");
  err_has ("FROM a\nCOPY --from=0 /a /a\n", NULL, NULL, "circular dependency");
  err_has ("FROM a\nCOPY --from=7 /a /a\n", NULL, NULL, "invalid stage index");
  err_has ("ARG A\nRUN x\nFROM a\n", NULL, NULL, "only ARG is allowed");
  err_has ("ARG A\n", NULL, NULL, "no build stage");
  err_has ("FROM $NOPE\n", NULL, NULL, "empty after variable expansion");
  err_has ("FROM a\nCOPY --chmod=999 a b\n", NULL, NULL, "invalid mode '999'");
  err_has ("FROM a\nEXPOSE 80/xyz\n", NULL, NULL, "invalid port '80/xyz'");
  err_has ("FROM a\nEXPOSE 70000\n", NULL, NULL, "invalid port");
  err_has ("FROM a\nRUN --network=bridge x\n", NULL, NULL, "unsupported value 'bridge'");
  err_has ("FROM a\nRUN --mount=type=nfs,target=/x x\n", NULL, NULL, "unsupported mount type 'nfs'");
  err_has ("FROM a\nRUN --mount=type=cache,target=/x,size=1 x\n", NULL, NULL, "unknown option 'size' for a cache mount");
  err_has ("FROM a\nRUN --mount=type=bind x\n", NULL, NULL, "a bind mount needs target=");
  err_has ("FROM a\nRUN --mount=type=cache,target=/c,sharing=wide x\n", NULL, NULL, "unsupported sharing value 'wide'");
  err_has ("FROM a\nHEALTHCHECK --interval=5 CMD x\n", NULL, NULL, "invalid duration '5'");
  err_has ("FROM a\nHEALTHCHECK --retries=-1 CMD x\n", NULL, NULL, "--retries");
  err_has ("FROM a\nUSER ${X:?need X}\n", NULL, NULL, "X: need X");
  err_has ("FROM --platform=linux a\n", NULL, NULL, "invalid platform 'linux'");
}

/* Shell form uses the current SHELL. */
static void
test_shell_and_heredoc_bodies (void **state)
{
  (void) state;
  plan *p = ok ("FROM scratch\nARG N=world\nRUN echo 1\nSHELL [\"/bin/bash\", \"-eo\", \"pipefail\", \"-c\"]\nRUN echo 2\n"
                "COPY <<EOF /a\nhi $N \"q\"\nEOF\nCOPY <<'EOF' /b\nhi $N\nEOF\nRUN <<EOF\necho $N\nEOF\n", NULL);
  plan_stage *s = &p->stages[0];
  assert_string_equal (s->steps[1].argv[0], "/bin/sh");
  assert_string_equal (s->steps[3].argv[0], "/bin/bash");
  assert_int_equal (strv_len (s->steps[3].argv), 5);
  assert_string_equal (s->steps[4].heredocs[0].body, "hi world \"q\"\n");
  assert_string_equal (s->steps[5].heredocs[0].body, "hi $N\n");
  assert_string_equal (s->steps[6].heredocs[0].body, "echo $N\n"); /* RUN: the shell expands */
  assert_string_equal (s->steps[4].args[0], "<<EOF");
  plan_free (p);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_global_arg_scope), cmocka_unit_test (test_build_arg_override),
    cmocka_unit_test (test_arg_without_value), cmocka_unit_test (test_env_wins_over_arg),
    cmocka_unit_test (test_env_same_instruction), cmocka_unit_test (test_platform_args),
    cmocka_unit_test (test_proxy_args),       cmocka_unit_test (test_which_expand),
    cmocka_unit_test (test_unknown_base_env), cmocka_unit_test (test_known_base_env),
    cmocka_unit_test (test_stage_graph),
    cmocka_unit_test (test_stage_errors),     cmocka_unit_test (test_shell_and_heredoc_bodies),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
