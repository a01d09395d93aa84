#!/usr/bin/env bash
# Instructions per request over TLS, load-independent (callgrind counts instructions, not
# time): cached -Z and memcached -Z, each -t 1 under `valgrind --tool=callgrind`, serve
# tools/tlsbench/ipr_client.py once with 0 and once with N requests of a mode (same connect,
# handshake, preload and warm-up); (Ir(N) - Ir(0)) / N is the server's whole-process cost of
# one request: every thread, libevent, OpenSSL, libc and the kernel boundary's user side.
#
# Environment: N [3000] requests per mode   MODES ["get multiget pipeline"]
#              CACHED [build/cached]  MEMCACHED [/usr/bin/memcached]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-3000}
MODES=${MODES:-"get multiget pipeline"}
CACHED=${CACHED:-build/cached}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
# memcached sets its fd limit (soft and hard) to -c, and valgrind accepts only its own hard
# limit, 12 below the real one: 1024 - 12.
ulimit -n 1024
tmp=$(mktemp -d)
pid=
cleanup() { if [ -n "$pid" ] && [ "$pid" -gt 0 ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$tmp"; }
trap cleanup EXIT
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/k.pem" 2>/dev/null
openssl req -x509 -new -key "$tmp/k.pem" -out "$tmp/c.pem" -days 2 -subj /CN=localhost 2>/dev/null
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tls=(-Z -o "ssl_chain_cert=$tmp/c.pem,ssl_key=$tmp/k.pem")
ir() { # mode n cmd... -> prints the server's total Ir
  local mode=$1 n=$2; shift 2
  local port; port=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" \
      "$@" -p "$port" -l 127.0.0.1 -t 1 -m 64 -c 1012 "${tls[@]}" 2>"$tmp/log" &
  pid=$!
  /usr/bin/python3 tools/tlsbench/ipr_client.py "$port" "$mode" "$n" >/dev/null
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  awk '/^(summary|totals):/ {print $2; exit}' "$tmp/out"
}
root=(); [ "$(id -u)" = 0 ] && root=(-u root)
asroot=(); [ "$(id -u)" = 0 ] && asroot=(--run-as-root)
echo "# Ir per request: (Ir(N=$N) - Ir(N=0)) / N, callgrind, both servers -t 1"
for m in $MODES; do
  c0=$(ir "$m" 0 "$CACHED" "${asroot[@]}"); c1=$(ir "$m" "$N" "$CACHED" "${asroot[@]}")
  m0=$(ir "$m" 0 "$MEMCACHED" -U 0 "${root[@]}"); m1=$(ir "$m" "$N" "$MEMCACHED" -U 0 "${root[@]}")
  awk -v m="$m" -v n="$N" -v c0="$c0" -v c1="$c1" -v m0="$m0" -v m1="$m1" 'BEGIN {
    c = (c1 - c0) / n; k = (m1 - m0) / n
    printf "%-9s cached %8.0f  memcached %8.0f  Ir/request; memcached/cached %.2fx\n", m, c, k, k / c }'
done
