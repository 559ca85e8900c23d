"""Which models a turn may run on (docs/api.md ``GET /api/models``). Never imports Flask.

Each backend may offer ``list_models() -> [{id, label, backend, vision, context_length?}]``
(the fake backend's two models, the OpenAI-compatible endpoint's ``/models``, the GGUF
files of the local backend, the models of hermes-agent's ``config.yaml``); a backend
without it offers its one configured ``model``. The list is cached for a minute, since
asking an endpoint costs a round trip.
"""
from __future__ import annotations

import logging
import threading
import time

from .errors import ApiError

log = logging.getLogger(__name__)
CACHE_SECONDS = 60.0
_cache: dict[int, tuple[float, list[dict]]] = {}
_cache_lock = threading.Lock()


def _entry(model_id: str, backend: str) -> dict:
    return {"id": model_id, "label": model_id, "backend": backend, "vision": False}


def list_models(backend) -> list[dict]:
    """The models ``backend`` can run, its default first if it is listed (cached 60 s)."""
    key = id(backend)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit and now - hit[0] < CACHE_SECONDS:
            return hit[1]
    models: list[dict] = []
    lister = getattr(backend, "list_models", None)
    if lister is not None:
        try:
            models = [dict(m) for m in lister() or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
        except Exception as exc:  # an endpoint that does not answer: offer the configured model
            log.warning("could not list the %s backend's models: %s", getattr(backend, "name", "?"), exc)
    default = getattr(backend, "model", None)
    if default and not any(m["id"] == default for m in models):
        models.insert(0, _entry(default, getattr(backend, "name", "?")))
    with _cache_lock:
        _cache[key] = (now, models)
    return models


def default_model(backend) -> str | None:
    """The model a turn runs on when neither the request nor the session names one."""
    return getattr(backend, "model", None) or next((m["id"] for m in list_models(backend)), None)


def resolve(backend, requested: str | None, session_default: str | None = None) -> str | None:
    """The model id a turn runs on: ``requested`` (ApiError 400 if it is not listed), else
    the session's default if it is still listed, else the backend's default."""
    ids = [m["id"] for m in list_models(backend)]
    if requested is not None:
        if requested not in ids:
            raise ApiError(f"unknown model {requested[:100]!r}; choose one of: {', '.join(ids) or '(none)'}")
        return requested
    if session_default and session_default in ids:
        return session_default
    return default_model(backend)
