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

# Integration files run TEST_JOBS at a time (default 2; 1 = one after another): most of their
# time is spent waiting (expiry, sweeps, clients starting), each picks its own free ports
# (harness.free_port: below the kernel's ephemeral range, so no client connection can take
# one) and its own mktemp names. The files in ALONE run with nothing beside them. Results are
# printed in file order, each as it is known.
ALONE=" test_memcached_suite.sh " # runs its .t files three at a time itself; some time in whole seconds
start_bg() { # name, command... : runs it in the background, its exit code and seconds to files
  local name=$1; shift
  local f="$logdir/$(echo "$name" | tr '/ ' '__')"
  ( t0=$SECONDS; "$@" >"$f.log" 2>&1; rc=$?; echo $((SECONDS - t0)) >"$f.secs"; echo $rc >"$f.rc.tmp"; mv "$f.rc.tmp" "$f.rc" ) &
}
report_bg() { # name : prints and counts one finished background run, as run_one does
  local name=$1 f rc secs
  f="$logdir/$(echo "$name" | tr '/ ' '__')"
  rc=$(cat "$f.rc"); secs=$(cat "$f.secs")
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1)); printf 'PASS %-52s %4ss  %s\n' "$name" "$secs" "$(tail -n 1 "$f.log")"
  else
    failed=$((failed + 1)); failures+=("$name")
    printf 'FAIL %-52s %4ss\n' "$name" "$secs"
    sed 's/^/    | /' "$f.log" | tail -n 60
  fi
}

integration() { # build dir
  local b=$1 jobs=${TEST_JOBS:-2} t name queue=() cmd
  for t in tests/integration/test_*; do
    case "$t" in
      *.py) cmd=($PY "$t") ;;
      *.sh) cmd=(bash "$t") ;;
      *) continue ;;
    esac
    name="integration[$b] $(basename "$t")"
    case "$ALONE" in *" $(basename "$t") "*)
      while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n; done
      queue_report; run_one "$name" env CACHED="$PWD/$b/cached" CACHED_BUILD="$b" "${cmd[@]}"
      continue ;;
    esac
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; queue_report; done
    start_bg "$name" env CACHED="$PWD/$b/cached" CACHED_BUILD="$b" "${cmd[@]}"
    queue+=("$name")
  done
  wait
  queue_report
}
queue_report() { # reports, in order, the queued runs that have finished (up to the first running one)
  local f
  while [ ${#queue[@]} -gt 0 ]; do
    f="$logdir/$(echo "${queue[0]}" | tr '/ ' '__')"
    [ -f "$f.rc" ] || break
    report_bg "${queue[0]}"
    queue=("${queue[@]:1}")
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
