#!/usr/bin/env bash
# System calls per request of cached and memcached (issue 18), counted by `strace -c -f`
# attached to the server (-t 1) while build/cached-bench sends N requests of one workload:
#   get     gets of preloaded 100-byte values, 50 connections, depth 1
#   set     sets of 100-byte values, 50 connections, depth 1
#   mget10  multi-gets of 10 keys, 50 connections, depth 1
#   pipe16  gets at depth 16 on 50 connections
#   cpr     connect, multi-get of 10, set, close (50 clients; N/10 connections; per connection)
#   mixed1k / mixed100  90% gets, 10% sets of 1,024 / 100-byte values (bench.sh's
#           mixed-90-10-1k), 50 connections, depth 1; the keys are set again with values of
#           that size first
# strace slows the server, so more requests gather per read than unobserved: the counts are a
# floor, the same for both servers. Prints the calls per request by name (> 0.01).
#
# Environment: SYSC_REQUESTS [20000]  SYSC_PHASES ["get set mget10 pipe16 cpr"]
# SYSC_SERVERS ["cached memcached"]; CACHED, MEMCACHED, BENCH.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${SYSC_REQUESTS:-20000}
PHASES=${SYSC_PHASES:-"get set mget10 pipe16 cpr"}
SERVERS=${SYSC_SERVERS:-"cached memcached"}
CACHED=${CACHED:-build/cached}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
BENCH=${BENCH:-build/cached-bench}
KEYS=10000
OUT=$(mktemp -d)
SPID= TPID=
cleanup() {
  [ -z "$TPID" ] || kill "$TPID" 2>/dev/null || true
  [ -z "$SPID" ] || { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; } || true
  rm -rf "$OUT"
}
trap cleanup EXIT
command -v strace >/dev/null || { echo "bench_syscalls_req: strace missing" >&2; exit 2; }
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
for name in $SERVERS; do
  if [ "$name" = cached ]; then bin=$CACHED; else bin=$MEMCACHED; fi
  asroot=()
  if [ "$(id -u)" -eq 0 ]; then
    if [[ "$(basename "$bin")" == memcached* ]]; then asroot=(-u root); else asroot=(--run-as-root); fi
  fi
  port=$(free_port)
  "$bin" "${asroot[@]}" -l 127.0.0.1 -p "$port" -t 1 -m 1024 -c 1024 > "$OUT/$name.log" 2>&1 &
  SPID=$!
  for _ in $(seq 300); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
  done
  "$BENCH" -q -p "$port" -k "$KEYS" --preload -c 4 -d 64 -v 100 > /dev/null
  for phase in $PHASES; do
    reqs=$N vsize=100
    case $phase in
      get) args=(-c 50 -d 1) ;;
      set) args=(-c 50 -d 1 -r 0:1) ;;
      mget10) args=(-c 50 -d 1 -m 10) ;;
      pipe16) args=(-c 50 -d 16) ;;
      cpr) args=(-c 50 --connect-per-request -m 10); reqs=$((N / 10)) ;;
      mixed1k) args=(-c 50 -d 1 -r 9:1); vsize=1024 ;;
      mixed100) args=(-c 50 -d 1 -r 9:1) ;;
      *) echo "bench_syscalls_req: unknown phase $phase" >&2; exit 2 ;;
    esac
    case $phase in mixed*)
      "$BENCH" -q -p "$port" -k "$KEYS" --preload -c 4 -d 64 -v "$vsize" > /dev/null ;;
    esac
    strace -c -f -q -o "$OUT/$name.$phase.strace" -p "$SPID" 2>/dev/null &
    TPID=$!
    sleep 1 # strace attaches to every thread
    "$BENCH" -q -p "$port" -k "$KEYS" -v "$vsize" -w 0 -n "$reqs" "${args[@]}" > "$OUT/$name.$phase.txt"
    grep -q 'errors=0' "$OUT/$name.$phase.txt" || { echo "bench_syscalls_req: $name $phase had errors" >&2; exit 1; }
    kill -INT "$TPID"
    wait "$TPID" 2>/dev/null || true
    TPID=
    awk -v n="$reqs" -v name="$name" -v phase="$phase" '
      $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { per[$NF] = $4 / n; tot += $4 / n }
      END { printf "%-9s %-7s %6.2f syscalls/%s:", name, phase, tot, (phase == "cpr" ? "connection" : "request");
            for (s in per) if (per[s] >= 0.01 && s != "total") printf " %s %.2f", s, per[s]; printf "\n" }' \
      "$OUT/$name.$phase.strace"
  done
  kill "$SPID"
  wait "$SPID" 2>/dev/null || true
  SPID=
done
