"""Export (JSON, Markdown) and import (our JSON, ChatGPT conversations.json) — real server."""
from __future__ import annotations

import io
import json
import zipfile
from urllib.parse import unquote

import pytest

from .helpers import fake_script, stream_events

IMPORT = "/api/session/import"


def chat(server, sid: str, text: str) -> None:
    stream_events(server, server.start_chat(sid, text))


def all_sessions(server) -> dict[str, dict]:
    rows = server.get("/api/sessions", params={"include_archived": 1}).json()["sessions"]
    return {r["session_id"]: r for r in rows}


def upload(server, data: bytes, name: str = "conversations.json"):
    """POST ``data`` as the page does: multipart, with the page's Origin (a browser always
    sends one; without it a form-encodable request is refused as cross-site)."""
    return server.post(IMPORT, files={"file": (name, data, "application/json")}, headers=same_origin(server))


def same_origin(server) -> dict:
    return {"Origin": server.url("")}


def node(nid, parent, children, role=None, text=None, *, t=None, hidden=False, ctype="text", **content):
    """A ChatGPT mapping node; ``role=None`` makes a structural node without a message."""
    message = None
    if role is not None:
        body = {"content_type": ctype, **content}
        if text is not None:
            body["parts"] = [text]
        message = {"id": nid, "author": {"role": role, "name": None}, "create_time": t, "content": body,
                   "status": "finished_successfully", "recipient": "all",
                   "metadata": {"is_visually_hidden_from_conversation": True} if hidden else {}}
    return {"id": nid, "message": message, "parent": parent, "children": children}


def branched_conversation() -> dict:
    """root → system(hidden) → u1 → a1 → {u2 (first try) → a2, u2e (edited) → {a3 (first),
    a3r (regenerated, current), with a hidden context node and an empty node on the way}}."""
    nodes = [
        node("root", None, ["sys"]),
        node("sys", "root", ["ctx"], "system", "You are ChatGPT", t=1000.0, hidden=True),
        node("ctx", "sys", ["u1"], "user", None, t=1000.5, ctype="user_editable_context",
             user_profile="secret custom instructions"),
        node("u1", "ctx", ["a1"], "user", "What is a tree?", t=1001.0),
        node("a1", "u1", ["u2", "u2e"], "assistant", "A graph without cycles.", t=1002.0),
        node("u2", "a1", ["a2"], "user", "ABANDONED question", t=1003.0),
        node("a2", "u2", [], "assistant", "ABANDONED answer", t=1004.0),
        node("u2e", "a1", ["empty"], "user", "And a forest?", t=1005.0),
        node("empty", "u2e", ["a3", "a3r"], "assistant", "", t=1005.5),
        node("a3", "empty", [], "assistant", "FIRST attempt, regenerated away", t=1006.0),
        node("tool", "empty", ["a3r"], "tool", "browsing output", t=1006.5),
        node("a3r", "tool", [], "assistant", "Several disjoint trees.", t=1007.0),
    ]
    nodes.reverse()                                  # mapping order must not matter
    return {"title": "Trees and forests", "create_time": 1000.0, "update_time": 1007.0,
            "mapping": {n["id"]: n for n in nodes}, "current_node": "a3r",
            "conversation_id": "conv-trees", "default_model_slug": "gpt-4o"}


def simple_conversation(title: str, *texts: str) -> dict:
    ids = ["root"] + [f"n{i}" for i in range(len(texts))]
    mapping = {"root": node("root", None, [ids[1]] if texts else [])}
    for i, text in enumerate(texts):
        kids = [ids[i + 2]] if i + 2 < len(ids) else []
        mapping[ids[i + 1]] = node(ids[i + 1], ids[i], kids, "user" if i % 2 == 0 else "assistant", text,
                                   t=2000.0 + i)
    return {"title": title, "create_time": 2000.0, "update_time": 2000.0 + len(texts),
            "mapping": mapping, "current_node": ids[-1]}


# ---------------------------------------------------------------- export


def test_json_export_round_trips_through_import(live_server):
    s = live_server
    sid = s.new_session(title="Round trip ✓")
    chat(s, sid, "hello there")
    chat(s, sid, fake_script(tokens=3, reasoning="thinking hard",
                             tools=[{"name": "search", "args": {"q": "x"}, "result": "found"}]))
    original = s.session(sid)
    r = s.get("/api/session/export", params={"session_id": sid, "format": "json"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == "Round trip ✓.json"
    doc = r.json()
    assert doc["hermes_webui_export"] == 1 and doc["session"]["messages"] == original["messages"]
    assert "pending_user_message" not in doc["session"] and "intentional_shrink_at" not in doc["session"]

    r = upload(s, r.content, "export.json")
    assert r.status_code == 200, r.text
    [copy] = r.json()["sessions"]
    assert copy["session_id"] != sid and copy["title"] == "Round trip ✓"
    assert s.session(copy["session_id"])["messages"] == original["messages"]
    # importing the same file twice makes a second copy, never overwrites
    again = s.post(IMPORT, data=json.dumps(doc), headers={"Content-Type": "application/json"})
    assert again.status_code == 200, again.text
    assert again.json()["sessions"][0]["session_id"] not in (sid, copy["session_id"])


def test_markdown_export_is_a_readable_transcript(live_server):
    s = live_server
    sid = s.new_session(title="Notes: café")
    chat(s, sid, "first words")
    chat(s, sid, fake_script(tokens=2, reasoning="a private thought"))
    r = s.get("/api/session/export", params={"session_id": sid, "format": "md"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/markdown")
    assert 'filename="Notes_ caf_.md"' in r.headers["Content-Disposition"]
    text = r.text
    assert text.startswith("# Notes: café\n")
    order = [text.index(x) for x in ("## User", "first words", "## Assistant", "echo: first words",
                                     "a private thought", "t0 t1")]
    assert order == sorted(order)
    assert "<details><summary>Reasoning</summary>" in text


def test_export_errors(live_server):
    s = live_server
    sid = s.new_session()
    assert s.get("/api/session/export", params={"session_id": sid, "format": "pdf"}).status_code == 400
    assert s.get("/api/session/export", params={"session_id": "nope"}).status_code == 404
    assert s.get("/api/session/export", params={"session_id": "../x"}).status_code == 400
    assert s.get("/api/session/export").status_code == 400


# ---------------------------------------------------------------- ChatGPT


def test_chatgpt_export_with_branches_imports_the_current_branch_in_order(live_server):
    s = live_server
    export = [branched_conversation(), simple_conversation("Second chat", "ping", "pong")]
    r = upload(s, json.dumps(export).encode())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["imported"] == 2
    assert body["skipped_messages"] == 4        # hidden system, hidden context, empty, tool
    trees, second = body["sessions"]
    assert trees["title"] == "Trees and forests" and trees["message_count"] == 4
    assert trees["created_at"] == 1000.0 and trees["model"] == "gpt-4o"
    msgs = s.session(trees["session_id"])["messages"]
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "What is a tree?"), ("assistant", "A graph without cycles."),
        ("user", "And a forest?"), ("assistant", "Several disjoint trees.")]
    assert [m["timestamp"] for m in msgs] == [1001.0, 1002.0, 1005.0, 1007.0]
    assert [(m["role"], m["content"]) for m in s.session(second["session_id"])["messages"]] == [
        ("user", "ping"), ("assistant", "pong")]
    # an imported chat carries on like any other
    chat(s, trees["session_id"], "next question")
    assert s.session(trees["session_id"])["message_count"] == 6


def test_chatgpt_zip_export_is_accepted(live_server):
    s = live_server
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("chat.html", "<html></html>")
        zf.writestr("conversations.json", json.dumps([simple_conversation("Zipped", "hi", "hello")]))
    r = upload(s, buf.getvalue(), "export.zip")
    assert r.status_code == 200, r.text
    assert r.json()["sessions"][0]["title"] == "Zipped"


def _broken_second(conv) -> list:
    return [simple_conversation("Good one", "fine", "ok"), conv]


MALFORMED = {
    "not json": b"{ this is not json",
    "not utf-8": b'{"messages": ["\xff\xfe"]}',
    "unknown shape": json.dumps({"hello": "world"}).encode(),
    "empty list": b"[]",
    "a number": b"42",
    "only broken conversations": json.dumps([dict(simple_conversation("x", "a"), current_node="zz")]).encode(),
    "only hidden messages": json.dumps([{"title": "h", "current_node": "s", "mapping": {
        "s": node("s", None, [], "system", "sys", hidden=True)}}]).encode(),
    "our export, bad message": json.dumps({"hermes_webui_export": 1, "session": {
        "title": "t", "messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": 42}]}}).encode(),
    "our export, future version": json.dumps({"hermes_webui_export": 99, "session": {"messages": []}}).encode(),
    "empty file": b"",
    "broken zip": b"PK\x03\x04 definitely not a zip",
}


# A broken conversation among good ones: the good one is imported, the broken one named.
BROKEN_AMONG_GOOD = {
    "current_node not in mapping": (dict(simple_conversation("x", "a"), current_node="zz"), "x", "current_node"),
    "parent cycle": ({"title": "loop", "current_node": "a", "mapping": {
        "a": node("a", "b", [], "user", "A"), "b": node("b", "a", ["a"], "assistant", "B")}}, "loop", "cycle"),
    "dangling parent": ({"title": "dangling", "current_node": "a", "mapping": {
        "a": node("a", "gone", [], "user", "A")}}, "dangling", "missing"),
    "mapping not an object": ({"title": "m", "mapping": [], "current_node": "a"}, "m", "mapping"),
    "no mapping": ({"title": "nomap", "mapping": None}, "nomap", "mapping"),
    "conversation not an object": ("junk", "conversation 2", "not an object"),
    "only hidden messages": ({"title": "h", "current_node": "s", "mapping": {
        "s": node("s", None, [], "system", "sys", hidden=True)}}, "h", "no message"),
}


@pytest.mark.parametrize("case", list(BROKEN_AMONG_GOOD), ids=list(BROKEN_AMONG_GOOD))
def test_a_broken_conversation_among_good_ones_is_skipped_and_named(live_server, case):
    s = live_server
    broken, title, reason = BROKEN_AMONG_GOOD[case]
    r = upload(s, json.dumps(_broken_second(broken)).encode())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["imported"] == 1 and body["sessions"][0]["title"] == "Good one"
    assert [c["title"] for c in body["skipped_conversations"]] == [title]
    assert reason in body["skipped_conversations"][0]["reason"]
    assert s.session(body["sessions"][0]["session_id"])["message_count"] == 2


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_files_are_400_and_import_nothing(live_server, case):
    s = live_server
    before = set(all_sessions(s))
    files_before = sorted(p.name for p in s.sessions_dir.iterdir() if p.name != "_index.json")
    r = upload(s, MALFORMED[case])
    assert r.status_code == 400, r.text
    assert r.json()["error"]
    assert set(all_sessions(s)) == before
    assert sorted(p.name for p in s.sessions_dir.iterdir() if p.name != "_index.json") == files_before


def test_when_every_conversation_is_broken_the_400_names_them(live_server):
    bad = dict(simple_conversation("The broken one", "a"), current_node="zz")
    r = upload(live_server, json.dumps([bad, {"title": "No map"}]).encode())
    assert r.status_code == 400
    assert "The broken one" in r.json()["error"] and "current_node" in r.json()["error"]


def test_import_needs_a_file_part(live_server):
    r = live_server.post(IMPORT, files={"other": ("x.json", b"{}")}, headers=same_origin(live_server))
    assert r.status_code == 400 and "'file'" in r.json()["error"]


def test_import_takes_files_above_the_default_body_limit_and_refuses_oversized(make_server):
    s = make_server(args=("--max-import-bytes", str(50 * 1024 * 1024))).start()
    big_text = "lorem ipsum " * 300_000                     # a 3.6 MB reply: over the default body limit
    r = upload(s, json.dumps([simple_conversation("Big one", "short question", big_text)]).encode())
    assert r.status_code == 200, r.text
    assert s.session(r.json()["sessions"][0]["session_id"])["messages"][1]["content"] == big_text

    before = set(all_sessions(s))
    too_big = b" " * (50 * 1024 * 1024) + json.dumps([simple_conversation("x", "a")]).encode()
    r = upload(s, too_big)
    assert r.status_code == 413 and "error" in r.json()
    r = s.post(IMPORT, data=too_big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "error" in r.json()
    assert set(all_sessions(s)) == before


def test_markdown_export_shows_a_title_as_typed_not_as_markup(live_server):
    from markdown_it import MarkdownIt
    title = "<b>bold</b> *x* [a](javascript:alert(1)) & c"
    sid = live_server.post("/api/session/new", {"title": title}).json()["session"]["session_id"]
    md = live_server.get("/api/session/export", params={"session_id": sid, "format": "md"}).text
    heading = MarkdownIt().render(md.splitlines()[0])
    assert heading == "<h1>&lt;b&gt;bold&lt;/b&gt; *x* [a](javascript:alert(1)) &amp; c</h1>\n"
