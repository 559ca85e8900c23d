"""The scripted ``fake`` backend of docs/architecture.md §5: deterministic turns for tests and demos.

A plain message is echoed word by word: ``"echo:"``, ``" w1"``, ``" w2"`` … A message
that is a JSON object with a key ``"fake"`` is a script::

    {"fake": {"tokens": N, "delay_ms": D, "reasoning": "…",
              "tools": [{"name": "…", "args": {…}, "result": "…", "duration_ms": D}],
              "pause_ms": P, "error": "…", "hang": true}}

Token i (0-based) is ``"t<i> "``. Order: reasoning, the first ``N // 2`` tokens, the
tools, the pause (silence), the remaining tokens, then the error or the hang (until
cancelled). ``delay_ms`` is waited before each token. Defaults: 5 tokens, no delay.
Every wait returns early on cancel. Before all of that, each attachment of the user
message, in order, is the token ``"[attachment <name> <size> <mime>] "``.

Agent control (docs/architecture.md §5): ``"clarify": {"question", "choices"?}`` asks after the
reasoning and streams the answer as the token ``"answer: <text> "``; ``"approval":
{"tool", "command", "description"}`` asks before the tools (denied: each tool completes
with ``is_error`` and ``"denied by the user"``); ``"approval_timeout_ms"`` shortens the
wait for both; ``"finish": "length"`` ends the reply as cut by the token limit.
``"reasoning_after_tools": "…"`` is more reasoning, emitted after the tools (before the
pause and the remaining tokens): a reply whose reasoning does not all come first.
"""
from __future__ import annotations

import json
import threading
from typing import Sequence

from .base import BackendError, Emit, TurnContext

DENIED_RESULT = "denied by the user"


def parse_script(message: str) -> dict | None:
    """The ``fake`` script of a message, or None for a plain message."""
    text = message.strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("fake"), dict):
        return obj["fake"]
    return None


MODELS = ("fake-echo", "fake-echo-2")


def _words(content) -> int:
    return len(content.split()) if isinstance(content, str) else 0


class FakeBackend:
    name = "fake"
    model = "fake-echo"

    def list_models(self) -> list[dict]:
        """The two fake models (docs/architecture.md §5): same behaviour, different ids."""
        return [{"id": m, "label": m, "backend": "fake", "vision": False, "context_length": 4096}
                for m in MODELS]

    def run_turn(self, history: list[dict], user_message: str, emit: Emit,
                 cancel_event: threading.Event, attachments: Sequence = (), ctx: TurnContext | None = None) -> dict | None:
        """One scripted turn; reports ``usage {prompt_tokens: words in history + message,
        completion_tokens: tokens emitted}`` and ``finish_reason`` (``length`` when the
        script says ``"finish": "length"``). Continuing (``ctx.continue_text``) replays the
        script's tokens."""
        ctx = ctx or TurnContext()
        emitted = [0]

        def counted(event: str, data: dict) -> None:
            if event == "token":
                emitted[0] += 1
            emit(event, data)

        for att in attachments:
            counted("token", {"text": f"[attachment {att.name} {att.size} {att.mime}] "})
        script = parse_script(user_message)
        finish = "stop"
        if script is None:
            words = user_message.split()
            for text in ["echo:"] + [" " + w for w in words]:
                if cancel_event.is_set():
                    return None
                counted("token", {"text": text})
        else:
            if self._run_script(script, counted, cancel_event, ctx) is None:
                return None
            finish = "length" if script.get("finish") == "length" else "stop"
        prompt = sum(_words(m.get("content")) for m in history) + _words(user_message)
        return {"usage": {"prompt_tokens": prompt, "completion_tokens": emitted[0]}, "finish_reason": finish}

    def _run_script(self, s: dict, emit: Emit, cancel: threading.Event, ctx: TurnContext) -> bool | None:
        n = int(s.get("tokens", 5))
        delay = max(0.0, float(s.get("delay_ms", 0)) / 1000)
        timeout = float(s["approval_timeout_ms"]) / 1000 if "approval_timeout_ms" in s else None
        if s.get("reasoning"):
            emit("reasoning", {"text": str(s["reasoning"])})
        if isinstance(s.get("clarify"), dict):
            c = s["clarify"]
            choices = c.get("choices") if isinstance(c.get("choices"), list) else None
            answer = ctx.ask_clarify(str(c.get("question", "")), choices, timeout)
            if cancel.is_set():
                return None
            emit("token", {"text": f"answer: {answer} "})

        def tokens(lo: int, hi: int) -> bool:
            for i in range(lo, hi):
                if (cancel.wait(delay) if delay else cancel.is_set()):
                    return False
                emit("token", {"text": f"t{i} "})
            return True

        half = n // 2
        if not tokens(0, half):
            return None
        allowed = True
        if isinstance(s.get("approval"), dict):
            a = s["approval"]
            choice = ctx.ask_approval(str(a.get("tool", "terminal")), str(a.get("command", "")),
                                      str(a.get("description", "")), timeout)
            if cancel.is_set():
                return None
            allowed = choice != "deny"
        for j, tool in enumerate(s.get("tools") or []):
            call_id = str(tool.get("id") or f"call_{j}")
            name = str(tool.get("name", "tool"))
            emit("tool", {"id": call_id, "name": name, "args": tool.get("args", {})})
            if not allowed:
                emit("tool_complete", {"id": call_id, "name": name, "result": DENIED_RESULT,
                                       "duration_ms": 0, "is_error": True})
                continue
            duration_ms = int(tool.get("duration_ms", 0))
            if cancel.wait(duration_ms / 1000):
                return None
            emit("tool_complete", {"id": call_id, "name": name, "result": tool.get("result", ""),
                                   "duration_ms": duration_ms, "is_error": bool(tool.get("is_error", False))})
        if s.get("reasoning_after_tools"):
            emit("reasoning", {"text": str(s["reasoning_after_tools"])})
        if s.get("pause_ms") and cancel.wait(float(s["pause_ms"]) / 1000):
            return None
        if not tokens(half, n):
            return None
        if s.get("error"):
            raise BackendError(str(s["error"]), type="fake_error")
        if s.get("hang"):
            cancel.wait()
        return True
