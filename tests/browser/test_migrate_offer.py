"""The first-start offer to migrate from the upstream web UI, in a real browser."""
from __future__ import annotations

import pytest

from tests.upstream_state import build_upstream_state

pytestmark = pytest.mark.browser


def test_the_page_offers_the_migration_and_lists_the_chats_after_it(make_server, open_page):
    server = make_server()
    build_upstream_state(server.home / ".hermes" / "webui", big=False)
    server.start()
    page = open_page(server)
    offer = page.locator("#migrate-offer")
    offer.wait_for()
    assert "Found 10 chats" in offer.inner_text()
    page.click("#migrate-go")
    page.wait_for_selector(".session[data-sid='plain']")
    page.wait_for_function("() => !document.querySelector('#migrate-offer')")
    assert "Migration done: 8 imported" in page.inner_text("#toast")
    page.reload()
    page.wait_for_selector("html[data-migrate-checked]")
    page.wait_for_selector(".session[data-sid='plain']")
    assert page.locator("#migrate-offer").count() == 0  # migrated: not offered again


def test_not_now_hides_the_offer_for_this_browser(make_server, open_page):
    server = make_server()
    build_upstream_state(server.home / ".hermes" / "webui", big=False)
    server.start()
    page = open_page(server)
    page.click("#migrate-later")
    assert page.locator("#migrate-offer").count() == 0
    page.reload()
    page.wait_for_selector("html[data-migrate-checked]")
    assert page.evaluate("() => fetch('/api/migrate/status').then(r => r.json()).then(s => s.migrated)") is False
    assert page.locator("#migrate-offer").count() == 0


def test_export_all_chats_downloads_the_backup_archive(live_server, open_page, tmp_path):
    import zipfile
    sid = live_server.new_session(title="kept in the backup")
    page = open_page(live_server, f"/?s={sid}")
    page.click("#chat-menu-btn")
    with page.expect_download() as download:
        page.get_by_role("menuitem", name="Export all chats").click()
    path = tmp_path / "backup.zip"
    download.value.save_as(path)
    assert download.value.suggested_filename.startswith("hermes-webui-backup-")
    with zipfile.ZipFile(path) as zf:
        assert f"profiles/default/sessions/{sid}.json" in zf.namelist()
