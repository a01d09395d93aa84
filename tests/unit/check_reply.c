/*
 * check_reply: the reply queue — text blocks, coalescing, item references released once their
 * bytes are written, partial writes, recycling, mark/rollback.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "protocol/reply.h"
#include "storage/storage.h"
#include "unit.h"

static struct reply R;

static void setup(void)
{
    cfg_init(&settings);
    struct storage_config sc = {.mem_limit = 64u << 20,
                                .item_size_max = 1u << 20,
                                .growth_factor = 1.25,
                                .chunk_min = 48,
                                .evictions = true,
                                .use_cas = true,
                                .shards = 16};
    char err[256];
    clock_setup();
    clock_set(100);
    ck_assert_int_eq(storage_setup(&sc, err, sizeof(err)), 0);
    reply_init(&R);
}

static void teardown(void)
{
    reply_deinit(&R);
    storage_teardown();
    cfg_free(&settings);
}

/* Drains up to max bytes (everything if 0) into a string, as writev would. */
static size_t drain(char *out, size_t max)
{
    struct iovec *iov;
    size_t n = reply_iov(&R, &iov, 1024), total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t take = iov[i].iov_len;
        if (max && total + take > max)
            take = max - total;
        memcpy(out + total, iov[i].iov_base, take);
        total += take;
        if (max && total == max)
            break;
    }
    reply_consumed(&R, total);
    return total;
}

/* Stores key=value and returns it referenced by a storage_get. */
static struct item *stored(const char *key, size_t vlen, char fill)
{
    enum st_result res;
    struct item *it = item_alloc(key, strlen(key), 0, 0, (uint32_t)vlen, &res);
    ck_assert_ptr_nonnull(it);
    memset(item_value(it), fill, vlen);
    ck_assert_int_eq(storage_store(it, OP_SET, 0, NULL), ST_OK);
    item_put(it);
    it = storage_get(key, strlen(key));
    ck_assert_ptr_nonnull(it);
    return it;
}

static unsigned refs(struct item *it)
{
    return atomic_load(&it->refcount);
}

START_TEST(test_coalesce)
{
    reply_add_str(&R, "VALUE ");
    reply_add_str(&R, "k 0 1\r\n");
    reply_printf(&R, "%s\r\n", "x");
    char *p = reply_reserve(&R, 10);
    memcpy(p, "END\r\nJUNK", 9);
    reply_commit(&R, 5);
    struct iovec *iov;
    ck_assert_uint_eq(reply_iov(&R, &iov, 16), 1);
    ck_assert_uint_eq(R.pending, 21);
    char out[64] = {0};
    ck_assert_uint_eq(drain(out, 0), 21);
    ck_assert_str_eq(out, "VALUE k 0 1\r\nx\r\nEND\r\n");
    ck_assert(reply_empty(&R));
    ck_assert_ptr_nonnull(reply_reserve(&R, REPLY_BLOCK_SIZE));
    ck_assert_ptr_null(reply_reserve(&R, REPLY_BLOCK_SIZE + 1));
}
END_TEST

START_TEST(test_blocks)
{
    /* 100 KB of text spans several blocks, one iovec per block */
    static char big[100000], out[100000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    reply_add(&R, big, 40000);
    reply_add(&R, big + 40000, 60000);
    struct iovec *iov;
    size_t n = reply_iov(&R, &iov, 1024);
    ck_assert_uint_eq(n, (100000 + REPLY_BLOCK_SIZE - 1) / REPLY_BLOCK_SIZE);
    /* partial writes of odd sizes */
    size_t got = 0;
    while (!reply_empty(&R))
        got += drain(out + got, 7777);
    ck_assert_uint_eq(got, sizeof(big));
    ck_assert(memcmp(out, big, sizeof(big)) == 0);
    /* recycled: the next reply starts in the first block again */
    reply_add_str(&R, "OK\r\n");
    ck_assert_ptr_eq(R.cur, R.first);
    ck_assert_uint_eq(R.niov, 1);
}
END_TEST

START_TEST(test_steady_stream)
{
    /* a connection that never drains fully must not grow without bound */
    static char out[1 << 16];
    for (int round = 0; round < 2000; round++) {
        reply_add(&R, "0123456789", 10);
        if (round % 3 == 0)
            drain(out, 20);
    }
    size_t blocks = 0;
    for (struct reply_block *b = R.first; b; b = b->next)
        blocks++;
    ck_assert_uint_lt(blocks, 4);
    while (!reply_empty(&R))
        drain(out, 0);
}
END_TEST

START_TEST(test_item_refs)
{
    struct item *big = stored("big", 4000, 'b');
    struct item *small = stored("small", 10, 's');
    unsigned big_refs = refs(big), small_refs = refs(small);
    reply_add_str(&R, "VALUE big 0 4000\r\n");
    reply_add_item_data(&R, big, item_value(big), 4000);
    reply_add_str(&R, "\r\n");
    /* small values are copied and the reference dropped at once */
    reply_add_item_data(&R, small, item_value(small), 10);
    ck_assert_uint_eq(refs(small), small_refs - 1);
    struct iovec *iov;
    ck_assert_uint_eq(reply_iov(&R, &iov, 16), 3);
    ck_assert_ptr_eq(iov[1].iov_base, item_value(big));
    ck_assert_uint_eq(R.nrefs, 1);
    /* partially written value: still referenced */
    static char out[8192];
    size_t n = drain(out, 18 + 100);
    ck_assert_uint_eq(n, 118);
    ck_assert_uint_eq(refs(big), big_refs);
    n += drain(out + n, 3900);
    ck_assert_uint_eq(refs(big), big_refs - 1);
    n += drain(out + n, 0);
    ck_assert_uint_eq(n, 18 + 4000 + 2 + 10);
    ck_assert(out[18] == 'b' && out[18 + 3999] == 'b' && out[4020] == 's');
    item_put(storage_get("big", 3)); /* still alive in the table */
}
END_TEST

START_TEST(test_deinit_releases)
{
    struct item *big = stored("big", 2000, 'b');
    unsigned before = refs(big);
    reply_add_item_data(&R, big, item_value(big), 2000);
    reply_deinit(&R);
    struct item *again = storage_get("big", 3);
    ck_assert_ptr_eq(again, big);
    ck_assert_uint_eq(refs(again), before); /* ours dropped, the lookup's added */
    item_put(again);
    reply_init(&R);
}
END_TEST

START_TEST(test_rollback)
{
    struct item *big = stored("big", 1000, 'b');
    unsigned before = refs(big);
    reply_add_str(&R, "VERSION x\r\n");
    struct reply_mark m;
    reply_mark(&R, &m);
    reply_add_str(&R, "VALUE big 0 1000\r\n");
    reply_add_item_data(&R, big, item_value(big), 1000);
    for (int i = 0; i < 3000; i++)
        reply_add_str(&R, "\r\nfiller\r\n");
    reply_rollback(&R, &m);
    ck_assert_uint_eq(refs(big), before - 1);
    reply_add_str(&R, "END\r\n");
    char out[64] = {0};
    drain(out, 0);
    ck_assert_str_eq(out, "VERSION x\r\nEND\r\n");
}
END_TEST

static Suite *reply_suite(void)
{
    Suite *s = suite_create("reply");
    const struct unit_case cases[] = {
        {"coalesce", test_coalesce},     {"blocks", test_blocks},
        {"steady_stream", test_steady_stream}, {"item_refs", test_item_refs},
        {"deinit_releases", test_deinit_releases}, {"rollback", test_rollback},
    };
    unit_add_cases(s, cases, sizeof(cases) / sizeof(cases[0]), setup, teardown);
    return s;
}

int main(void)
{
    return unit_run(reply_suite(), "check_reply");
}
