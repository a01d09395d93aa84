/*
 * config: the settings table (config.h, CFG_SETTINGS) turned into behaviour — embedded
 * defaults, memcached-compatible flags and their long options (getopt_long, built from the
 * table), -o key=value extended settings, the `key = value` config file, validation, SIGHUP
 * reload of the reloadable settings, and the name/value listing for `stats settings`.
 *
 * Must never: include another module's header (config is below everyone), print more than one
 * line for an error, or touch anything but the struct cfg it is given (main applies it).
 *
 * Allocation uses plain libc malloc/strdup, not storage/mem.h: config sits below storage and
 * may not depend on it, and it runs once at startup (and on SIGHUP), never on a hot path.
 * When the binary links jemalloc, jemalloc replaces malloc process-wide, so these strings
 * are jemalloc allocations and show up in its statistics anyway.
 *
 * Where a value comes from: defaults < config file < command line. cfg_parse scans argv once
 * for --config/--help/--version (and syntax errors), loads the file, then applies argv on top.
 * LIST settings (listen): the first occurrence in a source replaces what the previous source
 * gave; later occurrences in the same source append.
 *
 * Choices worth knowing:
 *   --config has no short flag: -f is memcached's growth factor.
 *   -m is megabytes like memcached (-m 64); a k/m/g suffix is also accepted (-m 1g = 1024)
 *     but must come to a whole number of megabytes.
 *   -a is octal like memcached (-a 0770 or -a 770).
 *   -v/-vv/-vvv count (capped at 3); --verbose=N sets the level.
 *   Switches (BOOL) take an optional value as long options: --slab-automove=no.
 *   -U 0 (memcached's "no UDP") is accepted; cached has no UDP, so any other -U is an error.
 *   -o accepts every long name ('-' or '_'), "no_NAME" for switches, memcached's
 *     slab_automove=0|1|2, memcached's options that ask for what cached always does (modern,
 *     maxconns_fast ...), and refuses the ones whose effect cached lacks, with the reason
 *     (OPTIONS.md audits every option). -o values cannot contain commas.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define CFG_VERSION_LINE "cached 0.1 (memcached 1.6.18 compatible)"
#define MIB (1024ull * 1024ull)
#define NAME_MAX_LEN 64
/* A listen element must fit the server's host:port buffer (server/listen.c uses 256). */
#define LIST_ELEM_MAX 255

struct cfg settings;

/* ---- the table, as data ---- */

struct cfg_desc {
    const char *name; /* long option / file key, with '-' */
    enum cfg_type type;
    int short_flag;
    double min, max;
    bool reloadable;
    const char *help;
    size_t offset;
};

#define CFG_DESC(field, type, sf, lf, def, mn, mx, rl, help)                                       \
    {lf, CFG_##type, sf, (double)(mn), (double)(mx), rl, help, offsetof(struct cfg, field)},
static const struct cfg_desc descs[] = {CFG_SETTINGS(CFG_DESC)};
#undef CFG_DESC
#define NDESC (sizeof descs / sizeof *descs)
_Static_assert(NDESC <= 64, "cfg.cmdline_set is a 64-bit mask");

/* getopt_long values of the options that are not settings (settings use 256 + index). */
enum { OPT_CONFIG = 1000, OPT_SETTING = 256 };

/* memcached -o options accepted without a setting of their own because what they ask for is
 * what cached always does: no-ops in memcached 1.6.18 itself, or memcached's own defaults
 * (OPTIONS.md has the audit of every option; anything else that cached cannot do is refused). */
static const char *const ignored_ext[] = {
    "modern",               /* memcached 1.6.18: "currently: nothing" */
    "inline_ascii_resp",    /* no-ops in memcached 1.6.18 too */
    "no_inline_ascii_resp",
    "maxconns_fast",        /* memcached's default: over -c, an error and close (cached's way) */
    "lru_maintainer",       /* memcached's default: background LRU upkeep (cached's tick) */
    "no_drop_privileges",   /* memcached's default: no seccomp filter (cached installs none) */
    "relaxed_privileges",   /* memcached-debug's: no seccomp filter to relax (the test harness
                               adds it to every command line) */
    "no_chunked_items",     /* cached never chunks an item: each takes one chunk */
};

/* memcached -o spellings that map onto a cached setting. */
static const struct {
    const char *key, *setting, *value, *setting2, *value2;
} mapped_ext[] = {
    {"lru_crawler", "expiry-sweeper", "yes", NULL, NULL}, /* the sweeper: cached's crawler */
    {"no_lru_crawler", "expiry-sweeper", "no", NULL, NULL},
    {"no_slab_reassign", "slab-automove", "no", NULL, NULL},
    /* memcached's pre-1.5 behaviour: no page moves, no background crawler (eviction stays
     * CLOCK: cached has no other scheme) */
    {"no_modern", "slab-automove", "no", "expiry-sweeper", "no"},
    /* memcached's slab automover runs inside its LRU maintainer thread: without the thread no
     * page moves (its flat-LRU mode has no counterpart: eviction stays CLOCK, as with
     * no_modern); `stats settings` says lru_maintainer_thread no */
    {"no_lru_maintainer", "slab-automove", "no", NULL, NULL},
};

/* memcached -o knobs whose effect cached does not provide: refused with the reason, never
 * silently ignored (accepting them would promise behaviour cached does not have). */
static const struct {
    const char *key, *why;
} refused_ext[] = {
    {"hash_algorithm", "cached hashes keys with xxh64 only (stats settings: hash_algorithm xxh64)"},
    {"tail_repair_time", "cached counts item references exactly and never force-frees an item"},
    {"worker_logbuf_size", "cached keeps no per-worker log buffer: `watch` lines go straight to "
                           "each watcher's buffer (watcher_logbuf_size)"},
    {"slab_automove_freeratio", "an extstore option: cached keeps items in RAM only"},
    {"slab_chunk_size_max", "cached stores every item in one chunk (no chunked items)"},
    {"slab_sizes", "cached's slab classes step by 8 bytes, then by -f"},
    {"read_buf_mem_limit", "cached keeps no pool of read buffers to limit"},
    {"no_maxconns_fast", "cached always answers an error over -c and closes"},
    {"drop_privileges", "cached installs no seccomp filter"},
    {"no_hashexpand", "cached's hash table always grows"},
    {"proxy_config", "the proxy is not built in"},
    {"ssl_kernel_tls", "kernel TLS offload is not used; TLS runs in OpenSSL"},
    {"sock_cookie_id", "SO_MARK cookies are not set"},
    {"temporary_ttl", "cached has no separate LRU for short-TTL items; expired items are "
                      "reclaimed first by eviction and by the sweeper (storage/README)"},
    /* memcached's segmented-LRU sizes: cached's CLOCK has one protected share, fixed */
    {"hot_lru_pct", "cached has no hot/warm/cold LRUs (CLOCK with a protected share, "
                    "storage/README)"},
    {"warm_lru_pct", "cached has no hot/warm/cold LRUs (CLOCK with a protected share, "
                     "storage/README)"},
    {"hot_max_factor", "cached has no hot/warm/cold LRUs (CLOCK with a protected share, "
                       "storage/README)"},
    {"warm_max_factor", "cached has no hot/warm/cold LRUs (CLOCK with a protected share, "
                        "storage/README)"},
};

/* memcached flags cached does not implement, named so the error says what they were. */
static const struct {
    char flag;
    const char *what;
} unsupported[] = {
    {'L', "large pages"},
    {'N', "NAPI ids"},
    {'i', "license text"},
};

static void *field_of(struct cfg *c, const struct cfg_desc *d)
{
    return (char *)c + d->offset;
}

static const void *cfield_of(const struct cfg *c, const struct cfg_desc *d)
{
    return (const char *)c + d->offset;
}

static bool is(const struct cfg_desc *d, size_t offset)
{
    return d->offset == offset;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL) { /* startup only: nothing sensible to do without memory */
        fputs("cached: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void set_str(char **slot, char *val)
{
    free(*slot);
    *slot = val;
}

/* ---- init / free ---- */

#define CFG_DEF_BOOL(f, v) c->f = (v);
#define CFG_DEF_UINT(f, v) c->f = (v);
#define CFG_DEF_SIZE(f, v) c->f = (v);
#define CFG_DEF_DOUBLE(f, v) c->f = (v);
#define CFG_DEF_STR(f, v) c->f = xstrdup(v);
#define CFG_DEF_LIST(f, v) c->f = xstrdup(v);
#define CFG_DEFAULT(field, type, sf, lf, def, mn, mx, rl, help) CFG_DEF_##type(field, def)

static void derive(struct cfg *c)
{
    c->mem_limit = (size_t)(c->mem_limit_mb * MIB);
}

void cfg_init(struct cfg *c)
{
    memset(c, 0, sizeof *c);
    CFG_SETTINGS(CFG_DEFAULT)
    c->slab_automove_window = 30; /* memcached's defaults */
    c->slab_automove_ratio = 0.8;
    c->lru_crawler_sleep = 100;
    derive(c);
}

void cfg_free(struct cfg *c)
{
    for (size_t i = 0; i < NDESC; i++) {
        if (descs[i].type == CFG_STR || descs[i].type == CFG_LIST) {
            char **slot = field_of(c, &descs[i]);
            free(*slot);
            *slot = NULL;
        }
    }
    free((char *)c->config_file);
    c->config_file = NULL;
}

/* ---- names and suggestions ---- */

/* Copies name with '_' turned into '-' (the canonical spelling); false if too long. */
static bool canon(const char *in, size_t len, char *out)
{
    if (len >= NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        out[i] = in[i] == '_' ? '-' : in[i];
    out[len] = '\0';
    return true;
}

static void underscored(const char *name, char *out)
{
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < NAME_MAX_LEN; i++)
        out[i] = name[i] == '-' ? '_' : name[i];
    out[i] = '\0';
}

static int find_desc(const char *canon_name)
{
    for (size_t i = 0; i < NDESC; i++)
        if (strcmp(descs[i].name, canon_name) == 0)
            return (int)i;
    return -1;
}

/* Case-insensitive edit distance of two short names. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), prev[NAME_MAX_LEN + 1], cur[NAME_MAX_LEN + 1];
    if (la > NAME_MAX_LEN || lb > NAME_MAX_LEN)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] +
                         (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof *prev);
    }
    return prev[lb];
}

/* The closest candidate to `word` (canonical '-' spelling): edit distance <= 2, or one is a
 * prefix of the other (at least 3 characters). NULL if nothing is close. */
static const char *suggest(const char *word, const char *const *extra, size_t nextra)
{
    const char *best = NULL;
    size_t best_d = 3, wl = strlen(word);
    for (size_t i = 0; i < NDESC + nextra; i++) {
        const char *cand = i < NDESC ? descs[i].name : extra[i - NDESC];
        size_t d = distance(word, cand), cl = strlen(cand);
        if (d > 2 && wl >= 3 && cl >= 3 && (strncasecmp(word, cand, wl < cl ? wl : cl) == 0))
            d = 2; /* "--mem" for memory-limit, "--portx" for port */
        if (d < best_d) {
            best_d = d;
            best = cand;
        }
    }
    return best;
}

/* " (did you mean 'X'?)" in the caller's spelling, or "". */
static void did_you_mean(char *out, size_t n, const char *prefix, const char *word, bool underscore,
                         const char *const *extra, size_t nextra)
{
    char c[NAME_MAX_LEN], u[NAME_MAX_LEN];
    out[0] = '\0';
    if (!canon(word, strlen(word), c))
        return;
    const char *s = suggest(c, extra, nextra);
    if (s == NULL)
        return;
    if (underscore)
        underscored(s, u);
    snprintf(out, n, " (did you mean '%s%s'?)", prefix, underscore ? u : s);
}

/* "-p/--port" or "--idle-timeout": how the command line names a setting. */
static void flag_label(const struct cfg_desc *d, char *out, size_t n)
{
    if (d->short_flag)
        snprintf(out, n, "-%c/--%s", d->short_flag, d->name);
    else
        snprintf(out, n, "--%s", d->name);
}

/* ---- values ---- */

/* "1m", "512k", "3g" when exact, else the byte count. */
static void fmt_size(uint64_t v, char *out, size_t n)
{
    if (v != 0 && v % (1ull << 30) == 0)
        snprintf(out, n, "%llug", (unsigned long long)(v >> 30));
    else if (v != 0 && v % (1ull << 20) == 0)
        snprintf(out, n, "%llum", (unsigned long long)(v >> 20));
    else if (v != 0 && v % (1ull << 10) == 0)
        snprintf(out, n, "%lluk", (unsigned long long)(v >> 10));
    else
        snprintf(out, n, "%llu", (unsigned long long)v);
}

/* A value as text. human: sizes with suffixes (help, docs); else plain bytes and "NULL" for an
 * empty string (stats settings, like memcached's domain_socket NULL). Both forms parse back. */
static void fmt_value(const struct cfg *c, const struct cfg_desc *d, char *out, size_t n,
                      bool human)
{
    const void *p = cfield_of(c, d);
    switch (d->type) {
    case CFG_BOOL:
        snprintf(out, n, "%s", *(const bool *)p ? "yes" : "no");
        break;
    case CFG_UINT:
        if (is(d, offsetof(struct cfg, unix_mask)))
            snprintf(out, n, "0%03llo", (unsigned long long)*(const uint64_t *)p);
        else
            snprintf(out, n, "%llu", (unsigned long long)*(const uint64_t *)p);
        break;
    case CFG_SIZE:
        if (human)
            fmt_size(*(const uint64_t *)p, out, n);
        else
            snprintf(out, n, "%llu", (unsigned long long)*(const uint64_t *)p);
        break;
    case CFG_DOUBLE:
        snprintf(out, n, "%g", *(const double *)p);
        break;
    case CFG_STR:
    case CFG_LIST: {
        const char *s = *(char *const *)p;
        snprintf(out, n, "%s", s && *s ? s : human ? "" : "NULL");
        break;
    }
    }
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no",
                                                                                "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, true;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, true;
    }
    return false;
}

/* Unsigned integer in `base`, digits only (no sign, no spaces), with an optional binary
 * k/m/g suffix when `suffix` is set. Returns 0, or -1 not a number, -2 too large. */
static int parse_u64(const char *s, int base, bool suffix, uint64_t *out)
{
    if (!isdigit((unsigned char)s[0]))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (errno == ERANGE)
        return -2;
    unsigned shift = 0;
    if (suffix && *end != '\0' && end[1] == '\0') {
        switch (tolower((unsigned char)*end)) {
        case 'k':
            shift = 10;
            break;
        case 'm':
            shift = 20;
            break;
        case 'g':
            shift = 30;
            break;
        default:
            return -1;
        }
        end++;
    }
    if (*end != '\0')
        return -1;
    if (shift && v > (UINT64_MAX >> shift))
        return -2;
    *out = (uint64_t)v << shift;
    return 0;
}

/* One listen element: host, host:port, *, IPv4, IPv6 (bare with two or more colons), [IPv6]
 * or [IPv6]:port — the forms server/listen.c splits. NULL if fine, else why not. */
static const char *check_listen_elem(const char *e, size_t len)
{
    char host[LIST_ELEM_MAX + 1];
    const char *port = NULL;
    if (len > 6 && strncmp(e, "notls:", 6) == 0) { /* memcached's plaintext listener under -Z */
        e += 6;
        len -= 6;
    }
    if (len == 0)
        return "empty address";
    if (len > LIST_ELEM_MAX)
        return "address too long";
    if (e[0] == '[') {
        const char *close = memchr(e, ']', len);
        if (close == NULL)
            return "missing ']'";
        memcpy(host, e + 1, (size_t)(close - e - 1));
        host[close - e - 1] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1)
            return "not an IPv6 address inside [ ]";
        if ((size_t)(close - e) + 1 < len) {
            if (close[1] != ':')
                return "junk after ']'";
            port = close + 2;
        }
    } else {
        memcpy(host, e, len);
        host[len] = '\0';
        char *colon = strchr(host, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            struct in6_addr a6;
            if (inet_pton(AF_INET6, host, &a6) != 1)
                return "not an IPv6 address";
        } else {
            if (colon != NULL) {
                *colon = '\0';
                port = e + (colon - host) + 1;
            }
            for (const char *h = host; *h; h++)
                if (!isalnum((unsigned char)*h) && *h != '.' && *h != '-' && *h != '_' && *h != '*')
                    return "not a host name or address";
        }
    }
    if (port != NULL) {
        char pbuf[16];
        size_t plen = strcspn(port, ",");
        uint64_t pv;
        if (plen == 0 || plen >= sizeof pbuf)
            return "bad port";
        memcpy(pbuf, port, plen);
        pbuf[plen] = '\0';
        if (parse_u64(pbuf, 10, false, &pv) != 0 || pv > 65535)
            return "bad port";
    }
    return NULL;
}

/*
 * Parses `val` for setting d and stores it in c; `append` adds to a LIST instead of replacing.
 * On error c is unchanged and msg says what is wrong with the value (without naming where).
 */
static int set_value(struct cfg *c, const struct cfg_desc *d, const char *val, bool append,
                     char *msg, size_t msgsz)
{
    void *p = field_of(c, d);
    switch (d->type) {
    case CFG_BOOL: {
        bool b;
        if (!parse_bool(val, &b)) {
            snprintf(msg, msgsz, "'%s' is not a boolean (true/false, yes/no, on/off, 1/0)", val);
            return -1;
        }
        *(bool *)p = b;
        return 0;
    }
    case CFG_UINT:
    case CFG_SIZE: {
        bool octal = is(d, offsetof(struct cfg, unix_mask));
        bool mb = is(d, offsetof(struct cfg, mem_limit_mb));
        uint64_t v, umin = (uint64_t)d->min, umax = (uint64_t)d->max;
        int rc = parse_u64(val, octal ? 8 : 10, d->type == CFG_SIZE || mb, &v);
        if (rc == 0 && mb && !isdigit((unsigned char)val[strlen(val) - 1])) {
            if (v % MIB != 0) {
                snprintf(msg, msgsz, "'%s' is not a whole number of megabytes", val);
                return -1;
            }
            v /= MIB; /* a suffix gave bytes; the field is megabytes */
        }
        if (rc == -1) {
            snprintf(msg, msgsz,
                     octal                       ? "'%s' is not an octal number"
                     : d->type == CFG_SIZE || mb ? "'%s' is not a size (e.g. 64, 512k, 1m, 1g)"
                                                 : "'%s' is not a number",
                     val);
            return -1;
        }
        if (rc == -2 || v < umin || v > umax) {
            char lo[32], hi[32];
            if (d->type == CFG_SIZE) {
                fmt_size(umin, lo, sizeof lo);
                fmt_size(umax, hi, sizeof hi);
            } else {
                snprintf(lo, sizeof lo, octal ? "0%llo" : "%llu", (unsigned long long)umin);
                snprintf(hi, sizeof hi, octal ? "0%llo" : "%llu", (unsigned long long)umax);
            }
            snprintf(msg, msgsz, "%s is out of range (%s to %s)", val, lo, hi);
            return -1;
        }
        if (is(d, offsetof(struct cfg, hashpower)) && v != 0 && v < 12) {
            snprintf(msg, msgsz, "%s is too low (12 to 32, or 0 for the default)", val);
            return -1;
        }
        if (is(d, offsetof(struct cfg, shards)) && (v & (v - 1)) != 0) {
            snprintf(msg, msgsz, "%s is not a power of two", val);
            return -1;
        }
        *(uint64_t *)p = v;
        return 0;
    }
    case CFG_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(val, &end);
        if (val[0] == '\0' || isspace((unsigned char)val[0]) || *end != '\0' || errno != 0 ||
            !isfinite(v)) {
            snprintf(msg, msgsz, "'%s' is not a number", val);
            return -1;
        }
        if (v < d->min || v > d->max) {
            snprintf(msg, msgsz, "%s is out of range (%g to %g)", val, d->min, d->max);
            return -1;
        }
        *(double *)p = v;
        return 0;
    }
    case CFG_STR:
        if (is(d, offsetof(struct cfg, protocol)) && strcmp(val, "auto") != 0 &&
            strcmp(val, "ascii") != 0 && strcmp(val, "binary") != 0) {
            snprintf(msg, msgsz, "'%s' is not a protocol (auto, ascii, binary)", val);
            return -1;
        }
        if (is(d, offsetof(struct cfg, ssl_handshake_priority)) && strcmp(val, "idle") != 0 &&
            strcmp(val, "low") != 0 && strcmp(val, "normal") != 0) {
            snprintf(msg, msgsz, "'%s' is not a priority (idle, low, normal)", val);
            return -1;
        }
        if (is(d, offsetof(struct cfg, prefix_delimiter)) && strlen(val) != 1) {
            snprintf(msg, msgsz, "'%s' is not one character", val);
            return -1;
        }
        if (is(d, offsetof(struct cfg, prefix_delimiter)))
            c->detail_on = true; /* memcached: -D turns prefix stats on */
        if (is(d, offsetof(struct cfg, unix_socket)) &&
            strlen(val) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            snprintf(msg, msgsz, "path is too long (at most %zu bytes)",
                     sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
            return -1;
        }
        set_str(p, xstrdup(val));
        return 0;
    case CFG_LIST: {
        /* Validate each comma-separated element, dropping spaces around them. */
        size_t vlen = strlen(val);
        char *clean = malloc(vlen + 1), *w = clean;
        if (clean == NULL) {
            snprintf(msg, msgsz, "out of memory");
            return -1;
        }
        for (const char *s = val;;) {
            while (*s == ' ' || *s == '\t')
                s++;
            size_t len = strcspn(s, ",");
            size_t tl = len;
            while (tl > 0 && (s[tl - 1] == ' ' || s[tl - 1] == '\t'))
                tl--;
            const char *why = check_listen_elem(s, tl);
            if (why != NULL) {
                snprintf(msg, msgsz, "'%.*s': %s", (int)(tl > 200 ? 200 : tl), s, why);
                free(clean);
                return -1;
            }
            if (w != clean)
                *w++ = ',';
            memcpy(w, s, tl);
            w += tl;
            if (s[len] == '\0')
                break;
            s += len + 1;
        }
        *w = '\0';
        char **slot = p;
        if (append && *slot != NULL && **slot != '\0') {
            size_t ol = strlen(*slot), nl = strlen(clean);
            char *joined = malloc(ol + 1 + nl + 1);
            if (joined == NULL) {
                free(clean);
                snprintf(msg, msgsz, "out of memory");
                return -1;
            }
            memcpy(joined, *slot, ol);
            joined[ol] = ',';
            memcpy(joined + ol + 1, clean, nl + 1);
            free(clean);
            clean = joined;
        }
        set_str(slot, clean);
        return 0;
    }
    }
    return -1;
}

/* ---- where values came from ---- */

enum src_kind { SRC_DEFAULT, SRC_FILE, SRC_ARGV };

struct src {
    enum src_kind kind[NDESC];
    unsigned line[NDESC]; /* file line, for SRC_FILE */
    bool list_seen[NDESC];
    unsigned flag_line; /* nonzero: flags being read come from this line of the file */
};

/* The kind of source that flag parsing (argv, or a memcached-style line of a file) fills. */
static enum src_kind flag_kind(const struct src *src)
{
    return src->flag_line ? SRC_FILE : SRC_ARGV;
}

/* Records that a flag set setting i: the command line wins over a later reload, a file line
 * is remembered for error messages. */
static void flag_mark(struct cfg *c, struct src *src, size_t i)
{
    src->kind[i] = flag_kind(src);
    if (src->flag_line)
        src->line[i] = src->flag_line;
    else
        c->cmdline_set |= 1ull << i;
}

static void err_line(FILE *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err_line(FILE *err, const char *fmt, ...)
{
    va_list ap;
    fputs("cached: ", err);
    va_start(ap, fmt);
    vfprintf(err, fmt, ap);
    va_end(ap);
    fputc('\n', err);
    fflush(err);
}

/* ---- config file ---- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int file_flags(struct cfg *c, struct src *src, char *s, const char *path, unsigned lineno,
                      FILE *err);

/* One line of a config file; 0 or -1 after printing "cached: FILE:LINE: ...". */
static int file_line(struct cfg *c, struct src *src, char *line, const char *path, unsigned lineno,
                     FILE *err)
{
    char *s = trim(line);
    if (*s == '\0' || *s == '#')
        return 0;
    /* A '#' after whitespace starts a trailing comment; "a#b" stays a value. */
    for (char *h = s + 1; *h; h++) {
        if (*h == '#' && isspace((unsigned char)h[-1])) {
            *h = '\0';
            break;
        }
    }
    s = trim(s);
    if (s[0] == '-') /* memcached.conf: flags as on the command line */
        return file_flags(c, src, s, path, lineno, err);
    char *eq = strchr(s, '=');
    /* memcached.conf's one directive that is not a flag: "logfile PATH". */
    if (eq == NULL && strncmp(s, "logfile", 7) == 0 && isspace((unsigned char)s[7]))
        eq = s + 7;
    if (eq == NULL) {
        err_line(err, "%s:%u: expected 'key = value' or memcached flags ('-p 11211')", path,
                 lineno);
        return -1;
    }
    *eq = '\0';
    char *key = trim(s), *val = trim(eq + 1);
    size_t vl = strlen(val);
    if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
        val[vl - 1] = '\0';
        val++;
    }
    char cn[NAME_MAX_LEN], hint[NAME_MAX_LEN + 32];
    int i = -1;
    if (*key == '\0') {
        err_line(err, "%s:%u: missing key before '='", path, lineno);
        return -1;
    }
    if (canon(key, strlen(key), cn))
        i = find_desc(cn);
    if (i < 0) {
        if (strcmp(cn, "config") == 0) {
            err_line(err, "%s:%u: 'config' cannot be set inside a config file", path, lineno);
            return -1;
        }
        did_you_mean(hint, sizeof hint, "", key, strchr(key, '_') != NULL, NULL, 0);
        err_line(err, "%s:%u: unknown key '%s'%s", path, lineno, key, hint);
        return -1;
    }
    const struct cfg_desc *d = &descs[i];
    char msg[320];
    if (set_value(c, d, val, src->list_seen[i], msg, sizeof msg) != 0) {
        err_line(err, "%s:%u: %s: %s", path, lineno, key, msg);
        return -1;
    }
    src->list_seen[i] = true;
    src->kind[i] = SRC_FILE;
    src->line[i] = lineno;
    return 0;
}

/* Applies the file on top of c. Returns 0 or CFG_EXIT_CONFIG after one line to err. */
static int load_file(struct cfg *c, struct src *src, const char *path, FILE *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        err_line(err, "cannot open config file %s: %s", path, strerror(errno));
        return CFG_EXIT_CONFIG;
    }
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    int rc = 0;
    errno = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (strlen(line) != (size_t)got) {
            err_line(err, "%s:%u: NUL byte in line", path, lineno);
            rc = CFG_EXIT_CONFIG;
            break;
        }
        if (file_line(c, src, line, path, lineno, err) != 0) {
            rc = CFG_EXIT_CONFIG;
            break;
        }
        errno = 0;
    }
    if (rc == 0 && ferror(f)) {
        err_line(err, "cannot read config file %s: %s", path, strerror(errno ? errno : EIO));
        rc = CFG_EXIT_CONFIG;
    }
    free(line);
    fclose(f);
    return rc;
}

/* ---- checks across settings ---- */

/* An ssl_* setting given on the command line, or away from its default, while TLS is off. */
static bool ssl_option_set(const struct cfg *c, const struct src *src, char *what, size_t n,
                           size_t pair[2])
{
    struct cfg def;
    bool found = false;
    cfg_init(&def);
    for (size_t i = 0; i < NDESC && !found; i++) {
        char va[256], vb[256], u[NAME_MAX_LEN];
        if (strncmp(descs[i].name, "ssl-", 4) != 0)
            continue;
        fmt_value(c, &descs[i], va, sizeof va, false);
        fmt_value(&def, &descs[i], vb, sizeof vb, false);
        if (strcmp(va, vb) == 0 && src->kind[i] != SRC_ARGV)
            continue; /* a file may spell out a default (cached.conf.example does) */
        underscored(descs[i].name, u);
        snprintf(what, n, "%s is set but TLS is off: add -Z (--enable-ssl) or remove it", u);
        pair[0] = descs[i].offset;
        pair[1] = offsetof(struct cfg, ssl_enabled);
        found = true;
    }
    cfg_free(&def);
    return found;
}

/* Whether the setting at this offset was given (command line or file), not defaulted. */
static bool given(const struct src *src, size_t offset)
{
    for (size_t i = 0; i < NDESC; i++)
        if (descs[i].offset == offset)
            return src->kind[i] != SRC_DEFAULT;
    return false;
}

/* Reports the first inconsistency; returns 0, CFG_EXIT_USAGE (a command-line value is
 * involved) or CFG_EXIT_CONFIG (only the file's and the defaults). */
static int cross_check(const struct cfg *c, const struct src *src, const char *path, FILE *err)
{
    static const size_t item = offsetof(struct cfg, item_size_max);
    static const size_t mem = offsetof(struct cfg, mem_limit_mb);
    static const size_t cmin = offsetof(struct cfg, chunk_min);
    static const size_t sasl = offsetof(struct cfg, sasl);
    static const size_t proto = offsetof(struct cfg, protocol);
    char what[256], a[32], b[32];
    size_t pair[2] = {0, 0};
    if (c->item_size_max > c->mem_limit_mb * MIB / 2) { /* memcached's rule, and its exit 64 */
        fmt_size(c->item_size_max, a, sizeof a);
        snprintf(what, sizeof what,
                 "max item size %s (-I) is larger than half the memory limit %llu MB (-m)", a,
                 (unsigned long long)c->mem_limit_mb);
        pair[0] = item, pair[1] = mem;
    } else if (c->chunk_min >= c->item_size_max) {
        fmt_size(c->item_size_max, b, sizeof b);
        snprintf(what, sizeof what,
                 "slab min size %llu (-n) must be smaller than the max item size %s (-I)",
                 (unsigned long long)c->chunk_min, b);
        pair[0] = cmin, pair[1] = item;
    } else if (!c->ssl_enabled && ssl_option_set(c, src, what, sizeof what, pair)) {
        /* memcached silently serves plaintext here; a key given for nothing is a mistake. */
    } else if (c->sasl && strcmp(c->protocol, "binary") != 0 && given(src, proto)) {
        /* -S alone means binary only; memcached refuses any other -B with it. */
        snprintf(what, sizeof what,
                 "you cannot allow the ASCII protocol while using SASL (-S with -B %s)",
                 c->protocol);
        pair[0] = sasl, pair[1] = proto;
    } else {
        return 0;
    }
    unsigned line = 0;
    bool argv = false;
    for (size_t i = 0; i < NDESC; i++) {
        if (descs[i].offset != pair[0] && descs[i].offset != pair[1])
            continue;
        if (src->kind[i] == SRC_ARGV)
            argv = true;
        if (src->kind[i] == SRC_FILE && src->line[i] > line)
            line = src->line[i];
    }
    if (argv || path == NULL || line == 0) {
        err_line(err, "%s", what);
        return argv ? CFG_EXIT_USAGE : CFG_EXIT_CONFIG;
    }
    err_line(err, "%s:%u: %s", path, line, what);
    return CFG_EXIT_CONFIG;
}

/* ---- command line ---- */

/* One --help row: the flag(s), the help line, the default. */
static void usage_row(FILE *out, const struct cfg *def, const struct cfg_desc *d)
{
    static const char *const arg_of[] = {
        [CFG_BOOL] = "",     [CFG_UINT] = "=N",  [CFG_SIZE] = "=SIZE",
        [CFG_DOUBLE] = "=X", [CFG_STR] = "=STR", [CFG_LIST] = "=ADDR[,ADDR]"};
    char opt[80], val[128];
    const char *arg = arg_of[d->type];
    if (is(d, offsetof(struct cfg, verbose)))
        arg = "[=N]";
    if (d->short_flag)
        snprintf(opt, sizeof opt, "-%c, --%s%s", d->short_flag, d->name, arg);
    else
        snprintf(opt, sizeof opt, "    --%s%s", d->name, arg);
    fmt_value(def, d, val, sizeof val, true);
    char tail[160];
    snprintf(tail, sizeof tail, "(default: %s)%s", val[0] ? val : "none",
             d->reloadable ? " [reloadable]" : "");
    /* Keep lines within 100 columns: a long help line gets its default on the next. */
    bool wrap = 2 + 34 + 1 + strlen(d->help) + 1 + strlen(tail) > 100;
    fprintf(out, "  %-34s %s%s%s\n", opt, d->help,
            wrap ? "\n                                     " : " ", tail);
}

/* memcached-style usage first (its flags, in its order of topics), then cached's own. */
static void usage(FILE *out)
{
    struct cfg def;
    cfg_init(&def);
    fprintf(out, "Usage: cached [options]\n"
                 "A memcached-compatible cache daemon (text and binary protocols); %s.\n\n"
                 "memcached's flags, same meaning:\n",
            CFG_VERSION_LINE);
    for (size_t i = 0; i < NDESC; i++)
        if (descs[i].short_flag)
            usage_row(out, &def, &descs[i]);
    fprintf(out,
            "  %-34s %s\n  %-34s %s\n  %-34s %s\n  %-34s %s\n  %-34s %s\n  %-34s %s\n",
            "-v / -vv / -vvv", "log level info / debug / debug; -vv also echoes client commands",
            "", "('<FD get foo' lines, as memcached; not its replies)", "-U, --udp-port=0",
            "no UDP, memcached 1.6's default (other values are refused)",
            "-o, --extended=KEY=VAL[,KEY=VAL]",
            "extended settings by config-file name, e.g. -o idle_timeout=10", "-h, --help",
            "print this help and exit", "-V, --version", "print version and exit");
    fprintf(out, "  Refused with an error:");
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++)
        fprintf(out, "%s -%c (%s)", i == 0 ? "" : i % 4 == 3 ? ",\n   " : ",", unsupported[i].flag,
                unsupported[i].what);
    fprintf(out, "\n\ncached's own options:\n");
    for (size_t i = 0; i < NDESC; i++)
        if (!descs[i].short_flag)
            usage_row(out, &def, &descs[i]);
    fprintf(out, "  %-34s %s\n  %-34s %s\n\n", "    --config=FILE",
            "read settings from FILE (no short flag; -f is the growth factor)", "",
            "FILE: 'name = value' lines, or memcached.conf's '-m 64' flag lines");
    fprintf(out,
            "Switches also take a value as long options (--slab-automove=no).\n"
            "SIZE accepts k, m and g suffixes (binary); -m is megabytes (or 1g, 512m).\n"
            "Every long option is also a config-file key: 'name = value' lines, '-' or '_' in\n"
            "names, '#' comments. Debian's /etc/memcached.conf (one flag per line, 'logfile\n"
            "PATH') is read as it is. Precedence: command line > config file > defaults.\n"
            "Settings marked [reloadable] are re-read from the config file on SIGHUP.\n"
            "-d returns once the daemon serves (exit 0) or with the daemon's error code.\n"
            "Exit status: 64 usage error, 78 configuration error, 67 unknown user,\n"
            "71 system error (bind, fork ...), 73 log file cannot be opened.\n");
    cfg_free(&def);
}

struct argv_ctx {
    struct option opts[NDESC + 6];
    char shorts[3 + 2 * NDESC + 16];
};

static void build_opts(struct argv_ctx *a)
{
    size_t n = 0;
    char *s = a->shorts;
    *s++ = '+'; /* stop at the first non-option; never permute the caller's argv */
    *s++ = ':'; /* report a missing value as ':' */
    for (size_t i = 0; i < NDESC; i++) {
        const struct cfg_desc *d = &descs[i];
        bool sw = d->type == CFG_BOOL || is(d, offsetof(struct cfg, verbose));
        a->opts[n++] = (struct option){d->name, sw ? optional_argument : required_argument, NULL,
                                       OPT_SETTING + (int)i};
        if (d->short_flag) {
            *s++ = (char)d->short_flag;
            if (!sw)
                *s++ = ':';
        }
    }
    a->opts[n++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
    a->opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    a->opts[n++] = (struct option){"version", no_argument, NULL, 'V'};
    a->opts[n++] = (struct option){"extended", required_argument, NULL, 'o'};
    a->opts[n++] = (struct option){"udp-port", required_argument, NULL, 'U'};
    a->opts[n] = (struct option){NULL, 0, NULL, 0};
    strcpy(s, "hVo:U:");
}

static int short_index(int ch)
{
    for (size_t i = 0; i < NDESC; i++)
        if (descs[i].short_flag == ch)
            return (int)i;
    return -1;
}

static const char *const extra_longs[] = {"config", "help", "version", "extended", "udp-port"};

/* The one line for getopt's '?' and ':' returns. */
static void report_getopt_error(int ch, char **argv, FILE *err)
{
    const char *arg = argv[optind - 1];
    if (ch == ':') {
        if (optopt >= OPT_SETTING && optopt < OPT_SETTING + (int)NDESC)
            err_line(err, "option --%s needs a value", descs[optopt - OPT_SETTING].name);
        else if (optopt == OPT_CONFIG)
            err_line(err, "option --config needs a file name");
        else if (strncmp(arg, "--", 2) == 0)
            err_line(err, "option %s needs a value", arg);
        else
            err_line(err, "option -%c needs a value", optopt);
        return;
    }
    /* glibc sets optopt to 0 for an unknown or ambiguous long option, to the option's value
     * for a long option given a value it does not take (--help=1), and to the character for
     * an unknown short one. (argv[optind - 1] is not the culprit inside "-vx".) */
    if (optopt == 'h' || optopt == 'V') {
        err_line(err, "option --%s takes no value", optopt == 'h' ? "help" : "version");
        return;
    }
    if (optopt != 0) {
        for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++) {
            if (unsupported[i].flag == optopt) {
                err_line(err, "option -%c (memcached's %s) is not supported by cached", optopt,
                         unsupported[i].what);
                return;
            }
        }
        if (isprint(optopt))
            err_line(err, "unknown option -%c (see cached --help)", optopt);
        else
            err_line(err, "unknown option (see cached --help)");
        return;
    }
    /* A long option: unknown, ambiguous, or given a value it does not take. */
    const char *name = arg + 2;
    size_t len = strcspn(name, "=");
    char word[NAME_MAX_LEN], hint[NAME_MAX_LEN + 32];
    if (len >= NAME_MAX_LEN) {
        err_line(err, "unknown option '%.*s'", 100, arg);
        return;
    }
    memcpy(word, name, len);
    word[len] = '\0';
    char matches[256] = "";
    size_t nmatch = 0;
    for (size_t i = 0; i < NDESC + 5; i++) {
        const char *cand = i < NDESC ? descs[i].name : extra_longs[i - NDESC];
        if (len > 0 && strncmp(cand, word, len) == 0) {
            size_t used = strlen(matches);
            snprintf(matches + used, sizeof matches - used, "%s--%s", nmatch ? ", " : "", cand);
            nmatch++;
        }
    }
    if (nmatch > 1) {
        err_line(err, "ambiguous option '--%s' (could be %s)", word, matches);
        return;
    }
    did_you_mean(hint, sizeof hint, "--", word, false, extra_longs, 5);
    err_line(err, "unknown option '--%s'%s", word, hint);
}

/* -U: memcached's UDP port. cached serves no UDP, so only -U 0 (memcached 1.6's default, UDP
 * off) is accepted; a port is refused rather than taken and not served. */
static int udp_port(const char *val, FILE *err)
{
    uint64_t v;
    if (parse_u64(val, 10, false, &v) != 0 || v > 65535) {
        err_line(err, "-U/--udp-port: '%s' is not a port", val);
        return CFG_EXIT_USAGE;
    }
    if (v == 0)
        return 0;
    err_line(err, "-U %s: UDP is not served (TCP and unix sockets only); use -U 0 or leave it out",
             val);
    return CFG_EXIT_USAGE;
}

static bool in_list(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

/* memcached's page-mover and crawler knobs: slab_reassign, slab_automove_window=N,
 * slab_automove_ratio=R, lru_crawler_tocrawl=N (its checks and messages). no_slab_reassign and no_modern also go on to mapped_ext. -1: not
 * one of them. */
static int slab_ext(struct cfg *c, const char *u, const char *val, FILE *err)
{
    if (strcmp(u, "slab_reassign") == 0 && val == NULL) {
        c->no_slab_reassign = false;
        return 0;
    }
    if ((strcmp(u, "no_slab_reassign") == 0 || strcmp(u, "no_modern") == 0) && val == NULL) {
        c->no_slab_reassign = true;
        return -1;
    }
    if (strcmp(u, "lru_crawler_tocrawl") == 0) { /* items a crawl pass checks per class */
        uint64_t v;
        if (val == NULL || parse_u64(val, 10, false, &v) != 0 || v > UINT32_MAX) {
            err_line(err, "-o lru_crawler_tocrawl takes a numeric 32bit value");
            return CFG_EXIT_USAGE;
        }
        c->lru_crawler_tocrawl = v;
        return 0;
    }
    if (strcmp(u, "lru_crawler_sleep") == 0) { /* memcached's atoi(), then its range check */
        if (val == NULL) {
            err_line(err, "-o lru_crawler_sleep: missing lru_crawler_sleep value");
            return CFG_EXIT_USAGE;
        }
        long long v = strtoll(val, NULL, 10);
        if (v < 0 || v > 1000000) {
            err_line(err, "-o lru_crawler_sleep: LRU crawler sleep must be between 0 and 1 "
                          "second (0..1000000 microseconds): '%s'", val);
            return CFG_EXIT_USAGE;
        }
        c->lru_crawler_sleep = (uint64_t)v;
        return 0;
    }
    if (strcmp(u, "track_sizes") == 0) { /* memcached ignores a value */
        c->track_sizes = true;
        return 0;
    }
    bool window = strcmp(u, "slab_automove_window") == 0;
    if (!window && strcmp(u, "slab_automove_ratio") != 0)
        return -1;
    if (val == NULL || *val == '\0') {
        err_line(err, "-o %s: missing %s argument", u, u);
        return CFG_EXIT_USAGE;
    }
    char *end;
    errno = 0;
    if (window) {
        unsigned long long w = strtoull(val, &end, 10);
        if (*end != '\0' || errno != 0 || w < 3 || w > 3600) {
            err_line(err, "-o slab_automove_window must be > 2 (and at most 3600): '%s'", val);
            return CFG_EXIT_USAGE;
        }
        c->slab_automove_window = w;
    } else {
        double r = strtod(val, &end);
        if (*end != '\0' || errno != 0 || !(r > 0 && r <= 1)) {
            err_line(err, "-o slab_automove_ratio must be > 0 and <= 1: '%s'", val);
            return CFG_EXIT_USAGE;
        }
        c->slab_automove_ratio = r;
    }
    return 0;
}

/* One -o element: "key=value", "key" (switch on) or "no_key" (switch off). */
static int extended_one(struct cfg *c, struct src *src, char *kv, FILE *err)
{
    char *eq = strchr(kv, '=');
    const char *val = NULL;
    if (eq != NULL) {
        *eq = '\0';
        val = eq + 1;
    }
    char cn[NAME_MAX_LEN], u[NAME_MAX_LEN], hint[NAME_MAX_LEN + 32], msg[320];
    if (*kv == '\0') {
        err_line(err, "-o: missing key in '%s%s'", eq ? "=" : "", val ? val : "");
        return CFG_EXIT_USAGE;
    }
    if (strlen(kv) >= NAME_MAX_LEN) {
        err_line(err, "-o: unknown key '%.64s...'", kv);
        return CFG_EXIT_USAGE;
    }
    underscored(kv, u);
    if (in_list(ignored_ext, sizeof ignored_ext / sizeof *ignored_ext, u))
        return 0; /* what cached always does (the list's comments say why) */
    int rc = slab_ext(c, u, val, err);
    if (rc >= 0)
        return rc;
    if (strcmp(u, "resp_obj_mem_limit") == 0) {
        /* memcached 1.6.18 takes any value, says this and ignores it: so does cached */
        fputs("DEPRECATED: resp_obj_mem_limit no longer used. See read_buf_mem_limit,\n", err);
        fflush(err);
        return 0;
    }
    for (size_t k = 0; k < sizeof refused_ext / sizeof *refused_ext; k++) {
        if (strcmp(u, refused_ext[k].key) == 0) {
            /* A value that asks for nothing (a limit of 0) is what cached does anyway. */
            if (val != NULL && strcmp(val, "0") == 0 && strstr(u, "_limit") != NULL)
                return 0;
            err_line(err, "-o %s is not supported: %s", u, refused_ext[k].why);
            return CFG_EXIT_USAGE;
        }
    }
    for (size_t k = 0; k < sizeof mapped_ext / sizeof *mapped_ext; k++) {
        if (strcmp(u, mapped_ext[k].key) == 0 && val == NULL) {
            for (int two = 0; two < 2; two++) {
                const char *name = two ? mapped_ext[k].setting2 : mapped_ext[k].setting;
                const char *v = two ? mapped_ext[k].value2 : mapped_ext[k].value;
                if (name == NULL)
                    break;
                int m = find_desc(name);
                if (m < 0 || set_value(c, &descs[m], v, false, msg, sizeof msg))
                    return CFG_EXIT_USAGE;
                src->kind[m] = SRC_ARGV;
                c->cmdline_set |= 1ull << m;
            }
            if (strcmp(u, "no_lru_maintainer") == 0 || strcmp(u, "no_modern") == 0)
                c->no_lru_maintainer = true;
            return 0;
        }
    }
    bool negate = false;
    canon(kv, strlen(kv), cn);
    int i = find_desc(cn);
    if (i < 0 && strncmp(cn, "no-", 3) == 0 && val == NULL) {
        i = find_desc(cn + 3);
        negate = i >= 0 && descs[i].type == CFG_BOOL;
        if (!negate)
            i = -1;
    }
    if (i < 0) {
        /* Suggest among the -o spellings: the table's names and the ignored memcached ones. */
        char cands[sizeof ignored_ext / sizeof *ignored_ext][NAME_MAX_LEN];
        const char *ptrs[sizeof ignored_ext / sizeof *ignored_ext];
        for (size_t k = 0; k < sizeof ignored_ext / sizeof *ignored_ext; k++) {
            canon(ignored_ext[k], strlen(ignored_ext[k]), cands[k]);
            ptrs[k] = cands[k];
        }
        did_you_mean(hint, sizeof hint, "", kv, true, ptrs, sizeof ptrs / sizeof *ptrs);
        err_line(err, "unknown -o key '%s'%s", kv, hint);
        return CFG_EXIT_USAGE;
    }
    const struct cfg_desc *d = &descs[i];
    underscored(d->name, u);
    if (val == NULL) {
        if (d->type != CFG_BOOL) {
            err_line(err, "-o %s needs a value (-o %s=VALUE)", kv, u);
            return CFG_EXIT_USAGE;
        }
        val = negate ? "no" : "yes";
    }
    /* memcached's slab_automove is 0 (off), 1 or 2 (its aggressive mode); cached's 2 moves
     * pages ten times as often as 1 (storage_set_automove). */
    char mapped[4];
    if (is(d, offsetof(struct cfg, slab_automove)) && val[0] >= '0' && val[0] <= '2' &&
        val[1] == '\0') {
        c->slab_automove_fast = val[0] == '2';
        snprintf(mapped, sizeof mapped, "%c", val[0] == '0' ? '0' : '1');
        val = mapped;
    }
    if (set_value(c, d, val, src->list_seen[i], msg, sizeof msg) != 0) {
        err_line(err, "-o %s: %s", u, msg);
        return CFG_EXIT_USAGE;
    }
    src->list_seen[i] = true;
    flag_mark(c, src, (size_t)i);
    return 0;
}

static int extended(struct cfg *c, struct src *src, const char *arg, FILE *err)
{
    char *copy = xstrdup(arg), *save = NULL;
    int rc = 0;
    if (*copy == '\0') {
        err_line(err, "-o needs key=value (e.g. -o idle_timeout=10)");
        rc = CFG_EXIT_USAGE;
    }
    for (char *kv = strtok_r(copy, ",", &save); kv != NULL && rc == 0;
         kv = strtok_r(NULL, ",", &save))
        rc = extended_one(c, src, kv, err);
    free(copy);
    return rc;
}

/* A setting from argv (short or long form). */
static int argv_setting(struct cfg *c, struct src *src, size_t i, const char *val, FILE *err)
{
    const struct cfg_desc *d = &descs[i];
    char msg[320], label[NAME_MAX_LEN + 8];
    if (is(d, offsetof(struct cfg, verbose)) && val == NULL) {
        /* -v counts; the first -v on the command line starts over from the file's level. */
        uint64_t v = src->kind[i] == flag_kind(src) ? c->verbose : 0;
        c->verbose = v < d->max ? v + 1 : (uint64_t)d->max;
    } else if (is(d, offsetof(struct cfg, port)) && val != NULL && strcmp(val, "-1") == 0) {
        c->port_ephemeral = true; /* memcached's -p -1: a port the kernel picks */
        c->port = 0;
    } else {
        if (val == NULL) /* a switch without a value */
            val = "yes";
        if (is(d, offsetof(struct cfg, port)))
            c->port_ephemeral = false;
        if (set_value(c, d, val, src->kind[i] == flag_kind(src), msg, sizeof msg) != 0) {
            flag_label(d, label, sizeof label);
            err_line(err, "%s: %s", label, msg);
            return CFG_EXIT_USAGE;
        }
    }
    flag_mark(c, src, i);
    return 0;
}

/* Words in one memcached.conf line ("-l 127.0.0.1 -p 11211" is 4). */
#define FLAG_LINE_MAX_WORDS 32

/*
 * One line of memcached's config format (Debian's /etc/memcached.conf, read by its
 * start-memcached script): flags exactly as on the command line ("-m 64", "-vv", "-d",
 * "--port=11211", "-o k=v"), applied as this file's values (the command line still wins).
 * The one-line error of the flag parser is caught and re-issued with FILE:LINE in front.
 */
static int file_flags(struct cfg *c, struct src *src, char *s, const char *path, unsigned lineno,
                      FILE *err)
{
    char *words[FLAG_LINE_MAX_WORDS + 2], *save = NULL;
    int n = 0;
    words[n++] = (char *)"cached";
    for (char *w = strtok_r(s, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
        if (n == FLAG_LINE_MAX_WORDS + 1) {
            err_line(err, "%s:%u: more than %d words on one line", path, lineno,
                     FLAG_LINE_MAX_WORDS);
            return -1;
        }
        words[n++] = w;
    }
    words[n] = NULL;
    char msg[512] = "";
    FILE *m = fmemopen(msg, sizeof msg - 1, "w");
    if (m == NULL) {
        err_line(err, "%s:%u: %s", path, lineno, strerror(errno));
        return -1;
    }
    struct argv_ctx a;
    memset(&a, 0, sizeof a);
    build_opts(&a);
    int ch, rc = 0;
    src->flag_line = lineno;
    opterr = 0;
    optind = 0;
    while (rc == 0 && (ch = getopt_long(n, words, a.shorts, a.opts, NULL)) != -1) {
        int i = -1;
        if (ch == '?' || ch == ':') {
            report_getopt_error(ch, words, m);
            rc = -1;
        } else if (ch == 'h' || ch == 'V' || ch == OPT_CONFIG) {
            fprintf(m, "cached: %s is not a setting and cannot be given in a config file\n",
                    ch == 'h' ? "-h" : ch == 'V' ? "-V" : "--config");
            rc = -1;
        } else if (ch == 'o' && optarg != NULL) {
            rc = extended(c, src, optarg, m);
        } else if (ch == 'U' && optarg != NULL) {
            rc = udp_port(optarg, m);
        } else if (ch >= OPT_SETTING && ch < OPT_SETTING + (int)NDESC) {
            i = ch - OPT_SETTING;
        } else {
            i = short_index(ch);
        }
        if (i >= 0)
            rc = argv_setting(c, src, (size_t)i, optarg, m);
    }
    if (rc == 0 && optind < n) {
        fprintf(m, "cached: unexpected word '%s' (one flag and its value, e.g. '-m 64')\n",
                words[optind]);
        rc = -1;
    }
    src->flag_line = 0;
    fclose(m);
    if (rc == 0)
        return 0;
    const char *why = strncmp(msg, "cached: ", 8) == 0 ? msg + 8 : msg;
    err_line(err, "%s:%u: %.*s", path, lineno, (int)strcspn(why, "\n"), why);
    return -1;
}

int cfg_parse(struct cfg *c, int argc, char **argv, FILE *out, FILE *err, bool *exit_now)
{
    struct argv_ctx a;
    struct src src = {0};
    memset(&a, 0, sizeof a);
    const char *config = NULL;
    bool help = false, version = false;
    int ch, rc = 0;
    *exit_now = false;
    build_opts(&a);

    /* Pass 1: syntax, --help, --version and --config; nothing is applied yet. */
    opterr = 0;
    optind = 0; /* 0 makes glibc's getopt start over (tests parse many times) */
    while ((ch = getopt_long(argc, argv, a.shorts, a.opts, NULL)) != -1) {
        if (ch == '?' || ch == ':') {
            report_getopt_error(ch, argv, err);
            return CFG_EXIT_USAGE;
        }
        if (ch == 'h')
            help = true;
        else if (ch == 'V')
            version = true;
        else if (ch == OPT_CONFIG && optarg != NULL) /* required_argument: never NULL */
            config = optarg;
    }
    if (optind < argc) {
        err_line(err, "unexpected argument '%s' (see cached --help)", argv[optind]);
        return CFG_EXIT_USAGE;
    }
    if (help || version) {
        if (help)
            usage(out);
        else
            fprintf(out, "%s\n", CFG_VERSION_LINE);
        fflush(out);
        *exit_now = true;
        return 0;
    }

    if (config != NULL) {
        free((char *)c->config_file);
        c->config_file = xstrdup(config);
        rc = load_file(c, &src, config, err);
        if (rc != 0)
            return rc;
    }

    /* Pass 2: the command line on top. */
    memset(src.list_seen, 0, sizeof src.list_seen);
    optind = 0;
    while (rc == 0 && (ch = getopt_long(argc, argv, a.shorts, a.opts, NULL)) != -1) {
        int i = -1;
        if (ch >= OPT_SETTING && ch < OPT_SETTING + (int)NDESC)
            i = ch - OPT_SETTING;
        else if (ch == 'o' && optarg != NULL)
            rc = extended(c, &src, optarg, err);
        else if (ch == 'U' && optarg != NULL)
            rc = udp_port(optarg, err);
        else if (ch != OPT_CONFIG)
            i = short_index(ch);
        if (i >= 0)
            rc = argv_setting(c, &src, (size_t)i, optarg, err);
    }
    if (rc != 0)
        return rc;
    rc = cross_check(c, &src, c->config_file, err);
    derive(c);
    return rc;
}

/* ---- reload ---- */

static bool same_value(const struct cfg *a, const struct cfg *b, const struct cfg_desc *d)
{
    char va[512], vb[512];
    fmt_value(a, d, va, sizeof va, false);
    fmt_value(b, d, vb, sizeof vb, false);
    return strcmp(va, vb) == 0;
}

static void copy_value(struct cfg *dst, const struct cfg *from, const struct cfg_desc *d)
{
    const void *p = cfield_of(from, d);
    switch (d->type) {
    case CFG_BOOL:
        *(bool *)field_of(dst, d) = *(const bool *)p;
        break;
    case CFG_UINT:
    case CFG_SIZE:
        *(uint64_t *)field_of(dst, d) = *(const uint64_t *)p;
        break;
    case CFG_DOUBLE:
        *(double *)field_of(dst, d) = *(const double *)p;
        break;
    case CFG_STR:
    case CFG_LIST:
        set_str(field_of(dst, d), xstrdup(*(char *const *)p));
        break;
    }
}

int cfg_reload(struct cfg *c, FILE *log)
{
    if (c->config_file == NULL) {
        err_line(log, "config: no config file to reload (start with --config FILE)");
        return CFG_EXIT_CONFIG;
    }
    /* Defaults + file, as at startup; the command line still wins (cmdline_set). */
    struct cfg n;
    struct src src = {0};
    cfg_init(&n);
    int rc = load_file(&n, &src, c->config_file, log);
    /* Check the combination the process would run with: the command line's values too. */
    for (size_t i = 0; rc == 0 && i < NDESC; i++) {
        if (((c->cmdline_set >> i) & 1) == 0)
            continue;
        copy_value(&n, c, &descs[i]);
        src.kind[i] = SRC_ARGV;
    }
    if (rc == 0)
        rc = cross_check(&n, &src, c->config_file, log) ? CFG_EXIT_CONFIG : 0;
    if (rc != 0) {
        cfg_free(&n);
        return CFG_EXIT_CONFIG;
    }
    for (size_t i = 0; i < NDESC; i++) {
        const struct cfg_desc *d = &descs[i];
        char name[NAME_MAX_LEN], from[256], to[256];
        if ((c->cmdline_set >> i) & 1 || same_value(c, &n, d))
            continue;
        underscored(d->name, name);
        fmt_value(c, d, from, sizeof from, true);
        fmt_value(&n, d, to, sizeof to, true);
        if (!d->reloadable) {
            fprintf(log, "config: %s %s -> %s needs a restart; kept %s\n", name, from, to, from);
            continue;
        }
        fprintf(log, "config: %s %s -> %s\n", name, from, to);
        void *dst = field_of(c, d), *srcp = field_of(&n, d);
        /* Workers read these without a lock: store whole words atomically. */
        switch (d->type) {
        case CFG_BOOL:
            __atomic_store_n((bool *)dst, *(bool *)srcp, __ATOMIC_RELAXED);
            break;
        case CFG_UINT:
        case CFG_SIZE:
            __atomic_store_n((uint64_t *)dst, *(uint64_t *)srcp, __ATOMIC_RELAXED);
            break;
        case CFG_DOUBLE:
            *(double *)dst = *(double *)srcp;
            break;
        case CFG_STR:
        case CFG_LIST: {
            char *tmp = *(char **)dst; /* swap, so cfg_free(&n) frees the old one */
            *(char **)dst = *(char **)srcp;
            *(char **)srcp = tmp;
            break;
        }
        }
    }
    fflush(log);
    cfg_free(&n);
    return 0;
}

/* ---- listing ---- */

bool cfg_list_next(const char *list, const char **pos, char *buf, size_t bufsz)
{
    const char *p = *pos != NULL ? *pos : list;
    if (p == NULL || bufsz == 0)
        return false;
    while (*p == ',')
        p++;
    if (*p == '\0') {
        *pos = p;
        return false;
    }
    size_t len = strcspn(p, ",");
    size_t n = len < bufsz - 1 ? len : bufsz - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    *pos = p + len;
    return true;
}

void cfg_each(const struct cfg *c, void (*fn)(void *arg, const char *name, const char *value),
              void *arg)
{
    for (size_t i = 0; i < NDESC; i++) {
        char name[NAME_MAX_LEN], val[1024];
        underscored(descs[i].name, name);
        fmt_value(c, &descs[i], val, sizeof val, false);
        fn(arg, name, val);
    }
    char cf[1024];
    snprintf(cf, sizeof cf, "%s", c->config_file ? c->config_file : "NULL");
    fn(arg, "config", cf);
}
