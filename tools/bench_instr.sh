#!/usr/bin/env bash
# User-space instructions per request (get and set) of cached and memcached, under callgrind.
#
# Hardware counters are not available on this VM (`perf stat -e instructions:u true` says
# "not supported"), so each server runs with -t 1 under `valgrind --tool=callgrind
# --separate-threads=yes`, is preloaded, and then three windows are measured with
# callgrind_control (-z to zero the counters, -d to dump them per thread):
#   idle  nothing sent for INSTR_IDLE seconds (background threads' baseline, per second)
#   get   N gets of preloaded 100-byte values (cached-bench -c 50 -d 1 -n N)
#   set   N sets of 100-byte values            (cached-bench -c 50 -d 1 -r 0:1 -n N)
# per request = (instructions in the window - idle rate x window length) / N, both for the
# worker thread (the thread that did most of the work) and for the whole process. Opening and
# closing the 50 connections falls inside the window (a few instructions per request).
#
# INSTR_PHASES adds workloads: mget10 / mget100 (N multi-gets of 10 / 100 preloaded keys, also
# given per key), pipe16 (N gets at depth 16 on 50 connections), cpr (N/10 connections of the
# Django pattern: connect, a multi-get of 10, a set, close; given per connection), mixed1k /
# mixed100 (N requests of 90% gets, 10% sets of 1,024 / 100-byte values, as bench.sh's
# mixed-90-10-1k; the keys are set again with values of that size before the window opens).
#
# Environment: INSTR_REQUESTS [100000]  INSTR_IDLE [5]  INSTR_PHASES ["get set"]
# INSTR_TOP [0]: print the top N
# functions (self cost) of each server's get and set windows; CACHED, MEMCACHED, BENCH;
# INSTR_SERVERS ["cached memcached"]; INSTR_DIR [build/bench/callgrind]; INSTR_VALUE [100]:
# the set phase's value size (e.g. 102400 for the large-value path, issue 13);
# INSTR_CONNS [50]: connections of the get and set phases; INSTR_SET_KEYS: the set phase
# writes only keys 0..N-1, after a warm-up of 4N sets, so slab memory is reused as in a
# steady state (memcached zeroes every fresh slab page: without it a large-value set counts
# that memset). INSTR_KEYS [10000]: the key space. INSTR_CACHESIM=1: callgrind simulates the
# caches (--cache-sim=yes, the host's L1 and last-level sizes) and each phase also prints the
# worker thread's data reads/writes and misses per request (D1mr D1mw: L1; DLmr DLmw: last
# level); with INSTR_KEYS=100000 and 1 KB values the items (~110 MB) outgrow the last level.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${INSTR_REQUESTS:-100000}
IDLE=${INSTR_IDLE:-5}
TOP=${INSTR_TOP:-0}
CACHED=${CACHED:-build/cached}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
BENCH=${BENCH:-build/cached-bench}
SERVERS=${INSTR_SERVERS:-"cached memcached"}
PHASES=${INSTR_PHASES:-"get set"}
DIR=${INSTR_DIR:-build/bench/callgrind}
KEYS=${INSTR_KEYS:-10000}
CACHESIM=()
[ -z "${INSTR_CACHESIM:-}" ] || CACHESIM=(--cache-sim=yes)
VALUE=${INSTR_VALUE:-100}
CONNS=${INSTR_CONNS:-50}
SET_KEYS=${INSTR_SET_KEYS:-$KEYS}

command -v valgrind >/dev/null || { echo "bench_instr: valgrind missing (make deps)" >&2; exit 2; }
mkdir -p "$DIR"

VPID=
cleanup() { [ -z "$VPID" ] || { kill "$VPID" 2>/dev/null; wait "$VPID" 2>/dev/null; } || true; }
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
now() { date +%s.%N; }

# summary of thread files of dump number $2 for pid $1: lines "thread instructions"
dump_threads() {
  for f in "$DIR"/cg.out."$1"."$2"-*; do
    echo "${f##*-} $(sed -n 's/^summary: //p' "$f")"
  done
}

declare -A RESULT
for name in $SERVERS; do
  if [ "$name" = cached ]; then bin=$CACHED; else bin=$MEMCACHED; fi
  [ -x "$bin" ] || { echo "bench_instr: $bin missing" >&2; exit 2; }
  asroot=()
  if [ "$(id -u)" -eq 0 ]; then
    if [[ "$(basename "$bin")" == memcached* ]]; then asroot=(-u root); else asroot=(--run-as-root); fi
  fi
  port=$(free_port)
  rm -f "$DIR"/cg.out.*
  # valgrind keeps a few descriptors above the limit for itself and refuses a setrlimit that
  # moves the hard limit; memcached sets both limits to -c, so the limit here is -c + 12.
  (ulimit -n 1036; ulimit -Hn 1036
   exec valgrind --tool=callgrind --separate-threads=yes "${CACHESIM[@]}" --callgrind-out-file="$DIR/cg.out.%p" \
     "$bin" "${asroot[@]}" -l 127.0.0.1 -p "$port" -t 1 -m 1024 -c 1024) \
     > "$DIR/$name.valgrind.log" 2>&1 &
  VPID=$!
  for _ in $(seq 300); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
  done
  "$BENCH" -q -p "$port" -k "$KEYS" --preload -c 4 -d 64 -v 100 > /dev/null
  if [ -n "${INSTR_SET_KEYS:-}" ]; then
    "$BENCH" -q -p "$port" -k "$SET_KEYS" -c "$CONNS" -d 1 -v "$VALUE" -r 0:1 -w 0 \
      -n $((SET_KEYS * 4)) > /dev/null
  fi
  # the server's real pid is valgrind's (exec), which callgrind_control addresses
  declare -A secs=()
  dump=0
  for phase in idle $PHASES; do
    case $phase in # values of the phase's size, outside the window
      mixed1k) "$BENCH" -q -p "$port" -k "$KEYS" --preload -c 4 -d 64 -v 1024 > /dev/null ;;
      mixed100) "$BENCH" -q -p "$port" -k "$KEYS" --preload -c 4 -d 64 -v 100 > /dev/null ;;
    esac
    callgrind_control -z "$VPID" > /dev/null 2>&1
    t0=$(now)
    case $phase in
      idle) sleep "$IDLE" ;;
      get) "$BENCH" -q -p "$port" -k "$KEYS" -c "$CONNS" -d 1 -v 100 -w 0 -n "$N" > "$DIR/$name.get.txt" ;;
      set) "$BENCH" -q -p "$port" -k "$SET_KEYS" -c "$CONNS" -d 1 -v "$VALUE" -r 0:1 -w 0 -n "$N" > "$DIR/$name.set.txt" ;;
      mget10) "$BENCH" -q -p "$port" -k "$KEYS" -c "$CONNS" -d 1 -m 10 -v 100 -w 0 -n "$N" > "$DIR/$name.$phase.txt" ;;
      mget100) "$BENCH" -q -p "$port" -k "$KEYS" -c "$CONNS" -d 1 -m 100 -v 100 -w 0 -n "$N" > "$DIR/$name.$phase.txt" ;;
      pipe16) "$BENCH" -q -p "$port" -k "$KEYS" -c "$CONNS" -d 16 -v 100 -w 0 -n "$N" > "$DIR/$name.$phase.txt" ;;
      mixed1k) "$BENCH" -q -p "$port" -k "$KEYS" -c "$CONNS" -d 1 -r 9:1 -v 1024 -w 0 -n "$N" > "$DIR/$name.$phase.txt" ;;
      mixed100) "$BENCH" -q -p "$port" -k "$KEYS" -c "$CONNS" -d 1 -r 9:1 -v 100 -w 0 -n "$N" > "$DIR/$name.$phase.txt" ;;
      cpr) "$BENCH" -q -p "$port" -k "$KEYS" -c "$CONNS" --connect-per-request -m 10 -v 100 -w 0 \
             -n "$((N / 10))" > "$DIR/$name.$phase.txt" ;;
    esac
    t1=$(now)
    callgrind_control -d "$VPID" > /dev/null 2>&1
    dump=$((dump + 1))
    secs[$phase]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}')
    dump_threads "$VPID" "$dump" > "$DIR/$name.$phase.threads"
  done
  declare -A dumpno=()
  i=1
  for phase in $PHASES; do i=$((i + 1)); dumpno[$phase]=$i; done
  for phase in $PHASES; do
    grep -q 'errors=0' "$DIR/$name.$phase.txt" || { echo "bench_instr: $name $phase had errors" >&2; exit 1; }
    reqs=$N unit=request
    case $phase in
      mget10) unit="request of 10 keys" ;;
      mget100) unit="request of 100 keys" ;;
      cpr) reqs=$((N / 10)) unit=connection ;;
    esac
    # worker = the thread with the most instructions after removing its idle baseline
    read -r worker total < <(awk -v ti="${secs[idle]}" -v tp="${secs[$phase]}" -v n="$reqs" '
      FNR == NR { idle[$1] = $2; next }
      { v = $2 - idle[$1] / ti * tp; if (v > best) best = v; sum += v }
      END { printf "%.0f %.0f\n", best / n, sum / n }' \
      "$DIR/$name.idle.threads" "$DIR/$name.$phase.threads")
    RESULT[$name.$phase.worker]=$worker
    RESULT[$name.$phase.total]=$total
    if [ ${#CACHESIM[@]} -gt 0 ]; then
      # events of the worker thread (most instructions) per request, idle baseline removed
      awk -v ti="${secs[idle]}" -v tp="${secs[$phase]}" -v n="$reqs" -v name="$name" -v ph="$phase" '
        FNR == NR { for (i = 2; i <= NF; i++) idle[$1, i] = $i; next }
        { v = $2 - idle[$1, 2] / ti * tp; if (v > best) { best = v; line = $0 } }
        END { split(line, f, " "); split("Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw", ev, " ")
              printf "%-9s %-7s worker per %s:", name, ph, "request"
              for (i = 2; i <= 10; i++) printf " %s %.1f", ev[i - 1], (f[i] - idle[f[1], i] / ti * tp) / n
              printf "\n" }' "$DIR/$name.idle.threads" "$DIR/$name.$phase.threads"
    fi
    printf '%-9s %-7s %6s instructions/%s in the worker thread, %6s in the process (%s s window, %s)\n' \
      "$name" "$phase" "$worker" "$unit" "$total" "$(printf '%.1f' "${secs[$phase]}")" "$reqs"
    if [ "$TOP" -gt 0 ]; then
      n=${dumpno[$phase]}
      wt=$(sort -k2 -n -r "$DIR/$name.$phase.threads" | head -1 | cut -d' ' -f1)
      # self cost; functions on the stack when the counters were zeroed (thread start,
      # the event loop) show as ~100% and are skipped
      callgrind_annotate --inclusive=no --threshold=100 "$DIR/cg.out.$VPID.$n-$wt" 2>/dev/null |
        grep -E '^ *[0-9,]+ \( *[0-9.]+%\)  ' | grep -v -E 'PROGRAM TOTALS|\((99|100)\.[0-9]+%\)' |
        head -n "$TOP" | sed 's/^/    /' || true # head closes the pipe early
    fi
  done
  kill "$VPID"
  wait "$VPID" 2>/dev/null || true
  VPID=
done

if [[ " $SERVERS " == *" cached "* && " $SERVERS " == *" memcached "* ]]; then
  for phase in $PHASES; do
    for scope in worker total; do
      a=${RESULT[cached.$phase.$scope]} b=${RESULT[memcached.$phase.$scope]}
      printf 'ratio cached/memcached %-7s %-6s %s (%s / %s)\n' "$phase" "$scope" \
        "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", a / b}')" "$a" "$b"
    done
  done
fi
