#!/usr/bin/env bash
# scripts/check-doc-paths.sh - every repository path that the architecture
# docs name in backquotes must exist in the tree.
#
# Checked files: docs/architecture.md and docs/design/*.md (or the files in
# $KILN_DOC_FILES, space-separated, relative to the tree or absolute).
# Checked paths: words inside `...` that start with src/, tests/, scripts/,
# bench/ or policies/. A single brace group is expanded (`src/a.{c,h}` is
# src/a.c and src/a.h), a word with a glob character must match something,
# and words holding a placeholder (<...>, $VAR) are skipped. Fenced code
# blocks are not checked (they show layouts and commands, not references).
#
# Exit 0 when every path exists; 1 with one line per missing path
# ("FILE:LINE: PATH"); 2 on usage errors.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [[ -n ${KILN_DOC_FILES:-} ]]; then
  read -r -a files <<<"$KILN_DOC_FILES"
else
  files=(docs/architecture.md)
  for f in docs/design/*.md; do
    [[ -e $f ]] && files+=("$f")
  done
fi

missing=0
checked=0

exists() {
  local p=$1
  if [[ $p == *[\*\?\[]* ]]; then
    compgen -G "$p" >/dev/null
  else
    [[ -e $p ]]
  fi
}

check_word() {
  local file=$1 line=$2 w=$3
  # Trim punctuation around the word: (src/x.c), src/x.c: or src/x.c,
  w=${w#\(}
  while [[ $w == *[\),\;:.] ]]; do
    w=${w%?}
  done
  case $w in
    src/* | tests/* | scripts/* | bench/* | policies/*) ;;
    *) return 0 ;;
  esac
  case $w in
    *'<'* | *'>'* | *'$'*) return 0 ;;
  esac
  local paths=()
  if [[ $w =~ ^([^{}]*)\{([^{}]*)\}([^{}]*)$ ]]; then
    local pre=${BASH_REMATCH[1]} alts=${BASH_REMATCH[2]} post=${BASH_REMATCH[3]} a
    IFS=, read -r -a parts <<<"$alts"
    for a in "${parts[@]}"; do
      paths+=("$pre$a$post")
    done
  else
    paths=("$w")
  fi
  local p
  for p in "${paths[@]}"; do
    checked=$((checked + 1))
    if ! exists "$p"; then
      echo "$file:$line: $p"
      missing=$((missing + 1))
    fi
  done
}

for f in "${files[@]}"; do
  if [[ ! -f $f ]]; then
    echo "check-doc-paths: no such file: $f" >&2
    exit 2
  fi
  n=0
  fence=0
  while IFS= read -r text || [[ -n $text ]]; do
    n=$((n + 1))
    if [[ $text =~ ^[[:space:]]*\`\`\` ]]; then
      fence=$((1 - fence))
      continue
    fi
    ((fence)) && continue
    # Every `...` span on the line, then every word inside it.
    while [[ $text =~ \`([^\`]*)\`(.*)$ ]]; do
      span=${BASH_REMATCH[1]}
      text=${BASH_REMATCH[2]}
      read -r -a words <<<"$span" || true
      for word in "${words[@]}"; do
        check_word "$f" "$n" "$word"
      done
    done
  done <"$f"
done

if ((missing)); then
  echo "check-doc-paths: $missing of $checked paths named in the docs do not exist" >&2
  exit 1
fi
echo "check-doc-paths: all $checked paths named in the docs exist"
