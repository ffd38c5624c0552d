/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "mod_tokenbay_private.h"

#include <string.h>

#include <apr_buckets.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

#include "mod_tokenbay_auth.h"
#include "mod_tokenbay_config.h"
#include "mod_tokenbay_respond.h"
#include "tb_json.h"
#include "tb_util.h"

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
        static const char digits[] = "0123456789abcdef";
        apr_uint32_t v[3];

        v[0] = tb_random_u32();
        v[1] = tb_random_u32();
        v[2] = tb_random_u32();
        memcpy(raw, v, sizeof(raw));
        for (i = 0; i < sizeof(raw); ++i) {
            hex[2 * i] = digits[raw[i] >> 4];
            hex[2 * i + 1] = digits[raw[i] & 0xf];
        }
        hex[2 * sizeof(raw)] = '\0';
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

/* A key was presented and refused (RFC 6750: error="invalid_token"). */
static int token_refused(const tb_error_t *err)
{
    return err->code && (!strcmp(err->code, "invalid_api_key")
                         || !strcmp(err->code, "api_key_disabled")
                         || !strcmp(err->code, "api_key_expired"));
}

/* The headers and note that go with an error, whoever writes it. A 401
 * carries the Bearer challenge when gateway keys are what this URL takes
 * (another AuthType's challenge is its own). */
static void error_meta(request_rec *r, const tb_error_t *err, int challenge)
{
    if (err->status == HTTP_UNAUTHORIZED && challenge) {
        apr_table_setn(r->err_headers_out, "WWW-Authenticate",
                       token_refused(err)
                       ? "Bearer realm=\"tokenbay\", error=\"invalid_token\""
                       : "Bearer realm=\"tokenbay\"");
    }
    if (err->retry_after_ms >= 0) {
        /* OpenAI's own pair: SDKs prefer the milliseconds */
        apr_table_setn(r->err_headers_out, "retry-after-ms",
                       apr_ltoa(r->pool, err->retry_after_ms));
        apr_table_setn(r->err_headers_out, "Retry-After",
                       apr_ltoa(r->pool, (err->retry_after_ms + 999) / 1000));
    }
    else if (err->retry_after >= 0) {
        apr_table_setn(r->err_headers_out, "Retry-After",
                       apr_ltoa(r->pool, err->retry_after));
    }
    apr_table_setn(r->notes, "TOKENBAY_ERROR", err->code ? err->code : err->type);
}

int tb_respond_error(request_rec *r, const tb_error_t *err)
{
    const char *body = tb_json_error_body(r->pool, err->message, err->type,
                                          err->param, err->code);

    error_meta(r, err, 1);
    return tb_respond_body(r, err->status, "application/json", body,
                           strlen(body));
}

/* ---- httpd's own error answers, in the OpenAI shape --------------------- */

/* Errors httpd answers itself on a gateway URL (a refusal by Require, a
 * body over LimitRequestBody, a request timeout, ...) would otherwise be
 * HTML pages that no SDK can read. ap_send_error_response runs the
 * insert_error_filter hook before it writes its page: this filter drops
 * the page and writes the OpenAI error instead. */

static ap_filter_rec_t *error_filter_handle;

static const struct {
    int status;
    const char *type;
    const char *code;
    const char *message;
} status_errors[] = {
    { HTTP_BAD_REQUEST, "invalid_request_error", "bad_request",
      "The request could not be understood." },
    { HTTP_UNAUTHORIZED, "invalid_request_error", "authentication_required",
      "This URL needs a valid API key." },
    { HTTP_FORBIDDEN, "permission_error", "permission_denied",
      "Access to this URL is denied." },
    { HTTP_NOT_FOUND, "invalid_request_error", "unknown_url",
      "Invalid URL." },
    { HTTP_METHOD_NOT_ALLOWED, "invalid_request_error", "method_not_allowed",
      "This method is not allowed for this URL." },
    { HTTP_REQUEST_TIME_OUT, "invalid_request_error", "request_timeout",
      "The request was not received in time." },
    { HTTP_LENGTH_REQUIRED, "invalid_request_error", "length_required",
      "The request needs a Content-Length or a chunked body." },
    { HTTP_REQUEST_ENTITY_TOO_LARGE, "invalid_request_error", "request_too_large",
      "The request body is too large." },
    { HTTP_REQUEST_URI_TOO_LARGE, "invalid_request_error", "uri_too_long",
      "The URL is too long." },
    { HTTP_TOO_MANY_REQUESTS, "rate_limit_error", "rate_limit_exceeded",
      "Too many requests; retry later." },
    { HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE, "invalid_request_error",
      "headers_too_large", "The request headers are too large." },
    { HTTP_INTERNAL_SERVER_ERROR, "api_error", "internal_error",
      "The gateway failed to answer this request; its error log says why." },
    { HTTP_NOT_IMPLEMENTED, "invalid_request_error", "not_implemented",
      "This method is not implemented." },
    { HTTP_SERVICE_UNAVAILABLE, "api_error", "service_unavailable",
      "The gateway cannot serve this request right now; retry shortly." },
};

/* What to answer for r->status. A refusal by authentication says why; a
 * valid key refused by Require is a 403, whatever the AuthType made httpd
 * answer. */
static void error_for_status(request_rec *r, tb_error_t *err)
{
    const tb_error_t *why = tb_auth_failure(r);
    apr_size_t i;

    if (why && why->status == r->status) {
        *err = *why;
        return;
    }
    if ((r->status == HTTP_UNAUTHORIZED || r->status == HTTP_FORBIDDEN)
        && tb_auth_key(r)) {
        r->status = HTTP_FORBIDDEN;
        r->status_line = NULL;
        /* httpd asked for credentials (AuthType set): the key was fine */
        apr_table_unset(r->headers_out, "WWW-Authenticate");
        apr_table_unset(r->err_headers_out, "WWW-Authenticate");
        tb_error_set(err, HTTP_FORBIDDEN, "permission_error",
                     "permission_denied", NULL,
                     "This API key is not allowed to use this URL.");
        return;
    }
    for (i = 0; i < sizeof(status_errors) / sizeof(status_errors[0]); ++i) {
        if (status_errors[i].status == r->status) {
            tb_error_set(err, r->status, status_errors[i].type,
                         status_errors[i].code, NULL, status_errors[i].message);
            return;
        }
    }
    /* "404 Not Found" -> "Not Found." */
    tb_error_set(err, r->status,
                 r->status >= 500 ? "api_error" : "invalid_request_error",
                 NULL, NULL, apr_pstrcat(r->pool,
                                         ap_get_status_line(r->status) + 4,
                                         ".", NULL));
}

static apr_status_t error_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    apr_bucket *e, *next;

    if (!f->ctx) {
        tb_error_t err;
        const char *body;
        apr_size_t len;

        if (ap_is_HTTP_REDIRECT(r->status) || AP_STATUS_IS_HEADER_ONLY(r->status)
            || r->status < 400) {
            ap_remove_output_filter(f);
            return ap_pass_brigade(f->next, bb);
        }
        f->ctx = f;   /* the JSON is written once; the page never */
        error_for_status(r, &err);
        tb_request_id(r);
        error_meta(r, &err, tb_auth_applies(r));
        body = tb_json_error_body(r->pool, err.message, err.type, err.param,
                                  err.code);
        len = strlen(body);
        ap_set_content_type(r, "application/json");
        ap_set_content_length(r, len);
        APR_BRIGADE_INSERT_HEAD(bb, apr_bucket_pool_create(body, len, r->pool,
                                                           f->c->bucket_alloc));
        e = APR_BUCKET_NEXT(APR_BRIGADE_FIRST(bb));
    }
    else {
        e = APR_BRIGADE_FIRST(bb);
    }
    /* keep EOS and FLUSH, drop httpd's page */
    for (; e != APR_BRIGADE_SENTINEL(bb); e = next) {
        next = APR_BUCKET_NEXT(e);
        if (!APR_BUCKET_IS_METADATA(e)) {
            apr_bucket_delete(e);
        }
    }
    return ap_pass_brigade(f->next, bb);
}

static void insert_error_filter(request_rec *r)
{
    if (tb_conf_enabled(tb_conf_dir(r)) == 1 || tb_auth_applies(r)) {
        ap_add_output_filter_handle(error_filter_handle, NULL, r, r->connection);
    }
}

void tb_respond_register_hooks(apr_pool_t *p)
{
    (void)p;
    error_filter_handle = ap_register_output_filter("TOKENBAY_ERROR",
                                                    error_filter, NULL,
                                                    AP_FTYPE_CONTENT_SET);
    ap_hook_insert_error_filter(insert_error_filter, NULL, NULL,
                                APR_HOOK_MIDDLE);
}
