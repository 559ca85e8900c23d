"""Memory (MEMORY.md, USER.md) over HTTP (issue 7): round trip, conflicts, symlinks, hermes."""
from __future__ import annotations

import os

import pytest

from .test_skills import HERMES, hermes_view


def files(server) -> dict:
    return {f["file"]: f for f in server.get("/api/memory").json()["files"]}


def test_memory_round_trip_with_conflict_detection(make_server):
    s = make_server().start()
    empty = files(s)
    assert list(empty) == ["MEMORY.md", "USER.md"]
    assert empty["MEMORY.md"] == {"file": "MEMORY.md", "exists": False, "content": "", "size": 0, "mtime": None}

    w = s.post("/api/memory/write", {"file": "MEMORY.md", "content": "The user's cat is Ada.", "expected_mtime": 0})
    assert w.status_code == 200, w.text
    read = files(s)["MEMORY.md"]
    assert read["content"] == "The user's cat is Ada." and read["mtime"] == w.json()["mtime"]
    assert (s.state_dir / "memory" / "MEMORY.md").read_text() == "The user's cat is Ada."

    again = s.post("/api/memory/write", {"file": "MEMORY.md", "content": "second", "expected_mtime": 0})
    assert again.status_code == 409                       # it exists now
    (s.state_dir / "memory" / "MEMORY.md").write_text("edited by the agent")
    stale = s.post("/api/memory/write", {"file": "MEMORY.md", "content": "mine", "expected_mtime": read["mtime"]})
    assert stale.status_code == 409 and "error" in stale.json()
    assert files(s)["MEMORY.md"]["content"] == "edited by the agent"
    fresh = files(s)["MEMORY.md"]["mtime"]
    ok = s.post("/api/memory/write", {"file": "MEMORY.md", "content": "merged", "expected_mtime": fresh})
    assert ok.status_code == 200 and files(s)["MEMORY.md"]["content"] == "merged"
    assert s.post("/api/memory/write", {"file": "USER.md", "content": "Prefers short answers."}).status_code == 200
    assert files(s)["USER.md"]["content"] == "Prefers short answers."


@pytest.mark.parametrize("body", [
    {"file": "../MEMORY.md", "content": "x"},
    {"file": "/etc/passwd", "content": "x"},
    {"file": "NOTES.md", "content": "x"},
    {"file": "MEMORY.md"},
    {"file": "MEMORY.md", "content": 5},
    {"file": "MEMORY.md", "content": "x", "expected_mtime": "yesterday"},
])
def test_bad_memory_writes_are_refused_and_change_nothing(live_server, body):
    before = sorted(live_server.state_dir.rglob("memory*"))
    r = live_server.post("/api/memory/write", body)
    assert r.status_code == 400 and "error" in r.json()
    assert sorted(live_server.state_dir.rglob("memory*")) == before


def test_memory_writes_refuse_symlinks(make_server):
    s = make_server().start()
    target = s.tmp / "elsewhere.md"
    target.write_text("not yours")
    (s.state_dir / "memory").mkdir(parents=True)
    os.symlink(target, s.state_dir / "memory" / "USER.md")
    r = s.post("/api/memory/write", {"file": "USER.md", "content": "overwritten"})
    assert r.status_code == 400 and "symbolic link" in r.json()["error"]
    assert target.read_text() == "not yours" and os.path.islink(s.state_dir / "memory" / "USER.md")
    user = files(s)["USER.md"]
    assert user["content"] == "" and "symbolic link" in user["error"]


def test_a_huge_memory_write_is_refused(live_server):
    r = live_server.post("/api/memory/write", {"file": "USER.md", "content": "x" * (1024 * 1024 + 1)})
    assert r.status_code == 413


@pytest.mark.skipif(not HERMES, reason="hermes-agent is not installed")
def test_with_the_hermes_backend_memory_is_the_agents_own(make_server, tmp_path):
    home = tmp_path / "hermes-home"
    (home / "memories").mkdir(parents=True)
    (home / "memories" / "USER.md").write_text("Name: Ada\n§\nLikes tea")
    s = make_server(agent="hermes", args=("--hermes-home", str(home))).start()
    assert files(s)["USER.md"]["content"] == "Name: Ada\n§\nLikes tea"
    r = s.post("/api/memory/write", {"file": "MEMORY.md", "content": "Project uses Flask\n§\nDeploys on Fridays"})
    assert r.status_code == 200
    seen = hermes_view(home, "import json; from tools.memory_tool import MemoryStore; m = MemoryStore(); "
                             "m.load_from_disk(); print(json.dumps([m.memory_entries, m.user_entries]))")
    assert seen == [["Project uses Flask", "Deploys on Fridays"], ["Name: Ada", "Likes tea"]]
    assert not (s.state_dir / "memory").exists()
