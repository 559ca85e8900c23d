"""The ``openai`` backend against a scripted OpenAI-compatible server the test runs."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .helpers import LiveServer, stream_events, tokens_of


class ScriptedOpenAI(BaseHTTPRequestHandler):
    """Streams a reply chosen by the last user message: ``ok`` → 3 chunks with reasoning;
    ``midfail`` → 2 chunks then an error event; ``e401``/``e404``/``e429`` → that status."""

    requests_seen: list = []

    @classmethod
    def last_turn(cls) -> dict:
        """The newest streamed request: a turn's. A generated title's request (not streamed,
        sent on its own thread after a chat's first reply) may come later and is left out."""
        return [r for r in cls.requests_seen if r.get("stream")][-1]

    def log_message(self, *args):
        pass

    def _json(self, status: int, body: dict):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, delta: dict) -> bytes:
        body = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "scripted",
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        return f"data: {json.dumps(body)}\n\n".encode()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ScriptedOpenAI.requests_seen.append(body)
        last = body["messages"][-1]["content"]
        if last.startswith("e4"):
            code = int(last[1:])
            return self._json(code, {"error": {"message": f"scripted {code}", "type": "x", "code": code}})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if last == "midfail":
            self.wfile.write(self._chunk({"role": "assistant", "content": "par"}) + self._chunk({"content": "tial"}))
            self.wfile.write(b'data: {"error": {"message": "upstream overloaded", "type": "server_error"}}\n\n')
            return
        out = self._chunk({"role": "assistant", "reasoning_content": "let me think"})
        for piece in ("Hello", ", ", "world"):
            out += self._chunk({"content": piece})
        self.wfile.write(out + b"data: [DONE]\n\n")


@pytest.fixture(scope="module")
def scripted():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedOpenAI)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory, scripted):
    server = LiveServer(tmp_path_factory.mktemp("openai"), agent="openai",
                        args=("--base-url", scripted, "--model", "scripted", "--api-key", "sk-test")).start()
    yield server
    server.stop()


def test_streams_tokens_and_reasoning_and_sends_history(openai_server):
    sid = openai_server.new_session()
    events = stream_events(openai_server, openai_server.start_chat(sid, "ok"))
    assert tokens_of(events) == "Hello, world"
    assert [e["data"]["text"] for e in events if e["event"] == "reasoning"] == ["let me think"]
    reply = openai_server.session(sid)["messages"][-1]
    assert reply["content"] == "Hello, world" and reply["reasoning"] == "let me think"
    stream_events(openai_server, openai_server.start_chat(sid, "ok"))
    sent = ScriptedOpenAI.last_turn()
    assert sent["model"] == "scripted" and sent["stream"] is True
    assert sent["messages"] == [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "Hello, world"},
                                {"role": "user", "content": "ok"}]


def test_mid_stream_provider_error_keeps_partial_reply_and_users_message(openai_server):
    sid = openai_server.new_session()
    events = stream_events(openai_server, openai_server.start_chat(sid, "midfail"))
    assert tokens_of(events) == "partial"
    err = [e["data"] for e in events if e["event"] == "apperror"]
    assert err and err[0]["type"] == "provider_error" and "upstream overloaded" in err[0]["message"]
    user, reply = openai_server.session(sid)["messages"]
    assert user["content"] == "midfail" and reply["status"] == "error" and reply["content"] == "partial"


@pytest.mark.parametrize("message,kind", [("e401", "auth"), ("e404", "not_found"), ("e429", "rate_limit")])
def test_provider_errors_map_to_apperror_types(openai_server, message, kind):
    sid = openai_server.new_session()
    events = stream_events(openai_server, openai_server.start_chat(sid, message))
    assert [e["data"]["type"] for e in events if e["event"] == "apperror"] == [kind]
    assert openai_server.session(sid)["messages"][0]["content"] == message


def test_unreachable_endpoint_is_a_connection_error(make_server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    server = make_server(agent="openai", args=("--base-url", f"http://127.0.0.1:{port}/v1")).start()
    sid = server.new_session()
    events = stream_events(server, server.start_chat(sid, "anyone there?"))
    assert [e["data"]["type"] for e in events if e["event"] == "apperror"] == ["connection"]
