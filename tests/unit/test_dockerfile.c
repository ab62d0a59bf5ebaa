/* Tests for dockerfile.c; each case names the Dockerfile reference rule. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <stdlib.h>

#include "build/dockerfile.h"
#include "util/alloc.h"

static dockerfile *
parse_ok (const char *text)
{
  dockerfile *df = NULL;
  kiln_error *err = NULL;
  if (dockerfile_parse ("Dockerfile", text, strlen (text), &df, &err) < 0)
    fail_msg ("unexpected error: %s", err->msg);
  return df;
}

static void
parse_err (const char *text, const char *want)
{
  dockerfile *df = NULL;
  kiln_error *err = NULL;
  if (dockerfile_parse ("Dockerfile", text, strlen (text), &df, &err) == 0)
    fail_msg ("expected error containing '%s'", want);
  if (strstr (err->msg, want) == NULL)
    fail_msg ("error '%s' lacks '%s'", err->msg, want);
  kiln_error_free (err);
}

/* Reference "Parser directives": syntax, escape, check at the top only. */
static void
test_directives (void **state)
{
  (void) state;
  dockerfile *df = parse_ok ("# syntax=docker/dockerfile:1\n# ESCAPE = `\n#check=skip=all\nFROM a\n");
  assert_string_equal (df->syntax, "docker/dockerfile:1");
  assert_int_equal (df->escape, '`');
  assert_string_equal (df->check, "skip=all");
  dockerfile_free (df);
  /* after a comment, directives are plain comments */
  df = parse_ok ("# hello\n# escape=`\nFROM a\n");
  assert_int_equal (df->escape, '\\');
  dockerfile_free (df);
  /* unknown directive ends directive processing */
  df = parse_ok ("# unknown=x\n# escape=`\nFROM a\n");
  assert_int_equal (df->escape, '\\');
  dockerfile_free (df);
  parse_err ("# escape=\\\n# escape=`\nFROM a\n", "only one escape parser directive");
  parse_err ("# escape=x\nFROM a\n", "invalid escape token");
}

/* Reference "Format": keywords are case-insensitive; comments; continuation. */
static void
test_case_comments_continuation (void **state)
{
  (void) state;
  dockerfile *df = parse_ok ("from alpine\n  # indented comment\nrun echo a \\\n  # comment inside\n\n  && echo b\n");
  assert_int_equal (df->n_instrs, 2);
  assert_int_equal (df->instrs[1].kind, DF_RUN);
  assert_string_equal (df->instrs[1].keyword, "run");
  assert_string_equal (df->instrs[1].args[0], "echo a   && echo b");
  assert_int_equal (df->instrs[1].line, 3);
  assert_int_equal (df->instrs[1].end_line, 6);
  assert_non_null (df->warnings); /* empty continuation line */
  dockerfile_free (df);
  /* escape=` : backslash is literal, backtick continues */
  df = parse_ok ("# escape=`\nFROM w\nRUN dir c:\\ `\n  /b\n");
  assert_string_equal (df->instrs[1].args[0], "dir c:\\   /b");
  dockerfile_free (df);
  /* CRLF line endings and a BOM */
  df = parse_ok ("\xEF\xBB\xBF" "FROM a\r\nRUN x\r\n");
  assert_int_equal (df->n_instrs, 2);
  assert_string_equal (df->instrs[1].args[0], "x");
  dockerfile_free (df);
}

/* Reference "Shell and exec form". */
static void
test_exec_vs_shell (void **state)
{
  (void) state;
  dockerfile *df = parse_ok ("FROM a\nCMD [\"echo\", \"hi \\\"x\\\"\"]\nENTRYPOINT echo hi\nRUN [ -f /x ] && echo\n"
                             "SHELL [\"/bin/bash\", \"-c\"]\nVOLUME [\"/a\", \"/b\"]\nVOLUME /c /d\n");
  assert_true (df->instrs[1].json);
  assert_string_equal (df->instrs[1].args[1], "hi \"x\"");
  assert_false (df->instrs[2].json);
  assert_false (df->instrs[3].json); /* `[ -f` is shell syntax, not JSON */
  assert_string_equal (df->instrs[3].args[0], "[ -f /x ] && echo");
  assert_true (df->instrs[4].json);
  assert_true (df->instrs[5].json);
  assert_int_equal (strv_len (df->instrs[6].args), 2);
  dockerfile_free (df);
  parse_err ("FROM a\nCMD ['echo', 'hi']\n", "bad JSON form");
  parse_err ("FROM a\nCMD [\"sleep\", 10]\n", "JSON arrays must contain only strings");
  parse_err ("FROM a\nSHELL /bin/bash -c\n", "SHELL requires the arguments to be in JSON form");
}

/* Reference "Here-Documents". */
static void
test_heredocs (void **state)
{
  (void) state;
  dockerfile *df = parse_ok ("FROM a\nRUN <<EOF\necho $X\nEOF\n"
                             "COPY <<-'END' /x\n\tline1\n\t\tline2\n\tEND\n"
                             "RUN python3 <<A && cat <<\"B\"\nprint(1)\nA\nb\nB\n"
                             "COPY --chmod=755 <<one <<two /dst/\n1\none\n2\ntwo\n");
  dockerfile_instr *r = &df->instrs[1];
  assert_int_equal (r->n_heredocs, 1);
  assert_string_equal (r->heredocs[0].name, "EOF");
  assert_string_equal (r->heredocs[0].body, "echo $X\n");
  assert_true (r->heredocs[0].expand);
  assert_int_equal (r->end_line, 4);
  dockerfile_instr *c = &df->instrs[2];
  assert_true (c->heredocs[0].chomp);
  assert_false (c->heredocs[0].expand); /* quoted delimiter disables expansion */
  assert_string_equal (c->heredocs[0].body, "line1\nline2\n");
  dockerfile_instr *m = &df->instrs[3];
  assert_int_equal (m->n_heredocs, 2);
  assert_true (m->heredocs[0].expand);
  assert_false (m->heredocs[1].expand);
  assert_string_equal (m->heredocs[1].body, "b\n");
  assert_int_equal (df->instrs[4].n_heredocs, 2);
  assert_string_equal (df->instrs[4].heredocs[1].body, "2\n");
  dockerfile_free (df);
  parse_err ("FROM a\nRUN <<EOF\necho\n", "unterminated heredoc 'EOF'");
  /* exec form never has heredocs; "<<" inside quotes is not one */
  df = parse_ok ("FROM a\nRUN echo \"<<EOF\"\n");
  assert_int_equal (df->instrs[1].n_heredocs, 0);
  dockerfile_free (df);
}

/* Reference: each instruction's flags. */
static void
test_flags (void **state)
{
  (void) state;
  dockerfile *df = parse_ok (
      "FROM --platform=$BUILDPLATFORM golang AS b\n"
      "RUN --mount=type=cache,target=/c --mount=type=secret,id=s --network=none --security=sandbox make\n"
      "COPY --from=b --chown=1:1 --chmod=u+x --link --parents --exclude=*.md --exclude=*.txt a /b\n"
      "ADD --checksum=sha256:abc --keep-git-dir=true --link=false --unpack https://x/y /z\n"
      "HEALTHCHECK --interval=5m --timeout=3s --start-period=1s --start-interval=1s --retries=3 CMD curl -f x\n");
  bool present;
  assert_string_equal (dockerfile_instr_flag (&df->instrs[0], "platform", NULL), "$BUILDPLATFORM");
  assert_int_equal (df->instrs[1].n_flags, 4);
  assert_string_equal (dockerfile_instr_flag (&df->instrs[2], "link", &present), "true");
  assert_int_equal (df->instrs[2].n_flags, 7);
  assert_string_equal (dockerfile_instr_flag (&df->instrs[3], "link", NULL), "false");
  assert_string_equal (df->instrs[4].health_type, "CMD");
  assert_string_equal (df->instrs[4].args[0], "curl -f x");
  dockerfile_free (df);
  parse_err ("FROM a\nCOPY --chwon=1 a b\n", "unknown flag '--chwon' (did you mean '--chown'?)");
  parse_err ("FROM a\nCOPY --checksum=sha256:x a b\n", "unknown flag '--checksum'");
  parse_err ("FROM a\nCOPY --from a b\n", "missing a value on flag '--from'");
  parse_err ("FROM a\nCOPY --link=maybe a b\n", "expecting boolean value");
  parse_err ("FROM a\nCOPY --from=x --from=y a b\n", "duplicate flag");
  parse_err ("FROM a\nENV --x=1 a=b\n", "unknown flag '--x'");
}

/* Reference: ENV/LABEL key=value pairs with quoting, and the legacy form. */
static void
test_env_label_arg (void **state)
{
  (void) state;
  dockerfile *df = parse_ok ("FROM a\nENV A=1 B=\"two words\" C=three\\ words\nENV OLD legacy value\n"
                             "LABEL \"com.x\"=\"v\" multi=\"a\\\nb\"\nARG X Y=2 Z=\"q\"\n");
  dockerfile_instr *e = &df->instrs[1];
  assert_int_equal (e->n_kvs, 3);
  assert_string_equal (e->kvs[1].value, "\"two words\"");
  assert_string_equal (e->kvs[2].value, "three\\ words");
  assert_string_equal (df->instrs[2].kvs[0].key, "OLD");
  assert_string_equal (df->instrs[2].kvs[0].value, "legacy value");
  assert_int_equal (df->instrs[3].n_kvs, 2);
  dockerfile_instr *a = &df->instrs[4];
  assert_int_equal (a->n_kvs, 3);
  assert_null (a->kvs[0].value);
  assert_string_equal (a->kvs[1].value, "2");
  dockerfile_free (df);
  parse_err ("FROM a\nENV A=1 B\n", "can't find =");
  parse_err ("FROM a\nENV ONLY\n", "ENV must have two arguments");
  parse_err ("FROM a\nARG\n", "ARG requires at least one argument");
}

/* Reference: argument counts and other instruction errors. */
static void
test_errors (void **state)
{
  (void) state;
  parse_err ("FROM a\nRUNN echo\n", "unknown instruction 'RUNN' (did you mean 'RUN'?)");
  parse_err ("FROM a\nFOOBARBAZ x\n", "unknown instruction 'FOOBARBAZ'");
  parse_err ("FROM a b\n", "FROM requires either one or three arguments");
  parse_err ("FROM a AS 1abc\n", "invalid name for build stage");
  parse_err ("FROM a AS a$b\n", "invalid name for build stage");
  parse_err ("FROM a\nCOPY onlyone\n", "COPY requires at least two arguments");
  parse_err ("FROM a\nUSER\n", "USER requires exactly one argument");
  parse_err ("FROM a\nWORKDIR\n", "WORKDIR requires exactly one argument");
  parse_err ("FROM a\nEXPOSE\n", "EXPOSE requires at least one argument");
  parse_err ("FROM a\nONBUILD ONBUILD RUN x\n", "ONBUILD ONBUILD");
  parse_err ("FROM a\nONBUILD FROM x\n", "FROM isn't allowed as an ONBUILD trigger");
  parse_err ("FROM a\nONBUILD MAINTAINER x\n", "MAINTAINER isn't allowed as an ONBUILD trigger");
  parse_err ("FROM a\nHEALTHCHECK NONE x\n", "HEALTHCHECK NONE takes no arguments");
  parse_err ("FROM a\nHEALTHCHECK CMD\n", "missing command after HEALTHCHECK CMD");
  parse_err ("FROM a\nHEALTHCHECK RUN x\n", "unknown type 'RUN'");
  parse_err ("FROM a\nVOLUME [\"\"]\n", "VOLUME specified can not be an empty string");
  /* the message names file and line and quotes it */
  parse_err ("FROM a\n\nRUNN x\n", "Dockerfile:3: unknown instruction");
  parse_err ("FROM a\n\nRUNN x\n", "3 | RUNN x");
}

static void
test_onbuild_and_misc (void **state)
{
  (void) state;
  dockerfile *df = parse_ok ("FROM a\nONBUILD COPY . /app\nMAINTAINER me <m@x>\nSTOPSIGNAL SIGKILL\n"
                             "HEALTHCHECK NONE\nEXPOSE 80/tcp 53/udp 8000-8010\nUSER app:app\n");
  assert_non_null (df->instrs[1].trigger);
  assert_int_equal (df->instrs[1].trigger->kind, DF_COPY);
  assert_string_equal (df->instrs[2].args[0], "me <m@x>");
  assert_string_equal (df->instrs[4].health_type, "NONE");
  assert_int_equal (strv_len (df->instrs[5].args), 3);
  assert_string_equal (df->instrs[6].original, "USER app:app");
  dockerfile_free (df);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_directives),  cmocka_unit_test (test_case_comments_continuation),
    cmocka_unit_test (test_exec_vs_shell), cmocka_unit_test (test_heredocs),
    cmocka_unit_test (test_flags),       cmocka_unit_test (test_env_label_arg),
    cmocka_unit_test (test_errors),      cmocka_unit_test (test_onbuild_and_misc),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
