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
files=(storage/*.c protocol/*.c config/*.c server/*.c tools/bench/*.c tools/bench/ceiling/*.c tests/fuzz/*.c)
# LINT_FILES="a.c b.c" checks just those (quick runs while fixing findings)
[ -n "${LINT_FILES:-}" ] && read -r -a files <<<"$LINT_FILES"
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
# Analyzer false positives in files whose owners have not put a NOLINT there yet:
#   path|check|ERE the flagged source line must match|why it is a false positive
# Matched on the line's text, not its number, so they survive edits around them.
SUPPRESS=(
  'server/conn.c|clang-analyzer-core.UndefinedBinaryOperatorResult|ss\.ss_family == AF_INET6|getpeername() fills ss; the analyzer does not model it'
  'server/listen.c|clang-analyzer-core.UndefinedBinaryOperatorResult|sa->sa_family == AF_INET6|the caller filled *sa with getsockname(), which the analyzer does not model'
  'storage/slab.c|clang-analyzer-core.UndefinedBinaryOperatorResult|press\[i\] != 0|press[] is filled for every i < nclasses by the loop above; the analyzer assumes nclasses changes across the unlock'
  'protocol/reply.c|bugprone-sizeof-expression|sizeof\(\*r->(refs|ref_seq)\)|sizeof(*p) of an array of item pointers is the element size, as intended'
  'storage/meta_ops.c|bugprone-branch-clone|it->nbytes == 0|two checks with one result in a deliberate order (emptiness before CAS, as memcached)'
  'tools/bench/main.c|clang-analyzer-core.NullDereference|idle_fds\[i\]|idle_fds is allocated whenever o.idle > 0; the analyzer assumes o.idle changes because &o escapes to the threads'
)
suppressed() { # file line check -> 0 when a SUPPRESS entry covers it
  local text; text=$(sed -n "${2}p" "$1" 2>/dev/null)
  for e in "${SUPPRESS[@]}"; do
    IFS='|' read -r sf sc sre _ <<<"$e"
    # the ERE may itself contain '|': everything between the 2nd and the last '|'
    sre=${e#*|}; sre=${sre#*|}; sre=${sre%|*}
    [ "$sf" = "$1" ] && [ "$sc" = "$3" ] && grep -qE -- "$sre" <<<"$text" && return 0
  done
  return 1
}
bad=0 nsup=0
for f in "$tidy_log".*; do
  [ "$f" = "$tidy_log.failed" ] && continue
  # Only the diagnostics themselves (the analyzer's path notes run to pages): rerun
  # `clang-tidy FILE -- -std=gnu11 -I.` for the full explanation.
  while IFS= read -r d; do
    d=${d#"$PWD/"}
    file=${d%%:*}; rest=${d#*:}; line=${rest%%:*}
    check=$(sed -nE 's/.*\[([^],]+)(,-warnings-as-errors)?\]$/\1/p' <<<"$d")
    if suppressed "$file" "$line" "$check"; then nsup=$((nsup + 1)); continue; fi
    echo "$d"; bad=1
  done < <(grep -E ': (warning|error):' "$f")
done
# clang-tidy exits non-zero on any finding (suppressed ones too); a failure without a single
# diagnostic means it could not run on the file at all.
if [ -f "$tidy_log.failed" ]; then
  for f in $(cat "$tidy_log.failed"); do
    grep -qE ': (warning|error):' "$tidy_log.$(echo "$f" | tr / _)" \
      || { echo "clang-tidy could not process $f"; bad=1; }
  done
fi
[ $nsup -gt 0 ] && echo "lint: $nsup clang-tidy findings suppressed as false positives (tools/lint.sh SUPPRESS)"
rm -f "$tidy_log" "$tidy_log".*
if [ $bad -ne 0 ]; then echo "lint: clang-tidy FAILED"; failed=1; else echo "lint: clang-tidy clean (${#files[@]} files)"; fi

[ $failed -eq 0 ] && echo "lint: 2 passed, 0 failed" || echo "lint: cppcheck/clang-tidy findings above"
exit $failed
