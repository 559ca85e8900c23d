"""Projects and tags over HTTP: the upstream's paths and shapes, our extra fields, bad
input refused with nothing changed, and the sidebar rows carrying both."""
from __future__ import annotations

import json


def _row(server, sid):
    return next(r for r in server.get("/api/sessions").json()["sessions"] if r["session_id"] == sid)


def test_a_project_is_created_renamed_updated_and_deleted(live_server):
    s = live_server
    r = s.post("/api/projects/create", {"name": "  Research  ", "color": "#3b82f6"})
    assert r.status_code == 200 and r.json()["ok"] is True
    project = r.json()["project"]
    pid = project["project_id"]
    assert project["name"] == "Research" and project["color"] == "#3b82f6" and len(pid) == 12
    r = s.post("/api/projects/rename", {"project_id": pid, "name": "Papers"})
    assert r.json()["project"]["name"] == "Papers"
    r = s.post("/api/projects/update", {"project_id": pid, "workspace": "/tmp/papers",
                                         "instructions": "Answer in French.", "collapsed": True})
    assert r.status_code == 200
    listed = next(p for p in s.get("/api/projects").json()["projects"] if p["project_id"] == pid)
    assert (listed["workspace"], listed["instructions"], listed["collapsed"]) == ("/tmp/papers", "Answer in French.", True)
    sid = s.new_session(title="a chat")
    r = s.post("/api/session/move", {"session_id": sid, "project_id": pid})
    assert r.status_code == 200 and r.json()["session"]["project_id"] == pid
    assert _row(s, sid)["project_id"] == pid and s.session(sid, messages=0)["workspace"] == "/tmp/papers"
    r = s.post("/api/projects/delete", {"project_id": pid})
    assert r.json() == {"ok": True, "unassigned": 1}
    assert _row(s, sid)["project_id"] is None
    assert all(p["project_id"] != pid for p in s.get("/api/projects").json()["projects"])


def test_bad_project_input_is_refused_and_nothing_changes(live_server):
    s = live_server
    before = s.get("/api/projects").json()
    for body in ({"name": ""}, {"name": 5}, {"name": "x", "color": "red"}, {"name": "x", "bogus": 1},
                 {"name": "x", "instructions": 3}):
        r = s.post("/api/projects/create", body)
        assert r.status_code == 400 and "error" in r.json(), body
    assert s.post("/api/projects/rename", {"project_id": "nope", "name": "x"}).status_code == 404
    assert s.post("/api/projects/delete", {"project_id": "nope"}).status_code == 404
    sid = s.new_session()
    assert s.post("/api/session/move", {"session_id": sid, "project_id": "nope"}).status_code == 404
    assert s.post("/api/session/move", {"session_id": "../x", "project_id": None}).status_code == 400
    assert s.get("/api/projects").json() == before and _row(s, sid)["project_id"] is None


def test_tags_are_set_cleaned_and_listed(live_server):
    s = live_server
    sid = s.new_session(title="tagged")
    r = s.post("/api/session/tags", {"session_id": sid, "tags": ["#travel", "Travel", "2025", "日本"]})
    assert r.status_code == 200 and r.json()["session"]["tags"] == ["travel", "2025", "日本"]
    assert _row(s, sid)["tags"] == ["travel", "2025", "日本"]
    for bad in (["two words"], "travel", [1], ["a,b"], ["x" * 65], [f"t{i}" for i in range(33)]):
        assert s.post("/api/session/tags", {"session_id": sid, "tags": bad}).status_code == 400, bad
    assert _row(s, sid)["tags"] == ["travel", "2025", "日本"]
    assert s.post("/api/session/tags", {"session_id": sid, "tags": []}).json()["session"]["tags"] == []
    assert s.post("/api/session/tags", {"session_id": "unknown1", "tags": []}).status_code == 404


def test_moving_a_chat_keeps_its_messages_and_updated_at(live_server):
    s = live_server
    sid = s.new_session(title="keep")
    from .helpers import stream_events
    stream_events(s, s.start_chat(sid, "hello there"))
    before = s.session(sid)
    pid = s.post("/api/projects/create", {"name": "P"}).json()["project"]["project_id"]
    s.post("/api/session/move", {"session_id": sid, "project_id": pid})
    s.post("/api/session/tags", {"session_id": sid, "tags": ["x"]})
    after = s.session(sid)
    assert after["messages"] == before["messages"] and after["updated_at"] == before["updated_at"]
    assert json.dumps(after["tags"]) == '["x"]'


def test_a_new_chat_starts_inside_a_project_with_its_workspace(live_server):
    s = live_server
    pid = s.post("/api/projects/create", {"name": "Thesis", "workspace": "/tmp/thesis"}).json()["project"]["project_id"]
    r = s.post("/api/session/new", {"title": "chapter 1", "project_id": pid})
    assert r.status_code == 200
    sid = r.json()["session"]["session_id"]
    assert r.json()["session"]["project_id"] == pid
    assert _row(s, sid)["project_id"] == pid and s.session(sid, messages=0)["workspace"] == "/tmp/thesis"
    # a workspace sent with it wins over the project's
    r = s.post("/api/session/new", {"project_id": pid, "workspace": "/tmp/other"})
    assert s.session(r.json()["session"]["session_id"], messages=0)["workspace"] == "/tmp/other"
    # an unknown project or a wrong type: refused, no session written
    before = len(s.get("/api/sessions").json()["sessions"])
    r = s.post("/api/session/new", {"project_id": "gone00000000"})
    assert r.status_code == 404 and "project" in r.json()["error"]
    assert s.post("/api/session/new", {"project_id": 7}).status_code == 400
    assert len(s.get("/api/sessions").json()["sessions"]) == before
