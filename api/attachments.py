"""Attachment endpoints (docs/api.md): upload a file for the next message, download it.

- ``POST /api/attachments`` multipart: ``session_id`` and the file in the part named
  ``file`` → ``{attachment: {id, name, size, mime}}``. The name is cleaned
  (:func:`api.safepath.upload_name`: ``../../x`` becomes ``x``; an empty name becomes
  ``attachment``) and kept as data only; the type comes from the first bytes for
  common images and PDF, else from the name. Over ``--max-attachment-bytes`` (25 MiB by
  default) → 413 JSON and nothing stored (refused from ``Content-Length`` before the
  body is read when it says so). 400 missing field or part, bad id; 404 unknown session
  (also one of another profile).
- ``GET /api/attachment?session_id&id[&download=1]`` → the bytes with the stored type,
  ``Content-Disposition`` (``inline`` for PNG/JPEG/GIF/WebP/AVIF/BMP and plain text,
  ``attachment`` for everything else, HTML and SVG included; ``download=1`` forces
  ``attachment``), ``X-Content-Type-Options: nosniff`` and ``Content-Security-Policy:
  sandbox``. 404 for an id unknown in that session.
- ``POST /api/attachment/delete {session_id, id}`` → ``{ok: true}``: removes a file that
  was uploaded but not sent (the page's chip removed). 404 for an id unknown in that
  session; 409, and the file is kept, when a message records it: a sent message (any
  version of the chat), the running turn's message or a queued one.

Storage and the rules on disk are :mod:`api.attachment_store`; a message takes the ids
in ``POST /api/chat/start`` (``attachments``).
"""
from __future__ import annotations

from flask import Blueprint, Flask, jsonify, request, send_file

from .app import app_state
from . import message_queue
from .attachment_store import guess_mime, recorded_ids, require_session
from .errors import ApiError, PathError
from .httputil import arg_bool, arg_str, field, json_body
from .models import validate_session_id
from .profiles import current_store
from .safepath import upload_name
from .streams import session_lock

bp = Blueprint("attachments", __name__)
MULTIPART_SLACK = 64 * 1024   # multipart headers and boundaries on top of the file itself
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp", "text/plain"}


def _too_big(cap: int) -> ApiError:
    return ApiError(f"the file is larger than this server's limit of {cap / 1048576:g} MiB for one attachment "
                    "(--max-attachment-bytes)", 413)


@bp.url_value_preprocessor
def _per_route_limits(endpoint, values):
    # Runs before every before_request hook, so no hook can read the body under the
    # app-wide JSON limit first.
    if endpoint == "attachments.upload":
        request.max_content_length = app_state().config.max_attachment_bytes + MULTIPART_SLACK


@bp.post("/api/attachments")
def upload():
    """Store one attached file (see the module docstring)."""
    cap = app_state().config.max_attachment_bytes
    if request.content_length is not None and request.content_length > cap + MULTIPART_SLACK:
        raise _too_big(cap)
    sid = validate_session_id(request.form.get("session_id") or _missing("form field 'session_id'"))
    part = request.files.get("file")
    if part is None:
        _missing("the file: send it in the multipart part named 'file'")
    try:
        name = upload_name(part.filename or "attachment", "file name")
    except PathError:
        if part.filename and any(ord(c) < 32 or ord(c) == 127 for c in part.filename):
            raise
        name = "attachment"
    store = current_store()
    require_session(store.dir, sid)
    incoming, size, head = store.attachments.receive(part.stream, cap)
    mime = guess_mime(name, head, part.mimetype)
    try:
        with session_lock(sid):
            require_session(store.dir, sid)   # deleted meanwhile: nothing is kept
            stored = store.attachments.commit(sid, incoming, name, size, mime)
    finally:
        incoming.unlink(missing_ok=True)
    return jsonify(attachment=stored.record())


def _missing(what: str):
    raise ApiError(f"missing {what}")


@bp.get("/api/attachment")
def download():
    """The bytes of one attachment (see the module docstring)."""
    sid = validate_session_id(arg_str("session_id"))
    store = current_store()
    require_session(store.dir, sid)
    att = store.attachments.get(sid, arg_str("id"))
    inline = att.mime in INLINE_TYPES and not arg_bool("download", False)
    resp = send_file(att.path, mimetype=att.mime, as_attachment=not inline, download_name=att.name,
                     conditional=True, etag=True, max_age=0)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "sandbox"
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp


@bp.post("/api/attachment/delete")
def delete():
    """Delete one unsent attachment (see the module docstring)."""
    body = json_body()
    sid = validate_session_id(field(body, "session_id", str))
    att_id = field(body, "id", str)
    store = current_store()
    with session_lock(sid):
        session = store.load(sid)   # 404 unknown session
        store.attachments.get(sid, att_id)   # 404 unknown attachment
        pending = store.pending_turn(sid, session.active_stream_id, head_only=True)
        used = recorded_ids([session.messages, session.meta.get("versions"),
                             pending.user if pending is not None else None,
                             message_queue.read_queue(store, sid)])
        if att_id in used:
            raise ApiError("a message of this chat has this file, so it is kept", 409)
        store.attachments.delete(sid, att_id)
    return jsonify(ok=True)


def init_app(app: Flask) -> None:
    """Register the attachments blueprint."""
    app.register_blueprint(bp)
