#!/usr/bin/env bash
# Server CPU time per request: each server alone at -t 1 on CPU 0, preloaded with 100,000 keys
# of 100 bytes, then `cached-bench -c 50 -d 1 -m M -n N` on CPU 1; the server's utime+stime
# (from /proc, 10 ms ticks) over the run divided by N. Servers run one after another, so drifts
# of the machine's load still show; less than in throughput, because a loaded machine takes
# CPU away from the server but adds little to what each request costs (cache pollution aside).
# Usage: tools/bench_cpu_req.sh M N BINARY... (a path ending in "memcached" runs as memcached)
set -euo pipefail
cd "$(dirname "$0")/.."
M=$1; N=$2; shift 2
BENCH=${BENCH:-build/cached-bench}
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
for bin in "$@"; do
  port=$(free_port)
  case $bin in
    *memcached) args=(-m 1024 -c 4096); [ "$(id -u)" -eq 0 ] && args+=(-u root) ;;
    *) args=(-m 1024 -c 4096); [ "$(id -u)" -eq 0 ] && args+=(--run-as-root) ;;
  esac
  taskset -c 0 "$bin" -l 127.0.0.1 -p "$port" -t 1 "${args[@]}" >/dev/null 2>&1 &
  spid=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  "$BENCH" -q --preload -c 4 -d 64 -v 100 -k 100000 -p "$port" >/dev/null
  taskset -c 1 "$BENCH" -q -k 100000 -c 50 -w 0 -n $((N / 5)) -d 1 -m "$M" -v 100 -p "$port" >/dev/null
  t0=$(awk '{print $14 + $15}' /proc/$spid/stat)
  taskset -c 1 "$BENCH" -q -k 100000 -c 50 -w 0 -n "$N" -d 1 -m "$M" -v 100 -p "$port" >/dev/null
  t1=$(awk '{print $14 + $15}' /proc/$spid/stat)
  hz=$(getconf CLK_TCK)
  echo "$bin -m $M: $(( (t1 - t0) * 1000000000 / hz / N )) ns server CPU per request"
  kill "$spid"; wait "$spid" 2>/dev/null || true
done
