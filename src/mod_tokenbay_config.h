/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef MOD_TOKENBAY_CONFIG_H
#define MOD_TOKENBAY_CONFIG_H

#include <httpd.h>
#include <http_config.h>

struct tb_state_t;

/* Per server (vhost). Fields stay unset (-1) until merge; the getters
 * below supply the defaults. Never set from .htaccess. */
typedef struct tb_srv_conf_t {
    apr_interval_time_t key_cache_ttl;  /* TokenBayKeyCacheTTL */
    apr_interval_time_t catalog_ttl;    /* TokenBayCatalogTTL */
    int key_cache_size;                 /* TokenBayKeyCacheSize */
    apr_interval_time_t key_stale_ttl;  /* TokenBayKeyStaleTTL */
    apr_interval_time_t upstream_keepalive; /* TokenBayUpstreamKeepAlive
                                         * (main server only) */
    /* scheduling: how long accounts cool (tb_sched_policy_t) */
    apr_interval_time_t cool_rate_limit;     /* TokenBayRateLimitCooldown */
    apr_interval_time_t cool_rate_limit_max; /* TokenBayRateLimitCooldownMax */
    apr_interval_time_t cool_quota;          /* TokenBayQuotaCooldown */
    apr_interval_time_t cool_error;          /* TokenBayErrorCooldown */
    apr_interval_time_t cool_error_max;      /* TokenBayErrorCooldownMax */
    apr_interval_time_t sticky_ttl;          /* TokenBayStickyTTL */
    apr_interval_time_t response_ttl;        /* TokenBayResponseAffinityTTL */
    /* main server only */
    int sched_slots;                    /* TokenBaySchedulerSlots */
    const char *sticky_cache;           /* TokenBayStickyCache, "none" off */
    struct tb_state_t *state;           /* per-process runtime, child_init */
} tb_srv_conf_t;

/* Per directory/location (and, where marked, .htaccess). */
typedef struct tb_dir_conf_t {
    int enabled;                        /* TokenBay On|Off */
    apr_off_t max_body;                 /* TokenBayMaxBodySize */
    apr_off_t max_response;             /* TokenBayMaxResponseSize */
    apr_interval_time_t connect_timeout;/* TokenBayConnectTimeout */
    apr_interval_time_t timeout;        /* TokenBayTimeout */
    apr_interval_time_t first_timeout;  /* TokenBayFirstTokenTimeout */
    apr_interval_time_t idle_timeout;   /* TokenBayIdleTimeout */
    int max_attempts;                   /* TokenBayMaxAttempts */
    int public_models;                  /* TokenBayPublicModels On|Off */
    apr_interval_time_t queue_timeout;  /* TokenBayQueueTimeout */
} tb_dir_conf_t;

extern const command_rec tb_cmds[];

void *tb_conf_create_srv(apr_pool_t *p, server_rec *s);
void *tb_conf_merge_srv(apr_pool_t *p, void *basev, void *addv);
void *tb_conf_create_dir(apr_pool_t *p, char *dir);
void *tb_conf_merge_dir(apr_pool_t *p, void *basev, void *addv);

tb_srv_conf_t *tb_conf_srv(const server_rec *s);
tb_dir_conf_t *tb_conf_dir(const request_rec *r);

apr_interval_time_t tb_conf_key_cache_ttl(const tb_srv_conf_t *sc);
apr_interval_time_t tb_conf_catalog_ttl(const tb_srv_conf_t *sc);
int tb_conf_key_cache_size(const tb_srv_conf_t *sc);
apr_interval_time_t tb_conf_key_stale_ttl(const tb_srv_conf_t *sc);
apr_interval_time_t tb_conf_upstream_keepalive(const tb_srv_conf_t *sc);
apr_interval_time_t tb_conf_cool_rate_limit(const tb_srv_conf_t *sc);
apr_interval_time_t tb_conf_cool_rate_limit_max(const tb_srv_conf_t *sc);
apr_interval_time_t tb_conf_cool_quota(const tb_srv_conf_t *sc);
apr_interval_time_t tb_conf_cool_error(const tb_srv_conf_t *sc);
apr_interval_time_t tb_conf_cool_error_max(const tb_srv_conf_t *sc);
apr_interval_time_t tb_conf_sticky_ttl(const tb_srv_conf_t *sc);
apr_interval_time_t tb_conf_response_ttl(const tb_srv_conf_t *sc);
int tb_conf_sched_slots(const tb_srv_conf_t *sc);
/* The socache provider spec ("shmcb", "redis:host:port", ...), or NULL
 * for none. */
const char *tb_conf_sticky_cache(const tb_srv_conf_t *sc);

int tb_conf_enabled(const tb_dir_conf_t *dc);
apr_off_t tb_conf_max_body(const tb_dir_conf_t *dc);
apr_off_t tb_conf_max_response(const tb_dir_conf_t *dc);
apr_interval_time_t tb_conf_connect_timeout(const tb_dir_conf_t *dc);
apr_interval_time_t tb_conf_timeout(const tb_dir_conf_t *dc);
apr_interval_time_t tb_conf_first_timeout(const tb_dir_conf_t *dc);
apr_interval_time_t tb_conf_idle_timeout(const tb_dir_conf_t *dc);
int tb_conf_max_attempts(const tb_dir_conf_t *dc);
int tb_conf_public_models(const tb_dir_conf_t *dc);
apr_interval_time_t tb_conf_queue_timeout(const tb_dir_conf_t *dc);

#endif /* MOD_TOKENBAY_CONFIG_H */
