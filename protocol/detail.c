/*
 * detail: `stats detail on|off|dump`, memcached's per-prefix counters (its stats_prefix.c).
 * While on, every get/gets/gat/gats key, classic storage command and delete whose key holds
 * the prefix delimiter (-D, default ':') counts against the text before it; `stats detail
 * dump` prints "PREFIX <p> get <n> hit <n> set <n> del <n>" lines, `stats reset` clears them.
 *
 * One mutex guards the table: it is taken only while detail is on (memcached takes its global
 * stats lock then too), never with another lock held. The table is bounded (DETAIL_MAX
 * prefixes; later new prefixes are not counted) so a client cannot grow it without limit.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/internal.h"
#include "storage/mem.h"

#define DETAIL_BUCKETS 256
#define DETAIL_MAX 65536

struct prefix {
    struct prefix *next;
    uint64_t gets, hits, sets, dels;
    uint8_t len;
    char name[];
};

static pthread_mutex_t detail_lock = PTHREAD_MUTEX_INITIALIZER;
static struct prefix *buckets[DETAIL_BUCKETS];
static unsigned nprefixes;
static atomic_bool detail_on;

bool proto_detail_enabled(void)
{
    return atomic_load_explicit(&detail_on, memory_order_relaxed);
}

void proto_detail_enable(bool on)
{
    atomic_store(&detail_on, on);
}

static char delimiter(void)
{
    return proto_cfg.prefix_delimiter ? proto_cfg.prefix_delimiter : ':';
}

/* The prefix's counters, created on first use; NULL if the key has no delimiter or the table
 * is full. Needs detail_lock. */
static struct prefix *find(const char *key, size_t nkey)
{
    char delim = delimiter();
    size_t len = 0;
    while (len < nkey && key[len] != delim)
        len++;
    if (len == nkey || len > KEY_MAX_LENGTH)
        return NULL;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)key[i]) * 16777619u;
    struct prefix **b = &buckets[h % DETAIL_BUCKETS];
    for (struct prefix *p = *b; p; p = p->next)
        if (p->len == len && memcmp(p->name, key, len) == 0)
            return p;
    if (nprefixes >= DETAIL_MAX)
        return NULL;
    struct prefix *p = mem_calloc(1, sizeof(*p) + len + 1);
    if (!p)
        return NULL;
    memcpy(p->name, key, len);
    p->len = (uint8_t)len;
    p->next = *b;
    *b = p;
    nprefixes++;
    return p;
}

void proto_detail_record(const char *key, size_t nkey, enum detail_op op, bool hit)
{
    if (!proto_detail_enabled())
        return;
    pthread_mutex_lock(&detail_lock);
    struct prefix *p = find(key, nkey);
    if (p) {
        switch (op) {
        case DETAIL_GET:
            p->gets++;
            p->hits += hit;
            break;
        case DETAIL_SET: p->sets++; break;
        case DETAIL_DEL: p->dels++; break;
        }
    }
    pthread_mutex_unlock(&detail_lock);
}

void proto_detail_dump(struct reply *r)
{
    pthread_mutex_lock(&detail_lock);
    for (unsigned i = 0; i < DETAIL_BUCKETS; i++)
        for (struct prefix *p = buckets[i]; p; p = p->next)
            reply_printf(r, "PREFIX %s get %llu hit %llu set %llu del %llu\r\n", p->name,
                         (unsigned long long)p->gets, (unsigned long long)p->hits,
                         (unsigned long long)p->sets, (unsigned long long)p->dels);
    pthread_mutex_unlock(&detail_lock);
}

void proto_detail_clear(void)
{
    pthread_mutex_lock(&detail_lock);
    for (unsigned i = 0; i < DETAIL_BUCKETS; i++) {
        struct prefix *p = buckets[i];
        while (p) {
            struct prefix *next = p->next;
            mem_free(p);
            p = next;
        }
        buckets[i] = NULL;
    }
    nprefixes = 0;
    pthread_mutex_unlock(&detail_lock);
}
