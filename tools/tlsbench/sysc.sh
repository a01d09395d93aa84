#!/usr/bin/env bash
# System calls per request over TLS, load-independent: cached -Z and memcached -Z, each -t 1
# under `strace -c -f`, serve tools/tlsbench/ipr_client.py once with 0 and once with N
# requests of a mode (same connect, handshake, preload and warm-up); (calls(N) - calls(0)) / N
# per system call name, and the total. The client waits for each reply before it sends the
# next request (depth 1, one connection), so nothing gathers under strace's slowdown.
#
# Environment: N [2000] requests per mode   MODES ["get multiget pipeline"]
#              CACHED [build/cached]  MEMCACHED [/usr/bin/memcached]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-2000}
MODES=${MODES:-"get multiget pipeline"}
CACHED=${CACHED:-build/cached}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
command -v strace >/dev/null || { echo "sysc.sh: strace missing" >&2; exit 2; }
tmp=$(mktemp -d)
pid=
cleanup() { if [ -n "$pid" ] && [ "$pid" -gt 0 ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$tmp"; }
trap cleanup EXIT
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/k.pem" 2>/dev/null
openssl req -x509 -new -key "$tmp/k.pem" -out "$tmp/c.pem" -days 2 -subj /CN=localhost 2>/dev/null
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tls=(-Z -o "ssl_chain_cert=$tmp/c.pem,ssl_key=$tmp/k.pem")
calls() { # mode n out cmd... -> strace -c table in out
  local mode=$1 n=$2 out=$3; shift 3
  local port; port=$(free_port)
  strace -c -f -o "$out" "$@" -p "$port" -l 127.0.0.1 -t 1 -m 64 -c 1024 "${tls[@]}" 2>/dev/null &
  pid=$!
  /usr/bin/python3 tools/tlsbench/ipr_client.py "$port" "$mode" "$n" >/dev/null
  local srv; srv=$(pgrep -P "$pid" | head -1)   # the server, strace's child
  if [ -n "$srv" ] && [ "$srv" -gt 0 ]; then kill "$srv"; fi
  wait "$pid" 2>/dev/null || true; pid=
}
root=(); [ "$(id -u)" = 0 ] && root=(-u root)
asroot=(); [ "$(id -u)" = 0 ] && asroot=(--run-as-root)
# per name: (calls in run N - calls in run 0) / N, names with >= 0.01 per request
per_req() {
  awk -v n="$N" 'FNR == 1 { f++ }
    $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { name = $NF; c = NF == 6 ? $4 : $(NF-1)
      if (f == 1) a[name] -= c; else a[name] += c }
    END { t = 0; for (k in a) { v = a[k] / n; if (v >= 0.01) { printf " %s %.2f", k, v; t += v } }
      printf "  | all %.2f\n", t }' "$1" "$2"
}
echo "# system calls per request: (calls(N=$N) - calls(N=0)) / N, strace -c -f, both servers -t 1"
for m in $MODES; do
  calls "$m" 0 "$tmp/c0" "$CACHED" "${asroot[@]}"; calls "$m" "$N" "$tmp/c1" "$CACHED" "${asroot[@]}"
  calls "$m" 0 "$tmp/m0" "$MEMCACHED" -U 0 "${root[@]}"; calls "$m" "$N" "$tmp/m1" "$MEMCACHED" -U 0 "${root[@]}"
  printf '%-9s cached   ' "$m"; per_req "$tmp/c0" "$tmp/c1"
  printf '%-9s memcached' "$m"; per_req "$tmp/m0" "$tmp/m1"
done
