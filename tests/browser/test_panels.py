"""The side panel's tabs (Files, Skills, Memory), the profile switcher and the Settings
dialog in a real browser. Changes made in the page are checked through the API, and
changes made through the API are checked in the page."""
from __future__ import annotations

import re
import uuid

import pytest
import requests
from playwright.sync_api import expect

from .conftest import assistant_texts, wait_reply_finished, wait_title

pytestmark = pytest.mark.browser
PASSWORD = "a long enough secret"


def open_panel(page, tab: str):
    """Show the side panel (it starts closed in a fresh browser) on ``tab``."""
    page.click("#toggle-workspace")
    page.get_by_role("tab", name=tab).click()
    expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
    return page.locator(f"#tabpanel-{tab.lower()}")


def test_tabs_switch_and_the_files_tab_lists_and_previews_a_file(live_server, open_page):
    sid = live_server.new_session(title="Files chat")
    r = live_server.post("/api/file/create", {"session_id": sid, "path": "notes.txt",
                                              "content": "line one\nline two from the API\n"})
    assert r.status_code == 200, r.text
    page = open_page(live_server, f"/?s={sid}")
    wait_title(page, "Files chat")
    expect(page.locator("#workspace-panel")).to_be_hidden()
    page.click("#toggle-workspace")
    files = page.locator("#tabpanel-files")
    expect(files).to_be_visible()
    files.get_by_role("button", name="notes.txt").click()
    preview = files.get_by_role("region", name="Preview")
    expect(preview.locator("pre")).to_have_text("line one\nline two from the API\n")
    # Tabs: a click shows one panel and hides the others; arrow keys move along them.
    page.get_by_role("tab", name="Skills").click()
    expect(page.locator("#tabpanel-skills")).to_be_visible()
    expect(files).to_be_hidden()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Memory")).to_be_focused()
    expect(page.locator("#tabpanel-memory")).to_be_visible()
    expect(page.locator("#tabpanel-memory textarea").first).to_be_visible()
    page.keyboard.press("Home")
    expect(files).to_be_visible()
    expect(preview.locator("pre")).to_have_text(re.compile("line two from the API"))  # kept while hidden
    # The choice survives a reload; closing the panel hands focus back to its button.
    page.reload()
    page.wait_for_selector("html[data-ready]")
    expect(page.locator("#tabpanel-files").get_by_role("button", name="notes.txt")).to_be_visible()
    page.click("#close-workspace")
    expect(page.locator("#workspace-panel")).to_be_hidden()
    expect(page.locator("#toggle-workspace")).to_be_focused()


def test_a_skill_and_a_memory_note_round_trip_through_the_panel(live_server, open_page):
    name = f"greeter-{uuid.uuid4().hex[:6]}"
    content = f"---\nname: {name}\ndescription: Greets people\n---\n\nSay hello.\n"
    r = live_server.post("/api/skills/save", {"name": name, "category": "social", "content": content})
    assert r.status_code == 200, r.text
    r = live_server.post("/api/memory/write", {"file": "MEMORY.md", "content": "The user likes tea.\n"})
    assert r.status_code == 200, r.text
    page = open_page(live_server)
    skills = open_panel(page, "Skills")
    skills.locator(".hp-skill", has_text=name).click()
    editor = skills.get_by_role("textbox", name="SKILL.md")
    expect(editor).to_have_value(content)
    editor.fill(content.replace("Say hello.", "Say hello, then ask how they are."))
    skills.get_by_role("button", name="Save").click()
    expect(skills.get_by_role("status")).to_have_text(f"Saved {name}.")
    saved = live_server.get("/api/skills/content", params={"name": name}).json()["skill"]
    assert "then ask how they are" in saved["content"] and saved["category"] == "social"
    # A new skill: the template's front matter follows the name typed.
    skills.get_by_role("button", name="New skill").click()
    new_name = f"{name}-2"
    skills.get_by_role("textbox", name="Skill name").fill(new_name)
    skills.get_by_role("button", name="Save").click()
    expect(skills.locator(".hp-skill", has_text=new_name)).to_be_visible()
    assert live_server.get("/api/skills/content", params={"name": new_name}).status_code == 200

    page.get_by_role("tab", name="Memory").click()
    memory = page.locator("#tabpanel-memory")
    notes = memory.get_by_role("textbox", name="Agent notes (MEMORY.md)")
    expect(notes).to_have_value("The user likes tea.\n")
    notes.fill("The user likes green tea.\n")
    memory.locator(".hp-group", has=page.get_by_label("Agent notes (MEMORY.md)")).get_by_role("button", name="Save").click()
    expect(memory.get_by_role("status")).to_have_text("Saved MEMORY.md.")
    files = {f["file"]: f["content"] for f in live_server.get("/api/memory").json()["files"]}
    assert files["MEMORY.md"] == "The user likes green tea.\n"


def test_switching_profile_shows_that_profiles_chats(live_server, open_page):
    work = f"work-{uuid.uuid4().hex[:6]}"
    assert live_server.post("/api/profile/create", {"name": work}).status_code == 200
    other = requests.Session()  # a client of its own, so the shared one stays on "default"
    assert other.post(live_server.url("/api/profile/switch"), json={"name": work}).ok
    assert other.post(live_server.url("/api/session/new"), json={"title": "Only at work"}).ok
    home_sid = live_server.new_session(title="Only at home")
    page = open_page(live_server, f"/?s={home_sid}")
    wait_title(page, "Only at home")
    expect(page.locator("#profile-name")).to_have_text("default")
    page.click("#profile-btn")
    dialog = page.get_by_role("dialog", name="Profiles")
    dialog.get_by_role("combobox", name="Active profile").select_option(work)
    expect(dialog).to_be_hidden()
    expect(page.locator("#profile-name")).to_have_text(work)
    expect(page.locator(".session-title")).to_have_text(["Only at work"])
    assert page.url == live_server.url("/")  # the other profile's chat is closed
    # A chat started here belongs to this profile.
    page.fill("#composer-input", "hello at work")
    page.keyboard.press("Enter")
    wait_reply_finished(page)
    titles = [s["title"] for s in other.get(live_server.url("/api/sessions")).json()["sessions"]]
    assert "Only at home" not in titles and len(titles) == 2
    # And back: the default profile's chats again.
    page.click("#profile-btn")
    dialog.get_by_role("combobox", name="Active profile").select_option("default")
    expect(page.locator("#profile-name")).to_have_text("default")
    expect(page.locator(".session-title", has_text="Only at home")).to_be_visible()
    expect(page.locator(".session-title", has_text="Only at work")).to_have_count(0)


def test_settings_sets_a_password_then_login_is_required(make_server, open_page):
    server = make_server().start()
    page = open_page(server)
    token = page.get_attribute('meta[name="csrf-token"]', "content")   # auth off: the server's page token
    assert token and token != "__CSRF_TOKEN__"
    page.click("#settings-btn")
    dialog = page.get_by_role("dialog", name="Settings")
    expect(dialog.locator("#settings-auth-status")).to_contain_text("No password is set")
    expect(dialog.get_by_role("button", name="Log out")).to_be_hidden()
    expect(dialog.get_by_label("Theme")).to_be_focused()     # the dialog opens on its first setting
    pw = dialog.get_by_label("New password", exact=True)
    pw.fill("short")
    dialog.get_by_label("Repeat the new password").fill("short")
    dialog.get_by_role("button", name="Set password").click()
    expect(dialog.get_by_role("alert")).to_have_text("The password needs at least 8 characters.")
    pw.fill(PASSWORD)
    dialog.get_by_label("Repeat the new password").fill(PASSWORD + "!")
    dialog.get_by_role("button", name="Set password").click()
    expect(dialog.get_by_role("alert")).to_have_text("The two passwords differ.")
    dialog.get_by_label("Repeat the new password").fill(PASSWORD)
    dialog.get_by_role("button", name="Set password").click()
    expect(dialog.get_by_role("status")).to_contain_text("Password saved")
    expect(dialog.get_by_role("button", name="Log out")).to_be_visible()
    assert server.get("/api/auth/status").json()["auth_enabled"] is True
    # The page took the new CSRF token: its POSTs still pass (they would get 403 without it).
    assert page.get_attribute('meta[name="csrf-token"]', "content")
    dialog.get_by_role("button", name="Close", exact=True).click()
    # Closing hands the focus back to the Settings button (the dialog's close event):
    # wait for that, or Enter below could land on the button and open Settings again.
    expect(dialog).to_be_hidden()
    expect(page.locator("#settings-btn")).to_be_focused()
    page.fill("#composer-input", "still works")
    page.click("#send-btn")  # a click, not Enter: the key goes wherever the focus is at that moment
    wait_reply_finished(page)
    assert assistant_texts(page) == ["echo: still works"]
    # A browser that has not logged in is sent to the login page.
    stranger = page.context.browser.new_context()
    try:
        other = stranger.new_page()
        other.goto(server.url("/"))
        expect(other).to_have_url(re.compile(r"/login"))
    finally:
        stranger.close()
    # Log out, then log in again: back to the chat.
    page.click("#settings-btn")
    dialog.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login"))
    page.reload()
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("#login-password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("html[data-ready]")
    expect(page.locator("#composer-input")).to_be_visible()
    expect(page.locator(".session-title")).to_have_text(["still works"])
