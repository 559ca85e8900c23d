"""Backups: ``hermes-webui export --all FILE.zip`` and ``GET /api/export/all`` write every
session of every profile with its attachments and the projects; import and migrate read
the archive back whole."""
from __future__ import annotations

import zipfile

from .helpers import LiveServer
from .test_import_export import same_origin, upload
from .test_migrate import run_cli


def _fill(server) -> dict:
    pid = server.post("/api/projects/create", {"name": "Research", "workspace": "/tmp/r",
                                               "instructions": "Be brief."}).json()["project"]["project_id"]
    a = server.new_session(title="first")
    server.post("/api/session/move", {"session_id": a, "project_id": pid})
    server.post("/api/session/tags", {"session_id": a, "tags": ["x", "日本"]})
    from .helpers import stream_events
    stream_events(server, server.start_chat(a, "hello world"))
    att = server.post("/api/attachments", data={"session_id": a}, files={"file": ("n.txt", b"notes\x00\xff")},
                      headers=same_origin(server)).json()["attachment"]
    b = server.new_session(title="second")
    stream_events(server, server.start_chat(b, "more words"))
    return {"pid": pid, "a": a, "b": b, "att": att}


def test_export_all_then_migrate_restores_every_session_with_ids_attachments_and_projects(make_server, tmp_path):
    (tmp_path / "home").mkdir()
    src = make_server().start()
    made = _fill(src)
    want = {sid: src.session(sid) for sid in (made["a"], made["b"])}
    projects = src.get("/api/projects").json()["projects"]
    src.stop()
    archive = tmp_path / "all.zip"
    proc = run_cli(tmp_path, "export", "--all", str(archive), "--state-dir", str(src.state_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("exported 2 sessions (1 attachments")
    with zipfile.ZipFile(archive) as zf:
        assert f"profiles/default/sessions/{made['a']}.json" in zf.namelist()
    dst = tmp_path / "restored"
    proc = run_cli(tmp_path, "migrate", str(archive), "--state-dir", str(dst))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("imported 2,")
    again = run_cli(tmp_path, "migrate", str(archive), "--state-dir", str(dst))
    assert again.stdout.startswith("imported 0, updated 0, unchanged 2")
    server = LiveServer(tmp_path / "srv", state_dir=dst).start()
    try:
        for sid, session in want.items():
            got = server.session(sid)
            assert got["messages"] == session["messages"] and got["title"] == session["title"]
            assert (got.get("tags"), got.get("project_id")) == (session.get("tags"), session.get("project_id"))
        r = server.get("/api/attachment", params={"session_id": made["a"], "id": made["att"]["id"]})
        assert r.content == b"notes\x00\xff"
        project = server.get("/api/projects").json()["projects"][0]
        assert (project["project_id"], project["workspace"], project["instructions"]) == \
            (made["pid"], "/tmp/r", "Be brief.")
        assert project["created_at"] == projects[0]["created_at"]  # not the time of the restore
    finally:
        server.stop()


def test_the_export_all_button_route_downloads_an_archive_that_import_reads_back(make_server):
    server = make_server().start()
    made = _fill(server)
    r = server.get("/api/export/all")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip"
    assert "attachment" in r.headers["Content-Disposition"] and ".zip" in r.headers["Content-Disposition"]
    other = make_server().start()
    imported = upload(other, r.content, "backup.zip")
    assert imported.status_code == 200, imported.text
    rows = {row["title"]: row for row in imported.json()["sessions"]}
    assert set(rows) == {"first", "second"} and rows["first"]["tags"] == ["x", "日本"]
    copy = other.session(rows["first"]["session_id"])
    assert [m["content"] for m in copy["messages"]] == [m["content"] for m in server.session(made["a"])["messages"]]
    assert [(p["project_id"], p["created_at"]) for p in other.get("/api/projects").json()["projects"]] == \
        [(p["project_id"], p["created_at"]) for p in server.get("/api/projects").json()["projects"]]
    assert not list(server.state_dir.glob(".export-*"))  # the temporary archive is gone
