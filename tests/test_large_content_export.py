"""Export and import with content of the sizes real users produce (issue 13 item 5): a
1 MiB message, a 550 KB tool result, 35 KB of reasoning, a reply cut inside a code
fence, CJK / RTL / emoji / lone surrogates — real server, sessions written to disk first.
"""
from __future__ import annotations

import json
import time

from markdown_it import MarkdownIt

from .test_import_export import IMPORT, all_sessions, node, same_origin, upload

MIB = 1024 * 1024
MIXED = "中文字符 עברית مرحبا 😀👩‍👩‍👧 é "  # CJK, Hebrew, Arabic, emoji (ZWJ sequence), a combining mark


def sized(text_unit: str, size: int, middle: str = "") -> str:
    """``text_unit`` repeated to exactly ``size`` UTF-8 bytes, ``middle`` in the middle."""
    half = (size - len(middle.encode())) // 2
    unit = text_unit.encode()
    left = (unit * (half // len(unit) + 1))[:half].decode("utf-8", "ignore")
    out = left + middle
    rest = size - len(out.encode())
    out += ("x" * rest)
    assert len(out.encode()) == size
    return out


def write_session(server, sid: str, title: str, messages: list[dict]) -> None:
    """A session file written before the server starts (plain JSON, metadata first, lone
    surrogates as ``\\ud800`` escapes as a hand-edited or foreign file may hold them)."""
    now = time.time()
    doc = {"session_id": sid, "title": title, "manual_title": True, "created_at": now - 60, "updated_at": now,
           "model": None, "workspace": None, "pinned": False, "archived": False,
           "message_count": len(messages), "messages": messages}
    server.sessions_dir.mkdir(parents=True, exist_ok=True)
    (server.sessions_dir / f"{sid}.json").write_text(json.dumps(doc), encoding="ascii")


def cleaned(value):
    """``value`` as the server keeps it: lone surrogates become U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [cleaned(v) for v in value]
    if isinstance(value, dict):
        return {cleaned(k): cleaned(v) for k, v in value.items()}
    return value


def big_messages() -> list[dict]:
    now = time.time()
    user = sized(MIXED, MIB - 3, middle=" needleword ") + "\ud800"  # 1 MiB once the lone surrogate is U+FFFD
    tool_result = sized("log line 0123456789 ``` ```` backticks\n", 550_000, middle=" toolneedle ")
    reasoning = sized("thinking about it… ", 35_000)
    reply = "Here is the start:\n\n```python\nprint('cut off here"           # cut inside a code fence
    return [
        {"role": "user", "content": user, "timestamp": now - 50},
        {"role": "assistant", "content": reply, "timestamp": now - 40, "status": "interrupted",
         "reasoning": reasoning,
         "tool_calls": [{"id": "c1", "name": "read_log", "args": {"path": "/var/log/big.log"},
                         "result": tool_result, "duration_ms": 120, "is_error": False}]},
        {"role": "user", "content": "RTL: שלום עולם, emoji 🧪, CJK 你好", "timestamp": now - 30},
        {"role": "assistant", "content": "Done.", "timestamp": now - 20, "status": "complete"},
    ]


def test_json_export_then_import_round_trips_a_1_mib_message_and_a_550_kb_tool_result(make_server):
    server = make_server()
    messages = big_messages()
    write_session(server, "bigone", "Big content 中文 😀", messages)
    server.start()
    expected = cleaned(messages)

    r = server.get("/api/session/export", params={"session_id": "bigone", "format": "json"})
    assert r.status_code == 200, r.text[:300]
    doc = json.loads(r.content.decode("utf-8"))                              # strict UTF-8: no lone surrogate
    assert doc["session"]["messages"] == expected
    assert len(doc["session"]["messages"][0]["content"].encode()) == MIB

    r = upload(server, r.content, "export.json")
    assert r.status_code == 200, r.text[:300]
    new_sid = r.json()["sessions"][0]["session_id"]
    assert server.session(new_sid)["messages"] == expected                # opened in full
    page = server.session(new_sid, msg_limit=3)                           # and paged
    assert page["messages"] == expected[1:] and page["messages_offset"] == 1
    assert server.session(new_sid, msg_limit=1, msg_before=1)["messages"] == expected[:1]
    listed = all_sessions(server)[new_sid]
    assert listed["title"] == "Big content 中文 😀" and listed["message_count"] == 4

    server.stop()                                                          # and after a restart
    server.start()
    assert server.session(new_sid)["messages"] == expected


def markdown_blocks(text: str) -> list:
    return MarkdownIt("commonmark").parse(text)


def test_markdown_export_is_valid_markdown_with_cut_fences_and_big_tool_output(make_server):
    server = make_server()
    messages = big_messages()
    write_session(server, "mdone", "Markdown export", messages)
    server.start()
    r = server.get("/api/session/export", params={"session_id": "mdone", "format": "md"})
    assert r.status_code == 200
    text = r.content.decode("utf-8")
    tokens = markdown_blocks(text)
    # Every message keeps its own heading: the reply cut inside ```python did not swallow
    # the messages after it.
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"]
    assert [h.split(" ")[0] for h in headings] == ["User", "Assistant", "User", "Assistant"]
    assert "(interrupted)" in headings[1]
    fences = [t for t in tokens if t.type == "fence"]
    cut = [f for f in fences if f.info == "python"]
    assert len(cut) == 1 and cut[0].content == "print('cut off here\n"
    # The tool result holds ``` and ```` runs: its fence is longer, so it stays one block,
    # cut at 100,000 characters with a note pointing to the JSON export.
    result = messages[1]["tool_calls"][0]["result"]
    [block] = [f for f in fences if f.content.startswith("log line")]
    assert block.content.startswith(result[:100_000])
    assert "more characters of this tool result are in the JSON export" in block.content
    [args] = [f for f in fences if f.info == "json"]
    assert json.loads(args.content) == {"path": "/var/log/big.log"}
    # The reasoning is there whole, and the messages' text too.
    assert messages[1]["reasoning"] in text
    assert "needleword" in text and "שלום עולם" in text and "\ufffd" in text
    assert text.rstrip().endswith("Done.")


def test_markdown_export_of_a_reply_cut_inside_a_longer_or_tilde_fence(make_server):
    server = make_server()
    now = time.time()
    write_session(server, "fences", "Fences", [
        {"role": "assistant", "content": "`````md\n```\nnot the end\n````\nstill inside", "timestamp": now},
        {"role": "user", "content": "~~~\ncut in tildes", "timestamp": now},
        {"role": "assistant", "content": "after", "timestamp": now},
    ])
    server.start()
    text = server.get("/api/session/export", params={"session_id": "fences", "format": "md"}).content.decode()
    tokens = markdown_blocks(text)
    headings = [t for t in tokens if t.type == "heading_open" and t.tag == "h2"]
    assert len(headings) == 3
    fences = [t for t in tokens if t.type == "fence"]
    assert [f.content for f in fences] == ["```\nnot the end\n````\nstill inside\n", "cut in tildes\n"]


def test_import_refuses_oversize_input_with_413_and_stores_nothing(make_server):
    s = make_server(args=("--max-import-bytes", str(50 * MIB))).start()
    before = set(all_sessions(s))
    files_before = sorted(p.name for p in s.sessions_dir.iterdir())
    over_message = {"hermes_webui_export": 1, "session": {"title": "too big", "messages": [
        {"role": "user", "content": "small", "timestamp": 1.0},
        {"role": "user", "content": "é" * (MIB // 2 + 1), "timestamp": 2.0}]}}     # 1 MiB + 2 bytes
    r = upload(s, json.dumps(over_message, ensure_ascii=False).encode())
    assert r.status_code == 413, r.text[:300]
    assert "message 2" in r.json()["error"] and "1,048,576" in r.json()["error"]
    over_file = b" " * (50 * MIB + 1) + b"[]"
    r = s.post(IMPORT, data=over_file, headers={"Content-Type": "application/json", **same_origin(s)})
    assert r.status_code == 413 and r.json()["error"]
    r = s.post(IMPORT, data=iter([over_file[i:i + MIB] for i in range(0, len(over_file), MIB)]),
               headers={"Content-Type": "application/json", **same_origin(s)})   # chunked: no Content-Length
    assert r.status_code == 413 and r.json()["error"]
    assert set(all_sessions(s)) == before
    assert sorted(p.name for p in s.sessions_dir.iterdir()) == files_before


def test_chatgpt_import_titles_are_one_line_of_at_most_200_characters(live_server):
    s = live_server
    long_title = "Line one\nline two\t" + "长" * 300 + "\ud83d"
    conv = {"title": long_title, "create_time": 1000.0, "update_time": 1001.0, "current_node": "a",
            "default_model_slug": "m" * 5000,
            "mapping": {"root": node("root", None, ["u"]),
                        "u": node("u", "root", ["a"], "user", "hi", t=1000.0),
                        "a": node("a", "u", [], "assistant", "hello", t=1001.0)}}
    r = upload(s, json.dumps([conv]).encode())
    assert r.status_code == 200, r.text
    [row] = r.json()["sessions"]
    assert row["title"] == ("Line one line two " + "长" * 300)[:200]
    session = s.session(row["session_id"])
    assert session["title"] == row["title"] and "\n" not in session["title"] and len(session["title"]) == 200
    assert session.get("model") in (None, "")                             # a 5,000-byte model name is left out
