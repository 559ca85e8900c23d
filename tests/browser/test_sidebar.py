"""The sidebar in a real browser: date groups, the shortcuts (`?`, Ctrl+Shift+O, ↑ in an
empty box, arrow keys through every row), the collapsible sidebar, projects (create,
move a chat in, filter, fold — remembered across a reload), tags (edit, filter), a new
chat inside a project, and 44 px touch targets on a phone.

Sessions of various ages are written to disk before the module's server starts."""
from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from ..helpers import LiveServer, wait_until
from .conftest import PHONE, sid_of, wait_reply_finished, wait_title, write_session

pytestmark = pytest.mark.browser

LONG_TITLE = ("A very long title about 図書館 and مكتبة and 🦉 owls " * 4).strip()


def local_noon(days_ago: int) -> float:
    day = dt.date.today() - dt.timedelta(days=days_ago)
    return dt.datetime.combine(day, dt.time(12)).timestamp()


def month_label(days_ago: int) -> str:
    return (dt.date.today() - dt.timedelta(days=days_ago)).strftime("%B %Y")


AGES = {  # session id → (title, days ago)
    "d0": ("Talked today", 0), "d1": ("Talked yesterday", 1), "d4": ("Four days ago", 4),
    "d20": ("Twenty days ago", 20), "d45": ("Forty-five days ago", 45), "d100": ("A hundred days ago", 100),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sidebar")
    sessions = tmp / "state" / "sessions"
    midnight = dt.datetime.combine(dt.date.today(), dt.time(0)).timestamp()
    now = max(time.time(), midnight + 300)  # "today", even just after midnight
    for sid, (title, days) in AGES.items():
        write_session(sessions, sid, title, [], updated_at=now if days == 0 else local_noon(days))
    write_session(sessions, "pinned60", "Pinned long ago", [], updated_at=local_noon(60), pinned=True)
    write_session(sessions, "long", LONG_TITLE, [], updated_at=now - 60)
    write_session(sessions, "talk", "Two questions", [
        {"role": "user", "content": "first question", "timestamp": now - 40},
        {"role": "assistant", "content": "first answer", "timestamp": now - 39, "status": "complete"},
        {"role": "user", "content": "second question", "timestamp": now - 30},
        {"role": "assistant", "content": "second answer", "timestamp": now - 29, "status": "complete"},
    ], updated_at=now - 30)
    srv = LiveServer(tmp).start()
    yield srv
    srv.stop()


def open_menu(page, sid: str):
    row = page.locator(f".session[data-sid='{sid}']")
    row.hover()
    row.locator(".session-menu-btn").click()
    page.wait_for_selector("#menu:not([hidden])")
    return page.locator("#menu")


def group_of(page, sid: str) -> str:
    """The label of the date group the row of ``sid`` is listed under."""
    return page.eval_on_selector(f".session[data-sid='{sid}']", """li => {
        const ul = li.closest('ul'); return document.getElementById(ul.getAttribute('aria-labelledby')).textContent; }""")


def visible_sids(page) -> list[str]:
    return page.locator(".session[data-sid]").evaluate_all(
        "els => els.filter(e => e.getClientRects().length).map(e => e.dataset.sid)")


def project_row(server, name: str) -> dict:
    return next(p for p in server.get("/api/projects").json()["projects"] if p["name"] == name)


# ------------------------------------------------------------------ date groups and keys


def test_chats_are_grouped_by_day_week_month_with_pinned_on_top(server, open_page):
    page = open_page(server)
    page.wait_for_selector(".session[data-sid='d100']")
    labels = page.locator(".group-label").all_inner_texts()
    assert [x.lower() for x in labels] == [x.lower() for x in [
        "Pinned", "Projects", "Today", "Yesterday", "Previous 7 days", "Previous 30 days",
        month_label(45), month_label(100)]]
    assert group_of(page, "pinned60") == "Pinned"
    expected = {"d0": "Today", "d1": "Yesterday", "d4": "Previous 7 days", "d20": "Previous 30 days",
                "d45": month_label(45), "d100": month_label(100), "long": "Today"}
    assert {sid: group_of(page, sid) for sid in expected} == expected
    # the whole title on hover, although the row cuts it short
    link = page.locator(".session[data-sid='long'] .session-link")
    assert link.get_attribute("title") == LONG_TITLE
    assert link.locator(".session-title").evaluate("el => el.scrollWidth > el.clientWidth")


def test_question_mark_opens_the_shortcuts_dialog_but_types_in_a_text_field(server, open_page):
    page = open_page(server)
    page.wait_for_function("() => document.activeElement.id === 'composer-input'")
    page.keyboard.type("why?")
    assert page.input_value("#composer-input") == "why?"
    assert page.locator("#shortcuts-dialog[open]").count() == 0
    page.fill("#composer-input", "")
    page.locator("#chat-title").click()  # focus leaves the text field
    page.keyboard.press("?")
    dialog = page.locator("#shortcuts-dialog[open]")
    dialog.wait_for()
    rows = dict(zip(dialog.locator("tbody th").all_inner_texts(), dialog.locator("tbody td").all_inner_texts()))
    assert rows[next(k for k in rows if "O" in k and "Shift" in k)] == "New chat"
    assert any("?" in keys for keys in rows) and len(rows) >= 8
    page.keyboard.press("Escape")
    page.wait_for_selector("#shortcuts-dialog:not([open])", state="attached")


def test_ctrl_shift_o_starts_a_new_chat(server, open_page):
    page = open_page(server, "/?s=d1")
    wait_title(page, "Talked yesterday")
    page.locator("#chat-title").click()
    page.keyboard.press("Control+Shift+O")
    page.wait_for_url(server.url("/"))
    wait_title(page, "New chat")
    assert page.locator(".session.active").count() == 0
    page.wait_for_function("() => document.activeElement.id === 'composer-input'")


def test_up_arrow_in_an_empty_message_box_edits_the_last_message(server, open_page):
    page = open_page(server, "/?s=talk")
    page.wait_for_selector(".msg-user")
    page.focus("#composer-input")
    page.keyboard.press("ArrowUp")
    editing = page.locator(".msg-user.editing")
    editing.wait_for()
    assert editing.locator(".edit-input").input_value() == "second question"
    assert page.evaluate("() => document.activeElement.classList.contains('edit-input')")
    page.keyboard.press("Escape")  # the editor closes, nothing is sent
    page.wait_for_selector(".msg-user.editing", state="detached")
    # with text in the box, ↑ just moves the cursor
    page.fill("#composer-input", "draft")
    page.focus("#composer-input")
    page.keyboard.press("ArrowUp")
    assert page.locator(".msg-user.editing").count() == 0


def test_arrow_keys_move_through_every_row_across_groups(server, open_page):
    page = open_page(server)
    page.wait_for_selector(".session[data-sid='d100']")
    order = page.locator(".session-link, .project-toggle").evaluate_all(
        "els => els.filter(e => e.getClientRects().length).map(e => e.closest('[data-sid]')?.dataset.sid"
        " || 'project:' + e.dataset.pid)")
    # one tab stop for the whole list
    assert page.locator("#session-list [tabindex='0']").count() == 1
    page.focus("#search-input")
    page.keyboard.press("ArrowDown")
    seen = []
    for _ in order:
        seen.append(page.evaluate("() => { const a = document.activeElement;"
                                  " return a.closest('[data-sid]')?.dataset.sid || 'project:' + a.dataset.pid; }"))
        page.keyboard.press("ArrowDown")
    assert seen == order and {"pinned60", "d0", "d1", "d4", "d20", "d45", "d100"} <= set(seen)
    assert page.evaluate("() => document.activeElement.closest('[data-sid]').dataset.sid") == order[-1]  # stays at the end
    page.keyboard.press("Home")
    assert page.evaluate("() => document.activeElement.closest('[data-sid]').dataset.sid") == order[0]
    page.keyboard.press("ArrowRight")  # the row's ⋯ button
    assert page.evaluate("() => document.activeElement.classList.contains('session-menu-btn')")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(f"s={order[-1]}"))
    # Tab leaves the list from any row: the rows are a single stop
    assert page.locator("#session-list [tabindex='0']").count() == 1


def test_collapsed_sidebar_is_remembered_across_a_reload(server, open_page):
    page = open_page(server)
    page.wait_for_selector(".session[data-sid='d0']")
    assert page.locator("#expand-sidebar").is_hidden()
    page.click("#collapse-sidebar")
    page.wait_for_function("() => document.querySelector('#sidebar').getBoundingClientRect().width === 0")
    assert page.locator("#sidebar").is_hidden() and page.locator("#expand-sidebar").is_visible()
    assert page.evaluate("() => document.activeElement.id") == "expand-sidebar"
    assert page.locator("#chat").bounding_box()["x"] == 0  # the chat takes the room
    page.reload()
    page.wait_for_selector("html[data-ready]")
    assert page.locator("#sidebar").is_hidden() and page.locator("#expand-sidebar").is_visible()
    page.locator("#chat-title").click()
    page.keyboard.press("Control+Shift+S")
    page.wait_for_selector("#sidebar .session[data-sid='d0']", state="visible")
    page.reload()
    page.wait_for_selector("#sidebar .session[data-sid='d0']", state="visible")
    assert page.locator("#expand-sidebar").is_hidden()


def test_a_list_refresh_waits_until_an_open_row_menu_closes(server, open_page):
    sid = server.new_session(title="Menu holder")
    page = open_page(server)
    open_menu(page, sid)
    newer = server.new_session(title="Arrived meanwhile")
    with page.expect_response(lambda r: "/api/sessions?" in r.url):
        page.evaluate("() => window.dispatchEvent(new Event('focus'))")  # the page refreshes the list
    page.wait_for_timeout(0)
    assert page.locator("#menu").is_visible()
    assert page.locator(f".session[data-sid='{sid}'] .session-menu-btn").get_attribute("aria-expanded") == "true"
    page.keyboard.press("Escape")
    page.wait_for_selector(f".session[data-sid='{newer}']")  # drawn once the menu closed
    assert page.evaluate("() => document.activeElement.closest('.session')?.dataset.sid") == sid


# ------------------------------------------------------------------ projects and tags


def test_project_create_move_filter_and_fold_across_a_reload(server, open_page):
    alpha = server.new_session(title="Alpha notes")
    beta = server.new_session(title="Beta notes")
    page = open_page(server)
    page.wait_for_selector(f".session[data-sid='{beta}']")
    page.click(".projects-new")
    page.wait_for_selector("#project-dialog[open]")
    name = "Research 研究 🔬"
    page.fill("#project-name", name)
    page.locator(".swatch[title='Green']").click()
    page.fill("#project-workspace", "/tmp/research")
    page.fill("#project-instructions", "Answer in short sentences.")
    page.click("#project-save")
    page.wait_for_selector("#project-dialog:not([open])", state="attached")
    folder = page.locator(".project", has=page.locator(".project-name", has_text=name))
    folder.wait_for()
    saved = project_row(server, name)
    assert (saved["color"], saved["workspace"], saved["instructions"]) == \
        ("#10b981", "/tmp/research", "Answer in short sentences.")
    pid = saved["project_id"]

    # move Alpha into it from the chat's menu
    open_menu(page, alpha).get_by_role("menuitem", name="Add to project…").click()
    page.locator("#menu").get_by_role("menuitem", name=name).click()
    folder.locator(f".session[data-sid='{alpha}']").wait_for()
    assert server.session(alpha, messages=0)["project_id"] == pid

    # tag Beta from its menu
    open_menu(page, beta).get_by_role("menuitem", name="Edit tags…").click()
    page.fill("#dialog-input", "#urgent 日本")
    page.keyboard.press("Enter")
    page.wait_for_selector(f".session[data-sid='{beta}'] .session-tag")
    assert page.locator(f".session[data-sid='{beta}'] .session-tag").all_inner_texts() == ["#urgent", "#日本"]
    assert server.session(beta, messages=0)["tags"] == ["urgent", "日本"]

    # filter by the project, then by the tag, then clear
    page.locator("#filter-bar .chip", has_text=name).click()
    page.wait_for_function(f"() => !document.querySelector(\".session[data-sid='{beta}']\")")
    assert visible_sids(page) == [alpha], (page.inner_text("#session-list"), server.get("/api/sessions").json())
    page.locator("#filter-bar .chip", has_text="#urgent").click()
    page.wait_for_function(f"() => !document.querySelector(\".session[data-sid='{alpha}']\")")
    assert visible_sids(page) == [beta]
    assert page.locator("#filter-bar .chip[aria-pressed='true']").inner_text() == "#urgent"
    page.locator("#filter-bar .chip", has_text="All chats").click()
    page.wait_for_selector(f".session[data-sid='{alpha}']")
    assert {alpha, beta, "d100"} <= set(visible_sids(page))

    # fold the folder: remembered on the server and after a reload
    folder.locator(".project-toggle").click()
    page.wait_for_selector(f".session[data-sid='{alpha}']", state="hidden")
    wait_until(lambda: project_row(server, name)["collapsed"] is True, message="collapsed saved")
    page.reload()
    page.wait_for_selector(f".session[data-sid='{beta}']")
    toggle = page.locator(f".project[data-pid='{pid}'] .project-toggle")
    assert toggle.get_attribute("aria-expanded") == "false"
    assert page.locator(f".session[data-sid='{alpha}']").is_hidden()
    toggle.focus()
    page.keyboard.press("ArrowRight")  # the keyboard opens it again
    page.wait_for_selector(f".session[data-sid='{alpha}']", state="visible")
    wait_until(lambda: project_row(server, name)["collapsed"] is False, message="expanded saved")


def test_a_new_chat_inside_a_project_is_saved_in_it(server, open_page):
    pid = server.post("/api/projects/create", {"name": "Garden", "workspace": "/tmp/garden"}).json()["project"]["project_id"]
    page = open_page(server)
    folder = page.locator(f".project[data-pid='{pid}']")
    folder.locator(".project-head").hover()
    folder.locator(".project-menu-btn").click()
    page.locator("#menu").get_by_role("menuitem", name="New chat in this project").click()
    folder.locator(".session-pending").wait_for()
    page.fill("#composer-input", "plant tomatoes when?")
    page.click("#send-btn")
    sid = sid_of(page)
    wait_reply_finished(page)
    meta = server.session(sid, messages=0)
    assert meta["project_id"] == pid and meta["workspace"] == "/tmp/garden"
    folder.locator(f".session[data-sid='{sid}'].active").wait_for()
    assert folder.locator(".session-pending").count() == 0
    # the plain New chat button starts a chat outside any project
    page.click("#new-chat")
    page.fill("#composer-input", "unrelated")
    page.click("#send-btn")
    page.wait_for_url(lambda url: "s=" in url and sid not in url)
    other = sid_of(page)
    wait_reply_finished(page)
    assert server.session(other, messages=0).get("project_id") is None


def test_phone_rows_chips_and_folders_are_44px_touch_targets(server, open_page):
    server.post("/api/projects/create", {"name": "Phone project"})
    page = open_page(server, viewport=PHONE, is_mobile=True, has_touch=True)
    page.click("#open-sidebar")
    page.wait_for_function("() => document.querySelector('#sidebar').getBoundingClientRect().left >= 0")
    page.wait_for_selector(".project-toggle")
    sizes = page.locator(".session-link, .session-menu-btn, .project-toggle, .project-menu-btn, .projects-new,"
                         " #filter-bar .chip").evaluate_all(
        "els => els.filter(e => e.getClientRects().length).map(e => { const r = e.getBoundingClientRect();"
        " return [e.className, r.width, r.height]; })")
    assert len(sizes) > 10
    small = [s for s in sizes if s[1] < 44 or s[2] < 44]
    assert small == []
    assert page.locator("#collapse-sidebar").is_hidden()  # the phone has its drawer instead
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_a_folder_whose_chats_are_pinned_counts_them_and_says_where_they_are(server, open_page):
    """A pinned chat is listed under Pinned; its project's folder still counts it and
    says where it is (a migrated upstream chat is often pinned and in a project)."""
    pid = server.post("/api/projects/create", {"name": "Pinned only 研究"}).json()["project"]["project_id"]
    assert server.post("/api/session/move", {"session_id": "pinned60", "project_id": pid}).status_code == 200
    page = open_page(server)
    folder = page.locator(f".project[data-pid='{pid}']")
    folder.wait_for()
    assert folder.locator(".project-count").inner_text().strip().endswith("1")
    assert folder.locator(".project-empty").inner_text() == "Its chat is under Pinned"
    assert group_of(page, "pinned60") == "Pinned"
    assert server.post("/api/session/move", {"session_id": "pinned60", "project_id": None}).status_code == 200
