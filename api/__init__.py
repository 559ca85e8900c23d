"""hermes-webui's backend. Importing this package is cheap: it imports only its version.

The app is built by :func:`api.app.create_app`; ``from api import create_app`` still
works and imports the web layer only when it is asked for. Lower layers (the codec,
the store, the turn engine, the agent backends) import without Flask.
"""
from __future__ import annotations

from .version import __version__  # noqa: E402,F401 (one home: api/version.py)


def __getattr__(name: str):
    if name == "create_app":
        from .app import create_app
        return create_app
    raise AttributeError(f"module 'api' has no attribute {name!r}")
