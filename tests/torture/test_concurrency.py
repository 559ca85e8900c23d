"""Concurrency torture against the real server: parallel creations and renames, readers
hammering sessions while turns start and stop, and simultaneous chat starts on one session.
"""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from ..helpers import fake_script, read_sse, stream_events, wait_until


def _files(server) -> dict:
    out = {}
    for path in server.sessions_dir.glob("*.json"):
        if path.name != "_index.json":
            out[path.name[:-5]] = json.loads(path.read_bytes())  # every file parses
    return out


def _listing(server, http=None) -> dict:
    r = (http or server.http).get(server.url("/api/sessions"), params={"include_archived": 1}, timeout=30)
    assert r.status_code == 200, r.text
    body = json.loads(r.content)
    assert body["unreadable"] == []
    return {row["session_id"]: row for row in body["sessions"]}


def _assert_index_agrees_with_files(server) -> dict:
    rows, files = _listing(server), _files(server)
    assert set(rows) == set(files)
    for sid, obj in files.items():
        assert (rows[sid]["title"], rows[sid]["message_count"]) == (obj["title"], len(obj["messages"]))
    return rows


def test_50_creations_and_50_renames_in_parallel_keep_the_index_whole(make_server):
    server = make_server().start()
    old = [server.new_session(title=f"old {i}") for i in range(50)]
    stop = threading.Event()
    problems: list[str] = []
    listings = [0]

    def watch_listing():
        http = requests.Session()
        while not stop.is_set():
            try:
                rows = _listing(server, http)
            except AssertionError as exc:
                problems.append(f"listing failed: {exc}")
                continue
            listings[0] += 1
            missing = [sid for sid in old if sid not in rows]
            if missing:
                problems.append(f"listing lost {len(missing)} existing sessions")
            for i, sid in enumerate(old):
                if sid in rows and rows[sid]["title"] not in (f"old {i}", f"renamed {i}"):
                    problems.append(f"{sid} listed with title {rows[sid]['title']!r}")

    def create(i):
        r = requests.post(server.url("/api/session/new"), json={"title": f"new {i}"}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["session"]["session_id"]

    def rename(i):
        r = requests.post(server.url("/api/session/rename"), json={"session_id": old[i], "title": f"renamed {i}"},
                          timeout=30)
        assert r.status_code == 200, r.text

    watchers = [threading.Thread(target=watch_listing) for _ in range(2)]
    for w in watchers:
        w.start()
    with ThreadPoolExecutor(max_workers=50) as pool:
        created = pool.map(create, range(50))
        renamed = pool.map(rename, range(50))
        new = list(created)
        list(renamed)
    stop.set()
    for w in watchers:
        w.join()
    assert problems == [], problems[:10]
    assert listings[0] > 0

    assert len(set(new)) == 50
    rows = _assert_index_agrees_with_files(server)
    assert len(rows) == 100
    assert {rows[sid]["title"] for sid in new} == {f"new {i}" for i in range(50)}
    assert [rows[sid]["title"] for sid in old] == [f"renamed {i}" for i in range(50)]

    # the index cache written in the background agrees too, after a clean stop and after a crash
    server.stop()
    server.start()
    assert _assert_index_agrees_with_files(server) == rows
    server.kill()
    server.start()
    after_crash = _assert_index_agrees_with_files(server)
    assert {sid: r["title"] for sid, r in after_crash.items()} == {sid: r["title"] for sid, r in rows.items()}


def test_20_threads_hammering_status_and_get_while_turns_start_and_stop(make_server):
    server = make_server().start()
    sids = [server.new_session(title=f"busy {i}") for i in range(4)]
    stop = threading.Event()
    problems: list[str] = []
    requests_done = [0]

    def hammer(n):
        http = requests.Session()
        seen: dict = {}
        i = n
        while not stop.is_set():
            i += 1
            sid = sids[i % len(sids)]
            kind = ("status", "get", "list")[i % 3]
            try:
                if kind == "status":
                    r = http.get(server.url("/api/session/status"), params={"session_id": sid}, timeout=30)
                    body = r.json()
                    count = body["message_count"]
                    if body["streaming"] and not body["active_stream_id"]:
                        problems.append(f"streaming without a stream id: {body}")
                elif kind == "get":
                    r = http.get(server.url("/api/session"), params={"session_id": sid, "msg_limit": 4}, timeout=30)
                    body = r.json()["session"]
                    count = body["message_count"]
                    if len(body["messages"]) != min(4, count):
                        problems.append(f"window of {len(body['messages'])} for {count} messages")
                else:
                    r = http.get(server.url("/api/sessions"), timeout=30)
                    rows = {row["session_id"]: row for row in r.json()["sessions"]}
                    if set(rows) != set(sids):
                        problems.append(f"listing shows {sorted(rows)}")
                        continue
                    count = rows[sid]["message_count"]
            except (requests.RequestException, ValueError, KeyError) as exc:
                problems.append(f"{kind} {sid}: {exc!r}")
                continue
            if r.status_code != 200:
                problems.append(f"{kind} {sid} -> {r.status_code} {r.text[:200]}")
                continue
            requests_done[0] += 1
            key = (kind, sid)
            if count < seen.get(key, 0):
                problems.append(f"{kind} saw {sid} shrink from {seen[key]} to {count} messages")
            seen[key] = count

    acked: dict[str, list] = {sid: [] for sid in sids}

    def drive(sid, turns=6):
        http = requests.Session()
        for k in range(turns):
            message = fake_script(tokens=12, delay_ms=10) if k % 2 else f"turn {k} of {sid}"
            r = http.post(server.url("/api/chat/start"), json={"session_id": sid, "message": message}, timeout=30)
            assert r.status_code == 200, r.text
            acked[sid].append(message)
            stream_id = r.json()["stream_id"]
            if k % 3 == 1:  # stop this one half-way
                with http.get(server.url("/api/chat/stream"), params={"stream_id": stream_id}, stream=True,
                              timeout=30) as resp:
                    read_sse(resp, stop_after=3)
                assert http.post(server.url("/api/chat/cancel"), json={"stream_id": stream_id},
                                 timeout=30).status_code == 200
            stream_events(server, stream_id)

    hammers = [threading.Thread(target=hammer, args=(n,)) for n in range(20)]
    for h in hammers:
        h.start()
    try:
        with ThreadPoolExecutor(max_workers=len(sids)) as pool:
            list(pool.map(drive, sids))
    finally:
        stop.set()
        for h in hammers:
            h.join()
    assert problems == [], problems[:10]
    assert requests_done[0] > 200

    wait_until(lambda: server.get("/health").json()["active_streams"] == 0, message="streams to end")
    for sid in sids:
        s = server.session(sid)
        roles = [m["role"] for m in s["messages"]]
        assert roles == ["user", "assistant"] * 6, (sid, roles)
        assert [m["content"] for m in s["messages"] if m["role"] == "user"] == acked[sid]
        assert not any(m.get("status") == "interrupted" for m in s["messages"])
        assert server.get("/api/session/status", params={"session_id": sid}).json()["streaming"] is False
    _assert_index_agrees_with_files(server)


def test_ten_simultaneous_chat_starts_on_one_session_admit_exactly_one(make_server):
    server = make_server().start()
    sid = server.new_session()
    for rnd in range(5):
        barrier = threading.Barrier(10)
        results: list = [None] * 10

        def start(i, rnd=rnd, barrier=barrier, results=results):
            # every racer's turn outlives the race (0.4 s), so a winner cannot finish and free the session
            message = json.dumps({"fake": {"tokens": 20, "delay_ms": 20}, "racer": f"{rnd}.{i}"})
            barrier.wait()
            r = requests.post(server.url("/api/chat/start"), json={"session_id": sid, "message": message},
                              timeout=30)
            results[i] = (r.status_code, r.json(), message)

        threads = [threading.Thread(target=start, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(code for code, _, _ in results)
        assert codes == [200] + [409] * 9, codes
        assert all("error" in body for code, body, _ in results if code == 409)
        winner = next((body, message) for code, body, message in results if code == 200)
        events = stream_events(server, winner[0]["stream_id"])
        assert events[-1]["event"] == "stream_end"
        s = server.session(sid)
        assert s["message_count"] == 2 * (rnd + 1)
        user, reply = s["messages"][-2:]
        assert (user["role"], user["content"]) == ("user", winner[1])
        assert (reply["role"], reply["status"]) == ("assistant", "complete")


def test_ten_tabs_undoing_the_same_exchange_remove_it_once(make_server):
    server = make_server().start()
    sid = server.new_session()
    for k in range(4):
        stream_events(server, server.start_chat(sid, f"turn {k}"))
    barrier = threading.Barrier(10)
    results: list = [None] * 10

    def undo(i):
        barrier.wait()
        r = requests.post(server.url("/api/session/undo"), json={"session_id": sid, "expected_message_count": 8},
                          timeout=30)
        results[i] = r.status_code

    threads = [threading.Thread(target=undo, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [409] * 9
    assert [m["content"] for m in server.session(sid)["messages"] if m["role"] == "user"] == ["turn 0", "turn 1",
                                                                                              "turn 2"]
    # and the removal survives a crash: self-heal must not bring the undone exchange back
    server.kill()
    server.start()
    assert server.session(sid)["message_count"] == 6
