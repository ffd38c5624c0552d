/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * http://www.apache.org/licenses/LICENSE-2.0
 */
#ifndef TB_IR_H
#define TB_IR_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

/* The internal representation every dialect converts to and from: one
 * request, one response, one stream of events, shaped for Chat
 * Completions, Responses, Anthropic Messages and Gemini alike
 * (conversions.md §1). Each dialect has one parser and one emitter per
 * direction instead of a converter per pair of dialects.
 *
 * Ownership: everything lives in the pool it was built in; JSON values
 * (schemas, metadata) are jansson references owned by that pool.
 * Strings are NUL-terminated UTF-8. NB: a "\u0000" inside converted text
 * ends the string there; pass-through bodies are never converted. */

/* ---- requests ------------------------------------------------------------------ */

typedef enum {
    TB_ROLE_SYSTEM,
    TB_ROLE_DEVELOPER,       /* OpenAI's newer name for system; kept apart */
    TB_ROLE_USER,
    TB_ROLE_ASSISTANT,
    TB_ROLE_TOOL             /* tool results; one message per result */
} tb_role_t;

typedef enum {
    TB_PART_TEXT,
    TB_PART_IMAGE,
    TB_PART_FILE,
    TB_PART_AUDIO,
    TB_PART_REFUSAL,         /* assistant side */
    TB_PART_REASONING,       /* assistant side, opaque data kept */
    TB_PART_TOOL_CALL,       /* assistant side */
    TB_PART_TOOL_RESULT      /* tool side */
} tb_part_kind_t;

typedef struct tb_ir_part_t {
    tb_part_kind_t kind;
    const char *text;        /* TEXT, REFUSAL; REASONING summary text */

    /* IMAGE / FILE / AUDIO */
    const char *url;         /* image URL or data: URL; file_url */
    const char *data;        /* FILE: file_data (a data: URL); AUDIO: base64 */
    const char *file_id;
    const char *filename;
    const char *detail;      /* IMAGE: auto|low|high|original, or NULL */
    const char *format;      /* AUDIO: wav|mp3 */

    /* TOOL_CALL */
    const char *item_id;     /* the producer's item id (fc_..., ctc_...), or NULL */
    const char *call_id;     /* the id tool results refer to */
    const char *name;
    const char *arguments;   /* raw JSON text; CUSTOM: the free-form input */
    int custom;              /* an OpenAI custom (free-form) tool call */
    const char *ns;          /* the tool's namespace (Responses), or NULL */

    /* TOOL_RESULT: text, plus media parts (IMAGE/FILE) when given */
    const char *result_call_id;
    apr_array_header_t *media;  /* tb_ir_part_t; NULL when none */

    /* REASONING (TB_PART_REASONING): kept opaque for the producer only */
    const char *reasoning_id;   /* Responses rs_... */
    const char *encrypted;      /* Responses encrypted_content */
} tb_ir_part_t;

typedef struct tb_ir_msg_t {
    tb_role_t role;
    const char *name;            /* optional participant name (Chat) */
    apr_array_header_t *parts;   /* tb_ir_part_t */
} tb_ir_msg_t;

typedef enum {
    TB_TOOL_FUNCTION,
    TB_TOOL_CUSTOM,              /* free-form input (Codex's apply_patch) */
    TB_TOOL_HOSTED               /* run by the provider: web_search, ... */
} tb_tool_kind_t;

typedef struct tb_ir_tool_t {
    tb_tool_kind_t kind;
    const char *name;
    const char *description;
    json_t *parameters;          /* FUNCTION: JSON Schema as the client sent it */
    int strict;                  /* -1 unset, 0, 1 */
    json_t *format;              /* CUSTOM: the grammar/text format, or NULL */
    const char *ns;              /* Responses namespace of the tool, or NULL */
    const char *hosted_type;     /* HOSTED: "web_search", ... */
    json_t *hosted;              /* HOSTED: the tool object as sent */
} tb_ir_tool_t;

typedef enum {
    TB_TC_UNSET, TB_TC_AUTO, TB_TC_NONE, TB_TC_REQUIRED,
    TB_TC_NAMED,                 /* tool_choice_name */
    TB_TC_ALLOWED                /* allowed_tools: mode + names */
} tb_tool_choice_t;

typedef enum {
    TB_RF_UNSET, TB_RF_TEXT, TB_RF_JSON_OBJECT, TB_RF_JSON_SCHEMA
} tb_rf_kind_t;

typedef struct tb_ir_req_t {
    const char *model;
    const char *instructions;    /* Responses instructions; NULL when none */
    apr_array_header_t *messages;/* tb_ir_msg_t, in order; system and
                                  * developer messages stay in place */
    apr_array_header_t *tools;   /* tb_ir_tool_t */
    tb_tool_choice_t tool_choice;
    const char *tool_choice_name;
    int tool_choice_custom;      /* the named tool is a custom one */
    const char *allowed_mode;    /* TB_TC_ALLOWED: "auto" | "required" */
    json_t *allowed_tools;       /* TB_TC_ALLOWED: [{type, name}] */
    int parallel_tool_calls;     /* -1 unset, 0, 1 */

    /* sampling and limits; NAN / -1 = unset */
    double temperature, top_p, presence_penalty, frequency_penalty;
    long max_output_tokens;
    long n;
    json_t *seed;                /* an integer, kept exact */
    apr_array_header_t *stop;    /* const char *; NULL when unset */
    int logprobs;                /* -1 unset, 0, 1 */
    long top_logprobs;

    tb_rf_kind_t rf;
    const char *rf_name, *rf_description;
    json_t *rf_schema;
    int rf_strict;               /* -1 unset */
    const char *verbosity;       /* low|medium|high */

    const char *effort;          /* none|minimal|low|medium|high|xhigh */
    const char *reasoning_summary; /* auto|concise|detailed */

    const char *user;
    const char *safety_identifier;
    const char *prompt_cache_key;
    const char *service_tier;
    json_t *metadata;            /* an object, or NULL */
    int store;                   /* -1 unset, 0, 1 */

    int stream;
    int include_usage;           /* the client asked for stream usage */
} tb_ir_req_t;

tb_ir_req_t *tb_ir_req_create(apr_pool_t *p);

/* The name a namespaced tool takes in dialects without namespaces:
 * "ns__name" (as short as providers require: at most 64 characters, a
 * hash replacing the excess). `name` itself when ns is NULL. */
const char *tb_ir_flat_name(apr_pool_t *p, const char *ns, const char *name);

/* The request's tool that a (possibly flattened) name designates, or
 * NULL: how answers from a dialect without namespaces or custom tools
 * are given their namespace and kind back. */
const tb_ir_tool_t *tb_ir_req_tool(apr_pool_t *p, const tb_ir_req_t *req,
                                   const char *flat_name);
tb_ir_msg_t *tb_ir_msg_add(apr_pool_t *p, tb_ir_req_t *req, tb_role_t role);
tb_ir_part_t *tb_ir_part_add(apr_pool_t *p, apr_array_header_t *parts,
                             tb_part_kind_t kind);

/* ---- responses ----------------------------------------------------------------- */

typedef enum {
    TB_FIN_NONE,
    TB_FIN_STOP,
    TB_FIN_LENGTH,
    TB_FIN_TOOL_CALLS,
    TB_FIN_CONTENT_FILTER,
    TB_FIN_PAUSE,                /* Anthropic pause_turn */
    TB_FIN_ERROR
} tb_finish_t;

/* Token counts; all are totals, never deltas; -1 = unknown. */
typedef struct tb_ir_usage_t {
    long input;                  /* includes cached and cache writes */
    long input_cached;
    long input_cache_write;
    long output;                 /* includes reasoning */
    long output_reasoning;
    long total;
} tb_ir_usage_t;

void tb_ir_usage_init(tb_ir_usage_t *u);
/* Overwrite what `from` knows (streams send running totals). */
void tb_ir_usage_merge(tb_ir_usage_t *u, const tb_ir_usage_t *from);
/* input + output when the total is unknown. */
long tb_ir_usage_total(const tb_ir_usage_t *u);

/* An error reported by the upstream (or made by the gateway), in OpenAI's
 * terms; converters map other dialects' errors into it. */
typedef struct tb_ir_error_t {
    int status;                  /* HTTP status it came with, 0 in a stream */
    const char *type;            /* invalid_request_error, server_error, ... */
    const char *code;            /* may be NULL */
    const char *param;           /* may be NULL */
    const char *message;
} tb_ir_error_t;

/* Is this error the request's own (the same on every account: a bad
 * request, a prompt too long for the model), rather than the account's
 * (overloaded, rate limited, out of quota)? The former is answered, never
 * failed over. */
int tb_ir_error_is_client(const tb_ir_error_t *err);

typedef struct tb_ir_resp_t {
    const char *id;              /* the producer's id, or NULL */
    const char *model;
    apr_int64_t created;         /* unix seconds */
    apr_array_header_t *output;  /* tb_ir_part_t: REASONING, TEXT, REFUSAL,
                                  * TOOL_CALL, in the producer's order */
    tb_finish_t finish;
    int failed;                  /* Responses status "failed" */
    tb_ir_error_t error;         /* when failed */
    tb_ir_usage_t usage;
} tb_ir_resp_t;

tb_ir_resp_t *tb_ir_resp_create(apr_pool_t *p);

const char *tb_finish_chat_name(tb_finish_t f);

/* ---- stream events ------------------------------------------------------------ */

/* What a stream is made of, whatever the dialect (conversions.md §1.2).
 * Decoders turn upstream events into these; encoders turn these into the
 * client's events; the commit logic (tb_stream.c) reads only these. */
typedef enum {
    TB_EV_START,                 /* id, model, created known */
    TB_EV_BLOCK_START,           /* a block of output opens */
    TB_EV_DELTA,                 /* text appended to a block */
    TB_EV_BLOCK_STOP,            /* a block is complete */
    TB_EV_FINISH,                /* why the output ended */
    TB_EV_USAGE,                 /* a running total: overwrite */
    TB_EV_ERROR,                 /* an upstream error inside the stream */
    TB_EV_END,                   /* the upstream's stream is complete */
    TB_EV_MARK                   /* an upstream event with no other meaning:
                                  * it only advances `seq` (the fast path
                                  * numbers what the gateway adds after it) */
} tb_ev_kind_t;

typedef enum {
    TB_BLOCK_TEXT,
    TB_BLOCK_REFUSAL,
    TB_BLOCK_REASONING,
    TB_BLOCK_TOOL_CALL,
    TB_BLOCK_OTHER               /* a provider item with no IR meaning */
} tb_block_kind_t;

typedef struct tb_ir_ev_t {
    tb_ev_kind_t kind;
    /* BLOCK_*, DELTA: the block, numbered by the decoder from 0 in open
     * order (never the upstream's own index) */
    int block;
    tb_block_kind_t bkind;
    const char *text;            /* DELTA: the piece; BLOCK_STOP: the whole
                                  * content when the upstream sent it (NULL:
                                  * the sum of the deltas) */
    apr_size_t text_len;
    /* START: the response; BLOCK_START: the upstream's item id or NULL */
    const char *id;
    const char *model;           /* START */
    apr_int64_t created;         /* START */
    const char *call_id, *name;  /* BLOCK_START of a TOOL_CALL */
    const char *ns;              /* ... its namespace, or NULL */
    int custom;                  /* a custom (free-form) tool call */
    const char *encrypted;       /* BLOCK_STOP of REASONING: opaque data */
    tb_finish_t finish;          /* FINISH */
    const tb_ir_usage_t *usage;  /* USAGE */
    const tb_ir_error_t *error;  /* ERROR */
    long seq;                    /* the upstream's sequence number, or -1 */
} tb_ir_ev_t;

/* Where a decoder delivers events; a non-APR_SUCCESS return stops it. */
typedef apr_status_t tb_ir_sink_fn(void *ctx, const tb_ir_ev_t *ev);

/* ---- joining text ---------------------------------------------------------------- */

/* Pieces of text joined once at the end (never piece by piece: that is
 * quadratic in the number of pieces, which a client decides). */
typedef struct tb_join_t {
    apr_array_header_t *pieces;  /* const char *, separators included */
    const char *sep;
} tb_join_t;

void tb_join_init(tb_join_t *j, apr_pool_t *p, const char *sep);
void tb_join_add(tb_join_t *j, const char *s);
/* The joined text, or NULL when nothing was added. */
const char *tb_join_done(tb_join_t *j, apr_pool_t *p);

/* ---- ids ---------------------------------------------------------------------- */

/* A new identifier with the given prefix ("resp_", "msg_", "fc_", ...):
 * the prefix and 24 hex digits. Not a secret. */
const char *tb_ir_new_id(apr_pool_t *p, const char *prefix);

#endif /* TB_IR_H */
