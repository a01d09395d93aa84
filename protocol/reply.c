/*
 * reply: a connection's queue of reply bytes as one iovec array, ready for writev().
 *
 * Text is copied into 16 KB blocks that never move (iovecs point into them); adjacent text
 * is coalesced into one iovec. Large values are referenced inside their items, which stay
 * referenced until their bytes are sent. Blocks form a chain first -> ... -> cur -> spares:
 * a block before cur whose last text has been sent moves behind cur for reuse, and when the
 * queue is empty its blocks go back to the thread's pool (below). Nothing is allocated per
 * request once the arrays and the pool have grown to the working size.
 */
#include "protocol/reply.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "protocol/internal.h"
#include "storage/mem.h"
#include "storage/storage.h"

static void blocks_put(struct reply_block *b);

#define REPLY_IOV_MIN 64
#define REPLY_REFS_MIN 16

void reply_init(struct reply *r)
{
    memset(r, 0, sizeof(*r));
}

void reply_deinit(struct reply *r)
{
    for (size_t i = r->ref_head; i < r->nrefs; i++)
        item_put(r->refs[i]);
    struct reply_block *b = r->first;
    while (b) {
        struct reply_block *next = b->next;
        mem_free(b);
        b = next;
    }
    mem_free(r->iov);
    mem_free(r->refs);
    mem_free(r->ref_seq);
    memset(r, 0, sizeof(*r));
}

void reply_clear(struct reply *r)
{
    for (size_t i = r->ref_head; i < r->nrefs; i++)
        item_put(r->refs[i]);
    blocks_put(r->first);
    struct iovec *iov = r->iov;
    size_t iov_cap = r->iov_cap;
    if (iov_cap > REPLY_IOV_MIN) {
        mem_free(iov);
        iov = NULL;
        iov_cap = 0;
    }
    struct item **refs = r->refs;
    uint64_t *ref_seq = r->ref_seq;
    size_t refs_cap = r->refs_cap;
    if (refs_cap > REPLY_REFS_MIN) {
        mem_free(refs);
        mem_free(ref_seq);
        refs = NULL;
        ref_seq = NULL;
        refs_cap = 0;
    }
    memset(r, 0, sizeof(*r));
    r->iov = iov;
    r->iov_cap = iov_cap;
    r->refs = refs;
    r->ref_seq = ref_seq;
    r->refs_cap = refs_cap;
}

/*
 * The thread's pool of free blocks, last freed first out. A reply that is all sent gives its
 * blocks back, and the next reply of any connection of the thread starts in the block used
 * last: at depth 1 a worker's replies all come out of one block that stays in cache, instead
 * of one block per connection (50 connections: 800 KB of blocks cycling through the caches
 * and through the kernel's copies; a loopback microbenchmark on the bench VM sent from 50
 * rotating buffers 40-400 ns slower per send than from one). memcached takes its buffers
 * from per-thread caches likewise. At most REPLY_POOL_MAX blocks stay; a thread's pool is
 * freed when the thread exits (a pthread key destructor).
 */
#define REPLY_POOL_MAX 8

static _Thread_local struct reply_block *pool;
static _Thread_local unsigned pool_len;
static _Thread_local bool pool_registered;
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_release(void *unused)
{
    (void)unused;
    while (pool) {
        struct reply_block *next = pool->next;
        mem_free(pool);
        pool = next;
    }
    pool_len = 0;
}

static void pool_key_create(void)
{
    pthread_key_create(&pool_key, pool_release);
}

static struct reply_block *block_new(void)
{
    struct reply_block *b = pool;
    if (b) {
        pool = b->next;
        pool_len--;
    } else {
        b = mem_alloc(sizeof(*b));
    }
    b->next = NULL;
    b->used = 0;
    return b;
}

struct reply_block *reply_start(struct reply *r)
{
    if (!r->first)
        r->first = block_new();
    r->cur = r->first;
    r->cur->used = 0;
    return r->cur;
}

/* Gives a chain of blocks back to the pool (the first one ends on top), or frees them. */
static void blocks_put(struct reply_block *b)
{
    if (b && !b->next && pool_len < REPLY_POOL_MAX && pool_registered) {
        b->next = pool; /* the usual case: one block, room in the pool */
        pool = b;
        pool_len++;
        return;
    }
    if (b && !pool_registered) {
        pthread_once(&pool_once, pool_key_create);
        pthread_setspecific(pool_key, &pool_registered); /* any non-NULL: run the destructor */
        pool_registered = true;
    }
    struct reply_block *first = b;
    while (b) {
        struct reply_block *next = b->next;
        if (pool_len < REPLY_POOL_MAX && b != first) {
            b->next = pool;
            pool = b;
            pool_len++;
        } else if (b != first) {
            mem_free(b);
        }
        b = next;
    }
    if (first) {
        if (pool_len == REPLY_POOL_MAX) { /* make room: the first block is the hot one */
            struct reply_block *old = pool;
            pool = old->next;
            mem_free(old);
            pool_len--;
        }
        first->next = pool;
        pool = first;
        pool_len++;
    }
}

/* Makes cur a block with free space: the first one, or the next (spare or new). */
static void next_block(struct reply *r)
{
    if (!r->cur) {
        if (!r->first)
            r->first = block_new();
        r->cur = r->first;
        r->cur->used = 0;
        return;
    }
    if (!r->cur->next)
        r->cur->next = block_new();
    r->cur = r->cur->next;
    r->cur->used = 0;
}

static void push_iov(struct reply *r, const void *base, size_t len, bool text)
{
    if (text && r->niov > r->head) {
        struct iovec *last = &r->iov[r->niov - 1];
        if ((const char *)last->iov_base + last->iov_len == (const char *)base) {
            last->iov_len += len;
            return;
        }
    }
    if (r->niov == r->iov_cap) {
        if (r->head > 0 && r->head >= r->niov / 2) {
            /* Slide the unsent tail down instead of growing forever under a steady stream. */
            memmove(r->iov, r->iov + r->head, (r->niov - r->head) * sizeof(*r->iov));
            r->niov -= r->head;
            r->iov_seq += r->head;
            r->head = 0;
        } else {
            size_t cap = r->iov_cap ? r->iov_cap * 2 : REPLY_IOV_MIN;
            r->iov = mem_realloc(r->iov, cap * sizeof(*r->iov));
            r->iov_cap = cap;
        }
    }
    r->iov[r->niov].iov_base = (void *)base;
    r->iov[r->niov].iov_len = len;
    r->niov++;
}

void reply_add_slow(struct reply *r, const void *data, size_t len)
{
    const char *p = data;
    r->pending += len;
    while (len > 0) {
        if (!r->cur || r->cur->used == REPLY_BLOCK_SIZE)
            next_block(r);
        size_t room = REPLY_BLOCK_SIZE - r->cur->used;
        size_t n = len < room ? len : room;
        char *dst = r->cur->data + r->cur->used;
        memcpy(dst, p, n);
        push_iov(r, dst, n, true);
        r->cur->used += n;
        p += n;
        len -= n;
    }
}

char *reply_reserve_slow(struct reply *r, size_t len)
{
    if (len > REPLY_BLOCK_SIZE)
        return NULL;
    if (!r->cur || REPLY_BLOCK_SIZE - r->cur->used < len)
        next_block(r);
    return r->cur->data + r->cur->used;
}

void reply_commit_slow(struct reply *r, size_t used)
{
    if (used == 0)
        return;
    char *dst = r->cur->data + r->cur->used;
    push_iov(r, dst, used, true);
    r->cur->used += used;
    r->pending += used;
}

void reply_printf(struct reply *r, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(buf)) {
        reply_add(r, buf, (size_t)n);
        return;
    }
    /* Rare: longer than the stack buffer; format again into heap memory. */
    char *big = mem_alloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    reply_add(r, big, (size_t)n);
    mem_free(big);
}

void reply_add_item_data(struct reply *r, struct item *it, const void *data, size_t len)
{
    if (len < PROTO_INLINE_VALUE_MAX) {
        reply_add(r, data, len);
        item_put(it);
        return;
    }
    if (r->nrefs == r->refs_cap) {
        if (r->ref_head > 0 && r->ref_head >= r->nrefs / 2) {
            size_t keep = r->nrefs - r->ref_head;
            memmove(r->refs, r->refs + r->ref_head, keep * sizeof(*r->refs));
            memmove(r->ref_seq, r->ref_seq + r->ref_head, keep * sizeof(*r->ref_seq));
            r->nrefs = keep;
            r->ref_head = 0;
        } else {
            size_t cap = r->refs_cap ? r->refs_cap * 2 : REPLY_REFS_MIN;
            r->refs = mem_realloc(r->refs, cap * sizeof(*r->refs));
            r->ref_seq = mem_realloc(r->ref_seq, cap * sizeof(*r->ref_seq));
            r->refs_cap = cap;
        }
    }
    push_iov(r, data, len, false);
    r->refs[r->nrefs] = it;
    r->ref_seq[r->nrefs] = r->iov_seq + r->niov - 1;
    r->nrefs++;
    r->pending += len;
}

size_t reply_iov(struct reply *r, struct iovec **iov, size_t max)
{
    *iov = r->iov + r->head;
    size_t n = r->niov - r->head;
    return n < max ? n : max;
}

/* Everything sent: the blocks go back to the thread's pool, the arrays stay. */
static void reply_recycle(struct reply *r)
{
    r->iov_seq += r->niov;
    r->niov = r->head = 0;
    r->nrefs = r->ref_head = 0;
    r->pending = 0;
    blocks_put(r->first);
    r->first = r->cur = NULL;
}

/* iov[head] has been sent completely: release its item, or recycle a finished text block. */
static void iov_done(struct reply *r)
{
    const struct iovec *v = &r->iov[r->head];
    if (r->ref_head < r->nrefs && r->ref_seq[r->ref_head] == r->iov_seq + r->head) {
        item_put(r->refs[r->ref_head]);
        r->ref_head++;
        return;
    }
    struct reply_block *b = r->first;
    if (b && b != r->cur && (const char *)v->iov_base + v->iov_len == b->data + b->used) {
        /* The first block is closed (text continues in later blocks) and fully sent. */
        r->first = b->next;
        b->next = r->cur->next;
        r->cur->next = b;
        b->used = 0;
    }
}

void reply_consumed(struct reply *r, size_t n)
{
    if (n >= r->pending && r->ref_head == r->nrefs) {
        /* All sent and no item to release (the usual depth-1 reply): no iovec walk. */
        r->sent += r->pending;
        reply_recycle(r);
        return;
    }
    if (n > r->pending)
        n = r->pending;
    r->pending -= n;
    r->sent += n;
    while (n > 0 && r->head < r->niov) {
        struct iovec *v = &r->iov[r->head];
        if (n < v->iov_len) {
            v->iov_base = (char *)v->iov_base + n;
            v->iov_len -= n;
            break;
        }
        n -= v->iov_len;
        iov_done(r);
        r->head++;
    }
    if (r->pending == 0)
        reply_recycle(r);
}

void reply_rollback(struct reply *r, const struct reply_mark *m)
{
    while (r->nrefs > r->ref_head && r->ref_seq[r->nrefs - 1] >= m->iov_end) {
        item_put(r->refs[r->nrefs - 1]);
        r->nrefs--;
    }
    /* iov_seq may have grown by a slide since the mark; the iovecs are the same. */
    size_t niov = (size_t)(m->iov_end - r->iov_seq);
    r->niov = niov;
    if (niov > r->head)
        r->iov[niov - 1].iov_len = m->last_len;
    if (m->cur) {
        r->cur = m->cur;
        r->cur->used = m->used;
    } else if (r->first) {
        r->cur = r->first;
        r->cur->used = 0;
    }
    r->pending = m->pending;
}
