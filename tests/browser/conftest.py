"""Browser fixtures: Debian's Chromium driven by Playwright against a live fake-backend server.

Never downloads a browser: ``/usr/bin/chromium`` (``.ci/run`` installs the ``chromium``
apt package) or ``$HERMES_TEST_CHROMIUM``. One browser per test module; each test gets a
fresh context (cookies, storage) and every page's console errors, page errors and
failed requests are collected and asserted empty at the end of the test, so "no console
errors" holds on every page every test visits.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("HERMES_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the [test] extra installs it
    sync_playwright = None


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the whole module. Without Chromium or Playwright the
    browser tests skip on a developer's machine but fail under CI (``CI`` set), so a
    broken install can never turn them into a silent pass."""
    missing = None
    if sync_playwright is None:
        missing = "playwright is not installed (pip install '.[test]')"
    elif not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class ConsoleWatch:
    """Collects console errors, uncaught page errors and failed requests of a context."""

    def __init__(self):
        self.errors: list[str] = []
        self.allowed: list[re.Pattern] = []

    def allow(self, pattern: str) -> None:
        """Tolerate errors matching ``pattern`` (e.g. connection refused while the server is down)."""
        self.allowed.append(re.compile(pattern))

    def attach(self, page) -> None:
        page.on("console", lambda msg: self._add(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self._add(f"pageerror: {exc}"))

    def _add(self, text: str) -> None:
        self.errors.append(text)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console():
    return ConsoleWatch()


@pytest.fixture
def open_page(browser, console):
    """``open_page(server, path="/", viewport=DESKTOP, color_scheme="light", password=None)`` → a Page
    (logged in first when ``password`` is given).

    The page has finished booting (``html[data-ready]``). At teardown, asserts that no
    page logged a console error or threw (apart from what ``console.allow`` permits).
    """
    contexts = []

    def make(server, path: str = "/", viewport=DESKTOP, color_scheme: str = "light", password: str | None = None,
             **ctx_kw):
        ctx = browser.new_context(viewport=viewport, color_scheme=color_scheme, **ctx_kw)
        contexts.append(ctx)
        ctx.set_default_timeout(15_000)
        if password is not None:  # log in through the API; the context keeps the cookie
            resp = ctx.request.post(server.url("/api/auth/login"), data={"password": password})
            assert resp.ok, resp.text()
        page = ctx.new_page()
        console.attach(page)
        page.goto(server.url(path))
        page.wait_for_selector("html[data-ready]")
        return page

    yield make
    for ctx in contexts:
        ctx.close()
    assert console.unexpected() == [], "console errors:\n" + "\n".join(console.unexpected())


# ------------------------------------------------------------------ page helpers


def assistant_texts(page) -> list[str]:
    """The visible text of every assistant reply's markdown, in order."""
    return [t.strip() for t in page.locator(".msg-assistant .md").all_inner_texts()]


def wait_reply_finished(page, count: int = 1, timeout: float = 20_000) -> None:
    """Wait until ``count`` assistant replies are shown and none is streaming."""
    page.wait_for_function(
        "n => document.querySelectorAll('.msg-assistant').length >= n"
        " && !document.querySelector('.msg-assistant.streaming')", arg=count, timeout=timeout)


def wait_title(page, title: str) -> None:
    """Wait until the chat header shows ``title``."""
    page.wait_for_function("t => document.querySelector('#chat-title').textContent === t", arg=title)


def tokens(n: int) -> str:
    """The text of the fake backend's ``n`` scripted tokens, as rendered (trimmed)."""
    return " ".join(f"t{i}" for i in range(n))


def sid_of(page) -> str:
    """The session id in the page's address (waits for one to appear)."""
    page.wait_for_url(re.compile(r"[?&]s=[A-Za-z0-9_-]+"))
    return page.url.split("s=", 1)[1].split("&", 1)[0]


def write_session(sessions_dir: Path, sid: str, title: str, messages: list[dict], *,
                  updated_at: float | None = None, pinned: bool = False) -> None:
    """Write a session file straight into a (stopped) server's sessions dir, in the
    on-disk layout of :func:`api.models.encode_session`."""
    import time

    from api.codec import encode_session

    now = time.time() if updated_at is None else updated_at
    meta = {"session_id": sid, "title": title, "manual_title": True, "created_at": now - 60, "updated_at": now,
            "model": None, "workspace": None, "pinned": pinned, "archived": False,
            "message_count": len(messages), "active_stream_id": None, "pending_user_message": None,
            "pending_started_at": None}
    sessions_dir.mkdir(parents=True, exist_ok=True)
    (sessions_dir / f"{sid}.json").write_bytes(encode_session(meta, messages))
