"""Property-based tests of the session file codec and its header parser (DESIGN §3 inv. 8).

Documents are generated with every field that can hold user or agent text — message,
reply, reasoning, tool args, tool result, title, model, workspace, and the fields older
versions and the upstream system keep in their metadata — at sizes from 0 B to 2 MB,
with sizes at the header parser's read boundaries ±1, multibyte characters and escapes
straddling those boundaries, lone surrogates and NUL. The property: what is written is
read back identically by the full load, the metadata-only read, every window read and
the raw pass-through, and a valid file is never reported unreadable.
"""
from __future__ import annotations

import json
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.codec import HEAD_CHUNK, Incomplete, encode_session, parse_header, read_header
from api.models import SessionStore

# Read boundaries of read_header: 16 KiB, then ×4.
BOUNDARIES = [HEAD_CHUNK * 4 ** k for k in range(4)]
SIZES = sorted({0, 1, 2, 17, 400, 18 * 1024, 80_000, 550_000, 2_000_000}
               | {b + d for b in BOUNDARIES for d in (-2, -1, 0, 1, 2)})
# Pieces that make escapes and multibyte sequences land on every byte position.
PIECES = ["a", " ", '"', "\\", "\n", "\t", "\x00", "\x1f", "é", "中", "ש", "😀", "👩‍👩‍👧", "\ud800", "\udfff",
          "\u2028", "</script>", "\\u00e9"]

settings.register_profile("codec", deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("codec")


@st.composite
def texts(draw, sizes=SIZES):
    """A string of a size near a read boundary (in characters), built from a random
    pattern of awkward pieces repeated (so 2 MB strings cost little to generate)."""
    size = draw(st.sampled_from(sizes))
    pattern = "".join(draw(st.lists(st.sampled_from(PIECES), min_size=1, max_size=12)))
    shift = draw(st.integers(0, 3))
    return (pattern * (size // len(pattern) + 2))[shift:shift + size]


small_texts = texts(sizes=[0, 1, 5, 40, 199, 200, 201])


@st.composite
def documents(draw):
    meta = {"session_id": "s1", "title": draw(small_texts), "model": draw(small_texts),
            "workspace": draw(small_texts), "created_at": 1.5, "updated_at": 2.5,
            "pinned": draw(st.booleans()), "archived": False}
    if draw(st.booleans()):  # what earlier versions and the upstream keep in metadata
        meta["pending_user_message"] = draw(texts())
        meta["pending_assistant_message"] = {"role": "assistant", "content": draw(texts()), "status": "partial"}
    if draw(st.booleans()):
        meta["x_upstream_field"] = draw(texts())
    messages = []
    for i in range(draw(st.integers(0, 6))):
        msg = {"role": "user" if i % 2 == 0 else "assistant", "content": draw(texts()), "timestamp": float(i)}
        if msg["role"] == "assistant" and draw(st.booleans()):
            msg["reasoning"] = draw(texts())
            msg["tool_calls"] = [{"id": f"c{i}", "name": "terminal", "args": {"command": draw(small_texts)},
                                  "result": draw(texts()), "is_error": False}]
        messages.append(msg)
    return meta, messages


def _as_stored(value):
    """What a JSON round trip gives (the store writes lone surrogates as \\ud800 escapes)."""
    return json.loads(json.dumps(value))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = SessionStore(tmp_path_factory.mktemp("codec") / "sessions")
    yield s
    s.close()


@given(doc=documents())
def test_written_session_reads_back_whole_by_every_reader(store, doc):
    meta, messages = doc
    store.path("s1").write_bytes(encode_session(dict(meta, message_count=len(messages)), messages))
    full = store.load("s1")
    assert full.messages == _as_stored(messages)
    stub = store.load_metadata_only("s1")
    expected_meta = _as_stored(dict(meta, message_count=len(messages)))
    assert stub.meta == expected_meta
    for limit in (1, 2, 30):
        for before in (None, 0, len(messages) // 2, len(messages)):
            window_meta, window, offset = store.read_window("s1", limit, before)
            end = len(messages) if before is None else before
            assert (window, offset) == (_as_stored(messages)[max(0, end - limit):end], max(0, end - limit))
            assert window_meta == expected_meta
    raw_meta, array = store.read_all_raw("s1")
    assert json.loads(array) == _as_stored(messages) and raw_meta["message_count"] == len(messages)


@given(doc=documents(), indent=st.sampled_from([None, 0, 1, 2]), ascii_only=st.booleans(),
       messages_first=st.booleans())
def test_header_parser_reads_any_valid_layout(doc, indent, ascii_only, messages_first):
    """Files in other layouts (hand-edited, the upstream's, pretty-printed, messages not
    last): the header is the keys before "messages", whatever their size."""
    meta, messages = doc
    obj = {"messages": messages, **meta} if messages_first else {**meta, "messages": messages}
    raw = json.dumps(obj, indent=indent, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:  # a lone surrogate written raw is not UTF-8: not a valid file
        return
    header, key_at = read_header(raw, len(raw))
    assert header == ({} if messages_first else _as_stored(meta))
    assert raw[key_at:key_at + 10] == b'"messages"'


@given(size=st.sampled_from(SIZES[:-1]), piece=st.sampled_from(PIECES), shift=st.integers(0, 5))
@example(size=HEAD_CHUNK - 27, piece="\\", shift=0)
@example(size=HEAD_CHUNK - 24, piece="中", shift=1)
def test_a_cut_anywhere_in_the_header_means_read_more(size, piece, shift):
    """Every prefix of a valid header either parses or asks for more: never "malformed"."""
    value = (piece * (size // len(piece) + 2))[shift:shift + size]
    text = json.dumps({"session_id": "s1", "n": 12345, "t": True, "pending_user_message": value,
                       "messages": []}, ensure_ascii=False)
    cuts = {len(text) * k // 40 for k in range(40)} | {size + d for d in range(-3, 40)}
    for cut in sorted(c for c in cuts if 0 <= c < len(text)):
        try:
            parse_header(text[:cut], complete=False)
        except Incomplete:
            continue
        # a prefix that parses must already hold the whole header
        assert text[:cut].rstrip().endswith('"messages": ['), cut


def test_the_18_kb_paste_in_an_old_file_reads(store):
    """The reported bug: an earlier version kept the pending paste in the metadata, and
    a string cut at the 16 KiB read edge was taken for malformed JSON."""
    paste = "log line with \"quotes\" and ünïcode\n" * 520
    store.path("s1").write_bytes(json.dumps({"session_id": "s1", "title": "x", "message_count": 0,
                                             "active_stream_id": "dead", "pending_user_message": paste,
                                             "messages": []}).encode())
    assert store.load_metadata_only("s1").meta["pending_user_message"] == paste
    assert store.read_window("s1", 30, None)[1] == []


# ---------------------------------------------------------------- the upstream's layout

from bench.corpus import encode_upstream_session  # noqa: E402

# Strings that look like the structure around a message in the upstream's files.
DECOYS = ['"\n    },\n    {', '],\n  "tool_calls": [', '\\"}, {\\"role\\": \\"user\\"', "\\", '"', "}]}", "{[",
          '\n  ],\n  "messages": [']


def _pairs(total: int):
    """(limit, before) pairs over every edge of a transcript of ``total`` messages."""
    befores = [None] + sorted({0, 1, total // 2, max(0, total - 1), total, total + 3})
    for limit in (None, 1, 2, 3, 30, total + 5):
        for before in befores:
            yield limit, before


@given(doc=documents(), decoy=st.sampled_from(DECOYS), indent=st.sampled_from([2, None, 0]),
       trailing=st.booleans())
def test_upstream_layout_windows_equal_a_full_load(store, doc, decoy, indent, trailing):
    """Files as the upstream writes them (pretty-printed, 67 metadata keys, ``messages``
    followed by ``tool_calls``, ``anchor_activity_scenes``, ``context_messages``), with
    awkward strings of boundary sizes in every field and decoys of that structure in
    the messages and the keys after them: every window, its metadata, and the whole
    array read back exactly as a full parse does, and reading again (the index) too."""
    meta, messages = doc
    messages = [dict(m, note=decoy) for m in messages]
    tail = dict(tool_calls=[{"id": "c1", "args": decoy}] if trailing else None,
                scenes={"s": {"updated_at": 3.0, "body": decoy}} if trailing else None,
                context_messages=[{"role": "user", "content": decoy}] if trailing else None,
                extra={"last_usage": {"decoy": decoy}} if trailing else None)
    raw = encode_upstream_session(meta, messages, **tail)
    if indent != 2:  # the same keys and order, written compactly: still not our layout
        raw = json.dumps(json.loads(raw), indent=indent, ensure_ascii=False).encode("utf-8", "surrogatepass")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:  # a lone surrogate written raw is not a valid file
            return
    store.path("s1").write_bytes(raw)
    full = store.load("s1")
    # served from the index, never by the full parse
    with mock.patch.object(store, "load", side_effect=AssertionError("parsed the whole file")):
        for _ in range(2):  # the first read builds the index, the second uses it (large files)
            for limit, before in _pairs(len(full.messages)):
                window_meta, window, offset = store.read_window("s1", limit, before)
                end = len(full.messages) if before is None else min(before, len(full.messages))
                start = 0 if limit is None else max(0, end - limit)
                assert (window, offset) == (full.messages[start:end], start), (limit, before)
                assert window_meta == full.meta
        raw_meta, array = store.read_all_raw("s1")
    assert json.loads(array) == full.messages and raw_meta == full.meta
