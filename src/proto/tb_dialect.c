/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include <string.h>

#include <apr_strings.h>

#include "tb_dialect.h"

/* Bound of one encoded event: larger than any event an upstream may send
 * (the stream's own bound), so encoding never fails on size. */
#define MAX_ENCODED ((apr_size_t)64 * 1024 * 1024)

/* ---- the registry ------------------------------------------------------------------ */

static const tb_dialect_t *const dialects[] = {
    &tb_dialect_chat,
    &tb_dialect_responses,
};

const tb_dialect_t *tb_dialect_find(const char *name)
{
    apr_size_t i;

    for (i = 0; name && i < sizeof(dialects) / sizeof(dialects[0]); ++i) {
        if (!strcmp(dialects[i]->name, name)) {
            return dialects[i];
        }
    }
    return NULL;
}

const tb_dialect_t *tb_dialect_get(tb_dialect_id_t id)
{
    apr_size_t i;

    for (i = 0; i < sizeof(dialects) / sizeof(dialects[0]); ++i) {
        if (dialects[i]->id == id) {
            return dialects[i];
        }
    }
    return NULL;
}

int tb_dialect_can_serve(const tb_dialect_t *client, const tb_dialect_t *up)
{
    if (!client || !up) {
        return 0;
    }
    if (client == up) {
        return client->splice != NULL;
    }
    /* converted: the client's side parses into the IR and renders back,
     * the account's side emits from it and decodes its answers */
    return client->parse && client->render && client->encoder_create
        && up->emit && up->parse_response && up->decoder_create;
}

tb_fit_t tb_dialect_fit(const tb_dialect_t *client, const tb_req_info_t *info,
                        const tb_dialect_t *up, unsigned caps)
{
    if (!tb_dialect_can_serve(client, up)) {
        return TB_FIT_DIALECT;
    }
    if (((info->needs & TB_NEED_NATIVE) && up != client)
        || ((info->needs & TB_NEED_STORE) && !(caps & TB_CAP_STORE))
        || ((info->needs & TB_NEED_COMPACT) && !(caps & TB_CAP_COMPACT))) {
        return TB_FIT_NEEDS;
    }
    return TB_FIT_OK;
}

static const struct {
    const char *name;
    unsigned cap;
} cap_names[] = {
    { "stream_usage", TB_CAP_STREAM_USAGE },
    { "store", TB_CAP_STORE },
    { "compact", TB_CAP_COMPACT },
};

unsigned tb_caps_parse(const char *list, const char **punknown, apr_pool_t *p)
{
    unsigned caps = 0;
    const char *s = list;

    if (punknown) {
        *punknown = NULL;
    }
    while (s && *s) {
        apr_size_t n, i;
        int known = 0;

        while (*s == ',' || *s == ' ') {
            ++s;
        }
        n = strcspn(s, ", ");
        if (!n) {
            break;
        }
        for (i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); ++i) {
            if (strlen(cap_names[i].name) == n && !strncmp(s, cap_names[i].name, n)) {
                caps |= cap_names[i].cap;
                known = 1;
            }
        }
        if (!known && punknown && !*punknown) {
            *punknown = apr_pstrmemdup(p, s, n);
        }
        s += n;
    }
    return caps;
}

/* ---- SSE output ------------------------------------------------------------------------ */

apr_status_t tb_sse_write(tb_buf_t *out, apr_pool_t *p, const char *event,
                          const char *data, apr_size_t len)
{
    apr_status_t rv = APR_SUCCESS;
    const char *end = data + len, *line = data;

    if (event) {
        if ((rv = tb_buf_append(out, p, "event: ", 7, MAX_ENCODED)) != APR_SUCCESS
            || (rv = tb_buf_append(out, p, event, strlen(event), MAX_ENCODED))
               != APR_SUCCESS
            || (rv = tb_buf_append(out, p, "\n", 1, MAX_ENCODED)) != APR_SUCCESS) {
            return rv;
        }
    }
    /* NB: data with line breaks takes one "data:" line per line, or the
     * client would read the rest as other fields */
    for (;;) {
        const char *nl = memchr(line, '\n', end - line);
        apr_size_t n = (nl ? nl : end) - line;

        if ((rv = tb_buf_append(out, p, "data: ", 6, MAX_ENCODED)) != APR_SUCCESS
            || (rv = tb_buf_append(out, p, line, n, MAX_ENCODED)) != APR_SUCCESS
            || (rv = tb_buf_append(out, p, "\n", 1, MAX_ENCODED)) != APR_SUCCESS) {
            return rv;
        }
        if (!nl) {
            break;
        }
        line = nl + 1;
    }
    return tb_buf_append(out, p, "\n", 1, MAX_ENCODED);
}

apr_status_t tb_sse_write_json(tb_buf_t *out, apr_pool_t *p,
                               const char *event, const json_t *json)
{
    apr_size_t len;
    const char *data = tb_json_dump(p, json, &len);

    return data ? tb_sse_write(out, p, event, data, len) : APR_ENOMEM;
}

/* ---- errors ------------------------------------------------------------------------------ */

apr_status_t tb_ir_error_conversion(tb_ir_error_t *err)
{
    err->status = 500;
    err->type = "api_error";
    err->code = "conversion_failed";
    err->param = NULL;
    err->message = "The request could not be converted for this model's provider.";
    return APR_EGENERAL;
}

apr_status_t tb_ir_error_invalid(tb_ir_error_t *err, const char *code,
                                 const char *param, const char *message)
{
    err->status = 400;
    err->type = "invalid_request_error";
    err->code = code;
    err->param = param;
    err->message = message;
    return APR_EINVAL;
}

void tb_openai_error_read(apr_pool_t *p, int status, const char *body,
                          apr_size_t len, tb_ir_error_t *err)
{
    json_t *root = NULL;
    const json_t *e;

    memset(err, 0, sizeof(*err));
    err->status = status;
    /* NB: an error inside a stream (status 0) that does not say what it
     * is counts as the upstream's, not the request's: failover */
    err->type = status >= 500 || status == 0 ? "server_error" : "invalid_request_error";
    if (body && len
        && tb_json_parse(&root, p, body, len, NULL) == APR_SUCCESS
        && json_is_object(e = json_object_get(root, "error"))) {
        err->message = tb_jstr(e, "message");
        err->type = tb_jstr(e, "type") ? tb_jstr(e, "type") : err->type;
        err->code = tb_jstr(e, "code");
        err->param = tb_jstr(e, "param");
    }
    else if (root && json_is_string(json_object_get(root, "error"))) {
        err->message = tb_jstr(root, "error");
    }
    else if (root && json_is_string(json_object_get(root, "message"))) {
        err->message = tb_jstr(root, "message");
    }
    if (!err->message && body && len) {
        /* a cut, or an HTML page in another charset, must still be text
         * JSON can carry */
        err->message = tb_utf8_clean(p, body, len > 200 ? 200 : len);
    }
    if (!err->message) {
        err->message = apr_psprintf(p, "The upstream answered HTTP %d.", status);
    }
}

const char *tb_openai_error_render(apr_pool_t *p, const tb_ir_error_t *err)
{
    return tb_json_error_body(p, err->message, err->type ? err->type : "api_error",
                              err->param, err->code);
}

/* ---- JSON helpers --------------------------------------------------------------------------- */

json_t *tb_json_usage_member(apr_pool_t *p, const char *body, apr_size_t len)
{
    apr_size_t start, vlen;
    json_t *usage;

    if (tb_json_member_span(body, len, "usage", &start, &vlen) != APR_SUCCESS
        || tb_json_parse(&usage, p, body + start, vlen, NULL) != APR_SUCCESS
        || !json_is_object(usage)) {
        return NULL;
    }
    return usage;
}

const char *tb_jstr(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

json_t *tb_jset_str(json_t *obj, const char *key, const char *val)
{
    if (val) {
        json_object_set_new(obj, key, json_string(val));
    }
    return obj;
}
