"""The installable app: the web app manifest and the service worker (docs/api.md "Health and page").

- ``GET /manifest.webmanifest`` → ``webui/manifest.webmanifest`` as
  ``application/manifest+json`` (name, start URL, colours, icons under
  ``/static/icons/``).
- ``GET /sw.js`` → ``webui/sw.js`` as ``text/javascript`` with ``Cache-Control:
  no-cache`` (a browser checks it for a new version at every visit) and
  ``Service-Worker-Allowed: /``: served from the root, its scope is the whole app. It
  keeps the app shell and the last chat list on the device, so the page opens offline
  (see the file).

Both are public (:data:`api.auth.PUBLIC_PATHS`): a browser fetches the manifest without
cookies, and neither holds anything of a user's. Both fall under the app's CSP
(``default-src 'self'`` covers ``worker-src`` and ``manifest-src``).
"""
from __future__ import annotations

from flask import Blueprint, Flask, send_from_directory

from .ui import WEBUI_DIR

pwa_bp = Blueprint("pwa", __name__)


@pwa_bp.get("/manifest.webmanifest")
def manifest():
    """The web app manifest (``application/manifest+json``)."""
    resp = send_from_directory(WEBUI_DIR, "manifest.webmanifest", mimetype="application/manifest+json", max_age=0)
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@pwa_bp.get("/sw.js")
def service_worker():
    """The service worker script, for the scope ``/``."""
    resp = send_from_directory(WEBUI_DIR, "sw.js", mimetype="text/javascript", max_age=0)
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["Service-Worker-Allowed"] = "/"
    return resp


def init_app(app: Flask) -> None:
    """Register the manifest and service worker routes."""
    app.register_blueprint(pwa_bp)
