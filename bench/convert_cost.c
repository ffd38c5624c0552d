/* convert_cost: what converting costs, measured in the library itself.
 *
 *   convert_cost BODY.json [ITERATIONS]
 *
 * BODY is a Responses request (a captured Codex turn) or a Chat request
 * ("messages" decides). For each it times, averaged over ITERATIONS
 * (default 2000), in microseconds per request:
 *   scan      the one validating pass of the fast path (check)
 *   splice    the fast path's model splice (pieces, no copy)
 *   convert   check + parse into the IR + emit in the other dialect
 * and, for streams, the cost per event of turning a chat chunk stream into
 * Responses events and back (decode + encode + commit logic), against the
 * pass-through pipeline on the same events. Prints one line each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "tb_dialect.h"
#include "tb_stream.h"

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static char *slurp(const char *path, apr_size_t *plen)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        perror(path);
        exit(2);
    }
    buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        perror(path);
        exit(2);
    }
    buf[n] = '\0';
    fclose(f);
    *plen = (apr_size_t)n;
    return buf;
}

static apr_status_t sink_commit(void *ctx) { (void)ctx; return APR_SUCCESS; }
static apr_status_t sink_write(void *ctx, const char *b, apr_size_t n)
{
    *(apr_size_t *)ctx += n;
    (void)b;
    return APR_SUCCESS;
}

/* A chat stream of `n` content chunks, with role, finish, usage, [DONE]. */
static const char *chat_stream(apr_pool_t *p, int n, int *pevents)
{
    const char *chunk = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
        "\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
        "\"token \"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
    char *out = apr_pstrcat(p, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
        "\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
        "\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n", NULL);
    int i;

    for (i = 0; i < n; ++i) {
        out = apr_pstrcat(p, out, chunk, NULL);
    }
    out = apr_pstrcat(p, out, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
        "\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"}]}\n\n"
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
        "\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,"
        "\"total_tokens\":12}}\n\ndata: [DONE]\n\n", NULL);
    *pevents = n + 4;
    return out;
}

static double stream_cost(apr_pool_t *p, const tb_dialect_t *client,
                          const tb_dialect_t *up, const tb_ir_req_t *req,
                          const char *bytes, int events, int rounds,
                          apr_size_t *pout)
{
    double t0 = now_us();
    int r;

    *pout = 0;
    for (r = 0; r < rounds; ++r) {
        apr_pool_t *sp;
        tb_stream_t *s;
        tb_stream_opts_t opts;
        tb_stream_out_t out = { pout, sink_commit, sink_write };
        const char *b = bytes;

        apr_pool_create(&sp, p);
        memset(&opts, 0, sizeof(opts));
        opts.client = client;
        opts.upstream = up;
        opts.req = req;
        opts.client_wants_usage = 1;
        opts.max_event = 1 << 20;
        opts.max_held = 65536;
        tb_stream_create(&s, sp, &opts, &out);
        /* fed one event at a time, as the network would */
        while (*b) {
            const char *e = strstr(b, "\n\n");
            apr_size_t n = e ? (apr_size_t)(e - b) + 2 : strlen(b);
            tb_stream_feed(s, b, n);
            b += n;
        }
        tb_stream_finish(s);
        apr_pool_destroy(sp);
    }
    return (now_us() - t0) / rounds / events;
}

int main(int argc, char **argv)
{
    apr_pool_t *p, *it;
    apr_size_t len;
    char *body;
    int iters = argc > 2 ? atoi(argv[2]) : 2000, i, events;
    const tb_dialect_t *client, *other;
    tb_req_info_t info;
    tb_ir_error_t err;
    tb_ir_req_t *req = NULL;
    double t0, scan_us, splice_us, conv_us;
    apr_size_t out_len = 0, pass_out, conv_out;
    const char *stream;

    if (argc < 2) {
        fprintf(stderr, "usage: convert_cost BODY.json [ITERATIONS]\n");
        return 64;
    }
    apr_initialize();
    apr_pool_create(&p, NULL);
    apr_pool_create(&it, p);
    body = slurp(argv[1], &len);
    client = strstr(body, "\"messages\"") ? &tb_dialect_chat : &tb_dialect_responses;
    other = client == &tb_dialect_chat ? &tb_dialect_responses : &tb_dialect_chat;

    t0 = now_us();
    for (i = 0; i < iters; ++i) {
        memset(&info, 0, sizeof(info));
        if (client->check(it, TB_OP_RESPONSES, body, len, &info, &err) != APR_SUCCESS) {
            fprintf(stderr, "check failed: %s\n", err.message);
            return 1;
        }
        apr_pool_clear(it);
    }
    scan_us = (now_us() - t0) / iters;

    memset(&info, 0, sizeof(info));
    client->check(p, TB_OP_RESPONSES, body, len, &info, &err);
    t0 = now_us();
    for (i = 0; i < iters; ++i) {
        apr_array_header_t *iov;
        client->splice(it, &info, "upstream-model", TB_CAP_STREAM_USAGE, &iov);
        apr_pool_clear(it);
    }
    splice_us = (now_us() - t0) / iters;

    t0 = now_us();
    for (i = 0; i < iters; ++i) {
        tb_req_info_t ci;
        tb_ir_req_t *r;
        const char *out;

        memset(&ci, 0, sizeof(ci));
        if (client->check(it, TB_OP_RESPONSES, body, len, &ci, &err) != APR_SUCCESS
            || client->parse(it, &ci, &r, &err) != APR_SUCCESS
            || other->emit(it, r, "upstream-model", TB_CAP_STREAM_USAGE, &out,
                           &out_len, &err) != APR_SUCCESS) {
            fprintf(stderr, "conversion failed: %s\n", err.message);
            return 1;
        }
        apr_pool_clear(it);
    }
    conv_us = (now_us() - t0) / iters;
    printf("CONVERT body=%s bytes=%lu from=%s to=%s scan_us=%.1f splice_us=%.2f "
           "convert_us=%.1f out_bytes=%lu\n", argv[1], (unsigned long)len, client->name,
           other->name, scan_us, splice_us, conv_us, (unsigned long)out_len);

    /* streams: a chat upstream's events to a Responses client, and through */
    client->parse(p, &info, &req, &err);
    stream = chat_stream(p, 200, &events);
    stream_cost(p, &tb_dialect_chat, &tb_dialect_chat, NULL, stream, events, 20, &pass_out);
    printf("STREAM chat->chat (pass-through) us_per_event=%.2f\n",
           stream_cost(p, &tb_dialect_chat, &tb_dialect_chat, NULL, stream, events,
                       200, &pass_out));
    printf("STREAM chat->responses (converted) us_per_event=%.2f\n",
           stream_cost(p, &tb_dialect_responses, &tb_dialect_chat, req, stream, events,
                       200, &conv_out));
    apr_pool_destroy(p);
    apr_terminate();
    free(body);
    return 0;
}
