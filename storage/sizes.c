/*
 * sizes: memcached's `stats sizes` histogram (stats sizes_enable / sizes_disable, -o
 * track_sizes): linked items counted by size in 32-byte buckets. The size is the one memcached
 * would give the item (ITEM_ntotal: its 48-byte header, CAS, key + NUL, value + "\r\n", 4 bytes
 * of client flags when nonzero), not cached's own, so the lines match memcached's byte for byte.
 *
 * As memcached: enabling takes a CAS id as its watermark and items with an older CAS are never
 * counted (they were linked before the histogram existed); without CAS (-C) it cannot be
 * enabled. Disabling drops the counts. Workers count under their shard lock with relaxed
 * atomics; the array is allocated on the first enable and kept until teardown, so a worker
 * racing a disable never touches freed memory (a count landing during a re-enable is memcached's
 * race too: its counters are not locked either).
 */
#include "storage/internal.h"

#include <pthread.h>

#define MC_ITEM_HEADER 48 /* sizeof(struct _stritem) on a 64-bit memcached */

static pthread_mutex_t sizes_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint32_t *sizes_hist;
static uint32_t sizes_buckets;
static uint64_t sizes_cas_min;
_Atomic bool stg_sizes_on;

size_t storage_item_mc_size(const struct item *it)
{
    return MC_ITEM_HEADER + it->nkey + 1 + (size_t)it->nbytes + 2 + (it->flags ? 4 : 0) +
           (item_has_cas(it) ? 8 : 0);
}

void sizes_count(const struct item *it, int delta)
{
    if (!atomic_load_explicit(&stg_sizes_on, memory_order_acquire) ||
        item_cas(it) < sizes_cas_min)
        return;
    size_t bucket = (storage_item_mc_size(it) + 31) / 32;
    if (bucket < sizes_buckets)
        atomic_fetch_add_explicit(&sizes_hist[bucket], (uint32_t)delta, memory_order_relaxed);
}

enum storage_sizes_status storage_sizes_enable(bool at_start)
{
    enum storage_sizes_status st = SIZES_ENABLED;
    pthread_mutex_lock(&sizes_lock);
    if (!stg.cfg.use_cas && !at_start) { /* -o track_sizes -C: memcached counts every item */
        st = SIZES_NO_CAS;
    } else if (!atomic_load(&stg_sizes_on)) {
        size_t n = stg.cfg.item_size_max / 32 + 1;
        if (sizes_hist == NULL || n != sizes_buckets) {
            mem_free((void *)sizes_hist);
            sizes_hist = mem_calloc(n, sizeof(*sizes_hist));
        } else {
            for (size_t i = 0; i < n; i++)
                atomic_store_explicit(&sizes_hist[i], 0, memory_order_relaxed);
        }
        if (sizes_hist == NULL) {
            st = SIZES_NO_MEMORY;
        } else {
            sizes_buckets = (uint32_t)n;
            /* memcached's get_cas_id(): one id used up */
            sizes_cas_min = stg.cfg.use_cas ? storage_next_cas() : 0;
            atomic_store_explicit(&stg_sizes_on, true, memory_order_release);
        }
    }
    pthread_mutex_unlock(&sizes_lock);
    return st;
}

void storage_sizes_disable(void)
{
    pthread_mutex_lock(&sizes_lock);
    atomic_store_explicit(&stg_sizes_on, false, memory_order_release);
    pthread_mutex_unlock(&sizes_lock);
}

bool storage_sizes_enabled(void)
{
    return atomic_load(&stg_sizes_on);
}

bool storage_sizes_each(void (*fn)(void *arg, uint32_t size, uint32_t count), void *arg)
{
    pthread_mutex_lock(&sizes_lock);
    bool on = atomic_load(&stg_sizes_on);
    for (uint32_t i = 0; on && i < sizes_buckets; i++) {
        uint32_t n = atomic_load_explicit(&sizes_hist[i], memory_order_relaxed);
        if (n != 0)
            fn(arg, i * 32, n);
    }
    pthread_mutex_unlock(&sizes_lock);
    return on;
}

void sizes_teardown(void)
{
    pthread_mutex_lock(&sizes_lock);
    atomic_store(&stg_sizes_on, false);
    mem_free((void *)sizes_hist);
    sizes_hist = NULL;
    sizes_buckets = 0;
    pthread_mutex_unlock(&sizes_lock);
}
