"""Scheduled tasks (docs/api.md "Scheduled tasks", api/scheduler.py): real servers with the
fake backend and the test clock (HERMES_WEBUI_TEST_CLOCK=1: the scheduler's time moves
only through POST /api/tasks/test-clock, which ticks once), so nothing sleeps until 8:00."""
from __future__ import annotations

import functools
import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import assume, given, settings, strategies as st

from api import tasks as tasks_mod
from api.errors import ApiError

from .helpers import LiveServer, fake_script, wait_until

PARIS = ZoneInfo("Europe/Paris")
CLOCK_ENV = {"HERMES_WEBUI_TEST_CLOCK": "1"}
MONDAY = datetime(2026, 1, 5, tzinfo=PARIS)   # a Monday in winter (UTC+1)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    """Epoch seconds of MONDAY + ``day`` days at hour:minute, Paris time."""
    return (MONDAY + timedelta(days=day)).replace(hour=hour, minute=minute, second=second).timestamp()


@pytest.fixture
def clocked(make_server):
    def make(**kw):
        return make_server(env=CLOCK_ENV, **kw).start()
    return make


def set_clock(server: LiveServer, t: float) -> None:
    r = server.post("/api/tasks/test-clock", {"now": t})
    assert r.status_code == 200, r.text


def save(server: LiveServer, **body) -> dict:
    body.setdefault("name", "Inbox summary")
    body.setdefault("prompt", "summarise my inbox")
    body.setdefault("schedule", "weekdays at 08:00")
    body.setdefault("timezone", "Europe/Paris")
    r = server.post("/api/tasks/save", body)
    assert r.status_code == 200, r.text
    return r.json()["task"]


def runs(server: LiveServer, task_id: str) -> list[dict]:
    r = server.get("/api/tasks/runs", params={"task_id": task_id})
    assert r.status_code == 200, r.text
    return r.json()["runs"]


def settled_runs(server: LiveServer, task_id: str, count: int) -> list[dict]:
    """The task's runs once there are ``count`` and none is running (newest first)."""
    return wait_until(lambda: (lambda rs: rs if len(rs) == count and all(r["status"] != "running" for r in rs)
                               else None)(runs(server, task_id)), message=f"{count} finished runs")


def listed(server: LiveServer, task_id: str) -> dict:
    return next(t for t in server.get("/api/tasks").json()["tasks"] if t["id"] == task_id)


def test_a_task_fires_at_its_times_each_in_a_new_chat(clocked):
    server = clocked()
    set_clock(server, at(0, 7))
    task = save(server)
    assert task["cron"] == "0 8 * * 1-5"
    assert task["next_runs"][:2] == [(MONDAY.replace(hour=8)).isoformat(),
                                     (MONDAY + timedelta(days=1)).replace(hour=8).isoformat()]
    assert task["next_runs"][4] == (MONDAY + timedelta(days=4)).replace(hour=8).isoformat()  # Friday

    set_clock(server, at(0, 7, 59, 59))
    assert runs(server, task["id"]) == []
    set_clock(server, at(0, 8))
    first = settled_runs(server, task["id"], 1)[0]
    assert first["status"] == "complete" and first["reason"] == "scheduled"
    assert first["started_at"] == at(0, 8)
    session = server.session(first["session_id"])
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]
    assert session["messages"][0]["content"] == "summarise my inbox"
    assert session["messages"][1]["content"] == "echo: summarise my inbox"
    assert session["title"].startswith("Inbox summary")

    set_clock(server, at(0, 8, 1))           # the same due time is not run twice
    set_clock(server, at(0, 23))
    assert len(runs(server, task["id"])) == 1
    set_clock(server, at(1, 8))              # Tuesday
    second = settled_runs(server, task["id"], 2)[0]
    assert second["status"] == "complete" and second["session_id"] != first["session_id"]
    assert listed(server, task["id"])["last_run"] == {"run_id": second["run_id"], "started_at": at(1, 8),
                                                      "status": "complete"}
    for day in (2, 3, 4):                    # Wednesday to Friday
        set_clock(server, at(day, 8))
        settled_runs(server, task["id"], day + 1)
    set_clock(server, at(5, 8))              # the weekend: no run
    set_clock(server, at(6, 8))
    assert [r["started_at"] for r in runs(server, task["id"])] == [at(d, 8) for d in (4, 3, 2, 1, 0)]


def test_missed_runs_follow_the_policy_after_a_restart(clocked):
    server = clocked()
    set_clock(server, at(0, 7))
    skip = save(server, name="skipper", schedule="daily at 08:00")
    once = save(server, name="catch-up", schedule="daily at 08:00", missed="run_once")
    server.stop()
    server.start()
    set_clock(server, at(3, 10))             # down from Monday 7:00 to Thursday 10:00: four runs missed
    skipped = settled_runs(server, skip["id"], 1)
    assert skipped[0]["status"] == "skipped" and skipped[0]["reason"] == "missed"
    assert "4 runs missed" in skipped[0]["note"] and skipped[0]["session_id"] is None
    made_up = settled_runs(server, once["id"], 1)
    assert made_up[0]["status"] == "complete" and made_up[0]["reason"] == "missed"
    assert "4 runs missed" in made_up[0]["note"]
    set_clock(server, at(3, 10, 5))          # nothing more is made up
    assert len(runs(server, skip["id"])) == 1 and len(runs(server, once["id"])) == 1
    assert listed(server, once["id"])["next_runs"][0] == (MONDAY + timedelta(days=4)).replace(hour=8).isoformat()
    set_clock(server, at(4, 8))              # and the schedule goes on
    assert len(settled_runs(server, once["id"], 2)) == 2



def test_a_run_due_within_the_grace_still_runs_when_earlier_ones_were_missed(clocked):
    server = clocked()
    set_clock(server, at(0, 7))
    task = save(server, name="skipper", schedule="daily at 08:00")   # missed: skip (the default)
    set_clock(server, at(3, 8, 1))           # back on Thursday at 8:01: Monday to Wednesday missed
    done = settled_runs(server, task["id"], 2)
    assert done[1]["status"] == "skipped" and "3 runs missed" in done[1]["note"]
    assert done[0]["status"] == "complete" and done[0]["reason"] == "scheduled"
    set_clock(server, at(3, 8, 5))           # and only once
    assert len(runs(server, task["id"])) == 2

def test_sigkill_during_a_run_marks_it_interrupted_and_never_reruns_it(clocked):
    server = clocked()
    set_clock(server, at(0, 7))
    task = save(server, schedule="daily at 08:00", prompt=fake_script(tokens=4, hang=True))
    set_clock(server, at(0, 8))
    run = wait_until(lambda: (runs(server, task["id"]) or [None])[0], message="the run")
    assert run["status"] == "running"
    wait_until(lambda: server.get("/api/session/status", params={"session_id": run["session_id"]}).json()["streaming"])
    server.kill()
    server.start()
    after = runs(server, task["id"])
    assert len(after) == 1 and after[0]["status"] == "interrupted" and after[0]["run_id"] == run["run_id"]
    set_clock(server, at(0, 8, 0, 30))       # still "on time" for 8:00: not run again
    set_clock(server, at(0, 9))
    assert len(runs(server, task["id"])) == 1
    chat = server.session(run["session_id"])     # settled like any chat cut by a crash
    assert chat["messages"][0]["content"] == task["prompt"] and not chat["active_stream_id"]
    assert any(m.get("status") == "interrupted" for m in chat["messages"])
    set_clock(server, at(1, 8))              # the next day's run happens as usual
    assert wait_until(lambda: len(runs(server, task["id"])) == 2)


def test_a_clean_stop_during_a_run_saves_it_interrupted_and_the_restart_does_not_rerun_it(clocked):
    server = clocked()
    set_clock(server, at(0, 7))
    task = save(server, schedule="daily at 08:00", missed="run_once",
                prompt=fake_script(tokens=4, delay_ms=50, hang=True))
    set_clock(server, at(0, 8))
    run = wait_until(lambda: (runs(server, task["id"]) or [None])[0])
    wait_until(lambda: server.get("/api/session/status", params={"session_id": run["session_id"]}).json()["streaming"])
    assert server.stop() == 0
    server.start()
    set_clock(server, at(0, 8, 1))
    after = runs(server, task["id"])
    assert [(r["run_id"], r["status"]) for r in after] == [(run["run_id"], "interrupted")]
    assert server.session(run["session_id"])["messages"][-1]["status"] == "interrupted"


def test_pause_stops_runs_and_resume_does_not_make_them_up(clocked):
    server = clocked()
    set_clock(server, at(0, 7))
    task = save(server, schedule="hourly", missed="run_once")
    r = server.post("/api/tasks/pause", {"task_id": task["id"], "paused": True})
    assert r.status_code == 200 and r.json() == {"ok": True}
    paused = listed(server, task["id"])
    assert paused["enabled"] is False and paused["next_runs"] == []
    for hour in (8, 9, 10):
        set_clock(server, at(0, hour))
    assert runs(server, task["id"]) == []
    assert server.post("/api/tasks/pause", {"task_id": task["id"], "paused": False}).status_code == 200
    assert listed(server, task["id"])["next_runs"][0] == MONDAY.replace(hour=11).isoformat()
    set_clock(server, at(0, 10, 30))
    assert runs(server, task["id"]) == []    # nothing made up for 8, 9 and 10 o'clock
    set_clock(server, at(0, 11))
    assert settled_runs(server, task["id"], 1)[0]["reason"] == "scheduled"
    assert server.post("/api/tasks/pause", {"task_id": "nope", "paused": True}).status_code == 404
    assert server.post("/api/tasks/pause", {"task_id": task["id"], "paused": "yes"}).status_code == 400


@pytest.mark.parametrize("body, words", [
    ({"schedule": "61 * * * *"}, "not a schedule"),
    ({"schedule": "every tuesday"}, "not a schedule"),
    ({"schedule": "weekly funday at 09:00"}, "unknown day"),
    ({"schedule": "0 0 31 2 *"}, "never happens"),
    ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone"),
    ({"timezone": "../../etc/passwd"}, "unknown time zone"),
    # files of the tz database that are no place, and bare legacy names: not IANA Area/Location
    ({"timezone": "localtime"}, "unknown time zone"),
    ({"timezone": "Factory"}, "unknown time zone"),
    ({"timezone": "posixrules"}, "unknown time zone"),
    ({"timezone": "EST5EDT"}, "unknown time zone"),
    ({"timezone": "posix/Europe/Paris"}, "unknown time zone"),
    ({"model": "gpt-17"}, "unknown model"),
    ({"profile": "nobody"}, "no profile"),
    ({"session_mode": "sometimes"}, "session_mode"),
    ({"missed": "all"}, "missed"),
    ({"allowed_tools": "terminal"}, "allowed_tools"),
    ({"name": "   "}, "needs a name"),
    ({"prompt": " \n "}, "needs a prompt"),
    ({"colour": "red"}, "unknown field"),
])
def test_invalid_task_is_refused_with_400_and_nothing_stored(live_server_clocked, body, words):
    server = live_server_clocked
    before = server.get("/api/tasks").json()["tasks"]
    sessions_before = server.get("/api/sessions").json()["sessions"]
    full = {"name": "t", "prompt": "p", "schedule": "hourly", "session_mode": "continue", **body}
    r = server.post("/api/tasks/save", full)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]
    assert server.get("/api/tasks").json()["tasks"] == before
    assert server.get("/api/sessions").json()["sessions"] == sessions_before  # no continuing chat made


@pytest.fixture(scope="module")
def live_server_clocked(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("tasks-live"), env=CLOCK_ENV).start()
    yield server
    server.kill()


def test_invalid_edit_leaves_the_stored_task_and_file_unchanged(live_server_clocked):
    server = live_server_clocked
    task = save(server, name="keep me")
    path = server.state_dir / "tasks.json"
    on_disk = path.read_bytes()
    for bad in ({"schedule": "* * *"}, {"timezone": "Nowhere/Land"}, {"model": "nope"},
                {"prompt": "x" * (1024 * 1024 + 1)}):
        r = server.post("/api/tasks/save", {"id": task["id"], **bad})
        assert r.status_code in (400, 413), r.text
        if r.status_code == 413:   # the sentence fits a task (no "attach it as a file")
            assert "the prompt is 1,048,577 bytes" in r.json()["error"] and "shorten it" in r.json()["error"]
        assert path.read_bytes() == on_disk
    assert server.post("/api/tasks/save", {"id": "gone", "name": "x"}).status_code == 404
    assert server.get("/api/tasks/preview", params={"schedule": "hourly", "timezone": "Nowhere/Land"}).status_code == 400
    # the preview judges an empty custom schedule or an emptied zone field as the save does
    for params, words in (({"schedule": "", "timezone": "UTC"}, "needs a schedule"),
                          ({"schedule": "hourly", "timezone": ""}, "IANA time zone")):
        r = server.get("/api/tasks/preview", params=params)
        assert r.status_code == 400 and words in r.json()["error"], r.text
        assert server.post("/api/tasks/save", {"name": "t", "prompt": "p", **params}).status_code == 400
    preview = server.get("/api/tasks/preview", params={"schedule": "weekly sun at 23:30", "timezone": "Asia/Tokyo"})
    assert preview.status_code == 200 and preview.json()["cron"] == "30 23 * * 0"
    assert len(preview.json()["next_runs"]) == 5
    assert all(datetime.fromisoformat(t).weekday() == 6 and t.endswith("23:30:00+09:00")
               for t in preview.json()["next_runs"])



def test_a_polled_list_leaves_long_prompts_out_and_one_task_gives_its_prompt(clocked):
    server = clocked()
    prompt = "今日のニュースを要約して 🌅 " * 12_000                # ~300 KB of CJK and emoji
    task = save(server, name="long", prompt=prompt)
    full = server.get("/api/tasks")
    [listed_task] = full.json()["tasks"]                         # the DESIGN §7 shape keeps `prompt`
    assert listed_task["prompt"] == prompt and len(full.content) > 300_000
    assert listed_task["prompt_bytes"] == len(prompt.encode()) and listed_task["prompt_preview"] == prompt[:200]
    light = server.get("/api/tasks", params={"prompt": "preview"})   # what the page polls
    assert light.status_code == 200 and len(light.content) < 5_000
    [row] = light.json()["tasks"]
    assert "prompt" not in row and row["prompt_preview"] == prompt[:200] and row["prompt_bytes"] == len(prompt.encode())
    assert row == {k: v for k, v in listed_task.items() if k != "prompt"}
    one = server.get("/api/tasks", params={"task_id": task["id"]})  # what the editor asks for
    assert one.status_code == 200 and [t["prompt"] for t in one.json()["tasks"]] == [prompt]
    assert server.get("/api/tasks", params={"task_id": "nope"}).status_code == 404
    bad = server.get("/api/tasks", params={"prompt": "none"})
    assert bad.status_code == 400 and "'preview'" in bad.json()["error"]


def test_task_names_are_unique_per_profile(clocked):
    server = clocked()
    first = save(server, name="Inbox summary")
    other = save(server, name="Build check")
    path = server.state_dir / "tasks.json"
    on_disk = path.read_bytes()
    for body in ({"name": "  inbox   SUMMARY "}, {"id": other["id"], "name": "Inbox Summary"}):
        r = server.post("/api/tasks/save", {"prompt": "p", "schedule": "hourly", **body})
        assert r.status_code == 400 and "already a task named" in r.json()["error"], r.text
        assert path.read_bytes() == on_disk
    # a task keeps its own name through an edit (also in other letter case)
    assert server.post("/api/tasks/save", {"id": first["id"], "name": "INBOX summary"}).status_code == 200
    assert server.post("/api/tasks/save", {"id": first["id"], "prompt": "changed"}).status_code == 200


def test_a_refused_continue_save_leaves_no_chat_behind(clocked):
    server = clocked()
    path = server.state_dir / "tasks.json"
    path.write_text('{"tasks": [', encoding="utf-8")          # damaged: saves are refused, never overwrite it
    r = server.post("/api/tasks/save", {"name": "one chat", "prompt": "p", "schedule": "hourly",
                                        "session_mode": "continue"})
    assert r.status_code == 409 and "damaged" in r.json()["error"], r.text
    assert server.get("/api/sessions").json()["sessions"] == []
    assert path.read_text(encoding="utf-8") == '{"tasks": ['


def test_a_tool_outside_the_allowed_list_is_denied_and_recorded(live_server_clocked):
    server = live_server_clocked
    script = fake_script(tokens=2, approval={"tool": "terminal", "command": "rm -rf build"},
                         tools=[{"name": "terminal", "args": {"cmd": "rm -rf build"}, "result": "removed"}])
    task = save(server, name="cleaner", prompt=script, allowed_tools=["web_search"])
    r = server.post("/api/tasks/run", {"task_id": task["id"]})
    assert r.status_code == 200, r.text
    run = settled_runs(server, task["id"], 1)[0]
    assert run["status"] == "complete" and run["reason"] == "manual"
    assert run["denied"] == [{"tool": "terminal", "command": "rm -rf build"}]
    reply = server.session(r.json()["session_id"])["messages"][-1]
    assert reply["denied_tools"][0]["tool"] == "terminal"
    assert "allowed tools" in reply["denied_tools"][0]["reason"]
    assert reply["tool_calls"][0]["is_error"] is True and reply["tool_calls"][0]["result"] != "removed"
    # an allowed tool runs without anyone answering
    allowed = save(server, name="searcher", allowed_tools=["terminal"], prompt=script)
    server.post("/api/tasks/run", {"task_id": allowed["id"]})
    ok = settled_runs(server, allowed["id"], 1)[0]
    assert ok["denied"] == [] and ok["status"] == "complete"
    assert server.session(ok["session_id"])["messages"][-1]["tool_calls"][0]["result"] == "removed"


def test_continue_mode_writes_every_run_into_one_chat(live_server_clocked):
    server = live_server_clocked
    task = save(server, name="diary", session_mode="continue", prompt="note one thing")
    sid = task["session_id"]
    assert sid and server.session(sid)["title"] == "diary"
    for n in (1, 2):
        r = server.post("/api/tasks/run", {"task_id": task["id"]})
        assert r.status_code == 200 and r.json()["session_id"] == sid
        settled_runs(server, task["id"], n)
    assert {r["session_id"] for r in runs(server, task["id"])} == {sid}
    assert [m["role"] for m in server.session(sid)["messages"]] == ["user", "assistant"] * 2


def test_a_run_due_while_the_last_one_runs_is_skipped(clocked):
    server = clocked()
    set_clock(server, at(0, 7, 30))
    task = save(server, schedule="hourly", prompt=fake_script(tokens=2, hang=True))
    set_clock(server, at(0, 8))
    first = wait_until(lambda: (runs(server, task["id"]) or [None])[0])
    set_clock(server, at(0, 9))
    latest = wait_until(lambda: (lambda rs: rs if len(rs) == 2 else None)(runs(server, task["id"])))
    assert latest[0]["status"] == "skipped" and "still going" in latest[0]["note"]
    assert latest[1]["run_id"] == first["run_id"] and latest[1]["status"] == "running"
    r = server.post("/api/tasks/run", {"task_id": task["id"]})
    assert r.status_code == 409 and "already running" in r.json()["error"]
    stream = server.get("/api/session/status", params={"session_id": first["session_id"]}).json()["active_stream_id"]
    server.post("/api/chat/cancel", {"stream_id": stream})   # the user stops it from the chat
    assert wait_until(lambda: runs(server, task["id"])[1]["status"] == "interrupted")
    assert server.post("/api/tasks/run", {"task_id": task["id"]}).status_code == 200


def test_delete_removes_the_task_and_its_history_but_keeps_its_chats(live_server_clocked):
    server = live_server_clocked
    task = save(server, name="short-lived")
    server.post("/api/tasks/run", {"task_id": task["id"]})
    sid = settled_runs(server, task["id"], 1)[0]["session_id"]
    assert server.post("/api/tasks/delete", {"task_id": task["id"]}).json() == {"ok": True}
    assert all(t["id"] != task["id"] for t in server.get("/api/tasks").json()["tasks"])
    assert server.get("/api/tasks/runs", params={"task_id": task["id"]}).status_code == 404
    assert not (server.state_dir / "task_runs" / f"{task['id']}.json").exists()
    assert server.session(sid)["message_count"] == 2
    assert server.post("/api/tasks/delete", {"task_id": task["id"]}).status_code == 404


def test_tasks_belong_to_their_profile(live_server_clocked):
    server = live_server_clocked
    assert server.post("/api/profile/create", {"name": "work"}).status_code == 200
    task = save(server, name="work task", profile="work")
    assert all(t["id"] != task["id"] for t in server.get("/api/tasks").json()["tasks"])
    assert json.loads((server.state_dir / "profiles" / "work" / "tasks.json").read_text())["tasks"][0]["id"] == task["id"]
    server.post("/api/profile/switch", {"name": "work"})
    try:
        assert [t["id"] for t in server.get("/api/tasks").json()["tasks"]] == [task["id"]]
        r = server.post("/api/tasks/run", {"task_id": task["id"]})
        assert r.status_code == 200
        sid = settled_runs(server, task["id"], 1)[0]["session_id"]
        assert server.get("/api/session", params={"session_id": sid}).status_code == 200
    finally:
        server.post("/api/profile/switch", {"name": "default"})
    assert server.get("/api/session", params={"session_id": sid}).status_code == 404  # not the default's chat


def test_a_second_server_on_the_state_dir_cannot_run_its_tasks(clocked, tmp_path):
    first = clocked(tmp=tmp_path / "one")
    set_clock(first, at(0, 7))
    task = save(first, schedule="daily at 08:00")
    second = LiveServer(tmp_path / "one", env=CLOCK_ENV)
    with pytest.raises(RuntimeError, match="already using"):
        second.start(timeout=20)
    set_clock(first, at(0, 8))
    assert len(settled_runs(first, task["id"], 1)) == 1


def test_the_test_clock_route_exists_only_when_asked_for(make_server):
    server = make_server().start()
    assert server.post("/api/tasks/test-clock", {"now": 0}).status_code == 404
    task = save(server, schedule="hourly")
    assert len(task["next_runs"]) == 5   # real time: the scheduler thread runs on its own


# -- schedules (no server) ----------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(hour=st.integers(0, 23), minute=st.integers(0, 59),
       zone=st.sampled_from(["Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "UTC"]),
       start=st.floats(1.6e9, 2.2e9))
def test_daily_preset_runs_once_a_day_at_its_wall_time(hour, minute, zone, start):
    cron = tasks_mod.resolve_schedule(f"daily at {hour}:{minute:02d}")
    times = tasks_mod.due_times(cron, zone, start, 5)
    assert all(a < b for a, b in zip(times, times[1:])) and times[0] > start
    local = [datetime.fromtimestamp(t, ZoneInfo(zone)) for t in times]
    assert len({d.date() for d in local}) == 5      # never twice a day, even across a DST change
    # the wall time is the preset's, except on a day whose clock skipped it (then as much later as it jumped)
    for d in local:
        assert (d.hour, d.minute) == (hour, minute) or d.utcoffset() != d.replace(hour=0, minute=0).utcoffset()



def test_dst_days_run_as_documented():
    ny = "America/New_York"
    # 2:00 becomes 3:00 on 14 March 2027: a 2:30 run comes at 3:30, once
    times = tasks_mod.due_times("30 2 * * *", ny, datetime(2027, 3, 13, 12, tzinfo=ZoneInfo(ny)).timestamp(), 2)
    assert [tasks_mod.iso(t, ny) for t in times] == ["2027-03-14T03:30:00-04:00", "2027-03-15T02:30:00-04:00"]
    # 2:00 becomes 1:00 on 7 November 2027: an hourly task follows real time through the
    # repeated hour (1:00 EDT and 1:00 EST, an hour apart) ...
    after = datetime(2027, 11, 7, 0, 30, tzinfo=ZoneInfo(ny)).timestamp()
    times = tasks_mod.due_times("0 * * * *", ny, after, 4)
    assert [tasks_mod.iso(t, ny) for t in times] == ["2027-11-07T01:00:00-04:00", "2027-11-07T01:00:00-05:00",
                                                   "2027-11-07T02:00:00-05:00", "2027-11-07T03:00:00-05:00"]
    assert {b - a for a, b in zip(times, times[1:])} == {3600}
    assert [tasks_mod.iso(t, ny) for t in tasks_mod.due_times("*/30 * * * *", ny, after, 5)] == [
        "2027-11-07T01:00:00-04:00", "2027-11-07T01:30:00-04:00", "2027-11-07T01:00:00-05:00",
        "2027-11-07T01:30:00-05:00", "2027-11-07T02:00:00-05:00"]
    # ... also when asked from inside the first occurrence (1:40 EDT: next is 1:00 EST)
    inside = datetime(2027, 11, 7, 1, 40, tzinfo=ZoneInfo(ny)).timestamp()
    assert tasks_mod.iso(tasks_mod.next_due("0 * * * *", ny, inside), ny) == "2027-11-07T01:00:00-05:00"
    # ... while a fixed hour runs once, at the first occurrence
    assert [tasks_mod.iso(t, ny) for t in tasks_mod.due_times("30 1 * * *", ny, after, 2)] == [
        "2027-11-07T01:30:00-04:00", "2027-11-08T01:30:00-05:00"]
    assert tasks_mod.count_due("0 * * * *", ny, after, after + 4 * 3600) == 4   # missed runs counted alike


@functools.lru_cache(maxsize=None)
def _transitions(zone: str, year: int) -> tuple[float, ...]:
    """The instants in ``year`` at which ``zone``'s UTC offset changes (to the minute)."""
    tz = ZoneInfo(zone)
    t = datetime(year, 1, 1, tzinfo=timezone.utc).timestamp()
    out = []
    while t < datetime(year + 1, 1, 1, tzinfo=timezone.utc).timestamp():
        if datetime.fromtimestamp(t, tz).utcoffset() != datetime.fromtimestamp(t + 3600, tz).utcoffset():
            lo, hi = t, t + 3600    # the offset at lo is the old one, at hi the new one
            while hi - lo > 60:
                mid = (lo + hi) // 2 // 60 * 60
                mid = mid if lo < mid < hi else lo + 60
                if datetime.fromtimestamp(mid, tz).utcoffset() == datetime.fromtimestamp(lo, tz).utcoffset():
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        t += 3600
    return tuple(out)


DST_ZONES = ["America/New_York", "Europe/Paris", "Australia/Lord_Howe", "America/Santiago",
             "Australia/Sydney", "Pacific/Chatham", "America/St_Johns", "Asia/Tehran", "Pacific/Apia"]


@settings(max_examples=80, deadline=None)
@given(zone=st.sampled_from(DST_ZONES), year=st.integers(2005, 2030), pick=st.integers(0, 9),
       lead=st.integers(0, 4 * 60), minute=st.sampled_from(["0", "30", "*/15", "5,45", "*/7", "*"]),
       hour=st.sampled_from(["*", "*/2", "*/3", "1", "2", "0-3", "1,2,3", "23"]))
def test_due_times_around_dst_changes_follow_the_documented_rule(zone, year, pick, lead, minute, hour):
    """Against a minute-by-minute oracle on the real time line near a DST change: a run at
    every instant whose wall time the schedule names, the repeated wall times of a
    fall-back only at their first occurrence unless the hour field is a wildcard/step,
    a wall time skipped by a spring-forward as much later as the clock jumped."""
    changes = _transitions(zone, year)
    assume(changes)
    tz = ZoneInfo(zone)
    cron = f"{minute} {hour} * * *"
    minutes, hours = croniter(cron).expanded[:2]
    named = lambda wall: ((minutes == ["*"] or wall.minute in minutes)     # noqa: E731
                          and (hours == ["*"] or wall.hour in hours))
    every_hour = hour.startswith("*")
    start = changes[pick % len(changes)] - lead * 60 - 30          # half a minute off the grid
    end = start + 6 * 3600
    expected = set()
    for t in range(int(start) + 30, int(end), 60):
        wall = datetime.fromtimestamp(t, tz)
        if named(wall) and (every_hour or wall.fold == 0):
            expected.add(float(t))
        jump = (wall.utcoffset() - datetime.fromtimestamp(t - 60, tz).utcoffset()).total_seconds()
        for k in range(int(jump) // 60):      # t starts a spring-forward: the wall times it skipped
            if named(wall.replace(tzinfo=None) - timedelta(seconds=jump - 60 * k)):
                expected.add(float(t + 60 * k))
    times = [t for t in tasks_mod.due_times(cron, zone, start, 400) if t <= end]
    assert all(a < b for a, b in zip(times, times[1:])) and all(t > start for t in times)  # one run per instant
    assert times == sorted(t for t in expected if t <= end)
    if minute.isdigit() and hour.isdigit():                         # a fixed time: once a day
        days = [datetime.fromtimestamp(t, tz).date() for t in times]
        assert len(days) == len(set(days))


@given(st.text(max_size=40))
def test_schedule_parser_accepts_or_refuses_with_a_sentence(text):
    try:
        cron = tasks_mod.resolve_schedule(text)
    except ApiError as exc:
        assert exc.status == 400 and exc.message
    else:
        assert len(cron.split(" ")) == 5
