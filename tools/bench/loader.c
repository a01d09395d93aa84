/*
 * loader: one load-generating thread. It owns its connections and its epoll set, and shares
 * nothing with other loader threads while it runs (main merges the stats at the end).
 *
 * Closed loop: each connection keeps `depth` requests in flight. A read event parses every
 * complete reply in the buffer, refills the pipeline and writes once, so a depth-1
 * connection costs one read and one write per request (the server pays at least as many
 * syscalls plus its own event handling), which keeps the bench cheaper than the server.
 *
 * A reply is matched to the oldest request in flight. Every VALUE line's key and flags are
 * checked; one get reply in verify_every also has its data compared byte for byte.
 *
 * Alternating (-p P1,P2,...): each server has its own set of connections, and time is cut
 * into slices (--slice, 0.1 s); slice i drives only the connections of server i % n. The
 * others finish what they have in flight and wait. Comparing neighbouring slices cancels the
 * machine's slow drifts (other processes, frequency), which whole rounds of seconds cannot.
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_NS 2000000000ull /* replies still missing this long after the end are errors */
#define RBUF_MIN 16384u
#define READ_ROOM 4096u /* compact the read buffer when less room than this is left */

enum req_kind { REQ_GET, REQ_SET };

/* A request in flight. Its keys live in the connection's key ring at slot * multiget. */
struct pending {
    uint64_t t_send;
    uint32_t slice; /* the slice it was issued in (alternating runs) */
    uint8_t kind;
    uint8_t counted; /* issued inside the measured window */
    uint32_t nkeys;
};

enum cpr_step { CPR_CONNECTING, CPR_GET, CPR_SET };

struct conn {
    int fd;
    uint32_t target; /* index into bench_addrs */
    bool want_out; /* EPOLLOUT registered: unsent bytes are waiting */
    struct pending *pend;
    uint64_t *keys;
    uint32_t head, count; /* ring of requests in flight */
    /* progress through the reply of the head request (a get's VALUE blocks arrive in the
     * order their keys were asked for, misses skipped) */
    uint32_t got, next_key;
    bool verify_head;
    uint32_t verify_ctr;
    char *rbuf;
    size_t rcap, rpos, rlen;
    char *wbuf;
    size_t wcap, wpos, wlen;
    /* --preload: the keys this connection still has to set */
    uint64_t pre_next, pre_end;
    /* --connect-per-request */
    enum cpr_step step;
    bool connecting; /* a non-blocking connect is in progress (counted in outstanding) */
    uint64_t t_connect;
    uint32_t cycle_slice;
    bool cycle_counted;
};

struct thread_state {
    struct loader *l;
    const struct bench_opts *o;
    int ep;
    uint64_t rng;
    struct conn *conns;
    uint64_t warm_end, measure_end; /* absolute monotonic ns; measure_end UINT64_MAX: none */
    uint32_t nconns;      /* connections of all targets: l->nconns per target */
    uint64_t slice_ns;    /* 0: one target, no alternation */
    uint32_t slice;       /* the current slice (index from l->start_ns) */
    uint32_t active;      /* the target the current slice drives */
    bool measuring, issuing;
    uint64_t issued_counted;
    uint64_t outstanding; /* requests in flight plus connections being opened */
    uint64_t last_done;   /* completion time of the last counted request */
    double cpu_at_warm_end;
};

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double thread_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, n) without a division. */
static uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

/* Writes v in decimal at p; returns the end. */
static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* ---- connections ------------------------------------------------------------------------- */

static int socket_setup(int fd, uint32_t target)
{
    if (bench_addrs[target].family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

int bench_connect_blocking(uint32_t target)
{
    const struct bench_addr *a = &bench_addrs[target];
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)a->addr, a->addrlen) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return socket_setup(fd, target);
}

/* Starts a non-blocking connect; returns the fd (connected or in progress) or -1. */
static int connect_nonblocking(uint32_t target, bool *done)
{
    const struct bench_addr *a = &bench_addrs[target];
    int fd = socket(a->family, a->socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->protocol);
    if (fd < 0)
        return -1;
    socket_setup(fd, target);
    if (connect(fd, (const struct sockaddr *)a->addr, a->addrlen) == 0) {
        *done = true;
        return fd;
    }
    if (errno == EINPROGRESS) {
        *done = false;
        return fd;
    }
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

static void conn_watch(struct thread_state *t, struct conn *c, int op, bool out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    c->want_out = out;
    if (epoll_ctl(t->ep, op, c->fd, &ev) != 0)
        bench_error("epoll_ctl: %s", strerror(errno));
}

static bool conn_alloc(const struct bench_opts *o, struct conn *c)
{
    size_t get_max = 4 + (size_t)o->multiget * (o->key_size + 1) + 2;
    size_t set_max = 4 + o->key_size + 1 + 10 + 3 + 10 + 2 + o->vmax + 2;
    size_t req_max = get_max > set_max ? get_max : set_max;
    c->wcap = (size_t)o->depth * req_max + 64;
    c->rcap = RBUF_MIN;
    c->pend = calloc(o->depth, sizeof *c->pend);
    c->keys = calloc((size_t)o->depth * o->multiget, sizeof *c->keys);
    c->wbuf = malloc(c->wcap);
    c->rbuf = malloc(c->rcap);
    c->fd = -1;
    return c->pend && c->keys && c->wbuf && c->rbuf;
}

static void conn_free(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->pend);
    free(c->keys);
    free(c->wbuf);
    free(c->rbuf);
}

/* Closes the socket and forgets what was in flight. */
static void conn_close(struct thread_state *t, struct conn *c)
{
    if (c->fd >= 0) {
        close(c->fd); /* also removes it from the epoll set */
        c->fd = -1;
    }
    t->outstanding -= c->count;
    if (c->connecting)
        t->outstanding--;
    c->connecting = false;
    c->count = c->head = 0;
    c->got = c->next_key = 0;
    c->rpos = c->rlen = c->wpos = c->wlen = 0;
}

static void conn_fill(struct thread_state *t, struct conn *c, uint64_t now);
static bool conn_flush(struct thread_state *t, struct conn *c);

/* Whether c's server is the one the current slice drives (always, with one server). */
static bool conn_active(const struct thread_state *t, const struct conn *c)
{
    return t->active == c->target;
}

/* connect-per-request: opens the next connection of a client. */
static void cpr_open(struct thread_state *t, struct conn *c, uint64_t now)
{
    bool done = false;
    c->fd = connect_nonblocking(c->target, &done);
    if (c->fd < 0) {
        bench_error("connect: %s", strerror(errno));
        if (t->measuring)
            t->l->st.errors++;
        return; /* retried by the main loop's sweep */
    }
    c->t_connect = now;
    c->cycle_slice = t->slice;
    c->cycle_counted = t->measuring;
    c->step = done ? CPR_GET : CPR_CONNECTING;
    c->connecting = !done;
    if (!done)
        t->outstanding++;
    conn_watch(t, c, EPOLL_CTL_ADD, !done);
    if (done) {
        conn_fill(t, c, now);
        if (!conn_flush(t, c)) {
            t->l->st.errors++;
            conn_close(t, c); /* retried by the main loop's sweep */
        }
    }
}

/* Reopens a connection that failed (server closed it, or a reply made no sense). */
static void conn_reopen(struct thread_state *t, struct conn *c, uint64_t now)
{
    conn_close(t, c);
    if (!t->issuing)
        return;
    if (t->o->connect_per_req) {
        if (!conn_active(t, c))
            return; /* reopened when its server's slice comes */
        cpr_open(t, c, now);
        return;
    }
    c->fd = bench_connect_blocking(c->target);
    if (c->fd < 0) {
        bench_error("reconnect: %s", strerror(errno));
        return;
    }
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    conn_watch(t, c, EPOLL_CTL_ADD, false);
    conn_fill(t, c, now);
    conn_flush(t, c);
}

/* ---- requests ---------------------------------------------------------------------------- */

static struct pending *push_pending(struct thread_state *t, struct conn *c, enum req_kind kind,
                                    uint32_t nkeys, uint64_t now, uint64_t **keys)
{
    uint32_t slot = (c->head + c->count) % t->o->depth;
    struct pending *p = &c->pend[slot];
    p->t_send = now;
    p->slice = t->slice;
    p->kind = (uint8_t)kind;
    p->nkeys = nkeys;
    p->counted = t->measuring;
    if (t->measuring)
        t->issued_counted++;
    c->count++;
    t->outstanding++;
    *keys = &c->keys[(size_t)slot * t->o->multiget];
    return p;
}

static void make_room(struct conn *c, size_t need)
{
    if (c->wlen + need <= c->wcap)
        return;
    memmove(c->wbuf, c->wbuf + c->wpos, c->wlen - c->wpos);
    c->wlen -= c->wpos;
    c->wpos = 0;
}

static void issue_get(struct thread_state *t, struct conn *c, uint64_t now, uint32_t nkeys)
{
    const struct bench_opts *o = t->o;
    uint64_t *keys;
    push_pending(t, c, REQ_GET, nkeys, now, &keys);
    make_room(c, 4 + (size_t)nkeys * (o->key_size + 1) + 2);
    char *p = c->wbuf + c->wlen;
    memcpy(p, "get", 3);
    p += 3;
    for (uint32_t k = 0; k < nkeys; k++) {
        keys[k] = rng_below(&t->rng, o->keyspace);
        *p++ = ' ';
        data_key(p, o->key_size, keys[k]);
        p += o->key_size;
    }
    *p++ = '\r';
    *p++ = '\n';
    c->wlen = (size_t)(p - c->wbuf);
}

static void issue_set(struct thread_state *t, struct conn *c, uint64_t now, uint64_t key)
{
    const struct bench_opts *o = t->o;
    uint64_t *keys;
    push_pending(t, c, REQ_SET, 1, now, &keys);
    keys[0] = key;
    uint32_t len = o->vmin;
    if (o->vmax > o->vmin)
        len += (uint32_t)rng_below(&t->rng, (uint64_t)(o->vmax - o->vmin) + 1);
    make_room(c, 4 + o->key_size + 30 + len + 2);
    char *p = c->wbuf + c->wlen;
    memcpy(p, "set ", 4);
    p += 4;
    data_key(p, o->key_size, key);
    p += o->key_size;
    *p++ = ' ';
    p = put_u64(p, data_flags(key));
    memcpy(p, " 0 ", 3);
    p += 3;
    p = put_u64(p, len);
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, data_value(key), len);
    p += len;
    *p++ = '\r';
    *p++ = '\n';
    c->wlen = (size_t)(p - c->wbuf);
}

/* Tops the pipeline up to depth (or takes the next step of a connect-per-request cycle). */
static void conn_fill(struct thread_state *t, struct conn *c, uint64_t now)
{
    const struct bench_opts *o = t->o;
    if (o->preload) {
        while (c->count < o->depth && c->pre_next < c->pre_end)
            issue_set(t, c, now, c->pre_next++);
        return;
    }
    if (!t->issuing || c->fd < 0)
        return;
    /* connect-per-request: a cycle once begun is finished even when its slice has ended */
    if (o->connect_per_req) {
        if (c->count == 0 && c->step == CPR_GET)
            issue_get(t, c, now, o->multiget);
        else if (c->count == 0 && c->step == CPR_SET)
            issue_set(t, c, now, rng_below(&t->rng, o->keyspace));
        return;
    }
    if (!conn_active(t, c))
        return;
    while (c->count < o->depth) {
        if (o->requests && t->issued_counted >= t->l->request_quota && t->measuring) {
            t->issuing = false;
            return;
        }
        bool get = o->get_ratio >= 1.0 ||
                   (double)(rng_next(&t->rng) >> 11) * 0x1p-53 < o->get_ratio;
        if (get)
            issue_get(t, c, now, o->multiget);
        else
            issue_set(t, c, now, rng_below(&t->rng, o->keyspace));
    }
}

/* Writes what is pending; false when the connection failed. */
static bool conn_flush(struct thread_state *t, struct conn *c)
{
    while (c->wpos < c->wlen) {
        ssize_t n = write(c->fd, c->wbuf + c->wpos, c->wlen - c->wpos);
        if (n > 0) {
            c->wpos += (size_t)n;
            t->l->st.bytes_out += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out)
                conn_watch(t, c, EPOLL_CTL_MOD, true);
            return true;
        }
        bench_error("write: %s", n < 0 ? strerror(errno) : "short");
        return false;
    }
    c->wpos = c->wlen = 0;
    if (c->want_out)
        conn_watch(t, c, EPOLL_CTL_MOD, false);
    return true;
}

/* ---- replies ----------------------------------------------------------------------------- */

enum parse_result { PARSE_DONE, PARSE_MORE, PARSE_BROKEN };

static void complete(struct thread_state *t, struct conn *c, uint64_t now)
{
    struct pending *p = &c->pend[c->head];
    struct loader_stats *st = &t->l->st;
    if (p->counted) {
        if (p->kind == REQ_GET) {
            st->gets++;
            st->get_keys += p->nkeys;
            st->hits += c->got;
        } else {
            st->sets++;
        }
        if (!t->o->connect_per_req) {
            hist_record(&st->lat, now - p->t_send);
            if (st->slice_done) {
                hist_record(&st->target_lat[c->target], now - p->t_send);
                st->target_done[c->target]++;
                st->slice_done[p->slice]++;
            }
        }
        t->last_done = now;
    }
    c->head = (c->head + 1) % t->o->depth;
    c->count--;
    t->outstanding--;
    c->got = c->next_key = 0;
    c->verify_head = false;
}

/* Prints a reply line for an error message, at most 80 bytes, without its line end. */
static int shown_len(const char *line, size_t len)
{
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    return (int)(len > 80 ? 80 : len);
}

static enum parse_result parse_set(struct thread_state *t, struct conn *c, uint64_t now)
{
    const char *s = c->rbuf + c->rpos;
    size_t avail = c->rlen - c->rpos;
    const char *nl = memchr(s, '\n', avail);
    if (!nl)
        return avail > 1024 ? PARSE_BROKEN : PARSE_MORE;
    size_t len = (size_t)(nl - s) + 1;
    if (len != 8 || memcmp(s, "STORED\r\n", 8) != 0) {
        bench_error("set: reply \"%.*s\"", shown_len(s, len), s);
        t->l->st.errors++;
    }
    c->rpos += len;
    complete(t, c, now);
    return PARSE_DONE;
}

/* Parses "VALUE <key> <flags> <bytes>[ <cas>]\r\n"; false if malformed. */
static bool parse_value_line(const char *s, size_t len, const char **key, size_t *klen,
                             uint64_t *flags, uint64_t *bytes)
{
    const char *end = s + len - 2; /* before \r\n */
    if (len < 2 || s[len - 2] != '\r')
        return false;
    const char *p = s + 6;
    *key = p;
    while (p < end && *p != ' ')
        p++;
    *klen = (size_t)(p - *key);
    if (p >= end || *klen == 0)
        return false;
    uint64_t *out[2] = {flags, bytes};
    for (int f = 0; f < 2; f++) {
        if (*p++ != ' ' || p >= end || *p < '0' || *p > '9')
            return false;
        uint64_t v = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (v > (UINT64_MAX - 9) / 10)
                return false;
            v = v * 10 + (uint64_t)(*p++ - '0');
        }
        *out[f] = v;
    }
    return p == end || *p == ' ';
}

static enum parse_result parse_get(struct thread_state *t, struct conn *c, uint64_t now)
{
    const struct bench_opts *o = t->o;
    struct pending *pd = &c->pend[c->head];
    const uint64_t *keys = &c->keys[(size_t)c->head * o->multiget];
    for (;;) {
        const char *s = c->rbuf + c->rpos;
        size_t avail = c->rlen - c->rpos;
        if (avail >= 5 && memcmp(s, "END\r\n", 5) == 0) {
            c->rpos += 5;
            complete(t, c, now);
            return PARSE_DONE;
        }
        const char *nl = memchr(s, '\n', avail);
        if (!nl)
            return avail > 2048 ? PARSE_BROKEN : PARSE_MORE;
        size_t len = (size_t)(nl - s) + 1;
        if (len < 6 || memcmp(s, "VALUE ", 6) != 0) {
            /* an error line ends the reply */
            bench_error("get: reply \"%.*s\"", shown_len(s, len), s);
            t->l->st.errors++;
            c->rpos += len;
            complete(t, c, now);
            return PARSE_DONE;
        }
        const char *key;
        size_t klen;
        uint64_t flags, bytes, idx;
        if (!parse_value_line(s, len, &key, &klen, &flags, &bytes) ||
            bytes > DATA_VALUE_MAX) {
            bench_error("get: malformed \"%.*s\"", shown_len(s, len), s);
            return PARSE_BROKEN;
        }
        size_t total = len + (size_t)bytes + 2;
        if (avail < total) {
            if (total > c->rcap) {
                /* grow so the whole block fits; compacting happens before the next read */
                char *nb = realloc(c->rbuf, total + READ_ROOM);
                if (!nb)
                    return PARSE_BROKEN;
                c->rbuf = nb;
                c->rcap = total + READ_ROOM;
            }
            return PARSE_MORE;
        }
        /* A hit must be one of the keys not yet answered, in request order. */
        bool known = data_key_parse(key, klen, o->key_size, &idx);
        while (known && c->next_key < pd->nkeys && keys[c->next_key] != idx)
            c->next_key++;
        if (!known || c->next_key >= pd->nkeys) {
            bench_error("get: unexpected key \"%.*s\"", (int)(klen > 80 ? 80 : klen), key);
            return PARSE_BROKEN;
        }
        c->next_key++;
        const char *data = s + len;
        if (data[bytes] != '\r' || data[bytes + 1] != '\n') {
            bench_error("get %.*s: data block of %llu bytes not followed by \\r\\n",
                        (int)klen, key, (unsigned long long)bytes);
            return PARSE_BROKEN;
        }
        if (flags != data_flags(idx)) {
            bench_error("get %.*s: flags %llu, expected %u", (int)klen, key,
                        (unsigned long long)flags, data_flags(idx));
            t->l->st.errors++;
        } else if (c->verify_head) {
            if (memcmp(data, data_value(idx), bytes) != 0) {
                bench_error("get %.*s: wrong value (%llu bytes)", (int)klen, key,
                            (unsigned long long)bytes);
                t->l->st.errors++;
            }
            if (pd->counted)
                t->l->st.verified++;
        }
        c->got++;
        c->rpos += total;
    }
}

/* Parses every complete reply in the read buffer; false when the stream is broken. */
static bool conn_parse(struct thread_state *t, struct conn *c, uint64_t now)
{
    while (c->count > 0 && c->rpos < c->rlen) {
        struct pending *p = &c->pend[c->head];
        if (p->kind == REQ_GET && c->got == 0 && c->next_key == 0 && t->o->verify_every)
            c->verify_head = (++c->verify_ctr % t->o->verify_every) == 0;
        enum parse_result r =
            p->kind == REQ_GET ? parse_get(t, c, now) : parse_set(t, c, now);
        if (r == PARSE_MORE)
            break;
        if (r == PARSE_BROKEN) {
            t->l->st.errors++;
            return false;
        }
        /* connect-per-request: a get is followed by a set, a set ends the cycle */
        if (t->o->connect_per_req)
            c->step = p->kind == REQ_GET ? CPR_SET : CPR_GET;
    }
    if (c->count == 0 && c->rpos < c->rlen) {
        bench_error("%zu bytes nobody asked for: \"%.*s\"", c->rlen - c->rpos,
                    shown_len(c->rbuf + c->rpos, c->rlen - c->rpos), c->rbuf + c->rpos);
        t->l->st.errors++;
        return false;
    }
    if (c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
    return true;
}

/* connect-per-request: a cycle ended with its set; close and start the next. */
static void cpr_cycle_done(struct thread_state *t, struct conn *c, uint64_t now)
{
    struct loader_stats *st = &t->l->st;
    if (c->cycle_counted) {
        st->conns_done++;
        hist_record(&st->lat, now - c->t_connect);
        if (st->slice_done) {
            hist_record(&st->target_lat[c->target], now - c->t_connect);
            st->target_done[c->target]++;
            st->slice_done[c->cycle_slice]++;
        }
        /* -n counts connections here */
        if (t->o->requests && st->conns_done >= t->l->request_quota && t->measuring)
            t->issuing = false;
    }
    conn_close(t, c);
    if (t->issuing && conn_active(t, c))
        cpr_open(t, c, now);
}

static void conn_event(struct thread_state *t, struct conn *c, uint32_t events)
{
    uint64_t now = bench_now_ns();
    if (t->o->connect_per_req && c->step == CPR_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        t->outstanding--;
        c->connecting = false;
        if (err) {
            bench_error("connect: %s", strerror(err));
            t->l->st.errors++;
            conn_reopen(t, c, now);
            return;
        }
        if (!conn_active(t, c)) { /* its slice ended while connecting: drop the cycle */
            conn_close(t, c);
            return;
        }
        c->step = CPR_GET;
        conn_fill(t, c, now);
        if (!conn_flush(t, c))
            conn_reopen(t, c, now);
        return;
    }
    if (events & EPOLLIN) {
        if (c->rcap - c->rlen < READ_ROOM && c->rpos > 0) {
            memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
            c->rlen -= c->rpos;
            c->rpos = 0;
        }
        ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            bench_error("read: %s", n == 0 ? "server closed the connection" : strerror(errno));
            t->l->st.errors++;
            conn_reopen(t, c, now);
            return;
        }
        c->rlen += (size_t)n;
        t->l->st.bytes_in += (uint64_t)n;
        if (!conn_parse(t, c, now)) {
            conn_reopen(t, c, now);
            return;
        }
        if (t->o->connect_per_req && c->count == 0 && c->step == CPR_GET) {
            cpr_cycle_done(t, c, now);
            return;
        }
        conn_fill(t, c, now);
    } else if (events & (EPOLLERR | EPOLLHUP)) {
        bench_error("connection error or hang-up");
        t->l->st.errors++;
        conn_reopen(t, c, now);
        return;
    }
    if (!conn_flush(t, c)) {
        t->l->st.errors++;
        conn_reopen(t, c, now);
    }
}

/* ---- the thread -------------------------------------------------------------------------- */

static bool thread_setup(struct thread_state *t)
{
    const struct bench_opts *o = t->o;
    struct loader *l = t->l;
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    t->nconns = l->nconns * o->ntargets;
    t->conns = calloc(t->nconns ? t->nconns : 1, sizeof *t->conns);
    if (t->ep < 0 || !t->conns)
        return false;
    if (o->ntargets > 1) {
        l->st.slice_done = calloc(l->nslices, sizeof *l->st.slice_done);
        if (!l->st.slice_done)
            return false;
    }
    uint64_t span = l->key_hi - l->key_lo;
    for (uint32_t n = 0; n < t->nconns; n++) {
        struct conn *c = &t->conns[n];
        uint32_t i = n % l->nconns; /* index among its target's connections */
        c->fd = -1;
        if (!conn_alloc(o, c))
            return false;
        c->target = n / l->nconns;
        c->pre_next = l->key_lo + span * i / l->nconns;
        c->pre_end = l->key_lo + span * (i + 1) / l->nconns;
        if (o->connect_per_req)
            continue; /* opened in the loop */
        c->fd = bench_connect_blocking(c->target);
        if (c->fd < 0) {
            fprintf(stderr, "cached-bench: connect: %s\n", strerror(errno));
            return false;
        }
        fcntl(c->fd, F_SETFL, O_NONBLOCK);
        conn_watch(t, c, EPOLL_CTL_ADD, false);
    }
    return true;
}

/* Moves to the slice that now falls in; when it drives another server, starts that server's
 * connections (the previous server's drain what they have in flight and then wait). */
static void slice_update(struct thread_state *t, uint64_t now)
{
    if (!t->slice_ns)
        return;
    uint64_t s = (now - t->l->start_ns) / t->slice_ns;
    if (s >= t->l->nslices)
        s = t->l->nslices - 1;
    if (s == t->slice)
        return;
    t->slice = (uint32_t)s;
    uint32_t active = (uint32_t)(s % t->o->ntargets);
    if (active == t->active)
        return;
    t->active = active;
    for (uint32_t i = 0; i < t->nconns; i++) {
        struct conn *c = &t->conns[i];
        if (c->target != active || !t->issuing)
            continue;
        if (t->o->connect_per_req) {
            if (c->fd < 0)
                cpr_open(t, c, now);
            continue;
        }
        conn_fill(t, c, now);
        if (!conn_flush(t, c))
            conn_reopen(t, c, now);
    }
}

/* epoll timeout: 10 ms, or less to wake up for the next slice. */
static int wait_ms(const struct thread_state *t, uint64_t now)
{
    if (!t->slice_ns)
        return 10;
    uint64_t next = t->l->start_ns + ((uint64_t)t->slice + 1) * t->slice_ns;
    if (next <= now)
        return 0;
    uint64_t ms = (next - now + 999999) / 1000000;
    return ms < 10 ? (int)ms : 10;
}

static void phase_update(struct thread_state *t, uint64_t now)
{
    if (!t->measuring && t->issuing && now >= t->warm_end) {
        t->measuring = true;
        t->cpu_at_warm_end = thread_cpu();
    }
    if (t->issuing && now >= t->measure_end)
        t->issuing = false;
    if (!t->issuing && t->measuring) {
        t->measuring = false;
        t->l->st.cpu_measured = thread_cpu() - t->cpu_at_warm_end;
    }
}

void *loader_run(void *arg)
{
    struct loader *l = arg;
    const struct bench_opts *o = l->o;
    struct thread_state ts = {.l = l, .o = o, .ep = -1};
    struct thread_state *t = &ts;
    t->rng = o->seed * 0x9e3779b97f4a7c15ull + (uint64_t)l->id * 0x632be59bd9b4e019ull + 1;
    if (!thread_setup(t)) {
        l->failed = 1;
        goto out;
    }
    uint64_t start = l->start_ns ? l->start_ns : bench_now_ns();
    if (o->ntargets > 1 && !o->preload)
        t->slice_ns = (uint64_t)(o->slice * 1e9);
    t->issuing = true;
    t->warm_end = start + (uint64_t)(o->warmup * 1e9);
    t->measure_end = o->duration > 0 ? t->warm_end + (uint64_t)(o->duration * 1e9) : UINT64_MAX;
    phase_update(t, start);
    for (uint32_t i = 0; i < t->nconns; i++) {
        struct conn *c = &t->conns[i];
        if (!conn_active(t, c) && !o->preload)
            continue;
        if (o->connect_per_req) {
            cpr_open(t, c, start);
            continue;
        }
        conn_fill(t, c, start);
        if (!conn_flush(t, c))
            conn_reopen(t, c, start);
    }
    uint64_t drain_deadline = 0;
    struct epoll_event evs[256];
    for (;;) {
        uint64_t now = bench_now_ns();
        phase_update(t, now);
        slice_update(t, now);
        if (o->preload && t->outstanding == 0)
            break;
        if (!t->issuing) {
            if (!drain_deadline) {
                drain_deadline = now + DRAIN_NS;
                /* connect-per-request clients between cycles stop here */
                for (uint32_t i = 0; i < t->nconns; i++) {
                    struct conn *c = &t->conns[i];
                    if (o->connect_per_req && c->count == 0 && c->fd >= 0)
                        conn_close(t, c);
                }
            }
            if (t->outstanding == 0)
                break;
            if (now > drain_deadline) {
                bench_error("%llu requests unanswered %.0f s after the end",
                            (unsigned long long)t->outstanding, DRAIN_NS / 1e9);
                l->st.errors += t->outstanding;
                break;
            }
        }
        /* connect-per-request clients whose connect failed are retried here */
        if (o->connect_per_req && t->issuing)
            for (uint32_t i = 0; i < t->nconns; i++)
                if (t->conns[i].fd < 0 && conn_active(t, &t->conns[i]))
                    cpr_open(t, &t->conns[i], now);
        int n = epoll_wait(t->ep, evs, 256, wait_ms(t, now));
        if (n < 0 && errno != EINTR) {
            bench_error("epoll_wait: %s", strerror(errno));
            l->failed = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd >= 0)
                conn_event(t, c, evs[i].events);
        }
    }
    if (t->measuring) { /* preload and -n runs end here */
        t->measuring = false;
        l->st.cpu_measured = thread_cpu() - t->cpu_at_warm_end;
    }
    if (t->last_done > t->warm_end)
        l->st.measured_s = (double)(t->last_done - t->warm_end) / 1e9;
out:
    l->st.cpu_total = thread_cpu();
    if (t->conns) {
        for (uint32_t i = 0; i < t->nconns; i++)
            conn_free(&t->conns[i]);
        free(t->conns);
    }
    if (t->ep >= 0)
        close(t->ep);
    return NULL;
}
