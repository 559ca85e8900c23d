"""Which models a turn may run on (docs/api.md ``GET /api/models``). Never imports Flask.

Each backend may offer ``list_models() -> [{id, label, backend, vision, context_length?}]``
(the fake backend's two models, the OpenAI-compatible endpoint's ``/models``, the GGUF
files of the local backend); the ``hermes`` backend's are the models of the endpoint's
``/models`` when ``--base-url`` is set (:func:`hermes_endpoint_models`), then the providers
and models of the profile's agent home's ``config.yaml`` (``home``, from :func:`api.profiles.agent_home`:
``$HERMES_HOME`` for ``default``, ``$HERMES_HOME/profiles/<P>`` for P; see
:func:`hermes_config_models`), headed by ``--model`` when it is set; a backend without a
list offers its one configured ``model``. Each function takes that ``home`` (None: the
backend's default home). The list is cached for a minute per backend and home, since
asking an endpoint costs a round trip.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from .errors import ApiError

log = logging.getLogger(__name__)
CACHE_SECONDS = 60.0
CONFIG_MAX_BYTES = 1024 * 1024   # hermes-agent's config.yaml read for the list (a bigger one lists nothing)
_cache: dict[int, tuple[float, list[dict]]] = {}
_cache_lock = threading.Lock()


def _entry(model_id: str, backend: str) -> dict:
    return {"id": model_id, "label": model_id, "backend": backend, "vision": False}


def _hermes_home(backend, home) -> Path | None:
    """The agent home whose config.yaml lists a hermes backend's models (None: not hermes)."""
    if getattr(backend, "name", None) != "hermes" or not getattr(backend, "hermes_home", None):
        return None
    return Path(home) if home else Path(backend.hermes_home)


def _fixed_model(backend) -> str | None:
    """The model the backend runs when nothing names one: ``--model`` for hermes (what one
    profile's Hermes resolved is not another profile's default), else ``backend.model``."""
    if getattr(backend, "name", None) == "hermes" and getattr(backend, "config", None) is not None:
        return getattr(backend.config, "model", None)
    return getattr(backend, "model", None)


def list_models(backend, home: Path | None = None) -> list[dict]:
    """The models ``backend`` can run, its default first if it is listed (cached 60 s);
    for hermes, those of the agent home ``home`` (module doc)."""
    hermes_home = _hermes_home(backend, home)
    key = (id(backend), str(hermes_home) if hermes_home else None)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit and now - hit[0] < CACHE_SECONDS:
            return hit[1]
    models: list[dict] = []
    lister = getattr(backend, "list_models", None)
    if lister is None and hermes_home is not None:
        lister = lambda: _unique(hermes_endpoint_models(backend) + hermes_config_models(hermes_home))  # noqa: E731
    if lister is not None:
        try:
            models = [dict(m) for m in lister() or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
        except Exception as exc:  # an endpoint that does not answer: offer the configured model
            log.warning("could not list the %s backend's models: %s", getattr(backend, "name", "?"), exc)
    default = _fixed_model(backend)
    if default and not any(m["id"] == default for m in models):
        models.insert(0, _entry(default, getattr(backend, "name", "?")))
    with _cache_lock:
        _cache[key] = (now, models)
    return models


def default_model(backend, home: Path | None = None) -> str | None:
    """The model a turn runs on when neither the request nor the session names one (for
    hermes: ``--model``, else the first model of the home's config.yaml, which is its
    ``model.default``)."""
    return _fixed_model(backend) or next((m["id"] for m in list_models(backend, home)), None)


def profile_default(backend, profile_dir: Path, home: Path | None = None) -> str | None:
    """The profile's ``default_model`` setting (Settings) if the backend still lists it, else
    None (also for a damaged settings.json: the chat start reports that one)."""
    from .settings import SettingsUnreadable, profile_settings

    try:
        wanted = profile_settings(profile_dir).get("default_model")
    except SettingsUnreadable:
        return None
    return wanted if wanted and any(m["id"] == wanted for m in list_models(backend, home)) else None


def resolve(backend, requested: str | None, session_default: str | None = None,
            home: Path | None = None) -> str | None:
    """The model id a turn runs on: ``requested`` (ApiError 400 if it is not listed), else
    the session's default if it is still listed, else the backend's default."""
    ids = [m["id"] for m in list_models(backend, home)]
    if requested is not None:
        if requested not in ids:
            raise ApiError(f"unknown model {requested[:100]!r}; choose one of: {', '.join(ids) or '(none)'}")
        return requested
    if session_default and session_default in ids:
        return session_default
    return default_model(backend, home)


def _unique(models: list[dict]) -> list[dict]:
    """``models`` with each id once (the first wins)."""
    seen: set[str] = set()
    return [m for m in models if not (m["id"] in seen or seen.add(m["id"]))]


def hermes_endpoint_models(backend) -> list[dict]:
    """With ``--agent hermes --base-url URL``, the models that endpoint's ``GET /models``
    lists (as the ``openai`` backend reads it; ``backend: "hermes"``), since every turn then
    runs there whatever config.yaml names. ``[]`` without a base URL or when the endpoint
    does not answer within 5 s (logged). The config.yaml list follows it."""
    cfg = getattr(backend, "config", None)
    base_url = getattr(cfg, "base_url", None)
    if not base_url:
        return []
    from .agents.openai_compat import OpenAIBackend

    try:
        found = OpenAIBackend(base_url, getattr(cfg, "api_key", None), None).list_models()
    except Exception as exc:
        log.warning("could not list the models of %s: %s", base_url, exc)
        return []
    return [{**m, "backend": "hermes"} for m in found]


# ---------------------------------------------------------------- hermes-agent's config.yaml


def _positive_int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _model_rows(models) -> list[tuple[str, dict]]:
    """A provider's ``models`` (a mapping ``{id: {context_length?, supports_vision?}}``, or
    a list of ids or ``{id|name, …}`` rows, as hermes-agent reads them) as ``(id, meta)``."""
    if isinstance(models, dict):
        return [(k, v if isinstance(v, dict) else {}) for k, v in models.items() if isinstance(k, str)]
    rows = []
    for item in models if isinstance(models, list) else []:
        if isinstance(item, str):
            rows.append((item, {}))
        elif isinstance(item, dict) and isinstance(item.get("id") or item.get("name"), str):
            rows.append((item.get("id") or item.get("name"), item))
    return rows


def hermes_config_models(home: Path) -> list[dict]:
    """The models ``$HERMES_HOME/config.yaml`` names, as ``GET /api/models`` entries with
    ``provider``: ``model.default`` (or ``model`` as a string) first, then each entry of
    ``providers`` (``{key: {name?, default_model|model?, models?, context_length?}}``) and
    ``custom_providers`` (``[{name, model?, models?, context_length?}]``). ``vision`` is
    ``supports_vision`` where the file says so; ``context_length`` the model's own or its
    provider's. Each id once (the first wins). No file, an unreadable one or YAML that is
    not a mapping, or over 1 MiB: ``[]`` (logged). Read with ``yaml.safe_load``: no tags, no code.
    """
    import yaml

    path = Path(home) / "config.yaml"
    try:
        if path.stat().st_size > CONFIG_MAX_BYTES:
            raise ValueError(f"it is larger than {CONFIG_MAX_BYTES:,} bytes")
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError, yaml.YAMLError, RecursionError) as exc:   # UnicodeDecodeError is a ValueError
        log.warning("cannot read %s for the model list: %s", path, exc)
        return []
    if not isinstance(doc, dict):
        return []
    found: dict[str, dict] = {}

    def add(model_id, provider, meta: dict, provider_ctx=None) -> None:
        if not isinstance(model_id, str) or not model_id.strip() or model_id.strip() in found:
            return
        model_id = model_id.strip()
        entry = {"id": model_id, "label": f"{model_id} ({provider})" if provider else model_id,
                 "backend": "hermes", "vision": meta.get("supports_vision") is True or meta.get("vision") is True}
        ctx = _positive_int(meta.get("context_length")) or _positive_int(provider_ctx)
        if ctx:
            entry["context_length"] = ctx
        if provider:
            entry["provider"] = provider
        found[model_id] = entry

    model = doc.get("model")
    if isinstance(model, str):
        add(model, None, {})
    elif isinstance(model, dict):
        provider = model.get("provider") if isinstance(model.get("provider"), str) else None
        add(model.get("default") or model.get("model"), provider, model)
    entries = [(str(k), v) for k, v in doc["providers"].items()] if isinstance(doc.get("providers"), dict) else []
    custom = doc.get("custom_providers")
    entries += [(None, v) for v in custom] if isinstance(custom, list) else []
    for key, entry in entries:
        if not isinstance(entry, dict):
            continue
        name = entry.get("name") if isinstance(entry.get("name"), str) else key
        rows = _model_rows(entry.get("models"))
        default = entry.get("default_model") or entry.get("model")
        if isinstance(default, str) and default not in (r[0] for r in rows):
            rows.insert(0, (default, {}))
        for model_id, meta in rows:
            add(model_id, name, meta, entry.get("context_length"))
    return list(found.values())

