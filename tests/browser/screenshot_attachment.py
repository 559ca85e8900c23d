"""Regenerate the README's attachment screenshot: ``python -m tests.browser.screenshot_attachment``.

Writes ``docs/screenshot-attachment.png``: a real server on the default ``local`` backend
(the bundled SmolLM2 GGUF, on the CPU) in a throw-away state dir, a chart pasted into
the composer as an image (drawn on a canvas in the page and pasted as a PNG, the way a
screenshot is pasted) and a text file dropped beside it, sent, and the model's real
reply. The embedded model reads text only: it is told the image's name and that it
cannot see it (api/agents/content.py), and the bubble shows the thumbnail and the file.
Shot with Debian's Chromium; nothing touches the real home directory.
"""
from __future__ import annotations

import base64
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from ..helpers import ROOT, LiveServer
from .conftest import CHROMIUM, CHROMIUM_ARGS
from .test_attachments import DROP

OUT = ROOT / "docs" / "screenshot-attachment.png"

# A bar chart drawn on a canvas, pasted into the composer as "weekly-chats.png".
PASTE_CHART = """async () => {
  const c = document.createElement('canvas'); c.width = 480; c.height = 280;
  const g = c.getContext('2d');
  g.fillStyle = '#ffffff'; g.fillRect(0, 0, 480, 280);
  g.fillStyle = '#1a1a1f'; g.font = '600 18px sans-serif'; g.fillText('Chats per day', 24, 34);
  const days = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'], n = [12, 19, 15, 24, 21, 8, 6];
  days.forEach((d, i) => {
    const h = n[i] * 8, x = 36 + i * 62;
    g.fillStyle = i === 3 ? '#5b50e6' : '#a9a3f5'; g.fillRect(x, 240 - h, 40, h);
    g.fillStyle = '#6e6e7a'; g.font = '13px sans-serif'; g.fillText(d, x + 6, 262);
    g.fillStyle = '#1a1a1f'; g.fillText(String(n[i]), x + 12, 234 - h);
  });
  const blob = await new Promise(r => c.toBlob(r, 'image/png'));
  const dt = new DataTransfer();
  dt.items.add(new File([blob], 'weekly-chats.png', { type: 'image/png' }));
  const box = document.querySelector('#composer-input');
  box.focus();
  box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
}"""

NOTES = ("Team notes, week 48\n\n- Thursday was the busiest day (24 chats).\n"
         "- The weekend was quiet.\n- Next week: try the new export.\n")
PROMPT = "Here are this week's notes and a chart. Summarise the notes in two short bullet points."


def main() -> int:
    OUT.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp), agent="local").start(timeout=180)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                ctx = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
                page = ctx.new_page()
                page.goto(server.url("/"))
                page.wait_for_selector("html[data-ready]")
                page.evaluate(PASTE_CHART)
                page.evaluate(DROP, [base64.b64encode(NOTES.encode()).decode(), "notes-week-48.md", "text/markdown",
                                     "#messages-scroll"])
                page.wait_for_function("() => { const c = document.querySelectorAll('#attach-tray .att-chip');"
                                       " return c.length === 2 && [...c].every(x => x.dataset.state === 'done'); }")
                page.fill("#composer-input", PROMPT)
                page.click("#send-btn")
                page.wait_for_selector(".msg-assistant:not(.streaming) .msg-meta .msg-actions", timeout=300_000)
                page.wait_for_function("() => document.querySelector('.msg-user .att-thumb img').naturalWidth > 0")
                page.eval_on_selector("#messages-scroll", "el => el.scrollTo(0, 0)")
                page.mouse.move(700, 500)
                page.wait_for_timeout(300)  # fonts and the highlight stylesheet settle
                page.screenshot(path=str(OUT))
                print(f"wrote {OUT.relative_to(ROOT)}")
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
