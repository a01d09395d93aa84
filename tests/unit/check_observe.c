/*
 * check_observe: the latency histogram's buckets, command classification, the clock, and the
 * hot-key sketch (Space-Saving update, merge across workers, bounded size).
 */
#include "protocol/observe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/request.h"
#include "unit.h"

static struct proto_obs *O, *M;

static void setup(void)
{
    O = calloc(1, sizeof(*O));
    M = calloc(1, sizeof(*M));
}

static void teardown(void)
{
    free(O);
    free(M);
}

START_TEST(test_buckets)
{
    /* bucket 0: <= 128 ns; bucket i: (2^(i+6), 2^(i+7)]; the last: beyond 2^32 */
    obs_latency_add(O, OBS_GET, 0);
    obs_latency_add(O, OBS_GET, 128);
    obs_latency_add(O, OBS_GET, 129);
    obs_latency_add(O, OBS_GET, 256);
    obs_latency_add(O, OBS_GET, 257);
    obs_latency_add(O, OBS_GET, 1ull << 40);
    const struct obs_latency *l = &O->lat[OBS_GET];
    ck_assert_uint_eq(l->bucket[0], 2);
    ck_assert_uint_eq(l->bucket[1], 2);
    ck_assert_uint_eq(l->bucket[2], 1);
    ck_assert_uint_eq(l->bucket[OBS_LAT_BUCKETS], 1);
    ck_assert_uint_eq(l->count, 6);
    ck_assert_uint_eq(l->sum_ns, 0 + 128 + 129 + 256 + 257 + (1ull << 40));
    ck_assert(obs_bucket_le(0) > 1.27e-7 && obs_bucket_le(0) < 1.29e-7);
}
END_TEST

static enum obs_cmd cls(const char *name, unsigned nkeys)
{
    struct token t = {name, strlen(name)};
    return obs_classify(&t, nkeys);
}

START_TEST(test_classify)
{
    ck_assert_int_eq(cls("get", 1), OBS_GET);
    ck_assert_int_eq(cls("gets", 2), OBS_MULTIGET);
    ck_assert_int_eq(cls("cas", 1), OBS_SET);
    ck_assert_int_eq(cls("prepend", 1), OBS_SET);
    ck_assert_int_eq(cls("decr", 1), OBS_INCRDECR);
    ck_assert_int_eq(cls("gat", 1), OBS_TOUCH);
    ck_assert_int_eq(cls("ma", 1), OBS_MA);
    ck_assert_int_eq(cls("mn", 1), OBS_NONE);
    ck_assert_int_eq(cls("stats", 1), OBS_NONE);
    ck_assert_int_eq(cls("x", 1), OBS_NONE);
}
END_TEST

START_TEST(test_clock)
{
    obs_setup();
    uint64_t a = obs_now(), n0 = obs_now_ns();
    while (obs_now_ns() - n0 < 5000000)
        ;
    uint64_t d = obs_ticks_ns(a, obs_now());
    ck_assert_msg(d >= 4000000 && d <= 50000000, "5 ms measured as %llu ns",
                  (unsigned long long)d);
    ck_assert_uint_eq(obs_ticks_ns(10, 5), 0);
}
END_TEST

/* Feeds key k (n times) as sampled accesses: obs_key_sample records every call. */
static void feed(struct proto_obs *o, int k, int n)
{
    char key[32];
    int len = snprintf(key, sizeof key, "key:%d", k);
    for (int i = 0; i < n; i++)
        obs_key_sample(o, OBS_READ, key, (size_t)len);
}

static bool listed_top(const struct obs_topk *t, int k, unsigned within)
{
    char key[32];
    int len = snprintf(key, sizeof key, "key:%d", k);
    uint32_t idx[OBS_HK_SLOTS];
    uint32_t n = obs_topk_order(t, idx);
    for (uint32_t r = 0; r < n && r < within; r++)
        if (t->nkey[idx[r]] == len && memcmp(t->key[idx[r]], key, (size_t)len) == 0)
            return true;
    return false;
}

START_TEST(test_space_saving)
{
    /* 5 heavy keys among 5000 light ones, interleaved: the heavy ones stay on top */
    for (int round = 0; round < 50; round++) {
        for (int h = 0; h < 5; h++)
            feed(O, h, 10 - h);
        for (int l = 0; l < 100; l++)
            feed(O, 1000 + round * 100 + l, 1);
    }
    ck_assert_uint_eq(O->hot[OBS_READ].used, OBS_HK_SLOTS); /* bounded */
    for (int h = 0; h < 5; h++)
        ck_assert_msg(listed_top(&O->hot[OBS_READ], h, 5), "heavy key %d not in the top 5", h);
}
END_TEST

START_TEST(test_merge)
{
    feed(O, 1, 100);
    feed(O, 2, 10);
    feed(M, 2, 200); /* key 2 is hot on the other worker */
    feed(M, 3, 50);
    struct proto_obs *sum = calloc(1, sizeof(*sum));
    obs_add(sum, O);
    obs_add(sum, M);
    ck_assert_uint_eq(sum->sampled[OBS_READ], 360);
    ck_assert(listed_top(&sum->hot[OBS_READ], 2, 1)); /* 210 */
    ck_assert(listed_top(&sum->hot[OBS_READ], 1, 2)); /* 100 */
    ck_assert(listed_top(&sum->hot[OBS_READ], 3, 3)); /* 50 */
    ck_assert_uint_eq(sum->hot[OBS_READ].used, 3);
    free(sum);
}
END_TEST

static Suite *observe_suite(void)
{
    Suite *s = suite_create("observe");
    const struct unit_case cases[] = {
        {"buckets", test_buckets}, {"classify", test_classify}, {"clock", test_clock},
        {"space_saving", test_space_saving}, {"merge", test_merge},
    };
    unit_add_cases(s, cases, sizeof(cases) / sizeof(cases[0]), setup, teardown);
    return s;
}

int main(void)
{
    return unit_run(observe_suite(), "check_observe");
}
