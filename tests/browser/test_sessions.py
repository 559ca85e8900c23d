"""The sidebar in a real browser: rename, pin, archive, delete, search; and the phone
layout, where the sidebar is a drawer. One fake-backend server for the module."""
from __future__ import annotations

import re

import pytest

from .conftest import PHONE, assistant_texts, wait_reply_finished, wait_title

pytestmark = pytest.mark.browser


def open_menu(page, sid: str):
    row = page.locator(f".session[data-sid='{sid}']")
    row.hover()
    row.locator(".session-menu-btn").click()
    page.wait_for_selector("#menu:not([hidden])")
    return page.locator("#menu")


def test_rename_from_the_menu(live_server, open_page):
    sid = live_server.new_session(title="Old name")
    page = open_page(live_server, f"/?s={sid}")
    wait_title(page, "Old name")
    open_menu(page, sid).get_by_role("menuitem", name="Rename").click()
    field = page.locator("#dialog-input")
    assert field.input_value() == "Old name"
    assert page.evaluate("() => document.activeElement.id") == "dialog-input"
    field.fill("Shiny new name")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => document.querySelector(\".session[data-sid='{sid}'] .session-title\")"
                           "?.textContent === 'Shiny new name'")
    assert page.inner_text("#chat-title") == "Shiny new name"
    assert page.title() == "Shiny new name · Hermes"
    saved = live_server.session(sid, messages=0)
    assert saved["title"] == "Shiny new name" and saved["manual_title"] is True
    # Esc in the dialog changes nothing.
    open_menu(page, sid).get_by_role("menuitem", name="Rename").click()
    page.fill("#dialog-input", "Not this")
    page.keyboard.press("Escape")
    assert live_server.session(sid, messages=0)["title"] == "Shiny new name"


def test_pin_moves_a_chat_to_the_top_and_archive_hides_it(live_server, open_page):
    keep = live_server.new_session(title="Pin me")
    newer = live_server.new_session(title="Newer chat")
    page = open_page(live_server)
    page.wait_for_selector(f".session[data-sid='{newer}']")
    open_menu(page, keep).get_by_role("menuitem", name="Pin").click()
    page.wait_for_function("() => document.querySelector('.group-label')?.textContent === 'Pinned'")
    assert page.locator(".sessions").first.locator(".session").first.get_attribute("data-sid") == keep
    assert live_server.session(keep, messages=0)["pinned"] is True
    # Archive: gone from the list, back with "Show archived".
    open_menu(page, newer).get_by_role("menuitem", name="Archive").click()
    page.wait_for_selector(f".session[data-sid='{newer}']", state="detached")
    page.check("#show-archived")
    page.wait_for_selector(f".session[data-sid='{newer}'] .session-archived")


def test_delete_asks_first_then_removes_the_chat(live_server, open_page):
    sid = live_server.new_session(title="Doomed chat")
    page = open_page(live_server, f"/?s={sid}")
    wait_title(page, "Doomed chat")
    page.click("#chat-menu-btn")
    page.get_by_role("menuitem", name="Delete").click()
    assert "Doomed chat" in page.inner_text("#dialog-text")
    page.click("#dialog-cancel")  # cancel keeps it
    assert live_server.get("/api/session", params={"session_id": sid}).status_code == 200
    page.click("#chat-menu-btn")
    page.get_by_role("menuitem", name="Delete").click()
    page.click("#dialog-ok")
    page.wait_for_selector(f".session[data-sid='{sid}']", state="detached")
    page.wait_for_url(live_server.url("/"))
    assert page.inner_text("#chat-title") == "New chat"
    assert live_server.get("/api/session", params={"session_id": sid}).status_code == 404


def test_search_filters_the_list_and_opens_a_result(live_server, open_page):
    target = live_server.new_session(title="Quarterly zebra report")
    other = live_server.new_session(title="Unrelated notes")
    page = open_page(live_server)
    page.wait_for_selector(f".session[data-sid='{other}']")
    page.keyboard.press("Control+k")
    page.keyboard.type("zebra")
    page.wait_for_function("() => document.querySelector('.group-label')?.textContent === 'Results'")
    assert page.locator(".session").evaluate_all("els => els.map(e => e.dataset.sid)") == [target]
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(f"s={target}"))
    page.fill("#search-input", "no such words anywhere")
    page.wait_for_selector(".list-empty")
    page.focus("#search-input")
    page.keyboard.press("Escape")  # clears the search
    page.wait_for_selector(f".session[data-sid='{other}']")


def test_phone_layout_uses_a_drawer(live_server, open_page):
    sid = live_server.new_session(title="Phone chat")
    page = open_page(live_server, viewport=PHONE, is_mobile=True, has_touch=True)
    # The sidebar is off-screen and nothing overflows sideways.
    assert not page.locator("#sidebar").is_visible() or page.locator("#sidebar").bounding_box()["x"] < -100
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator("#composer-input").bounding_box()["width"] > 250
    page.click("#open-sidebar")
    page.wait_for_function("() => document.querySelector('#sidebar').getBoundingClientRect().left >= 0")
    assert page.get_attribute("#open-sidebar", "aria-expanded") == "true"
    page.click(f".session[data-sid='{sid}'] .session-link")
    page.wait_for_url(re.compile(f"s={sid}"))
    page.wait_for_selector("#scrim", state="hidden")
    wait_title(page, "Phone chat")
    page.fill("#composer-input", "hi from a phone")
    page.click("#send-btn")
    wait_reply_finished(page)
    assert assistant_texts(page) == ["echo: hi from a phone"]
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    # The drawer closes with the scrim too.
    page.click("#open-sidebar")
    page.wait_for_selector("#scrim:not([hidden])")
    page.mouse.click(380, 400)
    page.wait_for_selector("#scrim", state="hidden")
