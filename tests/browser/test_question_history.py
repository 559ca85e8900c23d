"""Answered approvals and clarifying questions stay in the reply after a reload (issue
15/16): the clarify with "You answered: …", the approval card with its command and
outcome, read-only, where they came in the reply (text, question, text, card, tool)."""
from __future__ import annotations

import pytest

from ..helpers import fake_script, wait_until
from .conftest import sid_of, wait_reply_finished
from .test_resilience import free_port

pytestmark = pytest.mark.browser

COMMAND = "rm -rf build && echo 'done' > \"log\""
# The reply's body, top to bottom: "md:<text>", "clarify:<outcome>", "approval:<command>|<outcome>", "tool:<name>"
ORDER = """() => [...[...document.querySelectorAll('.msg-assistant')].pop().querySelectorAll(
    '.msg-body > .md, .msg-body > .tools > *')].map(el =>
  el.matches('.md') ? 'md:' + el.innerText.trim()
  : el.matches('.clarify-card') ? 'clarify:' + el.querySelector('.question-outcome').innerText.trim()
  : el.matches('.approval-card') ? 'approval:' + el.querySelector('.approval-command').innerText + '|'
      + el.querySelector('.question-outcome').innerText.trim()
  : 'tool:' + el.querySelector('.tool-name').textContent)"""


def test_answered_questions_are_shown_in_order_after_a_reload(live_server, open_page):
    page = open_page(live_server)
    page.fill("#composer-input", fake_script(
        tokens=4, clarify={"question": "Which colour?", "choices": ["red", "blue"]},
        approval={"tool": "terminal", "command": COMMAND, "description": "Clean the build folder"},
        tools=[{"name": "terminal", "args": {"command": COMMAND}, "result": "removed 12 files"}]))
    page.keyboard.press("Enter")
    page.locator(".msg-assistant.streaming .clarify-card button[data-answer='blue']").click()
    page.locator(".msg-assistant.streaming .approval-card button[data-choice='once']").click()
    wait_reply_finished(page)
    expected = ["clarify:You answered: blue", "md:answer: blue t0 t1", f"approval:{COMMAND}|Allowed once",
                "tool:terminal", "md:t2 t3"]
    assert page.evaluate(ORDER) == expected
    sid = sid_of(page)
    page.reload()
    page.wait_for_selector("html[data-ready]")
    page.wait_for_function("n => document.querySelectorAll('.msg-assistant .approval-card').length === n", arg=1)
    assert page.evaluate(ORDER) == expected
    card = page.locator(".msg-assistant .approval-card")
    assert card.get_attribute("data-state") == "answered" and card.locator("button").count() == 0
    assert "Clean the build folder" in card.inner_text() and "terminal" in card.locator(".question-title").inner_text()
    assert page.locator(".msg-assistant .clarify-card .question-title").inner_text() == "Which colour?"
    # a second turn nobody answers in time: after a reload, denied for that reason
    page.fill("#composer-input", fake_script(tokens=2, approval={"tool": "terminal", "command": "ls"},
                                             approval_timeout_ms=300))
    page.keyboard.press("Enter")
    wait_reply_finished(page, count=2)
    page.goto(live_server.url(f"/?s={sid}"))
    page.wait_for_selector("html[data-ready]")
    page.wait_for_function("() => document.querySelectorAll('.msg-assistant').length === 2")
    assert page.evaluate(ORDER) == ["md:t0", "approval:ls|Denied: nobody answered in time", "md:t1"]


def test_an_approval_open_when_the_server_died_shows_not_granted(make_server, open_page, console):
    console.allow(r"net::ERR_")  # requests that fail while the server is down
    server = make_server(args=("--port", str(free_port()))).start()
    page = open_page(server)
    page.fill("#composer-input", fake_script(tokens=2, approval={"tool": "terminal", "command": COMMAND}))
    page.keyboard.press("Enter")
    page.locator(".msg-assistant.streaming .approval-card[data-state='open']").wait_for()
    sid = sid_of(page)
    wait_until(lambda: "approval_id" in (server.sessions_dir / f"{sid}.turn.jsonl").read_text(),
               message="the approval reaches the journal")
    server.kill()
    server.start()
    page.wait_for_selector(".msg-assistant[data-status='interrupted']")
    page.reload()
    page.wait_for_selector("html[data-ready]")
    page.wait_for_selector(".msg-assistant[data-status='interrupted'] .approval-card[data-state='answered']")
    assert page.evaluate(ORDER) == ["md:t0", f"approval:{COMMAND}|Not granted: the reply was interrupted before anyone answered"]
    assert page.locator(".approval-card button").count() == 0
