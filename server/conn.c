/*
 * conn: the life of one connection in its worker thread.
 *
 * One callback (conn_run) drives everything: parse what is buffered, write what is queued,
 * then read more — in that order, so replies of a pipelined batch leave in one sendmsg and a
 * client that stops reading stops being read (backpressure: past max_output of unsent reply
 * bytes only EV_WRITE is armed). After reqs_per_event commands proto_process yields; the
 * connection is then re-activated behind every other ready connection (fairness, -R).
 * Syscalls are the cost at depth 1 (~1 us each), so a read that comes back short ends the
 * callback after its replies are sent: one read and one sendmsg per request, like memcached.
 *
 * Read buffer: a fixed CONN_RBUF_SIZE bytes per connection, whatever the request. A value
 * goes into its item as it arrives (the protocol allocates the item when the command line is
 * parsed; with nothing else buffered, large values are read straight into the item), and a
 * long multi-get line is run key by key, so the protocol never leaves more than
 * PROTO_UNCONSUMED_MAX bytes unconsumed. Memory per connection is thus bounded by the buffer
 * plus max_output of reply text (values are referenced, not copied).
 */
#define _GNU_SOURCE /* accept4, IOV_MAX */
#include "server/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/config.h"
#include "protocol/stats.h"
#include "server/listen.h"
#include "server/log.h"
#include "server/server.h"
#include "server/tls.h"
#include "server/watch.h"
#include "server/worker.h"
#include "storage/mem.h"

#define CONN_RBUF_SIZE 16384   /* > PROTO_UNCONSUMED_MAX: a read always finds room */
#define CONN_DIRECT_MIN 16384  /* read a value this large or more straight into its item */
#define CONN_READ_ROUNDS 4     /* full-buffer reads per callback before re-queueing */
/* After a value read straight into its item, the next read into the buffer takes at most this
 * much: the next large set's line and the start of its value, so the rest goes straight into
 * the item too instead of 16 KB being copied from the buffer (callgrind: ~16,000 of ~20,000
 * instructions of a 100 KB set). Same syscall count; the cap is dropped as soon as a capped
 * read is not followed by a large value. */
#define CONN_HEAD_READ 1024

static void conn_run(struct conn *c);

/* read(2), readv(2), send(2) and sendmsg(2) on a connection, as plain system calls: libc's wrappers are
 * thread cancellation points (an enable/disable of asynchronous cancellation around the call,
 * ~45 user-space instructions per call under callgrind, two calls per request at depth 1), and
 * cached never cancels a thread. */
static inline ssize_t sys_read(int fd, void *buf, size_t len)
{
    return syscall(SYS_read, fd, buf, len);
}

static inline ssize_t sys_readv(int fd, const struct iovec *iov, int n)
{
    return syscall(SYS_readv, fd, iov, n);
}

static inline ssize_t sys_send(int fd, const void *buf, size_t len, int flags)
{
    return syscall(SYS_sendto, fd, buf, len, flags, NULL, 0);
}

static inline ssize_t sys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    return syscall(SYS_sendmsg, fd, msg, flags);
}

static void conn_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    conn_run(arg);
}

const char *conn_state_name(int state)
{
    switch (state) {
    case CONN_READ: return "conn_waiting";
    case CONN_PARSE: return "conn_parse_cmd";
    case CONN_NREAD: return "conn_nread";
    case CONN_WRITE: return "conn_mwrite";
    /* A TLS connection mid-handshake as memcached 1.6.18 shows it: conn_new_cmd (its
     * listener hands the connection over in that state after the first SSL_accept step),
     * conn_read once its worker has read handshake bytes (SSL_read drives the rest). */
    case CONN_HANDSHAKE: return "conn_new_cmd";
    case CONN_HANDSHAKE_READ: return "conn_read";
    default: return "conn_closing";
    }
}

static void set_state(struct conn *c, enum conn_state s)
{
    atomic_store_explicit(&c->state, (int)s, memory_order_relaxed);
}

/* Arms exactly `flags` (EV_READ / EV_WRITE) on the connection's persistent event. */
static void conn_want(struct conn *c, short flags)
{
    if (flags == c->ev_flags)
        return;
    event_del(c->ev);
    c->ev_flags = flags;
    if (flags == 0)
        return;
    event_assign(c->ev, c->w->base, c->fd, (short)(flags | EV_PERSIST), conn_event, c);
    event_priority_set(c->ev, c->handshaking ? 1 : 0); /* see worker_setup */
    if (event_add(c->ev, NULL) < 0) {
        log_error("event_add failed for fd %d", c->fd);
        c->ev_flags = 0;
    }
}

/* Decimal digits of v at p; returns the end. */
static char *put_uint(char *p, unsigned v)
{
    char tmp[10];
    unsigned n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

static void peer_name(struct conn *c, const struct sockaddr_storage *peer)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    if (listeners[c->listener].is_unix) {
        snprintf(c->addr, sizeof c->addr, "%s", listeners[c->listener].name);
        return;
    }
    if (peer != NULL) {
        ss = *peer;
    } else if (getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(c->addr, sizeof c->addr, "tcp:?");
        return;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        snprintf(c->addr, sizeof c->addr, "tcp6:[%s]:%u", host, ntohs(s6->sin6_port));
    } else {
        /* "tcp:a.b.c.d:port" by hand: inet_ntop and snprintf were ~2,900 instructions of
         * every connection (callgrind, connect-per-request) */
        _Static_assert(CONN_ADDR_MAX >= sizeof "tcp:255.255.255.255:65535", "addr too short");
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
        const unsigned char *b = (const unsigned char *)&s4->sin_addr;
        char *p = c->addr;
        memcpy(p, "tcp:", 4);
        p += 4;
        for (int i = 0; i < 4; i++) {
            p = put_uint(p, b[i]);
            *p++ = i < 3 ? '.' : ':';
        }
        p = put_uint(p, ntohs(s4->sin_port));
        *p = '\0';
    }
}

void conn_open(struct worker *w, int fd, unsigned listener, const struct sockaddr_storage *peer)
{
    struct conn *c = worker_conn_reuse(w);
    if (c == NULL) {
        c = mem_calloc(1, sizeof *c);
        c->ev = event_new(w->base, -1, 0, NULL, NULL);
        if (c->ev == NULL) {
            log_error("out of memory for a connection event");
            mem_free(c);
            close(fd);
            server_counter_sub(&server_counters.curr_connections, 1);
            return;
        }
        server_counter_add(&server_counters.connection_structures, 1);
    }
    /* A pooled struct may still have its buffers (worker_conn_remove: a few do). */
    if (c->rbuf == NULL)
        c->rbuf = mem_alloc(CONN_RBUF_SIZE);
    c->rsize = CONN_RBUF_SIZE;
    c->w = w;
    c->fd = fd;
    c->listener = listener;
    c->ev_flags = 0;
    c->rstart = c->rend = c->need = 0;
    /* c->reply: empty, from mem_calloc or from conn_close (which may keep its block) */
    memset(&c->pc, 0, sizeof c->pc);
    c->pc.stats = &w->stats;
    c->pc.is_unix = listeners[listener].is_unix;
    c->pc.trace_id = fd;
    c->closing = c->draining = false;
    c->big_values = c->head_capped = false;
    c->watcher = NULL;
    c->fresh = true;
    c->opened = clock_now();
    atomic_store_explicit(&c->last_active, c->opened, memory_order_relaxed);
    set_state(c, CONN_READ);
    peer_name(c, peer);
    c->tls = listeners[listener].tls ? tls_conn_new(fd) : NULL;
    c->handshaking = c->tls != NULL;
    if (c->handshaking)
        set_state(c, CONN_HANDSHAKE);
    if (listeners[listener].tls && c->tls == NULL)
        log_error("out of memory for a TLS connection from %s", c->addr); /* closed below */

    worker_conn_add(w, c);
    if (watch_wants(WATCH_CONNEVENTS))
        watch_conn_event(c, false);

    log_debug("worker %u: new connection fd %d from %s", w->id, fd, c->addr);
    proto_trace_conn_open(fd);
    if (listeners[listener].tls && c->tls == NULL) {
        conn_close(c);
        return;
    }
    conn_want(c, EV_READ);
}

void conn_drop_buffers(struct conn *c)
{
    reply_deinit(&c->reply);
    mem_free(c->rbuf);
    c->rbuf = NULL;
    c->rsize = 0;
}

void conn_adopt(struct worker *w, struct conn *c)
{
    /* The event is disarmed (conn_handshake) and still names the handshaker's base: point it
     * at ours without event_del, which would look into the other thread's base. */
    event_assign(c->ev, w->base, -1, 0, conn_event, c);
    c->ev_flags = 0;
    set_state(c, CONN_READ);
    c->w = w;
    c->pc.stats = &w->stats;
    worker_conn_add(w, c);
    log_debug("worker %u: TLS connection fd %d from %s established", w->id, c->fd, c->addr);
    if (w->stopping)
        conn_drain(c);
    else
        conn_run(c); /* a request may already wait, decrypted, inside OpenSSL */
}

void conn_discard(struct conn *c)
{
    tls_conn_free(c->tls, false);
    c->tls = NULL;
    close(c->fd);
    reply_deinit(&c->reply);
    proto_conn_release(&c->pc);
    server_counter_sub(&server_counters.curr_connections, 1);
    conn_free(c);
}

void conn_free(struct conn *c)
{
    event_free(c->ev);
    conn_drop_buffers(c);
    mem_free(c);
    server_counter_sub(&server_counters.connection_structures, 1);
}

void conn_close(struct conn *c)
{
    struct worker *w = c->w;
    conn_want(c, 0);
    event_del(c->ev); /* also drops a pending event_active */
    set_state(c, CONN_CLOSING);
    log_debug("worker %u: closing fd %d (%s)", w->id, c->fd, c->addr);
    proto_trace_conn_close(c->fd);
    if (c->watcher != NULL) {
        watch_remove(c->watcher);
        c->watcher = NULL;
        c->pc.close_reason = PROTO_CLOSE_ERROR; /* memcached's watchers close with no reason */
    }
    if (watch_wants(WATCH_CONNEVENTS))
        watch_conn_event(c, true);
    if (c->tls == NULL) {
        close(c->fd);
    } else {
        /* Established: close_notify, SSL_free and close(2) on the handshake thread. */
        if (c->handshaking || !worker_tls_retire(w, c->tls, c->fd)) {
            tls_conn_free(c->tls, !c->handshaking);
            close(c->fd);
        }
        c->tls = NULL;
    }
    c->fd = -1;
    reply_clear(&c->reply); /* drops the item references of unsent values */
    proto_conn_release(&c->pc); /* a half-read value's item, SASL context */
    /* c->rbuf and the reply's first block stay for worker_conn_remove to keep or drop */

    server_counter_sub(&server_counters.curr_connections, 1);
    worker_conn_remove(w, c); /* may keep the struct for reuse, or conn_free it */
}

/* The one place bytes come in from the socket. */
static ssize_t conn_recv(struct conn *c, void *buf, size_t len)
{
    return c->tls ? tls_read(c->tls, buf, len, c->addr) : sys_read(c->fd, buf, len);
}

/* Moves the unparsed bytes to the front of the buffer when the free space at its end is
 * short. The protocol leaves at most PROTO_UNCONSUMED_MAX bytes unparsed, so room remains. */
static void rbuf_compact(struct conn *c)
{
    size_t have = c->rend - c->rstart;
    if (have == 0) {
        c->rstart = c->rend = 0;
    } else if (c->rstart > 0 && c->rsize - c->rend < c->rsize / 2) {
        memmove(c->rbuf, c->rbuf + c->rstart, have);
        c->rstart = 0;
        c->rend = have;
    }
}

/* A value is being read into its item and nothing else is buffered. */
static bool conn_value_direct(struct conn *c)
{
    char *dst;
    return c->rend == c->rstart && proto_value_window(&c->pc, &dst) >= CONN_DIRECT_MIN;
}

/* A value is being read and nothing else is buffered (conn_value_direct): read it straight
 * into its item. Returns bytes read (> 0), 0 when the socket is empty, -1 on EOF or an error.
 * Without TLS the read is a readv of the value's missing bytes into the item and of whatever
 * follows them (its "\r\n", the next commands) into the empty read buffer: one syscall where
 * a read of the value and another of its "\r\n" would be two (strace: 3 -> 2 reads per
 * 100 KB set, memcached's count). */
static ssize_t conn_read_value(struct conn *c, size_t *total)
{
    char *dst;
    size_t want = proto_value_window(&c->pc, &dst);
    c->rstart = c->rend = 0;
    size_t got = 0;
    c->big_values = true;
    c->head_capped = false;
    /* Like the buffered loop below: until the value is in, a short read or EAGAIN. */
    while (want > 0) {
        size_t space = want;
        ssize_t n;
        if (c->tls == NULL) {
            struct iovec iov[2] = {{dst, want}, {c->rbuf, c->rsize}};
            space += c->rsize;
            n = sys_readv(c->fd, iov, 2);
        } else {
            n = conn_recv(c, dst, want);
        }
        if (n > 0) {
            size_t v = (size_t)n < want ? (size_t)n : want;
            proto_value_filled(&c->pc, v);
            c->rend = (size_t)n - v; /* past the value: into the buffer (want is then 0) */
            got += (size_t)n;
            dst += v;
            want -= v;
            if ((size_t)n < space && (c->tls == NULL || !tls_pending(c->tls))) {
                c->drained = true;
                break;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->drained = true;
            break;
        }
        if (n == 0)
            c->pc.close_reason = PROTO_CLOSE_NORMAL; /* the client closed mid-value */
        if (got > 0) {
            c->draining = true; /* EOF or an error after some bytes: run what came */
            break;
        }
        return -1;
    }
    *total += got;
    return (ssize_t)got;
}

/*
 * Reads until EAGAIN, a short read or the buffer is full. Returns bytes read (> 0), 0 when nothing was
 * available, -1 on EOF with nothing read or on an error. EOF after some bytes sets draining
 * (the bytes are answered, then the connection closes).
 */
static ssize_t conn_read(struct conn *c)
{
    size_t total = 0;
    if (conn_value_direct(c)) {
        if (conn_read_value(c, &total) < 0) {
            c->draining = true; /* EOF or an error mid-value: nothing to answer */
            return -1;
        }
        goto out; /* the value (or part of it) is in, or the socket is empty */
    }
    if (c->head_capped)
        c->big_values = false; /* a capped read brought no large value: stop capping */
    c->head_capped = false;
    rbuf_compact(c);
    if (c->rend == c->rsize) {
        /* Cannot happen (see rbuf_compact); never spin on it. */
        log_debug("fd %d: read buffer full of one unfinished command; closing", c->fd);
        return -1;
    }
    while (c->rend < c->rsize) {
        size_t space = c->rsize - c->rend;
        bool cap = c->big_values && c->rend == c->rstart && space > CONN_HEAD_READ;
        if (cap)
            space = CONN_HEAD_READ;
        ssize_t n = conn_recv(c, c->rbuf + c->rend, space);
        if (n > 0) {
            c->rend += (size_t)n;
            total += (size_t)n;
            c->head_capped = cap;
            if (cap && (size_t)n == space)
                break; /* parse it: a large value's rest is then read straight in */
            /* Decrypted bytes waiting inside OpenSSL are invisible to epoll: keep reading. */
            if ((size_t)n < space && (c->tls == NULL || !tls_pending(c->tls))) {
                /* A short read empties the socket: asking again would only cost an EAGAIN
                 * (a syscall per request at depth 1). Level-triggered epoll reports what
                 * arrives later. */
                c->drained = true;
                break;
            }
            continue;
        }
        if (n == 0) {
            c->pc.close_reason = PROTO_CLOSE_NORMAL; /* the client closed: memcached's "normal" */
            /* A half-close (shutdown(SHUT_WR) after the last request) with replies still
             * owed drains them first, as memcached does: closing here cut a large get's
             * value mid-way. */
            if (total == 0 && reply_empty(&c->reply))
                return -1;
            c->draining = true;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->drained = true;
            break;
        }
        if (total == 0)
            return -1;
        c->draining = true;
        break;
    }
    if (total > 0 && c->fresh) {
        c->fresh = false;
        /* 0x16: a TLS handshake record sent to a plaintext TCP port. */
        if (c->tls == NULL && !listeners[c->listener].is_unix &&
            (unsigned char)c->rbuf[c->rstart] == 0x16) {
            log_info("TLS handshake from %s on plaintext %s; closing", c->addr,
                     listeners[c->listener].name);
            return -1;
        }
    }
out:
    if (total > 0) {
        worker_count_read(c->w, total);
        atomic_store_explicit(&c->last_active, clock_now(), memory_order_relaxed);
    }
    return (ssize_t)total;
}

/* Parses and executes buffered commands; returns proto_process's verdict. */
static enum proto_action conn_parse(struct conn *c, size_t max_output)
{
    struct worker *w = c->w;
    size_t have = c->rend - c->rstart, consumed = 0;
    set_state(c, CONN_PARSE);
    enum proto_action act =
        proto_process(&c->pc, &c->reply, c->rbuf + c->rstart, have, &consumed,
                      (unsigned)settings.reqs_per_event, max_output);
    if (act == PROTO_YIELD && c->reply.pending <= max_output)
        worker_count_yield(w); /* the -R budget, not backpressure */
    if (consumed > have)
        consumed = have; /* defensive: never trust a count to move past the data */
    c->rstart += consumed;
    have -= consumed;
    /* Incomplete command line: parse again once at least one more byte is in. */
    c->need = (act == PROTO_CONTINUE && have > 0) ? have + 1 : 0;
    /* A value is arriving into its item (or a refused one is swallowed): conn_nread. */
    c->in_value = c->pc.value.it != NULL || c->pc.swallow > 0;
    if (act == PROTO_CLOSE || c->pc.closing)
        c->closing = true;
    if (have == 0)
        c->rstart = c->rend = 0;
    return act;
}

/* Writes queued replies. Returns 1 when all is sent, 0 when the socket is full, -1 on error. */
static int conn_flush(struct conn *c)
{
    size_t total = 0;
    int rc = 1;
    set_state(c, CONN_WRITE);
    if (c->tls != NULL) {
        rc = tls_flush(c->tls, &c->reply, &total);
        goto out;
    }
    while (!reply_empty(&c->reply)) {
        struct iovec *iov;
        size_t n = reply_iov(&c->reply, &iov, IOV_MAX);
        ssize_t w;
        if (n == 1) {
            /* The usual reply (text and small values share a block): send() spares the
             * kernel copying a msghdr and importing an iovec array. */
            w = sys_send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
        } else {
            struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n};
            w = sys_sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        }
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
            break;
        }
        reply_consumed(&c->reply, (size_t)w);
        total += (size_t)w;
    }
out:
    if (total > 0) {
        worker_count_written(c->w, total);
    }
    return rc;
}

/* Closes with a reset (SO_LINGER 0): what memcached's clients see for a failed handshake. */
static void conn_abort(struct conn *c)
{
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    conn_close(c);
}

/* Advances a TLS handshake; false when the callback must return (waiting or closed). */
static bool conn_handshake(struct conn *c)
{
    enum tls_status r = tls_handshake(c->tls, c->addr);
    switch (r) {
    case TLS_DONE:
        c->handshaking = false;
        conn_want(c, 0); /* re-armed below at the established connections' priority */
        if (c->w->handshaker) {
            worker_handoff(c); /* c belongs to its worker from here on: never touch it */
            return false;
        }
        return true;
    case TLS_WANT_READ:
    case TLS_WANT_WRITE:
        if (tls_bytes_in(c->tls))
            set_state(c, CONN_HANDSHAKE_READ);
        conn_want(c, r == TLS_WANT_READ ? EV_READ : EV_WRITE);
        return false;
    default:
        conn_abort(c);
        return false;
    }
}

bool conn_handshake_check(struct conn *c, rel_time_t now)
{
    if (!c->handshaking || now < c->opened || now - c->opened < TLS_HANDSHAKE_TIMEOUT_S)
        return false;
    log_info("TLS handshake with %s not done after %u s; closing", c->addr,
             (unsigned)TLS_HANDSHAKE_TIMEOUT_S);
    tls_count_timeout();
    conn_abort(c);
    return true;
}

static void conn_run(struct conn *c)
{
    size_t max_output = server_counter(&server_runtime.max_output);
    unsigned rounds = 0;
    if (c->handshaking && !conn_handshake(c))
        return;
    bool fresh = true; /* bytes arrived since the last parse */
    c->drained = false;
    for (;;) {
        enum proto_action act = PROTO_CONTINUE;
        size_t have = c->rend - c->rstart;
        bool parsed = false;
        if (fresh && (have > 0 || proto_value_ready(&c->pc) || proto_dumping(&c->pc)) &&
            have >= c->need &&
            !c->closing && c->reply.pending <= max_output) {
            act = conn_parse(c, max_output);
            parsed = true;
        }
        fresh = false;

        /* A long multi-get holds its reply until its line ends (a bad key may still drop
         * it), unless the reply outgrew max_output or the connection is closing. */
        bool hold = proto_holding_reply(&c->pc) && !c->closing && !c->draining &&
                    c->reply.pending <= max_output;
        /* TLS: each record costs ~5,000 instructions whatever its size, so a yield (the -R
         * budget, 20 requests) keeps replies smaller than one batch for the next round:
         * 100 pipelined gets become one record, not five. */
        if (act == PROTO_YIELD && c->tls != NULL && !c->closing && !c->draining &&
            c->reply.pending < tls_batch_bytes() && c->reply.pending <= max_output)
            hold = true;
        if (!hold && !reply_empty(&c->reply) && conn_flush(c) < 0) {
            conn_close(c);
            return;
        }
        /* A watcher's lines (bounded: see server/watch.h). */
        if (c->watcher != NULL && watch_pull(c->watcher, &c->reply) && conn_flush(c) < 0) {
            conn_close(c);
            return;
        }
        bool pending = !reply_empty(&c->reply) && !hold; /* held: no EV_WRITE yet */
        if (c->closing) {
            if (!pending) {
                conn_close(c);
                return;
            }
            conn_want(c, EV_WRITE);
            return;
        }
        if (c->reply.pending > max_output) {
            conn_want(c, EV_WRITE); /* backpressure: read nothing until drained */
            return;
        }
        if (act == PROTO_YIELD || proto_dumping(&c->pc)) {
            /* Budget spent (or output bound hit and already drained), or a metadump has
             * room for its next batch: run again after every connection that is ready now.
             * No input is read meanwhile. */
            conn_want(c, pending ? EV_READ | EV_WRITE : EV_READ);
            set_state(c, CONN_PARSE);
            event_active(c->ev, EV_READ, 0);
            return;
        }
        if (c->draining) {
            /* EOF or shutdown. Commands still buffered run first: this round may not have
             * parsed (backpressure stopped it), or its parse stopped at the output bound and
             * the flush then drained the replies (a fast reader). Once a parse consumes
             * nothing, only an incomplete command (or nothing) is left: all that can run
             * has run. */
            size_t left = c->rend - c->rstart;
            if (left > 0 && left >= c->need && (!parsed || left < have)) {
                fresh = true;
                continue;
            }
            c->closing = true;
            continue;
        }
        if (++rounds > CONN_READ_ROUNDS) {
            conn_want(c, pending ? EV_READ | EV_WRITE : EV_READ);
            event_active(c->ev, EV_READ, 0);
            return;
        }
        ssize_t n = c->drained ? 0 : conn_read(c);
        if (n < 0) {
            conn_close(c);
            return;
        }
        if (n > 0 && c->w->stopping)
            c->draining = true; /* shutdown: a first request waited for (conn_drain) */
        if (n == 0 && c->draining)
            continue; /* EOF with replies owed: to the draining step, no more reads */
        if (n == 0) {
            set_state(c, pending ? CONN_WRITE : c->in_value ? CONN_NREAD : CONN_READ);
            conn_want(c, pending ? EV_READ | EV_WRITE : EV_READ);
            return;
        }
        fresh = true;
    }
}

void conn_wake(struct conn *c)
{
    if (c->ev_flags != 0)
        event_active(c->ev, EV_WRITE, 0);
    else
        conn_run(c);
}

void conn_drain(struct conn *c)
{
    if (c->handshaking) { /* nothing asked yet: nothing to answer */
        conn_close(c);
        return;
    }
    if (!c->closing && !c->draining) {
        ssize_t n = 0;
        if (c->reply.pending <= server_counter(&server_runtime.max_output) &&
            (n = conn_read(c)) < 0) {
            conn_close(c);
            return;
        }
        if (n == 0 && c->fresh) {
            /* Accepted but nothing arrived yet: its client sent its request right after
             * connecting and it is on its way (a restart under socket activation must fail
             * no request). Wait for it until the shutdown deadline; conn_run drains then. */
            conn_want(c, EV_READ);
            return;
        }
        c->draining = true;
    }
    conn_run(c);
}

bool conn_idle_check(struct conn *c, rel_time_t now, uint64_t idle_timeout)
{
    rel_time_t last = atomic_load_explicit(&c->last_active, memory_order_relaxed);
    /* a watcher never sends: memcached's idle check skips it too (conn_watch state) */
    if (idle_timeout == 0 || c->closing || !reply_empty(&c->reply) || proto_dumping(&c->pc) ||
        c->watcher != NULL)
        return false;
    if (now <= last || (uint64_t)(now - last) <= idle_timeout)
        return false;
    struct worker *w = c->w;
    worker_count_idle_kick(w);
    log_info("closing idle connection %s (fd %d)", c->addr, c->fd);
    c->pc.close_reason = PROTO_CLOSE_IDLE;
    conn_close(c);
    return true;
}
