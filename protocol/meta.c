/*
 * meta: memcached's meta commands mg ms md ma mn me. Each handler parses its flags
 * (protocol/meta_flags.c), runs one storage/meta_ops.h operation under the key's shard lock, and
 * composes the status line with the return flags in the order the client gave them.
 *
 * What q hides differs per command and follows memcached 1.6.18: mg hides EN; ms and md hide
 * HD; ma hides HD/VA of an existing counter (not of one N just created). Errors are never
 * hidden. Only `me` counts in cmd_meta; the others count as gets/sets/deletes/incr/decr.
 */
#include "protocol/meta.h"

#include <stdio.h>
#include <string.h>

#include "storage/meta_ops.h"

/* Longest status line: "VA " + size, then up to 17 flags, of which one k with a key
 * (base64 of 250 bytes is 336 + " b"), and O tokens of 32 bytes; numbers of 20 digits. */
#define META_LINE_MAX 2048

struct line {
    char buf[META_LINE_MAX];
    char *p;
};

static void line_start(struct line *l, const char *status)
{
    size_t n = strlen(status);
    memcpy(l->buf, status, n);
    l->p = l->buf + n;
}

static void line_flag_u64(struct line *l, char flag, uint64_t v)
{
    *l->p++ = ' ';
    *l->p++ = flag;
    l->p = proto_u64toa(v, l->p);
}

static void line_token(struct line *l, const struct token *t)
{
    *l->p++ = ' ';
    memcpy(l->p, t->p, t->len);
    l->p += t->len;
}

/* " k<key>", base64-encoded with " b" after it when the key was given that way. */
static void line_key(struct line *l, const char *key, size_t nkey, bool binary)
{
    *l->p++ = ' ';
    *l->p++ = 'k';
    if (binary) {
        l->p += meta_base64_encode((const unsigned char *)key, nkey, l->p);
        *l->p++ = ' ';
        *l->p++ = 'b';
    } else {
        memcpy(l->p, key, nkey);
        l->p += nkey;
    }
}

static void line_end(struct line *l, struct proto_ctx *x, bool hide)
{
    *l->p++ = '\r';
    *l->p++ = '\n';
    if (!hide)
        reply_add(x->r, l->buf, (size_t)(l->p - l->buf));
}

static enum cmd_result meta_error(struct proto_ctx *x, const char *msg)
{
    reply_add_str(x->r, msg);
    return CMD_DONE;
}

static bool opaque_too_long(const struct token *t)
{
    return t->p[0] == 'O' && t->len > META_OPAQUE_MAX;
}

/* O and k flags for replies that carry no item (EN, NF, EX, NS of md/ma). False: an O token
 * is too long (memcached answers the error instead). */
static bool line_opaque_key(struct line *l, const struct request *q, const struct meta_flags *f)
{
    for (unsigned i = 2; i < q->ntok; i++) {
        const struct token *t = &q->tok[i];
        if (t->p[0] == 'O') {
            if (opaque_too_long(t))
                return false;
            line_token(l, t);
        } else if (t->p[0] == 'k') {
            line_key(l, f->key, f->nkey, f->key_binary);
        }
    }
    return true;
}

/* The checks every meta command with a key makes first. Returns an error reply or NULL. */
static const char *meta_prologue(const struct proto_ctx *x)
{
    const struct request *q = x->q;
    if (q->ntok < 2)
        return MSG_ERROR; /* memcached's token count check */
    if (q->tok[1].len > KEY_MAX_LENGTH)
        return MSG_BAD_FORMAT;
    return NULL;
}

/* The start md, ma and mg share: meta_prologue, the token count (too_many answers it), then
 * the flags from token 2 into *f, delta preset to 1 (ma's default; the others ignore it). A
 * flag error is answered as bad_flag, or with the parser's own message when that is NULL.
 * Returns an error reply or NULL. */
static const char *meta_begin(const struct proto_ctx *x, struct meta_flags *f,
                              const char *too_many, const char *bad_flag)
{
    const char *err = meta_prologue(x);
    if (err)
        return err;
    if (x->q->ntok > META_MAX_TOKENS)
        return too_many;
    memset(f, 0, sizeof(*f));
    f->delta = 1;
    if ((err = meta_flags_parse(x->q, 2, f)))
        return bad_flag ? bad_flag : err;
    return NULL;
}

/* ---- mn ---- */

enum cmd_result proto_meta_mn(struct proto_ctx *x, int arg)
{
    (void)arg;
    reply_add(x->r, MSG_META_MN, MSG_LEN(MSG_META_MN));
    reply_mark(x->r, &x->unsent); /* memcached's mn writes everything out at once */
    return CMD_DONE;
}

/* ---- me ---- */

enum cmd_result proto_meta_me(struct proto_ctx *x, int arg)
{
    (void)arg;
    const struct request *q = x->q;
    if (q->ntok < 2 || q->tok[1].len > KEY_MAX_LENGTH)
        return meta_error(x, MSG_BAD_FORMAT);
    const char *key = q->tok[1].p;
    size_t nkey = q->tok[1].len;
    char keybuf[KEY_MAX_LENGTH];
    if (q->ntok >= 3 && TOK_IS(&q->tok[2], "b")) {
        nkey = meta_base64_decode(key, nkey, keybuf, sizeof(keybuf));
        if (nkey == 0)
            return meta_error(x, MSG_BAD_FORMAT);
        key = keybuf;
    }
    STAT_INC(x->st->cmd_meta);
    struct meta_peek pk;
    struct item *it = storage_meta_peek(key, nkey, &pk);
    WATCH_GET(x, key, nkey, it); /* memcached's me looks the key up with item_get */
    if (!it) {
        reply_add(x->r, "EN\r\n", 4);
        return CMD_DONE;
    }
    rel_time_t now = clock_now();
    struct line l;
    line_start(&l, "ME ");
    if (pk.iflags & ITEM_KEY_BINARY) {
        l.p += meta_base64_encode((const unsigned char *)item_key(it), it->nkey, l.p);
    } else {
        memcpy(l.p, item_key(it), it->nkey);
        l.p += it->nkey;
    }
    /* memcached prints exp as now - exptime (negative while the item lives), its slab class
     * and its own size of the item (storage_item_mc_size), as here. */
    int exp = pk.exptime == 0 ? -1 : (int)(now - pk.exptime);
    l.p += snprintf(l.p, 128, " exp=%d la=%llu cas=%llu fetch=%s cls=%u size=%zu", exp,
                    (unsigned long long)(now - pk.atime), (unsigned long long)pk.cas,
                    (pk.iflags & ITEM_FETCHED) ? "yes" : "no", pk.cls, storage_item_mc_size(it));
    item_put(it);
    line_end(&l, x, false);
    return CMD_DONE;
}

/* ---- mg ---- */

/* Appends "VA <n> flags\r\n<value>\r\n" or "HD flags\r\n" for a hit; consumes the ref. */
static void add_hit(struct proto_ctx *x, struct line *l, struct item *it, bool value)
{
    *l->p++ = '\r';
    *l->p++ = '\n';
    reply_add(x->r, l->buf, (size_t)(l->p - l->buf));
    if (!value) {
        item_put(it);
        return;
    }
    if (it->nbytes < PROTO_INLINE_VALUE_MAX) {
        reply_add(x->r, item_value(it), it->nbytes);
        item_put(it);
    } else {
        reply_add_item_data(x->r, it, item_value(it), it->nbytes);
    }
    reply_add(x->r, MSG_CRLF, 2);
}

enum cmd_result proto_meta_mg(struct proto_ctx *x, int arg)
{
    (void)arg;
    const struct request *q = x->q;
    struct meta_flags f;
    const char *err = meta_begin(x, &f, MSG_META_MG_TOO_MANY, NULL);
    if (err)
        return meta_error(x, err);

    /* memcached walks the flags in order and stops at an over-long O token with an error;
     * T/N/R before it have taken effect by then. */
    unsigned cutoff = q->ntok;
    for (unsigned i = 2; i < q->ntok; i++)
        if (opaque_too_long(&q->tok[i])) {
            cutoff = i;
            break;
        }
    struct meta_get_args a = {.no_update = f.no_update, .locked = f.locked,
                              .vivify = f.vivify, .vivify_exptime = f.autoviv_exptime,
                              .ttl = f.exptime, .recache_time = f.recache_time,
                              .aborted = cutoff < q->ntok};
    for (unsigned i = 2; i < cutoff && a.nsteps < 3; i++) { /* flags are never repeated */
        char c = q->tok[i].p[0];
        if (c == 'N')
            a.steps[a.nsteps++] = META_STEP_VIVIFY_TTL;
        else if (c == 'T')
            a.steps[a.nsteps++] = META_STEP_TTL;
        else if (c == 'R')
            a.steps[a.nsteps++] = META_STEP_RECACHE;
    }
    struct meta_get_result g;
    /* the pipelined-get lookahead (protocol/proto.c) may have hashed this very key already */
    uint64_t hv = x->hint_key != NULL && x->hint_key == f.key && x->hint_nkey == f.nkey
                      ? x->hint_hv
                      : storage_key_hash(f.key, f.nkey);
    enum st_result res = storage_meta_get_hv(f.key, f.nkey, hv, &a, &g);
    WATCH_GET(x, f.key, f.nkey, res == ST_OK && !g.created ? g.it : NULL);
    if (res == ST_REF_SATURATED)
        return meta_error(x, MSG_META_REFCOUNT);
    if (res != ST_OK) {
        STAT_INC(x->st->cmd_get);
        STAT_INC(x->st->get_misses);
        struct line l;
        line_start(&l, "EN");
        if (!line_opaque_key(&l, q, &f))
            return meta_error(x, MSG_META_OPAQUE_LONG);
        line_end(&l, x, f.no_reply);
        return CMD_DONE;
    }
    struct item *it = g.it;
    if (a.aborted) {
        item_put(it);
        return meta_error(x, MSG_META_OPAQUE_LONG);
    }
    if (f.new_ttl) {
        STAT_INC(x->st->cmd_touch);
        STAT_INC(x->st->touch_hits), STAT_INC(CLS_OF(x, it)->touch_hits);
    } else {
        STAT_INC(x->st->cmd_get);
        STAT_INC(x->st->get_hits), STAT_INC(CLS_OF(x, it)->get_hits);
    }
    rel_time_t now = clock_now();
    rel_time_t exptime = g.exptime; /* as the flags before the current one left it */
    struct line l;
    if (f.value) {
        line_start(&l, "VA ");
        l.p = proto_u64toa(it->nbytes, l.p);
    } else {
        line_start(&l, "HD");
    }
    for (unsigned i = 2; i < q->ntok; i++) {
        const struct token *t = &q->tok[i];
        switch (t->p[0]) {
        case 'T': exptime = f.exptime; break;
        case 'N':
            if (g.created)
                exptime = f.autoviv_exptime;
            break;
        case 's': line_flag_u64(&l, 's', it->nbytes); break;
        case 't':
            if (exptime == 0) {
                memcpy(l.p, " t-1", 4);
                l.p += 4;
            } else {
                line_flag_u64(&l, 't', (uint32_t)(exptime - now)); /* u32 as memcached */
            }
            break;
        case 'c': line_flag_u64(&l, 'c', g.cas); break;
        case 'f': line_flag_u64(&l, 'f', it->flags); break;
        case 'l': line_flag_u64(&l, 'l', (uint32_t)(now - g.atime)); break;
        case 'h': line_flag_u64(&l, 'h', g.fetched ? 1 : 0); break;
        case 'O': line_token(&l, t); break;
        case 'k':
            line_key(&l, item_key(it), it->nkey, item_iflags(it) & ITEM_KEY_BINARY);
            break;
        default: break;
        }
    }
    /* Z before X before W, so a client never sees W together with Z. */
    if (g.token_sent) {
        memcpy(l.p, " Z", 2);
        l.p += 2;
    }
    if (g.stale) {
        memcpy(l.p, " X", 2);
        l.p += 2;
    }
    if (g.won) {
        memcpy(l.p, " W", 2);
        l.p += 2;
    }
    add_hit(x, &l, it, f.value);
    return CMD_DONE;
}

/* ---- ms ---- */

/* An ms that fails before its value is read: answer, then skip the value as it arrives. */
static enum cmd_result ms_refuse(struct proto_ctx *x, const char *msg, size_t total)
{
    reply_add_str(x->r, msg);
    proto_skip_value(x, total);
    return CMD_DONE;
}

enum cmd_result proto_meta_ms(struct proto_ctx *x, int arg)
{
    (void)arg;
    const struct request *q = x->q;
    const char *err = meta_prologue(x);
    if (err)
        return meta_error(x, err);
    if (q->ntok == 2)
        return meta_error(x, MSG_BAD_FORMAT);
    if (q->ntok > META_MAX_TOKENS)
        return meta_error(x, MSG_META_TOO_MANY);
    int32_t vlen;
    if (!tok_strtol(&q->tok[2], &vlen) || vlen < 0 || vlen > INT32_MAX - 2)
        return meta_error(x, MSG_BAD_FORMAT); /* the value is not skipped */
    size_t total = (size_t)vlen + 2;
    struct meta_flags f;
    memset(&f, 0, sizeof(f));
    if ((err = meta_flags_parse(q, 3, &f)))
        return ms_refuse(x, err, total);
    bool opaque_error = false;
    for (unsigned i = 3; i < q->ntok; i++)
        if (opaque_too_long(&q->tok[i]))
            opaque_error = true;
    enum store_op op;
    switch (f.mode) {
    case 0:
    case 'S': op = OP_SET; break;
    case 'E': op = OP_ADD; break;
    case 'A': op = OP_APPEND; break;
    case 'P': op = OP_PREPEND; break;
    case 'R': op = OP_REPLACE; break;
    default: return ms_refuse(x, MSG_META_MS_MODE, total);
    }
    if (f.has_cas && (op == OP_SET || op == OP_REPLACE))
        op = OP_CAS; /* replace + CAS works the same as CAS */
    if (opaque_error)
        return ms_refuse(x, MSG_META_OPAQUE_LONG, total);

    /* Too large: answered without waiting for the value; like memcached, the old value
     * goes too (whatever the mode) so a failed write never leaves stale data behind. */
    enum st_result res = ST_TOO_LARGE;
    struct item *it = NULL;
    uint64_t hv = 0; /* for the allocation and the store: the key is hashed once */
    if ((uint64_t)vlen <= proto_cfg.item_size_max) {
        hv = storage_key_hash(f.key, f.nkey);
        it = item_alloc_hv(f.key, f.nkey, hv, f.client_flags, f.exptime, (uint32_t)vlen, &res);
    }
    if (!it) {
        if (res == ST_TOO_LARGE)
            STAT_INC(x->st->store_too_large);
        else
            STAT_INC(x->st->store_no_memory);
        WATCH_REFUSED(x, f.key, f.nkey, op, res);
        WATCH_PEEK(x, f.key, f.nkey);
        storage_delete(f.key, f.nkey, 0);
        return ms_refuse(x, res == ST_TOO_LARGE ? MSG_TOO_LARGE : MSG_NO_MEMORY_STORE, total);
    }
    STAT_INC(x->st->cmd_set), STAT_INC(CLS_OF(x, it)->cmd_set);
    /* What the reply needs once the value is in: the line is gone by then. */
    struct proto_store *st = &x->pc->store;
    *st = (struct proto_store){.kind = PROTO_STORE_META, .op = (uint8_t)op, .noreply = f.no_reply,
                               .has_cas = f.has_cas, .set_stale = f.set_stale && op == OP_CAS,
                               .key_binary = f.key_binary, .cas = f.req_cas, .hv = hv};
    size_t nret = 0;
    for (unsigned i = 3; i < q->ntok; i++) {
        const struct token *t = &q->tok[i];
        char c = t->p[0];
        if (c != 'O' && c != 'k' && c != 'c')
            continue;
        if (nret < sizeof(st->ret) - 1) /* flags are never repeated: at most 3 */
            st->ret[nret++] = c;
        if (c == 'O') {
            st->opaque_len = (uint8_t)t->len; /* <= META_OPAQUE_MAX, checked above */
            memcpy(st->opaque, t->p, t->len);
        }
    }
    proto_value_start(x, it);
    return CMD_DONE;
}

void proto_meta_ms_finish(struct proto_ctx *x, struct item *it, bool trailer_ok)
{
    const struct proto_store *st = &x->pc->store;
    enum store_op op = (enum store_op)st->op;
    if (!trailer_ok) {
        item_put(it);
        meta_error(x, MSG_BAD_DATA_CHUNK);
        return;
    }
    uint64_t cas = 0;
    WATCH_PEEK(x, item_key(it), it->nkey);
    enum st_result res = storage_meta_store_hv(it, st->hv, op, st->has_cas, st->cas,
                                               st->set_stale, st->key_binary, &cas);
    WATCH_STORE(x, it, op, res);
    proto_count_cas(x, op, res, it);
    const char *status;
    switch (res) {
    case ST_OK: status = "HD"; break;
    case ST_EXISTS: status = "EX"; break;
    case ST_NOT_FOUND: status = "NF"; break;
    case ST_NOT_STORED: status = "NS"; break;
    case ST_NO_MEMORY:
        STAT_INC(x->st->store_no_memory);
        item_put(it);
        meta_error(x, MSG_NO_MEMORY_STORE);
        return;
    default:
        item_put(it);
        meta_error(x, "SERVER_ERROR Unhandled storage type.\r\n");
        return;
    }
    struct line l;
    line_start(&l, status);
    for (const char *c = st->ret; *c; c++) {
        if (*c == 'O') {
            const struct token t = {st->opaque, st->opaque_len};
            line_token(&l, &t);
        } else if (*c == 'k') {
            line_key(&l, item_key(it), it->nkey, st->key_binary);
        } else {
            line_flag_u64(&l, 'c', cas);
        }
    }
    item_put(it);
    line_end(&l, x, res == ST_OK && st->noreply);
}

/* ---- md ---- */

enum cmd_result proto_meta_md(struct proto_ctx *x, int arg)
{
    (void)arg;
    const struct request *q = x->q;
    struct meta_flags f;
    const char *err = meta_begin(x, &f, MSG_META_TOO_MANY, MSG_META_INVALID_OR_DUP);
    if (err)
        return meta_error(x, err);
    struct line l;
    line_start(&l, "HD"); /* status rewritten below; same length */
    if (!line_opaque_key(&l, q, &f))
        return meta_error(x, MSG_META_OPAQUE_LONG);
    WATCH_PEEK(x, f.key, f.nkey);
    enum st_result res = storage_meta_delete(f.key, f.nkey, f.has_cas, f.req_cas, f.set_stale,
                                             f.new_ttl, f.exptime);
    switch (res) {
    case ST_OK:
        if (!f.set_stale)
            STAT_INC(x->st->delete_hits), STAT_INC(CLS_LAST(x)->delete_hits);
        break;
    case ST_EXISTS:
        STAT_INC(x->st->delete_misses);
        memcpy(l.buf, "EX", 2);
        break;
    default:
        STAT_INC(x->st->delete_misses);
        memcpy(l.buf, "NF", 2);
        break;
    }
    line_end(&l, x, res == ST_OK && f.no_reply);
    return CMD_DONE;
}

/* ---- ma ---- */

enum cmd_result proto_meta_ma(struct proto_ctx *x, int arg)
{
    (void)arg;
    const struct request *q = x->q;
    struct meta_flags f;
    const char *err = meta_begin(x, &f, MSG_META_TOO_MANY, MSG_META_INVALID_OR_DUP);
    if (err)
        return meta_error(x, err);
    bool incr;
    switch (f.mode) {
    case 0: case 'I': case '+': incr = true; break;
    case 'D': case '-': incr = false; break;
    default: return meta_error(x, MSG_META_MA_MODE);
    }
    struct meta_arith_args a = {.incr = incr, .delta = f.delta, .cas = f.req_cas,
                                .vivify = f.vivify, .initial = f.initial,
                                .vivify_exptime = f.autoviv_exptime, .set_ttl = f.new_ttl,
                                .ttl = f.exptime, .key_binary = f.key_binary};
    /* memcached applies T and N to the item in its reply loop, in the order given (on a
     * created item the later one wins), and stops that loop at a too-long opaque: T or N
     * after it do nothing (a created item keeps no expiry) */
    bool t_seen = false, n_seen = false;
    for (unsigned i = 2; i < q->ntok; i++) {
        char c = q->tok[i].p[0];
        if (c == 'O' && opaque_too_long(&q->tok[i]))
            break;
        if (c == 'T')
            t_seen = true, a.vivify_last = false;
        else if (c == 'N')
            n_seen = true, a.vivify_last = true;
    }
    a.set_ttl = a.set_ttl && t_seen;
    if (!n_seen)
        a.vivify_exptime = 0;
    struct meta_arith_result m;
    WATCH_PEEK(x, f.key, f.nkey);
    enum st_result res = storage_meta_arith(f.key, f.nkey, &a, &m);
    if (res == ST_OK && m.created && WATCHING(WATCH_FETCHERS | WATCH_MUTATIONS))
        proto_watch_vivified(x->pc->trace_id, f.key, f.nkey);
    struct line l;
    switch (res) {
    case ST_OK:
        if (!m.created) {
            if (incr)
                STAT_INC(x->st->incr_hits), STAT_INC(CLS_LAST(x)->incr_hits);
            else
                STAT_INC(x->st->decr_hits), STAT_INC(CLS_LAST(x)->decr_hits);
        }
        break;
    case ST_NON_NUMERIC: return meta_error(x, MSG_NON_NUMERIC);
    case ST_NO_MEMORY: return meta_error(x, MSG_NO_MEMORY);
    case ST_NOT_STORED: return meta_error(x, MSG_META_VIVIFY_NOMEM);
    case ST_NOT_FOUND:
    case ST_EXISTS:
    default:
        if (res == ST_NOT_FOUND) {
            if (incr)
                STAT_INC(x->st->incr_misses);
            else
                STAT_INC(x->st->decr_misses);
        }
        line_start(&l, res == ST_NOT_FOUND ? "NF" : "EX");
        if (!line_opaque_key(&l, q, &f))
            return meta_error(x, MSG_META_OPAQUE_LONG);
        line_end(&l, x, false);
        return CMD_DONE;
    }
    char num[24];
    size_t nlen = (size_t)(proto_u64toa(m.value, num) - num);
    if (f.value) {
        line_start(&l, "VA ");
        l.p = proto_u64toa(nlen, l.p);
    } else {
        line_start(&l, "HD");
    }
    rel_time_t exptime = m.exptime, now = clock_now();
    for (unsigned i = 2; i < q->ntok; i++) {
        const struct token *t = &q->tok[i];
        switch (t->p[0]) {
        case 'c': line_flag_u64(&l, 'c', m.cas); break;
        case 't':
            if (exptime == 0) {
                memcpy(l.p, " t-1", 4);
                l.p += 4;
            } else {
                line_flag_u64(&l, 't', (uint32_t)(exptime - now));
            }
            break;
        case 'T': exptime = f.exptime; break;
        case 'N':
            if (m.created)
                exptime = f.autoviv_exptime;
            break;
        case 'O':
            if (opaque_too_long(t))
                return meta_error(x, MSG_META_OPAQUE_LONG); /* after the update, as memcached */
            line_token(&l, t);
            break;
        case 'k': line_key(&l, f.key, f.nkey, f.key_binary); break;
        default: break;
        }
    }
    *l.p++ = '\r';
    *l.p++ = '\n';
    if (f.value) {
        memcpy(l.p, num, nlen);
        l.p += nlen;
        *l.p++ = '\r';
        *l.p++ = '\n';
    }
    if (!(f.no_reply && !m.created))
        reply_add(x->r, l.buf, (size_t)(l.p - l.buf));
    return CMD_DONE;
}

_Static_assert(sizeof(((struct proto_store *)0)->opaque) >= META_OPAQUE_MAX,
               "proto_store keeps a whole O token");
