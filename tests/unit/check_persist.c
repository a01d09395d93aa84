/*
 * Unit tests of storage/persist.c (warm restart, -e): a "restart" here is storage_save,
 * storage_teardown and storage_setup again with the same memory file, in one process.
 * Round trips of items with every kind of history (TTLs, flags, append/prepend, incr, touch,
 * meta stale, fetched/HOT bits, flush), the threaded restore of many pages, and each reason a
 * saved state is refused (one note, an empty cache): no .meta, a consumed one, garbage,
 * empty, truncated or altered .meta, another run's .meta, an incompatible format, a truncated
 * memory file, a corrupt page, an item that does not fit its chunk, and each layout setting
 * (-m, -I, -f, -n, -C) changed. Each test has its own directory and file (fork mode).
 */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/meta_ops.h"
#include "storage/storage.h"
#include "tests/unit/unit.h"

/* storage/hash.c (storage-internal): the checksum the .meta uses, to forge consistent files */
uint64_t storage_hash(const void *key, size_t len);

#define FILE_HEADER 4096 /* persist.c: the memory file's header before the arena */
#define PAGE (1u << 20)

static char dir[64], path[128], meta[160];
static char note[512];
static bool restored;

static struct storage_config cfg_default(void)
{
    return (struct storage_config){
        .mem_limit = 32u << 20,
        .item_size_max = 1u << 20,
        .growth_factor = 1.25,
        .chunk_min = 48,
        .evictions = true,
        .use_cas = true,
        .shards = 4,
        .automove = false,
        .memory_file = path,
    };
}

static void each_setup(void)
{
    snprintf(dir, sizeof dir, "%s/check_persist.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/mem", dir);
    snprintf(meta, sizeof meta, "%s/mem.meta", dir);
}

static void each_teardown(void)
{
    storage_teardown();
    unlink(meta);
    unlink(path);
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.tmp", meta);
    unlink(tmp);
    rmdir(dir);
}

/* storage_setup with cfg; the note (or "") and whether it restored go to note / restored. */
static void start(struct storage_config cfg)
{
    char err[256] = "";
    clock_setup();
    ck_assert_msg(storage_setup(&cfg, err, sizeof err) == 0, "setup: %s", err);
    if (!storage_persist_note(note, sizeof note, &restored))
        note[0] = '\0';
}

static void save(void)
{
    char err[256] = "";
    uint64_t n = 0;
    ck_assert_msg(storage_save(err, sizeof err, &n) == 0, "save: %s", err);
}

/* SIGUSR1 and a start with the same settings. */
static void restart(struct storage_config cfg)
{
    save();
    storage_teardown();
    start(cfg);
}

static uint64_t store_x(const char *key, const char *val, uint32_t flags, rel_time_t exp,
                        enum store_op op)
{
    enum st_result r;
    struct item *it = item_alloc(key, strlen(key), flags, exp, (uint32_t)strlen(val), &r);
    ck_assert_ptr_nonnull(it);
    memcpy(item_value(it), val, strlen(val));
    uint64_t cas = 0;
    ck_assert_int_eq(storage_store(it, op, 0, &cas), ST_OK);
    item_put(it);
    return cas;
}

static uint64_t set(const char *key, const char *val)
{
    return store_x(key, val, 0, 0, OP_SET);
}

/* What a client would see of key: 1 with this value (flags into *flags), 0 missing. */
static int value_is(const char *key, const char *val)
{
    struct item *it = storage_get(key, strlen(key));
    if (!it)
        return 0;
    int ok = it->nbytes == strlen(val) && memcmp(item_value(it), val, it->nbytes) == 0;
    item_put(it);
    ck_assert_msg(ok, "%s: another value", key);
    return 1;
}

static struct meta_peek peek(const char *key)
{
    struct meta_peek p;
    memset(&p, 0, sizeof p);
    struct item *it = storage_meta_peek(key, strlen(key), &p);
    ck_assert_msg(it != NULL, "%s missing", key);
    item_put(it);
    return p;
}

static size_t count_cb_n;
static void count_cb(void *arg, const struct storage_item_info *ii)
{
    (void)arg;
    (void)ii;
    count_cb_n++;
}

/* Live items found in the table by a walk; the stats must agree. */
static size_t items(void)
{
    struct storage_walk w;
    count_cb_n = 0;
    storage_walk_begin(&w, NULL);
    while (!storage_walk_step(&w, 1000, count_cb, NULL))
        ;
    struct storage_stats st;
    storage_stats(&st);
    ck_assert_uint_eq(st.curr_items, count_cb_n);
    return count_cb_n;
}

/* ---- files, read and forged ---- */

static unsigned char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spill(const char *p, const void *b, size_t len)
{
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(b, 1, len, f), len);
    fclose(f);
}

/* The .meta's closing checksum made right again after an edit. */
static void meta_reseal(unsigned char *b, size_t len)
{
    uint64_t s = storage_hash(b, len - 8);
    memcpy(b + len - 8, &s, 8);
}

/* A saved cache of a few items, stopped: the files are ready for a start. */
static void saved_cache(void)
{
    start(cfg_default());
    ck_assert_str_eq(note, "");
    set("alpha", "one");
    set("beta", "two");
    save();
    storage_teardown();
}

/* The start that follows must refuse the saved state: an empty cache and one note with
 * `why` in it; the memory file is usable afterwards. */
static void start_refused(struct storage_config cfg, const char *why)
{
    start(cfg);
    ck_assert_msg(!restored, "restored: %s", note);
    ck_assert_msg(strstr(note, why) != NULL, "note \"%s\" lacks \"%s\"", note, why);
    ck_assert_uint_eq(items(), 0);
    ck_assert_int_eq(value_is("alpha", "one"), 0);
    set("gamma", "three");
    ck_assert_int_eq(value_is("gamma", "three"), 1);
    ck_assert_int_ne(access(meta, F_OK), 0); /* consumed */
}

/* ---- round trips ---- */

START_TEST(test_fresh_file)
{
    start(cfg_default());
    ck_assert_str_eq(note, "");
    ck_assert(!restored);
    set("k", "v");
    ck_assert_int_eq(value_is("k", "v"), 1);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, FILE_HEADER + (32u << 20));
}
END_TEST

START_TEST(test_round_trip_history)
{
    struct storage_config cfg = cfg_default();
    start(cfg);
    rel_time_t now = clock_now();
    uint64_t c_plain = set("plain", "value");
    store_x("flags", "f", 0xdeadbeef, 0, OP_SET);
    store_x("ttl_long", "L", 0, now + 3600, OP_SET);
    store_x("ttl_abs", "A", 7, clock_exptime((int64_t)time(NULL) + 7200), OP_SET);
    store_x("ttl_gone", "G", 0, 1, OP_SET); /* already expired */
    set("app", "mid");
    store_x("app", "-end", 0, 0, OP_APPEND);
    store_x("app", "start-", 0, 0, OP_PREPEND);
    set("counter", "41");
    uint64_t v = 0;
    ck_assert_int_eq(storage_arith("counter", 7, true, 1, &v, NULL), ST_OK);
    ck_assert_uint_eq(v, 42);
    set("touched", "t");
    struct item *it = storage_touch("touched", 7, now + 600);
    ck_assert_ptr_nonnull(it);
    item_put(it);
    set("stale", "s");
    ck_assert_int_eq(storage_meta_delete("stale", 5, false, 0, true, false, 0), ST_OK);
    set("hot", "h");
    for (int i = 0; i < 3; i++) /* fetched twice: HOT (bit 6 of a linked item) */
        ck_assert_int_eq(value_is("hot", "h"), 1);
    set("deleted", "d");
    ck_assert_int_eq(storage_delete("deleted", 7, 0), ST_OK);

    const char *keys[] = {"plain", "flags", "ttl_long", "ttl_abs", "app",
                          "counter", "touched", "stale", "hot"};
    enum { NK = sizeof keys / sizeof *keys };
    struct meta_peek before[NK];
    uint64_t max_cas = 0;
    for (int i = 0; i < NK; i++) {
        before[i] = peek(keys[i]);
        if (before[i].cas > max_cas)
            max_cas = before[i].cas;
    }
    ck_assert_uint_eq(before[0].cas, c_plain);

    restart(cfg);
    ck_assert_msg(restored, "not restored: %s", note);
    ck_assert_msg(strstr(note, "restored 9 items") != NULL, "%s", note);
    ck_assert_msg(strstr(note, "1 more expired") != NULL, "%s", note);
    ck_assert_uint_eq(items(), NK);
    for (int i = 0; i < NK; i++) {
        struct meta_peek p = peek(keys[i]);
        ck_assert_msg(p.cas == before[i].cas, "%s: cas %llu, was %llu", keys[i],
                      (unsigned long long)p.cas, (unsigned long long)before[i].cas);
        /* same second (no time passed): the same clock values */
        ck_assert_msg((p.exptime == 0) == (before[i].exptime == 0), "%s exptime", keys[i]);
        if (p.exptime) {
            int64_t d = (int64_t)p.exptime - (int64_t)before[i].exptime;
            ck_assert_msg(d >= -1 && d <= 1, "%s: ttl moved %lld s", keys[i], (long long)d);
        }
        ck_assert_msg(((p.iflags ^ before[i].iflags) & (ITEM_LINKED | ITEM_STALE | ITEM_FETCHED |
                                                          ITEM_HOT | ITEM_CAS)) == 0,
                      "%s: iflags %x, were %x", keys[i], p.iflags, before[i].iflags);
        ck_assert_uint_eq(p.cls, before[i].cls);
    }
    ck_assert_int_eq(value_is("plain", "value"), 1);
    ck_assert_int_eq(value_is("app", "start-mid-end"), 1);
    ck_assert_int_eq(value_is("counter", "42"), 1);
    ck_assert_int_eq(value_is("ttl_gone", "G"), 0);
    ck_assert_int_eq(value_is("deleted", "d"), 0);
    it = storage_get("flags", 5);
    ck_assert_ptr_nonnull(it);
    ck_assert_uint_eq(it->flags, 0xdeadbeef);
    item_put(it);
    ck_assert(peek("stale").iflags & ITEM_STALE);
    ck_assert(peek("hot").iflags & ITEM_HOT);
    /* the CAS counter continues above every restored CAS */
    ck_assert_uint_gt(set("new", "n"), max_cas);
    ck_assert_int_eq(storage_arith("counter", 7, true, 8, &v, NULL), ST_OK);
    ck_assert_uint_eq(v, 50);
    /* the saved state was consumed: a crash now restarts empty */
    storage_teardown();
    start(cfg);
    ck_assert(!restored);
    ck_assert_msg(strstr(note, "not saved with SIGUSR1") != NULL, "%s", note);
    ck_assert_uint_eq(items(), 0);
}
END_TEST

/* Time passes while the server is down: TTLs count down, what ran out is gone. */
START_TEST(test_downtime)
{
    struct storage_config cfg = cfg_default();
    start(cfg);
    rel_time_t now = clock_now();
    store_x("short", "s", 0, now + 50, OP_SET);
    store_x("long", "l", 0, now + 1000, OP_SET);
    set("never", "n");
    save();
    storage_teardown();
    clock_setup();
    clock_process_started += 200; /* this start happens 200 s of wall time after the save */
    char err[256];
    ck_assert_int_eq(storage_setup(&cfg, err, sizeof err), 0);
    ck_assert(storage_persist_note(note, sizeof note, &restored));
    ck_assert_msg(restored, "%s", note);
    ck_assert_int_eq(value_is("short", "s"), 0);
    ck_assert_int_eq(value_is("never", "n"), 1);
    struct meta_peek p = peek("long");
    int64_t left = (int64_t)p.exptime - (int64_t)clock_now();
    ck_assert_msg(left >= 790 && left <= 801, "ttl left %lld, want ~800", (long long)left);
}
END_TEST

/* A flush_all before the save still hides what it flushed (those items are dropped); a
 * delayed one still pending carries over. */
START_TEST(test_flush_carries_over)
{
    struct storage_config cfg = cfg_default();
    start(cfg);
    set("old", "o");
    storage_flush(clock_now());
    clock_set(clock_now() + 1);
    set("after", "a");
    restart(cfg);
    ck_assert_msg(restored, "%s", note);
    ck_assert_msg(strstr(note, "restored 1 items") && strstr(note, "1 more expired or were "
                                                                    "flushed"),
                  "%s", note);
    ck_assert_int_eq(value_is("old", "o"), 0);
    ck_assert_int_eq(value_is("after", "a"), 1);
    storage_flush(clock_now() + 3600);
    restart(cfg);
    ck_assert_msg(restored, "%s", note);
    ck_assert_int_eq(value_is("after", "a"), 1);
    clock_set(clock_now() + 3601);
    ck_assert_int_eq(value_is("after", "a"), 0);
}
END_TEST

/* Enough pages for the two restore threads; every item back with its own value. */
START_TEST(test_round_trip_many)
{
    struct storage_config cfg = cfg_default();
    start(cfg);
    char key[32], val[600];
    enum { N = 30000 };
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key:%d", i);
        int n = snprintf(val, sizeof val, "%0*d", 50 + (i % 500), i);
        (void)n;
        set(key, val);
    }
    ck_assert_uint_eq(items(), N);
    for (int i = 0; i < N; i += 3) { /* holes: free chunks between items */
        snprintf(key, sizeof key, "key:%d", i);
        ck_assert_int_eq(storage_delete(key, strlen(key), 0), ST_OK);
    }
    restart(cfg);
    ck_assert_msg(restored, "%s", note);
    ck_assert_uint_eq(items(), N - (N + 2) / 3);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key:%d", i);
        snprintf(val, sizeof val, "%0*d", 50 + (i % 500), i);
        ck_assert_int_eq(value_is(key, val), i % 3 ? 1 : 0);
    }
    /* the free chunks are usable: fill the holes again, restart once more */
    for (int i = 0; i < N; i += 3) {
        snprintf(key, sizeof key, "key:%d", i);
        snprintf(val, sizeof val, "%0*d", 50 + (i % 500), i);
        set(key, val);
    }
    restart(cfg);
    ck_assert_msg(restored, "%s", note);
    ck_assert_uint_eq(items(), N);
    for (int i = 0; i < N; i += 7) {
        snprintf(key, sizeof key, "key:%d", i);
        snprintf(val, sizeof val, "%0*d", 50 + (i % 500), i);
        ck_assert_int_eq(value_is(key, val), 1);
    }
}
END_TEST

START_TEST(test_no_cas_round_trip)
{
    struct storage_config cfg = cfg_default();
    cfg.use_cas = false;
    start(cfg);
    set("k", "v");
    restart(cfg);
    ck_assert_msg(restored, "%s", note);
    ck_assert_int_eq(value_is("k", "v"), 1);
}
END_TEST

/* ---- refusals ---- */

START_TEST(test_refuse_not_saved)
{
    start(cfg_default());
    set("alpha", "one");
    storage_teardown(); /* kill -9: no .meta */
    start_refused(cfg_default(), "not saved with SIGUSR1");
}
END_TEST

START_TEST(test_refuse_garbage_meta)
{
    saved_cache();
    size_t len;
    unsigned char *b = slurp(meta, &len);
    memset(b, 'x', len);
    spill(meta, b, len);
    free(b);
    start_refused(cfg_default(), "bad magic");
}
END_TEST

START_TEST(test_refuse_empty_meta)
{
    saved_cache();
    spill(meta, "", 0);
    start_refused(cfg_default(), "no description this build wrote");
}
END_TEST

START_TEST(test_refuse_truncated_meta)
{
    saved_cache();
    size_t len;
    unsigned char *b = slurp(meta, &len);
    spill(meta, b, len - 9);
    free(b);
    start_refused(cfg_default(), "corrupt");
}
END_TEST

START_TEST(test_refuse_altered_meta)
{
    saved_cache();
    size_t len;
    unsigned char *b = slurp(meta, &len);
    b[len / 2] ^= 0x10;
    spill(meta, b, len);
    free(b);
    start_refused(cfg_default(), "checksum mismatch");
}
END_TEST

START_TEST(test_refuse_format)
{
    saved_cache();
    size_t len;
    unsigned char *b = slurp(meta, &len);
    uint32_t format;
    memcpy(&format, b + 8, 4);
    format += 1;
    memcpy(b + 8, &format, 4);
    meta_reseal(b, len);
    spill(meta, b, len);
    free(b);
    start_refused(cfg_default(), "incompatible cached version");
}
END_TEST

/* A .meta of an earlier run of the same file (kept aside and put back) never matches. */
START_TEST(test_refuse_other_run)
{
    saved_cache();
    size_t len;
    unsigned char *old = slurp(meta, &len);
    start(cfg_default());
    ck_assert_msg(restored, "%s", note);
    set("alpha", "changed");
    save();
    storage_teardown();
    spill(meta, old, len);
    free(old);
    start_refused(cfg_default(), "does not belong");
}
END_TEST

START_TEST(test_refuse_truncated_file)
{
    saved_cache();
    ck_assert_int_eq(truncate(path, FILE_HEADER + (8u << 20)), 0);
    start_refused(cfg_default(), "truncated or resized");
}
END_TEST

/* A byte of a value changed in the file: its page fails its checksum. */
START_TEST(test_refuse_corrupt_page)
{
    saved_cache();
    size_t len;
    unsigned char *b = slurp(path, &len);
    unsigned char *hit = memmem(b + FILE_HEADER, len - FILE_HEADER, "alphaone", 8);
    ck_assert_ptr_nonnull(hit);
    int fd = open(path, O_WRONLY);
    ck_assert_int_eq(pwrite(fd, "O", 1, (off_t)(hit - b) + 5), 1);
    close(fd);
    free(b);
    start_refused(cfg_default(), "fails its checksum");
}
END_TEST

/* Checksums that agree with an impossible item (forged): still refused, never linked. */
START_TEST(test_refuse_item_not_fitting)
{
    saved_cache();
    size_t flen, mlen;
    unsigned char *f = slurp(path, &flen), *m = slurp(meta, &mlen);
    unsigned char *hit = memmem(f + FILE_HEADER, flen - FILE_HEADER, "alphaone", 8);
    ck_assert_ptr_nonnull(hit);
    size_t pg = (size_t)(hit - f - FILE_HEADER) / PAGE;
    unsigned char *page = f + FILE_HEADER + pg * PAGE;
    uint64_t old = storage_hash(page, PAGE);
    /* the item header is 32 bytes (CAS) before the key: nbytes at offset 16 */
    struct item *it = (struct item *)(hit - 32);
    ck_assert_uint_eq(it->nkey, 5);
    it->nbytes = 4u << 20;
    uint64_t now = storage_hash(page, PAGE);
    unsigned char *slot = memmem(m, mlen - 8, &old, 8);
    ck_assert_ptr_nonnull(slot);
    memcpy(slot, &now, 8);
    meta_reseal(m, mlen);
    int fd = open(path, O_WRONLY);
    ck_assert_int_eq(pwrite(fd, page, PAGE, (off_t)(FILE_HEADER + pg * PAGE)), PAGE);
    close(fd);
    spill(meta, m, mlen);
    free(f);
    free(m);
    start_refused(cfg_default(), "does not fit its chunk");
}
END_TEST

START_TEST(test_refuse_settings)
{
    const char *flag[] = {"-m", "-I", "-f", "-n", "-C"};
    for (size_t i = 0; i < sizeof flag / sizeof *flag; i++) {
        saved_cache();
        struct storage_config c = cfg_default();
        switch (i) {
        case 0: c.mem_limit = 16u << 20; break;
        case 1: c.item_size_max = 2u << 20; break;
        case 2: c.growth_factor = 1.5; break;
        case 3: c.chunk_min = 64; break;
        default: c.use_cas = false; break;
        }
        char why[32];
        snprintf(why, sizeof why, "saved with %s", flag[i]);
        if (i == 4)
            snprintf(why, sizeof why, "CAS on/off must not change");
        start_refused(c, why);
        storage_teardown();
        unlink(path); /* a different -m sizes the file differently: start over */
    }
}
END_TEST

/* What may change between runs: the number of shards (the tables are rebuilt), automove,
 * evictions. */
START_TEST(test_allowed_changes)
{
    saved_cache();
    struct storage_config c = cfg_default();
    c.shards = 16;
    c.automove = true;
    c.evictions = false;
    start(c);
    ck_assert_msg(restored, "%s", note);
    ck_assert_int_eq(value_is("alpha", "one"), 1);
    ck_assert_int_eq(value_is("beta", "two"), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("persist");
    const struct unit_case cases[] = {
        {"fresh_file", test_fresh_file},
        {"round_trip_history", test_round_trip_history},
        {"downtime", test_downtime},
        {"flush_carries_over", test_flush_carries_over},
        {"round_trip_many", test_round_trip_many},
        {"no_cas_round_trip", test_no_cas_round_trip},
        {"refuse_not_saved", test_refuse_not_saved},
        {"refuse_garbage_meta", test_refuse_garbage_meta},
        {"refuse_empty_meta", test_refuse_empty_meta},
        {"refuse_truncated_meta", test_refuse_truncated_meta},
        {"refuse_altered_meta", test_refuse_altered_meta},
        {"refuse_format", test_refuse_format},
        {"refuse_other_run", test_refuse_other_run},
        {"refuse_truncated_file", test_refuse_truncated_file},
        {"refuse_corrupt_page", test_refuse_corrupt_page},
        {"refuse_item_not_fitting", test_refuse_item_not_fitting},
        {"refuse_settings", test_refuse_settings},
        {"allowed_changes", test_allowed_changes},
    };
    unit_add_cases(s, cases, sizeof cases / sizeof *cases, each_setup, each_teardown);
    return unit_run(s, "check_persist");
}
