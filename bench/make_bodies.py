#!/usr/bin/env python3
"""Generate the request bodies of the benchmark's agent-sized cases.

    bench/make_bodies.py [FIXTURES_DIR]      (python3, standard library only)

Writes, deterministically (same input, same bytes), into bench/bodies/:

  agent-responses.json  the body of a real Codex CLI 0.169 Responses request
                        (FIXTURES_DIR/codex-0.169-tool-followup.json: the
                        developer instructions, environment context, tools
                        incl. a namespace and web_search, a function call and
                        its output), with "model": "bench-model" and
                        "stream": false, padded to about 50 KB with earlier
                        turns (user message, function_call,
                        function_call_output, assistant message) inserted
                        before the last user message.
  agent-chat.json       the same conversation as a Chat Completions request
                        of about 50 KB: the developer instructions as a long
                        system message, user / assistant turns with
                        tool_calls and tool results, and the 12 function
                        tools of the capture (the namespace's tools
                        flattened) in Chat's {"type":"function","function":…}
                        form; "stream": false.
  small-responses.json  {"model":"bench-model","input":"Say hi"}.

The outputs are committed, so bench/run.sh does not need the fixtures; run
this again only to change the bodies. FIXTURES_DIR defaults to
/work/shared/fixtures/requests (the captured requests of the project).
"""
import json
import os
import sys

MODEL = "bench-model"
TARGET = 50 * 1024          # bytes; the bodies end up just above this
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "bodies")


def dump(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def listing(k):
    """A deterministic, code-like tool output of about 1.5 KB for turn k."""
    lines = []
    for i in range(1, 31):
        n = k * 100 + i
        lines.append("%4d\tstatic int parse_field_%d(struct parser *p, const char *s)"
                     " { return p->ops[%d](p, s); }" % (n, n, i % 7))
    return "\n".join(lines) + "\n"


def turn(k):
    """Turn k of the padding: what the user asked, the command the model ran,
    its output, and what the model answered."""
    call_id = "call_bench%04d%016d" % (k, k * 7919)
    cmd = "sed -n %d,%dp src/parser_%d.c" % (k * 100 + 1, k * 100 + 30, k)
    return {
        "user": "Look at src/parser_%d.c and tell me why parse_field_%d returns early "
                "for empty input; keep the answer short." % (k, k * 100 + 3),
        "call_id": call_id,
        "name": "exec_command",
        "arguments": json.dumps({"cmd": cmd, "workdir": "/home/dev/project"},
                                separators=(",", ":")),
        "output": "Chunk ID: %06x\nWall time: 0.0021 seconds\nProcess exited with code 0\n"
                  "Original token count: 412\nOutput:\n%s" % (k * 4099, listing(k)),
        "answer": "parse_field_%d dispatches through p->ops[%d]; for empty input that "
                  "handler returns before touching the cursor, so the caller sees 0 and "
                  "stops. Checking for an empty string in the caller fixes it."
                  % (k * 100 + 3, 3),
    }


def responses_items(t, k):
    return [
        {"type": "message", "id": "msg_bench_u%04d" % k, "role": "user",
         "content": [{"type": "input_text", "text": t["user"]}]},
        {"type": "function_call", "status": "completed", "id": "fc_bench%04d" % k,
         "name": t["name"], "arguments": t["arguments"], "call_id": t["call_id"]},
        {"type": "function_call_output", "id": "fco_bench%04d" % k,
         "call_id": t["call_id"], "output": t["output"]},
        {"type": "message", "id": "msg_bench_a%04d" % k, "role": "assistant",
         "status": "completed",
         "content": [{"type": "output_text", "text": t["answer"], "annotations": []}]},
    ]


def chat_messages(t):
    return [
        {"role": "user", "content": t["user"]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": t["call_id"], "type": "function",
                         "function": {"name": t["name"], "arguments": t["arguments"]}}]},
        {"role": "tool", "tool_call_id": t["call_id"], "content": t["output"]},
        {"role": "assistant", "content": t["answer"]},
    ]


def make_responses(capture):
    body = dict(capture)
    body["model"] = MODEL
    body["stream"] = False
    items = list(capture["input"])
    # insert the padding turns before the last user message ("say hi")
    last_user = max(i for i, it in enumerate(items)
                    if it.get("type") == "message" and it.get("role") == "user")
    k = 1
    while len(dump(body)) < TARGET:
        items[last_user:last_user] = responses_items(turn(k), k)
        last_user += 4
        body["input"] = items
        k += 1
    return body


def make_chat(capture):
    inp = capture["input"]
    system = "\n\n".join(c["text"] for it in inp
                         if it.get("type") == "message" and it.get("role") == "developer"
                         for c in it["content"] if c.get("type") == "input_text")
    env = [c["text"] for it in inp
           if it.get("type") == "message" and it.get("role") == "user"
           for c in it["content"]][0]
    tools = []
    for t in capture["tools"]:
        fns = t["tools"] if t.get("type") == "namespace" else [t]
        for f in fns:
            if f.get("type") == "function":
                tools.append({"type": "function", "function": {
                    "name": f["name"], "description": f["description"],
                    "parameters": f["parameters"], "strict": False}})
    last = [{"role": "user", "content": "say hi"},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_01ee0951e25f2b77776ab091", "type": "function",
                "function": {"name": "exec_command",
                             "arguments": "{\"cmd\":\"echo hi-from-tool\"}"}}]},
            {"role": "tool", "tool_call_id": "call_01ee0951e25f2b77776ab091",
             "content": "Chunk ID: 60ae4c\nWall time: 0.0000 seconds\nProcess exited "
                        "with code 0\nOriginal token count: 4\nOutput:\nhi-from-tool\n"}]
    head = [{"role": "system", "content": system}, {"role": "user", "content": env}]
    turns = []
    body = {}
    k = 1
    while True:
        body = {"model": MODEL, "messages": head + turns + last, "tools": tools,
                "tool_choice": "auto", "parallel_tool_calls": True, "stream": False,
                "max_tokens": 1024}
        if len(dump(body)) >= TARGET:
            break
        turns += chat_messages(turn(k))
        k += 1
    return body


def main():
    fixtures = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/fixtures/requests"
    with open(os.path.join(fixtures, "codex-0.169-tool-followup.json"), encoding="utf-8") as f:
        capture = json.load(f)["body"]
    os.makedirs(OUT, exist_ok=True)
    for name, body in (("agent-responses.json", make_responses(capture)),
                       ("agent-chat.json", make_chat(capture)),
                       ("small-responses.json", {"model": MODEL, "input": "Say hi"})):
        data = dump(body)
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print("%s: %d bytes" % (name, len(data)))


if __name__ == "__main__":
    main()
