"""Message actions and chat operations in a real browser: Copy, Retry, Edit and Fork on
messages; Export, Undo, Clear and Import in the chat's ⋯ menu; and a stale page (the chat
changed in another tab) that is refused, reloaded and told why. One fake-backend server
for the module; each test seeds its own chat through the import endpoint."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .conftest import PHONE, wait_title

pytestmark = pytest.mark.browser


def seed(server, title: str, texts: list[str]) -> str:
    """A new chat titled ``title`` whose messages alternate user / assistant with ``texts``."""
    now = time.time() - 60
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": text, "timestamp": now + i,
                 **({"status": "complete"} if i % 2 else {})} for i, text in enumerate(texts)]
    r = server.post("/api/session/import", {"hermes_webui_export": 1,
                                            "session": {"title": title, "manual_title": True, "messages": messages}})
    assert r.status_code == 200, r.text
    return r.json()["sessions"][0]["session_id"]


def saved_texts(server, sid: str) -> list[str]:
    return [m["content"] for m in server.session(sid)["messages"]]


def shown(page):
    """Locator of the messages' visible text (user bubbles and replies), in order."""
    return page.locator(".msg-user .msg-body, .msg-assistant .md")


def open_chat(open_page, server, sid: str, title: str, **kw):
    page = open_page(server, f"/?s={sid}", **kw)
    wait_title(page, title)
    return page


def chat_menu(page, item: str) -> None:
    page.click("#chat-menu-btn")
    page.get_by_role("menuitem", name=item).click()


def test_retry_replaces_the_last_reply(live_server, open_page):
    sid = seed(live_server, "Retry me", ["first question", "first answer", "hello there", "an old reply"])
    page = open_chat(open_page, live_server, sid, "Retry me")
    replies = page.locator(".msg-assistant")
    # Only the last reply offers Retry; every message offers Copy.
    expect(replies.nth(0).locator(".msg-retry")).to_be_hidden()
    expect(page.locator(".msg-copy")).to_have_count(4)
    replies.nth(1).hover()
    replies.nth(1).get_by_role("button", name=re.compile("^Retry")).click()
    expect(shown(page)).to_have_text(["first question", "first answer", "hello there", "echo: hello there"])
    expect(page.locator(".msg-assistant.streaming")).to_have_count(0)
    assert saved_texts(live_server, sid) == ["first question", "first answer", "hello there", "echo: hello there"]
    # The page's count followed the turn: a second retry is accepted, not refused as stale.
    last = page.locator(".msg-assistant.is-last")
    last.evaluate("el => { el.dataset.mark = 'old'; }")
    last.hover()
    last.locator(".msg-retry").click()
    expect(page.locator(".msg-assistant[data-mark]")).to_have_count(0)  # replaced by a new element
    expect(page.locator(".msg-assistant.streaming")).to_have_count(0)
    expect(shown(page)).to_have_text(["first question", "first answer", "hello there", "echo: hello there"])
    expect(page.locator("#toast")).to_be_hidden()


def test_edit_changes_the_message_and_gets_a_new_reply(live_server, open_page):
    sid = seed(live_server, "Edit me", ["first question", "old answer", "second question", "old answer 2"])
    page = open_chat(open_page, live_server, sid, "Edit me")
    first = page.locator(".msg-user").first
    first.hover()
    first.get_by_role("button", name="Edit message").click()
    editor = page.get_by_role("textbox", name="Edit your message")
    expect(editor).to_be_focused()
    expect(editor).to_have_value("first question")
    editor.fill("not this")  # Esc cancels: nothing changes
    editor.press("Escape")
    expect(editor).to_have_count(0)
    expect(first.locator(".msg-body")).to_have_text("first question")
    first.get_by_role("button", name="Edit message").click()
    editor.fill("a better question")
    page.get_by_role("button", name="Save and send").click()
    expect(shown(page)).to_have_text(["a better question", "echo: a better question"])
    expect(page.locator(".msg-assistant.streaming")).to_have_count(0)
    assert saved_texts(live_server, sid) == ["a better question", "echo: a better question"]


def test_fork_opens_a_new_chat_with_the_messages_up_to_there(live_server, open_page):
    sid = seed(live_server, "Fork me", ["q1", "a1", "q2", "a2"])
    page = open_chat(open_page, live_server, sid, "Fork me")
    reply = page.locator(".msg-assistant").first
    reply.hover()
    reply.get_by_role("button", name=re.compile("^Fork")).click()
    wait_title(page, "Fork me (fork)")
    new_sid = page.url.split("s=", 1)[1]
    assert new_sid != sid
    expect(shown(page)).to_have_text(["q1", "a1"])
    expect(page.locator(f".session[data-sid='{new_sid}']")).to_have_class(re.compile(r"\bactive\b"))
    assert saved_texts(live_server, new_sid) == ["q1", "a1"]
    assert saved_texts(live_server, sid) == ["q1", "a1", "q2", "a2"]  # the original is untouched
    # Back goes to the original chat.
    page.go_back()
    wait_title(page, "Fork me")
    expect(shown(page)).to_have_count(4)


def test_export_downloads_the_conversation_as_markdown_and_json(live_server, open_page):
    sid = seed(live_server, "Export me", ["What is 2+2?", "It is **4**."])
    page = open_chat(open_page, live_server, sid, "Export me")
    with page.expect_download() as info:
        chat_menu(page, "Export as Markdown")
    md = info.value
    assert md.suggested_filename == "Export me.md"
    text = Path(md.path()).read_text(encoding="utf-8")
    assert text.startswith("# Export me") and "What is 2+2?" in text and "It is **4**." in text
    with page.expect_download() as info:
        chat_menu(page, "Export as JSON")
    doc = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
    assert info.value.suggested_filename == "Export me.json"
    assert [m["content"] for m in doc["session"]["messages"]] == ["What is 2+2?", "It is **4**."]


def test_undo_removes_the_last_exchange_and_clear_empties_the_chat(live_server, open_page):
    sid = seed(live_server, "Undo me", ["keep this", "kept reply", "drop this", "dropped reply"])
    page = open_chat(open_page, live_server, sid, "Undo me")
    chat_menu(page, "Undo last exchange")
    expect(shown(page)).to_have_text(["keep this", "kept reply"])
    expect(page.locator("#composer-input")).to_have_value("drop this")  # back in the box to resend
    assert saved_texts(live_server, sid) == ["keep this", "kept reply"]
    # The removed message can be sent again: the page's count is right after the undo.
    page.locator("#composer-input").press("Enter")
    expect(shown(page)).to_have_text(["keep this", "kept reply", "drop this", "echo: drop this"])
    expect(page.locator(".msg-assistant.streaming")).to_have_count(0)
    # Clear asks first; Cancel keeps everything.
    chat_menu(page, "Clear chat")
    expect(page.locator("#dialog-title")).to_have_text("Clear this chat?")
    page.click("#dialog-cancel")
    assert len(saved_texts(live_server, sid)) == 4
    chat_menu(page, "Clear chat")
    page.click("#dialog-ok")
    expect(shown(page)).to_have_count(0)
    expect(page.locator("#empty-state")).to_be_visible()
    assert saved_texts(live_server, sid) == []
    assert live_server.session(sid, messages=0)["title"] == "Undo me"


def test_a_stale_page_is_refused_reloaded_and_told_why(live_server, open_page, console):
    sid = seed(live_server, "Two tabs", ["q1", "a1", "q2", "a2"])
    page = open_chat(open_page, live_server, sid, "Two tabs")
    # This page stops hearing live changes (GET /api/sessions/events), as if that stream were lost.
    page.context.route("**/api/sessions/events", lambda route: None)
    page.reload()
    page.wait_for_selector("html[data-ready]")
    expect(shown(page)).to_have_count(4)
    # Another tab removes the last exchange; this page still shows four messages.
    r = live_server.post("/api/session/undo", {"session_id": sid, "expected_message_count": 4})
    assert r.status_code == 200, r.text
    console.allow(r"status of 409")  # Chromium logs the refused request itself
    chat_menu(page, "Undo last exchange")
    expect(page.locator("#toast")).to_contain_text("changed in another tab")
    expect(page.locator("#toast")).to_contain_text("reloaded")
    expect(shown(page)).to_have_text(["q1", "a1"])  # the page now shows the chat as it is
    assert saved_texts(live_server, sid) == ["q1", "a1"]  # and the refused undo changed nothing


def test_import_opens_the_imported_chat(live_server, open_page, tmp_path):
    page = open_page(live_server)
    doc = {"hermes_webui_export": 1, "session": {"title": "From a file", "messages": [
        {"role": "user", "content": "imported question"}, {"role": "assistant", "content": "imported answer"}]}}
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    # Without an open chat the ⋯ menu offers only the import and the backup of every chat.
    page.click("#chat-menu-btn")
    expect(page.get_by_role("menuitem")).to_have_text(["Import chats…", "Export all chats"])
    with page.expect_file_chooser() as chooser:
        page.get_by_role("menuitem", name="Import chats…").click()
    chooser.value.set_files(str(path))
    wait_title(page, "From a file")
    expect(shown(page)).to_have_text(["imported question", "imported answer"])
    new_sid = page.url.split("s=", 1)[1]
    expect(page.locator(f".session[data-sid='{new_sid}'] .session-title")).to_have_text("From a file")
    expect(page.locator("#toast")).to_have_text("Imported 1 chat.")


def test_copy_puts_the_message_on_the_clipboard(live_server, open_page):
    sid = seed(live_server, "Copy me", ["copy this text", "and this reply"])
    page = open_chat(open_page, live_server, sid, "Copy me", permissions=["clipboard-read", "clipboard-write"])
    user = page.locator(".msg-user").first
    user.hover()
    user.get_by_role("button", name="Copy message").click()
    expect(user.locator(".msg-copy")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == "copy this text"


def test_actions_are_always_visible_on_a_touch_screen(live_server, open_page):
    sid = seed(live_server, "Touch", ["tap me", "a reply"])
    page = open_chat(open_page, live_server, sid, "Touch", viewport=PHONE, has_touch=True, is_mobile=True)
    actions = page.locator(".msg-user .msg-actions")
    assert actions.evaluate("el => getComputedStyle(el).opacity") == "1"
    page.locator(".msg-assistant").get_by_role("button", name=re.compile("^Fork")).tap()
    wait_title(page, "Touch (fork)")
    expect(shown(page)).to_have_text(["tap me", "a reply"])
