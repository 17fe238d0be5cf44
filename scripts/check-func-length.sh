#!/usr/bin/env bash
# No function in server/ is longer than 80 lines (docs/architecture.md, Conventions): counts a
# function from the first line of its signature to its closing brace, for definitions in the
# layout the tree uses (signature at column 0, the opening brace alone on the next line, the
# closing brace at column 0). Prints every longer one and exits 1 when there is one.
# Usage: scripts/check-func-length.sh [max-lines [dir...]]
set -uo pipefail
cd "$(dirname "$0")/.."
max=${1:-80}
shift || true
dirs=("${@:-server}")
find "${dirs[@]}" -name '*.c' | sort | xargs awk -v max="$max" '
    FNR == 1 { sig = 0; start = 0; name = "" }
    start == 0 && /^[A-Za-z_][^;]*\(/ && !/^(typedef|struct|enum|union|static const|const)[^(]*=/ {
        sig = FNR; n = $0; sub(/\(.*/, "", n); sub(/.*[ *]/, "", n); name = n
    }
    start == 0 && /^\{/ && sig { start = sig; next }
    start && /^\}/ {
        len = FNR - start + 1
        if (len > max) { printf "check-func-length: %s:%d %s is %d lines (at most %d)\n", FILENAME, start, name, len, max; bad = 1 }
        start = 0; sig = 0
    }
    start == 0 && /;[ \t]*$/ { sig = 0 }
    END { exit bad }
'
rc=$?
[ $rc -eq 0 ] && echo "check-func-length: no function in ${dirs[*]} is over $max lines"
exit $rc
