"""Atomic, durable file writes: the one place the project writes a file in place.

DESIGN §3 invariant 3: write ``<file>.tmp.<pid>.<thread>.<random>``, ``fsync`` it,
``os.replace`` it over the target, then ``fsync`` the directory. A crash or an
``OSError`` (ENOSPC, EIO) at any point leaves the previous file byte-identical; the
temp file is removed on error and any litter from a crash is swept at start-up by
:func:`sweep_temp_files`.
"""
from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

TMP_MARKER = ".tmp."


def temp_name(path: Path) -> Path:
    """A temp path beside ``path``, unique per process, thread and call."""
    tag = f"{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}"
    return path.with_name(f"{path.name}{TMP_MARKER}{tag}")


def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename inside it survives power loss (best effort on
    filesystems that refuse directory fsync)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Raises ``OSError`` (e.g. ENOSPC) if any step fails; the previous content of
    ``path`` is then untouched and no temp file is left behind.
    """
    path = Path(path)
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, **kw) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), **kw)


def sweep_temp_files(directory: Path) -> list[str]:
    """Delete temp files a crashed writer left in ``directory``; returns their names.

    Only call this while no writer can be running (start-up, under the state-dir lock).
    """
    removed = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if TMP_MARKER in entry.name and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
                removed.append(entry.name)
            except OSError:
                pass
    return removed
