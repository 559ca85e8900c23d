"""The installable app over HTTP (issue 17 item 7): the manifest and the service worker are
served from the root with the right types and headers, reachable before a login, and every
icon the manifest names exists at its declared size. (The browser side: tests/browser/test_pwa.py.)"""
from __future__ import annotations

import struct

import requests

PASSWORD = "correct horse battery staple"


def test_manifest_and_service_worker_are_served_from_the_root_before_a_login(make_server):
    server = make_server(env={"HERMES_WEBUI_PASSWORD": PASSWORD}).start()
    assert requests.get(server.url("/api/sessions"), timeout=30).status_code == 401      # auth is on
    sw = requests.get(server.url("/sw.js"), timeout=30)
    assert sw.status_code == 200 and sw.headers["Content-Type"].startswith("text/javascript")
    assert sw.headers["Service-Worker-Allowed"] == "/" and sw.headers["Cache-Control"] == "no-cache"
    assert "default-src 'self'" in sw.headers["Content-Security-Policy"]
    assert "addEventListener(\"fetch\"" in sw.text
    man = requests.get(server.url("/manifest.webmanifest"), timeout=30)
    assert man.status_code == 200 and man.headers["Content-Type"] == "application/manifest+json"
    manifest = man.json()
    assert manifest["start_url"] == "/" and manifest["scope"] == "/" and manifest["display"] == "standalone"
    purposes = set()
    for icon in manifest["icons"]:
        r = requests.get(server.url(icon["src"]), timeout=30)                          # public, like /static/
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(icon["type"]), icon
        purposes.add(icon["purpose"])
        if icon["type"] == "image/png":
            w, h = (int(n) for n in icon["sizes"].split("x"))
            assert r.content[:8] == b"\x89PNG\r\n\x1a\n" and r.content[12:16] == b"IHDR"
            assert struct.unpack(">II", r.content[16:24]) == (w, h), icon
    assert purposes == {"any", "maskable"}
    assert any(i["sizes"] == "512x512" for i in manifest["icons"]) and any(i["sizes"] == "192x192"
                                                                          for i in manifest["icons"])
