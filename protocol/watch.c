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

void proto_watch_set_mask(unsigned mask)
{
    atomic_store_explicit(&proto_watch_mask, mask, memory_order_relaxed);
}

/* memcached 1.6.18's class names (an abbreviation such as "fetch" is an ERROR there too). */
static const struct {
    const char *name;
    unsigned bit;
} watch_names[] = {
    {"rawcmds", WATCH_RAWCMDS},       {"evictions", WATCH_EVICTIONS},
    {"fetchers", WATCH_FETCHERS},     {"mutations", WATCH_MUTATIONS},
    {"sysevents", WATCH_SYSEVENTS},   {"connevents", WATCH_CONNEVENTS},
    {"proxyreqs", WATCH_PROXYREQS},   {"proxyevents", WATCH_PROXYEVENTS},
    {"proxyuser", WATCH_PROXYUSER},
};

enum cmd_result proto_cmd_watch(struct proto_ctx *x, int arg)
{
    (void)arg;
    struct request *q = x->q;
    if (proto_cfg.watch_disabled) { /* -W */
        OUT(x, MSG_WATCH_DISABLED);
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
    if (proto_hooks_active->watch_emit == NULL) {
        OUT(x, MSG_ERROR); /* no server to stream to (unit tests) */
        return CMD_DONE;
    }
    /* The server registers the connection once it sees pc->watch; input after this line is
     * ignored from now on. */
    reply_add(x->r, MSG_OK, MSG_LEN(MSG_OK));
    x->pc->watch = (uint16_t)mask;
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

void proto_watch_get(struct proto_ctx *x, const char *key, size_t nkey, const struct item *it)
{
    char k[KEY_MAX_LENGTH * 3 + 1], line[WATCH_LINE_MAX];
    if (nkey > KEY_MAX_LENGTH)
        return;
    watch_key(k, key, nkey);
    int n = snprintf(line, sizeof line,
                     "type=item_get key=%s status=%s clsid=%u cfd=%d size=%u", k,
                     it ? "found" : "not_found", it ? storage_item_class(it) : 0u,
                     x->pc->trace_id, it ? (unsigned)it->nbytes : 0u);
    if (n > 0 && (size_t)n < sizeof line)
        proto_hooks_active->watch_emit(WATCH_FETCHERS, line, (size_t)n);
}

void proto_watch_store(struct proto_ctx *x, const struct item *it, int op, int res)
{
    static const char *const cmds[] = {"set", "add", "replace", "append", "prepend", "cas"};
    const char *status;
    switch ((enum st_result)res) {
    case ST_OK: status = "stored"; break;
    case ST_EXISTS: status = "exists"; break;
    case ST_NOT_FOUND: status = "not_found"; break;
    case ST_TOO_LARGE: status = "too_large"; break;
    case ST_NO_MEMORY: status = "no_memory"; break;
    default: status = "not_stored"; break;
    }
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
                     status, (unsigned)op < 6 ? cmds[op] : "na", ttl, storage_item_class(it),
                     x->pc->trace_id, size);
    if (n > 0 && (size_t)n < sizeof line)
        proto_hooks_active->watch_emit(WATCH_MUTATIONS, line, (size_t)n);
}
