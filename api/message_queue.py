"""Messages sent while the agent works (issue 15, item 7). Never imports Flask.

A message sent during a turn is queued in ``sessions/<sid>.queue.json`` beside the
session (``{"queued": [{id, text, created_at, model?, attachments?}]}``, written
atomically; ``attachments``: the records ``[{id, name, size, mime}]`` of files uploaded to
this session, checked when queued and sent with the message when it starts), not in
the session's metadata, which must stay small (docs/architecture.md §3 invariant 8). When a turn ends
(complete, truncated, error or cancelled; not at shutdown) the first queued message
starts as the next turn; after a restart, queues are drained once the dead turn has been
settled (:func:`drain_all`). The queue can be read, edited and emptied entry by entry.

Crash safety: the next message's turn is started (its journal written) before it leaves
the queue, so a crash between the two can repeat a queued message but never lose it.
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from pathlib import Path

from . import model_catalog, streams
from .atomic import atomic_write_bytes
from .errors import ApiError, AppError, SessionError
from .models import validate_session_id
from .streams import session_lock

log = logging.getLogger(__name__)
SUFFIX = ".queue.json"
MAX_QUEUED = 20


def queue_path(store, session_id: str) -> Path:
    return Path(store.dir) / f"{validate_session_id(session_id)}{SUFFIX}"


def read_queue(store, session_id: str) -> list[dict]:
    """The queued messages, oldest first (an unreadable file reads as empty, and is logged)."""
    try:
        raw = json.loads(queue_path(store, session_id).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("queue of %s unreadable: %s", session_id, exc)
        return []
    items = raw.get("queued") if isinstance(raw, dict) else None
    return [q for q in items or [] if isinstance(q, dict) and isinstance(q.get("id"), str)
            and isinstance(q.get("text"), str)]


def _write(store, session_id: str, items: list[dict]) -> None:
    path = queue_path(store, session_id)
    if not items:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return
    atomic_write_bytes(path, (json.dumps({"queued": items}, ensure_ascii=False) + "\n").encode("utf-8"))


def add(store, session_id: str, text: str, model: str | None, attachments: list | None = None) -> dict:
    """Queue ``text`` (the session must exist: SessionNotFound 404). ApiError 409 when full.

    ``attachments``: ids of files uploaded to this session, checked as a chat start checks
    them (:meth:`api.attachment_store.AttachmentStore.resolve`: 400 malformed, 404 an id
    unknown here or of another session; nothing queued then). A message with attachments
    may have empty text; without, empty text is 400."""
    with session_lock(session_id):
        store.load_metadata_only(session_id)
        files = store.attachments.resolve(session_id, attachments) if attachments else []
        if not text.strip() and not files:
            raise ApiError("the message is empty")
        items = read_queue(store, session_id)
        if len(items) >= MAX_QUEUED:
            raise ApiError(f"at most {MAX_QUEUED} messages can wait in one chat; remove one first", 409)
        item = {"id": secrets.token_hex(6), "text": text, "created_at": time.time()}
        if model:
            item["model"] = model
        if files:
            item["attachments"] = [f.record() for f in files]
        items.append(item)
        _write(store, session_id, items)
        return item


def edit(store, session_id: str, item_id: str, text: str) -> None:
    """Change a queued message's text; ApiError 404 if it is no longer queued."""
    with session_lock(session_id):
        items = read_queue(store, session_id)
        item = next((q for q in items if q["id"] == item_id), None)
        if item is None:
            raise ApiError("that message is no longer queued (it may have started already)", 404)
        item["text"] = text
        _write(store, session_id, items)


def remove(store, session_id: str, item_id: str) -> None:
    """Drop a queued message; ApiError 404 if it is no longer queued."""
    with session_lock(session_id):
        items = read_queue(store, session_id)
        kept = [q for q in items if q["id"] != item_id]
        if len(kept) == len(items):
            raise ApiError("that message is no longer queued (it may have started already)", 404)
        _write(store, session_id, kept)


def delete_queue(store, session_id: str) -> None:
    """Remove the whole queue (the session is being deleted)."""
    with session_lock(session_id):
        _write(store, session_id, [])


def start_next(store, backend, session_id: str, config=None, agent_home: dict | None = None) -> str | None:
    """Start the first queued message as a turn if the session is idle; its stream id, or None."""
    from . import turns

    with session_lock(session_id):
        items = read_queue(store, session_id)
        if not items:
            return None
        try:
            stub = store.load_metadata_only(session_id)
        except SessionError:
            return None
        if stub.active_stream_id:
            if streams.is_alive(stub.active_stream_id):
                return None  # it starts when that turn ends
            turns.settle_stale_stream(stub)
        first = items[0]
        try:
            model = model_catalog.resolve(backend, first.get("model"), stub.meta.get("model"),
                                          home=(agent_home or {}).get("home"))
            stream_id = turns.start_turn(store, backend, session_id, first["text"], config=config,
                                         model=model, agent_home=agent_home, attachments=attachment_ids(first))
        except (AppError, OSError, ValueError) as exc:
            log.warning("queued message of %s could not start: %s", session_id, exc)
            return None
        _write(store, session_id, [q for q in read_queue(store, session_id) if q["id"] != first["id"]])
        return stream_id


def attachment_ids(item: dict) -> list[str]:
    """The attachment ids a queued message carries (none for one queued without)."""
    atts = item.get("attachments")
    return [a["id"] for a in atts if isinstance(a, dict) and isinstance(a.get("id"), str)] if isinstance(atts, list) else []


def drain_all(store, backend, config=None, agent_home: dict | None = None) -> int:
    """After a start-up: start the first queued message of every idle session; how many started."""
    started = 0
    for path in sorted(Path(store.dir).glob("*" + SUFFIX)):
        sid = path.name[: -len(SUFFIX)]
        try:
            started += start_next(store, backend, sid, config, agent_home) is not None
        except (AppError, OSError, ValueError) as exc:
            log.warning("queue of %s not drained: %s", sid, exc)
    return started
