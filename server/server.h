/*
 * Private to server/: no file outside server/ includes it.
 * server: process-wide state shared by the listener thread and the workers — connection
 * counters and the runtime copies of reloadable settings.
 *
 * Connection counters are relaxed atomics touched only on connect and close, never per
 * request. Reloadable settings that workers read on every event (idle_timeout, max_output)
 * are copied into atomics by main() at startup and after SIGHUP, so a reload never races a
 * worker reading struct cfg.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct server_counters {
    _Atomic uint64_t curr_connections;      /* client connections open now */
    _Atomic uint64_t total_connections;     /* accepted since start (excl. rejected) */
    _Atomic uint64_t rejected_connections;  /* closed at once because of -c */
    _Atomic uint64_t connection_structures; /* struct conn allocated (live + cached) */
    _Atomic uint64_t conn_high_water;       /* most client connections open at once
                                               (stats connection_structures) */
    _Atomic bool stats_reset;               /* `stats reset` ran: total_connections restarted */
    _Atomic uint64_t listen_disabled_num;   /* times accept stopped for lack of fds */
    _Atomic uint64_t time_in_listen_disabled_us;
    _Atomic bool accepting;                 /* listeners are armed */
    _Atomic uint64_t maintenance_ticks;     /* background steps run (stats lru_maintainer_juggles) */
};
extern struct server_counters server_counters;

struct server_runtime {
    _Atomic uint64_t idle_timeout; /* seconds, 0 = off */
    _Atomic uint64_t max_output;   /* bytes of unsent replies before a conn stops reading */
};
extern struct server_runtime server_runtime;

static inline uint64_t server_counter(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}
static inline void server_counter_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
static inline void server_counter_sub(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_sub_explicit(c, n, memory_order_relaxed);
}

/* Asks the listener thread to shut down gracefully (any thread; async-signal-safe). */
void server_request_shutdown(void);
/* The eventfd that server_request_shutdown rings; created and watched by main(). */
extern int server_shutdown_fd;
