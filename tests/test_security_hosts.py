"""DNS rebinding (issue 14, item 1): only the names the server is meant to be reached by
are answered, and Origin is compared with that list, not with the request's own Host.
Every test runs a real server and talks HTTP to it."""
from __future__ import annotations

import socket

import pytest
import requests

from .helpers import LiveServer

PASSWORD = "correct horse battery staple"


def with_host(server: LiveServer, method: str, path: str, host: str, **kw) -> requests.Response:
    """``method path`` sent to the server's socket with ``Host: host``, as a browser that
    resolved ``host`` to this machine would send it."""
    headers = {"Host": host, **kw.pop("headers", {})}
    return requests.request(method, server.url(path), headers=headers, allow_redirects=False, timeout=30, **kw)


def session_count(server: LiveServer) -> int:
    return len(server.get("/api/sessions").json()["sessions"])


def test_a_rebinding_name_can_neither_read_nor_write(live_server):
    port = live_server.port
    evil = f"evil.example:{port}"
    live_server.new_session(title="private")
    before = session_count(live_server)
    r = with_host(live_server, "GET", "/api/sessions", evil)
    assert r.status_code == 400 and r.headers["Content-Type"].startswith("application/json")
    error = r.json()["error"]
    assert "'evil.example'" in error and "--allowed-hosts evil.example" in error
    assert "private" not in r.text
    # The rebinding page's own Origin matches its Host: still refused.
    rebinding = {"Origin": f"http://{evil}"}
    r = with_host(live_server, "POST", "/api/session/new", evil, json={}, headers=rebinding)
    assert r.status_code == 400 and r.json()["error"]
    r = with_host(live_server, "POST", "/api/chat/start", evil, json={"session_id": "x", "message": "hi"},
                  headers=rebinding)
    assert r.status_code == 400
    r = with_host(live_server, "POST", "/api/settings", evil, json={"password": "locked you out"},
                  headers=rebinding)
    assert r.status_code == 400
    assert not (live_server.state_dir / "settings.json").exists()
    for path in ("/", "/health", "/api/auth/status", "/v1/models", "/static/js/app.js"):
        assert with_host(live_server, "GET", path, evil).status_code == 400, path
    assert session_count(live_server) == before
    assert live_server.get("/api/auth/status").json()["auth_enabled"] is False


def test_static_double_slash_never_redirects_to_a_foreign_host(live_server):
    r = with_host(live_server, "GET", "/static//js/app.js", f"evil.example:{live_server.port}")
    assert r.status_code == 400 and "evil.example" not in r.headers.get("Location", "")
    own = with_host(live_server, "GET", "/static//js/app.js", f"127.0.0.1:{live_server.port}")
    assert own.status_code in (200, 301, 302, 308, 404)
    location = own.headers.get("Location", "")
    assert not location or location.startswith(("/", f"http://127.0.0.1:{live_server.port}/")), location


@pytest.mark.parametrize("host", ["localhost:{port}", "LOCALHOST.:{port}", "127.0.0.1:{port}", "[::1]:{port}",
                                  "app.localhost:{port}", "localhost", "127.0.0.1:1",
                                  "192.168.1.20:8787", "[fe80::1]:8787", "10.0.0.7"])
def test_loopback_names_and_ip_addresses_work_with_any_port(live_server, host):
    r = with_host(live_server, "GET", "/api/sessions", host.format(port=live_server.port))
    assert r.status_code == 200, r.text
    r = with_host(live_server, "POST", "/api/session/new", host.format(port=live_server.port), json={},
                  headers={"Origin": "http://" + host.format(port=live_server.port)})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example", "localhost.evil.example",
                                  "xn--80ak6aa92e.com", "a b", "", "evil.example:notaport"])
def test_unknown_or_malformed_names_are_refused(live_server, host):
    r = with_host(live_server, "GET", "/api/sessions", host)
    assert r.status_code == 400, (host, r.status_code)
    assert r.json()["error"]


def test_allowed_hosts_admits_listed_names_and_their_origins(make_server):
    server = make_server(args=("--allowed-hosts", "chat.example.test, *.lan")).start()
    port = server.port
    for host in ("chat.example.test", f"chat.example.test:{port}", "box.lan:443", "a.b.lan"):
        assert with_host(server, "GET", "/api/sessions", host).status_code == 200, host
    for host in ("example.test", "lan", "evil.example", "chat.example.test.evil.example"):
        assert with_host(server, "GET", "/api/sessions", host).status_code == 400, host
    # Origin is judged by the allow-list and the port, not by equality with Host.
    mine = f"127.0.0.1:{port}"
    for origin in (f"http://chat.example.test:{port}", f"http://localhost:{port}", f"http://box.lan:{port}"):
        r = with_host(server, "POST", "/api/session/new", mine, json={}, headers={"Origin": origin})
        assert r.status_code == 200, (origin, r.text)
    for origin in (f"http://evil.example:{port}", "http://chat.example.test:1", f"http://10.0.0.9:{port}",
                   f"ftp://chat.example.test:{port}", "null"):
        r = with_host(server, "POST", "/api/session/new", mine, json={}, headers={"Origin": origin})
        assert r.status_code == 403, (origin, r.status_code)


def test_bound_to_every_interface_the_machine_name_works(make_server):
    name = socket.gethostname().lower()
    server = make_server(args=("--host", "0.0.0.0"), env={"HERMES_WEBUI_PASSWORD": PASSWORD}).start()
    bearer = {"Authorization": f"Bearer {PASSWORD}"}
    assert with_host(server, "GET", "/api/sessions", f"{name}:{server.port}", headers=bearer).status_code == 200
    assert with_host(server, "GET", "/api/sessions", f"{name.split('.')[0]}.local", headers=bearer).status_code == 200
    assert with_host(server, "GET", "/api/sessions", "192.168.1.20:8787", headers=bearer).status_code == 200
    assert with_host(server, "GET", "/api/sessions", "evil.example", headers=bearer).status_code == 400


def test_a_named_bind_address_is_one_of_the_names():
    from api.hosts import HostPolicy
    policy = HostPolicy("box.example.test", [])
    assert policy.refusal("box.example.test:8787") is None and policy.refusal("BOX.example.test.") is None
    assert policy.refusal("other.example.test") is not None


def test_behind_a_trusted_proxy_the_forwarded_name_must_be_allowed(make_server):
    plain = make_server(args=("--trust-proxy",)).start()
    forwarded = {"X-Forwarded-Host": "evil.example"}
    r = plain.get("/api/sessions", headers=forwarded)
    assert r.status_code == 400 and "--allowed-hosts evil.example" in r.json()["error"]
    listed = make_server(args=("--trust-proxy", "--allowed-hosts", "chat.example.test")).start()
    assert listed.get("/api/sessions", headers={"X-Forwarded-Host": "chat.example.test"}).status_code == 200
    r = listed.post("/api/session/new", {}, headers={"X-Forwarded-Host": "chat.example.test",
                                                     "X-Forwarded-Proto": "https",
                                                     "Origin": "https://chat.example.test"})
    assert r.status_code == 200, r.text


def test_a_malformed_allowed_hosts_value_stops_the_start(tmp_path):
    server = LiveServer(tmp_path, args=("--allowed-hosts", "good.example, not a name"))
    with pytest.raises(RuntimeError):
        server.start(timeout=30)
    assert server.proc.wait(timeout=15) == 2
    assert "'not a name'" in "".join(server.output)
