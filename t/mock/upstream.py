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
  GET  models            one model, "mock-model".
  anything else          404 {"error":{..., "code":"not_found"}}.

Control API (never recorded, never consumes steps):
  POST /__mock/reset     forget scripts, persistent defaults, requests, events.
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
                default route's status (200, or 404 for unknown paths).
  headers       extra response headers, e.g. {"Retry-After": "2"}; they replace
                same-named defaults except Content-Length/Transfer-Encoding.
  content_type  overrides the default (application/json or text/event-stream).
  body          string (sent verbatim) or JSON value (serialised). Without
                body/sse/echo/sse_default the default reply body is used with
                this step's status/headers/delay (so {"status":500} returns a
                chat completion with status 500 -- give a body for errors).
  echo          true: reply body = the raw request body (application/json).
  delay         seconds before the status line (also before a close).
  close         true: record the request, then close the socket, no reply.
  sse           list of events streamed instead of a body; each event is
                {"data": str (verbatim) | JSON value, "event": name, "id": id,
                 "delay": seconds before it} or {"raw": exact text} (split
                events, comments, CRLF ...). [DONE] is NOT added automatically.
  sse_default   true: stream the default chat chunks even if the request did
                not ask to; honours include_usage.
  event_delay   seconds before each default chunk (default 0).
  abort_after   N (streams only): once N events are sent, drop the TCP
                connection with no terminating chunk (0 = right after the
                headers). Lists with fewer than N events finish normally.
  hang          seconds of silence: for streamed replies after the last event
                (before the terminating chunk), for plain replies before the
                status line (after delay).
"""
import argparse
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


def usage():
    return {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def new_id():
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def chat_completion(account, model):
    return {"id": new_id(), "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0,
                         "message": {"role": "assistant", "content": "Hello from " + account,
                                     "refusal": None, "annotations": []},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": usage(), "service_tier": "default", "system_fingerprint": "fp_mock"}


def chat_chunks(account, model, include_usage, delay=0):
    """The default streamed reply, as a list of SSE events."""
    base = {"id": new_id(), "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "service_tier": "default", "system_fingerprint": "fp_mock"}

    def chunk(delta, finish=None):
        data = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None,
                                    "finish_reason": finish}])
        if include_usage:
            data["usage"] = None
        return data

    datas = [chunk({"role": "assistant", "content": "", "refusal": None})]
    datas += [chunk({"content": text}) for text in ("Hello", " from", " " + account)]
    datas.append(chunk({}, "stop"))
    if include_usage:
        datas.append(dict(base, choices=[], usage=usage()))
    datas.append("[DONE]")
    return [{"data": d, "delay": delay} for d in datas]


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
    request; the step only matters for sse_default and event_delay."""
    req = req if isinstance(req, dict) else {}
    model = req.get("model") if isinstance(req.get("model"), str) else "mock-model"
    opts = req.get("stream_options")
    include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
    is_chat = endpoint == "chat/completions" and method == "POST"
    if step.get("sse_default") or (is_chat and req.get("stream") is True):
        delay = float(step.get("event_delay") or 0)
        return 200, SSE_TYPE, None, chat_chunks(account, model, include_usage, delay)
    if is_chat:
        return 200, JSON_TYPE, dumps(chat_completion(account, model)), None
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
