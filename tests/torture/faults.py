"""Fault injection machinery for the save path (:mod:`api.atomic` as the store uses it).

:class:`FaultyOs` replaces the ``os`` module inside :mod:`api.atomic` and makes the nth
``open``/``write``/``fsync``/``replace`` call fail; :func:`run_fault_case` injects one
fault into one save path of :class:`api.models.SessionStore` and checks the outcome.
Used by ``test_faults.py`` and ``bench/torture.py``.
"""
from __future__ import annotations

import errno
import os
import stat
import tempfile
import threading
from pathlib import Path

import api.atomic
from api.atomic import TMP_MARKER
from api.models import SessionStore

OPS = ("open", "write", "copy_file_range", "fsync", "replace")
ERRNOS = (errno.ENOSPC, errno.EIO)
SHORT_WRITE = 4096  # each os.write writes at most this much, so a file takes several writes


class FaultyOs:
    """Stands in for the ``os`` module inside :mod:`api.atomic`.

    Counts the calls the test thread makes (the index's background flusher is left
    alone) and makes the ``nth`` call of ``op`` fail with ``err``; ``os.write`` writes
    at most :data:`SHORT_WRITE` bytes per call, as a real disk filling up may.
    """

    def __init__(self, op: str | None = None, nth: int = 0, err: int = errno.ENOSPC):
        self.op, self.nth, self.err = op, nth, err
        self.calls = dict.fromkeys(OPS, 0)
        self.hit_directory = None  # set when the failing call was on a directory
        self._thread = threading.get_ident()

    def __getattr__(self, name):
        return getattr(os, name)

    def _count(self, op: str, is_dir) -> None:
        if threading.get_ident() != self._thread:
            return
        self.calls[op] += 1
        if op == self.op and self.calls[op] == self.nth:
            self.hit_directory = bool(is_dir())
            raise OSError(self.err, os.strerror(self.err))

    def open(self, path, flags, mode=0o777, **kw):
        self._count("open", lambda: os.path.isdir(path))
        return os.open(path, flags, mode, **kw)

    def write(self, fd, data):
        self._count("write", lambda: False)
        return os.write(fd, bytes(data[:SHORT_WRITE]))

    def copy_file_range(self, src, dst, count, offset_src=None, *args):
        self._count("copy_file_range", lambda: False)
        return os.copy_file_range(src, dst, min(count, SHORT_WRITE), offset_src, *args)

    def fsync(self, fd):
        self._count("fsync", lambda: stat.S_ISDIR(os.fstat(fd).st_mode))
        return os.fsync(fd)

    def replace(self, src, dst):
        self._count("replace", lambda: False)
        return os.replace(src, dst)


def make_message(i: int) -> dict:
    return {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " + "é🙂x" * 300,
            "timestamp": 1700000000.0 + i}


def seed_store(tmp: Path) -> tuple[SessionStore, str]:
    """A store holding one session with 12 messages (~15 kB) and a backup."""
    store = SessionStore(tmp / "sessions")
    session = store.create(title="victim")
    session.messages = [make_message(i) for i in range(14)]
    session.save()
    session.messages = session.messages[:12]
    session.save()  # a shrink: leaves a .bak with 14 messages
    return store, session.session_id


def _op_create(store, sid):
    return lambda: store.create(title="brand new")


def _op_grow(store, sid):
    session = store.load(sid)
    session.messages += [make_message(100), make_message(101)]
    return session.save


def _op_shrink(store, sid):
    session = store.load(sid)
    del session.messages[5:]
    return lambda: session.save(intentional_shrink=True)


def _op_patch(store, sid):
    return lambda: store.patch_metadata(sid, {"title": "patched", "pinned": True})


def _op_append(store, sid):
    """A turn's write-back: two messages appended, the transcript copied verbatim."""
    return lambda: store.append_messages(sid, [make_message(100), make_message(101)], {"pinned": True})


PATHS = {"create": _op_create, "grow": _op_grow, "shrink": _op_shrink, "patch": _op_patch,
         "append": _op_append}


def _calls_of(tmp: Path, path: str) -> dict:
    store, sid = seed_store(tmp)
    counter = FaultyOs()
    action = PATHS[path](store, sid)
    original = api.atomic.os
    api.atomic.os = counter
    try:
        action()
    finally:
        api.atomic.os = original
        store.close()
    return counter.calls


def fault_cases() -> list[tuple[str, str, int, int]]:
    """Every (save path, os call, nth call, errno) that the save paths make."""
    out = []
    with tempfile.TemporaryDirectory() as d:
        for i, path in enumerate(PATHS):
            calls = _calls_of(Path(d) / str(i), path)
            for op in OPS:
                for nth in range(1, calls[op] + 1):
                    for err in ERRNOS:
                        out.append((path, op, nth, err))
    return out


def run_fault_case(tmp_path: Path, path: str, op: str, nth: int, err: int) -> str:
    """Inject one fault and check everything; returns "raised" or "swallowed" (directory fsync)."""
    store, sid = seed_store(tmp_path)
    sessions = store.dir
    live, bak = store.path(sid), store.backup_path(sid)
    before_live, before_bak = live.read_bytes(), bak.read_bytes()
    before_files = sorted(p.name for p in sessions.iterdir() if p.name != "_index.json")
    before_index = store.index.get(sid)
    before_count = len(store.index)
    action = PATHS[path](store, sid)

    faulty = FaultyOs(op, nth, err)
    api.atomic.os = faulty
    try:
        action()
    except OSError as exc:
        raised = exc
    else:
        raised = None
    finally:
        api.atomic.os = os
    assert faulty.hit_directory is not None, "the fault was never triggered"

    litter = [p.name for p in sessions.iterdir() if TMP_MARKER in p.name]
    assert litter == [], f"temp files left behind: {litter}"
    if faulty.hit_directory:
        # directory open/fsync after the rename: swallowed by design, the save must be complete
        assert raised is None, f"a directory {op} failure surfaced after the file was already replaced"
        _check_saved(store, sid, path, before_count)
        store.close()
        return "swallowed"

    assert raised is not None, f"the {op} failure did not reach the caller"
    assert raised.errno == err
    assert live.read_bytes() == before_live, "the session file changed although its save failed"
    assert bak.read_bytes() in (before_bak, before_live), "the backup holds something the session never had"
    assert sorted(p.name for p in sessions.iterdir() if p.name != "_index.json") == before_files
    assert store.index.get(sid) == before_index, "the index moved to a state that is not on disk"
    assert len(store.index) == before_count

    # the disk is back: the very same save now succeeds and is readable
    action()
    _check_saved(store, sid, path, before_count)
    assert [p.name for p in sessions.iterdir() if TMP_MARKER in p.name] == []
    store.close()
    return "raised"


def _check_saved(store: SessionStore, sid: str, path: str, count_before: int) -> None:
    """The save of ``path`` is entirely on disk and in the index."""
    after = store.load(sid)
    if path in ("grow", "append"):
        assert len(after.messages) == 14
        assert after.messages[-1] == make_message(101)
    elif path == "shrink":
        assert len(after.messages) == 5
        assert isinstance(after.meta.get("intentional_shrink_generation"), int)
    elif path == "patch":
        assert (after.meta["title"], after.meta["pinned"]) == ("patched", True)
        assert len(after.messages) == 12
    else:
        assert len(store.index) == count_before + 1
        assert any(row.get("title") == "brand new" for row in store.index.all())
    assert store.index.get(sid)["message_count"] == len(after.messages)
