/*
 * clock: the coarse "now" (whole seconds since process start) shared by every thread.
 * Ticked from CLOCK_MONOTONIC so a wall-clock step neither expires nor revives items; only
 * the conversion of absolute client exptimes uses the wall clock captured at setup.
 */
#include "storage/clock.h"

_Atomic rel_time_t clock_current;
time_t clock_process_started;

static struct timespec clock_mono_start;
static rel_time_t clock_base;
/* memcached-debug's `debugtime` (only with --debug-hooks): seconds added, and a pause. */
static _Atomic int64_t clock_debug_delta;
static atomic_bool clock_debug_paused;


/*
 * The clock never runs ahead of the wall clock (an item stored with exptime = now + 1, an
 * absolute unix time, must be there when read at once): rel_time 0 is the wall clock's
 * second at setup, truncated, and the elapsed time is the monotonic clock's, truncated to
 * whole seconds from the exact start (not a difference of truncated seconds, which runs up to
 * a second early). So clock_unix(clock_now()) <= the wall clock at all times; like
 * memcached's, it lags by up to a second plus the tick interval.
 */
void clock_setup(void)
{
    clock_process_started = time(NULL) - CLOCK_START_MARGIN; /* wall first, then monotonic */
    clock_gettime(CLOCK_MONOTONIC, &clock_mono_start);
    clock_base = CLOCK_START_MARGIN;
    atomic_store(&clock_current, clock_base);
}

void clock_debug_move(int64_t seconds)
{
    atomic_fetch_add(&clock_debug_delta, seconds);
    int64_t now = (int64_t)clock_now() + seconds;
    atomic_store(&clock_current, now < 1 ? 1 : now > UINT32_MAX ? UINT32_MAX : (rel_time_t)now);
}

void clock_debug_pause(bool pause)
{
    atomic_store(&clock_debug_paused, pause);
}

void clock_tick(void)
{
    if (atomic_load(&clock_debug_paused))
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ns = ((int64_t)now.tv_sec - (int64_t)clock_mono_start.tv_sec) * 1000000000 +
                 ((int64_t)now.tv_nsec - (int64_t)clock_mono_start.tv_nsec);
    int64_t elapsed = ns / 1000000000;
    if (elapsed < 0)
        elapsed = 0;
    elapsed += atomic_load(&clock_debug_delta);
    if (elapsed < 0)
        elapsed = 0;
    atomic_store(&clock_current, clock_base + (rel_time_t)elapsed);
}

void clock_set(rel_time_t now)
{
    atomic_store(&clock_current, now);
}

rel_time_t clock_exptime(int64_t exptime)
{
    if (exptime == 0)
        return 0;
    /* memcached turns a negative exptime into an absolute time in 1970: expired at once. */
    if (exptime < 0)
        return 1;
    if (exptime > REALTIME_MAXDELTA) {
        if (exptime <= (int64_t)clock_process_started)
            return 1;
        int64_t rel = exptime - (int64_t)clock_process_started;
        return rel > (int64_t)UINT32_MAX ? UINT32_MAX : (rel_time_t)rel;
    }
    uint64_t rel = (uint64_t)exptime + clock_now();
    return rel > UINT32_MAX ? UINT32_MAX : (rel_time_t)rel;
}
