/*
 * watch: memcached 1.6.18's `watch [class ...]` command and the log lines its watchers read
 * (fetchers: item_get, mutations: item_store). The protocol only composes a line's body
 * ("type=item_get key=foo ..."); the server owns the watchers, their bounded buffers and the
 * "ts=... gid=..." prefix (proto_hooks.watch_emit). Nothing here runs unless a watcher of the
 * class exists: the commands test proto_watch_mask with one relaxed load first.
 */
#include "protocol/internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "protocol/messages.h"
#include "storage/clock.h"
#include "storage/item.h"
#include "storage/meta_ops.h"
#include "storage/storage.h"

_Atomic unsigned proto_watch_mask;

static void watch_evicted(const struct item *it, unsigned cls, bool fetched, rel_time_t now);
static void watch_slab_moved(unsigned src, unsigned dst);

void proto_watch_set_mask(unsigned mask)
{
    atomic_store_explicit(&proto_watch_mask, mask, memory_order_relaxed);
    /* storage calls these only while someone watches their class */
    storage_observe((mask & WATCH_EVICTIONS) ? watch_evicted : NULL,
                    (mask & WATCH_SYSEVENTS) ? watch_slab_moved : NULL);
}

/* memcached 1.6.18's class names (an abbreviation such as "fetch" is an ERROR there too).
 * Classes with no bit here are refused with memcached's answer to an unknown class (ERROR):
 * memcached 1.6.18 accepts them but, in Debian's build, never writes a line to them —
 * rawcmds has no producer left in 1.6.18, the proxy* classes need its proxy, which is not
 * built in (and cached has none) — so accepting them would promise lines that never come. */
static const struct {
    const char *name;
    unsigned bit;
} watch_names[] = {
    {"evictions", WATCH_EVICTIONS}, {"fetchers", WATCH_FETCHERS},
    {"mutations", WATCH_MUTATIONS}, {"sysevents", WATCH_SYSEVENTS},
    {"connevents", WATCH_CONNEVENTS},
};

enum cmd_result proto_cmd_watch(struct proto_ctx *x, int arg)
{
    (void)arg;
    struct request *q = x->q;
    proto_noreply_maybe(q); /* as memcached: it silences the answers below, and is then
                               read as a class name like any other token (so ERROR) */
    if (proto_cfg.watch_disabled) { /* -W */
        OUT(x, MSG_WATCH_DISABLED);
        return CMD_DONE;
    }
    /* answers memcached has not written yet (since the last get, mn or read: x->unsent) */
    if (x->r->pending > x->unsent.pending) {
        OUT(x, MSG_WATCH_PIPELINED);
        return CMD_DONE;
    }
    unsigned mask = 0;
    if (q->ntok == 1 && !q->rest)
        mask = WATCH_FETCHERS;
    const char *cursor = q->rest;
    unsigned i = 1;
    struct token t;
    for (;;) {
        if (i < q->ntok)
            t = q->tok[i++];
        else if (!cursor || !proto_next_token(&cursor, q->end, &t))
            break;
        unsigned bit = 0;
        for (size_t n = 0; n < sizeof watch_names / sizeof watch_names[0]; n++) {
            if (strlen(watch_names[n].name) == t.len &&
                memcmp(t.p, watch_names[n].name, t.len) == 0) {
                bit = watch_names[n].bit;
                break;
            }
        }
        if (bit == 0) {
            OUT(x, MSG_ERROR);
            return CMD_DONE;
        }
        mask |= bit;
    }
    if (proto_hooks_active->watch_attach == NULL) {
        OUT(x, MSG_ERROR); /* no server to stream to (unit tests) */
        return CMD_DONE;
    }
    switch (proto_hooks_active->watch_attach(x->pc, mask)) {
    case 0:
        /* Lines follow from the server; input after this line is ignored from now on. */
        reply_add(x->r, MSG_OK, MSG_LEN(MSG_OK));
        x->pc->watch = (uint16_t)mask;
        break;
    case 1: OUT(x, MSG_WATCHER_TOO_MANY); break;
    default: OUT(x, MSG_WATCHER_FAILED); break;
    }
    return CMD_DONE;
}

/* memcached's uriencode: unreserved characters as they are, anything else %XX. */
static size_t watch_key(char *dst, const char *key, size_t nkey)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < nkey; i++) {
        unsigned char c = (unsigned char)key[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '%';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
    return o;
}

#define WATCH_LINE_MAX (KEY_MAX_LENGTH * 3 + 200)

static void watch_emit_line(unsigned cls, const char *line, int n)
{
    if (n > 0 && (size_t)n < WATCH_LINE_MAX)
        proto_hooks_active->watch_emit(cls, line, (size_t)n);
}

void proto_watch_get(int cfd, const char *key, size_t nkey, const struct item *it)
{
    char k[KEY_MAX_LENGTH * 3 + 1], line[WATCH_LINE_MAX];
    if (nkey > KEY_MAX_LENGTH)
        return;
    watch_key(k, key, nkey);
    /* memcached's do_item_get: an expired or flushed item it finds (and reaps) is logged as
     * such; one its LRU maintainer reaped first is simply not_found */
    enum storage_miss miss = it ? STORAGE_MISS_ABSENT : storage_last_miss();
    const char *status = it                              ? "found"
                         : miss == STORAGE_MISS_FLUSHED ? "flushed"
                         : miss == STORAGE_MISS_EXPIRED ? "expired"
                                                        : "not_found";
    int n = snprintf(line, sizeof line,
                     "type=item_get key=%s status=%s clsid=%u cfd=%d size=%u", k,
                     status, it ? storage_item_class(it) : 0u, cfd,
                     it ? (unsigned)it->nbytes : 0u);
    watch_emit_line(WATCH_FETCHERS, line, n);
}

void proto_watch_peek(int cfd, const char *key, size_t nkey)
{
    struct meta_peek pk;
    struct item *it = nkey <= KEY_MAX_LENGTH ? storage_meta_peek(key, nkey, &pk) : NULL;
    proto_watch_get(cfd, key, nkey, it);
    if (it)
        item_put(it);
}

static const char *const watch_cmds[] = {"set", "add", "replace", "append", "prepend", "cas"};

static const char *watch_status(int res)
{
    switch ((enum st_result)res) {
    case ST_OK: return "stored";
    case ST_EXISTS: return "exists";
    case ST_NOT_FOUND: return "not_found";
    case ST_TOO_LARGE: return "too_large";
    case ST_NO_MEMORY: return "no_memory";
    default: return "not_stored";
    }
}

void proto_watch_store(int cfd, const struct item *it, int op, int res)
{
    char k[KEY_MAX_LENGTH * 3 + 1], line[WATCH_LINE_MAX];
    watch_key(k, item_key(it), it->nkey);
    unsigned size = (unsigned)it->nbytes;
    if (res == ST_OK && (op == OP_APPEND || op == OP_PREPEND)) {
        /* memcached logs the size of the joined item */
        struct meta_peek pk;
        struct item *now = storage_meta_peek(item_key(it), it->nkey, &pk);
        if (now) {
            size = (unsigned)now->nbytes;
            item_put(now);
        }
    }
    /* memcached prints exptime - now as unsigned (%u), 0 for no expiry */
    unsigned ttl = it->exptime ? (unsigned)(it->exptime - clock_now()) : 0u;
    int n = snprintf(line, sizeof line,
                     "type=item_store key=%s status=%s cmd=%s ttl=%u clsid=%u cfd=%d size=%u", k,
                     watch_status(res), (unsigned)op < 6 ? watch_cmds[op] : "na", ttl,
                     storage_item_class(it), cfd, size);
    watch_emit_line(WATCH_MUTATIONS, line, n);
}

void proto_watch_refused(int cfd, const char *key, size_t nkey, int op, int res)
{
    char k[KEY_MAX_LENGTH * 3 + 1], line[WATCH_LINE_MAX];
    if (nkey > KEY_MAX_LENGTH)
        return;
    watch_key(k, key, nkey);
    /* memcached 1.6.18 passes this entry one argument short (nbytes 0, ttl 0, then its fd
     * where the class id goes): its line reads clsid=<fd>, and whatever cfd the missing
     * argument yields (0 as observed). The same line is written here, so parsers built
     * against memcached read the same thing. */
    int n = snprintf(line, sizeof line,
                     "type=item_store key=%s status=%s cmd=%s ttl=0 clsid=%d cfd=0 size=0", k,
                     watch_status(res), (unsigned)op < 6 ? watch_cmds[op] : "na", cfd);
    watch_emit_line(WATCH_MUTATIONS, line, n);
}

void proto_watch_vivified(int cfd, const char *key, size_t nkey)
{
    /* memcached stores the new item as an add: its own lookup (a miss), then the store */
    if (WATCHING(WATCH_FETCHERS))
        proto_watch_get(cfd, key, nkey, NULL);
    if (!WATCHING(WATCH_MUTATIONS) || nkey > KEY_MAX_LENGTH)
        return;
    struct meta_peek pk;
    struct item *it = storage_meta_peek(key, nkey, &pk);
    if (it) {
        proto_watch_store(cfd, it, OP_ADD, ST_OK);
        item_put(it);
    }
}

/* Storage's eviction observer (under a shard and a class lock: format, hand over, return). */
static void watch_evicted(const struct item *it, unsigned cls, bool fetched, rel_time_t now)
{
    char k[KEY_MAX_LENGTH * 3 + 1], line[WATCH_LINE_MAX];
    watch_key(k, item_key(it), it->nkey);
    /* memcached: ttl is exptime - now (%lld), -1 for no expiry; la the seconds since the
     * last access (%d) */
    long long ttl = it->exptime ? (long long)it->exptime - (long long)now : -1LL;
    int la = now > it->atime ? (int)(now - it->atime) : 0;
    int n = snprintf(line, sizeof line,
                     "type=eviction key=%s fetch=%s ttl=%lld la=%d clsid=%u size=%u", k,
                     fetched ? "yes" : "no", ttl, la, cls, (unsigned)it->nbytes);
    watch_emit_line(WATCH_EVICTIONS, line, n);
}

/* Storage's automove observer: memcached's "type=slab_move src=%d dst=%d". */
static void watch_slab_moved(unsigned src, unsigned dst)
{
    char line[64];
    int n = snprintf(line, sizeof line, "type=slab_move src=%u dst=%u", src, dst);
    watch_emit_line(WATCH_SYSEVENTS, line, n);
}
