#!/usr/bin/env bash
# make bench: cached against Debian's memcached, alternating within one load-generator run.
#
# Four servers run at once on free loopback ports, all with the same -t, -m 1024 and -c 4096:
#   0 memcached    the reference every ratio divides by
#   1 cached
#   2 ceiling      build/cached-ceiling: answers without storing anything (tools/bench/ceiling)
#   3 memcached    a second one: its ratio to the first is the A/A calibration
# For each workload one cached-bench run drives them in turn, 0.1 s each (--slice), with one
# connection set per server: the machine's slow drifts hit neighbouring slices alike, which
# whole rounds of seconds do not (on this shared machine whole rounds swing +-30%). The bench
# divides each server's slice by the mean of memcached's slices on either side, and reports the
# median over the run's rounds; this is repeated BENCH_RUNS times and the table shows the median
# of the runs with their min..max.
#
# Pinning: servers on BENCH_SERVER_CPUS, the loader on BENCH_LOADER_CPU. With 2 CPUs and -t 1
# that is server on CPU 0, loader on CPU 1. With -t 2 on a 2-CPU machine the loader shares a core
# with the servers: a loaded-box comparison, not a scaling figure.
#
# Environment (defaults in brackets):
#   BENCH_RUNS [3]  BENCH_SECONDS [4]  BENCH_WARMUP [1]  BENCH_SLICE [0.1]
#   BENCH_THREADS ["1 2"]: server -t values   BENCH_LOADER_THREADS [1]: cached-bench -T
#   BENCH_CONNS [50]: active connections per server
#   BENCH_WORKLOADS [all]: space-separated names from the table below
#   BENCH_KEYS [100000]  CACHED [build/cached]  MEMCACHED [/usr/bin/memcached]
#   CEILING [build/cached-ceiling]  BENCH [build/cached-bench]
#   BENCH_OUT [build/bench/last.txt]: the raw ALT/RESULT lines of every run
#   BENCH_SERVER_CPUS / BENCH_LOADER_CPU: override the pinning (e.g. on a many-core machine:
#   BENCH_SERVER_CPUS=0-7 BENCH_LOADER_CPU=8-15 BENCH_THREADS="4 8" BENCH_LOADER_THREADS=8)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECONDS:-4}
WARM=${BENCH_WARMUP:-1}
SLICE=${BENCH_SLICE:-0.1}
THREADS=${BENCH_THREADS:-"1 2"}
LTHREADS=${BENCH_LOADER_THREADS:-1}
CONNS=${BENCH_CONNS:-50}
KEYS=${BENCH_KEYS:-100000}
CACHED=${CACHED:-build/cached}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
CEILING=${CEILING:-build/cached-ceiling}
BENCH=${BENCH:-build/cached-bench}
OUT=${BENCH_OUT:-build/bench/last.txt}
NCPU=$(nproc)
LOADER_CPU=${BENCH_LOADER_CPU:-$((NCPU - 1))}

# name | loader arguments (-c is added) | value size to preload
WORKLOAD_TABLE="
get-hit|-d 1 -v 100|100
set-only|-d 1 -r 0:1 -v 100|100
mixed-90-10-1k|-d 1 -r 9:1 -v 1024|1024
multiget10|-d 1 -m 10 -v 100|100
multiget100|-d 1 -m 100 -v 100|100
get-pipe16|-d 16 -v 100|100
idle1000+50|-d 1 -v 100 --idle 1000|100
django-cpr|--connect-per-request -m 10 -v 100|100
"
WORKLOADS=${BENCH_WORKLOADS:-all}

for f in "$BENCH" "$CACHED" "$MEMCACHED" "$CEILING"; do
  [ -x "$f" ] || { echo "bench: $f missing (run make bench)" >&2; exit 2; }
done
mkdir -p "$(dirname "$OUT")"
: > "$OUT"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # port: up to 5 s for the server to accept
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: nothing listening on port $1" >&2
  return 1
}

# start_server kind threads cpus [value size] -> sets SPID SPORT
start_server() {
  local kind=$1 t=$2 cpus=$3 vsize=${4:-100} cmd
  SPORT=$(free_port)
  case $kind in
    memcached) cmd=("$MEMCACHED" -l 127.0.0.1 -p "$SPORT" -t "$t" -m 1024 -c 4096)
               [ "$(id -u)" -eq 0 ] && cmd+=(-u root) ;;
    cached)    cmd=("$CACHED" -l 127.0.0.1 -p "$SPORT" -t "$t" -m 1024 -c 4096)
               [ "$(id -u)" -eq 0 ] && cmd+=(--run-as-root) ;;
    ceiling)   cmd=("$CEILING" -l 127.0.0.1 -p "$SPORT" -t "$t" -v "$vsize") ;;
  esac
  taskset -c "$cpus" "${cmd[@]}" >/dev/null 2>&1 &
  SPID=$!
  PIDS+=("$SPID")
  wait_port "$SPORT"
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# stats: reads numbers, prints "median min max"
stats() {
  sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "0 0 0"; exit}
    m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; print m, v[1], v[NR]}'
}

echo "cached-bench, alternating: $CACHED vs $MEMCACHED ($("$MEMCACHED" -V)), ceiling $CEILING"
echo "machine: $NCPU CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'),"\
     "$(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "method: $RUNS runs x ${SECS} s (+${WARM} s warm-up) per workload, slices of ${SLICE} s"\
     "cycling memcached, cached, ceiling, memcached (A/A); $CONNS conns per server, loader -T $LTHREADS"
echo "figures: server / memcached, median of the runs' medians (min..max over runs)"
echo

total_errors=0
for t in $THREADS; do
  if [ -n "${BENCH_SERVER_CPUS:-}" ]; then scpus=$BENCH_SERVER_CPUS
  elif [ "$t" -eq 1 ]; then scpus=0
  else scpus=0-$((t - 1)); fi
  echo "== server -t $t, pinned to CPU $scpus; loader pinned to CPU $LOADER_CPU$(
    [ "$t" -ge "$NCPU" ] && echo " (SHARED with the servers: only $NCPU CPUs)")"
  start_server memcached "$t" "$scpus"; MPID=$SPID; MPORT=$SPORT
  start_server cached "$t" "$scpus"; CPID=$SPID; CPORT=$SPORT
  start_server memcached "$t" "$scpus"; M2PID=$SPID; M2PORT=$SPORT
  printf '%-15s %-6s %-22s %-22s %-22s %-17s %s\n' workload metric "cached/mc" "ceiling/mc" \
    "A/A mc/mc" "p99 us cached/mc" "rounds"
  while IFS='|' read -r name args vsize; do
    [ -n "$name" ] || continue
    [ "$WORKLOADS" = all ] || [[ " $WORKLOADS " == *" $name "* ]] || continue
    metric=req/s
    [[ "$args" == *connect-per-request* ]] && metric=conn/s
    start_server ceiling "$t" "$scpus" "$vsize"; ZPID=$SPID; ZPORT=$SPORT
    "$BENCH" -q --preload -c 4 -d 64 -v "$vsize" -k "$KEYS" -p "$MPORT,$CPORT,$M2PORT" \
      --label "t$t-$name-preload" >> "$OUT" 2>>"$OUT.stderr"
    for r in $(seq "$RUNS"); do
      # shellcheck disable=SC2086
      taskset -c "$LOADER_CPU" "$BENCH" -q -k "$KEYS" -c "$CONNS" -T "$LTHREADS" -w "$WARM" \
        -D "$SECS" --slice "$SLICE" -p "$MPORT,$CPORT,$ZPORT,$M2PORT" \
        --label "t$t-$name-r$r" $args 2>>"$OUT.stderr" | sed "s/^ALT /ALT label=t$t-$name-r$r /" >> "$OUT" \
        || { echo "bench: $name run $r failed" >&2; total_errors=$((total_errors + 1)); }
    done
    for p in "$MPID" "$CPID" "$M2PID" "$ZPID"; do
      kill -0 "$p" 2>/dev/null || { echo "bench: a server died during $name" >&2; exit 1; }
    done
    kill "$ZPID"; wait "$ZPID" 2>/dev/null || true
    col() { # target -> "median (min..max)" of the runs' median ratios
      grep "^ALT label=t$t-$name-r.* target=$1 " "$OUT" | field ratio_median | stats |
        awk '{printf "%.2fx (%.2f..%.2f)", $1, $2, $3}'
    }
    p99() { grep "^ALT label=t$t-$name-r.* target=$1 " "$OUT" | field p99_us | stats | cut -d' ' -f1; }
    rounds=$(grep "^ALT label=t$t-$name-r.* target=1 " "$OUT" | field rounds | paste -sd+ | bc)
    errs=$(grep "^RESULT label=t$t-$name-" "$OUT" | field errors | awk '{s+=$1} END {print s+0}')
    total_errors=$((total_errors + errs))
    printf '%-15s %-6s %-22s %-22s %-22s %-17s %s%s\n' "$name" "$metric" "$(col 1)" "$(col 2)" \
      "$(col 3)" "$(printf '%.0f/%.0f' "$(p99 1)" "$(p99 0)")" "$rounds" \
      "$([ "$errs" -gt 0 ] && echo "  ERRORS: $errs")"
  done <<< "$WORKLOAD_TABLE"
  kill "$MPID" "$CPID" "$M2PID"
  wait "$MPID" "$CPID" "$M2PID" 2>/dev/null || true
  PIDS=()
  echo
done
echo "raw results: $OUT"
if [ "$total_errors" -gt 0 ]; then
  echo "bench: $total_errors wrong or missing replies (see $OUT.stderr)" >&2
  exit 1
fi
