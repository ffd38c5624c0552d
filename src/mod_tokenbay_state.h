/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef MOD_TOKENBAY_STATE_H
#define MOD_TOKENBAY_STATE_H

#include <httpd.h>

#include "mod_tokenbay_respond.h"
#include "tb_catalog.h"
#include "tb_curl.h"
#include "tb_keycache.h"

/* Per-process runtime, created in child_init: the upstream handle pool
 * (one per process), per server the key cache and the catalogue, and one
 * background thread that keeps them fresh, so that MySQL is off the
 * request path for everything the process has seen:
 *   - the catalogue is reloaded before it reaches TokenBayCatalogTTL;
 *   - known keys used within TokenBayKeyStaleTTL are revalidated before
 *     they reach TokenBayKeyCacheTTL, in batches;
 *   - idle upstream connections the upstream closed, or idle longer than
 *     TokenBayUpstreamKeepAlive, are closed.
 * When the database cannot be reached, what was loaded keeps serving
 * (keys up to TokenBayKeyStaleTTL after their last confirmation), and
 * the process retries with a back-off shared by its threads. On failure
 * the child serves 503s (see tb_state_unavailable_error). */
apr_status_t tb_state_child_init(apr_pool_t *pchild, server_rec *s_main);

/* NULL when child_init failed. */
tb_curl_pool_t *tb_state_curl_pool(void);

/* The key's record for a SHA-256 hex digest: APR_SUCCESS with *info
 * (info->found says whether the key exists); from the cache for any key
 * this process has seen, else from the database. Other statuses: the
 * database cannot answer now (APR_EAGAIN while backing off), or this
 * process has no state. */
apr_status_t tb_state_key_lookup(request_rec *r, const char *hash,
                                 tb_keyinfo_t *info);

/* The current catalogue, valid until r->pool is cleaned up. Reloaded in
 * the background; a stale one is served while the database cannot give
 * a new one. Only a process that never loaded one gets an error. */
apr_status_t tb_state_catalog(request_rec *r, const tb_catalog_t **pcat);

/* Write the error mark of an account to the database (status 'error',
 * with the reason), so that every host stops using it at its next
 * reload. Through the database's back-off: APR_EAGAIN while it is down
 * (the mark then holds on this host only). */
apr_status_t tb_state_account_mark_error(request_rec *r, const tb_account_t *a,
                                         const char *reason);

/* The 503 for a request that needs a catalogue and cannot have one. */
void tb_state_catalog_error(tb_error_t *err);

/* The 503 for a status from the two calls above. */
void tb_state_unavailable_error(request_rec *r, apr_status_t rv,
                                tb_error_t *err);

#endif /* MOD_TOKENBAY_STATE_H */
