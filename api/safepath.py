"""Safe resolution of request paths inside a root directory (docs/architecture.md §7).

The one place where a path that came from a request becomes a file operation. The
workspace, skills and memory blueprints all go through it, in three steps:

1. :func:`split_relpath` refuses anything that is not a plain relative path: ``..`` and
   ``.``, a leading ``/``, backslashes, NUL and other control characters, empty names
   (``a//b``), names over 255 bytes. → 400.
2. :func:`locate` resolves symbolic links (``os.path.realpath``) and requires the result
   inside the real root, compared by path components (``/srv/ws2`` is not inside
   ``/srv/ws``). → 403. A :class:`Located` holds the *real* chain of names under the root.
3. :func:`opened_parent` walks that chain from a descriptor of the root, one name at a
   time with ``O_NOFOLLOW | O_DIRECTORY``; the operations below then act on the final name
   relative to the last descriptor (``openat``/``unlinkat``/``renameat`` semantics, with
   ``O_NOFOLLOW`` on the final name). A symlink swapped in between the check and the use
   makes the walk fail (ENOTDIR/ELOOP → 400/409) instead of escaping; a directory renamed
   meanwhile does not matter, the descriptor follows it.

Nothing here replaces a file it was not asked to replace: a rename and an exclusive
create (``exclusive=True``, ``expected_mtime=0``) end in :func:`rename_noreplace`, one
system call that fails when the target exists (``renameat2(RENAME_NOREPLACE)``), so two
requests racing onto one free name cannot both win and no file is silently destroyed.

Atomic writes use :func:`api.atomic.atomic_write_bytes` aimed at
``/proc/self/fd/<dir fd>/<name>``, a name for the directory we opened whatever happens
to its path. (Without ``/proc`` it falls back to the real path, a narrow race.)

Every refusal is a :class:`~api.errors.PathError` (an :class:`~api.errors.ApiError`), so a route
answers ``{"error": …}`` with its status and nothing on disk has changed.
"""
from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import stat
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .atomic import atomic_write_bytes, temp_name
from .errors import PathError

NAME_MAX_BYTES = 255
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a FIFO never hangs us
_PROC_FD = Path("/proc/self/fd")
# Makes "compare the mtime, then replace" one step for conditional writes within this process.
_CONDITIONAL_WRITE_LOCK = threading.Lock()
# Where the kernel or the file system lacks RENAME_NOREPLACE and a hard link cannot stand in
# (a folder): check and rename under this lock (guards this process's threads only).
_NOREPLACE_FALLBACK_LOCK = threading.Lock()
_RENAME_NOREPLACE = 1  # linux/fs.h


def _load_renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28, musl >= 1.2.2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _load_renameat2()


def split_relpath(path, *, allow_root: bool = True) -> tuple[str, ...]:
    """The names of a relative request path; ``""`` is the root (``()``).

    Raises :class:`PathError` 400 for a non-string, an absolute path, ``.``/``..``,
    a backslash, NUL or another control character, an empty name, or a name over 255 bytes.
    """
    if not isinstance(path, str):
        raise PathError("path must be a string")
    if path == "":
        if allow_root:
            return ()
        raise PathError("path must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise PathError("path must not contain NUL or control characters")
    if "\\" in path:
        raise PathError("path must not contain backslashes")
    if path.startswith("/"):
        raise PathError("path must be relative (no leading '/')")
    parts = tuple(path.split("/"))
    for part in parts:
        if part == "":
            raise PathError("path must not contain empty names ('//' or a trailing '/')")
        if part in (".", ".."):
            raise PathError("path must not contain '.' or '..'")
        if len(part.encode("utf-8", "surrogatepass")) > NAME_MAX_BYTES:
            raise PathError(f"a name in the path is longer than {NAME_MAX_BYTES} bytes")
    return parts


BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def upload_name(raw, what: str = "file name") -> str:
    """The single name an uploaded file is stored under, from the name the client sent.

    Browsers send a base name, but old ones and hand-made clients send whole paths
    (``C:\\Users\\me\\a.txt``, ``../../x``, ``/etc/passwd``): only what follows the last
    ``/`` or ``\\`` is kept, so nothing the client sends ever builds a path; the folder is
    the request's ``path`` field alone. :class:`PathError` 400 when nothing usable is
    left: a non-string, an empty name, a name of dots and spaces only (``..``), a NUL or
    other control character (a newline), or a name over 255 bytes in UTF-8. Unicode's
    bidirectional embedding, override and isolate marks (U+202A–202E, U+2066–2069) are
    dropped: they only change how a name displays, e.g. ``invoice<U+202E>fdp.exe`` showing
    as ``invoiceexe.pdf`` in a chip or a download link.
    """
    if not isinstance(raw, str):
        raise PathError(f"{what} must be a string")
    name = BIDI_CONTROLS.sub("", raw).replace("\\", "/").rsplit("/", 1)[-1]
    if not name.strip(". \t"):
        raise PathError(f"{what} {raw[:80]!r} has no usable name (empty or only dots)")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise PathError(f"{what} must not contain NUL, a newline or other control characters")
    return check_name(name, what)


def check_name(name, what: str = "name") -> str:
    """``name`` if it is one safe file name (no ``/``); :class:`PathError` 400 otherwise."""
    parts = split_relpath(name, allow_root=False)
    if len(parts) != 1:
        raise PathError(f"{what} must be a single name, not a path")
    return name


@dataclass(frozen=True)
class Located:
    """A path proven to lie inside ``root``: ``root`` is real, ``parts`` the real names under it."""

    root: str
    parts: tuple[str, ...]

    @property
    def rel(self) -> str:
        return "/".join(self.parts)

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else ""

    @property
    def is_root(self) -> bool:
        return not self.parts

    def child(self, name: str) -> "Located":
        """This directory's entry ``name`` (checked with :func:`check_name`), not resolved further."""
        return Located(self.root, self.parts + (check_name(name),))


def locate(root, path, *, follow_final: bool = True) -> Located:
    """Resolve request ``path`` under ``root`` (symlinks followed) and prove it stays inside.

    ``follow_final=False`` resolves only the parent, so the final name may itself be a
    symlink (delete and rename act on the link, not its target). The final name need not
    exist. Raises :class:`PathError` 400 (malformed, see :func:`split_relpath`), 403 (it
    resolves outside the root), 404 (the root itself is missing), 409 (a link on the way
    changed while it was being resolved).
    """
    parts = split_relpath(path)
    root_real = os.path.realpath(root)
    if not os.path.isdir(root_real):
        raise PathError("the root folder does not exist", 404)
    if not parts:
        return Located(root_real, ())
    try:
        if follow_final:
            real = os.path.realpath(os.path.join(root_real, *parts))
        else:
            real = os.path.join(os.path.realpath(os.path.join(root_real, *parts[:-1])), parts[-1])
    except OSError:  # a link vanished or changed between realpath's lstat and readlink
        raise PathError(f"{path!r} changed while being resolved; try again", 409) from None
    if os.path.commonpath([root_real, real]) != root_real:
        raise PathError("path leads outside the allowed folder", 403)
    rel = os.path.relpath(real, root_real)
    return Located(root_real, () if rel == "." else tuple(rel.split(os.sep)))


def _raise_os(exc: OSError, loc: Located):
    """Turn an OSError on ``loc`` into a PathError with the right status (or re-raise)."""
    shown = loc.rel or "the root folder"
    table = {
        errno.ENOENT: (f"{shown!r} does not exist", 404),
        errno.EEXIST: (f"{shown!r} already exists", 409),
        errno.ENOTEMPTY: (f"folder {shown!r} is not empty", 409),
        errno.EISDIR: (f"{shown!r} is a folder", 400),
        errno.ENOTDIR: (f"a part of {shown!r} is not a folder", 400),
        errno.ELOOP: (f"{shown!r} changed while being opened or loops through symbolic links", 409),
        errno.EACCES: (f"permission denied for {shown!r}", 403),
        errno.EPERM: (f"operation not permitted on {shown!r}", 403),
        errno.ENAMETOOLONG: ("path is too long", 400),
        errno.EINVAL: (f"invalid operation on {shown!r}", 400),
        errno.EXDEV: ("cannot move across file systems", 400),
    }
    if exc.errno in table:
        message, status = table[exc.errno]
        raise PathError(message, status) from None
    raise exc


def _walk(loc: Located, create: bool) -> int:
    """Open the directory holding ``loc``'s final name, one name at a time from the root."""
    try:
        fd = os.open(loc.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        _raise_os(exc, Located(loc.root, ()))
    try:
        for part in loc.parts[:-1]:
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except OSError as exc:
        os.close(fd)
        _raise_os(exc, loc)
    return fd


@contextmanager
def opened_parent(loc: Located, *, create: bool = False) -> Iterator[int]:
    """A descriptor of the directory holding ``loc``'s final name (the root for the root).

    Walks from the root without following links; ``create=True`` makes missing
    directories on the way (mode 0755 less the umask). Raises :class:`PathError`.
    """
    fd = _walk(loc, create)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def opened_dir(loc: Located) -> Iterator[int]:
    """A descriptor of the directory ``loc`` itself (for listing)."""
    with opened_parent(loc) as pfd:
        if loc.is_root:
            yield pfd
            return
        try:
            fd = os.open(loc.name, _DIR_FLAGS, dir_fd=pfd)
        except OSError as exc:
            _raise_os(exc, loc)
        try:
            yield fd
        finally:
            os.close(fd)


def open_file(loc: Located) -> tuple[int, os.stat_result]:
    """``(fd, stat)`` of the regular file ``loc``, opened read-only without following a
    link; the caller closes ``fd``. 400 for a folder, link or special file, 404 if missing."""
    if loc.is_root:
        raise PathError("the root folder is not a file")
    with opened_parent(loc) as pfd:
        try:
            fd = os.open(loc.name, _READ_FLAGS, dir_fd=pfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathError(f"{loc.rel!r} is a symbolic link", 400) from None
            _raise_os(exc, loc)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise PathError(f"{loc.rel!r} is not a regular file")
    return fd, st


def lstat(loc: Located) -> os.stat_result | None:
    """The final name's own stat (a link is not followed), or None if it does not exist."""
    with opened_parent(loc) as pfd:
        return _lstat_at(pfd, loc.name) if loc.parts else os.fstat(pfd)


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _fd_path(dir_fd: int, loc: Located, name: str) -> Path:
    if _PROC_FD.is_dir():
        return _PROC_FD / str(dir_fd) / name
    return Path(loc.root, *loc.parts[:-1], name)


def write_file(loc: Located, data, *, exclusive: bool = False, expected_mtime: float | None = None,
               create_dirs: bool = False) -> os.stat_result:
    """Atomically replace (or create) the regular file ``loc`` with ``data`` (bytes-like).

    ``exclusive``: 409 if it exists. ``expected_mtime``: 409 unless the file's current
    ``st_mtime`` equals it (``0`` means "must not exist yet", i.e. exclusive). An exclusive
    write never replaces a file, not even one that appears at the same instant (a rename
    or another upload onto the name): the data goes to a temp file that is then moved into
    place with :func:`rename_noreplace`. A symlink or folder at ``loc`` is refused (400). An
    existing file keeps its permission bits; a new one gets 0644 less the umask.
    ``create_dirs`` makes missing parent folders. Returns the new stat.
    """
    if loc.is_root:
        raise PathError("the root folder is not a file")
    if exclusive or expected_mtime == 0:
        return _write_new(loc, data, create_dirs)
    if expected_mtime is not None:
        with _CONDITIONAL_WRITE_LOCK:
            return _write_file(loc, data, expected_mtime, create_dirs)
    return _write_file(loc, data, expected_mtime, create_dirs)


def _refuse_existing(loc: Located, old: os.stat_result | None, conflict: bool) -> None:
    if old is not None and stat.S_ISLNK(old.st_mode):
        raise PathError(f"{loc.rel!r} is a symbolic link; refusing to write through it")
    if old is not None and not stat.S_ISREG(old.st_mode):
        raise PathError(f"{loc.rel!r} is not a regular file")
    if conflict and old is not None:
        raise PathError(f"{loc.rel!r} already exists", 409)


def _write_new(loc: Located, data, create_dirs: bool) -> os.stat_result:
    """Create ``loc`` with ``data``; 409 if the name exists, before or at the final move."""
    with opened_parent(loc, create=create_dirs) as pfd:
        _refuse_existing(loc, _lstat_at(pfd, loc.name), conflict=True)
        # A short hidden temp name (api.atomic's pattern, so a crash's litter is swept).
        tmp = temp_name(Path(".new")).name
        try:
            atomic_write_bytes(_fd_path(pfd, loc, tmp), data, mode=0o644)
            try:
                rename_noreplace(pfd, tmp, pfd, loc.name)
            except BaseException:
                _unlink_quietly(pfd, tmp)
                raise
            _fsync_quietly(pfd)
            return os.stat(loc.name, dir_fd=pfd, follow_symlinks=False)
        except OSError as exc:
            _raise_os(exc, loc)


def _unlink_quietly(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _write_file(loc: Located, data, expected_mtime, create_dirs: bool) -> os.stat_result:
    with opened_parent(loc, create=create_dirs) as pfd:
        old = _lstat_at(pfd, loc.name)
        _refuse_existing(loc, old, conflict=False)
        if expected_mtime is not None:
            current = old.st_mtime if old is not None else 0
            if current != expected_mtime:
                raise PathError(f"{loc.rel!r} changed since it was read (reload it and retry)", 409)
        mode = stat.S_IMODE(old.st_mode) if old is not None else 0o644
        try:  # an existing file keeps its bits exactly (the server's umask is 077)
            atomic_write_bytes(_fd_path(pfd, loc, loc.name), data, mode=mode, exact_mode=old is not None)
            return os.stat(loc.name, dir_fd=pfd, follow_symlinks=False)
        except OSError as exc:
            _raise_os(exc, loc)


def make_dir(loc: Located, *, parents: bool = False) -> None:
    """Create the folder ``loc``; 409 if something exists there."""
    if loc.is_root:
        raise PathError("the root folder already exists", 409)
    with opened_parent(loc, create=parents) as pfd:
        try:
            os.mkdir(loc.name, 0o755, dir_fd=pfd)
        except OSError as exc:
            _raise_os(exc, loc)


def remove(loc: Located, *, recursive: bool = False) -> str:
    """Delete the final name of ``loc`` (a link itself, never its target); returns its kind.

    A folder needs ``recursive=True`` unless empty (409 otherwise); the recursive delete
    walks by descriptor (``shutil.rmtree(dir_fd=…)``) and never follows links. Kinds:
    ``"file"``, ``"dir"``, ``"link"``, ``"other"``. 400 for the root, 404 if missing.
    """
    if loc.is_root:
        raise PathError("refusing to delete the root folder")
    with opened_parent(loc) as pfd:
        st = _lstat_at(pfd, loc.name)
        if st is None:
            raise PathError(f"{loc.rel!r} does not exist", 404)
        try:
            if stat.S_ISDIR(st.st_mode):
                if recursive:
                    shutil.rmtree(loc.name, dir_fd=pfd)
                else:
                    os.rmdir(loc.name, dir_fd=pfd)
                return "dir"
            os.unlink(loc.name, dir_fd=pfd)
        except OSError as exc:
            _raise_os(exc, loc)
    return "link" if stat.S_ISLNK(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"


def rename_noreplace(src_dir_fd: int, src_name: str, dst_dir_fd: int, dst_name: str) -> None:
    """Move ``src_name`` (in ``src_dir_fd``) to ``dst_name`` (in ``dst_dir_fd``) unless the
    target exists, in one step; a link moves as a link. Raises ``FileExistsError`` (EEXIST)
    if it exists and any other ``OSError`` the move meets (ENOENT: no source).

    ``renameat2(…, RENAME_NOREPLACE)`` where the kernel and file system have it (Linux ≥ 3.15
    on ext4, xfs, btrfs, tmpfs…). Elsewhere (ENOSYS, EINVAL) a hard link, which fails on an
    existing target, then an unlink of the source; and for what cannot be hard-linked (a
    folder, a file system without links) a check and rename under a process-wide lock.
    """
    if _RENAMEAT2 is not None:
        if _RENAMEAT2(src_dir_fd, os.fsencode(src_name), dst_dir_fd, os.fsencode(dst_name), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), src_name, None, dst_name)
    st = os.stat(src_name, dir_fd=src_dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        try:
            os.link(src_name, dst_name, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                raise
        else:
            os.unlink(src_name, dir_fd=src_dir_fd)
            return
    with _NOREPLACE_FALLBACK_LOCK:
        if _lstat_at(dst_dir_fd, dst_name) is not None:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst_name)
        os.rename(src_name, dst_name, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)


def rename(src: Located, dst: Located) -> None:
    """Move ``src``'s final name (a link moves as a link) to ``dst``; never replaces
    anything: 409 if ``dst`` exists (also when another request takes the name at the same
    instant), 404 if ``src`` is missing, 400 for the root or a folder moved into itself."""
    if src.is_root or dst.is_root:
        raise PathError("refusing to move the root folder")
    with opened_parent(src) as sfd, opened_parent(dst) as dfd:
        if _lstat_at(sfd, src.name) is None:
            raise PathError(f"{src.rel!r} does not exist", 404)
        try:
            rename_noreplace(sfd, src.name, dfd, dst.name)
        except FileNotFoundError:
            raise PathError(f"{src.rel!r} does not exist", 404) from None
        except OSError as exc:
            _raise_os(exc, dst)
        _fsync_quietly(dfd)


def _fsync_quietly(dir_fd: int) -> None:
    """fsync a directory so a rename in it survives power loss (best effort)."""
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
