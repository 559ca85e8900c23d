"""Profiles over HTTP (issue 7): isolation of sessions, skills, memory and workspace."""
from __future__ import annotations

import threading

import requests

from .helpers import fake_script, stream_events, tokens_of


def browser(_server=None) -> requests.Session:
    """A separate cookie jar: one browser."""
    return requests.Session()


def get(server, jar, url_path, **params):
    return jar.get(server.url(url_path), params=params, timeout=30)


def post(server, jar, url_path, body):
    return jar.post(server.url(url_path), json=body, timeout=30)


def test_a_session_of_one_profile_is_not_found_under_another(live_server):
    s = live_server
    a, b = browser(s), browser(s)
    assert post(s, a, "/api/profile/create", {"name": "iso-b"}).status_code == 200
    switched = post(s, b, "/api/profile/switch", {"name": "iso-b"})
    assert switched.json()["active"] == "iso-b" and "hermes_profile" in switched.cookies
    sid_b = post(s, b, "/api/session/new", {"title": "in B"}).json()["session"]["session_id"]
    sid_a = post(s, a, "/api/session/new", {"title": "in A"}).json()["session"]["session_id"]
    assert get(s, a, "/api/session", session_id=sid_b).status_code == 404
    assert get(s, b, "/api/session", session_id=sid_a).status_code == 404
    assert get(s, b, "/api/session", session_id=sid_b).json()["session"]["title"] == "in B"
    listed_a = {x["session_id"] for x in get(s, a, "/api/sessions").json()["sessions"]}
    listed_b = {x["session_id"] for x in get(s, b, "/api/sessions").json()["sessions"]}
    assert sid_a in listed_a and sid_b not in listed_a and listed_b == {sid_b}
    assert get(s, a, "/api/list", session_id=sid_b, path="").status_code == 404
    assert post(s, a, "/api/session/rename", {"session_id": sid_b, "title": "hijack"}).status_code == 404
    assert post(s, a, "/api/session/delete", {"session_id": sid_b}).status_code == 404
    assert (s.state_dir / "profiles" / "iso-b" / "sessions" / f"{sid_b}.json").is_file()
    assert not (s.sessions_dir / f"{sid_b}.json").exists()


def test_a_chat_turn_in_a_profile_is_saved_in_that_profile(live_server):
    s = live_server
    b = browser(s)
    post(s, b, "/api/profile/create", {"name": "chat-b"})
    post(s, b, "/api/profile/switch", {"name": "chat-b"})
    sid = post(s, b, "/api/session/new", {}).json()["session"]["session_id"]
    stream_id = post(s, b, "/api/chat/start", {"session_id": sid, "message": fake_script(tokens=3)}).json()["stream_id"]
    assert tokens_of(stream_events(s, stream_id)) == "t0 t1 t2 "
    session = get(s, b, "/api/session", session_id=sid).json()["session"]
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]
    assert session["messages"][1]["content"] == "t0 t1 t2 "
    assert get(s, browser(s), "/api/session", session_id=sid).status_code == 404


def test_skills_memory_and_workspace_are_per_profile(live_server):
    s = live_server
    a, b = browser(s), browser(s)
    post(s, a, "/api/profile/create", {"name": "own-b"})
    post(s, b, "/api/profile/switch", {"name": "own-b"})
    r = post(s, b, "/api/skills/save", {"name": "only-b", "description": "B's skill", "body": "Do B things."})
    assert r.status_code == 200, r.text
    post(s, b, "/api/memory/write", {"file": "USER.md", "content": "B's user"})
    assert [x["name"] for x in get(s, b, "/api/skills").json()["skills"]] == ["only-b"]
    assert "only-b" not in [x["name"] for x in get(s, a, "/api/skills").json()["skills"]]
    memory_a = {f["file"]: f for f in get(s, a, "/api/memory").json()["files"]}
    memory_b = {f["file"]: f for f in get(s, b, "/api/memory").json()["files"]}
    assert memory_b["USER.md"]["content"] == "B's user" and memory_a["USER.md"]["content"] != "B's user"
    sid_b = post(s, b, "/api/session/new", {}).json()["session"]["session_id"]
    post(s, b, "/api/file/save", {"session_id": sid_b, "path": "b.txt", "content": "B"})
    assert (s.state_dir / "profiles" / "own-b" / "workspace" / "b.txt").read_text() == "B"
    assert (s.state_dir / "profiles" / "own-b" / "skills" / "general" / "only-b" / "SKILL.md").is_file()


def test_profile_names_are_validated_and_conflicts_refused(live_server):
    s = live_server
    jar = browser(s)
    for bad in ("../x", "", "A", "a/b", "-x", "x" * 65, ".hidden"):
        r = post(s, jar, "/api/profile/create", {"name": bad})
        assert r.status_code == 400 and "error" in r.json(), bad
    assert not any(p.name.startswith((".", "-")) for p in (s.state_dir / "profiles").iterdir())
    assert post(s, jar, "/api/profile/create", {"name": "default"}).status_code == 409
    assert post(s, jar, "/api/profile/create", {"name": "dup"}).status_code == 200
    assert post(s, jar, "/api/profile/create", {"name": "dup"}).status_code == 409
    assert post(s, jar, "/api/profile/switch", {"name": "ghost"}).status_code == 404
    assert post(s, jar, "/api/profile/delete", {"name": "default"}).status_code == 400
    assert post(s, jar, "/api/profile/delete", {"name": "ghost"}).status_code == 404
    assert post(s, jar, "/api/profile/create", {"name": 3}).status_code == 400


def test_deleting_the_active_profile_falls_back_to_default(live_server):
    s = live_server
    jar, other = browser(s), browser(s)
    post(s, jar, "/api/profile/create", {"name": "gone"})
    post(s, jar, "/api/profile/switch", {"name": "gone"})
    post(s, other, "/api/profile/switch", {"name": "gone"})
    sid = post(s, jar, "/api/session/new", {}).json()["session"]["session_id"]
    r = post(s, jar, "/api/profile/delete", {"name": "gone"})
    assert r.status_code == 200 and r.json()["active"] == "default"
    assert not (s.state_dir / "profiles" / "gone").exists()
    for b in (jar, other):
        listing = get(s, b, "/api/profiles").json()
        assert listing["active"] == "default" and "gone" not in [p["name"] for p in listing["profiles"]]
        assert get(s, b, "/api/session", session_id=sid).status_code == 404


def test_a_profile_with_a_live_stream_cannot_be_deleted(live_server):
    s = live_server
    jar = browser(s)
    post(s, jar, "/api/profile/create", {"name": "busy"})
    post(s, jar, "/api/profile/switch", {"name": "busy"})
    sid = post(s, jar, "/api/session/new", {}).json()["session"]["session_id"]
    stream_id = post(s, jar, "/api/chat/start", {"session_id": sid, "message": fake_script(hang=True)}).json()["stream_id"]
    try:
        r = post(s, jar, "/api/profile/delete", {"name": "busy"})
        assert r.status_code == 409 and "error" in r.json()
        assert (s.state_dir / "profiles" / "busy" / "sessions" / f"{sid}.json").is_file()
    finally:
        post(s, jar, "/api/chat/cancel", {"stream_id": stream_id})
    assert post(s, jar, "/api/profile/delete", {"name": "busy"}).status_code == 200


def test_profile_sessions_survive_a_restart(make_server):
    server = make_server().start()
    jar = browser(server)
    post(server, jar, "/api/profile/create", {"name": "keep"})
    post(server, jar, "/api/profile/switch", {"name": "keep"})
    sid = post(server, jar, "/api/session/new", {"title": "kept"}).json()["session"]["session_id"]
    server.stop()
    server.start()
    assert get(server, jar, "/api/session", session_id=sid).json()["session"]["title"] == "kept"
    assert get(server, jar, "/api/profiles").json()["active"] == "keep"


def test_profile_delete_racing_a_chat_start_never_leaves_a_turn_running(tmp_path, monkeypatch):
    """Forced interleaving, in-process: a chat start that already holds the profile's
    store is let go right after the delete has made its "no live stream" check. Either the
    delete refuses (409, nothing removed) or the chat start finds no session (404); never
    both succeeding with an agent running on a deleted profile."""
    from api import create_app, profiles, streams, turns
    from api.config import Config

    app = create_app(Config(state_dir=tmp_path / "state", agent="fake"))
    client = app.test_client()
    assert client.post("/api/profile/create", json={"name": "race"}).status_code == 200
    client.post("/api/profile/switch", json={"name": "race"})
    sid = client.post("/api/session/new", json={}).get_json()["session"]["session_id"]
    folder = tmp_path / "state" / "profiles" / "race"
    assert (folder / "sessions" / f"{sid}.json").is_file()

    chat_ready, chat_go = threading.Event(), threading.Event()
    results: dict = {}
    real_start, real_rename, real_rmtree = turns.start_turn, profiles.os.rename, profiles.shutil.rmtree

    def paused_start(*args, **kw):  # runs after the route has taken the profile's store
        chat_ready.set()
        chat_go.wait(10)
        return real_start(*args, **kw)

    def chat():
        r = client.post("/api/chat/start", json={"session_id": sid, "message": fake_script(hang=True)})
        results["chat"] = (r.status_code, r.get_json())

    chat_thread = threading.Thread(target=chat)

    def removing(real):
        def hooked(path, *rest, **kw):
            if threading.current_thread() is delete_thread and not chat_go.is_set():
                chat_go.set()  # the delete has checked for live streams: let the chat start go on
                if not streams._get_session_agent_lock(sid)._is_owned():
                    chat_thread.join(10)  # nothing stops it: let it finish before the removal
            return real(path, *rest, **kw)
        return hooked

    def delete():
        results["delete"] = client.post("/api/profile/delete", json={"name": "race"}).status_code

    delete_thread = threading.Thread(target=delete)
    monkeypatch.setattr(turns, "start_turn", paused_start)
    monkeypatch.setattr(profiles.os, "rename", removing(real_rename))
    monkeypatch.setattr(profiles.shutil, "rmtree", removing(real_rmtree))
    chat_thread.start()
    assert chat_ready.wait(10)
    delete_thread.start()
    delete_thread.join(30)
    chat_go.set()
    chat_thread.join(30)
    with streams.STREAMS_LOCK:
        live = [ch.stream_id for ch in streams.STREAMS.values() if ch.session_id == sid]
    try:
        if results["delete"] == 200:
            assert results["chat"][0] == 404, results
            assert live == [] and not folder.exists()
        else:
            assert results["delete"] == 409 and results["chat"][0] == 200, results
            assert (folder / "sessions" / f"{sid}.json").is_file()
    finally:
        for stream_id in live:
            turns.cancel_turn(stream_id)
