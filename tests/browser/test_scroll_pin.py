"""A chat opens, and is re-shown after a server restart, scrolled to its newest message
(issue 16): a 300 KB message with an image attachment whose blocks and thumbnail take
their real heights only after the first scroll to the bottom still ends at the bottom,
with no "Jump to latest", until the user scrolls."""
from __future__ import annotations

import json
import struct
import zlib

import pytest

from .conftest import sid_of, wait_reply_finished
from .test_resilience import free_port

pytestmark = pytest.mark.browser

# a log-like paste of ~300 KB: thousands of lines that wrap, as people paste them
BIG = "\n".join(f"2026-12-02 04:{i // 60 % 60:02d}:{i % 60:02d} worker[{i % 7}] step {i}: "
                + "request handled in 12 ms, queue depth 3, cache hit ratio 0.97 " * 2 for i in range(2000))


def photo(width: int = 400, height: int = 300) -> bytes:
    """A PNG big enough that its thumbnail is 180 px tall once it has loaded."""
    rows = b"".join(b"\x00" + b"".join(bytes((x % 256, y % 256, 128)) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


SETTLED = """() => { const s = document.querySelector('#messages-scroll');
  const img = document.querySelector('.msg-user .att-thumb img');
  return img && img.complete && img.naturalWidth > 0
    && s.scrollHeight - s.scrollTop - s.clientHeight < 4 && document.querySelector('#jump-latest').hidden; }"""


def send_big_with_image(page, script: dict) -> None:
    page.fill("#composer-input", json.dumps({"fake": script, "pad": BIG}))
    page.set_input_files("#attach-input", files=[{"name": "shot.png", "mimeType": "image/png",
                                                  "buffer": photo()}])
    page.wait_for_selector("#attach-tray .att-chip[data-state='done']")
    page.click("#send-btn")


def test_a_big_message_with_an_image_opens_at_the_bottom(live_server, open_page):
    page = open_page(live_server)
    send_big_with_image(page, {"tokens": 30})
    wait_reply_finished(page)
    sid = sid_of(page)
    assert len(BIG) > 300_000
    page.goto(live_server.url(f"/?s={sid}"))
    page.wait_for_selector("html[data-ready]")
    page.wait_for_function(SETTLED)


def test_after_a_restart_mid_reply_the_chat_is_shown_at_the_bottom(make_server, open_page, console):
    console.allow(r"net::ERR_")  # requests that fail while the server is down
    server = make_server(args=("--port", str(free_port()))).start()
    page = open_page(server)
    send_big_with_image(page, {"tokens": 300, "delay_ms": 50})
    page.wait_for_function("() => document.querySelector('.msg-assistant.streaming')?.innerText.includes('t20')")
    server.kill()
    page.wait_for_selector("#banner:not([hidden])")
    server.start()
    page.wait_for_selector(".msg-assistant[data-status='interrupted']")
    page.wait_for_selector("#banner", state="hidden")
    page.wait_for_function(SETTLED)
