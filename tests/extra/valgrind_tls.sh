#!/usr/bin/env bash
# valgrind memcheck of cached -Z: full and resumed handshakes on the handshake threads and
# their hand-over to the workers (a request in the client's Finished flight included), gets and
# pipelined gets over TLS, refresh_certs, then SIGTERM with half-done handshakes and
# established TLS connections still open. cached must exit 0 with no memcheck error and no
# leak (definitely/indirectly lost = 0), as in tests/extra/valgrind.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${CACHED:-build/cached}
PY=/usr/bin/python3
[ -x "$BIN" ] || { echo "valgrind_tls: $BIN not built (run make)"; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind_tls: not installed (tools/deps.sh)"; exit 1; }
tmp=$(mktemp -d /tmp/cached-valgrind-tls.XXXXXX)
log=$tmp/memcheck.log
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/k.pem" 2>/dev/null
openssl req -x509 -new -key "$tmp/k.pem" -out "$tmp/c.pem" -days 2 -subj /CN=localhost 2>/dev/null
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
extra=()
[ "$(id -u)" -eq 0 ] && extra+=(--run-as-root)
valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --num-callers=30 \
    --soname-synonyms=somalloc='*jemalloc*' --log-file="$log" \
    "$BIN" -p "$port" -l 127.0.0.1 -m 8 -t 2 -c 64 -Z \
    -o "ssl_chain_cert=$tmp/c.pem,ssl_key=$tmp/k.pem" "${extra[@]}" &
vpid=$!
cleanup() { [ "$vpid" -gt 0 ] && kill -KILL "$vpid" 2>/dev/null; }
trap cleanup EXIT

CACHED_PORT=$port timeout 240 $PY - <<'PYEOF'
import os, socket, ssl, sys, time
port = int(os.environ["CACHED_PORT"])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
deadline = time.time() + 90
while True:  # valgrind starts slowly; a plain TCP probe counts as one failed handshake
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("cached did not start")
        time.sleep(0.2)

def conn(session=None):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=60),
                        session=session)
    return s

def ask(s, req, term=b"\r\n", count=1):
    s.sendall(req)
    buf = b""
    while buf.count(term) < count:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf

errors = []
s = conn()
if ask(s, b"set k 0 0 5\r\nhello\r\n") != b"STORED\r\n":
    errors.append("set")
if ask(s, b"get k\r\n" * 50, b"END\r\n", 50) != b"VALUE k 0 5\r\nhello\r\nEND\r\n" * 50:
    errors.append("pipelined gets")
if not ask(s, b"refresh_certs\r\n").startswith(b"OK"):
    errors.append("refresh_certs")
sess = s.session
s.close()
for i in range(20):  # full and resumed handshakes, answered by the workers
    c = conn(sess if i % 2 else None)
    if ask(c, b"mn\r\n") != b"MN\r\n":
        errors.append("short connection %d" % i)
    sess = c.session or sess
    c.close()
# A request in the same write as the client's Finished.
raw = socket.create_connection(("127.0.0.1", port), timeout=60)
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inc, out)
for _ in range(20):
    try:
        obj.do_handshake()
        break
    except ssl.SSLWantReadError:
        d = out.read()
        if d:
            raw.sendall(d)
        inc.write(raw.recv(65536))
obj.write(b"mn\r\n")
raw.sendall(out.read())
got = b""
while b"MN\r\n" not in got:
    try:
        got += obj.read(4096)
    except ssl.SSLWantReadError:
        chunk = raw.recv(65536)
        if not chunk:
            break
        inc.write(chunk)
if b"MN\r\n" not in got:
    errors.append("request with Finished")
raw.close()
# Left open for shutdown: established connections (one mid-value) and bare TCP connections
# whose handshake never starts.
keep = [conn() for _ in range(3)]
keep[0].sendall(b"set open 0 0 50000\r\n" + b"o" * 1000)
half = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
time.sleep(0.5)
print("workload done: %d errors %s" % (len(errors), errors))
sys.exit(1 if errors else 0)
PYEOF
wrc=$?

kill -TERM "$vpid" 2>/dev/null
for _ in $(seq 1 600); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$vpid" 2>/dev/null; then
  echo "valgrind_tls: cached did not exit within 60 s of SIGTERM"; cat "$log"; exit 1
fi
wait "$vpid"; rc=$?
trap - EXIT

grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|All heap blocks' "$log" | sed 's/^==[0-9]*== *//'
fail=0
[ $wrc -eq 0 ] || { echo "valgrind_tls: workload failed (exit $wrc)"; fail=1; }
[ $rc -eq 0 ] || { echo "valgrind_tls: exit status $rc (99 = memcheck errors or leaks)"; fail=1; }
grep -q 'ERROR SUMMARY: 0 errors' "$log" || fail=1
if grep -qE '(definitely|indirectly) lost: [1-9]' "$log"; then fail=1; fi
if [ $fail -ne 0 ]; then
  sed 's/^==[0-9]*== *//' "$log" | head -n 200
  echo "valgrind_tls: 0 passed, 1 failed (log: $log)"
  exit 1
fi
rm -rf "$tmp"
echo "valgrind_tls: 1 passed, 0 failed"
