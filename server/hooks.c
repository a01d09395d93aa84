/*
 * hooks: the proto_hooks the server gives the protocol. Field names follow memcached 1.6.18's
 * `stats`; the protocol composes the rest and calls these at the right places.
 */
#include "server/hooks.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "config/config.h"
#include "protocol/reply.h"
#include "protocol/stats.h"
#include "server/conn.h"
#include "server/listen.h"
#include "server/server.h"
#include "server/tls.h"
#include "server/worker.h"

#define REQ_TRACE_MAX 2048 /* longest command line echoed by -vv (memcached's line limit) */
#include "storage/clock.h"

/* The connection block of `stats`, after rusage_system (protocol/proto.h has the split). */
static void server_stats(struct reply *r)
{
    uint64_t kicks = worker_idle_kicks();
    reply_printf(r, "STAT max_connections %" PRIu64 "\r\n", (uint64_t)settings.conn_limit);
    reply_printf(r, "STAT curr_connections %" PRIu64 "\r\n",
                 server_counter(&server_counters.curr_connections));
    reply_printf(r, "STAT total_connections %" PRIu64 "\r\n",
                 server_counter(&server_counters.total_connections));
    reply_printf(r, "STAT rejected_connections %" PRIu64 "\r\n",
                 server_counter(&server_counters.rejected_connections));
    reply_printf(r, "STAT connection_structures %" PRIu64 "\r\n",
                 server_counter(&server_counters.connection_structures));
    /* memcached prints idle_kicks further down (before bytes_read), where no hook reaches;
     * clients look stats up by name. */
    reply_printf(r, "STAT idle_kicks %" PRIu64 "\r\n", kicks);
}

/* The second block, after limit_maxbytes. */
static void server_stats_tail(struct reply *r)
{
    uint64_t yields = worker_conn_yields();
    reply_printf(r, "STAT accepting_conns %d\r\n",
                 atomic_load(&server_counters.accepting) ? 1 : 0);
    reply_printf(r, "STAT listen_disabled_num %" PRIu64 "\r\n",
                 server_counter(&server_counters.listen_disabled_num));
    reply_printf(r, "STAT time_in_listen_disabled_us %" PRIu64 "\r\n",
                 server_counter(&server_counters.time_in_listen_disabled_us));
    reply_printf(r, "STAT threads %u\r\n", nworkers);
    reply_printf(r, "STAT conn_yields %" PRIu64 "\r\n", yields);
    if (tls_enabled()) {
        /* memcached's (it prints them further down), then cached's handshake counters. */
        struct tls_stats ts;
        tls_stats(&ts);
        if (settings.ssl_session_cache)
            reply_printf(r, "STAT ssl_new_sessions %" PRIu64 "\r\n", ts.new_sessions);
        reply_printf(r, "STAT ssl_handshake_errors %" PRIu64 "\r\n", ts.handshake_errors);
        reply_printf(r, "STAT time_since_server_cert_refresh %" PRIu64 "\r\n",
                     ts.secs_since_refresh);
        reply_printf(r, "STAT ssl_full_handshakes %" PRIu64 "\r\n", ts.full_handshakes);
        reply_printf(r, "STAT ssl_resumed_handshakes %" PRIu64 "\r\n", ts.resumed_handshakes);
        reply_printf(r, "STAT ssl_handshake_timeouts %" PRIu64 "\r\n", ts.handshake_timeouts);
    }
}

static void conns_stats(struct reply *r)
{
    rel_time_t now = clock_now();
    for (size_t i = 0; i < nlisteners; i++) {
        if (listeners[i].fd < 0)
            continue;
        reply_printf(r, "STAT %d:addr %s\r\n", listeners[i].fd, listeners[i].name);
        reply_printf(r, "STAT %d:state conn_listening\r\n", listeners[i].fd);
    }
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        pthread_mutex_lock(&w->conns_lock);
        for (struct conn *c = w->conns; c != NULL; c = c->next) {
            rel_time_t last = atomic_load_explicit(&c->last_active, memory_order_relaxed);
            reply_printf(r, "STAT %d:addr %s\r\n", c->fd, c->addr);
            if (!listeners[c->listener].is_unix)
                reply_printf(r, "STAT %d:listen_addr %s\r\n", c->fd,
                             listeners[c->listener].name);
            reply_printf(r, "STAT %d:state %s\r\n", c->fd,
                         conn_state_name(atomic_load_explicit(&c->state, memory_order_relaxed)));
            reply_printf(r, "STAT %d:secs_since_last_cmd %u\r\n", c->fd,
                         now > last ? (unsigned)(now - last) : 0u);
        }
        pthread_mutex_unlock(&w->conns_lock);
    }
}

static void reset_stats(void)
{
    worker_reset_stats();
    /* memcached's `stats reset` also zeroes these totals (not the gauges). */
    atomic_store(&server_counters.total_connections, 0);
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
    .conns_stats = conns_stats,
    .shutdown = server_request_shutdown,
    .sum_stats = worker_sum_stats,
    .reset_stats = reset_stats,
    .server_stats_tail = server_stats_tail,
    .refresh_certs = tls_refresh,
    .trace_command = trace_command,
};
