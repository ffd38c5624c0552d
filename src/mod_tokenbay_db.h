/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef MOD_TOKENBAY_DB_H
#define MOD_TOKENBAY_DB_H

#include <httpd.h>

#include "tb_catalog.h"
#include "tb_keycache.h"

/* Fetch mod_dbd's optional functions and register our prepared statements
 * with every server. Called from post_config (before children exist).
 * Returns an error message when mod_dbd is not loaded. */
const char *tb_db_init(server_rec *s_main);

/* Every function here takes a connection from mod_dbd for its own use
 * and gives it back: none is held across a request or a stream. They
 * log query failures; a connection that cannot be had is returned as
 * APR_ECONNREFUSED without a log line (the caller's back-off decides how
 * often that is tried, and logs the outage once). */

/* Look a key up by its SHA-256 hex digest. APR_SUCCESS with info->found
 * telling whether it exists (strings in p); another status when the
 * database cannot be reached or queried. */
apr_status_t tb_db_key_lookup(server_rec *s, apr_pool_t *p, const char *hash,
                              tb_keyinfo_t *info);

/* Look up n keys, TB_DB_KEY_BATCH per query: cb is called for each key
 * found (a key not reported does not exist). */
#define TB_DB_KEY_BATCH 32
typedef apr_status_t tb_db_key_cb(void *ctx, const char *hash,
                                  const tb_keyinfo_t *info);
apr_status_t tb_db_keys_lookup(server_rec *s, apr_pool_t *p,
                               const char *const *hashes, int n,
                               tb_db_key_cb *cb, void *ctx);

/* Build a complete catalogue into pool `cp` (its lifetime is the
 * catalogue's; p is for scratch). All-or-nothing: on error nothing
 * usable is returned. */
apr_status_t tb_db_catalog_load(server_rec *s, apr_pool_t *p, apr_pool_t *cp,
                                tb_catalog_t **pcat);

/* Mark an active account 'error' (the upstream refused its credential),
 * with a reason for the operator (never the credential). */
apr_status_t tb_db_account_mark_error(server_rec *s, apr_pool_t *p,
                                      int account_id, const char *reason);

#endif /* MOD_TOKENBAY_DB_H */
