/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
/* The OpenAI Responses dialect ("openai-responses"): POST /responses (and
 * /responses/compact), Response objects, and event streams of
 * "event: response.*" with a sequence_number, ending with
 * response.completed, .incomplete or .failed. */
#include <math.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "tb_dialect.h"
#include "tb_openai.h"

/* The smallest max_output_tokens OpenAI accepts. */
#define MIN_OUTPUT_TOKENS 16

/* ---- the client's request: one scan ------------------------------------------------- */

static void need(tb_req_info_t *info, unsigned what, const char *param)
{
    if (!info->needs_param) {
        info->needs_param = param;
    }
    info->needs |= what;
}

static apr_status_t resp_check(apr_pool_t *p, tb_op_t op, const char *body,
                               apr_size_t len, tb_req_info_t *info,
                               tb_ir_error_t *err)
{
    const tb_jdoc_t *d = &info->doc;
    const char *perr = NULL;
    apr_status_t rv;
    int n, it, i;

    info->op = op;
    info->body = body;
    info->len = len;
    if (tb_json_scan(&info->doc, p, body, len, 3, &perr) != APR_SUCCESS) {
        return tb_ir_error_invalid(err, "invalid_json", NULL, apr_psprintf(p,
                                   "The request body is not valid JSON: %s.", perr));
    }
    if (d->nodes[0].type != '{') {
        return tb_ir_error_invalid(err, "invalid_body", NULL,
                                   "The request body must be a JSON object.");
    }
    if ((rv = tb_openai_check_model(p, d, info, err)) != APR_SUCCESS
        || (rv = tb_openai_check_stream(d, info, err)) != APR_SUCCESS) {
        return rv;
    }
    if (op == TB_OP_COMPACT && info->stream) {
        return tb_ir_error_invalid(err, "invalid_value", "stream",
                                   "Compaction is not streamed: leave 'stream' out.");
    }
    /* what only a provider's own server-side state can serve */
    n = tb_jdoc_member(d, 0, "previous_response_id");
    if (n >= 0 && !tb_jdoc_is(d, n, "null")) {
        need(info, TB_NEED_NATIVE | TB_NEED_STORE, "previous_response_id");
    }
    n = tb_jdoc_member(d, 0, "conversation");
    if (n >= 0 && !tb_jdoc_is(d, n, "null")) {
        need(info, TB_NEED_NATIVE | TB_NEED_STORE, "conversation");
    }
    if (tb_jdoc_is(d, tb_jdoc_member(d, 0, "background"), "true")) {
        need(info, TB_NEED_NATIVE, "background");
    }
    n = tb_jdoc_member(d, 0, "prompt");
    if (n >= 0 && !tb_jdoc_is(d, n, "null")) {
        need(info, TB_NEED_NATIVE, "prompt");
    }
    if (op == TB_OP_COMPACT) {
        need(info, TB_NEED_NATIVE | TB_NEED_COMPACT, NULL);
    }
    n = tb_jdoc_member(d, 0, "input");
    if (n < 0 || tb_jdoc_is(d, n, "null")) {
        if (!(info->needs & TB_NEED_STORE)) {
            return tb_ir_error_invalid(err, "invalid_value", "input",
                                       "Missing required parameter: 'input'.");
        }
        return APR_SUCCESS;
    }
    if (d->nodes[n].type != '"' && d->nodes[n].type != '[') {
        return tb_ir_error_invalid(err, "invalid_value", "input",
                                   "Invalid 'input': expected a string or an array "
                                   "of input items.");
    }
    for (it = d->nodes[n].type == '[' ? d->nodes[n].child : -1, i = 0; it >= 0;
         it = d->nodes[it].next, ++i) {
        int type_node;

        if (d->nodes[it].type != '{') {
            const char *param = apr_psprintf(p, "input[%d]", i);
            return tb_ir_error_invalid(err, "invalid_value", param, apr_psprintf(p,
                                       "Invalid '%s': expected an object.", param));
        }
        if (d->nodes[it].partial) {
            continue;   /* not indexed (a huge input): passed on unjudged */
        }
        type_node = tb_jdoc_member(d, it, "type");
        if (type_node < 0 || d->nodes[type_node].type != '"') {
            if (tb_jdoc_member(d, it, "role") < 0) {
                const char *param = apr_psprintf(p, "input[%d]", i);
                return tb_ir_error_invalid(err, "invalid_value", param,
                                           apr_psprintf(p, "Invalid '%s': an input "
                                                        "item needs a 'type' or a "
                                                        "'role'.", param));
            }
        }
        else if (tb_jdoc_streq(d, type_node, "item_reference", p)) {
            need(info, TB_NEED_NATIVE | TB_NEED_STORE, "input");
        }
        else if (tb_jdoc_streq(d, type_node, "compaction", p)
                 || tb_jdoc_streq(d, type_node, "compaction_trigger", p)) {
            need(info, TB_NEED_NATIVE | TB_NEED_COMPACT, "input");
        }
    }
    return APR_SUCCESS;
}

static apr_status_t resp_splice(apr_pool_t *p, const tb_req_info_t *info,
                                const char *model, unsigned caps,
                                apr_array_header_t **piov)
{
    tb_splice_t edit;

    tb_openai_model_edit(p, &info->doc, model, &edit);
    *piov = tb_splice_iov(p, info->body, info->len, &edit, 1);
    return APR_SUCCESS;
}

/* ---- the client's request: the IR ---------------------------------------------------- */

/* Input content parts: input_text, input_image, input_file, input_audio;
 * assistant messages bring output_text and refusal. */
static void content_parts(apr_pool_t *p, const json_t *content,
                          apr_array_header_t *parts)
{
    const json_t *c;
    size_t i;

    if (json_is_string(content)) {
        tb_ir_part_add(p, parts, TB_PART_TEXT)->text = json_string_value(content);
        return;
    }
    json_array_foreach(content, i, c) {
        const char *type = tb_jstr(c, "type");
        tb_ir_part_t *part;

        if (!type) {
            continue;
        }
        if (!strcmp(type, "input_text") || !strcmp(type, "output_text")
            || !strcmp(type, "text")) {
            tb_ir_part_add(p, parts, TB_PART_TEXT)->text =
                tb_jstr(c, "text") ? tb_jstr(c, "text") : "";
        }
        else if (!strcmp(type, "refusal")) {
            tb_ir_part_add(p, parts, TB_PART_REFUSAL)->text = tb_jstr(c, "refusal");
        }
        else if (!strcmp(type, "input_image")) {
            part = tb_ir_part_add(p, parts, TB_PART_IMAGE);
            part->url = tb_jstr(c, "image_url");
            part->file_id = tb_jstr(c, "file_id");
            part->detail = tb_jstr(c, "detail");
        }
        else if (!strcmp(type, "input_file")) {
            part = tb_ir_part_add(p, parts, TB_PART_FILE);
            part->data = tb_jstr(c, "file_data");
            part->file_id = tb_jstr(c, "file_id");
            part->url = tb_jstr(c, "file_url");
            part->filename = tb_jstr(c, "filename");
        }
        else if (!strcmp(type, "input_audio")) {
            const json_t *ia = json_object_get(c, "input_audio");
            part = tb_ir_part_add(p, parts, TB_PART_AUDIO);
            part->data = tb_jstr(ia, "data");
            part->format = tb_jstr(ia, "format");
        }
    }
}

/* A reasoning item's summary parts as one text. */
static const char *summary_text(apr_pool_t *p, const json_t *item)
{
    const json_t *s;
    tb_join_t text;
    size_t i;

    tb_join_init(&text, p, "\n\n");
    json_array_foreach(json_object_get(item, "summary"), i, s) {
        tb_join_add(&text, tb_jstr(s, "text"));
    }
    return tb_join_done(&text, p);
}

/* The assistant message a tool call or reasoning item joins: the last
 * message when it is the assistant's (parallel calls share one), else a
 * new one. */
static tb_ir_msg_t *assistant_msg(apr_pool_t *p, tb_ir_req_t *req)
{
    if (req->messages->nelts) {
        tb_ir_msg_t *last = &APR_ARRAY_IDX(req->messages, req->messages->nelts - 1,
                                           tb_ir_msg_t);
        if (last->role == TB_ROLE_ASSISTANT) {
            return last;
        }
    }
    return tb_ir_msg_add(p, req, TB_ROLE_ASSISTANT);
}

static void parse_item(apr_pool_t *p, const json_t *item, tb_ir_req_t *req)
{
    const char *type = tb_jstr(item, "type");
    const char *role = tb_jstr(item, "role");
    tb_ir_part_t *part;
    tb_ir_msg_t *m;

    if ((!type || !strcmp(type, "message")) && role) {
        tb_role_t r = !strcmp(role, "system") ? TB_ROLE_SYSTEM
                    : !strcmp(role, "developer") ? TB_ROLE_DEVELOPER
                    : !strcmp(role, "assistant") ? TB_ROLE_ASSISTANT : TB_ROLE_USER;

        m = r == TB_ROLE_ASSISTANT ? tb_ir_msg_add(p, req, r) : tb_ir_msg_add(p, req, r);
        content_parts(p, json_object_get(item, "content"), m->parts);
        return;
    }
    if (!type) {
        return;
    }
    if (!strcmp(type, "function_call") || !strcmp(type, "custom_tool_call")) {
        int custom = type[0] == 'c';

        m = assistant_msg(p, req);
        part = tb_ir_part_add(p, m->parts, TB_PART_TOOL_CALL);
        part->item_id = tb_jstr(item, "id");
        part->call_id = tb_jstr(item, "call_id");
        part->name = tb_jstr(item, "name");
        part->ns = tb_jstr(item, "namespace");
        part->custom = custom;
        part->arguments = tb_jstr(item, custom ? "input" : "arguments");
    }
    else if (!strcmp(type, "function_call_output")
             || !strcmp(type, "custom_tool_call_output")) {
        const json_t *out = json_object_get(item, "output");

        m = tb_ir_msg_add(p, req, TB_ROLE_TOOL);
        part = tb_ir_part_add(p, m->parts, TB_PART_TOOL_RESULT);
        part->result_call_id = tb_jstr(item, "call_id");
        if (json_is_string(out)) {
            part->text = json_string_value(out);
        }
        else {
            apr_array_header_t *all = apr_array_make(p, 2, sizeof(tb_ir_part_t));
            tb_join_t text;
            int i;

            content_parts(p, out, all);
            part->media = apr_array_make(p, 1, sizeof(tb_ir_part_t));
            tb_join_init(&text, p, NULL);
            for (i = 0; i < all->nelts; ++i) {
                tb_ir_part_t *x = &APR_ARRAY_IDX(all, i, tb_ir_part_t);
                if (x->kind == TB_PART_TEXT) {
                    tb_join_add(&text, x->text);
                }
                else {
                    *(tb_ir_part_t *)apr_array_push(part->media) = *x;
                }
            }
            part->text = tb_join_done(&text, p);
            if (!part->text) {
                part->text = "";
            }
        }
    }
    else if (!strcmp(type, "reasoning")) {
        m = assistant_msg(p, req);
        part = tb_ir_part_add(p, m->parts, TB_PART_REASONING);
        part->text = summary_text(p, item);
        part->reasoning_id = tb_jstr(item, "id");
        part->encrypted = tb_jstr(item, "encrypted_content");
    }
    /* additional_tools (newer Codex): its tools join the request's, read
     * by the caller */
    /* hosted-tool items (web_search_call, file_search_call, computer_call,
     * local_shell_call, mcp_*, ...) have no meaning for another provider:
     * skipped, so they never land between a call and its result (trap 57) */
}

static void parse_tool(apr_pool_t *p, const json_t *t, const char *ns,
                       tb_ir_req_t *req)
{
    const char *type = tb_jstr(t, "type");
    tb_ir_tool_t *tool;

    if (type && !strcmp(type, "namespace")) {
        const json_t *child;
        size_t i;
        json_array_foreach(json_object_get(t, "tools"), i, child) {
            parse_tool(p, child, tb_jstr(t, "name"), req);
        }
        return;
    }
    tool = apr_array_push(req->tools);
    memset(tool, 0, sizeof(*tool));
    tool->strict = -1;
    tool->ns = ns;
    tool->name = tb_jstr(t, "name");
    tool->description = tb_jstr(t, "description");
    if (!type || !strcmp(type, "function")) {
        const json_t *strict = json_object_get(t, "strict");
        tool->kind = TB_TOOL_FUNCTION;
        tool->parameters = json_object_get(t, "parameters");
        if (json_is_boolean(strict)) {
            tool->strict = json_is_true(strict);
        }
    }
    else if (!strcmp(type, "custom")) {
        tool->kind = TB_TOOL_CUSTOM;
        tool->format = json_object_get(t, "format");
    }
    else {
        tool->kind = TB_TOOL_HOSTED;
        tool->hosted_type = type;
        tool->hosted = (json_t *)t;
    }
}

static void parse_tool_choice(const json_t *tc, tb_ir_req_t *req)
{
    const char *type;

    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        req->tool_choice = !strcmp(s, "none") ? TB_TC_NONE
                         : !strcmp(s, "required") ? TB_TC_REQUIRED : TB_TC_AUTO;
        return;
    }
    if (!(type = tb_jstr(tc, "type"))) {
        return;
    }
    if (!strcmp(type, "function") || !strcmp(type, "custom")) {
        req->tool_choice = TB_TC_NAMED;
        req->tool_choice_custom = type[0] == 'c';
        req->tool_choice_name = tb_jstr(tc, "name");
    }
    else if (!strcmp(type, "allowed_tools")) {
        req->tool_choice = TB_TC_ALLOWED;
        req->allowed_mode = tb_jstr(tc, "mode");
        req->allowed_tools = json_object_get(tc, "tools");
    }
    /* a hosted tool's choice has no meaning elsewhere: left unset */
}

static apr_status_t resp_parse(apr_pool_t *p, const tb_req_info_t *info,
                               tb_ir_req_t **preq, tb_ir_error_t *err)
{
    tb_ir_req_t *req = tb_ir_req_create(p);
    json_t *root;
    const json_t *v, *item, *t;
    size_t i;

    if (tb_json_parse(&root, p, info->body, info->len, NULL) != APR_SUCCESS) {
        return tb_ir_error_invalid(err, "invalid_json", NULL,
                                   "The request body is not valid JSON.");
    }
    req->model = info->model;
    req->stream = info->stream;
    req->instructions = tb_jstr(root, "instructions");
    v = json_object_get(root, "input");
    if (json_is_string(v)) {
        tb_ir_msg_t *m = tb_ir_msg_add(p, req, TB_ROLE_USER);
        tb_ir_part_add(p, m->parts, TB_PART_TEXT)->text = json_string_value(v);
    }
    json_array_foreach(v, i, item) {
        size_t k;

        parse_item(p, item, req);
        if (!strcmp(tb_jstr(item, "type") ? tb_jstr(item, "type") : "",
                    "additional_tools")) {
            json_array_foreach(json_object_get(item, "tools"), k, t) {
                parse_tool(p, t, NULL, req);
            }
        }
    }
    json_array_foreach(json_object_get(root, "tools"), i, t) {
        parse_tool(p, t, NULL, req);
    }
    parse_tool_choice(json_object_get(root, "tool_choice"), req);
    tb_openai_parse_common(p, root, req);
    if ((v = json_object_get(root, "max_output_tokens")) && json_is_integer(v)) {
        req->max_output_tokens = (long)json_integer_value(v);
    }
    if ((v = json_object_get(root, "reasoning")) && json_is_object(v)) {
        req->effort = tb_jstr(v, "effort");
        req->reasoning_summary = tb_jstr(v, "summary");
    }
    if ((v = json_object_get(root, "text")) && json_is_object(v)) {
        const json_t *f = json_object_get(v, "format");
        const char *type = tb_jstr(f, "type");

        req->verbosity = tb_jstr(v, "verbosity");
        if (type) {
            req->rf = !strcmp(type, "json_schema") ? TB_RF_JSON_SCHEMA
                    : !strcmp(type, "json_object") ? TB_RF_JSON_OBJECT : TB_RF_TEXT;
            req->rf_name = tb_jstr(f, "name");
            req->rf_description = tb_jstr(f, "description");
            req->rf_schema = json_object_get(f, "schema");
            if (json_is_boolean(json_object_get(f, "strict"))) {
                req->rf_strict = json_is_true(json_object_get(f, "strict"));
            }
        }
    }
    *preq = req;
    return APR_SUCCESS;
}

/* ---- an account speaking Responses: the request ---------------------------------------- */

static const char *resp_path(apr_pool_t *p, tb_op_t op, const char *model,
                             int stream)
{
    return op == TB_OP_COMPACT ? "/responses/compact" : "/responses";
}

static json_t *input_parts(const apr_array_header_t *parts, int assistant)
{
    json_t *arr = json_array();
    int i;

    for (i = 0; i < parts->nelts; ++i) {
        const tb_ir_part_t *pt = &APR_ARRAY_IDX(parts, i, tb_ir_part_t);
        json_t *o;

        switch (pt->kind) {
        case TB_PART_TEXT:
            o = assistant
                ? json_pack("{s:s, s:s, s:[]}", "type", "output_text", "text",
                            pt->text ? pt->text : "", "annotations")
                : json_pack("{s:s, s:s}", "type", "input_text", "text",
                            pt->text ? pt->text : "");
            break;
        case TB_PART_REFUSAL:
            o = json_pack("{s:s, s:s}", "type", "refusal", "refusal",
                          pt->text ? pt->text : "");
            break;
        case TB_PART_IMAGE:
            /* NB: detail is required in the SDK's type: default auto */
            o = json_pack("{s:s, s:s}", "type", "input_image", "detail",
                          pt->detail ? pt->detail : "auto");
            tb_jset_str(o, "image_url", pt->url);
            tb_jset_str(o, "file_id", pt->file_id);
            break;
        case TB_PART_FILE:
            o = json_pack("{s:s}", "type", "input_file");
            tb_jset_str(o, "file_data", pt->data);
            tb_jset_str(o, "file_id", pt->file_id);
            tb_jset_str(o, "file_url", pt->url);
            tb_jset_str(o, "filename", pt->filename);
            break;
        case TB_PART_AUDIO:
            o = json_pack("{s:s, s:{s:s, s:s}}", "type", "input_audio",
                          "input_audio", "data", pt->data ? pt->data : "",
                          "format", pt->format ? pt->format : "wav");
            break;
        default:
            o = NULL;
            break;
        }
        if (o) {
            json_array_append_new(arr, o);
        }
    }
    return arr;
}

/* The custom tools' calls of the history, by call id: their results must
 * say custom too. One pass, then lookups. */
static apr_hash_t *custom_calls(apr_pool_t *p, const tb_ir_req_t *req)
{
    apr_hash_t *h = apr_hash_make(p);
    int i, k;

    for (i = 0; i < req->messages->nelts; ++i) {
        const tb_ir_msg_t *m = &APR_ARRAY_IDX(req->messages, i, tb_ir_msg_t);
        for (k = 0; m->role == TB_ROLE_ASSISTANT && k < m->parts->nelts; ++k) {
            const tb_ir_part_t *pt = &APR_ARRAY_IDX(m->parts, k, tb_ir_part_t);
            if (pt->kind == TB_PART_TOOL_CALL && pt->custom && pt->call_id) {
                apr_hash_set(h, pt->call_id, APR_HASH_KEY_STRING, pt);
            }
        }
    }
    return h;
}

static json_t *emit_input(apr_pool_t *p, const tb_ir_req_t *req)
{
    json_t *input = json_array();
    apr_hash_t *custom = custom_calls(p, req);
    int i, k;

    for (i = 0; i < req->messages->nelts; ++i) {
        const tb_ir_msg_t *m = &APR_ARRAY_IDX(req->messages, i, tb_ir_msg_t);
        const char *role = m->role == TB_ROLE_SYSTEM ? "system"
                         : m->role == TB_ROLE_DEVELOPER ? "developer"
                         : m->role == TB_ROLE_ASSISTANT ? "assistant" : "user";
        json_t *content;

        if (m->role == TB_ROLE_TOOL) {
            for (k = 0; k < m->parts->nelts; ++k) {
                const tb_ir_part_t *pt = &APR_ARRAY_IDX(m->parts, k, tb_ir_part_t);
                int is_custom = pt->result_call_id
                    && apr_hash_get(custom, pt->result_call_id, APR_HASH_KEY_STRING);
                json_t *out;

                if (pt->kind != TB_PART_TOOL_RESULT || !pt->result_call_id) {
                    continue;
                }
                if (pt->media && pt->media->nelts) {
                    out = input_parts(pt->media, 0);
                    if (pt->text && *pt->text) {
                        json_array_insert_new(out, 0, json_pack("{s:s, s:s}", "type",
                                              "input_text", "text", pt->text));
                    }
                }
                else {
                    out = json_string(pt->text && *pt->text ? pt->text : "(empty)");
                }
                json_array_append_new(input, json_pack("{s:s, s:s, s:o}", "type",
                                      is_custom ? "custom_tool_call_output"
                                                : "function_call_output",
                                      "call_id", pt->result_call_id, "output", out));
            }
            continue;
        }
        content = input_parts(m->parts, m->role == TB_ROLE_ASSISTANT);
        if (json_array_size(content)) {
            json_t *msg = json_pack("{s:s, s:s, s:o}", "type", "message", "role",
                                    role, "content", content);
            json_array_append_new(input, msg);
        }
        else {
            json_decref(content);
        }
        for (k = 0; m->role == TB_ROLE_ASSISTANT && k < m->parts->nelts; ++k) {
            const tb_ir_part_t *pt = &APR_ARRAY_IDX(m->parts, k, tb_ir_part_t);

            if (pt->kind != TB_PART_TOOL_CALL || !pt->call_id) {
                continue;
            }
            /* NB: no "id": the Responses API wants its own fc_ ids there
             * (trap 54); call_id is what results refer to */
            if (pt->custom) {
                json_array_append_new(input, json_pack("{s:s, s:s, s:s, s:s}",
                                      "type", "custom_tool_call", "call_id",
                                      pt->call_id, "name", pt->name ? pt->name : "",
                                      "input", pt->arguments ? pt->arguments : ""));
            }
            else {
                json_array_append_new(input, json_pack("{s:s, s:s, s:s, s:s}",
                                      "type", "function_call", "call_id", pt->call_id,
                                      "name", pt->name ? pt->name : "", "arguments",
                                      pt->arguments && *pt->arguments
                                      ? pt->arguments : "{}"));
            }
        }
    }
    return input;
}

/* Tools in Responses' flat shape; namespaced functions are grouped back
 * into their namespace. */
static json_t *tools_json(apr_pool_t *p, const tb_ir_req_t *req)
{
    json_t *tools = json_array(), *ns_tool = NULL;
    const char *ns_name = NULL;
    int i;

    for (i = 0; i < req->tools->nelts; ++i) {
        const tb_ir_tool_t *t = &APR_ARRAY_IDX(req->tools, i, tb_ir_tool_t);
        json_t *o;

        if (t->kind == TB_TOOL_HOSTED) {
            json_array_append(tools, t->hosted);
            continue;
        }
        o = json_pack("{s:s, s:s}", "type", t->kind == TB_TOOL_CUSTOM ? "custom"
                      : "function", "name", t->name ? t->name : "");
        tb_jset_str(o, "description", t->description);
        if (t->kind == TB_TOOL_FUNCTION) {
            json_object_set(o, "parameters", t->parameters ? t->parameters
                            : tb_json_pool_own(p, json_pack("{s:s, s:{}}", "type",
                                               "object", "properties")));
            /* NB: Responses makes function tools strict unless told not to;
             * Chat does not: say it, or strict schema rules reject
             * ordinary schemas */
            json_object_set_new(o, "strict", json_boolean(t->strict > 0));
        }
        else if (t->format) {
            json_object_set(o, "format", t->format);
        }
        if (t->ns) {
            if (!ns_tool || !ns_name || strcmp(ns_name, t->ns)) {
                ns_tool = json_pack("{s:s, s:s, s:[]}", "type", "namespace", "name",
                                    t->ns, "tools");
                ns_name = t->ns;
                json_array_append_new(tools, ns_tool);
            }
            json_array_append_new(json_object_get(ns_tool, "tools"), o);
            continue;
        }
        ns_tool = NULL;
        json_array_append_new(tools, o);
    }
    return tools;
}

static json_t *tool_choice_json(const tb_ir_req_t *req)
{
    switch (req->tool_choice) {
    case TB_TC_AUTO:
        return json_string("auto");
    case TB_TC_NONE:
        return json_string("none");
    case TB_TC_REQUIRED:
        return json_string("required");
    case TB_TC_NAMED:
        return req->tool_choice_name
            ? json_pack("{s:s, s:s}", "type", req->tool_choice_custom ? "custom"
                        : "function", "name", req->tool_choice_name)
            : NULL;
    case TB_TC_ALLOWED:
        return json_pack("{s:s, s:s, s:o}", "type", "allowed_tools", "mode",
                         req->allowed_mode ? req->allowed_mode : "auto", "tools",
                         req->allowed_tools ? json_incref(req->allowed_tools)
                                            : json_array());
    default:
        return NULL;
    }
}

static json_t *text_json(const tb_ir_req_t *req)
{
    json_t *text = json_object(), *f;

    switch (req->rf) {
    case TB_RF_JSON_SCHEMA:
        f = json_pack("{s:s, s:s}", "type", "json_schema", "name",
                      req->rf_name ? req->rf_name : "response");
        tb_jset_str(f, "description", req->rf_description);
        if (req->rf_schema) {
            json_object_set(f, "schema", req->rf_schema);
        }
        if (req->rf_strict >= 0) {
            json_object_set_new(f, "strict", json_boolean(req->rf_strict));
        }
        break;
    case TB_RF_JSON_OBJECT:
        f = json_pack("{s:s}", "type", "json_object");
        break;
    default:
        f = json_pack("{s:s}", "type", "text");
        break;
    }
    json_object_set_new(text, "format", f);
    tb_jset_str(text, "verbosity", req->verbosity);
    return text;
}

static apr_status_t resp_emit(apr_pool_t *p, const tb_ir_req_t *req,
                              const char *model, unsigned caps,
                              const char **pbody, apr_size_t *plen,
                              tb_ir_error_t *err)
{
    json_t *root, *tools, *tc;

    if (req->n > 1) {
        return tb_ir_error_invalid(err, "unsupported_value", "n",
                                   "Only one choice (n = 1) can be produced by this "
                                   "model's provider.");
    }
    root = tb_json_pool_own(p, json_object());
    json_object_set_new(root, "model", json_string(model));
    tb_jset_str(root, "instructions", req->instructions);
    json_object_set_new(root, "input", emit_input(p, req));
    tools = tools_json(p, req);
    if (json_array_size(tools)) {
        json_object_set_new(root, "tools", tools);
        if ((tc = tool_choice_json(req))) {
            json_object_set_new(root, "tool_choice", tc);
        }
        if (req->parallel_tool_calls >= 0) {
            json_object_set_new(root, "parallel_tool_calls",
                                json_boolean(req->parallel_tool_calls));
        }
    }
    else {
        json_decref(tools);
    }
    if (!isnan(req->temperature)) {
        json_object_set_new(root, "temperature", json_real(req->temperature));
    }
    if (!isnan(req->top_p)) {
        json_object_set_new(root, "top_p", json_real(req->top_p));
    }
    /* presence/frequency penalties, seed, stop and logit_bias have no
     * Responses counterpart: dropped (README, "Conversions") */
    if (req->max_output_tokens >= 0) {
        json_object_set_new(root, "max_output_tokens",
                            json_integer(req->max_output_tokens < MIN_OUTPUT_TOKENS
                                         ? MIN_OUTPUT_TOKENS : req->max_output_tokens));
    }
    if (req->top_logprobs >= 0 || req->logprobs > 0) {
        json_object_set_new(root, "top_logprobs",
                            json_integer(req->top_logprobs >= 0 ? req->top_logprobs : 0));
        json_object_set_new(root, "include",
                            json_pack("[s]", "message.output_text.logprobs"));
    }
    if (req->rf != TB_RF_UNSET || req->verbosity) {
        json_object_set_new(root, "text", text_json(req));
    }
    if (req->effort) {
        json_object_set_new(root, "reasoning", json_pack("{s:s, s:s}", "effort",
                            req->effort, "summary", req->reasoning_summary
                            ? req->reasoning_summary : "auto"));
    }
    /* a converted client cannot continue by id: keep nothing upstream */
    json_object_set_new(root, "store", json_boolean(req->store > 0));
    tb_openai_emit_identity(root, req);
    if (req->stream) {
        json_object_set_new(root, "stream", json_true());
    }
    *pbody = tb_json_dump(p, root, plen);
    return *pbody ? APR_SUCCESS : tb_ir_error_conversion(err);
}

/* ---- an account speaking Responses: answers ------------------------------------------ */

static const tb_openai_usage_names_t usage_names = {
    "input_tokens", "output_tokens", "input_tokens_details",
    "output_tokens_details"
};

static void usage_read(const json_t *usage, tb_ir_usage_t *u)
{
    tb_openai_usage_read(usage, &usage_names, u);
}

static int resp_usage_scan(apr_pool_t *p, const char *body, apr_size_t len,
                           tb_ir_usage_t *u)
{
    return tb_openai_usage_scan(p, body, len, &usage_names, u);
}


/* Output items into IR parts; items with no IR meaning are skipped. */
static void output_parts(apr_pool_t *p, const json_t *output,
                         apr_array_header_t *parts)
{
    const json_t *item;
    size_t i;

    json_array_foreach(output, i, item) {
        const char *type = tb_jstr(item, "type");
        tb_ir_part_t *pt;

        if (!type) {
            continue;
        }
        if (!strcmp(type, "message")) {
            content_parts(p, json_object_get(item, "content"), parts);
        }
        else if (!strcmp(type, "reasoning")) {
            pt = tb_ir_part_add(p, parts, TB_PART_REASONING);
            pt->text = summary_text(p, item);
            pt->reasoning_id = tb_jstr(item, "id");
            pt->encrypted = tb_jstr(item, "encrypted_content");
        }
        else if (!strcmp(type, "function_call") || !strcmp(type, "custom_tool_call")) {
            pt = tb_ir_part_add(p, parts, TB_PART_TOOL_CALL);
            pt->custom = type[0] == 'c';
            pt->item_id = tb_jstr(item, "id");
            pt->call_id = tb_jstr(item, "call_id");
            pt->name = tb_jstr(item, "name");
            pt->ns = tb_jstr(item, "namespace");
            pt->arguments = tb_jstr(item, pt->custom ? "input" : "arguments");
        }
    }
}

static tb_finish_t status_finish(const json_t *resp, int has_calls)
{
    const char *status = tb_jstr(resp, "status");
    const char *reason = tb_jstr(json_object_get(resp, "incomplete_details"), "reason");

    if (status && !strcmp(status, "incomplete")) {
        return reason && !strcmp(reason, "content_filter") ? TB_FIN_CONTENT_FILTER
                                                           : TB_FIN_LENGTH;
    }
    if (status && !strcmp(status, "failed")) {
        return TB_FIN_ERROR;
    }
    return has_calls ? TB_FIN_TOOL_CALLS : TB_FIN_STOP;
}

static void read_error(apr_pool_t *p, const json_t *e, tb_ir_error_t *err)
{
    memset(err, 0, sizeof(*err));
    err->type = tb_jstr(e, "type") ? tb_jstr(e, "type") : "server_error";
    err->code = tb_jstr(e, "code");
    err->message = tb_jstr(e, "message") ? tb_jstr(e, "message")
                                         : "The upstream response failed.";
}

static int has_tool_calls(const apr_array_header_t *parts)
{
    int i;

    for (i = 0; i < parts->nelts; ++i) {
        if (APR_ARRAY_IDX(parts, i, tb_ir_part_t).kind == TB_PART_TOOL_CALL) {
            return 1;
        }
    }
    return 0;
}

static apr_status_t resp_parse_response(apr_pool_t *p, const char *body,
                                        apr_size_t len, tb_ir_resp_t **presp)
{
    tb_ir_resp_t *resp = tb_ir_resp_create(p);
    json_t *root;
    const json_t *v;

    if (tb_json_parse(&root, p, body, len, NULL) != APR_SUCCESS
        || !json_is_object(root) || !json_is_array(json_object_get(root, "output"))) {
        return APR_EINVAL;
    }
    resp->id = tb_jstr(root, "id");
    resp->model = tb_jstr(root, "model");
    if (json_is_integer(v = json_object_get(root, "created_at"))) {
        resp->created = json_integer_value(v);
    }
    output_parts(p, json_object_get(root, "output"), resp->output);
    resp->finish = status_finish(root, has_tool_calls(resp->output));
    if (resp->finish == TB_FIN_ERROR) {
        resp->failed = 1;
        read_error(p, json_object_get(root, "error"), &resp->error);
    }
    usage_read(json_object_get(root, "usage"), &resp->usage);
    *presp = resp;
    return APR_SUCCESS;
}

/* ---- an account speaking Responses: its stream ----------------------------------------- */

/* One upstream output item as the decoder tracks it. */
typedef struct dec_item_t {
    int block;                   /* IR block, -1 when none */
    tb_block_kind_t bkind;
    int deltas;                  /* deltas were seen */
    int stopped;
} dec_item_t;

typedef struct resp_dec_t {
    apr_pool_t *pool;
    apr_array_header_t *items;   /* dec_item_t by output_index */
    int next_block;
    int text_block;              /* the open text/refusal part's block, or -1 */
    long text_item;              /* ... and its item's output index */
    tb_block_kind_t text_kind;
    int text_deltas;
    int started, ended, errored;
    long last_seq;
} resp_dec_t;

static void *resp_decoder_create(apr_pool_t *p)
{
    resp_dec_t *d = apr_pcalloc(p, sizeof(*d));

    d->pool = p;
    d->items = apr_array_make(p, 8, sizeof(dec_item_t));
    d->text_block = -1;
    d->last_seq = -1;
    return d;
}

typedef struct demit_t {
    tb_ir_sink_fn *sink;
    void *ctx;
    apr_status_t rv;
    long seq;
    int emitted;
} demit_t;

static void demit(demit_t *e, tb_ir_ev_t *ev)
{
    ev->seq = e->seq;
    e->emitted = 1;
    if (e->rv == APR_SUCCESS) {
        e->rv = e->sink(e->ctx, ev);
    }
}

static tb_ir_ev_t *ev_new(apr_pool_t *p, tb_ev_kind_t kind, int block,
                          tb_block_kind_t bkind)
{
    tb_ir_ev_t *ev = apr_pcalloc(p, sizeof(*ev));

    ev->kind = kind;
    ev->block = block;
    ev->bkind = bkind;
    return ev;
}

static dec_item_t *dec_item(resp_dec_t *d, long idx)
{
    if (idx < 0 || idx > 4096) {
        return NULL;
    }
    while (d->items->nelts <= idx) {
        dec_item_t *it = apr_array_push(d->items);
        it->block = -1;
        it->bkind = TB_BLOCK_OTHER;
        it->deltas = it->stopped = 0;
    }
    return &APR_ARRAY_IDX(d->items, idx, dec_item_t);
}

static long jlong(const json_t *o, const char *key, long dflt)
{
    const json_t *v = json_object_get(o, key);

    return json_is_integer(v) ? (long)json_integer_value(v) : dflt;
}

/* The open text part ends; text that came only whole, with its .done
 * event (no deltas), is delivered as one delta first. */
static void close_text(resp_dec_t *d, demit_t *e, apr_pool_t *p,
                       const char *full)
{
    if (d->text_block >= 0) {
        if (full && *full && !d->text_deltas) {
            tb_ir_ev_t *dl = ev_new(p, TB_EV_DELTA, d->text_block, d->text_kind);
            dec_item_t *it = dec_item(d, d->text_item);

            dl->text = full;
            dl->text_len = strlen(full);
            demit(e, dl);
            if (it) {
                it->deltas = 1;
            }
        }
        demit(e, ev_new(p, TB_EV_BLOCK_STOP, d->text_block, d->text_kind));
        d->text_block = -1;
    }
}

/* An item the stream announced (or only finished): its block opens. */
static void open_item(resp_dec_t *d, demit_t *e, apr_pool_t *p, dec_item_t *it,
                      const json_t *item)
{
    const char *type = tb_jstr(item, "type");
    tb_ir_ev_t *ev;

    if (!type || it->block >= 0) {
        return;
    }
    if (!strcmp(type, "reasoning")) {
        it->bkind = TB_BLOCK_REASONING;
    }
    else if (!strcmp(type, "function_call") || !strcmp(type, "custom_tool_call")) {
        it->bkind = TB_BLOCK_TOOL_CALL;
    }
    else {
        return;   /* messages open per content part; others are not IR */
    }
    it->block = d->next_block++;
    ev = ev_new(p, TB_EV_BLOCK_START, it->block, it->bkind);
    ev->id = tb_jstr(item, "id");
    if (it->bkind == TB_BLOCK_TOOL_CALL) {
        ev->custom = type[0] == 'c';
        ev->call_id = tb_jstr(item, "call_id");
        if (!ev->call_id) {
            /* clients need one to send the result back */
            ev->call_id = tb_ir_new_id(p, "call_");
        }
        ev->name = tb_jstr(item, "name");
        ev->ns = tb_jstr(item, "namespace");
    }
    demit(e, ev);
}

/* A finished item: what deltas did not bring comes whole here (some
 * upstreams send only the .done events, trap 62). */
static void finish_item(resp_dec_t *d, demit_t *e, apr_pool_t *p, long idx,
                        const json_t *item)
{
    dec_item_t *it = dec_item(d, idx);
    const char *type = tb_jstr(item, "type");
    tb_ir_ev_t *ev;

    if (!it || !type) {
        return;
    }
    if (!strcmp(type, "message")) {
        const json_t *c;
        size_t i;

        if (d->text_block >= 0 && !d->text_deltas) {
            /* a part opened, never filled: its text comes with the item */
            tb_join_t text;

            tb_join_init(&text, p, NULL);
            json_array_foreach(json_object_get(item, "content"), i, c) {
                tb_join_add(&text, tb_jstr(c, d->text_kind == TB_BLOCK_REFUSAL
                                              ? "refusal" : "text"));
            }
            close_text(d, e, p, tb_join_done(&text, p));
        }
        /* parts never streamed: each becomes a whole block */
        else if (d->text_block < 0 && !it->deltas) {
            json_array_foreach(json_object_get(item, "content"), i, c) {
                const char *ct = tb_jstr(c, "type");
                const char *t = ct && !strcmp(ct, "refusal") ? tb_jstr(c, "refusal")
                                                             : tb_jstr(c, "text");
                int b;

                if (!t || !*t) {
                    continue;
                }
                b = d->next_block++;
                demit(e, ev_new(p, TB_EV_BLOCK_START, b, ct && !strcmp(ct, "refusal")
                                ? TB_BLOCK_REFUSAL : TB_BLOCK_TEXT));
                ev = ev_new(p, TB_EV_DELTA, b, ct && !strcmp(ct, "refusal")
                            ? TB_BLOCK_REFUSAL : TB_BLOCK_TEXT);
                ev->text = t;
                ev->text_len = strlen(t);
                demit(e, ev);
                demit(e, ev_new(p, TB_EV_BLOCK_STOP, b, ev->bkind));
            }
        }
        close_text(d, e, p, NULL);
        it->stopped = 1;
        return;
    }
    open_item(d, e, p, it, item);
    if (it->block < 0 || it->stopped) {
        return;
    }
    it->stopped = 1;
    ev = ev_new(p, TB_EV_BLOCK_STOP, it->block, it->bkind);
    if (it->bkind == TB_BLOCK_TOOL_CALL) {
        ev->text = tb_jstr(item, type[0] == 'c' ? "input" : "arguments");
        ev->call_id = tb_jstr(item, "call_id");
        ev->name = tb_jstr(item, "name");
        if (ev->text && !it->deltas && *ev->text) {
            /* the whole arguments, as one delta before the stop */
            tb_ir_ev_t *dl = ev_new(p, TB_EV_DELTA, it->block, it->bkind);
            dl->text = ev->text;
            dl->text_len = strlen(ev->text);
            demit(e, dl);
        }
    }
    else if (it->bkind == TB_BLOCK_REASONING) {
        ev->encrypted = tb_jstr(item, "encrypted_content");
        if (!it->deltas && (ev->text = summary_text(p, item)) && *ev->text) {
            tb_ir_ev_t *dl = ev_new(p, TB_EV_DELTA, it->block, it->bkind);
            dl->text = ev->text;
            dl->text_len = strlen(ev->text);
            demit(e, dl);
        }
    }
    if (ev->text) {
        ev->text_len = strlen(ev->text);
    }
    demit(e, ev);
}

static void decode_delta(resp_dec_t *d, demit_t *e, apr_pool_t *p,
                         const json_t *obj, tb_block_kind_t bkind)
{
    long idx = jlong(obj, "output_index", -1);
    dec_item_t *it = dec_item(d, idx);
    const char *t = tb_jstr(obj, "delta");
    tb_ir_ev_t *ev;
    int block;

    if (!it || !t || !*t) {
        return;
    }
    if (bkind == TB_BLOCK_TEXT || bkind == TB_BLOCK_REFUSAL) {
        if (d->text_block < 0 || d->text_kind != bkind) {
            close_text(d, e, p, NULL);
            d->text_block = d->next_block++;
            d->text_item = idx;
            d->text_kind = bkind;
            d->text_deltas = 0;
            demit(e, ev_new(p, TB_EV_BLOCK_START, d->text_block, bkind));
        }
        d->text_deltas = 1;
        block = d->text_block;
    }
    else {
        if (it->block < 0) {
            /* a delta for an item never announced */
            json_t *fake = tb_json_pool_own(p, json_pack("{s:s}", "type",
                                            bkind == TB_BLOCK_REASONING ? "reasoning"
                                            : "function_call"));
            open_item(d, e, p, it, fake);
        }
        block = it->block;
    }
    it->deltas = 1;
    ev = ev_new(p, TB_EV_DELTA, block, bkind);
    ev->text = t;
    ev->text_len = strlen(t);
    demit(e, ev);
}

static void decode_terminal(resp_dec_t *d, demit_t *e, apr_pool_t *p,
                            const json_t *obj, const char *type)
{
    const json_t *r = json_object_get(obj, "response");
    const json_t *output = json_object_get(r, "output"), *item;
    tb_ir_usage_t *u = apr_palloc(p, sizeof(*u));
    tb_ir_ev_t *ev;
    size_t i;
    int calls = 0;

    close_text(d, e, p, NULL);
    /* items the events never showed, or never finished (trap 62) */
    json_array_foreach(output, i, item) {
        dec_item_t *it = dec_item(d, (long)i);
        if (it && !it->stopped) {
            finish_item(d, e, p, (long)i, item);
        }
    }
    for (i = 0; i < (size_t)d->items->nelts; ++i) {
        dec_item_t *it = &APR_ARRAY_IDX(d->items, i, dec_item_t);
        if (it->bkind == TB_BLOCK_TOOL_CALL) {
            calls = 1;
        }
        if (it->block >= 0 && !it->stopped) {
            it->stopped = 1;
            demit(e, ev_new(p, TB_EV_BLOCK_STOP, it->block, it->bkind));
        }
    }
    /* NB: some compatible upstreams put usage beside the response (trap 68);
     * none at all is not zero */
    {
        const json_t *usage = json_is_object(json_object_get(r, "usage"))
                            ? json_object_get(r, "usage") : json_object_get(obj, "usage");
        if (json_is_object(usage)) {
            tb_ir_usage_init(u);
            usage_read(usage, u);
            ev = ev_new(p, TB_EV_USAGE, 0, TB_BLOCK_OTHER);
            ev->usage = u;
            demit(e, ev);
        }
    }
    if (!strcmp(type, "response.failed")) {
        if (!d->errored) {
            tb_ir_error_t *err = apr_palloc(p, sizeof(*err));
            read_error(p, json_object_get(r, "error"), err);
            ev = ev_new(p, TB_EV_ERROR, 0, TB_BLOCK_OTHER);
            ev->error = err;
            demit(e, ev);
        }
    }
    else {
        ev = ev_new(p, TB_EV_FINISH, 0, TB_BLOCK_OTHER);
        ev->finish = r ? status_finish(r, calls)
                   : (!strcmp(type, "response.incomplete") ? TB_FIN_LENGTH
                      : calls ? TB_FIN_TOOL_CALLS : TB_FIN_STOP);
        demit(e, ev);
    }
    d->ended = 1;
    demit(e, ev_new(p, TB_EV_END, 0, TB_BLOCK_OTHER));
}

static apr_status_t resp_decode(void *dec, apr_pool_t *p, const tb_sse_event_t *sse,
                                tb_ir_sink_fn *sink, void *ctx)
{
    resp_dec_t *d = dec;
    demit_t e = { sink, ctx, APR_SUCCESS, -1, 0 };
    json_t *obj;
    const char *type;

    if (sse->kind != TB_SSE_EVENT || d->ended) {
        return APR_SUCCESS;
    }
    if (sse->data_len == 6 && !memcmp(sse->data, "[DONE]", 6)) {
        return APR_SUCCESS;   /* not part of Responses streams: harmless */
    }
    if (tb_json_parse(&obj, p, sse->data, sse->data_len, NULL) != APR_SUCCESS
        || !json_is_object(obj)) {
        return APR_SUCCESS;
    }
    type = tb_jstr(obj, "type");
    if (!type) {
        type = sse->event ? sse->event : "";
    }
    e.seq = jlong(obj, "sequence_number", -1);
    if (e.seq >= 0) {
        d->last_seq = e.seq;
    }
    if (!d->started && strcmp(type, "error")) {
        const json_t *r = json_object_get(obj, "response");
        tb_ir_ev_t *ev = ev_new(p, TB_EV_START, 0, TB_BLOCK_OTHER);

        d->started = 1;
        ev->id = tb_jstr(r, "id");
        ev->model = tb_jstr(r, "model");
        ev->created = jlong(r, "created_at", 0);
        demit(&e, ev);
    }
    if (!strcmp(type, "response.output_item.added")) {
        dec_item_t *it = dec_item(d, jlong(obj, "output_index", -1));
        if (it) {
            open_item(d, &e, p, it, json_object_get(obj, "item"));
        }
    }
    else if (!strcmp(type, "response.content_part.added")) {
        const json_t *part = json_object_get(obj, "part");
        const char *pt = tb_jstr(part, "type");
        tb_block_kind_t bk = pt && !strcmp(pt, "refusal") ? TB_BLOCK_REFUSAL
                                                          : TB_BLOCK_TEXT;

        close_text(d, &e, p, NULL);
        d->text_block = d->next_block++;
        d->text_item = jlong(obj, "output_index", -1);
        d->text_kind = bk;
        d->text_deltas = 0;
        demit(&e, ev_new(p, TB_EV_BLOCK_START, d->text_block, bk));
    }
    else if (!strcmp(type, "response.output_text.delta")) {
        decode_delta(d, &e, p, obj, TB_BLOCK_TEXT);
    }
    else if (!strcmp(type, "response.refusal.delta")) {
        decode_delta(d, &e, p, obj, TB_BLOCK_REFUSAL);
    }
    else if (!strcmp(type, "response.reasoning_summary_text.delta")
             || !strcmp(type, "response.reasoning_text.delta")) {
        decode_delta(d, &e, p, obj, TB_BLOCK_REASONING);
    }
    else if (!strcmp(type, "response.function_call_arguments.delta")
             || !strcmp(type, "response.custom_tool_call_input.delta")) {
        decode_delta(d, &e, p, obj, TB_BLOCK_TOOL_CALL);
    }
    else if (!strcmp(type, "response.function_call_arguments.done")
             || !strcmp(type, "response.custom_tool_call_input.done")) {
        /* some upstreams send the arguments only here (trap 62) */
        long idx = jlong(obj, "output_index", -1);
        dec_item_t *it = dec_item(d, idx);
        const char *whole = tb_jstr(obj, strstr(type, "function") ? "arguments" : "input");

        if (it && it->block >= 0 && !it->deltas && whole && *whole) {
            tb_ir_ev_t *dl = ev_new(p, TB_EV_DELTA, it->block, TB_BLOCK_TOOL_CALL);
            dl->text = whole;
            dl->text_len = strlen(whole);
            it->deltas = 1;
            demit(&e, dl);
        }
    }
    else if (!strcmp(type, "response.content_part.done")) {
        const json_t *part = json_object_get(obj, "part");
        const char *t = tb_jstr(part, "text");
        close_text(d, &e, p, t ? t : tb_jstr(part, "refusal"));
    }
    else if (!strcmp(type, "response.output_text.done")
             || !strcmp(type, "response.refusal.done")) {
        /* the whole text, for upstreams that sent no deltas (trap 62) */
        const char *t = tb_jstr(obj, "text");
        close_text(d, &e, p, t ? t : tb_jstr(obj, "refusal"));
    }
    else if (!strcmp(type, "response.output_item.done")) {
        finish_item(d, &e, p, jlong(obj, "output_index", -1),
                    json_object_get(obj, "item"));
    }
    else if (!strcmp(type, "response.completed") || !strcmp(type, "response.done")
             || !strcmp(type, "response.incomplete")
             || !strcmp(type, "response.failed")) {
        decode_terminal(d, &e, p, obj, type);
    }
    else if (!strcmp(type, "error")) {
        tb_ir_error_t *err = apr_pcalloc(p, sizeof(*err));
        tb_ir_ev_t *ev = ev_new(p, TB_EV_ERROR, 0, TB_BLOCK_OTHER);
        const json_t *inner = json_object_get(obj, "error");

        read_error(p, json_is_object(inner) ? inner : obj, err);
        d->errored = 1;
        ev->error = err;
        demit(&e, ev);
    }
    if (!e.emitted) {
        demit(&e, ev_new(p, TB_EV_MARK, 0, TB_BLOCK_OTHER));
    }
    return e.rv;
}

/* ---- answers to a Responses client ------------------------------------------------------ */

static json_t *usage_json(const tb_ir_usage_t *u)
{
    long total = tb_ir_usage_total(u);

    return json_pack("{s:I, s:{s:I, s:I}, s:I, s:{s:I}, s:I}",
                     "input_tokens", (json_int_t)(u->input >= 0 ? u->input : 0),
                     "input_tokens_details",
                     "cached_tokens", (json_int_t)(u->input_cached >= 0 ? u->input_cached : 0),
                     "cache_write_tokens", (json_int_t)(u->input_cache_write >= 0
                                                        ? u->input_cache_write : 0),
                     "output_tokens", (json_int_t)(u->output >= 0 ? u->output : 0),
                     "output_tokens_details",
                     "reasoning_tokens", (json_int_t)(u->output_reasoning >= 0
                                                      ? u->output_reasoning : 0),
                     "total_tokens", (json_int_t)(total >= 0 ? total : 0));
}

static json_t *num_or(double v, double dflt)
{
    return json_real(isnan(v) ? dflt : v);
}

/* A Response object with every field the OpenResponses schema requires,
 * the request's settings echoed. `output` and `usage` are stolen. */
static json_t *response_json(apr_pool_t *p, const tb_ir_req_t *req, const char *id,
                             const char *model, apr_int64_t created,
                             const char *status, json_t *output, json_t *usage)
{
    json_t *r = json_object();
    json_t *reasoning = json_object();

    json_object_set_new(r, "id", json_string(id));
    json_object_set_new(r, "object", json_string("response"));
    json_object_set_new(r, "created_at", json_integer(created));
    json_object_set_new(r, "status", json_string(status));
    json_object_set_new(r, "background", json_false());
    json_object_set_new(r, "completed_at", !strcmp(status, "completed")
                        ? json_integer(apr_time_sec(apr_time_now())) : json_null());
    json_object_set_new(r, "error", json_null());
    json_object_set_new(r, "incomplete_details", json_null());
    json_object_set_new(r, "instructions", req && req->instructions
                        ? json_string(req->instructions) : json_null());
    json_object_set_new(r, "max_output_tokens", req && req->max_output_tokens >= 0
                        ? json_integer(req->max_output_tokens) : json_null());
    json_object_set_new(r, "max_tool_calls", json_null());
    json_object_set_new(r, "model", json_string(model ? model : ""));
    json_object_set_new(r, "output", output);
    json_object_set_new(r, "parallel_tool_calls",
                        json_boolean(!req || req->parallel_tool_calls != 0));
    json_object_set_new(r, "previous_response_id", json_null());
    json_object_set_new(r, "prompt_cache_key", req && req->prompt_cache_key
                        ? json_string(req->prompt_cache_key) : json_null());
    json_object_set_new(reasoning, "effort", req && req->effort
                        ? json_string(req->effort) : json_null());
    json_object_set_new(reasoning, "summary", req && req->reasoning_summary
                        ? json_string(req->reasoning_summary) : json_null());
    json_object_set_new(r, "reasoning", reasoning);
    json_object_set_new(r, "safety_identifier", req && req->safety_identifier
                        ? json_string(req->safety_identifier) : json_null());
    json_object_set_new(r, "service_tier", json_string(req && req->service_tier
                                                       ? req->service_tier : "default"));
    json_object_set_new(r, "store", json_boolean(req && req->store > 0));
    json_object_set_new(r, "temperature", num_or(req ? req->temperature : NAN, 1));
    json_object_set_new(r, "text", req ? text_json(req)
                                       : json_pack("{s:{s:s}}", "format", "type", "text"));
    {
        json_t *tc = req && req->tool_choice != TB_TC_UNSET ? tool_choice_json(req) : NULL;
        json_object_set_new(r, "tool_choice", tc ? tc : json_string("auto"));
    }
    json_object_set_new(r, "tools", req ? tools_json(p, req) : json_array());
    json_object_set_new(r, "top_logprobs", json_integer(req && req->top_logprobs >= 0
                                                        ? req->top_logprobs : 0));
    json_object_set_new(r, "top_p", num_or(req ? req->top_p : NAN, 1));
    json_object_set_new(r, "presence_penalty", num_or(req ? req->presence_penalty : NAN, 0));
    json_object_set_new(r, "frequency_penalty", num_or(req ? req->frequency_penalty : NAN, 0));
    json_object_set_new(r, "truncation", json_string("disabled"));
    json_object_set_new(r, "usage", usage ? usage : json_null());
    json_object_set_new(r, "user", req && req->user ? json_string(req->user) : json_null());
    if (req && req->metadata) {
        json_object_set(r, "metadata", req->metadata);
    }
    else {
        json_object_set_new(r, "metadata", json_object());
    }
    return r;
}

static void set_terminal_status(json_t *r, tb_finish_t fin)
{
    if (fin == TB_FIN_LENGTH || fin == TB_FIN_CONTENT_FILTER) {
        json_object_set_new(r, "status", json_string("incomplete"));
        json_object_set_new(r, "completed_at", json_null());
        json_object_set_new(r, "incomplete_details", json_pack("{s:s}", "reason",
                            fin == TB_FIN_LENGTH ? "max_output_tokens"
                                                 : "content_filter"));
    }
}

/* A tool call item as the client declared the tool: a custom tool that
 * another dialect carried as a function comes back as a custom call, its
 * input unwrapped from {"input": ...} (trap 64); a flattened namespaced
 * name gets its namespace back. */
static json_t *call_item(apr_pool_t *p, const tb_ir_req_t *req, const char *id,
                         const char *call_id, const char *name, const char *args,
                         int custom, const char *status)
{
    const tb_ir_tool_t *tool = tb_ir_req_tool(p, req, name);
    json_t *item;

    if (tool) {
        name = tool->name;
    }
    if ((tool && tool->kind == TB_TOOL_CUSTOM) || custom) {
        const char *input = args;
        if (!custom) {
            json_t *o;
            if (args && tb_json_parse(&o, p, args, strlen(args), NULL) == APR_SUCCESS
                && tb_jstr(o, "input")) {
                input = tb_jstr(o, "input");
            }
        }
        item = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id",
                         id ? id : tb_ir_new_id(p, "ctc_"), "type", "custom_tool_call",
                         "status", status, "call_id", call_id ? call_id : "",
                         "name", name ? name : "", "input", input ? input : "");
    }
    else {
        item = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id",
                         id ? id : tb_ir_new_id(p, "fc_"), "type", "function_call",
                         "status", status, "arguments", args ? args : "",
                         "call_id", call_id ? call_id : "", "name", name ? name : "");
    }
    if (tool && tool->ns) {
        json_object_set_new(item, "namespace", json_string(tool->ns));
    }
    return item;
}

static json_t *text_part(const char *kind, const char *text)
{
    return !strcmp(kind, "refusal")
        ? json_pack("{s:s, s:s}", "type", "refusal", "refusal", text)
        : json_pack("{s:s, s:[], s:[], s:s}", "type", "output_text",
                    "annotations", "logprobs", "text", text);
}

static json_t *reasoning_item(const char *id, const char *text,
                              const char *encrypted)
{
    json_t *item = json_pack("{s:s, s:s, s:[]}", "id", id, "type", "reasoning",
                             "summary");

    if (text && *text) {
        json_array_append_new(json_object_get(item, "summary"),
                              json_pack("{s:s, s:s}", "type", "summary_text",
                                        "text", text));
    }
    if (encrypted) {
        json_object_set_new(item, "encrypted_content", json_string(encrypted));
    }
    return item;
}

static apr_status_t resp_render(apr_pool_t *p, const tb_ir_req_t *req,
                                const tb_ir_resp_t *resp, const char **pbody,
                                apr_size_t *plen)
{
    json_t *output = json_array(), *msg = NULL, *root;
    int i;

    for (i = 0; i < resp->output->nelts; ++i) {
        const tb_ir_part_t *pt = &APR_ARRAY_IDX(resp->output, i, tb_ir_part_t);

        if (pt->kind == TB_PART_TEXT || pt->kind == TB_PART_REFUSAL) {
            if (!msg) {
                msg = json_pack("{s:s, s:s, s:s, s:s, s:[]}", "id",
                                tb_ir_new_id(p, "msg_"), "type", "message",
                                "status", "completed", "role", "assistant", "content");
                json_array_append_new(output, msg);
            }
            json_array_append_new(json_object_get(msg, "content"),
                                  text_part(pt->kind == TB_PART_REFUSAL ? "refusal"
                                            : "output_text", pt->text ? pt->text : ""));
            continue;
        }
        msg = NULL;
        if (pt->kind == TB_PART_REASONING) {
            json_array_append_new(output, reasoning_item(tb_ir_new_id(p, "rs_"),
                                                         pt->text, NULL));
        }
        else if (pt->kind == TB_PART_TOOL_CALL) {
            /* NB: a call whose arguments are not JSON (cut short) would be
             * kept and replayed by Codex: left out (6B) */
            if (!pt->custom && pt->arguments && *pt->arguments
                && tb_json_validate(p, pt->arguments, strlen(pt->arguments), NULL)
                   != APR_SUCCESS) {
                continue;
            }
            json_array_append_new(output, call_item(p, req, NULL, pt->call_id,
                                  pt->name, pt->arguments && *pt->arguments
                                  ? pt->arguments : "{}", pt->custom, "completed"));
        }
    }
    if (!json_array_size(output)) {
        /* nothing at all: an empty message, never an empty output */
        json_array_append_new(output, json_pack("{s:s, s:s, s:s, s:s, s:[o]}", "id",
                              tb_ir_new_id(p, "msg_"), "type", "message", "status",
                              "completed", "role", "assistant", "content",
                              text_part("output_text", "")));
    }
    root = tb_json_pool_own(p, response_json(p, req, tb_ir_new_id(p, "resp_"),
                            resp->model ? resp->model : req->model,
                            resp->created ? resp->created : apr_time_sec(apr_time_now()),
                            "completed", output, usage_json(&resp->usage)));
    set_terminal_status(root, resp->finish);
    *pbody = tb_json_dump(p, root, plen);
    return *pbody ? APR_SUCCESS : APR_ENOMEM;
}

/* ---- the stream to a Responses client ---------------------------------------------------- */

typedef struct enc_item_t {
    int out_idx;
    const char *id;
    tb_block_kind_t kind;        /* TEXT stands for a message item */
    const char *call_id, *name;
    int custom;                  /* a custom call from upstream */
    int restore;                 /* a custom tool carried as a function:
                                  * announced only when complete */
    tb_buf_t text;               /* reasoning summary, or arguments/input */
    json_t *parts;               /* message: its finished content parts */
    const char *encrypted;
    int done;
} enc_item_t;

typedef struct resp_enc_t {
    apr_pool_t *pool;
    const tb_ir_req_t *req;      /* NULL on the fast path */
    const char *id, *model;
    apr_int64_t created;
    long seq;                    /* the next sequence_number */
    int opened;                  /* created + in_progress went out */
    apr_array_header_t *items;   /* enc_item_t *, by output index */
    apr_array_header_t *blocks;  /* enc_item_t * by IR block, or NULL */
    enc_item_t *message;         /* the open message item, or NULL */
    enc_item_t *reasoning;       /* the open reasoning item, or NULL */
    int part_open;               /* a content part of it is open */
    int part_refusal;
    tb_buf_t part_text;
    tb_finish_t finish;
    tb_ir_usage_t usage;
    int done;
} resp_enc_t;

static void *resp_encoder_create(apr_pool_t *p, const tb_ir_req_t *req,
                                 int wants_usage)
{
    resp_enc_t *c = apr_pcalloc(p, sizeof(*c));

    c->pool = p;
    c->req = req;
    c->items = apr_array_make(p, 4, sizeof(enc_item_t *));
    c->blocks = apr_array_make(p, 8, sizeof(enc_item_t *));
    tb_ir_usage_init(&c->usage);
    return c;
}

#define MAX_TEXT ((apr_size_t)64 * 1024 * 1024)

/* One event: type and sequence_number first, then the members given. */
static apr_status_t put(resp_enc_t *c, apr_pool_t *p, tb_buf_t *out,
                        const char *type, json_t *members)
{
    json_t *ev = tb_json_pool_own(p, json_pack("{s:s, s:I}", "type", type,
                                  "sequence_number", (json_int_t)c->seq++));

    if (members) {
        json_object_update(ev, members);
        json_decref(members);
    }
    return tb_sse_write_json(out, p, type, ev);
}

/* An item as it stands (its final form once done). */
static json_t *item_json(resp_enc_t *c, apr_pool_t *p, const enc_item_t *it)
{
    switch (it->kind) {
    case TB_BLOCK_REASONING:
        return reasoning_item(it->id, it->text.data, it->encrypted);
    case TB_BLOCK_TOOL_CALL:
        return call_item(p, c->req, it->id, it->call_id, it->name,
                         it->text.data ? it->text.data : "", it->custom,
                         it->done ? "completed" : "in_progress");
    default:
        return json_pack("{s:s, s:s, s:s, s:s, s:O}", "id", it->id, "type", "message",
                         "status", it->done ? "completed" : "in_progress",
                         "role", "assistant", "content", it->parts);
    }
}

/* The response as it stands: lifecycle events replace the client's whole
 * snapshot, so the final one carries every item with the streamed ids. */
static json_t *snapshot(resp_enc_t *c, apr_pool_t *p, const char *status, int full)
{
    json_t *output = json_array();
    int i;

    for (i = 0; full && i < c->items->nelts; ++i) {
        json_array_append_new(output, item_json(c, p, APR_ARRAY_IDX(c->items, i,
                                                                    enc_item_t *)));
    }
    return response_json(p, c->req, c->id, c->model, c->created, status, output,
                         full ? usage_json(&c->usage) : NULL);
}

static apr_status_t open_response(resp_enc_t *c, apr_pool_t *p, tb_buf_t *out)
{
    apr_status_t rv;

    if (c->opened) {
        return APR_SUCCESS;
    }
    c->opened = 1;
    if (!c->id) {
        c->id = tb_ir_new_id(c->pool, "resp_");
        c->model = c->req ? c->req->model : "";
        c->created = apr_time_sec(apr_time_now());
    }
    if ((rv = put(c, p, out, "response.created", json_pack("{s:o}", "response",
                  snapshot(c, p, "in_progress", 0)))) != APR_SUCCESS) {
        return rv;
    }
    return put(c, p, out, "response.in_progress", json_pack("{s:o}", "response",
               snapshot(c, p, "in_progress", 0)));
}

/* An item takes its output index when it is announced: a custom call
 * announced only at its end must not hold an index that later items pass
 * (the SDK wants every index announced before it is used). */
static void announce(resp_enc_t *c, enc_item_t *it)
{
    it->out_idx = c->items->nelts;
    APR_ARRAY_PUSH(c->items, enc_item_t *) = it;
}

static enc_item_t *new_item(resp_enc_t *c, tb_block_kind_t kind, const char *prefix,
                            int announced)
{
    enc_item_t *it = apr_pcalloc(c->pool, sizeof(*it));

    it->kind = kind;
    it->id = tb_ir_new_id(c->pool, prefix);
    it->out_idx = -1;
    if (announced) {
        announce(c, it);
    }
    return it;
}

static void bind_block(resp_enc_t *c, int block, enc_item_t *it)
{
    if (block < 0 || block > 65536) {
        return;
    }
    while (c->blocks->nelts <= block) {
        APR_ARRAY_PUSH(c->blocks, enc_item_t *) = NULL;
    }
    APR_ARRAY_IDX(c->blocks, block, enc_item_t *) = it;
}

static enc_item_t *item_of(resp_enc_t *c, int block)
{
    return block >= 0 && block < c->blocks->nelts
        ? APR_ARRAY_IDX(c->blocks, block, enc_item_t *) : NULL;
}

static apr_status_t close_part(resp_enc_t *c, apr_pool_t *p, tb_buf_t *out)
{
    enc_item_t *m = c->message;
    const char *text = c->part_text.data ? c->part_text.data : "";
    json_t *part;
    int ci;
    apr_status_t rv;

    if (!m || !c->part_open) {
        return APR_SUCCESS;
    }
    c->part_open = 0;
    ci = (int)json_array_size(m->parts);
    rv = put(c, p, out, c->part_refusal ? "response.refusal.done"
             : "response.output_text.done",
             c->part_refusal
             ? json_pack("{s:s, s:i, s:i, s:s}", "item_id", m->id, "output_index",
                         m->out_idx, "content_index", ci, "refusal", text)
             : json_pack("{s:s, s:i, s:i, s:s, s:[]}", "item_id", m->id,
                         "output_index", m->out_idx, "content_index", ci,
                         "text", text, "logprobs"));
    /* NB: the part joins the item in the stream's pool: it outlives this
     * event's scratch */
    part = text_part(c->part_refusal ? "refusal" : "output_text", text);
    json_array_append_new(m->parts, part);
    if (rv == APR_SUCCESS) {
        rv = put(c, p, out, "response.content_part.done",
                 json_pack("{s:s, s:i, s:i, s:O}", "item_id", m->id, "output_index",
                           m->out_idx, "content_index", ci, "part", part));
    }
    tb_buf_clear(&c->part_text);
    return rv;
}

static apr_status_t close_item(resp_enc_t *c, apr_pool_t *p, tb_buf_t *out,
                               enc_item_t *it)
{
    apr_status_t rv = APR_SUCCESS;
    const char *text = it->text.data ? it->text.data : "";

    if (!it || it->done) {
        return APR_SUCCESS;
    }
    if (it == c->message) {
        if ((rv = close_part(c, p, out)) != APR_SUCCESS) {
            return rv;
        }
        c->message = NULL;
    }
    else if (it->kind == TB_BLOCK_REASONING) {
        if ((rv = put(c, p, out, "response.reasoning_summary_text.done",
                      json_pack("{s:s, s:i, s:i, s:s}", "item_id", it->id,
                                "output_index", it->out_idx, "summary_index", 0,
                                "text", text))) != APR_SUCCESS
            || (rv = put(c, p, out, "response.reasoning_summary_part.done",
                         json_pack("{s:s, s:i, s:i, s:{s:s, s:s}}", "item_id", it->id,
                                   "output_index", it->out_idx, "summary_index", 0,
                                   "part", "type", "summary_text", "text", text)))
               != APR_SUCCESS) {
            return rv;
        }
    }
    else if (it->kind == TB_BLOCK_TOOL_CALL) {
        json_t *item = tb_json_pool_own(p, item_json(c, p, it));
        const char *input = tb_jstr(item, "input");

        if (it->restore) {
            /* announced now that the whole input is known */
            json_t *added = json_deep_copy(item);

            announce(c, it);
            json_object_set_new(added, "input", json_string(""));
            if ((rv = put(c, p, out, "response.output_item.added",
                          json_pack("{s:i, s:o}", "output_index", it->out_idx,
                                    "item", added))) != APR_SUCCESS
                || (rv = put(c, p, out, "response.custom_tool_call_input.delta",
                             json_pack("{s:s, s:i, s:s}", "item_id", it->id,
                                       "output_index", it->out_idx, "delta",
                                       input ? input : ""))) != APR_SUCCESS) {
                return rv;
            }
        }
        rv = input
            ? put(c, p, out, "response.custom_tool_call_input.done",
                  json_pack("{s:s, s:i, s:s}", "item_id", it->id, "output_index",
                            it->out_idx, "input", input))
            : put(c, p, out, "response.function_call_arguments.done",
                  json_pack("{s:s, s:i, s:s, s:s}", "item_id", it->id,
                            "output_index", it->out_idx, "name",
                            tb_jstr(item, "name"), "arguments", text));
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    it->done = 1;
    return put(c, p, out, "response.output_item.done",
               json_pack("{s:i, s:o}", "output_index", it->out_idx,
                         "item", item_json(c, p, it)));
}

/* Everything still open is closed, in output order. */
static apr_status_t close_all_items(resp_enc_t *c, apr_pool_t *p, tb_buf_t *out)
{
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; rv == APR_SUCCESS && i < c->items->nelts; ++i) {
        rv = close_item(c, p, out, APR_ARRAY_IDX(c->items, i, enc_item_t *));
    }
    return rv;
}

/* A new item seals the open ones: the message, and reasoning (6C). */
static apr_status_t seal_open(resp_enc_t *c, apr_pool_t *p, tb_buf_t *out)
{
    apr_status_t rv = APR_SUCCESS;

    /* NB: only the open message and reasoning item, never a walk over all
     * items: an upstream switching between reasoning and text would make
     * that quadratic */
    if (c->message) {
        rv = close_item(c, p, out, c->message);
    }
    if (rv == APR_SUCCESS && c->reasoning) {
        rv = close_item(c, p, out, c->reasoning);
        c->reasoning = NULL;
    }
    return rv;
}

static apr_status_t encode_block_start(resp_enc_t *c, apr_pool_t *p,
                                       const tb_ir_ev_t *ev, tb_buf_t *out)
{
    enc_item_t *it;
    apr_status_t rv;

    switch (ev->bkind) {
    case TB_BLOCK_TEXT:
    case TB_BLOCK_REFUSAL:
        if (!c->message) {
            if ((rv = seal_open(c, p, out)) != APR_SUCCESS) {
                return rv;
            }
            c->message = new_item(c, TB_BLOCK_TEXT, "msg_", 1);
            c->message->parts = tb_json_pool_own(c->pool, json_array());
            if ((rv = put(c, p, out, "response.output_item.added",
                          json_pack("{s:i, s:{s:s, s:s, s:s, s:s, s:[]}}",
                                    "output_index", c->message->out_idx, "item",
                                    "id", c->message->id, "type", "message",
                                    "status", "in_progress", "role", "assistant",
                                    "content"))) != APR_SUCCESS) {
                return rv;
            }
        }
        if ((rv = close_part(c, p, out)) != APR_SUCCESS) {
            return rv;
        }
        bind_block(c, ev->block, c->message);
        c->part_open = 1;
        c->part_refusal = ev->bkind == TB_BLOCK_REFUSAL;
        return put(c, p, out, "response.content_part.added",
                   json_pack("{s:s, s:i, s:i, s:o}", "item_id", c->message->id,
                             "output_index", c->message->out_idx, "content_index",
                             (int)json_array_size(c->message->parts), "part",
                             text_part(c->part_refusal ? "refusal" : "output_text",
                                       "")));
    case TB_BLOCK_REASONING:
        if ((rv = seal_open(c, p, out)) != APR_SUCCESS) {
            return rv;
        }
        it = new_item(c, TB_BLOCK_REASONING, "rs_", 1);
        c->reasoning = it;
        bind_block(c, ev->block, it);
        if ((rv = put(c, p, out, "response.output_item.added",
                      json_pack("{s:i, s:{s:s, s:s, s:[]}}", "output_index",
                                it->out_idx, "item", "id", it->id, "type",
                                "reasoning", "summary"))) != APR_SUCCESS) {
            return rv;
        }
        return put(c, p, out, "response.reasoning_summary_part.added",
                   json_pack("{s:s, s:i, s:i, s:{s:s, s:s}}", "item_id", it->id,
                             "output_index", it->out_idx, "summary_index", 0,
                             "part", "type", "summary_text", "text", ""));
    case TB_BLOCK_TOOL_CALL: {
        const tb_ir_tool_t *tool = tb_ir_req_tool(p, c->req, ev->name);
        json_t *item;

        if ((rv = seal_open(c, p, out)) != APR_SUCCESS) {
            return rv;
        }
        /* a custom tool that the upstream saw as a function: its input is
         * inside JSON arguments, known (and announced) only at the end */
        int restore = !ev->custom && tool && tool->kind == TB_TOOL_CUSTOM;

        it = new_item(c, TB_BLOCK_TOOL_CALL, ev->custom || restore ? "ctc_" : "fc_",
                      !restore);
        it->call_id = apr_pstrdup(c->pool, ev->call_id ? ev->call_id
                                  : tb_ir_new_id(p, "call_"));
        it->name = apr_pstrdup(c->pool, ev->name ? ev->name : "");
        it->custom = ev->custom;
        it->restore = restore;
        bind_block(c, ev->block, it);
        if (it->restore) {
            return APR_SUCCESS;
        }
        item = item_json(c, p, it);
        return put(c, p, out, "response.output_item.added",
                   json_pack("{s:i, s:o}", "output_index", it->out_idx, "item", item));
    }
    default:
        return APR_SUCCESS;
    }
}

static apr_status_t encode_delta(resp_enc_t *c, apr_pool_t *p,
                                 const tb_ir_ev_t *ev, tb_buf_t *out)
{
    enc_item_t *it = item_of(c, ev->block);
    json_t *delta = json_stringn(ev->text, ev->text_len);
    apr_status_t rv;

    if (!it || it->done || !delta) {
        json_decref(delta);
        return APR_SUCCESS;
    }
    if (it == c->message) {
        if (!c->part_open) {
            json_decref(delta);
            return APR_SUCCESS;
        }
        if ((rv = tb_buf_append(&c->part_text, c->pool, ev->text, ev->text_len,
                                MAX_TEXT)) != APR_SUCCESS) {
            json_decref(delta);
            return rv;   /* past the bound: the stream fails, never cut short */
        }
        return put(c, p, out, c->part_refusal ? "response.refusal.delta"
                   : "response.output_text.delta",
                   c->part_refusal
                   ? json_pack("{s:s, s:i, s:i, s:o}", "item_id", it->id,
                               "output_index", it->out_idx, "content_index",
                               (int)json_array_size(it->parts), "delta", delta)
                   : json_pack("{s:s, s:i, s:i, s:o, s:[]}", "item_id", it->id,
                               "output_index", it->out_idx, "content_index",
                               (int)json_array_size(it->parts), "delta", delta,
                               "logprobs"));
    }
    if ((rv = tb_buf_append(&it->text, c->pool, ev->text, ev->text_len, MAX_TEXT))
        != APR_SUCCESS || it->restore) {
        json_decref(delta);
        return rv;
    }
    if (it->kind == TB_BLOCK_REASONING) {
        return put(c, p, out, "response.reasoning_summary_text.delta",
                   json_pack("{s:s, s:i, s:i, s:o}", "item_id", it->id,
                             "output_index", it->out_idx, "summary_index", 0,
                             "delta", delta));
    }
    return put(c, p, out, it->custom ? "response.custom_tool_call_input.delta"
               : "response.function_call_arguments.delta",
               json_pack("{s:s, s:i, s:o}", "item_id", it->id, "output_index",
                         it->out_idx, "delta", delta));
}

/* After the commit a Responses stream ends with response.failed (never
 * silently, never with a chat chunk): Codex and the SDK read its
 * error.code. On the fast path the upstream's id and numbering go on. */
static apr_status_t resp_encode_fail_impl(resp_enc_t *c, apr_pool_t *p,
                                          const tb_ir_error_t *err, tb_buf_t *out)
{
    json_t *r;

    if (c->done) {
        return APR_SUCCESS;
    }
    c->done = 1;
    if (!c->id) {
        c->id = tb_ir_new_id(c->pool, "resp_");
        c->model = c->req ? c->req->model : "";
        c->created = apr_time_sec(apr_time_now());
    }
    r = snapshot(c, p, "failed", 1);
    json_object_set_new(r, "error", json_pack("{s:s, s:s}", "code",
                        err->code ? err->code : "server_error", "message",
                        err->message ? err->message : "The upstream failed."));
    return put(c, p, out, "response.failed", json_pack("{s:o}", "response", r));
}

static apr_status_t resp_encode(void *enc, apr_pool_t *p, const tb_ir_ev_t *ev,
                                tb_buf_t *out)
{
    resp_enc_t *c = enc;
    apr_status_t rv;
    enc_item_t *it;

    if (ev->seq >= 0) {
        c->seq = ev->seq + 1;   /* the fast path: after the upstream's */
    }
    if (ev->kind == TB_EV_START && !c->id && !c->opened) {
        /* the fast path keeps the upstream's id; a conversion makes one */
        c->id = apr_pstrdup(c->pool, !c->req && ev->id ? ev->id
                                     : tb_ir_new_id(p, "resp_"));
        c->model = apr_pstrdup(c->pool, ev->model ? ev->model
                               : (c->req ? c->req->model : ""));
        c->created = ev->created ? ev->created : apr_time_sec(apr_time_now());
    }
    if (ev->kind == TB_EV_USAGE) {
        tb_ir_usage_merge(&c->usage, ev->usage);
    }
    if (ev->kind == TB_EV_FINISH) {
        c->finish = ev->finish;
    }
    if (!out || c->done) {
        return APR_SUCCESS;
    }
    if ((rv = open_response(c, p, out)) != APR_SUCCESS) {
        return rv;
    }
    switch (ev->kind) {
    case TB_EV_BLOCK_START:
        return encode_block_start(c, p, ev, out);
    case TB_EV_DELTA:
        return encode_delta(c, p, ev, out);
    case TB_EV_BLOCK_STOP:
        it = item_of(c, ev->block);
        if (!it) {
            return APR_SUCCESS;
        }
        if (ev->encrypted && !it->encrypted) {
            it->encrypted = apr_pstrdup(c->pool, ev->encrypted);
        }
        if (it == c->message) {
            return close_part(c, p, out);   /* the message waits for more parts */
        }
        return close_item(c, p, out, it);
    case TB_EV_ERROR:
        return resp_encode_fail_impl(c, p, ev->error, out);
    case TB_EV_END:
        if ((rv = close_all_items(c, p, out)) != APR_SUCCESS) {
            return rv;
        }
        c->done = 1;
        {
            json_t *r = snapshot(c, p, "completed", 1);
            set_terminal_status(r, c->finish);
            return put(c, p, out, !strcmp(tb_jstr(r, "status"), "incomplete")
                       ? "response.incomplete" : "response.completed",
                       json_pack("{s:o}", "response", r));
        }
    default:
        return APR_SUCCESS;
    }
}

static apr_status_t resp_encode_fail(void *enc, apr_pool_t *p,
                                     const tb_ir_error_t *err, tb_buf_t *out)
{
    return resp_encode_fail_impl(enc, p, err, out);
}

const tb_dialect_t tb_dialect_responses = {
    TB_DIALECT_RESPONSES,
    "openai-responses",
    "openai",
    TB_CAP_STORE | TB_CAP_COMPACT,
    resp_check,
    resp_parse,
    resp_splice,
    resp_path,
    tb_openai_auth,
    resp_emit,
    resp_parse_response,
    resp_usage_scan,
    tb_openai_error_read,
    resp_decoder_create,
    resp_decode,
    resp_render,
    tb_openai_error_render,
    resp_encoder_create,
    resp_encode,
    resp_encode_fail,
};
