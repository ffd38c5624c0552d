/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "mod_tokenbay_private.h"

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <http_log.h>

#include "mod_tokenbay_config.h"
#include "mod_tokenbay_db.h"
#include "mod_tokenbay_state.h"
#include "tb_dialect.h"

/* How long a process waits before asking a failing database again for a
 * catalogue, while it keeps serving the previous one. */
#define CATALOG_RETRY_INTERVAL apr_time_from_sec(1)

/* Most idle upstream handle pairs (and so warm connections) kept per
 * process; more are created on demand and closed after use. */
#define CURL_MAX_IDLE 512

/* One immutable catalogue and its own allocator, so any thread may
 * destroy it; shared by reference count. */
typedef struct snapshot_t {
    apr_pool_t *pool;
    const tb_catalog_t *cat;
    apr_time_t loaded;
    int refs;                    /* requests using it, under st->mutex */
} snapshot_t;

typedef struct tb_state_t {
    tb_keycache_t *keys;
    apr_thread_mutex_t *mutex;   /* guards current and every refs */
    apr_thread_mutex_t *refresh; /* one catalogue loader at a time */
    snapshot_t *current;
    apr_time_t next_load;        /* no reload before, after a failure */
    apr_pool_t *pool;            /* the child's */
    apr_hash_t *warned;          /* "id:protocol:caps" of accounts already
                                  * logged as unusable, under refresh */
} tb_state_t;

static tb_curl_pool_t *curl_pool;

tb_curl_pool_t *tb_state_curl_pool(void)
{
    return curl_pool;
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
    server_rec *s;
    apr_status_t rv;

    if ((rv = tb_curl_pool_create(&curl_pool, pchild, CURL_MAX_IDLE))
        != APR_SUCCESS) {
        return rv;
    }
    for (s = s_main; s; s = s->next) {
        tb_srv_conf_t *sc = tb_conf_srv(s);
        tb_state_t *st = apr_pcalloc(pchild, sizeof(*st));

        if ((rv = tb_keycache_create(&st->keys, pchild,
                                     (unsigned)tb_conf_key_cache_size(sc)))
            != APR_SUCCESS
            || (rv = apr_thread_mutex_create(&st->mutex,
                                             APR_THREAD_MUTEX_DEFAULT, pchild))
            != APR_SUCCESS
            || (rv = apr_thread_mutex_create(&st->refresh,
                                             APR_THREAD_MUTEX_DEFAULT, pchild))
            != APR_SUCCESS) {
            return rv;
        }
        st->pool = pchild;
        st->warned = apr_hash_make(pchild);
        apr_pool_cleanup_register(pchild, st, state_cleanup,
                                  apr_pool_cleanup_null);
        sc->state = st;
    }
    return APR_SUCCESS;
}

/* ---- keys ------------------------------------------------------------------ */

apr_status_t tb_state_key_lookup(request_rec *r, const char *hash,
                                 tb_keyinfo_t *info)
{
    tb_srv_conf_t *sc = tb_conf_srv(r->server);
    tb_state_t *st = sc->state;
    apr_time_t now = apr_time_now();
    apr_status_t rv;

    if (tb_keycache_get(st->keys, hash, now, tb_conf_key_cache_ttl(sc),
                        r->pool, info) == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    if ((rv = tb_db_key_lookup(r, hash, info)) == APR_SUCCESS) {
        tb_keycache_put(st->keys, hash, info, now);
    }
    return rv;
}

/* ---- the catalogue ----------------------------------------------------------- */

typedef struct snap_ref_t {
    tb_state_t *st;
    snapshot_t *snap;
} snap_ref_t;

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

/* Make `snap` (already referenced by the caller) the current one; the
 * previous one goes when its last user lets go. */
static void snap_install(tb_state_t *st, snapshot_t *snap)
{
    snapshot_t *old;

    apr_thread_mutex_lock(st->mutex);
    old = st->current;
    st->current = snap;
    if (old && old->refs == 0) {
        apr_pool_destroy(old->pool);
    }
    apr_thread_mutex_unlock(st->mutex);
}

typedef struct warn_ctx_t {
    tb_state_t *st;
    request_rec *r;
} warn_ctx_t;

/* An account this build cannot speak to is never scheduled: say so once
 * per process (not at every reload), and again if its settings change. */
static void warn_account(void *ctx, const tb_account_t *a)
{
    warn_ctx_t *w = ctx;
    const char *unknown = NULL;
    const char *key;

    if (a->capabilities) {
        tb_caps_parse(a->capabilities, &unknown, w->r->pool);
    }
    if (a->dialect && !unknown) {
        return;
    }
    key = apr_psprintf(w->r->pool, "%d:%s:%s", a->id, a->protocol,
                       a->capabilities ? a->capabilities : "");
    if (apr_hash_get(w->st->warned, key, APR_HASH_KEY_STRING)) {
        return;
    }
    key = apr_pstrdup(w->st->pool, key);
    apr_hash_set(w->st->warned, key, APR_HASH_KEY_STRING, key);
    if (!a->dialect) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, w->r, TB_LOGNO(21)
                      "account %s speaks %s, which this version of mod_tokenbay "
                      "cannot convert yet: it is not scheduled for any route",
                      a->name, a->protocol);
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, w->r, TB_LOGNO(22)
                      "account %s: unknown capability '%s' ignored", a->name,
                      unknown);
    }
}

static apr_status_t snap_load(request_rec *r, snapshot_t **psnap)
{
    snapshot_t *snap;
    tb_catalog_t *cat;
    apr_pool_t *p;
    apr_status_t rv;

    /* NB: its own allocator: created here, destroyed by whichever request
     * thread drops the last reference */
    if ((rv = apr_pool_create_unmanaged_ex(&p, NULL, NULL)) != APR_SUCCESS) {
        return rv;
    }
    apr_pool_tag(p, "tokenbay_catalog");
    if ((rv = tb_db_catalog_load(r, p, &cat)) != APR_SUCCESS) {
        apr_pool_destroy(p);
        return rv;
    }
    {
        warn_ctx_t w = { tb_conf_srv(r->server)->state, r };
        tb_catalog_foreach_account(cat, r->pool, warn_account, &w);
    }
    snap = apr_pcalloc(p, sizeof(*snap));
    snap->pool = p;
    snap->cat = cat;
    snap->loaded = apr_time_now();
    snap->refs = 1;
    *psnap = snap;
    return APR_SUCCESS;
}

apr_status_t tb_state_catalog(request_rec *r, const tb_catalog_t **pcat)
{
    tb_srv_conf_t *sc = tb_conf_srv(r->server);
    tb_state_t *st = sc->state;
    apr_interval_time_t ttl = tb_conf_catalog_ttl(sc);
    apr_time_t now = apr_time_now();
    snapshot_t *snap, *fresh = NULL;
    snap_ref_t *ref;
    apr_status_t rv = APR_SUCCESS;

    snap = snap_get(st);
    if (snap && (now - snap->loaded < ttl || now < st->next_load)) {
        goto done;
    }
    if (snap) {
        /* stale: one thread reloads, the others keep using what is there */
        if (apr_thread_mutex_trylock(st->refresh) != APR_SUCCESS) {
            goto done;
        }
    }
    else {
        apr_thread_mutex_lock(st->refresh);
    }
    /* someone may have reloaded while we waited for the lock */
    fresh = snap_get(st);
    if (fresh && fresh != snap && apr_time_now() - fresh->loaded < ttl) {
        goto unlock;
    }
    if (fresh) {
        snap_put(st, fresh);
        fresh = NULL;
    }
    if (!snap && apr_time_now() < st->next_load) {
        rv = APR_EAGAIN;
        goto unlock;
    }
    rv = snap_load(r, &fresh);
    if (rv == APR_SUCCESS) {
        snap_install(st, fresh);
        st->next_load = 0;
    }
    else {
        st->next_load = apr_time_now() + CATALOG_RETRY_INTERVAL;
        if (snap) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, TB_LOGNO(20)
                          "catalogue refresh failed; serving the one loaded "
                          "%" APR_TIME_T_FMT "s ago",
                          apr_time_sec(now - snap->loaded));
            rv = APR_SUCCESS;
        }
    }

unlock:
    apr_thread_mutex_unlock(st->refresh);
    if (fresh) {
        if (snap) {
            snap_put(st, snap);
        }
        snap = fresh;
    }

done:
    if (!snap) {
        *pcat = NULL;
        return rv != APR_SUCCESS ? rv : APR_EGENERAL;
    }
    ref = apr_palloc(r->pool, sizeof(*ref));
    ref->st = st;
    ref->snap = snap;
    apr_pool_cleanup_register(r->pool, ref, snap_release, apr_pool_cleanup_null);
    *pcat = snap->cat;
    return APR_SUCCESS;
}
