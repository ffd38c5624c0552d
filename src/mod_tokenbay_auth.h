/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef MOD_TOKENBAY_AUTH_H
#define MOD_TOKENBAY_AUTH_H

#include <httpd.h>

#include "mod_tokenbay_respond.h"
#include "tb_keycache.h"

/* Authenticate the request's gateway key (Authorization: Bearer, or
 * x-api-key). APR_SUCCESS with *info filled and r->user set to the key's
 * display form; otherwise *err says what to answer (401, 403 or 503). */
apr_status_t tb_auth_check(request_rec *r, tb_keyinfo_t *info,
                           tb_error_t *err);

/* May this key use this canonical model? (key and group allowlists) */
int tb_auth_model_allowed(const tb_keyinfo_t *info, const char *model_id);

#endif /* MOD_TOKENBAY_AUTH_H */
