/*
 * stats: the `stats` command and its sub-commands (settings, items, slabs, sizes, conns,
 * detail, reset, cachedump). Every STAT line is written here, from numbers: the per-thread
 * struct proto_stats (summed through a hook), storage's counters, and the server's numbers
 * (struct proto_server_stats); the server writes no protocol text.
 *
 * Keys are memcached 1.6.18's, in its order (as Debian's build prints them, extstore lines
 * aside); cached's own keys follow memcached's. Where cached's mechanism differs, a key
 * carries the nearest honest value (README, "stats: how cached's mechanisms map"):
 *   - CLOCK instead of a segmented LRU: every item is in one ring per class, the one eviction
 *     reads, which is memcached's COLD: number_cold = number, hits_to_cold = the class's
 *     hits, the hot/warm counts and moves_to_cold/warm are 0. Every eviction is made by the allocating
 *     thread: direct_reclaims = evictions.
 *   - the expiry sweeper is cached's LRU crawler: crawler_reclaimed = what it reclaimed,
 *     lru_crawler_starts = its passes; the maintenance tick is its LRU maintainer.
 *   - response objects / read-buffer pools do not exist: replies go out of per-connection
 *     blocks and reads into per-connection buffers, so those counters are 0.
 * Each group is composed through an emitter (name, value), so another framing (the binary
 * protocol's stat packets) can reuse it: proto_stats_group().
 */
#include <event2/event.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "config/config.h"
#include "protocol/internal.h"
#include "storage/mem.h"
#include "storage/meta_ops.h"

struct stat_out {
    proto_stat_fn fn;
    void *arg;
};

static void put_str(struct stat_out *o, const char *name, const char *v)
{
    o->fn(o->arg, name, v);
}

static void put_u64(struct stat_out *o, const char *name, uint64_t v)
{
    char buf[24];
    *proto_u64toa(v, buf) = '\0';
    o->fn(o->arg, name, buf);
}

__attribute__((format(printf, 3, 4))) static void put_fmt(struct stat_out *o, const char *name,
                                                          const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    o->fn(o->arg, name, buf);
}

static void put_tv(struct stat_out *o, const char *name, const struct timeval *tv)
{
    put_fmt(o, name, "%ld.%06ld", (long)tv->tv_sec, (long)tv->tv_usec);
}

/* Summed counters of every worker (or, without a server, this thread's). */
static void sum_counters(struct proto_ctx *x, struct proto_stats *sum)
{
    memset(sum, 0, sizeof(*sum));
    if (proto_hooks_active->sum_stats)
        proto_hooks_active->sum_stats(sum);
    else
        proto_stats_add(sum, x->st);
}

/* ---- stats ---- */

static void stats_general(struct proto_ctx *x, struct stat_out *o)
{
    const struct proto_hooks *h = proto_hooks_active;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct proto_server_stats sv;
    memset(&sv, 0, sizeof(sv));
    if (h->server_stats)
        h->server_stats(&sv);
    /* 16 KB with the per-class arrays: on the heap, not a worker's stack. No lock of our own
     * around the summing: it takes the workers' stats locks (server/worker.h's order). */
    struct proto_stats *sum = mem_alloc(sizeof(*sum));
    if (!sum)
        return;
    sum_counters(x, sum);
    struct proto_stats s;
    memcpy(&s, sum, offsetof(struct proto_stats, cls));
    mem_free(sum);
    struct storage_stats ss;
    storage_stats(&ss);

    put_u64(o, "pid", (uint64_t)getpid());
    put_u64(o, "uptime", clock_uptime());
    put_u64(o, "time", (uint64_t)clock_unix(clock_now()));
    put_str(o, "version", PROTO_VERSION);
    put_str(o, "libevent", event_get_version());
    put_u64(o, "pointer_size", 8 * sizeof(void *));
    put_tv(o, "rusage_user", &ru.ru_utime);
    put_tv(o, "rusage_system", &ru.ru_stime);
    put_u64(o, "max_connections", sv.max_connections);
    put_u64(o, "curr_connections", sv.curr_connections);
    put_u64(o, "total_connections", sv.total_connections);
    put_u64(o, "rejected_connections", sv.rejected_connections);
    put_u64(o, "connection_structures", sv.connection_structures);
    put_u64(o, "response_obj_oom", sv.response_obj_oom);
    put_u64(o, "response_obj_count", sv.response_obj_count);
    put_u64(o, "response_obj_bytes", sv.response_obj_bytes);
    put_u64(o, "read_buf_count", sv.read_buf_count);
    put_u64(o, "read_buf_bytes", sv.read_buf_bytes);
    put_u64(o, "read_buf_bytes_free", sv.read_buf_bytes_free);
    put_u64(o, "read_buf_oom", sv.read_buf_oom);
    put_u64(o, "reserved_fds", sv.reserved_fds);
    put_u64(o, "cmd_get", s.cmd_get);
    put_u64(o, "cmd_set", s.cmd_set);
    put_u64(o, "cmd_flush", s.cmd_flush);
    put_u64(o, "cmd_touch", s.cmd_touch);
    put_u64(o, "cmd_meta", s.cmd_meta);
    put_u64(o, "get_hits", s.get_hits);
    put_u64(o, "get_misses", s.get_misses);
    /* Expired/flushed misses are seen by storage, which counts them. */
    put_u64(o, "get_expired", s.get_expired + ss.get_expired);
    put_u64(o, "get_flushed", s.get_flushed + ss.get_flushed);
    put_u64(o, "delete_misses", s.delete_misses);
    put_u64(o, "delete_hits", s.delete_hits);
    put_u64(o, "incr_misses", s.incr_misses);
    put_u64(o, "incr_hits", s.incr_hits);
    put_u64(o, "decr_misses", s.decr_misses);
    put_u64(o, "decr_hits", s.decr_hits);
    put_u64(o, "cas_misses", s.cas_misses);
    put_u64(o, "cas_hits", s.cas_hits);
    put_u64(o, "cas_badval", s.cas_badval);
    put_u64(o, "touch_hits", s.touch_hits);
    put_u64(o, "touch_misses", s.touch_misses);
    put_u64(o, "store_too_large", s.store_too_large);
    put_u64(o, "store_no_memory", s.store_no_memory);
    put_u64(o, "auth_cmds", s.auth_cmds);
    put_u64(o, "auth_errors", s.auth_errors);
    if (proto_cfg.settings && proto_cfg.settings->idle_timeout) /* memcached: only then */
        put_u64(o, "idle_kicks", sv.idle_kicks);
    put_u64(o, "bytes_read", s.bytes_read);
    put_u64(o, "bytes_written", s.bytes_written);
    put_u64(o, "limit_maxbytes", __atomic_load_n(&proto_cfg.mem_limit, __ATOMIC_RELAXED));
    put_u64(o, "accepting_conns", sv.accepting_conns);
    put_u64(o, "listen_disabled_num", sv.listen_disabled_num);
    put_u64(o, "time_in_listen_disabled_us", sv.time_in_listen_disabled_us);
    put_u64(o, "threads", sv.threads);
    put_u64(o, "conn_yields", sv.conn_yields);
    put_u64(o, "hash_power_level", ss.hash_power_level);
    put_u64(o, "hash_bytes", ss.hash_bytes);
    put_u64(o, "hash_is_expanding", ss.hash_is_expanding);
    /* Page moves (storage/slab.c): live items are rescued into free chunks of their class,
     * else evicted; cached never chunks an item, so chunk rescues are 0, and a referenced
     * item is waited for, never deleted (busy_deletes 0). */
    const struct cfg *cf = proto_cfg.settings;
    if (cf == NULL || !cf->no_slab_reassign) { /* memcached: only with slab_reassign */
        put_u64(o, "slab_reassign_rescues", ss.reassign_rescues);
        put_u64(o, "slab_reassign_chunk_rescues", 0);
        put_u64(o, "slab_reassign_evictions_nomem", ss.reassign_evictions_nomem);
        put_u64(o, "slab_reassign_inline_reclaim", 0);
        put_u64(o, "slab_reassign_busy_items", ss.reassign_busy_items);
        put_u64(o, "slab_reassign_busy_deletes", 0);
        put_u64(o, "slab_reassign_running", ss.reassign_running);
        put_u64(o, "slabs_moved", ss.slabs_moved);
    }
    if (cf == NULL || proto_crawler_enabled()) {
        put_u64(o, "lru_crawler_running", ss.crawl_running);
        put_u64(o, "lru_crawler_starts", ss.sweeper_runs + ss.crawl_starts);
    }
    bool mnt = cf == NULL || !cf->no_lru_maintainer; /* memcached: only with its maintainer */
    if (mnt)
        put_u64(o, "lru_maintainer_juggles", sv.lru_maintainer_juggles);
    put_u64(o, "malloc_fails", 0);
    put_u64(o, "log_worker_dropped", sv.log_worker_dropped);
    put_u64(o, "log_worker_written", sv.log_worker_written);
    put_u64(o, "log_watcher_skipped", sv.log_watcher_skipped);
    put_u64(o, "log_watcher_sent", sv.log_watcher_sent);
    put_u64(o, "log_watchers", sv.log_watchers);
    if (sv.tls_enabled) {
        if (cf != NULL && cf->ssl_session_cache)
            put_u64(o, "ssl_new_sessions", sv.ssl_new_sessions);
        put_u64(o, "ssl_handshake_errors", sv.ssl_handshake_errors);
        put_u64(o, "time_since_server_cert_refresh", sv.time_since_server_cert_refresh);
    }
    put_u64(o, "unexpected_napi_ids", 0);
    put_u64(o, "round_robin_fallback", 0);
    put_u64(o, "bytes", ss.bytes);
    put_u64(o, "curr_items", ss.curr_items);
    put_u64(o, "total_items", ss.total_items);
    put_u64(o, "slab_global_page_pool", ss.global_page_pool);
    put_u64(o, "expired_unfetched", ss.expired_unfetched);
    put_u64(o, "evicted_unfetched", ss.evicted_unfetched);
    if (mnt)
        put_u64(o, "evicted_active", ss.evicted_active);
    put_u64(o, "evictions", ss.evictions);
    put_u64(o, "reclaimed", ss.reclaimed);
    put_u64(o, "crawler_reclaimed", ss.crawler_reclaimed); /* sweeper + crawl passes */
    put_u64(o, "crawler_items_checked", ss.crawler_items_checked);
    put_u64(o, "lrutail_reflocked", 0);
    if (mnt) {
        put_u64(o, "moves_to_cold", 0);
        put_u64(o, "moves_to_warm", 0);
        put_u64(o, "moves_within_lru", 0);
        put_u64(o, "direct_reclaims", ss.evictions);
        put_u64(o, "lru_bumps_dropped", 0);
    }
}

/* ---- stats cached: cached's own counters ----
 * Kept out of `stats` so that its keys are memcached's, no more (memcached's own stats.t counts
 * them, and dashboards compare them): the expiry sweeper, lock contention, item header size,
 * where RSS goes, and the TLS handshake counters. */
static void stats_own(struct stat_out *o)
{
    struct storage_stats ss;
    storage_stats(&ss);
    struct proto_server_stats sv = {0};
    if (proto_hooks_active->server_stats)
        proto_hooks_active->server_stats(&sv);
    put_u64(o, "sweeper_runs", ss.sweeper_runs);
    put_u64(o, "sweeper_reclaimed", ss.sweeper_reclaimed);
    put_u64(o, "ref_saturated", ss.ref_saturated);
    put_u64(o, "shard_lock_waits", ss.shard_lock_waits);
    put_u64(o, "class_lock_waits", ss.class_lock_waits);
    put_u64(o, "item_header_bytes", ss.item_header_bytes);
    put_u64(o, "total_malloced", ss.total_malloced);
    struct mem_stats ms;
    mem_stats(&ms);
    put_u64(o, "malloc_allocated", ms.allocated);
    put_u64(o, "malloc_active", ms.active);
    put_u64(o, "malloc_resident", ms.resident);
    put_u64(o, "malloc_mapped", ms.mapped);
    if (sv.tls_enabled) {
        put_u64(o, "ssl_full_handshakes", sv.ssl_full_handshakes);
        put_u64(o, "ssl_resumed_handshakes", sv.ssl_resumed_handshakes);
        put_u64(o, "ssl_handshake_timeouts", sv.ssl_handshake_timeouts);
    }
}

/* ---- stats settings ---- */

/* cached's own names whose line memcached's name above already gave under the same name. */
static void setting_line(void *arg, const char *name, const char *value)
{
    static const char *const said[] = {
        "idle_timeout", "slab_automove", "binding_protocol", "slab_chunk_max", "ssl_chain_cert", "ssl_key",
        "ssl_verify_mode", "ssl_keyformat", "ssl_ciphers", "ssl_ca_cert", "ssl_wbuf_size",
        "ssl_session_cache", "ssl_min_version", "memory_file", "watcher_logbuf_size"};
    for (size_t i = 0; i < sizeof(said) / sizeof(*said); i++)
        if (strcmp(name, said[i]) == 0)
            return;
    put_str(arg, name, value);
}

static const char *str_or(const char *s, const char *dflt)
{
    return s && *s ? s : dflt;
}

static void stats_settings(struct stat_out *o)
{
    const struct cfg *s = proto_cfg.settings;
    if (s == NULL)
        return; /* no settings given (unit tests): not listed */
    struct storage_stats ss;
    storage_stats(&ss);
    put_u64(o, "maxbytes", __atomic_load_n(&proto_cfg.mem_limit, __ATOMIC_RELAXED));
    put_u64(o, "maxconns", s->conn_limit);
    put_u64(o, "tcpport", s->port);
    put_u64(o, "udpport", 0); /* no UDP is served, whatever -U said */
    put_str(o, "inter", str_or(s->listen, "NULL"));
    put_u64(o, "verbosity", proto_verbose());
    put_u64(o, "oldest", ss.oldest_live);
    put_str(o, "evictions", s->disable_evictions ? "off" : "on");
    put_str(o, "domain_socket", str_or(s->unix_socket, "NULL"));
    put_fmt(o, "umask", "%o", (unsigned)s->unix_mask);
    put_str(o, "shutdown_command", s->enable_shutdown ? "yes" : "no");
    put_fmt(o, "growth_factor", "%.2f", s->growth_factor);
    put_u64(o, "chunk_size", s->chunk_min);
    put_u64(o, "num_threads", s->threads);
    put_u64(o, "num_threads_per_udp", s->threads);
    put_fmt(o, "stat_key_prefix", "%c", proto_cfg.prefix_delimiter ? proto_cfg.prefix_delimiter : ':');
    put_str(o, "detail_enabled", proto_detail_enabled() ? "yes" : "no");
    put_u64(o, "reqs_per_event", s->reqs_per_event);
    put_str(o, "cas_enabled", s->disable_cas ? "no" : "yes");
    put_u64(o, "tcp_backlog", s->backlog);
    put_str(o, "binding_protocol", strcmp(s->protocol, "ascii") == 0    ? "ascii"
                                   : strcmp(s->protocol, "binary") == 0 ? "binary"
                                                                        : "auto-negotiate");
    put_str(o, "auth_enabled_sasl", s->sasl ? "yes" : "no");
    put_str(o, "auth_enabled_ascii", s->auth_file[0] ? s->auth_file : "no");
    put_u64(o, "item_size_max", s->item_size_max);
    put_str(o, "maxconns_fast", "yes"); /* over -c, a client gets an error and is closed */
    put_u64(o, "hashpower_init", s->hashpower);
    put_str(o, "slab_reassign", s->no_slab_reassign ? "no" : "yes");
    put_u64(o, "slab_automove", storage_automove_level()); /* `slabs automove` sets it */
    put_fmt(o, "slab_automove_ratio", "%.2f", storage_automove_ratio());
    put_u64(o, "slab_automove_window", s->slab_automove_window);
    /* cached's largest graduated chunk (items above it take a page-sized one, unchunked) */
    uint64_t page = s->item_size_max > (1u << 20) ? s->item_size_max : (1u << 20);
    put_u64(o, "slab_chunk_max",
            s->slab_chunk_max && s->slab_chunk_max < page / 2 ? s->slab_chunk_max : page / 2);
    put_str(o, "lru_crawler", proto_crawler_enabled() ? "yes" : "no");
    put_u64(o, "lru_crawler_sleep", proto_crawler_sleep());
    put_u64(o, "lru_crawler_tocrawl", proto_crawler_tocrawl());
    put_u64(o, "tail_repair_time", 0);
    put_str(o, "flush_enabled", s->disable_flush_all ? "no" : "yes");
    put_str(o, "dump_enabled", s->disable_dumping ? "no" : "yes");
    put_str(o, "hash_algorithm", "xxh64");
    /* the maintenance tick (see the top); its page moves stop under no_lru_maintainer */
    put_str(o, "lru_maintainer_thread", s->no_lru_maintainer ? "no" : "yes");
    /* cached's default (fetched twice: protected) stands for memcached's segmented LRU */
    put_str(o, "lru_segmented", storage_lru_flat() ? "no" : "yes");
    put_u64(o, "hot_lru_pct", 0);
    put_u64(o, "warm_lru_pct", 0);
    put_fmt(o, "hot_max_factor", "%.2f", 0.0);
    put_fmt(o, "warm_max_factor", "%.2f", 0.0);
    put_str(o, "temp_lru", "no");
    put_u64(o, "temporary_ttl", 0);
    put_u64(o, "idle_timeout", s->idle_timeout);
    put_u64(o, "watcher_logbuf_size", s->watcher_logbuf_size * 1024);
    put_u64(o, "worker_logbuf_size", 0);
    put_u64(o, "read_buf_mem_limit", 0);
    put_str(o, "track_sizes", storage_sizes_enabled() ? "yes" : "no");
    put_str(o, "inline_ascii_response", "no");
    /* memcached's TLS settings (Debian builds it with TLS), in its units. */
    static const char *const versions[] = {"tlsv1.0", "tlsv1.1", "tlsv1.2", "tlsv1.3"};
    static const unsigned verify[] = {0, 1, 3, 7}; /* OpenSSL's SSL_VERIFY_* bits */
    put_str(o, "ssl_enabled", s->ssl_enabled ? "yes" : "no");
    put_str(o, "ssl_chain_cert", str_or(s->ssl_chain_cert, "(null)"));
    put_str(o, "ssl_key", str_or(s->ssl_key, "(null)"));
    put_u64(o, "ssl_verify_mode", verify[s->ssl_verify_mode & 3]);
    put_u64(o, "ssl_keyformat", s->ssl_keyformat);
    put_str(o, "ssl_ciphers", str_or(s->ssl_ciphers, "NULL"));
    put_str(o, "ssl_ca_cert", str_or(s->ssl_ca_cert, "NULL"));
    put_u64(o, "ssl_wbuf_size", s->ssl_wbuf_size * 1024);
    put_str(o, "ssl_session_cache", s->ssl_session_cache ? "yes" : "no");
    put_str(o, "ssl_kernel_tls", "no");
    put_str(o, "ssl_min_version", versions[s->ssl_min_version & 3]);
    put_str(o, "num_napi_ids", "(null)");
    put_str(o, "memory_file", str_or(s->memory_file, "(null)"));
    /* Then every cached setting under its own name (config's table). */
    cfg_each(s, setting_line, o);
}

/* ---- stats items / slabs ---- */

struct class_ctx {
    struct stat_out *o;
    const struct proto_stats *sum;
};

static void put_cls(struct stat_out *o, const char *group, unsigned id, const char *name,
                    uint64_t v)
{
    char key[64];
    if (group)
        snprintf(key, sizeof(key), "%s:%u:%s", group, id, name);
    else
        snprintf(key, sizeof(key), "%u:%s", id, name);
    put_u64(o, key, v);
}

static void item_class(void *arg, const struct slab_class_stats *s)
{
    struct class_ctx *c = arg;
    struct stat_out *o = c->o;
    if (s->number == 0)
        return; /* memcached lists only classes holding items */
    unsigned id = s->id;
    const struct proto_class_stats *k = &c->sum->cls[id < PROTO_CLASSES ? id : 0];
#define I(name, v) put_cls(o, "items", id, name, (v))
    const struct cfg *cf = proto_cfg.settings;
    bool mnt = cf == NULL || !cf->no_lru_maintainer; /* memcached: only with its maintainer */
    I("number", s->number);
    if (mnt) {
        I("number_hot", 0);
        I("number_warm", 0);
        I("number_cold", s->number);
        I("age_hot", 0);
        I("age_warm", 0);
    }
    I("age", s->age);
    I("mem_requested", s->mem_requested);
    I("evicted", s->evicted);
    I("evicted_nonzero", s->evicted_nonzero);
    I("evicted_time", s->evicted_time);
    I("outofmemory", s->outofmemory);
    I("tailrepairs", 0);
    I("reclaimed", s->reclaimed);
    I("expired_unfetched", s->expired_unfetched);
    I("evicted_unfetched", s->evicted_unfetched);
    if (mnt)
        I("evicted_active", s->evicted_active);
    I("crawler_reclaimed", s->crawler_reclaimed);
    I("crawler_items_checked", s->crawler_items_checked);
    I("lrutail_reflocked", 0);
    if (mnt) {
        I("moves_to_cold", 0);
        I("moves_to_warm", 0);
        I("moves_within_lru", 0);
        I("direct_reclaims", s->evicted);
        I("hits_to_hot", 0);
        I("hits_to_warm", 0);
        I("hits_to_cold", k->get_hits + k->touch_hits);
        I("hits_to_temp", 0);
    }
#undef I
}

static void slab_class(void *arg, const struct slab_class_stats *s)
{
    struct class_ctx *c = arg;
    struct stat_out *o = c->o;
    unsigned id = s->id;
    const struct proto_class_stats *k = &c->sum->cls[id < PROTO_CLASSES ? id : 0];
#define S(name, v) put_cls(o, NULL, id, name, (v))
    S("chunk_size", s->chunk_size);
    S("chunks_per_page", s->chunks_per_page);
    S("total_pages", s->total_pages);
    S("total_chunks", s->total_chunks);
    S("used_chunks", s->used_chunks);
    S("free_chunks", s->free_chunks);
    S("free_chunks_end", 0); /* a page is split into chunks whole when a class gets it */
#define SC(name) S(#name, k->name);
    PROTO_CLASS_STATS(SC)
#undef SC
#undef S
}

static void stats_classes(struct proto_ctx *x, struct stat_out *o, bool slabs)
{
    struct proto_stats *sum = mem_alloc(sizeof(*sum));
    if (!sum)
        return;
    sum_counters(x, sum);
    struct class_ctx c = {o, sum};
    unsigned n = storage_slab_stats(slabs ? slab_class : item_class, &c);
    mem_free(sum);
    if (slabs) {
        struct storage_stats ss;
        storage_stats(&ss);
        put_u64(o, "active_slabs", n);
        put_u64(o, "total_malloced", ss.total_malloced);
    }
}

/* ---- stats conns ---- */

static void conn_lines(void *arg, const struct proto_conn_info *c)
{
    struct stat_out *o = arg;
    char key[48];
    snprintf(key, sizeof(key), "%d:addr", c->fd);
    put_str(o, key, c->addr);
    if (c->listen_addr) {
        snprintf(key, sizeof(key), "%d:listen_addr", c->fd);
        put_str(o, key, c->listen_addr);
    }
    snprintf(key, sizeof(key), "%d:state", c->fd);
    put_str(o, key, c->state);
    snprintf(key, sizeof(key), "%d:secs_since_last_cmd", c->fd);
    put_u64(o, key, c->secs_since_last_cmd);
}

/* ---- stats sizes ---- */

static void text_line(void *arg, const char *name, const char *value);

static void size_line(void *arg, uint32_t size, uint32_t count)
{
    char key[16];
    snprintf(key, sizeof(key), "%u", size);
    put_u64(arg, key, count);
}

/* stats sizes_enable / sizes_disable: memcached's status lines, with no END after them. */
static void stats_sizes_switch(struct proto_ctx *x, bool enable)
{
    struct stat_out o = {text_line, x->r};
    enum storage_sizes_status st = SIZES_ENABLED;
    if (enable)
        st = storage_sizes_enable(false);
    else
        storage_sizes_disable();
    put_str(&o, "sizes_status", !enable ? "disabled" : st == SIZES_ENABLED ? "enabled" : "error");
    if (st != SIZES_ENABLED)
        put_str(&o, "sizes_error", st == SIZES_NO_CAS ? "cas_support_disabled" : "no_memory");
}

/* ---- the groups, for any framing ---- */

bool proto_stats_group(struct proto_ctx *x, const char *sub, size_t len, proto_stat_fn fn,
                       void *arg)
{
    struct stat_out o = {fn, arg};
#define SUB(lit) (len == sizeof(lit) - 1 && memcmp(sub, lit, len) == 0)
    if (len == 0)
        stats_general(x, &o);
    else if (SUB("settings"))
        stats_settings(&o);
    else if (SUB("items"))
        stats_classes(x, &o, false);
    else if (SUB("slabs"))
        stats_classes(x, &o, true);
    else if (SUB("sizes")) {
        if (!storage_sizes_each(size_line, &o))
            put_str(&o, "sizes_status", "disabled");
    }
    else if (SUB("cached"))
        stats_own(&o);
    else if (SUB("extstore"))
        ; /* memcached without extstore lists nothing, and ends the reply */
    else if (SUB("conns")) {
        if (proto_hooks_active->conns_each)
            proto_hooks_active->conns_each(conn_lines, &o);
    } else
        return false;
#undef SUB
    return true;
}

void proto_stats_reset(struct proto_ctx *x)
{
    if (proto_hooks_active->reset_stats)
        proto_hooks_active->reset_stats();
    else
        memset(x->st, 0, sizeof(*x->st));
    storage_stats_reset();
    proto_detail_clear();
}

/* ---- stats latency / stats hotkeys (cached's own, protocol/observe.h) ---- */

static void stats_observe(struct proto_ctx *x, bool latency)
{
    struct proto_stats *sum = mem_alloc(sizeof(*sum)); /* not on a worker's stack */
    if (!sum)
        return;
    sum_counters(x, sum);
    if (latency)
        obs_stats_latency(x->r, &sum->obs);
    else
        obs_stats_hotkeys(x->r, &sum->obs);
    mem_free(sum);
}

/* ---- the text command ---- */

static void text_line(void *arg, const char *name, const char *value)
{
    struct reply *r = arg;
    size_t nl = strlen(name), vl = strlen(value);
    char *p = reply_reserve(r, nl + vl + 8);
    if (!p) { /* longer than a reply block: a settings string; rare, copy piecewise */
        proto_stat_str(r, name, value);
        return;
    }
    char *s = p;
    memcpy(p, "STAT ", 5);
    memcpy(p + 5, name, nl);
    p[5 + nl] = ' ';
    memcpy(p + 6 + nl, value, vl);
    memcpy(p + 6 + nl + vl, "\r\n", 2);
    (void)s;
    reply_commit(r, nl + vl + 8);
}

static void end(struct proto_ctx *x)
{
    reply_add(x->r, MSG_END, MSG_LEN(MSG_END));
}

static void stats_detail(struct proto_ctx *x)
{
    const struct request *q = x->q;
    const struct token *a = q->ntok >= 3 ? &q->tok[2] : NULL;
    if (a && TOK_IS(a, "on")) {
        proto_detail_enable(true);
        reply_add(x->r, MSG_OK, MSG_LEN(MSG_OK));
    } else if (a && TOK_IS(a, "off")) {
        proto_detail_enable(false);
        reply_add(x->r, MSG_OK, MSG_LEN(MSG_OK));
    } else if (a && TOK_IS(a, "dump")) {
        proto_detail_dump(x->r);
        end(x);
    } else {
        reply_add(x->r, MSG_STATS_DETAIL_USAGE, MSG_LEN(MSG_STATS_DETAIL_USAGE));
    }
}

enum cmd_result proto_cmd_stats(struct proto_ctx *x, int arg)
{
    (void)arg;
    const struct request *q = x->q;
    if (q->ntok == 1) {
        proto_stats_group(x, "", 0, text_line, x->r);
        end(x);
        return CMD_DONE;
    }
    const struct token *sub = &q->tok[1];
    if (TOK_IS(sub, "reset")) {
        proto_stats_reset(x);
        reply_add(x->r, MSG_RESET, MSG_LEN(MSG_RESET));
    } else if (TOK_IS(sub, "detail")) {
        stats_detail(x);
    } else if (TOK_IS(sub, "cachedump")) {
        proto_cachedump(x);
    } else if (TOK_IS(sub, "sizes_enable") || TOK_IS(sub, "sizes_disable")) {
        stats_sizes_switch(x, TOK_IS(sub, "sizes_enable"));
    } else if (TOK_IS(sub, "latency") || TOK_IS(sub, "hotkeys")) {
        stats_observe(x, TOK_IS(sub, "latency"));
        end(x);
    } else if (proto_stats_group(x, sub->p, sub->len, text_line, x->r)) {
        end(x);
    } else {
        reply_add(x->r, MSG_ERROR, MSG_LEN(MSG_ERROR));
    }
    return CMD_DONE;
}

/* ---- stats cachedump <class> <limit> ---- */

/* memcached's limits: class ids below 64 (MAX_NUMBER_OF_SLAB_CLASSES; cached's 8-byte steps
 * can make more classes, and those can be dumped too), 2 MB of reply at most. */
#define CACHEDUMP_MAX_CLASSES 64
#define CACHEDUMP_MAX_BYTES (2u * 1024 * 1024)

struct dump_ctx {
    struct reply *r;
    uint32_t limit, shown;
    size_t bytes;
};

static bool dump_item(void *arg, const struct item *it)
{
    struct dump_ctx *d = arg;
    if (d->limit && d->shown >= d->limit)
        return false;
    if (item_iflags(it) & ITEM_KEY_BINARY) /* memcached does not print binary keys */
        return true;
    char line[KEY_MAX_LENGTH + 64];
    int n = snprintf(line, sizeof(line), "ITEM %.*s [%u b; %llu s]\r\n", (int)it->nkey,
                     item_key(it), it->nbytes,
                     it->exptime == 0 ? 0ull : (unsigned long long)clock_unix(it->exptime));
    if (d->bytes + (size_t)n + 6 > CACHEDUMP_MAX_BYTES)
        return false;
    reply_add(d->r, line, (size_t)n);
    d->bytes += (size_t)n;
    d->shown++;
    return true;
}

void proto_cachedump(struct proto_ctx *x)
{
    const struct request *q = x->q;
    if (proto_cfg.dump_disabled) {
        reply_add(x->r, MSG_CACHEDUMP_NOT_ALLOWED, MSG_LEN(MSG_CACHEDUMP_NOT_ALLOWED));
        return;
    }
    if (q->ntok < 4) {
        reply_add(x->r, MSG_BAD_COMMAND_LINE, MSG_LEN(MSG_BAD_COMMAND_LINE));
        return;
    }
    uint32_t id, limit;
    if (!tok_strtoul(&q->tok[2], &id) || !tok_strtoul(&q->tok[3], &limit)) {
        reply_add(x->r, MSG_BAD_FORMAT, MSG_LEN(MSG_BAD_FORMAT));
        return;
    }
    struct dump_ctx d = {x->r, limit, 0, 0};
    /* Below 64, a class cached does not have (or 0) dumps nothing, as an empty one does in
     * memcached; a class cached has is dumped whatever its id. */
    if (!storage_class_dump(id, dump_item, &d) && id >= CACHEDUMP_MAX_CLASSES) {
        reply_add(x->r, MSG_ILLEGAL_SLAB_ID, MSG_LEN(MSG_ILLEGAL_SLAB_ID));
        return;
    }
    end(x);
}

/* ---- debugtime N|p|r (memcached-debug's test hook; --debug-hooks only) ---- */

/* debugtime's argument: a count of seconds, unsigned or negative. */
static bool debugtime_delta(const struct token *t, int64_t *delta)
{
    uint64_t n;
    int32_t n32;
    if (tok_strtoull(t, &n)) {
        *delta = (int64_t)n;
        return true;
    }
    if (tok_strtol(t, &n32)) {
        *delta = n32;
        return true;
    }
    return false;
}

enum cmd_result proto_cmd_debugtime(struct proto_ctx *x, int arg)
{
    (void)arg;
    const struct token *t = &x->q->tok[1];
    int64_t delta;
    bool ok = proto_cfg.debug_hooks;
    if (ok && (TOK_IS(t, "p") || TOK_IS(t, "r")))
        clock_debug_pause(TOK_IS(t, "p"));
    else if (ok && debugtime_delta(t, &delta))
        clock_debug_move(delta);
    else
        ok = false;
    if (ok)
        reply_add(x->r, MSG_OK, MSG_LEN(MSG_OK));
    else
        reply_add(x->r, MSG_ERROR, MSG_LEN(MSG_ERROR));
    return CMD_DONE;
}

/* ---- cache_memlimit <MB> [noreply] ---- */

enum cmd_result proto_cmd_memlimit(struct proto_ctx *x, int arg)
{
    (void)arg;
    struct request *q = x->q;
    proto_noreply_maybe(q);
    uint32_t mb;
    if (!tok_strtoul(&q->tok[1], &mb)) {
        OUT(x, MSG_ERROR);
    } else if (mb < 8) {
        OUT(x, MSG_MEMLIMIT_TOO_SMALL);
    } else if (mb > 1000000000) {
        OUT(x, MSG_MEMLIMIT_NOT_BYTES);
    } else if (storage_set_mem_limit((size_t)mb * 1024 * 1024)) {
        __atomic_store_n(&proto_cfg.mem_limit, (uint64_t)mb * 1024 * 1024, __ATOMIC_RELAXED);
        if (proto_verbose() > 0) /* memcached's -v line */
            proto_trace_printf("maxbytes adjusted to %llum\n", (unsigned long long)mb);
        OUT(x, MSG_OK);
    } else {
        OUT(x, MSG_MEMLIMIT_FAILED);
    }
    return CMD_DONE;
}
