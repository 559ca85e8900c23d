"""A real full disk under the real server: the state dir is a small tmpfs the test mounts.

Needs root (or CAP_SYS_ADMIN) to mount; skipped cleanly otherwise. The disk is filled
with a ballast file until ``write`` answers ENOSPC, and emptied again to bring space back.
"""
from __future__ import annotations

import errno
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from api.atomic import TMP_MARKER

from ..helpers import LiveServer, fake_script, stream_events, tokens_of, wait_until


def _mount_tmpfs(target: Path, size: str = "4m") -> None:
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(target)],
                              capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


class Disk:
    """The tmpfs holding the state dir, with a ballast to fill it."""

    def __init__(self, root: Path):
        self.root = root
        self.ballast: list[Path] = []

    def fill(self) -> None:
        for chunk in (1 << 20, 4096, 1):
            path = self.root / f"ballast-{uuid.uuid4().hex}"
            self.ballast.append(path)
            with open(path, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
        with pytest.raises(OSError):
            (self.root / "probe").write_bytes(b"x")

    def free(self) -> None:
        for path in self.ballast:
            path.unlink(missing_ok=True)
        (self.root / "probe").unlink(missing_ok=True)
        self.ballast.clear()


@pytest.fixture
def full_disk_server(tmp_path):
    srv_dir = tmp_path / "srv"
    state = srv_dir / "state"
    _mount_tmpfs(state)
    server = LiveServer(srv_dir)
    try:
        yield server.start(), Disk(state)
    finally:
        server.kill()
        if subprocess.run(["umount", str(state)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(state)], capture_output=True, check=False)


def _litter(server) -> list[str]:
    return [n for n in os.listdir(server.sessions_dir) if TMP_MARKER in n]


def test_rename_on_a_full_disk_is_a_clear_json_500_and_the_server_keeps_serving(full_disk_server):
    server, disk = full_disk_server
    sid = server.new_session(title="before")
    stream_events(server, server.start_chat(sid, "hello disk"))
    before = (server.sessions_dir / f"{sid}.json").read_bytes()
    disk.fill()

    for path, body in (("/api/session/rename", {"session_id": sid, "title": "after"}),
                       ("/api/session/pin", {"session_id": sid, "pinned": True}),
                       ("/api/session/new", {"title": "another"})):
        r = server.post(path, body)
        assert r.status_code == 500, (path, r.text)
        assert "no space left" in r.json()["error"].lower(), r.text
    assert (server.sessions_dir / f"{sid}.json").read_bytes() == before
    assert _litter(server) == []
    # still serving, from what is on disk
    assert server.get("/health").json()["status"] == "ok"
    s = server.session(sid)
    assert (s["title"], s["pinned"], s["message_count"]) == ("before", False, 2)
    listing = server.get("/api/sessions").json()["sessions"]
    assert [(r["session_id"], r["title"]) for r in listing] == [(sid, "before")]

    disk.free()
    r = server.post("/api/session/rename", {"session_id": sid, "title": "after"})
    assert r.status_code == 200, r.text
    server.stop()
    server.start()
    s = server.session(sid)
    assert (s["title"], s["message_count"]) == ("after", 2)
    assert [m["content"] for m in s["messages"]] == ["hello disk", "echo: hello disk"]


def test_chat_start_on_a_full_disk_is_refused_cleanly_and_works_once_space_returns(full_disk_server):
    server, disk = full_disk_server
    sid = server.new_session()
    disk.fill()
    r = server.post("/api/chat/start", {"session_id": sid, "message": "not acknowledged"})
    assert r.status_code == 500 and "no space left" in r.json()["error"].lower()
    status = server.get("/api/session/status", params={"session_id": sid}).json()
    assert status["streaming"] is False and status["active_stream_id"] is None
    assert server.get("/health").json()["active_streams"] == 0
    disk.free()
    events = stream_events(server, server.start_chat(sid, "now it works"))
    assert [e["event"] for e in events][-2:] == ["done", "stream_end"]
    assert [m["content"] for m in server.session(sid)["messages"]] == ["now it works", "echo: now it works"]


def _turn_that_hits_a_full_disk(server, disk) -> tuple[str, str, list]:
    """A turn acknowledged while there was space, whose disk fills while it streams."""
    sid = server.new_session(title="full")
    message = fake_script(tokens=20, delay_ms=25)
    stream_id = server.start_chat(sid, message)
    disk.fill()
    events = stream_events(server, stream_id)
    return sid, message, events


def test_a_turn_on_a_full_disk_ends_with_apperror_and_its_user_message_survives(full_disk_server):
    server, disk = full_disk_server
    other = server.new_session(title="bystander")
    sid, message, events = _turn_that_hits_a_full_disk(server, disk)
    names = [e["event"] for e in events]
    assert "apperror" in names and names[-1] == "stream_end", names
    error = next(e["data"] for e in events if e["event"] == "apperror")
    assert "no space left" in error["message"].lower()
    assert "done" not in names
    wait_until(lambda: server.get("/health").json()["active_streams"] == 0, message="the stream to end")
    assert server.get("/health").status_code == 200
    assert _litter(server) == []

    disk.free()
    s = server.session(sid)
    users = [m for m in s["messages"] if m["role"] == "user"]
    assert [m["content"] for m in users] == [message], s["messages"]
    # the whole streamed reply is kept, not just the last checkpoint before the disk filled
    reply = s["messages"][-1]
    assert reply["role"] == "assistant" and reply["content"] == tokens_of(events), s["messages"]
    # a reply that finished keeps its status: nothing was cut, so nothing offers "Continue"
    assert reply["status"] == "complete" and "status" not in users[0], s["messages"]
    status = server.get("/api/session/status", params={"session_id": sid}).json()
    assert status["streaming"] is False and status["active_stream_id"] is None
    rows = {r["session_id"] for r in server.get("/api/sessions").json()["sessions"]}
    assert rows == {sid, other}
    # and the session takes new turns
    stream_events(server, server.start_chat(sid, "again"))
    assert [m["content"] for m in server.session(sid)["messages"]][-2:] == ["again", "echo: again"]


def test_a_full_disk_does_not_hide_the_sessions_after_a_reply_failed_to_save(full_disk_server):
    server, disk = full_disk_server
    other = server.new_session(title="bystander")
    sid, message, _events = _turn_that_hits_a_full_disk(server, disk)
    wait_until(lambda: server.get("/health").json()["active_streams"] == 0, message="the stream to end")
    # the disk is still full: reading needs no space, so the sidebar and the session must still open
    listing = server.get("/api/sessions")
    assert listing.status_code == 200, listing.text
    assert {r["session_id"] for r in listing.json()["sessions"]} == {sid, other}
    status = server.get("/api/session/status", params={"session_id": sid})
    assert status.status_code == 200, status.text
    assert status.json()["streaming"] is False
    assert status.json()["pending_user_message"] == message or status.json()["message_count"] >= 1
    opened = server.get("/api/session", params={"session_id": sid})
    assert opened.status_code == 200, opened.text
    assert opened.json()["session"]["session_id"] == sid


def test_a_server_restarted_on_a_full_disk_starts_and_serves_what_is_saved(full_disk_server):
    server, disk = full_disk_server
    sid = server.new_session(title="kept")
    stream_events(server, server.start_chat(sid, "saved before the disk filled"))
    disk.fill()
    server.kill()
    server.start()  # self-heal and the index rebuild run on a full disk
    assert server.get("/health").json()["sessions"] == 1
    assert [r["title"] for r in server.get("/api/sessions").json()["sessions"]] == ["kept"]
    assert [m["content"] for m in server.session(sid)["messages"]] == [
        "saved before the disk filled", "echo: saved before the disk filled"]
    assert server.post("/api/session/rename", {"session_id": sid, "title": "x"}).status_code == 500
    disk.free()
    assert server.post("/api/session/rename", {"session_id": sid, "title": "renamed"}).status_code == 200
    assert _litter(server) == []
