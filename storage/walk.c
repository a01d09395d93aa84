/*
 * walk: visits every live item, for `lru_crawler metadump` (memcached's key dump). cached has
 * no LRU lists to crawl, so "all", a class list and "hash" all walk the hash table, skipping
 * expired and flushed items.
 *
 * The walk is resumable and bounded: storage_walk_step() holds one shard's lock for at most a
 * budget of items, then returns a cursor, so a dump of millions of keys is streamed in small
 * batches as the client reads, with no lock held while the caller writes.
 *
 * The cursor inside a shard is a position in "reversed hash" order (Redis SCAN's trick): an
 * item's position is its hash's low 32 bits read backwards, and bucket b of a table with 2^p
 * buckets holds exactly the items whose position's top p bits are b reversed — one contiguous
 * range of positions. Visiting buckets in increasing position order therefore stays correct
 * when the table doubles between two steps (a bucket splits into two ranges that both lie
 * either before or after the cursor): an item present for the whole walk is visited exactly
 * once. Tables never shrink. Table power is at most 30 (maybe_grow), so 32 bits suffice.
 */
#include "storage/internal.h"

#define WALK_END ((uint64_t)1 << 32)

static uint32_t rev32(uint32_t v)
{
    v = ((v >> 1) & 0x55555555u) | ((v & 0x55555555u) << 1);
    v = ((v >> 2) & 0x33333333u) | ((v & 0x33333333u) << 2);
    v = ((v >> 4) & 0x0F0F0F0Fu) | ((v & 0x0F0F0F0Fu) << 4);
    v = ((v >> 8) & 0x00FF00FFu) | ((v & 0x00FF00FFu) << 8);
    return (v >> 16) | (v << 16);
}

static bool class_wanted(const struct storage_walk *w, unsigned cls)
{
    if (w->all)
        return true;
    return cls < STORAGE_MAX_CLASS_ID && (w->class_mask[cls / 64] >> (cls % 64) & 1);
}

/* Visits the chain; when only_bucket is set (an old table's chain, shared by two buckets of
 * the new table), only the items that belong to new bucket `bucket` of a 2^power table. */
static size_t walk_chain(const struct storage_walk *w, uint32_t ref, rel_time_t now,
                         bool only_bucket, uint32_t bucket, uint32_t power,
                         storage_walk_fn fn, void *arg)
{
    size_t n = 0;
    for (; ref; ref = ref_item(ref)->hnext) {
        const struct item *it = ref_item(ref);
        if (item_state_at(it, now) != ITEM_LIVE)
            continue;
        if (only_bucket &&
            (storage_hash(item_key(it), it->nkey) & (((uint64_t)1 << power) - 1)) != bucket)
            continue;
        unsigned cls = (unsigned)stg.pmeta[item_page(it)].cls + 1;
        if (!class_wanted(w, cls))
            continue;
        struct storage_item_info ii = {
            .key = item_key(it),
            .nkey = it->nkey,
            .exptime = it->exptime,
            .atime = it->atime,
            .cas = item_cas(it),
            .fetched = (item_iflags(it) & ITEM_FETCHED) != 0,
            .cls = cls,
            .size = item_total_size(it),
        };
        fn(arg, &ii);
        n++;
    }
    return n;
}

/* Visits the bucket at position w->pos of sh (lock held) and moves the cursor past it. */
static size_t walk_bucket(struct storage_walk *w, struct shard *sh, rel_time_t now,
                          storage_walk_fn fn, void *arg)
{
    uint32_t p = sh->power;
    uint32_t b = rev32((uint32_t)w->pos) & (uint32_t)(((uint64_t)1 << p) - 1);
    size_t n = walk_chain(w, sh->table[b], now, false, 0, 0, fn, arg);
    if (sh->old) { /* growing: old buckets at or past migrate_pos still hold their items */
        uint32_t ob = b & (uint32_t)(((uint64_t)1 << sh->old_power) - 1);
        if (ob >= sh->migrate_pos)
            n += walk_chain(w, sh->old[ob], now, true, b, p, fn, arg);
    }
    /* pos is a multiple of 2^(32-p): it started at 0 and p never shrinks */
    w->pos = (w->pos & ~((WALK_END >> p) - 1)) + (WALK_END >> p);
    return n;
}

void storage_walk_begin(struct storage_walk *w, const uint64_t *class_mask)
{
    *w = (struct storage_walk){.all = class_mask == NULL};
    if (class_mask != NULL)
        for (unsigned i = 0; i < STORAGE_MAX_CLASS_ID / 64; i++)
            w->class_mask[i] = class_mask[i];
}

bool storage_walk_step(struct storage_walk *w, size_t budget, storage_walk_fn fn, void *arg)
{
    if (!stg.ready || w->shard >= stg.nshards)
        return true;
    struct shard *sh = &stg.shards[w->shard];
    /* Empty buckets cost too: at most 16 per item of budget under one lock. */
    size_t seen = 0, buckets = 0, max_buckets = budget * 16 + 16;
    shard_lock(sh);
    rel_time_t now = clock_now();
    while (w->pos < WALK_END && seen < budget && buckets++ < max_buckets)
        seen += walk_bucket(w, sh, now, fn, arg);
    shard_unlock(sh);
    if (w->pos >= WALK_END) {
        w->shard++;
        w->pos = 0;
    }
    return w->shard >= stg.nshards;
}

unsigned storage_class_count(void)
{
    return stg.ready ? stg.nclasses : 0;
}
