"""The Tasks dialog in a real browser: create a task with a preset and see its next runs
(asked from the server as the fields change), run it now, open the run's chat."""
from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from ..helpers import fake_script, wait_until
from .conftest import assistant_texts, sid_of, wait_reply_finished

pytestmark = pytest.mark.browser


def test_create_a_task_see_its_next_runs_run_it_and_open_its_chat(make_server, open_page, console):
    console.allow("status of 400")   # the preview of a bad cron expression, on purpose
    # the test clock keeps the scheduler from running anything by itself during the test
    server = make_server(env={"HERMES_WEBUI_TEST_CLOCK": "1"}).start()
    page = open_page(server)
    page.get_by_role("button", name="Scheduled tasks").click()
    dialog = page.locator("#tasks-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_text("No tasks yet")).to_be_visible()
    dialog.get_by_role("button", name="New task").click()

    form = dialog.get_by_role("form", name="New task")
    form.get_by_label("Name").fill("Morning brief 🌅 朝")
    form.get_by_label("Prompt").fill("summarise the news")
    # a bad custom schedule is explained at once, before saving
    form.get_by_label("Schedule").select_option("cron")
    form.get_by_label("Cron expression").fill("61 * * * *")
    expect(form.locator(".hp-hint.hp-error")).to_contain_text("not a schedule")
    form.get_by_label("Schedule").select_option("weekly")
    form.get_by_label("Day").select_option("wednesday")
    form.get_by_label("Time", exact=True).fill("07:30")
    form.get_by_label("Time zone").fill("Asia/Tokyo")
    runs = form.locator(".hp-task-preview li")
    expect(runs).to_have_count(5)
    expect(form.locator(".hp-hint", has_text="Next five runs")).to_contain_text("30 7 * * 3")
    for text in runs.all_inner_texts():
        assert re.search(r"Wed", text) and re.search(r"7:30", text), text
    form.get_by_role("button", name="Create task").click()

    row = dialog.locator(".hp-task", has_text="Morning brief")
    expect(row).to_be_visible()
    expect(row.locator(".hp-task-next")).to_contain_text("Wed")
    expect(row.locator(".hp-task-last")).to_have_text("Never run yet")
    [task] = server.get("/api/tasks").json()["tasks"]
    assert (task["cron"], task["timezone"], task["name"]) == ("30 7 * * 3", "Asia/Tokyo", "Morning brief 🌅 朝")

    row.get_by_role("button", name="Run now: Morning brief 🌅 朝").click()
    history = dialog.get_by_role("region", name=re.compile("Runs of Morning brief"))
    expect(history.locator(".hp-run")).to_have_count(1)
    run = wait_until(lambda: (server.get("/api/tasks/runs", params={"task_id": task["id"]}).json()["runs"] or [None])[0])
    history.get_by_role("button", name=re.compile("Open the chat of the run")).click()
    expect(dialog).to_be_hidden()
    assert sid_of(page) == run["session_id"]
    wait_reply_finished(page)
    assert assistant_texts(page) == ["echo: summarise the news"]
    expect(page.locator("#chat-title")).to_have_text(re.compile(r"^Morning brief 🌅 朝 · "))

    # back in the dialog, the task shows how its last run went
    page.get_by_role("button", name="Scheduled tasks").click()
    expect(dialog.locator(".hp-task .hp-task-last")).to_contain_text("Finished")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Scheduled tasks")).to_be_focused()


def test_a_denied_tool_is_noted_in_the_runs_chat(make_server, open_page):
    server = make_server(env={"HERMES_WEBUI_TEST_CLOCK": "1"}).start()
    script = fake_script(tokens=2, approval={"tool": "terminal", "command": "make deploy"},
                         tools=[{"name": "terminal", "args": {"cmd": "make deploy"}, "result": "deployed"}])
    task = server.post("/api/tasks/save", {"name": "deployer", "prompt": script, "schedule": "hourly"}).json()["task"]
    sid = server.post("/api/tasks/run", {"task_id": task["id"]}).json()["session_id"]
    wait_until(lambda: server.get("/api/tasks/runs", params={"task_id": task["id"]}).json()["runs"][0]["status"] != "running")
    page = open_page(server, f"/?s={sid}")
    wait_reply_finished(page)
    expect(page.locator(".msg-assistant .denied-note")).to_contain_text("Denied without asking (a scheduled run): terminal")


def test_an_opted_in_page_is_notified_when_a_run_finishes_or_fails(make_server, open_page):
    server = make_server(env={"HERMES_WEBUI_TEST_CLOCK": "1"}).start()
    ok = server.post("/api/tasks/save", {"name": "Backup 💾", "prompt": "back up", "schedule": "hourly"}).json()["task"]
    bad = server.post("/api/tasks/save", {"name": "flaky", "prompt": fake_script(tokens=1, error="disk full"),
                                          "schedule": "hourly"}).json()["task"]
    page = open_page(server, permissions=["notifications"])
    # a stand-in for the system's notifications, recording what the page shows
    page.evaluate("""() => {
      window.shown = [];
      window.Notification = class { constructor(title) { window.shown.push(title); }
        static get permission() { return "granted"; } static requestPermission() { return Promise.resolve("granted"); } };
    }""")
    page.get_by_role("button", name="Scheduled tasks").click()
    page.get_by_label("Tell me when a run ends").check()
    page.keyboard.press("Escape")
    expect(page.locator("#tasks-dialog")).to_be_hidden()
    server.post("/api/tasks/run", {"task_id": ok["id"]})
    page.wait_for_function("() => window.shown.length >= 1")
    server.post("/api/tasks/run", {"task_id": bad["id"]})
    page.wait_for_function("() => window.shown.length >= 2")
    assert page.evaluate("() => window.shown") == ["Task Backup 💾 finished", "Task flaky failed"]
    # the choice is remembered by this browser
    page.reload()
    page.wait_for_selector("html[data-ready]")
    assert page.evaluate("() => localStorage.getItem('hermes.taskNotify')") == "1"


def test_delete_asks_first_and_keeps_the_task_on_cancel(make_server, open_page):
    server = make_server(env={"HERMES_WEBUI_TEST_CLOCK": "1"}).start()
    server.post("/api/tasks/save", {"name": "weekly report", "prompt": "report", "schedule": "weekly fri at 17:00"})
    page = open_page(server)
    page.get_by_role("button", name="Scheduled tasks").click()
    tasks = page.locator("#tasks-dialog")
    tasks.get_by_role("button", name="Delete: weekly report").click()
    confirm = page.locator("#dialog")
    expect(confirm).to_contain_text("Delete the task weekly report?")
    confirm.get_by_role("button", name="Cancel").click()
    expect(tasks.locator(".hp-task")).to_have_count(1)
    assert len(server.get("/api/tasks").json()["tasks"]) == 1
    tasks.get_by_role("button", name="Delete: weekly report").click()
    confirm.get_by_role("button", name="Delete").click()
    expect(tasks.get_by_text("No tasks yet")).to_be_visible()
    assert server.get("/api/tasks").json()["tasks"] == []


def test_history_says_a_skipped_run_was_missed_and_a_task_deleted_elsewhere_leaves_the_list(make_server, open_page,
                                                                                          console):
    console.allow("status of 404")   # the run of the task another tab deleted, on purpose
    server = make_server(env={"HERMES_WEBUI_TEST_CLOCK": "1"}).start()
    start = 1_800_000_000
    server.post("/api/tasks/test-clock", {"now": start})
    task = server.post("/api/tasks/save", {"name": "nightly", "prompt": "tidy up", "schedule": "daily at 03:00",
                                           "timezone": "UTC"}).json()["task"]
    server.post("/api/tasks/test-clock", {"now": start + 3 * 86400})   # three nights missed: skipped
    page = open_page(server)
    page.get_by_role("button", name="Scheduled tasks").click()
    dialog = page.locator("#tasks-dialog")
    dialog.get_by_role("button", name="History: nightly").click()
    run = dialog.get_by_role("region", name="Runs of nightly").locator(".hp-run")
    expect(run).to_have_count(1)
    expect(run).to_contain_text("Skipped")
    expect(run).to_contain_text("missed while the server was stopped")
    expect(run).not_to_contain_text("made up")
    # another tab deletes it; running it here says so and its row goes
    assert server.post("/api/tasks/delete", {"task_id": task["id"]}).status_code == 200
    dialog.get_by_role("button", name="Run now: nightly").click()
    expect(dialog.locator(".hp-status")).to_contain_text("it may have been deleted")
    expect(dialog.locator(".hp-task")).to_have_count(0)


def test_editing_a_task_whose_model_is_gone_keeps_it_and_says_so(make_server, open_page, console):
    console.allow("status of 400")   # the save refused on purpose
    server = make_server(env={"HERMES_WEBUI_TEST_CLOCK": "1"})
    # written by a server that ran another backend (its model is not offered by the fake one)
    task = {"id": "abc123", "name": "digest", "prompt": "digest", "schedule": "hourly", "cron": "0 * * * *",
            "timezone": "UTC", "enabled": True, "session_mode": "new", "session_id": None, "model": "gpt-4o-mini",
            "missed": "skip", "allowed_tools": [], "created_at": 1.0, "updated_at": 1.0}
    server.state_dir.mkdir(parents=True, exist_ok=True)
    (server.state_dir / "tasks.json").write_text(json.dumps({"tasks": [task]}), encoding="utf-8")
    server.start()
    page = open_page(server)
    page.get_by_role("button", name="Scheduled tasks").click()
    dialog = page.locator("#tasks-dialog")
    dialog.get_by_role("button", name="Edit: digest").click()
    form = dialog.get_by_role("form", name="Edit digest")
    expect(form.get_by_label("Model")).to_have_value("gpt-4o-mini")
    expect(form.get_by_label("Model").locator("option:checked")).to_contain_text("not offered by this server now")
    form.get_by_role("button", name="Save changes").click()
    expect(form.get_by_role("alert")).to_contain_text("unknown model 'gpt-4o-mini'")
    assert server.get("/api/tasks").json()["tasks"][0]["model"] == "gpt-4o-mini"
    form.get_by_label("Model").select_option("")
    form.get_by_role("button", name="Save changes").click()
    expect(form).to_be_hidden()
    assert server.get("/api/tasks").json()["tasks"][0]["model"] is None


def test_an_open_panel_shows_a_run_end_without_reload_and_keeps_the_focus(make_server, open_page):
    server = make_server(env={"HERMES_WEBUI_TEST_CLOCK": "1"}).start()
    server.post("/api/tasks/save", {"name": "slow 🐢", "prompt": fake_script(tokens=20, delay_ms=100),
                                    "schedule": "hourly"})
    page = open_page(server)
    page.get_by_role("button", name="Scheduled tasks").click()
    dialog = page.locator("#tasks-dialog")
    run_now = dialog.get_by_role("button", name="Run now: slow 🐢")
    run_now.click()
    row = dialog.locator(".hp-task", has_text="slow 🐢")
    expect(row.locator(".hp-task-last")).to_contain_text("Running")
    run_now.focus()
    history = dialog.get_by_role("region", name="Runs of slow 🐢")
    expect(history.get_by_role("button", name=re.compile("Open the chat"))).to_have_text("Open this run's chat (live)")
    # nobody presses Reload: the row and the history follow the run to its end
    expect(row.locator(".hp-task-last")).to_contain_text("Finished", timeout=20_000)
    expect(history.locator(".hp-run")).to_contain_text("Finished")
    expect(history.get_by_role("button", name=re.compile("Open the chat"))).to_have_text("Open chat")
    expect(run_now).to_be_focused()


def test_the_keyboard_focus_stays_in_the_dialog_after_each_action(make_server, open_page):
    server = make_server(env={"HERMES_WEBUI_TEST_CLOCK": "1"}).start()
    page = open_page(server)
    page.get_by_role("button", name="Scheduled tasks").click()
    dialog = page.locator("#tasks-dialog")
    new = dialog.get_by_role("button", name="New task")
    expect(new).to_be_focused()
    page.keyboard.press("Enter")
    form = dialog.get_by_role("form", name="New task")
    expect(form.get_by_label("Name")).to_be_focused()
    page.keyboard.type("Keys ⌨ 鍵")
    form.get_by_label("Prompt").fill("by keyboard")
    form.get_by_label("Name").press("Enter")                    # submits the form
    expect(dialog.locator(".hp-task", has_text="Keys ⌨ 鍵")).to_be_visible()
    expect(new).to_be_focused()                                  # back on the button that opened the form
    dialog.get_by_role("button", name="Pause: Keys ⌨ 鍵").press("Enter")
    expect(dialog.get_by_role("button", name="Resume: Keys ⌨ 鍵")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog.get_by_role("button", name="Pause: Keys ⌨ 鍵")).to_be_focused()
    dialog.get_by_role("button", name="Edit: Keys ⌨ 鍵").press("Enter")
    dialog.get_by_role("form", name="Edit Keys ⌨ 鍵").get_by_role("button", name="Cancel").press("Enter")
    expect(dialog.get_by_role("button", name="Edit: Keys ⌨ 鍵")).to_be_focused()
    dialog.get_by_role("button", name="Delete: Keys ⌨ 鍵").press("Enter")
    page.locator("#dialog").get_by_role("button", name="Delete").press("Enter")
    expect(dialog.get_by_text("No tasks yet")).to_be_visible()
    expect(new).to_be_focused()
    assert server.get("/api/tasks").json()["tasks"] == []


def test_a_cleared_time_or_a_taken_name_is_explained_and_nothing_saved(make_server, open_page, console):
    console.allow("status of 400")   # the duplicate name refused on purpose
    server = make_server(env={"HERMES_WEBUI_TEST_CLOCK": "1"}).start()
    server.post("/api/tasks/save", {"name": "Morning brief", "prompt": "news", "schedule": "hourly"})
    page = open_page(server)
    page.get_by_role("button", name="Scheduled tasks").click()
    dialog = page.locator("#tasks-dialog")
    dialog.get_by_role("button", name="New task").click()
    form = dialog.get_by_role("form", name="New task")
    form.get_by_label("Name").fill("Evening brief")
    form.get_by_label("Prompt").fill("summarise the day")
    form.get_by_label("Schedule").select_option("daily")
    form.get_by_label("Time", exact=True).fill("")              # cleared: no silent 08:00
    expect(form.locator(".hp-hint.hp-error")).to_contain_text("Enter a time")
    form.get_by_role("button", name="Create task").click()
    expect(form.get_by_role("alert")).to_contain_text("Enter a time")
    expect(form.get_by_label("Time", exact=True)).to_be_focused()
    assert [t["name"] for t in server.get("/api/tasks").json()["tasks"]] == ["Morning brief"]
    # names tell the rows (and their buttons) apart: a taken one is refused with a sentence
    form.get_by_label("Time", exact=True).fill("18:00")
    form.get_by_label("Name").fill("morning BRIEF")
    form.get_by_role("button", name="Create task").click()
    expect(form.get_by_role("alert")).to_contain_text("already a task named")
    assert [t["name"] for t in server.get("/api/tasks").json()["tasks"]] == ["Morning brief"]
    form.get_by_label("Name").fill("Evening brief")
    form.get_by_role("button", name="Create task").click()
    expect(dialog.locator(".hp-task", has_text="Evening brief")).to_be_visible()
    assert server.get("/api/tasks").json()["tasks"][1]["cron"] == "0 18 * * *"


def test_the_status_stays_in_sight_over_a_long_list(make_server, open_page):
    server = make_server(env={"HERMES_WEBUI_TEST_CLOCK": "1"}).start()
    for i in range(30):
        server.post("/api/tasks/save", {"name": f"task {i:02d}", "prompt": "p", "schedule": "hourly"})
    page = open_page(server)
    page.get_by_role("button", name="Scheduled tasks").click()
    dialog = page.locator("#tasks-dialog")
    dialog.get_by_role("button", name="Pause: task 00").click()     # the first row, at the top of the list
    status = dialog.get_by_role("status").filter(has_text="Paused task 00")
    expect(status).to_be_visible()
    expect(status).to_be_in_viewport()
    dialog.get_by_role("button", name="Pause: task 29").click()     # the last, scrolled to the foot
    expect(dialog.get_by_role("status").filter(has_text="Paused task 29")).to_be_in_viewport()


def test_times_name_the_tasks_zone_when_it_is_not_the_browsers(make_server, open_page):
    server = make_server(env={"HERMES_WEBUI_TEST_CLOCK": "1"}).start()
    page = open_page(server)
    mine = page.evaluate("() => Intl.DateTimeFormat().resolvedOptions().timeZone")
    other = "Asia/Tokyo" if mine != "Asia/Tokyo" else "Europe/Paris"
    server.post("/api/tasks/save", {"name": "here", "prompt": "p", "schedule": "daily at 09:00", "timezone": mine})
    server.post("/api/tasks/save", {"name": "away", "prompt": "p", "schedule": "daily at 09:00", "timezone": other})
    page.get_by_role("button", name="Scheduled tasks").click()
    dialog = page.locator("#tasks-dialog")
    expect(dialog.locator(".hp-task", has_text="away").locator(".hp-task-next")).to_contain_text(f"({other} time)")
    expect(dialog.locator(".hp-task", has_text="here").locator(".hp-task-next")).not_to_contain_text("time)")
    expect(dialog.locator(".hp-task", has_text="here").locator(".hp-task-next")).to_contain_text("09:00")


def test_the_page_polls_a_light_list_and_the_editor_gets_the_whole_prompt(make_server, open_page):
    server = make_server(env={"HERMES_WEBUI_TEST_CLOCK": "1"}).start()
    long_prompt = "Résumé des nouvelles 📰 ニュース " * 10_000 + fake_script(tokens=20, delay_ms=100)  # ~300 KB
    server.post("/api/tasks/save", {"name": "big", "prompt": long_prompt, "schedule": "hourly"})
    page = open_page(server)
    lists = []   # sizes of the task lists the page fetched
    page.on("response", lambda r: lists.append(len(r.body())) if r.url.split("?")[0].endswith("/api/tasks") else None)
    page.get_by_role("button", name="Scheduled tasks").click()
    dialog = page.locator("#tasks-dialog")
    dialog.get_by_role("button", name="Run now: big").click()
    row = dialog.locator(".hp-task", has_text="big")
    expect(row.locator(".hp-task-last")).to_contain_text("Finished", timeout=20_000)
    polled = [n for n in lists if n]
    assert len(polled) >= 2 and max(polled) < 10_000, polled   # the prompt did not come with each look
    dialog.get_by_role("button", name="Edit: big").click()
    prompt = dialog.get_by_role("form", name="Edit big").get_by_label("Prompt")
    expect(prompt).to_have_value(long_prompt)
