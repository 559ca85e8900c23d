"""Start-up self-heal (docs/architecture.md §3 invariant 5) and the operators' audit/repair command.

:func:`recover_all_sessions_on_startup` runs before the HTTP listener binds. In every
profile, for every ``sessions/<sid>.json.bak`` whose message count is higher than the
live file's, the backup is restored (atomically) unless the live file marks that shrink
as deliberate (an undo, clear or edit the user asked for: its
``intentional_shrink_generation`` names the backup's ``generation``, so no clock is
compared). Files it cannot read are logged, reported and left untouched; a backup whose
live file is gone is left alone (a deleted session stays deleted). Temp files left by a
crashed writer are removed from the whole state dir, and turn journals of turns that
were already saved are removed. Running it twice changes nothing the second time.

Command line::

    python -m api.session_recovery --audit  [--state-dir DIR]   # report only
    python -m api.session_recovery --repair [--state-dir DIR]   # restore (server stopped)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path

from .atomic import atomic_write_bytes, sweep_temp_files_tree
from .journal import SUFFIX as JOURNAL_SUFFIX, read_journal, remove_journal
from .codec import read_header
from .models import SESSION_ID_RE

log = logging.getLogger(__name__)


def _count(path: Path) -> tuple[int, dict]:
    """(real message count, metadata) of a session file, parsed in full (the header's
    ``message_count`` could be wrong in a hand-edited file); raises ValueError/OSError/
    KeyError/TypeError if unreadable."""
    raw = path.read_bytes()
    meta, _ = read_header(raw, len(raw))
    messages = json.loads(raw)["messages"]
    if not isinstance(messages, list):
        raise ValueError('"messages" is not a list')
    return len(messages), meta


def session_dirs(state_dir: Path) -> list[Path]:
    """Every profile's ``sessions`` folder: ``<state>/sessions`` and
    ``<state>/profiles/<name>/sessions``."""
    state_dir = Path(state_dir)
    dirs = [state_dir / "sessions"]
    profiles = state_dir / "profiles"
    if profiles.is_dir():
        dirs += sorted(p / "sessions" for p in profiles.iterdir() if not p.name.startswith("."))
    return [d for d in dirs if d.is_dir()]


# The upstream system's deliberate-shrink markers (a migrated or shared state dir): a
# ``uuid.uuid4().hex`` string it stamps at each undo/retry/edit, and a ``clear_generation``
# string it stamps at each clear. Anything else is no marker, so the backup is restored.
_UPSTREAM_GENERATION_RE = re.compile(r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}")


def _upstream_marks_shrink(live_meta: dict, bak_meta: dict) -> bool:
    """True when the live file carries an upstream marker newer than the backup's: an
    ``intentional_shrink_generation`` of the upstream's shape that the backup does not
    carry (absent, null or another valid one), or a ``clear_generation`` the backup
    does not share."""
    live = live_meta.get("intentional_shrink_generation")
    if isinstance(live, str) and _UPSTREAM_GENERATION_RE.fullmatch(live):
        bak = bak_meta.get("intentional_shrink_generation")
        if bak is None or (isinstance(bak, str) and _UPSTREAM_GENERATION_RE.fullmatch(bak) and bak != live):
            return True
    cleared = live_meta.get("clear_generation")
    return isinstance(cleared, str) and bool(cleared) and bak_meta.get("clear_generation") != cleared


def _shrink_was_intentional(live_meta: dict, bak_meta: dict) -> bool:
    """Invariant 9: the files' own records decide, never this host's clock against a
    filesystem timestamp. The live file names the generation of the file its deliberate
    shrink backed up; a file written by an earlier version carries the time of that
    shrink, compared with the backup's own ``updated_at`` (both from this app's clock)."""
    if _upstream_marks_shrink(live_meta, bak_meta):
        return True
    marker = live_meta.get("intentional_shrink_generation")
    if isinstance(marker, int) and not isinstance(marker, bool):
        gen = bak_meta.get("generation")
        return marker == (gen if isinstance(gen, int) and not isinstance(gen, bool) else 0)
    legacy, saved = live_meta.get("intentional_shrink_at"), bak_meta.get("updated_at")
    return (isinstance(legacy, (int, float)) and isinstance(saved, (int, float))
            and not isinstance(legacy, bool) and legacy >= saved)


def recover_all_sessions_on_startup(state_dir: Path, *, dry_run: bool = False) -> dict:
    """Restore sessions that lost messages, in every profile; returns a report.

    Report: ``{"restored": [{session_id, from, to}], "kept_intentional": [sid],
    "skipped": [{file, reason}], "temp_files_removed": [path relative to the state dir],
    "journals_removed": [name], "backups_checked": n}``. Temp files of crashed writers
    are swept from the whole state dir (settings, skills, memory, workspace too); turn
    journals left behind by a crash after their turn was saved are removed. With
    ``dry_run`` nothing is written or removed (``restored`` lists what would be).
    """
    report = {"restored": [], "kept_intentional": [], "skipped": [], "temp_files_removed": [],
              "journals_removed": [], "backups_checked": 0}
    if not Path(state_dir).is_dir():
        return report
    if not dry_run:
        report["temp_files_removed"] = sweep_temp_files_tree(Path(state_dir))
    for sessions_dir in session_dirs(state_dir):
        _recover_dir(sessions_dir, report, dry_run)
    return report


def _recover_dir(sessions_dir: Path, report: dict, dry_run: bool) -> None:
    for entry in sorted(os.scandir(sessions_dir), key=lambda e: e.name):
        if entry.name.endswith(JOURNAL_SUFFIX):
            _check_journal(sessions_dir, entry, report, dry_run)
            continue
        if not entry.name.endswith(".json.bak"):
            continue
        sid = entry.name[: -len(".json.bak")]
        if not SESSION_ID_RE.fullmatch(sid):
            report["skipped"].append({"file": entry.name, "reason": "not a session backup name"})
            continue
        report["backups_checked"] += 1
        bak, live = Path(entry.path), sessions_dir / f"{sid}.json"
        if not live.exists():
            report["skipped"].append({"file": entry.name, "reason": "session was deleted; backup left alone"})
            continue
        try:
            bak_count, bak_meta = _count(bak)
            live_count, live_meta = _count(live)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("self-heal: skipping %s: unreadable (%s)", sid, exc)
            report["skipped"].append({"file": entry.name, "reason": f"unreadable: {exc}"})
            continue
        if bak_count <= live_count:
            continue
        if _shrink_was_intentional(live_meta, bak_meta):
            report["kept_intentional"].append(sid)
            continue
        report["restored"].append({"session_id": sid, "from": live_count, "to": bak_count})
        if not dry_run:
            atomic_write_bytes(live, bak.read_bytes())
            log.warning("self-heal: restored session %s from its backup (%d → %d messages)",
                        sid, live_count, bak_count)


def _check_journal(sessions_dir: Path, entry, report: dict, dry_run: bool) -> None:
    """Remove a turn journal whose session is gone or no longer names its stream."""
    sid = entry.name[: -len(JOURNAL_SUFFIX)]
    pending = read_journal(Path(entry.path), head_only=True)
    try:
        raw = (sessions_dir / f"{sid}.json").read_bytes()
        active = read_header(raw, len(raw))[0].get("active_stream_id")
    except FileNotFoundError:
        active = None
    except (OSError, ValueError):
        return  # an unreadable session: leave everything of it alone
    if pending is not None and active == pending.stream_id:
        return  # a turn the crash interrupted: the first reader settles it
    report["journals_removed"].append(entry.name)
    if not dry_run:
        remove_journal(Path(entry.path))


def audit_unreadable(state_dir: Path) -> list[dict]:
    """``[{file, error}]`` for every session file that cannot be read (reads only)."""
    out = []
    for path in sorted(p for d in session_dirs(state_dir) for p in d.glob("*.json")):
        if path.name == "_index.json":
            continue
        try:
            _count(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            out.append({"file": path.name, "error": str(exc)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.session_recovery", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--audit", action="store_true", help="report what would be restored; change nothing")
    mode.add_argument("--repair", action="store_true", help="restore sessions (stop the server first)")
    parser.add_argument("--state-dir", type=Path,
                        default=Path(os.environ.get("HERMES_WEBUI_STATE_DIR", "~/.hermes-webui")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    state_dir = args.state_dir.expanduser()
    lock = None
    if args.repair:
        from .statelock import StateDirBusy, acquire_state_lock
        try:
            lock = acquire_state_lock(state_dir)
        except StateDirBusy as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        if not state_dir.is_dir():
            print(f"error: no state dir at {state_dir} (pass --state-dir)", file=sys.stderr)
            return 2
        report = recover_all_sessions_on_startup(state_dir, dry_run=args.audit)
        if args.audit:
            report["would_restore"] = report.pop("restored")
        report["unreadable_sessions"] = audit_unreadable(state_dir)
        print(json.dumps(report, indent=2, ensure_ascii=False))
    finally:
        if lock is not None:
            lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
