/*
 * fuzz_proto: libFuzzer target for the text protocol — parser, executor and composer — run
 * against a real in-process store (storage/), with ASan+UBSan. No sockets, no server/: this
 * file plays the server's part for one connection.
 *
 * An input is [ctl][seed][command stream...]:
 *   ctl bits 0-1  max_reqs per proto_process call: 1, 2, 20 or 1000
 *   ctl bit  2    drain replies a few bytes at a time (partial writev) instead of all at once
 *   ctl bit  3    small max_output (64 KiB, the minimum) so backpressure (PROTO_YIELD) happens
 *   ctl bit  4    advance the clock between chunks (expiry, flush_all delays)
 *   ctl bit  5    run the background steps (sweeper, automove, hash growth) between chunks
 *   seed          drives a tiny PRNG choosing the split points of the stream
 * The stream is delivered in chunks into a growing buffer, like the server's read buffer:
 * bytes proto_process did not consume stay at the front and the next chunk is appended.
 *
 * Besides sanitizer reports, the harness traps on protocol contract violations that would hurt
 * the real server: no progress on PROTO_YIELD (a livelock), consumed > len, more bytes left
 * unconsumed than PROTO_UNCONSUMED_MAX (the server's fixed read buffer would fill up), reply
 * bytes not accounted for in r->pending.
 *
 * State between inputs: with FUZZ_RESET=1 (-DFUZZ_RESET=1) storage is torn down and set up
 * again for every input, so a crash always reproduces from its input alone; that costs the
 * page faults of a fresh arena each time (~10x fewer executions per second). The default
 * keeps the store and starts each input 2 s later with a flush_all, so no item of an earlier
 * input is visible; slab page assignments, hash growth and the CAS counter carry over. A
 * crash that does not replay alone: rebuild with FUZZ_CFLAGS=-DFUZZ_RESET=1 and re-run it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "protocol/proto.h"
#include "protocol/reply.h"
#include "protocol/stats.h"
#include "storage/clock.h"
#include "storage/storage.h"

#define FUZZ_MEM_LIMIT (8u << 20)       /* small, so eviction happens */
#define FUZZ_ITEM_MAX (1u << 20)        /* storage needs the page size >= 1 MB */
#define FUZZ_CLOCK_START 1000u
#ifndef FUZZ_RESET
#define FUZZ_RESET 0
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct proto_stats fuzz_stats;

static void fuzz_server_stats(struct proto_server_stats *out)
{
    out->max_connections = 1024;
    out->curr_connections = 1;
    out->threads = 1;
}

static void fuzz_conns_each(void (*fn)(void *arg, const struct proto_conn_info *c), void *arg)
{
    (void)fn, (void)arg; /* no connections to list */
}

static void fuzz_shutdown(void)
{
    /* The real server stops its event loop; here the input just goes on. */
}

static void fuzz_sum_stats(struct proto_stats *out)
{
    proto_stats_add(out, &fuzz_stats);
}

static void fuzz_reset_stats(void)
{
    memset(&fuzz_stats, 0, sizeof(fuzz_stats));
}

static const struct proto_hooks fuzz_hooks = {
    .server_stats = fuzz_server_stats,
    .conns_each = fuzz_conns_each,
    .shutdown = fuzz_shutdown,
    .sum_stats = fuzz_sum_stats,
    .reset_stats = fuzz_reset_stats,
};

static void fuzz_fail(const char *what, size_t a, size_t b)
{
    fprintf(stderr, "fuzz_proto: contract violation: %s (%zu, %zu)\n", what, a, b);
    abort();
}

static void storage_up(void)
{
    struct storage_config sc = {
        .mem_limit = settings.mem_limit,
        .item_size_max = settings.item_size_max,
        .growth_factor = settings.growth_factor,
        .chunk_min = (uint32_t)settings.chunk_min,
        .evictions = !settings.disable_evictions,
        .use_cas = !settings.disable_cas,
        .shards = 4,
        .automove = true,
    };
    char err[256];
    if (storage_setup(&sc, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_proto: storage_setup: %s\n", err);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cfg_init(&settings);
    settings.mem_limit_mb = FUZZ_MEM_LIMIT >> 20;
    settings.mem_limit = FUZZ_MEM_LIMIT;
    settings.item_size_max = FUZZ_ITEM_MAX;
    settings.enable_shutdown = true; /* reach the shutdown path too; the hook is harmless */
    clock_setup();
    struct proto_config pcfg = {.item_size_max = FUZZ_ITEM_MAX, .mem_limit = FUZZ_MEM_LIMIT,
                                .flush_enabled = true, .shutdown_enabled = true,
                                .verbose = &settings.verbose, .settings = &settings};
    proto_setup(&pcfg, &fuzz_hooks);
    return 0;
}

static uint32_t rng_next(uint32_t *s)
{
    /* xorshift32; never zero */
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Sends what the reply holds, as writev would: all at once or in small partial writes. */
static void drain(struct reply *r, int partial, uint32_t *rng)
{
    unsigned guard = 0;
    while (!reply_empty(r)) {
        struct iovec *iov = NULL;
        size_t n = reply_iov(r, &iov, 64);
        if (n == 0 || iov == NULL)
            fuzz_fail("reply_iov returned nothing while pending > 0", r->pending, n);
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
            /* Touch every byte so ASan checks the iovecs point at live memory. */
            const volatile char *p = iov[i].iov_base;
            if (iov[i].iov_len > 0) {
                (void)p[0];
                (void)p[iov[i].iov_len - 1];
            }
            total += iov[i].iov_len;
        }
        if (total == 0 || total > r->pending)
            fuzz_fail("iovec bytes disagree with pending", total, r->pending);
        size_t wrote = total;
        if (partial)
            wrote = 1 + rng_next(rng) % (total < 700 ? total : 700);
        reply_consumed(r, wrote);
        if (++guard > 10000000)
            fuzz_fail("reply never drains", r->pending, 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const uint8_t ctl = data[0];
    uint32_t rng = 0x9e3779b9u ^ ((uint32_t)data[1] * 0x01000193u);
    static const unsigned reqs_choice[4] = {1, 2, 20, 1000};
    const unsigned max_reqs = reqs_choice[ctl & 3];
    const int partial = (ctl >> 2) & 1;
    const size_t max_output = (ctl & 8) ? 65536 : (size_t)settings.max_output;
    const int tick = (ctl >> 4) & 1;
    const int background = (ctl >> 5) & 1;
    data += 2;
    size -= 2;

#if FUZZ_RESET
    rel_time_t now = FUZZ_CLOCK_START;
    clock_set(now);
    storage_up();
#else
    static rel_time_t now = FUZZ_CLOCK_START;
    static int up;
    if (!up) {
        clock_set(now);
        storage_up();
        up = 1;
    }
    now += 2; /* past anything the last input did in "the same second" */
    clock_set(now);
    storage_flush(now - 1);
    memset(&fuzz_stats, 0, sizeof(fuzz_stats));
#endif

    struct proto_conn pc;
    memset(&pc, 0, sizeof(pc));
    pc.stats = &fuzz_stats;
    pc.is_unix = (ctl >> 6) & 1;
    struct reply r;
    reply_init(&r);

    char *buf = malloc(size + 1);
    if (buf == NULL)
        abort();
    size_t len = 0, off = 0;
    int closed = 0;

    while (off < size && !closed) {
        /* Next chunk: mostly small, sometimes the whole rest. */
        size_t left = size - off;
        uint32_t x = rng_next(&rng);
        size_t chunk = (x & 7) == 0 ? left : 1 + (x >> 3) % 97;
        if (chunk > left)
            chunk = left;
        memcpy(buf + len, data + off, chunk);
        len += chunk;
        off += chunk;

        if (tick && (rng_next(&rng) & 3) == 0) {
            now += rng_next(&rng) % 3;
            clock_set(now);
        }
        if (background && (rng_next(&rng) & 3) == 0) {
            storage_sweep_step(16);
            storage_automove_step();
            storage_maintenance_step();
        }

        unsigned stalls = 0;
        for (;;) {
            size_t consumed = 0;
            enum proto_action act =
                proto_process(&pc, &r, buf, len, &consumed, max_reqs, max_output);
            if (consumed > len)
                fuzz_fail("consumed more than the buffer holds", consumed, len);
            memmove(buf, buf + consumed, len - consumed);
            len -= consumed;
            int had_output = !reply_empty(&r);
            drain(&r, partial, &rng);
            if (act == PROTO_CLOSE) {
                closed = 1;
                break;
            }
            if (act == PROTO_YIELD) {
                if (consumed == 0 && !had_output && ++stalls > 1000)
                    fuzz_fail("PROTO_YIELD without progress", len, consumed);
                continue;
            }
            /* PROTO_CONTINUE: the server keeps what is left in its fixed buffer and reads
             * more; that must fit (no buffer grows with a request). */
            if (len > PROTO_UNCONSUMED_MAX)
                fuzz_fail("more left unconsumed than a read buffer holds", len, consumed);
            break;
        }
    }

    /* End of input: the peer hung up. The server drops the connection and its state. */
    proto_conn_release(&pc);
    reply_deinit(&r);
    free(buf);
#if FUZZ_RESET
    storage_teardown();
#endif
    return 0;
}
