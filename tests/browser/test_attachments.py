"""Attachments in a real browser (issue 16): a pasted image and a file dropped on the
conversation become chips with a thumbnail, size and remove button, upload, go with the
next message (the fake backend answers each with its ``[attachment name size mime]``
token), and show in the sent bubble as a thumbnail that opens full size and a download
link, before and after a reload; a file over the server's limit is refused with a
sentence naming the limit, before uploading and when the server answers 413."""
from __future__ import annotations

import base64
import struct
import zlib

import pytest

from ..helpers import fake_script, wait_until
from .conftest import sid_of, wait_reply_finished

pytestmark = pytest.mark.browser


def png(width: int = 24, height: int = 16) -> bytes:
    """A real PNG (a red-to-blue gradient) the browser can decode."""
    rows = b"".join(b"\x00" + b"".join(bytes((255 - 10 * x, 0, 10 * x)) for x in range(width)) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


# Page-side helpers: build a File from base64 and fire the events a real paste or drop fires.
PASTE = """([b64, name, type]) => {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, { type }));
  const box = document.querySelector('#composer-input');
  box.focus();
  box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
}"""

DROP = """([b64, name, type, selector]) => {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, { type }));
  const target = document.querySelector(selector);
  for (const kind of ['dragenter', 'dragover', 'drop']) {
    target.dispatchEvent(new DragEvent(kind, { dataTransfer: dt, bubbles: true, cancelable: true }));
  }
}"""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wait_chips_done(page, n: int) -> None:
    page.wait_for_function("n => { const c = document.querySelectorAll('#attach-tray .att-chip');"
                           " return c.length === n && [...c].every(x => x.dataset.state === 'done'); }", arg=n)


def test_pasted_image_and_dropped_file_go_with_the_message_and_show_in_the_bubble(live_server, open_page):
    page = open_page(live_server)
    image = png()
    text = "Ünïcode notes ✓ 中文\n".encode() * 40
    page.evaluate(PASTE, [b64(image), "shot.png", "image/png"])
    page.evaluate(DROP, [b64(text), "notes.txt", "text/plain", "#messages-scroll"])   # onto the conversation
    wait_chips_done(page, 2)
    chips = page.locator("#attach-tray .att-chip")
    assert chips.nth(0).locator(".att-name").inner_text() == "shot.png"
    assert page.evaluate("() => document.querySelector('#attach-tray .att-chip-thumb').naturalWidth") == 24
    assert chips.nth(1).locator(".att-name").inner_text() == "notes.txt"
    assert chips.nth(1).locator(".att-size").inner_text() == f"{round(len(text) / 1000)} KB"
    assert page.locator("#attach-tray .att-remove").count() == 2
    # A chat was created for the uploads; sending takes both files with the text.
    sid = sid_of(page)
    page.fill("#composer-input", "what is in these?")
    page.click("#send-btn")
    wait_reply_finished(page)
    assert page.locator("#attach-tray .att-chip").count() == 0
    reply = page.locator(".msg-assistant .md").last.inner_text()
    assert f"[attachment shot.png {len(image)} image/png]" in reply
    assert f"[attachment notes.txt {len(text)} text/plain]" in reply

    def check_bubble():
        bubble = page.locator(".msg-user").last
        thumb = bubble.locator(".msg-attachments a.att-thumb img")
        thumb.wait_for()
        page.wait_for_function("() => document.querySelector('.msg-user .att-thumb img').naturalWidth === 24")
        full = bubble.locator("a.att-thumb").get_attribute("href")
        assert bubble.locator("a.att-thumb").get_attribute("target") == "_blank"
        link = bubble.locator("a.att-file")
        assert link.inner_text().split("\n")[0].strip() == "notes.txt"
        # both addresses serve the very bytes that were attached
        got = page.evaluate("""async ([a, b]) => {
          const enc = async (u) => { const r = await fetch(u); const buf = new Uint8Array(await r.arrayBuffer());
            return [r.status, btoa(String.fromCharCode(...buf))]; };
          return [await enc(a), await enc(b)]; }""", [full, link.get_attribute("href")])
        assert got == [[200, b64(image)], [200, b64(text)]]
        assert bubble.locator(".msg-text").inner_text() == "what is in these?"

    check_bubble()
    saved = live_server.session(sid)["messages"][0]
    assert [(a["name"], a["mime"]) for a in saved["attachments"]] == [("shot.png", "image/png"), ("notes.txt", "text/plain")]
    page.reload()
    page.wait_for_selector("html[data-ready]")
    wait_reply_finished(page)
    check_bubble()


def test_text_typed_before_the_first_file_of_a_new_chat_stays_in_the_box(live_server, open_page):
    """Attaching creates the new chat; the text already typed belongs to it and goes with the files."""
    page = open_page(live_server)
    page.click("#composer-input")
    page.keyboard.type("typed before attaching ✓")
    page.evaluate(PASTE, [b64(png()), "shot.png", "image/png"])
    wait_chips_done(page, 1)
    sid = sid_of(page)
    assert page.input_value("#composer-input") == "typed before attaching ✓"
    page.click("#send-btn")
    wait_reply_finished(page)
    saved = live_server.session(sid)["messages"][0]
    assert saved["content"] == "typed before attaching ✓"
    assert [a["name"] for a in saved["attachments"]] == ["shot.png"]


def test_text_typed_in_a_chat_left_with_only_files_comes_back_with_the_next_new_chat(live_server, open_page):
    """A chat made only to hold files is deleted when left unsent; the text typed in it
    is the new chat's draft, so it is neither lost nor stuck under the deleted chat."""
    page = open_page(live_server)
    page.click("#composer-input")
    page.keyboard.type("half-written question")
    page.evaluate(PASTE, [b64(png()), "shot.png", "image/png"])
    wait_chips_done(page, 1)
    sid = sid_of(page)
    page.click("#new-chat")
    page.wait_for_function("() => !location.search.includes('s=')")
    assert page.input_value("#composer-input") == "half-written question"
    wait_until(lambda: live_server.get(f"/api/session?session_id={sid}").status_code == 404)
    page.reload()
    page.wait_for_selector("html[data-ready]")
    assert page.input_value("#composer-input") == "half-written question"


def test_a_file_can_be_removed_and_a_message_of_files_alone_is_sent(live_server, open_page):
    page = open_page(live_server)
    page.evaluate(DROP, [b64(b"first"), "a.txt", "text/plain", "#composer"])      # onto the composer
    page.evaluate(DROP, [b64(b"second!"), "b.txt", "text/plain", "#composer"])
    wait_chips_done(page, 2)
    assert page.is_enabled("#send-btn")          # files alone may be sent
    page.click("#attach-tray .att-remove[aria-label='Remove a.txt']")
    wait_chips_done(page, 1)
    page.click("#send-btn")
    wait_reply_finished(page)
    assert "[attachment b.txt 7 text/plain]" in page.locator(".msg-assistant .md").last.inner_text()
    assert "a.txt" not in page.locator(".msg-assistant .md").last.inner_text()
    assert page.locator(".msg-user").last.locator(".msg-text").count() == 0


def test_a_file_over_the_limit_is_refused_with_the_limit_said(make_server, open_page, console):
    server = make_server(args=("--max-attachment-bytes", "2000")).start()
    page = open_page(server)
    requests_made = []
    page.on("request", lambda r: requests_made.append(r.url) if "/api/attachments" in r.url else None)
    page.evaluate(DROP, [b64(b"x" * 5000), "big.log", "text/plain", "#messages-scroll"])
    chip = page.locator("#attach-tray .att-chip[data-state='error']")
    chip.wait_for()
    assert chip.locator(".att-error").inner_text().startswith(
        "Not attached. “big.log” is 5 KB; this server accepts attachments up to 2 KB.")
    assert requests_made == []                   # refused before uploading
    page.fill("#composer-input", "hello")
    page.click("#send-btn")
    page.wait_for_selector("#toast:not([hidden])")
    assert "remove them" in page.inner_text("#toast")
    assert page.locator(".msg-user").count() == 0   # not sent while a file is refused
    page.click("#attach-tray .att-remove")
    # The server's own 413 (a page that did not know the limit) is said the same way.
    console.allow(r"Failed to load resource: the server responded with a status of 413")
    page.evaluate("() => document.querySelector('meta[name=max-attachment-bytes]').remove()")
    page.evaluate(DROP, [b64(b"y" * 2600), "over.log", "text/plain", "#composer"])
    chip.wait_for()
    assert chip.locator(".att-error").inner_text().startswith(
        "Not attached. “over.log” is 3 KB; this server accepts attachments up to 2 KB.")
    assert requests_made and not list((server.state_dir / "attachments").glob("*/*.json"))


def test_a_reload_while_the_reply_runs_shows_the_message_with_its_files(live_server, open_page):
    page = open_page(live_server)
    page.evaluate(PASTE, [b64(png()), "mid.png", "image/png"])
    wait_chips_done(page, 1)
    page.fill("#composer-input", fake_script(tokens=30, delay_ms=150))
    page.click("#send-btn")
    page.wait_for_selector(".msg-assistant.streaming .md")
    sid = sid_of(page)
    page.reload()
    page.wait_for_selector("html[data-ready]")
    page.wait_for_selector(".msg-assistant.streaming")                 # re-attached to the running reply
    page.wait_for_function("() => document.querySelector('.msg-user .att-thumb img')?.naturalWidth === 24")
    assert live_server.session(sid, messages=0)["pending_attachments"][0]["name"] == "mid.png"
    wait_reply_finished(page)
    assert "[attachment mid.png" in page.locator(".msg-assistant .md").last.inner_text()
    assert live_server.session(sid, messages=0)["pending_attachments"] == []


def test_a_big_upload_shows_its_progress(live_server, open_page):
    page = open_page(live_server)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20, "downloadThroughput": -1,
                                                   "uploadThroughput": 400_000})   # 400 KB/s
    page.evaluate("""() => { window.progress = []; new MutationObserver(() => {
        const bar = document.querySelector('#attach-tray progress');
        if (bar) window.progress.push(bar.value); }).observe(document.querySelector('#attach-tray'),
        { subtree: true, attributes: true, childList: true }); }""")
    page.evaluate(DROP, [b64(b"z" * 1_500_000), "big.bin", "application/octet-stream", "#composer"])
    page.wait_for_selector("#attach-tray progress")
    assert page.get_attribute("#attach-tray progress", "aria-label").startswith("Uploading big.bin")
    wait_chips_done(page, 1)
    seen = page.evaluate("() => window.progress")
    assert any(0 < v < 100 for v in seen), seen                       # part-way values were shown
    assert seen == sorted(seen)
    assert page.locator("#attach-tray .att-size").inner_text() == "1.5 MB"


def test_behind_a_password_the_upload_carries_the_pages_csrf_token(make_server, open_page):
    server = make_server(args=("--password", "correct horse battery")).start()
    page = open_page(server, password="correct horse battery")
    sent = []
    page.on("request", lambda r: sent.append(r.headers.get("x-csrf-token")) if r.url.endswith("/api/attachments") else None)
    data = "Grüße, 世界\n".encode()
    page.evaluate(DROP, [b64(data), "hello.txt", "text/plain", "#composer"])
    wait_chips_done(page, 1)
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    assert token and sent == [token]
    page.click("#send-btn")
    wait_reply_finished(page)
    assert f"[attachment hello.txt {len(data)} text/plain]" in page.locator(".msg-assistant .md").last.inner_text()


def test_a_file_named_by_the_upstream_but_not_stored_here_is_a_chip_not_a_broken_link(live_server, open_page):
    """A migrated upstream message lists its files as ``{name, path, mime, size}`` with no
    id in our store: the bubble names them, with no link or image that would fail."""
    from .conftest import write_session

    write_session(live_server.sessions_dir, "upstream-files", "Upstream files", [
        {"role": "user", "content": "what is in these?", "timestamp": 1_700_000_000,
         "attachments": [{"name": "cat.png", "path": "cat.png", "mime": "image/png", "size": 12, "is_image": True},
                         {"name": "notes 日本.txt", "path": "notes 日本.txt", "mime": "text/plain", "size": 2048}]},
        {"role": "assistant", "content": "A cat and notes.", "timestamp": 1_700_000_001, "status": "complete"},
    ])
    page = open_page(live_server, "/?s=upstream-files")
    chips = page.locator(".msg-user .msg-attachments .att-item")
    chips.first.wait_for()
    names = chips.locator(".att-name").all_inner_texts()
    assert names == ["cat.png", "notes 日本.txt"] and chips.locator(".att-size").all_inner_texts()[0] == "12 bytes"
    assert page.locator(".msg-user .msg-attachments a, .msg-user .msg-attachments img").count() == 0
