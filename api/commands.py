"""The subcommands beside serving (docs/api.md): ``hermes-webui migrate`` and
``hermes-webui export --all``. ``server.main`` hands them their arguments.

    hermes-webui migrate [SRC] [--state-dir DST] [--dry-run]
    hermes-webui export --all FILE.zip [--state-dir DST]

Exit codes: 0 done, 2 bad arguments or paths, 3 the state dir is in use by a running
server (stop it, or use the page: it offers the migration itself).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

COMMANDS = ("migrate", "export")


def _default_state_dir() -> Path:
    return Path(os.environ.get("HERMES_WEBUI_STATE_DIR") or Path.home() / ".hermes-webui").expanduser()


def _err(message: str) -> None:
    print(f"hermes-webui: error: {message}", file=sys.stderr)


def _locked(state_dir: Path):
    """The state dir's lock (one process writes it at a time), or None after printing why."""
    from .statelock import StateDirBusy, acquire_state_lock
    try:
        return acquire_state_lock(state_dir)
    except StateDirBusy as exc:
        _err(f"{exc}; or, with the server running, migrate from its page (Settings → Migrate)")
        return None
    except OSError as exc:
        _err(f"cannot use the state dir {state_dir}: {exc.strerror or exc}")
        return None


class _Progress:
    """Progress lines on stderr: at most two a second, and the last one always."""

    def __init__(self, what: str):
        self.what, self.last = what, 0.0

    def __call__(self, done: int, total: int, name: str) -> None:
        now = time.monotonic()
        if done == total or now - self.last >= 0.5:
            self.last = now
            print(f"{self.what}: {done}/{total} sessions ({name})", file=sys.stderr, flush=True)


def migrate_main(argv: list[str]) -> int:
    from .migrate import MigrationError, default_source, migrate
    ap = argparse.ArgumentParser(prog="hermes-webui migrate",
                                 description="Import every session of the upstream hermes-webui into this one "
                                             "(ids, titles, times, projects, tags kept; the source is only read).")
    ap.add_argument("src", nargs="?", type=Path, default=None,
                    help=f"the upstream's state dir (default {default_source()})")
    ap.add_argument("--state-dir", type=Path, default=None, help="ours (default $HERMES_WEBUI_STATE_DIR or ~/.hermes-webui)")
    ap.add_argument("--dry-run", action="store_true", help="say what would be imported; write nothing")
    args = ap.parse_args(argv)
    src = (args.src or default_source()).expanduser()
    dst = (args.state_dir or _default_state_dir()).expanduser()
    lock = None
    try:
        from .migrate import check_paths
        check_paths(src, dst)
        if not args.dry_run:
            lock = _locked(dst)
            if lock is None:
                return 3
        report = migrate(src, dst, dry_run=args.dry_run, progress=_Progress("migrate"))
    except MigrationError as exc:
        _err(str(exc))
        return 2
    finally:
        if lock is not None:
            lock.release()
    print(report.summary())
    if args.dry_run:
        print("dry run: nothing was written")
    return 0


def export_main(argv: list[str]) -> int:
    from .backup import export_all
    ap = argparse.ArgumentParser(prog="hermes-webui export",
                                 description="Write every session (every profile, with attachments and projects) "
                                             "into one ZIP archive that import and migrate read back.")
    ap.add_argument("--all", dest="file", type=Path, required=True, metavar="FILE.zip",
                    help="the archive to write")
    ap.add_argument("--state-dir", type=Path, default=None, help="ours (default $HERMES_WEBUI_STATE_DIR or ~/.hermes-webui)")
    args = ap.parse_args(argv)
    state_dir = (args.state_dir or _default_state_dir()).expanduser()
    if not (state_dir / "sessions").is_dir():
        _err(f"no sessions in {state_dir} (pass --state-dir)")
        return 2
    try:
        summary = export_all(state_dir, args.file.expanduser(), progress=_Progress("export"))
    except OSError as exc:
        _err(f"cannot write {args.file}: {exc.strerror or exc}")
        return 2
    print(f"exported {summary['sessions']} sessions ({summary['attachments']} attachments, "
          f"{summary['bytes'] / 1048576:.1f} MiB) to {args.file}"
          + (f"; unreadable, left out: {', '.join(summary['unreadable'])}" if summary["unreadable"] else ""))
    return 0


def main(argv: list[str]) -> int:
    """Run subcommand ``argv[0]`` (one of :data:`COMMANDS`) with the rest."""
    os.umask(0o077)
    command, rest = argv[0], argv[1:]
    return migrate_main(rest) if command == "migrate" else export_main(rest)
