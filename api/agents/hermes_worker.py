"""The process that runs hermes-agent for one profile (docs/architecture.md §5).

:class:`api.agents.hermes.HermesBackend` starts one per agent home, as ``python -m
<this module>`` with ``HERMES_HOME`` set to that profile's home. hermes-agent then reads
and changes process-wide state (``os.environ`` with the home's ``.env``, ``sys.stdout``,
logging, module-level caches such as its command allowlist) only in a process that
belongs to one home, so two profiles never see each other's memory, skills, config or
keys, and their turns run at once. Turns of one profile run in threads of its worker,
the way hermes-agent's own gateway runs them.

Protocol: JSON lines (ASCII, so any text survives). The server writes to stdin:

- ``{"op": "turn", "t", "message", "persist"?, "history", "toolsets", "base_url"?,
  "api_key"?, "model"?, "system"?}`` starts turn ``t`` (``system``: text added to
  Hermes's system prompt);
- ``{"op": "answer", "t", "q", "answer"}`` answers question ``q`` of turn ``t``;
- ``{"op": "cancel", "t"}`` interrupts turn ``t`` (its open questions get their default).

The worker writes to its original stdout (anything hermes-agent prints there goes to
stderr instead):

- ``{"t", "ev", "data"}``: an event of our stream (``token``, ``reasoning``, ``tool``,
  ``tool_complete``);
- ``{"t", "ask": "approval"|"clarify", "q", "data"}``: a question for the user;
  ``approval`` data is ``{tool, command, description}``, ``clarify`` data ``{question,
  choices?}``;
- ``{"t", "end": {final_response, streamed, model, failed, error, completed,
  interrupted, prompt_tokens, …}}`` or ``{"t", "error": {message, type}}``;
- ``{"fatal": message}`` when hermes-agent cannot be imported (then it exits).

Approvals: hermes-agent asks before a command its detectors flag as dangerous (and
before a memory write when ``memory.write_approval`` is on) through the per-thread
callback of ``tools.terminal_tool.set_approval_callback``, and only in an interactive
context (``tools.approval.set_hermes_interactive_context``); both are set on each turn's
thread (hermes-agent carries them into its tool threads). The callback asks the server,
whose rules (once / session / always / deny, timeout = deny) decide; hermes-agent is
told ``once`` or ``deny`` only, so it never stores a grant of its own. End of stdin
means the server is gone: the worker exits at once, and a question still open is never
answered "yes".
"""
from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time

QUESTION_POLL_SECONDS = 0.1


class TurnError(Exception):
    """A turn failed before or outside hermes-agent's own error handling."""

    def __init__(self, message: str, type: str = "provider_error"):
        super().__init__(message)
        self.message, self.type = message, type


class Channel:
    """The protocol's output: one JSON object per line, whole lines only."""

    def __init__(self, out):
        self._out = out
        self._lock = threading.Lock()

    def send(self, obj: dict) -> None:
        line = json.dumps(obj, default=str) + "\n"
        with self._lock:
            self._out.write(line)
            self._out.flush()


def _is_error_result(name: str, result: str) -> bool:
    try:
        from agent.display import _detect_tool_failure
        return bool(_detect_tool_failure(name, result)[0])
    except Exception:  # a private helper: if it moves, fall back to "not an error"
        return False


def _runtime(req: dict) -> dict:
    """AIAgent keyword arguments naming the endpoint and the model: the server's
    ``--base-url``, else the provider of this home's ``config.yaml``."""
    if req.get("base_url"):
        return {"base_url": req["base_url"], "api_key": req.get("api_key") or "no-key-needed",
                "model": req.get("model") or "default"}
    try:
        from hermes_cli.runtime_provider import _get_model_config, resolve_runtime_provider
        runtime = resolve_runtime_provider(explicit_api_key=req.get("api_key"))
        model = req.get("model") or (_get_model_config() or {}).get("default") or ""
    except Exception as exc:
        raise TurnError(f"Hermes has no usable model provider ({exc}). Run `hermes setup`, or start "
                        "with --base-url URL --model NAME.", "backend_unavailable") from None
    keys = ("base_url", "api_key", "provider", "api_mode", "command", "args", "credential_pool")
    return {**{k: runtime.get(k) for k in keys if runtime.get(k) is not None}, "model": model}


class WorkerTurn:
    """One turn on its own thread: hermes-agent's callbacks become protocol lines."""

    def __init__(self, chan: Channel, req: dict, agent_class):
        self.chan, self.req, self.agent_class = chan, req, agent_class
        self.tid = str(req["t"])
        self.cancel = threading.Event()
        self.agent = None
        self.streamed = False
        self.current_tool = "terminal"
        self._started: dict[str, float] = {}
        self._questions: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # -- questions ------------------------------------------------------------

    def ask(self, kind: str, data: dict, default: str) -> str:
        """Send a question and block until the server answers it (or the turn is cancelled)."""
        qid = str(next(self._ids))
        slot = {"done": threading.Event(), "answer": None}
        with self._lock:
            self._questions[qid] = slot
        self.chan.send({"t": self.tid, "ask": kind, "q": qid, "data": data})
        while not slot["done"].wait(QUESTION_POLL_SECONDS):
            if self.cancel.is_set():
                break
        with self._lock:
            self._questions.pop(qid, None)
        answer = slot["answer"]
        return answer if isinstance(answer, str) else default

    def answer(self, qid: str, answer) -> None:
        with self._lock:
            slot = self._questions.get(str(qid))
        if slot is not None:
            slot["answer"] = answer
            slot["done"].set()

    def approve(self, command: str, description: str, *, allow_permanent: bool = True,
                smart_denied: bool = False) -> str:
        """hermes-agent's approval callback: ``once`` if the user allowed, else ``deny``."""
        choice = self.ask("approval", {"tool": self.current_tool, "command": str(command),
                                       "description": str(description or "")}, "deny")
        return "once" if choice in ("once", "session", "always") else "deny"

    def clarify(self, question: str, choices=None) -> str:
        """hermes-agent's clarify callback: the user's answer (``""`` if none came)."""
        data = {"question": str(question)}
        if choices:
            data["choices"] = [str(c) for c in choices]
        return self.ask("clarify", data, "")

    # -- events -----------------------------------------------------------------

    def _event(self, name: str, data: dict) -> None:
        self.chan.send({"t": self.tid, "ev": name, "data": data})

    def delta(self, text) -> None:
        if text:                      # None marks the end of a streamed segment
            self.streamed = True
            self._event("token", {"text": text})

    def reasoning(self, text) -> None:
        if text:
            self._event("reasoning", {"text": text})

    def tool_start(self, call_id, name, args) -> None:
        self._started[str(call_id)] = time.monotonic()
        self.current_tool = str(name)
        self._event("tool", {"id": call_id, "name": name, "args": args})

    def tool_complete(self, call_id, name, args, result) -> None:
        began = self._started.pop(str(call_id), time.monotonic())
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        self._event("tool_complete", {"id": call_id, "name": name, "result": text,
                                      "duration_ms": int((time.monotonic() - began) * 1000),
                                      "is_error": _is_error_result(name, text)})

    # -- the turn ----------------------------------------------------------------

    def stop(self) -> None:
        """Cancel: interrupt hermes-agent and give open questions their default."""
        self.cancel.set()
        if self.agent is not None:
            self.agent.interrupt()

    def run(self) -> None:
        try:
            self.chan.send({"t": self.tid, "end": self._run()})
        except TurnError as exc:
            self.chan.send({"t": self.tid, "error": {"message": exc.message, "type": exc.type}})
        except Exception as exc:
            self.chan.send({"t": self.tid, "error": {"message": f"Hermes failed: {type(exc).__name__}: {exc}",
                                                     "type": "provider_error"}})

    def _run(self) -> dict:
        from tools.approval import (reset_current_session_key, reset_hermes_interactive_context,
                                    set_current_session_key, set_hermes_interactive_context)
        from tools.terminal_tool import set_approval_callback

        req = self.req
        runtime = _runtime(req)
        set_approval_callback(self.approve)
        interactive = set_hermes_interactive_context(True)
        session_key = set_current_session_key(f"webui-{self.tid}")   # hermes's per-session caches
        try:
            try:
                self.agent = self.agent_class(
                    **runtime, enabled_toolsets=list(req.get("toolsets") or []), quiet_mode=True,
                    platform="webui", stream_delta_callback=self.delta, reasoning_callback=self.reasoning,
                    tool_start_callback=self.tool_start, tool_complete_callback=self.tool_complete,
                    clarify_callback=self.clarify, ephemeral_system_prompt=req.get("system") or None)
            except Exception as exc:
                raise TurnError(f"Hermes could not start: {exc}") from None
            if self.cancel.is_set():
                return {"interrupted": True}
            kwargs = {"conversation_history": req.get("history") or []}
            if req.get("persist") is not None:
                kwargs["persist_user_message"] = req["persist"]
            result = self.agent.run_conversation(req["message"], **kwargs) or {}
        finally:
            reset_current_session_key(session_key)
            reset_hermes_interactive_context(interactive)
            set_approval_callback(None)
            self._close()
        keys = ("final_response", "failed", "error", "completed", "interrupted",
                "prompt_tokens", "completion_tokens", "total_tokens", "api_calls")
        out = {k: result.get(k) for k in keys if k in result}
        out["error"] = None if out.get("error") is None else str(out["error"])
        return {**out, "streamed": self.streamed, "model": runtime.get("model") or None}

    def _close(self) -> None:
        if self.agent is None:
            return
        try:
            if self.cancel.is_set():
                # hermes-agent 0.19 clears its interrupt flag when the turn ends; a
                # streaming request whose close it deferred to the request's worker
                # thread then drains the model's whole reply. Raised again, the flag
                # stops that worker at its next chunk.
                self.agent.interrupt()
            self.agent.close()
        except Exception as exc:
            print(f"hermes worker: closing the agent failed: {exc}", file=sys.stderr)


def main() -> None:
    """Serve the protocol until stdin ends (see the module doc)."""
    out = os.fdopen(os.dup(1), "w", encoding="ascii", newline="\n")
    inp = os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)                       # stray prints from hermes-agent go to stderr,
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)                    # and a stray input() reads nothing
    os.close(null)
    chan = Channel(out)
    try:
        from run_agent import AIAgent
    except Exception as exc:
        chan.send({"fatal": f"hermes-agent cannot be imported ({exc}). Install it with: "
                            "pip install 'hermes-webui[hermes]'"})
        os._exit(3)
    turns: dict[str, WorkerTurn] = {}
    lock = threading.Lock()

    def run(turn: WorkerTurn) -> None:
        try:
            turn.run()
        finally:
            with lock:
                turns.pop(turn.tid, None)

    for raw in inp:
        try:
            msg = json.loads(raw)
        except ValueError:
            continue
        op, tid = msg.get("op"), str(msg.get("t"))
        if op == "turn":
            turn = WorkerTurn(chan, msg, AIAgent)
            with lock:
                turns[tid] = turn
            threading.Thread(target=run, args=(turn,), name=f"hermes-turn-{tid}", daemon=True).start()
            continue
        with lock:
            turn = turns.get(tid)
        if turn is not None and op == "answer":
            turn.answer(msg.get("q"), msg.get("answer"))
        elif turn is not None and op == "cancel":
            turn.stop()
    os._exit(0)                          # the server is gone: nothing may run on unanswered


if __name__ == "__main__":
    main()
