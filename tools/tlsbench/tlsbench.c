/*
 * cached-tlsbench: TLS load against two servers at once, alternating between them in short
 * slices within one run (so the shared machine's drifts hit both alike), for BENCHMARKS.md.
 *
 *   cached-tlsbench MODE PORT_A PORT_B [-t threads] [-s seconds] [-S slice_s] [-c conns]
 *                   [-d depth] [-k keys] [-v value_bytes]
 *
 * MODE
 *   full       connect, full handshake, one request (mn), close: handshakes/s
 *   resumed    the same, offering the last session (TLS 1.3 ticket): resumed handshakes/s
 *   get        depth-1 gets of one key per request on -c connections per thread
 *   pipeline   -d gets in one write (default 16)
 *   multiget   one get of -d keys (default 10)
 *   storm      thread 0 sends a get every 0.5 ms on an established connection and records its
 *              latency; the other threads reconnect with full handshakes as fast as they can.
 * Prints per server: operations/s (and p50/p99/p99.9 in storm), the ratio A/B of the totals
 * and the median of the per-round ratios. Blocking sockets, one thread per -t, loopback only.
 * With TLSBENCH_PIDS="PID_A PID_B" in the environment it also prints each server's CPU time
 * (user + system, /proc/PID/stat) per operation over the measured rounds: a figure the
 * machine's load changes much less than a rate; and the part of it spent on the threads that
 * serve established connections (threads named *-worker: memcached's mc-worker, cached's
 * cached-worker), which in storm mode tells how much handshake work shares their threads.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { M_FULL, M_RESUMED, M_GET, M_PIPELINE, M_MULTIGET, M_STORM };

static enum mode mode;
static int ports[2];
static int nthreads = 2, nconns = 1, depth = 0, nkeys = 1000, vsize = 100;
static double seconds = 6, slice = 0.25;
static SSL_CTX *cctx;
static _Atomic int active = 0; /* server being loaded now */
static _Atomic bool stop;
static _Atomic uint64_t ops[2], fails[2], unresumed[2];

#define LAT_MAX 200000
static double *lat[2];
static size_t nlat[2];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct tconn {
    int fd;
    SSL *ssl;
    char buf[1 << 17];
    size_t len;
};

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool tls_open(struct tconn *c, int port, SSL_SESSION *sess)
{
    c->len = 0;
    c->fd = tcp_connect(port);
    if (c->fd < 0)
        return false;
    c->ssl = SSL_new(cctx);
    SSL_set_fd(c->ssl, c->fd);
    if (sess != NULL)
        SSL_set_session(c->ssl, sess);
    if (SSL_connect(c->ssl) != 1) {
        ERR_clear_error();
        SSL_free(c->ssl);
        close(c->fd);
        c->ssl = NULL;
        return false;
    }
    return true;
}

static void tls_close(struct tconn *c)
{
    if (c->ssl != NULL) {
        /* Without this SSL_free marks the session not resumable (no close_notify is sent:
         * like most cache clients, we just close). */
        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(c->ssl);
    }
    if (c->fd >= 0)
        close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
}

static bool send_all(struct tconn *c, const char *p, size_t n)
{
    while (n > 0) {
        int w = SSL_write(c->ssl, p, (int)n);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads until `term` has been seen `count` times; the buffer is then emptied. */
static bool read_until(struct tconn *c, const char *term, int count)
{
    size_t tl = strlen(term);
    int seen = 0;
    size_t scan = 0;
    c->len = 0;
    while (seen < count) {
        if (c->len == sizeof c->buf) { /* keep the tail only */
            memmove(c->buf, c->buf + c->len - tl, tl);
            c->len = tl;
            scan = 0;
        }
        int r = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof c->buf - c->len));
        if (r <= 0)
            return false;
        c->len += (size_t)r;
        while (scan + tl <= c->len) {
            char *hit = memmem(c->buf + scan, c->len - scan, term, tl);
            if (hit == NULL) {
                scan = c->len >= tl ? c->len - tl + 1 : 0;
                break;
            }
            seen++;
            scan = (size_t)(hit - c->buf) + tl;
        }
    }
    return true;
}

static void preload(int port)
{
    struct tconn c;
    if (!tls_open(&c, port, NULL)) {
        fprintf(stderr, "cannot connect to %d\n", port);
        exit(1);
    }
    char *val = malloc((size_t)vsize + 64);
    memset(val, 'v', (size_t)vsize);
    for (int k = 0; k < nkeys; k++) {
        char hdr[64];
        int n = snprintf(hdr, sizeof hdr, "set key:%d 0 0 %d noreply\r\n", k, vsize);
        send_all(&c, hdr, (size_t)n);
        send_all(&c, val, (size_t)vsize);
        send_all(&c, "\r\n", 2);
    }
    send_all(&c, "mn\r\n", 4);
    read_until(&c, "MN\r\n", 1);
    tls_close(&c);
    free(val);
}

static void handshake_loop(unsigned seed, bool resume)
{
    SSL_SESSION *sess[2] = {NULL, NULL};
    (void)seed;
    while (!atomic_load(&stop)) {
        int s = atomic_load(&active);
        struct tconn *c = malloc(sizeof *c);
        bool ok = tls_open(c, ports[s], resume ? sess[s] : NULL) &&
                  send_all(c, "mn\r\n", 4) && read_until(c, "MN\r\n", 1);
        bool reused = ok && SSL_session_reused(c->ssl);
        if (ok && resume) {
            /* TLS 1.3 sessions are single-use: keep the newest ticket, as clients do. */
            if (sess[s] != NULL)
                SSL_SESSION_free(sess[s]);
            sess[s] = SSL_get1_session(c->ssl);
        }
        if (ok && (!resume || reused))
            atomic_fetch_add(&ops[s], 1);
        else if (ok)
            atomic_fetch_add(&unresumed[s], 1);
        else
            atomic_fetch_add(&fails[s], 1);
        tls_close(c);
        free(c);
    }
    for (int s = 0; s < 2; s++)
        if (sess[s] != NULL)
            SSL_SESSION_free(sess[s]);
}

static size_t build_request(char *out, size_t cap, unsigned *seed, int *replies)
{
    size_t n = 0;
    if (mode == M_MULTIGET) {
        n += (size_t)snprintf(out + n, cap - n, "get");
        for (int i = 0; i < depth; i++)
            n += (size_t)snprintf(out + n, cap - n, " key:%d", rand_r(seed) % nkeys);
        n += (size_t)snprintf(out + n, cap - n, "\r\n");
        *replies = 1;
        return n;
    }
    int d = mode == M_PIPELINE ? depth : 1;
    for (int i = 0; i < d; i++)
        n += (size_t)snprintf(out + n, cap - n, "get key:%d\r\n", rand_r(seed) % nkeys);
    *replies = d;
    return n;
}

static void get_loop(unsigned seed)
{
    struct tconn *c[2];
    for (int s = 0; s < 2; s++) {
        c[s] = calloc((size_t)nconns, sizeof(struct tconn));
        for (int i = 0; i < nconns; i++)
            if (!tls_open(&c[s][i], ports[s], NULL)) {
                fprintf(stderr, "connect failed\n");
                exit(1);
            }
    }
    char req[4096];
    int i = 0;
    while (!atomic_load(&stop)) {
        int s = atomic_load(&active), replies;
        size_t n = build_request(req, sizeof req, &seed, &replies);
        struct tconn *t = &c[s][i++ % nconns];
        if (send_all(t, req, n) && read_until(t, "END\r\n", replies))
            atomic_fetch_add(&ops[s], (uint64_t)replies);
        else
            atomic_fetch_add(&fails[s], 1);
    }
    for (int s = 0; s < 2; s++) {
        for (int k = 0; k < nconns; k++)
            tls_close(&c[s][k]);
        free(c[s]);
    }
}

/* storm thread 0: paced gets on one established connection per server. */
static void probe_loop(void)
{
    struct tconn *c[2];
    for (int s = 0; s < 2; s++) {
        c[s] = calloc(1, sizeof(struct tconn));
        if (!tls_open(c[s], ports[s], NULL)) {
            fprintf(stderr, "connect failed\n");
            exit(1);
        }
    }
    while (!atomic_load(&stop)) {
        int s = atomic_load(&active);
        double t0 = now_s();
        if (send_all(c[s], "get key:1\r\n", 11) && read_until(c[s], "END\r\n", 1)) {
            if (nlat[s] < LAT_MAX)
                lat[s][nlat[s]++] = now_s() - t0;
            atomic_fetch_add(&ops[s], 1);
        }
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
    for (int s = 0; s < 2; s++) {
        tls_close(c[s]);
        free(c[s]);
    }
}

static void *thread_main(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    switch (mode) {
    case M_FULL:
        handshake_loop(id, false);
        break;
    case M_RESUMED:
        handshake_loop(id, true);
        break;
    case M_STORM:
        if (id == 0)
            probe_loop();
        else
            handshake_loop(id, false);
        break;
    default:
        get_loop(id * 7919u + 1);
    }
    return NULL;
}

/* utime + stime of /proc/<what>/stat (a process, or "PID/task/TID"), in seconds; -1 when
 * unknown. */
static double cpu_s_path(const char *what)
{
    char path[320], buf[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", what);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut, st;
    /* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime */
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
                            &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double cpu_s(int pid)
{
    char what[32];
    snprintf(what, sizeof what, "%d", pid);
    return cpu_s_path(what);
}

/* The same, summed over the threads whose name ends in "-worker". */
static double worker_cpu_s(int pid)
{
    char path[300], comm[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    double sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%s/comm", pid, e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(comm, 1, sizeof comm - 1, f);
        fclose(f);
        comm[n] = '\0';
        comm[strcspn(comm, "\n")] = '\0';
        size_t len = strlen(comm);
        if (len < 7 || strcmp(comm + len - 7, "-worker") != 0)
            continue;
        snprintf(path, sizeof path, "%d/task/%s", pid, e->d_name);
        double c = cpu_s_path(path);
        if (c > 0)
            sum += c;
    }
    closedir(d);
    return sum;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(int s, double p)
{
    if (nlat[s] == 0)
        return 0;
    size_t i = (size_t)(p * (double)(nlat[s] - 1));
    return lat[s][i] * 1e3;
}

int main(int argc, char **argv)
{
    static const char *names[] = {"full", "resumed", "get", "pipeline", "multiget", "storm"};
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODE PORT_A PORT_B [-t N] [-s SECS] [-S SLICE] [-c CONNS] "
                        "[-d DEPTH] [-k KEYS] [-v BYTES]\n", argv[0]);
        return 64;
    }
    int m = -1;
    for (int i = 0; i < 6; i++)
        if (strcmp(argv[1], names[i]) == 0)
            m = i;
    if (m < 0) {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 64;
    }
    mode = (enum mode)m;
    ports[0] = atoi(argv[2]);
    ports[1] = atoi(argv[3]);
    for (int i = 4; i + 1 < argc; i += 2) {
        const char *f = argv[i], *v = argv[i + 1];
        if (!strcmp(f, "-t")) nthreads = atoi(v);
        else if (!strcmp(f, "-s")) seconds = atof(v);
        else if (!strcmp(f, "-S")) slice = atof(v);
        else if (!strcmp(f, "-c")) nconns = atoi(v);
        else if (!strcmp(f, "-d")) depth = atoi(v);
        else if (!strcmp(f, "-k")) nkeys = atoi(v);
        else if (!strcmp(f, "-v")) vsize = atoi(v);
    }
    if (depth == 0)
        depth = mode == M_MULTIGET ? 10 : 16;
    cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    lat[0] = malloc(LAT_MAX * sizeof(double));
    lat[1] = malloc(LAT_MAX * sizeof(double));
    if (mode >= M_GET && mode != M_STORM) {
        preload(ports[0]);
        preload(ports[1]);
    } else if (mode == M_STORM) {
        nkeys = 2;
        preload(ports[0]);
        preload(ports[1]);
    }

    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, thread_main, (void *)(uintptr_t)i);
    usleep(300000); /* warm-up: connections made, first sessions saved */
    int pids[2] = {0, 0};
    double cpu0[2] = {-1, -1}, wcpu0[2] = {-1, -1};
    uint64_t ops0[2];
    const char *pe = getenv("TLSBENCH_PIDS");
    if (pe != NULL && sscanf(pe, "%d %d", &pids[0], &pids[1]) == 2)
        for (int s = 0; s < 2; s++) {
            cpu0[s] = cpu_s(pids[s]);
            wcpu0[s] = worker_cpu_s(pids[s]);
        }
    for (int s = 0; s < 2; s++)
        ops0[s] = atomic_load(&ops[s]);

    int rounds = (int)(seconds / (2 * slice));
    double *ratio = calloc((size_t)rounds, sizeof *ratio), busy[2] = {0, 0};
    uint64_t total[2] = {0, 0};
    for (int r = 0; r < rounds; r++) {
        uint64_t got[2];
        for (int s = (r & 1); s < 2 + (r & 1); s++) { /* ABBA: alternate who goes first */
            int k = s & 1;
            atomic_store(&active, k);
            uint64_t before = atomic_load(&ops[k]);
            double t0 = now_s();
            usleep((useconds_t)(slice * 1e6));
            got[k] = atomic_load(&ops[k]) - before;
            busy[k] += now_s() - t0;
            total[k] += got[k];
        }
        ratio[r] = got[1] ? (double)got[0] / (double)got[1] : 0;
    }
    double cpu_per_op[2] = {0, 0}, wcpu_per_op[2] = {0, 0};
    for (int s = 0; s < 2; s++) {
        uint64_t done = atomic_load(&ops[s]) - ops0[s];
        double c = cpu0[s] >= 0 ? cpu_s(pids[s]) : -1;
        double wc = wcpu0[s] >= 0 ? worker_cpu_s(pids[s]) : -1;
        if (c >= 0 && done > 0)
            cpu_per_op[s] = (c - cpu0[s]) / (double)done;
        if (wc >= 0 && done > 0)
            wcpu_per_op[s] = (wc - wcpu0[s]) / (double)done;
    }
    atomic_store(&stop, true);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    qsort(ratio, (size_t)rounds, sizeof *ratio, cmp_d);
    printf("mode %s threads %d rounds %d slice %.2fs\n", names[m], nthreads, rounds, slice);
    for (int s = 0; s < 2; s++) {
        printf("server %c (port %d): %.0f ops/s, %llu failures", s ? 'B' : 'A', ports[s],
               (double)total[s] / busy[s], (unsigned long long)atomic_load(&fails[s]));
        if (mode == M_RESUMED)
            printf(", %llu not resumed", (unsigned long long)atomic_load(&unresumed[s]));
        if (mode == M_STORM) {
            qsort(lat[s], nlat[s], sizeof(double), cmp_d);
            printf(", probe gets %zu: p50 %.3f ms p99 %.3f ms p99.9 %.3f ms", nlat[s],
                   pct(s, 0.5), pct(s, 0.99), pct(s, 0.999));
        }
        if (cpu_per_op[s] > 0)
            printf(", server CPU %.1f us/op (worker threads %.1f)", cpu_per_op[s] * 1e6,
                   wcpu_per_op[s] * 1e6);
        printf("\n");
    }
    printf("ratio A/B: totals %.2f, median of rounds %.2f\n",
           total[1] ? ((double)total[0] / busy[0]) / ((double)total[1] / busy[1]) : 0,
           ratio[rounds / 2]);
    return 0;
}
