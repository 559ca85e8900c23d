"""Live streams and per-session locks (docs/architecture.md §1, §4). Knows nothing of HTTP.

``STREAMS`` maps a live stream id to its :class:`StreamChannel`, guarded by
``STREAMS_LOCK``. A channel numbers every event (seq 1, 2, …) and keeps them all, so
any number of subscribers can follow it and a reconnecting one gets exactly the events
after the last seq it saw. When the turn ends the channel moves to ``FINISHED`` and
stays replayable for ``retention_seconds``.

Lock order, always: session lock → ``STREAMS_LOCK`` → index lock. A channel's own
condition lock is a leaf: nothing else is taken while holding it.
"""
from __future__ import annotations

import json
import threading
import time
import weakref

STREAMS: dict[str, "StreamChannel"] = {}
FINISHED: dict[str, "StreamChannel"] = {}
STREAMS_LOCK = threading.Lock()
retention_seconds = 300.0

# Finished replies whose write-back failed (e.g. a full disk), by session id:
# ``(stream_id, reply)``. The next settle of that stream writes this instead of the
# older checkpoint; guarded by STREAMS_LOCK. Memory only: a crash falls back to the
# checkpoint on disk.
UNSAVED_REPLIES: dict[str, tuple[str, dict]] = {}
# Weak values: a lock lives while someone holds or waits on it, so the table does not
# grow with every id a client makes up (two callers at once still share one lock).
_SESSION_LOCKS: "weakref.WeakValueDictionary[str, threading.RLock]" = weakref.WeakValueDictionary()
_SESSION_LOCKS_GUARD = threading.Lock()


def session_lock(session_id: str) -> threading.RLock:
    """The lock every mutation of ``session_id`` holds (re-entrant, one per session).

    Keep the returned object while using it (``with session_lock(sid): …``): the table
    forgets a lock nobody references.
    """
    with _SESSION_LOCKS_GUARD:
        lock = _SESSION_LOCKS.get(session_id)
        if lock is None:
            lock = threading.RLock()
            _SESSION_LOCKS[session_id] = lock
        return lock


_get_session_agent_lock = session_lock  # the name docs/architecture.md §4 and older callers use


class StreamChannel:
    """Broadcast with replay: an append-only, numbered event log that subscribers wait on.

    Events are ``(seq, event_name, data_json)``; ``seq`` starts at 1. After
    :meth:`close`, :meth:`emit` is a no-op, so a cancelled worker cannot add to it.
    """

    def __init__(self, stream_id: str, session_id: str):
        self.stream_id = stream_id
        self.session_id = session_id
        self.cancel_event = threading.Event()
        self.created_at = time.time()
        self.ended_at: float | None = None
        self._cond = threading.Condition(threading.Lock())
        self._events: list[tuple[int, str, str]] = []
        self._closed = False

    def emit(self, event: str, data: dict) -> int | None:
        """Append an event and wake subscribers; returns its seq, or None once closed."""
        payload = json.dumps(data, ensure_ascii=False)
        with self._cond:
            if self._closed:
                return None
            seq = len(self._events) + 1
            self._events.append((seq, event, payload))
            self._cond.notify_all()
            return seq

    def close(self) -> None:
        with self._cond:
            if not self._closed:
                self._closed = True
                self.ended_at = time.time()
                self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def last_seq(self) -> int:
        return len(self._events)

    def events_after(self, after_seq: int, timeout: float) -> tuple[list[tuple[int, str, str]], bool]:
        """Wait up to ``timeout`` s for events with seq > ``after_seq``.

        Returns ``(events, finished)``: ``finished`` is True when the channel is closed
        and the returned batch reaches its last event.
        """
        after_seq = max(0, after_seq)
        with self._cond:
            if len(self._events) <= after_seq and not self._closed:
                self._cond.wait(timeout)
            batch = self._events[after_seq:]
            return batch, self._closed and after_seq + len(batch) >= len(self._events)


def register(channel: StreamChannel) -> None:
    with STREAMS_LOCK:
        STREAMS[channel.stream_id] = channel


def unregister(stream_id: str) -> None:
    """Move a stream from live to replayable (idempotent) and forget expired ones."""
    now = time.time()
    with STREAMS_LOCK:
        channel = STREAMS.pop(stream_id, None)
        if channel is not None:
            FINISHED[stream_id] = channel
        for sid, ch in list(FINISHED.items()):
            if ch.ended_at is not None and now - ch.ended_at > retention_seconds:
                del FINISHED[sid]


def is_alive(stream_id: str | None) -> bool:
    """True if ``stream_id`` names a live stream (checked under STREAMS_LOCK)."""
    if not stream_id:
        return False
    with STREAMS_LOCK:
        return stream_id in STREAMS


def get_stream(stream_id: str) -> StreamChannel | None:
    """A live or still-replayable channel, or None."""
    with STREAMS_LOCK:
        channel = STREAMS.get(stream_id) or FINISHED.get(stream_id)
    if channel is not None and channel.ended_at is not None and time.time() - channel.ended_at > retention_seconds:
        return None
    return channel


def live_count() -> int:
    with STREAMS_LOCK:
        return len(STREAMS)


def keep_unsaved_reply(session_id: str, stream_id: str, reply: dict) -> None:
    with STREAMS_LOCK:
        UNSAVED_REPLIES[session_id] = (stream_id, reply)


def take_unsaved_reply(session_id: str, stream_id: str) -> dict | None:
    """The reply kept for ``stream_id`` of ``session_id``, or None (it stays kept until
    :func:`drop_unsaved_reply`, so a settle that fails again can retry)."""
    with STREAMS_LOCK:
        kept = UNSAVED_REPLIES.get(session_id)
    return kept[1] if kept and kept[0] == stream_id else None


def drop_unsaved_reply(session_id: str) -> None:
    with STREAMS_LOCK:
        UNSAVED_REPLIES.pop(session_id, None)
