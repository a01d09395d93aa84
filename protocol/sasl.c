/*
 * sasl: see protocol/sasl.h. Mirrors memcached 1.6.18 built against Debian's libsasl2
 * (SASL_CB_GETCONFPATH, no plaintext password db): the same config search, the same
 * sasl_server_new arguments (service "memcached", the host name as server FQDN), so the
 * mechanism list and every answer come from the same library calls memcached makes.
 */
#include "protocol/sasl.h"

#include <sasl/sasl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol/internal.h"

static char sasl_hostname[1025];
static bool sasl_ready;

/* Where memcached looks when SASL_CONF_PATH is not set: a memcached.conf directory first,
 * then a memcached.conf file (its directory is the path). */
static int sasl_getconfpath(void *context, const char **path)
{
    static const char *const files[] = {"/etc/sasl/memcached.conf", "/etc/sasl2/memcached.conf"};
    static const char *const dirs[] = {"/etc/sasl", "/etc/sasl2"};
    static const char *const nested[] = {"/etc/sasl/memcached.conf/memcached.conf",
                                         "/etc/sasl2/memcached.conf/memcached.conf"};
    (void)context;
    *path = getenv("SASL_CONF_PATH");
    for (size_t i = 0; *path == NULL && i < 2; i++) {
        if (access(nested[i], F_OK) == 0)
            *path = files[i];
        else if (access(files[i], F_OK) == 0)
            *path = dirs[i];
    }
    if (proto_verbose()) {
        if (*path != NULL)
            fprintf(stderr, "Reading configuration from: <%s>\n", *path);
        else
            fprintf(stderr, "Failed to locate a config path\n");
    }
    return *path != NULL ? SASL_OK : SASL_FAIL;
}

static int sasl_log(void *context, int level, const char *message)
{
    (void)context;
    unsigned need = 0;
    switch (level) {
    case SASL_LOG_NONE: return SASL_OK;
    case SASL_LOG_PASS:
    case SASL_LOG_TRACE:
    case SASL_LOG_DEBUG:
    case SASL_LOG_NOTE: need = 2; break;
    case SASL_LOG_WARN:
    case SASL_LOG_FAIL: need = 1; break;
    default: break;
    }
    if (proto_verbose() >= need)
        fprintf(stderr, "SASL (severity %d): %s\n", level, message);
    return SASL_OK;
}

/* libsasl stores every callback as int (*)(void); void (*)(void) is the cast gcc allows. */
typedef int (*sasl_cb_fn)(void);
#define SASL_CB(f) ((sasl_cb_fn)(void (*)(void))(f))
static sasl_callback_t sasl_callbacks[] = {
    {SASL_CB_LOG, SASL_CB(sasl_log), NULL},
    {SASL_CB_GETCONFPATH, SASL_CB(sasl_getconfpath), NULL},
    {SASL_CB_LIST_END, NULL, NULL},
};

int proto_sasl_setup(void)
{
    memset(sasl_hostname, 0, sizeof sasl_hostname);
    if (gethostname(sasl_hostname, sizeof sasl_hostname - 1) == -1)
        sasl_hostname[0] = '\0';
    if (sasl_server_init(sasl_callbacks, "memcached") != SASL_OK) {
        fprintf(stderr, "Error initializing sasl.\n");
        return -1;
    }
    sasl_ready = true;
    return 0;
}

void proto_sasl_teardown(void)
{
    /* sasl_server_done() would unload the plugins while a worker might still dispose of a
     * connection; like memcached, leave the library to process exit. */
    sasl_ready = false;
}

/* memcached's init_sasl_conn: every SASL command starts unauthenticated. */
static void sasl_conn_init(struct proto_conn *pc)
{
    pc->authenticated = false;
    if (pc->sasl == NULL && sasl_ready) {
        sasl_conn_t *conn = NULL;
        if (sasl_server_new("memcached", NULL, sasl_hostname[0] ? sasl_hostname : NULL, NULL,
                            NULL, NULL, 0, &conn) != SASL_OK) {
            if (proto_verbose())
                fprintf(stderr, "Failed to initialize SASL conn.\n");
            conn = NULL;
        }
        pc->sasl = conn;
    }
}

void psasl_conn_release(struct proto_conn *pc)
{
    if (pc->sasl != NULL) {
        sasl_dispose((sasl_conn_t **)&pc->sasl);
        pc->sasl = NULL;
    }
    pc->authenticated = false;
    pc->sasl_started = false;
}

bool psasl_list_mechs(struct proto_conn *pc, const char **out, unsigned *outlen)
{
    sasl_conn_init(pc);
    *out = NULL;
    *outlen = 0;
    if (pc->sasl == NULL)
        return false;
    return sasl_listmech(pc->sasl, NULL, "", " ", "", out, outlen, NULL) == SASL_OK;
}

enum psasl_result psasl_auth(struct proto_conn *pc, bool step, const char *mech, size_t nmech,
                             const char *data, size_t len, const char **out, unsigned *outlen)
{
    char name[SASL_MECH_MAX + 1];
    int rc = -1;
    sasl_conn_init(pc);
    *out = NULL;
    *outlen = 0;
    if (nmech > SASL_MECH_MAX)
        return PSASL_FAIL;
    memcpy(name, mech, nmech);
    name[nmech] = '\0';
    const char *challenge = len == 0 ? NULL : data;
    if (pc->sasl == NULL) {
        rc = -1;
    } else if (!step) {
        rc = sasl_server_start(pc->sasl, name, challenge, (unsigned)len, out, outlen);
        pc->sasl_started = rc == SASL_OK || rc == SASL_CONTINUE;
    } else if (pc->sasl_started) {
        rc = sasl_server_step(pc->sasl, challenge, (unsigned)len, out, outlen);
    }
    if (rc == SASL_OK) {
        pc->authenticated = true;
        return PSASL_OK;
    }
    return rc == SASL_CONTINUE ? PSASL_CONTINUE : PSASL_FAIL;
}
