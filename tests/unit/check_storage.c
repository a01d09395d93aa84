/*
 * Unit tests of storage/: slab classes, the hard cap, CLOCK eviction, -M, automove, the
 * sharded table (incl. growth and a multi-threaded hammer), expiry with an injected clock,
 * the sweeper, flush_all, incr/decr, append/prepend, references under concurrent delete, and
 * the batch lookup of multi-gets.
 * Every test builds its own storage (setup/teardown per test, fork mode).
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/storage.h"

#define NOW 100000

static struct storage_config cfg_default(void)
{
    return (struct storage_config){
        .mem_limit = 64u << 20,
        .item_size_max = 1u << 20,
        .growth_factor = 1.25,
        .chunk_min = 48,
        .evictions = true,
        .use_cas = true,
        .shards = 4,
        .automove = true,
    };
}

static void start(struct storage_config cfg)
{
    char err[256] = "";
    clock_setup();
    clock_set(NOW);
    ck_assert_msg(storage_setup(&cfg, err, sizeof(err)) == 0, "setup: %s", err);
}

static void setup_default(void)
{
    start(cfg_default());
}

static void teardown(void)
{
    storage_teardown();
}

static enum st_result store(const char *key, const char *val, size_t vlen, rel_time_t exp,
                            enum store_op op, uint64_t cas, uint64_t *cas_out)
{
    enum st_result r;
    struct item *it = item_alloc(key, strlen(key), 7, exp, (uint32_t)vlen, &r);
    if (!it)
        return r;
    memcpy(item_value(it), val, vlen);
    r = storage_store(it, op, cas, cas_out);
    item_put(it);
    return r;
}

static enum st_result set(const char *key, const char *val)
{
    return store(key, val, strlen(val), 0, OP_SET, 0, NULL);
}

static enum st_result set_exp(const char *key, const char *val, rel_time_t exp)
{
    return store(key, val, strlen(val), exp, OP_SET, 0, NULL);
}

/* 1: present with this value, 0: missing, -1: present with another value */
static int check(const char *key, const char *val)
{
    struct item *it = storage_get(key, strlen(key));
    if (!it)
        return 0;
    int ok = it->nbytes == strlen(val) && memcmp(item_value(it), val, it->nbytes) == 0;
    item_put(it);
    return ok ? 1 : -1;
}

static struct storage_stats stats(void)
{
    struct storage_stats s;
    storage_stats(&s);
    return s;
}

struct slab_pick {
    uint32_t chunk_size;
    uint64_t pages, used;
};

static void slab_find_cb(void *arg, const struct slab_class_stats *s)
{
    struct slab_pick *p = arg;
    if (s->chunk_size == p->chunk_size) {
        p->pages = s->total_pages;
        p->used = s->used_chunks;
    }
}

static struct slab_pick slab_of_size(uint32_t chunk)
{
    struct slab_pick p = {.chunk_size = chunk};
    storage_slab_stats(slab_find_cb, &p);
    return p;
}

static void slab_any_cb(void *arg, const struct slab_class_stats *s)
{
    uint32_t *max_used = arg;
    if (s->used_chunks > 0)
        *max_used = s->chunk_size;
}

static char value_buf[1 << 16];

static const char *valn(size_t n, char c)
{
    memset(value_buf, c, n);
    value_buf[n] = 0;
    return value_buf;
}

/* ---- basic operations ---- */

START_TEST(test_set_get_delete)
{
    ck_assert_int_eq(set("k", "v1"), ST_OK);
    ck_assert_int_eq(check("k", "v1"), 1);
    ck_assert_int_eq(set("k", "v2"), ST_OK);
    ck_assert_int_eq(check("k", "v2"), 1);
    ck_assert_int_eq(storage_delete("k", 1, 0), ST_OK);
    ck_assert_int_eq(check("k", "v2"), 0);
    ck_assert_int_eq(storage_delete("k", 1, 0), ST_NOT_FOUND);
    struct storage_stats s = stats();
    ck_assert_uint_eq(s.curr_items, 0);
    ck_assert_uint_eq(s.total_items, 2);
    ck_assert_uint_eq(s.item_header_bytes, 32);
}
END_TEST

START_TEST(test_add_replace_cas)
{
    uint64_t c1 = 0, c2 = 0;
    ck_assert_int_eq(store("a", "1", 1, 0, OP_REPLACE, 0, NULL), ST_NOT_STORED);
    ck_assert_int_eq(store("a", "1", 1, 0, OP_ADD, 0, &c1), ST_OK);
    ck_assert_int_eq(store("a", "2", 1, 0, OP_ADD, 0, NULL), ST_NOT_STORED);
    ck_assert_int_eq(store("a", "3", 1, 0, OP_REPLACE, 0, &c2), ST_OK);
    ck_assert_uint_ne(c1, c2);
    ck_assert_int_eq(store("a", "4", 1, 0, OP_CAS, c1, NULL), ST_EXISTS);
    ck_assert_int_eq(store("a", "5", 1, 0, OP_CAS, c2, &c1), ST_OK);
    ck_assert_int_eq(check("a", "5"), 1);
    ck_assert_int_eq(store("zz", "5", 1, 0, OP_CAS, c1, NULL), ST_NOT_FOUND);
    ck_assert_int_eq(storage_delete("a", 1, c1 + 1), ST_EXISTS);
    ck_assert_int_eq(storage_delete("a", 1, c1), ST_OK);
    /* touch keeps the CAS */
    ck_assert_int_eq(store("t", "x", 1, 0, OP_SET, 0, &c1), ST_OK);
    struct item *it = storage_touch("t", 1, NOW + 50);
    ck_assert_ptr_nonnull(it);
    ck_assert_uint_eq(item_cas(it), c1);
    ck_assert_uint_eq(it->exptime, NOW + 50);
    item_put(it);
    ck_assert_ptr_null(storage_touch("nope", 4, 0));
}
END_TEST

START_TEST(test_no_cas)
{
    storage_teardown();
    struct storage_config c = cfg_default();
    c.use_cas = false;
    start(c);
    uint64_t cas = 99;
    ck_assert_int_eq(store("a", "1", 1, 0, OP_SET, 0, &cas), ST_OK);
    ck_assert_uint_eq(cas, 0);
    ck_assert_uint_eq(stats().item_header_bytes, 24);
    /* 24 + 1 + 1 = 26 bytes: smallest class is 24 + 48 = 72 */
    uint32_t used = 0;
    storage_slab_stats(slab_any_cb, &used);
    ck_assert_uint_eq(used, 72);
}
END_TEST

/* ---- slab classes and memory ---- */

START_TEST(test_class_selection)
{
    /* 8-byte steps below 256 bytes need an arena of 256 pages or more (slab.c) */
    storage_teardown();
    struct storage_config c = cfg_default();
    c.mem_limit = 256u << 20;
    start(c);
    /* 10-byte key + 100-byte value + 32-byte header = 142 bytes -> the 144-byte class */
    ck_assert_int_eq(store("0123456789", valn(100, 'v'), 100, 0, OP_SET, 0, NULL), ST_OK);
    struct slab_pick p = slab_of_size(144);
    ck_assert_uint_eq(p.pages, 1);
    ck_assert_uint_eq(p.used, 1);
    /* smallest: 32 + 48 = 80 */
    ck_assert_int_eq(set("a", "b"), ST_OK);
    ck_assert_uint_eq(slab_of_size(80).used, 1);
    /* the largest value memcached admits fits (its accounting: 48-byte header, 8 CAS, the
     * key and its NUL, 4 for non-zero flags, "\r\n"), one byte more does not */
    size_t big = (1u << 20) - (48 + 8 + 3 + 1 + 4 + 2);
    char *v = malloc(big);
    memset(v, 'x', big);
    ck_assert_int_eq(store("big", v, big, 0, OP_SET, 0, NULL), ST_OK);
    ck_assert_uint_eq(slab_of_size(1u << 20).used, 1);
    enum st_result r;
    ck_assert_ptr_null(item_alloc("big", 3, 7, 0, (uint32_t)big + 1, &r));
    ck_assert_int_eq(r, ST_TOO_LARGE);
    free(v);
}
END_TEST

START_TEST(test_hard_cap)
{
    storage_teardown();
    struct storage_config c = cfg_default();
    c.mem_limit = 4u << 20;
    start(c);
    char key[32];
    for (int i = 0; i < 200000; i++) {
        snprintf(key, sizeof(key), "key%07d", i);
        size_t n = 50 + (size_t)(i % 3) * 400;
        ck_assert_int_eq(store(key, valn(n, 'a'), n, 0, OP_SET, 0, NULL), ST_OK);
    }
    struct storage_stats s = stats();
    ck_assert_uint_le(s.total_malloced, 4u << 20);
    ck_assert_uint_gt(s.evictions, 0);
    ck_assert_uint_lt(s.curr_items, 200000);
    ck_assert_uint_le(s.bytes, 4u << 20);
    /* more sizes in use than pages: pages change class (once they have stayed 2 s), the
     * cap holds */
    storage_teardown();
    c.mem_limit = 2u << 20;
    start(c);
    for (int i = 0; i < 300; i++) {
        clock_set(NOW + 2 * (rel_time_t)i);
        snprintf(key, sizeof(key), "key%07d", i);
        size_t n = 50 + (size_t)(i % 5) * 3000;
        ck_assert_int_eq(store(key, valn(n, 'a'), n, 0, OP_SET, 0, NULL), ST_OK);
        ck_assert_int_eq(check(key, valn(n, 'a')), 1);
        ck_assert_uint_le(stats().total_malloced, 2u << 20);
    }
    /* young pages stay put while a larger class can lend a chunk (up to 4x its size); when
     * none can, the store still succeeds: the last resort takes a young page, evicting its
     * items, and the cap holds */
    storage_teardown();
    start(c);
    ck_assert_int_eq(store("big", valn(9000, 'a'), 9000, 0, OP_SET, 0, NULL), ST_OK);
    ck_assert_int_eq(store("mid", valn(6000, 'a'), 6000, 0, OP_SET, 0, NULL), ST_OK);
    ck_assert_int_eq(store("b2", valn(3000, 'a'), 3000, 0, OP_SET, 0, NULL), ST_OK);
    ck_assert_int_eq(check("b2", valn(3000, 'a')), 1);
    ck_assert_uint_eq(stats().total_malloced, 2u << 20); /* borrowed, no third page */
    ck_assert_int_eq(store("tiny", "x", 1, 0, OP_SET, 0, NULL), ST_OK);
    ck_assert_int_eq(check("tiny", "x"), 1);
    ck_assert_uint_le(stats().total_malloced, 2u << 20);
    ck_assert_int_eq(check("big", valn(9000, 'a')) + check("mid", valn(6000, 'a')), 1);
}
END_TEST

START_TEST(test_eviction_order)
{
    storage_teardown();
    struct storage_config c = cfg_default();
    c.mem_limit = 1u << 20; /* one page */
    start(c);
    ck_assert_int_eq(store("k00000", valn(100, 'a'), 100, 0, OP_SET, 0, NULL), ST_OK);
    uint32_t chunk = 0;
    storage_slab_stats(slab_any_cb, &chunk);
    uint32_t per = (1u << 20) / chunk;
    char key[32];
    for (uint32_t i = 1; i < per; i++) {
        snprintf(key, sizeof(key), "k%05u", i);
        ck_assert_int_eq(store(key, valn(100, 'a'), 100, 0, OP_SET, 0, NULL), ST_OK);
    }
    ck_assert_uint_eq(stats().evictions, 0);
    ck_assert_int_eq(check("k00000", valn(100, 'a')), 1); /* k00000 becomes active */
    ck_assert_int_eq(store("new01", valn(100, 'b'), 100, 0, OP_SET, 0, NULL), ST_OK);
    ck_assert_uint_eq(stats().evictions, 1);
    ck_assert_int_eq(check("k00000", valn(100, 'a')), 1); /* second chance */
    ck_assert_int_eq(check("k00001", valn(100, 'a')), 0); /* first inactive evicted */
    ck_assert_int_eq(check("k00002", valn(100, 'a')), 1);
    /* expired items are reclaimed rather than evicted */
    storage_teardown();
    start(c);
    for (uint32_t i = 0; i < per; i++) {
        snprintf(key, sizeof(key), "k%05u", i);
        ck_assert_int_eq(store(key, valn(100, 'a'), 100, i == 5 ? NOW + 1 : 0, OP_SET, 0, NULL),
                         ST_OK);
    }
    clock_set(NOW + 1);
    ck_assert_int_eq(store("new00", valn(100, 'b'), 100, 0, OP_SET, 0, NULL), ST_OK);
    struct storage_stats s = stats();
    ck_assert_uint_eq(s.reclaimed, 1);
    ck_assert_uint_eq(s.evictions, 0);
    ck_assert_int_eq(check("k00000", valn(100, 'a')), 1);
}
END_TEST

static void slab_min_cb(void *arg, const struct slab_class_stats *s)
{
    uint32_t *min = arg;
    if (s->used_chunks > 0 && (*min == 0 || s->chunk_size < *min))
        *min = s->chunk_size;
}

/* Two 1 MB pages, each the only page of its class and old: a set of a third size, which owns
 * no page, borrows a chunk of the larger class (one eviction) rather than taking a class's
 * only page (a page of evictions, then ping-pong every 2 s when more sizes are in use than
 * pages: storage/README, Page allocation). */
START_TEST(test_single_page_kept)
{
    storage_teardown();
    struct storage_config c = cfg_default();
    c.mem_limit = 2u << 20;
    start(c);
    char key[32];
    const size_t sizes[2] = {2000, 1000};
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(store(k ? "s0" : "l0", valn(sizes[k], 'a'), sizes[k], 0, OP_SET, 0,
                               NULL), ST_OK);
        uint32_t chunk = 0;
        storage_slab_stats(k ? slab_min_cb : slab_any_cb, &chunk);
        ck_assert_uint_gt(chunk, 0);
        for (uint32_t i = 1; i < (1u << 20) / chunk; i++) {
            snprintf(key, sizeof(key), "%c%u", k ? 's' : 'l', i);
            ck_assert_int_eq(store(key, valn(sizes[k], 'a'), sizes[k], 0, OP_SET, 0, NULL),
                             ST_OK);
        }
    }
    struct storage_stats before = stats();
    ck_assert_uint_eq(before.evictions, 0);
    ck_assert_uint_eq(before.total_malloced, 2u << 20);
    clock_set(NOW + 10); /* both pages past their residency */
    ck_assert_int_eq(store("m0", valn(700, 'b'), 700, 0, OP_SET, 0, NULL), ST_OK);
    ck_assert_int_eq(check("m0", valn(700, 'b')), 1);
    struct storage_stats after = stats();
    ck_assert_uint_eq(after.evictions, 1);
    ck_assert_uint_eq(after.curr_items, before.curr_items);
    ck_assert_int_eq(check("l0", valn(2000, 'a')), 1);
}
END_TEST

START_TEST(test_no_evictions)
{
    storage_teardown();
    struct storage_config c = cfg_default();
    c.mem_limit = 1u << 20;
    c.evictions = false;
    start(c);
    char key[32];
    int stored = 0;
    enum st_result r = ST_OK;
    for (int i = 0; i < 20000 && r == ST_OK; i++) {
        snprintf(key, sizeof(key), "k%05d", i);
        r = store(key, valn(100, 'a'), 100, i % 10 == 3 ? NOW + 1 : 0, OP_SET, 0, NULL);
        stored += r == ST_OK;
    }
    ck_assert_int_eq(r, ST_NO_MEMORY);
    ck_assert_uint_eq(stats().evictions, 0);
    ck_assert_int_eq(check("k00000", valn(100, 'a')), 1);
    /* an expired item may still be reclaimed */
    clock_set(NOW + 1);
    ck_assert_int_eq(store("x0000", valn(100, 'a'), 100, 0, OP_SET, 0, NULL), ST_OK);
    int more = 0;
    for (r = ST_OK; r == ST_OK && more < 5000; more++) {
        snprintf(key, sizeof(key), "y%04d", more);
        r = store(key, valn(100, 'a'), 100, 0, OP_SET, 0, NULL);
    }
    ck_assert_int_eq(r, ST_NO_MEMORY);
    ck_assert_int_le(more, stored / 10 + 1);
    ck_assert_int_gt(stored, 1000);
}
END_TEST

START_TEST(test_automove)
{
    storage_teardown();
    struct storage_config c = cfg_default();
    c.mem_limit = 8u << 20;
    start(c);
    char key[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "small%d", i);
        ck_assert_int_eq(store(key, valn(100, 's'), 100, 0, OP_SET, 0, NULL), ST_OK);
    }
    ck_assert_uint_gt(stats().evictions, 0);
    storage_automove_step(); /* takes the snapshot of the small class's pressure */
    int ok = 0, fails = 0;
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "large%d", i);
        enum st_result r = store(key, valn(1000, 'L'), 1000, 0, OP_SET, 0, NULL);
        if (r == ST_OK) {
            ok++;
        } else {
            ck_assert_int_eq(r, ST_NO_MEMORY);
            fails++;
            storage_automove_step();
        }
        if (i % 500 == 0)
            storage_automove_step();
    }
    struct storage_stats s = stats();
    ck_assert_uint_gt(s.slabs_moved, 0);
    ck_assert_int_gt(ok, 15000);
    uint32_t large = 0;
    struct slab_pick p;
    for (uint32_t sz = 1000 + 32; sz < 1400; sz += 8) {
        p = slab_of_size(sz);
        if (p.pages) {
            large = sz;
            break;
        }
    }
    ck_assert_uint_ne(large, 0);
    ck_assert_uint_ge(p.pages, 3);
    /* -m 8: the large class's first page may come past the limit (first_page_over_limit) */
    ck_assert_uint_le(s.total_malloced, 9u << 20);
    ck_assert_int_eq(check("large19999", valn(1000, 'L')), 1);
}
END_TEST

/* ---- hash table ---- */

START_TEST(test_table_growth)
{
    storage_teardown();
    struct storage_config c = cfg_default();
    c.shards = 1;
    start(c);
    char key[32], val[32];
    const int n = 200000;
    bool saw_expanding = false;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        snprintf(val, sizeof(val), "val:%d", i);
        ck_assert_int_eq(set(key, val), ST_OK);
        if (i % 997 == 0) {
            saw_expanding |= stats().hash_is_expanding != 0;
            /* mid-growth lookups see old and new tables */
            snprintf(key, sizeof(key), "key:%d", i / 2);
            snprintf(val, sizeof(val), "val:%d", i / 2);
            ck_assert_int_eq(check(key, val), 1);
        }
    }
    ck_assert(saw_expanding);
    for (int i = 0; i < 1000; i++)
        storage_maintenance_step();
    struct storage_stats s = stats();
    ck_assert_uint_eq(s.hash_is_expanding, 0);
    ck_assert_uint_ge(s.hash_power_level, 17);
    for (int i = 0; i < n; i += 2) {
        snprintf(key, sizeof(key), "key:%d", i);
        ck_assert_int_eq(storage_delete(key, strlen(key), 0), ST_OK);
    }
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        snprintf(val, sizeof(val), "val:%d", i);
        ck_assert_int_eq(check(key, val), i % 2 ? 1 : 0);
    }
    ck_assert_uint_eq(stats().curr_items, (uint64_t)n / 2);
}
END_TEST

#define HAMMER_KEYS 64
#define HAMMER_THREADS 4

static void *hammer(void *arg)
{
    long id = (long)arg;
    unsigned seed = (unsigned)id * 7919u + 1;
    char key[32], val[300];
    long bad = 0;
    for (int i = 0; i < 100000; i++) {
        int k = (int)(rand_r(&seed) % HAMMER_KEYS);
        snprintf(key, sizeof(key), "hk%d", k);
        int op = (int)(rand_r(&seed) % 10);
        if (op < 4) {
            /* value names its key; its length varies so items change class */
            int n = snprintf(val, sizeof(val), "%s|%ld|%d|", key, id, i);
            size_t len = (size_t)n + rand_r(&seed) % 200;
            memset(val + n, 'p', len - (size_t)n);
            store(key, val, len, 0, OP_SET, 0, NULL);
        } else if (op < 5) {
            storage_delete(key, strlen(key), 0);
        } else if (op < 6) {
            store(key, "|app", 4, 0, OP_APPEND, 0, NULL);
        } else {
            struct item *it = storage_get(key, strlen(key));
            if (it) {
                size_t kl = strlen(key);
                if (it->nbytes < kl + 1 || memcmp(item_value(it), key, kl) != 0 ||
                    item_value(it)[kl] != '|')
                    bad++;
                item_put(it);
            }
        }
    }
    return (void *)bad;
}

START_TEST(test_hammer)
{
    storage_teardown();
    struct storage_config c = cfg_default();
    c.mem_limit = 2u << 20; /* evictions happen too */
    c.shards = 2;
    start(c);
    pthread_t t[HAMMER_THREADS];
    for (long i = 0; i < HAMMER_THREADS; i++)
        pthread_create(&t[i], NULL, hammer, (void *)i);
    long bad = 0;
    for (int i = 0; i < HAMMER_THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += (long)r;
    }
    ck_assert_int_eq(bad, 0);
}
END_TEST

static void *hammer_grow(void *arg)
{
    long id = (long)arg;
    char key[32], val[32];
    for (int i = 0; i < 50000; i++) {
        snprintf(key, sizeof(key), "g%ld:%d", id, i);
        snprintf(val, sizeof(val), "v%ld:%d", id, i);
        if (set(key, val) != ST_OK)
            return (void *)1;
        if (i % 3 == 0) {
            snprintf(key, sizeof(key), "g%ld:%d", id, i / 2);
            snprintf(val, sizeof(val), "v%ld:%d", id, i / 2);
            if (check(key, val) != 1)
                return (void *)1;
        }
        if (id == 0 && i % 1000 == 0) {
            storage_maintenance_step();
            storage_sweep_step(500);
        }
    }
    return NULL;
}

START_TEST(test_hammer_growth)
{
    pthread_t t[HAMMER_THREADS];
    for (long i = 0; i < HAMMER_THREADS; i++)
        pthread_create(&t[i], NULL, hammer_grow, (void *)i);
    long bad = 0;
    for (int i = 0; i < HAMMER_THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += (long)r;
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_uint_eq(stats().curr_items, 50000u * HAMMER_THREADS);
}
END_TEST

/* ---- references ---- */

START_TEST(test_ref_survives_delete)
{
    ck_assert_int_eq(set("k", "hello"), ST_OK);
    struct item *it = storage_get("k", 1);
    ck_assert_ptr_nonnull(it);
    ck_assert_int_eq(storage_delete("k", 1, 0), ST_OK);
    ck_assert_int_eq(set("k", "other"), ST_OK); /* must not reuse it's chunk */
    ck_assert_int_eq(memcmp(item_value(it), "hello", 5), 0);
    ck_assert_uint_eq(it->refcount, 1);
    item_put(it);
    ck_assert_int_eq(check("k", "other"), 1);
}
END_TEST

#ifdef CACHED_DEBUG
/* The invariant checks of the debug build (storage/internal.h): a reference dropped twice
 * reaches the chunk's free a second time and aborts instead of corrupting the free list. */
START_TEST(test_debug_double_put)
{
    struct item *it = storage_get("nope", 4);
    ck_assert_ptr_null(it);
    enum st_result res;
    it = item_alloc("d", 1, 0, 0, 5, &res);
    ck_assert_ptr_nonnull(it);
    item_put(it); /* refcount 0: the chunk is freed */
    item_put(it); /* aborts (refcount was 0) */
}
END_TEST
#endif

static volatile int ref_stop;

static void *ref_deleter(void *arg)
{
    (void)arg;
    char val[128];
    for (int i = 0; !ref_stop && i < 2000000; i++) {
        snprintf(val, sizeof(val), "value-%d-%0100d", i, 0);
        set("shared", val);
        storage_delete("shared", 6, 0);
    }
    return NULL;
}

START_TEST(test_ref_concurrent_delete)
{
    pthread_t t;
    ref_stop = 0;
    pthread_create(&t, NULL, ref_deleter, NULL);
    long bad = 0, seen = 0;
    for (int i = 0; i < 200000; i++) {
        struct item *it = storage_get("shared", 6);
        if (!it)
            continue;
        seen++;
        char copy1[200], copy2[200];
        size_t n = it->nbytes < 199 ? it->nbytes : 199;
        memcpy(copy1, item_value(it), n);
        for (volatile int spin = 0; spin < 50; spin++)
            ;
        memcpy(copy2, item_value(it), n);
        if (memcmp(copy1, copy2, n) != 0 || memcmp(copy1, "value-", 6) != 0)
            bad++;
        item_put(it);
    }
    ref_stop = 1;
    pthread_join(t, NULL);
    ck_assert_int_eq(bad, 0);
    struct storage_stats s = stats();
    ck_assert_uint_eq(s.curr_items, 0);
    (void)seen;
}
END_TEST

/* ---- batch lookup (multi-get) ---- */

/* A batch looks every key up as storage_get would: hits, misses, duplicates (the same item,
 * referenced once per occurrence), expired keys (a miss, counted once), request order. */
static void batch_check(void)
{
    char names[STORAGE_BATCH_MAX][32];
    struct storage_key keys[STORAGE_BATCH_MAX];
    struct item *out[STORAGE_BATCH_MAX];
    size_t n = 0;
    for (; n < STORAGE_BATCH_MAX; n++) {
        /* hits k0..k199, misses k1000+, expiring e0..e9, duplicates of k7 and e3 */
        int kind = (int)(n % 4);
        if (kind == 0 || kind == 1)
            snprintf(names[n], sizeof(names[n]), "k%zu", n * 37 % 200);
        else if (kind == 2)
            snprintf(names[n], sizeof(names[n]), n % 8 == 2 ? "k7" : "k%zu", 1000 + n);
        else
            snprintf(names[n], sizeof(names[n]), "e%zu", n % 3 == 0 ? 3 : n % 10);
        keys[n] = (struct storage_key){names[n], strlen(names[n])};
    }
    uint64_t expired0 = stats().get_expired;
    storage_get_batch(keys, n, false, 0, out);
    size_t expired_keys = 0;
    for (size_t i = 0; i < n; i++) {
        bool hit = names[i][0] == 'k' && atoi(names[i] + 1) < 200;
        ck_assert_msg((out[i] != NULL) == hit, "key %s", names[i]);
        if (!hit)
            continue;
        char want[32];
        snprintf(want, sizeof(want), "v%s", names[i] + 1);
        ck_assert_uint_eq(out[i]->nbytes, strlen(want));
        ck_assert(memcmp(item_value(out[i]), want, strlen(want)) == 0);
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[j], names[i]) == 0)
                ck_assert_ptr_eq(out[j], out[i]);
    }
    for (size_t i = 0; i < n; i++) {
        bool first = true;
        for (size_t j = 0; j < i; j++)
            first = first && strcmp(names[j], names[i]) != 0;
        expired_keys += names[i][0] == 'e' && first;
        if (out[i])
            item_put(out[i]);
    }
    ck_assert_uint_eq(stats().get_expired - expired0, expired_keys);
}

static void batch_fill(void)
{
    char k[32], v[32];
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        ck_assert_int_eq(set(k, v), ST_OK);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof(k), "e%d", i);
        ck_assert_int_eq(set_exp(k, "x", NOW + 1), ST_OK);
    }
    clock_set(NOW + 1);
}

START_TEST(test_get_batch)
{
    batch_fill();
    batch_check();
    /* after the batch every item is back to the table's one reference: deletable, freed */
    for (int i = 0; i < 200; i++) {
        char k[32];
        snprintf(k, sizeof(k), "k%d", i);
        ck_assert_int_eq(storage_delete(k, strlen(k), 0), ST_OK);
    }
    /* left: e0 e2 e4 e5 e6 e8, expired but never looked up (e1 e3 e7 e9 were reclaimed) */
    ck_assert_uint_eq(stats().curr_items, 6);
}
END_TEST

START_TEST(test_get_batch_one_shard)
{
    storage_teardown();
    struct storage_config cfg = cfg_default();
    cfg.shards = 1;
    start(cfg);
    batch_fill();
    batch_check();
}
END_TEST

START_TEST(test_get_batch_touch)
{
    batch_fill();
    struct storage_key keys[3] = {{"k1", 2}, {"nope", 4}, {"k1", 2}};
    struct item *out[3];
    storage_get_batch(keys, 3, true, NOW + 50, out);
    ck_assert_ptr_nonnull(out[0]);
    ck_assert_ptr_null(out[1]);
    ck_assert_ptr_eq(out[0], out[2]);
    item_put(out[0]);
    item_put(out[2]);
    clock_set(NOW + 49);
    ck_assert_int_eq(check("k1", "v1"), 1);
    clock_set(NOW + 50);
    ck_assert_int_eq(check("k1", "v1"), 0);
    ck_assert_int_eq(check("k2", "v2"), 1);
}
END_TEST

START_TEST(test_get_batch_growth)
{
    /* keys spread over a table that is growing (old and new buckets both in use) */
    char k[32], v[32];
    struct storage_key keys[STORAGE_BATCH_MAX];
    char names[STORAGE_BATCH_MAX][32];
    struct item *out[STORAGE_BATCH_MAX];
    for (int i = 0; i < 30000; i++) {
        snprintf(k, sizeof(k), "g%d", i);
        snprintf(v, sizeof(v), "%d", i);
        ck_assert_int_eq(set(k, v), ST_OK);
        if (i % 997 != 0)
            continue;
        for (int j = 0; j < STORAGE_BATCH_MAX; j++) {
            snprintf(names[j], sizeof(names[j]), "g%d", (i * 31 + j * 7919) % (i + 1));
            keys[j] = (struct storage_key){names[j], strlen(names[j])};
        }
        storage_get_batch(keys, STORAGE_BATCH_MAX, false, 0, out);
        for (int j = 0; j < STORAGE_BATCH_MAX; j++) {
            ck_assert_ptr_nonnull(out[j]);
            ck_assert_uint_eq(out[j]->nkey, keys[j].len);
            ck_assert(memcmp(item_key(out[j]), keys[j].p, keys[j].len) == 0);
            item_put(out[j]);
        }
    }
}
END_TEST

START_TEST(test_prefetch_hashed)
{
    /* the pipelined-get hints over a growing table: harmless, and the hashed lookup finds
     * what storage_get finds */
    char k[32], v[32];
    for (int i = 0; i < 30000; i++) {
        snprintf(k, sizeof(k), "p%d", i);
        snprintf(v, sizeof(v), "%d", i);
        ck_assert_int_eq(set(k, v), ST_OK);
        if (i % 499 != 0)
            continue;
        for (int j = 0; j <= i; j += 1 + i / 7) {
            snprintf(k, sizeof(k), "p%d", j);
            uint64_t hv = storage_hash(k, strlen(k));
            storage_prefetch_bucket(hv);
            uint32_t cur = storage_prefetch_item(hv);
            ck_assert_uint_ne(cur, 0); /* the key is in its bucket's chain */
            for (int steps = 0; cur != 0; steps++) {
                ck_assert_int_lt(steps, 1000);
                cur = storage_prefetch_chain(cur);
            }
            struct item *it = storage_get_hashed(k, strlen(k), hv);
            ck_assert_ptr_nonnull(it);
            ck_assert_uint_eq(it->nkey, strlen(k));
            ck_assert(memcmp(item_key(it), k, it->nkey) == 0);
            item_put(it);
        }
        uint64_t miss = storage_hash("nope", 4);
        storage_prefetch_bucket(miss);
        storage_prefetch_chain(storage_prefetch_item(miss));
        ck_assert_ptr_null(storage_get_hashed("nope", 4, miss));
    }
    ck_assert_uint_eq(storage_prefetch_chain(0), 0);
}
END_TEST

/* ---- expiry ---- */

START_TEST(test_expiry_rules)
{
    ck_assert_uint_eq(clock_exptime(0), 0);
    ck_assert_uint_eq(clock_exptime(1), NOW + 1);
    ck_assert_uint_eq(clock_exptime(2592000), NOW + 2592000);
    ck_assert_uint_le(clock_exptime(2592001), NOW); /* 1970: already expired */
    ck_assert_uint_le(clock_exptime(-1), NOW);
    ck_assert_uint_le(clock_exptime(time(NULL) - 100), NOW);
    int64_t future = (int64_t)clock_unix(NOW) + 100;
    ck_assert_uint_eq(clock_exptime(future), NOW + 100);

    ck_assert_int_eq(set_exp("never", "x", clock_exptime(0)), ST_OK);
    ck_assert_int_eq(set_exp("one", "x", clock_exptime(1)), ST_OK);
    ck_assert_int_eq(set_exp("month", "x", clock_exptime(2592000)), ST_OK);
    ck_assert_int_eq(set("abs", "old"), ST_OK);
    ck_assert_int_eq(set_exp("abs", "x", clock_exptime(2592001)), ST_OK);
    ck_assert_int_eq(set("neg", "old"), ST_OK);
    ck_assert_int_eq(set_exp("neg", "x", clock_exptime(-1)), ST_OK);
    ck_assert_int_eq(set_exp("past", "x", clock_exptime(time(NULL) - 10)), ST_OK);
    ck_assert_int_eq(set_exp("fut", "x", clock_exptime(future)), ST_OK);
    /* set with an expired time stores nothing visible and hides the old value */
    ck_assert_int_eq(check("abs", "x"), 0);
    ck_assert_int_eq(check("neg", "x"), 0);
    ck_assert_int_eq(check("past", "x"), 0);
    ck_assert_int_eq(check("one", "x"), 1);
    clock_set(NOW + 1);
    ck_assert_int_eq(check("one", "x"), 0);
    ck_assert_int_eq(check("never", "x"), 1);
    clock_set(NOW + 99);
    ck_assert_int_eq(check("fut", "x"), 1);
    clock_set(NOW + 100);
    ck_assert_int_eq(check("fut", "x"), 0);
    clock_set(NOW + 2591999);
    ck_assert_int_eq(check("month", "x"), 1);
    clock_set(NOW + 2592000);
    ck_assert_int_eq(check("month", "x"), 0);
    ck_assert_int_eq(check("never", "x"), 1);
    ck_assert_uint_ge(stats().get_expired, 4);
    ck_assert_uint_eq(stats().curr_items, 1);
}
END_TEST

START_TEST(test_sweeper)
{
    char key[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "s%d", i);
        ck_assert_int_eq(set_exp(key, "v", i % 2 ? NOW + 10 : 0), ST_OK);
    }
    ck_assert_uint_eq(storage_sweep_step(1000000), 0);
    clock_set(NOW + 10);
    size_t total = 0;
    for (int i = 0; i < 10000; i++) {
        size_t got = storage_sweep_step(300);
        ck_assert_uint_le(got, 300);
        total += got;
        if (total == 5000)
            break;
    }
    ck_assert_uint_eq(total, 5000);
    struct storage_stats s = stats();
    ck_assert_uint_eq(s.curr_items, 5000);
    ck_assert_uint_eq(s.sweeper_reclaimed, 5000);
    ck_assert_uint_eq(s.expired_unfetched, 5000);
    ck_assert_int_eq(check("s0", "v"), 1);
}
END_TEST

/* ---- flush ---- */

START_TEST(test_flush_now)
{
    ck_assert_int_eq(set("before", "x"), ST_OK);
    clock_set(NOW + 5);
    ck_assert_int_eq(set("same_second_before", "x"), ST_OK);
    storage_flush(clock_now());
    ck_assert_int_eq(set("same_second_after", "x"), ST_OK);
    ck_assert_int_eq(check("before", "x"), 0);
    ck_assert_int_eq(check("same_second_before", "x"), 0);
    ck_assert_int_eq(check("same_second_after", "x"), 1);
    clock_set(NOW + 6);
    ck_assert_int_eq(check("same_second_after", "x"), 1);
    ck_assert_int_eq(set("later", "x"), ST_OK);
    ck_assert_int_eq(check("later", "x"), 1);
    ck_assert_uint_ge(stats().get_flushed, 2);
}
END_TEST

START_TEST(test_flush_delayed)
{
    /* memcached (with CAS): oldest_live = deadline - 1, so the flush shows one second
     * before the deadline and items stored before that second are gone */
    ck_assert_int_eq(set("a", "x"), ST_OK);
    storage_flush(clock_exptime(10));
    ck_assert_int_eq(check("a", "x"), 1);
    clock_set(NOW + 5);
    ck_assert_int_eq(set("b", "x"), ST_OK); /* stored before the deadline: also flushed */
    clock_set(NOW + 8);
    ck_assert_int_eq(check("a", "x"), 1);
    ck_assert_int_eq(check("b", "x"), 1);
    clock_set(NOW + 10);
    ck_assert_int_eq(set("c", "x"), ST_OK);
    ck_assert_int_eq(check("a", "x"), 0);
    ck_assert_int_eq(check("b", "x"), 0);
    ck_assert_int_eq(check("c", "x"), 1);
    /* an absolute time in the past (clock_exptime gives 1) flushes nothing, as memcached's
     * `flush_all 2592001`, and it cancels the pending flush mark */
    storage_flush(clock_exptime(2592001));
    ck_assert_int_eq(check("c", "x"), 1);
    storage_flush(clock_now());
    ck_assert_int_eq(check("c", "x"), 0);
}
END_TEST

START_TEST(test_flush_no_cas)
{
    storage_teardown();
    struct storage_config c = cfg_default();
    c.use_cas = false;
    start(c);
    ck_assert_int_eq(set("a", "x"), ST_OK);
    storage_flush(clock_now());
    ck_assert_int_eq(check("a", "x"), 0);
    clock_set(NOW + 1);
    ck_assert_int_eq(set("b", "x"), ST_OK);
    ck_assert_int_eq(check("b", "x"), 1);
}
END_TEST

/* ---- incr / decr ---- */

static enum st_result arith(const char *key, bool incr, uint64_t d, uint64_t *v)
{
    return storage_arith(key, strlen(key), incr, d, v, NULL);
}

START_TEST(test_arith)
{
    uint64_t v = 0, cas1 = 0, cas2 = 0;
    ck_assert_int_eq(arith("n", true, 1, &v), ST_NOT_FOUND);
    ck_assert_int_eq(store("n", "10", 2, NOW + 100, OP_SET, 0, &cas1), ST_OK);
    ck_assert_int_eq(storage_arith("n", 1, true, 5, &v, &cas2), ST_OK);
    ck_assert_uint_eq(v, 15);
    ck_assert_uint_ne(cas1, cas2);
    ck_assert_int_eq(arith("n", false, 6, &v), ST_OK);
    ck_assert_uint_eq(v, 9);
    ck_assert_int_eq(check("n", "9 "), 1); /* rewritten in place, space-padded */
    struct item *it = storage_get("n", 1);
    ck_assert_uint_eq(it->flags, 7);
    ck_assert_uint_eq(it->exptime, NOW + 100);
    item_put(it);
    /* in place: the item keeps its bits (fetched by the get above) and gets a new CAS */
    it = storage_get("n", 1);
    cas1 = item_cas(it);
    item_put(it);
    ck_assert_int_eq(storage_arith("n", 1, true, 1, &v, &cas2), ST_OK);
    ck_assert_uint_ne(cas1, cas2);
    ck_assert_int_eq(check("n", "10"), 1);
    it = storage_get("n", 1);
    ck_assert(item_iflags(it) & ITEM_FETCHED);
    ck_assert_uint_eq(item_cas(it), cas2);
    /* a reply still holds it: a new item, the held one unchanged */
    ck_assert_int_eq(arith("n", false, 1, &v), ST_OK);
    ck_assert_uint_eq(v, 9);
    ck_assert_int_eq(memcmp(item_value(it), "10", 2), 0);
    ck_assert_int_eq(check("n", "9"), 1);
    item_put(it);
    ck_assert_int_eq(set("n", "10"), ST_OK);
    ck_assert_int_eq(arith("n", false, 100, &v), ST_OK);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(set("n", "18446744073709551615"), ST_OK);
    ck_assert_int_eq(arith("n", true, 1, &v), ST_OK);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(set("n", "18446744073709551615"), ST_OK);
    ck_assert_int_eq(arith("n", true, 3, &v), ST_OK);
    ck_assert_uint_eq(v, 2);
    ck_assert_int_eq(set("n", "9223372036854775808"), ST_OK); /* >= 2^63 is fine */
    ck_assert_int_eq(arith("n", true, 1, &v), ST_OK);
    ck_assert_uint_eq(v, 9223372036854775809ull);
    static const char *good[] = {" 12", "12 ", "007", "12\r", "+12"};
    static const uint64_t goodv[] = {13, 13, 8, 13, 13};
    for (unsigned i = 0; i < sizeof(good) / sizeof(*good); i++) {
        ck_assert_int_eq(set("n", good[i]), ST_OK);
        ck_assert_int_eq(arith("n", true, 1, &v), ST_OK);
        ck_assert_uint_eq(v, goodv[i]);
    }
    static const char *bad[] = {"-5", "1a2", "", "18446744073709551616", "abc", " "};
    for (unsigned i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        ck_assert_int_eq(set("n", bad[i]), ST_OK);
        ck_assert_int_eq(arith("n", true, 1, &v), ST_NON_NUMERIC);
        ck_assert_int_eq(check("n", bad[i]), 1);
    }
}
END_TEST

/* ---- append / prepend ---- */

START_TEST(test_append_prepend)
{
    uint64_t c1 = 0, c2 = 0;
    ck_assert_int_eq(store("a", "x", 1, 0, OP_APPEND, 0, NULL), ST_NOT_STORED);
    ck_assert_int_eq(store("a", "x", 1, 0, OP_PREPEND, 0, NULL), ST_NOT_STORED);
    ck_assert_int_eq(store("a", "mid", 3, NOW + 50, OP_SET, 0, &c1), ST_OK);
    ck_assert_int_eq(store("a", "_end", 4, 0, OP_APPEND, 0, &c2), ST_OK);
    ck_assert_uint_ne(c1, c2);
    ck_assert_int_eq(store("a", "start_", 6, 0, OP_PREPEND, 0, NULL), ST_OK);
    ck_assert_int_eq(check("a", "start_mid_end"), 1);
    struct item *it = storage_get("a", 1);
    ck_assert_uint_eq(it->exptime, NOW + 50);
    ck_assert_uint_eq(it->flags, 7);
    item_put(it);
    /* growing past item_size_max is refused, the old value stays */
    size_t big = (1u << 20) - (48 + 8 + 1 + 1 + 4 + 2) - 100;
    char *v = malloc(big);
    memset(v, 'b', big);
    ck_assert_int_eq(store("b", v, big, 0, OP_SET, 0, NULL), ST_OK);
    ck_assert_int_eq(store("b", v, 200, 0, OP_APPEND, 0, NULL), ST_NOT_STORED);
    ck_assert_int_eq(store("b", v, 100, 0, OP_APPEND, 0, NULL), ST_OK);
    free(v);
}
END_TEST

START_TEST(test_setup_errors)
{
    storage_teardown();
    struct storage_config c = cfg_default();
    char err[256];
    c.shards = 3;
    ck_assert_int_eq(storage_setup(&c, err, sizeof(err)), -1);
    c = cfg_default();
    c.mem_limit = (size_t)64 << 30;
    ck_assert_int_eq(storage_setup(&c, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "32768"));
    c = cfg_default();
    ck_assert_int_eq(storage_setup(&c, err, sizeof(err)), 0);
}
END_TEST

static void slab_copy_cb(void *arg, const struct slab_class_stats *s)
{
    struct slab_class_stats *out = arg;
    if (s->used_chunks > 0)
        *out = *s;
}

START_TEST(test_class_stats)
{
    storage_teardown();
    struct storage_config c = cfg_default();
    c.mem_limit = 1u << 20; /* one page */
    start(c);
    ck_assert_int_eq(store("k00000", valn(100, 'a'), 100, NOW + 1000, OP_SET, 0, NULL), ST_OK);
    struct slab_class_stats cs = {0};
    storage_slab_stats(slab_copy_cb, &cs);
    ck_assert_uint_eq(cs.age, 0);
    clock_set(NOW + 7);
    storage_slab_stats(slab_copy_cb, &cs);
    ck_assert_uint_eq(cs.age, 7); /* idle time of the oldest item ahead of the hand */
    uint32_t per = cs.chunks_per_page;
    char key[32];
    for (uint32_t i = 1; i < per; i++) {
        snprintf(key, sizeof(key), "k%05u", i);
        ck_assert_int_eq(store(key, valn(100, 'a'), 100, 0, OP_SET, 0, NULL), ST_OK);
    }
    clock_set(NOW + 10);
    ck_assert_int_eq(store("new01", valn(100, 'b'), 100, 0, OP_SET, 0, NULL), ST_OK);
    storage_slab_stats(slab_copy_cb, &cs);
    ck_assert_uint_eq(cs.evicted, 1);
    ck_assert_uint_eq(cs.evicted_nonzero, 1); /* k00000 had an exptime */
    ck_assert_uint_eq(cs.evicted_time, 10);
    ck_assert_uint_eq(cs.age, 3); /* the items stored at NOW + 7 are next */
    storage_stats_reset();
    storage_slab_stats(slab_copy_cb, &cs);
    ck_assert_uint_eq(cs.evicted_nonzero, 0);
    ck_assert_uint_eq(cs.evicted_time, 0);
}
END_TEST

/* storage_walk_step: a walk in small steps sees every item present throughout exactly once,
 * while the table doubles (and migrates) between its steps; the class filter holds. */
struct walk_seen {
    uint8_t *count; /* by key number */
    int n;
    unsigned classes_seen;
};

static void walk_count_cb(void *arg, const struct storage_item_info *ii)
{
    struct walk_seen *w = arg;
    char buf[32];
    if (ii->nkey < 5 || ii->nkey >= sizeof(buf) || memcmp(ii->key, "walk:", 5) != 0)
        return;
    memcpy(buf, ii->key + 5, ii->nkey - 5);
    buf[ii->nkey - 5] = 0;
    int i = atoi(buf);
    if (i >= 0 && i < w->n && w->count[i] < 255)
        w->count[i]++;
    w->classes_seen |= 1u << (ii->cls & 31);
}

START_TEST(test_walk_steps_growth)
{
    storage_teardown();
    struct storage_config c = cfg_default();
    c.shards = 2;
    start(c);
    char key[32];
    const int n = 20000, more = 150000;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "walk:%d", i);
        ck_assert_int_eq(set(key, "v"), ST_OK);
    }
    struct walk_seen w = {.count = calloc((size_t)n, 1), .n = n};
    struct storage_walk cur;
    storage_walk_begin(&cur, NULL);
    int added = 0, steps = 0;
    bool saw_expanding = false;
    while (!storage_walk_step(&cur, 50, walk_count_cb, &w)) {
        steps++;
        for (int j = 0; j < 100 && added < more; j++, added++) { /* grow between steps */
            snprintf(key, sizeof(key), "grow:%d", added);
            ck_assert_int_eq(set(key, "v"), ST_OK);
        }
        saw_expanding |= stats().hash_is_expanding != 0;
        ck_assert_int_lt(steps, 1000000);
    }
    ck_assert(saw_expanding);
    for (int i = 0; i < n; i++)
        ck_assert_msg(w.count[i] == 1, "walk:%d seen %u times", i, w.count[i]);
    ck_assert_uint_eq(w.classes_seen, 1u << 1);

    /* a class filter that matches nothing sees nothing */
    memset(w.count, 0, (size_t)n);
    uint64_t mask[STORAGE_MAX_CLASS_ID / 64] = {0};
    mask[0] = 1u << 2;
    storage_walk_begin(&cur, mask);
    while (!storage_walk_step(&cur, 1000, walk_count_cb, &w))
        ;
    for (int i = 0; i < n; i++)
        ck_assert_uint_eq(w.count[i], 0);
    free(w.count);
}
END_TEST

static Suite *storage_suite(void)
{
    Suite *s = suite_create("storage");
    struct {
        const char *name;
        const TTest *tests[8];
    } cases[] = {
        {"ops", {test_set_get_delete, test_add_replace_cas, test_no_cas, test_setup_errors}},
        {"slab",
         {test_class_selection, test_hard_cap, test_eviction_order, test_no_evictions,
          test_automove, test_class_stats, test_single_page_kept}},
        {"table", {test_table_growth, test_hammer, test_hammer_growth, test_walk_steps_growth}},
        {"refs", {test_ref_survives_delete, test_ref_concurrent_delete}},
        {"batch",
         {test_get_batch, test_get_batch_one_shard, test_get_batch_touch, test_get_batch_growth,
          test_prefetch_hashed}},
        {"expiry", {test_expiry_rules, test_sweeper}},
        {"flush", {test_flush_now, test_flush_delayed, test_flush_no_cas}},
        {"arith", {test_arith}},
        {"concat", {test_append_prepend}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup_default, teardown);
        tcase_set_timeout(tc, 120);
        for (size_t j = 0; j < 8 && cases[i].tests[j]; j++)
            _tcase_add_test(tc, cases[i].tests[j], 0, 0, 0, 1);
        suite_add_tcase(s, tc);
    }
#ifdef CACHED_DEBUG
    TCase *dbg = tcase_create("debug_invariants");
    tcase_add_checked_fixture(dbg, setup_default, teardown);
    tcase_add_test_raise_signal(dbg, test_debug_double_put, SIGABRT);
    suite_add_tcase(s, dbg);
#endif
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(storage_suite());
    if (!getenv("CK_FORK")) /* fork mode unless CK_FORK=no (debugging) */
        srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int run = srunner_ntests_run(sr), failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("check_storage: %d passed, %d failed\n", run - failed, failed);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
