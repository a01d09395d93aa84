/*
 * mem: the allocator boundary for everything outside the slab arena (hash tables, class
 * bookkeeping, connection buffers ...). jemalloc provides malloc() when linked; this file is
 * the only place that calls it, so a future change of allocator touches one file.
 * Out-of-memory aborts: a cache whose bookkeeping cannot be allocated cannot serve correctly.
 */
#include "storage/mem.h"

#include <jemalloc/jemalloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void mem_oom(size_t size)
{
    fprintf(stderr, "cached: out of memory allocating %zu bytes\n", size);
    abort();
}

void *mem_alloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        mem_oom(size);
    return p;
}

void *mem_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        mem_oom(n * size);
    return p;
}

void *mem_realloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (!q)
        mem_oom(size);
    return q;
}

/* The adopted mapping (mem_adopt). lo/hi are read by every mem_free, on any thread: atomics,
 * cleared before the unmap so that no later allocation placed there is taken for a piece. */
static struct {
    char *map;
    size_t map_bytes, piece;
    _Atomic uintptr_t lo, hi;
    _Atomic uint32_t live;
} adopted;

void mem_adopt(void *map, size_t map_bytes, void *pieces, size_t piece, uint32_t n)
{
    adopted.map = map;
    adopted.map_bytes = map_bytes;
    adopted.piece = piece;
    atomic_store(&adopted.live, n);
    atomic_store(&adopted.hi, (uintptr_t)pieces + piece * n);
    atomic_store(&adopted.lo, (uintptr_t)pieces);
}

static bool adopted_free(void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (a < atomic_load_explicit(&adopted.lo, memory_order_acquire) ||
        a >= atomic_load_explicit(&adopted.hi, memory_order_acquire))
        return false;
    if (adopted.piece % 4096 == 0)
        madvise(p, adopted.piece, MADV_DONTNEED);
    if (atomic_fetch_sub(&adopted.live, 1) == 1) {
        atomic_store(&adopted.lo, 0);
        atomic_store(&adopted.hi, 0);
        munmap(adopted.map, adopted.map_bytes);
    }
    return true;
}

void mem_free(void *p)
{
    if (!adopted_free(p))
        free(p);
}

char *mem_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = mem_alloc(n);
    memcpy(p, s, n);
    return p;
}

static uint64_t mem_ctl_size(const char *name)
{
    size_t v = 0, len = sizeof(v);
    if (mallctl(name, &v, &len, NULL, 0) != 0)
        return 0;
    return v;
}

void mem_stats(struct mem_stats *out)
{
    /* jemalloc caches its statistics; writing "epoch" refreshes them. */
    uint64_t epoch = 1;
    size_t len = sizeof(epoch);
    mallctl("epoch", &epoch, &len, &epoch, len);
    out->allocated = mem_ctl_size("stats.allocated");
    out->active = mem_ctl_size("stats.active");
    out->resident = mem_ctl_size("stats.resident");
    out->mapped = mem_ctl_size("stats.mapped");
}

void mem_decay(void)
{
    /* jemalloc returns freed pages to the system only as a side effect of later allocation
     * in the same arena; after a burst of connections goes away nothing allocates, and their
     * buffers would stay resident. Applying the decay curve now (pages idle for about
     * opt.dirty_decay_ms, 10 s by default) gives them back without losing the reuse of
     * recently freed ones. */
    char name[64];
    snprintf(name, sizeof name, "arena.%u.decay", (unsigned)MALLCTL_ARENAS_ALL);
    mallctl(name, NULL, NULL, NULL, 0);
}
