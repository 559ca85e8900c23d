"""Live session changes for every open tab (``GET /api/sessions/events``, docs/api.md). Knows nothing of HTTP.

The session store publishes here after every write (:meth:`api.models.SessionStore`
saves, patches, appends and deletes), so every path that changes a session (routes,
session operations, the turn engine, imports, settles) is covered by one hook. Each
event is ``(session_id, reason)``, reason one of :data:`REASONS`, and goes to every
subscriber of the same *profile*: a profile is named by its sessions folder (the key
the store publishes under), so a tab only hears the sessions it can open.

There is no replay: a subscriber hears what happens while it is subscribed; a client
that reconnects refetches the list. A subscriber that stops reading keeps at most
:data:`MAX_QUEUED` events (the oldest are dropped: the client refetches the whole list
on any event anyway). :func:`close_all` wakes every subscriber and makes it end, so a
server that stops is not held up by open event streams.

Locking: one module lock guards the subscriber table; each subscription has its own
condition. Both are leaves (nothing else is taken while holding them), so publishing
from inside the session lock and the index lock is safe.
"""
from __future__ import annotations

import threading
from collections import deque

REASONS = ("created", "renamed", "pinned", "archived", "deleted", "turn_started", "turn_finished",
           "messages_changed", "projects_changed")   # projects_changed: session_id None (api.project_routes)
MAX_QUEUED = 1000

_LOCK = threading.Lock()
_SUBSCRIBERS: dict[str, set["Subscription"]] = {}
_closed = False


class Subscription:
    """One listener's queue of ``{"session_id", "reason"}`` events of one profile (``key``)."""

    def __init__(self, key: str):
        self.key = key
        self._events: deque[dict] = deque(maxlen=MAX_QUEUED)
        self._cond = threading.Condition(threading.Lock())
        self._closed = False

    def put(self, event: dict) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def wait(self, timeout: float) -> tuple[list[dict], bool]:
        """Wait up to ``timeout`` seconds for events. Returns ``(events, closed)``: the
        queued events (taken off the queue, oldest first; ``[]`` on a timeout) and whether
        the subscription has been closed (then the caller ends its stream)."""
        with self._cond:
            if not self._events and not self._closed:
                self._cond.wait(timeout)
            events = list(self._events)
            self._events.clear()
            return events, self._closed


def subscribe(key: str) -> Subscription:
    """A new subscription to the sessions under ``key`` (a store's sessions folder, as a
    string). After :func:`close_all` the subscription is born closed."""
    sub = Subscription(key)
    with _LOCK:
        if _closed:
            sub.close()
        else:
            _SUBSCRIBERS.setdefault(key, set()).add(sub)
    return sub


def unsubscribe(sub: Subscription) -> None:
    """Forget ``sub`` (idempotent)."""
    with _LOCK:
        subs = _SUBSCRIBERS.get(sub.key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del _SUBSCRIBERS[sub.key]
    sub.close()


def publish(key: str, session_id: str | None, reason: str) -> int:
    """Send ``sessions_changed {session_id, reason}`` to every subscriber of ``key``; returns
    how many got it. Never blocks on a subscriber (each only appends to a queue).
    ``session_id`` is None for ``projects_changed`` (the profile's projects, not one session)."""
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    with _LOCK:
        subs = list(_SUBSCRIBERS.get(key, ()))
    event = {"session_id": session_id, "reason": reason}
    for sub in subs:
        sub.put(event)
    return len(subs)


def subscriber_count() -> int:
    """How many subscriptions are open (all profiles)."""
    with _LOCK:
        return sum(len(s) for s in _SUBSCRIBERS.values())


def close_all() -> None:
    """End every subscription now and refuse new ones (the server is stopping)."""
    global _closed
    with _LOCK:
        _closed = True
        subs = [s for group in _SUBSCRIBERS.values() for s in group]
        _SUBSCRIBERS.clear()
    for sub in subs:
        sub.close()


def change_reason(before: dict | None, after: dict) -> str:
    """The reason a write that turned metadata ``before`` (None: a new session) into
    ``after`` is announced with. A turn that starts or ends wins over a title change
    (the automatic title is set with the turn's start), then rename, pin, archive;
    anything else (messages, model, tags, project) is ``messages_changed``."""
    if before is None:
        return "created"
    was, now = before.get("active_stream_id"), after.get("active_stream_id")
    if now and now != was:
        return "turn_started"
    if was and not now:
        return "turn_finished"
    for key, reason in (("title", "renamed"), ("pinned", "pinned"), ("archived", "archived")):
        if before.get(key) != after.get(key):
            return reason
    return "messages_changed"
