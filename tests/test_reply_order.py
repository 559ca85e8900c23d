"""Replies read in the order they happened (issue 16 item 4): each tool record says where
in the reply's text it ran (``offset``, code points of content before it), in the
``tool`` event, in the journal while the turn runs, and in the saved reply; each run of
reasoning likewise (``reasoning_runs``), through a crash and a continue."""
from __future__ import annotations

import json

from .helpers import fake_script, stream_events, wait_until


def test_a_tool_records_how_much_text_came_before_it(live_server):
    sid = live_server.new_session()
    script = fake_script(tokens=4, tools=[{"name": "search", "args": {"q": "x"}, "result": "found"},
                                          {"name": "read", "result": "ok"}])
    events = stream_events(live_server, live_server.start_chat(sid, script))
    before = "t0 t1 "                                  # the first half of the tokens
    assert [e["data"]["offset"] for e in events if e["event"] == "tool"] == [len(before), len(before)]
    reply = live_server.session(sid)["messages"][-1]
    assert [t["offset"] for t in reply["tool_calls"]] == [len(before), len(before)]
    assert reply["content"][:len(before)] == before and reply["content"] == "t0 t1 t2 t3 "


def test_the_offset_counts_characters_not_bytes_and_survives_a_crash(make_server):
    srv = make_server().start()
    srv.http.headers["Origin"] = srv.url("")
    sid = srv.new_session()
    r = srv.post("/api/attachments", data={"session_id": sid}, files={"file": ("é😀.txt", b"x", "text/plain")})
    att = r.json()["attachment"]
    first = f"[attachment {att['name']} 1 {att['mime']}] "     # the fake backend's attachment token
    script = fake_script(tokens=2, tools=[{"name": "slow", "duration_ms": 60_000}])
    stream_events(srv, srv.start_chat(sid, script, attachments=[att["id"]]), stop_after=3)  # token, t0, tool
    journal = srv.sessions_dir / f"{sid}.turn.jsonl"
    wait_until(lambda: any('"tool"' in line for line in journal.read_text().splitlines()[1:]),
               message="the tool record reaches the journal")
    srv.kill()
    srv.start()
    reply = srv.session(sid)["messages"][-1]
    assert reply["status"] == "interrupted"
    offset = reply["tool_calls"][0]["offset"]
    assert offset == len(first + "t0 ") and offset < len((first + "t0 ").encode())


def test_a_continued_reply_keeps_offsets_counted_from_its_start(live_server):
    sid = live_server.new_session()
    script = fake_script(tokens=2, tools=[{"id": "c1", "name": "look"}], finish="length")
    stream_events(live_server, live_server.start_chat(sid, script))
    first = live_server.session(sid)["messages"][-1]
    assert first["status"] == "truncated" and first["tool_calls"][0]["offset"] == len("t0 ")
    r = live_server.post("/api/session/continue", {"session_id": sid})
    assert r.status_code == 200, r.text
    stream_events(live_server, r.json()["stream_id"])
    reply = live_server.session(sid)["messages"][-1]
    assert reply["content"] == "t0 t1 t0 t1 "
    assert [t["offset"] for t in reply["tool_calls"]] == [len("t0 "), len("t0 t1 t0 ")]


# -- reasoning in order: runs of reasoning record where they began (docs/api.md "reasoning")

THINK_1, THINK_2 = "First, plan. 思考 🤔", "Then check the result. ✓"


def test_reasoning_after_a_tool_records_where_it_came(live_server):
    sid = live_server.new_session()
    script = fake_script(tokens=4, reasoning=THINK_1, reasoning_after_tools=THINK_2,
                         tools=[{"name": "search", "result": "found"}])
    events = stream_events(live_server, live_server.start_chat(sid, script))
    kinds = [e["event"] for e in events if e["event"] in ("token", "reasoning", "tool")]
    assert kinds == ["reasoning", "token", "token", "tool", "reasoning", "token", "token"]
    reply = live_server.session(sid)["messages"][-1]
    assert reply["reasoning"] == THINK_1 + THINK_2                 # every old reader still gets it all
    assert reply["reasoning_runs"] == [{"offset": 0, "start": 0, "tools_before": 0},
                                       {"offset": len("t0 t1 "), "start": len(THINK_1), "tools_before": 1}]
    assert reply["content"] == "t0 t1 t2 t3 "


def test_reasoning_that_only_comes_first_adds_no_field(live_server):
    sid = live_server.new_session()
    stream_events(live_server, live_server.start_chat(sid, fake_script(tokens=2, reasoning=THINK_1)))
    reply = live_server.session(sid)["messages"][-1]
    assert reply["reasoning"] == THINK_1 and "reasoning_runs" not in reply


def test_reasoning_runs_survive_a_crash_mid_turn(make_server):
    srv = make_server().start()
    sid = srv.new_session()
    script = fake_script(tokens=2, reasoning_after_tools=THINK_2, tools=[{"name": "look", "result": "ok"}],
                         pause_ms=60_000)
    stream_events(srv, srv.start_chat(sid, script), stop_after=4)    # t0, tool, tool_complete, reasoning
    journal = srv.sessions_dir / f"{sid}.turn.jsonl"
    wait_until(lambda: any('"run"' in line for line in journal.read_text().splitlines()[1:]),
               message="the reasoning run reaches the journal")
    srv.kill()
    srv.start()
    reply = srv.session(sid)["messages"][-1]
    assert reply["status"] == "interrupted" and reply["reasoning"] == THINK_2
    assert reply["reasoning_runs"] == [{"offset": len("t0 "), "start": 0, "tools_before": 1}]


def test_a_continued_reply_moves_its_reasoning_runs_past_the_old_part(live_server):
    sid = live_server.new_session()
    script = fake_script(tokens=2, reasoning=THINK_1, reasoning_after_tools=THINK_2,
                         tools=[{"id": "c1", "name": "look"}], finish="length")
    stream_events(live_server, live_server.start_chat(sid, script))
    r = live_server.post("/api/session/continue", {"session_id": sid})
    assert r.status_code == 200, r.text
    stream_events(live_server, r.json()["stream_id"])
    reply = live_server.session(sid)["messages"][-1]
    assert reply["content"] == "t0 t1 t0 t1 "
    assert reply["reasoning"] == (THINK_1 + THINK_2) * 2
    both = len(THINK_1 + THINK_2)
    assert reply["reasoning_runs"] == [
        {"offset": 0, "start": 0, "tools_before": 0},
        {"offset": len("t0 "), "start": len(THINK_1), "tools_before": 1},
        {"offset": len("t0 t1 "), "start": both, "tools_before": 1},
        {"offset": len("t0 t1 t0 "), "start": both + len(THINK_1), "tools_before": 2},
    ]
