#!/usr/bin/python3
"""Server CPU time per get (utime+stime from /proc over N gets) of cached built without
observation (-DCACHED_NO_OBSERVE), with histograms only (-DCACHED_NO_HOTKEYS) and as shipped.
Usage: tools/bench_observe_cpu.py [N] [rounds] from the repository root (see tools/bench_observe.sh
for the two extra builds)."""
import os, subprocess, socket, time, sys
bins = {"no-observe": "build-noobs/cached", "histograms": "build-nohk/cached", "shipped": "build/cached"}
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def cpu(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
procs = {}
for name, b in bins.items():
    p = free_port()
    pr = subprocess.Popen(["taskset", "-c", "0", b, "-p", str(p), "-l", "127.0.0.1", "-t", "1", "--run-as-root"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    subprocess.run(["build/cached-bench", "-p", str(p), "-c", "8", "-d", "16", "--preload", "-q"], stdout=subprocess.DEVNULL)
    procs[name] = (pr, p)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
res = {k: [] for k in bins}
for rnd in range(int(sys.argv[2]) if len(sys.argv) > 2 else 3):
    for name, (pr, p) in procs.items():
        c0 = cpu(pr.pid)
        subprocess.run(["taskset", "-c", "1", "build/cached-bench", "-p", str(p), "-c", "8", "-d", "1", "-w", "0", "-D", "0", "-n", str(N), "-q"], stdout=subprocess.DEVNULL)
        c1 = cpu(pr.pid)
        res[name].append((c1 - c0) / N * 1e6)
for name, v in res.items():
    v.sort()
    print("%-11s server CPU per get: median %.3f us (runs: %s)" % (name, v[len(v)//2], " ".join("%.3f" % x for x in v)))
for pr, p in procs.values():
    pr.terminate(); pr.wait()
