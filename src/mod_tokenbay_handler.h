/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef MOD_TOKENBAY_HANDLER_H
#define MOD_TOKENBAY_HANDLER_H

#include <httpd.h>

/* translate_name and map_to_storage: claim gateway URLs, skip the disk */
int tb_translate_name(request_rec *r);
int tb_map_to_storage(request_rec *r);

/* fixups: where "TokenBay On" applies, the request is ours */
int tb_fixups(request_rec *r);

/* the "tokenbay" content handler: routes /v1/... requests */
int tb_handler(request_rec *r);

/* Is this GET .../models (the one route that may go without a key)? */
int tb_route_is_models(const request_rec *r);

#endif /* MOD_TOKENBAY_HANDLER_H */
