/*
 * server: the process-wide counters and the shutdown doorbell (see server.h).
 */
#include "server/server.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

struct server_counters server_counters;
struct server_runtime server_runtime;

/* An eventfd the listener thread watches (set by main); -1 before that. */
int server_shutdown_fd = -1;

void server_request_shutdown(void)
{
    uint64_t one = 1;
    int saved = errno; /* may run in a signal handler */
    if (server_shutdown_fd < 0 || write(server_shutdown_fd, &one, sizeof one) < 0)
        raise(SIGTERM); /* no doorbell yet: the signal path does the same */
    errno = saved;
}
