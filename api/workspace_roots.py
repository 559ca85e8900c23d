"""Workspace roots a profile gained from the upstream's workspaces list (Flask-free).

The roots a session may work in are the profile's own ``workspace`` folder, the folders
of ``--workspace-roots`` (:func:`api.workspace.workspace_roots`) and the folders listed
in ``<profile dir>/workspaces.json``: ``[{"path": "/abs/folder", "name": "Label"}]``, the
upstream's own file shape. ``hermes-webui migrate`` writes that file (from the
upstream's ``workspaces.json``, :mod:`api.migrate_settings`), and so do the upstream's
``/api/workspaces/add``, ``remove`` and ``rename`` routes (:mod:`api.compat`) through
:func:`add_extra_roots`, :func:`remove_root` and :func:`rename_root`, one change at a time.

A folder is refused, when written and again when read (a hand edit gains nothing), if
it is not an absolute path to an existing folder, is the whole file system, the home
folder or one above it, holds the agent's home (``$HERMES_HOME``, else ``~/.hermes``: its
``.env`` keys), or holds this server's state dir (its sessions, settings and signing key)
or lies inside it (:func:`refusal`).
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from .atomic import atomic_write_text

ROOTS_FILE = "workspaces.json"
MAX_ROOTS = 100
NAME_MAX_CHARS = 64
CHANGE_LOCK = threading.Lock()  # one read-modify-write of a roots file at a time (HTTP routes)


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def refusal(path, state_dir) -> str | None:
    """Why ``path`` may not be a workspace root of the server whose state dir is
    ``state_dir``; None if it may."""
    if not isinstance(path, str) or not path or "\x00" in path or not os.path.isabs(path):
        return "not an absolute path"
    real = Path(os.path.realpath(path))
    if not real.is_dir():
        return "not a folder on this machine"
    if real == Path(real.anchor):
        return "the whole file system"
    home = Path(os.path.realpath(os.path.expanduser("~")))
    if _inside(home, real):
        return "the home folder (or a folder above it): too wide to open to the file browser"
    agent_home = Path(os.path.realpath(os.path.expanduser(os.environ.get("HERMES_HOME") or "~/.hermes")))
    if _inside(agent_home, real):
        return "holds the agent's home (its .env keys, the upstream's state)"
    state = Path(os.path.realpath(state_dir))
    if _inside(state, real) or _inside(real, state):
        return "holds this server's state dir (sessions, settings, keys)"
    return None


def _read(profile_dir: Path) -> list:
    try:
        raw = json.loads((Path(profile_dir) / ROOTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return raw if isinstance(raw, list) else []


def read_extra_roots(profile_dir, state_dir) -> list[tuple[str, Path]]:
    """``[(name, resolved path)]`` of the profile's listed roots that pass :func:`refusal`,
    in the file's order; a missing or damaged file lists none."""
    out = []
    for entry in _read(profile_dir)[:MAX_ROOTS]:
        if not isinstance(entry, dict) or refusal(entry.get("path"), state_dir):
            continue
        name = entry.get("name") if isinstance(entry.get("name"), str) and entry["name"].strip() else None
        path = Path(os.path.realpath(entry["path"]))
        out.append(((name or path.name or "folder").strip()[:NAME_MAX_CHARS], path))
    return out


def add_extra_roots(profile_dir, state_dir, entries: list, *, dry_run: bool = False) -> tuple[list, list]:
    """Add the upstream's ``[{path, name}]`` entries to the profile's list.

    Returns ``(added paths, [{path, reason}] not added)``; a folder listed already is
    neither. Written atomically, once, and only when something is added.
    """
    current = _read(profile_dir)
    listed = {os.path.realpath(e["path"]) for e in current if isinstance(e, dict) and isinstance(e.get("path"), str)}
    added, skipped = [], []
    for entry in entries:
        path = entry.get("path") if isinstance(entry, dict) else None
        reason = refusal(path, state_dir)
        if reason:
            skipped.append({"path": str(path)[:400], "reason": reason})
            continue
        if os.path.realpath(path) in listed:
            continue
        if len(current) >= MAX_ROOTS:
            skipped.append({"path": path, "reason": f"more than {MAX_ROOTS} folders"})
            continue
        name = entry.get("name") if isinstance(entry.get("name"), str) else ""
        current.append({"path": path, "name": " ".join(name.split())[:NAME_MAX_CHARS] or Path(path).name})
        listed.add(os.path.realpath(path))
        added.append(path)
    if added and not dry_run:
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(profile_dir) / ROOTS_FILE, json.dumps(current, ensure_ascii=False, indent=1) + "\n")
    return added, skipped


def _listed_index(current: list, path) -> int | None:
    """Where ``path`` (as listed, or the same folder) is in ``current``; None if absent."""
    if not isinstance(path, str) or not path or "\x00" in path:
        return None
    real = os.path.realpath(path) if os.path.isabs(path) else None
    for i, e in enumerate(current):
        if isinstance(e, dict) and isinstance(e.get("path"), str) and (
                e["path"] == path or (real is not None and os.path.realpath(e["path"]) == real)):
            return i
    return None


def _write(profile_dir, current: list) -> None:
    Path(profile_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(profile_dir) / ROOTS_FILE, json.dumps(current, ensure_ascii=False, indent=1) + "\n")


def remove_root(profile_dir, path) -> bool:
    """Take the folder ``path`` (as listed, or the same folder) off the profile's list;
    False if it is not listed (nothing written). The folder itself is left alone."""
    with CHANGE_LOCK:
        current = _read(profile_dir)
        at = _listed_index(current, path)
        if at is None:
            return False
        del current[at]
        _write(profile_dir, current)
        return True


def rename_root(profile_dir, path, name: str) -> bool:
    """Give the listed folder ``path`` the label ``name`` (whitespace collapsed, at most
    :data:`NAME_MAX_CHARS` characters; the caller refuses an empty one); False if it is
    not listed (nothing written)."""
    with CHANGE_LOCK:
        current = _read(profile_dir)
        at = _listed_index(current, path)
        if at is None:
            return False
        current[at] = dict(current[at], name=" ".join(name.split())[:NAME_MAX_CHARS])
        _write(profile_dir, current)
        return True
