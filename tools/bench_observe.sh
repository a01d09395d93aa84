#!/usr/bin/env bash
# The cost of cached's latency histograms and hot-key sampler (issue #17), measured the way
# tools/bench.sh measures: one cached-bench run alternates 0.1 s slices between servers on
# free loopback ports, each slice's rate divided by memcached's slices around it.
#   0 memcached (reference)  1 cached built -DCACHED_NO_OBSERVE (no histograms, no sampler)
#   2 cached -DCACHED_NO_HOTKEYS (histograms only)  3 cached as shipped (both)
# cost of X = 1 - ratio(X) / ratio(no-observe). Needs build-noobs/cached and build-nohk/cached:
#   make BUILD=build-noobs OPT="-O2 -g -DCACHED_NO_OBSERVE" build-noobs/cached
#   make BUILD=build-nohk OPT="-O2 -g -DCACHED_NO_HOTKEYS" build-nohk/cached
# Environment: OBS_RUNS [3] OBS_SECONDS [5] OBS_WORKLOADS ["get-hit get-pipe16 multiget10"]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${OBS_RUNS:-3}
SECS=${OBS_SECONDS:-5}
WORKLOADS=${OBS_WORKLOADS:-"get-hit get-pipe16 multiget10"}
BENCH=build/cached-bench
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
PORTS=()
for bin in /usr/bin/memcached build-noobs/cached build-nohk/cached build/cached; do
  p=$(free_port)
  if [ "$bin" = /usr/bin/memcached ]; then extra=(-u root); else extra=(--run-as-root); fi
  taskset -c 0 "$bin" -l 127.0.0.1 -p "$p" -t 1 -m 1024 -c 4096 "${extra[@]}" >/dev/null 2>&1 &
  PIDS+=($!)
  wait_port "$p"
  taskset -c 1 "$BENCH" -p "$p" -c 8 -d 16 -v 100 --preload -q >/dev/null
  PORTS+=("$p")
done
ports=$(IFS=,; echo "${PORTS[*]}")
for w in $WORKLOADS; do
  case $w in
    get-hit) args=(-d 1 -v 100) ;;
    get-pipe16) args=(-d 16 -v 100) ;;
    multiget10) args=(-d 1 -m 10 -v 100) ;;
    set-only) args=(-d 1 -r 0:1 -v 100) ;;
  esac
  for r in $(seq "$RUNS"); do
    taskset -c 1 "$BENCH" -p "$ports" --slice 0.1 -c 50 -w 1 -D "$SECS" "${args[@]}" --label "$w-r$r" 2>/dev/null |
      grep '^ALT' | sed "s/^ALT /ALT workload=$w run=$r /"
  done
done
