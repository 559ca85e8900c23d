"""Come over from the upstream web UI: ``hermes-webui migrate [SRC] [--state-dir DST] [--dry-run]``.

Reads the upstream's state dir (nesquena/hermes-webui: ``sessions/<sid>.json`` written
with ``json.dumps(..., indent=2)``, ``projects.json``; its ``settings.json`` and
``workspaces.json`` in part, :mod:`api.migrate_settings`) and writes every session into our
layout, keeping its id, title, times, pin and archive flags, project, ``#tags``, and its
messages with tool calls and reasoning. It never writes to the source. Flask-free: the
command line (:mod:`api.commands`) and the page's route (:mod:`api.migrate_routes`)
both call :func:`migrate`.

Per source session:

* a ``.bak`` holding more messages than the live file restores the session (the
  self-heal rule, :func:`api.session_recovery._shrink_was_intentional`: not when the
  upstream marked that shrink deliberate); an unreadable file is named and skipped;
* a pending prompt left in the metadata (``pending_user_message``) becomes a user
  message and a partial reply (``_partial``) an assistant message, both ``interrupted``,
  as after a crash (:meth:`api.models.SessionStore.settle_turn`);
* the upstream's OpenAI-style tool calls (an assistant message's ``tool_calls`` of
  ``{id, function: {name, arguments}}`` answered by ``role: tool`` messages) become our
  tool cards ``{id, name, args, result}`` on the assistant message.

The upstream's compressed conversations (a chain of files, DESIGN §7): when it compresses a
conversation it keeps the old transcript as a parent file marked ``pre_compression_snapshot``
and carries on (with the pin) in a child file whose ``parent_session_id`` names it; its
sidebar hides the snapshots and ``GET /api/session`` of the child shows the chain stitched
(its ``_webui_sidecar_lineage_messages_for_display``). A chain (A ← B ← C …) comes over as
ONE chat with the tip's id and metadata and that stitched transcript
(:func:`stitch_messages`); the snapshot parts are not imported on their own and the
summary says "joined N compressed parts". A snapshot whose child is missing or unreadable
is imported as a chat of its own (with its own snapshot parents stitched in).

Idempotent: ``migration.json`` in our state dir records, per migrated session, the
source file's stat and our file's ``generation`` right after the write. A second run
imports what is new, updates a session whose source changed if ours has not changed
since (same generation) and the source has not lost messages, and otherwise skips it and
says why.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .atomic import atomic_write_text
from .codec import clean_json, clean_text, read_header
from .import_formats import settle_role
from .models import (DEFAULT_TITLE, META_STRING_MAX_BYTES, SessionStore, _coerce, clean_title,
                     session_id_of_file)
from .session_recovery import _shrink_was_intentional

log = logging.getLogger(__name__)
RECORD_NAME = "migration.json"
RECORD_VERSION = 1
DEFAULT_PROFILE = "default"
# The upstream's tags are words in the title: ``#word`` that is not ``#123`` (its sidebar's rule).
TAG_RE = re.compile(r"#(?!\d+\b)[\w-]+")
PROFILE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
PROJECT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
TAGS_MAX = 32
TAG_MAX_CHARS = 64


class MigrationError(ValueError):
    """The migration cannot start (no source, source equals destination, …)."""


def default_source() -> Path:
    """The upstream's default state dir: ``$HERMES_HOME/webui``, else ``~/.hermes/webui``."""
    home = os.environ.get("HERMES_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".hermes") / "webui"


def looks_like_upstream(src: Path) -> bool:
    """True when ``src`` holds at least one upstream session file."""
    sessions = Path(src) / "sessions"
    try:
        return any(session_id_of_file(e.name) and not e.name.startswith("_") for e in os.scandir(sessions))
    except OSError:
        return False


def source_files(src: Path) -> list[Path]:
    """The upstream's session files in ``src/sessions``, sorted: regular files named
    ``<session id>.json``, not its ``_index.json`` (no ``.bak``, folder, link to nowhere or
    other name). Raises OSError when the folder cannot be listed."""
    return sorted(p for p in (Path(src) / "sessions").iterdir()
                  if session_id_of_file(p.name) and not p.name.startswith("_") and p.is_file())


@dataclass
class Report:
    """What a run did (or, dry, would do): lists of session ids, and names with reasons."""

    source: str
    dry_run: bool
    total: int = 0
    imported: list = field(default_factory=list)
    updated: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    skipped: list = field(default_factory=list)        # [{session_id, reason}]
    unreadable: list = field(default_factory=list)     # [{file, reason}]
    restored_from_backup: list = field(default_factory=list)  # [{session_id, from, to}]
    settled: list = field(default_factory=list)        # ids whose pending turn became interrupted messages
    joined: list = field(default_factory=list)         # [{session_id, parts: [snapshot ids, newest first]}]
    projects: int = 0
    settings: dict = field(default_factory=dict)            # the upstream's settings carried {name: value}
    settings_left: list = field(default_factory=list)       # [{name, reason}] not carried
    workspaces: list = field(default_factory=list)          # folders added as workspace roots
    workspaces_skipped: list = field(default_factory=list)  # [{path, reason}]
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def summary(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        lines = [f"{verb} {len(self.imported)}, updated {len(self.updated)}, unchanged {len(self.unchanged)}, "
                 f"skipped {len(self.skipped)}, unreadable {len(self.unreadable)} "
                 f"(of {self.total} sessions in {self.source}, {self.seconds:.1f} s)"]
        if self.restored_from_backup:
            lines.append("restored from .bak: " + ", ".join(
                f"{r['session_id']} ({r['from']} → {r['to']} messages)" for r in self.restored_from_backup))
        if self.settled:
            lines.append("interrupted turns kept as messages: " + ", ".join(self.settled))
        if self.joined:
            parts = sum(len(j["parts"]) for j in self.joined)
            lines.append(f"joined {parts} compressed part{'s' if parts != 1 else ''} (the upstream's "
                         "pre-compression snapshots) into their chats: " + ", ".join(
                             f"{j['session_id']} ← {' ← '.join(j['parts'])}" for j in self.joined))
        lines += [f"skipped {s['session_id']}: {s['reason']}" for s in self.skipped]
        lines += [f"unreadable {u['file']}: {u['reason']}" for u in self.unreadable]
        if self.projects:
            lines.append(f"projects: {self.projects}")
        if self.settings:
            lines.append("settings: " + ", ".join(f"{k} = {v}" for k, v in self.settings.items()))
        lines += [f"setting {s['name']} not carried: {s['reason']}" for s in self.settings_left]
        if self.workspaces:
            lines.append("workspaces: " + ", ".join(self.workspaces))
        lines += [f"workspace {w['path']} not added: {w['reason']}" for w in self.workspaces_skipped]
        return "\n".join(lines)


# ---------------------------------------------------------------- reading the source


class _Unreadable(Exception):
    pass


def _parse(raw: bytes, name: str) -> dict:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Unreadable(f"not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise _Unreadable("not a session object with a \"messages\" list")
    if not all(isinstance(m, dict) for m in obj["messages"]):
        raise _Unreadable("a message is not an object")
    sid = obj.get("session_id", name)
    if sid != name:
        raise _Unreadable(f"the file names session {str(sid)[:80]!r}")
    return obj


def _signature(path: Path) -> list:
    """What says "this source file changed": size and mtime of the file and its backup."""
    out = []
    for p in (path, path.with_name(path.name + ".bak")):
        try:
            st = os.stat(p)
            out += [st.st_size, st.st_mtime_ns]
        except FileNotFoundError:
            out += [None, None]
    return out


def read_source_session(path: Path) -> tuple[dict, dict | None]:
    """The session object of upstream file ``path`` and, when its ``.bak`` restores it,
    ``{from, to}`` message counts. Raises :class:`_Unreadable`; reads only."""
    sid = path.name[:-5]
    try:
        live = _parse(path.read_bytes(), sid)
    except OSError as exc:
        raise _Unreadable(exc.strerror or str(exc)) from None
    bak_path = path.with_name(path.name + ".bak")
    try:
        bak = _parse(bak_path.read_bytes(), sid)
    except (OSError, _Unreadable):
        return live, None  # no backup, or one that cannot be read: the live file stands
    if len(bak["messages"]) > len(live["messages"]) and not _shrink_was_intentional(live, bak):
        return bak, {"session_id": sid, "from": len(live["messages"]), "to": len(bak["messages"])}
    return live, None


# ---------------------------------------------------------------- compression chains

MAX_CHAIN_HOPS = 20  # the upstream's own bound on a lineage walk
_SNAPSHOT_RE = re.compile(rb'"pre_compression_snapshot"\s*:\s*true')
_PARENT_RE = re.compile(rb'"parent_session_id"\s*:\s*"')


def lineage_of(path: Path) -> tuple[str | None, bool, str] | None:
    """``(parent_session_id, pre_compression_snapshot, session_source)`` of upstream file
    ``path``; ``(None, False, "")`` for most files, found without parsing them (a JSON
    string escapes its quotes, so these keys with a snapshot flag or a parent id appear
    in the raw bytes only as keys); None when the file cannot be read or parsed."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if not (_SNAPSHOT_RE.search(raw) or _PARENT_RE.search(raw)):
        return None, False, ""
    try:
        obj, _ = read_source_session(path)
    except _Unreadable:
        return None
    parent = obj.get("parent_session_id")
    parent = parent if isinstance(parent, str) and session_id_of_file(parent + ".json") else None
    source = obj.get("session_source")
    source = source.strip().lower() if isinstance(source, str) else ""
    return parent, obj.get("pre_compression_snapshot") is True, source


def find_chains(lineage: dict[str, tuple]) -> tuple[dict[str, list[str]], set[str]]:
    """The upstream's compression chains among its session files.

    ``lineage``: ``{sid: (parent, snapshot, session_source)}`` of the readable files.
    Returns ``({tip: [parts, newest first]}, absorbed)``: a tip's parts are the snapshot
    parents its transcript is stitched from, walked as the upstream walks them (each
    parent marked ``pre_compression_snapshot``, at most :data:`MAX_CHAIN_HOPS`, no cycle; a
    ``fork`` child stops at a parent that is not a fork); ``absorbed`` are the snapshots
    that are parts of a chat and are not imported alone. Every file that is not absorbed
    is a tip (most with no parts), so nothing is lost when a child is missing.
    """
    def walk(tip: str) -> list[str]:
        parts, seen, cur = [], {tip}, tip
        fork = lineage[tip][2] == "fork"
        for _ in range(MAX_CHAIN_HOPS):
            parent = lineage[cur][0]
            if not parent or parent in seen or parent not in lineage:
                break
            _, p_snapshot, p_source = lineage[parent]
            if not p_snapshot or (fork and p_source != "fork"):
                break
            parts.append(parent)
            seen.add(parent)
            cur = parent
        return parts

    chains: dict[str, list[str]] = {}
    absorbed: set[str] = set()
    for sid, (_, snapshot, _) in lineage.items():
        if not snapshot:  # a live conversation: always shown
            chains[sid] = walk(sid)
            absorbed.update(chains[sid])
    # Snapshots no live child reaches (its child is missing or unreadable): the newest
    # of each such chain is shown, with its own snapshot parents stitched in.
    orphans = {sid: walk(sid) for sid, (_, snapshot, _) in lineage.items() if snapshot and sid not in absorbed}
    inner = {p for parts in orphans.values() for p in parts}
    for sid, parts in orphans.items():
        if sid not in inner:
            chains[sid] = parts
            absorbed.update(parts)
    for sid in orphans:  # a cycle of snapshots only: each kept on its own
        if sid not in chains and sid not in absorbed:
            chains[sid] = []
    return chains, absorbed


def _message_key(m: dict):
    """A message's identity when chain parts overlap (the upstream's
    ``_session_message_merge_key``): its id, else role, content, time, tool fields."""
    ident = m.get("id") or m.get("message_id")
    if ident:
        return ("id", str(ident))
    content = m.get("content")
    calls = m.get("tool_calls")
    return ("m", str(m.get("role") or ""),
            content if isinstance(content, str) else json.dumps(content, sort_keys=True, default=str),
            str(m.get("timestamp", m.get("_ts"))), str(m.get("tool_call_id") or ""),
            str(m.get("tool_name") or m.get("name") or ""),
            json.dumps(calls, sort_keys=True, default=str) if calls else "")


def stitch_messages(segments: list[list[dict]]) -> list[dict]:
    """The transcript the upstream's page shows for a compression chain: ``segments`` are
    the parts' raw messages, oldest first, the tip's last. Each part in turn, leaving out
    a message an earlier part already holds (:func:`_message_key`), so a child that already
    starts with its parent's transcript (the upstream's newer versions keep it whole) is
    not doubled, and a summary message the child starts with stays where the upstream shows
    it: after the older turns, before the newer ones. (Where the upstream shows a child
    holding its parent whole alone, older parts the parent lacked are kept here too.)"""
    merged = list(segments[0])
    keys = {_message_key(m) for m in merged}
    for seg in segments[1:]:
        new = [m for m in seg if _message_key(m) not in keys]
        merged += new
        keys.update(_message_key(m) for m in new)
    return merged


# ---------------------------------------------------------------- converting


def _short(value) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    value = clean_text(value)
    return value if len(value.encode("utf-8")) <= META_STRING_MAX_BYTES else None


def split_tags(title: str) -> tuple[str, list[str]]:
    """The upstream keeps tags in the title (``"Trip plan #travel #2025ideas"``):
    the title without them, and the tags without ``#``, each once, in order."""
    tags: list[str] = []
    for t in TAG_RE.findall(title):
        t = t[1:][:TAG_MAX_CHARS]
        if t.lower() not in (x.lower() for x in tags) and len(tags) < TAGS_MAX:
            tags.append(t)
    rest = " ".join(TAG_RE.sub("", title).split())
    return (rest or title), tags


def _args(raw):
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def convert_messages(raw: list[dict]) -> list[dict]:
    """The upstream's messages in our shape (see the module docstring)."""
    results = {m.get("tool_call_id"): m for m in raw if m.get("role") == "tool" and m.get("tool_call_id")}
    used: set = set()
    out = []
    for m in raw:
        if m.get("role") == "tool" and m.get("tool_call_id") in used:
            continue
        msg = settle_role({k: v for k, v in m.items() if not k.startswith("_")})  # no/unknown role: source_role
        if "timestamp" not in msg and isinstance(m.get("_ts"), (int, float)):
            msg["timestamp"] = m["_ts"]
        if "timestamp" in msg:  # seconds, or none at all: an ISO string is read, garbage dropped
            when = _coerce(float, msg["timestamp"])
            if when is not None and math.isfinite(when):
                msg["timestamp"] = when
            else:
                del msg["timestamp"]
        if "reasoning" not in msg and isinstance(msg.get("reasoning_content"), str):
            msg["reasoning"] = msg.pop("reasoning_content")
        if m.get("_partial") and msg.get("role") == "assistant":
            msg["status"] = "interrupted"
        if m.get("_error") and msg.get("role") == "assistant":
            msg["status"] = "error"
        calls = msg.get("tool_calls")
        if isinstance(calls, list) and msg.get("role") == "assistant":
            cards = []
            for call in calls:
                if not isinstance(call, dict):
                    continue
                fn = call.get("function") if isinstance(call.get("function"), dict) else {}
                card = {"id": call.get("id"), "name": call.get("name") or fn.get("name") or "tool",
                        "args": _args(call.get("args", fn.get("arguments")))}
                for k in ("result", "duration_ms", "is_error"):
                    if k in call:
                        card[k] = call[k]
                answer = results.get(call.get("id"))
                if answer is not None and "result" not in card:
                    card["result"] = answer.get("content")
                    used.add(call.get("id"))
                cards.append(card)
            msg["tool_calls"] = cards
        out.append(msg)
    return clean_json(out)


def settle_pending(obj: dict, messages: list[dict]) -> bool:
    """Add the prompt a crash left in the upstream's metadata as an ``interrupted`` user
    message, before the partial reply it was answering (the trailing ``interrupted``
    assistant messages, converted from ``_partial``). True if something was settled."""
    text = obj.get("pending_user_message")
    if not isinstance(text, str) or not text.strip():
        return False
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    if last_user is not None and last_user.get("content") == text:
        return False  # already in the transcript
    started = obj.get("pending_started_at")
    when = started if isinstance(started, (int, float)) and not isinstance(started, bool) else obj.get("updated_at")
    at = len(messages)
    while at and messages[at - 1].get("role") == "assistant" and messages[at - 1].get("status") == "interrupted":
        at -= 1
    messages.insert(at, {"role": "user", "content": clean_text(text), "status": "interrupted",
                         "timestamp": when if isinstance(when, (int, float)) else time.time()})
    return True


def convert_session(obj: dict, sid: str, file_mtime: float) -> tuple[str, dict, list[dict], bool]:
    """``(profile, meta, messages, settled)`` for our store from an upstream session."""
    messages = convert_messages(obj["messages"])
    settled = settle_pending(obj, messages)
    title_raw = obj.get("title") if isinstance(obj.get("title"), str) else ""
    title, tags = split_tags(clean_text(title_raw))
    created = _coerce(float, obj.get("created_at"))
    updated = _coerce(float, obj.get("updated_at"))
    meta = {
        "session_id": sid, "title": clean_title(title) or DEFAULT_TITLE,
        "manual_title": obj.get("manual_title") is True or obj.get("llm_title_generated") is True,
        "created_at": created if created is not None else (updated or file_mtime),
        "updated_at": updated if updated is not None else (created or file_mtime),
        "model": _short(obj.get("model")), "workspace": _short(obj.get("workspace")),
        "pinned": obj.get("pinned") is True, "archived": obj.get("archived") is True,
    }
    project = obj.get("project_id")
    if isinstance(project, str) and PROJECT_ID_RE.fullmatch(project):
        meta["project_id"] = project
    if tags:
        meta["tags"] = tags
    profile = obj.get("profile")
    profile = profile if isinstance(profile, str) and PROFILE_RE.fullmatch(profile) else DEFAULT_PROFILE
    return profile, meta, messages, settled


# ---------------------------------------------------------------- the record


def _record_path(dst: Path) -> Path:
    return Path(dst) / RECORD_NAME


def load_record(dst: Path) -> dict:
    try:
        rec = json.loads(_record_path(dst).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"version": RECORD_VERSION, "sessions": {}}
    if not isinstance(rec, dict) or not isinstance(rec.get("sessions"), dict):
        return {"version": RECORD_VERSION, "sessions": {}}
    return rec


def _save_record(dst: Path, rec: dict) -> None:
    atomic_write_text(_record_path(dst), json.dumps(rec, ensure_ascii=False, separators=(",", ":")))


# ---------------------------------------------------------------- the run


def _our_header(path: Path) -> dict | None:
    """Our session file's metadata, or None when there is none; {} when unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        return read_header(raw, len(raw))[0]
    except ValueError:
        return {}


def _profile_dir(dst: Path, profile: str) -> Path:
    return Path(dst) if profile == DEFAULT_PROFILE else Path(dst) / "profiles" / profile


def check_paths(src: Path, dst: Path) -> tuple[Path, Path]:
    """Resolved ``(src, dst)``; :class:`MigrationError` when there is nothing to migrate
    or the two are one folder (the upstream's ``HERMES_WEBUI_STATE_DIR`` has our name)."""
    src, dst = Path(src).expanduser().resolve(), Path(dst).expanduser().resolve()
    if src.is_file() and zipfile.is_zipfile(src):
        return src, dst  # a backup of ours (hermes-webui export --all)
    if not (src / "sessions").is_dir():
        raise MigrationError(f"no upstream state dir at {src} (it has no sessions/ folder); "
                             "pass the folder to migrate from, e.g. hermes-webui migrate ~/.hermes/webui")
    if src == dst:
        raise MigrationError(f"the source and the destination are the same folder ({src}); "
                             "pass --state-dir for ours (HERMES_WEBUI_STATE_DIR names both apps' folders)")
    if dst.is_relative_to(src / "sessions") or src.is_relative_to(dst):
        raise MigrationError(f"the source {src} and the destination {dst} overlap; choose separate folders")
    return src, dst


def migrate(src: Path, dst: Path, *, dry_run: bool = False,
            store_for: Callable[[str], SessionStore] | None = None,
            progress: Callable[[int, int, str], None] | None = None) -> Report:
    """Migrate the upstream state dir ``src`` into our state dir ``dst``.

    ``store_for(profile)`` gives the store to write into (the server passes its own, so
    its index stays current); without it the stores are opened here and closed at the
    end. ``progress(done, total, session_id)`` is called after each session. With
    ``dry_run`` nothing at all is written (not even ``dst``). Raises
    :class:`MigrationError` before anything is done if the paths are wrong.
    """
    t0 = time.perf_counter()
    src, dst = check_paths(src, dst)
    report = Report(source=str(src), dry_run=dry_run)
    files = [] if src.is_file() else source_files(src)
    report.total = len(files)
    record = load_record(dst)
    seen = record["sessions"]
    opened: dict[str, SessionStore] = {}

    def store(profile: str) -> SessionStore:
        if store_for is not None:
            return store_for(profile)
        if profile not in opened:
            opened[profile] = SessionStore(_profile_dir(dst, profile) / "sessions")
        return opened[profile]

    if src.is_file():
        from .backup import restore_backup
        try:
            restore_backup(src, store, report, dry_run=dry_run, profile_dir=lambda p: _profile_dir(dst, p),
                           progress=progress)
        except (ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise MigrationError(f"{src} is not a hermes-webui backup ({exc})") from None
        finally:
            for s in opened.values():
                s.close()
        report.seconds = time.perf_counter() - t0
        return report
    by_sid = {k.split("/", 1)[-1]: k for k in seen}  # the record's key ("profile/sid") of each id
    try:
        projects = _migrate_projects(src, dst, dry_run)
        report.projects = projects
        from .migrate_settings import migrate_settings  # settings.json, workspaces.json
        for key, value in migrate_settings(src, dst, dry_run=dry_run).items():
            setattr(report, key, value)
        chains, absorbed = find_chains(_scan_lineage(files, record))
        try:
            for n, path in enumerate(files, 1):
                sid = path.name[:-5]
                if sid not in absorbed:
                    parts = [path.with_name(f"{p}.json") for p in chains.get(sid, [])]
                    _migrate_one(path, dst, report, seen, by_sid, store, dry_run, parts)
                elif sid in by_sid:  # a run before it was compressed (or before chains were joined)
                    tip = next(t for t, ps in chains.items() if sid in ps)
                    report.skipped.append({"session_id": sid, "reason": f"now a compressed part of {tip}; the "
                                           "chat an earlier run made of it is left as it is"})
                if not dry_run and n % 250 == 0:
                    _save_record(dst, record)
                if progress is not None:
                    progress(n, len(files), path.name[:-5])
        except BaseException:  # Ctrl-C, a full disk: record what was written before stopping
            if not dry_run:
                try:
                    _save_record(dst, record)
                except OSError:
                    log.warning("migrate: could not save %s after stopping", _record_path(dst))
            raise
        if not dry_run:
            record["source"] = str(src)
            _save_record(dst, record)
    finally:
        for s in opened.values():
            s.close()
    report.seconds = time.perf_counter() - t0
    return report


def _scan_lineage(files: list[Path], record: dict) -> dict[str, tuple]:
    """``{sid: (parent, snapshot, session_source)}`` of the readable source files, for
    :func:`find_chains`. ``record["lineage"]`` keeps each file's answer with its stat, so
    a second run reads no unchanged file (an unreadable one is read again each run)."""
    cache = record.get("lineage") if isinstance(record.get("lineage"), dict) else {}
    fresh, out = {}, {}
    for path in files:
        sid, sig = path.name[:-5], _signature(path)
        hit = cache.get(sid)
        if isinstance(hit, list) and len(hit) == len(sig) + 3 and hit[:len(sig)] == sig:
            found = tuple(hit[len(sig):])
        else:
            found = lineage_of(path)
        if found is not None:
            out[sid] = found
            fresh[sid] = sig + list(found)
    record["lineage"] = fresh
    return out


def _read_parts(parts: list[Path], report: Report) -> list[tuple[str, dict, dict | None]] | None:
    """``[(sid, object, restored)]`` of a chain's snapshot parts, or None (the part named
    unreadable in ``report``) when one can no longer be read."""
    out = []
    for part in parts:
        try:
            obj, restored = read_source_session(part)
        except _Unreadable as exc:
            report.unreadable.append({"file": part.name, "reason": str(exc)})
            return None
        out.append((part.name[:-5], obj, restored))
    return out


def _migrate_one(path: Path, dst: Path, report: Report, seen: dict, by_sid: dict, store, dry_run: bool,
                 parts: list[Path] = ()) -> None:
    """Bring source file ``path`` over, with the compression-chain ``parts`` (snapshot
    files, newest first) its transcript is stitched from; the record's ``source`` then
    holds every file's stat, so a change to any of them is seen."""
    sid = path.name[:-5]
    sig = _signature(path)
    for part in parts:
        sig += [part.name[:-5], *_signature(part)]
    known = by_sid.get(sid)
    if parts:
        report.joined.append({"session_id": sid, "parts": [p.name[:-5] for p in parts]})
    if known is not None and seen[known].get("source") == sig:
        report.unchanged.append(sid)  # the source files are as they were: not even parsed again
        return
    try:
        obj, restored = read_source_session(path)
    except _Unreadable as exc:
        report.unreadable.append({"file": path.name, "reason": str(exc)})
        if parts:
            report.joined.pop()
        return
    part_objs = _read_parts(list(parts), report) if parts else []
    if part_objs is None:  # a part went unreadable since the scan: this chat waits for the next run
        report.joined.pop()
        return
    if part_objs:
        obj = dict(obj, messages=stitch_messages([o["messages"] for _, o, _ in reversed(part_objs)]
                                                 + [obj["messages"]]))
    profile, meta, messages, settled = convert_session(obj, sid, os.stat(path).st_mtime)
    key = f"{profile}/{sid}"
    ours_path = _profile_dir(dst, profile) / "sessions" / f"{sid}.json"
    ours = _our_header(ours_path)
    before = seen.get(key)
    if before is not None and before.get("source") == sig:
        report.unchanged.append(sid)
        return
    if ours == {}:
        report.skipped.append({"session_id": sid, "reason": "our copy is unreadable; left as it is"})
        return
    # A run stopped (kill -9, power loss) after writing a session but before recording it
    # left this very conversion here: adopt it, so it is recorded and follows the source.
    adopt = before is None and ours is not None and _left_by_a_stopped_run(ours, meta, messages)
    if before is None and ours is not None and not adopt:
        report.skipped.append({"session_id": sid, "reason": "a session with this id already exists here"})
        return
    if before is not None and ours is None:
        report.skipped.append({"session_id": sid, "reason": "deleted here since it was migrated"})
        return
    if before is not None:
        if ours.get("generation") != before.get("generation"):
            report.skipped.append({"session_id": sid, "reason": "changed here since it was migrated; "
                                   "the source's changes are not merged"})
            return
        if len(messages) < int(before.get("messages") or 0):
            report.skipped.append({"session_id": sid, "reason": "the source has fewer messages than "
                                   "when it was migrated; ours is kept"})
            return
    if restored:
        report.restored_from_backup.append(restored)
    report.restored_from_backup += [r for _, _, r in part_objs if r]
    if settled:
        report.settled.append(sid)
    (report.updated if before is not None else report.imported).append(sid)
    if dry_run:
        return
    if adopt:
        seen[key] = {"source": sig, "generation": ours.get("generation"), "messages": len(messages)}
        return
    target = store(profile)
    if before is None:
        session = target.create_with_id(sid, meta, messages)
    else:
        session = _replace(target, sid, meta, messages)
    seen[key] = {"source": sig, "generation": session.meta.get("generation"), "messages": len(messages)}


def _left_by_a_stopped_run(ours: dict, meta: dict, messages: list[dict]) -> bool:
    """True when our copy's header (``ours``) is the one a migration writes for this
    source session and was never changed here: generation 1, the same title, times and
    message count. A session made here has a random id of its own, so an id that is
    taken with all of these equal is the migration's own unrecorded write."""
    return (ours.get("generation") == 1 and ours.get("message_count") == len(messages)
            and all(ours.get(k) == meta.get(k) for k in ("title", "created_at", "updated_at")))


def _replace(store: SessionStore, sid: str, meta: dict, messages: list[dict]):
    """Overwrite our copy of ``sid`` with the source's newer version (it has at least
    as many messages, so no backup is taken), keeping what only we set."""
    from .streams import session_lock
    with session_lock(sid):
        session = store.load(sid)
        session.meta.update(meta)
        session.messages = messages
        session.save(touch=False)
    return session


def _migrate_projects(src: Path, dst: Path, dry_run: bool) -> int:
    """The upstream's ``projects.json`` (a list of ``{project_id, name, color, profile,
    created_at}``) merged into each profile's projects (:mod:`api.projects`): a project
    already here (same id) is left as it is. Returns how many the source has."""
    from .projects import ProjectStore
    try:
        raw = json.loads((src / "projects.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    if not isinstance(raw, list):
        return 0
    count = 0
    for p in raw:
        if not isinstance(p, dict) or not isinstance(p.get("project_id"), str) \
                or not PROJECT_ID_RE.fullmatch(p["project_id"]) or not isinstance(p.get("name"), str):
            continue
        count += 1
        if dry_run:
            continue
        profile = p.get("profile") if isinstance(p.get("profile"), str) and PROFILE_RE.fullmatch(p["profile"]) \
            else DEFAULT_PROFILE
        ProjectStore(_profile_dir(dst, profile)).adopt(p["project_id"], p["name"], color=p.get("color"),
                                                       created_at=_coerce(float, p.get("created_at")))
    return count
