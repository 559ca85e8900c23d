"""CSRF protection: is a state-changing request from a page of this server?

Every method but GET/HEAD/OPTIONS/TRACE is judged (:func:`check_csrf`): an ``Origin``
that is not a page of this server (compared with the Host allow-list of
:mod:`api.hosts`, not with the request's own Host), a foreign ``Referer`` when Origin is
absent, or ``Sec-Fetch-Site: cross-site|same-site`` is refused with 403 always. With
auth on the request must also carry ``X-CSRF-Token`` equal to the login's token
(``/api/auth/login`` and bearer-authenticated API calls excepted). With auth off a
request with neither Origin nor Referer (not a modern browser) needs
``Content-Type: application/json`` (which a form cannot send) or the page's token.
"""
from __future__ import annotations

import hmac

from flask import request

from .httputil import error_response

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _host_header() -> str | None:
    """The Host the client asked for (the forwarded one behind a trusted proxy), or None."""
    return request.environ.get("HTTP_HOST")


def origin_verdict(hosts) -> str:
    """``"foreign"`` (an Origin that is not a page of this server, an opaque ``null``
    Origin, a foreign Referer when Origin is absent, or ``Sec-Fetch-Site`` cross-site or
    same-site), ``"same"`` (our own Origin or Referer, or ``Sec-Fetch-Site``
    same-origin/none) or ``"absent"`` (none of them: not a browser, or a very old one).

    "Ours" is decided by :meth:`api.hosts.HostPolicy.origin_is_ours`: the allow-list and
    this request's port, never the request's Host alone.
    """
    origin = request.headers.get("Origin")
    referer = request.headers.get("Referer")
    site = (request.headers.get("Sec-Fetch-Site") or "").strip().lower()
    if origin is not None and not hosts.origin_is_ours(origin, _host_header()):
        return "foreign"
    if origin is None and referer and not hosts.origin_is_ours(referer, _host_header()):
        return "foreign"
    if site in ("cross-site", "same-site"):
        return "foreign"
    if origin is not None or referer or site in ("same-origin", "none"):
        return "same"
    return "absent"


def sent_token(expected: str) -> bool:
    sent = request.headers.get(CSRF_HEADER, "")
    return bool(sent) and bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def check_csrf(auth, login, bearer: bool):
    """None if the current request may go on, else the 403 answer.

    ``auth``: the :class:`api.auth.AuthState` (``enabled``, ``page_token``, ``hosts``);
    ``login``: the request's login or None; ``bearer``: authenticated by a bearer
    password. Safe methods always pass.
    """
    if request.method in SAFE_METHODS:
        return None
    verdict = origin_verdict(auth.hosts)
    if verdict == "foreign":
        return error_response("cross-origin request refused", 403)
    if not auth.enabled:
        if verdict == "absent" and request.mimetype != "application/json" and not sent_token(auth.page_token):
            return error_response(f"refused: a state-changing request without an Origin or Referer header needs "
                                  f"Content-Type: application/json or the page's {CSRF_HEADER} header", 403)
        return None
    if bearer or request.path == "/api/auth/login":
        return None
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and verdict == "absent":
        return error_response(f"refused: a state-changing request needs an Origin header and {CSRF_HEADER}", 403)
    if login is None or not sent_token(login.csrf):
        return error_response(f"missing or wrong {CSRF_HEADER} header; reload the page", 403)
    return None


