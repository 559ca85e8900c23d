"""Regenerate the README screenshots: ``python -m tests.browser.screenshots``.

Writes ``docs/screenshot-desktop-dark.png``, ``docs/screenshot-desktop-light.png`` (with
the side panel open on a workspace file) and ``docs/screenshot-phone.png`` from a
throw-away state dir filled with sample chats and files, served
by a real server with the ``fake`` backend and shot with Debian's Chromium. Nothing
touches the real home directory.
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
SHOWCASE = "showcase"

REASONING = ("The user wants crash-safe writes. The classic recipe: write to a temporary file in the same "
             "directory, flush and fsync it, os.replace() it over the target, then fsync the directory so the "
             "rename itself is durable. Let me check how this project already does it.")

ANSWER = """Write the new content to a **temporary file in the same directory**, make it durable, then \
swap it in with one atomic rename. A crash at any moment leaves either the old file or the new one, never \
half of each.

```python
import os, tempfile

def atomic_write(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())      # the bytes are on disk
        os.replace(tmp, path)         # atomic on POSIX and Windows
    except BaseException:
        os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)              # ...and so is the rename
    finally:
        os.close(dir_fd)
```

| step | protects against |
|---|---|
| temp file in the same folder | `os.replace` across file systems |
| `fsync` of the file | power loss after the rename |
| `fsync` of the folder | losing the rename itself |

This is what `api/atomic.py` does for every session save."""

SIDEBAR = [  # (id, title, days ago, pinned)
    ("notes", "Project notes: hermes-webui", 12, True),
    ("sse", "SSE reconnect with Last-Event-ID", 0, False),
    ("lisbon", "Three days in Lisbon", 1, False),
    ("regex", "Regex for ISO 8601 dates", 1, False),
    ("sourdough", "Sourdough hydration maths", 5, False),
    ("crdt", "Explain CRDTs like I'm five", 9, False),
    ("flask", "Flask blueprints vs. app factories", 16, False),
]


def at(days_ago: int, hour: int = 11) -> float:
    day = dt.date.today() - dt.timedelta(days=days_ago)
    return dt.datetime.combine(day, dt.time(hour, 20)).timestamp()


def populate(sessions: Path) -> None:
    now = time.time()
    write_session(sessions, SHOWCASE, "Atomic file writes in Python", [
        {"role": "user", "timestamp": now - 90,
         "content": "How do I write a file atomically in Python, so a crash never leaves a half-written file?"},
        {"role": "assistant", "timestamp": now - 80, "status": "complete", "reasoning": REASONING,
         "tool_calls": [{"id": "c1", "name": "search_files", "args": {"pattern": "def atomic_write", "path": "api/"},
                         "result": "api/atomic.py:31: def atomic_write_bytes(path, data)", "duration_ms": 84}],
         "content": ANSWER},
    ], updated_at=now - 60)
    for sid, title, days, pinned in SIDEBAR:
        write_session(sessions, sid, title, [
            {"role": "user", "content": title, "timestamp": at(days)},
            {"role": "assistant", "content": "…", "timestamp": at(days), "status": "complete"},
        ], updated_at=min(at(days), now - 3600) if days == 0 else at(days), pinned=pinned)


WORKSPACE_FILES = {
    "atomic.py": 'import os\n\n\ndef atomic_write(path: str, data: bytes) -> None:\n    """Write data to path; a crash '
                 'leaves the old file or the new one."""\n    tmp = f"{path}.tmp"\n    with open(tmp, "wb") as f:\n'
                 '        f.write(data)\n        f.flush()\n        os.fsync(f.fileno())\n    os.replace(tmp, path)\n',
    "notes/plan.md": "# Plan\n\n- atomic writes\n- fsync the folder\n",
    "README.md": "# Sample workspace\n",
}


def add_files(server) -> None:
    server.post("/api/file/create", {"session_id": SHOWCASE, "path": "notes", "kind": "dir"})
    for path, content in WORKSPACE_FILES.items():
        r = server.post("/api/file/create", {"session_id": SHOWCASE, "path": path, "content": content})
        assert r.status_code == 200, r.text


def shoot(page, path: Path) -> None:
    page.wait_for_selector(".msg-assistant .code-block")
    page.wait_for_timeout(300)  # let fonts and the highlight stylesheet settle
    page.screenshot(path=str(path))
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> int:
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        populate(Path(tmp) / "state" / "sessions")
        server = LiveServer(Path(tmp)).start()
        try:
            add_files(server)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for scheme in ("dark", "light"):
                    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=scheme)
                    page = ctx.new_page()
                    page.goto(server.url(f"/?s={SHOWCASE}"))
                    page.click(".msg-assistant details.reasoning summary")
                    if scheme == "light":  # the side panel, on a previewed workspace file
                        page.click("#toggle-workspace")
                        page.click("#tabpanel-files .hp-entry:text-is('atomic.py')")
                        page.wait_for_selector("#tabpanel-files .hp-preview pre")
                    page.eval_on_selector("#messages-scroll", "el => el.scrollTo(0, 0)")
                    page.mouse.move(700, 420)  # over the reply: its actions show
                    shoot(page, DOCS / f"screenshot-desktop-{scheme}.png")
                    ctx.close()
                ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                          is_mobile=True, has_touch=True, color_scheme="dark")
                page = ctx.new_page()
                page.goto(server.url(f"/?s={SHOWCASE}"))
                page.wait_for_selector(".msg-assistant .code-block")
                page.eval_on_selector("#messages-scroll", "el => el.scrollTo(0, 0)")
                shoot(page, DOCS / "screenshot-phone.png")
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
