/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef MOD_TOKENBAY_STATE_H
#define MOD_TOKENBAY_STATE_H

#include <httpd.h>

#include "tb_catalog.h"
#include "tb_curl.h"
#include "tb_keycache.h"

/* Per-process runtime, created in child_init: the upstream handle pool
 * (one per process) and, per server, the key cache and the catalogue. */
apr_status_t tb_state_child_init(apr_pool_t *pchild, server_rec *s_main);

tb_curl_pool_t *tb_state_curl_pool(void);

/* The key's record: from the cache when fresh, else from the database
 * (then cached, negative answers too). Non-success: database trouble. */
apr_status_t tb_state_key_lookup(request_rec *r, const char *hash,
                                 tb_keyinfo_t *info);

/* The current catalogue, refreshed from the database when older than
 * TokenBayCatalogTTL. It stays valid until r->pool is cleaned up. When a
 * refresh fails the previous catalogue is served (logged); only a process
 * that never loaded one gets an error (the caller answers 503). */
apr_status_t tb_state_catalog(request_rec *r, const tb_catalog_t **pcat);

#endif /* MOD_TOKENBAY_STATE_H */
