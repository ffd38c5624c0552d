/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef MOD_TOKENBAY_RESPOND_H
#define MOD_TOKENBAY_RESPOND_H

#include <httpd.h>

/* A gateway error, decided by whoever found it and written by
 * tb_respond_error in the one OpenAI shape. */
typedef struct tb_error_t {
    int status;
    const char *type;      /* invalid_request_error, permission_error, ... */
    const char *code;      /* machine-readable, may be NULL */
    const char *param;     /* offending request field, may be NULL */
    const char *message;   /* for humans; never a key or credential */
    long retry_after;      /* seconds for Retry-After, -1 for none */
    long retry_after_ms;   /* or milliseconds: retry-after-ms and a
                            * Retry-After rounded up; -1 for none */
} tb_error_t;

static APR_INLINE void tb_error_set(tb_error_t *err, int status,
                                    const char *type, const char *code,
                                    const char *param, const char *message)
{
    err->status = status;
    err->type = type;
    err->code = code;
    err->param = param;
    err->message = message;
    err->retry_after = -1;
    err->retry_after_ms = -1;
}

/* The request id for this request (mod_unique_id's when loaded), created
 * on first use, sent as x-request-id on every response and kept in the
 * note TOKENBAY_REQUEST_ID. */
const char *tb_request_id(request_rec *r);

/* Write a complete response; the handler returns what these return. */
int tb_respond_body(request_rec *r, int status, const char *content_type,
                    const char *body, apr_size_t len);
int tb_respond_error(request_rec *r, const tb_error_t *err);

/* The error filter: httpd's own error pages on gateway URLs (refusals by
 * Require, LimitRequestBody, timeouts, ...) become OpenAI errors. */
void tb_respond_register_hooks(apr_pool_t *p);

#endif /* MOD_TOKENBAY_RESPOND_H */
