/*
 * check_protocol: the classic text protocol against real storage, no sockets. Expected
 * replies are memcached 1.6.18's, recorded from Debian's /usr/bin/memcached with raw bytes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "protocol/internal.h"
#include "protocol/proto.h"
#include "protocol/reply.h"
#include "protocol/stats.h"
#include "storage/storage.h"
#include "proto_fixture.h"
#include "unit.h"

/* Sends `in` on a fresh connection and returns everything replied. */
static const char *run(const char *in, size_t len)
{
    sim_free(&S);
    sim_init(&S);
    sim_feed(&S, in, len);
    return S.out ? S.out : "";
}

#define RUN(lit) run((lit), sizeof(lit) - 1)
#define EXPECT(in, want)                                                                       \
    do {                                                                                       \
        const char *got_ = RUN(in);                                                            \
        ck_assert_msg(S.outlen == sizeof(want) - 1 && memcmp(got_, want, S.outlen) == 0,       \
                      "input %s\n want [%s]\n got  [%s]", #in, want, got_);                    \
    } while (0)

/* ------------------------------------------------------------------ basic commands */

START_TEST(test_set_get)
{
    EXPECT("set k 5 0 3\r\nabc\r\nget k\r\n", "STORED\r\nVALUE k 5 3\r\nabc\r\nEND\r\n");
    EXPECT("get k missing k\r\n", "VALUE k 5 3\r\nabc\r\nVALUE k 5 3\r\nabc\r\nEND\r\n");
    EXPECT("get nope\r\n", "END\r\n");
    EXPECT("set e 0 0 0\r\n\r\nget e\r\n", "STORED\r\nVALUE e 0 0\r\n\r\nEND\r\n");
    EXPECT("set f 4294967295 0 1\r\nx\r\nget f\r\n",
           "STORED\r\nVALUE f 4294967295 1\r\nx\r\nEND\r\n");
    /* bare \n line ends */
    EXPECT("set n 0 0 1\nx\r\nget n\n", "STORED\r\nVALUE n 0 1\r\nx\r\nEND\r\n");
}
END_TEST

START_TEST(test_gets_cas)
{
    RUN("set k 0 0 1\r\nx\r\n");
    const char *out = RUN("gets k\r\n");
    unsigned long long cas = 0;
    ck_assert_int_eq(sscanf(out, "VALUE k 0 1 %llu\r\n", &cas), 1);
    ck_assert_uint_ne(cas, 0);
    char buf[128];
    snprintf(buf, sizeof(buf), "cas k 0 0 1 %llu\r\ny\r\n", cas + 1000);
    ck_assert_str_eq(run(buf, strlen(buf)), "EXISTS\r\n");
    snprintf(buf, sizeof(buf), "cas k 0 0 1 %llu\r\ny\r\n", cas);
    ck_assert_str_eq(run(buf, strlen(buf)), "STORED\r\n");
    EXPECT("cas missing 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n");
    EXPECT("cas k 0 0 1 0\r\nx\r\n", "EXISTS\r\n");
    EXPECT("cas k 0 0 1\r\nx\r\n", "ERROR\r\nERROR\r\n");
    EXPECT("cas k 0 0 1 abc\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
    EXPECT("cas k 0 0 1 -1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
    EXPECT("cas k 0 0 1 1 noreply\r\nx\r\n", "");
    ck_assert_uint_eq(S.st.cas_badval, 1); /* counters are per (simulated) connection here */
    EXPECT("cas nope 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n");
    ck_assert_uint_eq(S.st.cas_misses, 1);
}
END_TEST

START_TEST(test_add_replace_append_prepend)
{
    EXPECT("add a 0 0 1\r\n1\r\nadd a 0 0 1\r\n2\r\nget a\r\n",
           "STORED\r\nNOT_STORED\r\nVALUE a 0 1\r\n1\r\nEND\r\n");
    EXPECT("replace b 0 0 1\r\n1\r\nreplace a 7 0 1\r\n3\r\nget a\r\n",
           "NOT_STORED\r\nSTORED\r\nVALUE a 7 1\r\n3\r\nEND\r\n");
    EXPECT("append a 0 0 2\r\n45\r\nprepend a 0 0 2\r\n12\r\nget a\r\n",
           "STORED\r\nSTORED\r\nVALUE a 7 5\r\n12345\r\nEND\r\n");
    EXPECT("append nope 0 0 1\r\nx\r\nprepend nope 0 0 1\r\nx\r\n",
           "NOT_STORED\r\nNOT_STORED\r\n");
}
END_TEST

START_TEST(test_delete)
{
    EXPECT("set k 0 0 1\r\nx\r\ndelete k\r\ndelete k\r\n", "STORED\r\nDELETED\r\nNOT_FOUND\r\n");
    EXPECT("delete k 0\r\n", "NOT_FOUND\r\n");
    EXPECT("delete k 10\r\n",
           "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
    EXPECT("delete k x\r\n",
           "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
    EXPECT("delete k noreply\r\ndelete k 0 noreply\r\ndelete k 10 noreply\r\n", "");
    EXPECT("delete k x y z\r\n", "ERROR\r\n");
    EXPECT("delete\r\n", "ERROR\r\n");
}
END_TEST

START_TEST(test_incr_decr)
{
    EXPECT("set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr n 18446744073709551615\r\n",
           "STORED\r\n15\r\n0\r\n18446744073709551615\r\n");
    EXPECT("incr n 1\r\n", "0\r\n"); /* wraps */
    EXPECT("incr missing 1\r\ndecr missing 1\r\n", "NOT_FOUND\r\nNOT_FOUND\r\n");
    EXPECT("set a 0 0 1\r\na\r\nincr a 1\r\n",
           "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    EXPECT("incr n abc\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n");
    EXPECT("decr n -1\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n");
    EXPECT("incr n 1.5\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n");
    EXPECT("incr n 18446744073709551616\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n");
    EXPECT("incr a 1 noreply\r\nincr a x noreply\r\nincr missing 1 noreply\r\n", "");
    EXPECT("incr\r\nincr k\r\n", "ERROR\r\nERROR\r\n");
}
END_TEST

START_TEST(test_touch_gat)
{
    EXPECT("set k 0 0 1\r\nx\r\ntouch k 10\r\ntouch nope 10\r\n",
           "STORED\r\nTOUCHED\r\nNOT_FOUND\r\n");
    EXPECT("touch k x\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
    EXPECT("touch k 10 noreply\r\ntouch k x noreply\r\n", "");
    EXPECT("touch k\r\n", "ERROR\r\n");
    EXPECT("gat 100 k nope\r\n", "VALUE k 0 1\r\nx\r\nEND\r\n");
    EXPECT("gat 10\r\n", "END\r\n");
    EXPECT("gat x k\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
    EXPECT("gat\r\ngats\r\n", "ERROR\r\nERROR\r\n");
    const char *out = RUN("gats 100 k\r\n");
    unsigned long long cas;
    ck_assert_int_eq(sscanf(out, "VALUE k 0 1 %llu\r\n", &cas), 1);
    /* expiry through touch: the clock is injectable */
    RUN("touch k 5\r\n");
    clock_set(1010);
    EXPECT("get k\r\n", "END\r\n");
    /* gat with a past exptime still returns the value once (memcached 1.6.18) */
    EXPECT("set j 0 0 1\r\nx\r\ngat -1 j\r\nget j\r\n",
           "STORED\r\nVALUE j 0 1\r\nx\r\nEND\r\nEND\r\n");
}
END_TEST

START_TEST(test_expiry)
{
    EXPECT("set k 0 10 1\r\nx\r\nget k\r\n", "STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n");
    clock_set(1011);
    EXPECT("get k\r\n", "END\r\n");
    EXPECT("set k 0 -1 1\r\nx\r\nget k\r\n", "STORED\r\nEND\r\n");
    EXPECT("set k 0 2592001 1\r\nx\r\nget k\r\n", "STORED\r\nEND\r\n");
    /* 2^31 truncates to a negative 32-bit exptime in memcached: expired at once */
    EXPECT("set k 0 2147483648 1\r\nx\r\nget k\r\n", "STORED\r\nEND\r\n");
}
END_TEST

START_TEST(test_flush_all)
{
    EXPECT("set k 0 0 1\r\nx\r\nflush_all\r\nget k\r\n", "STORED\r\nOK\r\nEND\r\n");
    clock_set(1002);
    EXPECT("set k 0 0 1\r\nx\r\nflush_all 10\r\nget k\r\n", "STORED\r\nOK\r\nVALUE k 0 1\r\nx\r\nEND\r\n");
    clock_set(1013);
    EXPECT("get k\r\n", "END\r\n");
    EXPECT("flush_all x\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
    EXPECT("flush_all noreply 0\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
    EXPECT("flush_all 0 noreply\r\nflush_all noreply\r\n", "");
    EXPECT("flush_all -1\r\nflush_all 1 2\r\n", "OK\r\nOK\r\n");
    EXPECT("flush_all 1 2 3\r\n", "ERROR\r\n");
    struct proto_config pcfg = {.item_size_max = 1 << 20, .flush_enabled = false};
    proto_setup(&pcfg, NULL);
    EXPECT("flush_all\r\n", "CLIENT_ERROR flush_all not allowed\r\n");
    EXPECT("flush_all noreply\r\n", "");
    ck_assert_uint_eq(S.st.cmd_flush, 1);
}
END_TEST

START_TEST(test_misc_commands)
{
    /* exactly memcached's: the `memcached` npm package matches /(\d+)\.(\d+)\.(\d+)$/ and
     * crashed Node on the former "1.6.18-cached-0.1" (test_clients_more.py, node memcached) */
    EXPECT("version\r\n", "VERSION 1.6.18\r\n");
    EXPECT("version foo\r\n", "VERSION 1.6.18\r\n");
    EXPECT("verbosity 1\r\nverbosity 5 6\r\n", "OK\r\nOK\r\n");
    EXPECT("verbosity\r\nverbosity 1 2 3\r\n", "ERROR\r\nERROR\r\n");
    EXPECT("verbosity x\r\n", "CLIENT_ERROR bad command line format\r\n");
    EXPECT("verbosity 1 noreply\r\nverbosity noreply\r\n", "");
    EXPECT("quit\r\nversion\r\n", "");
    ck_assert_int_eq(S.last, PROTO_CLOSE);
    ck_assert(S.pc.closing);
    EXPECT("version\r\nquit foo\r\nversion\r\n", "VERSION 1.6.18\r\n");
    ck_assert_int_eq(S.last, PROTO_CLOSE);
    EXPECT("shutdown\r\n", "ERROR: shutdown not enabled\r\n");
    ck_assert_int_eq(S.last, PROTO_CONTINUE);
}
END_TEST

static int shutdowns;
static void on_shutdown(void)
{
    shutdowns++;
}

START_TEST(test_shutdown_enabled)
{
    struct proto_hooks h = {.shutdown = on_shutdown};
    struct proto_config pcfg = {.item_size_max = 1 << 20, .flush_enabled = true,
                                .shutdown_enabled = true};
    proto_setup(&pcfg, &h);
    EXPECT("shutdown foo\r\n", "CLIENT_ERROR invalid shutdown mode\r\n");
    ck_assert_int_eq(shutdowns, 0);
    EXPECT("shutdown\r\nversion\r\n", "");
    ck_assert_int_eq(S.last, PROTO_CLOSE);
    ck_assert_int_eq(shutdowns, 1);
    EXPECT("shutdown graceful\r\n", "");
    ck_assert_int_eq(shutdowns, 2);
}
END_TEST

/* ------------------------------------------------------------------ malformed input */

struct bad_case {
    const char *in;
    size_t inlen;
    const char *want;
};
#define BAD(i, w) {i, sizeof(i) - 1, w}

/* Every line was sent to memcached 1.6.18; `want` is what it answered. */
static const struct bad_case bad_cases[] = {
    BAD("\r\n", "ERROR\r\n"),
    BAD("\n", "ERROR\r\n"),
    BAD("   \r\n", "ERROR\r\n"),
    BAD("GET k\r\n", "ERROR\r\n"),
    BAD("get\r\n", "ERROR\r\n"),
    BAD("gets\r\n", "ERROR\r\n"),
    BAD("x\r\n", "ERROR\r\n"),
    BAD("x HTTP/1.1\r\n", "ERROR\r\n"),
    BAD("gxx HTTP/1.1\r\n", "ERROR\r\n"),
    BAD("foo bar HTTP/1.0 x\r\n", "ERROR\r\n"),
    BAD("foo HTTP/1.1\r\nversion\r\n", ""),
    BAD("GET / HTTP/1.1\r\nversion\r\n", ""),
    BAD("set k 0 0\r\n", "ERROR\r\n"),
    BAD("set k 0 0 1 a b\r\nx\r\n", "ERROR\r\nERROR\r\n"),
    BAD("set k 0 0 1 garbage\r\nx\r\n", "STORED\r\n"),
    BAD("set k 0 0 -1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    BAD("set k 0 0 abc\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    BAD("set k abc 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    BAD("set k 0 abc 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    BAD("set k -1 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    BAD("set k 0 0 1x\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    BAD("set k 18446744073709551616 0 1\r\nx\r\n",
        "CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    BAD("set k 0 0 2147483646\r\n", "CLIENT_ERROR bad command line format\r\n"),
    BAD("set k 0 0 2147483648\r\n", "CLIENT_ERROR bad command line format\r\n"),
    BAD("set k abc 0 1 noreply\r\nx\r\n", "ERROR\r\n"),
    BAD("set k 0 0 01\r\nx\r\n", "STORED\r\n"),
    BAD("set k 0 0 +1\r\nx\r\n", "STORED\r\n"),
    BAD("set k 0 0  1\r\nx\r\n", "STORED\r\n"),
    BAD("set k 0 0 1 noreply\r\nx\r\n", ""),
    /* flags wrap to 32 bits and whitespace around numbers is accepted, as memcached */
    BAD("set k 4294967296 0 1\r\nx\r\nget k\r\n", "STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n"),
    BAD("set k 0 0 4294967297\r\nx\r\nget k\r\n", "STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n"),
    BAD("set k -0 0 1\r\nx\r\nget k\r\n", "STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n"),
    BAD("set k 1\t 0 1\r\nx\r\nget k\r\n", "STORED\r\nVALUE k 1 1\r\nx\r\nEND\r\n"),
    BAD("set k \t1 0 1\r\nx\r\nget k\r\n", "STORED\r\nVALUE k 1 1\r\nx\r\nEND\r\n"),
    /* bad data chunks: memcached consumes <bytes>+2 and parses the rest as commands */
    BAD("set k 0 0 1\r\nxy\r\nget k\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"),
    BAD("set k 0 0 1\r\nxyz\r\nget k\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"),
    BAD("set k 0 0 1\r\nxyzw\r\nget k\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"),
    BAD("set k 0 0 1\r\nx\nget k\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
    BAD("set k 0 0 3\r\nabcdefgh\r\nget k\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"),
    BAD("set k 0 0 3\r\nabc\n\r\nget k\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"),
    BAD("set k 0 0 1 noreply\r\nxy\r\n", "ERROR\r\n"),
    /* key length */
    BAD("set "
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 0 0 1\r\nx\r\n",
        "CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    BAD("set k 0 0 1\r\nx\r\nget k "
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa k\r\n",
        /* memcached culls every reply it has not written yet: STORED too */
        "CLIENT_ERROR bad command line format\r\n"),
    BAD("incr "
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1\r\n",
        "CLIENT_ERROR bad command line format\r\n"),
    BAD("delete "
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        "CLIENT_ERROR bad command line format\r\n"),
    /* key bytes: only ' ' separates; '\r' before "\r\n" is part of the key; NUL ends the line */
    BAD("set k\r 0 0 1\r\nx\r\nget k\r\r\nget k\r\n",
        "STORED\r\nVALUE k\r 0 1\r\nx\r\nEND\r\nEND\r\n"),
    BAD("version\0junk\r\n", "VERSION 1.6.18\r\n"),
    BAD("get k noreply\r\n", "END\r\n"),
    BAD("stats foo\r\n", "ERROR\r\n"),
    BAD("stats detail\r\n", "CLIENT_ERROR usage: stats detail on|off|dump\r\n"),
    BAD("stats detail x\r\n", "CLIENT_ERROR usage: stats detail on|off|dump\r\n"),
    BAD("stats detail on\r\nstats detail off\r\nstats detail dump\r\n", "OK\r\nOK\r\nEND\r\n"),
    BAD("stats sizes\r\n", "STAT sizes_status disabled\r\nEND\r\n"),
    BAD("stats reset\r\nstats reset foo\r\n", "RESET\r\nRESET\r\n"),
    BAD("stats conns\r\n", "END\r\n"),
    BAD("mn\r\n", "ERROR\r\n"), /* until protocol/meta.c lands (then "MN") */
};

START_TEST(test_malformed)
{
    const struct bad_case *c = &bad_cases[_i];
    const char *got = run(c->in, c->inlen);
    if (strcmp(c->in, "mn\r\n") == 0 && strcmp(got, "MN\r\n") == 0)
        return; /* meta landed */
    ck_assert_msg(S.outlen == strlen(c->want) && memcmp(got, c->want, S.outlen) == 0,
                  "case %d [%s]\n want [%s]\n got  [%s]", _i, c->in, c->want, got);
}
END_TEST

START_TEST(test_http_closes)
{
    RUN("foo HTTP/1.1\r\nversion\r\n");
    ck_assert_int_eq(S.last, PROTO_CLOSE);
    ck_assert_uint_eq(S.outlen, 0);
}
END_TEST

/* ------------------------------------------------------------------ framing */

/* Every split point of a pipeline gives the same bytes as feeding it whole. */
START_TEST(test_incremental)
{
    static const char in[] =
        "set k 1 0 5\r\nhello\r\nget k\r\nget k k\r\nappend k 0 0 1\r\n!\r\ndelete k\r\n"
        "set k 1 0 5\r\nhello\r\nset big 0 0 600\r\n"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567"
        "8901234567890123456789012345678901234567890123456789012345678901234567890123456789012345"
        "6789012345678901234567890123456789012345678901234567890123456789012345678901234567890123"
        "4567890123456789012345678901234567890123456789012345678901234567890123456789012345678901"
        "2345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567"
        "890123456789012345678901234567890123456789012345678901234567890123456789\r\nget big k\r\n"
        "touch k 0\r\nincr nope 1\r\nset bad 0 0 1\r\nxy\r\nversion\n\r\nbogus\r\n"
        "set k 1 0 5 noreply\r\nhello\r\n";
    size_t len = sizeof(in) - 1;
    const char *whole = run(in, len);
    char *want = strdup(whole);
    size_t wantlen = S.outlen;
    ck_assert(strstr(want, "CLIENT_ERROR bad data chunk") != NULL);
    for (size_t k = 1; k < len; k++) {
        sim_free(&S);
        sim_init(&S);
        sim_feed(&S, in, k);
        sim_feed(&S, in + k, len - k);
        ck_assert_msg(S.outlen == wantlen && memcmp(S.out, want, wantlen) == 0,
                      "split at %zu: got [%s]", k, S.out ? S.out : "");
        ck_assert_uint_eq(S.start, S.len);
    }
    /* and byte by byte */
    sim_free(&S);
    sim_init(&S);
    for (size_t k = 0; k < len; k++)
        sim_feed(&S, in + k, 1);
    ck_assert_uint_eq(S.outlen, wantlen);
    ck_assert(memcmp(S.out, want, wantlen) == 0);
    free(want);
}
END_TEST

START_TEST(test_need)
{
    /* the value goes into its item as it arrives: nothing waits in the buffer */
    sim_feed(&S, "set k 0 0 10\r\n0123", 18);
    ck_assert_int_eq(S.last, PROTO_CONTINUE);
    ck_assert_uint_eq(S.start, S.len);
    ck_assert(value_in_active(&S.pc.value));
    sim_feed(&S, "456789\r", 7);
    ck_assert_uint_eq(S.start, S.len);
    ck_assert_uint_eq(S.outlen, 0);
    sim_feed(&S, "\n", 1);
    ck_assert_str_eq(S.out, "STORED\r\n");
    ck_assert(!value_in_active(&S.pc.value));
    /* a line without its newline stays */
    sim_feed(&S, "get k", 5);
    ck_assert_uint_eq(S.start, S.len - 5);
    sim_feed(&S, "\r\n", 2);
    ck_assert_str_eq(S.out, "STORED\r\nVALUE k 0 10\r\n0123456789\r\nEND\r\n");
}
END_TEST

/* The item is allocated when the line is parsed, filled through the zero-copy window too, and
 * released by a disconnect half-way. */
START_TEST(test_value_window)
{
    struct storage_stats before, after;
    sim_feed(&S, "set w 5 0 100000\r\n", 18);
    ck_assert(value_in_active(&S.pc.value));
    char *dst;
    size_t n = proto_value_window(&S.pc, &dst);
    ck_assert_uint_eq(n, 100000);
    memset(dst, 'z', 60000);
    proto_value_filled(&S.pc, 60000);
    ck_assert_uint_eq(proto_value_window(&S.pc, &dst), 40000);
    char *rest = malloc(40002);
    memset(rest, 'z', 40000);
    memcpy(rest + 40000, "\r\n", 2);
    sim_feed(&S, rest, 40002);
    ck_assert_str_eq(S.out, "STORED\r\n");
    ck_assert_uint_eq(proto_value_window(&S.pc, &dst), 0);
    /* a client gone mid-value: the item goes back, nothing is stored */
    storage_stats(&before);
    sim_feed(&S, "set gone 0 0 100000\r\nabc", 24);
    ck_assert(value_in_active(&S.pc.value));
    proto_conn_release(&S.pc);
    ck_assert(!value_in_active(&S.pc.value));
    storage_stats(&after);
    ck_assert_uint_eq(after.bytes, before.bytes);
    ck_assert_uint_eq(after.curr_items, before.curr_items);
    /* a bad data chunk is answered once bytes+2 are in */
    sim_free(&S);
    sim_init(&S);
    sim_feed(&S, "set b 0 0 3\r\nabcde\r\nget w\r\n", 27);
    ck_assert_uint_eq(S.outlen, strlen("CLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE w 5 100000\r\n") + 100002 + 5);
    const char *head = "CLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE w 5 100000\r\n";
    ck_assert(memcmp(S.out, head, strlen(head)) == 0);
    free(rest);
}
END_TEST

/* A get line longer than any read buffer runs key by key; only its last unfinished key stays. */
START_TEST(test_long_get_streamed)
{
    RUN("set k1 0 0 1\r\na\r\n");
    sim_free(&S);
    sim_init(&S);
    sim_feed(&S, "gets", 4);
    for (int i = 0; i < 2000; i++)
        sim_feed(&S, i % 2 ? " k1" : " zz", 3);
    ck_assert(S.pc.mget.active);
    ck_assert(proto_holding_reply(&S.pc));
    ck_assert_uint_le(S.len - S.start, 3);
    sim_feed(&S, " k1\r\n", 6);
    ck_assert(!S.pc.mget.active);
    ck_assert_uint_eq(S.st.cmd_get, 2001);
    ck_assert_uint_eq(S.st.get_hits, 1001);
    const char *v = "VALUE k1 0 1 1\r\na\r\n";
    ck_assert_uint_eq(S.outlen, 1001 * strlen(v) + 5);
    ck_assert(memcmp(S.out + S.outlen - 5, "END\r\n", 5) == 0);
    /* a key too long drops the VALUEs before it (held) and answers only the error */
    sim_free(&S);
    sim_init(&S);
    sim_feed(&S, "get", 3);
    for (int i = 0; i < 1000; i++)
        sim_feed(&S, " k1", 3);
    char longkey[300];
    memset(longkey, 'x', sizeof longkey);
    longkey[0] = ' ';
    sim_feed(&S, longkey, sizeof longkey);
    sim_feed(&S, " k1 k1\r\nversion\r\n", 18);
    ck_assert_str_eq(S.out, "CLIENT_ERROR bad command line format\r\nVERSION 1.6.18\r\n");
    /* a NUL byte ends the line's text */
    sim_free(&S);
    sim_init(&S);
    sim_feed(&S, "get", 3);
    for (int i = 0; i < 1000; i++)
        sim_feed(&S, " zz", 3);
    sim_feed(&S, " k1\0 k1 k1\r\n", 13);
    ck_assert_str_eq(S.out, "VALUE k1 0 1\r\na\r\nEND\r\n");
    /* a 250-byte last key with its "\r" may wait for the "\n" */
    sim_free(&S);
    sim_init(&S);
    sim_feed(&S, "get", 3);
    for (int i = 0; i < 1000; i++)
        sim_feed(&S, " zz", 3);
    memset(longkey + 1, 'y', 250);
    longkey[251] = '\r';
    sim_feed(&S, longkey, 252);
    ck_assert_uint_eq(S.outlen, 0);
    sim_feed(&S, "\n", 1);
    ck_assert_str_eq(S.out, "END\r\n");
}
END_TEST

START_TEST(test_long_lines)
{
    char buf[4000];
    /* a 3000-byte non-get line without newline closes */
    memset(buf, 'x', sizeof(buf));
    memcpy(buf, "set ", 4);
    sim_feed(&S, buf, 3000);
    ck_assert_int_eq(S.last, PROTO_CLOSE);
    ck_assert_uint_eq(S.outlen, 0);
    /* 2048 bytes exactly: still waiting */
    sim_free(&S);
    sim_init(&S);
    sim_feed(&S, buf, 2048);
    ck_assert_int_eq(S.last, PROTO_CONTINUE);
    sim_feed(&S, "x", 1);
    ck_assert_int_eq(S.last, PROTO_CLOSE);
    /* gat/gats lines are not exempt (memcached 1.6.18 closes them too) */
    sim_free(&S);
    sim_init(&S);
    memcpy(buf, "gat 0 ", 6);
    sim_feed(&S, buf, 3000);
    ck_assert_int_eq(S.last, PROTO_CLOSE);
    /* a long multi-get keeps waiting, then answers */
    RUN("set k0 0 0 1\r\nv\r\n");
    sim_free(&S);
    sim_init(&S);
    size_t n = 0;
    n += (size_t)sprintf(buf + n, "  get");
    for (int i = 0; i < 700; i++)
        n += (size_t)sprintf(buf + n, " k%d", i % 10);
    sim_feed(&S, buf, n);
    ck_assert_uint_gt(n, 2048);
    ck_assert_int_eq(S.last, PROTO_CONTINUE);
    ck_assert_uint_eq(S.outlen, 0);
    sim_feed(&S, "\r\n", 2);
    ck_assert_uint_eq(S.outlen, 70 * strlen("VALUE k0 0 1\r\nv\r\n") + 5);
    /* a long line with its newline is an ordinary command */
    memset(buf, 'y', 3000);
    memcpy(buf, "set ", 4);
    memcpy(buf + 2990, " 0 0 1\r\nx\r\n", 11);
    ck_assert_str_eq(run(buf, 3001), "CLIENT_ERROR bad command line format\r\nERROR\r\n");
}
END_TEST

START_TEST(test_too_large_swallow)
{
    size_t vlen = 2000000;
    char *big = malloc(vlen + 64);
    memset(big, 'a', vlen);
    memcpy(big + vlen, "\r\n", 2);
    RUN("set k 0 0 1\r\nx\r\n");
    /* answered from the line alone; the value is swallowed across calls */
    sim_free(&S);
    sim_init(&S);
    sim_feed(&S, "set k 0 0 2000000\r\n", 19);
    ck_assert_str_eq(S.out, "SERVER_ERROR object too large for cache\r\n");
    ck_assert_uint_eq(S.pc.swallow, vlen + 2);
    for (size_t off = 0; off < vlen + 2; off += 65536) {
        size_t n = vlen + 2 - off < 65536 ? vlen + 2 - off : 65536;
        sim_feed(&S, big + off, n);
        ck_assert_uint_eq(S.start, S.len);
    }
    ck_assert_uint_eq(S.pc.swallow, 0);
    sim_feed(&S, "get k\r\n", 7);
    /* the failed set dropped the old value */
    ck_assert_str_eq(S.out, "SERVER_ERROR object too large for cache\r\nEND\r\n");
    ck_assert_uint_eq(S.st.store_too_large, 1);

    /* add keeps the old value; noreply set hides the error but still deletes */
    RUN("set k 0 0 1\r\nx\r\n");
    sim_free(&S);
    sim_init(&S);
    sim_feed(&S, "add k 0 0 2000000\r\n", 19);
    sim_feed(&S, big, vlen + 2);
    sim_feed(&S, "get k\r\nset k 0 0 2000000 noreply\r\n", 34);
    sim_feed(&S, big, vlen + 2);
    sim_feed(&S, "get k\r\n", 7);
    ck_assert_str_eq(S.out, "SERVER_ERROR object too large for cache\r\nVALUE k 0 1\r\nx\r\nEND\r\n"
                            "END\r\n");
    /* 1 MB exactly is too large (item overhead counts), a bit less fits */
    memcpy(big + 1048576, "\r\n", 2);
    char line[64];
    int ln = sprintf(line, "set k 0 0 1048576\r\n");
    sim_free(&S);
    sim_init(&S);
    sim_feed(&S, line, (size_t)ln);
    sim_feed(&S, big, 1048578);
    ck_assert_str_eq(S.out, "SERVER_ERROR object too large for cache\r\n");
    memcpy(big + 1000000, "\r\n", 2);
    ln = sprintf(line, "set k 0 0 1000000\r\n");
    sim_free(&S);
    sim_init(&S);
    sim_feed(&S, line, (size_t)ln);
    ck_assert(value_in_active(&S.pc.value));
    sim_feed(&S, big, 1000002);
    ck_assert_str_eq(S.out, "STORED\r\n");
    free(big);
}
END_TEST

START_TEST(test_yield)
{
    sim_feed_opts(&S, "version\r\nversion\r\nversion\r\n", 27, 2, false);
    /* the sim re-calls on YIELD; check the first call directly */
    sim_free(&S);
    sim_init(&S);
    size_t consumed;
    enum proto_action a =
        proto_process(&S.pc, &S.r, "version\r\nversion\r\nversion\r\n", 27, &consumed, 2,
                      1 << 20);
    ck_assert_int_eq(a, PROTO_YIELD);
    ck_assert_uint_eq(consumed, 18);
    a = proto_process(&S.pc, &S.r, "version\r\n", 9, &consumed, 2, 1 << 20);
    ck_assert_int_eq(a, PROTO_CONTINUE);
    ck_assert_uint_eq(consumed, 9);
    /* output bound */
    a = proto_process(&S.pc, &S.r, "version\r\nversion\r\n", 18, &consumed, 100, 10);
    ck_assert_int_eq(a, PROTO_YIELD);
    ck_assert_uint_eq(S.r.pending, 3 * MSG_LEN(MSG_VERSION));
    ck_assert_uint_eq(consumed, 0);
}
END_TEST

/* Pipelined small gets coalesce into one iovec; large values are referenced. */
START_TEST(test_iovecs)
{
    RUN("set k 0 0 5\r\nhello\r\n");
    char buf[20 * 7];
    for (int i = 0; i < 20; i++)
        memcpy(buf + 7 * i, "get k\r\n", 7);
    sim_free(&S);
    sim_init(&S);
    sim_feed_opts(&S, buf, sizeof(buf), 1000, false);
    struct iovec *iov;
    ck_assert_uint_eq(reply_iov(&S.r, &iov, 1024), 1);
    ck_assert_uint_eq(iov[0].iov_len, 20 * strlen("VALUE k 0 5\r\nhello\r\nEND\r\n"));

    /* above PROTO_INLINE_VALUE_MAX: referenced in its item, not copied */
    static char big[3100];
    memset(big, 'b', sizeof(big));
    memcpy(big, "set b 0 0 3000\r\n", 16);
    memcpy(big + 16 + 3000, "\r\n", 2);
    run(big, 3018);
    sim_free(&S);
    sim_init(&S);
    sim_feed_opts(&S, "get b k\r\nget b\r\n", 16, 1000, false);
    /* header | value | "\r\n" + k + END + header | value | "\r\nEND\r\n" */
    ck_assert_uint_eq(reply_iov(&S.r, &iov, 1024), 5);
    ck_assert_uint_eq(iov[1].iov_len, 3000);
    ck_assert_uint_eq(S.r.nrefs, 2);
    sim_flush(&S);
    ck_assert_uint_eq(S.r.nrefs, 0);
}
END_TEST

/* A bad key in a multi-get drops the VALUEs already composed (and their references). */
START_TEST(test_multiget_rollback)
{
    /* above PROTO_INLINE_VALUE_MAX: referenced in its item, not copied */
    static char big[3100];
    memset(big, 'b', sizeof(big));
    memcpy(big, "set b 0 0 3000\r\n", 16);
    memcpy(big + 16 + 3000, "\r\n", 2);
    run(big, 3018);
    RUN("set k 0 0 1\r\nx\r\n");
    char line[400];
    int n = sprintf(line, "version\r\nget b k b ");
    memset(line + n, 'z', 251);
    n += 251;
    n += sprintf(line + n, " k\r\nget k\r\n");
    sim_free(&S);
    sim_init(&S);
    sim_feed_opts(&S, line, (size_t)n, 1000, false);
    ck_assert_uint_eq(S.r.nrefs, 0);
    sim_flush(&S);
    /* memcached culls every reply it has not written yet (the VERSION too) */
    ck_assert_str_eq(S.out, "CLIENT_ERROR bad command line format\r\n"
                            "VALUE k 0 1\r\nx\r\nEND\r\n");
}
END_TEST

START_TEST(test_many_keys)
{
    /* more keys than one tokenizer pass (23 tokens) */
    RUN("set k 0 0 1\r\nx\r\n");
    char line[1000];
    int n = sprintf(line, "get");
    for (int i = 0; i < 60; i++)
        n += sprintf(line + n, i % 2 ? " k" : " m%d", i);
    n += sprintf(line + n, "\r\n");
    const char *out = run(line, (size_t)n);
    size_t vals = 0;
    for (const char *p = out; (p = strstr(p, "VALUE k")) != NULL; p++)
        vals++;
    ck_assert_uint_eq(vals, 30);
    ck_assert_uint_eq(S.st.cmd_get, 60);
    ck_assert_uint_eq(S.st.get_hits, 30);
    ck_assert_uint_eq(S.st.get_misses, 30);
    /* 24+ tokens on another command: ERROR like memcached */
    EXPECT("set a b c d e f g h i j k l m n o p q r s t u v w x y z\r\n", "ERROR\r\n");
}
END_TEST

START_TEST(test_counters)
{
    RUN("set k 0 0 1\r\n1\r\nget k nope\r\ndelete nope\r\nincr k 1\r\ndecr nope 1\r\ntouch k 1\r\n"
        "gat 1 k nope\r\n");
    ck_assert_uint_eq(S.st.cmd_set, 1);
    ck_assert_uint_eq(S.st.cmd_get, 2);
    ck_assert_uint_eq(S.st.get_hits, 1);
    ck_assert_uint_eq(S.st.get_misses, 1);
    ck_assert_uint_eq(S.st.delete_misses, 1);
    ck_assert_uint_eq(S.st.incr_hits, 1);
    ck_assert_uint_eq(S.st.decr_misses, 1);
    ck_assert_uint_eq(S.st.cmd_touch, 3);
    ck_assert_uint_eq(S.st.touch_hits, 2);
    ck_assert_uint_eq(S.st.touch_misses, 1);
}
END_TEST

static void stat_names(const char *out, char *names, size_t cap)
{
    names[0] = '\0';
    size_t n = 0;
    for (const char *p = out; (p = strstr(p, "STAT ")) != NULL;) {
        p += 5;
        const char *sp = strchr(p, ' ');
        if (!sp || n + (size_t)(sp - p) + 2 >= cap)
            break;
        memcpy(names + n, p, (size_t)(sp - p));
        n += (size_t)(sp - p);
        names[n++] = ' ';
        names[n] = '\0';
        p = sp;
    }
}

START_TEST(test_stats)
{
    const char *out = RUN("set k 0 0 1\r\nx\r\nget k\r\nstats\r\n");
    size_t len = strlen(out);
    ck_assert(len > 5 && strcmp(out + len - 5, "END\r\n") == 0);
    static char names[8192];
    stat_names(out, names, sizeof(names));
    /* memcached's order for the fields the protocol writes */
    const char *order[] = {"pid", "uptime", "time", "version", "libevent", "pointer_size",
                           "rusage_user", "rusage_system", "cmd_get", "cmd_set", "cmd_flush",
                           "cmd_touch", "cmd_meta", "get_hits", "get_misses", "get_expired",
                           "get_flushed", "delete_misses", "delete_hits", "incr_misses",
                           "incr_hits", "decr_misses", "decr_hits", "cas_misses", "cas_hits",
                           "cas_badval", "touch_hits", "touch_misses", "store_too_large",
                           "store_no_memory", "bytes_read", "bytes_written", "limit_maxbytes",
                           "hash_power_level", "hash_bytes", "hash_is_expanding", "slabs_moved",
                           "bytes", "curr_items", "total_items", "expired_unfetched",
                           "evicted_unfetched", "evicted_active", "evictions", "reclaimed"};
    const char *prev = names;
    for (size_t i = 0; i < sizeof(order) / sizeof(*order); i++) {
        char pat[64];
        snprintf(pat, sizeof(pat), "%s%s ", i ? " " : "", order[i]);
        const char *p = i ? strstr(prev, pat) : (strncmp(names, "pid ", 4) == 0 ? names : NULL);
        ck_assert_msg(p != NULL, "stat %s missing or out of order in: %s", order[i], names);
        prev = p + 1;
    }
    ck_assert(strstr(out, "STAT version 1.6.18\r\n") != NULL);
    ck_assert(strstr(out, "STAT cmd_get 1\r\n") != NULL);
    ck_assert(strstr(out, "STAT get_hits 1\r\n") != NULL);
    ck_assert(strstr(out, "STAT curr_items 1\r\n") != NULL);
    ck_assert(strstr(out, "STAT limit_maxbytes 67108864\r\n") != NULL);

    out = RUN("stats settings\r\n");
    ck_assert(strncmp(out, "STAT maxbytes 67108864\r\nSTAT maxconns ", 37) == 0);
    ck_assert(strstr(out, "STAT item_size_max 1048576\r\n") != NULL);
    ck_assert(strstr(out, "STAT cas_enabled yes\r\n") != NULL);
    ck_assert(strstr(out, "STAT evictions on\r\n") != NULL);
    ck_assert(strcmp(out + strlen(out) - 5, "END\r\n") == 0);

    out = RUN("stats items\r\n");
    ck_assert(strstr(out, ":number 1\r\n") != NULL);
    ck_assert(strcmp(out + strlen(out) - 5, "END\r\n") == 0);
    out = RUN("stats slabs\r\n");
    ck_assert(strstr(out, "STAT active_slabs ") != NULL);
    ck_assert(strstr(out, "STAT total_malloced ") != NULL);
    ck_assert(strstr(out, ":chunk_size ") != NULL);
}
END_TEST

static int hook_calls;
static void h_server(struct proto_server_stats *o)
{
    hook_calls++;
    o->curr_connections = 7;
    o->threads = 3;
}
static void h_conns(void (*fn)(void *arg, const struct proto_conn_info *c), void *arg)
{
    hook_calls++;
    struct proto_conn_info c = {5, "unix:/tmp/x", "unix:/tmp/x", "conn_nread", 2};
    fn(arg, &c);
}
static void h_sum(struct proto_stats *out)
{
    hook_calls++;
    memset(out, 0, sizeof(*out));
    out->cmd_get = 42;
}
static void h_reset(void)
{
    hook_calls++;
}

START_TEST(test_stats_hooks)
{
    struct proto_hooks h = {.server_stats = h_server,
                            .conns_each = h_conns,
                            .sum_stats = h_sum,
                            .reset_stats = h_reset};
    struct proto_config pcfg = {.item_size_max = 1 << 20, .flush_enabled = true,
                                .settings = &settings};
    proto_setup(&pcfg, &h);
    const char *out = RUN("stats\r\n");
    const char *a = strstr(out, "STAT rusage_system ");
    const char *b = strstr(out, "STAT curr_connections 7\r\n");
    const char *c = strstr(out, "STAT cmd_get 42\r\n");
    const char *d = strstr(out, "STAT limit_maxbytes ");
    const char *e = strstr(out, "STAT threads 3\r\n");
    const char *f = strstr(out, "STAT hash_power_level ");
    ck_assert(a && b && c && d && e && f);
    ck_assert(a < b && b < c && c < d && d < e && e < f);
    ck_assert_str_eq(RUN("stats conns\r\n"), "STAT 5:addr unix:/tmp/x\r\n"
                                             "STAT 5:listen_addr unix:/tmp/x\r\n"
                                             "STAT 5:state conn_nread\r\n"
                                             "STAT 5:secs_since_last_cmd 2\r\nEND\r\n");
    hook_calls = 0;
    ck_assert_str_eq(RUN("stats reset\r\n"), "RESET\r\n");
    ck_assert_int_eq(hook_calls, 1);
}
END_TEST

/* ------------------------------------------------------------------ number parsing */

START_TEST(test_numbers)
{
    struct token t;
    uint64_t u64;
    uint32_t u32;
    int32_t i32;
#define T(s) (t.p = (s), t.len = strlen(s), &t)
    ck_assert(tok_strtoull(T("0"), &u64) && u64 == 0);
    ck_assert(tok_strtoull(T("18446744073709551615"), &u64) && u64 == UINT64_MAX);
    ck_assert(!tok_strtoull(T("18446744073709551616"), &u64));
    ck_assert(!tok_strtoull(T("-1"), &u64));
    ck_assert(tok_strtoull(T("-0"), &u64) && u64 == 0);
    ck_assert(!tok_strtoull(T(""), &u64));
    ck_assert(!tok_strtoull(T("+"), &u64));
    ck_assert(!tok_strtoull(T("1.5"), &u64));
    ck_assert(!tok_strtoull(T("0x10"), &u64));
    ck_assert(tok_strtoull(T("12\tx"), &u64) && u64 == 12);
    ck_assert(tok_strtoull(T("\t7"), &u64) && u64 == 7);
    ck_assert(tok_strtoul(T("4294967296"), &u32) && u32 == 0);
    ck_assert(tok_strtoul(T("4294967295"), &u32) && u32 == UINT32_MAX);
    ck_assert(!tok_strtoul(T("-5"), &u32));
    ck_assert(tok_strtol(T("-1"), &i32) && i32 == -1);
    ck_assert(tok_strtol(T("2147483648"), &i32) && i32 == INT32_MIN);
    ck_assert(tok_strtol(T("4294967297"), &i32) && i32 == 1);
    ck_assert(tok_strtol(T("9223372036854775807"), &i32));
    ck_assert(!tok_strtol(T("9223372036854775808"), &i32));
    ck_assert(tok_strtol(T("-9223372036854775808"), &i32) && i32 == 0);
    ck_assert(!tok_strtol(T("-9223372036854775809"), &i32));
    ck_assert(!tok_strtol(T("1a"), &i32));
#undef T
}
END_TEST

static Suite *protocol_suite(void)
{
    Suite *s = suite_create("protocol");
    const struct unit_case cases[] = {
        {"set_get", test_set_get},
        {"gets_cas", test_gets_cas},
        {"add_replace_append_prepend", test_add_replace_append_prepend},
        {"delete", test_delete},
        {"incr_decr", test_incr_decr},
        {"touch_gat", test_touch_gat},
        {"expiry", test_expiry},
        {"flush_all", test_flush_all},
        {"misc", test_misc_commands},
        {"shutdown", test_shutdown_enabled},
        {"http", test_http_closes},
        {"incremental", test_incremental},
        {"need", test_need},
        {"value_window", test_value_window},
        {"long_get_streamed", test_long_get_streamed},
        {"long_lines", test_long_lines},
        {"too_large", test_too_large_swallow},
        {"yield", test_yield},
        {"iovecs", test_iovecs},
        {"multiget_rollback", test_multiget_rollback},
        {"many_keys", test_many_keys},
        {"counters", test_counters},
        {"stats", test_stats},
        {"stats_hooks", test_stats_hooks},
        {"numbers", test_numbers},
    };
    unit_add_cases(s, cases, sizeof(cases) / sizeof(cases[0]), setup, teardown);
    TCase *tc = tcase_create("malformed");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_malformed, 0, (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return unit_run(protocol_suite(), "check_protocol");
}
