"""Security headers on every response: a strict Content-Security-Policy (no inline
script or style, nothing from elsewhere: the app works on a LAN with no internet),
nosniff, no referrer, no framing; ``Cache-Control: no-store`` on auth and settings
answers.
"""
from __future__ import annotations

from flask import request

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

def add_security_headers(resp):
    """``after_request`` hook: the headers above, unless a route set its own."""
    for name, value in SECURITY_HEADERS.items():
        resp.headers.setdefault(name, value)
    if request.path.startswith("/api/auth/") or request.path == "/api/settings":
        resp.headers["Cache-Control"] = "no-store"
    return resp


