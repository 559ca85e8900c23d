"""The streaming chat engine (DESIGN §4, §8) against a real server with the fake backend."""
from __future__ import annotations

import json
import threading

import requests

from api.journal import read_journal

from .helpers import fake_script, read_sse, stream_events, tokens_of, wait_until


def _saved(server, sid) -> list[dict]:
    return server.session(sid)["messages"]


def _wait_idle(server, sid):
    return wait_until(lambda: not server.get("/api/session/status", params={"session_id": sid}).json()["streaming"],
                      message="the turn to end")


def test_plain_message_is_echoed_word_by_word_and_saved(live_server):
    sid = live_server.new_session()
    stream_id = live_server.start_chat(sid, "hello brave new world")
    events = stream_events(live_server, stream_id)
    tokens = [e["data"]["text"] for e in events if e["event"] == "token"]
    assert tokens == ["echo:", " hello", " brave", " new", " world"]
    assert [e["event"] for e in events][-2:] == ["done", "stream_end"]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    msgs = _saved(live_server, sid)
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[0]["content"] == "hello brave new world"
    assert msgs[1]["content"] == "".join(tokens) and msgs[1]["status"] == "complete"
    assert live_server.session(sid, messages=0)["title"] == "hello brave new world"


def test_script_with_reasoning_and_tools_streams_in_order_and_saves_tool_calls(live_server):
    sid = live_server.new_session()
    script = fake_script(tokens=4, reasoning="thinking hard",
                         tools=[{"name": "search", "args": {"q": "x"}, "result": "found", "duration_ms": 5}])
    events = stream_events(live_server, live_server.start_chat(sid, script))
    names = [e["event"] for e in events]
    assert names == ["reasoning", "token", "token", "tool", "tool_complete", "token", "token", "done", "stream_end"]
    tool_done = events[4]["data"]
    assert tool_done["name"] == "search" and tool_done["result"] == "found" and tool_done["is_error"] is False
    reply = _saved(live_server, sid)[-1]
    assert reply["content"] == "t0 t1 t2 t3 " == tokens_of(events)
    assert reply["reasoning"] == "thinking hard"
    assert reply["tool_calls"][0]["name"] == "search" and reply["tool_calls"][0]["result"] == "found"


def test_sse_headers_and_heartbeats(live_server):
    sid = live_server.new_session()
    stream_id = live_server.start_chat(sid, fake_script(tokens=2, pause_ms=2500))
    with requests.get(live_server.url("/api/chat/stream"), params={"stream_id": stream_id}, stream=True,
                      timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        assert r.headers["Cache-Control"] == "no-cache" and r.headers["X-Accel-Buffering"] == "no"
        assert "Content-Length" not in r.headers
        lines = [line for line in r.iter_lines(decode_unicode=True)]
    assert ": ping" in lines  # the pause is filled with heartbeats (server runs with 1 s heartbeat)
    assert "event: stream_end" in lines


def test_reconnect_replays_missed_events_once_in_order(live_server):
    sid = live_server.new_session()
    stream_id = live_server.start_chat(sid, fake_script(tokens=40, delay_ms=10))
    first = stream_events(live_server, stream_id, stop_after=7)
    k = first[-1]["id"]
    rest = stream_events(live_server, stream_id, last_event_id=k)
    assert [e["id"] for e in rest] == list(range(k + 1, k + 1 + len(rest)))
    everything = first + rest
    assert tokens_of(everything) == "".join(f"t{i} " for i in range(40))
    assert _saved(live_server, sid)[-1]["content"] == tokens_of(everything)
    via_query = stream_events(live_server, stream_id, after=k)
    assert via_query == rest


def test_two_subscribers_see_identical_streams(live_server):
    sid = live_server.new_session()
    stream_id = live_server.start_chat(sid, fake_script(tokens=30, delay_ms=5))
    results = [None, None]

    def follow(i):
        results[i] = stream_events(live_server, stream_id)

    threads = [threading.Thread(target=follow, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert results[0] == results[1] and results[0][-1]["event"] == "stream_end"


def test_ten_concurrent_starts_make_exactly_one_stream(live_server):
    sid = live_server.new_session()
    barrier = threading.Barrier(10)
    codes = []

    def start():
        barrier.wait()
        r = requests.post(live_server.url("/api/chat/start"),
                          json={"session_id": sid, "message": fake_script(tokens=5, hang=True)}, timeout=30)
        codes.append(r.status_code)
        if r.status_code == 200:
            started.append(r.json()["stream_id"])

    started = []
    threads = [threading.Thread(target=start) for _ in range(10)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    # the turn hangs until cancelled, so on a slow machine it cannot end before the last start
    assert sorted(codes) == [200] + [409] * 9
    assert live_server.post("/api/chat/cancel", {"stream_id": started[0]}).ok
    _wait_idle(live_server, sid)
    assert [m["role"] for m in _saved(live_server, sid)] == ["user", "assistant"]


def test_backend_error_becomes_apperror_and_keeps_the_users_message(live_server):
    sid = live_server.new_session()
    events = stream_events(live_server, live_server.start_chat(sid, fake_script(tokens=2, error="model exploded")))
    err = [e for e in events if e["event"] == "apperror"]
    assert err and err[0]["data"] == {"message": "model exploded", "type": "fake_error"}
    user, reply = _saved(live_server, sid)
    assert user["role"] == "user" and "model exploded" in reply["error"] and reply["status"] == "error"
    assert reply["content"] == "t0 t1 "


def test_cancel_keeps_partial_reply_frees_session_and_is_idempotent(live_server):
    sid = live_server.new_session()
    stream_id = live_server.start_chat(sid, fake_script(tokens=4, reasoning="hmm",
                                                        tools=[{"name": "t", "result": "r"}], hang=True))
    with requests.get(live_server.url("/api/chat/stream"), params={"stream_id": stream_id}, stream=True,
                      timeout=30) as r:
        seen = read_sse(r, stop_after=7)  # reasoning, 2 tokens, tool, tool_complete, 2 tokens, then it hangs
        assert live_server.post("/api/chat/cancel", {"stream_id": stream_id}).json() == {"ok": True, "cancelled": True}
        tail = read_sse(r)
    events = seen + tail
    assert [e["event"] for e in events][-2:] == ["cancel", "stream_end"]
    reply = _saved(live_server, sid)[-1]
    assert reply["status"] == "cancelled" and reply["content"] == tokens_of(events) == "t0 t1 t2 t3 "
    assert reply["reasoning"] == "hmm" and reply["tool_calls"][0]["result"] == "r"
    status = live_server.get("/api/session/status", params={"session_id": sid}).json()
    assert status["streaming"] is False and status["active_stream_id"] is None
    assert live_server.post("/api/chat/cancel", {"stream_id": stream_id}).json() == {"ok": True, "cancelled": False}
    assert live_server.post("/api/chat/cancel", {"stream_id": "never-was"}).json()["cancelled"] is False
    # the session is free at once, and the cancelled worker's late result never overwrites the next turn
    next_stream = live_server.start_chat(sid, "after cancel")
    stream_events(live_server, next_stream)
    msgs = _saved(live_server, sid)
    assert [m["content"] for m in msgs] == [msgs[0]["content"], "t0 t1 t2 t3 ", "after cancel", "echo: after cancel"]


def test_stream_status_and_unknown_streams(live_server):
    sid = live_server.new_session()
    stream_id = live_server.start_chat(sid, fake_script(tokens=1, hang=True))
    st = wait_until(lambda: (s := live_server.get("/api/chat/stream/status", params={"stream_id": stream_id}).json())
                    ["last_seq"] >= 1 and s)
    assert st["active"] is True and st["stream_id"] == stream_id
    live_server.post("/api/chat/cancel", {"stream_id": stream_id})
    after = live_server.get("/api/chat/stream/status", params={"stream_id": stream_id}).json()
    assert after["active"] is False and after["last_seq"] == st["last_seq"] + 2  # cancel, stream_end
    # a finished stream stays replayable
    assert [e["event"] for e in stream_events(live_server, stream_id)][-1] == "stream_end"
    assert live_server.get("/api/chat/stream", params={"stream_id": "nope"}).status_code == 404
    assert live_server.get("/api/chat/stream/status", params={"stream_id": "nope"}).status_code == 404


def test_stale_expected_message_count_is_409(live_server):
    sid = live_server.new_session()
    stream_events(live_server, live_server.start_chat(sid, "one"))
    r = live_server.post("/api/chat/start", {"session_id": sid, "message": "two", "expected_message_count": 0})
    assert r.status_code == 409
    assert len(_saved(live_server, sid)) == 2
    ok = live_server.post("/api/chat/start", {"session_id": sid, "message": "two", "expected_message_count": 2})
    assert ok.status_code == 200


def test_kill_mid_turn_then_restart_keeps_message_and_partial_reply(make_server):
    server = make_server(args=("--checkpoint-seconds", "0.05")).start()
    sid = server.new_session()
    stream_id = server.start_chat(sid, fake_script(tokens=6, delay_ms=30, hang=True))
    seen = stream_events(server, stream_id, stop_after=6)
    assert tokens_of(seen) == "t0 t1 t2 t3 t4 t5 "
    path = server.sessions_dir / f"{sid}.json"
    journal = server.sessions_dir / f"{sid}.turn.jsonl"
    wait_until(lambda: getattr(read_journal(journal), "content", None) == "t0 t1 t2 t3 t4 t5 ",
               message="the checkpoint in the turn journal")
    updated_at = json.loads(path.read_bytes())["updated_at"]
    server.kill()
    server.start()
    assert server.get("/health").json()["active_streams"] == 0
    status = server.get("/api/session/status", params={"session_id": sid}).json()
    assert status["streaming"] is False and status["active_stream_id"] is None
    user, partial = server.session(sid)["messages"]
    assert user["content"].startswith('{"fake"') and user["status"] == "interrupted"
    assert partial["content"] == "t0 t1 t2 t3 t4 t5 " and partial["status"] == "interrupted"
    assert json.loads(path.read_bytes())["updated_at"] == updated_at  # cleanup does not bump updated_at
    assert not list(server.sessions_dir.glob("*.tmp.*")) and not journal.exists()
    events = stream_events(server, server.start_chat(sid, "continue"))
    assert tokens_of(events) == "echo: continue"
    assert len(server.session(sid)["messages"]) == 4


def test_resuming_past_the_end_of_a_finished_stream_still_gets_stream_end(live_server):
    sid = live_server.new_session()
    stream_id = live_server.start_chat(sid, "short")
    events = stream_events(live_server, stream_id)
    last = events[-1]["id"]
    again = stream_events(live_server, stream_id, last_event_id=9999)
    assert [(e["id"], e["event"]) for e in again] == [(last, "stream_end")]
    bad = requests.get(live_server.url("/api/chat/stream"), params={"stream_id": stream_id},
                       headers={"Last-Event-ID": "abc"}, timeout=10)
    assert bad.status_code == 400 and "error" in bad.json()


def test_a_clean_stop_saves_the_running_turn_as_interrupted(make_server):
    server = make_server().start()
    sid = server.new_session()
    stream_id = server.start_chat(sid, fake_script(tokens=3, hang=True))
    with requests.get(server.url("/api/chat/stream"), params={"stream_id": stream_id}, stream=True,
                      timeout=30) as r:
        seen = read_sse(r, stop_after=3)
        assert server.stop() == 0  # SIGTERM
        tail = read_sse(r)
    assert tail[-1]["event"] == "stream_end" and tail[-1]["data"]["status"] == "interrupted"
    on_disk = json.loads((server.sessions_dir / f"{sid}.json").read_bytes())
    assert on_disk["active_stream_id"] is None
    user, reply = on_disk["messages"]
    assert reply["status"] == "interrupted" and reply["content"] == tokens_of(seen + tail) == "t0 t1 t2 "
