"""Issue 10's crash harness: SIGKILL the real server under a mixed workload, restart, check.

A :class:`ServerCrashHarness` owns one :class:`tests.helpers.LiveServer` (fake backend)
and a model of everything the server acknowledged. Each round: a few client threads
create sessions, stream scripted turns (with ``delay_ms``, so the server checkpoints the
partial reply), echo turns, rename, pin, cancel, delete, undo, edit, retry, clear and
duplicate, each on its own sessions (:mod:`tests.torture.workload`); after a random
moment the server is SIGKILLed mid-workload and restarted on the same state dir. Then,
before and after start-up:

* every session file and backup parses (checked on disk right after the kill, again after);
* no temp file written by the dead process survives start-up;
* ``/health`` reports no active stream, and no session reports ``streaming``;
* every user message whose ``/api/chat/start`` (or edit) answered 200 is in its session,
  in order, in every later round, unless an acknowledged undo/edit/clear removed it;
  and what those removed never comes back; every reply whose ``done`` arrived is saved whole;
* a saved partial reply is a prefix of the scripted reply (nothing torn);
* titles and pins hold the acknowledged value (or the one in flight at the kill);
* ``GET /api/sessions`` lists exactly the session files, with their titles, pins and counts;
* a session whose delete was acknowledged never comes back.

It also measures the streamed text a kill destroys: for each stream cut by the kill,
tokens the client had received minus tokens saved in the settled partial reply, times
the script's token delay. Used by ``test_server_crash.py`` and ``bench/torture.py``.
"""
from __future__ import annotations

import json
import os
import random
import re
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from api.atomic import TMP_MARKER

from ..helpers import LiveServer
from .workload import Tracked, Watch, Workload, missing_from, users_of

TOKEN_RE = re.compile(r"t(\d+) ")


@dataclass
class ServerCrashFigures:
    kills: int = 0
    ops: dict = field(default_factory=dict)
    acked_messages: int = 0
    lost_messages: int = 0
    unparseable_files: int = 0
    files_checked: int = 0
    temp_files_at_kill: int = 0
    streams_cut: int = 0
    streams_with_checkpoint: int = 0
    lost_seconds: list = field(default_factory=list)      # per stream cut by a kill
    lost_seconds_per_kill: list = field(default_factory=list)
    violations: list = field(default_factory=list)

    def count(self, op: str) -> None:
        self.ops[op] = self.ops.get(op, 0) + 1

    def loss_summary(self) -> str:
        cut = self.lost_seconds or [0.0]
        per_kill = self.lost_seconds_per_kill or [0.0]
        p95 = sorted(cut)[max(0, int(len(cut) * 0.95) - 1)]
        return (f"streamed text lost per cut stream: mean {statistics.mean(cut):.2f} s, p95 {p95:.2f} s, "
                f"max {max(cut):.2f} s over {len(self.lost_seconds)} streams "
                f"({self.streams_with_checkpoint} had a checkpoint); per kill: mean "
                f"{statistics.mean(per_kill):.2f} s, max {max(per_kill):.2f} s")

    def summary(self) -> str:
        ops = ", ".join(f"{k} {v}" for k, v in sorted(self.ops.items()))
        return (f"server crash: {self.kills} kills, {self.acked_messages} messages acknowledged, "
                f"{self.lost_messages} lost, {self.files_checked} file checks, {self.unparseable_files} unparseable, "
                f"{self.temp_files_at_kill} kills left a temp file, {len(self.violations)} violations\n"
                f"  {self.loss_summary()}\n  acknowledged operations: {ops}")


def _parse_file(path: Path) -> dict:
    obj = json.loads(path.read_bytes().decode("utf-8"))
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise ValueError("not a session object")
    if obj.get("message_count") != len(obj["messages"]):
        raise ValueError("message_count disagrees with the messages")
    return obj


class ServerCrashHarness(Workload):
    def __init__(self, tmp: Path, seed: int = 0, workers: int = 3, run_seconds=(0.3, 2.5),
                 server_args: tuple = ()):
        self.server = LiveServer(Path(tmp), agent="fake", args=server_args)
        self.rng = random.Random(seed)
        self.workers = workers
        self.run_seconds = run_seconds
        self.model: dict[str, Tracked] = {}
        self.model_lock = threading.Lock()
        self.figures = ServerCrashFigures()
        self.lost_ids: set = set()
        self._uid = 0
        self._stop = threading.Event()
        self._watches: list[Watch] = []
        self._threads: list[threading.Thread] = []

    # -- helpers ----------------------------------------------------------------

    def uid(self) -> str:
        with self.model_lock:
            self._uid += 1
            return f"{self.figures.kills}-{self._uid}"

    def violation(self, text: str) -> None:
        with self.model_lock:
            self.figures.violations.append(f"round {self.figures.kills}: {text}")

    @property
    def sessions_dir(self) -> Path:
        return self.server.sessions_dir

    def close(self) -> None:
        self._stop.set()
        self.server.kill()

    # -- a round --------------------------------------------------------------------

    def run(self, kills: int, progress=None) -> ServerCrashFigures:
        self.server.start()
        self.check_after_restart(cut=[])
        for _ in range(kills):
            cut = self.kill_round()
            self.check_after_restart(cut)
            if progress:
                progress(self)
        self.server.stop()
        return self.figures

    def kill_round(self) -> list[Watch]:
        self._stop.clear()
        self._watches, self._threads = [], []
        workers = [threading.Thread(target=self._worker, args=(i, random.Random(self.rng.random())), daemon=True)
                   for i in range(self.workers)]
        for w in workers:
            w.start()
        time.sleep(self.rng.uniform(*self.run_seconds))  # the random kill moment
        self._stop.set()
        self.server.kill()
        self.figures.kills += 1
        for th in workers + self._threads:
            th.join(30)
        self._check_files_after_kill()
        self.server.start()
        return [w for w in self._watches if not w.done]

    # -- checks -------------------------------------------------------------------------

    def _check_files_after_kill(self) -> None:
        names = os.listdir(self.sessions_dir)
        if any(TMP_MARKER in n for n in names):
            self.figures.temp_files_at_kill += 1
        self._check_files_parse(names)

    def _check_files_parse(self, names) -> dict:
        out = {}
        for name in names:
            if name == "_index.json" or not name.endswith((".json", ".json.bak")):
                continue
            self.figures.files_checked += 1
            try:
                obj = _parse_file(self.sessions_dir / name)
            except FileNotFoundError:
                continue
            except (ValueError, UnicodeDecodeError) as exc:
                self.figures.unparseable_files += 1
                self.violation(f"{name} does not parse: {exc}")
                continue
            if name.endswith(".json"):
                out[name[:-5]] = obj
        return out

    def check_after_restart(self, cut: list[Watch]) -> None:
        http = self.server.http
        pid = self.server.proc.pid
        litter = [n for n in os.listdir(self.sessions_dir) if TMP_MARKER in n
                  and n.split(TMP_MARKER, 1)[1].split(".", 1)[0] != str(pid)]
        if litter:
            self.violation(f"temp files of the dead process survived start-up: {litter}")
        health = http.get(self.server.url("/health"), timeout=20).json()
        if health["active_streams"] != 0:
            self.violation(f"/health reports {health['active_streams']} active streams after a restart")
        self._check_listing("first listing after restart")
        for t in list(self.model.values()):
            self._check_session(t)
        self._account_cut_streams(cut)
        self._adopt_orphans()
        self._check_listing("listing after every session was read")

    def _check_session(self, t: Tracked) -> None:
        http = self.server.http
        path = self.sessions_dir / f"{t.sid}.json"
        if t.deleted and t.checked_deleted:
            # re-checked each round on disk and in the listing (_check_listing); HTTP once is enough
            if path.exists():
                self.violation(f"deleted session {t.sid} came back on disk")
            return
        status = http.get(self.server.url("/api/session/status"), params={"session_id": t.sid}, timeout=20)
        if t.deleted or (t.delete_pending and status.status_code == 404):
            t.checked_deleted = True
            if status.status_code != 404 or path.exists():
                self.violation(f"deleted session {t.sid} came back ({status.status_code})")
            t.deleted, t.delete_pending = True, False
            return
        if status.status_code != 200:
            self.violation(f"status of {t.sid} -> {status.status_code} {status.text[:200]}")
            self._lose(t, t.acked_users)
            return
        t.delete_pending = False
        st = status.json()
        if st["streaming"] or st["active_stream_id"]:
            self.violation(f"{t.sid} still reports a stream after restart: {st}")
        resp = http.get(self.server.url("/api/session"), params={"session_id": t.sid}, timeout=20)
        if resp.status_code != 200:
            self.violation(f"GET {t.sid} -> {resp.status_code} {resp.text[:200]}")
            return
        s = resp.json()["session"]
        t.messages_seen = len(s["messages"])
        self._check_transcript(t, s["messages"])
        for key, acked, pending in (("title", t.title, t.title_pending), ("pinned", t.pinned, t.pinned_pending)):
            if acked is None and key == "title":
                continue
            if s[key] != acked and s[key] != pending:
                self.violation(f"{t.sid}: {key} is {s[key]!r}, acknowledged {acked!r}, in flight {pending!r}")
        if t.title_pending is not None and s["title"] == t.title_pending:
            t.title = t.title_pending
        if t.pinned_pending is not None:
            t.pinned = s["pinned"]
        t.title_pending = t.pinned_pending = None

    def _check_transcript(self, t: Tracked, msgs: list[dict]) -> None:
        """Acknowledged user messages present in order, removed ones absent, done replies whole."""
        users = users_of(msgs)
        if t.in_flight is not None:  # an undo/edit/retry/clear was cut off: either outcome is fine
            new_users, removed, restarted = t.in_flight
            if restarted:
                t.done_replies.pop(new_users[-1], None)
            if missing_from(t.acked_users, users) and not missing_from(new_users, users):
                self.apply(t, new_users, removed, restarted)
            t.in_flight = None
        missing = missing_from(t.acked_users, users)
        if missing:
            self._lose(t, missing)
        back = t.removed & set(users)
        if back:
            self.violation(f"{t.sid}: messages the user removed came back: {sorted(back)[:3]}")
        for i, m in enumerate(msgs):
            if m.get("role") == "user" and m.get("content") in t.done_replies:
                nxt = msgs[i + 1] if i + 1 < len(msgs) else {}
                if nxt.get("content") != t.done_replies[m["content"]] or nxt.get("status") != "complete":
                    self.violation(f"{t.sid}: a reply whose done event arrived is not saved whole: {nxt}")
                    self._lose(t, [m["content"] + " (reply)"])

    def _lose(self, t: Tracked, messages) -> None:
        for m in messages:
            key = (t.sid, m)
            if key not in self.lost_ids:
                self.lost_ids.add(key)
                self.figures.lost_messages += 1
                self.violation(f"{t.sid}: acknowledged message lost: {m[:120]!r}")

    def _account_cut_streams(self, cut: list[Watch]) -> None:
        """Tokens the clients had received minus the partial replies saved, in seconds."""
        per_kill = 0.0
        by_sid: dict[str, list] = {}
        for w in cut:
            if w.sid not in by_sid:
                t = self.model.get(w.sid)
                if t is None or t.deleted:
                    continue
                resp = self.server.http.get(self.server.url("/api/session"), params={"session_id": w.sid}, timeout=20)
                by_sid[w.sid] = resp.json()["session"]["messages"] if resp.status_code == 200 else []
            msgs = by_sid[w.sid]
            idx = next((i for i, m in enumerate(msgs) if m.get("role") == "user" and m.get("content") == w.message), None)
            if idx is None:
                continue  # already counted as lost by _check_session
            nxt = msgs[idx + 1] if idx + 1 < len(msgs) and msgs[idx + 1].get("role") == "assistant" else None
            saved = nxt.get("content") or "" if nxt else ""
            if not w.expected.startswith(saved):
                self.violation(f"{w.sid}: saved partial reply is not a prefix of the reply: {saved[:80]!r}")
            if nxt is not None and nxt.get("status") not in ("interrupted", "complete", "cancelled"):
                self.violation(f"{w.sid}: settled reply has status {nxt.get('status')!r}")
            if w.delay_ms == 0 or w.cancelled:
                continue
            saved_tokens = len(TOKEN_RE.findall(saved))
            lost = max(0, w.tokens - saved_tokens) * w.delay_ms / 1000
            self.figures.streams_cut += 1
            self.figures.streams_with_checkpoint += saved_tokens > 0
            self.figures.lost_seconds.append(lost)
            per_kill = max(per_kill, lost)
        if cut:
            self.figures.lost_seconds_per_kill.append(per_kill)

    def _adopt_orphans(self) -> None:
        """Sessions created by a request the kill cut off: the client never learnt their id."""
        for path in self.sessions_dir.glob("*.json"):
            sid = path.name[:-5]
            if sid != "_index" and sid not in self.model:
                self.model[sid] = Tracked(sid, owner=self.rng.randrange(self.workers))

    def _check_listing(self, when: str) -> None:
        resp = self.server.http.get(self.server.url("/api/sessions"), params={"include_archived": 1}, timeout=20)
        if resp.status_code != 200:
            self.violation(f"{when}: /api/sessions -> {resp.status_code} {resp.text[:200]}")
            return
        body = resp.json()
        rows = {r["session_id"]: r for r in body["sessions"]}
        files = self._check_files_parse(os.listdir(self.sessions_dir))
        if body.get("unreadable"):
            self.violation(f"{when}: listing reports unreadable files {body['unreadable']}")
        if set(rows) != set(files):
            self.violation(f"{when}: index lists {sorted(set(rows) - set(files))} without a file and misses "
                           f"{sorted(set(files) - set(rows))}")
        for sid in set(rows) & set(files):
            row, obj = rows[sid], files[sid]
            for key in ("title", "pinned", "message_count", "active_stream_id"):
                if row.get(key) != obj.get(key):
                    self.violation(f"{when}: index says {key}={row.get(key)!r} for {sid}, the file {obj.get(key)!r}")
        for t in self.model.values():
            if t.deleted and t.sid in rows:
                self.violation(f"{when}: deleted session {t.sid} is listed")
