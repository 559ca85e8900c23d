"""The scripted ``fake`` backend of DESIGN §8: deterministic turns for tests and demos.

A plain message is echoed word by word: ``"echo:"``, ``" w1"``, ``" w2"`` … A message
that is a JSON object with a key ``"fake"`` is a script::

    {"fake": {"tokens": N, "delay_ms": D, "reasoning": "…",
              "tools": [{"name": "…", "args": {…}, "result": "…", "duration_ms": D}],
              "pause_ms": P, "error": "…", "hang": true}}

Token i (0-based) is ``"t<i> "``. Order: reasoning, the first ``N // 2`` tokens, the
tools, the pause (silence), the remaining tokens, then the error or the hang (until
cancelled). ``delay_ms`` is waited before each token. Defaults: 5 tokens, no delay.
Every wait returns early on cancel.
"""
from __future__ import annotations

import json
import threading

from .base import BackendError, Emit


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


class FakeBackend:
    name = "fake"
    model = "fake-echo"

    def run_turn(self, history: list[dict], user_message: str, emit: Emit,
                 cancel_event: threading.Event) -> dict | None:
        script = parse_script(user_message)
        if script is None:
            words = user_message.split()
            for text in ["echo:"] + [" " + w for w in words]:
                if cancel_event.is_set():
                    return None
                emit("token", {"text": text})
            return {"usage": {"output_tokens": len(words) + 1}}
        return self._run_script(script, emit, cancel_event)

    def _run_script(self, s: dict, emit: Emit, cancel: threading.Event) -> dict | None:
        n = int(s.get("tokens", 5))
        delay = max(0.0, float(s.get("delay_ms", 0)) / 1000)
        if s.get("reasoning"):
            emit("reasoning", {"text": str(s["reasoning"])})

        def tokens(lo: int, hi: int) -> bool:
            for i in range(lo, hi):
                if (cancel.wait(delay) if delay else cancel.is_set()):
                    return False
                emit("token", {"text": f"t{i} "})
            return True

        half = n // 2
        if not tokens(0, half):
            return None
        for j, tool in enumerate(s.get("tools") or []):
            call_id = str(tool.get("id") or f"call_{j}")
            name = str(tool.get("name", "tool"))
            emit("tool", {"id": call_id, "name": name, "args": tool.get("args", {})})
            duration_ms = int(tool.get("duration_ms", 0))
            if cancel.wait(duration_ms / 1000):
                return None
            emit("tool_complete", {"id": call_id, "name": name, "result": tool.get("result", ""),
                                   "duration_ms": duration_ms, "is_error": bool(tool.get("is_error", False))})
        if s.get("pause_ms") and cancel.wait(float(s["pause_ms"]) / 1000):
            return None
        if not tokens(half, n):
            return None
        if s.get("error"):
            raise BackendError(str(s["error"]), type="fake_error")
        if s.get("hang"):
            cancel.wait()
        return {"usage": {"output_tokens": n}}
