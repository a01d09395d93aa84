/*
 * check_binary: the binary protocol (protocol/binary.c) on a simulated connection over real
 * storage: negotiation by the first byte, framing over arbitrary read boundaries, what the
 * server is told to buffer (*need), swallowing refused values, quiet commands, and the
 * closes memcached makes. Byte equality with memcached itself is tested by
 * tests/integration/test_binary_diff.py.
 */
#include "proto_fixture.h"
#include "protocol/messages.h"
#include "unit.h"

/* A request packet into out (returns its length). */
static size_t pkt(unsigned char *out, uint8_t op, const char *key, const void *ext, size_t next,
                  const void *val, size_t nval, uint64_t cas)
{
    size_t nkey = strlen(key);
    uint32_t body = (uint32_t)(next + nkey + nval);
    memset(out, 0, 24);
    out[0] = 0x80;
    out[1] = op;
    out[2] = (unsigned char)(nkey >> 8);
    out[3] = (unsigned char)nkey;
    out[4] = (unsigned char)next;
    out[8] = (unsigned char)(body >> 24);
    out[9] = (unsigned char)(body >> 16);
    out[10] = (unsigned char)(body >> 8);
    out[11] = (unsigned char)body;
    for (int i = 0; i < 8; i++)
        out[16 + i] = (unsigned char)(cas >> (56 - 8 * i));
    if (next)
        memcpy(out + 24, ext, next);
    if (nkey)
        memcpy(out + 24 + next, key, nkey);
    if (nval)
        memcpy(out + 24 + next + nkey, val, nval);
    return 24 + next + nkey + nval;
}

static size_t set_pkt(unsigned char *out, uint8_t op, const char *key, const char *val,
                      uint32_t flags)
{
    unsigned char ext[8] = {(unsigned char)(flags >> 24), (unsigned char)(flags >> 16),
                            (unsigned char)(flags >> 8), (unsigned char)flags, 0, 0, 0, 0};
    return pkt(out, op, key, ext, 8, val, strlen(val), 0);
}

/* The response at offset off of S.out: status, and the body length. */
static unsigned status_at(size_t off)
{
    ck_assert_uint_ge(S.outlen, off + 24);
    ck_assert_uint_eq((unsigned char)S.out[off], 0x81);
    return ((unsigned char)S.out[off + 6] << 8) | (unsigned char)S.out[off + 7];
}

static size_t body_at(size_t off)
{
    const unsigned char *p = (const unsigned char *)S.out + off + 8;
    return ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
}

START_TEST(test_negotiation)
{
    unsigned char b[64];
    size_t n = pkt(b, 0x0a, "", NULL, 0, NULL, 0, 0); /* noop */
    sim_feed(&S, (const char *)b, n);
    ck_assert_uint_eq(S.pc.mode, PROTO_MODE_BINARY);
    ck_assert_uint_eq(S.outlen, 24);
    ck_assert_uint_eq(status_at(0), 0);

    struct sim t;
    sim_init(&t);
    sim_feed(&t, "version\r\n", 9);
    ck_assert_uint_eq(t.pc.mode, PROTO_MODE_TEXT);
    ck_assert_str_eq(t.out, "VERSION " PROTO_VERSION "\r\n");
    sim_free(&t);
}
END_TEST

START_TEST(test_byte_at_a_time)
{
    unsigned char b[256];
    size_t n = set_pkt(b, 0x01, "key", "value", 7);
    n += pkt(b + n, 0x0c, "key", NULL, 0, NULL, 0, 0); /* getk */
    for (size_t i = 0; i < n; i++) {
        sim_feed(&S, (const char *)b + i, 1);
        /* never leaves more than the packet's header, extras and key */
        ck_assert_uint_le(S.len - S.start, 24 + 8 + 3);
    }
    ck_assert_uint_eq(S.outlen, 24 + 24 + 4 + 3 + 5);
    ck_assert_uint_eq(status_at(0), 0);
    ck_assert_uint_eq(status_at(24), 0);
    ck_assert_uint_eq(body_at(24), 4 + 3 + 5);
    ck_assert_int_eq(memcmp(S.out + 48 + 4, "keyvalue", 8), 0);
    ck_assert_uint_eq((unsigned char)S.out[48 + 3], 7); /* flags */
}
END_TEST

START_TEST(test_need_for_value)
{
    static unsigned char b[200000];
    static char val[100001];
    memset(val, 'v', 100000);
    size_t n = set_pkt(b, 0x01, "big", val, 0);
    sim_feed(&S, (const char *)b, 100);
    /* the item is allocated from the header; the value goes into it as it arrives */
    ck_assert_uint_eq(S.start, S.len);
    ck_assert(value_in_active(&S.pc.value));
    sim_feed(&S, (const char *)b + 100, n - 100);
    ck_assert_uint_eq(S.outlen, 24);
    ck_assert_uint_eq(status_at(0), 0);
}
END_TEST

START_TEST(test_too_large_swallowed)
{
    size_t vlen = (2u << 20);
    unsigned char *b = malloc(vlen + 200);
    char *val = malloc(vlen + 1);
    memset(val, 'x', vlen);
    val[vlen] = '\0';
    size_t n = set_pkt(b, 0x01, "k", val, 0);
    n += pkt(b + n, 0x0a, "", NULL, 0, NULL, 0, 0);
    /* the header alone gets E2BIG at once; the value is swallowed as it arrives */
    sim_feed(&S, (const char *)b, 40);
    ck_assert_uint_eq(status_at(0), 3);
    ck_assert_uint_eq(S.start, S.len);
    for (size_t off = 40; off < n; off += 65536)
        sim_feed(&S, (const char *)b + off, n - off < 65536 ? n - off : 65536);
    ck_assert_uint_eq(S.outlen, 24 + body_at(0) + 24);
    ck_assert_uint_eq((unsigned char)S.out[24 + body_at(0) + 1], 0x0a); /* noop answered */
    free(b);
    free(val);
}
END_TEST

START_TEST(test_quiet)
{
    unsigned char b[256];
    size_t n = set_pkt(b, 0x11, "q", "1", 0);            /* setq: silent */
    n += pkt(b + n, 0x09, "missing", NULL, 0, NULL, 0, 0); /* getq miss: silent */
    n += pkt(b + n, 0x0d, "q", NULL, 0, NULL, 0, 0);       /* getkq hit: answered */
    n += pkt(b + n, 0x0c, "nokey", NULL, 0, NULL, 0, 0);   /* getk miss: key, no text */
    sim_feed(&S, (const char *)b, n);
    ck_assert_uint_eq(S.outlen, (24 + 4 + 1 + 1) + (24 + 5));
    ck_assert_uint_eq(status_at(0), 0);
    ck_assert_uint_eq(status_at(30), 1);
    ck_assert_int_eq(memcmp(S.out + 54, "nokey", 5), 0);
}
END_TEST

START_TEST(test_bad_magic_closes)
{
    unsigned char b[128];
    size_t n = pkt(b, 0x00, "a", NULL, 0, NULL, 0, 0);
    n += pkt(b + n, 0x00, "a", NULL, 0, NULL, 0, 0);
    b[n - 25] = 0x81; /* second packet's magic */
    sim_feed(&S, (const char *)b, n);
    ck_assert_int_eq(S.last, PROTO_CLOSE);
    ck_assert_uint_eq(S.outlen, 0); /* the miss before it goes unsent, as in memcached */
}
END_TEST

START_TEST(test_lengths_close)
{
    unsigned char b[64];
    size_t n = pkt(b, 0x00, "abc", NULL, 0, NULL, 0, 0);
    b[11] = 2; /* bodylen < keylen: unknown command, close */
    sim_feed(&S, (const char *)b, n);
    ck_assert_int_eq(S.last, PROTO_CLOSE);
    ck_assert_uint_eq(status_at(0), 0x81);
}
END_TEST

START_TEST(test_unknown_swallows_after_key)
{
    unsigned char b[128];
    size_t n = pkt(b, 0x55, "abc", NULL, 0, "xyz", 3, 0); /* bodylen 6 */
    memset(b + n, 0, 3);                                  /* 3 more bytes are swallowed */
    n += 3;
    n += pkt(b + n, 0x0a, "", NULL, 0, NULL, 0, 0);
    sim_feed(&S, (const char *)b, n);
    ck_assert_uint_eq(status_at(0), 0x81);
    size_t second = 24 + body_at(0);
    ck_assert_uint_eq(S.outlen, second + 24);
    ck_assert_uint_eq((unsigned char)S.out[second + 1], 0x0a);
}
END_TEST

START_TEST(test_sasl_required)
{
    struct proto_config pcfg = {.item_size_max = 1 << 20, .flush_enabled = true, .sasl = true};
    proto_setup(&pcfg, NULL); /* no SASL library set up: only the gate is tested */
    unsigned char b[64];
    size_t n = pkt(b, 0x0b, "", NULL, 0, NULL, 0, 0); /* version: allowed */
    sim_feed(&S, (const char *)b, n);
    ck_assert_uint_eq(status_at(0), 0);
    size_t off = S.outlen;
    n = pkt(b, 0x00, "k", NULL, 0, NULL, 0, 0);
    sim_feed(&S, (const char *)b, n);
    ck_assert_uint_eq(status_at(off), 0x20);
    ck_assert_int_eq(S.last, PROTO_CLOSE);
    proto_conn_release(&S.pc);
}
END_TEST

static Suite *binary_suite(void)
{
    Suite *s = suite_create("binary");
    const struct unit_case cases[] = {
        {"negotiation", test_negotiation},     {"framing", test_byte_at_a_time},
        {"framing", test_need_for_value},      {"framing", test_too_large_swallowed},
        {"quiet", test_quiet},                 {"errors", test_bad_magic_closes},
        {"errors", test_lengths_close},        {"errors", test_unknown_swallows_after_key},
        {"sasl", test_sasl_required},
    };
    unit_add_cases(s, cases, sizeof(cases) / sizeof(cases[0]), setup, teardown);
    return s;
}

int main(void)
{
    return unit_run(binary_suite(), "check_binary");
}
