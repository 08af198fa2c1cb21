#!/bin/sh
# Style gate: clang-format on every C file, and functions we do not use.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find common daemon ctl tests -name '*.[ch]')
status=0
if command -v clang-format >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    clang-format --dry-run -Werror $files || status=1
else
    echo "lint: clang-format not installed, skipping format check" >&2
fi
# Unbounded or non-reentrant functions, and exit() in the fuzzable library.
if grep -nE '\b(sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|localtime|gmtime|strtok)\s*\(' \
        $files | grep -v 'lint: allow'; then
    echo "lint: banned function used (see scripts/lint.sh)" >&2
    status=1
fi
if grep -rnE --include='*.c' '\b(exit|abort)\s*\(' common | grep -v 'lint: allow'; then
    echo "lint: common/ must return errors, never exit" >&2
    status=1
fi
# The include graph: no arrow from common/ to the programs, none from the
# core to a protocol, none between protocols, no cycle between folders.
if command -v python3 >/dev/null 2>&1; then
    python3 "$root/scripts/check-includes.py" "$root" || status=1
else
    echo "lint: python3 not installed, skipping the include graph check" >&2
fi
if grep -nE '_WIN32' $files | grep -vE '_win\.c:|platform\.h:'; then
    echo "lint: _WIN32 outside *_win.c" >&2
    status=1
fi
exit $status
