/*
 * item: one cached key/value, laid out in a slab chunk.
 *
 *   0        4        8        12       16       20   22  23  24               32
 *   +--------+--------+--------+--------+--------+----+---+---+----------------+-----+-------+
 *   | hnext  | exptime| atime  | flags  | nbytes |refs|key|ifl| cas (optional) | key | value |
 *   +--------+--------+--------+--------+--------+----+---+---+----------------+-----+-------+
 *    hnext    4  next item in the hash chain, a 32-bit arena offset (in 8-byte units), 0 = none
 *    exptime  4  rel_time_t, 0 = never
 *    atime    4  rel_time_t of the last access (meta `l`, `me la=`)
 *    flags    4  client flags, returned as stored
 *    nbytes   4  value length, without the "\r\n" (the protocol writes that from a constant)
 *    refs     2  reference count (the hash table's own counts one)
 *    nkey     1  key length (1..250), no NUL stored
 *    iflags   1  ITEM_* bits below
 *    cas      8  present unless -C; the header is then 24 bytes
 * Total header: 32 bytes (24 with -C). memcached's is 48-56 bytes plus the key's NUL, the
 * value's "\r\n" and a suffix. There are no LRU links: eviction is CLOCK per slab class with
 * two bits of frequency (ITEM_ACTIVE, ITEM_HOT) instead of two pointers. The slab class is derived from
 * the page the chunk lies in.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "storage/clock.h"

enum item_flag {
    ITEM_LINKED = 1 << 0,   /* in the hash table */
    ITEM_CAS = 1 << 1,      /* header carries a CAS field */
    ITEM_FETCHED = 1 << 2,  /* read at least once since stored */
    ITEM_ACTIVE = 1 << 3,   /* CLOCK bit: used since the hand last passed */
    ITEM_STALE = 1 << 4,    /* meta: invalidated, served with X */
    ITEM_TOKEN = 1 << 5,    /* meta: a win token (W) has been handed out */
    ITEM_FREE = 1 << 6,     /* chunk is free (not linked): on a free list or a draining page */
    ITEM_HOT = 1 << 6,      /* linked: fetched twice, protected from eviction (storage/README) */
};

/* Bit 6 means ITEM_FREE on a chunk that is not linked and ITEM_HOT on a linked item: HOT is
 * set only on hits (linked, under the shard lock) and cleared when the item leaves the table,
 * so the two never meet. A free chunk is exactly (iflags & (FREE | LINKED)) == FREE. */
static inline bool item_flags_free(uint8_t fl)
{
    return (fl & (ITEM_FREE | ITEM_LINKED)) == ITEM_FREE;
}

struct item {
    uint32_t hnext;
    rel_time_t exptime;
    rel_time_t atime;
    uint32_t flags;
    uint32_t nbytes;
    _Atomic uint16_t refcount;
    uint8_t nkey;
    _Atomic uint8_t iflags;
    /* followed by: uint64_t cas (if ITEM_CAS), key, value */
    char data[];
};

_Static_assert(sizeof(struct item) == 24, "item header must stay 24 bytes (+8 for CAS)");

static inline bool item_has_cas(const struct item *it)
{
    return atomic_load_explicit(&((struct item *)it)->iflags, memory_order_relaxed) & ITEM_CAS;
}

static inline uint64_t item_cas(const struct item *it)
{
    uint64_t cas = 0;
    if (item_has_cas(it))
        memcpy(&cas, it->data, sizeof(cas));
    return cas;
}

static inline void item_set_cas(struct item *it, uint64_t cas)
{
    if (item_has_cas(it))
        memcpy(it->data, &cas, sizeof(cas));
}

static inline char *item_key(const struct item *it)
{
    return (char *)it->data + (item_has_cas(it) ? sizeof(uint64_t) : 0);
}

static inline char *item_value(const struct item *it)
{
    return item_key(it) + it->nkey;
}

static inline uint8_t item_iflags(const struct item *it)
{
    return atomic_load_explicit(&((struct item *)it)->iflags, memory_order_relaxed);
}

/* Bytes the item occupies before slab rounding. */
static inline size_t item_total_size(const struct item *it)
{
    return sizeof(struct item) + (item_has_cas(it) ? 8 : 0) + it->nkey + it->nbytes;
}
