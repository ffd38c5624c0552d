/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "mod_tokenbay_private.h"

#include <strings.h>

#include <apr_strings.h>
#include <httpd.h>
#include <http_config.h>

#include "mod_tokenbay_config.h"
#include "tb_util.h"

/* Defaults, in one place; documented in conf/tokenbay.conf and README. */
#define DEF_KEY_CACHE_TTL   apr_time_from_sec(10)
#define DEF_CATALOG_TTL     apr_time_from_sec(10)
#define DEF_KEY_CACHE_SIZE  10000
#define DEF_KEY_STALE_TTL   apr_time_from_sec(3600)
#define DEF_UPSTREAM_KEEPALIVE apr_time_from_sec(30)
#define DEF_MAX_BODY        ((apr_off_t)16 * 1024 * 1024)
#define DEF_MAX_RESPONSE    ((apr_off_t)32 * 1024 * 1024)
#define DEF_CONNECT_TIMEOUT apr_time_from_sec(5)
#define DEF_TIMEOUT         apr_time_from_sec(600)
#define DEF_MAX_ATTEMPTS    3
#define DEF_FIRST_TIMEOUT   apr_time_from_sec(60)
#define DEF_IDLE_TIMEOUT    apr_time_from_sec(120)
#define DEF_COOL_RATE_LIMIT apr_time_from_sec(5)
#define DEF_COOL_RATE_LIMIT_MAX apr_time_from_sec(600)
#define DEF_COOL_QUOTA      apr_time_from_sec(3600)
#define DEF_COOL_ERROR      apr_time_from_sec(1)
#define DEF_COOL_ERROR_MAX  apr_time_from_sec(60)
#define DEF_STICKY_TTL      apr_time_from_sec(3600)
#define DEF_RESPONSE_TTL    apr_time_from_sec(30 * 86400)
#define DEF_SCHED_SLOTS     1024
#define DEF_STICKY_CACHE    "shmcb"
#define DEF_QUEUE_TIMEOUT   apr_time_from_sec(5)

#define UNSET (-1)
#define MERGE(f) conf->f = (add->f != UNSET) ? add->f : base->f

tb_srv_conf_t *tb_conf_srv(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &tokenbay_module);
}

tb_dir_conf_t *tb_conf_dir(const request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &tokenbay_module);
}

void *tb_conf_create_srv(apr_pool_t *p, server_rec *s)
{
    tb_srv_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    conf->key_cache_ttl = UNSET;
    conf->catalog_ttl = UNSET;
    conf->key_cache_size = UNSET;
    conf->key_stale_ttl = UNSET;
    conf->upstream_keepalive = UNSET;
    conf->cool_rate_limit = UNSET;
    conf->cool_rate_limit_max = UNSET;
    conf->cool_quota = UNSET;
    conf->cool_error = UNSET;
    conf->cool_error_max = UNSET;
    conf->sticky_ttl = UNSET;
    conf->response_ttl = UNSET;
    conf->sched_slots = UNSET;
    return conf;
}

void *tb_conf_merge_srv(apr_pool_t *p, void *basev, void *addv)
{
    tb_srv_conf_t *base = basev, *add = addv;
    tb_srv_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    MERGE(key_cache_ttl);
    MERGE(catalog_ttl);
    MERGE(key_cache_size);
    MERGE(key_stale_ttl);
    MERGE(upstream_keepalive);
    MERGE(cool_rate_limit);
    MERGE(cool_rate_limit_max);
    MERGE(cool_quota);
    MERGE(cool_error);
    MERGE(cool_error_max);
    MERGE(sticky_ttl);
    MERGE(response_ttl);
    MERGE(sched_slots);
    conf->sticky_cache = add->sticky_cache ? add->sticky_cache : base->sticky_cache;
    return conf;
}

void *tb_conf_create_dir(apr_pool_t *p, char *dir)
{
    tb_dir_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    conf->enabled = UNSET;
    conf->max_body = UNSET;
    conf->max_response = UNSET;
    conf->connect_timeout = UNSET;
    conf->timeout = UNSET;
    conf->first_timeout = UNSET;
    conf->idle_timeout = UNSET;
    conf->max_attempts = UNSET;
    conf->public_models = UNSET;
    conf->queue_timeout = UNSET;
    return conf;
}

void *tb_conf_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    tb_dir_conf_t *base = basev, *add = addv;
    tb_dir_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    MERGE(enabled);
    MERGE(max_body);
    MERGE(max_response);
    MERGE(connect_timeout);
    MERGE(timeout);
    MERGE(first_timeout);
    MERGE(idle_timeout);
    MERGE(max_attempts);
    MERGE(public_models);
    MERGE(queue_timeout);
    return conf;
}

#define GETTER(type, name, conftype, field, def) \
    type name(const conftype *c) { return c->field != UNSET ? c->field : (def); }

GETTER(apr_interval_time_t, tb_conf_key_cache_ttl, tb_srv_conf_t, key_cache_ttl, DEF_KEY_CACHE_TTL)
GETTER(apr_interval_time_t, tb_conf_catalog_ttl, tb_srv_conf_t, catalog_ttl, DEF_CATALOG_TTL)
GETTER(int, tb_conf_key_cache_size, tb_srv_conf_t, key_cache_size, DEF_KEY_CACHE_SIZE)
GETTER(apr_interval_time_t, tb_conf_key_stale_ttl, tb_srv_conf_t, key_stale_ttl, DEF_KEY_STALE_TTL)
GETTER(apr_interval_time_t, tb_conf_upstream_keepalive, tb_srv_conf_t, upstream_keepalive, DEF_UPSTREAM_KEEPALIVE)
GETTER(int, tb_conf_enabled, tb_dir_conf_t, enabled, 0)
GETTER(apr_off_t, tb_conf_max_body, tb_dir_conf_t, max_body, DEF_MAX_BODY)
GETTER(apr_off_t, tb_conf_max_response, tb_dir_conf_t, max_response, DEF_MAX_RESPONSE)
GETTER(apr_interval_time_t, tb_conf_connect_timeout, tb_dir_conf_t, connect_timeout, DEF_CONNECT_TIMEOUT)
GETTER(apr_interval_time_t, tb_conf_timeout, tb_dir_conf_t, timeout, DEF_TIMEOUT)
GETTER(apr_interval_time_t, tb_conf_first_timeout, tb_dir_conf_t, first_timeout, DEF_FIRST_TIMEOUT)
GETTER(apr_interval_time_t, tb_conf_idle_timeout, tb_dir_conf_t, idle_timeout, DEF_IDLE_TIMEOUT)
GETTER(int, tb_conf_max_attempts, tb_dir_conf_t, max_attempts, DEF_MAX_ATTEMPTS)
GETTER(int, tb_conf_public_models, tb_dir_conf_t, public_models, 0)
GETTER(apr_interval_time_t, tb_conf_queue_timeout, tb_dir_conf_t, queue_timeout, DEF_QUEUE_TIMEOUT)
GETTER(apr_interval_time_t, tb_conf_cool_rate_limit, tb_srv_conf_t, cool_rate_limit, DEF_COOL_RATE_LIMIT)
GETTER(apr_interval_time_t, tb_conf_cool_rate_limit_max, tb_srv_conf_t, cool_rate_limit_max, DEF_COOL_RATE_LIMIT_MAX)
GETTER(apr_interval_time_t, tb_conf_cool_quota, tb_srv_conf_t, cool_quota, DEF_COOL_QUOTA)
GETTER(apr_interval_time_t, tb_conf_cool_error, tb_srv_conf_t, cool_error, DEF_COOL_ERROR)
GETTER(apr_interval_time_t, tb_conf_cool_error_max, tb_srv_conf_t, cool_error_max, DEF_COOL_ERROR_MAX)
GETTER(apr_interval_time_t, tb_conf_sticky_ttl, tb_srv_conf_t, sticky_ttl, DEF_STICKY_TTL)
GETTER(apr_interval_time_t, tb_conf_response_ttl, tb_srv_conf_t, response_ttl, DEF_RESPONSE_TTL)
GETTER(int, tb_conf_sched_slots, tb_srv_conf_t, sched_slots, DEF_SCHED_SLOTS)

const char *tb_conf_sticky_cache(const tb_srv_conf_t *sc)
{
    const char *spec = sc->sticky_cache ? sc->sticky_cache : DEF_STICKY_CACHE;

    return strcasecmp(spec, "none") ? spec : NULL;
}

/* ---- directive parsing: strict, one message shape ------------------------- */

static const char *invalid(cmd_parms *cmd, const char *what)
{
    return apr_psprintf(cmd->pool, "Invalid value for directive %s: %s",
                        cmd->directive->directive, what);
}

/* Durations: seconds by default, with httpd's suffixes (ms, s, mi, h). */
static const char *parse_duration(cmd_parms *cmd, const char *arg,
                                  apr_interval_time_t min,
                                  apr_interval_time_t *pv)
{
    apr_interval_time_t t;

    if (ap_timeout_parameter_parse(arg, &t, "s") != APR_SUCCESS || t < min) {
        return invalid(cmd, apr_psprintf(cmd->pool,
                       "'%s' (expected a duration such as 30, 30s, 500ms)", arg));
    }
    *pv = t;
    return NULL;
}

static const char *parse_int(cmd_parms *cmd, const char *arg, long min,
                             long max, int *pv)
{
    long v;

    if (!tb_parse_long(arg, min, max, &v)) {
        return invalid(cmd, apr_psprintf(cmd->pool, "'%s' (expected an integer "
                       "from %ld to %ld)", arg, min, max));
    }
    *pv = (int)v;
    return NULL;
}

static const char *parse_size(cmd_parms *cmd, const char *arg, apr_off_t *pv)
{
    apr_off_t v;
    char *end;

    if (apr_strtoff(&v, arg, &end, 10) != APR_SUCCESS || v < 1
        || end == arg || end[*end && !end[1] ? 1 : 0] != '\0') {
        return invalid(cmd, apr_psprintf(cmd->pool,
                       "'%s' (expected bytes, optionally with K, M or G)", arg));
    }
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': v *= 1024; break;
    case 'm': case 'M': v *= 1024 * 1024; break;
    case 'g': case 'G': v *= 1024 * 1024 * 1024; break;
    default:
        return invalid(cmd, apr_psprintf(cmd->pool,
                       "'%s' (unknown unit '%c')", arg, *end));
    }
    *pv = v;
    return NULL;
}

static const char *set_enabled(cmd_parms *cmd, void *dconf, int flag)
{
    ((tb_dir_conf_t *)dconf)->enabled = flag;
    return NULL;
}

static const char *set_public_models(cmd_parms *cmd, void *dconf, int flag)
{
    ((tb_dir_conf_t *)dconf)->public_models = flag;
    return NULL;
}

static const char *set_max_body(cmd_parms *cmd, void *dconf, const char *arg)
{
    return parse_size(cmd, arg, &((tb_dir_conf_t *)dconf)->max_body);
}

static const char *set_max_response(cmd_parms *cmd, void *dconf, const char *arg)
{
    return parse_size(cmd, arg, &((tb_dir_conf_t *)dconf)->max_response);
}

static const char *set_connect_timeout(cmd_parms *cmd, void *dconf,
                                       const char *arg)
{
    return parse_duration(cmd, arg, apr_time_from_msec(1),
                          &((tb_dir_conf_t *)dconf)->connect_timeout);
}

static const char *set_timeout(cmd_parms *cmd, void *dconf, const char *arg)
{
    return parse_duration(cmd, arg, apr_time_from_msec(1),
                          &((tb_dir_conf_t *)dconf)->timeout);
}

static const char *set_first_timeout(cmd_parms *cmd, void *dconf,
                                     const char *arg)
{
    return parse_duration(cmd, arg, apr_time_from_msec(1),
                          &((tb_dir_conf_t *)dconf)->first_timeout);
}

static const char *set_idle_timeout(cmd_parms *cmd, void *dconf, const char *arg)
{
    return parse_duration(cmd, arg, apr_time_from_msec(1),
                          &((tb_dir_conf_t *)dconf)->idle_timeout);
}

static const char *set_max_attempts(cmd_parms *cmd, void *dconf, const char *arg)
{
    return parse_int(cmd, arg, 1, 16, &((tb_dir_conf_t *)dconf)->max_attempts);
}

static const char *set_key_cache_ttl(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);

    return err ? err : parse_duration(cmd, arg, 0,
                                      &tb_conf_srv(cmd->server)->key_cache_ttl);
}

static const char *set_catalog_ttl(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);

    return err ? err : parse_duration(cmd, arg, 0,
                                      &tb_conf_srv(cmd->server)->catalog_ttl);
}

static const char *set_key_stale_ttl(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);

    return err ? err : parse_duration(cmd, arg, 0,
                                      &tb_conf_srv(cmd->server)->key_stale_ttl);
}

static const char *set_upstream_keepalive(cmd_parms *cmd, void *dummy,
                                          const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    return err ? err : parse_duration(cmd, arg, apr_time_from_sec(1),
                                      &tb_conf_srv(cmd->server)->upstream_keepalive);
}

static const char *set_key_cache_size(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);

    return err ? err : parse_int(cmd, arg, 1, 10000000L,
                                 &tb_conf_srv(cmd->server)->key_cache_size);
}

static const char *set_queue_timeout(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = parse_duration(cmd, arg, 0,
                                     &((tb_dir_conf_t *)dconf)->queue_timeout);

    if (!err && ((tb_dir_conf_t *)dconf)->queue_timeout > apr_time_from_sec(600)) {
        err = invalid(cmd, "at most 600 seconds: a waiting request holds a thread");
    }
    return err;
}

/* The scheduler's durations, one setter: cmd->info is the field's offset.
 * At most 30 days: sums and doublings stay far from overflow, and
 * memcache reads a longer expiry as a date. */
#define MAX_SCHED_DURATION apr_time_from_sec(30 * 86400)

static const char *set_srv_duration(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);
    char *sc = (char *)tb_conf_srv(cmd->server);
    apr_interval_time_t *pv =
        (apr_interval_time_t *)(sc + (apr_size_t)(apr_uintptr_t)cmd->info);

    if (!err && !(err = parse_duration(cmd, arg, apr_time_from_msec(1), pv))
        && *pv > MAX_SCHED_DURATION) {
        err = invalid(cmd, "at most 30 days (720h)");
    }
    return err;
}

#define SRV_DURATION(name, field, help) \
    AP_INIT_TAKE1(name, set_srv_duration, \
                  (void *)APR_OFFSETOF(tb_srv_conf_t, field), RSRC_CONF, help)

static const char *set_sched_slots(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    return err ? err : parse_int(cmd, arg, 16, 65536L,
                                 &tb_conf_srv(cmd->server)->sched_slots);
}

static const char *set_sticky_cache(cmd_parms *cmd, void *dummy, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    tb_conf_srv(cmd->server)->sticky_cache = arg;
    return NULL;
}

/* NB: OR_FILEINFO makes a directive usable in .htaccess under
 * "AllowOverride FileInfo"; RSRC_CONF/ACCESS_CONF only ones are refused
 * there by httpd itself. The README lists which is which. */
const command_rec tb_cmds[] = {
    AP_INIT_FLAG("TokenBay", set_enabled, NULL, OR_FILEINFO,
                 "Serve the OpenAI-compatible gateway here: On or Off"),
    AP_INIT_FLAG("TokenBayPublicModels", set_public_models, NULL, OR_AUTHCFG,
                 "GET .../models answers without a key where Require lets "
                 "the request through: On or Off"),
    AP_INIT_TAKE1("TokenBayMaxBodySize", set_max_body, NULL, OR_FILEINFO,
                  "Largest accepted request body, in bytes (K, M, G suffixes)"),
    AP_INIT_TAKE1("TokenBayMaxAttempts", set_max_attempts, NULL, OR_FILEINFO,
                  "Upstream accounts tried at most per request (1-16)"),
    AP_INIT_TAKE1("TokenBayConnectTimeout", set_connect_timeout, NULL, OR_FILEINFO,
                  "Time allowed to connect to an upstream"),
    AP_INIT_TAKE1("TokenBayTimeout", set_timeout, NULL, OR_FILEINFO,
                  "Time allowed for a whole upstream exchange"),
    AP_INIT_TAKE1("TokenBayFirstTokenTimeout", set_first_timeout, NULL, OR_FILEINFO,
                  "Time allowed until a stream's first content (failover before it)"),
    AP_INIT_TAKE1("TokenBayIdleTimeout", set_idle_timeout, NULL, OR_FILEINFO,
                  "Time allowed between upstream stream events after the first content"),
    AP_INIT_TAKE1("TokenBayMaxResponseSize", set_max_response, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Largest buffered (non-streamed) upstream response, in bytes"),
    AP_INIT_TAKE1("TokenBayKeyCacheTTL", set_key_cache_ttl, NULL, RSRC_CONF,
                  "How long a key lookup is cached in each process"),
    AP_INIT_TAKE1("TokenBayCatalogTTL", set_catalog_ttl, NULL, RSRC_CONF,
                  "How long the accounts/models catalogue is cached in each process"),
    AP_INIT_TAKE1("TokenBayKeyCacheSize", set_key_cache_size, NULL, RSRC_CONF,
                  "Most keys cached per process (and as many unknown keys)"),
    AP_INIT_TAKE1("TokenBayKeyStaleTTL", set_key_stale_ttl, NULL, RSRC_CONF,
                  "How long a known key keeps working while the database "
                  "cannot confirm it"),
    AP_INIT_TAKE1("TokenBayUpstreamKeepAlive", set_upstream_keepalive, NULL,
                  RSRC_CONF,
                  "Longest an idle upstream connection is kept for reuse "
                  "(server-wide)"),
    AP_INIT_TAKE1("TokenBayQueueTimeout", set_queue_timeout, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "How long a request waits for a free account slot before "
                  "a 429 (0: no wait)"),
    SRV_DURATION("TokenBayRateLimitCooldown", cool_rate_limit,
                 "How long an upstream 429 without Retry-After cools the "
                 "account for that model"),
    SRV_DURATION("TokenBayRateLimitCooldownMax", cool_rate_limit_max,
                 "The longest upstream Retry-After honoured"),
    SRV_DURATION("TokenBayQuotaCooldown", cool_quota,
                 "How long an exhausted upstream quota cools the account"),
    SRV_DURATION("TokenBayErrorCooldown", cool_error,
                 "How long an upstream 5xx, timeout or connection failure "
                 "cools the account (doubled on repeats)"),
    SRV_DURATION("TokenBayErrorCooldownMax", cool_error_max,
                 "The longest cooldown after repeated failures"),
    SRV_DURATION("TokenBayStickyTTL", sticky_ttl,
                 "How long a session keeps the account it used last"),
    SRV_DURATION("TokenBayResponseAffinityTTL", response_ttl,
                 "How long a response id is remembered with its account"),
    AP_INIT_TAKE1("TokenBaySchedulerSlots", set_sched_slots, NULL, RSRC_CONF,
                  "Upstream accounts the shared scheduler table can hold "
                  "(server-wide)"),
    AP_INIT_TAKE1("TokenBayStickyCache", set_sticky_cache, NULL, RSRC_CONF,
                  "socache provider for sticky sessions: shmcb (default), "
                  "shmcb:/path(bytes), redis:host:port, memcache:host:port, "
                  "or none (server-wide)"),
    { NULL }
};
