/*
 * slabs: memcached's `slabs reassign <src> <dst>` and `slabs automove <0|1|2>` (and
 * `slabs automove ratio <r>`), with memcached 1.6.18's replies and errors byte for byte. The
 * page move itself is storage's (storage_slabs_reassign); this file only parses and answers.
 * memcached counts a trailing empty token; our token counts do not, so its "ntokens == 5" for
 * reassign is q->ntok == 4 here.
 */
#include <stdlib.h>

#include "config/config.h"
#include "protocol/internal.h"

#define MSG_REASSIGN_DISABLED "CLIENT_ERROR slab reassignment disabled\r\n"

static enum cmd_result slabs_reassign(struct proto_ctx *x)
{
    struct request *q = x->q;
    int32_t src, dst;
    const struct cfg *cf = proto_cfg.settings;
    if (cf != NULL && cf->no_slab_reassign) { /* memcached without its rebalancer thread */
        OUT(x, MSG_REASSIGN_DISABLED);
        return CMD_DONE;
    }
    if (!tok_strtol(&q->tok[2], &src) || !tok_strtol(&q->tok[3], &dst)) {
        OUT(x, MSG_BAD_FORMAT);
        return CMD_DONE;
    }
    switch (storage_slabs_reassign(src, dst)) {
    case REASSIGN_OK:
        OUT(x, MSG_OK);
        break;
    case REASSIGN_RUNNING:
        OUT(x, MSG_REASSIGN_BUSY);
        break;
    case REASSIGN_BADCLASS:
        OUT(x, MSG_REASSIGN_BADCLASS);
        break;
    case REASSIGN_NOSPARE:
        OUT(x, MSG_REASSIGN_NOSPARE);
        break;
    case REASSIGN_SRC_DST_SAME:
        OUT(x, MSG_REASSIGN_SAME);
        break;
    }
    return CMD_DONE;
}

/* memcached's safe_strtod: a number that takes the whole token. */
static bool tok_to_double(const struct token *t, double *out)
{
    char buf[64];
    if (t->len == 0 || t->len >= sizeof buf)
        return false;
    memcpy(buf, t->p, t->len);
    buf[t->len] = '\0';
    char *end;
    *out = strtod(buf, &end);
    return end != buf && *end == '\0';
}

static enum cmd_result slabs_automove(struct proto_ctx *x)
{
    struct request *q = x->q;
    proto_noreply_maybe(q);
    if (TOK_IS(&q->tok[2], "ratio")) {
        /* the age ratio a page move between two classes needs (storage) */
        double r;
        if (q->ntok < 4 || !tok_to_double(&q->tok[3], &r)) {
            OUT(x, MSG_ERROR);
        } else {
            storage_set_automove_tuning(0, r);
            OUT(x, MSG_OK);
        }
        return CMD_DONE;
    }
    uint32_t level;
    if (!tok_strtoul(&q->tok[2], &level)) {
        OUT(x, MSG_BAD_FORMAT);
        return CMD_DONE;
    }
    if (level > 2) {
        OUT(x, MSG_ERROR);
        return CMD_DONE;
    }
    /* without the rebalancer (no_slab_reassign) memcached answers OK and moves nothing */
    const struct cfg *cf = proto_cfg.settings;
    if (cf == NULL || !cf->no_slab_reassign)
        storage_set_automove(level);
    OUT(x, MSG_OK);
    return CMD_DONE;
}

enum cmd_result proto_cmd_slabs(struct proto_ctx *x, int arg)
{
    (void)arg;
    struct request *q = x->q;
    if (q->ntok == 4 && TOK_IS(&q->tok[1], "reassign"))
        return slabs_reassign(x);
    if (q->ntok >= 3 && TOK_IS(&q->tok[1], "automove"))
        return slabs_automove(x);
    OUT(x, MSG_ERROR);
    return CMD_DONE;
}
