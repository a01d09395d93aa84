/*
 * config: every setting of cached, its default, and how it is read from the command line and
 * from a config file. Plain data, used by every other module; it includes no other module.
 *
 * CFG_SETTINGS is the one table of settings: the flag parser, the config-file parser, --help,
 * `stats settings` and the tests all read it. Adding a setting is one line here.
 *
 *   X(field, type, short_flag, long_name, default, min, max, reloadable, help)
 *
 * type: BOOL (flag without value; in files true/false/yes/no/1/0), UINT (unsigned decimal),
 *       SIZE (bytes, suffixes k/m/g, binary), DOUBLE, STR, LIST (repeatable, comma-separated).
 * Memory (-m) is given in megabytes on the command line like memcached, so it is a UINT here
 * (mem_limit_mb); cfg.mem_limit is derived in bytes after parsing.
 * A short flag of 0 means "long option only". reloadable: changed by SIGHUP.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_SETTINGS(X)                                                                            \
    X(port, UINT, 'p', "port", 11211, 0, 65535, false, "TCP port to listen on (0: no TCP)")        \
    X(listen, LIST, 'l', "listen", "127.0.0.1", 0, 0, false,                                       \
      "address to listen on; repeatable or comma-separated; IPv6 as ::1 or [::1]")                 \
    X(unix_socket, STR, 's', "unix-socket", "", 0, 0, false, "unix socket path (disables TCP)")    \
    X(unix_mask, UINT, 'a', "unix-mask", 0700, 0, 0777, false,                                     \
      "permission bits of the unix socket, octal")                                                 \
    X(mem_limit_mb, UINT, 'm', "memory-limit", 64, 1, 1048576, false,                              \
      "item memory limit in megabytes")                                                            \
    X(disable_evictions, BOOL, 'M', "disable-evictions", false, 0, 1, false,                       \
      "return an error when memory is full instead of evicting")                                   \
    X(conn_limit, UINT, 'c', "conn-limit", 1024, 1, 1048576, false,                                \
      "maximum simultaneous connections")                                                          \
    X(threads, UINT, 't', "threads", 4, 1, 256, false, "worker threads")                           \
    X(item_size_max, SIZE, 'I', "max-item-size", 1048576, 1024, 1073741824, false,                 \
      "largest item (key, value and header), e.g. 1m, 512k")                                       \
    X(growth_factor, DOUBLE, 'f', "slab-growth-factor", 1.25, 1.01, 4.0, false,                    \
      "chunk size growth factor between slab classes")                                             \
    X(chunk_min, UINT, 'n', "slab-min-size", 48, 8, 1048576, false,                                \
      "minimum space for key, value and flags in the smallest chunk")                              \
    X(disable_cas, BOOL, 'C', "disable-cas", false, 0, 1, false,                                   \
      "no CAS values (saves 8 bytes per item)")                                                    \
    X(disable_flush_all, BOOL, 'F', "disable-flush-all", false, 0, 1, false,                       \
      "refuse the flush_all command")                                                              \
    X(enable_shutdown, BOOL, 'A', "enable-shutdown", false, 0, 1, false,                           \
      "allow the shutdown command")                                                                \
    X(backlog, UINT, 'b', "listen-backlog", 1024, 1, 65535, false, "listen backlog")               \
    X(reqs_per_event, UINT, 'R', "max-reqs-per-event", 20, 1, 1000000, false,                      \
      "requests served from one connection before others get a turn")                              \
    X(user, STR, 'u', "user", "", 0, 0, false, "user to run as when started as root")              \
    X(run_as_root, BOOL, 0, "run-as-root", false, 0, 1, false,                                     \
      "allow running as root without -u")                                                          \
    X(pidfile, STR, 'P', "pidfile", "", 0, 0, false, "write the process id to this file")          \
    X(verbose, UINT, 'v', "verbose", 0, 0, 3, true,                                                \
      "log verbosity (-v, -vv, -vvv on the command line)")                                         \
    X(daemonize, BOOL, 'd', "daemon", false, 0, 1, false, "run in the background")                 \
    X(logfile, STR, 0, "logfile", "", 0, 0, false,                                                 \
      "append the log (stderr) to this file, as memcached.conf's 'logfile PATH'")                  \
    X(enable_coredumps, BOOL, 'r', "enable-coredumps", false, 0, 1, false,                         \
      "raise the core file size limit to its maximum")                                             \
    X(lock_memory, BOOL, 'k', "lock-memory", false, 0, 1, false,                                   \
      "lock all paged memory (mlockall)")                                                          \
    X(idle_timeout, UINT, 0, "idle-timeout", 0, 0, 86400 * 365, true,                              \
      "close connections idle this many seconds (0: never); also -o idle_timeout=N")               \
    X(tcp_keepalive, BOOL, 0, "tcp-keepalive", false, 0, 1, false, "set SO_KEEPALIVE")             \
    X(shards, UINT, 0, "hash-shards", 0, 0, 65536, false,                                          \
      "hash table shards, a power of two (0: 16 per worker thread)")                               \
    X(slab_automove, BOOL, 0, "slab-automove", true, 0, 1, true,                                   \
      "move slab pages to classes that are evicting")                                              \
    X(sweeper, BOOL, 0, "expiry-sweeper", true, 0, 1, true,                                        \
      "reclaim expired items in the background")                                                   \
    X(max_output, SIZE, 0, "max-output", 4194304, 65536, 1073741824, true,                         \
      "stop reading from a connection whose unsent replies exceed this")                           \
    X(auth_file, STR, 'Y', "auth-file", "", 0, 0, false,                                           \
      "ASCII authentication: file of user:password lines (first 8); SIGHUP reloads it")            \
    X(ssl_enabled, BOOL, 'Z', "enable-ssl", false, 0, 1, false,                                    \
      "TLS on every TCP listener (except notls:ADDR ones); refresh_certs/SIGHUP reload certs")     \
    X(ssl_chain_cert, STR, 0, "ssl-chain-cert", "", 0, 0, false,                                   \
      "TLS: certificate chain file (PEM)")                                                         \
    X(ssl_key, STR, 0, "ssl-key", "", 0, 0, false, "TLS: private key file")                        \
    X(ssl_keyformat, UINT, 0, "ssl-keyformat", 1, 1, 2, false,                                     \
      "TLS: private key format, 1 PEM or 2 DER (memcached's numbers)")                             \
    X(ssl_verify_mode, UINT, 0, "ssl-verify-mode", 0, 0, 3, false,                                 \
      "TLS client certificates: 0 none, 1 request, 2 require, 3 once")                             \
    X(ssl_ca_cert, STR, 0, "ssl-ca-cert", "", 0, 0, false,                                         \
      "TLS: PEM file of the CAs whose client certificates are accepted")                           \
    X(ssl_ciphers, STR, 0, "ssl-ciphers", "", 0, 0, false,                                         \
      "TLS: OpenSSL cipher list for TLS 1.2 and older (empty: OpenSSL's default)")                 \
    X(ssl_min_version, UINT, 0, "ssl-min-version", 2, 0, 3, false,                                 \
      "TLS: lowest version accepted, 0 1.0, 1 1.1, 2 1.2, 3 1.3")                                  \
    X(ssl_session_cache, BOOL, 0, "ssl-session-cache", true, 0, 1, false,                          \
      "TLS: server-side session cache (resumption for clients without tickets)")                   \
    X(ssl_wbuf_size, UINT, 0, "ssl-wbuf-size", 16, 1, 1024, false,                                 \
      "TLS: kilobytes of per-connection buffer that batches small replies into one record")        \
    X(ssl_handshake_priority, STR, 0, "ssl-handshake-priority", "idle", 0, 0, false,               \
      "TLS handshake threads' CPU priority: idle (SCHED_IDLE), low (nice +5) or normal")           \
    X(sasl, BOOL, 'S', "enable-sasl", false, 0, 1, false,                                          \
      "require SASL authentication (binary protocol only, as memcached -S)")                     \
    X(memory_file, STR, 'e', "memory-file", "", 0, 0, false,                                       \
      "keep items in this file (e.g. on /dev/shm); SIGUSR1 saves, the next start restores")        \
    X(metrics_port, UINT, 0, "metrics-port", 0, 0, 65535, false,                                   \
      "serve Prometheus /metrics over HTTP on this port (0: off)")                                 \
    X(metrics_listen, STR, 0, "metrics-listen", "127.0.0.1", 0, 0, false,                          \
      "address the /metrics HTTP listener binds to")                                               \
    X(slab_chunk_max, SIZE, 0, "slab-chunk-max", 0, 0, 1073741824, false,                          \
      "largest graduated chunk; bigger items take a whole-page chunk (0: half a page)")           \
    X(protocol, STR, 'B', "binding-protocol", "auto", 0, 0, false,                                 \
      "auto (text, and binary when a connection's first byte is 0x80), ascii or binary")           \
    X(prefix_delimiter, STR, 'D', "stats-prefix-delimiter", ":", 0, 0, false,                      \
      "character that ends a key's prefix for `stats detail`; giving it turns detail on")                                     \
    X(disable_dumping, BOOL, 'X', "disable-dumping", false, 0, 1, false,                           \
      "refuse stats cachedump and lru_crawler metadump")                                           \
    X(disable_watch, BOOL, 'W', "disable-watch", false, 0, 1, false, "refuse the watch command")  \
    X(hashpower, UINT, 0, "hashpower", 0, 0, 32, false,                                            \
      "initial hash table buckets as a power of two, 12 to 32 (0: 16; the table grows anyway)")    \
    X(watcher_logbuf_size, UINT, 0, "watcher-logbuf-size", 64, 1, 1048576, false,                  \
      "kilobytes of `watch` lines buffered per watcher; lines beyond are skipped")                \
    X(debug_hooks, BOOL, 0, "debug-hooks", false, 0, 1, false,                                     \
      "serve memcached-debug's test command debugtime (moves the clock): test suites only")

enum cfg_type { CFG_BOOL, CFG_UINT, CFG_SIZE, CFG_DOUBLE, CFG_STR, CFG_LIST };

/* Field types per setting type. */
#define CFG_CTYPE_BOOL bool
#define CFG_CTYPE_UINT uint64_t
#define CFG_CTYPE_SIZE uint64_t
#define CFG_CTYPE_DOUBLE double
#define CFG_CTYPE_STR char *
#define CFG_CTYPE_LIST char * /* comma-joined; see cfg_list_next() */

struct cfg {
#define CFG_FIELD(field, type, sf, lf, def, mn, mx, rl, help) CFG_CTYPE_##type field;
    CFG_SETTINGS(CFG_FIELD)
#undef CFG_FIELD
    /* Derived after parsing. */
    size_t mem_limit;       /* bytes */
    bool port_ephemeral;    /* -p -1: listen on a port the kernel picks */
    bool no_lru_maintainer; /* -o no_lru_maintainer or no_modern (stats settings shows it) */
    const char *config_file; /* --config FILE, or NULL */
    uint64_t cmdline_set;    /* bit i: table row i was given on the command line (a reload
                                from the file leaves it alone: command line > file) */
    bool detail_on;          /* -D given: `stats detail` collection starts on, as memcached's */
    bool slab_automove_fast; /* -o slab_automove=2: a page-move step every tick, not every
                                second (storage_set_automove level 2) */
    bool no_slab_reassign;   /* -o no_slab_reassign / no_modern: `slabs reassign` refused and
                                automove off, as memcached without its rebalancer thread */
    uint64_t slab_automove_window; /* -o slab_automove_window=N (memcached's, >= 3): seconds a
                                class must go without evictions or new pages before automove
                                hands its spare free pages back to the global pool */
    double slab_automove_ratio; /* -o slab_automove_ratio=R (0 < R <= 1), `slabs automove
                                ratio R`: a page moves between classes only when the needy
                                class's age is below R times the source's */
    uint64_t lru_crawler_tocrawl; /* -o lru_crawler_tocrawl=N: `lru_crawler tocrawl`'s start */
    uint64_t lru_crawler_sleep; /* -o lru_crawler_sleep=N (0..1000000, default 100): µs the
                                `lru_crawler crawl` pass pauses after each 1000 chunks */
    bool track_sizes;        /* -o track_sizes: `stats sizes` kept from the start */
};

/* Exit codes of a failed parse (sysexits.h). */
#define CFG_EXIT_USAGE 64
#define CFG_EXIT_CONFIG 78

/* The settings the running process uses. Written by main() before threads start (and by the
 * SIGHUP handler for reloadable fields only); read by everyone. */
extern struct cfg settings;

/* Fills *c with the embedded defaults (strings are allocated; cfg_free releases them). */
void cfg_init(struct cfg *c);
void cfg_free(struct cfg *c);

/*
 * Parses argv on top of the defaults, reading --config FILE in between (precedence:
 * command line > file > defaults). Returns 0 on success, or an exit code (CFG_EXIT_USAGE,
 * CFG_EXIT_CONFIG) after printing one clear line to err. Sets *exit_now for --help and
 * --version (which print to out and return 0).
 */
int cfg_parse(struct cfg *c, int argc, char **argv, FILE *out, FILE *err, bool *exit_now);

/* Re-reads c->config_file and applies its reloadable settings to c, logging each change to
 * log. Returns 0, or CFG_EXIT_CONFIG (c is unchanged then). */
int cfg_reload(struct cfg *c, FILE *log);

/* Iterates a LIST value: *pos starts at NULL; copies the next element into buf (elements are
 * validated at parse time to be at most 255 bytes; a smaller buf truncates). */
bool cfg_list_next(const char *list, const char **pos, char *buf, size_t bufsz);

/* Writes "name value" pairs of every setting, for `stats settings`: names are the config-file
 * keys with '_' (max_item_size), values plain (bytes, yes/no, octal unix_mask, "NULL" for an
 * empty string); then "config" (the file or "NULL"). */
void cfg_each(const struct cfg *c, void (*fn)(void *arg, const char *name, const char *value),
              void *arg);
