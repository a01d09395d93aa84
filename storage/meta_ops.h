/*
 * storage/meta_ops: the keyed operations behind memcached's meta commands (mg ms md ma me), each
 * done under its key's shard lock in one step so win/stale tokens, CAS checks and TTL changes
 * are atomic, exactly as memcached does them under its item lock. Implemented in
 * storage/meta_ops.c with the do_* primitives of storage/internal.h. Knows no protocol text:
 * the caller gets typed results and composes the reply.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"

/* iflags bit: the key arrived base64-encoded (meta `b`); meta replies print it encoded again.
 * Bit 7 of item->iflags, unused by storage/item.h's ITEM_* bits. */
#define ITEM_KEY_BINARY (1 << 7)

/* ---- mg ---- */

enum meta_get_step {
    META_STEP_VIVIFY_TTL, /* a created item gets vivify_exptime (and wins) */
    META_STEP_TTL,        /* exptime = ttl */
    META_STEP_RECACHE,    /* win when exptime (as it is then) is below recache_time */
};

struct meta_get_args {
    bool no_update;          /* u: leave fetched/atime as they are */
    bool locked;             /* h l T N R given: memcached bumps after reading, under lock */
    bool vivify;             /* N: create an empty item on a miss */
    /* What acts on the item, in the order it is to happen (memcached applies N, T and R in
     * the order the client wrote them): steps[0 .. nsteps). */
    uint8_t steps[3];        /* enum meta_get_step, each at most once */
    uint8_t nsteps;
    rel_time_t vivify_exptime, ttl, recache_time;
    bool aborted;            /* the reply will be an error: no tokens, no locked bump */
};

struct meta_get_result {
    struct item *it;          /* referenced (caller item_put()s it), NULL on a miss */
    bool created;             /* N made it just now */
    bool won;                 /* W: this client should recache */
    bool token_sent;          /* Z: a win token was already handed out */
    bool stale;               /* X: invalidated by md I / ms I */
    bool fetched;             /* h: fetched before this request */
    rel_time_t atime;         /* last access before this request (l) */
    rel_time_t exptime;       /* exptime before T/N of this request (t shows it in order) */
    uint64_t cas;             /* read under the lock: md I changes it in place */
};

/* ST_OK (res->it set), ST_NOT_FOUND, or ST_REF_SATURATED when the item's reference count
 * is full (memcached: "refcount overflow during fetch"). */
enum st_result storage_meta_get_hv(const char *key, size_t nkey, uint64_t hv,
                                   const struct meta_get_args *a, struct meta_get_result *res);

/* ---- ms ---- */

/*
 * Stores it by op (OP_SET ADD REPLACE APPEND PREPEND CAS), memcached's do_store_item rules
 * for meta: OP_CAS compares cas (0 never matches a live item); with set_stale a CAS older
 * than the item's still stores, keeping the old exptime and marking the new item stale
 * (and keeping a token already handed out). Append/prepend with has_cas && cas != 0 refuse
 * a mismatch with ST_EXISTS. key_binary marks the stored item's key as base64-given.
 * *cas_out gets the new CAS on ST_OK. hv is the key's hash (storage_key_hash), taken once for
 * item_alloc_hv and this store, as the classic set does.
 */
enum st_result storage_meta_store_hv(struct item *it, uint64_t hv, enum store_op op, bool has_cas,
                                     uint64_t cas, bool set_stale, bool key_binary,
                                     uint64_t *cas_out);

/* ---- md ---- */

/* Deletes, or with stale marks the item stale (new CAS, token cleared, exptime = ttl when
 * set_ttl). has_cas: only when the CAS matches (else ST_EXISTS). ST_OK, ST_NOT_FOUND. */
enum st_result storage_meta_delete(const char *key, size_t nkey, bool has_cas, uint64_t cas,
                                   bool stale, bool set_ttl, rel_time_t ttl);

/* ---- ma ---- */

struct meta_arith_args {
    bool incr;
    uint64_t delta;
    uint64_t cas;            /* 0: no check */
    bool vivify;             /* N: create with `initial` on a miss */
    uint64_t initial;
    rel_time_t vivify_exptime;
    bool set_ttl;            /* T */
    rel_time_t ttl;
    bool key_binary;
    bool vivify_last;        /* N came after T: a created item keeps vivify_exptime */
};

struct meta_arith_result {
    uint64_t value;
    uint64_t cas;
    rel_time_t exptime;      /* the item's exptime before T/N of this request */
    bool created;
};

/* ST_OK, ST_NOT_FOUND, ST_NON_NUMERIC, ST_EXISTS (CAS mismatch), ST_NO_MEMORY (new value
 * could not be allocated), ST_NOT_STORED (vivify could not allocate). */
enum st_result storage_meta_arith(const char *key, size_t nkey, const struct meta_arith_args *a,
                                  struct meta_arith_result *res);

/* ---- me ---- */

/* What `me` shows of an item, read under its shard lock. */
struct meta_peek {
    rel_time_t exptime, atime;
    uint64_t cas;
    uint8_t iflags;
    unsigned cls;    /* slab class id (memcached numbers them from 1) */
};

/* The live item for key, referenced, without marking it fetched or touching its atime; NULL
 * on a miss. */
struct item *storage_meta_peek(const char *key, size_t nkey, struct meta_peek *out);
