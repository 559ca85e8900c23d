"""``hermes-webui migrate``: the upstream's state dir comes over whole, the source is only
read, and a second run changes nothing (DESIGN §7).

Each case runs ``python server.py migrate …`` as a subprocess, as a user would, on a state
dir generated in the upstream's own file layout (tests/upstream_state.py), then opens the
result in a real server.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import ROOT, SERVER, LiveServer, fake_script, stream_events, tokens_of
from .upstream_state import build_upstream_state, chat, snapshot, write


def run_cli(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}
    full_env.update(HOME=str(tmp_path / "home"), **(env or {}))
    return subprocess.run([sys.executable, str(SERVER), *args], cwd=str(ROOT), env=full_env,
                          capture_output=True, text=True, timeout=300)


def _ours(dst: Path, sid: str, profile: str | None = None) -> dict:
    base = dst if profile is None else dst / "profiles" / profile
    return json.loads((base / "sessions" / f"{sid}.json").read_text())


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """One upstream state dir (with its 3,000-message and 20 MB sessions) migrated once."""
    tmp = tmp_path_factory.mktemp("mig")
    (tmp / "home").mkdir()
    state = build_upstream_state(tmp / "upstream")
    before = snapshot(state["root"])
    dst = tmp / "ours"
    proc = run_cli(tmp, "migrate", str(state["root"]), "--state-dir", str(dst))
    return {"tmp": tmp, "state": state, "before": before, "dst": dst, "proc": proc}


def test_migrate_keeps_every_session_with_its_id_fields_and_messages(migrated):
    proc, dst, state = migrated["proc"], migrated["dst"], migrated["state"]
    assert proc.returncode == 0, proc.stderr
    for sid, messages in state["expected"].items():
        assert _ours(dst, sid)["messages"] == messages, sid
    plain = _ours(dst, "plain")
    assert plain["title"] == "Trip plan #42" and plain["tags"] == ["travel", "2025ideas"]
    assert plain["pinned"] is True and plain["project_id"] == "a1b2c3d4e5f6" and plain["manual_title"] is True
    assert (plain["created_at"], plain["updated_at"]) == (1_700_000_000.0, 1_700_000_100.0)
    assert plain["model"] == "anthropic/claude-sonnet-4" and plain["workspace"] == "/home/u/work"
    assert _ours(dst, "archived")["archived"] is True
    assert _ours(dst, "work1", profile="work")["messages"] == chat(2, "w")
    pending = _ours(dst, "pending")
    assert pending["active_stream_id"] is None and "pending_user_message" not in pending
    # the metadata part stays ours: none of the upstream's 65 fields beyond what we keep
    assert "compression_anchor_details" not in plain and "context_messages" not in plain
    projects = json.loads((dst / "projects.json").read_text())["projects"]
    assert [(p["project_id"], p["name"], p["color"]) for p in projects] == [
        ("a1b2c3d4e5f6", "Research", "#3b82f6"), ("0f0f0f0f0f0f", "Home", None)]


def test_migrate_prints_progress_and_names_what_it_skipped(migrated):
    proc = migrated["proc"]
    assert "migrate: 12/12 sessions" in proc.stderr
    out = proc.stdout
    assert out.splitlines()[0].startswith("imported 10, updated 0, unchanged 0, skipped 0, unreadable 2")
    assert "unreadable broken.json: not valid JSON" in out
    assert "unreadable notasession.json: not a session object" in out
    assert "restored from .bak: shrunk (2 → 8 messages)" in out
    assert "interrupted turns kept as messages: pending" in out


def test_migrate_never_writes_to_the_source(migrated):
    assert snapshot(migrated["state"]["root"]) == migrated["before"]


def test_a_deliberate_upstream_shrink_is_not_undone(migrated):
    dst = migrated["dst"]
    assert len(_ours(dst, "undone")["messages"]) == 2 and _ours(dst, "cleared")["messages"] == []


def test_the_migrated_dir_lists_opens_searches_and_takes_a_turn(migrated, tmp_path):
    server = LiveServer(tmp_path, state_dir=migrated["dst"]).start()
    try:
        rows = {r["session_id"]: r for r in server.get("/api/sessions?include_archived=1").json()["sessions"]}
        assert set(rows) == set(migrated["state"]["expected"])
        assert rows["plain"]["tags"] == ["travel", "2025ideas"] and rows["plain"]["project_id"] == "a1b2c3d4e5f6"
        page = server.session("long", msg_limit=30)
        assert page["messages"] == migrated["state"]["expected"]["long"][-30:] and page["messages_offset"] == 2970
        huge = server.session("huge")
        assert huge["message_count"] == 200 and huge["messages"][-1]["content"].startswith("H199 ")
        hits = server.get("/api/sessions/search", params={"q": "H7"}).json()["results"]
        assert [h["session_id"] for h in hits] == ["huge"]
        stream_id = server.start_chat("plain", fake_script(tokens=2))
        assert tokens_of(stream_events(server, stream_id)) == "t0 t1 "
    finally:
        server.stop()


def test_a_second_run_changes_nothing_and_says_so(tmp_path):
    (tmp_path / "home").mkdir()
    state = build_upstream_state(tmp_path / "up", big=False)
    dst = tmp_path / "ours"
    assert run_cli(tmp_path, "migrate", str(state["root"]), "--state-dir", str(dst)).returncode == 0
    ours = snapshot(dst / "sessions")
    proc = run_cli(tmp_path, "migrate", str(state["root"]), "--state-dir", str(dst))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("imported 0, updated 0, unchanged 8, skipped 0, unreadable 2")
    assert snapshot(dst / "sessions") == ours


def test_a_second_run_imports_new_sessions_and_updates_grown_ones_unless_changed_here(tmp_path, make_server):
    (tmp_path / "home").mkdir()
    src = tmp_path / "up"
    (src / "sessions").mkdir(parents=True)
    for sid in ("grows", "edited", "gone"):
        write(src / "sessions", sid, chat(2, sid))
    dst = tmp_path / "ours"
    assert run_cli(tmp_path, "migrate", str(src), "--state-dir", str(dst)).returncode == 0
    server = LiveServer(tmp_path / "srv", state_dir=dst).start()
    try:  # our own changes: a rename here, a delete there
        assert server.post("/api/session/rename", {"session_id": "edited", "title": "mine"}).status_code == 200
        assert server.post("/api/session/delete", {"session_id": "gone"}).status_code == 200
    finally:
        server.stop()
    for sid in ("grows", "edited", "gone"):  # the upstream went on with all three
        write(src / "sessions", sid, chat(4, sid), title=f"Chat {sid} (later)")
    write(src / "sessions", "fresh", chat(2, "f"))
    proc = run_cli(tmp_path, "migrate", str(src), "--state-dir", str(dst))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("imported 1, updated 1, unchanged 0, skipped 2, unreadable 0")
    assert "skipped edited: changed here since it was migrated" in proc.stdout
    assert "skipped gone: deleted here since it was migrated" in proc.stdout
    assert _ours(dst, "grows")["messages"] == chat(4, "grows") and _ours(dst, "grows")["title"] == "Chat grows (later)"
    assert _ours(dst, "edited")["title"] == "mine" and len(_ours(dst, "edited")["messages"]) == 2
    assert not (dst / "sessions" / "gone.json").exists()
    assert _ours(dst, "fresh")["messages"] == chat(2, "f")


def test_dry_run_reports_and_writes_nothing(tmp_path):
    (tmp_path / "home").mkdir()
    state = build_upstream_state(tmp_path / "up", big=False)
    dst = tmp_path / "ours"
    proc = run_cli(tmp_path, "migrate", str(state["root"]), "--state-dir", str(dst), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("would import 8, updated 0")
    assert "dry run: nothing was written" in proc.stdout
    assert not dst.exists()


def test_the_default_source_is_the_upstreams_dir_and_the_same_dir_is_refused(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    build_upstream_state(home / ".hermes" / "webui", big=False)
    proc = run_cli(tmp_path, "migrate", "--dry-run")
    assert proc.returncode == 0 and "would import 8" in proc.stdout, proc.stderr
    # HERMES_WEBUI_STATE_DIR named the upstream's folder: ours would be the same one
    same = run_cli(tmp_path, "migrate", env={"HERMES_WEBUI_STATE_DIR": str(home / ".hermes" / "webui")})
    assert same.returncode == 2 and "same folder" in same.stderr
    missing = run_cli(tmp_path, "migrate", str(tmp_path / "nowhere"), "--state-dir", str(tmp_path / "o"))
    assert missing.returncode == 2 and "no upstream state dir" in missing.stderr
    assert not (tmp_path / "o").exists()


def test_migrate_refuses_a_state_dir_a_server_is_using(tmp_path, make_server):
    (tmp_path / "home").mkdir()
    state = build_upstream_state(tmp_path / "up", big=False)
    server = make_server().start()
    proc = run_cli(tmp_path, "migrate", str(state["root"]), "--state-dir", str(server.state_dir))
    assert proc.returncode == 3 and "already using" in proc.stderr
    assert not (server.sessions_dir / "plain.json").exists()


def test_hermes_webui_without_a_subcommand_still_serves(make_server):
    server = make_server().start()
    assert server.get("/health").json()["status"] == "ok"


def _migration_finished(server) -> dict:
    from .helpers import wait_until
    wait_until(lambda: not server.get("/api/migrate/status").json()["running"], timeout=60, message="migration")
    return server.get("/api/migrate/status").json()


def test_the_page_route_offers_and_runs_the_migration_into_the_running_server(make_server):
    server = make_server()
    state = build_upstream_state(server.home / ".hermes" / "webui", big=False)
    before = snapshot(state["root"])
    server.start()
    status = server.get("/api/migrate/status").json()
    assert status["available"] is True and status["migrated"] is False and status["sessions"] == 10
    assert server.post("/api/migrate", {"dry_run": "yes"}).status_code == 400
    assert server.post("/api/migrate", {"bogus": 1}).status_code == 400
    assert not (server.state_dir / "migration.json").exists()
    r = server.post("/api/migrate", {})
    assert r.status_code == 202 and r.json() == {"started": True}
    done = _migration_finished(server)
    assert done["migrated"] is True and done["error"] is None
    assert len(done["report"]["imported"]) == 8 and [u["file"] for u in done["report"]["unreadable"]] == \
        ["broken.json", "notasession.json"]
    rows = {r["session_id"] for r in server.get("/api/sessions?include_archived=1").json()["sessions"]}
    assert rows == set(state["expected"])  # listed at once, without a restart
    assert server.session("shrunk")["messages"] == state["expected"]["shrunk"]
    assert server.post("/api/migrate", {}).status_code == 202  # a second run: nothing new
    assert len(_migration_finished(server)["report"]["unchanged"]) == 8
    assert snapshot(state["root"]) == before


def test_without_an_upstream_dir_nothing_is_offered(make_server):
    server = make_server().start()
    assert server.get("/api/migrate/status").json()["available"] is False
    r = server.post("/api/migrate", {})
    assert r.status_code == 404 and "nothing to migrate" in r.json()["error"]


def test_migrate_brings_the_safe_settings_and_the_workspaces_list(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".hermes").mkdir()                              # the agent's home: its .env keys
    src, dst = tmp_path / "up", tmp_path / "ours"
    (src / "sessions").mkdir(parents=True)
    project = tmp_path / "projects" / "site"
    (project / "src").mkdir(parents=True)
    (project / "src" / "index.html").write_text("<h1>hi</h1>")
    write(src / "sessions", "web", chat(2, "w"), workspace=str(project))
    # what the upstream keeps in settings.json: a legacy theme name, its send key, its own
    # PBKDF2 password hash, a model of its providers, display toggles we have no counterpart for
    (src / "settings.json").write_text(json.dumps({
        "theme": "nord", "skin": "poseidon", "send_key": "ctrl+enter", "notifications_enabled": True,
        "password_hash": "pbkdf2_sha256$600000$c2FsdA==$aGFzaA==", "default_model": "openrouter/some-model",
        "show_token_usage": True, "language": "fr", "bot_name": "Hermes"}))
    (src / "workspaces.json").write_text(json.dumps([
        {"path": str(project), "name": "Site"}, {"path": str(home), "name": "Home"},
        {"path": str(tmp_path / "gone"), "name": "Gone"}, {"path": str(dst / "sessions"), "name": "Inside"},
        {"path": "relative/dir", "name": "Relative"}, {"path": str(home / ".hermes"), "name": "Agent home"}]))
    before = snapshot(src)
    proc = run_cli(tmp_path, "migrate", str(src), "--state-dir", str(dst))
    assert proc.returncode == 0, proc.stderr
    ui = json.loads((dst / "settings.json").read_text())["ui"]
    assert ui == {"theme": "dark", "send_key": "ctrl-enter", "notify_on_reply": True}
    assert "password_hash" not in json.loads((dst / "settings.json").read_text())
    assert "setting password_hash not carried" in proc.stdout and "setting default_model not carried" in proc.stdout
    assert "workspaces: " + str(project) in proc.stdout
    assert f"workspace {home / '.hermes'} not added: holds the agent's home" in proc.stdout
    for name in (str(home), str(tmp_path / "gone"), str(dst / "sessions"), "relative/dir", str(home / ".hermes")):
        assert f"workspace {name} not added" in proc.stdout
    assert snapshot(src) == before
    # the server opens the migrated chat's folder, named as the upstream named it
    server = LiveServer(tmp_path / "srv", state_dir=dst).start()
    try:
        roots = server.get("/api/workspaces").json()["roots"]
        assert {"name": "Site", "path": str(project.resolve())} in roots and len(roots) == 2
        listing = server.get("/api/list", params={"session_id": "web", "path": "src"})
        assert listing.status_code == 200, listing.text
        assert [e["name"] for e in listing.json()["entries"]] == ["index.html"]
        assert server.get("/api/settings").json()["settings"]["theme"] == "dark"
        # a choice made here is never overridden by a later run
        assert server.post("/api/settings", {"settings": {"theme": "light"}}).status_code == 200
    finally:
        server.stop()
    settings_before, roots_before = (dst / "settings.json").read_bytes(), (dst / "workspaces.json").read_bytes()
    assert run_cli(tmp_path, "migrate", str(src), "--state-dir", str(dst)).returncode == 0
    assert (dst / "settings.json").read_bytes() == settings_before
    assert (dst / "workspaces.json").read_bytes() == roots_before


def test_a_run_stopped_before_recording_its_last_sessions_is_finished_by_the_next(tmp_path):
    """kill -9 between two saves of migration.json: the sessions written since are adopted
    by the next run (recorded, and updated when their source grows), never "skipped"."""
    (tmp_path / "home").mkdir()
    src, dst = tmp_path / "up", tmp_path / "ours"
    (src / "sessions").mkdir(parents=True)
    for i in range(4):
        write(src / "sessions", f"s{i}", chat(2, f"s{i}"), title=f"Chat {i} #bulk")
    assert run_cli(tmp_path, "migrate", str(src), "--state-dir", str(dst)).returncode == 0
    record = json.loads((dst / "migration.json").read_text())
    for sid in ("s2", "s3"):  # written, but the run died before recording them
        del record["sessions"][f"default/{sid}"]
    (dst / "migration.json").write_text(json.dumps(record))
    ours = snapshot(dst / "sessions")
    proc = run_cli(tmp_path, "migrate", str(src), "--state-dir", str(dst))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("imported 2, updated 0, unchanged 2, skipped 0"), proc.stdout
    assert snapshot(dst / "sessions") == ours  # adopted as they are, not written again
    write(src / "sessions", "s3", chat(4, "s3"), title="Chat 3 #bulk")  # the upstream went on
    proc = run_cli(tmp_path, "migrate", str(src), "--state-dir", str(dst))
    assert proc.stdout.splitlines()[0].startswith("imported 0, updated 1, unchanged 3, skipped 0"), proc.stdout
    assert _ours(dst, "s3")["messages"] == chat(4, "s3")


def test_a_run_stopped_with_ctrl_c_records_what_it_wrote(tmp_path):
    from api.migrate import load_record, migrate

    src, dst = tmp_path / "up", tmp_path / "ours"
    (src / "sessions").mkdir(parents=True)
    for i in range(5):
        write(src / "sessions", f"s{i}", chat(2, f"s{i}"))

    def interrupt(done, total, sid):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        migrate(src, dst, progress=interrupt)
    assert sorted(load_record(dst)["sessions"]) == ["default/s0", "default/s1", "default/s2"]
    report = migrate(src, dst)
    assert (report.imported, report.unchanged, report.skipped) == (["s3", "s4"], ["s0", "s1", "s2"], [])


def test_the_offer_counts_the_sessions_a_run_goes_through(make_server):
    """Folders, links to nowhere, backups and names that are no session id in the
    upstream's sessions/ are not counted as chats the page offers to bring over."""
    server = make_server()
    sessions = server.home / ".hermes" / "webui" / "sessions"
    sessions.mkdir(parents=True)
    write(sessions, "real", chat(2))
    write(sessions, "real", chat(4), name="real.json.bak")
    (sessions / "folder.json").mkdir()
    (sessions / "gone.json").symlink_to(sessions / "nowhere.json")
    (sessions / "has space.json").write_text("{}")
    (sessions / "_index.json").write_text("[]")
    server.start()
    assert server.get("/api/migrate/status").json()["sessions"] == 1
    assert server.post("/api/migrate", {}).status_code == 202
    assert _migration_finished(server)["report"]["total"] == 1


def test_a_server_killed_mid_migration_offers_the_rest_again(make_server):
    server = make_server()
    state = build_upstream_state(server.home / ".hermes" / "webui", big=False)
    proc = run_cli(server.home.parent, "migrate", str(state["root"]), "--state-dir", str(server.state_dir))
    assert proc.returncode == 0, proc.stderr
    record_path = server.state_dir / "migration.json"
    record = json.loads(record_path.read_text())
    del record["source"]  # what a run killed after its first save of the record leaves
    del record["sessions"]["default/tools"]
    record_path.write_text(json.dumps(record))
    server.start()
    assert server.get("/api/migrate/status").json()["migrated"] is False  # the page offers it again
    assert server.post("/api/migrate", {}).status_code == 202
    done = _migration_finished(server)
    assert done["migrated"] is True and done["report"]["skipped"] == [] and done["report"]["imported"] == ["tools"]


def test_message_times_come_over_as_seconds_or_not_at_all():
    """The page shows a message's time from ``timestamp`` in seconds: a string there left
    the whole chat blank ("Invalid time value")."""
    from api.migrate import convert_messages

    raw = json.loads('[{"role": "user", "content": "a", "timestamp": 1700000000},'
                     ' {"role": "assistant", "content": "b", "timestamp": "2024-01-01T00:00:00Z"},'
                     ' {"role": "user", "content": "c", "timestamp": "soon"},'
                     ' {"role": "assistant", "content": "d", "timestamp": Infinity},'
                     ' {"role": "user", "content": "e", "timestamp": null},'
                     ' {"role": "assistant", "content": "f", "_ts": 1700000005.5}]')
    assert [m.get("timestamp") for m in convert_messages(raw)] == \
        [1_700_000_000.0, 1_704_067_200.0, None, None, None, 1_700_000_005.5]
    assert all("timestamp" not in m for m in convert_messages(raw)[2:5])


def test_messages_with_no_role_or_an_unknown_one_come_over_readable():
    """An upstream file with a message whose role is missing or one the page does not know
    showed as "undefined: …" / "narrator: …": it comes over as a reply that keeps the role
    it had as ``source_role``; a role that says what it is (``Human``, ``model``) is read."""
    from api.migrate import convert_messages

    raw = [{"role": "user", "content": "开始"}, {"role": "narrator", "content": "The door creaks."},
           {"content": "no role"}, {"role": "Human", "content": "who?"}, {"role": "model", "content": "me"},
           {"role": "system", "content": "be brief"}, {"role": 7, "content": "odd"}]
    out = convert_messages(raw)
    assert [(m["role"], m.get("source_role")) for m in out] == [
        ("user", None), ("assistant", "narrator"), ("assistant", "none"), ("user", None), ("assistant", None),
        ("system", None), ("assistant", "7")]
    assert [m["content"] for m in out] == [m["content"] for m in raw]


# ---------------------------------------------------------------- compression chains
# The upstream compresses a long conversation by keeping the old transcript as a parent file
# marked ``pre_compression_snapshot`` and going on (with the pin) in a child whose
# ``parent_session_id`` names it; its sidebar shows one row and its page the parts stitched.


def _later(messages: list[dict], start: int) -> list[dict]:
    """``messages`` timed after the first ``start`` seconds of the conversation."""
    return [dict(m, timestamp=m["timestamp"] + start) for m in messages]


SUMMARY = {"role": "user", "content": "[CONTEXT COMPACTION] Earlier turns: planning a trip to 東京 🗼",
           "timestamp": 1_700_000_000.0 + 19.5}


def _chain_of_two(src: Path) -> list[dict]:
    """The tester's case: A (20 messages, a snapshot) ← B (pinned, 5 later messages)."""
    (src / "sessions").mkdir(parents=True, exist_ok=True)
    old = chat(20, "a")
    write(src / "sessions", "A", old, title="Trip plan #travel", pre_compression_snapshot=True,
          project_id="a1b2c3d4e5f6")
    new = _later(chat(5, "b"), 20)
    write(src / "sessions", "B", new, title="Trip plan #travel", parent_session_id="A", pinned=True,
          project_id="a1b2c3d4e5f6", created_at=1_700_000_000.0, updated_at=1_700_000_500.0)
    return old + new


def test_a_compressed_conversation_comes_over_as_one_chat_with_the_childs_id_and_pin(tmp_path):
    (tmp_path / "home").mkdir()
    src, dst = tmp_path / "up", tmp_path / "ours"
    expected = _chain_of_two(src)
    before = snapshot(src)
    proc = run_cli(tmp_path, "migrate", str(src), "--state-dir", str(dst))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("imported 1, updated 0, unchanged 0, skipped 0, unreadable 0"), proc.stdout
    assert "joined 1 compressed part (the upstream's pre-compression snapshots) into their chats: B ← A" in lines
    assert not (dst / "sessions" / "A.json").exists()
    ours = _ours(dst, "B")
    assert ours["messages"] == expected  # the snapshot's 20, then the child's 5
    assert (ours["title"], ours["tags"], ours["pinned"], ours["project_id"]) == \
        ("Trip plan", ["travel"], True, "a1b2c3d4e5f6")
    assert (ours["created_at"], ours["updated_at"]) == (1_700_000_000.0, 1_700_000_500.0)
    assert snapshot(src) == before
    again = run_cli(tmp_path, "migrate", str(src), "--state-dir", str(dst))
    assert again.stdout.splitlines()[0].startswith("imported 0, updated 0, unchanged 1, skipped 0"), again.stdout
    assert _ours(dst, "B") == ours and snapshot(src) == before
    server = LiveServer(tmp_path / "srv", state_dir=dst).start()
    try:
        rows = server.get("/api/sessions").json()["sessions"]
        assert [(r["session_id"], r["pinned"], r["message_count"]) for r in rows] == [("B", True, 25)]
        assert server.session("B", msg_limit=30)["messages"] == expected
    finally:
        server.stop()


def test_a_chain_of_three_is_stitched_in_the_order_the_upstream_shows_it(tmp_path):
    """A ← B ← C: each child starts with the summary the compression wrote; a newer upstream's
    child that already holds its parent's whole transcript (D ← E) is taken as it is; a
    /branch fork of a chat (its ``parent_session_id`` names a chat that is no snapshot)
    stays a chat of its own."""
    from api.migrate import migrate

    src, dst = tmp_path / "up", tmp_path / "ours"
    sessions = src / "sessions"
    sessions.mkdir(parents=True)
    a = chat(20, "a")
    b = [SUMMARY] + _later(chat(6, "b"), 20)
    c = [dict(SUMMARY, content="[CONTEXT COMPACTION] more", timestamp=1_700_000_026.5),
         *_later(chat(4, "c"), 30)]
    write(sessions, "A", a, pre_compression_snapshot=True)
    write(sessions, "B", b, pre_compression_snapshot=True, parent_session_id="A")
    write(sessions, "C", c, parent_session_id="B", pinned=True, title="Long one")
    d = chat(4, "d")
    write(sessions, "D", d, pre_compression_snapshot=True)
    e = d + _later(chat(2, "e"), 10)
    write(sessions, "E", e, parent_session_id="D")
    write(sessions, "G", chat(4, "g"))
    write(sessions, "F", chat(2, "g"), parent_session_id="G", session_source="fork", title="Chat G (fork)")
    report = migrate(src, dst)
    assert sorted(report.imported) == ["C", "E", "F", "G"] and report.unreadable == []
    assert sorted((j["session_id"], j["parts"]) for j in report.joined) == [("C", ["B", "A"]), ("E", ["D"])]
    assert _ours(dst, "C")["messages"] == a + b + c
    assert _ours(dst, "C")["pinned"] is True and _ours(dst, "C")["title"] == "Long one"
    assert _ours(dst, "E")["messages"] == e
    assert _ours(dst, "F")["messages"] == chat(2, "g") and _ours(dst, "G")["messages"] == chat(4, "g")
    assert not any((dst / "sessions" / f"{sid}.json").exists() for sid in "ABD")
    assert "joined 3 compressed parts" in report.summary()


def test_a_snapshot_whose_child_is_missing_or_unreadable_is_imported_as_a_chat(tmp_path):
    from api.migrate import migrate

    src, dst = tmp_path / "up", tmp_path / "ours"
    sessions = src / "sessions"
    sessions.mkdir(parents=True)
    write(sessions, "lonely", chat(6, "l"), pre_compression_snapshot=True)  # its child was deleted
    write(sessions, "X", chat(4, "x"), pre_compression_snapshot=True)
    # Y's child is lost
    write(sessions, "Y", _later(chat(2, "y"), 4), pre_compression_snapshot=True, parent_session_id="X")
    write(sessions, "P", chat(4, "p"), pre_compression_snapshot=True)
    (sessions / "Q.json").write_bytes(b'{"session_id": "Q", "parent_session_id": "P", "messages": [')
    report = migrate(src, dst)
    assert sorted(report.imported) == ["P", "Y", "lonely"]
    assert report.unreadable == [{"file": "Q.json", "reason": report.unreadable[0]["reason"]}]
    assert report.joined == [{"session_id": "Y", "parts": ["X"]}]
    assert _ours(dst, "lonely")["messages"] == chat(6, "l") and _ours(dst, "P")["messages"] == chat(4, "p")
    assert _ours(dst, "Y")["messages"] == chat(4, "x") + _later(chat(2, "y"), 4)


def test_a_grown_child_updates_the_chat_and_an_unchanged_chain_is_not_read_again(tmp_path, monkeypatch):
    from api import migrate as mig

    src, dst = tmp_path / "up", tmp_path / "ours"
    expected = _chain_of_two(src)
    assert mig.migrate(src, dst).imported == ["B"]
    generation = _ours(dst, "B")["generation"]
    read = []
    real = mig.read_source_session
    monkeypatch.setattr(mig, "read_source_session", lambda p: read.append(p.name) or real(p))
    second = mig.migrate(src, dst)
    assert (second.imported, second.updated, second.unchanged, read) == ([], [], ["B"], [])
    grown = _later(chat(7, "b"), 20)  # the upstream went on in the child
    write(src / "sessions", "B", grown, title="Trip plan #travel", parent_session_id="A", pinned=True,
          updated_at=1_700_000_900.0)
    third = mig.migrate(src, dst)
    assert (third.imported, third.updated, third.skipped) == ([], ["B"], [])
    ours = _ours(dst, "B")
    assert ours["messages"] == expected[:20] + grown and ours["updated_at"] == 1_700_000_900.0
    assert ours["generation"] == generation + 1 and not (dst / "sessions" / "A.json").exists()
    assert mig.migrate(src, dst).unchanged == ["B"]


def test_a_chain_imported_apart_by_an_earlier_version_is_joined_into_the_childs_chat(tmp_path, monkeypatch):
    """A state dir migrated before chains were joined (both parts made chats): the child,
    unchanged here since, is updated to the stitched transcript; the snapshot's chat is
    left as it is, and the summary says why it is skipped."""
    from api import migrate as mig

    src, dst = tmp_path / "up", tmp_path / "ours"
    expected = _chain_of_two(src)
    with monkeypatch.context() as m:  # what the earlier version did: every file a chat of its own
        m.setattr(mig, "find_chains", lambda lineage: ({sid: [] for sid in lineage}, set()))
        assert sorted(mig.migrate(src, dst).imported) == ["A", "B"]
    record = mig.load_record(dst)
    del record["lineage"]  # the earlier version kept none
    (dst / "migration.json").write_text(json.dumps(record))
    report = mig.migrate(src, dst)
    assert (report.imported, report.updated) == ([], ["B"]) and _ours(dst, "B")["messages"] == expected
    assert report.skipped == [{"session_id": "A", "reason": "now a compressed part of B; the chat an earlier "
                               "run made of it is left as it is"}]
    assert _ours(dst, "A")["messages"] == expected[:20]
    assert mig.migrate(src, dst).unchanged == ["B"]


def test_a_dry_run_names_the_parts_it_would_join(tmp_path):
    (tmp_path / "home").mkdir()
    src, dst = tmp_path / "up", tmp_path / "ours"
    _chain_of_two(src)
    proc = run_cli(tmp_path, "migrate", str(src), "--state-dir", str(dst), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("would import 1, updated 0")
    assert "into their chats: B ← A" in proc.stdout and not dst.exists()


@given(st.lists(st.text(max_size=8), min_size=1, max_size=30, unique=True), st.data())
@settings(max_examples=200, deadline=None)
def test_stitching_any_split_of_a_transcript_gives_it_back_in_order_each_message_once(texts, data):
    """However the upstream cut a conversation into parts (a part may repeat the end of the
    one before, or the child may hold its parent whole), the stitched transcript is the
    conversation, in order, each message once."""
    from api.migrate import stitch_messages

    whole = [{"role": "user" if i % 2 == 0 else "assistant", "content": t, "timestamp": 1_700_000_000 + i}
             for i, t in enumerate(texts)]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(whole) - 1), max_size=4)) if len(whole) > 1 else [])
    bounds = [0, *cuts, len(whole)]
    segments = []
    for a, b in zip(bounds, bounds[1:]):
        overlap = data.draw(st.integers(0, a))  # the part starts a little before the cut
        segments.append(whole[a - overlap:b])
    if len(segments) > 1 and data.draw(st.booleans()):  # a newer upstream: the child holds it all
        segments[-1] = whole
    assert stitch_messages(segments) == whole
