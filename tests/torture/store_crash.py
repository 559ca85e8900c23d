"""Issue 3's crash test: SIGKILL a process that saves sessions, then check what is on disk.

:class:`StoreCrashHarness` drives ``_writer.py`` (a forking writer, see its docstring)
on one state dir for many rounds. Each round: fork a writer child, let it write for a
random moment, SIGKILL it, then check, before any recovery, that every session file
(and every ``.bak``) parses and holds exactly the last acknowledged bytes or the content
of the write that was in flight; then run the start-up self-heal and check it leaves no
temp file, restores only from a backup that once was acknowledged content, and changes
nothing on a second run. Used by ``tests/torture/test_store_crash.py`` and
``bench/torture.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from api.atomic import TMP_MARKER
from api.session_recovery import recover_all_sessions_on_startup

from ._writer import content_digest

WRITER = Path(__file__).resolve().parent / "_writer.py"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class StoreCrashFigures:
    kills: int = 0
    acked_writes: int = 0
    files_checked: int = 0
    unparseable: int = 0
    torn_or_lost: int = 0
    temp_files_at_kill: int = 0       # kills that caught a write half-way (temp file on disk)
    kills_with_pending_intent: int = 0
    pending_landed: int = 0           # the in-flight write had already replaced the file
    restored_by_self_heal: int = 0
    temp_left_after_recovery: int = 0
    violations: list = field(default_factory=list)

    def summary(self) -> str:
        return (f"store crash: {self.kills} kills, {self.acked_writes} acknowledged writes, "
                f"{self.files_checked} file checks, {self.unparseable} unparseable, "
                f"{self.torn_or_lost} torn/lost, {self.temp_files_at_kill} kills mid-write (temp file present), "
                f"{self.pending_landed}/{self.kills_with_pending_intent} in-flight writes had landed, "
                f"{self.restored_by_self_heal} restored by self-heal, "
                f"{self.temp_left_after_recovery} temp files left after recovery")


def _parse_session_bytes(raw: bytes, sid: str) -> dict:
    """The session object in ``raw``; raises ValueError if it is not a whole, consistent session."""
    obj = json.loads(raw.decode("utf-8"))
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise ValueError("not a session object")
    if obj.get("session_id") != sid:
        raise ValueError(f"names session {obj.get('session_id')!r}")
    if obj.get("message_count") != len(obj["messages"]):
        raise ValueError(f"message_count {obj.get('message_count')} != {len(obj['messages'])} messages")
    return obj


def _digest_of(obj: dict) -> str:
    return content_digest(obj["title"], obj["pinned"], obj["messages"])


class StoreCrashHarness:
    """One writer zygote and the checker's model of what the files may hold."""

    def __init__(self, state_dir: Path, home: Path, seed: int = 0, max_run_s: float = 0.25):
        self.state_dir = Path(state_dir)
        self.sessions_dir = self.state_dir / "sessions"
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(seed)
        self.max_run_s = max_run_s
        self.figures = StoreCrashFigures()
        # every (sha) a file of each session ever legitimately held: what a .bak may hold
        self.known_shas: dict[str, set] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}
        env.update(HOME=str(home), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, str(WRITER), str(self.state_dir)], cwd=str(ROOT), env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self._expect("ZYGOTE", timeout=30)

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _next(self, deadline: float) -> str:
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError("writer process went silent") from None
        if line is None:
            raise AssertionError(f"writer process exited (code {self.proc.poll()})")
        return line

    def _expect(self, word: str, timeout: float) -> list[str]:
        """Lines up to and including the first one starting with ``word``."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            line = self._next(deadline)
            seen.append(line)
            if line.split(" ", 1)[0] == word:
                return seen

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    # -- one round ------------------------------------------------------------

    def _snapshot(self) -> dict[str, tuple[str, str]]:
        """{sid: (sha, digest)} of the session files now on disk (they must all parse)."""
        out = {}
        for path in self.sessions_dir.glob("*.json"):
            if path.name == "_index.json":
                continue
            sid = path.name[:-5]
            raw = path.read_bytes()
            obj = _parse_session_bytes(raw, sid)
            sha = hashlib.sha256(raw).hexdigest()
            out[sid] = (sha, _digest_of(obj))
            self.known_shas.setdefault(sid, set()).add(sha)
        return out

    def round(self) -> None:
        baseline = self._snapshot()
        self.proc.stdin.write(f"go {self.rng.randrange(1 << 30)}\n")
        self.proc.stdin.flush()
        lines = self._expect("READY", timeout=30)
        pid = None
        # let it write for a random moment, then pull the plug
        time.sleep(self.rng.uniform(0, self.max_run_s))
        lines += self._drain_until_pid(lines)
        pid = next(int(l.split()[1]) for l in lines if l.startswith("PID "))
        os.kill(pid, signal.SIGKILL)
        lines += self._expect("DEAD", timeout=30)
        self.figures.kills += 1
        self._check_after_kill(baseline, lines)
        self._recover_and_check()

    def _drain_until_pid(self, lines: list[str]) -> list[str]:
        if any(l.startswith("PID ") for l in lines):
            return []
        return self._expect("PID", timeout=30)

    def _check_after_kill(self, baseline: dict, lines: list[str]) -> None:
        f = self.figures
        last: dict[str, tuple] = {sid: ("FILE", sha, dig) for sid, (sha, dig) in baseline.items()}
        pending: dict[str, str] = {}
        for line in lines:
            parts = line.split()
            if parts[0] == "INTENT":
                pending[parts[1]] = parts[2]
            elif parts[0] == "ACK":
                sid = parts[1]
                pending.pop(sid, None)
                f.acked_writes += 1
                if parts[2] == "DELETED":
                    last[sid] = ("DELETED",)
                else:
                    last[sid] = ("FILE", parts[2], parts[3])
                    self.known_shas.setdefault(sid, set()).add(parts[2])
        f.kills_with_pending_intent += bool(pending)
        names = os.listdir(self.sessions_dir)
        if any(TMP_MARKER in n for n in names):
            f.temp_files_at_kill += 1
        on_disk = {n[:-5] for n in names if n.endswith(".json") and n != "_index.json"}
        for sid in sorted(on_disk | set(last) | set(pending)):
            path = self.sessions_dir / f"{sid}.json"
            state, intent = last.get(sid, ("ABSENT",)), pending.get(sid)
            if sid not in on_disk:
                if state[0] == "FILE" and intent != "DELETE":
                    self._violation(f"{sid}: file is gone but its last acknowledged write was not a delete")
                    f.torn_or_lost += 1
                continue
            f.files_checked += 1
            raw = path.read_bytes()
            try:
                obj = _parse_session_bytes(raw, sid)
            except (ValueError, UnicodeDecodeError) as exc:
                f.unparseable += 1
                self._violation(f"{sid}: unparseable after kill: {exc}")
                continue
            sha = hashlib.sha256(raw).hexdigest()
            if state[0] == "FILE" and sha == state[1]:
                continue
            if intent is not None and intent != "DELETE" and _digest_of(obj) == intent:
                f.pending_landed += 1
                self.known_shas.setdefault(sid, set()).add(sha)
                continue
            f.torn_or_lost += 1
            self._violation(f"{sid}: holds neither the acknowledged content ({state}) nor the in-flight "
                            f"write ({intent}); it has {len(obj['messages'])} messages")
        for bak in self.sessions_dir.glob("*.json.bak"):
            sid = bak.name[:-len(".json.bak")]
            raw = bak.read_bytes()
            try:
                _parse_session_bytes(raw, sid)
            except (ValueError, UnicodeDecodeError) as exc:
                f.unparseable += 1
                self._violation(f"{bak.name}: unparseable backup: {exc}")
                continue
            if hashlib.sha256(raw).hexdigest() not in self.known_shas.get(sid, ()):
                self._violation(f"{bak.name}: backup holds content the session never had")
        index = self.sessions_dir / "_index.json"
        if index.exists():
            try:
                json.loads(index.read_bytes())
            except ValueError as exc:
                f.unparseable += 1
                self._violation(f"_index.json unparseable after kill: {exc}")

    def _recover_and_check(self) -> None:
        f = self.figures
        baks = {p.name: p.read_bytes() for p in self.sessions_dir.glob("*.json.bak")}
        report = recover_all_sessions_on_startup(self.state_dir)
        litter = [n for n in os.listdir(self.sessions_dir) if TMP_MARKER in n]
        f.temp_left_after_recovery += len(litter)
        if litter:
            self._violation(f"temp files left after start-up recovery: {litter}")
        for item in report["restored"]:
            f.restored_by_self_heal += 1
            sid = item["session_id"]
            now = (self.sessions_dir / f"{sid}.json").read_bytes()
            if now != baks.get(f"{sid}.json.bak"):
                self._violation(f"{sid}: self-heal wrote something other than its backup")
        again = recover_all_sessions_on_startup(self.state_dir)
        if again["restored"] or again["temp_files_removed"]:
            self._violation(f"self-heal is not idempotent: second run {again}")
        self._snapshot()  # everything parses after recovery too (raises otherwise)

    def _violation(self, text: str) -> None:
        self.figures.violations.append(f"kill {self.figures.kills}: {text}")


def run_store_crash(state_dir: Path, home: Path, kills: int, seed: int = 0,
                    max_run_s: float = 0.25) -> StoreCrashFigures:
    harness = StoreCrashHarness(state_dir, home, seed=seed, max_run_s=max_run_s)
    try:
        for _ in range(kills):
            harness.round()
    finally:
        harness.close()
    return harness.figures
