"""Password auth, login cookies, CSRF and fail-closed settings (issue 8), all over HTTP
against a real server."""
from __future__ import annotations

import re
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from api import create_app
from api.config import Config

from .helpers import LiveServer, wait_until

PASSWORD = "correct horse battery staple"
DUMMY_QUERY = {"session_id": "dummy", "stream_id": "dummy", "path": "dummy", "q": "dummy", "name": "dummy"}


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory):
    """A fake-backend server whose password comes from HERMES_WEBUI_PASSWORD."""
    server = LiveServer(tmp_path_factory.mktemp("locked"), env={"HERMES_WEBUI_PASSWORD": PASSWORD}).start()
    yield server
    server.stop()


def own_origin(server: LiveServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def login(server: LiveServer, password: str = PASSWORD, headers: dict | None = None) -> tuple[requests.Session, str]:
    """A fresh client logged in to ``server``; returns it and its CSRF token."""
    http = requests.Session()
    r = http.post(server.url("/api/auth/login"), json={"password": password}, headers=headers or {}, timeout=30)
    assert r.status_code == 200, r.text
    return http, r.json()["csrf_token"]


def set_password_via_settings(server: LiveServer, password: str = PASSWORD) -> tuple[requests.Session, str]:
    http = requests.Session()
    r = http.post(server.url("/api/settings"), json={"password": password}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["password_set"] is True
    return http, r.json()["csrf_token"]


def fill_rule(rule) -> str:
    """The rule's path with every ``<converter:name>`` replaced by a dummy value."""
    def dummy(m: re.Match) -> str:
        conv = (m.group(1) or "default").lower()
        return {"int": "1", "float": "1.0", "path": "dummy/x", "uuid": "00000000-0000-0000-0000-000000000000"}.get(
            conv, "dummy")
    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>", dummy, rule.rule)


def protected_rules(tmp_path) -> list[tuple[str, str]]:
    """Every (method, path) of the app's ``/api/*`` and ``/v1/*`` rules that needs a login."""
    app = create_app(Config(state_dir=tmp_path / "urlmap", agent="fake"))
    try:
        out = []
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith(("/api/", "/v1/")) or rule.rule in ("/api/auth/login", "/api/auth/status"):
                continue
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                out.append((method, fill_rule(rule)))
        return out
    finally:
        close = getattr(app.extensions["hermes"].store, "close", None)
        if close:
            close()


# ---------------------------------------------------------------- the locked door


def test_every_api_and_v1_route_answers_401_without_a_login(locked_server, tmp_path):
    rules = protected_rules(tmp_path)
    paths = {p for _, p in rules}
    assert {"/api/sessions", "/api/chat/start", "/api/settings", "/api/auth/logout"} <= paths
    anonymous = requests.Session()
    forged = requests.Session()
    forged.cookies.set("hermes_login", "eyJpZCI6IngifQ.forged.signature")
    for method, path in rules + [("GET", "/api/no-such-route"), ("POST", "/v1/no-such-route")]:
        for client in (anonymous, forged):
            r = client.request(method, locked_server.url(path), params=DUMMY_QUERY, json={}, timeout=30)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers["Content-Type"].startswith("application/json"), (method, path)
            assert r.json()["error"], (method, path)


def test_with_a_login_every_get_route_is_reached(locked_server, tmp_path):
    http, _ = login(locked_server)
    for method, path in protected_rules(tmp_path):
        if method != "GET":
            continue
        with http.get(locked_server.url(path), params=DUMMY_QUERY, stream=True, timeout=30) as r:
            assert r.status_code not in (401, 403), (path, r.status_code)


def test_login_page_static_assets_and_health_stay_reachable(locked_server):
    anonymous = requests.Session()
    page = anonymous.get(locked_server.url("/login"), timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert "/static/login.js" in assets and "/static/login.css" in assets
    for asset in assets:
        assert anonymous.get(locked_server.url(asset), timeout=30).status_code == 200, asset
    root = anonymous.get(locked_server.url("/"), allow_redirects=False, timeout=30)
    assert root.status_code == 302 and root.headers["Location"].endswith("/login")
    health = anonymous.get(locked_server.url("/health"), timeout=30)
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    status = anonymous.get(locked_server.url("/api/auth/status"), timeout=30).json()
    assert status == {"auth_enabled": True, "logged_in": False}


def test_a_page_asked_for_without_a_login_is_where_the_login_returns_to(locked_server):
    anonymous = requests.Session()
    page = anonymous.get(locked_server.url("/?s=abc123"), allow_redirects=False, timeout=30)
    assert page.status_code == 302 and page.headers["Location"].endswith("/login?next=%2F%3Fs%3Dabc123")
    http, _ = login(locked_server)
    for asked, lands in (("/?s=abc123", "/?s=abc123"), ("//evil.example/x", "/"), ("/\\evil.example", "/"),
                         ("https://evil.example/", "/"), (None, "/")):
        r = http.get(locked_server.url("/login"), params={"next": asked} if asked else None,
                     allow_redirects=False, timeout=30)
        assert r.status_code == 302 and r.headers["Location"] in (lands, locked_server.url(lands)), (asked, r.headers)


def test_login_sets_a_hardened_cookie_and_opens_the_app(locked_server):
    http = requests.Session()
    r = http.post(locked_server.url("/api/auth/login"), json={"password": PASSWORD}, timeout=30)
    assert r.status_code == 200
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("hermes_login=")
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/", f"Max-Age={30 * 24 * 3600}"):
        assert attr in cookie, attr
    assert "Secure" not in cookie               # plain http, no trusted proxy
    token = r.json()["csrf_token"]
    assert http.get(locked_server.url("/api/sessions"), timeout=30).status_code == 200
    assert http.get(locked_server.url("/api/auth/status"), timeout=30).json() == {
        "auth_enabled": True, "logged_in": True, "csrf_token": token}
    page = http.get(locked_server.url("/"), allow_redirects=False, timeout=30)
    assert page.status_code == 200 and token in page.text     # the app page receives the token
    assert http.get(locked_server.url("/health"), timeout=30).json().keys() > {"status"}
    login_page = http.get(locked_server.url("/login"), allow_redirects=False, timeout=30)
    assert login_page.status_code == 302


def test_wrong_password_is_401_and_the_sixth_attempt_is_429_even_when_right(make_server):
    server = make_server(env={"HERMES_WEBUI_PASSWORD": PASSWORD}).start()
    for _ in range(5):
        r = server.post("/api/auth/login", {"password": "guess"})
        assert r.status_code == 401 and r.json() == {"error": "wrong password"}
    r = server.post("/api/auth/login", {"password": PASSWORD})
    assert r.status_code == 429 and "error" in r.json()
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert "Set-Cookie" not in r.headers
    assert server.get("/api/sessions").status_code == 401
    r = server.get("/api/sessions", headers={"Authorization": f"Bearer {PASSWORD}"})
    assert r.status_code == 429                  # the bearer door shares the limit


def test_concurrent_guesses_cannot_exceed_the_limit(make_server):
    server = make_server(env={"HERMES_WEBUI_PASSWORD": PASSWORD}).start()
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda i: requests.post(server.url("/api/auth/login"), json={"password": f"g{i}"},
                                                      timeout=30).status_code, range(12)))
    assert sorted(codes) == [401] * 5 + [429] * 7


def test_trusted_proxy_decides_client_address_and_secure_cookie(make_server):
    proxied = make_server(env={"HERMES_WEBUI_PASSWORD": PASSWORD},
                          args=("--trust-proxy", "--allowed-hosts", "chat.example.test")).start()
    direct = make_server(env={"HERMES_WEBUI_PASSWORD": PASSWORD}).start()
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "chat.example.test",
             "Origin": "https://chat.example.test"}
    r = proxied.post("/api/auth/login", {"password": PASSWORD}, headers=https)
    assert r.status_code == 200 and "Secure" in r.headers["Set-Cookie"]
    r = direct.post("/api/auth/login", {"password": PASSWORD}, headers={"X-Forwarded-Proto": "https"})
    assert r.status_code == 200 and "Secure" not in r.headers["Set-Cookie"]
    # Without --trust-proxy the forwarded headers are ignored: that Origin is foreign.
    assert direct.post("/api/auth/login", {"password": PASSWORD}, headers=https).status_code == 403
    # With it, the rate limit counts the forwarded client address.
    for _ in range(5):
        proxied.post("/api/auth/login", {"password": "guess"}, headers={"X-Forwarded-For": "10.0.0.1"})
    assert proxied.post("/api/auth/login", {"password": PASSWORD},
                        headers={"X-Forwarded-For": "10.0.0.1"}).status_code == 429
    assert proxied.post("/api/auth/login", {"password": PASSWORD},
                        headers={"X-Forwarded-For": "10.0.0.2"}).status_code == 200


# ---------------------------------------------------------------- CSRF


def test_csrf_with_auth_on_needs_same_origin_and_the_token(locked_server):
    http, token = login(locked_server)
    mine = own_origin(locked_server)
    before = len(http.get(locked_server.url("/api/sessions"), timeout=30).json()["sessions"])
    refused = [
        {"Origin": "http://evil.example", "X-CSRF-Token": token},
        {"Origin": "null", "X-CSRF-Token": token},
        {"Sec-Fetch-Site": "cross-site", "X-CSRF-Token": token},
        {"Sec-Fetch-Site": "same-site", "X-CSRF-Token": token},
        {},                                                   # neither Origin nor token
        {"Origin": mine},                                     # own Origin, token missing
        {"Origin": mine, "X-CSRF-Token": "wrong" + token},    # own Origin, token wrong
        {"X-CSRF-Token": "wrong"},
    ]
    for headers in refused:
        r = http.post(locked_server.url("/api/session/new"), json={}, headers=headers, timeout=30)
        assert r.status_code == 403, headers
        assert r.json()["error"]
    accepted = [
        {"Origin": mine, "X-CSRF-Token": token},
        {"Sec-Fetch-Site": "same-origin", "X-CSRF-Token": token},
        {"X-CSRF-Token": token},                              # non-browser client with the token
    ]
    for headers in accepted:
        r = http.post(locked_server.url("/api/session/new"), json={}, headers=headers, timeout=30)
        assert r.status_code == 200, (headers, r.text)
    after = len(http.get(locked_server.url("/api/sessions"), timeout=30).json()["sessions"])
    assert after == before + len(accepted)
    r = requests.post(locked_server.url("/api/auth/login"), json={"password": PASSWORD},
                      headers={"Origin": "http://evil.example"}, timeout=30)
    assert r.status_code == 403 and "Set-Cookie" not in r.headers


def test_csrf_with_auth_off_refuses_only_foreign_origins(live_server):
    before = len(live_server.get("/api/sessions").json()["sessions"])
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"}, {"Origin": "http://127.0.0.1:1"}):
        r = live_server.post("/api/session/new", {}, headers=headers)
        assert r.status_code == 403, headers
    for headers in ({}, {"Origin": own_origin(live_server)}, {"Sec-Fetch-Site": "same-origin"},
                    {"Sec-Fetch-Site": "none"}):
        assert live_server.post("/api/session/new", {}, headers=headers).status_code == 200, headers
    assert len(live_server.get("/api/sessions").json()["sessions"]) == before + 4
    assert live_server.get("/api/auth/status").json() == {"auth_enabled": False, "logged_in": False}


def test_bearer_password_opens_the_api_without_a_csrf_token(locked_server):
    bearer = {"Authorization": f"Bearer {PASSWORD}"}
    assert locked_server.get("/api/sessions", headers=bearer).status_code == 200
    assert locked_server.post("/api/session/new", {}, headers=bearer).status_code == 200
    assert locked_server.post("/api/session/new", {}, headers={**bearer, "Origin": "http://evil.example"}
                              ).status_code == 403


# ---------------------------------------------------------------- login life cycle


def test_logout_revokes_the_cookie_even_when_replayed_after_restart(make_server):
    server = make_server(env={"HERMES_WEBUI_PASSWORD": PASSWORD}).start()
    http, token = login(server)
    value = http.cookies["hermes_login"]
    r = http.post(server.url("/api/auth/logout"), headers={"X-CSRF-Token": token}, timeout=30)
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert "hermes_login=;" in r.headers["Set-Cookie"] or 'hermes_login="";' in r.headers["Set-Cookie"]
    replay = requests.Session()
    replay.cookies.set("hermes_login", value)
    assert replay.get(server.url("/api/sessions"), timeout=30).status_code == 401
    server.stop()
    server.start()
    assert replay.get(server.url("/api/sessions"), timeout=30).status_code == 401


def test_login_survives_a_restart_and_the_key_file_is_private(make_server):
    server = make_server(env={"HERMES_WEBUI_PASSWORD": PASSWORD}).start()
    http, token = login(server)
    server.stop()
    server.start()
    status = http.get(server.url("/api/auth/status"), timeout=30).json()
    assert status == {"auth_enabled": True, "logged_in": True, "csrf_token": token}
    assert stat.S_IMODE((server.state_dir / "auth_secret.key").stat().st_mode) == 0o600


def test_login_ends_after_its_configured_lifetime(make_server):
    server = make_server(env={"HERMES_WEBUI_PASSWORD": PASSWORD}, args=("--login-lifetime-seconds", "2")).start()
    http = requests.Session()
    r = http.post(server.url("/api/auth/login"), json={"password": PASSWORD}, timeout=30)
    assert "Max-Age=2" in r.headers["Set-Cookie"]
    assert http.get(server.url("/api/sessions"), timeout=30).status_code == 200
    replay = requests.Session()               # ignores Max-Age: the server must refuse by itself
    replay.cookies.set("hermes_login", http.cookies["hermes_login"])
    wait_until(lambda: replay.get(server.url("/api/sessions"), timeout=30).status_code == 401,
               timeout=8, interval=0.2, message="the login to expire")


# ---------------------------------------------------------------- passwords in settings


def test_password_set_in_settings_is_stored_hashed_and_locks_the_api(make_server):
    server = make_server().start()
    settings_file = server.state_dir / "settings.json"
    r = server.post("/api/settings", {"password": "short"})
    assert r.status_code == 400 and not settings_file.exists()
    assert server.post("/api/settings", {"password": 12345678}).status_code == 400
    owner, token = set_password_via_settings(server)
    stored = settings_file.read_text()
    assert PASSWORD not in stored and '"password_hash": "scrypt$' in stored
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600
    assert owner.get(server.url("/api/sessions"), timeout=30).status_code == 200   # the setter stays in
    assert requests.get(server.url("/api/sessions"), timeout=30).status_code == 401
    assert requests.post(server.url("/api/auth/login"), json={"password": "nope-nope"}, timeout=30).status_code == 401
    other, _ = login(server)
    assert other.get(server.url("/api/settings"), timeout=30).json()["password_source"] == "settings"


def test_changing_the_password_needs_a_login_and_ends_other_logins(make_server):
    server = make_server().start()
    owner, owner_token = set_password_via_settings(server)
    settings_file = server.state_dir / "settings.json"
    before = settings_file.read_bytes()
    r = requests.post(server.url("/api/settings"), json={"password": "an attacker's choice"}, timeout=30)
    assert r.status_code == 401 and settings_file.read_bytes() == before
    r = owner.post(server.url("/api/settings"), json={"password": "a new secret"}, timeout=30)
    assert r.status_code == 403 and settings_file.read_bytes() == before       # no CSRF token
    bystander, _ = login(server)
    r = owner.post(server.url("/api/settings"), json={"password": "a new secret"},
                   headers={"X-CSRF-Token": owner_token}, timeout=30)
    assert r.status_code == 200 and r.json()["csrf_token"] != owner_token
    assert owner.get(server.url("/api/sessions"), timeout=30).status_code == 200
    assert bystander.get(server.url("/api/sessions"), timeout=30).status_code == 401
    assert requests.post(server.url("/api/auth/login"), json={"password": PASSWORD}, timeout=30).status_code == 401
    login(server, "a new secret")


def test_password_from_the_environment_cannot_be_changed_in_settings(locked_server):
    http, token = login(locked_server)
    r = http.post(locked_server.url("/api/settings"), json={"password": "something else"},
                  headers={"X-CSRF-Token": token}, timeout=30)
    assert r.status_code == 409 and "HERMES_WEBUI_PASSWORD" in r.json()["error"]
    r = http.post(locked_server.url("/api/settings"), json={"settings": {"theme": "dark"}},
                  headers={"X-CSRF-Token": token}, timeout=30)
    assert r.status_code == 200 and r.json()["settings"] == {"theme": "dark"}
    assert r.json()["password_source"] == "config"


def test_require_password_accepts_a_password_stored_in_settings(make_server):
    server = make_server().start()
    set_password_via_settings(server)
    server.stop()
    server.args.append("--require-password")
    server.start()
    assert server.get("/api/sessions").status_code == 401


# ---------------------------------------------------------------- fail closed


@pytest.mark.parametrize("damage", ["empty", "half"])
def test_a_damaged_settings_file_refuses_to_start(make_server, damage):
    server = make_server().start()
    set_password_via_settings(server)
    server.stop()
    settings_file = server.state_dir / "settings.json"
    whole = settings_file.read_bytes()
    damaged = b"" if damage == "empty" else whole[: len(whole) // 2]
    settings_file.write_bytes(damaged)
    with pytest.raises(RuntimeError, match="did not start"):
        server.start()
    assert server.proc.wait(timeout=15) == 2
    log = "".join(server.output)
    assert "settings.json" in log and "damaged" in log and "Traceback" not in log
    assert settings_file.read_bytes() == damaged          # left for the owner to repair


def test_settings_damaged_while_running_stays_locked_and_untouched(make_server):
    server = make_server().start()
    owner, token = set_password_via_settings(server)
    settings_file = server.state_dir / "settings.json"
    half = settings_file.read_bytes()[:40]
    settings_file.write_bytes(half)
    r = owner.post(server.url("/api/settings"), json={"settings": {"theme": "dark"}},
                   headers={"X-CSRF-Token": token}, timeout=30)
    assert r.status_code == 500 and "damaged" in r.json()["error"]
    assert settings_file.read_bytes() == half
    assert requests.get(server.url("/api/sessions"), timeout=30).status_code == 401
    assert owner.get(server.url("/api/sessions"), timeout=30).status_code == 200


# ---------------------------------------------------------------- secrets stay secret


def _record(session: requests.Session, seen: list) -> requests.Session:
    session.hooks["response"].append(lambda r, *a, **k: seen.append(r))
    return session


def test_password_and_hash_never_appear_in_responses_or_the_log(make_server):
    server = make_server(args=("--log-level", "DEBUG")).start()
    seen: list[requests.Response] = []
    owner = _record(requests.Session(), seen)
    r = owner.post(server.url("/api/settings"), json={"password": PASSWORD}, timeout=30)
    token = r.json()["csrf_token"]
    stranger = _record(requests.Session(), seen)
    stranger.post(server.url("/api/auth/login"), json={"password": PASSWORD + "x"}, timeout=30)
    stranger.post(server.url("/api/auth/login"), json={"password": PASSWORD}, timeout=30)
    stranger.get(server.url("/api/sessions"), headers={"Authorization": f"Bearer {PASSWORD}"}, timeout=30)
    for path in ("/api/settings", "/api/auth/status", "/health", "/", "/login", "/static/login.js",
                 "/api/sessions"):
        owner.get(server.url(path), timeout=30)
        requests.get(server.url(path), timeout=30, hooks={"response": lambda r, *a, **k: seen.append(r)})
    owner.post(server.url("/api/settings"), json={"settings": {"theme": "dark"}},
               headers={"X-CSRF-Token": token}, timeout=30)
    owner.post(server.url("/api/auth/logout"), headers={"X-CSRF-Token": token}, timeout=30)
    server.stop()
    stored = (server.state_dir / "settings.json").read_text()
    hashed = re.search(r'"(scrypt\$[^"]+)"', stored).group(1)
    salt, key = hashed.split("$")[4:6]
    secret_key = (server.state_dir / "auth_secret.key").read_text().strip()
    log = "".join(server.output)
    assert len(seen) > 15 and "login from" in log
    for secret in (PASSWORD, hashed, salt, key, secret_key):
        assert secret not in log
        for resp in seen:
            assert secret not in resp.text, resp.url
            assert all(secret not in v for v in resp.headers.values()), resp.url


def test_password_from_the_environment_is_never_logged(make_server):
    server = make_server(env={"HERMES_WEBUI_PASSWORD": PASSWORD}, args=("--log-level", "DEBUG")).start()
    login(server)
    requests.post(server.url("/api/auth/login"), json={"password": "wrong one"}, timeout=30)
    server.stop()
    assert PASSWORD not in "".join(server.output)


def test_require_password_without_one_exits_2(tmp_path):
    server = LiveServer(tmp_path, args=("--require-password",))
    with pytest.raises(RuntimeError):
        server.start(timeout=30)
    assert server.proc.wait(timeout=15) == 2
    assert "--require-password" in "".join(server.output)
