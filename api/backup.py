"""Backups: every session of every profile, with its attachments and the projects, in one
ZIP archive (``hermes-webui export --all FILE.zip``, ``GET /api/export/all``).

Layout of the archive::

    hermes_webui_backup.json              {"hermes_webui_backup": 1, "exported_at",
                                           "profiles": {name: {"projects": [...], "sessions": n}}}
    profiles/<name>/sessions/<sid>.json   one session as in our JSON export: {…metadata,
                                           "messages": [...], "attachments": [{id, name, size,
                                           mime, data_base64}]}

Read back by ``POST /api/session/import`` (:func:`read_backup`: every session of the
archive becomes a new session of the current profile, projects included) and by
``hermes-webui migrate FILE.zip`` (:func:`restore_backup`: ids and profiles kept). Only
reads the state dir, so it runs beside a running server; a session written during the
export is taken as it was when read (each file is read once, whole). Flask-free.
"""
from __future__ import annotations

import base64
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Callable

from .attachment_store import AttachmentStore
from .codec import clean_json
from .models import PRIVATE_KEYS, session_id_of_file
from .projects import ProjectStore

MANIFEST = "hermes_webui_backup.json"
BACKUP_VERSION = 1
DEFAULT = "default"


def profile_dirs(state_dir: Path) -> dict[str, Path]:
    """``{profile name: its state dir}``: default first."""
    state_dir = Path(state_dir)
    out = {DEFAULT: state_dir}
    base = state_dir / "profiles"
    if base.is_dir():
        for entry in sorted(os.scandir(base), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".") and entry.name != DEFAULT:
                out[entry.name] = Path(entry.path)
    return out


def session_document(profile_dir: Path, sid: str, raw: bytes) -> dict:
    """One session file as our export's session object (metadata without the private
    and stream keys, messages, embedded attachments). Raises ValueError if unreadable."""
    obj = json.loads(raw.decode("utf-8"))
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise ValueError("not a session object")
    doc = {k: v for k, v in obj.items() if k not in PRIVATE_KEYS and k != "active_stream_id"}
    doc["session_id"] = sid
    files = AttachmentStore(profile_dir / "attachments").list_session(sid)
    if files:
        doc["attachments"] = [dict(f.record(), data_base64=base64.b64encode(f.path.read_bytes()).decode("ascii"))
                              for f in files]
    return clean_json(doc)


def export_all(state_dir: Path, target: Path, *, progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Write the archive to ``target`` (atomically: a temp file renamed at the end).

    Returns ``{"sessions": n, "attachments": n, "bytes": size, "unreadable": [path]}``.
    """
    dirs = profile_dirs(state_dir)
    todo = [(name, d, e.name[:-5]) for name, d in dirs.items() if (d / "sessions").is_dir()
            for e in sorted(os.scandir(d / "sessions"), key=lambda e: e.name) if session_id_of_file(e.name)]
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp.{os.getpid()}")
    manifest = {"hermes_webui_backup": BACKUP_VERSION, "exported_at": time.time(), "profiles": {}}
    summary = {"sessions": 0, "attachments": 0, "bytes": 0, "unreadable": []}
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as zf:
            counts = {name: 0 for name in dirs}
            for n, (name, directory, sid) in enumerate(todo, 1):
                path = directory / "sessions" / f"{sid}.json"
                try:
                    doc = session_document(directory, sid, path.read_bytes())
                except (OSError, ValueError) as exc:
                    summary["unreadable"].append(f"{name}/{sid}.json ({exc})"[:200])
                    continue
                zf.writestr(f"profiles/{name}/sessions/{sid}.json", json.dumps(doc, ensure_ascii=False))
                counts[name] += 1
                summary["sessions"] += 1
                summary["attachments"] += len(doc.get("attachments") or [])
                if progress is not None:
                    progress(n, len(todo), sid)
            for name, directory in dirs.items():
                manifest["profiles"][name] = {"projects": ProjectStore(directory).list(), "sessions": counts[name]}
            zf.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    summary["bytes"] = target.stat().st_size
    return summary


def is_backup(archive: zipfile.ZipFile) -> bool:
    return MANIFEST in archive.namelist()


def _manifest(archive: zipfile.ZipFile) -> dict:
    doc = json.loads(archive.read(MANIFEST).decode("utf-8"))
    if not isinstance(doc, dict) or doc.get("hermes_webui_backup") != BACKUP_VERSION:
        raise ValueError(f"unsupported backup version {doc.get('hermes_webui_backup') if isinstance(doc, dict) else doc!r}")
    return doc


def _members(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """``[(profile, member name)]`` of the archive's session files."""
    out = []
    for name in archive.namelist():
        parts = name.split("/")
        if len(parts) == 4 and parts[0] == "profiles" and parts[2] == "sessions" and session_id_of_file(parts[3]):
            out.append((parts[1], name))
    return out


def read_backup(archive: zipfile.ZipFile, max_bytes: int) -> dict:
    """The archive as one document of our export (``{"hermes_webui_export": 1,
    "sessions": [...], "projects": [...]}``) for ``POST /api/session/import``: every
    profile's sessions; more than ``max_bytes`` uncompressed → ValueError."""
    from .chatgpt_import import EXPORT_VERSION
    manifest = _manifest(archive)
    sessions, total = [], 0
    for _profile, name in _members(archive):
        total += archive.getinfo(name).file_size
        if total > max_bytes:
            raise ValueError(f"the backup's sessions are larger than {max_bytes / 1048576:g} MiB (--max-import-bytes)")
        sessions.append(json.loads(archive.read(name).decode("utf-8")))
    projects = [p for prof in manifest.get("profiles", {}).values() if isinstance(prof, dict)
                for p in prof.get("projects") or [] if isinstance(p, dict)]
    return {"hermes_webui_export": EXPORT_VERSION, "sessions": sessions, "projects": projects}


def restore_backup(zip_path: Path, store_for: Callable[[str], "object"], report, *, dry_run: bool,
                   profile_dir: Callable[[str], Path], progress=None) -> None:
    """``hermes-webui migrate FILE.zip``: every session of the archive into the profile it
    came from, keeping its id, with its attachments and the projects; a session whose id
    exists here already is skipped and named (a second run changes nothing). Fills
    ``report`` (:class:`api.migrate.Report`)."""
    from .chatgpt_import import ImportFormatError, own_session
    with zipfile.ZipFile(zip_path) as archive:
        manifest = _manifest(archive)
        members = _members(archive)
        report.total = len(members)
        for name, prof in (manifest.get("profiles") or {}).items():
            if isinstance(prof, dict) and not dry_run:
                for p in prof.get("projects") or []:
                    if isinstance(p, dict) and isinstance(p.get("project_id"), str) and isinstance(p.get("name"), str):
                        ProjectStore(profile_dir(name)).adopt(p["project_id"], p["name"], color=p.get("color"),
                                                              workspace=p.get("workspace"),
                                                              instructions=p.get("instructions"),
                                                              created_at=p.get("created_at"))
            report.projects += len(prof.get("projects") or []) if isinstance(prof, dict) else 0
        for n, (profile, member) in enumerate(members, 1):
            sid = member.rsplit("/", 1)[1][:-5]
            try:
                item = own_session(json.loads(archive.read(member).decode("utf-8")), member)
            except (ValueError, UnicodeDecodeError, ImportFormatError) as exc:
                report.unreadable.append({"file": member, "reason": str(exc)[:200]})
                continue
            if (profile_dir(profile) / "sessions" / f"{sid}.json").exists():
                report.unchanged.append(sid)
            else:
                report.imported.append(sid)
                if not dry_run:
                    store = store_for(profile)
                    store.create_with_id(sid, item["meta"], item["messages"])
                    for att in item.get("attachments") or []:
                        store.attachments.add_bytes(sid, att["data"], att["name"], att["mime"], att["id"])
            if progress is not None:
                progress(n, len(members), sid)
