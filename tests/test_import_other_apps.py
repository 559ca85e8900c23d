"""Imports that never fail whole: a ChatGPT export as it comes today (several
``conversations-NNN.json`` in one ZIP, an empty conversation, no title, no times,
citations and attachment metadata), Claude's and Open WebUI's JSON exports, and a 400
that names the format of anything else, with nothing written."""
from __future__ import annotations

import io
import json
import zipfile

from hypothesis import given
from hypothesis import strategies as st

from api.chatgpt_import import chatgpt_branch
from api.import_formats import ROLES, claude_conversation, open_webui_conversation, settle_role, tool_result_text

from .test_import_export import all_sessions, branched_conversation, node, simple_conversation, upload


def _zip(files: dict[str, object]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, doc in files.items():
            zf.writestr(name, doc if isinstance(doc, str) else json.dumps(doc))
    return buf.getvalue()


def test_a_chatgpt_export_split_in_parts_imports_every_good_conversation(live_server):
    s = live_server
    untitled = simple_conversation("", "no title here", "fine")
    del untitled["title"], untitled["create_time"], untitled["update_time"]
    for n in untitled["mapping"].values():
        if n["message"]:
            n["message"]["create_time"] = None
    cited = simple_conversation("Cited", "what is it", "it is this【3†source】")
    cited["mapping"]["n1"]["message"]["metadata"] = {"citations": [{"start_ix": 10, "end_ix": 20,
                                                                     "metadata": {"url": "https://x.example"}}],
                                                      "attachments": [{"id": "file-1", "name": "a.pdf", "size": 3}]}
    no_node = simple_conversation("No current node", "hello", "hi")
    del no_node["current_node"]
    empty = {"title": "Empty one", "mapping": {"root": node("root", None, [])}, "current_node": "root"}
    archive = _zip({"chat.html": "<html></html>",
                    "conversations-000.json": [simple_conversation("First part", "a", "b"), empty],
                    "conversations-001.json": [cited, {"title": "Without mapping", "id": "x"}],
                    "conversations-002.json": [untitled, no_node],
                    "user.json": {"id": "user-1"}})
    before = set(all_sessions(s))
    r = upload(s, archive, "export.zip")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [row["title"] for row in body["sessions"]] == ["First part", "Cited", "Imported chat", "No current node"]
    assert {c["title"]: c["reason"] for c in body["skipped_conversations"]} == {
        "Empty one": "no message to import",
        "Without mapping": 'the conversation: "mapping" must be a non-empty object'}
    assert set(all_sessions(s)) - before == {row["session_id"] for row in body["sessions"]}
    cited_sid = body["sessions"][1]["session_id"]
    assert [m["content"] for m in s.session(cited_sid)["messages"]] == ["what is it", "it is this【3†source】"]
    assert [m["content"] for m in s.session(body["sessions"][3]["session_id"])["messages"]] == ["hello", "hi"]


def test_a_claude_export_is_imported(live_server):
    s = live_server
    doc = [{"uuid": "c-1", "name": "Sonnet chat", "created_at": "2024-05-01T10:00:00.000000Z",
            "updated_at": "2024-05-01T10:05:00Z", "account": {"uuid": "acc"},
            "chat_messages": [
                {"uuid": "m1", "sender": "human", "text": "Summarise this", "created_at": "2024-05-01T10:00:00Z",
                 "content": [{"type": "text", "text": "Summarise this"}],
                 "attachments": [{"file_name": "notes.txt", "extracted_content": "the notes"}], "files": []},
                {"uuid": "m2", "sender": "assistant", "text": "", "created_at": "2024-05-01T10:01:00Z",
                 "content": [{"type": "thinking", "thinking": "short"},
                             {"type": "tool_use", "id": "t1", "name": "web_search", "input": {"q": "x"}},
                             {"type": "tool_result", "content": [{"type": "text", "text": "found"}]},
                             {"type": "text", "text": "Here it is."}]}]},
           {"uuid": "c-2", "name": "", "chat_messages": []}]
    r = upload(s, json.dumps(doc).encode())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["imported"] == 1 and body["skipped_conversations"] == [{"title": "conversation 2",
                                                                          "reason": "no message to import"}]
    session = s.session(body["sessions"][0]["session_id"])
    assert session["title"] == "Sonnet chat" and session["created_at"] == 1714557600.0
    user, reply = session["messages"]
    assert user["role"] == "user" and user["content"] == "Summarise this\n\n[notes.txt]\nthe notes"
    assert reply["content"] == "Here it is." and reply["reasoning"] == "short"
    assert reply["tool_calls"][0]["name"] == "web_search" and reply["tool_calls"][0]["args"] == {"q": "x"}
    assert reply["tool_calls"][0]["result"] == "found"          # its text, not the blocks' JSON


def test_claude_tool_results_are_text_matched_to_their_call_by_id():
    conv = {"uuid": "c-3", "name": "Tools", "created_at": "2024-05-01T10:00:00Z", "chat_messages": [
        {"sender": "human", "text": "weather in 東京 and Paris?", "created_at": "2024-05-01T10:00:00Z"},
        {"sender": "assistant", "created_at": "2024-05-01T10:00:05Z", "content": [
            {"type": "tool_use", "id": "toolu_tokyo", "name": "weather", "input": {"city": "東京"}},
            {"type": "tool_use", "id": "toolu_paris", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_map", "name": "map", "input": {}},
            # answered out of order: each result goes to the call its tool_use_id names
            {"type": "tool_result", "tool_use_id": "toolu_paris", "is_error": True,
             "content": [{"type": "text", "text": "rate limited"}]},
            {"type": "tool_result", "tool_use_id": "toolu_tokyo",
             "content": [{"type": "text", "text": "晴れ"}, {"type": "text", "text": "22°C"}]},
            {"type": "tool_result", "tool_use_id": "toolu_gone", "content": "for no call: dropped"},
            {"type": "tool_result", "tool_use_id": "toolu_map",
             "content": [{"type": "image", "source": {"type": "base64", "data": "iVBOR"}}, {"type": "text", "text": "map"}]},
            {"type": "text", "text": "Tokyo is sunny."}]},
        {"sender": "assistant", "content": [  # no ids at all: matched in the order the calls were made
            {"type": "tool_use", "name": "clock", "input": {}}, {"type": "tool_use", "name": "calendar", "input": {}},
            {"type": "tool_result", "content": "10:00"}, {"type": "tool_result", "content": [{"type": "text", "text": "free"}]},
            {"type": "text", "text": "It is ten."}]}]}
    messages = claude_conversation(conv)["messages"]
    tokyo, paris, map_call = messages[1]["tool_calls"]
    assert tokyo["result"] == "晴れ\n22°C" and "is_error" not in tokyo
    assert paris["result"] == "rate limited" and paris["is_error"] is True
    assert map_call["result"] == "[image]\nmap"
    assert [c["result"] for c in messages[2]["tool_calls"]] == ["10:00", "free"]
    # the third message had no created_at: no timestamp, not the time of the import
    assert messages[1]["timestamp"] == 1714557605.0 and "timestamp" not in messages[2]


def test_imported_messages_without_a_time_or_a_known_role_stay_readable(live_server):
    s = live_server
    doc = {"messages": [{"role": "user", "content": "hi"},
                        {"role": "narrator", "content": "The door creaks.", "timestamp": 1714557600},
                        {"content": "no role at all", "timestamp": "yesterday"},
                        {"role": "Human", "content": "who is there?"},
                        {"role": "model", "content": "nobody"}], "title": "Story"}
    r = upload(s, json.dumps(doc).encode(), "story.json")
    assert r.status_code == 200, r.text
    messages = s.session(r.json()["sessions"][0]["session_id"])["messages"]
    assert [(m["role"], m.get("source_role")) for m in messages] == [
        ("user", None), ("assistant", "narrator"), ("assistant", "none"), ("user", None), ("assistant", None)]
    assert [m.get("timestamp") for m in messages] == [None, 1714557600, None, None, None]
    # Claude: an unknown sender is kept the same way; Open WebUI: a message with no time has none
    claude = claude_conversation({"chat_messages": [{"sender": "human", "text": "a"}, {"text": "b"}]})
    assert [(m["role"], m.get("source_role"), "timestamp" in m) for m in claude["messages"]] == [
        ("user", None, False), ("assistant", "none", False)]
    owui = open_webui_conversation({"chat": {"messages": [{"role": "user", "content": "x"},
                                                          {"role": "narrator", "content": "y"}]}})
    assert [(m["role"], m.get("source_role"), "timestamp" in m) for m in owui["messages"]] == [
        ("user", None, False), ("assistant", "narrator", False)]
    # ChatGPT without any create_time: no message claims the time of the import
    conv = simple_conversation("Untimed", "q", "a")
    conv.pop("create_time")
    for n in conv["mapping"].values():
        if n["message"]:
            n["message"]["create_time"] = None
    messages, _ = chatgpt_branch(conv, "conversation 1")
    assert [("timestamp" in m) for m in messages] == [False, False]
    r = upload(s, json.dumps([conv]).encode())
    assert r.status_code == 200, r.text
    stored = s.session(r.json()["sessions"][0]["session_id"])["messages"]
    assert [m["content"] for m in stored] == ["q", "a"] and not any("timestamp" in m for m in stored)
    # the other branches (versions) of a conversation without times too
    branched = branched_conversation()
    branched.pop("create_time", None)
    for n in branched["mapping"].values():
        if n["message"]:
            n["message"]["create_time"] = None
    r = upload(s, json.dumps([branched]).encode())
    assert r.status_code == 200, r.text
    stored = s.session(r.json()["sessions"][0]["session_id"])
    assert stored["versions"] and not any("timestamp" in m for m in stored["messages"])


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=8)


@given(role=_JSON, content=st.text(max_size=40))
def test_any_role_settles_to_one_the_page_shows_and_keeps_the_text(role, content):
    msg = settle_role({"role": role, "content": content})
    assert msg["role"] in ROLES and msg["content"] == content
    assert "source_role" not in msg or (msg["role"] == "assistant" and 0 < len(msg["source_role"]) <= 40)


@given(texts=st.lists(st.text(max_size=30), max_size=5), other=st.lists(_JSON, max_size=3))
def test_a_tool_result_reads_as_its_text_blocks_and_notes_the_rest(texts, other):
    blocks = [{"type": "text", "text": t} for t in texts] + [{"type": "image", "data": o} for o in other]
    out = tool_result_text(blocks)
    assert out == "\n".join(texts + ["[image]"] * len(other))
    assert tool_result_text("plain") == "plain" and isinstance(tool_result_text(other), str)


def test_an_open_webui_export_follows_the_branch_last_seen(live_server):
    s = live_server
    history = {"m1": {"id": "m1", "parentId": None, "role": "user", "content": "hi", "timestamp": 1714557600},
               "m2": {"id": "m2", "parentId": "m1", "role": "assistant", "content": "old answer", "timestamp": 1714557601},
               "m3": {"id": "m3", "parentId": "m1", "role": "assistant", "content": "new answer",
                      "timestamp": 1714557602, "model": "llama3.1"}}
    doc = [{"id": "w-1", "title": "WebUI chat", "created_at": 1714557600, "updated_at": 1714557700,
            "pinned": True, "archived": False, "meta": {"tags": ["work"]},
            "chat": {"title": "WebUI chat", "models": ["llama3.1"], "messages": list(history.values()),
                     "history": {"messages": history, "currentId": "m3"}}},
           {"id": "w-2", "title": "Broken", "chat": {"history": {"messages": {"a": {"parentId": "a"}},
                                                               "currentId": "a"}}}]
    r = upload(s, json.dumps(doc).encode())
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["title"] for c in body["skipped_conversations"]] == ["Broken"]
    row = body["sessions"][0]
    assert row["title"] == "WebUI chat" and row["pinned"] is True and row["tags"] == ["work"]
    messages = s.session(row["session_id"])["messages"]
    assert [m["content"] for m in messages] == ["hi", "new answer"] and messages[1]["model"] == "llama3.1"


def test_an_unsupported_format_is_a_400_naming_it_and_writes_nothing(live_server):
    s = live_server
    files_before = sorted(p.name for p in s.sessions_dir.iterdir())
    gemini_like = [{"header": "Gemini Apps", "title": "Asked x", "time": "2024-01-01T00:00:00Z"}]
    r = upload(s, json.dumps(gemini_like).encode())
    assert r.status_code == 400
    err = r.json()["error"]
    assert "unsupported format (a list of objects with keys header, time, title)" in err
    assert "Claude" in err and "Open WebUI" in err
    assert sorted(p.name for p in s.sessions_dir.iterdir()) == files_before


def test_an_oversize_conversation_is_skipped_and_named_the_others_imported(make_server):
    s = make_server(args=("--max-message-bytes", "2000")).start()
    huge = simple_conversation("Pasted a log", "日志" * 700, "ok")            # 4,200 bytes: over 2,000
    archive = _zip({"conversations-000.json": [simple_conversation("Small talk", "hi", "hello")],
                    "conversations-001.json": [huge, simple_conversation("Later", "bye", "see you")]})
    before = set(all_sessions(s))
    r = upload(s, archive, "export.zip")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [row["title"] for row in body["sessions"]] == ["Small talk", "Later"]
    [skip] = body["skipped_conversations"]
    assert skip["title"] == "Pasted a log" and "message 1" in skip["reason"] and "2,000 bytes" in skip["reason"]
    assert set(all_sessions(s)) - before == {row["session_id"] for row in body["sessions"]}
    # nothing but oversize conversations: a 413 that names them, nothing written
    files_before = sorted(p.name for p in s.sessions_dir.iterdir())
    r = upload(s, json.dumps([huge]).encode())
    assert r.status_code == 413 and "Pasted a log" in r.json()["error"]
    assert sorted(p.name for p in s.sessions_dir.iterdir()) == files_before
