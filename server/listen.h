/*
 * Private to server/: no file outside server/ includes it.
 * listen: the listening sockets (TCP IPv4/IPv6 from `listen` and `port`, or one unix socket
 * from -s with mode -a) and the accept paths. Accepted connections are checked against -c;
 * nothing here reads or writes a request.
 *
 * Two ways in (issue 18):
 *   per worker  every TCP address cached binds itself gets one listening socket per worker
 *               (SO_REUSEPORT when -t > 1: the kernel spreads the connections); each worker
 *               accepts on its own socket in its own loop and opens the connection at once —
 *               no hand-off, no wake-up of a second thread, no context switch per connection.
 *   shared      a unix socket (-s) and sockets inherited from systemd stay one fd each: the
 *               listener (main) thread accepts them and hands each connection to a worker
 *               (worker_dispatch).
 * A port in use is refused as before: the first socket of an address is bound without
 * SO_REUSEPORT (so it fails against any holder, another cached included) and only then marked
 * reusable for its siblings.
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
    struct event *ev;           /* shared: the listener thread's accept event */
    int *wfds;                  /* per worker: nworkers sockets (wfds[0] == fd), else NULL */
    unsigned nwfds;
};

struct acceptor;
struct worker;

extern struct listener *listeners;
extern size_t nlisteners;

/* Binds every configured address. On failure logs one line naming the address and returns -1
 * (everything bound so far is closed). */
int listen_setup(const struct cfg *c);
/* Arms the shared listeners' accept events in the listener thread's base. */
int listen_start(struct event_base *base);
/* Arms worker w's accept events (its own sockets) in w->base; NULL on failure. Called before
 * the worker's thread runs. */
struct acceptor *listen_worker_setup(struct worker *w);
/* In w's thread (or after it ended): removes and frees its accept events. Idempotent; the
 * sockets themselves are closed by listen_teardown. */
void listen_worker_stop(struct acceptor *a);
/* Stops accepting (graceful shutdown): shared listeners' events removed and sockets closed;
 * per-worker sockets shut down (new connections are refused at once, the workers' accept
 * events see it and disarm). Idempotent. Listener thread. */
void listen_stop(void);
/* Descriptors the listeners hold (stats reserved_fds). */
size_t listen_nfds(void);
/* Closes what is left and removes the unix socket file. */
void listen_teardown(void);
