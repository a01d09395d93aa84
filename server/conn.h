/*
 * Private to server/: no file outside server/ includes it.
 * conn: one client connection, owned by one worker thread for its whole life. Reads into a
 * fixed 16 KB buffer (values straight into their item), hands the bytes to proto_process, writes the struct reply with sendmsg
 * (an iovec list, values by reference), and applies backpressure and fairness.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/proto.h"
#include "protocol/reply.h"
#include "storage/clock.h"

struct worker;
struct event;
struct tls_conn;
struct sockaddr_storage;

/* What `stats conns` shows (memcached's state names). */
enum conn_state { CONN_READ, CONN_PARSE, CONN_WRITE, CONN_CLOSING, CONN_NREAD, CONN_HANDSHAKE,
                  CONN_HANDSHAKE_READ };

#define CONN_ADDR_MAX 128 /* LISTEN_NAME_MAX: a unix peer is named by its listener */

struct conn {
    struct conn *next, *prev; /* worker's live list, or its free list (next only) */
    struct worker *w;
    int fd;
    unsigned listener;        /* index into listeners[] */
    struct event *ev;
    short ev_flags;           /* EV_READ/EV_WRITE currently armed */

    char *rbuf;               /* unparsed bytes are rbuf[rstart .. rend) */
    size_t rsize, rstart, rend;
    size_t need;              /* don't parse again until rend - rstart reaches this */

    struct reply reply;
    struct proto_conn pc;

    _Atomic rel_time_t last_active; /* last read that brought bytes */
    _Atomic int state;
    bool closing;             /* close once the reply is sent */
    bool draining;            /* no more reads: run what is buffered, then closing */
    bool drained;             /* this callback's last read found the socket empty */
    bool in_value;            /* waiting for the rest of a value (stats conns: conn_nread) */
    bool big_values;          /* the last value was read straight into its item: the next
                                 read takes only a command's head (conn.c, CONN_HEAD_READ) */
    bool head_capped;         /* the last buffered read was so capped */
    bool fresh;               /* nothing read yet (a TLS hello on a plaintext port) */
    struct tls_conn *tls;     /* NULL: plaintext (server/tls.h) */
    bool handshaking;         /* TLS handshake not done yet */
    rel_time_t opened;        /* for the handshake timeout */
    char addr[CONN_ADDR_MAX]; /* peer, "tcp:1.2.3.4:5678" */
    struct watcher *watcher;  /* `watch` ran: its registration (server/watch.h) */
};

/* Worker thread: takes over an accepted fd (counted in curr_connections already); peer is
 * the address accept returned (NULL: ask getpeername). */
void conn_open(struct worker *w, int fd, unsigned listener, const struct sockaddr_storage *peer);
/* Worker thread: takes over an established TLS connection from a handshaker (worker_handoff)
 * and runs it (the handshake may have brought a request already decrypted). */
void conn_adopt(struct worker *w, struct conn *c);
/* A handed-over connection no worker adopted (shutdown): closes and frees it. */
void conn_discard(struct conn *c);
/* Closes at once: the fd, the reply (item references dropped), the counters. */
void conn_close(struct conn *c);
/* Graceful shutdown: read what the client already sent, answer it, then close. */
void conn_drain(struct conn *c);
/* Idle-timeout check of one connection (owner thread); returns true if it was closed. */
bool conn_idle_check(struct conn *c, rel_time_t now, uint64_t idle_timeout);
/* Closes a connection whose TLS handshake is older than TLS_HANDSHAKE_TIMEOUT_S. */
bool conn_handshake_check(struct conn *c, rel_time_t now);
/* Runs the connection from its worker thread soon (a watcher has lines to send). */
void conn_wake(struct conn *c);
/* Frees a closed struct from a free list. */
void conn_free(struct conn *c);
/* Frees a closed struct's read buffer and reply memory (kept otherwise for its next use). */
void conn_drop_buffers(struct conn *c);

const char *conn_state_name(int state);
