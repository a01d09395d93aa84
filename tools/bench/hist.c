/*
 * hist: a log-bucketed latency histogram (the idea of HdrHistogram, at a fixed 4-bit
 * precision). Recording is a count-leading-zeros and an increment; no allocation.
 */
#include "bench.h"

/* Values below HIST_SUB have a bucket each; above, each power of two [2^m, 2^(m+1)) is
 * split into HIST_SUB equal buckets. */
static unsigned hist_index(uint64_t ns)
{
    if (ns < HIST_SUB)
        return (unsigned)ns;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    if (msb >= HIST_MAX_BITS)
        return HIST_BUCKETS - 1;
    unsigned sub = (unsigned)(ns >> (msb - HIST_SUB_BITS)) & (HIST_SUB - 1);
    return (msb - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

static uint64_t hist_bucket_mid(unsigned idx)
{
    if (idx < HIST_SUB)
        return idx;
    unsigned group = idx / HIST_SUB, sub = idx % HIST_SUB;
    unsigned shift = group - 1; /* msb - HIST_SUB_BITS */
    uint64_t lower = (uint64_t)(HIST_SUB + sub) << shift;
    return lower + ((1ull << shift) >> 1);
}

void hist_record(struct hist *h, uint64_t ns)
{
    h->bucket[hist_index(ns)]++;
    h->count++;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void hist_merge(struct hist *into, const struct hist *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->bucket[i] += from->bucket[i];
    into->count += from->count;
    if (from->max_ns > into->max_ns)
        into->max_ns = from->max_ns;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->count == 0)
        return 0;
    /* The rank of the q-quantile, 1-based: the smallest value with at least q of the
     * samples at or below it. */
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t mid = hist_bucket_mid(i);
            return mid > h->max_ns ? h->max_ns : mid;
        }
    }
    return h->max_ns;
}
