/*
 * storage: the cache's memory — slab allocator, items, sharded hash table, eviction and expiry.
 * It knows nothing of sockets or protocol text: callers get items and typed results.
 *
 * LOCK ORDER — the one place it is written for the whole program (other files point here).
 * A thread holding a lock may take only locks further down this list:
 *
 *   storage (storage/internal.h has the fields; storage/README the why):
 *     1. bg_lock          sweeper cursor, automove state
 *     2. shard lock       one key's shard; foo() takes it and calls do_foo(), which requires
 *                         it (checked under -DCACHED_DEBUG). Never two shards at once, except
 *                         that a class-lock holder (eviction, page moves) may *try* another.
 *     3. slab class lock  a class's free list and hand; a second class only by trylock
 *     4. arena lock       handing out fresh pages
 *   leaf locks: nothing else is ever taken while one is held, and none is held while calling
 *   into storage or into proto_process (so none has other locks depending on it, memcached's
 *   doc/threads.txt rule for its stats lock):
 *     server/worker.c  stats_reset_lock  (`stats` / `stats reset` readers of the per-worker
 *                                         counters; the counters themselves are lock-free
 *                                         single-writer atomics, protocol/stats.h)
 *     server/worker.h  qlock (hand-over queue), conns_lock (connection list, `stats conns`)
 *     server/tls.c     ctx_lock, keys_lock;  protocol/auth.c db_lock;
 *     protocol/observe.c the top-k sort lock
     server/watch.c     each watcher's lock (`watch`: a line is copied into a watcher's
                        buffer; storage_observe's eviction callback does it under a shard
                        and a class lock, which is why it must stay a leaf)
 *   No lock is held across proto_process: the request path takes only storage's locks.
 *
 * References: an item returned by any function here carries one reference for the caller,
 * who must drop it with item_put() when done (e.g. after its value has been written to a
 * socket). The hash table holds a reference of its own while the item is linked; an item is
 * freed when the last reference is dropped, so a value can be written from the item while
 * another thread replaces or deletes the key.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/clock.h"
#include "storage/item.h"

#define KEY_MAX_LENGTH 250

struct storage_config {
    size_t mem_limit;      /* hard cap on item memory, bytes */
    size_t item_size_max;  /* largest item incl. header; also the slab page size (min 1 MB) */
    double growth_factor;  /* between chunk sizes of successive classes */
    uint32_t chunk_min;    /* space for key+value in the smallest chunk */
    size_t chunk_max;      /* largest graduated chunk (0: half a page); bigger items take a
                              page-sized chunk (memcached's slab_chunk_max, without chunking) */
    bool evictions;        /* false: ST_NO_MEMORY instead of evicting (-M) */
    bool use_cas;          /* false: items carry no CAS (-C) */
    uint32_t shards;       /* power of two */
    bool automove;         /* move pages between classes */
    unsigned hash_power_init; /* initial buckets over all shards, log2 (0: 16) */
    const char *memory_file; /* -e: the arena lives in this file (warm restart), or NULL */
};

enum st_result {
    ST_OK = 0,       /* stored / deleted / touched / found */
    ST_NOT_STORED,   /* add on existing key, replace/append/prepend on a missing key */
    ST_EXISTS,       /* cas mismatch */
    ST_NOT_FOUND,    /* missing (or expired, or flushed) */
    ST_TOO_LARGE,    /* item larger than item_size_max */
    ST_NO_MEMORY,    /* nothing could be evicted (or evictions are disabled) */
    ST_NON_NUMERIC,  /* incr/decr on a value that is not an unsigned 64-bit decimal */
    ST_REF_SATURATED, /* the item's reference count is full (a reply holds it 65000 times) */
};

enum store_op { OP_SET, OP_ADD, OP_REPLACE, OP_APPEND, OP_PREPEND, OP_CAS };

/* Lifecycle. storage_setup returns 0, or -1 with a reason in errbuf. */
int storage_setup(const struct storage_config *cfg, char *errbuf, size_t errlen);
void storage_teardown(void);

/*
 * Allocates an unlinked item able to hold nkey + nbytes (value without its "\r\n"),
 * evicting if needed. On failure returns NULL and sets *res to ST_TOO_LARGE or ST_NO_MEMORY.
 * The caller copies the value into item_value(it), then stores it with storage_store() and
 * drops its reference with item_put(), or just drops it.
 * exptime is the relative time from clock_exptime().
 */
struct item *item_alloc(const char *key, size_t nkey, uint32_t flags, rel_time_t exptime,
                        uint32_t nbytes, enum st_result *res);
/* The key's hash, as storage uses it. A set hashes its key once: storage_key_hash, then
 * item_alloc_hv and storage_store_hv with that hash (each plain form hashes the key itself;
 * the hash was ~70 of a set's ~2,900 instructions, callgrind). hv must be the key's. */
uint64_t storage_key_hash(const char *key, size_t nkey);
struct item *item_alloc_hv(const char *key, size_t nkey, uint64_t hv, uint32_t flags,
                           rel_time_t exptime, uint32_t nbytes, enum st_result *res);
void item_put(struct item *it);
/* Whether an item of this key length, flags and value length is within -I, counted as memcached
 * counts it, so the same values fit as in memcached. */
bool item_fits(size_t nkey, uint32_t flags, size_t nbytes);

/*
 * Stores it by op. For OP_CAS, cas is the value the client sent. On ST_OK, *cas_out (if not
 * NULL) receives the stored item's new CAS. Append/prepend build a new item from the old value
 * and it (keeping the old flags and exptime); past item_size_max they return ST_NOT_STORED.
 * A set/cas/add/replace whose item could not be allocated is not this function's business:
 * the caller must call storage_delete() for OP_SET on ST_TOO_LARGE (memcached drops the key).
 */
enum st_result storage_store(struct item *it, enum store_op op, uint64_t cas, uint64_t *cas_out);
enum st_result storage_store_hv(struct item *it, uint64_t hv, enum store_op op, uint64_t cas,
                                uint64_t *cas_out);

/* Looks up a live item and takes a reference (NULL: miss). Marks it fetched and recently used
 * (no global lock). Expired or flushed items found here are unlinked and counted. */
struct item *storage_get(const char *key, size_t nkey);

/*
 * Batched lookups (the protocol's lookahead over pipelined gets): storage_hash() once per
 * key, then storage_prefetch_bucket() for every key of the batch (no lock), then
 * storage_prefetch_item() for every key (reads the bucket under the shard lock and brings the
 * chain's first item toward the cache), then storage_prefetch_chain() (the second item), then
 * storage_get_hashed() for each: the cache misses
 * of the batch overlap instead of stalling one get after the other. Hints only: a key
 * changed or missing meanwhile is just looked up as usual.
 */
uint64_t storage_hash(const void *key, size_t len); /* xxHash64 (storage/hash.c) */
void storage_prefetch_bucket(uint64_t hv);
/* ... returns a cursor (the chain's first item, 0: none) for storage_prefetch_chain(), which
 * prefetches the item after it (a key that is not first in its chain) and returns its cursor. */
uint32_t storage_prefetch_item(uint64_t hv);
uint32_t storage_prefetch_chain(uint32_t cursor);
/* storage_get() with hv = storage_hash(key, nkey). */
struct item *storage_get_hashed(const char *key, size_t nkey, uint64_t hv);

/* Sets the item's exptime and returns it referenced (gat/gats/touch), or NULL on a miss. */
struct item *storage_touch(const char *key, size_t nkey, rel_time_t exptime);

/* A key to look up in a batch. */
struct storage_key {
    const char *p;
    size_t len;
};
#define STORAGE_BATCH_MAX 32
/*
 * The keys of a multi-get: out[i] is what storage_get(keys[i]) (touch: storage_touch(keys[i],
 * exptime)) would return, for i < n <= STORAGE_BATCH_MAX (more are not looked up). Each
 * shard's lock is taken twice per batch, never two at once; a hold covers at most n chain
 * walks. Faster than n calls because the batch's cache misses overlap.
 */
void storage_get_batch(const struct storage_key *keys, size_t n, bool touch, rel_time_t exptime,
                       struct item **out);

/* Deletes; cas 0 means unconditional. ST_OK, ST_NOT_FOUND, or ST_EXISTS on a cas mismatch. */
enum st_result storage_delete(const char *key, size_t nkey, uint64_t cas);

/*
 * incr (incr=true) wraps at 2^64; decr floors at 0. On ST_OK *value is the new number; the
 * stored text is its decimal form (in place, space-padded, when it fits and no reply holds
 * the item; else a new item), flags and exptime
 * kept, CAS bumped. ST_NOT_FOUND, ST_NON_NUMERIC, ST_NO_MEMORY otherwise.
 */
enum st_result storage_arith(const char *key, size_t nkey, bool incr, uint64_t delta,
                             uint64_t *value, uint64_t *cas_out);

/* flush_all: `when` is clock_now() for an immediate flush, else clock_exptime(delay). Every
 * item stored before `when` is invalid from `when` on (memcached's oldest_live rule, including
 * its quirk that an absolute time in the past flushes nothing). O(1); the items are reclaimed
 * lazily and by the sweeper. */
void storage_flush(rel_time_t when);

/*
 * Background work, called from the server's maintenance timer. Each call does a bounded step
 * (at most max_items items examined, roughly) and returns how many items it reclaimed.
 */
size_t storage_sweep_step(size_t max_items);
/* Moves at most one page toward a class that is evicting; returns true if one moved. A page
 * move asked for by storage_slabs_reassign is carried on here whatever the automove level. */
bool storage_automove_step(void);
/* Called every maintenance tick (100 ms): continues a page move in progress, and runs
 * storage_automove_step every tick at automove level 2, every 10th at level 1. */
void storage_slab_tick(void);
/*
 * Event observers, for memcached's `watch evictions` / `watch sysevents` (the protocol layer
 * registers them while someone watches; storage knows nothing of the lines). NULL: none, and
 * then the only cost is one relaxed load where the event happens (never on a get or a set
 * that does not evict). They run under storage's locks (a shard and a class lock for
 * evictions): they must not call into storage, and may take only leaf locks.
 *   evicted:    a live item is being evicted to make room (not expired/flushed reclaims, nor
 *               a page move's victims: memcached logs only its LRU tail evictions). cls is
 *               the item's class id (from 1); fetched whether it was ever read.
 *   slab_moved: automove (level 1) chose to move a page from class src to class dst.
 */
typedef void (*storage_evicted_fn)(const struct item *it, unsigned cls, bool fetched,
                                   rel_time_t now);
typedef void (*storage_slab_moved_fn)(unsigned src, unsigned dst);
void storage_observe(storage_evicted_fn evicted, storage_slab_moved_fn slab_moved);

/* memcached's flat LRU (true: -o no_modern / no_lru_maintainer, `lru mode flat`) or cached's
 * default, the counterpart of its segmented one (false: an item fetched twice is protected).
 * Flat: a hit counts at most once a minute, as memcached's ITEM_UPDATE_INTERVAL. */
void storage_set_lru_flat(bool flat);
bool storage_lru_flat(void);

/* memcached's `slabs automove 0|1|2` (0 off, 1 a step per second, 2 ten per second). */
void storage_set_automove(unsigned level);
unsigned storage_automove_level(void);
/* memcached's slab_automove_window (seconds; 0 keeps it) and slab_automove_ratio (0 keeps it):
 * the quiet time before a class's spare free pages go back to the pool, and the age ratio a
 * move between classes needs. */
void storage_set_automove_tuning(uint32_t window, double ratio);
double storage_automove_ratio(void);

/* memcached's `slabs reassign <src> <dst>`: ids are 1-based classes, 0 the pool of free
 * pages, src -1 any class with a page to spare. The move itself runs in the background
 * (storage_slab_tick), evicting what lies on the page, as memcached's rebalancer does. */
enum slab_reassign_result {
    REASSIGN_OK = 0,
    REASSIGN_RUNNING,      /* a move is still in progress */
    REASSIGN_BADCLASS,     /* src or dst out of range */
    REASSIGN_NOSPARE,      /* src holds fewer than two pages */
    REASSIGN_SRC_DST_SAME,
};
enum slab_reassign_result storage_slabs_reassign(int src, int dst);
/* One bounded step of incremental hash-table growth for every shard that is growing. */
void storage_maintenance_step(void);

/* ---- warm restart (-e, storage/persist.c) ---- */

/*
 * Writes FILE.meta describing the arena in the memory file, so the next storage_setup with
 * the same file and layout settings restores every live item. Call once no other thread
 * touches storage (after the workers stopped), before storage_teardown. 0, or -1 with a
 * reason in errbuf (nothing is saved then). *items gets the number of items saved.
 */
int storage_save(char *errbuf, size_t errlen, uint64_t *items);
/* After storage_setup with a memory file: the one line to log about the saved state (why it
 * was refused, or what was restored); false when there is nothing to say (a fresh file).
 * *restored tells which. */
bool storage_persist_note(char *buf, size_t len, bool *restored);

/* ---- walking every item (lru_crawler metadump) ---- */

#define STORAGE_MAX_CLASS_ID 256 /* class ids are 1..storage_class_count() */

struct storage_item_info {
    const char *key;
    size_t nkey;
    rel_time_t exptime, atime;
    uint64_t cas;
    bool fetched;
    unsigned cls;
    size_t size; /* header + key + value */
};
typedef void (*storage_walk_fn)(void *arg, const struct storage_item_info *ii);

/* A resumable walk over every live item (storage/walk.c explains the cursor). Plain data: it
 * holds no lock and no reference between steps, so it may be dropped at any time. */
struct storage_walk {
    uint64_t class_mask[STORAGE_MAX_CLASS_ID / 64]; /* bit c: class id c is dumped */
    bool all;                                       /* every class */
    uint32_t shard;                                 /* shard being walked */
    uint64_t pos;                                   /* position in it, 0 .. 2^32 */
};
/* class_mask NULL: every class. */
void storage_walk_begin(struct storage_walk *w, const uint64_t *class_mask);
/* Calls fn for the live items of the next buckets, about `budget` of them (whole buckets),
 * under one shard's lock: fn must not call into storage. Items changed meanwhile may or may
 * not be seen (no snapshot, as memcached); one present throughout is seen exactly once.
 * Returns true when the walk is complete. */
bool storage_walk_step(struct storage_walk *w, size_t budget, storage_walk_fn fn, void *arg);
/*
 * memcached's `lru_crawler crawl <classes>`: a pass over the chunks of the classes whose bit
 * is set in class_mask (bit c: class id c; NULL: all) that frees expired and flushed items, at most tocrawl items
 * checked per class (0: all). It runs in steps from the maintenance tick (storage_crawl_step);
 * false if a pass is still running (memcached's BUSY).
 */
bool storage_crawl_start(const uint64_t *class_mask, uint32_t tocrawl);
/* One bounded step (about max_chunks chunks) of the pass; false once none is running. */
bool storage_crawl_step(size_t max_chunks);
/* memcached's lru_crawler_sleep: the pass pauses this many µs (0..1000000) after each
 * STORAGE_CRAWL_BATCH chunks. storage_crawl_tick runs what tick_us of wall time allows of it
 * (at most max_chunks chunks): the pauses are paid from the time between ticks, so a worker
 * or the maintenance thread never sleeps. */
#define STORAGE_CRAWL_BATCH 1000
void storage_crawl_set_sleep(uint32_t usec);
uint32_t storage_crawl_sleep(void);
bool storage_crawl_tick(uint32_t tick_us, size_t max_chunks);
void storage_crawl_stop(void);
bool storage_crawl_running(void);
/* Number of slab classes (valid class ids are 1..this). */
unsigned storage_class_count(void);

/* ---- statistics ---- */

/* memcached's slab class id (1-based) of an item, for per-class counters. */
unsigned storage_item_class(const struct item *it);
/* The class id of the item the calling thread's last storage_delete / storage_arith /
 * storage_meta_delete / storage_meta_arith found (0: none yet): per-class delete/incr/decr
 * hits for callers that get no item back. */
unsigned storage_last_class(void);
/*
 * cache_memlimit: the item memory limit becomes bytes. Growing takes effect at once (new pages
 * become available). Shrinking is bounded by what is in use: pages already handed to slab
 * classes stay with them (their items stay; the cache just stops taking new pages), the
 * unused pages above the new limit go back to the system, and so do pages drained to the pool
 * later while more than the limit is handed out. False if bytes is beyond the address
 * space reserved at setup (32 GB of refs).
 */
bool storage_set_mem_limit(size_t bytes);
/* `stats cachedump`: calls fn for each linked item of class id (memcached's 1-based id), in
 * page order, under that class's lock (no chunk of the class is reused meanwhile; the key and
 * sizes are stable, nothing else may be relied on), until fn returns false. False if the
 * class does not exist. */
bool storage_class_dump(unsigned id, bool (*fn)(void *arg, const struct item *it), void *arg);

struct storage_stats {
    uint64_t curr_items, total_items, bytes; /* bytes: sum of item sizes (header+key+value) */
    uint64_t evictions, evicted_unfetched, expired_unfetched, reclaimed, evicted_active;
    uint64_t get_expired, get_flushed;       /* misses caused by expiry / flush */
    uint64_t total_malloced;                 /* bytes of slab pages handed to classes */
    uint64_t slabs_moved, hash_power_level, hash_bytes, hash_is_expanding;
    uint64_t sweeper_runs, sweeper_reclaimed;
    uint64_t item_header_bytes;              /* sizeof header incl. CAS when on */
    uint64_t ref_saturated;                  /* hits answered as misses: refcount full */
    uint64_t global_page_pool;               /* pages not yet given to any class */
    uint64_t oldest_live;                    /* flush_all's rel_time mark (0: none) */
    uint64_t shard_lock_waits, class_lock_waits; /* lock taken when asked for: contention */
    uint64_t crawler_reclaimed, crawler_items_checked; /* storage_crawl_start's passes */
    uint64_t crawl_starts, crawl_running;
    uint64_t reassign_rescues, reassign_evictions_nomem, reassign_busy_items, reassign_running;
};
void storage_stats(struct storage_stats *out);
/* Why the calling thread's last lookup of a key found no live item: absent, or there but
 * expired / flushed (and reclaimed by that lookup). memcached's `watch fetchers` says which. */
enum storage_miss { STORAGE_MISS_ABSENT, STORAGE_MISS_FLUSHED, STORAGE_MISS_EXPIRED };
enum storage_miss storage_last_miss(void);
/* The size memcached would give this item (its ITEM_ntotal: 48-byte header, CAS, key + NUL,
 * value + "\r\n", 4 bytes of nonzero client flags): `me` size=, `stats sizes`. */
size_t storage_item_mc_size(const struct item *it);
/* memcached's `stats sizes` (storage/sizes.c): linked items by memcached's size of them, in
 * 32-byte buckets. Enabling uses up a CAS id (memcached's watermark) and fails without CAS. */
enum storage_sizes_status { SIZES_ENABLED, SIZES_NO_CAS, SIZES_NO_MEMORY };
/* at_start: -o track_sizes, which memcached honours without CAS too (counting every item). */
enum storage_sizes_status storage_sizes_enable(bool at_start);
void storage_sizes_disable(void);
bool storage_sizes_enabled(void);
/* Calls fn(bucket's low bound, count) for each nonzero bucket; false (no call) when disabled. */
bool storage_sizes_each(void (*fn)(void *arg, uint32_t size, uint32_t count), void *arg);
void storage_stats_reset(void);

struct slab_class_stats {
    uint32_t id;            /* memcached numbers classes from 1 */
    uint32_t chunk_size;
    uint32_t chunks_per_page;
    uint64_t total_pages, total_chunks, used_chunks, free_chunks;
    uint64_t mem_requested; /* sum of item sizes in this class */
    uint64_t number, evicted, evicted_unfetched, expired_unfetched, reclaimed, outofmemory;
    uint64_t age;           /* idle seconds of the items next in line for eviction (below) */
    uint64_t evicted_nonzero, evicted_time, evicted_active;
    uint64_t crawler_reclaimed, crawler_items_checked; /* storage_crawl_start's passes */
};
/* Calls fn for every class that has at least one page; returns the number of classes.
 * age is memcached's "age of the LRU tail": the longest idle time (now - last access) among
 * the linked items the CLOCK hand reaches next (up to 65536 chunks from the hand, so exact
 * for a class of up to that many chunks). */
unsigned storage_slab_stats(void (*fn)(void *arg, const struct slab_class_stats *s), void *arg);
