/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "mod_tokenbay_private.h"

#include <string.h>

#include <apr_buckets.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <util_filter.h>

#include "mod_tokenbay_respond.h"
#include "tb_json.h"
#include "tb_util.h"

void tb_error_set(tb_error_t *err, int status, const char *type,
                  const char *code, const char *param, const char *message)
{
    err->status = status;
    err->type = type;
    err->code = code;
    err->param = param;
    err->message = message;
    err->retry_after = -1;
}

const char *tb_request_id(request_rec *r)
{
    const char *id = apr_table_get(r->notes, "TOKENBAY_REQUEST_ID");
    unsigned char raw[12];
    char hex[sizeof(raw) * 2 + 1];
    apr_size_t i;

    if (id) {
        return id;
    }
    id = apr_table_get(r->subprocess_env, "UNIQUE_ID");
    if (!id) {
        /* an identifier, not a secret: no system call per request */
        apr_uint32_t v[3];

        v[0] = tb_random_u32();
        v[1] = tb_random_u32();
        v[2] = tb_random_u32();
        memcpy(raw, v, sizeof(raw));
        for (i = 0; i < sizeof(raw); ++i) {
            apr_snprintf(hex + 2 * i, 3, "%02x", raw[i]);
        }
        id = apr_pstrcat(r->pool, "req_", hex, NULL);
    }
    apr_table_setn(r->notes, "TOKENBAY_REQUEST_ID", id);
    apr_table_setn(r->err_headers_out, "x-request-id", id);
    return id;
}

int tb_respond_body(request_rec *r, int status, const char *content_type,
                    const char *body, apr_size_t len)
{
    conn_rec *c = r->connection;
    apr_bucket_brigade *bb;
    apr_status_t rv;

    tb_request_id(r);
    r->status = status;
    ap_set_content_type(r, content_type ? content_type : "application/json");
    ap_set_content_length(r, len);
    if (r->header_only) {
        return OK;
    }
    bb = apr_brigade_create(r->pool, c->bucket_alloc);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_pool_create(body, len, r->pool,
                                                       c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(c->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
    apr_brigade_cleanup(bb);
    if (rv != APR_SUCCESS && !c->aborted) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, TB_LOGNO(30)
                      "writing the response failed");
        return AP_FILTER_ERROR;
    }
    return OK;
}

int tb_respond_error(request_rec *r, const tb_error_t *err)
{
    const char *body = tb_json_error_body(r->pool, err->message, err->type,
                                          err->param, err->code);

    if (err->status == HTTP_UNAUTHORIZED) {
        apr_table_setn(r->err_headers_out, "WWW-Authenticate",
                       err->code && strcmp(err->code, "missing_api_key")
                       ? "Bearer realm=\"tokenbay\", error=\"invalid_token\""
                       : "Bearer realm=\"tokenbay\"");
    }
    if (err->retry_after >= 0) {
        apr_table_setn(r->err_headers_out, "Retry-After",
                       apr_ltoa(r->pool, err->retry_after));
    }
    apr_table_setn(r->notes, "TOKENBAY_ERROR", err->code ? err->code : err->type);
    return tb_respond_body(r, err->status, "application/json", body,
                           strlen(body));
}
