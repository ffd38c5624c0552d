/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
/* The OpenAI Chat Completions dialect ("openai-chat"): POST
 * /chat/completions, chat.completion answers, chat.completion.chunk
 * streams ending with "data: [DONE]". */
#include <math.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "tb_dialect.h"
#include "tb_openai.h"

/* ---- the client's request: one scan ------------------------------------------------- */

static apr_status_t chat_check(apr_pool_t *p, tb_op_t op, const char *body,
                               apr_size_t len, tb_req_info_t *info,
                               tb_ir_error_t *err)
{
    const tb_jdoc_t *d = &info->doc;
    const char *perr = NULL;
    int n, m, i;

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
    if ((n = tb_openai_check_model(p, d, info, err)) != APR_SUCCESS) {
        return n;
    }
    n = tb_jdoc_member(d, 0, "messages");
    if (n < 0) {
        return tb_ir_error_invalid(err, "invalid_value", "messages",
                                   "Missing required parameter: 'messages'.");
    }
    if (d->nodes[n].type != '[' || !d->nodes[n].nchild) {
        return tb_ir_error_invalid(err, "invalid_value", "messages",
                                   "Invalid 'messages': expected a non-empty array.");
    }
    for (m = d->nodes[n].child, i = 0; m >= 0; m = d->nodes[m].next, ++i) {
        int role = tb_jdoc_member(d, m, "role");

        if (d->nodes[m].type == '{' && d->nodes[m].partial) {
            continue;   /* not indexed: the upstream will judge it */
        }
        if (role < 0 || d->nodes[role].type != '"') {
            const char *param = apr_psprintf(p, "messages[%d]", i);
            return tb_ir_error_invalid(err, "invalid_value", param, apr_psprintf(p,
                                       "Invalid '%s': expected an object with a "
                                       "string 'role'.", param));
        }
    }
    if ((n = tb_openai_check_stream(d, info, err)) != APR_SUCCESS) {
        return n;
    }
    n = tb_jdoc_member(d, tb_jdoc_member(d, 0, "stream_options"), "include_usage");
    info->include_usage = tb_jdoc_is(d, n, "true");
    return APR_SUCCESS;
}

/* The client's bytes with the model replaced and, for streams on accounts
 * that honour it, stream_options.include_usage switched on, so that the
 * gateway learns the usage of every stream. Numbers, escapes and order of
 * everything else stay exactly as sent. */
static apr_status_t chat_splice(apr_pool_t *p, const tb_req_info_t *info,
                                const char *model, unsigned caps,
                                apr_array_header_t **piov)
{
    static const char OPTS[] = "{\"include_usage\":true}";
    const tb_jdoc_t *d = &info->doc;
    tb_splice_t edits[2];
    int n = 0, so, iu;

    tb_openai_model_edit(p, d, model, &edits[n++]);
    if (info->stream && !info->include_usage && (caps & TB_CAP_STREAM_USAGE)) {
        so = tb_jdoc_member(d, 0, "stream_options");
        if (so < 0) {
            /* a new first member: the object has members (model) */
            edits[n].start = d->nodes[0].start + 1;
            edits[n].len = 0;
            edits[n++].repl = apr_pstrcat(p, "\"stream_options\":", OPTS, ",", NULL);
        }
        else if (d->nodes[so].type != '{') {
            edits[n].start = d->nodes[so].start;
            edits[n].len = d->nodes[so].len;
            edits[n++].repl = OPTS;
        }
        else if ((iu = tb_jdoc_member(d, so, "include_usage")) >= 0) {
            edits[n].start = d->nodes[iu].start;
            edits[n].len = d->nodes[iu].len;
            edits[n++].repl = "true";
        }
        else {
            edits[n].start = d->nodes[so].start + 1;
            edits[n].len = 0;
            edits[n++].repl = d->nodes[so].nchild ? "\"include_usage\":true,"
                                                  : "\"include_usage\":true";
        }
    }
    *piov = tb_splice_iov(p, info->body, info->len, edits, n);
    return APR_SUCCESS;
}

/* ---- the client's request: the IR ----------------------------------------------------- */

/* Text of a content value: a string, or the text parts of an array. */
static const char *content_text(apr_pool_t *p, const json_t *c)
{
    const json_t *part;
    size_t i;
    tb_join_t out;

    if (json_is_string(c)) {
        return json_string_value(c);
    }
    tb_join_init(&out, p, NULL);
    json_array_foreach(c, i, part) {
        const char *t = tb_jstr(part, "text");
        tb_join_add(&out, t ? t : tb_jstr(part, "refusal"));
    }
    return tb_join_done(&out, p);
}

static apr_status_t user_parts(apr_pool_t *p, const json_t *content,
                               apr_array_header_t *parts, const char *where,
                               tb_ir_error_t *err)
{
    const json_t *c;
    size_t i;

    if (json_is_string(content)) {
        tb_ir_part_add(p, parts, TB_PART_TEXT)->text = json_string_value(content);
        return APR_SUCCESS;
    }
    json_array_foreach(content, i, c) {
        const char *type = tb_jstr(c, "type");
        tb_ir_part_t *part;

        if (!type || !strcmp(type, "text")) {
            if (tb_jstr(c, "text")) {
                tb_ir_part_add(p, parts, TB_PART_TEXT)->text = tb_jstr(c, "text");
            }
        }
        else if (!strcmp(type, "image_url")) {
            const json_t *iu = json_object_get(c, "image_url");

            part = tb_ir_part_add(p, parts, TB_PART_IMAGE);
            part->url = json_is_string(iu) ? json_string_value(iu) : tb_jstr(iu, "url");
            part->detail = tb_jstr(iu, "detail");
        }
        else if (!strcmp(type, "input_audio")) {
            const json_t *ia = json_object_get(c, "input_audio");

            part = tb_ir_part_add(p, parts, TB_PART_AUDIO);
            part->data = tb_jstr(ia, "data");
            part->format = tb_jstr(ia, "format");
        }
        else if (!strcmp(type, "file")) {
            const json_t *f = json_object_get(c, "file");

            part = tb_ir_part_add(p, parts, TB_PART_FILE);
            part->data = tb_jstr(f, "file_data");
            part->file_id = tb_jstr(f, "file_id");
            part->filename = tb_jstr(f, "filename");
        }
        else if (!strcmp(type, "refusal")) {
            tb_ir_part_add(p, parts, TB_PART_REFUSAL)->text = tb_jstr(c, "refusal");
        }
        else {
            return tb_ir_error_invalid(err, "unsupported_value",
                                       apr_psprintf(p, "%s.content[%lu].type", where,
                                                    (unsigned long)i),
                                       apr_psprintf(p, "Content parts of type '%s' "
                                                    "cannot be sent to this model's "
                                                    "provider.", type));
        }
    }
    return APR_SUCCESS;
}

static void tool_call_part(apr_pool_t *p, tb_ir_msg_t *m, const json_t *tc)
{
    const char *type = tb_jstr(tc, "type");
    tb_ir_part_t *part = tb_ir_part_add(p, m->parts, TB_PART_TOOL_CALL);

    part->call_id = tb_jstr(tc, "id");
    if (type && !strcmp(type, "custom")) {
        const json_t *c = json_object_get(tc, "custom");
        part->custom = 1;
        part->name = tb_jstr(c, "name");
        part->arguments = tb_jstr(c, "input");
    }
    else {
        const json_t *f = json_object_get(tc, "function");
        part->name = tb_jstr(f, "name");
        part->arguments = tb_jstr(f, "arguments");
    }
}

static apr_status_t parse_messages(apr_pool_t *p, const json_t *msgs,
                                   tb_ir_req_t *req, tb_ir_error_t *err)
{
    const json_t *msg;
    size_t i;
    apr_status_t rv;

    json_array_foreach(msgs, i, msg) {
        const char *role = tb_jstr(msg, "role");
        const json_t *content = json_object_get(msg, "content");
        const char *where = apr_psprintf(p, "messages[%lu]", (unsigned long)i);
        tb_ir_msg_t *m;

        if (!strcmp(role, "system") || !strcmp(role, "developer")) {
            const char *t = content_text(p, content);
            m = tb_ir_msg_add(p, req, role[0] == 's' ? TB_ROLE_SYSTEM
                                                       : TB_ROLE_DEVELOPER);
            tb_ir_part_add(p, m->parts, TB_PART_TEXT)->text = t ? t : "";
        }
        else if (!strcmp(role, "user")) {
            m = tb_ir_msg_add(p, req, TB_ROLE_USER);
            m->name = tb_jstr(msg, "name");
            if ((rv = user_parts(p, content, m->parts, where, err)) != APR_SUCCESS) {
                return rv;
            }
        }
        else if (!strcmp(role, "assistant")) {
            const json_t *tcs = json_object_get(msg, "tool_calls"), *tc;
            const json_t *fc = json_object_get(msg, "function_call");
            const char *reasoning = tb_jstr(msg, "reasoning_content");
            const char *t;
            size_t k;

            m = tb_ir_msg_add(p, req, TB_ROLE_ASSISTANT);
            if (!reasoning) {
                reasoning = tb_jstr(msg, "reasoning");
            }
            if (reasoning && *reasoning) {
                tb_ir_part_add(p, m->parts, TB_PART_REASONING)->text = reasoning;
            }
            /* NB: SDKs echo "refusal":null and "annotations":[]; only
             * what carries meaning is kept */
            if (json_is_array(content)) {
                if ((rv = user_parts(p, content, m->parts, where, err)) != APR_SUCCESS) {
                    return rv;
                }
            }
            else if ((t = content_text(p, content)) && *t) {
                tb_ir_part_add(p, m->parts, TB_PART_TEXT)->text = t;
            }
            if ((t = tb_jstr(msg, "refusal")) && *t) {
                tb_ir_part_add(p, m->parts, TB_PART_REFUSAL)->text = t;
            }
            json_array_foreach(tcs, k, tc) {
                tool_call_part(p, m, tc);
            }
            if (json_is_object(fc)) {
                /* the legacy single function call: its name is its id */
                tb_ir_part_t *part = tb_ir_part_add(p, m->parts, TB_PART_TOOL_CALL);
                part->call_id = part->name = tb_jstr(fc, "name");
                part->arguments = tb_jstr(fc, "arguments");
            }
        }
        else if (!strcmp(role, "tool") || !strcmp(role, "function")) {
            tb_ir_part_t *part;
            const char *t = content_text(p, content);

            m = tb_ir_msg_add(p, req, TB_ROLE_TOOL);
            part = tb_ir_part_add(p, m->parts, TB_PART_TOOL_RESULT);
            part->result_call_id = role[0] == 't' ? tb_jstr(msg, "tool_call_id")
                                                  : tb_jstr(msg, "name");
            part->text = t ? t : "";
        }
        else {
            return tb_ir_error_invalid(err, "invalid_value",
                                       apr_pstrcat(p, where, ".role", NULL),
                                       apr_psprintf(p, "Invalid role '%s'.", role));
        }
    }
    return APR_SUCCESS;
}

static void parse_tools(apr_pool_t *p, const json_t *tools, tb_ir_req_t *req)
{
    const json_t *t;
    size_t i;

    json_array_foreach(tools, i, t) {
        const char *type = tb_jstr(t, "type");
        tb_ir_tool_t *tool = apr_array_push(req->tools);

        memset(tool, 0, sizeof(*tool));
        tool->strict = -1;
        if (!type || !strcmp(type, "function")) {
            const json_t *f = json_object_get(t, "function");
            const json_t *strict = json_object_get(f, "strict");

            tool->kind = TB_TOOL_FUNCTION;
            tool->name = tb_jstr(f, "name");
            tool->description = tb_jstr(f, "description");
            tool->parameters = json_object_get(f, "parameters");
            if (json_is_boolean(strict)) {
                tool->strict = json_is_true(strict);
            }
        }
        else if (!strcmp(type, "custom")) {
            const json_t *c = json_object_get(t, "custom");

            tool->kind = TB_TOOL_CUSTOM;
            tool->name = tb_jstr(c, "name");
            tool->description = tb_jstr(c, "description");
            tool->format = json_object_get(c, "format");
        }
        else {
            tool->kind = TB_TOOL_HOSTED;
            tool->hosted_type = type;
            tool->hosted = (json_t *)t;
        }
    }
}

static void parse_tool_choice(apr_pool_t *p, const json_t *tc, tb_ir_req_t *req)
{
    const char *type;

    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        req->tool_choice = !strcmp(s, "none") ? TB_TC_NONE
                         : !strcmp(s, "required") ? TB_TC_REQUIRED : TB_TC_AUTO;
        return;
    }
    if (!json_is_object(tc) || !(type = tb_jstr(tc, "type"))) {
        return;
    }
    if (!strcmp(type, "function") || !strcmp(type, "custom")) {
        req->tool_choice = TB_TC_NAMED;
        req->tool_choice_custom = type[0] == 'c';
        req->tool_choice_name = tb_jstr(json_object_get(tc, type), "name");
    }
    else if (!strcmp(type, "allowed_tools")) {
        const json_t *at = json_object_get(tc, "allowed_tools"), *t;
        json_t *names = json_array();
        size_t i;

        req->tool_choice = TB_TC_ALLOWED;
        req->allowed_mode = tb_jstr(at, "mode");
        /* chat nests each tool ({type, function:{name}}); the IR keeps
         * the flat form ({type, name}) */
        json_array_foreach(json_object_get(at, "tools"), i, t) {
            const char *tt = tb_jstr(t, "type");
            const char *name = tt ? tb_jstr(json_object_get(t, tt), "name") : NULL;
            if (tt && name) {
                json_array_append_new(names, json_pack("{s:s, s:s}", "type", tt,
                                                       "name", name));
            }
        }
        req->allowed_tools = tb_json_pool_own(p, names);
    }
}

static apr_status_t chat_parse(apr_pool_t *p, const tb_req_info_t *info,
                               tb_ir_req_t **preq, tb_ir_error_t *err)
{
    tb_ir_req_t *req = tb_ir_req_create(p);
    json_t *root;
    const json_t *v;
    apr_status_t rv;

    if (tb_json_parse(&root, p, info->body, info->len, NULL) != APR_SUCCESS) {
        return tb_ir_error_invalid(err, "invalid_json", NULL,
                                   "The request body is not valid JSON.");
    }
    req->model = info->model;
    req->stream = info->stream;
    req->include_usage = info->include_usage;
    if ((rv = parse_messages(p, json_object_get(root, "messages"), req, err))
        != APR_SUCCESS) {
        return rv;
    }
    parse_tools(p, json_object_get(root, "tools"), req);
    if ((v = json_object_get(root, "functions")) && json_is_array(v)) {
        /* legacy functions: tools of type function */
        const json_t *f;
        size_t i;
        json_array_foreach(v, i, f) {
            tb_ir_tool_t *tool = apr_array_push(req->tools);
            memset(tool, 0, sizeof(*tool));
            tool->kind = TB_TOOL_FUNCTION;
            tool->strict = -1;
            tool->name = tb_jstr(f, "name");
            tool->description = tb_jstr(f, "description");
            tool->parameters = json_object_get(f, "parameters");
        }
    }
    if ((v = json_object_get(root, "web_search_options")) && json_is_object(v)) {
        tb_ir_tool_t *tool = apr_array_push(req->tools);
        memset(tool, 0, sizeof(*tool));
        tool->kind = TB_TOOL_HOSTED;
        tool->hosted_type = "web_search";
        tool->hosted = tb_json_pool_own(p, json_pack("{s:s}", "type", "web_search"));
    }
    parse_tool_choice(p, json_object_get(root, "tool_choice"), req);
    if (req->tool_choice == TB_TC_UNSET
        && (v = json_object_get(root, "function_call"))) {
        parse_tool_choice(p, json_is_object(v)
                          ? tb_json_pool_own(p, json_pack("{s:s, s:O}", "type",
                                                          "function", "function", v))
                          : v, req);
    }
    tb_openai_parse_common(p, root, req);
    if ((v = json_object_get(root, "max_completion_tokens")) && json_is_integer(v)) {
        req->max_output_tokens = (long)json_integer_value(v);
    }
    else if ((v = json_object_get(root, "max_tokens")) && json_is_integer(v)) {
        req->max_output_tokens = (long)json_integer_value(v);
    }
    if ((v = json_object_get(root, "n")) && json_is_integer(v)) {
        req->n = (long)json_integer_value(v);
    }
    if ((v = json_object_get(root, "stop"))) {
        const json_t *s;
        size_t i;

        req->stop = apr_array_make(p, 4, sizeof(const char *));
        if (json_is_string(v)) {
            APR_ARRAY_PUSH(req->stop, const char *) = json_string_value(v);
        }
        json_array_foreach(v, i, s) {
            if (json_is_string(s)) {
                APR_ARRAY_PUSH(req->stop, const char *) = json_string_value(s);
            }
        }
    }
    if ((v = json_object_get(root, "logprobs")) && json_is_boolean(v)) {
        req->logprobs = json_is_true(v);
    }
    if ((v = json_object_get(root, "response_format")) && json_is_object(v)) {
        const char *type = tb_jstr(v, "type");
        const json_t *js = json_object_get(v, "json_schema");

        req->rf = !type ? TB_RF_UNSET : !strcmp(type, "json_object") ? TB_RF_JSON_OBJECT
                : !strcmp(type, "json_schema") ? TB_RF_JSON_SCHEMA : TB_RF_TEXT;
        req->rf_name = tb_jstr(js, "name");
        req->rf_description = tb_jstr(js, "description");
        req->rf_schema = json_object_get(js, "schema");
        if (json_is_boolean(json_object_get(js, "strict"))) {
            req->rf_strict = json_is_true(json_object_get(js, "strict"));
        }
    }
    req->effort = tb_jstr(root, "reasoning_effort");
    req->verbosity = tb_jstr(root, "verbosity");
    if ((v = json_object_get(root, "modalities")) && json_is_array(v)) {
        const json_t *m;
        size_t i;
        json_array_foreach(v, i, m) {
            if (json_is_string(m) && !strcmp(json_string_value(m), "audio")) {
                return tb_ir_error_invalid(err, "unsupported_parameter", "modalities",
                                           "Audio output cannot be produced by this "
                                           "model's provider.");
            }
        }
    }
    *preq = req;
    return APR_SUCCESS;
}

/* ---- an account speaking chat: the request ------------------------------------------ */

static const char *chat_path(apr_pool_t *p, tb_op_t op, const char *model,
                             int stream)
{
    return "/chat/completions";
}

/* The custom tool downgraded to a function, for providers without free
 * form tools: its input travels as {"input": "..."} (trap 64). */
static json_t *custom_as_function(const tb_ir_tool_t *t, const char *name)
{
    const char *desc = t->description ? t->description : "";

    return json_pack("{s:s, s:{s:s, s:s, s:{s:s, s:{s:{s:s, s:s}}, s:[s], s:b}}}",
                     "type", "function", "function", "name", name,
                     "description", desc, "parameters", "type", "object",
                     "properties", "input", "type", "string", "description",
                     "The tool's free-form input, as plain text.",
                     "required", "input", "additionalProperties", 0);
}

/* Wrap a custom tool's input as the arguments of its function form. */
static const char *custom_arguments(apr_pool_t *p, const char *input)
{
    json_t *o = tb_json_pool_own(p, json_pack("{s:s}", "input", input ? input : ""));
    const char *s = o ? tb_json_dump(p, o, NULL) : NULL;

    return s ? s : "{\"input\":\"\"}";
}

static json_t *emit_tools(apr_pool_t *p, const tb_ir_req_t *req)
{
    json_t *tools = json_array();
    int i;

    for (i = 0; i < req->tools->nelts; ++i) {
        const tb_ir_tool_t *t = &APR_ARRAY_IDX(req->tools, i, tb_ir_tool_t);
        const char *name = tb_ir_flat_name(p, t->ns, t->name);
        json_t *f;

        if (!t->name) {
            continue;
        }
        if (t->kind == TB_TOOL_FUNCTION) {
            f = json_object();
            json_object_set_new(f, "name", json_string(name));
            tb_jset_str(f, "description", t->description);
            json_object_set(f, "parameters", t->parameters ? t->parameters
                            : tb_json_pool_own(p, json_pack("{s:s, s:{}}", "type",
                                               "object", "properties")));
            if (t->strict >= 0) {
                json_object_set_new(f, "strict", json_boolean(t->strict));
            }
            json_array_append_new(tools, json_pack("{s:s, s:o}", "type", "function",
                                                   "function", f));
        }
        else if (t->kind == TB_TOOL_CUSTOM) {
            json_array_append_new(tools, custom_as_function(t, name));
        }
        /* hosted tools (web_search, file_search, ...) have no chat form
         * on every provider: dropped (README, "Conversions") */
    }
    return tools;
}

static int tool_declared(apr_pool_t *p, const tb_ir_req_t *req, const char *name)
{
    const tb_ir_tool_t *t = tb_ir_req_tool(p, req, name);

    return t != NULL;
}

static json_t *emit_tool_choice(apr_pool_t *p, const tb_ir_req_t *req)
{
    switch (req->tool_choice) {
    case TB_TC_AUTO:
        return json_string("auto");
    case TB_TC_NONE:
        return json_string("none");
    case TB_TC_REQUIRED:
        return json_string("required");
    case TB_TC_NAMED:
        /* NB: a choice naming a dropped tool makes upstreams refuse the
         * request: dropped with it (trap 56) */
        return tool_declared(p, req, req->tool_choice_name)
            ? json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name",
                        req->tool_choice_name)
            : NULL;
    case TB_TC_ALLOWED: {
        json_t *tools = json_array(), *t;
        size_t i;

        json_array_foreach(req->allowed_tools, i, t) {
            const char *name = tb_jstr(t, "name");
            if (name && tool_declared(p, req, name)) {
                json_array_append_new(tools, json_pack("{s:s, s:{s:s}}", "type",
                                      "function", "function", "name", name));
            }
        }
        if (!json_array_size(tools)) {
            json_decref(tools);
            return NULL;
        }
        return json_pack("{s:s, s:{s:s, s:o}}", "type", "allowed_tools",
                         "allowed_tools", "mode",
                         req->allowed_mode ? req->allowed_mode : "auto",
                         "tools", tools);
    }
    default:
        return NULL;
    }
}

/* Content of a user message as chat parts (or a plain string when it is
 * one text). */
static json_t *emit_user_content(apr_pool_t *p, const apr_array_header_t *parts,
                                 tb_ir_error_t *err, apr_status_t *prv)
{
    json_t *arr = json_array();
    int i;

    if (parts->nelts == 1 && APR_ARRAY_IDX(parts, 0, tb_ir_part_t).kind == TB_PART_TEXT) {
        json_decref(arr);
        return json_string(APR_ARRAY_IDX(parts, 0, tb_ir_part_t).text);
    }
    for (i = 0; i < parts->nelts; ++i) {
        const tb_ir_part_t *pt = &APR_ARRAY_IDX(parts, i, tb_ir_part_t);

        switch (pt->kind) {
        case TB_PART_TEXT:
            json_array_append_new(arr, json_pack("{s:s, s:s}", "type", "text",
                                                 "text", pt->text));
            break;
        case TB_PART_IMAGE: {
            json_t *iu;
            if (!pt->url) {
                *prv = tb_ir_error_invalid(err, "unsupported_value", "input",
                                           "Images given by file_id cannot be sent "
                                           "to this model's provider; send the "
                                           "image itself (a URL or data URL).");
                json_decref(arr);
                return NULL;
            }
            iu = json_pack("{s:s}", "url", pt->url);
            /* chat knows no "original" detail */
            if (pt->detail && strcmp(pt->detail, "original")) {
                tb_jset_str(iu, "detail", pt->detail);
            }
            json_array_append_new(arr, json_pack("{s:s, s:o}", "type", "image_url",
                                                 "image_url", iu));
            break;
        }
        case TB_PART_FILE: {
            json_t *f = json_object();
            if (pt->url && !pt->data && !pt->file_id) {
                json_decref(f);
                json_decref(arr);
                *prv = tb_ir_error_invalid(err, "unsupported_value", "input",
                                           "Files given by URL cannot be sent to "
                                           "this model's provider; send the file "
                                           "data or a file_id.");
                return NULL;
            }
            tb_jset_str(f, "file_data", pt->data);
            tb_jset_str(f, "file_id", pt->file_id);
            tb_jset_str(f, "filename", pt->filename);
            json_array_append_new(arr, json_pack("{s:s, s:o}", "type", "file",
                                                 "file", f));
            break;
        }
        case TB_PART_AUDIO:
            json_array_append_new(arr, json_pack("{s:s, s:{s:s, s:s}}", "type",
                                  "input_audio", "input_audio", "data",
                                  pt->data ? pt->data : "", "format",
                                  pt->format ? pt->format : "wav"));
            break;
        default:
            break;
        }
    }
    return arr;
}

/* The text of the parts of one kind, joined with `sep` (NULL: none). */
static const char *parts_text_sep(apr_pool_t *p, const apr_array_header_t *parts,
                                  tb_part_kind_t kind, const char *sep)
{
    tb_join_t out;
    int i;

    tb_join_init(&out, p, sep);
    for (i = 0; i < parts->nelts; ++i) {
        const tb_ir_part_t *pt = &APR_ARRAY_IDX(parts, i, tb_ir_part_t);
        if (pt->kind == kind) {
            tb_join_add(&out, pt->text);
        }
    }
    return tb_join_done(&out, p);
}

static const char *parts_text(apr_pool_t *p, const apr_array_header_t *parts,
                              tb_part_kind_t kind)
{
    return parts_text_sep(p, parts, kind, NULL);
}

/* Do replayed arguments hold JSON? A truncated call in a history makes
 * every later request fail upstream (trap 59). */
static int arguments_valid(apr_pool_t *p, const tb_ir_part_t *call)
{
    return call->custom || !call->arguments || !*call->arguments
        || tb_json_validate(p, call->arguments, strlen(call->arguments), NULL)
           == APR_SUCCESS;
}

/* Every tool result of the history by the call it answers (the first,
 * when a call has several): one pass, then lookups, whatever the number
 * of calls a client sends. */
static apr_hash_t *results_by_call(apr_pool_t *p, const tb_ir_req_t *req)
{
    apr_hash_t *h = apr_hash_make(p);
    int i, k;

    for (i = 0; i < req->messages->nelts; ++i) {
        const tb_ir_msg_t *m = &APR_ARRAY_IDX(req->messages, i, tb_ir_msg_t);
        if (m->role != TB_ROLE_TOOL) {
            continue;
        }
        for (k = 0; k < m->parts->nelts; ++k) {
            const tb_ir_part_t *pt = &APR_ARRAY_IDX(m->parts, k, tb_ir_part_t);
            if (pt->kind == TB_PART_TOOL_RESULT && pt->result_call_id
                && !apr_hash_get(h, pt->result_call_id, APR_HASH_KEY_STRING)) {
                apr_hash_set(h, pt->result_call_id, APR_HASH_KEY_STRING, pt);
            }
        }
    }
    return h;
}

/* A tool result as a tool message, and its media (chat tool messages are
 * text only) in a user message right after the tool replies (trap 58). */
static void emit_tool_result(apr_pool_t *p, json_t *msgs, json_t *media_msgs,
                             const tb_ir_part_t *res, tb_ir_error_t *err,
                             apr_status_t *prv)
{
    json_array_append_new(msgs, json_pack("{s:s, s:s, s:s}", "role", "tool",
                          "tool_call_id", res->result_call_id, "content",
                          res->text && *res->text ? res->text
                          : (res->media ? "[Tool output media moved to the "
                             "following user message]" : "")));
    if (res->media && res->media->nelts) {
        json_t *content = emit_user_content(p, res->media, err, prv);
        if (content) {
            json_array_append_new(media_msgs, json_pack("{s:s, s:o}", "role", "user",
                                                        "content", content));
        }
    }
}

/* The messages: system text first (instructions), then the history with
 * every assistant tool call immediately followed by its result, in order;
 * unanswered calls, calls with broken arguments and orphan results are
 * left out (traps 57 and 59), as upstreams refuse such histories. */
static json_t *emit_messages(apr_pool_t *p, const tb_ir_req_t *req,
                             tb_ir_error_t *err, apr_status_t *prv)
{
    json_t *msgs = json_array();
    apr_hash_t *results = results_by_call(p, req);
    int i, k;

    if (req->instructions && *req->instructions) {
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system",
                                              "content", req->instructions));
    }
    for (i = 0; i < req->messages->nelts && *prv == APR_SUCCESS; ++i) {
        const tb_ir_msg_t *m = &APR_ARRAY_IDX(req->messages, i, tb_ir_msg_t);
        const char *text;
        json_t *msg, *calls, *media;

        switch (m->role) {
        case TB_ROLE_SYSTEM:
        case TB_ROLE_DEVELOPER:
            /* NB: "developer" is OpenAI's alone; "system" is understood by
             * every chat provider, and OpenAI treats it alike */
            /* several text parts (Codex sends them) stay apart */
            text = parts_text_sep(p, m->parts, TB_PART_TEXT, "\n\n");
            json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system",
                                                  "content", text ? text : ""));
            break;
        case TB_ROLE_USER: {
            json_t *content = emit_user_content(p, m->parts, err, prv);
            if (!content) {
                break;
            }
            msg = json_pack("{s:s, s:o}", "role", "user", "content", content);
            tb_jset_str(msg, "name", m->name);
            json_array_append_new(msgs, msg);
            break;
        }
        case TB_ROLE_ASSISTANT:
            calls = json_array();
            media = json_array();
            msg = json_pack("{s:s}", "role", "assistant");
            text = parts_text(p, m->parts, TB_PART_TEXT);
            json_object_set_new(msg, "content", text ? json_string(text) : json_null());
            for (k = 0; k < m->parts->nelts; ++k) {
                const tb_ir_part_t *pt = &APR_ARRAY_IDX(m->parts, k, tb_ir_part_t);
                const char *args;

                if (pt->kind != TB_PART_TOOL_CALL || !pt->call_id
                    || !apr_hash_get(results, pt->call_id, APR_HASH_KEY_STRING)
                    || !arguments_valid(p, pt)) {
                    continue;
                }
                args = pt->custom ? custom_arguments(p, pt->arguments)
                     : (pt->arguments && *pt->arguments ? pt->arguments : "{}");
                json_array_append_new(calls, json_pack("{s:s, s:s, s:{s:s, s:s}}",
                                      "id", pt->call_id, "type", "function",
                                      "function", "name",
                                      tb_ir_flat_name(p, pt->ns, pt->name ? pt->name : ""),
                                      "arguments", args));
            }
            if (!text && !json_array_size(calls)) {
                /* reasoning alone, or calls without results: nothing */
                json_decref(calls);
                json_decref(media);
                json_decref(msg);
                break;
            }
            if (json_array_size(calls)) {
                json_object_set(msg, "tool_calls", calls);
            }
            json_array_append_new(msgs, msg);
            for (k = 0; k < (int)json_array_size(calls); ++k) {
                const char *id = tb_jstr(json_array_get(calls, k), "id");
                emit_tool_result(p, msgs, media,
                                 apr_hash_get(results, id, APR_HASH_KEY_STRING), err, prv);
            }
            json_array_extend(msgs, media);
            json_decref(calls);
            json_decref(media);
            break;
        case TB_ROLE_TOOL:
            /* placed right after its call above; orphans are dropped */
            break;
        }
    }
    return msgs;
}

static apr_status_t chat_emit(apr_pool_t *p, const tb_ir_req_t *req,
                              const char *model, unsigned caps,
                              const char **pbody, apr_size_t *plen,
                              tb_ir_error_t *err)
{
    json_t *root, *tools, *tc;
    apr_status_t rv = APR_SUCCESS;
    int i;

    root = tb_json_pool_own(p, json_object());
    json_object_set_new(root, "model", json_string(model));
    json_object_set_new(root, "messages", emit_messages(p, req, err, &rv));
    if (rv != APR_SUCCESS) {
        return rv;
    }
    tools = emit_tools(p, req);
    if (json_array_size(tools)) {
        json_object_set_new(root, "tools", tools);
        if ((tc = emit_tool_choice(p, req))) {
            json_object_set_new(root, "tool_choice", tc);
        }
        if (req->parallel_tool_calls >= 0) {
            json_object_set_new(root, "parallel_tool_calls",
                                json_boolean(req->parallel_tool_calls));
        }
    }
    else {
        /* NB: tool_choice without tools is refused (trap 56) */
        json_decref(tools);
    }
    tb_openai_emit_sampling(root, req);
    tb_openai_emit_identity(root, req);
    if (req->store >= 0) {
        json_object_set_new(root, "store", json_boolean(req->store));
    }
    if (req->max_output_tokens >= 0) {
        json_object_set_new(root, "max_completion_tokens",
                            json_integer(req->max_output_tokens));
    }
    if (req->n > 0) {
        json_object_set_new(root, "n", json_integer(req->n));
    }
    if (req->stop && req->stop->nelts) {
        json_t *stop = json_array();
        for (i = 0; i < req->stop->nelts; ++i) {
            json_array_append_new(stop, json_string(APR_ARRAY_IDX(req->stop, i,
                                                                  const char *)));
        }
        json_object_set_new(root, "stop", stop);
    }
    if (req->logprobs >= 0) {
        json_object_set_new(root, "logprobs", json_boolean(req->logprobs));
    }
    else if (req->top_logprobs >= 0) {
        json_object_set_new(root, "logprobs", json_true());
    }
    if (req->top_logprobs >= 0) {
        json_object_set_new(root, "top_logprobs", json_integer(req->top_logprobs));
    }
    if (req->rf == TB_RF_JSON_SCHEMA) {
        json_t *js = json_object();
        json_object_set_new(js, "name", json_string(req->rf_name ? req->rf_name
                                                                 : "response"));
        tb_jset_str(js, "description", req->rf_description);
        if (req->rf_schema) {
            json_object_set(js, "schema", req->rf_schema);
        }
        if (req->rf_strict >= 0) {
            json_object_set_new(js, "strict", json_boolean(req->rf_strict));
        }
        json_object_set_new(root, "response_format",
                            json_pack("{s:s, s:o}", "type", "json_schema",
                                      "json_schema", js));
    }
    else if (req->rf == TB_RF_JSON_OBJECT || req->rf == TB_RF_TEXT) {
        json_object_set_new(root, "response_format", json_pack("{s:s}", "type",
                            req->rf == TB_RF_TEXT ? "text" : "json_object"));
    }
    tb_jset_str(root, "reasoning_effort", req->effort);
    tb_jset_str(root, "verbosity", req->verbosity);
    if (req->stream) {
        json_object_set_new(root, "stream", json_true());
        if (caps & TB_CAP_STREAM_USAGE) {
            json_object_set_new(root, "stream_options",
                                json_pack("{s:b}", "include_usage", 1));
        }
    }
    *pbody = tb_json_dump(p, root, plen);
    return *pbody ? APR_SUCCESS : tb_ir_error_conversion(err);
}

/* ---- an account speaking chat: answers ---------------------------------------------- */

static tb_finish_t finish_of(const char *s)
{
    if (!s) return TB_FIN_NONE;
    if (!strcmp(s, "length")) return TB_FIN_LENGTH;
    if (!strcmp(s, "tool_calls") || !strcmp(s, "function_call")) return TB_FIN_TOOL_CALLS;
    if (!strcmp(s, "content_filter")) return TB_FIN_CONTENT_FILTER;
    return TB_FIN_STOP;
}

static const tb_openai_usage_names_t usage_names = {
    "prompt_tokens", "completion_tokens", "prompt_tokens_details",
    "completion_tokens_details"
};

static void usage_read(const json_t *usage, tb_ir_usage_t *u)
{
    tb_openai_usage_read(usage, &usage_names, u);
}

static int chat_usage_scan(apr_pool_t *p, const char *body, apr_size_t len,
                           tb_ir_usage_t *u)
{
    return tb_openai_usage_scan(p, body, len, &usage_names, u);
}

static apr_status_t chat_parse_response(apr_pool_t *p, const char *body,
                                        apr_size_t len, tb_ir_resp_t **presp)
{
    tb_ir_resp_t *resp = tb_ir_resp_create(p);
    json_t *root;
    const json_t *choice, *msg, *tc;
    const char *t;
    size_t i;

    if (tb_json_parse(&root, p, body, len, NULL) != APR_SUCCESS
        || !json_is_object(root)) {
        return APR_EINVAL;
    }
    resp->id = tb_jstr(root, "id");
    resp->model = tb_jstr(root, "model");
    if (json_is_integer(json_object_get(root, "created"))) {
        resp->created = json_integer_value(json_object_get(root, "created"));
    }
    choice = json_array_get(json_object_get(root, "choices"), 0);
    msg = json_object_get(choice, "message");
    if (!json_is_object(msg)) {
        return APR_EINVAL;
    }
    if ((t = tb_jstr(msg, "reasoning_content")) || (t = tb_jstr(msg, "reasoning"))) {
        if (*t) {
            tb_ir_part_add(p, resp->output, TB_PART_REASONING)->text = t;
        }
    }
    if ((t = content_text(p, json_object_get(msg, "content"))) && *t) {
        tb_ir_part_add(p, resp->output, TB_PART_TEXT)->text = t;
    }
    if ((t = tb_jstr(msg, "refusal")) && *t) {
        tb_ir_part_add(p, resp->output, TB_PART_REFUSAL)->text = t;
    }
    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc) {
        tb_ir_msg_t m;
        m.parts = resp->output;
        tool_call_part(p, &m, tc);
    }
    resp->finish = finish_of(tb_jstr(choice, "finish_reason"));
    usage_read(json_object_get(root, "usage"), &resp->usage);
    *presp = resp;
    return APR_SUCCESS;
}

/* ---- an account speaking chat: its stream ---------------------------------------------- */

#define MAX_TOOL_SLOTS 128

/* A tool call whose first deltas came without its name: announced when
 * the name arrives (the item type may depend on it), its arguments kept
 * until then (§6C). */
typedef struct pending_call_t {
    const char *call_id;
    int custom;
    tb_buf_t args;
} pending_call_t;

#define MAX_PENDING_ARGS ((apr_size_t)16 * 1024 * 1024)

typedef struct chat_dec_t {
    apr_pool_t *pool;
    int started;
    int next_block;
    int text_block, refusal_block, reasoning_block;  /* open blocks, or -1 */
    int tool_block[MAX_TOOL_SLOTS];   /* chat tool index -> block, or -1 */
    unsigned char tool_custom[MAX_TOOL_SLOTS]; /* ... a custom tool call */
    pending_call_t *pending[MAX_TOOL_SLOTS];   /* ... still without a name */
    int finished;
    int ended;
} chat_dec_t;

static void *chat_decoder_create(apr_pool_t *p)
{
    chat_dec_t *d = apr_pcalloc(p, sizeof(*d));
    int i;

    d->pool = p;
    d->text_block = d->refusal_block = d->reasoning_block = -1;
    for (i = 0; i < MAX_TOOL_SLOTS; ++i) {
        d->tool_block[i] = -1;
    }
    return d;
}

typedef struct emitter_t {
    tb_ir_sink_fn *sink;
    void *ctx;
    apr_status_t rv;
} emitter_t;

static void ev_emit(emitter_t *e, tb_ir_ev_t *ev)
{
    if (e->rv == APR_SUCCESS) {
        e->rv = e->sink(e->ctx, ev);
    }
}

static void ev_simple(emitter_t *e, tb_ev_kind_t kind, int block,
                      tb_block_kind_t bkind)
{
    tb_ir_ev_t ev;

    memset(&ev, 0, sizeof(ev));
    ev.kind = kind;
    ev.block = block;
    ev.bkind = bkind;
    ev.seq = -1;
    ev_emit(e, &ev);
}

static void ev_delta(emitter_t *e, int block, tb_block_kind_t bkind,
                     const char *text)
{
    tb_ir_ev_t ev;

    memset(&ev, 0, sizeof(ev));
    ev.kind = TB_EV_DELTA;
    ev.block = block;
    ev.bkind = bkind;
    ev.text = text;
    ev.text_len = strlen(text);
    ev.seq = -1;
    ev_emit(e, &ev);
}

static void close_block(emitter_t *e, int *pblock, tb_block_kind_t bkind)
{
    if (*pblock >= 0) {
        ev_simple(e, TB_EV_BLOCK_STOP, *pblock, bkind);
        *pblock = -1;
    }
}

/* Text-like blocks follow each other: opening one closes the others. */
static void open_text_block(emitter_t *e, chat_dec_t *d, int *pblock,
                            tb_block_kind_t bkind)
{
    if (*pblock >= 0) {
        return;
    }
    if (pblock != &d->reasoning_block) close_block(e, &d->reasoning_block, TB_BLOCK_REASONING);
    if (pblock != &d->text_block) close_block(e, &d->text_block, TB_BLOCK_TEXT);
    if (pblock != &d->refusal_block) close_block(e, &d->refusal_block, TB_BLOCK_REFUSAL);
    *pblock = d->next_block++;
    ev_simple(e, TB_EV_BLOCK_START, *pblock, bkind);
}

/* Open a tool call's block; what it collected while nameless follows. */
static void open_call(apr_pool_t *p, emitter_t *e, chat_dec_t *d, long idx,
                      const char *call_id, const char *name, int custom)
{
    pending_call_t *pc = d->pending[idx];
    tb_ir_ev_t ev;

    close_block(e, &d->reasoning_block, TB_BLOCK_REASONING);
    close_block(e, &d->text_block, TB_BLOCK_TEXT);
    close_block(e, &d->refusal_block, TB_BLOCK_REFUSAL);
    d->tool_block[idx] = d->next_block++;
    memset(&ev, 0, sizeof(ev));
    ev.kind = TB_EV_BLOCK_START;
    ev.block = d->tool_block[idx];
    ev.bkind = TB_BLOCK_TOOL_CALL;
    ev.call_id = pc && pc->call_id ? pc->call_id : call_id;
    if (!ev.call_id) {
        ev.call_id = tb_ir_new_id(p, "call_");
    }
    ev.name = name;
    ev.custom = custom;
    ev.seq = -1;
    ev_emit(e, &ev);
    if (pc) {
        if (pc->args.len) {
            ev_delta(e, d->tool_block[idx], TB_BLOCK_TOOL_CALL, pc->args.data);
        }
        d->pending[idx] = NULL;
    }
}

static void close_all(apr_pool_t *p, emitter_t *e, chat_dec_t *d)
{
    int i;

    close_block(e, &d->reasoning_block, TB_BLOCK_REASONING);
    close_block(e, &d->text_block, TB_BLOCK_TEXT);
    close_block(e, &d->refusal_block, TB_BLOCK_REFUSAL);
    for (i = 0; i < MAX_TOOL_SLOTS; ++i) {
        if (d->pending[i]) {
            /* the name never came: the call goes out as it is */
            open_call(p, e, d, i, NULL, "", d->pending[i]->custom);
        }
        close_block(e, &d->tool_block[i], TB_BLOCK_TOOL_CALL);
    }
}

static void decode_tool_calls(apr_pool_t *p, emitter_t *e, chat_dec_t *d,
                              const json_t *tcs)
{
    const json_t *tc;
    size_t i;

    json_array_foreach(tcs, i, tc) {
        const json_t *jidx = json_object_get(tc, "index");
        long idx = json_is_integer(jidx) ? (long)json_integer_value(jidx) : (long)i;
        const char *type = tb_jstr(tc, "type");
        const char *name;
        int custom;
        const json_t *fn;
        const char *piece;

        if (idx < 0 || idx >= MAX_TOOL_SLOTS) {
            continue;
        }
        /* NB: only the first delta of a call says its type */
        custom = d->tool_block[idx] >= 0 || d->pending[idx] ? d->tool_custom[idx]
               : (type ? !strcmp(type, "custom")
                       : json_is_object(json_object_get(tc, "custom")));
        d->tool_custom[idx] = (unsigned char)custom;
        fn = json_object_get(tc, custom ? "custom" : "function");
        piece = tb_jstr(fn, custom ? "input" : "arguments");
        name = tb_jstr(fn, "name");
        if (d->tool_block[idx] < 0) {
            if (!name || !*name) {
                pending_call_t *pc = d->pending[idx];

                if (!pc) {
                    pc = d->pending[idx] = apr_pcalloc(d->pool, sizeof(*pc));
                    pc->custom = custom;
                }
                if (!pc->call_id && tb_jstr(tc, "id")) {
                    pc->call_id = apr_pstrdup(d->pool, tb_jstr(tc, "id"));
                }
                if (piece && *piece
                    && tb_buf_append(&pc->args, d->pool, piece, strlen(piece),
                                     MAX_PENDING_ARGS) != APR_SUCCESS) {
                    e->rv = APR_ENOSPC;
                }
                continue;
            }
            open_call(p, e, d, idx, tb_jstr(tc, "id"), name, custom);
        }
        /* NB: some upstreams send id, name and arguments in one chunk
         * (trap 60): the arguments count once, here */
        if (piece && *piece) {
            ev_delta(e, d->tool_block[idx], TB_BLOCK_TOOL_CALL, piece);
        }
    }
}

static apr_status_t chat_decode(void *dec, apr_pool_t *scratch,
                                const tb_sse_event_t *sse, tb_ir_sink_fn *sink,
                                void *ctx)
{
    chat_dec_t *d = dec;
    emitter_t e = { sink, ctx, APR_SUCCESS };
    json_t *chunk = NULL;
    const json_t *err, *choices, *c, *usage;
    size_t i;

    if (sse->kind != TB_SSE_EVENT || d->ended) {
        return APR_SUCCESS;
    }
    if (sse->data_len == 6 && !memcmp(sse->data, "[DONE]", 6)) {
        close_all(scratch, &e, d);
        d->ended = 1;
        ev_simple(&e, TB_EV_END, 0, TB_BLOCK_OTHER);
        return e.rv;
    }
    if (tb_json_parse(&chunk, scratch, sse->data, sse->data_len, NULL) != APR_SUCCESS
        || !json_is_object(chunk)) {
        chunk = NULL;
    }
    err = json_object_get(chunk, "error");
    if ((err && !json_is_null(err)) || (sse->event && !strcmp(sse->event, "error"))) {
        tb_ir_ev_t ev;
        tb_ir_error_t *ie = apr_pcalloc(scratch, sizeof(*ie));

        tb_openai_error_read(scratch, 0, sse->data, sse->data_len, ie);
        ie->type = ie->type ? ie->type : "server_error";
        memset(&ev, 0, sizeof(ev));
        ev.kind = TB_EV_ERROR;
        ev.error = ie;
        ev.seq = -1;
        ev_emit(&e, &ev);
        /* an error chunk ends a chat stream */
        d->ended = 1;
        ev_simple(&e, TB_EV_END, 0, TB_BLOCK_OTHER);
        return e.rv;
    }
    if (!chunk) {
        return APR_SUCCESS;   /* not JSON: nothing the IR can say */
    }
    if (!d->started) {
        tb_ir_ev_t ev;
        const json_t *created = json_object_get(chunk, "created");

        d->started = 1;
        memset(&ev, 0, sizeof(ev));
        ev.kind = TB_EV_START;
        ev.id = tb_jstr(chunk, "id");
        ev.model = tb_jstr(chunk, "model");
        ev.created = json_is_integer(created) ? json_integer_value(created) : 0;
        ev.seq = -1;
        ev_emit(&e, &ev);
    }
    choices = json_object_get(chunk, "choices");
    json_array_foreach(choices, i, c) {
        const json_t *delta = json_object_get(c, "delta");
        const char *t;

        /* NB: other choices (n > 1) have no IR blocks: they are content
         * for the commit (the fast path forwards every choice), nothing
         * for a converter */
        if (json_is_integer(json_object_get(c, "index"))
            && json_integer_value(json_object_get(c, "index")) != 0) {
            if (((t = tb_jstr(delta, "content")) && *t)
                || json_array_size(json_object_get(delta, "tool_calls"))) {
                ev_delta(&e, -1, TB_BLOCK_OTHER, t && *t ? t : " ");
            }
            continue;
        }
        if (((t = tb_jstr(delta, "reasoning_content")) || (t = tb_jstr(delta, "reasoning")))
            && *t) {
            open_text_block(&e, d, &d->reasoning_block, TB_BLOCK_REASONING);
            ev_delta(&e, d->reasoning_block, TB_BLOCK_REASONING, t);
        }
        if ((t = tb_jstr(delta, "content")) && *t) {
            open_text_block(&e, d, &d->text_block, TB_BLOCK_TEXT);
            ev_delta(&e, d->text_block, TB_BLOCK_TEXT, t);
        }
        if ((t = tb_jstr(delta, "refusal")) && *t) {
            open_text_block(&e, d, &d->refusal_block, TB_BLOCK_REFUSAL);
            ev_delta(&e, d->refusal_block, TB_BLOCK_REFUSAL, t);
        }
        if (json_array_size(json_object_get(delta, "tool_calls"))) {
            decode_tool_calls(scratch, &e, d, json_object_get(delta, "tool_calls"));
        }
        else if (json_is_object(json_object_get(delta, "function_call"))) {
            json_t *legacy = tb_json_pool_own(scratch, json_pack("[{s:i, s:O}]",
                             "index", 0, "function", json_object_get(delta, "function_call")));
            decode_tool_calls(scratch, &e, d, legacy);
        }
        if ((t = tb_jstr(c, "finish_reason"))) {
            tb_ir_ev_t ev;

            close_all(scratch, &e, d);
            d->finished = 1;
            memset(&ev, 0, sizeof(ev));
            ev.kind = TB_EV_FINISH;
            ev.finish = finish_of(t);
            ev.seq = -1;
            ev_emit(&e, &ev);
        }
    }
    usage = json_object_get(chunk, "usage");
    if (json_is_object(usage)) {
        tb_ir_usage_t *u = apr_palloc(scratch, sizeof(*u));
        tb_ir_ev_t ev;

        tb_ir_usage_init(u);
        usage_read(usage, u);
        memset(&ev, 0, sizeof(ev));
        ev.kind = TB_EV_USAGE;
        ev.usage = u;
        ev.seq = -1;
        ev_emit(&e, &ev);
    }
    return e.rv;
}

/* ---- answers to a chat client ---------------------------------------------------------- */

static const char *chat_id(apr_pool_t *p, const char *id)
{
    return id && !strncmp(id, "chatcmpl", 8) ? id : tb_ir_new_id(p, "chatcmpl-");
}

static json_t *usage_json(const tb_ir_usage_t *u)
{
    json_t *j = json_pack("{s:I, s:I, s:I}",
                          "prompt_tokens", (json_int_t)(u->input >= 0 ? u->input : 0),
                          "completion_tokens", (json_int_t)(u->output >= 0 ? u->output : 0),
                          "total_tokens", (json_int_t)(tb_ir_usage_total(u) >= 0
                                                       ? tb_ir_usage_total(u) : 0));

    json_object_set_new(j, "prompt_tokens_details", json_pack("{s:I}",
                        "cached_tokens", (json_int_t)(u->input_cached >= 0
                                                      ? u->input_cached : 0)));
    json_object_set_new(j, "completion_tokens_details", json_pack("{s:I}",
                        "reasoning_tokens", (json_int_t)(u->output_reasoning >= 0
                                                         ? u->output_reasoning : 0)));
    return j;
}

/* A tool call as chat shows it: custom tools (including those another
 * dialect downgraded) come back as custom calls only when the client
 * declared them custom. */
static json_t *tool_call_json(apr_pool_t *p, const tb_ir_req_t *req,
                              const tb_ir_part_t *pt, json_t *index)
{
    const tb_ir_tool_t *tool = tb_ir_req_tool(p, req, pt->name);
    const char *name = tool ? tool->name : pt->name;
    /* NB: an upstream may leave the call id out; chat clients need one */
    const char *id = pt->call_id ? pt->call_id : tb_ir_new_id(p, "call_");
    json_t *tc;

    if ((tool && tool->kind == TB_TOOL_CUSTOM) || pt->custom) {
        tc = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "custom",
                       "custom", "name", name ? name : "", "input",
                       pt->arguments ? pt->arguments : "");
    }
    else {
        tc = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id,
                       "type", "function", "function", "name", name ? name : "",
                       "arguments", pt->arguments && *pt->arguments ? pt->arguments
                                                                    : "{}");
    }
    if (!tc) {
        /* strings that are not UTF-8: nothing jansson can hold */
        json_decref(index);
        return NULL;
    }
    if (index) {
        json_object_set_new(tc, "index", index);
    }
    return tc;
}

static apr_status_t chat_render(apr_pool_t *p, const tb_ir_req_t *req,
                                const tb_ir_resp_t *resp, const char **pbody,
                                apr_size_t *plen)
{
    json_t *root, *msg, *calls = json_array();
    const char *text = parts_text(p, resp->output, TB_PART_TEXT);
    const char *refusal = parts_text(p, resp->output, TB_PART_REFUSAL);
    const char *reasoning = parts_text(p, resp->output, TB_PART_REASONING);
    tb_finish_t fin = resp->finish;
    int i;

    msg = json_pack("{s:s}", "role", "assistant");
    json_object_set_new(msg, "content", text ? json_string(text) : json_null());
    json_object_set_new(msg, "refusal", refusal ? json_string(refusal) : json_null());
    if (reasoning) {
        json_object_set_new(msg, "reasoning_content", json_string(reasoning));
    }
    for (i = 0; i < resp->output->nelts; ++i) {
        const tb_ir_part_t *pt = &APR_ARRAY_IDX(resp->output, i, tb_ir_part_t);
        if (pt->kind == TB_PART_TOOL_CALL) {
            json_t *tc = tool_call_json(p, req, pt, NULL);
            if (tc) {
                json_array_append_new(calls, tc);
            }
        }
    }
    if (json_array_size(calls)) {
        json_object_set_new(msg, "tool_calls", calls);
        if (fin == TB_FIN_STOP || fin == TB_FIN_NONE) {
            fin = TB_FIN_TOOL_CALLS;
        }
    }
    else {
        json_decref(calls);
    }
    json_object_set_new(msg, "annotations", json_array());
    root = tb_json_pool_own(p, json_pack("{s:s, s:s, s:I, s:s}",
                            "id", chat_id(p, resp->id), "object", "chat.completion",
                            "created", (json_int_t)(resp->created ? resp->created
                                                    : apr_time_sec(apr_time_now())),
                            "model", resp->model ? resp->model : req->model));
    json_object_set_new(root, "choices", json_pack("[{s:i, s:o, s:n, s:s}]",
                        "index", 0, "message", msg, "logprobs",
                        "finish_reason", tb_finish_chat_name(fin)));
    json_object_set_new(root, "usage", usage_json(&resp->usage));
    *pbody = tb_json_dump(p, root, plen);
    return *pbody ? APR_SUCCESS : APR_ENOMEM;
}

/* ---- the stream to a chat client -------------------------------------------------------- */

typedef struct chat_enc_t {
    apr_pool_t *pool;            /* the stream's */
    const tb_ir_req_t *req;      /* NULL on the fast path */
    int wants_usage;
    const char *id, *model;
    apr_int64_t created;
    int started;                 /* the role chunk went out */
    int ntools;
    int tool_index[MAX_TOOL_SLOTS * 2];  /* block -> chat tool index, or -1 */
    int tool_deltas[MAX_TOOL_SLOTS * 2]; /* the block had argument deltas */
    int tool_custom[MAX_TOOL_SLOTS * 2];
    tb_finish_t finish;
    int finish_sent;
    tb_ir_usage_t usage;
    int has_usage;
    int done;                    /* [DONE] or an error went out */
} chat_enc_t;

static void *chat_encoder_create(apr_pool_t *p, const tb_ir_req_t *req,
                                 int wants_usage)
{
    chat_enc_t *c = apr_pcalloc(p, sizeof(*c));
    int i;

    c->pool = p;
    c->req = req;
    c->wants_usage = wants_usage;
    for (i = 0; i < MAX_TOOL_SLOTS * 2; ++i) {
        c->tool_index[i] = -1;
    }
    tb_ir_usage_init(&c->usage);
    return c;
}

static apr_status_t write_chunk(chat_enc_t *c, apr_pool_t *p, tb_buf_t *out,
                                json_t *delta, const char *finish)
{
    json_t *chunk = tb_json_pool_own(p, json_pack("{s:s, s:s, s:I, s:s}",
                                     "id", c->id, "object", "chat.completion.chunk",
                                     "created", (json_int_t)c->created,
                                     "model", c->model));
    json_t *choice = json_pack("{s:i, s:o, s:n}", "index", 0, "delta", delta,
                               "logprobs");

    json_object_set_new(choice, "finish_reason",
                        finish ? json_string(finish) : json_null());
    json_object_set_new(chunk, "choices", json_pack("[o]", choice));
    if (c->wants_usage) {
        json_object_set_new(chunk, "usage", json_null());
    }
    return tb_sse_write_json(out, p, NULL, chunk);
}

static apr_status_t chat_encode_start(chat_enc_t *c, apr_pool_t *p, tb_buf_t *out)
{
    if (c->started) {
        return APR_SUCCESS;
    }
    c->started = 1;
    return write_chunk(c, p, out, json_pack("{s:s, s:s, s:n}", "role", "assistant",
                                            "content", "", "refusal"), NULL);
}

static apr_status_t chat_encode_fail(void *enc, apr_pool_t *p,
                                     const tb_ir_error_t *err, tb_buf_t *out);

static apr_status_t chat_encode(void *enc, apr_pool_t *p, const tb_ir_ev_t *ev,
                                tb_buf_t *out)
{
    chat_enc_t *c = enc;
    apr_status_t rv = APR_SUCCESS;
    int b = ev->block;

    if (ev->kind == TB_EV_START && !c->id) {
        c->id = chat_id(c->pool, ev->id ? apr_pstrdup(c->pool, ev->id) : NULL);
        c->model = apr_pstrdup(c->pool, ev->model ? ev->model
                               : (c->req ? c->req->model : ""));
        c->created = ev->created ? ev->created : apr_time_sec(apr_time_now());
    }
    if (!out) {
        /* the fast path: the upstream's finish chunk went through as is */
        if (ev->kind == TB_EV_FINISH) {
            c->finish_sent = 1;
        }
        return APR_SUCCESS;
    }
    if (c->done) {
        return APR_SUCCESS;
    }
    if (!c->id) {
        c->id = tb_ir_new_id(c->pool, "chatcmpl-");
        c->model = c->req ? c->req->model : "";
        c->created = apr_time_sec(apr_time_now());
    }
    switch (ev->kind) {
    case TB_EV_START:
        return chat_encode_start(c, p, out);
    case TB_EV_BLOCK_START:
        if (ev->bkind == TB_BLOCK_TOOL_CALL && b >= 0 && b < MAX_TOOL_SLOTS * 2) {
            tb_ir_part_t pt;
            json_t *tc;

            if ((rv = chat_encode_start(c, p, out)) != APR_SUCCESS) {
                return rv;
            }
            memset(&pt, 0, sizeof(pt));
            pt.call_id = ev->call_id;
            pt.name = ev->name;
            pt.custom = ev->custom;
            pt.arguments = "";
            c->tool_index[b] = c->ntools++;
            tc = tool_call_json(p, c->req, &pt, json_integer(c->tool_index[b]));
            if (!tc) {
                return APR_EINVAL;
            }
            c->tool_custom[b] = !strcmp(tb_jstr(tc, "type"), "custom");
            /* NB: the arguments come in deltas: the first delta holds none */
            if (!c->tool_custom[b]) {
                json_object_set_new(json_object_get(tc, "function"), "arguments",
                                    json_string(""));
            }
            return write_chunk(c, p, out, json_pack("{s:[o]}", "tool_calls", tc), NULL);
        }
        return APR_SUCCESS;
    case TB_EV_DELTA: {
        json_t *delta;

        if ((rv = chat_encode_start(c, p, out)) != APR_SUCCESS) {
            return rv;
        }
        switch (ev->bkind) {
        case TB_BLOCK_TEXT:
            delta = json_pack("{s:s%}", "content", ev->text, ev->text_len);
            break;
        case TB_BLOCK_REFUSAL:
            delta = json_pack("{s:s%}", "refusal", ev->text, ev->text_len);
            break;
        case TB_BLOCK_REASONING:
            delta = json_pack("{s:s%}", "reasoning_content", ev->text, ev->text_len);
            break;
        case TB_BLOCK_TOOL_CALL:
            if (b < 0 || b >= MAX_TOOL_SLOTS * 2 || c->tool_index[b] < 0) {
                return APR_SUCCESS;
            }
            c->tool_deltas[b] = 1;
            delta = json_pack("{s:[{s:i, s:{s:s%}}]}", "tool_calls", "index",
                              c->tool_index[b], c->tool_custom[b] ? "custom" : "function",
                              c->tool_custom[b] ? "input" : "arguments",
                              ev->text, ev->text_len);
            break;
        default:
            return APR_SUCCESS;
        }
        return delta ? write_chunk(c, p, out, delta, NULL) : APR_SUCCESS;
    }
    case TB_EV_BLOCK_STOP:
        /* an upstream that sent a call's arguments only at its end */
        if (ev->bkind == TB_BLOCK_TOOL_CALL && ev->text && ev->text_len
            && b >= 0 && b < MAX_TOOL_SLOTS * 2 && c->tool_index[b] >= 0
            && !c->tool_deltas[b]) {
            tb_ir_ev_t d = *ev;
            d.kind = TB_EV_DELTA;
            return chat_encode(enc, p, &d, out);
        }
        return APR_SUCCESS;
    case TB_EV_FINISH:
        c->finish = ev->finish;
        if (c->finish == TB_FIN_STOP && c->ntools) {
            c->finish = TB_FIN_TOOL_CALLS;
        }
        if ((rv = chat_encode_start(c, p, out)) != APR_SUCCESS) {
            return rv;
        }
        c->finish_sent = 1;
        return write_chunk(c, p, out, json_object(), tb_finish_chat_name(c->finish));
    case TB_EV_USAGE:
        tb_ir_usage_merge(&c->usage, ev->usage);
        c->has_usage = 1;
        return APR_SUCCESS;
    case TB_EV_ERROR:
        return chat_encode_fail(enc, p, ev->error, out);
    case TB_EV_END:
        if (!c->finish_sent) {
            tb_ir_ev_t f;
            memset(&f, 0, sizeof(f));
            f.kind = TB_EV_FINISH;
            f.finish = c->ntools ? TB_FIN_TOOL_CALLS : TB_FIN_STOP;
            if ((rv = chat_encode(enc, p, &f, out)) != APR_SUCCESS) {
                return rv;
            }
        }
        if (c->wants_usage && c->has_usage && c->req) {
            json_t *chunk = tb_json_pool_own(p, json_pack("{s:s, s:s, s:I, s:s, s:[]}",
                                             "id", c->id, "object",
                                             "chat.completion.chunk", "created",
                                             (json_int_t)c->created, "model", c->model,
                                             "choices"));
            json_object_set_new(chunk, "usage", usage_json(&c->usage));
            if ((rv = tb_sse_write_json(out, p, NULL, chunk)) != APR_SUCCESS) {
                return rv;
            }
        }
        c->done = 1;
        return tb_sse_write(out, p, NULL, "[DONE]", 6);
    default:
        return APR_SUCCESS;
    }
}

/* After the commit a chat stream ends with an error object, which the
 * OpenAI SDKs raise (never a fake finish_reason). */
static apr_status_t chat_encode_fail(void *enc, apr_pool_t *p,
                                     const tb_ir_error_t *err, tb_buf_t *out)
{
    chat_enc_t *c = enc;
    const char *body;

    if (c->done) {
        return APR_SUCCESS;
    }
    c->done = 1;
    body = tb_json_error_body(p, err->message, err->type ? err->type : "api_error",
                              err->param, err->code);
    return tb_sse_write(out, p, NULL, body, strlen(body));
}

const tb_dialect_t tb_dialect_chat = {
    TB_DIALECT_CHAT,
    "openai-chat",
    "openai",
    TB_CAP_STREAM_USAGE,
    chat_check,
    chat_parse,
    chat_splice,
    chat_path,
    tb_openai_auth,
    chat_emit,
    chat_parse_response,
    chat_usage_scan,
    tb_openai_error_read,
    chat_decoder_create,
    chat_decode,
    chat_render,
    tb_openai_error_render,
    chat_encoder_create,
    chat_encode,
    chat_encode_fail,
};
