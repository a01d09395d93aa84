/*
 * main: cached's lifecycle. Setups run in dependency order and teardowns in reverse:
 *
 *   settings -> log -> root check -> log file -> core limit -> fd limit -> listeners -> detach
 *   -> lock memory -> privileges -> pidfile -> clock -> storage -> protocol -> workers
 *   -> accept + signals + maintenance -> READY=1 (and a detached daemon's parent exits 0)
 *   ... event loop of the listener thread ...
 *   STOPPING=1 -> stop accepting -> workers finish in-flight replies (<= SHUTDOWN_GRACE_MS)
 *   -> join -> protocol -> storage -> pidfile -> listeners (unix socket file removed)
 *
 * Exit codes: 0 clean (also after SIGTERM, SIGINT and `shutdown`); cfg_parse's 64/78 for bad
 * flags or config; 64 root without -u/--run-as-root; 67 unknown -u user; 71 (EX_OSERR) when
 * an address cannot be bound or the process cannot be set up. These match memcached's.
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "config/config.h"
#include "protocol/proto.h"
#include "server/daemon.h"
#include "server/hooks.h"
#include "server/listen.h"
#include "server/log.h"
#include "server/notify.h"
#include "server/server.h"
#include "server/worker.h"
#include "storage/clock.h"
#include "storage/storage.h"

#define SHUTDOWN_GRACE_MS 500  /* in-flight replies get this long; exit stays under 1 s */
#define MAINT_INTERVAL_MS 100  /* maintenance timer period */
#define SWEEP_BUDGET 500       /* items the expiry sweeper examines per step */
#define SWEEP_MAX_US 2000      /* steps continue while they reclaim, this long per tick at most */
#define AUTOMOVE_EVERY 10      /* ticks between slab automove steps (1 s) */
#define FD_HEADROOM 64         /* fds beyond -c: listeners, eventfds, epoll, logs */

static struct event_base *main_base;
static bool shutting_down;
static unsigned maint_ticks;

static void apply_runtime_settings(void)
{
    log_set_verbosity((unsigned)settings.verbose);
    atomic_store(&server_runtime.idle_timeout, settings.idle_timeout);
    atomic_store(&server_runtime.max_output, settings.max_output);
}

static void begin_shutdown(const char *why)
{
    if (shutting_down)
        return;
    shutting_down = true;
    log_info("shutting down (%s)", why);
    notify_send("STOPPING=1");
    listen_stop();
    worker_stop(SHUTDOWN_GRACE_MS);
    event_base_loopexit(main_base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what, (void)arg;
    if (sig == SIGHUP) {
        if (settings.config_file == NULL) {
            log_info("SIGHUP: no config file to reload");
            return;
        }
        unsigned old_verbose = (unsigned)settings.verbose;
        if (cfg_reload(&settings, stderr) == 0) {
            apply_runtime_settings();
            log_info("reloaded %s (verbose %u -> %u)", settings.config_file, old_verbose,
                     (unsigned)settings.verbose);
        } else {
            log_warn("reload of %s failed; settings unchanged", settings.config_file);
        }
        return;
    }
    begin_shutdown(sig == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_shutdown_bell(evutil_socket_t fd, short what, void *arg)
{
    uint64_t v;
    (void)what, (void)arg;
    ssize_t n = read(fd, &v, sizeof v);
    (void)n;
    begin_shutdown("shutdown command");
}

/* Background work in small bounded steps (STYLE lesson 7): clock, hash growth, expiry
 * sweeper, slab automove. Runs in the listener thread. */
static void on_maintenance(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    clock_tick();
    server_counter_add(&server_counters.maintenance_ticks, 1);
    /* `verbosity N` (protocol) writes settings.verbose; the log level follows here. */
    static uint64_t applied_verbose = UINT64_MAX;
    uint64_t v = __atomic_load_n(&settings.verbose, __ATOMIC_RELAXED);
    if (v != applied_verbose) {
        log_set_verbosity((unsigned)v);
        applied_verbose = v;
    }
    storage_maintenance_step();
    if (settings.sweeper) {
        /* Each step takes one shard lock at a time, so workers wait at most one step; more
         * steps only while there is something to reclaim (1M expired items: ~1 min). */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (storage_sweep_step(SWEEP_BUDGET) > 0) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if ((t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000 >=
                SWEEP_MAX_US)
                break;
        }
    }
    if (settings.slab_automove && ++maint_ticks % AUTOMOVE_EVERY == 0)
        storage_automove_step();
}

static uint32_t shard_count(void)
{
    if (settings.shards != 0)
        return (uint32_t)settings.shards;
    uint64_t want = 16 * settings.threads, n = 1;
    while (n < want)
        n <<= 1;
    return (uint32_t)n;
}

static int run(void)
{
    int rc = daemon_check_root(settings.user, settings.run_as_root);
    if (rc == 0)
        rc = daemon_open_logfile(settings.logfile, !settings.daemonize);
    if (rc == 0 && settings.enable_coredumps)
        rc = daemon_enable_coredumps();
    if (rc != 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    /* Clients (and test harnesses) may connect as soon as listen() returns, well before the
     * signal events exist: hold SIGTERM/SIGINT/SIGHUP pending until they do, so an early
     * signal takes the graceful path instead of the default action. Held again during
     * teardown, so a second SIGTERM cannot kill a process that is already exiting. */
    sigset_t lifecycle_sigs, old_mask;
    sigemptyset(&lifecycle_sigs);
    sigaddset(&lifecycle_sigs, SIGTERM);
    sigaddset(&lifecycle_sigs, SIGINT);
    sigaddset(&lifecycle_sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &lifecycle_sigs, &old_mask);
    daemon_fit_nofile(settings.conn_limit + FD_HEADROOM + 2 * settings.threads);

    if (listen_setup(&settings) < 0)
        return DAEMON_EXIT_OSERR;
    if (settings.daemonize)
        rc = daemon_detach();
    if (rc == 0 && settings.lock_memory)
        daemon_lock_memory();
    if (rc == 0)
        rc = daemon_drop_privileges(settings.user);
    if (rc == 0 && settings.enable_coredumps && settings.user[0] != '\0')
        daemon_keep_dumpable();
    if (rc == 0)
        rc = daemon_write_pidfile(settings.pidfile);
    if (rc != 0) {
        listen_teardown();
        return rc;
    }

    clock_setup();
    struct storage_config scfg = {
        .mem_limit = settings.mem_limit,
        .item_size_max = (size_t)settings.item_size_max,
        .growth_factor = settings.growth_factor,
        .chunk_min = (uint32_t)settings.chunk_min,
        .evictions = !settings.disable_evictions,
        .use_cas = !settings.disable_cas,
        .shards = shard_count(),
        .automove = settings.slab_automove,
    };
    char err[256] = "";
    if (storage_setup(&scfg, err, sizeof err) < 0) {
        log_error("storage setup failed: %s", err);
        daemon_remove_pidfile(settings.pidfile);
        listen_teardown();
        return DAEMON_EXIT_OSERR;
    }
    proto_setup(&server_hooks);
    if (settings.sasl && proto_sasl_setup() < 0) {
        storage_teardown();
        daemon_remove_pidfile(settings.pidfile);
        listen_teardown();
        return EXIT_FAILURE;
    }

    struct event *sig_ev[3] = {0}, *bell_ev = NULL, *maint_ev = NULL;
    rc = DAEMON_EXIT_OSERR;
    main_base = event_base_new();
    server_shutdown_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (main_base == NULL || server_shutdown_fd < 0) {
        log_error("cannot create the listener event loop: %s", strerror(errno));
        goto out;
    }
    if (worker_setup((unsigned)settings.threads) < 0) {
        log_error("cannot set up worker threads");
        goto out_workers;
    }
    if (worker_start() < 0) {
        worker_stop(0);
        worker_join();
        goto out_workers;
    }
    static const int sigs[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        sig_ev[i] = evsignal_new(main_base, sigs[i], on_signal, NULL);
        if (sig_ev[i] != NULL)
            event_add(sig_ev[i], NULL);
    }
    bell_ev = event_new(main_base, server_shutdown_fd, EV_READ | EV_PERSIST, on_shutdown_bell,
                        NULL);
    maint_ev = event_new(main_base, -1, EV_PERSIST, on_maintenance, NULL);
    struct timeval maint_tv = {0, MAINT_INTERVAL_MS * 1000};
    if (bell_ev == NULL || maint_ev == NULL || event_add(bell_ev, NULL) < 0 ||
        event_add(maint_ev, &maint_tv) < 0 || listen_start(main_base) < 0) {
        log_error("cannot arm the listener event loop");
        worker_stop(0);
        worker_join();
        goto out_events;
    }
    sigprocmask(SIG_SETMASK, &old_mask, NULL); /* pending signals are delivered now */

    char ready[64];
    snprintf(ready, sizeof ready, "READY=1\nMAINPID=%ld", (long)getpid());
    notify_send(ready);
    daemon_ready();
    log_info("ready: %zu listener(s) (%s%s), %u worker threads, %lu MB", nlisteners,
             listeners[0].name, nlisteners > 1 ? ", ..." : "", (unsigned)settings.threads,
             (unsigned long)settings.mem_limit_mb);

    event_base_dispatch(main_base);
    sigprocmask(SIG_BLOCK, &lifecycle_sigs, NULL);
    begin_shutdown("event loop ended"); /* no-op after a signal */
    worker_join();
    rc = 0;

out_events:
    if (maint_ev != NULL)
        event_free(maint_ev);
    if (bell_ev != NULL)
        event_free(bell_ev);
    for (int i = 0; i < 3; i++)
        if (sig_ev[i] != NULL)
            event_free(sig_ev[i]);
out_workers:
    worker_teardown();
out:
    if (server_shutdown_fd >= 0) {
        close(server_shutdown_fd);
        server_shutdown_fd = -1;
    }
    if (main_base != NULL)
        event_base_free(main_base);
    proto_teardown();
    storage_teardown();
    daemon_remove_pidfile(settings.pidfile);
    listen_teardown();
    if (rc == 0)
        log_info("bye");
    return rc;
}

int main(int argc, char **argv)
{
    bool exit_now = false;
    cfg_init(&settings);
    int rc = cfg_parse(&settings, argc, argv, stdout, stderr, &exit_now);
    if (rc == 0 && !exit_now) {
        apply_runtime_settings();
        rc = run();
    }
    cfg_free(&settings);
    return rc;
}
