/*
 * cached-bench: a closed-loop load generator for memcached's text protocol.
 *
 * Shared declarations of the bench's four files:
 *   main.c    options, idle connections, loader threads, the report
 *   loader.c  one loader thread: epoll loop, connections, requests, reply parsing
 *   data.c    keys and values derived from a key index, so a reply can be verified
 *   hist.c    log-bucketed latency histogram
 *
 * The bench must cost less CPU than the server it drives, so the hot path avoids
 * per-request allocation and formatting: a value is a slice of one pattern buffer, a key
 * is written right to left into a fixed-width field, and one clock read serves a whole
 * read event (the completion time of its replies and the send time of what it issues).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- options ---------------------------------------------------------------------------- */

/* Servers one run can alternate between (-p P1,P2,...). */
#define BENCH_TARGETS_MAX 8

struct bench_opts {
    const char *host;      /* -s, default 127.0.0.1 */
    const char *port;      /* -p, default 11211 (the first of ports[]) */
    const char *ports[BENCH_TARGETS_MAX]; /* -p P1,P2,...: the servers, alternated */
    uint32_t ntargets;     /* how many ports were given */
    double slice;          /* --slice: seconds each server is driven in turn (default 0.1) */
    const char *unix_path; /* -U: unix socket instead of TCP */
    uint32_t conns;        /* -c: active connections (in total, over all threads) */
    uint32_t threads;      /* -T: loader threads */
    uint32_t depth;        /* -d: requests in flight per connection */
    uint32_t multiget;     /* -m: keys per get */
    uint64_t keyspace;     /* -k: keys are 0 .. keyspace-1 */
    uint32_t key_size;     /* -K: bytes per key (fixed width) */
    uint32_t vmin, vmax;   /* -v N or N-M: value size, uniform in [vmin, vmax] */
    double get_ratio;      /* -r G:S, stored as the fraction of gets */
    double warmup;         /* -w seconds of load not counted */
    double duration;       /* -D seconds counted (0: unbounded, then -n must be set) */
    uint64_t requests;     /* -n: stop after this many counted requests (0: unbounded) */
    uint32_t verify_every; /* -V: verify the values of one get reply in N (0: never) */
    uint32_t idle;         /* --idle N: idle connections held open for the run */
    uint64_t seed;         /* --seed */
    bool preload;          /* --preload: set every key once, pipelined, then exit */
    bool connect_per_req;  /* --connect-per-request: connect, get, set, close, repeat */
    bool quiet;            /* -q: only the RESULT line */
    const char *label;     /* --label: copied into the RESULT line */
};

/* ---- latency histogram ------------------------------------------------------------------ */

/* Buckets: 16 linear sub-buckets per power of two (about 6% resolution); nanoseconds up to
 * 2^41 (36 minutes), longer lands in the last bucket. */
#define HIST_SUB_BITS 4
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_BITS 41
#define HIST_BUCKETS ((HIST_MAX_BITS - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t count;
    uint64_t max_ns;
    uint64_t bucket[HIST_BUCKETS];
};

void hist_record(struct hist *h, uint64_t ns);
void hist_merge(struct hist *into, const struct hist *from);
/* The latency at quantile q (0..1), in nanoseconds: the middle of its bucket. */
uint64_t hist_quantile(const struct hist *h, double q);

/* ---- keys and values -------------------------------------------------------------------- */

/* Keys are "k" followed by the index in decimal, zero-padded to key_size bytes. */
#define DATA_KEY_MAX 250
#define DATA_VALUE_MAX (1024 * 1024)

/* Builds the pattern buffer values are cut from (any value up to DATA_VALUE_MAX can be
 * verified). Fixed seed: a --preload run and later runs must agree on every value. Returns
 * false when out of memory. */
bool data_setup(void);
void data_teardown(void);
/* Smallest key size that can hold every index below keyspace. */
uint32_t data_key_size_min(uint64_t keyspace);
/* Writes the key of index i, exactly key_size bytes, no terminator. */
void data_key(char *out, uint32_t key_size, uint64_t i);
/* Parses a key back into its index; false if it is not a key of this bench. */
bool data_key_parse(const char *key, size_t len, uint32_t key_size, uint64_t *i);
/* The value of key i: the first len bytes of its slice of the pattern. The slice does not
 * depend on len, so a value of any length can be verified against its key. */
const char *data_value(uint64_t i);
/* The flags stored with key i (also checked on get). */
uint32_t data_flags(uint64_t i);

/* ---- loader threads --------------------------------------------------------------------- */

/* What a thread counts. Only requests completed inside the measured window are counted. */
struct loader_stats {
    uint64_t gets, sets;          /* requests completed */
    uint64_t get_keys, hits;      /* keys asked for by gets, values returned */
    uint64_t verified;            /* values compared byte for byte */
    uint64_t errors;              /* wrong or unexpected replies, failed connections */
    uint64_t conns_done;          /* connect-per-request: completed connection cycles */
    uint64_t bytes_out, bytes_in; /* payload bytes on the wire (whole run) */
    double cpu_measured;          /* thread CPU seconds (user+sys) in the measured window */
    double cpu_total;             /* thread CPU seconds, whole run */
    double measured_s;            /* seconds from measure start to this thread's last reply */
    struct hist lat;              /* per request, send to reply (per connection cycle in
                                   * connect-per-request mode) */
    /* Alternating runs (-p P1,P2,...): per target, and per slice of the whole run (slice i
     * drives target i % ntargets); a request counts in the slice it was issued in. */
    uint64_t target_done[BENCH_TARGETS_MAX];
    struct hist target_lat[BENCH_TARGETS_MAX];
    uint64_t *slice_done; /* nslices entries (NULL when not alternating) */
};

struct loader {
    int id;
    const struct bench_opts *o;
    uint32_t nconns;           /* connections of this thread */
    uint64_t key_lo, key_hi;   /* --preload: the keys this thread sets */
    uint64_t request_quota;    /* -n share of this thread (0: none) */
    uint64_t start_ns;         /* common start time (monotonic): slices count from here */
    uint32_t nslices;          /* slices of warm-up plus measured time, when alternating */
    struct loader_stats st;
    int failed;                /* fatal setup error (could not connect ...) */
};

/* The resolved server address, filled once by main. */
struct bench_addr {
    int family;
    int socktype;
    int protocol;
    unsigned addrlen;
    unsigned char addr[128];
};
extern struct bench_addr bench_addrs[BENCH_TARGETS_MAX];

/* Thread entry: runs the workload of one struct loader. */
void *loader_run(void *arg);
/* Opens one blocking connection to target t's address; -1 on failure (errno set). */
int bench_connect_blocking(uint32_t t);

uint64_t bench_now_ns(void);
/* Reports one error, printing only the first few of the whole run. */
void bench_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
