#!/usr/bin/env bash
# A short valgrind memcheck run of build/cached under a mixed workload (every command family,
# large and too-large values, multi-gets, meta commands, stats, flush_all, bad input, clients
# that vanish mid-value or mid-line, connections still open at shutdown). Then SIGTERM: cached
# must exit 0 after freeing everything, and memcheck must report no error and no leak
# (definitely and indirectly lost = 0; "still reachable" is not counted).
# jemalloc's malloc is routed through memcheck with --soname-synonyms.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${CACHED:-build/cached}
PY=/usr/bin/python3
[ -x "$BIN" ] || { echo "valgrind: $BIN not built (run make)"; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind: not installed (tools/deps.sh)"; exit 1; }

log=$(mktemp /tmp/cached-valgrind.XXXXXX)
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
extra=()
if [ "$(id -u)" -eq 0 ]; then   # memcached (the oracle, for trying this script) wants -u root
  case "$BIN" in *memcached) extra+=(-u root) ;; *) extra+=(--run-as-root) ;; esac
fi

VG=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --num-callers=30
    --soname-synonyms=somalloc='*jemalloc*' --log-file="$log")
[ "${VALGRIND_OFF:-0}" = 1 ] && VG=()   # to debug the workload itself, e.g. on memcached
"${VG[@]}" "$BIN" -p "$port" -l 127.0.0.1 -m 8 -t 2 -c 64 "${extra[@]}" &
vpid=$!
cleanup() { kill -KILL "$vpid" 2>/dev/null; }
trap cleanup EXIT

CACHED_PORT=$port timeout 240 $PY - <<'EOF'
import os, random, socket, sys, threading, time
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "integration", "lib"))
from harness import Conn, wait_port

port = int(os.environ["CACHED_PORT"])
wait_port(port, timeout=90)
errors = []

def worker(seed, rounds):
    rnd = random.Random(seed)
    c = Conn("127.0.0.1", port, timeout=60)
    try:
        for i in range(rounds):
            k = "k%d" % rnd.randrange(200)
            op = rnd.randrange(12)
            if op == 0:
                c.set(k, b"v" * rnd.randrange(1, rnd.choice([10, 1000, 60000, 400000])))
            elif op == 1:
                c.send("get %s\r\n" % " ".join("k%d" % rnd.randrange(200) for _ in range(20)))
                c.read_until(b"END\r\n")
            elif op == 2:
                c.cmd("delete %s" % k)
            elif op == 3:
                c.set(k, str(rnd.randrange(1000)))
                c.cmd("incr %s %d" % (k, rnd.randrange(10**6)))
                c.cmd("decr %s 3" % k)
            elif op == 4:
                c.set(k, "x", cmd=rnd.choice(["append", "prepend", "add", "replace"]))
            elif op == 5:
                c.send("gets %s\r\n" % k)
                line = c.readline()
                if line.startswith(b"VALUE"):
                    n, cas = int(line.split()[3]), int(line.split()[4])
                    c.readexact(n + 2); c.readline()
                    c.send("cas %s 0 0 1 %d\r\ny\r\n" % (k, cas)); c.readline()
            elif op == 6:
                c.cmd("touch %s %d" % (k, rnd.randrange(3)))
                c.send("gat 100 %s\r\n" % k); c.read_until(b"END\r\n")
            elif op == 7:
                c.send("ms %s 3 T%d\r\nabc\r\n" % (k, rnd.randrange(5))); c.readline()
                c.send("mg %s v f t c k\r\n" % k); c.readline()
                c.send("mn\r\n"); c.read_until(b"MN\r\n")
            elif op == 8:
                for s in ("", "settings", "items", "slabs", "sizes", "conns"):
                    c.send(("stats %s" % s).strip() + "\r\n"); c.read_until(b"END\r\n")
            elif op == 9:
                c.cmd("version"); c.cmd("bogus command"); c.cmd("set k 0 0")
                c.send("set %s 0 0 2000000\r\n" % k + "z" * 2000000 + "\r\n"); c.readline()
            elif op == 10:
                c.send("set %s 0 0 3 noreply\r\nabc\r\nincr %s 1 noreply\r\n" % (k, k))
                c.cmd("version")
            elif op == 11 and rnd.randrange(20) == 0:
                c.cmd("flush_all")
    except Exception as e:  # noqa: BLE001
        errors.append("worker %d: %r" % (seed, e))
    finally:
        c.close()

def vandal(seed):
    rnd = random.Random(seed)
    for i in range(60):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        kind = i % 5
        if kind == 0:
            s.sendall(b"set half 0 0 100000\r\n" + b"q" * rnd.randrange(1, 90000))
        elif kind == 1:
            s.sendall(b"get abc def gh")
        elif kind == 2:
            s.sendall(b"x" * 5000)
        elif kind == 3:
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        else:
            s.sendall(b"get " + b" ".join(b"k%d" % j for j in range(200)) + b"\r\n")
        time.sleep(0.01)
        s.close()

threads = [threading.Thread(target=worker, args=(i, 300)) for i in range(3)]
threads.append(threading.Thread(target=vandal, args=(99,)))
for t in threads: t.start()
for t in threads: t.join()
# Leave some connections open, one mid-value, for shutdown to clean up.
keep = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
keep[0].sendall(b"set open 0 0 50000\r\n" + b"o" * 1000)
keep[1].sendall(b"get k1 k2 k3\r\n")
time.sleep(0.5)
with Conn("127.0.0.1", port, timeout=60) as c:
    ok = c.cmd("version").startswith(b"VERSION")
print("workload done: %d errors" % len(errors))
for e in errors[:10]: print(e)
sys.exit(0 if ok and not errors else 1)
EOF
wrc=$?

kill -TERM "$vpid" 2>/dev/null
for _ in $(seq 1 600); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$vpid" 2>/dev/null; then
  echo "valgrind: cached did not exit within 60 s of SIGTERM"; cat "$log"; exit 1
fi
wait "$vpid"; rc=$?
trap - EXIT

grep -E 'ERROR SUMMARY|total heap usage|definitely lost|indirectly lost|possibly lost|still reachable|All heap blocks' "$log" | sed 's/^==[0-9]*== *//'
fail=0
[ $wrc -eq 0 ] || { echo "valgrind: workload failed (exit $wrc)"; fail=1; }
[ $rc -eq 0 ] || { echo "valgrind: exit status $rc (99 = memcheck errors or leaks; else cached's own)"; fail=1; }
grep -q 'ERROR SUMMARY: 0 errors' "$log" || fail=1
if grep -qE '(definitely|indirectly) lost: [1-9]' "$log"; then fail=1; fi
if [ $fail -ne 0 ]; then
  sed 's/^==[0-9]*== *//' "$log" | head -n 200
  echo "valgrind: 0 passed, 1 failed (log: $log)"
  exit 1
fi
rm -f "$log"
echo "valgrind: 1 passed, 0 failed"
