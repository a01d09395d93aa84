/*
 * stats: the `stats` command and its sub-commands (settings, items, slabs, sizes, conns,
 * reset, detail). Field names and order are memcached 1.6.18's wherever cached has the same
 * concept; the split of `stats` between protocol and server is documented in protocol/proto.h.
 * Counters come from the per-thread struct proto_stats (summed through a hook) and storage.
 */
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "config/config.h"
#include "protocol/internal.h"
#include "storage/mem.h"

static void stat_rusage(struct reply *r, const char *name, const struct timeval *tv)
{
    reply_printf(r, "STAT %s %ld.%06ld\r\n", name, (long)tv->tv_sec, (long)tv->tv_usec);
}

static void stats_general(struct proto_ctx *x)
{
    struct reply *r = x->r;
    const struct proto_hooks *h = proto_hooks_active;
    rel_time_t now = clock_now();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);

    proto_stat_u64(r, "pid", (uint64_t)getpid());
    proto_stat_u64(r, "uptime", clock_uptime());
    proto_stat_u64(r, "time", (uint64_t)clock_unix(now));
    proto_stat_str(r, "version", PROTO_VERSION);
    proto_stat_str(r, "libevent", event_get_version());
    proto_stat_u64(r, "pointer_size", 8 * sizeof(void *));
    stat_rusage(r, "rusage_user", &ru.ru_utime);
    stat_rusage(r, "rusage_system", &ru.ru_stime);
    if (h->server_stats)
        h->server_stats(r);

    struct proto_stats sum;
    memset(&sum, 0, sizeof(sum));
    if (h->sum_stats)
        h->sum_stats(&sum);
    else
        proto_stats_add(&sum, x->st); /* no server (unit tests): this thread's counters */
    struct storage_stats ss;
    storage_stats(&ss);

    proto_stat_u64(r, "cmd_get", sum.cmd_get);
    proto_stat_u64(r, "cmd_set", sum.cmd_set);
    proto_stat_u64(r, "cmd_flush", sum.cmd_flush);
    proto_stat_u64(r, "cmd_touch", sum.cmd_touch);
    proto_stat_u64(r, "cmd_meta", sum.cmd_meta);
    proto_stat_u64(r, "get_hits", sum.get_hits);
    proto_stat_u64(r, "get_misses", sum.get_misses);
    /* Expired/flushed misses are seen by storage, which counts them. */
    proto_stat_u64(r, "get_expired", sum.get_expired + ss.get_expired);
    proto_stat_u64(r, "get_flushed", sum.get_flushed + ss.get_flushed);
    proto_stat_u64(r, "delete_misses", sum.delete_misses);
    proto_stat_u64(r, "delete_hits", sum.delete_hits);
    proto_stat_u64(r, "incr_misses", sum.incr_misses);
    proto_stat_u64(r, "incr_hits", sum.incr_hits);
    proto_stat_u64(r, "decr_misses", sum.decr_misses);
    proto_stat_u64(r, "decr_hits", sum.decr_hits);
    proto_stat_u64(r, "cas_misses", sum.cas_misses);
    proto_stat_u64(r, "cas_hits", sum.cas_hits);
    proto_stat_u64(r, "cas_badval", sum.cas_badval);
    proto_stat_u64(r, "touch_hits", sum.touch_hits);
    proto_stat_u64(r, "touch_misses", sum.touch_misses);
    proto_stat_u64(r, "store_too_large", sum.store_too_large);
    proto_stat_u64(r, "store_no_memory", sum.store_no_memory);
    proto_stat_u64(r, "auth_cmds", sum.auth_cmds);
    proto_stat_u64(r, "auth_errors", sum.auth_errors);
    proto_stat_u64(r, "bytes_read", sum.bytes_read);
    proto_stat_u64(r, "bytes_written", sum.bytes_written);
    proto_stat_u64(r, "limit_maxbytes", proto_cfg.mem_limit);
    if (h->server_stats_tail)
        h->server_stats_tail(r);
    proto_stat_u64(r, "hash_power_level", ss.hash_power_level);
    proto_stat_u64(r, "hash_bytes", ss.hash_bytes);
    proto_stat_u64(r, "hash_is_expanding", ss.hash_is_expanding);
    proto_stat_u64(r, "slabs_moved", ss.slabs_moved);
    proto_stat_u64(r, "bytes", ss.bytes);
    proto_stat_u64(r, "curr_items", ss.curr_items);
    proto_stat_u64(r, "total_items", ss.total_items);
    proto_stat_u64(r, "expired_unfetched", ss.expired_unfetched);
    proto_stat_u64(r, "evicted_unfetched", ss.evicted_unfetched);
    proto_stat_u64(r, "evicted_active", ss.evicted_active);
    proto_stat_u64(r, "evictions", ss.evictions);
    proto_stat_u64(r, "reclaimed", ss.reclaimed);
    /* cached's own, after memcached's: the expiry sweeper and where RSS goes. */
    proto_stat_u64(r, "sweeper_runs", ss.sweeper_runs);
    proto_stat_u64(r, "sweeper_reclaimed", ss.sweeper_reclaimed);
    proto_stat_u64(r, "ref_saturated", ss.ref_saturated);
    proto_stat_u64(r, "item_header_bytes", ss.item_header_bytes);
    proto_stat_u64(r, "total_malloced", ss.total_malloced);
    struct mem_stats ms;
    mem_stats(&ms);
    proto_stat_u64(r, "malloc_allocated", ms.allocated);
    proto_stat_u64(r, "malloc_active", ms.active);
    proto_stat_u64(r, "malloc_resident", ms.resident);
    proto_stat_u64(r, "malloc_mapped", ms.mapped);
}

/* ---- stats settings ---- */

/* memcached's names for the settings cached shares, in memcached's order. */
static const char *const memcached_setting_names[] = {
    "maxbytes", "maxconns", "tcpport", "inter", "verbosity", "evictions", "domain_socket",
    "umask", "shutdown_command", "growth_factor", "chunk_size", "num_threads",
    "reqs_per_event", "cas_enabled", "tcp_backlog", "item_size_max", "slab_automove",
    "flush_enabled", "idle_timeout",
    /* printed by tls_auth_settings under memcached's names and in its units */
    "auth_file", "enable_ssl", "ssl_chain_cert", "ssl_key", "ssl_verify_mode", "ssl_keyformat",
    "ssl_ciphers", "ssl_ca_cert", "ssl_wbuf_size", "ssl_session_cache", "ssl_min_version",
};

/* memcached's auth_* and ssl_* lines of `stats settings`. */
static void tls_auth_settings(struct reply *r, const struct cfg *s)
{
    static const char *const versions[] = {"tlsv1.0", "tlsv1.1", "tlsv1.2", "tlsv1.3"};
    static const unsigned verify[] = {0, 1, 3, 7}; /* OpenSSL's SSL_VERIFY_* bits */
    proto_stat_str(r, "auth_enabled_sasl", s->sasl ? "yes" : "no");
    proto_stat_str(r, "auth_enabled_ascii", s->auth_file[0] ? s->auth_file : "no");
    proto_stat_str(r, "ssl_enabled", s->ssl_enabled ? "yes" : "no");
    proto_stat_str(r, "ssl_chain_cert", s->ssl_chain_cert[0] ? s->ssl_chain_cert : "(null)");
    proto_stat_str(r, "ssl_key", s->ssl_key[0] ? s->ssl_key : "(null)");
    proto_stat_u64(r, "ssl_verify_mode", verify[s->ssl_verify_mode & 3]);
    proto_stat_u64(r, "ssl_keyformat", s->ssl_keyformat);
    proto_stat_str(r, "ssl_ciphers", s->ssl_ciphers[0] ? s->ssl_ciphers : "NULL");
    proto_stat_str(r, "ssl_ca_cert", s->ssl_ca_cert[0] ? s->ssl_ca_cert : "NULL");
    proto_stat_u64(r, "ssl_wbuf_size", s->ssl_wbuf_size * 1024);
    proto_stat_str(r, "ssl_session_cache", s->ssl_session_cache ? "yes" : "no");
    proto_stat_str(r, "ssl_kernel_tls", "no");
    proto_stat_str(r, "ssl_min_version", versions[s->ssl_min_version & 3]);
}

struct settings_ctx {
    struct reply *r;
};

static void setting_line(void *arg, const char *name, const char *value)
{
    struct settings_ctx *c = arg;
    /* The memcached-named line already said it. */
    for (size_t i = 0; i < sizeof(memcached_setting_names) / sizeof(*memcached_setting_names);
         i++)
        if (strcmp(name, memcached_setting_names[i]) == 0)
            return;
    proto_stat_str(c->r, name, value);
}

static void stats_settings(struct proto_ctx *x)
{
    struct reply *r = x->r;
    const struct cfg *s = proto_cfg.settings;
    if (s == NULL)
        return;
    proto_stat_u64(r, "maxbytes", s->mem_limit);
    proto_stat_u64(r, "maxconns", s->conn_limit);
    proto_stat_u64(r, "tcpport", s->port);
    proto_stat_str(r, "inter", s->listen && *s->listen ? s->listen : "NULL");
    proto_stat_u64(r, "verbosity", __atomic_load_n(&s->verbose, __ATOMIC_RELAXED));
    proto_stat_str(r, "evictions", s->disable_evictions ? "off" : "on");
    proto_stat_str(r, "domain_socket",
                   s->unix_socket && *s->unix_socket ? s->unix_socket : "NULL");
    reply_printf(r, "STAT umask %o\r\n", (unsigned)s->unix_mask);
    proto_stat_str(r, "shutdown_command", s->enable_shutdown ? "yes" : "no");
    reply_printf(r, "STAT growth_factor %.2f\r\n", s->growth_factor);
    proto_stat_u64(r, "chunk_size", s->chunk_min);
    proto_stat_u64(r, "num_threads", s->threads);
    proto_stat_u64(r, "reqs_per_event", s->reqs_per_event);
    proto_stat_str(r, "cas_enabled", s->disable_cas ? "no" : "yes");
    proto_stat_u64(r, "tcp_backlog", s->backlog);
    proto_stat_u64(r, "item_size_max", s->item_size_max);
    proto_stat_u64(r, "slab_automove", storage_automove_level()); /* `slabs automove` sets it */
    proto_stat_str(r, "flush_enabled", s->disable_flush_all ? "no" : "yes");
    proto_stat_u64(r, "idle_timeout", s->idle_timeout);
    tls_auth_settings(r, s);
    /* Then every cached setting under its own name (config's table). */
    struct settings_ctx c = {r};
    cfg_each(s, setting_line, &c);
}

/* ---- stats items / slabs ---- */

static void item_class(void *arg, const struct slab_class_stats *s)
{
    struct reply *r = arg;
    if (s->used_chunks == 0 && s->number == 0)
        return; /* memcached lists only classes holding items */
    unsigned id = s->id;
    /* memcached's fields whose concept cached has, in memcached's order (no HOT/WARM/COLD
     * segments, tail repairs or crawler here). */
    reply_printf(r,
                 "STAT items:%u:number %llu\r\n"
                 "STAT items:%u:age %llu\r\n"
                 "STAT items:%u:mem_requested %llu\r\n"
                 "STAT items:%u:evicted %llu\r\n"
                 "STAT items:%u:evicted_nonzero %llu\r\n"
                 "STAT items:%u:evicted_time %llu\r\n"
                 "STAT items:%u:outofmemory %llu\r\n"
                 "STAT items:%u:reclaimed %llu\r\n"
                 "STAT items:%u:expired_unfetched %llu\r\n"
                 "STAT items:%u:evicted_unfetched %llu\r\n"
                 "STAT items:%u:evicted_active %llu\r\n",
                 id, (unsigned long long)s->number, id, (unsigned long long)s->age, id,
                 (unsigned long long)s->mem_requested, id, (unsigned long long)s->evicted, id,
                 (unsigned long long)s->evicted_nonzero, id, (unsigned long long)s->evicted_time,
                 id, (unsigned long long)s->outofmemory, id, (unsigned long long)s->reclaimed, id,
                 (unsigned long long)s->expired_unfetched, id,
                 (unsigned long long)s->evicted_unfetched, id,
                 (unsigned long long)s->evicted_active);
}

static void slab_class(void *arg, const struct slab_class_stats *s)
{
    struct reply *r = arg;
    unsigned id = s->id;
    reply_printf(r,
                 "STAT %u:chunk_size %u\r\n"
                 "STAT %u:chunks_per_page %u\r\n"
                 "STAT %u:total_pages %llu\r\n"
                 "STAT %u:total_chunks %llu\r\n"
                 "STAT %u:used_chunks %llu\r\n"
                 "STAT %u:free_chunks %llu\r\n",
                 id, s->chunk_size, id, s->chunks_per_page, id,
                 (unsigned long long)s->total_pages, id, (unsigned long long)s->total_chunks,
                 id, (unsigned long long)s->used_chunks, id, (unsigned long long)s->free_chunks);
}

static void stats_slabs(struct proto_ctx *x)
{
    unsigned n = storage_slab_stats(slab_class, x->r);
    struct storage_stats ss;
    storage_stats(&ss);
    proto_stat_u64(x->r, "active_slabs", n);
    proto_stat_u64(x->r, "total_malloced", ss.total_malloced);
}

/* ---- stats latency / stats hotkeys (cached's own, protocol/observe.h) ---- */

static void stats_observe(struct proto_ctx *x, bool latency)
{
    const struct proto_hooks *h = proto_hooks_active;
    struct proto_stats *sum = mem_alloc(sizeof(*sum)); /* ~20 KB: not on a worker's stack */
    memset(sum, 0, sizeof(*sum));
    if (h->sum_stats)
        h->sum_stats(sum);
    else
        proto_stats_add(sum, x->st);
    if (latency)
        obs_stats_latency(x->r, &sum->obs);
    else
        obs_stats_hotkeys(x->r, &sum->obs);
    mem_free(sum);
}

/* ---- the command ---- */

static void end(struct proto_ctx *x)
{
    reply_add(x->r, MSG_END, MSG_LEN(MSG_END));
}

enum cmd_result proto_cmd_stats(struct proto_ctx *x, int arg)
{
    (void)arg;
    const struct request *q = x->q;
    const struct proto_hooks *h = proto_hooks_active;
    if (q->ntok == 1) {
        stats_general(x);
        end(x);
        return CMD_DONE;
    }
    const struct token *sub = &q->tok[1];
    if (TOK_IS(sub, "reset")) {
        if (h->reset_stats)
            h->reset_stats();
        else
            memset(x->st, 0, sizeof(*x->st));
        storage_stats_reset();
        reply_add(x->r, MSG_RESET, MSG_LEN(MSG_RESET));
    } else if (TOK_IS(sub, "detail")) {
        /* cached keeps no per-prefix stats: accept the switches, dump nothing. */
        const struct token *a = q->ntok >= 3 ? &q->tok[2] : NULL;
        if (a && (TOK_IS(a, "on") || TOK_IS(a, "off")))
            reply_add(x->r, MSG_OK, MSG_LEN(MSG_OK));
        else if (a && TOK_IS(a, "dump"))
            end(x);
        else
            reply_add(x->r, MSG_STATS_DETAIL_USAGE, MSG_LEN(MSG_STATS_DETAIL_USAGE));
    } else if (TOK_IS(sub, "settings")) {
        stats_settings(x);
        end(x);
    } else if (TOK_IS(sub, "items")) {
        storage_slab_stats(item_class, x->r);
        end(x);
    } else if (TOK_IS(sub, "slabs")) {
        stats_slabs(x);
        end(x);
    } else if (TOK_IS(sub, "sizes")) {
        reply_add(x->r, MSG_STATS_SIZES, MSG_LEN(MSG_STATS_SIZES));
        end(x);
    } else if (TOK_IS(sub, "latency") || TOK_IS(sub, "hotkeys")) {
        stats_observe(x, TOK_IS(sub, "latency"));
        end(x);
    } else if (TOK_IS(sub, "conns")) {
        if (h->conns_stats)
            h->conns_stats(x->r);
        end(x);
    } else {
        reply_add(x->r, MSG_ERROR, MSG_LEN(MSG_ERROR));
    }
    return CMD_DONE;
}
