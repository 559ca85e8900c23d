"""``GET /api/export/all``: the "Export all chats" button's download, the archive of
:func:`api.backup.export_all` (every profile, attachments and projects included)."""
from __future__ import annotations

import os
import tempfile
import time

from flask import Blueprint, Flask, send_file

from .app import app_state
from .backup import export_all

bp = Blueprint("backup", __name__)


@bp.get("/api/export/all")
def export_everything():
    """A ZIP download named ``hermes-webui-backup-YYYY-MM-DD.zip``; 500 if it cannot be
    written (the temporary file is removed either way)."""
    state_dir = app_state().config.state_dir
    fd, path = tempfile.mkstemp(prefix=".export-", suffix=".zip", dir=state_dir)
    os.close(fd)
    try:
        export_all(state_dir, path)
        handle = open(path, "rb")
    finally:
        os.unlink(path)  # the open handle keeps the bytes until the response is sent
    name = time.strftime("hermes-webui-backup-%Y-%m-%d.zip")
    return send_file(handle, mimetype="application/zip", as_attachment=True, download_name=name)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
