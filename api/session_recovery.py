"""Start-up self-heal (DESIGN §3 invariant 5) and the operators' audit/repair command.

:func:`recover_all_sessions_on_startup` runs before the HTTP listener binds. For every
``sessions/<sid>.json.bak`` whose message count is higher than the live file's, the
backup is restored (atomically) unless the live file carries an ``intentional_shrink_at``
marker at or after the backup's mtime (an undo, clear or edit the user asked for).
Files it cannot read are logged, reported and left untouched; a backup whose live file
is gone is left alone (a deleted session stays deleted). Temp files left by a crashed
writer are removed. Running it twice changes nothing the second time.

Command line::

    python -m api.session_recovery --audit  [--state-dir DIR]   # report only
    python -m api.session_recovery --repair [--state-dir DIR]   # restore (server stopped)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .atomic import atomic_write_bytes, sweep_temp_files
from .models import SESSION_ID_RE, read_header

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


def recover_all_sessions_on_startup(state_dir: Path, *, dry_run: bool = False) -> dict:
    """Restore sessions that lost messages; returns a report.

    Report: ``{"restored": [{session_id, from, to}], "kept_intentional": [sid],
    "skipped": [{file, reason}], "temp_files_removed": [name], "backups_checked": n}``.
    With ``dry_run`` nothing is written or removed (``restored`` lists what would be).
    """
    sessions_dir = Path(state_dir) / "sessions"
    report = {"restored": [], "kept_intentional": [], "skipped": [], "temp_files_removed": [],
              "backups_checked": 0}
    if not sessions_dir.is_dir():
        return report
    if not dry_run:
        report["temp_files_removed"] = sweep_temp_files(sessions_dir)
    for entry in sorted(os.scandir(sessions_dir), key=lambda e: e.name):
        if not entry.name.endswith(".json.bak"):
            continue
        sid = entry.name[: -len(".json.bak")]
        if not SESSION_ID_RE.match(sid):
            report["skipped"].append({"file": entry.name, "reason": "not a session backup name"})
            continue
        report["backups_checked"] += 1
        bak, live = Path(entry.path), sessions_dir / f"{sid}.json"
        if not live.exists():
            report["skipped"].append({"file": entry.name, "reason": "session was deleted; backup left alone"})
            continue
        try:
            bak_count, _ = _count(bak)
            live_count, live_meta = _count(live)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("self-heal: skipping %s: unreadable (%s)", sid, exc)
            report["skipped"].append({"file": entry.name, "reason": f"unreadable: {exc}"})
            continue
        if bak_count <= live_count:
            continue
        marker = live_meta.get("intentional_shrink_at")
        if isinstance(marker, (int, float)) and marker >= bak.stat().st_mtime:
            report["kept_intentional"].append(sid)
            continue
        report["restored"].append({"session_id": sid, "from": live_count, "to": bak_count})
        if not dry_run:
            atomic_write_bytes(live, bak.read_bytes())
            log.warning("self-heal: restored session %s from its backup (%d → %d messages)",
                        sid, live_count, bak_count)
    return report


def audit_unreadable(state_dir: Path) -> list[dict]:
    """``[{file, error}]`` for every session file that cannot be read (reads only)."""
    out = []
    sessions_dir = Path(state_dir) / "sessions"
    for path in sorted(sessions_dir.glob("*.json")) if sessions_dir.is_dir() else []:
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
