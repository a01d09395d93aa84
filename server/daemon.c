/*
 * daemon: startup chores outside the request path (see daemon.h). Order in main(): root
 * check, log file, core limit, fd limit, bind, detach, lock memory, drop privileges, pidfile,
 * ... ready — opening and binding first so a root-only log path, a low port or a root-only
 * socket path still work; detaching before mlockall (locks are not inherited by fork) and
 * dropping privileges before any client byte is read.
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
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

static int log_fd = -1;     /* the log file, or -1 */
static bool log_on_stderr; /* stdout and stderr are log_fd now */
static int ready_fd = -1; /* detached child: write end of the readiness pipe */

int daemon_open_logfile(const char *path, bool foreground)
{
    if (path == NULL || path[0] == '\0')
        return 0;
    log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (log_fd < 0) {
        fprintf(stderr, "cannot open log file %s: %s\n", path, strerror(errno));
        return DAEMON_EXIT_CANTCREAT;
    }
    if (foreground) {
        dup2(log_fd, STDOUT_FILENO);
        dup2(log_fd, STDERR_FILENO);
        log_on_stderr = true;
    }
    return 0;
}

void daemon_reopen_logfile(const char *path)
{
    if (!log_on_stderr || path == NULL || path[0] == '\0')
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        log_warn("cannot reopen log file %s: %s; still writing to the old one", path,
                 strerror(errno));
        return;
    }
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    close(log_fd);
    log_fd = fd;
}

int daemon_enable_coredumps(void)
{
    /* memcached's steps: unlimited if allowed, else up to the hard limit; no core is an error. */
    struct rlimit rl, want = {RLIM_INFINITY, RLIM_INFINITY};
    if (getrlimit(RLIMIT_CORE, &rl) == 0 && setrlimit(RLIMIT_CORE, &want) != 0) {
        want.rlim_cur = want.rlim_max = rl.rlim_max;
        (void)setrlimit(RLIMIT_CORE, &want);
    }
    if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur == 0) {
        fprintf(stderr, "failed to ensure corefile creation\n");
        return DAEMON_EXIT_OSERR;
    }
    return 0;
}

void daemon_keep_dumpable(void)
{
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
        log_warn("-r: cannot keep the process dumpable after -u: %s", strerror(errno));
}

void daemon_lock_memory(void)
{
    if (geteuid() == 0) {
        /* Locked pages count against RLIMIT_MEMLOCK after -u drops CAP_IPC_LOCK; lift it while
         * we may, so the item memory allocated later can be locked too. */
        struct rlimit inf = {RLIM_INFINITY, RLIM_INFINITY};
        (void)setrlimit(RLIMIT_MEMLOCK, &inf);
    }
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) /* memcached's wording */
        fprintf(stderr, "warning: -k invalid, mlockall() failed: %s\n", strerror(errno));
}

/* The waiting parent of daemon_detach: never returns. */
static void __attribute__((noreturn)) wait_for_child(pid_t pid, int rfd)
{
    char b;
    ssize_t r;
    do
        r = read(rfd, &b, 1);
    while (r < 0 && errno == EINTR);
    if (r == 1)
        _exit(0);
    /* EOF: the child exited (or exec'd nothing: it never does) before it was ready. */
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
        _exit(WEXITSTATUS(st));
    if (WIFSIGNALED(st))
        fprintf(stderr, "cached: the daemon was killed by signal %d before it was ready\n",
                WTERMSIG(st));
    else
        fprintf(stderr, "cached: the daemon exited before it was ready\n");
    _exit(DAEMON_EXIT_OSERR);
}

int daemon_detach(void)
{
    int p[2];
    if (pipe(p) < 0 || fcntl(p[0], F_SETFD, FD_CLOEXEC) < 0 ||
        fcntl(p[1], F_SETFD, FD_CLOEXEC) < 0) {
        fprintf(stderr, "failed to daemonize: pipe: %s\n", strerror(errno));
        return DAEMON_EXIT_OSERR;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "failed to daemonize: fork: %s\n", strerror(errno));
        close(p[0]);
        close(p[1]);
        return DAEMON_EXIT_OSERR;
    }
    if (pid > 0) {
        close(p[1]);
        wait_for_child(pid, p[0]);
    }
    close(p[0]);
    ready_fd = p[1];
    if (setsid() < 0) {
        fprintf(stderr, "failed to daemonize: setsid: %s\n", strerror(errno));
        return DAEMON_EXIT_OSERR;
    }
    if (chdir("/") < 0) {
        fprintf(stderr, "failed to daemonize: chdir /: %s\n", strerror(errno));
        return DAEMON_EXIT_OSERR;
    }
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    return 0;
}

void daemon_ready(void)
{
    if (ready_fd < 0)
        return;
    int fd = log_fd >= 0 ? log_fd : open("/dev/null", O_WRONLY);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd != log_fd)
            close(fd);
        log_on_stderr = fd == log_fd;
    }
    ssize_t w;
    do
        w = write(ready_fd, "R", 1);
    while (w < 0 && errno == EINTR);
    close(ready_fd);
    ready_fd = -1;
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
