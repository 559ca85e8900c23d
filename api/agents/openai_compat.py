"""The ``openai`` backend: any OpenAI-compatible chat-completions endpoint.

OpenAI, OpenRouter, Ollama, a llama.cpp server, vLLM, or this app's own ``/v1``.
Uses the official ``openai`` package (install extra ``openai``). Streams ``delta.content``
as ``token`` events and ``delta.reasoning_content`` / ``delta.reasoning`` as
``reasoning``; provider errors become :class:`BackendError` with types ``auth``,
``not_found``, ``rate_limit``, ``connection``, ``bad_request`` or ``provider_error``.
"""
from __future__ import annotations

import threading
from typing import Sequence

from .base import BackendError, Emit, TurnContext, continuation, plain_history, with_system
from .content import user_content


def map_openai_error(exc: Exception) -> BackendError:
    """Translate an exception of the ``openai`` package into a :class:`BackendError`."""
    import openai

    kinds = [
        (openai.AuthenticationError, "auth"), (openai.PermissionDeniedError, "auth"),
        (openai.NotFoundError, "not_found"), (openai.RateLimitError, "rate_limit"),
        (openai.APITimeoutError, "connection"), (openai.APIConnectionError, "connection"),
        (openai.BadRequestError, "bad_request"), (openai.APIError, "provider_error"),
    ]
    for cls, kind in kinds:
        if isinstance(exc, cls):
            return BackendError(f"{kind.replace('_', ' ')}: {exc}", type=kind)
    return BackendError(str(exc) or type(exc).__name__, type="provider_error")


class OpenAIBackend:
    name = "openai"

    def __init__(self, base_url: str | None, api_key: str | None, model: str | None):
        self.base_url = base_url
        self.api_key = api_key
        self.model = model or "gpt-4o-mini"
        self._client = None
        self._lock = threading.Lock()

    def list_models(self) -> list[dict]:
        """The endpoint's own ``GET /models`` (ids only; vision and context are unknown)."""
        client = self._get_client()
        try:
            found = [m.id for m in client.with_options(timeout=5).models.list()]
        except Exception as exc:
            raise map_openai_error(exc) from exc
        return [{"id": i, "label": i, "backend": "openai", "vision": False} for i in found]

    def _get_client(self):
        with self._lock:
            if self._client is None:
                try:
                    import openai
                except ImportError:
                    raise BackendError("the openai backend needs the openai package: "
                                       "pip install 'hermes-webui[openai]'", type="backend_unavailable") from None
                self._client = openai.OpenAI(base_url=self.base_url, api_key=self.api_key or "not-needed",
                                             max_retries=0, timeout=600)
            return self._client

    def complete(self, messages: list[dict], *, max_tokens: int, timeout: float, model: str | None = None) -> str:
        """One short, non-streamed completion of ``messages`` (``[{role, content: str}]``) on
        ``model`` (default ``--model``), within ``timeout`` seconds: e.g. a chat's title
        (:mod:`api.titles`). Raises :class:`BackendError` like :meth:`run_turn`."""
        client = self._get_client()
        try:
            answer = client.with_options(timeout=timeout).chat.completions.create(
                model=model or self.model, messages=messages, max_tokens=max_tokens, stream=False)
        except Exception as exc:
            raise map_openai_error(exc) from exc
        choices = answer.choices or []
        return (choices[0].message.content or "") if choices else ""

    def run_turn(self, history: list[dict], user_message: str, emit: Emit,
                 cancel_event: threading.Event, attachments: Sequence = (),
                 ctx: TurnContext | None = None) -> dict | None:
        """Stream one reply on ``ctx.model`` (default ``--model``). Attached images go as
        ``image_url`` content parts, other files as text (:func:`api.agents.content.user_content`).
        Continuing a cut reply sends it back with a request to go on. ``ctx.system_prompt``
        (custom instructions) goes first as a ``system`` message."""
        client = self._get_client()
        history, user_message = continuation(history, user_message, ctx)
        model = (ctx.model if ctx else None) or self.model
        finish = None
        content = user_content(user_message, attachments, images=True) if attachments else user_message
        messages = with_system(plain_history(history) + [{"role": "user", "content": content}], ctx)
        usage = None
        try:
            stream = client.chat.completions.create(model=model, messages=messages, stream=True,
                                                    stream_options={"include_usage": True})
            with stream:
                for chunk in stream:
                    if cancel_event.is_set():
                        break
                    if getattr(chunk, "usage", None):
                        usage = chunk.usage.model_dump()
                    for choice in chunk.choices or []:
                        finish = getattr(choice, "finish_reason", None) or finish
                        delta = choice.delta
                        reasoning = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None)
                        if isinstance(reasoning, str) and reasoning:
                            emit("reasoning", {"text": reasoning})
                        if delta.content:
                            emit("token", {"text": delta.content})
        except BackendError:
            raise
        except Exception as exc:
            err = map_openai_error(exc)
            if err.type == "connection":
                err.message = f"{err.message} (base URL: {client.base_url}; set --base-url)"
            raise err from exc
        return {"usage": usage, "finish_reason": finish}
