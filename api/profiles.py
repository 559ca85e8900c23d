"""Named profiles: each has its own sessions, skills, memory and workspace (issue 7).

Layout. The ``default`` profile keeps the state dir's own paths (``<state>/sessions``,
``<state>/skills``, ``<state>/memory``, ``<state>/workspace``); a profile ``work`` has
the same layout under ``<state>/profiles/work/``. With ``--agent hermes`` the skills and
memory folders are the agent's own, in hermes-agent's profile layout:
``$HERMES_HOME/skills`` and ``$HERMES_HOME/memories`` for ``default``,
``$HERMES_HOME/profiles/<name>/{skills,memories}`` for the others.

The active profile is per browser: the cookie ``hermes_profile``. A cookie that names no
existing profile means ``default``. Every route reaches the session store through
:func:`current_store` (``api.routes._store``), so a session of one profile is simply not
found (404) under another. Stores are created on first use and cached; a profile's
start-up self-heal (:func:`api.session_recovery.recover_all_sessions_on_startup`) runs
then, before anything can write to it.

Endpoints (blueprint ``profiles``):

- ``GET /api/profiles`` → ``{active, profiles: [{name, active: bool, default: bool}]}``
- ``POST /api/profile/switch {name}`` → same shape, and sets the cookie. 404 unknown.
- ``POST /api/profile/create {name}`` → ``{profile: {name}}``. 400 bad name, 409 exists.
- ``POST /api/profile/delete {name}`` → ``{ok: true, active}``; removes
  ``<state>/profiles/<name>`` with its sessions, skills, memory and workspace (hermes-agent's
  own profile folder is left alone). 400 for ``default``, 404 unknown, 409 while one of
  its sessions has a live stream. A browser whose cookie named it falls back to ``default``.

Names: ``^[a-z0-9][a-z0-9_-]{0,63}$`` (hermes-agent's rule), ``default`` reserved.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import threading
from pathlib import Path

from flask import Blueprint, Flask, current_app, has_request_context, jsonify, request

from . import streams
from .httputil import ApiError, field, json_body
from .models import SessionStore
from .session_recovery import recover_all_sessions_on_startup

log = logging.getLogger(__name__)
profiles_bp = Blueprint("profiles", __name__)

DEFAULT = "default"
COOKIE = "hermes_profile"
COOKIE_MAX_AGE = 365 * 24 * 3600
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_PROFILES = 100


def validate_profile_name(name) -> str:
    """``name`` if it is a valid profile name; ApiError 400 otherwise."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ApiError("profile names are 1-64 characters: lowercase letters, digits, '-' and '_', "
                       "starting with a letter or digit")
    return name


def hermes_home(config) -> Path:
    """hermes-agent's home: ``config.hermes_home``, else ``$HERMES_HOME``, else ``~/.hermes``."""
    raw = config.hermes_home or os.environ.get("HERMES_HOME", "").strip() or str(Path.home() / ".hermes")
    return Path(raw).expanduser()


class ProfileRegistry:
    """The profiles of one state dir and their session stores (thread-safe)."""

    def __init__(self, config, default_store: SessionStore):
        self.config = config
        self.base = Path(config.state_dir) / "profiles"
        self._stores: dict[str, SessionStore] = {DEFAULT: default_store}
        self._lock = threading.Lock()

    def directory(self, name: str) -> Path:
        """``<state>`` for the default profile, ``<state>/profiles/<name>`` otherwise."""
        return Path(self.config.state_dir) if name == DEFAULT else self.base / validate_profile_name(name)

    def exists(self, name: str) -> bool:
        """True for ``default`` and for a valid name with a folder under ``<state>/profiles``."""
        return name == DEFAULT or (isinstance(name, str) and bool(NAME_RE.match(name))
                                   and (self.base / name).is_dir())

    def names(self) -> list[str]:
        """``default`` first, then the others sorted."""
        try:
            found = sorted(e.name for e in os.scandir(self.base)
                           if NAME_RE.match(e.name) and e.name != DEFAULT and e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            found = []
        return [DEFAULT] + found

    def store(self, name: str) -> SessionStore:
        """The profile's SessionStore, created (after its self-heal) on first use."""
        with self._lock:
            store = self._stores.get(name)
            if store is None:
                directory = self.directory(name)
                report = recover_all_sessions_on_startup(directory)
                if report["restored"]:
                    log.warning("profile %s: self-heal restored %d sessions", name, len(report["restored"]))
                store = self._stores[name] = SessionStore(directory / "sessions")
            return store

    def create(self, name: str) -> None:
        """Make the profile's folder; ApiError 400 bad name, 409 exists or too many."""
        validate_profile_name(name)
        if name == DEFAULT:
            raise ApiError("the default profile always exists", 409)
        with self._lock:
            if len(self.names()) >= MAX_PROFILES:
                raise ApiError(f"at most {MAX_PROFILES} profiles", 409)
            self.base.mkdir(parents=True, exist_ok=True)
            try:
                (self.base / name).mkdir()
            except FileExistsError:
                raise ApiError(f"profile {name!r} already exists", 409) from None

    def delete(self, name: str) -> None:
        """Close its store and remove its folder; ApiError 400 default, 404 unknown, 409 streaming."""
        validate_profile_name(name)
        if name == DEFAULT:
            raise ApiError("the default profile cannot be deleted")
        with self._lock:
            if not self.exists(name):
                raise ApiError(f"no profile {name!r}", 404)
            store = self._stores.get(name)
            if store is not None:
                for sid in store.index.with_active_stream():
                    if streams.is_alive((store.index.get(sid) or {}).get("active_stream_id")):
                        raise ApiError(f"profile {name!r} has a reply in progress; stop it first", 409)
                store.close()
                del self._stores[name]
            shutil.rmtree(self.base / name)

    def close_all(self) -> None:
        """Flush the indexes of the non-default stores (the server closes the default one)."""
        with self._lock:
            for name, store in list(self._stores.items()):
                if name != DEFAULT:
                    store.close()


def _registry() -> ProfileRegistry | None:
    return current_app.extensions.get("hermes_profiles")


def current_profile() -> str:
    """The request's profile (from its cookie), ``default`` outside a request or if unknown."""
    reg = _registry()
    if reg is None or not has_request_context():
        return DEFAULT
    name = request.cookies.get(COOKIE, DEFAULT)
    return name if reg.exists(name) else DEFAULT


def current_store() -> SessionStore:
    """The session store of the request's profile: the one function every route uses."""
    reg = _registry()
    if reg is None:
        return current_app.extensions["hermes"].store
    return reg.store(current_profile())


def profile_dir(name: str | None = None) -> Path:
    """Where profile ``name`` (default: the request's) keeps its state."""
    reg = _registry()
    if reg is None:
        return Path(current_app.extensions["hermes"].config.state_dir)
    return reg.directory(name or current_profile())


def _agent_dir(name: str | None, ours: str, hermes: str) -> Path:
    config = current_app.extensions["hermes"].config
    name = name or current_profile()
    if config.agent == "hermes":
        home = hermes_home(config)
        return home / hermes if name == DEFAULT else home / "profiles" / name / hermes
    return profile_dir(name) / ours


def skills_dir(name: str | None = None) -> Path:
    """The skills folder of profile ``name`` (default: the request's); see the module docstring."""
    return _agent_dir(name, "skills", "skills")


def memory_dir(name: str | None = None) -> Path:
    """The folder of MEMORY.md and USER.md of profile ``name`` (default: the request's)."""
    return _agent_dir(name, "memory", "memories")


# ---------------------------------------------------------------- routes


def _listing(active: str):
    reg = _registry()
    return jsonify(active=active, profiles=[{"name": n, "active": n == active, "default": n == DEFAULT}
                                            for n in reg.names()])


def _with_cookie(resp, name: str):
    resp.set_cookie(COOKIE, name, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax", path="/")
    return resp


@profiles_bp.get("/api/profiles")
def list_profiles():
    """``{active, profiles: [{name, active, default}]}`` (``default`` first)."""
    return _listing(current_profile())


@profiles_bp.post("/api/profile/switch")
def switch_profile():
    """``{name}`` → ``{active, profiles}``; sets this browser's cookie. 400 bad name, 404 unknown."""
    name = validate_profile_name(field(json_body(), "name", str))
    if not _registry().exists(name):
        raise ApiError(f"no profile {name!r}", 404)
    return _with_cookie(_listing(name), name)


@profiles_bp.post("/api/profile/create")
def create_profile():
    """``{name}`` → ``{profile: {name}}``. Does not switch to it. 400 bad name, 409 exists."""
    name = field(json_body(), "name", str)
    _registry().create(name)
    return jsonify(profile={"name": name})


@profiles_bp.post("/api/profile/delete")
def delete_profile():
    """``{name}`` → ``{ok: true, active}``; see the module docstring for what is removed."""
    name = field(json_body(), "name", str)
    was_active = current_profile() == name
    _registry().delete(name)
    resp = jsonify(ok=True, active=DEFAULT if was_active else current_profile())
    return _with_cookie(resp, DEFAULT) if was_active else resp


def init_app(app: Flask) -> None:
    """Register the blueprint and the profile registry (``app.extensions["hermes_profiles"]``)."""
    state = app.extensions["hermes"]
    registry = ProfileRegistry(state.config, state.store)
    app.extensions["hermes_profiles"] = registry
    atexit.register(registry.close_all)
    app.register_blueprint(profiles_bp)
