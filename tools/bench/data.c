/*
 * data: keys and values derived from a key index.
 *
 * A value of key i is the first len bytes at offset(i) of one pattern buffer, and its flags
 * are a hash of i. So any reply can be checked against the key it names: a value of another
 * key, a truncated or shifted value, or wrong flags are all caught, and writing a value is a
 * memcpy. The pattern comes from a fixed seed, so separate runs (a --preload, then a load)
 * agree on every value.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#define DATA_SPAN 65536u /* distinct value offsets */

static char *pattern;

static uint64_t mix64(uint64_t x)
{
    /* splitmix64's finaliser */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

bool data_setup(void)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = (size_t)DATA_SPAN + DATA_VALUE_MAX;
    pattern = malloc(n);
    if (!pattern)
        return false;
    uint64_t s = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < n; i++) {
        s = mix64(s);
        pattern[i] = alphabet[s & 63];
    }
    return true;
}

void data_teardown(void)
{
    free(pattern);
    pattern = NULL;
}

uint32_t data_key_size_min(uint64_t keyspace)
{
    uint32_t digits = 1;
    for (uint64_t top = keyspace ? keyspace - 1 : 0; top >= 10; top /= 10)
        digits++;
    return digits + 1;
}

void data_key(char *out, uint32_t key_size, uint64_t i)
{
    char *p = out + key_size;
    out[0] = 'k';
    while (p > out + 1) {
        *--p = (char)('0' + i % 10);
        i /= 10;
    }
}

bool data_key_parse(const char *key, size_t len, uint32_t key_size, uint64_t *i)
{
    if (len != key_size || key[0] != 'k')
        return false;
    uint64_t v = 0;
    for (size_t j = 1; j < len; j++) {
        unsigned d = (unsigned)(key[j] - '0');
        if (d > 9)
            return false;
        v = v * 10 + d; /* keys are at most 20 significant digits: checked by main */
    }
    *i = v;
    return true;
}

const char *data_value(uint64_t i)
{
    return pattern + (mix64(i) & (DATA_SPAN - 1));
}

uint32_t data_flags(uint64_t i)
{
    return (uint32_t)(mix64(i ^ 0x5bd1e995u) >> 32);
}
