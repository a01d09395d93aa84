#!/usr/bin/env bash
# User-space instructions per request of cached and memcached on the meta and binary paths
# (issue 18's leftovers), under callgrind, as tools/bench_instr.sh does for the classic ones:
# the server runs with -t 1 under `valgrind --tool=callgrind --separate-threads=yes`, the keys
# are preloaded, and each phase's window is zeroed and dumped with callgrind_control. The
# loader is a small Python client (one connection), so the windows are long; per request =
# (the worker thread's instructions in the window - its idle rate x window length) / N.
#   ms      N `ms <key> 100 T0 F<flags>` at depth 1 (100-byte values)
#   bset    N binary SETs at depth 1 (100-byte values)
#   mgpipe  N `mg <key> v f` sent 16 to a write (pipelined), preloaded 100-byte values
#   getkq   N binary GETKQ sent 16 to a write, each batch ended by a NOOP
#
# Environment: PINSTR_REQUESTS [20000]  PINSTR_PHASES ["ms bset mgpipe getkq"]
# PINSTR_SERVERS ["cached memcached"]; CACHED, MEMCACHED; PINSTR_DIR [build/bench/callgrind-proto]
set -euo pipefail
cd "$(dirname "$0")/.."

N=${PINSTR_REQUESTS:-20000}
PHASES=${PINSTR_PHASES:-"ms bset mgpipe getkq"}
SERVERS=${PINSTR_SERVERS:-"cached memcached"}
CACHED=${CACHED:-build/cached}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
DIR=${PINSTR_DIR:-build/bench/callgrind-proto}
IDLE=3
KEYS=2000

command -v valgrind >/dev/null || { echo "bench_instr_proto: valgrind missing" >&2; exit 2; }
mkdir -p "$DIR"
VPID=
cleanup() { [ -z "$VPID" ] || { kill "$VPID" 2>/dev/null; wait "$VPID" 2>/dev/null; } || true; }
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
now() { date +%s.%N; }

# The load: phase name, port, N. Every reply is read and checked before the next batch.
LOADER='
import socket, struct, sys
phase, port, n, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = b""
def need(k):
    global buf
    while len(buf) < k:
        d = s.recv(65536)
        if not d:
            sys.exit("closed")
        buf += d
def take_until(tok):
    global buf
    while tok not in buf:
        d = s.recv(65536)
        if not d:
            sys.exit("closed")
        buf += d
    i = buf.index(tok) + len(tok)
    out, buf = buf[:i], buf[i:]
    return out
def key(i):
    return b"key:%08d" % (i % keys)
val = b"v" * 100
def bin_req(op, k, extras=b"", value=b""):
    body = len(extras) + len(k) + len(value)
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(k), len(extras), 0, 0, body, 0, 0) + extras + k + value
def bin_resp():
    global buf
    need(24)
    body = struct.unpack(">I", buf[8:12])[0]
    need(24 + body)
    op, status = buf[1], struct.unpack(">H", buf[6:8])[0]
    buf = buf[24 + body:]
    return op, status
if phase == "preload":
    for i in range(keys):
        s.sendall(b"set " + key(i) + b" 7 0 100\r\n" + val + b"\r\n")
        take_until(b"\r\n")
elif phase == "ms":
    for i in range(n):
        s.sendall(b"ms " + key(i) + b" 100 T0 F3\r\n" + val + b"\r\n")
        r = take_until(b"\r\n")
        assert r == b"HD\r\n", r
elif phase == "bset":
    for i in range(n):
        s.sendall(bin_req(0x01, key(i), struct.pack(">II", 3, 0), val))
        op, st = bin_resp()
        assert st == 0, st
elif phase == "mgpipe":
    i = 0
    while i < n:
        m = min(16, n - i)
        s.sendall(b"".join(b"mg " + key(i + j) + b" v f\r\n" for j in range(m)))
        for j in range(m):
            take_until(b"VA ")
            take_until(b"\r\n")
            need(102)
            buf = buf[102:]
        i += m
elif phase == "getkq":
    i = 0
    while i < n:
        m = min(16, n - i)
        s.sendall(b"".join(bin_req(0x0D, key(i + j)) for j in range(m)) + bin_req(0x0A, b""))
        for j in range(m + 1):
            bin_resp()
        i += m
s.close()
'

declare -A RESULT
for name in $SERVERS; do
  if [ "$name" = cached ]; then bin=$CACHED; else bin=$MEMCACHED; fi
  asroot=()
  if [ "$(id -u)" -eq 0 ]; then
    if [[ "$(basename "$bin")" == memcached* ]]; then asroot=(-u root); else asroot=(--run-as-root); fi
  fi
  port=$(free_port)
  rm -f "$DIR"/cg.out.*
  (ulimit -n 1036; ulimit -Hn 1036
   exec valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$DIR/cg.out.%p" \
     "$bin" "${asroot[@]}" -l 127.0.0.1 -p "$port" -t 1 -m 1024 -c 1024) \
     > "$DIR/$name.valgrind.log" 2>&1 &
  VPID=$!
  for _ in $(seq 300); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
  done
  /usr/bin/python3 -c "$LOADER" preload "$port" 0 "$KEYS"
  declare -A secs=()
  dump=0
  for phase in idle $PHASES; do
    callgrind_control -z "$VPID" > /dev/null 2>&1
    t0=$(now)
    if [ "$phase" = idle ]; then sleep "$IDLE"; else /usr/bin/python3 -c "$LOADER" "$phase" "$port" "$N" "$KEYS"; fi
    t1=$(now)
    callgrind_control -d "$VPID" > /dev/null 2>&1
    dump=$((dump + 1))
    secs[$phase]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}')
    for f in "$DIR"/cg.out."$VPID"."$dump"-*; do
      echo "${f##*-} $(sed -n 's/^summary: //p' "$f")"
    done > "$DIR/$name.$phase.threads"
  done
  for phase in $PHASES; do
    worker=$(awk -v ti="${secs[idle]}" -v tp="${secs[$phase]}" -v n="$N" '
      FNR == NR { idle[$1] = $2; next }
      { v = $2 - idle[$1] / ti * tp; if (v > best) best = v }
      END { printf "%.0f\n", best / n }' "$DIR/$name.idle.threads" "$DIR/$name.$phase.threads")
    RESULT[$name.$phase]=$worker
    printf '%-9s %-7s %6s instructions/request in the worker thread (%s s window, %s)\n' \
      "$name" "$phase" "$worker" "$(printf '%.1f' "${secs[$phase]}")" "$N"
  done
  kill "$VPID"
  wait "$VPID" 2>/dev/null || true
  VPID=
done
if [[ " $SERVERS " == *" cached "* && " $SERVERS " == *" memcached "* ]]; then
  for phase in $PHASES; do
    a=${RESULT[cached.$phase]} b=${RESULT[memcached.$phase]}
    printf 'ratio cached/memcached %-7s worker %s (%s / %s)\n' "$phase" \
      "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", a / b}')" "$a" "$b"
  done
fi
