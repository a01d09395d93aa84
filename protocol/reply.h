/*
 * reply: the queue of reply bytes of one connection, as an iovec list ready for writev().
 * Text (status lines, VALUE headers) is copied into fixed-size blocks that never move, so iovecs
 * can point into them; item values are referenced in place, holding an item reference until
 * the bytes are written. No sockets here: the server calls reply_iov()/reply_consumed().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct item;

#define REPLY_BLOCK_SIZE 16384

struct reply_block {
    struct reply_block *next;
    size_t used;
    char data[REPLY_BLOCK_SIZE];
};

struct reply {
    struct iovec *iov;          /* iov[head .. niov) are unsent */
    size_t niov, iov_cap, head;
    struct item **refs;         /* items referenced by iovecs, released when sent */
    size_t nrefs, refs_cap;
    struct reply_block *first, *cur; /* text blocks; cur is the one being filled */
    size_t pending;             /* unsent bytes */
    uint64_t sent;              /* bytes written so far (a reply_mark is void once it moves) */
    /* Added by protocol: refs[ref_head .. nrefs) are unreleased; ref_seq[i] is the absolute
     * number of the iovec that refs[i] backs (iov_seq counts iovecs dropped from iov[]). */
    uint64_t *ref_seq;
    size_t ref_head;
    uint64_t iov_seq;
};

/* A position in the reply to roll back to (a multi-get that hits a bad key answers only the
 * error, as memcached does). Valid until the next reply_consumed(). */
struct reply_mark {
    uint64_t iov_end;   /* absolute number of iovecs at the mark */
    size_t last_len;    /* length of the last iovec then (coalescing may extend it) */
    struct reply_block *cur;
    size_t used, pending;
};

void reply_init(struct reply *r);
/* Releases every block, iovec array and item reference. */
void reply_deinit(struct reply *r);
/* Empties r as reply_deinit does, but gives its blocks to the thread's pool (reply.c) and
 * keeps its arrays when they are of the starting size, for the next connection that uses
 * the struct. */
void reply_clear(struct reply *r);

/* Appends text, copying it. */
static inline void reply_add(struct reply *r, const void *data, size_t len);
static inline void reply_add_str(struct reply *r, const char *s);
/* Appends `len` bytes that live inside `it`; takes over the caller's reference to it. */
void reply_add_item_data(struct reply *r, struct item *it, const void *data, size_t len);
/* Reserves len bytes of text to be filled by the caller (e.g. snprintf); returns the space
 * (NULL if len > REPLY_BLOCK_SIZE). reply_commit() then appends the first `used` bytes of it.
 * Values shorter than 512 bytes given to reply_add_item_data are copied (the reference is
 * dropped at once); longer ones are referenced in place. */
static inline char *reply_reserve(struct reply *r, size_t len);
static inline void reply_commit(struct reply *r, size_t used);
/* Appends formatted text. */
void reply_printf(struct reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Remembers the current end of r; reply_rollback() drops everything appended after it,
 * releasing item references. */
static inline void reply_mark(const struct reply *r, struct reply_mark *m);
void reply_rollback(struct reply *r, const struct reply_mark *m);

/* Unsent iovecs: *iov points at the first, returns their count (at most max). */
size_t reply_iov(struct reply *r, struct iovec **iov, size_t max);
/* After writev wrote n bytes: advances, releasing sent items; when all is sent, recycles. */
void reply_consumed(struct reply *r, size_t n);
static inline bool reply_empty(const struct reply *r)
{
    return r->pending == 0;
}

/* ---- the common cases inline (a depth-1 get appends and sends a few short texts; the calls
 * and the general paths were ~150 of its instructions under callgrind) ---- */
#include <string.h>

void reply_add_slow(struct reply *r, const void *data, size_t len);
/* An empty reply's first block, from the thread's pool (reply.c): the common first append of
 * a reply takes it here and stays on the inline path. */
struct reply_block *reply_start(struct reply *r);
char *reply_reserve_slow(struct reply *r, size_t len);
void reply_commit_slow(struct reply *r, size_t used);

/* The iovec that text written at `at` (the free space of cur) goes into: the last unsent one
 * if it ends exactly there, else a new one if the array has room (length 0), else NULL. */
static inline struct iovec *reply_text_tail(struct reply *r, char *at)
{
    if (r->niov > r->head) {
        struct iovec *last = &r->iov[r->niov - 1];
        if ((char *)last->iov_base + last->iov_len == at)
            return last;
    }
    if (r->niov == r->iov_cap)
        return NULL;
    struct iovec *v = &r->iov[r->niov++];
    v->iov_base = at;
    v->iov_len = 0;
    return v;
}

static inline void reply_add(struct reply *r, const void *data, size_t len)
{
    struct reply_block *b = r->cur ? r->cur : reply_start(r);
    if (len > 0 && REPLY_BLOCK_SIZE - b->used >= len) {
        char *dst = b->data + b->used;
        struct iovec *last = reply_text_tail(r, dst);
        if (last) {
            memcpy(dst, data, len);
            last->iov_len += len;
            b->used += len;
            r->pending += len;
            return;
        }
    }
    reply_add_slow(r, data, len);
}

static inline char *reply_reserve(struct reply *r, size_t len)
{
    if (!r->cur)
        reply_start(r);
    if (REPLY_BLOCK_SIZE - r->cur->used >= len)
        return r->cur->data + r->cur->used;
    return reply_reserve_slow(r, len);
}

static inline void reply_commit(struct reply *r, size_t used)
{
    struct iovec *last;
    if (used > 0 && (last = reply_text_tail(r, r->cur->data + r->cur->used)) != NULL) {
        last->iov_len += used;
        r->cur->used += used;
        r->pending += used;
        return;
    }
    reply_commit_slow(r, used);
}

static inline void reply_mark(const struct reply *r, struct reply_mark *m)
{
    m->iov_end = r->iov_seq + r->niov;
    m->last_len = r->niov > r->head ? r->iov[r->niov - 1].iov_len : 0;
    m->cur = r->cur;
    m->used = r->cur ? r->cur->used : 0;
    m->pending = r->pending;
}

static inline void reply_add_str(struct reply *r, const char *s)
{
    reply_add(r, s, strlen(s));
}
