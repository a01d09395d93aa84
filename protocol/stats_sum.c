/*
 * stats_sum: reading the per-worker counters of protocol/stats.h from another thread without
 * a lock: relaxed loads of every counter and histogram bucket, the hot-key sketch through its
 * seqlock. A `stats` reader never makes a worker wait.
 */
#include "protocol/stats.h"

#include <string.h>

void proto_stats_snapshot(struct proto_stats *dst, const struct proto_stats *live)
{
    memset(dst, 0, sizeof *dst);
#define PROTO_STAT_LOAD(name) dst->name = stat_load(&live->name);
    PROTO_STATS(PROTO_STAT_LOAD)
#undef PROTO_STAT_LOAD
    for (unsigned i = 0; i < PROTO_CLASSES; i++) {
#define PROTO_CLASS_LOAD(name) dst->cls[i].name = stat_load(&live->cls[i].name);
        PROTO_CLASS_STATS(PROTO_CLASS_LOAD)
#undef PROTO_CLASS_LOAD
    }
    for (unsigned c = 0; c < OBS_NCMD; c++) {
        const struct obs_latency *l = &live->obs.lat[c];
        for (unsigned b = 0; b <= OBS_LAT_BUCKETS; b++)
            dst->obs.lat[c].bucket[b] = stat_load(&l->bucket[b]);
        dst->obs.lat[c].sum_ns = stat_load(&l->sum_ns);
        dst->obs.lat[c].count = stat_load(&l->count);
    }
    obs_sketch_snapshot(&dst->obs, &live->obs);
}

void proto_stats_sub(struct proto_stats *out, const struct proto_stats *base)
{
#define PROTO_STAT_SUB(name) out->name -= base->name;
    PROTO_STATS(PROTO_STAT_SUB)
#undef PROTO_STAT_SUB
    for (unsigned i = 0; i < PROTO_CLASSES; i++) {
#define PROTO_CLASS_SUB(name) out->cls[i].name -= base->cls[i].name;
        PROTO_CLASS_STATS(PROTO_CLASS_SUB)
#undef PROTO_CLASS_SUB
    }
    for (unsigned c = 0; c < OBS_NCMD; c++) {
        for (unsigned b = 0; b <= OBS_LAT_BUCKETS; b++)
            out->obs.lat[c].bucket[b] -= base->obs.lat[c].bucket[b];
        out->obs.lat[c].sum_ns -= base->obs.lat[c].sum_ns;
        out->obs.lat[c].count -= base->obs.lat[c].count;
    }
}
