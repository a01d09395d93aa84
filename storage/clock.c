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


void clock_setup(void)
{
    clock_process_started = time(NULL) - CLOCK_START_MARGIN;
    clock_gettime(CLOCK_MONOTONIC, &clock_mono_start);
    clock_base = CLOCK_START_MARGIN;
    atomic_store(&clock_current, clock_base);
}

void clock_tick(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t elapsed = (int64_t)now.tv_sec - (int64_t)clock_mono_start.tv_sec;
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
