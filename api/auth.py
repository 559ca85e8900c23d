"""Password auth and the request gate every request passes (docs/architecture.md §7).

:func:`init_app` installs one ``before_request`` hook that runs, in order: the Host
allow-list (:mod:`api.hosts`, against DNS rebinding: an unknown name answers 400 JSON
before anything else runs), the login check, then CSRF (:mod:`api.csrf`); and one
``after_request`` hook that adds the security headers (:mod:`api.security_headers`).

Auth is on when a password is set: ``--password-file`` / ``--password`` /
``HERMES_WEBUI_PASSWORD`` (the "config" source, wins) or a scrypt hash in settings.json
(the "settings" source, set with ``POST /api/settings {password}``). With auth on, every
path is closed by default except :data:`PUBLIC_PATHS` and ``/static/…``: ``/api/*`` and
``/v1/*`` answer 401 JSON, other pages redirect to ``/login?next=<the page>``. ``/health``
stays open but says only ``{status: "ok"}``. API clients may instead send
``Authorization: Bearer <password>`` (rate-limited like logins; needs no CSRF token,
since browsers never attach it on their own).

A login is a signed, timestamped cookie (itsdangerous, key in ``<state>/auth_secret.key``,
mode 0600) holding ``{id, csrf, pw}``: ``csrf`` is the login's CSRF token, ``pw`` a keyed
fingerprint of the current password, so changing the password ends every login. Logins
survive restarts, end after ``--login-lifetime-seconds``, and logout revokes the id in
settings.json. ``flask.g.csrf_token`` is the login's token on every request; with auth
off it is the server's page token (stable, derived from the signing key), so the page's
``<meta name="csrf-token">`` always carries one.

Failed logins are limited to 5 per client and 30 in all (``--max-failed-logins-per-minute``)
per minute (429 JSON with ``Retry-After``). With ``--trust-proxy`` the client address
comes from ``X-Forwarded-For``, but only on connections from ``--trusted-proxies`` and
only ``--proxy-hops`` entries deep (:class:`api.hosts.TrustedProxyMiddleware`).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Flask, g, jsonify, redirect, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from urllib.parse import urlencode

from .atomic import atomic_write_bytes
from .app import auth_state
from .csrf import check_csrf
from .hosts import HostPolicy, TrustedProxyMiddleware, parse_allowed_hosts, parse_trusted_proxies
from .httputil import ApiError, error_response, field, json_body
from .security_headers import add_security_headers
from .settings import SettingsStore, SettingsUnreadable, verify_password
from .settings_routes import settings_bp

log = logging.getLogger(__name__)

COOKIE_NAME = "hermes_login"
SECRET_FILE = "auth_secret.key"
MAX_FAILURES = 5
MAX_FAILURES_ALL_CLIENTS = 30
FAILURE_WINDOW_SECONDS = 60.0
MAX_REVOKED = 10_000
PUBLIC_PATHS = frozenset({"/login", "/health", "/favicon.ico", "/api/auth/login", "/api/auth/status",
                          "/manifest.webmanifest", "/sw.js"})
PUBLIC_PREFIXES = ("/static/",)
API_PREFIXES = ("/api/", "/v1/")
auth_bp = Blueprint("auth", __name__)


# ---------------------------------------------------------------- building blocks


def load_or_create_secret(state_dir: Path) -> bytes:
    """The cookie-signing key in ``<state_dir>/auth_secret.key`` (64 hex chars, mode 0600).

    Created atomically on first use; a damaged key is replaced (which only ends logins).
    Raises ``OSError`` if the file exists but cannot be read.
    """
    path = Path(state_dir) / SECRET_FILE
    try:
        raw = path.read_bytes().strip()
        key = bytes.fromhex(raw.decode("ascii"))
    except FileNotFoundError:
        key = b""
    except (ValueError, UnicodeDecodeError):
        log.warning("%s is damaged; making a new key (everyone must log in again)", path)
        key = b""
    if len(key) < 32:
        key = secrets.token_bytes(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, key.hex().encode("ascii") + b"\n", mode=0o600)
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return key


class LoginRateLimiter:
    """At most ``limit`` failed attempts per client, and ``total_limit`` from all clients
    together, within ``window`` seconds.

    :meth:`begin` reserves an attempt before the password is checked, so concurrent
    guesses cannot slip past either limit; :meth:`finish` keeps it as a failure or, on
    success, forgets the client's failures (they stay counted in the total, so one
    right password does not reopen the ceiling for guessers). The total is the ceiling
    for guessers who rotate addresses (a /64 of IPv6, forged proxy headers): once it
    is reached every client waits, including the owner, whose existing logins keep
    working.
    """

    def __init__(self, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW_SECONDS,
                 clock=time.monotonic, max_clients: int = 10_000, total_limit: int = MAX_FAILURES_ALL_CLIENTS):
        self.limit, self.window, self._clock, self._max_clients = limit, window, clock, max_clients
        self.total_limit = total_limit
        self._lock = threading.Lock()
        self._attempts: dict[str, list[float]] = {}
        self._all: list[float] = []          # every reserved or failed attempt, oldest first

    def begin(self, client: str) -> float:
        """0.0 if ``client`` may try now (the attempt is reserved), else seconds to wait."""
        now = self._clock()
        with self._lock:
            recent = [t for t in self._attempts.get(client, ()) if now - t < self.window]
            if len(recent) >= self.limit:
                self._attempts[client] = recent
                return max(0.001, self.window - (now - recent[0]))
            while self._all and now - self._all[0] >= self.window:
                self._all.pop(0)
            if len(self._all) >= self.total_limit:
                return max(0.001, self.window - (now - self._all[0]))
            recent.append(now)
            self._all.append(now)
            self._attempts[client] = recent
            if len(self._attempts) > self._max_clients:
                self._prune(now)
            return 0.0

    def finish(self, client: str, ok: bool) -> None:
        """Record the outcome of the attempt reserved by :meth:`begin`."""
        if ok:
            with self._lock:
                mine = self._attempts.pop(client, None)
                if mine and mine[-1] in self._all:
                    self._all.remove(mine[-1])   # a success is not a failure

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._attempts.items() if not v or now - v[-1] >= self.window]:
            del self._attempts[key]
        while len(self._attempts) > self._max_clients:
            self._attempts.pop(next(iter(self._attempts)))


@dataclass(frozen=True)
class Login:
    """One logged-in browser: ``id`` (revocable), ``csrf`` token, ``issued_at`` epoch seconds."""

    id: str
    csrf: str
    issued_at: float


class AuthState:
    """The password, the signing key, revoked logins and the rate limiter of one app."""

    def __init__(self, config, settings: SettingsStore):
        self.config = config
        self.settings = settings
        self.lifetime = float(config.login_lifetime_seconds)
        self.limiter = LoginRateLimiter(total_limit=config.max_failed_logins_per_minute)
        self.hosts = HostPolicy(config.host, parse_allowed_hosts(config.allowed_hosts))
        self.secret = load_or_create_secret(config.state_dir)
        # With auth off the page still gets a token (stable across restarts), so a request
        # with neither Origin nor Referer can prove it came from the page (see _check_csrf).
        self.page_token = hmac.new(self.secret, b"hermes-webui.page-csrf", hashlib.sha256).hexdigest()
        self._serializer = URLSafeTimedSerializer(self.secret, salt="hermes-webui.login")
        self._lock = threading.Lock()
        self._verify_slots = threading.BoundedSemaphore(2)   # scrypt takes 32 MiB each
        data = settings.snapshot()
        self._hash: str | None = data.get("password_hash") or None
        self._revoked = {k: v for k, v in (data.get("revoked_logins") or {}).items()
                         if isinstance(v, (int, float))}
        self._bearer_cache: dict[bytes, str] = {}

    @property
    def password_source(self) -> str | None:
        """``"config"`` (flag/env), ``"settings"`` (stored hash) or None (auth off)."""
        if self.config.password:
            return "config"
        return "settings" if self._hash else None

    @property
    def enabled(self) -> bool:
        return self.password_source is not None

    def _fingerprint(self) -> str:
        material = ("config:" + self.config.password) if self.config.password else ("settings:" + (self._hash or ""))
        return hmac.new(self.secret, material.encode("utf-8"), hashlib.sha256).hexdigest()[:24]

    def check_password(self, password: str) -> bool:
        """True if ``password`` is the current password (a slow hash for a stored one)."""
        if self.config.password:
            return hmac.compare_digest(password.encode("utf-8"), self.config.password.encode("utf-8"))
        stored = self._hash
        if not stored:
            return False
        with self._verify_slots:
            return verify_password(password, stored)

    def check_bearer(self, token: str) -> bool:
        """:meth:`check_password` with a keyed cache of accepted tokens (cleared on change)."""
        key = hmac.new(self.secret, token.encode("utf-8"), hashlib.sha256).digest()
        fingerprint = self._fingerprint()
        with self._lock:
            if self._bearer_cache.get(key) == fingerprint:
                return True
        ok = self.check_password(token)
        if ok:
            with self._lock:
                if len(self._bearer_cache) >= 64:
                    self._bearer_cache.clear()
                self._bearer_cache[key] = fingerprint
        return ok

    def set_password_hash(self, new_hash: str) -> None:
        """Adopt a newly stored hash: every existing login and bearer token stops working."""
        with self._lock:
            self._hash = new_hash
            self._revoked = {}
            self._bearer_cache.clear()

    def new_login(self) -> tuple[str, Login]:
        """A fresh login and its signed cookie value."""
        login = Login(secrets.token_urlsafe(16), secrets.token_urlsafe(32), time.time())
        value = self._serializer.dumps({"id": login.id, "csrf": login.csrf, "pw": self._fingerprint()})
        return value, login

    def login_from_cookie(self, value: str | None) -> Login | None:
        """The login a cookie value proves, or None if absent, forged, expired, revoked,
        or issued under another password."""
        if not value or not self.enabled:
            return None
        try:
            data, stamp = self._serializer.loads(value, max_age=self.lifetime, return_timestamp=True)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("id", "csrf", "pw")):
            return None
        if not hmac.compare_digest(data["pw"], self._fingerprint()):
            return None
        with self._lock:
            if data["id"] in self._revoked:
                return None
        return Login(data["id"], data["csrf"], stamp.timestamp())

    def revoke(self, login: Login) -> None:
        """End ``login`` now and (best effort) across restarts, via settings.json."""
        expiry = login.issued_at + self.lifetime + 60
        with self._lock:
            self._revoked[login.id] = expiry

        def change(data: dict) -> None:
            now = time.time()
            kept = {k: v for k, v in (data.get("revoked_logins") or {}).items()
                    if isinstance(v, (int, float)) and v > now}
            kept[login.id] = expiry
            data["revoked_logins"] = dict(sorted(kept.items(), key=lambda kv: kv[1])[-MAX_REVOKED:])

        try:
            self.settings.update(change)
        except (SettingsUnreadable, OSError) as exc:
            log.error("logout could not be saved (it holds until restart): %s", exc)

    def login_response(self, payload: dict):
        """``payload`` + ``csrf_token`` as JSON, with a new login cookie for this client."""
        value, login = self.new_login()
        g.auth_login, g.csrf_token = login, login.csrf
        resp = jsonify({**payload, "csrf_token": login.csrf})
        resp.set_cookie(COOKIE_NAME, value, max_age=max(1, math.ceil(self.lifetime)), httponly=True,
                        samesite="Strict", secure=request.is_secure, path="/")
        return resp


# ---------------------------------------------------------------- request checks


def _host_header() -> str | None:
    """The Host the client asked for (the forwarded one behind a trusted proxy), or None."""
    return request.environ.get("HTTP_HOST")


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _is_api(path: str) -> bool:
    return path.startswith(API_PREFIXES) or path in ("/api", "/v1")


def _too_many(wait: float):
    resp = error_response(f"too many failed attempts; try again in {math.ceil(wait)} s", 429)
    resp.headers["Retry-After"] = str(math.ceil(wait))
    return resp


def limited_check(auth: AuthState, check) -> tuple[object | None, bool]:
    """Run ``check()`` (a password comparison → bool) under the per-client failure limit
    that logins use: ``(the 429 answer, False)`` while this client must wait, else
    ``(None, the result)``; a failure counts towards the limit."""
    client = request.remote_addr or "?"
    wait = auth.limiter.begin(client)
    if wait:
        return _too_many(wait), False
    ok = check()
    auth.limiter.finish(client, ok)
    return None, ok


def _check_bearer(auth: AuthState, token: str):
    client = request.remote_addr or "?"
    refusal, ok = limited_check(auth, lambda: auth.check_bearer(token))
    if refusal is not None:
        return refusal
    if not ok:
        log.warning("wrong bearer password from %s for %s", client, request.path)
        return error_response("login required", 401)
    g.auth_bearer = True
    return None


def _require_login(auth: AuthState):
    """None if the request may go on, else the 401 / redirect / reduced answer."""
    path = request.path
    if _is_public(path):
        if path == "/health" and g.auth_login is None:
            return jsonify(status="ok")
        return None
    if g.auth_login is not None:
        return None
    if _is_api(path):
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer " and header[7:].strip():
            return _check_bearer(auth, header[7:].strip())
        return error_response("login required", 401)
    if request.method in ("GET", "HEAD"):  # back to this page after logging in
        here = request.full_path.rstrip("?")
        return redirect("/login" if here == "/" else "/login?" + urlencode({"next": here}), code=302)
    return error_response("login required", 401)


def _before_request():
    auth = auth_state()
    refused_host = auth.hosts.refusal(_host_header())
    if refused_host is not None:
        return error_response(refused_host, 400)
    g.auth_bearer = False
    g.auth_login = auth.login_from_cookie(request.cookies.get(COOKIE_NAME))
    if g.auth_login is not None:
        g.csrf_token = g.auth_login.csrf
    else:
        g.csrf_token = "" if auth.enabled else auth.page_token
    if auth.enabled:
        refusal = _require_login(auth)
        if refusal is not None:
            return refusal
    return check_csrf(auth, g.auth_login, g.auth_bearer)


# ---------------------------------------------------------------- routes


@auth_bp.post("/api/auth/login")
def login():
    """Body ``{password: str}`` → ``{ok: true, auth_enabled, logged_in, csrf_token}`` and
    the login cookie (HttpOnly, SameSite=Strict, Secure under https).

    Errors: 400 bad body or no password set; 401 wrong password; 429 after 5 failures
    from this client within a minute (``Retry-After`` in seconds), even for the right one.
    """
    auth = auth_state()
    password = field(json_body(), "password", str)
    if not auth.enabled:
        raise ApiError("no password is set on this server; nothing to log in to")
    client = request.remote_addr or "?"
    wait = auth.limiter.begin(client)
    if wait:
        log.warning("login from %s refused: too many failures", client)
        return _too_many(wait)
    ok = auth.check_password(password)
    auth.limiter.finish(client, ok)
    if not ok:
        log.warning("failed login from %s", client)
        return error_response("wrong password", 401)
    log.info("login from %s", client)
    return auth.login_response({"ok": True, "auth_enabled": True, "logged_in": True})


@auth_bp.post("/api/auth/logout")
def logout():
    """End this login (the cookie is cleared and its id revoked) → ``{ok: true}``."""
    if g.auth_login is not None:
        auth_state().revoke(g.auth_login)
    g.csrf_token = ""
    resp = jsonify(ok=True)
    resp.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Strict", secure=request.is_secure)
    return resp


@auth_bp.get("/api/auth/status")
def status():
    """``{auth_enabled: bool, logged_in: bool, csrf_token?: str}`` (the token when logged in)."""
    auth = auth_state()
    out = {"auth_enabled": auth.enabled, "logged_in": g.auth_login is not None}
    if g.auth_login is not None:
        out["csrf_token"] = g.auth_login.csrf
    return jsonify(out)


def init_app(app: Flask) -> None:
    """Load settings.json and the signing key, register the auth and settings routes and
    the request hooks; with ``--trust-proxy``, honour X-Forwarded-* from the trusted proxies.

    Raises :class:`api.settings.SettingsUnreadable` if settings.json is damaged, and
    ``ValueError`` for a malformed ``--allowed-hosts`` or ``--trusted-proxies``.
    """
    config = app.extensions["hermes"].config
    settings = SettingsStore(config.state_dir)
    app.extensions["hermes_settings"] = settings
    app.extensions["hermes_auth"] = AuthState(config, settings)
    if config.trust_proxy:
        app.wsgi_app = TrustedProxyMiddleware(app.wsgi_app, parse_trusted_proxies(config.trusted_proxies),
                                              config.proxy_hops)
    app.register_blueprint(auth_bp)
    app.register_blueprint(settings_bp)
    app.before_request(_before_request)
    app.after_request(add_security_headers)
