/*
 * Private to protocol/: no file outside protocol/ includes it.
 * meta: the meta commands mg ms md ma mn me (protocol/meta.c) and their flag parser
 * (protocol/meta_flags.c). Each command is one entry of the command table in protocol/proto.c
 * pointing at the handler below.
 *
 * A handler gets the tokenized line in x->q (x->q->tok[0] is the command), the bytes after
 * the line in x->data/x->avail (ms allocates its item and starts reading the value into it,
 * proto_value_start; proto_meta_ms_finish stores it once complete), and writes replies to x->r.
 *
 * Behaviour is memcached 1.6.18's, checked byte for byte against Debian's /usr/bin/memcached:
 * which flags each command takes (1.6.18 has no E flag and no md x: "invalid flag"), what q
 * hides (mg: EN; ms md: HD; ma: HD/VA of an existing counter), and that only `me` counts in
 * cmd_meta (the other meta commands count as gets, sets, deletes, incr/decr).
 */
#pragma once

#include "protocol/internal.h"
#include "storage/clock.h"

/* Reply strings of the meta commands (memcached 1.6.18's, "\r\n" included). */
#define MSG_META_MN "MN\r\n"
#define MSG_META_INVALID_FLAG "CLIENT_ERROR invalid flag\r\n"
#define MSG_META_DUP_FLAG "CLIENT_ERROR duplicate flag\r\n"
#define MSG_META_INVALID_OR_DUP "CLIENT_ERROR invalid or duplicate flag\r\n"
#define MSG_META_BAD_TOKEN "CLIENT_ERROR bad token in command line format\r\n"
#define MSG_META_BAD_KEY "CLIENT_ERROR error decoding key\r\n"
#define MSG_META_M_LENGTH "CLIENT_ERROR incorrect length for M token\r\n"
#define MSG_META_BAD_INITIAL "CLIENT_ERROR invalid numeric initial value\r\n"
#define MSG_META_BAD_DELTA "CLIENT_ERROR invalid numeric delta value\r\n"
#define MSG_META_OPAQUE_LONG "CLIENT_ERROR opaque token too long\r\n"
#define MSG_META_MG_TOO_MANY "CLIENT_ERROR options flags are too long\r\n"
#define MSG_META_TOO_MANY "CLIENT_ERROR options flags too long\r\n"
#define MSG_META_MS_MODE "CLIENT_ERROR invalid mode for ms M token\r\n"
#define MSG_META_MA_MODE "CLIENT_ERROR invalid mode for ma M token\r\n"
#define MSG_META_REFCOUNT "SERVER_ERROR refcount overflow during fetch\r\n"
#define MSG_META_VIVIFY_NOMEM "SERVER_ERROR Out of memory allocating new item\r\n"

/* memcached: at most 20 tokens incl. its terminal one, so 19 of ours (command, key, flags). */
#define META_MAX_TOKENS 19
/* An O token (the 'O' included) longer than this is refused. */
#define META_OPAQUE_MAX 32

/* Flags of one meta command line, as memcached's _meta_flag_preparse collects them. */
struct meta_flags {
    bool no_update, locked, vivify, value, set_stale, no_reply, has_cas, new_ttl, key_binary;
    char mode;                  /* M<c>, 0 when absent */
    rel_time_t exptime;         /* T */
    rel_time_t autoviv_exptime; /* N */
    rel_time_t recache_time;    /* R */
    uint32_t client_flags;      /* F */
    uint64_t req_cas;           /* C */
    uint64_t delta;             /* D (ma; the caller presets 1) */
    uint64_t initial;           /* J */
    const char *key;            /* the key (decoded into keybuf with b) */
    size_t nkey;
    char keybuf[KEY_MAX_LENGTH];
};

/*
 * Parses q->tok[start ..] (every token's first byte names its flag) and the key in q->tok[1].
 * Returns NULL, or the error reply: memcached's message for the last bad flag value, or
 * "invalid flag"/"duplicate flag" at the first unknown or repeated flag (a first byte >= 127
 * counts as repeated, as in memcached). Errors leave *f partly filled. The caller presets
 * f->delta.
 */
const char *meta_flags_parse(const struct request *q, unsigned start, struct meta_flags *f);

/* memcached's base64 (RFC 1341 alphabet; bytes outside it are skipped; stops after a padded
 * block). Decode returns the length, 0 on failure; encode needs 4 * ceil(n / 3) bytes. */
size_t meta_base64_decode(const char *src, size_t len, char *out, size_t out_len);
size_t meta_base64_encode(const unsigned char *src, size_t len, char *out);

enum cmd_result proto_meta_mg(struct proto_ctx *x, int arg);
enum cmd_result proto_meta_ms(struct proto_ctx *x, int arg);
enum cmd_result proto_meta_md(struct proto_ctx *x, int arg);
enum cmd_result proto_meta_ma(struct proto_ctx *x, int arg);
enum cmd_result proto_meta_mn(struct proto_ctx *x, int arg);
enum cmd_result proto_meta_me(struct proto_ctx *x, int arg);
