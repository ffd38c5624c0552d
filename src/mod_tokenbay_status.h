/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef MOD_TOKENBAY_STATUS_H
#define MOD_TOKENBAY_STATUS_H

#include <httpd.h>

/* The status page: the upstream accounts as this host's scheduler sees
 * them (in flight, cooldowns, error marks, counters), for operators and
 * `tokenbay-admin account status`. Configured with
 *
 *     <Location "/tokenbay-status">
 *         SetHandler tokenbay-status
 *         Require ip 127.0.0.1 ::1
 *     </Location>
 *
 * It takes no gateway key: httpd's access control is all that guards it,
 * so it shows nothing secret (no credential, no base URL). JSON by
 * default; ?format=text (or an Accept header preferring text/plain) gives
 * an aligned table; ?account=NAME shows one account. */
#define TB_STATUS_HANDLER "tokenbay-status"

/* The content handler: DECLINED unless r->handler is TB_STATUS_HANDLER. */
int tb_status_handler(request_rec *r);

#endif /* MOD_TOKENBAY_STATUS_H */
