/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef MOD_TOKENBAY_AUTH_H
#define MOD_TOKENBAY_AUTH_H

#include <httpd.h>

#include "mod_tokenbay_respond.h"
#include "tb_keycache.h"

/* The AuthType this module answers to. */
#define TB_AUTH_TYPE "tokenbay"

/* Gateway keys in httpd's own phases:
 *   check_authn   the presented key (Authorization: Bearer, or x-api-key)
 *                 is looked up; r->user and r->ap_auth_type are set and
 *                 the key's record is kept for the handler;
 *   force_authn   a presented key is checked even where Require lets the
 *                 request through without a user, so a key is never
 *                 ignored;
 *   authz         Require tokenbay-group NAME... and tokenbay-key NAME...;
 *                 Require valid-user (mod_authz_user) means any active key.
 * All of it applies where AuthType is tokenbay, or where TokenBay is On
 * and no other AuthType is configured. */
void tb_auth_register_hooks(apr_pool_t *p);

/* Does mod_tokenbay authenticate this request? */
int tb_auth_applies(request_rec *r);

/* The key authenticated for this request (or for the request it was
 * internally redirected from), or NULL when none was. */
const tb_keyinfo_t *tb_auth_key(request_rec *r);

/* The key for the handler: the one authentication found, or, where
 * httpd's auth phase did not run for this URL (Satisfy Any, another
 * AuthType), the presented key checked the same way. NULL, with *err
 * saying what to answer (401, 403, 503), when there is none or it is
 * refused. */
const tb_keyinfo_t *tb_auth_require_key(request_rec *r, tb_error_t *err);

/* Did the client present a key (or something in its place)? */
int tb_auth_key_presented(request_rec *r);

/* Why authentication refused this request, or NULL. */
const tb_error_t *tb_auth_failure(request_rec *r);

/* May this key use this canonical model? (key and group allowlists) */
int tb_auth_model_allowed(const tb_keyinfo_t *info, const char *model_id);

#endif /* MOD_TOKENBAY_AUTH_H */
