/*
 * trace: memcached's -vv / -vvv per-connection lines on stderr, in memcached 1.6.18's words:
 *   <FD new auto-negotiating client connection      (or "new ascii|binary client connection.")
 *   FD: Client using the ascii protocol             (the first bytes chose the protocol)
 *   <FD get foo                                     (the server's trace_command hook)
 *   >FD sending key foo / >FD END                   (a retrieval: one line per hit, then END)
 *   >FD STORED                                      (a one-line reply: memcached's out_string)
 *   >FD NOREPLY STORED                              (the same reply, withheld by noreply)
 *   <FD connection closed.
 * memcached prints a ">FD" line only where it answers through out_string: a one-line reply of
 * a classic command, a meta command's error, `mn`'s MN and `me`'s EN; never a multi-line
 * reply (stats, metadump) nor a meta command's HD/VA/EN/NF/NS/EX. The reply a command queued
 * is read back from the reply queue (trace_reply) so the handlers stay untouched; nothing
 * here runs unless the verbosity is 2 or more. Each line goes out in one write() so lines of
 * different worker threads do not interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "protocol/auth.h"
#include "protocol/internal.h"
#include "storage/meta_ops.h"

#define TRACE_LINE_MAX 2048

void proto_trace_printf(const char *fmt, ...)
{
    char buf[TRACE_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t m = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    if (m > 0 && buf[m - 1] != '\n')
        buf[m - 1] = '\n'; /* cut short: still one line */
    ssize_t w = write(STDERR_FILENO, buf, m);
    (void)w;
}

/* memcached's connection protocol at accept: set by -B / -S / -Y, else negotiated. */
static const char *conn_protocol(void)
{
    if (auth_enabled() || proto_cfg.binding == PROTO_BIND_ASCII)
        return "ascii";
    if (proto_cfg.sasl || proto_cfg.binding == PROTO_BIND_BINARY)
        return "binary";
    return NULL;
}

void proto_trace_conn_open(int id)
{
    if (proto_verbose() < 2)
        return;
    const char *p = conn_protocol();
    if (p == NULL)
        proto_trace_printf("<%d new auto-negotiating client connection\n", id);
    else
        proto_trace_printf("<%d new %s client connection.\n", id, p);
}

void proto_trace_conn_close(int id)
{
    if (proto_verbose() >= 2)
        proto_trace_printf("<%d connection closed.\n", id);
}

void proto_trace_listening(int id)
{
    if (proto_verbose() < 2)
        return;
    const char *p = conn_protocol();
    proto_trace_printf("<%d server listening (%s)\n", id, p ? p : "auto-negotiate");
}

void proto_trace_negotiated(const struct proto_conn *pc)
{
    if (proto_verbose() >= 2 && conn_protocol() == NULL)
        proto_trace_printf("%d: Client using the %s protocol\n", pc->trace_id,
                     pc->mode == PROTO_MODE_BINARY ? "binary" : "ascii");
}

void proto_trace_noreply(const struct proto_ctx *x, const char *s, size_t len)
{
    if (proto_verbose() < 2)
        return;
    if (len >= 2 && s[len - 2] == '\r')
        len -= 2;
    proto_trace_printf(">%d NOREPLY %.*s\n", x->pc->trace_id, (int)len, s);
}

/* ---- reading back what a command queued ---- */

struct cursor {
    const struct iovec *iov;
    size_t n, i, off;
};

/* The bytes appended to r since m, as a cursor (no reply_consumed may run in between). */
static void cursor_from_mark(struct cursor *c, const struct reply *r, const struct reply_mark *m)
{
    size_t at = (size_t)(m->iov_end - r->iov_seq);
    c->iov = r->iov;
    c->n = r->niov;
    c->i = at;
    c->off = 0;
    if (at > r->head && at >= 1 && m->last_len < r->iov[at - 1].iov_len) {
        c->i = at - 1; /* the text went on in the iovec that was last at the mark */
        c->off = m->last_len;
    }
}

/* Copies the next line (without "\r\n", cut at max - 1) into buf; false at the end. */
static bool cursor_line(struct cursor *c, char *buf, size_t max, size_t *len)
{
    size_t n = 0;
    bool any = false;
    while (c->i < c->n) {
        const char *p = (const char *)c->iov[c->i].iov_base;
        size_t l = c->iov[c->i].iov_len;
        while (c->off < l) {
            char ch = p[c->off++];
            any = true;
            if (ch == '\n') {
                if (n > 0 && buf[n - 1] == '\r')
                    n--;
                *len = n;
                return true;
            }
            if (n < max - 1)
                buf[n++] = ch;
        }
        c->i++;
        c->off = 0;
    }
    *len = n;
    return any;
}

static void cursor_skip(struct cursor *c, uint64_t bytes)
{
    while (bytes > 0 && c->i < c->n) {
        size_t left = c->iov[c->i].iov_len - c->off;
        if (bytes < left) {
            c->off += (size_t)bytes;
            return;
        }
        bytes -= left;
        c->i++;
        c->off = 0;
    }
}

static bool starts(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len >= n && memcmp(s, lit, n) == 0;
}

static bool is_error(const char *s, size_t len)
{
    return starts(s, len, "ERROR") || starts(s, len, "CLIENT_ERROR") ||
           starts(s, len, "SERVER_ERROR");
}

/* A retrieval: ">FD sending key K" per VALUE, then END (or the error that replaced them). */
static void trace_retrieval(int id, struct cursor *c)
{
    char line[TRACE_LINE_MAX];
    size_t len;
    while (cursor_line(c, line, sizeof line, &len)) {
        if (starts(line, len, "VALUE ")) {
            const char *k = line + 6, *e = memchr(k, ' ', len - 6);
            size_t klen = e ? (size_t)(e - k) : len - 6;
            proto_trace_printf(">%d sending key %.*s\n", id, (int)klen, k);
            /* skip the value: the last number of "VALUE k f n [cas]" that is not the cas */
            const char *f = e ? memchr(e + 1, ' ', (size_t)(line + len - e - 1)) : NULL;
            uint64_t bytes = 0;
            for (const char *p = f ? f + 1 : line + len; p < line + len && *p >= '0' && *p <= '9'; p++)
                bytes = bytes * 10 + (uint64_t)(*p - '0');
            cursor_skip(c, bytes + 2);
        } else {
            /* a bad key or no memory ends the retrieval at memcached's "stop:", which logs
             * END before the error that replaces the reply */
            if (starts(line, len, "CLIENT_ERROR bad command line format") ||
                starts(line, len, "SERVER_ERROR"))
                proto_trace_printf(">%d END\n", id);
            proto_trace_printf(">%d %.*s\n", id, (int)len, line);
            return;
        }
    }
}

void proto_trace_reply(const struct proto_ctx *x, const struct reply_mark *m,
                       enum proto_trace_kind kind)
{
    struct cursor c;
    cursor_from_mark(&c, x->r, m);
    int id = x->pc->trace_id;
    if (kind == PROTO_TRACE_RETRIEVAL) {
        trace_retrieval(id, &c);
        return;
    }
    char line[TRACE_LINE_MAX], next[8];
    size_t len, nlen;
    if (!cursor_line(&c, line, sizeof line, &len))
        return;
    bool more = cursor_line(&c, next, sizeof next, &nlen);
    switch (kind) {
    case PROTO_TRACE_META: /* errors only (memcached's out_errstring) */
        if (!more && is_error(line, len))
            break;
        return;
    case PROTO_TRACE_ME: /* `me`: a miss's EN and errors; a hit's ME line is not traced */
        if (!more && (is_error(line, len) || (len == 2 && memcmp(line, "EN", 2) == 0)))
            break;
        return;
    default: /* one line: out_string; "END" alone is an empty listing (stats detail dump...) */
        if (more || (len == 3 && memcmp(line, "END", 3) == 0))
            return;
        break;
    }
    proto_trace_printf(">%d %.*s\n", id, (int)len, line);
}

enum proto_trace_kind proto_trace_kind_of(const struct request *q)
{
    if (q->ntok == 0)
        return PROTO_TRACE_LINE;
    const struct token *t = &q->tok[0];
    if (TOK_IS(t, "get") || TOK_IS(t, "gets") || TOK_IS(t, "gat") || TOK_IS(t, "gats") ||
        TOK_IS(t, "bget"))
        return PROTO_TRACE_RETRIEVAL;
    if (TOK_IS(t, "mg") || TOK_IS(t, "ms") || TOK_IS(t, "md") || TOK_IS(t, "ma"))
        return PROTO_TRACE_META;
    if (TOK_IS(t, "me"))
        return PROTO_TRACE_ME;
    return PROTO_TRACE_LINE;
}

/* memcached's binary header dumps: "<FD Read binary protocol data:" then the 24 header bytes
 * four to a line ("<FD   " + " 0x80" ...); ">FD Writing bin response:" likewise ("  "). */
void proto_trace_bin_header(int id, bool response, const unsigned char *h)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, response ? ">%d Writing bin response:" : "<%d Read binary protocol data:", id);
    for (int i = 0; i < 24 && n > 0 && (size_t)n < sizeof buf - 32; i++) {
        if (i % 4 == 0)
            n += snprintf(buf + n, sizeof buf - (size_t)n, response ? "\n>%d  " : "\n<%d   ", id);
        n += snprintf(buf + n, sizeof buf - (size_t)n, " 0x%02x", h[i]);
    }
    if (n > 0)
        proto_trace_printf("%s\n", buf);
}

void proto_trace_cas_failure(const struct item *it, uint64_t cas)
{
    struct meta_peek pk;
    struct item *old = storage_meta_peek(item_key(it), it->nkey, &pk);
    if (old == NULL)
        return;
    proto_trace_printf("CAS:  failure: expected %llu, got %llu\n", (unsigned long long)pk.cas,
                       (unsigned long long)cas);
    item_put(old);
}
