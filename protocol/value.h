/*
 * value: a value read straight into its item (memcached's conn_nread, Pelikan's
 * item_backfill). A storage command allocates its item as soon as its header is parsed (the
 * item counts against -m and evicts like any store), then hands it here; the value's bytes are
 * copied into the item as they arrive, over as many reads as it takes, so no read buffer ever
 * grows to a value's size. The text protocol expects "\r\n" after the value (trailer_len 2);
 * the binary protocol has no trailer (0).
 *
 * Socket-free: the caller feeds bytes it has (value_in_feed), or lets the server read straight
 * into the item (value_in_window / value_in_filled). When value_in_complete(), the caller
 * takes the item (value_in_take) and stores it. A connection that goes away mid-value calls
 * value_in_abort, which releases the item.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct item;

#define VALUE_TRAILER_MAX 2

struct value_in {
    struct item *it;      /* the unlinked item being filled (one reference), or NULL */
    char *dst;            /* next byte of the value to fill */
    size_t left;          /* value bytes still to arrive */
    uint8_t trailer_len;  /* bytes expected after the value */
    uint8_t trailer_got;
    char trailer[VALUE_TRAILER_MAX];
};

/* Starts filling it's whole value (it->nbytes bytes), then trailer_len bytes of trailer.
 * Takes over the caller's reference to it. */
void value_in_start(struct value_in *v, struct item *it, unsigned trailer_len);

/* Copies what the value (then the trailer) still needs from buf[0..len); returns the bytes
 * used. */
size_t value_in_feed(struct value_in *v, const char *buf, size_t len);

/* Zero-copy fill: where the next value bytes go and how many are still missing (0 once only
 * the trailer is left, or when idle); value_in_filled(v, n) after writing n <= that there. */
size_t value_in_window(const struct value_in *v, char **dst);
void value_in_filled(struct value_in *v, size_t n);

static inline bool value_in_active(const struct value_in *v)
{
    return v->it != NULL;
}

static inline bool value_in_complete(const struct value_in *v)
{
    return v->it != NULL && v->left == 0 && v->trailer_got == v->trailer_len;
}

/* Whether the trailer that arrived is exactly s (trailer_len bytes). */
bool value_in_trailer_is(const struct value_in *v, const char *s);

/* Ends the fill and hands the item (and its reference) to the caller. */
struct item *value_in_take(struct value_in *v);

/* Ends the fill and releases the item (client gone, or the command failed). Idle: no-op. */
void value_in_abort(struct value_in *v);
