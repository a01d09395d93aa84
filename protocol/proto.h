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
#include "protocol/request.h"
#include "protocol/value.h"

struct proto_stats; /* per worker thread counters, protocol/stats.h */

/* Which command a value being read belongs to (struct proto_store.kind). */
enum { PROTO_STORE_TEXT, PROTO_STORE_META, PROTO_STORE_BINARY, PROTO_STORE_BINARY_SASL };

/* A storage command whose value is being read into its item (pc->value): what to do with it
 * once complete. Filled by the text storage commands, ms, and the binary protocol's
 * set/add/replace/append/prepend (and SASL data, read into a scratch item as memcached does). */
struct proto_store {
    uint8_t kind;           /* PROTO_STORE_* */
    uint8_t op;             /* enum store_op */
    bool noreply;           /* classic noreply, or ms q */
    bool has_cas, set_stale, key_binary; /* ms C, I, b */
    uint64_t cas;           /* the CAS the client sent (classic cas, ms C) */
    uint64_t hv;            /* the key's hash (storage_key_hash), taken once (not SASL) */
    char ret[4];            /* ms return flags in the client's order ('O' 'k' 'c'), NUL-ended */
    uint8_t opaque_len;
    char opaque[32];        /* the ms O token, 'O' included (META_OPAQUE_MAX) */
    uint8_t bin_opcode;     /* binary: the request's opcode (echoed) ... */
    uint8_t bin_cmd;        /* ... the command it runs as (quiet mapped to loud) */
    uint32_t bin_opaque;    /* ... and its opaque, as sent */
};

/* A get/gets line longer than a read buffer, run key by key as its bytes arrive (memcached
 * keeps the whole line instead). The reply is held (proto_holding_reply) so that a bad key
 * can still drop the VALUEs before it, as memcached does, unless it grew past max_output. */
struct proto_mget {
    bool active;
    bool with_cas;          /* gets */
    bool skip;              /* a bad key or a NUL byte: ignore the rest of the line */
    bool bad;               /* a bad key was answered: no END */
    struct reply_mark mark; /* the reply before the line's first VALUE */
    uint64_t sent_at_mark;  /* r->sent then: the mark is usable only while unchanged */
};

/* Per-connection protocol state that survives between reads. */
struct proto_conn {
    struct proto_stats *stats; /* the worker thread's counters */
    uint64_t swallow;          /* bytes of a refused value still to discard */
    struct value_in value;     /* a storage command's value being read into its item */
    struct proto_store store;  /* ... and what to do with it then */
    struct proto_mget mget;    /* a long multi-get line in progress */
    bool closing;              /* quit seen / fatal input: close once replies are sent */
    bool is_unix;              /* connection came in over the unix socket */
    int trace_id;              /* -vv: the number in "<N get foo" lines (the server's fd) */
    uint8_t mode;              /* PROTO_MODE_*: decided by the connection's first byte */
    bool authenticated;        /* SASL (-S): a SASL_AUTH/STEP succeeded */
    bool sasl_started;         /* SASL_AUTH began an exchange that SASL_STEP may continue */
    uint8_t close_reason;      /* PROTO_CLOSE_*: quit / shutdown set it; error by default */
    uint16_t watch;            /* `watch` ran: WATCH_* classes this connection streams (the
                                  server registers it; further input is ignored) */
    void *sasl;                /* sasl_conn_t of this connection, made on its first SASL
                                  command; released by proto_conn_release() */
    struct proto_dump *dump;   /* `lru_crawler metadump` in progress (protocol/admin.c), or
                                  NULL; released by proto_conn_release() */
};

/* memcached's log classes for `watch` (its LOG_* bits). */
enum {
    WATCH_EVICTIONS = 1u << 1, WATCH_FETCHERS = 1u << 2, WATCH_MUTATIONS = 1u << 3,
    WATCH_SYSEVENTS = 1u << 4, WATCH_CONNEVENTS = 1u << 5,
};
/* Why a connection closed, for `watch connevents` (memcached's close_reasons, same order). */
enum { PROTO_CLOSE_ERROR = 0, PROTO_CLOSE_NORMAL, PROTO_CLOSE_IDLE, PROTO_CLOSE_SHUTDOWN };
/* The server sets the union of its watchers' classes: protocol composes lines only for those. */
void proto_watch_set_mask(unsigned mask);

/* memcached negotiates per connection: a first byte of 0x80 selects the binary protocol
 * (protocol/binary.h), anything else the text protocol. Under -S only binary is served. */
enum { PROTO_MODE_UNKNOWN, PROTO_MODE_TEXT, PROTO_MODE_BINARY };


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
 * Processes commands from buf[0..len). *consumed receives the number of bytes consumed.
 * Bytes not consumed are an incomplete command line (at most PROTO_UNCONSUMED_MAX bytes):
 * the server keeps them and calls again once more have arrived. A line still without its
 * newline after REQ_LINE_MAX bytes closes the connection (PROTO_CLOSE), unless it is a
 * get/gets line, which is then run key by key as it arrives (pc->mget).
 *
 * A storage command's value never waits in the buffer: once its line is parsed, its item is
 * allocated and the value's bytes go into it as they arrive (pc->value; the server may also
 * read straight into it, proto_value_window). A value too large for the cache, or one for
 * which no memory could be had, is answered at once and swallowed as it arrives.
 * At most max_reqs commands are executed; processing also stops early once r->pending exceeds
 * max_output (backpressure), returning PROTO_YIELD.
 */
enum proto_action proto_process(struct proto_conn *pc, struct reply *r, const char *buf,
                                size_t len, size_t *consumed, unsigned max_reqs,
                                size_t max_output);

/* The longest login data (-Y) waited for in the read buffer; longer is refused. */
#define PROTO_AUTH_DATA_MAX 8192
/* The most bytes proto_process leaves unconsumed: a command line without its newline (or the
 * last, unfinished key of a long multi-get, or a -Y login with its data). A read buffer larger
 * than this always makes progress. */
#define PROTO_UNCONSUMED_MAX (REQ_LINE_MAX + PROTO_AUTH_DATA_MAX + 2)

/* Where the server may read the pending value's next bytes straight into its item (zero
 * copy), and how many are missing; 0 when no value is being read or only its "\r\n" is left.
 * Only when nothing is buffered: bytes must reach the protocol in order. */
size_t proto_value_window(struct proto_conn *pc, char **dst);
/* n bytes were written at the window. */
void proto_value_filled(struct proto_conn *pc, size_t n);
/* The pending value is all in (a binary value has no "\r\n" to follow it, so this can happen
 * with nothing buffered): the server must call proto_process to store it. */
static inline bool proto_value_ready(const struct proto_conn *pc)
{
    return value_in_complete(&pc->value);
}

/* True while `lru_crawler metadump` streams: proto_process continues it (in batches, a
 * bounded amount per call) before any further command, even with nothing buffered. The server
 * calls it again whenever the reply has room, and reads no input meanwhile. */
static inline bool proto_dumping(const struct proto_conn *pc)
{
    return pc->dump != NULL;
}

/* True while a long multi-get's reply is held back (do not write it yet, unless it is over
 * max_output or the connection is closing). */
static inline bool proto_holding_reply(const struct proto_conn *pc)
{
    return pc->mget.active;
}

/* Releases what a connection's protocol state holds (a half-read value's item, its SASL
 * context). The server calls it when the connection closes; the struct may then be zeroed and
 * reused. */
void proto_conn_release(struct proto_conn *pc);

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
    /* -vv (verbosity 2 and up): a text command line as received, for memcached's
     * "<FD command" echo; id is proto_conn.trace_id. Never called for login lines. */
    void (*trace_command)(int id, const char *line, size_t len);
    /* `watch`: a log line's body (no "ts=... gid=..." prefix, no newline) for every watcher
     * of class cls. NULL: `watch` answers ERROR. */
    void (*watch_emit)(unsigned cls, const char *body, size_t len);
    /* `watch`: registers pc's connection for the WATCH_* classes in mask (on its worker
     * thread). 0: done, 1: memcached's watcher limit reached, -1: out of memory. NULL:
     * `watch` answers ERROR. */
    int (*watch_attach)(struct proto_conn *pc, unsigned mask);
};

struct cfg;

/* What protocol needs of the configuration, handed over at setup (protocol reads no global
 * settings). The server fills it from config/; tests fill it by hand. */
struct proto_config {
    uint64_t item_size_max;    /* -I: longer values are refused before they arrive */
    uint64_t mem_limit;        /* -m in bytes: limit_maxbytes */
    bool flush_enabled;        /* not -F */
    bool shutdown_enabled;     /* -A */
    uint64_t *verbose;         /* -v level: `verbosity` stores to it (relaxed atomic); NULL:
                                  answered but kept nowhere */
    const struct cfg *settings; /* read-only, for `stats settings`; NULL: not listed */
    bool sasl;                 /* -S: binary protocol only, SASL authentication required */
    bool cas_disabled;         /* -C: a binary store's CAS is ignored (memcached's items
                                  then have none to compare) */
    enum proto_binding {
        PROTO_BIND_AUTO = 0,   /* -B auto: binary when the first byte is 0x80 */
        PROTO_BIND_ASCII,      /* -B ascii */
        PROTO_BIND_BINARY,     /* -B binary */
    } binding;
    char prefix_delimiter;     /* -D: ends a key's prefix for `stats detail` (0: ':') */
    bool detail_on;            /* -D given: `stats detail` collection starts on */
    bool dump_disabled;        /* -X: stats cachedump (and lru_crawler metadump) refused */
    bool watch_disabled;       /* -W: `watch` answers CLIENT_ERROR */
    bool debug_hooks;          /* --debug-hooks: memcached-debug's `debugtime` is served */
};

/* cfg NULL: defaults (1 MB items, 64 MB, flush on, shutdown off). hooks NULL: none. */
/* -vv: memcached's "<FD new ... client connection", "<FD connection closed." and "<FD server
 * listening (...)" lines on stderr (protocol/trace.c); each checks the verbosity itself. */
void proto_trace_conn_open(int id);
void proto_trace_conn_close(int id);
void proto_trace_listening(int id);
void proto_setup(const struct proto_config *cfg, const struct proto_hooks *hooks);
void proto_teardown(void);
