"""The ``hermes`` backend (docs/architecture.md §5): the real Hermes Agent, in-process.

Each turn builds a ``run_agent.AIAgent`` and calls ``run_conversation(user_message,
conversation_history=<our history>)``. Its callbacks become our events:
``stream_delta_callback`` → ``token``, ``reasoning_callback`` → ``reasoning``,
``tool_start_callback`` → ``tool {id, name, args}``, ``tool_complete_callback`` →
``tool_complete {id, name, result, duration_ms, is_error}``. A watcher thread calls
``agent.interrupt()`` when the turn's ``cancel_event`` is set.

Configuration: ``HERMES_HOME`` is ``config.hermes_home`` (default: the user's, so the UI
shares memory and skills with the Hermes CLI); ``enabled_toolsets`` is
``config.toolsets`` (comma-separated; **none** by default, because Hermes's default
toolsets run shell commands on the host and this server may be reachable on the LAN);
``config.base_url`` / ``api_key`` / ``model`` pick the model endpoint, else the
provider and model configured in ``$HERMES_HOME/config.yaml``.

Containment of hermes-agent's process-wide side effects: it is imported lazily, on the
first turn; ``$HERMES_HOME/.env`` may add environment variables (its provider and tool
keys) but may not change ones the server already had, nor set ``HERMES_WEBUI_*``;
``sys.stdout`` / ``sys.stderr`` are restored after each import, agent construction and
turn; the root log level is restored and its log files skip this server's own records.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from .base import BackendError, Emit, plain_history
from .content import user_content

if importlib.util.find_spec("run_agent") is None:
    raise ImportError("hermes-agent is not installed", name="run_agent")

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'hermes-webui[hermes]'"
STARTING_TEXT = "starting Hermes Agent…"
OWN_LOGGERS = ("api", "hermes_webui", "waitress")
_import_lock = threading.Lock()
_agent_class = None


@contextmanager
def contained():
    """Undo hermes-agent's process-wide changes made inside the block (see module doc)."""
    env_before = dict(os.environ)
    out, err = sys.stdout, sys.stderr
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
        for key in [k for k in os.environ if k not in env_before and k.startswith("HERMES_WEBUI_")]:
            del os.environ[key]
        for key, value in env_before.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        root.setLevel(level)
        for handler in root.handlers:
            if handler not in handlers and not getattr(handler, "_hermes_webui_filtered", False):
                handler.addFilter(_not_own_record)
                handler._hermes_webui_filtered = True


def _not_own_record(record: logging.LogRecord) -> bool:
    return not any(record.name == n or record.name.startswith(n + ".") for n in OWN_LOGGERS)


def _quiet_foreign_info(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not _not_own_record(record)


def load_agent_class(hermes_home: Path):
    """``run_agent.AIAgent``, imported once with ``HERMES_HOME`` set (BackendError if missing)."""
    global _agent_class
    with _import_lock:
        if _agent_class is None:
            hermes_home.mkdir(parents=True, exist_ok=True)
            ours = list(logging.getLogger().handlers)
            with contained():
                os.environ["HERMES_HOME"] = str(hermes_home)
                try:
                    from run_agent import AIAgent
                except ImportError as exc:
                    raise BackendError(f"hermes-agent cannot be imported ({exc}). Install it with: "
                                       f"{INSTALL_HINT}", type="backend_unavailable") from None
            os.environ["HERMES_HOME"] = str(hermes_home)   # kept: hermes reads it on every call
            for handler in ours:                               # our console: Hermes's warnings only
                handler.addFilter(_quiet_foreign_info)
            _agent_class = AIAgent
    return _agent_class


def _is_error_result(name: str, result: str) -> bool:
    try:
        from agent.display import _detect_tool_failure
        return bool(_detect_tool_failure(name, result)[0])
    except Exception:  # a private helper: if it moves, fall back to "not an error"
        return False


class _Callbacks:
    """Hermes callbacks → our events; remembers what streamed and when each tool began."""

    def __init__(self, emit: Emit):
        self.emit = emit
        self.streamed = False
        self._started: dict[str, float] = {}

    def delta(self, text) -> None:
        if text:                      # None marks the end of a streamed segment
            self.streamed = True
            self.emit("token", {"text": text})

    def reasoning(self, text) -> None:
        if text:
            self.emit("reasoning", {"text": text})

    def tool_start(self, call_id, name, args) -> None:
        self._started[str(call_id)] = time.monotonic()
        self.emit("tool", {"id": call_id, "name": name, "args": args})

    def tool_complete(self, call_id, name, args, result) -> None:
        began = self._started.pop(str(call_id), time.monotonic())
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        self.emit("tool_complete", {"id": call_id, "name": name, "result": text,
                                    "duration_ms": int((time.monotonic() - began) * 1000),
                                    "is_error": _is_error_result(name, text)})


class HermesBackend:
    """``--agent hermes``: one ``AIAgent`` per turn; ``model`` is ``--model`` or the model
    Hermes resolves from its own configuration (known after the first turn)."""

    name = "hermes"

    def __init__(self, config):
        self.config = config
        self.hermes_home = config.hermes_home_dir
        self.toolsets = [t.strip() for t in (config.toolsets or "").split(",") if t.strip()]
        self.model = config.model

    def _runtime(self) -> dict:
        """AIAgent keyword arguments naming the endpoint and the model."""
        cfg = self.config
        if cfg.base_url:
            return {"base_url": cfg.base_url, "api_key": cfg.api_key or "no-key-needed",
                    "model": cfg.model or "default"}
        try:
            from hermes_cli.runtime_provider import _get_model_config, resolve_runtime_provider
            runtime = resolve_runtime_provider(explicit_api_key=cfg.api_key)
            model = cfg.model or (_get_model_config() or {}).get("default") or ""
        except Exception as exc:
            raise BackendError(f"Hermes has no usable model provider ({exc}). Run `hermes setup`, or start "
                               "with --base-url URL --model NAME.", type="backend_unavailable") from None
        keys = ("base_url", "api_key", "provider", "api_mode", "command", "args", "credential_pool")
        return {**{k: runtime.get(k) for k in keys if runtime.get(k) is not None}, "model": model}

    def _new_agent(self, cb: _Callbacks):
        agent_class = load_agent_class(self.hermes_home)
        with contained():
            runtime = self._runtime()
            try:
                agent = agent_class(
                    **runtime, enabled_toolsets=list(self.toolsets), quiet_mode=True, platform="webui",
                    stream_delta_callback=cb.delta, reasoning_callback=cb.reasoning,
                    tool_start_callback=cb.tool_start, tool_complete_callback=cb.tool_complete)
            except Exception as exc:
                raise BackendError(f"Hermes could not start: {exc}", type="provider_error") from None
        self.model = runtime["model"] or self.model
        return agent

    def run_turn(self, history: list[dict], user_message: str, emit: Emit,
                 cancel_event: threading.Event, attachments: Sequence = (), ctx=None) -> dict | None:
        """Run one Hermes turn; see the module doc for the event mapping.

        With attachments, the message is an OpenAI-style list of content parts (text,
        then ``image_url`` parts with ``data:`` URLs), the shape hermes-agent's own
        gateway passes for native image input
        (``agent.image_routing.build_native_content_parts``); its transcript keeps the
        plain text (``persist_user_message``).

        Raises :class:`BackendError` (``backend_unavailable``, ``provider_error``) when
        Hermes cannot start or reports a failed turn.
        """
        cb = _Callbacks(emit)
        if _agent_class is None:
            emit("status", {"text": STARTING_TEXT})
        agent = self._new_agent(cb)
        finished = threading.Event()

        def watch():
            while not finished.is_set():
                if cancel_event.wait(0.1):
                    agent.interrupt()
                    return

        watcher = threading.Thread(target=watch, name="hermes-cancel-watch", daemon=True)
        watcher.start()
        try:
            with contained():
                if attachments:
                    content = user_content(user_message, attachments, images=True)
                    result = agent.run_conversation(content, conversation_history=plain_history(history),
                                                    persist_user_message=user_message)
                else:
                    result = agent.run_conversation(user_message, conversation_history=plain_history(history))
        except Exception as exc:
            raise BackendError(f"Hermes failed: {type(exc).__name__}: {exc}", type="provider_error") from None
        finally:
            finished.set()
            with contained():
                try:
                    if cancel_event.is_set():
                        # hermes-agent 0.19 clears its interrupt flag when the turn ends; a
                        # streaming request whose close it deferred to the request's worker
                        # thread then drains the model's whole reply. Raised again, the flag
                        # stops that worker at its next chunk.
                        agent.interrupt()
                    agent.close()
                except Exception:
                    log.debug("closing the Hermes agent failed", exc_info=True)
        return self._settle(result or {}, cb, emit, cancel_event)

    @staticmethod
    def _settle(result: dict, cb: _Callbacks, emit: Emit, cancel_event: threading.Event) -> dict | None:
        """Turn Hermes's result dict into our outcome: an error, or ``{"usage"}``."""
        if cancel_event.is_set() or result.get("interrupted"):
            return None
        final = result.get("final_response")
        if result.get("failed") or (result.get("error") and not result.get("completed", True)):
            raise BackendError(str(result.get("error") or final or "Hermes reported a failed turn"),
                               type="provider_error")
        if final and not cb.streamed:          # a provider that did not stream
            emit("token", {"text": final})
        usage = {k: result[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens", "api_calls")
                 if isinstance(result.get(k), int)}
        return {"usage": usage or None}
