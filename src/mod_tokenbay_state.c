/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "mod_tokenbay_private.h"

#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <http_log.h>

#include "mod_tokenbay_config.h"
#include "mod_tokenbay_db.h"
#include "mod_tokenbay_shared.h"
#include "mod_tokenbay_state.h"
#include "tb_dialect.h"
#include "tb_util.h"

/* Most idle upstream handle pairs (and so warm connections) kept per
 * process; more are created on demand and closed after use. */
#define CURL_MAX_IDLE 512

/* Back-off after a failed database attempt: doubling from the first to
 * the last, each with +-25 % jitter so children do not retry in step. */
#define BACKOFF_FIRST apr_time_from_msec(500)
#define BACKOFF_LAST  apr_time_from_sec(30)

/* The housekeeping thread wakes at least this often... */
#define TICK_MAX apr_time_from_sec(1)
/* ...and at most this often, whatever the TTLs. */
#define TICK_MIN apr_time_from_msec(100)

/* Known keys are revalidated by the keeper, in batches of this many (the
 * size of one query, TB_DB_KEY_BATCH, times eight), as long as it takes
 * within half a tick; those used within REVALIDATE_TTLS key TTLs (and the
 * stale TTL), so the database load follows the keys in use. */
#define REVALIDATE_BATCH 256
#define REVALIDATE_TTLS  10

/* Lookups of keys not confirmed within the TTL that a process runs at
 * once: a flood of random keys waits for no more database connections
 * than this; beyond it, 503 at once (known keys are not affected). */
#define SYNC_LOOKUPS_MAX 8

/* How long a stopping child waits for the keeper to finish what it is
 * doing (it may be waiting on a database that does not answer). */
#define KEEPER_STOP_WAIT apr_time_from_sec(5)

/* One immutable catalogue and its own allocator, so any thread may
 * destroy it; shared by reference count. */
typedef struct snapshot_t {
    apr_pool_t *pool;
    const tb_catalog_t *cat;
    apr_time_t loaded;
    int refs;                    /* requests using it, under st->mutex */
} snapshot_t;

/* Whether the database answers, shared by the threads of the process:
 * after a failure nobody tries again before retry_at, and then only one
 * thread (the probe) until it succeeds. */
typedef struct db_health_t {
    apr_thread_mutex_t *mutex;
    int failures;                /* consecutive */
    apr_time_t retry_at;
    apr_time_t down_since;
    int probing;
} db_health_t;

typedef struct tb_state_t {
    server_rec *s;
    tb_keycache_t *keys;
    apr_thread_mutex_t *mutex;   /* guards current and every refs */
    apr_thread_mutex_t *refresh; /* one catalogue loader at a time */
    snapshot_t *current;
    db_health_t db;
    volatile apr_uint32_t used;  /* a request has needed this server's state */
    volatile apr_uint32_t lookups; /* key lookups running on request threads */
} tb_state_t;

/* Accounts already logged as unusable ("id:protocol:caps:problem"), for
 * all servers of the process: its own pool, under its own lock (catalogues
 * of different servers load concurrently). */
typedef struct warned_t {
    apr_thread_mutex_t *mutex;
    apr_pool_t *pool;
    apr_hash_t *seen;
} warned_t;

/* The housekeeping thread. */
typedef struct keeper_t {
    apr_thread_t *thread;
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *cond;
    int stop;                    /* under mutex: asked to stop */
    int done;                    /* under mutex: it has stopped */
    apr_array_header_t *states;  /* tb_state_t* */
    apr_interval_time_t tick;
    server_rec *s;
} keeper_t;

static tb_curl_pool_t *curl_pool;
static warned_t warned;
static volatile apr_uint32_t failed_logged;

tb_curl_pool_t *tb_state_curl_pool(void)
{
    return curl_pool;
}

static tb_state_t *state_of(request_rec *r)
{
    tb_state_t *st = tb_conf_srv(r->server)->state;

    if (!st) {
        if (!apr_atomic_xchg32(&failed_logged, 1)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, TB_LOGNO(5)
                          "this server process could not set up mod_tokenbay "
                          "(see the log line TB3 at its start): it answers 503 "
                          "to every gateway request");
        }
        return NULL;
    }
    if (!st->used) {
        apr_atomic_set32(&st->used, 1);
    }
    return st;
}

void tb_state_unavailable_error(request_rec *r, apr_status_t rv,
                                tb_error_t *err)
{
    tb_state_t *st = tb_conf_srv(r->server)->state;
    long after = 1;

    if (!st) {
        tb_error_set(err, HTTP_SERVICE_UNAVAILABLE, "api_error",
                     "gateway_unavailable", NULL,
                     "The gateway is not available in this server process; "
                     "retry shortly.");
        err->retry_after = 1;
        return;
    }
    if (rv == APR_EAGAIN) {
        apr_time_t left;

        apr_thread_mutex_lock(st->db.mutex);
        left = st->db.retry_at - apr_time_now();
        apr_thread_mutex_unlock(st->db.mutex);
        if (left > 0) {
            after = (long)apr_time_sec(left + APR_USEC_PER_SEC - 1);
        }
    }
    tb_error_set(err, HTTP_SERVICE_UNAVAILABLE, "api_error",
                 "database_unavailable", NULL, rv == APR_EBUSY
                 ? "The gateway is checking too many unknown keys right now; "
                   "retry shortly."
                 : "The gateway cannot reach its database to check this "
                   "request; retry shortly.");
    err->retry_after = after;
}

void tb_state_catalog_error(tb_error_t *err)
{
    tb_error_set(err, HTTP_SERVICE_UNAVAILABLE, "api_error",
                 "database_unavailable", NULL,
                 "The gateway cannot load its routing catalogue right now; "
                 "retry shortly.");
    err->retry_after = 1;
}

/* ---- database health ----------------------------------------------------- */

typedef enum { GATE_CLOSED = 0, GATE_OPEN, GATE_PROBE } gate_t;

/* May this thread ask the database now? */
static gate_t db_gate_enter(tb_state_t *st, apr_time_t now)
{
    gate_t g = GATE_CLOSED;

    apr_thread_mutex_lock(st->db.mutex);
    if (!st->db.failures) {
        g = GATE_OPEN;
    }
    else if (now >= st->db.retry_at && !st->db.probing) {
        st->db.probing = 1;
        g = GATE_PROBE;
    }
    apr_thread_mutex_unlock(st->db.mutex);
    return g;
}

/* Give the gate back without an outcome (the attempt was not made). */
static void db_gate_cancel(tb_state_t *st, gate_t g)
{
    if (g == GATE_PROBE) {
        apr_thread_mutex_lock(st->db.mutex);
        st->db.probing = 0;
        apr_thread_mutex_unlock(st->db.mutex);
    }
}

static apr_interval_time_t backoff(int failures)
{
    apr_interval_time_t t = BACKOFF_FIRST;
    apr_interval_time_t jitter;

    while (--failures > 0 && t < BACKOFF_LAST) {
        t *= 2;
    }
    if (t > BACKOFF_LAST) {
        t = BACKOFF_LAST;
    }
    jitter = t / 4;
    return t - jitter + (apr_interval_time_t)(tb_random_u32()
                                              % (apr_uint32_t)(2 * jitter + 1));
}

/* The outcome of an attempt: `reached` says whether the database could be
 * reached (a failed query on a live connection is not an outage). Only
 * the first failure of an open period, or a failed probe, moves the
 * back-off on: the N requests in flight when the database goes are one
 * failure, not N. Only a probe, or an attempt while nothing had failed,
 * speaks for the database being back. The outage and the recovery are
 * logged once. */
static void db_gate_leave(tb_state_t *st, gate_t g, int reached)
{
    apr_time_t now = apr_time_now();
    apr_time_t was_down = 0;
    int first_failure = 0;

    apr_thread_mutex_lock(st->db.mutex);
    if (g == GATE_PROBE) {
        st->db.probing = 0;
    }
    if (reached) {
        if (g == GATE_PROBE && st->db.failures) {
            was_down = st->db.down_since;
            st->db.failures = 0;
        }
    }
    else if (g == GATE_PROBE || !st->db.failures) {
        if (!st->db.failures++) {
            st->db.down_since = now;
            first_failure = 1;
        }
        st->db.retry_at = now + backoff(st->db.failures);
    }
    apr_thread_mutex_unlock(st->db.mutex);

    if (first_failure) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, st->s, TB_LOGNO(13)
                     "database unavailable: serving the keys and catalogue "
                     "this process has loaded, refusing unknown keys with 503, "
                     "retrying with back-off");
    }
    else if (was_down) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, st->s, TB_LOGNO(14)
                     "database reachable again after %" APR_TIME_T_FMT "s",
                     apr_time_sec(now - was_down));
    }
}

/* Could the database be reached? (a query that failed on a connection
 * is the query's problem: logged, not an outage) */
static int db_reached(apr_status_t rv)
{
    return rv != APR_ECONNREFUSED;
}

/* ---- keys ------------------------------------------------------------------ */

apr_status_t tb_state_key_lookup(request_rec *r, const char *hash,
                                 tb_keyinfo_t *pinfo)
{
    tb_state_t *st = state_of(r);
    tb_srv_conf_t *sc = tb_conf_srv(r->server);
    apr_time_t now = apr_time_now(), fetched = 0;
    tb_keyinfo_t cached;
    int have, usable_stale;
    apr_status_t rv = APR_SUCCESS;
    gate_t g;

    if (!st) {
        rv = APR_EINIT;
        goto leave;
    }
    have = tb_keycache_get(st->keys, hash, now, r->pool, &cached, &fetched)
           == APR_SUCCESS;
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r, TB_LOGNO(15) "key cache: %s, "
                  "age %" APR_TIME_T_FMT " ms", !have ? "miss" : cached.found
                  ? "known" : "unknown", have ? apr_time_as_msec(now - fetched) : 0);
    if (have && now - fetched < tb_conf_key_cache_ttl(sc)) {
        *pinfo = cached;
        goto leave;
    }
    /* Not confirmed within the TTL: the keeper confirms the keys in use
     * before that, so this is a key this process has not seen, or not for
     * a while, or the keeper is behind. Ask the database, unless it is
     * known to be down; a known key is served stale only while it cannot
     * be confirmed, and not past the stale TTL. */
    usable_stale = have && cached.found
                   && now - fetched < tb_conf_key_stale_ttl(sc);
    if ((g = db_gate_enter(st, now)) == GATE_CLOSED) {
        rv = APR_EAGAIN;
    }
    else if (apr_atomic_inc32(&st->lookups) >= SYNC_LOOKUPS_MAX) {
        apr_atomic_dec32(&st->lookups);
        db_gate_cancel(st, g);
        rv = APR_EBUSY;
    }
    else {
        rv = tb_db_key_lookup(r->server, r->pool, hash, pinfo);
        apr_atomic_dec32(&st->lookups);
        db_gate_leave(st, g, db_reached(rv));
        if (rv == APR_SUCCESS) {
            tb_keycache_put(st->keys, hash, pinfo, apr_time_now());
            goto leave;
        }
    }
    if (usable_stale) {
        apr_table_setn(r->notes, "TOKENBAY_KEY_STALE", "1");
        *pinfo = cached;
        rv = APR_SUCCESS;
    }

leave:
    return rv;
}

/* Revalidation of one batch: the keys the database answered for are
 * stored fresh and struck off `missing`; what is left there, the
 * database no longer has. */
typedef struct reval_t {
    tb_state_t *st;
    apr_hash_t *missing;         /* digests asked for and not answered */
    apr_time_t now;
} reval_t;

static apr_status_t reval_found(void *ctx, const char *hash,
                                const tb_keyinfo_t *info)
{
    reval_t *rv = ctx;

    tb_keycache_put(rv->st->keys, hash, info, rv->now);
    apr_hash_set(rv->missing, hash, APR_HASH_KEY_STRING, NULL);
    return APR_SUCCESS;
}

/* Confirm the known keys in use that will reach the TTL soon, batch after
 * batch until none is left or `deadline`; a key the database no longer
 * has becomes an unknown one. Forget what is past use. */
static void keys_keep(tb_state_t *st, apr_pool_t *p, apr_time_t now,
                      apr_time_t deadline)
{
    tb_srv_conf_t *sc = tb_conf_srv(st->s);
    apr_interval_time_t ttl = tb_conf_key_cache_ttl(sc);
    apr_interval_time_t stale_ttl = tb_conf_key_stale_ttl(sc);
    apr_interval_time_t horizon = ttl * REVALIDATE_TTLS;
    const char **due = apr_palloc(p, sizeof(*due) * REVALIDATE_BATCH);
    apr_hash_index_t *hi;
    tb_keyinfo_t gone;
    reval_t rv;
    apr_status_t qrv;
    gate_t g;
    int n, i;

    tb_keycache_expire(st->keys, now - stale_ttl, now - ttl);
    if (horizon > stale_ttl) {
        horizon = stale_ttl;
    }
    memset(&gone, 0, sizeof(gone));
    rv.st = st;
    do {
        n = tb_keycache_due(st->keys, now - ttl / 2, now - horizon,
                            REVALIDATE_BATCH, p, due);
        if (!n || (g = db_gate_enter(st, now)) == GATE_CLOSED) {
            break;
        }
        rv.now = now;
        rv.missing = apr_hash_make(p);
        for (i = 0; i < n; ++i) {
            apr_hash_set(rv.missing, due[i], APR_HASH_KEY_STRING, due[i]);
        }
        qrv = tb_db_keys_lookup(st->s, p, due, n, reval_found, &rv);
        db_gate_leave(st, g, db_reached(qrv));
        if (qrv != APR_SUCCESS) {
            break;   /* the keys stay as they are; requests ask again */
        }
        for (hi = apr_hash_first(p, rv.missing); hi; hi = apr_hash_next(hi)) {
            const void *hash;

            apr_hash_this(hi, &hash, NULL, NULL);
            tb_keycache_put(st->keys, hash, &gone, now);
        }
        now = apr_time_now();
    } while (n == REVALIDATE_BATCH && now < deadline);
}

/* ---- the catalogue ----------------------------------------------------------- */

typedef struct snap_ref_t {
    tb_state_t *st;
    snapshot_t *snap;
} snap_ref_t;

/* The current snapshot with one more reference (NULL when none was ever
 * loaded); snap_put gives it back and destroys a snapshot that is no
 * longer current once its last user is done. */
static snapshot_t *snap_get(tb_state_t *st)
{
    snapshot_t *snap;

    apr_thread_mutex_lock(st->mutex);
    if ((snap = st->current) != NULL) {
        ++snap->refs;
    }
    apr_thread_mutex_unlock(st->mutex);
    return snap;
}

static void snap_put(tb_state_t *st, snapshot_t *snap)
{
    int destroy;

    apr_thread_mutex_lock(st->mutex);
    destroy = (--snap->refs == 0 && snap != st->current);
    apr_thread_mutex_unlock(st->mutex);
    if (destroy) {
        apr_pool_destroy(snap->pool);
    }
}

static apr_status_t snap_release(void *data)
{
    snap_ref_t *ref = data;

    snap_put(ref->st, ref->snap);
    return APR_SUCCESS;
}

/* Make `snap` (no request holds it yet) the current one; the previous
 * one goes when its last user lets go. */
static void snap_install(tb_state_t *st, snapshot_t *snap)
{
    snapshot_t *old;

    apr_thread_mutex_lock(st->mutex);
    old = st->current;
    st->current = snap;
    snap->refs = 0;
    if (old && old->refs == 0) {
        apr_pool_destroy(old->pool);
    }
    apr_thread_mutex_unlock(st->mutex);
}

static apr_time_t snap_age(tb_state_t *st, apr_time_t now)
{
    apr_time_t age = -1;

    apr_thread_mutex_lock(st->mutex);
    if (st->current) {
        age = now - st->current->loaded;
    }
    apr_thread_mutex_unlock(st->mutex);
    return age;
}

typedef struct warn_ctx_t {
    tb_state_t *st;
    apr_pool_t *p;
} warn_ctx_t;

/* An account this build cannot use is never scheduled: say so once per
 * process (not at every reload), and again if its settings change. */
static void warn_account(void *ctx, const tb_account_t *a)
{
    warn_ctx_t *w = ctx;
    tb_state_t *st = w->st;
    apr_pool_t *p = w->p;
    const char *unknown = NULL, *why;
    const char *key;

    if (a->capabilities) {
        tb_caps_parse(a->capabilities, &unknown, p);
    }
    if (a->dialect && !unknown && !a->unusable
        && (a->sched_slot >= 0 || !tb_shared_sched())) {
        return;
    }
    why = a->unusable ? a->unusable : !a->dialect ? "protocol"
        : unknown ? "capability" : "slot";
    key = apr_psprintf(p, "%d:%s:%s:%s", a->id, a->protocol,
                       a->capabilities ? a->capabilities : "", why);
    apr_thread_mutex_lock(warned.mutex);
    if (apr_hash_get(warned.seen, key, APR_HASH_KEY_STRING)) {
        key = NULL;
    }
    else {
        key = apr_pstrdup(warned.pool, key);
        apr_hash_set(warned.seen, key, APR_HASH_KEY_STRING, key);
    }
    apr_thread_mutex_unlock(warned.mutex);
    if (!key) {
        return;
    }
    if (a->unusable) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, st->s, TB_LOGNO(23)
                     "account %s is not scheduled: its %s", a->name, a->unusable);
    }
    else if (a->dialect && !unknown) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, st->s, TB_LOGNO(24)
                     "account %s has no slot in the scheduler table (it is "
                     "full: raise TokenBaySchedulerSlots): its max_concurrency, "
                     "cooldowns and error mark are not enforced", a->name);
    }
    else if (!a->dialect) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, st->s, TB_LOGNO(21)
                     "account %s speaks %s, which this version of mod_tokenbay "
                     "cannot convert yet: it is not scheduled for any route",
                     a->name, a->protocol);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, st->s, TB_LOGNO(22)
                     "account %s: unknown capability '%s' ignored", a->name,
                     unknown);
    }
}

/* An operator re-enabled an account (tokenbay-admin account enable sets
 * status_at) after the gateway marked it error in the shared table: the
 * mark goes, on this host, at the first reload that sees it. */
static void clear_error_mark(void *ctx, const tb_account_t *a)
{
    warn_ctx_t *w = ctx;

    if (a->active && a->status_at
        && tb_sched_clear_error(tb_shared_sched(), a->sched_slot, a->status_at)) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, w->st->s, TB_LOGNO(52)
                     "account %s was re-enabled: scheduled again", a->name);
    }
}

/* Load a catalogue from the database and make it current. The caller
 * holds st->refresh and passed the gate. */
static apr_status_t snap_load(tb_state_t *st, apr_pool_t *scratch)
{
    snapshot_t *snap;
    tb_catalog_t *cat;
    apr_pool_t *p;
    apr_status_t rv;

    /* NB: its own allocator: created here, destroyed by whichever thread
     * drops the last reference */
    if ((rv = apr_pool_create_unmanaged_ex(&p, NULL, NULL)) != APR_SUCCESS) {
        return rv;
    }
    apr_pool_tag(p, "tokenbay_catalog");
    if ((rv = tb_db_catalog_load(st->s, scratch, p, &cat)) != APR_SUCCESS) {
        apr_pool_destroy(p);
        return rv;
    }
    {
        warn_ctx_t w = { st, scratch };
        tb_catalog_foreach_account(cat, scratch, warn_account, &w);
        tb_catalog_foreach_account(cat, scratch, clear_error_mark, &w);
    }
    snap = apr_pcalloc(p, sizeof(*snap));
    snap->pool = p;
    snap->cat = cat;
    snap->loaded = apr_time_now();
    snap_install(st, snap);
    return APR_SUCCESS;
}

/* Reload the catalogue when it is `older` than that (or missing). */
static apr_status_t catalog_refresh(tb_state_t *st, apr_pool_t *scratch,
                                    apr_interval_time_t older, int wait)
{
    apr_time_t now = apr_time_now(), age;
    apr_status_t rv = APR_SUCCESS;
    gate_t g;

    if (wait) {
        apr_thread_mutex_lock(st->refresh);
    }
    else if (apr_thread_mutex_trylock(st->refresh) != APR_SUCCESS) {
        return APR_SUCCESS;   /* someone is at it */
    }
    age = snap_age(st, now);
    if (age >= 0 && age < older) {
        goto unlock;          /* reloaded while we waited */
    }
    if ((g = db_gate_enter(st, now)) == GATE_CLOSED) {
        rv = APR_EAGAIN;
        goto unlock;
    }
    rv = snap_load(st, scratch);
    db_gate_leave(st, g, rv == APR_SUCCESS);
    if (rv != APR_SUCCESS && age >= 0) {
        /* once per outage; the retries of the back-off at debug */
        ap_log_error(APLOG_MARK, g == GATE_OPEN ? APLOG_WARNING : APLOG_DEBUG,
                     rv, st->s, TB_LOGNO(20)
                     "catalogue refresh failed; serving the one loaded "
                     "%" APR_TIME_T_FMT "s ago", apr_time_sec(age));
    }

unlock:
    apr_thread_mutex_unlock(st->refresh);
    return rv;
}

apr_status_t tb_state_catalog(request_rec *r, const tb_catalog_t **pcat)
{
    tb_state_t *st = state_of(r);
    apr_interval_time_t ttl = tb_conf_catalog_ttl(tb_conf_srv(r->server));
    snapshot_t *snap = NULL;
    snap_ref_t *ref;
    apr_status_t rv = APR_SUCCESS;
    apr_time_t age;

    *pcat = NULL;
    if (!st) {
        rv = APR_EINIT;
        goto leave;
    }
    /* The keeper reloads it before the TTL. Older means the keeper is
     * behind or the database is down: one request tries (the others go
     * on with the current one; none while the database is known down).
     * None yet (the process's first request): wait for it. */
    age = snap_age(st, apr_time_now());
    if (age < 0 || age >= ttl) {
        rv = catalog_refresh(st, r->pool, ttl, age < 0);
    }
    if (!(snap = snap_get(st))) {
        rv = rv != APR_SUCCESS ? rv : APR_EGENERAL;
        goto leave;
    }
    rv = APR_SUCCESS;
    ref = apr_palloc(r->pool, sizeof(*ref));
    ref->st = st;
    ref->snap = snap;
    apr_pool_cleanup_register(r->pool, ref, snap_release, apr_pool_cleanup_null);
    *pcat = snap->cat;

leave:
    return rv;
}

/* ---- accounts the upstream refused ---------------------------------------------- */

apr_status_t tb_state_account_mark_error(request_rec *r, const tb_account_t *a,
                                         const char *reason)
{
    tb_state_t *st = state_of(r);
    apr_status_t rv;
    gate_t g;

    if (!st) {
        return APR_EINIT;
    }
    if ((g = db_gate_enter(st, apr_time_now())) == GATE_CLOSED) {
        return APR_EAGAIN;   /* the mark stays in this host's table */
    }
    rv = tb_db_account_mark_error(r->server, r->pool, a->id, reason);
    db_gate_leave(st, g, db_reached(rv));
    return rv;
}

/* ---- the keeper thread --------------------------------------------------------- */

/* One round: for each server a request has used, the catalogue (at three
 * quarters of its TTL, so requests never see it old) and the keys; then
 * the idle upstream connections. */
static void keeper_tick(keeper_t *k, apr_pool_t *p)
{
    apr_time_t now = apr_time_now();
    int i;

    for (i = 0; i < k->states->nelts; ++i) {
        tb_state_t *st = APR_ARRAY_IDX(k->states, i, tb_state_t *);
        apr_interval_time_t ttl;
        apr_time_t age;

        if (!st->used) {
            continue;   /* no gateway request has come to this server yet */
        }
        ttl = tb_conf_catalog_ttl(tb_conf_srv(st->s));
        age = snap_age(st, now);
        if (age < 0 || age >= ttl - ttl / 4) {
            catalog_refresh(st, p, ttl - ttl / 4, 0);
            apr_pool_clear(p);
        }
        keys_keep(st, p, apr_time_now(), now + k->tick / 2);
        apr_pool_clear(p);
    }
    if (curl_pool) {
        tb_curl_pool_sweep(curl_pool, apr_time_now());
    }
}

static void *APR_THREAD_FUNC keeper_main(apr_thread_t *thd, void *data)
{
    keeper_t *k = data;
    apr_pool_t *p = NULL;

    /* NB: unmanaged, used by this thread alone */
    apr_pool_create_unmanaged_ex(&p, NULL, NULL);
    apr_thread_mutex_lock(k->mutex);
    while (!k->stop) {
        apr_thread_mutex_unlock(k->mutex);
        if (p) {
            keeper_tick(k, p);
            apr_pool_clear(p);
        }
        apr_thread_mutex_lock(k->mutex);
        if (!k->stop) {
            apr_thread_cond_timedwait(k->cond, k->mutex, k->tick);
        }
    }
    k->done = 1;
    apr_thread_cond_signal(k->cond);
    apr_thread_mutex_unlock(k->mutex);
    if (p) {
        apr_pool_destroy(p);
    }
    apr_thread_exit(thd, APR_SUCCESS);
    return NULL;
}

/* NB: a pre-cleanup of the child pool: it runs before the child's
 * subpools go, mod_dbd's connection pool among them, which the thread
 * may be using. A thread stuck in a database call that does not return
 * (a database host gone silent) is not waited for past KEEPER_STOP_WAIT:
 * the process is ending, and a child that cannot end keeps its place in
 * the scoreboard for as long as TCP takes to give up (minutes). */
static apr_status_t keeper_stop(void *data)
{
    keeper_t *k = data;
    apr_time_t until = apr_time_now() + KEEPER_STOP_WAIT;
    apr_status_t trv;
    int done;

    apr_thread_mutex_lock(k->mutex);
    k->stop = 1;
    apr_thread_cond_signal(k->cond);
    while (!k->done && apr_time_now() < until) {
        apr_thread_cond_timedwait(k->cond, k->mutex, until - apr_time_now());
    }
    done = k->done;
    apr_thread_mutex_unlock(k->mutex);
    if (done) {
        apr_thread_join(&trv, k->thread);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, k->s, TB_LOGNO(6)
                     "the housekeeping thread is still waiting for the "
                     "database after %" APR_TIME_T_FMT "s; this process ends "
                     "without it", apr_time_sec(KEEPER_STOP_WAIT));
    }
    return APR_SUCCESS;
}

static apr_status_t keeper_start(apr_pool_t *pchild, server_rec *s,
                                 apr_array_header_t *states)
{
    keeper_t *k = apr_pcalloc(pchild, sizeof(*k));
    apr_threadattr_t *attr;
    apr_status_t rv;
    int i;

    k->states = states;
    k->s = s;
    k->tick = TICK_MAX;
    for (i = 0; i < states->nelts; ++i) {
        tb_srv_conf_t *sc = tb_conf_srv(APR_ARRAY_IDX(states, i, tb_state_t *)->s);
        apr_interval_time_t t = tb_conf_key_cache_ttl(sc) / 4;

        if (tb_conf_catalog_ttl(sc) / 4 < t) {
            t = tb_conf_catalog_ttl(sc) / 4;
        }
        if (t < k->tick) {
            k->tick = t;
        }
    }
    if (k->tick < TICK_MIN) {
        k->tick = TICK_MIN;
    }
    if ((rv = apr_thread_mutex_create(&k->mutex, APR_THREAD_MUTEX_DEFAULT,
                                      pchild)) != APR_SUCCESS
        || (rv = apr_thread_cond_create(&k->cond, pchild)) != APR_SUCCESS
        || (rv = apr_threadattr_create(&attr, pchild)) != APR_SUCCESS
        || (rv = apr_thread_create(&k->thread, attr, keeper_main, k, pchild))
           != APR_SUCCESS) {
        return rv;
    }
    apr_pool_pre_cleanup_register(pchild, k, keeper_stop);
    return APR_SUCCESS;
}

/* ---- set-up ---------------------------------------------------------------------- */

static apr_status_t warned_cleanup(void *data)
{
    apr_pool_destroy(data);
    return APR_SUCCESS;
}

static apr_status_t state_cleanup(void *data)
{
    tb_state_t *st = data;

    if (st->current && st->current->refs == 0) {
        apr_pool_destroy(st->current->pool);
    }
    st->current = NULL;
    return APR_SUCCESS;
}

apr_status_t tb_state_child_init(apr_pool_t *pchild, server_rec *s_main)
{
    apr_array_header_t *states = apr_array_make(pchild, 4, sizeof(tb_state_t *));
    tb_curl_pool_t *cp;
    server_rec *s;
    apr_status_t rv;
    int i;

    if ((rv = apr_thread_mutex_create(&warned.mutex, APR_THREAD_MUTEX_DEFAULT,
                                      pchild)) != APR_SUCCESS
        || (rv = apr_pool_create_unmanaged_ex(&warned.pool, NULL, NULL))
           != APR_SUCCESS) {
        return rv;
    }
    warned.seen = apr_hash_make(warned.pool);
    apr_pool_cleanup_register(pchild, warned.pool, warned_cleanup,
                              apr_pool_cleanup_null);
    if ((rv = tb_curl_pool_create(&cp, pchild, CURL_MAX_IDLE,
                                  tb_conf_upstream_keepalive(tb_conf_srv(s_main))))
        != APR_SUCCESS) {
        return rv;
    }
    for (s = s_main; s; s = s->next) {
        tb_srv_conf_t *sc = tb_conf_srv(s);
        tb_state_t *st = apr_pcalloc(pchild, sizeof(*st));
        unsigned int size = (unsigned)tb_conf_key_cache_size(sc);

        if ((rv = tb_keycache_create(&st->keys, pchild, size, size))
            != APR_SUCCESS
            || (rv = apr_thread_mutex_create(&st->mutex,
                                             APR_THREAD_MUTEX_DEFAULT, pchild))
            != APR_SUCCESS
            || (rv = apr_thread_mutex_create(&st->refresh,
                                             APR_THREAD_MUTEX_DEFAULT, pchild))
            != APR_SUCCESS
            || (rv = apr_thread_mutex_create(&st->db.mutex,
                                             APR_THREAD_MUTEX_DEFAULT, pchild))
            != APR_SUCCESS) {
            return rv;
        }
        st->s = s;
        apr_pool_cleanup_register(pchild, st, state_cleanup,
                                  apr_pool_cleanup_null);
        APR_ARRAY_PUSH(states, tb_state_t *) = st;
    }
    /* only now, all or nothing: a child that failed has no state at all */
    for (i = 0, s = s_main; s; s = s->next) {
        tb_conf_srv(s)->state = APR_ARRAY_IDX(states, i++, tb_state_t *);
    }
    curl_pool = cp;
    if ((rv = keeper_start(pchild, s_main, states)) != APR_SUCCESS) {
        /* requests then refresh the catalogue and keys themselves */
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s_main, TB_LOGNO(4)
                     "cannot start the housekeeping thread: catalogue and "
                     "keys are refreshed on the request path");
    }
    return APR_SUCCESS;
}
