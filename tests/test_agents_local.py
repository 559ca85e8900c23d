"""The ``local`` backend (DESIGN §5, issue 5): the embedded SmolLM2 model, end to end.

Every test runs a real server (``--agent local``) and a real model; replies are capped
with ``--max-tokens`` to keep the wall time small.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import stat
import time
from pathlib import Path

import pytest

from .helpers import stream_events, tokens_of, wait_until

if importlib.util.find_spec("xllamacpp") is None:
    pytest.skip("the local backend needs: pip install 'hermes-webui[local]'", allow_module_level=True)

MODEL_ID = "SmolLM2-135M-Instruct.Q4_1"
LOADING = "loading model…"
WAITING = "waiting for another reply to finish…"
LONG_PROMPT = "Write a very long story about a dragon, a knight and a castle, with many details."


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    from .helpers import LiveServer

    server = LiveServer(tmp_path_factory.mktemp("local"), agent="local",
                        args=("--max-tokens", "24", "--context-size", "1024")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def long_server(tmp_path_factory):
    """A server whose replies may run long (400 tokens), for waiting and cancelling."""
    from .helpers import LiveServer

    server = LiveServer(tmp_path_factory.mktemp("long"), agent="local", args=("--max-tokens", "400")).start()
    yield server
    server.stop()


def next_events(server, stream_id: str, after: int, count: int = 1) -> list[dict]:
    """The next ``count`` events of a stream after event id ``after`` (resuming by id)."""
    return stream_events(server, stream_id, after=after, stop_after=count)


def events_until(server, stream_id: str, predicate) -> list[dict]:
    """Events of a stream from the start up to and including the first matching one."""
    seen: list[dict] = []
    while not seen or not predicate(seen[-1]):
        batch = next_events(server, stream_id, seen[-1]["id"] if seen else 0)
        assert batch, "stream ended early"
        seen += batch
        assert seen[-1]["event"] != "stream_end" or predicate(seen[-1]), f"stream ended: {seen}"
    return seen


def test_first_turn_loads_the_model_and_streams_a_real_reply_saved_as_streamed(make_server):
    server = make_server(agent="local", args=("--max-tokens", "24", "--context-size", "1024")).start()
    sid = server.new_session()
    events = stream_events(server, server.start_chat(sid, "What is the capital of France?"))
    names = [e["event"] for e in events]
    assert events[0] == {"id": 1, "event": "status", "data": {"text": LOADING}}
    assert names[-2:] == ["done", "stream_end"] and "apperror" not in names
    text = tokens_of(events)
    assert text.strip(), "the model produced no text"
    assert 1 <= names.count("token") <= 24                      # --max-tokens caps the reply
    reply = server.session(sid)["messages"][-1]
    usage = events[-2]["data"]["usage"]
    assert usage["completion_tokens"] == names.count("token") and usage["prompt_tokens"] > 0
    cut = usage["completion_tokens"] >= 24                      # stopped by --max-tokens, not by the model
    assert reply["role"] == "assistant" and reply["status"] == ("truncated" if cut else "complete")
    assert reply["content"] == text and reply["model"] == MODEL_ID and reply["usage"] == usage


def test_later_turns_reuse_the_loaded_model_and_see_the_history(local_server):
    sid = local_server.new_session()
    stream_events(local_server, local_server.start_chat(sid, "My name is Ada."))
    events = stream_events(local_server, local_server.start_chat(sid, "What is my name?"))
    assert {"text": LOADING} not in [e["data"] for e in events if e["event"] == "status"]
    assert tokens_of(events).strip()
    done = [e for e in events if e["event"] == "done"][0]
    # the prompt holds both turns: more tokens than the question alone
    assert done["data"]["usage"]["prompt_tokens"] > 40
    msgs = local_server.session(sid)["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process ``pid`` holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def listening_tcp_ports(pid: int) -> set[int]:
    """TCP ports (IPv4 and IPv6) on which process ``pid`` listens, from /proc/net/tcp{,6}."""
    inodes, ports = socket_inodes(pid), set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:          # 0A: LISTEN
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def unix_socket_paths(pid: int) -> set[str]:
    """Filesystem paths of the Unix sockets process ``pid`` has bound, from /proc/net/unix."""
    inodes, paths = socket_inodes(pid), set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 8 and cols[6] in inodes and cols[7].startswith("/"):
            paths.add(cols[7])
    return paths


def raw_request(path: str, method: str, route: str, body: dict | None = None) -> tuple[int, bytes]:
    """One HTTP/1.1 request over the Unix socket at ``path``, no credentials: (status, body)."""
    data = json.dumps(body).encode() if body is not None else b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(path)
        conn.sendall(f"{method} {route} HTTP/1.1\r\nHost: localhost\r\nOrigin: https://evil.example\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                     "Connection: close\r\n\r\n".encode() + data)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, rest = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net")
def test_the_engine_opens_no_tcp_port_and_its_private_socket_refuses_requests_without_the_key(make_server):
    server = make_server(agent="local", args=("--max-tokens", "4", "--context-size", "512")).start()
    pid = server.proc.pid
    assert listening_tcp_ports(pid) == {server.port}
    assert unix_socket_paths(pid) == set()
    r = server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    assert r.status_code == 200, r.text                          # the model is loaded now
    # llama.cpp's HTTP listener (xllamacpp starts one with every model) is not on TCP …
    assert listening_tcp_ports(pid) == {server.port}
    # … but on a Unix socket in a directory only this user may enter …
    [path] = unix_socket_paths(pid)
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    # … that answers nothing of substance without the key that only the app holds
    for method, route, body in (("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]}),
                                ("POST", "/completion", {"prompt": "Hi", "n_predict": 2}),
                                ("POST", "/tokenize", {"content": "Hi"}), ("GET", "/props", None),
                                ("GET", "/slots", None), ("GET", "/metrics", None)):
        status, reply = raw_request(path, method, route, body)
        assert status in (401, 404, 501), (route, status, reply)
    status, _ = raw_request(path, "GET", "/", None)
    assert status == 404                                         # no web UI either
    assert server.stop() == 0


def test_a_stop_after_a_reply_exits_cleanly_and_removes_the_engine_folder(make_server):
    """Ctrl-C or SIGTERM after a local reply: exit code 0, not a segmentation fault or abort
    (llama.cpp's threads outliving the interpreter's teardown did that about every second
    stop), and the engine's private socket folder is gone. Several rounds, since it was random."""
    for _ in range(3):
        server = make_server(agent="local", args=("--max-tokens", "4", "--context-size", "512")).start()
        stream_events(server, server.start_chat(server.new_session(), "Hi"))
        [path] = unix_socket_paths(server.proc.pid)
        assert server.stop() == 0, server.log_text()[-2000:]
        assert not os.path.exists(os.path.dirname(path))


def test_a_long_paste_says_it_is_being_read_until_the_first_token(local_server):
    """A prompt that takes a while to evaluate (a pasted log: the model loaded long ago)
    is announced with its size, not left under "loading model…"."""
    log = "".join(f"2026-12-01T00:{i % 60:02d}:00Z ERROR [pid 4004] db timeout ❌ 用户 {i} 登录失败\n" for i in range(12))
    sid = local_server.new_session()
    events = stream_events(local_server, local_server.start_chat(sid, "What went wrong?\n\n" + log))
    names = [e["event"] for e in events]
    prompt_tokens = [e for e in events if e["event"] == "done"][0]["data"]["usage"]["prompt_tokens"]
    assert prompt_tokens >= 512
    reading = {"text": f"reading the conversation ({prompt_tokens:,} tokens)…"}
    said = [i for i, e in enumerate(events) if e["event"] == "status" and e["data"] == reading]
    assert said and said[0] < names.index("token")                 # said before the reply starts
    short = stream_events(local_server, local_server.start_chat(local_server.new_session(), "Hi"))
    assert not any(e["event"] == "status" and "reading" in e["data"]["text"] for e in short)


def test_a_message_longer_than_the_context_says_the_model_reads_only_its_end(local_server):
    """The page must not let a person believe the model read the whole of a paste it could
    not: a single message over the context window is cut from its start, and said so."""
    log = "".join(f"2026-12-01T00:{i % 60:02d}:00Z ERROR [pid 4004] db timeout ❌ 用户 {i} 登录失败\n" for i in range(400))
    events = stream_events(local_server, local_server.start_chat(local_server.new_session(), "Why?\n\n" + log))
    names = [e["event"] for e in events]
    cut = {"text": "this message is longer than the model can read at once (1,024 tokens): it reads only the end…"}
    said = [i for i, e in enumerate(events) if e["event"] == "status" and e["data"] == cut]
    assert said and said[0] < names.index("token")
    fits = stream_events(local_server, local_server.start_chat(local_server.new_session(), "Hi"))
    assert not any(e["event"] == "status" and "reads only the end" in e["data"]["text"] for e in fits)


def test_health_names_the_local_backend_and_its_model(local_server):
    body = local_server.get("/health").json()
    assert body["agent"] == "local" and body["model"] == MODEL_ID


def test_a_second_turn_waits_its_turn_and_says_so(long_server):
    a, b = long_server.new_session(), long_server.new_session()
    first = long_server.start_chat(a, LONG_PROMPT)
    seen_a = events_until(long_server, first, lambda e: e["event"] == "token")
    second = long_server.start_chat(b, "Say hello.")
    assert next_events(long_server, second, 0)[0]["data"] == {"text": WAITING}
    assert long_server.post("/api/chat/cancel", {"stream_id": first}).json()["cancelled"] is True
    events_b = stream_events(long_server, second)
    assert tokens_of(events_b).strip() and events_b[-2]["event"] == "done"
    rest_a = stream_events(long_server, first, after=seen_a[-1]["id"])
    cancelled = long_server.session(a)["messages"][-1]
    assert cancelled["status"] == "cancelled"
    assert cancelled["content"] == tokens_of(seen_a + rest_a)


def one_token_latency(server, prompt: str = "Hi") -> float:
    """Seconds for a one-token /v1 completion (it waits for the model to be free)."""
    started = time.monotonic()
    r = server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}], "max_tokens": 1})
    assert r.status_code == 200, r.text
    return time.monotonic() - started


def test_cancel_stops_the_generation_and_frees_the_model_at_once(long_server):
    one_token_latency(long_server, "Good morning")      # loaded, and not the prompt measured next
    idle = one_token_latency(long_server)
    sid = long_server.new_session()
    stream_id = long_server.start_chat(sid, LONG_PROMPT)
    seen = events_until(long_server, stream_id, lambda e: e["event"] == "token" and e["id"] >= 4)
    assert long_server.post("/api/chat/cancel", {"stream_id": stream_id}).json()["cancelled"] is True
    # Free again within a token or so: the one-token request is not stuck behind the
    # ~400 tokens the cancelled reply could still have produced.
    after_cancel = one_token_latency(long_server)
    assert after_cancel < 3 * idle + 1.0, (after_cancel, idle)
    rest = stream_events(long_server, stream_id, after=seen[-1]["id"])
    assert [e["event"] for e in rest if e["event"] != "token"] == ["cancel", "stream_end"]
    reply = long_server.session(sid)["messages"][-1]
    assert reply["status"] == "cancelled" and reply["content"] == tokens_of(seen + rest)


def test_model_path_loads_another_gguf_file(make_server, tmp_path):
    from api.agents.local import bundled_model_path

    other = tmp_path / "my-other-model.gguf"
    shutil.copyfile(bundled_model_path(), other)
    server = make_server(agent="local", args=("--model-path", str(other), "--max-tokens", "8")).start()
    assert server.get("/health").json()["model"] == "my-other-model"
    sid = server.new_session()
    events = stream_events(server, server.start_chat(sid, "Hello"))
    assert tokens_of(events).strip()
    assert server.session(sid)["messages"][-1]["model"] == "my-other-model"


def test_missing_model_file_fails_the_turn_clearly_and_keeps_the_message(make_server, tmp_path):
    missing = tmp_path / "nope.gguf"
    server = make_server(agent="local", args=("--model-path", str(missing))).start()
    sid = server.new_session()
    events = stream_events(server, server.start_chat(sid, "are you there?"))
    err = [e["data"] for e in events if e["event"] == "apperror"][0]
    assert err["type"] == "not_found" and str(missing) in err["message"]
    msgs = server.session(sid)["messages"]
    assert msgs[0] == {**msgs[0], "role": "user", "content": "are you there?"}
    assert msgs[1]["status"] == "error"
    wait_until(lambda: not server.get("/api/session/status", params={"session_id": sid}).json()["streaming"])


def test_a_reply_cut_at_max_tokens_is_truncated_and_continue_extends_it(make_server):
    server = make_server(agent="local", args=("--max-tokens", "4", "--context-size", "1024")).start()
    sid = server.new_session()
    first = tokens_of(stream_events(server, server.start_chat(sid, "Write a long story about a cat.")))
    reply = server.session(sid)["messages"][-1]
    assert reply["status"] == "truncated" and reply["content"] == first
    r = server.post("/api/session/continue", {"session_id": sid})
    assert r.status_code == 200, r.text
    more = tokens_of(stream_events(server, r.json()["stream_id"]))
    msgs = server.session(sid)["messages"]
    assert len(msgs) == 2 and msgs[-1]["content"] == first + more and more
