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
  "api_key"?, "model"?, "system"?, "cwd"?}`` starts turn ``t`` (``system``: text added to
  Hermes's system prompt; ``cwd``: the absolute folder its tools work in);
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

Approvals: every call of a tool that changes the host asks first (:func:`host_change`
says which: ``terminal``, ``execute_code``, ``write_file``, ``patch``, ``close_terminal``,
and ``process`` / ``computer_use`` actions that act); read-only tools (``read_file``,
``search_files``, web, memory, todo, clarify …) never ask. The gate sits at hermes-agent's
single dispatch point, ``tools.registry.registry.dispatch`` (:func:`install_gate`), which
every registry tool passes through, also the ones ``execute_code`` calls from its sandbox
and parallel tool calls; it finds the turn through a context variable that hermes-agent
copies into its tool threads, and a host-changing call with no turn to ask is refused.
The question is ``{tool, command, description}``: ``command`` is the exact shell command
or code, for a file write or patch the resolved path(s) (so "the same" write is the same
tool on the same file), ``process id`` for a process action; ``description`` says what
happens (hermes-agent's own danger description of a command, the size and first lines of
a write, the text a patch replaces). The server's rules (once / session / always / deny,
timeout = deny) decide; a denied call does not run and the model is told so.

hermes-agent also asks on its own before a command its detectors flag as dangerous (and
before a memory write when ``memory.write_approval`` is on) through the per-thread
callback of ``tools.terminal_tool.set_approval_callback``, in an interactive context
(``tools.approval.set_hermes_interactive_context``); both are set on each turn's thread.
Inside a terminal call the user just allowed, that prompt is answered ``once`` from the
grant (one card per call); elsewhere it asks the server. hermes-agent is told ``once`` or
``deny`` only, so it never stores a grant of its own.

Workspace: a turn's ``cwd`` (the chat's workspace folder) is registered as the cwd of the
turn's own hermes task id (``tools.terminal_tool.register_task_env_overrides``, keyed per
task, so concurrent turns of a profile each keep theirs): the terminal starts there and
relative file paths resolve there. It is cleared when the turn ends.

End of stdin means the server is gone: the worker exits at once, and a question still
open is never answered "yes".
"""
from __future__ import annotations

import contextvars
import itertools
import json
import os
import re
import sys
import threading
import time

QUESTION_POLL_SECONDS = 0.1
DESCRIPTION_PREVIEW_CHARS = 600       # of a write's content or a patch shown in the approval card
# tools that change the host, and the actions of the others that only read
HOST_TOOLS = frozenset({"terminal", "execute_code", "write_file", "patch", "close_terminal", "process",
                        "computer_use"})
READ_ONLY_ACTIONS = {"process": frozenset({"list", "poll", "log", "wait"}),
                     "computer_use": frozenset({"capture", "wait", "list_apps", "list_windows"})}
PROCESS_ACTIONS = {"kill": "stop a background process", "write": "send input to a background process",
                   "submit": "send a line to a background process", "close": "close a background process's input"}
_PATCH_FILE = re.compile(r"^\*\*\* (?:Update File|Add File|Delete File|Move to): (.+?)\s*$", re.M)

_TURN: contextvars.ContextVar = contextvars.ContextVar("hermes_webui_turn", default=None)
_ALLOWED_CALL: contextvars.ContextVar = contextvars.ContextVar("hermes_webui_allowed_call", default=None)


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
    """Whether a tool result reads as a failure: our own refusal (``_blocked``, e.g. a denied
    command) always does, since hermes-agent judges a ``terminal`` result by its exit code
    alone and would show a denied command as done; else hermes-agent's own check."""
    try:
        if json.loads(result).get("status") == "blocked":
            return True
    except (ValueError, AttributeError, TypeError):
        pass
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


# ---------------------------------------------------------------- the approval gate


def _resolve(path, task_id) -> str:
    """``path`` as the file tools will resolve it (the task's cwd, i.e. the chat's workspace)."""
    text = str(path or "")
    try:
        from tools.file_tools import _resolve_path_for_task   # private: if it moves, resolve ourselves
        return str(_resolve_path_for_task(text, task_id or "default"))
    except Exception:
        turn = _TURN.get()
        base = (turn.cwd if turn is not None else None) or os.getcwd()
        return os.path.normpath(os.path.join(base, os.path.expanduser(text)))


def _preview(text: str) -> str:
    text = str(text)
    return text if len(text) <= DESCRIPTION_PREVIEW_CHARS else text[:DESCRIPTION_PREVIEW_CHARS] + "…"


def _terminal_change(args: dict) -> tuple[str, str]:
    command = str(args.get("command") or "")
    try:
        from tools.approval import detect_dangerous_command
        dangerous, _key, why = detect_dangerous_command(command)
    except Exception:
        dangerous, why = False, None
    turn = _TURN.get()
    where = args.get("workdir") or (turn.cwd if turn is not None else None)
    parts = [str(why) if dangerous and why else "run a shell command"]
    if where:
        parts.append(f"in {where}")
    if args.get("background"):
        parts.append("(in the background)")
    return command, " ".join(parts)


def _write_change(args: dict, task_id) -> tuple[str, str]:
    path = _resolve(args.get("path"), task_id)
    content = str(args.get("content") or "")
    size = len(content.encode("utf-8", "replace"))
    lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
    verb = "replace the file with" if os.path.exists(path) else "create the file with"
    return path, f"{verb} {lines} line{'s' if lines != 1 else ''} ({size:,} bytes):\n{_preview(content)}"


def _patch_change(args: dict, task_id) -> tuple[str, str]:
    if args.get("mode") == "patch" or (args.get("patch") and not args.get("path")):
        text = str(args.get("patch") or "")
        paths = list(dict.fromkeys(_resolve(p, task_id) for p in _PATCH_FILE.findall(text)))
        return "\n".join(paths) or "(a patch naming no file)", f"apply this patch:\n{_preview(text)}"
    every = " (every occurrence)" if args.get("replace_all") else ""
    return (_resolve(args.get("path"), task_id),
            f"replace{every}:\n{_preview(args.get('old_string') or '')}\nwith:\n{_preview(args.get('new_string') or '')}")


def host_change(name: str, args: dict, task_id=None) -> tuple[str, str] | None:
    """``(command, description)`` of a tool call that changes the host, or None for one that
    only reads (and for tools this gate does not cover). ``command`` is what the server's
    rules key on together with the tool name (module doc)."""
    if name not in HOST_TOOLS:
        return None
    action = str(args.get("action") or "")
    if action in READ_ONLY_ACTIONS.get(name, ()):
        return None
    if name == "terminal":
        return _terminal_change(args)
    if name == "write_file":
        return _write_change(args, task_id)
    if name == "patch":
        return _patch_change(args, task_id)
    if name == "execute_code":
        return str(args.get("code") or ""), "run this Python code (the tools it calls ask on their own)"
    if name == "process":
        data = f": {args['data']}" if args.get("data") else ""
        return f"{action} {args.get('session_id') or ''}".strip() + data, PROCESS_ACTIONS.get(action, f"{action} a background process")
    if name == "close_terminal":
        return str(args.get("process_id") or "all"), "close a terminal session and stop what runs in it"
    return json.dumps(args, sort_keys=True, ensure_ascii=False, default=str), f"{action or name} on the desktop"


def _blocked(name: str, why: str) -> str:
    return json.dumps({"error": f"BLOCKED: {why}. The user has NOT consented to this {name} call: do NOT "
                                "retry it or reach the same outcome another way; ask the user instead.",
                       "status": "blocked"}, ensure_ascii=False)


def install_gate(registry) -> None:
    """Wrap ``registry.dispatch`` (hermes-agent's one dispatch point) so a host-changing call
    asks the running turn's user first (module doc). Idempotent."""
    original = registry.dispatch
    if getattr(original, "_webui_gate", False):
        return

    def dispatch(name, args, **kwargs):
        try:
            change = host_change(str(name), args if isinstance(args, dict) else {}, kwargs.get("task_id"))
        except Exception as exc:             # a call we cannot describe still asks
            change = (json.dumps(args, ensure_ascii=False, default=str), f"{name} ({exc})")
        if change is None:
            return original(name, args, **kwargs)
        turn = _TURN.get()
        if turn is None:
            return _blocked(str(name), "no chat turn was there to ask the user")
        command, description = change
        if not turn.allow(str(name), command, description):
            return _blocked(str(name), "User denied this call")
        token = _ALLOWED_CALL.set((str(name), command))
        try:
            return original(name, args, **kwargs)
        finally:
            _ALLOWED_CALL.reset(token)

    dispatch._webui_gate = True
    registry.dispatch = dispatch


class WorkerTurn:
    """One turn on its own thread: hermes-agent's callbacks become protocol lines."""

    def __init__(self, chan: Channel, req: dict, agent_class):
        self.chan, self.req, self.agent_class = chan, req, agent_class
        self.tid = str(req["t"])
        self.cwd = req.get("cwd") or None
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

    def allow(self, tool: str, command: str, description: str) -> bool:
        """Ask the server whether ``tool`` may run ``command`` (its rules may answer at once)."""
        choice = self.ask("approval", {"tool": tool, "command": command, "description": description}, "deny")
        return choice in ("once", "session", "always")

    def approve(self, command: str, description: str, *, allow_permanent: bool = True,
                smart_denied: bool = False) -> str:
        """hermes-agent's approval callback: ``once`` if the user allowed, else ``deny``.
        Inside a terminal call the gate just allowed, the grant answers (no second card)."""
        allowed = _ALLOWED_CALL.get()
        if allowed is not None and allowed[0] == "terminal":
            return "once"
        return "once" if self.allow(self.current_tool, str(command), str(description or "")) else "deny"

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
        from tools.terminal_tool import (clear_task_env_overrides, register_task_env_overrides,
                                         set_approval_callback)

        req = self.req
        runtime = _runtime(req)
        task_id = f"webui-{self.tid}"          # hermes's per-session caches and this turn's cwd
        set_approval_callback(self.approve)
        interactive = set_hermes_interactive_context(True)
        session_key = set_current_session_key(task_id)
        turn_token = _TURN.set(self)
        if self.cwd:
            register_task_env_overrides(task_id, {"cwd": self.cwd})
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
            kwargs = {"conversation_history": req.get("history") or [], "task_id": task_id}
            if req.get("persist") is not None:
                kwargs["persist_user_message"] = req["persist"]
            result = self.agent.run_conversation(req["message"], **kwargs) or {}
        finally:
            clear_task_env_overrides(task_id)
            _TURN.reset(turn_token)
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
        from tools.registry import registry
        install_gate(registry)
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
