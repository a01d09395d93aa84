/*
 * hitsim replay: tools/bench_hitratio.py's cache-aside traces replayed in process against the
 * real storage layer (the storage/ sources, linked as built), so a policy change is measured in under
 * a second and without the network: the hit ratio is what the server would answer, since the
 * server's get/set paths are storage_get and item_alloc + storage_store.
 *
 * The client is the benchmark's: batches of 100 gets; the batch's missed keys (each once) are
 * then set, value size 100 + FNV-1a(key) % 901. Time is simulated: the clock advances one
 * second per --rate requests, and the server's 100 ms maintenance tick (automove, sweeper,
 * hash growth) runs every rate/10 requests. Shards as the server's default -t 4 (64).
 *
 * Usage: replay TRACE [-p PREFIX] [-m MB] [-f FACTOR] [-n CHUNK_MIN] [-r REQ_PER_S]
 *                     [-T] [-2] [-v]
 *   -T: a third of the keys get a 2-4 s TTL (the ttl trace); -2: values of 100 or 1,000 bytes
 *   (by FNV-1a(key) & 1: tests/integration/test_hitratio.py's mixed trace); -v: per class.
 *   TRACE: uint32 key numbers (tools/hitsim/gen_trace.py). Prints the hit ratio over the
 *   second half, items held at the end and evictions.
 */
#include "storage/storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH 100

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static void show_class(void *arg, const struct slab_class_stats *s)
{
    (void)arg;
    printf("  class %2u chunk %5u pages %3llu used %6llu evicted %7llu req/chunk %.2f\n", s->id,
           s->chunk_size, (unsigned long long)s->total_pages, (unsigned long long)s->used_chunks,
           (unsigned long long)s->evicted,
           s->used_chunks ? (double)s->mem_requested / (double)s->used_chunks / s->chunk_size : 0);
}

int main(int argc, char **argv)
{
    const char *prefix = "z";
    double mb = 16, factor = 1.25, rate = 25000;
    unsigned chunk_min = 48;
    int ttl = 0, verbose = 0, two = 0, opt;
    while ((opt = getopt(argc, argv, "p:m:f:n:r:Tv2")) != -1) {
        switch (opt) {
        case 'p': prefix = optarg; break;
        case 'm': mb = atof(optarg); break;
        case 'f': factor = atof(optarg); break;
        case 'n': chunk_min = (unsigned)atoi(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 'T': ttl = 1; break;
        case 'v': verbose = 1; break;
        case '2': two = 1; break;
        default: fprintf(stderr, "usage: replay TRACE [-p P] [-m MB] [-f F] [-n N] [-r R] [-T]\n");
                 return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: replay TRACE [options]\n");
        return 2;
    }
    FILE *f = fopen(argv[optind], "rb");
    if (!f) {
        perror(argv[optind]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    size_t nreq = (size_t)ftell(f) / 4;
    fseek(f, 0, SEEK_SET);
    uint32_t *req = malloc(nreq * 4);
    if (!req || fread(req, 4, nreq, f) != nreq) {
        fprintf(stderr, "short trace\n");
        return 1;
    }
    fclose(f);

    struct storage_config cfg = {
        .mem_limit = (size_t)(mb * 1048576),
        .item_size_max = 1u << 20,
        .growth_factor = factor,
        .chunk_min = chunk_min,
        .evictions = true,
        .use_cas = true,
        .shards = 64,
        .automove = true,
    };
    char err[256] = "";
    clock_setup();
    rel_time_t t0 = 100;
    clock_set(t0);
    if (storage_setup(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    static char val[1100];
    memset(val, 'x', sizeof val);
    uint64_t hits = 0, total = 0, sets = 0, fails = 0, ticks = 0;
    size_t tick_every = (size_t)(rate / 10) ? (size_t)(rate / 10) : 1;
    for (size_t i = 0; i < nreq; i += BATCH) {
        size_t n = nreq - i < BATCH ? nreq - i : BATCH;
        uint32_t miss[BATCH];
        size_t nmiss = 0;
        for (size_t j = 0; j < n; j++) {
            char k[32];
            int kl = snprintf(k, sizeof k, "%s:%u", prefix, req[i + j]);
            struct item *it = storage_get(k, (size_t)kl);
            if (i + j >= nreq / 2) {
                total++;
                hits += it != NULL;
            }
            if (it) {
                item_put(it);
                continue;
            }
            size_t m = 0;
            while (m < nmiss && miss[m] != req[i + j])
                m++;
            if (m == nmiss)
                miss[nmiss++] = req[i + j];
        }
        for (size_t m = 0; m < nmiss; m++) {
            char k[32];
            int kl = snprintf(k, sizeof k, "%s:%u", prefix, miss[m]);
            uint32_t h = fnv1a(k, (size_t)kl);
            uint32_t nb = two ? (h & 1 ? 100 : 1000) : 100 + h % 901;
            rel_time_t exp = 0;
            if (ttl && h % 3 == 0)
                exp = clock_exptime(2 + (h >> 8) % 3);
            enum st_result res;
            struct item *it = item_alloc(k, (size_t)kl, 0, exp, nb, &res);
            sets++;
            if (!it) {
                fails++;
                continue;
            }
            memcpy(item_value(it), val, nb);
            storage_store(it, OP_SET, 0, NULL);
            item_put(it);
        }
        /* simulated time: maintenance ticks every rate/10 requests */
        for (; (i + n) / tick_every > ticks; ticks++) {
            if (ticks % 10 == 9)
                clock_set(t0 + (rel_time_t)((ticks + 1) / 10));
            storage_maintenance_step();
            while (storage_sweep_step(1000) > 0) {
            }
            storage_slab_tick();
        }
    }
    struct storage_stats st;
    storage_stats(&st);
    printf("hits %.2f%% (second half), items %llu, evictions %llu, sets %llu, failed %llu, "
           "pages moved %llu\n",
           100.0 * (double)hits / (double)total, (unsigned long long)st.curr_items,
           (unsigned long long)st.evictions, (unsigned long long)sets,
           (unsigned long long)fails, (unsigned long long)st.slabs_moved);
    if (verbose)
        storage_slab_stats(show_class, NULL);
    storage_teardown();
    free(req);
    return 0;
}
