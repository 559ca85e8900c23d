"""Human in the loop (DESIGN §7, §8): approvals and clarify through the fake backend, over HTTP."""
from __future__ import annotations

import json

import requests

from .helpers import LiveServer, fake_script, read_sse, stream_events, tokens_of, wait_until

RM = {"tool": "terminal", "command": "rm -rf build", "description": "delete the build folder"}
TOOLS = [{"name": "terminal", "args": {"command": "rm -rf build"}, "result": "removed", "duration_ms": 1}]


def _pending(server, sid) -> list[dict]:
    r = server.get("/api/approval/pending", params={"session_id": sid})
    assert r.status_code == 200, r.text
    return r.json()["approvals"]


def _wait_pending(server, sid) -> dict:
    return wait_until(lambda: (_pending(server, sid) or [None])[0], message="an open approval")


def _respond(server, stream_id, approval_id, choice) -> requests.Response:
    return server.post("/api/approval/respond", {"stream_id": stream_id, "approval_id": approval_id, "choice": choice})


def _approval_turn(server, sid, **extra) -> str:
    return server.start_chat(sid, fake_script(tokens=2, approval=RM, tools=TOOLS, **extra))


def _tool_results(events) -> list[dict]:
    return [e["data"] for e in events if e["event"] == "tool_complete"]


def test_allow_once_runs_the_tool_and_the_next_turn_asks_again(live_server):
    sid = live_server.new_session()
    stream_id = _approval_turn(live_server, sid)
    open_one = _wait_pending(live_server, sid)
    assert {k: open_one[k] for k in ("tool", "command", "description")} == RM
    assert open_one["stream_id"] == stream_id
    assert _respond(live_server, stream_id, open_one["approval_id"], "once").json() == {"ok": True}
    events = stream_events(live_server, stream_id)
    names = [e["event"] for e in events]
    assert names.index("approval") < names.index("tool") and "approval_answered" in names
    approval = next(e["data"] for e in events if e["event"] == "approval")
    assert approval == {"approval_id": open_one["approval_id"], **RM}
    assert _tool_results(events) == [{"id": "call_0", "name": "terminal", "result": "removed",
                                      "duration_ms": 1, "is_error": False}]
    assert live_server.session(sid)["messages"][-1]["tool_calls"][0]["result"] == "removed"
    second = _approval_turn(live_server, sid)           # "once" is not remembered
    again = _wait_pending(live_server, sid)
    assert again["stream_id"] == second
    _respond(live_server, second, again["approval_id"], "deny")
    stream_events(live_server, second)


def test_deny_runs_no_tool_and_each_tool_reports_denied(live_server):
    sid = live_server.new_session()
    script = fake_script(tokens=2, approval=RM, tools=TOOLS + [{"name": "write_file", "result": "written"}])
    stream_id = live_server.start_chat(sid, script)
    _respond(live_server, stream_id, _wait_pending(live_server, sid)["approval_id"], "deny")
    events = stream_events(live_server, stream_id)
    results = _tool_results(events)
    assert [r["result"] for r in results] == ["denied by the user"] * 2
    assert all(r["is_error"] for r in results)
    saved = live_server.session(sid)["messages"][-1]
    assert [t["result"] for t in saved["tool_calls"]] == ["denied by the user"] * 2
    assert saved["content"] == tokens_of(events) == "t0 t1 " and saved["status"] == "complete"
    assert _pending(live_server, sid) == []


def test_no_answer_within_the_timeout_is_deny(live_server):
    sid = live_server.new_session()
    stream_id = _approval_turn(live_server, sid, approval_timeout_ms=300)
    events = stream_events(live_server, stream_id)
    answered = next(e["data"] for e in events if e["event"] == "approval_answered")
    assert answered["answer"] == "deny" and answered["timed_out"] is True
    assert _tool_results(events)[0]["result"] == "denied by the user"
    late = _respond(live_server, stream_id, answered["approval_id"], "once")
    assert late.status_code == 404 and "error" in late.json()


def test_the_approval_timeout_flag_applies_without_a_script_timeout(make_server):
    server = make_server(args=("--approval-timeout", "0.3")).start()
    sid = server.new_session()
    events = stream_events(server, _approval_turn(server, sid))
    assert _tool_results(events)[0]["is_error"] is True


def test_allow_for_this_chat_skips_the_question_in_this_session_only(live_server):
    sid, other = live_server.new_session(), live_server.new_session()
    first = _approval_turn(live_server, sid)
    _respond(live_server, first, _wait_pending(live_server, sid)["approval_id"], "session")
    stream_events(live_server, first)
    events = stream_events(live_server, _approval_turn(live_server, sid))   # not asked again
    assert "approval" not in [e["event"] for e in events]
    assert _tool_results(events)[0]["result"] == "removed"
    different = live_server.start_chat(sid, fake_script(tokens=0, approval=dict(RM, command="rm -rf /"), tools=TOOLS))
    assert _wait_pending(live_server, sid)["command"] == "rm -rf /"       # another command is asked
    cancel = live_server.post("/api/chat/cancel", {"stream_id": different})
    assert cancel.json()["cancelled"] is True
    elsewhere = _approval_turn(live_server, other)                          # another session is asked
    _respond(live_server, elsewhere, _wait_pending(live_server, other)["approval_id"], "deny")
    assert _tool_results(stream_events(live_server, elsewhere))[0]["is_error"] is True


def test_always_is_stored_per_profile_survives_a_restart_and_can_be_revoked(make_server):
    server = make_server().start()
    sid = server.new_session()
    first = _approval_turn(server, sid)
    _respond(server, first, _wait_pending(server, sid)["approval_id"], "always")
    stream_events(server, first)
    rules = server.get("/api/approval/rules").json()["rules"]
    assert [(r["tool"], r["command"]) for r in rules] == [("terminal", "rm -rf build")]
    stored = json.loads((server.state_dir / "approvals.json").read_text())
    assert stored["always"][0]["command"] == "rm -rf build"
    server.stop()
    server.start()
    fresh = server.new_session()
    events = stream_events(server, _approval_turn(server, fresh))           # another session, after a restart
    assert "approval" not in [e["event"] for e in events] and not _tool_results(events)[0]["is_error"]
    # another profile has its own rules
    assert server.post("/api/profile/create", {"name": "work"}).status_code == 200
    work = requests.Session()
    assert work.post(server.url("/api/profile/switch"), json={"name": "work"}).status_code == 200
    assert work.get(server.url("/api/approval/rules")).json()["rules"] == []
    wsid = work.post(server.url("/api/session/new"), json={}).json()["session"]["session_id"]
    wstream = work.post(server.url("/api/chat/start"), json={"session_id": wsid, "message": fake_script(
        tokens=0, approval=RM, tools=TOOLS, approval_timeout_ms=200)}).json()["stream_id"]
    assert _tool_results(stream_events(server, wstream))[0]["is_error"] is True
    # revoke: asked again; a second revoke is 404; bad input 400 and the file unchanged
    before = (server.state_dir / "approvals.json").read_bytes()
    assert server.post("/api/approval/rules/revoke", {"tool": "terminal"}).status_code == 400
    assert (server.state_dir / "approvals.json").read_bytes() == before
    assert server.post("/api/approval/rules/revoke", {"tool": "terminal", "command": "rm -rf build"}).json() == {"ok": True}
    assert server.get("/api/approval/rules").json()["rules"] == []
    assert server.post("/api/approval/rules/revoke", {"tool": "terminal", "command": "rm -rf build"}).status_code == 404
    asked = _approval_turn(server, fresh, approval_timeout_ms=200)
    assert "approval" in [e["event"] for e in stream_events(server, asked)]


def test_a_reconnecting_tab_gets_the_approval_again_and_a_second_tab_can_answer(live_server):
    sid = live_server.new_session()
    stream_id = _approval_turn(live_server, sid)
    first_tab = stream_events(live_server, stream_id, stop_after=2)          # t0, approval
    assert [e["event"] for e in first_tab] == ["token", "approval"]
    replay = stream_events(live_server, stream_id, after=0, stop_after=2)    # a reloaded page: replayed
    assert replay == first_tab
    pending = _pending(live_server, sid)                                      # a second tab finds it too
    assert [p["approval_id"] for p in pending] == [first_tab[1]["data"]["approval_id"]]
    with requests.get(live_server.url("/api/chat/stream"), params={"stream_id": stream_id, "after_seq": 2},
                      stream=True, timeout=30) as follower:
        assert _respond(live_server, stream_id, pending[0]["approval_id"], "once").status_code == 200
        rest = read_sse(follower)
    assert rest[0]["event"] == "approval_answered" and rest[0]["data"]["answer"] == "once"
    again = _respond(live_server, stream_id, pending[0]["approval_id"], "deny")
    assert again.status_code in (404, 409) and "error" in again.json()


def test_respond_refuses_bad_input_with_clear_errors(live_server):
    sid = live_server.new_session()
    stream_id = _approval_turn(live_server, sid, hang=True)
    aid = _wait_pending(live_server, sid)["approval_id"]
    for body, status in [({"stream_id": stream_id, "approval_id": aid, "choice": "yes"}, 400),
                         ({"stream_id": stream_id, "approval_id": aid}, 400),
                         ({"stream_id": stream_id, "approval_id": "nope", "choice": "once"}, 404),
                         ({"stream_id": "other", "approval_id": aid, "choice": "once"}, 404)]:
        r = live_server.post("/api/approval/respond", body)
        assert r.status_code == status and r.json()["error"], (body, r.text)
    assert _pending(live_server, sid)[0]["approval_id"] == aid               # still open
    assert _respond(live_server, stream_id, aid, "deny").status_code == 200
    assert _respond(live_server, stream_id, aid, "once").status_code == 409  # answered, turn still running
    assert live_server.post("/api/chat/cancel", {"stream_id": stream_id}).json()["cancelled"] is True
    assert _respond(live_server, stream_id, aid, "once").status_code == 404  # the turn is over
    assert live_server.get("/api/approval/pending", params={"session_id": "../x"}).status_code == 400
    assert live_server.get("/api/approval/pending", params={"session_id": "missing"}).status_code == 404


def test_a_restart_never_grants_an_open_approval(make_server):
    server = make_server().start()
    sid = server.new_session()
    stream_id = _approval_turn(server, sid)
    aid = _wait_pending(server, sid)["approval_id"]
    server.kill()
    server.start()
    assert _pending(server, sid) == []
    assert _respond(server, stream_id, aid, "always").status_code == 404
    msgs = server.session(sid)["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[-1]["status"] == "interrupted"
    assert all(t.get("result") != "removed" for t in msgs[-1].get("tool_calls", []))
    assert server.get("/api/approval/rules").json()["rules"] == []


def test_clarify_answer_comes_back_as_a_token(live_server):
    sid = live_server.new_session()
    stream_id = live_server.start_chat(sid, fake_script(tokens=2, reasoning="hmm",
                                                        clarify={"question": "Which branch?", "choices": ["main", "dev"]}))
    events = stream_events(live_server, stream_id, stop_after=2)
    assert [e["event"] for e in events] == ["reasoning", "clarify"]
    question = events[1]["data"]
    assert question["question"] == "Which branch?" and question["choices"] == ["main", "dev"]
    bad = live_server.post("/api/clarify/respond", {"stream_id": stream_id, "clarify_id": question["clarify_id"]})
    assert bad.status_code == 400
    ok = live_server.post("/api/clarify/respond", {"stream_id": stream_id, "clarify_id": question["clarify_id"],
                                                   "answer": "dev"})
    assert ok.json() == {"ok": True}
    twice = live_server.post("/api/clarify/respond", {"stream_id": stream_id, "clarify_id": question["clarify_id"],
                                                      "answer": "main"})
    assert twice.status_code in (404, 409)
    everything = stream_events(live_server, stream_id)
    assert tokens_of(everything) == "answer: dev t0 t1 "
    assert live_server.session(sid)["messages"][-1]["content"] == "answer: dev t0 t1 "
    unknown = live_server.post("/api/clarify/respond", {"stream_id": stream_id, "clarify_id": "zz", "answer": "x"})
    assert unknown.status_code == 404


def test_an_unanswered_clarify_times_out_with_an_empty_answer(live_server):
    sid = live_server.new_session()
    stream_id = live_server.start_chat(sid, fake_script(tokens=1, clarify={"question": "Sure?"}, approval_timeout_ms=200))
    events = stream_events(live_server, stream_id)
    assert "choices" not in next(e["data"] for e in events if e["event"] == "clarify")
    assert tokens_of(events) == "answer:  t0 "
