/*
 * Private to server/: no file outside server/ includes it.
 * metrics: Prometheus /metrics over HTTP (libevent's evhttp), off unless --metrics-port is
 * set. It runs on its own thread and event base, so a scrape never delays a request: it
 * composes the same `stats`, `stats settings`, `stats items` and `stats slabs` text the
 * protocol answers, and maps stat names to memcached_exporter's metric names with a table
 * (as the exporter does), plus cached's own cached_* metrics.
 */
#pragma once

#include <stddef.h>

struct evbuffer;

/* Binds settings.metrics_listen:metrics_port and starts the thread (no-op when the port is
 * 0). Returns 0, or -1 after logging why. */
int metrics_start(void);
/* Stops and joins the thread, frees everything (no-op when not started). */
void metrics_stop(void);

/* The whole exposition text of one scrape, appended to out (exported for tests). */
void metrics_compose(struct evbuffer *out);
