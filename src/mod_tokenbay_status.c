/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "mod_tokenbay_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_time.h>
#include <http_log.h>
#include <http_protocol.h>

#include "mod_tokenbay_config.h"
#include "mod_tokenbay_respond.h"
#include "mod_tokenbay_shared.h"
#include "mod_tokenbay_state.h"
#include "mod_tokenbay_status.h"
#include "tb_catalog.h"
#include "tb_json.h"
#include "tb_sched.h"

/* The status page (see mod_tokenbay_status.h). One pass gathers what is
 * known of each account (the catalogue's row, a consistent copy of its
 * slot in the scheduler's table), then one of two writers renders it.
 * NB: nothing here may print a credential or a base URL (its userinfo
 * or query may hold one): the page is guarded by httpd's access control
 * alone, so it prints neither. */

/* Most bytes of client text echoed back in an error. */
#define MAX_ECHO 64

/* What the request asks for. */
typedef struct status_query_t {
    const char *account;     /* ?account=NAME, or NULL for every account */
    int format;              /* FORMAT_* */
} status_query_t;

enum { FORMAT_NEGOTIATE, FORMAT_JSON, FORMAT_TEXT };

/* What the page says about one account, for either writer. */
typedef struct acct_row_t {
    const tb_account_t *acct;
    const char *db_status;   /* as in the database */
    const char *status;      /* ok, cooling, error, disabled, unusable */
    tb_sched_view_t v;       /* its slot; all zero when it has none */
    int cooling;             /* the account's own cooldown still runs */
    const char *models[TB_SCHED_MODELS]; /* the model of each entry of
                              * v.models still cooling, else NULL */
    int nmodels;             /* how many of those */
    int error;               /* marked here, or 'error' in the database */
    int error_status;        /* the HTTP status behind it, 0 unknown */
    apr_time_t error_since;  /* 0 unknown */
    apr_uint64_t recent_ok, recent_failed; /* the last five minutes */
} acct_row_t;

/* ---- the request -------------------------------------------------------- */

/* Client text put back into a message, cut short. */
static const char *echo(apr_pool_t *p, const char *s)
{
    return strlen(s) > MAX_ECHO ? apr_pstrcat(p, apr_pstrndup(p, s, MAX_ECHO),
                                              "...", NULL)
                                : s;
}

static void bad_param(request_rec *r, tb_error_t *err, const char *code,
                      const char *param, const char *message)
{
    tb_error_set(err, HTTP_BAD_REQUEST, "invalid_request_error", code, param,
                 message);
}

/* ?account=NAME and ?format=json|text, each at most once; anything else
 * is refused, so that a typo does not silently show every account. */
static apr_status_t parse_query(request_rec *r, status_query_t *q,
                                tb_error_t *err)
{
    char *args, *tok, *last;

    memset(q, 0, sizeof(*q));
    q->format = FORMAT_NEGOTIATE;
    if (!r->args || !*r->args) {
        return APR_SUCCESS;
    }
    args = apr_pstrdup(r->pool, r->args);
    for (tok = apr_strtok(args, "&", &last); tok;
         tok = apr_strtok(NULL, "&", &last)) {
        char *val = strchr(tok, '=');

        if (val) {
            *val++ = '\0';
        }
        else {
            val = apr_pstrdup(r->pool, "");
        }
        if (ap_unescape_urlencoded(tok) != OK
            || ap_unescape_urlencoded(val) != OK) {
            bad_param(r, err, "invalid_query", NULL,
                      "The query string is not validly URL-encoded.");
            return APR_EINVAL;
        }
        if (!strcmp(tok, "account")) {
            if (q->account || !*val) {
                bad_param(r, err, "invalid_value", "account", q->account
                          ? "Give 'account' at most once."
                          : "'account' needs an account name.");
                return APR_EINVAL;
            }
            q->account = val;
        }
        else if (!strcmp(tok, "format")) {
            if (q->format != FORMAT_NEGOTIATE
                || (strcmp(val, "json") && strcmp(val, "text"))) {
                bad_param(r, err, "invalid_value", "format",
                          "'format' is 'json' or 'text', given at most once.");
                return APR_EINVAL;
            }
            q->format = strcmp(val, "text") ? FORMAT_JSON : FORMAT_TEXT;
        }
        else {
            bad_param(r, err, "unknown_parameter", NULL, apr_psprintf(r->pool,
                      "Unknown query parameter '%s' (this page takes "
                      "'account' and 'format').", echo(r->pool, tok)));
            return APR_EINVAL;
        }
    }
    return APR_SUCCESS;
}

static char *trim(char *s)
{
    char *end;

    while (apr_isspace(*s)) {
        ++s;
    }
    end = s + strlen(s);
    while (end > s && apr_isspace(end[-1])) {
        *--end = '\0';
    }
    return s;
}

/* A qvalue (RFC 9110 12.4.2): "0", "1", "0.xyz"; anything else is 0. */
static double parse_q(const char *s)
{
    double q, f = 0.1;

    if (*s != '0' && *s != '1') {
        return 0;
    }
    q = *s++ - '0';
    if (*s == '.') {
        for (++s; apr_isdigit(*s) && f > 0.0001; ++s, f /= 10) {
            q += (*s - '0') * f;
        }
    }
    return q > 1 ? 1 : q;
}

/* The quality Accept gives type/sub: that of its most specific matching
 * range (type/sub, then type/x, then x/x, where x is the wildcard); -1
 * when no range matches. */
static double accept_q(apr_pool_t *p, const char *accept, const char *type,
                       const char *sub)
{
    char *copy = apr_pstrdup(p, accept), *item, *last;
    double best_q = -1;
    int best = 0;

    for (item = apr_strtok(copy, ",", &last); item;
         item = apr_strtok(NULL, ",", &last)) {
        char *params = strchr(item, ';'), *range, *slash;
        double q = 1;
        int spec;

        if (params) {
            *params++ = '\0';
        }
        range = trim(item);
        if (!(slash = strchr(range, '/'))) {
            continue;
        }
        *slash++ = '\0';
        if (!strcmp(range, "*") && !strcmp(slash, "*")) {
            spec = 1;
        }
        else if (strcasecmp(range, type)) {
            continue;
        }
        else if (!strcmp(slash, "*")) {
            spec = 2;
        }
        else if (!strcasecmp(slash, sub)) {
            spec = 3;
        }
        else {
            continue;
        }
        while (params) {
            char *next = strchr(params, ';'), *prm;

            if (next) {
                *next++ = '\0';
            }
            prm = trim(params);
            if ((prm[0] == 'q' || prm[0] == 'Q') && prm[1] == '=') {
                q = parse_q(prm + 2);
                break;
            }
            params = next;
        }
        if (spec > best || (spec == best && q > best_q)) {
            best = spec;
            best_q = q;
        }
    }
    return best_q;
}

/* Text when asked for by ?format=text, or when Accept prefers text/plain
 * to application/json; JSON otherwise (no Accept, a wildcard, a browser's). */
static int wants_text(request_rec *r, const status_query_t *q)
{
    const char *accept;

    if (q->format != FORMAT_NEGOTIATE) {
        return q->format == FORMAT_TEXT;
    }
    apr_table_mergen(r->err_headers_out, "Vary", "Accept");
    accept = apr_table_get(r->headers_in, "Accept");
    return accept && accept_q(r->pool, accept, "text", "plain")
                     > accept_q(r->pool, accept, "application", "json");
}

/* ---- gathering ---------------------------------------------------------- */

typedef struct gather_t {
    const char *only;        /* a name, or NULL for all */
    apr_array_header_t *accounts; /* const tb_account_t * */
} gather_t;

static void gather_account(void *ctx, const tb_account_t *a)
{
    gather_t *g = ctx;

    /* names are unique whatever their case (the database's collation) */
    if (!g->only || !strcasecmp(a->name, g->only)) {
        APR_ARRAY_PUSH(g->accounts, const tb_account_t *) = a;
    }
}

static int account_cmp(const void *x, const void *y)
{
    const tb_account_t *a = *(const tb_account_t *const *)x;
    const tb_account_t *b = *(const tb_account_t *const *)y;
    int c = strcmp(a->name, b->name);

    return c ? c : (a->id > b->id) - (a->id < b->id);
}

/* The table knows models by hash only: map them back through the
 * catalogue's canonical ids (what the scheduler hashes). Of two ids with
 * one hash, the smaller is shown, so that the page is stable. */
static void gather_model(void *ctx, const tb_model_t *m)
{
    apr_hash_t *h = ctx;
    apr_uint32_t k = tb_sched_model_hash(m->id);
    const char *cur = apr_hash_get(h, &k, sizeof(k));

    if (!cur || strcmp(m->id, cur) < 0) {
        apr_uint32_t *key = apr_pmemdup(apr_hash_pool_get(h), &k, sizeof(k));
        apr_hash_set(h, key, sizeof(*key), m->id);
    }
}

static void row_fill(acct_row_t *row, const tb_account_t *a, tb_sched_t *s,
                     const tb_catalog_t *cat, apr_hash_t **pmodels,
                     apr_pool_t *p, apr_time_t now)
{
    int i;

    memset(row, 0, sizeof(*row));
    row->acct = a;
    row->db_status = a->status ? a->status : a->active ? "active" : "disabled";
    /* NB: a slot is keyed by the account's id; one that holds another
     * account (or none) says nothing about this one */
    if (!s || a->sched_slot < 0
        || tb_sched_view(s, a->sched_slot, &row->v) != APR_SUCCESS
        || row->v.account_id != a->id) {
        memset(&row->v, 0, sizeof(row->v));
    }
    else {
        tb_sched_recent(s, a->sched_slot, now, &row->recent_ok,
                        &row->recent_failed);
    }
    row->cooling = row->v.account.until > now;
    for (i = 0; i < TB_SCHED_MODELS; ++i) {
        const tb_sched_cool_t *c = &row->v.models[i];
        const char *id;

        if (!c->model || c->until <= now) {
            continue;
        }
        if (!*pmodels) {
            *pmodels = apr_hash_make(p);
            tb_catalog_foreach_model(cat, p, gather_model, *pmodels);
        }
        id = apr_hash_get(*pmodels, &c->model, sizeof(c->model));
        row->models[i] = id ? id : "unknown";
        ++row->nmodels;
    }
    if (row->v.error_at) {
        row->error = 1;
        row->error_status = row->v.error_status;
        row->error_since = row->v.error_at;
    }
    else if (!strcmp(row->db_status, "error")) {
        row->error = 1;
        row->error_since = a->status_at;
    }
    row->status = (a->unusable || !a->dialect) ? "unusable"
                : !strcmp(row->db_status, "disabled") ? "disabled"
                : row->error ? "error"
                : (row->cooling || row->nmodels) ? "cooling"
                : "ok";
}

/* The accounts to show, sorted by name; APR_NOTFOUND when ?account=
 * names none. */
static apr_status_t gather(request_rec *r, const tb_catalog_t *cat,
                           const char *only, apr_time_t now,
                           apr_array_header_t **prows)
{
    tb_sched_t *s = tb_shared_sched();
    apr_hash_t *models = NULL;
    apr_array_header_t *rows;
    gather_t g;
    int i;

    g.only = only;
    g.accounts = apr_array_make(r->pool, 16, sizeof(const tb_account_t *));
    tb_catalog_foreach_account(cat, r->pool, gather_account, &g);
    if (only && !g.accounts->nelts) {
        return APR_NOTFOUND;
    }
    qsort(g.accounts->elts, g.accounts->nelts, sizeof(const tb_account_t *),
          account_cmp);
    rows = apr_array_make(r->pool, g.accounts->nelts ? g.accounts->nelts : 1,
                          sizeof(acct_row_t));
    for (i = 0; i < g.accounts->nelts; ++i) {
        row_fill(apr_array_push(rows),
                 APR_ARRAY_IDX(g.accounts, i, const tb_account_t *), s, cat,
                 &models, r->pool, now);
    }
    *prows = rows;
    return APR_SUCCESS;
}

/* ---- JSON --------------------------------------------------------------- */

/* Seconds since the epoch with milliseconds, which the writer prints
 * exactly (the shortest form that reads back the same). */
static double unix_time(apr_time_t t)
{
    return (double)apr_time_as_msec(t) / 1000.0;
}

static apr_int64_t remaining_ms(apr_time_t until, apr_time_t now)
{
    return (until - now + 999) / 1000;
}

/* A string, or null. NB: jansson refuses text that is not UTF-8: such
 * bytes (from a hand-edited row) are shown as '?'. */
static json_t *jstr(apr_pool_t *p, const char *s)
{
    json_t *j;
    char *copy, *c;

    if (!s) {
        return json_null();
    }
    if ((j = json_string(s))) {
        return j;
    }
    copy = apr_pstrdup(p, s);
    for (c = copy; *c; ++c) {
        if ((unsigned char)*c >= 0x80) {
            *c = '?';
        }
    }
    return json_string(copy);
}

static json_t *jtime(apr_time_t t)
{
    return t ? json_real(unix_time(t)) : json_null();
}

static json_t *jstatus(int status)
{
    return status > 0 ? json_integer(status) : json_null();
}

/* {"model"?, "reason", "http_status", "remaining_ms", "until", "streak"?} */
static json_t *cool_json(apr_pool_t *p, const tb_sched_cool_t *c,
                         const char *model, apr_time_t now)
{
    json_t *o = json_object();

    if (model) {
        json_object_set_new(o, "model", jstr(p, model));
    }
    json_object_set_new(o, "reason", json_string(tb_outcome_name(c->reason)));
    json_object_set_new(o, "http_status", jstatus(c->status));
    json_object_set_new(o, "remaining_ms",
                        json_integer((json_int_t)remaining_ms(c->until, now)));
    json_object_set_new(o, "until", jtime(c->until));
    if (model) {
        json_object_set_new(o, "streak", json_integer((json_int_t)c->streak));
    }
    return o;
}

static json_t *account_json(apr_pool_t *p, const acct_row_t *row,
                            apr_time_t now)
{
    const tb_account_t *a = row->acct;
    const tb_sched_view_t *v = &row->v;
    json_t *o = json_object(), *models = json_array(), *e;
    int i;

    json_object_set_new(o, "id", json_integer(a->id));
    json_object_set_new(o, "name", jstr(p, a->name));
    json_object_set_new(o, "protocol", jstr(p, a->protocol));
    json_object_set_new(o, "status", json_string(row->status));
    json_object_set_new(o, "db_status", jstr(p, row->db_status));
    json_object_set_new(o, "priority", json_integer(a->priority));
    json_object_set_new(o, "weight", json_integer((json_int_t)a->weight));
    json_object_set_new(o, "in_flight", json_integer((json_int_t)v->in_flight));
    json_object_set_new(o, "max_concurrency",
                        json_integer((json_int_t)a->max_concurrency));
    json_object_set_new(o, "cooldown", row->cooling
                        ? cool_json(p, &v->account, NULL, now) : json_null());
    for (i = 0; i < TB_SCHED_MODELS; ++i) {
        if (row->models[i]) {
            json_array_append_new(models, cool_json(p, &v->models[i],
                                                    row->models[i], now));
        }
    }
    json_object_set_new(o, "models_cooling", models);
    if (row->error) {
        e = json_object();
        json_object_set_new(e, "http_status", jstatus(row->error_status));
        json_object_set_new(e, "since", jtime(row->error_since));
        json_object_set_new(e, "reason", jstr(p, a->status_reason));
    }
    else {
        e = json_null();
    }
    json_object_set_new(o, "error", e);
    json_object_set_new(o, "successes", json_integer((json_int_t)v->successes));
    json_object_set_new(o, "failures", json_integer((json_int_t)v->failures));
    json_object_set_new(o, "last_success", jtime(v->last_success));
    json_object_set_new(o, "last_failure", jtime(v->last_failure));
    e = json_object();
    json_object_set_new(e, "seconds", json_integer(TB_SCHED_RECENT_SECONDS));
    json_object_set_new(e, "successes", json_integer((json_int_t)row->recent_ok));
    json_object_set_new(e, "failures", json_integer((json_int_t)row->recent_failed));
    json_object_set_new(o, "recent", e);
    if (v->failures) {
        e = json_object();
        json_object_set_new(e, "reason",
                            json_string(tb_outcome_name(v->last_outcome)));
        json_object_set_new(e, "http_status", jstatus(v->last_status));
        json_object_set_new(e, "at", jtime(v->last_failure));
    }
    else {
        e = json_null();
    }
    json_object_set_new(o, "last_error", e);
    return o;
}

static apr_status_t render_json(request_rec *r, const apr_array_header_t *rows,
                                apr_time_t now, const char **pbody,
                                apr_size_t *plen)
{
    tb_sched_t *s = tb_shared_sched();
    const char *sticky = tb_sticky_provider();
    json_t *root, *sched, *accounts;
    apr_status_t rv = APR_SUCCESS;
    int i;

    root = tb_json_pool_own(r->pool, json_object());
    sched = json_object();
    accounts = json_array();
    if (!root || !sched || !accounts) {
        json_decref(sched);
        json_decref(accounts);
        rv = APR_ENOMEM;
        goto leave;
    }
    json_object_set_new(root, "object", json_string("tokenbay.status"));
    json_object_set_new(root, "time", json_real(unix_time(now)));
    json_object_set_new(root, "pid", json_integer((json_int_t)getpid()));
    /* NB: the table's size is the directive's (TokenBaySchedulerSlots,
     * global): the table is made from it in the parent */
    json_object_set_new(sched, "slots", json_integer(s
                        ? tb_conf_sched_slots(tb_conf_srv(r->server)) : 0));
    json_object_set_new(sched, "shared", json_boolean(s != NULL));
    json_object_set_new(root, "scheduler", sched);
    json_object_set_new(root, "sticky_cache", sticky ? json_string(sticky)
                                                     : json_null());
    for (i = 0; i < rows->nelts; ++i) {
        json_array_append_new(accounts, account_json(r->pool,
                              &APR_ARRAY_IDX(rows, i, acct_row_t), now));
    }
    json_object_set_new(root, "accounts", accounts);
    if (!(*pbody = tb_json_dump(r->pool, root, plen))) {
        rv = APR_ENOMEM;
    }
leave:
    return rv;
}

/* ---- text --------------------------------------------------------------- */

/* "850ms", "4.2s", "42s", "12m05s", "3h07m". */
static const char *duration(apr_pool_t *p, apr_int64_t ms)
{
    apr_int64_t sec = ms / 1000;

    if (ms < 1000) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT "ms", ms);
    }
    if (ms < 10000) {
        return apr_psprintf(p, "%.1fs", (double)ms / 1000.0);
    }
    if (sec < 60) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT "s", sec);
    }
    if (sec < 3600) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT "m%02" APR_INT64_T_FMT "s",
                            sec / 60, sec % 60);
    }
    return apr_psprintf(p, "%" APR_INT64_T_FMT "h%02" APR_INT64_T_FMT "m",
                        sec / 3600, (sec / 60) % 60);
}

/* "59m58s quota_exhausted(429)" */
static const char *cool_text(apr_pool_t *p, const tb_sched_cool_t *c,
                             apr_time_t now)
{
    return apr_psprintf(p, "%s %s%s", duration(p, remaining_ms(c->until, now)),
                        tb_outcome_name(c->reason), c->status > 0
                        ? apr_psprintf(p, "(%d)", c->status) : "");
}

static const char *time_text(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;
    apr_size_t n;
    char buf[32];

    if (!t || apr_time_exp_gmt(&tm, t) != APR_SUCCESS
        || apr_strftime(buf, &n, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm)
           != APR_SUCCESS) {
        return "?";
    }
    return apr_pstrdup(p, buf);
}

/* A cell holds no control character (a terminal would act on it). */
static const char *cell(apr_pool_t *p, const char *s)
{
    char *copy = NULL;
    apr_size_t i;

    for (i = 0; s[i]; ++i) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            if (!copy) {
                copy = apr_pstrdup(p, s);
            }
            copy[i] = '?';
        }
    }
    return copy ? copy : s;
}

#define TEXT_COLS 7

static void text_row(apr_pool_t *p, const acct_row_t *row, apr_time_t now,
                     const char **cols)
{
    const tb_account_t *a = row->acct;
    const char *models = NULL, *err = "-";
    int i;

    cols[0] = a->name;
    cols[1] = row->status;
    cols[2] = a->max_concurrency
              ? apr_psprintf(p, "%u/%u", row->v.in_flight, a->max_concurrency)
              : apr_psprintf(p, "%u/-", row->v.in_flight);
    cols[3] = apr_psprintf(p, "%" APR_UINT64_T_FMT "/%" APR_UINT64_T_FMT
                           " (5m %" APR_UINT64_T_FMT "/%" APR_UINT64_T_FMT ")",
                           row->v.successes, row->v.failures,
                           row->recent_ok, row->recent_failed);
    cols[4] = row->cooling ? cool_text(p, &row->v.account, now) : "-";
    for (i = 0; i < TB_SCHED_MODELS; ++i) {
        const tb_sched_cool_t *c = &row->v.models[i];
        const char *one;

        if (!row->models[i]) {
            continue;
        }
        one = apr_pstrcat(p, row->models[i], " ", cool_text(p, c, now),
                          c->streak > 1 ? apr_psprintf(p, " x%u", c->streak) : "",
                          NULL);
        models = models ? apr_pstrcat(p, models, ", ", one, NULL) : one;
    }
    cols[5] = models ? models : "-";
    if (row->error) {
        err = apr_pstrcat(p, row->error_status > 0
                          ? apr_psprintf(p, "%d ", row->error_status) : "",
                          "since ", time_text(p, row->error_since),
                          a->status_reason ? ": " : "",
                          a->status_reason ? a->status_reason : "", NULL);
    }
    else if (!strcmp(row->status, "unusable")) {
        err = a->unusable ? a->unusable
            : apr_pstrcat(p, "protocol ", a->protocol,
                          " is not supported by this build", NULL);
    }
    cols[6] = err;
    for (i = 0; i < TEXT_COLS; ++i) {
        cols[i] = cell(p, cols[i]);
    }
}

/* A header line and one line per account, in aligned columns (the last
 * one unpadded). */
static apr_status_t render_text(request_rec *r, const apr_array_header_t *rows,
                                apr_time_t now, const char **pbody,
                                apr_size_t *plen)
{
    static const char *const head[TEXT_COLS] = {
        "NAME", "STATUS", "IN_FLIGHT", "OK/FAIL", "COOLDOWN",
        "MODELS_COOLING", "ERROR"
    };
    const char **cols = apr_pcalloc(r->pool, sizeof(*cols) * TEXT_COLS
                                             * (rows->nelts + 1));
    apr_size_t width[TEXT_COLS], total = 0;
    char *out, *w;
    int i, k, n = rows->nelts + 1;

    for (k = 0; k < TEXT_COLS; ++k) {
        cols[k] = head[k];
    }
    for (i = 1; i < n; ++i) {
        text_row(r->pool, &APR_ARRAY_IDX(rows, i - 1, acct_row_t), now,
                 cols + i * TEXT_COLS);
    }
    for (k = 0; k < TEXT_COLS; ++k) {
        width[k] = 0;
        for (i = 0; i < n; ++i) {
            apr_size_t len = strlen(cols[i * TEXT_COLS + k]);
            width[k] = len > width[k] ? len : width[k];
        }
        total += (width[k] + 2) * (apr_size_t)n;
    }
    w = out = apr_palloc(r->pool, total + (apr_size_t)n + 1);
    for (i = 0; i < n; ++i) {
        for (k = 0; k < TEXT_COLS; ++k) {
            const char *c = cols[i * TEXT_COLS + k];
            apr_size_t len = strlen(c);

            memcpy(w, c, len);
            w += len;
            if (k < TEXT_COLS - 1) {
                memset(w, ' ', width[k] - len + 2);
                w += width[k] - len + 2;
            }
        }
        *w++ = '\n';
    }
    *w = '\0';
    *pbody = out;
    *plen = (apr_size_t)(w - out);
    return APR_SUCCESS;
}

/* ---- the handler ---------------------------------------------------------- */

int tb_status_handler(request_rec *r)
{
    const tb_catalog_t *cat;
    apr_array_header_t *rows;
    apr_time_t now = apr_time_now();
    status_query_t q;
    tb_error_t err;
    const char *body;
    apr_size_t len;
    apr_status_t rv;
    int text, rc;

    if (!r->handler || strcmp(r->handler, TB_STATUS_HANDLER)) {
        return DECLINED;
    }
    if ((rc = ap_discard_request_body(r)) != OK) {
        return rc;
    }
    /* NB: HEAD is M_GET with r->header_only; tb_respond_body sends no body */
    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        apr_table_setn(r->err_headers_out, "Allow", "GET, HEAD");
        tb_error_set(&err, HTTP_METHOD_NOT_ALLOWED, "invalid_request_error",
                     "method_not_allowed", NULL, "Use GET for this URL.");
        goto fail;
    }
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    if (parse_query(r, &q, &err) != APR_SUCCESS) {
        goto fail;
    }
    text = wants_text(r, &q);
    if ((rv = tb_state_catalog(r, &cat)) != APR_SUCCESS) {
        tb_state_unavailable_error(r, rv, &err);
        goto fail;
    }
    if (gather(r, cat, q.account, now, &rows) != APR_SUCCESS) {
        tb_error_set(&err, HTTP_NOT_FOUND, "invalid_request_error",
                     "account_not_found", NULL, apr_psprintf(r->pool,
                     "No account is named '%s' (the gateway sees the "
                     "accounts of its last catalogue reload).",
                     echo(r->pool, q.account)));
        goto fail;
    }
    rv = text ? render_text(r, rows, now, &body, &len)
              : render_json(r, rows, now, &body, &len);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, TB_LOGNO(80)
                      "cannot write the status page");
        tb_error_set(&err, HTTP_INTERNAL_SERVER_ERROR, "api_error",
                     "internal_error", NULL,
                     "The status page could not be written.");
        goto fail;
    }
    return tb_respond_body(r, HTTP_OK, text ? "text/plain; charset=utf-8"
                                            : "application/json",
                           body, len);
fail:
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    return tb_respond_error(r, &err);
}
