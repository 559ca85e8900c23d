"""``--trust-proxy`` and the login limit (issue 14, item 7): forwarded headers count only
from the configured proxies and hops, and failed logins have a ceiling for all clients
together, so rotating X-Forwarded-For (or addresses) buys no extra guesses."""
from __future__ import annotations

import requests

from api.auth import LoginRateLimiter

PASSWORD = "correct horse battery staple"
LOCKED = {"HERMES_WEBUI_PASSWORD": PASSWORD}


def attempt(server, password: str, xff: str | None = None, **headers) -> requests.Response:
    if xff is not None:
        headers["X-Forwarded-For"] = xff
    return requests.post(server.url("/api/auth/login"), json={"password": password}, headers=headers, timeout=30)


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(make_server):
    # The proxy is 192.0.2.1; this test connects from 127.0.0.1, as a client that
    # reaches the port directly would.
    server = make_server(env=LOCKED, args=("--trusted-proxies", "192.0.2.1")).start()
    for i in range(5):
        assert attempt(server, "guess", f"10.1.0.{i}").status_code == 401
    r = attempt(server, PASSWORD, "10.1.0.99")
    assert r.status_code == 429                               # the rotation bought nothing
    direct = make_server(env=LOCKED, args=("--trusted-proxies", "192.0.2.1")).start()
    r = attempt(direct, PASSWORD, None, **{"X-Forwarded-Proto": "https"})
    assert r.status_code == 200 and "Secure" not in r.headers["Set-Cookie"]


def test_only_the_configured_hops_of_x_forwarded_for_count(make_server):
    one_hop = make_server(env=LOCKED, args=("--trust-proxy",)).start()         # loopback is the proxy
    for i in range(5):   # the client forges the left part; the proxy appends the real address
        assert attempt(one_hop, "guess", f"203.0.113.{i}, 10.0.0.7").status_code == 401
    assert attempt(one_hop, PASSWORD, "203.0.113.99, 10.0.0.7").status_code == 429
    assert attempt(one_hop, PASSWORD, "10.0.0.8").status_code == 200       # another client is not blocked

    two_hops = make_server(env=LOCKED, args=("--trust-proxy", "--proxy-hops", "2")).start()
    for i in range(5):
        assert attempt(two_hops, "guess", f"203.0.113.{i}, 10.0.0.9, 172.16.0.1").status_code == 401
    assert attempt(two_hops, PASSWORD, "forged, 10.0.0.9, 172.16.0.1").status_code == 429
    assert attempt(two_hops, PASSWORD, "10.0.0.10, 172.16.0.1").status_code == 200


def test_failed_logins_have_a_ceiling_for_all_clients_together(make_server):
    server = make_server(env=LOCKED, args=("--trust-proxy",)).start()
    codes = [attempt(server, "guess", f"198.51.100.{i}").status_code for i in range(30)]
    assert codes == [401] * 30
    r = attempt(server, PASSWORD, "198.51.100.200")          # a fresh address, the right password
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    bearer = requests.get(server.url("/api/sessions"), timeout=30,
                          headers={"Authorization": f"Bearer {PASSWORD}", "X-Forwarded-For": "198.51.100.201"})
    assert bearer.status_code == 429                        # the bearer door shares the ceiling


def test_the_ceiling_is_configurable(make_server):
    server = make_server(env=LOCKED, args=("--trust-proxy", "--max-failed-logins-per-minute", "3")).start()
    assert [attempt(server, "guess", f"198.51.100.{i}").status_code for i in range(3)] == [401] * 3
    assert attempt(server, PASSWORD, "198.51.100.50").status_code == 429


def test_limiter_counts_failures_not_successes_and_forgets_after_the_window():
    now = [1000.0]
    limiter = LoginRateLimiter(limit=5, total_limit=3, window=60.0, clock=lambda: now[0])
    assert limiter.begin("a") == 0.0
    limiter.finish("a", ok=True)                 # a success frees its slot in the total
    for client in ("b", "c", "d"):
        assert limiter.begin(client) == 0.0
        limiter.finish(client, ok=False)
    assert limiter.begin("e") == 60.0            # ceiling reached: wait for the oldest to age out
    now[0] += 30
    assert limiter.begin("a") == 30.0
    now[0] += 30.5
    assert limiter.begin("e") == 0.0
