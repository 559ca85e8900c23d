"""Full-text search (issue 9): ``GET /api/sessions/search`` over titles and message text."""
from __future__ import annotations

import json
import time

from .helpers import stream_events, wait_until


def chat(server, sid: str, text: str) -> None:
    stream_events(server, server.start_chat(sid, text))


def search(server, q: str, **params) -> dict:
    r = server.get("/api/sessions/search", params=dict(q=q, **params))
    assert r.status_code == 200, r.text
    return r.json()


def hits(server, q: str) -> dict[str, dict]:
    return {r["session_id"]: r for r in search(server, q)["results"]}


def write_session_file(server, sid: str, title: str, texts: list[str]) -> None:
    """A session file written behind the server's back (as an editor or a sync tool would)."""
    now = time.time()
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": t, "timestamp": now}
                for i, t in enumerate(texts)]
    doc = {"session_id": sid, "title": title, "created_at": now, "updated_at": now,
           "message_count": len(messages), "messages": messages}
    server.sessions_dir.mkdir(parents=True, exist_ok=True)
    (server.sessions_dir / f"{sid}.json").write_text(json.dumps(doc))


def test_message_text_is_found_with_index_and_snippet(live_server):
    s = live_server
    sid = s.new_session(title="Gardening")
    chat(s, sid, "how deep should I plant tulip bulbs in clay soil")
    chat(s, sid, "and what about the daffodils")
    other = s.new_session(title="Unrelated")
    chat(s, other, "nothing to see here")
    found = hits(s, "daffodils")
    assert set(found) == {sid}
    hit = found[sid]
    assert hit["title"] == "Gardening" and hit["message_index"] in (2, 3)
    assert "daffodils" in hit["snippet"]
    [(a, b)] = {tuple(r) for r in hit["match_ranges"]}
    assert hit["snippet"][a:b] == "daffodils"
    # every word must occur in one message (or the title); the last word is a prefix
    assert set(hits(s, "tulip clay")) == {sid}
    assert set(hits(s, "clay tuli")) == {sid}
    assert set(hits(s, "daffo")) == {sid}
    assert hits(s, "tulip volcano") == {}


def test_one_result_per_session_and_limit(live_server):
    s = live_server
    ids = []
    for i in range(4):
        sid = s.new_session(title=f"Walrus log {i}")
        chat(s, sid, "walrus walrus walrus")
        chat(s, sid, "still the walrus")
        ids.append(sid)
    results = search(s, "walrus")["results"]
    assert sorted(r["session_id"] for r in results) == sorted(ids)
    assert len(search(s, "walrus", limit=2)["results"]) == 2
    for bad in ("0", "101", "x", "-1"):
        r = s.get("/api/sessions/search", params={"q": "walrus", "limit": bad})
        assert r.status_code == 400 and "error" in r.json()


def test_many_sessions_written_since_the_last_search_are_all_found(live_server):
    s = live_server
    ids = {s.new_session(title=f"Ostrich {i}") for i in range(40)}     # more than a query indexes inline
    doc = search(s, "ostrich", limit=100)
    assert not doc["partial"]
    assert {r["session_id"] for r in doc["results"]} == ids


def test_rename_without_touching_updated_at_is_reindexed(live_server):
    s = live_server
    sid = s.new_session(title="Zeppelin plans")
    chat(s, sid, "a message about airships")
    assert hits(s, "zeppelin")[sid]["message_index"] is None        # a title hit
    updated = s.session(sid)["updated_at"]
    r = s.post("/api/session/rename", {"session_id": sid, "title": "Quarterly budget"})
    assert r.status_code == 200 and r.json()["session"]["updated_at"] == updated
    assert sid not in hits(s, "zeppelin")
    assert hits(s, "quarterly")[sid]["title"] == "Quarterly budget"


def test_new_turns_and_edits_are_reindexed(live_server):
    s = live_server
    sid = s.new_session(title="Evolving")
    chat(s, sid, "first an ibis")
    assert sid in hits(s, "ibis")
    chat(s, sid, "then a jackal")                        # the session only grew
    assert hits(s, "jackal")[sid]["message_index"] in (2, 3)
    assert sid in hits(s, "ibis")
    r = s.post("/api/session/edit", {"session_id": sid, "message_index": 2, "content": "then a koala"})
    stream_events(s, r.json()["stream_id"])              # same message count as before the edit
    assert sid not in hits(s, "jackal")
    assert hits(s, "koala")[sid]["message_index"] in (2, 3) and sid in hits(s, "ibis")
    r = s.post("/api/session/edit", {"session_id": sid, "message_index": 0, "content": "first a lemur"})
    stream_events(s, r.json()["stream_id"])
    assert sid not in hits(s, "ibis") and sid not in hits(s, "koala") and sid in hits(s, "lemur")


def test_undo_clear_and_delete_leave_the_results(live_server):
    s = live_server
    sid = s.new_session(title="Animals")
    chat(s, sid, "the aardvark stays")
    chat(s, sid, "the narwhal goes")
    assert sid in hits(s, "narwhal")
    assert s.post("/api/session/undo", {"session_id": sid}).status_code == 200
    assert sid not in hits(s, "narwhal") and sid in hits(s, "aardvark")
    assert s.post("/api/session/clear", {"session_id": sid}).status_code == 200
    assert sid not in hits(s, "aardvark")
    chat(s, sid, "a platypus appears")
    assert sid in hits(s, "platypus")
    assert s.post("/api/session/delete", {"session_id": sid}).status_code == 200
    assert sid not in hits(s, "platypus")


def test_query_text_is_never_syntax(live_server):
    s = live_server
    sid = s.new_session()
    chat(s, sid, 'she said "quoted words" NEAR the AND operator-ish x*y café')
    for q in ['"', '""', "*", "NEAR(", "AND", "OR NOT", "-", "(", "a:b", "^", "x*y", "'", "\\", "_ _", "🙂"]:
        r = s.get("/api/sessions/search", params={"q": q})
        assert r.status_code == 200, (q, r.text)
    assert sid in hits(s, '"quoted words"')
    assert sid in hits(s, "operator-ish")
    assert sid in hits(s, "cafe")                     # diacritics folded
    assert search(s, "")["results"] == [] and search(s, "   ")["results"] == []
    assert s.get("/api/sessions/search").json()["results"] == []


def test_index_is_rebuilt_when_missing_or_corrupt(make_server):
    s = make_server().start()
    sid = s.new_session(title="Persistent")
    chat(s, sid, "the ocelot sleeps")
    assert sid in hits(s, "ocelot")
    db = s.state_dir / "search.sqlite"
    assert db.exists()
    s.stop()
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    s.start()
    assert sid in hits(s, "ocelot")
    s.stop()
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    s.start()
    assert sid in hits(s, "ocelot")
    s.stop()


def test_files_changed_while_stopped_are_caught_up_in_the_background(make_server):
    s = make_server().start()
    kept = s.new_session(title="Kept")
    chat(s, kept, "a kingfisher")
    gone = s.new_session(title="Gone")
    chat(s, gone, "a kingfisher too")
    assert set(hits(s, "kingfisher")) == {kept, gone}
    s.stop()
    (s.sessions_dir / f"{gone}.json").unlink()
    for i in range(60):                               # more than a query re-indexes inline
        write_session_file(s, f"bulk{i:03d}", f"Bulk {i}", ["a heron stands", f"heron number {i}"])
    s.start()
    def complete():
        doc = search(s, "heron", limit=100)
        return doc if not doc["partial"] and len(doc["results"]) == 60 else None

    found = wait_until(complete, timeout=30, message="background catch-up")
    assert {r["session_id"] for r in found["results"]} == {f"bulk{i:03d}" for i in range(60)}
    assert set(hits(s, "kingfisher")) == {kept}
    s.stop()


def test_a_1_mib_message_and_a_550_kb_tool_result_are_indexed_whole(live_server):
    s = live_server
    filler = "lorem ipsum 中文 עברית 😀 dolor sit amet "
    half = filler * (512 * 1024 // len(filler.encode()))
    message = half + " middleword " + half + " lastword"                   # ~1 MiB
    result = (filler * (275_000 // len(filler.encode()))) + " toolmiddle " + filler * 7000
    now = time.time()
    messages = [{"role": "user", "content": message, "timestamp": now},
                {"role": "assistant", "content": "done", "timestamp": now, "reasoning": "pondering thoughtword",
                 "tool_calls": [{"id": "1", "name": "read", "args": {}, "result": result, "is_error": False}]}]
    doc = {"session_id": "huge_one", "title": "Huge", "created_at": now, "updated_at": now,
           "message_count": 2, "messages": messages}
    (s.sessions_dir / "huge_one.json").write_text(json.dumps(doc))
    for word, index in (("middleword", 0), ("lastword", 0), ("toolmiddle", 1), ("thoughtword", 1)):
        found = wait_until(lambda w=word: hits(s, w).get("huge_one"), message=f"{word} found")
        assert found["message_index"] == index
        assert word in found["snippet"] and len(found["snippet"]) < 400
        [(a, b)] = {tuple(r) for r in found["match_ranges"]}
        assert found["snippet"][a:b] == word
