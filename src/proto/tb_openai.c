/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "tb_catalog.h"
#include "tb_openai.h"

apr_status_t tb_openai_check_model(apr_pool_t *p, const tb_jdoc_t *d,
                                   tb_req_info_t *info, tb_ir_error_t *err)
{
    int n = tb_jdoc_member(d, 0, "model");

    if (n < 0) {
        return tb_ir_error_invalid(err, "invalid_value", "model",
                                   "Missing required parameter: 'model'.");
    }
    info->model = tb_jdoc_string(d, n, p);
    if (!info->model || !*info->model) {
        return tb_ir_error_invalid(err, "invalid_value", "model",
                                   "Invalid 'model': expected a non-empty string.");
    }
    return APR_SUCCESS;
}

apr_status_t tb_openai_check_stream(const tb_jdoc_t *d, tb_req_info_t *info,
                                    tb_ir_error_t *err)
{
    int n = tb_jdoc_member(d, 0, "stream");

    if (n >= 0 && !tb_jdoc_is(d, n, "true") && !tb_jdoc_is(d, n, "false")
        && !tb_jdoc_is(d, n, "null")) {
        return tb_ir_error_invalid(err, "invalid_value", "stream",
                                   "Invalid 'stream': expected a boolean.");
    }
    info->stream = tb_jdoc_is(d, n, "true");
    return APR_SUCCESS;
}

static int edit_cmp(const void *a, const void *b)
{
    const tb_splice_t *x = a, *y = b;

    return x->start < y->start ? -1 : x->start > y->start;
}

apr_array_header_t *tb_splice_iov(apr_pool_t *p, const char *body,
                                  apr_size_t len, tb_splice_t *edits, int n)
{
    apr_array_header_t *iov = apr_array_make(p, 2 * n + 1, sizeof(tb_iovec_t));
    apr_size_t at = 0;
    int i;

    qsort(edits, n, sizeof(*edits), edit_cmp);
    for (i = 0; i < n; ++i) {
        tb_iovec_t *v;

        if (!edits[i].repl || edits[i].start < at) {
            continue;   /* an empty edit, or one overlapping the last */
        }
        if (edits[i].start > at) {
            v = apr_array_push(iov);
            v->base = body + at;
            v->len = edits[i].start - at;
        }
        v = apr_array_push(iov);
        v->base = edits[i].repl;
        v->len = strlen(edits[i].repl);
        at = edits[i].start + edits[i].len;
    }
    if (at < len) {
        tb_iovec_t *v = apr_array_push(iov);
        v->base = body + at;
        v->len = len - at;
    }
    return iov;
}

void tb_openai_model_edit(apr_pool_t *p, const tb_jdoc_t *d, const char *model,
                          tb_splice_t *edit)
{
    int n = tb_jdoc_member(d, 0, "model");
    const char *quoted = tb_json_quote(p, model);

    edit->repl = NULL;
    if (n < 0) {
        return;
    }
    edit->start = d->nodes[n].start;
    edit->len = d->nodes[n].len;
    if (edit->len != strlen(quoted) || memcmp(d->buf + edit->start, quoted, edit->len)) {
        edit->repl = quoted;
    }
}

static void get_number(const json_t *root, const char *key, double *pv)
{
    const json_t *v = json_object_get(root, key);

    if (json_is_number(v)) {
        *pv = json_number_value(v);
    }
}

void tb_openai_parse_common(apr_pool_t *p, const json_t *root, tb_ir_req_t *req)
{
    const json_t *v;

    get_number(root, "temperature", &req->temperature);
    get_number(root, "top_p", &req->top_p);
    get_number(root, "presence_penalty", &req->presence_penalty);
    get_number(root, "frequency_penalty", &req->frequency_penalty);
    if ((v = json_object_get(root, "seed")) && json_is_integer(v)) {
        req->seed = (json_t *)v;
    }
    if ((v = json_object_get(root, "top_logprobs")) && json_is_integer(v)) {
        req->top_logprobs = (long)json_integer_value(v);
    }
    if ((v = json_object_get(root, "parallel_tool_calls")) && json_is_boolean(v)) {
        req->parallel_tool_calls = json_is_true(v);
    }
    if ((v = json_object_get(root, "store")) && json_is_boolean(v)) {
        req->store = json_is_true(v);
    }
    if ((v = json_object_get(root, "metadata")) && json_is_object(v)) {
        req->metadata = (json_t *)v;
    }
    req->user = tb_jstr(root, "user");
    req->safety_identifier = tb_jstr(root, "safety_identifier");
    req->prompt_cache_key = tb_jstr(root, "prompt_cache_key");
    req->service_tier = tb_jstr(root, "service_tier");
}

static void set_number(json_t *root, const char *key, double v)
{
    if (!isnan(v)) {
        json_object_set_new(root, key, json_real(v));
    }
}

void tb_openai_emit_sampling(json_t *root, const tb_ir_req_t *req)
{
    set_number(root, "temperature", req->temperature);
    set_number(root, "top_p", req->top_p);
    set_number(root, "presence_penalty", req->presence_penalty);
    set_number(root, "frequency_penalty", req->frequency_penalty);
    if (req->seed) {
        json_object_set(root, "seed", req->seed);
    }
}

void tb_openai_emit_identity(json_t *root, const tb_ir_req_t *req)
{
    if (req->metadata) {
        json_object_set(root, "metadata", req->metadata);
    }
    tb_jset_str(root, "user", req->user);
    tb_jset_str(root, "safety_identifier", req->safety_identifier);
    tb_jset_str(root, "prompt_cache_key", req->prompt_cache_key);
    tb_jset_str(root, "service_tier", req->service_tier);
}

void tb_openai_usage_read(const json_t *usage, const tb_openai_usage_names_t *n,
                          tb_ir_usage_t *u)
{
    const json_t *in = json_object_get(usage, n->input_details);
    const json_t *out = json_object_get(usage, n->output_details);

    tb_openai_count(usage, n->input, &u->input);
    tb_openai_count(usage, n->output, &u->output);
    tb_openai_count(usage, "total_tokens", &u->total);
    tb_openai_count(in, "cached_tokens", &u->input_cached);
    tb_openai_count(in, "cache_write_tokens", &u->input_cache_write);
    tb_openai_count(out, "reasoning_tokens", &u->output_reasoning);
}

int tb_openai_usage_scan(apr_pool_t *p, const char *body, apr_size_t len,
                         const tb_openai_usage_names_t *n, tb_ir_usage_t *u)
{
    json_t *usage = tb_json_usage_member(p, body, len);

    if (!usage) {
        return 0;
    }
    tb_openai_usage_read(usage, n, u);
    return 1;
}

void tb_openai_auth(apr_pool_t *p, const char *credential,
                    apr_array_header_t *headers)
{
    if (credential && *credential) {
        APR_ARRAY_PUSH(headers, const char *) =
            apr_pstrcat(p, "Authorization: Bearer ", credential, NULL);
    }
}

void tb_openai_count(const json_t *obj, const char *name, long *pv)
{
    const json_t *v = json_object_get(obj, name);

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *pv = (long)json_integer_value(v);
    }
}

const char *tb_openai_models_body(apr_pool_t *p,
                                  const apr_array_header_t *entries)
{
    json_t *data = json_array(), *body;
    const char *out;
    int i;

    for (i = 0; i < entries->nelts; ++i) {
        const tb_model_entry_t *e = &APR_ARRAY_IDX(entries, i, tb_model_entry_t);
        json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s}",
                              "id", e->id, "object", "model",
                              "created", (json_int_t)e->model->created,
                              "owned_by", e->model->owned_by));
    }
    body = tb_json_pool_own(p, json_pack("{s:s, s:o}", "object", "list",
                                         "data", data));
    out = body ? tb_json_dump(p, body, NULL) : NULL;
    return out ? out : "{\"object\":\"list\",\"data\":[]}";
}
