/*
 * clock: the cache's coarse notion of "now", in whole seconds since the process started
 * (rel_time_t), read lock-free by every thread. The server ticks it once a second from a
 * monotonic clock, so wall-clock jumps do not expire everything; tests set it directly.
 * Shared by every layer (storage, protocol, server): it sits in storage/, the bottom layer any
 * layer may include, and depends on nothing but libc.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

typedef uint32_t rel_time_t;

/* Longest exptime taken as relative seconds (30 days); larger values are unix times. */
#define REALTIME_MAXDELTA (60 * 60 * 24 * 30)

/* memcached starts its clock this far in the past (ITEM_UPDATE_INTERVAL + 2), so that
 * rel_time 1 ("already expired") is always in the past and never 0 ("never"). */
#define CLOCK_START_MARGIN 62

extern _Atomic rel_time_t clock_current;  /* seconds since process_started */
extern time_t clock_process_started;      /* unix time of rel_time 0 */

/* Anchors rel_time 0 at the current wall-clock time (minus a small margin, as memcached). */
void clock_setup(void);
/* Advances clock_current from the monotonic clock; called by the server each second. */
void clock_tick(void);
/* memcached-debug's `debugtime N|p|r` (served only with --debug-hooks): move the clock N
 * seconds (kept across ticks), pause it, resume it. */
void clock_debug_move(int64_t seconds);
void clock_debug_pause(bool pause);
/* Tests: set the current relative time directly. */
void clock_set(rel_time_t now);

static inline rel_time_t clock_now(void)
{
    return atomic_load_explicit(&clock_current, memory_order_relaxed);
}

/* memcached's rule for a client exptime: 0 never; negative already expired; up to 30 days
 * relative; above that an absolute unix time (in the past: already expired). Returns the
 * rel_time_t to store in an item (0 = never; any value <= clock_now() is already expired). */
rel_time_t clock_exptime(int64_t exptime);

/* stats `uptime`: whole seconds since clock_setup(), plus 2, as memcached's (its clock starts
 * at ITEM_UPDATE_INTERVAL + 2 = 62 and it shows now - ITEM_UPDATE_INTERVAL). */
static inline uint32_t clock_uptime(void)
{
    rel_time_t now = clock_now();
    return now > CLOCK_START_MARGIN - 2 ? now - (CLOCK_START_MARGIN - 2) : 0;
}

/* Converts a rel_time_t to unix time (for stats `time`, meta TTLs). */
static inline int64_t clock_unix(rel_time_t t)
{
    return (int64_t)clock_process_started + (int64_t)t;
}
