"""The WSGI app: :func:`create_app` builds it (docs/architecture.md §1); :func:`app_state` reaches it.

The app object is a factory's product, not a module global, so tests and the server
can build as many as they need. Everything a request needs lives in one
:class:`AppState` at ``app.extensions["hermes"]``; blueprints reach it through
:func:`app_state` (and the profile's session store through
:func:`api.profiles.current_store`), never through module globals.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Flask, current_app

from . import streams
from .agents import get_backend
from .config import Config
from .httputil import register_error_handlers
from .models import SessionStore
from .request_log import RequestLogMiddleware


@dataclass
class AppState:
    """What every request needs: the configuration, the default profile's session
    store, the agent backend and the time the app started (epoch seconds)."""

    config: Config
    store: SessionStore
    backend: object
    started_at: float


def app_state() -> AppState:
    """The :class:`AppState` of the app handling the current request."""
    return current_app.extensions["hermes"]


def auth_state():
    """The :class:`api.auth.AuthState` of the current app (set by :func:`api.auth.init_app`)."""
    return current_app.extensions["hermes_auth"]


def create_app(config: Config, *, store: SessionStore | None = None, backend=None) -> Flask:
    """Build the WSGI app for ``config``.

    ``store`` and ``backend`` default to the session store under ``config.state_dir``
    and the backend named by ``config.agent``. The store's start-up scan happens here,
    so call :func:`api.session_recovery.recover_all_sessions_on_startup` first.

    Hooks run in registration order: :mod:`api.auth` registers first, so its
    ``before_request`` (Host allow-list, CSRF, login) guards every route of every
    blueprint registered after it; the request log wraps the whole WSGI app.
    """
    from . import (attachments, auth, memory, openai_api, profiles, render, session_export, session_ops,
                   skills, workspace)
    from .routes import chat_bp, sessions_bp
    from .ui import ui_bp

    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    streams.retention_seconds = config.stream_retention_seconds
    app.extensions["hermes"] = AppState(
        config=config,
        store=store or SessionStore(config.sessions_dir),
        backend=backend or get_backend(config),
        started_at=time.time(),
    )
    register_error_handlers(app)
    auth.init_app(app)
    for bp in (sessions_bp, chat_bp, ui_bp):
        app.register_blueprint(bp)
    for module in (openai_api, session_ops, session_export, attachments, workspace, skills, memory, render,
                   profiles):
        module.init_app(app)
    from . import agent_control  # models, approvals, clarify, continue (docs/api.md)
    agent_control.init_app(app)
    from . import backup_routes, migrate_routes, project_routes  # migration, projects and tags, backups
    for module in (migrate_routes, project_routes, backup_routes):
        module.init_app(app)
    from . import task_routes  # scheduled tasks; starts the scheduler (api.scheduler)
    task_routes.init_app(app)
    from . import compat  # the upstream's shapes on shared paths (docs/api.md)
    compat.init_app(app)
    from . import pwa  # the web app manifest and the service worker
    pwa.init_app(app)
    app.wsgi_app = RequestLogMiddleware(app.wsgi_app)
    return app
