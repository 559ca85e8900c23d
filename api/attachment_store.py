"""Files attached to a session's messages (docs/api.md), on disk beside the sessions.

Layout, in a profile's state dir (the parent of its ``sessions/``)::

    attachments/<session_id>/<id>        the bytes, exactly as uploaded
    attachments/<session_id>/<id>.json   {"id", "name", "size", "mime", "created_at"}
    attachments/.incoming/…              uploads still arriving (swept at start-up)

``id`` is random (16 hex digits for a new upload; an import keeps the exported id when it
fullmatches ``[A-Za-z0-9_-]{1,64}``). The name the client sent is cleaned
(:func:`api.safepath.upload_name`) and kept only as data in the sidecar: it never
becomes a path. An upload streams into ``.incoming`` outside any lock and is moved into
the session's folder under the session lock, after checking that the session still
exists; deleting a session removes its folder under the same lock
(:meth:`api.models.SessionStore.delete`), so an upload racing a delete leaves nothing.
The bytes are renamed into place first and the sidecar written last (atomically): an
attachment exists exactly when its sidecar does.

Never imports Flask.
"""
from __future__ import annotations

import json
import logging
import mimetypes
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .atomic import atomic_write_bytes, fsync_dir
from .errors import ApiError, SessionNotFound, TooLarge

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024   # docs/architecture.md §3
MAX_PER_MESSAGE = 20
INCOMING = ".incoming"
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_CHUNK = 1024 * 1024
# Magic numbers of the image types a browser shows inline, checked before the name's guess:
# a pasted screenshot named "image" still counts as PNG.
_MAGIC = [(b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
          (b"GIF89a", "image/gif"), (b"%PDF-", "application/pdf")]


class AttachmentNotFound(ApiError):
    """An attachment id unknown in this session (or of another session): 404."""

    status = 404


@dataclass(frozen=True)
class AttachmentFile:
    """One stored attachment: its public record and where its bytes are."""

    id: str
    name: str
    size: int
    mime: str
    path: Path

    def record(self) -> dict:
        """``{id, name, size, mime}``: what the API answers and a user message records."""
        return {"id": self.id, "name": self.name, "size": self.size, "mime": self.mime}


def valid_id(value) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def guess_mime(name: str, head: bytes, claimed: str | None = None) -> str:
    """The stored type: from the first bytes for PNG/JPEG/GIF/WebP/PDF, else from the
    name's extension, else the client's claim if it is a well-formed type, else
    ``application/octet-stream``."""
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    guessed = mimetypes.guess_type(name, strict=False)[0]
    if guessed:
        return guessed.lower()
    claimed = (claimed or "").split(";", 1)[0].strip().lower()
    return claimed if _MIME.fullmatch(claimed) else "application/octet-stream"


class AttachmentStore:
    """The attachments of one profile: ``root`` is ``<profile state dir>/attachments``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def session_dir(self, session_id: str) -> Path:
        """The folder of ``session_id``'s attachments (the id must be validated already)."""
        return self.root / session_id

    # -- writing --------------------------------------------------------------------

    def receive(self, source: BinaryIO, max_bytes: int) -> tuple[Path, int, bytes]:
        """Copy ``source`` into a new file under ``.incoming``; returns (path, size, first
        bytes). Over ``max_bytes`` → :class:`TooLarge` and nothing is left on disk."""
        incoming = self.root / INCOMING
        incoming.mkdir(parents=True, exist_ok=True)
        path = incoming / secrets.token_hex(12)
        size, head = 0, b""
        try:
            with open(path, "xb") as out:
                while True:
                    chunk = source.read(_CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge(f"the file is larger than this server's limit of "
                                       f"{max_bytes / 1048576:g} MiB for one attachment (--max-attachment-bytes)")
                    if len(head) < 64:
                        head += chunk[:64 - len(head)]
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, size, head

    def commit(self, session_id: str, incoming: Path, name: str, size: int, mime: str,
               attachment_id: str | None = None) -> AttachmentFile:
        """Move a received file into ``session_id``'s folder and write its sidecar.

        The caller holds the session lock and has checked that the session exists. On
        any failure the incoming file and a half-written attachment are removed.
        """
        attachment_id = attachment_id or secrets.token_hex(8)
        folder = self.session_dir(session_id)
        target = folder / attachment_id
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if (folder / f"{attachment_id}.json").exists():
                raise ApiError(f"attachment {attachment_id!r} already exists in this session", 409)
            os.replace(incoming, target)
            fsync_dir(folder)
            sidecar = {"id": attachment_id, "name": name, "size": size, "mime": mime, "created_at": time.time()}
            atomic_write_bytes(folder / f"{attachment_id}.json", json.dumps(sidecar, ensure_ascii=False).encode())
        except BaseException:
            incoming.unlink(missing_ok=True)
            if not (folder / f"{attachment_id}.json").exists():
                target.unlink(missing_ok=True)
            raise
        return AttachmentFile(attachment_id, name, size, mime, target)

    def add_bytes(self, session_id: str, data: bytes, name: str, mime: str,
                  attachment_id: str | None = None) -> AttachmentFile:
        """Store ``data`` as an attachment (import); the caller holds the session lock."""
        import io
        incoming, size, _ = self.receive(io.BytesIO(data), len(data))
        return self.commit(session_id, incoming, name, size, mime, attachment_id)

    def delete(self, session_id: str, attachment_id) -> None:
        """Remove one attachment of ``session_id`` (the caller holds the session lock and
        has checked that no message records it): the sidecar first, so it no longer exists
        even if removing the bytes fails. :class:`AttachmentNotFound` (404) if unknown."""
        att = self.get(session_id, attachment_id)
        folder = self.session_dir(session_id)
        os.unlink(folder / f"{att.id}.json")
        att.path.unlink(missing_ok=True)
        fsync_dir(folder)

    def delete_session(self, session_id: str) -> None:
        """Remove ``session_id``'s folder (the caller holds the session lock). Missing is fine."""
        folder = self.session_dir(session_id)
        if folder.is_symlink():
            folder.unlink()
        elif folder.exists():
            shutil.rmtree(folder)

    def sweep_incoming(self, older_than: float = 0.0) -> None:
        """Remove uploads a crash left half-received: files in ``.incoming`` last written
        more than ``older_than`` seconds ago (an upload in progress writes every moment)."""
        try:
            entries = list(os.scandir(self.root / INCOMING))
        except OSError:
            return
        cutoff = time.time() - older_than
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_mtime <= cutoff:
                    os.unlink(entry.path)
            except OSError:
                pass

    # -- reading --------------------------------------------------------------------

    def get(self, session_id: str, attachment_id) -> AttachmentFile:
        """The attachment ``attachment_id`` of ``session_id``; :class:`AttachmentNotFound`
        (404) when the id is malformed, unknown, of another session, or its bytes are gone."""
        if not valid_id(attachment_id):
            raise AttachmentNotFound(f"no attachment {str(attachment_id)[:80]!r} in this session")
        folder = self.session_dir(session_id)
        try:
            meta = json.loads((folder / f"{attachment_id}.json").read_text(encoding="utf-8"))
            path = folder / attachment_id
            if not path.is_file() or path.is_symlink():
                raise FileNotFoundError(path)
            return AttachmentFile(attachment_id, str(meta["name"]), int(meta["size"]), str(meta["mime"]), path)
        except (OSError, ValueError, KeyError, TypeError):
            raise AttachmentNotFound(f"no attachment {attachment_id!r} in this session") from None

    def resolve(self, session_id: str, ids) -> list[AttachmentFile]:
        """The attachments named by ``ids`` (a list of id strings, at most
        :data:`MAX_PER_MESSAGE`, no repeats), in order. 400 for a malformed list, 404 for
        an id unknown in this session."""
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ApiError("field 'attachments' must be a list of attachment ids")
        if len(ids) > MAX_PER_MESSAGE:
            raise ApiError(f"at most {MAX_PER_MESSAGE} attachments per message")
        if len(set(ids)) != len(ids):
            raise ApiError("an attachment is listed twice")
        return [self.get(session_id, i) for i in ids]

    def list_session(self, session_id: str) -> list[AttachmentFile]:
        """Every attachment of ``session_id`` (export), oldest first."""
        folder = self.session_dir(session_id)
        found = []
        try:
            names = sorted(os.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return []
        for name in names:
            if name.endswith(".json") and valid_id(name[:-5]):
                try:
                    found.append(self.get(session_id, name[:-5]))
                except AttachmentNotFound:
                    log.warning("attachment %s of %s is incomplete; skipped", name[:-5], session_id)
        return found


def recorded_ids(value) -> set[str]:
    """Every attachment id that ``value`` (messages, a versions map, a queue: any parsed
    JSON) records in an ``attachments: [{id, …}]`` list, at any depth."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            atts = item.get("attachments")
            if isinstance(atts, list):
                found.update(a["id"] for a in atts if isinstance(a, dict) and isinstance(a.get("id"), str))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def require_session(sessions_dir: Path, session_id: str) -> None:
    """:class:`SessionNotFound` unless ``session_id``'s file exists (call under its lock)."""
    if not (Path(sessions_dir) / f"{session_id}.json").is_file():
        raise SessionNotFound(f"no session {session_id!r}")
