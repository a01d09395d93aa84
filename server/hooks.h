/*
 * Private to server/: no file outside server/ includes it.
 * hooks: what the protocol asks of the server (proto_hooks): server-level `stats` lines,
 * `stats conns`, `shutdown`, and the per-worker counter sums.
 */
#pragma once

#include "protocol/proto.h"

extern const struct proto_hooks server_hooks;
