/*
 * observe: what cached shows beyond memcached's counters — per-command latency histograms and
 * a sampled top-K of the most-read and most-written keys. One struct proto_obs lives inside
 * each worker's struct proto_stats, so it has the same single writer (the worker, under its
 * uncontended stats lock) and is summed/merged by the same path as the counters
 * (proto_stats_add -> proto_obs_add).
 *
 * Latency: from a command line framed (parsed) to its reply queued, measured with one
 * CLOCK_MONOTONIC read per command (the end of one command is the start of the next in a
 * pipelined batch). Buckets are powers of two in nanoseconds, 2^OBS_LAT_MIN_SHIFT ..
 * 2^(OBS_LAT_MIN_SHIFT + OBS_LAT_BUCKETS - 1) ns, plus an overflow bucket: fixed, so a merge
 * is an addition and a Prometheus histogram needs no configuration.
 *
 * Hot keys: Space-Saving (Metwally et al. 2005) over a sample of key accesses (a random skip
 * of 1..2*OBS_HK_SAMPLE-1, mean OBS_HK_SAMPLE), OBS_HK_SLOTS counters per worker and
 * direction. Memory is fixed: 2 * OBS_HK_SLOTS * (250 + 25) bytes (~70 KB) per worker.
 * Shown counts are sampled counts times the sampling rate, i.e. estimates; `err` bounds the
 * overestimate. Why 128 slots: Space-Saving keeps every key more frequent than samples/slots;
 * on Zipf 0.99 over 10^4..10^6 keys the 10th key has ~1% of accesses, well above 1/128.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct reply;
struct token;

/* Commands with a latency histogram (label values of cached_command_duration_seconds). */
#define OBS_COMMANDS(X)                                                                          \
    X(GET, "get") X(MULTIGET, "multiget") X(SET, "set") X(DELETE, "delete")                      \
    X(INCRDECR, "incr_decr") X(TOUCH, "touch") X(MG, "mg") X(MS, "ms") X(MD, "md") X(MA, "ma")

enum obs_cmd {
#define OBS_CMD_ENUM(e, s) OBS_##e,
    OBS_COMMANDS(OBS_CMD_ENUM)
#undef OBS_CMD_ENUM
    OBS_NCMD,
    OBS_NONE = OBS_NCMD, /* not measured (stats, version, ...) */
};

#define OBS_LAT_MIN_SHIFT 7  /* first bucket: <= 128 ns */
#define OBS_LAT_BUCKETS 26   /* last finite bucket: <= 2^32 ns, ~4.3 s */

struct obs_latency {
    uint64_t bucket[OBS_LAT_BUCKETS + 1]; /* not cumulative; the last one is +Inf */
    uint64_t sum_ns;
    uint64_t count;
};

#define OBS_HK_SLOTS 128
#define OBS_HK_SAMPLE 32 /* 1 access in 32 (mean): a sampled one costs ~one scan of the table */
#define OBS_HK_KEY_MAX 250

/* A Space-Saving table. Hashes and counts are arrays of their own so that the scans of a
 * sampled access (find the key, find the minimum) stay within a few cache lines. */
struct obs_topk {
    uint32_t used;
    uint64_t hash[OBS_HK_SLOTS];
    uint64_t count[OBS_HK_SLOTS]; /* sampled hits (Space-Saving estimate) */
    uint64_t err[OBS_HK_SLOTS];   /* overestimate bound: the count inherited on replacement */
    uint8_t nkey[OBS_HK_SLOTS];
    char key[OBS_HK_SLOTS][OBS_HK_KEY_MAX];
};

enum obs_dir { OBS_READ, OBS_WRITE };

struct proto_obs {
    struct obs_latency lat[OBS_NCMD];
    struct obs_topk hot[2];  /* OBS_READ, OBS_WRITE */
    uint64_t sampled[2];     /* accesses sampled per direction */
    uint32_t skip;           /* accesses left until the next sample */
    uint32_t rng;            /* xorshift state for the skip */
    /* The sketch (hot, sampled) is written by its worker only, inside an odd `seq`; a reader
     * copies it and retries if seq was odd or moved (a seqlock: the writer never waits).
     * `stats reset` asks for a clear by bumping clear_req; the owner clears at its next
     * sample and sets clear_seen; meanwhile readers see an empty sketch. */
    uint32_t seq;
    uint32_t clear_req, clear_seen;
};

/*
 * The clock of the histograms: the TSC where it is invariant (constant_tsc and nonstop_tsc:
 * ~25 cycles and a handful of instructions), else CLOCK_MONOTONIC (vDSO, ~3x the
 * instructions: measured, see BENCHMARKS.md). obs_setup() decides and calibrates ticks to ns.
 */
extern bool obs_use_tsc;
extern uint64_t obs_tsc_mult; /* ns per tick, 32.32 fixed point */
void obs_setup(void);

static inline uint64_t obs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A timestamp in clock units (ticks or ns); differences go through obs_ticks_ns. */
static inline uint64_t obs_now(void)
{
#if defined(__x86_64__)
    if (__builtin_expect(obs_use_tsc, 1))
        return __builtin_ia32_rdtsc();
#endif
    return obs_now_ns();
}

static inline uint64_t obs_ticks_ns(uint64_t t0, uint64_t t1)
{
    if (t1 <= t0)
        return 0; /* another core's TSC a little behind */
    uint64_t d = t1 - t0;
    return obs_use_tsc ? (uint64_t)(((unsigned __int128)d * obs_tsc_mult) >> 32) : d;
}

/* Classifies a command by its name token and the number of keys it names. */
enum obs_cmd obs_classify(const struct token *name, unsigned nkeys);
/* Records one command's latency. */
static inline void obs_latency_add(struct proto_obs *o, enum obs_cmd c, uint64_t ns)
{
    struct obs_latency *l = &o->lat[c];
    unsigned b = 0;
    if (ns > (1ull << OBS_LAT_MIN_SHIFT)) {
        /* bucket i holds ns in (2^(i+shift-1), 2^(i+shift)] */
        b = (unsigned)(64 - __builtin_clzll(ns - 1)) - OBS_LAT_MIN_SHIFT;
        if (b > OBS_LAT_BUCKETS)
            b = OBS_LAT_BUCKETS;
    }
    /* single writer, read by `stats` on other threads: relaxed load + store */
    __atomic_store_n(&l->bucket[b], __atomic_load_n(&l->bucket[b], __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&l->sum_ns, __atomic_load_n(&l->sum_ns, __ATOMIC_RELAXED) + ns,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&l->count, __atomic_load_n(&l->count, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
}
/* Samples one key access (cheap unless this access is the sampled one). */
void obs_key_sample(struct proto_obs *o, enum obs_dir d, const char *key, size_t nkey);
static inline void obs_key(struct proto_obs *o, enum obs_dir d, const char *key, size_t nkey)
{
    if (__builtin_expect(o->skip-- <= 1, 0)) /* 0 after a reset: sample now */
        obs_key_sample(o, d, key, nkey);
}
/* The keys a command names, fed to obs_key (after it ran: tokens still valid). */
struct request;
void obs_command_keys(struct proto_obs *o, enum obs_cmd c, const struct request *q);

/* A copy of the live sketch of another thread (seqlock read); empty if a clear is pending or
 * the writer kept it busy for every retry. */
void obs_sketch_snapshot(struct proto_obs *dst, const struct proto_obs *live);

/* out += in: histograms add; sketches merge (same key: counts add; then the largest
 * OBS_HK_SLOTS are kept). */
void obs_add(struct proto_obs *out, const struct proto_obs *in);

/* Upper bound of bucket i in seconds, for `le` (i < OBS_LAT_BUCKETS). */
double obs_bucket_le(unsigned i);
extern const char *const obs_cmd_names[OBS_NCMD];

/* The slot indexes of a sketch ordered by count, descending; returns how many (t->used). */
uint32_t obs_topk_order(const struct obs_topk *t, uint32_t *idx);

/* `stats latency` and `stats hotkeys` lines. */
void obs_stats_latency(struct reply *r, const struct proto_obs *o);
void obs_stats_hotkeys(struct reply *r, struct proto_obs *o);
