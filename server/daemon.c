/*
 * daemon: startup chores outside the request path (see daemon.h). Order in main(): root
 * check, fd limit, bind, drop privileges, detach, pidfile — binding first so a low port or a
 * root-only socket path still works, dropping before any client byte is read.
 */
#include "server/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/log.h"

int daemon_check_root(const char *user, bool run_as_root)
{
    if (getuid() != 0 && geteuid() != 0)
        return 0;
    if ((user != NULL && user[0] != '\0') || run_as_root)
        return 0;
    /* memcached's wording, so scripts that grep for it keep working. */
    fprintf(stderr, "can't run as root without the -u switch (or --run-as-root)\n");
    return DAEMON_EXIT_USAGE;
}

void daemon_fit_nofile(uint64_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= want)
        return;
    if (rl.rlim_cur == RLIM_INFINITY)
        return;
    struct rlimit nr = rl;
    nr.rlim_cur = want;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        nr.rlim_max = want; /* only root may raise the hard limit; try, then fall back */
    if (setrlimit(RLIMIT_NOFILE, &nr) == 0) {
        log_info("raised the open-file limit from %" PRIu64 " to %" PRIu64,
                 (uint64_t)rl.rlim_cur, want);
        return;
    }
    nr.rlim_max = rl.rlim_max;
    nr.rlim_cur = rl.rlim_max;
    if (nr.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &nr) == 0)
        rl.rlim_cur = nr.rlim_cur;
    log_warn("open-file limit is %" PRIu64 " (hard %" PRIu64 "), below the %" PRIu64
             " needed for the connection limit; new connections may fail past it",
             (uint64_t)rl.rlim_cur, (uint64_t)rl.rlim_max, want);
}

int daemon_drop_privileges(const char *user)
{
    if (user == NULL || user[0] == '\0')
        return 0;
    if (getuid() != 0 && geteuid() != 0) {
        log_info("not root: ignoring -u %s", user);
        return 0;
    }
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        fprintf(stderr, "can't find the user %s to switch to\n", user);
        return DAEMON_EXIT_NOUSER;
    }
    if (pw->pw_uid == 0) {
        log_info("-u %s: staying root", user);
        return 0;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
        setuid(pw->pw_uid) < 0) {
        fprintf(stderr, "failed to assume identity of user %s: %s\n", user, strerror(errno));
        return DAEMON_EXIT_OSERR;
    }
    if (setuid(0) == 0) { /* paranoia: the drop must be permanent */
        fprintf(stderr, "failed to drop root privileges for user %s\n", user);
        return DAEMON_EXIT_OSERR;
    }
    log_info("running as user %s (uid %u)", user, (unsigned)pw->pw_uid);
    return 0;
}

int daemon_detach(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "failed to daemonize: fork: %s\n", strerror(errno));
        return DAEMON_EXIT_OSERR;
    }
    if (pid > 0)
        _exit(0);
    if (setsid() < 0) {
        fprintf(stderr, "failed to daemonize: setsid: %s\n", strerror(errno));
        return DAEMON_EXIT_OSERR;
    }
    if (chdir("/") < 0)
        return DAEMON_EXIT_OSERR;
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    return 0;
}

int daemon_write_pidfile(const char *path)
{
    if (path == NULL || path[0] == '\0')
        return 0;
    /* Write a temporary file and rename it, so a reader never sees a half-written pid. */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        log_error("pidfile path too long: %s", path);
        return DAEMON_EXIT_OSERR;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        log_error("cannot write pidfile %s: %s", path, strerror(errno));
        return DAEMON_EXIT_OSERR;
    }
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0 || rename(tmp, path) < 0) {
        log_error("cannot write pidfile %s: %s", path, strerror(errno));
        unlink(tmp);
        return DAEMON_EXIT_OSERR;
    }
    return 0;
}

void daemon_remove_pidfile(const char *path)
{
    if (path != NULL && path[0] != '\0' && unlink(path) < 0 && errno != ENOENT)
        log_warn("cannot remove pidfile %s: %s", path, strerror(errno));
}
