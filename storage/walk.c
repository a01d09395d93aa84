/*
 * walk: visits every live item, for `lru_crawler metadump` (memcached's key dump). cached has
 * no LRU lists to crawl, so "all", a class list and "hash" all walk the hash table, one shard
 * at a time under that shard's lock (as the sweeper does), skipping expired and flushed items.
 */
#include "storage/internal.h"

static void walk_chain(uint32_t ref, rel_time_t now, const bool *classes,
                       void (*fn)(void *arg, const struct storage_item_info *ii), void *arg,
                       size_t *n)
{
    for (; ref; ref = ref_item(ref)->hnext) {
        const struct item *it = ref_item(ref);
        if (item_state_at(it, now) != ITEM_LIVE)
            continue;
        unsigned cls = (unsigned)stg.pmeta[item_page(it)].cls + 1;
        if (classes && (cls >= STORAGE_MAX_CLASS_ID || !classes[cls]))
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
        (*n)++;
    }
}

size_t storage_walk(const bool *classes,
                    void (*fn)(void *arg, const struct storage_item_info *ii), void *arg)
{
    size_t n = 0;
    if (!stg.ready)
        return 0;
    for (uint32_t s = 0; s < stg.nshards; s++) {
        struct shard *sh = &stg.shards[s];
        shard_lock(sh);
        rel_time_t now = clock_now();
        if (sh->old) /* growing: buckets below migrate_pos have moved to table */
            for (uint32_t b = sh->migrate_pos; b < (1u << sh->old_power); b++)
                walk_chain(sh->old[b], now, classes, fn, arg, &n);
        for (uint32_t b = 0; b < (1u << sh->power); b++)
            walk_chain(sh->table[b], now, classes, fn, arg, &n);
        shard_unlock(sh);
    }
    return n;
}

unsigned storage_class_count(void)
{
    return stg.ready ? stg.nclasses : 0;
}
