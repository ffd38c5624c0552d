/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_CATALOG_H
#define TB_CATALOG_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_hash.h>
#include <apr_time.h>

struct tb_dialect_t;

/* The routing catalogue: models, aliases, upstream accounts and who serves
 * what for which group. Built once from the database into its own pool,
 * then read-only and shared by all threads of a process until replaced. */

typedef struct tb_account_t {
    int id;
    const char *name;            /* operator's name, safe to log */
    const char *protocol;        /* "openai-chat", "openai-responses", ... */
    const struct tb_dialect_t *dialect; /* that protocol's dialect, NULL
                                 * when this build cannot speak it (the
                                 * account is then never scheduled) */
    const char *capabilities;    /* as configured: NULL for the dialect's
                                 * defaults, else a comma separated list */
    unsigned caps;               /* TB_CAP_* in effect */
    const char *base_url;        /* without trailing slash */
    const char *credential;      /* secret: never log */
    int priority;                /* higher tier first */
    unsigned int weight;         /* share inside the tier; 0 takes no traffic */
    unsigned int max_concurrency;/* 0 = unlimited */
    int active;                  /* status = 'active' */
    const char *status;          /* as in the database: active, disabled,
                                 * error (set by the gateway when the
                                 * upstream refused the credential) */
    const char *status_reason;   /* why, for error; may be NULL */
    apr_time_t status_at;        /* when the status last changed, 0 unknown */
    int sched_slot;              /* its slot in the scheduler's shared
                                 * table (tb_sched.h), -1 for none */
    const char *unusable;        /* why it can never be scheduled as
                                 * configured (logged), or NULL */
    apr_array_header_t *groups;  /* int group ids this account serves */
} tb_account_t;

typedef struct tb_model_t {
    const char *id;              /* canonical id */
    const char *owned_by;
    apr_int64_t created;
} tb_model_t;

/* One account able to serve one model, under its upstream name. */
typedef struct tb_route_t {
    const tb_account_t *account;
    const char *upstream_model;
} tb_route_t;

/* An entry of /v1/models: a canonical id or an alias of one. */
typedef struct tb_model_entry_t {
    const char *id;
    const tb_model_t *model;
} tb_model_entry_t;

typedef struct tb_catalog_t tb_catalog_t;

apr_status_t tb_catalog_create(tb_catalog_t **pcat, apr_pool_t *p);
apr_pool_t  *tb_catalog_pool(const tb_catalog_t *cat);

void tb_catalog_add_model(tb_catalog_t *cat, const char *id,
                          const char *owned_by, apr_int64_t created);
/* Unknown target models are ignored (the alias then does not resolve). */
void tb_catalog_add_alias(tb_catalog_t *cat, const char *alias,
                          const char *model_id);
void tb_catalog_add_account(tb_catalog_t *cat, const tb_account_t *acct);
void tb_catalog_add_account_group(tb_catalog_t *cat, int account_id,
                                  int group_id);
void tb_catalog_add_account_model(tb_catalog_t *cat, int account_id,
                                  const char *model_id,
                                  const char *upstream_model);

/* Canonical model for a requested name: an id first, then an alias. */
const tb_model_t *tb_catalog_resolve(const tb_catalog_t *cat,
                                     const char *name);

/* The routes for (group, model). *pactive receives the active accounts
 * whose protocol this build speaks (allocated in p); *pconfigured the
 * number of accounts of the group that serve the model whatever their
 * status. */
void tb_catalog_routes(const tb_catalog_t *cat, int group_id,
                       const char *model_id, apr_pool_t *p,
                       apr_array_header_t **pactive, int *pconfigured);

/* The account with this id, or NULL. */
const tb_account_t *tb_catalog_account(const tb_catalog_t *cat, int id);

/* Every account, in no particular order. */
typedef void tb_catalog_account_cb(void *ctx, const tb_account_t *acct);
void tb_catalog_foreach_account(const tb_catalog_t *cat, apr_pool_t *p,
                                tb_catalog_account_cb *cb, void *ctx);

/* Every canonical model (not the aliases), in no particular order. */
typedef void tb_catalog_model_cb(void *ctx, const tb_model_t *model);
void tb_catalog_foreach_model(const tb_catalog_t *cat, apr_pool_t *p,
                              tb_catalog_model_cb *cb, void *ctx);

/* All ids (canonical and aliases) the group can reach through an active
 * account, sorted by id: tb_model_entry_t elements in p. With
 * TB_CATALOG_ANY_GROUP, those any active group can reach. */
#define TB_CATALOG_ANY_GROUP (-1)
apr_array_header_t *tb_catalog_models_for_group(const tb_catalog_t *cat,
                                                int group_id, apr_pool_t *p);

#endif /* TB_CATALOG_H */
