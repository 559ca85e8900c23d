"""The sidebar index: compact metadata of every session, kept in memory, cached on disk.

docs/architecture.md §2–3 invariant 1: the index is derived from the session files and never the
truth. It lives in memory (so listing 5,000 sessions costs one cached ``bytes``), is
updated incrementally under its own lock on each save, and is written to
``sessions/_index.json`` in the background, at most every two seconds, so a write
costs the same whether there are 5 sessions or 5,000. At start-up the cached file is
checked against every session file's ``(mtime_ns, size)``: a missing or corrupt cache
means a full rebuild, a stale entry means re-reading that one file's metadata prefix.
Files changed behind the server's back are picked up when the directory's mtime moves.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from .atomic import atomic_write_bytes

log = logging.getLogger(__name__)
INDEX_NAME = "_index.json"
INDEX_VERSION = 3  # 2: rows hold only the sidebar's fields (api.models.SIDEBAR_FIELDS); 3: project_id, tags
RACY_WINDOW_NS = 2_000_000_000  # FAT and some network filesystems keep mtimes to 2 s
FLUSH_DELAY = 2.0  # seconds: a burst of writes (a streaming turn's checkpoints) → one flush


def stat_key(path) -> list[int]:
    """``[mtime_ns, size]`` of a file: what the index compares to spot a changed file."""
    st = os.stat(path)
    return [st.st_mtime_ns, st.st_size]


class SessionIndex:
    """In-memory ``{session_id: compact metadata}`` plus the files it could not read.

    ``loader(session_id) -> compact dict`` reads one file's metadata and raises on a
    bad file; ``id_of(file_name) -> session id | None`` says which files are sessions.
    Thread-safe; takes only its own lock (the last in docs/architecture.md §1's lock order). Each row
    is kept serialised too, so a listing or a flush is a sort and a join of bytes.
    """

    def __init__(self, directory: Path, loader: Callable[[str], dict], id_of: Callable[[str], str | None]):
        self.dir = Path(directory)
        self._path = self.dir / INDEX_NAME
        self._loader = loader
        self._id_of = id_of
        self._row_json: dict[str, bytes] = {}
        self._active: set[str] = set()
        self._writes_in_flight = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        self._stats: dict[str, list] = {}
        self.unreadable: dict[str, str] = {}
        self._bad_stats: dict[str, list] = {}
        self._listing_cache: dict[bool, bytes] = {}
        self._dirty = False
        self._dir_mtime_seen: int | None = None
        self._wake = threading.Event()
        self._closed = False
        self._racy_after = 1 << 62
        self.load_report = self._load_cache()
        self.refresh()
        self._flusher = threading.Thread(target=self._flush_loop, name="index-flush", daemon=True)
        self._flusher.start()

    # -- start-up -----------------------------------------------------------

    def _load_cache(self) -> str:
        try:
            # "Racy" entries (as in git's index): a file saved in the same timestamp tick
            # as the cache was written can keep its (mtime, size) and still have changed,
            # on filesystems with coarse timestamps; such rows are re-read, never trusted.
            self._racy_after = os.stat(self._path).st_mtime_ns - RACY_WINDOW_NS
            raw = json.loads(self._path.read_bytes())
            if raw.get("version") != INDEX_VERSION or not isinstance(raw.get("entries"), dict):
                raise ValueError("unknown index version")
            for sid, row in raw["entries"].items():
                if isinstance(row, dict) and isinstance(row.get("meta"), dict) and isinstance(row.get("stat"), list):
                    self._set_row(sid, row["meta"], row["stat"])
            return "loaded"
        except FileNotFoundError:
            return "missing"
        except (ValueError, AttributeError, OSError) as exc:
            log.warning("session index %s is unreadable (%s); rebuilding it", self._path, exc)
            return "corrupt"

    def refresh(self) -> int:
        """Re-check every file against the index; re-read those that changed.

        Returns how many entries changed. Unreadable files are logged, listed in
        :attr:`unreadable` and left untouched.
        """
        changed = 0
        with self._lock:
            dir_mtime = os.stat(self.dir).st_mtime_ns
            seen = set()
            bad_seen = set()
            for entry in os.scandir(self.dir):
                sid = self._id_of(entry.name)
                if sid is None:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                key = [st.st_mtime_ns, st.st_size]
                if self._stats.get(sid) == key and sid in self._entries and key[0] < self._racy_after:
                    seen.add(sid)
                    continue
                if self._bad_stats.get(entry.name) == key:
                    bad_seen.add(entry.name)
                    continue
                try:
                    meta = self._loader(sid)
                except Exception as exc:  # one bad file never hides the others
                    if self.unreadable.get(entry.name) != str(exc):
                        log.warning("skipping unreadable session file %s: %s", entry.name, exc)
                    self.unreadable[entry.name] = str(exc)
                    self._bad_stats[entry.name] = key
                    bad_seen.add(entry.name)
                    changed += sid in self._entries
                    self._drop_row(sid)
                    continue
                self._set_row(sid, meta, key)
                seen.add(sid)
                changed += 1
            for sid in list(self._entries):
                if sid not in seen:
                    self._drop_row(sid)
                    changed += 1
            for name in list(self.unreadable):
                if name not in bad_seen:
                    self.unreadable.pop(name)
                    self._bad_stats.pop(name, None)
                    changed += 1
            self._dir_mtime_seen = dir_mtime
            self._racy_after = 1 << 62  # from now on rows come from our own writes
            if changed or self.load_report != "loaded":
                self._changed()
        return changed

    def _maybe_refresh(self) -> None:
        """Re-scan if the directory changed behind our back (not while our own writes,
        which move its mtime before :meth:`update` records it, are in flight)."""
        if self._writes_in_flight:
            return
        try:
            if os.stat(self.dir).st_mtime_ns != self._dir_mtime_seen:
                self.refresh()
        except FileNotFoundError:
            pass

    def _set_row(self, sid: str, meta: dict, stat: list) -> None:
        self._entries[sid] = meta
        self._stats[sid] = stat
        self._row_json[sid] = json.dumps(meta, ensure_ascii=False).encode("utf-8")
        if meta.get("active_stream_id"):
            self._active.add(sid)
        else:
            self._active.discard(sid)

    def _drop_row(self, sid: str) -> None:
        self._entries.pop(sid, None)
        self._stats.pop(sid, None)
        self._row_json.pop(sid, None)
        self._active.discard(sid)

    # -- updates (called by the store after each write) -----------------------

    def _changed(self) -> None:
        self._listing_cache.clear()
        self._dirty = True
        self._wake.set()

    def _note_own_write(self) -> None:
        try:
            self._dir_mtime_seen = os.stat(self.dir).st_mtime_ns
        except OSError:
            pass

    def writing(self):
        """Context manager around a write the store makes in this directory."""
        return _WriteInFlight(self)

    def update(self, session_id: str, compact: dict, stat: list) -> None:
        """Record a write. A write that leaves the row unchanged (a turn's checkpoint
        touches only private keys) keeps the cached listing: only the stat moves."""
        with self._lock:
            before = self._row_json.get(session_id)
            self._set_row(session_id, compact, stat)
            self.unreadable.pop(session_id + ".json", None)
            self._note_own_write()
            if before is not None and before == self._row_json[session_id]:
                self._dirty = True
                self._wake.set()
            else:
                self._changed()

    def remove(self, session_id: str) -> None:
        with self._lock:
            self._drop_row(session_id)
            self.unreadable.pop(session_id + ".json", None)
            self._note_own_write()
            self._changed()

    # -- queries ----------------------------------------------------------------

    def get(self, session_id: str) -> dict | None:
        with self._lock:
            row = self._entries.get(session_id)
            return dict(row) if row is not None else None

    def all(self) -> list[dict]:
        self._maybe_refresh()
        with self._lock:
            return [dict(row) for row in self._entries.values()]

    def __len__(self) -> int:
        return len(self._entries)

    def with_active_stream(self) -> list[str]:
        """Ids whose file names an ``active_stream_id`` (live or stale)."""
        self._maybe_refresh()
        with self._lock:
            return list(self._active)

    def listing_json(self, include_archived: bool) -> bytes:
        """``{"sessions": [compact…], "unreadable": [{file, error}…]}`` as JSON bytes.

        Pinned first, then newest ``updated_at`` first. Cached until the next change.
        """
        self._maybe_refresh()
        with self._lock:
            cached = self._listing_cache.get(include_archived)
            if cached is not None:
                return cached
            ids = [sid for sid, r in self._entries.items() if include_archived or not r.get("archived")]
            ids.sort(key=lambda sid: (not self._entries[sid].get("pinned"),
                                      -float(self._entries[sid].get("updated_at") or 0)))
            bad = [{"file": n, "error": e} for n, e in sorted(self.unreadable.items())]
            data = b"".join((b'{"sessions": [', b", ".join(self._row_json[sid] for sid in ids), b'], "unreadable": ',
                             json.dumps(bad, ensure_ascii=False).encode("utf-8"), b"}"))
            self._listing_cache[include_archived] = data
            return data

    # -- persistence ------------------------------------------------------------

    def flush(self) -> None:
        """Write ``_index.json`` now if anything changed (atomic; errors are logged)."""
        with self._flush_lock:
            with self._lock:
                if not self._dirty:
                    return
                self._dirty = False
                rows = b", ".join(b'%s: {"meta": %s, "stat": %s}' % (json.dumps(sid).encode(), row,
                                                                      json.dumps(self._stats.get(sid)).encode())
                                  for sid, row in self._row_json.items())
            data = b'{"version": %d, "entries": {%s}}' % (INDEX_VERSION, rows)
            try:
                atomic_write_bytes(self._path, data)
            except OSError as exc:
                log.warning("could not write the session index (%s); it will be rebuilt", exc)
                with self._lock:
                    self._dirty = True
                return
            with self._lock:
                self._note_own_write()

    def _flush_loop(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                break
            time.sleep(FLUSH_DELAY)  # debounce a burst of writes into one flush
            self.flush()

    def close(self) -> None:
        """Stop the background writer and flush what is pending."""
        self._closed = True
        self._wake.set()
        self.flush()


class _WriteInFlight:
    def __init__(self, index: SessionIndex):
        self.index = index

    def __enter__(self):
        with self.index._lock:
            self.index._writes_in_flight += 1

    def __exit__(self, *exc):
        with self.index._lock:
            self.index._writes_in_flight -= 1
            self.index._note_own_write()
