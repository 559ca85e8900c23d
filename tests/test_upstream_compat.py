"""Routes an upstream client relies on (issue 18, item 2): each test sends what the upstream
web UI's own page (nesquena/hermes-webui, static/*.js) sends on a path we share, and checks
that its answer has what that page reads, while our own shape stays. Real server, HTTP.

The comment above each request says, in our words, what the upstream's page sends there.
"""
from __future__ import annotations

import json

import pytest
import requests

from .helpers import LiveServer, fake_script, read_sse, stream_events, tokens_of, wait_until

PASSWORD = "correct horse battery staple"


def upstream_api(server: LiveServer, path: str, body: dict | None = None, **kw) -> requests.Response:
    """What the upstream page's ``api()`` helper sends: a same-origin ``fetch`` of a path
    relative to the page, with credentials, ``Content-Type: application/json`` and, for a
    POST, the JSON body. A browser adds its own ``Origin`` to a POST."""
    headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
    if body is None:
        return server.http.get(server.url(path), headers=headers, timeout=30, **kw)
    headers.setdefault("Origin", f"http://127.0.0.1:{server.port}")
    return server.http.post(server.url(path), data=json.dumps(body), headers=headers, timeout=30, **kw)


def finished_chat(server: LiveServer, texts: list[str]) -> str:
    sid = server.new_session()
    for text in texts:
        stream_events(server, server.start_chat(sid, text))
    return sid


# ---------------------------------------------------------------- chat


def test_get_chat_cancel_with_the_stream_id_in_the_query_cancels(live_server):
    sid = live_server.new_session()
    stream_id = live_server.start_chat(sid, fake_script(tokens=2, hang=True))
    with requests.get(live_server.url("/api/chat/stream"), params={"stream_id": stream_id}, stream=True,
                      timeout=30) as r:
        read_sse(r, stop_after=2)
        # upstream boot.js: a GET of api/chat/cancel?stream_id=<id> with credentials, no body
        answer = upstream_api(live_server, f"/api/chat/cancel?stream_id={stream_id}")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"ok": True, "cancelled": True, "stream_id": stream_id}
        events = read_sse(r)
    assert [e["event"] for e in events][-2:] == ["cancel", "stream_end"]
    reply = live_server.session(sid)["messages"][-1]
    assert reply["status"] == "cancelled" and reply["content"] == "t0 t1 "
    # idempotent, and our POST form still works
    again = upstream_api(live_server, f"/api/chat/cancel?stream_id={stream_id}").json()
    assert again["cancelled"] is False
    assert live_server.post("/api/chat/cancel", {"stream_id": stream_id}).json() == {"ok": True, "cancelled": False}


def test_get_chat_cancel_from_another_site_or_without_an_id_is_refused(live_server):
    sid = live_server.new_session()
    stream_id = live_server.start_chat(sid, fake_script(tokens=1, hang=True))
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Referer": "http://evil.example/page.html"},
                    {"Origin": "http://evil.example"}):
        r = requests.get(live_server.url("/api/chat/cancel"), params={"stream_id": stream_id}, headers=headers,
                         timeout=30)
        assert r.status_code == 403, headers
    assert live_server.get("/api/session/status", params={"session_id": sid}).json()["streaming"] is True
    assert requests.get(live_server.url("/api/chat/cancel"), timeout=30).status_code == 400
    assert live_server.post("/api/chat/cancel", {"stream_id": stream_id}).json()["cancelled"] is True


def test_done_carries_the_transcript_when_the_upstream_page_follows_the_stream(live_server):
    sid = finished_chat(live_server, ["first question"])
    stream_id = live_server.start_chat(sid, "second question 日本語 🙂")
    # upstream messages.js: an EventSource on api/chat/stream?stream_id=<id>&replay=1&after_seq=<n>&after_event_id=<id>
    url = live_server.url(f"/api/chat/stream?stream_id={stream_id}&replay=1&after_seq=0&after_event_id=")
    with requests.get(url, stream=True, timeout=30) as r:
        events = read_sse(r)
    done = next(e["data"] for e in events if e["event"] == "done")
    saved = live_server.session(sid)["messages"]
    assert done["session"]["messages"] == saved and done["session"]["message_count"] == len(saved) == 4
    assert saved[-1]["content"] == tokens_of(events)
    # ours, without asking: metadata only (a 16 MB transcript is not pushed to every follower)
    plain = next(e["data"] for e in stream_events(live_server, stream_id) if e["event"] == "done")
    assert "messages" not in plain["session"] and plain["session"]["session_id"] == sid
    asked = requests.get(live_server.url(f"/api/chat/stream?stream_id={stream_id}&messages=1"), stream=True,
                         timeout=30)
    assert next(e["data"] for e in read_sse(asked) if e["event"] == "done")["session"]["messages"] == saved


# ---------------------------------------------------------------- sessions


def test_session_search_answers_the_upstream_sessions_list_beside_ours(live_server):
    titled = live_server.new_session(title="Kyoto trip notes")
    inside = finished_chat(live_server, ["参观图书馆然后", "then we walk to the Kyoto station"])
    # upstream sessions.js: GET api/sessions/search?q=<q>&content=1&depth=5; it keeps the rows of
    # data.sessions whose match_type is "content" (titles it filters itself)
    r = upstream_api(live_server, "/api/sessions/search?q=kyoto&content=1&depth=5")
    assert r.status_code == 200, r.text
    body = r.json()
    by_id = {s["session_id"]: s for s in body["sessions"]}
    assert by_id[titled]["match_type"] == "title" and by_id[titled]["title"] == "Kyoto trip notes"
    assert by_id[inside]["match_type"] == "content" and "Kyoto" in by_id[inside]["match_preview"]
    assert by_id[inside]["message_count"] == 4          # a sidebar row, as the upstream's list has
    assert body["count"] == len(body["sessions"]) and body["query"] == "kyoto"
    assert {x["session_id"] for x in body["results"]} == set(by_id)      # ours is still there
    titles_only = upstream_api(live_server, "/api/sessions/search?q=kyoto&content=0").json()
    assert [s["session_id"] for s in titles_only["sessions"]] == [titled]
    assert [x["session_id"] for x in titles_only["results"]] == [titled]


def test_paged_session_reads_give_the_upstream_messages_offset(live_server):
    sid = finished_chat(live_server, [f"question {i}" for i in range(5)])
    # upstream sessions.js: GET api/session?session_id=<id>&messages=1&resolve_model=0&msg_limit=<n>, then
    # &msg_before=<_messages_offset> to load older messages while scrolling up
    newest = upstream_api(live_server, f"/api/session?session_id={sid}&messages=1&resolve_model=0&msg_limit=4")
    s = newest.json()["session"]
    assert s["_messages_offset"] == s["messages_offset"] == 6 and s["_messages_truncated"] is True
    older = upstream_api(live_server, f"/api/session?session_id={sid}&messages=1&resolve_model=0"
                                      f"&msg_before={s['_messages_offset']}&msg_limit=4").json()["session"]
    assert older["_messages_offset"] == 2 and [m["content"] for m in older["messages"]][0] == "question 1"
    whole = upstream_api(live_server, f"/api/session?session_id={sid}").json()["session"]
    assert whole["_messages_offset"] == 0 and whole["_messages_truncated"] is False and len(whole["messages"]) == 10


def test_retry_the_upstream_way_trims_without_a_turn_and_the_page_sends_the_text(live_server):
    sid = finished_chat(live_server, ["first", "say it again"])
    # upstream commands.js: POST api/session/retry {session_id}; it reads r.last_user_text, reloads the
    # session, puts the text back in the composer and sends it with POST api/chat/start itself. Our retry
    # starts the turn; a caller that wants the upstream's behaviour adds start_turn: false.
    r = upstream_api(live_server, "/api/session/retry", {"session_id": sid, "start_turn": False})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["ok"] is True and answer["last_user_text"] == "say it again" and answer["removed_count"] == 2
    status = live_server.get("/api/session/status", params={"session_id": sid}).json()
    assert status["streaming"] is False and status["active_stream_id"] is None and status["message_count"] == 2
    assert [m["content"] for m in live_server.session(sid)["messages"]] == ["first", "echo: first"]
    # the page's next request: chat/start with that text (and its extra fields) is not refused
    start = upstream_api(live_server, "/api/chat/start", {"session_id": sid, "message": answer["last_user_text"],
                                                          "workspace": "", "profile": "default"})
    assert start.status_code == 200, start.text
    events = stream_events(live_server, start.json()["stream_id"])
    assert tokens_of(events) == "echo: say it again"
    # the trim was deliberate: self-heal must not bring the removed reply back
    after = live_server.session(sid)
    assert len(after["messages"]) == 4
    # ...and what it removed stays a version at the user message, as our own retry keeps it
    assert after["versions"] == {"2": {"count": 2, "current": 1}}
    old = live_server.post("/api/session/version", json={"session_id": sid, "message_index": 2, "version": 0})
    assert old.status_code == 200, old.text
    assert [m["content"] for m in live_server.session(sid)["messages"]][2:] == ["say it again", "echo: say it again"]
    bad = upstream_api(live_server, "/api/session/retry", {"session_id": sid, "start_turn": "no"})
    assert bad.status_code == 400 and len(live_server.session(sid)["messages"]) == 4


# ---------------------------------------------------------------- memory, workspace


def test_memory_reads_and_writes_by_the_upstream_section(live_server):
    # upstream panels.js: POST api/memory/write {section: "memory" | "user", content}
    w = upstream_api(live_server, "/api/memory/write", {"section": "memory", "content": "Cat: Ada. 猫"})
    assert w.status_code == 200, w.text
    assert w.json()["ok"] is True and w.json()["section"] == "memory" and w.json()["file"] == "MEMORY.md"
    assert upstream_api(live_server, "/api/memory/write", {"section": "user", "content": "Short answers"}
                        ).status_code == 200
    # upstream panels.js: GET api/memory, reading data.memory, data.user, data.memory_mtime
    got = upstream_api(live_server, "/api/memory").json()
    assert got["memory"] == "Cat: Ada. 猫" and got["user"] == "Short answers"
    assert got["memory_mtime"] == w.json()["mtime"]
    assert [f["content"] for f in got["files"]] == ["Cat: Ada. 猫", "Short answers"]   # ours
    for body in ({"section": "soul", "content": "x"}, {"section": "memory", "file": "USER.md", "content": "x"},
                 {"content": "x"}, {"section": ["memory"], "content": "x"}):
        r = upstream_api(live_server, "/api/memory/write", body)
        assert r.status_code == 400 and r.json()["error"], body
    assert upstream_api(live_server, "/api/memory").json()["memory"] == "Cat: Ada. 猫"


def test_workspaces_answer_the_upstream_list(live_server):
    # upstream panels.js: GET api/workspaces, reading data.workspaces ([{path, name}]) and data.last
    body = upstream_api(live_server, "/api/workspaces").json()
    assert body["workspaces"] == [{"path": r["path"], "name": r["name"]} for r in body["roots"]]
    assert body["last"] == body["roots"][0]["path"] and body["roots"][0]["name"] == "default"


def test_workspaces_add_rename_remove_as_the_upstream_page_sends_them(make_server):
    server = make_server().start()
    project = server.tmp / "projects" / "网站 site"
    project.mkdir(parents=True)
    roots_file = server.state_dir / "workspaces.json"
    listed = lambda: upstream_api(server, "/api/workspaces").json()["workspaces"]  # noqa: E731
    # upstream panels.js: POST api/workspaces/add {path}, then reads data.workspaces
    r = upstream_api(server, "/api/workspaces/add", {"path": str(project)})
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True and {"path": str(project), "name": "网站 site"} in r.json()["workspaces"]
    assert r.json()["workspaces"] == listed()
    # a chat can now work in it
    sid = server.post("/api/session/new", {"workspace": str(project)}).json()["session"]["session_id"]
    assert server.post("/api/file/create", {"session_id": sid, "path": "a.txt", "content": "x"}).status_code == 200
    assert (project / "a.txt").read_text() == "x"
    # upstream panels.js: POST api/workspaces/rename {path, name} after an add with a friendly name
    r = upstream_api(server, "/api/workspaces/rename", {"path": str(project), "name": "  Site  "})
    assert r.status_code == 200, r.text
    assert {"path": str(project), "name": "Site"} in r.json()["workspaces"]
    # refused, nothing written: the same rules as a migrated list
    before = roots_file.read_bytes()
    outside = server.tmp / "elsewhere"
    outside.mkdir()
    for body in ({"path": "/"}, {"path": str(server.home)}, {"path": str(server.tmp)},
                 {"path": str(server.home / ".hermes")}, {"path": str(server.state_dir)},
                 {"path": str(server.state_dir / "sessions")}, {"path": str(server.tmp / "missing")},
                 {"path": "relative/dir"}, {"path": ""}, {"path": str(project)},
                 {"path": str(outside), "pinned": True}, {"path": str(outside), "create": True},
                 {"path": str(outside), "name": 5}):
        (server.home / ".hermes").mkdir(parents=True, exist_ok=True)
        r = upstream_api(server, "/api/workspaces/add", body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]
    assert roots_file.read_bytes() == before
    assert upstream_api(server, "/api/workspaces/rename", {"path": str(project), "name": " "}).status_code == 400
    assert upstream_api(server, "/api/workspaces/rename", {"path": str(outside), "name": "x"}).status_code == 404
    default = listed()[0]["path"]
    assert upstream_api(server, "/api/workspaces/remove", {"path": default}).status_code == 404
    # upstream panels.js: POST api/workspaces/remove {path}; the folder itself stays
    r = upstream_api(server, "/api/workspaces/remove", {"path": str(project)})
    assert r.status_code == 200, r.text
    assert all(w["path"] != str(project) for w in r.json()["workspaces"]) and r.json()["workspaces"] == listed()
    assert (project / "a.txt").exists()
    assert server.post("/api/file/create", {"session_id": sid, "path": "b.txt"}).status_code == 403


def test_file_rename_takes_the_upstream_new_name(live_server):
    sid = live_server.new_session()
    assert live_server.post("/api/file/create", {"session_id": sid, "path": "notes", "kind": "dir"}).status_code == 200
    assert live_server.post("/api/file/create", {"session_id": sid, "path": "notes/draft.md", "content": "hi"}
                            ).status_code == 200
    # upstream ui.js: POST api/file/rename {session_id, path, new_name} (a name in the same folder)
    r = upstream_api(live_server, "/api/file/rename", {"session_id": sid, "path": "notes/draft.md",
                                                       "new_name": "最終版.md"})
    assert r.status_code == 200, r.text
    assert r.json()["new_path"] == r.json()["path"] == "notes/最終版.md" and r.json()["old_path"] == "notes/draft.md"
    listing = live_server.get("/api/list", params={"session_id": sid, "path": "notes"}).json()
    assert [e["name"] for e in listing["entries"]] == ["最終版.md"]
    for bad in ("../escape.md", "a/b.md", "..", "  ", "x\\y"):
        r = upstream_api(live_server, "/api/file/rename", {"session_id": sid, "path": "notes/最終版.md",
                                                           "new_name": bad})
        assert r.status_code == 400, bad
    both = upstream_api(live_server, "/api/file/rename", {"session_id": sid, "path": "notes/最終版.md",
                                                          "new_name": "a.md", "new_path": "b.md"})
    assert both.status_code == 400
    ours = live_server.post("/api/file/rename", {"session_id": sid, "path": "notes/最終版.md", "new_path": "top.md"})
    assert ours.status_code == 200 and ours.json()["path"] == "top.md"


# ---------------------------------------------------------------- auth


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("locked"), env={"HERMES_WEBUI_PASSWORD": PASSWORD}).start()
    yield server
    server.stop()


def test_scripts_authenticate_with_bearer_or_the_csrf_token_never_by_a_missing_origin(locked_server):
    count = lambda: len(locked_server.get("/api/sessions", headers=bearer).json()["sessions"])  # noqa: E731
    bearer = {"Authorization": f"Bearer {PASSWORD}"}
    before = count()
    # an upstream script logs in (cookie) and then posts with no Origin header, which the upstream trusts
    http = requests.Session()
    login = http.post(locked_server.url("/api/auth/login"), json={"password": PASSWORD}, timeout=30)
    assert login.status_code == 200
    r = http.post(locked_server.url("/api/session/new"), json={"title": "no origin"}, timeout=30)
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["error"]
    r = requests.post(locked_server.url("/api/session/new"), json={"title": "nothing at all"}, timeout=30)
    assert r.status_code in (401, 403)
    assert count() == before
    # what works: the login's CSRF token, or the password as a bearer token (no cookie needed)
    r = http.post(locked_server.url("/api/session/new"), json={"title": "token"},
                  headers={"X-CSRF-Token": login.json()["csrf_token"]}, timeout=30)
    assert r.status_code == 200
    r = requests.post(locked_server.url("/api/session/new"), json={"title": "bearer"}, headers=bearer, timeout=30)
    assert r.status_code == 200
    cancel = requests.get(locked_server.url("/api/chat/cancel"), params={"stream_id": "none"}, timeout=30)
    assert cancel.status_code == 401                     # the GET form is behind the login too
    assert requests.get(locked_server.url("/api/chat/cancel"), params={"stream_id": "none"}, headers=bearer,
                        timeout=30).json()["cancelled"] is False
    assert count() == before + 2


# ---------------------------------------------------------------- settings


def test_settings_take_the_upstream_flat_shape_and_refuse_what_they_cannot_honour(live_server):
    # upstream boot.js / commands.js: POST api/settings {theme, skin} when the appearance changes
    r = upstream_api(live_server, "/api/settings", {"theme": "light", "skin": "default"})
    assert r.status_code == 200, r.text
    assert r.json()["settings"]["theme"] == "light" and r.json()["theme"] == "light"
    # upstream settings panel: {send_key: "ctrl+enter"}, {notifications_enabled: true}
    r = upstream_api(live_server, "/api/settings", {"send_key": "ctrl+enter", "notifications_enabled": True})
    assert r.status_code == 200, r.text
    got = upstream_api(live_server, "/api/settings").json()
    assert got["settings"]["send_key"] == "ctrl-enter" and got["send_key"] == "ctrl+enter"
    assert got["settings"]["notify_on_reply"] is True and got["notifications_enabled"] is True
    # never silently dropped: a field we have no counterpart for, or a value we cannot honour, is a 400
    for body in ({"show_token_usage": True}, {"theme": "dark", "skin": "ares"}, {"send_key": "shift+enter"},
                 {"theme": "dark", "bot_name": "Hermes"}, {"notifications_enabled": "yes"},
                 {"default_model": "not-a-listed-model"}):
        r = upstream_api(live_server, "/api/settings", body)
        assert r.status_code == 400, body
        assert r.json()["error"]
    after = upstream_api(live_server, "/api/settings").json()["settings"]
    assert after == got["settings"]                        # nothing stored by a refused request
    # ours still works beside it
    assert live_server.post("/api/settings", {"settings": {"theme": None}}).json()["theme"] == "system"


def test_settings_set_the_password_the_upstream_way_and_check_the_current_one(make_server):
    server = make_server().start()
    # upstream settings panel: {_set_password: <new>} (the first password: no current one)
    r = upstream_api(server, "/api/settings", {"_set_password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["csrf_token"]
    assert requests.get(server.url("/api/sessions"), timeout=30).status_code == 401   # auth is on now
    # a change that sends _current_password has it checked, wrong → 403, nothing changed
    r = upstream_api(server, "/api/settings", {"_set_password": "another long password",
                                               "_current_password": "wrong guess"},
                     headers={"X-CSRF-Token": token})
    assert r.status_code == 403
    assert requests.get(server.url("/api/sessions"), headers={"Authorization": f"Bearer {PASSWORD}"},
                        timeout=30).status_code == 200
    # clearing without the current password: the 400 names the field the flat shape calls it
    r = upstream_api(server, "/api/settings", {"_clear_password": True}, headers={"X-CSRF-Token": token})
    assert r.status_code == 400 and "'_current_password'" in r.json()["error"], r.text
    r = server.post("/api/settings", {"remove_password": True}, headers={"X-CSRF-Token": token,
                                                                         "Authorization": f"Bearer {PASSWORD}"})
    assert r.status_code == 400 and "'current_password'" in r.json()["error"], r.text
    r = upstream_api(server, "/api/settings", {"_clear_password": True, "_current_password": PASSWORD},
                     headers={"X-CSRF-Token": token})
    assert r.status_code == 200, r.text
    assert requests.get(server.url("/api/sessions"), timeout=30).status_code == 200   # open again
