/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#include "mod_tokenbay_private.h"

#include <string.h>

#include <apr_strings.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include "mod_tokenbay_auth.h"
#include "mod_tokenbay_config.h"
#include "mod_tokenbay_forward.h"
#include "mod_tokenbay_handler.h"
#include "mod_tokenbay_respond.h"
#include "mod_tokenbay_state.h"
#include "tb_catalog.h"
#include "tb_dialect.h"
#include "tb_openai.h"
#include "tb_util.h"

/* Like mod_proxy: a URL the gateway serves maps to nothing on disk, so it
 * is claimed at translation and the directory walk (a stat per path
 * segment, per request) is skipped. NB: httpd walks <Location> before
 * translate_name, so "TokenBay On" there is already visible here; a
 * gateway enabled from .htaccess is only seen after the walk, in fixups. */
#define TB_FILENAME_PREFIX "tokenbay:"

int tb_translate_name(request_rec *r)
{
    if (tb_conf_enabled(tb_conf_dir(r)) != 1) {
        return DECLINED;
    }
    r->filename = apr_pstrcat(r->pool, TB_FILENAME_PREFIX, r->uri, NULL);
    r->handler = TB_HANDLER;
    return OK;
}

int tb_map_to_storage(request_rec *r)
{
    return (r->filename && !strncmp(r->filename, TB_FILENAME_PREFIX,
                                    sizeof(TB_FILENAME_PREFIX) - 1))
           ? OK : DECLINED;
}

int tb_fixups(request_rec *r)
{
    if (tb_conf_enabled(tb_conf_dir(r)) == 1) {
        r->handler = TB_HANDLER;
    }
    return DECLINED;
}

/* ---- reading the request body ------------------------------------------- */

/* Read the whole body, refusing more than `limit` bytes: early from
 * Content-Length, or as soon as a chunked body passes it. One buffer,
 * sized from Content-Length when known, else doubling: memory stays
 * within twice the body (never the square of it). */
static apr_status_t read_body(request_rec *r, apr_off_t limit, char **pbuf,
                              apr_size_t *plen, tb_error_t *err)
{
    conn_rec *c = r->connection;
    apr_bucket_brigade *bb;
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_status_t rv;
    apr_bucket *e;
    tb_buf_t body;
    int seen_eos = 0;

    memset(&body, 0, sizeof(body));
    if (cl) {
        apr_off_t n;
        char *end;
        if (apr_strtoff(&n, cl, &end, 10) == APR_SUCCESS && !*end && n >= 0) {
            if (n > limit) {
                goto too_large;
            }
            body.cap = (apr_size_t)n + 1;
            body.data = apr_palloc(r->pool, body.cap);
            body.data[0] = '\0';
        }
    }
    bb = apr_brigade_create(r->pool, c->bucket_alloc);
    do {
        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                            APR_BLOCK_READ, HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            int status = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
            apr_brigade_cleanup(bb);
            if (status == HTTP_REQUEST_ENTITY_TOO_LARGE) {
                goto too_large;
            }
            /* AP_FILTER_ERROR: a filter has answered already */
            tb_error_set(err, status, "invalid_request_error", NULL, NULL,
                         "The request body could not be read.");
            return rv;
        }
        for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
             e = APR_BUCKET_NEXT(e)) {
            const char *data;
            apr_size_t n;

            if (APR_BUCKET_IS_EOS(e)) {
                seen_eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(e)) {
                continue;
            }
            rv = apr_bucket_read(e, &data, &n, APR_BLOCK_READ);
            if (rv == APR_SUCCESS) {
                rv = tb_buf_append(&body, r->pool, data, n, (apr_size_t)limit);
            }
            if (rv == APR_ENOSPC) {
                apr_brigade_cleanup(bb);
                goto too_large;
            }
            if (rv != APR_SUCCESS) {
                apr_brigade_cleanup(bb);
                tb_error_set(err, HTTP_BAD_REQUEST, "invalid_request_error",
                             NULL, NULL, "The request body could not be read.");
                return rv;
            }
        }
        apr_brigade_cleanup(bb);
    } while (!seen_eos);
    *pbuf = body.data ? body.data : "";
    *plen = body.len;
    return APR_SUCCESS;

too_large:
    /* NB: do not drain a huge body to keep the connection: close it */
    c->keepalive = AP_CONN_CLOSE;
    tb_error_set(err, HTTP_REQUEST_ENTITY_TOO_LARGE, "invalid_request_error",
                 "request_too_large", NULL,
                 apr_psprintf(r->pool, "The request body exceeds the limit "
                              "of %" APR_OFF_T_FMT " bytes.", limit));
    return APR_ENOSPC;
}

/* ---- routes ------------------------------------------------------------------- */

static int catalog_or_error(request_rec *r, const tb_catalog_t **pcat,
                            tb_error_t *err)
{
    if (tb_state_catalog(r, pcat) != APR_SUCCESS) {
        tb_state_catalog_error(err);
        return 0;
    }
    return 1;
}

/* Keep the routes whose account can take this request. When none is
 * left, say why: the request needs what only the client's own provider
 * can do (400), or no account can serve it now (503). */
static int eligible_routes(request_rec *r, const tb_dialect_t *client,
                           const tb_req_info_t *info, apr_array_header_t *routes,
                           tb_error_t *err)
{
    int i, kept = 0, needs = 0;

    for (i = 0; i < routes->nelts; ++i) {
        tb_route_t *rt = &APR_ARRAY_IDX(routes, i, tb_route_t);

        switch (tb_dialect_fit(client, info, rt->account->dialect, rt->account->caps)) {
        case TB_FIT_OK:
            APR_ARRAY_IDX(routes, kept++, tb_route_t) = *rt;
            break;
        case TB_FIT_NEEDS:
            ++needs;
            break;
        default:
            break;
        }
    }
    routes->nelts = kept;
    if (kept) {
        return 1;
    }
    if (needs && info->op == TB_OP_COMPACT) {
        tb_error_set(err, HTTP_BAD_REQUEST, "invalid_request_error",
                     "unsupported_route", NULL, apr_psprintf(r->pool,
                     "Compaction (/responses/compact) is not available for the "
                     "model '%s' through this gateway: none of its accounts "
                     "supports it.", info->model));
    }
    else if (needs) {
        tb_error_set(err, HTTP_BAD_REQUEST, "invalid_request_error",
                     "unsupported_parameter", info->needs_param,
                     apr_psprintf(r->pool, "'%s' is not supported for the model "
                                  "'%s' through this gateway: none of its accounts "
                                  "keeps server-side state of that kind.",
                                  info->needs_param ? info->needs_param : "input",
                                  info->model));
    }
    else {
        tb_error_set(err, HTTP_SERVICE_UNAVAILABLE, "api_error",
                     "no_available_account", NULL,
                     "No upstream account can take this request right now.");
        err->retry_after = 1;
    }
    return 0;
}

/* A model request in any client dialect: read and check the body, resolve
 * the model, keep the accounts that can serve it, forward. */
static int handle_generate(request_rec *r, const tb_keyinfo_t *key,
                           const tb_dialect_t *client, tb_op_t op)
{
    tb_dir_conf_t *dc = tb_conf_dir(r);
    const tb_catalog_t *cat;
    const tb_model_t *model;
    apr_array_header_t *routes;
    tb_req_info_t *info = apr_pcalloc(r->pool, sizeof(*info));
    tb_ir_error_t inv;
    tb_error_t err;
    char *body;
    apr_size_t len;
    int configured;

    if (read_body(r, tb_conf_max_body(dc), &body, &len, &err) != APR_SUCCESS) {
        return err.status == AP_FILTER_ERROR ? AP_FILTER_ERROR
                                             : tb_respond_error(r, &err);
    }
    if (client->check(r->pool, op, body, len, info, &inv) != APR_SUCCESS) {
        tb_error_set(&err, inv.status ? inv.status : HTTP_BAD_REQUEST,
                     inv.type ? inv.type : "invalid_request_error", inv.code,
                     inv.param, inv.message);
        return tb_respond_error(r, &err);
    }
    if (!catalog_or_error(r, &cat, &err)) {
        return tb_respond_error(r, &err);
    }
    model = tb_catalog_resolve(cat, info->model);
    if (!model) {
        tb_error_set(&err, HTTP_NOT_FOUND, "invalid_request_error",
                     "model_not_found", "model",
                     apr_psprintf(r->pool, "The model '%s' does not exist or "
                                  "you do not have access to it.", info->model));
        return tb_respond_error(r, &err);
    }
    apr_table_setn(r->notes, "TOKENBAY_MODEL", model->id);
    if (!tb_auth_model_allowed(key, model->id)) {
        tb_error_set(&err, HTTP_FORBIDDEN, "permission_error",
                     "model_not_allowed", "model",
                     apr_psprintf(r->pool, "This API key may not use the "
                                  "model '%s'.", info->model));
        return tb_respond_error(r, &err);
    }
    tb_catalog_routes(cat, (int)key->group_id, model->id, r->pool, &routes,
                      &configured);
    if (!configured) {
        tb_error_set(&err, HTTP_FORBIDDEN, "permission_error",
                     "model_not_allowed", "model",
                     apr_psprintf(r->pool, "The model '%s' is not available "
                                  "to this API key's group.", info->model));
        return tb_respond_error(r, &err);
    }
    if (!eligible_routes(r, client, info, routes, &err)) {
        apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "rejected");
        return tb_respond_error(r, &err);
    }
    return tb_forward(r, client, info, model->id, key->key_id, routes);
}

/* The models this key may use; without a key (where the configuration
 * lets /models through unauthenticated, e.g. Require ip), every model an
 * account serves. */
static int handle_models(request_rec *r, const tb_keyinfo_t *key)
{
    const tb_catalog_t *cat;
    apr_array_header_t *all, *mine;
    tb_error_t err;
    const char *body;
    int i;

    if (!catalog_or_error(r, &cat, &err)) {
        return tb_respond_error(r, &err);
    }
    all = tb_catalog_models_for_group(cat, key ? (int)key->group_id
                                               : TB_CATALOG_ANY_GROUP, r->pool);
    mine = apr_array_make(r->pool, all->nelts ? all->nelts : 1,
                          sizeof(tb_model_entry_t));
    for (i = 0; i < all->nelts; ++i) {
        tb_model_entry_t *e = &APR_ARRAY_IDX(all, i, tb_model_entry_t);
        if (!key || tb_auth_model_allowed(key, e->model->id)) {
            *(tb_model_entry_t *)apr_array_push(mine) = *e;
        }
    }
    body = tb_openai_models_body(r->pool, mine);
    apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "ok");
    return tb_respond_body(r, HTTP_OK, "application/json", body, strlen(body));
}

typedef enum {
    ROUTE_NONE, ROUTE_CHAT, ROUTE_RESPONSES, ROUTE_COMPACT, ROUTE_MODELS,
    ROUTE_RESPONSE_ITEM          /* .../responses/{id} */
} route_t;

#define RESPONSES_SEGMENT "/responses/"

/* The {id} of .../responses/{id}, or NULL. */
static const char *response_item_id(const request_rec *r)
{
    const char *at = NULL, *p = r->uri;

    while ((p = strstr(p, RESPONSES_SEGMENT)) != NULL) {
        at = p;
        ++p;
    }
    if (!at) {
        return NULL;
    }
    at += sizeof(RESPONSES_SEGMENT) - 1;
    return *at && !strchr(at, '/') && strcmp(at, "compact") ? at : NULL;
}

/* A request's route, the methods it takes, and for .../responses/{id}
 * the id. */
typedef struct route_info_t {
    route_t route;
    apr_int64_t methods;         /* AP_METHOD_BIT << M_*, for r->allowed */
    const char *allow;           /* ... and for the Allow header */
    const char *id;
} route_info_t;

#define BIT(m) (AP_METHOD_BIT << (m))

/* The route is the tail of the path, so the gateway may be mounted at any
 * prefix (/v1, /openai/v1, ...). */
static void route_of(const request_rec *r, route_info_t *ri)
{
    static const struct {
        const char *suffix;
        route_t route;
        apr_int64_t methods;
        const char *allow;
    } routes[] = {
        { "/chat/completions", ROUTE_CHAT, BIT(M_POST), "POST" },
        { "/responses/compact", ROUTE_COMPACT, BIT(M_POST), "POST" },
        { "/responses", ROUTE_RESPONSES, BIT(M_POST), "POST" },
        { "/models", ROUTE_MODELS, BIT(M_GET), "GET" },
    };
    apr_size_t ulen = strlen(r->uri), i;

    memset(ri, 0, sizeof(*ri));
    for (i = 0; i < sizeof(routes) / sizeof(routes[0]); ++i) {
        apr_size_t slen = strlen(routes[i].suffix);
        if (ulen >= slen && !strcmp(r->uri + ulen - slen, routes[i].suffix)) {
            ri->route = routes[i].route;
            ri->methods = routes[i].methods;
            ri->allow = routes[i].allow;
            return;
        }
    }
    /* NB: r->uri is decoded already */
    if ((ri->id = response_item_id(r)) != NULL) {
        ri->route = ROUTE_RESPONSE_ITEM;
        ri->methods = BIT(M_GET) | BIT(M_DELETE);
        ri->allow = "GET, DELETE";
    }
}

int tb_route_is_models(const request_rec *r)
{
    route_info_t ri;

    route_of(r, &ri);
    return ri.route == ROUTE_MODELS && r->method_number == M_GET;
}

/* Codex's built-in provider first asks for the Responses WebSocket
 * transport; it falls back to HTTP at once only on 426 (anything else
 * costs it retries). The gateway does not serve that transport (yet). */
static int is_websocket_upgrade(const request_rec *r)
{
    const char *up = apr_table_get(r->headers_in, "Upgrade");

    return r->method_number == M_GET && up && ap_strcasestr(up, "websocket");
}

int tb_handler(request_rec *r)
{
    const tb_keyinfo_t *key;
    tb_error_t err;
    route_info_t ri;
    route_t route;

    if (!r->handler || strcmp(r->handler, TB_HANDLER)) {
        return DECLINED;
    }
    tb_request_id(r);
    route_of(r, &ri);
    route = ri.route;
    if (route == ROUTE_NONE) {
        tb_error_set(&err, HTTP_NOT_FOUND, "invalid_request_error", "unknown_url",
                     NULL, apr_psprintf(r->pool, "Invalid URL (%s %s).",
                                        r->method, ap_escape_html(r->pool, r->uri)));
        return tb_respond_error(r, &err);
    }
    /* authentication ran in httpd's auth phase (mod_tokenbay_auth.c);
     * without a key, only a public model list is served */
    if (route == ROUTE_MODELS && !tb_auth_key(r) && !tb_auth_key_presented(r)
        && tb_conf_public_models(tb_conf_dir(r)) == 1
        && r->method_number == M_GET) {
        return handle_models(r, NULL);
    }
    if (!(key = tb_auth_require_key(r, &err))) {
        return tb_respond_error(r, &err);
    }
    if (route == ROUTE_RESPONSES && is_websocket_upgrade(r)) {
        apr_table_setn(r->notes, "TOKENBAY_OUTCOME", "rejected");
        /* RFC 9110: a 426 names the protocol to use; here, plain HTTP */
        apr_table_setn(r->err_headers_out, "Upgrade", "HTTP/1.1");
        tb_error_set(&err, HTTP_UPGRADE_REQUIRED, "invalid_request_error",
                     "websocket_not_supported", NULL,
                     "This gateway serves the Responses API over HTTP only: use "
                     "POST with Server-Sent Events.");
        return tb_respond_error(r, &err);
    }
    /* NB: HEAD is M_GET */
    if (!(ri.methods & BIT(r->method_number))) {
        r->allowed = ri.methods;
        apr_table_setn(r->err_headers_out, "Allow", ri.allow);
        tb_error_set(&err, HTTP_METHOD_NOT_ALLOWED, "invalid_request_error",
                     "method_not_allowed", NULL,
                     apr_psprintf(r->pool, "Use %s for this URL.", ri.allow));
        return tb_respond_error(r, &err);
    }
    if (route == ROUTE_MODELS) {
        return handle_models(r, key);
    }
    if (route == ROUTE_RESPONSE_ITEM) {
        apr_table_setn(r->notes, "TOKENBAY_ROUTE", r->method_number == M_DELETE
                       ? "response_delete" : "response_get");
        return tb_forward_response_item(r, key, ri.id);
    }
    switch (route) {
    case ROUTE_CHAT:
        apr_table_setn(r->notes, "TOKENBAY_ROUTE", "chat");
        return handle_generate(r, key, &tb_dialect_chat, TB_OP_CHAT);
    case ROUTE_RESPONSES:
        apr_table_setn(r->notes, "TOKENBAY_ROUTE", "responses");
        return handle_generate(r, key, &tb_dialect_responses, TB_OP_RESPONSES);
    case ROUTE_COMPACT:
        apr_table_setn(r->notes, "TOKENBAY_ROUTE", "compact");
        return handle_generate(r, key, &tb_dialect_responses, TB_OP_COMPACT);
    default:
        return HTTP_INTERNAL_SERVER_ERROR;
    }
}
