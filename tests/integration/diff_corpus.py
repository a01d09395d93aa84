"""Scripted inputs for test_diff.py: only what to SEND. What the reply should be is whatever
Debian's memcached answers; test_diff.py asks it and compares cached's bytes with memcached's.

A case is a name and a list of steps run on one fresh connection. After each send step the
runner appends a `version\r\n` sentinel and reads until its VERSION line (or the connection
closes), so each step's reply is delimited. In step bytes:
  {p}    is replaced by the case's private key prefix (PLEN bytes), so cases never share keys;
  {cas}  by the newest CAS value this connection has seen (from gets/gats), {cas1} the first;
  {now+N} by the unix time N seconds from now (absolute exptimes).
Step kinds:
  b"..."              send in one write
  Sleep(s)            wait s seconds (expiry cases)
  Bytewise(b"...")    send one byte per write (TCP_NODELAY), then the sentinel
  Chunks([b1, b2..])  send each part as its own write with a short pause, then the sentinel
  Raw(b"...")         send WITHOUT a sentinel and pause (a line with no newline yet)
  MayClose(b"...")    send, wait for the server to close or go quiet, then the sentinel
Case groups: "main" cases run first on one pair of servers; "flush" cases run last (they wipe
everything); "fresh" cases get a pair of servers of their own.
"""

PLEN = 6          # len of "{p}" after substitution, e.g. b"c0042_"
KMAX = 250        # longest legal key


class Sleep:
    def __init__(self, secs):
        self.secs = secs


class Bytewise:
    def __init__(self, data):
        self.data = data


class Chunks:
    def __init__(self, parts, pause=0.05):
        self.parts = parts
        self.pause = pause


class Raw:
    def __init__(self, data, pause=0.2):
        self.data = data
        self.pause = pause


class MayClose:
    def __init__(self, data):
        self.data = data


class Case:
    def __init__(self, name, steps, group="main"):
        self.name = name
        self.steps = steps
        self.group = group


CASES = []


def case(name, *steps, group="main"):
    assert name not in {c.name for c in CASES}, name
    CASES.append(Case(name, list(steps), group))


def key(n, fill=b"k"):
    """A key of exactly n bytes that starts with the case prefix."""
    return b"{p}" + fill * (n - PLEN)


def setv(k, v, flags=0, exp=0, cmd=b"set", extra=b""):
    return b"%s %s %d %d %d%s\r\n%s\r\n" % (cmd, k, flags, exp, len(v), extra, v)


# ---------------------------------------------------------------- storage commands
case("set-get", setv(b"{p}a", b"hello") + b"get {p}a\r\n")
case("set-empty-value", setv(b"{p}a", b"") + b"get {p}a\r\n")
case("set-overwrite", setv(b"{p}a", b"one") + setv(b"{p}a", b"second", 7) + b"get {p}a\r\n")
case("set-binary-value", setv(b"{p}a", b"a\r\nb\x00c\xff\r\n") + b"get {p}a\r\n")
case("set-value-looks-like-reply", setv(b"{p}a", b"END\r\nSTORED") + b"get {p}a\r\n")
case("set-noreply", setv(b"{p}a", b"v", extra=b" noreply") + b"get {p}a\r\n")
case("set-noreply-garbage", b"set {p}a 0 0 1 noreply garbage\r\nx\r\nget {p}a\r\n")
case("set-extra-token", b"set {p}a 0 0 1 garbage\r\nx\r\nget {p}a\r\n")
case("set-extra-tokens-2", b"set {p}a 0 0 1 garbage more\r\nx\r\nget {p}a\r\n")
case("set-noreply-uppercase", b"set {p}a 0 0 1 NOREPLY\r\nx\r\nget {p}a\r\n")
case("set-too-few-tokens", b"set {p}a 0 0\r\nx\r\n")
case("set-too-few-tokens-2", b"set {p}a\r\n")
case("set-no-key", b"set\r\n")
case("set-flags-max", setv(b"{p}a", b"v", 4294967295) + b"get {p}a\r\n")
case("set-flags-overflow", b"set {p}a 4294967296 0 1\r\nx\r\nget {p}a\r\n")
case("set-flags-negative", b"set {p}a -1 0 1\r\nx\r\nget {p}a\r\n")
case("set-flags-nonnumeric", b"set {p}a abc 0 1\r\nx\r\nget {p}a\r\n")
case("set-flags-hex", b"set {p}a 0x10 0 1\r\nx\r\nget {p}a\r\n")
case("set-flags-plus", b"set {p}a +5 0 1\r\nx\r\nget {p}a\r\n")
case("set-flags-trailing-junk", b"set {p}a 5x 0 1\r\nx\r\nget {p}a\r\n")
case("set-exptime-nonnumeric", b"set {p}a 0 abc 1\r\nx\r\nget {p}a\r\n")
case("set-exptime-negative", b"set {p}a 0 -1 1\r\nx\r\nget {p}a\r\n")
case("set-exptime-absolute-past", b"set {p}a 0 2592001 1\r\nx\r\nget {p}a\r\n")
case("set-exptime-30days", b"set {p}a 0 2592000 1\r\nx\r\nget {p}a\r\n")
case("set-exptime-far-future", b"set {p}a 0 4000000000 1\r\nx\r\nget {p}a\r\n")
case("set-bytes-negative", b"set {p}a 0 0 -1\r\nx\r\nget {p}a\r\n")
case("set-bytes-nonnumeric", b"set {p}a 0 0 abc\r\nx\r\nget {p}a\r\n")
case("set-bytes-plus", b"set {p}a 0 0 +1\r\nx\r\nget {p}a\r\n")
case("set-bytes-int32-overflow", b"set {p}a 0 0 2147483648\r\nx\r\nget {p}a\r\n")
case("set-bad-line-noreply", b"set {p}a abc 0 1 noreply\r\nx\r\nget {p}a\r\n")
case("set-double-space", b"set  {p}a  0 0  1\r\nx\r\nget {p}a\r\n")
case("set-trailing-space", b"set {p}a 0 0 1 \r\nx\r\nget {p}a\r\n")
case("set-leading-space", b" set {p}a 0 0 1\r\nx\r\nget {p}a\r\n")
# the one-pass `set` parser (protocol/proto.c set_fast) at its edges: whatever it does not
# take, the general path answers
case("set-flags-18-digits", b"set {p}a 123456789012345678 0 1\r\nx\r\ngets {p}a\r\n")
case("set-flags-19-digits", b"set {p}a 1234567890123456789 0 1\r\nx\r\nget {p}a\r\n")
case("set-flags-leading-zeros", b"set {p}a 0007 00 01\r\nx\r\nget {p}a\r\n")
case("set-bytes-wraps-32", b"set {p}a 0 0 4294967297\r\nx\r\nget {p}a\r\n")
case("set-exptime-wraps-32", b"set {p}a 0 4294967295 1\r\nx\r\nget {p}a\r\n")
case("set-noreply-then-more", b"set {p}a 0 0 1 noreplyx\r\nx\r\nget {p}a\r\n")
case("set-noreply-short", b"set {p}a 0 0 1 norepl\r\nx\r\nget {p}a\r\n")
case("set-noreply-two-spaces", b"set {p}a 0 0 1  noreply\r\nx\r\nget {p}a\r\n")
case("set-cr-before-crlf", b"set {p}a 0 0 1\r\r\nx\r\nget {p}a\r\n")
case("set-tab-after-bytes", b"set {p}a 0 0 1\t\r\nx\r\nget {p}a\r\n")
case("set-shortest", b"set a 0 0 1\r\nx\r\nget a\r\ndelete a\r\n")
case("set-nul-in-line", b"set {p}a 0 0 1\x00 junk\r\nx\r\nget {p}a\r\n")
case("set-key-250-noreply", b"set " + key(250) + b" 0 0 1 noreply\r\nx\r\nget " + key(250) + b"\r\n")
case("add-missing", setv(b"{p}a", b"v", cmd=b"add") + b"get {p}a\r\n")
case("add-existing", setv(b"{p}a", b"v") + setv(b"{p}a", b"w", cmd=b"add") + b"get {p}a\r\n")
case("add-noreply", setv(b"{p}a", b"v", cmd=b"add", extra=b" noreply")
     + setv(b"{p}a", b"w", cmd=b"add", extra=b" noreply") + b"get {p}a\r\n")
case("add-after-expired", b"set {p}a 0 -1 1\r\nx\r\n" + setv(b"{p}a", b"y", cmd=b"add")
     + b"get {p}a\r\n")
case("replace-missing", setv(b"{p}a", b"v", cmd=b"replace") + b"get {p}a\r\n")
case("replace-existing", setv(b"{p}a", b"v", 3) + setv(b"{p}a", b"w", 4, cmd=b"replace")
     + b"get {p}a\r\n")
case("replace-noreply", setv(b"{p}a", b"v", cmd=b"replace", extra=b" noreply")
     + setv(b"{p}a", b"v") + setv(b"{p}a", b"w", cmd=b"replace", extra=b" noreply")
     + b"get {p}a\r\n")
case("append-missing", setv(b"{p}a", b"v", cmd=b"append") + b"get {p}a\r\n")
case("prepend-missing", setv(b"{p}a", b"v", cmd=b"prepend") + b"get {p}a\r\n")
case("append-existing", setv(b"{p}a", b"abc", 5) + setv(b"{p}a", b"def", 9, 100, cmd=b"append")
     + b"get {p}a\r\n")
case("prepend-existing", setv(b"{p}a", b"abc", 5) + setv(b"{p}a", b"xyz", 9, cmd=b"prepend")
     + b"get {p}a\r\n")
case("append-empty", setv(b"{p}a", b"abc") + setv(b"{p}a", b"", cmd=b"append") + b"get {p}a\r\n")
case("append-to-empty", setv(b"{p}a", b"") + setv(b"{p}a", b"x", cmd=b"append")
     + setv(b"{p}a", b"y", cmd=b"prepend") + b"get {p}a\r\n")
case("append-noreply", setv(b"{p}a", b"v", cmd=b"append", extra=b" noreply") + setv(b"{p}a", b"abc")
     + setv(b"{p}a", b"d", cmd=b"append", extra=b" noreply")
     + setv(b"{p}a", b"0", cmd=b"prepend", extra=b" noreply") + b"get {p}a\r\n")
case("append-bad-flags", setv(b"{p}a", b"abc") + b"append {p}a x 0 1\r\nd\r\nget {p}a\r\n")
case("append-keeps-exptime", b"set {p}a 0 -1 1\r\nx\r\n" + setv(b"{p}a", b"y", cmd=b"append")
     + b"get {p}a\r\n")
case("append-changes-cas", setv(b"{p}a", b"abc") + b"gets {p}a\r\n",
     setv(b"{p}a", b"d", cmd=b"append") + b"gets {p}a\r\n", b"cas {p}a 0 0 1 {cas1}\r\nz\r\n")
case("append-many", b"".join(setv(b"{p}a", b"%d," % i, cmd=b"append" if i else b"set")
                             for i in range(40)) + b"get {p}a\r\n")

# ---------------------------------------------------------------- cas
case("cas-missing", b"cas {p}a 0 0 1 1\r\nx\r\nget {p}a\r\n")
case("cas-zero", setv(b"{p}a", b"v") + b"cas {p}a 0 0 1 0\r\nx\r\nget {p}a\r\n")
case("cas-zero-missing", b"cas {p}a 0 0 1 0\r\nx\r\n")
case("cas-match", setv(b"{p}a", b"v") + b"gets {p}a\r\n",
     b"cas {p}a 3 0 1 {cas}\r\nw\r\ngets {p}a\r\n", b"cas {p}a 3 0 1 {cas1}\r\nq\r\nget {p}a\r\n")
case("cas-stale", setv(b"{p}a", b"v") + b"gets {p}a\r\n",
     setv(b"{p}a", b"w") + b"cas {p}a 0 0 1 {cas}\r\nx\r\ngets {p}a\r\n")
case("cas-noreply", setv(b"{p}a", b"v") + b"gets {p}a\r\n",
     b"cas {p}a 0 0 1 {cas} noreply\r\nw\r\ncas {p}a 0 0 1 {cas} noreply\r\nx\r\ngets {p}a\r\n",
     b"cas {p}b 0 0 1 5 noreply\r\nx\r\nget {p}b\r\n")
case("cas-bad-unique", setv(b"{p}a", b"v") + b"cas {p}a 0 0 1 abc\r\nx\r\nget {p}a\r\n")
case("cas-negative-unique", setv(b"{p}a", b"v") + b"cas {p}a 0 0 1 -1\r\nx\r\nget {p}a\r\n")
case("cas-huge-unique", setv(b"{p}a", b"v") + b"cas {p}a 0 0 1 18446744073709551616\r\nx\r\n")
case("cas-too-few-tokens", setv(b"{p}a", b"v") + b"cas {p}a 0 0 1\r\nx\r\nget {p}a\r\n")
case("cas-extra-token", setv(b"{p}a", b"v") + b"gets {p}a\r\n",
     b"cas {p}a 0 0 1 {cas} garbage\r\nw\r\nget {p}a\r\n")
case("cas-after-touch", setv(b"{p}a", b"v") + b"gets {p}a\r\n",
     b"touch {p}a 100\r\ngets {p}a\r\ncas {p}a 0 0 1 {cas1}\r\nw\r\nget {p}a\r\n")
case("cas-after-gat", setv(b"{p}a", b"v") + b"gats 100 {p}a\r\n",
     b"gets {p}a\r\ncas {p}a 0 0 1 {cas1}\r\nw\r\nget {p}a\r\n")
case("cas-distinct-keys", setv(b"{p}a", b"v") + setv(b"{p}b", b"v") + b"gets {p}a {p}b\r\n")
case("cas-after-delete", setv(b"{p}a", b"v") + b"gets {p}a\r\n",
     b"delete {p}a\r\ncas {p}a 0 0 1 {cas}\r\nw\r\n")
case("cas-bad-data-chunk", setv(b"{p}a", b"v") + b"gets {p}a\r\n",
     b"cas {p}a 0 0 1 {cas}\r\nwx\r\nget {p}a\r\n")

# ---------------------------------------------------------------- retrieval
case("get-miss", b"get {p}a\r\n")
case("get-no-key", b"get\r\n")
case("gets-no-key", b"gets\r\n")
case("get-multi", setv(b"{p}a", b"1") + setv(b"{p}c", b"333", 3)
     + b"get {p}a {p}b {p}c {p}a\r\n")
case("gets-multi", setv(b"{p}a", b"1") + setv(b"{p}c", b"333", 3)
     + b"gets {p}a {p}b {p}c {p}a\r\n")
case("get-noreply-is-key", setv(b"noreply", b"nr") + b"get {p}a noreply\r\n")
case("get-trailing-space", setv(b"{p}a", b"1") + b"get {p}a \r\nget {p}a   {p}a\r\n")
case("get-many-keys", setv(b"{p}k7", b"seven")
     + b"get " + b" ".join(b"{p}k%d" % i for i in range(200)) + b"\r\n")
case("gat-hit-miss", setv(b"{p}a", b"v", 2) + b"gat 100 {p}a {p}b\r\n")
case("gats-hit-miss", setv(b"{p}a", b"v", 2) + b"gats 100 {p}a {p}b {p}a\r\n")
case("gat-no-keys", b"gat 10\r\n")
case("gat-no-args", b"gat\r\n")
case("gats-no-keys", b"gats 10\r\n")
case("gat-bad-exptime", setv(b"{p}a", b"v") + b"gat abc {p}a\r\nget {p}a\r\n")
case("gat-negative-exptime", setv(b"{p}a", b"v") + b"gat -1 {p}a\r\nget {p}a\r\n")
case("gat-zero-keeps", b"set {p}a 0 100 1\r\nv\r\ngat 0 {p}a\r\nget {p}a\r\n")
case("gat-long-key", setv(b"{p}a", b"v"), b"gat 10 {p}a " + key(251) + b"\r\n")

# ---------------------------------------------------------------- delete
case("delete-hit", setv(b"{p}a", b"v") + b"delete {p}a\r\nget {p}a\r\ndelete {p}a\r\n")
case("delete-miss", b"delete {p}a\r\n")
case("delete-noreply", setv(b"{p}a", b"v") + b"delete {p}a noreply\r\ndelete {p}a noreply\r\n"
     b"get {p}a\r\n")
case("delete-zero", setv(b"{p}a", b"v") + b"delete {p}a 0\r\nget {p}a\r\n")
case("delete-zero-noreply", setv(b"{p}a", b"v") + b"delete {p}a 0 noreply\r\nget {p}a\r\n")
case("delete-ten", setv(b"{p}a", b"v") + b"delete {p}a 10\r\nget {p}a\r\n")
case("delete-ten-noreply", setv(b"{p}a", b"v") + b"delete {p}a 10 noreply\r\nget {p}a\r\n")
case("delete-noreply-zero", setv(b"{p}a", b"v") + b"delete {p}a noreply 0\r\nget {p}a\r\n")
case("delete-garbage", setv(b"{p}a", b"v") + b"delete {p}a x\r\nget {p}a\r\n")
case("delete-no-key", b"delete\r\n")
case("delete-too-many", setv(b"{p}a", b"v") + b"delete {p}a 0 noreply x\r\nget {p}a\r\n")
case("delete-long-key", b"delete " + key(251) + b"\r\n")

# ---------------------------------------------------------------- incr / decr
def incr_case(name, stored, *cmds):
    data = setv(b"{p}n", stored, 5)
    for c in cmds:
        data += c + b"\r\n"
    case(name, data + b"get {p}n\r\n")


incr_case("incr-basic", b"10", b"incr {p}n 5", b"incr {p}n 0")
incr_case("decr-basic", b"10", b"decr {p}n 3")
incr_case("decr-floor", b"3", b"decr {p}n 10", b"decr {p}n 1")
incr_case("incr-wrap", b"18446744073709551615", b"incr {p}n 1")
incr_case("incr-wrap-2", b"18446744073709551610", b"incr {p}n 10")
incr_case("incr-max-delta", b"0", b"incr {p}n 18446744073709551615")
incr_case("decr-max-delta", b"5", b"decr {p}n 18446744073709551615")
incr_case("incr-delta-2p64", b"1", b"incr {p}n 18446744073709551616")
incr_case("incr-stored-2p64", b"18446744073709551616", b"incr {p}n 1")
incr_case("incr-leading-space", b" 12", b"incr {p}n 1")
incr_case("incr-trailing-space", b"12 ", b"incr {p}n 1")
incr_case("incr-leading-zeros", b"007", b"incr {p}n 1")
incr_case("incr-negative-stored", b"-5", b"incr {p}n 1")
incr_case("decr-negative-stored", b"-5", b"decr {p}n 1")
incr_case("incr-mixed-stored", b"1a2", b"incr {p}n 1")
incr_case("incr-empty-stored", b"", b"incr {p}n 1")
incr_case("incr-text-stored", b"hello", b"incr {p}n 1", b"decr {p}n 1")
incr_case("incr-plus-stored", b"+5", b"incr {p}n 1")
incr_case("incr-newline-stored", b"5\r\n", b"incr {p}n 1")
incr_case("incr-bad-delta", b"1", b"incr {p}n abc", b"incr {p}n -1", b"incr {p}n 1.5",
          b"decr {p}n x1", b"incr {p}n 1x", b"incr {p}n +1", b"incr {p}n ")
incr_case("incr-length-grows", b"99", b"incr {p}n 1", b"incr {p}n 900")
incr_case("decr-length-shrinks", b"10", b"decr {p}n 1")
incr_case("decr-length-shrinks-more", b"1000", b"decr {p}n 999", b"incr {p}n 5")
incr_case("incr-then-append", b"10", b"incr {p}n 5", b"append {p}n 0 0 1\r\n7", b"incr {p}n 1")
incr_case("incr-noreply", b"10", b"incr {p}n 5 noreply", b"decr {p}n 1 noreply",
          b"incr {p}n abc noreply", b"incr {p}x 1 noreply")
incr_case("incr-too-few", b"1", b"incr {p}n", b"decr {p}n", b"incr", b"decr")
incr_case("incr-extra-token", b"1", b"incr {p}n 1 garbage", b"decr {p}n 1 garbage more")
incr_case("incr-20-digits", b"00000000000000000001", b"incr {p}n 1")
incr_case("incr-max-zero", b"18446744073709551615", b"incr {p}n 0")
incr_case("decr-to-zero-pad", b"10", b"decr {p}n 10", b"incr {p}n 3")
incr_case("incr-spaces-only", b"   ", b"incr {p}n 1")
incr_case("incr-delta-leading-zero", b"1", b"incr {p}n 007", b"decr {p}n 00")
incr_case("incr-keeps-flags-exptime", b"1", b"incr {p}n 1")
case("incr-missing", b"incr {p}a 1\r\ndecr {p}a 1\r\n")
case("incr-expired", b"set {p}a 0 -1 1\r\n1\r\nincr {p}a 1\r\n")
case("incr-long-key", b"incr " + key(251) + b" 1\r\n")
# memcached reads the value as a C string: digits then a NUL byte are a number (test_fuzz_diff)
case("incr-value-nul", setv(b"{p}a", b"98\x004xy") + setv(b"{p}b", b"12\x00") + setv(b"{p}c", b"\x0012")
     + b"incr {p}a 5\r\nget {p}a\r\ndecr {p}b 1\r\nincr {p}c 1\r\nma {p}a v\r\n")
# memcached's strchr finds a '-' anywhere in the value: a number >= 2^63 is then not one
case("incr-big-with-dash", setv(b"{p}a", b"18446744073709551615 a-b") + setv(b"{p}b", b"9223372036854775807 a-b")
     + b"decr {p}a 1\r\nincr {p}b 1\r\n")
# ma applies T and N in the order given, and none after a too-long opaque
case("ma-ttl-order", b"ma {p}a T-1 N0\r\nget {p}a\r\nma {p}b N0 T-1\r\nget {p}b\r\nma {p}c O" + b"x" * 33
     + b" N-1\r\nget {p}c\r\nma {p}d N-1 O" + b"x" * 33 + b"\r\nget {p}d\r\n")
# "watch" refuses only when replies memcached has not written yet are queued (not after mn)
case("watch-after-mn", b"version\r\nmn\r\nwatch nosuch\r\n")
# a get's too-long key culls every reply memcached has not written yet (conn_release_items):
# those since it last wrote, i.e. after the last get or mn, or since it read this batch
case("get-long-key-culls-unsent", setv(b"{p}a", b"v") + b"delete {p}x\r\nget {p}a " + key(251)
     + b"\r\n")
case("get-long-key-after-get", b"touch {p}x 1\r\nget {p}x\r\nincr {p}x 1\r\ngets {p}x " + key(251)
     + b"\r\n")
case("get-long-key-after-mn", b"delete {p}x\r\nmn\r\nmg {p}x\r\nbget {p}x " + key(251) + b"\r\n")
case("gat-long-key-culls", b"delete {p}x\r\ngat 10 {p}x " + key(251) + b"\r\n")
case("incr-changes-cas", setv(b"{p}a", b"1") + b"gets {p}a\r\n",
     b"incr {p}a 1\r\ngets {p}a\r\ncas {p}a 0 0 1 {cas1}\r\n7\r\nget {p}a\r\n")

# ---------------------------------------------------------------- touch
case("touch-hit", setv(b"{p}a", b"v", 3) + b"touch {p}a 100\r\nget {p}a\r\n")
case("touch-miss", b"touch {p}a 100\r\n")
case("touch-noreply", setv(b"{p}a", b"v") + b"touch {p}a 100 noreply\r\ntouch {p}b 1 noreply\r\n"
     b"get {p}a\r\n")
case("touch-expire-now", setv(b"{p}a", b"v") + b"touch {p}a -1\r\nget {p}a\r\n")
case("touch-bad-exptime", setv(b"{p}a", b"v") + b"touch {p}a abc\r\nget {p}a\r\n")
case("touch-too-few", b"touch {p}a\r\ntouch\r\n")
case("touch-extra", setv(b"{p}a", b"v") + b"touch {p}a 10 garbage\r\n")
case("touch-long-key", b"touch " + key(251) + b" 10\r\n")

# ---------------------------------------------------------------- misc commands
case("version", b"version\r\n")
case("version-extra", b"version foo\r\n")
case("verbosity", b"verbosity 1\r\nverbosity 0\r\n")
case("verbosity-two-args", b"verbosity 1 2\r\n")
case("verbosity-noreply", b"verbosity 1 noreply\r\nverbosity noreply\r\n")
case("verbosity-no-arg", b"verbosity\r\n")
case("verbosity-bad", b"verbosity abc\r\nverbosity -1\r\n")
case("unknown-command", b"foo\r\nfoo bar baz\r\n")
case("uppercase-get", setv(b"{p}a", b"v") + b"GET {p}a\r\nGet {p}a\r\n")
case("uppercase-set", b"SET {p}a 0 0 1\r\nx\r\nget {p}a\r\n")
case("uppercase-misc", b"VERSION\r\nQUIT\r\nDELETE x\r\nIncr x 1\r\n")
case("prefix-commands", b"ge {p}a\r\ngetx {p}a\r\nsets {p}a 0 0 1\r\nx\r\nversio\r\n")
case("empty-line", b"\r\n")
case("empty-line-bare-lf", b"\n")
case("space-line", b"   \r\n")
case("tab-line", b"\t\r\n")
case("cr-only-line", b"\r\r\n")
case("nul-line", b"\x00\r\n")
case("many-empty-lines", b"\r\n\n\r\n \r\n")
case("bare-lf-commands", b"set {p}a 0 0 1\nx\r\nget {p}a\ndelete {p}a\nget {p}a\n")
case("bare-lf-data-end", setv(b"{p}a", b"old") + b"set {p}a 0 0 1\r\nx\nget {p}a\r\n")
case("cr-in-key", b"set {p}a\r 0 0 1\r\nx\r\nget {p}a\r\r\nget {p}a\r\n")
case("tab-in-key", b"set {p}a\tb 0 0 1\r\nx\r\nget {p}a\tb\r\nget {p}a\r\n")
case("tab-separator", b"set\t{p}a 0 0 1\r\nx\r\nget\t{p}a\r\n")
case("utf8-key", b"set {p}\xc2\xa0k 0 0 1\r\nx\r\nget {p}\xc2\xa0k\r\n")
case("control-key", b"set {p}\x01\x7f 0 0 1\r\nx\r\nget {p}\x01\x7f\r\n")
# memcached bug NOT to copy: a multi-get that fails on a 251-byte key also throws away the
# not-yet-sent replies of commands pipelined before it in the same read (`set..\r\nx\r\nget a
# <251 bytes>` answers only CLIENT_ERROR, no STORED), which desynchronises a client. So the
# 251-byte-key cases set their keys in an earlier step (the sentinel flushes the replies).
case("key-250", setv(key(250), b"v") + b"get " + key(250) + b"\r\n")
case("key-251-set", b"set " + key(251) + b" 0 0 1\r\nx\r\n", b"get " + key(251) + b"\r\n")
case("key-251-set-noreply", b"set " + key(251) + b" 0 0 1 noreply\r\nx\r\n")
case("key-251-multiget", setv(b"{p}a", b"v"), b"get {p}a " + key(251) + b" {p}a\r\nget {p}a\r\n")
case("key-251-gets-first", b"gets " + key(251) + b" {p}a\r\n")
case("key-250-multiget", setv(key(250), b"v") + b"get {p}a " + key(250) + b" {p}b\r\n")
case("key-1000", b"get " + key(1000) + b"\r\n")
case("key-251-delete-add", b"add " + key(251) + b" 0 0 1\r\nx\r\n")

case("key-251-multiget-late", b"".join(setv(b"{p}k%d" % i, b"v%d" % i) for i in range(0, 40, 3)),
     b"get " + b" ".join(b"{p}k%d" % i for i in range(30)) + b" " + key(251)
     + b" {p}k33\r\n")
case("key-251-gets-late", setv(b"{p}k1", b"x"), b"gets " + b" ".join(b"{p}k%d" % i for i in range(50))
     + b" " + key(251) + b"\r\n")
case("key-250-noreply", setv(key(250), b"v", extra=b" noreply") + b"get " + key(250) + b"\r\n")
case("get-25-keys", b"".join(setv(b"{p}k%d" % i, b"v%d" % i) for i in range(25))
     + b"get " + b" ".join(b"{p}k%d" % i for i in range(25)) + b"\r\n")

# ---------------------------------------------------------------- data blocks
case("data-too-long", setv(b"{p}a", b"old") + b"set {p}a 0 0 1\r\nxyz\r\nget {p}a\r\n")
case("data-too-long-2", setv(b"{p}a", b"old") + b"set {p}a 0 0 3\r\nabcdefgh\r\nget {p}a\r\n")
case("data-too-short", setv(b"{p}a", b"old") + b"set {p}a 0 0 5\r\nab\r\nget {p}a\r\n")
case("data-no-crlf", setv(b"{p}a", b"old") + b"set {p}a 0 0 3\r\nabcXYget {p}a\r\n")
case("data-bare-cr", setv(b"{p}a", b"old") + b"set {p}a 0 0 1\r\nx\rget {p}a\r\n")
case("data-bad-noreply", setv(b"{p}a", b"old") + b"set {p}a 0 0 1 noreply\r\nxyz\r\nget {p}a\r\n")
case("data-bad-append", setv(b"{p}a", b"old") + b"append {p}a 0 0 1\r\nxy\r\nget {p}a\r\n")
case("data-bad-then-cmds", b"set {p}a 0 0 2\r\nabc\r\nset {p}b 0 0 1\r\nx\r\nget {p}a {p}b\r\n")
case("data-cmd-line-as-data", b"set {p}a 0 0 14\r\nget {p}b\r\nabc\r\nget {p}a\r\n")
case("data-zero-then-data", b"set {p}a 0 0 0\r\nx\r\nget {p}a\r\n")
case("bytes-wraps-2p32", b"set {p}a 0 0 4294967296\r\n\r\nget {p}a\r\n")
case("bytes-2p32-plus-1", b"set {p}a 0 0 4294967297\r\nx\r\nget {p}a\r\n")
case("bytes-huge", b"set {p}a 0 0 99999999999999999999\r\nx\r\nget {p}a\r\n")

BIG = 2 * 1024 * 1024
case("too-large-set", setv(b"{p}a", b"old") + b"set {p}a 0 0 %d\r\n" % BIG + b"z" * BIG
     + b"\r\nget {p}a\r\n")
case("too-large-set-noreply", setv(b"{p}a", b"old") + b"set {p}a 0 0 %d noreply\r\n" % BIG
     + b"z" * BIG + b"\r\nget {p}a\r\n")
case("too-large-add", setv(b"{p}a", b"old") + b"add {p}a 0 0 %d\r\n" % BIG + b"z" * BIG
     + b"\r\nget {p}a\r\n")
case("too-large-replace", setv(b"{p}a", b"old") + b"replace {p}a 0 0 %d\r\n" % BIG + b"z" * BIG
     + b"\r\nget {p}a\r\n")
case("too-large-append", setv(b"{p}a", b"old") + b"append {p}a 0 0 %d\r\n" % BIG + b"z" * BIG
     + b"\r\nget {p}a\r\n")
case("too-large-missing", b"set {p}a 0 0 %d\r\n" % BIG + b"z" * BIG + b"\r\nget {p}a\r\n")
case("too-large-bad-chunk", setv(b"{p}a", b"old") + b"set {p}a 0 0 %d\r\n" % BIG + b"z" * BIG
     + b"XX\r\nget {p}a\r\n")
case("too-large-2mb-then-pipeline", b"set {p}a 0 0 %d\r\n" % BIG + b"z" * BIG + b"\r\n"
     + setv(b"{p}b", b"after") + b"get {p}b\r\n")
HALF = 600 * 1000
case("append-past-limit", setv(b"{p}a", b"y" * HALF) + setv(b"{p}a", b"z" * HALF, cmd=b"append")
     + b"get {p}a\r\n")
case("prepend-past-limit", setv(b"{p}a", b"y" * HALF) + setv(b"{p}a", b"z" * HALF, cmd=b"prepend")
     + b"get {p}a\r\n")
case("large-fits", setv(b"{p}a", b"q" * 1000000) + b"get {p}a\r\n")
case("large-fits-chunks",
     Chunks([b"set {p}a 0 0 500000\r\n" + b"a" * 100000, b"b" * 200000, b"c" * 200000 + b"\r",
             b"\nget {p}a\r\n"]))

# ---------------------------------------------------------------- odd corners
case("odd-gat-noreply-key", setv(b"noreply", b"nr") + b"gat 10 {p}a noreply\r\n")
case("odd-verbosity-3", b"verbosity 1 2 3\r\nverbosity 1 noreply x\r\n")
case("odd-version-noreply", b"version noreply\r\n")
case("odd-quit-noreply", MayClose(b"quit noreply\r\n"))
case("odd-flush-values", b"flush_all 0 0\r\nflush_all -2\r\n", group="flush")
case("odd-flush-absolute-past", setv(b"{p}a", b"v") + b"flush_all 2592001\r\nget {p}a\r\n",
     group="flush")
case("odd-flush-overflow", setv(b"{p}a", b"v") + b"flush_all 99999999999999999999\r\nget {p}a\r\n",
     group="flush")
case("odd-incr-double-space", setv(b"{p}a", b"1") + b"incr {p}a  1\r\nincr  {p}a 1\r\nget {p}a\r\n")
case("odd-touch-zero", b"set {p}a 0 100 1\r\nv\r\ntouch {p}a 0\r\nget {p}a\r\n")
case("odd-cas-leading-zeros", setv(b"{p}a", b"v") + b"gets {p}a\r\n",
     b"cas {p}a 0 0 1 000{cas}\r\nw\r\nget {p}a\r\n")
case("odd-bytes-leading-zeros", b"set {p}a 00 0 01\r\nx\r\nget {p}a\r\n")
case("odd-flags-long-zeros", b"set {p}a 0000000000000000000001 0 1\r\nx\r\nget {p}a\r\n")
case("odd-data-cr-cr", b"set {p}a 0 0 1\r\n\r\r\nget {p}a\r\n")
case("odd-exptime-int-min", b"set {p}a 0 -2147483648 1\r\nx\r\nget {p}a\r\n")
case("odd-exptime-int-max", b"set {p}a 0 2147483647 1\r\nx\r\nget {p}a\r\n")
case("odd-exptime-overflow", b"set {p}a 0 99999999999999999999 1\r\nx\r\nget {p}a\r\n")
case("odd-exptime-2p32", b"set {p}a 0 4294967296 1\r\nx\r\nget {p}a\r\n")
case("odd-gat-overflow", setv(b"{p}a", b"v") + b"gat 99999999999999999999 {p}a\r\nget {p}a\r\n")
case("odd-touch-overflow", setv(b"{p}a", b"v") + b"touch {p}a 99999999999999999999\r\nget {p}a\r\n")
case("odd-delete-0-0", setv(b"{p}a", b"v") + b"delete {p}a 0 0\r\nget {p}a\r\n")
case("odd-key-250-everywhere", setv(key(250), b"5") + b"gets " + key(250) + b"\r\n"
     + b"incr " + key(250) + b" 1\r\ntouch " + key(250) + b" 100\r\ngat 100 " + key(250)
     + b"\r\ndelete " + key(250) + b"\r\n")
case("odd-empty-key-set", b"set  0 0 1\r\nx\r\n")
case("odd-nul-in-key", b"set {p}a\x00b 0 0 1\r\nx\r\nget {p}a\x00b\r\nget {p}a\r\n")
case("odd-noreply-alone", b"noreply\r\n")
case("odd-cas-noreply-no-unique", b"cas {p}a 0 0 1 noreply\r\nx\r\n")
case("odd-incr-noreply-garbage", setv(b"{p}a", b"1") + b"incr {p}a 1 noreply garbage\r\nget {p}a\r\n")
case("odd-set-cr-before-crlf", b"set {p}a 0 0 1\r\r\nx\r\nget {p}a\r\n")
case("odd-incr-2p63", setv(b"{p}a", b"9223372036854775807") + b"incr {p}a 1\r\nincr {p}a 1\r\n"
     b"decr {p}a 1\r\nget {p}a\r\n")
case("odd-huge-multiget-output", setv(b"{p}a", b"H" * 100000)
     + b"get " + b" ".join([b"{p}a"] * 60) + b"\r\n")
case("odd-get-24-and-25-tokens", setv(b"{p}a", b"v") + b"get " + b" ".join([b"{p}a"] * 23) + b"\r\n"
     + b"get " + b" ".join([b"{p}a"] * 24) + b"\r\n" + b"get " + b" ".join([b"{p}a"] * 25) + b"\r\n")
case("odd-set-24-tokens", b"set {p}a 0 0 1 " + b" ".join([b"x"] * 20) + b"\r\nx\r\nget {p}a\r\n")

# ---------------------------------------------------------------- connection-level
case("quit", MayClose(b"quit\r\n"))
case("quit-arg", MayClose(b"quit foo\r\n"))
case("quit-pipelined", MayClose(setv(b"{p}a", b"v") + b"quit\r\n" + setv(b"{p}a", b"w")
                                + b"get {p}a\r\n"))
case("quit-bare-lf", MayClose(b"get {p}a\nquit\nget {p}a\n"))
case("http-get", MayClose(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
case("http-lowercase", MayClose(b"get / HTTP/1.0\r\n"))
case("http-post", MayClose(b"POST /x HTTP/1.1\r\n\r\n"))
case("http-last-token", MayClose(setv(b"{p}a", b"v") + b"get {p}a HTTP/2\r\nget {p}a\r\n"))
case("http-middle-token", b"get HTTP/1.1 {p}a\r\n")
case("long-line-no-newline", MayClose(b"x" * 3000))
case("long-set-no-newline", MayClose(b"set " + b"k" * 3000))
case("long-line-2047", Raw(b"x" * 2047), b"\r\n")
case("long-line-with-newline", b"foo " + b"x" * 3000 + b"\r\n")
case("long-multiget-newline", setv(b"{p}k3", b"three")
     + b"get " + b" ".join(b"{p}k%d" % i for i in range(600)) + b"\r\n")
case("long-multiget-split", setv(b"{p}k5", b"five"),
     Raw(b"get " + b" ".join(b"{p}k%d" % i for i in range(600))), b" {p}k1\r\n")
case("long-gets-split", setv(b"{p}k5", b"five"),
     Raw(b"gets " + b" ".join(b"{p}k%d" % i for i in range(600))), b"\r\n")
case("long-gat-split", setv(b"{p}k5", b"five"),
     MayClose(b"gat 0 " + b" ".join(b"{p}k%d" % i for i in range(600))), b"\r\n")
case("long-multiget-many", b"get " + b" ".join(b"{p}key%d" % i for i in range(3000)) + b"\r\n")
case("long-multiget-200kb", setv(b"{p}key77", b"x")
     + b"get " + b" ".join(b"{p}key%d" % i for i in range(20000)) + b"\r\n")
case("pipelined-batch", b"".join(setv(b"{p}k%d" % i, b"v%d" % i, i) for i in range(100))
     + b"".join(b"get {p}k%d\r\n" % i for i in range(0, 100, 7))
     + b"".join(b"delete {p}k%d\r\n" % i for i in range(0, 100, 3))
     + b"get " + b" ".join(b"{p}k%d" % i for i in range(100)) + b"\r\n")
case("pipelined-mixed", setv(b"{p}a", b"1") + b"incr {p}a 5\r\nget {p}a\r\nfoo\r\n"
     + setv(b"{p}a", b"x", cmd=b"append") + b"gets {p}a\r\ndelete {p}a\r\ntouch {p}a 1\r\n"
     + b"set {p}b 0 0 1\r\nxx\r\nversion\r\n")
case("pipelined-large-output", setv(b"{p}a", b"L" * 100000)
     + b"get {p}a\r\n" * 50 + b"gets {p}a {p}a {p}a\r\n")
case("pipelined-many-small", b"".join(b"get {p}a\r\n" for _ in range(2000))
     + b"".join(setv(b"{p}k%d" % (i % 7), b"%d" % i, extra=b" noreply") for i in range(500))
     + b"get " + b" ".join(b"{p}k%d" % i for i in range(7)) + b"\r\n")
case("bytewise-quit", Raw(b"get {p}a\r\nqu"), Bytewise(b"it\r\nget {p}a\r\n"))
case("bytewise-set-get", Bytewise(setv(b"{p}a", b"hello") + b"get {p}a\r\n"))
case("bytewise-errors", Bytewise(b"foo\r\nset {p}a 0 0 1\r\nxy\r\nincr {p}a x\r\n"))
case("bytewise-bare-lf", Bytewise(b"set {p}a 0 0 2\nhi\r\nget {p}a\n"))
case("split-mid-data", Chunks([b"set {p}a 0 0 10\r\n01234", b"56789\r", b"\nget {p}a\r\n"]))
case("split-mid-line", Chunks([b"se", b"t {p}a 0 0 1\r", b"\nx\r\nget {p}", b"a\r\n"]))
case("split-crlf", Chunks([b"get {p}a\r", b"\n"]))

# ---------------------------------------------------------------- expiry (real, short sleeps)
# memcached's clock ticks once a second, so exptime 1 may already be past right after the set;
# exptime 2 and a 3.1 s sleep are safe both ways. These cases run concurrently.
case("expire-relative", b"set {p}a 0 2 1\r\nx\r\nset {p}b 0 100 1\r\ny\r\nget {p}a {p}b\r\n",
     Sleep(3.1), b"get {p}a {p}b\r\n")
case("expire-touch-extends", b"set {p}a 0 2 1\r\nx\r\nset {p}b 0 2 1\r\ny\r\ntouch {p}a 100\r\n"
     b"gat 100 {p}b\r\n", Sleep(3.1), b"get {p}a {p}b\r\n")
case("expire-touch-shortens", b"set {p}a 0 100 1\r\nx\r\ntouch {p}a 2\r\nget {p}a\r\n", Sleep(3.1),
     b"get {p}a\r\ntouch {p}a 1\r\nincr {p}a 1\r\n")
case("expire-gat-shortens", b"set {p}a 0 100 1\r\nx\r\ngats 2 {p}a\r\n", Sleep(3.1),
     b"gets {p}a\r\n")
case("expire-then-add-append", b"set {p}a 0 2 1\r\n1\r\nset {p}b 0 2 1\r\n2\r\n", Sleep(3.1),
     setv(b"{p}a", b"x", cmd=b"append") + setv(b"{p}b", b"y", cmd=b"add")
     + b"incr {p}a 1\r\ndelete {p}a\r\nget {p}b\r\n")
case("expire-absolute", b"set {p}a 0 {now+3} 1\r\nx\r\nset {p}b 0 {now+100} 1\r\ny\r\n"
     b"set {p}c 0 100 1\r\nz\r\ntouch {p}c {now+3}\r\nget {p}a {p}b {p}c\r\n", Sleep(4.1),
     b"get {p}a {p}b {p}c\r\n")
case("expire-cas-replace", b"set {p}a 0 2 1\r\n1\r\ngets {p}a\r\n", Sleep(3.1),
     b"cas {p}a 0 0 1 {cas}\r\nx\r\n" + setv(b"{p}a", b"y", cmd=b"replace") + b"get {p}a\r\n")

# ---------------------------------------------------------------- flush_all (run last)
case("flush-all", setv(b"{p}a", b"v") + b"flush_all\r\nget {p}a\r\n", group="flush")
case("flush-all-zero", setv(b"{p}a", b"v") + b"flush_all 0\r\nget {p}a\r\n"
     + setv(b"{p}a", b"w") + b"get {p}a\r\n", group="flush")
case("flush-all-minus-one", setv(b"{p}a", b"v") + b"flush_all -1\r\nget {p}a\r\n", group="flush")
case("flush-all-noreply", setv(b"{p}a", b"v") + b"flush_all noreply\r\nget {p}a\r\n", group="flush")
case("flush-all-noreply-zero", setv(b"{p}a", b"v") + b"flush_all noreply 0\r\nget {p}a\r\n",
     group="flush")
case("flush-all-zero-noreply", setv(b"{p}a", b"v") + b"flush_all 0 noreply\r\nget {p}a\r\n",
     group="flush")
case("flush-all-bad", setv(b"{p}a", b"v") + b"flush_all abc\r\nflush_all 1 2 3\r\nget {p}a\r\n",
     group="flush")
case("flush-all-extra", setv(b"{p}a", b"v") + b"flush_all 0 noreply x\r\nget {p}a\r\n",
     group="flush")
case("flush-all-then-ops", setv(b"{p}a", b"1") + b"flush_all\r\nincr {p}a 1\r\ntouch {p}a 1\r\n"
     + setv(b"{p}a", b"x", cmd=b"append") + setv(b"{p}a", b"y", cmd=b"replace")
     + setv(b"{p}a", b"z", cmd=b"add") + b"get {p}a\r\n", group="flush")
# The deadline is in whole seconds of each server's own clock: 4 s leaves room both ways.
case("flush-all-delay", setv(b"{p}a", b"v") + b"flush_all 4\r\nget {p}a\r\n", Sleep(0.3),
     setv(b"{p}b", b"w") + b"get {p}a {p}b\r\n", Sleep(4.5), b"get {p}a {p}b\r\n"
     + setv(b"{p}c", b"after") + b"get {p}c\r\n", group="flush")
case("flush-all-absolute-future", setv(b"{p}a", b"v") + b"flush_all {now+4}\r\nget {p}a\r\n",
     Sleep(5.1), b"get {p}a\r\n", group="flush")
case("flush-all-uppercase", b"FLUSH_ALL\r\n", group="flush")

# ---------------------------------------------------------------- stats replies compared as bytes
case("stats-bogus", b"stats bogus\r\nstats bogus two\r\n")
case("stats-reset", b"stats reset\r\n", group="flush")
