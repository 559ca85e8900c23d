"""The ``hermes`` backend (docs/architecture.md §5): the real Hermes Agent, one process per home.

A turn in profile P runs in P's worker process (:mod:`api.agents.hermes_worker`),
started on P's first turn with ``HERMES_HOME`` set to P's agent home (``ctx.home``:
``$HERMES_HOME`` for ``default``, ``$HERMES_HOME/profiles/<P>`` otherwise). There
``run_agent.AIAgent(...).run_conversation(...)`` runs with P's memory, skills, config and
``.env``; whatever hermes-agent changes process-wide (environment, ``sys.stdout``,
logging, module caches) stays in that process, so two profiles never share it and their
turns run at the same time. Turns of one profile share its worker (one thread each).
This server's environment reaches a worker without its ``HERMES_WEBUI_*`` variables
(the password), so the agent's shell never sees them, and without ``HERMES_YOLO_MODE``
(approvals are switched off per profile in its ``config.yaml``: ``approvals.mode: off``).

Events relayed from the worker: ``token``, ``reasoning``, ``tool {id, name, args}``,
``tool_complete {id, name, result, duration_ms, is_error}``; ``status`` "starting Hermes
Agent…" while a worker starts. Every call of a tool that changes the host (terminal
commands, file writes and patches, code execution; the worker's gate at hermes-agent's
tool dispatch), hermes-agent's own approval of dangerous commands (``tools.approval``,
answered by the same grant inside an allowed call) and its ``clarify`` tool ask through
``ctx.ask_approval`` / ``ctx.ask_clarify``, i.e. the turn's ``approval`` / ``clarify`` events and
``POST /api/approval/respond`` / ``/api/clarify/respond`` with the same rules as every
backend (once / session / always / deny; no answer in time = deny). The agent's tools work
in the chat's workspace (``ctx.workspace``: the terminal's cwd, relative paths). A cancelled turn is
interrupted in its worker (``agent.interrupt()``). A worker that dies fails its running
turns (``provider_error``); the next turn starts a new one. A worker idle for
``IDLE_SECONDS`` is stopped.

Configuration: ``config.toolsets`` (comma-separated hermes-agent toolset names; unset:
:data:`DEFAULT_TOOLSETS`; ``none``: no tools); ``config.base_url`` / ``api_key`` /
``model`` pick the model endpoint, else the provider and model in the profile's
``config.yaml``; a turn's ``ctx.model`` overrides the model. ``ctx.system_prompt`` (custom
and project instructions) is added to Hermes's own system prompt
(``ephemeral_system_prompt``: used, not stored in its transcripts).
"""
from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from .base import BackendError, Emit, TurnContext, continuation, plain_history
from .content import user_content

if importlib.util.find_spec("run_agent") is None:
    raise ImportError("hermes-agent is not installed", name="run_agent")

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'hermes-webui[hermes]'"
STARTING_TEXT = "starting Hermes Agent…"
WORKER_MODULE = __name__.rsplit(".", 1)[0] + ".hermes_worker"
IDLE_SECONDS = 30 * 60.0
NOT_PASSED = ("HERMES_YOLO_MODE",)     # would skip every approval without the page knowing
STOP_SECONDS = 5.0
# hermes-agent toolsets on by default: shell and file writes (each call asks first), files,
# web search/extract, the agent's memory, its to-do list and its clarifying questions.
DEFAULT_TOOLSETS = ("terminal", "file", "web", "memory", "todo", "clarify")


def parse_toolsets(value: str | None) -> list[str]:
    """``--toolsets`` as a list: unset → :data:`DEFAULT_TOOLSETS`; ``""`` or ``none`` → []."""
    if value is None:
        return list(DEFAULT_TOOLSETS)
    names = [t.strip() for t in value.split(",") if t.strip()]
    return [] if names in ([], ["none"]) else names


class _Worker:
    """One hermes-agent process for one agent home, and the turns it runs."""

    def __init__(self, home: Path):
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_WEBUI_") and k not in NOT_PASSED}
        env["HERMES_HOME"] = str(home)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)   # import this package as we do
        self.proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True)
        self._links: dict[str, queue.Queue] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.dead: str | None = None
        self.last_used = time.monotonic()
        threading.Thread(target=self._read, name=f"hermes-worker-{self.proc.pid}", daemon=True).start()

    def _read(self) -> None:
        fatal = None
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if "fatal" in msg:
                fatal = str(msg["fatal"])
                continue
            with self._lock:
                link = self._links.get(str(msg.get("t")))
            if link is not None:
                link.put(msg)
        code = self.proc.wait()
        reason = fatal or f"the Hermes Agent process stopped unexpectedly (exit code {code})"
        with self._lock:
            self.dead = reason
            links = list(self._links.values())
        if links or fatal:
            log.warning("Hermes Agent worker %s for %s: %s", self.proc.pid, self.home, reason)
        for link in links:
            link.put({"error": {"message": reason,
                                "type": "backend_unavailable" if fatal else "provider_error"}})

    def open(self, tid: str) -> queue.Queue:
        with self._lock:
            if self.dead:
                raise BackendError(self.dead, type="provider_error")
            self._links[tid] = link = queue.Queue()
            self.last_used = time.monotonic()
            return link

    def close(self, tid: str) -> None:
        with self._lock:
            self._links.pop(tid, None)
            self.last_used = time.monotonic()

    def idle_for(self) -> float:
        with self._lock:
            return 0.0 if self._links else time.monotonic() - self.last_used

    def send(self, obj: dict) -> None:
        """Write one protocol line; BackendError if the worker is gone."""
        line = (json.dumps(obj) + "\n").encode("ascii")
        try:
            with self._write_lock:
                self.proc.stdin.write(line)
                self.proc.stdin.flush()
        except (OSError, ValueError):
            raise BackendError(self.dead or "the Hermes Agent process is not running", type="provider_error") from None

    def stop(self) -> None:
        """End the worker: close its stdin (it exits at once), kill it if it lingers."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class HermesBackend:
    """``--agent hermes``: turns run in one worker process per agent home (module doc);
    ``model`` is ``--model``, else the model Hermes resolved on its first turn."""

    name = "hermes"

    def __init__(self, config):
        self.config = config
        self.hermes_home = config.hermes_home_dir
        self.toolsets = parse_toolsets(config.toolsets)
        self.model = config.model
        self._workers: dict[Path, _Worker] = {}
        self._lock = threading.Lock()
        atexit.register(self.close)

    def _worker(self, home: Path) -> tuple[_Worker, bool]:
        """The running worker of ``home`` (started if needed, then ``fresh``); stops idle ones."""
        with self._lock:
            for other, w in list(self._workers.items()):
                if other != home and w.idle_for() > IDLE_SECONDS:
                    del self._workers[other]
                    threading.Thread(target=w.stop, daemon=True).start()
            worker = self._workers.get(home)
            if worker is not None and not worker.dead:
                return worker, False
            try:
                worker = self._workers[home] = _Worker(home)
            except OSError as exc:
                raise BackendError(f"could not start the Hermes Agent process: {exc}",
                                   type="backend_unavailable") from None
            log.info("Hermes Agent worker %s started for %s", worker.proc.pid, home)
            return worker, True

    def close(self) -> None:
        """Stop every worker (at exit)."""
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for w in workers:
            w.stop()

    def run_turn(self, history: list[dict], user_message: str, emit: Emit,
                 cancel_event: threading.Event, attachments: Sequence = (), ctx: TurnContext | None = None) -> dict | None:
        """Run one Hermes turn in the worker of ``ctx.home`` (default ``--hermes-home``).

        With attachments, the message is an OpenAI-style list of content parts (text,
        then ``image_url`` parts with ``data:`` URLs), the shape hermes-agent's own
        gateway passes for native image input; its transcript keeps the plain text
        (``persist_user_message``). Returns ``{"usage"}``, or None when cancelled.

        Raises :class:`BackendError` (``backend_unavailable``, ``provider_error``) when
        Hermes cannot start, its process dies, or it reports a failed turn.
        """
        ctx = ctx or TurnContext()
        history, user_message = continuation(history, user_message, ctx)
        home = Path(ctx.home) if ctx.home else self.hermes_home
        worker, fresh = self._worker(home)
        if fresh:
            emit("status", {"text": STARTING_TEXT})
        cfg = self.config
        request = {"op": "turn", "t": secrets.token_hex(8), "history": plain_history(history),
                   "message": user_message, "toolsets": self.toolsets,
                   "base_url": cfg.base_url, "api_key": cfg.api_key,
                   # the backend's default is what some profile resolved: each profile resolves its own
                   "model": ctx.model if ctx.model and ctx.model != self.model else cfg.model,
                   "system": ctx.system_prompt,
                   "cwd": str(ctx.workspace) if ctx.workspace else None}
        if attachments:
            request["message"] = user_content(user_message, attachments, images=True)
            request["persist"] = user_message
        link = worker.open(request["t"])
        try:
            worker.send(request)
            return self._relay(worker, request["t"], link, emit, cancel_event, ctx)
        finally:
            worker.close(request["t"])

    def _relay(self, worker: _Worker, tid: str, link: queue.Queue, emit: Emit,
               cancel_event: threading.Event, ctx: TurnContext) -> dict | None:
        """Pass the worker's lines on until the turn ends; returns at once on cancel."""
        while True:
            if cancel_event.is_set():
                try:
                    worker.send({"op": "cancel", "t": tid})
                except BackendError:
                    pass
                return None
            try:
                msg = link.get(timeout=0.1)
            except queue.Empty:
                continue
            if "ev" in msg:
                emit(str(msg["ev"]), msg.get("data") or {})
            elif "ask" in msg:
                data = msg.get("data") or {}
                if msg["ask"] == "approval":
                    answer = ctx.ask_approval(str(data.get("tool", "terminal")), str(data.get("command", "")),
                                              str(data.get("description", "")))
                else:
                    answer = ctx.ask_clarify(str(data.get("question", "")), data.get("choices"))
                try:
                    worker.send({"op": "answer", "t": tid, "q": msg.get("q"), "answer": answer})
                except BackendError:
                    pass                      # the dead worker's error line follows
            elif "error" in msg:
                err = msg["error"] or {}
                raise BackendError(str(err.get("message") or "Hermes failed"), type=str(err.get("type") or "provider_error"))
            elif "end" in msg:
                result = msg["end"] or {}
                if result.get("model") and not self.model:     # what Hermes resolved, for /health and the list
                    self.model = result["model"]
                return self._settle(result, emit, cancel_event)

    @staticmethod
    def _settle(result: dict, emit: Emit, cancel_event: threading.Event) -> dict | None:
        """Turn the worker's summary of Hermes's result into our outcome: an error, or ``{"usage"}``."""
        if cancel_event.is_set() or result.get("interrupted"):
            return None
        final = result.get("final_response")
        if result.get("failed") or (result.get("error") and not result.get("completed", True)):
            raise BackendError(str(result.get("error") or final or "Hermes reported a failed turn"),
                               type="provider_error")
        if final and not result.get("streamed"):          # a provider that did not stream
            emit("token", {"text": final})
        usage = {k: result[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens", "api_calls")
                 if isinstance(result.get(k), int)}
        return {"usage": usage or None}
