"""GET /api/sessions/events: every tab of a profile hears each change to its sessions, live."""
from __future__ import annotations

import json
import threading

import pytest
import requests

from .helpers import LiveServer, fake_script, stream_events, wait_until


class Listener:
    """An open ``/api/sessions/events`` stream read by a thread: ``events`` fills with the
    ``sessions_changed`` payloads as they arrive; ``ended`` is set when the server closes it."""

    def __init__(self, server: LiveServer, cookies: dict | None = None):
        self.events: list[dict] = []
        self.pings = 0
        self.ended = threading.Event()
        self.resp = requests.get(server.url("/api/sessions/events"), stream=True, timeout=30, cookies=cookies)
        assert self.resp.status_code == 200, self.resp.text
        assert self.resp.headers["Content-Type"].startswith("text/event-stream")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        name = None
        try:
            for line in self.resp.iter_lines(decode_unicode=True):
                if line.startswith(":"):
                    self.pings += 1
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:") and name == "sessions_changed":
                    self.events.append(json.loads(line[5:]))
                elif line == "":
                    name = None
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed by the test
        finally:
            self.ended.set()

    def wait_for(self, sid: str, reason: str, timeout: float = 5.0) -> dict:
        """The first event for ``sid`` with ``reason``; fails after ``timeout`` s."""
        return wait_until(lambda: next((e for e in list(self.events)
                                        if e["session_id"] == sid and e["reason"] == reason), None),
                          timeout=timeout, message=f"{reason} of {sid} (got {self.events})")

    def reasons(self, sid: str) -> list[str]:
        return [e["reason"] for e in list(self.events) if e["session_id"] == sid]

    def close(self):
        self.resp.close()


@pytest.fixture
def listen(live_server):
    opened = []

    def make(server=live_server, cookies=None) -> Listener:
        listener = Listener(server, cookies)
        opened.append(listener)
        return listener

    yield make
    for listener in opened:
        listener.close()


def test_each_kind_of_change_arrives_with_its_reason(live_server, listen):
    tab = listen()
    sid = live_server.new_session()
    tab.wait_for(sid, "created")
    assert live_server.post("/api/session/rename", {"session_id": sid, "title": "Budget 📊 2025"}).ok
    tab.wait_for(sid, "renamed")
    assert live_server.post("/api/session/pin", {"session_id": sid, "pinned": True}).ok
    tab.wait_for(sid, "pinned")
    assert live_server.post("/api/session/archive", {"session_id": sid, "archived": True}).ok
    tab.wait_for(sid, "archived")
    stream_events(live_server, live_server.start_chat(sid, "hello there"))
    tab.wait_for(sid, "turn_started")
    tab.wait_for(sid, "turn_finished")
    assert live_server.post("/api/session/undo", {"session_id": sid}).ok
    tab.wait_for(sid, "messages_changed")
    assert live_server.post("/api/session/delete", {"session_id": sid}).ok
    tab.wait_for(sid, "deleted")
    reasons = tab.reasons(sid)
    assert reasons.index("turn_started") < reasons.index("turn_finished") < reasons.index("deleted")


def test_a_project_change_reaches_every_tab_of_the_profile_only(live_server, listen):
    """Creating, renaming, updating or deleting a project is announced (``projects_changed``,
    no session), so another tab's sidebar shows the folder without a reload; another
    profile hears nothing of it."""
    assert live_server.post("/api/profile/create", {"name": "other"}).ok
    tab, other = listen(), listen(cookies={"hermes_profile": "other"})
    count = lambda: len(tab.reasons(None))  # noqa: E731
    r = live_server.post("/api/projects/create", {"name": "Reise nach 京都 🚄"})
    assert r.ok, r.text
    pid = r.json()["project"]["project_id"]
    tab.wait_for(None, "projects_changed")
    for path, body in (("/api/projects/rename", {"project_id": pid, "name": "Trip"}),
                       ("/api/projects/update", {"project_id": pid, "collapsed": True}),
                       ("/api/projects/delete", {"project_id": pid})):
        before = count()
        assert live_server.post(path, body).ok
        wait_until(lambda: count() > before, timeout=5, message=f"projects_changed after {path}")
    assert set(tab.reasons(None)) == {"projects_changed"}
    assert live_server.post("/api/projects/rename", {"project_id": "nope", "name": "x"}).status_code == 404
    sid = live_server.new_session()                    # an event after the refused call, as a marker
    tab.wait_for(sid, "created")
    assert count() == 4                                # a refused change announces nothing
    assert all(e["reason"] != "projects_changed" for e in other.events)


def test_a_cancelled_turn_is_announced_as_finished(live_server, listen):
    tab = listen()
    sid = live_server.new_session()
    stream_id = live_server.start_chat(sid, fake_script(tokens=3, hang=True))
    tab.wait_for(sid, "turn_started")
    assert live_server.post("/api/chat/cancel", {"stream_id": stream_id}).json()["cancelled"]
    tab.wait_for(sid, "turn_finished")


def test_a_second_subscriber_hears_the_same_events(live_server, listen):
    first, second = listen(), listen()
    sid = live_server.new_session()
    assert live_server.post("/api/session/rename", {"session_id": sid, "title": "两个标签"}).ok
    for tab in (first, second):
        tab.wait_for(sid, "renamed")
    assert first.reasons(sid) == second.reasons(sid) == ["created", "renamed"]


def test_reconnecting_hears_new_changes_and_the_old_stream_is_let_go(make_server, listen):
    server = make_server().start()   # its own server: nothing else subscribes to it
    subscribers = lambda: server.get("/health").json()["event_subscribers"]  # noqa: E731
    tab = listen(server)
    assert subscribers() == 1
    tab.close()
    # the server notices at a heartbeat (1 s in tests) that nobody reads, and frees the thread
    wait_until(lambda: subscribers() == 0, timeout=10, message="the closed stream to be let go")
    again = listen(server)
    sid = server.new_session()
    again.wait_for(sid, "created")
    assert sid not in {e["session_id"] for e in tab.events}
    assert subscribers() == 1


def test_another_profile_does_not_hear_these_sessions(live_server, listen):
    assert live_server.post("/api/profile/create", {"name": "work"}).ok
    work = listen(cookies={"hermes_profile": "work"})
    home = listen()
    mine = live_server.new_session()
    home.wait_for(mine, "created")
    r = requests.post(live_server.url("/api/session/new"), json={}, cookies={"hermes_profile": "work"}, timeout=30)
    theirs = r.json()["session"]["session_id"]
    work.wait_for(theirs, "created")
    assert live_server.post("/api/session/rename", {"session_id": mine, "title": "private"}).ok
    home.wait_for(mine, "renamed")
    assert all(e["session_id"] != mine for e in work.events)
    assert all(e["session_id"] != theirs for e in home.events)


def test_the_server_stops_cleanly_with_event_streams_open(make_server):
    server = make_server().start()
    tabs = [Listener(server) for _ in range(3)]
    sid = server.new_session()
    for tab in tabs:
        tab.wait_for(sid, "created")
    assert server.stop() == 0     # not killed after the stop timeout: the streams did not hold it
    for tab in tabs:
        assert tab.ended.wait(10), "the event stream was not ended by the server"
    # the streams ended before the server waited for its threads: it did not give up on
    # them ("thread(s) still running") nor log their writes to a closed socket
    log = server.log_text()
    assert "still running" not in log and "Traceback" not in log, log[-3000:]


def test_live_streams_never_take_more_than_half_the_threads(make_server):
    server = make_server(args=("--threads", "4")).start()   # at most 2 event streams
    first, second = Listener(server), Listener(server)
    try:
        refused = requests.get(server.url("/api/sessions/events"), stream=True, timeout=30)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "10"
        assert "try again" in refused.json()["error"]
        sid = server.new_session()   # the other threads still serve the API
        first.wait_for(sid, "created")
        second.close()
        wait_until(lambda: server.get("/health").json()["event_subscribers"] == 1, timeout=10,
                   message="the closed stream to be let go")
        third = Listener(server)
        assert server.post("/api/session/rename", {"session_id": sid, "title": "ok"}).ok
        third.wait_for(sid, "renamed")
        third.close()
    finally:
        first.close()
        second.close()
