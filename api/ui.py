"""Serves the browser app in ``webui/`` (static files, no build step, no CDN).

- ``GET /`` → ``webui/index.html`` with ``__CSRF_TOKEN__`` replaced by the request's
  CSRF token (``flask.g.csrf_token``, set by the auth module; empty when auth is off),
  HTML-escaped. The page reads it from ``<meta name="csrf-token">`` and sends it back
  in ``X-CSRF-Token`` on every POST. ``Cache-Control: no-store`` (the token is per login).
  ``__MAX_MESSAGE_BYTES__`` becomes the server's ``max_message_bytes`` (an integer,
  UTF-8 bytes; ``<meta name="max-message-bytes">``), so the composer can say before
  sending that a message is over the limit; ``__MAX_ATTACHMENT_BYTES__`` likewise becomes
  ``max_attachment_bytes`` (``<meta name="max-attachment-bytes">``) for attached files.
- ``GET /favicon.ico`` → ``webui/favicon.svg`` (for browsers that ask before reading the page).
- ``GET /static/<path>`` → a file under ``webui/`` with one of :data:`STATIC_SUFFIXES`;
  404 (JSON) for anything else, including paths that leave ``webui/``. Served with
  ``Cache-Control: no-cache`` plus ETag / Last-Modified, so browsers revalidate cheaply
  and an upgrade is never hidden behind a stale cache.
"""
from __future__ import annotations

import html
from pathlib import Path

from flask import Blueprint, Response, g, redirect, request, send_from_directory

from .app import app_state, auth_state
from .httputil import ApiError

# webui/ beside api/: the checkout's folder, or hermes_webui/webui/ in an installed copy
WEBUI_DIR = Path(__file__).resolve().parent.parent / "webui"
STATIC_SUFFIXES = (".css", ".js", ".svg", ".png", ".ico", ".webmanifest", ".woff2")
CSRF_PLACEHOLDER = "__CSRF_TOKEN__"
LIMIT_PLACEHOLDER = "__MAX_MESSAGE_BYTES__"
ATTACHMENT_LIMIT_PLACEHOLDER = "__MAX_ATTACHMENT_BYTES__"
ui_bp = Blueprint("ui", __name__)


@ui_bp.get("/")
def index():
    """The single-page app, with the CSRF token and the message and attachment size
    limits filled into its meta tags."""
    page = (WEBUI_DIR / "index.html").read_text(encoding="utf-8")
    token = html.escape(str(g.get("csrf_token", "") or ""), quote=True)
    limit = str(int(app_state().config.max_message_bytes))
    page = page.replace(CSRF_PLACEHOLDER, token).replace(LIMIT_PLACEHOLDER, limit)
    page = page.replace(ATTACHMENT_LIMIT_PLACEHOLDER, str(int(app_state().config.max_attachment_bytes)))
    resp = Response(page, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def safe_next(value: str | None) -> str:
    """``value`` if it is a path on this server (``/…``, not ``//host`` or ``/\\host``,
    no scheme, no control characters), else ``/``: where a login may send the user."""
    if (not value or not value.startswith("/") or value.startswith(("//", "/\\"))
            or any(ord(c) < 0x20 or c == "\\" for c in value)):
        return "/"
    return value


@ui_bp.get("/login")
def login_page():
    """The login page. Without a password, or when already logged in, it redirects to
    ``next`` (a path on this server, :func:`safe_next`) or ``/``."""
    if not auth_state().enabled or g.auth_login is not None:
        return redirect(safe_next(request.args.get("next")), code=302)
    resp = send_from_directory(WEBUI_DIR, "login.html", max_age=0)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@ui_bp.get("/favicon.ico")
def favicon():
    """The app icon (an SVG) at the address browsers try by default."""
    return send_from_directory(WEBUI_DIR, "favicon.svg", mimetype="image/svg+xml", max_age=86400)


@ui_bp.get("/static/<path:filename>")
def static_file(filename: str):
    """CSS, JS and images of the app (404 for other files or anything outside ``webui/``)."""
    if not filename.endswith(STATIC_SUFFIXES):
        raise ApiError(f"no static file {filename[:80]!r}", 404)
    resp = send_from_directory(WEBUI_DIR, filename, max_age=0)
    resp.headers["Cache-Control"] = "no-cache"
    return resp
