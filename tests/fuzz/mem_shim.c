/*
 * mem_shim: storage/mem.h over libc malloc, linked into the fuzzer instead of storage/mem.c.
 * jemalloc's allocations are invisible to AddressSanitizer (it carves its own mmap'd arenas),
 * so with the real wrapper a heap overflow in protocol or storage bookkeeping would go
 * unnoticed. Same contract as mem.c: abort on out-of-memory.
 */
#include "storage/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *mem_check(void *p, size_t size)
{
    if (p == NULL && size != 0) {
        fprintf(stderr, "mem_shim: out of memory allocating %zu bytes\n", size);
        abort();
    }
    return p;
}

void *mem_alloc(size_t size)
{
    return mem_check(malloc(size), size);
}

void *mem_calloc(size_t n, size_t size)
{
    return mem_check(calloc(n, size), n * size);
}

void *mem_realloc(void *p, size_t size)
{
    return mem_check(realloc(p, size), size);
}

void mem_free(void *p)
{
    free(p);
}

char *mem_strdup(const char *s)
{
    return mem_check(strdup(s), strlen(s) + 1);
}

void mem_stats(struct mem_stats *out)
{
    memset(out, 0, sizeof(*out));
}

/* Only a warm restart (-e) adopts a mapping, and the fuzzer runs without -e: reaching this is
 * a bug in the target's setup, not an input to report. */
void mem_adopt(void *map, size_t map_bytes, void *pieces, size_t piece, uint32_t n)
{
    (void)map, (void)map_bytes, (void)pieces, (void)piece, (void)n;
    fprintf(stderr, "mem_shim: mem_adopt without -e\n");
    abort();
}
