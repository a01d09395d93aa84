/*
 * tls: the SSL_CTX (setup, refresh, ticket keys) and the per-connection wrappers conn.c calls.
 * See tls.h for the design. Must never block: every socket operation here is non-blocking and
 * a WANT_READ/WANT_WRITE goes back to the caller's event loop.
 *
 * Write path (tls_flush): OpenSSL makes one record per SSL_write, so pipelined replies (many
 * small iovecs) are first copied into a per-connection buffer of ssl_wbuf_size bytes and sent
 * as one record; an iovec of at least half that size (a large value) is handed to SSL_write
 * straight from the item. Bytes leave struct reply only once SSL_write took them, so the
 * items stay referenced, and a retry after WANT_WRITE passes the same leading bytes again
 * (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows the other address).
 *
 * Read path: read-ahead lets one read(2) bring several records; tls_pending tells conn.c when
 * decrypted bytes wait inside OpenSSL where epoll cannot see them (memcached 1.6.18 stalls
 * pipelined sets on exactly that).
 */
#include "server/tls.h"

#include <errno.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "config/config.h"
#include "protocol/reply.h"
#include "server/log.h"
#include "storage/clock.h"
#include "storage/mem.h"

#define SESSION_ID_CONTEXT "cached"
#define TLS_IOV_MAX 1024 /* reply_iov only points into the array: gather all that fits */

struct tls_conn {
    SSL *ssl;
    char *wbuf;          /* batching buffer, allocated at the first batched write */
    size_t wlen, woff;   /* wbuf[woff .. wlen) = the first unsent bytes of the reply */
    bool established;    /* handshake done */
    bool reneg;          /* the peer tried to renegotiate (we answered no_renegotiation) */
};

struct ticket_key {
    unsigned char name[16], aes[32], hmac[32];
};

static SSL_CTX *ctx_cur;                  /* guarded by ctx_lock */
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned ctx_gen;
static _Thread_local SSL_CTX *my_ctx;    /* this worker's reference */
static _Thread_local unsigned my_gen;
static size_t wbuf_cap;

static struct ticket_key keys[2];        /* [0] issues tickets, [1] still decrypts them */
static pthread_rwlock_t keys_lock = PTHREAD_RWLOCK_INITIALIZER;
static time_t keys_rotated;

static _Atomic uint64_t n_errors, n_new_sessions, n_full, n_resumed, n_timeouts;
static _Atomic rel_time_t refreshed_at;

bool tls_enabled(void)
{
    return ctx_cur != NULL;
}

/* ---- session tickets ---- */

static time_t mono_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static int new_key(struct ticket_key *k)
{
    return RAND_bytes(k->name, sizeof k->name) == 1 && RAND_bytes(k->aes, sizeof k->aes) == 1 &&
                   RAND_bytes(k->hmac, sizeof k->hmac) == 1
               ? 0
               : -1;
}

static int mac_init(EVP_MAC_CTX *hctx, unsigned char *hmac_key)
{
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, hmac_key, 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"sha256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/* OpenSSL's ticket callback: 1 use this key, 2 decrypted with the old key (issue a new
 * ticket), 0 unknown key (full handshake), -1 error. */
static int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                     EVP_MAC_CTX *hctx, int enc)
{
    (void)s;
    int rc = 0;
    pthread_rwlock_rdlock(&keys_lock);
    if (enc) {
        struct ticket_key *k = &keys[0];
        memcpy(name, k->name, sizeof k->name);
        if (RAND_bytes(iv, 16) == 1 &&
            EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 &&
            mac_init(hctx, k->hmac) == 0)
            rc = 1;
        else
            rc = -1;
    } else {
        for (int i = 0; i < 2; i++) {
            struct ticket_key *k = &keys[i];
            if (memcmp(name, k->name, sizeof k->name) != 0)
                continue;
            if (EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 &&
                mac_init(hctx, k->hmac) == 0)
                rc = i == 0 ? 1 : 2;
            else
                rc = -1;
            break;
        }
    }
    pthread_rwlock_unlock(&keys_lock);
    return rc;
}

void tls_tick(void)
{
    if (ctx_cur == NULL || mono_secs() - keys_rotated < TLS_TICKET_ROTATE_S)
        return;
    struct ticket_key k;
    if (new_key(&k) < 0)
        return; /* keep the current key; try again next tick */
    pthread_rwlock_wrlock(&keys_lock);
    keys[1] = keys[0];
    keys[0] = k;
    pthread_rwlock_unlock(&keys_lock);
    keys_rotated = mono_secs();
    log_info("TLS: session ticket key rotated");
}

/* ---- the context ---- */

static int new_session_cb(SSL *s, SSL_SESSION *sess)
{
    (void)s, (void)sess;
    atomic_fetch_add_explicit(&n_new_sessions, 1, memory_order_relaxed);
    return 0; /* we did not keep a reference */
}

/* A renegotiation attempt shows as our no_renegotiation alert (SSL_OP_NO_RENEGOTIATION). */
static void info_cb(const SSL *s, int where, int ret)
{
    if ((where & SSL_CB_WRITE_ALERT) && (ret & 0xff) == SSL_AD_NO_RENEGOTIATION) {
        struct tls_conn *t = SSL_get_app_data(s);
        if (t != NULL)
            t->reneg = true;
    }
}

/* The first queued OpenSSL error as memcached prints it (ERR_error_string_n). */
static void ssl_error_text(char *buf, size_t n)
{
    unsigned long e = ERR_get_error();
    buf[0] = '\0';
    if (e != 0)
        ERR_error_string_n(e, buf, n);
    ERR_clear_error();
}

static const char *path_or_null(const char *s)
{
    return s != NULL && *s != '\0' ? s : NULL;
}

/* memcached hands OpenSSL a NULL path and prints what fopen(NULL) left in the error queue
 * ("system library::Bad address"); the same entry, without the NULL fopen. */
static void missing_path(void)
{
    ERR_raise(ERR_LIB_SYS, EFAULT);
}

/* The certificate, key and CA files, checked, in memcached's order and words. */
static int load_certs(SSL_CTX *ctx, const struct cfg *c, char *err, size_t n)
{
    char why[256];
    const char *chain = path_or_null(c->ssl_chain_cert), *key = path_or_null(c->ssl_key),
               *ca = path_or_null(c->ssl_ca_cert);
    ERR_clear_error();
    if (chain == NULL || !SSL_CTX_use_certificate_chain_file(ctx, chain)) {
        if (chain == NULL)
            missing_path();
        ssl_error_text(why, sizeof why);
        snprintf(err, n, "Error loading the certificate chain: %s : %s", chain ? chain : "(null)",
                 why);
    } else if (key == NULL || !SSL_CTX_use_PrivateKey_file(ctx, key, (int)c->ssl_keyformat)) {
        if (key == NULL)
            missing_path();
        ssl_error_text(why, sizeof why);
        snprintf(err, n, "Error loading the key: %s : %s", key ? key : "(null)", why);
    } else if (!SSL_CTX_check_private_key(ctx)) {
        ssl_error_text(why, sizeof why);
        snprintf(err, n, "Error validating the certificate: %s", why);
    } else if (ca != NULL && !SSL_CTX_load_verify_locations(ctx, ca, NULL)) {
        ssl_error_text(why, sizeof why);
        snprintf(err, n, "Error loading the CA certificate: %s : %s", ca, why);
    } else {
        if (ca != NULL)
            SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(ca));
        return 0;
    }
    return -1;
}

static SSL_CTX *build_ctx(const struct cfg *c, char *err, size_t n)
{
    static const int versions[] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION};
    static const int verify[] = {
        SSL_VERIFY_NONE, SSL_VERIFY_PEER, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
        SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE};
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, n, "Error creating the TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, versions[c->ssl_min_version & 3]);
    if (load_certs(ctx, c, err, n) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, verify[c->ssl_verify_mode & 3], NULL);
    if (c->ssl_ciphers[0] != '\0' && !SSL_CTX_set_cipher_list(ctx, c->ssl_ciphers)) {
        snprintf(err, n, "Error setting the provided cipher(s): %s", c->ssl_ciphers);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* Needed for resumption with client certificates, and by the session cache. */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)SESSION_ID_CONTEXT,
                                   sizeof SESSION_ID_CONTEXT - 1);
    if (c->ssl_session_cache) {
        SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    SSL_CTX_set_timeout(ctx, 2 * TLS_TICKET_ROTATE_S);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_num_tickets(ctx, 1); /* a reconnecting client needs one */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_info_callback(ctx, info_cb);
    return ctx;
}

int tls_setup(const struct cfg *c, char *err, size_t errlen)
{
    if (!c->ssl_enabled)
        return 0;
    wbuf_cap = (size_t)c->ssl_wbuf_size * 1024;
    if (new_key(&keys[0]) < 0 || new_key(&keys[1]) < 0) {
        snprintf(err, errlen, "Error creating TLS session ticket keys");
        return -1;
    }
    keys_rotated = mono_secs();
    SSL_CTX *ctx = build_ctx(c, err, errlen);
    if (ctx == NULL)
        return -1;
    ctx_cur = ctx;
    atomic_store(&refreshed_at, clock_now());
    atomic_fetch_add(&ctx_gen, 1);
    return 0;
}

void tls_teardown(void)
{
    tls_thread_release();
    pthread_mutex_lock(&ctx_lock);
    SSL_CTX_free(ctx_cur);
    ctx_cur = NULL;
    pthread_mutex_unlock(&ctx_lock);
}

bool tls_refresh(char *err, size_t errlen)
{
    if (ctx_cur == NULL) {
        snprintf(err, errlen, "Error TLS not enabled\r\n");
        return false;
    }
    char why[1024];
    SSL_CTX *ctx = build_ctx(&settings, why, sizeof why);
    if (ctx == NULL) {
        snprintf(err, errlen, "%s\r\n", why);
        return false;
    }
    pthread_mutex_lock(&ctx_lock);
    SSL_CTX *old = ctx_cur;
    ctx_cur = ctx;
    atomic_fetch_add(&ctx_gen, 1);
    pthread_mutex_unlock(&ctx_lock);
    SSL_CTX_free(old); /* connections and workers still using it hold references */
    atomic_store(&refreshed_at, clock_now());
    log_info("TLS: certificates reloaded");
    return true;
}

void tls_thread_release(void)
{
    if (my_ctx != NULL) {
        SSL_CTX_free(my_ctx);
        my_ctx = NULL;
        my_gen = 0;
    }
}

void tls_stats(struct tls_stats *out)
{
    rel_time_t now = clock_now(), at = atomic_load(&refreshed_at);
    out->handshake_errors = atomic_load_explicit(&n_errors, memory_order_relaxed);
    out->new_sessions = atomic_load_explicit(&n_new_sessions, memory_order_relaxed);
    out->full_handshakes = atomic_load_explicit(&n_full, memory_order_relaxed);
    out->resumed_handshakes = atomic_load_explicit(&n_resumed, memory_order_relaxed);
    out->handshake_timeouts = atomic_load_explicit(&n_timeouts, memory_order_relaxed);
    out->secs_since_refresh = now > at ? now - at : 0;
}

/* ---- connections ---- */

/*
 * The error queue. SSL_get_error reads the thread's queue, so it must hold nothing from
 * before the call it classifies. ERR_clear_error walks all 16 slots of the queue and frees
 * each (~2,200 instructions, profiled: 22% of a depth-1 get); ERR_peek_error only looks, but
 * still costs ~200 (OpenSSL's init check and thread-local lookup), twice per request. So the
 * data path (tls_read, write_some) never looks on success: a return > 0 needs no
 * classification. On failure it first asks the SSL object itself: SSL_want_read/write is
 * what SSL_get_error answers for a would-block when the queue is empty, and does not read
 * the queue (with the BIO's retry flag, as SSL_get_error tests it); only a real failure goes
 * to SSL_get_error. Every failure path leaves the queue
 * empty, so an error left by anything else on the thread can at worst change the log line of
 * a connection that is closing anyway.
 */
static inline void err_reset(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

static inline bool would_block(const struct tls_conn *t)
{
    /* SSL_get_error's own test, minus the queue: the record layer waits on a socket BIO
     * that asked to be retried (an EOF or ECONNRESET leaves the state "reading" but no
     * retry flag: those go to SSL_get_error). */
    BIO *b = SSL_want_read(t->ssl)    ? SSL_get_rbio(t->ssl)
             : SSL_want_write(t->ssl) ? SSL_get_wbio(t->ssl)
                                      : NULL;
    if (b == NULL || !BIO_should_retry(b))
        return false;
    err_reset(); /* normally empty already: only looks */
    return true;
}

struct tls_conn *tls_conn_new(int fd)
{
    unsigned gen = atomic_load_explicit(&ctx_gen, memory_order_acquire);
    if (my_ctx == NULL || my_gen != gen) {
        pthread_mutex_lock(&ctx_lock);
        tls_thread_release();
        if (ctx_cur != NULL && SSL_CTX_up_ref(ctx_cur) == 1) {
            my_ctx = ctx_cur;
            my_gen = atomic_load(&ctx_gen);
        }
        pthread_mutex_unlock(&ctx_lock);
        if (my_ctx == NULL)
            return NULL;
    }
    struct tls_conn *t = mem_calloc(1, sizeof *t);
    t->ssl = SSL_new(my_ctx);
    if (t->ssl == NULL || SSL_set_fd(t->ssl, fd) != 1) {
        ERR_clear_error();
        SSL_free(t->ssl);
        mem_free(t);
        return NULL;
    }
    SSL_set_app_data(t->ssl, t);
    SSL_set_accept_state(t->ssl);
    return t;
}

void tls_conn_free(struct tls_conn *t, bool clean)
{
    if (t == NULL)
        return;
    if (clean && t->established)
        SSL_shutdown(t->ssl); /* one non-blocking try at close_notify */
    err_reset();
    SSL_free(t->ssl);
    mem_free(t->wbuf);
    mem_free(t);
}

void tls_count_timeout(void)
{
    atomic_fetch_add_explicit(&n_timeouts, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&n_errors, 1, memory_order_relaxed);
}


/* Why an operation failed, for the one log line. */
static const char *fail_reason(int ssl_err, char *buf, size_t n)
{
    unsigned long e = ERR_peek_error();
    if (e != 0) {
        const char *r = ERR_reason_error_string(e);
        snprintf(buf, n, "%s", r != NULL ? r : "TLS error");
    } else if (ssl_err == SSL_ERROR_SYSCALL) {
        snprintf(buf, n, "%s", errno != 0 ? strerror(errno) : "connection closed by peer");
    } else {
        snprintf(buf, n, "TLS error %d", ssl_err);
    }
    ERR_clear_error();
    return buf;
}

enum tls_status tls_handshake(struct tls_conn *t, const char *peer)
{
    err_reset();
    errno = 0;
    int rc = SSL_accept(t->ssl);
    if (rc == 1) {
        t->established = true;
        atomic_fetch_add_explicit(SSL_session_reused(t->ssl) ? &n_resumed : &n_full, 1,
                                  memory_order_relaxed);
        return TLS_DONE;
    }
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ)
        return TLS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return TLS_WANT_WRITE;
    char why[160];
    atomic_fetch_add_explicit(&n_errors, 1, memory_order_relaxed);
    log_info("TLS handshake with %s failed: %s", peer, fail_reason(e, why, sizeof why));
    return TLS_FAIL;
}

ssize_t tls_read(struct tls_conn *t, void *buf, size_t len, const char *peer)
{
    errno = 0;
    int n = SSL_read(t->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (t->reneg) {
        log_info("TLS renegotiation attempt from %s; closing", peer);
        errno = EPROTO;
        return -1;
    }
    if (n > 0)
        return n;
    if (would_block(t)) {
        errno = EAGAIN;
        return -1;
    }
    int e = SSL_get_error(t->ssl, n);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0 && errno == 0)
            return 0;
        /* fall through */
    default: {
        char why[160];
        log_info("TLS error reading from %s: %s", peer, fail_reason(e, why, sizeof why));
        errno = EPROTO;
        return -1;
    }
    }
}

bool tls_bytes_in(const struct tls_conn *t)
{
    return BIO_number_read(SSL_get_rbio(t->ssl)) > 0;
}

bool tls_pending(const struct tls_conn *t)
{
    return SSL_has_pending(t->ssl) == 1;
}

/* One SSL_write; > 0 bytes taken, 0 would block, -1 error. */
static int write_some(struct tls_conn *t, const void *buf, size_t len)
{
    int n = SSL_write(t->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0)
        return n;
    if (would_block(t))
        return 0;
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
        return 0;
    ERR_clear_error();
    return -1;
}

size_t tls_batch_bytes(void)
{
    return wbuf_cap;
}

/* Copies the reply's leading small iovecs into wbuf (at least the first one). */
static void batch(struct tls_conn *t, struct iovec *iov, size_t n, size_t direct_min)
{
    if (t->wbuf == NULL)
        t->wbuf = mem_alloc(wbuf_cap);
    t->wlen = t->woff = 0;
    for (size_t i = 0; i < n; i++) {
        if (iov[i].iov_len >= direct_min || iov[i].iov_len > wbuf_cap - t->wlen)
            break;
        memcpy(t->wbuf + t->wlen, iov[i].iov_base, iov[i].iov_len);
        t->wlen += iov[i].iov_len;
    }
}

int tls_flush(struct tls_conn *t, struct reply *r, size_t *written)
{
    size_t direct_min = wbuf_cap / 2;
    for (;;) {
        if (t->woff < t->wlen) {
            int n = write_some(t, t->wbuf + t->woff, t->wlen - t->woff);
            if (n <= 0)
                return n;
            t->woff += (size_t)n;
            reply_consumed(r, (size_t)n);
            *written += (size_t)n;
            continue;
        }
        t->woff = t->wlen = 0;
        if (reply_empty(r))
            return 1;
        struct iovec *iov;
        size_t niov = reply_iov(r, &iov, TLS_IOV_MAX);
        if (niov == 1 || iov[0].iov_len >= direct_min) {
            /* One piece (the usual depth-1 reply), or a large value: no copy. */
            int n = write_some(t, iov[0].iov_base, iov[0].iov_len);
            if (n <= 0)
                return n;
            reply_consumed(r, (size_t)n);
            *written += (size_t)n;
            continue;
        }
        batch(t, iov, niov, direct_min);
    }
}
