/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "mod_tokenbay_private.h"

#include <string.h>

#include <ap_expr.h>
#include <ap_provider.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_auth.h>

#include "mod_tokenbay_auth.h"
#include "mod_tokenbay_config.h"
#include "mod_tokenbay_handler.h"
#include "mod_tokenbay_state.h"
#include "tb_sha256.h"
#include "tb_util.h"

/* Longest key we look up; anything longer cannot be one of ours. */
#define MAX_KEY_LEN 256

/* What authentication decided, kept in the request's config for the
 * handler (the key) and the error filter (the refusal). */
typedef struct auth_ctx_t {
    int authenticated;
    tb_keyinfo_t key;
    int refused;
    tb_error_t err;
} auth_ctx_t;

static auth_ctx_t *auth_ctx(request_rec *r, int create)
{
    auth_ctx_t *ctx = ap_get_module_config(r->request_config, &tokenbay_module);

    if (!ctx && create) {
        ctx = apr_pcalloc(r->pool, sizeof(*ctx));
        ap_set_module_config(r->request_config, &tokenbay_module, ctx);
    }
    return ctx;
}

/* httpd copies r->user to internal redirects and subrequests with the
 * same configuration without authenticating again: so does this, and only
 * then (another configuration authenticates for itself). */
static const auth_ctx_t *auth_ctx_any(request_rec *r)
{
    const auth_ctx_t *ctx = auth_ctx(r, 0);

    while (!ctx) {
        request_rec *from = r->prev ? r->prev : r->main;

        if (!from || from->per_dir_config != r->per_dir_config) {
            break;
        }
        r = from;
        ctx = auth_ctx(r, 0);
    }
    return ctx;
}

const tb_keyinfo_t *tb_auth_key(request_rec *r)
{
    const auth_ctx_t *ctx = auth_ctx_any(r);

    return ctx && ctx->authenticated ? &ctx->key : NULL;
}

const tb_error_t *tb_auth_failure(request_rec *r)
{
    const auth_ctx_t *ctx = auth_ctx(r, 0);

    return ctx && ctx->refused ? &ctx->err : NULL;
}

int tb_auth_applies(request_rec *r)
{
    const char *type = ap_auth_type(r);

    if (type) {
        return !strcasecmp(type, TB_AUTH_TYPE);
    }
    return tb_conf_enabled(tb_conf_dir(r)) == 1;
}

/* The presented key, or NULL. Both spellings real clients use: OpenAI's
 * SDKs send Authorization: Bearer, Anthropic's send x-api-key (which is
 * also where a key goes when Authorization carries another scheme's
 * credentials). Authorization with another scheme and no x-api-key: ""
 * (something was presented, and it is not a key). */
static const char *presented_key(request_rec *r)
{
    const char *v = apr_table_get(r->headers_in, "Authorization");
    const char *x = apr_table_get(r->headers_in, "x-api-key");

    if (v) {
        while (apr_isspace(*v)) {
            ++v;
        }
        if (!strncasecmp(v, "Bearer", 6) && apr_isspace(v[6])) {
            for (v += 6; apr_isspace(*v); ++v) {
            }
            return v;
        }
    }
    return x ? x : v ? "" : NULL;
}

int tb_auth_key_presented(request_rec *r)
{
    return presented_key(r) != NULL;
}

static int key_well_formed(const char *key)
{
    apr_size_t n = 0;

    for (; key[n]; ++n) {
        if (n >= MAX_KEY_LEN || !apr_isgraph(key[n])) {
            return 0;
        }
    }
    return n > 0;
}

/* Look the key up and judge it: APR_SUCCESS, or *err says what to answer
 * (401, 403 or 503). */
static apr_status_t check_key(request_rec *r, const char *key,
                              tb_keyinfo_t *pinfo, tb_error_t *err)
{
    char hash[TB_SHA256_HEX_LEN + 1];
    apr_status_t rv = APR_EACCES;

    if (!key) {
        tb_error_set(err, HTTP_UNAUTHORIZED, "invalid_request_error",
                     "missing_api_key", NULL,
                     "You didn't provide an API key. Send it as "
                     "'Authorization: Bearer YOUR_KEY'.");
        goto leave;
    }
    if (!key_well_formed(key)) {
        tb_error_set(err, HTTP_UNAUTHORIZED, "invalid_request_error",
                     "invalid_api_key", NULL, "Incorrect API key provided.");
        goto leave;
    }
    tb_sha256_hex(key, strlen(key), hash);
    if ((rv = tb_state_key_lookup(r, hash, pinfo)) != APR_SUCCESS) {
        tb_state_unavailable_error(r, rv, err);
        goto leave;
    }
    rv = APR_EACCES;
    if (!pinfo->found) {
        tb_error_set(err, HTTP_UNAUTHORIZED, "invalid_request_error",
                     "invalid_api_key", NULL,
                     apr_psprintf(r->pool, "Incorrect API key provided: %s.",
                                  tb_mask_secret(r->pool, key, 3)));
        goto leave;
    }
    apr_table_setn(r->notes, "TOKENBAY_KEY_ID", apr_ltoa(r->pool, pinfo->key_id));
    apr_table_setn(r->notes, "TOKENBAY_GROUP", pinfo->group_name);
    if (!pinfo->key_active) {
        tb_error_set(err, HTTP_UNAUTHORIZED, "invalid_request_error",
                     "api_key_disabled", NULL, "This API key has been disabled.");
    }
    else if (pinfo->expires && pinfo->expires <= apr_time_sec(apr_time_now())) {
        tb_error_set(err, HTTP_UNAUTHORIZED, "invalid_request_error",
                     "api_key_expired", NULL, "This API key has expired.");
    }
    else if (!pinfo->group_active) {
        tb_error_set(err, HTTP_FORBIDDEN, "permission_error", "group_disabled",
                     NULL, "The group of this API key has been disabled.");
    }
    else {
        rv = APR_SUCCESS;
    }

leave:
    return rv;
}

/* check_authn: runs only where a Require needs a user, or where
 * force_authn below asked for it. */
static int auth_check_authn(request_rec *r)
{
    auth_ctx_t *ctx;

    if (!tb_auth_applies(r)) {
        return DECLINED;
    }
    tb_request_id(r);
    ctx = auth_ctx(r, 1);
    if (check_key(r, presented_key(r), &ctx->key, &ctx->err) != APR_SUCCESS) {
        ctx->refused = 1;
        apr_table_setn(r->notes, "TOKENBAY_ERROR",
                       ctx->err.code ? ctx->err.code : ctx->err.type);
        apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "rejected");
        /* the answer itself is written by the error filter, in JSON */
        return ctx->err.status;
    }
    ctx->authenticated = 1;
    /* the key's display form: names what was used, reveals nothing */
    r->user = apr_pstrcat(r->pool, ctx->key.prefix, "..", ctx->key.last4, NULL);
    r->ap_auth_type = TB_AUTH_TYPE;
    return OK;
}

const tb_keyinfo_t *tb_auth_require_key(request_rec *r, tb_error_t *err)
{
    const tb_keyinfo_t *key = tb_auth_key(r);
    auth_ctx_t *ctx;

    if (key) {
        return key;
    }
    /* httpd's auth phase did not run here (Satisfy Any let the request
     * through, or another AuthType authenticated it): the gateway checks
     * the key itself, as check_authn would */
    ctx = auth_ctx(r, 1);
    if (check_key(r, presented_key(r), &ctx->key, err) != APR_SUCCESS) {
        apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "rejected");
        return NULL;
    }
    ctx->authenticated = 1;
    return &ctx->key;
}

/* A gateway URL always needs a key, even where Require grants without a
 * user (Require all granted, Require ip, no Require at all): that only
 * adds conditions. The one exception is the model list where the
 * operator made it public (TokenBayPublicModels On) and no key is
 * presented; a key that is presented is always checked. */
static int auth_force_authn(request_rec *r)
{
    if (!tb_auth_applies(r)) {
        return DECLINED;
    }
    if (!presented_key(r) && tb_conf_public_models(tb_conf_dir(r)) == 1
        && tb_route_is_models(r)) {
        return DECLINED;
    }
    return OK;
}

/* Where AuthType tokenbay is configured, httpd asks its module to say how
 * to authenticate after a refusal. */
static int auth_note_failure(request_rec *r, const char *type)
{
    if (strcasecmp(type, TB_AUTH_TYPE)) {
        return DECLINED;
    }
    apr_table_setn(r->err_headers_out, "WWW-Authenticate",
                   "Bearer realm=\"tokenbay\"");
    return OK;
}

/* ---- Require tokenbay-group / tokenbay-key ----------------------------------- */

/* The names of a Require line (an ap_expr string, as for Require user). */
static const char *authz_parse(cmd_parms *cmd, const char *line,
                               const void **parsed)
{
    const char *err = NULL;
    ap_expr_info_t *expr = ap_expr_parse_cmd(cmd, line,
                                             AP_EXPR_FLAG_STRING_RESULT,
                                             &err, NULL);

    if (err) {
        return apr_pstrcat(cmd->temp_pool, "Cannot parse expression in "
                           "require line: ", err, NULL);
    }
    *parsed = expr;
    return NULL;
}

static authz_status authz_names(request_rec *r, const void *parsed,
                                const char *what, const char *have)
{
    const tb_keyinfo_t *key = tb_auth_key(r);
    const char *err = NULL, *line, *w;

    if (!key) {
        /* no gateway key (yet): authentication decides first */
        return r->user ? AUTHZ_DENIED : AUTHZ_DENIED_NO_USER;
    }
    line = ap_expr_str_exec(r, parsed, &err);
    if (err) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, TB_LOGNO(50)
                      "Require tokenbay-%s: cannot evaluate the require "
                      "expression: %s", what, err);
        return AUTHZ_DENIED;
    }
    while ((w = ap_getword_conf(r->pool, &line)) && *w) {
        if (!strcmp(w, have)) {
            return AUTHZ_GRANTED;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, TB_LOGNO(51)
                  "key %ld (%s '%s') not allowed by Require tokenbay-%s for %s",
                  key->key_id, what, have, what, r->uri);
    return AUTHZ_DENIED;
}

static authz_status authz_group(request_rec *r, const char *line,
                                const void *parsed)
{
    const tb_keyinfo_t *key = tb_auth_key(r);

    (void)line;
    return authz_names(r, parsed, "group", key ? key->group_name : "");
}

static authz_status authz_key(request_rec *r, const char *line,
                              const void *parsed)
{
    const tb_keyinfo_t *key = tb_auth_key(r);

    (void)line;
    return authz_names(r, parsed, "key", key ? key->name : "");
}

static const authz_provider group_provider = { authz_group, authz_parse };
static const authz_provider key_provider = { authz_key, authz_parse };

void tb_auth_register_hooks(apr_pool_t *p)
{
    ap_hook_check_authn(auth_check_authn, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_force_authn(auth_force_authn, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_note_auth_failure(auth_note_failure, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "tokenbay-group",
                              AUTHZ_PROVIDER_VERSION, &group_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "tokenbay-key",
                              AUTHZ_PROVIDER_VERSION, &key_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
}

int tb_auth_model_allowed(const tb_keyinfo_t *info, const char *model_id)
{
    return tb_allowlist_permits(info->key_models, model_id)
        && tb_allowlist_permits(info->group_models, model_id);
}
