"""Projects: folders of chats in the sidebar, each with its own default workspace and
custom instructions (Flask-free; the routes are :mod:`api.project_routes`).

A profile's projects live in ``<profile dir>/projects.json``::

    {"projects": [{"project_id", "name", "color", "workspace", "instructions",
                   "collapsed", "created_at"}]}

written atomically. A session belongs to at most one project (its metadata's
``project_id``) and has any number of tags (``tags``: a list of strings); both are
sidebar fields (:data:`api.models.SIDEBAR_FIELDS`). Ids and the ``color`` follow the
upstream's (12 hex digits, ``#rgb``…``#rrggbbaa``), so its projects migrate as they are.
"""
from __future__ import annotations

import json
import re
import secrets
import threading
import time
from pathlib import Path

from .atomic import atomic_write_text
from .codec import clean_text
from .models import META_STRING_MAX_BYTES

FILE_NAME = "projects.json"
NAME_MAX = 128
INSTRUCTIONS_MAX = 20_000
MAX_PROJECTS = 500
PROJECT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
COLOR_RE = re.compile(r"#[0-9a-fA-F]{3,8}")
TAG_RE = re.compile(r"[^\s#,][^\s,]{0,63}")
TAGS_MAX = 32
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


class ProjectError(ValueError):
    """Bad input for a project (the route answers 400, or ``status``)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _lock(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(path), threading.Lock())


def clean_name(name) -> str:
    if not isinstance(name, str):
        raise ProjectError("'name' must be a string")
    name = " ".join(clean_text(name).split())[:NAME_MAX]
    if not name:
        raise ProjectError("a project needs a name")
    return name


def clean_tags(tags) -> list[str]:
    """Tags as stored: strings without spaces, commas or a leading ``#``, each once
    (case-insensitively), at most :data:`TAGS_MAX`; ProjectError otherwise."""
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ProjectError("'tags' must be a list of strings")
    out: list[str] = []
    for t in tags:
        t = clean_text(t).strip().lstrip("#")
        if not TAG_RE.fullmatch(t):
            raise ProjectError(f"invalid tag {t[:80]!r}: 1-64 characters, no spaces or commas")
        if t.lower() not in (x.lower() for x in out):
            out.append(t)
    if len(out) > TAGS_MAX:
        raise ProjectError(f"at most {TAGS_MAX} tags")
    return out


class ProjectStore:
    """The projects of one profile directory."""

    def __init__(self, profile_dir: Path):
        self.path = Path(profile_dir) / FILE_NAME

    def list(self) -> list[dict]:
        """Every project, in creation order. A damaged file reads as no projects (its
        sessions keep their ``project_id`` and show again once it is repaired)."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        projects = doc.get("projects") if isinstance(doc, dict) else None
        return [p for p in projects if isinstance(p, dict) and isinstance(p.get("project_id"), str)] \
            if isinstance(projects, list) else []

    def get(self, project_id: str) -> dict | None:
        return next((p for p in self.list() if p["project_id"] == project_id), None)

    def _save(self, projects: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"projects": projects}, ensure_ascii=False, indent=1))

    def create(self, name, *, workspace=None, instructions=None, color=None, project_id=None,
               created_at=None) -> dict:
        """Add a project; returns it. ProjectError for bad input or too many projects."""
        project = {"project_id": project_id or secrets.token_hex(6), "name": clean_name(name), "color": None,
                   "workspace": None, "instructions": None, "collapsed": False,
                   "created_at": created_at if isinstance(created_at, float) else time.time()}
        _apply(project, {"color": color, "workspace": workspace, "instructions": instructions})
        with _lock(self.path):
            projects = self.list()
            if len(projects) >= MAX_PROJECTS:
                raise ProjectError(f"at most {MAX_PROJECTS} projects", 409)
            if any(p["project_id"] == project["project_id"] for p in projects):
                raise ProjectError(f"project {project['project_id']!r} exists", 409)
            self._save(projects + [project])
        return project

    def adopt(self, project_id: str, name: str, *, color=None, created_at=None, workspace=None,
              instructions=None) -> bool:
        """Add a migrated or restored project under its own id unless one with that id
        exists here. Returns True if it was added; a bad field is dropped, not refused."""
        if self.get(project_id) is not None or not PROJECT_ID_RE.fullmatch(project_id):
            return False
        fields = {"color": color, "workspace": workspace, "instructions": instructions}
        for key, value in list(fields.items()):
            try:
                _apply({}, {key: value})
            except ProjectError:
                fields[key] = None
        try:
            self.create(name, project_id=project_id, created_at=created_at, **fields)
        except ProjectError:
            return False
        return True

    def update(self, project_id: str, changes: dict) -> dict:
        """Change ``name``, ``color``, ``workspace``, ``instructions`` or ``collapsed``;
        returns the project. ProjectError 404 unknown, 400 bad field."""
        with _lock(self.path):
            projects = self.list()
            project = next((p for p in projects if p["project_id"] == project_id), None)
            if project is None:
                raise ProjectError(f"no project {project_id!r}", 404)
            updated = dict(project)
            if "name" in changes:
                updated["name"] = clean_name(changes["name"])
            _apply(updated, {k: v for k, v in changes.items() if k != "name"})
            self._save([updated if p is project else p for p in projects])
        return updated

    def delete(self, project_id: str) -> None:
        """Remove a project (its chats stay, outside any project). ProjectError 404."""
        with _lock(self.path):
            projects = self.list()
            if not any(p["project_id"] == project_id for p in projects):
                raise ProjectError(f"no project {project_id!r}", 404)
            self._save([p for p in projects if p["project_id"] != project_id])


def _apply(project: dict, changes: dict) -> None:
    for key, value in changes.items():
        if key == "color":
            if value is not None and not (isinstance(value, str) and COLOR_RE.fullmatch(value)):
                raise ProjectError("'color' must be like #a0b1c2")
        elif key == "workspace":
            if value is not None and (not isinstance(value, str)
                                      or len(value.encode("utf-8", "replace")) > META_STRING_MAX_BYTES):
                raise ProjectError(f"'workspace' must be a string of at most {META_STRING_MAX_BYTES} bytes")
            value = value or None
        elif key == "instructions":
            if value is not None and (not isinstance(value, str) or len(value) > INSTRUCTIONS_MAX):
                raise ProjectError(f"'instructions' must be a string of at most {INSTRUCTIONS_MAX} characters")
            value = clean_text(value) if value else None
        elif key == "collapsed":
            if not isinstance(value, bool):
                raise ProjectError("'collapsed' must be true or false")
        else:
            raise ProjectError(f"unknown field {key!r}")
        project[key] = value
