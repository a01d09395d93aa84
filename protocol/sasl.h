/*
 * sasl: Cyrus SASL behind the binary protocol's SASL commands (-S), set up as memcached's
 * sasl_defs.c does it: application "memcached", its config file found through
 * SASL_CONF_PATH or /etc/sasl{,2}/memcached.conf, one sasl_conn_t per connection made on
 * its first SASL command. Private to protocol/ (binary.c); proto.h has the lifecycle.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "protocol/proto.h"

/* memcached's MAX_SASL_MECH_LEN: a longer mechanism name is refused with EINVAL. */
#define SASL_MECH_MAX 32

enum psasl_result { PSASL_OK, PSASL_CONTINUE, PSASL_FAIL };

/* Disposes of the connection's SASL context (part of proto_conn_release). */
void psasl_conn_release(struct proto_conn *pc);

/* The mechanisms, space-separated; false when SASL cannot list them. Resets the
 * connection's authentication, as memcached's init_sasl_conn does. */
bool psasl_list_mechs(struct proto_conn *pc, const char **out, unsigned *outlen);

/* SASL_AUTH (step false) or SASL_STEP (step true) with the client's data. On PSASL_OK the
 * connection is authenticated; on PSASL_CONTINUE *out is the server's challenge. */
enum psasl_result psasl_auth(struct proto_conn *pc, bool step, const char *mech, size_t nmech,
                             const char *data, size_t len, const char **out, unsigned *outlen);
