"""Regenerate the README screenshots: ``python -m tests.browser.screenshots``.

Writes ``docs/screenshot-desktop-light.png``, ``docs/screenshot-desktop-dark.png`` and
``docs/screenshot-phone.png``. A real server on the default ``local`` backend (the
bundled SmolLM2 GGUF, on the CPU) runs in a throw-away state dir and HOME, so nothing
touches the real home directory. Before it starts, the sidebar is filled with sample
chats spread over Today, Yesterday and the previous 7 and 30 days; then a project folder
gets two of them and ``#tags`` are set through the API, and one conversation is held
with the model for real: a question, a retry of it (so the question shows "‹ 2/2 ›")
and a follow-up, each reply generated once (a few minutes on two cores) and then shot
three times. The theme comes from the profile's ``theme`` setting (``POST
/api/settings``), not the browser's colour scheme, which is set to the opposite to show
that the setting wins. Shot with Debian's Chromium (``$HERMES_TEST_CHROMIUM``).

The file is not named ``test_*.py``, so pytest does not collect it.
"""
from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from ..helpers import ROOT, LiveServer
from .conftest import CHROMIUM, CHROMIUM_ARGS, write_session

DOCS = ROOT / "docs"
REPLY_TIMEOUT = 600  # seconds for one reply of the embedded model on a busy two-core machine

QUESTION = "Give me three tips for keeping a basil plant alive on a windowsill."
FOLLOW_UP = "How often should I water it? One sentence, please."
TITLE = "Basil on a windowsill"

SIDEBAR = [  # (id, title, days ago, tags)
    ("sse", "SSE reconnect with Last-Event-ID", 1, ["webdev"]),
    ("lisbon", "Three days in Lisbon", 3, ["travel"]),
    ("sourdough", "Sourdough hydration maths", 4, ["cooking"]),
    ("crdt", "Explain CRDTs like I'm five", 5, []),
    ("regex", "Regex for ISO 8601 dates", 9, []),
    ("flask", "Flask blueprints vs. app factories", 16, ["webdev"]),
    ("tomatoes", "Tomato seedling schedule", 2, ["garden", "spring"]),
    ("soil", "Raised bed soil mix", 4, ["garden"]),
]
PROJECT = {"name": "Garden", "color": "#3f9b5a",
           "instructions": "I grow vegetables and herbs on a small balcony in Lisbon."}
PROJECT_CHATS = ("tomatoes", "soil")


def at(days_ago: int, hour: int = 11) -> float:
    """A timestamp ``days_ago`` days back at ``hour``:20 local time (an hour ago for today)."""
    if days_ago == 0:
        return time.time() - 3600
    day = dt.date.today() - dt.timedelta(days=days_ago)
    return dt.datetime.combine(day, dt.time(hour, 20)).timestamp()


def populate(sessions: Path) -> None:
    """The sample chats of the sidebar, written while the server is stopped."""
    for sid, title, days, _tags in SIDEBAR:
        write_session(sessions, sid, title, [
            {"role": "user", "content": title, "timestamp": at(days)},
            {"role": "assistant", "content": "…", "timestamp": at(days), "status": "complete"},
        ], updated_at=at(days))


def ok(resp) -> dict:
    assert resp.status_code == 200, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
    return resp.json()


def organise(server: LiveServer) -> None:
    """The project folder and the tags, through the same API the page uses."""
    project = ok(server.post("/api/projects/create", PROJECT))["project"]
    for sid in PROJECT_CHATS:
        ok(server.post("/api/session/move", {"session_id": sid, "project_id": project["project_id"]}))
    for sid, _title, _days, tags in SIDEBAR:
        if tags:
            ok(server.post("/api/session/tags", {"session_id": sid, "tags": tags}))


def wait_turn(server: LiveServer, sid: str, count: int) -> None:
    """Wait until the chat holds ``count`` messages and no turn runs; fail on a failed reply."""
    deadline = time.monotonic() + REPLY_TIMEOUT
    while time.monotonic() < deadline:
        status = ok(server.get(f"/api/session/status?session_id={sid}"))
        if not status["streaming"] and status["message_count"] >= count:
            last = ok(server.get(f"/api/session?session_id={sid}"))["session"]["messages"][-1]
            assert last["role"] == "assistant" and last.get("status") == "complete" and last["content"].strip(), last
            return
        time.sleep(1)
    raise TimeoutError(f"no reply from the model within {REPLY_TIMEOUT} s:\n" + "\n".join(server.output[-30:]))


WORKSPACE_FILES = {  # the chat's workspace, shown in the side panel of the light screenshot
    "watering-log.md": "# Watering log\n\n| day | ml | note |\n|---|---|---|\n| Mon | 150 | top 2 cm dry |\n"
                       "| Thu | 120 | new leaves |\n| Sun | 150 | pinched the flowers |\n",
    "shopping.md": "- terracotta pot, 15 cm, with a hole\n- potting mix\n- saucer\n",
}


def converse(server: LiveServer) -> str:
    """Hold the real conversation with the embedded model; return its session id."""
    sid = ok(server.post("/api/session/new", {}))["session"]["session_id"]
    for step, body in (("/api/chat/start", {"message": QUESTION}),
                       ("/api/session/retry", {}),
                       ("/api/chat/start", {"message": FOLLOW_UP})):
        before = ok(server.get(f"/api/session/status?session_id={sid}"))["message_count"]
        ok(server.post(step, {"session_id": sid, **body}))
        wait_turn(server, sid, before + 2 if step == "/api/chat/start" else before)
        print(f"  {step}: done", flush=True)
    ok(server.post("/api/session/rename", {"session_id": sid, "title": TITLE}))
    for path, content in WORKSPACE_FILES.items():
        ok(server.post("/api/file/create", {"session_id": sid, "path": path, "content": content}))
    return sid


def set_theme(server: LiveServer, theme: str) -> None:
    ok(server.post("/api/settings", {"settings": {"theme": theme}}))


def open_chat(page, server: LiveServer, sid: str) -> None:
    page.goto(server.url(f"/?s={sid}"))
    page.wait_for_selector("html[data-ready]")
    page.wait_for_function("() => document.querySelectorAll('.msg-assistant').length >= 2"
                           " && !document.querySelector('.msg-assistant.streaming')")
    page.wait_for_selector(".msg-user .versions")


def shoot(page, name: str) -> None:
    assert not page.locator(".toast:visible").count(), page.locator(".toast").all_inner_texts()
    page.wait_for_timeout(300)  # let fonts and the highlight stylesheet settle
    path = DOCS / name
    page.screenshot(path=str(path))
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> int:
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp), agent="local")
        populate(server.sessions_dir)
        server.start(timeout=180)
        try:
            organise(server)
            print("talking to the embedded model (slow on a small CPU)…", flush=True)
            sid = converse(server)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for theme, other in (("light", "dark"), ("dark", "light")):
                    set_theme(server, theme)
                    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=other)
                    page = ctx.new_page()
                    open_chat(page, server, sid)
                    if theme == "light":  # the side panel, on a previewed workspace file
                        page.click("#toggle-workspace")
                        page.click("#tabpanel-files .hp-entry:text-is('watering-log.md')")
                        page.wait_for_selector("#tabpanel-files .hp-preview")
                    # at the end, where the page opens a chat ("Jump to latest" would cover text elsewhere)
                    page.eval_on_selector("#messages-scroll", "el => el.scrollTo(0, el.scrollHeight)")
                    page.mouse.move(900 if theme == "dark" else 600, 260)  # over the first reply: its actions show
                    shoot(page, f"screenshot-desktop-{theme}.png")
                    ctx.close()
                set_theme(server, "dark")
                ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                          is_mobile=True, has_touch=True, color_scheme="light")
                page = ctx.new_page()
                open_chat(page, server, sid)
                page.eval_on_selector("#messages-scroll", "el => el.scrollTo(0, el.scrollHeight)")
                shoot(page, "screenshot-phone.png")
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
