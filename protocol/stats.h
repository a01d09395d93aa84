/*
 * Per worker thread request counters, declared once. Each worker owns one struct proto_stats
 * and is its only writer: STAT_INC/STAT_ADD are a relaxed atomic load and store (plain moves
 * on x86, no lock prefix, no lock), so another thread may read them at any time without a
 * data race. `stats` sums snapshots of every worker's copy (proto_stats_snapshot) through
 * proto_hooks.sum_stats; no lock is held on the request path (see storage/README, "Locks").
 * Names are memcached's `stats` field names.
 */
#pragma once

#include <stdint.h>

#include "protocol/observe.h"

#define PROTO_STATS(X)                                                                           \
    X(cmd_get) X(cmd_set) X(cmd_flush) X(cmd_touch) X(cmd_meta)                                 \
    X(get_hits) X(get_misses) X(get_expired) X(get_flushed)                                      \
    X(delete_misses) X(delete_hits)                                                              \
    X(incr_misses) X(incr_hits) X(decr_misses) X(decr_hits)                                     \
    X(cas_misses) X(cas_hits) X(cas_badval)                                                      \
    X(touch_hits) X(touch_misses)                                                                \
    X(store_too_large) X(store_no_memory)                                                        \
    X(bytes_read) X(bytes_written)                                                              \
    X(auth_cmds) X(auth_errors)

/* Per slab class, as memcached's `stats slabs` shows them (indexed by memcached's 1-based
 * class id; storage has at most 250 classes). */
#define PROTO_CLASS_STATS(X)                                                                     \
    X(get_hits) X(cmd_set) X(delete_hits) X(incr_hits) X(decr_hits)                             \
    X(cas_hits) X(cas_badval) X(touch_hits)
#define PROTO_CLASSES 256

struct proto_class_stats {
#define PROTO_STAT_FIELD(name) uint64_t name;
    PROTO_CLASS_STATS(PROTO_STAT_FIELD)
};

struct proto_stats {
    PROTO_STATS(PROTO_STAT_FIELD)
#undef PROTO_STAT_FIELD
    struct proto_class_stats cls[PROTO_CLASSES];
    struct proto_obs obs; /* latency histograms, hot keys (protocol/observe.h) */
};

/* Single-writer counter updates (owner thread only) and reads from any thread. */
static inline void stat_add(uint64_t *f, uint64_t n)
{
    __atomic_store_n(f, __atomic_load_n(f, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
static inline uint64_t stat_load(const uint64_t *f)
{
    return __atomic_load_n(f, __ATOMIC_RELAXED);
}
#define STAT_INC(f) stat_add(&(f), 1)
#define STAT_ADD(f, n) stat_add(&(f), (n))

/* Copies a struct another thread is writing: counters and histograms loaded relaxed, the
 * hot-key sketch under its sequence count (protocol/observe.h). */
void proto_stats_snapshot(struct proto_stats *dst, const struct proto_stats *live);
/* out -= base for counters and histograms (`stats reset` keeps a base per worker instead of
 * writing to counters it does not own). The sketch is left alone (reset by request). */
void proto_stats_sub(struct proto_stats *out, const struct proto_stats *base);

/* out += in, field by field (plain copies: snapshots, or this thread's own struct). */
static inline void proto_stats_add(struct proto_stats *out, const struct proto_stats *in)
{
#define PROTO_STAT_ADD(name) out->name += in->name;
    PROTO_STATS(PROTO_STAT_ADD)
    for (unsigned i = 0; i < PROTO_CLASSES; i++) {
#define PROTO_CLASS_ADD(name) out->cls[i].name += in->cls[i].name;
        PROTO_CLASS_STATS(PROTO_CLASS_ADD)
#undef PROTO_CLASS_ADD
    }
#undef PROTO_STAT_ADD
    obs_add(&out->obs, &in->obs);
}
