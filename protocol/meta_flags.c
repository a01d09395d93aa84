/*
 * meta_flags: the flag parser shared by mg ms md ma, and the base64 codec for `b` keys.
 * Mirrors memcached 1.6.18's _meta_flag_preparse: flags are single letters, some followed by
 * a number; a repeated flag or one it does not know stops the parse at once, a bad number is
 * remembered and the parse goes on (so the last bad value names the error).
 */
#include "protocol/meta.h"

#include <string.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63 for the alphabet, 0 for '=', 0x80 for everything else (skipped). */
static unsigned char b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (unsigned char)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (unsigned char)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (unsigned char)(c - '0' + 52);
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    if (c == '=')
        return 0;
    return 0x80;
}

size_t meta_base64_decode(const char *src, size_t len, char *out, size_t out_len)
{
    size_t count = 0;
    for (size_t i = 0; i < len; i++)
        if (b64_value((unsigned char)src[i]) != 0x80)
            count++;
    if (count == 0 || count % 4 || count / 4 * 3 > out_len)
        return 0;
    unsigned char block[4];
    size_t n = 0, pos = 0;
    int pad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char v = b64_value((unsigned char)src[i]);
        if (v == 0x80)
            continue;
        if (src[i] == '=')
            pad++;
        block[n++] = v;
        if (n == 4) {
            out[pos++] = (char)((block[0] << 2) | (block[1] >> 4));
            out[pos++] = (char)((block[1] << 4) | (block[2] >> 2));
            out[pos++] = (char)((block[2] << 6) | block[3]);
            n = 0;
            if (pad) {
                if (pad > 2)
                    return 0; /* invalid padding */
                pos -= (size_t)pad;
                break;
            }
        }
    }
    return pos;
}

size_t meta_base64_encode(const unsigned char *src, size_t len, char *out)
{
    char *p = out;
    size_t i = 0;
    for (; len - i >= 3; i += 3) {
        *p++ = b64_alphabet[src[i] >> 2];
        *p++ = b64_alphabet[((src[i] & 0x03) << 4) | (src[i + 1] >> 4)];
        *p++ = b64_alphabet[((src[i + 1] & 0x0f) << 2) | (src[i + 2] >> 6)];
        *p++ = b64_alphabet[src[i + 2] & 0x3f];
    }
    if (len - i == 1) {
        *p++ = b64_alphabet[src[i] >> 2];
        *p++ = b64_alphabet[(src[i] & 0x03) << 4];
        *p++ = '=';
        *p++ = '=';
    } else if (len - i == 2) {
        *p++ = b64_alphabet[src[i] >> 2];
        *p++ = b64_alphabet[((src[i] & 0x03) << 4) | (src[i + 1] >> 4)];
        *p++ = b64_alphabet[(src[i + 1] & 0x0f) << 2];
        *p++ = '=';
    }
    return (size_t)(p - out);
}

/* The number after a flag letter. */
static struct token flag_arg(const struct token *t)
{
    struct token a = {t->p + 1, t->len - 1};
    return a;
}

/* Relative exptime from a signed TTL, memcached's realtime(EXPTIME_TO_POSITIVE_TIME(v)):
 * a negative TTL is expired at once. */
static bool flag_ttl(const struct token *t, rel_time_t *out)
{
    int32_t v;
    struct token a = flag_arg(t);
    if (!tok_strtol(&a, &v))
        return false;
    *out = clock_exptime(v);
    return true;
}

const char *meta_flags_parse(const struct request *q, unsigned start, struct meta_flags *f)
{
    const char *err = MSG_BAD_FORMAT; /* memcached's default errstr */
    bool has_error = false;
    bool seen[127] = {false};
    f->key = q->tok[1].p;
    f->nkey = q->tok[1].len;
    for (unsigned i = start; i < q->ntok; i++) {
        const struct token *t = &q->tok[i];
        unsigned char o = (unsigned char)t->p[0];
        if (o >= 127 || seen[o])
            return MSG_META_DUP_FLAG;
        seen[o] = true;
        struct token a = flag_arg(t);
        switch (o) {
        case 'b': {
            size_t n = meta_base64_decode(q->tok[1].p, q->tok[1].len, f->keybuf,
                                          sizeof(f->keybuf));
            if (n == 0) {
                err = MSG_META_BAD_KEY;
                has_error = true;
            }
            f->key = f->keybuf;
            f->nkey = n;
            f->key_binary = true;
            break;
        }
        case 'N':
            f->locked = f->vivify = true;
            if (!flag_ttl(t, &f->autoviv_exptime)) {
                err = MSG_META_BAD_TOKEN;
                has_error = true;
            }
            break;
        case 'T':
            f->locked = true;
            if (!flag_ttl(t, &f->exptime)) {
                err = MSG_META_BAD_TOKEN;
                has_error = true;
            } else {
                f->new_ttl = true;
            }
            break;
        case 'R':
            f->locked = true;
            if (!flag_ttl(t, &f->recache_time)) {
                err = MSG_META_BAD_TOKEN;
                has_error = true;
            }
            break;
        case 'l':
        case 'h':
            f->locked = true; /* memcached reads them before its LRU bump */
            break;
        case 'O': case 'P': case 'L': /* opaque; proxy hints */
        case 'k': case 's': case 't': case 'c': case 'f':
            break;
        case 'v':
            f->value = true;
            break;
        case 'u':
            f->no_update = true;
            break;
        case 'q':
            f->no_reply = true;
            break;
        case 'F':
            if (!tok_strtoul(&a, &f->client_flags))
                has_error = true; /* keeps the previous message */
            break;
        case 'C':
            if (!tok_strtoull(&a, &f->req_cas)) {
                err = MSG_META_BAD_TOKEN;
                has_error = true;
            } else {
                f->has_cas = true;
            }
            break;
        case 'M':
            if (t->len != 2) {
                err = MSG_META_M_LENGTH;
                has_error = true;
            } else {
                f->mode = t->p[1];
            }
            break;
        case 'J':
            if (!tok_strtoull(&a, &f->initial)) {
                err = MSG_META_BAD_INITIAL;
                has_error = true;
            }
            break;
        case 'D':
            if (!tok_strtoull(&a, &f->delta)) {
                err = MSG_META_BAD_DELTA;
                has_error = true;
            }
            break;
        case 'I':
            f->set_stale = true;
            break;
        default:
            return MSG_META_INVALID_FLAG;
        }
    }
    return has_error ? err : NULL;
}
