"""Tabs stay in step, live (GET /api/sessions/events), and messages people can act on: two
pages of one browser context on one server; a rename, a new chat or a reply in one shows in
the other without a reload; a stale tab's send keeps the text; the footer follows the
server going away and coming back; no native browser dialog ever opens."""
from __future__ import annotations

import re
import socket

import pytest
from playwright.sync_api import expect

from ..helpers import fake_script
from .conftest import assistant_texts, sid_of, tokens, wait_reply_finished, wait_title

pytestmark = pytest.mark.browser
LIVE_MS = 3000   # a live change shows well before the 20 s health poll or any refocus could show it


def no_native_dialogs(page) -> list:
    """Record every confirm()/alert()/prompt() the page opens (the test then fails); the
    dialog is dismissed so the page does not hang."""
    seen = []

    def on_dialog(dialog):
        seen.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()
    page.on("dialog", on_dialog)
    return seen


def second_page(first, console, path: str):
    """Another tab in the same browser context as ``first`` (same cookies), on ``path``."""
    page = first.context.new_page()
    console.attach(page)
    page.goto(first.url.split("/?")[0].rstrip("/") + path)
    page.wait_for_selector("html[data-ready]")
    return page


def row(page, sid: str):
    return page.locator(f'#session-list [data-sid="{sid}"]')


def test_a_rename_and_a_new_chat_in_one_tab_show_in_the_other(live_server, open_page, console):
    sid = live_server.new_session(title="Before")
    a = open_page(live_server, f"/?s={sid}")
    b = second_page(a, console, f"/?s={sid}")
    dialogs = no_native_dialogs(a) + no_native_dialogs(b)
    wait_title(b, "Before")
    a.click("#chat-menu-btn")
    a.get_by_role("menuitem", name="Rename").click()
    a.fill("#dialog-input", "После — 改名 ✓")
    a.click("#dialog-ok")
    expect(row(b, sid)).to_contain_text("После — 改名 ✓", timeout=LIVE_MS)
    expect(b.locator("#chat-title")).to_have_text("После — 改名 ✓", timeout=LIVE_MS)
    other = live_server.new_session(title="Made elsewhere")   # another client (a script, a phone)
    expect(row(a, other)).to_contain_text("Made elsewhere", timeout=LIVE_MS)
    expect(row(b, other)).to_contain_text("Made elsewhere", timeout=LIVE_MS)
    assert dialogs == []


def test_a_tab_viewing_the_chat_follows_the_reply_another_tab_started(live_server, open_page, console):
    sid = live_server.new_session(title="Shared chat")
    a = open_page(live_server, f"/?s={sid}")
    b = second_page(a, console, f"/?s={sid}")
    wait_title(b, "Shared chat")
    a.fill("#composer-input", fake_script(tokens=30, delay_ms=80))
    a.click("#send-btn")
    # B was not touched: it attaches to A's stream and shows the reply as it grows
    b.wait_for_function("() => document.querySelector('.msg-assistant.streaming')?.innerText.includes('t3')",
                        timeout=LIVE_MS + 3000)
    expect(b.locator(".msg-user")).to_have_count(1)
    wait_reply_finished(b)
    wait_reply_finished(a)
    assert assistant_texts(b) == assistant_texts(a) == [tokens(30)]


def test_the_header_shows_the_new_title_while_the_first_reply_streams(live_server, open_page):
    page = open_page(live_server)
    script = '{"fake": {"tokens": 40, "delay_ms": 80,\n "reasoning": "the launch party"}}'   # a slow reply
    page.fill("#composer-input", script)
    page.click("#send-btn")
    page.wait_for_selector(".msg-assistant.streaming")
    first_line = '{"fake": {"tokens": 40, "delay_ms": 80,'
    expect(page.locator("#chat-title")).to_have_text(first_line, timeout=LIVE_MS)
    expect(page.locator(".msg-assistant.streaming")).to_have_count(1)   # still replying
    wait_reply_finished(page)


def test_a_stale_tabs_send_is_not_lost_and_not_technical(live_server, open_page, console):
    sid = live_server.new_session(title="Stale")
    live_server.post("/api/chat/start", {"session_id": sid, "message": "first"})
    page = open_page(live_server, f"/?s={sid}")
    wait_reply_finished(page)
    # This tab hears nothing any more (as if the live stream were lost): it goes stale.
    page.context.route("**/api/sessions/events", lambda route: None)
    page.reload()
    page.wait_for_selector("html[data-ready]")
    wait_reply_finished(page)
    r = live_server.post("/api/chat/start", {"session_id": sid, "message": "from another tab",
                                             "expected_message_count": 2})
    assert r.status_code == 200, r.text
    stream_done = live_server.get("/api/session/status", params={"session_id": sid})
    assert stream_done.status_code == 200
    console.allow(r"status of 409")   # Chromium logs the refused request itself
    draft = "my carefully written draft — 草稿 📝"
    page.fill("#composer-input", draft)
    page.click("#send-btn")
    toast = page.locator("#toast")
    expect(toast).to_contain_text("another tab")
    expect(toast).not_to_contain_text(re.compile(r"messages, not|expected_message_count|missing field|JSON"))
    expect(page.locator("#composer-input")).to_have_value(draft)
    expect(page.locator(".msg-user").filter(has_text="from another tab")).to_have_count(1)  # brought up to date


def test_the_app_asks_with_its_own_dialog_never_the_browsers(live_server, open_page):
    sid = live_server.new_session(title="Files")
    assert live_server.post("/api/file/create", {"session_id": sid, "path": "old.txt", "content": "x"}).ok
    page = open_page(live_server, f"/?s={sid}")
    dialogs = no_native_dialogs(page)
    page.click("#toggle-workspace")
    files = page.locator("#tabpanel-files")
    files.get_by_role("button", name="old.txt", exact=True).hover()   # the row's buttons show on hover
    files.get_by_role("button", name="Delete old.txt").click()
    expect(page.locator("#dialog")).to_be_visible()
    expect(page.locator("#dialog-title")).to_have_text("Delete old.txt?")
    page.click("#dialog-cancel")
    expect(files.get_by_role("button", name="old.txt", exact=True)).to_be_visible()
    files.get_by_role("button", name="old.txt", exact=True).hover()
    files.get_by_role("button", name="Delete old.txt").click()
    page.click("#dialog-ok")
    expect(files.get_by_role("button", name="old.txt", exact=True)).to_have_count(0)
    assert live_server.get("/api/file", params={"session_id": sid, "path": "old.txt"}).status_code == 404
    assert dialogs == []


def test_a_bad_request_reads_as_a_sentence_with_the_detail_behind_a_toggle(live_server, open_page, console):
    page = open_page(live_server)
    console.allow(r"status of 400")
    page.evaluate("""async () => {
        const { post } = await import('/static/js/api.js');
        const { toastError } = await import('/static/js/dom.js');
        try { await post('/api/session/rename', {}); } catch (err) { toastError('Not renamed', err); }
    }""")
    toast = page.locator("#toast")
    expect(toast).to_contain_text("Not renamed: the page and the server did not understand each other")
    expect(toast.locator(".toast-detail")).to_be_hidden()
    toast.get_by_role("button", name="Details").click()
    expect(toast.locator(".toast-detail")).to_have_text("missing field 'session_id'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_footer_and_stop_follow_the_server_going_away_and_coming_back(make_server, open_page, console):
    console.allow(r"net::ERR_")  # requests that fail while the server is down
    port = free_port()
    server = make_server(args=("--port", str(port))).start()
    page = open_page(server)
    footer = page.locator("#backend-text")
    expect(footer).to_contain_text("fake backend")
    page.fill("#composer-input", fake_script(tokens=200, delay_ms=50))
    page.click("#send-btn")
    page.wait_for_function("() => document.querySelector('.msg-assistant.streaming')?.innerText.includes('t40')")
    sid = sid_of(page)   # (by now the reply's first part is checkpointed on disk)
    expect(page.locator("#stop-btn")).to_be_visible()
    server.kill()
    # not at the next 20 s health poll: the broken event stream says it at once
    expect(footer).to_contain_text("unreachable", timeout=8000)
    expect(page.locator("#stop-btn")).to_be_hidden()          # a stop could not arrive now
    server.start()
    assert server.port == port
    expect(footer).to_contain_text("fake backend", timeout=8000)
    # the reply was cut by the crash: only the reply says so, not the user's own message
    wait_reply_finished(page)
    expect(page.locator(".msg-assistant").last).to_have_attribute("data-status", "interrupted")
    expect(page.locator(".msg-user .badge")).to_have_count(0)
    saved = server.session(sid)["messages"]
    assert saved[-1]["status"] == "interrupted"
    # the Reconnecting pill sits above the conversation, never over a message
    assert page.evaluate("""() => {
        const b = document.querySelector('#banner');
        b.hidden = false;
        const pill = b.getBoundingClientRect();
        const msgs = document.querySelector('#messages-scroll').getBoundingClientRect();
        b.hidden = true;
        return pill.bottom <= msgs.top;
    }""")


def test_the_chat_titles_setting_is_a_labelled_checkbox_in_settings(live_server, open_page):
    page = open_page(live_server)
    page.click("#settings-btn")
    box = page.get_by_label("Let the model name new chats")
    expect(box).to_be_checked()                      # on by default
    box.uncheck()
    expect(page.locator("#settings-prefs-done")).to_contain_text("Chat titles saved")
    assert live_server.get("/api/settings").json()["settings"]["generate_titles"] is False
    page.reload()
    page.wait_for_selector("html[data-ready]")
    page.click("#settings-btn")
    expect(page.get_by_label("Let the model name new chats")).not_to_be_checked()
    page.get_by_label("Let the model name new chats").check()
    expect(page.locator("#settings-prefs-done")).to_contain_text("Chat titles saved")
    assert live_server.get("/api/settings").json()["settings"]["generate_titles"] is True


def test_text_typed_in_a_chat_deleted_elsewhere_moves_to_the_new_chat(live_server, open_page, console):
    """Another tab (or a script) deletes the chat this tab shows while a message is half
    typed: the page says so and opens a new chat with the text still in the box (it was
    kept only as the deleted chat's draft, out of sight for good)."""
    sid = live_server.new_session(title="Doomed")
    page = open_page(live_server, f"/?s={sid}")
    dialogs = no_native_dialogs(page)
    wait_title(page, "Doomed")
    text = "half a thought — 半分 — نصف 🧩\nsecond line"
    page.fill("#composer-input", text)
    assert live_server.post("/api/session/delete", {"session_id": sid}).status_code == 200
    expect(page.locator("#toast")).to_contain_text("This chat was deleted.", timeout=LIVE_MS)
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator("#chat-title")).to_have_text("New chat")
    expect(page.locator("#composer-input")).to_have_value(text)
    page.reload()                                   # it is the new chat's draft now, not the dead chat's
    page.wait_for_selector("html[data-ready]")
    expect(page.locator("#composer-input")).to_have_value(text)
    assert page.evaluate("Object.keys(localStorage).filter(k => k.includes(arguments[0]))".replace("arguments[0]", repr(sid))) == []
    assert dialogs == []


def test_importing_a_file_cut_short_says_the_file_is_broken(live_server, open_page, console):
    """A chat export cut short (a download that stopped) is not valid JSON: the page says
    that of the file, not that the page and the server misunderstood each other and that
    a reload would help (it would not); the parser's words stay behind Details."""
    page = open_page(live_server)
    console.allow(r"status of 400")
    before = live_server.get("/api/sessions").json()["sessions"]
    page.set_input_files("#import-input", files=[{
        "name": "chat-export.json", "mimeType": "application/json",
        "buffer": '{"hermes_webui_export": 1, "session": {"title": "Cut sh'.encode()}])
    toast = page.locator("#toast")
    expect(toast).to_contain_text("Could not import chat-export.json: the file is not valid JSON")
    expect(toast).not_to_contain_text(re.compile(r"did not understand|reload the page|line 1, column"))
    assert live_server.get("/api/sessions").json()["sessions"] == before   # nothing imported


def test_a_project_made_in_another_tab_shows_in_this_ones_sidebar(live_server, open_page):
    """A project created, renamed or deleted elsewhere shows in this tab's sidebar (folder
    and filter chip) without a reload, as a chat's changes do."""
    page = open_page(live_server)
    r = live_server.post("/api/projects/create", {"name": "Garten 🌱 花园"})
    assert r.ok, r.text
    pid = r.json()["project"]["project_id"]
    expect(page.locator("#session-list")).to_contain_text("Garten 🌱 花园", timeout=LIVE_MS)
    expect(page.locator("#filter-bar")).to_contain_text("Garten 🌱 花园", timeout=LIVE_MS)
    assert live_server.post("/api/projects/rename", {"project_id": pid, "name": "Balkon"}).ok
    expect(page.locator("#session-list")).to_contain_text("Balkon", timeout=LIVE_MS)
    assert live_server.post("/api/projects/delete", {"project_id": pid}).ok
    expect(page.locator("#session-list")).not_to_contain_text("Balkon", timeout=LIVE_MS)
