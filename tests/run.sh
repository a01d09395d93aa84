#!/usr/bin/env bash
# The one test runner: `tests/run.sh [unit|integration|asan|extra|all]`.
# Runs every suite, each as its own process, prints each one's result and a final
# "N passed, M failed" line, and exits non-zero if anything failed.
#   unit         tests/unit/check_*.c (Check), release build
#   integration  tests/integration/test_*.py|sh against build/cached (real processes)
#   asan         the unit suites and integration suites again with the ASan+UBSan build
#   extra        lint (cppcheck, clang-tidy), valgrind, fuzz (60 s): tests/extra/*.sh
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
PY=/usr/bin/python3
passed=0 failed=0 failures=()
logdir=$(mktemp -d /tmp/cached-tests.XXXXXX)

run_one() { # name, command...
  local name=$1; shift
  local log="$logdir/$(echo "$name" | tr '/ ' '__').log"
  local t0=$SECONDS
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1)); printf 'PASS %-52s %4ss  %s\n' "$name" $((SECONDS - t0)) "$(tail -n 1 "$log")"
  else
    failed=$((failed + 1)); failures+=("$name")
    printf 'FAIL %-52s %4ss\n' "$name" $((SECONDS - t0))
    sed 's/^/    | /' "$log" | tail -n 60
  fi
}

unit() { # build dir, extra make args...
  local b=$1; shift
  make --no-print-directory -s BUILD="$b" "$@" unit-bins >"$logdir/build-$b.log" 2>&1 \
    || { cat "$logdir/build-$b.log"; failed=$((failed + 1)); failures+=("build $b"); return; }
  for t in "$b"/tests/check_*; do
    [ -x "$t" ] || continue
    run_one "unit[$b] $(basename "$t")" env CK_DEFAULT_TIMEOUT=120 "$t"
  done
}

integration() { # build dir
  local b=$1
  for t in tests/integration/test_*; do
    case "$t" in
      *.py) run_one "integration[$b] $(basename "$t")" env CACHED="$PWD/$b/cached" CACHED_BUILD="$b" $PY "$t" ;;
      *.sh) run_one "integration[$b] $(basename "$t")" env CACHED="$PWD/$b/cached" CACHED_BUILD="$b" bash "$t" ;;
    esac
  done
}

ASAN_ARGS=(OPT="-O1 -g -DCACHED_DEBUG -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
           LDFLAGS="-fsanitize=address,undefined")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

case "$what" in
  unit) unit build ;;
  integration) integration build ;;
  asan) unit build-asan "${ASAN_ARGS[@]}"; integration build-asan ;;
  extra) for t in tests/extra/*.sh; do [ -f "$t" ] && run_one "extra $(basename "$t")" bash "$t"; done ;;
  all)
    unit build
    integration build
    unit build-asan "${ASAN_ARGS[@]}"
    integration build-asan
    for t in tests/extra/*.sh; do [ -f "$t" ] && run_one "extra $(basename "$t")" bash "$t"; done
    ;;
  *) echo "usage: tests/run.sh [unit|integration|asan|extra|all]" >&2; exit 64 ;;
esac

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "logs: $logdir"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
