"""The chat in a real browser: sending, streaming, reload mid-reply, Stop, errors, tools,
markdown, keyboard habits and the URL. One fake-backend server and one browser for the module."""
from __future__ import annotations

import re

import pytest

from ..helpers import fake_script
from .conftest import assistant_texts, sid_of, tokens, wait_reply_finished, wait_title

pytestmark = pytest.mark.browser


def send(page, text: str) -> None:
    page.fill("#composer-input", text)
    page.keyboard.press("Enter")


def test_send_shows_streamed_reply(live_server, open_page):
    page = open_page(live_server)
    assert page.title() == "Hermes"
    send(page, fake_script(tokens=16, delay_ms=100))
    # Tokens appear while the reply is still streaming, with Stop offered instead of Send.
    page.wait_for_function("() => { const m = document.querySelector('.msg-assistant.streaming');"
                           " return m && m.innerText.includes('t2'); }")
    assert page.is_visible("#stop-btn") and not page.is_visible("#send-btn")
    wait_reply_finished(page)
    assert assistant_texts(page) == [tokens(16)]
    assert page.input_value("#composer-input") == ""
    assert page.is_visible("#send-btn") and not page.is_visible("#stop-btn")
    sid = sid_of(page)
    saved = live_server.session(sid)["messages"]
    assert [m["role"] for m in saved] == ["user", "assistant"]
    assert saved[1]["content"].strip() == tokens(16)
    # The sidebar lists the new chat under Today with its automatic title, marked active.
    active = page.locator(f".session.active[data-sid='{sid}']")
    active.wait_for()
    assert active.evaluate("li => document.getElementById(li.closest('ul').getAttribute('aria-labelledby'))"
                           ".textContent").lower() == "today"
    assert page.title().endswith("· Hermes") and page.title() != "Hermes"


def test_reply_markdown_is_rendered_and_sanitised(live_server, open_page):
    page = open_page(live_server)
    send(page, "make **bold** and `code` and <img src=x onerror=window.pwned=1> [x](javascript:window.pwned=1)")
    wait_reply_finished(page)
    reply = page.locator(".msg-assistant .md").last
    assert reply.locator("strong").inner_text() == "bold"
    assert reply.locator("code").first.inner_text() == "code"
    assert reply.locator("img").count() == 0
    assert page.evaluate("() => window.pwned === undefined")
    assert all(not (h or "").startswith("javascript:") for h in reply.locator("a").evaluate_all(
        "els => els.map(a => a.getAttribute('href'))"))
    # The user's own text is shown as text, never interpreted as HTML.
    assert "<img src=x" in page.locator(".msg-user .msg-body").last.inner_text()


def test_reload_mid_stream_finishes_exactly_once(live_server, open_page):
    page = open_page(live_server)
    send(page, fake_script(tokens=30, delay_ms=100))
    page.wait_for_function("() => document.querySelector('.msg-assistant.streaming')?.innerText.includes('t3')")
    sid = sid_of(page)
    page.reload()
    page.wait_for_selector("html[data-ready]")
    # Re-attached: the pending user message and the replayed partial reply are shown at once.
    page.wait_for_selector(".msg-assistant.streaming")
    assert page.locator(".msg-user").count() == 1
    wait_reply_finished(page)
    assert page.locator(".msg-user").count() == 1
    assert assistant_texts(page) == [tokens(30)]
    assert page.locator(".msg-assistant .md").inner_text().count("t29") == 1
    assert len(live_server.session(sid)["messages"]) == 2


def test_stop_button_and_escape_keep_the_partial_reply(live_server, open_page):
    page = open_page(live_server)
    send(page, fake_script(tokens=400, delay_ms=40))
    page.wait_for_function("() => document.querySelector('.msg-assistant.streaming')?.innerText.includes('t3')")
    page.click("#stop-btn")
    page.wait_for_selector(".msg-assistant[data-status='cancelled'] .badge-cancelled")
    stopped = assistant_texts(page)[0]
    assert stopped.startswith("t0 t1 t2 t3") and "t399" not in stopped
    sid = sid_of(page)
    saved = live_server.session(sid)["messages"]
    assert saved[-1]["status"] == "cancelled"
    assert tokens(400).startswith(saved[-1]["content"].strip())
    # Esc stops too, and the chat takes a new message afterwards.
    send(page, fake_script(tokens=400, delay_ms=40))
    page.wait_for_function("() => document.querySelector('.msg-assistant.streaming')?.innerText.includes('t2')")
    page.keyboard.press("Escape")
    page.wait_for_function("() => document.querySelectorAll(\".msg-assistant[data-status='cancelled']\").length === 2")
    send(page, "after stop")
    wait_reply_finished(page, 3)
    assert assistant_texts(page)[-1] == "echo: after stop"


def test_error_tools_and_reasoning(live_server, open_page):
    page = open_page(live_server)
    script = fake_script(tokens=4, reasoning="Weighing the options.", error="the model fell over",
                         tools=[{"name": "read_file", "args": {"path": "a.txt"}, "result": "hello", "duration_ms": 30},
                                {"name": "run", "args": {"cmd": "false"}, "result": "exit 1", "duration_ms": 5,
                                 "is_error": True}])
    send(page, script)
    wait_reply_finished(page)
    reply = page.locator(".msg-assistant").last
    # apperror → an error card with the backend's message; the reply is marked as failed.
    assert "the model fell over" in reply.locator(".error-card").inner_text()
    assert reply.get_attribute("data-status") == "error"
    # Reasoning is collapsed until opened.
    reasoning = reply.locator("details.reasoning")
    assert not reasoning.locator(".reasoning-text").is_visible()
    reasoning.locator("summary").click()
    assert reasoning.locator(".reasoning-text").inner_text() == "Weighing the options."
    # Tool cards: name, duration, result, error state.
    cards = reply.locator(".tool-card")
    assert cards.count() == 2
    assert cards.nth(0).get_attribute("data-state") == "ok"
    assert cards.nth(1).get_attribute("data-state") == "error"
    assert "read_file" in cards.nth(0).inner_text() and "30 ms" in cards.nth(0).inner_text()
    cards.nth(1).locator("summary").click()
    assert "exit 1" in cards.nth(1).locator(".tool-result").inner_text()
    assert '"cmd": "false"' in cards.nth(1).locator(".tool-args").inner_text()
    # The same cards come back from the saved session after a reload.
    page.reload()
    page.wait_for_selector(".msg-assistant .tool-card[data-state='error']")
    assert page.locator(".msg-assistant .error-card").count() == 1


def test_composer_keys_and_focus_shortcuts(live_server, open_page):
    page = open_page(live_server)
    assert page.is_disabled("#send-btn")  # nothing to send yet
    page.click("#composer-input")
    page.keyboard.type("first line")
    height = page.eval_on_selector("#composer-input", "el => el.offsetHeight")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    assert page.input_value("#composer-input") == "first line\nsecond line"
    assert page.eval_on_selector("#composer-input", "el => el.offsetHeight") > height  # grew
    assert page.locator(".msg-user").count() == 0  # Shift+Enter did not send
    page.keyboard.press("Control+k")
    assert page.evaluate("() => document.activeElement.id") == "search-input"
    page.click("#composer-input")
    page.keyboard.press("Enter")
    wait_reply_finished(page)
    assert assistant_texts(page) == ["echo: first line second line"]
    # Every button and field has an accessible name.
    unnamed = page.evaluate("""() => [...document.querySelectorAll('button, input, textarea')]
        .filter(el => el.offsetParent !== null)
        .filter(el => !(el.getAttribute('aria-label') || el.labels?.length || el.textContent.trim()))
        .map(el => el.outerHTML.slice(0, 80))""")
    assert unnamed == []


def test_url_holds_the_session_and_back_button_works(live_server, open_page):
    first = live_server.new_session(title="First of two")
    second = live_server.new_session(title="Second of two")
    page = open_page(live_server)
    page.click(f".session[data-sid='{first}'] .session-link")
    page.wait_for_url(re.compile(f"s={first}"))
    wait_title(page, "First of two")
    page.click(f".session[data-sid='{second}'] .session-link")
    page.wait_for_url(re.compile(f"s={second}"))
    wait_title(page, "Second of two")
    assert page.title() == "Second of two · Hermes"
    page.go_back()
    page.wait_for_url(re.compile(f"s={first}"))
    wait_title(page, "First of two")
    assert page.locator(f".session.active[data-sid='{first}']").count() == 1
    page.go_forward()
    page.wait_for_url(re.compile(f"s={second}"))
    wait_title(page, "Second of two")
    # A bookmark opens the chat directly.
    page2 = open_page(live_server, f"/?s={first}")
    wait_title(page2, "First of two")


def test_unknown_session_in_url_falls_back_to_a_new_chat(live_server, open_page, console):
    console.allow(r"status of 404")  # Chrome logs the API's 404 for the missing session
    page = open_page(live_server, "/?s=no_such_chat")
    page.wait_for_url(live_server.url("/"))
    assert "does not exist" in page.inner_text("#toast")
    assert page.inner_text("#chat-title") == "New chat"
