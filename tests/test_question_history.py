"""Answered approvals and clarifying questions are kept in the saved reply (issue 15/16):
``approvals`` and ``clarifications`` with their outcome and where in the text they were
asked (``offset``, ``tools_before``), after allow, deny, a timeout and an answer, in the
turn journal while the turn waits, and after a SIGKILL mid-wait as unanswered and denied."""
from __future__ import annotations

from .helpers import fake_script, stream_events, wait_until
from .test_approvals import RM, TOOLS, _pending, _respond, _wait_pending

CLARIFY = {"question": "Favourite colour? 色 🎨", "choices": ["red", "blue"]}


def _reply(server, sid) -> dict:
    return server.session(sid)["messages"][-1]


def test_an_allowed_approval_and_an_answered_clarify_are_saved_where_they_came(live_server):
    sid = live_server.new_session()
    stream_id = live_server.start_chat(sid, fake_script(tokens=2, clarify=CLARIFY, approval=RM, tools=TOOLS))
    question = wait_until(lambda: next((e["data"] for e in stream_events(live_server, stream_id, stop_after=1)
                                        if e["event"] == "clarify"), None), message="the clarify")
    assert live_server.post("/api/clarify/respond", {"stream_id": stream_id, "clarify_id": question["clarify_id"],
                                                     "answer": "blue"}).json() == {"ok": True}
    approval = _wait_pending(live_server, sid)
    assert _respond(live_server, stream_id, approval["approval_id"], "once").json() == {"ok": True}
    stream_events(live_server, stream_id)
    reply = _reply(live_server, sid)
    assert reply["content"] == "answer: blue t0 t1 "
    assert reply["clarifications"] == [{"clarify_id": question["clarify_id"], "question": CLARIFY["question"],
                                        "choices": ["red", "blue"], "answer": "blue", "timed_out": False,
                                        "offset": 0, "tools_before": 0}]
    assert reply["approvals"] == [{"approval_id": approval["approval_id"], **RM, "choice": "once",
                                   "timed_out": False, "offset": len("answer: blue t0 "), "tools_before": 0}]
    assert reply["tool_calls"][0]["offset"] == len("answer: blue t0 ")


def test_a_denied_and_a_timed_out_approval_are_saved_as_denied(live_server):
    sid = live_server.new_session()
    stream_id = live_server.start_chat(sid, fake_script(tokens=2, approval=RM, tools=TOOLS))
    _respond(live_server, stream_id, _wait_pending(live_server, sid)["approval_id"], "deny")
    stream_events(live_server, stream_id)
    saved = _reply(live_server, sid)["approvals"]
    assert [(a["choice"], a["timed_out"]) for a in saved] == [("deny", False)]
    stream_events(live_server, live_server.start_chat(sid, fake_script(tokens=2, approval=RM, tools=TOOLS,
                                                                       approval_timeout_ms=300)))
    saved = _reply(live_server, sid)["approvals"]
    assert [(a["choice"], a["timed_out"], a["command"]) for a in saved] == [("deny", True, RM["command"])]
    assert "unanswered" not in saved[0]
    # a clarify nobody answers: an empty answer, timed out
    stream_events(live_server, live_server.start_chat(sid, fake_script(tokens=1, clarify={"question": "Sure?"},
                                                                       approval_timeout_ms=300)))
    reply = _reply(live_server, sid)
    assert [(c["question"], c["answer"], c["timed_out"]) for c in reply["clarifications"]] == [("Sure?", "", True)]
    assert "choices" not in reply["clarifications"][0] and "approvals" not in reply


def test_a_huge_command_is_kept_capped(live_server):
    sid = live_server.new_session()
    command = "echo " + "δ" * 60_000
    stream_id = live_server.start_chat(sid, fake_script(tokens=0, approval={"tool": "terminal", "command": command},
                                                        approval_timeout_ms=300))
    stream_events(live_server, stream_id)
    kept = _reply(live_server, sid)["approvals"][0]["command"]
    assert kept.startswith("echo δδδ") and len(kept.encode()) < 9 * 1024 and "more bytes not kept" in kept


def test_an_approval_open_at_a_sigkill_is_saved_unanswered_and_denied(make_server):
    server = make_server().start()
    sid = server.new_session()
    stream_id = server.start_chat(sid, fake_script(tokens=2, approval=RM, tools=TOOLS))
    aid = _wait_pending(server, sid)["approval_id"]
    journal = server.sessions_dir / f"{sid}.turn.jsonl"
    wait_until(lambda: aid in journal.read_text(), message="the approval reaches the journal")
    server.kill()
    server.start()
    assert _pending(server, sid) == []
    assert _respond(server, stream_id, aid, "once").status_code == 404
    reply = _reply(server, sid)
    assert reply["status"] == "interrupted" and reply["content"] == "t0 "
    assert reply["approvals"] == [{"approval_id": aid, **RM, "offset": len("t0 "), "tools_before": 0,
                                   "choice": "deny", "timed_out": False, "unanswered": True}]


def test_a_continued_reply_keeps_both_parts_questions_counted_from_its_start(live_server):
    sid = live_server.new_session()
    script = fake_script(tokens=2, approval=RM, approval_timeout_ms=200, finish="length")
    stream_events(live_server, live_server.start_chat(sid, script))
    first = _reply(live_server, sid)
    assert first["status"] == "truncated" and first["approvals"][0]["offset"] == len("t0 ")
    r = live_server.post("/api/session/continue", {"session_id": sid})
    assert r.status_code == 200, r.text
    stream_events(live_server, r.json()["stream_id"])
    reply = _reply(live_server, sid)
    assert reply["content"] == "t0 t1 t0 t1 "
    assert [(a["offset"], a["choice"], a["timed_out"]) for a in reply["approvals"]] == [
        (len("t0 "), "deny", True), (len("t0 t1 t0 "), "deny", True)]
