"""Agent control in a real browser (issue 15): what a person sees and clicks."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_a_misconfigured_server_shows_an_amber_footer_with_the_fix(make_server, open_page):
    server = make_server(agent="openai").start()
    page = open_page(server)
    info = page.locator("#backend-info.warn")
    info.wait_for()
    text = page.inner_text("#backend-text")
    assert "--base-url" in text and "Ollama" in text
    color = page.eval_on_selector("#backend-info .dot", "e => getComputedStyle(e).backgroundColor")
    ok_color = page.evaluate("() => getComputedStyle(document.documentElement).getPropertyValue('--warn')")
    assert color != "rgba(0, 0, 0, 0)" and ok_color.strip()
    assert not page.locator("#backend-info.ok").count()
