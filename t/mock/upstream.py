#!/usr/bin/env python3
"""Scriptable mock of an OpenAI-compatible upstream provider (stdlib only).

    python3 t/mock/upstream.py --port 18080 [--host 127.0.0.1] [--pidfile FILE] [--quiet]

Prints "READY <port>" on stdout once listening (--port 0 picks a free port).
SIGTERM/SIGINT exit cleanly. HTTP/1.1 keep-alive; plain replies carry
Content-Length, SSE replies are chunked with one chunk per event, flushed.

Provider routes: /a/<account>/v1/<endpoint> (/v1/<endpoint> is account "default")
  POST chat/completions  chat.completion, or chat.completion.chunk events when
                         "stream": true; text "Hello from <account>" (deltas
                         "Hello", " from", " <account>"); model echoed from the
                         request; usage 5/7/12 (stream: only when
                         stream_options.include_usage, as a final choices:[] chunk
                         and "usage":null on every other chunk); then [DONE].
  POST responses         a Response object (id resp_.., status "completed", the
                         sample's echo fields: model, instructions, tools,
                         tool_choice, temperature, top_p, text, reasoning, store,
                         metadata, ... from the request or OpenAI's defaults;
                         output [message msg_.. with one output_text part, same
                         text]; usage {input_tokens 5, input_tokens_details
                         {cached_tokens 0}, output_tokens 7, output_tokens_details
                         {reasoning_tokens 0}, total_tokens 12}).
                         "stream": true: "event: <type>" + "data: <json>" events,
                         sequence_number 0, 1, ...: response.created,
                         response.in_progress (status "in_progress", output [],
                         usage null), then per output item output_item.added,
                         its content events, output_item.done (message:
                         content_part.added, output_text.delta x3 as for chat,
                         output_text.done, content_part.done), then
                         response.completed carrying the full object. No [DONE].
  POST responses/compact {"id":"resp_..","object":"response.compaction",
                         "created_at", "output":[the request's user messages
                         (input items with role "user"; a string input is one),
                         as {"type":"message","role":"user","content":[parts]},
                         then {"type":"compaction","id":"cmp_..",
                         "encrypted_content": opaque base64}], "usage"} (usage as
                         for responses; honours the step's usage only).
  GET  models            one model, "mock-model".
  GET responses/ID       a Response with that id (as the default reply).
  DELETE responses/ID    {"id": ID, "object": "response.deleted", "deleted": true}.
  other methods on responses, responses/compact
                         405 {"error":{..., "code":"method_not_allowed"}} (Codex
                         probes GET /v1/responses for a WebSocket upgrade).
  anything else          404 {"error":{..., "code":"not_found"}}.

Control API (never recorded, never consumes steps):
  POST /__mock/reset     forget scripts, persistent defaults, requests, events.
  POST /__mock/close_idle  close every kept-alive connection that is between
                         requests, as an upstream's keep-alive timeout does:
                         {"closed": N}.
  POST /__mock/script    {"account":"a1","steps":[STEP, ...]} appends one-shot
                         steps; each provider request to a1 pops one.
  POST /__mock/default   {"account":"a1","step":STEP|null} persistent STEP used
                         when a1's queue is empty (null removes it).
  GET  /__mock/requests[?account=a1]  recorded requests, oldest first:
       {"account","method","path","headers":{lower-case: value},"body":text,
        "json":parsed-or-null,"time":unix}. Recorded before the step runs.
  GET  /__mock/events[?account=a1]    lifecycle events {"account","type","time",..}:
       response_started {"status"}, response_finished,
       client_closed {"during": "delay"|"stream"|"hang"|"send"} -- the peer
         closed or reset while we waited or wrote (noticed within ~0.1 s),
       server_dropped {"reason": "close"|"abort"} -- a close/abort_after step.
  "account" defaults to "default" in script/default bodies.

STEP (every field optional; {} means default behaviour):
  status        int; 200 when body/sse/echo/sse_default is given, else the
                default route's status (200; 404 for unknown paths, 405 for a
                wrong method on responses).
  headers       extra response headers, e.g. {"Retry-After": "2"}; they replace
                same-named defaults except Content-Length/Transfer-Encoding.
  content_type  overrides the default (application/json or text/event-stream).
  body          string (sent verbatim) or JSON value (serialised). Without
                body/sse/echo/sse_default the default reply body is used with
                this step's status/headers/delay (so {"status":500} returns a
                chat completion, or a Response, with status 500 -- give a body
                for errors).
  echo          true: reply body = the raw request body (application/json).
  delay         seconds before the status line (also before a close).
  close         true: record the request, then close the socket, no reply.
  sse           list of events streamed instead of a body; each event is
                {"data": str (verbatim) | JSON value, "event": name, "id": id,
                 "delay": seconds before it} or {"raw": exact text} (split
                events, comments, CRLF ...). [DONE] is NOT added automatically.
  sse_default   true: stream the default reply even if the request did not
                ask to: Responses events on responses, chat chunks (honouring
                include_usage) on every other path.
  event_delay   seconds before each default chunk/event (default 0).
  abort_after   N (streams only): once N events are sent, drop the TCP
                connection with no terminating chunk (0 = right after the
                headers). Lists with fewer than N events finish normally.
  hang          seconds of silence: for streamed replies after the last event
                (before the terminating chunk), for plain replies before the
                status line (after delay).

Reply fields: they shape the default reply of chat/completions and responses,
stream and non-stream (and usage that of responses/compact); they do nothing
when body/sse/echo is given. Streamed pieces: a string is cut in three
roughly equal non-empty pieces (fewer when shorter than 3 characters).
  text          str: replaces "Hello from <account>" (deltas: three pieces; the
                default text keeps "Hello", " from", " <account>"). Given with a
                tool call, the reply has both, text first.
  tool_call     {"name": str, "arguments": str (JSON text; another JSON value
                is serialised; default "{}"), "call_id": str (default call_..)}
                or a list of them: a function tool call instead of the default
                text. Chat: "content": null, "tool_calls": [{"id": call_id,
                "type": "function", "function": {"name", "arguments"}}],
                finish_reason "tool_calls"; stream: the call's header (index,
                id, type, function.name, arguments "") goes in the role chunk
                when nothing precedes it (else its own chunk), then the
                arguments in pieces. Responses: a {"type": "function_call",
                "id": "fc_..", "call_id", "name", "arguments", "status":
                "completed"} item; stream: output_item.added (arguments "",
                status "in_progress"), response.function_call_arguments.delta
                per piece, .done {name, arguments}, output_item.done.
  custom_tool_call  {"name": str, "input": str (default ""), "call_id": str} or
                a list: a free-form (custom) tool call, after any tool_call
                calls. Chat: tool_calls [{"id", "type": "custom", "custom":
                {"name", "input"}}] (stream: "custom": {"input": piece}).
                Responses: {"type": "custom_tool_call", "id": "ctc_..",
                "call_id", "name", "input", "status": "completed"}; stream:
                response.custom_tool_call_input.delta / .done {input}.
  reasoning     str: reasoning before the text/tool calls. Chat: message
                "reasoning_content" (stream: {"reasoning_content": piece} deltas
                after the role chunk). Responses: first item {"type":
                "reasoning", "id": "rs_..", "summary": [{"type": "summary_text",
                "text"}], "encrypted_content": "enc_.."} (the others follow at
                output_index 1, ...); stream: output_item.added (summary []),
                response.reasoning_summary_part.added,
                response.reasoning_summary_text.delta per piece,
                response.reasoning_summary_text.done,
                response.reasoning_summary_part.done, output_item.done.
                Chat stream order: role chunk, reasoning, text, tool calls.
  usage         {"input": N, "output": N, "cached": N, "reasoning": N} (missing
                keys keep 5, 7, 0, 0; total = input + output). Chat:
                prompt_tokens, completion_tokens, total_tokens,
                prompt_tokens_details.cached_tokens,
                completion_tokens_details.reasoning_tokens. Responses:
                input_tokens, output_tokens, total_tokens,
                input_tokens_details.cached_tokens,
                output_tokens_details.reasoning_tokens.
  finish        str: chat finish_reason (default "stop", or "tool_calls" with
                tool calls). "length" / "content_filter" make a Responses reply
                incomplete: status "incomplete", completed_at null,
                incomplete_details {"reason": "max_output_tokens" /
                "content_filter"}, the last output item's status "incomplete",
                and response.incomplete as the terminal event.
"""
import argparse
import base64
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from urllib.parse import parse_qs, urlsplit

JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream; charset=utf-8"
POLL_SLICE = 0.1  # how often a waiting request checks whether the peer left

# Shared state, all guarded by LOCK.
LOCK = threading.Lock()
SCRIPTS = {}   # account -> list of one-shot steps
DEFAULTS = {}  # account -> persistent step
REQUESTS = []  # recorded provider requests
EVENTS = []    # connection lifecycle events
IDLE = set()   # handlers between requests on a kept-alive connection


def dumps(value):
    """Compact JSON as UTF-8 bytes, the way OpenAI writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def add_event(account, kind, **extra):
    with LOCK:
        EVENTS.append(dict(account=account, type=kind, time=time.time(), **extra))


def next_step(account):
    """Pop the account's next one-shot step, else its persistent one, else {}."""
    with LOCK:
        queue = SCRIPTS.get(account)
        step = queue.pop(0) if queue else DEFAULTS.get(account)
    return step or {}


def error_body(message, code, kind="invalid_request_error"):
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


DEFAULT_COUNTS = {"input": 5, "output": 7, "cached": 0, "reasoning": 0}
# finish reasons that make a Responses reply incomplete -> incomplete_details.reason
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def hex_id(prefix):
    return prefix + uuid.uuid4().hex[:24]


def new_id():
    return hex_id("chatcmpl-")


def split3(text):
    """`text` in three roughly equal non-empty pieces (fewer when it is shorter)."""
    cuts = [len(text) * k // 3 for k in range(4)]
    return [text[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]


def token_counts(step):
    """The step's "usage" {"input","output","cached","reasoning"}, defaults filled in."""
    counts = dict(DEFAULT_COUNTS)
    given = step.get("usage")
    for key in counts:
        value = given.get(key) if isinstance(given, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            counts[key] = value
    return counts


def usage(counts=DEFAULT_COUNTS):
    """Chat Completions usage."""
    return {"prompt_tokens": counts["input"], "completion_tokens": counts["output"],
            "total_tokens": counts["input"] + counts["output"],
            "prompt_tokens_details": {"cached_tokens": counts["cached"], "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": counts["reasoning"],
                                          "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def responses_usage(counts=DEFAULT_COUNTS):
    """Responses usage (also used by /responses/compact)."""
    return {"input_tokens": counts["input"],
            "input_tokens_details": {"cached_tokens": counts["cached"]},
            "output_tokens": counts["output"],
            "output_tokens_details": {"reasoning_tokens": counts["reasoning"]},
            "total_tokens": counts["input"] + counts["output"]}


def step_calls(step):
    """The step's tool_call / custom_tool_call entries (an object or a list of
    them each), function calls first: [{"kind","name","payload","call_id"}]."""
    calls = []
    for field, kind, key, missing in (("tool_call", "function", "arguments", "{}"),
                                      ("custom_tool_call", "custom", "input", "")):
        spec = step.get(field)
        for call in spec if isinstance(spec, list) else [spec]:
            if not isinstance(call, dict):
                continue
            payload = call.get(key, missing)
            if not isinstance(payload, str):
                payload = dumps(payload).decode()  # a JSON value: send its text
            calls.append({"kind": kind, "name": str(call.get("name") or "tool"),
                          "payload": payload,
                          "call_id": str(call.get("call_id") or hex_id("call_"))})
    return calls


def reply_plan(account, step):
    """What a default chat/responses reply says, from the step's reply fields:
    reasoning (str|None), text (str|None) and its deltas, tool calls, finish
    (str|None, as given) and token counts."""
    calls = step_calls(step)
    reasoning = step.get("reasoning")
    plan = {"reasoning": None if reasoning is None else str(reasoning), "calls": calls,
            "finish": str(step["finish"]) if step.get("finish") else None,
            "counts": token_counts(step)}
    if step.get("text") is not None:
        plan["text"] = str(step["text"])
        plan["pieces"] = split3(plan["text"])
    elif calls:
        plan["text"], plan["pieces"] = None, []
    else:
        plan["text"] = "Hello from " + account
        plan["pieces"] = ["Hello", " from", " " + account]
    return plan


# --- Chat Completions --------------------------------------------------------

def chat_finish(plan):
    return plan["finish"] or ("tool_calls" if plan["calls"] else "stop")


def chat_tool_call(call, payload):
    """One chat tool_calls[] entry carrying `payload` as arguments/input."""
    kind = call["kind"]
    key = "arguments" if kind == "function" else "input"
    return {"id": call["call_id"], "type": kind, kind: {"name": call["name"], key: payload}}


def chat_completion(account, model, plan=None):
    plan = plan or reply_plan(account, {})
    message = {"role": "assistant", "content": plan["text"]}
    if plan["reasoning"] is not None:
        message["reasoning_content"] = plan["reasoning"]
    if plan["calls"]:
        message["tool_calls"] = [chat_tool_call(c, c["payload"]) for c in plan["calls"]]
    message.update(refusal=None, annotations=[])
    return {"id": new_id(), "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message,
                         "logprobs": None, "finish_reason": chat_finish(plan)}],
            "usage": usage(plan["counts"]), "service_tier": "default",
            "system_fingerprint": "fp_mock"}


def chat_deltas(plan):
    """The choice deltas of a streamed chat reply, in order (finish excluded)."""
    deltas = [{"role": "assistant", "content": "" if plan["text"] is not None else None,
               "refusal": None}]
    deltas += [{"reasoning_content": p} for p in split3(plan["reasoning"] or "")]
    deltas += [{"content": p} for p in plan["pieces"]]
    for i, call in enumerate(plan["calls"]):
        kind = call["kind"]
        key = "arguments" if kind == "function" else "input"
        head = [dict({"index": i}, **chat_tool_call(call, ""))]
        if len(deltas) == 1:  # nothing before the call: OpenAI puts it in the role chunk
            deltas[0] = {"role": "assistant", "content": None, "tool_calls": head, "refusal": None}
        else:
            deltas.append({"tool_calls": head})
        deltas += [{"tool_calls": [{"index": i, kind: {key: p}}]} for p in split3(call["payload"])]
    return deltas


def chat_chunks(account, model, include_usage, delay=0, plan=None):
    """The default streamed reply, as a list of SSE events."""
    plan = plan or reply_plan(account, {})
    base = {"id": new_id(), "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "service_tier": "default", "system_fingerprint": "fp_mock"}

    def chunk(delta, finish=None):
        data = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None,
                                    "finish_reason": finish}])
        if include_usage:
            data["usage"] = None
        return data

    datas = [chunk(delta) for delta in chat_deltas(plan)]
    datas.append(chunk({}, chat_finish(plan)))
    if include_usage:
        datas.append(dict(base, choices=[], usage=usage(plan["counts"])))
    datas.append("[DONE]")
    return [{"data": d, "delay": delay} for d in datas]


# --- Responses ---------------------------------------------------------------

def echoed(req, key, default):
    """The request's value for `key` (when given and not null), else `default`."""
    value = req.get(key)
    return default if value is None else value


def merged(req, key, default):
    """`default` (an object) updated with the request's object for `key`."""
    value = req.get(key)
    return dict(default, **value) if isinstance(value, dict) else default


def response_base(model, req):
    """An in-progress Response object (output [], usage null) echoing the request,
    with the fields and field order OpenAI sends."""
    return {"id": hex_id("resp_"), "object": "response", "created_at": int(time.time()),
            "status": "in_progress", "background": echoed(req, "background", False),
            "completed_at": None, "error": None, "incomplete_details": None,
            "instructions": echoed(req, "instructions", None),
            "max_output_tokens": echoed(req, "max_output_tokens", None),
            "max_tool_calls": echoed(req, "max_tool_calls", None),
            "model": model, "output": [],
            "parallel_tool_calls": echoed(req, "parallel_tool_calls", True),
            "previous_response_id": echoed(req, "previous_response_id", None),
            "prompt_cache_key": echoed(req, "prompt_cache_key", None),
            "reasoning": merged(req, "reasoning", {"effort": None, "summary": None}),
            "safety_identifier": echoed(req, "safety_identifier", None),
            "service_tier": "default", "store": echoed(req, "store", True),
            "temperature": echoed(req, "temperature", 1),
            "text": merged(req, "text", {"format": {"type": "text"}, "verbosity": "medium"}),
            "tool_choice": echoed(req, "tool_choice", "auto"),
            "tools": echoed(req, "tools", []),
            "top_logprobs": echoed(req, "top_logprobs", 0), "top_p": echoed(req, "top_p", 1),
            "truncation": echoed(req, "truncation", "disabled"), "usage": None,
            "user": echoed(req, "user", None), "metadata": echoed(req, "metadata", {})}


def response_final(base, items, plan):
    """`base` finished: completed (or incomplete for finish length/content_filter),
    with the output items and usage."""
    reason = INCOMPLETE_REASONS.get(plan["finish"])
    return dict(base, status="incomplete" if reason else "completed",
                completed_at=None if reason else int(time.time()),
                incomplete_details={"reason": reason} if reason else None,
                output=items, usage=responses_usage(plan["counts"]))


def output_text(text):
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_items(plan):
    """The finished output items: [reasoning], [message], tool calls."""
    items = []
    if plan["reasoning"] is not None:
        items.append({"type": "reasoning", "id": hex_id("rs_"),
                      "summary": [{"type": "summary_text", "text": plan["reasoning"]}],
                      "encrypted_content": hex_id("enc_")})
    if plan["text"] is not None:
        items.append({"type": "message", "id": hex_id("msg_"), "status": "completed",
                      "role": "assistant", "content": [output_text(plan["text"])]})
    for call in plan["calls"]:
        if call["kind"] == "function":
            items.append({"type": "function_call", "id": hex_id("fc_"),
                          "call_id": call["call_id"], "name": call["name"],
                          "arguments": call["payload"], "status": "completed"})
        else:
            items.append({"type": "custom_tool_call", "id": hex_id("ctc_"),
                          "call_id": call["call_id"], "name": call["name"],
                          "input": call["payload"], "status": "completed"})
    if plan["finish"] in INCOMPLETE_REASONS and items and "status" in items[-1]:
        items[-1]["status"] = "incomplete"  # the item the output limit cut short
    return items


def item_events(index, item, plan):
    """[(type, fields)] streaming one output item, from output_item.added to .done."""
    kind = item["type"]
    events = []
    if kind == "reasoning":
        text = item["summary"][0]["text"]
        at = {"item_id": item["id"], "output_index": index, "summary_index": 0}
        events += [("response.output_item.added", {"output_index": index,
                                                   "item": dict(item, summary=[])}),
                   ("response.reasoning_summary_part.added",
                    dict(at, part={"type": "summary_text", "text": ""}))]
        events += [("response.reasoning_summary_text.delta", dict(at, delta=p))
                   for p in split3(text)]
        events += [("response.reasoning_summary_text.done", dict(at, text=text)),
                   ("response.reasoning_summary_part.done",
                    dict(at, part={"type": "summary_text", "text": text}))]
    elif kind == "message":
        text = plan["text"]
        at = {"item_id": item["id"], "output_index": index, "content_index": 0}
        events += [("response.output_item.added", {"output_index": index, "item": dict(
                       item, status="in_progress", content=[])}),
                   ("response.content_part.added", dict(at, part=output_text("")))]
        events += [("response.output_text.delta", dict(at, delta=p, logprobs=[]))
                   for p in plan["pieces"]]
        events += [("response.output_text.done", dict(at, text=text, logprobs=[])),
                   ("response.content_part.done", dict(at, part=output_text(text)))]
    else:
        function = kind == "function_call"
        key = "arguments" if function else "input"
        prefix = "response.function_call_arguments" if function else \
            "response.custom_tool_call_input"
        at = {"item_id": item["id"], "output_index": index}
        events.append(("response.output_item.added", {"output_index": index, "item": dict(
            item, status="in_progress", **{key: ""})}))
        events += [(prefix + ".delta", dict(at, delta=p)) for p in split3(item[key])]
        done = dict(at, name=item["name"], arguments=item[key]) if function else \
            dict(at, input=item[key])
        events.append((prefix + ".done", done))
    events.append(("response.output_item.done", {"output_index": index, "item": item}))
    return events


def response_object(model, req, plan):
    """The non-streamed Responses reply."""
    return response_final(response_base(model, req), response_items(plan), plan)


def response_events(model, req, plan, delay=0):
    """The streamed Responses reply as SSE events ("event:" lines, sequence_number
    from 0, no [DONE]); the terminal event is response.completed/.incomplete."""
    base = response_base(model, req)
    items = response_items(plan)
    final = response_final(base, items, plan)
    typed = [("response.created", {"response": base}),
             ("response.in_progress", {"response": base})]
    for index, item in enumerate(items):
        typed += item_events(index, item, plan)
    typed.append(("response." + final["status"], {"response": final}))
    return [{"event": kind, "delay": delay,
             "data": dict({"type": kind, "sequence_number": n}, **fields)}
            for n, (kind, fields) in enumerate(typed)]


def compaction(account, req, plan):
    """The /responses/compact reply: the request's user messages, then one
    compaction item with an opaque encrypted_content."""
    given = req.get("input")
    items = [{"role": "user", "content": given}] if isinstance(given, str) else given
    items = items if isinstance(items, list) else []
    kept = []
    for item in items:
        if isinstance(item, dict) and item.get("role") == "user" and \
                item.get("type", "message") == "message":
            content = item.get("content")
            if not isinstance(content, list):
                content = [{"type": "input_text", "text": "" if content is None else str(content)}]
            kept.append({"type": "message", "role": "user", "content": content})
    secret = "mock compaction of %d input items for %s, %s" % (len(items), account,
                                                                uuid.uuid4().hex)
    return {"id": hex_id("resp_"), "object": "response.compaction", "created_at": int(time.time()),
            "output": kept + [{"type": "compaction", "id": hex_id("cmp_"),
                               "encrypted_content": base64.b64encode(secret.encode()).decode()}],
            "usage": responses_usage(plan["counts"])}


def encode_event(ev):
    """One SSE event (or a raw piece) as bytes."""
    if "raw" in ev:
        return str(ev["raw"]).encode()
    out = ""
    if ev.get("event") is not None:
        out += "event: %s\n" % ev["event"]
    if ev.get("id") is not None:
        out += "id: %s\n" % ev["id"]
    if "data" in ev:
        data = ev["data"]
        out += "data: %s\n" % (data if isinstance(data, str) else dumps(data).decode())
    return (out + "\n").encode()


def split_path(path):
    """'/a/<acct>/v1/<ep>' -> (acct, ep); '/v1/<ep>' -> ('default', ep); ep None if no /v1/."""
    parts = urlsplit(path).path.split("/")
    if len(parts) > 2 and parts[1] == "a" and parts[2]:
        account, rest = parts[2], parts[3:]
    else:
        account, rest = "default", parts[1:]
    return account, ("/".join(rest[1:]) if rest and rest[0] == "v1" else None)


def default_reply(account, endpoint, method, path, req, step):
    """(status, content_type, body bytes or None, events or None) of an unscripted
    request; the step only matters for sse_default, event_delay and the reply
    fields (text, reasoning, tool_call, custom_tool_call, usage, finish)."""
    req = req if isinstance(req, dict) else {}
    model = req.get("model") if isinstance(req.get("model"), str) else "mock-model"
    opts = req.get("stream_options")
    include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
    is_chat = endpoint == "chat/completions" and method == "POST"
    is_responses = endpoint == "responses" and method == "POST"
    plan = reply_plan(account, step)
    if endpoint == "responses" and (step.get("sse_default") or
                                    (is_responses and req.get("stream") is True)):
        delay = float(step.get("event_delay") or 0)
        return 200, SSE_TYPE, None, response_events(model, req, plan, delay)
    if step.get("sse_default") or (is_chat and req.get("stream") is True):
        delay = float(step.get("event_delay") or 0)
        return 200, SSE_TYPE, None, chat_chunks(account, model, include_usage, delay, plan)
    if is_chat:
        return 200, JSON_TYPE, dumps(chat_completion(account, model, plan)), None
    if is_responses:
        return 200, JSON_TYPE, dumps(response_object(model, req, plan)), None
    if endpoint == "responses/compact" and method == "POST":
        return 200, JSON_TYPE, dumps(compaction(account, req, plan)), None
    if endpoint in ("responses", "responses/compact"):
        return 405, JSON_TYPE, dumps(error_body("Invalid method for URL (%s %s)" % (method, path),
                                                "method_not_allowed")), None
    if endpoint.startswith("responses/") and "/" not in endpoint[len("responses/"):]:
        rid = endpoint[len("responses/"):]
        if method == "GET":
            obj = response_object(model, {}, plan)
            obj["id"] = rid
            return 200, JSON_TYPE, dumps(obj), None
        if method == "DELETE":
            return 200, JSON_TYPE, dumps({"id": rid, "object": "response.deleted",
                                          "deleted": True}), None
    if endpoint == "models" and method == "GET":
        return 200, JSON_TYPE, dumps({"object": "list", "data": [
            {"id": "mock-model", "object": "model", "created": 1700000000, "owned_by": "mock"}]}), None
    return 404, JSON_TYPE, dumps(error_body("Invalid URL (%s %s)" % (method, path), "not_found")), None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-upstream/1.0"
    timeout = 300  # idle keep-alive connections are dropped eventually
    quiet = False

    def log_message(self, fmt, *args):
        if not self.quiet:
            try:
                super().log_message(fmt, *args)
            except (OSError, ValueError):
                pass

    # A connection is idle from the end of one request until the next
    # request line arrives.
    def handle_one_request(self):
        with LOCK:
            IDLE.add(self)
        try:
            super().handle_one_request()
        finally:
            with LOCK:
                IDLE.discard(self)

    def parse_request(self):
        with LOCK:
            IDLE.discard(self)
        return super().parse_request()

    def do_GET(self):
        try:
            body = self.read_body()
        except ValueError:
            self.close_connection = True
            return self.reply(400, error_body("malformed request body", "bad_request"))
        if urlsplit(self.path).path.startswith("/__mock/"):
            self.control(body)
        else:
            self.upstream(body)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def read_body(self):
        """The request body, de-chunked if needed (raises ValueError when malformed)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65536).strip():  # skip trailers
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # --- low-level sending -------------------------------------------------

    def gone(self, account, during):
        """The peer went away: note it and stop using this connection."""
        self.close_connection = True
        if account is not None:
            add_event(account, "client_closed", during=during)

    def drop(self, account, reason):
        """Close the TCP connection now, without finishing any reply."""
        add_event(account, "server_dropped", reason=reason)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def wait(self, seconds, account, during):
        """Stay silent for `seconds` (0 = just check) while watching the socket.
        Returns False, after a client_closed event, if the peer closed or reset."""
        end = time.monotonic() + max(0.0, float(seconds or 0))
        poller = select.poll()
        poller.register(self.connection, select.POLLIN)
        while True:
            left = end - time.monotonic()
            pause = min(max(left, 0.0), POLL_SLICE)
            if poller.poll(pause * 1000):
                try:
                    data = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    data = b"?"
                except OSError:
                    data = b""
                if not data:
                    self.gone(account, during)
                    return False
                time.sleep(pause)  # pipelined bytes, not a close: keep waiting
            if left <= 0:
                return True

    def write(self, data, chunked, account, during):
        """Write (as one chunk if `chunked`) immediately; False if the peer is gone."""
        if chunked:
            if not data:
                return True  # NB: an empty chunk would end the body
            data = b"%x\r\n%s\r\n" % (len(data), data)
        try:
            self.wfile.write(data)
            return True
        except OSError:
            self.gone(account, during)
            return False

    def start(self, account, status, headers, during):
        """Send the status line and headers; False if the peer is gone."""
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
        except OSError:
            self.gone(account, during)
            return False
        if account is not None:
            add_event(account, "response_started", status=status)
        return True

    def reply(self, status, obj, account=None, headers=None):
        """A plain reply with Content-Length (obj: bytes, or a JSON value)."""
        body = obj if isinstance(obj, bytes) else dumps(obj)
        headers = dict(headers or {"Content-Type": JSON_TYPE}, **{"Content-Length": str(len(body))})
        if self.start(account, status, headers, "send") and \
                self.write(body, False, account, "send") and account is not None:
            add_event(account, "response_finished")

    # --- provider side -----------------------------------------------------

    def upstream(self, raw):
        account, endpoint = split_path(self.path)
        text = raw.decode("utf-8", "replace")
        try:
            req = json.loads(text) if text.strip() else None
            # numbers beyond a double (1e400) parse as inf, which JSON cannot
            # carry back to the tests: record such bodies as raw text only
            json.dumps(req, allow_nan=False)
        except ValueError:
            req = None
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        with LOCK:
            REQUESTS.append({"account": account, "method": self.command, "path": self.path,
                             "headers": headers, "body": text, "json": req, "time": time.time()})

        step = next_step(account)
        if not self.wait(step.get("delay"), account, "delay"):
            return
        if step.get("close"):
            return self.drop(account, "close")

        status, ctype, body, events = default_reply(account, endpoint, self.command,
                                                    self.path, req, step)
        if step.get("echo"):
            status, ctype, body, events = 200, JSON_TYPE, raw, None
        elif "sse" in step:
            status, ctype, body, events = 200, SSE_TYPE, None, list(step["sse"] or [])
        elif "body" in step:
            b = step["body"]
            status, ctype = 200, JSON_TYPE
            body, events = (b.encode() if isinstance(b, str) else dumps(b)), None
        status = int(step.get("status") or status)

        headers = {"Content-Type": step.get("content_type") or ctype}
        for name, value in (step.get("headers") or {}).items():
            if name.lower() in ("content-length", "transfer-encoding"):
                continue
            for old in [h for h in headers if h.lower() == name.lower()]:
                del headers[old]
            headers[name] = str(value)

        if events is None:
            if self.wait(step.get("hang"), account, "hang"):
                self.reply(status, body, account, headers)
        else:
            self.stream(account, status, headers, events, step)

    def stream(self, account, status, headers, events, step):
        """Send `events` as SSE, one flushed chunk each, honouring abort_after and hang."""
        chunked = self.request_version != "HTTP/1.0"
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            self.close_connection = True  # HTTP/1.0: the body ends at close
        headers.setdefault("Cache-Control", "no-cache")
        abort_after = step.get("abort_after")
        if not self.start(account, status, headers, "stream"):
            return
        sent = 0
        for ev in events + [None]:
            if abort_after is not None and sent >= int(abort_after):
                return self.drop(account, "abort")
            if ev is None:
                break
            if not isinstance(ev, dict):
                ev = {"data": ev}
            if not self.wait(ev.get("delay"), account, "stream") or \
                    not self.write(encode_event(ev), chunked, account, "stream"):
                return
            sent += 1
        if not self.wait(step.get("hang"), account, "hang"):
            return
        if chunked and not self.write(b"0\r\n\r\n", False, account, "stream"):
            return
        add_event(account, "response_finished")

    # --- control API -------------------------------------------------------

    def control(self, raw):
        url = urlsplit(self.path)
        name, method = url.path[len("/__mock/"):], self.command
        only = parse_qs(url.query).get("account", [None])[0]
        try:
            doc = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return self.reply(400, error_body("control body is not JSON", "bad_request"))
        doc = doc if isinstance(doc, dict) else {}
        account = str(doc.get("account") or "default")

        if (name, method) == ("reset", "POST"):
            with LOCK:
                for store in (SCRIPTS, DEFAULTS, REQUESTS, EVENTS):
                    store.clear()
            return self.reply(200, {"ok": True})
        if (name, method) == ("script", "POST"):
            steps = doc.get("steps")
            if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
                return self.reply(400, error_body("steps must be a list of objects", "bad_request"))
            with LOCK:
                queue = SCRIPTS.setdefault(account, [])
                queue.extend(steps)
                queued = len(queue)
            return self.reply(200, {"ok": True, "queued": queued})
        if (name, method) == ("default", "POST"):
            step = doc.get("step")
            if step is not None and not isinstance(step, dict):
                return self.reply(400, error_body("step must be an object or null", "bad_request"))
            with LOCK:
                if step is None:
                    DEFAULTS.pop(account, None)
                else:
                    DEFAULTS[account] = step
            return self.reply(200, {"ok": True})
        if (name, method) == ("close_idle", "POST"):
            with LOCK:
                idle = [h for h in IDLE if h is not self]
            for h in idle:
                try:
                    h.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return self.reply(200, {"closed": len(idle)})
        if name in ("requests", "events") and method == "GET":
            with LOCK:
                items = list(REQUESTS if name == "requests" else EVENTS)
            return self.reply(200, [i for i in items if only is None or i["account"] == only])
        return self.reply(404, error_body("unknown control call %s %s" % (method, url.path),
                                          "not_found"))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def server_bind(self):
        # NB: HTTPServer.server_bind does a reverse DNS lookup; skip it.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description="Mock OpenAI-compatible upstream")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--pidfile")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    Handler.quiet = args.quiet
    server = Server((args.host, args.port), Handler)

    def terminate(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)

    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    try:
        print("READY %d" % server.server_address[1], flush=True)
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass


if __name__ == "__main__":
    main()
