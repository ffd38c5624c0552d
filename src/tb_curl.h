/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_CURL_H
#define TB_CURL_H

#include "tb_upstream.h"

/* libcurl lives behind this header only. A process-wide pool of reusable
 * (multi, easy) handle pairs keeps upstream connections alive across
 * requests, as mod_proxy does with its backend connections: a TCP/TLS
 * handshake per request would cost more than the rest of the gateway. */
typedef struct tb_curl_pool_t tb_curl_pool_t;

/* Once per configuration generation in the parent, before any threads. */
apr_status_t tb_curl_global_init(apr_pool_t *pconf);

/* Per child process; handles are released when `p` is destroyed.
 * `max_idle` bounds how many idle pairs are kept, `keepalive` how long
 * an idle connection may be reused. A request takes an idle pair whose
 * connection goes to its URL's origin when there is one. */
apr_status_t tb_curl_pool_create(tb_curl_pool_t **ppool, apr_pool_t *p,
                                 unsigned int max_idle,
                                 apr_interval_time_t keepalive);

/* Close the idle pairs whose connection the upstream has closed (they
 * would sit in CLOSE-WAIT until reused), and those idle longer than the
 * keepalive. For a housekeeping thread, about once a second; safe with
 * requests running. Returns how many were closed. */
unsigned int tb_curl_pool_sweep(tb_curl_pool_t *cp, apr_time_t now);

/* Run one exchange to completion on the calling thread. Returns
 * APR_SUCCESS when the exchange was attempted (see res->error for its
 * outcome), or an error when no handle could be set up. */
apr_status_t tb_curl_perform(tb_curl_pool_t *cpool,
                             const tb_http_request_t *req,
                             const tb_http_sink_t *sink, apr_pool_t *p,
                             tb_http_result_t *res);

#endif /* TB_CURL_H */
