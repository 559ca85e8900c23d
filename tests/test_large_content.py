"""Content of any size (DESIGN §3 invariant 8, the limits): over HTTP, on a real server.

What real users produce: pastes of 16 KiB+1 to 1 MiB (in ASCII, CJK, RTL and emoji), an
80 KB reply streamed with a silence in it, a 550 KB tool result, 35 KB of reasoning. Each
is saved whole, opens full and paged, lists, and survives a restart and a SIGKILL.
"""
from __future__ import annotations

import json
import time

import pytest
import requests

from api.journal import read_journal

from .helpers import fake_script, read_sse, stream_events, tokens_of, wait_until

MiB = 1024 * 1024


def _paste(size: int, alphabet: str = "log line 42: ERROR \"x\" \\ tab\there\n") -> str:
    """``size`` UTF-8 bytes of text made of ``alphabet`` (whole characters)."""
    out, n = [], 0
    while n < size:
        out.append(alphabet)
        n += len(alphabet.encode())
    text = "".join(out)
    raw = text.encode()[:size]
    return raw.decode("utf-8", "ignore")


def _journal_text(path) -> str | None:
    """The reply text checkpointed into a turn journal so far, or None without one."""
    pending = read_journal(path)
    return pending.content if pending is not None else None


def _run_turn(server, sid: str, message: str) -> list[dict]:
    stream_id = server.start_chat(sid, message)
    events = stream_events(server, stream_id)
    assert events[-1]["event"] == "stream_end" and events[-1]["data"]["status"] == "complete", events[-3:]
    return events


def _assert_readable_everywhere(server, sid: str, messages: list[dict]) -> None:
    """Full, paged, metadata-only and listed: every reader agrees with ``messages``."""
    full = server.session(sid)
    assert [(m["role"], m["content"]) for m in full["messages"]] == [(m["role"], m["content"]) for m in messages]
    for limit in (1, 2):
        page = server.session(sid, msg_limit=limit)
        assert [m["content"] for m in page["messages"]] == [m["content"] for m in messages][-limit:]
    meta = server.session(sid, messages=0)
    assert meta["message_count"] == len(messages)
    listed = {s["session_id"]: s for s in server.get("/api/sessions").json()["sessions"]}
    assert listed[sid]["message_count"] == len(messages) and not listed[sid]["active_stream_id"]


@pytest.mark.parametrize("size,alphabet", [
    (16 * 1024 + 1, None), (64 * 1024, None), (MiB, None),
    (MiB, "中文日本語한국어"), (MiB, "שלום עולם مرحبا "), (MiB - 3, "😀👩‍👩‍👧 e\u0301 "),
])
def test_pastes_up_to_the_limit_are_saved_whole_and_reopen(make_server, size, alphabet):
    server = make_server().start()
    sid = server.new_session()
    paste = _paste(size, alphabet) if alphabet else _paste(size)
    events = _run_turn(server, sid, paste)
    reply = tokens_of(events)
    expected = [{"role": "user", "content": paste}, {"role": "assistant", "content": reply}]
    _assert_readable_everywhere(server, sid, expected)
    title = server.session(sid, messages=0)["title"]
    assert "\n" not in title and len(title) <= 60  # first line, never the whole paste
    server.stop()
    server.start()
    _assert_readable_everywhere(server, sid, expected)


def test_a_message_over_the_limit_is_refused_with_413_and_nothing_is_stored(make_server):
    server = make_server().start()
    sid = server.new_session()
    before = server.sessions_dir.joinpath(f"{sid}.json").read_bytes()
    for paste in (_paste(MiB + 1), _paste(MiB + 2, "中") + "中"):
        r = server.post("/api/chat/start", {"session_id": sid, "message": paste})
        assert r.status_code == 413, r.text
        assert "limit" in r.json()["error"]
    assert server.sessions_dir.joinpath(f"{sid}.json").read_bytes() == before
    assert not list(server.sessions_dir.glob("*.turn.jsonl"))
    assert server.session(sid)["message_count"] == 0


def test_the_message_limit_is_a_flag(make_server):
    server = make_server(args=("--max-message-bytes", "1000")).start()
    sid = server.new_session()
    assert server.post("/api/chat/start", {"session_id": sid, "message": "x" * 1001}).status_code == 413
    assert server.post("/api/chat/start", {"session_id": sid, "message": "é" * 500}).status_code == 200


def test_a_body_over_the_request_limit_is_413_naming_the_limit(make_server):
    server = make_server(args=("--max-message-bytes", "100000", "--max-body-bytes", "8000")).start()
    sid = server.new_session()
    r = server.post("/api/chat/start", {"session_id": sid, "message": "x" * 9000})
    assert r.status_code == 413
    assert r.json()["error"] == "request body too large: this server accepts at most 8,000 bytes in one request"
    assert server.session(sid)["message_count"] == 0 and not (server.sessions_dir / f"{sid}.turn.jsonl").exists()


def test_metadata_strings_are_capped_and_titles_are_cleaned(live_server):
    for field in ("model", "workspace"):
        r = live_server.post("/api/session/new", {field: "m" * 20_000})
        assert r.status_code == 400 and field in r.json()["error"]
    r = live_server.post("/api/session/new", {"title": "line one\nline two " + "x" * 5000})
    assert r.status_code == 200
    title = r.json()["session"]["title"]
    assert len(title) == 200 and "\n" not in title


BIG_TURN = dict(tokens=16_000, pause_ms=2500,  # "t0 " … "t15999 ": about 100 KB of reply
                reasoning="thinking about 中文 and \"quotes\"\n" * 1000,  # 35 KB
                tools=[{"name": "terminal", "args": {"command": "cat big.log"},
                        "result": _paste(550_000)}])


def test_big_reply_reasoning_and_tool_result_stream_save_and_survive_a_restart(make_server):
    server = make_server().start()
    sid = server.new_session()
    message = fake_script(**BIG_TURN)
    events = _run_turn(server, sid, message)
    reply = server.session(sid)["messages"][-1]
    assert reply["content"] == tokens_of(events) and len(reply["content"]) > 80_000
    assert reply["reasoning"] == BIG_TURN["reasoning"]
    assert reply["tool_calls"][0]["result"] == BIG_TURN["tools"][0]["result"]
    server.kill()
    server.start()
    again = server.session(sid)["messages"]
    assert again[-1]["content"] == reply["content"] and again[-1]["tool_calls"] == reply["tool_calls"]
    assert server.session(sid, msg_limit=1)["messages"][0]["reasoning"] == BIG_TURN["reasoning"]


def test_text_sent_before_a_silence_is_on_disk_within_two_checkpoints_and_survives_sigkill(make_server):
    checkpoint = 1.0
    server = make_server(args=("--checkpoint-seconds", str(checkpoint))).start()
    sid = server.new_session()
    paste = _paste(300 * 1024)
    message = json.dumps({"fake": {"tokens": 6, "hang": True}, "note": paste})  # 300 KB, then a hang
    stream_id = server.start_chat(sid, fake_script(tokens=40, pause_ms=60_000, reasoning="r" * 20_000))
    with requests.get(server.url("/api/chat/stream"), params={"stream_id": stream_id}, stream=True,
                      timeout=30) as resp:
        events = read_sse(resp, stop_after=21)  # reasoning + the first half of the tokens, then silence
    seen = tokens_of(events)
    assert seen == "".join(f"t{i} " for i in range(20))
    received_at = time.monotonic()
    journal = server.sessions_dir / f"{sid}.turn.jsonl"
    wait_until(lambda: _journal_text(journal) == seen, timeout=2 * checkpoint,
               message="the streamed text in the journal")
    assert time.monotonic() - received_at <= 2 * checkpoint
    server.kill()
    server.start()
    messages = server.session(sid)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"] == seen and messages[1]["reasoning"] == "r" * 20_000
    assert messages[1]["status"] == "interrupted"
    assert not journal.exists()
    # the same with a large paste as the user's message, killed mid-reply
    sid2 = server.new_session()
    stream_id = server.start_chat(sid2, message)
    with requests.get(server.url("/api/chat/stream"), params={"stream_id": stream_id}, stream=True,
                      timeout=30) as resp:
        first = read_sse(resp, stop_after=3)
    journal2 = server.sessions_dir / f"{sid2}.turn.jsonl"
    wait_until(lambda: _journal_text(journal2) == "t0 t1 t2 t3 t4 t5 ", timeout=2 * checkpoint + 5,
               message="the reply in the journal")
    server.kill()
    server.start()
    settled = server.session(sid2)["messages"]
    assert settled[0]["content"] == message and settled[0]["status"] == "interrupted"
    assert settled[1]["content"] == "t0 t1 t2 t3 t4 t5 " and tokens_of(first)


def test_a_checkpoint_does_not_rewrite_the_session_file(make_server):
    """O(new text): while a turn streams into a session, its file keeps its bytes."""
    server = make_server(args=("--checkpoint-seconds", "0.2")).start()
    sid = server.new_session()
    _run_turn(server, sid, _paste(400 * 1024))
    path = server.sessions_dir / f"{sid}.json"
    stream_id = server.start_chat(sid, fake_script(tokens=60, delay_ms=25))
    during = path.stat()
    events = stream_events(server, stream_id, stop_after=40)
    journal = server.sessions_dir / f"{sid}.turn.jsonl"
    wait_until(lambda: _journal_text(journal), message="a checkpoint")
    assert path.stat().st_mtime_ns == during.st_mtime_ns and path.stat().st_size == during.st_size
    assert tokens_of(events)
    stream_events(server, stream_id)  # to the end
    assert server.session(sid)["message_count"] == 4


def test_status_and_reload_mid_turn_show_the_pending_paste(make_server):
    server = make_server().start()
    sid = server.new_session()
    paste = _paste(200 * 1024, "中文 ")
    script = json.loads(fake_script(tokens=4, hang=True))
    message = json.dumps(dict(script, note=paste))
    stream_id = server.start_chat(sid, message)
    status = server.get("/api/session/status", params={"session_id": sid}).json()
    assert status["streaming"] and status["pending_user_message"] == message
    s = server.session(sid, msg_limit=30)
    assert s["active_stream_id"] == stream_id and s["pending_user_message"] == message
    listed = {r["session_id"]: r for r in server.get("/api/sessions").json()["sessions"]}[sid]
    assert "pending_user_message" not in listed and len(json.dumps(listed)) < 1000
    assert server.post("/api/chat/cancel", {"stream_id": stream_id}).json()["cancelled"]
    messages = server.session(sid)["messages"]
    assert messages[0]["content"] == message and messages[1]["status"] == "cancelled"
