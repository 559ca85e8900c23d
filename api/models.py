"""The JSON-file session model (DESIGN §2–3). Never imports Flask.

A session lives in ``sessions/<sid>.json``, written in this layout::

    {"session_id":"…","title":"…",…,"message_count":3,
    "messages":[
    {"role":"user",…},
    {"role":"assistant",…}
    ]}

Metadata keys come first and ``messages`` last, one message per line. Any JSON object
with a ``messages`` list is readable (hand-edited files too); the layout only makes two
things fast: :meth:`SessionStore.load_metadata_only` parses just the prefix before
``"messages"``, and :meth:`SessionStore.read_window` reads the newest messages from the
end of the file without parsing the rest.

Invariants kept here (DESIGN §3): a metadata-only object cannot be saved; every write
is atomic (:mod:`api.atomic`); a save that shrinks the transcript first snapshots the
on-disk file to ``<sid>.json.bak``; a corrupt file is reported, never overwritten.
Callers that mutate a session hold its lock (:func:`api.streams._get_session_agent_lock`).
"""
from __future__ import annotations

import json
import mmap
from contextlib import contextmanager
import os
import re
import secrets
import time
from pathlib import Path

from .atomic import FileRange, atomic_write_bytes
from .session_index import SessionIndex, stat_key
from .streams import _get_session_agent_lock

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RESERVED_IDS = {"_index"}
TITLE_MAX = 200
DEFAULT_TITLE = "New chat"
# Keys written first, in this order; unknown keys follow, then "messages".
METADATA_KEYS = (
    "session_id", "title", "manual_title", "created_at", "updated_at", "model", "workspace",
    "pinned", "archived", "message_count", "active_stream_id", "pending_user_message",
    "pending_started_at", "pending_assistant_message", "intentional_shrink_at",
)
# What a finished turn writes back over the stream fields.
CLEARED_STREAM_FIELDS = {"active_stream_id": None, "pending_user_message": None, "pending_started_at": None,
                         "pending_assistant_message": None}
# Kept in the file but not in the sidebar index / compact form.
PRIVATE_KEYS = ("pending_assistant_message", "intentional_shrink_at")
_HEAD_CHUNK = 16 * 1024


class SessionError(Exception):
    """Base class of the session store's errors."""


class InvalidSessionId(SessionError, ValueError):
    """The id does not match ``^[A-Za-z0-9_-]{1,64}$`` (checked before any path is built)."""


class SessionNotFound(SessionError, LookupError):
    """No file for this session id."""


class SessionUnreadable(SessionError):
    """The file exists but is not a readable session (truncated, wrong shape, bad UTF-8)."""


def validate_session_id(session_id) -> str:
    """Return ``session_id`` if it is safe to use in a path; raise :class:`InvalidSessionId`."""
    if not isinstance(session_id, str) or not SESSION_ID_RE.fullmatch(session_id) or session_id in RESERVED_IDS:
        raise InvalidSessionId(f"invalid session id {str(session_id)[:80]!r}")
    return session_id


def session_id_of_file(name: str) -> str | None:
    """The session id of a ``<sid>.json`` file name, or None for any other file."""
    if not name.endswith(".json"):
        return None
    sid = name[:-5]
    return sid if SESSION_ID_RE.fullmatch(sid) and sid not in RESERVED_IDS else None


def new_session_id() -> str:
    return secrets.token_hex(8)


def clean_text(value: str) -> str:
    """Replace lone surrogates (which JSON ``\\ud800`` escapes can produce) by U+FFFD."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def clean_json(value):
    """:func:`clean_text` applied to every string in a JSON value (keys too)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k): clean_json(v) for k, v in value.items()}
    return value


def clean_title(title: str) -> str:
    """A title as stored: valid UTF-8, one line, at most ``TITLE_MAX`` code points."""
    title = " ".join(clean_text(title).split())
    return title[:TITLE_MAX]


# ---------------------------------------------------------------- encoding


def public_metadata(meta: dict) -> dict:
    """``meta`` without the private keys: what the index and the API show."""
    return {k: v for k, v in meta.items() if k not in PRIVATE_KEYS}


def _ordered(meta: dict) -> dict:
    """Metadata in file order: ``METADATA_KEYS`` first, unknown keys after, never messages."""
    ordered = {k: meta[k] for k in METADATA_KEYS if k in meta}
    ordered.update((k, v) for k, v in meta.items() if k not in ordered and k != "messages")
    return ordered


def _dumps(value) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # a lone surrogate slipped past clean_json: escape it
        return json.dumps(value, ensure_ascii=True)


def encode_session(meta: dict, messages: list) -> bytes:
    """Serialise to the on-disk layout described in the module docstring."""
    ordered = _ordered(meta)
    head = _dumps(ordered)[:-1]
    sep = "," if ordered else ""
    body = ",\n".join(_dumps(m) for m in messages)
    return (f'{head}{sep}\n"messages":[\n{body}\n]}}\n').encode("utf-8")


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class _Incomplete(Exception):
    pass


def parse_header(text: str, complete: bool) -> tuple[dict, int]:
    """Parse the metadata keys of a session object up to its ``"messages"`` key.

    Returns ``(metadata, index of the "messages" key in text)``. Raises
    :class:`_Incomplete` if ``text`` is a prefix that ends too early (only when
    ``complete`` is False) and ``ValueError`` if it is not a session object.
    """
    def ws(i):
        return _WS.match(text, i).end()

    def fail(msg, i):
        if not complete and i >= len(text) - 1:
            raise _Incomplete()
        raise ValueError(msg)

    pos = ws(0)
    if text[pos:pos + 1] != "{":
        fail("not a JSON object", pos)
    pos += 1
    meta: dict = {}
    while True:
        pos = ws(pos)
        ch = text[pos:pos + 1]
        if ch != '"':
            fail("no \"messages\" list" if ch == "}" else "malformed JSON", pos)
        key_at = pos
        try:
            key, pos = json.decoder.scanstring(text, pos + 1)
            pos = ws(pos)
            if text[pos:pos + 1] != ":":
                fail("malformed JSON", pos)
            pos = ws(pos + 1)
            if key == "messages":
                if text[pos:pos + 1] != "[":
                    fail("\"messages\" is not a list", pos)
                return meta, key_at
            value, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            fail(f"malformed JSON: {exc.msg}", exc.pos)
        meta[key] = value
        pos = ws(pos)
        ch = text[pos:pos + 1]
        if ch == ",":
            pos += 1
        else:
            fail("no \"messages\" list" if ch == "}" else "malformed JSON", pos)


def _fast_header(text: str) -> tuple[dict, int] | None:
    """Our own layout puts ``\n"messages":[`` right after the metadata object; a raw
    newline cannot occur inside a JSON string, so that marker is unambiguous and the
    prefix parses with one C-speed ``json.loads``. None when the layout differs."""
    i = text.find('\n"messages":[')
    if i < 1 or text[i - 1] != ",":
        return None
    try:
        meta = json.loads(text[:i - 1] + "}")
    except ValueError:
        return None
    if not isinstance(meta, dict):
        return None
    return meta, len(text[:i + 1].encode("utf-8"))


def read_header(buf, size: int) -> tuple[dict, int]:
    """Parse the metadata prefix of a session file held in ``buf`` (bytes or mmap).

    Returns ``(metadata, byte offset of the "messages" key)``; reads as little of
    ``buf`` as it can. Raises ``ValueError`` (incl. UnicodeDecodeError) when unreadable.
    """
    n = _HEAD_CHUNK
    while True:
        complete = n >= size
        chunk = bytes(buf[: min(n, size)])
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            if complete or exc.start < len(chunk) - 3:
                raise ValueError(f"invalid UTF-8 at byte {exc.start}") from None
            text = chunk[: exc.start].decode("utf-8")
        fast = _fast_header(text)
        if fast is not None:
            return fast
        try:
            meta, key_at = parse_header(text, complete)
        except _Incomplete:
            n *= 4
            continue
        return meta, len(text[:key_at].encode("utf-8"))


def _check_shape(meta: dict, session_id: str) -> None:
    sid = meta.get("session_id", session_id)
    if sid != session_id:
        raise ValueError(f"file names session {str(sid)[:80]!r}, not {session_id!r}")


# ---------------------------------------------------------------- the model


class Session:
    """One conversation. ``meta`` holds the metadata keys, ``messages`` the transcript.

    Build one with :meth:`load`, :meth:`load_metadata_only` or :meth:`SessionStore.create`.
    """

    def __init__(self, store: "SessionStore", meta: dict, messages: list | None, metadata_only: bool = False):
        self._store = store
        self.meta = meta
        self.messages = [] if messages is None else messages
        self._loaded_metadata_only = metadata_only

    @classmethod
    def load(cls, session_id: str, store: "SessionStore") -> "Session":
        """Load a session in full. Raises InvalidSessionId, SessionNotFound, SessionUnreadable."""
        return store.load(session_id)

    @classmethod
    def load_metadata_only(cls, session_id: str, store: "SessionStore") -> "Session":
        """Load only the metadata prefix (fast, even for a 16 MB file). The result cannot be saved."""
        return store.load_metadata_only(session_id)

    @property
    def session_id(self) -> str:
        return self.meta["session_id"]

    @property
    def active_stream_id(self):
        return self.meta.get("active_stream_id")

    @property
    def message_count(self) -> int:
        if self._loaded_metadata_only:
            return int(self.meta.get("message_count") or 0)
        return len(self.messages)

    def save(self, *, touch: bool = True, intentional_shrink: bool = False) -> None:
        """Write the session atomically (DESIGN §3).

        ``touch`` sets ``updated_at`` to now. ``intentional_shrink`` records that a
        shrink is deliberate (undo, clear, edit) so start-up self-heal keeps it.
        Raises RuntimeError for a metadata-only object or an unsafe id, SessionUnreadable
        if the file on disk is corrupt (it is never overwritten), OSError if the disk fails
        (the previous file is then intact).
        """
        if self._loaded_metadata_only:
            raise RuntimeError(
                f"refusing to save metadata-only session {self.meta.get('session_id')!r}: "
                "reload it in full first (it would drop every message)")
        sid = self.meta.get("session_id")
        if not isinstance(sid, str) or not SESSION_ID_RE.match(sid) or sid in RESERVED_IDS:
            raise RuntimeError(f"refusing to save a session with an unsafe id {str(sid)[:80]!r}")
        self._store._write(self, touch=touch, intentional_shrink=intentional_shrink)

    # -- turn bookkeeping (DESIGN §4); callers hold the session lock -------------

    def _clear_stream_fields(self) -> None:
        self.meta.update(CLEARED_STREAM_FIELDS)
        self.meta.pop("pending_assistant_message", None)

    def pending_user(self) -> dict:
        """The pending user message of a running turn, as a message dict."""
        return {"role": "user", "content": self.meta.get("pending_user_message") or "",
                "timestamp": self.meta.get("pending_started_at") or time.time()}

    def settle_interrupted_turn(self) -> bool:
        """Turn a dead stream's leftovers into messages, both marked ``interrupted``.

        The pending user message becomes a real message; the last checkpointed partial
        reply (if any) follows it. Returns False if no stream was recorded.
        """
        if not self.meta.get("active_stream_id"):
            return False
        if self.meta.get("pending_user_message") is not None:
            self.messages.append(dict(self.pending_user(), status="interrupted"))
        partial = self.meta.get("pending_assistant_message")
        if isinstance(partial, dict):
            self.messages.append(dict(partial, status="interrupted"))
        self._clear_stream_fields()
        return True

    def compact(self) -> dict:
        """Metadata without messages or private keys, with ``message_count``."""
        out = public_metadata(self.meta)
        out["message_count"] = self.message_count
        return out


def _new_meta(session_id: str, title: str, model, workspace) -> dict:
    now = time.time()
    return {
        "session_id": session_id, "title": title or DEFAULT_TITLE, "manual_title": bool(title),
        "created_at": now, "updated_at": now, "model": model, "workspace": workspace,
        "pinned": False, "archived": False, "message_count": 0, "active_stream_id": None,
        "pending_user_message": None, "pending_started_at": None,
    }


class SessionStore:
    """All sessions of one state dir: the files, their backups and the sidebar index."""

    def __init__(self, sessions_dir: Path):
        self.dir = Path(sessions_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.index = SessionIndex(self.dir, self._index_entry_for_file, session_id_of_file)

    # -- paths and reading ------------------------------------------------

    def path(self, session_id: str) -> Path:
        return self.dir / f"{validate_session_id(session_id)}.json"

    def backup_path(self, session_id: str) -> Path:
        return self.dir / f"{validate_session_id(session_id)}.json.bak"

    def _open(self, session_id: str):
        path = self.path(session_id)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise SessionNotFound(f"no session {session_id!r}") from None
        except IsADirectoryError:
            raise SessionUnreadable(f"session {session_id!r}: not a file") from None

    def load(self, session_id: str) -> Session:
        """Full load. Raises InvalidSessionId, SessionNotFound, SessionUnreadable."""
        with self._open(session_id) as f:
            raw = f.read()
        return self._parse_full(session_id, raw)

    def _parse_full(self, session_id: str, raw: bytes) -> Session:
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise SessionUnreadable(f"session {session_id!r} is unreadable: {exc}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
            raise SessionUnreadable(f"session {session_id!r} is unreadable: not a session object")
        if not all(isinstance(m, dict) for m in obj["messages"]):
            raise SessionUnreadable(f"session {session_id!r} is unreadable: a message is not an object")
        try:
            _check_shape(obj, session_id)
        except ValueError as exc:
            raise SessionUnreadable(f"session {session_id!r} is unreadable: {exc}") from None
        messages = obj.pop("messages")
        obj["session_id"] = session_id
        obj["message_count"] = len(messages)
        return Session(self, obj, messages)

    @contextmanager
    def _mapped(self, session_id: str):
        """Open and map a session file and parse its metadata prefix.

        Yields ``(file, metadata, byte offset of the "messages" key, mmap, size)``; both
        are closed on exit. Raises like :meth:`load` (an empty file is unreadable, so
        the map always exists).
        """
        with self._open(session_id) as f:
            size = os.fstat(f.fileno()).st_size
            if not size:
                raise SessionUnreadable(f"session {session_id!r} is unreadable: the file is empty")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                try:
                    meta, key_at = read_header(mm, size)
                    _check_shape(meta, session_id)
                except ValueError as exc:
                    raise SessionUnreadable(f"session {session_id!r} is unreadable: {exc}") from None
                meta["session_id"] = session_id
                yield f, meta, key_at, mm, size

    def load_metadata_only(self, session_id: str) -> Session:
        """Parse only the metadata prefix; returns an unsavable Session (DESIGN §3 inv. 2)."""
        with self._mapped(session_id) as (_f, meta, _key_at, _mm, _size):
            pass
        if not isinstance(meta.get("message_count"), int):
            meta["message_count"] = self.load(session_id).message_count
        return Session(self, meta, None, metadata_only=True)

    def read_window(self, session_id: str, limit: int | None, before: int | None) -> tuple[dict, list, int]:
        """Messages ``[max(0, before-limit), before)`` and the metadata.

        Returns ``(metadata, messages, offset)``. ``before`` defaults to the message
        count, ``limit=None`` means all. Reads the tail of the file line by line when it
        is in our layout, so the newest page of a 16 MB session costs a few ms; falls back
        to a full parse otherwise. Raises like :meth:`load`.
        """
        with self._mapped(session_id) as (_f, meta, key_at, mm, _size):
            total = meta.get("message_count")
            if limit is not None and isinstance(total, int):
                end = total if before is None else max(0, min(before, total))
                start = max(0, end - limit)
                window = _tail_lines(mm, key_at, total, start, end)
                if window is not None:
                    return meta, window, start
        session = self.load(session_id)
        total = len(session.messages)
        end = total if before is None else max(0, min(before, total))
        start = 0 if limit is None else max(0, end - limit)
        return session.meta, session.messages[start:end], start

    def read_all_raw(self, session_id: str) -> tuple[dict, bytes]:
        """Metadata and the whole transcript as the JSON array bytes stored on disk.

        The array is validated (it must parse as a list of objects) but handed back as
        stored, so a response can pass 16 MB through without re-encoding it. Raises like
        :meth:`load`.
        """
        with self._mapped(session_id) as (_f, meta, key_at, mm, _size):
            open_at, close_at = mm.find(b"[", key_at), mm.rfind(b"\n]}")
            array = mm[open_at:close_at + 2] if 0 <= open_at < close_at and not mm[close_at + 3:].strip() else None
        try:
            messages = json.loads(array) if array is not None else None
        except ValueError:
            messages = None
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            session = self.load(session_id)  # not our layout: parse whole (raises if torn)
            return session.meta, _dumps(session.messages).encode("utf-8")
        meta["message_count"] = len(messages)
        return meta, array

    # -- writing ------------------------------------------------------------

    def create(self, title: str = "", model=None, workspace=None) -> Session:
        """Create and save a new, empty session with a fresh id."""
        sid = new_session_id()
        while self.path(sid).exists():
            sid = new_session_id()
        session = Session(self, _new_meta(sid, clean_title(title or ""), model, workspace), [])
        with _get_session_agent_lock(sid):
            session.save()
        return session

    def _write(self, session: Session, *, touch: bool, intentional_shrink: bool) -> None:
        with self.index.writing():
            self._write_locked(session, touch=touch, intentional_shrink=intentional_shrink)

    def _write_locked(self, session: Session, *, touch: bool, intentional_shrink: bool) -> None:
        sid = session.session_id
        path = self.path(sid)
        try:  # SessionUnreadable propagates: a corrupt file is never overwritten
            on_disk = self.load_metadata_only(sid).message_count
        except SessionNotFound:
            on_disk = None
        if on_disk is not None and len(session.messages) < on_disk:
            atomic_write_bytes(self.backup_path(sid), path.read_bytes())
            if intentional_shrink:
                session.meta["intentional_shrink_at"] = time.time()
        meta = dict(session.meta)
        if touch:
            meta["updated_at"] = time.time()
        meta["message_count"] = len(session.messages)
        atomic_write_bytes(path, encode_session(meta, session.messages))
        session.meta = meta
        self.index.update(sid, session.compact(), stat_key(path))

    def patch_metadata(self, session_id: str, changes: dict, *, touch: bool = True) -> dict:
        """Change metadata keys without re-serialising the messages (caller holds the lock).

        The new prefix is written followed by the file's own bytes from ``"messages"``
        on, copied verbatim in the kernel, so this path can never drop a message and
        costs about one file copy. Returns the new metadata. Raises like :meth:`load`
        (a torn file is never touched), or OSError with the old file intact.
        """
        return self._rewrite(session_id, changes, [], touch=touch)

    def append_messages(self, session_id: str, messages: list[dict], changes: dict, *,
                        touch: bool = True) -> dict:
        """Append ``messages`` and apply metadata ``changes`` in one atomic write (caller
        holds the lock). The existing transcript is copied verbatim, not re-encoded, so a
        turn's save of a 20 MB session costs a copy, not a re-serialisation. Returns the
        new metadata; raises like :meth:`patch_metadata`.
        """
        return self._rewrite(session_id, changes, messages, touch=touch)

    def _rewrite(self, session_id: str, changes: dict, new_messages: list[dict], *, touch: bool) -> dict:
        path = self.path(session_id)
        with self.index.writing(), self._mapped(session_id) as (f, meta, key_at, mm, size):
            total = meta.get("message_count")
            # In our layout the last message line must parse; anything else is parsed whole.
            sound = isinstance(total, int) and _tail_lines(mm, key_at, total, max(0, total - 1), total) is not None
            close_at = mm.rfind(b"\n]}") if sound else -1
            if not sound:
                f.seek(0)
                session = self._parse_full(session_id, f.read())  # SessionUnreadable if torn
                if new_messages:
                    session.messages.extend(new_messages)
                    session.meta.update(changes)
                    self._write(session, touch=touch, intentional_shrink=False)
                    return session.meta
                total = len(session.messages)
            meta.update(changes)
            if touch:
                meta["updated_at"] = time.time()
            ordered = _ordered(meta)
            if new_messages:
                ordered["message_count"] = total + len(new_messages)
                body = ",\n".join(_dumps(m) for m in new_messages)
                parts = [FileRange(f.fileno(), key_at, close_at - key_at),
                         (",\n" if total else "").encode() + f"{body}\n]}}\n".encode("utf-8")]
            else:
                parts = [FileRange(f.fileno(), key_at, size - key_at)]
            head = _dumps(ordered)[:-1].encode("utf-8")
            atomic_write_bytes(path, [head + (b",\n" if ordered else b"\n")] + parts)
        self.index.update(session_id, public_metadata(ordered), stat_key(path))
        return ordered

    def delete(self, session_id: str) -> bool:
        """Remove the file, its backup and its index entry (caller holds the lock).

        Returns False if there was nothing to delete.
        """
        with self.index.writing():
            return self._delete_files(session_id)

    def _delete_files(self, session_id: str) -> bool:
        found = False
        # The backup goes first: a crash in between leaves the session, never a lone
        # backup that start-up self-heal could mistake for lost messages.
        for p in (self.backup_path(session_id), self.path(session_id)):
            try:
                p.unlink()
                found = True
            except FileNotFoundError:
                pass
        self.index.remove(session_id)
        return found

    # -- the index ------------------------------------------------------------

    def _index_entry_for_file(self, session_id: str) -> dict:
        """Compact metadata of one file for the index; raises SessionUnreadable."""
        return self.load_metadata_only(session_id).compact()

    def close(self) -> None:
        self.index.close()


def _tail_lines(mm, key_at: int, total: int, start: int, end: int) -> list | None:
    """Messages ``[start, end)`` read backwards from the end of a file in our layout.

    Returns None when the file is not in that layout, so the caller parses it in full.
    """
    open_at = mm.find(b"[", key_at)
    if open_at < 0 or mm[open_at + 1:open_at + 2] != b"\n":
        return None
    close_at = mm.rfind(b"\n]}")
    if close_at < open_at or mm[close_at + 3:].strip():
        return None
    if total == 0:
        return [] if close_at == open_at + 2 else None
    out = []
    cur = close_at
    for i in range(total - 1, start - 1, -1):
        nl = mm.rfind(b"\n", open_at + 1, cur)
        if nl < open_at + 1:
            return None
        if i < end:
            line = mm[nl + 1:cur].rstrip()
            if line.endswith(b","):
                line = line[:-1]
            try:
                msg = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return None
            if not isinstance(msg, dict):
                return None
            out.append(msg)
        cur = nl
    if start == 0 and cur != open_at + 1:
        return None
    out.reverse()
    return out
