/*
 * worker: thread bodies, the hand-over queue, the idle-timeout tick and the per-worker
 * counters behind `stats`; with -Z also the TLS handshake threads (one per worker, see
 * worker.h), which run the same loop and hand each established connection to their worker.
 */
#define _GNU_SOURCE /* gettid */
#include "server/worker.h"

#include <errno.h>
#include <sched.h>
#include <event2/event.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "server/conn.h"
#include "server/listen.h"
#include "server/log.h"
#include "server/server.h"
#include "server/tls.h"
#include "storage/mem.h"

struct handoff {
    struct handoff *next;
    struct conn *conn; /* an established TLS connection from a handshaker, or NULL: fd */
    struct tls_conn *tls; /* to a handshaker: a closed connection's TLS state to dispose of */
    int fd;
    unsigned listener;
    struct sockaddr_storage peer;
};

struct worker *workers;
unsigned nworkers;
struct worker *handshakers;
unsigned nhandshakers;
_Thread_local struct worker *worker_self;
static unsigned next_worker, next_handshaker; /* listener thread only */
static unsigned grace_ms_setting;

static void wake(struct worker *w)
{
    uint64_t one = 1;
    ssize_t n;
    do
        n = write(w->efd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
    /* EAGAIN means the counter is already non-zero: the worker is awake anyway. */
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd, (void)what;
    log_warn("worker %u: %zu connection(s) still busy at the shutdown deadline; closing", w->id,
             w->nconns);
    event_base_loopexit(w->base, NULL);
}

static void begin_stop(struct worker *w)
{
    w->stopping = true;
    listen_worker_stop(w->acceptor); /* accepts no more (listen_stop shut the sockets) */
    w->acceptor = NULL;
    event_del(w->tick_ev);
    if (w->conns == NULL) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    struct timeval tv = {grace_ms_setting / 1000, (grace_ms_setting % 1000) * 1000};
    evtimer_add(w->grace_ev, &tv);
    /* conn_drain may close (and unlink) the connection, so take next first. */
    for (struct conn *c = w->conns, *next; c != NULL; c = next) {
        next = c->next;
        conn_drain(c);
    }
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    uint64_t v;
    (void)what;
    ssize_t n = read(fd, &v, sizeof v);
    (void)n;
    pthread_mutex_lock(&w->qlock);
    struct handoff *h = w->qhead;
    w->qhead = w->qtail = NULL;
    pthread_mutex_unlock(&w->qlock);
    bool stop = atomic_load(&w->stop);
    while (h != NULL) {
        struct handoff *next = h->next;
        /* Accepted just before shutdown: served like the others (its first request within
         * the grace period), not closed unread, which a client would see as a failure. */
        if (h->tls != NULL) {
            tls_conn_free(h->tls, true);
            close(h->fd);
        } else if (h->conn != NULL)
            conn_adopt(w, h->conn);
        else
            conn_open(w, h->fd, h->listener, &h->peer);
        mem_free(h);
        h = next;
    }
    if (stop && !w->stopping)
        begin_stop(w);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd, (void)what;
    uint64_t idle = server_counter(&server_runtime.idle_timeout);
    rel_time_t now = clock_now();
    if (tls_enabled())
        for (struct conn *c = w->conns, *next; c != NULL; c = next) {
            next = c->next;
            conn_handshake_check(c, now);
        }
    if (idle == 0)
        return;
    /* Only this thread changes the list, so walking it needs no lock. */
    for (struct conn *c = w->conns, *next; c != NULL; c = next) {
        next = c->next;
        conn_idle_check(c, now, idle);
    }
}

static int setup_one(struct worker *w, unsigned id, bool handshaker)
{
    w->id = id;
    w->handshaker = handshaker;
    w->efd = -1;
    pthread_mutex_init(&w->qlock, NULL);
    pthread_mutex_init(&w->conns_lock, NULL);
    w->base = event_base_new();
    /* Two priorities: established connections (0) run before TLS handshakes (1, also the
     * default of the worker's own events). Handshakes normally run in the handshakers; this
     * keeps a worker fair should one ever handshake itself. */
    if (w->base == NULL || event_base_priority_init(w->base, 2) < 0)
        return -1;
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0)
        return -1;
    w->notify_ev = event_new(w->base, w->efd, EV_READ | EV_PERSIST, on_notify, w);
    w->tick_ev = event_new(w->base, -1, EV_PERSIST, on_tick, w);
    w->grace_ev = evtimer_new(w->base, on_grace, w);
    if (w->notify_ev == NULL || w->tick_ev == NULL || w->grace_ev == NULL)
        return -1;
    struct timeval sec = {1, 0};
    if (event_add(w->notify_ev, NULL) < 0 || event_add(w->tick_ev, &sec) < 0)
        return -1;
    if ((w->acceptor = listen_worker_setup(w)) == NULL)
        return -1;
    return 0;
}

int worker_setup(unsigned n)
{
    workers = mem_calloc(n, sizeof *workers);
    nworkers = n;
    for (unsigned i = 0; i < n; i++)
        if (setup_one(&workers[i], i, false) < 0)
            return -1;
    if (!tls_enabled())
        return 0;
    handshakers = mem_calloc(n, sizeof *handshakers);
    nhandshakers = n;
    for (unsigned i = 0; i < n; i++)
        if (setup_one(&handshakers[i], i, true) < 0)
            return -1;
    return 0;
}

/* Nice WORKER_HANDSHAKE_NICE above the process's (at most 19). Best effort. */
static void nice_down(const struct worker *w)
{
    id_t tid = (id_t)gettid();
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, tid); /* -1 is a valid answer: errno tells */
    if (errno != 0 || nice >= 19)
        return;
    nice = nice + WORKER_HANDSHAKE_NICE > 19 ? 19 : nice + WORKER_HANDSHAKE_NICE;
    if (setpriority(PRIO_PROCESS, tid, nice) < 0)
        log_debug("handshake thread %u: setpriority: %s", w->id, strerror(errno));
}

/*
 * Handshake CPU yields to established traffic when cores are short (ssl_handshake_priority).
 * idle: SCHED_IDLE, so a worker (or any other thread) that wakes preempts a handshake at once;
 * with nice values alone the kernel (EEVDF) lets the running handshake finish its slice first,
 * which is what a get on an established connection waited for in a storm of reconnects
 * (BENCHMARKS.md, TLS). low: nice +5, a weighted share. normal: as the workers.
 */
static void lower_priority(const struct worker *w)
{
    const char *p = settings.ssl_handshake_priority;
    if (strcmp(p, "idle") == 0) {
        struct sched_param sp = {.sched_priority = 0};
        int rc = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
        if (rc == 0)
            return;
        log_debug("handshake thread %u: SCHED_IDLE: %s; nice +%d instead", w->id, strerror(rc),
                  WORKER_HANDSHAKE_NICE);
        nice_down(w);
    } else if (strcmp(p, "low") == 0) {
        nice_down(w);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    worker_self = w;
    /* Names for top -H and /proc/PID/task/TID/comm (tools/tlsbench reads them). */
    pthread_setname_np(pthread_self(), w->handshaker ? "cached-tls-hs" : "cached-worker");
    if (w->handshaker)
        lower_priority(w);
    event_base_dispatch(w->base);
    /* Past the grace period (or all closed): close whatever is left. */
    while (w->conns != NULL)
        conn_close(w->conns);
    tls_thread_release();
    for (struct conn **list = &w->free_conns; list != NULL;
         list = list == &w->free_conns ? &w->free_bare : NULL)
        while (*list != NULL) {
            struct conn *c = *list;
            *list = c->next;
            conn_free(c);
        }
    w->nfree = w->nfree_bufs = 0;
    return NULL;
}

static int start_all(struct worker *ws, unsigned *n)
{
    for (unsigned i = 0; i < *n; i++) {
        int rc = pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]);
        if (rc != 0) {
            log_error("cannot start %s thread %u: %s", ws[i].handshaker ? "handshake" : "worker",
                      i, strerror(rc));
            *n = i; /* only join the ones that run */
            return -1;
        }
    }
    return 0;
}

int worker_start(void)
{
    /* Signals are the listener thread's business (libevent signal events there). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = start_all(workers, &nworkers);
    if (rc == 0)
        rc = start_all(handshakers, &nhandshakers);
    else
        nhandshakers = 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void enqueue(struct worker *w, struct handoff *h)
{
    h->next = NULL;
    pthread_mutex_lock(&w->qlock);
    bool was_empty = w->qtail == NULL;
    if (w->qtail != NULL)
        w->qtail->next = h;
    else
        w->qhead = h;
    w->qtail = h;
    pthread_mutex_unlock(&w->qlock);
    /* One eventfd write per batch: a non-empty queue has a wake-up on its way (on_notify
     * reads the eventfd before it takes the whole queue), so accepts that pile up while the
     * worker is busy cost no write each. */
    if (was_empty)
        wake(w);
}

/* Hands a freshly accepted fd (no connection, no TLS state yet) to w's queue. */
static void enqueue_fd(struct worker *w, int fd, unsigned listener, const struct sockaddr_storage *peer)
{
    struct handoff *h = mem_alloc(sizeof *h);
    h->conn = NULL;
    h->tls = NULL;
    h->fd = fd;
    h->listener = listener;
    h->peer = *peer;
    enqueue(w, h);
}

void worker_dispatch(int fd, unsigned listener, const struct sockaddr_storage *peer)
{
    struct worker *w;
    if (listeners[listener].tls && nhandshakers > 0) {
        w = &handshakers[next_handshaker];
        next_handshaker = (next_handshaker + 1) % nhandshakers;
    } else {
        w = &workers[next_worker];
        next_worker = (next_worker + 1) % nworkers;
    }
    enqueue_fd(w, fd, listener, peer);
}

void worker_take(struct worker *w, int fd, unsigned listener, const struct sockaddr_storage *peer)
{
    if (listeners[listener].tls && !w->handshaker && nhandshakers > 0) {
        enqueue_fd(&handshakers[w->id % nhandshakers], fd, listener, peer);
        return;
    }
    conn_open(w, fd, listener, peer);
}

void worker_handoff(struct conn *c)
{
    struct worker *hs = c->w;
    worker_conn_detach(hs, c);
    struct handoff *h = mem_alloc(sizeof *h);
    h->conn = c;
    h->tls = NULL;
    h->fd = c->fd;
    h->listener = c->listener;
    /* Round-robin over all workers, not back to the worker that accepted: with per-worker
     * SO_REUSEPORT sockets the kernel's hash may give one worker most of a few long-lived
     * connections (4 connections on 2 workers: 3/1 or 4/0 five times in eight). */
    static _Atomic unsigned next_adopter;
    unsigned i = atomic_fetch_add_explicit(&next_adopter, 1, memory_order_relaxed);
    enqueue(&workers[i % nworkers], h);
}

bool worker_tls_retire(struct worker *w, struct tls_conn *t, int fd)
{
    if (w->handshaker || nhandshakers == 0)
        return false;
    struct worker *hs = &handshakers[w->id % nhandshakers];
    if (atomic_load(&hs->stop))
        return false; /* shutting down: its loop may be gone */
    struct handoff *h = mem_alloc(sizeof *h);
    h->conn = NULL;
    h->tls = t;
    h->fd = fd;
    h->listener = 0;
    enqueue(hs, h);
    return true;
}

void worker_stop(unsigned grace_ms)
{
    grace_ms_setting = grace_ms;
    for (unsigned i = 0; i < nhandshakers; i++) {
        atomic_store(&handshakers[i].stop, true);
        wake(&handshakers[i]);
    }
    for (unsigned i = 0; i < nworkers; i++) {
        atomic_store(&workers[i].stop, true);
        wake(&workers[i]);
    }
}

void worker_join(void)
{
    /* Handshakers first: they close what is still handshaking at once. */
    for (unsigned i = 0; i < nhandshakers; i++)
        pthread_join(handshakers[i].tid, NULL);
    for (unsigned i = 0; i < nworkers; i++)
        pthread_join(workers[i].tid, NULL);
}

static void teardown_one(struct worker *w)
{
    listen_worker_stop(w->acceptor);
    w->acceptor = NULL;
    while (w->qhead != NULL) { /* queued after the worker stopped */
        struct handoff *h = w->qhead;
        w->qhead = h->next;
        if (h->tls != NULL) {
            tls_conn_free(h->tls, true);
            close(h->fd);
        } else if (h->conn != NULL) {
            conn_discard(h->conn);
        } else {
            close(h->fd);
            server_counter_sub(&server_counters.curr_connections, 1);
        }
        mem_free(h);
    }
    if (w->notify_ev != NULL)
        event_free(w->notify_ev);
    if (w->tick_ev != NULL)
        event_free(w->tick_ev);
    if (w->grace_ev != NULL)
        event_free(w->grace_ev);
    if (w->base != NULL)
        event_base_free(w->base);
    if (w->efd >= 0)
        close(w->efd);
    pthread_mutex_destroy(&w->qlock);
    pthread_mutex_destroy(&w->conns_lock);
}

void worker_teardown(void)
{
    /* Workers first: a connection a handshaker handed over may still wait in a worker's
     * queue, and its event belongs to the handshaker's base until adopted. */
    for (unsigned i = 0; i < nworkers; i++)
        teardown_one(&workers[i]);
    for (unsigned i = 0; i < nhandshakers; i++)
        teardown_one(&handshakers[i]);
    mem_free(workers);
    workers = NULL;
    nworkers = 0;
    mem_free(handshakers);
    handshakers = NULL;
    nhandshakers = 0;
}

/* ---- the connection list (owner thread) ---- */

#define WORKER_FREE_MAX 64 /* closed connection structs a worker keeps for reuse */
#define WORKER_FREE_BUFS 32 /* of which keep their buffers (~33 KB each: ~1 MB a worker) */

void worker_conn_add(struct worker *w, struct conn *c)
{
    pthread_mutex_lock(&w->conns_lock);
    c->prev = NULL;
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    pthread_mutex_unlock(&w->conns_lock);
}

void worker_conn_detach(struct worker *w, struct conn *c)
{
    pthread_mutex_lock(&w->conns_lock);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->nconns--;
    pthread_mutex_unlock(&w->conns_lock);
    c->next = c->prev = NULL;
    if (w->stopping && w->conns == NULL)
        event_base_loopexit(w->base, NULL);
}

void worker_conn_remove(struct worker *w, struct conn *c)
{
    worker_conn_detach(w, c);
    if (w->nfree >= WORKER_FREE_MAX) {
        conn_free(c);
        return;
    }
    /* Up to WORKER_FREE_BUFS kept structs keep their read buffer and reply block: a client
     * that reconnects per request (Django's) costs no buffer allocation then, and what a
     * worker holds when its clients are gone stays bounded. */
    if (c->rbuf != NULL && w->nfree_bufs < WORKER_FREE_BUFS) {
        c->next = w->free_conns;
        w->free_conns = c;
        w->nfree_bufs++;
    } else {
        if (c->rbuf != NULL)
            conn_drop_buffers(c);
        c->next = w->free_bare;
        w->free_bare = c;
    }
    w->nfree++;
}

struct conn *worker_conn_reuse(struct worker *w)
{
    struct conn *c = w->free_conns;
    if (c != NULL) {
        w->free_conns = c->next;
        w->nfree_bufs--;
    } else if ((c = w->free_bare) != NULL) {
        w->free_bare = c->next;
    } else {
        return NULL;
    }
    w->nfree--;
    return c;
}

/*
 * `stats` sums every worker's counters while they keep running: each is read with relaxed
 * loads (proto_stats_snapshot), minus the base the last `stats reset` recorded. The base is
 * written only under stats_reset_lock, which nothing else depends on: it is taken by stats
 * readers and resetters alone, never on the request path and never together with another
 * lock (memcached's doc/threads.txt rule; an earlier per-worker lock held across
 * proto_process deadlocked two concurrent `stats`, test_stats_deadlock.py).
 */
static pthread_mutex_t stats_reset_lock = PTHREAD_MUTEX_INITIALIZER;

void worker_sum_stats(struct proto_stats *out)
{
    memset(out, 0, sizeof *out);
    struct proto_stats *snap = mem_alloc(sizeof *snap); /* ~17 KB of sketch: not the stack */
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        proto_stats_snapshot(snap, &w->stats);
        snap->bytes_read = atomic_load_explicit(&w->bytes_read, memory_order_relaxed);
        snap->bytes_written = atomic_load_explicit(&w->bytes_written, memory_order_relaxed);
        pthread_mutex_lock(&stats_reset_lock);
        proto_stats_sub(snap, &w->stats_base);
        snap->bytes_read -= w->bytes_read_base;
        snap->bytes_written -= w->bytes_written_base;
        pthread_mutex_unlock(&stats_reset_lock);
        proto_stats_add(out, snap);
    }
    mem_free(snap);
}

static uint64_t sum_field(size_t offset, size_t base_offset)
{
    uint64_t sum = 0;
    pthread_mutex_lock(&stats_reset_lock);
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        sum += stat_load((const uint64_t *)((const char *)w + offset)) -
               *(const uint64_t *)((const char *)w + base_offset);
    }
    pthread_mutex_unlock(&stats_reset_lock);
    return sum;
}

uint64_t worker_idle_kicks(void)
{
    return sum_field(offsetof(struct worker, idle_kicks), offsetof(struct worker, idle_kicks_base));
}

uint64_t worker_conn_yields(void)
{
    return sum_field(offsetof(struct worker, conn_yields),
                     offsetof(struct worker, conn_yields_base));
}

void worker_reset_stats(void)
{
    struct proto_stats *snap = mem_alloc(sizeof *snap);
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        proto_stats_snapshot(snap, &w->stats);
        pthread_mutex_lock(&stats_reset_lock);
        w->stats_base = *snap;
        w->idle_kicks_base = stat_load(&w->idle_kicks);
        w->conn_yields_base = stat_load(&w->conn_yields);
        w->bytes_read_base = atomic_load_explicit(&w->bytes_read, memory_order_relaxed);
        w->bytes_written_base = atomic_load_explicit(&w->bytes_written, memory_order_relaxed);
        pthread_mutex_unlock(&stats_reset_lock);
        /* the sketch cannot be subtracted: its owner clears it at its next sample */
        __atomic_fetch_add(&w->stats.obs.clear_req, 1, __ATOMIC_RELAXED);
    }
    mem_free(snap);
}
