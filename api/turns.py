"""The turn engine (DESIGN §4): start a turn, run its worker, checkpoint, finish, cancel.

A turn's life on disk:

1. :func:`start_turn`, under the session lock: the file gets ``active_stream_id``,
   ``pending_user_message`` and ``pending_started_at``; the channel is registered in
   ``STREAMS`` *before* the lock is released, so whoever takes the lock next sees a
   live stream.
2. The worker thread runs the backend; every event goes to the channel and into the
   partial reply, which is checkpointed to ``pending_assistant_message`` at least every
   ``checkpoint_seconds`` and after each tool completes (metadata-only splice: cheap,
   and it cannot touch the messages).
3. :meth:`Turn.finish` (worker at the end, or :func:`cancel_turn`), under the session
   lock, re-reads the file and writes back only if ``active_stream_id`` is still this
   stream: the user message and the reply become messages, the stream fields clear.
   The first finisher wins; a cancelled worker's late result is dropped.

If the process dies in between, the file still names the stream; the next reader's
``_clear_stale_stream_state`` settles it (:meth:`api.models.Session.settle_interrupted_turn`).
"""
from __future__ import annotations

import logging
import secrets
import threading
import time

from . import streams
from .agents.base import AgentBackend, BackendError
from .models import (CLEARED_STREAM_FIELDS, DEFAULT_TITLE, SessionError, SessionNotFound, SessionStore,
                     clean_title, public_metadata)
from .streams import StreamChannel, _get_session_agent_lock

log = logging.getLogger(__name__)
AUTO_TITLE_CHARS = 60


class TurnConflict(Exception):
    """The session cannot take a new turn now (a live stream owns it, or a stale revision)."""


def auto_title(text: str) -> str:
    """A sidebar title from the first user message: its first line, at most 60 characters."""
    title = clean_title(text)
    if len(title) > AUTO_TITLE_CHARS:
        title = title[:AUTO_TITLE_CHARS - 1].rstrip() + "…"
    return title or DEFAULT_TITLE


class Turn:
    """One running turn: the backend call, its channel and its partial reply."""

    def __init__(self, store: SessionStore, backend: AgentBackend, channel: StreamChannel,
                 user_text: str, checkpoint_seconds: float):
        self.store = store
        self.backend = backend
        self.channel = channel
        self.session_id = channel.session_id
        self.stream_id = channel.stream_id
        self.user_text = user_text
        self.checkpoint_seconds = checkpoint_seconds
        self._lock = threading.Lock()
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._tools: dict[str, dict] = {}
        self._finished = False
        self._last_checkpoint = time.monotonic()
        self._dirty = False

    # -- events from the backend (worker thread) ------------------------------

    def emit(self, event: str, data: dict) -> None:
        """The ``emit`` callback handed to the backend. Ignored once the turn is finished."""
        with self._lock:
            if self._finished:
                return
            if event == "token":
                self._content.append(str(data.get("text", "")))
            elif event == "reasoning":
                self._reasoning.append(str(data.get("text", "")))
            elif event == "tool":
                self._tools[str(data.get("id"))] = {"id": data.get("id"), "name": data.get("name"),
                                                    "args": data.get("args")}
            elif event == "tool_complete":
                record = self._tools.setdefault(str(data.get("id")), {"id": data.get("id"), "name": data.get("name")})
                record.update(result=data.get("result"), duration_ms=data.get("duration_ms"),
                              is_error=bool(data.get("is_error")))
            self._dirty = True
            self.channel.emit(event, data)
        if event == "tool_complete" or time.monotonic() - self._last_checkpoint >= self.checkpoint_seconds:
            self.checkpoint()

    def reply(self, status: str) -> dict:
        """The assistant message as it stands (call with ``self._lock`` held)."""
        msg = {"role": "assistant", "content": "".join(self._content), "timestamp": time.time(), "status": status}
        if self._reasoning:
            msg["reasoning"] = "".join(self._reasoning)
        if self._tools:
            msg["tool_calls"] = [dict(t) for t in self._tools.values()]
        if getattr(self.backend, "model", None):
            msg["model"] = self.backend.model
        return msg

    def checkpoint(self) -> None:
        """Save the partial reply into the session file if this stream still owns it."""
        with _get_session_agent_lock(self.session_id):
            with self._lock:
                if self._finished or not self._dirty:
                    return
                partial = self.reply("partial")
                self._dirty = False
            self._last_checkpoint = time.monotonic()
            try:
                meta = self.store.load_metadata_only(self.session_id).meta
                if meta.get("active_stream_id") == self.stream_id:
                    self.store.patch_metadata(self.session_id, {"pending_assistant_message": partial}, touch=False)
            except (SessionError, OSError) as exc:
                log.warning("checkpoint of %s failed: %s", self.session_id, exc)
                with self._lock:
                    self._dirty = True  # try again at the next event

    # -- the worker -------------------------------------------------------------

    def run(self) -> None:
        """Worker thread body: run the backend, then finish (always) and unregister."""
        status, error, usage = "complete", None, None
        try:
            history = self.store.load(self.session_id).messages
            result = self.backend.run_turn(history, self.user_text, self.emit, self.channel.cancel_event)
            usage = (result or {}).get("usage")
            if self.channel.cancel_event.is_set():
                status = "cancelled"
        except BackendError as exc:
            status, error = "error", {"message": exc.message, "type": exc.type}
        except SessionNotFound:
            status, error = "error", {"message": "the session was deleted", "type": "not_found"}
        except Exception as exc:  # a backend bug must still end the turn cleanly
            log.exception("turn %s failed", self.stream_id)
            status, error = "error", {"message": f"{type(exc).__name__}: {exc}", "type": "internal"}
        finally:
            try:
                self.finish(status, error=error, usage=usage)
            finally:
                streams.unregister(self.stream_id)

    def finish(self, status: str, *, error: dict | None = None, usage: dict | None = None) -> bool:
        """End the turn once: write it back if this stream still owns the session, then
        emit ``done`` / ``cancel`` / ``apperror`` and ``stream_end`` and close the channel.

        Returns False if the turn had already finished (so cancel is idempotent).
        """
        saved_meta = None
        with _get_session_agent_lock(self.session_id):
            with self._lock:
                if self._finished:
                    return False
                self._finished = True
                reply = self.reply(status)
            if error:
                reply["error"] = error["message"]
            try:
                stub = self.store.load_metadata_only(self.session_id)
                if stub.active_stream_id == self.stream_id:
                    saved_meta = self.store.append_messages(self.session_id, [stub.pending_user(), reply],
                                                            CLEARED_STREAM_FIELDS)
                else:
                    log.info("stream %s no longer owns %s; its result is dropped", self.stream_id, self.session_id)
            except SessionNotFound:
                log.info("session %s was deleted during stream %s", self.session_id, self.stream_id)
            except (SessionError, OSError) as exc:
                log.error("could not save turn %s of %s: %s", self.stream_id, self.session_id, exc)
                if isinstance(exc, OSError):  # written by the next settle, once the disk takes it
                    streams.keep_unsaved_reply(self.session_id, self.stream_id, dict(reply, status="error"))
                error = error or {"message": f"could not save the reply: {exc}", "type": "save_failed"}
                if status == "complete":
                    status = "error"
        ch = self.channel
        if status == "cancelled":
            ch.emit("cancel", {"session_id": self.session_id})
        elif error:
            ch.emit("apperror", error)
        if saved_meta is not None and status not in ("cancelled", "interrupted"):
            ch.emit("done", {"session": public_metadata(saved_meta), "usage": usage})
        ch.emit("stream_end", {"status": status})
        ch.close()
        streams.unregister(self.stream_id)
        return True


def ensure_idle(session, expected_message_count: int | None = None) -> None:
    """Raise TurnConflict (409) unless ``session`` (read under its lock) can change now:
    no stream recorded, and ``expected_message_count`` (if given) is its message count."""
    if session.active_stream_id:
        if streams.is_alive(session.active_stream_id):
            raise TurnConflict("a reply is streaming in this session: wait for it or cancel it first")
        raise TurnConflict("the session's last turn was interrupted and could not be settled yet")
    if expected_message_count is not None and expected_message_count != session.message_count:
        raise TurnConflict(f"the session has {session.message_count} messages, not {expected_message_count}: "
                           "it changed in another tab; reload it")


def start_turn(store: SessionStore, backend: AgentBackend, session_id: str, text: str, *,
               checkpoint_seconds: float = 1.0, expected_message_count: int | None = None,
               model: str | None = None, replace_messages: list | None = None) -> str:
    """Begin a turn and return its stream id.

    ``replace_messages`` (retry, edit) replaces the transcript in the same atomic write
    that records the pending turn, as a deliberate shrink: a crash can never leave the
    trimmed transcript without the user's new message. ``expected_message_count`` is
    checked against the transcript before that replacement.
    Raises SessionNotFound / SessionUnreadable / InvalidSessionId, and TurnConflict if a
    live stream owns the session, a stale stream could not be settled, or
    ``expected_message_count`` does not match the file.
    """
    with _get_session_agent_lock(session_id):
        session = store.load_metadata_only(session_id)
        ensure_idle(session, expected_message_count)
        stream_id = secrets.token_hex(8)
        changes = {"active_stream_id": stream_id, "pending_user_message": text,
                   "pending_started_at": time.time(), "pending_assistant_message": None}
        if not session.meta.get("manual_title") and (session.message_count == 0 or replace_messages == []):
            changes["title"] = auto_title(text)
        if model:
            changes["model"] = model
        if replace_messages is None:
            store.patch_metadata(session_id, changes)
        else:
            full = store.load(session_id)
            full.messages = list(replace_messages)
            full.meta.update(changes)
            full.save(intentional_shrink=True)
        channel = StreamChannel(stream_id, session_id)
        turn = Turn(store, backend, channel, text, checkpoint_seconds)
        channel.turn = turn
        streams.register(channel)
    threading.Thread(target=turn.run, name=f"turn-{stream_id}", daemon=True).start()
    return stream_id


def cancel_turn(stream_id: str) -> bool:
    """Stop a turn, keep its partial reply marked ``cancelled`` and free the session now.

    Returns True if this call cancelled it; False if it was unknown or already over.
    """
    channel = streams.get_stream(stream_id)
    turn = getattr(channel, "turn", None)
    if channel is None or turn is None or channel.closed:
        return False
    channel.cancel_event.set()
    return turn.finish("cancelled")


def interrupt_all_turns() -> int:
    """Finish every live turn as ``interrupted`` (clean shutdown); returns how many.

    Each turn's partial reply is written back like a cancel, so a SIGTERM loses nothing
    that had streamed, and each follower receives ``stream_end``.
    """
    with streams.STREAMS_LOCK:
        channels = list(streams.STREAMS.values())
    done = 0
    for channel in channels:
        turn = getattr(channel, "turn", None)
        if turn is not None:
            channel.cancel_event.set()
            done += turn.finish("interrupted")
    return done
