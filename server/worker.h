/*
 * Private to server/: no file outside server/ includes it.
 * worker: the -t worker threads. Each owns an event_base and every connection handed to it
 * for that connection's whole life, so the request path takes no global lock.
 *
 * A worker accepts the connections of TCP addresses on its own listening socket (server/
 * listen.h, "per worker") and opens them in its own loop. The listener thread accepts on the
 * shared sockets (-s, systemd's) and hands each fd over through the worker's queue (a
 * mutex-guarded list), waking it with an eventfd.
 *
 * With -Z each worker has a companion handshake thread (handshakers[i], same struct and
 * loop, its own event base). It accepts on the TLS listeners' per-worker sockets itself (the
 * listener thread gives it those of shared TLS sockets); it
 * runs their non-blocking handshakes and hands each established connection (struct conn,
 * SSL and all) to a worker (round-robin) through the same queue; a worker gives the closed
 * ones' SSL back to its handshake thread to shut down and free (worker_tls_retire). A
 * handshake storm thus never delays a request of an established connection behind a
 * handshake step in the same thread, and the
 * handshake threads run under SCHED_IDLE (ssl_handshake_priority; low: nice
 * WORKER_HANDSHAKE_NICE) so that, when cores are short, the kernel runs request work first. Handshake capacity still grows with -t. Each worker has its own struct proto_stats; `stats`
 * sums them through proto_hooks.sum_stats.
 *
 * Counters (struct proto_stats, idle_kicks, conn_yields, bytes_*) are written by the owner
 * only, as relaxed atomics, and read by any thread without a lock; `stats reset` records a
 * base per worker (under stats_reset_lock in worker.c, a leaf lock taken only by readers and
 * resetters) instead of writing to counters it does not own. No lock is held across
 * proto_process. Lock order: storage/storage.h ("LOCK ORDER"); the worker's own locks, both
 * leaves:
 *   qlock       the hand-over queue; listener (or a handshaker) and owner, per connection
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
struct tls_conn;
struct sockaddr_storage;

/* Niceness of the handshake threads under ssl_handshake_priority=low, or when SCHED_IDLE is
 * refused (relative to the process; workers stay at 0). */
#define WORKER_HANDSHAKE_NICE 5

struct worker {
    unsigned id;
    bool handshaker;          /* a TLS handshake thread (handshakers[id]), not a worker */
    pthread_t tid;
    struct event_base *base;
    int efd;                  /* eventfd: new connections queued, or stop */
    struct event *notify_ev;
    struct event *tick_ev;    /* once a second: idle-timeout check */
    struct event *grace_ev;   /* shutdown deadline */
    struct acceptor *acceptor; /* accept events on its own listening sockets (listen.c) */

    pthread_mutex_t qlock;
    struct handoff *qhead, *qtail;
    _Atomic bool stop;
    bool stopping;            /* owner's view of stop, acted on */

    struct proto_stats stats; /* owner writes (STAT_INC), anyone reads (snapshot) */
    uint64_t idle_kicks;      /* closed by idle_timeout (owner: stat_add) */
    uint64_t conn_yields;     /* gave up the thread after -R commands (owner: stat_add) */
    /* Bumped on every read and write: relaxed atomics; summed into bytes_read/bytes_written. */
    _Atomic uint64_t bytes_read, bytes_written;
    /* What the counters were at the last `stats reset` (stats_reset_lock, worker.c). */
    struct proto_stats stats_base;
    uint64_t idle_kicks_base, conn_yields_base, bytes_read_base, bytes_written_base;

    pthread_mutex_t conns_lock;
    struct conn *conns;       /* live connections, doubly linked */
    size_t nconns;
    /* Closed structs kept for reuse (owner only): those that kept their buffers apart from
     * the bare ones, so reuse takes a buffered one first (one list sank the buffered ones
     * under the bare ones: 94% of Django-pattern connections allocated and freed ~33 KB). */
    struct conn *free_conns;  /* with their buffers (at most WORKER_FREE_BUFS) */
    struct conn *free_bare;   /* without */
    size_t nfree;             /* both lists */
    size_t nfree_bufs;        /* on free_conns */
};

extern struct worker *workers;
extern unsigned nworkers;
extern struct worker *handshakers; /* -Z only; nhandshakers == nworkers, else 0 */
extern unsigned nhandshakers;

/* Creates n workers' bases and events (threads not started). Returns 0 or -1. */
int worker_setup(unsigned n);
/* Starts the threads (with every signal blocked in them). */
int worker_start(void);
/* Listener thread: hands an accepted, non-blocking fd and its peer's address (as accept
 * returned it) to the next worker, or for a TLS listener to the next handshaker
 * (round-robin). */
void worker_dispatch(int fd, unsigned listener, const struct sockaddr_storage *peer);
/* Worker or handshake thread: w accepted fd itself (handshake threads accept on the TLS
 * listeners' per-worker sockets, workers on the others); opens it here, or, should a worker
 * accept on a TLS listener, hands it to w's handshaker. */
void worker_take(struct worker *w, int fd, unsigned listener, const struct sockaddr_storage *peer);
/* Handshaker thread: c's handshake is done; moves c (event disarmed) to the next worker,
 * round-robin over all workers, which adopts it (conn_adopt). */
void worker_handoff(struct conn *c);
/* Worker thread, closing an established TLS connection: gives its TLS state and fd to the
 * worker's handshake thread, which sends close_notify, frees the SSL and closes the fd
 * (SSL_shutdown + SSL_free are ~27,000 instructions, most of what a reconnect-per-request
 * client costs a worker; the handshake thread runs them at its lower priority). false (the
 * caller does it) on a handshake thread, without -Z, or once shutdown began. */
bool worker_tls_retire(struct worker *w, struct tls_conn *t, int fd);
/* Asks every worker to finish its connections' in-flight replies and exit its loop within
 * grace_ms; worker_join waits for them. */
void worker_stop(unsigned grace_ms);
void worker_join(void);
void worker_teardown(void);

/* The worker running on this thread, or NULL (listener thread). */
extern _Thread_local struct worker *worker_self;

/* The worker's connection list and its pool of closed structs: only worker.c edits them
 * (owner thread; the list under conns_lock for `stats conns`). */
void worker_conn_add(struct worker *w, struct conn *c);
/* Unlinks a connection that leaves this thread (worker_handoff) or closes; ends the loop of
 * a stopping worker whose last connection this was. */
void worker_conn_detach(struct worker *w, struct conn *c);
/* Detaches a closed connection and keeps the struct for reuse or frees it. */
void worker_conn_remove(struct worker *w, struct conn *c);
/* A closed struct to reuse, or NULL. */
struct conn *worker_conn_reuse(struct worker *w);

/* Counters the owner bumps (single writer; see above). */
static inline void worker_count_yield(struct worker *w)
{
    stat_add(&w->conn_yields, 1);
}
static inline void worker_count_idle_kick(struct worker *w)
{
    stat_add(&w->idle_kicks, 1);
}
static inline void worker_count_read(struct worker *w, size_t n)
{
    atomic_fetch_add_explicit(&w->bytes_read, n, memory_order_relaxed);
}
static inline void worker_count_written(struct worker *w, size_t n)
{
    atomic_fetch_add_explicit(&w->bytes_written, n, memory_order_relaxed);
}

/* proto_hooks implementations. */
void worker_sum_stats(struct proto_stats *out);
void worker_reset_stats(void);
/* Sums of the server's own per-worker counters (kept beside proto_stats, same rules). */
uint64_t worker_idle_kicks(void);
uint64_t worker_conn_yields(void);
