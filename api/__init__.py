"""hermes-webui backend: :func:`create_app` builds the Flask app (DESIGN §1)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Flask

from . import streams
from .agents import get_backend
from .config import Config
from .httputil import register_error_handlers
from .models import SessionStore
from .request_log import RequestLogMiddleware

__version__ = "0.1.0"


@dataclass
class AppState:
    """What every request needs; reached as ``current_app.extensions["hermes"]``."""

    config: Config
    store: SessionStore
    backend: object
    started_at: float


def create_app(config: Config, *, store: SessionStore | None = None, backend=None) -> Flask:
    """Build the WSGI app for ``config``.

    ``store`` and ``backend`` default to the session store under ``config.state_dir``
    and the backend named by ``config.agent``. The store's start-up scan happens here,
    so call :func:`api.session_recovery.recover_all_sessions_on_startup` first.
    """
    from . import auth, memory, openai_api, profiles, render, session_ops, skills, workspace
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
    for bp in (sessions_bp, chat_bp, ui_bp):
        app.register_blueprint(bp)
    # Feature modules: each init_app registers its blueprint and hooks (auth first: its
    # before_request guards every route registered after it as well).
    for module in (auth, openai_api, session_ops, workspace, skills, memory, render, profiles):
        module.init_app(app)
    app.wsgi_app = RequestLogMiddleware(app.wsgi_app)
    return app
