#!/usr/bin/env bash
# TLS benchmarks for BENCHMARKS.md: cached -Z against memcached -Z, alternating within each run
# (tools/tlsbench/tlsbench.c). Makes an EC P-256 certificate at run time with the openssl CLI.
#
# Environment: TLS_THREADS [2] server -t   LOADER_THREADS [4]   SECS [6]   CONNS [4]
#              CACHED [build/cached]  MEMCACHED [/usr/bin/memcached]  BENCH [build/cached-tlsbench]
#              MODES ["full resumed get pipeline multiget storm"]
#              SERVER_CPUS / LOADER_CPUS: taskset lists (many-core runbook in BENCHMARKS.md)
#              CACHED_OPTS: more -o settings for cached (comma-separated, e.g.
#                    ssl_handshake_priority=low)
#              AA=1: server B is a second cached (same binary, same flags): the A/A row, i.e.
#                    how far the ratio strays from 1.00 on this machine with no difference
# Each mode's line also gives each server's CPU time (user + system) per operation.
set -euo pipefail
cd "$(dirname "$0")/../.."
T=${TLS_THREADS:-2}
LT=${LOADER_THREADS:-4}
SECS=${SECS:-6}
CONNS=${CONNS:-4}
CACHED=${CACHED:-build/cached}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
BENCH=${BENCH:-build/cached-tlsbench}
MODES=${MODES:-"full resumed get pipeline multiget storm"}
SRV=()
LOAD=()
[ -n "${SERVER_CPUS:-}" ] && SRV=(taskset -c "$SERVER_CPUS")
[ -n "${LOADER_CPUS:-}" ] && LOAD=(taskset -c "$LOADER_CPUS")
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/k.pem" 2>/dev/null
openssl req -x509 -new -key "$tmp/k.pem" -out "$tmp/c.pem" -days 2 -subj /CN=localhost 2>/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pc=$(free_port); pm=$(free_port)
root=(); [ "$(id -u)" = 0 ] && root=(-u root)
tls=(-Z -o "ssl_chain_cert=$tmp/c.pem,ssl_key=$tmp/k.pem")
ctls=(-Z -o "ssl_chain_cert=$tmp/c.pem,ssl_key=$tmp/k.pem${CACHED_OPTS:+,$CACHED_OPTS}")
"${SRV[@]}" "$CACHED" -p "$pc" -l 127.0.0.1 -t "$T" -m 256 -c 4096 "${ctls[@]}" \
    $([ "$(id -u)" = 0 ] && echo --run-as-root) 2>/dev/null & pids+=($!)
if [ "${AA:-0}" = 1 ]; then
  "${SRV[@]}" "$CACHED" -p "$pm" -l 127.0.0.1 -t "$T" -m 256 -c 4096 "${tls[@]}" \
      $([ "$(id -u)" = 0 ] && echo --run-as-root) 2>/dev/null & pids+=($!)
  bname=cached
else
  "${SRV[@]}" "$MEMCACHED" -p "$pm" -l 127.0.0.1 -U 0 -t "$T" -m 256 -c 4096 "${tls[@]}" \
      "${root[@]}" 2>/dev/null & pids+=($!)
  bname=memcached
fi
export TLSBENCH_PIDS="${pids[0]} ${pids[1]}"
sleep 1
echo "# cached (A, port $pc) vs $bname (B, port $pm), both -t $T; loader threads $LT; $(nproc) CPUs; $(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg)"
for m in $MODES; do
  case $m in
    get|pipeline|multiget) extra=(-c "$CONNS") ;;
    *) extra=() ;;
  esac
  "${LOAD[@]}" "$BENCH" "$m" "$pc" "$pm" -t "$LT" -s "$SECS" "${extra[@]}"
done
