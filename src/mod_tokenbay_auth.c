/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "mod_tokenbay_private.h"

#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <http_log.h>

#include "mod_tokenbay_auth.h"
#include "mod_tokenbay_state.h"
#include "tb_sha256.h"
#include "tb_util.h"

/* Longest key we look up; anything longer cannot be one of ours. */
#define MAX_KEY_LEN 256

/* The presented key, or NULL. Both spellings real clients use: OpenAI's
 * SDKs send Authorization: Bearer, Anthropic's send x-api-key. */
static const char *presented_key(request_rec *r)
{
    const char *v = apr_table_get(r->headers_in, "Authorization");

    if (v) {
        while (apr_isspace(*v)) {
            ++v;
        }
        if (strncasecmp(v, "Bearer", 6) || !apr_isspace(v[6])) {
            return "";   /* present, but not a bearer token */
        }
        v += 6;
        while (apr_isspace(*v)) {
            ++v;
        }
        return v;
    }
    return apr_table_get(r->headers_in, "x-api-key");
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

apr_status_t tb_auth_check(request_rec *r, tb_keyinfo_t *info,
                           tb_error_t *err)
{
    char hash[TB_SHA256_HEX_LEN + 1];
    const char *key = presented_key(r);
    apr_status_t rv;

    if (!key) {
        tb_error_set(err, HTTP_UNAUTHORIZED, "invalid_request_error",
                     "missing_api_key", NULL,
                     "You didn't provide an API key. Send it as "
                     "'Authorization: Bearer YOUR_KEY'.");
        return APR_EACCES;
    }
    if (!key_well_formed(key)) {
        tb_error_set(err, HTTP_UNAUTHORIZED, "invalid_request_error",
                     "invalid_api_key", NULL, "Incorrect API key provided.");
        return APR_EACCES;
    }
    tb_sha256_hex(key, strlen(key), hash);
    rv = tb_state_key_lookup(r, hash, info);
    if (rv != APR_SUCCESS) {
        tb_error_set(err, HTTP_SERVICE_UNAVAILABLE, "api_error",
                     "database_unavailable", NULL,
                     "The gateway cannot check API keys right now; "
                     "retry shortly.");
        err->retry_after = 1;
        return rv;
    }
    if (!info->found) {
        tb_error_set(err, HTTP_UNAUTHORIZED, "invalid_request_error",
                     "invalid_api_key", NULL,
                     apr_psprintf(r->pool, "Incorrect API key provided: %s.",
                                  tb_mask_secret(r->pool, key, 3)));
        return APR_EACCES;
    }
    r->user = apr_pstrcat(r->pool, info->prefix, "..", info->last4, NULL);
    apr_table_setn(r->notes, "TOKENBAY_KEY_ID", apr_ltoa(r->pool, info->key_id));
    apr_table_setn(r->notes, "TOKENBAY_GROUP", info->group_name);
    if (!info->key_active) {
        tb_error_set(err, HTTP_UNAUTHORIZED, "invalid_request_error",
                     "api_key_disabled", NULL, "This API key has been disabled.");
        return APR_EACCES;
    }
    if (info->expires && info->expires <= apr_time_sec(apr_time_now())) {
        tb_error_set(err, HTTP_UNAUTHORIZED, "invalid_request_error",
                     "api_key_expired", NULL, "This API key has expired.");
        return APR_EACCES;
    }
    if (!info->group_active) {
        tb_error_set(err, HTTP_FORBIDDEN, "permission_error", "group_disabled",
                     NULL, "The group of this API key has been disabled.");
        return APR_EACCES;
    }
    return APR_SUCCESS;
}

int tb_auth_model_allowed(const tb_keyinfo_t *info, const char *model_id)
{
    return tb_allowlist_permits(info->key_models, model_id)
        && tb_allowlist_permits(info->group_models, model_id);
}
