/*
 * binary: memcached 1.6.18's binary protocol (its proto_bin.c) on the same store, CAS
 * sequence and counters as the text and meta commands. Frames a packet, checks its lengths
 * in memcached's order, runs the opcode and composes the response; never sees a socket.
 *
 * memcached's odd corners are kept on purpose, because clients were written against them:
 *   - only header + extras + key must be buffered before a command runs; bytes of a longer
 *     body that a command does not read (stat, touch, ...) are parsed as the next packet;
 *   - an unknown opcode swallows `bodylen` bytes counted *after* extras and key;
 *   - bad lengths answer EINVAL (or UNKNOWN_COMMAND when key + extras exceed the body) and
 *     close; a bad magic byte closes without an answer;
 *   - a quiet command stays silent on success (get: on a miss) but reports errors;
 *   - ADD/REPLACE with a CAS are CAS operations; verbosity (0x1b) is an unknown command.
 */
#include "protocol/binary.h"

#include <string.h>

#include "protocol/internal.h"
#include "protocol/sasl.h"
#include "storage/mem.h"
#include "storage/meta_ops.h"

enum bin_op {
    BIN_GET = 0x00, BIN_SET = 0x01, BIN_ADD = 0x02, BIN_REPLACE = 0x03, BIN_DELETE = 0x04,
    BIN_INCR = 0x05, BIN_DECR = 0x06, BIN_QUIT = 0x07, BIN_FLUSH = 0x08, BIN_GETQ = 0x09,
    BIN_NOOP = 0x0a, BIN_VERSION = 0x0b, BIN_GETK = 0x0c, BIN_GETKQ = 0x0d, BIN_APPEND = 0x0e,
    BIN_PREPEND = 0x0f, BIN_STAT = 0x10, BIN_SETQ = 0x11, BIN_ADDQ = 0x12, BIN_REPLACEQ = 0x13,
    BIN_DELETEQ = 0x14, BIN_INCRQ = 0x15, BIN_DECRQ = 0x16, BIN_QUITQ = 0x17, BIN_FLUSHQ = 0x18,
    BIN_APPENDQ = 0x19, BIN_PREPENDQ = 0x1a, BIN_TOUCH = 0x1c, BIN_GAT = 0x1d, BIN_GATQ = 0x1e,
    BIN_SASL_LIST = 0x20, BIN_SASL_AUTH = 0x21, BIN_SASL_STEP = 0x22, BIN_GATK = 0x23,
    BIN_GATKQ = 0x24,
};

enum bin_status {
    BST_OK = 0x00, BST_ENOENT = 0x01, BST_EEXISTS = 0x02, BST_E2BIG = 0x03, BST_EINVAL = 0x04,
    BST_NOT_STORED = 0x05, BST_DELTA_BADVAL = 0x06, BST_AUTH_ERROR = 0x20,
    BST_AUTH_CONTINUE = 0x21, BST_UNKNOWN = 0x81, BST_ENOMEM = 0x82,
};

/* The request header, host order. */
struct bin_hdr {
    uint8_t opcode, extlen;
    uint16_t keylen;
    uint32_t bodylen;
    uint32_t opaque; /* echoed as the client sent it (network order, never interpreted) */
    uint64_t cas;
};

/* One command being run. */
struct bin_ctx {
    struct proto_conn *pc;
    struct reply *r;
    struct proto_stats *st;
    struct bin_hdr h;
    uint8_t cmd;       /* opcode with a quiet variant mapped to its loud one */
    bool noreply;      /* quiet variant: no response on success */
    const unsigned char *ext;
    const char *key;
    const char *rest;  /* bytes after extras and key ... */
    size_t avail;      /* ... and how many of them are buffered */
    size_t used;       /* out: bytes of rest consumed */
    bool close;        /* out: close once the response is sent */
    bool hinted;       /* hint_hv is key's hash (the lookahead took it) */
    uint64_t hint_hv;
};

static uint16_t rd16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t rd64(const unsigned char *p)
{
    return ((uint64_t)rd32(p) << 32) | rd32(p + 4);
}

static void wr16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void wr32(unsigned char *p, uint32_t v)
{
    wr16(p, (uint16_t)(v >> 16));
    wr16(p + 2, (uint16_t)v);
}

static void wr64(unsigned char *p, uint64_t v)
{
    wr32(p, (uint32_t)(v >> 32));
    wr32(p + 4, (uint32_t)v);
}

/* ---- compose ---- */

/* -vv: the response header as memcached dumps it: a get or touch hit's CAS is filled in
 * after its dump there, so the dump shows 0. */
static void trace_response(const struct bin_ctx *x, const unsigned char *p)
{
    unsigned char h[BIN_HEADER_LEN];
    memcpy(h, p, sizeof h);
    if (x->cmd == BIN_GET || x->cmd == BIN_GETK || x->cmd == BIN_GAT || x->cmd == BIN_GATK ||
        x->cmd == BIN_TOUCH)
        memset(h + 16, 0, 8);
    proto_trace_bin_header(x->pc->trace_id, true, h);
}

/* Appends a response header (memcached's add_bin_header) and returns where the body may
 * follow inside the reserved space (room bytes of it). */
static unsigned char *bin_header(struct bin_ctx *x, uint8_t opcode, uint16_t status,
                                 uint8_t extlen, uint16_t keylen, uint32_t bodylen,
                                 uint64_t cas, size_t room)
{
    unsigned char *p = (unsigned char *)reply_reserve(x->r, BIN_HEADER_LEN + room);
    p[0] = BIN_RES_MAGIC;
    p[1] = opcode;
    wr16(p + 2, keylen);
    p[4] = extlen;
    p[5] = 0; /* raw bytes */
    wr16(p + 6, status);
    wr32(p + 8, bodylen);
    memcpy(p + 12, &x->h.opaque, 4);
    wr64(p + 16, cas);
    if (PROTO_TRACING())
        trace_response(x, p);
    return p + BIN_HEADER_LEN;
}

/* A response whose body is one small buffer (at most a few KB). */
static void bin_respond(struct bin_ctx *x, uint16_t status, const void *body, size_t len,
                        uint64_t cas)
{
    unsigned char *p = bin_header(x, x->h.opcode, status, 0, 0, (uint32_t)len, cas, len);
    if (len)
        memcpy(p, body, len);
    reply_commit(x->r, BIN_HEADER_LEN + len);
}

/* memcached's write_bin_response: a success, unless the command is quiet. */
static void bin_ok(struct bin_ctx *x, const void *body, size_t len, uint64_t cas)
{
    if (!x->noreply)
        bin_respond(x, BST_OK, body, len, cas);
}

/* Consumes n bytes after extras and key: what is buffered now, the rest as it arrives. */
static void bin_swallow(struct bin_ctx *x, uint64_t n)
{
    if (x->avail >= n) {
        x->used = (size_t)n;
    } else {
        x->used = x->avail;
        x->pc->swallow = n - x->avail;
    }
}

/* memcached's generic error text for a status. */
static const char *bin_status_text(uint16_t status)
{
    switch (status) {
    case BST_ENOMEM: return "Out of memory";
    case BST_UNKNOWN: return "Unknown command";
    case BST_ENOENT: return "Not found";
    case BST_EINVAL: return "Invalid arguments";
    case BST_EEXISTS: return "Data exists for key.";
    case BST_E2BIG: return "Too large.";
    case BST_DELTA_BADVAL: return "Non-numeric server-side value for incr or decr";
    case BST_NOT_STORED: return "Not stored.";
    default: return "Auth failure.";
    }
}

/* memcached's write_bin_error: always sent, quiet or not; msg NULL picks the generic text. */
static void bin_error(struct bin_ctx *x, uint16_t status, const char *msg, uint64_t swallow)
{
    const char *text = msg ? msg : bin_status_text(status);
    if (PROTO_TRACING())
        proto_trace_printf(">%d Writing an error: %s\n", x->pc->trace_id, text);
    bin_respond(x, status, text, strlen(text), 0);
    if (swallow > 0)
        bin_swallow(x, swallow);
}

/* Malformed lengths for the opcode: EINVAL, then the connection closes. */
static void bin_protocol_error(struct bin_ctx *x)
{
    bin_error(x, BST_EINVAL, NULL, 0);
    x->close = true;
}

/* ---- the value of a storage command ---- */

/*
 * Starts reading the vlen value bytes after extras and key into it (protocol/value.h): what is
 * buffered now, the rest as it arrives, so no buffer grows with a value. What the response
 * needs is kept in pc->store; bin_value_finish runs once the value is complete.
 */
static void bin_value_start(struct bin_ctx *x, struct item *it, uint8_t kind, enum store_op op,
                            uint64_t hv)
{
    x->pc->store = (struct proto_store){.kind = kind, .op = (uint8_t)op, .noreply = x->noreply,
                                        .cas = x->h.cas, .hv = hv, .bin_opcode = x->h.opcode,
                                        .bin_cmd = x->cmd, .bin_opaque = x->h.opaque};
    value_in_start(&x->pc->value, it, 0);
    x->used = value_in_feed(&x->pc->value, x->rest, x->avail);
}

/* Maps a store result to memcached's status (complete_update_bin). */
static void bin_store_reply(struct bin_ctx *x, enum store_op op, enum st_result res,
                            uint64_t cas)
{
    switch (res) {
    case ST_OK: bin_ok(x, NULL, 0, cas); break;
    case ST_EXISTS: bin_error(x, BST_EEXISTS, NULL, 0); break;
    case ST_NOT_FOUND: bin_error(x, BST_ENOENT, NULL, 0); break;
    default:
        if (op == OP_ADD)
            bin_error(x, BST_EEXISTS, NULL, 0);
        else if (op == OP_REPLACE)
            bin_error(x, BST_ENOENT, NULL, 0);
        else
            bin_error(x, BST_NOT_STORED, NULL, 0);
        break;
    }
}

/* set/add/replace (extras: flags, expiration) and append/prepend (no extras). */
static enum cmd_result bin_store(struct bin_ctx *x)
{
    enum store_op op;
    switch (x->cmd) {
    case BIN_SET: op = OP_SET; break;
    case BIN_ADD: op = OP_ADD; break;
    case BIN_REPLACE: op = OP_REPLACE; break;
    case BIN_APPEND: op = OP_APPEND; break;
    default: op = OP_PREPEND; break;
    }
    bool concat = op == OP_APPEND || op == OP_PREPEND;
    uint32_t flags = concat ? 0 : rd32(x->ext);
    uint32_t exptime = concat ? 0 : rd32(x->ext + 4);
    uint64_t vlen = (uint64_t)x->h.bodylen - x->h.keylen - x->h.extlen;
    if (PROTO_TRACING()) { /* memcached prints vlen as an int */
        static const char *const names[] = {[OP_SET] = "SET", [OP_ADD] = "ADD", [OP_REPLACE] = "REPLACE"};
        if (concat)
            proto_trace_printf("Value len is %d\n", (int)vlen);
        else
            proto_trace_printf("<%d %s %.*s Value len is %d\n", x->pc->trace_id, names[op],
                               (int)x->h.keylen, x->key, (int)vlen);
    }
    /* Refused before the value arrives, so a huge body never grows the buffer. */
    if (!item_fits(x->h.keylen, flags, vlen)) {
        STAT_INC(x->st->store_too_large);
        bin_error(x, BST_E2BIG, NULL, vlen);
        WATCH_REFUSED(x, x->key, x->h.keylen, op, ST_TOO_LARGE);
        if (op == OP_SET) { /* memcached drops the old value of a failed set */
            WATCH_PEEK(x, x->key, x->h.keylen);
            storage_delete(x->key, x->h.keylen, 0);
        }
        return CMD_DONE;
    }
    DETAIL(x->key, x->h.keylen, DETAIL_SET, false);
    enum st_result res = ST_OK;
    uint64_t hv = storage_key_hash(x->key, x->h.keylen); /* for the allocation and the store */
    struct item *it = item_alloc_hv(x->key, x->h.keylen, hv, flags,
                                    concat ? 0 : clock_exptime((int64_t)exptime), (uint32_t)vlen,
                                    &res);
    if (!it) {
        if (res == ST_TOO_LARGE) {
            STAT_INC(x->st->store_too_large);
            bin_error(x, BST_E2BIG, NULL, vlen);
        } else {
            STAT_INC(x->st->store_no_memory);
            bin_error(x, BST_ENOMEM, "Out of memory allocating item", vlen);
        }
        WATCH_REFUSED(x, x->key, x->h.keylen, op, res);
        if (op == OP_SET) {
            WATCH_PEEK(x, x->key, x->h.keylen);
            storage_delete(x->key, x->h.keylen, 0);
        }
        return CMD_DONE;
    }
    STAT_INC(x->st->cmd_set), STAT_INC(CLS_OF(x, it)->cmd_set);
    if (proto_cfg.cas_disabled)
        x->h.cas = 0; /* memcached sets the CAS on the new item: a no-op under -C */
    bin_value_start(x, it, PROTO_STORE_BINARY, op, hv);
    return CMD_DONE;
}

/* The value of a set/add/replace/append/prepend is in its item: store it and respond. */
static void bin_store_finish(struct bin_ctx *x, struct item *it)
{
    enum store_op op = (enum store_op)x->pc->store.op;
    bool concat = op == OP_APPEND || op == OP_PREPEND;
    enum st_result res;
    uint64_t cas = 0;
    WATCH_PEEK(x, item_key(it), it->nkey);
    if (concat) {
        /* A CAS given to append/prepend must match; a missing key is NOT_STORED. */
        res = storage_meta_store_hv(it, x->pc->store.hv, op, x->h.cas != 0, x->h.cas, false,
                                    false, &cas);
    } else {
        /* Any CAS makes set/add/replace a CAS operation (memcached's NREAD_CAS). */
        enum store_op sop = x->h.cas != 0 ? OP_CAS : op;
        res = storage_store_hv(it, x->pc->store.hv, sop, x->h.cas, &cas);
        if (sop == OP_CAS) {
            op = OP_CAS;
            if (res == ST_OK)
                STAT_INC(x->st->cas_hits), STAT_INC(CLS_OF(x, it)->cas_hits);
            else if (res == ST_EXISTS)
                STAT_INC(x->st->cas_badval), STAT_INC(CLS_OF(x, it)->cas_badval);
            else if (res == ST_NOT_FOUND)
                STAT_INC(x->st->cas_misses);
        }
    }
    WATCH_STORE(x, it, op, res);
    item_put(it);
    if (res == ST_TOO_LARGE || res == ST_NO_MEMORY)
        res = ST_NOT_STORED;
    bin_store_reply(x, op, res, cas);
}

/* ---- get / getk / touch / gat / gatk ---- */

static enum cmd_result bin_get(struct bin_ctx *x)
{
    bool touch = x->cmd == BIN_TOUCH || x->cmd == BIN_GAT || x->cmd == BIN_GATK;
    bool with_key = x->cmd == BIN_GETK || x->cmd == BIN_GATK;
    bool with_value = x->cmd != BIN_TOUCH;
    struct item *it;
    if (PROTO_TRACING())
        proto_trace_printf("<%d %s %.*s\n", x->pc->trace_id, touch ? "TOUCH" : "GET",
                           (int)x->h.keylen, x->key);
    if (touch) {
        it = storage_touch(x->key, x->h.keylen, clock_exptime((int64_t)rd32(x->ext)));
        STAT_INC(x->st->cmd_touch);
        if (it)
            STAT_INC(x->st->touch_hits), STAT_INC(CLS_OF(x, it)->touch_hits);
        else
            STAT_INC(x->st->touch_misses);
    } else {
        it = x->hinted ? storage_get_hashed(x->key, x->h.keylen, x->hint_hv)
                       : storage_get(x->key, x->h.keylen);
        STAT_INC(x->st->cmd_get);
        if (it)
            STAT_INC(x->st->get_hits), STAT_INC(CLS_OF(x, it)->get_hits);
        else
            STAT_INC(x->st->get_misses);
    }
    DETAIL(x->key, x->h.keylen, DETAIL_GET, it != NULL);
    WATCH_GET(x, x->key, x->h.keylen, it);
    if (!it) {
        if (x->noreply)
            return CMD_DONE;
        if (with_key) {
            /* GETK/GATK misses carry the key and no text. */
            unsigned char *p = bin_header(x, x->h.opcode, BST_ENOENT, 0, x->h.keylen,
                                          x->h.keylen, 0, x->h.keylen);
            memcpy(p, x->key, x->h.keylen);
            reply_commit(x->r, BIN_HEADER_LEN + x->h.keylen);
        } else {
            bin_error(x, BST_ENOENT, NULL, 0);
        }
        return CMD_DONE;
    }
    size_t nkey = with_key ? it->nkey : 0;
    size_t nval = with_value ? it->nbytes : 0;
    bool inline_value = nval < PROTO_INLINE_VALUE_MAX;
    size_t room = 4 + nkey + (inline_value ? nval : 0);
    unsigned char *p = bin_header(x, x->h.opcode, BST_OK, 4, (uint16_t)nkey,
                                  (uint32_t)(4 + nkey + nval), item_cas(it), room);
    wr32(p, it->flags);
    memcpy(p + 4, item_key(it), nkey);
    if (inline_value) {
        memcpy(p + 4 + nkey, item_value(it), nval);
        reply_commit(x->r, BIN_HEADER_LEN + room);
        item_put(it);
    } else {
        reply_commit(x->r, BIN_HEADER_LEN + room);
        reply_add_item_data(x->r, it, item_value(it), nval);
    }
    return CMD_DONE;
}

/* ---- delete / incr / decr ---- */

static enum cmd_result bin_delete(struct bin_ctx *x)
{
    if (PROTO_TRACING())
        proto_trace_printf("Deleting %.*s\n", (int)x->h.keylen, x->key);
    DETAIL(x->key, x->h.keylen, DETAIL_DEL, false);
    WATCH_PEEK(x, x->key, x->h.keylen);
    switch (storage_delete(x->key, x->h.keylen, x->h.cas)) {
    case ST_OK:
        STAT_INC(x->st->delete_hits), STAT_INC(CLS_LAST(x)->delete_hits);
        bin_ok(x, NULL, 0, 0);
        break;
    case ST_EXISTS: bin_error(x, BST_EEXISTS, NULL, 0); break;
    default:
        STAT_INC(x->st->delete_misses);
        bin_error(x, BST_ENOENT, NULL, 0);
        break;
    }
    return CMD_DONE;
}

/* Extras: delta, initial value, expiration. A miss creates the key with the initial value
 * unless expiration is 0xffffffff. */
static enum cmd_result bin_arith(struct bin_ctx *x)
{
    bool incr = x->cmd == BIN_INCR;
    uint32_t exptime = rd32(x->ext + 16);
    struct meta_arith_args a = {
        .incr = incr,
        .delta = rd64(x->ext),
        .cas = x->h.cas,
        .vivify = exptime != 0xffffffffu,
        .initial = rd64(x->ext + 8),
        .vivify_exptime = clock_exptime((int64_t)exptime),
    };
    struct meta_arith_result res;
    unsigned char body[8];
    if (PROTO_TRACING()) /* memcached's words for incr and decr alike */
        proto_trace_printf("incr %.*s %lld, %llu, %d\n", (int)x->h.keylen, x->key,
                           (long long)a.delta, (unsigned long long)a.initial, (int)exptime);
    WATCH_PEEK(x, x->key, x->h.keylen);
    enum st_result r = storage_meta_arith(x->key, x->h.keylen, &a, &res);
    if (r == ST_OK && res.created && WATCHING(WATCH_FETCHERS | WATCH_MUTATIONS))
        proto_watch_vivified(x->pc->trace_id, x->key, x->h.keylen);
    switch (r) {
    case ST_OK:
        if (!res.created) {
            if (incr)
                STAT_INC(x->st->incr_hits), STAT_INC(CLS_LAST(x)->incr_hits);
            else
                STAT_INC(x->st->decr_hits), STAT_INC(CLS_LAST(x)->decr_hits);
        }
        wr64(body, res.value);
        bin_ok(x, body, 8, res.cas);
        break;
    case ST_NOT_FOUND:
        if (incr)
            STAT_INC(x->st->incr_misses);
        else
            STAT_INC(x->st->decr_misses);
        bin_error(x, BST_ENOENT, NULL, 0);
        break;
    case ST_NON_NUMERIC: bin_error(x, BST_DELTA_BADVAL, NULL, 0); break;
    case ST_EXISTS: bin_error(x, BST_EEXISTS, NULL, 0); break;
    case ST_NOT_STORED: bin_error(x, BST_ENOMEM, "Out of memory allocating new item", 0); break;
    default: bin_error(x, BST_ENOMEM, "Out of memory incrementing value", 0); break;
    }
    return CMD_DONE;
}

/* ---- flush / stat ---- */

static enum cmd_result bin_flush(struct bin_ctx *x)
{
    if (!proto_cfg.flush_enabled) {
        bin_error(x, BST_AUTH_ERROR, NULL, 0);
        return CMD_DONE;
    }
    uint32_t delay = x->h.extlen == 4 ? rd32(x->ext) : 0;
    storage_flush(delay > 0 ? clock_exptime((int64_t)delay) : clock_now());
    STAT_INC(x->st->cmd_flush);
    bin_ok(x, NULL, 0, 0);
    return CMD_DONE;
}

/* One stat packet: key and value, opcode STAT, status 0, CAS 0. */
static void bin_stat(struct bin_ctx *x, const char *k, size_t nk, const char *v, size_t nv)
{
    bin_header(x, BIN_STAT, BST_OK, 0, (uint16_t)nk, (uint32_t)(nk + nv), 0, 0);
    reply_commit(x->r, BIN_HEADER_LEN);
    if (nk)
        reply_add(x->r, k, nk);
    if (nv)
        reply_add(x->r, v, nv);
}

/*
 * Runs the text `stats` command for line (e.g. "stats items") into a scratch reply and
 * returns its bytes (mem_alloc'd, *len long). The text composer stays the one source of
 * every stats group; binary only re-frames its lines.
 */
static char *stats_text(struct bin_ctx *x, const char *line, size_t *len)
{
    struct reply tmp;
    struct request q;
    memset(&q, 0, sizeof q);
    q.line = line;
    q.len = strlen(line);
    q.line_total = q.len;
    proto_tokenize(&q);
    reply_init(&tmp);
    struct proto_ctx c = {.pc = x->pc, .r = &tmp, .st = x->st, .q = &q};
    proto_cmd_stats(&c, 0);
    struct iovec *iov;
    size_t n = reply_iov(&tmp, &iov, SIZE_MAX), total = 0;
    for (size_t i = 0; i < n; i++)
        total += iov[i].iov_len;
    char *out = mem_alloc(total + 1);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(out + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    out[off] = '\0';
    reply_deinit(&tmp);
    *len = off;
    return out;
}

/* Re-frames "STAT name value\r\n" lines as stat packets, then the empty terminator. */
/* terminate: the empty packet that ends a stats reply (memcached sends none after its
 * sizes_enable / sizes_disable status). */
static void bin_stats_lines(struct bin_ctx *x, const char *line, bool terminate)
{
    size_t len;
    char *text = stats_text(x, line, &len);
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        const char *e = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        if (e - p > 5 && memcmp(p, "STAT ", 5) == 0) {
            const char *k = p + 5;
            const char *sp = memchr(k, ' ', (size_t)(e - k));
            const char *v = sp ? sp + 1 : e;
            bin_stat(x, k, (size_t)((sp ? sp : e) - k), v, (size_t)(e - v));
        }
        p = nl + 1;
    }
    mem_free(text);
    if (terminate)
        bin_stat(x, NULL, 0, NULL, 0);
}

static void bin_stats_from_text(struct bin_ctx *x, const char *line)
{
    bin_stats_lines(x, line, true);
}

static bool key_starts(const struct bin_ctx *x, const char *s)
{
    size_t n = strlen(s);
    return x->h.keylen >= n && memcmp(x->key, s, n) == 0;
}

static bool key_is(const struct bin_ctx *x, const char *s)
{
    return x->h.keylen == strlen(s) && memcmp(x->key, s, x->h.keylen) == 0;
}

/* memcached's process_bin_stat: which groups binary answers, matched its way (prefixes
 * for reset/settings/detail, exact names for the rest). */
static enum cmd_result bin_stats(struct bin_ctx *x)
{
    if (PROTO_TRACING())
        proto_trace_printf("<%d STATS %.*s\n", x->pc->trace_id, (int)x->h.keylen, x->key);
    if (x->h.keylen == 0) {
        bin_stats_from_text(x, "stats");
    } else if (key_starts(x, "reset")) {
        size_t len;
        mem_free(stats_text(x, "stats reset", &len));
        bin_stat(x, NULL, 0, NULL, 0);
    } else if (key_starts(x, "settings")) {
        bin_stats_from_text(x, "stats settings");
    } else if (key_starts(x, "detail")) {
        const char *sub = x->key + 6;
        size_t n = x->h.keylen - 6;
        size_t len;
        if (n >= 5 && memcmp(sub, " dump", 5) == 0) {
            char *text = stats_text(x, "stats detail dump", &len);
            bin_stat(x, "detailed", 8, text, len);
            mem_free(text);
        } else if (n >= 3 && memcmp(sub, " on", 3) == 0) {
            mem_free(stats_text(x, "stats detail on", &len));
        } else if (n >= 4 && memcmp(sub, " off", 4) == 0) {
            mem_free(stats_text(x, "stats detail off", &len));
        } else {
            bin_error(x, BST_ENOENT, NULL, 0);
            return CMD_DONE;
        }
        bin_stat(x, NULL, 0, NULL, 0);
    } else if (key_is(x, "items")) {
        bin_stats_from_text(x, "stats items");
    } else if (key_is(x, "slabs")) {
        bin_stats_from_text(x, "stats slabs");
    } else if (key_is(x, "sizes")) {
        bin_stats_from_text(x, "stats sizes");
    } else if (key_is(x, "sizes_enable")) {
        bin_stats_lines(x, "stats sizes_enable", false);
    } else if (key_is(x, "sizes_disable")) {
        bin_stats_lines(x, "stats sizes_disable", false);
    } else {
        bin_error(x, BST_ENOENT, NULL, 0);
    }
    return CMD_DONE;
}

/* ---- SASL ---- */

static enum cmd_result bin_sasl_list(struct bin_ctx *x)
{
    if (!proto_cfg.sasl) {
        bin_error(x, BST_UNKNOWN, NULL, (uint64_t)x->h.bodylen - x->h.keylen);
        return CMD_DONE;
    }
    const char *out;
    unsigned outlen;
    if (!psasl_list_mechs(x->pc, &out, &outlen))
        bin_error(x, BST_AUTH_ERROR, NULL, 0);
    else
        bin_ok(x, out, outlen, 0);
    return CMD_DONE;
}

static enum cmd_result bin_sasl_auth(struct bin_ctx *x)
{
    uint64_t vlen = (uint64_t)x->h.bodylen - x->h.keylen;
    if (!proto_cfg.sasl) {
        bin_error(x, BST_UNKNOWN, NULL, vlen);
        return CMD_DONE;
    }
    if (x->h.keylen > SASL_MECH_MAX) {
        bin_error(x, BST_EINVAL, NULL, vlen);
        return CMD_DONE;
    }
    /* memcached reads the data into an item: one that cannot be had is ENOMEM. */
    if (!item_fits(x->h.keylen, 0, vlen)) {
        bin_error(x, BST_ENOMEM, NULL, vlen);
        return CMD_DONE;
    }
    enum st_result res;
    struct item *it = item_alloc(x->key, x->h.keylen, 0, 0, (uint32_t)vlen, &res);
    if (!it) {
        bin_error(x, BST_ENOMEM, NULL, vlen);
        return CMD_DONE;
    }
    bin_value_start(x, it, PROTO_STORE_BINARY_SASL, OP_SET, 0); /* never stored: no hash */
    return CMD_DONE;
}

/* The SASL data is in its scratch item (the mechanism is its key): run the exchange. */
static void bin_sasl_finish(struct bin_ctx *x, struct item *it)
{
    const char *out;
    unsigned outlen;
    switch (psasl_auth(x->pc, x->cmd == BIN_SASL_STEP, item_key(it), it->nkey, item_value(it),
                       it->nbytes, &out, &outlen)) {
    case PSASL_OK:
        STAT_INC(x->st->auth_cmds);
        bin_ok(x, "Authenticated", 13, 0);
        break;
    case PSASL_CONTINUE: bin_respond(x, BST_AUTH_CONTINUE, out, outlen, 0); break;
    default:
        STAT_INC(x->st->auth_cmds);
        STAT_INC(x->st->auth_errors);
        bin_error(x, BST_AUTH_ERROR, NULL, 0);
        break;
    }
    item_put(it);
}

/* The value pc->value was reading is complete: rebuild the command's context from pc->store
 * and finish it. */
static void bin_value_finish(struct proto_conn *pc, struct reply *r, struct proto_stats *st)
{
    const struct proto_store *ps = &pc->store;
    struct bin_ctx x = {.pc = pc, .r = r, .st = st, .cmd = ps->bin_cmd, .noreply = ps->noreply};
    x.h.opcode = ps->bin_opcode;
    x.h.opaque = ps->bin_opaque;
    x.h.cas = ps->cas;
    struct item *it = value_in_take(&pc->value);
    if (ps->kind == PROTO_STORE_BINARY_SASL)
        bin_sasl_finish(&x, it);
    else
        bin_store_finish(&x, it);
}

/* ---- dispatch ---- */

/* Quiet opcodes and the loud ones they behave as (memcached's dispatch_bin_command). */
static uint8_t loud_opcode(uint8_t op, bool *quiet)
{
    *quiet = true;
    switch (op) {
    case BIN_SETQ: return BIN_SET;
    case BIN_ADDQ: return BIN_ADD;
    case BIN_REPLACEQ: return BIN_REPLACE;
    case BIN_DELETEQ: return BIN_DELETE;
    case BIN_INCRQ: return BIN_INCR;
    case BIN_DECRQ: return BIN_DECR;
    case BIN_QUITQ: return BIN_QUIT;
    case BIN_FLUSHQ: return BIN_FLUSH;
    case BIN_APPENDQ: return BIN_APPEND;
    case BIN_PREPENDQ: return BIN_PREPEND;
    case BIN_GETQ: return BIN_GET;
    case BIN_GETKQ: return BIN_GETK;
    case BIN_GATQ: return BIN_GAT;
    case BIN_GATKQ: return BIN_GATK;
    default: *quiet = false; return op;
    }
}

/* Before authentication only these run (memcached's authenticated()). */
static bool allowed_unauthenticated(uint8_t op)
{
    return op == BIN_SASL_LIST || op == BIN_SASL_AUTH || op == BIN_SASL_STEP ||
           op == BIN_VERSION;
}

static enum cmd_result bin_dispatch(struct bin_ctx *x)
{
    const struct bin_hdr *h = &x->h;
    uint32_t ext = h->extlen, key = h->keylen, body = h->bodylen;
    if (key > body || key + ext > body) {
        bin_error(x, BST_UNKNOWN, NULL, 0);
        x->close = true;
        return CMD_DONE;
    }
    if (proto_cfg.sasl && !x->pc->authenticated && !allowed_unauthenticated(h->opcode)) {
        bin_error(x, BST_AUTH_ERROR, NULL, 0);
        x->close = true;
        return CMD_DONE;
    }
    x->cmd = loud_opcode(h->opcode, &x->noreply);
    if (key > KEY_MAX_LENGTH) {
        bin_protocol_error(x);
        return CMD_DONE;
    }
    bool ok;
    switch (x->cmd) {
    case BIN_VERSION:
        ok = ext == 0 && key == 0 && body == 0;
        if (ok)
            bin_ok(x, PROTO_VERSION, MSG_LEN(PROTO_VERSION), 0);
        break;
    case BIN_FLUSH:
        ok = key == 0 && body == ext && (ext == 0 || ext == 4);
        if (ok)
            return bin_flush(x);
        break;
    case BIN_NOOP:
        ok = ext == 0 && key == 0 && body == 0;
        if (ok)
            bin_ok(x, NULL, 0, 0);
        break;
    case BIN_SET:
    case BIN_ADD:
    case BIN_REPLACE:
        ok = ext == 8 && key != 0 && body >= key + 8;
        if (ok)
            return bin_store(x);
        break;
    case BIN_GET:
    case BIN_GETK:
        ok = ext == 0 && body == key && key > 0;
        if (ok)
            return bin_get(x);
        break;
    case BIN_DELETE:
        ok = key > 0 && ext == 0 && body == key;
        if (ok)
            return bin_delete(x);
        break;
    case BIN_INCR:
    case BIN_DECR:
        ok = key > 0 && ext == 20 && body == key + ext;
        if (ok)
            return bin_arith(x);
        break;
    case BIN_APPEND:
    case BIN_PREPEND:
        ok = key > 0 && ext == 0;
        if (ok)
            return bin_store(x);
        break;
    case BIN_STAT:
        ok = ext == 0;
        if (ok)
            return bin_stats(x);
        break;
    case BIN_QUIT:
        ok = key == 0 && ext == 0 && body == 0;
        if (ok) {
            bin_ok(x, NULL, 0, 0);
            x->close = true;
            x->pc->close_reason = PROTO_CLOSE_NORMAL;
        }
        break;
    case BIN_SASL_LIST:
        ok = ext == 0 && key == 0 && body == 0;
        if (ok)
            return bin_sasl_list(x);
        break;
    case BIN_SASL_AUTH:
    case BIN_SASL_STEP:
        ok = ext == 0 && key != 0;
        if (ok)
            return bin_sasl_auth(x);
        break;
    case BIN_TOUCH:
    case BIN_GAT:
    case BIN_GATK:
        ok = ext == 4 && key != 0;
        if (ok)
            return bin_get(x);
        break;
    default:
        /* memcached swallows bodylen more bytes, counted after extras and key. */
        bin_error(x, BST_UNKNOWN, NULL, body);
        return CMD_DONE;
    }
    if (!ok)
        bin_protocol_error(x);
    return CMD_DONE;
}

/*
 * ---- lookahead over pipelined gets ----
 *
 * A binary multi-get is a run of GETKQ (or GETQ / GETK / GET) requests ended by a NOOP. As
 * for the text protocol's pipelined gets (protocol/proto.c, "lookahead"), each lookup waits
 * for two cache misses in a row (its bucket, then its item); so when the buffer holds several
 * complete get requests in a row, their keys are hashed and their buckets and items
 * prefetched a few requests ahead of the one that runs. Each request still runs through
 * bin_dispatch (SASL, tracing, counters and replies unchanged); bin_get takes the hash.
 */
#define BIN_AHEAD_MAX 16
#define BIN_AHEAD_BUCKET_DIST 4 /* the distances of the text lookahead */
#define BIN_AHEAD_ITEM_DIST 2
#define BIN_GET_OPS                                                                              \
    ((1u << BIN_GET) | (1u << BIN_GETQ) | (1u << BIN_GETK) | (1u << BIN_GETKQ))

struct bin_ahead {
    unsigned n, i; /* g[i .. n) are still to run */
    struct {
        size_t off;
        uint64_t hv;
        uint32_t chain; /* storage_prefetch_item's cursor */
    } g[BIN_AHEAD_MAX];
};

/* A complete get request at p: no extras, a key of 1..KEY_MAX_LENGTH bytes, nothing else. */
static size_t bin_get_request(const unsigned char *p, size_t avail)
{
    if (avail < BIN_HEADER_LEN || p[0] != BIN_REQ_MAGIC || p[4] != 0 || p[1] >= 32 ||
        !((1u << p[1]) & BIN_GET_OPS))
        return 0;
    uint16_t klen = rd16(p + 2);
    if (klen == 0 || klen > KEY_MAX_LENGTH || rd32(p + 8) != klen ||
        avail - BIN_HEADER_LEN < klen)
        return 0;
    return BIN_HEADER_LEN + (size_t)klen;
}

static void bin_ahead_scan(struct bin_ahead *a, const char *buf, size_t pos, size_t len,
                           unsigned max)
{
    unsigned n = 0;
    size_t total;
    while (n < max && n < BIN_AHEAD_MAX &&
           (total = bin_get_request((const unsigned char *)buf + pos, len - pos)) != 0) {
        a->g[n].off = pos;
        a->g[n].hv = storage_hash(buf + pos + BIN_HEADER_LEN, total - BIN_HEADER_LEN);
        a->g[n].chain = 0;
        if (n < BIN_AHEAD_BUCKET_DIST)
            storage_prefetch_bucket(a->g[n].hv);
        pos += total;
        n++;
    }
    for (unsigned i = 1; i < n && i < BIN_AHEAD_ITEM_DIST; i++)
        a->g[i].chain = storage_prefetch_item(a->g[i].hv);
    a->n = n;
    a->i = 0;
}

/* The hash of the request at pos (the next framed one), after the hints for those after it. */
static uint64_t bin_ahead_next(struct bin_ahead *a)
{
    unsigned i = a->i++;
    if (i + BIN_AHEAD_BUCKET_DIST < a->n)
        storage_prefetch_bucket(a->g[i + BIN_AHEAD_BUCKET_DIST].hv);
    if (i + BIN_AHEAD_ITEM_DIST < a->n)
        a->g[i + BIN_AHEAD_ITEM_DIST].chain =
            storage_prefetch_item(a->g[i + BIN_AHEAD_ITEM_DIST].hv);
    if (i + 1 < a->n)
        storage_prefetch_chain(a->g[i + 1].chain);
    return a->g[i].hv;
}

enum proto_action proto_binary_process(struct proto_conn *pc, struct reply *r, const char *buf,
                                       size_t len, size_t *consumed, unsigned max_reqs,
                                       size_t max_output)
{
    struct bin_ahead ahead;
    ahead.n = ahead.i = 0;
    static _Thread_local struct proto_stats dummy_stats;
    struct proto_stats *st = pc->stats ? pc->stats : &dummy_stats;
    enum proto_action action = PROTO_CONTINUE;
    size_t pos = 0;
    unsigned nreq = 0;
    struct reply_mark start;
    reply_mark(r, &start);

    while (!pc->closing) {
        if (value_in_active(&pc->value)) {
            pos += value_in_feed(&pc->value, buf + pos, len - pos);
            if (!value_in_complete(&pc->value))
                break;
            bool sasl = pc->store.kind == PROTO_STORE_BINARY_SASL;
            bin_value_finish(pc, r, st);
            if (sasl)
                reply_mark(r, &start); /* memcached writes out its responses here */
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
        if (nreq >= max_reqs || r->pending > max_output) {
            action = PROTO_YIELD;
            break;
        }
        const unsigned char *p = (const unsigned char *)buf + pos;
        size_t avail = len - pos;
        if (avail < BIN_HEADER_LEN)
            break;
        if (p[0] != BIN_REQ_MAGIC) {
            /* memcached closes at once: responses of this batch, still unsent there, are
             * dropped with the connection. */
            reply_rollback(r, &start);
            pc->closing = true;
            break;
        }
        if (ahead.i == ahead.n && p[1] < 32 && ((1u << p[1]) & BIN_GET_OPS))
            bin_ahead_scan(&ahead, buf, pos, len, max_reqs - nreq);
        struct bin_ctx x = {.pc = pc, .r = r, .st = st};
        if (ahead.i < ahead.n) {
            if (ahead.g[ahead.i].off == pos) {
                x.hinted = true;
                x.hint_hv = bin_ahead_next(&ahead);
            } else {
                ahead.i = ahead.n = 0; /* not where the lookahead was (cannot happen) */
            }
        }
        x.h.opcode = p[1];
        x.h.keylen = rd16(p + 2);
        x.h.extlen = p[4];
        x.h.bodylen = rd32(p + 8);
        memcpy(&x.h.opaque, p + 12, 4);
        x.h.cas = rd64(p + 16);
        size_t head = BIN_HEADER_LEN + (size_t)x.h.extlen + x.h.keylen;
        /* Extras and key must be buffered; a key longer than KEY_MAX_LENGTH is refused from
         * the header alone (and the connection closed), so they never exceed
         * BIN_HEADER_LEN + 255 + KEY_MAX_LENGTH bytes (< PROTO_UNCONSUMED_MAX). */
        bool refuse_now = x.h.keylen > KEY_MAX_LENGTH;
        if (avail < head && !refuse_now)
            break;
        x.ext = p + BIN_HEADER_LEN;
        x.key = (const char *)x.ext + x.h.extlen;
        x.rest = avail >= head ? (const char *)p + head : NULL;
        x.avail = avail >= head ? avail - head : 0;
        if (PROTO_TRACING())
            proto_trace_bin_header(pc->trace_id, false, p);
        bin_dispatch(&x);
        if (refuse_now && !x.close) {
            x.close = true; /* cannot happen: dispatch closes on such a key */
            pc->closing = true;
        }
        pos += avail >= head ? head + x.used : avail;
        nreq++;
        if (x.cmd == BIN_NOOP || x.cmd == BIN_SASL_AUTH || x.cmd == BIN_SASL_STEP)
            reply_mark(r, &start); /* memcached writes out its responses here (SASL: again
                                      once its data is in, above) */
        if (x.close) {
            pc->closing = true;
            break;
        }
    }
    if (pc->closing)
        action = PROTO_CLOSE;
    *consumed = pos;
    return action;
}
