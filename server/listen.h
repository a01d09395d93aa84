/*
 * Private to server/: no file outside server/ includes it.
 * listen: the listening sockets (TCP IPv4/IPv6 from `listen` and `port`, or one unix socket
 * from -s with mode -a) and the accept path in the listener thread. Accepted connections are
 * checked against -c and handed to a worker; nothing here reads or writes a request.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct cfg;
struct event_base;

#define LISTEN_NAME_MAX 128

struct listener {
    int fd;
    bool is_unix;
    bool tls;                   /* -Z and not a notls: address: connections start a handshake */
    char name[LISTEN_NAME_MAX]; /* "tcp:127.0.0.1:11211", "tcp6:[::1]:11211", "unix:/path" */
    struct event *ev;
};

extern struct listener *listeners;
extern size_t nlisteners;

/* Binds every configured address. On failure logs one line naming the address and returns -1
 * (everything bound so far is closed). */
int listen_setup(const struct cfg *c);
/* Arms accept events in the listener thread's base. */
int listen_start(struct event_base *base);
/* Stops accepting (graceful shutdown): events removed, sockets closed. Idempotent. */
void listen_stop(void);
/* Closes what is left and removes the unix socket file. */
void listen_teardown(void);
