/*
 * Private to server/: no file outside server/ includes it.
 * daemon: the process-level chores of startup — open-file limit, root policy and dropping
 * privileges, daemonizing, the pidfile. Each failure prints one line and returns an exit code
 * (sysexits.h), which main() exits with.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Exit codes (memcached uses the same ones for the same failures). */
#define DAEMON_EXIT_USAGE 64  /* EX_USAGE: root without -u / --run-as-root */
#define DAEMON_EXIT_NOUSER 67 /* EX_NOUSER: -u names no user */
#define DAEMON_EXIT_OSERR 71  /* EX_OSERR: bind, setuid, fork, storage setup ... failed */

/* Refuses root without -u or --run-as-root. Returns 0 or DAEMON_EXIT_USAGE. */
int daemon_check_root(const char *user, bool run_as_root);
/* Raises RLIMIT_NOFILE to at least `want` fds if allowed; logs when it cannot. */
void daemon_fit_nofile(uint64_t want);
/* Root only: switches to `user` (groups, gid, uid). A no-op (logged) when not root. */
int daemon_drop_privileges(const char *user);
#define DAEMON_EXIT_CANTCREAT 73 /* EX_CANTCREAT: the log file cannot be opened */

/* Opens the log file (append, created 0640) while still root. Returns 0 or
 * DAEMON_EXIT_CANTCREAT. In the foreground stdout and stderr go to it at once; a daemon
 * keeps the terminal until it is ready (daemon_ready), so startup errors are seen. */
int daemon_open_logfile(const char *path, bool foreground);
/* SIGHUP: opens the log file's path again (after logrotate moved it) and sends stdout and
 * stderr there; on failure keeps the old file and says so in it. */
void daemon_reopen_logfile(const char *path);
/* -r: raises the core file size limit to the hard maximum (memcached's -r). Returns 0 or
 * DAEMON_EXIT_OSERR when no core could be written. */
int daemon_enable_coredumps(void);
/* -k: mlockall(MCL_CURRENT | MCL_FUTURE), first lifting RLIMIT_MEMLOCK when root. A failure
 * is a warning, as in memcached. Call after daemon_detach: memory locks are not inherited. */
void daemon_lock_memory(void);
/* After daemon_drop_privileges with -r: setuid cleared the "dumpable" flag; set it back so
 * the core file limit means something. */
void daemon_keep_dumpable(void);
/*
 * Forks into the background with readiness: the child gets a new session, cwd / and stdin on
 * /dev/null, and keeps the terminal's stdout/stderr until daemon_ready(). The parent waits:
 * it exits 0 when the child reports ready, or with the child's own exit code (71 if it died
 * otherwise) when the child fails first; the child's error line is already on the terminal.
 */
int daemon_detach(void);
/* In a detached child: stdout/stderr to the log file (or /dev/null), then releases the
 * waiting parent. A no-op in the foreground. */
void daemon_ready(void);
/* Writes our pid to path; daemon_remove_pidfile removes it on a clean exit. */
int daemon_write_pidfile(const char *path);
void daemon_remove_pidfile(const char *path);
