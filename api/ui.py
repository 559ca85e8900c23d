"""Serves the browser app in ``webui/`` (static files, no build step, no CDN)."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory

import webui

WEBUI_DIR = Path(webui.__file__).resolve().parent
ui_bp = Blueprint("ui", __name__)


@ui_bp.get("/")
def index():
    """The single-page app."""
    resp = send_from_directory(WEBUI_DIR, "index.html", max_age=0)
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@ui_bp.get("/static/<path:filename>")
def static_file(filename: str):
    """CSS, JS and images of the app (404 for anything outside ``webui/``)."""
    resp = send_from_directory(WEBUI_DIR, filename, max_age=0)
    resp.headers["Cache-Control"] = "no-cache"
    return resp
