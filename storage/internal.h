/*
 * storage internals shared by the storage .c files (and a later storage/meta_ops.c).
 * Nothing outside storage/ may include this header.
 *
 * Lock order: storage/storage.h ("LOCK ORDER"), the one place it is written.
 * do_*() functions require the shard lock of the key they touch (ST_ASSERT(shard_held())).
 */
#pragma once

#include <pthread.h>

#include "storage/lock.h"
#include "storage/mem.h"
#include "storage/storage.h"

/* ---- arena and slab classes (slab.c) ---- */

#define SLAB_MAX_CLASSES 250
/* refcount at or above this in storage_get: treat as a miss instead of overflowing 16 bits */
#define ITEM_REFCOUNT_LIMIT 65000

struct page_meta {
    uint32_t used;     /* allocated chunks in this page */
    uint8_t cls;       /* class index (0-based) */
    uint8_t draining;  /* automove is emptying it: freed chunks stay off the free list */
    rel_time_t since;  /* when it was given to its class (page steal leaves young pages) */
};

struct slab_class {
    struct slock lock;
    uint32_t size, perslab;
    uint32_t free_head;           /* ref of the first free chunk, 0 = none */
    uint64_t free_count;
    uint32_t *pages, npages, pages_cap; /* pages owned by this class */
    uint32_t hand_page, hand_chunk; /* CLOCK hand: index into pages[], chunk in that page */
    uint32_t lap_seen, lap_hot;   /* linked / HOT items the hand met in its current lap */
    uint32_t hot_pct;             /* share of HOT items over the hand's last full lap */
    uint32_t age_checks;          /* evictions since page_steal_idle last looked */
    uint64_t allocs, allocs_seen; /* chunks asked of this class; at page_steal_idle's last look */
    uint64_t used_chunks, mem_requested;
    uint64_t evicted, evicted_unfetched, evicted_active, expired_unfetched, reclaimed;
    uint64_t outofmemory;
    uint64_t evicted_nonzero;     /* evicted items that had an exptime */
    rel_time_t evicted_time;      /* idle seconds of the last item evicted */
    uint64_t pressure;            /* evictions + out-of-memory since automove last looked */
    uint64_t lock_waits;          /* class_lock found the lock taken (counted under it) */
    /* probation window and ghost (slab.c, "The policy"): new items in store order, each entry
     * ref | (hash >> 32) << 32; a ring of win_size, win_len entries from win_head, at most
     * win_cap (0: no window, a class of few chunks). ghost: 8-bit tags of keys evicted
     * live, direct-mapped by hash, ghost_mask + 1 slots (0 when none). */
    uint64_t *win;
    uint32_t win_size, win_head, win_len, win_cap;
    uint32_t win_evicts;          /* evictions through the window (the hand steps every Nth) */
    uint32_t hand_every;          /* that N x 4, adapted by ghost hits (0: not set yet) */
    bool ghost_win;               /* the live eviction under way is the window's candidate */
    uint8_t *ghost;
    uint32_t ghost_mask;
    uint64_t crawler_reclaimed, crawler_checked; /* `lru_crawler crawl` (crawl.c) */
    uint32_t am_pages;            /* automove: npages at its last look */
    rel_time_t am_dirty;          /* automove: last look that saw pressure or a new page */
} __attribute__((aligned(64)));

/* ---- hash shards (items.c) ---- */

struct shard_stats {
    uint64_t curr_items, total_items, bytes;
    uint64_t get_expired, get_flushed, sweeper_reclaimed, ref_saturated;
    uint64_t lock_waits; /* shard_lock found the lock taken (counted under it) */
};

struct shard {
    struct slock lock;
    _Atomic uintptr_t owner; /* CACHED_DEBUG: the thread holding lock (shard_held), else 0 */
    uint32_t *table;       /* buckets: refs of chain heads */
    uint32_t power;        /* log2 of buckets in table */
    uint32_t *old;         /* non-NULL while growing: the previous, half-size table */
    uint32_t old_power;
    uint32_t migrate_pos;  /* old buckets below this have moved to table */
    uint64_t count;
    struct shard_stats st;
    char pad[64]; /* keeps neighbouring shards' locks off one cache line */
};

struct storage_globals {
    struct storage_config cfg;
    bool ready;
    uint32_t header_size;  /* 24, or 32 with CAS */

    char *arena;
    size_t arena_bytes;
    uint32_t page_size, npages;  /* npages: usable now (-m, cache_memlimit) */
    uint32_t page_shift;         /* log2(page_size) when a power of two (the default 1 MB), else 0 */
    uint32_t max_pages;          /* reserved address space, in pages */
    pthread_mutex_t arena_lock;
    uint32_t pages_assigned;     /* pages [0, pages_assigned) have been given to classes */
    uint32_t *pool, npool;       /* free pages handed back (`slabs reassign N 0`), reused first */
    struct page_meta *pmeta;

    struct slab_class classes[SLAB_MAX_CLASSES];
    unsigned nclasses;

    struct shard *shards;
    uint32_t nshards, shard_shift;

    _Atomic uint64_t cas_next;
    _Atomic rel_time_t oldest_live;
    _Atomic uint64_t oldest_cas;

    pthread_mutex_t bg_lock;     /* sweeper cursor and automove state */
    uint32_t sweep_shard, sweep_bucket;
    uint64_t sweeper_runs, slabs_moved;
    int drain_page;              /* page being emptied by automove, -1 none */
    unsigned drain_dst, drain_tries; /* drain_dst == nclasses: to the pool */
    _Atomic unsigned automove;   /* 0 off, 1 a step per second, 2 a step per tick */
    unsigned automove_ticks, reassign_any; /* tick counter; `slabs reassign -1` cursor */
    _Atomic bool lru_flat;       /* memcached's flat LRU (storage_set_lru_flat) */
};

extern struct storage_globals stg;
#define LRU_FLAT_UPDATE_INTERVAL 60 /* memcached's ITEM_UPDATE_INTERVAL, seconds */
/* storage_observe's callbacks (storage/slab.c). */
extern _Atomic(storage_evicted_fn) stg_on_evicted;
extern _Atomic(storage_slab_moved_fn) stg_on_slab_moved;

/* Takes a class lock; a trylock first, so a wait is counted (stats class_lock_waits). The
 * count is written under the lock itself: no shared counter, no atomic. */
static inline void class_lock(struct slab_class *c)
{
    if (!slock_trylock(&c->lock)) {
        slock_lock(&c->lock);
        c->lock_waits++;
    }
}
/* `stats sizes` (sizes.c): one relaxed load on link/unlink while it is off. */
extern _Atomic bool stg_sizes_on;
void sizes_count(const struct item *it, int delta);
void sizes_teardown(void);
static inline void sizes_note(const struct item *it, int delta)
{
    if (atomic_load_explicit(&stg_sizes_on, memory_order_relaxed))
        sizes_count(it, delta);
}
extern _Thread_local struct shard *tl_held_shard;
extern _Thread_local uint8_t tl_find_miss; /* storage_last_miss() */
extern _Thread_local unsigned tl_last_class; /* storage_last_class() */

static inline struct item *ref_item(uint32_t ref)
{
    return (struct item *)(stg.arena + ((size_t)(ref - 1) << 3));
}

static inline uint32_t item_ref_of(const struct item *it)
{
    return (uint32_t)(((const char *)it - stg.arena) >> 3) + 1;
}

static inline uint32_t item_page(const struct item *it)
{
    /* A set asks this three times (its chunk's page, the old item's, the class counters):
     * a shift rather than a 64-bit division (tens of cycles each) when the size allows. */
    size_t off = (size_t)((const char *)it - stg.arena);
    return (uint32_t)(stg.page_shift ? off >> stg.page_shift : off / stg.page_size);
}

uint64_t storage_hash(const void *key, size_t len);

int slab_setup(char *errbuf, size_t errlen);
void slab_teardown(void);
unsigned slab_class_for(size_t ntotal);  /* nclasses when too large */
/* A chunk for an item of ntotal bytes whose key hashes to hv, header uninitialised; NULL
 * with *res set. */
struct item *slab_alloc(size_t ntotal, uint64_t hv, enum st_result *res);
void slab_free(struct item *it);         /* refcount has reached 0 */
void slab_stats_reset(void);
/* Warm restart (persist.c): gives page pg (arena pages are handed out in order, so pg is the
 * next one) to class ci. Its chunks are already in place: used of them linked (linked[i]
 * nonzero, requested bytes in all), the others marked free (refcount 0, ITEM_FREE), which go
 * on the class's free list. */
void slab_restore_page(unsigned ci, uint32_t pg, uint32_t used, uint64_t requested,
                       const uint8_t *linked);
/* Back to no page handed out (a refused restore). */
void slab_forget_pages(void);
/* Counts an expired or flushed item leaving the table in its class's expired_unfetched and
 * reclaimed (lazily, by the sweeper: memcached's LRU maintainer counts there) or
 * crawler_reclaimed (crawler: a crawl pass).
 * Shard lock held (the class lock is taken after it: lock order). */
void slab_count_reclaim(const struct item *it, bool crawler);
/* `lru_crawler crawl` (crawl.c): frees it if it is expired or flushed and only the table holds
 * it; counted in the class's crawler_reclaimed (not reclaimed: memcached counts a crawl apart).
 * Class lock of c held. */
bool slab_crawl_reclaim(struct slab_class *c, struct item *it);
/* crawl.c's passes started and whether one runs, for storage_stats. */
void storage_crawl_counts(uint64_t *starts, uint64_t *running);
/* memcached's total_malloced: bytes of pages handed out and not given back to the system. */
uint64_t slab_malloced_bytes(void);
/* The page mover's counters (slab_reassign_*), for storage_stats. */
void slab_reassign_counts(struct storage_stats *out);

/* ---- items and the table (items.c) ---- */

static inline struct shard *shard_of(uint64_t hv)
{
    return &stg.shards[stg.shard_shift >= 64 ? 0 : (hv >> stg.shard_shift)];
}

void shard_lock(struct shard *sh);
void shard_unlock(struct shard *sh);

/*
 * Invariant checks (STYLE: "assert the invariants that comments state"): compiled in with
 * -DCACHED_DEBUG, which the ASan build of `make test` sets; free in the release build. They
 * guard internal invariants only, never input (a bad request is an error reply, not an abort).
 */
#ifdef CACHED_DEBUG
void st_assert_fail(const char *what, const char *file, int line) __attribute__((noreturn));
#define ST_ASSERT(c) ((c) ? (void)0 : st_assert_fail(#c, __FILE__, __LINE__))
extern _Thread_local char st_thread_token; /* its address names this thread */
static inline void shard_owner_set(struct shard *sh)
{
    atomic_store_explicit(&sh->owner, (uintptr_t)&st_thread_token, memory_order_relaxed);
}
static inline void shard_owner_clear(struct shard *sh)
{
    atomic_store_explicit(&sh->owner, 0, memory_order_relaxed);
}
/* This thread holds sh's lock: every do_*() function requires it. */
static inline bool shard_held(struct shard *sh)
{
    return atomic_load_explicit(&sh->owner, memory_order_relaxed) == (uintptr_t)&st_thread_token;
}
#else
#define ST_ASSERT(c) ((void)0)
static inline void shard_owner_set(struct shard *sh)
{
    (void)sh;
}
static inline void shard_owner_clear(struct shard *sh)
{
    (void)sh;
}
#endif

enum item_state { ITEM_LIVE = 0, ITEM_EXPIRED, ITEM_FLUSHED };
enum item_state item_state_at(const struct item *it, rel_time_t now);

/* The live item for key, or NULL; an expired/flushed one found is unlinked and counted.
 * Takes no reference. */
struct item *do_item_find(struct shard *sh, const char *key, size_t nkey, uint64_t hv);
/* Links it (takes the table's reference), giving it a new CAS and atime. */
void do_item_link(struct shard *sh, struct item *it, uint64_t hv);
/* Unlinks it and drops the table's reference (which may free it). */
void do_item_unlink(struct shard *sh, struct item *it, uint64_t hv);
void do_item_replace(struct shard *sh, struct item *old, struct item *it, uint64_t hv);
/* Replaces old by old+it (append) or it+old (prepend), keeping old's flags and exptime.
 * ST_NOT_STORED when the result would be too large. */
enum st_result do_item_concat(struct shard *sh, struct item *old, struct item *it, bool append,
                              uint64_t hv, uint64_t *cas_out);
/* set/add/replace/cas/append/prepend of it under sh's lock, shared by storage_store and
 * storage_meta_store. meta selects ms's CAS rules: cas 0 matches nothing, a nonzero cas also
 * guards append/prepend, and set_stale lets an older cas in as a stale value. *cas_out (if
 * not NULL) gets the new CAS when stored. */
enum st_result do_item_store(struct shard *sh, struct item *it, uint64_t hv, enum store_op op,
                             uint64_t cas, bool meta, bool set_stale, uint64_t *cas_out);
/*
 * incr/decr of the live item it, shared by incr/decr and meta `ma`. Returns the linked item
 * that now holds the number (it itself, rewritten in place and space-padded when the digits
 * fit and no reply holds it, else a replacement), unreferenced: valid while the shard lock
 * is held. NULL with *res = ST_NON_NUMERIC or ST_NO_MEMORY. *value gets the new number.
 */
struct item *do_item_arith(struct shard *sh, struct item *it, bool incr, uint64_t delta,
                           uint64_t hv, uint64_t *value, enum st_result *res);
/* A page move's rescue: it, a byte copy of the linked old (same hnext, CAS, atime), takes
 * old's place in its chain; counts and references are unchanged (old keeps none). */
void do_item_move(struct shard *sh, struct item *old, struct item *it, uint64_t hv);
/* Unlinks without dropping the table's reference: for eviction under a class lock. */
void do_item_unlink_keepref(struct shard *sh, struct item *it, uint64_t hv);
uint64_t storage_next_cas(void);

static inline void item_ref(struct item *it)
{
    atomic_fetch_add_explicit(&it->refcount, 1, memory_order_relaxed);
}

static inline void item_flag_set(struct item *it, uint8_t f)
{
    atomic_fetch_or_explicit(&it->iflags, f, memory_order_relaxed);
}

static inline void item_flag_clear(struct item *it, uint8_t f)
{
    atomic_fetch_and_explicit(&it->iflags, (uint8_t)~f, memory_order_relaxed);
}

/* A hit (get, touch, mg): fetched, used since the hand last passed (ACTIVE), and from the
 * second fetch on HOT, memcached's "fetched twice goes to warm". Shard lock held, it linked.
 * No atomic write when the bits are already there (the common case for a hot key). */
static inline void item_bump(struct item *it)
{
    uint8_t fl = item_iflags(it);
    if (atomic_load_explicit(&stg.lru_flat, memory_order_relaxed)) {
        /* memcached's flat LRU (-o no_modern, no_lru_maintainer, `lru mode flat`): no
         * fetched-twice protection, and a hit counts only if the item's last one is at least
         * ITEM_UPDATE_INTERVAL (60 s) old, so an item read right after it was written is
         * still the oldest; the last access moves only with a counted hit, as memcached's */
        rel_time_t now = clock_now();
        if (!(fl & ITEM_FETCHED))
            item_flag_set(it, ITEM_FETCHED);
        if (now - it->atime >= LRU_FLAT_UPDATE_INTERVAL) {
            item_flag_set(it, ITEM_ACTIVE);
            it->atime = now;
        }
        return;
    }
    uint8_t want = ITEM_FETCHED | ITEM_ACTIVE | ((fl & ITEM_FETCHED) ? ITEM_HOT : 0);
    if ((fl & want) != want)
        item_flag_set(it, want);
    /* no store when unchanged (once a second): a hot key's line stays shared between cores */
    rel_time_t now = clock_now();
    if (it->atime != now)
        it->atime = now;
}
