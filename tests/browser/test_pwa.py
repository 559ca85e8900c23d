"""The installable app in a real browser (issue 17 item 7): with the server stopped the page
still opens from the service worker's copy, says it is offline and lists the chats it had,
then offers a reload when the server is back; a reply that finishes in a background tab
notifies (only when switched on in Settings); every control on a phone is at least 44 × 44
CSS pixels; a suggestion chip on the empty chat sends its prompt."""
from __future__ import annotations

import socket

import pytest
from playwright.sync_api import expect

from .conftest import PHONE, assistant_texts, sid_of, wait_reply_finished

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sidebar_titles(page) -> list[str]:
    return [t.strip() for t in page.locator("#session-list .session-title").all_inner_texts()]


def test_the_offline_shell_lists_the_saved_chats_when_the_server_is_stopped(make_server, open_page, console):
    console.allow(r"net::ERR_|Failed to load resource|Failed to fetch")  # while the server is down
    port = free_port()
    server = make_server(args=("--port", str(port))).start()
    for title in ("Trip to 京都 🚄", "Budget for May"):
        server.new_session(title=title)
    assert server.post("/api/settings", {"settings": {"send_key": "ctrl-enter"}}).status_code == 200
    page = open_page(server)
    expect(page.locator("#composer-help")).to_contain_text("Ctrl+Enter to send")
    page.wait_for_selector("html[data-offline-ready]")     # the worker kept the shell and the list
    expect(page.locator("#session-list .session-title")).to_have_count(2)
    online = sidebar_titles(page)
    expect(page.locator("#offline-note")).to_have_count(0)

    server.stop()
    page.reload()
    page.wait_for_selector("html[data-ready]")
    note = page.locator("#offline-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Offline")
    expect(page.locator("#session-list .session-title")).to_have_count(2)
    assert sidebar_titles(page) == online == ["Budget for May", "Trip to 京都 🚄"]
    assert page.locator("#composer-input").is_visible()    # the app itself, not an error page
    # the send key this browser last heard of, said as it is (not the page's built-in "Enter to send")
    expect(page.locator("#composer-help")).to_contain_text("Ctrl+Enter to send")
    assert page.get_attribute("#composer-input", "aria-keyshortcuts") == "Control+Enter"

    server.start()                                          # the same port: the worker's origin
    expect(note).to_contain_text("The server is back", timeout=20_000)
    note.get_by_role("button", name="Reload").click()
    page.wait_for_selector("html[data-ready]")
    expect(page.locator("#offline-note")).to_have_count(0)
    server.new_session(title="Written after the outage")
    page.reload()
    expect(page.locator("#session-list .session-title")).to_have_count(3)


def test_a_reply_finished_in_a_background_tab_notifies_only_when_switched_on(live_server, open_page):
    page = open_page(live_server, permissions=["notifications"])
    # record notifications, and let the test say whether the tab is in the background
    page.evaluate("""() => {
      window.__shown = [];
      window.__hidden = false;
      Object.defineProperty(document, 'hidden', { get: () => window.__hidden });
      const Real = window.Notification;
      window.Notification = class extends Real {
        constructor(title, opts) { super(title, opts); window.__shown.push({ title, body: opts && opts.body }); }
      };
      Object.defineProperty(window.Notification, 'permission', { get: () => Real.permission });
      window.Notification.requestPermission = () => Real.requestPermission();
    }""")

    def send_in_background(text: str, count: int) -> None:
        page.fill("#composer-input", text)
        page.click("#send-btn")
        page.evaluate("() => { window.__hidden = true; }")
        wait_reply_finished(page, count)
        page.evaluate("() => { window.__hidden = false; }")

    send_in_background("first, with notifications off", 1)
    assert page.evaluate("window.__shown") == []
    page.click("#settings-btn")
    dialog = page.get_by_role("dialog", name="Settings")
    toggle = dialog.get_by_label("Notify me when a reply finishes while this tab is in the background")
    toggle.check()
    expect(dialog.locator("#settings-notify-help")).to_contain_text("On:")
    assert live_server.get("/api/settings").json()["settings"]["notify_on_reply"] is True
    dialog.get_by_role("button", name="Close", exact=True).click()
    send_in_background("second, in the background", 2)
    shown = page.evaluate("window.__shown")
    assert len(shown) == 1 and shown[0]["body"] == "The reply is ready."
    assert shown[0]["title"] == page.inner_text("#chat-title")
    page.fill("#composer-input", "third, in front")
    page.click("#send-btn")
    wait_reply_finished(page, 3)
    assert len(page.evaluate("window.__shown")) == 1          # a visible tab is not notified
    assert live_server.post("/api/settings", {"settings": {"notify_on_reply": None}}).ok


SMALL_TARGETS = """() => {
  const out = [];
  for (const el of document.querySelectorAll('button, select, a[href], input[type=checkbox], summary, [role=button]')) {
    const target = el.matches('input[type=checkbox]') ? (el.closest('label') || el) : el;
    const r = target.getBoundingClientRect();
    const style = getComputedStyle(target);
    if (r.width === 0 || r.height === 0 || style.visibility === 'hidden' || target.closest('[hidden], dialog:not([open])')) continue;
    if (r.right <= 0 || r.left >= innerWidth || r.bottom <= 0 || r.top >= innerHeight) continue;
    if (el.closest('.md')) continue;  // links inside a reply's text are inline text, not targets
    if (r.width < 44 || r.height < 44) {
      out.push(`${el.tagName.toLowerCase()}#${el.id || ''}.${el.className || ''} ${Math.round(r.width)}x${Math.round(r.height)}`);
    }
  }
  return out;
}"""


def test_every_control_on_a_phone_is_at_least_44_pixels_and_a_chip_sends(live_server, open_page):
    live_server.new_session(title="A chat to list")
    page = open_page(live_server, viewport=PHONE, has_touch=True, is_mobile=True)
    assert page.evaluate(SMALL_TARGETS) == []                # the chat with its empty state
    page.click("#open-sidebar")
    expect(page.locator("#sidebar")).to_be_visible()
    # measured once the drawer has slid in (while it slides its controls are still off screen)
    page.wait_for_function("() => document.querySelector('#sidebar').getBoundingClientRect().left === 0")
    assert page.evaluate(SMALL_TARGETS) == []                # the drawer
    page.click("#close-sidebar")
    chip = page.locator(".suggestion").first
    prompt = chip.get_attribute("data-prompt")
    chip.click()
    wait_reply_finished(page)
    assert live_server.session(sid_of(page))["messages"][0]["content"] == prompt
    assert assistant_texts(page) == ["echo: " + prompt]
    assert page.evaluate(SMALL_TARGETS) == []                # a chat with a reply and its actions
