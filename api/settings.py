"""``settings.json``: UI settings and the password hash (docs/architecture.md §2, §6).

The file is one JSON object, written atomically (:func:`api.atomic.atomic_write_bytes`,
mode 0600)::

    {"password_hash": "scrypt$32768$8$3$<salt b64>$<hash b64>" | absent,
     "revoked_logins": {"<login id>": <expiry, epoch seconds>},
     "ui": {"<name>": <any JSON value>}}

It fails closed: a settings file that exists but cannot be read or parsed (0 bytes, half
a file, not an object, a malformed hash) raises :class:`SettingsUnreadable`; the server
then refuses to start (exit code 2) and a running server refuses to write over it. An
unreadable file never means "no password".

Routes: ``GET /api/settings`` and ``POST /api/settings`` (registered by ``api.auth``).
"""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import secrets
import threading
from pathlib import Path

from flask import Blueprint, current_app, jsonify

from .app import auth_state
from .atomic import atomic_write_bytes
from .httputil import ApiError, field, json_body

SETTINGS_FILE = "settings.json"
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
UI_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MAX_UI_KEYS = 200
# scrypt at 32 MiB, ~0.3 s on one core (OWASP's N=2^15, r=8, p=3 row).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 3
_SCRYPT_MAXMEM = 256 * 1024 * 1024
_HASH_RE = re.compile(r"^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9+/=]{16,88})\$([A-Za-z0-9+/=]{32,88})$")

settings_bp = Blueprint("settings", __name__)


class SettingsUnreadable(RuntimeError):
    """settings.json exists but cannot be trusted; the message says what to do."""


# ---------------------------------------------------------------- password hashing


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``: ``scrypt$N$r$p$<salt b64>$<key b64>``."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                         maxmem=_SCRYPT_MAXMEM, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(key).decode()}"


def valid_hash(stored: object) -> bool:
    """True if ``stored`` is a hash string :func:`verify_password` can check."""
    if not isinstance(stored, str):
        return False
    m = _HASH_RE.fullmatch(stored)
    if not m:
        return False
    n, r, p = (int(x) for x in m.groups()[:3])
    return n >= 2 ** 10 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and 128 * r * n * 2 <= _SCRYPT_MAXMEM


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a :func:`hash_password` string.

    Takes ~0.3 s of CPU by design. False (never an exception) for a malformed hash.
    """
    if not valid_hash(stored):
        return False
    _, n, r, p, salt, key = stored.split("$")
    try:
        want = base64.b64decode(key, validate=True)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt, validate=True),
                             n=int(n), r=int(r), p=int(p), maxmem=_SCRYPT_MAXMEM, dklen=len(want))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got, want)


# ---------------------------------------------------------------- the file


def read_settings_file(path: Path) -> dict:
    """The parsed settings at ``path``; ``{}`` if the file does not exist.

    Raises :class:`SettingsUnreadable` if it exists but is unreadable, empty, not JSON,
    not an object, or holds a malformed password hash.
    """
    path = Path(path)
    advice = ("refusing to go on, because it may hold the password. Restore it from a backup, "
              "or delete it to run without the stored password and UI settings.")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise SettingsUnreadable(f"{path} is a folder, not the settings file: move it out of the state "
                                 "dir (or pass another --state-dir) and start again") from None
    except PermissionError:
        raise SettingsUnreadable(f"{path} cannot be read by this user: fix its owner or permissions "
                                 f"(e.g. chown/chmod it), or pass another --state-dir") from None
    except OSError as exc:
        raise SettingsUnreadable(f"{path} cannot be read ({exc.strerror or exc}): {advice}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        what = "it is empty" if not raw.strip() else f"it is not valid JSON ({exc})"
        raise SettingsUnreadable(f"{path} is damaged: {what}; {advice}") from None
    if not isinstance(data, dict):
        raise SettingsUnreadable(f"{path} is damaged: it is not a JSON object; {advice}")
    if "password_hash" in data and data["password_hash"] is not None and not valid_hash(data["password_hash"]):
        raise SettingsUnreadable(f"{path} is damaged: its password_hash is malformed; {advice}")
    for key, typ in (("revoked_logins", dict), ("ui", dict)):
        if key in data and not isinstance(data[key], typ):
            raise SettingsUnreadable(f"{path} is damaged: {key!r} is not an object; {advice}")
    return data


class SettingsStore:
    """settings.json of one state dir, cached in memory; writes are atomic and serialised.

    The constructor reads the file and raises :class:`SettingsUnreadable` if it is
    damaged. :meth:`update` re-reads the file first, so a file damaged while the server
    runs is never written over (the error propagates; nothing changes on disk).
    """

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / SETTINGS_FILE
        self._lock = threading.Lock()
        self._data = read_settings_file(self.path)

    def snapshot(self) -> dict:
        """A deep copy of the current settings."""
        with self._lock:
            return copy.deepcopy(self._data)

    def update(self, change) -> dict:
        """Apply ``change(data) -> None`` (mutating ``data``) and write the result atomically.

        Returns a copy of the new settings. Raises :class:`SettingsUnreadable` or
        ``OSError`` with the file untouched.
        """
        with self._lock:
            data = read_settings_file(self.path)
            change(data)
            blob = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.path, blob + b"\n", mode=0o600)
            self._data = data
            return copy.deepcopy(data)


def password_is_set(config) -> bool:
    """True if a password protects the server started with ``config`` (the flag or env,
    or a hash in settings.json). Raises :class:`SettingsUnreadable` for a damaged file."""
    if config.password:
        return True
    return bool(read_settings_file(Path(config.state_dir) / SETTINGS_FILE).get("password_hash"))


# ---------------------------------------------------------------- routes


def _public_view(data: dict) -> dict:
    return {"settings": dict(data.get("ui") or {}), "password_set": auth_state().enabled,
            "password_source": auth_state().password_source}


@settings_bp.get("/api/settings")
def get_settings():
    """``{settings: {name: value}, password_set: bool, password_source: "config"|"settings"|null}``.

    The password and its hash never leave the server.
    """
    return jsonify(_public_view(auth_state().settings.snapshot()))


def _checked_ui_changes(body: dict) -> dict:
    changes = field(body, "settings", dict, required=False, default={})
    for key in changes:
        if not UI_KEY_RE.fullmatch(key):
            raise ApiError(f"setting name {key[:80]!r} is not allowed (letters, digits, _ . -; at most 64)")
    return changes


@settings_bp.post("/api/settings")
def post_settings():
    """Set UI settings and/or the password.

    Body: ``{password?: str (8-1024 chars), settings?: {name: JSON value | null}}``; a
    ``null`` value deletes that setting. Answers like ``GET /api/settings``; when the
    password was set or changed the response also carries ``csrf_token`` and a fresh
    login cookie for this client, and every other login ends.

    Errors: 400 bad input; 409 if the password comes from ``--password`` /
    ``HERMES_WEBUI_PASSWORD`` (change it there); 500 if settings.json is damaged (it
    is left as it is). Changing an existing password needs a login, like every route
    once a password is set.
    """
    body = json_body()
    password = field(body, "password", str, required=False)
    changes = _checked_ui_changes(body)
    if password is not None:
        if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
            raise ApiError(f"password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
        if auth_state().password_source == "config":
            raise ApiError("the password is set with --password or HERMES_WEBUI_PASSWORD; change it there", 409)
    new_hash = hash_password(password) if password is not None else None

    def change(data: dict) -> None:
        ui = dict(data.get("ui") or {})
        for key, value in changes.items():
            if value is None:
                ui.pop(key, None)
            else:
                ui[key] = value
        if len(ui) > MAX_UI_KEYS:
            raise ApiError(f"at most {MAX_UI_KEYS} settings")
        data["ui"] = ui
        if new_hash is not None:
            data["password_hash"] = new_hash
            data["revoked_logins"] = {}

    try:
        data = auth_state().settings.update(change)
    except SettingsUnreadable as exc:
        current_app.logger.error("%s", exc)
        raise ApiError("settings.json is damaged; nothing was changed (see the server log)", 500) from None
    if new_hash is None:
        return jsonify(_public_view(data))
    auth_state().set_password_hash(new_hash)
    return auth_state().login_response(_public_view(data))
