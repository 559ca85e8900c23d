"""Never lose the thread, in a real browser: a network drop mid-reply shows the
Reconnecting banner and resumes with Last-Event-ID without duplicating text; a server
restart mid-reply shows the banner, then the partial reply marked interrupted, and the
user can carry on."""
from __future__ import annotations

import socket

import pytest

from ..helpers import fake_script, wait_until
from .conftest import assistant_texts, sid_of, tokens, wait_reply_finished
from .netproxy import CuttableProxy

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream_last_seq(server, stream_id: str) -> int:
    r = server.get("/api/chat/stream/status", params={"stream_id": stream_id})
    return r.json()["last_seq"] if r.status_code == 200 else 0


def test_network_drop_resumes_with_last_event_id_without_duplicates(live_server, open_page, console):
    console.allow(r"net::ERR_")  # requests that fail while the network is down
    proxy = CuttableProxy(live_server.port)
    try:
        page = open_page(proxy)
        stream_requests = []
        page.on("request", lambda r: stream_requests.append(r.headers) if "/api/chat/stream?" in r.url else None)
        page.fill("#composer-input", fake_script(tokens=60, delay_ms=100))
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelector('.msg-assistant.streaming')?.innerText.includes('t4')")
        status = live_server.get("/api/session/status", params={"session_id": sid_of(page)}).json()
        stream_id = status["active_stream_id"]
        proxy.cut()
        page.wait_for_selector("#banner:not([hidden])")
        assert "Reconnecting" in page.inner_text("#banner")
        seen = stream_last_seq(live_server, stream_id)
        wait_until(lambda: stream_last_seq(live_server, stream_id) >= seen + 8, message="the stream to go on")
        proxy.restore()
        page.wait_for_selector("#banner", state="hidden")
        wait_reply_finished(page)
        assert assistant_texts(page) == [tokens(60)]  # every token exactly once
        assert page.locator(".msg-user").count() == 1
        resumed = [h for h in stream_requests[1:] if "last-event-id" in h]
        assert resumed and int(resumed[0]["last-event-id"]) >= 5
    finally:
        proxy.close()


def test_server_restart_mid_stream_shows_banner_then_interrupted_reply(make_server, open_page, console):
    console.allow(r"net::ERR_")  # requests that fail while the server is down
    port = free_port()
    server = make_server(args=("--port", str(port))).start()
    page = open_page(server)
    page.fill("#composer-input", fake_script(tokens=200, delay_ms=50))
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('.msg-assistant.streaming')?.innerText.includes('t40')")
    sid = sid_of(page)
    server.kill()
    page.wait_for_selector("#banner:not([hidden])")
    assert "Reconnecting" in page.inner_text("#banner")
    server.start()
    assert server.port == port
    # The page finds the turn settled by the restarted server and shows it as interrupted.
    page.wait_for_selector(".msg-assistant[data-status='interrupted'] .badge-interrupted")
    page.wait_for_selector("#banner", state="hidden")
    assert page.locator(".msg-user[data-status='interrupted']").count() == 0  # only the reply was cut (issue 17)
    partial = assistant_texts(page)[0]
    saved = server.session(sid)["messages"]
    assert [m["status"] for m in saved] == ["interrupted", "interrupted"]
    assert partial == saved[1]["content"].strip()
    assert partial.startswith("t0 t1 t2") and "t199" not in partial
    # Continue extends the interrupted reply in its own bubble.
    page.click(".resume-notice button")
    page.wait_for_selector(".msg-assistant.streaming")
    wait_reply_finished(page, 1, timeout=30_000)
    assert page.locator(".msg-assistant").count() == 1
    assert assistant_texts(page)[-1].startswith(partial + " t0 t1") and "Continue." not in assistant_texts(page)[-1]
    assert page.is_hidden("#banner")
