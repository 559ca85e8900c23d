"""Versions in a real browser (issue 17 item 1): "‹ 2/3 ›" on a message where versions part
ways; the arrows switch the version shown and the transcript after it follows; a retry on
the page adds a version. Chats are seeded through the import endpoint, which keeps versions."""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from .conftest import wait_title

pytestmark = pytest.mark.browser


def msg(role: str, text: str, t: float) -> dict:
    return {"role": role, "content": text, "timestamp": t, **({"status": "complete"} if role == "assistant" else {})}


def seed_versions(server) -> str:
    """A chat whose second question has three versions; the third (shown) is the shortest,
    the second goes on with a further exchange."""
    t = time.time() - 600
    messages = [msg("user", "Name a colour", t), msg("assistant", "Red", t + 1),
                msg("user", "Another one?", t + 2), msg("assistant", "reply three: violet 紫", t + 3)]
    versions = {"2": {"current": 2, "tails": [
        {"messages": [msg("user", "Another one?", t + 4), msg("assistant", "reply one: green", t + 5)]},
        {"messages": [msg("user", "Another, please", t + 6), msg("assistant", "reply two: blue", t + 7),
                      msg("user", "Why blue?", t + 8), msg("assistant", "Because the sky", t + 9)]},
        None]}}
    r = server.post("/api/session/import", {"hermes_webui_export": 1, "session": {
        "title": "Colours", "manual_title": True, "messages": messages, "versions": versions}})
    assert r.status_code == 200, r.text
    return r.json()["sessions"][0]["session_id"]


def shown(page):
    return page.locator(".msg-user .msg-body, .msg-assistant .md")


def test_the_arrows_switch_versions_and_the_transcript_follows(live_server, open_page):
    sid = seed_versions(live_server)
    page = open_page(live_server, f"/?s={sid}")
    wait_title(page, "Colours")
    expect(shown(page)).to_have_text(["Name a colour", "Red", "Another one?", "reply three: violet 紫"])
    control = page.locator('.msg[data-index="2"] .versions')
    expect(control).to_have_attribute("aria-label", "Version 3 of 3")
    expect(control.locator(".version-label")).to_have_text("3/3")
    expect(page.locator(".versions")).to_have_count(1)                  # only where versions part ways
    expect(control.get_by_role("button", name="Next version")).to_be_disabled()

    control.get_by_role("button", name="Previous version").click()
    expect(shown(page)).to_have_text(["Name a colour", "Red", "Another, please", "reply two: blue",
                                      "Why blue?", "Because the sky"])
    control = page.locator('.msg[data-index="2"] .versions')
    expect(control.locator(".version-label")).to_have_text("2/3")
    assert live_server.session(sid)["versions"] == {"2": {"count": 3, "current": 1}}
    # the keyboard stays on the arrows: Enter goes on to version 1
    focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused == "Previous version"
    page.keyboard.press("Enter")
    expect(page.locator('.msg[data-index="2"] .version-label')).to_have_text("1/3")
    expect(shown(page)).to_have_text(["Name a colour", "Red", "Another one?", "reply one: green"])
    expect(page.locator('.msg[data-index="2"]').get_by_role("button", name="Previous version")).to_be_disabled()

    page.locator('.msg[data-index="2"]').get_by_role("button", name="Next version").click()
    page.locator('.msg[data-index="2"] .version-label').filter(has_text="2/3").wait_for()
    page.locator('.msg[data-index="2"]').get_by_role("button", name="Next version").click()
    expect(page.locator('.msg[data-index="2"] .version-label')).to_have_text("3/3")
    expect(shown(page)).to_have_text(["Name a colour", "Red", "Another one?", "reply three: violet 紫"])
    expect(page.locator("#toast")).to_be_hidden()
    # a reload shows the version last chosen
    page.reload()
    page.wait_for_selector("html[data-ready]")
    expect(page.locator('.msg[data-index="2"] .version-label')).to_have_text("3/3")


def test_a_retry_on_the_page_adds_a_version(live_server, open_page):
    t = time.time() - 60
    r = live_server.post("/api/session/import", {"hermes_webui_export": 1, "session": {
        "title": "Retry keeps", "manual_title": True,
        "messages": [msg("user", "hello there", t), msg("assistant", "the first reply", t + 1)]}})
    sid = r.json()["sessions"][0]["session_id"]
    page = open_page(live_server, f"/?s={sid}")
    wait_title(page, "Retry keeps")
    expect(page.locator(".versions")).to_have_count(0)
    last = page.locator(".msg-assistant.is-last")
    last.hover()
    last.get_by_role("button", name=re.compile("^Retry")).click()
    expect(shown(page)).to_have_text(["hello there", "echo: hello there"])
    expect(page.locator('.msg[data-index="0"] .version-label')).to_have_text("2/2")
    page.locator('.msg[data-index="0"]').get_by_role("button", name="Previous version").click()
    expect(shown(page)).to_have_text(["hello there", "the first reply"])
    expect(page.locator('.msg[data-index="0"] .version-label')).to_have_text("1/2")
