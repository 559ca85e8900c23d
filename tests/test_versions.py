"""Versions (issue 17 item 1): retry and edit keep what they replace; POST /api/session/version
switches the version shown; export, import and the ChatGPT import keep them — against a real server."""
from __future__ import annotations

import json

import pytest

from .helpers import fake_script, stream_events, tokens_of

IMPORT = "/api/session/import"


def chat(server, sid: str, text: str, **extra) -> list[dict]:
    """One finished turn; returns its SSE events."""
    return stream_events(server, server.start_chat(sid, text, **extra))


def op(server, path: str, **body) -> dict:
    """A session operation that starts a turn, followed to its end; returns its answer."""
    r = server.post(path, body)
    assert r.status_code == 200, r.text
    stream_events(server, r.json()["stream_id"])
    return r.json()


def switch(server, sid: str, index: int, version: int, **extra):
    return server.post("/api/session/version", dict(session_id=sid, message_index=index, version=version, **extra))


def shown(server, sid: str) -> list[tuple]:
    return [(m["role"], m["content"], m.get("model")) for m in server.session(sid)["messages"]]


def file_bytes(server, sid: str) -> bytes:
    return (server.sessions_dir / f"{sid}.json").read_bytes()


def three_retries(server) -> str:
    """A session whose second exchange was retried twice: three versions at message 2,
    told apart by the model each reply ran on (fake-echo, fake-echo-2, fake-echo)."""
    sid = server.new_session()
    chat(server, sid, "first question")
    chat(server, sid, "second question")
    op(server, "/api/session/retry", session_id=sid, expected_message_count=4, model="fake-echo-2")
    op(server, "/api/session/retry", session_id=sid, expected_message_count=4, model="fake-echo")
    return sid


def test_retry_twice_keeps_three_versions_and_switching_shows_each(live_server):
    s = live_server
    sid = three_retries(s)
    got = s.session(sid)
    assert got["versions"] == {"2": {"count": 3, "current": 2}}
    assert got["message_count"] == 4
    # the file's transcript is a plain list of the shown version (invariant 1)
    on_disk = json.loads(file_bytes(s, sid))
    assert [m["content"] for m in on_disk["messages"]] == [
        "first question", "echo: first question", "second question", "echo: second question"]
    r = switch(s, sid, 2, 1, expected_message_count=4)
    assert r.status_code == 200, r.text
    assert r.json()["versions"] == {"2": {"count": 3, "current": 1}} and r.json()["message_count"] == 4
    assert shown(s, sid)[2:] == [("user", "second question", None),
                                 ("assistant", "echo: second question", "fake-echo-2")]
    assert switch(s, sid, 2, 0).status_code == 200
    assert shown(s, sid)[3][2] == "fake-echo"
    assert s.session(sid)["versions"] == {"2": {"count": 3, "current": 0}}
    # the paged read carries the same summary
    assert s.session(sid, msg_limit=1)["versions"] == {"2": {"count": 3, "current": 0}}
    assert s.session(sid, messages=0)["versions"] == {"2": {"count": 3, "current": 0}}


def test_new_turns_and_continue_go_on_the_version_shown(live_server):
    s = live_server
    sid = three_retries(s)
    assert switch(s, sid, 2, 1).status_code == 200               # version 2 of 3
    chat(s, sid, "third question")
    assert [c for _r, c, _m in shown(s, sid)][4:] == ["third question", "echo: third question"]
    # a cut-off reply on this version, continued in place
    chat(s, sid, fake_script(tokens=2, finish="length"))
    assert s.session(sid)["messages"][-1]["status"] == "truncated"
    r = s.post("/api/session/continue", {"session_id": sid})
    assert r.status_code == 200, r.text
    stream_events(s, r.json()["stream_id"])
    assert s.session(sid)["messages"][-1]["content"] == "t0 t1 t0 t1 "
    assert s.session(sid)["message_count"] == 8
    # the other versions do not have them; coming back shows them again
    assert switch(s, sid, 2, 2).status_code == 200
    assert s.session(sid)["message_count"] == 4
    assert switch(s, sid, 2, 1, expected_message_count=4).status_code == 200
    msgs = s.session(sid)["messages"]
    assert len(msgs) == 8 and msgs[4]["content"] == "third question"
    assert msgs[-1]["content"] == "t0 t1 t0 t1 " and msgs[3]["model"] == "fake-echo-2"


def test_edit_makes_a_new_version_and_the_old_one_keeps_its_own_versions(live_server):
    s = live_server
    sid = three_retries(s)
    op(s, "/api/session/edit", session_id=sid, message_index=0, content="first, edited ✓",
       expected_message_count=4)
    got = s.session(sid)
    assert [m["content"] for m in got["messages"]] == ["first, edited ✓", "echo: first, edited ✓"]
    assert got["versions"] == {"0": {"count": 2, "current": 1}}     # the retries went with version 1
    assert switch(s, sid, 0, 0).status_code == 200
    got = s.session(sid)
    assert [m["content"] for m in got["messages"]] == [
        "first question", "echo: first question", "second question", "echo: second question"]
    assert got["versions"] == {"0": {"count": 2, "current": 0}, "2": {"count": 3, "current": 2}}
    # an edit inside that version adds to the same point
    op(s, "/api/session/edit", session_id=sid, message_index=0, content="third try")
    assert s.session(sid)["versions"] == {"0": {"count": 3, "current": 2}}


def test_bad_switches_are_refused_and_change_nothing(live_server):
    s = live_server
    sid = three_retries(s)
    before = file_bytes(s, sid)
    r = switch(s, sid, 2, 0, expected_message_count=3)
    assert r.status_code == 409 and "4 messages" in r.json()["error"]
    for index, version in ((0, 0), (2, 3), (2, -1), (9, 0)):
        r = switch(s, sid, index, version)
        assert r.status_code == 400, (index, version)
        assert "version" in r.json()["error"]
    assert s.post("/api/session/version", {"session_id": sid, "message_index": 2}).status_code == 400
    assert switch(s, "nope", 2, 0).status_code == 404
    assert file_bytes(s, sid) == before
    assert not (s.sessions_dir / f"{sid}.json.bak").exists() or \
        len(json.loads((s.sessions_dir / f"{sid}.json.bak").read_text())["messages"]) >= 4


def test_switch_is_refused_while_a_reply_streams(live_server):
    s = live_server
    sid = three_retries(s)
    stream_id = s.start_chat(sid, fake_script(tokens=2, hang=True))
    try:
        r = switch(s, sid, 2, 0)
        assert r.status_code == 409
    finally:
        s.post("/api/chat/cancel", {"stream_id": stream_id})
    assert s.session(sid)["versions"]["2"]["current"] == 2


def test_a_restart_does_not_restore_the_backup_over_a_switch(make_server):
    s = make_server().start()
    sid = s.new_session()
    chat(s, sid, "long one")
    chat(s, sid, "long two")
    op(s, "/api/session/edit", session_id=sid, message_index=0, content="short")
    assert switch(s, sid, 0, 0).status_code == 200                 # back to the 4 messages
    assert switch(s, sid, 0, 1).status_code == 200                 # to the 2: a shrink
    backup = json.loads((s.sessions_dir / f"{sid}.json.bak").read_text())
    assert len(backup["messages"]) == 4                            # self-heal would see fewer messages
    s.kill()
    s.start()
    got = s.session(sid)
    assert [m["content"] for m in got["messages"]] == ["short", "echo: short"]
    assert got["versions"] == {"0": {"count": 2, "current": 1}}
    assert switch(s, sid, 0, 0).status_code == 200
    assert s.session(sid)["message_count"] == 4
    s.stop()


def test_undo_and_clear_with_versions_survive_a_restart(make_server):
    s = make_server().start()
    sid = s.new_session()
    chat(s, sid, "keep me")
    chat(s, sid, "undo me")
    op(s, "/api/session/retry", session_id=sid)
    assert s.session(sid)["versions"] == {"2": {"count": 2, "current": 1}}
    r = s.post("/api/session/undo", {"session_id": sid, "expected_message_count": 4})
    assert r.status_code == 200 and r.json()["removed"] == 2
    assert "versions" not in s.session(sid)                         # they went with the exchange
    s.stop()
    s.start()
    got = s.session(sid)
    assert [m["content"] for m in got["messages"]] == ["keep me", "echo: keep me"] and "versions" not in got

    op(s, "/api/session/edit", session_id=sid, message_index=0, content="edited")
    assert s.session(sid)["versions"] == {"0": {"count": 2, "current": 1}}
    r = s.post("/api/session/clear", {"session_id": sid, "expected_message_count": 2})
    assert r.status_code == 200
    s.kill()
    s.start()
    got = s.session(sid)
    assert got["messages"] == [] and "versions" not in got
    assert "versions" not in json.loads(file_bytes(s, sid))
    s.stop()


def test_a_retry_that_cannot_start_keeps_no_new_version(live_server):
    s = live_server
    sid = s.new_session()
    chat(s, sid, "hello")
    before = s.session(sid)
    r = s.post("/api/session/retry", {"session_id": sid, "model": "m" * 500})   # over the metadata limit
    assert r.status_code == 400
    after = s.session(sid)
    assert "versions" not in after and after["messages"] == before["messages"]
