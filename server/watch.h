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

/* Registers c (on its worker thread) for the WATCH_* classes in mask; NULL when WATCH_MAX
 * watchers exist or memory is short (the caller closes the connection). */
struct watcher *watch_add(struct conn *c, unsigned mask);
/* Unregisters (owner thread, before the connection's fd is closed). */
void watch_remove(struct watcher *w);
/* Moves buffered lines into r if r holds less than WATCH_BUF_SIZE unsent bytes; true if it
 * added any. */
bool watch_pull(struct watcher *w, struct reply *r);
/* proto_hooks.watch_emit. */
void watch_emit(unsigned cls, const char *body, size_t len);
/* `stats`: log_watchers, log_watcher_sent, log_watcher_skipped. */
void watch_stats(struct proto_server_stats *o);
