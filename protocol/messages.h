/*
 * Private to protocol/: no file outside protocol/ includes it.
 * messages: every reply string of the text protocol, in one place. Each is the exact byte
 * sequence memcached 1.6.18 sends (checked against Debian's /usr/bin/memcached), "\r\n"
 * included. MSG_LEN() gives the length at compile time so replies need no strlen().
 */
#pragma once

#define MSG_LEN(m) (sizeof(m) - 1)

/* `version` (text and binary) and `STAT version`: exactly memcached's, because clients parse it
 * from either end: libmemcached reads the leading 1.6.18, while the `memcached` npm package
 * (2.2.2) matches /(\d+)\.(\d+)\.(\d+)$/ and crashed Node on "1.6.18-cached-0.1" (null match).
 * cached's own version is in `cached --version`. (Not a `stats` key: clients such as pymemcache
 * keep an unknown non-numeric stat as bytes, unlike memcached's.) */
#define PROTO_VERSION "1.6.18"

#define MSG_STORED "STORED\r\n"
#define MSG_NOT_STORED "NOT_STORED\r\n"
#define MSG_EXISTS "EXISTS\r\n"
#define MSG_NOT_FOUND "NOT_FOUND\r\n"
#define MSG_DELETED "DELETED\r\n"
#define MSG_TOUCHED "TOUCHED\r\n"
#define MSG_END "END\r\n"
#define MSG_OK "OK\r\n"
#define MSG_RESET "RESET\r\n"
#define MSG_CRLF "\r\n"
#define MSG_VALUE "VALUE "
#define MSG_VERSION "VERSION " PROTO_VERSION "\r\n"

#define MSG_ERROR "ERROR\r\n"
/* `watch` (memcached's process_watch_command) */
#define MSG_WATCH_DISABLED "CLIENT_ERROR watch commands not allowed\r\n"
#define MSG_WATCH_PIPELINED "ERROR cannot pipeline other commands before watch\r\n"
#define MSG_WATCHER_TOO_MANY "WATCHER_TOO_MANY log watcher limit reached\r\n"
#define MSG_WATCHER_FAILED "WATCHER_FAILED failed to add log watcher\r\n"
#define MSG_BAD_FORMAT "CLIENT_ERROR bad command line format\r\n"
#define MSG_BAD_DATA_CHUNK "CLIENT_ERROR bad data chunk\r\n"
#define MSG_UNAUTHENTICATED "CLIENT_ERROR unauthenticated\r\n"
#define MSG_AUTH_FAILURE "CLIENT_ERROR authentication failure\r\n"
#define MSG_AUTH_FORMAT "CLIENT_ERROR bad authentication token format\r\n"
#define MSG_AUTH_TOO_LONG "CLIENT_ERROR auth token too long\r\n"
#define MSG_BAD_TERMINATION "CLIENT_ERROR bad command line termination\r\n"
#define MSG_TLS_NOT_ENABLED "Error TLS not enabled\r\n"
#define MSG_DELETE_USAGE "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
#define MSG_INVALID_EXPTIME "CLIENT_ERROR invalid exptime argument\r\n"
#define MSG_INVALID_DELTA "CLIENT_ERROR invalid numeric delta argument\r\n"
#define MSG_NON_NUMERIC "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
#define MSG_FLUSH_DISABLED "CLIENT_ERROR flush_all not allowed\r\n"
#define MSG_SHUTDOWN_DISABLED "ERROR: shutdown not enabled\r\n"
#define MSG_SHUTDOWN_MODE "CLIENT_ERROR invalid shutdown mode\r\n"
#define MSG_METADUMP_NOT_ALLOWED "ERROR metadump not allowed\r\n"
#define MSG_CACHEDUMP_NOT_ALLOWED "CLIENT_ERROR stats cachedump not allowed\r\n"
#define MSG_BAD_COMMAND_LINE "CLIENT_ERROR bad command line\r\n"
#define MSG_ILLEGAL_SLAB_ID "CLIENT_ERROR Illegal slab id\r\n"
#define MSG_MEMLIMIT_TOO_SMALL "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"
#define MSG_MEMLIMIT_NOT_BYTES "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"
#define MSG_MEMLIMIT_FAILED "MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n"
#define MSG_STATS_DETAIL_USAGE "CLIENT_ERROR usage: stats detail on|off|dump\r\n"
#define MSG_TOO_LARGE "SERVER_ERROR object too large for cache\r\n"
#define MSG_NO_MEMORY_STORE "SERVER_ERROR out of memory storing object\r\n"
#define MSG_NO_MEMORY "SERVER_ERROR out of memory\r\n"
#define MSG_STATS_SIZES "STAT sizes_status disabled\r\n"
#define MSG_REASSIGN_BUSY "BUSY currently processing reassign request\r\n"
#define MSG_REASSIGN_BADCLASS "BADCLASS invalid src or dst class id\r\n"
#define MSG_REASSIGN_NOSPARE "NOSPARE source class has no spare pages\r\n"
#define MSG_REASSIGN_SAME "SAME src and dst class are identical\r\n"
