/*
 * mem: the one allocator boundary for everything outside the slab arena. A thin layer over
 * jemalloc that aborts on out-of-memory (a cache that cannot allocate its bookkeeping cannot
 * serve correctly) and can report what jemalloc holds, so `stats` can explain RSS.
 * Shared by every layer (storage, protocol, server): it sits in storage/, the bottom layer any
 * layer may include, and depends on nothing but jemalloc.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

void *mem_alloc(size_t size);
void *mem_calloc(size_t n, size_t size);
void *mem_realloc(void *p, size_t size);
void mem_free(void *p);
/* Hands mem_free a mapping made elsewhere (mmap) holding n pieces of piece bytes each, from
 * pieces on: mem_free of a piece returns its pages, of the last one unmaps map. One such
 * mapping at a time (the hash tables a warm restart builds on huge pages, storage/persist.c). */
void mem_adopt(void *map, size_t map_bytes, void *pieces, size_t piece, uint32_t n);
char *mem_strdup(const char *s);
/* Returns memory freed a while ago to the system (call about once a second). */
void mem_decay(void);

struct mem_stats {
    uint64_t allocated, active, resident, mapped;
};
/* Fills *out from jemalloc's stats (refreshed by this call). */
void mem_stats(struct mem_stats *out);
