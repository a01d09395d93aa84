/*
 * proto_fixture: a simulated connection (read buffer as the server keeps it, plus its reply
 * queue) over real storage, no sockets; shared by check_protocol and check_meta.
 *
 * A header of static functions because the Makefile links each check_X.c alone with the
 * library objects: a shared .c would not be linked. `static inline` keeps -Wunused-function
 * quiet in a suite that does not call every helper. The clock is pinned at 1000.
 */
#pragma once

#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "protocol/proto.h"
#include "protocol/reply.h"
#include "protocol/stats.h"
#include "storage/storage.h"

struct sim {
    struct proto_conn pc;
    struct proto_stats st;
    struct reply r;
    char *buf;
    size_t start, len, cap;
    enum proto_action last;
    char *out; /* everything "written" so far */
    size_t outlen;
};

static struct sim S;
static struct storage_config scfg;

static inline void sim_init(struct sim *s)
{
    memset(s, 0, sizeof(*s));
    s->pc.stats = &s->st;
    reply_init(&s->r);
}

static inline void sim_free(struct sim *s)
{
    proto_conn_release(&s->pc);
    reply_deinit(&s->r);
    free(s->buf);
    free(s->out);
}

/* "Writes" every queued reply byte, as the server's writev loop would. */
static inline void sim_flush(struct sim *s)
{
    struct iovec *iov;
    size_t n;
    while ((n = reply_iov(&s->r, &iov, 1024)) > 0) {
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
            s->out = realloc(s->out, s->outlen + iov[i].iov_len + 1);
            memcpy(s->out + s->outlen, iov[i].iov_base, iov[i].iov_len);
            s->outlen += iov[i].iov_len;
            total += iov[i].iov_len;
        }
        reply_consumed(&s->r, total);
    }
    if (s->out)
        s->out[s->outlen] = '\0';
}

/* Appends input and runs the protocol until it wants more bytes or closes. */
static inline void sim_feed_opts(struct sim *s, const char *data, size_t len, unsigned max_reqs,
                                 bool flush)
{
    if (s->len + len > s->cap) {
        s->cap = (s->len + len) * 2 + 64;
        s->buf = realloc(s->buf, s->cap);
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    for (int guard = 0; guard < 100000; guard++) {
        size_t consumed = 0;
        s->last = proto_process(&s->pc, &s->r, s->buf + s->start, s->len - s->start, &consumed,
                                max_reqs, (size_t)1 << 30);
        ck_assert_uint_le(consumed, s->len - s->start);
        s->start += consumed;
        /* what a server's fixed read buffer relies on */
        if (s->last == PROTO_CONTINUE)
            ck_assert_uint_le(s->len - s->start, PROTO_UNCONSUMED_MAX);
        if (flush && !proto_holding_reply(&s->pc)) /* as the server: a long get's reply waits */
            sim_flush(s);
        if (s->last != PROTO_YIELD)
            break;
    }
}

static inline void sim_feed(struct sim *s, const char *data, size_t len)
{
    sim_feed_opts(s, data, len, 1000000, true);
}

/* Per-test: settings, 64 MiB of storage, the protocol, and a fresh connection in S. */
static inline void setup(void)
{
    cfg_init(&settings);
    settings.mem_limit = 64u << 20;
    memset(&scfg, 0, sizeof(scfg));
    scfg.mem_limit = 64u << 20;
    scfg.item_size_max = 1u << 20;
    scfg.growth_factor = 1.25;
    scfg.chunk_min = 48;
    scfg.evictions = true;
    scfg.use_cas = true;
    scfg.shards = 16;
    char err[256];
    clock_setup();
    clock_set(1000);
    ck_assert_int_eq(storage_setup(&scfg, err, sizeof(err)), 0);
    struct proto_config pcfg = {.item_size_max = scfg.item_size_max,
                                .mem_limit = settings.mem_limit, .flush_enabled = true,
                                .verbose = &settings.verbose, .settings = &settings};
    proto_setup(&pcfg, NULL);
    sim_init(&S);
}

static inline void teardown(void)
{
    sim_free(&S);
    memset(&S, 0, sizeof(S));
    proto_teardown();
    storage_teardown();
    cfg_free(&settings);
}
