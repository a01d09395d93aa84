/*
 * binary: memcached's binary protocol (deprecated upstream since 1.6.0, still served by
 * 1.6.18 and spoken by libmemcached clients, php-memcached sessions and SASL). Private to
 * protocol/: proto_process hands a connection's bytes here once its first byte was 0x80
 * (or always under -S, where memcached serves binary only).
 *
 * Packet layout (all numbers big-endian), request and response alike:
 *
 *   byte  0      1       2..3    4       5         6..7              8..11    12..15  16..23
 *       magic  opcode  keylen  extlen  datatype  vbucket|status   bodylen  opaque   cas
 *   then extras (extlen), key (keylen), value (bodylen - extlen - keylen).
 */
#pragma once

#include <stddef.h>

#include "protocol/proto.h"

#define BIN_HEADER_LEN 24
#define BIN_REQ_MAGIC 0x80
#define BIN_RES_MAGIC 0x81

/* Same contract as proto_process (protocol/proto.h), for a binary connection. */
enum proto_action proto_binary_process(struct proto_conn *pc, struct reply *r, const char *buf,
                                       size_t len, size_t *consumed, unsigned max_reqs,
                                       size_t max_output);
