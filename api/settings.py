"""``settings.json``: per-profile settings and the password hash (docs/architecture.md §2, §6).

Flask-free (the routes are :mod:`api.settings_routes`). Each profile has one file in its
own folder (``<state>/settings.json`` for ``default``, ``<state>/profiles/<name>/settings.json``
otherwise), one JSON object, written atomically (:func:`api.atomic.atomic_write_bytes`,
mode 0600)::

    {"password_hash": "scrypt$32768$8$3$<salt b64>$<hash b64>" | absent,   (default's file only)
     "revoked_logins": {"<login id>": <expiry, epoch seconds>},              (default's file only)
     "ui": {"theme": "system"|"light"|"dark", "custom_instructions": str,
            "default_model": str, "send_key": "enter"|"ctrl-enter"}}

The password is server-wide: only the state dir's own file holds it. ``ui`` holds the
profile's settings, each one of :data:`FIELDS` (an absent one has its default); other
keys an older version stored are kept on disk but neither shown nor used.

It fails closed: a settings file that exists but cannot be read or parsed (0 bytes, half
a file, not an object, a malformed hash) raises :class:`SettingsUnreadable`; the server
then refuses to start (exit code 2) and a running server refuses to write over it. An
unreadable file never means "no password".
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

from dataclasses import dataclass
from typing import Any, Callable

from .atomic import atomic_write_bytes
from .errors import ApiError

SETTINGS_FILE = "settings.json"
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
INSTRUCTIONS_MAX_CHARS = 20_000
MODEL_MAX_BYTES = 400
# scrypt at 32 MiB, ~0.3 s on one core (OWASP's N=2^15, r=8, p=3 row).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 3
_SCRYPT_MAXMEM = 256 * 1024 * 1024
_HASH_RE = re.compile(r"^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9+/=]{16,88})\$([A-Za-z0-9+/=]{32,88})$")

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


# ---------------------------------------------------------------- per-profile settings


@dataclass(frozen=True)
class Field:
    """One per-profile setting: its value when unset, and ``check(value) -> value``
    (raises :class:`api.errors.ApiError` 400 with a sentence for a bad value)."""

    default: Any
    check: Callable[[Any], Any]
    help: str = ""


def _choice(name: str, *allowed: str):
    def check(value):
        if value not in allowed:
            raise ApiError(f"{name} must be one of {', '.join(allowed)}")
        return value
    return check


def _instructions(value):
    if not isinstance(value, str):
        raise ApiError("custom_instructions must be a string")
    if len(value) > INSTRUCTIONS_MAX_CHARS:
        raise ApiError(f"custom_instructions is {len(value):,} characters; at most {INSTRUCTIONS_MAX_CHARS:,}")
    return value


def _model(value):
    if not isinstance(value, str) or not value.strip():
        raise ApiError("default_model must be a model id from GET /api/models")
    if len(value.encode("utf-8")) > MODEL_MAX_BYTES:
        raise ApiError(f"default_model is over {MODEL_MAX_BYTES} bytes")
    return value


FIELDS: dict[str, Field] = {}


def register_field(name: str, default: Any, check: Callable[[Any], Any], help: str = "") -> None:
    """Add a per-profile setting (one line per feature that needs one; unknown names are refused)."""
    FIELDS[name] = Field(default, check, help)


register_field("theme", "system", _choice("theme", "system", "light", "dark"),
               "the page's colours: follow the system, or always light or dark")
register_field("custom_instructions", "", _instructions,
               "a system prompt sent with every turn of this profile (before a project's instructions)")
register_field("default_model", None, _model,
               "the model new chats start on (an id of GET /api/models); unset: the backend's default")
register_field("send_key", "enter", _choice("send_key", "enter", "ctrl-enter"),
               "Enter sends (Shift+Enter: new line), or Ctrl/Cmd+Enter sends (Enter: new line)")


def _flag(name: str):
    def check(value):
        if not isinstance(value, bool):
            raise ApiError(f"{name} must be true or false")
        return value
    return check


register_field("notify_on_reply", False, _flag("notify_on_reply"),
               "a browser notification when a reply finishes while the tab is in the background")
register_field("generate_titles", True, _flag("generate_titles"),
               "when a chat's first reply ends, the model names the chat (never over a title set by hand; "
               "not with the fake backend)")


def defaults() -> dict:
    """``{name: default}`` of every per-profile setting."""
    return {name: f.default for name, f in FIELDS.items()}


def stored_values(data: dict) -> dict:
    """The per-profile settings stored in a parsed settings file: known names only,
    values that pass their check (a value an older version stored badly reads as unset)."""
    out = {}
    for name, value in (data.get("ui") or {}).items():
        f = FIELDS.get(name)
        if f is None:
            continue
        try:
            out[name] = f.check(value)
        except ApiError:
            continue
    return out


def checked_changes(changes) -> dict:
    """``changes`` (``{name: value | null}``) checked against :data:`FIELDS`: ApiError 400
    for anything but an object, an unknown name or a bad value (nothing is stored then).
    ``null`` resets a setting to its default."""
    if not isinstance(changes, dict):
        raise ApiError("'settings' must be an object of setting names and values")
    out = {}
    for name, value in changes.items():
        f = FIELDS.get(name)
        if f is None:
            raise ApiError(f"unknown setting {str(name)[:80]!r}; the settings are: {', '.join(FIELDS)}")
        out[name] = None if value is None else f.check(value)
    return out


def apply_changes(data: dict, changes: dict) -> None:
    """Write checked ``changes`` into a parsed settings file's ``ui`` (``None`` deletes)."""
    ui = dict(data.get("ui") or {})
    for name, value in changes.items():
        if value is None:
            ui.pop(name, None)
        else:
            ui[name] = value
    data["ui"] = ui


def profile_settings(profile_dir: Path) -> dict:
    """The profile's settings with defaults filled in (``{name: value}`` for every field).

    Raises :class:`SettingsUnreadable` if the profile's settings.json is damaged.
    """
    return {**defaults(), **stored_values(read_settings_file(Path(profile_dir) / SETTINGS_FILE))}


_STORES: dict[str, SettingsStore] = {}
_STORES_LOCK = threading.Lock()


def store_for(profile_dir: Path) -> SettingsStore:
    """The :class:`SettingsStore` of a profile folder other than the state dir (whose store
    the auth layer owns), one per folder so its writes are serialised. Raises
    :class:`SettingsUnreadable` if the file is damaged."""
    key = str(Path(profile_dir).resolve())
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = SettingsStore(Path(profile_dir))
        return store
