"""The system prompt of a turn: the profile's custom instructions, then the project's.

One function, :func:`system_prompt`, composes it for :mod:`api.turns`; the backends get
it as ``TurnContext.system_prompt`` and send it as their system message (``openai``,
``local``) or the agent's ephemeral system prompt (``hermes``); ``fake`` ignores it.
Flask-free.
"""
from __future__ import annotations

from pathlib import Path

from .errors import AppError
from .projects import ProjectStore
from .settings import SettingsUnreadable, profile_settings


def system_prompt(profile_dir: Path, session_meta: dict) -> str | None:
    """The system prompt for a turn of a session in the profile at ``profile_dir``.

    ``custom_instructions`` of the profile's settings (Settings → Custom instructions),
    then, after a blank line, the ``instructions`` of the session's project
    (``session_meta["project_id"]``, if it still exists); each stripped, an empty part
    left out; None when both are empty.

    Fails closed: a damaged settings.json raises :class:`api.errors.AppError` (500)
    naming the file, rather than running the turn without the instructions the user set.
    """
    try:
        own = profile_settings(profile_dir).get("custom_instructions") or ""
    except SettingsUnreadable as exc:
        raise AppError(f"the custom instructions cannot be read: {exc}") from None
    project = ""
    project_id = session_meta.get("project_id")
    if isinstance(project_id, str) and project_id:
        found = ProjectStore(Path(profile_dir)).get(project_id)
        project = (found or {}).get("instructions") or ""
    parts = [p.strip() for p in (own, project) if isinstance(p, str) and p.strip()]
    return "\n\n".join(parts) or None
