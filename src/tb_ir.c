/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include <math.h>
#include <string.h>

#include <apr_strings.h>

#include "tb_ir.h"
#include "tb_util.h"

tb_ir_req_t *tb_ir_req_create(apr_pool_t *p)
{
    tb_ir_req_t *req = apr_pcalloc(p, sizeof(*req));

    req->messages = apr_array_make(p, 8, sizeof(tb_ir_msg_t));
    req->tools = apr_array_make(p, 4, sizeof(tb_ir_tool_t));
    req->parallel_tool_calls = -1;
    req->temperature = req->top_p = NAN;
    req->presence_penalty = req->frequency_penalty = NAN;
    req->max_output_tokens = -1;
    req->n = -1;
    req->logprobs = -1;
    req->top_logprobs = -1;
    req->rf_strict = -1;
    req->store = -1;
    return req;
}

const char *tb_ir_flat_name(apr_pool_t *p, const char *ns, const char *name)
{
    const char *flat;
    apr_size_t len;
    apr_uint32_t h = 2166136261u;
    const char *c;

    if (!ns || !*ns) {
        return name;
    }
    flat = apr_pstrcat(p, ns, "__", name, NULL);
    len = strlen(flat);
    if (len <= 64) {
        return flat;
    }
    /* FNV-1a of the whole name keeps long names distinct */
    for (c = flat; *c; ++c) {
        h = (h ^ (unsigned char)*c) * 16777619u;
    }
    return apr_psprintf(p, "%.55s_%08x", flat, h);
}

const tb_ir_tool_t *tb_ir_req_tool(apr_pool_t *p, const tb_ir_req_t *req,
                                   const char *flat_name)
{
    int i;

    if (!req || !flat_name) {
        return NULL;
    }
    for (i = 0; i < req->tools->nelts; ++i) {
        const tb_ir_tool_t *t = &APR_ARRAY_IDX(req->tools, i, tb_ir_tool_t);

        if (t->kind != TB_TOOL_HOSTED && t->name
            && !strcmp(tb_ir_flat_name(p, t->ns, t->name), flat_name)) {
            return t;
        }
    }
    return NULL;
}

tb_ir_msg_t *tb_ir_msg_add(apr_pool_t *p, tb_ir_req_t *req, tb_role_t role)
{
    tb_ir_msg_t *m = apr_array_push(req->messages);

    memset(m, 0, sizeof(*m));
    m->role = role;
    m->parts = apr_array_make(p, 2, sizeof(tb_ir_part_t));
    return m;
}

tb_ir_part_t *tb_ir_part_add(apr_pool_t *p, apr_array_header_t *parts,
                             tb_part_kind_t kind)
{
    tb_ir_part_t *part = apr_array_push(parts);

    (void)p;
    memset(part, 0, sizeof(*part));
    part->kind = kind;
    return part;
}

tb_ir_resp_t *tb_ir_resp_create(apr_pool_t *p)
{
    tb_ir_resp_t *resp = apr_pcalloc(p, sizeof(*resp));

    resp->output = apr_array_make(p, 4, sizeof(tb_ir_part_t));
    tb_ir_usage_init(&resp->usage);
    return resp;
}

void tb_ir_usage_init(tb_ir_usage_t *u)
{
    u->input = u->input_cached = u->input_cache_write = -1;
    u->output = u->output_reasoning = u->total = -1;
}

void tb_ir_usage_merge(tb_ir_usage_t *u, const tb_ir_usage_t *from)
{
    if (from->input >= 0) u->input = from->input;
    if (from->input_cached >= 0) u->input_cached = from->input_cached;
    if (from->input_cache_write >= 0) u->input_cache_write = from->input_cache_write;
    if (from->output >= 0) u->output = from->output;
    if (from->output_reasoning >= 0) u->output_reasoning = from->output_reasoning;
    if (from->total >= 0) u->total = from->total;
}

long tb_ir_usage_total(const tb_ir_usage_t *u)
{
    if (u->total >= 0) {
        return u->total;
    }
    if (u->input >= 0 && u->output >= 0) {
        return u->input + u->output;
    }
    return -1;
}

int tb_ir_error_is_client(const tb_ir_error_t *err)
{
    static const char *const codes[] = {
        "context_length_exceeded", "invalid_prompt", "invalid_request_error",
        "invalid_image", "invalid_image_format", "invalid_image_url",
        "invalid_base64_image", "image_too_large", "image_parse_error",
        "unsupported_image_media_type",
    };
    apr_size_t i;

    if (!err) {
        return 0;
    }
    if (err->type && !strcmp(err->type, "invalid_request_error")) {
        return 1;
    }
    for (i = 0; err->code && i < sizeof(codes) / sizeof(codes[0]); ++i) {
        if (!strcmp(err->code, codes[i])) {
            return 1;
        }
    }
    return 0;
}

const char *tb_finish_chat_name(tb_finish_t f)
{
    switch (f) {
    case TB_FIN_LENGTH:
        return "length";
    case TB_FIN_TOOL_CALLS:
        return "tool_calls";
    case TB_FIN_CONTENT_FILTER:
        return "content_filter";
    default:
        return "stop";
    }
}

void tb_join_init(tb_join_t *j, apr_pool_t *p, const char *sep)
{
    j->pieces = apr_array_make(p, 4, sizeof(const char *));
    j->sep = sep && *sep ? sep : NULL;
}

void tb_join_add(tb_join_t *j, const char *s)
{
    if (!s) {
        return;
    }
    if (j->sep && j->pieces->nelts) {
        APR_ARRAY_PUSH(j->pieces, const char *) = j->sep;
    }
    APR_ARRAY_PUSH(j->pieces, const char *) = s;
}

const char *tb_join_done(tb_join_t *j, apr_pool_t *p)
{
    if (!j->pieces->nelts) {
        return NULL;
    }
    if (j->pieces->nelts == 1) {
        return APR_ARRAY_IDX(j->pieces, 0, const char *);
    }
    return apr_array_pstrcat(p, j->pieces, 0);
}

const char *tb_ir_new_id(apr_pool_t *p, const char *prefix)
{
    static const char hex[] = "0123456789abcdef";
    char *id;
    apr_size_t plen = strlen(prefix), i;

    id = apr_palloc(p, plen + 25);
    memcpy(id, prefix, plen);
    for (i = 0; i < 24; i += 8) {
        apr_uint32_t r = tb_random_u32();
        int k;

        for (k = 0; k < 8; ++k) {
            id[plen + i + k] = hex[r & 0xf];
            r >>= 4;
        }
    }
    id[plen + 24] = '\0';
    return id;
}
