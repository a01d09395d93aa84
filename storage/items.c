/*
 * items: the sharded hash table and every keyed operation (get, store, touch, delete,
 * arith), flush, the expiry sweeper, incremental table growth and the storage counters.
 *
 * A key's 64-bit hash picks its shard (top bits) and bucket (low bits). Each shard has its
 * own mutex, table and counters, so hits take no global lock. Chains are linked through
 * item->hnext (32-bit arena refs). A shard grows by doubling: the old table stays until its
 * buckets have moved, a few per write and more per storage_maintenance_step(); lookups pick
 * the old or the new table by comparing the old bucket index with migrate_pos.
 *
 * The table holds one reference on every linked item; callers get one more. An item is freed
 * when the last reference goes, so replies can be written from an item replaced meanwhile.
 */
#include "storage/internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "storage/meta_ops.h" /* ITEM_KEY_BINARY, kept across incr/decr */
#include "storage/persist.h"

struct storage_globals stg;
_Thread_local struct shard *tl_held_shard;

/* buckets moved per write while a shard grows, and per shard per maintenance step */
#define MIGRATE_PER_OP 2
#define MIGRATE_PER_STEP 1024
/* initial buckets over all shards (like memcached's default hashpower 16) */
#define TABLE_INITIAL_POWER 16

void shard_lock(struct shard *sh)
{
    /* trylock first: a wait is counted (stats shard_lock_waits) under the lock it waited for */
    if (!slock_trylock(&sh->lock)) {
        slock_lock(&sh->lock);
        sh->st.lock_waits++;
    }
    shard_owner_set(sh);
    tl_held_shard = sh;
}

void shard_unlock(struct shard *sh)
{
    ST_ASSERT(shard_held(sh));
    tl_held_shard = NULL;
    shard_owner_clear(sh);
    slock_unlock(&sh->lock);
}

#ifdef CACHED_DEBUG
_Thread_local char st_thread_token;

void st_assert_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "cached: invariant failed at %s:%d: %s\n", file, line, what);
    abort();
}
#endif

_Thread_local uint8_t tl_find_miss;

enum storage_miss storage_last_miss(void)
{
    return (enum storage_miss)tl_find_miss;
}

uint64_t storage_next_cas(void)
{
    return atomic_fetch_add_explicit(&stg.cas_next, 1, memory_order_relaxed);
}

static uint64_t mask_of(uint32_t power)
{
    return ((uint64_t)1 << power) - 1;
}

static uint32_t *bucket_of(struct shard *sh, uint64_t hv)
{
    if (sh->old) {
        uint32_t oi = (uint32_t)(hv & mask_of(sh->old_power));
        if (oi >= sh->migrate_pos)
            return &sh->old[oi];
    }
    return &sh->table[hv & mask_of(sh->power)];
}

static void migrate_one(struct shard *sh)
{
    uint32_t ref = sh->old[sh->migrate_pos];
    sh->old[sh->migrate_pos] = 0;
    while (ref) {
        struct item *it = ref_item(ref);
        uint32_t next = it->hnext;
        uint64_t hv = storage_hash(item_key(it), it->nkey);
        uint32_t *b = &sh->table[hv & mask_of(sh->power)];
        it->hnext = *b;
        *b = ref;
        ref = next;
    }
    if (++sh->migrate_pos >= ((uint64_t)1 << sh->old_power)) {
        mem_free(sh->old);
        sh->old = NULL;
        sh->migrate_pos = 0;
    }
}

static void migrate_some(struct shard *sh, unsigned n)
{
    while (n-- && sh->old)
        migrate_one(sh);
}

static void maybe_grow(struct shard *sh)
{
    if (sh->old || sh->power >= 30 || sh->count <= (3ull << sh->power) / 2)
        return;
    sh->old = sh->table;
    sh->old_power = sh->power;
    sh->migrate_pos = 0;
    sh->power++;
    sh->table = mem_calloc((size_t)1 << sh->power, sizeof(uint32_t));
}

enum item_state item_state_at(const struct item *it, rel_time_t now)
{
    if (it->exptime != 0 && it->exptime <= now)
        return ITEM_EXPIRED;
    /* memcached's rule: once oldest_live has passed, items last stored or used at or before
     * it are gone, and so are items whose CAS predates an immediate flush (same second). */
    rel_time_t ol = atomic_load_explicit(&stg.oldest_live, memory_order_relaxed);
    if (ol != 0 && ol <= now) {
        if (it->atime <= ol)
            return ITEM_FLUSHED;
        uint64_t oc = atomic_load_explicit(&stg.oldest_cas, memory_order_relaxed);
        uint64_t cas = item_cas(it);
        if (oc != 0 && cas != 0 && cas < oc)
            return ITEM_FLUSHED;
    }
    return ITEM_LIVE;
}

/* Bookkeeping once it has left its chain. */
static void unlinked(struct shard *sh, struct item *it)
{
    it->hnext = 0;
    item_flag_clear(it, ITEM_LINKED | ITEM_HOT); /* bit 6 must not read as ITEM_FREE */
    sh->count--;
    sh->st.curr_items--;
    sh->st.bytes -= item_total_size(it);
    sizes_note(it, -1);
}

void do_item_unlink_keepref(struct shard *sh, struct item *it, uint64_t hv)
{
    ST_ASSERT(shard_held(sh));
    uint32_t ref = item_ref_of(it);
    uint32_t *p = bucket_of(sh, hv);
    while (*p && *p != ref)
        p = &ref_item(*p)->hnext;
    if (*p)
        *p = it->hnext;
    unlinked(sh, it);
}

void do_item_unlink(struct shard *sh, struct item *it, uint64_t hv)
{
    ST_ASSERT(shard_held(sh));
    do_item_unlink_keepref(sh, it, hv);
    item_put(it);
}

void do_item_link(struct shard *sh, struct item *it, uint64_t hv)
{
    ST_ASSERT(shard_held(sh));
    if (stg.cfg.use_cas)
        item_set_cas(it, storage_next_cas());
    it->atime = clock_now();
    uint32_t *b = bucket_of(sh, hv);
    it->hnext = *b;
    *b = item_ref_of(it);
    item_ref(it);
    atomic_fetch_or_explicit(&it->iflags, ITEM_LINKED, memory_order_release);
    sh->count++;
    sh->st.curr_items++;
    sh->st.total_items++;
    sh->st.bytes += item_total_size(it);
    sizes_note(it, 1);
    maybe_grow(sh);
    if (sh->old) /* growing: this write moves a few buckets (a call per set otherwise) */
        migrate_some(sh, MIGRATE_PER_OP);
}

void do_item_move(struct shard *sh, struct item *old, struct item *it, uint64_t hv)
{
    ST_ASSERT(shard_held(sh));
    uint32_t ref = item_ref_of(old);
    uint32_t *p = bucket_of(sh, hv);
    while (*p && *p != ref)
        p = &ref_item(*p)->hnext;
    if (*p)
        *p = item_ref_of(it);
}

void do_item_replace(struct shard *sh, struct item *old, struct item *it, uint64_t hv)
{
    ST_ASSERT(shard_held(sh));
    do_item_unlink(sh, old, hv);
    do_item_link(sh, it, hv);
}

struct item *do_item_find(struct shard *sh, const char *key, size_t nkey, uint64_t hv)
{
    ST_ASSERT(shard_held(sh));
    struct item *it = NULL;
    for (uint32_t ref = *bucket_of(sh, hv); ref; ref = it->hnext) {
        it = ref_item(ref);
        if (it->nkey == nkey && memcmp(item_key(it), key, nkey) == 0)
            goto found;
    }
    tl_find_miss = STORAGE_MISS_ABSENT;
    return NULL;
found:;
    enum item_state s = item_state_at(it, clock_now());
    if (s == ITEM_LIVE) {
        tl_find_miss = STORAGE_MISS_ABSENT;
        return it;
    }
    if (s == ITEM_EXPIRED) {
        sh->st.get_expired++;
        tl_find_miss = STORAGE_MISS_EXPIRED;
    } else {
        sh->st.get_flushed++;
        tl_find_miss = STORAGE_MISS_FLUSHED;
    }
    slab_count_reclaim(it, false);
    do_item_unlink(sh, it, hv);
    return NULL;
}

/* ---- lifecycle ---- */

static unsigned log2u(uint64_t v)
{
    unsigned n = 0;
    while (v > 1) {
        v >>= 1;
        n++;
    }
    return n;
}

int storage_setup(const struct storage_config *cfg, char *errbuf, size_t errlen)
{
    if (stg.ready) {
        snprintf(errbuf, errlen, "storage is already set up");
        return -1;
    }
    uint32_t nshards = cfg->shards ? cfg->shards : 16;
    if ((nshards & (nshards - 1)) != 0 || nshards > 65536) {
        snprintf(errbuf, errlen, "hash shards must be a power of two up to 65536, not %u",
                 cfg->shards);
        return -1;
    }
    memset(&stg, 0, sizeof(stg));
    stg.cfg = *cfg;
    stg.header_size = (uint32_t)sizeof(struct item) + (cfg->use_cas ? 8 : 0);
    if (slab_setup(errbuf, errlen) != 0) {
        slab_teardown();
        return -1;
    }
    stg.nshards = nshards;
    unsigned bits = log2u(nshards);
    stg.shard_shift = 64 - bits;
    unsigned initial = cfg->hash_power_init ? cfg->hash_power_init : TABLE_INITIAL_POWER;
    unsigned power = initial > bits + 8 ? initial - bits : 8;
    stg.shards = mem_calloc(nshards, sizeof(struct shard));
    for (uint32_t i = 0; i < nshards; i++) {
        struct shard *sh = &stg.shards[i];
        slock_init(&sh->lock);
        sh->power = power;
        sh->table = mem_calloc((size_t)1 << power, sizeof(uint32_t));
    }
    atomic_store(&stg.cas_next, 1);
    atomic_store(&stg.oldest_live, 0);
    atomic_store(&stg.oldest_cas, 0);
    pthread_mutex_init(&stg.bg_lock, NULL);
    stg.drain_page = -1;
    atomic_store(&stg.automove, cfg->automove ? 1u : 0u);
    stg.ready = true;
    /* -e: bring back the items of a clean save, or start the file empty (persist.c) */
    if (cfg->memory_file != NULL && persist_restore() < 0) {
        snprintf(errbuf, errlen, "cannot reset the memory file %s", cfg->memory_file);
        storage_teardown();
        return -1;
    }
    return 0;
}

void storage_teardown(void)
{
    if (!stg.ready)
        return;
    for (uint32_t i = 0; i < stg.nshards; i++) {
        struct shard *sh = &stg.shards[i];
        mem_free(sh->table);
        mem_free(sh->old);
        slock_destroy(&sh->lock);
    }
    mem_free(stg.shards);
    stg.shards = NULL;
    slab_teardown();
    sizes_teardown();
    pthread_mutex_destroy(&stg.bg_lock);
    stg.ready = false;
}

/* ---- items ---- */

bool item_fits(size_t nkey, uint32_t flags, size_t nbytes)
{
    /* memcached's own accounting (48-byte header, CAS, the key's NUL, a 4-byte flags suffix
     * when flags are set, the value's "\r\n"), so that -I admits exactly the values memcached
     * admits: a client tuned to memcached's limit sees the same answers. Our items are smaller,
     * so whatever fits here fits a page. */
    size_t mc = 48 + (stg.cfg.use_cas ? 8 : 0) + nkey + 1 + (flags ? 4 : 0) + 2;
    return nbytes <= stg.cfg.item_size_max && mc + nbytes <= stg.cfg.item_size_max;
}

uint64_t storage_key_hash(const char *key, size_t nkey)
{
    return storage_hash(key, nkey);
}

struct item *item_alloc(const char *key, size_t nkey, uint32_t flags, rel_time_t exptime,
                        uint32_t nbytes, enum st_result *res)
{
    return item_alloc_hv(key, nkey, storage_hash(key, nkey), flags, exptime, nbytes, res);
}

struct item *item_alloc_hv(const char *key, size_t nkey, uint64_t hv, uint32_t flags,
                           rel_time_t exptime, uint32_t nbytes, enum st_result *res)
{
    size_t ntotal = stg.header_size + nkey + (size_t)nbytes;
    if (nkey == 0 || nkey > KEY_MAX_LENGTH || !item_fits(nkey, flags, nbytes)) {
        *res = ST_TOO_LARGE;
        return NULL;
    }
    /* the hash decides the item's place in the eviction window (slab.c) */
    struct item *it = slab_alloc(ntotal, hv, res);
    if (!it)
        return NULL;
    it->hnext = 0;
    it->exptime = exptime;
    it->atime = clock_now();
    it->flags = flags;
    it->nbytes = nbytes;
    it->nkey = (uint8_t)nkey;
    atomic_store_explicit(&it->iflags, stg.cfg.use_cas ? ITEM_CAS : 0, memory_order_relaxed);
    item_set_cas(it, 0);
    memcpy(item_key(it), key, nkey);
    return it;
}

void item_put(struct item *it)
{
    if (!it)
        return;
    uint16_t before = atomic_fetch_sub_explicit(&it->refcount, 1, memory_order_acq_rel);
    ST_ASSERT(before > 0); /* a reference dropped that was never taken */
    if (before == 1)
        slab_free(it);
}

enum st_result do_item_concat(struct shard *sh, struct item *old, struct item *it, bool append,
                              uint64_t hv, uint64_t *cas_out)
{
    ST_ASSERT(shard_held(sh));
    size_t nb = (size_t)old->nbytes + it->nbytes;
    if (!item_fits(it->nkey, old->flags, nb))
        return ST_NOT_STORED;
    enum st_result r;
    item_ref(old); /* keeps the eviction this allocation may run off it */
    struct item *nit = item_alloc_hv(item_key(it), it->nkey, hv, old->flags, old->exptime,
                                     (uint32_t)nb, &r);
    if (!nit) {
        item_put(old);
        return r == ST_TOO_LARGE ? ST_NOT_STORED : r;
    }
    char *v = item_value(nit);
    const struct item *first = append ? old : it, *second = append ? it : old;
    memcpy(v, item_value(first), first->nbytes);
    memcpy(v + first->nbytes, item_value(second), second->nbytes);
    nit->exptime = old->exptime;
    do_item_replace(sh, old, nit, hv);
    if (cas_out)
        *cas_out = item_cas(nit);
    item_put(old);
    item_put(nit);
    return ST_OK;
}

enum st_result do_item_store(struct shard *sh, struct item *it, uint64_t hv, enum store_op op,
                             uint64_t cas, bool meta, bool set_stale, uint64_t *cas_out)
{
    ST_ASSERT(shard_held(sh));
    enum st_result res = ST_OK;
    struct item *old = do_item_find(sh, item_key(it), it->nkey, hv);
    switch (op) {
    case OP_SET:
        break;
    case OP_ADD:
        if (old) {
            /* memcached promotes the existing item (do_item_update: last access, LRU)
             * without marking it fetched */
            item_flag_set(old, ITEM_ACTIVE);
            old->atime = clock_now();
            res = ST_NOT_STORED;
        }
        break;
    case OP_REPLACE:
        if (!old)
            res = ST_NOT_STORED;
        break;
    case OP_CAS:
        if (!old) {
            res = ST_NOT_FOUND;
        } else if (!meta) {
            if (item_cas(old) != cas)
                res = ST_EXISTS;
        } else if (item_cas(old) == cas && cas != 0) {
            break;
        } else if (set_stale && cas != 0 && cas < item_cas(old)) {
            /* An invalidated writer may still fill in its (older) value: it is served as
             * stale, keeps the old TTL and any token already handed out. */
            it->exptime = old->exptime;
            item_flag_set(it, ITEM_STALE | (item_iflags(old) & ITEM_TOKEN));
        } else {
            res = ST_EXISTS;
        }
        break;
    case OP_APPEND:
    case OP_PREPEND:
        if (!old)
            return ST_NOT_STORED;
        if (meta && cas != 0 && item_cas(old) != cas)
            return ST_EXISTS;
        return do_item_concat(sh, old, it, op == OP_APPEND, hv, cas_out);
    }
    if (res == ST_OK) {
        if (old) {
            /* The new value keeps the key's standing with the eviction policy: a key read since
             * it was stored, or with its CLOCK bits set, is in use; rewritten, it would
             * otherwise start over as unread in the probation window and go first. Write-heavy
             * Zipf traffic (each request a get then a set of its key, tools/bench_hitgrid.py
             * write-z0.9 / write-z0.6, -m 16): 68.1% / 39.9% against memcached's 71.9% /
             * 44.1%, where memcached's LRU puts every rewritten item at the head. Not
             * ITEM_FETCHED: the new value has not been read (mg's h flag, evicted_unfetched). */
            uint8_t ofl = item_iflags(old);
            uint8_t keep = (uint8_t)(ofl & (ITEM_ACTIVE | ITEM_HOT));
            if (ofl & ITEM_FETCHED)
                keep |= ITEM_ACTIVE;
            do_item_replace(sh, old, it, hv);
            if (keep)
                item_flag_set(it, keep);
        } else
            do_item_link(sh, it, hv);
        if (cas_out)
            *cas_out = item_cas(it);
    }
    return res;
}

enum st_result storage_store(struct item *it, enum store_op op, uint64_t cas, uint64_t *cas_out)
{
    return storage_store_hv(it, storage_hash(item_key(it), it->nkey), op, cas, cas_out);
}

enum st_result storage_store_hv(struct item *it, uint64_t hv, enum store_op op, uint64_t cas,
                                uint64_t *cas_out)
{
    ST_ASSERT(hv == storage_hash(item_key(it), it->nkey));
    struct shard *sh = shard_of(hv);
    shard_lock(sh);
    enum st_result res = do_item_store(sh, it, hv, op, cas, false, false, cas_out);
    shard_unlock(sh);
    return res;
}

/* A found item becomes a hit: referenced for the caller, marked used (touch: new exptime).
 * NULL when its 16-bit refcount is nearly full (one key repeated ~65k times in flight): a miss
 * rather than an overflow; counted, and harmless for a cache. */
static struct item *do_item_hit(struct shard *sh, struct item *it, bool touch, rel_time_t exptime)
{
    if (atomic_load_explicit(&it->refcount, memory_order_relaxed) >= ITEM_REFCOUNT_LIMIT) {
        sh->st.ref_saturated++;
        return NULL;
    }
    item_ref(it);
    if (touch)
        it->exptime = exptime;
    item_bump(it);
    return it;
}

struct item *storage_get(const char *key, size_t nkey)
{
    return storage_get_hashed(key, nkey, storage_hash(key, nkey));
}

/*
 * Prefetch hints for a batch of lookups (storage.h). A get's time at pipeline depth 16 was a
 * third in do_item_find's two dependent cache misses, the bucket and the chain's first item
 * (perf: 27% and 72% of its samples on those two loads), one get after the other; hinting
 * the next gets' lines first lets the misses overlap.
 */
void storage_prefetch_bucket(uint64_t hv)
{
    /* No lock: the table pointer and its size are read unlocked (relaxed loads of fields
     * written under the shard lock) and only used as a prefetch address, never dereferenced,
     * so a table being replaced by a growth only prefetches a stale line. */
    struct shard *sh = shard_of(hv);
    uint32_t *table = __atomic_load_n(&sh->table, __ATOMIC_RELAXED);
    uint32_t power = __atomic_load_n(&sh->power, __ATOMIC_RELAXED);
    __builtin_prefetch(&table[hv & mask_of(power)]);
}

uint32_t storage_prefetch_item(uint64_t hv)
{
    /* The bucket is read under the lock: a table freed by a finished growth is never read. */
    struct shard *sh = shard_of(hv);
    shard_lock(sh);
    uint32_t ref = *bucket_of(sh, hv);
    shard_unlock(sh);
    if (ref) {
        const char *it = (const char *)ref_item(ref);
        /* three lines: a 100-byte value with its header and key spans them (its copy into
         * the reply stalled on the third: perf, memmove) */
        __builtin_prefetch(it);
        __builtin_prefetch(it + 64);
        __builtin_prefetch(it + 128);
    }
    return ref;
}

uint32_t storage_prefetch_chain(uint32_t cursor)
{
    /* Unlocked, and safe so: an item lives in the arena, which is never unmapped; a chain
     * changed meanwhile only prefetches a line nobody reads. One step: the chains are short
     * (the table grows at 1.5 items a bucket), and a second item was a third of the misses
     * left once the first was prefetched (proto-pipe, perf). */
    if (cursor == 0)
        return 0;
    uint32_t next = __atomic_load_n(&ref_item(cursor)->hnext, __ATOMIC_RELAXED);
    if (next)
        __builtin_prefetch(ref_item(next));
    return next;
}

struct item *storage_get_hashed(const char *key, size_t nkey, uint64_t hv)
{
    struct shard *sh = shard_of(hv);
    shard_lock(sh);
    struct item *it = do_item_find(sh, key, nkey, hv);
    if (it)
        it = do_item_hit(sh, it, false, 0);
    shard_unlock(sh);
    return it;
}

struct item *storage_touch(const char *key, size_t nkey, rel_time_t exptime)
{
    uint64_t hv = storage_hash(key, nkey);
    struct shard *sh = shard_of(hv);
    shard_lock(sh);
    struct item *it = do_item_find(sh, key, nkey, hv);
    if (it)
        it = do_item_hit(sh, it, true, exptime);
    shard_unlock(sh);
    return it;
}

/*
 * A multi-get's keys in a batch. Looked up one by one, each key waits for two cache misses in
 * a row (its bucket, then its item's header: `perf record` of a multi-get of 100 put ~85% of
 * do_item_find's samples on the header load); here every miss of the batch is in flight at
 * once. The buckets are prefetched first, with no lock, where this thread last saw each
 * shard's table; then the keys are taken in shard order (a stable counting sort), and each
 * shard's keys go in two holds of its lock: the first reads their chain heads and prefetches
 * those items' headers and keys; the second, once every shard has had its first, finds the
 * items as do_item_find does. Duplicates, expired items and the
 * counters come out as from n calls in a row, the same key always in request order.
 */
static void batch_shard_order(const uint32_t *idx, size_t n, uint8_t *order)
{
    /* a counting sort on the shard's number mod 16: ~10 instructions a key where an insertion
     * sort was ~77 (callgrind). With more than 16 shards a run of one bin may mix shards; the
     * holds below split it wherever the shard changes, so that costs holds, never correctness. */
    uint8_t count[17] = {0};
    for (size_t i = 0; i < n; i++)
        count[(idx[i] & 15) + 1]++;
    for (size_t b = 1; b < 17; b++)
        count[b] = (uint8_t)(count[b] + count[b - 1]);
    for (size_t i = 0; i < n; i++)
        order[count[idx[i] & 15]++] = (uint8_t)i;
}

/*
 * Where each shard's buckets were when this thread last held its lock: a hint to prefetch a
 * batch's buckets before any lock is taken. Plain integers of this thread's own, so reading
 * them races with nobody; when the table has grown or moved since, the prefetch is wasted
 * (a prefetch never faults, even on memory freed since). Indexed by shard number mod 16.
 */
struct bucket_hint {
    const struct shard *sh;
    uintptr_t table;
    uint64_t mask;
};
static _Thread_local struct bucket_hint tl_bucket_hint[16];


void storage_get_batch(const struct storage_key *keys, size_t n, bool touch, rel_time_t exptime,
                       struct item **out)
{
    uint64_t hv[STORAGE_BATCH_MAX];
    uint32_t idx[STORAGE_BATCH_MAX];   /* shard number */
    uint8_t order[STORAGE_BATCH_MAX];  /* keys in shard order */
    uint8_t run[STORAGE_BATCH_MAX + 1]; /* order[run[g] .. run[g + 1]) share a shard */
    size_t nrun = 0;
    if (n > STORAGE_BATCH_MAX)
        n = STORAGE_BATCH_MAX;
    for (size_t i = 0; i < n; i++) {
        hv[i] = storage_hash(keys[i].p, keys[i].len);
        idx[i] = stg.shard_shift >= 64 ? 0 : (uint32_t)(hv[i] >> stg.shard_shift);
        const struct bucket_hint *h = &tl_bucket_hint[idx[i] & 15];
        if (h->sh == &stg.shards[idx[i]])
            __builtin_prefetch((const void *)(h->table + (hv[i] & h->mask) * sizeof(uint32_t)));
    }
    batch_shard_order(idx, n, order);
    for (size_t k = 0; k < n; k++)
        if (k == 0 || idx[order[k]] != idx[order[k - 1]])
            run[nrun++] = (uint8_t)k;
    run[nrun] = (uint8_t)n;
    /* Hold 1 of each shard: chain heads read, their items prefetched. Hold 2: the heads'
     * successors prefetched (a chain is 1.25-1.75 items long on average, the table growing
     * at 1.5 items a bucket). Hold 3: the lookups. The prefetches are written out here, not
     * in a helper: GCC took a helper whose only effect was __builtin_prefetch for a pure
     * function and dropped the call (no prefetcht0 in objdump). */
    for (int pass = 0; pass < 3; pass++) {
        for (size_t g = 0; g < nrun; g++) {
            struct shard *sh = &stg.shards[idx[order[run[g]]]];
            size_t from = run[g], to = run[g + 1];
            shard_lock(sh);
            if (pass == 0) {
                for (size_t j = from; j < to; j++) {
                    uint32_t ref = *bucket_of(sh, hv[order[j]]);
                    if (ref) {
                        const char *it = (const char *)ref_item(ref);
                        __builtin_prefetch(it);
                        /* the key's last byte, if this is the key */
                        __builtin_prefetch(it + stg.header_size + keys[order[j]].len - 1);
                    }
                }
                tl_bucket_hint[idx[order[from]] & 15] =
                    (struct bucket_hint){sh, (uintptr_t)sh->table, mask_of(sh->power)};
            } else if (pass == 1) {
                for (size_t j = from; j < to; j++) {
                    uint32_t ref = *bucket_of(sh, hv[order[j]]);
                    if (ref && (ref = ref_item(ref)->hnext) != 0)
                        __builtin_prefetch(ref_item(ref));
                }
            } else {
                for (size_t j = from; j < to; j++) {
                    size_t i = order[j];
                    struct item *it = do_item_find(sh, keys[i].p, keys[i].len, hv[i]);
                    out[i] = it ? do_item_hit(sh, it, touch, exptime) : NULL;
                }
            }
            shard_unlock(sh);
        }
    }
}

enum st_result storage_delete(const char *key, size_t nkey, uint64_t cas)
{
    uint64_t hv = storage_hash(key, nkey);
    struct shard *sh = shard_of(hv);
    enum st_result res = ST_OK;
    shard_lock(sh);
    struct item *it = do_item_find(sh, key, nkey, hv);
    if (!it)
        res = ST_NOT_FOUND;
    else if (cas != 0 && item_cas(it) != cas)
        res = ST_EXISTS;
    else {
        tl_last_class = storage_item_class(it);
        do_item_unlink(sh, it, hv);
    }
    shard_unlock(sh);
    return res;
}

/*
 * Parses a stored value the way memcached's safe_strtoull does: leading white space, an
 * optional sign, at least one digit, then the end, white space or a NUL byte; out of range is refused,
 * and so is a '-' whose value would be negative as a signed number.
 */
static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')))
        i++;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    size_t start = i;
    uint64_t v = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (i == start)
        return false;
    /* memcached reads the value as a C string: a NUL byte ends the number too ("12\0x") */
    if (i < n && !(s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r') || s[i] == '\0'))
        return false;
    if (neg)
        v = (uint64_t)0 - v;
    /* memcached refuses a number that is negative as a signed one if strchr finds a '-' in
     * the value: anywhere in it, up to a NUL byte (past the value's end memcached reads on
     * into whatever follows; cached stops at the end) */
    if ((int64_t)v < 0) {
        const char *nul = memchr(s, '\0', n);
        if (memchr(s, '-', nul ? (size_t)(nul - s) : n))
            return false;
    }
    *out = v;
    return true;
}

struct item *do_item_arith(struct shard *sh, struct item *it, bool incr, uint64_t delta,
                           uint64_t hv, uint64_t *value, enum st_result *res)
{
    ST_ASSERT(shard_held(sh));
    uint64_t v;
    if (!parse_u64(item_value(it), it->nbytes, &v)) {
        *res = ST_NON_NUMERIC;
        return NULL;
    }
    if (incr)
        v += delta; /* wraps at 2^64 */
    else
        v = v < delta ? 0 : v - delta;
    char buf[24];
    int len = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    *res = ST_OK;
    *value = v;
    if ((uint32_t)len <= it->nbytes &&
        atomic_load_explicit(&it->refcount, memory_order_relaxed) == 1) {
        /* Only the table holds it, so no reply is being written from it: rewrite the digits
         * in place, space-padded to the old length, as memcached does. The item keeps its
         * fetched/stale/token bits; it gets a new CAS and counts as just used (memcached's
         * do_item_update, which also matters to flush_all's oldest_live rule). */
        memcpy(item_value(it), buf, (size_t)len);
        memset(item_value(it) + len, ' ', it->nbytes - (uint32_t)len);
        sizes_note(it, -1); /* memcached's: the CAS decides whether it is counted */
        if (stg.cfg.use_cas)
            item_set_cas(it, storage_next_cas());
        sizes_note(it, 1);
        it->atime = clock_now();
        return it;
    }
    /* Longer, or a reply still holds it: a new item with just the digits (memcached too
     * drops the item bits then), flags, exptime and a base64-given key kept. */
    item_ref(it); /* keeps the eviction this allocation may run off it */
    struct item *nit = item_alloc_hv(item_key(it), it->nkey, hv, it->flags, it->exptime,
                                     (uint32_t)len, res);
    if (nit) {
        memcpy(item_value(nit), buf, (size_t)len);
        item_flag_set(nit, item_iflags(it) & ITEM_KEY_BINARY);
        do_item_replace(sh, it, nit, hv);
        item_put(nit); /* the table's reference keeps it while the lock is held */
    } else {
        *res = ST_NO_MEMORY; /* the digits always fit; only the allocation can fail */
    }
    item_put(it);
    return nit;
}

enum st_result storage_arith(const char *key, size_t nkey, bool incr, uint64_t delta,
                             uint64_t *value, uint64_t *cas_out)
{
    uint64_t hv = storage_hash(key, nkey);
    struct shard *sh = shard_of(hv);
    enum st_result res = ST_NOT_FOUND;
    shard_lock(sh);
    struct item *it = do_item_find(sh, key, nkey, hv);
    if (it) {
        tl_last_class = storage_item_class(it);
        struct item *nit = do_item_arith(sh, it, incr, delta, hv, value, &res);
        if (nit && cas_out)
            *cas_out = item_cas(nit);
    }
    shard_unlock(sh);
    return res;
}

void storage_flush(rel_time_t when)
{
    /* memcached's rule to the letter: `when` is the new oldest_live (+1 with CAS). It is not
     * clamped to now: an absolute time in the past arrives as 1, which leaves oldest_live 0
     * and so flushes nothing (memcached does the same for `flush_all 2592001`). */
    rel_time_t now = clock_now();
    if (stg.cfg.use_cas) {
        /* oldest_live one second back; the CAS mark separates items stored before the flush
         * from those stored after it within the same second. */
        if (when - 1 <= now) /* a CAS id used up as the mark, as memcached's get_cas_id() */
            atomic_store(&stg.oldest_cas, storage_next_cas());
        atomic_store(&stg.oldest_live, when - 1);
    } else {
        atomic_store(&stg.oldest_live, when);
    }
}

/* ---- background work ---- */

size_t storage_sweep_step(size_t max_items)
{
    if (!stg.ready)
        return 0;
    size_t work = 0, reclaimed = 0;
    pthread_mutex_lock(&stg.bg_lock);
    rel_time_t now = clock_now();
    uint32_t shards_done = 0;
    while (work < max_items && shards_done <= stg.nshards) {
        struct shard *sh = &stg.shards[stg.sweep_shard];
        shard_lock(sh);
        if (sh->old) {
            /* growing: help the move along; sweep this shard once it is done */
            migrate_some(sh, (unsigned)(max_items - work));
            shard_unlock(sh);
            break;
        }
        uint32_t nb = 1u << sh->power;
        while (stg.sweep_bucket < nb && work < max_items) {
            uint32_t *p = &sh->table[stg.sweep_bucket++];
            if ((stg.sweep_bucket & 3) == 0)
                work++; /* empty buckets are cheap but not free */
            while (*p) {
                struct item *it = ref_item(*p);
                work++;
                enum item_state s = item_state_at(it, now);
                if (s == ITEM_LIVE) {
                    p = &it->hnext;
                    continue;
                }
                slab_count_reclaim(it, false); /* as memcached's LRU maintainer counts */
                sh->st.sweeper_reclaimed++;
                reclaimed++;
                *p = it->hnext;
                unlinked(sh, it);
                item_put(it);
            }
        }
        shard_unlock(sh);
        if (stg.sweep_bucket >= nb) {
            stg.sweep_bucket = 0;
            shards_done++;
            if (++stg.sweep_shard >= stg.nshards) {
                stg.sweep_shard = 0;
                stg.sweeper_runs++;
                break;
            }
        }
    }
    pthread_mutex_unlock(&stg.bg_lock);
    return reclaimed;
}

void storage_maintenance_step(void)
{
    if (!stg.ready)
        return;
    for (uint32_t i = 0; i < stg.nshards; i++) {
        struct shard *sh = &stg.shards[i];
        if (!sh->old) /* racy peek; rechecked under the lock */
            continue;
        shard_lock(sh);
        migrate_some(sh, MIGRATE_PER_STEP);
        shard_unlock(sh);
    }
}

/* ---- statistics ---- */

void storage_stats(struct storage_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!stg.ready)
        return;
    uint64_t buckets = 0;
    for (uint32_t i = 0; i < stg.nshards; i++) {
        struct shard *sh = &stg.shards[i];
        shard_lock(sh);
        out->curr_items += sh->st.curr_items;
        out->total_items += sh->st.total_items;
        out->bytes += sh->st.bytes;
        out->get_expired += sh->st.get_expired;
        out->get_flushed += sh->st.get_flushed;
        out->sweeper_reclaimed += sh->st.sweeper_reclaimed;
        out->ref_saturated += sh->st.ref_saturated;
        out->shard_lock_waits += sh->st.lock_waits;
        buckets += (uint64_t)1 << sh->power;
        out->hash_bytes += ((uint64_t)1 << sh->power) * sizeof(uint32_t);
        if (sh->old) {
            out->hash_bytes += ((uint64_t)1 << sh->old_power) * sizeof(uint32_t);
            out->hash_is_expanding = 1;
        }
        shard_unlock(sh);
    }
    out->hash_power_level = log2u(buckets);
    for (unsigned i = 0; i < stg.nclasses; i++) {
        struct slab_class *c = &stg.classes[i];
        class_lock(c);
        out->evictions += c->evicted;
        out->class_lock_waits += c->lock_waits;
        out->evicted_unfetched += c->evicted_unfetched;
        out->evicted_active += c->evicted_active;
        out->expired_unfetched += c->expired_unfetched;
        out->reclaimed += c->reclaimed;
        out->crawler_reclaimed += c->crawler_reclaimed;
        out->crawler_items_checked += c->crawler_checked;
        slock_unlock(&c->lock);
    }
    pthread_mutex_lock(&stg.bg_lock);
    out->slabs_moved = stg.slabs_moved;
    out->sweeper_runs = stg.sweeper_runs;
    pthread_mutex_unlock(&stg.bg_lock);
    storage_crawl_counts(&out->crawl_starts, &out->crawl_running);
    slab_reassign_counts(out);
    out->item_header_bytes = stg.header_size;
    pthread_mutex_lock(&stg.arena_lock);
    out->global_page_pool = stg.npages - stg.pages_assigned + stg.npool;
    pthread_mutex_unlock(&stg.arena_lock);
    /* memcached's mem_malloced: pages handed out, the pool's included */
    out->total_malloced = slab_malloced_bytes();
    out->oldest_live = atomic_load(&stg.oldest_live);
}

void storage_stats_reset(void)
{
    if (!stg.ready)
        return;
    for (uint32_t i = 0; i < stg.nshards; i++) {
        struct shard *sh = &stg.shards[i];
        shard_lock(sh);
        sh->st.total_items = sh->st.get_expired = sh->st.get_flushed = 0;
        sh->st.sweeper_reclaimed = sh->st.ref_saturated = sh->st.lock_waits = 0;
        shard_unlock(sh);
    }
    slab_stats_reset();
    pthread_mutex_lock(&stg.bg_lock);
    stg.slabs_moved = stg.sweeper_runs = 0;
    pthread_mutex_unlock(&stg.bg_lock);
}
