/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include <string.h>

#include <apr_strings.h>

#include "tb_catalog.h"
#include "tb_json.h"
#include "tb_proto_openai.h"

static apr_status_t invalid(tb_openai_invalid_t *inv, const char *msg,
                            const char *param)
{
    inv->message = msg;
    inv->param = param;
    inv->malformed = 0;
    return APR_EINVAL;
}

/* The same rules over a parsed tree: the fallback for bodies the raw
 * scanner cannot vouch for (member names spelled with escapes). */
static apr_status_t chat_check_tree(apr_pool_t *p, const json_t *root,
                                    tb_openai_req_t *preq,
                                    tb_openai_invalid_t *pinvalid)
{
    const json_t *model, *messages, *stream;
    size_t i;

    model = json_object_get(root, "model");
    if (!model) {
        return invalid(pinvalid, "Missing required parameter: 'model'.", "model");
    }
    if (!json_is_string(model) || !json_string_length(model)) {
        return invalid(pinvalid, "Invalid 'model': expected a non-empty string.",
                       "model");
    }
    messages = json_object_get(root, "messages");
    if (!messages) {
        return invalid(pinvalid, "Missing required parameter: 'messages'.",
                       "messages");
    }
    if (!json_is_array(messages) || !json_array_size(messages)) {
        return invalid(pinvalid,
                       "Invalid 'messages': expected a non-empty array.",
                       "messages");
    }
    for (i = 0; i < json_array_size(messages); ++i) {
        const json_t *m = json_array_get(messages, i);
        if (!json_is_object(m) || !json_is_string(json_object_get(m, "role"))) {
            return invalid(pinvalid, apr_psprintf(p,
                           "Invalid 'messages[%lu]': expected an object with "
                           "a string 'role'.", (unsigned long)i),
                           apr_psprintf(p, "messages[%lu]", (unsigned long)i));
        }
    }
    stream = json_object_get(root, "stream");
    if (stream && !json_is_boolean(stream) && !json_is_null(stream)) {
        return invalid(pinvalid, "Invalid 'stream': expected a boolean.", "stream");
    }
    preq->model = json_string_value(model);
    preq->stream = json_is_true(stream);
    preq->include_usage = json_is_true(json_object_get(
        json_object_get(root, "stream_options"), "include_usage"));
    return APR_SUCCESS;
}

/* A member's raw value, or NULL when absent. NB: *pesc reports member
 * names the scanner cannot read (escapes); the caller then uses a tree. */
static const char *member(const char *body, apr_size_t len, const char *key,
                          apr_size_t *pvlen, int *pesc)
{
    apr_size_t start;

    switch (tb_json_member_span(body, len, key, &start, pvlen)) {
    case APR_SUCCESS:
        return body + start;
    case APR_NOTFOUND:
        return NULL;
    default:
        *pesc = 1;
        return NULL;
    }
}

static int raw_is(const char *v, apr_size_t vlen, const char *lit)
{
    return v && vlen == strlen(lit) && !memcmp(v, lit, vlen);
}

apr_status_t tb_openai_chat_check(apr_pool_t *p, const char *body,
                                  apr_size_t len, tb_openai_req_t *preq,
                                  tb_openai_invalid_t *pinvalid)
{
    const char *perr = NULL, *v, *model;
    apr_size_t vlen, i = 0, pos = 0, estart, elen;
    int esc = 0;

    if (tb_json_validate(p, body, len, &perr) != APR_SUCCESS) {
        invalid(pinvalid, apr_psprintf(p, "The request body is not valid "
                                       "JSON: %s.", perr), NULL);
        pinvalid->malformed = 1;
        return APR_EINVAL;
    }
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n'
                       || body[i] == '\r')) {
        ++i;
    }
    if (i >= len || body[i] != '{') {
        return invalid(pinvalid, "The request body must be a JSON object.", NULL);
    }
    v = member(body, len, "model", &vlen, &esc);
    if (esc) {
        goto tree;
    }
    if (!v) {
        return invalid(pinvalid, "Missing required parameter: 'model'.", "model");
    }
    model = tb_json_string_value(p, v, vlen);
    if (!model || !*model) {
        return invalid(pinvalid, "Invalid 'model': expected a non-empty string.",
                       "model");
    }
    v = member(body, len, "messages", &vlen, &esc);
    if (!v) {
        return invalid(pinvalid, "Missing required parameter: 'messages'.",
                       "messages");
    }
    for (i = 0; ; ++i) {
        const char *rv;
        apr_size_t rlen;
        int resc = 0;
        apr_status_t st = tb_json_array_next(v, vlen, &pos, &estart, &elen);

        if (st == APR_EOF && i > 0) {
            break;
        }
        if (st != APR_SUCCESS) {
            return invalid(pinvalid,
                           "Invalid 'messages': expected a non-empty array.",
                           "messages");
        }
        rv = v[estart] == '{' ? member(v + estart, elen, "role", &rlen, &resc) : NULL;
        if (resc) {
            goto tree;
        }
        if (!rv || *rv != '"') {
            return invalid(pinvalid, apr_psprintf(p,
                           "Invalid 'messages[%lu]': expected an object with "
                           "a string 'role'.", (unsigned long)i),
                           apr_psprintf(p, "messages[%lu]", (unsigned long)i));
        }
    }
    v = member(body, len, "stream", &vlen, &esc);
    if (v && !raw_is(v, vlen, "true") && !raw_is(v, vlen, "false")
        && !raw_is(v, vlen, "null")) {
        return invalid(pinvalid, "Invalid 'stream': expected a boolean.", "stream");
    }
    preq->model = model;
    preq->stream = raw_is(v, vlen, "true");
    preq->include_usage = 0;
    v = member(body, len, "stream_options", &vlen, &esc);
    if (v && *v == '{') {
        const char *iu = member(v, vlen, "include_usage", &vlen, &esc);
        preq->include_usage = raw_is(iu, vlen, "true");
    }
    if (esc) {
        goto tree;
    }
    return APR_SUCCESS;

tree:
    /* member names spelled with escapes: the rules over a parsed tree */
    {
        json_t *root;
        if (tb_json_parse(&root, p, body, len, NULL) != APR_SUCCESS) {
            return invalid(pinvalid, "The request body is not valid JSON.", NULL);
        }
        return chat_check_tree(p, root, preq, pinvalid);
    }
}

void tb_usage_init(tb_usage_t *u)
{
    u->prompt_tokens = u->completion_tokens = u->total_tokens = -1;
}

static void read_count(const json_t *usage, const char *name, long *pv)
{
    const json_t *v = json_object_get(usage, name);

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *pv = (long)json_integer_value(v);
    }
}

int tb_openai_usage_read(const json_t *obj, tb_usage_t *u)
{
    const json_t *usage = json_object_get(obj, "usage");

    if (!json_is_object(usage)) {
        return 0;
    }
    read_count(usage, "prompt_tokens", &u->prompt_tokens);
    read_count(usage, "completion_tokens", &u->completion_tokens);
    read_count(usage, "total_tokens", &u->total_tokens);
    return 1;
}

int tb_openai_usage_scan(apr_pool_t *p, const char *body, apr_size_t len,
                         tb_usage_t *u)
{
    apr_size_t start, vlen;
    json_t *usage, *wrap;

    if (tb_json_member_span(body, len, "usage", &start, &vlen) != APR_SUCCESS
        || tb_json_parse(&usage, p, body + start, vlen, NULL) != APR_SUCCESS
        || !json_is_object(usage)) {
        return 0;
    }
    wrap = tb_json_pool_own(p, json_pack("{s:O}", "usage", usage));
    return wrap ? tb_openai_usage_read(wrap, u) : 0;
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
