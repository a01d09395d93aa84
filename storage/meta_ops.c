/*
 * meta_ops: the storage side of the meta commands (storage/meta_ops.h). Each function hashes the
 * key, takes its shard lock and does the whole operation with the do_* primitives of
 * storage/internal.h, so a win token, a stale mark or a CAS check can never interleave with
 * another client's request for the same key. Never includes protocol headers.
 */
#include "storage/meta_ops.h"

#include <stdio.h>

#include "storage/internal.h"

/* Marks a hit as used: memcached's bump (fetched, CLOCK bit, last access). */
static void bump(struct item *it)
{
    item_bump(it);
}

static bool refs_saturated(struct shard *sh, struct item *it)
{
    if (atomic_load_explicit(&it->refcount, memory_order_relaxed) < ITEM_REFCOUNT_LIMIT)
        return false;
    sh->st.ref_saturated++;
    return true;
}

enum st_result storage_meta_get_hv(const char *key, size_t nkey, uint64_t hv,
                                   const struct meta_get_args *a, struct meta_get_result *res)
{
    ST_ASSERT(hv == storage_hash(key, nkey));
    memset(res, 0, sizeof(*res));
    struct shard *sh = shard_of(hv);
    shard_lock(sh);
    struct item *it = do_item_find(sh, key, nkey, hv);
    if (it && refs_saturated(sh, it)) {
        shard_unlock(sh);
        return ST_REF_SATURATED;
    }
    if (!it && a->vivify) {
        /* An empty placeholder whose first reader wins the right to fill it. */
        enum st_result r;
        it = item_alloc_hv(key, nkey, hv, 0, 0, 0, &r);
        if (it) {
            do_item_link(sh, it, hv);
            item_put(it); /* the table's reference keeps it; ours is taken below */
            res->created = true;
        }
    }
    if (!it) {
        shard_unlock(sh);
        return ST_NOT_FOUND;
    }
    item_ref(it);
    uint8_t fl = item_iflags(it);
    res->it = it;
    res->fetched = fl & ITEM_FETCHED;
    res->atime = it->atime;
    res->exptime = it->exptime;

    /* The flags take effect in the order memcached walks them: T and N set the TTL, R
     * compares against the TTL as it is at that point. */
    bool won = false;
    for (unsigned i = 0; i < a->nsteps && i < 3; i++) {
        switch ((enum meta_get_step)a->steps[i]) {
        case META_STEP_VIVIFY_TTL:
            if (res->created) {
                it->exptime = a->vivify_exptime;
                won = true;
            }
            break;
        case META_STEP_TTL: it->exptime = a->ttl; break;
        case META_STEP_RECACHE:
            if (!(fl & ITEM_TOKEN) && !res->created && it->exptime != 0 &&
                it->exptime < a->recache_time)
                won = true;
            break;
        }
    }

    if (a->aborted) {
        /* memcached bumps before reading unless it had to lock for h l T N R */
        if (!a->locked && !a->no_update)
            bump(it);
        shard_unlock(sh);
        return ST_OK;
    }
    res->token_sent = fl & ITEM_TOKEN;
    res->stale = fl & ITEM_STALE;
    if (res->stale && !res->token_sent)
        won = true; /* the first reader of a stale item recaches it */
    if (won)
        item_flag_set(it, ITEM_TOKEN);
    res->won = won;
    res->cas = item_cas(it);
    if (!a->no_update)
        bump(it);
    shard_unlock(sh);
    return ST_OK;
}

enum st_result storage_meta_store_hv(struct item *it, uint64_t hv, enum store_op op, bool has_cas,
                                     uint64_t cas, bool set_stale, bool key_binary,
                                     uint64_t *cas_out)
{
    ST_ASSERT(hv == storage_hash(item_key(it), it->nkey));
    if (!has_cas && (op == OP_APPEND || op == OP_PREPEND))
        cas = 0; /* append/prepend compare a CAS only when one was given */
    struct shard *sh = shard_of(hv);
    *cas_out = 0;
    if (key_binary)
        item_flag_set(it, ITEM_KEY_BINARY);
    shard_lock(sh);
    enum st_result res = do_item_store(sh, it, hv, op, cas, true, set_stale, cas_out);
    shard_unlock(sh);
    return res;
}

enum st_result storage_meta_delete(const char *key, size_t nkey, bool has_cas, uint64_t cas,
                                   bool stale, bool set_ttl, rel_time_t ttl)
{
    uint64_t hv = storage_hash(key, nkey);
    struct shard *sh = shard_of(hv);
    enum st_result res = ST_OK;
    shard_lock(sh);
    struct item *it = do_item_find(sh, key, nkey, hv);
    if (!it) {
        res = ST_NOT_FOUND;
    } else if (has_cas && item_cas(it) != cas) {
        res = ST_EXISTS;
    } else if (stale) {
        /* Invalidate instead of delete: readers get X and the next one a fresh W. */
        if (set_ttl)
            it->exptime = ttl;
        item_flag_set(it, ITEM_STALE);
        item_flag_clear(it, ITEM_TOKEN);
        if (stg.cfg.use_cas)
            item_set_cas(it, storage_next_cas());
    } else {
        tl_last_class = storage_item_class(it);
        do_item_unlink(sh, it, hv);
    }
    shard_unlock(sh);
    return res;
}

/* A new linked item holding the decimal digits of v (ma N on a miss), unreferenced: valid
 * while the lock is held. */
static struct item *do_link_number(struct shard *sh, const char *key, size_t nkey, uint64_t v,
                                   uint64_t hv, enum st_result *res)
{
    ST_ASSERT(shard_held(sh));
    char buf[24];
    int len = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    struct item *nit = item_alloc(key, nkey, 0, 0, (uint32_t)len, res);
    if (nit) {
        memcpy(item_value(nit), buf, (size_t)len);
        do_item_link(sh, nit, hv);
        item_put(nit); /* the table's reference keeps it while the lock is held */
    }
    return nit;
}

enum st_result storage_meta_arith(const char *key, size_t nkey, const struct meta_arith_args *a,
                                  struct meta_arith_result *res)
{
    memset(res, 0, sizeof(*res));
    uint64_t hv = storage_hash(key, nkey);
    struct shard *sh = shard_of(hv);
    enum st_result r = ST_OK;
    shard_lock(sh);
    struct item *it = do_item_find(sh, key, nkey, hv);
    struct item *nit = NULL;
    if (!it) {
        if (!a->vivify) {
            r = ST_NOT_FOUND;
        } else {
            nit = do_link_number(sh, key, nkey, a->initial, hv, &r);
            if (!nit) {
                r = ST_NOT_STORED;
            } else {
                r = ST_OK;
                res->created = true;
                res->value = a->initial;
                res->exptime = 0;
                nit->exptime = a->vivify_exptime;
            }
        }
    } else if (it->nbytes == 0) {
        r = ST_NON_NUMERIC; /* checked before the CAS, as memcached does */
    } else if (a->cas != 0 && item_cas(it) != a->cas) {
        r = ST_EXISTS;
    } else {
        res->exptime = it->exptime;
        tl_last_class = storage_item_class(it);
        nit = do_item_arith(sh, it, a->incr, a->delta, hv, &res->value, &r);
    }
    if (nit) {
        if (a->set_ttl && !(res->created && a->vivify_last))
            nit->exptime = a->ttl;
        if (a->key_binary)
            item_flag_set(nit, ITEM_KEY_BINARY);
        res->cas = item_cas(nit);
    }
    shard_unlock(sh);
    return r;
}

struct item *storage_meta_peek(const char *key, size_t nkey, struct meta_peek *out)
{
    uint64_t hv = storage_hash(key, nkey);
    struct shard *sh = shard_of(hv);
    shard_lock(sh);
    struct item *it = do_item_find(sh, key, nkey, hv);
    if (it && refs_saturated(sh, it))
        it = NULL;
    if (it) {
        item_ref(it);
        out->exptime = it->exptime;
        out->atime = it->atime;
        out->cas = item_cas(it);
        out->iflags = item_iflags(it);
        out->cls = (unsigned)stg.pmeta[item_page(it)].cls + 1;
    }
    shard_unlock(sh);
    return it;
}
