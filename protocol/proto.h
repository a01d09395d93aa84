/*
 * proto: memcached's text protocol (classic and meta commands) without sockets. The server
 * hands it the bytes a connection has read; it parses every complete command, executes it
 * against storage, and appends replies to the connection's struct reply.
 *
 * Each command goes through three separate steps: parse (fill a struct request; status OK,
 * NEED_MORE, TOO_BIG, INVALID), execute (call storage, get a typed result), compose (write the
 * reply text; every reply string lives in protocol/messages.h).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/reply.h"

struct proto_stats; /* per worker thread counters, protocol/stats.h */

/* Per-connection protocol state that survives between reads. */
struct proto_conn {
    struct proto_stats *stats; /* the worker thread's counters */
    uint64_t swallow;          /* bytes of a refused value still to discard */
    bool closing;              /* quit seen / fatal input: close once replies are sent */
    bool is_unix;              /* connection came in over the unix socket */
    uint8_t mode;              /* PROTO_MODE_*: decided by the connection's first byte */
    bool authenticated;        /* SASL (-S): a SASL_AUTH/STEP succeeded */
    bool sasl_started;         /* SASL_AUTH began an exchange that SASL_STEP may continue */
    void *sasl;                /* sasl_conn_t of this connection, made on its first SASL
                                  command; released by proto_conn_release() */
};

/* memcached negotiates per connection: a first byte of 0x80 selects the binary protocol
 * (protocol/binary.h), anything else the text protocol. Under -S only binary is served. */
enum { PROTO_MODE_UNKNOWN, PROTO_MODE_TEXT, PROTO_MODE_BINARY };

/* Releases what a connection's protocol state holds (its SASL context). The server calls it
 * when the connection closes; the struct may then be zeroed and reused. */
void proto_conn_release(struct proto_conn *pc);

/* -S: initialises Cyrus SASL as memcached does (prints the error and returns -1 on
 * failure). Called once before the workers start. */
int proto_sasl_setup(void);
void proto_sasl_teardown(void);

enum proto_action {
    PROTO_CONTINUE,   /* consumed what it could; read more when the buffer is used up */
    PROTO_YIELD,      /* request budget or output bound reached; call again later */
    PROTO_CLOSE,      /* close the connection after flushing the reply */
};

/*
 * Processes commands from buf[0..len). *consumed receives the number of bytes consumed. *need
 * (if the last command is incomplete) receives the bytes that command needs counted from
 * buf + *consumed (its line plus data block), so the server can grow its read buffer for large
 * values; 0 when unknown (a line without its newline: read more; a get/gets line may exceed
 * 2048 bytes, any other line that long without a newline returns PROTO_CLOSE).
 * A value too large for the cache is answered at once and swallowed as it arrives
 * (pc->swallow), so *need never exceeds item_size_max + line + 2.
 * At most max_reqs commands are executed; processing also stops early once r->pending exceeds
 * max_output (backpressure), returning PROTO_YIELD.
 */
enum proto_action proto_process(struct proto_conn *pc, struct reply *r, const char *buf,
                                size_t len, size_t *consumed, size_t *need, unsigned max_reqs,
                                size_t max_output);

/*
 * What the server owns and `stats` reports, as numbers: the protocol writes every STAT line
 * (memcached 1.6.18's names and order, protocol/stats.c); the server writes no protocol text.
 */
struct proto_server_stats {
    uint64_t max_connections, curr_connections, total_connections, rejected_connections,
        connection_structures, reserved_fds;
    /* memcached's response objects and read buffers, mapped to cached's per-connection
     * reply and read buffers (protocol/stats.c has the mapping). */
    uint64_t response_obj_oom, response_obj_count, response_obj_bytes;
    uint64_t read_buf_count, read_buf_bytes, read_buf_bytes_free, read_buf_oom;
    uint64_t idle_kicks, accepting_conns, listen_disabled_num, time_in_listen_disabled_us,
        threads, conn_yields;
    uint64_t lru_maintainer_juggles; /* cached's background maintenance steps */
    bool tls_enabled; /* -Z: the ssl_* counters below are printed */
    uint64_t ssl_new_sessions, ssl_handshake_errors, time_since_server_cert_refresh,
        ssl_full_handshakes, ssl_resumed_handshakes, ssl_handshake_timeouts;
    uint64_t log_worker_dropped, log_worker_written, log_watcher_skipped, log_watcher_sent,
        log_watchers;
};

/* One line group of `stats conns`: a listener (listen_addr NULL) or a client connection. */
struct proto_conn_info {
    int fd;
    const char *addr;        /* "tcp:127.0.0.1:11211", "unix:/path" */
    const char *listen_addr; /* the listener a client came in on; NULL for a listener */
    const char *state;       /* memcached's conn_* state name */
    uint32_t secs_since_last_cmd;
};

/*
 * Hooks the server provides for commands that reach outside the protocol. Any may be NULL
 * (unit tests): that part is skipped.
 */
struct proto_hooks {
    /* Fills the server's numbers for `stats`. */
    void (*server_stats)(struct proto_server_stats *out);
    /* Calls fn for every listener and connection, for `stats conns`. */
    void (*conns_each)(void (*fn)(void *arg, const struct proto_conn_info *c), void *arg);
    /* `shutdown` (only reached when enabled). */
    void (*shutdown)(void);
    /* Sums per-thread protocol counters into out (struct proto_stats). */
    void (*sum_stats)(struct proto_stats *out);
    /* `stats reset`: zero every thread's counters and the server's totals. */
    void (*reset_stats)(void);
    /* `refresh_certs`: true on success, else err holds the reply (with its "\r\n"). */
    bool (*refresh_certs)(char *err, size_t errlen);
};

void proto_setup(const struct proto_hooks *hooks);
void proto_teardown(void);
