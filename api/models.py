"""The JSON-file session model and store (docs/architecture.md §2–3). Never imports Flask.

A session is ``sessions/<sid>.json`` in the layout of :mod:`api.codec` (metadata first,
one message per line, ``messages`` last); a running turn's content is in its journal
beside it (:mod:`api.journal`); ``<sid>.json.bak`` is the previous version, written only
when a save would shrink the transcript; the sidebar index is :mod:`api.session_index`.

Invariants kept here (docs/architecture.md §3): a metadata-only object cannot be saved; every write
is atomic (:mod:`api.atomic`); a shrinking save snapshots the on-disk file first, and
a deliberate one names that backup's generation; a corrupt file is reported, never
overwritten; the metadata part stays small. Callers that mutate a session hold its lock
(:func:`api.streams.session_lock`).
"""
from __future__ import annotations

import json
import mmap
from contextlib import contextmanager
import os
import logging
import re
import secrets
import time
from pathlib import Path

from . import session_events
from . import versions
from .atomic import FileRange, atomic_write_bytes
from .attachment_store import AttachmentStore
from .errors import InvalidSessionId, SessionNotFound, SessionUnreadable
from .codec import (array_close, clean_text, dumps_json, encode_session, ordered_metadata, read_header,
                    tail_messages)
from .journal import PendingTurn, extend_reply, journal_path, read_journal, remove_journal
from .session_index import SessionIndex, stat_key
from .streams import session_lock

log = logging.getLogger(__name__)

SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # always used with fullmatch
RESERVED_IDS = {"_index"}
TITLE_MAX = 200
# Any other metadata string (model, workspace, …): longer values are refused with 400,
# so the metadata part of a file stays small (docs/architecture.md §3 invariant 8).
META_STRING_MAX_BYTES = 400
DEFAULT_TITLE = "New chat"
# Written by earlier versions (and by the upstream system): a running turn's content in
# the metadata. Still read when settling an interrupted turn; never written any more.
LEGACY_PENDING_KEYS = ("pending_user_message", "pending_started_at", "pending_assistant_message")
# What a finished turn writes back over the stream fields (a legacy key set to None is removed).
CLEARED_STREAM_FIELDS = {"active_stream_id": None, **{k: None for k in LEGACY_PENDING_KEYS}}
# Kept in the file but not shown by the API.
PRIVATE_KEYS = ("generation", "intentional_shrink_generation", "intentional_shrink_at",
                "version_points") + LEGACY_PENDING_KEYS
# The sidebar's fields: all that the index keeps and the list returns, with their types.
SIDEBAR_FIELDS = {
    "session_id": str, "title": str, "manual_title": bool, "created_at": float, "updated_at": float,
    "model": str, "workspace": str, "pinned": bool, "archived": bool, "message_count": int,
    "active_stream_id": str, "project_id": str, "tags": list,
}
TAGS_MAX = 32  # a session's tags kept in a sidebar row (api.projects.clean_tags allows as many)


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


def clean_title(title: str) -> str:
    """A title as stored: valid UTF-8, one line, at most ``TITLE_MAX`` code points."""
    title = " ".join(clean_text(title).split())
    return title[:TITLE_MAX]


# ---------------------------------------------------------------- encoding


def message_text(message: dict) -> str:
    """The plain text of an OpenAI-style message: ``content`` as a string, or the text
    parts of a content list joined by newlines; ``""`` when there is none."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p if isinstance(p, str) else p.get("text") for p in content if isinstance(p, (str, dict))]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def public_metadata(meta: dict) -> dict:
    """``meta`` without the private keys, the sidebar's fields coerced to their types
    (:func:`sidebar_row`): what ``GET /api/session`` shows, so a hand-edited
    ``"pinned": "yes"`` reads the same there as in the list."""
    out = {k: v for k, v in meta.items() if k not in PRIVATE_KEYS and k != "versions"}
    if meta.get("version_points"):  # the stored versions, summed up (api.versions)
        out["versions"] = versions.summary(meta)
    row = sidebar_row(meta)
    if not isinstance(meta.get("message_count"), int):
        row.pop("message_count")
    out.update((k, v) for k, v in row.items() if k in meta or v is not None)
    return out


def check_meta_string(name: str, value: str | None) -> str | None:
    """``value`` if it may be stored as metadata ``name``; ValueError when it is longer
    than :data:`META_STRING_MAX_BYTES` UTF-8 bytes (the route answers 400)."""
    if value is not None and len(clean_text(value).encode("utf-8")) > META_STRING_MAX_BYTES:
        raise ValueError(f"{name} is longer than {META_STRING_MAX_BYTES} bytes")
    return value


def _coerce(typ, value):
    """``value`` as ``typ`` for a sidebar row, or None if it cannot be (a hand-edited
    or foreign file with ``"updated_at": "2024-05-01"`` must not break the list)."""
    if value is None:
        return None
    if typ is bool:
        return value if isinstance(value, bool) else None
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                try:
                    from datetime import datetime
                    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
                except ValueError:
                    return None
        return None
    if typ is list:  # tags: strings only, bounded
        return [clean_text(t)[:64] for t in value if isinstance(t, str)][:TAGS_MAX] if isinstance(value, list) else None
    if typ is int:
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
    if isinstance(value, str):
        return clean_title(value) if len(value) > TITLE_MAX else clean_text(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def sidebar_row(meta: dict) -> dict:
    """The sidebar's fields of ``meta`` (:data:`SIDEBAR_FIELDS`), each coerced to its
    type or None, so every row is small and sortable whatever the file holds."""
    row = {k: _coerce(t, meta.get(k)) for k, t in SIDEBAR_FIELDS.items()}
    row["title"] = row["title"] or DEFAULT_TITLE
    row["pinned"] = bool(row["pinned"])
    row["archived"] = bool(row["archived"])
    row["manual_title"] = bool(row["manual_title"])
    row["updated_at"] = row["updated_at"] if row["updated_at"] is not None else row["created_at"] or 0.0
    row["message_count"] = row["message_count"] or 0
    row["tags"] = row["tags"] or []
    return row


def _generation(meta: dict) -> int:
    g = meta.get("generation")
    return g if isinstance(g, int) and not isinstance(g, bool) and g >= 0 else 0


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
        """Write the session atomically (docs/architecture.md §3).

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
        if not isinstance(sid, str) or not SESSION_ID_RE.fullmatch(sid) or sid in RESERVED_IDS:
            raise RuntimeError(f"refusing to save a session with an unsafe id {str(sid)[:80]!r}")
        self._store._write(self, touch=touch, intentional_shrink=intentional_shrink)

    def compact(self) -> dict:
        """The sidebar row (:func:`sidebar_row`): what the index keeps and the list shows."""
        row = sidebar_row(self.meta)
        row["message_count"] = self.message_count
        return row


def legacy_pending_user(meta: dict) -> dict | None:
    """The pending user message an earlier version kept in the metadata, as a message."""
    text = meta.get("pending_user_message")
    if text is None:
        return None
    started = meta.get("pending_started_at")
    return {"role": "user", "content": text if isinstance(text, str) else json.dumps(text),
            "timestamp": started if isinstance(started, (int, float)) else time.time()}


def _new_meta(session_id: str, title: str, model, workspace) -> dict:
    now = time.time()
    return {
        "session_id": session_id, "title": title or DEFAULT_TITLE, "manual_title": bool(title),
        "created_at": now, "updated_at": now, "model": model, "workspace": workspace,
        "pinned": False, "archived": False, "message_count": 0, "active_stream_id": None,
    }


class SessionStore:
    """All sessions of one state dir: the files, their backups and the sidebar index."""

    def __init__(self, sessions_dir: Path):
        self.dir = Path(sessions_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.index = SessionIndex(self.dir, self._index_entry_for_file, session_id_of_file)
        self.attachments = AttachmentStore(self.dir.parent / "attachments")  # api.attachment_store
        self.attachments.sweep_incoming(older_than=3600)

    # -- paths and reading ------------------------------------------------

    def path(self, session_id: str) -> Path:
        return self.dir / f"{validate_session_id(session_id)}.json"

    def backup_path(self, session_id: str) -> Path:
        return self.dir / f"{validate_session_id(session_id)}.json.bak"

    def journal_path(self, session_id: str) -> Path:
        """The running turn's journal (:mod:`api.journal`)."""
        return journal_path(self.dir, validate_session_id(session_id))

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
        """Parse only the metadata prefix; returns an unsavable Session (docs/architecture.md §3 inv. 2)."""
        with self._mapped(session_id) as (_f, meta, _key_at, _mm, _size):
            pass
        if not isinstance(meta.get("message_count"), int):
            meta["message_count"] = self.load(session_id).message_count
        return Session(self, meta, None, metadata_only=True)

    def read_window(self, session_id: str, limit: int | None, before: int | None) -> tuple[dict, list, int]:
        """Messages ``[max(0, before-limit), before)`` and the metadata.

        Returns ``(metadata, messages, offset)``. ``before`` defaults to the message
        count, ``limit=None`` means all. Reads the tail of the file line by line when it
        is in our layout, so the newest page of a 16 MB session costs a few ms; in any
        other layout (the upstream's) reads the window through an index of the messages
        built once per file version (:func:`api.codec.window_any_layout`); falls back to
        a full parse when neither fits. Raises like :meth:`load`.
        """
        from .codec import window_any_layout
        with self._mapped(session_id) as (f, meta, key_at, mm, size):
            total = meta.get("message_count")
            if limit is not None and isinstance(total, int):
                end = total if before is None else max(0, min(before, total))
                start = max(0, end - limit)
                window = tail_messages(mm, key_at, total, start, end)
                if window is not None:
                    return meta, window, start
            # another layout (the upstream's): an index of the messages, built once per file version
            found = window_any_layout(mm, key_at, size, os.fstat(f.fileno()), limit, before)
            if found is not None and found[0].get("session_id", session_id) == session_id:
                extra, window, start, total, _extent = found
                meta.update(extra)
                meta.update(session_id=session_id, message_count=total)
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
        from .codec import array_close, window_any_layout
        with self._mapped(session_id) as (f, meta, key_at, mm, size):
            open_at, close_at = mm.find(b"[", key_at), array_close(mm, size)
            array = mm[open_at:close_at + 2] if 0 <= open_at < close_at else None
            if array is None:  # another layout (the upstream's): the array's extent from its index
                found = window_any_layout(mm, key_at, size, os.fstat(f.fileno()), 0, 0)
                if found is not None and found[0].get("session_id", session_id) == session_id:
                    meta.update(found[0])
                    array = mm[found[4][0]:found[4][1] + 1]
        try:
            messages = json.loads(array) if array is not None else None
        except ValueError:
            messages = None
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            session = self.load(session_id)  # not our layout: parse whole (raises if torn)
            return session.meta, dumps_json(session.messages).encode("utf-8")
        meta["message_count"] = len(messages)
        return meta, array

    # -- writing ------------------------------------------------------------

    def create(self, title: str = "", model=None, workspace=None, project_id=None) -> Session:
        """Create and save a new, empty session with a fresh id (in project
        ``project_id`` when given: the caller checks that the project exists).

        Raises ValueError if ``model``, ``workspace`` or ``project_id`` is longer than
        :data:`META_STRING_MAX_BYTES` (nothing is written).
        """
        check_meta_string("model", model)
        check_meta_string("workspace", workspace)
        check_meta_string("project_id", project_id)
        sid = new_session_id()
        while self.path(sid).exists():
            sid = new_session_id()
        meta = _new_meta(sid, clean_title(title or ""), model, workspace)
        if project_id:
            meta["project_id"] = project_id
        session = Session(self, meta, [])
        with session_lock(sid):
            session.save()
        return session

    def create_many(self, items: list[dict], *, keep_times: bool) -> list[Session]:
        """Write each ``{"meta", "messages"}`` as a new session with a fresh id, one
        atomic save each (duplicate, import). ``keep_times`` keeps the items'
        ``created_at``/``updated_at`` (else now); stream fields are never copied.

        All or nothing: if a write fails (OSError, e.g. a full disk) the sessions
        already written are deleted again and the error is raised.
        """
        written: list[Session] = []
        try:
            for item in items:
                sid = new_session_id()
                while self.path(sid).exists():
                    sid = new_session_id()
                meta = _new_meta(sid, "", None, None)
                meta.update({k: v for k, v in item["meta"].items()
                             if k not in LEGACY_PENDING_KEYS and k not in PRIVATE_KEYS
                             and (keep_times or k not in ("created_at", "updated_at"))})
                meta.update(active_stream_id=None, session_id=sid, message_count=len(item["messages"]))
                session = Session(self, meta, list(item["messages"]))
                with session_lock(sid):
                    session.save(touch=False)
                written.append(session)
        except BaseException:
            for session in written:
                with session_lock(session.session_id):
                    self.delete(session.session_id)
            raise
        return written

    def create_with_id(self, session_id: str, meta: dict, messages: list[dict]) -> Session:
        """Write a new session that keeps ``session_id`` (a migration keeps the source's
        ids), with ``meta``'s times as given and no stream fields, in one atomic save.

        Raises InvalidSessionId, FileExistsError if a session of that id exists (nothing
        is written), ValueError for a model or workspace over the metadata limit.
        """
        validate_session_id(session_id)
        check_meta_string("model", meta.get("model"))
        check_meta_string("workspace", meta.get("workspace"))
        with session_lock(session_id):
            if self.path(session_id).exists():
                raise FileExistsError(f"session {session_id!r} already exists")
            full = _new_meta(session_id, "", None, None)
            full.update({k: v for k, v in meta.items() if k not in LEGACY_PENDING_KEYS and k not in PRIVATE_KEYS})
            full.update(active_stream_id=None, session_id=session_id, message_count=len(messages))
            session = Session(self, full, list(messages))
            session.save(touch=False)
        return session

    def _write(self, session: Session, *, touch: bool, intentional_shrink: bool) -> None:
        with self.index.writing():
            self._write_locked(session, touch=touch, intentional_shrink=intentional_shrink)

    def _write_locked(self, session: Session, *, touch: bool, intentional_shrink: bool) -> None:
        sid = session.session_id
        path = self.path(sid)
        try:  # SessionUnreadable propagates: a corrupt file is never overwritten
            on_disk = self.load_metadata_only(sid)
        except SessionNotFound:
            on_disk = None
        meta = {k: v for k, v in session.meta.items() if v is not None or k not in LEGACY_PENDING_KEYS}
        if on_disk is not None and len(session.messages) < on_disk.message_count:
            atomic_write_bytes(self.backup_path(sid), path.read_bytes())
            if intentional_shrink:  # invariant 9: names the backup by its own generation, no clock
                meta["intentional_shrink_generation"] = _generation(on_disk.meta)
        if touch:
            meta["updated_at"] = time.time()
        meta["generation"] = _generation(on_disk.meta if on_disk is not None else meta) + 1
        meta["message_count"] = len(session.messages)
        versions.refresh_points(meta)
        atomic_write_bytes(path, encode_session(meta, session.messages))
        session.meta = meta
        self.index.update(sid, session.compact(), stat_key(path))
        self._announce(sid, on_disk.meta if on_disk is not None else None, meta)

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
            sound = isinstance(total, int) and tail_messages(mm, key_at, total, max(0, total - 1), total) is not None
            close_at = array_close(mm, size) if sound else -1  # before the versions line, if any
            if not sound:
                f.seek(0)
                session = self._parse_full(session_id, f.read())  # SessionUnreadable if torn
                if new_messages:
                    session.messages.extend(new_messages)
                    session.meta.update(changes)
                    self._write(session, touch=touch, intentional_shrink=False)
                    return session.meta
                total = len(session.messages)
            before = dict(meta)
            meta.update(changes)
            for k, v in changes.items():
                if v is None and k in LEGACY_PENDING_KEYS:
                    meta.pop(k, None)
            if touch:
                meta["updated_at"] = time.time()
            meta["generation"] = _generation(meta) + 1
            ordered = ordered_metadata(meta)
            if new_messages:
                ordered["message_count"] = total + len(new_messages)
                body = ",\n".join(dumps_json(m) for m in new_messages)
                parts = [FileRange(f.fileno(), key_at, close_at - key_at),
                         (",\n" if total else "").encode() + f"{body}\n]".encode("utf-8"),
                         FileRange(f.fileno(), close_at + 2, size - close_at - 2)]  # "}" or the versions line
            else:
                parts = [FileRange(f.fileno(), key_at, size - key_at)]
            head = dumps_json(ordered)[:-1].encode("utf-8")
            atomic_write_bytes(path, [head + (b",\n" if ordered else b"\n")] + parts)
        self.index.update(session_id, sidebar_row(ordered), stat_key(path))
        self._announce(session_id, before, ordered)
        return ordered

    # -- running turns (docs/architecture.md §4; the journal is api.journal) ----------------------

    def pending_turn(self, session_id: str, stream_id: str | None, *, head_only: bool = False) -> PendingTurn | None:
        """The journal of ``stream_id``'s turn, or None if there is none for that stream.

        ``head_only``: just the user message (cheap). A session written by an earlier
        version keeps its pending message in the metadata: callers fall back to
        :func:`legacy_pending_user`.
        """
        if not stream_id:
            return None
        pending = read_journal(self.journal_path(session_id), head_only=head_only)
        return pending if pending is not None and pending.stream_id == stream_id else None

    def pending_fields(self, meta: dict) -> dict:
        """``{pending_user_message, pending_started_at, pending_attachments}`` of the
        running turn of the session ``meta`` describes (None, None, [] without one): from
        its journal, or from the metadata of a file an earlier version wrote. What the page
        shows while a reply streams (``pending_attachments``: the message's
        ``[{id, name, size, mime}]``); the journal's first line only is read."""
        stream_id = meta.get("active_stream_id")
        pending = self.pending_turn(meta["session_id"], stream_id, head_only=True)
        if pending is not None and pending.continues is not None:  # no new user message
            return {"pending_user_message": None, "pending_started_at": None, "pending_attachments": []}
        if pending is not None:
            atts = pending.user.get("attachments")
            return {"pending_user_message": pending.user.get("content"), "pending_started_at": pending.started_at,
                    "pending_attachments": atts if isinstance(atts, list) else []}
        legacy = legacy_pending_user(meta) if stream_id else None
        return {"pending_user_message": legacy["content"] if legacy else None,
                "pending_started_at": legacy["timestamp"] if legacy else None, "pending_attachments": []}

    def settle_turn(self, session_id: str, stream_id: str, unsaved: dict | None = None) -> bool:
        """Turn a dead stream's leftovers into messages and free the session (caller
        holds the session lock and knows ``stream_id`` is not running).

        The user message becomes a real message and the partial reply follows it, both
        marked ``interrupted``; ``unsaved`` (a finished reply whose own save failed)
        replaces the partial reply and keeps its status, and then the user message is
        not marked. Content comes from the journal, or from the metadata of a file
        written by an earlier version. Appended in one atomic write without touching
        ``updated_at``; then the journal is removed. Returns False if the file no longer
        names ``stream_id``. Raises like :meth:`append_messages` (the file and the
        journal are then unchanged).
        """
        meta = self.load_metadata_only(session_id).meta
        if meta.get("active_stream_id") != stream_id:
            return False
        pending = self.pending_turn(session_id, stream_id)
        if pending is not None and pending.continues is not None:
            self.replace_reply(session_id, pending.continues, unsaved or pending.reply("interrupted"),
                               CLEARED_STREAM_FIELDS, touch=False)
            remove_journal(self.journal_path(session_id))
            return True
        if pending is not None:
            user, reply = dict(pending.user), pending.reply("interrupted")
        else:
            user = legacy_pending_user(meta)
            partial = meta.get("pending_assistant_message")
            reply = dict(partial, status="interrupted") if isinstance(partial, dict) else None
        if unsaved is not None:
            reply = unsaved
        if user is not None and (reply is None or reply.get("status") in ("interrupted", "cancelled", "error")):
            user["status"] = "interrupted"
        messages = [m for m in (user, reply) if m is not None]
        self.append_messages(session_id, messages, CLEARED_STREAM_FIELDS, touch=False)
        remove_journal(self.journal_path(session_id))
        return True

    def replace_reply(self, session_id: str, index: int, part: dict | None, changes: dict, *,
                      touch: bool = True) -> dict:
        """Extend the reply at ``index`` (the last message) by ``part``
        (:func:`api.journal.extend_reply`) and apply ``changes``, in one atomic write
        (caller holds the lock). If ``index`` is no longer the last message (the
        transcript changed), only ``changes`` are applied. Returns the new metadata."""
        session = self.load(session_id)
        if index == len(session.messages) - 1 and session.messages[index].get("role") == "assistant":
            session.messages[index] = extend_reply(session.messages[index], part)
        elif part is not None:
            log.warning("continued reply %d of %s is no longer the last message; its new part is dropped",
                        index, session_id)
        session.meta.update(changes)
        for k, v in changes.items():
            if v is None and k in LEGACY_PENDING_KEYS:
                session.meta.pop(k, None)
        session.save(touch=touch)
        return session.meta

    def delete(self, session_id: str) -> bool:
        """Remove the file, its backup, its journal, its index entry and its attachments
        (caller holds the lock).

        Returns False if there was nothing to delete.
        """
        with self.index.writing():
            return self._delete_files(session_id)

    def _delete_files(self, session_id: str) -> bool:
        found = False
        # The backup goes first: a crash in between leaves the session, never a lone
        # backup that start-up self-heal could mistake for lost messages.
        for p in (self.backup_path(session_id), self.journal_path(session_id), self.path(session_id)):
            try:
                p.unlink()
                found = True
            except FileNotFoundError:
                pass
        self.index.remove(session_id)
        if found:
            session_events.publish(str(self.dir), session_id, "deleted")
        try:  # after the session file: a crash in between leaves files nothing refers to, never the reverse
            self.attachments.delete_session(session_id)
        except OSError as exc:
            log.error("could not delete the attachments of %s: %s", session_id, exc)
        return found

    def _announce(self, session_id: str, before: dict | None, after: dict) -> None:
        """Tell the open tabs of this store's profile that ``session_id`` changed
        (:mod:`api.session_events`; the reason is read from the metadata before and after)."""
        session_events.publish(str(self.dir), session_id, session_events.change_reason(before, after))

    # -- the index ------------------------------------------------------------

    def _index_entry_for_file(self, session_id: str) -> dict:
        """Compact metadata of one file for the index; raises SessionUnreadable."""
        return self.load_metadata_only(session_id).compact()

    def close(self) -> None:
        self.index.close()
