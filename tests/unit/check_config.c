/*
 * check_config: the configuration layer — embedded defaults; every setting through its short
 * flag, long option, config-file key (both spellings) and -o; -v counting, -l lists, size
 * suffixes; precedence (flag > file > default); each kind of bad input with its exit code and
 * its one line on err; did-you-mean; FILE:LINE errors; --help and --version; SIGHUP reload
 * (only reloadable keys, the command line still wins); cfg_list_next and cfg_each; and the
 * shipped docs (cached.conf.example, tools/cached.1) naming every setting.
 * err and out are captured with open_memstream. Fork mode: each test starts from cfg_init.
 * Files are read relative to the repository root (tests/run.sh runs from there) or $CACHED_ROOT.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "unit.h"

static struct cfg C;
static char *out_txt, *err_txt;
static bool exit_now;
static char conf_path[64] = "";

static void setup(void)
{
    cfg_init(&C);
    out_txt = err_txt = NULL;
}

static void teardown(void)
{
    cfg_free(&C);
    free(out_txt);
    free(err_txt);
    if (conf_path[0])
        unlink(conf_path);
    conf_path[0] = '\0';
}

/* cfg_parse on C with argv = "cached", then the arguments up to NULL; captures out and err. */
static int parsev(const char *const *args)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = "cached";
    for (; *args != NULL && argc < 63; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    size_t on, en;
    free(out_txt);
    free(err_txt);
    FILE *out = open_memstream(&out_txt, &on), *err = open_memstream(&err_txt, &en);
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(err);
    int rc = cfg_parse(&C, argc, argv, out, err, &exit_now);
    fclose(out);
    fclose(err);
    return rc;
}

#define PARSE(...) parsev((const char *const[]){__VA_ARGS__, NULL})

/* Writes a config file and returns its path (removed in teardown). */
static const char *conf(const char *fmt, ...)
{
    if (conf_path[0] == '\0') {
        snprintf(conf_path, sizeof conf_path, "/tmp/check_config.XXXXXX");
        int fd = mkstemp(conf_path);
        ck_assert_int_ge(fd, 0);
        close(fd);
    }
    FILE *f = fopen(conf_path, "w");
    ck_assert_ptr_nonnull(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
    return conf_path;
}

/* The value cfg_each reports for name. */
struct lookup {
    const char *name;
    char value[1024];
    int count;
};

static void lookup_fn(void *arg, const char *name, const char *value)
{
    struct lookup *l = arg;
    if (strcmp(name, l->name) == 0) {
        snprintf(l->value, sizeof l->value, "%s", value);
        l->count++;
    }
}

static const char *value_of(const struct cfg *c, const char *name)
{
    static struct lookup l;
    l = (struct lookup){.name = name};
    cfg_each(c, lookup_fn, &l);
    ck_assert_msg(l.count == 1, "cfg_each names %s %d times", name, l.count);
    return l.value;
}

#define ERR_HAS(s) ck_assert_msg(err_txt &&strstr(err_txt, s), "err %s lacks %s", err_txt, s)
#define ONE_LINE()                                                                                 \
    ck_assert_msg(err_txt &&strncmp(err_txt, "cached: ", 8) == 0 &&                                \
                      strchr(err_txt, '\n') == err_txt + strlen(err_txt) - 1,                      \
                  "not one 'cached: ' line: [%s]", err_txt)

/* ---- defaults ---- */

START_TEST(test_defaults)
{
    ck_assert_uint_eq(C.port, 11211);
    ck_assert_str_eq(C.listen, "127.0.0.1");
    ck_assert_str_eq(C.unix_socket, "");
    ck_assert_uint_eq(C.unix_mask, 0700);
    ck_assert_uint_eq(C.mem_limit_mb, 64);
    ck_assert_uint_eq(C.mem_limit, 64u << 20);
    ck_assert(!C.disable_evictions);
    ck_assert_uint_eq(C.conn_limit, 1024);
    ck_assert_uint_eq(C.threads, 4);
    ck_assert_uint_eq(C.item_size_max, 1u << 20);
    ck_assert(C.growth_factor == 1.25);
    ck_assert_uint_eq(C.chunk_min, 48);
    ck_assert(!C.disable_cas && !C.disable_flush_all && !C.enable_shutdown);
    ck_assert_uint_eq(C.backlog, 1024);
    ck_assert_uint_eq(C.reqs_per_event, 20);
    ck_assert_uint_eq(C.verbose, 0);
    ck_assert(!C.daemonize && !C.run_as_root && !C.tcp_keepalive);
    ck_assert_uint_eq(C.idle_timeout, 0);
    ck_assert_uint_eq(C.shards, 0);
    ck_assert(C.slab_automove && C.sweeper);
    ck_assert_uint_eq(C.max_output, 4u << 20);
    ck_assert_ptr_null(C.config_file);
    /* No arguments at all: the defaults, no output. */
    ck_assert_int_eq(parsev((const char *const[]){NULL}), 0);
    ck_assert(!exit_now);
    ck_assert_str_eq(err_txt, "");
    ck_assert_uint_eq(C.port, 11211);
}
END_TEST

/* ---- every setting, every way of giving it ---- */

struct setting_case {
    const char *shortf; /* NULL: no short flag (or tested separately) */
    const char *name;   /* long option, '-' spelling */
    const char *val;    /* as typed */
    const char *expect; /* as cfg_each reports it */
};

static const struct setting_case cases[] = {
    {"-p", "port", "1234", "1234"},
    {"-l", "listen", "::1", "::1"},
    {"-s", "unix-socket", "/tmp/cached.sock", "/tmp/cached.sock"},
    {"-a", "unix-mask", "770", "0770"},
    {"-m", "memory-limit", "128", "128"},
    {"-M", "disable-evictions", "yes", "yes"},
    {"-c", "conn-limit", "10", "10"},
    {"-t", "threads", "2", "2"},
    {"-I", "max-item-size", "512k", "524288"},
    {"-f", "slab-growth-factor", "1.5", "1.5"},
    {"-n", "slab-min-size", "64", "64"},
    {"-C", "disable-cas", "yes", "yes"},
    {"-F", "disable-flush-all", "yes", "yes"},
    {"-A", "enable-shutdown", "yes", "yes"},
    {"-b", "listen-backlog", "50", "50"},
    {"-R", "max-reqs-per-event", "5", "5"},
    {"-u", "user", "nobody", "nobody"},
    {NULL, "run-as-root", "yes", "yes"},
    {"-P", "pidfile", "/tmp/cached.pid", "/tmp/cached.pid"},
    {"-e", "memory-file", "/dev/shm/cached.mem", "/dev/shm/cached.mem"},
    {NULL, "verbose", "2", "2"}, /* -v counts: test_verbose */
    {"-d", "daemon", "yes", "yes"},
    {NULL, "logfile", "/tmp/cached.log", "/tmp/cached.log"},
    {"-r", "enable-coredumps", "yes", "yes"},
    {"-k", "lock-memory", "yes", "yes"},
    {NULL, "idle-timeout", "10", "10"},
    {NULL, "tcp-keepalive", "yes", "yes"},
    {NULL, "hash-shards", "32", "32"},
    {NULL, "slab-automove", "no", "no"},
    {NULL, "expiry-sweeper", "no", "no"},
    {NULL, "max-output", "1m", "1048576"},
    {NULL, "metrics-port", "9150", "9150"},
    {NULL, "metrics-listen", "::1", "::1"},
    {"-Y", "auth-file", "/tmp/users", "/tmp/users"},
    {"-Z", "enable-ssl", "yes", "yes"},
    {NULL, "ssl-chain-cert", "/tmp/c.pem", "/tmp/c.pem"},
    {NULL, "ssl-key", "/tmp/k.pem", "/tmp/k.pem"},
    {NULL, "ssl-keyformat", "2", "2"},
    {NULL, "ssl-verify-mode", "3", "3"},
    {NULL, "ssl-ca-cert", "/tmp/ca.pem", "/tmp/ca.pem"},
    {NULL, "ssl-ciphers", "HIGH", "HIGH"},
    {NULL, "ssl-min-version", "3", "3"},
    {NULL, "ssl-session-cache", "no", "no"},
    {NULL, "ssl-wbuf-size", "32", "32"},
    {NULL, "ssl-handshake-priority", "low", "low"},
    {"-S", "enable-sasl", "yes", "yes"},
    {"-B", "binding-protocol", "ascii", "ascii"},
    {"-D", "stats-prefix-delimiter", "/", "/"},
    {"-X", "disable-dumping", "yes", "yes"},
    {"-W", "disable-watch", "yes", "yes"},
    {NULL, "slab-chunk-max", "16k", "16384"},
    {NULL, "hashpower", "20", "20"},
    {NULL, "watcher-logbuf-size", "8", "8"},
    {NULL, "debug-hooks", "yes", "yes"},
};
#define NCASES (sizeof cases / sizeof *cases)

static bool is_switch(const struct setting_case *k)
{
    return strcmp(k->val, "yes") == 0 || strcmp(k->val, "no") == 0;
}

static void underscore(const char *in, char *out)
{
    for (; *in; in++)
        *out++ = *in == '-' ? '_' : *in;
    *out = '\0';
}

static void expect_case(const struct setting_case *k, const char *how)
{
    char key[64];
    underscore(k->name, key);
    ck_assert_msg(strcmp(value_of(&C, key), k->expect) == 0, "%s %s: got %s, want %s", how, k->name,
                  value_of(&C, key), k->expect);
}

static bool tls_on; /* an ssl_* case: TLS is on, or the ssl_* option is refused */

static void fresh(void)
{
    cfg_free(&C);
    cfg_init(&C);
    C.ssl_enabled = tls_on;
}

START_TEST(test_setting_every_way)
{
    const struct setting_case *k = &cases[_i];
    char opt[96], key[64];
    underscore(k->name, key);
    bool sw = is_switch(k);
    tls_on = strncmp(k->name, "ssl-", 4) == 0;
    C.ssl_enabled = tls_on;

    if (k->shortf != NULL) {
        int rc = sw ? PARSE(k->shortf) : PARSE(k->shortf, k->val);
        ck_assert_msg(rc == 0, "%s: %s", k->shortf, err_txt);
        expect_case(k, k->shortf);
        fresh();
        /* memcached.conf: the same flag on a line of the config file. */
        rc = PARSE("--config",
                   sw ? conf("%s\n", k->shortf) : conf("# c\n%s %s # c\n", k->shortf, k->val));
        ck_assert_msg(rc == 0, "file line %s: %s", k->shortf, err_txt);
        expect_case(k, "memcached.conf line");
        fresh();
    }
    /* A long option on a memcached.conf line. */
    snprintf(opt, sizeof opt, "--%s=%s", k->name, k->val);
    ck_assert_msg(PARSE("--config", conf("%s\n", opt)) == 0, "file line %s: %s", opt, err_txt);
    expect_case(k, "memcached.conf --name=value line");
    fresh();
    snprintf(opt, sizeof opt, "--%s=%s", k->name, k->val);
    ck_assert_msg(PARSE(opt) == 0, "%s: %s", opt, err_txt);
    expect_case(k, "--name=value");
    fresh();
    if (!sw && strcmp(k->name, "verbose") != 0) { /* --verbose's value is optional: =N */
        snprintf(opt, sizeof opt, "--%s", k->name);
        ck_assert_msg(PARSE(opt, k->val) == 0, "%s: %s", opt, err_txt);
        expect_case(k, "--name value");
        fresh();
    } else if (strcmp(k->val, "yes") == 0) {
        snprintf(opt, sizeof opt, "--%s", k->name);
        ck_assert_msg(PARSE(opt) == 0, "%s: %s", opt, err_txt);
        expect_case(k, "--switch");
        fresh();
    }
    /* The config file, both spellings of the key. */
    ck_assert_int_eq(PARSE("--config", conf("%s = %s\n", k->name, k->val)), 0);
    expect_case(k, "file key");
    fresh();
    ck_assert_int_eq(PARSE("--config", conf("%s=%s\n", key, k->val)), 0);
    expect_case(k, "file key_");
    fresh();
    /* -o, both spellings. */
    snprintf(opt, sizeof opt, "%s=%s", key, k->val);
    ck_assert_msg(PARSE("-o", opt) == 0, "-o %s: %s", opt, err_txt);
    expect_case(k, "-o");
    fresh();
    snprintf(opt, sizeof opt, "%s=%s", k->name, k->val);
    ck_assert_msg(PARSE("-o", opt) == 0, "-o %s: %s", opt, err_txt);
    expect_case(k, "-o -");
}
END_TEST

/* The cases above cover every row of the table (a new setting must get a case). */
static int each_count;
static void count_fn(void *arg, const char *name, const char *value)
{
    (void)arg;
    (void)value;
    if (strcmp(name, "config") == 0)
        return;
    each_count++;
    bool found = false;
    char key[64];
    for (size_t i = 0; i < NCASES; i++) {
        underscore(cases[i].name, key);
        found |= strcmp(key, name) == 0;
    }
    ck_assert_msg(found, "setting %s has no test case", name);
}

START_TEST(test_cases_cover_table)
{
    each_count = 0;
    cfg_each(&C, count_fn, NULL);
    ck_assert_int_eq(each_count, (int)NCASES);
}
END_TEST

/* ---- details of particular flags ---- */

START_TEST(test_ssl_needs_tls)
{
    tls_on = false;
    ck_assert_int_eq(PARSE("-o", "ssl_chain_cert=/tmp/c.pem"), CFG_EXIT_USAGE);
    ck_assert_str_eq(err_txt, "cached: ssl_chain_cert is set but TLS is off: add -Z "
                              "(--enable-ssl) or remove it\n");
    fresh();
    /* A default spelled out on the command line is still a mistake without -Z. */
    ck_assert_int_eq(PARSE("-o", "ssl_session_cache"), CFG_EXIT_USAGE);
    fresh();
    ck_assert_int_eq(PARSE("-Z", "-o", "ssl_chain_cert=/tmp/c.pem,ssl_verify_mode=2"), 0);
    ck_assert_uint_eq(C.ssl_verify_mode, 2);
    fresh();
    ck_assert_int_eq(PARSE("-o", "ssl_verify_mode=4", "-Z"), CFG_EXIT_USAGE);
    fresh();
    ck_assert_int_eq(PARSE("-Z", "-l", "127.0.0.1,notls:127.0.0.1:11212"), 0);
    ck_assert_str_eq(value_of(&C, "listen"), "127.0.0.1,notls:127.0.0.1:11212");
}
END_TEST

START_TEST(test_verbose)
{
    ck_assert_int_eq(PARSE("-v"), 0);
    ck_assert_uint_eq(C.verbose, 1);
    fresh();
    ck_assert_int_eq(PARSE("-vv"), 0);
    ck_assert_uint_eq(C.verbose, 2);
    fresh();
    ck_assert_int_eq(PARSE("-vvv"), 0);
    ck_assert_uint_eq(C.verbose, 3);
    fresh();
    ck_assert_int_eq(PARSE("-vvvvv"), 0); /* capped, like a louder -vvv */
    ck_assert_uint_eq(C.verbose, 3);
    fresh();
    ck_assert_int_eq(PARSE("-v", "-v"), 0);
    ck_assert_uint_eq(C.verbose, 2);
    fresh();
    ck_assert_int_eq(PARSE("--verbose"), 0);
    ck_assert_uint_eq(C.verbose, 1);
    fresh();
    ck_assert_int_eq(PARSE("--verbose=3"), 0);
    ck_assert_uint_eq(C.verbose, 3);
    fresh();
    /* The command line's -v replaces the file's level rather than adding to it. */
    ck_assert_int_eq(PARSE("--config", conf("verbose = 2\n"), "-v"), 0);
    ck_assert_uint_eq(C.verbose, 1);
    fresh();
    ck_assert_int_eq(PARSE("--verbose=4"), CFG_EXIT_USAGE);
    ERR_HAS("out of range (0 to 3)");
}
END_TEST

START_TEST(test_listen_lists)
{
    ck_assert_int_eq(PARSE("-l", "127.0.0.1", "-l", "::1"), 0);
    ck_assert_str_eq(C.listen, "127.0.0.1,::1");
    fresh();
    ck_assert_int_eq(PARSE("-l", "127.0.0.1, [::1]", "--listen=[::1]:11300,localhost:5"), 0);
    ck_assert_str_eq(C.listen, "127.0.0.1,[::1],[::1]:11300,localhost:5");
    fresh();
    ck_assert_int_eq(PARSE("-l", "0.0.0.0", "-l", "*", "-l", "fe80::1"), 0);
    ck_assert_str_eq(C.listen, "0.0.0.0,*,fe80::1");
    fresh();
    /* The file's lines append to each other; the command line replaces the file's list. */
    ck_assert_int_eq(PARSE("--config", conf("listen = 127.0.0.1\nlisten = ::1\n")), 0);
    ck_assert_str_eq(C.listen, "127.0.0.1,::1");
    fresh();
    ck_assert_int_eq(
        PARSE("--config", conf("listen = 127.0.0.1\nlisten = ::1\n"), "-l", "127.0.0.2"), 0);
    ck_assert_str_eq(C.listen, "127.0.0.2");
}
END_TEST

START_TEST(test_list_next)
{
    const char *pos = NULL;
    char buf[16];
    ck_assert(cfg_list_next("a,b,,[::1]:5", &pos, buf, sizeof buf));
    ck_assert_str_eq(buf, "a");
    ck_assert(cfg_list_next("a,b,,[::1]:5", &pos, buf, sizeof buf));
    ck_assert_str_eq(buf, "b");
    ck_assert(cfg_list_next("a,b,,[::1]:5", &pos, buf, sizeof buf));
    ck_assert_str_eq(buf, "[::1]:5");
    ck_assert(!cfg_list_next("a,b,,[::1]:5", &pos, buf, sizeof buf));
    ck_assert(!cfg_list_next("a,b,,[::1]:5", &pos, buf, sizeof buf));
    pos = NULL;
    ck_assert(!cfg_list_next("", &pos, buf, sizeof buf));
    pos = NULL;
    ck_assert(!cfg_list_next(NULL, &pos, buf, sizeof buf));
    pos = NULL;
    char small[4];
    ck_assert(cfg_list_next("abcdef,g", &pos, small, sizeof small));
    ck_assert_str_eq(small, "abc"); /* truncated, and the next element is still found */
    ck_assert(cfg_list_next("abcdef,g", &pos, small, sizeof small));
    ck_assert_str_eq(small, "g");
}
END_TEST

START_TEST(test_sizes)
{
    static const struct {
        const char *arg;
        uint64_t bytes;
    } ok[] = {{"1k", 1024},    {"1K", 1024},         {"512k", 512 << 10}, {"2m", 2 << 20},
              {"2M", 2 << 20}, {"1048576", 1 << 20}, {"32m", 32u << 20},  {"1024", 1024}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        fresh();
        ck_assert_msg(PARSE("-I", ok[i].arg) == 0, "-I %s: %s", ok[i].arg, err_txt);
        ck_assert_uint_eq(C.item_size_max, ok[i].bytes);
    }
    fresh();
    ck_assert_int_eq(PARSE("-m", "2048", "-I", "1g"), 0);
    ck_assert_uint_eq(C.item_size_max, 1u << 30);
    /* -m: megabytes, or a suffix that comes to whole megabytes. */
    fresh();
    ck_assert_int_eq(PARSE("-m", "1g"), 0);
    ck_assert_uint_eq(C.mem_limit_mb, 1024);
    ck_assert_uint_eq(C.mem_limit, 1ull << 30);
    fresh();
    ck_assert_int_eq(PARSE("-m", "512m"), 0);
    ck_assert_uint_eq(C.mem_limit_mb, 512);
    fresh();
    ck_assert_int_eq(PARSE("-m", "2048k"), 0);
    ck_assert_uint_eq(C.mem_limit_mb, 2);
    fresh();
    ck_assert_int_eq(PARSE("--memory-limit=100"), 0);
    ck_assert_uint_eq(C.mem_limit, 100ull << 20);
    fresh();
    ck_assert_int_eq(PARSE("-o", "max_output=64k"), 0);
    ck_assert_uint_eq(C.max_output, 65536);
}
END_TEST

START_TEST(test_octal_mask)
{
    ck_assert_int_eq(PARSE("-a", "0777"), 0);
    ck_assert_uint_eq(C.unix_mask, 0777);
    fresh();
    ck_assert_int_eq(PARSE("-a", "0"), 0);
    ck_assert_uint_eq(C.unix_mask, 0);
    fresh();
    ck_assert_int_eq(PARSE("-a", "1000"), CFG_EXIT_USAGE);
    ERR_HAS("-a/--unix-mask: 1000 is out of range (00 to 0777)");
    fresh();
    ck_assert_int_eq(PARSE("-a", "8"), CFG_EXIT_USAGE);
    ERR_HAS("'8' is not an octal number");
}
END_TEST

START_TEST(test_switch_values)
{
    static const char *const on[] = {"true", "yes", "on", "1", "TRUE", "Yes"};
    static const char *const off[] = {"false", "no", "off", "0", "OFF"};
    for (size_t i = 0; i < sizeof on / sizeof *on; i++) {
        fresh();
        ck_assert_int_eq(PARSE("--config", conf("tcp_keepalive = %s\n", on[i])), 0);
        ck_assert(C.tcp_keepalive);
    }
    for (size_t i = 0; i < sizeof off / sizeof *off; i++) {
        fresh();
        ck_assert_int_eq(PARSE("--config", conf("expiry-sweeper = %s\n", off[i])), 0);
        ck_assert(!C.sweeper);
    }
    fresh();
    ck_assert_int_eq(PARSE("--slab-automove=off", "--disable-cas=false", "-M"), 0);
    ck_assert(!C.slab_automove && !C.disable_cas && C.disable_evictions);
    fresh();
    ck_assert_int_eq(PARSE("--config", conf("tcp_keepalive = maybe\n")), CFG_EXIT_CONFIG);
    ERR_HAS(":1: tcp_keepalive: 'maybe' is not a boolean");
}
END_TEST

START_TEST(test_extended)
{
    ck_assert_int_eq(PARSE("-o", "idle_timeout=10,hash-shards=16"), 0);
    ck_assert_uint_eq(C.idle_timeout, 10);
    ck_assert_uint_eq(C.shards, 16);
    fresh();
    ck_assert_int_eq(PARSE("-o", "idle_timeout=3", "-o", "tcp_keepalive"), 0);
    ck_assert_uint_eq(C.idle_timeout, 3);
    ck_assert(C.tcp_keepalive);
    fresh();
    ck_assert_int_eq(PARSE("--extended=no_slab_automove,no_expiry_sweeper"), 0);
    ck_assert(!C.slab_automove && !C.sweeper);
    fresh();
    /* memcached's slab_automove is 0, 1 or 2. */
    ck_assert_int_eq(PARSE("-o", "slab_automove=0"), 0);
    ck_assert(!C.slab_automove);
    fresh();
    ck_assert_int_eq(PARSE("-o", "slab_automove=2"), 0);
    ck_assert(C.slab_automove);
    fresh();
    /* memcached's no-ops and its own defaults: what cached does anyway. */
    ck_assert_int_eq(PARSE("-o", "modern,maxconns_fast,slab_reassign,lru_maintainer,"
                                 "no_drop_privileges,relaxed_privileges,no_chunked_items"),
                     0);
    ck_assert_str_eq(err_txt, "");
    ck_assert_uint_eq(C.port, 11211);
    fresh();
    /* hashpower sizes the table (12 to 32, as memcached); watcher_logbuf_size is kilobytes. */
    ck_assert_int_eq(PARSE("-o", "hashpower=20,watcher_logbuf_size=8"), 0);
    ck_assert_uint_eq(C.hashpower, 20);
    ck_assert_uint_eq(C.watcher_logbuf_size, 8);
    fresh();
    ck_assert_int_eq(PARSE("-o", "hashpower=11"), CFG_EXIT_USAGE);
    ERR_HAS("-o hashpower: 11 is too low");
    fresh();
    ck_assert_int_eq(PARSE("-o", "hashpower=33"), CFG_EXIT_USAGE);
    fresh();
    /* knobs whose effect cached lacks are refused with the reason, never accepted */
    static const char *const refused[] = {
        "hash_algorithm=murmur3", "tail_repair_time=10",
        "worker_logbuf_size=64", "slab_automove_freeratio=0.1"};
    for (size_t k = 0; k < sizeof refused / sizeof *refused; k++) {
        ck_assert_int_eq(PARSE("-o", refused[k]), CFG_EXIT_USAGE);
        ERR_HAS("is not supported: ");
        ONE_LINE();
        fresh();
    }
    /* the automover's window and age ratio, and a crawl's items per class, as memcached's */
    ck_assert_int_eq(PARSE("-o", "slab_automove_window=5,slab_automove_ratio=0.5"), 0);
    ck_assert_uint_eq(C.slab_automove_window, 5);
    ck_assert(C.slab_automove_ratio == 0.5);
    fresh();
    ck_assert_int_eq(PARSE("-o", "lru_crawler_tocrawl=7"), 0);
    ck_assert_uint_eq(C.lru_crawler_tocrawl, 7);
    fresh();
    /* memcached's crawler pause (atoi, 0..1000000 µs) and its sizes histogram */
    ck_assert_uint_eq(C.lru_crawler_sleep, 100);
    ck_assert(!C.track_sizes);
    ck_assert_int_eq(PARSE("-o", "lru_crawler_sleep=2500,track_sizes"), 0);
    ck_assert_uint_eq(C.lru_crawler_sleep, 2500);
    ck_assert(C.track_sizes);
    fresh();
    ck_assert_int_eq(PARSE("-o", "lru_crawler_sleep=abc"), 0); /* atoi: 0, as memcached */
    ck_assert_uint_eq(C.lru_crawler_sleep, 0);
    fresh();
    static const char *const bad_sleep[] = {"lru_crawler_sleep=1000001", "lru_crawler_sleep=-1",
                                            "lru_crawler_sleep"};
    for (size_t k = 0; k < sizeof bad_sleep / sizeof *bad_sleep; k++) {
        ck_assert_int_eq(PARSE("-o", bad_sleep[k]), CFG_EXIT_USAGE);
        ERR_HAS("lru_crawler_sleep");
        ONE_LINE();
        fresh();
    }
    static const char *const bad[] = {"slab_automove_window=2", "slab_automove_ratio=0",
                                      "slab_automove_ratio=1.5", "slab_automove_window",
                                      "lru_crawler_tocrawl=x"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        ck_assert_int_eq(PARSE("-o", bad[k]), CFG_EXIT_USAGE);
        ONE_LINE();
        fresh();
    }
    /* no_slab_reassign (and no_modern) refuse `slabs reassign`; slab_reassign undoes it */
    ck_assert_int_eq(PARSE("-o", "no_slab_reassign"), 0);
    ck_assert(C.no_slab_reassign && !C.slab_automove);
    fresh();
    ck_assert_int_eq(PARSE("-o", "no_modern,slab_reassign"), 0);
    ck_assert(!C.no_slab_reassign);
    fresh();
    /* memcached takes any resp_obj_mem_limit, says it is deprecated and ignores it */
    ck_assert_int_eq(PARSE("-o", "resp_obj_mem_limit=5"), 0);
    ERR_HAS("DEPRECATED: resp_obj_mem_limit no longer used");
    fresh();
    /* -D turns stats detail on, as memcached's */
    ck_assert_int_eq(PARSE("-D", "#"), 0);
    ck_assert(C.detail_on);
    fresh();
    ck_assert_int_eq(PARSE("-p", "1"), 0);
    ck_assert(!C.detail_on);
    fresh();
    /* memcached's LRU crawler is cached's expiry sweeper. */
    ck_assert_int_eq(PARSE("-o", "no_lru_crawler"), 0);
    ck_assert(!C.sweeper);
    fresh();
    ck_assert_int_eq(PARSE("-o", "no_lru_crawler,lru_crawler"), 0);
    ck_assert(C.sweeper);
    fresh();
    ck_assert_int_eq(PARSE("-o", "read_buf_mem_limit=0"), 0);
    fresh();
    /* no_modern: no page moves and no crawler (eviction stays CLOCK). */
    ck_assert_int_eq(PARSE("-o", "no_modern"), 0);
    ck_assert(!C.slab_automove && !C.sweeper && C.no_lru_maintainer);
    fresh();
    /* no_lru_maintainer: memcached's automover runs in that thread, so no page moves */
    ck_assert_int_eq(PARSE("-o", "no_lru_maintainer"), 0);
    ck_assert(!C.slab_automove && C.sweeper && C.no_lru_maintainer);
    fresh();
    ck_assert_int_eq(PARSE("-o", "lru_crawler"), 0);
    ck_assert(!C.no_lru_maintainer);
    fresh();
    /* -p -1: an ephemeral port. */
    ck_assert_int_eq(PARSE("-p", "-1"), 0);
    ck_assert(C.port_ephemeral && C.port == 0);
    fresh();
    ck_assert_int_eq(PARSE("-o", "idle_timot=5"), CFG_EXIT_USAGE);
    ERR_HAS("unknown -o key 'idle_timot' (did you mean 'idle_timeout'?)");
    ONE_LINE();
    fresh();
    ck_assert_int_eq(PARSE("-o", "hashpowr=3"), CFG_EXIT_USAGE);
    ERR_HAS("(did you mean 'hashpower'?)");
    fresh();
    ck_assert_int_eq(PARSE("-o", "idle_timeout"), CFG_EXIT_USAGE);
    ERR_HAS("-o idle_timeout needs a value");
    fresh();
    ck_assert_int_eq(PARSE("-o", "idle_timeout=x"), CFG_EXIT_USAGE);
    ERR_HAS("-o idle_timeout: 'x' is not a number");
    fresh();
    ck_assert_int_eq(PARSE("-o", "ext_path=/mnt/x:1G"), CFG_EXIT_USAGE);
    ERR_HAS("unknown -o key 'ext_path'");
    fresh();
    ck_assert_int_eq(PARSE("-o", ""), CFG_EXIT_USAGE);
    ONE_LINE();
}
END_TEST

START_TEST(test_udp_compat)
{
    ck_assert_int_eq(PARSE("-U", "0"), 0);
    fresh();
    ck_assert_str_eq(err_txt, "");
    fresh();
    /* no UDP is served: a UDP port is refused, not accepted and ignored */
    ck_assert_int_eq(PARSE("-U", "11211"), CFG_EXIT_USAGE);
    ERR_HAS("-U 11211: UDP is not served");
    ONE_LINE();
    fresh();
    ck_assert_int_eq(PARSE("-U", "-1"), CFG_EXIT_USAGE);
    fresh();
    ck_assert_int_eq(PARSE("-U", "x"), CFG_EXIT_USAGE);
}
END_TEST

/* ---- precedence ---- */

START_TEST(test_precedence)
{
    const char *f = conf("port = 2000\nthreads = 8\n");
    ck_assert_int_eq(PARSE("--config", f), 0);
    ck_assert_uint_eq(C.port, 2000); /* file over default */
    ck_assert_uint_eq(C.threads, 8);
    ck_assert_uint_eq(C.conn_limit, 1024); /* default where the file is silent */
    ck_assert_str_eq(C.config_file, f);
    fresh();
    ck_assert_int_eq(PARSE("--config", f, "-p", "3000"), 0);
    ck_assert_uint_eq(C.port, 3000); /* flag over file */
    ck_assert_uint_eq(C.threads, 8);
    fresh();
    ck_assert_int_eq(PARSE("-p", "3000", "--config", f), 0);
    ck_assert_uint_eq(C.port, 3000); /* whatever the order on the command line */
    fresh();
    ck_assert_int_eq(PARSE("-p", "3000", "-p", "3001"), 0);
    ck_assert_uint_eq(C.port, 3001); /* the last flag wins */
    fresh();
    ck_assert_int_eq(PARSE("--config=/nonexistent/a", "--config", f), 0); /* last --config */
    ck_assert_uint_eq(C.port, 2000);
}
END_TEST

/* ---- the config file format ---- */

START_TEST(test_file_nul_byte)
{
    FILE *f = fopen(conf("%s", ""), "w");
    fwrite("port = 5\nthreads = 2\0junk\n", 1, 26, f);
    fclose(f);
    ck_assert_int_eq(PARSE("--config", conf_path), CFG_EXIT_CONFIG);
    ERR_HAS(":2: NUL byte in line");
    ONE_LINE();
}
END_TEST

START_TEST(test_file_format)
{
    const char *f = conf("# a comment\n"
                         "\n"
                         "   # indented comment\n"
                         "port = 2001   # trailing comment\n"
                         "\tthreads\t=\t3\t\n"
                         "pidfile = /tmp/a#b.pid\n"
                         "user = \"nobody\"\n"
                         "unix_socket =\n"
                         "idle-timeout = 7\r\n"
                         "max_item_size = 2m");
    ck_assert_msg(PARSE("--config", f) == 0, "%s", err_txt);
    ck_assert_uint_eq(C.port, 2001);
    ck_assert_uint_eq(C.threads, 3);
    ck_assert_str_eq(C.pidfile, "/tmp/a#b.pid");
    ck_assert_str_eq(C.user, "nobody");
    ck_assert_str_eq(C.unix_socket, "");
    ck_assert_uint_eq(C.idle_timeout, 7);
    ck_assert_uint_eq(C.item_size_max, 2u << 20);
    fresh();
    ck_assert_int_eq(PARSE("--config", conf("")), 0); /* empty file: the defaults */
    ck_assert_uint_eq(C.port, 11211);
}
END_TEST

/* ---- bad input: exit code and the one line ---- */

struct bad_case {
    const char *a[6];
    const char *file; /* config file contents, when a[] names "FILE" */
    int rc;
    const char *msg;
};

static const struct bad_case bad[] = {
    {{"--prot", "5"}, NULL, CFG_EXIT_USAGE, "unknown option '--prot' (did you mean '--port'?)"},
    {{"--max-item-sise=1m"}, NULL, CFG_EXIT_USAGE, "(did you mean '--max-item-size'?)"},
    {{"--threds=2"}, NULL, CFG_EXIT_USAGE, "(did you mean '--threads'?)"},
    {{"--conifg", "x"}, NULL, CFG_EXIT_USAGE, "(did you mean '--config'?)"},
    {{"--zzzzzzzz"}, NULL, CFG_EXIT_USAGE, "unknown option '--zzzzzzzz'\n"},
    {{"--disable"}, NULL, CFG_EXIT_USAGE, "ambiguous option '--disable' (could be"},
    {{"-x"}, NULL, CFG_EXIT_USAGE, "unknown option -x"},
    {{"--port=5", "-vx"}, NULL, CFG_EXIT_USAGE, "unknown option -x (see cached --help)"},
    {{"--version=2"}, NULL, CFG_EXIT_USAGE, "option --version takes no value"},
    {{"-p"}, NULL, CFG_EXIT_USAGE, "option -p needs a value"},
    {{"--port"}, NULL, CFG_EXIT_USAGE, "option --port needs a value"},
    {{"--config"}, NULL, CFG_EXIT_USAGE, "option --config needs a file name"},
    {{"--help=1"}, NULL, CFG_EXIT_USAGE, "option --help takes no value"},
    {{"extra"}, NULL, CFG_EXIT_USAGE, "unexpected argument 'extra'"},
    {{"-p", "abc"}, NULL, CFG_EXIT_USAGE, "-p/--port: 'abc' is not a number"},
    {{"-p", "-2"}, NULL, CFG_EXIT_USAGE, "-p/--port: '-2' is not a number"},
    {{"-B", "text"}, NULL, CFG_EXIT_USAGE, "'text' is not a protocol (auto, ascii, binary)"},
    {{"-D", "::"}, NULL, CFG_EXIT_USAGE, "'::' is not one character"},
    {{"-o", "slab_sizes=96-256"}, NULL, CFG_EXIT_USAGE, "-o slab_sizes is not supported"},
    {{"-o", "read_buf_mem_limit=64"}, NULL, CFG_EXIT_USAGE, "no pool of read buffers"},
    {{"-p", "12 "}, NULL, CFG_EXIT_USAGE, "'12 ' is not a number"},
    {{"-p", ""}, NULL, CFG_EXIT_USAGE, "'' is not a number"},
    {{"-p", "70000"}, NULL, CFG_EXIT_USAGE, "-p/--port: 70000 is out of range (0 to 65535)"},
    {{"-p", "99999999999999999999999"}, NULL, CFG_EXIT_USAGE, "is out of range"},
    {{"-t", "0"}, NULL, CFG_EXIT_USAGE, "-t/--threads: 0 is out of range (1 to 256)"},
    {{"-t", "257"}, NULL, CFG_EXIT_USAGE, "257 is out of range (1 to 256)"},
    {{"-c", "0"}, NULL, CFG_EXIT_USAGE, "-c/--conn-limit: 0 is out of range"},
    {{"-m", "0"}, NULL, CFG_EXIT_USAGE, "-m/--memory-limit: 0 is out of range"},
    {{"-m", "64k"}, NULL, CFG_EXIT_USAGE, "'64k' is not a whole number of megabytes"},
    {{"-m", "64x"}, NULL, CFG_EXIT_USAGE, "'64x' is not a size"},
    {{"-I", "512"}, NULL, CFG_EXIT_USAGE, "-I/--max-item-size: 512 is out of range (1k to 1g)"},
    {{"-I", "2g"}, NULL, CFG_EXIT_USAGE, "2g is out of range (1k to 1g)"},
    {{"-I", "1.5m"}, NULL, CFG_EXIT_USAGE, "'1.5m' is not a size"},
    {{"-I", "1mb"}, NULL, CFG_EXIT_USAGE, "'1mb' is not a size"},
    {{"-I", "99999999999g"}, NULL, CFG_EXIT_USAGE, "is out of range"},
    {{"-I", "128m"},
     NULL,
     CFG_EXIT_USAGE,
     "max item size 128m (-I) is larger than half the memory limit 64 MB (-m)"},
    {{"-m", "1", "-I", "2m"}, NULL, CFG_EXIT_USAGE, "is larger than half the memory limit 1 MB"},
    {{"-n", "4096", "-I", "4k"},
     NULL,
     CFG_EXIT_USAGE,
     "slab min size 4096 (-n) must be smaller than the max item size 4k (-I)"},
    {{"-n", "4"}, NULL, CFG_EXIT_USAGE, "-n/--slab-min-size: 4 is out of range (8 to"},
    {{"-f", "1.0"}, NULL, CFG_EXIT_USAGE, "-f/--slab-growth-factor: 1.0 is out of range"},
    {{"-f", "x"}, NULL, CFG_EXIT_USAGE, "'x' is not a number"},
    {{"-f", "nan"}, NULL, CFG_EXIT_USAGE, "'nan' is not a number"},
    {{"-b", "0"}, NULL, CFG_EXIT_USAGE, "listen-backlog: 0 is out of range"},
    {{"-R", "0"}, NULL, CFG_EXIT_USAGE, "max-reqs-per-event: 0 is out of range"},
    {{"--hash-shards=12"}, NULL, CFG_EXIT_USAGE, "--hash-shards: 12 is not a power of two"},
    {{"--max-output=1k"}, NULL, CFG_EXIT_USAGE, "--max-output: 1k is out of range (64k to 1g)"},
    {{"--run-as-root=perhaps"}, NULL, CFG_EXIT_USAGE, "'perhaps' is not a boolean"},
    {{"-l", "127.0.0.1:99999"}, NULL, CFG_EXIT_USAGE, "'127.0.0.1:99999': bad port"},
    {{"-l", "[::1"}, NULL, CFG_EXIT_USAGE, "'[::1': missing ']'"},
    {{"-l", "[127.0.0.1]"}, NULL, CFG_EXIT_USAGE, "not an IPv6 address inside [ ]"},
    {{"-l", "::zz"}, NULL, CFG_EXIT_USAGE, "'::zz': not an IPv6 address"},
    {{"-l", "a,,b"}, NULL, CFG_EXIT_USAGE, "empty address"},
    {{"-l", "bad host"}, NULL, CFG_EXIT_USAGE, "not a host name or address"},
    {{"-s", "/tmp/0123456789012345678901234567890123456789012345678901234567890123456789"
            "01234567890123456789012345678901234567890123456789"},
     NULL,
     CFG_EXIT_USAGE,
     "path is too long"},
    {{"--config", "/nonexistent/cached.conf"},
     NULL,
     CFG_EXIT_CONFIG,
     "cannot open config file /nonexistent/cached.conf: No such file or directory"},
    {{"--config", "/tmp"}, NULL, CFG_EXIT_CONFIG, "cannot read config file /tmp: Is a directory"},
    {{"--config", "FILE"},
     "port = 1\nprot = 5\n",
     CFG_EXIT_CONFIG,
     ":2: unknown key 'prot' (did you mean 'port'?)"},
    {{"--config", "FILE"},
     "max_item_sise = 5\n",
     CFG_EXIT_CONFIG,
     ":1: unknown key 'max_item_sise' (did you mean 'max_item_size'?)"},
    {{"--config", "FILE"}, "\n\nport = abc\n", CFG_EXIT_CONFIG, ":3: port: 'abc' is not a number"},
    {{"--config", "FILE"},
     "threads = 0\n",
     CFG_EXIT_CONFIG,
     ":1: threads: 0 is out of range (1 to 256)"},
    {{"--config", "FILE"}, "port 11211\n", CFG_EXIT_CONFIG, ":1: expected 'key = value'"},
    /* memcached.conf's flag lines: errors name the line and the flag */
    {{"--config", "FILE"}, "-m 64\n-L\n", CFG_EXIT_CONFIG,
     ":2: option -L (memcached's large pages) is not supported by cached"},
    {{"--config", "FILE"}, "-p 1 2\n", CFG_EXIT_CONFIG, ":1: unexpected word '2'"},
    {{"--config", "FILE"}, "-p\n", CFG_EXIT_CONFIG, ":1: option -p needs a value"},
    {{"--config", "FILE"}, "-p x\n", CFG_EXIT_CONFIG, ":1: -p/--port: 'x' is not a number"},
    {{"--config", "FILE"}, "-h\n", CFG_EXIT_CONFIG, ":1: -h is not a setting"},
    {{"--config", "FILE"}, "-o nope=1\n", CFG_EXIT_CONFIG, ":1: unknown -o key 'nope'"},
    {{"--config", "FILE"}, "= 5\n", CFG_EXIT_CONFIG, ":1: missing key before '='"},
    {{"--config", "FILE"}, "config = /etc/x\n", CFG_EXIT_CONFIG, ":1: 'config' cannot be set"},
    {{"--config", "FILE"},
     "memory_limit = 1\nmax_item_size = 2m\n",
     CFG_EXIT_CONFIG,
     ":2: max item size 2m (-I) is larger than half the memory limit 1 MB (-m)"},
    /* a file value and a flag in conflict: the flag is the usage error */
    {{"--config", "FILE", "-I", "2m"},
     "memory_limit = 1\n",
     CFG_EXIT_USAGE,
     "cached: max item size 2m (-I) is larger than half the memory limit 1 MB (-m)"},
    /* usage errors are found before the file is read */
    {{"--config", "FILE", "--nope"}, "port = x\n", CFG_EXIT_USAGE, "unknown option '--nope'"},
    /* a file error comes before command-line values are applied */
    {{"--config", "FILE", "-p", "x"}, "port = y\n", CFG_EXIT_CONFIG, ":1: port: 'y'"},
    /* -S serves binary only: memcached refuses any other -B with it */
    {{"-S", "-B", "auto"}, NULL, CFG_EXIT_USAGE,
     "cached: you cannot allow the ASCII protocol while using SASL (-S with -B auto)"},
    {{"-S", "-B", "binary", "-B", "ascii"}, NULL, CFG_EXIT_USAGE,
     "cached: you cannot allow the ASCII protocol while using SASL (-S with -B ascii)"},
};
#define NBAD (sizeof bad / sizeof *bad)

START_TEST(test_bad_input)
{
    const struct bad_case *b = &bad[_i];
    const char *args[8] = {NULL};
    for (size_t k = 0; k < 6 && b->a[k]; k++)
        args[k] = b->file && strcmp(b->a[k], "FILE") == 0 ? conf("%s", b->file) : b->a[k];
    int rc = parsev(args);
    ck_assert_msg(rc == b->rc, "%s: rc %d, want %d (%s)", b->a[0], rc, b->rc, err_txt);
    ERR_HAS(b->msg);
    ONE_LINE();
    ck_assert_str_eq(out_txt, "");
    ck_assert(!exit_now);
    if (b->file && b->rc == CFG_EXIT_CONFIG && strchr(b->msg, ':') == b->msg) {
        /* "cached: FILE:LINE: ..." names the file. */
        char want[128];
        snprintf(want, sizeof want, "cached: %s:", conf_path);
        ERR_HAS(want);
    }
}
END_TEST

/* ---- --help, --version ---- */

static char *help_text;
static void help_has_fn(void *arg, const char *name, const char *value)
{
    (void)arg;
    (void)value;
    if (strcmp(name, "config") == 0)
        return;
    char opt[80];
    snprintf(opt, sizeof opt, "--%s", name);
    for (char *p = opt; *p; p++)
        if (*p == '_')
            *p = '-';
    ck_assert_msg(strstr(help_text, opt) != NULL, "--help lacks %s", opt);
}

START_TEST(test_help)
{
    ck_assert_int_eq(PARSE("--help"), 0);
    ck_assert(exit_now);
    ck_assert_str_eq(err_txt, "");
    help_text = out_txt;
    cfg_each(&C, help_has_fn, NULL);
    static const char *const must[] = {
        "Usage: cached", "-p, --port=N",    "(default: 11211)", "(default: 127.0.0.1)",
        "(default: 1m)", "(default: 1.25)", "(default: 0700)",  "-o, --extended",
        "--config=FILE", "-V, --version",   "-h, --help",       "TCP port to listen on",
        "[reloadable]"};
    for (size_t i = 0; i < sizeof must / sizeof *must; i++)
        ck_assert_msg(strstr(out_txt, must[i]), "--help lacks %s", must[i]);
    fresh();
    ck_assert_int_eq(PARSE("-p", "5", "-h"), 0); /* help wins over everything else */
    ck_assert(exit_now);
    ck_assert_uint_eq(C.port, 11211); /* and nothing is applied */
    fresh();
    ck_assert_int_eq(PARSE("-h", "--config", "/nonexistent"), 0); /* the file is not read */
    ck_assert(exit_now);
}
END_TEST

START_TEST(test_version)
{
    ck_assert_int_eq(PARSE("--version"), 0);
    ck_assert(exit_now);
    ck_assert_str_eq(out_txt, "cached 0.1 (memcached 1.6.18 compatible)\n");
    fresh();
    ck_assert_int_eq(PARSE("-V"), 0);
    ck_assert(exit_now);
    ck_assert(strncmp(out_txt, "cached ", 7) == 0);
}
END_TEST

/* ---- reload ---- */

static char *reload_log;

static int reload(void)
{
    size_t n;
    free(reload_log);
    reload_log = NULL;
    FILE *log = open_memstream(&reload_log, &n);
    int rc = cfg_reload(&C, log);
    fclose(log);
    return rc;
}

START_TEST(test_reload)
{
    const char *f = conf("verbose = 1\nidle_timeout = 5\nport = 2000\n");
    ck_assert_int_eq(PARSE("--config", f, "--max-output=1m"), 0);
    ck_assert_uint_eq(C.verbose, 1);
    conf("verbose = 2\nidle_timeout = 7\nport = 3000\nslab_automove = no\nmax_output = 8m\n");
    ck_assert_int_eq(reload(), 0);
    ck_assert_uint_eq(C.verbose, 2);
    ck_assert_uint_eq(C.idle_timeout, 7);
    ck_assert(!C.slab_automove);
    ck_assert_uint_eq(C.port, 2000);           /* not reloadable */
    ck_assert_uint_eq(C.max_output, 1u << 20); /* given on the command line: it wins */
    ck_assert_msg(strstr(reload_log, "config: verbose 1 -> 2\n"), "%s", reload_log);
    ck_assert(strstr(reload_log, "config: idle_timeout 5 -> 7\n"));
    ck_assert(strstr(reload_log, "config: slab_automove yes -> no\n"));
    ck_assert(strstr(reload_log, "config: port 2000 -> 3000 needs a restart"));
    ck_assert(!strstr(reload_log, "max_output"));
    /* A line removed from the file: back to the default. */
    conf("port = 2000\n");
    ck_assert_int_eq(reload(), 0);
    ck_assert_uint_eq(C.verbose, 0);
    ck_assert_uint_eq(C.idle_timeout, 0);
    ck_assert(C.slab_automove);
    ck_assert(strstr(reload_log, "config: verbose 2 -> 0\n"));
    /* Nothing changed: nothing logged. */
    ck_assert_int_eq(reload(), 0);
    ck_assert_str_eq(reload_log, "");
    free(reload_log);
    reload_log = NULL;
}
END_TEST

START_TEST(test_reload_bad_file)
{
    const char *f = conf("verbose = 1\n");
    ck_assert_int_eq(PARSE("--config", f), 0);
    conf("verbose = 2\nidle_timeout = x\n");
    ck_assert_int_eq(reload(), CFG_EXIT_CONFIG);
    ck_assert_uint_eq(C.verbose, 1); /* unchanged: no half-applied file */
    ck_assert_msg(strstr(reload_log, ":2: idle_timeout: 'x' is not a number"), "%s", reload_log);
    conf("verbose = 2\nmemory_limit = 1\nmax_item_size = 2m\n");
    ck_assert_int_eq(reload(), CFG_EXIT_CONFIG);
    ck_assert_uint_eq(C.verbose, 1);
    unlink(f);
    ck_assert_int_eq(reload(), CFG_EXIT_CONFIG);
    ck_assert(strstr(reload_log, "No such file or directory"));
    ck_assert_uint_eq(C.verbose, 1);
    free(reload_log);
    reload_log = NULL;
}
END_TEST

START_TEST(test_reload_cmdline_wins)
{
    /* The file is checked together with the command line's values, as at startup. */
    const char *g = conf("max_item_size = 128m\n");
    ck_assert_int_eq(PARSE("--config", g, "-m", "1024"), 0);
    conf("max_item_size = 256m\nidle_timeout = 3\n");
    ck_assert_int_eq(reload(), 0);
    ck_assert_uint_eq(C.idle_timeout, 3);
    fresh();

    const char *f = conf("verbose = 1\n");
    ck_assert_int_eq(PARSE("--config", f, "-vv"), 0);
    ck_assert_uint_eq(C.verbose, 2);
    conf("verbose = 3\n");
    ck_assert_int_eq(reload(), 0);
    ck_assert_uint_eq(C.verbose, 2);
    free(reload_log);
    reload_log = NULL;
    fresh();
    ck_assert_int_eq(PARSE("-v"), 0);
    ck_assert_int_eq(reload(), CFG_EXIT_CONFIG); /* no --config: nothing to reload */
    free(reload_log);
    reload_log = NULL;
}
END_TEST

/* ---- cfg_each ---- */

START_TEST(test_each)
{
    ck_assert_str_eq(value_of(&C, "port"), "11211");
    ck_assert_str_eq(value_of(&C, "listen"), "127.0.0.1");
    ck_assert_str_eq(value_of(&C, "unix_socket"), "NULL");
    ck_assert_str_eq(value_of(&C, "unix_mask"), "0700");
    ck_assert_str_eq(value_of(&C, "memory_limit"), "64");
    ck_assert_str_eq(value_of(&C, "max_item_size"), "1048576");
    ck_assert_str_eq(value_of(&C, "slab_growth_factor"), "1.25");
    ck_assert_str_eq(value_of(&C, "disable_cas"), "no");
    ck_assert_str_eq(value_of(&C, "slab_automove"), "yes");
    ck_assert_str_eq(value_of(&C, "max_output"), "4194304");
    ck_assert_str_eq(value_of(&C, "config"), "NULL");
    const char *f = conf("port = 5\n");
    ck_assert_int_eq(PARSE("--config", f), 0);
    ck_assert_str_eq(value_of(&C, "config"), f);
}
END_TEST

/* ---- the shipped docs ---- */

static char *slurp(const char *rel)
{
    char path[512];
    const char *root = getenv("CACHED_ROOT");
    snprintf(path, sizeof path, "%s/%s", root ? root : ".", rel);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s (run from the repository root)", path);
    char *buf = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&buf, &n);
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, got, m);
    fclose(m);
    fclose(f);
    return buf;
}

static char *doc_text;
static const char *doc_name;
static void doc_has_fn(void *arg, const char *name, const char *value)
{
    (void)value;
    if (strcmp(name, "config") == 0)
        return;
    char want[96];
    if (arg != NULL) { /* the man page: \-\-long\-name */
        char *w = want;
        w += sprintf(w, "\\-\\-");
        for (const char *p = name; *p; p++)
            w += *p == '_' ? sprintf(w, "\\-") : sprintf(w, "%c", *p);
    } else {
        snprintf(want, sizeof want, "\n# %s =", name);
    }
    ck_assert_msg(strstr(doc_text, want), "%s lacks %s", doc_name, want);
}

START_TEST(test_example_names_every_key)
{
    doc_text = slurp("cached.conf.example");
    doc_name = "cached.conf.example";
    cfg_each(&C, doc_has_fn, NULL);
    free(doc_text);
}
END_TEST

START_TEST(test_man_page_names_every_option)
{
    doc_text = slurp("tools/cached.1");
    doc_name = "tools/cached.1";
    cfg_each(&C, doc_has_fn, "man");
    ck_assert(strstr(doc_text, "\\-\\-config"));
    ck_assert(strstr(doc_text, "\\-o"));
    free(doc_text);
}
END_TEST

/* Uncommenting every "# key = value" line of the example gives exactly the defaults. */
struct collect {
    char text[8192];
};
static void collect_fn(void *arg, const char *name, const char *value)
{
    struct collect *c = arg;
    if (strcmp(name, "config") == 0)
        return;
    size_t n = strlen(c->text);
    snprintf(c->text + n, sizeof c->text - n, "%s=%s\n", name, value);
}

START_TEST(test_example_uncommented_is_defaults)
{
    char *text = slurp("cached.conf.example");
    /* "# key = value" lines (a key, then " =") become "key = value"; prose stays comment. */
    FILE *f = fopen(conf("%s", ""), "w");
    ck_assert_ptr_nonnull(f);
    int settings_lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        size_t klen = strspn(line + 2, "abcdefghijklmnopqrstuvwxyz_");
        if (strncmp(line, "# ", 2) == 0 && klen > 0 && strncmp(line + 2 + klen, " =", 2) == 0) {
            fprintf(f, "%s\n", line + 2);
            settings_lines++;
        } else {
            fprintf(f, "%s\n", line);
        }
    }
    fclose(f);
    free(text);
    ck_assert_int_ge(settings_lines, (int)NCASES);
    struct collect *want = calloc(1, sizeof *want), *got = calloc(1, sizeof *got);
    cfg_each(&C, collect_fn, want);
    ck_assert_msg(PARSE("--config", conf_path) == 0, "%s", err_txt);
    cfg_each(&C, collect_fn, got);
    ck_assert_str_eq(got->text, want->text);
    free(want);
    free(got);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    struct {
        const char *name;
        const TTest *t;
        int loop;
    } tcs[] = {
        {"defaults", test_defaults, 0},
        {"every_setting", test_setting_every_way, (int)NCASES},
        {"cases_cover_table", test_cases_cover_table, 0},
        {"verbose", test_verbose, 0},
        {"ssl_needs_tls", test_ssl_needs_tls, 0},
        {"listen", test_listen_lists, 0},
        {"list_next", test_list_next, 0},
        {"sizes", test_sizes, 0},
        {"octal_mask", test_octal_mask, 0},
        {"switch_values", test_switch_values, 0},
        {"extended", test_extended, 0},
        {"udp_compat", test_udp_compat, 0},
        {"precedence", test_precedence, 0},
        {"file_format", test_file_format, 0},
        {"file_nul_byte", test_file_nul_byte, 0},
        {"bad_input", test_bad_input, (int)NBAD},
        {"help", test_help, 0},
        {"version", test_version, 0},
        {"reload", test_reload, 0},
        {"reload_bad_file", test_reload_bad_file, 0},
        {"reload_cmdline_wins", test_reload_cmdline_wins, 0},
        {"each", test_each, 0},
        {"example_names_every_key", test_example_names_every_key, 0},
        {"man_page", test_man_page_names_every_option, 0},
        {"example_is_defaults", test_example_uncommented_is_defaults, 0},
    };
    for (size_t i = 0; i < sizeof tcs / sizeof *tcs; i++) {
        TCase *tc = tcase_create(tcs[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        if (tcs[i].loop)
            tcase_add_loop_test(tc, tcs[i].t, 0, tcs[i].loop);
        else
            tcase_add_test(tc, tcs[i].t);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    return unit_run(config_suite(), "check_config");
}
