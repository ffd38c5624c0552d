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

/* Look a key up by its SHA-256 hex digest. APR_SUCCESS with info->found
 * telling whether it exists; another status when the database cannot be
 * reached or queried (the caller answers 503). */
apr_status_t tb_db_key_lookup(request_rec *r, const char *hash,
                              tb_keyinfo_t *info);

/* Build a complete catalogue into pool `cp` (its lifetime is the
 * catalogue's). All-or-nothing: on error nothing usable is returned. */
apr_status_t tb_db_catalog_load(request_rec *r, apr_pool_t *cp,
                                tb_catalog_t **pcat);

#endif /* MOD_TOKENBAY_DB_H */
