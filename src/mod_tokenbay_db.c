/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "mod_tokenbay_private.h"

#include <stdlib.h>
#include <string.h>

#include <apr_dbd.h>
#include <apr_optional.h>
#include <apr_strings.h>
#include <http_log.h>
#include <mod_dbd.h>

#include "mod_tokenbay_db.h"
#include "mod_tokenbay_shared.h"

/* Statement labels live in mod_dbd's namespace: prefix them. mod_dbd's
 * MySQL driver takes %s placeholders and returns every column as text. */
#define Q_KEY      "tokenbay_key_lookup"
#define Q_KEYS     "tokenbay_keys_lookup"
#define Q_MODELS   "tokenbay_models_list"
#define Q_ALIASES  "tokenbay_aliases_list"
#define Q_ACCOUNTS "tokenbay_accounts_list"
#define Q_ACCT_GRP "tokenbay_account_groups_list"
#define Q_ACCT_MDL "tokenbay_account_models_list"
#define Q_ACCT_ERR "tokenbay_account_mark_error"

#define KEY_COLUMNS \
    "SELECT k.key_hash, k.id, k.name, k.prefix, k.last4, k.status = 'active'," \
    " COALESCE(UNIX_TIMESTAMP(k.expires_at), 0), k.models," \
    " g.id, g.name, g.status = 'active', g.models" \
    " FROM tb_keys k JOIN tb_groups g ON g.id = k.group_id"

/* TB_DB_KEY_BATCH placeholders */
#define P4  "%s,%s,%s,%s"
#define P32 P4 "," P4 "," P4 "," P4 "," P4 "," P4 "," P4 "," P4

static const struct {
    const char *label;
    const char *sql;
} statements[] = {
    { Q_KEY, KEY_COLUMNS " WHERE k.key_hash = %s" },
    { Q_KEYS, KEY_COLUMNS " WHERE k.key_hash IN (" P32 ")" },
    { Q_MODELS,
      "SELECT id, owned_by, created FROM tb_models WHERE status = 'active'" },
    { Q_ALIASES,
      "SELECT alias, model_id FROM tb_model_aliases" },
    { Q_ACCOUNTS,
      "SELECT id, name, protocol, base_url, credential, priority, weight,"
      " max_concurrency, status = 'active', capabilities, status, status_reason,"
      " COALESCE(CAST(UNIX_TIMESTAMP(status_at) * 1000000 AS SIGNED), 0)"
      " FROM tb_accounts" },
    { Q_ACCT_GRP,
      "SELECT ag.account_id, ag.group_id FROM tb_account_groups ag"
      " JOIN tb_groups g ON g.id = ag.group_id WHERE g.status = 'active'" },
    { Q_ACCT_MDL,
      "SELECT account_id, model_id, upstream_model FROM tb_account_models" },
    /* only an active account: never undo an operator's disable */
    { Q_ACCT_ERR,
      "UPDATE tb_accounts SET status = 'error', status_reason = %s,"
      " status_at = NOW(6) WHERE id = %d AND status = 'active'" },
};

static APR_OPTIONAL_FN_TYPE(ap_dbd_prepare) *dbd_prepare_fn;
static APR_OPTIONAL_FN_TYPE(ap_dbd_open) *dbd_open_fn;
static APR_OPTIONAL_FN_TYPE(ap_dbd_close) *dbd_close_fn;

const char *tb_db_init(server_rec *s_main)
{
    server_rec *s;
    apr_size_t i;

    dbd_prepare_fn = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_prepare);
    dbd_open_fn = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    dbd_close_fn = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
    if (!dbd_prepare_fn || !dbd_open_fn || !dbd_close_fn) {
        return "mod_tokenbay needs mod_dbd: LoadModule dbd_module before it";
    }
    /* NB: mod_dbd prepares the registered statements on each new database
     * connection, in the children; registering on every server_rec here,
     * before they exist, covers vhosts with their own DBDParams too. */
    for (s = s_main; s; s = s->next) {
        for (i = 0; i < sizeof(statements) / sizeof(statements[0]); ++i) {
            dbd_prepare_fn(s, statements[i].sql, statements[i].label);
        }
    }
    return NULL;
}

/* ---- a scoped query: open, select, drain, close --------------------------- */

typedef apr_status_t row_cb(void *ctx, const apr_dbd_driver_t *driver,
                            apr_dbd_row_t *row);

static const char *col(const apr_dbd_driver_t *driver, apr_dbd_row_t *row,
                       int n)
{
    return apr_dbd_get_entry(driver, row, n);
}

static long col_long(const apr_dbd_driver_t *driver, apr_dbd_row_t *row, int n)
{
    const char *v = col(driver, row, n);

    return v ? atol(v) : 0;
}

static apr_int64_t col_int64(const apr_dbd_driver_t *driver,
                             apr_dbd_row_t *row, int n)
{
    const char *v = col(driver, row, n);

    return v ? apr_atoi64(v) : 0;
}

/* Run one prepared select on an open handle and feed each row to `cb`.
 * `args` holds the statement's nargs parameters.
 * NB: the result is always drained to the end (-1), whatever cb says,
 * or the pooled connection is left out of sync for its next user. */
static apr_status_t select_rows(server_rec *s, ap_dbd_t *dbd, apr_pool_t *p,
                                const char *label, int nargs, const char **args,
                                row_cb *cb, void *ctx)
{
    static const char *none[1] = { NULL };
    apr_dbd_prepared_t *stmt;
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    apr_status_t rv = APR_SUCCESS, cb_rv = APR_SUCCESS;
    int rc;

    stmt = apr_hash_get(dbd->prepared, label, APR_HASH_KEY_STRING);
    if (!stmt) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, TB_LOGNO(10)
                     "prepared statement %s missing: is the schema loaded "
                     "and mod_dbd configured for this server?", label);
        return APR_EGENERAL;
    }
    rc = apr_dbd_pselect(dbd->driver, p, dbd->handle, &res, stmt, 0, nargs,
                         args ? args : none);
    if (rc) {
        const char *why = apr_dbd_error(dbd->driver, dbd->handle, rc);

        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, TB_LOGNO(11)
                     "query %s failed (error %d%s%s)", label, rc,
                     why && *why ? ": " : "", why ? why : "");
        return APR_EGENERAL;
    }
    while ((rc = apr_dbd_get_row(dbd->driver, p, res, &row, -1)) == 0) {
        if (cb_rv == APR_SUCCESS) {
            cb_rv = cb(ctx, dbd->driver, row);
        }
    }
    if (rc != -1) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, TB_LOGNO(12)
                     "reading results of %s failed: %s", label,
                     apr_dbd_error(dbd->driver, dbd->handle, rc));
        rv = APR_EGENERAL;
    }
    return rv != APR_SUCCESS ? rv : cb_rv;
}

/* A connection from mod_dbd, or NULL (mod_dbd logs why; the caller's
 * back-off keeps that from happening once per request). */
static ap_dbd_t *db_open(server_rec *s, apr_pool_t *p)
{
    return dbd_open_fn ? dbd_open_fn(p, s) : NULL;
}

/* ---- keys -------------------------------------------------------------------- */

typedef struct key_ctx_t {
    apr_pool_t *pool;
    tb_keyinfo_t *info;        /* single lookup */
    tb_db_key_cb *cb;          /* batch */
    void *cb_ctx;
} key_ctx_t;

static const char *col_dup(apr_pool_t *p, const apr_dbd_driver_t *d,
                           apr_dbd_row_t *row, int n, const char *dflt)
{
    const char *v = col(d, row, n);

    return v ? apr_pstrdup(p, v) : dflt;
}

/* KEY_COLUMNS into an info */
static const char *key_fill(apr_pool_t *p, const apr_dbd_driver_t *d,
                            apr_dbd_row_t *row, tb_keyinfo_t *info)
{
    memset(info, 0, sizeof(*info));
    info->found = 1;
    info->key_id = col_long(d, row, 1);
    info->name = col_dup(p, d, row, 2, "");
    info->prefix = col_dup(p, d, row, 3, "");
    info->last4 = col_dup(p, d, row, 4, "");
    info->key_active = col_long(d, row, 5) != 0;
    info->expires = col_int64(d, row, 6);
    info->key_models = col_dup(p, d, row, 7, NULL);
    info->group_id = col_long(d, row, 8);
    info->group_name = col_dup(p, d, row, 9, "");
    info->group_active = col_long(d, row, 10) != 0;
    info->group_models = col_dup(p, d, row, 11, NULL);
    return col(d, row, 0);
}

static apr_status_t key_row(void *ctx, const apr_dbd_driver_t *d,
                            apr_dbd_row_t *row)
{
    key_ctx_t *kc = ctx;
    tb_keyinfo_t info;
    const char *hash = key_fill(kc->pool, d, row, kc->info ? kc->info : &info);

    return kc->cb && hash ? kc->cb(kc->cb_ctx, hash, &info) : APR_SUCCESS;
}

apr_status_t tb_db_key_lookup(server_rec *s, apr_pool_t *p, const char *hash,
                              tb_keyinfo_t *info)
{
    key_ctx_t kc = { p, info, NULL, NULL };
    const char *args[1];
    ap_dbd_t *dbd;
    apr_status_t rv;

    memset(info, 0, sizeof(*info));
    if (!(dbd = db_open(s, p))) {
        return APR_ECONNREFUSED;
    }
    args[0] = hash;
    rv = select_rows(s, dbd, p, Q_KEY, 1, args, key_row, &kc);
    dbd_close_fn(s, dbd);
    return rv;
}

apr_status_t tb_db_keys_lookup(server_rec *s, apr_pool_t *p,
                               const char *const *hashes, int n,
                               tb_db_key_cb *cb, void *ctx)
{
    key_ctx_t kc = { p, NULL, cb, ctx };
    const char *args[TB_DB_KEY_BATCH];
    ap_dbd_t *dbd;
    apr_status_t rv = APR_SUCCESS;
    int i, done;

    if (n <= 0) {
        return APR_SUCCESS;
    }
    if (!(dbd = db_open(s, p))) {
        return APR_ECONNREFUSED;
    }
    for (done = 0; done < n && rv == APR_SUCCESS; done += TB_DB_KEY_BATCH) {
        /* unused places ask for "", which no digest is */
        for (i = 0; i < TB_DB_KEY_BATCH; ++i) {
            args[i] = done + i < n ? hashes[done + i] : "";
        }
        rv = select_rows(s, dbd, p, Q_KEYS, TB_DB_KEY_BATCH, args, key_row, &kc);
    }
    dbd_close_fn(s, dbd);
    return rv;
}

/* ---- the catalogue ----------------------------------------------------------- */

static apr_status_t model_row(void *ctx, const apr_dbd_driver_t *d,
                              apr_dbd_row_t *row)
{
    tb_catalog_add_model(ctx, col(d, row, 0), col(d, row, 1),
                         col_int64(d, row, 2));
    return APR_SUCCESS;
}

static apr_status_t alias_row(void *ctx, const apr_dbd_driver_t *d,
                              apr_dbd_row_t *row)
{
    tb_catalog_add_alias(ctx, col(d, row, 0), col(d, row, 1));
    return APR_SUCCESS;
}

static apr_status_t account_row(void *ctx, const apr_dbd_driver_t *d,
                                apr_dbd_row_t *row)
{
    tb_account_t a;

    memset(&a, 0, sizeof(a));
    a.id = (int)col_long(d, row, 0);
    a.name = col(d, row, 1);
    a.protocol = col(d, row, 2);
    a.base_url = col(d, row, 3);
    a.credential = col(d, row, 4);
    a.priority = (int)col_long(d, row, 5);
    a.weight = (unsigned int)col_long(d, row, 6);
    a.max_concurrency = (unsigned int)col_long(d, row, 7);
    a.active = col_long(d, row, 8) != 0;
    a.capabilities = col(d, row, 9);
    a.status = col(d, row, 10);
    a.status_reason = col(d, row, 11);
    a.status_at = (apr_time_t)col_int64(d, row, 12);
    if (!a.name || !a.protocol || !a.base_url) {
        return APR_SUCCESS;
    }
    /* its slot in the scheduler's table: by id, the same across reloads */
    a.sched_slot = tb_shared_slot(a.id);
    tb_catalog_add_account(ctx, &a);
    return APR_SUCCESS;
}

static apr_status_t account_group_row(void *ctx, const apr_dbd_driver_t *d,
                                      apr_dbd_row_t *row)
{
    tb_catalog_add_account_group(ctx, (int)col_long(d, row, 0),
                                 (int)col_long(d, row, 1));
    return APR_SUCCESS;
}

static apr_status_t account_model_row(void *ctx, const apr_dbd_driver_t *d,
                                      apr_dbd_row_t *row)
{
    tb_catalog_add_account_model(ctx, (int)col_long(d, row, 0),
                                 col(d, row, 1), col(d, row, 2));
    return APR_SUCCESS;
}

apr_status_t tb_db_account_mark_error(server_rec *s, apr_pool_t *p,
                                      int account_id, const char *reason)
{
    apr_dbd_prepared_t *stmt;
    const char *args[2];
    ap_dbd_t *dbd;
    apr_status_t rv = APR_SUCCESS;
    int rc, rows = 0;

    if (!(dbd = db_open(s, p))) {
        return APR_ECONNREFUSED;
    }
    stmt = apr_hash_get(dbd->prepared, Q_ACCT_ERR, APR_HASH_KEY_STRING);
    args[0] = reason;
    args[1] = apr_itoa(p, account_id);
    if (!stmt) {
        rv = APR_EGENERAL;
    }
    else if ((rc = apr_dbd_pquery(dbd->driver, p, dbd->handle, &rows, stmt, 2,
                                  args)) != 0) {
        const char *why = apr_dbd_error(dbd->driver, dbd->handle, rc);

        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, TB_LOGNO(55)
                     "query %s failed (error %d%s%s)", Q_ACCT_ERR, rc,
                     why && *why ? ": " : "", why ? why : "");
        rv = APR_EGENERAL;
    }
    dbd_close_fn(s, dbd);
    return rv;
}

apr_status_t tb_db_catalog_load(server_rec *s, apr_pool_t *p, apr_pool_t *cp,
                                tb_catalog_t **pcat)
{
    static const struct {
        const char *label;
        row_cb *cb;
    } steps[] = {
        /* order matters: rows refer to models and accounts loaded before */
        { Q_MODELS, model_row },
        { Q_ALIASES, alias_row },
        { Q_ACCOUNTS, account_row },
        { Q_ACCT_GRP, account_group_row },
        { Q_ACCT_MDL, account_model_row },
    };
    tb_catalog_t *cat = NULL;
    apr_pool_t *tmp = NULL;
    ap_dbd_t *dbd;
    apr_status_t rv;
    apr_size_t i;

    *pcat = NULL;
    if (!(dbd = db_open(s, p))) {
        return APR_ECONNREFUSED;
    }
    if ((rv = apr_pool_create(&tmp, p)) != APR_SUCCESS
        || (rv = tb_catalog_create(&cat, cp)) != APR_SUCCESS) {
        goto leave;
    }
    for (i = 0; i < sizeof(steps) / sizeof(steps[0]); ++i) {
        rv = select_rows(s, dbd, tmp, steps[i].label, 0, NULL, steps[i].cb, cat);
        if (rv != APR_SUCCESS) {
            goto leave;
        }
        apr_pool_clear(tmp);
    }
    *pcat = cat;

leave:
    if (tmp) {
        apr_pool_destroy(tmp);
    }
    dbd_close_fn(s, dbd);
    return rv;
}
