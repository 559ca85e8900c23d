"""The page's side of the security contract with a password set: every POST carries the
CSRF token from <meta name="csrf-token">, and a 401 from the API sends the browser to /login."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Error as PlaywrightError

from .conftest import assistant_texts, wait_reply_finished

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
