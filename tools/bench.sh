#!/usr/bin/env bash
# make bench: cached against Debian's memcached, same settings, A/B alternating rounds.
#
# Both servers run at once on free loopback ports with the same -t, -m 1024 and -c 4096.
# For each workload both are preloaded, then each round runs the load against A and B in turn
# (the order flips every round, so a noisy neighbour or a warming cache does not favour one).
# Printed: per workload the median of the rounds with min..max, the ratio cached/memcached of
# the medians, median p99, and the CPU the loader used against the CPU the server used.
#
# Pinning: with -t 1 the server runs on CPU 0 and the loader on CPU 1. With -t 2 the server
# may use both CPUs and the loader still runs on CPU 1, so they share a core (this machine
# has 2): -t 2 figures are a loaded-box comparison, not a scaling figure.
#
# Environment (defaults in brackets):
#   BENCH_ROUNDS [5]  BENCH_SECONDS [5]  BENCH_WARMUP [1]  BENCH_THREADS ["1 2"]
#   BENCH_WORKLOADS [all]: space-separated names from the table below
#   BENCH_KEYS [100000]  CACHED [build/cached]  MEMCACHED [/usr/bin/memcached]
#   BENCH_OUT [build/bench/last.txt]: the raw RESULT lines of every run
#   BENCH_SERVER_CPUS / BENCH_LOADER_CPU: override the pinning (e.g. when nproc > 2)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${BENCH_ROUNDS:-5}
SECS=${BENCH_SECONDS:-5}
WARM=${BENCH_WARMUP:-1}
THREADS=${BENCH_THREADS:-"1 2"}
KEYS=${BENCH_KEYS:-100000}
CACHED=${CACHED:-build/cached}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
BENCH=${BENCH:-build/cached-bench}
OUT=${BENCH_OUT:-build/bench/last.txt}
LOADER_CPU=${BENCH_LOADER_CPU:-1}

# name | loader arguments | value size to preload
WORKLOAD_TABLE="
get-hit|-c 50 -d 1 -v 100|100
get-pipe16|-c 50 -d 16 -v 100|100
multiget10|-c 50 -d 1 -m 10 -v 100|100
mixed-90-10-1k|-c 50 -d 1 -r 9:1 -v 1024|1024
set-only|-c 50 -d 1 -r 0:1 -v 100|100
idle1000+50|-c 50 -d 1 -v 100 --idle 1000|100
django-cpr|-c 50 --connect-per-request -m 10 -v 100|100
"
WORKLOADS=${BENCH_WORKLOADS:-all}

for f in "$BENCH" "$CACHED" "$MEMCACHED"; do
  [ -x "$f" ] || { echo "bench: $f missing (run make first)" >&2; exit 2; }
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

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start_server name binary threads cpus -> sets SPID SPORT
start_server() {
  local name=$1 bin=$2 t=$3 cpus=$4 asroot=()
  SPORT=$(free_port)
  if [ "$(id -u)" -eq 0 ]; then
    # memcached wants -u root; cached wants --run-as-root (a memcached may stand in for cached)
    if [[ "$(basename "$bin")" == memcached* ]]; then asroot=(-u root); else asroot=(--run-as-root); fi
  fi
  taskset -c "$cpus" "$bin" "${asroot[@]}" -l 127.0.0.1 -p "$SPORT" -t "$t" -m 1024 -c 4096 \
    >/dev/null 2>&1 &
  SPID=$!
  PIDS+=("$SPID")
  wait_port "$SPORT"
}

# run_load label port pid args... -> appends "RESULT ... server_cpu_s=X" to $OUT, echoes it
run_load() {
  local label=$1 port=$2 pid=$3
  shift 3
  local before after line rc=0
  before=$(cpu_ticks "$pid")
  line=$(taskset -c "$LOADER_CPU" "$BENCH" -q -p "$port" -k "$KEYS" --label "$label" "$@" \
         2>>"$OUT.stderr" | grep '^RESULT') || rc=$?
  after=$(cpu_ticks "$pid")
  kill -0 "$pid" 2>/dev/null || { echo "bench: server $label died" >&2; exit 1; }
  [ -n "$line" ] || { echo "bench: $label produced no result (rc $rc)" >&2; exit 1; }
  line="$line server_cpu_s=$(awk -v d=$((after - before)) -v hz="$(getconf CLK_TCK)" \
         'BEGIN{printf "%.3f", d / hz}')"
  echo "$line" >> "$OUT"
  echo "$line"
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# stats: reads numbers, prints "median min max"
stats() {
  sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "0 0 0"; exit}
    m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; print m, v[1], v[NR]}'
}

echo "cached-bench A/B: $CACHED vs $MEMCACHED ($("$MEMCACHED" -V))"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'),"\
     "$(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rounds: $ROUNDS x ${SECS} s (+${WARM} s warm-up), keys: $KEYS x 16 B, A/B order alternates"
echo "servers: -m 1024 -c 4096 -l 127.0.0.1; loader: 1 thread"
echo

total_errors=0
for t in $THREADS; do
  if [ "$t" -eq 1 ]; then scpus=${BENCH_SERVER_CPUS:-0}; else scpus=${BENCH_SERVER_CPUS:-0-$((t - 1))}; fi
  echo "== server -t $t, pinned to CPU $scpus; loader pinned to CPU $LOADER_CPU$(
    [ "$t" -gt 1 ] && [ "$(nproc)" -le "$t" ] && echo " (SHARED with the server: only $(nproc) CPUs)")"
  start_server cached "$CACHED" "$t" "$scpus"; APID=$SPID; APORT=$SPORT
  start_server memcached "$MEMCACHED" "$t" "$scpus"; BPID=$SPID; BPORT=$SPORT
  printf '%-15s %-9s %25s %25s %7s %19s %17s\n' workload metric "cached median (min..max)" \
    "memcached median (min..max)" ratio "p99 us cached/mc" "CPU loader/server"
  while IFS='|' read -r name args vsize; do
    [ -n "$name" ] || continue
    [ "$WORKLOADS" = all ] || [[ " $WORKLOADS " == *" $name "* ]] || continue
    metric=ops_per_sec
    [[ "$args" == *connect-per-request* ]] && metric=conns_per_sec
    for side in A B; do
      if [ $side = A ]; then port=$APORT; pid=$APID; else port=$BPORT; pid=$BPID; fi
      run_load "t$t-$name-preload-$side" "$port" "$pid" --preload -c 4 -d 64 -v "$vsize" \
        > /dev/null
    done
    for r in $(seq "$ROUNDS"); do
      order="A B"; [ $((r % 2)) -eq 0 ] && order="B A"
      for side in $order; do
        if [ $side = A ]; then port=$APORT; pid=$APID; lbl=cached; else port=$BPORT; pid=$BPID; lbl=memcached; fi
        # shellcheck disable=SC2086
        run_load "t$t-$name-$lbl-r$r" "$port" "$pid" -w "$WARM" -D "$SECS" $args > /dev/null
      done
    done
    a=$(grep " label=t$t-$name-cached-r" "$OUT" | field "$metric" | stats)
    b=$(grep " label=t$t-$name-memcached-r" "$OUT" | field "$metric" | stats)
    ap99=$(grep " label=t$t-$name-cached-r" "$OUT" | field p99_us | stats | cut -d' ' -f1)
    bp99=$(grep " label=t$t-$name-memcached-r" "$OUT" | field p99_us | stats | cut -d' ' -f1)
    lcpu=$(grep " label=t$t-$name-cached-r" "$OUT" | field cpu_total_s | stats | cut -d' ' -f1)
    scpu=$(grep " label=t$t-$name-cached-r" "$OUT" | field server_cpu_s | stats | cut -d' ' -f1)
    errs=$(grep " label=t$t-$name-" "$OUT" | field errors | awk '{s+=$1} END {print s+0}')
    total_errors=$((total_errors + errs))
    read -r am amin amax <<< "$a"
    read -r bm bmin bmax <<< "$b"
    ratio=$(awk -v a="$am" -v b="$bm" 'BEGIN{printf (b > 0 ? "%.2f" : "-"), a / b}')
    printf '%-15s %-9s %25s %25s %7s %19s %17s%s\n' "$name" "${metric%_per_sec}/s" \
      "$(printf '%.0f (%.0f..%.0f)' "$am" "$amin" "$amax")" \
      "$(printf '%.0f (%.0f..%.0f)' "$bm" "$bmin" "$bmax")" "$ratio" \
      "$(printf '%.0f/%.0f' "$ap99" "$bp99")" "$(printf '%.2f/%.2f s' "$lcpu" "$scpu")" \
      "$([ "$errs" -gt 0 ] && echo "  ERRORS: $errs")"
  done <<< "$WORKLOAD_TABLE"
  kill "$APID" "$BPID"
  wait "$APID" "$BPID" 2>/dev/null || true
  PIDS=()
  echo
done
echo "CPU loader/server: medians over the cached rounds, whole run (warm-up included)."
echo "raw results: $OUT"
if [ "$total_errors" -gt 0 ]; then
  echo "bench: $total_errors wrong or missing replies (see $OUT.stderr)" >&2
  exit 1
fi
