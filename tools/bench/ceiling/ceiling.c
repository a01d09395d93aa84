/*
 * cached-ceiling: the do-nothing server `make bench` measures beside cached and memcached.
 *
 * It speaks just enough of the text protocol for the bench's workloads and stores nothing:
 * `get k...` answers every key with the value the bench expects for it (cut from the same
 * pattern, tools/bench/data.c, so the bench's verification passes), `set` answers STORED once
 * its data block has arrived, `version` answers VERSION. What remains is the cost every server
 * pays, kernel and event loop; the space between it and cached is work cached does and it
 * does not.
 *
 * Shape: -t threads, each with its own SO_REUSEPORT listener and epoll loop (no hand-off);
 * one read per event, replies gathered in an iovec array (values point into the pattern,
 * never copied) and sent with one writev. Runs until SIGTERM/SIGINT.
 *
 * usage: cached-ceiling -p PORT [-l ADDR] [-t THREADS] [-v VALUE_BYTES] [-K KEY_BYTES]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tools/bench/bench.h"

#define RBUF 65536
#define HDR_BYTES 65536 /* header text of one batch of replies */
#define IOV_BATCH 512

struct opts {
    const char *addr;
    int port;
    int threads;
    uint32_t vsize;
    uint32_t key_size;
};

struct cconn {
    int fd;
    size_t rlen;
    uint64_t swallow; /* set data still to arrive */
    char rbuf[RBUF];
};

struct out {
    struct iovec iov[IOV_BATCH];
    int n;
    char hdr[HDR_BYTES];
    size_t hlen;
};

static struct opts o = {.addr = "127.0.0.1", .threads = 1, .vsize = 100, .key_size = 16};
static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static bool out_flush(struct cconn *c, struct out *w)
{
    int i = 0;
    while (i < w->n) {
        ssize_t n = writev(c->fd, w->iov + i, w->n - i);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (errno != EAGAIN)
                return false;
            /* a bench client reads what it asked for: wait until the socket drains */
            usleep(50);
            continue;
        }
        size_t left = (size_t)n;
        while (i < w->n && left >= w->iov[i].iov_len)
            left -= w->iov[i++].iov_len;
        if (left) {
            w->iov[i].iov_base = (char *)w->iov[i].iov_base + left;
            w->iov[i].iov_len -= left;
        }
    }
    w->n = 0;
    w->hlen = 0;
    return true;
}

static bool out_add(struct cconn *c, struct out *w, const void *p, size_t len, bool copy)
{
    if (w->n == IOV_BATCH || (copy && w->hlen + len > HDR_BYTES))
        if (!out_flush(c, w))
            return false;
    if (copy) {
        memcpy(w->hdr + w->hlen, p, len);
        p = w->hdr + w->hlen;
        w->hlen += len;
        /* adjacent header text joins the previous iovec */
        if (w->n && (char *)w->iov[w->n - 1].iov_base + w->iov[w->n - 1].iov_len == p) {
            w->iov[w->n - 1].iov_len += len;
            return true;
        }
    }
    w->iov[w->n++] = (struct iovec){.iov_base = (void *)p, .iov_len = len};
    return true;
}

/* Answers one get line (without its line end). */
static bool do_get(struct cconn *c, struct out *w, char *p, char *end)
{
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        char *k = p;
        while (p < end && *p != ' ')
            p++;
        if (p == k)
            break;
        uint64_t idx;
        if (!data_key_parse(k, (size_t)(p - k), o.key_size, &idx))
            continue; /* not a bench key: a miss */
        char line[300];
        int n = snprintf(line, sizeof line, "VALUE %.*s %u %u\r\n", (int)(p - k), k,
                         data_flags(idx), o.vsize);
        if (!out_add(c, w, line, (size_t)n, true) ||
            !out_add(c, w, data_value(idx), o.vsize, false) || !out_add(c, w, "\r\n", 2, true))
            return false;
    }
    return out_add(c, w, "END\r\n", 5, true);
}

/* Parses what is buffered; false: close the connection. */
static bool conn_parse(struct cconn *c, struct out *w)
{
    size_t pos = 0;
    while (pos < c->rlen) {
        if (c->swallow) {
            size_t take = c->rlen - pos < c->swallow ? c->rlen - pos : (size_t)c->swallow;
            pos += take;
            c->swallow -= take;
            if (c->swallow == 0 && !out_add(c, w, "STORED\r\n", 8, true))
                return false;
            continue;
        }
        char *line = c->rbuf + pos;
        char *nl = memchr(line, '\n', c->rlen - pos);
        if (!nl)
            break;
        char *end = nl > line && nl[-1] == '\r' ? nl - 1 : nl;
        pos = (size_t)(nl - c->rbuf) + 1;
        if (end - line > 4 && memcmp(line, "get ", 4) == 0) {
            if (!do_get(c, w, line + 4, end))
                return false;
        } else if (end - line > 4 && memcmp(line, "set ", 4) == 0) {
            /* set <key> <flags> <exptime> <bytes>: swallow bytes + 2 */
            char *sp = memrchr(line, ' ', (size_t)(end - line));
            c->swallow = strtoull(sp + 1, NULL, 10) + 2;
        } else if (end - line == 7 && memcmp(line, "version", 7) == 0) {
            if (!out_add(c, w, "VERSION ceiling\r\n", 17, true))
                return false;
        } else if (!out_add(c, w, "ERROR\r\n", 7, true)) {
            return false;
        }
    }
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
    if (c->rlen == RBUF)
        return false; /* a line longer than the buffer */
    return out_flush(c, w);
}

static int listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
    if (fd < 0 || inet_pton(AF_INET, o.addr, &sa.sin_addr) != 1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 1024) != 0) {
        perror("cached-ceiling: listen");
        exit(1);
    }
    return fd;
}

static void *worker(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct out *w = calloc(1, sizeof *w);
    struct epoll_event evs[256];
    while (!stopping) {
        int n = epoll_wait(ep, evs, 256, 200);
        for (int i = 0; i < n; i++) {
            struct cconn *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                /* each accepted nc is owned by the epoll set (freed when its fd closes) */
                // NOLINTNEXTLINE(clang-analyzer-unix.Malloc)
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct cconn *nc = malloc(sizeof *nc);
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    nc->rlen = 0;
                    nc->swallow = 0;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = nc};
                    /* nc is owned by the epoll set from here; freed when its fd closes */
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r > 0) {
                c->rlen += (size_t)r;
                if (conn_parse(c, w))
                    continue;
            }
            w->n = 0;
            w->hlen = 0;
            close(c->fd);
            free(c);
        }
    }
    free(w);
    close(ep);
    return NULL;
}

int main(int argc, char **argv)
{
    int ch;
    while ((ch = getopt(argc, argv, "l:p:t:v:K:")) != -1) {
        switch (ch) {
        case 'l': o.addr = optarg; break;
        case 'p': o.port = (int)strtol(optarg, NULL, 10); break;
        case 't': o.threads = (int)strtol(optarg, NULL, 10); break;
        case 'v': o.vsize = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'K': o.key_size = (uint32_t)strtoul(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: cached-ceiling -p PORT [-l ADDR] [-t N] [-v BYTES] "
                            "[-K KEY_BYTES]\n");
            return 2;
        }
    }
    if (o.port <= 0 || o.threads < 1 || o.threads > 64 || o.vsize > DATA_VALUE_MAX ||
        o.key_size < 2 || o.key_size > DATA_KEY_MAX) {
        fprintf(stderr, "cached-ceiling: bad options\n");
        return 2;
    }
    if (!data_setup())
        return 1;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pthread_t tids[64];
    for (int i = 0; i < o.threads; i++)
        pthread_create(&tids[i], NULL, worker, (void *)(intptr_t)listener());
    for (int i = 0; i < o.threads; i++)
        pthread_join(tids[i], NULL);
    data_teardown();
    return 0;
}
