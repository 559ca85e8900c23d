"""Session files in the upstream's layout (a migrated or shared state dir) read fast and exactly.

The upstream writes ``json.dumps(session, ensure_ascii=False, indent=2)`` with
``messages`` followed by more keys (``bench.corpus.encode_upstream_session``). A window
of such a file is read through an index of its messages' byte ranges, built by one pass
of the JSON parser and kept per file version (:func:`api.codec.window_any_layout`):
these tests show that windows equal a full parse, that the index is built once and
rebuilt for a new version, that a stale index is never trusted, and that a broken file
is still reported unreadable.
"""
from __future__ import annotations

import json
import os
from unittest import mock

import pytest

from api import codec
from api.errors import SessionUnreadable
from api.models import SessionStore
from bench.corpus import encode_upstream_session

from .helpers import fake_script, stream_events, tokens_of


def _messages(n: int, size: int = 600, tag: str = "m") -> list[dict]:
    """``n`` messages of ~``size`` bytes, full of what looks like the file's structure."""
    pad = ('"\n    },\n    {\\"role\\": [\\u00e9 ]}' * (size // 30 + 1))[:size]
    out = []
    for i in range(n):
        msg = {"role": "user" if i % 2 == 0 else "assistant", "content": f"{tag}{i} {pad}", "timestamp": float(i)}
        if i % 3 == 2:
            msg["tool_calls"] = [{"id": f"c{i}", "args": {"command": "echo ']}'"}, "result": f"{tag}{i}" + " ]},{"}]
        out.append(msg)
    return out


def _write_upstream(store: SessionStore, sid: str, messages: list[dict], **tail) -> bytes:
    raw = encode_upstream_session({"session_id": sid, "title": f"upstream {sid}", "created_at": 1.0,
                                   "updated_at": 2.0, "model": "gpt-x"}, messages,
                                  tool_calls=tail.get("tool_calls", [{"id": "t", "result": "]}\n"}]),
                                  context_messages=tail.get("context_messages", [{"role": "user", "content": "c"}]))
    store.path(sid).write_bytes(raw)
    return raw


@pytest.fixture
def store(tmp_path):
    s = SessionStore(tmp_path / "sessions")
    yield s
    s.close()


def test_upstream_file_windows_equal_a_full_parse_without_one(store):
    messages = _messages(400)  # ~300 KB: its index is kept
    _write_upstream(store, "up", messages)
    full = store.load("up")
    assert full.messages == messages
    with mock.patch.object(store, "load", side_effect=AssertionError("parsed the whole file")):
        for limit, before in [(30, None), (30, 400), (30, 200), (1, 1), (5, 3), (30, 0), (None, 17), (500, None)]:
            meta, window, offset = store.read_window("up", limit, before)
            end = 400 if before is None else before
            start = 0 if limit is None else max(0, end - limit)
            assert (window, offset) == (messages[start:end], start)
            assert meta == full.meta
            # the keys after the array are part of the metadata, as a full parse gives them
            assert meta["context_messages"] == [{"role": "user", "content": "c"}] and meta["message_count"] == 400
        meta, array = store.read_all_raw("up")
    assert json.loads(array) == messages and meta == full.meta


def test_the_index_is_built_once_per_file_version(store):
    messages = _messages(400)
    _write_upstream(store, "up", messages)
    with mock.patch.object(codec, "index_messages", wraps=codec.index_messages) as build:
        for _ in range(10):
            assert store.read_window("up", 30, None)[1] == messages[-30:]
        assert store.read_window("up", 30, 100)[1] == messages[70:100]
        assert build.call_count == 1
        newer = _messages(401, tag="n")  # a new version of the file (atomically replaced, as the upstream does)
        tmp = store.path("up").with_suffix(".tmp")
        tmp.write_bytes(encode_upstream_session({"session_id": "up"}, newer))
        os.replace(tmp, store.path("up"))
        assert store.read_window("up", 30, None)[1] == newer[-30:]
        assert build.call_count == 2


def test_a_session_saved_by_us_after_an_upstream_read_reads_its_new_messages(store):
    messages = _messages(300)
    _write_upstream(store, "up", messages)
    assert store.read_window("up", 30, None)[1] == messages[-30:]
    added = [{"role": "user", "content": "next ]}", "timestamp": 9.0},
             {"role": "assistant", "content": "reply", "timestamp": 9.5, "status": "complete"}]
    store.append_messages("up", added, {})
    meta, window, offset = store.read_window("up", 30, None)
    assert (window, offset) == ((messages + added)[-30:], 272) and meta["message_count"] == 302


def test_an_index_that_no_longer_fits_the_file_is_never_trusted(store):
    """Give file B the remembered index of file A under B's own version key (as if B
    were A edited in place within one timestamp tick): B still reads exactly."""
    _write_upstream(store, "a", _messages(300, size=700))
    store.read_window("a", 30, None)
    b_messages = _messages(300, size=650, tag="b")
    _write_upstream(store, "b", b_messages)
    a_version = codec.MESSAGE_INDEXES.version(os.stat(store.path("a")))
    b_version = codec.MESSAGE_INDEXES.version(os.stat(store.path("b")))
    stale = codec.MESSAGE_INDEXES.get(a_version)
    assert stale is not None
    codec.MESSAGE_INDEXES.put(b_version, stale)
    for limit, before in [(30, None), (10, 150), (None, None)]:
        meta, window, offset = store.read_window("b", limit, before)
        end = 300 if before is None else before
        start = 0 if limit is None else end - limit
        assert (window, offset) == (b_messages[start:end], start)
    assert json.loads(store.read_all_raw("b")[1]) == b_messages


def test_a_second_messages_key_reads_as_a_full_parse_does(store):
    """json.loads keeps the last of two equal keys: so must the window."""
    first, second = _messages(3, tag="first"), _messages(200, tag="second")
    text = json.dumps({"session_id": "dup", "messages": first, "tool_calls": []}, indent=2)[:-2]
    text += ',\n  "messages": ' + json.dumps(second, indent=2) + "\n}"
    store.path("dup").write_text(text)
    assert store.load("dup").messages == second
    assert store.read_window("dup", 30, None)[1] == second[-30:]


@pytest.mark.parametrize("damage", ["message not an object", "truncated", "bad UTF-8 far from the window",
                                    "text after the object"])
def test_a_broken_upstream_file_is_unreadable_in_every_read(store, damage):
    messages = _messages(300)
    raw = _write_upstream(store, "bad", messages)
    store.read_window("bad", 30, None)  # an index of the sound version exists
    if damage == "message not an object":
        raw = raw.replace(b'"messages": [\n    {', b'"messages": [\n    7,\n    {', 1)
    elif damage == "truncated":
        raw = raw[: len(raw) * 2 // 3]
    elif damage == "bad UTF-8 far from the window":
        at = raw.index(b"m5 ")
        raw = raw[:at] + b"\xff" + raw[at + 1:]
    else:
        raw += b' {"x": 1}'
    store.path("bad").write_bytes(raw)
    for call in (lambda: store.read_window("bad", 30, None), lambda: store.read_all_raw("bad"),
                 lambda: store.load("bad")):
        with pytest.raises(SessionUnreadable):
            call()


def test_an_upstream_state_dir_opens_pages_and_takes_a_turn_over_http(make_server):
    server = make_server()
    server.sessions_dir.mkdir(parents=True)
    messages = _messages(600)
    _write_upstream(SessionStore(server.sessions_dir), "upstream-chat", messages)
    server.start()
    page = server.session("upstream-chat", msg_limit=30)
    assert page["messages"] == messages[-30:] and page["messages_offset"] == 570 and page["message_count"] == 600
    older = server.session("upstream-chat", msg_limit=30, msg_before=570)
    assert older["messages"] == messages[540:570]
    assert server.session("upstream-chat")["messages"] == messages
    stream_id = server.start_chat("upstream-chat", fake_script(tokens=3))
    assert tokens_of(stream_events(server, stream_id)) == "t0 t1 t2 "
    page = server.session("upstream-chat", msg_limit=2)
    assert [m["content"] for m in page["messages"]] == [fake_script(tokens=3), "t0 t1 t2 "]
    assert page["messages_offset"] == 600
