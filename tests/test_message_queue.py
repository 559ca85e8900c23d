"""Messages sent while the agent works are queued, shown, editable, and run next (issue 15, item 7)."""
from __future__ import annotations

import json

from .helpers import fake_script, stream_events, wait_until


def _queue(server, sid) -> list[dict]:
    r = server.get("/api/chat/queue", params={"session_id": sid})
    assert r.status_code == 200, r.text
    return r.json()["queued"]


def _contents(server, sid) -> list[str]:
    return [m["content"] for m in server.session(sid)["messages"]]


def _idle_with(server, sid, count):
    def check():
        st = server.get("/api/session/status", params={"session_id": sid}).json()
        return not st["streaming"] and st["message_count"] == count
    wait_until(check, timeout=15, message=f"{count} messages and no turn running")


def test_a_message_sent_during_a_turn_waits_then_runs_next(live_server):
    sid = live_server.new_session()
    first = live_server.start_chat(sid, fake_script(tokens=3, delay_ms=150))
    r = live_server.post("/api/chat/queue", {"session_id": sid, "message": "and then this"})
    assert r.status_code == 200, r.text
    assert r.json()["stream_id"] is None
    assert [q["text"] for q in r.json()["queued"]] == ["and then this"]
    queue_file = live_server.sessions_dir / f"{sid}.queue.json"
    assert json.loads(queue_file.read_text())["queued"][0]["text"] == "and then this"
    head = (live_server.sessions_dir / f"{sid}.json").read_text().split('"messages"')[0]
    assert "and then this" not in head                      # never in the metadata part
    stream_events(live_server, first)
    _idle_with(live_server, sid, 4)
    assert _contents(live_server, sid)[2:] == ["and then this", "echo: and then this"]
    assert _queue(live_server, sid) == [] and not queue_file.exists()


def test_an_idle_session_starts_a_queued_message_at_once(live_server):
    sid = live_server.new_session()
    r = live_server.post("/api/chat/queue", {"session_id": sid, "message": "now", "model": "fake-echo-2"})
    assert r.json()["queued"] == [] and r.json()["stream_id"]
    stream_events(live_server, r.json()["stream_id"])
    msgs = live_server.session(sid)["messages"]
    assert msgs[-1]["content"] == "echo: now" and msgs[-1]["model"] == "fake-echo-2"


def test_queued_messages_can_be_edited_and_removed_and_bad_input_changes_nothing(live_server):
    sid = live_server.new_session()
    running = live_server.start_chat(sid, fake_script(tokens=1, hang=True))
    a = live_server.post("/api/chat/queue", {"session_id": sid, "message": "first draft"}).json()["queued"][0]
    b = live_server.post("/api/chat/queue", {"session_id": sid, "message": "second"}).json()["queued"][1]
    edited = live_server.post("/api/chat/queue/edit", {"session_id": sid, "id": a["id"], "message": "first, fixed"})
    assert [q["text"] for q in edited.json()["queued"]] == ["first, fixed", "second"]
    removed = live_server.post("/api/chat/queue/remove", {"session_id": sid, "id": b["id"]})
    assert [q["text"] for q in removed.json()["queued"]] == ["first, fixed"]
    before = (live_server.sessions_dir / f"{sid}.queue.json").read_bytes()
    for path, body, status in [
            ("/api/chat/queue/remove", {"session_id": sid, "id": b["id"]}, 404),
            ("/api/chat/queue/edit", {"session_id": sid, "id": b["id"], "message": "x"}, 404),
            ("/api/chat/queue/edit", {"session_id": sid, "id": a["id"], "message": "   "}, 400),
            ("/api/chat/queue", {"session_id": sid, "message": "x", "model": "nope"}, 400),
            ("/api/chat/queue", {"session_id": sid}, 400),
            ("/api/chat/queue", {"session_id": "../x", "message": "x"}, 400),
            ("/api/chat/queue", {"session_id": "missing", "message": "x"}, 404)]:
        r = live_server.post(path, body)
        assert r.status_code == status and r.json()["error"], (path, body, r.text)
    assert (live_server.sessions_dir / f"{sid}.queue.json").read_bytes() == before
    assert live_server.post("/api/chat/cancel", {"stream_id": running}).json()["cancelled"] is True
    _idle_with(live_server, sid, 4)
    assert _contents(live_server, sid)[2:] == ["first, fixed", "echo: first, fixed"]


def test_a_queued_message_survives_a_restart_and_runs_after_it(make_server):
    server = make_server().start()
    sid = server.new_session()
    server.start_chat(sid, fake_script(tokens=0, hang=True))      # nothing streams: the user message alone
    assert server.post("/api/chat/queue", {"session_id": sid, "message": "after the crash"}).status_code == 200
    server.kill()
    server.start()
    _idle_with(server, sid, 3)                                     # started by the server itself, no request
    msgs = server.session(sid)["messages"]
    assert msgs[0]["status"] == "interrupted"
    assert [m["content"] for m in msgs[1:]] == ["after the crash", "echo: after the crash"]
    assert _queue(server, sid) == []


def test_deleting_a_session_deletes_its_queue(live_server):
    sid = live_server.new_session()
    running = live_server.start_chat(sid, fake_script(tokens=1, hang=True))
    live_server.post("/api/chat/queue", {"session_id": sid, "message": "later"})
    assert live_server.post("/api/session/delete", {"session_id": sid}).json() == {"ok": True}
    assert not (live_server.sessions_dir / f"{sid}.queue.json").exists()
    assert live_server.get("/api/chat/queue", params={"session_id": sid}).status_code == 404
    assert live_server.post("/api/chat/cancel", {"stream_id": running}).json()["cancelled"] is False
