/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef MOD_TOKENBAY_FORWARD_H
#define MOD_TOKENBAY_FORWARD_H

#include <httpd.h>

#include "tb_dialect.h"

/* Send a validated client request to the routes' accounts, in scheduler
 * order, failing over until one answers with something to relay, and
 * write the answer: buffered JSON, or an SSE stream when the client asked
 * for one (with the commit point rule). Returns the handler's status. */
int tb_forward(request_rec *r, const tb_dialect_t *client, tb_req_info_t *info,
               apr_array_header_t *routes);

#endif /* MOD_TOKENBAY_FORWARD_H */
