/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef MOD_TOKENBAY_PRIVATE_H
#define MOD_TOKENBAY_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

extern module AP_MODULE_DECLARE_DATA tokenbay_module;

/* mod_tokenbay.c declares the module itself (AP_DECLARE_MODULE sets the
 * log index there); every other file uses it. */
#if defined(APLOG_USE_MODULE) && !defined(TB_MODULE_RECORD)
APLOG_USE_MODULE(tokenbay);
#endif

/* Log tags: "TB<n>: " so operators can grep and we can document them. */
#define TB_LOGNO(n) "TB" #n ": "

#define TB_HANDLER "tokenbay"

#endif /* MOD_TOKENBAY_PRIVATE_H */
