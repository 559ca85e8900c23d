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


# ---------------------------------------------------------------- export and import


def upload(server, doc) -> dict:
    r = server.post(IMPORT, data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()


def test_json_export_carries_the_versions_and_import_restores_them(live_server):
    s = live_server
    sid = three_retries(s)
    op(s, "/api/session/edit", session_id=sid, message_index=2, content="second, edited — 编辑 ✓")
    assert switch(s, sid, 2, 1).status_code == 200                 # a version that is not the newest
    original = s.session(sid)
    r = s.get("/api/session/export", params={"session_id": sid, "format": "json"})
    assert r.status_code == 200
    doc = r.json()
    assert doc["session"]["messages"] == original["messages"]        # the shown version, a plain list
    assert "version_points" not in doc["session"] and set(doc["session"]["versions"]) == {"2"}
    [copy] = upload(s, doc)["sessions"]
    got = s.session(copy["session_id"])
    assert got["messages"] == original["messages"] and got["versions"] == original["versions"]
    for version in (0, 2, 3):                                      # every version came along
        assert switch(s, copy["session_id"], 2, version).status_code == 200
        assert switch(s, sid, 2, version).status_code == 200
        assert s.session(copy["session_id"])["messages"] == s.session(sid)["messages"]
    assert s.session(copy["session_id"])["messages"][2]["content"] == "second, edited — 编辑 ✓"


def test_markdown_export_lists_the_other_versions(live_server):
    s = live_server
    sid = s.new_session(title="Versions in Markdown")
    chat(s, sid, "the question")
    op(s, "/api/session/edit", session_id=sid, message_index=0, content="the better question")
    text = s.get("/api/session/export", params={"session_id": sid, "format": "md"}).text
    shown_at, other_at = text.index("the better question"), text.index("## Other versions")
    assert "version 2 of 2" in text[:shown_at] and shown_at < other_at
    assert "### From message 1: version 1 of 2" in text[other_at:]
    assert text.index("echo: the question") > other_at


@pytest.mark.parametrize("versions, why", [
    ({"7": {"current": 1, "tails": [{"messages": [{"role": "user", "content": "x"}]}, None]}}, "index"),
    ({"0": {"current": 0, "tails": [{"messages": [{"role": "user", "content": "x"}]}, None]}}, "null"),
    ({"0": {"current": 1, "tails": [{"messages": []}, None]}}, "no message"),
    ({"0": {"current": 1, "tails": [{"messages": [{"role": "user", "content": 7}]}, None]}}, "content"),
    ("many", "object"),
])
def test_import_refuses_broken_versions_and_writes_nothing(live_server, versions, why):
    s = live_server
    before = {x["session_id"] for x in s.get("/api/sessions").json()["sessions"]}
    doc = {"hermes_webui_export": 1, "session": {"title": "broken", "versions": versions, "messages": [
        {"role": "user", "content": "hi", "timestamp": 1.0}, {"role": "assistant", "content": "yo", "timestamp": 2.0}]}}
    r = s.post(IMPORT, data=json.dumps(doc), headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and why in r.json()["error"], r.text
    assert {x["session_id"] for x in s.get("/api/sessions").json()["sessions"]} == before


def test_import_applies_the_size_limits_to_stored_versions(make_server):
    s = make_server(args=("--max-message-bytes", "1000")).start()
    doc = {"hermes_webui_export": 1, "session": {"title": "big", "messages": [
        {"role": "user", "content": "short", "timestamp": 1.0}],
        "versions": {"0": {"current": 1, "tails": [
            {"messages": [{"role": "user", "content": "é" * 600, "timestamp": 1.0}]}, None]}}}}
    r = s.post(IMPORT, data=json.dumps(doc), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "version 1 of 2" in r.json()["error"], r.text
    assert s.get("/api/sessions").json()["sessions"] == []
    s.stop()


def chatgpt_node(nid, parent, children, role=None, text=None, t=None, hidden=False):
    message = None
    if role is not None:
        message = {"id": nid, "author": {"role": role}, "create_time": t,
                   "content": {"content_type": "text", "parts": [text]},
                   "metadata": {"is_visually_hidden_from_conversation": True} if hidden else {}}
    return {"id": nid, "message": message, "parent": parent, "children": children}


def test_chatgpt_import_keeps_the_other_branches_as_versions(live_server):
    """root → u1 → {a1 (first answer), a1b (regenerated: → u2 → {a2, a2b}), a1c (newest, → u3x)};
    the user last saw a1b → u2 → a2 (current_node), not the newest branch."""
    s = live_server
    nodes = [
        chatgpt_node("root", None, ["sys"]),
        chatgpt_node("sys", "root", ["u1"], "system", "hidden", 1.0, hidden=True),
        chatgpt_node("u1", "sys", ["a1", "a1b", "a1c"], "user", "Name a colour", 2.0),
        chatgpt_node("a1", "u1", [], "assistant", "Red", 3.0),
        chatgpt_node("a1b", "u1", ["u2"], "assistant", "Blue", 4.0),
        chatgpt_node("u2", "a1b", ["a2", "a2b"], "user", "Another?", 5.0),
        chatgpt_node("a2", "u2", [], "assistant", "Green", 6.0),
        chatgpt_node("a2b", "u2", [], "assistant", "Yellow", 7.0),
        chatgpt_node("a1c", "u1", ["u3x", "u3y"], "assistant", "Violet 紫", 8.0),
        chatgpt_node("u3x", "a1c", [], "user", "Why violet?", 9.0),
        chatgpt_node("u3y", "a1c", [], "user", "Why not?", 10.0),
    ]
    conv = {"title": "Colours", "create_time": 1.0, "update_time": 10.0, "current_node": "a2",
            "mapping": {n["id"]: n for n in reversed(nodes)}}
    [session] = upload(s, [conv])["sessions"]
    sid = session["session_id"]
    got = s.session(sid)
    assert [m["content"] for m in got["messages"]] == ["Name a colour", "Blue", "Another?", "Green"]
    assert got["versions"] == {"1": {"count": 3, "current": 1}, "3": {"count": 2, "current": 0}}
    assert switch(s, sid, 3, 1).status_code == 200
    assert s.session(sid)["messages"][3]["content"] == "Yellow"
    assert switch(s, sid, 1, 0).status_code == 200
    assert [m["content"] for m in s.session(sid)["messages"]] == ["Name a colour", "Red"]
    assert switch(s, sid, 1, 2).status_code == 200
    got = s.session(sid)
    assert [m["content"] for m in got["messages"]] == ["Name a colour", "Violet 紫", "Why not?"]
    assert got["versions"] == {"1": {"count": 3, "current": 2}, "2": {"count": 2, "current": 1}}
    assert switch(s, sid, 1, 1).status_code == 200                  # the branch seen last, as it was left
    got = s.session(sid)
    assert [m["content"] for m in got["messages"]] == ["Name a colour", "Blue", "Another?", "Yellow"]
    # a new turn goes on the version shown
    chat(s, sid, "more")
    assert s.session(sid)["message_count"] == 6
