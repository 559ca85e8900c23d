"""Titles: the first non-empty line of the first message (whole characters, ≤ 60), then one the
model writes when the first reply ends (api/titles.py): never over a title set by hand, off
with the profile's setting, never with the fake backend."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.agents.fake import FakeBackend
from api.titles import AUTO_TITLE_CHARS, _extends, auto_title, can_generate, clean_generated, plausible

from .helpers import stream_events, wait_until
from .test_session_events import Listener

PIECES = ["a", " ", "\n", "\t", "é", "e\u0301", "中", "😀", "👍🏽", "👩\u200d👩\u200d👧", "🏳\ufe0f\u200d🌈", "\u200d", "\ud800"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=120))
def test_a_title_is_one_line_of_whole_characters_at_most_60_long(pieces):
    text = "".join(pieces)
    title = auto_title(text)
    assert "\n" not in title and "\t" not in title and 0 < len(title) <= AUTO_TITLE_CHARS
    body = title[:-1] if title.endswith("…") else title
    if title.endswith("…"):
        assert body == "" or not body[-1] == "\u200d"
        first = next(ln for ln in text.replace("\ud800", "\ufffd").splitlines() if ln.strip())
        folded = " ".join(first.split())
        assert folded.startswith(body.rstrip())
        cut_at = len(body.rstrip())
        assert cut_at == len(folded) or not _extends(folded[cut_at])  # no character split in two


def test_the_title_is_the_first_non_empty_line_not_the_whole_paste():
    paste = "\n\n   \nERROR: disk full on /dev/sda1\n" + "stack line\n" * 10_000
    assert auto_title(paste) == "ERROR: disk full on /dev/sda1"
    assert auto_title("   ") == "New chat"
    family = "👩\u200d👩\u200d👧"
    assert auto_title("x" * 57 + family + " more") == "x" * 57 + "…"  # the family is not cut in two


# ---------------------------------------------------------------- titles written by the model


def test_a_generated_title_is_one_clean_line():
    assert clean_generated('"Atomic file writes in Python."') == "Atomic file writes in Python"
    assert clean_generated("<think>they ask about files</think>\n\nTitle: **Atomic writes**\nmore") == "Atomic writes"
    assert clean_generated("« Écrire un fichier de façon atomique »") == "Écrire un fichier de façon atomique"
    assert clean_generated("“原子写入文件”。") == "原子写入文件"
    assert clean_generated("   \n  ") is None and clean_generated(None) is None
    assert clean_generated("1. Gather your tools: you will need a mixer with a dough hook, a bowl") is None  # not a title
    assert clean_generated("word " * 40) is None


def test_a_title_that_shares_nothing_with_the_request_is_not_believed():
    assert plausible("Atomic file writes", "How do I write a file atomically?")
    assert plausible("红烧肉的做法", "我想学习做红烧肉，需要哪些材料？")
    assert not plausible("Packing for hiking in Norway", "我想学习做红烧肉，需要哪些材料？")   # an example copied
    assert not plausible("C'est bon, je suis", "Can you help me write a cover letter?")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_whatever_a_model_answers_the_title_is_one_short_line_or_nothing(answer):
    title = clean_generated(answer)
    assert title is None or (0 < len(title) <= AUTO_TITLE_CHARS and "\n" not in title and title == title.strip())


def test_the_fake_backend_never_generates_titles():
    assert can_generate(FakeBackend()) is False


class TitleModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible server: a streamed turn answers "Write to a temp file, then rename.";
    a non-streamed call (a title) answers, once ``gate`` is set, '"Atomic file writes."' for a
    request about atomic writes, else its first three words, capitalised."""

    gate = threading.Event()
    title_requests: list = []
    answered: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not body.get("stream"):
            TitleModel.title_requests.append(body)
            TitleModel.gate.wait(30)
            request = body["messages"][-1]["content"].removeprefix("Request: ")
            title = '"Atomic file writes."' if "atomically" in request else " ".join(request.split()[:3]).title()
            data = json.dumps({"id": "t", "object": "chat.completion", "created": 1, "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": title}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            TitleModel.answered.append(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        out = b""
        for piece in ("Write to a temp file,", " then rename."):
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            out += f"data: {json.dumps(chunk)}\n\n".encode()
        self.wfile.write(out + b"data: [DONE]\n\n")


@pytest.fixture(scope="module")
def model_url():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), TitleModel)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    TitleModel.gate.set()
    httpd.shutdown()


@pytest.fixture
def openai_server(make_server, model_url):
    TitleModel.title_requests.clear()
    TitleModel.answered.clear()
    TitleModel.gate.set()
    return make_server(agent="openai", args=("--base-url", model_url, "--model", "scripted")).start()


def _first_turn(server, text: str, **new) -> str:
    sid = server.new_session(**new)
    events = stream_events(server, server.start_chat(sid, text))
    assert events[-1]["data"]["status"] == "complete"
    return sid


def _title(server, sid: str) -> str:
    return server.session(sid, messages=0)["title"]


def test_the_model_titles_a_chat_when_its_first_reply_ends(openai_server):
    tab = Listener(openai_server)
    try:
        sid = _first_turn(openai_server, "How do I write a file atomically?\nIn Python, on Linux.")
        tab.wait_for(sid, "renamed")
    finally:
        tab.close()
    assert _title(openai_server, sid) == "Atomic file writes"
    session = openai_server.session(sid, messages=0)
    assert session["manual_title"] is False        # still an automatic title
    (asked,) = TitleModel.title_requests
    assert asked["messages"][0]["role"] == "system" and asked["max_tokens"] <= 32
    assert asked["messages"][-1]["content"] == "Request: How do I write a file atomically?\nIn Python, on Linux."
    stream_events(openai_server, openai_server.start_chat(sid, "And on Windows?"))
    assert len(TitleModel.title_requests) == 1     # only the first reply names the chat
    assert _title(openai_server, sid) == "Atomic file writes"


def test_a_retry_of_the_first_reply_does_not_ask_for_a_title_again(openai_server):
    sid = _first_turn(openai_server, "How do I write a file atomically?")
    wait_until(lambda: _title(openai_server, sid) == "Atomic file writes", message="the generated title")
    retry = openai_server.post("/api/session/retry", {"session_id": sid})
    assert retry.status_code == 200, retry.text
    assert stream_events(openai_server, retry.json()["stream_id"])[-1]["data"]["status"] == "complete"
    assert len(TitleModel.title_requests) == 1     # the model named it once; a retry keeps that title
    assert _title(openai_server, sid) == "Atomic file writes"
    # an edit that changes the first line is a new subject: the first line, then the model again
    edit = openai_server.post("/api/session/edit", {"session_id": sid, "message_index": 0,
                                                     "content": "name this edited chat"})
    assert edit.status_code == 200, edit.text
    stream_events(openai_server, edit.json()["stream_id"])
    wait_until(lambda: _title(openai_server, sid) == "Name This Edited", message="a title for the new first line")


@pytest.mark.parametrize("text, title", [
    ("```python\nprint(1)\n```\nwhy does this print 1?", "why does this print 1?"),
    ("# Deploy plan\nsteps", "Deploy plan"),
    ("> quoted error line\nwhat now", "quoted error line"),
    ("   \n~~~\nonly code here\n~~~", "only code here"),
    ("```\n```\n\n", "New chat"),
])
def test_a_title_skips_code_fences_and_markdown_marks(text, title):
    assert auto_title(text) == title


def test_a_title_set_by_hand_is_never_replaced(openai_server):
    manual = _first_turn(openai_server, "first line here", title="My own title")
    auto = _first_turn(openai_server, "another chat")
    wait_until(lambda: _title(openai_server, auto) == "Another Chat", message="the generated title")
    assert _title(openai_server, manual) == "My own title"
    assert [r["messages"][-1]["content"] for r in TitleModel.title_requests] == ["Request: another chat"]


def test_a_rename_while_the_title_is_being_written_wins(openai_server):
    TitleModel.gate.clear()                        # the model takes its time
    sid = _first_turn(openai_server, "slow title please")
    wait_until(lambda: TitleModel.title_requests, message="the title request")
    assert openai_server.post("/api/session/rename", {"session_id": sid, "title": "Renamed meanwhile"}).ok
    TitleModel.gate.set()
    wait_until(lambda: any("generated title of" in line and "dropped" in line for line in openai_server.output),
               message="the generated title to be dropped")
    assert TitleModel.answered and _title(openai_server, sid) == "Renamed meanwhile"


def test_the_setting_turns_generation_off_for_its_profile(openai_server):
    r = openai_server.post("/api/settings", {"settings": {"generate_titles": False}})
    assert r.status_code == 200, r.text
    assert r.json()["settings"]["generate_titles"] is False
    off = _first_turn(openai_server, "keep my first line")
    assert openai_server.post("/api/settings", {"settings": {"generate_titles": True}}).ok
    on = _first_turn(openai_server, "name this one")
    wait_until(lambda: _title(openai_server, on) == "Name This One", message="the generated title")
    assert _title(openai_server, off) == "keep my first line"
    assert len(TitleModel.title_requests) == 1
    assert openai_server.post("/api/settings", {"settings": {"generate_titles": "yes"}}).status_code == 400


def test_with_the_fake_backend_the_first_line_stays(live_server):
    tab = Listener(live_server)
    try:
        sid = live_server.new_session()
        stream_events(live_server, live_server.start_chat(sid, "\n  Plan the 🚀 launch  \nwith details"))
        tab.wait_for(sid, "turn_finished")
    finally:
        tab.close()
    assert _title(live_server, sid) == "Plan the 🚀 launch"
    assert [e["reason"] for e in tab.events if e["session_id"] == sid] == ["created", "turn_started", "turn_finished"]


def test_the_embedded_model_names_a_chat(make_server):
    server = make_server(agent="local", args=("--max-tokens", "24", "--context-size", "1024")).start()
    tab = Listener(server)
    try:
        question = "How do I bake sourdough bread at home?"
        sid = _first_turn_any(server, question)
        tab.wait_for(sid, "renamed", timeout=60)
    finally:
        tab.close()
    title = _title(server, sid)
    assert title != question and plausible(title, question) and len(title) <= AUTO_TITLE_CHARS and "\n" not in title


def _first_turn_any(server, text: str) -> str:
    """A first turn that may end cut at --max-tokens (still a first reply that names the chat)."""
    sid = server.new_session()
    events = stream_events(server, server.start_chat(sid, text))
    assert events[-1]["data"]["status"] in ("complete", "truncated")
    return sid
