"""The one interface every agent backend implements (docs/architecture.md §5).

Backends never import the model layer: they get a plain history list and call
``emit(event, data)``; the turn engine (:mod:`api.turns`) does the rest.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

Emit = Callable[[str, dict], None]

CONTINUE_PROMPT = ("Your previous reply was cut off. Continue it exactly where it stopped, "
                   "without repeating anything already written.")


def _deny(tool: str, command: str, description: str = "", timeout: float | None = None) -> str:
    return "deny"


def _no_answer(question: str, choices: list | None = None, timeout: float | None = None) -> str:
    return ""


@dataclass
class TurnContext:
    """What a turn knows beyond its messages (given to ``run_turn`` as ``ctx``).

    ``model``: the model id to run on (None: the backend's default). ``continue_text``:
    when continuing a cut reply, its text so far (the turn appends to it).
    ``ask_approval(tool, command, description, timeout=None)`` blocks until the user
    answers and returns ``once``, ``session``, ``always`` or ``deny`` (a timeout is
    ``deny``); ``ask_clarify(question, choices=None, timeout=None)`` returns the answer
    (``""`` on timeout). ``home``: the profile's agent home (hermes backend);
    ``profile``: the profile's name. ``system_prompt``: the profile's custom
    instructions and the project's (:func:`api.instructions.system_prompt`), None if
    neither is set; a backend sends it as its system prompt (see :func:`with_system`).
    ``workspace``: the chat's workspace folder, where an agent's tools work (None: unknown).
    Without a context, approvals are denied.
    """

    model: str | None = None
    continue_text: str | None = None
    ask_approval: Callable[..., str] = _deny
    ask_clarify: Callable[..., str] = _no_answer
    home: Path | None = None
    profile: str = "default"
    system_prompt: str | None = None
    workspace: Path | None = None


def continuation(history: list[dict], user_message: str, ctx: "TurnContext | None") -> tuple[list[dict], str]:
    """``(history, user_message)`` for a chat-completion backend: unchanged, or, when
    ``ctx`` continues a cut reply, the original exchange followed by the request to go on."""
    if ctx is None or ctx.continue_text is None:
        return history, user_message
    return (list(history) + [{"role": "user", "content": user_message},
                             {"role": "assistant", "content": ctx.continue_text}], CONTINUE_PROMPT)


def with_system(messages: list[dict], ctx: "TurnContext | None") -> list[dict]:
    """``messages`` for a chat-completion API with the turn's system prompt
    (``ctx.system_prompt``) as a first ``system`` message; unchanged without one."""
    prompt = ctx.system_prompt if ctx is not None else None
    if not prompt:
        return messages
    return [{"role": "system", "content": prompt}] + list(messages)


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
                 cancel_event: threading.Event, ctx: TurnContext | None = None) -> dict | None:
        """Run one turn.

        ``history``: earlier messages, OpenAI-style dicts (``role``, ``content``, …).
        ``emit(event, data)`` with events ``token {text}``, ``reasoning {text}``,
        ``tool {id, name, args}``, ``tool_complete {id, name, result, duration_ms,
        is_error}``, ``status {text}``. Return promptly once ``cancel_event`` is set.
        Returns ``{"usage": {prompt_tokens, completion_tokens}, "finish_reason"}`` or None
        (``finish_reason: "length"`` saves the reply ``truncated``). Raises
        :class:`BackendError` to fail the turn.
        """
        ...

    def list_models(self) -> list[dict]:
        """``[{id, label, backend, vision, context_length?}]`` this backend can run (optional)."""
        ...

    def complete(self, messages: list[dict], *, max_tokens: int, timeout: float, model: str | None = None) -> str:
        """Optional: one short plain completion of ``[{role, content: str}]`` within
        ``timeout`` seconds, returned whole (a chat's generated title, :mod:`api.titles`).
        Raises on failure; a backend without it never gets titles generated."""
        ...


def plain_history(history: list[dict]) -> list[dict]:
    """User/assistant/system messages reduced to ``{role, content}`` for chat-completion APIs
    (an earlier user message's attachments are named, not sent again)."""
    from .content import history_note

    out = []
    for m in history:
        if m.get("role") in ("user", "assistant", "system") and isinstance(m.get("content"), str):
            if m["role"] == "assistant" and not m["content"]:
                continue
            content = history_note(m) if m["role"] == "user" else m["content"]
            out.append({"role": m["role"], "content": content})
    return out
