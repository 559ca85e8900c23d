"""Saved history in the browser: a 3,000-message session opens on its newest page and
scrolls back, code blocks are highlighted with a copy button, the sidebar groups chats by
day. Sessions are written to disk before the server starts, in the on-disk layout."""
from __future__ import annotations

import datetime as dt
import time

import pytest

from ..helpers import LiveServer
from .conftest import write_session

pytestmark = pytest.mark.browser

BIG = "big_3000"
BIG_COUNT = 3000
PAGE = 50
CODE = "def add(a, b):\n    return a + b\n"


def big_messages() -> list[dict]:
    paragraph = ("Durable sessions keep every message in one JSON file, written atomically. " * 12).strip()
    out = []
    for i in range(BIG_COUNT):
        if i % 2 == 0:
            out.append({"role": "user", "content": f"Question {i}: how does step {i} work?", "timestamp": 1e9 + i})
        else:
            body = f"Answer {i}. **Step {i}** works like this.\n\n{paragraph}\n\n- first\n- second\n"
            if i % 10 == 1:
                body += f"\n```python\nprint({i})\n```\n"
            out.append({"role": "assistant", "content": body, "timestamp": 1e9 + i, "status": "complete"})
    return out


def local_noon(days_ago: int) -> float:
    day = dt.date.today() - dt.timedelta(days=days_ago)
    return dt.datetime.combine(day, dt.time(12)).timestamp()


@pytest.fixture(scope="module")
def history_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("history")
    sessions = tmp / "state" / "sessions"
    midnight = dt.datetime.combine(dt.date.today(), dt.time(0)).timestamp()
    now = max(time.time(), midnight + 200)  # "today", even a minute after midnight
    write_session(sessions, BIG, "The long one", big_messages(), updated_at=local_noon(3))
    write_session(sessions, "code_chat", "Code sample", [
        {"role": "user", "content": "code please", "timestamp": now - 10},
        {"role": "assistant", "content": f"Here:\n\n```python\n{CODE}```\n", "timestamp": now - 5,
         "status": "complete"},
    ], updated_at=now)
    write_session(sessions, "yesterday_chat", "From yesterday", [], updated_at=local_noon(1))
    write_session(sessions, "pinned_chat", "Pinned old chat", [], updated_at=local_noon(30), pinned=True)
    write_session(sessions, "cut_short", "Cut short", [
        {"role": "user", "content": "tell me a story", "timestamp": now - 100, "status": "interrupted"},
        {"role": "assistant", "content": "Once upon a", "timestamp": now - 99, "status": "interrupted"},
    ], updated_at=now - 100)
    server = LiveServer(tmp).start()
    yield server
    server.stop()


def indices(page) -> list[int]:
    return page.locator("#messages .msg").evaluate_all("els => els.map(e => Number(e.dataset.index))")


def test_3000_message_session_opens_on_newest_page_and_scrolls_back(history_server, open_page):
    page = open_page(history_server)
    started = time.monotonic()
    page.click(f".session[data-sid='{BIG}'] .session-link")
    page.locator(f".msg[data-index='{BIG_COUNT - 1}']").wait_for()
    opened_ms = (time.monotonic() - started) * 1000
    print(f"\n3,000-message session: newest page shown {opened_ms:.0f} ms after the click")
    assert opened_ms < 3000
    shown = indices(page)
    assert shown == list(range(BIG_COUNT - PAGE, BIG_COUNT))  # only the newest page
    at_bottom = page.eval_on_selector("#messages-scroll", "el => el.scrollHeight - el.scrollTop - el.clientHeight")
    assert at_bottom < 2
    # Scrolling to the top loads the page before it above the view: the message that was
    # at the top stays at the top instead of jumping a page down.
    for pages in (2, 3):
        first = page.locator(f".msg[data-index='{indices(page)[0]}']")
        page.eval_on_selector("#messages-scroll", "el => el.scrollTo(0, 0)")
        page.wait_for_function("n => document.querySelectorAll('#messages .msg').length >= n", arg=pages * PAGE)
        assert indices(page) == list(range(BIG_COUNT - pages * PAGE, BIG_COUNT))
        offset = first.evaluate("el => el.getBoundingClientRect().top"
                                " - document.querySelector('#messages-scroll').getBoundingClientRect().top")
        assert 0 <= offset < 150, offset
    assert page.locator(".msg[data-index='2901'] .md strong").inner_text() == "Step 2901"


def test_code_blocks_are_highlighted_with_a_copy_button(history_server, open_page):
    page = open_page(history_server, "/?s=code_chat", permissions=["clipboard-read", "clipboard-write"])
    block = page.locator(".msg-assistant .code-block")
    block.wait_for()
    assert block.locator(".code-lang").inner_text() == "python"
    assert block.locator("pre.hl span.k").first.inner_text() == "def"  # a Pygments keyword span
    assert block.locator("pre.hl span.k").first.evaluate("el => getComputedStyle(el).fontWeight") == "700"
    block.locator(".copy-btn").click()
    page.wait_for_selector(".copy-btn.copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == CODE


def test_sidebar_groups_pinned_today_yesterday_previous_days(history_server, open_page):
    page = open_page(history_server)
    page.wait_for_selector(".session")
    labels = page.locator(".group-label").all_inner_texts()
    assert [x.lower() for x in labels] == ["pinned", "projects", "today", "yesterday", "previous 7 days"]
    groups = page.evaluate("""() => [...document.querySelectorAll('.sessions')].map(
        ul => [...ul.querySelectorAll('.session')].map(li => li.dataset.sid))""")
    assert groups[0] == ["pinned_chat"]
    assert groups[1][0] == "code_chat"
    assert groups[2] == ["yesterday_chat"]
    assert groups[3] == [BIG]


def test_interrupted_turn_is_marked_and_can_be_continued(history_server, open_page):
    page = open_page(history_server, "/?s=cut_short")
    reply = page.locator(".msg-assistant[data-status='interrupted']")
    reply.wait_for()
    assert reply.locator(".badge-interrupted").inner_text() == "Interrupted"
    assert reply.locator(".md").inner_text().strip() == "Once upon a"
    users = page.locator(".msg-user").count()
    page.click(".resume-notice button")  # Continue: the same reply grows, no new message is sent
    page.wait_for_function("() => !document.querySelector('.msg-assistant.streaming')"
                           " && document.querySelector('.msg-assistant .md').innerText.trim() !== 'Once upon a'")
    assert page.locator(".msg-assistant").count() == 1 and page.locator(".msg-user").count() == users
    text = page.locator(".msg-assistant .md").inner_text().strip()
    assert text.startswith("Once upon a") and text != "Once upon a" and "Continue." not in text
    assert page.locator(".resume-notice").count() == 0
