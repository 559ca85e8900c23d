"""Agent control routes (docs/api.md "Agent control…"): models, approvals, clarify, continue.

- ``GET /api/models`` → ``{models: [{id, label, backend, vision, context_length?}], default}``
- ``POST /api/session/model {session_id, model}`` → ``{session: compact}`` (the session's
  default model; unknown → 400)
- ``POST /api/session/continue {session_id, model?}`` → ``{stream_id, session_id}``: extend
  the last reply (``truncated`` or ``interrupted``) in place; 409 if there is none
- ``POST /api/approval/respond {stream_id, approval_id, choice}`` and
  ``POST /api/clarify/respond {stream_id, clarify_id, answer}`` → ``{ok: true}``; 404
  unknown id, 409 already answered (or timed out)
- ``GET /api/approval/pending?session_id`` → ``{approvals: [{approval_id, stream_id, tool,
  command, description}]}``
- ``POST /api/chat/queue {session_id, message, model?}``, ``GET /api/chat/queue?session_id``,
  ``POST /api/chat/queue/edit {session_id, id, message}``, ``POST /api/chat/queue/remove
  {session_id, id}``: messages that wait for the running turn (:mod:`api.message_queue`)
- ``GET /api/approval/rules`` → ``{rules: [{tool, command, created_at}]}`` (the profile's
  "always" answers) and ``POST /api/approval/rules/revoke {tool, command}`` → ``{ok: true}``
  (404 if there was no such rule)

The logic lives in :mod:`api.approvals`, :mod:`api.model_catalog` and :mod:`api.turns`.
"""
from __future__ import annotations

import logging
import threading

from flask import Blueprint, Flask, jsonify

from . import approvals, diagnostics, message_queue, model_catalog, turns
from .app import app_state
from .httputil import ApiError, arg_str, field, json_body
from .models import public_metadata, validate_session_id
from .profiles import agent_home, current_store, profile_dir
from .streams import session_lock

log = logging.getLogger(__name__)
control_bp = Blueprint("agent_control", __name__)
MAX_ANSWER_CHARS = 10_000


@control_bp.get("/api/models")
def list_models():
    """``{models, default}``: what a turn may run on in the request's profile (for hermes,
    what that profile's ``config.yaml`` names); ``default`` is the backend's."""
    backend, home = app_state().backend, agent_home()["home"]
    return jsonify(models=model_catalog.list_models(backend, home), default=model_catalog.default_model(backend, home))


@control_bp.post("/api/session/model")
def set_session_model():
    """``{session_id, model}`` → ``{session: compact}``; ``model`` must be listed (400)."""
    body = json_body()
    sid = validate_session_id(field(body, "session_id", str))
    model = model_catalog.resolve(app_state().backend, field(body, "model", str), home=agent_home()["home"])
    store = current_store()
    with session_lock(sid):
        meta = store.patch_metadata(sid, {"model": model}, touch=False)
    return jsonify(session=dict(public_metadata(meta)))


@control_bp.post("/api/session/continue")
def continue_reply():
    """``{session_id, model?}`` → ``{stream_id, session_id}``; see :func:`api.turns.start_continue`."""
    body = json_body()
    sid = validate_session_id(field(body, "session_id", str))
    st = app_state()
    stub = turns.load_settled(current_store(), sid)
    model = model_catalog.resolve(st.backend, field(body, "model", str, required=False), stub.meta.get("model"),
                                  home=agent_home()["home"])
    stream_id = turns.start_continue(current_store(), st.backend, sid, config=st.config, model=model,
                                     agent_home=agent_home())
    return jsonify(stream_id=stream_id, session_id=sid)


@control_bp.post("/api/approval/respond")
def approval_respond():
    """``{stream_id, approval_id, choice: once|session|always|deny}`` → ``{ok: true}``."""
    body = json_body()
    choice = field(body, "choice", str)
    if choice not in approvals.CHOICES:
        raise ApiError(f"choice must be one of {', '.join(approvals.CHOICES)}")
    approvals.respond("approval", field(body, "stream_id", str), field(body, "approval_id", str), choice)
    return jsonify(ok=True)


@control_bp.post("/api/clarify/respond")
def clarify_respond():
    """``{stream_id, clarify_id, answer}`` → ``{ok: true}``."""
    body = json_body()
    answer = field(body, "answer", str)
    if len(answer) > MAX_ANSWER_CHARS:
        raise ApiError(f"the answer is longer than {MAX_ANSWER_CHARS:,} characters", 413)
    approvals.respond("clarify", field(body, "stream_id", str), field(body, "clarify_id", str), answer)
    return jsonify(ok=True)


@control_bp.get("/api/approval/pending")
def approval_pending():
    """``{approvals: [...]}``: the open approvals of ``session_id`` (of this profile)."""
    sid = validate_session_id(arg_str("session_id"))
    current_store().load_metadata_only(sid)  # 404 for another profile's session
    return jsonify(approvals=approvals.open_approvals(sid))


@control_bp.get("/api/approval/rules")
def approval_rules():
    """``{rules: [{tool, command, created_at}]}``: this profile's "always" answers."""
    return jsonify(rules=approvals.always_rules(profile_dir()))


@control_bp.post("/api/approval/rules/revoke")
def approval_revoke():
    """``{tool, command}`` → ``{ok: true}``; 404 if the profile has no such rule."""
    body = json_body()
    if not approvals.revoke_always(profile_dir(), field(body, "tool", str), field(body, "command", str)):
        raise ApiError("no such rule (it may have been revoked already)", 404)
    return jsonify(ok=True)


def _queue_body() -> tuple:
    body = json_body()
    sid = validate_session_id(field(body, "session_id", str))
    return body, sid, current_store()


def _queued(store, sid):
    return [{"id": q["id"], "text": q["text"], "created_at": q.get("created_at"), "model": q.get("model"),
             "attachments": q.get("attachments") if isinstance(q.get("attachments"), list) else []}
            for q in message_queue.read_queue(store, sid)]


@control_bp.post("/api/chat/queue")
def queue_message():
    """``{session_id, message, model?, attachments?}`` → ``{queued: [...], stream_id}``: the
    message waits for the running turn and starts when it ends (``stream_id`` is set when
    it started at once because the session was idle). ``attachments``: ids from
    ``POST /api/attachments`` for this session, checked as chat start checks them (an
    unknown id or one of another session → 404, nothing queued; with attachments the
    message may be empty); each queued entry lists its ``attachments`` records. 413 over
    the message limit, 400 unknown model, 409 when 20 messages already wait."""
    body, sid, store = _queue_body()
    st = app_state()
    attachments = field(body, "attachments", list, required=False)
    text = turns.check_message(field(body, "message", str), st.config.max_message_bytes,
                               allow_empty=bool(attachments))
    requested = field(body, "model", str, required=False)
    if requested is not None:
        model_catalog.resolve(st.backend, requested, home=agent_home()["home"])
    message_queue.add(store, sid, text, requested, attachments)
    stream_id = message_queue.start_next(store, st.backend, sid, st.config, agent_home())
    return jsonify(queued=_queued(store, sid), stream_id=stream_id, session_id=sid)


@control_bp.get("/api/chat/queue")
def get_queue():
    """``{queued: [{id, text, created_at, model}]}`` of ``session_id``, oldest first."""
    sid = validate_session_id(arg_str("session_id"))
    store = current_store()
    store.load_metadata_only(sid)
    return jsonify(queued=_queued(store, sid))


@control_bp.post("/api/chat/queue/edit")
def edit_queued():
    """``{session_id, id, message}`` → ``{queued}``; 404 if it already started or was removed."""
    body, sid, store = _queue_body()
    text = turns.check_message(field(body, "message", str), app_state().config.max_message_bytes)
    message_queue.edit(store, sid, field(body, "id", str), text)
    return jsonify(queued=_queued(store, sid))


@control_bp.post("/api/chat/queue/remove")
def remove_queued():
    """``{session_id, id}`` → ``{queued}``; 404 if it already started or was removed."""
    body, sid, store = _queue_body()
    message_queue.remove(store, sid, field(body, "id", str))
    return jsonify(queued=_queued(store, sid))


def _drain_after_restart(app: Flask) -> None:
    """Start what was queued when the server stopped (each profile's store, once)."""
    state = app.extensions["hermes"]
    registry = app.extensions.get("hermes_profiles")
    names = registry.names() if registry is not None else ["default"]
    with app.app_context():
        for name in names:
            try:
                store = registry.store(name) if registry is not None else state.store
                home = agent_home(name) if registry is not None else None
                message_queue.drain_all(store, state.backend, state.config, home)
            except Exception:
                log.exception("could not drain the queues of profile %s", name)


def init_app(app: Flask) -> None:
    """Register the blueprint, log start-up problems (``app.extensions["hermes_problems"]``,
    reported by ``/health``) and drain the message queues left by the last run."""
    app.register_blueprint(control_bp)
    state = app.extensions["hermes"]
    problems = diagnostics.startup_problems(state.config, state.backend)
    app.extensions["hermes_problems"] = problems
    if not getattr(state.backend, "install_command", None):  # server.py already says that one
        for p in problems:
            log.warning("configuration problem: %s; fix: %s", p["message"], p["fix"])
    threading.Thread(target=_drain_after_restart, args=(app,), name="queue-drain", daemon=True).start()
