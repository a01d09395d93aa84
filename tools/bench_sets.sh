#!/usr/bin/env bash
# Set throughput by value size, as a ratio to memcached in the same run (issue 13's figures).
#
# Four servers at once on free loopback ports, each -t 1 -m 1024 -c 4096, pinned to CPU 0:
#   0 memcached   the reference       1 $CACHED_BEFORE (an older build, e.g. before a change)
#   2 $CACHED     the build measured  3 memcached again (A/A: the noise floor)
# One cached-bench run per size alternates them in 0.1 s slices (loader pinned to the last
# CPU), so slow drifts of this shared machine hit all four alike; each server's slices are
# divided by memcached's neighbours and the run's median ratio is printed. BENCH_RUNS runs per
# size; the table shows the median and min..max over runs.
#
#   CACHED_BEFORE=/path/to/old/cached tools/bench_sets.sh
# Environment: BENCH_SIZES ["100 1024 102400 1000000"] BENCH_RUNS [3] BENCH_SECONDS [4]
#              BENCH_CONNS [20] (values >= 100 KB: BENCH_CONNS_BIG [4], slices of
#              BENCH_SLICE_BIG [0.5] s) BENCH [build/cached-bench] CACHED [build/cached]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${BENCH_SIZES:-"100 1024 102400 1000000"}
RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECONDS:-4}
CONNS=${BENCH_CONNS:-20}
CONNS_BIG=${BENCH_CONNS_BIG:-4}
SLICE_BIG=${BENCH_SLICE_BIG:-0.5}
BENCH=${BENCH:-build/cached-bench}
CACHED=${CACHED:-build/cached}
BEFORE=${CACHED_BEFORE:?set CACHED_BEFORE to the build to compare with}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
LOADER_CPU=$(($(nproc) - 1))
OUT=$(mktemp /tmp/bench_sets.XXXXXX)

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
start() { # binary kind -> PORT
  local bin=$1 kind=$2
  PORT=$(free_port)
  local cmd=("$bin" -l 127.0.0.1 -p "$PORT" -t 1 -m 1024 -c 4096)
  if [ "$(id -u)" -eq 0 ]; then
    [ "$kind" = memcached ] && cmd+=(-u root) || cmd+=(--run-as-root)
  fi
  taskset -c 0 "${cmd[@]}" >/dev/null 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && return 0; sleep 0.1; done
  echo "bench_sets: $bin did not start" >&2; exit 1
}
start "$MEMCACHED" memcached; P0=$PORT
start "$BEFORE" cached; P1=$PORT
start "$CACHED" cached; P2=$PORT
start "$MEMCACHED" memcached; P3=$PORT

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
stats() {
  sort -g | awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2;
    printf "%.2fx (%.2f..%.2f)", m, v[1], v[NR]}'
}
echo "set throughput / memcached ($("$MEMCACHED" -V)), $(date -u '+%Y-%m-%d %H:%M UTC'),"\
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$RUNS runs x $SECS s per size, $CONNS conns per server, depth 1, servers -t 1 on CPU 0"
printf '%-10s %-22s %-22s %-22s %s\n' value "before/mc" "after/mc" "A/A mc/mc" "mc sets/s"
for v in $SIZES; do
  keys=100000 conns=$CONNS slice=0.1
  [ "$v" -ge 100000 ] && keys=200 conns=$CONNS_BIG slice=$SLICE_BIG
  for r in $(seq "$RUNS"); do
    taskset -c "$LOADER_CPU" "$BENCH" -q -k "$keys" -c "$conns" -r 0:1 -v "$v" -d 1 -w 1 \
      -D "$SECS" --slice "$slice" -p "$P0,$P1,$P2,$P3" --label "v$v-r$r" 2>>"$OUT.err" |
      sed "s/^ALT /ALT label=v$v-r$r /" >> "$OUT"
  done
  col() { grep "^ALT label=v$v-r.* target=$1 " "$OUT" | field ratio_median | stats; }
  rate=$(grep "^ALT label=v$v-r.* target=0 " "$OUT" | field rate | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  printf '%-10s %-22s %-22s %-22s %s\n' "$v" "$(col 1)" "$(col 2)" "$(col 3)" "${rate:-?}"
done
echo "raw: $OUT"
