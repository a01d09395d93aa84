/*
 * admin: memcached's `lru_crawler` command family, answered as memcached 1.6.18 answers it.
 *
 * The crawler serves the passes a client asks for; `lru_crawler enable|disable` switch it
 * (stats settings `lru_crawler`). The background expiry sweeper, cached's LRU maintainer, is
 * not switched by them (-o lru_crawler / no_lru_crawler / no_modern set both at start):
 *   lru_crawler crawl all|<ids>          frees the expired and flushed items of those classes,
 *                                      in steps from the maintenance tick (storage/crawl.c);
 *                                      stats lru_crawler_running is 1 until it is done
 *   lru_crawler metadump all|hash|<ids>  dumps every live item (a hash-table walk; "all" and a
 *                                      class list walk the same table, filtered by class),
 *                                      streamed: see "metadump" below; refused after
 *                                      pipelined commands, as memcached's
 *   lru_crawler tocrawl N               items a crawl checks per class at most (0: all)
 *   lru_crawler sleep N                 µs the crawl pass pauses after each 1000 chunks
 *                                      (memcached's lru_crawler_sleep; storage_crawl_tick)
 * memcached has one crawler: a crawl or a metadump while another runs answers BUSY; both
 * refuse while the crawler is disabled.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "protocol/internal.h"
#include "storage/mem.h"

#define MSG_CRAWLER_DISABLED "CLIENT_ERROR lru crawler disabled\r\n"
#define MSG_BADCLASS "BADCLASS invalid class id\r\n"
#define MSG_CRAWLER_START_FAIL "ERROR failed to start lru crawler thread\r\n"
#define MSG_SLEEP_TOO_LONG "CLIENT_ERROR sleep must be one second or less\r\n"
#define MSG_CRAWLER_BUSY "BUSY currently processing crawler request\r\n"
#define MSG_CRAWLER_ERROR "ERROR an unknown error happened\r\n"
#define MSG_METADUMP_PIPELINED "ERROR cannot pipeline other commands before metadump\r\n"
/* memcached's valid class ids are 1..63 (MAX_NUMBER_OF_SLAB_CLASSES 64); cached may have more
 * classes (8-byte steps for small items), so its own ids are valid too. */
#define MEMCACHED_MAX_CLASS_ID 63

static _Atomic int64_t crawler_tocrawl = -1; /* -1: -o lru_crawler_tocrawl's (settings) */

uint32_t proto_crawler_sleep(void)
{
    return storage_crawl_sleep();
}

uint32_t proto_crawler_tocrawl(void)
{
    int64_t v = atomic_load(&crawler_tocrawl);
    return v < 0 ? (uint32_t)settings.lru_crawler_tocrawl : (uint32_t)v;
}

/* The crawler (crawl and metadump served): on at start when the expiry sweeper is (-o
 * lru_crawler / no_lru_crawler / no_modern set both, as memcached's start its crawler thread
 * and LRU maintainer); `lru_crawler enable|disable` switch the crawler only, as memcached's
 * stop its crawler thread while its maintainer keeps reclaiming expired items. */
static _Atomic int crawler_state = -1; /* -1: not switched yet, follows settings */

bool proto_crawler_enabled(void)
{
    int v = atomic_load(&crawler_state);
    return v < 0 ? __atomic_load_n(&settings.sweeper, __ATOMIC_RELAXED) : v != 0;
}

/* "all", "hash" or a comma-separated list of class ids -> a bitmap of class ids (*out NULL:
 * all). */
static bool parse_classes(const struct token *t, uint64_t *classes, uint64_t **out)
{
    *out = NULL;
    if (TOK_IS(t, "all") || TOK_IS(t, "hash"))
        return true;
    unsigned max = storage_class_count();
    if (max < MEMCACHED_MAX_CLASS_ID)
        max = MEMCACHED_MAX_CLASS_ID;
    if (max >= STORAGE_MAX_CLASS_ID)
        max = STORAGE_MAX_CLASS_ID - 1;
    memset(classes, 0, STORAGE_MAX_CLASS_ID / 64 * sizeof(*classes));
    const char *p = t->p, *end = t->p + t->len;
    while (p <= end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c ? c : end;
        if (e > p) { /* strtok_r skips empty pieces */
            struct token n = {p, (size_t)(e - p)};
            uint32_t id;
            if (!tok_strtoul(&n, &id) || id < 1 || id > max)
                return false;
            classes[id / 64] |= (uint64_t)1 << (id % 64);
        }
        p = e + 1;
    }
    *out = classes;
    return true;
}

/* memcached's uriencode: every byte but [A-Za-z0-9._~-] as %XX. */
static char *uriencode(const char *s, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            *out++ = (char)ch;
        } else {
            *out++ = '%';
            *out++ = hex[ch >> 4];
            *out++ = hex[ch & 15];
        }
    }
    return out;
}

/* One line per item, ending in a bare "\n" as memcached's (only END has "\r\n"). */
static void dump_one(void *arg, const struct storage_item_info *ii)
{
    struct reply *r = arg;
    char *p = reply_reserve(r, 4 + 3 * KEY_MAX_LENGTH + 128), *s = p;
    memcpy(p, "key=", 4);
    p = uriencode(ii->key, ii->nkey, p + 4);
    long long exp = ii->exptime == 0 ? -1 : (long long)clock_unix(ii->exptime);
    p += snprintf(p, 128, " exp=%lld la=%lld cas=%llu fetch=%s cls=%u size=%zu\n", exp,
                  (long long)clock_unix(ii->atime), (unsigned long long)ii->cas,
                  ii->fetched ? "yes" : "no", ii->cls, ii->size);
    reply_commit(r, (size_t)(p - s));
}

/*
 * metadump: memcached's crawler writes the dump to the socket as it walks; a dump built whole
 * in the reply would take ~100 bytes per item (100 MB for a million keys). So the dump is a
 * cursor (struct storage_walk) on the connection: proto_process continues it before any
 * further command, a shard lock at a time for DUMP_STEP_ITEMS items, and stops once the reply
 * holds max_output bytes or DUMP_CALL_BYTES more than when it was called; the server writes
 * the reply (no lock held) and calls again. A dump's memory is thus its reply, at most
 * max_output plus one step, whatever the item count. memcached serves one dump at a time (its
 * one crawler): a second one meanwhile, from any connection, answers BUSY.
 */
#define DUMP_STEP_ITEMS 256     /* items per shard-lock hold (whole buckets: a few more) */
#define DUMP_CALL_BYTES 65536   /* dump text per proto_process call, for fairness */

struct proto_dump {
    struct storage_walk walk;
};

static _Atomic bool dump_running;

static void dump_stop(struct proto_conn *pc)
{
    mem_free(pc->dump);
    pc->dump = NULL;
    atomic_store(&dump_running, false);
}

void proto_dump_release(struct proto_conn *pc)
{
    if (pc->dump != NULL)
        dump_stop(pc);
}

bool proto_dump_continue(struct proto_ctx *x, size_t max_output)
{
    struct reply *r = x->r;
    size_t start = r->pending;
    while (r->pending <= max_output && r->pending - start < DUMP_CALL_BYTES) {
        if (storage_walk_step(&x->pc->dump->walk, DUMP_STEP_ITEMS, dump_one, r)) {
            reply_add(r, MSG_END, MSG_LEN(MSG_END));
            dump_stop(x->pc);
            return true;
        }
    }
    return false;
}

static void dump_start(struct proto_ctx *x, const uint64_t *classes)
{
    if (storage_crawl_running() || atomic_exchange(&dump_running, true)) {
        reply_add(x->r, MSG_CRAWLER_BUSY, MSG_LEN(MSG_CRAWLER_BUSY));
        return;
    }
    x->pc->dump = mem_alloc(sizeof *x->pc->dump);
    storage_walk_begin(&x->pc->dump->walk, classes);
    /* the first batch goes out with this call: proto_process continues the dump next */
}

enum cmd_result proto_cmd_lru_crawler(struct proto_ctx *x, int arg)
{
    (void)arg;
    const struct request *q = x->q;
    const struct token *sub = &q->tok[1];
    uint64_t classes_buf[STORAGE_MAX_CLASS_ID / 64], *classes;
    if (q->ntok == 3 && (TOK_IS(sub, "crawl") || TOK_IS(sub, "metadump"))) {
        if (!proto_crawler_enabled()) {
            reply_add(x->r, MSG_CRAWLER_DISABLED, MSG_LEN(MSG_CRAWLER_DISABLED));
            return CMD_DONE;
        }
        if (!parse_classes(&q->tok[2], classes_buf, &classes)) {
            reply_add(x->r, MSG_BADCLASS, MSG_LEN(MSG_BADCLASS));
            return CMD_DONE;
        }
        if (TOK_IS(sub, "crawl")) {
            /* memcached crawls only class lists, never the hash table */
            if (classes == NULL && TOK_IS(&q->tok[2], "hash"))
                reply_add(x->r, MSG_CRAWLER_ERROR, MSG_LEN(MSG_CRAWLER_ERROR));
            else if (!atomic_load(&dump_running) &&
                     storage_crawl_start(classes, proto_crawler_tocrawl()))
                reply_add(x->r, MSG_OK, MSG_LEN(MSG_OK));
            else
                reply_add(x->r, MSG_CRAWLER_BUSY, MSG_LEN(MSG_CRAWLER_BUSY));
            return CMD_DONE;
        }
        if (proto_cfg.dump_disabled) { /* -X */
            reply_add(x->r, MSG_METADUMP_NOT_ALLOWED, MSG_LEN(MSG_METADUMP_NOT_ALLOWED));
            return CMD_DONE;
        }
        /* memcached hands the connection to its crawler thread, which cannot follow replies
         * still queued: a metadump after other pipelined commands is refused */
        if (x->r->pending > x->unsent.pending) { /* since memcached last wrote (x->unsent) */
            reply_add(x->r, MSG_METADUMP_PIPELINED, MSG_LEN(MSG_METADUMP_PIPELINED));
            return CMD_DONE;
        }
        dump_start(x, classes);
        return CMD_DONE;
    }
    if (q->ntok == 3 && (TOK_IS(sub, "sleep") || TOK_IS(sub, "tocrawl"))) {
        uint32_t v;
        if (!tok_strtoul(&q->tok[2], &v)) {
            reply_add(x->r, MSG_BAD_FORMAT, MSG_LEN(MSG_BAD_FORMAT));
            return CMD_DONE;
        }
        if (TOK_IS(sub, "sleep")) {
            if (v > 1000000) {
                reply_add(x->r, MSG_SLEEP_TOO_LONG, MSG_LEN(MSG_SLEEP_TOO_LONG));
                return CMD_DONE;
            }
            storage_crawl_set_sleep(v);
        } else {
            atomic_store(&crawler_tocrawl, v);
        }
        reply_add(x->r, MSG_OK, MSG_LEN(MSG_OK));
        return CMD_DONE;
    }
    if (q->ntok == 2 && TOK_IS(sub, "enable")) {
        /* memcached: the thread is already running -> it cannot be started */
        if (proto_crawler_enabled()) {
            reply_add(x->r, MSG_CRAWLER_START_FAIL, MSG_LEN(MSG_CRAWLER_START_FAIL));
            return CMD_DONE;
        }
        atomic_store(&crawler_state, 1);
        reply_add(x->r, MSG_OK, MSG_LEN(MSG_OK));
        return CMD_DONE;
    }
    if (q->ntok == 2 && TOK_IS(sub, "disable")) {
        storage_crawl_stop();
        atomic_store(&crawler_state, 0);
        reply_add(x->r, MSG_OK, MSG_LEN(MSG_OK));
        return CMD_DONE;
    }
    reply_add(x->r, MSG_ERROR, MSG_LEN(MSG_ERROR));
    return CMD_DONE;
}

/* ---- `lru tune|mode|temp_ttl`: memcached's segmented-LRU knobs ----
 * cached's LRU is one CLOCK ring per slab class (storage/README) in one of two modes:
 * memcached's flat LRU (a hit counts at most once a minute) or cached's default, whose
 * fetched-twice protection stands for memcached's segmented LRU. `lru mode flat|segmented`
 * switches between them (OK), and, as in memcached, only while the LRU maintainer runs
 * (-o no_lru_maintainer / no_modern: ERROR). `lru temp_ttl <negative>` (temp LRU off) is what
 * cached is: OK. The HOT/WARM/COLD sizes of `lru tune` and a temporary-TTL LRU (`lru temp_ttl
 * <n >= 0>`) cannot be honoured and answer an ERROR line saying so (the -o
 * hot_lru_pct/temporary_ttl start options are refused likewise) rather than an OK that would
 * change nothing. Syntax and range errors are memcached's, byte for byte. */
#define MSG_LRU_PCTS "ERROR hot and warm pcts must not exceed 80\r\n"
#define MSG_LRU_FACTORS "ERROR hot/warm age factors must be greater than 0\r\n"
#define MSG_LRU_NO_SEGMENTS "ERROR not supported: cached's LRU is one CLOCK ring per class, not segmented\r\n"
#define MSG_LRU_NO_TEMP "ERROR not supported: cached has no temporary-TTL LRU\r\n"

/* memcached's safe_strtod: the whole token is a number (strtod's syntax: also "nan", "inf",
 * hex), and not out of range. The token is copied to be NUL-terminated. */
static bool tok_strtod(const struct token *t, double *out)
{
    char small[64];
    char *buf = t->len < sizeof small ? small : mem_alloc(t->len + 1);
    memcpy(buf, t->p, t->len);
    buf[t->len] = '\0';
    char *end;
    errno = 0;
    double d = strtod(buf, &end);
    bool ok = errno != ERANGE && end != buf && *end == '\0';
    if (buf != small)
        mem_free(buf);
    *out = ok ? d : 0;
    return ok;
}

static enum cmd_result lru_tune(struct proto_ctx *x)
{
    const struct request *q = x->q;
    uint32_t pct_hot, pct_warm;
    double hot_factor, warm_factor;
    if (!tok_strtoul(&q->tok[2], &pct_hot) || !tok_strtoul(&q->tok[3], &pct_warm) ||
        !tok_strtod(&q->tok[4], &hot_factor) || !tok_strtod(&q->tok[5], &warm_factor))
        OUT(x, MSG_ERROR);
    else if ((uint32_t)(pct_hot + pct_warm) > 80) /* memcached's sum wraps in 32 bits */
        OUT(x, MSG_LRU_PCTS);
    else if (warm_factor <= 0 || hot_factor <= 0)
        OUT(x, MSG_LRU_FACTORS);
    else
        OUT(x, MSG_LRU_NO_SEGMENTS);
    return CMD_DONE;
}

enum cmd_result proto_cmd_lru(struct proto_ctx *x, int arg)
{
    (void)arg;
    struct request *q = x->q;
    const struct token *sub = &q->tok[1];
    proto_noreply_maybe(q);
    if (TOK_IS(sub, "tune") && q->ntok >= 6)
        return lru_tune(x);
    const struct cfg *cf = proto_cfg.settings;
    bool maintainer = cf == NULL || !cf->no_lru_maintainer;
    if (TOK_IS(sub, "mode") && q->ntok >= 3 && maintainer) {
        bool flat = TOK_IS(&q->tok[2], "flat");
        if (flat || TOK_IS(&q->tok[2], "segmented")) {
            storage_set_lru_flat(flat);
            OUT(x, MSG_OK);
        } else {
            OUT(x, MSG_ERROR);
        }
        return CMD_DONE;
    }
    if (TOK_IS(sub, "temp_ttl") && q->ntok >= 3 && maintainer) {
        int32_t ttl;
        if (!tok_strtol(&q->tok[2], &ttl))
            OUT(x, MSG_ERROR);
        else if (ttl < 0)
            OUT(x, MSG_OK); /* temp LRU off: cached has none */
        else
            OUT(x, MSG_LRU_NO_TEMP);
        return CMD_DONE;
    }
    OUT(x, MSG_ERROR);
    return CMD_DONE;
}
