/*
 * crawl: memcached's `lru_crawler crawl <classes>`, a one-off pass that frees the expired and
 * flushed items of the classes asked for. memcached runs it in its crawler thread over its LRU
 * lists; cached has no lists, so the pass walks each class's pages chunk by chunk, in bounded
 * steps from the maintenance tick (STYLE lesson 7), and counts what it checked and freed in
 * the class's crawler_items_checked / crawler_reclaimed, as memcached does. The expiry
 * sweeper (items.c) reclaims continuously over the hash table; this pass is the one a client
 * asks for and waits on (stats lru_crawler_running).
 *
 * Locks: the cursor is under bg_lock; a step takes one class lock at a time, and a chunk's
 * shard lock only by trylock (slab_crawl_reclaim), as eviction does.
 */
#include "storage/internal.h"

static struct {
    bool want[SLAB_MAX_CLASSES]; /* classes (0-based) this pass visits */
    unsigned cls;                /* cursor: class, page index, chunk */
    uint32_t page, chunk;
    uint32_t tocrawl;            /* items checked per class at most (0: all) */
    uint64_t checked;            /* in the current class */
    uint64_t starts;
    _Atomic bool running;
    _Atomic bool fresh;          /* started since the last tick: its first batch goes at once */
    uint64_t credit_us;          /* storage_crawl_tick's: time not yet spent on pauses */
} cr;
static _Atomic uint32_t crawl_sleep_us = 100; /* memcached's lru_crawler_sleep default */

bool storage_crawl_start(const uint64_t *class_mask, uint32_t tocrawl)
{
    if (!stg.ready)
        return false;
    pthread_mutex_lock(&stg.bg_lock);
    bool ok = !atomic_load(&cr.running);
    if (ok) {
        for (unsigned i = 0; i < stg.nclasses; i++)
            cr.want[i] = class_mask == NULL || (i + 1 < STORAGE_MAX_CLASS_ID &&
                                                ((class_mask[(i + 1) / 64] >> ((i + 1) % 64)) & 1));
        cr.cls = 0;
        cr.page = cr.chunk = 0;
        cr.checked = 0;
        cr.tocrawl = tocrawl;
        cr.starts++;
        atomic_store(&cr.fresh, true);
        atomic_store(&cr.running, true);
    }
    pthread_mutex_unlock(&stg.bg_lock);
    return ok;
}

static void next_class(void)
{
    cr.cls++;
    cr.page = cr.chunk = 0;
    cr.checked = 0;
}

/* Checks up to *budget chunks of class c from the cursor; true when the class is done.
 * Class lock held. */
static bool crawl_class(struct slab_class *c, size_t *budget, rel_time_t now)
{
    while (*budget > 0 && cr.page < c->npages) {
        uint32_t pg = c->pages[cr.page];
        struct item *it = (struct item *)(stg.arena + (size_t)pg * stg.page_size +
                                          (size_t)cr.chunk * c->size);
        if (++cr.chunk >= c->perslab) {
            cr.chunk = 0;
            cr.page++;
        }
        --*budget;
        uint8_t fl = item_iflags(it);
        if (stg.pmeta[pg].draining || !(fl & ITEM_LINKED)) /* free chunks carry no LINKED */
            continue;
        c->crawler_checked++;
        if (item_state_at(it, now) != ITEM_LIVE)
            slab_crawl_reclaim(c, it);
        if (cr.tocrawl && ++cr.checked >= cr.tocrawl)
            return true;
    }
    return cr.page >= c->npages;
}

bool storage_crawl_step(size_t max_chunks)
{
    if (!stg.ready || !atomic_load(&cr.running))
        return false;
    pthread_mutex_lock(&stg.bg_lock);
    rel_time_t now = clock_now();
    size_t budget = max_chunks;
    while (budget > 0 && atomic_load(&cr.running) && cr.cls < stg.nclasses) {
        if (!cr.want[cr.cls]) {
            next_class();
            continue;
        }
        struct slab_class *c = &stg.classes[cr.cls];
        class_lock(c);
        bool done = crawl_class(c, &budget, now);
        slock_unlock(&c->lock);
        if (done)
            next_class();
    }
    if (cr.cls >= stg.nclasses)
        atomic_store(&cr.running, false);
    bool running = atomic_load(&cr.running);
    pthread_mutex_unlock(&stg.bg_lock);
    return running;
}

void storage_crawl_set_sleep(uint32_t usec)
{
    atomic_store(&crawl_sleep_us, usec);
}

uint32_t storage_crawl_sleep(void)
{
    return atomic_load(&crawl_sleep_us);
}

/* memcached's crawler thread checks 1000 items, usleep()s lru_crawler_sleep, and so on. Here
 * the maintenance thread (the only caller) must not sleep: each batch is paid for with pause
 * time from the wall time between ticks, so the pass runs at memcached's pace (at most a batch
 * per pause) without blocking anything. Time unspent piles up no further than one tick and one
 * pause, so a long idle spell does not turn into a burst. */
bool storage_crawl_tick(uint32_t tick_us, size_t max_chunks)
{
    if (!stg.ready || !atomic_load(&cr.running))
        return false;
    uint64_t pause = atomic_load(&crawl_sleep_us);
    if (pause == 0)
        return storage_crawl_step(max_chunks);
    if (atomic_exchange(&cr.fresh, false))
        cr.credit_us = pause;
    else
        cr.credit_us += tick_us;
    if (cr.credit_us > tick_us + pause)
        cr.credit_us = tick_us + pause;
    bool running = true;
    for (size_t done = 0; running && done < max_chunks && cr.credit_us >= pause;
         done += STORAGE_CRAWL_BATCH) {
        running = storage_crawl_step(STORAGE_CRAWL_BATCH);
        cr.credit_us -= pause;
    }
    return running;
}

/* `lru_crawler disable`: memcached stops its thread, and the pass with it. */
void storage_crawl_stop(void)
{
    atomic_store(&cr.running, false);
}

bool storage_crawl_running(void)
{
    return atomic_load(&cr.running);
}

void storage_crawl_counts(uint64_t *starts, uint64_t *running)
{
    pthread_mutex_lock(&stg.bg_lock);
    *starts = cr.starts;
    pthread_mutex_unlock(&stg.bg_lock);
    *running = atomic_load(&cr.running) ? 1 : 0;
}
