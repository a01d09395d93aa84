/*
 * slab: the item arena, its size classes, CLOCK eviction and page moves (automove).
 *
 * The arena is one mmap(MAP_NORESERVE) region of whole pages (page = max(-I, 1 MB)); pages
 * are handed to classes on first need, so RSS grows only with use. -m bounds the pages, except
 * that, as in memcached, a class that owns no page gets its first one past -m
 * (first_page_over_limit).
 * A class cuts its pages into equal chunks; free chunks carry ITEM_FREE and sit on the
 * class's doubly-linked free list (links stored in the chunk: hnext = next, exptime = prev),
 * so a page being moved can pull its free chunks out one by one in O(1).
 *
 * Eviction is CLOCK per class with two frequency bits (ITEM_ACTIVE, ITEM_HOT; the policy and
 * why it was chosen are above clock_spare): the hand walks the class's chunks, ages the bits
 * on the way, reclaims expired or flushed items and evicts the first cold item that only the
 * hash table references. The walk is bounded (CLOCK_BUDGET chunks); a second bounded pass
 * then evicts active items too (counted as evicted_active), so a set fails with ST_NO_MEMORY
 * only when nothing in reach can be evicted.
 *
 * Locks: class lock -> arena lock. Under a class lock shard locks are only tried, except the
 * shard this thread already holds (tl_held_shard: append/incr allocate under it).
 */
#include "storage/internal.h"
#include "storage/persist.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define CLOCK_BUDGET 1024
/* Below this chunk size classes step by 8 bytes; above it they grow by -f (see README). */
#define SLAB_FINE_LIMIT 256
/* ... but only in an arena of at least this many pages. Every class in use holds at least one
 * page, and the fine steps add ~22 classes: in a small arena those pages are a larger loss than
 * the rounding they save. -m 16, Zipf 0.99 cache-aside over values of 100-1,000 B: ~30 classes
 * in use for 16 pages, half the memory idle in pages of classes that see few sets, 19,700
 * items held (memcached: 28,000); with the -f series alone the same trace uses ~10 classes. */
#define SLAB_FINE_MIN_PAGES 256
/* Classes of chunks above page / this are page / k (slab_setup). */
#define SLAB_PAGE_SPLIT 16
/* A page move that cannot finish (items stay referenced) is abandoned after this many steps. */
#define DRAIN_MAX_TRIES 64

#define FREE_NEXT(it) ((it)->hnext)
#define FREE_PREV(it) ((it)->exptime)

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static char *page_base(uint32_t pg)
{
    return stg.arena + (size_t)pg * stg.page_size;
}

/* ---- free lists (class lock held) ---- */

static void free_push(struct slab_class *c, struct item *it)
{
    uint32_t ref = item_ref_of(it);
    FREE_NEXT(it) = c->free_head;
    FREE_PREV(it) = 0;
    if (c->free_head)
        FREE_PREV(ref_item(c->free_head)) = ref;
    c->free_head = ref;
    c->free_count++;
}

static void free_remove(struct slab_class *c, struct item *it)
{
    uint32_t next = FREE_NEXT(it), prev = FREE_PREV(it);
    if (prev)
        FREE_NEXT(ref_item(prev)) = next;
    else
        c->free_head = next;
    if (next)
        FREE_PREV(ref_item(next)) = prev;
    c->free_count--;
}

static struct item *free_pop(struct slab_class *c)
{
    if (!c->free_head)
        return NULL;
    struct item *it = ref_item(c->free_head);
    free_remove(c, it);
    return it;
}

/* ---- pages ---- */

static void window_resize(struct slab_class *c);

static void page_give(struct slab_class *c, unsigned ci, uint32_t pg)
{
    stg.pmeta[pg] =
        (struct page_meta){.used = 0, .cls = (uint8_t)ci, .draining = 0, .since = clock_now()};
    if (c->npages == c->pages_cap) {
        c->pages_cap = c->pages_cap ? c->pages_cap * 2 : 8;
        c->pages = mem_realloc(c->pages, (size_t)c->pages_cap * sizeof(*c->pages));
    }
    c->pages[c->npages++] = pg;
    /* pushed from the end so that allocation proceeds in address order */
    char *base = page_base(pg);
    for (uint32_t i = c->perslab; i-- > 0;) {
        struct item *it = (struct item *)(base + (size_t)i * c->size);
        atomic_store_explicit(&it->refcount, 0, memory_order_relaxed);
        atomic_store_explicit(&it->iflags, ITEM_FREE, memory_order_relaxed);
        free_push(c, it);
    }
    window_resize(c);
}

/*
 * Pages given back to the system (`cache_memlimit` shrank below what was handed out): a page
 * drained to the pool while the arena holds more pages than the limit is madvise'd away and
 * kept here instead, so total_malloced (pages handed out, less these) falls to the limit, as
 * memcached frees pool pages past its limit. page_grab reuses them while under the limit.
 * Arena lock.
 */
static uint32_t *freed_pages, nfreed, limit_pages;

static uint32_t malloced_pages(void)
{
    return stg.pages_assigned - nfreed;
}

/* Arena lock held. */
static void page_release(uint32_t pg)
{
    madvise(page_base(pg), stg.page_size, MADV_DONTNEED);
    freed_pages = mem_realloc(freed_pages, (size_t)(nfreed + 1) * sizeof(*freed_pages));
    freed_pages[nfreed++] = pg;
}

/* The limit in pages (cache_memlimit, -m). Arena lock held. */
static void set_limit_pages(size_t bytes)
{
    size_t want = bytes / stg.page_size;
    limit_pages = want ? (uint32_t)(want < UINT32_MAX ? want : UINT32_MAX) : 1;
    /* memcached's memory_release: what the pool holds past the limit goes at once */
    while (stg.npool && malloced_pages() > limit_pages)
        page_release(stg.pool[--stg.npool]);
}

uint64_t slab_malloced_bytes(void)
{
    pthread_mutex_lock(&stg.arena_lock);
    uint64_t n = malloced_pages();
    pthread_mutex_unlock(&stg.arena_lock);
    return n * stg.page_size;
}

/*
 * A class that owns no page gets one even past -m, as memcached's do_slabs_newslab grants a
 * class its first page whatever the limit (`mem_malloced + len > mem_limit && p->slabs > 0`
 * refuses only classes that have one). So, as in memcached, -m bounds the pages of classes in
 * use plus at most one page per class: with more sizes in use than -m has pages memcached holds
 * a page for each (tools/bench_hitgrid.py 20classes: 20 sizes at -m 8, memcached 21 pages,
 * 69.7% hits; cached kept to 8 pages, borrowing larger chunks and stealing, and hit 60.3%;
 * lognorm-m16, values mostly small with a tail to 1 MB: memcached 34 pages, 76.2%, cached
 * 16 pages, 64.5%; wsshift at -m 8: 9 classes, memcached 9 pages, 72.4%, cached 68.3%).
 * The overdraft is bounded by the class count (at most 63 pages, memcached's class limit);
 * none with -e (the file's layout is fixed), and none under -m of 8 pages: a tiny -m stays a
 * hard cap (tests/integration/test_fault_tiny_mem.py, -m 1-4 with up to 250 classes, holds
 * `bytes` within -m and RSS within -m + 32 MB; with the overdraft, -m 1 -f 1.01 took 261 MB).
 * Arena lock held.
 */
#define FIRST_PAGE_MIN_PAGES 8 /* no overdraft under -m of this many pages */
#define FIRST_PAGE_MAX_OVER 63  /* memcached has at most 63 classes: at most 63 pages over */

static bool first_page_over_limit(void)
{
    uint32_t over = stg.nclasses < FIRST_PAGE_MAX_OVER ? stg.nclasses : FIRST_PAGE_MAX_OVER;
    if (stg.cfg.memory_file != NULL || stg.pages_assigned >= stg.max_pages ||
        limit_pages < FIRST_PAGE_MIN_PAGES ||
        malloced_pages() >= (uint64_t)limit_pages + over)
        return false;
    if (stg.pages_assigned < stg.npages)
        return true;
    if (mprotect(page_base(stg.npages), stg.page_size, PROT_READ | PROT_WRITE) != 0)
        return false;
    stg.npages++;
    return true;
}

static bool page_grab(struct slab_class *c, unsigned ci)
{
    pthread_mutex_lock(&stg.arena_lock);
    uint32_t pg;
    if (limit_pages == 0)
        set_limit_pages(stg.cfg.mem_limit);
    if (stg.npool) {
        pg = stg.pool[--stg.npool];
    } else if (nfreed && malloced_pages() < limit_pages) {
        pg = freed_pages[--nfreed];
    } else if ((stg.pages_assigned < stg.npages && malloced_pages() < limit_pages) ||
               (c->npages == 0 && first_page_over_limit())) {
        pg = stg.pages_assigned++; /* a fresh page: within -m, or a class's first past it */
    } else {
        pthread_mutex_unlock(&stg.arena_lock);
        return false;
    }
    pthread_mutex_unlock(&stg.arena_lock);
    page_give(c, ci, pg);
    return true;
}

static void page_remove(struct slab_class *c, uint32_t pg)
{
    for (uint32_t i = 0; i < c->npages; i++) {
        if (c->pages[i] != pg)
            continue;
        c->pages[i] = c->pages[--c->npages];
        if (c->hand_page == i)
            c->hand_chunk = 0;
        else if (c->hand_page == c->npages)
            c->hand_page = i;
        window_resize(c);
        return;
    }
}

/* ---- classes ---- */

/* The class of every item size up to SLAB_LOOKUP_MAX, by size in 8-byte steps (filled by
 * slab_setup): the binary search was ~75 of a set's ~2,900 instructions (callgrind). */
#define SLAB_LOOKUP_MAX 16384
_Static_assert(SLAB_MAX_CLASSES <= 256, "class_lookup holds class numbers in bytes");
static uint8_t class_lookup[SLAB_LOOKUP_MAX / 8 + 1];

static unsigned class_search(size_t ntotal)
{
    unsigned lo = 0, hi = stg.nclasses;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (stg.classes[mid].size < ntotal)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

unsigned slab_class_for(size_t ntotal)
{
    if (ntotal <= SLAB_LOOKUP_MAX)
        return class_lookup[(ntotal + 7) / 8];
    return class_search(ntotal);
}

/* Transparent huge pages: the unit the arena is reserved in and aligned to. */
#define ARENA_HUGE_PAGE ((size_t)2 << 20)

/*
 * Reserves `bytes` of address space for the arena (PROT_NONE: no memory yet), aligned to 2 MB
 * and marked for transparent huge pages (MADV_HUGEPAGE, which the kernel's default
 * "madvise" THP mode honours). Why: items are spread over the whole arena, so with 4 KB pages
 * a get of a working set past the TLB's reach (~8 MB) pays a page walk for the item, twice
 * over under virtualisation, in user space and again in the kernel's copy of the value
 * (perf: _copy_from_iter was a fifth of the server's samples with 1 KB values). Cost: RSS
 * grows in 2 MB steps at the arena's frontier (pages are handed out in order), and a 1 MB
 * page given back (MADV_DONTNEED) splits its huge page. memcached's -L preallocates huge
 * pages instead; cached refuses -L and does this always.
 */
static void *arena_reserve(size_t bytes)
{
    size_t len = bytes + ARENA_HUGE_PAGE;
    char *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return MAP_FAILED;
    char *a = (char *)(((uintptr_t)p + ARENA_HUGE_PAGE - 1) & ~(uintptr_t)(ARENA_HUGE_PAGE - 1));
    if (a > p)
        munmap(p, (size_t)(a - p));
    if (a + bytes < p + len)
        munmap(a + bytes, (size_t)(p + len - (a + bytes)));
#ifdef MADV_HUGEPAGE
    madvise(a, bytes, MADV_HUGEPAGE); /* a hint: without THP the arena works as before */
#endif
    return a;
}

int slab_setup(char *errbuf, size_t errlen)
{
    const struct storage_config *cfg = &stg.cfg;
    size_t page = cfg->item_size_max > (1u << 20) ? cfg->item_size_max : (1u << 20);
    page = align8(page);
    if (page > (1u << 30)) {
        snprintf(errbuf, errlen, "item size max %zu is above the 1 GB limit", cfg->item_size_max);
        return -1;
    }
    stg.page_size = (uint32_t)page;
    stg.page_shift = (page & (page - 1)) == 0 ? (uint32_t)__builtin_ctzll(page) : 0;
    size_t npages = cfg->mem_limit / page;
    if (npages == 0)
        npages = 1; /* the smallest arena is one page */
    /* 32-bit refs count 8-byte units: the arena must stay within 32 GB. */
    if ((uint64_t)npages * page > ((uint64_t)1 << 35)) {
        snprintf(errbuf, errlen, "memory limit %zu MB is above the 32768 MB this build supports",
                 cfg->mem_limit >> 20);
        return -1;
    }
    stg.npages = (uint32_t)npages;
    size_t max_pages = npages;
    void *p = MAP_FAILED;
    if (cfg->memory_file != NULL) { /* -e: the arena lives in the file (persist.c), fixed */
        stg.arena_bytes = npages * page;
        p = persist_map(stg.arena_bytes, errbuf, errlen);
        if (p == NULL)
            return -1;
    } else {
        /* Address space for the largest arena refs can reach is reserved (PROT_NONE: no
         * memory, no overcommit charge); -m's pages are made usable now, cache_memlimit can
         * add more later without moving the arena (items are addressed by offset from it). */
        max_pages = (size_t)(((uint64_t)1 << 35) / page);
        if (max_pages < npages)
            max_pages = npages;
        p = arena_reserve(max_pages * page);
        if (p == MAP_FAILED) { /* address space limited (ulimit -v): no room to grow */
            max_pages = npages;
            p = arena_reserve(max_pages * page);
        }
        if (p != MAP_FAILED && mprotect(p, npages * page, PROT_READ | PROT_WRITE) != 0) {
            munmap(p, max_pages * page);
            p = MAP_FAILED;
        }
        stg.arena_bytes = max_pages * page; /* what teardown unmaps */
    }
    if (p == MAP_FAILED) {
        snprintf(errbuf, errlen, "cannot reserve %zu bytes for items", npages * page);
        return -1;
    }
    stg.max_pages = (uint32_t)max_pages;
    stg.arena = p;
    stg.pmeta = mem_calloc(max_pages, sizeof(*stg.pmeta));
    pthread_mutex_init(&stg.arena_lock, NULL);
    stg.pages_assigned = 0;

    if (!(cfg->growth_factor > 1.0)) {
        snprintf(errbuf, errlen, "growth factor must be above 1.0");
        return -1;
    }
    size_t sz = align8(stg.header_size + (size_t)cfg->chunk_min);
    size_t top = cfg->chunk_max && cfg->chunk_max < page / 2 ? cfg->chunk_max : page / 2;
    unsigned n = 0;
    while (n < SLAB_MAX_CLASSES - 1 && (sz <= top || n == 0)) {
        size_t use = sz;
        if (sz > page / SLAB_PAGE_SPLIT) /* the most bytes with as many chunks a page */
            use = (page / (page / sz)) & ~(size_t)7;
        if (use > top)
            use = top & ~(size_t)7;
        if (n == 0 || use > stg.classes[n - 1].size)
            stg.classes[n++].size = (uint32_t)use;
        bool fine = sz < SLAB_FINE_LIMIT && npages >= SLAB_FINE_MIN_PAGES;
        size_t next = fine ? sz + 8 : align8((size_t)((double)sz * cfg->growth_factor));
        sz = next > sz ? next : sz + 8;
    }
    /* Above page / SLAB_PAGE_SPLIT a class holds few chunks and the -f series left up to a
     * chunk of each page unused: each such class is rounded up to page / k, the largest chunk
     * with as many a page (class numbers stay those of the -f series: memcached's
     * slabs_reassign.t names classes by number). 100 KB values took 120,320-byte chunks, 8 a
     * page (memcached: 103,496, 10 a page); now 104,856, 10 a page: tools/bench_hitgrid.py
     * val100KB (-m 64, 2,000 keys, Zipf 0.9) 72.6-73.3% -> 76.0-76.4% (memcached 73.6-74.4%).
     * And the largest chunked class is top (half a page), as memcached's last class is
     * slab_chunk_max: the -f series stopped at 459 KB, and a 500 KB value took a whole page
     * (val500KB: 51.9% against memcached's 64.5%). */
    if (stg.classes[n - 1].size < top && n < SLAB_MAX_CLASSES - 1)
        stg.classes[n++].size = (uint32_t)(top & ~(size_t)7);
    stg.classes[n++].size = (uint32_t)page;
    stg.nclasses = n;
    for (unsigned i = 0; i < n; i++) {
        struct slab_class *c = &stg.classes[i];
        slock_init(&c->lock);
        c->perslab = (uint32_t)(page / c->size);
    }
    for (size_t i = 0; i < sizeof class_lookup; i++)
        class_lookup[i] = (uint8_t)class_search(i * 8);
    return 0;
}

void slab_teardown(void)
{
    for (unsigned i = 0; i < stg.nclasses; i++) {
        struct slab_class *c = &stg.classes[i];
        slock_destroy(&c->lock);
        mem_free(c->pages);
        mem_free(c->win);
        mem_free(c->ghost);
        memset(c, 0, sizeof(*c));
    }
    stg.nclasses = 0;
    mem_free(stg.pmeta);
    stg.pmeta = NULL;
    mem_free(stg.pool);
    stg.pool = NULL;
    stg.npool = 0;
    mem_free(freed_pages);
    freed_pages = NULL;
    nfreed = limit_pages = 0;
    if (stg.cfg.memory_file != NULL)
        persist_unmap();
    else if (stg.arena)
        munmap(stg.arena, stg.arena_bytes);
    stg.arena = NULL;
    pthread_mutex_destroy(&stg.arena_lock);
}

/* ---- eviction ---- */

static void ghost_remember(struct slab_class *c, uint64_t hv);

/*
 * Takes a linked item that only the table references out of the table, leaving its chunk
 * allocated (refcount 0) for the caller. Live items only when allow_live. Class lock held.
 */
static struct item *clock_take(struct slab_class *c, struct item *it, bool allow_live,
                               bool count_pressure)
{
    uint8_t fl = atomic_load_explicit(&it->iflags, memory_order_acquire);
    if (!(fl & ITEM_LINKED) || atomic_load_explicit(&it->refcount, memory_order_relaxed) != 1)
        return NULL;
    /* The key cannot change under us: the chunk is allocated and only a class-lock holder
     * can free it. */
    uint64_t hv = storage_hash(item_key(it), it->nkey);
    struct shard *sh = shard_of(hv);
    bool held = sh == tl_held_shard;
    if (!held && !slock_trylock(&sh->lock))
        return NULL;
    if (!held)
        shard_owner_set(sh);
    struct item *got = NULL;
    fl = item_iflags(it);
    if ((fl & ITEM_LINKED) && atomic_load(&it->refcount) == 1) {
        enum item_state s = item_state_at(it, clock_now());
        if (s != ITEM_LIVE || allow_live) {
            do_item_unlink_keepref(sh, it, hv);
            atomic_store(&it->refcount, 0);
            if (s != ITEM_LIVE) {
                c->reclaimed++;
                if (!(fl & ITEM_FETCHED))
                    c->expired_unfetched++;
            } else {
                c->evicted++;
                if (count_pressure)
                    c->pressure++;
                if (!(fl & ITEM_FETCHED))
                    c->evicted_unfetched++;
                if (fl & ITEM_ACTIVE)
                    c->evicted_active++;
                if (it->exptime != 0)
                    c->evicted_nonzero++;
                if (count_pressure)
                    ghost_remember(c, hv);
                rel_time_t now = clock_now();
                c->evicted_time = now > it->atime ? now - it->atime : 0;
                /* only from the CLOCK hand, as memcached logs only its LRU tail evictions */
                storage_evicted_fn on = atomic_load_explicit(&stg_on_evicted,
                                                             memory_order_relaxed);
                if (on != NULL && count_pressure)
                    on(it, (unsigned)(c - stg.classes) + 1, (fl & ITEM_FETCHED) != 0, now);
            }
            c->mem_requested -= item_total_size(it);
            got = it;
        }
    }
    if (!held) {
        shard_owner_clear(sh);
        slock_unlock(&sh->lock);
    }
    return got;
}

/*
 * The policy: S3-FIFO's probation and ghost in front of CLOCK with two bits of frequency and a
 * protected share (a segmented LRU without links). An item's place is its chunk, and a chunk
 * is reused where it is freed, so moving an item to another queue would mean copying it;
 * memcached's hot/warm/cold lists need 16 bytes of links and a maintainer thread. What fits:
 *   - the main ring: a new item sits just behind the hand, so the ring of chunks is a FIFO;
 *     ITEM_ACTIVE (any hit since the hand last passed) buys one more lap (second chance);
 *     ITEM_HOT (fetched twice) protects an item while HOT items are at most HOT_MAX_PCT of
 *     what the hand met in its last lap: the hand clears ACTIVE on them but does not evict
 *     them, so a one-time scan (keys fetched once at most) cannot flush a hot set. Over the
 *     share, a HOT item not used since the last lap loses HOT (memcached moves warm items to
 *     cold likewise) and is evicted a lap later unless used again.
 *   - the probation window (S3-FIFO's small queue, SOSP '23): the class keeps the refs of its
 *     newest items in store order, at most WIN_PCT of its chunks (8 bytes an entry, outside
 *     the item; the header stays 32 bytes). While the window holds at least half of that, an
 *     eviction takes its oldest entry: read since stored (ITEM_FETCHED) -> it graduates to
 *     the main ring where it already sits (nothing moves: the entry is dropped); never read
 *     -> evicted, unless the item under the main hand was never read either (it is older:
 *     that one goes, so a write stream nobody reads is still evicted oldest first).
 *   - the ghost: a key evicted live (from the window unread, or by the hand) leaves an 8-bit
 *     tag (direct-mapped by hash, two slots a chunk rounded up to a power of two: 2-4 bytes a
 *     chunk); stored again while its tag is there, it skips the window: its reuse is proven.
 * Zipf traffic: one-time keys leave after a short probation instead of a full lap, so the
 * ring keeps more of the keys that come back. A key-level simulation of
 * tools/bench_hitratio.py's zipf trace with cached's classes and pages (30,528 chunks at
 * -m 16; it reproduced the measured 78.5% exactly): CLOCK+HOT alone 78.5%, + ghost alone
 * 78.8%, + window without ghost 77.6%, window + ghost 79.6% (S3-FIFO with linked queues
 * 79.7%, W-TinyLFU 79.9%, LRU 76.9%; LFU with every key's full count, no classes and a
 * byte budget: 79.3% with -m 16's 16.8 MB, 81.3% if it also weighs by size).
 * Entries are checked when taken (the chunk still in this class, linked, same key hash), so
 * deletes, page moves and reuse need no bookkeeping: a stale entry is just dropped.
 * Locks: hits set the bits with atomic ORs under their shard lock; the window, the ghost and
 * the hand live under the class lock, so no new lock and no global list is touched on a hit.
 */
/* Zipf 0.99 cache-aside at -m 16 moved by 0.2 points between 30 and 100; 60 leaves room for a
 * hot set of up to 60% of a class and still demotes what stopped being used. */
#define HOT_MAX_PCT 60
/* The hand passes HOT items at 1/HOT_SKIP_COST of a chunk of its budget: a page full of them
 * (a hot set written together) must not make it give up and evict one on its second pass. */
#define HOT_SKIP_COST 16

/* Called as the hand leaves the class's last page: the lap's HOT share becomes the limit
 * test for the next lap. */
static void clock_lap_done(struct slab_class *c)
{
    c->hot_pct = c->lap_seen ? (uint32_t)((uint64_t)c->lap_hot * 100 / c->lap_seen) : 0;
    c->lap_seen = c->lap_hot = 0;
}

/* The chunk under the hand, which then moves on one chunk (NULL: a draining page, skipped). */
static struct item *clock_advance(struct slab_class *c)
{
    if (c->hand_page >= c->npages) {
        c->hand_page = 0;
        c->hand_chunk = 0;
        clock_lap_done(c);
    }
    uint32_t pg = c->pages[c->hand_page];
    if (stg.pmeta[pg].draining) {
        c->hand_page++;
        c->hand_chunk = 0;
        return NULL;
    }
    struct item *it = (struct item *)(page_base(pg) + (size_t)c->hand_chunk * c->size);
    if (++c->hand_chunk >= c->perslab) {
        c->hand_chunk = 0;
        c->hand_page++;
    }
    return it;
}

/*
 * One step of the hand over a linked live item on the first pass: true when it should stay
 * (its bits are aged on the way), false when it is the victim.
 */
static bool clock_spare(struct slab_class *c, struct item *it, uint8_t fl)
{
    c->lap_seen++;
    if (fl & ITEM_HOT) {
        c->lap_hot++;
        if (fl & ITEM_ACTIVE)
            item_flag_clear(it, ITEM_ACTIVE);
        else if (c->hot_pct > HOT_MAX_PCT)
            item_flag_clear(it, ITEM_HOT); /* demoted: evicted next lap unless used again */
        return true;
    }
    if (fl & ITEM_ACTIVE) {
        item_flag_clear(it, ITEM_ACTIVE); /* second chance */
        return true;
    }
    return false;
}

/* Before a live item is evicted, the next CLOCK_LOOKAHEAD chunks are checked for an expired
 * one to reclaim instead. The hand does not move: the victim stays first in line, so
 * evictions still follow insertion order (the hand once skipped ahead here, which spread
 * evictions over the ring and kept the oldest of a write stream: issue #12). */
#define CLOCK_LOOKAHEAD 32

/* passed: the hand has just moved past the victim-to-be, which goes back under it. */
static struct item *clock_reclaim_ahead(struct slab_class *c, rel_time_t now, bool passed)
{
    uint32_t pi = c->hand_page, ch = c->hand_chunk;
    for (unsigned n = 0; n < CLOCK_LOOKAHEAD && pi < c->npages; n++) {
        uint32_t pg = c->pages[pi];
        struct item *it = (struct item *)(page_base(pg) + (size_t)ch * c->size);
        if (++ch >= c->perslab) {
            ch = 0;
            pi++;
        }
        if (stg.pmeta[pg].draining || !(item_iflags(it) & ITEM_LINKED) ||
            item_state_at(it, now) == ITEM_LIVE)
            continue;
        struct item *got = clock_take(c, it, false, true);
        if (got && passed) {
            /* the victim-to-be goes back under the hand */
            if (c->hand_chunk == 0) {
                c->hand_page--;
                c->hand_chunk = c->perslab - 1;
            } else {
                c->hand_chunk--;
            }
        }
        if (got)
            return got;
    }
    return NULL;
}

/* ---- probation window and ghost ("The policy" above) ---- */

/* The window holds at most this share of a class's chunks... */
#define WIN_PCT 10
/* ... in a class of at least this many chunks (a class of a few large chunks stays a plain
 * FIFO ring: a window of one or two entries would only evict each new item at the next set). */
#define WIN_MIN_CHUNKS 128
/* Entries one eviction may take before leaving it to the hand (bounds the class-lock hold). */
#define WIN_POPS 64
/* Every this many evictions through the window (the first included) the main hand may pass
 * one ACTIVE or HOT item, ageing it, on its way to an unread one (clock_peek_unread). Without
 * it, one recently read item under the hand would shield the older unread items behind it:
 * fill a class, read 5 items, then write a stream that is never read, and only 49% of the
 * stream's newest fifth is kept (key-level simulation); with it and idle read items taken
 * like unread ones, 100% (test_eviction.py's test_reads_do_not_shield). Ageing on every eviction costs the zipf trace 0.45 points (the main ring
 * is aged too fast), every 8th nothing measurable. */
#define WIN_HAND_EVERY 8
/* ... and that 8 adapts per class, in quarter steps (hand_every holds it x HAND_Q), between
 * HAND_EVERY_MIN and HAND_EVERY_MAX: a ghost hit on a key the window evicted unread takes
 * HAND_DEC quarters off (the window evicts too eagerly: age the main ring faster, so its idle
 * items go instead), one on a key the hand evicted adds HAND_INC (ARC's rule: the side whose
 * ghost is hit should have kept more). A hot set that moves (tools/bench_hitgrid.py wsshift:
 * Zipf 1.0 over 20k keys, shifted to new keys every 20k requests, -m 8) left the last phase's
 * read items in the main ring while the window evicted the new phase's keys: 68.3% against
 * memcached's 72.5% (LRU's bound 73.1%); 71.4% adaptive (tools/hitsim; no window at all:
 * 72.3%, but the zipf trace falls from 79.7% to 77.4%). Equal steps (4/4) gave wsshift 71.5%,
 * zipf 79.1%; 2/4 keeps zipf at 79.6%, tests/integration/test_hitratio.py's traces the same
 * (80.3%, 83.7%). */
#define HAND_EVERY_MIN 1
#define HAND_EVERY_MAX 16
#define HAND_Q 4
#define HAND_DEC 2
#define HAND_INC 4

/* The ghost has GHOST_SLOTS_PER_CHUNK slots a chunk (rounded up to a power of two), each an
 * 8-bit tag: the same bytes as one 16-bit tag a chunk, twice the keys remembered. A false
 * match (1 in 255 per occupied slot) only lets a key skip the window. Zipf 0.99 cache-aside
 * at -m 16 (tools/hitsim): 16-bit tags, 1 slot a chunk, window evictions only 79.54%; 8-bit,
 * 2 slots, every eviction 79.70% (4 slots: 79.74%, twice the memory). */
#define GHOST_SLOTS_PER_CHUNK 2

static uint8_t ghost_tag(uint64_t hv)
{
    uint8_t t = (uint8_t)(hv >> 56) & 0xfe;
    return t ? t : 2; /* 0 is an empty slot; bit 0: evicted from the window */
}

/* A key evicted live by the hand or the window (not by a page move): remembered, so that if
 * it is stored again soon it skips the window. Class lock held. */
static void ghost_remember(struct slab_class *c, uint64_t hv)
{
    if (c->ghost != NULL)
        c->ghost[hv & c->ghost_mask] = ghost_tag(hv) | (c->ghost_win ? 1 : 0);
}

/* Fits window and ghost to the class's chunk count (after a page came or went). The window
 * keeps its entries in order; a grown ghost starts empty. Class lock held. */
static void window_resize(struct slab_class *c)
{
    uint64_t chunks = (uint64_t)c->npages * c->perslab;
    uint32_t cap = chunks >= WIN_MIN_CHUNKS ? (uint32_t)(chunks * WIN_PCT / 100) : 0;
    if (cap > c->win_size) {
        uint64_t *w = mem_alloc((size_t)cap * sizeof(*w));
        for (uint32_t i = 0; i < c->win_len; i++)
            w[i] = c->win[(c->win_head + i) % c->win_size];
        mem_free(c->win);
        c->win = w;
        c->win_size = cap;
        c->win_head = 0;
    }
    c->win_cap = cap;
    if (cap == 0) {
        c->win_len = 0;
        return;
    }
    if (c->ghost == NULL || chunks * GHOST_SLOTS_PER_CHUNK > (uint64_t)c->ghost_mask + 1) {
        uint64_t n = 1;
        while (n < chunks * GHOST_SLOTS_PER_CHUNK)
            n <<= 1;
        mem_free(c->ghost);
        c->ghost = mem_calloc(n, sizeof(*c->ghost));
        c->ghost_mask = (uint32_t)(n - 1);
    }
}

/* A new item of class c (its chunk just taken, it not yet stored): into the window, unless
 * its key was evicted unread from there lately (ghost). Class lock held. */
static void window_admit(struct slab_class *c, const struct item *it, uint64_t hv)
{
    if (c->win_cap == 0)
        return;
    uint8_t *g = &c->ghost[hv & c->ghost_mask];
    if ((*g & 0xfe) == ghost_tag(hv)) {
        /* asked for again after its eviction: straight to the main ring. Whose eviction it
         * was says which side evicts too eagerly (ARC's rule): the window's -> the main hand
         * ages its read items faster; the hand's -> slower. */
        uint32_t q = c->hand_every ? c->hand_every : WIN_HAND_EVERY * HAND_Q;
        if (*g & 1)
            q = q > HAND_EVERY_MIN * HAND_Q + HAND_DEC ? q - HAND_DEC : HAND_EVERY_MIN * HAND_Q;
        else
            q = q + HAND_INC < HAND_EVERY_MAX * HAND_Q ? q + HAND_INC : HAND_EVERY_MAX * HAND_Q;
        c->hand_every = q;
        *g = 0;
        return;
    }
    while (c->win_len >= c->win_cap) { /* full: the oldest graduates, read or not */
        c->win_head = (c->win_head + 1) % c->win_size;
        c->win_len--;
    }
    c->win[(c->win_head + c->win_len) % c->win_size] =
        item_ref_of(it) | (uint64_t)(uint32_t)(hv >> 32) << 32;
    c->win_len++;
}

/* The item a window entry names, if its chunk is still in class c and holds a linked item
 * of the same key hash (then *hv is that hash); NULL for a stale entry. Class lock held: a
 * chunk of c cannot be freed meanwhile, so its key is stable once it reads as linked. */
static struct item *window_item(struct slab_class *c, uint64_t e, uint64_t *hv)
{
    struct item *it = ref_item((uint32_t)e);
    uint32_t pg = item_page(it);
    size_t off = (size_t)((char *)it - page_base(pg));
    const struct page_meta *m = &stg.pmeta[pg];
    if (m->draining || &stg.classes[m->cls] != c || off % c->size != 0 ||
        off / c->size >= c->perslab)
        return NULL;
    if (!(atomic_load_explicit(&it->iflags, memory_order_acquire) & ITEM_LINKED))
        return NULL;
    *hv = storage_hash(item_key(it), it->nkey);
    return (uint32_t)(*hv >> 32) == (uint32_t)(e >> 32) ? it : NULL;
}

/*
 * The main hand's say before the window's candidate cand is evicted: the first item under the
 * hand that is idle (no ACTIVE/HOT: never read, or read but aged by an earlier pass; linked,
 * only the table's) goes instead (returned; the hand stays on it), as CLOCK would evict it.
 * On the way, within WIN_PEEK chunks, the hand passes chunks it cannot take, and one ACTIVE or
 * HOT item only when step is set, ageing it as its own walk does. NULL: cand goes. (Passing
 * read, idle items instead kept an item read once alive under any write stream, where
 * memcached evicts it: test_watch.py's eviction lines; zipf the same 79.5% either way.)
 * Class lock held.
 */
#define WIN_PEEK 8

static struct item *clock_peek_unread(struct slab_class *c, const struct item *cand, bool step)
{
    for (unsigned n = 0; n < WIN_PEEK && c->npages; n++) {
        uint32_t pi = c->hand_page < c->npages ? c->hand_page : 0;
        uint32_t ch = c->hand_page < c->npages ? c->hand_chunk : 0;
        uint32_t pg = c->pages[pi];
        if (stg.pmeta[pg].draining) {
            clock_advance(c); /* moves on to the next page */
            continue;
        }
        struct item *it = (struct item *)(page_base(pg) + (size_t)ch * c->size);
        if (it == cand)
            return NULL;
        uint8_t fl = item_iflags(it);
        if (!(fl & ITEM_LINKED) ||
            atomic_load_explicit(&it->refcount, memory_order_relaxed) != 1) {
            clock_advance(c);
            continue;
        }
        if (!(fl & (ITEM_ACTIVE | ITEM_HOT)))
            return it;
        if (!step)
            return NULL;
        step = false;
        clock_advance(c);
        clock_spare(c, it, fl); /* ages it */
    }
    return NULL;
}

/* An eviction through the window (evictions on): its oldest entries graduate until one never
 * read is found; that one, or the never-read item under the main hand, is evicted. NULL: the
 * window is short (under half its cap) or gave nothing; the hand decides. Class lock held. */
static struct item *window_evict(struct slab_class *c)
{
    for (unsigned n = 0; n < WIN_POPS && c->win_cap && c->win_len >= (c->win_cap + 1) / 2; n++) {
        uint64_t e = c->win[c->win_head];
        c->win_head = (c->win_head + 1) % c->win_size;
        c->win_len--;
        uint64_t hv = 0;
        struct item *it = window_item(c, e, &hv);
        /* gone, read or in use (it graduates: ACTIVE/HOT came from the value it replaced,
         * do_item_store), or in use by a reply (being read) */
        if (!it || (item_iflags(it) & (ITEM_FETCHED | ITEM_ACTIVE | ITEM_HOT)) ||
            atomic_load_explicit(&it->refcount, memory_order_relaxed) != 1)
            continue;
        uint32_t every = c->hand_every ? c->hand_every / HAND_Q : WIN_HAND_EVERY;
        struct item *m = clock_peek_unread(c, it, c->win_evicts++ % every == 0);
        /* an expired item near the hand is reclaimed before anything live is evicted */
        struct item *got = clock_reclaim_ahead(c, clock_now(), false);
        if (got) {
            c->win_head = (c->win_head + c->win_size - 1) % c->win_size; /* e stays first */
            c->win_len++;
            return got;
        }
        got = m ? clock_take(c, m, true, true) : NULL;
        if (got) {
            clock_advance(c); /* the hand passes the chunk it just freed */
            c->win_head = (c->win_head + c->win_size - 1) % c->win_size; /* e stays first */
            c->win_len++;
            return got;
        }
        c->ghost_win = true;
        got = clock_take(c, it, true, true); /* evicted live: clock_take remembers the key */
        c->ghost_win = false;
        if (got)
            return got;
    }
    return NULL;
}

static struct item *clock_evict(struct slab_class *c)
{
    bool ev = stg.cfg.evictions;
    rel_time_t now = clock_now();
    if (ev) {
        struct item *got = window_evict(c);
        if (got)
            return got;
    }
    for (int pass = 0; pass < (ev ? 2 : 1); pass++) {
        /* budget in 1/HOT_SKIP_COST chunks */
        uint64_t spent = 0, budget = (uint64_t)CLOCK_BUDGET * HOT_SKIP_COST;
        while (spent < budget) {
            if (c->npages == 0)
                return NULL;
            struct item *it = clock_advance(c);
            spent += HOT_SKIP_COST;
            if (!it)
                continue;
            uint8_t fl = item_iflags(it);
            if (!(fl & ITEM_LINKED) ||
                atomic_load_explicit(&it->refcount, memory_order_relaxed) != 1)
                continue;
            /* unlocked peek (a hint only; clock_take decides under the shard lock) */
            if (item_state_at(it, now) != ITEM_LIVE) {
                struct item *got = clock_take(c, it, false, true);
                if (got)
                    return got;
                continue;
            }
            if (!ev)
                continue;
            if (pass == 0 && clock_spare(c, it, fl)) {
                if (fl & ITEM_HOT)
                    spent -= HOT_SKIP_COST - 1;
                continue;
            }
            struct item *got = clock_reclaim_ahead(c, now, true);
            if (got)
                return got;
            got = clock_take(c, it, true, true);
            if (got)
                return got;
        }
    }
    return NULL;
}

static void drain_start(struct slab_class *c, uint32_t pg);
static void drain_cancel(struct slab_class *c, uint32_t pg);
static bool drain_page_now(struct slab_class *src, uint32_t pg, bool rescue);

/* A page stays with its class at least this long (seconds) before page_steal may take it,
 * unless it is empty or the store would fail otherwise (force). Without it, a tiny -m with
 * more sizes in use than pages ping-pongs pages between classes, each steal evicting a whole
 * page (-m 8, ~45 sizes in use, 400 keys: 43 items held at the end, 12% hits). With it,
 * fallback_alloc (a needy class borrows a larger class's chunk) and the forced steal as the
 * last resort: 371 items held, 89.5% hits, no store answered out of memory. */
#define PAGE_MIN_RESIDENCY 2

static bool page_stealable(uint32_t pg, rel_time_t now, bool force)
{
    const struct page_meta *m = &stg.pmeta[pg];
    if (m->draining)
        return false;
    if (m->used == 0 || force)
        return true;
    return now - m->since >= PAGE_MIN_RESIDENCY; /* young pages stay put */
}

/*
 * A class that owns no page cannot evict. When the arena is used up, take the emptiest page
 * old enough (page_stealable) of the class holding the most pages (evicting its items),
 * rather than fail every store of this size until automove runs.
 * Class lock of c held; the source's is only tried.
 */
static bool page_steal_from(struct slab_class *c, unsigned ci, unsigned src, bool force)
{
    struct slab_class *s = &stg.classes[src];
    if (!slock_trylock(&s->lock))
        return false;
    uint32_t pick = UINT32_MAX, least = UINT32_MAX;
    rel_time_t now = clock_now();
    for (uint32_t i = 0; i < s->npages; i++) {
        uint32_t pg = s->pages[i];
        if (page_stealable(pg, now, force) && stg.pmeta[pg].used < least) {
            least = stg.pmeta[pg].used;
            pick = pg;
        }
    }
    bool ok = false;
    if (pick != UINT32_MAX) {
        drain_start(s, pick);
        ok = drain_page_now(s, pick, false);
        if (ok)
            page_remove(s, pick);
        else
            drain_cancel(s, pick);
    }
    slock_unlock(&s->lock);
    if (ok)
        page_give(c, ci, pick);
    return ok;
}

/* Tries the classes holding the most pages (then the most free chunks), a few of them, with
 * at least min_pages pages. force: young pages too (the last resort before failing a store).
 * The first tries take no class's only page: with more sizes in use than pages (-m 8, values
 * of 100-1,000 B: 9 classes) a class that had no page took another's only page, which then
 * took one back 2 s later, each steal evicting a page: tests/integration/test_hitratio.py's
 * zipf trace at -m 8 held 6,600-7,700 items and hit 72-75% when replayed at 5,000-25,000
 * requests a second (tools/hitsim), 13,700 and 80.4% when faster than the 2 s residency.
 * Now such a class borrows chunks of a larger class first (fallback_alloc), then takes an
 * only page if it must: 13,700 items and 80.4% at every rate. */
static bool page_steal(struct slab_class *c, unsigned ci, bool force, uint32_t min_pages)
{
    if (*(volatile uint32_t *)&stg.pages_assigned < stg.npages)
        return false; /* racy hint: page_grab just failed, so the arena is full */
    bool tried[SLAB_MAX_CLASSES] = {false};
    for (int attempt = 0; attempt < 4; attempt++) {
        unsigned src = stg.nclasses;
        uint64_t best = 0;
        for (unsigned i = 0; i < stg.nclasses; i++) {
            struct slab_class *s = &stg.classes[i];
            /* hints read without the class lock; the steal rechecks under it */
            uint64_t score = ((uint64_t)*(volatile uint32_t *)&s->npages << 32) |
                             (*(volatile uint64_t *)&s->free_count & 0xffffffffu);
            if (i != ci && !tried[i] && s->npages >= min_pages && score > best) {
                best = score;
                src = i;
            }
        }
        if (src == stg.nclasses)
            return false;
        tried[src] = true;
        if (page_steal_from(c, ci, src, force))
            return true;
    }
    return false;
}

static uint64_t class_age(const struct slab_class *c, rel_time_t now, uint64_t max,
                          uint64_t *used);

/*
 * Memory follows the workload. A class that must evict looks, every AGE_CHECK_EVERY
 * evictions, at the AGE_PEEK items each other class would evict next. It takes that class's
 * emptiest page (old enough: page_stealable) instead of evicting its own items when they are
 *   - idle more than twice as long as its own plus AGE_MARGIN seconds, or
 *   - all unused since the hand last passed (no ACTIVE/HOT bit) in a class that was asked
 *     for no chunk since the previous look at it: a size nobody writes nor reads any more.
 * Without this a class that owns one page recycles that page forever while pages of a size
 * no longer written sit idle until automove moves them one a second (5,100 x 11,000-byte
 * sets, then 5,100 x 3,000-byte sets, -m 60, phases 0 to 3 s apart: 6% of the second
 * phase readable; with it 91-95%; memcached 28%). The margin and the quiet rule keep the
 * classes of a steady mix from trading pages (the zipf trace of tools/bench_hitratio.py: no
 * page moved, same hit ratio). Class lock of c held; the others' are only tried.
 */
#define AGE_CHECK_EVERY 32
#define AGE_PEEK 64
#define AGE_MARGIN 2

static bool page_steal_idle(struct slab_class *c, unsigned ci)
{
    if (++c->age_checks < AGE_CHECK_EVERY ||
        *(volatile uint32_t *)&stg.pages_assigned < stg.npages)
        return false;
    c->age_checks = 0;
    rel_time_t now = clock_now();
    uint64_t want = 2 * class_age(c, now, AGE_PEEK, NULL) + AGE_MARGIN;
    unsigned src = stg.nclasses;
    bool by_quiet = false;
    for (unsigned i = 0; i < stg.nclasses; i++) {
        struct slab_class *s = &stg.classes[i];
        if (i == ci || *(volatile uint32_t *)&s->npages < 2 || !slock_trylock(&s->lock))
            continue;
        uint64_t used = 0, age = 0;
        bool quiet = false;
        if (s->npages >= 2) {
            age = class_age(s, now, AGE_PEEK, &used);
            quiet = s->allocs == s->allocs_seen && used == 0;
            s->allocs_seen = s->allocs;
        }
        slock_unlock(&s->lock);
        if (age > want || (quiet && src == stg.nclasses)) {
            by_quiet = !(age > want) && (by_quiet || src == stg.nclasses);
            want = age > want ? age : want;
            src = i;
        }
    }
    /* A quiet class's page is taken however young: nobody asks for that size, so it will not
     * want the page back (the residency rule damps ping-pong between classes in use). Since a
     * class that owns no page gets its first one past the limit (first_page_over_limit), the
     * new size of a shift owns a page at once and the quiet rule is what feeds it: shift-L>S
     * of tools/bench_hitgrid.py (11,000-byte sets, then 3,000-byte ones, < 2 s apart) kept 6%
     * of the second phase while the old pages were young, 95% now (memcached 28%). */
    return src < stg.nclasses && page_steal_from(c, ci, src, by_quiet);
}

/* A class with no chunk to give may borrow one of a larger class up to this many times its
 * chunk size (bounding the waste), rather than steal a page or fail. */
#define FALLBACK_MAX_FACTOR 4

/* A chunk of a larger class for ntotal bytes: free, or CLOCK-evicted there. No class lock
 * held; each candidate's is taken in turn. */
static struct item *fallback_alloc(unsigned ci, size_t ntotal, uint64_t hv)
{
    uint64_t limit = (uint64_t)stg.classes[ci].size * FALLBACK_MAX_FACTOR;
    for (unsigned di = ci + 1; di < stg.nclasses && stg.classes[di].size <= limit; di++) {
        struct slab_class *d = &stg.classes[di];
        if (*(volatile uint32_t *)&d->npages == 0) /* racy hint, rechecked below */
            continue;
        class_lock(d);
        struct item *it = free_pop(d);
        if (it) {
            d->used_chunks++;
            stg.pmeta[item_page(it)].used++;
        } else if (d->npages) {
            it = clock_evict(d);
        }
        if (it) {
            d->mem_requested += ntotal;
            window_admit(d, it, hv);
            atomic_store_explicit(&it->iflags, 0, memory_order_relaxed);
            atomic_store_explicit(&it->refcount, 1, memory_order_relaxed);
        }
        slock_unlock(&d->lock);
        if (it)
            return it;
    }
    return NULL;
}

struct item *slab_alloc(size_t ntotal, uint64_t hv, enum st_result *res)
{
    unsigned ci = slab_class_for(ntotal);
    if (ci >= stg.nclasses) {
        *res = ST_TOO_LARGE;
        return NULL;
    }
    struct slab_class *c = &stg.classes[ci];
    class_lock(c);
    c->allocs++;
    struct item *it = free_pop(c);
    if (!it && page_grab(c, ci))
        it = free_pop(c);
    /* A class with no page cannot evict: take one at once rather than fail until automove
     * runs. A class whose CLOCK found nothing evictable (all in use) does the same. */
    if (!it && c->npages == 0 && page_steal(c, ci, false, 2))
        it = free_pop(c);
    if (!it && c->npages > 0 && stg.cfg.evictions && page_steal_idle(c, ci))
        it = free_pop(c);
    if (!it) {
        it = clock_evict(c);
        if (!it && page_steal(c, ci, false, 2))
            it = free_pop(c);
        else if (it)
            goto take; /* clock_evict's chunk is counted as used already */
    }
    if (!it) {
        /* Borrow a larger class's chunk (bounded waste) rather than fail the store. */
        c->pressure++; /* automove: this class wants a page */
        slock_unlock(&c->lock);
        if ((it = fallback_alloc(ci, ntotal, hv)) != NULL) {
            *res = ST_OK;
            return it;
        }
        /* Last resort: a class's only page (an old one first), then a young page too. With
         * evictions on, a store fails only when every candidate is in use, as in memcached;
         * residency only damps ping-pong. */
        class_lock(c);
        if (stg.cfg.evictions &&
            (page_steal(c, ci, false, 1) || page_steal(c, ci, true, 1)) &&
            (it = free_pop(c)) != NULL) {
            c->used_chunks++;
            stg.pmeta[item_page(it)].used++;
            goto take;
        }
        c->outofmemory++;
        slock_unlock(&c->lock);
        *res = ST_NO_MEMORY;
        return NULL;
    }
    c->used_chunks++;
    stg.pmeta[item_page(it)].used++;
take:
    c->mem_requested += ntotal;
    window_admit(c, it, hv);
    atomic_store_explicit(&it->iflags, 0, memory_order_relaxed);
    atomic_store_explicit(&it->refcount, 1, memory_order_relaxed);
    slock_unlock(&c->lock);
    *res = ST_OK;
    return it;
}

/* Class lock held; it has refcount 0 and was allocated. */
static void do_slab_release(struct slab_class *c, uint32_t pg, struct item *it)
{
    /* no chunk is freed twice; an item lives in a chunk of its page's class */
    ST_ASSERT(!item_flags_free(item_iflags(it)));
    ST_ASSERT(item_total_size(it) <= c->size &&
              (size_t)((char *)it - page_base(pg)) % c->size == 0);
    c->used_chunks--;
    stg.pmeta[pg].used--;
    atomic_store_explicit(&it->iflags, ITEM_FREE, memory_order_release);
    if (!stg.pmeta[pg].draining)
        free_push(c, it);
}

void slab_free(struct item *it)
{
    /* The page cannot change class meanwhile: it holds this allocated chunk. */
    uint32_t pg = item_page(it);
    struct slab_class *c = &stg.classes[stg.pmeta[pg].cls];
    class_lock(c);
    c->mem_requested -= item_total_size(it);
    do_slab_release(c, pg, it);
    slock_unlock(&c->lock);
}

/* ---- automove ---- */

/* Starts emptying page pg of class c: its free chunks leave the free list. Class lock held. */
static void drain_start(struct slab_class *c, uint32_t pg)
{
    stg.pmeta[pg].draining = 1;
    char *base = page_base(pg);
    for (uint32_t i = 0; i < c->perslab; i++) {
        struct item *it = (struct item *)(base + (size_t)i * c->size);
        if (item_flags_free(item_iflags(it)))
            free_remove(c, it);
    }
}

/* Undoes drain_start: the page's free chunks go back on the list. Class lock held. */
static void drain_cancel(struct slab_class *c, uint32_t pg)
{
    stg.pmeta[pg].draining = 0;
    char *base = page_base(pg);
    for (uint32_t i = 0; i < c->perslab; i++) {
        struct item *it = (struct item *)(base + (size_t)i * c->size);
        if (item_flags_free(item_iflags(it)))
            free_push(c, it);
    }
}

/* memcached's slab_reassign_* counters: what page moves did with the items on their pages. */
static _Atomic uint64_t reassign_rescues, reassign_evictions_nomem, reassign_busy_items;

/*
 * A page move's rescue (memcached's slab_rebalance_move): the live item it, referenced by the
 * table only, is copied into a free chunk of its class on another page and takes its old
 * place in the hash chain, so moving a page loses nothing while the class has room. Its old
 * chunk is then released. 1 rescued, 0 no free chunk, -1 busy (shard lock taken or it is
 * referenced: try again later). Class lock held; the shard's only tried.
 */
static int drain_rescue(struct slab_class *c, uint32_t pg, struct item *it)
{
    if (c->free_head == 0)
        return 0;
    uint64_t hv = storage_hash(item_key(it), it->nkey);
    struct shard *sh = shard_of(hv);
    bool held = sh == tl_held_shard;
    if (!held && !slock_trylock(&sh->lock))
        return -1;
    if (!held)
        shard_owner_set(sh);
    int rc = -1;
    if ((item_iflags(it) & ITEM_LINKED) && atomic_load(&it->refcount) == 1 &&
        item_state_at(it, clock_now()) == ITEM_LIVE) {
        struct item *nw = free_pop(c);
        memcpy(nw, it, item_total_size(it));
        atomic_store_explicit(&nw->refcount, 1, memory_order_relaxed);
        atomic_store_explicit(&nw->iflags, item_iflags(it), memory_order_relaxed);
        c->used_chunks++;
        stg.pmeta[item_page(nw)].used++;
        do_item_move(sh, it, nw, hv);
        atomic_store(&it->refcount, 0);
        atomic_store(&it->iflags, 0);
        do_slab_release(c, pg, it);
        rc = 1;
    }
    if (!held) {
        shard_owner_clear(sh);
        slock_unlock(&sh->lock);
    }
    return rc;
}

/* Evicts what it can from a draining page (rescue: moves live items to free chunks of the
 * class first, as memcached's page mover does); true when the page is empty. Class lock
 * held. */
static bool drain_page_now(struct slab_class *src, uint32_t pg, bool rescue)
{
    char *base = page_base(pg);
    rel_time_t now = clock_now();
    for (uint32_t i = 0; i < src->perslab && stg.pmeta[pg].used; i++) {
        struct item *it = (struct item *)(base + (size_t)i * src->size);
        if (item_flags_free(item_iflags(it)))
            continue;
        bool live = (item_iflags(it) & ITEM_LINKED) && item_state_at(it, now) == ITEM_LIVE;
        if (rescue && live && atomic_load(&it->refcount) == 1) {
            int rc = drain_rescue(src, pg, it);
            if (rc != 0) {
                atomic_fetch_add(rc > 0 ? &reassign_rescues : &reassign_busy_items, 1);
                continue;
            }
        }
        struct item *got = clock_take(src, it, stg.cfg.evictions, false);
        if (got) {
            if (rescue && live)
                atomic_fetch_add(&reassign_evictions_nomem, 1);
            do_slab_release(src, pg, got);
        } else if (rescue) {
            atomic_fetch_add(&reassign_busy_items, 1);
        }
    }
    if (stg.pmeta[pg].used == 0)
        return true;
    return false;
}

void slab_reassign_counts(struct storage_stats *out)
{
    out->reassign_rescues = atomic_load(&reassign_rescues);
    out->reassign_evictions_nomem = atomic_load(&reassign_evictions_nomem);
    out->reassign_busy_items = atomic_load(&reassign_busy_items);
    out->reassign_running = *(volatile int *)&stg.drain_page >= 0;
}

/* A drained page goes back to the pool (`slabs reassign N 0`); page_grab reuses it first. */
static void pool_put(uint32_t pg)
{
    pthread_mutex_lock(&stg.arena_lock);
    if (limit_pages == 0)
        set_limit_pages(stg.cfg.mem_limit);
    if (malloced_pages() > limit_pages) {
        page_release(pg); /* over a shrunk cache_memlimit: back to the system */
    } else {
        stg.pool = mem_realloc(stg.pool, (size_t)(stg.npool + 1) * sizeof(*stg.pool));
        stg.pool[stg.npool++] = pg;
    }
    pthread_mutex_unlock(&stg.arena_lock);
}

static void drain_abort(void)
{
    uint32_t pg = (uint32_t)stg.drain_page;
    struct slab_class *c = &stg.classes[stg.pmeta[pg].cls];
    class_lock(c);
    drain_cancel(c, pg);
    slock_unlock(&c->lock);
    stg.drain_page = -1;
}

/* One attempt to finish the page move in progress. bg_lock held. */
static bool drain_try(void)
{
    uint32_t pg = (uint32_t)stg.drain_page;
    unsigned si = stg.pmeta[pg].cls;
    struct slab_class *c = &stg.classes[si];
    class_lock(c);
    if (!drain_page_now(c, pg, true)) {
        slock_unlock(&c->lock);
        if (++stg.drain_tries >= DRAIN_MAX_TRIES)
            drain_abort();
        return false;
    }
    page_remove(c, pg);
    slock_unlock(&c->lock);

    if (stg.drain_dst >= stg.nclasses) {
        pool_put(pg);
    } else {
        struct slab_class *d = &stg.classes[stg.drain_dst];
        class_lock(d);
        page_give(d, stg.drain_dst, pg);
        slock_unlock(&d->lock);
    }
    stg.slabs_moved++;
    stg.drain_page = -1;
    return true;
}

_Atomic(storage_evicted_fn) stg_on_evicted;
_Atomic(storage_slab_moved_fn) stg_on_slab_moved;

void storage_observe(storage_evicted_fn evicted, storage_slab_moved_fn slab_moved)
{
    atomic_store_explicit(&stg_on_evicted, evicted, memory_order_relaxed);
    atomic_store_explicit(&stg_on_slab_moved, slab_moved, memory_order_relaxed);
}

/* memcached's slab_automove_window / _ratio (settings; `slabs automove ratio` changes it). */
static _Atomic uint32_t am_window = 30;
static _Atomic double am_ratio = 0.8;
/* The last automove decision gave a page back to the pool: memcached then decides again at
 * once rather than a second later ("be more aggressive"), so the tick keeps stepping. */
static bool stg_pool_streak;

/* memcached's MIN_PAGES_FOR_RECLAIM: a class holding more than 2.5 pages' worth of free chunks
 * that saw no eviction and got no page for a whole window gives one page back to the global
 * pool (its live items are rescued into the free chunks of its other pages). Class lock held. */
static bool class_has_spare(const struct slab_class *c, rel_time_t now)
{
    return c->npages >= 2 && c->free_count * 2 > (uint64_t)c->perslab * 5 &&
           now - c->am_dirty >= atomic_load(&am_window);
}

/* Starts draining the class's least-used page that is not draining already, when the class
 * has at least min_pages pages; returns that page, or UINT32_MAX when there is none. */
static uint32_t drain_least_used(struct slab_class *c, uint32_t min_pages)
{
    class_lock(c);
    uint32_t pick = UINT32_MAX, least = UINT32_MAX;
    for (uint32_t i = 0; c->npages >= min_pages && i < c->npages; i++) {
        uint32_t pg = c->pages[i];
        if (!stg.pmeta[pg].draining && stg.pmeta[pg].used < least) {
            least = stg.pmeta[pg].used;
            pick = pg;
        }
    }
    if (pick != UINT32_MAX)
        drain_start(c, pick);
    slock_unlock(&c->lock);
    return pick;
}

/* Starts moving the emptiest page of class si to the pool. bg_lock held. */
static bool pool_reclaim_start(unsigned si)
{
    uint32_t pick = drain_least_used(&stg.classes[si], 1);
    if (pick == UINT32_MAX)
        return false;
    /* memcached logs this decision too, with dst 0 (the pool) */
    storage_slab_moved_fn on = atomic_load_explicit(&stg_on_slab_moved, memory_order_relaxed);
    if (on != NULL && atomic_load(&stg.automove) == 1)
        on(si + 1, 0);
    stg.drain_page = (int)pick;
    stg.drain_dst = stg.nclasses;
    stg.drain_tries = 0;
    stg_pool_streak = true;
    return true;
}

/* memcached's age ratio: a page is taken from a class to give it to one that must evict only
 * when the needy class's items are evicted younger than ratio x the source's (the items
 * the source would lose are older than the ones the needy class loses now). */
static bool ages_allow_move(unsigned src, unsigned dst, rel_time_t now)
{
    uint64_t age[2];
    unsigned ids[2] = {src, dst};
    for (int k = 0; k < 2; k++) {
        struct slab_class *c = &stg.classes[ids[k]];
        class_lock(c);
        age[k] = c->npages ? class_age(c, now, AGE_PEEK, NULL) : 0;
        slock_unlock(&c->lock);
    }
    /* ages are whole seconds: a source whose next victims were all used this second tells
     * nothing, and the move goes by pressure alone */
    return age[0] == 0 || (double)age[1] < (double)age[0] * atomic_load(&am_ratio);
}

void storage_set_automove_tuning(uint32_t window, double ratio)
{
    if (window)
        atomic_store(&am_window, window);
    if (ratio > 0)
        atomic_store(&am_ratio, ratio);
}

double storage_automove_ratio(void)
{
    return atomic_load(&am_ratio);
}

bool storage_automove_step(void)
{
    if (!stg.ready)
        return false;
    pthread_mutex_lock(&stg.bg_lock);
    if (stg.drain_page < 0 && atomic_load(&stg.automove) == 0) {
        pthread_mutex_unlock(&stg.bg_lock);
        return false;
    }
    if (stg.drain_page < 0) {
        uint64_t press[SLAB_MAX_CLASSES];
        unsigned dst = stg.nclasses;
        uint64_t best = 0;
        rel_time_t now = clock_now();
        unsigned spare = stg.nclasses;
        for (unsigned i = 0; i < stg.nclasses; i++) {
            struct slab_class *c = &stg.classes[i];
            class_lock(c);
            press[i] = c->pressure;
            c->pressure = 0;
            if (press[i] > 0 || c->npages > c->am_pages)
                c->am_dirty = now;
            c->am_pages = c->npages;
            if (spare == stg.nclasses && class_has_spare(c, now))
                spare = i;
            slock_unlock(&c->lock);
            if (press[i] > best) {
                best = press[i];
                dst = i;
            }
        }
        if (spare < stg.nclasses && pool_reclaim_start(spare)) {
            bool moved = drain_try();
            pthread_mutex_unlock(&stg.bg_lock);
            return moved;
        }
        stg_pool_streak = false;
        pthread_mutex_lock(&stg.arena_lock);
        bool arena_full = stg.pages_assigned >= stg.npages;
        pthread_mutex_unlock(&stg.arena_lock);
        /* Only when the arena is used up: a needy class otherwise takes a fresh page. */
        if (dst == stg.nclasses || !arena_full) {
            pthread_mutex_unlock(&stg.bg_lock);
            return false;
        }
        /* Source: a class under no pressure; one holding a page's worth of free chunks
         * first, else the one with the most pages (its emptiest page is the cheapest). */
        unsigned src = stg.nclasses;
        uint64_t src_free = 0, src_pages = 0;
        bool src_has_free = false;
        for (unsigned i = 0; i < stg.nclasses; i++) {
            if (i == dst || press[i] != 0)
                continue;
            struct slab_class *c = &stg.classes[i];
            class_lock(c);
            bool has_free = c->npages > 0 && c->free_count >= c->perslab;
            uint64_t fr = c->free_count, np = c->npages;
            slock_unlock(&c->lock);
            if (has_free && (!src_has_free || fr > src_free)) {
                src = i, src_free = fr, src_has_free = true;
            } else if (!src_has_free && np >= 2 && np > src_pages && stg.cfg.evictions) {
                src = i, src_pages = np;
            }
        }
        if (src == stg.nclasses || (!src_has_free && !ages_allow_move(src, dst, now))) {
            pthread_mutex_unlock(&stg.bg_lock);
            return false;
        }
        struct slab_class *c = &stg.classes[src];
        class_lock(c);
        uint32_t pick = UINT32_MAX, least = UINT32_MAX;
        for (uint32_t i = 0; i < c->npages; i++) {
            uint32_t pg = c->pages[i];
            if (stg.pmeta[pg].used < least) {
                least = stg.pmeta[pg].used;
                pick = pg;
            }
        }
        if (pick != UINT32_MAX)
            drain_start(c, pick);
        slock_unlock(&c->lock);
        if (pick == UINT32_MAX) {
            pthread_mutex_unlock(&stg.bg_lock);
            return false;
        }
        /* memcached logs its level-1 automove decisions (level 2 moves silently) */
        storage_slab_moved_fn on = atomic_load_explicit(&stg_on_slab_moved, memory_order_relaxed);
        if (on != NULL && atomic_load(&stg.automove) == 1)
            on(src + 1, dst + 1);
        stg.drain_page = (int)pick;
        stg.drain_dst = dst;
        stg.drain_tries = 0;
    }
    bool moved = drain_try();
    pthread_mutex_unlock(&stg.bg_lock);
    return moved;
}

void storage_slab_tick(void)
{
    if (!stg.ready)
        return;
    unsigned level = atomic_load(&stg.automove);
    bool moving = *(volatile int *)&stg.drain_page >= 0; /* racy hint; the step rechecks */
    bool streak = *(volatile bool *)&stg_pool_streak;
    if (moving || level == 2 || (level == 1 && (++stg.automove_ticks % 10 == 0 || streak))) {
        /* giving free pages back to the pool: a few per tick, as memcached's 1 ms re-runs */
        for (int n = 0; storage_automove_step() && n < 8 && *(volatile bool *)&stg_pool_streak;
             n++) {
        }
    }
}

void storage_set_lru_flat(bool flat)
{
    atomic_store(&stg.lru_flat, flat);
}

bool storage_lru_flat(void)
{
    return atomic_load(&stg.lru_flat);
}

void storage_set_automove(unsigned level)
{
    atomic_store(&stg.automove, level);
}

unsigned storage_automove_level(void)
{
    return atomic_load(&stg.automove);
}

/* A class other than dst holding at least two pages, taken in turn (memcached's
 * slabs_reassign_pick_any); -1 if none. bg_lock held. */
static int reassign_pick_any(int dst)
{
    for (unsigned n = 0; n < stg.nclasses; n++) {
        unsigned i = stg.reassign_any++ % stg.nclasses;
        if ((int)i + 1 != dst && *(volatile uint32_t *)&stg.classes[i].npages >= 2)
            return (int)i + 1;
    }
    return -1;
}

enum slab_reassign_result storage_slabs_reassign(int src, int dst)
{
    if (!stg.ready)
        return REASSIGN_BADCLASS;
    enum slab_reassign_result res = REASSIGN_OK;
    pthread_mutex_lock(&stg.bg_lock);
    /* memcached's order of checks: busy, same, (pick), range, spare */
    if (stg.drain_page >= 0) {
        res = REASSIGN_RUNNING;
        goto out;
    }
    if (src == dst) {
        res = REASSIGN_SRC_DST_SAME;
        goto out;
    }
    if (src == -1)
        src = reassign_pick_any(dst);
    if (src < 0 || src > (int)stg.nclasses || dst < 0 || dst > (int)stg.nclasses) {
        res = REASSIGN_BADCLASS;
        goto out;
    }
    if (src == 0) {
        /* from the pool: the page is free, so it moves at once */
        pthread_mutex_lock(&stg.arena_lock);
        bool spare = stg.npool >= 2;
        uint32_t pg = spare ? stg.pool[--stg.npool] : 0;
        pthread_mutex_unlock(&stg.arena_lock);
        if (!spare) {
            res = REASSIGN_NOSPARE;
            goto out;
        }
        struct slab_class *d = &stg.classes[dst - 1];
        class_lock(d);
        page_give(d, (unsigned)dst - 1, pg);
        slock_unlock(&d->lock);
        stg.slabs_moved++;
        goto out;
    }
    uint32_t pick = drain_least_used(&stg.classes[src - 1], 2);
    if (pick == UINT32_MAX) {
        res = REASSIGN_NOSPARE;
        goto out;
    }
    stg.drain_page = (int)pick;
    stg.drain_dst = dst == 0 ? stg.nclasses : (unsigned)dst - 1;
    stg.drain_tries = 0;
    drain_try(); /* most pages empty at once; what is still referenced waits for the tick */
out:
    pthread_mutex_unlock(&stg.bg_lock);
    return res;
}

/* ---- statistics ---- */

/* Chunks examined for a class's age: bounds the time stats holds the class lock. */
#define AGE_SCAN_MAX 65536

/* Longest idle time among the linked items ahead of the CLOCK hand, the next eviction
 * candidates (memcached reports its LRU tail's). Class lock held; atime read unlocked, a hint
 * like the hand's own peeks. */
static uint64_t class_age(const struct slab_class *c, rel_time_t now, uint64_t max,
                          uint64_t *used)
{
    uint64_t total = (uint64_t)c->npages * c->perslab;
    uint64_t n = total < max ? total : max;
    uint32_t pi = c->hand_page < c->npages ? c->hand_page : 0;
    uint32_t ch = c->hand_page < c->npages ? c->hand_chunk : 0;
    rel_time_t oldest = now;
    for (uint64_t i = 0; i < n; i++) {
        const struct item *it =
            (const struct item *)(page_base(c->pages[pi]) + (size_t)ch * c->size);
        uint8_t fl = item_iflags(it);
        if ((fl & ITEM_LINKED) && it->atime < oldest)
            oldest = it->atime;
        if (used && (fl & ITEM_LINKED) && (fl & (ITEM_ACTIVE | ITEM_HOT)))
            ++*used;
        if (++ch >= c->perslab) {
            ch = 0;
            if (++pi >= c->npages)
                pi = 0;
        }
    }
    return now - oldest;
}

_Thread_local unsigned tl_last_class;

unsigned storage_item_class(const struct item *it)
{
    return (unsigned)stg.pmeta[item_page(it)].cls + 1;
}

unsigned storage_last_class(void)
{
    return tl_last_class;
}

bool storage_set_mem_limit(size_t bytes)
{
    /* With -e the arena is the file's fixed layout (memcached too refuses for a preallocated
     * arena). */
    if (!stg.ready || stg.cfg.memory_file != NULL)
        return false;
    size_t want = bytes / stg.page_size;
    if (want == 0)
        want = 1;
    bool ok = true;
    pthread_mutex_lock(&stg.arena_lock);
    if (want > stg.max_pages) {
        ok = false;
    } else if (want > stg.npages) {
        char *from = page_base(stg.npages);
        ok = mprotect(from, (want - stg.npages) * (size_t)stg.page_size,
                      PROT_READ | PROT_WRITE) == 0;
        if (ok)
            stg.npages = (uint32_t)want;
    } else if (want < stg.npages) {
        /* Pages already given to classes stay (their items are live); the ones never handed
         * out above the new limit are returned to the system. */
        uint32_t keep = want > stg.pages_assigned ? (uint32_t)want : stg.pages_assigned;
        if (keep < stg.npages) {
            char *from = page_base(keep);
            size_t len = (size_t)(stg.npages - keep) * stg.page_size;
            madvise(from, len, MADV_DONTNEED);
            mprotect(from, len, PROT_NONE);
            stg.npages = keep;
        }
    }
    if (ok) {
        stg.cfg.mem_limit = bytes;
        set_limit_pages(bytes);
    }
    pthread_mutex_unlock(&stg.arena_lock);
    return ok;
}

bool storage_class_dump(unsigned id, bool (*fn)(void *arg, const struct item *it), void *arg)
{
    if (!stg.ready || id == 0 || id > stg.nclasses)
        return false;
    struct slab_class *c = &stg.classes[id - 1];
    class_lock(c);
    bool more = true;
    for (uint32_t pi = 0; more && pi < c->npages; pi++) {
        char *base = page_base(c->pages[pi]);
        for (uint32_t ch = 0; more && ch < c->perslab; ch++) {
            const struct item *it = (const struct item *)(base + (size_t)ch * c->size);
            /* linked is enough: bit 6 is ITEM_HOT on a linked item (a test for FREE left out
             * every item fetched twice) */
            if (item_iflags(it) & ITEM_LINKED)
                more = fn(arg, it);
        }
    }
    slock_unlock(&c->lock);
    return true;
}

unsigned storage_slab_stats(void (*fn)(void *arg, const struct slab_class_stats *s), void *arg)
{
    unsigned n = 0;
    if (!stg.ready)
        return 0;
    for (unsigned i = 0; i < stg.nclasses; i++) {
        struct slab_class *c = &stg.classes[i];
        struct slab_class_stats s = {0};
        class_lock(c);
        s.id = i + 1;
        s.chunk_size = c->size;
        s.chunks_per_page = c->perslab;
        s.total_pages = c->npages;
        s.total_chunks = (uint64_t)c->npages * c->perslab;
        s.used_chunks = c->used_chunks;
        s.free_chunks = c->free_count;
        s.mem_requested = c->mem_requested;
        s.number = c->used_chunks;
        s.evicted = c->evicted;
        s.evicted_unfetched = c->evicted_unfetched;
        s.expired_unfetched = c->expired_unfetched;
        s.reclaimed = c->reclaimed;
        s.outofmemory = c->outofmemory;
        s.evicted_nonzero = c->evicted_nonzero;
        s.evicted_time = c->evicted_time;
        s.evicted_active = c->evicted_active;
        s.crawler_reclaimed = c->crawler_reclaimed;
        s.crawler_items_checked = c->crawler_checked;
        if (c->npages)
            s.age = class_age(c, clock_now(), AGE_SCAN_MAX, NULL);
        slock_unlock(&c->lock);
        if (s.total_pages == 0)
            continue;
        n++;
        fn(arg, &s);
    }
    return n;
}

void slab_count_reclaim(const struct item *it, bool crawler)
{
    struct slab_class *c = &stg.classes[stg.pmeta[item_page(it)].cls];
    class_lock(c);
    if (crawler)
        c->crawler_reclaimed++;
    else
        c->reclaimed++;
    if (!(item_iflags(it) & ITEM_FETCHED))
        c->expired_unfetched++;
    slock_unlock(&c->lock);
}

bool slab_crawl_reclaim(struct slab_class *c, struct item *it)
{
    struct item *got = clock_take(c, it, false, false);
    if (!got)
        return false;
    c->reclaimed--; /* clock_take counts a reclaim; this one is the crawler's */
    c->crawler_reclaimed++;
    do_slab_release(c, item_page(got), got);
    return true;
}

void slab_stats_reset(void)
{
    for (unsigned i = 0; i < stg.nclasses; i++) {
        struct slab_class *c = &stg.classes[i];
        class_lock(c);
        c->evicted = c->evicted_unfetched = c->evicted_active = 0;
        c->expired_unfetched = c->reclaimed = c->outofmemory = 0;
        c->evicted_nonzero = c->lock_waits = 0;
        c->crawler_reclaimed = c->crawler_checked = 0;
        c->evicted_time = 0;
        slock_unlock(&c->lock);
    }
}

/* ---- warm restart (persist.c) ---- */

void slab_restore_page(unsigned ci, uint32_t pg, uint32_t used, uint64_t requested,
                       const uint8_t *linked)
{
    struct slab_class *c = &stg.classes[ci];
    char *base = page_base(pg);
    class_lock(c);
    stg.pmeta[pg] = (struct page_meta){.used = used, .cls = (uint8_t)ci, .since = clock_now()};
    if (c->npages == c->pages_cap) {
        c->pages_cap = c->pages_cap ? c->pages_cap * 2 : 8;
        c->pages = mem_realloc(c->pages, (size_t)c->pages_cap * sizeof(*c->pages));
    }
    c->pages[c->npages++] = pg;
    c->used_chunks += used;
    c->mem_requested += requested;
    window_resize(c); /* restored items start in the main ring */
    /* from the end, as page_give, so that allocation proceeds in address order; only the
     * free chunks are touched (the items of a full page are not read here at all) */
    for (uint32_t i = c->perslab; used < c->perslab && i-- > 0;)
        if (!linked[i])
            free_push(c, (struct item *)(base + (size_t)i * c->size));
    slock_unlock(&c->lock);
}

void slab_forget_pages(void)
{
    for (unsigned i = 0; i < stg.nclasses; i++) {
        struct slab_class *c = &stg.classes[i];
        c->npages = 0;
        c->free_head = 0;
        c->free_count = c->used_chunks = c->mem_requested = 0;
        c->hand_page = c->hand_chunk = 0;
        c->lap_seen = c->lap_hot = c->hot_pct = 0;
        c->win_len = c->win_head = c->win_cap = 0;
    }
    memset(stg.pmeta, 0, (size_t)stg.npages * sizeof(*stg.pmeta));
    stg.pages_assigned = 0;
    stg.npool = 0; /* pool pages lie below pages_assigned: they are forgotten with it */
    nfreed = 0;
}
