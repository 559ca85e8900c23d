"""The one interface every agent backend implements (DESIGN §5).

Backends never import the model layer: they get a plain history list and call
``emit(event, data)``; the turn engine (:mod:`api.turns`) does the rest.
"""
from __future__ import annotations

import threading
from typing import Callable, Protocol

Emit = Callable[[str, dict], None]


class BackendError(Exception):
    """A turn failed in a way the user should see as an ``apperror`` event.

    ``type`` is a short machine-readable kind: ``auth``, ``not_found``, ``rate_limit``,
    ``connection``, ``backend_unavailable``, ``provider_error``, ``fake_error`` …
    """

    def __init__(self, message: str, type: str = "error"):
        super().__init__(message)
        self.message = message
        self.type = type


class AgentBackend(Protocol):
    """``name`` ("fake", "openai", …) and ``model`` label the backend in the UI and /health."""

    name: str
    model: str | None

    def run_turn(self, history: list[dict], user_message: str, emit: Emit,
                 cancel_event: threading.Event) -> dict | None:
        """Run one turn.

        ``history``: earlier messages, OpenAI-style dicts (``role``, ``content``, …).
        ``emit(event, data)`` with events ``token {text}``, ``reasoning {text}``,
        ``tool {id, name, args}``, ``tool_complete {id, name, result, duration_ms,
        is_error}``, ``status {text}``. Return promptly once ``cancel_event`` is set.
        Returns ``{"usage": {...}}`` or None. Raises :class:`BackendError` to fail the turn.
        """
        ...


def plain_history(history: list[dict]) -> list[dict]:
    """User/assistant/system messages reduced to ``{role, content}`` for chat-completion APIs."""
    out = []
    for m in history:
        if m.get("role") in ("user", "assistant", "system") and isinstance(m.get("content"), str):
            if m["role"] == "assistant" and not m["content"]:
                continue
            out.append({"role": m["role"], "content": m["content"]})
    return out
