"""Session operations: retry, edit, undo, clear, duplicate and switching versions.

Every mutating operation follows one path (:func:`_locked_session`): settle a stale
stream, take the session lock, refuse with 409 while a live stream owns the session or
when the client's ``expected_message_count`` is stale, load the session in full from
disk (never from the client), change ``messages``, and save. Deliberate shrinks save
with ``intentional_shrink=True``: the previous file goes to ``<sid>.json.bak`` and the
marker keeps start-up self-heal from bringing removed messages back. Retry and edit then
start the new turn through :func:`api.turns.start_turn` while still holding the
(re-entrant) session lock, so no other request can slip in between the trim and the turn.
Retry and edit keep what they replace as a version (:mod:`api.versions`);
``POST /api/session/version`` switches the version shown.

Export and import are :mod:`api.session_export`.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager

from flask import Blueprint, Response, jsonify

from . import model_catalog
from . import versions
from .app import app_state
from .httputil import ApiError, field, json_body
from .models import DEFAULT_TITLE, Session, clean_title, message_text, validate_session_id
from .profiles import agent_home, current_store
from .streams import session_lock
from .turns import check_message, ensure_idle, settle_stale_stream, start_turn

log = logging.getLogger(__name__)
bp = Blueprint("session_ops", __name__)


def _target(body: dict) -> tuple[str, int | None]:
    sid = validate_session_id(field(body, "session_id", str))
    expected = field(body, "expected_message_count", int, required=False)
    if expected is not None and expected < 0:
        raise ApiError("field 'expected_message_count' must not be negative")
    return sid, expected


@contextmanager
def _locked_session(session_id: str, expected: int | None):
    """Yield ``session_id`` loaded in full, under its lock, ready to change.

    Raises SessionNotFound (404), SessionUnreadable (500), TurnConflict (409) when a
    live stream owns the session, its interrupted turn could not be settled, or
    ``expected`` is not the number of messages on disk.
    """
    store = current_store()
    settle_stale_stream(store.load_metadata_only(session_id))
    with session_lock(session_id):
        session = store.load(session_id)
        ensure_idle(session, expected)
        yield session


def _attachment_ids(message: dict) -> list[str]:
    """The ids of a user message's attachments (a retry or an edit keeps them)."""
    return [a["id"] for a in message.get("attachments") or [] if isinstance(a, dict) and isinstance(a.get("id"), str)]


def _last_user_index(messages: list[dict]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return i
    return None


def _restart_from(session: Session, keep: int, text: str, model: str | None,
                  attachments: list | None = None) -> Response:
    """Start a turn with ``text`` on ``session`` trimmed to its first ``keep`` messages
    (the caller holds the session lock). The trim and the pending turn are one atomic
    write (:func:`api.turns.start_turn` ``replace_messages``), so no crash can lose the
    user's text in between. ``model`` (400 if not listed) defaults to the session's own, as
    for a chat start; the turn runs in the profile's agent home. Answers
    ``{stream_id, session_id, message_count}``."""
    sid = session.session_id
    model = model_catalog.resolve(app_state().backend, model, session.meta.get("model"), home=agent_home()["home"])
    try:
        stream_id = start_turn(current_store(), app_state().backend, sid, text, config=app_state().config,
                               expected_message_count=len(session.messages), model=model,
                               replace_messages=session.messages[:keep], attachments=attachments,
                               agent_home=agent_home())
    except ValueError as exc:  # a model name over the metadata limit
        raise ApiError(str(exc)) from None
    return jsonify(stream_id=stream_id, session_id=sid, message_count=keep)


@contextmanager
def _kept_as_version(session: Session, at: int):
    """Keep the conversation shown from ``at`` on as a version (:func:`api.versions.branch`)
    before a retry or an edit replaces it (the caller holds the session lock).

    Saved before the body runs (the turn's own save then trims the transcript): a crash
    in between shows the old version twice, never loses it. If the body raises (the turn
    could not start), the new version is taken back.
    """
    before = session.meta.get("versions") or {}
    session.meta["versions"] = versions.branch(session.messages, before, at)[1]
    session.save(touch=False)
    try:
        yield
    except BaseException:
        session.meta["versions"] = before
        try:
            session.save(touch=False)
        except OSError as exc:  # the file keeps a duplicate of the shown version: nothing is lost
            log.error("could not take back the new version of %s: %s", session.session_id, exc)
        raise


# ---------------------------------------------------------------- operations


@bp.post("/api/session/retry")
def retry():
    """``{session_id, expected_message_count?, model?, start_turn?}`` → ``{stream_id, session_id, message_count}``.

    Drops the last user message and everything after it (the reply being retried) and
    runs a new turn with that user message; ``message_count`` is the count after the
    trim (the turn appends the user message and the new reply when it finishes). What
    was dropped stays as a version at that user message's index (``versions`` of
    ``GET /api/session``; ``POST /api/session/version`` shows it again).
    ``start_turn: false`` is the upstream's retry: the trim only, no turn, answered
    ``{ok, session_id, message_count, last_user_text, removed_count, session}``
    (:func:`api.compat.retry_answer`); the caller sends the text again itself.
    400 if there is no user message to retry; 404 unknown session; 409 live stream or
    stale ``expected_message_count`` (nothing changed).
    """
    from . import compat
    body = json_body()
    sid, expected = _target(body)
    model = field(body, "model", str, required=False)
    start = compat.retry_starts_turn(body)
    with _locked_session(sid, expected) as session:
        at = _last_user_index(session.messages)
        text = message_text(session.messages[at]) if at is not None else ""
        attachments = _attachment_ids(session.messages[at]) if at is not None else []
        if not text.strip() and not attachments:
            raise ApiError("nothing to retry: the session has no user message with text")
        if not start:
            return jsonify(compat.retry_answer(session, at, text))
        with _kept_as_version(session, at):
            return _restart_from(session, at, text, model, attachments)


@bp.post("/api/session/edit")
def edit():
    """``{session_id, message_index, content, expected_message_count?, model?}`` →
    ``{stream_id, session_id, message_count}``.

    Replaces user message ``message_index`` (0-based) with ``content``: that message and
    everything after it leave the transcript shown and a new turn runs with ``content``;
    what left stays as a version at ``message_index``. 400 if the
    index is out of range, not a user message, or ``content`` is empty; 413 if
    ``content`` is over ``--max-message-bytes`` UTF-8 bytes; 404/409 as for retry.
    """
    body = json_body()
    sid, expected = _target(body)
    index = field(body, "message_index", int)
    content = field(body, "content", str)
    model = field(body, "model", str, required=False)
    if not content.strip():
        raise ApiError("content must not be empty")
    content = check_message(content, app_state().config.max_message_bytes)
    with _locked_session(sid, expected) as session:
        if not 0 <= index < len(session.messages):
            raise ApiError(f"message_index {index} is out of range (the session has "
                           f"{len(session.messages)} messages)")
        if session.messages[index].get("role") != "user":
            raise ApiError(f"message {index} is not a user message; only those can be edited")
        with _kept_as_version(session, index):
            return _restart_from(session, index, content, model, _attachment_ids(session.messages[index]))


@bp.post("/api/session/undo")
def undo():
    """``{session_id, expected_message_count?}`` →
    ``{session: compact, removed: n, removed_user_message: str | null}``.

    Removes the last exchange: the last user message and everything after it (or, with
    no user message, the last message), with the other versions of what it removes.
    ``removed_user_message`` is that message's text, for the composer. 400 if the
    session is empty; 404/409 as for retry.
    """
    sid, expected = _target(json_body())
    with _locked_session(sid, expected) as session:
        if not session.messages:
            raise ApiError("nothing to undo: the session is empty")
        at = _last_user_index(session.messages)
        at = len(session.messages) - 1 if at is None else at
        removed = session.messages[at:]
        session.messages = session.messages[:at]
        session.meta["versions"] = versions.truncate(session.meta.get("versions"), at)
        session.save(intentional_shrink=True)
        user_text = message_text(removed[0]) if removed[0].get("role") == "user" else None
        return jsonify(session=session.compact(), removed=len(removed), removed_user_message=user_text)


@bp.post("/api/session/clear")
def clear():
    """``{session_id, expected_message_count?}`` → ``{session: compact, removed: n}``.

    Removes every message and every version (title and settings stay). 404/409 as for retry.
    """
    sid, expected = _target(json_body())
    with _locked_session(sid, expected) as session:
        removed = len(session.messages)
        if removed or session.meta.get("versions"):
            session.messages = []
            session.meta["versions"] = {}
            session.save(intentional_shrink=True)
        return jsonify(session=session.compact(), removed=removed)


@bp.post("/api/session/duplicate")
def duplicate():
    """``{session_id, up_to_index?, expected_message_count?}`` → ``{session: compact}`` (the copy).

    Forks the session into a new one holding messages ``0..up_to_index`` inclusive
    (default: all), titled "<title> (fork)"; the original is not changed. 400 if
    ``up_to_index`` is out of range; 404/409 as for retry.
    """
    body = json_body()
    sid, expected = _target(body)
    up_to = field(body, "up_to_index", int, required=False)
    with _locked_session(sid, expected) as source:
        if up_to is not None and not 0 <= up_to < len(source.messages):
            raise ApiError(f"up_to_index {up_to} is out of range (the session has "
                           f"{len(source.messages)} messages)")
        messages = source.messages if up_to is None else source.messages[:up_to + 1]
        title = clean_title(f"{source.meta.get('title') or DEFAULT_TITLE} (fork)")
        meta = {"title": title, "manual_title": True, "model": source.meta.get("model"),
                "workspace": source.meta.get("workspace"), "forked_from": sid}
    [copy] = current_store().create_many([{"meta": meta, "messages": messages}], keep_times=False)
    return jsonify(session=copy.compact())


@bp.post("/api/session/version")
def switch_version():
    """``{session_id, message_index, version, expected_message_count?}`` →
    ``{session: compact, message_count, versions: {"<i>": {count, current}}}``.

    Shows version ``version`` (0-based) of the versions at ``message_index`` (the keys of
    ``versions`` in ``GET /api/session``): the transcript from that index on becomes that
    version's, the one shown before is kept, and so are the versions inside each. New
    turns, continue, undo and retry then work on the version shown. ``updated_at`` is not
    changed. A switch to a shorter version is a deliberate shrink (start-up self-heal
    keeps it). 400 when the index has no versions or ``version`` is out of range; 404
    unknown session; 409 live stream or stale ``expected_message_count`` (nothing changed).
    """
    body = json_body()
    sid, expected = _target(body)
    index = field(body, "message_index", int)
    version = field(body, "version", int)
    with _locked_session(sid, expected) as session:
        try:
            messages, shown = versions.switch(session.messages, session.meta.get("versions"), index, version)
        except versions.VersionError as exc:
            raise ApiError(str(exc)) from None
        if messages != session.messages or shown != (session.meta.get("versions") or {}):
            session.messages, session.meta["versions"] = messages, shown
            session.save(touch=False, intentional_shrink=True)
        return jsonify(session=session.compact(), message_count=len(session.messages),
                       versions=versions.summary(session.meta))


def init_app(app) -> None:
    """Register the blueprint."""
    app.register_blueprint(bp)
