"""The writer process of the store crash test (issue 3): ``python _writer.py STATE_DIR``.

It imports the store once, prints ``ZYGOTE``, then reads commands from stdin. Each
``go <seed>`` forks a child that saves sessions in ``STATE_DIR/sessions`` in a loop until
it is killed; the parent prints ``PID <pid>`` and, once the child is dead, ``DEAD <pid>``.
Forking keeps a kill round cheap (no interpreter start-up per kill) while every kill
still hits a real, separate process in the middle of real writes.

The child speaks one line per event (a single ``write(2)`` each, so lines never tear)::

    READY
    INTENT <sid> <digest>     about to write: the file will hold this content
    INTENT <sid> DELETE       about to delete
    ACK <sid> <sha256 of the file bytes> <digest>     the save returned
    ACK <sid> DELETED

``digest`` is :func:`content_digest` of ``{title, pinned, messages}``; the checker
accepts, after a kill, a file whose bytes equal the last acknowledged ones or whose
content matches the pending intent, and nothing else.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def content_digest(title, pinned, messages) -> str:
    """What a session says (not how it is laid out): title, pinned flag, messages."""
    blob = json.dumps({"title": title, "pinned": bool(pinned), "messages": messages},
                      sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()[:24]


WORDS = ("alpha", "beta", "gamma", "delta", "naïve", "café", "日本語", "🙂", "Ω", "line\nbreak",
         "quote\"d", "tab\there", "back\\slash", "{brace}", "[list]", "\"messages\":")


def _message(rng: random.Random, role: str) -> dict:
    n = rng.choice((3, 10, 40, 200, 600))
    return {"role": role, "content": " ".join(rng.choice(WORDS) for _ in range(n)),
            "timestamp": round(time.time(), 6)}


class Writer:
    """One child: a few threads, each owning its own sessions, mutating them forever."""

    def __init__(self, state_dir: Path, seed: int, threads: int = 2):
        from api.models import SessionStore
        self.store = SessionStore(state_dir / "sessions")
        self.seed = seed
        self.nthreads = threads
        self._out = threading.Lock()

    def say(self, *parts) -> None:
        line = (" ".join(str(p) for p in parts) + "\n").encode("ascii")
        with self._out:
            os.write(1, line)

    def _ack(self, sid: str) -> None:
        raw = self.store.path(sid).read_bytes()
        obj = json.loads(raw)
        self.say("ACK", sid, hashlib.sha256(raw).hexdigest(), content_digest(obj["title"], obj["pinned"], obj["messages"]))

    def run(self) -> None:
        existing = sorted(p.name[:-5] for p in self.store.dir.glob("*.json") if p.name != "_index.json")
        sessions = {}
        for sid in existing:
            sessions[sid] = self.store.load(sid)
        groups = [[] for _ in range(self.nthreads)]
        for i, sid in enumerate(existing):
            groups[i % self.nthreads].append(sessions[sid])
        workers = [threading.Thread(target=self._loop, args=(random.Random(self.seed * 31 + i), groups[i], i),
                                    daemon=True) for i in range(self.nthreads)]
        self.say("READY")
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    def _loop(self, rng: random.Random, mine: list, tid: int) -> None:
        from api.models import Session
        from api.streams import _get_session_agent_lock
        counter = 0
        while True:
            counter += 1
            op = rng.choices(("grow", "shrink", "shrink_unmarked", "patch", "create", "delete"),
                             weights=(40, 12, 3, 25, 8 if len(mine) < 6 else 0, 5 if len(mine) > 2 else 0))[0]
            if op == "create" or not mine:
                sid = f"w{self.seed}x{tid}x{counter}"
                now = time.time()
                meta = {"session_id": sid, "title": f"chat {counter}", "manual_title": False,
                        "created_at": now, "updated_at": now, "model": None, "workspace": None,
                        "pinned": False, "archived": False, "message_count": 0,
                        "active_stream_id": None, "pending_user_message": None, "pending_started_at": None}
                session = Session(self.store, meta, [_message(rng, "user")])
                self.say("INTENT", sid, content_digest(meta["title"], False, session.messages))
                with _get_session_agent_lock(sid):
                    session.save()
                self._ack(sid)
                mine.append(session)
                continue
            session = rng.choice(mine)
            sid = session.session_id
            with _get_session_agent_lock(sid):
                if op == "grow":
                    for _ in range(rng.randint(1, 6)):
                        session.messages.append(_message(rng, rng.choice(("user", "assistant"))))
                    self.say("INTENT", sid, content_digest(session.meta["title"], session.meta["pinned"], session.messages))
                    session.save()
                elif op in ("shrink", "shrink_unmarked") and session.messages:
                    del session.messages[rng.randint(0, len(session.messages) - 1):]
                    self.say("INTENT", sid, content_digest(session.meta["title"], session.meta["pinned"], session.messages))
                    session.save(intentional_shrink=(op == "shrink"))
                elif op == "delete":
                    self.say("INTENT", sid, "DELETE")
                    self.store.delete(sid)
                    self.say("ACK", sid, "DELETED")
                    mine.remove(session)
                    continue
                else:
                    changes = rng.choice(({"title": f"renamed {counter} ✓"}, {"pinned": not session.meta["pinned"]}))
                    title = changes.get("title", session.meta["title"])
                    pinned = changes.get("pinned", session.meta["pinned"])
                    self.say("INTENT", sid, content_digest(title, pinned, session.messages))
                    session.meta = dict(self.store.patch_metadata(sid, changes), session_id=sid)
                self._ack(sid)
            if len(session.messages) > 400:  # keep files in the 10 kB – 1 MB range
                with _get_session_agent_lock(sid):
                    del session.messages[200:]
                    self.say("INTENT", sid, content_digest(session.meta["title"], session.meta["pinned"], session.messages))
                    session.save(intentional_shrink=True)
                    self._ack(sid)


def main() -> int:
    state_dir = Path(sys.argv[1])
    import api.models  # noqa: F401  (import once, before forking)
    os.write(1, b"ZYGOTE\n")
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            return 0
        if cmd[0] == "go":
            pid = os.fork()
            if pid == 0:
                try:
                    Writer(state_dir, int(cmd[1])).run()
                finally:
                    os._exit(0)
            os.write(1, f"PID {pid}\n".encode())
            _, status = os.waitpid(pid, 0)
            os.write(1, f"DEAD {pid} {status}\n".encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
