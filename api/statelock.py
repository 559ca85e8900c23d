"""One server per state dir: a cross-process lock on ``<state-dir>/.lock`` (filelock)."""
from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout


class StateDirBusy(RuntimeError):
    """Another process holds the state dir."""


def acquire_state_lock(state_dir: Path) -> FileLock:
    """Take the state dir's lock for the life of the process.

    Raises :class:`StateDirBusy` at once (no waiting) if another process has it, so two
    servers can never run turns on the same session files.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.chmod(state_dir, 0o700)  # it holds every conversation: the user's alone
    except OSError:
        pass
    lock = FileLock(str(state_dir / ".lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise StateDirBusy(f"another hermes-webui process is already using {state_dir} "
                           "(stop it, or pass a different --state-dir)") from None
    return lock
