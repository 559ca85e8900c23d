"""Messages an import, a migration or an old file left without a time or with a role the
page does not know: each shows readably (a labelled note, or a reply that says the role it
came with), never "undefined: …", and with no time rather than a wrong one."""
from __future__ import annotations

import json

import pytest

from ..helpers import LiveServer
from ..test_import_export import upload
from .conftest import write_session

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def odd_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("odd")
    # a file written before roles were settled on the way in: the page meets them raw
    write_session(tmp / "state" / "sessions", "raw_roles", "Raw roles", [
        {"role": "user", "content": "hello", "timestamp": 1_714_557_600},
        {"role": "narrator", "content": "The door creaks.", "timestamp": "yesterday"},
        {"content": "a line with no role"},
        {"role": "system", "content": "Be brief."},
        {"role": "tool", "content": "晴れ 22°C"},
    ])
    server = LiveServer(tmp).start()
    yield server
    server.stop()


def test_unknown_roles_and_missing_times_render_readably(odd_server, open_page):
    page = open_page(odd_server, "/?s=raw_roles")
    page.wait_for_selector("#messages .msg-other")
    text = page.locator("#messages").inner_text()
    assert "undefined" not in text and "narrator:" not in text
    labels = page.locator("#messages .msg-other .msg-label, #messages .msg-system .msg-label").all_inner_texts()
    assert labels == ["Message (narrator)", "Message", "System note", "Tool output"]
    assert page.locator("#messages .msg-other").nth(1).get_attribute("aria-label") == "Message"
    assert "a line with no role" in text and "晴れ 22°C" in text
    # only the one message that has a real time shows one ("yesterday" is none)
    assert page.locator("#messages time").count() == 1


def test_an_imported_chat_with_odd_roles_and_no_times_shows_no_times(odd_server, open_page):
    doc = {"title": "Story", "messages": [{"role": "user", "content": "begin"},
                                          {"role": "narrator", "content": "It was night."},
                                          {"role": "assistant", "content": "And then?"}]}
    r = upload(odd_server, json.dumps(doc).encode(), "story.json")
    assert r.status_code == 200, r.text
    page = open_page(odd_server, f"/?s={r.json()['sessions'][0]['session_id']}")
    page.wait_for_selector("#messages .msg-assistant >> nth=1")
    assert page.locator("#messages .msg-assistant").count() == 2
    assert page.locator("#messages .msg-assistant .source-role").all_inner_texts() == ["from “narrator”"]
    assert page.locator("#messages time").count() == 0   # none claims the time of the import
