/*
 * internal: what the command handlers of protocol/ share — the per-command context, the
 * command table's entry type, the tokenizer, memcached-exact number parsing, key checks and
 * reply helpers. proto.c (classic commands), stats.c (`stats`) and meta.c (mg/ms/md/ma/mn/me)
 * include it; nothing outside protocol/ does.
 */
#pragma once

#include <stdatomic.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/messages.h"
#include "protocol/proto.h"
#include "protocol/reply.h"
#include "protocol/request.h"
#include "protocol/stats.h"
#include "storage/storage.h"

/* Values shorter than this are copied into the reply text (and the item released at once);
 * longer ones are written from the item by reference (reply_add_item_data). Why 2 KB: a 1 KB
 * value copied and sent with send() cost less server CPU than header, value and "\r\n" as
 * three iovecs of sendmsg (a loopback microbenchmark on the bench machine: ~3.4 against
 * ~5.1 us per reply with items on 4 KB pages, ~4.3 against ~4.6 us on huge pages, even at
 * 4 KB), and it spares the reference and its release (~160 instructions, callgrind). Larger
 * values stay referenced: a multi-get of many would copy them all. */
#define PROTO_INLINE_VALUE_MAX 2048

enum cmd_result {
    CMD_NEED_MORE, /* the -Y login's data is not all buffered: nothing consumed, wait */
    CMD_DONE,      /* consumed the line and x->data_used bytes after it (a storage command
                    * whose value is to be read has started pc->value instead) */
    CMD_CLOSE,     /* consumed; close the connection once the replies are sent */
};

/* Everything a handler works with for one command. */
struct proto_ctx {
    struct proto_conn *pc;
    struct reply *r;
    struct proto_stats *st; /* never NULL (a dummy when the connection has none) */
    struct request *q;
    const char *data;       /* the bytes after the command line ... */
    size_t avail;           /* ... and how many of them the buffer holds */
    size_t data_used;       /* out: bytes after the line consumed (a refused value) */
    struct reply_mark unsent; /* replies memcached would not have written yet: since this
                               * proto_process call began or the last get ended */
    /* A key of this line already hashed (mg in the lookahead): its bytes and hash, or NULL */
    const char *hint_key;
    size_t hint_nkey;
    uint64_t hint_hv;
};

typedef enum cmd_result (*proto_handler)(struct proto_ctx *x, int arg);

/* One command table entry (protocol/proto.c, proto_cmds[]). */
struct proto_cmd {
    const char *name;
    uint8_t len;
    uint8_t min_tok, max_tok; /* token counts incl. the command; outside: "ERROR" (0: no max) */
    proto_handler fn;
    int arg;                  /* handler-specific (store op, get variant) */
};

extern const struct proto_hooks *proto_hooks_active; /* never NULL after proto_setup */
extern struct proto_config proto_cfg;                /* as given to proto_setup */

/* The current -v level (`verbosity` changes it at run time). */
static inline unsigned proto_verbose(void)
{
    return proto_cfg.verbose ? (unsigned)__atomic_load_n(proto_cfg.verbose, __ATOMIC_RELAXED) : 0;
}

/* ---- tokens ---- */

/* Splits q->line into q->tok[] on ASCII spaces (memcached's tokenize_command). */
void proto_tokenize(struct request *q);
/* Next space-separated token in [*cur, end); false at the end. */
bool proto_next_token(const char **cur, const char *end, struct token *t);

static inline bool tok_is(const struct token *t, const char *s, size_t n)
{
    return t->len == n && __builtin_memcmp(t->p, s, n) == 0;
}
#define TOK_IS(t, lit) tok_is((t), (lit), sizeof(lit) - 1)

/*
 * Numbers, exactly as memcached's safe_strto* (util.c) accept them on a 64-bit host: leading
 * whitespace and a sign are allowed, the number may end at the token end or at a whitespace
 * byte; out-of-range input fails. tok_strtoul truncates to 32 bits and tok_strtol to a signed
 * 32-bit value like memcached does (so `set k 4294967296 0 1` stores flags 0).
 */
bool tok_strtoull(const struct token *t, uint64_t *out);
bool tok_strtoul(const struct token *t, uint32_t *out);
bool tok_strtol(const struct token *t, int32_t *out);

/* Sets q->noreply if the last token is "noreply" (memcached's set_noreply_maybe). */
bool proto_noreply_maybe(struct request *q);

/* ---- replies ---- */

/* ---- -vv tracing (protocol/trace.c): memcached's ">FD reply" lines ---- */
enum proto_trace_kind {
    PROTO_TRACE_LINE,      /* a one-line reply is traced (memcached's out_string) */
    PROTO_TRACE_RETRIEVAL, /* get & co.: "sending key K" per hit, then END */
    PROTO_TRACE_META,      /* mg/ms/md/ma: errors only */
    PROTO_TRACE_ME,        /* me: a miss's EN and errors */
};
enum proto_trace_kind proto_trace_kind_of(const struct request *q);
/* Traces what the command queued on x->r since m (verbosity 2 and up: the caller checks). */
void proto_trace_reply(const struct proto_ctx *x, const struct reply_mark *m,
                       enum proto_trace_kind kind);
/* ">FD NOREPLY <reply>": the reply noreply withheld (checks the verbosity itself). */
void proto_trace_noreply(const struct proto_ctx *x, const char *s, size_t len);
/* One stderr line (or several, with "\n" inside), in one write(). */
void proto_trace_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* memcached's -vv dump of a binary request (response false) or response header. */
void proto_trace_bin_header(int id, bool response, const unsigned char *h);
#define PROTO_TRACING() (proto_verbose() >= 2)
/* memcached's "CAS:  failure: expected <item's>, got <client's>" for a cas that met EXISTS. */
void proto_trace_cas_failure(const struct item *it, uint64_t cas);
/* "FD: Client using the ascii|binary protocol" once negotiated (checks the verbosity). */
void proto_trace_negotiated(const struct proto_conn *pc);


/* Appends a reply unless the command is noreply. */
static inline void proto_out(struct proto_ctx *x, const char *s, size_t len)
{
    if (!x->q->noreply)
        reply_add(x->r, s, len);
    else
        proto_trace_noreply(x, s, len);
}
#define OUT(x, msg) proto_out((x), (msg), MSG_LEN(msg))

/* Consumes a refused value of total bytes (value + "\r\n"): what the buffer holds now, the
 * rest as it arrives (pc->swallow). */
void proto_skip_value(struct proto_ctx *x, size_t total);

/* Reads the value of a storage command into it (taking the caller's reference); pc->store
 * must be filled. When the buffer already holds it all, the command finishes at once
 * (x->data_used set); otherwise proto_process feeds the rest as it arrives (pc->value) and
 * calls the finisher once complete. */
void proto_value_start(struct proto_ctx *x, struct item *it);

/* ms's finisher (protocol/meta.c): it holds the value; trailer_ok: "\r\n" followed it. */
void proto_meta_ms_finish(struct proto_ctx *x, struct item *it, bool trailer_ok);

/* cas_hits / cas_badval / cas_misses for the result of a store that was a CAS. */
void proto_count_cas(struct proto_ctx *x, enum store_op op, enum st_result res,
                     const struct item *it);

/* Decimal digits of v at p; returns the end. p needs 20 (u64) / 10 (u32) bytes. */
char *proto_u64toa(uint64_t v, char *p);

/* "VALUE key flags bytes [cas]\r\n" + value + "\r\n" for get/gets/gat/gats. Consumes the
 * caller's reference to it. */
void proto_add_value(struct reply *r, struct item *it, bool with_cas);

/* Appends "STAT name value\r\n". */
void proto_stat_u64(struct reply *r, const char *name, uint64_t v);
void proto_stat_str(struct reply *r, const char *name, const char *v);

/* The per-class counters of the item's slab class (stats slabs). */
static inline struct proto_class_stats *proto_cls(struct proto_stats *st, unsigned id)
{
    return &st->cls[id < PROTO_CLASSES ? id : 0];
}
/* x: anything with a `struct proto_stats *st` (text, meta and binary contexts). */
#define CLS_OF(x, it) proto_cls((x)->st, storage_item_class(it))
#define CLS_LAST(x) proto_cls((x)->st, storage_last_class())

/* `stats detail` (protocol/detail.c). */
enum detail_op { DETAIL_GET, DETAIL_SET, DETAIL_DEL };
bool proto_detail_enabled(void);
void proto_detail_enable(bool on);
void proto_detail_record(const char *key, size_t nkey, enum detail_op op, bool hit);
void proto_detail_dump(struct reply *r);
void proto_detail_clear(void);
#define DETAIL(key, nkey, op, hit)                                                               \
    do {                                                                                         \
        if (proto_detail_enabled())                                                              \
            proto_detail_record((key), (nkey), (op), (hit));                                     \
    } while (0)

/* `stats ...` (protocol/stats.c). */
enum cmd_result proto_cmd_stats(struct proto_ctx *x, int arg);
/* `cache_memlimit <MB> [noreply]` (protocol/stats.c). */
enum cmd_result proto_cmd_memlimit(struct proto_ctx *x, int arg);
/* `debugtime N|p|r`: memcached-debug's clock hook, ERROR unless --debug-hooks. */
enum cmd_result proto_cmd_debugtime(struct proto_ctx *x, int arg);
void proto_cachedump(struct proto_ctx *x);
/* A stats group composed through fn(name, value) per line: sub "" is plain `stats`, else
 * settings, items, slabs, sizes, conns. False for an unknown group. For any framing (text
 * here; the binary protocol's stat packets). */
typedef void (*proto_stat_fn)(void *arg, const char *name, const char *value);
bool proto_stats_group(struct proto_ctx *x, const char *sub, size_t len, proto_stat_fn fn,
                       void *arg);
/* `stats reset`: every counter, storage's, and the detail prefixes. */
void proto_stats_reset(struct proto_ctx *x);
/* `lru_crawler ...` (protocol/admin.c). */
enum cmd_result proto_cmd_lru_crawler(struct proto_ctx *x, int arg);
/* `lru tune|mode|temp_ttl` (protocol/admin.c). */
enum cmd_result proto_cmd_lru(struct proto_ctx *x, int arg);
/* `lru_crawler sleep` / `tocrawl` as last set (memcached's defaults 100 and 0). */
uint32_t proto_crawler_sleep(void);
uint32_t proto_crawler_tocrawl(void);
/* The LRU crawler is enabled (`lru_crawler enable|disable`, stats settings lru_crawler). */
bool proto_crawler_enabled(void);
/* A metadump in progress (x->pc->dump): adds its next lines; true once END is added and the
 * dump released, false when the reply is full for now (protocol/admin.c). */
bool proto_dump_continue(struct proto_ctx *x, size_t max_output);
/* Drops a dump in progress (the connection closes). */
void proto_dump_release(struct proto_conn *pc);

/* `watch` (protocol/watch.c). The WATCH_* macros cost one relaxed load while nobody watches. */
enum cmd_result proto_cmd_watch(struct proto_ctx *x, int arg);
extern _Atomic unsigned proto_watch_mask;
#define WATCHING(cls) (atomic_load_explicit(&proto_watch_mask, memory_order_relaxed) & (cls))
/* cfd is the connection's proto_conn.trace_id (its fd, as in `stats conns`). */
void proto_watch_get(int cfd, const char *key, size_t nkey, const struct item *it);
/* memcached's do_item_get logs every lookup, also the one a store, delete or incr/decr makes
 * first: this logs the key's live item as it is now, without touching it. */
void proto_watch_peek(int cfd, const char *key, size_t nkey);
void proto_watch_store(int cfd, const struct item *it, int op, int res);
/* A store refused before its item existed (too large / out of memory). */
void proto_watch_refused(int cfd, const char *key, size_t nkey, int op, int res);
/* `ma N` / binary incr creating the key: memcached's add of the new item. */
void proto_watch_vivified(int cfd, const char *key, size_t nkey);
#define WATCH_GET(x, key, nkey, it)                                                              \
    do {                                                                                         \
        if (WATCHING(WATCH_FETCHERS))                                                            \
            proto_watch_get((x)->pc->trace_id, (key), (nkey), (it));                             \
    } while (0)
#define WATCH_PEEK(x, key, nkey)                                                                 \
    do {                                                                                         \
        if (WATCHING(WATCH_FETCHERS))                                                            \
            proto_watch_peek((x)->pc->trace_id, (key), (nkey));                                  \
    } while (0)
#define WATCH_STORE(x, it, op, res)                                                              \
    do {                                                                                         \
        if (WATCHING(WATCH_MUTATIONS))                                                           \
            proto_watch_store((x)->pc->trace_id, (it), (int)(op), (int)(res));                   \
    } while (0)
#define WATCH_REFUSED(x, key, nkey, op, res)                                                     \
    do {                                                                                         \
        if (WATCHING(WATCH_MUTATIONS))                                                           \
            proto_watch_refused((x)->pc->trace_id, (key), (nkey), (int)(op), (int)(res));        \
    } while (0)
/* `slabs reassign` / `slabs automove` (protocol/slabs.c). */
enum cmd_result proto_cmd_slabs(struct proto_ctx *x, int arg);
