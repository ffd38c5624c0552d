/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */

/* mod_tokenbay: an OpenAI-compatible LLM gateway inside httpd.
 * This file holds the module record and process-level set-up only; the
 * request path is in src/mod_tokenbay_handler.c. */

#define TB_MODULE_RECORD

#include <apr_strings.h>
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_main.h>
#include <http_request.h>

#include "src/mod_tokenbay_private.h"
#include "src/mod_tokenbay_auth.h"
#include "src/mod_tokenbay_config.h"
#include "src/mod_tokenbay_db.h"
#include "src/mod_tokenbay_handler.h"
#include "src/mod_tokenbay_respond.h"
#include "src/mod_tokenbay_shared.h"
#include "src/mod_tokenbay_status.h"
#include "src/mod_tokenbay_state.h"
#include "src/tb_curl.h"
#include "src/tb_log.h"
#include "src/tb_util.h"

/* ---- library logging through httpd's error log ---------------------------- */

static int log_is_level(apr_pool_t *p, tb_log_level_t level)
{
    (void)p;
    return ap_server_conf ? APLOG_IS_LEVEL(ap_server_conf, (int)level) : 0;
}

static void log_print(const char *file, int line, tb_log_level_t level,
                      apr_status_t rv, apr_pool_t *p, const char *msg)
{
    ap_log_perror(file, line, APLOG_MODULE_INDEX, (int)level, rv, p, "%s", msg);
}

/* ---- process set-up --------------------------------------------------------- */

static int tb_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s)
{
    const char *err;

    /* the first pass only checks the configuration: nothing to set up */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    tb_log_set(log_is_level, log_print);
    if ((err = tb_db_init(s)) != NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, TB_LOGNO(1) "%s", err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* NB: not thread-safe, so here in the parent before any thread runs;
     * children inherit the initialised library */
    if (tb_curl_global_init(pconf) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, TB_LOGNO(2)
                     "libcurl global initialisation failed");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_add_version_component(pconf, "mod_tokenbay/" TB_VERSION);
    return tb_shared_post_config(pconf, ptemp, s);
}

static void tb_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    tb_random_seed((apr_uint64_t)(apr_uintptr_t)pchild);
    tb_shared_child_init(pchild, s);
    if ((rv = tb_state_child_init(pchild, s)) != APR_SUCCESS) {
        /* the process stays up and answers 503 (mod_tokenbay_state.c) */
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, TB_LOGNO(3)
                     "cannot set up per-process state: this process answers "
                     "503 to gateway requests");
    }
}

static void tb_register_hooks(apr_pool_t *p)
{
    /* before mod_watchdog (APR_HOOK_LAST) may start threads in the parent */
    ap_hook_post_config(tb_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(tb_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(tb_translate_name, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_map_to_storage(tb_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_fixups(tb_fixups, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(tb_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(tb_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    tb_shared_register_hooks(p);
    tb_auth_register_hooks(p);
    tb_respond_register_hooks(p);
}

AP_DECLARE_MODULE(tokenbay) = {
    STANDARD20_MODULE_STUFF,
    tb_conf_create_dir,     /* per-directory config */
    tb_conf_merge_dir,      /* merge per-directory */
    tb_conf_create_srv,     /* per-server config */
    tb_conf_merge_srv,      /* merge per-server */
    tb_cmds,                /* directives */
    tb_register_hooks,      /* hooks */
    AP_MODULE_FLAG_NONE     /* flags */
};
