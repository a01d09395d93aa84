/*
 * watch: the server side of memcached's `watch` command. A connection whose protocol state
 * asked to watch (proto_conn.watch) is registered here; workers hand event lines to every
 * watcher of the line's class (proto_hooks.watch_emit). Each watcher has a fixed buffer: when
 * it is full, lines are dropped and counted, and a "skipped=N" line tells the watcher later,
 * as memcached's logger does. The watcher's own worker is woken through an eventfd and moves
 * the buffer into the connection's reply, at most WATCH_BUF_SIZE bytes at a time unsent, so a
 * slow watcher costs bounded memory and never slows a worker beyond one memcpy.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "protocol/proto.h"

#define WATCH_MAX 20            /* memcached's WATCHER_LIMIT */
/* per watcher; lines beyond are skipped (-o watcher_logbuf_size, kilobytes, as memcached's) */
#define WATCH_BUF_SIZE ((size_t)settings.watcher_logbuf_size * 1024)

struct conn;
struct reply;
struct watcher;

/* The union of the watchers' classes: a relaxed load tells whether to compose a line. */
extern _Atomic unsigned watch_classes;
static inline bool watch_wants(unsigned cls)
{
    return atomic_load_explicit(&watch_classes, memory_order_relaxed) & cls;
}

/* proto_hooks.watch_attach: registers pc's connection (on its worker thread) for the WATCH_*
 * classes in mask and sets its conn.watcher. 0, or 1 when WATCH_MAX watchers exist
 * (memcached's WATCHER_TOO_MANY), -1 when memory is short. */
int watch_attach(struct proto_conn *pc, unsigned mask);
/* Unregisters (owner thread, before the connection's fd is closed). */
void watch_remove(struct watcher *w);
/* Moves buffered lines into r if r holds less than WATCH_BUF_SIZE unsent bytes; true if it
 * added any. */
bool watch_pull(struct watcher *w, struct reply *r);
/* proto_hooks.watch_emit. */
void watch_emit(unsigned cls, const char *body, size_t len);
/* `watch connevents`: memcached's conn_new line (closed false) or conn_close line with the
 * connection's close reason. Call only when watch_wants(WATCH_CONNEVENTS). */
void watch_conn_event(const struct conn *c, bool closed);
/* `stats`: log_watchers, log_watcher_sent, log_watcher_skipped. */
void watch_stats(struct proto_server_stats *o);
