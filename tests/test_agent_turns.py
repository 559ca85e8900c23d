"""Models, usage and truncated replies (DESIGN §7 "Agent control…", §8) over HTTP."""
from __future__ import annotations

from api.journal import read_journal

from .helpers import fake_script, stream_events, tokens_of, wait_until


def _files(server, sid) -> dict:
    return {p.name: p.read_bytes() for p in server.sessions_dir.iterdir() if p.name.startswith(sid)}


# ---------------------------------------------------------------- models


def test_models_lists_the_fake_models_with_their_shape(live_server):
    body = live_server.get("/api/models").json()
    assert body["default"] == "fake-echo"
    assert [m["id"] for m in body["models"]] == ["fake-echo", "fake-echo-2"]
    for m in body["models"]:
        assert m["backend"] == "fake" and m["vision"] is False and isinstance(m["label"], str)


def test_a_turn_runs_on_the_chosen_model_without_changing_the_sessions_default(live_server):
    sid = live_server.new_session()
    events = stream_events(live_server, live_server.start_chat(sid, "hi", model="fake-echo-2"))
    assert tokens_of(events) == "echo: hi"
    reply = live_server.session(sid)["messages"][-1]
    assert reply["model"] == "fake-echo-2"
    assert live_server.session(sid, messages=0)["model"] is None
    stream_events(live_server, live_server.start_chat(sid, "again"))
    assert live_server.session(sid)["messages"][-1]["model"] == "fake-echo"


def test_an_unknown_model_is_refused_and_nothing_is_stored(live_server):
    sid = live_server.new_session()
    before = _files(live_server, sid)
    r = live_server.post("/api/chat/start", {"session_id": sid, "message": "hi", "model": "gpt-9"})
    assert r.status_code == 400 and "gpt-9" in r.json()["error"] and "fake-echo" in r.json()["error"]
    assert _files(live_server, sid) == before
    assert live_server.post("/api/session/model", {"session_id": sid, "model": "gpt-9"}).status_code == 400
    assert live_server.post("/api/session/model", {"session_id": sid}).status_code == 400
    assert _files(live_server, sid) == before


def test_the_sessions_default_model_is_used_by_later_turns(live_server):
    sid = live_server.new_session()
    r = live_server.post("/api/session/model", {"session_id": sid, "model": "fake-echo-2"})
    assert r.status_code == 200 and r.json()["session"]["model"] == "fake-echo-2"
    stream_events(live_server, live_server.start_chat(sid, "hi"))
    assert live_server.session(sid)["messages"][-1]["model"] == "fake-echo-2"
    assert live_server.post("/api/session/model", {"session_id": "nope", "model": "fake-echo"}).status_code == 404


# ---------------------------------------------------------------- usage


def test_usage_is_stored_per_reply_and_summed_for_the_session(live_server):
    sid = live_server.new_session()
    events = stream_events(live_server, live_server.start_chat(sid, "one two three"))
    done = next(e["data"] for e in events if e["event"] == "done")
    first = {"prompt_tokens": 3, "completion_tokens": 4}
    assert done["usage"] == first
    assert live_server.session(sid)["messages"][-1]["usage"] == first
    script = fake_script(tokens=3)
    events = stream_events(live_server, live_server.start_chat(sid, script))
    # history: "one two three" (3 words) + "echo: one two three" (4 words) + the script's words
    second = {"prompt_tokens": 7 + len(script.split()), "completion_tokens": 3}
    assert next(e["data"] for e in events if e["event"] == "done")["usage"] == second
    session = live_server.session(sid)
    assert session["messages"][-1]["usage"] == second
    assert session["usage"] == {"prompt_tokens": 3 + second["prompt_tokens"], "completion_tokens": 7}
    assert live_server.session(sid, messages=0)["usage"] == session["usage"]


# ---------------------------------------------------------------- truncated replies


def test_a_reply_cut_by_the_token_limit_is_saved_truncated_and_continued_in_place(live_server):
    sid = live_server.new_session()
    events = stream_events(live_server, live_server.start_chat(sid, fake_script(tokens=3, finish="length")))
    assert events[-1]["data"]["status"] == "truncated"
    reply = live_server.session(sid)["messages"][-1]
    assert reply["status"] == "truncated" and reply["content"] == "t0 t1 t2 "
    r = live_server.post("/api/session/continue", {"session_id": sid})
    assert r.status_code == 200, r.text
    more = stream_events(live_server, r.json()["stream_id"])
    assert tokens_of(more) == "t0 t1 t2 "                         # the stream carries the appended part
    msgs = live_server.session(sid)["messages"]
    assert len(msgs) == 2 and [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[-1]["content"] == "t0 t1 t2 t0 t1 t2 " and msgs[-1]["status"] == "truncated"
    assert msgs[-1]["usage"]["completion_tokens"] == 6
    assert live_server.session(sid, messages=0)["message_count"] == 2


def test_continue_refuses_when_there_is_nothing_to_continue(live_server):
    sid = live_server.new_session()
    assert live_server.post("/api/session/continue", {"session_id": sid}).status_code == 409
    stream_events(live_server, live_server.start_chat(sid, "done already"))
    before = _files(live_server, sid)
    r = live_server.post("/api/session/continue", {"session_id": sid})
    assert r.status_code == 409 and "complete" in r.json()["error"]
    assert live_server.post("/api/session/continue", {}).status_code == 400
    assert live_server.post("/api/session/continue", {"session_id": "missing"}).status_code == 404
    assert _files(live_server, sid) == before


def _wait_journal_text(server, sid):
    return wait_until(lambda: (p := read_journal(server.sessions_dir / f"{sid}.turn.jsonl")) and p.content,
                      message="a checkpoint with text")


def test_an_interrupted_reply_is_continued_after_a_restart(make_server):
    server = make_server(args=("--checkpoint-seconds", "0.05")).start()
    sid = server.new_session()
    stream_id = server.start_chat(sid, fake_script(tokens=4, delay_ms=150))
    stream_events(server, stream_id, stop_after=1)
    partial = _wait_journal_text(server, sid)
    server.kill()
    server.start()
    reply = server.session(sid)["messages"][-1]
    assert reply["status"] == "interrupted" and reply["content"] == partial
    r = server.post("/api/session/continue", {"session_id": sid})
    assert r.status_code == 200, r.text
    assert tokens_of(stream_events(server, r.json()["stream_id"])) == "t0 t1 t2 t3 "
    msgs = server.session(sid)["messages"]
    assert len(msgs) == 2 and msgs[-1]["content"] == partial + "t0 t1 t2 t3 " and msgs[-1]["status"] == "complete"


def test_a_crash_during_continue_keeps_the_old_text_and_what_streamed(make_server):
    server = make_server(args=("--checkpoint-seconds", "0.05")).start()
    sid = server.new_session()
    stream_events(server, server.start_chat(sid, fake_script(tokens=6, delay_ms=150, finish="length")))
    old = server.session(sid)["messages"][-1]["content"]
    assert old == "t0 t1 t2 t3 t4 t5 "
    stream_id = server.post("/api/session/continue", {"session_id": sid}).json()["stream_id"]
    status = server.get("/api/session/status", params={"session_id": sid}).json()
    assert status["streaming"] is True and status["pending_user_message"] is None
    stream_events(server, stream_id, stop_after=1)
    partial = _wait_journal_text(server, sid)
    server.kill()
    server.start()
    msgs = server.session(sid)["messages"]
    assert len(msgs) == 2 and msgs[0].get("status") != "interrupted"
    assert msgs[-1]["content"] == old + partial and msgs[-1]["status"] == "interrupted"
    assert not (server.sessions_dir / f"{sid}.turn.jsonl").exists()
    assert server.get("/api/session/status", params={"session_id": sid}).json()["streaming"] is False


def test_cancelling_a_continue_keeps_both_parts_marked_cancelled(live_server):
    sid = live_server.new_session()
    stream_events(live_server, live_server.start_chat(sid, fake_script(tokens=4, delay_ms=100, finish="length")))
    stream_id = live_server.post("/api/session/continue", {"session_id": sid}).json()["stream_id"]
    assert tokens_of(stream_events(live_server, stream_id, stop_after=1)) == "t0 "
    assert live_server.post("/api/chat/cancel", {"stream_id": stream_id}).json()["cancelled"] is True
    events = stream_events(live_server, stream_id)
    assert events[-1]["data"]["status"] == "cancelled"
    reply = live_server.session(sid)["messages"][-1]
    assert reply["content"] == "t0 t1 t2 t3 " + tokens_of(events) and reply["status"] == "cancelled"
    assert live_server.session(sid, messages=0)["message_count"] == 2
