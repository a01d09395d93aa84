/*
 * auth: the -Y user file and the constant-time check. The login exchange itself is
 * proto_auth() in proto.c, next to the parser it shares.
 */
#include "protocol/auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define AUTH_LINE_MAX 256 /* memcached's MAX_ENTRY_LEN: fgets reads 255 bytes at most */

struct auth_entry {
    char *user, *pass;
    size_t ulen, plen;
};

struct auth_db {
    char *data;
    struct auth_entry e[AUTH_MAX_ENTRIES];
    int n;
};

static struct auth_db db;
static pthread_mutex_t db_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic bool enabled;

/*
 * memcached's reading, step for step: fgets into one buffer of the file's size + 1, with
 * each next line written over the previous line's terminator; the limit passed to fgets is
 * what is left of that buffer, so a single line without '\n' loses its last byte.
 */
static int parse(FILE *f, size_t size, struct auth_db *out)
{
    char *data = calloc(1, size + 1);
    if (data == NULL)
        return -1;
    char *cur = data, *end = data + size;
    int used = 0;
    while (end - cur > 1) {
        int lim = end - cur < AUTH_LINE_MAX ? (int)(end - cur) : AUTH_LINE_MAX;
        if (fgets(cur, lim, f) == NULL)
            break;
        struct auth_entry *e = &out->e[used];
        size_t x, avail = (size_t)(data + size + 1 - cur);
        bool found = false;
        for (x = 0; x < AUTH_LINE_MAX && x < avail; x++) {
            if (!found) {
                if (cur[x] == '\0')
                    break;
                if (cur[x] == ':') {
                    e->user = cur;
                    e->ulen = x;
                    e->pass = cur + x + 1;
                    found = true;
                }
            } else if (cur[x] == '\n' || cur[x] == '\r' || cur[x] == '\0') {
                break;
            }
        }
        if (!found) {
            free(data);
            return -2;
        }
        if (x >= avail)
            x = avail - 1;
        e->plen = x - (e->ulen + 1);
        if (++used == AUTH_MAX_ENTRIES || cur[x] == '\0')
            break;
        cur += x;
    }
    out->data = data;
    out->n = used;
    return 0;
}

int auth_load(const char *path, char *err, size_t errlen)
{
    struct auth_db fresh = {0};
    struct stat sb;
    FILE *f = fopen(path, "r");
    if (f == NULL || fstat(fileno(f), &sb) != 0) {
        int e = errno;
        snprintf(err, errlen, "Could not open authfile [%s] for reading, error %s: %s", path,
                 strerror(e), strerror(e));
        if (f != NULL)
            fclose(f);
        return -1;
    }
    int rc = parse(f, (size_t)sb.st_size, &fresh);
    fclose(f);
    if (rc == -1) {
        snprintf(err, errlen, "Out of memory reading password file: %s", path);
        return -1;
    }
    if (rc == -2) {
        snprintf(err, errlen, "Authfile [%s] has a malformed entry. Should be 'user:password'",
                 path);
        return -1;
    }
    pthread_mutex_lock(&db_lock);
    char *old = db.data;
    db = fresh;
    pthread_mutex_unlock(&db_lock);
    free(old);
    atomic_store(&enabled, true);
    return 0;
}

bool auth_enabled(void)
{
    return atomic_load_explicit(&enabled, memory_order_relaxed);
}

/* Equal-length compare whose time does not depend on where the bytes differ. */
static bool same_bytes(const char *a, const char *b, size_t n)
{
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)b[i];
    return diff == 0;
}

bool auth_check(const char *user, size_t ulen, const char *pass, size_t plen)
{
    bool ok = false;
    pthread_mutex_lock(&db_lock);
    for (int i = 0; i < db.n; i++) {
        const struct auth_entry *e = &db.e[i];
        /* Every entry is compared (no early exit); lengths are not secret (memcached too). */
        bool m = ulen == e->ulen && plen == e->plen && plen > 0;
        m = (m & same_bytes(user, e->user, m ? ulen : 0)) & same_bytes(pass, e->pass, m ? plen : 0);
        ok |= m;
    }
    pthread_mutex_unlock(&db_lock);
    return ok;
}

void auth_teardown(void)
{
    pthread_mutex_lock(&db_lock);
    free(db.data);
    memset(&db, 0, sizeof db);
    pthread_mutex_unlock(&db_lock);
    atomic_store(&enabled, false);
}
