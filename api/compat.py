"""The upstream's request and answer shapes on the paths we share with it (docs/api.md,
"Upstream-compatible routes").

A client or script written for the upstream web UI (nesquena/hermes-webui) keeps
working against this server where the path is the same. Each route stays where it
lives (:mod:`api.routes`, :mod:`api.memory`, :mod:`api.workspace`, …) and asks this
module to read the upstream's input or to add the upstream's keys to its answer, so our
own shapes stay as they are and the translation lives in one place:

- ``GET /api/chat/cancel?stream_id=`` (the upstream cancels with a GET) — this module's
  blueprint; our ``POST`` stays.
- ``GET /api/sessions/search`` also answers ``sessions`` (:func:`search_answer`).
- ``GET /api/memory`` also answers ``memory``, ``user``, ``*_mtime``; ``POST
  /api/memory/write`` takes ``{section, content}`` (:func:`memory_view`,
  :func:`memory_file`).
- ``GET /api/workspaces`` also answers ``{workspaces: [{path, name}], last}``
  (:func:`workspaces_view`); ``POST /api/workspaces/add``, ``/remove`` and ``/rename``
  (what the upstream's page sends) change the profile's list of added folders
  (:mod:`api.workspace_roots`) — this module's blueprint.
- ``POST /api/file/rename`` takes ``new_name`` (:func:`rename_target`).
- ``POST /api/session/retry {session_id, start_turn: false}`` trims without starting a
  turn and answers ``last_user_text`` (:func:`retry_starts_turn`, :func:`retry_answer`).
- ``GET /api/session`` also answers ``_messages_offset`` and ``_messages_truncated``
  (:func:`window_keys`).
- ``GET /api/chat/stream?…&messages=1`` (or the upstream page's ``replay=1``): the
  ``done`` event's ``session`` carries ``messages`` (:func:`done_with_messages`).
- ``POST /api/settings`` takes the upstream's flat keys (:func:`upstream_settings`).

What stays refused: the upstream trusts a state-changing request that has no
``Origin`` header; here it needs ``X-CSRF-Token`` or ``Authorization: Bearer`` when a
password is set (:mod:`api.csrf`).
"""
from __future__ import annotations

import json
import logging
import os

from flask import Blueprint, Flask, jsonify, request

from .errors import ApiError

log = logging.getLogger(__name__)
bp = Blueprint("compat", __name__)


# ---------------------------------------------------------------- chat


@bp.get("/api/chat/cancel")
def chat_cancel_get():
    """``GET /api/chat/cancel?stream_id=`` → ``{ok: true, cancelled: bool, stream_id}``; the
    upstream's form of ``POST /api/chat/cancel``, idempotent like it.

    A GET that changes state must not be reachable from another site: a request whose
    ``Origin``, ``Referer`` or ``Sec-Fetch-Site`` says it comes from another site gets 403
    (a script sends none of them and passes, like the page). 400 without ``stream_id``.
    """
    from .app import auth_state
    from .csrf import origin_verdict
    from .httputil import arg_str
    from .turns import cancel_turn

    if origin_verdict(auth_state().hosts) == "foreign":
        raise ApiError("cross-origin request refused", 403)
    stream_id = arg_str("stream_id")
    return jsonify(ok=True, cancelled=cancel_turn(stream_id), stream_id=stream_id)


def wants_done_messages() -> bool:
    """True when a ``GET /api/chat/stream`` asks for the transcript in ``done``:
    ``messages=1``, or ``replay=1`` (what the upstream's page always sends)."""
    return request.args.get("messages") in ("1", "true") or request.args.get("replay") in ("1", "true")


def done_with_messages(store, data: str) -> str:
    """The ``done`` event's JSON ``data`` with ``session.messages`` (the whole saved
    transcript) and ``session.message_count`` added, as the upstream sends it. ``data``
    unchanged if the session cannot be read (deleted meanwhile, another profile)."""
    try:
        payload = json.loads(data)
        sid = payload["session"]["session_id"]
        _meta, array = store.read_all_raw(sid)
        messages = json.loads(array)
    except Exception as exc:  # the event still goes out, as ours
        log.info("done without messages: %s", exc)
        return data
    payload["session"].update(messages=messages, message_count=len(messages))
    return json.dumps(payload, ensure_ascii=False)


# ---------------------------------------------------------------- sessions


def search_answer(result: dict, store) -> dict:
    """Our search answer ``{results, partial}`` plus the upstream's ``{sessions, query,
    count}``: each result's sidebar row with ``match_type`` (``title`` | ``content``) and,
    for a content match, ``match_preview`` (our snippet).

    The upstream's ``content=0`` (titles only) is honoured: message matches are left
    out of both lists. Its ``depth`` (search only the first N messages) is not: every
    message is searched.
    """
    results = result.get("results") or []
    if request.args.get("content") == "0":
        results = [r for r in results if r.get("message_index") is None]
        result = dict(result, results=results)
    rows = []
    for r in results:
        row = store.index.get(r["session_id"]) or {"session_id": r["session_id"], "title": r.get("title")}
        row["match_type"] = "title" if r.get("message_index") is None else "content"
        if row["match_type"] == "content":
            row["match_preview"] = r.get("snippet")
        rows.append(row)
    return dict(result, sessions=rows, query=request.args.get("q") or "", count=len(rows))


def window_keys(offset: int, limit: int | None) -> dict:
    """The upstream's names for a paged read: ``_messages_offset`` (index of the first
    message sent) and ``_messages_truncated`` (a ``msg_limit`` read left older ones out)."""
    return {"_messages_offset": offset, "_messages_truncated": bool(limit is not None and offset > 0)}


def retry_starts_turn(body: dict) -> bool:
    """False when the caller asks for the upstream's retry: ``start_turn: false`` (the
    upstream's retry only trims and hands the text back; its page then sends it with
    ``/api/chat/start``). 400 if ``start_turn`` is not a boolean."""
    value = body.get("start_turn", True)
    if not isinstance(value, bool):
        raise ApiError("field 'start_turn' must be bool")
    return value


def retry_answer(session, at: int, text: str) -> dict:
    """Trim ``session`` (loaded in full, its lock held) to its first ``at`` messages as a
    deliberate shrink, keeping what it removes as a version (:func:`api.versions.branch`),
    and answer ``{ok, session_id, message_count, last_user_text, removed_count, session: compact}``."""
    from . import versions
    removed = len(session.messages) - at
    # What the trim removes stays as a version at ``at``, as our own retry keeps it.
    session.messages, session.meta["versions"] = versions.branch(
        session.messages, session.meta.get("versions"), at)
    session.save(intentional_shrink=True)
    return {"ok": True, "session_id": session.session_id, "message_count": at, "last_user_text": text,
            "removed_count": removed, "session": session.compact()}


# ---------------------------------------------------------------- memory


SECTIONS = {"memory": "MEMORY.md", "user": "USER.md"}


def memory_file(body: dict) -> str:
    """The file a ``POST /api/memory/write`` names: ours ``file`` (``MEMORY.md`` |
    ``USER.md``) or the upstream's ``section`` (``memory`` | ``user``). 400 for another
    section (the upstream's ``soul`` is hermes-agent's SOUL.md, not kept here), for
    neither, or for both naming different files."""
    name, section = body.get("file"), body.get("section")
    if section is None:
        if name is None:
            raise ApiError("missing field 'file' (MEMORY.md or USER.md) or 'section' (memory or user)")
        return name
    if not isinstance(section, str) or section not in SECTIONS:
        raise ApiError(f"section must be 'memory' or 'user' (this server keeps MEMORY.md and USER.md only), "
                       f"not {str(section)[:40]!r}")
    if name is not None and name != SECTIONS[section]:
        raise ApiError(f"'file' {str(name)[:40]!r} and 'section' {section!r} name different files")
    return SECTIONS[section]


def memory_view(files: list[dict]) -> dict:
    """Our ``{files}`` plus the upstream's ``memory``, ``user``, ``memory_mtime``, ``user_mtime``."""
    out: dict = {"files": files}
    for section, name in SECTIONS.items():
        f = next((f for f in files if f["file"] == name), None) or {}
        out[section] = f.get("content") or ""
        out[f"{section}_mtime"] = f.get("mtime")
    return out


# ---------------------------------------------------------------- workspace


def workspaces_view(roots: list[dict]) -> dict:
    """Our ``{roots: [{name, path}]}`` plus the upstream's ``{workspaces: [{path, name}],
    last}`` (``last``: the default root, where a new chat works)."""
    return {"roots": roots, "workspaces": [{"path": r["path"], "name": r["name"]} for r in roots],
            "last": roots[0]["path"] if roots else None}


def _workspaces_answer() -> dict:
    from .workspace import workspace_roots
    return dict(workspaces_view([{"name": n, "path": str(p)} for n, p in workspace_roots()]), ok=True)


def _workspace_body(allowed: set, *, name_required: bool = False) -> tuple[str, str | None]:
    """``(path, name)`` of a ``/api/workspaces/*`` body; 400 for an unknown field, a
    ``path`` that is not a non-empty string, a ``name`` that is not a string (or empty when
    required). Surrounding quotes (Finder's "Copy as Pathname") and ``~`` are read as the
    upstream reads them."""
    from .httputil import json_body
    body = json_body()
    if body.get("create") is True and "create" in allowed:
        raise ApiError("this server adds only folders that exist; create it first, then add it")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(f"unknown field {str(unknown[0])[:40]!r}; send {', '.join(sorted(allowed))}")
    path, name = body.get("path"), body.get("name")
    if not isinstance(path, str) or not path.strip():
        raise ApiError("path is required: the folder's absolute path")
    if name is not None and not isinstance(name, str):
        raise ApiError("field 'name' must be str")
    if name_required and not (name or "").strip():
        raise ApiError("path and name are required")
    path = path.strip()
    if len(path) >= 2 and path[0] == path[-1] and path[0] in "'\"":
        path = path[1:-1].strip()
    return os.path.expanduser(path), name


@bp.post("/api/workspaces/add")
def workspaces_add():
    """The upstream's ``POST /api/workspaces/add {path, name?, create?: false}`` → ``{ok,
    workspaces: [{path, name}], last, roots}`` (as ``GET /api/workspaces``): the folder is
    added to this profile's workspace roots, so a chat may work in it.

    400, nothing written: an unknown field; ``create: true`` (the folder must exist); a
    path that is not an absolute path to an existing folder, or is ``/``, the home folder
    or one above it, holds the agent's home or this server's state dir, or lies inside
    the state dir (:func:`api.workspace_roots.refusal`); a folder that is a workspace
    already."""
    from .app import app_state
    from .profiles import profile_dir
    from .workspace import workspace_roots
    from .workspace_roots import CHANGE_LOCK, add_extra_roots, refusal

    path, name = _workspace_body({"path", "name", "create"})
    reason = refusal(path, app_state().config.state_dir)
    if reason:
        raise ApiError(f"{path[:200]!r} cannot be a workspace: {reason}")
    real = os.path.realpath(path)
    if any(os.path.realpath(p) == real for _n, p in workspace_roots()):
        raise ApiError(f"{path[:200]!r} is a workspace already")
    with CHANGE_LOCK:
        added, skipped = add_extra_roots(profile_dir(), app_state().config.state_dir,
                                         [{"path": path, "name": name or ""}])
    if not added:
        raise ApiError(f"{path[:200]!r} was not added: " + (skipped[0]["reason"] if skipped else "listed already"))
    return jsonify(_workspaces_answer())


@bp.post("/api/workspaces/remove")
def workspaces_remove():
    """The upstream's ``POST /api/workspaces/remove {path}`` → the list as for ``add``. The
    folder itself is untouched; chats that worked in it get 403 for its files until it is
    added again. 400 an unknown field or no ``path``; 404 a folder that is not one added
    here (the ``default`` folder and ``--workspace-roots`` are not removed this way)."""
    from .profiles import profile_dir
    from .workspace_roots import remove_root

    path, _ = _workspace_body({"path"})
    if not remove_root(profile_dir(), path):
        raise ApiError(f"{path[:200]!r} is not an added workspace (the default one and those of "
                       "--workspace-roots stay)", 404)
    return jsonify(_workspaces_answer())


@bp.post("/api/workspaces/rename")
def workspaces_rename():
    """The upstream's ``POST /api/workspaces/rename {path, name}`` → the list as for ``add``,
    the folder shown as ``name`` (whitespace collapsed, at most 64 characters). 400 an
    unknown field, no ``path`` or an empty ``name``; 404 a folder that is not one added here."""
    from .profiles import profile_dir
    from .workspace_roots import rename_root

    path, name = _workspace_body({"path", "name"}, name_required=True)
    if not rename_root(profile_dir(), path, name):
        raise ApiError(f"{path[:200]!r} is not an added workspace (only those can be renamed)", 404)
    return jsonify(_workspaces_answer())


def rename_target(body: dict, path: str) -> str:
    """The new path of a ``POST /api/file/rename``: ours ``new_path``, or the upstream's
    ``new_name`` (a name in the same folder: no ``/``, ``\\``, ``.`` or ``..``). 400 for
    neither or both."""
    new_path, new_name = body.get("new_path"), body.get("new_name")
    if (new_path is None) == (new_name is None):
        raise ApiError("send one of 'new_path' (a path in the workspace) or 'new_name' (a name in the same folder)")
    if new_path is not None:
        if not isinstance(new_path, str):
            raise ApiError("field 'new_path' must be str")
        return new_path
    if not isinstance(new_name, str):
        raise ApiError("field 'new_name' must be str")
    name = new_name.strip()
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ApiError("new_name must be a file name without '/' or '\\'")
    folder = path.rstrip("/").rpartition("/")[0]
    return f"{folder}/{name}" if folder else name


# ---------------------------------------------------------------- settings

UPSTREAM_SEND_KEYS = {"enter": "enter", "ctrl+enter": "ctrl-enter"}


def upstream_settings(body: dict, known) -> dict:
    """A ``POST /api/settings`` body in the upstream's flat shape, in ours (``{settings?:
    {…}, password?, remove_password?, current_password?}``, :mod:`api.settings_routes`).

    ``known``: our setting names (a mapped key whose name we do not have is refused too).
    Mapped: ``theme`` (light | dark | system), ``send_key`` (``enter``, ``ctrl+enter`` →
    ``ctrl-enter``), ``default_model``, ``notifications_enabled`` (→ ``notify_on_reply``),
    ``_set_password`` (→ ``password``), ``_clear_password: true`` (→ ``remove_password``),
    ``_current_password`` (→ ``current_password``, checked whenever it is sent);
    ``skin`` only as ``"default"`` (the one look this page has). Anything else, or a value
    we cannot honour (``send_key: "shift+enter"``) → ApiError 400 naming it: nothing is
    silently dropped.
    """
    ours: dict = {}
    settings: dict = {}
    unknown = []
    for key, value in body.items():
        if key == "theme":
            if value not in ("light", "dark", "system"):
                raise ApiError("theme must be 'light', 'dark' or 'system'")
            settings["theme"] = value
        elif key == "skin":
            if value != "default":
                raise ApiError("skin: this page has one look; only 'default' is accepted")
        elif key == "send_key":
            if value not in UPSTREAM_SEND_KEYS:
                raise ApiError("send_key must be 'enter' or 'ctrl+enter' (shift+enter is not offered here)")
            settings["send_key"] = UPSTREAM_SEND_KEYS[value]
        elif key == "default_model":
            settings["default_model"] = value
        elif key == "notifications_enabled":
            settings["notify_on_reply"] = value
        elif key == "_set_password":
            ours["password"] = value
        elif key == "_current_password":
            ours["current_password"] = value
        elif key == "_clear_password":
            if not isinstance(value, bool):
                raise ApiError("_clear_password must be true or false")
            if value:
                ours["remove_password"] = True
        else:
            unknown.append(key)
    unknown += sorted(k for k in settings if k not in known)
    if unknown:
        names = ", ".join(repr(str(k)[:40]) for k in unknown[:8])
        raise ApiError(f"unknown setting(s) {names}: this server reads theme, send_key, default_model, "
                       "notifications_enabled, skin ('default'), _set_password, _current_password and "
                       "_clear_password in the upstream's flat shape, or {settings?, password?, remove_password?, "
                       "current_password?}")
    if settings:
        ours["settings"] = settings
    return ours


def upstream_settings_view(ui: dict) -> dict:
    """The upstream's flat names for our settings, to add to a ``GET /api/settings``
    answer: ``theme``, ``send_key`` (``ctrl+enter`` spelling), ``default_model``,
    ``notifications_enabled``."""
    out = {}
    if "theme" in ui:
        out["theme"] = ui["theme"]
    if "send_key" in ui:
        out["send_key"] = {v: k for k, v in UPSTREAM_SEND_KEYS.items()}.get(ui["send_key"], ui["send_key"])
    if "default_model" in ui:
        out["default_model"] = ui["default_model"]
    if "notify_on_reply" in ui:
        out["notifications_enabled"] = ui["notify_on_reply"]
    return out


def is_upstream_settings_body(body: dict, ours) -> bool:
    """True when a settings body has a key that is not one of ``ours`` (our field names)."""
    return any(k not in ours for k in body)


def init_app(app: Flask) -> None:
    """Register the upstream's extra routes (``GET /api/chat/cancel``, ``/api/workspaces/*``)."""
    app.register_blueprint(bp)
