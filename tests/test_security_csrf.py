"""CSRF with auth off (issue 14, item 8): what a cross-site form or an old browser can
send is refused; the page, API clients and JSON callers keep working. Real server, HTTP."""
from __future__ import annotations

import json
import re

import requests

from .helpers import LiveServer


def session_count(server: LiveServer) -> int:
    return len(server.get("/api/sessions").json()["sessions"])


def page_token(server: LiveServer) -> str:
    page = requests.get(server.url("/"), timeout=30).text
    return re.search(r'<meta name="csrf-token" content="([^"]*)"', page).group(1)


def form_post(server: LiveServer, path: str, body: dict, content_type: str = "text/plain", **headers):
    """What an HTML form can send: a JSON-looking text/plain body, no custom headers."""
    return requests.post(server.url(path), data=json.dumps(body).encode(), timeout=30,
                         headers={"Content-Type": content_type, **headers})


def test_a_foreign_referer_counts_as_cross_site(live_server):
    before = session_count(live_server)
    for referer in ("http://evil.example/attack.html", f"http://evil.example:{live_server.port}/",
                    "http://127.0.0.1:1/", "null-not-a-url"):
        r = form_post(live_server, "/api/session/new", {"title": "forged"}, Referer=referer)
        assert r.status_code == 403, (referer, r.status_code)
        assert r.json()["error"]
    assert session_count(live_server) == before


def test_without_origin_or_referer_a_form_body_is_refused(live_server):
    before = session_count(live_server)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        r = form_post(live_server, "/api/session/new", {"title": "forged"}, content_type)
        assert r.status_code == 403, content_type
        assert "Content-Type: application/json" in r.json()["error"]
    sid = live_server.new_session()
    r = requests.post(live_server.url("/api/upload"), data={"session_id": sid}, timeout=30,
                      files={"file": ("planted.txt", b"planted")})
    assert r.status_code == 403
    assert session_count(live_server) == before + 1


def test_json_callers_the_page_token_and_own_pages_pass(live_server):
    token = page_token(live_server)
    assert len(token) >= 32                       # the page carries a token even with auth off
    assert requests.get(live_server.url("/api/auth/status"), timeout=30).json() == {
        "auth_enabled": False, "logged_in": False}
    before = session_count(live_server)
    mine = f"http://127.0.0.1:{live_server.port}"
    accepted = [
        ({"Content-Type": "application/json"}, "json, no Origin: not a form"),
        ({"Content-Type": "text/plain", "X-CSRF-Token": token}, "the page's token"),
        ({"Content-Type": "text/plain", "Referer": mine + "/"}, "our own page as Referer"),
        ({"Content-Type": "text/plain", "Origin": mine}, "our own Origin"),
    ]
    for headers, why in accepted:
        r = requests.post(live_server.url("/api/session/new"), data=b"{}", headers=headers, timeout=30)
        assert r.status_code == 200, (why, r.text)
    sid = live_server.new_session()
    r = requests.post(live_server.url("/api/upload"), data={"session_id": sid}, headers={"X-CSRF-Token": token},
                      files={"file": ("ok.txt", b"ok")}, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(live_server.url("/api/session/new"), data=b"{}", timeout=30,
                      headers={"Content-Type": "text/plain", "X-CSRF-Token": "wrong" + token})
    assert r.status_code == 403
    assert session_count(live_server) == before + len(accepted) + 1


def test_a_foreign_origin_wins_over_an_own_referer(live_server):
    r = requests.post(live_server.url("/api/session/new"), json={}, timeout=30,
                      headers={"Origin": "http://evil.example",
                               "Referer": f"http://127.0.0.1:{live_server.port}/"})
    assert r.status_code == 403
