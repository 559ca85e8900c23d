"""The session store's seed layers (DESIGN §3), exercised in-process on a temp dir."""
from __future__ import annotations

import json
import os

import pytest

from api.codec import encode_session
from api.errors import InvalidSessionId, SessionNotFound, SessionUnreadable
from api.models import Session, SessionStore
from api.session_recovery import recover_all_sessions_on_startup
from api.streams import _get_session_agent_lock


def _messages(n: int, prefix: str = "m") -> list[dict]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"{prefix}{i} \u00e9\U0001F600",
             "timestamp": 1000.0 + i} for i in range(n)]


@pytest.fixture
def store(tmp_path):
    s = SessionStore(tmp_path / "sessions")
    yield s
    s.close()


def _big_session(store: SessionStore, n: int = 1000) -> Session:
    session = store.create(title="big")
    session.messages = _messages(n)
    with _get_session_agent_lock(session.session_id):
        session.save()
    return session


def test_metadata_only_session_cannot_be_saved_and_file_keeps_every_message(store):
    sid = _big_session(store).session_id
    before = store.path(sid).read_bytes()
    stub = Session.load_metadata_only(sid, store)
    assert stub._loaded_metadata_only and stub.messages == [] and stub.message_count == 1000
    stub.meta["title"] = "renamed"
    with pytest.raises(RuntimeError, match="metadata-only"):
        stub.save()
    assert store.path(sid).read_bytes() == before
    assert len(store.load(sid).messages) == 1000


def test_shrinking_save_snapshots_the_old_file_to_bak(store):
    sid = _big_session(store).session_id
    session = store.load(sid)
    session.messages = session.messages[:10]
    session.save()
    bak = json.loads(store.backup_path(sid).read_bytes())
    assert len(bak["messages"]) == 1000
    assert len(store.load(sid).messages) == 10


def test_growing_save_writes_no_backup(store):
    sid = _big_session(store, 10).session_id
    session = store.load(sid)
    session.messages += _messages(5, "new")
    session.save()
    assert not store.backup_path(sid).exists()
    assert len(store.load(sid).messages) == 15


def test_self_heal_restores_lost_messages_and_a_second_run_changes_nothing(store, tmp_path):
    sid = _big_session(store).session_id
    session = store.load(sid)
    session.messages = session.messages[:3]  # an accidental shrink: no intentional marker
    session.save()
    report = recover_all_sessions_on_startup(tmp_path)
    assert report["restored"] == [{"session_id": sid, "from": 3, "to": 1000}]
    assert len(store.load(sid).messages) == 1000
    snapshot = {p.name: p.read_bytes() for p in store.dir.iterdir()}
    again = recover_all_sessions_on_startup(tmp_path)
    assert again["restored"] == []
    assert {p.name: p.read_bytes() for p in store.dir.iterdir()} == snapshot


def test_intentional_shrink_is_never_resurrected(store, tmp_path):
    sid = _big_session(store).session_id
    session = store.load(sid)
    session.messages = []
    session.save(intentional_shrink=True)
    report = recover_all_sessions_on_startup(tmp_path)
    assert report["restored"] == [] and report["kept_intentional"] == [sid]
    assert store.load(sid).messages == []


def test_later_accidental_shrink_after_an_intentional_one_is_restored(store, tmp_path):
    sid = _big_session(store, 20).session_id
    s = store.load(sid)
    s.messages = s.messages[:10]
    s.save(intentional_shrink=True)
    s = store.load(sid)
    s.messages = s.messages[:2]  # not intentional: the backup is now of a newer generation
    s.save()
    os.utime(store.backup_path(sid), (1.0, 1.0))  # even with a backup mtime far in the past
    report = recover_all_sessions_on_startup(tmp_path)
    assert [r["to"] for r in report["restored"]] == [10]


@pytest.mark.parametrize("skew", [-86_400 * 365, -1, 0, 1, 86_400 * 365])
def test_the_shrink_marker_never_compares_this_hosts_clock_with_a_file_mtime(store, tmp_path, skew):
    """Invariant 9: on NFS the server's clock and the file server's differ; a deliberate
    shrink stays deliberate whatever the backup's mtime says."""
    sid = _big_session(store, 12).session_id
    s = store.load(sid)
    s.messages = s.messages[:4]
    s.save(intentional_shrink=True)
    bak = store.backup_path(sid)
    when = bak.stat().st_mtime + skew
    os.utime(bak, (when, when))
    report = recover_all_sessions_on_startup(tmp_path)
    assert report["restored"] == [] and report["kept_intentional"] == [sid]
    assert len(store.load(sid).messages) == 4


def test_an_earlier_versions_time_marker_is_judged_by_the_backups_own_clock(store, tmp_path):
    sid = _big_session(store, 8).session_id
    full = store.path(sid).read_bytes()
    obj = json.loads(full)
    store.backup_path(sid).write_bytes(full)  # the backup as an earlier version wrote it
    os.utime(store.backup_path(sid), (4e9, 4e9))  # an mtime from a skewed file server
    obj["messages"] = obj["messages"][:2]
    obj["message_count"] = 2
    obj["intentional_shrink_at"] = obj["updated_at"] + 1  # after the backup's own updated_at
    for key in ("generation", "intentional_shrink_generation"):
        obj.pop(key, None)
    obj["messages"] = obj.pop("messages")  # metadata first, as every writer puts it
    store.path(sid).write_text(json.dumps(obj))
    report = recover_all_sessions_on_startup(tmp_path)
    assert report["kept_intentional"] == [sid] and report["restored"] == []


def test_temp_files_are_swept_from_every_folder_the_app_writes(tmp_path):
    """A crash mid-write leaves <name>.tmp.<pid>.<thread>.<hex>; start-up removes them
    in sessions, settings, skills, memory, workspace and profiles — and nothing else."""
    litter = ["settings.json.tmp.123.456.0a1b2c3d", "sessions/ab.json.tmp.1.2.deadbeef",
              "skills/notes/x/SKILL.md.tmp.9.9.00000000", "memory/MEMORY.md.tmp.5.6.12345678",
              "workspace/deep/er/file.py.tmp.7.8.abcdef01", "profiles/work/sessions/cd.json.tmp.3.4.ffffffff"]
    kept = ["workspace/notes.tmp.txt", "workspace/a.tmp.1.2.zz", "memory/MEMORY.md"]
    for rel in litter + kept:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    report = recover_all_sessions_on_startup(tmp_path)
    assert sorted(report["temp_files_removed"]) == sorted(litter)
    assert all(not (tmp_path / rel).exists() for rel in litter)
    assert all((tmp_path / rel).exists() for rel in kept)


def test_a_journal_left_by_a_finished_turn_is_removed_and_a_live_ones_is_kept(store, tmp_path):
    from api.journal import JournalWriter
    done = _big_session(store, 2).session_id
    JournalWriter.create(store.journal_path(done), "old-stream", {"role": "user", "content": "q"}, 1.0).close()
    live = _big_session(store, 2).session_id
    with _get_session_agent_lock(live):
        store.patch_metadata(live, {"active_stream_id": "dead-stream"})
    JournalWriter.create(store.journal_path(live), "dead-stream", {"role": "user", "content": "q2"}, 1.0).close()
    report = recover_all_sessions_on_startup(tmp_path)
    assert report["journals_removed"] == [f"{done}.turn.jsonl"]
    assert store.journal_path(live).exists() and not store.journal_path(done).exists()


def test_save_refuses_unsafe_ids(store):
    for bad in ("../x", "/etc/passwd", "a/b", "a\\b", "", "x" * 300, "_index"):
        s = Session(store, {"session_id": bad}, [])
        with pytest.raises(RuntimeError, match="unsafe id"):
            s.save()
    with pytest.raises(InvalidSessionId):
        store.load("../../etc/passwd")


def test_patch_metadata_keeps_message_bytes_verbatim(store):
    sid = _big_session(store, 50).session_id
    raw = store.path(sid).read_bytes()
    tail = raw[raw.index(b'"messages"'):]
    with _get_session_agent_lock(sid):
        meta = store.patch_metadata(sid, {"title": "new \U0001F600 title", "pinned": True})
    after = store.path(sid).read_bytes()
    assert after.endswith(tail)
    assert meta["title"] == "new \U0001F600 title"
    assert store.load(sid).meta["pinned"] is True
    assert store.index.get(sid)["title"] == "new \U0001F600 title"


def test_window_reads_match_a_full_load_in_our_layout_and_hand_edited_files(store):
    sid = _big_session(store, 300).session_id
    full = store.load(sid).messages
    meta, raw = store.read_all_raw(sid)
    assert json.loads(raw) == full and meta["message_count"] == 300
    for limit, before in [(30, None), (30, 300), (30, 100), (30, 10), (1, 1), (500, None), (30, 0)]:
        meta, window, offset = store.read_window(sid, limit, before)
        end = 300 if before is None else before
        assert offset == max(0, end - limit)
        assert window == full[offset:end]
    # a hand-edited, pretty-printed file still reads correctly (full-parse fallback)
    obj = json.loads(store.path(sid).read_bytes())
    store.path(sid).write_text(json.dumps(obj, indent=2))
    _, window, offset = store.read_window(sid, 30, None)
    assert window == full[270:] and offset == 270
    assert json.loads(store.read_all_raw(sid)[1]) == full
    assert store.load_metadata_only(sid).message_count == 300


@pytest.mark.parametrize("content", [b"", b"null", b'{"session_id": "x", "messages": [', b"[]",
                                     b'{"title": "no messages"}', b'{"messages": "x"}', b"\xff\xfe{}"])
def test_corrupt_files_are_reported_not_overwritten(store, content):
    good = _big_session(store, 4).session_id
    bad_path = store.dir / "deadbeef.json"
    bad_path.write_bytes(content)
    store.index.refresh()
    assert "deadbeef.json" in store.index.unreadable
    listed = json.loads(store.index.listing_json(False))
    assert [r["session_id"] for r in listed["sessions"]] == [good]
    assert listed["unreadable"][0]["file"] == "deadbeef.json"
    with pytest.raises((SessionUnreadable, SessionNotFound)):
        store.load("deadbeef")
    s = Session(store, {"session_id": "deadbeef"}, [])
    with pytest.raises(SessionUnreadable):
        s.save()
    assert bad_path.read_bytes() == content


def test_index_is_rebuilt_when_missing_corrupt_or_stale(tmp_path):
    store = SessionStore(tmp_path / "sessions")
    ids = [store.create(title=f"s{i}").session_id for i in range(5)]
    store.close()
    index_path = tmp_path / "sessions" / "_index.json"
    assert set(json.loads(index_path.read_bytes())["entries"]) == set(ids)
    index_path.write_bytes(b'{"version": 1, "entries": {"ghost": ')  # corrupt
    (tmp_path / "sessions" / f"{ids[0]}.json").unlink()  # and stale
    raw = (tmp_path / "sessions" / f"{ids[1]}.json").read_bytes()
    (tmp_path / "sessions" / f"{ids[1]}.json").write_bytes(raw.replace(b'"s1"', b'"edited"'))
    again = SessionStore(tmp_path / "sessions")
    rows = {r["session_id"]: r for r in again.index.all()}
    assert set(rows) == set(ids[1:])
    assert rows[ids[1]]["title"] == "edited"
    again.close()


def test_encoded_file_is_plain_json_with_messages_last(store):
    sid = _big_session(store, 3).session_id
    raw = store.path(sid).read_bytes()
    obj = json.loads(raw)
    assert list(obj)[-1] == "messages" and list(obj)[0] == "session_id"
    assert raw == encode_session({k: v for k, v in obj.items() if k != "messages"}, obj["messages"])


def test_append_messages_copies_the_transcript_and_works_on_hand_edited_files(store):
    sid = _big_session(store, 6).session_id
    before = store.load(sid).messages
    new = [{"role": "user", "content": "more \U0001F600"}, {"role": "assistant", "content": "ok"}]
    with _get_session_agent_lock(sid):
        meta = store.append_messages(sid, new, {"pending_user_message": None})
    assert meta["message_count"] == 8 and store.load(sid).messages == before + new
    assert store.read_window(sid, 2, None)[1] == new
    obj = json.loads(store.path(sid).read_bytes())
    store.path(sid).write_text(json.dumps(obj, indent=1))  # not our layout: parsed whole, still appended
    with _get_session_agent_lock(sid):
        store.append_messages(sid, new[:1], {})
    assert store.load(sid).messages == before + new + new[:1]
    empty = store.create()
    with _get_session_agent_lock(empty.session_id):
        store.append_messages(empty.session_id, new, {})
    assert store.load(empty.session_id).messages == new


def test_audit_reports_real_counts_and_repair_restores(store, tmp_path):
    import subprocess
    import sys
    sid = _big_session(store, 6).session_id
    live = store.path(sid)
    store.backup_path(sid).write_bytes(live.read_bytes())
    obj = json.loads(live.read_bytes())
    obj["messages"] = []  # hand-edited: the header still claims 6 messages
    live.write_text(json.dumps(obj))
    store.close()
    run = [sys.executable, "-m", "api.session_recovery", "--state-dir", str(tmp_path)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    audit = subprocess.run(run + ["--audit"], capture_output=True, text=True, cwd=root, timeout=60)
    assert audit.returncode == 0
    assert json.loads(audit.stdout)["would_restore"] == [{"session_id": sid, "from": 0, "to": 6}]
    assert json.loads(live.read_bytes())["messages"] == []  # audit changes nothing
    repair = subprocess.run(run + ["--repair"], capture_output=True, text=True, cwd=root, timeout=60)
    assert repair.returncode == 0 and len(json.loads(live.read_bytes())["messages"]) == 6
    missing = subprocess.run(run[:-1] + [str(tmp_path / "nope"), "--audit"], capture_output=True, text=True,
                             cwd=root, timeout=60)
    assert missing.returncode == 2 and "no state dir" in missing.stderr
