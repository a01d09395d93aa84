/*
 * cached-bench main: options, the server address, idle connections, the loader threads and
 * the report. Exit status: 0 clean run, 1 any error (wrong reply, failed connection),
 * 2 usage or setup failure.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define ERRORS_SHOWN 10

struct bench_addr bench_addrs[BENCH_TARGETS_MAX];
static atomic_uint errors_reported;

void bench_error(const char *fmt, ...)
{
    unsigned n = atomic_fetch_add(&errors_reported, 1);
    if (n >= ERRORS_SHOWN) {
        if (n == ERRORS_SHOWN)
            fprintf(stderr, "cached-bench: further errors are counted, not shown\n");
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cached-bench: error: %s\n", msg);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cached-bench [options]\n"
            "  -s HOST        server address (default 127.0.0.1)\n"
            "  -p PORT[,PORT...]  server port (default 11211); several ports: alternate the\n"
            "                 servers in slices (below) within this one run\n"
            "  --slice SEC    alternating: seconds per slice (default 0.1); reported per\n"
            "                 server: the median over rounds of its slice's rate divided by\n"
            "                 the mean of the first server's slices around it\n"
            "  -U PATH        unix socket instead of TCP\n"
            "  -c N           active connections (default 50)\n"
            "  -T N           loader threads (default 1)\n"
            "  -d N           pipeline depth: requests in flight per connection (default 1)\n"
            "  -m N           keys per get (default 1)\n"
            "  -k N           key space: keys 0..N-1 (default 100000)\n"
            "  -K N           key size in bytes (default 16)\n"
            "  -v N | N-M     value size, fixed or uniform in [N, M] (default 100)\n"
            "  -r G:S         get:set ratio (default 1:0)\n"
            "  -w SEC         warm-up seconds, not counted (default 1)\n"
            "  -D SEC         counted seconds (default 10; 0 with -n: until -n requests)\n"
            "  -n N           stop after N counted requests (connections with\n"
            "                 --connect-per-request)\n"
            "  -V N           verify the data of one get reply in N (default 8; 0 never;\n"
            "                 keys and flags of every reply are always checked)\n"
            "  --idle N       hold N idle connections open for the run\n"
            "  --preload      set every key once (pipelined at depth -d), then exit\n"
            "  --connect-per-request  each of -c clients loops: connect, one get of -m keys,\n"
            "                 one set, close (the Django pattern); figure: connections/s\n"
            "  --seed N       random seed (default 1)\n"
            "  --label TEXT   copied into the RESULT line\n"
            "  -q             print only the RESULT line\n"
            "The last line is machine-readable: RESULT key=value ...\n");
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v;
    if (!parse_u64(s, min, max, &v))
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool parse_seconds(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0) || v > 86400)
        return false;
    *out = v;
    return true;
}

static bool parse_range(const char *s, uint32_t *lo, uint32_t *hi)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *dash = strchr(buf, '-');
    if (dash)
        *dash = '\0';
    if (!parse_u32(buf, 1, DATA_VALUE_MAX, lo))
        return false;
    if (!dash) {
        *hi = *lo;
        return true;
    }
    return parse_u32(dash + 1, *lo, DATA_VALUE_MAX, hi);
}

static bool parse_ratio(const char *s, double *get_fraction)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *colon = strchr(buf, ':');
    if (!colon)
        return false;
    *colon = '\0';
    uint64_t g, st;
    if (!parse_u64(buf, 0, 1000000, &g) || !parse_u64(colon + 1, 0, 1000000, &st) || g + st == 0)
        return false;
    *get_fraction = (double)g / (double)(g + st);
    return true;
}

/* -p P1,P2,...: fills o->ports (o->port stays the whole text, for the report). */
static bool split_ports(struct bench_opts *o)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s", o->port);
    o->ntargets = 0;
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (o->ntargets == BENCH_TARGETS_MAX) {
            fprintf(stderr, "cached-bench: at most %d ports\n", BENCH_TARGETS_MAX);
            return false;
        }
        o->ports[o->ntargets++] = p;
    }
    if (o->ntargets == 0 || (o->ntargets > 1 && o->unix_path)) {
        fprintf(stderr, "cached-bench: -p needs a port (several only over TCP)\n");
        return false;
    }
    return true;
}

enum { OPT_IDLE = 256, OPT_PRELOAD, OPT_CPR, OPT_SEED, OPT_LABEL, OPT_SLICE, OPT_HELP };

static int parse_options(int argc, char **argv, struct bench_opts *o)
{
    static const struct option longopts[] = {
        {"idle", required_argument, NULL, OPT_IDLE},
        {"preload", no_argument, NULL, OPT_PRELOAD},
        {"connect-per-request", no_argument, NULL, OPT_CPR},
        {"seed", required_argument, NULL, OPT_SEED},
        {"label", required_argument, NULL, OPT_LABEL},
        {"slice", required_argument, NULL, OPT_SLICE},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    *o = (struct bench_opts){
        .host = "127.0.0.1", .port = "11211", .conns = 50, .threads = 1, .depth = 1,
        .multiget = 1, .keyspace = 100000, .key_size = 0, .vmin = 100, .vmax = 100,
        .get_ratio = 1.0, .warmup = 1, .duration = 10, .verify_every = 8, .seed = 1,
        .label = "", .slice = 0.1,
    };
    bool duration_given = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "s:p:U:c:T:d:m:k:K:v:r:w:D:n:V:qh", longopts, NULL)) !=
           -1) {
        bool ok = true;
        switch (ch) {
        case 's': o->host = optarg; break;
        case 'p': o->port = optarg; break;
        case 'U': o->unix_path = optarg; break;
        case 'c': ok = parse_u32(optarg, 1, 100000, &o->conns); break;
        case 'T': ok = parse_u32(optarg, 1, 256, &o->threads); break;
        case 'd': ok = parse_u32(optarg, 1, 4096, &o->depth); break;
        case 'm': ok = parse_u32(optarg, 1, 1000, &o->multiget); break;
        case 'k': ok = parse_u64(optarg, 1, 10000000000000000000ull, &o->keyspace); break;
        case 'K': ok = parse_u32(optarg, 2, DATA_KEY_MAX, &o->key_size); break;
        case 'v': ok = parse_range(optarg, &o->vmin, &o->vmax); break;
        case 'r': ok = parse_ratio(optarg, &o->get_ratio); break;
        case 'w': ok = parse_seconds(optarg, &o->warmup); break;
        case 'D': ok = parse_seconds(optarg, &o->duration); duration_given = true; break;
        case 'n': ok = parse_u64(optarg, 1, UINT64_MAX, &o->requests); break;
        case 'V': ok = parse_u32(optarg, 0, UINT32_MAX, &o->verify_every); break;
        case 'q': o->quiet = true; break;
        case OPT_IDLE: ok = parse_u32(optarg, 0, 1000000, &o->idle); break;
        case OPT_PRELOAD: o->preload = true; break;
        case OPT_CPR: o->connect_per_req = true; break;
        case OPT_SEED: ok = parse_u64(optarg, 0, UINT64_MAX, &o->seed); break;
        case OPT_LABEL: o->label = optarg; break;
        case OPT_SLICE: ok = parse_seconds(optarg, &o->slice) && o->slice >= 0.005; break;
        case 'h':
        case OPT_HELP: usage(stdout); exit(0);
        default: usage(stderr); return 2;
        }
        if (!ok) {
            fprintf(stderr, "cached-bench: bad value for -%c: %s\n", ch < 256 ? ch : '-',
                    optarg);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (!split_ports(o))
        return 2;
    uint32_t kmin = data_key_size_min(o->keyspace);
    if (o->key_size == 0)
        o->key_size = kmin > 16 ? kmin : 16;
    if (o->key_size < kmin) {
        fprintf(stderr, "cached-bench: -K %u cannot hold %llu keys (needs %u)\n", o->key_size,
                (unsigned long long)o->keyspace, kmin);
        return 2;
    }
    if (o->requests && !duration_given)
        o->duration = 0;
    if (o->duration == 0 && !o->requests && !o->preload) {
        fprintf(stderr, "cached-bench: -D 0 needs -n\n");
        return 2;
    }
    if (o->threads > o->conns)
        o->threads = o->conns;
    if (o->connect_per_req)
        o->depth = 1;
    if (o->preload) {
        o->warmup = 0;
        o->duration = 0;
        o->requests = 0;
        o->get_ratio = 0;
    }
    return 0;
}

static bool resolve(const struct bench_opts *o, uint32_t t)
{
    struct bench_addr *bench_addr = &bench_addrs[t];
    if (o->unix_path) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        if (strlen(o->unix_path) >= sizeof un.sun_path) {
            fprintf(stderr, "cached-bench: unix socket path too long\n");
            return false;
        }
        strcpy(un.sun_path, o->unix_path);
        bench_addr->family = AF_UNIX;
        bench_addr->socktype = SOCK_STREAM;
        bench_addr->protocol = 0;
        bench_addr->addrlen = sizeof un;
        memcpy(bench_addr->addr, &un, sizeof un);
        return true;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(o->host, o->ports[t], &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "cached-bench: %s:%s: %s\n", o->host, o->ports[t], gai_strerror(rc));
        return false;
    }
    bench_addr->family = res->ai_family;
    bench_addr->socktype = res->ai_socktype;
    bench_addr->protocol = res->ai_protocol;
    bench_addr->addrlen = (unsigned)res->ai_addrlen;
    memcpy(bench_addr->addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return true;
}

static void raise_fd_limit(uint64_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Opens the idle connections and proves each is served (a `version` round trip), so the
 * server really holds them while the load runs. Returns how many failed. */
static unsigned open_idle(uint32_t n, uint32_t ntargets, int *fds)
{
    unsigned failed = 0;
    n *= ntargets; /* every server holds its own idle connections */
    for (uint32_t i = 0; i < n; i++) {
        fds[i] = bench_connect_blocking(i % ntargets);
        if (fds[i] < 0) {
            bench_error("idle connection %u: %s", i, strerror(errno));
            failed++;
            continue;
        }
        if (write(fds[i], "version\r\n", 9) != 9) {
            bench_error("idle connection %u: write failed", i);
            failed++;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (fds[i] < 0)
            continue;
        struct pollfd pfd = {.fd = fds[i], .events = POLLIN};
        char buf[128];
        ssize_t r = poll(&pfd, 1, 5000) == 1 ? read(fds[i], buf, sizeof buf) : -1;
        if (r < 8 || memcmp(buf, "VERSION ", 8) != 0) {
            bench_error("idle connection %u: no VERSION reply", i);
            failed++;
        }
    }
    return failed;
}

static void report(const struct bench_opts *o, struct loader *ls, double wall_s,
                   unsigned idle_failed)
{
    struct loader_stats sum = {0};
    double rate = 0, krate = 0, crate = 0, elapsed = 0;
    for (uint32_t i = 0; i < o->threads; i++) {
        struct loader_stats *s = &ls[i].st;
        sum.gets += s->gets;
        sum.sets += s->sets;
        sum.get_keys += s->get_keys;
        sum.hits += s->hits;
        sum.verified += s->verified;
        sum.errors += s->errors;
        sum.conns_done += s->conns_done;
        sum.bytes_in += s->bytes_in;
        sum.bytes_out += s->bytes_out;
        sum.cpu_measured += s->cpu_measured;
        sum.cpu_total += s->cpu_total;
        hist_merge(&sum.lat, &s->lat);
        if (s->measured_s > 0) {
            rate += (double)(s->gets + s->sets) / s->measured_s;
            krate += (double)(s->get_keys) / s->measured_s;
            crate += (double)s->conns_done / s->measured_s;
        }
        if (s->measured_s > elapsed)
            elapsed = s->measured_s;
    }
    sum.errors += idle_failed;
    double hit = sum.get_keys ? 100.0 * (double)sum.hits / (double)sum.get_keys : 0;
    double p50 = (double)hist_quantile(&sum.lat, 0.50) / 1e3;
    double p99 = (double)hist_quantile(&sum.lat, 0.99) / 1e3;
    double p999 = (double)hist_quantile(&sum.lat, 0.999) / 1e3;
    double pmax = (double)sum.lat.max_ns / 1e3;
    const char *mode = o->preload ? "preload" : o->connect_per_req ? "connect-per-request" : "load";
    if (!o->quiet) {
        printf("cached-bench %s: %s%s%s, %u conns on %u thread%s, depth %u, %u key%s per get, "
               "get %.0f%%, %llu keys of %u B, values %u",
               mode, o->unix_path ? o->unix_path : o->host, o->unix_path ? "" : ":",
               o->unix_path ? "" : o->port, o->conns, o->threads, o->threads > 1 ? "s" : "",
               o->depth, o->multiget, o->multiget > 1 ? "s" : "", o->get_ratio * 100,
               (unsigned long long)o->keyspace, o->key_size, o->vmin);
        if (o->vmax != o->vmin)
            printf("-%u", o->vmax);
        printf(" B\n");
        if (o->idle)
            printf("  idle conns  %u held open (%u failed)\n", o->idle, idle_failed);
        printf("  requests    %llu in %.2f s: %.0f req/s (gets %llu, sets %llu; %.0f keys/s)\n",
               (unsigned long long)(sum.gets + sum.sets), elapsed, rate,
               (unsigned long long)sum.gets, (unsigned long long)sum.sets, krate);
        if (o->connect_per_req)
            printf("  connections %llu: %.0f conn/s (each: connect, get, set, close)\n",
                   (unsigned long long)sum.conns_done, crate);
        printf("  hit rate    %.2f%% of %llu keys\n", hit, (unsigned long long)sum.get_keys);
        printf("  latency     p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us (%s)\n", p50,
               p99, p999, pmax, o->connect_per_req ? "per connection cycle" : "per request");
        printf("  verified    %llu values byte for byte; errors %llu\n",
               (unsigned long long)sum.verified, (unsigned long long)sum.errors);
        printf("  loader CPU  %.2f s in the measured window (%.0f%% of one core), "
               "%.2f s in %.2f s overall\n",
               sum.cpu_measured, elapsed > 0 ? 100 * sum.cpu_measured / elapsed : 0,
               sum.cpu_total, wall_s);
    }
    printf("RESULT label=%s mode=%s ops_per_sec=%.0f keys_per_sec=%.0f conns_per_sec=%.0f "
           "hit_rate=%.4f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f requests=%llu "
           "verified=%llu errors=%llu elapsed_s=%.3f cpu_s=%.3f cpu_total_s=%.3f wall_s=%.3f\n",
           o->label[0] ? o->label : "-", mode, rate, krate, crate, hit / 100, p50, p99, p999,
           pmax, (unsigned long long)(sum.gets + sum.sets), (unsigned long long)sum.verified,
           (unsigned long long)sum.errors, elapsed, sum.cpu_measured, sum.cpu_total, wall_s);
    fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The value at quantile q of n sorted values (nearest rank). */
static double sorted_at(const double *v, size_t n, double q)
{
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/*
 * Alternating runs: one line per server. A round is ntargets consecutive slices (server 0
 * first); server k's ratio in round r is its slice's count over the mean of server 0's slices
 * of rounds r and r+1, so a drift within the round cancels. Only slices wholly inside the
 * measured window count. Printed: median ratio, p10..p90 and min..max over the rounds, its
 * own rate (over its own slices) and latency.
 */
static void report_alternation(const struct bench_opts *o, struct loader *ls, uint32_t nslices)
{
    uint64_t *done = calloc(nslices, sizeof *done);
    double *ratios = calloc(nslices, sizeof *ratios);
    if (!done || !ratios) {
        free(done);
        free(ratios);
        return;
    }
    struct hist lat[BENCH_TARGETS_MAX] = {0};
    for (uint32_t i = 0; i < o->threads; i++) {
        for (uint32_t s = 0; s < nslices; s++)
            done[s] += ls[i].st.slice_done[s];
        for (uint32_t k = 0; k < o->ntargets; k++)
            hist_merge(&lat[k], &ls[i].st.target_lat[k]);
    }
    uint32_t n = o->ntargets ? o->ntargets : 1;
    /* first and last slice wholly in the measured window, rounded to whole rounds */
    uint32_t first = (uint32_t)((o->warmup + o->slice - 1e-9) / o->slice);
    first = (first + n - 1) / n * n;
    uint32_t end = (uint32_t)((o->warmup + o->duration) / o->slice + 1e-9); /* exclusive */
    uint32_t rounds = end > first ? (end - first) / n : 0;
    for (uint32_t k = 0; k < n; k++) {
        size_t nr = 0;
        uint64_t own = 0, own_slices = 0;
        for (uint32_t r = 0; r < rounds; r++) {
            uint32_t s = first + r * n;
            own += done[s + k];
            own_slices++;
            if (r + 1 >= rounds)
                continue;
            double base = ((double)done[s] + (double)done[s + n]) / 2;
            if (base > 0)
                ratios[nr++] = (double)done[s + k] / base;
        }
        qsort(ratios, nr, sizeof *ratios, cmp_double);
        double rate = own_slices ? (double)own / ((double)own_slices * o->slice) : 0;
        printf("ALT target=%u port=%s rate=%.0f ratio_median=%.3f ratio_p10=%.3f "
               "ratio_p90=%.3f ratio_min=%.3f ratio_max=%.3f rounds=%zu p50_us=%.1f "
               "p99_us=%.1f\n",
               k, o->ports[k], rate, nr ? sorted_at(ratios, nr, 0.5) : 0,
               nr ? sorted_at(ratios, nr, 0.1) : 0, nr ? sorted_at(ratios, nr, 0.9) : 0,
               nr ? ratios[0] : 0, nr ? ratios[nr - 1] : 0, nr,
               (double)hist_quantile(&lat[k], 0.50) / 1e3,
               (double)hist_quantile(&lat[k], 0.99) / 1e3);
    }
    fflush(stdout);
    free(done);
    free(ratios);
}

int main(int argc, char **argv)
{
    struct bench_opts o;
    int rc = parse_options(argc, argv, &o);
    if (rc)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    bool resolved = true;
    for (uint32_t t = 0; t < o.ntargets; t++)
        resolved = resolved && resolve(&o, t);
    if (!resolved || !data_setup()) {
        fprintf(stderr, "cached-bench: setup failed\n");
        return 2;
    }
    raise_fd_limit(((uint64_t)o.conns + o.idle) * o.ntargets);

    int *idle_fds = NULL;
    unsigned idle_failed = 0;
    if (o.idle) {
        idle_fds = calloc((size_t)o.idle * (o.ntargets ? o.ntargets : 1), sizeof *idle_fds);
        if (!idle_fds)
            return 2;
        idle_failed = open_idle(o.idle, o.ntargets, idle_fds);
    }

    struct loader *ls = calloc(o.threads, sizeof *ls);
    pthread_t *tids = calloc(o.threads, sizeof *tids);
    if (!ls || !tids) {
        free(ls);
        free(tids);
        free(idle_fds);
        return 2;
    }
    uint64_t t0 = bench_now_ns();
    uint32_t nslices = 0;
    if (o.ntargets > 1 && !o.preload)
        nslices = (uint32_t)((o.warmup + o.duration) / o.slice) + 2;
    for (uint32_t i = 0; i < o.threads; i++) {
        struct loader *l = &ls[i];
        l->id = (int)i;
        l->o = &o;
        l->start_ns = t0;
        l->nslices = nslices;
        l->nconns = o.conns / o.threads + (i < o.conns % o.threads);
        l->key_lo = o.keyspace * i / o.threads;
        l->key_hi = o.keyspace * (i + 1) / o.threads;
        l->request_quota = o.requests / o.threads + (i < o.requests % o.threads);
        if (pthread_create(&tids[i], NULL, loader_run, l) != 0) {
            fprintf(stderr, "cached-bench: pthread_create failed\n");
            exit(2); /* loaders already running: no orderly teardown to do */
        }
    }
    bool failed = false;
    for (uint32_t i = 0; i < o.threads; i++) {
        pthread_join(tids[i], NULL);
        failed |= ls[i].failed != 0;
    }
    double wall = (double)(bench_now_ns() - t0) / 1e9;
    uint64_t errors = idle_failed;
    if (failed)
        fprintf(stderr, "cached-bench: a loader thread could not start (see above)\n");
    else
        report(&o, ls, wall, idle_failed);
    if (!failed && nslices)
        report_alternation(&o, ls, nslices);
    for (uint32_t i = 0; i < o.threads; i++)
        errors += ls[i].st.errors;
    for (uint32_t i = 0; i < o.idle * o.ntargets; i++)
        if (idle_fds[i] >= 0)
            close(idle_fds[i]);
    for (uint32_t i = 0; i < o.threads; i++)
        free(ls[i].st.slice_done);
    free(idle_fds);
    free(ls);
    free(tids);
    data_teardown();
    return failed ? 2 : errors ? 1 : 0;
}
