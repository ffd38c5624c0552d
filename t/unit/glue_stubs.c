/* The few httpd functions (and one of the module's own) that
 * src/mod_tokenbay_state.c and src/mod_tokenbay_config.c call, so that
 * t/unit/tb_glue links them without httpd; the log they write is kept for
 * the tests to count. Also the servers and requests the tests hand them. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_time.h>
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "mod_tokenbay_config.h"
#include "mod_tokenbay_respond.h"
#include "mod_tokenbay_shared.h"
#include "mod_tokenbay_state.h"
#include "glue.h"

/* module_index 0: each server's config vector has that one slot */
module AP_MODULE_DECLARE_DATA tokenbay_module;

/* ---- the log ---------------------------------------------------------------- */

#define TAGS 100

static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static int log_counts[TAGS][APLOG_TRACE8 + 1];

/* Counts the line under its "TB<n>: " tag; TB_GLUE_LOG=1 in the
 * environment shows every line on stderr, to see what a failing suite
 * went through. */
static void log_line(int level, apr_status_t status, const char *fmt,
                     va_list ap)
{
    char line[1024];
    int tag = 0;

    apr_vsnprintf(line, sizeof(line), fmt, ap);
    level &= APLOG_LEVELMASK;
    if (sscanf(line, "TB%d: ", &tag) != 1 || tag < 0 || tag >= TAGS) {
        tag = 0;
    }
    pthread_mutex_lock(&log_mutex);
    ++log_counts[tag][level];
    pthread_mutex_unlock(&log_mutex);
    if (getenv("TB_GLUE_LOG")) {
        fprintf(stderr, "# log %d (status %d): %s\n", level, status, line);
    }
}

void ap_log_error_(const char *file, int line, int module_index, int level,
                   apr_status_t status, const server_rec *s,
                   const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_line(level, status, fmt, ap);
    va_end(ap);
}

void ap_log_rerror_(const char *file, int line, int module_index, int level,
                    apr_status_t status, const request_rec *r,
                    const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_line(level, status, fmt, ap);
    va_end(ap);
}

int glue_log_count(int tag, int max_level)
{
    int level, n = 0;

    if (tag < 0 || tag >= TAGS) {
        return 0;
    }
    pthread_mutex_lock(&log_mutex);
    for (level = 0; level <= max_level && level <= APLOG_TRACE8; ++level) {
        n += log_counts[tag][level];
    }
    pthread_mutex_unlock(&log_mutex);
    return n;
}

int glue_log_wait(int tag, int max_level, int n, int ms)
{
    apr_time_t until = apr_time_now() + apr_time_from_msec(ms);
    int have;

    while ((have = glue_log_count(tag, max_level)) < n
           && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(5));
    }
    return have;
}

/* ---- what the linker asks for besides -------------------------------------- */

/* Only the directive handlers of mod_tokenbay_config.c call these, and
 * no test parses directives: the tests set the config fields. */
const char *ap_check_cmd_context(cmd_parms *cmd, unsigned forbidden)
{
    return NULL;
}

apr_status_t ap_timeout_parameter_parse(const char *timeout_parameter,
                                        apr_interval_time_t *timeout,
                                        const char *default_time_unit)
{
    return APR_ENOTIMPL;
}

/* ---- servers and requests ------------------------------------------------------ */

server_rec *glue_server(glue_t *g)
{
    server_rec *s = apr_pcalloc(g->pool, sizeof(*s));
    void **config = apr_pcalloc(g->pool, sizeof(*config));
    server_rec **last = &g->s;

    s->server_hostname = "glue.test";
    s->log.level = APLOG_TRACE8;
    s->module_config = (ap_conf_vector_t *)config;
    config[tokenbay_module.module_index] = tb_conf_create_srv(g->pool, s);
    s->is_virtual = g->s != NULL;
    while (*last) {
        last = &(*last)->next;
    }
    *last = s;
    return s;
}

apr_status_t glue_child_init(glue_t *g)
{
    apr_status_t rv;

    if ((rv = apr_pool_create(&g->pchild, g->pool)) != APR_SUCCESS) {
        return rv;
    }
    return tb_state_child_init(g->pchild, g->s);
}

void glue_finish(glue_t *g)
{
    glue_db_hold(0);
    glue_db_park_keeper(0);
    if (g->pchild) {
        apr_pool_destroy(g->pchild);
        g->pchild = NULL;
    }
}

request_rec *glue_request(server_rec *s)
{
    apr_pool_t *p;
    request_rec *r;

    /* NB: unmanaged: a pool of its own allocator, like httpd's
     * per-connection ones, so that request threads share nothing */
    if (apr_pool_create_unmanaged_ex(&p, NULL, NULL) != APR_SUCCESS) {
        abort();
    }
    r = apr_pcalloc(p, sizeof(*r));
    r->pool = p;
    r->server = s;
    r->log = &s->log;       /* else httpd's log macros go to r->connection */
    r->notes = apr_table_make(p, 4);
    r->request_time = apr_time_now();
    glue_db_request_thread();
    return r;
}

void glue_request_done(request_rec *r)
{
    apr_pool_destroy(r->pool);
}

const char *glue_hash(apr_pool_t *p, unsigned int n)
{
    return apr_psprintf(p, "%056x%08x", 0, n);
}

/* ---- the shared scheduler table (mod_tokenbay_shared.c, not linked) ------------ */

tb_sched_t *tb_shared_sched(void)
{
    return NULL;
}
