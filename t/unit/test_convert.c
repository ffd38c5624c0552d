/* Conversions between the OpenAI Chat Completions and Responses dialects
 * (conversions.md §6A-§6E, traps 54-68): requests through the IR both
 * ways, the same-dialect splice, the Responses request check, and whole
 * (non-stream) answers both ways. Streams are in test_xstream.c.
 *
 * Bodies are written with single quotes and turned into JSON by Q() (a
 * quote inside a JSON string is \\' in the C text, \u0027 an apostrophe).
 * Captured client bodies are the suite's, in t/fixtures/ (copies of
 * shared/fixtures/requests). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_strings.h>
#include <jansson.h>

#include "tb_dialect.h"
#include "tb_unit.h"
#include "tb_unit_json.h"

#define UP_MODEL "up-model"

#if defined(__SANITIZE_ADDRESS__)
#define TB_UNIT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TB_UNIT_ASAN 1
#endif
#endif

/* ---- helpers -------------------------------------------------------------------- */

/* Text of a chat content (a string or text parts) or of a Responses
 * message content (a string or input_text/output_text parts). */
static const char *content_text(apr_pool_t *p, const json_t *c)
{
    const json_t *part;
    size_t i;
    const char *out = NULL;

    if (json_is_string(c)) {
        return json_string_value(c);
    }
    json_array_foreach(c, i, part) {
        const char *t = tb_jstr(part, "text");
        if (t) {
            out = out ? apr_pstrcat(p, out, t, NULL) : t;
        }
    }
    return out;
}

/* Is every part of a chat content text (a string counts)? */
static int text_only(const json_t *c)
{
    const json_t *part;
    size_t i;

    if (json_is_string(c)) {
        return 1;
    }
    if (!json_is_array(c)) {
        return 0;
    }
    json_array_foreach(c, i, part) {
        const char *t = tb_jstr(part, "type");
        if (!t || strcmp(t, "text")) {
            return 0;
        }
    }
    return 1;
}

/* ---- fixtures ------------------------------------------------------------------- */

static const char *fixture_dir(apr_pool_t *p)
{
    static const char *found;
    static int looked;
    const char *cands[8];
    char exe[4096];
    ssize_t n;
    int nc = 0, i;

    if (looked) {
        return found;
    }
    looked = 1;
    if (getenv("TB_UNIT_FIXTURES")) {
        cands[nc++] = getenv("TB_UNIT_FIXTURES");
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        char *slash;

        exe[n] = '\0';
        if ((slash = strrchr(exe, '/'))) {
            *slash = '\0';
            cands[nc++] = apr_pstrcat(p, exe, "/../fixtures", NULL);
        }
    }
    if (getenv("TB_ROOT")) {
        cands[nc++] = apr_pstrcat(p, getenv("TB_ROOT"), "/t/fixtures", NULL);
    }
    if (strrchr(__FILE__, '/')) {
        cands[nc++] = apr_pstrcat(p, apr_pstrndup(p, __FILE__, strrchr(__FILE__, '/')
                                                  - __FILE__), "/../fixtures", NULL);
    }
    cands[nc++] = "t/fixtures";
    for (i = 0; i < nc; ++i) {
        const char *probe = apr_pstrcat(p, cands[i], "/codex-0.169-turn1-gpt-5.5.json",
                                        NULL);
        if (access(probe, R_OK) == 0) {
            found = cands[i];
            break;
        }
    }
    return found;
}

/* The "body" of a captured request ({"method","url","headers","body"}),
 * as compact JSON text; NULL when it cannot be read. */
static const char *fixture_body(apr_pool_t *p, const char *name)
{
    const char *dir = fixture_dir(p), *path;
    FILE *f;
    char *buf;
    long size;
    json_t *root;

    if (!dir) {
        return NULL;
    }
    path = apr_pstrcat(p, dir, "/", name, NULL);
    if (!(f = fopen(path, "rb"))) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = apr_palloc(p, size + 1);
    if (size <= 0 || fread(buf, 1, size, f) != (size_t)size) {
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[size] = '\0';
    root = jparse(p, buf, size);
    if (!json_is_object(json_object_get(root, "body"))) {
        return NULL;
    }
    return jdump(p, json_object_get(root, "body"));
}

/* ---- one conversion: check, parse, emit ------------------------------------------ */

typedef struct conv_t {
    const char *step;            /* the step that failed, NULL when none */
    apr_status_t rv;
    tb_ir_error_t err;
    tb_req_info_t info;
    tb_ir_req_t *req;
    const char *body;            /* the emitted body */
    apr_size_t len;
    json_t *out;                 /* ... parsed */
} conv_t;

static conv_t *convert(apr_pool_t *p, const tb_dialect_t *from, tb_op_t op,
                       const tb_dialect_t *to, const char *body, unsigned caps)
{
    conv_t *c = apr_pcalloc(p, sizeof(*c));

    if (!body) {
        c->step = "load";
        return c;
    }
    if ((c->rv = from->check(p, op, body, strlen(body), &c->info, &c->err))
        != APR_SUCCESS) {
        c->step = "check";
        return c;
    }
    if ((c->rv = from->parse(p, &c->info, &c->req, &c->err)) != APR_SUCCESS) {
        c->step = "parse";
        return c;
    }
    if ((c->rv = to->emit(p, c->req, UP_MODEL, caps, &c->body, &c->len, &c->err))
        != APR_SUCCESS) {
        c->step = "emit";
        return c;
    }
    if (!(c->out = jparse(p, c->body, c->len)) || !json_is_object(c->out)) {
        c->step = "json";
    }
    return c;
}

/* A Responses client's body for a chat account, and back. */
static conv_t *r2c(apr_pool_t *p, const char *qbody, unsigned caps)
{
    return convert(p, &tb_dialect_responses, TB_OP_RESPONSES, &tb_dialect_chat,
                   Q(p, qbody), caps);
}

static conv_t *c2r(apr_pool_t *p, const char *qbody)
{
    return convert(p, &tb_dialect_chat, TB_OP_CHAT, &tb_dialect_responses,
                   Q(p, qbody), 0);
}

static const char *why(apr_pool_t *p, const conv_t *c)
{
    if (!c->step) {
        return "ok";
    }
    return apr_psprintf(p, "failed at %s: rv %d, %s", c->step, c->rv,
                        c->err.message ? c->err.message : "-");
}

/* The chat history invariant (conversions.md §6A post-pass): every
 * assistant tool_calls message is immediately followed by exactly one tool
 * message per call, in call order; no tool message elsewhere; no empty
 * tool_calls array; no assistant message with neither content nor calls;
 * every call has an id, type function, a name and JSON arguments. NULL
 * when it holds, else what breaks it. */
static const char *chat_invariant(apr_pool_t *p, const json_t *msgs)
{
    size_t i = 0, n = json_array_size(msgs);

    if (!json_is_array(msgs) || !n) {
        return "messages is not a non-empty array";
    }
    while (i < n) {
        const json_t *m = json_array_get(msgs, i);
        const char *role = tb_jstr(m, "role");
        const json_t *calls = json_object_get(m, "tool_calls");
        size_t k, nc;

        if (!role) {
            return apr_psprintf(p, "messages[%lu] has no role", (unsigned long)i);
        }
        if (!strcmp(role, "tool")) {
            return apr_psprintf(p, "messages[%lu] is a tool message no call precedes",
                                (unsigned long)i);
        }
        if (strcmp(role, "assistant")) {
            ++i;
            continue;
        }
        if (!calls || json_is_null(calls)) {
            const json_t *c = json_object_get(m, "content");
            if (!c || json_is_null(c)) {
                return apr_psprintf(p, "messages[%lu]: assistant message with neither "
                                    "content nor tool_calls", (unsigned long)i);
            }
            ++i;
            continue;
        }
        if (!json_is_array(calls) || !(nc = json_array_size(calls))) {
            return apr_psprintf(p, "messages[%lu]: tool_calls empty or not an array",
                                (unsigned long)i);
        }
        for (k = 0; k < nc; ++k) {
            const json_t *call = json_array_get(calls, k);
            const json_t *t = json_array_get(msgs, i + 1 + k);
            const char *id = tb_jstr(call, "id");
            const char *args = js(call, "function.arguments");

            if (!id || !*id || !jeq(call, "type", "function")
                || !js(call, "function.name") || !*js(call, "function.name")) {
                return apr_psprintf(p, "messages[%lu].tool_calls[%lu] lacks id, type "
                                    "function or a name: %s", (unsigned long)i,
                                    (unsigned long)k, show(p, call));
            }
            if (!args || tb_json_validate(p, args, strlen(args), NULL) != APR_SUCCESS) {
                return apr_psprintf(p, "messages[%lu].tool_calls[%lu] arguments are not "
                                    "JSON", (unsigned long)i, (unsigned long)k);
            }
            if (!t || !jeq(t, "role", "tool") || !jeq(t, "tool_call_id", id)) {
                return apr_psprintf(p, "messages[%lu].tool_calls[%lu] (%s) is not "
                                    "followed by its tool message (got %s)",
                                    (unsigned long)i, (unsigned long)k, id, show(p, t));
            }
        }
        i += 1 + nc;
    }
    return NULL;
}

/* The first message with this role, from index `from`; -1 when none. */
static int find_role(const json_t *msgs, const char *role, int from)
{
    int i;

    for (i = from; i < (int)json_array_size(msgs); ++i) {
        if (jeq(json_array_get(msgs, i), "role", role)) {
            return i;
        }
    }
    return -1;
}

/* The first input item of this type, -1 when none. */
static int find_type(const json_t *items, const char *type, int from)
{
    int i;

    for (i = from; i < (int)json_array_size(items); ++i) {
        if (jeq(json_array_get(items, i), "type", type)) {
            return i;
        }
    }
    return -1;
}

/* Names of chat function tools, joined by commas. */
static const char *chat_tool_names(apr_pool_t *p, const json_t *out)
{
    const json_t *t;
    size_t i;
    const char *names = "";

    json_array_foreach(json_object_get(out, "tools"), i, t) {
        const char *name = js(t, "function.name");
        names = apr_pstrcat(p, names, i ? "," : "", jeq(t, "type", "function")
                            ? (name ? name : "?") : "(not a function)", NULL);
    }
    return names;
}

/* OpenAI's rule for function names: ^[a-zA-Z0-9_-]{1,64}$ */
static int good_function_name(const char *s)
{
    apr_size_t n = s ? strlen(s) : 0, i;

    if (!n || n > 64) {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* ==== Responses request -> Chat request (6A) ===================================== */

static void test_r2c_basics(apr_pool_t *p)
{
    conv_t *c;
    const json_t *o;
    static const char *const foreign[] = {
        "input", "instructions", "include", "text", "reasoning", "max_output_tokens",
        "client_metadata", "previous_response_id", "truncation", NULL
    };
    int i, clean = 1;

    c = r2c(p, "{'model':'gpt-5','instructions':'Be brief.','input':'Say hi',"
            "'max_output_tokens':64,'reasoning':{'effort':'low','summary':'auto'},"
            "'store':false,'include':['reasoning.encrypted_content'],"
            "'temperature':0.5,'top_p':0.9,'client_metadata':{'a':'b'}}", 0);
    o = c->out;
    OK(!c->step, "r2c: instructions + string input converts (%s)", why(p, c));
    OK(jeq(o, "model", UP_MODEL), "r2c: the account's model is used (%s)",
       show(p, jat(o, "model")));
    OK(jlen(o, "messages") == 2 && jeq(o, "messages.0.role", "system")
       && !strcmp(content_text(p, jat(o, "messages.0.content")) ?: "", "Be brief."),
       "r2c: instructions become a leading system message (%s)",
       show(p, jat(o, "messages")));
    OK(jeq(o, "messages.1.role", "user")
       && !strcmp(content_text(p, jat(o, "messages.1.content")) ?: "", "Say hi"),
       "r2c: a string input becomes one user message (%s)", show(p, jat(o, "messages.1")));
    OK(jint(o, "max_completion_tokens") == 64,
       "r2c: max_output_tokens -> max_completion_tokens (%s)",
       show(p, jat(o, "max_completion_tokens")));
    OK(jeq(o, "reasoning_effort", "low"), "r2c: reasoning.effort -> reasoning_effort (%s)",
       show(p, jat(o, "reasoning_effort")));
    OK(json_is_number(jat(o, "temperature")) && json_number_value(jat(o, "temperature")) == 0.5
       && json_is_number(jat(o, "top_p")) && json_number_value(jat(o, "top_p")) == 0.9,
       "r2c: temperature and top_p kept (%s %s)", show(p, jat(o, "temperature")),
       show(p, jat(o, "top_p")));
    for (i = 0; foreign[i]; ++i) {
        if (jhas(o, foreign[i])) {
            clean = 0;
            OK(0, "r2c: Responses-only member '%s' not sent to chat", foreign[i]);
        }
    }
    OK(clean, "r2c: no Responses-only member reaches the chat body");
    OK(!jhas(o, "stream") && !jhas(o, "stream_options"),
       "r2c: a non-stream request has no stream/stream_options");
}

static void test_r2c_roles(apr_pool_t *p)
{
    conv_t *c;
    const json_t *msgs, *m;
    size_t i;
    const char *systext = "";
    int developer = 0, users = 0, first_user = -1;

    c = r2c(p, "{'model':'m','instructions':'INSTR-1',"
            "'input':[{'type':'message','role':'developer','content':"
            "[{'type':'input_text','text':'DEV-1'}]},"
            "{'role':'system','content':'SYS-1'},"
            "{'type':'message','role':'user','content':[{'type':'input_text','text':'Hi'}]},"
            "{'role':'user','content':'Again'}]}", 0);
    OK(!c->step, "r2c roles: converts (%s)", why(p, c));
    msgs = jat(c->out, "messages");
    json_array_foreach(msgs, i, m) {
        if (jeq(m, "role", "developer")) {
            ++developer;
        }
        if (jeq(m, "role", "system")) {
            systext = apr_pstrcat(p, systext, content_text(p, json_object_get(m, "content"))
                                  ?: "", "|", NULL);
        }
        if (jeq(m, "role", "user")) {
            ++users;
            if (first_user < 0) {
                first_user = (int)i;
            }
        }
    }
    OK(!developer, "r2c roles: no developer role reaches chat (%s)", show(p, msgs));
    OK(strstr(systext, "INSTR-1") && strstr(systext, "DEV-1") && strstr(systext, "SYS-1")
       && strstr(systext, "INSTR-1") < strstr(systext, "DEV-1")
       && strstr(systext, "DEV-1") < strstr(systext, "SYS-1"),
       "r2c roles: instructions, developer and system input become system text, "
       "in order (%s)", systext);
    OK(find_role(msgs, "system", first_user) < 0 && users == 2,
       "r2c roles: the system messages lead, both user messages follow (%s)",
       show(p, msgs));
    OK(jeq(msgs, "3.role", "user") || jeq(msgs, "2.role", "user"),
       "r2c roles: user content kept (%s)", show(p, msgs));
}

static void test_r2c_parts(apr_pool_t *p)
{
    conv_t *c;
    const json_t *uc;

    c = r2c(p, "{'model':'m','input':[{'role':'user','content':["
            "{'type':'input_text','text':'Look:'},"
            "{'type':'input_image','image_url':'https://example.com/a.png','detail':'high'},"
            "{'type':'input_image','image_url':'data:image/png;base64,iVBORw0KGgo=',"
            "'detail':'original'},"
            "{'type':'input_file','file_data':'data:application/pdf;base64,JVBERi0=',"
            "'filename':'a.pdf'},"
            "{'type':'input_file','file_id':'file-abc'}]}]}", 0);
    OK(!c->step, "r2c parts: converts (%s)", why(p, c));
    uc = jat(c->out, "messages.0.content");
    OK(json_is_array(uc) && json_array_size(uc) == 5, "r2c parts: five chat parts (%s)",
       show(p, uc));
    OK(jeq(uc, "0.type", "text") && jeq(uc, "0.text", "Look:"),
       "r2c parts: input_text -> text (%s)", show(p, jat(uc, "0")));
    OK(jeq(uc, "1.type", "image_url") && jeq(uc, "1.image_url.url", "https://example.com/a.png")
       && jeq(uc, "1.image_url.detail", "high"),
       "r2c parts: input_image -> image_url {url, detail} (%s)", show(p, jat(uc, "1")));
    OK(jeq(uc, "2.type", "image_url")
       && jeq(uc, "2.image_url.url", "data:image/png;base64,iVBORw0KGgo=")
       && (!jhas(uc, "2.image_url.detail") || jeq(uc, "2.image_url.detail", "auto")),
       "r2c parts: detail original (no chat value) -> auto or left out (%s)",
       show(p, jat(uc, "2")));
    OK(jeq(uc, "3.type", "file") && jeq(uc, "3.file.file_data",
                                        "data:application/pdf;base64,JVBERi0=")
       && jeq(uc, "3.file.filename", "a.pdf"),
       "r2c parts: input_file -> file {file_data, filename} (%s)", show(p, jat(uc, "3")));
    OK(jeq(uc, "4.type", "file") && jeq(uc, "4.file.file_id", "file-abc"),
       "r2c parts: input_file file_id -> file {file_id} (%s)", show(p, jat(uc, "4")));

    c = r2c(p, "{'model':'m','input':[{'role':'user','content':["
            "{'type':'input_image','file_id':'file-img','detail':'auto'}]}]}", 0);
    OK(c->step && c->rv == APR_EINVAL && c->err.status == 400,
       "r2c parts: an image given by file_id cannot go to chat: 400 (%s)", why(p, c));
    c = r2c(p, "{'model':'m','input':[{'role':'user','content':["
            "{'type':'input_file','file_url':'https://example.com/a.pdf'}]}]}", 0);
    OK(c->step && c->rv == APR_EINVAL && c->err.status == 400,
       "r2c parts: input_file by file_url has no chat form: 400 (trap 65) (%s)",
       why(p, c));
}

static void test_r2c_assistant_history(apr_pool_t *p)
{
    conv_t *c;
    const json_t *msgs;

    c = r2c(p, "{'model':'m','input':[{'role':'user','content':'Hello'},"
            "{'type':'message','id':'msg_1','role':'assistant','status':'completed',"
            "'content':[{'type':'output_text','text':'Hi there','annotations':[]}]},"
            "{'role':'user','content':'And?'},"
            "{'role':'assistant','content':'Plain reply'},"
            "{'role':'user','content':'Ok'}]}", 0);
    msgs = jat(c->out, "messages");
    OK(!c->step && jlen(c->out, "messages") == 5, "r2c history: five messages (%s; %s)",
       why(p, c), show(p, msgs));
    OK(jeq(msgs, "1.role", "assistant")
       && !strcmp(content_text(p, jat(msgs, "1.content")) ?: "", "Hi there")
       && !jhas(msgs, "1.tool_calls"),
       "r2c history: assistant output_text -> assistant content (%s)",
       show(p, jat(msgs, "1")));
    OK(jeq(msgs, "3.role", "assistant")
       && !strcmp(content_text(p, jat(msgs, "3.content")) ?: "", "Plain reply"),
       "r2c history: an assistant EasyInputMessage string kept (%s)",
       show(p, jat(msgs, "3")));
    OK(!chat_invariant(p, msgs), "r2c history: history invariant (%s)",
       chat_invariant(p, msgs) ?: "ok");
}

static void test_r2c_tool_calls(apr_pool_t *p)
{
    conv_t *c;
    const json_t *msgs, *a;
    const char *inv;

    /* parallel calls after assistant text, results in another order */
    c = r2c(p, "{'model':'m','tools':[{'type':'function','name':'get_weather',"
            "'parameters':{'type':'object','properties':{'city':{'type':'string'}}}},"
            "{'type':'function','name':'get_time','parameters':{'type':'object',"
            "'properties':{}}}],"
            "'input':[{'role':'user','content':'Weather and time in Oslo?'},"
            "{'type':'message','role':'assistant','content':[{'type':'output_text',"
            "'text':'Checking.'}]},"
            "{'type':'function_call','id':'fc_aaa111','call_id':'call_1','name':'get_weather',"
            "'arguments':'{\\'city\\':\\'Oslo\\'}','status':'completed'},"
            "{'type':'function_call','id':'fc_bbb222','call_id':'call_2','name':'get_time',"
            "'arguments':''},"
            "{'type':'function_call_output','id':'fco_2','call_id':'call_2','output':'12:00'},"
            "{'type':'function_call_output','call_id':'call_1','output':'{\\'temp\\':3}'},"
            "{'role':'user','content':'Thanks'}]}", 0);
    msgs = jat(c->out, "messages");
    a = jat(msgs, "1");
    OK(!c->step && jlen(c->out, "messages") == 5,
       "r2c calls: user, assistant, two tool messages, user (%s; %s)", why(p, c),
       show(p, msgs));
    OK(jeq(a, "role", "assistant") && !strcmp(content_text(p, jat(a, "content")) ?: "",
                                              "Checking.")
       && jlen(a, "tool_calls") == 2,
       "r2c calls: parallel function_call items join the preceding assistant message "
       "(%s)", show(p, a));
    OK(jeq(a, "tool_calls.0.id", "call_1") && jeq(a, "tool_calls.1.id", "call_2"),
       "r2c calls: tool_call id = call_id (trap 54) (%s)", show(p, jat(a, "tool_calls")));
    OK(!strstr(c->body ? c->body : "fc_", "fc_aaa111")
       && !strstr(c->body ? c->body : "fc_", "fc_bbb222"),
       "r2c calls: the fc_ item ids appear nowhere in the chat body");
    OK(jeq(a, "tool_calls.0.type", "function")
       && jeq(a, "tool_calls.0.function.name", "get_weather")
       && jeq(a, "tool_calls.0.function.arguments", "{\"city\":\"Oslo\"}"),
       "r2c calls: name and arguments carried (%s)", show(p, jat(a, "tool_calls.0")));
    OK(jeq(a, "tool_calls.1.function.arguments", "{}"),
       "r2c calls: empty arguments -> \"{}\" (%s)", show(p, jat(a, "tool_calls.1")));
    OK(jeq(msgs, "2.role", "tool") && jeq(msgs, "2.tool_call_id", "call_1")
       && !strcmp(content_text(p, jat(msgs, "2.content")) ?: "", "{\"temp\":3}")
       && jeq(msgs, "3.tool_call_id", "call_2")
       && !strcmp(content_text(p, jat(msgs, "3.content")) ?: "", "12:00"),
       "r2c calls: function_call_output -> tool messages right after, in call order "
       "(%s)", show(p, msgs));
    inv = chat_invariant(p, msgs);
    OK(!inv, "r2c calls: history invariant (%s)", inv ? inv : "ok");

    /* a call with no assistant message before it; sequential calls */
    c = r2c(p, "{'model':'m','tools':[{'type':'function','name':'f','parameters':"
            "{'type':'object','properties':{}}}],"
            "'input':[{'role':'user','content':'go'},"
            "{'type':'function_call','call_id':'call_a','name':'f','arguments':'{}'},"
            "{'type':'function_call_output','call_id':'call_a','output':'A'},"
            "{'type':'function_call','call_id':'call_b','name':'f','arguments':'{}'},"
            "{'type':'function_call_output','call_id':'call_b','output':'B'}]}", 0);
    msgs = jat(c->out, "messages");
    OK(!c->step && jlen(c->out, "messages") == 5
       && jeq(msgs, "1.role", "assistant") && json_is_null(jat(msgs, "1.content"))
       && jeq(msgs, "1.tool_calls.0.id", "call_a") && jeq(msgs, "2.tool_call_id", "call_a")
       && jeq(msgs, "3.tool_calls.0.id", "call_b") && jeq(msgs, "4.tool_call_id", "call_b"),
       "r2c calls: a call with no assistant message opens one (content null); "
       "sequential calls alternate with their results (%s)", show(p, msgs));
    inv = chat_invariant(p, msgs);
    OK(!inv, "r2c calls: sequential history invariant (%s)", inv ? inv : "ok");

    /* the SDK's own follow-up body */
    c = convert(p, &tb_dialect_responses, TB_OP_RESPONSES, &tb_dialect_chat,
                fixture_body(p, "openai-sdk-responses-function-call-output-turn.json"), 0);
    msgs = jat(c->out, "messages");
    OK(!c->step && jeq(msgs, "1.tool_calls.0.id", "call_f23769fa803eb6e1788fd435")
       && jeq(msgs, "2.tool_call_id", "call_f23769fa803eb6e1788fd435")
       && jeq(c->out, "tools.0.function.name", "get_weather")
       && jat(c->out, "tools.0.function.strict") == json_true(),
       "r2c calls: the SDK's function_call_output turn converts (%s; %s)", why(p, c),
       show(p, msgs));
}

static void test_r2c_custom(apr_pool_t *p)
{
    conv_t *c;
    const json_t *o, *t, *args = NULL, *req;
    const char *a;

    c = r2c(p, "{'model':'m','tools':[{'type':'custom','name':'apply_patch',"
            "'description':'Edit files.','format':{'type':'grammar','syntax':'lark',"
            "'definition':'start: x'}}],"
            "'tool_choice':{'type':'custom','name':'apply_patch'},"
            "'input':[{'role':'user','content':'Add a file'},"
            "{'type':'custom_tool_call','id':'ctc_1','status':'completed','call_id':'call_p',"
            "'name':'apply_patch','input':'*** Begin Patch\\n*** Add File: a.txt\\n+hi\\n"
            "*** End Patch\\n'},"
            "{'type':'custom_tool_call_output','id':'ctco_1','call_id':'call_p',"
            "'output':'patch applied'}]}", 0);
    o = c->out;
    OK(!c->step, "r2c custom: converts (%s)", why(p, c));
    t = jat(o, "tools.0");
    OK(jlen(o, "tools") == 1 && jeq(t, "type", "function")
       && jeq(t, "function.name", "apply_patch") && !jhas(t, "custom")
       && !jhas(t, "function.format"),
       "r2c custom: a custom tool becomes a function tool (%s)", show(p, t));
    req = jat(t, "function.parameters.required");
    OK(jeq(t, "function.parameters.type", "object")
       && jeq(t, "function.parameters.properties.input.type", "string")
       && json_is_array(req) && json_array_size(req) == 1 && jeq(req, "0", "input"),
       "r2c custom: its schema is {input: string}, required (trap 64) (%s)",
       show(p, jat(t, "function.parameters")));
    OK(jeq(o, "tool_choice.type", "function")
       && jeq(o, "tool_choice.function.name", "apply_patch"),
       "r2c custom: a custom tool_choice names the function form (%s)",
       show(p, jat(o, "tool_choice")));
    a = js(o, "messages.1.tool_calls.0.function.arguments");
    if (a) {
        args = jparse(p, a, strlen(a));
    }
    OK(jeq(o, "messages.1.tool_calls.0.id", "call_p")
       && jeq(o, "messages.1.tool_calls.0.type", "function")
       && jeq(o, "messages.1.tool_calls.0.function.name", "apply_patch")
       && json_object_size(args) == 1
       && jeq(args, "input", "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"),
       "r2c custom: custom_tool_call -> function call with arguments {\"input\": ...} "
       "(%s)", show(p, jat(o, "messages.1")));
    OK(jeq(o, "messages.2.role", "tool") && jeq(o, "messages.2.tool_call_id", "call_p")
       && !strcmp(content_text(p, jat(o, "messages.2.content")) ?: "", "patch applied"),
       "r2c custom: custom_tool_call_output -> tool message (%s)",
       show(p, jat(o, "messages.2")));
    OK(!chat_invariant(p, jat(o, "messages")), "r2c custom: history invariant (%s)",
       chat_invariant(p, jat(o, "messages")) ?: "ok");
}

static void test_r2c_namespace(apr_pool_t *p)
{
    conv_t *c;
    const json_t *o;
    const char *n1, *n2;

    c = r2c(p, "{'model':'m','input':'hi','tools':[{'type':'namespace','name':"
            "'multi_agent_v1','description':'Agents','tools':[{'type':'function','name':"
            "'spawn_agent','description':'Spawn','parameters':{'type':'object',"
            "'properties':{}}},{'type':'function','name':'wait_agent','parameters':"
            "{'type':'object','properties':{}}}]},{'type':'function','name':'exec_command',"
            "'parameters':{'type':'object','properties':{}}}]}", 0);
    o = c->out;
    OK(!c->step && !strcmp(chat_tool_names(p, o),
                           "multi_agent_v1__spawn_agent,multi_agent_v1__wait_agent,"
                           "exec_command"),
       "r2c namespace: children flattened to ns__name (%s; %s)", why(p, c),
       chat_tool_names(p, o));
    OK(jeq(o, "tools.0.function.description", "Spawn"),
       "r2c namespace: the child's description kept (%s)", show(p, jat(o, "tools.0")));

    /* a history call made in the namespace uses the flat name too */
    c = r2c(p, "{'model':'m','tools':[{'type':'namespace','name':'multi_agent_v1',"
            "'tools':[{'type':'function','name':'spawn_agent','parameters':"
            "{'type':'object','properties':{}}}]}],"
            "'input':[{'role':'user','content':'x'},{'type':'function_call','call_id':"
            "'call_n','name':'spawn_agent','namespace':'multi_agent_v1','arguments':'{}'},"
            "{'type':'function_call_output','call_id':'call_n','output':'ok'}]}", 0);
    OK(!c->step && jeq(c->out, "messages.1.tool_calls.0.function.name",
                       "multi_agent_v1__spawn_agent"),
       "r2c namespace: a namespaced call in the history takes the flat name (%s)",
       show(p, jat(c->out, "messages.1")));

    /* long names stay within the 64 characters function names allow */
    c = r2c(p, "{'model':'m','input':'hi','tools':[{'type':'namespace','name':"
            "'a_very_long_namespace_name_for_many_agents_v1','tools':["
            "{'type':'function','name':'spawn_a_sub_agent_with_a_long_name_one',"
            "'parameters':{'type':'object','properties':{}}},"
            "{'type':'function','name':'spawn_a_sub_agent_with_a_long_name_two',"
            "'parameters':{'type':'object','properties':{}}}]}]}", 0);
    n1 = js(c->out, "tools.0.function.name");
    n2 = js(c->out, "tools.1.function.name");
    OK(!c->step && good_function_name(n1) && good_function_name(n2) && strcmp(n1, n2),
       "r2c namespace: long flat names are at most 64 [a-zA-Z0-9_-] characters and "
       "distinct (%s, %s)", n1 ? n1 : "-", n2 ? n2 : "-");
}

static void test_r2c_hosted(apr_pool_t *p)
{
    conv_t *c;
    const json_t *o;

    c = r2c(p, "{'model':'m','input':'hi','tool_choice':'auto','tools':["
            "{'type':'web_search','external_web_access':false},"
            "{'type':'tool_search','execution':'client','parameters':{'type':'object',"
            "'properties':{'query':{'type':'string'}}}},"
            "{'type':'function','name':'f','parameters':{'type':'object','properties':{}}},"
            "{'type':'file_search','vector_store_ids':['vs_1']},"
            "{'type':'code_interpreter','container':{'type':'auto'}}]}", 0);
    o = c->out;
    OK(!c->step && !strcmp(chat_tool_names(p, o), "f"),
       "r2c hosted: web_search, tool_search, file_search, code_interpreter dropped "
       "(%s; %s)", why(p, c), chat_tool_names(p, o));
    OK(jeq(o, "tool_choice", "auto"), "r2c hosted: tool_choice auto kept with tools (%s)",
       show(p, jat(o, "tool_choice")));

    c = r2c(p, "{'model':'m','input':'hi','tool_choice':'required',"
            "'parallel_tool_calls':true,'tools':[{'type':'web_search'}]}", 0);
    o = c->out;
    OK(!c->step && !jhas(o, "tools") && !jhas(o, "tool_choice")
       && !jhas(o, "parallel_tool_calls"),
       "r2c hosted: no tool left -> no tools, tool_choice, parallel_tool_calls "
       "(trap 56) (%s)", c->body ? c->body : why(p, c));

    c = r2c(p, "{'model':'m','input':'hi','tool_choice':{'type':'web_search'},'tools':"
            "[{'type':'web_search'},{'type':'function','name':'f','parameters':"
            "{'type':'object','properties':{}}}]}", 0);
    OK(!c->step && jlen(c->out, "tools") == 1 && !jhas(c->out, "tool_choice"),
       "r2c hosted: a tool_choice naming a hosted tool is dropped (%s)",
       show(p, jat(c->out, "tool_choice")));

    c = r2c(p, "{'model':'m','input':'hi','tool_choice':{'type':'function','name':'g'},"
            "'tools':[{'type':'function','name':'f','parameters':{'type':'object',"
            "'properties':{}}}]}", 0);
    OK(!c->step && !jhas(c->out, "tool_choice"),
       "r2c hosted: a tool_choice naming an undeclared tool is dropped (%s)",
       show(p, jat(c->out, "tool_choice")));

    c = r2c(p, "{'model':'m','input':'hi','tool_choice':{'type':'function','name':'f'},"
            "'parallel_tool_calls':false,'tools':[{'type':'function','name':'f',"
            "'parameters':{'type':'object','properties':{}}}]}", 0);
    o = c->out;
    OK(!c->step && jeq(o, "tool_choice.type", "function")
       && jeq(o, "tool_choice.function.name", "f") && !jhas(o, "tool_choice.name"),
       "r2c tool_choice: flat {type, name} -> nested {type, function:{name}} (trap 55) "
       "(%s)", show(p, jat(o, "tool_choice")));
    OK(jat(o, "parallel_tool_calls") == json_false(),
       "r2c tool_choice: parallel_tool_calls false kept with tools (%s)",
       show(p, jat(o, "parallel_tool_calls")));

    c = r2c(p, "{'model':'m','input':'hi','tool_choice':{'type':'allowed_tools',"
            "'mode':'required','tools':[{'type':'function','name':'f'},"
            "{'type':'web_search'}]},'tools':[{'type':'function','name':'f',"
            "'parameters':{'type':'object','properties':{}}},{'type':'web_search'}]}", 0);
    o = c->out;
    OK(!c->step && jeq(o, "tool_choice.type", "allowed_tools")
       && jeq(o, "tool_choice.allowed_tools.mode", "required")
       && jlen(o, "tool_choice.allowed_tools.tools") == 1
       && jeq(o, "tool_choice.allowed_tools.tools.0.type", "function")
       && jeq(o, "tool_choice.allowed_tools.tools.0.function.name", "f"),
       "r2c tool_choice: allowed_tools nested, hosted entries dropped (%s)",
       show(p, jat(o, "tool_choice")));

    /* Codex's local compaction: tools [] with parallel_tool_calls false */
    c = r2c(p, "{'model':'m','input':'hi','tools':[],'tool_choice':'auto',"
            "'parallel_tool_calls':false}", 0);
    o = c->out;
    OK(!c->step && !jhas(o, "tools") && !jhas(o, "tool_choice")
       && !jhas(o, "parallel_tool_calls"),
       "r2c hosted: tools [] -> no tools, tool_choice, parallel_tool_calls (%s)",
       c->body ? c->body : why(p, c));
}

static void test_r2c_items_skipped(apr_pool_t *p)
{
    conv_t *c;
    const json_t *msgs;
    const char *inv;

    /* trap 57: hosted-tool items between a call and its output */
    c = r2c(p, "{'model':'m','tools':[{'type':'function','name':'f','parameters':"
            "{'type':'object','properties':{}}}],"
            "'input':[{'role':'user','content':'q'},"
            "{'type':'web_search_call','id':'ws_0','status':'completed','action':"
            "{'type':'search','query':'x'}},"
            "{'type':'function_call','call_id':'call_1','name':'f','arguments':'{}'},"
            "{'type':'web_search_call','id':'ws_1','status':'completed','action':"
            "{'type':'search','query':'y'}},"
            "{'type':'local_shell_call','id':'lsh_1','call_id':'call_ls','status':"
            "'completed','action':{'type':'exec','command':['ls']}},"
            "{'type':'image_generation_call','id':'ig_1','status':'completed',"
            "'result':null},"
            "{'type':'mcp_list_tools','id':'mcpl_1','server_label':'s','tools':[]},"
            "{'type':'function_call_output','call_id':'call_1','output':'r'}]}", 0);
    msgs = jat(c->out, "messages");
    OK(!c->step && jlen(c->out, "messages") == 3 && jeq(msgs, "1.tool_calls.0.id", "call_1")
       && jeq(msgs, "2.tool_call_id", "call_1"),
       "r2c items: hosted-tool items are skipped, never between a call and its "
       "result (trap 57) (%s; %s)", why(p, c), show(p, msgs));
    inv = chat_invariant(p, msgs);
    OK(!inv, "r2c items: invariant with hosted items (%s)", inv ? inv : "ok");

    /* reasoning items are dropped: no text of theirs reaches chat */
    c = r2c(p, "{'model':'m','tools':[{'type':'function','name':'f','parameters':"
            "{'type':'object','properties':{}}}],"
            "'input':[{'role':'user','content':'q'},"
            "{'type':'reasoning','id':'rs_1','summary':[{'type':'summary_text','text':"
            "'SECRET-THOUGHT'}],'content':null,'encrypted_content':'gAAAA-ENC'},"
            "{'type':'function_call','call_id':'call_1','name':'f','arguments':'{}'},"
            "{'type':'function_call_output','call_id':'call_1','output':'r'},"
            "{'type':'reasoning','id':'rs_2','summary':[],'encrypted_content':'gAAAA-ENC2'},"
            "{'type':'message','role':'assistant','content':[{'type':'output_text',"
            "'text':'Done.'}]},{'role':'user','content':'next'}]}", 0);
    msgs = jat(c->out, "messages");
    OK(!c->step && c->body && !strstr(c->body, "SECRET-THOUGHT")
       && !strstr(c->body, "gAAAA-ENC") && !strstr(c->body, "rs_1"),
       "r2c items: reasoning items dropped (%s)", c->body ? c->body : why(p, c));
    OK(jlen(c->out, "messages") == 5 && json_is_null(jat(msgs, "1.content"))
       && jeq(msgs, "1.tool_calls.0.id", "call_1")
       && !strcmp(content_text(p, jat(msgs, "3.content")) ?: "", "Done.")
       && jeq(msgs, "4.role", "user"),
       "r2c items: a reasoning item leaves no empty assistant message (%s)",
       show(p, msgs));
    inv = chat_invariant(p, msgs);
    OK(!inv, "r2c items: invariant with reasoning items (%s)", inv ? inv : "ok");
}

static void test_r2c_dropped_calls(apr_pool_t *p)
{
    conv_t *c;
    const json_t *msgs;
    const char *inv;

    /* trap 59: a truncated call and its output go; an unanswered call goes */
    c = r2c(p, "{'model':'m','tools':[{'type':'function','name':'f','parameters':"
            "{'type':'object','properties':{}}}],"
            "'input':[{'role':'user','content':'q'},"
            "{'type':'function_call','call_id':'call_bad','name':'f','arguments':"
            "'{\\'city\\':\\'Os'},"
            "{'type':'function_call_output','call_id':'call_bad','output':'BAD-OUT'},"
            "{'type':'function_call','call_id':'call_lost','name':'f','arguments':'{}'},"
            "{'type':'message','role':'assistant','content':[{'type':'output_text',"
            "'text':'Done.'}]},"
            "{'type':'function_call_output','call_id':'call_orphan','output':'ORPHAN'},"
            "{'role':'user','content':'next'}]}", 0);
    msgs = jat(c->out, "messages");
    OK(!c->step && c->body && !strstr(c->body, "call_bad") && !strstr(c->body, "BAD-OUT"),
       "r2c drop: a call with invalid JSON arguments is dropped with its output "
       "(trap 59) (%s)", c->body ? c->body : why(p, c));
    OK(c->body && !strstr(c->body, "call_lost"),
       "r2c drop: a call without a result is dropped (%s)", c->body ? c->body : "-");
    OK(c->body && !strstr(c->body, "ORPHAN") && !strstr(c->body, "call_orphan"),
       "r2c drop: an orphan output is dropped (%s)", c->body ? c->body : "-");
    OK(jlen(c->out, "messages") == 3 && jeq(msgs, "1.role", "assistant")
       && !strcmp(content_text(p, jat(msgs, "1.content")) ?: "", "Done."),
       "r2c drop: assistant messages left empty are dropped (%s)", show(p, msgs));
    inv = chat_invariant(p, msgs);
    OK(!inv, "r2c drop: invariant (%s)", inv ? inv : "ok");

    /* parallel calls, one answered: that one stays */
    c = r2c(p, "{'model':'m','tools':[{'type':'function','name':'f','parameters':"
            "{'type':'object','properties':{}}}],"
            "'input':[{'role':'user','content':'q'},"
            "{'type':'function_call','call_id':'call_1','name':'f','arguments':'{}'},"
            "{'type':'function_call','call_id':'call_2','name':'f','arguments':'{}'},"
            "{'type':'function_call_output','call_id':'call_2','output':'two'}]}", 0);
    msgs = jat(c->out, "messages");
    inv = chat_invariant(p, msgs);
    OK(!c->step && !inv && jlen(c->out, "messages") == 3
       && jlen(msgs, "1.tool_calls") == 1 && jeq(msgs, "1.tool_calls.0.id", "call_2")
       && jeq(msgs, "2.tool_call_id", "call_2"),
       "r2c drop: of two parallel calls only the answered one stays (%s; %s)",
       inv ? inv : "ok", show(p, msgs));

    /* text with an unanswered call: the text stays, no empty tool_calls */
    c = r2c(p, "{'model':'m','tools':[{'type':'function','name':'f','parameters':"
            "{'type':'object','properties':{}}}],"
            "'input':[{'role':'user','content':'q'},{'type':'message','role':'assistant',"
            "'content':[{'type':'output_text','text':'Let me look.'}]},"
            "{'type':'function_call','call_id':'call_x','name':'f','arguments':'{}'},"
            "{'role':'user','content':'?'}]}", 0);
    msgs = jat(c->out, "messages");
    OK(!c->step && jlen(c->out, "messages") == 3
       && !strcmp(content_text(p, jat(msgs, "1.content")) ?: "", "Let me look.")
       && !jhas(msgs, "1.tool_calls"),
       "r2c drop: an unanswered call leaves its message's text, no tool_calls (%s)",
       show(p, msgs));
}

static void test_r2c_tool_media(apr_pool_t *p)
{
    conv_t *c;
    const json_t *msgs, *uc, *part;
    const char *inv;
    size_t i;
    int image = 0;

    c = r2c(p, "{'model':'m','tools':[{'type':'function','name':'view_image',"
            "'parameters':{'type':'object','properties':{'path':{'type':'string'}}}}],"
            "'input':[{'role':'user','content':'Screenshot?'},"
            "{'type':'function_call','call_id':'call_img','name':'view_image','arguments':"
            "'{\\'path\\':\\'a.png\\'}'},"
            "{'type':'function_call_output','call_id':'call_img','output':["
            "{'type':'input_text','text':'Here it is.'},"
            "{'type':'input_image','image_url':'data:image/png;base64,iVBORw0KGgo='}]}]}", 0);
    msgs = jat(c->out, "messages");
    OK(!c->step && jlen(c->out, "messages") == 4, "r2c media: four messages (%s; %s)",
       why(p, c), show(p, msgs));
    OK(jeq(msgs, "2.role", "tool") && jeq(msgs, "2.tool_call_id", "call_img")
       && text_only(jat(msgs, "2.content"))
       && strstr(content_text(p, jat(msgs, "2.content")) ?: "", "Here it is."),
       "r2c media: the tool message keeps the text, text only (trap 58) (%s)",
       show(p, jat(msgs, "2")));
    uc = jat(msgs, "3.content");
    json_array_foreach(uc, i, part) {
        if (jeq(part, "type", "image_url")
            && jeq(part, "image_url.url", "data:image/png;base64,iVBORw0KGgo=")) {
            image = 1;
        }
    }
    OK(jeq(msgs, "3.role", "user") && image,
       "r2c media: the image moves to a user message right after (%s)",
       show(p, jat(msgs, "3")));
    inv = chat_invariant(p, msgs);
    OK(!inv, "r2c media: invariant (%s)", inv ? inv : "ok");

    /* two parallel results with images: both tool messages first */
    c = r2c(p, "{'model':'m','tools':[{'type':'function','name':'v','parameters':"
            "{'type':'object','properties':{}}}],"
            "'input':[{'role':'user','content':'x'},"
            "{'type':'function_call','call_id':'c1','name':'v','arguments':'{}'},"
            "{'type':'function_call','call_id':'c2','name':'v','arguments':'{}'},"
            "{'type':'function_call_output','call_id':'c1','output':[{'type':'input_image',"
            "'image_url':'https://example.com/1.png'}]},"
            "{'type':'function_call_output','call_id':'c2','output':[{'type':'input_image',"
            "'image_url':'https://example.com/2.png'}]}]}", 0);
    msgs = jat(c->out, "messages");
    inv = chat_invariant(p, msgs);
    OK(!c->step && !inv && jeq(msgs, "2.role", "tool") && jeq(msgs, "3.role", "tool")
       && text_only(jat(msgs, "2.content")) && text_only(jat(msgs, "3.content"))
       && find_role(msgs, "user", 1) == 4,
       "r2c media: image-only parallel results: tool messages, then the media (%s; %s)",
       inv ? inv : "ok", show(p, msgs));
}

#ifndef TB_UNIT_ASAN
/* Run a conversion in a child process bounded in memory and time, so a
 * conversion that never ends cannot hang the suite. NULL when it ended
 * and succeeded, else what happened. (Not under AddressSanitizer: its
 * shadow memory does not fit a 512 MB address space.) */
static const char *converts_bounded(apr_pool_t *p, const char *qbody)
{
    pid_t pid;
    int st = 0;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        return "fork failed";
    }
    if (pid == 0) {
        struct rlimit rl;
        conv_t *c;

        rl.rlim_cur = rl.rlim_max = (rlim_t)512 << 20;
        setrlimit(RLIMIT_AS, &rl);
        alarm(2);
        c = r2c(p, qbody, 0);
        _exit(c->step ? 3 : 0);
    }
    if (waitpid(pid, &st, 0) != pid) {
        return "waitpid failed";
    }
    if (WIFEXITED(st)) {
        return WEXITSTATUS(st) ? apr_psprintf(p, "the conversion failed (exit %d)",
                                              WEXITSTATUS(st)) : NULL;
    }
    return apr_psprintf(p, "killed by signal %d: %s", WTERMSIG(st),
                        WTERMSIG(st) == SIGALRM ? "still running after 2 s"
                        : "out of its 512 MB");
}
#endif

static void test_r2c_additional_tools(apr_pool_t *p)
{
    conv_t *c;
    const json_t *msgs;
    const char *texts = "", *res;
    size_t i;

    /* newer Codex: an additional_tools input item adds tools (6A) */
    c = r2c(p, "{'model':'m','input':[{'role':'user','content':'a'},"
            "{'type':'additional_tools','tools':[{'type':'function','name':'f1',"
            "'parameters':{'type':'object','properties':{}}},{'type':'function','name':"
            "'f2','parameters':{'type':'object','properties':{}}},{'type':'function',"
            "'name':'f3','parameters':{'type':'object','properties':{}}}]},"
            "{'role':'user','content':'b'},{'role':'user','content':'c'},"
            "{'role':'user','content':'d'}]}", 0);
    msgs = jat(c->out, "messages");
    for (i = 0; i < json_array_size(msgs); ++i) {
        texts = apr_pstrcat(p, texts, content_text(p, jat(msgs, apr_psprintf(p, "%lu.content",
                                                   (unsigned long)i))) ?: "?", NULL);
    }
    OK(!c->step && !strcmp(chat_tool_names(p, c->out), "f1,f2,f3"),
       "r2c additional_tools: its tools join the request's (%s)",
       chat_tool_names(p, c->out));
    OK(!strcmp(texts, "abcd"), "r2c additional_tools: every input item after it is "
       "still read (messages: %s)", texts);
#ifndef TB_UNIT_ASAN
    res = converts_bounded(p, "{'model':'m','input':[{'role':'user','content':'a'},"
                           "{'role':'user','content':'b'},{'type':'additional_tools',"
                           "'tools':[{'type':'function','name':'f1','parameters':{}}]}]}");
    OK(!res, "r2c additional_tools: an item later in the input than it has tools ends, "
       "in bounded memory (%s)", res ? res : "ok");
#else
    (void)res;
#endif
}

static void test_r2c_format_stream(apr_pool_t *p)
{
    conv_t *c;
    const json_t *o;

    c = r2c(p, "{'model':'m','input':'hi','text':{'verbosity':'low','format':{'type':"
            "'json_schema','name':'weather','description':'W','strict':true,'schema':"
            "{'type':'object','properties':{'t':{'type':'number'}},'required':['t'],"
            "'additionalProperties':false}}}}", 0);
    o = c->out;
    OK(!c->step && jeq(o, "response_format.type", "json_schema")
       && jeq(o, "response_format.json_schema.name", "weather")
       && jeq(o, "response_format.json_schema.description", "W")
       && jat(o, "response_format.json_schema.strict") == json_true()
       && jeq(o, "response_format.json_schema.schema.properties.t.type", "number")
       && !jhas(o, "response_format.name") && !jhas(o, "response_format.schema"),
       "r2c format: flat text.format json_schema -> nested response_format (%s)",
       show(p, jat(o, "response_format")));
    OK(jeq(o, "verbosity", "low") && !jhas(o, "text"),
       "r2c format: text.verbosity -> verbosity (%s)", show(p, jat(o, "verbosity")));

    c = r2c(p, "{'model':'m','input':'hi','text':{'format':{'type':'json_object'}}}", 0);
    OK(!c->step && jeq(c->out, "response_format.type", "json_object"),
       "r2c format: json_object (%s)", show(p, jat(c->out, "response_format")));

    c = r2c(p, "{'model':'m','input':'hi','stream':true}", TB_CAP_STREAM_USAGE);
    OK(!c->step && jat(c->out, "stream") == json_true()
       && jat(c->out, "stream_options.include_usage") == json_true(),
       "r2c stream: stream + stream_options.include_usage on a stream_usage account "
       "(%s)", c->body ? c->body : why(p, c));
    c = r2c(p, "{'model':'m','input':'hi','stream':true}", 0);
    OK(!c->step && jat(c->out, "stream") == json_true() && !jhas(c->out, "stream_options"),
       "r2c stream: no stream_options on an account without stream_usage (%s)",
       c->body ? c->body : why(p, c));
    c = r2c(p, "{'model':'m','input':'hi','stream':false}", TB_CAP_STREAM_USAGE);
    OK(!c->step && jat(c->out, "stream") != json_true() && !jhas(c->out, "stream_options"),
       "r2c stream: no stream_options without stream (%s)", c->body ? c->body : why(p, c));
}

/* Every captured Codex body converts into a chat history upstreams take. */
static void codex_common(apr_pool_t *p, const char *name, conv_t *c)
{
    const json_t *o = c->out, *t, *m;
    const char *inv;
    size_t i;
    int bad_tool = 0, developer = 0;

    OK(!c->step, "codex %s: converts to chat (%s)", name, why(p, c));
    OK(c->out != NULL, "codex %s: the chat body is JSON", name);
    inv = chat_invariant(p, jat(o, "messages"));
    OK(!inv, "codex %s: every tool_calls message is followed by its tool messages (%s)",
       name, inv ? inv : "ok");
    json_array_foreach(json_object_get(o, "tools"), i, t) {
        if (!jeq(t, "type", "function") || !good_function_name(js(t, "function.name"))
            || !json_is_object(jat(t, "function.parameters"))) {
            bad_tool = 1;
            OK(0, "codex %s: tools[%lu] is a function with a valid name and schema (%s)",
               name, (unsigned long)i, show(p, t));
        }
    }
    OK(!bad_tool, "codex %s: every tool is a function with a valid name (%s)", name,
       chat_tool_names(p, o));
    json_array_foreach(json_object_get(o, "messages"), i, m) {
        if (jeq(m, "role", "developer")) {
            developer = 1;
        }
    }
    OK(!developer && jeq(o, "messages.0.role", "system"),
       "codex %s: developer messages become system, first", name);
    OK(!jhas(o, "input") && !jhas(o, "include") && !jhas(o, "client_metadata")
       && !jhas(o, "reasoning") && !jhas(o, "text"),
       "codex %s: no Responses-only members", name);
    OK(jat(o, "stream") == json_true()
       && jat(o, "stream_options.include_usage") == json_true(),
       "codex %s: a stream asking for usage", name);
}

static int has_call(const json_t *msgs, const char *id, const char *name)
{
    const json_t *m, *tc;
    size_t i, k;

    json_array_foreach(msgs, i, m) {
        json_array_foreach(json_object_get(m, "tool_calls"), k, tc) {
            if (jeq(tc, "id", id) && jeq(tc, "function.name", name)) {
                return 1;
            }
        }
    }
    return 0;
}

static void test_r2c_codex(apr_pool_t *p)
{
    conv_t *c;
    const json_t *msgs;
    const char *a;
    json_t *args;
    int i;

    OK(fixture_dir(p) != NULL, "codex: fixtures found (t/fixtures)");

    c = convert(p, &tb_dialect_responses, TB_OP_RESPONSES, &tb_dialect_chat,
                fixture_body(p, "codex-0.169-turn1-gpt-5.5.json"), TB_CAP_STREAM_USAGE);
    codex_common(p, "turn1", c);
    msgs = jat(c->out, "messages");
    OK(jeq(msgs, "-1.role", "user")
       && !strcmp(content_text(p, jat(msgs, "-1.content")) ?: "", "say hi")
       && strstr(content_text(p, jat(msgs, "0.content")) ?: "", "You are Codex"),
       "codex turn1: base instructions first, the prompt last (%s)",
       show(p, jat(msgs, "-1")));
    OK(strstr(chat_tool_names(p, c->out), "apply_patch")
       && strstr(chat_tool_names(p, c->out), "exec_command")
       && !strstr(chat_tool_names(p, c->out), "search"),
       "codex turn1: apply_patch as a function, web_search and tool_search dropped (%s)",
       chat_tool_names(p, c->out));
    OK(jeq(c->out, "reasoning_effort", "medium") && jeq(c->out, "verbosity", "low")
       && jeq(c->out, "tool_choice", "auto"),
       "codex turn1: effort, verbosity, tool_choice (%s %s %s)",
       show(p, jat(c->out, "reasoning_effort")), show(p, jat(c->out, "verbosity")),
       show(p, jat(c->out, "tool_choice")));

    c = convert(p, &tb_dialect_responses, TB_OP_RESPONSES, &tb_dialect_chat,
                fixture_body(p, "codex-0.169-tool-followup.json"), TB_CAP_STREAM_USAGE);
    codex_common(p, "tool-followup", c);
    msgs = jat(c->out, "messages");
    OK(has_call(msgs, "call_01ee0951e25f2b77776ab091", "exec_command"),
       "codex tool-followup: the exec_command call, id = call_id (%s)", show(p, msgs));
    OK(strstr(chat_tool_names(p, c->out), "multi_agent_v1__spawn_agent") != NULL,
       "codex tool-followup: namespace tools flattened (%s)", chat_tool_names(p, c->out));

    c = convert(p, &tb_dialect_responses, TB_OP_RESPONSES, &tb_dialect_chat,
                fixture_body(p, "codex-0.169-custom-tool-followup.json"),
                TB_CAP_STREAM_USAGE);
    codex_common(p, "custom-tool-followup", c);
    msgs = jat(c->out, "messages");
    for (i = 0; i < (int)json_array_size(msgs); ++i) {
        if (jhas(msgs, apr_psprintf(p, "%d.tool_calls", i))) {
            break;
        }
    }
    a = js(msgs, apr_psprintf(p, "%d.tool_calls.0.function.arguments", i));
    args = a ? jparse(p, a, strlen(a)) : NULL;
    OK(jeq(msgs, apr_psprintf(p, "%d.tool_calls.0.function.name", i), "apply_patch")
       && jeq(args, "input", "*** Begin Patch\n*** Add File: hello.txt\n+hi\n"
              "*** End Patch\n"),
       "codex custom-tool-followup: apply_patch call with {\"input\": patch} (%s)",
       show(p, jat(msgs, apr_psprintf(p, "%d", i))));
    OK(starts(content_text(p, jat(msgs, apr_psprintf(p, "%d.content", i + 1))),
              "patch rejected"),
       "codex custom-tool-followup: its output as the tool message (%s)",
       show(p, jat(msgs, apr_psprintf(p, "%d", i + 1))));

    c = convert(p, &tb_dialect_responses, TB_OP_RESPONSES, &tb_dialect_chat,
                fixture_body(p, "codex-0.169-reasoning-echo.json"), TB_CAP_STREAM_USAGE);
    codex_common(p, "reasoning-echo", c);
    OK(c->body && !strstr(c->body, "gAAAA-CAPTURE-ENCRYPTED-REASONING")
       && !strstr(c->body, "**Greeting**")
       && has_call(jat(c->out, "messages"), "call_f07d54a76547301e9d74de0b",
                   "exec_command"),
       "codex reasoning-echo: the reasoning item dropped, the call kept");

    c = convert(p, &tb_dialect_responses, TB_OP_RESPONSES, &tb_dialect_chat,
                fixture_body(p, "codex-0.169-local-compaction-request.json"),
                TB_CAP_STREAM_USAGE);
    codex_common(p, "local-compaction", c);
    msgs = jat(c->out, "messages");
    OK(!jhas(c->out, "tools") && !jhas(c->out, "tool_choice")
       && !jhas(c->out, "parallel_tool_calls"),
       "codex local-compaction: tools [] -> no tools, tool_choice, parallel_tool_calls");
    OK(jeq(msgs, "-1.role", "user")
       && starts(content_text(p, jat(msgs, "-1.content")),
                 "You are performing a CONTEXT CHECKPOINT COMPACTION")
       && has_call(msgs, "call_7eacda2112921ddc9cd8c719", "exec_command"),
       "codex local-compaction: the history call kept, the compaction prompt last");
}

/* ==== Chat request -> Responses request (6D) ===================================== */

/* Text of a Responses input message (string or parts). */
static const char *item_text(apr_pool_t *p, const json_t *item)
{
    return content_text(p, json_object_get(item, "content"));
}

static void test_c2r_messages(apr_pool_t *p)
{
    conv_t *c;
    const json_t *o, *in, *u;
    int fc, fco;

    c = c2r(p, "{'model':'gpt-4o-mini','messages':["
            "{'role':'system','content':'You are terse.'},"
            "{'role':'developer','content':[{'type':'text','text':'Dev note.'}]},"
            "{'role':'user','content':[{'type':'text','text':'What is this?'},"
            "{'type':'image_url','image_url':{'url':'https://example.com/cat.png'}},"
            "{'type':'image_url','image_url':{'url':'data:image/jpeg;base64,/9j/',"
            "'detail':'low'}},"
            "{'type':'file','file':{'file_data':'data:application/pdf;base64,JVBERi0=',"
            "'filename':'doc.pdf'}},{'type':'file','file':{'file_id':'file-xyz'}}]},"
            "{'role':'assistant','content':'A cat.','refusal':null,'annotations':[]},"
            "{'role':'user','content':'Weather?'},"
            "{'role':'assistant','content':null,'refusal':null,'annotations':[],"
            "'tool_calls':[{'id':'call_a','type':'function','function':{'name':"
            "'get_weather','arguments':'{\\'city\\':\\'Oslo\\'}'}},"
            "{'id':'call_b','type':'function','function':{'name':'get_time',"
            "'arguments':''}}]},"
            "{'role':'tool','tool_call_id':'call_a','content':'{\\'temp\\':3}'},"
            "{'role':'tool','tool_call_id':'call_b','content':[{'type':'text',"
            "'text':'12:00'}]}]}");
    o = c->out;
    in = jat(o, "input");
    OK(!c->step && json_is_array(in), "c2r: converts (%s)", why(p, c));
    OK(jeq(o, "model", UP_MODEL), "c2r: the account's model (%s)", show(p, jat(o, "model")));
    OK((jeq(in, "0.type", "message") || !jhas(in, "0.type")) && jeq(in, "0.role", "system")
       && !strcmp(item_text(p, jat(in, "0")) ?: "", "You are terse."),
       "c2r: a system message -> input message role system (%s)", show(p, jat(in, "0")));
    OK((jeq(in, "1.role", "developer") || jeq(in, "1.role", "system"))
       && !strcmp(item_text(p, jat(in, "1")) ?: "", "Dev note."),
       "c2r: a developer message kept as developer/system (%s)", show(p, jat(in, "1")));
    u = jat(in, "2.content");
    OK(jeq(in, "2.role", "user") && json_array_size(u) == 5,
       "c2r: the user message has five parts (%s)", show(p, jat(in, "2")));
    OK(jeq(u, "0.type", "input_text") && jeq(u, "0.text", "What is this?"),
       "c2r: text -> input_text (%s)", show(p, jat(u, "0")));
    OK(jeq(u, "1.type", "input_image") && jeq(u, "1.image_url", "https://example.com/cat.png")
       && jeq(u, "1.detail", "auto"),
       "c2r: image_url -> input_image, detail defaults to auto (trap 63) (%s)",
       show(p, jat(u, "1")));
    OK(jeq(u, "2.type", "input_image") && jeq(u, "2.detail", "low")
       && jeq(u, "2.image_url", "data:image/jpeg;base64,/9j/"),
       "c2r: image detail kept (%s)", show(p, jat(u, "2")));
    OK(jeq(u, "3.type", "input_file")
       && jeq(u, "3.file_data", "data:application/pdf;base64,JVBERi0=")
       && jeq(u, "3.filename", "doc.pdf") && jeq(u, "4.type", "input_file")
       && jeq(u, "4.file_id", "file-xyz"),
       "c2r: file -> input_file {file_data, filename} / {file_id} (%s)", show(p, u));
    OK(jeq(in, "3.role", "assistant") && !strcmp(item_text(p, jat(in, "3")) ?: "", "A cat.")
       && (!json_is_array(jat(in, "3.content"))
           || jeq(in, "3.content.0.type", "output_text")),
       "c2r: assistant text -> assistant message (output_text) (%s)",
       show(p, jat(in, "3")));
    OK(c->body && !strstr(c->body, "\"refusal\"") && !jhas(in, "3.refusal")
       && !jhas(in, "3.annotations") && find_type(in, "refusal", 0) < 0,
       "c2r: the SDK's echoed refusal:null / annotations:[] accepted and not forwarded "
       "(%s)", c->body ? c->body : "-");
    fc = find_type(in, "function_call", 0);
    OK(fc == 5 && jeq(in, "5.call_id", "call_a") && jeq(in, "5.name", "get_weather")
       && jeq(in, "5.arguments", "{\"city\":\"Oslo\"}") && !jhas(in, "5.id")
       && jeq(in, "6.type", "function_call") && jeq(in, "6.call_id", "call_b")
       && !jhas(in, "6.id") && jeq(in, "6.arguments", "{}"),
       "c2r: tool_calls -> function_call items with call_id and no id; empty "
       "arguments -> {} (trap 54) (%s)", show(p, in));
    fco = find_type(in, "function_call_output", 0);
    OK(fco == 7 && jeq(in, "7.call_id", "call_a") && jeq(in, "7.output", "{\"temp\":3}")
       && jeq(in, "8.type", "function_call_output") && jeq(in, "8.call_id", "call_b")
       && !strcmp(content_text(p, jat(in, "8.output")) ?: "", "12:00"),
       "c2r: tool messages -> function_call_output (%s)", show(p, jat(in, "7")));
    OK(jat(o, "store") == json_false(), "c2r: store false (%s)", show(p, jat(o, "store")));
    OK(!jhas(o, "messages") && !jhas(o, "tool_choice") && !jhas(o, "tools"),
       "c2r: no chat members, no tools when the client has none");

    /* the SDK's real tool-result turn */
    c = convert(p, &tb_dialect_chat, TB_OP_CHAT, &tb_dialect_responses,
                fixture_body(p, "openai-sdk-chat-tool-result-turn.json"), 0);
    in = jat(c->out, "input");
    fc = find_type(in, "function_call", 0);
    fco = find_type(in, "function_call_output", 0);
    OK(!c->step && fc >= 0 && fco == fc + 1
       && jeq(in, apr_psprintf(p, "%d.call_id", fc), "call_906790979c97337b88476c68")
       && !jhas(in, apr_psprintf(p, "%d.id", fc))
       && jeq(in, apr_psprintf(p, "%d.call_id", fco), "call_906790979c97337b88476c68")
       && c->body && !strstr(c->body, "refusal"),
       "c2r: the SDK's tool-result turn (refusal:null, annotations:[]) converts (%s; %s)",
       why(p, c), show(p, in));
}

static void test_c2r_params(apr_pool_t *p)
{
    conv_t *c;
    const json_t *o;

    c = c2r(p, "{'model':'m','messages':[{'role':'user','content':'hi'}],"
            "'tools':[{'type':'function','function':{'name':'get_weather','description':"
            "'Weather','parameters':{'type':'object','properties':{'city':{'type':"
            "'string'}},'required':['city'],'additionalProperties':false},'strict':true}},"
            "{'type':'function','function':{'name':'get_time','parameters':{'type':"
            "'object','properties':{}}}}],"
            "'tool_choice':{'type':'function','function':{'name':'get_weather'}},"
            "'parallel_tool_calls':true,"
            "'response_format':{'type':'json_schema','json_schema':{'name':'out',"
            "'description':'D','schema':{'type':'object'},'strict':true}},"
            "'reasoning_effort':'high','max_tokens':5,'stop':['\\n\\n'],'n':1,"
            "'temperature':0.5,'top_p':0.8,'seed':7,'stream':true,"
            "'stream_options':{'include_usage':true}}");
    o = c->out;
    OK(!c->step, "c2r params: converts (%s)", why(p, c));
    OK(jlen(o, "tools") == 2 && jeq(o, "tools.0.type", "function")
       && jeq(o, "tools.0.name", "get_weather") && jeq(o, "tools.0.description", "Weather")
       && jeq(o, "tools.0.parameters.properties.city.type", "string")
       && !jhas(o, "tools.0.function") && jat(o, "tools.0.strict") == json_true(),
       "c2r params: nested function tools -> flat (trap 55) (%s)", show(p, jat(o, "tools.0")));
    OK(jeq(o, "tools.1.name", "get_time") && jat(o, "tools.1.strict") == json_false(),
       "c2r params: strict false when the client did not say (%s)",
       show(p, jat(o, "tools.1")));
    OK(jeq(o, "tool_choice.type", "function") && jeq(o, "tool_choice.name", "get_weather")
       && !jhas(o, "tool_choice.function"),
       "c2r params: nested tool_choice -> flat {type, name} (trap 55) (%s)",
       show(p, jat(o, "tool_choice")));
    OK(jat(o, "parallel_tool_calls") == json_true(), "c2r params: parallel_tool_calls");
    OK(jeq(o, "text.format.type", "json_schema") && jeq(o, "text.format.name", "out")
       && jeq(o, "text.format.description", "D")
       && jeq(o, "text.format.schema.type", "object")
       && jat(o, "text.format.strict") == json_true() && !jhas(o, "text.format.json_schema")
       && !jhas(o, "response_format"),
       "c2r params: response_format -> flat text.format (%s)", show(p, jat(o, "text")));
    OK(jeq(o, "reasoning.effort", "high") && jeq(o, "reasoning.summary", "auto")
       && !jhas(o, "reasoning_effort"),
       "c2r params: reasoning_effort -> reasoning {effort, summary auto} (%s)",
       show(p, jat(o, "reasoning")));
    OK(jint(o, "max_output_tokens") == 16 && !jhas(o, "max_tokens")
       && !jhas(o, "max_completion_tokens"),
       "c2r params: max_tokens 5 -> max_output_tokens 16 (the floor) (%s)",
       show(p, jat(o, "max_output_tokens")));
    OK(!jhas(o, "stop") && !jhas(o, "n") && !jhas(o, "seed") && !jhas(o, "stream_options"),
       "c2r params: stop, n, seed, stream_options dropped (trap 63)");
    OK(json_number_value(jat(o, "temperature")) == 0.5
       && json_number_value(jat(o, "top_p")) == 0.8 && jat(o, "stream") == json_true(),
       "c2r params: temperature, top_p, stream kept");
    OK(jat(o, "store") == json_false(), "c2r params: store false");

    c = c2r(p, "{'model':'m','messages':[{'role':'user','content':'hi'}],"
            "'max_completion_tokens':100,'max_tokens':50}");
    OK(!c->step && jint(c->out, "max_output_tokens") == 100,
       "c2r params: max_completion_tokens wins over max_tokens (%s)",
       show(p, jat(c->out, "max_output_tokens")));
    c = c2r(p, "{'model':'m','messages':[{'role':'user','content':'hi'}],'max_tokens':500}");
    OK(!c->step && jint(c->out, "max_output_tokens") == 500,
       "c2r params: max_tokens -> max_output_tokens (%s)",
       show(p, jat(c->out, "max_output_tokens")));

    c = c2r(p, "{'model':'m','messages':[{'role':'user','content':'hi'}],'n':2}");
    OK(c->step && c->rv == APR_EINVAL && c->err.status == 400
       && c->err.param && !strcmp(c->err.param, "n"),
       "c2r params: n > 1 -> APR_EINVAL with a 400 on 'n' (%s)", why(p, c));
    c = c2r(p, "{'model':'m','messages':[{'role':'user','content':'hi'}],'n':1}");
    OK(!c->step, "c2r params: n 1 is fine (%s)", why(p, c));

    c = c2r(p, "{'model':'m','messages':[{'role':'user','content':'hi'}],"
            "'response_format':{'type':'json_object'}}");
    OK(!c->step && jeq(c->out, "text.format.type", "json_object"),
       "c2r params: json_object (%s)", show(p, jat(c->out, "text")));

    c = c2r(p, "{'model':'m','messages':[{'role':'user','content':'hi'}],"
            "'tools':[{'type':'function','function':{'name':'f','parameters':{}}},"
            "{'type':'function','function':{'name':'g','parameters':{}}}],"
            "'tool_choice':{'type':'allowed_tools','allowed_tools':{'mode':'required',"
            "'tools':[{'type':'function','function':{'name':'f'}}]}}}");
    o = c->out;
    OK(!c->step && jeq(o, "tool_choice.type", "allowed_tools")
       && jeq(o, "tool_choice.mode", "required") && jlen(o, "tool_choice.tools") == 1
       && jeq(o, "tool_choice.tools.0.type", "function")
       && jeq(o, "tool_choice.tools.0.name", "f"),
       "c2r params: allowed_tools nested -> flat (%s)", show(p, jat(o, "tool_choice")));

    c = c2r(p, "{'model':'m','messages':[{'role':'user','content':'hi'}],"
            "'tools':[{'type':'function','function':{'name':'f','parameters':{}}}],"
            "'tool_choice':'required'}");
    OK(!c->step && jeq(c->out, "tool_choice", "required"),
       "c2r params: a string tool_choice kept (%s)", show(p, jat(c->out, "tool_choice")));

    /* a chat custom tool and its call */
    c = c2r(p, "{'model':'m','messages':[{'role':'user','content':'patch it'},"
            "{'role':'assistant','content':null,'tool_calls':[{'id':'call_c','type':"
            "'custom','custom':{'name':'apply_patch','input':'*** Begin Patch'}}]},"
            "{'role':'tool','tool_call_id':'call_c','content':'done'}],"
            "'tools':[{'type':'custom','custom':{'name':'apply_patch','format':"
            "{'type':'text'}}}]}");
    o = c->out;
    OK(!c->step && jeq(o, "tools.0.type", "custom") && jeq(o, "tools.0.name", "apply_patch")
       && jeq(o, "input.1.type", "custom_tool_call") && jeq(o, "input.1.call_id", "call_c")
       && jeq(o, "input.1.input", "*** Begin Patch") && !jhas(o, "input.1.id")
       && jeq(o, "input.2.type", "custom_tool_call_output"),
       "c2r params: a custom tool and call stay custom (%s)", c->body ? c->body : why(p, c));
}

/* ==== fidelity: what passes through a conversion comes out the same =========== */

/* A JSON Schema with what a JSON reader and writer can get wrong: escapes,
 * astral characters, control characters, an escaped key, duplicate keys
 * (the last counts), -0, extreme doubles, 64-bit integers, empty and deep
 * containers. */
#define HARD_SCHEMA "{\"type\":\"object\",\"description\":\"caf\\u00e9 \\\"q\\\" \\\\ \\/ " \
    "\\n\\t \\u0001 \\ud83d\\ude00 \xe2\x80\x94 \xc3\xbc \\u2028\",\"properties\":{" \
    "\"pro\\u0070\":{\"type\":\"number\",\"minimum\":-0.0,\"maximum\":" \
    "1.7976931348623157e308,\"multipleOf\":0.1,\"exclusiveMinimum\":" \
    "1.2345678901234567e-300,\"default\":0.12345678901234568,\"examples\":[1E2,2e-2,-3.5]}," \
    "\"n\":{\"type\":\"integer\",\"maximum\":9007199254740993,\"minimum\":" \
    "-9223372036854775808,\"default\":0},\"e\":{},\"a\":[],\"deep\":{\"a\":{\"b\":{\"c\":" \
    "{\"d\":[[[[{}]]]]}}}},\"flags\":[true,false,null],\"dup\":{\"k\":1,\"k\":2}}," \
    "\"required\":[\"pro\\u0070\"]}"
#define HARD_TEXT "caf\\u00e9 \\\"q\\\" \\\\ \\/ \\n\\t \\u0001 \\ud83d\\ude00 " \
    "\xe2\x80\x94 \xc3\xbc \\u2028"
#define HARD_TEXT_VALUE "caf\xc3\xa9 \"q\" \\ / \n\t \x01 \xf0\x9f\x98\x80 \xe2\x80\x94 " \
    "\xc3\xbc \xe2\x80\xa8"

static void test_fidelity(apr_pool_t *p)
{
    json_t *schema = jparse(p, HARD_SCHEMA, strlen(HARD_SCHEMA));
    const char *body;
    conv_t *c;
    json_t *big;

    OK(schema && jint(schema, "properties.dup.k") == 2,
       "fidelity: the schema is JSON to jansson, the last duplicate counting");

    body = "{\"model\":\"m\",\"instructions\":\"" HARD_TEXT "\",\"input\":[{\"role\":"
           "\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"" HARD_TEXT "\"}]}],"
           "\"metadata\":{\"k\\u00e9y\":\"v\\u2028al\"},\"temperature\":"
           "0.12345678901234568,\"tools\":[{\"type\":\"function\",\"name\":\"f\","
           "\"parameters\":" HARD_SCHEMA "}],\"text\":{\"format\":{\"type\":\"json_schema\","
           "\"name\":\"out\",\"schema\":" HARD_SCHEMA "}}}";
    c = convert(p, &tb_dialect_responses, TB_OP_RESPONSES, &tb_dialect_chat, body, 0);
    OK(!c->step, "fidelity r2c: converts, and jansson reads the result (%s)", why(p, c));
    OK(json_equal(jat(c->out, "tools.0.function.parameters"), schema),
       "fidelity r2c: the tool schema comes out equal (%s)",
       show(p, jat(c->out, "tools.0.function.parameters")));
    OK(json_equal(jat(c->out, "response_format.json_schema.schema"), schema),
       "fidelity r2c: the response schema comes out equal (%s)",
       show(p, jat(c->out, "response_format.json_schema.schema")));
    OK(jeq(c->out, "messages.0.content", HARD_TEXT_VALUE)
       && !strcmp(content_text(p, jat(c->out, "messages.1.content")) ?: "", HARD_TEXT_VALUE),
       "fidelity r2c: texts with escapes and astral characters come out equal (%s)",
       V(p, js(c->out, "messages.0.content")));
    OK(jeq(c->out, "metadata.k\xc3\xa9y", "v\xe2\x80\xa8" "al")
       && json_real_value(jat(c->out, "temperature")) == 0.12345678901234568,
       "fidelity r2c: metadata keys and a 17-digit double come out equal (%s %s)",
       show(p, jat(c->out, "metadata")), show(p, jat(c->out, "temperature")));

    body = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"" HARD_TEXT
           "\"},{\"role\":\"user\",\"content\":\"" HARD_TEXT "\"},{\"role\":\"assistant\","
           "\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\","
           "\"function\":{\"name\":\"f\",\"arguments\":"
           "\"{\\\"q\\\":\\\"\\\\u00e9\\\\n\\\"}\"}}]},"
           "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"" HARD_TEXT "\"}],"
           "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":"
           HARD_SCHEMA "}}],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
           "{\"name\":\"out\",\"schema\":" HARD_SCHEMA "}}}";
    c = convert(p, &tb_dialect_chat, TB_OP_CHAT, &tb_dialect_responses, body, 0);
    OK(!c->step, "fidelity c2r: converts, and jansson reads the result (%s)", why(p, c));
    OK(json_equal(jat(c->out, "tools.0.parameters"), schema)
       && json_equal(jat(c->out, "text.format.schema"), schema),
       "fidelity c2r: the tool and response schemas come out equal (%s)",
       show(p, jat(c->out, "tools.0.parameters")));
    OK(!strcmp(content_text(p, jat(c->out, "input.0.content")) ?: "", HARD_TEXT_VALUE)
       && !strcmp(content_text(p, jat(c->out, "input.1.content")) ?: "", HARD_TEXT_VALUE),
       "fidelity c2r: texts come out equal (%s)", show(p, jat(c->out, "input.1")));
    OK(jeq(c->out, "input.2.arguments", "{\"q\":\"\\u00e9\\n\"}")
       && jeq(c->out, "input.3.output", HARD_TEXT_VALUE),
       "fidelity c2r: arguments kept as the client wrote them, the tool output equal "
       "(%s)", show(p, jat(c->out, "input")));

    /* a number no 64-bit integer holds is still JSON */
    body = "{\"model\":\"m\",\"input\":\"hi\",\"tools\":[{\"type\":\"function\",\"name\":"
           "\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"n\":{\"type\":"
           "\"integer\",\"maximum\":123456789012345678901234567890}}}}]}";
    c = convert(p, &tb_dialect_responses, TB_OP_RESPONSES, &tb_dialect_chat, body, 0);
    big = c->body ? jparse_flags(p, c->body, c->len, JSON_DECODE_INT_AS_REAL) : NULL;
    OK(c->body && big && json_number_value(jat(big, "tools.0.function.parameters.properties."
                                                    "n.maximum")) > 1.2e29,
       "fidelity r2c: an integer beyond 64 bits converts, as the same number (%s; %s)",
       why(p, c), c->body ? V(p, c->body) : "-");
}

/* ==== the same-dialect fast path: splice ========================================= */

static const char *joined(apr_pool_t *p, const apr_array_header_t *iov)
{
    apr_size_t n = 0;
    char *out, *o;
    int i;

    for (i = 0; i < iov->nelts; ++i) {
        n += APR_ARRAY_IDX(iov, i, tb_iovec_t).len;
    }
    o = out = apr_palloc(p, n + 1);
    for (i = 0; i < iov->nelts; ++i) {
        const tb_iovec_t *v = &APR_ARRAY_IDX(iov, i, tb_iovec_t);
        memcpy(o, v->base, v->len);
        o += v->len;
    }
    *o = '\0';
    return out;
}

/* check + splice; NULL when either fails. */
static const char *spliced(apr_pool_t *p, const tb_dialect_t *d, tb_op_t op,
                           const char *body, const char *model, unsigned caps,
                           tb_req_info_t *info)
{
    tb_ir_error_t err;
    apr_array_header_t *iov = NULL;

    memset(info, 0, sizeof(*info));
    if (d->check(p, op, body, strlen(body), info, &err) != APR_SUCCESS
        || d->splice(p, info, model, caps, &iov) != APR_SUCCESS || !iov) {
        return NULL;
    }
    return joined(p, iov);
}

/* `s` with the first `from` after offset `at` replaced by `to`. */
static const char *replace_at(apr_pool_t *p, const char *s, const char *from,
                              const char *to, int last)
{
    const char *at = strstr(s, from), *next;

    while (last && at && (next = strstr(at + 1, from))) {
        at = next;
    }
    if (!at) {
        return s;
    }
    return apr_pstrcat(p, apr_pstrndup(p, s, at - s), to, at + strlen(from), NULL);
}

/* The fast path's usage edit: the result must be the client's body with
 * stream_options.include_usage true, and every byte outside the
 * stream_options member as it was. */
static void usage_edit(apr_pool_t *p, const char *name, const char *body)
{
    tb_req_info_t info;
    const char *out = spliced(p, &tb_dialect_chat, TB_OP_CHAT, body, "m",
                              TB_CAP_STREAM_USAGE, &info);
    json_t *got = out ? jparse(p, out, strlen(out)) : NULL;
    json_t *want = jparse(p, body, strlen(body)), *so;
    apr_size_t blen = strlen(body), olen = out ? strlen(out) : 0, a = 0, b = 0;
    apr_size_t so_start = 0, so_len = 0;
    int has_so;

    OK(got != NULL, "splice %s: result is JSON (%s)", name, V(p, out));
    if (!got || !want) {
        return;
    }
    so = json_object_get(want, "stream_options");
    if (!json_is_object(so)) {
        json_object_set_new(want, "stream_options", json_object());
        so = json_object_get(want, "stream_options");
    }
    json_object_set_new(so, "include_usage", json_true());
    OK(json_equal(got, want), "splice %s: include_usage true, nothing else changed "
       "(%s)", name, V(p, out));
    /* the one changed region of the body */
    while (a < blen && a < olen && body[a] == out[a]) {
        ++a;
    }
    while (b < blen - a && b < olen - a && body[blen - 1 - b] == out[olen - 1 - b]) {
        ++b;
    }
    has_so = tb_json_member_span(body, blen, "stream_options", &so_start, &so_len)
             == APR_SUCCESS;
    OK(blen - a - b == 0
       || (has_so && a >= so_start && blen - b <= so_start + so_len),
       "splice %s: every byte outside stream_options kept (changed %lu..%lu)", name,
       (unsigned long)a, (unsigned long)(blen - b));
}

static void test_splice(apr_pool_t *p)
{
    tb_req_info_t info;
    const char *body, *out, *want;
    json_t *j;

    /* odd spacing, escapes, huge numbers: only the model changes */
    body = "{ \"model\" :\t\"gpt-4o\" ,\n  \"messages\":[{\"role\":\"user\",\"content\":"
           "\"caf\\u00e9 \\\"q\\\" \\\\ \\/ \\ud83d\\ude00\\n\"}] ,\"temperature\":"
           "0.70000000000000000000001, \"seed\":123456789012345678901234567890,"
           "\"logit_bias\":{\"50256\":-100},\"x\":1e400 , \"y\" : [ ] }";
    out = spliced(p, &tb_dialect_chat, TB_OP_CHAT, body, "real-model", 0, &info);
    want = replace_at(p, body, "\"gpt-4o\"", "\"real-model\"", 0);
    OK(out && !strcmp(out, want), "splice chat: only the model replaced, byte for byte "
       "(%s)", V(p, out));
    out = spliced(p, &tb_dialect_chat, TB_OP_CHAT, body, "gpt-4o", 0, &info);
    OK(out && !strcmp(out, body), "splice chat: the same model leaves the body as is");
    out = spliced(p, &tb_dialect_responses, TB_OP_RESPONSES,
                  replace_at(p, body, "\"messages\"", "\"input\"", 0), "real-model",
                  TB_CAP_STREAM_USAGE | TB_CAP_STORE, &info);
    want = replace_at(p, replace_at(p, body, "\"messages\"", "\"input\"", 0),
                      "\"gpt-4o\"", "\"real-model\"", 0);
    OK(out && !strcmp(out, want), "splice responses: only the model replaced, byte "
       "for byte (%s)", V(p, out));

    /* duplicate model keys: the last one counts and is the one replaced */
    body = "{\"model\":\"alias\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
           "\"model\":\"gpt-4o\"}";
    out = spliced(p, &tb_dialect_chat, TB_OP_CHAT, body, "real", 0, &info);
    OK(info.model && !strcmp(info.model, "gpt-4o"),
       "splice chat: duplicate model keys, the last wins (%s)",
       info.model ? info.model : "-");
    want = replace_at(p, body, "\"gpt-4o\"", "\"real\"", 1);
    OK(out && !strcmp(out, want), "splice chat: duplicate model keys, the last "
       "replaced, the rest byte-identical (%s)", V(p, out));
    j = out ? jparse(p, out, strlen(out)) : NULL;
    OK(jeq(j, "model", "real"), "splice chat: a parser sees the account's model (%s)",
       show(p, jat(j, "model")));
    out = spliced(p, &tb_dialect_responses, TB_OP_RESPONSES,
                  "{\"model\":\"alias\",\"input\":\"hi\",\"model\":\"gpt-4o\"}", "real", 0,
                  &info);
    OK(out && !strcmp(out, "{\"model\":\"alias\",\"input\":\"hi\",\"model\":\"real\"}"),
       "splice responses: duplicate model keys, the last replaced (%s)",
       V(p, out));

    /* an escaped model in the client's body; a model needing escapes */
    body = "{\"model\":\"gpt\\u002d4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    out = spliced(p, &tb_dialect_chat, TB_OP_CHAT, body, "real", 0, &info);
    OK(info.model && !strcmp(info.model, "gpt-4o") && out
       && !strcmp(out, replace_at(p, body, "\"gpt\\u002d4o\"", "\"real\"", 0)),
       "splice chat: an escaped model read and replaced (%s)", V(p, out));
    out = spliced(p, &tb_dialect_chat, TB_OP_CHAT, body, "we\"ird\\model", 0, &info);
    j = out ? jparse(p, out, strlen(out)) : NULL;
    OK(jeq(j, "model", "we\"ird\\model"), "splice chat: a model with quotes and "
       "backslashes is escaped (%s)", V(p, out));

    /* stream_options.include_usage, on a stream_usage account */
    usage_edit(p, "absent", "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":"
               "\"user\",\"content\":\"hi\"}]}");
    usage_edit(p, "null", "{\"model\":\"m\",\"stream\":true,\"stream_options\":null,"
               "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    usage_edit(p, "{}", "{\"model\":\"m\",\"stream\":true,\"stream_options\":{},"
               "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    usage_edit(p, "{ } spaced", "{ \"model\" : \"m\" , \"stream\" : true , "
               "\"stream_options\" : { } , \"messages\" : [ { \"role\" : \"user\" , "
               "\"content\" : \"hi\" } ] }");
    usage_edit(p, "include_usage false", "{\"model\":\"m\",\"stream\":true,"
               "\"stream_options\":{\"include_usage\":false},\"messages\":[{\"role\":"
               "\"user\",\"content\":\"hi\"}]}");
    usage_edit(p, "other members", "{\"model\":\"m\",\"stream\":true,\"stream_options\":"
               "{\"continuous_usage_stats\":true, \"include_usage\" :false,\"z\":[1,2]},"
               "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    usage_edit(p, "no include_usage", "{\"model\":\"m\",\"stream\":true,\"stream_options\":"
               "{\"continuous_usage_stats\":true},\"messages\":[{\"role\":\"user\","
               "\"content\":\"caf\\u00e9\\n\\\"x\\\"\"}],\"temperature\":"
               "0.70000000000000000000001}");
    usage_edit(p, "include_usage null", "{\"model\":\"m\",\"stream\":true,"
               "\"stream_options\":{\"include_usage\":null},\"messages\":[{\"role\":"
               "\"user\",\"content\":\"hi\"}]}");
    usage_edit(p, "stream_options first", "{\"stream_options\":{\"include_usage\":false},"
               "\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\","
               "\"content\":\"hi\"}]}");

    body = "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    out = spliced(p, &tb_dialect_chat, TB_OP_CHAT, body, "m", TB_CAP_STREAM_USAGE, &info);
    OK(out && !strcmp(out, body) && info.include_usage,
       "splice chat: include_usage already true: unchanged");
    body = "{\"model\":\"m\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":"
           "\"hi\"}]}";
    out = spliced(p, &tb_dialect_chat, TB_OP_CHAT, body, "m", TB_CAP_STREAM_USAGE, &info);
    OK(out && !strcmp(out, body), "splice chat: no stream, no stream_options");
    body = "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
           "\"hi\"}]}";
    out = spliced(p, &tb_dialect_chat, TB_OP_CHAT, body, "m", 0, &info);
    OK(out && !strcmp(out, body), "splice chat: an account without stream_usage: "
       "unchanged");
    out = spliced(p, &tb_dialect_chat, TB_OP_CHAT, body, "other-model",
                  TB_CAP_STREAM_USAGE, &info);
    j = out ? jparse(p, out, strlen(out)) : NULL;
    OK(jeq(j, "model", "other-model") && jat(j, "stream_options.include_usage") == json_true()
       && strstr(out, "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"),
       "splice chat: model and usage edits together (%s)", V(p, out));
    out = spliced(p, &tb_dialect_responses, TB_OP_RESPONSES,
                  "{\"model\":\"m\",\"stream\":true,\"input\":\"hi\"}", "m",
                  TB_CAP_STREAM_USAGE, &info);
    OK(out && !strcmp(out, "{\"model\":\"m\",\"stream\":true,\"input\":\"hi\"}"),
       "splice responses: no stream_options added to a Responses body (%s)",
       V(p, out));
}

/* ==== tb_dialect_responses.check ================================================= */

static apr_status_t rcheck(apr_pool_t *p, tb_op_t op, const char *qbody,
                           tb_req_info_t *info, tb_ir_error_t *err)
{
    const char *body = Q(p, qbody);

    memset(info, 0, sizeof(*info));
    memset(err, 0, sizeof(*err));
    return tb_dialect_responses.check(p, op, body, strlen(body), info, err);
}

static void needs(apr_pool_t *p, const char *qbody, tb_op_t op, unsigned want,
                  const char *param)
{
    tb_req_info_t info;
    tb_ir_error_t err;
    apr_status_t rv = rcheck(p, op, qbody, &info, &err);

    OK(rv == APR_SUCCESS && (info.needs & want) == want && (want || !info.needs)
       && (!param ? 1 : info.needs_param && !strcmp(info.needs_param, param)),
       "check %s: needs 0x%x (got rv %d, 0x%x, %s)", qbody, want, rv, info.needs,
       info.needs_param ? info.needs_param : "-");
}

static void invalid(apr_pool_t *p, const char *qbody, tb_op_t op, const char *param)
{
    tb_req_info_t info;
    tb_ir_error_t err;
    apr_status_t rv = rcheck(p, op, qbody, &info, &err);

    OK(rv == APR_EINVAL && err.status == 400 && err.param && !strcmp(err.param, param),
       "check %s: 400 on '%s' (rv %d, %d, %s: %s)", qbody, param, rv, err.status,
       err.param ? err.param : "-", err.message ? err.message : "-");
}

static void test_resp_check(apr_pool_t *p)
{
    tb_req_info_t info;
    tb_ir_error_t err;
    apr_status_t rv;
    const char *body;

    needs(p, "{'model':'m','input':'hi'}", TB_OP_RESPONSES, 0, NULL);
    needs(p, "{'model':'m','input':'hi','previous_response_id':'resp_1'}", TB_OP_RESPONSES,
          TB_NEED_STORE | TB_NEED_NATIVE, "previous_response_id");
    needs(p, "{'model':'m','input':'hi','previous_response_id':null}", TB_OP_RESPONSES, 0,
          NULL);
    needs(p, "{'model':'m','previous_response_id':'resp_1'}", TB_OP_RESPONSES,
          TB_NEED_STORE | TB_NEED_NATIVE, "previous_response_id");
    needs(p, "{'model':'m','input':'hi','conversation':'conv_1'}", TB_OP_RESPONSES,
          TB_NEED_STORE | TB_NEED_NATIVE, "conversation");
    needs(p, "{'model':'m','input':'hi','conversation':{'id':'conv_1'}}", TB_OP_RESPONSES,
          TB_NEED_STORE | TB_NEED_NATIVE, "conversation");
    needs(p, "{'model':'m','input':'hi','background':true}", TB_OP_RESPONSES,
          TB_NEED_NATIVE, "background");
    needs(p, "{'model':'m','input':'hi','background':false}", TB_OP_RESPONSES, 0, NULL);
    needs(p, "{'model':'m','input':'hi','prompt':{'id':'pmpt_1','version':'2'}}",
          TB_OP_RESPONSES, TB_NEED_NATIVE, "prompt");
    needs(p, "{'model':'m','input':[{'role':'user','content':'x'},"
          "{'type':'item_reference','id':'msg_1'}]}", TB_OP_RESPONSES,
          TB_NEED_STORE | TB_NEED_NATIVE, "input");
    needs(p, "{'model':'m','input':[{'role':'user','content':'x'},{'type':'compaction',"
          "'id':'cmp_1','encrypted_content':'abc'}]}", TB_OP_RESPONSES, TB_NEED_COMPACT,
          "input");
    needs(p, "{'model':'m','input':[{'role':'user','content':'x'},"
          "{'type':'compaction_trigger'}]}", TB_OP_RESPONSES, TB_NEED_COMPACT, "input");
    needs(p, "{'model':'m','input':'x'}", TB_OP_COMPACT, TB_NEED_COMPACT, NULL);

    invalid(p, "{'model':'m'}", TB_OP_RESPONSES, "input");
    invalid(p, "{'model':'m','input':null}", TB_OP_RESPONSES, "input");
    invalid(p, "{'model':'m','input':42}", TB_OP_RESPONSES, "input");
    invalid(p, "{'model':'m','input':{'role':'user','content':'x'}}", TB_OP_RESPONSES,
            "input");
    invalid(p, "{'model':'m','input':true}", TB_OP_RESPONSES, "input");
    invalid(p, "{'model':'m','input':'x','stream':true}", TB_OP_COMPACT, "stream");
    invalid(p, "{'input':'x'}", TB_OP_RESPONSES, "model");

    rv = rcheck(p, TB_OP_RESPONSES, "{'model':'m','input':'x','stream':true}", &info, &err);
    OK(rv == APR_SUCCESS && info.stream && info.model && !strcmp(info.model, "m")
       && info.op == TB_OP_RESPONSES,
       "check: stream and model read (rv %d, stream %d)", rv, info.stream);
    rv = rcheck(p, TB_OP_COMPACT, "{'model':'m','input':'x','stream':false}", &info, &err);
    OK(rv == APR_SUCCESS, "check: stream false on compact is fine (rv %d)", rv);

    body = fixture_body(p, "codex-0.169-remote-v2-compaction-request.json");
    memset(&info, 0, sizeof(info));
    rv = body ? tb_dialect_responses.check(p, TB_OP_RESPONSES, body, strlen(body), &info,
                                           &err) : APR_EGENERAL;
    OK(rv == APR_SUCCESS && (info.needs & TB_NEED_COMPACT),
       "check: Codex's remote compaction request needs compaction (rv %d, 0x%x)", rv,
       info.needs);
    OK(rv == APR_SUCCESS
       && tb_dialect_fit(&tb_dialect_responses, &info, &tb_dialect_chat,
                         TB_CAP_STREAM_USAGE) == TB_FIT_NEEDS,
       "check: ... so a chat account cannot take it");
    body = fixture_body(p, "codex-0.169-tool-followup.json");
    memset(&info, 0, sizeof(info));
    rv = body ? tb_dialect_responses.check(p, TB_OP_RESPONSES, body, strlen(body), &info,
                                           &err) : APR_EGENERAL;
    OK(rv == APR_SUCCESS && !info.needs && info.stream
       && tb_dialect_fit(&tb_dialect_responses, &info, &tb_dialect_chat,
                         TB_CAP_STREAM_USAGE) == TB_FIT_OK,
       "check: an ordinary Codex turn needs nothing a chat account lacks (0x%x)",
       info.needs);
}

/* ==== whole answers: chat.completion -> Response object (6B) ====================== */

static tb_ir_req_t *ir_of(apr_pool_t *p, const tb_dialect_t *d, tb_op_t op,
                          const char *qbody)
{
    conv_t *c = apr_pcalloc(p, sizeof(*c));
    const char *body = Q(p, qbody);

    if (d->check(p, op, body, strlen(body), &c->info, &c->err) != APR_SUCCESS
        || d->parse(p, &c->info, &c->req, &c->err) != APR_SUCCESS) {
        return NULL;
    }
    return c->req;
}

/* An upstream's whole answer rendered for the client. */
static json_t *answer(apr_pool_t *p, const tb_dialect_t *up, const tb_dialect_t *client,
                      const tb_ir_req_t *req, const char *qbody, const char **pbody)
{
    const char *body = Q(p, qbody), *out = NULL;
    tb_ir_resp_t *resp = NULL;
    apr_size_t len = 0;

    *pbody = NULL;
    if (!req || up->parse_response(p, body, strlen(body), &resp) != APR_SUCCESS
        || client->render(p, req, resp, &out, &len) != APR_SUCCESS) {
        return NULL;
    }
    *pbody = out;
    return jparse(p, out, len);
}

#define CHAT_USAGE "'usage':{'prompt_tokens':10,'completion_tokens':5,'total_tokens':15," \
    "'prompt_tokens_details':{'cached_tokens':3},'completion_tokens_details':" \
    "{'reasoning_tokens':2}}"

static json_t *chat_answer(apr_pool_t *p, const tb_ir_req_t *req, const char *message,
                           const char *finish)
{
    const char *out;

    return answer(p, &tb_dialect_chat, &tb_dialect_responses, req,
                  apr_psprintf(p, "{'id':'chatcmpl-1','object':'chat.completion',"
                               "'created':1730000000,'model':'gpt-4o-up','choices':"
                               "[{'index':0,'message':%s,'finish_reason':'%s'}],"
                               CHAT_USAGE "}", message, finish), &out);
}

static void test_chat_answer_to_response(apr_pool_t *p)
{
    static const char *const required[] = {
        "id", "object", "created_at", "completed_at", "status", "incomplete_details",
        "model", "previous_response_id", "instructions", "output", "error", "tools",
        "tool_choice", "truncation", "parallel_tool_calls", "text", "top_p",
        "presence_penalty", "frequency_penalty", "top_logprobs", "temperature",
        "reasoning", "usage", "max_output_tokens", "max_tool_calls", "store",
        "background", "service_tier", "metadata", "safety_identifier",
        "prompt_cache_key", NULL
    };
    tb_ir_req_t *req;
    tb_ir_resp_t *bad = NULL;
    json_t *r, *t;
    size_t i;
    int k, missing = 0, strict_ok = 1;
    const char *in;

    req = ir_of(p, &tb_dialect_responses, TB_OP_RESPONSES,
                "{'model':'gpt-5','instructions':'Be brief.','input':'hi','tools':["
                "{'type':'function','name':'get_weather','description':'W','parameters':"
                "{'type':'object','properties':{'city':{'type':'string'}}},'strict':true},"
                "{'type':'function','name':'get_time','parameters':{'type':'object',"
                "'properties':{}}},"
                "{'type':'custom','name':'apply_patch','format':{'type':'grammar',"
                "'syntax':'lark','definition':'start: x'}}],"
                "'tool_choice':'auto','temperature':0.3,'top_p':0.9,"
                "'max_output_tokens':500,'reasoning':{'effort':'low'}}");
    OK(req != NULL, "answer 6B: the Responses request parses");

    r = chat_answer(p, req, "{'role':'assistant','content':'Hello','refusal':null}", "stop");
    OK(r != NULL, "answer 6B: a chat.completion renders as a Response");
    for (k = 0; required[k]; ++k) {
        if (!jhas(r, required[k])) {
            missing = 1;
            OK(0, "answer 6B: required member '%s' present", required[k]);
        }
    }
    OK(!missing, "answer 6B: every member OpenResponses requires is present");
    OK(starts(js(r, "id"), "resp_") && jeq(r, "object", "response")
       && json_is_integer(jat(r, "created_at")) && jeq(r, "status", "completed")
       && json_is_null(jat(r, "error")) && json_is_null(jat(r, "incomplete_details")),
       "answer 6B: id resp_..., object, created_at, status completed, error and "
       "incomplete_details null (%s %s)", show(p, jat(r, "id")), show(p, jat(r, "status")));
    OK(jeq(r, "instructions", "Be brief.") && jeq(r, "tool_choice", "auto")
       && json_is_boolean(jat(r, "parallel_tool_calls"))
       && json_is_object(jat(r, "text")) && json_is_object(jat(r, "text.format"))
       && json_number_value(jat(r, "temperature")) == 0.3
       && json_number_value(jat(r, "top_p")) == 0.9 && jint(r, "max_output_tokens") == 500
       && json_is_object(jat(r, "metadata")) && js(r, "model"),
       "answer 6B: the request's settings echoed");
    OK(jlen(r, "tools") == 3 && jeq(r, "tools.0.name", "get_weather")
       && jeq(r, "tools.0.type", "function") && !jhas(r, "tools.0.function")
       && jeq(r, "tools.2.type", "custom") && jeq(r, "tools.2.name", "apply_patch"),
       "answer 6B: tools echoed in Responses' flat form (%s)", show(p, jat(r, "tools")));
    json_array_foreach(jat(r, "tools"), i, t) {
        if (jeq(t, "type", "function") && !json_is_boolean(json_object_get(t, "strict"))
            && !json_is_null(json_object_get(t, "strict"))) {
            strict_ok = 0;
        }
    }
    OK(strict_ok && jat(r, "tools.0.strict") == json_true(),
       "answer 6B: every echoed function tool carries strict (%s)",
       show(p, jat(r, "tools")));
    OK(jint(r, "usage.input_tokens") == 10
       && jint(r, "usage.input_tokens_details.cached_tokens") == 3
       && jint(r, "usage.output_tokens") == 5
       && jint(r, "usage.output_tokens_details.reasoning_tokens") == 2
       && jint(r, "usage.total_tokens") == 15 && !jhas(r, "usage.prompt_tokens"),
       "answer 6B: usage in Responses names (%s)", show(p, jat(r, "usage")));
    OK(jlen(r, "output") == 1 && jeq(r, "output.0.type", "message")
       && starts(js(r, "output.0.id"), "msg_") && jeq(r, "output.0.role", "assistant")
       && jeq(r, "output.0.status", "completed")
       && jeq(r, "output.0.content.0.type", "output_text")
       && jeq(r, "output.0.content.0.text", "Hello")
       && json_is_array(jat(r, "output.0.content.0.annotations")),
       "answer 6B: the text as a message item with output_text and annotations (%s)",
       show(p, jat(r, "output")));

    r = chat_answer(p, req, "{'role':'assistant','content':'Partial'}", "length");
    OK(jeq(r, "status", "incomplete")
       && jeq(r, "incomplete_details.reason", "max_output_tokens")
       && jeq(r, "output.0.content.0.text", "Partial"),
       "answer 6B: finish length -> incomplete, reason max_output_tokens (trap 61) "
       "(%s %s)", show(p, jat(r, "status")), show(p, jat(r, "incomplete_details")));
    r = chat_answer(p, req, "{'role':'assistant','content':''}", "content_filter");
    OK(jeq(r, "status", "incomplete") && jeq(r, "incomplete_details.reason", "content_filter")
       && json_is_array(jat(r, "output")),
       "answer 6B: finish content_filter -> incomplete, reason content_filter (trap 61) "
       "(%s %s)", show(p, jat(r, "status")), show(p, jat(r, "incomplete_details")));

    r = chat_answer(p, req, "{'role':'assistant','content':null,'tool_calls':["
                    "{'id':'call_abc','type':'function','function':{'name':'get_weather',"
                    "'arguments':'{\\'city\\':\\'Oslo\\'}'}},"
                    "{'id':'call_def','type':'function','function':{'name':'apply_patch',"
                    "'arguments':'{\\'input\\':\\'*** Begin Patch\\\\n"
                    "*** End Patch\\\\n\\'}'}}]}",
                    "tool_calls");
    OK(jeq(r, "status", "completed") && jlen(r, "output") == 2,
       "answer 6B: two calls, two output items, completed (%s)", show(p, jat(r, "output")));
    OK(jeq(r, "output.0.type", "function_call") && starts(js(r, "output.0.id"), "fc_")
       && jeq(r, "output.0.call_id", "call_abc") && jeq(r, "output.0.name", "get_weather")
       && jeq(r, "output.0.arguments", "{\"city\":\"Oslo\"}")
       && jeq(r, "output.0.status", "completed"),
       "answer 6B: a tool call -> function_call {id fc_..., call_id = chat id} (trap 54) "
       "(%s)", show(p, jat(r, "output.0")));
    OK(jeq(r, "output.1.type", "custom_tool_call") && jeq(r, "output.1.call_id", "call_def")
       && jeq(r, "output.1.name", "apply_patch")
       && jeq(r, "output.1.input", "*** Begin Patch\n*** End Patch\n")
       && !jhas(r, "output.1.arguments") && js(r, "output.1.id"),
       "answer 6B: a downgraded custom tool comes back as custom_tool_call, input "
       "unwrapped (trap 64) (%s)", show(p, jat(r, "output.1")));

    r = chat_answer(p, req, "{'role':'assistant','content':'Answer','reasoning_content':"
                    "'Think.'}", "stop");
    OK(jlen(r, "output") == 2 && jeq(r, "output.0.type", "reasoning")
       && starts(js(r, "output.0.id"), "rs_")
       && jeq(r, "output.0.summary.0.type", "summary_text")
       && jeq(r, "output.0.summary.0.text", "Think.")
       && jeq(r, "output.1.type", "message") && jeq(r, "output.1.content.0.text", "Answer"),
       "answer 6B: reasoning_content -> a reasoning item with summary text, first (%s)",
       show(p, jat(r, "output")));
    r = chat_answer(p, req, "{'role':'assistant','content':'Answer','reasoning':'Hmm.'}",
                    "stop");
    OK(jeq(r, "output.0.type", "reasoning") && jeq(r, "output.0.summary.0.text", "Hmm."),
       "answer 6B: a 'reasoning' field too (trap 67) (%s)", show(p, jat(r, "output")));
    r = chat_answer(p, req, "{'role':'assistant','content':null,'refusal':'No.'}", "stop");
    OK(jeq(r, "output.0.type", "message") && jeq(r, "output.0.content.0.type", "refusal")
       && jeq(r, "output.0.content.0.refusal", "No."),
       "answer 6B: a refusal -> a refusal part (%s)", show(p, jat(r, "output")));
    r = chat_answer(p, req, "{'role':'assistant','content':null,'tool_calls':["
                    "{'id':'call_t','type':'function','function':{'name':'get_weather',"
                    "'arguments':'{\\'city\\':'}}]}", "length");
    in = show(p, jat(r, "output"));
    OK(r && !strstr(in, "call_t"),
       "answer 6B: a call whose arguments are not JSON is skipped (§6B) (%s)", in);

    OK(tb_dialect_chat.parse_response(p, "{\"id\":\"x\"}", 10, &bad) == APR_EINVAL
       && tb_dialect_chat.parse_response(p, "nope", 4, &bad) == APR_EINVAL,
       "answer 6B: an answer without a message, or not JSON, is refused");
}

/* ==== whole answers: Response object -> chat.completion (6E) ====================== */

static json_t *resp_answer(apr_pool_t *p, const tb_ir_req_t *req, const char *output,
                           const char *extra)
{
    const char *out;

    return answer(p, &tb_dialect_responses, &tb_dialect_chat, req,
                  apr_psprintf(p, "{'id':'resp_up1','object':'response','created_at':"
                               "1730000000,'model':'gpt-4.1','output':%s,%s}", output,
                               extra), &out);
}

static void test_response_to_chat_answer(apr_pool_t *p)
{
    tb_ir_req_t *req, *plain;
    json_t *r;

    req = ir_of(p, &tb_dialect_chat, TB_OP_CHAT,
                "{'model':'gpt-4o','messages':[{'role':'user','content':'hi'}],"
                "'tools':[{'type':'function','function':{'name':'get_weather','parameters':"
                "{'type':'object','properties':{}}}},{'type':'custom','custom':{'name':"
                "'apply_patch'}}]}");
    plain = ir_of(p, &tb_dialect_chat, TB_OP_CHAT,
                  "{'model':'gpt-4o','messages':[{'role':'user','content':'hi'}]}");
    OK(req && plain, "answer 6E: the chat requests parse");

    r = resp_answer(p, req, "[{'type':'reasoning','id':'rs_1','summary':[{'type':"
                    "'summary_text','text':'Thinking.'}]},"
                    "{'type':'web_search_call','id':'ws_1','status':'completed'},"
                    "{'type':'message','id':'msg_1','role':'assistant','status':'completed',"
                    "'content':[{'type':'output_text','text':'Hello ','annotations':[]},"
                    "{'type':'output_text','text':'world','annotations':[]}]},"
                    "{'type':'message','id':'msg_2','role':'assistant','status':'completed',"
                    "'content':[{'type':'output_text','text':'!','annotations':[]}]}]",
                    "'status':'completed','usage':{'input_tokens':10,"
                    "'input_tokens_details':{'cached_tokens':4},'output_tokens':6,"
                    "'output_tokens_details':{'reasoning_tokens':1},'total_tokens':16}");
    OK(r != NULL, "answer 6E: a Response renders as a chat.completion");
    OK(jeq(r, "object", "chat.completion") && js(r, "id") && jint(r, "created") == 1730000000
       && js(r, "model") && jlen(r, "choices") == 1 && jint(r, "choices.0.index") == 0
       && jeq(r, "choices.0.message.role", "assistant"),
       "answer 6E: chat.completion shape (%s)", show(p, r));
    OK(jeq(r, "choices.0.message.content", "Hello world!"),
       "answer 6E: output_text of every message joined (%s)",
       show(p, jat(r, "choices.0.message.content")));
    OK(jeq(r, "choices.0.message.reasoning_content", "Thinking."),
       "answer 6E: reasoning summary -> reasoning_content (%s)",
       show(p, jat(r, "choices.0.message")));
    OK(jeq(r, "choices.0.finish_reason", "stop") && !jhas(r, "choices.0.message.tool_calls"),
       "answer 6E: completed -> stop, hosted items skipped (%s)",
       show(p, jat(r, "choices.0")));
    OK(jint(r, "usage.prompt_tokens") == 10 && jint(r, "usage.completion_tokens") == 6
       && jint(r, "usage.total_tokens") == 16
       && jint(r, "usage.prompt_tokens_details.cached_tokens") == 4
       && jint(r, "usage.completion_tokens_details.reasoning_tokens") == 1
       && !jhas(r, "usage.input_tokens"),
       "answer 6E: usage in chat names (%s)", show(p, jat(r, "usage")));

    r = resp_answer(p, req, "[{'type':'function_call','id':'fc_1','call_id':'call_1',"
                    "'name':'get_weather','arguments':'{\\'city\\':\\'Oslo\\'}',"
                    "'status':'completed'}]", "'status':'completed'");
    OK(jeq(r, "choices.0.message.tool_calls.0.id", "call_1")
       && jeq(r, "choices.0.message.tool_calls.0.type", "function")
       && jeq(r, "choices.0.message.tool_calls.0.function.name", "get_weather")
       && jeq(r, "choices.0.message.tool_calls.0.function.arguments", "{\"city\":\"Oslo\"}")
       && json_is_null(jat(r, "choices.0.message.content")),
       "answer 6E: function_call -> tool_calls with id = call_id, content null (%s)",
       show(p, jat(r, "choices.0.message")));
    OK(jeq(r, "choices.0.finish_reason", "tool_calls"),
       "answer 6E: completed with calls -> tool_calls (%s)",
       show(p, jat(r, "choices.0.finish_reason")));
    OK(json_is_object(jat(r, "usage")) && jint(r, "usage.prompt_tokens") >= 0,
       "answer 6E: a usage object even when the upstream sent none (%s)",
       show(p, jat(r, "usage")));

    r = resp_answer(p, req, "[{'type':'message','id':'msg_1','role':'assistant','content':"
                    "[{'type':'output_text','text':'Part'}]}]", "'status':'incomplete',"
                    "'incomplete_details':{'reason':'max_output_tokens'}");
    OK(jeq(r, "choices.0.finish_reason", "length"),
       "answer 6E: incomplete max_output_tokens -> length (%s)",
       show(p, jat(r, "choices.0.finish_reason")));
    r = resp_answer(p, req, "[]", "'status':'incomplete','incomplete_details':"
                    "{'reason':'content_filter'}");
    OK(jeq(r, "choices.0.finish_reason", "content_filter"),
       "answer 6E: incomplete content_filter -> content_filter (%s)",
       show(p, jat(r, "choices.0.finish_reason")));

    {
        tb_ir_resp_t *ir = NULL;
        const char *body = Q(p, "{'id':'resp_f','object':'response','status':'failed',"
                             "'output':[],'error':{'code':'rate_limit_exceeded','message':"
                             "'Slow down'}}");
        OK(tb_dialect_responses.parse_response(p, body, strlen(body), &ir) == APR_SUCCESS
           && ir && ir->failed && ir->error.code
           && !strcmp(ir->error.code, "rate_limit_exceeded") && ir->error.message
           && !strcmp(ir->error.message, "Slow down"),
           "answer 6E: status failed -> a failed IR response with the error (so the "
           "client gets an error, never finish stop)");
    }

    r = resp_answer(p, req, "[{'type':'custom_tool_call','id':'ctc_1','call_id':'call_p',"
                    "'name':'apply_patch','input':'*** Begin Patch'}]", "'status':'completed'");
    OK(jeq(r, "choices.0.message.tool_calls.0.type", "custom")
       && jeq(r, "choices.0.message.tool_calls.0.id", "call_p")
       && jeq(r, "choices.0.message.tool_calls.0.custom.name", "apply_patch")
       && jeq(r, "choices.0.message.tool_calls.0.custom.input", "*** Begin Patch"),
       "answer 6E: custom_tool_call -> a custom tool call (%s)",
       show(p, jat(r, "choices.0.message.tool_calls")));
    r = resp_answer(p, plain, "[{'type':'custom_tool_call','id':'ctc_1','call_id':"
                    "'call_p','name':'apply_patch','input':'*** Begin Patch'}]",
                    "'status':'completed'");
    OK(jeq(r, "choices.0.message.tool_calls.0.type", "custom")
       && jeq(r, "choices.0.message.tool_calls.0.custom.input", "*** Begin Patch"),
       "answer 6E: custom_tool_call -> a custom tool call even when the chat request "
       "did not declare the tool (%s)", show(p, jat(r, "choices.0.message.tool_calls")));
}

void test_convert(apr_pool_t *p)
{
    test_r2c_basics(p);
    test_r2c_roles(p);
    test_r2c_parts(p);
    test_r2c_assistant_history(p);
    test_r2c_tool_calls(p);
    test_r2c_custom(p);
    test_r2c_namespace(p);
    test_r2c_hosted(p);
    test_r2c_items_skipped(p);
    test_r2c_dropped_calls(p);
    test_r2c_tool_media(p);
    test_r2c_format_stream(p);
    test_r2c_additional_tools(p);
    test_r2c_codex(p);
    test_c2r_messages(p);
    test_c2r_params(p);
    test_fidelity(p);
    test_splice(p);
    test_resp_check(p);
    test_chat_answer_to_response(p);
    test_response_to_chat_answer(p);
}
