/*
 * Private to server/: no file outside server/ includes it.
 * log: one line per event on stderr, "2024-05-01T12:00:00.123Z level: message". Safe from any
 * thread (one fprintf per line, stdio locks it). The level is set from settings.verbose at
 * startup and on SIGHUP: 0 shows errors and warnings, 1 (-v) adds info, 2 (-vv) adds debug.
 */
#pragma once

#include <stdatomic.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern _Atomic int log_threshold; /* highest level printed */

/* Maps settings.verbose (0, 1, 2, 3) to a threshold. */
void log_set_verbosity(unsigned verbose);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline int log_enabled(enum log_level level)
{
    return (int)level <= atomic_load_explicit(&log_threshold, memory_order_relaxed);
}

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_info(...)                                                                            \
    do {                                                                                         \
        if (log_enabled(LOG_INFO))                                                               \
            log_write(LOG_INFO, __VA_ARGS__);                                                    \
    } while (0)
#define log_debug(...)                                                                           \
    do {                                                                                         \
        if (log_enabled(LOG_DEBUG))                                                              \
            log_write(LOG_DEBUG, __VA_ARGS__);                                                   \
    } while (0)
