#!/usr/bin/env bash
# Builds the libFuzzer target (protocol + storage + config, ASan+UBSan, clang-14) into
# build-fuzz/ and runs it.
#
#   tests/fuzz/run.sh [SECONDS] [libFuzzer args...]   replay regressions, then fuzz SECONDS (300)
#   tests/fuzz/run.sh --replay                         replay tests/fuzz/regressions/* only
#   tests/fuzz/run.sh --build                          build only
#
# server/*.c is not linked (the fuzzer brings its own main); storage/mem.c is replaced by
# tests/fuzz/mem_shim.c (libc malloc) so ASan sees every allocation.
# New interesting inputs go to build-fuzz/corpus/ (tests/fuzz/corpus/ is the seed and is only
# read); crashes land in build-fuzz/crashes/. Turn every crash into a file in
# tests/fuzz/regressions/ once it is understood, so fuzz60.sh replays it forever.
set -euo pipefail
cd "$(dirname "$0")/../.."

CC=${FUZZ_CC:-clang-14}
OUT=build-fuzz
BIN=$OUT/fuzz_proto
mode=fuzz secs=300
case "${1:-}" in
  --replay) mode=replay; shift ;;
  --build) mode=build; shift ;;
  '') ;;
  *) secs=$1; shift ;;
esac

SRCS=(tests/fuzz/fuzz_proto.c tests/fuzz/mem_shim.c ${FUZZ_EXTRA_SRCS:-})
for f in storage/*.c protocol/*.c config/*.c; do
  [ -f "$f" ] || continue
  [ "$f" = storage/mem.c ] && continue
  SRCS+=("$f")
done

CFLAGS=(-std=gnu11 -g -O1 -fno-omit-frame-pointer -I.
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
        -Wall -Wextra -Wno-unused-parameter ${FUZZ_CFLAGS:-})

# Rebuild when any source or header is newer than the binary (the build takes ~20 s).
need_build=1
if [ -x "$BIN" ]; then
  need_build=0
  for f in "${SRCS[@]}" storage/*.h protocol/*.h config/*.h tests/fuzz/run.sh; do
    [ -e "$f" ] && [ "$f" -nt "$BIN" ] && { need_build=1; break; }
  done
fi
if [ $need_build = 1 ]; then
  mkdir -p "$OUT/obj"
  objs=()
  for f in "${SRCS[@]}"; do
    o="$OUT/obj/$(echo "${f%.c}" | tr / _).o"
    "$CC" "${CFLAGS[@]}" -c -o "$o" "$f" &
    objs+=("$o")
    # two compilers at a time: the machine has 2 cores
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
  done
  wait
  for o in "${objs[@]}"; do [ -f "$o" ] || { echo "fuzz build failed" >&2; exit 1; }; done
  # protocol/stats.c reports the libevent version, so libevent is linked (nothing else of it
  # runs); protocol/sasl.c links Cyrus SASL (only reached with -S)
  "$CC" "${CFLAGS[@]}" -o "$BIN" "${objs[@]}" $(pkg-config --libs libevent 2>/dev/null || echo -levent) -lsasl2 -lpthread -lm
  rm -f "${objs[@]}"
fi
[ "$mode" = build ] && { echo "built $BIN"; exit 0; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Regressions: every input that ever crashed the target must now run clean.
shopt -s nullglob
regs=(tests/fuzz/regressions/*)
if [ ${#regs[@]} -gt 0 ]; then
  "$BIN" -runs=1 "${regs[@]}" >"$OUT/replay.log" 2>&1 || {
    cat "$OUT/replay.log"; echo "fuzz: a regression input fails again" >&2; exit 1; }
  echo "fuzz: ${#regs[@]} regression inputs replayed clean"
fi
[ "$mode" = replay ] && exit 0

mkdir -p "$OUT/corpus" "$OUT/crashes"
set +e
"$BIN" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2560 -max_len=20000 \
  -print_final_stats=1 -artifact_prefix="$OUT/crashes/" "$@" \
  "$OUT/corpus" tests/fuzz/corpus >"$OUT/fuzz.log" 2>&1
rc=$?
set -e
grep -E '^#[0-9]+ +(INITED|DONE)|ERROR|SUMMARY|runtime error|contract violation|stat::|Test unit written' \
  "$OUT/fuzz.log" | head -n 60 || true
grep -E '^#[0-9]+' "$OUT/fuzz.log" | tail -n 1 | sed 's/^/fuzz: last status: /' || true
if [ "$rc" -ne 0 ]; then
  tail -n 50 "$OUT/fuzz.log"
  echo "fuzz: FAILED (exit $rc); crash inputs in $OUT/crashes/, full log $OUT/fuzz.log" >&2
  exit 1
fi
last=$(grep -E '^#[0-9]+' "$OUT/fuzz.log" | tail -n 1)
execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last"); cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
echo "fuzz: 1 passed, 0 failed (${secs} s clean: ${execs:-?} executions, cov ${cov:-?})"
