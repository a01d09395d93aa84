#!/usr/bin/env bash
# Runs libmemcached's conformance checker `memccapable -a` (ascii protocol only) against a
# cached we start on a free loopback port. Passes iff every ascii test reports [pass].
# Against Debian's memcached 1.6.18 all 27 ascii tests pass ("All tests passed", exit 0).
# Note: memccapable FLUSHES the server, which is why we always start our own.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CACHED=${CACHED:-$root/build/cached}
PY=/usr/bin/python3

if ! command -v memccapable >/dev/null 2>&1; then
  echo "memccapable not installed (Debian package libmemcached-tools)"
  echo "memccapable: 0 passed, 1 failed"
  exit 1
fi

port=$($PY -c "import sys; sys.path.insert(0, '$here/lib'); import harness; print(harness.free_port())")
args=(-p "$port" -l 127.0.0.1)
if [ "$(id -u)" -eq 0 ]; then
  case "$(basename "$CACHED")" in
    memcached) args+=(-u root) ;;
    *) args+=(--run-as-root) ;;
  esac
fi
errlog=$(mktemp /tmp/memccapable-srv.XXXXXX)
"$CACHED" "${args[@]}" </dev/null >/dev/null 2>"$errlog" &
pid=$!
cleanup() {
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$errlog"; then
    cat "$errlog"; echo "sanitizer report from cached"; sanitizer=1
  fi
  rm -f "$errlog"
}
sanitizer=0

# Wait until it listens (bounded: 20 s).
ok=0
for _ in $(seq 200); do
  kill -0 "$pid" 2>/dev/null || break
  if $PY -c "import socket,sys; s=socket.create_connection(('127.0.0.1', $port), 0.5)" 2>/dev/null; then ok=1; break; fi
  sleep 0.1
done
if [ $ok -ne 1 ]; then
  cat "$errlog"; cleanup
  echo "memccapable: 0 passed, 1 failed (server did not start: $CACHED ${args[*]})"
  exit 1
fi

out=$(timeout 120 memccapable -a -t 5 -h 127.0.0.1 -p "$port" 2>&1)
rc=$?
cleanup
echo "$out"
npass=$(grep -cE '^ascii .*\[pass\]' <<<"$out")
nbad=$(grep -E '^ascii ' <<<"$out" | grep -vc '\[pass\]')
# Failed tests print "[FAIL]" on a line of their own; trust memccapable's summary if larger.
summary=$(grep -oE '^[0-9]+ of [0-9]+ tests failed' <<<"$out" | head -n 1 | cut -d' ' -f1)
if [ -n "$summary" ] && [ "$summary" -gt "$nbad" ]; then nbad=$summary; fi
# A test that crashes memccapable (or a timeout) leaves no line: count it as a failure.
if [ $rc -ne 0 ] && [ "$nbad" -eq 0 ]; then nbad=1; fi
[ "$sanitizer" -ne 0 ] && nbad=$((nbad + 1))
if [ "$npass" -eq 0 ]; then nbad=$((nbad + 1)); fi
echo "memccapable: $npass passed, $nbad failed (exit $rc)"
[ "$nbad" -eq 0 ]
