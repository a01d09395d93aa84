/*
 * request: one parsed command line. The parser (protocol/proto.c) frames a line, cuts it into
 * tokens on ASCII spaces exactly as memcached's tokenize_command() does, and hands the
 * struct request to the command's handler. Tokens point into the connection's read buffer:
 * nothing is copied and nothing is allocated.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* memcached tokenizes at most 23 tokens per pass (MAX_TOKENS 24, one terminal); a multi-get
 * continues from `rest`. Keeping the same limit keeps token-count errors identical. */
#define REQ_MAX_TOKENS 23

/* A line still without '\n' after this many bytes closes the connection, unless it is a
 * get/gets line (long multi-gets are legal). memcached's rule, see try_read_command_ascii. */
#define REQ_LINE_MAX 2048

/* Parse statuses of the framing step. */
enum req_status {
    REQ_OK,        /* a complete line (and, for storage commands, its data block) */
    REQ_NEED_MORE, /* the line or its data block is not all in the buffer yet */
    REQ_TOO_BIG,   /* no newline within REQ_LINE_MAX bytes: close the connection */
    REQ_INVALID,   /* malformed: answered with an error, the line is consumed */
};

struct token {
    const char *p;
    size_t len;
};

struct request {
    const char *line;       /* the command line without "\r\n" (cut at a NUL byte) */
    size_t len;
    size_t line_total;      /* bytes the line occupies in the buffer, newline included */
    struct token tok[REQ_MAX_TOKENS];
    unsigned ntok;          /* tokens in tok[] (memcached's ntokens is ntok + 1) */
    const char *rest;       /* more tokens in [rest, end) beyond tok[] (multi-get), or NULL */
    const char *end;        /* line + len */
    bool noreply;           /* replies of this command are suppressed */
};
