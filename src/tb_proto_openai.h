/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_PROTO_OPENAI_H
#define TB_PROTO_OPENAI_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

/* What the gateway needs to know of a client's request body. */
typedef struct tb_openai_req_t {
    const char *model;      /* as the client named it */
    int stream;             /* "stream": true */
    int include_usage;      /* "stream_options": {"include_usage": true} */
} tb_openai_req_t;

/* A validation failure: OpenAI's invalid_request_error with `param`. */
typedef struct tb_openai_invalid_t {
    const char *message;
    const char *param;      /* may be NULL */
    int malformed;          /* not JSON at all */
} tb_openai_invalid_t;

/* Check a raw Chat Completions body: valid JSON; an object with a
 * non-empty string `model` and a non-empty array `messages` of objects
 * with a string `role`; a boolean (or null) `stream` when present. Unknown
 * fields are not our business. No tree is built: pass-through bodies are
 * checked, not rebuilt. APR_EINVAL with *pinvalid filled when the body is
 * unacceptable. */
apr_status_t tb_openai_chat_check(apr_pool_t *p, const char *body,
                                  apr_size_t len, tb_openai_req_t *preq,
                                  tb_openai_invalid_t *pinvalid);

/* Token counts of one exchange; -1 where unknown. */
typedef struct tb_usage_t {
    long prompt_tokens;
    long completion_tokens;
    long total_tokens;
} tb_usage_t;

void tb_usage_init(tb_usage_t *u);

/* Read `usage` from a chat.completion (or chunk) object; fields that are
 * absent stay as they were. Returns 1 when a usage object was present. */
int tb_openai_usage_read(const json_t *obj, tb_usage_t *u);

/* The same from a raw response body, parsing only its top-level "usage"
 * member (a full tree of a large completion costs more than the rest of
 * the request). Returns 1 when usage was found. */
int tb_openai_usage_scan(apr_pool_t *p, const char *body, apr_size_t len,
                         tb_usage_t *u);

/* The /v1/models list body for entries (tb_model_entry_t). */
const char *tb_openai_models_body(apr_pool_t *p,
                                  const apr_array_header_t *entries);

#endif /* TB_PROTO_OPENAI_H */
