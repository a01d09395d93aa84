/*
 * observe: latency histograms and the hot-key sketch (protocol/observe.h). The request path
 * calls only obs_latency_add and obs_key (inline: an add into a fixed bucket, a decrement);
 * everything else runs on a sampled access or when someone reads the numbers.
 */
#include "protocol/observe.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/internal.h"

const char *const obs_cmd_names[OBS_NCMD] = {
#define OBS_CMD_NAME(e, s) s,
    OBS_COMMANDS(OBS_CMD_NAME)
#undef OBS_CMD_NAME
};

bool obs_use_tsc;
uint64_t obs_tsc_mult;

static bool cpu_has_invariant_tsc(void)
{
#if defined(__x86_64__)
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return false;
    char line[4096];
    bool constant = false, nonstop = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        constant = strstr(line, " constant_tsc") != NULL;
        nonstop = strstr(line, " nonstop_tsc") != NULL;
        break;
    }
    fclose(f);
    return constant && nonstop;
#else
    return false;
#endif
}

void obs_setup(void)
{
    if (obs_use_tsc || !cpu_has_invariant_tsc())
        return;
#if defined(__x86_64__)
    /* ticks per ns over ~2 ms against CLOCK_MONOTONIC (one-time, at startup) */
    uint64_t n0 = obs_now_ns(), c0 = __builtin_ia32_rdtsc(), n1, c1;
    do {
        n1 = obs_now_ns();
        c1 = __builtin_ia32_rdtsc();
    } while (n1 - n0 < 2000000);
    if (c1 <= c0)
        return;
    obs_tsc_mult = (uint64_t)((((unsigned __int128)(n1 - n0)) << 32) / (c1 - c0));
    obs_use_tsc = obs_tsc_mult != 0;
#endif
}

enum obs_cmd obs_classify(const struct token *t, unsigned nkeys)
{
    const char *p = t->p;
    switch (t->len) {
    case 2:
        if (p[0] != 'm')
            return OBS_NONE;
        switch (p[1]) {
        case 'g': return OBS_MG;
        case 's': return OBS_MS;
        case 'd': return OBS_MD;
        case 'a': return OBS_MA;
        default: return OBS_NONE;
        }
    case 3:
        if (TOK_IS(t, "get"))
            return nkeys > 1 ? OBS_MULTIGET : OBS_GET;
        if (TOK_IS(t, "set") || TOK_IS(t, "add") || TOK_IS(t, "cas"))
            return OBS_SET;
        if (TOK_IS(t, "gat"))
            return OBS_TOUCH;
        return OBS_NONE;
    case 4:
        if (TOK_IS(t, "gets") || TOK_IS(t, "bget"))
            return nkeys > 1 ? OBS_MULTIGET : OBS_GET;
        if (TOK_IS(t, "incr") || TOK_IS(t, "decr"))
            return OBS_INCRDECR;
        if (TOK_IS(t, "gats"))
            return OBS_TOUCH;
        return OBS_NONE;
    case 5:
        return TOK_IS(t, "touch") ? OBS_TOUCH : OBS_NONE;
    case 6:
        if (TOK_IS(t, "delete"))
            return OBS_DELETE;
        return TOK_IS(t, "append") ? OBS_SET : OBS_NONE;
    case 7:
        return TOK_IS(t, "replace") || TOK_IS(t, "prepend") ? OBS_SET : OBS_NONE;
    default:
        return OBS_NONE;
    }
}

/* ---- hot keys ---- */

static uint64_t key_hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: only sampled keys are hashed */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int topk_find(const struct obs_topk *t, uint64_t h, const char *key, size_t nkey)
{
    for (uint32_t i = 0; i < t->used; i++)
        if (t->hash[i] == h && t->nkey[i] == nkey && memcmp(t->key[i], key, nkey) == 0)
            return (int)i;
    return -1;
}

static uint32_t topk_min(const struct obs_topk *t)
{
    uint32_t m = 0;
    for (uint32_t i = 1; i < t->used; i++)
        if (t->count[i] < t->count[m])
            m = i;
    return m;
}

static void topk_set(struct obs_topk *t, uint32_t i, uint64_t h, const char *key, size_t nkey,
                     uint64_t count, uint64_t err)
{
    t->hash[i] = h;
    t->count[i] = count;
    t->err[i] = err;
    t->nkey[i] = (uint8_t)nkey;
    memcpy(t->key[i], key, nkey);
}

/* Space-Saving: count a key; when the table is full the least counted key is replaced and
 * the newcomer inherits its count (+ its own), remembered as the error bound. One pass finds
 * the key and the minimum together (a sampled access costs one scan of OBS_HK_SLOTS hashes). */
static void topk_add(struct obs_topk *t, uint64_t h, const char *key, size_t nkey,
                     uint64_t count, uint64_t err)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < t->used; i++) {
        if (t->hash[i] == h && t->nkey[i] == nkey && memcmp(t->key[i], key, nkey) == 0) {
            t->count[i] += count;
            t->err[i] += err;
            return;
        }
        if (t->count[i] < t->count[m])
            m = i;
    }
    if (t->used < OBS_HK_SLOTS) {
        topk_set(t, t->used++, h, key, nkey, count, err);
    } else {
        uint64_t inherited = t->count[m];
        topk_set(t, m, h, key, nkey, inherited + count, inherited + err);
    }
}

void obs_key_sample(struct proto_obs *o, enum obs_dir d, const char *key, size_t nkey)
{
    /* xorshift32: the skip is random so a workload cycling through keys cannot alias with it */
    uint32_t x = o->rng ? o->rng : 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    o->rng = x;
    o->skip = 1 + x % (2 * OBS_HK_SAMPLE - 1);
    if (nkey == 0 || nkey > OBS_HK_KEY_MAX)
        return;
    uint32_t req = __atomic_load_n(&o->clear_req, __ATOMIC_RELAXED);
    uint64_t h = key_hash(key, nkey);
    /* seqlock write side: odd while the sketch changes */
    __atomic_store_n(&o->seq, o->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    if (req != o->clear_seen) { /* `stats reset` asked */
        memset(o->hot, 0, sizeof o->hot);
        memset(o->sampled, 0, sizeof o->sampled);
        __atomic_store_n(&o->clear_seen, req, __ATOMIC_RELAXED);
    }
    o->sampled[d]++;
    topk_add(&o->hot[d], h, key, nkey, 1, 0);
    __atomic_store_n(&o->seq, o->seq + 1, __ATOMIC_RELEASE);
}

void obs_sketch_snapshot(struct proto_obs *dst, const struct proto_obs *live)
{
    for (int tries = 0; tries < 1000; tries++) {
        uint32_t s1 = __atomic_load_n(&live->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1)
            continue;
        /* A torn copy is possible here and thrown away below (seqlock read side). */
        memcpy(dst->hot, (const void *)live->hot, sizeof dst->hot);
        memcpy(dst->sampled, (const void *)live->sampled, sizeof dst->sampled);
        uint32_t seen = __atomic_load_n(&live->clear_seen, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&live->seq, __ATOMIC_RELAXED) != s1)
            continue;
        if (__atomic_load_n(&live->clear_req, __ATOMIC_RELAXED) == seen)
            return;
        break; /* a clear is pending: the sketch counts as empty */
    }
    memset(dst->hot, 0, sizeof dst->hot);
    memset(dst->sampled, 0, sizeof dst->sampled);
}

void obs_command_keys(struct proto_obs *o, enum obs_cmd c, const struct request *q)
{
    switch (c) {
    case OBS_GET:
    case OBS_MULTIGET:
    case OBS_TOUCH:
        /* get/gets/bget/gat/gats: each key is sampled as it is looked up (get_key in
         * protocol/proto.c, long multi-get lines too); here only touch <key> */
        if (q->tok[0].p[0] == 't' && q->ntok > 1)
            obs_key(o, OBS_WRITE, q->tok[1].p, q->tok[1].len);
        return;
    case OBS_MG:
        if (q->ntok > 1)
            obs_key(o, OBS_READ, q->tok[1].p, q->tok[1].len);
        return;
    case OBS_NONE:
        return;
    default:
        if (q->ntok > 1)
            obs_key(o, OBS_WRITE, q->tok[1].p, q->tok[1].len);
        return;
    }
}

/* ---- merging and reading ---- */

void obs_add(struct proto_obs *out, const struct proto_obs *in)
{
    for (unsigned c = 0; c < OBS_NCMD; c++) {
        for (unsigned b = 0; b <= OBS_LAT_BUCKETS; b++)
            out->lat[c].bucket[b] += in->lat[c].bucket[b];
        out->lat[c].sum_ns += in->lat[c].sum_ns;
        out->lat[c].count += in->lat[c].count;
    }
    for (unsigned d = 0; d < 2; d++) {
        out->sampled[d] += in->sampled[d];
        const struct obs_topk *t = &in->hot[d];
        struct obs_topk *o = &out->hot[d];
        for (uint32_t i = 0; i < t->used && i < OBS_HK_SLOTS; i++) {
            if (o->used == OBS_HK_SLOTS && topk_find(o, t->hash[i], t->key[i], t->nkey[i]) < 0) {
                /* Full and new: it displaces the smallest if larger. The displaced count is
                 * dropped, not inherited: the workers' samples are disjoint, so inheriting
                 * would double-count. */
                uint32_t m = topk_min(o);
                if (o->count[m] < t->count[i])
                    topk_set(o, m, t->hash[i], t->key[i], t->nkey[i], t->count[i], t->err[i]);
                continue;
            }
            topk_add(o, t->hash[i], t->key[i], t->nkey[i], t->count[i], t->err[i]);
        }
    }
}

double obs_bucket_le(unsigned i)
{
    return (double)(1ull << (i + OBS_LAT_MIN_SHIFT)) * 1e-9;
}

static const struct obs_topk *sort_topk; /* qsort has no context argument */

static int hot_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    const struct obs_topk *t = sort_topk;
    if (t->count[x] != t->count[y])
        return t->count[x] < t->count[y] ? 1 : -1;
    return x < y ? -1 : x > y;
}

uint32_t obs_topk_order(const struct obs_topk *t, uint32_t *idx)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    for (uint32_t i = 0; i < t->used; i++)
        idx[i] = i;
    pthread_mutex_lock(&lock);
    sort_topk = t;
    // cppcheck-suppress uninitvar ; idx[0 .. t->used) is written by the loop above
    qsort(idx, t->used, sizeof(*idx), hot_cmp);
    pthread_mutex_unlock(&lock);
    return t->used;
}

/* Upper bound (ns) of the bucket holding quantile q, from the non-cumulative buckets. */
static uint64_t quantile_ns(const struct obs_latency *l, double q)
{
    uint64_t want = (uint64_t)((double)l->count * q);
    if (want == 0)
        want = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < OBS_LAT_BUCKETS; b++) {
        seen += l->bucket[b];
        if (seen >= want)
            return 1ull << (b + OBS_LAT_MIN_SHIFT);
    }
    return 1ull << (OBS_LAT_BUCKETS - 1 + OBS_LAT_MIN_SHIFT + 1); /* beyond the last bound */
}

void obs_stats_latency(struct reply *r, const struct proto_obs *o)
{
    reply_printf(r, "STAT latency_unit ns\r\n");
    for (unsigned c = 0; c < OBS_NCMD; c++) {
        const struct obs_latency *l = &o->lat[c];
        const char *n = obs_cmd_names[c];
        reply_printf(r, "STAT %s:count %llu\r\n", n, (unsigned long long)l->count);
        if (l->count == 0)
            continue;
        reply_printf(r, "STAT %s:mean %llu\r\n", n, (unsigned long long)(l->sum_ns / l->count));
        reply_printf(r, "STAT %s:p50 %llu\r\nSTAT %s:p90 %llu\r\nSTAT %s:p99 %llu\r\n"
                     "STAT %s:p999 %llu\r\n",
                     n, (unsigned long long)quantile_ns(l, 0.5), n,
                     (unsigned long long)quantile_ns(l, 0.9), n,
                     (unsigned long long)quantile_ns(l, 0.99), n,
                     (unsigned long long)quantile_ns(l, 0.999));
        for (unsigned b = 0; b <= OBS_LAT_BUCKETS; b++) {
            if (l->bucket[b] == 0)
                continue;
            if (b < OBS_LAT_BUCKETS)
                reply_printf(r, "STAT %s:le_%llu %llu\r\n", n,
                             1ull << (b + OBS_LAT_MIN_SHIFT), (unsigned long long)l->bucket[b]);
            else
                reply_printf(r, "STAT %s:le_inf %llu\r\n", n, (unsigned long long)l->bucket[b]);
        }
    }
}

void obs_stats_hotkeys(struct reply *r_out, struct proto_obs *o)
{
    static const char *const dir[2] = {"read", "write"};
    reply_printf(r_out, "STAT hotkeys_sample_rate %u\r\nSTAT hotkeys_slots %u\r\n", OBS_HK_SAMPLE,
                 OBS_HK_SLOTS);
    reply_printf(r_out, "STAT hotkeys_sampled_reads %llu\r\nSTAT hotkeys_sampled_writes %llu\r\n",
                 (unsigned long long)o->sampled[0], (unsigned long long)o->sampled[1]);
    for (unsigned d = 0; d < 2; d++) {
        const struct obs_topk *t = &o->hot[d];
        uint32_t idx[OBS_HK_SLOTS];
        uint32_t n = obs_topk_order(t, idx);
        /* "STAT <dir>:<rank> <key> <estimated accesses> <error bound>"; estimates are the
         * sampled counts times the sampling rate. */
        for (uint32_t r = 0; r < n; r++) {
            uint32_t i = idx[r];
            reply_printf(r_out, "STAT %s:%u ", dir[d], r + 1);
            reply_add(r_out, t->key[i], t->nkey[i]);
            reply_printf(r_out, " %llu %llu\r\n", (unsigned long long)(t->count[i] * OBS_HK_SAMPLE),
                         (unsigned long long)(t->err[i] * OBS_HK_SAMPLE));
        }
    }
}
