"""Session operations (issue 9): retry, undo, edit, duplicate, clear — against a real server."""
from __future__ import annotations

import json
import os
import time

import pytest

from .helpers import fake_script, stream_events, tokens_of


def chat(server, sid: str, text: str) -> list[dict]:
    """One finished turn; returns its SSE events."""
    return stream_events(server, server.start_chat(sid, text))


def session_with_exchanges(server, *texts: str) -> str:
    sid = server.new_session()
    for text in texts:
        chat(server, sid, text)
    return sid


def contents(server, sid: str) -> list[str]:
    return [m["content"] for m in server.session(sid)["messages"]]


def file_bytes(server, sid: str) -> bytes:
    return (server.sessions_dir / f"{sid}.json").read_bytes()


def session_ids(server) -> set[str]:
    return {s["session_id"] for s in server.get("/api/sessions", params={"include_archived": 1}).json()["sessions"]}


# ---------------------------------------------------------------- retry and edit


def test_retry_replaces_the_last_reply_with_a_new_turn(live_server):
    s = live_server
    sid = session_with_exchanges(s, "first question", "second question")
    old_reply = s.session(sid)["messages"][3]
    r = s.post("/api/session/retry", {"session_id": sid, "expected_message_count": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["session_id"] == sid and body["message_count"] == 2
    events = stream_events(s, body["stream_id"])
    assert tokens_of(events) == "echo: second question"
    assert events[-2]["event"] == "done"
    msgs = s.session(sid)["messages"]
    assert [m["content"] for m in msgs] == ["first question", "echo: first question",
                                            "second question", "echo: second question"]
    assert msgs[3]["timestamp"] > old_reply["timestamp"]


def test_retry_reruns_a_turn_that_failed(live_server):
    s = live_server
    sid = s.new_session()
    script = fake_script(tokens=2, error="provider exploded")
    events = chat(s, sid, script)
    assert any(e["event"] == "apperror" for e in events)
    assert s.session(sid)["messages"][-1]["status"] == "error"
    r = s.post("/api/session/retry", {"session_id": sid})
    assert r.status_code == 200, r.text
    stream_events(s, r.json()["stream_id"])
    msgs = s.session(sid)["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"]     # replaced, not appended
    assert msgs[0]["content"] == script


def test_edit_changes_a_user_message_and_drops_what_followed(live_server):
    s = live_server
    sid = session_with_exchanges(s, "alpha one", "beta two", "gamma three")
    r = s.post("/api/session/edit", {"session_id": sid, "message_index": 2, "content": "beta edited",
                                     "expected_message_count": 6})
    assert r.status_code == 200, r.text
    assert r.json()["message_count"] == 2
    assert tokens_of(stream_events(s, r.json()["stream_id"])) == "echo: beta edited"
    assert contents(s, sid) == ["alpha one", "echo: alpha one", "beta edited", "echo: beta edited"]


def test_edit_refuses_bad_targets_and_changes_nothing(live_server):
    s = live_server
    sid = session_with_exchanges(s, "only question")
    before = file_bytes(s, sid)
    cases = [({"message_index": 1, "content": "x"}, 400),        # an assistant message
             ({"message_index": 2, "content": "x"}, 400),        # out of range
             ({"message_index": -1, "content": "x"}, 400),
             ({"message_index": 0, "content": "   "}, 400),      # empty
             ({"message_index": "0", "content": "x"}, 400),      # wrong type
             ({"message_index": 0}, 400),                        # missing content
             ({"message_index": 0, "content": "x" * (1024 * 1024 + 1)}, 413)]  # --max-message-bytes
    for extra, status in cases:
        r = s.post("/api/session/edit", dict(session_id=sid, **extra))
        assert r.status_code == status, (extra, r.text)
        assert "error" in r.json()
    assert file_bytes(s, sid) == before
    assert not (s.sessions_dir / f"{sid}.json.bak").exists()


# ---------------------------------------------------------------- undo, clear, restarts


def test_undo_then_restart_stays_undone(make_server):
    s = make_server().start()
    sid = session_with_exchanges(s, "keep this", "remove this")
    r = s.post("/api/session/undo", {"session_id": sid, "expected_message_count": 4})
    assert r.status_code == 200, r.text
    assert r.json()["removed"] == 2
    assert r.json()["removed_user_message"] == "remove this"
    assert r.json()["session"]["message_count"] == 2
    # The backup still holds the removed exchange: only the intentional-shrink marker
    # keeps start-up self-heal from restoring it.
    backup = json.loads((s.sessions_dir / f"{sid}.json.bak").read_text())
    assert len(backup["messages"]) == 4
    s.stop()
    s.start()
    assert contents(s, sid) == ["keep this", "echo: keep this"]
    s.stop()


def test_clear_then_sigkill_right_after_the_response_stays_empty(make_server):
    s = make_server().start()
    sid = session_with_exchanges(s, "one", "two", "three")
    r = s.post("/api/session/clear", {"session_id": sid})
    assert r.status_code == 200, r.text
    s.kill()
    assert r.json()["removed"] == 6 and r.json()["session"]["message_count"] == 0
    s.start()
    got = s.session(sid)
    assert got["messages"] == [] and got["message_count"] == 0
    assert got["title"] == "one"                              # only the messages go
    s.stop()


def test_hand_edited_file_that_lost_messages_is_restored_from_an_older_backup(make_server):
    s = make_server().start()
    sid = session_with_exchanges(s, "precious one", "precious two")
    original = s.session(sid)["messages"]
    s.stop()
    live = s.sessions_dir / f"{sid}.json"
    bak = s.sessions_dir / f"{sid}.json.bak"
    bak.write_bytes(live.read_bytes())
    old = time.time() - 3600
    os.utime(bak, (old, old))
    doc = json.loads(live.read_text())
    doc["messages"] = doc["messages"][:2]          # an editor dropped the last exchange
    doc["message_count"] = 2
    assert "intentional_shrink_at" not in doc
    live.write_text(json.dumps(doc, indent=2))
    s.start()
    assert s.session(sid)["messages"] == original
    s.stop()


def test_undo_of_an_interrupted_turn_settles_it_first(make_server):
    s = make_server().start()
    sid = session_with_exchanges(s, "before the crash")
    script = fake_script(tokens=4, delay_ms=5000, hang=True)
    s.start_chat(sid, script)             # the file now names the stream and its pending message
    s.kill()
    s.start()
    # After the restart the pending message is settled into a real (interrupted) message
    # before the undo runs, so the count the client must expect is 3.
    r = s.post("/api/session/undo", {"session_id": sid, "expected_message_count": 3})
    assert r.status_code == 200, r.text
    assert r.json()["removed"] == 1 and r.json()["removed_user_message"] == script
    assert contents(s, sid) == ["before the crash", "echo: before the crash"]
    s.stop()


def test_undo_and_retry_of_an_empty_session_are_400(live_server):
    s = live_server
    sid = s.new_session()
    for op in ("undo", "retry"):
        r = s.post(f"/api/session/{op}", {"session_id": sid})
        assert r.status_code == 400, r.text
    r = s.post("/api/session/clear", {"session_id": sid})
    assert r.status_code == 200 and r.json()["removed"] == 0


# ---------------------------------------------------------------- duplicate


def test_duplicate_forks_up_to_an_index_and_leaves_the_original(live_server):
    s = live_server
    sid = session_with_exchanges(s, "root question", "branch point")
    before = file_bytes(s, sid)
    r = s.post("/api/session/duplicate", {"session_id": sid, "up_to_index": 1})
    assert r.status_code == 200, r.text
    fork = r.json()["session"]
    assert fork["session_id"] != sid and fork["message_count"] == 2
    assert fork["title"] == "root question (fork)"
    assert s.session(fork["session_id"])["messages"] == s.session(sid)["messages"][:2]
    assert file_bytes(s, sid) == before
    assert fork["session_id"] in session_ids(s)
    # the fork is independent: a turn in it leaves the original alone
    chat(s, fork["session_id"], "only in the fork")
    assert "only in the fork" not in contents(s, sid)
    whole = s.post("/api/session/duplicate", {"session_id": sid}).json()["session"]
    assert s.session(whole["session_id"])["messages"] == s.session(sid)["messages"]
    for bad in (4, -1, "1", True):
        r = s.post("/api/session/duplicate", {"session_id": sid, "up_to_index": bad})
        assert r.status_code == 400, (bad, r.text)


# ---------------------------------------------------------------- conflicts


OPERATIONS = [
    ("retry", {}),
    ("undo", {}),
    ("clear", {}),
    ("edit", {"message_index": 0, "content": "changed"}),
    ("duplicate", {"up_to_index": 0}),
]


@pytest.mark.parametrize("op,extra", OPERATIONS, ids=[o for o, _ in OPERATIONS])
def test_stale_expected_message_count_is_409_and_changes_nothing(live_server, op, extra):
    s = live_server
    sid = session_with_exchanges(s, "first", "second")
    before, ids_before = file_bytes(s, sid), session_ids(s)
    for stale in (2, 6, 0):
        r = s.post(f"/api/session/{op}", dict(session_id=sid, expected_message_count=stale, **extra))
        assert r.status_code == 409, r.text
        assert "4 messages" in r.json()["error"]
    assert file_bytes(s, sid) == before
    assert not (s.sessions_dir / f"{sid}.json.bak").exists()
    assert session_ids(s) == ids_before
    assert s.get("/api/session/status", params={"session_id": sid}).json()["active_stream_id"] is None


@pytest.mark.parametrize("op,extra", OPERATIONS, ids=[o for o, _ in OPERATIONS])
def test_operations_are_409_while_a_stream_is_live(live_server, op, extra):
    s = live_server
    sid = session_with_exchanges(s, "settled")
    stream_id = s.start_chat(sid, fake_script(tokens=2, hang=True))
    assert len(stream_events(s, stream_id, stop_after=2)) == 2
    before, ids_before = file_bytes(s, sid), session_ids(s)
    r = s.post(f"/api/session/{op}", dict(session_id=sid, **extra))
    assert r.status_code == 409, r.text
    assert "streaming" in r.json()["error"]
    assert file_bytes(s, sid) == before and session_ids(s) == ids_before
    assert s.post("/api/chat/cancel", {"stream_id": stream_id}).json()["cancelled"] is True
    assert s.session(sid)["message_count"] == 4                # the cancelled turn is kept


def test_bad_requests_are_json_errors(live_server):
    s = live_server
    sid = session_with_exchanges(s, "hello")
    before = file_bytes(s, sid)
    for op, extra in OPERATIONS:
        assert s.post(f"/api/session/{op}", extra).status_code == 400
        assert s.post(f"/api/session/{op}", dict(extra, session_id="../etc/passwd")).status_code == 400
        assert s.post(f"/api/session/{op}", dict(extra, session_id="nosuchsession")).status_code == 404
        r = s.post(f"/api/session/{op}", dict(extra, session_id=sid, expected_message_count="2"))
        assert r.status_code == 400 and "expected_message_count" in r.json()["error"]
        r = s.post(f"/api/session/{op}", data="not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "error" in r.json()
    assert file_bytes(s, sid) == before
