/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_OPENAI_H
#define TB_OPENAI_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

#include "tb_dialect.h"

/* What the two OpenAI dialects (Chat Completions and Responses) share:
 * request checks, the model splice, common fields, auth, counts. */

/* The top-level "model": present, a non-empty string; sets info->model. */
apr_status_t tb_openai_check_model(apr_pool_t *p, const tb_jdoc_t *d,
                                   tb_req_info_t *info, tb_ir_error_t *err);

/* "stream": a boolean or null when present; sets info->stream. */
apr_status_t tb_openai_check_stream(const tb_jdoc_t *d, tb_req_info_t *info,
                                    tb_ir_error_t *err);

/* One replacement in a body: [start, start+len) becomes repl. */
typedef struct tb_splice_t {
    apr_size_t start, len;
    const char *repl;
} tb_splice_t;

/* The body with the edits applied (sorted here by start), as pieces that
 * point into the body: nothing is copied. */
apr_array_header_t *tb_splice_iov(apr_pool_t *p, const char *body,
                                  apr_size_t len, tb_splice_t *edits, int n);

/* The edit putting `model` in place of the top-level model value (an
 * empty edit when it is the same already). */
void tb_openai_model_edit(apr_pool_t *p, const tb_jdoc_t *d, const char *model,
                          tb_splice_t *edit);

/* Fields both dialects spell alike: sampling, identity, metadata, store,
 * parallel_tool_calls. */
void tb_openai_parse_common(apr_pool_t *p, const json_t *root, tb_ir_req_t *req);
/* ... written back: sampling (temperature, top_p, penalties, seed) */
void tb_openai_emit_sampling(json_t *root, const tb_ir_req_t *req);
/* ... and who asks (metadata, user, safety_identifier, prompt_cache_key,
 * service_tier) */
void tb_openai_emit_identity(json_t *root, const tb_ir_req_t *req);

/* How a dialect names its usage counts. */
typedef struct tb_openai_usage_names_t {
    const char *input, *output;
    const char *input_details, *output_details;
} tb_openai_usage_names_t;

/* Read a usage object (absent counts stay as they were). */
void tb_openai_usage_read(const json_t *usage, const tb_openai_usage_names_t *n,
                          tb_ir_usage_t *u);
/* The same from a raw body's top-level "usage" alone. 1 when found. */
int tb_openai_usage_scan(apr_pool_t *p, const char *body, apr_size_t len,
                         const tb_openai_usage_names_t *n, tb_ir_usage_t *u);

/* "Authorization: Bearer <credential>" (nothing for an empty one). */
void tb_openai_auth(apr_pool_t *p, const char *credential,
                    apr_array_header_t *headers);

/* A count from an object member: non-negative integers only. */
void tb_openai_count(const json_t *obj, const char *name, long *pv);

/* The /v1/models list body for entries (tb_model_entry_t). */
const char *tb_openai_models_body(apr_pool_t *p,
                                  const apr_array_header_t *entries);

#endif /* TB_OPENAI_H */
