"""Shared fixtures. Every server is real (waitress in a subprocess) with a temp state dir
and a temp HOME, so no test touches the real home directory."""
from __future__ import annotations

import pytest

from .helpers import LiveServer


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HERMES_HOME", str(home / ".hermes"))
    for var in ("HERMES_WEBUI_STATE_DIR", "HERMES_WEBUI_PASSWORD", "HERMES_WEBUI_AGENT"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """One fake-backend server shared by a test module (tests make their own sessions)."""
    server = LiveServer(tmp_path_factory.mktemp("live")).start()
    yield server
    server.stop()


@pytest.fixture
def make_server(tmp_path):
    """Factory for servers a test owns (to restart, kill, or configure)."""
    servers = []

    def make(agent: str = "fake", args: tuple = (), env: dict | None = None, tmp=None) -> LiveServer:
        server = LiveServer(tmp or tmp_path / f"srv{len(servers)}", agent=agent, args=args, env=env)
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.kill()
