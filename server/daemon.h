/*
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
/* Forks into the background: the parent exits 0, the child gets a new session, cwd /, and
 * stdin/stdout/stderr on /dev/null. */
int daemon_detach(void);
/* Writes our pid to path; daemon_remove_pidfile removes it on a clean exit. */
int daemon_write_pidfile(const char *path);
void daemon_remove_pidfile(const char *path);
