/*
 * metrics: GET /metrics in Prometheus' text format, served by evhttp on its own thread.
 *
 * A scrape runs the protocol's own `stats`, `stats settings`, `stats items` and `stats slabs`
 * (proto_process on a private connection state: the same compose functions, the same locks
 * as a client's `stats`) and maps the STAT lines to memcached_exporter's metrics with the
 * tables below — names, types, labels and the exporter's quirks (see
 * ../shared/exporter-metrics.tsv). A metric is emitted when the stat it comes from is there,
 * so the endpoint follows whatever `stats` prints. cached's own metrics use cached_*.
 *
 * The HTTP port is a port like any other: only GET /metrics and GET / answer (404 for other
 * paths, 405 for other methods, including those evhttp would answer 501 to); headers are
 * capped at 8 KB, bodies refused, reads and writes time out, every connection has a hard
 * deadline and at most METRICS_MAX_CONNS are served at once (others are closed at once).
 */
#include "server/metrics.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "protocol/observe.h"
#include "protocol/proto.h"
#include "protocol/reply.h"
#include "protocol/stats.h"
#include "server/log.h"
#include "server/worker.h"
#include "storage/mem.h"

#define METRICS_MAX_CONNS 32
#define METRICS_TIMEOUT_S 5       /* evhttp read/write timeout */
#define METRICS_DEADLINE_S 10     /* a connection's whole life */
#define METRICS_MAX_HEADERS 8192

/* ---- the STAT lines of one scrape ---- */

enum sect { S_GEN, S_SET, S_ITEMS, S_SLABS, S_SLABS_GLOBAL, S_OWN, S_COUNT };

struct stat_kv {
    enum sect sect;
    int cls; /* slab class for S_ITEMS/S_SLABS, else 0 */
    const char *key, *val;
};

struct snapshot {
    char *text;
    struct stat_kv *kv;
    size_t n, cap;
    int classes[2][256]; /* class ids seen in items / slabs, in order */
    size_t nclasses[2];
};

static void snap_push(struct snapshot *s, enum sect sect, int cls, const char *k, const char *v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->kv = mem_realloc(s->kv, s->cap * sizeof(*s->kv));
    }
    s->kv[s->n++] = (struct stat_kv){sect, cls, k, v};
    if (sect == S_ITEMS || sect == S_SLABS) {
        unsigned w = sect == S_ITEMS ? 0 : 1;
        size_t i = 0;
        while (i < s->nclasses[w] && s->classes[w][i] != cls)
            i++;
        if (i == s->nclasses[w] && i < 256)
            s->classes[w][s->nclasses[w]++] = cls;
    }
}

/* Splits "STAT key value" lines; "END" advances the section. */
static void snap_parse(struct snapshot *s)
{
    enum sect sect = S_GEN;
    char *p = s->text;
    while (*p && sect < S_COUNT) {
        char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        *eol = '\0';
        if (strcmp(p, "END") == 0) {
            sect = sect == S_GEN     ? S_SET
                   : sect == S_SET   ? S_ITEMS
                   : sect == S_ITEMS ? S_SLABS
                   : sect == S_SLABS ? S_OWN
                                     : S_COUNT;
        } else if (strncmp(p, "STAT ", 5) == 0) {
            char *k = p + 5, *sp = strchr(k, ' ');
            if (sp) {
                *sp = '\0';
                char *v = sp + 1;
                if (sect == S_ITEMS && strncmp(k, "items:", 6) == 0) {
                    char *c = strchr(k + 6, ':');
                    if (c)
                        snap_push(s, S_ITEMS, (int)strtol(k + 6, NULL, 10), c + 1, v);
                } else if (sect == S_SLABS && k[0] >= '0' && k[0] <= '9') {
                    char *c = strchr(k, ':');
                    if (c)
                        snap_push(s, S_SLABS, (int)strtol(k, NULL, 10), c + 1, v);
                } else {
                    snap_push(s, sect == S_SLABS ? S_SLABS_GLOBAL : sect, 0, k, v);
                }
            }
        }
        p = eol + 2;
    }
}

static const char *snap_get(const struct snapshot *s, enum sect sect, int cls, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->kv[i].sect == sect && s->kv[i].cls == cls && strcmp(s->kv[i].key, key) == 0)
            return s->kv[i].val;
    return NULL;
}

/* Runs the stats commands through the protocol, exactly as a client would see them. */
static void snap_take(struct snapshot *s)
{
    static const char cmds[] = "stats\r\nstats settings\r\nstats items\r\nstats slabs\r\nstats cached\r\n";
    memset(s, 0, sizeof(*s));
    struct proto_conn pc = {0};
    struct reply r;
    reply_init(&r);
    size_t consumed = 0;
    proto_process(&pc, &r, cmds, sizeof(cmds) - 1, &consumed, 16, SIZE_MAX);
    s->text = mem_alloc(r.pending + 1);
    size_t off = 0;
    while (!reply_empty(&r)) {
        struct iovec *iov;
        size_t n = reply_iov(&r, &iov, 64), done = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(s->text + off, iov[i].iov_base, iov[i].iov_len);
            off += iov[i].iov_len;
            done += iov[i].iov_len;
        }
        reply_consumed(&r, done);
    }
    s->text[off] = '\0';
    reply_deinit(&r);
    snap_parse(s);
}

static void snap_free(struct snapshot *s)
{
    mem_free(s->text);
    mem_free(s->kv);
}

/* ---- the tables: stat -> metric ---- */

enum conv { C_NUM, C_YESNO };

/* Padding is irrelevant here (static tables); the field order follows the exporter's columns. */
struct gmetric { // NOLINT(clang-analyzer-optin.performance.Padding)
    const char *name, *type, *help;
    enum sect sect;
    const char *stat;
    enum conv conv;
};

/* memcached_exporter's unlabelled metrics, in its order (memcached_lru_crawler_* settings are
 * emitted only when `lru_crawler` is yes, as the exporter does). */
static const struct gmetric gen_metrics[] = {
    {"memcached_uptime_seconds", "counter", "Number of seconds since the server started.", S_GEN, "uptime", C_NUM},
    {"memcached_time_seconds", "gauge", "Current UNIX time according to the server.", S_GEN, "time", C_NUM},
    {"memcached_process_user_cpu_seconds_total", "counter", "Accumulated user time for this process.", S_GEN, "rusage_user", C_NUM},
    {"memcached_process_system_cpu_seconds_total", "counter", "Accumulated system time for this process.", S_GEN, "rusage_system", C_NUM},
    {"memcached_read_bytes_total", "counter", "Total number of bytes read by this server from network.", S_GEN, "bytes_read", C_NUM},
    {"memcached_written_bytes_total", "counter", "Total number of bytes sent by this server to network.", S_GEN, "bytes_written", C_NUM},
    {"memcached_current_connections", "gauge", "Current number of open connections.", S_GEN, "curr_connections", C_NUM},
    {"memcached_connections_total", "counter", "Total number of connections opened since the server started running.", S_GEN, "total_connections", C_NUM},
    {"memcached_connections_rejected_total", "counter", "Total number of connections rejected at the connection limit.", S_GEN, "rejected_connections", C_NUM},
    {"memcached_connections_yielded_total", "counter", "Total number of connections yielded running due to the -R limit.", S_GEN, "conn_yields", C_NUM},
    {"memcached_connections_listener_disabled_total", "counter", "Number of times the connection limit disabled the listener.", S_GEN, "listen_disabled_num", C_NUM},
    {"memcached_current_bytes", "gauge", "Current number of bytes used to store items.", S_GEN, "bytes", C_NUM},
    {"memcached_limit_bytes", "gauge", "Number of bytes this server is allowed to use for storage.", S_GEN, "limit_maxbytes", C_NUM},
    {"memcached_current_items", "gauge", "Current number of items stored by this instance.", S_GEN, "curr_items", C_NUM},
    {"memcached_items_total", "counter", "Total number of items stored during the life of this instance.", S_GEN, "total_items", C_NUM},
    {"memcached_items_evicted_total", "counter", "Total number of valid items removed from cache to free memory for new items.", S_GEN, "evictions", C_NUM},
    {"memcached_items_reclaimed_total", "counter", "Total number of times an entry was stored using memory from an expired entry.", S_GEN, "reclaimed", C_NUM},
    {"memcached_item_too_large_total", "counter", "The number of times an item exceeded the max item size when being stored.", S_GEN, "store_too_large", C_NUM},
    {"memcached_item_no_memory_total", "counter", "The number of times an item could not be stored due to no more memory.", S_GEN, "store_no_memory", C_NUM},
    {"memcached_lru_crawler_starts_total", "counter", "Times an LRU crawler was started.", S_GEN, "lru_crawler_starts", C_NUM},
    {"memcached_direct_reclaims_total", "counter", "Times worker threads had to directly reclaim or evict items.", S_GEN, "direct_reclaims", C_NUM},
    {"memcached_lru_crawler_items_checked_total", "counter", "Total items examined by LRU Crawler.", S_GEN, "crawler_items_checked", C_NUM},
    {"memcached_lru_crawler_reclaimed_total", "counter", "Total items freed by LRU Crawler.", S_GEN, "crawler_reclaimed", C_NUM},
    {"memcached_lru_crawler_moves_to_cold_total", "counter", "Total number of items moved from HOT/WARM to COLD LRU's.", S_GEN, "moves_to_cold", C_NUM},
    {"memcached_lru_crawler_moves_to_warm_total", "counter", "Total number of items moved from COLD to WARM LRU.", S_GEN, "moves_to_warm", C_NUM},
    {"memcached_lru_crawler_moves_within_lru_total", "counter", "Total number of items reshuffled within HOT or WARM LRU's.", S_GEN, "moves_within_lru", C_NUM},
    {"memcached_malloced_bytes", "gauge", "Number of bytes of memory allocated to slab pages.", S_SLABS_GLOBAL, "total_malloced", C_NUM},
    {"memcached_accepting_connections", "gauge", "The server is currently accepting new connections.", S_GEN, "accepting_conns", C_NUM},
    {"memcached_max_connections", "gauge", "Maximum number of clients allowed.", S_SET, "maxconns", C_NUM},
};

static const struct gmetric crawler_metrics[] = {
    {"memcached_lru_crawler_enabled", "gauge", "Whether the LRU crawler is enabled.", S_SET, "lru_crawler", C_YESNO},
    {"memcached_lru_crawler_sleep", "gauge", "Microseconds to sleep between LRU crawls.", S_SET, "lru_crawler_sleep", C_NUM},
    {"memcached_lru_crawler_to_crawl", "gauge", "Max items to crawl per slab per run.", S_SET, "lru_crawler_tocrawl", C_NUM},
    {"memcached_lru_crawler_maintainer_thread", "gauge", "Split LRU mode and background threads.", S_SET, "lru_maintainer_thread", C_YESNO},
    {"memcached_lru_crawler_hot_percent", "gauge", "Percent of slab memory reserved for HOT LRU.", S_SET, "hot_lru_pct", C_NUM},
    {"memcached_lru_crawler_warm_percent", "gauge", "Percent of slab memory reserved for WARM LRU.", S_SET, "warm_lru_pct", C_NUM},
    {"memcached_lru_crawler_hot_max_factor", "gauge", "Set idle age of HOT LRU to COLD age * this", S_SET, "hot_max_factor", C_NUM},
    {"memcached_lru_crawler_warm_max_factor", "gauge", "Set idle age of WARM LRU to COLD age * this", S_SET, "warm_max_factor", C_NUM},
};

/* cached's own: extra fields of `stats` and the fields of `stats cached`. */
static const struct gmetric cached_metrics[] = {
    {"cached_connections_accepted_total", "counter", "Connections accepted by the listeners (rate() of it is the accept rate).", S_GEN, "total_connections", C_NUM},
    {"cached_expired_unfetched_total", "counter", "Items that expired without ever being fetched.", S_GEN, "expired_unfetched", C_NUM},
    {"cached_evicted_unfetched_total", "counter", "Items evicted without ever being fetched.", S_GEN, "evicted_unfetched", C_NUM},
    {"cached_evicted_active_total", "counter", "Items evicted although recently used.", S_GEN, "evicted_active", C_NUM},
    {"cached_get_expired_total", "counter", "Gets that found an expired item.", S_GEN, "get_expired", C_NUM},
    {"cached_get_flushed_total", "counter", "Gets that found an item invalidated by flush_all.", S_GEN, "get_flushed", C_NUM},
    {"cached_sweeper_runs_total", "counter", "Complete passes of the expiry sweeper over the hash table.", S_OWN, "sweeper_runs", C_NUM},
    {"cached_sweeper_reclaimed_total", "counter", "Expired or flushed items reclaimed by the sweeper.", S_OWN, "sweeper_reclaimed", C_NUM},
    {"cached_shard_lock_waits_total", "counter", "Hash shard lock acquisitions that had to wait (contention).", S_OWN, "shard_lock_waits", C_NUM},
    {"cached_class_lock_waits_total", "counter", "Slab class lock acquisitions that had to wait (contention).", S_OWN, "class_lock_waits", C_NUM},
    {"cached_hash_power_level", "gauge", "log2 of the hash table's buckets (all shards).", S_GEN, "hash_power_level", C_NUM},
    {"cached_hash_bytes", "gauge", "Bytes of hash table buckets.", S_GEN, "hash_bytes", C_NUM},
    {"cached_hash_is_expanding", "gauge", "1 while a hash shard is growing (incremental rehash).", S_GEN, "hash_is_expanding", C_NUM},
    {"cached_slabs_moved_total", "counter", "Slab pages moved between classes.", S_GEN, "slabs_moved", C_NUM},
    {"cached_malloc_allocated_bytes", "gauge", "Bytes allocated through jemalloc outside the slab arena.", S_OWN, "malloc_allocated", C_NUM},
    {"cached_malloc_active_bytes", "gauge", "jemalloc active bytes.", S_OWN, "malloc_active", C_NUM},
    {"cached_malloc_resident_bytes", "gauge", "jemalloc resident bytes.", S_OWN, "malloc_resident", C_NUM},
    {"cached_malloc_mapped_bytes", "gauge", "jemalloc mapped bytes.", S_OWN, "malloc_mapped", C_NUM},
};

struct smetric {
    const char *name, *type, *help;
    enum sect sect; /* S_ITEMS or S_SLABS */
    const char *stat;
};

static const struct smetric slab_metrics[] = {
    {"memcached_slab_current_items", "gauge", "Number of items currently stored in this slab class.", S_ITEMS, "number"},
    {"memcached_slab_items_age_seconds", "gauge", "Number of seconds the oldest item has been in the slab class.", S_ITEMS, "age"},
    {"memcached_slab_items_crawler_reclaimed_total", "counter", "Number of items freed by the LRU Crawler.", S_ITEMS, "crawler_reclaimed"},
    {"memcached_slab_items_evicted_total", "counter", "Total number of times an item had to be evicted from the LRU before it expired.", S_ITEMS, "evicted"},
    {"memcached_slab_items_evicted_nonzero_total", "counter", "Total number of times an item which had an explicit expire time set had to be evicted from the LRU before it expired.", S_ITEMS, "evicted_nonzero"},
    {"memcached_slab_items_evicted_time_seconds", "counter", "Seconds since the last access for the most recent item evicted from this class.", S_ITEMS, "evicted_time"},
    {"memcached_slab_items_evicted_unfetched_total", "counter", "Total number of items evicted and never fetched.", S_ITEMS, "evicted_unfetched"},
    {"memcached_slab_items_expired_unfetched_total", "counter", "Total number of valid items evicted from the LRU which were never touched after being set.", S_ITEMS, "expired_unfetched"},
    {"memcached_slab_items_outofmemory_total", "counter", "Total number of items for this slab class that have triggered an out of memory error.", S_ITEMS, "outofmemory"},
    {"memcached_slab_items_reclaimed_total", "counter", "Total number of items reclaimed.", S_ITEMS, "reclaimed"},
    {"memcached_slab_items_tailrepairs_total", "counter", "Total number of times the entries for a particular ID need repairing.", S_ITEMS, "tailrepairs"},
    {"memcached_slab_mem_requested_bytes", "counter", "Number of bytes of memory actual items take up within a slab.", S_ITEMS, "mem_requested"},
    {"memcached_slab_items_moves_to_cold", "counter", "Number of items moved from HOT or WARM into COLD.", S_ITEMS, "moves_to_cold"},
    {"memcached_slab_items_moves_to_warm", "counter", "Number of items moved from COLD to WARM.", S_ITEMS, "moves_to_warm"},
    {"memcached_slab_items_moves_within_lru", "counter", "Number of times active items were bumped within HOT or WARM.", S_ITEMS, "moves_within_lru"},
    {"memcached_slab_hot_items", "gauge", "Number of items presently stored in the HOT LRU.", S_ITEMS, "number_hot"},
    {"memcached_slab_warm_items", "gauge", "Number of items presently stored in the WARM LRU.", S_ITEMS, "number_warm"},
    {"memcached_slab_cold_items", "gauge", "Number of items presently stored in the COLD LRU.", S_ITEMS, "number_cold"},
    {"memcached_slab_temporary_items", "gauge", "Number of items presently stored in the TEMPORARY LRU.", S_ITEMS, "number_temp"},
    {"memcached_slab_hot_age_seconds", "gauge", "Age of the oldest item in HOT LRU.", S_ITEMS, "age_hot"},
    {"memcached_slab_warm_age_seconds", "gauge", "Age of the oldest item in WARM LRU.", S_ITEMS, "age_warm"},
    {"memcached_slab_chunk_size_bytes", "gauge", "Number of bytes allocated to each chunk within this slab class.", S_SLABS, "chunk_size"},
    {"memcached_slab_chunks_per_page", "gauge", "Number of chunks within a single page for this slab class.", S_SLABS, "chunks_per_page"},
    {"memcached_slab_current_pages", "gauge", "Number of pages allocated to this slab class.", S_SLABS, "total_pages"},
    {"memcached_slab_current_chunks", "gauge", "Number of chunks allocated to this slab class.", S_SLABS, "total_chunks"},
    {"memcached_slab_chunks_used", "gauge", "Number of chunks allocated to an item.", S_SLABS, "used_chunks"},
    {"memcached_slab_chunks_free", "gauge", "Number of chunks not yet allocated items.", S_SLABS, "free_chunks"},
    {"memcached_slab_chunks_free_end", "gauge", "Number of free chunks at the end of the last allocated page.", S_SLABS, "free_chunks_end"},
};

/* ---- writing ---- */

static void family(struct evbuffer *o, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A stat value as a sample value: numbers verbatim, yes/no as 1/0; NULL if not a number. */
static const char *sample_value(const char *v, enum conv conv)
{
    if (conv == C_YESNO)
        return strcmp(v, "yes") == 0 ? "1" : "0";
    char *end;
    strtod(v, &end);
    return (end != v && *end == '\0') ? v : NULL;
}

static void label_escaped(struct evbuffer *o, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            evbuffer_add_printf(o, "\\%c", *s);
        else if (*s == '\n')
            evbuffer_add(o, "\\n", 2);
        else
            evbuffer_add(o, s, 1);
    }
}

static void emit_gmetrics(struct evbuffer *o, const struct snapshot *s, const struct gmetric *m,
                          size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = snap_get(s, m[i].sect, 0, m[i].stat);
        if (!v && m[i].sect == S_SLABS_GLOBAL) /* also in `stats` */
            v = snap_get(s, S_GEN, 0, m[i].stat);
        const char *sv = v ? sample_value(v, m[i].conv) : NULL;
        if (!sv)
            continue;
        family(o, m[i].name, m[i].type, m[i].help);
        evbuffer_add_printf(o, "%s %s\n", m[i].name, sv);
    }
}

static uint64_t stat_u64(const struct snapshot *s, enum sect sect, int cls, const char *k,
                         bool *ok)
{
    const char *v = snap_get(s, sect, cls, k);
    if (!v) {
        *ok = false;
        return 0;
    }
    return strtoull(v, NULL, 10);
}

static const char *const cmd_ops[] = {"get", "delete", "incr", "decr", "cas", "touch"};

/* memcached_commands_total: the exporter's 15 series. */
static void emit_commands(struct evbuffer *o, const struct snapshot *s)
{
    bool ok = true;
    uint64_t hits[6], misses[6];
    char k[32];
    for (unsigned i = 0; i < 6; i++) {
        snprintf(k, sizeof k, "%s_hits", cmd_ops[i]);
        hits[i] = stat_u64(s, S_GEN, 0, k, &ok);
        snprintf(k, sizeof k, "%s_misses", cmd_ops[i]);
        misses[i] = stat_u64(s, S_GEN, 0, k, &ok);
    }
    uint64_t badval = stat_u64(s, S_GEN, 0, "cas_badval", &ok);
    uint64_t flush = stat_u64(s, S_GEN, 0, "cmd_flush", &ok);
    uint64_t set = stat_u64(s, S_GEN, 0, "cmd_set", &ok);
    if (!ok)
        return;
    const char *n = "memcached_commands_total";
    family(o, n, "counter",
           "Total number of all requests broken down by command (get, set, etc.) and status.");
    for (unsigned i = 0; i < 6; i++) {
        evbuffer_add_printf(o, "%s{command=\"%s\",status=\"hit\"} %" PRIu64 "\n", n, cmd_ops[i],
                            hits[i]);
        evbuffer_add_printf(o, "%s{command=\"%s\",status=\"miss\"} %" PRIu64 "\n", n,
                            cmd_ops[i], misses[i]);
    }
    evbuffer_add_printf(o, "%s{command=\"cas\",status=\"badval\"} %" PRIu64 "\n", n, badval);
    evbuffer_add_printf(o, "%s{command=\"flush\",status=\"hit\"} %" PRIu64 "\n", n, flush);
    /* the exporter's set/hit: cmd_set minus the CAS attempts (it can go below zero there) */
    double sethit = (double)set - (double)(misses[4] + hits[4] + badval);
    evbuffer_add_printf(o, "%s{command=\"set\",status=\"hit\"} %.17g\n", n, sethit);
}

static void emit_slab_metrics(struct evbuffer *o, const struct snapshot *s)
{
    for (size_t i = 0; i < sizeof(slab_metrics) / sizeof(*slab_metrics); i++) {
        const struct smetric *m = &slab_metrics[i];
        unsigned w = m->sect == S_ITEMS ? 0 : 1;
        bool header = false;
        for (size_t c = 0; c < s->nclasses[w]; c++) {
            int cls = s->classes[w][c];
            const char *v = snap_get(s, m->sect, cls, m->stat);
            const char *sv = v ? sample_value(v, C_NUM) : NULL;
            if (!sv)
                continue;
            if (!header)
                family(o, m->name, m->type, m->help);
            header = true;
            evbuffer_add_printf(o, "%s{slab=\"%d\"} %s\n", m->name, cls, sv);
        }
    }
    /* memcached_slab_lru_hits_total{slab,lru} */
    static const char *const lru_stat[4] = {"hits_to_hot", "hits_to_warm", "hits_to_cold",
                                            "hits_to_temp"};
    static const char *const lru_name[4] = {"hot", "warm", "cold", "temporary"};
    bool header = false;
    for (size_t c = 0; c < s->nclasses[0]; c++) {
        int cls = s->classes[0][c];
        for (unsigned l = 0; l < 4; l++) {
            const char *v = snap_get(s, S_ITEMS, cls, lru_stat[l]);
            const char *sv = v ? sample_value(v, C_NUM) : NULL;
            if (!sv)
                continue;
            if (!header)
                family(o, "memcached_slab_lru_hits_total", "counter", "Number of get_hits to the LRU.");
            header = true;
            evbuffer_add_printf(o, "memcached_slab_lru_hits_total{lru=\"%s\",slab=\"%d\"} %s\n",
                                lru_name[l], cls, sv);
        }
    }
    /* memcached_slab_commands_total{slab,command,status}: 8 series per class */
    header = false;
    for (size_t c = 0; c < s->nclasses[1]; c++) {
        int cls = s->classes[1][c];
        bool ok = true;
        uint64_t hits[6];
        char k[32];
        for (unsigned i = 0; i < 6; i++) {
            snprintf(k, sizeof k, "%s_hits", cmd_ops[i]);
            hits[i] = stat_u64(s, S_SLABS, cls, k, &ok);
        }
        uint64_t badval = stat_u64(s, S_SLABS, cls, "cas_badval", &ok);
        uint64_t set = stat_u64(s, S_SLABS, cls, "cmd_set", &ok);
        if (!ok)
            continue;
        const char *n = "memcached_slab_commands_total";
        if (!header)
            family(o, n, "counter", "Total number of all requests broken down by command (get, set, etc.) and status per slab.");
        header = true;
        for (unsigned i = 0; i < 6; i++)
            evbuffer_add_printf(o, "%s{command=\"%s\",slab=\"%d\",status=\"hit\"} %" PRIu64 "\n",
                                n, cmd_ops[i], cls, hits[i]);
        evbuffer_add_printf(o, "%s{command=\"cas\",slab=\"%d\",status=\"badval\"} %" PRIu64 "\n",
                            n, cls, badval);
        evbuffer_add_printf(o, "%s{command=\"set\",slab=\"%d\",status=\"hit\"} %.17g\n", n, cls,
                            (double)set - (double)(hits[4] + badval));
    }
}

static void emit_latency(struct evbuffer *o, const struct proto_obs *obs)
{
    const char *n = "cached_command_duration_seconds";
    family(o, n, "histogram",
           "Time from a command parsed to its reply queued, by command (cached's own).");
    for (unsigned c = 0; c < OBS_NCMD; c++) {
        const struct obs_latency *l = &obs->lat[c];
        uint64_t cum = 0;
        for (unsigned b = 0; b < OBS_LAT_BUCKETS; b++) {
            cum += l->bucket[b];
            evbuffer_add_printf(o, "%s_bucket{command=\"%s\",le=\"%.9g\"} %" PRIu64 "\n", n,
                                obs_cmd_names[c], obs_bucket_le(b), cum);
        }
        cum += l->bucket[OBS_LAT_BUCKETS];
        evbuffer_add_printf(o, "%s_bucket{command=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", n,
                            obs_cmd_names[c], cum);
        evbuffer_add_printf(o, "%s_sum{command=\"%s\"} %.9f\n", n, obs_cmd_names[c],
                            (double)l->sum_ns * 1e-9);
        evbuffer_add_printf(o, "%s_count{command=\"%s\"} %" PRIu64 "\n", n, obs_cmd_names[c],
                            l->count);
    }
    /* Hot keys themselves stay out of /metrics (`stats hotkeys` shows them): a key label
     * would make series come and go with the workload and publish key names. */
    family(o, "cached_hotkeys_sampled_total", "counter",
           "Key accesses sampled into the hot-key sketch (`stats hotkeys`), by direction.");
    evbuffer_add_printf(o, "cached_hotkeys_sampled_total{direction=\"read\"} %" PRIu64 "\n",
                        obs->sampled[OBS_READ]);
    evbuffer_add_printf(o, "cached_hotkeys_sampled_total{direction=\"write\"} %" PRIu64 "\n",
                        obs->sampled[OBS_WRITE]);
}

void metrics_compose(struct evbuffer *o)
{
    struct snapshot s;
    snap_take(&s);
    /* memcached_up: 1 when both `stats` and `stats settings` parsed, as the exporter says */
    bool up = snap_get(&s, S_GEN, 0, "uptime") && snap_get(&s, S_SET, 0, "maxconns");
    family(o, "memcached_up", "gauge", "Could the memcached server be reached.");
    evbuffer_add_printf(o, "memcached_up %d\n", up ? 1 : 0);
    const char *ver = snap_get(&s, S_GEN, 0, "version");
    if (ver) {
        family(o, "memcached_version", "gauge", "The version of this memcached server.");
        evbuffer_add(o, "memcached_version{version=\"", 27);
        label_escaped(o, ver);
        evbuffer_add(o, "\"} 1\n", 5);
    }
    emit_gmetrics(o, &s, gen_metrics, sizeof(gen_metrics) / sizeof(*gen_metrics));
    emit_commands(o, &s);
    const char *crawler = snap_get(&s, S_SET, 0, "lru_crawler");
    if (crawler && strcmp(crawler, "yes") == 0)
        emit_gmetrics(o, &s, crawler_metrics, sizeof(crawler_metrics) / sizeof(*crawler_metrics));
    emit_slab_metrics(o, &s);

    emit_gmetrics(o, &s, cached_metrics, sizeof(cached_metrics) / sizeof(*cached_metrics));
    /* hash table load: items per bucket */
    const char *items = snap_get(&s, S_GEN, 0, "curr_items");
    const char *power = snap_get(&s, S_GEN, 0, "hash_power_level");
    if (items && power) {
        unsigned p = (unsigned)strtoul(power, NULL, 10);
        family(o, "cached_hash_load_factor", "gauge",
               "Items per hash bucket (a shard doubles its buckets past 1.5).");
        evbuffer_add_printf(o, "cached_hash_load_factor %.6f\n",
                            strtod(items, NULL) / ldexp(1.0, p < 63 ? (int)p : 63));
    }
    snap_free(&s);

    struct proto_stats *sum = mem_alloc(sizeof(*sum));
    memset(sum, 0, sizeof(*sum));
    if (nworkers > 0)
        worker_sum_stats(sum);
    emit_latency(o, &sum->obs);
    mem_free(sum);
}

/* ---- HTTP ---- */

/* One accepted connection. evhttp owns its bufferevent; we hold a reference too, so that
 * after evhttp frees it (its event callback is then cleared) the memory and socket stay
 * until the sweep notices: that is how connections are counted and given a deadline with
 * evhttp's public API only. */
struct metrics_conn {
    struct bufferevent *bev;
    time_t born;
    bool kill;         /* close at the next sweep */
    bool kill_flushed; /* close once our own reply has been sent */
    struct metrics_conn *next;
};

static struct {
    pthread_t tid;
    bool running;
    struct event_base *base;
    struct evhttp *http;
    int efd;
    struct event *stop_ev, *sweep_ev;
    struct metrics_conn *conns;
    unsigned nconns;
} mx = {.efd = -1};

static void sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    time_t now = time(NULL);
    for (struct metrics_conn **pp = &mx.conns; *pp;) {
        struct metrics_conn *mc = *pp;
        bufferevent_event_cb ecb = NULL;
        bufferevent_getcb(mc->bev, NULL, NULL, &ecb, NULL);
        if (ecb == NULL) { /* evhttp is done with it */
            *pp = mc->next;
            bufferevent_decref(mc->bev); /* frees it and closes the socket */
            mem_free(mc);
            mx.nconns--;
            continue;
        }
        if (mc->kill_flushed && evbuffer_get_length(bufferevent_get_output(mc->bev)) == 0)
            mc->kill = true;
        if (mc->kill || now - mc->born >= METRICS_DEADLINE_S) {
            /* make the socket fail: evhttp then closes and frees the connection */
            evutil_socket_t s = bufferevent_getfd(mc->bev);
            if (s >= 0)
                shutdown(s, SHUT_RDWR);
        }
        pp = &mc->next;
    }
}

static bool known_method(const char *m, size_t n)
{
    static const char *const known[] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS",
                                        "TRACE", "CONNECT", "PATCH"};
    for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++)
        if (strlen(known[i]) == n && memcmp(known[i], m, n) == 0)
            return true;
    return false;
}

/*
 * evhttp answers 501 itself to a method it does not know (e.g. "FOO / HTTP/1.1"), before any
 * callback of ours. So the request line is looked at as it arrives (an input-buffer callback
 * runs before evhttp's read callback): an unknown method gets 405 and the connection closes.
 */
static void watch_input(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
    struct metrics_conn *mc = arg;
    if (info->n_added == 0 || mc->kill_flushed)
        return;
    char head[16];
    ev_ssize_t n = evbuffer_copyout(in, head, sizeof head);
    if (n <= 0)
        return;
    size_t len = 0;
    while (len < (size_t)n && head[len] != ' ' && head[len] != '\r' && head[len] != '\n')
        len++;
    if (len == (size_t)n && n < (ev_ssize_t)sizeof head)
        return; /* the method is not complete yet */
    if (known_method(head, len))
        return;
    if (len == 0)
        return; /* leading CRLF: evhttp skips it */
    static const char resp[] = "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: 23\r\nConnection: close\r\n\r\n"
                               "405 method not allowed\n";
    mc->kill_flushed = true;
    evbuffer_remove_cb(in, watch_input, mc);
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_disable(mc->bev, EV_READ);
    bufferevent_write(mc->bev, resp, sizeof resp - 1);
    bufferevent_enable(mc->bev, EV_WRITE); /* evhttp disables writing while it reads */
    event_active(mx.sweep_ev, EV_TIMEOUT, 0);
}

/* evhttp asks for each accepted connection's bufferevent. */
static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
    (void)arg;
    sweep(-1, 0, NULL); /* count only connections still alive */
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL;
    bufferevent_incref(bev);
    struct metrics_conn *mc = mem_alloc(sizeof(*mc));
    mc->bev = bev;
    mc->born = time(NULL);
    mc->kill = mx.nconns >= METRICS_MAX_CONNS; /* over the limit: closed at once */
    mc->kill_flushed = false;
    evbuffer_add_cb(bufferevent_get_input(bev), watch_input, mc);
    mc->next = mx.conns;
    mx.conns = mc;
    mx.nconns++;
    if (mc->kill)
        event_active(mx.sweep_ev, EV_TIMEOUT, 0);
    return bev;
}

static void send_text(struct evhttp_request *req, int code, const char *reason,
                      const char *ctype, const char *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Connection", "close");
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, strlen(body));
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    bool is_metrics = path && strcmp(path, "/metrics") == 0;
    bool is_root = path && strcmp(path, "/") == 0;
    if (!is_metrics && !is_root) {
        send_text(req, 404, "Not Found", "text/plain; charset=utf-8", "404 page not found\n");
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
        send_text(req, 405, "Method Not Allowed", "text/plain; charset=utf-8",
                  "405 method not allowed\n");
        return;
    }
    if (is_root) {
        send_text(req, 200, "OK", "text/html; charset=utf-8",
                  "<html><head><title>cached</title></head><body><h1>cached</h1>"
                  "<p><a href=\"/metrics\">Metrics</a></p></body></html>\n");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    metrics_compose(b);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof v);
    (void)n;
    event_base_loopbreak(mx.base);
}

static void *metrics_main(void *arg)
{
    (void)arg;
    event_base_dispatch(mx.base);
    return NULL;
}

static void metrics_free(void)
{
    if (mx.http)
        evhttp_free(mx.http); /* frees its connections (our references remain) */
    while (mx.conns) {
        struct metrics_conn *mc = mx.conns;
        mx.conns = mc->next;
        bufferevent_decref(mc->bev);
        mem_free(mc);
    }
    mx.nconns = 0;
    if (mx.sweep_ev)
        event_free(mx.sweep_ev);
    if (mx.stop_ev)
        event_free(mx.stop_ev);
    if (mx.base)
        event_base_free(mx.base);
    if (mx.efd >= 0)
        close(mx.efd);
    mx.http = NULL;
    mx.stop_ev = NULL;
    mx.sweep_ev = NULL;
    mx.base = NULL;
    mx.efd = -1;
}

int metrics_start(void)
{
    if (settings.metrics_port == 0)
        return 0;
    const char *addr = settings.metrics_listen && *settings.metrics_listen
                           ? settings.metrics_listen
                           : "127.0.0.1";
    mx.base = event_base_new();
    mx.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!mx.base || mx.efd < 0)
        goto fail;
    mx.http = evhttp_new(mx.base);
    mx.stop_ev = event_new(mx.base, mx.efd, EV_READ | EV_PERSIST, on_stop, NULL);
    mx.sweep_ev = event_new(mx.base, -1, EV_PERSIST, sweep, NULL);
    struct timeval sweep_tv = {0, 250000};
    if (!mx.http || !mx.stop_ev || !mx.sweep_ev || event_add(mx.stop_ev, NULL) < 0 ||
        event_add(mx.sweep_ev, &sweep_tv) < 0)
        goto fail;
    /* Every method reaches on_request, which answers 405 itself (evhttp would say 501). */
    evhttp_set_allowed_methods(mx.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(mx.http, METRICS_MAX_HEADERS);
    evhttp_set_max_body_size(mx.http, 0);
    evhttp_set_timeout(mx.http, METRICS_TIMEOUT_S);
    evhttp_set_bevcb(mx.http, make_bev, NULL);
    evhttp_set_gencb(mx.http, on_request, NULL);
    char host[256];
    snprintf(host, sizeof host, "%s", addr);
    size_t hl = strlen(host); /* [::1] -> ::1 */
    char *h = host;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        h = host + 1;
    }
    if (!evhttp_bind_socket_with_handle(mx.http, h, (uint16_t)settings.metrics_port)) {
        log_error("cannot listen for /metrics on %s:%u: %s", addr,
                  (unsigned)settings.metrics_port, strerror(errno));
        goto fail;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&mx.tid, NULL, metrics_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_error("cannot start the metrics thread: %s", strerror(rc));
        goto fail;
    }
    mx.running = true;
    log_info("serving /metrics on %s:%u", addr, (unsigned)settings.metrics_port);
    return 0;
fail:
    metrics_free();
    return -1;
}

void metrics_stop(void)
{
    if (mx.running) {
        uint64_t one = 1;
        ssize_t n = write(mx.efd, &one, sizeof one);
        (void)n;
        pthread_join(mx.tid, NULL);
        mx.running = false;
    }
    metrics_free();
}
