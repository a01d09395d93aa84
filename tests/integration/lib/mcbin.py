"""memcached's binary protocol for tests: packing requests, parsing responses, a raw
connection, and normalising responses so cached's and memcached's can be compared byte for
byte (CAS values by their equality structure, the version string)."""
import socket
import struct

REQ, RES = 0x80, 0x81
HDR = struct.Struct(">BBHBBHIIQ")

OP = dict(get=0x00, set=0x01, add=0x02, replace=0x03, delete=0x04, incr=0x05, decr=0x06,
          quit=0x07, flush=0x08, getq=0x09, noop=0x0a, version=0x0b, getk=0x0c, getkq=0x0d,
          append=0x0e, prepend=0x0f, stat=0x10, setq=0x11, addq=0x12, replaceq=0x13,
          deleteq=0x14, incrq=0x15, decrq=0x16, quitq=0x17, flushq=0x18, appendq=0x19,
          prependq=0x1a, verbosity=0x1b, touch=0x1c, gat=0x1d, gatq=0x1e, sasl_list=0x20,
          sasl_auth=0x21, sasl_step=0x22, gatk=0x23, gatkq=0x24)


def b(x):
    return x.encode() if isinstance(x, str) else x


def pack(op, key=b"", extras=b"", value=b"", cas=0, opaque=0, bodylen=None, keylen=None,
         extlen=None, magic=REQ):
    """A request; bodylen/keylen/extlen override the true lengths (malformed packets)."""
    key, value = b(key), b(value)
    opcode = OP[op] if isinstance(op, str) else op
    kl = len(key) if keylen is None else keylen
    el = len(extras) if extlen is None else extlen
    bl = len(extras) + len(key) + len(value) if bodylen is None else bodylen
    return HDR.pack(magic, opcode, kl, el, 0, 0, bl, opaque, cas) + extras + key + value


def store(op, key, value, flags=0, exptime=0, cas=0, opaque=0):
    return pack(op, key, struct.pack(">II", flags, exptime), value, cas, opaque)


def arith(op, key, delta, initial=0, exptime=0, cas=0, opaque=0):
    return pack(op, key, struct.pack(">QQI", delta, initial, exptime), b"", cas, opaque)


def touch(op, key, exptime, opaque=0):
    return pack(op, key, struct.pack(">I", exptime), opaque=opaque)


def parse(data):
    """Splits response bytes into (packets, leftover). A packet is a dict."""
    out = []
    while len(data) >= 24:
        magic, op, kl, el, dt, status, bl, opaque, cas = HDR.unpack(data[:24])
        if len(data) < 24 + bl:
            break
        body = data[24:24 + bl]
        out.append(dict(magic=magic, op=op, status=status, extras=body[:el], key=body[el:el + kl],
                        value=body[el + kl:], opaque=opaque, cas=cas, dt=dt, raw=data[:24 + bl]))
        data = data[24 + bl:]
    return out, data


END_OPAQUE = 0x7e57e7d0


class BinConn:
    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.closed = False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def recv_packets(self, n):
        pk = []
        while len(pk) < n:
            got, self.buf = parse(self.buf)
            pk += got
            if len(pk) >= n:
                break
            chunk = self.sock.recv(65536)
            if not chunk:
                self.closed = True
                break
            self.buf += chunk
        return pk

    def call(self, data):
        """Sends data then a NOOP marker; returns the responses before the marker, and
        whether the server closed the connection instead of answering the marker."""
        try:
            self.send(data + pack("noop", opaque=END_OPAQUE))
        except OSError:
            self.closed = True
            return [], True
        out = []
        while True:
            got, self.buf = parse(self.buf)
            for p in got:
                if p["op"] == OP["noop"] and p["opaque"] == END_OPAQUE:
                    return out, False
                out.append(p)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                return out, True
            self.buf += chunk


class Normaliser:
    """Maps CAS values to small numbers by first appearance (so equal stays equal) and the
    version text to a placeholder. One per server run, shared by all its connections."""

    def __init__(self):
        self.cas = {0: 0}

    def cas_id(self, v):
        if v not in self.cas:
            self.cas[v] = len(self.cas)
        return self.cas[v]

    def packet(self, p):
        value = p["value"]
        if p["op"] == OP["version"] and p["status"] == 0:
            value = b"<version>"
        return (p["magic"], p["op"], p["status"], p["extras"], p["key"], value, p["opaque"],
                self.cas_id(p["cas"]), p["dt"])
