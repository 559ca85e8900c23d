"""Workspace files: list, preview, download, save, create, delete, rename, upload.

Each session works in one workspace root. The roots are the profile's own
``<profile-dir>/workspace`` (named ``default``, created on first use) followed by the
folders of ``--workspace-roots`` (named by their base name) and those ``hermes-webui
migrate`` brought from the upstream's workspaces list (:mod:`api.workspace_roots`). A session's ``workspace``
metadata picks one by name or by absolute path; empty means ``default``; anything else
is refused (403), so a session can never name an arbitrary folder.

Every request path goes through :mod:`api.safepath` (the one resolver): relative,
symlinks resolved and required inside the root, opened without following links.
Paths are ``/``-separated and relative to the root; ``""`` is the root itself.

Endpoints (blueprint ``workspace``); every one takes ``session_id`` (400 bad, 404 unknown,
also 404 for a session of another profile):

- ``GET /api/workspaces`` → ``{roots: [{name, path}]}``, and the upstream's ``workspaces``
  (the same list) and ``last`` (the default root's path).
- ``GET /api/list?session_id&path`` → ``{path, root, entries: [{name, path, type, size,
  mtime, symlink}], truncated}``; ``type`` is ``dir``, ``file``, ``other``, or ``link`` for
  a symlink that dangles or leads outside. Folders first. At most 5,000 entries.
- ``GET /api/file?session_id&path`` → ``{path, name, size, mtime, mime, binary, image,
  content, truncated, lines, raw_url}``: the first 256 KiB of a UTF-8 text file
  (``lines`` counted over the whole file up to 64 MiB, else null); a binary file has
  ``binary: true, content: null`` and points to ``raw_url``.
- ``GET /api/file/raw?session_id&path[&download=1]`` → the bytes, with the guessed
  content type; ``Content-Disposition: attachment`` for anything but images, audio,
  video and plain text (HTML and SVG never render inline); ``nosniff`` and a sandbox CSP.
- ``POST /api/file/save {session_id, path, content, expected_mtime?}`` → ``{ok, path,
  size, mtime}``; writes UTF-8 atomically, creating the file if needed; 409 if
  ``expected_mtime`` is stale (``0``: the file must not exist yet).
- ``POST /api/file/create {session_id, path, content?, kind?: "file"|"dir"}`` → ``{ok,
  path, kind}``; 409 if the name exists.
- ``POST /api/file/delete {session_id, path, recursive?}`` → ``{ok, path, kind}``; a symlink
  is removed itself; a non-empty folder needs ``recursive: true`` (409 otherwise).
- ``POST /api/file/rename {session_id, path, new_path}`` → ``{ok, path: new_path, old_path,
  new_path}``; the upstream's ``new_name`` (a name in the same folder) instead of
  ``new_path`` is accepted; 409 if ``new_path`` exists. Never replaces a file: of two renames onto one free name at the
  same instant exactly one succeeds, the other gets 409 (the same holds for ``create``
  and for an upload without ``overwrite``).
- ``POST /api/upload`` multipart: ``session_id``, optional ``path`` (a folder), optional
  ``overwrite=1``, the file in part ``file`` → ``{ok, path, size, mtime}``. The file is
  stored in the folder ``path`` under the last component of the name the client sent
  (:func:`api.safepath.upload_name`): ``../../x``, ``/tmp/x`` and ``C:\\dir\\x`` all
  become ``x`` in that folder, never a path of their own; a name with nothing usable left
  (empty, only dots, a control character such as NUL or a newline) → 400. ``path`` in the
  response says where it went. Larger than
  ``--max-upload-bytes`` (default 20 MiB) → 413 JSON before the body is parsed; parts over
  500 KB are spooled to temp files by werkzeug, so memory stays bounded; the file appears
  atomically or not at all; 409 if it exists and ``overwrite`` is not set. A folder
  ``path`` that does not exist yet is created (as the upstream's upload does); 400 if a
  part of it is a file ("a part of 'notes/a.txt' is not a folder").
"""
from __future__ import annotations

import codecs
import mimetypes
import mmap
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

from flask import Blueprint, Flask, jsonify, request, send_file

from .app import app_state
from . import safepath
from .httputil import ApiError, arg_bool, arg_str, field, json_body
from .models import validate_session_id
from .profiles import current_store, profile_dir
from .safepath import Located, PathError

workspace_bp = Blueprint("workspace", __name__)

PREVIEW_BYTES = 256 * 1024
LINE_COUNT_MAX_BYTES = 64 * 1024 * 1024
LIST_MAX_ENTRIES = 5000
MULTIPART_SLACK = 64 * 1024  # multipart headers and boundaries on top of the file itself
_CHUNK = 1024 * 1024
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp", "text/plain"}


def workspace_roots() -> list[tuple[str, Path]]:
    """``[(name, path)]``: the profile's ``default`` root, then ``--workspace-roots``, then
    the folders migrated from the upstream's workspaces list (:mod:`api.workspace_roots`)."""
    return roots_of(profile_dir(), app_state().config)


def roots_of(pdir: Path, config) -> list[tuple[str, Path]]:
    """:func:`workspace_roots` of the profile whose folder is ``pdir`` (no request needed;
    ``config`` None: the ``default`` root and the migrated ones only)."""
    from .workspace_roots import read_extra_roots
    roots = [("default", Path(pdir) / "workspace")]
    seen = {"default"}
    listed = [(None, Path(raw.strip()).expanduser().resolve())
              for raw in (getattr(config, "workspace_roots", None) or "").split(os.pathsep) if raw.strip()]
    listed += read_extra_roots(pdir, getattr(config, "state_dir", None) or Path(pdir))
    for label, path in listed:
        if any(path == p for _n, p in roots):
            continue
        base = label or path.name or "root"
        name, n = base, 2
        while name in seen:
            name, n = f"{base}-{n}", n + 1
        seen.add(name)
        roots.append((name, path))
    return roots


def session_root(session_id: str) -> tuple[str, Path]:
    """``(name, path)`` of the root a session works in (its ``workspace`` field).

    Raises InvalidSessionId (400), SessionNotFound (404), ApiError 403 when the field
    names no configured root.
    """
    meta = current_store().load_metadata_only(validate_session_id(session_id)).meta
    choice = meta.get("workspace")
    found = _pick_root(workspace_roots(), choice)
    if found is None:
        raise ApiError(f"this session's workspace {str(choice)[:200]!r} is not a configured workspace root", 403)
    return found


def _pick_root(roots: list[tuple[str, Path]], choice) -> tuple[str, Path] | None:
    """The root a session's ``workspace`` field names (empty: ``default``, created), or None."""
    for name, path in roots:
        if not choice and name == "default" or choice == name or (
                isinstance(choice, str) and os.path.isabs(choice)
                and os.path.realpath(choice) == os.path.realpath(path)):
            if name == "default":
                path.mkdir(parents=True, exist_ok=True)
            return name, path
    return None


def turn_workspace(pdir: Path, config, meta: dict) -> Path | None:
    """The folder an agent's tools work in for a session of the profile at ``pdir`` (its
    ``workspace`` root, see :func:`session_root`), None if it names no configured root or
    the folder cannot be made. No request needed (turns start from threads too)."""
    try:
        found = _pick_root(roots_of(pdir, config), meta.get("workspace"))
    except OSError:
        return None
    return found[1] if found else None


def _locate(session_id: str, path, *, follow_final: bool = True) -> Located:
    _name, root = session_root(session_id)
    return safepath.locate(root, path, follow_final=follow_final)


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


# ---------------------------------------------------------------- reading


@workspace_bp.get("/api/workspaces")
def list_roots():
    """``{roots: [{name, path}], workspaces, last}``: the roots a session's ``workspace`` may
    name; ``workspaces`` and ``last`` are the upstream's names (:func:`api.compat.workspaces_view`)."""
    from .compat import workspaces_view
    return jsonify(workspaces_view([{"name": n, "path": str(p)} for n, p in workspace_roots()]))


def _entry(dir_fd: int, loc: Located, folder: str, entry: os.DirEntry) -> dict:
    st = entry.stat(follow_symlinks=False)
    out = {"name": entry.name, "path": _join(folder, entry.name), "symlink": stat.S_ISLNK(st.st_mode)}
    if out["symlink"]:
        try:
            safepath.locate(loc.root, _join(loc.rel, entry.name))
            st = os.stat(entry.name, dir_fd=dir_fd)
        except (PathError, OSError):
            out.update(type="link", size=None, mtime=None)
            return out
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
    out.update(type=kind, size=st.st_size if kind == "file" else None, mtime=st.st_mtime)
    return out


@workspace_bp.get("/api/list")
def list_folder():
    """One folder: ``{path, root, entries, truncated}`` (see the module docstring)."""
    sid = arg_str("session_id")
    folder = request.args.get("path", "")
    root_name, root = session_root(sid)
    loc = safepath.locate(root, folder)
    entries, truncated = [], False
    with safepath.opened_dir(loc) as fd, os.scandir(fd) as it:
        for entry in it:
            if len(entries) >= LIST_MAX_ENTRIES:
                truncated = True
                break
            try:
                entries.append(_entry(fd, loc, folder, entry))
            except OSError:
                continue  # vanished while listing
    entries.sort(key=lambda e: (e["type"] != "dir", e["name"].casefold(), e["name"]))
    return jsonify(path=folder, root=root_name, entries=entries, truncated=truncated)


def _count_lines(f, head: bytes, size: int) -> int | None:
    """Lines of the whole file (a last line without newline counts), or None past the cap."""
    if size > LINE_COUNT_MAX_BYTES:
        return None
    count, last = head.count(b"\n"), head[-1:]
    while chunk := f.read(_CHUNK):
        count += chunk.count(b"\n")
        last = chunk[-1:]
    return count + (1 if last not in (b"", b"\n") else 0)


def _as_text(head: bytes, complete: bool) -> str | None:
    """``head`` decoded as UTF-8 (a sequence cut at the end of a partial read is dropped),
    or None if it looks binary."""
    if b"\x00" in head[:8192]:
        return None
    try:
        return codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=complete)
    except UnicodeDecodeError:
        return None


@workspace_bp.get("/api/file")
def preview_file():
    """Text preview of one file (see the module docstring). 400 for a folder, 404 missing."""
    sid = arg_str("session_id")
    path = arg_str("path")
    loc = _locate(sid, path)
    fd, st = safepath.open_file(loc)
    with os.fdopen(fd, "rb") as f:
        head = f.read(PREVIEW_BYTES)
        truncated = st.st_size > len(head)
        text = _as_text(head, not truncated)
        lines = _count_lines(f, head, st.st_size) if text is not None else None
    mime = mimetypes.guess_type(loc.name)[0] or ("text/plain" if text is not None else "application/octet-stream")
    return jsonify(path=path, name=loc.name, size=st.st_size, mtime=st.st_mtime, mime=mime,
                   binary=text is None, image=mime.startswith("image/"), content=text,
                   truncated=truncated if text is not None else False, lines=lines,
                   raw_url="/api/file/raw?" + urlencode({"session_id": sid, "path": path}))


@workspace_bp.get("/api/file/raw")
def raw_file():
    """The file's bytes (see the module docstring); ``download=1`` forces an attachment."""
    sid = arg_str("session_id")
    loc = _locate(sid, arg_str("path"))
    fd, st = safepath.open_file(loc)
    mime = mimetypes.guess_type(loc.name)[0] or "application/octet-stream"
    inline = (mime in INLINE_TYPES or mime.startswith(("audio/", "video/"))) and not arg_bool("download", False)
    resp = send_file(os.fdopen(fd, "rb"), mimetype=mime, as_attachment=not inline,
                     download_name=loc.name, conditional=False, etag=False, max_age=0)
    resp.content_length = st.st_size
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "sandbox"
    resp.headers["Cache-Control"] = "no-cache"
    return resp


# ---------------------------------------------------------------- writing


def _text_field(body: dict) -> bytes:
    return field(body, "content", str).encode("utf-8")


@workspace_bp.post("/api/file/save")
def save_file():
    """``{session_id, path, content, expected_mtime?}`` → ``{ok, path, size, mtime}``."""
    body = json_body()
    sid = field(body, "session_id", str)
    path = field(body, "path", str)
    expected = field(body, "expected_mtime", (int, float), required=False)
    loc = _locate(sid, path)
    st = safepath.write_file(loc, _text_field(body), expected_mtime=expected)
    return jsonify(ok=True, path=path, size=st.st_size, mtime=st.st_mtime)


@workspace_bp.post("/api/file/create")
def create_file():
    """``{session_id, path, content?, kind?}`` → ``{ok, path, kind}``; 409 if it exists."""
    body = json_body()
    sid = field(body, "session_id", str)
    path = field(body, "path", str)
    kind = field(body, "kind", str, required=False, default="file")
    if kind not in ("file", "dir"):
        raise ApiError("kind must be 'file' or 'dir'")
    content = field(body, "content", str, required=False, default="")
    loc = _locate(sid, path, follow_final=False)
    if kind == "dir":
        safepath.make_dir(loc)
    else:
        safepath.write_file(loc, content.encode("utf-8"), exclusive=True)
    return jsonify(ok=True, path=path, kind=kind)


@workspace_bp.post("/api/file/delete")
def delete_file():
    """``{session_id, path, recursive?}`` → ``{ok, path, kind}``."""
    body = json_body()
    sid = field(body, "session_id", str)
    path = field(body, "path", str)
    recursive = field(body, "recursive", bool, required=False, default=False)
    kind = safepath.remove(_locate(sid, path, follow_final=False), recursive=recursive)
    return jsonify(ok=True, path=path, kind=kind)


@workspace_bp.post("/api/file/rename")
def rename_file():
    """``{session_id, path, new_path | new_name}`` → ``{ok, path: new_path, old_path, new_path}``."""
    from .compat import rename_target
    body = json_body()
    sid = field(body, "session_id", str)
    path = field(body, "path", str)
    new_path = rename_target(body, path)
    src = _locate(sid, path, follow_final=False)
    dst = _locate(sid, new_path, follow_final=False)
    safepath.rename(src, dst)
    return jsonify(ok=True, path=new_path, old_path=path, new_path=new_path)


@contextmanager
def _upload_bytes(stream, size: int):
    """The uploaded file as a bytes-like object: a read-only map of werkzeug's spooled
    temp file (pages stay in the page cache, not our heap), or bytes when small."""
    if size > _CHUNK:
        try:
            fileno = stream.fileno()
        except (OSError, AttributeError, ValueError):
            fileno = None
        if fileno is not None:
            stream.flush()
            with mmap.mmap(fileno, size, access=mmap.ACCESS_READ) as mm:
                yield mm
            return
    stream.seek(0)
    yield stream.read()


@workspace_bp.post("/api/upload")
def upload():
    """Multipart upload into a workspace folder (see the module docstring)."""
    cap = app_state().config.max_upload_bytes
    too_big = f"the upload is larger than the {cap / 1048576:g} MiB limit"
    if request.content_length is not None and request.content_length > cap + MULTIPART_SLACK:
        raise ApiError(too_big, 413)
    request.max_content_length = cap + MULTIPART_SLACK  # werkzeug enforces it while parsing
    sid = request.form.get("session_id") or ""
    if not sid:
        raise ApiError("missing form field 'session_id'")
    folder = request.form.get("path", "")
    overwrite = request.form.get("overwrite", "") in ("1", "true")
    part = request.files.get("file")
    if part is None:
        raise ApiError("missing file part 'file'")
    name = safepath.upload_name(part.filename or "", "file name")
    loc = _locate(sid, folder).child(name)
    part.stream.seek(0, os.SEEK_END)
    size = part.stream.tell()
    if size > cap:
        raise ApiError(too_big, 413)
    with _upload_bytes(part.stream, size) as data:
        # a folder that does not exist yet is made, as the upstream's upload does (walked
        # by descriptor without following links: api.safepath)
        st = safepath.write_file(loc, data, exclusive=not overwrite, create_dirs=True)
    return jsonify(ok=True, path=_join(folder, name), size=st.st_size, mtime=st.st_mtime)


def init_app(app: Flask) -> None:
    """Register the workspace blueprint."""
    app.register_blueprint(workspace_bp)
