/*
 * check_meta: the meta flag parser and base64 codec, and mg/ms/md/ma/mn/me through
 * proto_process() with real storage (no sockets). Expected replies are memcached 1.6.18's,
 * recorded from Debian's /usr/bin/memcached with raw bytes; the clock is pinned at 1000.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "protocol/internal.h"
#include "protocol/meta.h"
#include "protocol/proto.h"
#include "protocol/reply.h"
#include "protocol/stats.h"
#include "storage/meta_ops.h"
#include "storage/storage.h"
#include "proto_fixture.h"
#include "unit.h"

/* ------------------------------------------------------------------ a simulated connection */

/* Feeds bytes on the current connection; returns only the replies to them. */
static const char *feed(const char *data, size_t len)
{
    size_t before = S.outlen;
    sim_feed(&S, data, len);
    return S.out ? S.out + before : "";
}

#define FEED(lit) feed((lit), sizeof(lit) - 1)
#define EXPECT(in, want) ck_assert_str_eq(FEED(in), want)

/* ------------------------------------------------------------------ flag parser */

/* Tokenizes `line` and parses its flags from token `start`. */
static const char *parse_line(const char *line, unsigned start, struct meta_flags *f,
                              struct request *q)
{
    memset(q, 0, sizeof(*q));
    q->line = line;
    q->len = strlen(line);
    proto_tokenize(q);
    memset(f, 0, sizeof(*f));
    return meta_flags_parse(q, start, f);
}

START_TEST(test_parse_every_flag)
{
    struct meta_flags f;
    struct request q;
    ck_assert_ptr_null(parse_line("mg k c f h k l Oxyz q s t u v P L", 2, &f, &q));
    ck_assert(f.value && f.no_update && f.no_reply && f.locked);
    ck_assert_ptr_null(parse_line("mg k N30 T40 R50", 2, &f, &q));
    ck_assert(f.vivify && f.new_ttl && f.locked);
    ck_assert_uint_eq(f.autoviv_exptime, 1030);
    ck_assert_uint_eq(f.exptime, 1040);
    ck_assert_uint_eq(f.recache_time, 1050);
    ck_assert_ptr_null(parse_line("ms k 1 F4294967295 C77 MA I", 3, &f, &q));
    ck_assert_uint_eq(f.client_flags, 4294967295u);
    ck_assert(f.has_cas && f.set_stale);
    ck_assert_uint_eq(f.req_cas, 77);
    ck_assert_int_eq(f.mode, 'A');
    ck_assert_ptr_null(parse_line("ma k J18446744073709551615 D5 M-", 2, &f, &q));
    ck_assert_uint_eq(f.initial, UINT64_MAX);
    ck_assert_uint_eq(f.delta, 5);
    ck_assert_int_eq(f.mode, '-');
    /* negative TTLs are expired at once (memcached: an absolute time in 1970) */
    ck_assert_ptr_null(parse_line("mg k T-1", 2, &f, &q));
    ck_assert_uint_eq(f.exptime, 1);
    ck_assert_ptr_null(parse_line("mg k T0", 2, &f, &q));
    ck_assert_uint_eq(f.exptime, 0);
}
END_TEST

START_TEST(test_parse_errors)
{
    struct meta_flags f;
    struct request q;
    ck_assert_str_eq(parse_line("mg k zz", 2, &f, &q), MSG_META_INVALID_FLAG);
    ck_assert_str_eq(parse_line("mg k E5", 2, &f, &q), MSG_META_INVALID_FLAG);
    ck_assert_str_eq(parse_line("mg k x", 2, &f, &q), MSG_META_INVALID_FLAG);
    ck_assert_str_eq(parse_line("mg k v v", 2, &f, &q), MSG_META_DUP_FLAG);
    ck_assert_str_eq(parse_line("mg k O1 O2", 2, &f, &q), MSG_META_DUP_FLAG);
    ck_assert_str_eq(parse_line("mg k \xc3\xa9", 2, &f, &q), MSG_META_DUP_FLAG);
    /* the first unknown or repeated flag ends the parse */
    ck_assert_str_eq(parse_line("mg k v zz v", 2, &f, &q), MSG_META_INVALID_FLAG);
    ck_assert_str_eq(parse_line("mg k v v zz", 2, &f, &q), MSG_META_DUP_FLAG);
    ck_assert_str_eq(parse_line("mg k Nabc zz", 2, &f, &q), MSG_META_INVALID_FLAG);
    /* bad values: the last one names the error */
    ck_assert_str_eq(parse_line("mg k N", 2, &f, &q), MSG_META_BAD_TOKEN);
    ck_assert_str_eq(parse_line("mg k Tx", 2, &f, &q), MSG_META_BAD_TOKEN);
    ck_assert_str_eq(parse_line("mg k R1.5", 2, &f, &q), MSG_META_BAD_TOKEN);
    ck_assert_str_eq(parse_line("mg k C-1", 2, &f, &q), MSG_META_BAD_TOKEN);
    ck_assert_str_eq(parse_line("mg k Fx", 2, &f, &q), MSG_BAD_FORMAT);
    ck_assert_str_eq(parse_line("mg k Fx Nx", 2, &f, &q), MSG_META_BAD_TOKEN);
    ck_assert_str_eq(parse_line("mg k MXY", 2, &f, &q), MSG_META_M_LENGTH);
    ck_assert_str_eq(parse_line("mg k M", 2, &f, &q), MSG_META_M_LENGTH);
    ck_assert_str_eq(parse_line("mg k Jx", 2, &f, &q), MSG_META_BAD_INITIAL);
    ck_assert_str_eq(parse_line("mg k D18446744073709551616", 2, &f, &q), MSG_META_BAD_DELTA);
    ck_assert_str_eq(parse_line("mg k F C M J D I P L", 2, &f, &q), MSG_META_BAD_DELTA);
}
END_TEST

START_TEST(test_base64)
{
    char out[64];
    ck_assert_uint_eq(meta_base64_decode("Zm9v", 4, out, sizeof(out)), 3);
    ck_assert(memcmp(out, "foo", 3) == 0);
    ck_assert_uint_eq(meta_base64_decode("Zm9vYg==", 8, out, sizeof(out)), 4);
    ck_assert(memcmp(out, "foob", 4) == 0);
    ck_assert_uint_eq(meta_base64_decode("Zm9vYmE=", 8, out, sizeof(out)), 5);
    ck_assert_uint_eq(meta_base64_decode("Zm!9v", 5, out, sizeof(out)), 3); /* skips junk */
    ck_assert_uint_eq(meta_base64_decode("foo", 3, out, sizeof(out)), 0);
    ck_assert_uint_eq(meta_base64_decode("a===", 4, out, sizeof(out)), 0);
    ck_assert_uint_eq(meta_base64_decode("====", 4, out, sizeof(out)), 0);
    ck_assert_uint_eq(meta_base64_decode("", 0, out, sizeof(out)), 0);
    char enc[16];
    ck_assert_uint_eq(meta_base64_encode((const unsigned char *)"foob", 4, enc), 8);
    ck_assert(memcmp(enc, "Zm9vYg==", 8) == 0);
    ck_assert_uint_eq(meta_base64_encode((const unsigned char *)"fooba", 5, enc), 8);
    ck_assert(memcmp(enc, "Zm9vYmE=", 8) == 0);
    /* every byte value survives a round trip */
    unsigned char all[256];
    char e[400], d[300];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    size_t n = meta_base64_encode(all, 256, e);
    ck_assert_uint_eq(meta_base64_decode(e, n, d, sizeof(d)), 256);
    ck_assert(memcmp(d, all, 256) == 0);
}
END_TEST

/* ------------------------------------------------------------------ commands */

START_TEST(test_mn_me)
{
    EXPECT("mn\r\nmn foo bar\r\n", "MN\r\nMN\r\n");
    EXPECT("me k\r\n", "EN\r\n");
    EXPECT("ms k 3 T100\r\nbar\r\n", "HD\r\n");
    clock_set(1002);
    EXPECT("me k\r\n", "ME k exp=-98 la=2 cas=1 fetch=no cls=1 size=63\r\n");
    EXPECT("mg k\r\nme k\r\n", "HD\r\nME k exp=-98 la=0 cas=1 fetch=yes cls=1 size=63\r\n");
    EXPECT("me\r\nme k b\r\n", "CLIENT_ERROR bad command line format\r\n"
                                "CLIENT_ERROR bad command line format\r\n");
    ck_assert_uint_eq(S.st.cmd_meta, 3); /* only me counts, as in memcached */
}
END_TEST

START_TEST(test_mg_basic)
{
    EXPECT("ms foo 3\r\nbar\r\n", "HD\r\n");
    EXPECT("mg foo v\r\n", "VA 3\r\nbar\r\n");
    EXPECT("mg foo\r\n", "HD\r\n");
    EXPECT("mg foo s v f t c k O123 q\r\n", "VA 3 s3 f0 t-1 c1 kfoo O123\r\nbar\r\n");
    EXPECT("mg missing v\r\n", "EN\r\n");
    EXPECT("mg missing v q\r\nmn\r\n", "MN\r\n");
    EXPECT("mg missing k O5\r\n", "EN kmissing O5\r\n");
    EXPECT("mg foo zz\r\n", "CLIENT_ERROR invalid flag\r\n");
    EXPECT("mg foo v v\r\n", "CLIENT_ERROR duplicate flag\r\n");
    EXPECT("mg\r\nmx foo\r\n", "ERROR\r\nERROR\r\n");
    EXPECT("mg foo 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18\r\n",
           "CLIENT_ERROR options flags are too long\r\n");
    ck_assert_uint_eq(S.st.get_hits, 3);
    ck_assert_uint_eq(S.st.get_misses, 3);
}
END_TEST

START_TEST(test_mg_hit_flags)
{
    EXPECT("ms k 2 F9 T100\r\nhi\r\n", "HD\r\n");
    clock_set(1003);
    EXPECT("mg k h l t f\r\n", "HD h0 l3 t97 f9\r\n");
    EXPECT("mg k h l\r\n", "HD h1 l0\r\n");
    EXPECT("ms u 1\r\nx\r\nmg u u h\r\nmg u h\r\n", "HD\r\nHD h0\r\nHD h0\r\n");
    EXPECT("mg k T10 t\r\nmg k t T20 s\r\nmg k t\r\n", "HD t10\r\nHD t10 s2\r\nHD t20\r\n");
    ck_assert_uint_eq(S.st.touch_hits, 2);
    EXPECT("mg k T-1\r\nmg k\r\n", "HD\r\nEN\r\n");
}
END_TEST

START_TEST(test_mg_opaque)
{
    EXPECT("ms k 1\r\nx\r\n", "HD\r\n");
    EXPECT("mg k Oaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", "HD Oaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    EXPECT("mg k Oaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", "CLIENT_ERROR opaque token too long\r\n");
    EXPECT("mg nope q Oaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
           "CLIENT_ERROR opaque token too long\r\n");
    /* a T before the bad token has taken effect, as in memcached */
    EXPECT("mg k T30 Oaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nmg k t\r\n",
           "CLIENT_ERROR opaque token too long\r\nHD t30\r\n");
}
END_TEST

START_TEST(test_stale_while_revalidate)
{
    EXPECT("ms k 3 T100\r\nold\r\n", "HD\r\n");
    EXPECT("md k I T30\r\n", "HD\r\n");
    EXPECT("mg k v c t\r\n", "VA 3 c2 t30 X W\r\nold\r\n");
    EXPECT("mg k v c t\r\n", "VA 3 c2 t30 Z X\r\nold\r\n");
    /* the winner's write with the older CAS is stored but stays stale */
    EXPECT("ms k 3 I C1\r\nnew\r\n", "HD\r\n");
    EXPECT("mg k v\r\n", "VA 3 Z X\r\nnew\r\n");
    EXPECT("ms k 3 I C999\r\nnew\r\n", "EX\r\n");
    EXPECT("ms k 3\r\nnew\r\nmg k v\r\n", "HD\r\nVA 3\r\nnew\r\n");
}
END_TEST

START_TEST(test_vivify_recache)
{
    EXPECT("mg k N30 v t c\r\n", "VA 0 t30 c1 W\r\n\r\n");
    EXPECT("mg k N30 v t\r\n", "VA 0 t30 Z\r\n\r\n");
    EXPECT("mg j t N30 s\r\nmg j t\r\n", "HD t-1 s0 W\r\nHD t30 Z\r\n");
    EXPECT("mg i T60 t N30\r\nmg i t\r\n", "HD t60 W\r\nHD t30 Z\r\n");
    EXPECT("ms r 1 T10\r\nx\r\n", "HD\r\n");
    EXPECT("mg r R30\r\nmg r R30\r\nmg r R5\r\n", "HD W\r\nHD Z\r\nHD Z\r\n");
    EXPECT("ms s 1\r\nx\r\nmg s R30\r\n", "HD\r\nHD\r\n");
    EXPECT("ms t 1 T100\r\nx\r\nmg t R30 T10\r\nmg t T10 R30\r\n", "HD\r\nHD\r\nHD W\r\n");
}
END_TEST

START_TEST(test_base64_keys)
{
    EXPECT("ms Zm9v 3 b\r\nbar\r\n", "HD\r\n");
    EXPECT("mg foo k v\r\n", "VA 3 kZm9v b\r\nbar\r\n");
    EXPECT("mg Zm9v b k v\r\n", "VA 3 kZm9v b\r\nbar\r\n");
    EXPECT("mg foo b\r\n", "CLIENT_ERROR error decoding key\r\n");
    EXPECT("mg Zm9vYg== b k\r\n", "EN kZm9vYg== b\r\n");
    EXPECT("me Zm9v b\r\n", "ME Zm9v exp=-1 la=0 cas=1 fetch=yes cls=1 size=65\r\n");
    EXPECT("ms foo 1 b\r\nx\r\nmn\r\n", "CLIENT_ERROR error decoding key\r\nMN\r\n");
    EXPECT("md Zm9v b k\r\nmg foo\r\n", "HD kZm9v b\r\nEN\r\n");
}
END_TEST

START_TEST(test_ms)
{
    EXPECT("ms x 3 c k O1 q\r\nabc\r\n", "");
    EXPECT("ms x 3 ME c k O2\r\nabc\r\n", "NS c0 kx O2\r\n");
    EXPECT("ms y 3 MR c\r\nabc\r\n", "NS c0\r\n");
    EXPECT("ms x 3 C999 c\r\nabc\r\n", "EX c0\r\n");
    EXPECT("ms zz 3 C1 c\r\nabc\r\n", "NF c0\r\n");
    EXPECT("ms x 1 MA c\r\n!\r\nmg x v c\r\n", "HD c2\r\nVA 4 c2\r\nabc!\r\n");
    EXPECT("ms x 1 MP C2\r\n<\r\nms x 1 MP C2\r\n<\r\nmg x v\r\n", "HD\r\nEX\r\nVA 5\r\n<abc!\r\n");
    EXPECT("ms x 1 MA N30\r\n!\r\nms new 1 MA N30\r\n!\r\n", "HD\r\nNS\r\n");
    EXPECT("ms f 2 F7 T50\r\nab\r\nmg f f t v\r\n", "HD\r\nVA 2 f7 t50\r\nab\r\n");
    ck_assert_uint_eq(S.st.cas_badval, 1);
    ck_assert_uint_eq(S.st.cas_misses, 1);
}
END_TEST

START_TEST(test_ms_errors)
{
    EXPECT("ms\r\n", "ERROR\r\n");
    EXPECT("ms a\r\n", "CLIENT_ERROR bad command line format\r\n");
    EXPECT("ms a abc\r\nmn\r\n", "CLIENT_ERROR bad command line format\r\nMN\r\n");
    EXPECT("ms a -1\r\nmn\r\n", "CLIENT_ERROR bad command line format\r\nMN\r\n");
    /* flag errors swallow the value */
    EXPECT("ms a 1 zz\r\nx\r\nmn\r\n", "CLIENT_ERROR invalid flag\r\nMN\r\n");
    EXPECT("ms a 1 MX\r\nx\r\nmn\r\n", "CLIENT_ERROR invalid mode for ms M token\r\nMN\r\n");
    EXPECT("ms a 1 Oaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nx\r\nmn\r\n",
           "CLIENT_ERROR opaque token too long\r\nMN\r\n");
    EXPECT("ms a 1 q\r\nxy\r\nmn\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\nMN\r\n");
    EXPECT("ms a 1 a b c d e f g h i j k l m n o p q\r\nx\r\nmn\r\n",
           "CLIENT_ERROR options flags too long\r\nERROR\r\nMN\r\n");
    /* too large: answered at once, the value swallowed as it comes, the old value gone */
    EXPECT("ms a 1\r\nx\r\n", "HD\r\n");
    EXPECT("ms a 2000000 MA\r\n", "SERVER_ERROR object too large for cache\r\n");
    char *big = malloc(2000002);
    memset(big, 'z', 2000000);
    memcpy(big + 2000000, "\r\n", 2);
    ck_assert_str_eq(feed(big, 2000002), "");
    free(big);
    EXPECT("mg a v\r\n", "EN\r\n");
    ck_assert_uint_eq(S.st.store_too_large, 1);
}
END_TEST

START_TEST(test_ms_split_value)
{
    EXPECT("ms k 10\r\n01234", "");
    EXPECT("56789\r\nmg k v\r\n", "HD\r\nVA 10\r\n0123456789\r\n");
}
END_TEST

START_TEST(test_md)
{
    EXPECT("md missing q\r\nmn\r\n", "NF\r\nMN\r\n");
    EXPECT("ms k 1\r\nx\r\nmd k q\r\nmd k\r\n", "HD\r\nNF\r\n");
    EXPECT("ms k 1\r\nx\r\nmd k C1 k O2\r\nmd k C2 k O2\r\n", "HD\r\nEX kk O2\r\nHD kk O2\r\n");
    EXPECT("ms k 1\r\nx\r\nmd k C0\r\n", "HD\r\nEX\r\n");
    EXPECT("md\r\nmd k zz\r\nmd k q q\r\nmd k x\r\nmd k Cx\r\n",
           "ERROR\r\nCLIENT_ERROR invalid or duplicate flag\r\n"
           "CLIENT_ERROR invalid or duplicate flag\r\nCLIENT_ERROR invalid or duplicate flag\r\n"
           "CLIENT_ERROR invalid or duplicate flag\r\n");
    ck_assert_uint_eq(S.st.delete_hits, 2);
    ck_assert_uint_eq(S.st.delete_misses, 4);
}
END_TEST

START_TEST(test_ma)
{
    EXPECT("ma cnt\r\n", "NF\r\n");
    EXPECT("ma cnt N0 J10 v\r\n", "VA 2\r\n10\r\n");
    EXPECT("ma cnt v\r\nma cnt q v\r\nma cnt q\r\n", "VA 2\r\n11\r\n");
    EXPECT("ma missing q\r\n", "NF\r\n");
    EXPECT("ma cnt v MD D100\r\n", "VA 1\r\n0\r\n");
    EXPECT("ma cnt M+ D18446744073709551615 v\r\nma cnt D2 v\r\n",
           "VA 20\r\n18446744073709551615\r\nVA 1\r\n1\r\n");
    EXPECT("ma n N0 J5 q v\r\n", "VA 1\r\n5\r\n"); /* a created counter is not hidden */
    EXPECT("ma n C1 k O3\r\nma n C0 v\r\n", "EX kn O3\r\nVA 1\r\n6\r\n");
    EXPECT("ma n N100 t T50 k v\r\nmg n t\r\n", "VA 1 t-1 kn\r\n7\r\nHD t50\r\n");
    EXPECT("ma m N100 J1 t v\r\n", "VA 1 t100\r\n1\r\n");
    /* in place, space-padded like memcached */
    EXPECT("ms p 3\r\n100\r\nma p MD D95 v\r\nmg p v\r\n", "HD\r\nVA 1\r\n5\r\nVA 3\r\n5  \r\n");
    EXPECT("ms s 3\r\nabc\r\nma s\r\nms e 0\r\n\r\nma e\r\n",
           "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
           "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    EXPECT("ma\r\nma n zz\r\nma n MX\r\nma n Dx\r\n",
           "ERROR\r\nCLIENT_ERROR invalid or duplicate flag\r\n"
           "CLIENT_ERROR invalid mode for ma M token\r\nCLIENT_ERROR invalid or duplicate flag\r\n");
    ck_assert_uint_eq(S.st.incr_misses, 2);
    ck_assert_uint_eq(S.st.decr_hits, 2);
}
END_TEST

START_TEST(test_mixed_classic)
{
    EXPECT("set k 5 0 3\r\nabc\r\nmg k v f c\r\n", "STORED\r\nVA 3 f5 c1\r\nabc\r\n");
    EXPECT("ms k 3 F9\r\nxyz\r\ngets k\r\n", "HD\r\nVALUE k 9 3 2\r\nxyz\r\nEND\r\n");
    EXPECT("md k I\r\nget k\r\nmg k v\r\n", "HD\r\nVALUE k 9 3\r\nxyz\r\nEND\r\nVA 3 X W\r\nxyz\r\n");
    EXPECT("delete k\r\nmg k\r\n", "DELETED\r\nEN\r\n");
    EXPECT("set n 0 0 2\r\n10\r\nma n v\r\nincr n 5\r\nma n MD v c\r\n",
           "STORED\r\nVA 2\r\n11\r\n16\r\nVA 2 c7\r\n15\r\n");
}
END_TEST

static Suite *meta_suite(void)
{
    Suite *s = suite_create("meta");
    const struct unit_case cases[] = {
        {"parse", test_parse_every_flag}, {"parse", test_parse_errors},
        {"base64", test_base64},          {"mn_me", test_mn_me},
        {"mg", test_mg_basic},            {"mg", test_mg_hit_flags},
        {"mg", test_mg_opaque},           {"swr", test_stale_while_revalidate},
        {"swr", test_vivify_recache},     {"base64_keys", test_base64_keys},
        {"ms", test_ms},                  {"ms", test_ms_errors},
        {"ms", test_ms_split_value},      {"md", test_md},
        {"ma", test_ma},                  {"mixed", test_mixed_classic},
    };
    unit_add_cases(s, cases, sizeof(cases) / sizeof(cases[0]), setup, teardown);
    return s;
}

int main(void)
{
    return unit_run(meta_suite(), "check_meta");
}
