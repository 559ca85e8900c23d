"""Full-text search over session titles and message text (docs/api.md ``/api/sessions/search``).

A derived side index, ``search.sqlite`` beside the ``sessions/`` folder (SQLite FTS5
from the standard library). The session files stay the only source of truth: the file
may be deleted at any time and is rebuilt; a corrupt or older-schema file is replaced.
Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`)::

    sessions(id, session_id, updated_at, message_count, title,  the key each session was
             shrink_at)                                         indexed at; id = titles.rowid
    titles   FTS5(title)                                        one row per session
    docs(rowid, session_id, message_index, digest)              what each msgs row holds
    msgs     FTS5(session_id, message_index, body)              one row per message with text;
                                                                detail=none, prefix indexes 2–6

Keeping in sync cheaply: each session's key ``(updated_at, message_count, title)`` in
the sidebar index (``store.index.all()``) is compared with the key recorded here; only
sessions whose key differs are re-read, and within one only the messages whose digest
changed are rewritten (so a turn in a 3,000-message session writes two rows). The title
is part of the key because a rename does not touch ``updated_at``. A background thread
catches up at start-up (oldest sessions first, so rowids follow recency); each query
catches up inline when few sessions changed, else wakes the thread and waits a moment
for it; only if that is not enough (a first build of a large index) does it answer from
what is indexed, with ``partial: true``. Sessions gone from the sidebar index never
appear in results.

A message is indexed by :func:`indexed_text`: its text, reasoning and tool results.

Matching: every word of the query must occur in the title, or in one message (words are
runs of letters and digits; case and diacritics are folded). Results: sessions whose
title matches, most recently updated first; then sessions with a message containing the
exact words, newest message first; then, if there is room, sessions where the last word
is only the start of a longer word (as-you-type). Ordering by recency instead of BM25
keeps a query over words found in nearly every message at a few milliseconds: rows
stream newest first and the scan stops once ``limit`` sessions are found.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
import unicodedata
from pathlib import Path

from .errors import SessionError, SessionNotFound
from .models import SessionStore, message_text

log = logging.getLogger(__name__)
SCHEMA_VERSION = 5           # 4: tool results and reasoning are indexed too; 5: CJK grams
DB_NAME = "search.sqlite"
INLINE_BUDGET = 25          # sessions a query re-indexes itself before deferring to the thread
INLINE_WAIT = 0.1           # seconds a query waits for a busy catch-up before answering partial
FOLLOW_WAIT = 2.0           # seconds a query waits for the thread to index what it found changed
BATCH = 50                  # at most this many sessions …
BATCH_CHARS = 4_000_000     # … or this much text per transaction (bounds memory while catching up)
TRIM_AFTER_CHARS = 16_000_000  # a catch-up that read this much text hands freed memory back
QUIET_NS = 2_000_000_000    # see SearchIndex._current
MAX_TERMS = 16
SNIPPET_CHARS = 160
QUICK_SCAN_CHARS = 20_000   # texts longer than this look for a hit with Query.first_hit's quick path
QUICK_CANDIDATES = 50
_TOKEN = re.compile(r"[^\W_]+")
_CACHE_LOCK = threading.Lock()
_TOKENIZE = "tokenize = 'unicode61 remove_diacritics 2'"

_SCHEMA = f"""
CREATE TABLE sessions(id INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE, updated_at,
    message_count, title, shrink_at);
CREATE VIRTUAL TABLE titles USING fts5(title, grams, {_TOKENIZE});
CREATE TABLE docs(rowid INTEGER PRIMARY KEY, session_id TEXT NOT NULL, message_index INTEGER NOT NULL,
    digest TEXT NOT NULL);
CREATE INDEX docs_by_session ON docs(session_id, message_index);
CREATE VIRTUAL TABLE msgs USING fts5(session_id UNINDEXED, message_index UNINDEXED, body, grams, {_TOKENIZE},
    detail = none, prefix = '2 3 4 5 6');
"""


def indexed_text(message: dict) -> str:
    """What search finds a message by: its text (:func:`message_text`), then its
    reasoning, then each tool call's result (a string, or JSON), one per line block.
    Whole, whatever the size (a 1 MiB message, a 16 MiB tool result)."""
    parts = [message_text(message)]
    if isinstance(message.get("reasoning"), str):
        parts.append(message["reasoning"])
    for call in message.get("tool_calls") or []:
        result = call.get("result") if isinstance(call, dict) else None
        if isinstance(result, str):
            parts.append(result)
        elif result is not None:
            parts.append(json.dumps(result, ensure_ascii=False))
    return "\n\n".join(p for p in parts if p)


# ---------------------------------------------------------------- query text


def _fold(word: str) -> str:
    """Case- and diacritic-folded, as the FTS5 tokenizer compares words."""
    return "".join(c for c in unicodedata.normalize("NFKD", word.casefold()) if not unicodedata.combining(c))


# Chinese, Japanese and Korean are written without spaces between words, so the
# tokenizer would see a whole sentence as one word. Each run of these scripts is also
# indexed (column ``grams``) as its single characters and its overlapping pairs
# (東京都 → 東 京 都 東京 京都); a query's run becomes its pairs (or its one character),
# all required, so a word inside a sentence is found.
_CJK = re.compile("[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
                  "\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]+")


_WORD_END = re.compile(r"[^\W_]{1,64}$")
_WORD_START = re.compile(r"[^\W_]{1,64}")


def cjk_grams(text: str) -> str:
    """The CJK runs of ``text`` as space-separated characters and character pairs, and
    the letters glued to a run (``iPhone用`` → ``iPhone``: the tokenizer saw one word)."""
    out = []
    for m in _CJK.finditer(text):
        run = m.group()
        out.append(" ".join(run))
        out.append(" ".join(run[i:i + 2] for i in range(len(run) - 1)))
        left = _WORD_END.search(text, max(0, m.start() - 64), m.start())
        right = _WORD_START.match(text, m.end())
        for glued in (_CJK.split(left.group())[-1] if left else "", _CJK.split(right.group())[0] if right else ""):
            if glued:
                out.append(glued)
    return " ".join(p for p in out if p)


def _cjk_terms(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]


class Query:
    """What a user typed, as FTS5 MATCH expressions and a word matcher for snippets.

    Words are runs of letters and digits, so quotes, ``*``, ``NEAR``, ``-`` … are never
    syntax; a run of CJK characters inside a word is matched by its character pairs
    (:func:`cjk_grams`). ``exact`` requires every word; ``prefix`` also lets the last word
    (of two characters or more, not CJK) be the start of a longer one, or is None.
    ``empty`` when the text holds no word.
    """

    def __init__(self, text: str):
        words = _TOKEN.findall(unicodedata.normalize("NFC", text))[:MAX_TERMS]
        self.empty = not words
        plain, self._cjk, terms = [], [], []
        for w in words:
            for part in re.split(f"({_CJK.pattern})", w):
                if not part:
                    continue
                if _CJK.fullmatch(part):
                    self._cjk.append(part)
                    terms += _cjk_terms(part)
                else:
                    plain.append(part)
                    terms.append(part)
        self.exact = " ".join(f'"{t}"' for t in terms)
        last_plain = bool(plain) and not _CJK.search(words[-1]) if words else False
        self.prefix = self.exact + "*" if last_plain and len(words[-1]) >= 2 else None
        self._folded = [_fold(w) for w in plain]
        # Finds where a hit may be without folding every word of a long text (see first_hit).
        self._quick = re.compile("|".join(re.escape(w) for w in plain + self._cjk), re.IGNORECASE) if words else None

    def hits(self, text: str, start: int = 0, end: int | None = None):
        """``(start, end)`` of each word of ``text[start:end]`` that the query matches
        (for a CJK part: each place it occurs), in order."""
        end = len(text) if end is None else end
        found = []
        whole, last = set(self._folded), self._folded[-1] if self._folded else ""
        for m in _TOKEN.finditer(text, start, end):
            word = _fold(m.group())
            if word in whole or (self.prefix and word.startswith(last)):
                found.append((m.start(), m.end()))
        for part in self._cjk:
            at = text.find(part, start, end)
            while at >= 0:
                found.append((at, at + len(part)))
                at = text.find(part, at + len(part), end)
        yield from sorted(found)

    def first_hit(self, text: str) -> tuple[int, int] | None:
        """The first of :meth:`hits` in ``text``, or (rarely) a later one.

        Folding every word of a 1 MiB message takes a few hundred ms, so the words are
        first looked for as they were typed (ignoring case); each place found is checked
        with :meth:`hits` from the start of its word. Only when that finds nothing (the
        text differs by diacritics or another folding) is the whole text scanned.
        """
        if self._quick is not None and len(text) > QUICK_SCAN_CHARS:
            for n, m in enumerate(self._quick.finditer(text)):
                if n >= QUICK_CANDIDATES:
                    break
                lo = m.start()
                while lo > 0 and m.start() - lo < 64 and _TOKEN.match(text, lo - 1, lo):
                    lo -= 1
                if lo > 0 and _TOKEN.match(text, lo - 1, lo):
                    continue                  # inside a word longer than we look back
                hit = next(self.hits(text, lo, min(len(text), m.end() + 64)), None)
                if hit is not None and hit[1] < min(len(text), m.end() + 64):
                    return hit
        return next(self.hits(text), None)

    def snippet(self, text: str) -> tuple[str, list[list[int]]]:
        """About :data:`SNIPPET_CHARS` characters of ``text`` around its first hit, on one
        line, with ``…`` where it was cut; and the ``[start, end)`` of each hit in it.
        Costs milliseconds even for a 1 MiB message (:meth:`first_hit`)."""
        first = self.first_hit(text)
        at = first[0] if first else 0
        lo = max(0, at - SNIPPET_CHARS // 3)
        if lo:
            space = text.find(" ", lo, at)
            lo = space + 1 if space >= 0 else lo
        hi = min(len(text), lo + SNIPPET_CHARS)
        if hi < len(text):
            space = text.rfind(" ", at + 1, hi)
            hi = space if space > at else hi
        piece = " ".join(text[lo:hi].split())
        lead = "…" if lo > 0 else ""
        out = lead + piece + ("…" if hi < len(text) else "")
        return out, [[a + len(lead), b + len(lead)] for a, b in self.hits(piece)]


def _key(row: dict) -> tuple:
    """``(updated_at, message_count, title)``: a change in any of them means re-index."""
    return row.get("updated_at"), row.get("message_count"), row.get("title")


def _when(key: tuple) -> float:
    return key[0] if isinstance(key[0], (int, float)) else 0.0


def _shrink_marker(meta: dict):
    """What changes when a session is deliberately shrunk (undo, clear, edit): the
    generation its last deliberate shrink backed up (or, in files of earlier versions,
    that shrink's time). A changed marker means "read the whole session again"."""
    marker = meta.get("intentional_shrink_generation")
    return marker if marker is not None else meta.get("intentional_shrink_at")


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).hexdigest()


# ---------------------------------------------------------------- the index


class SearchIndex:
    """The FTS5 side index of one session store. Thread-safe.

    ``db_path`` is the SQLite file; ``store`` the session store it mirrors. Its locks
    are leaves (nothing else is taken while holding them); session files are read with
    only ``_sync_lock`` held, which merely keeps two catch-ups from running at once.
    """

    def __init__(self, db_path: Path, store: SessionStore):
        self.path = Path(db_path)
        self.store = store
        self._db_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self._recorded: dict[str, tuple] = {}
        self._shrinks: dict[str, object] = {}
        self._closed = False
        self._chars_read = 0
        self._current_cache: tuple | None = None
        self._runs = threading.Condition()
        self._runs_started = self._runs_done = 0
        self._conn = self._open()

    # -- the file -------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        """Open (or create) the file; a corrupt or older-schema file is replaced."""
        for attempt in (1, 2):
            conn = None
            try:
                conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                    if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                        raise sqlite3.DatabaseError("older search index schema")
                    conn.executescript(_SCHEMA)
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                rows = conn.execute("SELECT session_id, updated_at, message_count, title, shrink_at FROM sessions")
                self._recorded, self._shrinks = {}, {}
                for sid, updated, count, title, shrink in rows:
                    self._recorded[sid], self._shrinks[sid] = (updated, count, title), shrink
                return conn
            except sqlite3.DatabaseError as exc:
                if conn is not None:
                    conn.close()
                if attempt == 2:
                    raise
                log.warning("search index %s is unusable (%s); rebuilding it", self.path, exc)
                self._remove_files()
        raise AssertionError("unreachable")

    def _remove_files(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    def _reset(self, exc: Exception) -> None:
        """The file broke while running: start over with an empty index."""
        log.warning("search index %s failed (%s); rebuilding it", self.path, exc)
        with self._db_lock:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._remove_files()
            self._conn = self._open()

    def close(self) -> None:
        """Stop the catch-up thread and close the file."""
        self._closed = True
        self._wake.set()
        with self._sync_lock, self._db_lock:
            self._conn.close()

    # -- keeping in sync --------------------------------------------------------

    def _current(self) -> dict[str, tuple]:
        """``{session_id: key}`` of the sidebar index.

        Every write renames a file into the sessions folder, which moves the folder's
        mtime; while it stays where it was when the last answer was computed, that answer
        still holds. It is trusted only if the folder had been quiet for
        :data:`QUIET_NS` when it was computed, so a write in the same clock tick, or one
        whose index update was still under way, is never missed.
        """
        observed = time.time_ns()
        try:
            mtime = os.stat(self.store.dir).st_mtime_ns
        except OSError:
            mtime = None
        cached = self._current_cache
        if cached is not None and mtime is not None and cached[0] == mtime and cached[1] - mtime > QUIET_NS:
            return cached[2]
        current = {row["session_id"]: _key(row) for row in self.store.index.all() if row.get("session_id")}
        self._current_cache = (mtime, observed, current)
        return current

    def catch_up(self, budget: int | None = None, current: dict | None = None) -> bool:
        """Re-index changed sessions (oldest first) and forget deleted ones.

        ``current`` is ``{sid: key}`` as :meth:`_current` returns it (read now if None).
        With ``budget``, gives up (returning False, nothing done) when more than
        ``budget`` sessions changed or another catch-up is still running after
        :data:`INLINE_WAIT` seconds. Returns True when the index matched ``current``.
        """
        if not self._sync_lock.acquire(timeout=-1 if budget is None else INLINE_WAIT):
            return False
        try:
            current = self._current() if current is None else current
            recorded = self._recorded
            changed = sorted((sid for sid, key in current.items() if recorded.get(sid) != key),
                             key=lambda sid: _when(current[sid]))
            gone = [sid for sid in recorded if sid not in current]
            if budget is not None and len(changed) > budget:
                return False
            for i in range(0, len(gone), BATCH):
                self._write(lambda c, ids=gone[i:i + BATCH]: [self._forget(c, sid) for sid in ids])
            batch, chars = [], 0
            for n, sid in enumerate(changed, 1):
                item = self._read(sid, current[sid])
                batch.append(item)
                size = sum(len(t) for _i, t in item[2])
                chars += size
                self._chars_read += size
                if len(batch) >= BATCH or chars >= BATCH_CHARS or n == len(changed):
                    self._write(lambda c, items=batch: [self._apply(c, *it) for it in items])
                    batch, chars = [], 0
            return True
        except sqlite3.DatabaseError as exc:
            self._reset(exc)
            return False
        finally:
            self._sync_lock.release()

    def _read(self, sid: str, key: tuple) -> tuple:
        """``(sid, key, [(message_index, text)], shrink marker, first index read)`` from the
        session file, read from its end when it only grew; key None if it is gone.

        ``key`` is the sidebar index's key, recorded as is: if the file moved on since,
        the next catch-up sees the difference and reads the rest.
        """
        old, count = self._recorded.get(sid), key[1]
        if old is not None and isinstance(old[1], int) and isinstance(count, int) and 0 < old[1] <= count:
            tail = self._read_tail(sid, old[1], count)
            if tail is not None:
                return (sid, key) + tail
        try:
            session = self.store.load(sid)
        except SessionNotFound:
            return sid, None, [], None, 0
        except (SessionError, OSError) as exc:
            log.info("search: not indexing %s: %s", sid, exc)
            return sid, None, [], None, 0
        texts = [(i, indexed_text(m)) for i, m in enumerate(session.messages)]
        return sid, key, [(i, t) for i, t in texts if t.strip()], _shrink_marker(session.meta), 0

    def _read_tail(self, sid: str, old_count: int, count: int) -> tuple | None:
        """``(texts, shrink marker, first index)`` for messages ``old_count - 1 …`` of a
        session that only grew, or None (read it all)."""
        try:
            meta, window, offset = self.store.read_window(sid, count - old_count + 1, None)
        except (SessionError, OSError):
            return None
        if offset != old_count - 1 or not window or _shrink_marker(meta) != self._shrinks.get(sid):
            return None
        first = indexed_text(window[0])
        with self._db_lock:
            row = self._conn.execute("SELECT digest FROM docs WHERE session_id=? AND message_index=?",
                                     (sid, offset)).fetchone()
        if (row[0] if row else None) != (_digest(first) if first.strip() else None):
            return None                       # rewritten in place: read it all
        texts = [(offset + i, indexed_text(m)) for i, m in enumerate(window)]
        return [(i, t) for i, t in texts if t.strip()], _shrink_marker(meta), offset

    def _write(self, work) -> None:
        with self._db_lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _forget(self, conn: sqlite3.Connection, sid: str) -> None:
        conn.execute("DELETE FROM titles WHERE rowid IN (SELECT id FROM sessions WHERE session_id=?)", (sid,))
        conn.execute("DELETE FROM msgs WHERE rowid IN (SELECT rowid FROM docs WHERE session_id=?)", (sid,))
        conn.execute("DELETE FROM docs WHERE session_id=?", (sid,))
        conn.execute("DELETE FROM sessions WHERE session_id=?", (sid,))
        self._recorded.pop(sid, None)
        self._shrinks.pop(sid, None)

    def _apply(self, conn: sqlite3.Connection, sid: str, key: tuple | None, texts: list, shrink,
               first: int) -> None:
        """Bring one session's rows to ``texts`` (messages ``first`` on; rows before it stay),
        rewriting only rows whose digest changed; ``key`` None forgets the session."""
        if key is None:
            self._forget(conn, sid)
            return
        have = {mi: (rowid, dg) for rowid, mi, dg in
                conn.execute("SELECT rowid, message_index, digest FROM docs WHERE session_id=? AND message_index>=?",
                             (sid, first))}
        want = {mi: (text, _digest(text)) for mi, text in texts}
        for mi, (rowid, dg) in have.items():
            if want.get(mi, (None, None))[1] != dg:
                conn.execute("DELETE FROM msgs WHERE rowid=?", (rowid,))
                conn.execute("DELETE FROM docs WHERE rowid=?", (rowid,))
        for mi, (text, dg) in want.items():
            if have.get(mi, (None, None))[1] != dg:
                rowid = conn.execute("INSERT INTO docs(session_id, message_index, digest) VALUES (?,?,?)",
                                     (sid, mi, dg)).lastrowid
                conn.execute("INSERT INTO msgs(rowid, session_id, message_index, body, grams) VALUES (?,?,?,?,?)",
                             (rowid, sid, mi, text, cjk_grams(text)))
        row = conn.execute("SELECT id, title FROM sessions WHERE session_id=?", (sid,)).fetchone()
        if row is None:
            sess_id = conn.execute("INSERT INTO sessions(session_id, updated_at, message_count, title, shrink_at)"
                                   " VALUES (?,?,?,?,?)", (sid, *key, shrink)).lastrowid
        else:
            sess_id = row[0]
            conn.execute("UPDATE sessions SET updated_at=?, message_count=?, title=?, shrink_at=? WHERE id=?",
                         (*key, shrink, sess_id))
        if row is None or row[1] != key[2]:
            conn.execute("DELETE FROM titles WHERE rowid=?", (sess_id,))
            conn.execute("INSERT INTO titles(rowid, title, grams) VALUES (?,?,?)",
                         (sess_id, str(key[2] or ""), cjk_grams(str(key[2] or ""))))
        self._recorded[sid], self._shrinks[sid] = key, shrink

    def start(self) -> None:
        """Start the background catch-up thread (idempotent) and wake it: it runs now,
        and again whenever a query finds more changes than it indexes inline."""
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="search-index", daemon=True)
            self._worker.start()
        self._wake.set()

    def _run(self) -> None:
        _lower_thread_priority()
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            with self._runs:
                self._runs_started += 1
            before = self._chars_read
            try:
                self.catch_up()
            except Exception:  # never let the thread die: the next wake retries
                log.exception("search index catch-up failed")
            with self._runs:
                self._runs_done += 1
                self._runs.notify_all()
            if self._chars_read - before > TRIM_AFTER_CHARS:
                _return_freed_memory()

    def _catch_up_in_background(self) -> bool:
        """Wake the thread and wait for a run that starts after now to finish: up to
        :data:`FOLLOW_WAIT` s if the thread was idle, :data:`INLINE_WAIT` s if it is busy
        (a first build of a large index takes a while; queries meanwhile answer partial)."""
        with self._runs:
            busy = self._runs_started > self._runs_done
            target = self._runs_started + 1
        self.start()
        with self._runs:
            return self._runs.wait_for(lambda: self._runs_done >= target, INLINE_WAIT if busy else FOLLOW_WAIT)

    # -- querying ---------------------------------------------------------------

    def search(self, text: str, limit: int = 20) -> dict:
        """``{results: [{session_id, title, snippet, message_index, match_ranges}], partial}``.

        One result per session, in the order of the module docstring. ``message_index``
        is the matching message's index, or None for a title match; ``snippet`` is one
        line of plain text around the hit (the title for a title match);
        ``match_ranges`` are ``[start, end)`` character offsets of the matched words in
        ``snippet``. ``partial`` is True while sessions are still being indexed.
        """
        query = Query(text)
        if query.empty:
            return {"results": [], "partial": False}
        current = self._current()
        fresh = self.catch_up(budget=INLINE_BUDGET, current=current) or self._catch_up_in_background()
        try:
            with self._db_lock:
                hits = self._hits(query, limit, current)
        except sqlite3.OperationalError as exc:
            if "fts5" not in str(exc):
                self._reset(exc)
                self.start()
            log.warning("search %r failed: %s", text[:200], exc)
            return {"results": [], "partial": True}
        except sqlite3.DatabaseError as exc:
            self._reset(exc)
            self.start()
            return {"results": [], "partial": True}
        results = []
        for sid, mi, body in hits:
            title = str(current[sid][2] or "")
            snippet, ranges = query.snippet(title if mi is None else body)
            results.append({"session_id": sid, "title": title, "snippet": snippet, "message_index": mi,
                            "match_ranges": ranges})
        return {"results": results, "partial": not fresh}

    def _hits(self, query: Query, limit: int, current: dict) -> list[tuple[str, int | None, str]]:
        """``[(session_id, message_index or None, message text)]``, at most ``limit``."""
        conn = self._conn
        titled = [sid for (sid,) in conn.execute(
            "SELECT s.session_id FROM titles JOIN sessions s ON s.id = titles.rowid WHERE titles MATCH ?",
            (query.prefix or query.exact,)) if sid in current]
        titled.sort(key=lambda sid: -_when(current[sid]))
        found: dict[str, tuple[int | None, int | None]] = {sid: (None, None) for sid in titled[:limit]}
        for match in (query.exact, query.prefix):
            if match is None or len(found) >= limit:
                continue
            for rowid, sid, mi in conn.execute("SELECT rowid, session_id, message_index FROM msgs"
                                               " WHERE msgs MATCH ? ORDER BY rowid DESC", (match,)):
                if sid not in found and sid in current:      # not deleted since it was indexed
                    found[sid] = (int(mi), rowid)
                    if len(found) >= limit:
                        break
        out = []
        for sid, (mi, rowid) in found.items():
            body = ""
            if rowid is not None:
                row = conn.execute("SELECT body FROM msgs WHERE rowid=?", (rowid,)).fetchone()
                body = row[0] if row else ""
            out.append((sid, mi, body))
        return out


def _lower_thread_priority() -> None:
    """Nice the calling thread (Linux: a thread is a task), so a first build of a large
    index yields the CPU to requests; elsewhere a no-op."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def _return_freed_memory() -> None:
    """Ask glibc to hand freed heap pages back to the OS (parsing big sessions leaves
    tens of MB in the indexing thread's arena); a no-op without glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# ---------------------------------------------------------------- wiring


def index_for(app, store: SessionStore) -> SearchIndex:
    """The search index of ``store``: ``search.sqlite`` beside its ``sessions/`` folder
    (``<state-dir>/search.sqlite`` for the default profile), opened on first use with its
    catch-up thread started. Cached in ``app.extensions["hermes_search"]``."""
    cache = app.extensions.setdefault("hermes_search", {})
    path = Path(store.dir).parent / DB_NAME
    with _CACHE_LOCK:
        index = cache.get(path)
        if index is not None and index.store is not store:   # the profile was deleted and re-created
            index.close()
            index = None
        if index is None:
            index = cache[path] = SearchIndex(path, store)
            index.start()
    return index


def init_app(app) -> SearchIndex:
    """Open the default store's index at start-up, so its catch-up runs in the background."""
    return index_for(app, app.extensions["hermes"].store)


def search_sessions(app, store: SessionStore, query: str, limit: int) -> dict:
    """:meth:`SearchIndex.search` over ``store`` (the request's profile)."""
    return index_for(app, store).search(query, limit)
