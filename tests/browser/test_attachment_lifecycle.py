"""What happens to an uploaded file that is not sent, in a real browser (issue 16): a chip
removed after its upload deletes the file on the server; a chat created only to hold
files is deleted when the person leaves it without sending, so no empty "New chat" is
left in the list (one where a message was sent is kept); and files go with a message
queued behind a running reply."""
from __future__ import annotations

import pytest

from ..helpers import fake_script, wait_until
from .conftest import sid_of, wait_reply_finished
from .test_attachments import PASTE, b64, png, wait_chips_done

pytestmark = pytest.mark.browser


def files_of(server, sid) -> list[str]:
    folder = server.state_dir / "attachments" / sid
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def paste_png(page, name="shot.png") -> None:
    page.evaluate(PASTE, [b64(png()), name, "image/png"])


def test_removing_an_uploaded_chip_deletes_its_file(live_server, open_page):
    page = open_page(live_server)
    paste_png(page, "keep.png")
    paste_png(page, "drop.png")
    wait_chips_done(page, 2)
    sid = sid_of(page)
    assert len(files_of(live_server, sid)) == 4                      # two files, each with its sidecar
    page.get_by_role("button", name="Remove drop.png").click()
    wait_until(lambda: len(files_of(live_server, sid)) == 2, message="the removed file is deleted on the server")
    page.fill("#composer-input", "one picture")
    page.click("#send-btn")
    wait_reply_finished(page)
    assert page.locator(".msg-assistant").inner_text().startswith("[attachment keep.png")


def test_a_new_chat_left_with_only_unsent_files_is_deleted(live_server, open_page):
    page = open_page(live_server)
    paste_png(page)
    wait_chips_done(page, 1)
    sid = sid_of(page)
    page.locator(f"#session-list .session[data-sid='{sid}']").wait_for()   # listed while it is open
    page.click("#new-chat")                                               # the person leaves it
    wait_until(lambda: not (live_server.sessions_dir / f"{sid}.json").exists() and not files_of(live_server, sid),
               message="the abandoned chat and its file are deleted")
    page.locator(f"#session-list .session[data-sid='{sid}']").wait_for(state="detached")
    assert page.locator("#attach-tray .att-chip").count() == 0
    # a chat where the files went with a message is kept
    paste_png(page)
    wait_chips_done(page, 1)
    kept = sid_of(page)
    page.click("#send-btn")
    wait_reply_finished(page)
    page.click("#new-chat")
    page.wait_for_function("() => !new URLSearchParams(location.search).get('s')")
    assert (live_server.sessions_dir / f"{kept}.json").exists() and len(files_of(live_server, kept)) == 2
    assert live_server.session(kept)["message_count"] == 2


def test_files_go_with_a_message_queued_behind_a_running_reply(live_server, open_page):
    page = open_page(live_server)
    page.fill("#composer-input", fake_script(tokens=1, hang=True))
    page.click("#send-btn")
    page.wait_for_selector(".msg-assistant.streaming")
    paste_png(page, "later.png")
    wait_chips_done(page, 1)
    page.fill("#composer-input", "after this")
    page.click("#send-btn")
    queued = page.locator("#queue .queued")
    queued.wait_for()
    assert "later.png" in queued.inner_text()
    assert page.locator("#attach-tray .att-chip").count() == 0           # the chip went with the message
    page.click("#stop-btn")
    wait_reply_finished(page, count=2)
    last = page.locator(".msg-assistant").last
    page.wait_for_function("() => [...document.querySelectorAll('.msg-assistant')].pop().innerText.includes('echo: after this')")
    assert last.inner_text().startswith("[attachment later.png")
    assert page.locator(".msg-user").last.locator(".att-thumb img").count() == 1
