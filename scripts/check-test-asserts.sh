#!/usr/bin/env bash
# check-test-asserts.sh - two ways a bats assertion can never fail:
#  1. checks joined by && on one line ([ a ] && [[ b ]]): under set -e only
#     the last command of an && list stops the test, so every check before
#     it is ignored (write one check per line);
#  2. a test that asserts $output contains a literal string which the
#     test's own RUN lines contain: kiln's progress output repeats each RUN
#     line, so the assertion holds whatever the step printed (make the step
#     compute the string, e.g. "probe-$((6*7))", or split it with quotes).
# Prints FILE:LINE: what for each and exits 1 if there is any.
# KILN_CHECK_FILES overrides the files checked (the lint test's planted bugs).
set -euo pipefail
cd "$(dirname "$0")/.."
# lint.bats plants both mistakes in a here-document: not checked itself.
# shellcheck disable=SC2206
files=(${KILN_CHECK_FILES:-$(ls tests/integration/*.bats | grep -v '/lint\.bats$')})
exec python3 - "${files[@]}" <<'PY'
import re, sys
bad = 0
test_re = re.compile(r'^@test "([^"]*)" \{$')
check = r'\[\[? .*? \]\]?'
and_list = re.compile(r'^\s*' + check + r'(\s*&&\s*' + check + r')+\s*$')
for path in sys.argv[1:]:
    lines = open(path, encoding='utf-8').read().split('\n')
    start = None
    for i, l in enumerate(lines):
        if and_list.match(l):
            print(f"{path}:{i + 1}: checks joined by && (only the last one counts): {l.strip()}")
            bad = 1
        if test_re.match(l):
            start = i
        elif l == '}' and start is not None:
            body = lines[start + 1:i]
            run, inrun = [], False
            for b in body:
                if re.match(r'\s*RUN\b', b):
                    inrun = True
                if inrun:
                    run.append(b)
                    inrun = b.rstrip().endswith('\\')
            text = '\n'.join(run)
            for j, b in enumerate(body):
                for m in re.finditer(r'\$output == \*"([^"$]{4,})"\*', b):
                    if m.group(1) in text:
                        print(f"{path}:{start + j + 2}: asserted string '{m.group(1)}' is in the test's own RUN lines")
                        bad = 1
            start = None
sys.exit(bad)
PY
