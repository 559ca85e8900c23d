"""The Settings dialog in a real browser (issue 17 item 4, issue 15): the theme applies at
once and survives a reload, Ctrl+Enter as the send key, an "always" rule revoked, the
default model for new chats, the context gauge after a reply, a queued message edited."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from ..helpers import fake_script, stream_events, wait_until
from .conftest import assistant_texts, sid_of, wait_reply_finished

pytestmark = pytest.mark.browser

DARK_BG = "rgb(22, 23, 27)"      # --bg of the dark theme (app.css)
LIGHT_BG = "rgb(255, 255, 255)"


def open_settings(page):
    page.click("#settings-btn")
    dialog = page.get_by_role("dialog", name="Settings")
    expect(dialog).to_be_visible()
    return dialog


def body_background(page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def test_theme_switches_at_once_and_survives_a_reload_and_a_new_browser(live_server, open_page):
    page = open_page(live_server, color_scheme="light")
    assert page.get_attribute("html", "data-theme") == "light" and body_background(page) == LIGHT_BG
    dialog = open_settings(page)
    expect(dialog.get_by_label("Theme")).to_be_focused()
    dialog.get_by_label("Theme").select_option("dark")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")          # at once
    expect(dialog.get_by_role("status")).to_have_text("Theme saved.")
    assert body_background(page) == DARK_BG
    assert page.get_attribute('meta[name="theme-color"][media="all"]', "content") == "#16171b"   # the browser's bar
    assert live_server.get("/api/settings").json()["settings"]["theme"] == "dark"
    page.reload()
    page.wait_for_selector("html[data-ready]")
    assert page.get_attribute("html", "data-theme") == "dark" and body_background(page) == DARK_BG
    # A browser that never saw the page before (no localStorage mirror) gets it from the server.
    other = open_page(live_server, color_scheme="light")
    expect(other.locator("html")).to_have_attribute("data-theme", "dark")
    # "system" follows the browser's colour scheme again.
    dialog = open_settings(page)
    dialog.get_by_label("Theme").select_option("system")
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    page.emulate_media(color_scheme="dark")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")


def test_ctrl_enter_sends_and_enter_makes_a_new_line(make_server, open_page):
    server = make_server().start()
    assert server.post("/api/settings", {"settings": {"send_key": "ctrl-enter"}}).ok
    page = open_page(server)
    expect(page.locator("#composer-help")).to_contain_text("Ctrl+Enter to send")
    box = page.locator("#composer-input")
    box.click()
    page.keyboard.type("line one")
    page.keyboard.press("Enter")
    page.keyboard.type("línea dos 二")
    assert box.input_value() == "line one\nlínea dos 二"
    assert page.locator(".msg-user").count() == 0                     # Enter did not send
    page.keyboard.press("Control+Enter")
    wait_reply_finished(page)
    assert assistant_texts(page) == ["echo: line one línea dos 二"]
    # Back to Enter in Settings: Enter sends at once, without a reload.
    dialog = open_settings(page)
    dialog.get_by_label("Send a message with").select_option("enter")
    expect(dialog.get_by_role("status")).to_have_text("Send key saved.")
    dialog.get_by_role("button", name="Close", exact=True).click()
    expect(page.locator("#composer-help")).to_contain_text("Enter to send · Shift+Enter")
    box.fill("third")
    box.press("Enter")
    wait_reply_finished(page, 2)
    assert assistant_texts(page)[-1] == "echo: third"


def test_an_always_rule_is_listed_and_revoked(make_server, open_page):
    server = make_server().start()
    sid = server.new_session()
    rule = {"tool": "terminal", "command": "rm -rf build/ && echo 完了", "description": "clean"}
    stream_id = server.start_chat(sid, fake_script(tokens=2, approval=rule, tools=[{"name": "terminal", "result": "ok"}]))
    pending = wait_until(lambda: server.get("/api/approval/pending", params={"session_id": sid}).json()["approvals"],
                         message="the approval")
    assert server.post("/api/approval/respond", {"stream_id": stream_id, "approval_id": pending[0]["approval_id"],
                                                 "choice": "always"}).ok
    stream_events(server, stream_id)
    page = open_page(server)
    dialog = open_settings(page)
    rules = dialog.locator(".settings-rule")
    expect(rules).to_have_count(1)
    expect(rules.first).to_contain_text("rm -rf build/ && echo 完了")
    dialog.get_by_role("button", name="Revoke: terminal rm -rf build/ && echo 完了").click()
    expect(rules).to_have_count(0)
    expect(dialog.locator("#settings-rules-empty")).to_be_visible()
    assert server.get("/api/approval/rules").json()["rules"] == []
    # Revoked: the same command is asked again.
    again = server.start_chat(sid, fake_script(tokens=2, approval=rule, approval_timeout_ms=200))
    events = stream_events(server, again)
    assert any(e["event"] == "approval" for e in events)


def test_default_model_for_new_chats_and_the_context_gauge(live_server, open_page):
    page = open_page(live_server)
    expect(page.locator("#context-gauge")).to_be_hidden()
    dialog = open_settings(page)
    model = dialog.get_by_label("New chats start on")
    expect(model.locator("option")).to_have_count(3)                  # the server's default + 2
    model.select_option("fake-echo-2")
    expect(dialog.get_by_role("status")).to_have_text("Default model saved.")
    dialog.get_by_role("button", name="Close", exact=True).click()
    expect(page.locator("#model-select")).to_have_value("fake-echo-2")
    page.fill("#composer-input", "how full is the context now")
    page.click("#send-btn")
    wait_reply_finished(page)
    sid = sid_of(page)
    assert live_server.session(sid)["messages"][-1]["model"] == "fake-echo-2"
    gauge = page.locator("#context-gauge")
    expect(gauge).to_be_visible()
    expect(gauge).to_contain_text("% of 4,096")
    used = page.evaluate("document.querySelector('#context-meter').value")
    assert 0 < used < 0.05                                             # 6 prompt words + 7 tokens of 4,096
    page.reload()
    page.wait_for_selector("html[data-ready]")
    expect(page.locator("#context-gauge")).to_be_visible()             # from the saved reply's usage
    live_server.post("/api/settings", {"settings": {"default_model": None}})


def test_a_queued_message_is_edited_before_it_runs(live_server, open_page):
    page = open_page(live_server)
    page.fill("#composer-input", fake_script(tokens=40, delay_ms=100))
    page.click("#send-btn")
    page.wait_for_selector(".msg-assistant.streaming")
    page.fill("#composer-input", "first draft")
    page.click("#send-btn")
    queued = page.locator("#queue .queued")
    expect(queued).to_have_count(1)
    queued.get_by_role("button", name="Edit the queued message: first draft").click()
    box = page.get_by_role("textbox", name="Queued message")
    expect(box).to_be_focused()
    box.fill("second thoughts")
    queued.get_by_role("button", name="Save").click()
    expect(page.locator("#queue .queued-text")).to_have_text("second thoughts")
    page.click("#stop-btn")
    wait_reply_finished(page, 2)
    expect(page.locator(".msg-user").last).to_contain_text("second thoughts")
    wait_until(lambda: live_server.session(sid_of(page))["messages"][-1].get("content") == "echo: second thoughts",
               message="the edited message's reply")


def test_a_checkbox_sits_beside_its_words(live_server, open_page):
    """A dialog's text fields are full width; its checkboxes are not: 'Let the model name new
    chats' reads on one line after a box of its own size (the box once took the whole row and
    squeezed the words into a narrow column)."""
    page = open_page(live_server)
    dialog = open_settings(page)
    for name in ("Let the model name new chats", "Notify me when a reply finishes while this tab is in the background"):
        box = dialog.get_by_label(name).bounding_box()
        words = dialog.get_by_text(name, exact=True).bounding_box()
        assert box["width"] <= 24, (name, box)
        assert words["x"] >= box["x"] + box["width"] and words["x"] - (box["x"] + box["width"]) <= 16, (name, box, words)
        assert words["height"] < 30 or words["width"] > 300, (name, words)   # one line, or the rest of the row: not a narrow column
