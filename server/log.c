/*
 * log: timestamped, levelled lines on stderr. Formatting happens into a local buffer so each
 * line reaches stderr in one write and lines of different threads never interleave.
 */
#include "server/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

_Atomic int log_threshold = LOG_WARN;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_verbosity(unsigned verbose)
{
    int t = LOG_WARN + (int)(verbose > 2 ? 2 : verbose);
    atomic_store_explicit(&log_threshold, t, memory_order_relaxed);
}

void log_write(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char line[1024];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03dZ %s: ", (int)(tv.tv_usec / 1000),
                          level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += (size_t)m;
    if (n > sizeof line - 2)
        n = sizeof line - 2; /* truncated: keep the newline */
    line[n++] = '\n';
    /* One write(2) per line; a short write on stderr is not worth a retry loop. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
