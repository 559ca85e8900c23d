"""``_clear_stale_stream_state`` (DESIGN §4): the two bugs of the system we descend from.

1. A metadata-only stub saved over a 1,000-message conversation on every reconnect.
2. The cleanup clearing the stream id that a chat start had just set.
"""
from __future__ import annotations

import json
import threading

import pytest

from api import routes
from api.agents.fake import FakeBackend
from api.codec import encode_session
from api.models import SessionStore
from api.streams import _get_session_agent_lock
from api.turns import cancel_turn, start_turn

from .helpers import wait_until


def _stale_file(sessions_dir, sid: str, n: int = 0) -> None:
    meta = {"session_id": sid, "title": "stale", "manual_title": True, "created_at": 1.0, "updated_at": 2.0,
            "pinned": False, "archived": False, "message_count": n, "active_stream_id": "dead-stream",
            "pending_user_message": "question before the crash", "pending_started_at": 3.0}
    msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}", "timestamp": float(i)}
            for i in range(n)]
    sessions_dir.mkdir(parents=True, exist_ok=True)
    (sessions_dir / f"{sid}.json").write_bytes(encode_session(meta, msgs))


@pytest.fixture
def store(tmp_path):
    s = SessionStore(tmp_path / "sessions")
    yield s
    s.close()


def _run_paused_at(stage: str, store: SessionStore, sid: str, monkeypatch):
    """Run the cleanup in a thread that pauses at ``stage``: "reloaded" (step 2's full
    reload has returned) or "reread" (step 3's re-read under the session lock has
    returned). Returns (thread, go, result)."""
    reached, go, result, seen = threading.Event(), threading.Event(), {}, []
    real_load, real_meta = store.load, store.load_metadata_only

    def pause(at):
        if at == stage and threading.current_thread() is worker and at not in seen:
            seen.append(at)
            reached.set()
            assert go.wait(10)

    def load(session_id):
        out = real_load(session_id)
        pause("reloaded")
        return out

    def load_metadata_only(session_id):
        out = real_meta(session_id)
        if started.is_set():  # the worker's own stub is read before it starts
            pause("reread")
        return out

    started = threading.Event()

    def run():
        stub = real_meta(sid)
        started.set()
        result["cleared"] = routes._clear_stale_stream_state(stub)

    monkeypatch.setattr(store, "load", load)
    monkeypatch.setattr(store, "load_metadata_only", load_metadata_only)
    worker = threading.Thread(target=run)
    worker.start()
    assert reached.wait(10)
    return worker, go, result


def test_cleanup_never_clears_a_stream_that_a_chat_start_just_set(store, monkeypatch):
    _stale_file(store.dir, "race1")
    store.index.refresh()
    worker, go, result = _run_paused_at("reloaded", store, "race1", monkeypatch)
    # Meanwhile another request settles the dead stream and starts a new, live turn.
    routes._clear_stale_stream_state(store.load_metadata_only("race1"))
    live = start_turn(store, FakeBackend(), "race1", json.dumps({"fake": {"tokens": 0, "hang": True}}))
    go.set()
    worker.join(10)
    assert result["cleared"] is False
    assert store.load_metadata_only("race1").active_stream_id == live
    assert cancel_turn(live) is True
    msgs = store.load("race1").messages
    assert [(m["role"], m.get("status")) for m in msgs] == [
        ("user", "interrupted"), ("user", None), ("assistant", "cancelled")]
    assert msgs[0]["content"] == "question before the crash" and msgs[2]["content"] == ""


def test_cleanup_holds_the_session_lock_while_it_rereads_and_saves(store, monkeypatch):
    _stale_file(store.dir, "race2", n=4)
    store.index.refresh()
    worker, go, result = _run_paused_at("reread", store, "race2", monkeypatch)
    lock = _get_session_agent_lock("race2")
    got_it = lock.acquire(blocking=False)
    if got_it:
        lock.release()
    go.set()
    worker.join(10)
    assert got_it is False, "the cleanup must hold the per-session lock between re-read and save"
    assert result["cleared"] is True
    s = store.load("race2")
    assert len(s.messages) == 5 and s.active_stream_id is None and s.meta["updated_at"] == 2.0


def test_a_failed_full_reload_leaves_the_stale_flag_and_every_message(store):
    _stale_file(store.dir, "tornlater", n=10)
    stub = store.load_metadata_only("tornlater")
    raw = (store.dir / "tornlater.json").read_bytes()
    (store.dir / "tornlater.json").write_bytes(raw[:-40])  # the rest of the file is now unreadable
    assert routes._clear_stale_stream_state(stub) is False
    assert (store.dir / "tornlater.json").read_bytes() == raw[:-40]


def test_a_1000_message_session_with_a_dead_stream_survives_50_concurrent_readers(make_server):
    server = make_server()
    _stale_file(server.sessions_dir, "big1000", n=1000)
    original = json.loads((server.sessions_dir / "big1000.json").read_bytes())["messages"]
    server.start()
    calls = [("/api/session", {"session_id": "big1000", "messages": "0"}),
             ("/api/session/status", {"session_id": "big1000"}),
             ("/api/sessions", {}),
             ("/api/session", {"session_id": "big1000", "msg_limit": "30"}),
             ("/api/chat/stream", {"stream_id": "dead-stream"})]
    codes = []
    barrier = threading.Barrier(50)

    def call(i):
        path, params = calls[i % len(calls)]
        barrier.wait()
        codes.append((path, server.get(path, params=params).status_code))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(50)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert len(codes) == 50
    assert all(code == (404 if path == "/api/chat/stream" else 200) for path, code in codes)
    on_disk = json.loads((server.sessions_dir / "big1000.json").read_bytes())
    assert on_disk["messages"][:1000] == original
    assert on_disk["messages"][1000] == {"role": "user", "content": "question before the crash",
                                         "timestamp": 3.0, "status": "interrupted"}
    assert len(on_disk["messages"]) == 1001 and on_disk["active_stream_id"] is None
    assert on_disk["updated_at"] == 2.0
    wait_until(lambda: server.get("/api/session/status", params={"session_id": "big1000"}).json()
               ["message_count"] == 1001)
