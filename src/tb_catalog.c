/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "tb_catalog.h"
#include "tb_dialect.h"

/* An account's claim to serve a model. */
typedef struct served_t {
    tb_account_t *account;
    const char *upstream_model;
} served_t;

struct tb_catalog_t {
    apr_pool_t *pool;
    apr_hash_t *models;      /* id -> tb_model_t */
    apr_hash_t *aliases;     /* alias -> tb_model_t */
    apr_hash_t *accounts;    /* int id -> tb_account_t */
    apr_hash_t *served;      /* model id -> apr_array of served_t */
};

apr_status_t tb_catalog_create(tb_catalog_t **pcat, apr_pool_t *p)
{
    tb_catalog_t *cat = apr_pcalloc(p, sizeof(*cat));

    cat->pool = p;
    cat->models = apr_hash_make(p);
    cat->aliases = apr_hash_make(p);
    cat->accounts = apr_hash_make(p);
    cat->served = apr_hash_make(p);
    *pcat = cat;
    return APR_SUCCESS;
}

apr_pool_t *tb_catalog_pool(const tb_catalog_t *cat)
{
    return cat->pool;
}

void tb_catalog_add_model(tb_catalog_t *cat, const char *id,
                          const char *owned_by, apr_int64_t created)
{
    tb_model_t *m = apr_pcalloc(cat->pool, sizeof(*m));

    m->id = apr_pstrdup(cat->pool, id);
    m->owned_by = apr_pstrdup(cat->pool, owned_by ? owned_by : "tokenbay");
    m->created = created;
    apr_hash_set(cat->models, m->id, APR_HASH_KEY_STRING, m);
}

void tb_catalog_add_alias(tb_catalog_t *cat, const char *alias,
                          const char *model_id)
{
    tb_model_t *m = apr_hash_get(cat->models, model_id, APR_HASH_KEY_STRING);

    if (m) {
        apr_hash_set(cat->aliases, apr_pstrdup(cat->pool, alias),
                     APR_HASH_KEY_STRING, m);
    }
}

static tb_account_t *account_get(const tb_catalog_t *cat, int id)
{
    return apr_hash_get(cat->accounts, &id, sizeof(id));
}

const tb_account_t *tb_catalog_account(const tb_catalog_t *cat, int id)
{
    return account_get(cat, id);
}

/* Bytes that would end or split an upstream request's header line. */
static int has_ctl(const char *v)
{
    for (; v && *v; ++v) {
        if ((unsigned char)*v < 0x20 || *v == 0x7f) {
            return 1;
        }
    }
    return 0;
}

/* Scheduled at all: active, spoken by this build, usable as configured. */
static int account_usable(const tb_account_t *a)
{
    return a->active && a->dialect && !a->unusable;
}

void tb_catalog_add_account(tb_catalog_t *cat, const tb_account_t *src)
{
    tb_account_t *a = apr_pmemdup(cat->pool, src, sizeof(*a));
    apr_size_t n;

    a->name = apr_pstrdup(cat->pool, src->name);
    a->protocol = apr_pstrdup(cat->pool, src->protocol);
    a->dialect = tb_dialect_find(a->protocol);
    a->capabilities = src->capabilities ? apr_pstrdup(cat->pool, src->capabilities)
                                        : NULL;
    a->caps = a->capabilities ? tb_caps_parse(a->capabilities, NULL, cat->pool)
            : a->dialect ? a->dialect->default_caps : 0;
    a->credential = apr_pstrdup(cat->pool, src->credential ? src->credential : "");
    a->status = apr_pstrdup(cat->pool, src->status ? src->status
                            : src->active ? "active" : "disabled");
    a->status_reason = src->status_reason ? apr_pstrdup(cat->pool, src->status_reason)
                                          : NULL;
    /* base URLs are joined with "/chat/completions" etc.: no trailing slash */
    n = strlen(src->base_url);
    while (n && src->base_url[n - 1] == '/') {
        --n;
    }
    a->base_url = apr_pstrmemdup(cat->pool, src->base_url, n);
    a->groups = apr_array_make(cat->pool, 2, sizeof(int));
    /* NB: a CR or LF in a credential would inject headers upstream */
    a->unusable = has_ctl(a->credential) ? "credential contains control "
                  "characters (CR, LF, ...): fix it with tokenbay-admin account set"
                : has_ctl(a->base_url) ? "base URL contains control characters"
                : NULL;
    apr_hash_set(cat->accounts, &a->id, sizeof(a->id), a);
}

void tb_catalog_add_account_group(tb_catalog_t *cat, int account_id,
                                  int group_id)
{
    tb_account_t *a = account_get(cat, account_id);

    if (a) {
        APR_ARRAY_PUSH(a->groups, int) = group_id;
    }
}

void tb_catalog_add_account_model(tb_catalog_t *cat, int account_id,
                                  const char *model_id,
                                  const char *upstream_model)
{
    tb_account_t *a = account_get(cat, account_id);
    tb_model_t *m = apr_hash_get(cat->models, model_id, APR_HASH_KEY_STRING);
    apr_array_header_t *arr;
    served_t *s;

    if (!a || !m) {
        return;
    }
    arr = apr_hash_get(cat->served, m->id, APR_HASH_KEY_STRING);
    if (!arr) {
        arr = apr_array_make(cat->pool, 4, sizeof(served_t));
        apr_hash_set(cat->served, m->id, APR_HASH_KEY_STRING, arr);
    }
    s = apr_array_push(arr);
    s->account = a;
    s->upstream_model = apr_pstrdup(cat->pool, (upstream_model && *upstream_model)
                                               ? upstream_model : m->id);
}

const tb_model_t *tb_catalog_resolve(const tb_catalog_t *cat, const char *name)
{
    const tb_model_t *m = apr_hash_get(cat->models, name, APR_HASH_KEY_STRING);

    return m ? m : apr_hash_get(cat->aliases, name, APR_HASH_KEY_STRING);
}

static int account_in_group(const tb_account_t *a, int group_id)
{
    int i;

    if (group_id == TB_CATALOG_ANY_GROUP) {
        return a->groups->nelts > 0;
    }
    for (i = 0; i < a->groups->nelts; ++i) {
        if (APR_ARRAY_IDX(a->groups, i, int) == group_id) {
            return 1;
        }
    }
    return 0;
}

void tb_catalog_routes(const tb_catalog_t *cat, int group_id,
                       const char *model_id, apr_pool_t *p,
                       apr_array_header_t **pactive, int *pconfigured)
{
    apr_array_header_t *arr = apr_hash_get(cat->served, model_id,
                                           APR_HASH_KEY_STRING);
    apr_array_header_t *active = apr_array_make(p, arr ? arr->nelts : 1,
                                                sizeof(tb_route_t));
    int i, configured = 0;

    for (i = 0; arr && i < arr->nelts; ++i) {
        served_t *s = &APR_ARRAY_IDX(arr, i, served_t);
        tb_route_t *r;

        if (!account_in_group(s->account, group_id)) {
            continue;
        }
        ++configured;
        if (account_usable(s->account)) {
            r = apr_array_push(active);
            r->account = s->account;
            r->upstream_model = s->upstream_model;
        }
    }
    *pactive = active;
    *pconfigured = configured;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const tb_model_entry_t *)a)->id,
                  ((const tb_model_entry_t *)b)->id);
}

static int group_reaches(const tb_catalog_t *cat, int group_id,
                         const tb_model_t *m)
{
    apr_array_header_t *arr = apr_hash_get(cat->served, m->id,
                                           APR_HASH_KEY_STRING);
    int i;

    for (i = 0; arr && i < arr->nelts; ++i) {
        served_t *s = &APR_ARRAY_IDX(arr, i, served_t);
        if (account_usable(s->account)
            && account_in_group(s->account, group_id)) {
            return 1;
        }
    }
    return 0;
}

void tb_catalog_foreach_account(const tb_catalog_t *cat, apr_pool_t *p,
                                tb_catalog_account_cb *cb, void *ctx)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(p, cat->accounts); hi; hi = apr_hash_next(hi)) {
        void *val;

        apr_hash_this(hi, NULL, NULL, &val);
        cb(ctx, val);
    }
}

void tb_catalog_foreach_model(const tb_catalog_t *cat, apr_pool_t *p,
                              tb_catalog_model_cb *cb, void *ctx)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(p, cat->models); hi; hi = apr_hash_next(hi)) {
        void *val;

        apr_hash_this(hi, NULL, NULL, &val);
        cb(ctx, val);
    }
}

apr_array_header_t *tb_catalog_models_for_group(const tb_catalog_t *cat,
                                                int group_id, apr_pool_t *p)
{
    apr_array_header_t *out = apr_array_make(p, 16, sizeof(tb_model_entry_t));
    apr_hash_t *sources[2] = { cat->models, cat->aliases };
    apr_hash_index_t *hi;
    int k;

    for (k = 0; k < 2; ++k) {
        for (hi = apr_hash_first(p, sources[k]); hi; hi = apr_hash_next(hi)) {
            const void *key;
            void *val;
            tb_model_entry_t *e;

            apr_hash_this(hi, &key, NULL, &val);
            if (!group_reaches(cat, group_id, val)) {
                continue;
            }
            e = apr_array_push(out);
            e->id = key;
            e->model = val;
        }
    }
    qsort(out->elts, out->nelts, sizeof(tb_model_entry_t), entry_cmp);
    return out;
}
