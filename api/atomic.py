"""Atomic, durable file writes: the one place the project writes a file in place.

docs/architecture.md §3 invariant 3: write ``<file>.tmp.<pid>.<thread>.<random>``, ``fsync`` it,
``os.replace`` it over the target, then ``fsync`` the directory. A crash or an
``OSError`` (ENOSPC, EIO) at any point leaves the previous file byte-identical; the
temp file is removed on error and any litter from a crash is swept at start-up by
:func:`sweep_temp_files_tree`.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import threading
from pathlib import Path
from typing import NamedTuple

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


class FileRange(NamedTuple):
    """``count`` bytes of the open file ``fd`` from ``offset``: copied in the kernel
    (``copy_file_range``) instead of through Python, e.g. a transcript kept verbatim."""

    fd: int
    offset: int
    count: int


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _copy_range(src: FileRange, fd: int) -> None:
    offset, left = src.offset, src.count
    while left > 0:
        try:
            n = os.copy_file_range(src.fd, fd, left, offset)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            chunk = os.pread(src.fd, min(left, 1 << 20), offset)
            n = len(chunk)
            _write_all(fd, chunk)
        if n == 0:
            raise OSError(errno.EIO, "source file ended early")
        offset += n
        left -= n


def atomic_write_bytes(path: Path, data: "bytes | list[bytes | FileRange]", *, mode: int = 0o600,
                       exact_mode: bool = False) -> None:
    """Replace ``path`` with ``data`` (bytes, or a list of bytes and :class:`FileRange`
    parts written in order) atomically and durably.

    The new file gets ``mode`` less the process umask, or exactly ``mode`` with
    ``exact_mode`` (how a saved file keeps the permission bits it had).

    Raises ``OSError`` (e.g. ENOSPC) if any step fails; the previous content of
    ``path`` is then untouched and no temp file is left behind.
    """
    path = Path(path)
    parts = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        try:
            if exact_mode:
                os.fchmod(fd, mode)
            for part in parts:
                if isinstance(part, FileRange):
                    _copy_range(part, fd)
                else:
                    _write_all(fd, part)
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


_TEMP_NAME = re.compile(r".+\.tmp\.\d+\.\d+\.[0-9a-f]{8}")  # what temp_name makes


def sweep_temp_files_tree(root: Path) -> list[str]:
    """Delete temp files a crashed writer left in ``root`` and every folder below it
    (symlinks are not followed); returns the removed files' paths relative to ``root``.
    Only call this while no writer can be running (start-up, under the state-dir lock).
    Only names that :func:`temp_name` makes are touched, so a user's own
    ``notes.tmp.txt`` is safe."""
    removed = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if _TEMP_NAME.fullmatch(name):
                path = os.path.join(folder, name)
                try:
                    if not os.path.islink(path):
                        os.unlink(path)
                        removed.append(os.path.relpath(path, root))
                except OSError:
                    pass
    return removed
