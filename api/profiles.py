"""Named profiles: each has its own sessions, skills, memory and workspace.

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
  Atomic with respect to turns: the check for live streams and the removal happen while
  every session lock of the profile is held, so a chat start either wins (the delete
  answers 409) or finds the profile gone (404); no agent is ever left running on a
  deleted profile.

Names: ``[a-z0-9][a-z0-9_-]{0,63}`` matched in full (hermes-agent's rule; ``"evil\n"`` is
refused), ``default`` reserved.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import secrets
import shutil
import threading
from contextlib import ExitStack
from pathlib import Path

from flask import Blueprint, Flask, current_app, has_request_context, jsonify, request

from .app import app_state
from . import streams
from .httputil import ApiError, field, json_body
from .models import SessionStore, session_id_of_file
from .session_recovery import recover_all_sessions_on_startup

log = logging.getLogger(__name__)
profiles_bp = Blueprint("profiles", __name__)

DEFAULT = "default"
COOKIE = "hermes_profile"
COOKIE_MAX_AGE = 365 * 24 * 3600
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # always .fullmatch: "$" matches before a final "\n"
TRASH_PREFIX = ".deleting-"  # a profile folder being removed; never a valid name
MAX_PROFILES = 100


def validate_profile_name(name) -> str:
    """``name`` if it is a valid profile name; ApiError 400 otherwise."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ApiError("profile names are 1-64 characters: lowercase letters, digits, '-' and '_', "
                       "starting with a letter or digit")
    return name


class ProfileRegistry:
    """The profiles of one state dir and their session stores (thread-safe)."""

    def __init__(self, config, default_store: SessionStore):
        self.config = config
        self.base = Path(config.state_dir) / "profiles"
        self._stores: dict[str, SessionStore] = {DEFAULT: default_store}
        self._deleting: set[str] = set()
        self._lock = threading.Lock()
        self._sweep_trash()

    def directory(self, name: str) -> Path:
        """``<state>`` for the default profile, ``<state>/profiles/<name>`` otherwise."""
        return Path(self.config.state_dir) if name == DEFAULT else self.base / validate_profile_name(name)

    def exists(self, name: str) -> bool:
        """True for ``default`` and for a valid name with a folder under ``<state>/profiles``."""
        return name == DEFAULT or (isinstance(name, str) and bool(NAME_RE.fullmatch(name))
                                   and name not in self._deleting and (self.base / name).is_dir())

    def names(self) -> list[str]:
        """``default`` first, then the others sorted."""
        try:
            found = sorted(e.name for e in os.scandir(self.base)
                           if NAME_RE.fullmatch(e.name) and e.name != DEFAULT and e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            found = []
        return [DEFAULT] + found

    def store(self, name: str) -> SessionStore:
        """The profile's SessionStore, created (after its self-heal) on first use."""
        with self._lock:
            if name in self._deleting:
                raise ApiError(f"profile {name!r} is being deleted", 404)
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
        """Remove the profile's folder; ApiError 400 default, 404 unknown, 409 streaming.

        1. Under the registry lock: mark it deleting, so no request reaches its store again.
        2. Take the lock of every session in its folder (re-listing until no new one
           appears), then check for live streams (409, and nothing changes) and move the
           folder aside to ``profiles/.deleting-<name>-<random>`` (one rename).
        3. With the locks released, remove that folder; litter of a crash at that point is
           swept at the next start.
        """
        validate_profile_name(name)
        if name == DEFAULT:
            raise ApiError("the default profile cannot be deleted")
        with self._lock:
            if not self.exists(name):
                raise ApiError(f"no profile {name!r}", 404)
            self._deleting.add(name)
            store = self._stores.get(name)
        folder = self.base / name
        trash = self.base / f"{TRASH_PREFIX}{name}-{secrets.token_hex(4)}"
        closed = False
        try:
            with ExitStack() as held:
                sids = self._lock_sessions(folder / "sessions", held)
                with streams.STREAMS_LOCK:
                    live = [ch for ch in streams.STREAMS.values() if ch.session_id in sids]
                if live:
                    raise ApiError(f"profile {name!r} has a reply in progress; stop it first", 409)
                if store is not None:
                    closed = True
                    store.close()
                os.rename(folder, trash)
        except BaseException:
            with self._lock:
                self._deleting.discard(name)
                if closed:  # the next request opens it afresh
                    self._stores.pop(name, None)
            raise
        with self._lock:
            self._stores.pop(name, None)
            self._deleting.discard(name)
        shutil.rmtree(trash, ignore_errors=True)

    @staticmethod
    def _lock_sessions(sessions: Path, held: ExitStack) -> set[str]:
        """Acquire (into ``held``) the lock of every session file in ``sessions``, listing
        again until a pass finds no new one (a request already past the registry may
        still be creating one); returns their ids."""
        locked: set[str] = set()
        while True:
            try:
                found = {sid for e in os.scandir(sessions) if (sid := session_id_of_file(e.name))}
            except FileNotFoundError:
                found = set()
            new = sorted(found - locked)
            if not new:
                return locked
            for sid in new:
                held.enter_context(streams._get_session_agent_lock(sid))
                locked.add(sid)

    def _sweep_trash(self) -> None:
        """Finish deletions a crash interrupted (``profiles/.deleting-*``)."""
        try:
            leftovers = [e.path for e in os.scandir(self.base)
                         if e.name.startswith(TRASH_PREFIX) and e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)

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
        return app_state().store
    return reg.store(current_profile())


def profile_dir(name: str | None = None) -> Path:
    """Where profile ``name`` (default: the request's) keeps its state."""
    reg = _registry()
    if reg is None:
        return Path(app_state().config.state_dir)
    return reg.directory(name or current_profile())


def _agent_dir(name: str | None, ours: str, hermes: str) -> Path:
    config = app_state().config
    name = name or current_profile()
    if config.agent == "hermes":
        home = config.hermes_home_dir
        return home / hermes if name == DEFAULT else home / "profiles" / name / hermes
    return profile_dir(name) / ours


def agent_home(name: str | None = None) -> dict:
    """``{home, profile}`` for a turn in profile ``name`` (default: the request's):
    hermes-agent's home of that profile (``$HERMES_HOME`` for ``default``,
    ``$HERMES_HOME/profiles/<name>`` otherwise, hermes-agent's own layout)."""
    name = name or current_profile()
    home = app_state().config.hermes_home_dir
    return {"home": home if name == DEFAULT else home / "profiles" / name, "profile": name}


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
