"""The page's side of the security contract with a password set: every POST carries the
CSRF token from <meta name="csrf-token">, and a 401 from the API sends the browser to /login."""
from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Error as PlaywrightError

from .conftest import assistant_texts, sid_of, wait_reply_finished

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"


def test_posts_carry_the_csrf_token_and_a_401_goes_to_login(make_server, open_page, console):
    server = make_server(args=("--password", PASSWORD)).start()
    page = open_page(server, password=PASSWORD)
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    assert token and token != "__CSRF_TOKEN__"
    # Creating the session, starting the turn and rendering the reply are all POSTs: with a
    # missing or wrong token the server would answer 403 and no reply would appear.
    page.fill("#composer-input", "hello behind a password")
    page.keyboard.press("Enter")
    wait_reply_finished(page)
    assert assistant_texts(page) == ["echo: hello behind a password"]
    # The login ends elsewhere; the next API call answers 401 and the page goes to /login.
    console.allow(r"status of 401")
    out = page.context.request.post(server.url("/api/auth/logout"), headers={"X-CSRF-Token": token})
    assert out.ok, out.text()
    # The page may already be leaving on its own (a refresh after the reply met the 401);
    # otherwise regaining focus makes it call the API, which answers 401.
    try:
        page.evaluate("window.dispatchEvent(new Event('focus'))")
    except PlaywrightError as exc:  # the redirect destroyed the page's context mid-call
        assert "context was destroyed" in str(exc) or "navigat" in str(exc), exc
    page.wait_for_url(re.compile(r"/login"))


def login_on_page(page, password: str) -> None:
    page.wait_for_selector("#login-password")
    page.fill("#login-password", password)
    page.click("#login-submit")


def test_a_draft_survives_an_expired_login_and_login_returns_to_the_chat(make_server, open_page, console):
    server = make_server(args=("--password", PASSWORD)).start()
    page = open_page(server, password=PASSWORD)
    page.fill("#composer-input", "first message")
    page.keyboard.press("Enter")
    wait_reply_finished(page)
    sid = sid_of(page)
    # The user types a long message; meanwhile the login ends (expired, or logged out elsewhere).
    console.allow(r"status of 401")
    draft = "a long answer I typed for ten minutes: 中文 עברית 😀\nsecond line"
    page.fill("#composer-input", draft)
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    assert page.context.request.post(server.url("/api/auth/logout"), headers={"X-CSRF-Token": token}).ok
    # Whichever meets the 401 first, the send or a background refresh of the list, takes
    # the page to /login; the draft must survive either way.
    try:
        page.click("#send-btn", timeout=5000)
    except PlaywrightError:
        pass                                                         # already on its way to /login
    page.wait_for_url(re.compile(r"/login\?next="))
    login_on_page(page, PASSWORD)
    page.wait_for_url(server.url(f"/?s={sid}"))                      # back on the chat, not on "/"
    page.wait_for_selector("html[data-ready]")
    page.wait_for_function("t => document.querySelector('#composer-input').value === t", arg=draft)
    # Another chat has its own (empty) box; coming back brings the draft again.
    page.click("#new-chat")
    page.wait_for_function("() => document.querySelector('#composer-input').value === ''")
    page.go_back()
    page.wait_for_function("t => document.querySelector('#composer-input').value === t", arg=draft)
    # Sent: the draft is gone, also after a reload.
    page.keyboard.press("Enter")
    wait_reply_finished(page, count=2)
    page.reload()
    page.wait_for_selector("html[data-ready]")
    page.locator(".msg-assistant").nth(1).wait_for()
    assert page.input_value("#composer-input") == ""


def test_login_follows_only_a_same_origin_next(make_server, open_page):
    server = make_server(args=("--password", PASSWORD)).start()
    page = open_page(server, password=PASSWORD)
    page.context.clear_cookies()                                       # logged out: /login stays
    page.goto(server.url("/login"))
    cases = {"/?s=abc": "/?s=abc", "/?s=abc#x": "/?s=abc#x", "": "/", "//evil.example/x": "/",
             "https://evil.example/": "/", "/\\evil.example": "/", "javascript:alert(1)": "/",
             "/%2F%2Fevil.example": "/%2F%2Fevil.example", "/\tx": "/", "/login?next=//evil": "/"}
    for nxt, expected in cases.items():
        got = page.evaluate("async (q) => (await import('/static/login.js')).nextPage(q)",
                            "?" + urlencode({"next": nxt}))
        assert got == expected, nxt
    # The whole way: a hostile next after a real login lands on the app's own start page.
    page.goto(server.url("/login?" + urlencode({"next": "//evil.example/steal"})))
    login_on_page(page, PASSWORD)
    page.wait_for_url(server.url("/"))
