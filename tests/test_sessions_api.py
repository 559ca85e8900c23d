"""The sessions API (DESIGN §7) against a real server: shapes, bad input, corrupt files."""
from __future__ import annotations

import json
import os

import pytest
import requests

from api.codec import encode_session

from .helpers import LiveServer, wait_until


def _tree(root) -> dict:
    """Every file under ``root`` with its bytes, except the derived sidebar index (and its
    temp files), which the server rewrites in the background."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith("_index.json"):
                continue
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[p] = f.read()
    return out


def _write_session(sessions_dir, sid: str, n: int, **meta) -> None:
    sessions_dir.mkdir(parents=True, exist_ok=True)
    base = {"session_id": sid, "title": f"title {sid}", "manual_title": False, "created_at": 1.0,
            "updated_at": 2.0, "pinned": False, "archived": False, "message_count": n,
            "active_stream_id": None, "pending_user_message": None}
    base.update(meta)
    msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}", "timestamp": float(i)}
            for i in range(n)]
    (sessions_dir / f"{sid}.json").write_bytes(encode_session(base, msgs))


def test_health_reports_sessions_and_streams(live_server):
    live_server.new_session()
    body = live_server.get("/health").json()
    assert body["status"] == "ok" and body["sessions"] >= 1 and body["active_streams"] == 0
    assert body["uptime_seconds"] >= 0 and body["agent"] == "fake"


def test_new_session_is_saved_at_once_and_listed(live_server):
    r = live_server.post("/api/session/new", {"title": "Plans", "model": "m1"})
    session = r.json()["session"]
    assert session["title"] == "Plans" and session["messages"] == [] and session["message_count"] == 0
    sid = session["session_id"]
    assert (live_server.sessions_dir / f"{sid}.json").exists()
    listed = live_server.get("/api/sessions").json()["sessions"]
    assert sid in [s["session_id"] for s in listed]
    assert all("messages" not in s for s in listed)


def test_list_orders_pinned_first_then_newest_and_hides_archived(live_server):
    a, b, c = (live_server.new_session(title=t) for t in ("a", "b", "c"))
    live_server.post("/api/session/pin", {"session_id": a, "pinned": True})
    live_server.post("/api/session/archive", {"session_id": b, "archived": True})
    ids = [s["session_id"] for s in live_server.get("/api/sessions").json()["sessions"]]
    assert ids[0] == a and b not in ids and ids.index(c) > 0
    ids_all = [s["session_id"] for s in live_server.get("/api/sessions?include_archived=1").json()["sessions"]]
    assert b in ids_all


def test_rename_pin_archive_return_compact_and_persist(live_server):
    sid = live_server.new_session()
    r = live_server.post("/api/session/rename", {"session_id": sid, "title": "  Trip\nto  Rome "})
    assert r.json()["session"]["title"] == "Trip to Rome" and r.json()["session"]["manual_title"] is True
    assert live_server.post("/api/session/pin", {"session_id": sid, "pinned": True}).json()["session"]["pinned"]
    on_disk = json.loads((live_server.sessions_dir / f"{sid}.json").read_bytes())
    assert on_disk["title"] == "Trip to Rome" and on_disk["pinned"] is True


def test_titles_with_emoji_lone_surrogates_and_nul_round_trip_as_utf8(live_server):
    sid = live_server.new_session()
    raw = '{"session_id": "%s", "title": "ok \\ud83d\\ude00 \\ud800 lone \\u0000 nul"}' % sid
    r = live_server.post("/api/session/rename", data=raw.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    title = r.json()["session"]["title"]
    assert title == "ok \U0001F600 \ufffd lone \x00 nul"
    r.content.decode("utf-8")  # valid UTF-8 on the wire
    (live_server.sessions_dir / f"{sid}.json").read_bytes().decode("utf-8")
    assert live_server.session(sid, messages=0)["title"] == title


def test_long_titles_are_truncated_on_a_character_boundary(live_server):
    sid = live_server.new_session()
    title = "\U0001F600" * 500
    r = live_server.post("/api/session/rename", {"session_id": sid, "title": title})
    assert r.json()["session"]["title"] == "\U0001F600" * 200


@pytest.mark.parametrize("path,body,status", [
    ("/api/session/rename", b"{not json", 400),
    ("/api/session/rename", b"[1, 2]", 400),
    ("/api/session/rename", b"", 400),
    ("/api/session/rename", {"title": "x"}, 400),
    ("/api/session/rename", {"session_id": 5, "title": "x"}, 400),
    ("/api/session/rename", {"session_id": "nosuch", "title": "x"}, 404),
    ("/api/session/rename", {"session_id": "SID", "title": 7}, 400),
    ("/api/session/rename", {"session_id": "SID", "title": "   "}, 400),
    ("/api/session/pin", {"session_id": "SID", "pinned": "yes"}, 400),
    ("/api/session/archive", {"session_id": "SID"}, 400),
    ("/api/session/delete", {"session_id": "nosuch"}, 404),
    ("/api/session/new", {"title": ["x"]}, 400),
    ("/api/chat/start", {"session_id": "SID"}, 400),
    ("/api/chat/start", {"session_id": "SID", "message": "   "}, 400),
    ("/api/chat/start", {"session_id": "SID", "message": "hi", "expected_message_count": "1"}, 400),
    ("/api/chat/cancel", {}, 400),
])
def test_bad_input_is_a_clear_4xx_and_changes_nothing(live_server, path, body, status):
    sid = live_server.new_session(title="keep")
    before = _tree(live_server.state_dir / "sessions")
    if isinstance(body, dict):
        body = json.dumps({k: (sid if v == "SID" else v) for k, v in body.items()}).encode()
    r = live_server.post(path, data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status
    assert isinstance(r.json()["error"], str) and r.json()["error"]
    assert _tree(live_server.state_dir / "sessions") == before


@pytest.mark.parametrize("bad_id", ["../x", "..%2f..%2fetc", "%2fetc%2fpasswd", "/etc/passwd", "a\\b",
                                    "", "x" * 300, "..", "a b", "_index"])
def test_unsafe_session_ids_touch_nothing_outside_sessions(live_server, tmp_path, bad_id):
    victim = live_server.state_dir / "x.json"
    victim.write_text('{"messages": []}')
    outside_before = _tree(live_server.state_dir)
    for method, path, payload in [
        ("get", "/api/session", {"session_id": bad_id}),
        ("get", "/api/session/status", {"session_id": bad_id}),
        ("post", "/api/session/rename", {"session_id": bad_id, "title": "t"}),
        ("post", "/api/session/delete", {"session_id": bad_id}),
        ("post", "/api/chat/start", {"session_id": bad_id, "message": "hi"}),
    ]:
        if method == "get":
            r = requests.get(live_server.url(path) + "?session_id=" + bad_id, timeout=10)
        else:
            r = live_server.post(path, payload)
        assert r.status_code in (400, 404), (path, bad_id, r.status_code)
        assert "error" in r.json()
    assert _tree(live_server.state_dir) == outside_before


def test_bodies_over_the_cap_get_413_json(live_server):
    """The body cap defaults to 6 × the 1 MiB message limit + 1 MiB (7 MiB)."""
    sid = live_server.new_session()
    r = live_server.post("/api/session/rename", {"session_id": sid, "title": "x" * (7 * 1024 * 1024 + 1)})
    assert r.status_code == 413 and "error" in r.json()
    assert live_server.session(sid, messages=0)["title"] == "New chat"


def test_unknown_session_is_404(live_server):
    r = live_server.get("/api/session", params={"session_id": "doesnotexist"})
    assert r.status_code == 404 and "error" in r.json()
    assert live_server.get("/api/session/status", params={"session_id": "doesnotexist"}).status_code == 404


def test_a_3000_message_session_opens_by_its_newest_page_and_pages_back(make_server):
    server = make_server()
    _write_session(server.sessions_dir, "long", 3000)
    server.start()
    page = server.session("long", msg_limit=50)
    assert page["message_count"] == 3000 and page["messages_offset"] == 2950
    assert [m["content"] for m in page["messages"]] == [f"message {i}" for i in range(2950, 3000)]
    older = server.session("long", msg_limit=50, msg_before=2950)
    assert older["messages_offset"] == 2900 and older["messages"][-1]["content"] == "message 2949"
    first = server.session("long", msg_limit=50, msg_before=20)
    assert first["messages_offset"] == 0 and len(first["messages"]) == 20
    meta = server.session("long", messages=0)
    assert "messages" not in meta and meta["message_count"] == 3000
    full = server.session("long")
    assert len(full["messages"]) == 3000 and full["messages_offset"] == 0


CORRUPT = {
    "empty": b"",
    "nulljson": b"null",
    "truncated": b'{"session_id": "truncated", "title": "t", "messages": [{"role": "us',
    "wrongshape": b'{"session_id": "wrongshape", "messages": {"a": 1}}',
    "badutf8": b'{"session_id": "badutf8", "title": "\xff\xfe", "messages": []}',
}


def test_corrupt_files_never_hide_the_others(make_server):
    server = make_server()
    _write_session(server.sessions_dir, "healthy1", 2)
    _write_session(server.sessions_dir, "healthy2", 4)
    for name, content in CORRUPT.items():
        (server.sessions_dir / f"{name}.json").write_bytes(content)
    (server.sessions_dir / "notes.txt").write_text("not a session")
    server.start()
    r = server.get("/api/sessions")
    assert r.status_code == 200
    assert {s["session_id"] for s in r.json()["sessions"]} == {"healthy1", "healthy2"}
    assert {u["file"] for u in r.json()["unreadable"]} == {f"{n}.json" for n in CORRUPT}
    for name in CORRUPT:
        g = server.get("/api/session", params={"session_id": name})
        assert g.status_code == 500 and "unreadable" in g.json()["error"]
        rn = server.post("/api/session/rename", {"session_id": name, "title": "x"})
        assert rn.status_code == 500
        st = server.post("/api/chat/start", {"session_id": name, "message": "hi"})
        assert st.status_code == 500
    for name, content in CORRUPT.items():
        assert (server.sessions_dir / f"{name}.json").read_bytes() == content
    assert (server.sessions_dir / "notes.txt").read_text() == "not a session"


def test_files_changed_while_running_are_picked_up(live_server):
    _write_session(live_server.sessions_dir, "dropped1", 2, title="dropped in")
    ids = [s["session_id"] for s in live_server.get("/api/sessions").json()["sessions"]]
    assert "dropped1" in ids


def test_delete_removes_file_backup_and_index_entry_and_stays_deleted(make_server):
    server = make_server().start()
    sid = server.new_session()
    server.start_chat(sid, "hello")
    (server.sessions_dir / f"{sid}.json.bak").write_bytes((server.sessions_dir / f"{sid}.json").read_bytes())
    assert server.post("/api/session/delete", {"session_id": sid}).json() == {"ok": True}
    assert not (server.sessions_dir / f"{sid}.json").exists()
    assert not (server.sessions_dir / f"{sid}.json.bak").exists()
    assert sid not in [s["session_id"] for s in server.get("/api/sessions").json()["sessions"]]
    server.stop()
    server.start()
    assert server.get("/api/session", params={"session_id": sid}).status_code == 404
    assert sid not in [s["session_id"] for s in server.get("/api/sessions").json()["sessions"]]


def test_search_matches_titles_case_insensitively(live_server):
    sid = live_server.new_session(title="Quarterly Budget Review")
    results = live_server.get("/api/sessions/search", params={"q": "budget"}).json()["results"]
    assert sid in [r["session_id"] for r in results]
    assert live_server.get("/api/sessions/search", params={"q": "zzzz-nothing"}).json()["results"] == []
    assert live_server.get("/api/sessions/search", params={"q": "x", "limit": "many"}).status_code == 400


def test_index_is_rebuilt_after_restart_when_corrupt(make_server):
    server = make_server().start()
    ids = {server.new_session(title=f"t{i}") for i in range(3)}
    server.stop()
    (server.sessions_dir / "_index.json").write_bytes(b"{\"version\": 1, \"entr")
    server.start()
    listed = {s["session_id"] for s in server.get("/api/sessions").json()["sessions"]}
    assert listed == ids


def test_second_server_on_the_same_state_dir_is_refused(make_server, tmp_path):
    first = make_server(tmp=tmp_path / "one").start()
    second = LiveServer(tmp_path / "one")
    with pytest.raises(RuntimeError, match="already using"):
        second.start(timeout=20)
    assert first.get("/health").status_code == 200


def test_state_is_private_to_the_user(make_server):
    server = make_server().start()
    sid = server.new_session()
    server.start_chat(sid, "secret words")
    wait_until(lambda: not server.get("/api/session/status", params={"session_id": sid}).json()["streaming"])
    assert (server.state_dir.stat().st_mode & 0o077) == 0
    for path in server.state_dir.rglob("*"):
        assert (path.stat().st_mode & 0o077) == 0, f"{path} is readable by others"


def test_a_busy_port_is_a_clear_error_not_a_traceback(make_server, tmp_path):
    import socket
    import subprocess
    import sys

    from .helpers import ROOT, SERVER
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run([sys.executable, str(SERVER), "--port", str(port), "--agent", "fake",
                               "--state-dir", str(tmp_path / "st")], cwd=str(ROOT), capture_output=True,
                              text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)})
    assert proc.returncode == 3
    assert "cannot listen on 127.0.0.1:" in proc.stderr and "Traceback" not in proc.stderr


def test_wrong_typed_metadata_is_coerced_and_never_breaks_the_list(make_server):
    """Invariant 7: a file that parses but holds wrong-typed fields is listed, coerced."""
    server = make_server()
    _write_session(server.sessions_dir, "good", 2, updated_at=50.0)
    _write_session(server.sessions_dir, "odd", 2, updated_at="2024-05-01", created_at="yesterday", title=42,
                   pinned="yes", archived=None, message_count="2", model={"a": 1}, workspace=["x"])
    _write_session(server.sessions_dir, "nan", 1, updated_at=float("nan"), title=None)
    server.start()
    r = server.get("/api/sessions")
    assert r.status_code == 200, r.text
    rows = {row["session_id"]: row for row in r.json()["sessions"]}
    assert set(rows) == {"good", "odd", "nan"}
    odd = rows["odd"]
    assert odd["title"] == "42" and odd["pinned"] is False and odd["archived"] is False
    assert isinstance(odd["updated_at"], float) and odd["updated_at"] > 1.7e9  # 2024-05-01
    assert odd["model"] is None and odd["workspace"] is None and odd["message_count"] == 2
    assert rows["nan"]["title"] == "New chat" and rows["nan"]["updated_at"] == 1.0
    assert [row["session_id"] for row in r.json()["sessions"]][0] == "odd"  # newest first
    assert server.session("odd")["message_count"] == 2


def test_the_list_carries_only_the_sidebars_fields(make_server):
    server = make_server()
    _write_session(server.sessions_dir, "wide", 1, **{f"upstream_field_{i}": "x" * 500 for i in range(60)})
    server.start()
    row = server.get("/api/sessions").json()["sessions"][0]
    assert set(row) <= {"session_id", "title", "manual_title", "created_at", "updated_at", "model", "workspace",
                        "pinned", "archived", "message_count", "active_stream_id", "project_id", "tags"}
    assert server.session("wide", messages=0)["upstream_field_0"] == "x" * 500  # the session itself keeps them


def test_one_session_shows_wrong_typed_fields_as_the_list_does(make_server):
    server = make_server()
    _write_session(server.sessions_dir, "odd", 2, updated_at="2024-05-01", title=["x"], pinned="yes")
    server.start()
    listed = server.get("/api/sessions").json()["sessions"][0]
    for params in ({}, {"msg_limit": 1}, {"messages": 0}):
        shown = server.session("odd", **params)
        assert {k: shown[k] for k in ("title", "pinned", "updated_at")} == \
            {k: listed[k] for k in ("title", "pinned", "updated_at")}, params
