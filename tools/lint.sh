#!/usr/bin/env bash
# Static analysis, what `make lint` and tests/extra/lint.sh run: cppcheck and clang-tidy (checks
# chosen in .clang-tidy at the repo root) over every C file of the modules, the benchmark and
# the fuzz target. Both must be clean: exit 0 only when neither reports anything.
# A finding that is a true false positive is suppressed at its line with a reason:
#   // NOLINT(check-name): why            (clang-tidy)
#   // cppcheck-suppress id ; why         (cppcheck, the line above)
set -uo pipefail
cd "$(dirname "$0")/.."

shopt -s nullglob
files=(storage/*.c protocol/*.c config/*.c server/*.c tools/bench/*.c tests/fuzz/*.c)
if [ ${#files[@]} -eq 0 ]; then echo "lint: no C files yet"; exit 0; fi
PKG_CFLAGS=$(pkg-config --cflags libevent libevent_pthreads jemalloc libsystemd 2>/dev/null || true)
failed=0

# cppcheck: warnings, portability and performance (style is clang-format's and the reviewers'
# business). --inline-suppr honours the comments above; missing system headers are expected.
cppcheck_out=$(cppcheck -q --std=c11 --language=c --enable=warning,performance,portability \
  --inline-suppr --suppress=missingIncludeSystem --error-exitcode=1 -j 2 \
  -I. -D__GNUC__ -D_GNU_SOURCE --template='{file}:{line}: {severity}: {message} [{id}]' \
  "${files[@]}" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$cppcheck_out" ]; then
  echo "$cppcheck_out"; echo "lint: cppcheck FAILED"; failed=1
else
  echo "lint: cppcheck clean (${#files[@]} files)"
fi

# clang-tidy: one process per file, two at a time. The compile flags match the Makefile's
# (minus hardening and optimisation, which only change codegen).
tidy=$(command -v clang-tidy-14 || command -v clang-tidy)
tidy_log=$(mktemp /tmp/cached-tidy.XXXXXX)
printf '%s\n' "${files[@]}" | xargs -P 2 -I{} sh -c \
  '"$0" --quiet "$1" -- -std=gnu11 -I. -D_GNU_SOURCE $2 >"$3.$(echo "$1" | tr / _)" 2>&1 || echo "$1" >>"$3.failed"' \
  "$tidy" {} "$PKG_CFLAGS" "$tidy_log"
bad=0
for f in "$tidy_log".*; do
  [ "$f" = "$tidy_log.failed" ] && continue
  # clang-tidy prints "N warnings generated" for suppressed system-header noise: not findings.
  # Only the diagnostics themselves (the analyzer's path notes run to pages): rerun
  # `clang-tidy FILE -- -std=gnu11 -I.` for the full explanation.
  if grep -qE ': (warning|error):' "$f"; then grep -E ': (warning|error):' "$f" | sed "s|^$PWD/||"; bad=1; fi
done
[ -f "$tidy_log.failed" ] && { echo "clang-tidy failed on: $(tr '\n' ' ' <"$tidy_log.failed")"; bad=1; }
rm -f "$tidy_log" "$tidy_log".*
if [ $bad -ne 0 ]; then echo "lint: clang-tidy FAILED"; failed=1; else echo "lint: clang-tidy clean (${#files[@]} files)"; fi

[ $failed -eq 0 ] && echo "lint: 2 passed, 0 failed" || echo "lint: cppcheck/clang-tidy findings above"
exit $failed
