/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef MOD_TOKENBAY_FORWARD_H
#define MOD_TOKENBAY_FORWARD_H

#include <httpd.h>

#include "tb_dialect.h"
#include "tb_keycache.h"

/* Send a validated client request for the canonical `model_id` to the
 * routes' accounts, in scheduler order (sticky by previous response and
 * by session of key `key_id`, then priority and weight among healthy
 * accounts with a free slot, waiting up to TokenBayQueueTimeout for
 * one), failing over until one answers with something to relay, and
 * write the answer: buffered JSON, or an SSE stream when the client asked
 * for one (with the commit point rule). Every attempt's outcome goes to
 * the scheduler's health. Returns the handler's status. */
int tb_forward(request_rec *r, const tb_dialect_t *client, tb_req_info_t *info,
               const char *model_id, long key_id, apr_array_header_t *routes);

/* GET or DELETE .../responses/{id}: passed to the Responses account
 * that produced the response, for the key that made it; 404
 * response_not_found for any other key, an unknown id, or an account
 * that is gone. */
int tb_forward_response_item(request_rec *r, const tb_keyinfo_t *key,
                             const char *id);

#endif /* MOD_TOKENBAY_FORWARD_H */
