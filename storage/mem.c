/*
 * mem: the allocator boundary for everything outside the slab arena (hash tables, class
 * bookkeeping, connection buffers ...). jemalloc provides malloc() when linked; this file is
 * the only place that calls it, so a future change of allocator touches one file.
 * Out-of-memory aborts: a cache whose bookkeeping cannot be allocated cannot serve correctly.
 */
#include "storage/mem.h"

#include <jemalloc/jemalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void mem_free(void *p)
{
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
