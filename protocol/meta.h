/*
 * meta: the meta commands mg ms md ma mn me (protocol/meta.c). Each is one entry of the command
 * table in protocol/proto.c pointing at the function below. Until protocol/meta.c defines
 * them, weak stubs in proto.c answer "ERROR" (as for an unknown command).
 *
 * A handler gets the tokenized line in x->q (x->q->tok[0] is the command), the bytes after
 * the line in x->data/x->avail (for ms: return CMD_NEED_MORE with x->need = value bytes + 2
 * until they are all there, then set x->data_used), and writes replies to x->r. It must count
 * cmd_meta (x->st) itself. Helpers: protocol/internal.h.
 */
#pragma once

#include "protocol/internal.h"

enum cmd_result proto_meta_mg(struct proto_ctx *x, int arg);
enum cmd_result proto_meta_ms(struct proto_ctx *x, int arg);
enum cmd_result proto_meta_md(struct proto_ctx *x, int arg);
enum cmd_result proto_meta_ma(struct proto_ctx *x, int arg);
enum cmd_result proto_meta_mn(struct proto_ctx *x, int arg);
enum cmd_result proto_meta_me(struct proto_ctx *x, int arg);
