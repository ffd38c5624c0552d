/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "mod_tokenbay_private.h"

#include <limits.h>
#include <string.h>
#include <unistd.h>

#include <apr_global_mutex.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <ap_mpm.h>
#include <ap_provider.h>
#include <ap_socache.h>
#include <http_config.h>
#include <http_log.h>
#include <util_mutex.h>

#include "mod_tokenbay_config.h"
#include "mod_tokenbay_shared.h"
#include "tb_memo.h"
#include "tb_util.h"

/* The table's key in the process pool, which outlives the configuration
 * generations: a graceful restart finds the table of the previous one. */
#define SCHED_KEY "mod_tokenbay:sched"
#define STICKY_MUTEX "tokenbay-sticky"
#define STICKY_NAMESPACE "mod_tokenbay-sticky"

/* Process rows: for the children of two generations at once (a
 * graceful restart overlaps them). */
#define PROCS_PER_DAEMON 2
#define PROCS_MIN 8

static tb_sched_t *sched;            /* parent, and inherited by children */
static int proc_row = -1;            /* this child's row */

static const ap_socache_provider_t *sticky;
static ap_socache_instance_t *sticky_inst;
static apr_global_mutex_t *sticky_mutex;   /* providers that need one */
static const char *sticky_name;

/* Each process remembers what it read from the sticky cache for a second
 * (STICKY_MEMO_FRESH): a busy session costs one read of the shared cache
 * (and of its mutex, for shmcb) a second per process, not one a request.
 * A session another process moved meanwhile is seen that much later. */
#define STICKY_MEMO_SIZE 16384
#define STICKY_MEMO_FRESH apr_time_from_sec(1)
static tb_memo_t *sticky_memo;

tb_sched_t *tb_shared_sched(void)
{
    return sched;
}

int tb_shared_proc(void)
{
    return proc_row;
}

int tb_shared_slot(int account_id)
{
    return tb_sched_slot(sched, account_id);
}

void tb_shared_policy(server_rec *s, tb_sched_policy_t *pol)
{
    tb_srv_conf_t *sc = tb_conf_srv(s);

    pol->rate_limit = tb_conf_cool_rate_limit(sc);
    pol->rate_limit_max = tb_conf_cool_rate_limit_max(sc);
    pol->quota = tb_conf_cool_quota(sc);
    pol->error = tb_conf_cool_error(sc);
    pol->error_max = tb_conf_cool_error_max(sc);
}

/* ---- the table ------------------------------------------------------------ */

static apr_status_t sched_setup(apr_pool_t *ptemp, server_rec *s)
{
    apr_pool_t *pproc = s->process->pool;
    unsigned int slots = (unsigned int)tb_conf_sched_slots(tb_conf_srv(s));
    unsigned int nprocs;
    apr_shm_t *shm = NULL;
    void *data = NULL;
    int daemons = 0;
    apr_status_t rv;

    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &daemons) != APR_SUCCESS
        || daemons < 1) {
        daemons = 16;
    }
    nprocs = (unsigned int)daemons * PROCS_PER_DAEMON;
    if (nprocs < PROCS_MIN) {
        nprocs = PROCS_MIN;
    }
    apr_pool_userdata_get(&data, SCHED_KEY, pproc);
    if ((shm = data) != NULL) {
        sched = tb_sched_open(apr_shm_baseaddr_get(shm), apr_shm_size_get(shm),
                              slots, nprocs);
        if (sched) {
            unsigned int given = tb_sched_proc_sweep(sched, tb_sched_pid_alive);
            if (given) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, TB_LOGNO(61)
                             "gave back %u upstream slot%s held by processes "
                             "that are gone", given, given == 1 ? "" : "s");
            }
            return APR_SUCCESS;
        }
        /* NB: children of the old generation keep their own mapping */
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, TB_LOGNO(62)
                     "scheduler table resized (TokenBaySchedulerSlots or "
                     "ServerLimit changed): cooldowns and error marks start "
                     "afresh");
        apr_pool_userdata_set(NULL, SCHED_KEY, apr_pool_cleanup_null, pproc);
        apr_shm_destroy(shm);
    }
    /* anonymous: inherited by the children, gone with the last process */
    rv = apr_shm_create(&shm, tb_sched_size(slots, nprocs), NULL, pproc);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, TB_LOGNO(63)
                     "cannot create the scheduler's shared memory (%"
                     APR_SIZE_T_FMT " bytes)", tb_sched_size(slots, nprocs));
        return rv;
    }
    sched = tb_sched_format(apr_shm_baseaddr_get(shm), slots, nprocs);
    apr_pool_userdata_set(shm, SCHED_KEY, apr_pool_cleanup_null, pproc);
    (void)ptemp;
    return APR_SUCCESS;
}

/* The parent learns of every child's end: what it held goes back. */
static void tb_child_status(server_rec *s, pid_t pid, ap_generation_t gen,
                            int slot, mpm_child_status state)
{
    unsigned int given;

    (void)gen;
    (void)slot;
    if (state != MPM_CHILD_EXITED || !sched) {
        return;
    }
    if ((given = tb_sched_proc_reap(sched, (apr_uint32_t)pid)) != 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, TB_LOGNO(60)
                     "process %" APR_PID_T_FMT " ended holding %u upstream "
                     "slot%s: given back", pid, given, given == 1 ? "" : "s");
    }
}

/* ---- leases ---------------------------------------------------------------- */

struct tb_lease_t {
    int slot;
};

static apr_status_t lease_cleanup(void *data)
{
    tb_lease_t *l = data;

    tb_sched_release(sched, l->slot, proc_row);
    return APR_SUCCESS;
}

tb_lease_t *tb_shared_lease(request_rec *r, int slot)
{
    tb_lease_t *l;

    if (!sched || slot < 0) {
        return NULL;
    }
    l = apr_palloc(r->pool, sizeof(*l));
    l->slot = slot;
    apr_pool_cleanup_register(r->pool, l, lease_cleanup, apr_pool_cleanup_null);
    return l;
}

void tb_shared_lease_end(request_rec *r, tb_lease_t *lease)
{
    if (lease) {
        apr_pool_cleanup_run(r->pool, lease, lease_cleanup);
    }
}

/* ---- sticky maps ------------------------------------------------------------- */

static apr_status_t sticky_destroy(void *data)
{
    server_rec *s = data;

    if (sticky_inst) {
        sticky->destroy(sticky_inst, s);
    }
    sticky_inst = NULL;
    sticky = NULL;
    sticky_mutex = NULL;
    sticky_name = NULL;
    return APR_SUCCESS;
}

static int sticky_setup(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    tb_srv_conf_t *sc = tb_conf_srv(s);
    const char *spec = tb_conf_sticky_cache(sc), *sep, *args = NULL, *err;
    struct ap_socache_hints hints;
    apr_status_t rv;
    char *name;

    if (!spec) {
        return OK;   /* TokenBayStickyCache none */
    }
    sep = ap_strchr_c(spec, ':');
    name = sep ? apr_pstrmemdup(ptemp, spec, sep - spec) : apr_pstrdup(ptemp, spec);
    args = sep ? sep + 1 : NULL;
    sticky = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, name,
                                AP_SOCACHE_PROVIDER_VERSION);
    if (!sticky) {
        if (!sc->sticky_cache) {
            /* the default, and its module is not loaded: say so, go on */
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, TB_LOGNO(64)
                         "sessions are not sticky: load mod_socache_shmcb (or "
                         "set TokenBayStickyCache to a loaded provider, or to "
                         "none)");
            return OK;
        }
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, TB_LOGNO(65)
                     "TokenBayStickyCache %s: no socache provider '%s' (load "
                     "mod_socache_%s)", spec, name, name);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if ((err = sticky->create(&sticky_inst, args, ptemp, pconf)) != NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, TB_LOGNO(66)
                     "TokenBayStickyCache %s: %s", spec, err);
        sticky = NULL;
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (sticky->flags & AP_SOCACHE_FLAG_NOTMPSAFE) {
        rv = ap_global_mutex_create(&sticky_mutex, NULL, STICKY_MUTEX, NULL, s,
                                    pconf, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, TB_LOGNO(67)
                         "cannot create the sticky cache's mutex");
            sticky = NULL;
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    memset(&hints, 0, sizeof(hints));
    hints.avg_id_len = 48;
    hints.avg_obj_size = 8;
    hints.expiry_interval = apr_time_from_sec(60);
    if ((rv = sticky->init(sticky_inst, STICKY_NAMESPACE, &hints, s, pconf))
        != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, TB_LOGNO(68)
                     "TokenBayStickyCache %s: the cache cannot be set up", spec);
        sticky = NULL;
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_cleanup_register(pconf, s, sticky_destroy, apr_pool_cleanup_null);
    sticky_name = apr_pstrdup(pconf, name);
    return OK;
}

const char *tb_sticky_provider(void)
{
    return sticky_name;
}

/* Values are "ACCOUNT_ID:STORED_AT" (seconds), so that a reader can tell
 * whether the entry needs a refresh without writing it every time. */
int tb_sticky_get(request_rec *r, const char *key, int memo_miss,
                  apr_time_t *pstored)
{
    apr_uint64_t h = tb_memo_hash(key);
    apr_time_t now = apr_time_now(), when = 0;
    unsigned char val[32];
    unsigned int vlen = sizeof(val) - 1;
    apr_status_t rv;
    char *colon;
    long id = 0, at;
    int memo;

    if (pstored) {
        *pstored = 0;
    }
    if (!sticky_inst) {
        return 0;
    }
    if (sticky_memo && tb_memo_get(sticky_memo, h, now, STICKY_MEMO_FRESH,
                                   &memo, &when)) {
        if (pstored) {
            *pstored = when;
        }
        return memo;
    }
    if (sticky_mutex && apr_global_mutex_lock(sticky_mutex) != APR_SUCCESS) {
        return 0;
    }
    rv = sticky->retrieve(sticky_inst, r->server, (const unsigned char *)key,
                          (unsigned int)strlen(key), val, &vlen, r->pool);
    if (sticky_mutex) {
        apr_global_mutex_unlock(sticky_mutex);
    }
    if (rv == APR_SUCCESS && vlen < sizeof(val)) {
        val[vlen] = '\0';
        if ((colon = strchr((char *)val, ':')) != NULL) {
            *colon = '\0';
            if (tb_parse_long((const char *)val, 1, APR_INT32_MAX, &id)
                && tb_parse_long(colon + 1, 0, LONG_MAX, &at)) {
                when = apr_time_from_sec(at);
            }
            else {
                id = 0;
            }
        }
    }
    if (sticky_memo && (id || memo_miss)) {
        tb_memo_put(sticky_memo, h, (int)id, when, now);
    }
    if (pstored) {
        *pstored = when;
    }
    return (int)id;
}

void tb_sticky_set(request_rec *r, const char *key, int account_id,
                   apr_interval_time_t ttl)
{
    apr_time_t now = apr_time_now();
    char val[32];
    apr_status_t rv;

    if (!sticky_inst || account_id <= 0) {
        return;
    }
    apr_snprintf(val, sizeof(val), "%d:%" APR_TIME_T_FMT, account_id,
                 apr_time_sec(now));
    if (sticky_mutex && apr_global_mutex_lock(sticky_mutex) != APR_SUCCESS) {
        return;
    }
    rv = sticky->store(sticky_inst, r->server, (const unsigned char *)key,
                       (unsigned int)strlen(key), now + ttl,
                       (unsigned char *)val, (unsigned int)strlen(val), r->pool);
    if (sticky_mutex) {
        apr_global_mutex_unlock(sticky_mutex);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, TB_LOGNO(69)
                      "sticky cache: cannot store a mapping");
    }
    if (sticky_memo) {
        tb_memo_put(sticky_memo, tb_memo_hash(key), account_id,
                    apr_time_from_sec(apr_time_sec(now)), now);
    }
}

/* ---- process set-up --------------------------------------------------------- */

static int tb_shared_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                                apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    return ap_mutex_register(pconf, STICKY_MUTEX, NULL, APR_LOCK_DEFAULT, 0)
           == APR_SUCCESS ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

int tb_shared_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    if (sched_setup(ptemp, s) != APR_SUCCESS) {
        /* the gateway still serves: without limits, health or stickiness
         * across processes (logged above) */
        sched = NULL;
    }
    return sticky_setup(pconf, ptemp, s);
}

void tb_shared_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    if (sched && (proc_row = tb_sched_proc_join(sched, (apr_uint32_t)getpid())) < 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, TB_LOGNO(70)
                     "no process row left in the scheduler table: slots this "
                     "process holds cannot be given back should it crash");
    }
    if (sticky_inst) {
        tb_memo_create(&sticky_memo, pchild, STICKY_MEMO_SIZE);
    }
    if (sticky_mutex) {
        rv = apr_global_mutex_child_init(&sticky_mutex,
                                         apr_global_mutex_lockfile(sticky_mutex),
                                         pchild);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, TB_LOGNO(71)
                         "sticky cache mutex: child init failed; sessions are "
                         "not sticky in this process");
            sticky_inst = NULL;
        }
    }
}

void tb_shared_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(tb_shared_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_status(tb_child_status, NULL, NULL, APR_HOOK_MIDDLE);
}
