"""Imports that never fail whole: a ChatGPT export as it comes today (several
``conversations-NNN.json`` in one ZIP, an empty conversation, no title, no times,
citations and attachment metadata), Claude's and Open WebUI's JSON exports, and a 400
that names the format of anything else, with nothing written."""
from __future__ import annotations

import io
import json
import zipfile

from .test_import_export import all_sessions, node, simple_conversation, upload


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
    assert json.loads(reply["tool_calls"][0]["result"]) == [{"type": "text", "text": "found"}]


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
