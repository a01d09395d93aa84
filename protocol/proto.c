/*
 * proto: memcached's classic text protocol. Frames command lines in a connection's read
 * buffer, tokenizes them, looks the command up in proto_cmds[] and runs its handler, which
 * calls storage and composes the reply (strings from protocol/messages.h).
 *
 * Every byte of every reply matches memcached 1.6.18; where memcached's behaviour is odd
 * (32-bit truncation of numbers, which errors noreply hides, what a bad data block consumes)
 * the comment says so. This file never touches sockets and never allocates per request.
 */
#include "protocol/proto.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "protocol/auth.h"
#include "protocol/binary.h"
#include "protocol/internal.h"
#include "protocol/meta.h"
#include "protocol/sasl.h"

static const struct proto_hooks no_hooks;
const struct proto_hooks *proto_hooks_active = &no_hooks;
static struct proto_hooks hooks_copy;

#define PROTO_CFG_DEFAULT                                                                        \
    {.item_size_max = 1024 * 1024, .mem_limit = 64 * 1024 * 1024, .flush_enabled = true}
static const struct proto_config proto_cfg_default = PROTO_CFG_DEFAULT;
struct proto_config proto_cfg = PROTO_CFG_DEFAULT;

void proto_setup(const struct proto_config *cfg, const struct proto_hooks *hooks)
{
    obs_setup(); /* the latency clock: TSC or CLOCK_MONOTONIC */
    proto_cfg = cfg ? *cfg : proto_cfg_default;
    proto_detail_enable(proto_cfg.detail_on);
    if (hooks) {
        hooks_copy = *hooks;
        proto_hooks_active = &hooks_copy;
    } else {
        proto_hooks_active = &no_hooks;
    }
}

void proto_teardown(void)
{
    proto_sasl_teardown();
    proto_hooks_active = &no_hooks;
    proto_cfg = proto_cfg_default;
}

/* ---- tokens and numbers ---- */

void proto_tokenize(struct request *q)
{
    const char *p = q->line, *end = q->line + q->len;
    unsigned n = 0;
    q->rest = NULL;
    q->end = end;
    while (p < end) {
        if (*p == ' ') {
            p++;
            continue;
        }
        if (n == REQ_MAX_TOKENS) {
            q->rest = p;
            break;
        }
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *e = sp ? sp : end;
        q->tok[n].p = p;
        q->tok[n].len = (size_t)(e - p);
        n++;
        p = e;
    }
    q->ntok = n;
}

bool proto_next_token(const char **cur, const char *end, struct token *t)
{
    const char *p = *cur;
    while (p < end && *p == ' ')
        p++;
    if (p >= end) {
        *cur = end;
        return false;
    }
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    const char *e = sp ? sp : end;
    t->p = p;
    t->len = (size_t)(e - p);
    *cur = e;
    return true;
}

static inline bool is_cspace(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r'); /* isspace() in the C locale */
}

/*
 * strtoull()/strtoll() on a token, with memcached's acceptance rule: at least one digit, the
 * number ends at the token end or at a whitespace byte (tabs and '\r' can be inside tokens).
 * *neg reports a '-' sign; *mag the magnitude. Fails on overflow of `limit` (ERANGE).
 */
static bool tok_number(const struct token *t, uint64_t limit_pos, uint64_t limit_neg, bool *neg,
                       uint64_t *mag)
{
    /* The common case: 1 to 18 plain digits, which cannot overflow any limit used here. */
    if (t->len - 1 < 18) {
        uint64_t v = 0;
        size_t i = 0;
        for (; i < t->len; i++) {
            unsigned d = (unsigned)(unsigned char)t->p[i] - '0';
            if (d > 9)
                break;
            v = v * 10 + d;
        }
        if (i == t->len) {
            *neg = false;
            *mag = v;
            return true;
        }
    }
    const char *p = t->p, *end = t->p + t->len;
    while (p < end && is_cspace((unsigned char)*p))
        p++;
    *neg = false;
    if (p < end && (*p == '+' || *p == '-')) {
        *neg = *p == '-';
        p++;
    }
    const char *digits = p;
    uint64_t v = 0;
    bool range = true;
    uint64_t limit = *neg ? limit_neg : limit_pos;
    /* strtoull's cut-off test: one compare per digit, the divisions done once */
    uint64_t cutoff = limit / 10;
    unsigned cutlim = (unsigned)(limit % 10);
    while (p < end && *p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (v > cutoff || (v == cutoff && d > cutlim))
            range = false; /* keep scanning: strto* consume every digit before failing */
        else
            v = v * 10 + d;
        p++;
    }
    if (p == digits || !range)
        return false;
    if (p < end && !is_cspace((unsigned char)*p))
        return false;
    *mag = v;
    return true;
}

bool tok_strtoull(const struct token *t, uint64_t *out)
{
    bool neg;
    uint64_t v;
    *out = 0;
    if (!tok_number(t, UINT64_MAX, UINT64_MAX, &neg, &v))
        return false;
    if (neg)
        v = (uint64_t)0 - v; /* strtoull negates in unsigned arithmetic */
    /* memcached rejects a '-' only when the result looks negative as a signed number. */
    if ((int64_t)v < 0 && memchr(t->p, '-', t->len))
        return false;
    *out = v;
    return true;
}

bool tok_strtoul(const struct token *t, uint32_t *out)
{
    uint64_t v;
    *out = 0;
    if (!tok_strtoull(t, &v)) /* unsigned long is 64 bits: same rules as strtoull */
        return false;
    *out = (uint32_t)v; /* memcached stores it into a uint32_t: truncation */
    return true;
}

bool tok_strtol(const struct token *t, int32_t *out)
{
    bool neg;
    uint64_t v;
    *out = 0;
    if (!tok_number(t, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX + 1, &neg, &v))
        return false;
    uint64_t u = neg ? (uint64_t)0 - v : v;
    *out = (int32_t)(uint32_t)u; /* long -> int32_t truncation, as memcached */
    return true;
}

bool proto_noreply_maybe(struct request *q)
{
    if (q->ntok > 0 && TOK_IS(&q->tok[q->ntok - 1], "noreply"))
        q->noreply = true;
    return q->noreply;
}

/*
 * Decimal digits, two at a time from a table, with no division in the digit loop: for v below
 * 10^8, y = v * 2^32 / 10^(2m-2) as 32.32 fixed point (one multiplication by a rounded-up
 * reciprocal), whose integer part is the leading one or two digits; each multiplication of
 * the fraction by 100 brings the next pair into the integer part. The constants were checked
 * against division for every v in their ranges. Flags, lengths and CAS of every VALUE line go
 * through here (the division loop it replaces was ~120 instructions of a get whose flags have
 * 10 digits, under callgrind).
 */
static const char digit_pairs[201] = "00010203040506070809101112131415161718192021222324"
                                     "25262728293031323334353637383940414243444546474849"
                                     "50515253545556575859606162636465666768697071727374"
                                     "75767778798081828384858687888990919293949596979899";

static inline char *put_pair(char *p, uint64_t d)
{
    memcpy(p, digit_pairs + 2 * d, 2);
    return p + 2;
}

/* Exactly 8 digits of v < 10^8, leading zeros included. */
static inline char *put_8digits(char *p, uint32_t v)
{
    uint64_t y = (((uint64_t)v * 140737489u) >> 15) + 1; /* 2^47 / 10^6, rounded up */
    p = put_pair(p, y >> 32);
    y = (uint32_t)y * 100ull;
    p = put_pair(p, y >> 32);
    y = (uint32_t)y * 100ull;
    p = put_pair(p, y >> 32);
    y = (uint32_t)y * 100ull;
    return put_pair(p, y >> 32);
}

/* v < 2^32; inlined into the VALUE line composer (a call was ~15 of its instructions). */
static inline __attribute__((always_inline)) char *u32toa(uint32_t v, char *p)
{
    if (v < 10) {
        *p = (char)('0' + v);
        return p + 1;
    }
    if (v < 100)
        return put_pair(p, v);
    if (v >= 100000000) {
        uint32_t hi = v / 100000000; /* 1..42 */
        if (hi < 10)
            *p++ = (char)('0' + hi);
        else
            p = put_pair(p, hi);
        return put_8digits(p, v - hi * 100000000);
    }
    uint64_t y;
    unsigned pairs;
    if (v < 10000) {
        y = (uint64_t)v * 42949673u + 1; /* 2^32 / 10^2, rounded up */
        pairs = 2;
    } else if (v < 1000000) {
        y = (uint64_t)v * 429497u + 1; /* 2^32 / 10^4 */
        pairs = 3;
    } else {
        y = (((uint64_t)v * 140737489u) >> 15) + 1; /* 2^47 / 10^6 */
        pairs = 4;
    }
    unsigned lead = (unsigned)(y >> 32);
    if (lead >= 10)
        p = put_pair(p, lead);
    else
        *p++ = (char)('0' + lead);
    while (--pairs > 0) {
        y = (uint32_t)y * 100ull;
        p = put_pair(p, y >> 32);
    }
    return p;
}

char *proto_u64toa(uint64_t v, char *p)
{
    if (v <= UINT32_MAX)
        return u32toa((uint32_t)v, p);
    uint64_t hi = v / 100000000;
    p = proto_u64toa(hi, p); /* at most once more: 10^8 * 10^8 * 1845 > 2^64 */
    return put_8digits(p, (uint32_t)(v - hi * 100000000));
}

void proto_stat_u64(struct reply *r, const char *name, uint64_t v)
{
    size_t nl = strlen(name);
    char *p = reply_reserve(r, nl + 30);
    char *s = p;
    memcpy(p, "STAT ", 5);
    p += 5;
    memcpy(p, name, nl);
    p += nl;
    *p++ = ' ';
    p = proto_u64toa(v, p);
    *p++ = '\r';
    *p++ = '\n';
    reply_commit(r, (size_t)(p - s));
}

void proto_stat_str(struct reply *r, const char *name, const char *v)
{
    reply_add(r, "STAT ", 5);
    reply_add_str(r, name);
    reply_add(r, " ", 1);
    reply_add_str(r, v);
    reply_add(r, MSG_CRLF, 2);
}

/* ---- get / gets / gat / gats ---- */

void proto_add_value(struct reply *r, struct item *it, bool with_cas)
{
    size_t nbytes = it->nbytes;
    bool inline_value = nbytes < PROTO_INLINE_VALUE_MAX;
    /* "VALUE " key " " flags " " bytes " " cas "\r\n" [value "\r\n"] */
    size_t max = 6 + it->nkey + 1 + 10 + 1 + 10 + 1 + 20 + 2 + (inline_value ? nbytes + 2 : 0);
    char *p = reply_reserve(r, max);
    char *s = p;
    memcpy(p, MSG_VALUE, 6);
    p += 6;
    memcpy(p, item_key(it), it->nkey);
    p += it->nkey;
    *p++ = ' ';
    p = u32toa(it->flags, p);
    *p++ = ' ';
    p = u32toa(it->nbytes, p);
    if (with_cas) {
        *p++ = ' ';
        p = proto_u64toa(item_cas(it), p);
    }
    *p++ = '\r';
    *p++ = '\n';
    if (inline_value) {
        memcpy(p, item_value(it), nbytes);
        p += nbytes;
        *p++ = '\r';
        *p++ = '\n';
        reply_commit(r, (size_t)(p - s));
        item_put(it);
        return;
    }
    reply_commit(r, (size_t)(p - s));
    reply_add_item_data(r, it, item_value(it), nbytes);
    reply_add(r, MSG_CRLF, 2);
}

enum { GET_CAS = 1, GET_TOUCH = 2 };

/* One key of get/gets/gat/gats once looked up (it: referenced, or NULL): count, append its
 * VALUE. */
static void get_key_done(struct proto_ctx *x, const char *key, size_t nkey, struct item *it,
                         bool touch, bool with_cas)
{
    if (touch) {
        STAT_INC(x->st->cmd_touch);
        if (it)
            STAT_INC(x->st->touch_hits), STAT_INC(CLS_OF(x, it)->touch_hits);
        else
            STAT_INC(x->st->touch_misses);
    } else {
        STAT_INC(x->st->cmd_get);
        if (it)
            STAT_INC(x->st->get_hits), STAT_INC(CLS_OF(x, it)->get_hits);
        else
            STAT_INC(x->st->get_misses);
    }
    DETAIL(key, nkey, DETAIL_GET, it != NULL);
    WATCH_GET(x, key, nkey, it);
#if !defined(CACHED_NO_OBSERVE) && !defined(CACHED_NO_HOTKEYS)
    /* hot keys: sampled here rather than by obs_command_keys walking the line again */
    obs_key(&x->st->obs, OBS_READ, key, nkey);
#endif
    if (it)
        proto_add_value(x->r, it, with_cas);
}

/* One key of get/gets/gat/gats: look it up (or touch it), count, append its VALUE. */
static void get_key(struct proto_ctx *x, const struct token *t, bool touch, rel_time_t exptime,
                    bool with_cas)
{
    struct item *it = touch ? storage_touch(t->p, t->len, exptime) : storage_get(t->p, t->len);
    get_key_done(x, t->p, t->len, it, touch, with_cas);
}

/*
 * The keys of a multi-get gathered for storage_get_batch, whose lookups overlap their cache
 * misses; the replies are then composed in request order, each key counted as get_key counts
 * it. The keys point into the request bytes, which must stay put until get_batch_flush().
 */
struct get_batch {
    struct storage_key k[STORAGE_BATCH_MAX];
    size_t n;
    bool touch, with_cas;
    rel_time_t exptime;
};

static void get_batch_flush(struct proto_ctx *x, struct get_batch *b)
{
    if (b->n == 1 || WATCHING(WATCH_FETCHERS)) {
        /* a single-key get: no batch to overlap; or `watch fetchers`, whose lines say why
         * each key missed (storage_last_miss: the thread's last lookup) */
        for (size_t i = 0; i < b->n; i++) {
            struct token t = {b->k[i].p, b->k[i].len};
            get_key(x, &t, b->touch, b->exptime, b->with_cas);
        }
    } else if (b->n > 1) {
        struct item *it[STORAGE_BATCH_MAX];
        storage_get_batch(b->k, b->n, b->touch, b->exptime, it);
        /* values short enough to be copied into the reply: fetch their lines now, so the
         * copies below do not wait for them one after the other */
        for (size_t i = 0; i < b->n; i++) {
            if (it[i] && it[i]->nbytes < PROTO_INLINE_VALUE_MAX) {
                const char *v = item_value(it[i]);
                for (size_t off = 0; off < it[i]->nbytes; off += 64)
                    __builtin_prefetch(v + off);
                __builtin_prefetch(v + it[i]->nbytes - 1);
            }
        }
        for (size_t i = 0; i < b->n; i++)
            get_key_done(x, b->k[i].p, b->k[i].len, it[i], b->touch, b->with_cas);
    }
    b->n = 0;
}

static inline void get_batch_add(struct proto_ctx *x, struct get_batch *b, const struct token *t)
{
    b->k[b->n].p = t->p;
    b->k[b->n].len = t->len;
    if (++b->n == STORAGE_BATCH_MAX)
        get_batch_flush(x, b);
}

static enum cmd_result cmd_get(struct proto_ctx *x, int arg)
{
    struct request *q = x->q;
    struct get_batch b;
    b.touch = arg & GET_TOUCH;
    b.with_cas = arg & GET_CAS;
    b.exptime = 0;
    b.n = 0;
    unsigned i = 1;
    if (b.touch) {
        int32_t e;
        if (!tok_strtol(&q->tok[1], &e)) {
            OUT(x, MSG_INVALID_EXPTIME);
            return CMD_DONE;
        }
        b.exptime = clock_exptime(e);
        i = 2;
    }
    struct reply_mark mark;
    reply_mark(x->r, &mark);
    const char *cursor = q->rest;
    struct token t;
    for (;;) {
        if (i < q->ntok)
            t = q->tok[i++];
        else if (!cursor || !proto_next_token(&cursor, q->end, &t))
            break;
        if (t.len > KEY_MAX_LENGTH) {
            /* memcached drops the VALUEs already composed and answers only the error (the
             * keys before it still count as fetched); with them every reply it has not
             * written yet (conn_release_items culls its unsent responses): those since it
             * last wrote, after the previous get or before reading this batch (x->unsent) */
            get_batch_flush(x, &b);
            if (PROTO_TRACING()) /* memcached has logged these hits ("sending key") */
                proto_trace_reply(x, &mark, PROTO_TRACE_RETRIEVAL);
            reply_rollback(x->r, &x->unsent);
            OUT(x, MSG_BAD_FORMAT);
            return CMD_DONE;
        }
        get_batch_add(x, &b, &t);
    }
    get_batch_flush(x, &b);
    reply_add(x->r, MSG_END, MSG_LEN(MSG_END));
    reply_mark(x->r, &x->unsent); /* memcached writes its replies out after a get */
    return CMD_DONE;
}

/* ---- set / add / replace / append / prepend / cas ---- */

/* Token 1 as the key of a storage command, or NULL after answering one that is too long. */
static const struct token *cmd_key(struct proto_ctx *x)
{
    const struct token *key = &x->q->tok[1];
    if (key->len > KEY_MAX_LENGTH) {
        OUT(x, MSG_BAD_FORMAT);
        return NULL;
    }
    return key;
}

void proto_skip_value(struct proto_ctx *x, size_t total)
{
    if (x->avail >= total) {
        x->data_used = total;
    } else {
        x->data_used = x->avail;
        x->pc->swallow = total - x->avail;
    }
}

void proto_count_cas(struct proto_ctx *x, enum store_op op, enum st_result res,
                     const struct item *it)
{
    if (op == OP_CAS) {
        if (res == ST_OK)
            STAT_INC(x->st->cas_hits), STAT_INC(CLS_OF(x, it)->cas_hits);
        else if (res == ST_EXISTS)
            STAT_INC(x->st->cas_badval), STAT_INC(CLS_OF(x, it)->cas_badval);
        else if (res == ST_NOT_FOUND)
            STAT_INC(x->st->cas_misses);
    }
}

/* A value that cannot be stored: answer, drop the old value of a set, skip the data block. */
static enum cmd_result store_refused(struct proto_ctx *x, enum st_result res, enum store_op op,
                                     const struct token *key, size_t total)
{
    if (res == ST_TOO_LARGE) {
        STAT_INC(x->st->store_too_large);
        OUT(x, MSG_TOO_LARGE);
    } else {
        STAT_INC(x->st->store_no_memory);
        OUT(x, MSG_NO_MEMORY_STORE);
    }
    WATCH_REFUSED(x, key->p, key->len, op, res);
    /* memcached unlinks the old item so a failed set never leaves stale data behind. */
    if (op == OP_SET) {
        WATCH_PEEK(x, key->p, key->len);
        storage_delete(key->p, key->len, 0);
    }
    proto_skip_value(x, total);
    return CMD_DONE;
}

static void store_finish(struct proto_ctx *x, struct item *it, bool trailer_ok);

/* The parsed line of a storage command: allocate its item and take its value. */
static enum cmd_result store_start(struct proto_ctx *x, enum store_op op, const struct token *key,
                                   uint32_t flags, int32_t exptime, int32_t vlen, uint64_t cas)
{
    struct request *q = x->q;
    /* A bad length leaves the data block unread: it is parsed as commands next. */
    if (vlen < 0 || vlen > INT32_MAX - 2) {
        OUT(x, MSG_BAD_FORMAT);
        return CMD_DONE;
    }
    size_t total = (size_t)vlen + 2;
    DETAIL(key->p, key->len, DETAIL_SET, false);
    /* Decided without waiting for the data: a value that cannot be stored is answered at once
     * and swallowed as it arrives. */
    if ((uint64_t)vlen > proto_cfg.item_size_max)
        return store_refused(x, ST_TOO_LARGE, op, key, total);
    enum st_result res = ST_OK;
    uint64_t hv = storage_key_hash(key->p, key->len); /* for the allocation and the store */
    struct item *it = item_alloc_hv(key->p, key->len, hv, flags, clock_exptime(exptime),
                                    (uint32_t)vlen, &res);
    if (!it)
        return store_refused(x, res, op, key, total);
    STAT_INC(x->st->cmd_set), STAT_INC(CLS_OF(x, it)->cmd_set);
    x->pc->store =
        (struct proto_store){.op = (uint8_t)op, .noreply = q->noreply, .cas = cas, .hv = hv};
    proto_value_start(x, it);
    return CMD_DONE;
}

static enum cmd_result cmd_store(struct proto_ctx *x, int arg)
{
    struct request *q = x->q;
    enum store_op op = (enum store_op)arg;
    proto_noreply_maybe(q);
    const struct token *key = cmd_key(x);
    if (!key)
        return CMD_DONE;
    uint32_t flags;
    int32_t exptime, vlen;
    uint64_t cas = 0;
    if (!(tok_strtoul(&q->tok[2], &flags) && tok_strtol(&q->tok[3], &exptime) &&
          tok_strtol(&q->tok[4], &vlen))) {
        OUT(x, MSG_BAD_FORMAT);
        return CMD_DONE;
    }
    if (op == OP_CAS && !tok_strtoull(&q->tok[5], &cas)) {
        OUT(x, MSG_BAD_FORMAT);
        return CMD_DONE;
    }
    return store_start(x, op, key, flags, exptime, vlen, cas);
}

/*
 * Plain digits up to a space or the end: what tok_number reads fast (1 to 18 digits, so no
 * limit can overflow), at p; *pp moves past them. False on anything else (no digit, a sign, a
 * tab, too many digits), which the general path then answers.
 */
static inline bool plain_number(const char **pp, const char *end, uint64_t *out)
{
    const char *p = *pp, *start = p;
    uint64_t v = 0;
    while (p < end) {
        unsigned d = (unsigned)(unsigned char)*p - '0';
        if (d > 9)
            break;
        v = v * 10 + d;
        p++;
    }
    size_t n = (size_t)(p - start);
    if (n - 1 >= 18 || (p < end && *p != ' '))
        return false;
    *out = v;
    *pp = p;
    return true;
}

static size_t key_span(const char *p, size_t avail);

/*
 * `set <key> <flags> <exptime> <bytes>` with an optional ` noreply`, single spaces, plain
 * digits and a key of 1..KEY_MAX_LENGTH bytes: parsed in one pass, with the tokens and numbers
 * the general path (proto_tokenize, cmd_lookup, cmd_store's tok_strto*) would produce, and run
 * by the same store_start. Anything else returns false and takes the general path. ~30% of a
 * set's parsing was the tokenizer's memchr per token and the number parsers' wrappers
 * (callgrind: proto_tokenize ~255 and tok_* ~200 of a set's ~2,850 instructions).
 */
static bool set_fast(struct proto_ctx *x, enum cmd_result *res)
{
    struct request *q = x->q;
    const char *line = q->line, *end = line + q->len;
    if (q->len < 11 || memcmp(line, "set ", 4) != 0)
        return false;
    const char *p = line + 4;
    size_t klen = key_span(p, (size_t)(end - p));
    if (klen == 0 || klen > KEY_MAX_LENGTH || p + klen >= end || p[klen] != ' ')
        return false;
    q->tok[0] = (struct token){line, 3};
    q->tok[1] = (struct token){p, klen};
    p += klen + 1;
    uint64_t num[3];
    for (unsigned i = 0; i < 3; i++) {
        const char *t = p;
        if (!plain_number(&p, end, &num[i]))
            return false;
        q->tok[2 + i] = (struct token){t, (size_t)(p - t)};
        if (i < 2) {
            if (p == end)
                return false;
            p++; /* the single space */
        }
    }
    q->ntok = 5;
    if (p < end) {
        if (end - p != 8 || memcmp(p, " noreply", 8) != 0)
            return false;
        q->tok[5] = (struct token){p + 1, 7};
        q->ntok = 6;
        q->noreply = true;
    }
    q->rest = NULL;
    q->end = end;
    /* the conversions of tok_strtoul / tok_strtol on plain digits: 32-bit truncation */
    *res = store_start(x, OP_SET, &q->tok[1], (uint32_t)num[0], (int32_t)(uint32_t)num[1],
                       (int32_t)(uint32_t)num[2], 0);
    return true;
}

void proto_value_start(struct proto_ctx *x, struct item *it)
{
    size_t total = (size_t)it->nbytes + 2;
    if (x->avail >= total) {
        /* The common case, the whole value already read: no state to keep across reads. */
        memcpy(item_value(it), x->data, it->nbytes);
        bool trailer_ok = x->data[it->nbytes] == '\r' && x->data[it->nbytes + 1] == '\n';
        x->data_used = total;
        if (x->pc->store.kind == PROTO_STORE_META)
            proto_meta_ms_finish(x, it, trailer_ok);
        else
            store_finish(x, it, trailer_ok);
        return;
    }
    value_in_start(&x->pc->value, it, 2);
}

/* A classic storage command's value is in its item: store it and answer. */
static void store_finish(struct proto_ctx *x, struct item *it, bool trailer_ok)
{
    enum store_op op = (enum store_op)x->pc->store.op;
    /* The block must be exactly <bytes> then "\r\n"; memcached consumes bytes+2 either way
     * and parses what follows as commands. */
    if (!trailer_ok) {
        item_put(it);
        OUT(x, MSG_BAD_DATA_CHUNK);
        return;
    }
    WATCH_PEEK(x, item_key(it), it->nkey);
    enum st_result res = storage_store_hv(it, x->pc->store.hv, op, x->pc->store.cas, NULL);
    WATCH_STORE(x, it, op, res);
    proto_count_cas(x, op, res, it);
    if (op == OP_CAS && res == ST_EXISTS && PROTO_TRACING())
        proto_trace_cas_failure(it, x->pc->store.cas);
    item_put(it);
    switch (res) {
    case ST_OK: OUT(x, MSG_STORED); break;
    case ST_NOT_STORED: OUT(x, MSG_NOT_STORED); break;
    case ST_EXISTS: OUT(x, MSG_EXISTS); break;
    case ST_NOT_FOUND: OUT(x, MSG_NOT_FOUND); break;
    case ST_TOO_LARGE: STAT_INC(x->st->store_too_large); OUT(x, MSG_TOO_LARGE); break;
    case ST_NO_MEMORY: STAT_INC(x->st->store_no_memory); OUT(x, MSG_NO_MEMORY_STORE); break;
    case ST_NON_NUMERIC:
    case ST_REF_SATURATED: OUT(x, MSG_NOT_STORED); break; /* neither comes from a store */
    }
}

/* The pending value is complete: hand it to its command's finisher. */
static void value_finish(struct proto_ctx *x)
{
    struct proto_conn *pc = x->pc;
    bool trailer_ok = value_in_trailer_is(&pc->value, "\r\n");
    struct item *it = value_in_take(&pc->value);
    x->q->noreply = pc->store.noreply;
    if (pc->store.kind == PROTO_STORE_META)
        proto_meta_ms_finish(x, it, trailer_ok);
    else
        store_finish(x, it, trailer_ok);
    x->q->noreply = false;
}

/* value_finish, and at -vv the ">FD STORED" line of what it answered. */
static void traced_value_finish(struct proto_ctx *x)
{
    if (proto_verbose() < 2 || !proto_hooks_active->trace_command) {
        value_finish(x);
        return;
    }
    struct reply_mark m;
    enum proto_trace_kind kind =
        x->pc->store.kind == PROTO_STORE_META ? PROTO_TRACE_META : PROTO_TRACE_LINE;
    reply_mark(x->r, &m);
    value_finish(x);
    proto_trace_reply(x, &m, kind);
}

size_t proto_value_window(struct proto_conn *pc, char **dst)
{
    return value_in_window(&pc->value, dst);
}

void proto_value_filled(struct proto_conn *pc, size_t n)
{
    value_in_filled(&pc->value, n);
}

void proto_conn_release(struct proto_conn *pc)
{
    value_in_abort(&pc->value);
    pc->mget.active = false;
    pc->swallow = 0;
    proto_dump_release(pc);
    psasl_conn_release(pc);
}

/* ---- delete / incr / decr / touch ---- */

static enum cmd_result cmd_delete(struct proto_ctx *x, int arg)
{
    (void)arg;
    struct request *q = x->q;
    if (q->ntok > 2) {
        /* "delete k 0" is the legacy hold time, accepted only as 0. */
        bool hold_zero = TOK_IS(&q->tok[2], "0");
        bool noreply = proto_noreply_maybe(q);
        bool valid = (q->ntok == 3 && (hold_zero || noreply)) ||
                     (q->ntok == 4 && hold_zero && noreply);
        if (!valid) {
            OUT(x, MSG_DELETE_USAGE);
            return CMD_DONE;
        }
    }
    const struct token *key = cmd_key(x);
    if (!key)
        return CMD_DONE;
    DETAIL(key->p, key->len, DETAIL_DEL, false);
    WATCH_PEEK(x, key->p, key->len);
    if (storage_delete(key->p, key->len, 0) == ST_OK) {
        STAT_INC(x->st->delete_hits), STAT_INC(CLS_LAST(x)->delete_hits);
        OUT(x, MSG_DELETED);
    } else {
        STAT_INC(x->st->delete_misses);
        OUT(x, MSG_NOT_FOUND);
    }
    return CMD_DONE;
}

static enum cmd_result cmd_arith(struct proto_ctx *x, int incr)
{
    struct request *q = x->q;
    proto_noreply_maybe(q);
    const struct token *key = cmd_key(x);
    if (!key)
        return CMD_DONE;
    uint64_t delta, value = 0;
    if (!tok_strtoull(&q->tok[2], &delta)) {
        OUT(x, MSG_INVALID_DELTA);
        return CMD_DONE;
    }
    WATCH_PEEK(x, key->p, key->len);
    switch (storage_arith(key->p, key->len, incr, delta, &value, NULL)) {
    case ST_OK: {
        if (incr)
            STAT_INC(x->st->incr_hits), STAT_INC(CLS_LAST(x)->incr_hits);
        else
            STAT_INC(x->st->decr_hits), STAT_INC(CLS_LAST(x)->decr_hits);
        if (!q->noreply) {
            char *p = reply_reserve(x->r, 22), *s = p;
            p = proto_u64toa(value, p);
            *p++ = '\r';
            *p++ = '\n';
            reply_commit(x->r, (size_t)(p - s));
        } else if (proto_verbose() >= 2) {
            char b[24], *p = proto_u64toa(value, b);
            proto_trace_noreply(x, b, (size_t)(p - b));
        }
        break;
    }
    case ST_NOT_FOUND:
        if (incr)
            STAT_INC(x->st->incr_misses);
        else
            STAT_INC(x->st->decr_misses);
        OUT(x, MSG_NOT_FOUND);
        break;
    case ST_NON_NUMERIC: OUT(x, MSG_NON_NUMERIC); break;
    default: OUT(x, MSG_NO_MEMORY); break;
    }
    return CMD_DONE;
}

static enum cmd_result cmd_touch(struct proto_ctx *x, int arg)
{
    (void)arg;
    struct request *q = x->q;
    proto_noreply_maybe(q);
    const struct token *key = cmd_key(x);
    if (!key)
        return CMD_DONE;
    int32_t e;
    if (!tok_strtol(&q->tok[2], &e)) {
        OUT(x, MSG_INVALID_EXPTIME);
        return CMD_DONE;
    }
    struct item *it = storage_touch(key->p, key->len, clock_exptime(e));
    WATCH_GET(x, key->p, key->len, it);
    STAT_INC(x->st->cmd_touch);
    if (it) {
        STAT_INC(x->st->touch_hits), STAT_INC(CLS_OF(x, it)->touch_hits);
        item_put(it);
        OUT(x, MSG_TOUCHED);
    } else {
        STAT_INC(x->st->touch_misses);
        OUT(x, MSG_NOT_FOUND);
    }
    return CMD_DONE;
}

/* ---- flush_all / version / verbosity / quit / shutdown ---- */

static enum cmd_result cmd_flush_all(struct proto_ctx *x, int arg)
{
    (void)arg;
    struct request *q = x->q;
    proto_noreply_maybe(q);
    STAT_INC(x->st->cmd_flush); /* counted even when refused, as memcached */
    if (!proto_cfg.flush_enabled) {
        OUT(x, MSG_FLUSH_DISABLED);
        return CMD_DONE;
    }
    int32_t delay = 0;
    /* The delay is read unless the only argument is noreply; so "flush_all noreply 0" fails. */
    if (q->ntok != (q->noreply ? 2u : 1u) && !tok_strtol(&q->tok[1], &delay)) {
        OUT(x, MSG_INVALID_EXPTIME);
        return CMD_DONE;
    }
    storage_flush(delay > 0 ? clock_exptime(delay) : clock_now());
    OUT(x, MSG_OK);
    return CMD_DONE;
}

static enum cmd_result cmd_version(struct proto_ctx *x, int arg)
{
    (void)arg;
    reply_add(x->r, MSG_VERSION, MSG_LEN(MSG_VERSION));
    return CMD_DONE;
}

static enum cmd_result cmd_verbosity(struct proto_ctx *x, int arg)
{
    (void)arg;
    struct request *q = x->q;
    proto_noreply_maybe(q);
    uint32_t level;
    if (!tok_strtoul(&q->tok[1], &level)) {
        OUT(x, MSG_BAD_FORMAT);
        return CMD_DONE;
    }
    /* Workers write this one field at run time; a relaxed atomic store keeps that defined. */
    if (proto_cfg.verbose)
        __atomic_store_n(proto_cfg.verbose, level > 3 ? 3 : level, __ATOMIC_RELAXED);
    OUT(x, MSG_OK);
    return CMD_DONE;
}

static enum cmd_result cmd_quit(struct proto_ctx *x, int arg)
{
    (void)arg;
    x->pc->closing = true;
    x->pc->close_reason = PROTO_CLOSE_NORMAL;
    return CMD_CLOSE;
}

static enum cmd_result cmd_shutdown(struct proto_ctx *x, int arg)
{
    (void)arg;
    struct request *q = x->q;
    if (!proto_cfg.shutdown_enabled) {
        reply_add(x->r, MSG_SHUTDOWN_DISABLED, MSG_LEN(MSG_SHUTDOWN_DISABLED));
        return CMD_DONE;
    }
    if (q->ntok == 1 || (q->ntok == 2 && TOK_IS(&q->tok[1], "graceful"))) {
        if (proto_hooks_active->shutdown)
            proto_hooks_active->shutdown();
        x->pc->closing = true;
        x->pc->close_reason = PROTO_CLOSE_SHUTDOWN;
        return CMD_CLOSE;
    }
    reply_add(x->r, MSG_SHUTDOWN_MODE, MSG_LEN(MSG_SHUTDOWN_MODE));
    return CMD_DONE;
}

static enum cmd_result cmd_refresh_certs(struct proto_ctx *x, int arg)
{
    (void)arg;
    char err[1400];
    proto_noreply_maybe(x->q);
    if (proto_hooks_active->refresh_certs == NULL) {
        OUT(x, MSG_TLS_NOT_ENABLED);
        return CMD_DONE;
    }
    if (proto_hooks_active->refresh_certs(err, sizeof err))
        OUT(x, MSG_OK);
    else
        proto_out(x, err, strlen(err)); /* memcached's text, no ERROR prefix */
    return CMD_DONE;
}

/*
 * -Y: a connection that has not logged in, exactly as memcached 1.6.18's
 * try_read_command_asciiauth answers it, except that every pipelined command gets its reply
 * (memcached keeps only the last). Anything but `set <key> <flags> <exptime> <len>` is
 * "unauthenticated"; the login's data is "user password". Malformed data is counted nowhere.
 */
static enum cmd_result proto_auth(struct proto_ctx *x)
{
    struct request *q = x->q;
    uint32_t size;
    proto_tokenize(q);
    if (q->ntok < 5 || !TOK_IS(&q->tok[0], "set") || !tok_strtoul(&q->tok[4], &size)) {
        reply_add(x->r, MSG_UNAUTHENTICATED, MSG_LEN(MSG_UNAUTHENTICATED));
        return CMD_DONE;
    }
    /* Waited for in the read buffer, so bounded (memcached 1.6.18 waits in its fixed 16 KB
     * buffer too; later versions refuse past 1 KB with this message). */
    if (size > PROTO_AUTH_DATA_MAX) {
        reply_add(x->r, MSG_AUTH_TOO_LONG, MSG_LEN(MSG_AUTH_TOO_LONG));
        return CMD_DONE;
    }
    size_t total = (size_t)size + 2;
    if (x->avail < total)
        return CMD_NEED_MORE;
    x->data_used = total;
    const char *d = x->data;
    if (d[size] != '\r' || d[size + 1] != '\n') {
        reply_add(x->r, MSG_BAD_TERMINATION, MSG_LEN(MSG_BAD_TERMINATION));
        return CMD_DONE;
    }
    /* memcached reads the data as a C string and splits it on spaces. */
    const char *p = d, *end = d + strnlen(d, size);
    struct token user, pass;
    if (!proto_next_token(&p, end, &user) || !proto_next_token(&p, end, &pass)) {
        reply_add(x->r, MSG_AUTH_FORMAT, MSG_LEN(MSG_AUTH_FORMAT));
        return CMD_DONE;
    }
    STAT_INC(x->st->auth_cmds);
    if (auth_check(user.p, user.len, pass.p, pass.len)) {
        x->pc->authenticated = true;
        reply_add(x->r, MSG_STORED, MSG_LEN(MSG_STORED));
    } else {
        STAT_INC(x->st->auth_errors);
        reply_add(x->r, MSG_AUTH_FAILURE, MSG_LEN(MSG_AUTH_FAILURE));
    }
    return CMD_DONE;
}

/* ---- the command table ---- */

#define CMD(n, mn, mx, f, a) {n, sizeof(n) - 1, mn, mx, f, a}
/* Token counts include the command itself; memcached's WANT_TOKENS limits minus one. */
static const struct proto_cmd proto_cmds[] = {
    CMD("get", 2, 0, cmd_get, 0),
    CMD("set", 5, 6, cmd_store, OP_SET),
    CMD("gets", 2, 0, cmd_get, GET_CAS),
    CMD("delete", 2, 4, cmd_delete, 0),
    CMD("incr", 3, 4, cmd_arith, 1),
    CMD("decr", 3, 4, cmd_arith, 0),
    CMD("add", 5, 6, cmd_store, OP_ADD),
    CMD("replace", 5, 6, cmd_store, OP_REPLACE),
    CMD("append", 5, 6, cmd_store, OP_APPEND),
    CMD("prepend", 5, 6, cmd_store, OP_PREPEND),
    CMD("cas", 6, 7, cmd_store, OP_CAS),
    CMD("touch", 3, 4, cmd_touch, 0),
    CMD("gat", 2, 0, cmd_get, GET_TOUCH),
    CMD("gats", 2, 0, cmd_get, GET_TOUCH | GET_CAS),
    CMD("bget", 2, 0, cmd_get, 0), /* ancient alias memcached still answers */
    /* meta commands: protocol/meta.c */
    CMD("mg", 1, 0, proto_meta_mg, 0),
    CMD("ms", 1, 0, proto_meta_ms, 0),
    CMD("md", 1, 0, proto_meta_md, 0),
    CMD("ma", 1, 0, proto_meta_ma, 0),
    CMD("mn", 1, 0, proto_meta_mn, 0),
    CMD("me", 1, 0, proto_meta_me, 0),
    CMD("stats", 1, 0, proto_cmd_stats, 0),
    CMD("cache_memlimit", 2, 3, proto_cmd_memlimit, 0),
    CMD("debugtime", 2, 0, proto_cmd_debugtime, 0),
    CMD("lru_crawler", 2, 3, proto_cmd_lru_crawler, 0), /* protocol/admin.c */
    CMD("lru", 2, 0, proto_cmd_lru, 0),                 /* protocol/admin.c */
    CMD("slabs", 1, 0, proto_cmd_slabs, 0),
    CMD("flush_all", 1, 3, cmd_flush_all, 0),
    CMD("version", 1, 0, cmd_version, 0),
    CMD("verbosity", 2, 3, cmd_verbosity, 0),
    CMD("quit", 1, 0, cmd_quit, 0),
    CMD("shutdown", 1, 0, cmd_shutdown, 0),
    CMD("refresh_certs", 1, 0, cmd_refresh_certs, 0),
    CMD("watch", 1, 0, proto_cmd_watch, 0), /* protocol/watch.c */
};
#undef CMD

static const struct proto_cmd *cmd_lookup(const struct token *t)
{
    /* get and set (the table's first two entries) without the scan and its memcmp calls:
     * ~40 instructions of a depth-1 get (callgrind) */
    if (t->len == 3 && t->p[1] == 'e' && t->p[2] == 't') {
        if (t->p[0] == 'g')
            return &proto_cmds[0];
        if (t->p[0] == 's')
            return &proto_cmds[1];
    }
    for (size_t i = 0; i < sizeof(proto_cmds) / sizeof(proto_cmds[0]); i++) {
        const struct proto_cmd *c = &proto_cmds[i];
        if (c->len == t->len && c->name[0] == t->p[0] && memcmp(c->name, t->p, t->len) == 0)
            return c;
    }
    return NULL;
}

/* An unknown command: "ERROR", except that memcached closes on what looks like HTTP (last
 * token starting with "HTTP/") when the name does not start like one of its commands. */
static enum cmd_result unknown_command(struct proto_ctx *x)
{
    const struct request *q = x->q;
    const struct token *cmd = &q->tok[0];
    bool known_prefix = (cmd->len == 2 && cmd->p[0] == 'm') || memchr("gsacidt", cmd->p[0], 7);
    const struct token *last = &q->tok[q->ntok - 1];
    if (!known_prefix && last->len >= 5 && memcmp(last->p, "HTTP/", 5) == 0) {
        x->pc->closing = true;
        return CMD_CLOSE;
    }
    reply_add(x->r, MSG_ERROR, MSG_LEN(MSG_ERROR));
    return CMD_DONE;
}

static enum cmd_result dispatch(struct proto_ctx *x)
{
    struct request *q = x->q;
    enum cmd_result res;
    if (q->line[0] == 's' && set_fast(x, &res))
        return res;
    proto_tokenize(q);
    /* No command is shorter than two bytes; an empty line has no token. */
    if (q->ntok == 0 || q->tok[0].len < 2) {
        reply_add(x->r, MSG_ERROR, MSG_LEN(MSG_ERROR));
        return CMD_DONE;
    }
    const struct proto_cmd *c = cmd_lookup(&q->tok[0]);
    if (!c)
        return unknown_command(x);
    if (q->ntok < c->min_tok || (c->max_tok && q->ntok > c->max_tok)) {
        reply_add(x->r, MSG_ERROR, MSG_LEN(MSG_ERROR));
        return CMD_DONE;
    }
    return c->fn(x, c->arg);
}

/* A long line without its newline may only be a multi-get (up to 100 leading spaces).
 * Returns the bytes before its first key (spaces and "get"/"gets"), 0 if it is not one. */
static size_t long_get_line(const char *p, size_t len, bool *with_cas)
{
    size_t i = 0;
    while (i < len && p[i] == ' ')
        i++;
    if (i > 100)
        return 0;
    if (len - i >= 4 && memcmp(p + i, "get ", 4) == 0) {
        *with_cas = false;
        return i + 3;
    }
    if (len - i >= 5 && memcmp(p + i, "gets ", 5) == 0) {
        *with_cas = true;
        return i + 4;
    }
    return 0;
}

/* ---- long multi-get lines, key by key ---- */

/* A key over KEY_MAX_LENGTH: memcached answers only the error, dropping the VALUEs before it
 * (possible while none of them has been written), and ignores the rest of the line. */
static void mget_bad_key(struct proto_ctx *x)
{
    struct proto_mget *m = &x->pc->mget;
    if (x->r->sent == m->sent_at_mark)
        reply_rollback(x->r, &m->mark);
    reply_add(x->r, MSG_BAD_FORMAT, MSG_LEN(MSG_BAD_FORMAT));
    m->skip = true;
    m->bad = true;
}

/*
 * Runs the keys of a long get/gets line found in buf[0..len) and returns the bytes consumed:
 * every key followed by a space, and at the newline the rest of the line (then "END"). The last
 * key without a space after it is left for the next call, so at most KEY_MAX_LENGTH + 1 bytes
 * (a '\r' may end it) stay unconsumed. As with whole lines, a NUL byte ends the line's text.
 */
static size_t mget_feed(struct proto_ctx *x, const char *buf, size_t len)
{
    struct proto_mget *m = &x->pc->mget;
    const char *nl = memchr(buf, '\n', len);
    const char *end = nl ? nl : buf + len;
    const char *p = buf;
    struct get_batch b = {.n = 0, .touch = false, .with_cas = m->with_cas, .exptime = 0};
    if (!m->skip) {
        const char *nul = memchr(buf, '\0', (size_t)(end - buf));
        const char *lim = nul ? nul : end;
        bool final = nl != NULL || nul != NULL;
        if (nl && !nul && lim > buf && lim[-1] == '\r')
            lim--; /* "\r\n": the '\r' is not part of the last key */
        while (p < lim && !m->skip) {
            while (p < lim && *p == ' ')
                p++;
            if (p == lim)
                break;
            const char *sp = memchr(p, ' ', (size_t)(lim - p));
            struct token t = {p, (size_t)((sp ? sp : lim) - p)};
            if (!sp && !final && (t.len <= KEY_MAX_LENGTH ||
                                  (t.len == KEY_MAX_LENGTH + 1 && t.p[t.len - 1] == '\r'))) {
                get_batch_flush(x, &b);
                return (size_t)(p - buf); /* an unfinished key: wait for its end */
            }
            if (t.len > KEY_MAX_LENGTH) {
                get_batch_flush(x, &b);
                mget_bad_key(x);
                break;
            }
            get_batch_add(x, &b, &t);
            p = t.p + t.len;
        }
        get_batch_flush(x, &b);
        if (nul)
            m->skip = true; /* the line's text ends at the NUL */
    }
    if (nl == NULL)
        return len;
    if (!m->bad)
        reply_add(x->r, MSG_END, MSG_LEN(MSG_END));
    m->active = false;
    return (size_t)(nl + 1 - buf);
}

/* ---- lookahead over pipelined single-key gets ----
 *
 * At pipeline depth 16 a third of a get's time was do_item_find's two cache misses (the bucket
 * and the item; perf), stalling one get after the other. So when the buffer holds several
 * complete `get <key>` / `gets <key>` lines in a row, they are framed in one pass, their keys
 * hashed and their buckets and then their items prefetched (storage_prefetch_*) before the
 * first of them runs: the misses overlap. Each such line then runs without the tokenizer and
 * the command table, through the same get_key_done as any get, so replies and counters are
 * the ones of the general path. Anything else (a second key, extra spaces, a NUL or a lone '\r'
 * in the line, -vv tracing, a login) goes the general way.
 */
#define AHEAD_MAX 16
/* How far ahead of the get that runs each hint is given: the bucket 4 gets ahead, the chain's
 * first item 2 ahead (its bucket is then in cache), the second item 1 ahead. proto-pipe
 * (tools/bench/micro) at 100k keys: ns per get without the lookahead 646..674; with 4/2/1
 * 264..325; 2/1 without the chain step 444..546, 8/4 300..430; all 16 ahead at once 524..578
 * (a loaded machine: the ranges overlap, the lookahead against none does not). */
#define AHEAD_BUCKET_DIST 4
#define AHEAD_ITEM_DIST 2

struct ahead_get {
    size_t off;          /* where the line starts in buf */
    uint32_t line_total; /* bytes of the line with its newline */
    uint32_t len;        /* without "\r\n" / "\n" */
    uint16_t key_off;    /* the key: line + key_off, klen bytes */
    uint8_t klen;
    bool with_cas;
    bool mg;        /* an mg line: prefetched here, run by the general path */
    uint32_t chain; /* storage_prefetch_item's cursor */
    uint64_t hv;
};

struct ahead {
    unsigned n, i; /* g[i .. n) are still to run */
    struct ahead_get g[AHEAD_MAX];
};

/* Length of the key at p (at most avail bytes looked at): the bytes before the first ' ',
 * '\r', '\n' or NUL; avail if there is none. Sixteen bytes at a time where they are there. */
static size_t key_span(const char *p, size_t avail)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i sp = _mm_set1_epi8(' '), cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n'),
                  zero = _mm_setzero_si128();
    for (; i + 16 <= avail; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, sp), _mm_cmpeq_epi8(v, cr)),
                                 _mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, zero)));
        unsigned bits = (unsigned)_mm_movemask_epi8(m);
        if (bits)
            return i + (unsigned)__builtin_ctz(bits);
    }
#endif
    for (; i < avail; i++) {
        char c = p[i];
        if (c == ' ' || c == '\r' || c == '\n' || c == '\0')
            break;
    }
    return i;
}

/* Frames one complete "get <key>" / "gets <key>" line at p, ended by "\r\n" or "\n", with a
 * key of 1..KEY_MAX_LENGTH bytes: exactly what the general path would run as a one-key get. */
static bool simple_get_line(const char *p, size_t avail, struct ahead_get *g)
{
    if (avail < 6 || p[0] != 'g' || p[1] != 'e' || p[2] != 't')
        return false;
    size_t k = p[3] == ' ' ? 4 : (p[3] == 's' && p[4] == ' ') ? 5 : 0;
    if (k == 0)
        return false;
    size_t lim = avail - k < KEY_MAX_LENGTH + 2 ? avail - k : KEY_MAX_LENGTH + 2;
    size_t klen = key_span(p + k, lim);
    if (klen == 0 || klen > KEY_MAX_LENGTH || klen == lim)
        return false;
    size_t e = k + klen; /* the byte after the key: '\n', or '\r' then '\n' */
    size_t total;
    if (p[e] == '\n')
        total = e + 1;
    else if (p[e] == '\r' && e + 1 < avail && p[e + 1] == '\n')
        total = e + 2;
    else
        return false;
    g->line_total = (uint32_t)total;
    g->len = (uint32_t)e;
    g->key_off = (uint16_t)k;
    g->klen = (uint8_t)klen;
    g->with_cas = k == 5;
    g->mg = false;
    return true;
}

/* Frames one complete `mg <key>[ <flag>...]` line at p. Only its key is looked at: the line
 * runs through the general path (meta flags are many), which takes the hash computed here
 * when its key is these very bytes (proto_ctx.hint_key); a key the flags change (b: base64)
 * only wastes the prefetch. */
static bool simple_mg_line(const char *p, size_t avail, struct ahead_get *g)
{
    if (avail < 5 || p[0] != 'm' || p[1] != 'g' || p[2] != ' ')
        return false;
    size_t lim = avail - 3 < KEY_MAX_LENGTH + 2 ? avail - 3 : KEY_MAX_LENGTH + 2;
    size_t klen = key_span(p + 3, lim);
    if (klen == 0 || klen > KEY_MAX_LENGTH || klen == lim)
        return false;
    size_t e = 3 + klen;
    if (p[e] != ' ' && p[e] != '\r' && p[e] != '\n')
        return false;
    size_t scan = avail - e < REQ_LINE_MAX ? avail - e : REQ_LINE_MAX;
    const char *nl = memchr(p + e, '\n', scan);
    if (nl == NULL)
        return false;
    g->line_total = (uint32_t)(nl + 1 - p);
    g->len = (uint32_t)e;
    g->key_off = 3;
    g->klen = (uint8_t)klen;
    g->with_cas = false;
    g->mg = true;
    return true;
}

/* Frames the run of simple gets at buf[pos..len) (at most max of them), hashes their keys and
 * prefetches what their lookups will touch. */
static void ahead_scan(struct ahead *a, const char *buf, size_t pos, size_t len, unsigned max)
{
    unsigned n = 0;
    if (max > AHEAD_MAX)
        max = AHEAD_MAX;
    while (n < max && pos < len) {
        struct ahead_get *g = &a->g[n];
        if (!simple_get_line(buf + pos, len - pos, g) && !simple_mg_line(buf + pos, len - pos, g))
            break;
        g->off = pos;
        g->chain = 0;
        g->hv = storage_hash(buf + pos + g->key_off, g->klen);
        if (n < AHEAD_BUCKET_DIST)
            storage_prefetch_bucket(g->hv);
        pos += g->line_total;
        n++;
    }
    for (unsigned i = 1; i < n && i < AHEAD_ITEM_DIST; i++)
        a->g[i].chain = storage_prefetch_item(a->g[i].hv);
    a->n = n;
    a->i = 0;
}

/* The next framed get to run; first the hints for the ones after it. */
static const struct ahead_get *ahead_next(struct ahead *a)
{
    unsigned i = a->i++;
    if (i + AHEAD_BUCKET_DIST < a->n)
        storage_prefetch_bucket(a->g[i + AHEAD_BUCKET_DIST].hv);
    if (i + AHEAD_ITEM_DIST < a->n)
        a->g[i + AHEAD_ITEM_DIST].chain = storage_prefetch_item(a->g[i + AHEAD_ITEM_DIST].hv);
    if (i + 1 < a->n)
        storage_prefetch_chain(a->g[i + 1].chain);
    return &a->g[i];
}

/* Runs one framed simple get: what dispatch -> cmd_get would do for its line. */
static void ahead_run(struct proto_ctx *x, const char *line, const struct ahead_get *g)
{
    struct request *q = x->q;
    q->line = line;
    q->len = g->len;
    q->line_total = g->line_total;
    q->end = line + g->len;
    q->tok[0] = (struct token){line, g->with_cas ? 4u : 3u};
    q->tok[1] = (struct token){line + g->key_off, g->klen};
    q->ntok = 2;
    q->rest = NULL;
    q->noreply = false;
    x->data = line + g->line_total;
    x->data_used = 0;
    struct item *it = storage_get_hashed(q->tok[1].p, q->tok[1].len, g->hv);
    get_key_done(x, q->tok[1].p, q->tok[1].len, it, false, g->with_cas);
    reply_add(x->r, MSG_END, MSG_LEN(MSG_END));
}

enum proto_action proto_process(struct proto_conn *pc, struct reply *r, const char *buf,
                                size_t len, size_t *consumed, unsigned max_reqs,
                                size_t max_output)
{
    if (pc->mode == PROTO_MODE_UNKNOWN && len > 0) {
        /* memcached's negotiation: 0x80 first selects binary; -S serves binary only. Under
         * -Y memcached reads every connection as text (a binary request meets the login
         * parser: silence until a newline byte), and so does cached, -S or not (memcached's
         * -Y turns its binding to ascii after -S turned it to binary). */
        bool bin = !auth_enabled() && ((unsigned char)buf[0] == BIN_REQ_MAGIC || proto_cfg.sasl);
        /* -B ascii: text only (a 0x80 byte is a bad command); -B binary: binary only (a
         * text command is a bad magic byte, and memcached closes). */
        if (proto_cfg.binding == PROTO_BIND_ASCII)
            bin = false;
        else if (proto_cfg.binding == PROTO_BIND_BINARY)
            bin = true;
        pc->mode = bin ? PROTO_MODE_BINARY : PROTO_MODE_TEXT;
        proto_trace_negotiated(pc);
    }
    if (pc->mode == PROTO_MODE_BINARY)
        return proto_binary_process(pc, r, buf, len, consumed, max_reqs, max_output);
    static _Thread_local struct proto_stats dummy_stats;
    /* Not `= {0}`: tok[] (368 bytes) is written by proto_tokenize up to ntok before any read,
     * and zeroing it on every read was ~58 instructions of a depth-1 get (callgrind). */
    struct request q;
    q.line = q.rest = q.end = NULL;
    q.len = q.line_total = 0;
    q.ntok = 0;
    q.noreply = false;
    struct proto_ctx x = {.pc = pc, .r = r, .st = pc->stats ? pc->stats : &dummy_stats, .q = &q};
    reply_mark(r, &x.unsent); /* the server wrote what it could before this call */
    enum proto_action action = PROTO_CONTINUE;
    size_t pos = 0;
    unsigned nreq = 0;
    struct ahead ahead;
    ahead.n = ahead.i = 0;

    /* Latency: one clock read per command; a command's end is the next one's start (a
     * storage command is timed from its value complete to its reply queued). */
#ifndef CACHED_NO_OBSERVE
    uint64_t t0 = 0;
#endif
    while (!pc->closing && !pc->watch) {
        if (value_in_active(&pc->value)) {
            pos += value_in_feed(&pc->value, buf + pos, len - pos);
            if (!value_in_complete(&pc->value))
                break;
#ifndef CACHED_NO_OBSERVE
            /* a storage command is parsed once its value is in: time the store itself */
            enum obs_cmd voc = pc->store.kind == PROTO_STORE_META ? OBS_MS : OBS_SET;
            uint64_t tv = obs_now();
            traced_value_finish(&x);
            t0 = obs_now();
            obs_latency_add(&x.st->obs, voc, obs_ticks_ns(tv, t0));
#else
            traced_value_finish(&x);
#endif
            continue;
        }
        if (pc->dump != NULL) { /* a metadump streams before the commands after it run */
            if (!proto_dump_continue(&x, max_output)) {
                action = PROTO_YIELD;
                break;
            }
            nreq++;
            continue;
        }
        if (pos >= len)
            break;
        if (pc->swallow) {
            size_t n = len - pos < pc->swallow ? len - pos : (size_t)pc->swallow;
            pos += n;
            pc->swallow -= n;
            continue;
        }
        if (r->pending > max_output) {
            action = PROTO_YIELD;
            break;
        }
        if (pc->mget.active) {
            size_t n = mget_feed(&x, buf + pos, len - pos);
            pos += n;
            if (pc->mget.active)
                break; /* the line goes on in the next read */
            reply_mark(r, &x.unsent);
            nreq++;
            continue;
        }
        if (nreq >= max_reqs) {
            action = PROTO_YIELD;
            break;
        }
        bool login = !pc->authenticated && auth_enabled();
        if (ahead.i == ahead.n && !login && !(proto_hooks_active->trace_command &&
                                              proto_verbose() >= 2))
            ahead_scan(&ahead, buf, pos, len, max_reqs - nreq);
        x.hint_key = NULL;
        if (ahead.i < ahead.n && ahead.g[ahead.i].off == pos && ahead.g[ahead.i].mg) {
            /* an mg line: the hints for the lines after it, then the general path below */
            const struct ahead_get *g = ahead_next(&ahead);
            x.hint_key = buf + pos + g->key_off;
            x.hint_nkey = g->klen;
            x.hint_hv = g->hv;
        } else if (ahead.i < ahead.n && ahead.g[ahead.i].off == pos) {
            /* The framed gets back to back: none of them changes what the checks above look
             * at (no value, no closing, no mode), except the reply's size; their count is
             * within max_reqs (ahead_scan). ~35 instructions a get fewer (callgrind). */
            do {
                const struct ahead_get *g = ahead_next(&ahead);
#ifndef CACHED_NO_OBSERVE
                if (t0 == 0)
                    t0 = obs_now();
#endif
                ahead_run(&x, buf + pos, g);
#ifndef CACHED_NO_OBSERVE
                uint64_t t1 = obs_now();
                obs_latency_add(&x.st->obs, OBS_GET, obs_ticks_ns(t0, t1));
                t0 = t1;
#endif
                pos += g->line_total;
                nreq++;
            } while (ahead.i < ahead.n && !ahead.g[ahead.i].mg && r->pending <= max_output);
            reply_mark(r, &x.unsent); /* memcached writes out after a get (cmd_get) */
            continue;
        } else {
            ahead.i = ahead.n = 0; /* not where the lookahead was (cannot happen): drop it */
        }
        const char *line = buf + pos;
        size_t avail = len - pos;
        const char *nl = memchr(line, '\n', avail);
        if (!nl) {
            bool with_cas = false;
            size_t head;
            if (avail <= REQ_LINE_MAX)
                break; /* wait for the rest of the line */
            /* Before login memcached closes past 2048 bytes without a newline, gets too. */
            if (login || (head = long_get_line(line, avail, &with_cas)) == 0) {
                pc->closing = true; /* REQ_TOO_BIG */
                action = PROTO_CLOSE;
                break;
            }
            pc->mget = (struct proto_mget){.active = true, .with_cas = with_cas,
                                           .sent_at_mark = r->sent};
            reply_mark(r, &pc->mget.mark);
            pos += head;
            continue;
        }
        size_t ll = (size_t)(nl - line);
        q.line_total = ll + 1;
        if (ll > 1 && line[ll - 1] == '\r') /* "\r\n" or a bare "\n" */
            ll--;
        q.line = line;
        q.len = strnlen(line, ll); /* memcached sees the line as a C string */
        q.noreply = false;
        x.data = nl + 1;
        x.avail = avail - q.line_total;
        x.data_used = 0;
#ifndef CACHED_NO_OBSERVE
        if (t0 == 0)
            t0 = obs_now();
#endif
        enum cmd_result res;
        if (!login && proto_hooks_active->trace_command && proto_verbose() >= 2) {
            struct reply_mark m;
            proto_hooks_active->trace_command(pc->trace_id, q.line, q.len);
            reply_mark(r, &m);
            res = dispatch(&x);
            proto_trace_reply(&x, &m, proto_trace_kind_of(&q));
        } else {
            res = login ? proto_auth(&x) : dispatch(&x);
        }
        x.hint_key = NULL;
        if (res == CMD_NEED_MORE)
            break; /* the login's data is not all in yet (bounded: PROTO_AUTH_DATA_MAX) */
#ifndef CACHED_NO_OBSERVE
        if (!login && q.ntok > 0) {
            enum obs_cmd oc = obs_classify(&q.tok[0], q.ntok > 2 || q.rest ? 2 : 1);
            if (oc != OBS_NONE) {
                uint64_t t1 = obs_now();
                /* a storage command whose value is still to come is timed when it is in */
                if (!value_in_active(&pc->value))
                    obs_latency_add(&x.st->obs, oc, obs_ticks_ns(t0, t1));
                t0 = t1;
#ifndef CACHED_NO_HOTKEYS
                obs_command_keys(&x.st->obs, oc, &q);
#endif
            } else {
                t0 = 0; /* stats & co.: the next measured command starts its own clock */
            }
        }
#endif
        pos += q.line_total + x.data_used;
        nreq++;
        if (res == CMD_CLOSE) {
            action = PROTO_CLOSE;
            break;
        }
    }
    if (pc->closing)
        action = PROTO_CLOSE;
    else if (pc->watch)
        pos = len; /* a watcher's input is ignored, as memcached's conn_watch does */
    *consumed = pos;
    return action;
}
