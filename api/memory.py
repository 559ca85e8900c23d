"""Agent memory: ``MEMORY.md`` and ``USER.md``, read and edited over HTTP.

The folder is the profile's (:func:`api.profiles.memory_dir`): ``<state>/memory`` by
default; with ``--agent hermes`` it is hermes-agent's own ``$HERMES_HOME/memories``
(``tools/memory_tool.get_memory_dir``), so the agent reads what is saved here at its next
turn. (Hermes keeps entries separated by lines holding ``§``; this editor keeps the text
as it is.)

Endpoints (blueprint ``memory``):

- ``GET /api/memory`` → ``{files: [{file, exists, content, size, mtime, error?}]}`` for
  ``MEMORY.md`` then ``USER.md``; a missing file has ``exists: false, content: "",
  mtime: null``; a symlink is not read (``error`` says so).
- ``POST /api/memory/write {file, content, expected_mtime?}`` → ``{file, size, mtime}``.
  ``file`` is ``MEMORY.md`` or ``USER.md`` (400 otherwise), or the upstream's ``section``
  (``memory`` | ``user``), answered with its ``ok`` and ``section`` too; the write is atomic; a symlink
  is refused (400); ``expected_mtime`` is the ``mtime`` the client read (``0`` for a file
  that did not exist): if the file changed since, 409 and nothing is written.
"""
from __future__ import annotations

import os

from flask import Blueprint, Flask, jsonify

from . import safepath
from .httputil import ApiError, field, json_body
from .profiles import memory_dir
from .safepath import PathError

memory_bp = Blueprint("memory", __name__)

FILES = ("MEMORY.md", "USER.md")
MAX_BYTES = 1024 * 1024


def _missing(name: str) -> dict:
    return {"file": name, "exists": False, "content": "", "size": 0, "mtime": None}


def _read(root: str, name: str) -> dict:
    out = _missing(name)
    try:
        fd, st = safepath.open_file(safepath.locate(root, name, follow_final=False))
    except PathError as exc:
        if exc.status != 404:
            out.update(exists=True, error=exc.message)
        return out
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        out.update(exists=True, size=st.st_size, mtime=st.st_mtime, error="larger than 1 MiB; not shown")
        return out
    out.update(exists=True, content=raw.decode("utf-8", "replace"), size=st.st_size, mtime=st.st_mtime)
    return out


@memory_bp.get("/api/memory")
def read_memory():
    """``{files: [{file, exists, content, size, mtime, error?}]}`` (MEMORY.md, USER.md), and
    the upstream's ``memory``, ``user``, ``memory_mtime``, ``user_mtime`` (:func:`api.compat.memory_view`)."""
    from .compat import memory_view
    root = memory_dir()
    if not root.is_dir():
        return jsonify(memory_view([_missing(name) for name in FILES]))
    return jsonify(memory_view([_read(str(root), name) for name in FILES]))


@memory_bp.post("/api/memory/write")
def write_memory():
    """``{file | section, content, expected_mtime?}`` → ``{file, size, mtime}``; 400/409 as documented."""
    from .compat import memory_file
    body = json_body()
    name = memory_file(body)
    if name not in FILES:
        raise ApiError(f"file must be one of {', '.join(FILES)}")
    data = field(body, "content", str).encode("utf-8")
    if len(data) > MAX_BYTES:
        raise ApiError("memory files are limited to 1 MiB", 413)
    expected = field(body, "expected_mtime", (int, float), required=False)
    root = memory_dir()
    root.mkdir(parents=True, exist_ok=True)
    loc = safepath.locate(str(root), name, follow_final=False)
    st = safepath.write_file(loc, data, expected_mtime=expected)
    if "section" in body:  # the upstream's answer too
        return jsonify(ok=True, section=body["section"], file=name, size=st.st_size, mtime=st.st_mtime)
    return jsonify(file=name, size=st.st_size, mtime=st.st_mtime)


def init_app(app: Flask) -> None:
    """Register the memory blueprint."""
    app.register_blueprint(memory_bp)
