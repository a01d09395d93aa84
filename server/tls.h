/*
 * Private to server/: no file outside server/ includes it.
 * tls: TLS for TCP connections (memcached's -Z), OpenSSL 3. conn.c calls a few wrappers —
 * handshake, read, flush a struct reply — and never sees OpenSSL; the protocol never sees TLS.
 *
 * One SSL_CTX serves every connection. refresh_certs and SIGHUP build a new one from the same
 * files and swap it in only if it loads, so a bad refresh keeps serving the old pair (memcached
 * instead fails every later handshake). Established connections keep the context they started
 * with (OpenSSL counts references); threads pick up a new one at their next accept through a
 * generation number, so the hot path takes no lock.
 *
 * Handshakes run non-blocking on the handshake threads (one per worker, server/worker.h),
 * driven by their event loops; they also accept on the TLS listeners' per-worker sockets (the
 * listener thread accepts on shared ones and hands the fd over), and the worker that then owns
 * the established connection only reads and writes records. An SSL object is used by
 * one thread at a time; the hand-over queue's mutex orders the two. Resumption is on by default: session tickets
 * encrypted with keys shared by all workers and rotated every TLS_TICKET_ROTATE_S (a ticket
 * stays valid for two periods and survives a certificate refresh), plus a server-side session
 * cache (ssl_session_cache, on by default here, off in memcached) for TLS 1.2 clients that
 * resume by session id.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cfg;
struct reply;
struct tls_conn;

#define TLS_HANDSHAKE_TIMEOUT_S 5 /* a handshake not done by then is closed (reset) */
#define TLS_TICKET_ROTATE_S 3600

enum tls_status { TLS_DONE, TLS_WANT_READ, TLS_WANT_WRITE, TLS_FAIL };

/* Builds the context from c's ssl_* settings. On failure err holds memcached's message (one
 * line, no newline) and the caller exits 64. No-op returning 0 when c->ssl_enabled is off. */
int tls_setup(const struct cfg *c, char *err, size_t errlen);
void tls_teardown(void);
bool tls_enabled(void);
/* Reloads the certificate, key and CA files. true on success; else err holds memcached's
 * reply text ("Error loading the certificate chain: <path> : <openssl error>\r\n") and the
 * old context stays in use. Without -Z: "Error TLS not enabled\r\n". Any thread. */
bool tls_refresh(char *err, size_t errlen);
/* Listener thread, once a second: ticket key rotation. */
void tls_tick(void);
/* Worker thread exit: drops its reference to the context. */
void tls_thread_release(void);

/* `stats` lines (memcached's ssl_* fields, then cached's handshake counters). */
struct tls_stats {
    uint64_t handshake_errors, new_sessions, full_handshakes, resumed_handshakes,
        handshake_timeouts;
    uint64_t secs_since_refresh;
};
void tls_stats(struct tls_stats *out);
/* A handshake closed by TLS_HANDSHAKE_TIMEOUT_S (also counted as a handshake error). */
void tls_count_timeout(void);

/* Per connection (owner thread only). NULL when out of memory. */
struct tls_conn *tls_conn_new(int fd);
/* clean: the handshake finished, so a close_notify is sent (best effort, never blocks). */
void tls_conn_free(struct tls_conn *t, bool clean);
/* One step of the server handshake; on TLS_FAIL one line was logged at -v (peer names it). */
enum tls_status tls_handshake(struct tls_conn *t, const char *peer);
/* Like read(2): > 0 bytes, 0 at the peer's close, -1 with errno (EAGAIN: try on readiness). */
ssize_t tls_read(struct tls_conn *t, void *buf, size_t len, const char *peer);
/* The peer has sent bytes (handshake started), for `stats conns`. */
bool tls_bytes_in(const struct tls_conn *t);
/* Decrypted bytes already buffered (epoll cannot see them). */
bool tls_pending(const struct tls_conn *t);
/* Reply bytes worth gathering into one record before writing (ssl_wbuf_size). */
size_t tls_batch_bytes(void);
/* Writes queued replies: small pieces batched into one record (up to ssl_wbuf_size), large
 * values straight from the item. Adds plaintext bytes sent to *written. Returns 1 all sent,
 * 0 socket full, -1 error. */
int tls_flush(struct tls_conn *t, struct reply *r, size_t *written);
