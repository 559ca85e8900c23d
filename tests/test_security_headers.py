"""Security headers on every kind of response, and a login page that needs no inline code
(issue 8), checked over HTTP against a real server."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest
import requests

from .helpers import fake_script, stream_events

PASSWORD = "correct horse battery staple"


def csp_directives(header: str) -> dict[str, list[str]]:
    out = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def assert_hardened(resp: requests.Response) -> None:
    where = f"{resp.request.method} {resp.url} -> {resp.status_code}"
    csp = csp_directives(resp.headers.get("Content-Security-Policy", ""))
    assert csp.get("default-src") == ["'self'"], where
    assert csp.get("script-src") == ["'self'"], where          # no inline, no eval
    assert csp.get("style-src") == ["'self'"], where
    assert csp.get("frame-ancestors") == ["'none'"], where
    assert csp.get("base-uri") == ["'none'"], where
    assert csp.get("object-src") == ["'none'"], where
    assert resp.headers.get("X-Content-Type-Options") == "nosniff", where
    assert resp.headers.get("Referrer-Policy") in ("no-referrer", "same-origin"), where
    assert resp.headers.get("X-Frame-Options") == "DENY", where


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    from .helpers import LiveServer
    server = LiveServer(tmp_path_factory.mktemp("locked"), env={"HERMES_WEBUI_PASSWORD": PASSWORD}).start()
    yield server
    server.stop()


def test_every_kind_of_response_is_hardened_with_auth_off(live_server):
    sid = live_server.new_session()
    responses = [
        live_server.get("/"),
        live_server.get("/static/login.js"),
        live_server.get("/static/login.css"),
        live_server.get("/static/no-such-file.js"),                      # 404
        live_server.get("/health"),
        live_server.get("/api/sessions"),
        live_server.get("/api/session", params={"session_id": "../bad"}),  # 400
        live_server.get("/api/no-such-route"),                           # 404 JSON
        live_server.post("/api/session/new", {}, headers={"Origin": "http://evil.example"}),   # 403
        live_server.http.put(live_server.url("/api/sessions"), json={}, timeout=30),           # 405
        live_server.post("/api/auth/login", {"password": "x"}),          # 400: no password set
        live_server.get("/login", allow_redirects=False),                # 302 to the app
    ]
    stream_id = live_server.start_chat(sid, fake_script(tokens=2))
    stream_events(live_server, stream_id)
    with requests.get(live_server.url("/api/chat/stream"), params={"stream_id": stream_id}, stream=True,
                      timeout=30) as sse:
        responses.append(sse)
    assert {r.status_code for r in responses} >= {200, 302, 400, 403, 404, 405}
    for resp in responses:
        assert_hardened(resp)


def test_every_kind_of_response_is_hardened_with_auth_on(locked):
    http = requests.Session()
    responses = [
        http.get(locked.url("/"), allow_redirects=False),                 # 302 to /login
        http.get(locked.url("/login")),
        http.get(locked.url("/api/sessions")),                            # 401
        http.post(locked.url("/api/auth/login"), json={"password": "wrong"}),   # 401
        http.post(locked.url("/api/auth/login"), json={"password": PASSWORD}),  # 200 + cookie
    ]
    token = responses[-1].json()["csrf_token"]
    responses += [
        http.get(locked.url("/")),
        http.post(locked.url("/api/session/new"), json={}),                # 403: no token
        http.post(locked.url("/api/session/new"), json={}, headers={"X-CSRF-Token": token}),
        http.get(locked.url("/api/auth/status")),
    ]
    assert {r.status_code for r in responses} >= {200, 302, 401, 403}
    for resp in responses:
        assert_hardened(resp)


def test_auth_answers_are_never_cached(locked):
    for resp in (requests.get(locked.url("/api/auth/status"), timeout=30),
                 requests.post(locked.url("/api/auth/login"), json={"password": PASSWORD}, timeout=30),
                 requests.get(locked.url("/login"), timeout=30)):
        assert "no-store" in resp.headers.get("Cache-Control", ""), resp.url


class _InlineFinder(HTMLParser):
    """Collects what a script-src/style-src 'self' policy would block."""

    def __init__(self):
        super().__init__()
        self.problems: list[str] = []
        self.assets: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in attrs:
            if name.startswith("on") or name == "style":
                self.problems.append(f"<{tag} {name}=…>")
        if tag == "style":
            self.problems.append("<style>")
        if tag == "script":
            if not attrs.get("src"):
                self.problems.append("<script> without src")
            else:
                self.assets.append(attrs["src"])
            self._in_script = True
        if tag == "link" and attrs.get("rel") == "stylesheet":
            self.assets.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.problems.append("inline script text")


def test_login_page_works_under_its_own_policy(locked):
    page = requests.get(locked.url("/login"), timeout=30)
    assert page.status_code == 200
    finder = _InlineFinder()
    finder.feed(page.text)
    assert finder.problems == []
    assert sorted(finder.assets) == ["/static/js/theme.js", "/static/login.css", "/static/login.js"]
    types = {"/static/js/theme.js": "javascript", "/static/login.js": "javascript", "/static/login.css": "text/css"}
    for asset in finder.assets:                     # nosniff needs the right MIME types
        resp = requests.get(locked.url(asset), timeout=30)
        assert resp.status_code == 200 and types[asset] in resp.headers["Content-Type"], asset
