/*
 * value: filling an item's value as its bytes arrive. See protocol/value.h.
 */
#include "protocol/value.h"

#include <assert.h>
#include <string.h>

#include "storage/storage.h"

void value_in_start(struct value_in *v, struct item *it, unsigned trailer_len)
{
    assert(v->it == NULL && trailer_len <= VALUE_TRAILER_MAX);
    v->it = it;
    v->dst = item_value(it);
    v->left = it->nbytes;
    v->trailer_len = (uint8_t)trailer_len;
    v->trailer_got = 0;
}

size_t value_in_feed(struct value_in *v, const char *buf, size_t len)
{
    size_t used = 0;
    if (v->it == NULL)
        return 0;
    if (v->left > 0) {
        size_t n = len < v->left ? len : v->left;
        memcpy(v->dst, buf, n);
        v->dst += n;
        v->left -= n;
        used = n;
    }
    while (v->left == 0 && v->trailer_got < v->trailer_len && used < len)
        v->trailer[v->trailer_got++] = buf[used++];
    return used;
}

size_t value_in_window(const struct value_in *v, char **dst)
{
    *dst = v->dst;
    return v->it != NULL ? v->left : 0;
}

void value_in_filled(struct value_in *v, size_t n)
{
    assert(v->it != NULL && n <= v->left);
    v->dst += n;
    v->left -= n;
}

bool value_in_trailer_is(const struct value_in *v, const char *s)
{
    return v->trailer_got == v->trailer_len && memcmp(v->trailer, s, v->trailer_len) == 0;
}

struct item *value_in_take(struct value_in *v)
{
    struct item *it = v->it;
    v->it = NULL;
    v->dst = NULL;
    v->left = 0;
    v->trailer_got = v->trailer_len = 0;
    return it;
}

void value_in_abort(struct value_in *v)
{
    struct item *it = value_in_take(v);
    if (it != NULL)
        item_put(it);
}
