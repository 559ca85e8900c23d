"""Sessions and chat blueprints (docs/architecture.md §4, §7) and ``_clear_stale_stream_state``.

Routes parse input and shape output; the work happens in :mod:`api.models` (the
store) and :mod:`api.turns` (the turn engine).
"""
from __future__ import annotations

import json
import logging
import time

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context

from . import message_queue, model_catalog, session_events, streams, turns
from . import compat  # the upstream's shapes on shared paths
from .httputil import ApiError, arg_bool, arg_int, arg_str, field, json_body
from .errors import SessionError
from .models import (Session, clean_title, public_metadata,
                     validate_session_id)
from .app import app_state
from .profiles import agent_home, current_store, profile_dir
from .projects import ProjectStore
from .streams import session_lock

log = logging.getLogger(__name__)
sessions_bp = Blueprint("sessions", __name__)
chat_bp = Blueprint("chat", __name__)


def _store():
    """The session store of the request's profile (:func:`api.profiles.current_store`)."""
    return current_store()


def _clear_stale_stream_state(session: Session) -> bool:
    """Settle a session whose file names a stream that no longer runs (docs/architecture.md §4): the
    routes' name for :func:`api.turns.settle_stale_stream`, which holds the logic."""
    return turns.settle_stale_stream(session)


def _load_settled(session_id: str) -> Session:
    """Metadata-only stub of ``session_id`` with any stale stream settled."""
    return turns.load_settled(_store(), session_id)


# ---------------------------------------------------------------- sessions


@sessions_bp.get("/health")
def health():
    """``{status: "ok", sessions, active_streams, event_subscribers, uptime_seconds, agent, model, problems}``;
    ``event_subscribers``: open ``/api/sessions/events`` streams; ``problems``:
    ``[{message, fix}]`` found at start-up (:mod:`api.diagnostics`)."""
    st = app_state()
    return jsonify(status="ok", sessions=len(st.store.index), active_streams=streams.live_count(),
                   event_subscribers=session_events.subscriber_count(),
                   uptime_seconds=round(time.time() - st.started_at, 3),
                   agent=st.backend.name, model=getattr(st.backend, "model", None),
                   problems=current_app.extensions.get("hermes_problems", []))


@sessions_bp.get("/api/sessions")
def list_sessions():
    """``{sessions: [compact], unreadable: [{file, error}]}``; pinned first, then newest.

    Query: ``include_archived=0/1`` (default 0). Unreadable files are named, never hidden
    behind an error. Stale streams found on the way are settled first.
    """
    store = _store()
    for sid in store.index.with_active_stream():
        row = store.index.get(sid) or {}
        if not streams.is_alive(row.get("active_stream_id")):
            try:
                _load_settled(sid)
            except (SessionError, OSError) as exc:
                log.warning("could not settle %s while listing: %s", sid, exc)
    body = store.index.listing_json(arg_bool("include_archived", False))
    return Response(body, mimetype="application/json")


def _session_events_sse(key: str, heartbeat: float):
    sub = session_events.subscribe(key)  # before the first byte: once a client has the headers, it hears
    try:
        yield b"retry: 2000\n\n"
        while True:
            batch, closed = sub.wait(heartbeat)
            if batch:
                yield "".join(f"event: sessions_changed\ndata: {json.dumps(e, ensure_ascii=False)}\n\n"
                              for e in batch).encode("utf-8")
            elif not closed:
                yield b": ping\n\n"  # a client that went away is noticed when this write fails
            if closed:
                return
    finally:
        session_events.unsubscribe(sub)


@sessions_bp.get("/api/sessions/events")
def session_events_stream():
    """Server-sent events: ``sessions_changed {session_id, reason}`` whenever a session of
    the request's profile changes, within a second, to every open tab.

    ``reason``: ``created``, ``renamed``, ``pinned``, ``archived``, ``deleted``,
    ``turn_started``, ``turn_finished``, ``messages_changed`` (anything else: messages,
    model, tags, project) or ``projects_changed`` (the profile's projects; ``session_id``
    null). Events carry no ``id:`` and are not replayed: a client that
    reconnects refetches ``GET /api/sessions``. A ``: ping`` comment every
    ``--heartbeat-seconds`` (a client that went away is noticed at the next one and its
    thread freed); the stream ends when the server stops. Each open stream holds one of
    the server's ``--threads``: past half of them, 429 with ``Retry-After`` (so live updates
    can never starve the chat), and the page retries later.
    """
    config = app_state().config
    if session_events.subscriber_count() >= max(2, config.threads // 2):
        resp = jsonify(error="too many tabs are following live updates now; this one will try again shortly")
        resp.status_code, resp.headers["Retry-After"] = 429, "10"
        return resp
    key, heartbeat = str(_store().dir), config.heartbeat_seconds
    resp = Response(stream_with_context(_session_events_sse(key, heartbeat)), mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp


@sessions_bp.get("/api/sessions/search")
def search_sessions():
    """Full-text search over titles and message text (:mod:`api.search`).

    Query: ``q`` (every word must occur in the title or in one message; the last word
    may also be the start of a longer one), ``limit`` 1–100 (default 20; 400 otherwise).
    ``{results: [{session_id, title, snippet, message_index, match_ranges}], partial}``:
    one result per session, title matches first, then message matches, newest first;
    ``message_index`` is None for a title match; ``match_ranges`` are ``[start, end)``
    offsets of the matched words in ``snippet``; ``partial`` is true while the index is
    still catching up. A ``q`` without words → no results. The upstream's shape comes too:
    ``sessions`` (sidebar rows with ``match_type``, ``match_preview``), ``query``, ``count``
    (:func:`api.compat.search_answer`).
    """
    from . import search

    limit = arg_int("limit", 20, minimum=1, maximum=100)
    store = _store()
    return jsonify(compat.search_answer(search.search_sessions(current_app, store, request.args.get("q") or "",
                                                               limit), store))


@sessions_bp.post("/api/session/new")
def new_session():
    """Body ``{title?, model?, workspace?, project_id?}`` → ``{session: full}`` (saved at once).

    The title is cleaned to one line of at most 200 characters; ``model`` and
    ``workspace`` longer than 400 UTF-8 bytes → 400, nothing stored. ``project_id``
    puts the chat in that project (404 if the profile has no such project), and
    without a ``workspace`` the chat takes the project's default workspace. Without a
    ``model`` the chat starts on the profile's default model (Settings), if one is set.
    """
    body = json_body()
    workspace = field(body, "workspace", str, required=False)
    project_id = field(body, "project_id", str, required=False) or None
    if project_id:
        project = ProjectStore(profile_dir()).get(project_id)
        if project is None:
            raise ApiError(f"There is no project {project_id!r} (it may have been deleted).", 404)
        workspace = workspace or project.get("workspace")
    try:
        session = _store().create(title=field(body, "title", str, required=False, default=""),
                                  model=field(body, "model", str, required=False)
                                  or model_catalog.profile_default(app_state().backend, profile_dir(),
                                                                   agent_home()["home"]),
                                  workspace=workspace, project_id=project_id)
    except ValueError as exc:
        raise ApiError(str(exc)) from None
    return jsonify(session=dict(public_metadata(session.meta), messages=[], messages_offset=0, message_count=0))


@sessions_bp.get("/api/session")
def get_session():
    """One session: ``{session: {…metadata, messages, messages_offset, message_count}}``.

    Query: ``session_id``; ``messages=0`` for metadata only; ``msg_limit`` (newest N)
    and ``msg_before`` (an index: messages before it). With messages, the upstream's
    ``_messages_offset`` (= ``messages_offset``) and ``_messages_truncated`` come too.
    400 bad id, 404 unknown, 500 unreadable file.
    """
    sid = validate_session_id(arg_str("session_id"))
    want_messages = arg_bool("messages", True)
    limit = arg_int("msg_limit", None, minimum=1)
    before = arg_int("msg_before", None, minimum=0)
    store = _store()
    stub = _load_settled(sid)
    if not want_messages:
        return jsonify(session=dict(public_metadata(stub.meta), message_count=stub.message_count,
                                    **store.pending_fields(stub.meta)))
    if limit is None and before is None:  # the whole transcript: pass the stored bytes through
        meta, array = store.read_all_raw(sid)
        head = json.dumps(dict(public_metadata(meta), messages_offset=0, **compat.window_keys(0, None),
                               **store.pending_fields(meta)), ensure_ascii=False)[:-1]
        return Response(b'{"session": ' + head.encode("utf-8") + b', "messages": ' + array + b"}}",
                        mimetype="application/json")
    meta, window, offset = store.read_window(sid, limit, before)
    out = public_metadata(meta)
    out.update(store.pending_fields(meta))
    out.update(messages=window, messages_offset=offset, message_count=meta.get("message_count", len(window)),
               **compat.window_keys(offset, limit))
    return jsonify(session=out)


@sessions_bp.get("/api/session/status")
def session_status():
    """``{session_id, active_stream_id, streaming, pending_user_message, pending_attachments,
    message_count}`` (``pending_attachments``: the running message's ``[{id, name, size, mime}]``)."""
    sid = validate_session_id(arg_str("session_id"))
    meta = _load_settled(sid).meta
    active = meta.get("active_stream_id")
    pending = _store().pending_fields(meta)
    return jsonify(session_id=sid, active_stream_id=active, streaming=streams.is_alive(active),
                   pending_user_message=pending["pending_user_message"],
                   pending_attachments=pending["pending_attachments"], message_count=meta.get("message_count", 0))


def _patch(changes_from_body) -> Response:
    body = json_body()
    sid = validate_session_id(field(body, "session_id", str))
    changes = changes_from_body(body)
    with session_lock(sid):
        meta = _store().patch_metadata(sid, changes, touch=False)
    return jsonify(session=dict(public_metadata(meta)))


@sessions_bp.post("/api/session/rename")
def rename_session():
    """``{session_id, title}`` → ``{session: compact}``; sets ``manual_title``."""
    def changes(body):
        title = clean_title(field(body, "title", str))
        if not title:
            raise ApiError("title must not be empty")
        return {"title": title, "manual_title": True}
    return _patch(changes)


@sessions_bp.post("/api/session/pin")
def pin_session():
    """``{session_id, pinned: bool}`` → ``{session: compact}``."""
    return _patch(lambda body: {"pinned": field(body, "pinned", bool)})


@sessions_bp.post("/api/session/archive")
def archive_session():
    """``{session_id, archived: bool}`` → ``{session: compact}``."""
    return _patch(lambda body: {"archived": field(body, "archived", bool)})


@sessions_bp.post("/api/session/delete")
def delete_session():
    """``{session_id}`` → ``{ok: true}``; 404 if unknown.

    Under one session lock: a running stream is cancelled, then the file, its backup,
    its journal and its index row go, and a reply kept in memory for it is dropped; a
    chat start from another tab waits for the lock and then finds no session.
    """
    body = json_body()
    sid = validate_session_id(field(body, "session_id", str))
    store = _store()
    with session_lock(sid):
        try:
            stub = store.load_metadata_only(sid)
        except SessionError:  # unreadable or missing: delete what is there
            stub = None
        if stub is not None and streams.is_alive(stub.active_stream_id):
            turns.cancel_turn(stub.active_stream_id)
        if not store.delete(sid):
            raise ApiError(f"no session {sid!r}", 404)
        streams.drop_unsaved_reply(sid)
        message_queue.delete_queue(store, sid)
    return jsonify(ok=True)


# ---------------------------------------------------------------- chat


@chat_bp.post("/api/chat/start")
def chat_start():
    """``{session_id, message, model?, expected_message_count?, attachments?}`` → ``{stream_id, session_id}``.

    ``message``: 1 byte to ``--max-message-bytes`` (default 1 MiB) of UTF-8; larger → 413
    and nothing stored. ``attachments``: ids from ``POST /api/attachments`` for this
    session (at most 20); an unknown id or one of another session → 404, nothing stored;
    with attachments the message may be empty. ``model`` over 400 bytes → 400. 409 if a live stream owns the
    session or ``expected_message_count`` is stale. The message is on disk when this
    answers.
    """
    body = json_body()
    sid = validate_session_id(field(body, "session_id", str))
    st = app_state()
    attachments = field(body, "attachments", list, required=False)
    message = turns.check_message(field(body, "message", str), st.config.max_message_bytes,
                                  allow_empty=bool(attachments))
    expected = field(body, "expected_message_count", int, required=False)
    stub = _load_settled(sid)
    model = model_catalog.resolve(st.backend, field(body, "model", str, required=False), stub.meta.get("model"),
                                  home=agent_home()["home"])
    try:
        stream_id = turns.start_turn(_store(), st.backend, sid, message, config=st.config,
                                     expected_message_count=expected, model=model, attachments=attachments,
                                     agent_home=agent_home())
    except ValueError as exc:  # a model name over the metadata limit
        raise ApiError(str(exc)) from None
    return jsonify(stream_id=stream_id, session_id=sid)


def _sse(channel: streams.StreamChannel, after_seq: int, heartbeat: float, done_store=None):
    yield b"retry: 2000\n\n"
    seq = after_seq
    while True:
        batch, finished = channel.events_after(seq, heartbeat)
        if batch:
            seq = batch[-1][0]
            if done_store is not None:  # the upstream's done carries the transcript (api.compat)
                batch = [(s, e, compat.done_with_messages(done_store, d) if e == "done" else d) for s, e, d in batch]
            yield "".join(f"id: {s}\nevent: {e}\ndata: {d}\n\n" for s, e, d in batch).encode("utf-8")
        elif not finished:
            yield b": ping\n\n"
        if finished:
            return


@chat_bp.get("/api/chat/stream")
def chat_stream():
    """Server-sent events of one stream (docs/architecture.md §4).

    Query ``stream_id``; resume with header ``Last-Event-ID`` or ``after_seq``: only
    events with a higher seq are sent. Each event has ``id: <seq>``; events ``token``,
    ``reasoning``, ``tool``, ``tool_complete``, ``status``, ``done``, ``cancel``,
    ``apperror``, ``stream_end``; a ``: ping`` comment every heartbeat. With ``messages=1``
    (or the upstream page's ``replay=1``) ``done``'s ``session`` also carries ``messages``,
    the whole saved transcript, read when the event is sent. 404 if the
    stream is unknown or no longer replayable.
    """
    stream_id = arg_str("stream_id")
    after = arg_int("after_seq", None)
    if after is None:
        header = request.headers.get("Last-Event-ID", "").strip()
        if header and not header.isdigit():
            raise ApiError("Last-Event-ID must be an event id (a number)")
        after = int(header or 0)
    channel = streams.get_stream(stream_id)
    if channel is None:
        raise ApiError(f"no stream {stream_id[:80]!r} (it ended or never existed)", 404)
    if channel.closed:  # resuming at or past the end of a finished stream still gets stream_end
        after = min(after, channel.last_seq - 1)
    heartbeat = app_state().config.heartbeat_seconds
    done_store = _store() if compat.wants_done_messages() else None
    resp = Response(stream_with_context(_sse(channel, after, heartbeat, done_store)), mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp


@chat_bp.get("/api/chat/stream/status")
def chat_stream_status():
    """``{stream_id, active: bool, last_seq}``; 404 if the stream is unknown."""
    stream_id = arg_str("stream_id")
    channel = streams.get_stream(stream_id)
    if channel is None:
        raise ApiError(f"no stream {stream_id[:80]!r}", 404)
    return jsonify(stream_id=stream_id, active=streams.is_alive(stream_id), last_seq=channel.last_seq)


@chat_bp.post("/api/chat/cancel")
def chat_cancel():
    """``{stream_id}`` → ``{ok: true, cancelled: bool}``; idempotent."""
    stream_id = field(json_body(), "stream_id", str)
    return jsonify(ok=True, cancelled=turns.cancel_turn(stream_id))
