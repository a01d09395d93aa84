#!/usr/bin/python3
"""Client half of tools/tlsbench/ipr.sh: one TLS connection to PORT (a server running under
callgrind); stores 100 keys of 100 bytes, makes 50 warm-up requests, then N requests of MODE,
and prints "MODE N". ipr.sh runs it once with N=0 and once with N, and divides the
difference of the server's instruction counts by N.

MODE: get (one key per request), multiget (one get of 10 keys), pipeline (16 gets in one
write). A request is what one write sends."""
import socket
import ssl
import sys
import time

port, mode, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
raw = None
for _ in range(600):  # valgrind starts slowly: poll up to 60 s
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=60)
        break
    except OSError:
        time.sleep(0.1)
s = ctx.wrap_socket(raw)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for k in range(100):
    s.sendall(b"set key:%d 0 0 100\r\n%s\r\n" % (k, b"v" * 100))
    assert s.recv(64) == b"STORED\r\n"

buf = b""
i = 0


def request():
    """One request of the mode."""
    global buf, i
    if mode == "get":
        req, want = b"get key:%d\r\n" % (i % 100), 1
    elif mode == "multiget":
        req = b"get " + b" ".join(b"key:%d" % ((i + j) % 100) for j in range(10)) + b"\r\n"
        want = 1
    else:
        req = b"".join(b"get key:%d\r\n" % ((i + j) % 100) for j in range(16))
        want = 16
    i += 1
    s.sendall(req)
    seen = 0
    while seen < want:
        chunk = s.recv(65536)
        assert chunk, "server closed"
        buf += chunk
        seen_now = buf.count(b"END\r\n")
        if seen_now:
            seen += seen_now
            buf = buf[buf.rfind(b"END\r\n") + 5:]


for _ in range(50):  # warm: caches, allocations
    request()
for _ in range(n):
    request()
print(mode, n)
s.close()
