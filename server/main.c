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
#include "protocol/auth.h"
#include "protocol/proto.h"
#include "server/daemon.h"
#include "server/hooks.h"
#include "server/listen.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/notify.h"
#include "server/server.h"
#include "server/tls.h"
#include "server/worker.h"
#include "storage/clock.h"
#include "storage/mem.h"
#include "storage/storage.h"

#define SHUTDOWN_GRACE_MS 500  /* in-flight replies get this long; exit stays under 1 s */
#define MAINT_INTERVAL_MS 100  /* maintenance timer period */
#define SWEEP_BUDGET 500       /* items the expiry sweeper examines per step */
#define SWEEP_MAX_US 2000      /* steps continue while they reclaim, this long per tick at most */
#define CRAWL_BUDGET 20000     /* chunks an `lru_crawler crawl` pass checks per tick */
#define FD_HEADROOM 64         /* fds beyond -c: listeners, eventfds, epoll, logs */

static struct event_base *main_base;
static bool shutting_down;
static bool save_on_exit; /* SIGUSR1 with -e: write the memory file's .meta after the workers */

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

/* SIGHUP: certificates (memcached: refresh_certs only) and the -Y file (memcached too). A
 * failure keeps what was loaded before. */
static void reload_secrets(void)
{
    char err[1400];
    if (tls_enabled()) {
        if (tls_refresh(err, sizeof err))
            log_info("SIGHUP: TLS certificates reloaded");
        else
            log_warn("SIGHUP: %.*s; keeping the previous certificates", (int)strcspn(err, "\r"),
                     err);
    }
    if (settings.auth_file[0] != '\0') {
        if (auth_load(settings.auth_file, err, sizeof err) == 0)
            log_info("SIGHUP: reloaded %s", settings.auth_file);
        else
            log_warn("SIGHUP: %s; keeping the previous users", err);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what, (void)arg;
    if (sig == SIGHUP) {
        daemon_reopen_logfile(settings.logfile); /* logrotate's postrotate: kill -HUP */
        reload_secrets();
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
    /* SIGUSR1 (memcached's graceful stop) saves the items when -e is set; SIGTERM and
     * SIGINT never do, so a plain stop can never bring back values the application may
     * have changed in its database meanwhile (README: "Restarts and upgrades"). A SIGUSR1
     * that comes while a SIGTERM's shutdown runs still asks for the save: signals that arrive
     * together are dispatched in signal-number order (SIGINT 2, SIGUSR1 10, SIGTERM 15), not
     * in the order they were sent, and an explicit save request must not be lost to that. */
    if (sig == SIGUSR1)
        save_on_exit = settings.memory_file[0] != '\0';
    begin_shutdown(sig == SIGINT ? "SIGINT" : sig == SIGUSR1 ? "SIGUSR1" : "SIGTERM");
}

static bool memory_file_set(void)
{
    return settings.memory_file != NULL && settings.memory_file[0] != '\0';
}

/* -d changes to /: a relative -e path is taken from the directory cached started in. */
static void memory_file_absolute(void)
{
    char cwd[4096];
    if (!memory_file_set() || settings.memory_file[0] == '/' || getcwd(cwd, sizeof cwd) == NULL)
        return;
    size_t n = strlen(cwd) + strlen(settings.memory_file) + 2;
    char *p = malloc(n);
    if (p == NULL)
        return;
    snprintf(p, n, "%s/%s", cwd, settings.memory_file);
    free(settings.memory_file);
    settings.memory_file = p;
}

/* -d changes to /: a relative pidfile, log file or config file (re-read on SIGHUP) would then
 * name something else. Resolve them against the directory cached was started in. */
static void absolute_for_daemon(char **path)
{
    char cwd[4096];
    if (*path == NULL || (*path)[0] == '\0' || (*path)[0] == '/' ||
        getcwd(cwd, sizeof cwd) == NULL)
        return;
    size_t n = strlen(cwd) + strlen(*path) + 2;
    char *p = malloc(n);
    if (p == NULL)
        return;
    snprintf(p, n, "%s/%s", cwd, *path);
    free(*path);
    *path = p;
}

/* With every worker stopped, nothing touches the items: write the .meta. */
static void save_memory_file(void)
{
    char err[256] = "";
    uint64_t items = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (storage_save(err, sizeof err, &items) < 0) {
        log_error("warm restart: nothing saved: %s", err);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    log_info("warm restart: saved %llu items to %s in %ld ms", (unsigned long long)items,
             settings.memory_file,
             (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
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
    tls_tick();
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
    /* `lru_crawler crawl`, when one was asked for, paced by lru_crawler_sleep */
    storage_crawl_tick(MAINT_INTERVAL_MS * 1000, CRAWL_BUDGET);
    storage_slab_tick(); /* automove (level 1: every 10th tick) and `slabs reassign` moves */
    static unsigned decay_ticks;
    if (++decay_ticks % (1000 / MAINT_INTERVAL_MS) == 0)
        mem_decay(); /* buffers of connections that have gone go back to the system */
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
    /* Before binding and dropping privileges (key files are often root-only); memcached's
     * words and exit codes: 64 for TLS, 1 for the auth file. */
    char serr[1400];
    if (settings.auth_file[0] != '\0' && auth_load(settings.auth_file, serr, sizeof serr) < 0) {
        fprintf(stderr, "%s\n", serr);
        return 1;
    }
    if (tls_setup(&settings, serr, sizeof serr) < 0) {
        fprintf(stderr, "%s\n", serr);
        auth_teardown();
        return CFG_EXIT_USAGE;
    }
    /* Clients (and test harnesses) may connect as soon as listen() returns, well before the
     * signal events exist: hold SIGTERM/SIGINT/SIGHUP pending until they do, so an early
     * signal takes the graceful path instead of the default action. Held again during
     * teardown, so a second SIGTERM cannot kill a process that is already exiting. */
    sigset_t lifecycle_sigs, old_mask;
    sigemptyset(&lifecycle_sigs);
    sigaddset(&lifecycle_sigs, SIGTERM);
    sigaddset(&lifecycle_sigs, SIGINT);
    sigaddset(&lifecycle_sigs, SIGHUP);
    sigaddset(&lifecycle_sigs, SIGUSR1);
    sigprocmask(SIG_BLOCK, &lifecycle_sigs, &old_mask);
    daemon_fit_nofile(settings.conn_limit + FD_HEADROOM + 2 * settings.threads);

    memory_file_absolute();
    if (listen_setup(&settings) < 0)
        return DAEMON_EXIT_OSERR;
    /* each worker has its own socket per TCP address (server/listen.h) */
    daemon_fit_nofile(settings.conn_limit + FD_HEADROOM + 2 * settings.threads + listen_nfds());
    if (settings.daemonize) {
        absolute_for_daemon(&settings.pidfile);
        absolute_for_daemon(&settings.logfile);
        absolute_for_daemon((char **)&settings.config_file);
        rc = daemon_detach();
    }
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
        .chunk_max = settings.slab_chunk_max,
        .evictions = !settings.disable_evictions,
        .use_cas = !settings.disable_cas,
        .shards = shard_count(),
        .automove = settings.slab_automove && !settings.no_slab_reassign,
        .hash_power_init = (unsigned)settings.hashpower,
        .memory_file = memory_file_set() ? settings.memory_file : NULL,
    };
    char err[256] = "";
    if (storage_setup(&scfg, err, sizeof err) < 0) {
        log_error("storage setup failed: %s", err);
        daemon_remove_pidfile(settings.pidfile);
        listen_teardown();
        return DAEMON_EXIT_OSERR;
    }
    if (settings.slab_automove && settings.slab_automove_fast && !settings.no_slab_reassign)
        storage_set_automove(2);
    storage_set_automove_tuning((uint32_t)settings.slab_automove_window,
                                settings.slab_automove_ratio);
    storage_crawl_set_sleep((uint32_t)settings.lru_crawler_sleep);
    storage_set_lru_flat(settings.no_lru_maintainer); /* memcached: lru_segmented = false */
    if (settings.track_sizes)
        (void)storage_sizes_enable(true);
    if (memory_file_set()) {
        bool restored = false;
        if (storage_persist_note(err, sizeof err, &restored) && restored)
            log_info("warm restart: %s", err);
        else if (!restored && err[0] != '\0')
            log_warn("warm restart: %s; starting empty", err);
    }
    struct proto_config pcfg = {
        .item_size_max = settings.item_size_max,
        .mem_limit = settings.mem_limit,
        .flush_enabled = !settings.disable_flush_all,
        .shutdown_enabled = settings.enable_shutdown,
        .verbose = &settings.verbose,
        .settings = &settings,
        .sasl = settings.sasl,
        .cas_disabled = settings.disable_cas,
        .binding = settings.protocol[0] == 'b'   ? PROTO_BIND_BINARY
                   : settings.protocol[1] == 's' ? PROTO_BIND_ASCII
                                                 : PROTO_BIND_AUTO,
        .prefix_delimiter = settings.prefix_delimiter[0],
        .detail_on = settings.detail_on,
        .dump_disabled = settings.disable_dumping,
        .watch_disabled = settings.disable_watch,
        .debug_hooks = settings.debug_hooks,
    };
    proto_setup(&pcfg, &server_hooks);
    for (size_t i = 0; i < nlisteners; i++) /* -vv: memcached's "<FD server listening" */
        proto_trace_listening(listeners[i].fd);
    if (settings.sasl && proto_sasl_setup() < 0) {
        storage_teardown();
        daemon_remove_pidfile(settings.pidfile);
        listen_teardown();
        return EXIT_FAILURE;
    }

    struct event *sig_ev[4] = {0}, *bell_ev = NULL, *maint_ev = NULL;
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
    if (worker_start() < 0 || metrics_start() < 0) {
        worker_stop(0);
        worker_join();
        goto out_workers;
    }
    static const int sigs[4] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    for (int i = 0; i < 4; i++) {
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
    metrics_stop();
    if (save_on_exit)
        save_memory_file();
    rc = 0;

out_events:
    if (maint_ev != NULL)
        event_free(maint_ev);
    if (bell_ev != NULL)
        event_free(bell_ev);
    for (int i = 0; i < 4; i++)
        if (sig_ev[i] != NULL)
            event_free(sig_ev[i]);
out_workers:
    metrics_stop();
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
    tls_teardown();
    auth_teardown();
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
