/*
 * proto_pipe: the protocol's per-command cost without sockets — pipelined gets fed to
 * proto_process in-process against a real store, timed in thread CPU time. What it isolates is the
 * user-space work of a command and the cache misses of its lookup (the kernel's share and the
 * loader are not in it), in thread CPU time, so on a shared machine it is far steadier than a
 * throughput run.
 *
 * usage: build/proto-pipe [-k keys] [-d depth] [-n batches] [-r reps] [-v value bytes] [-m]
 * Stores keys "key:<i>" (i < keys) with values of -v bytes, then repeats: a buffer of -d
 * "get key:<random>\r\n" lines (-m: "mg key:<random> v f\r\n"; -b: binary GETKQ requests and a
 * NOOP, on a connection of its own; -s: "set key:<random> 0 0 <-v> noreply" and the value),
 * proto_process, drop the reply. Prints ns of CPU per get (the
 * median and the minimum of -r repetitions of -n batches).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "protocol/proto.h"
#include "protocol/reply.h"
#include "protocol/stats.h"
#include "storage/clock.h"
#include "storage/storage.h"

static struct proto_stats st;

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void run(struct proto_conn *pc, struct reply *r, const char *buf, size_t len)
{
    size_t consumed = 0, off = 0;
    while (off < len) {
        proto_process(pc, r, buf + off, len - off, &consumed, 1000, 1u << 30);
        off += consumed;
        if (consumed == 0)
            abort();
    }
    reply_consumed(r, r->pending); /* as if written: releases referenced items */
}

int main(int argc, char **argv)
{
    unsigned keys = 100000, depth = 16, batches = 20000, reps = 7, vlen = 100;
    const char *fmt = "get key:%u\r\n";
    bool bin = false, set = false;
    int o;
    while ((o = getopt(argc, argv, "k:d:n:r:v:mbs")) != -1) {
        switch (o) {
        case 'k': keys = (unsigned)atoi(optarg); break;
        case 'd': depth = (unsigned)atoi(optarg); break;
        case 'n': batches = (unsigned)atoi(optarg); break;
        case 'r': reps = (unsigned)atoi(optarg); break;
        case 'v': vlen = (unsigned)atoi(optarg); break;
        case 'm': fmt = "mg key:%u v f\r\n"; break;
        case 'b': bin = true; break;
        case 's': set = true; fmt = "set key:%u 0 0 %u noreply\r\n"; break;
        default: fprintf(stderr, "usage: proto-pipe [-k keys] [-d depth] [-n batches] [-r reps] [-v bytes] [-m|-b]\n"); return 2;
        }
    }
    clock_setup();
    struct storage_config sc = {.mem_limit = 1024u << 20, .item_size_max = 1 << 20,
                                .growth_factor = 1.25, .chunk_min = 48, .evictions = true,
                                .use_cas = true, .shards = 16, .automove = false};
    char err[256];
    if (storage_setup(&sc, err, sizeof err) != 0) {
        fprintf(stderr, "proto-pipe: %s\n", err);
        return 1;
    }
    proto_setup(NULL, NULL);
    struct proto_conn pc;
    memset(&pc, 0, sizeof pc);
    pc.stats = &st;
    struct reply r;
    reply_init(&r);

    size_t cap = (size_t)depth * 64 + 4096 + vlen;
    char *buf = malloc(cap), *val = malloc(vlen + 2);
    memset(val, 'v', vlen);
    memcpy(val + vlen, "\r\n", 2);
    for (unsigned i = 0; i < keys; i++) { /* preload */
        int n = snprintf(buf, cap, "set key:%u 0 0 %u noreply\r\n", i, vlen);
        memcpy(buf + n, val, vlen + 2);
        run(&pc, &r, buf, (size_t)n + vlen + 2);
    }
    /* every batch of a repetition written beforehand: the timed loop is proto_process only */
    size_t all_cap = (size_t)batches * (depth + 1) * (48 + (set ? vlen + 2 : 0)) + 64;
    struct proto_conn pcb; /* -b: a binary connection (its first byte decides) */
    memset(&pcb, 0, sizeof pcb);
    pcb.stats = &st;
    char *all = malloc(all_cap);
    size_t *ends = malloc((size_t)batches * sizeof *ends);
    uint64_t *per = malloc(reps * sizeof *per);
    for (unsigned rep = 0; rep < reps; rep++) {
        size_t len = 0;
        for (unsigned b = 0; b < batches; b++) {
            for (unsigned d = 0; d < depth && !bin; d++) {
                len += (size_t)snprintf(all + len, all_cap - len, fmt,
                                        (unsigned)(next_rand() % keys), vlen);
                if (set) {
                    memcpy(all + len, val, vlen + 2);
                    len += vlen + 2;
                }
            }
            for (unsigned d = 0; d <= depth && bin; d++) { /* GETKQ x depth, then NOOP */
                unsigned char *h = (unsigned char *)all + len;
                char key[24];
                int kl = d < depth ? snprintf(key, sizeof key, "key:%u",
                                              (unsigned)(next_rand() % keys)) : 0;
                memset(h, 0, 24);
                h[0] = 0x80;
                h[1] = d < depth ? 0x0d : 0x0a;
                h[3] = (unsigned char)kl;
                h[11] = (unsigned char)kl;
                memcpy(h + 24, key, (size_t)kl);
                len += 24 + (size_t)kl;
            }
            ends[b] = len;
        }
        struct timespec t0, t1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
        size_t start = 0;
        for (unsigned b = 0; b < batches; b++) {
            run(bin ? &pcb : &pc, &r, all + start, ends[b] - start);
            start = ends[b];
        }
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
        uint64_t ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u +
                      (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec;
        per[rep] = ns * 1000 / ((uint64_t)batches * depth); /* picoseconds per get */
    }
    qsort(per, reps, sizeof *per, cmp_u64);
    printf("proto-pipe keys=%u depth=%u value=%u: %.1f ns/get median, %.1f min (%u x %u gets)"
           " hits=%llu\n", keys, depth, vlen, per[reps / 2] / 1000.0,
           per[0] / 1000.0, reps, batches * depth,
           (unsigned long long)st.get_hits);
    return 0;
}
