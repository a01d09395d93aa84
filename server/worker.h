/*
 * worker: the -t worker threads. Each owns an event_base and every connection handed to it
 * for that connection's whole life, so the request path takes no global lock.
 *
 * The listener thread hands over an accepted fd through the worker's queue (a mutex-guarded
 * list) and wakes it with an eventfd. Each worker has its own struct proto_stats; `stats`
 * sums them through proto_hooks.sum_stats.
 *
 * Locks of a worker (none is ever held while taking another worker's lock of the same kind):
 *   qlock       the hand-over queue; listener and owner, per connection
 *   stats_lock  stats and the extra counters; taken by the owner around each proto_process
 *               batch (uncontended unless `stats` runs), and
 *               by any thread summing or resetting. A worker already holding its own lock
 *               (the `stats` command runs inside proto_process) reads its own copy unlocked.
 *   conns_lock  the list of live connections; taken by the owner on connect/close only and
 *               by `stats conns` from any worker.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/stats.h"

struct event_base;
struct event;
struct conn;
struct proto_stats;
struct handoff;
struct sockaddr_storage;

struct worker {
    unsigned id;
    pthread_t tid;
    struct event_base *base;
    int efd;                  /* eventfd: new connections queued, or stop */
    struct event *notify_ev;
    struct event *tick_ev;    /* once a second: idle-timeout check */
    struct event *grace_ev;   /* shutdown deadline */

    pthread_mutex_t qlock;
    struct handoff *qhead, *qtail;
    _Atomic bool stop;
    bool stopping;            /* owner's view of stop, acted on */

    pthread_mutex_t stats_lock;
    bool in_stats_lock;       /* owner holds stats_lock (see above) */
    struct proto_stats stats;
    uint64_t idle_kicks;      /* closed by idle_timeout */
    uint64_t conn_yields;     /* gave up the thread after -R commands */
    /* Bumped on every read and write: relaxed atomics (one instruction, no lock) rather than
     * stats_lock; summed into stats' bytes_read/bytes_written. */
    _Atomic uint64_t bytes_read, bytes_written;

    pthread_mutex_t conns_lock;
    struct conn *conns;       /* live connections, doubly linked */
    size_t nconns;
    struct conn *free_conns;  /* closed structs kept for reuse (owner only) */
    size_t nfree;
};

extern struct worker *workers;
extern unsigned nworkers;

/* Creates n workers' bases and events (threads not started). Returns 0 or -1. */
int worker_setup(unsigned n);
/* Starts the threads (with every signal blocked in them). */
int worker_start(void);
/* Listener thread: hands an accepted, non-blocking fd and its peer's address (as accept
 * returned it) to the next worker (round-robin). */
void worker_dispatch(int fd, unsigned listener, const struct sockaddr_storage *peer);
/* Asks every worker to finish its connections' in-flight replies and exit its loop within
 * grace_ms; worker_join waits for them. */
void worker_stop(unsigned grace_ms);
void worker_join(void);
void worker_teardown(void);

/* The worker running on this thread, or NULL (listener thread). */
extern _Thread_local struct worker *worker_self;

/* proto_hooks implementations. */
void worker_sum_stats(struct proto_stats *out);
void worker_reset_stats(void);
/* Sums of the server's own per-worker counters (kept beside proto_stats, same lock). */
uint64_t worker_idle_kicks(void);
uint64_t worker_conn_yields(void);

static inline void worker_stats_lock(struct worker *w)
{
    pthread_mutex_lock(&w->stats_lock);
    w->in_stats_lock = true;
}
static inline void worker_stats_unlock(struct worker *w)
{
    w->in_stats_lock = false;
    pthread_mutex_unlock(&w->stats_lock);
}
