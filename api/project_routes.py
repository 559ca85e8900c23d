"""Projects and tags over HTTP (the store is :mod:`api.projects`).

Paths and shapes follow the upstream's where it has them (``/api/projects``,
``/api/projects/create|rename|delete``, ``/api/session/move``), so its clients work:

- ``GET /api/projects`` → ``{projects: [{project_id, name, color, workspace, instructions,
  collapsed, created_at}]}``
- ``POST /api/projects/create {name, color?, workspace?, instructions?}`` → ``{ok, project}``
- ``POST /api/projects/rename {project_id, name, color?}`` → ``{ok, project}``
- ``POST /api/projects/update {project_id, name?, color?, workspace?, instructions?,
  collapsed?}`` → ``{ok, project}``
- ``POST /api/projects/delete {project_id}`` → ``{ok, unassigned: n}``: its chats stay,
  outside any project
- ``POST /api/session/move {session_id, project_id | null}`` → ``{ok, session}``: a chat
  joins a project (taking the project's workspace if it has none) or leaves it
- ``POST /api/session/tags {session_id, tags: [str]}`` → ``{ok, session}``

Unknown fields, bad values → 400; an unknown project or session → 404; nothing changes
on disk then.
"""
from __future__ import annotations

from flask import Blueprint, Flask, jsonify

from . import session_events
from .httputil import ApiError, field, json_body
from .models import sidebar_row, validate_session_id
from .profiles import current_store, profile_dir
from .projects import ProjectError, ProjectStore, clean_tags
from .streams import session_lock

bp = Blueprint("projects", __name__)
_FIELDS = {"name", "color", "workspace", "instructions", "collapsed"}


def _projects() -> ProjectStore:
    return ProjectStore(profile_dir())


def _announce() -> None:
    """Tell the profile's open tabs that its projects changed (``sessions_changed`` with
    ``reason: projects_changed``, ``session_id: null``): they refetch the list and its folders."""
    session_events.publish(str(current_store().dir), None, "projects_changed")


def _body(allowed: set[str]) -> dict:
    body = json_body()
    unknown = set(body) - allowed
    if unknown:
        raise ApiError(f"unknown field {sorted(unknown)[0]!r}")
    return body


def _call(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except ProjectError as exc:
        raise ApiError(str(exc), exc.status) from None


@bp.get("/api/projects")
def list_projects():
    return jsonify(projects=_projects().list())


@bp.post("/api/projects/create")
def create_project():
    body = _body({"name", "color", "workspace", "instructions"})
    project = _call(_projects().create, field(body, "name", str), color=body.get("color"),
                    workspace=body.get("workspace"), instructions=body.get("instructions"))
    _announce()
    return jsonify(ok=True, project=project)


@bp.post("/api/projects/rename")
def rename_project():
    body = _body({"project_id", "name", "color"})
    changes = {k: body[k] for k in ("name", "color") if k in body}
    field(body, "name", str)
    project = _call(_projects().update, field(body, "project_id", str), changes)
    _announce()
    return jsonify(ok=True, project=project)


@bp.post("/api/projects/update")
def update_project():
    body = _body({"project_id"} | _FIELDS)
    changes = {k: body[k] for k in _FIELDS if k in body}
    project = _call(_projects().update, field(body, "project_id", str), changes)
    _announce()
    return jsonify(ok=True, project=project)


@bp.post("/api/projects/delete")
def delete_project():
    body = _body({"project_id"})
    pid = field(body, "project_id", str)
    _call(_projects().delete, pid)
    store = current_store()
    moved = 0
    for row in store.index.all():
        if row.get("project_id") == pid:
            with session_lock(row["session_id"]):
                store.patch_metadata(row["session_id"], {"project_id": None}, touch=False)
            moved += 1
    _announce()
    return jsonify(ok=True, unassigned=moved)


@bp.post("/api/session/move")
def move_session():
    body = _body({"session_id", "project_id"})
    sid = validate_session_id(field(body, "session_id", str))
    pid = body.get("project_id") or None
    if pid is not None and not isinstance(pid, str):
        raise ApiError("'project_id' must be a string or null")
    project = _projects().get(pid) if pid else None
    if pid and project is None:
        raise ApiError(f"no project {pid!r}", 404)
    store = current_store()
    with session_lock(sid):
        meta = store.load_metadata_only(sid).meta
        changes = {"project_id": pid}
        if project and project.get("workspace") and not meta.get("workspace"):
            changes["workspace"] = project["workspace"]
        meta = store.patch_metadata(sid, changes, touch=False)
    return jsonify(ok=True, session=sidebar_row(meta))


@bp.post("/api/session/tags")
def set_tags():
    body = _body({"session_id", "tags"})
    sid = validate_session_id(field(body, "session_id", str))
    tags = _call(clean_tags, body.get("tags"))
    store = current_store()
    with session_lock(sid):
        store.load_metadata_only(sid)
        meta = store.patch_metadata(sid, {"tags": tags}, touch=False)
    return jsonify(ok=True, session=sidebar_row(meta))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
