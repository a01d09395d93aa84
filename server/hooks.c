/*
 * hooks: the proto_hooks the server gives the protocol: the server's numbers for `stats`, the
 * connection list for `stats conns`, shutdown and the per-worker counter sums. Numbers only:
 * the protocol writes every STAT line.
 */
#include "server/hooks.h"

#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "config/config.h"
#include "protocol/stats.h"
#include "server/conn.h"
#include "server/listen.h"
#include "server/server.h"
#include "server/tls.h"
#include "server/watch.h"
#include "server/worker.h"

#define REQ_TRACE_MAX 2048 /* longest command line echoed by -vv (memcached's line limit) */
#include "storage/clock.h"

/* The server's numbers for `stats` (protocol/stats.c writes the lines). */
static void server_stats(struct proto_server_stats *o)
{
    o->max_connections = settings.conn_limit;
    watch_stats(o);
    /* memcached counts its listening sockets as connections: curr_connections is its count
     * minus one (the conn asking, it says), total_connections starts at the listeners (until a
     * `stats reset`), and connection_structures, one per fd ever used, is the listeners plus
     * the most clients open at once (accept hands out the lowest free fd). */
    uint64_t nlisten = 0;
    for (size_t i = 0; i < nlisteners; i++)
        nlisten += listeners[i].fd >= 0;
    o->curr_connections = server_counter(&server_counters.curr_connections) + nlisten -
                          (nlisten > 0);
    o->total_connections = server_counter(&server_counters.total_connections) +
                           (atomic_load(&server_counters.stats_reset) ? 0 : nlisten);
    o->rejected_connections = server_counter(&server_counters.rejected_connections);
    o->connection_structures = server_counter(&server_counters.conn_high_water) + nlisten;
    /* memcached's reserved_fds: descriptors it holds besides client connections (stdio,
     * listeners, one notify fd per worker, the shutdown bell). */
    o->reserved_fds = 3 + listen_nfds() + nworkers + 1;
    o->idle_kicks = worker_idle_kicks();
    o->accepting_conns = atomic_load(&server_counters.accepting) ? 1 : 0;
    o->listen_disabled_num = server_counter(&server_counters.listen_disabled_num);
    o->time_in_listen_disabled_us = server_counter(&server_counters.time_in_listen_disabled_us);
    o->threads = nworkers;
    o->conn_yields = worker_conn_yields();
    o->lru_maintainer_juggles = server_counter(&server_counters.maintenance_ticks);
    if (tls_enabled()) {
        struct tls_stats ts;
        tls_stats(&ts);
        o->tls_enabled = true;
        o->ssl_new_sessions = ts.new_sessions;
        o->ssl_handshake_errors = ts.handshake_errors;
        o->time_since_server_cert_refresh = ts.secs_since_refresh;
        o->ssl_full_handshakes = ts.full_handshakes;
        o->ssl_resumed_handshakes = ts.resumed_handshakes;
        o->ssl_handshake_timeouts = ts.handshake_timeouts;
    }
}

static void conns_each(void (*fn)(void *arg, const struct proto_conn_info *c), void *arg)
{
    rel_time_t now = clock_now();
    for (size_t i = 0; i < nlisteners; i++) {
        if (listeners[i].fd < 0)
            continue;
        /* memcached: a listener's last command is its creation, at start */
        struct proto_conn_info ci = {listeners[i].fd, listeners[i].name, NULL, "conn_listening",
                                     now > CLOCK_START_MARGIN ? now - CLOCK_START_MARGIN : 0u};
        fn(arg, &ci);
    }
    /* Workers, then the TLS handshake threads (connections mid-handshake: conn_new_cmd). */
    for (unsigned i = 0; i < nworkers + nhandshakers; i++) {
        struct worker *w = i < nworkers ? &workers[i] : &handshakers[i - nworkers];
        pthread_mutex_lock(&w->conns_lock);
        for (struct conn *c = w->conns; c != NULL; c = c->next) {
            rel_time_t last = atomic_load_explicit(&c->last_active, memory_order_relaxed);
            struct proto_conn_info ci = {
                c->fd, c->addr, listeners[c->listener].name,
                conn_state_name(atomic_load_explicit(&c->state, memory_order_relaxed)),
                now > last ? (uint32_t)(now - last) : 0u};
            fn(arg, &ci);
        }
        pthread_mutex_unlock(&w->conns_lock);
    }
}

static void reset_stats(void)
{
    worker_reset_stats();
    /* memcached's `stats reset` also zeroes these totals (not the gauges). */
    atomic_store(&server_counters.total_connections, 0);
    atomic_store(&server_counters.stats_reset, true);
    atomic_store(&server_counters.rejected_connections, 0);
    atomic_store(&server_counters.listen_disabled_num, 0);
    atomic_store(&server_counters.time_in_listen_disabled_us, 0);
}

/* -vv: memcached's "<FD command" line, untimestamped as memcached prints it, in one write. */
static void trace_command(int id, const char *line, size_t len)
{
    char buf[REQ_TRACE_MAX + 32];
    int n = snprintf(buf, sizeof buf - 1, "<%d %.*s", id,
                     (int)(len > REQ_TRACE_MAX ? REQ_TRACE_MAX : len), line);
    if (n < 0)
        return;
    size_t m = (size_t)n < sizeof buf - 1 ? (size_t)n : sizeof buf - 2;
    buf[m++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, m);
    (void)w;
}

const struct proto_hooks server_hooks = {
    .server_stats = server_stats,
    .conns_each = conns_each,
    .shutdown = server_request_shutdown,
    .sum_stats = worker_sum_stats,
    .reset_stats = reset_stats,
    .refresh_certs = tls_refresh,
    .trace_command = trace_command,
    .watch_emit = watch_emit,
    .watch_attach = watch_attach,
};
