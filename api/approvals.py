"""Human in the loop (docs/api.md): approvals of risky tool calls and clarifying questions.

Both are questions a running turn asks and waits on. :func:`ask` registers one, emits it
as an event of the turn's stream (``approval {approval_id, tool, command, description}``
or ``clarify {clarify_id, question, choices?}``), and blocks until :func:`respond`
answers it, the turn is cancelled, or the timeout passes (then the caller's default:
``deny``, or an empty answer). An open question lives in memory only, tied to its
live turn: a server restart settles that turn as interrupted and nothing is ever taken
as granted.

Rules that spare the user the same question again:

- ``session``: in memory, per session (a restart asks again, which is the safe side);
- ``always``: stored per profile in ``<profile dir>/approvals.json``
  (``{"always": [{tool, command, created_at}]}``, written atomically), listed and
  revoked through :func:`always_rules` / :func:`revoke_always`.

Never imports Flask.
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_write_bytes
from .errors import ApiError

log = logging.getLogger(__name__)
CHOICES = ("once", "session", "always", "deny")
RULES_FILE = "approvals.json"
DENIED_RESULT = "denied by the user"
MAX_ALWAYS_RULES = 1000


@dataclass
class Question:
    """One open (or just answered) question of a live turn."""

    kind: str            # "approval" | "clarify"
    qid: str
    stream_id: str
    session_id: str
    data: dict
    answered: threading.Event = field(default_factory=threading.Event)
    answer: str | None = None


_LOCK = threading.Lock()
_QUESTIONS: dict[str, Question] = {}            # by id, until the turn ends
_SESSION_RULES: dict[str, set[tuple[str, str]]] = {}
_RULES_LOCK = threading.Lock()                  # the approvals.json files


def ask(kind: str, stream_id: str, session_id: str, data: dict, emit, cancel_event: threading.Event,
        timeout: float, *, default: str) -> str:
    """Emit a question (event ``kind``), wait for its answer and return it; ``default``
    after ``timeout`` seconds or a cancel. Then emits ``<kind>_answered {<kind>_id,
    answer, timed_out}`` so every tab can close the question."""
    qid = secrets.token_hex(8)
    question = Question(kind, qid, stream_id, session_id, dict(data))
    with _LOCK:
        _QUESTIONS[qid] = question
    emit(kind, {f"{kind}_id": qid, **data})
    deadline = time.monotonic() + max(0.0, timeout)
    while not question.answered.is_set():
        left = deadline - time.monotonic()
        if left <= 0 or cancel_event.is_set():
            break
        question.answered.wait(min(left, 0.1))
    with _LOCK:
        timed_out = question.answer is None
        question.answered.set()            # a late answer now gets 409
        answer = default if timed_out else question.answer
    emit(f"{kind}_answered", {f"{kind}_id": qid, "answer": answer, "timed_out": timed_out})
    return answer


def respond(kind: str, stream_id: str, qid: str, answer: str) -> None:
    """Answer an open question. ApiError 404 unknown id (or another stream's), 409 answered."""
    with _LOCK:
        question = _QUESTIONS.get(qid)
        if question is None or question.kind != kind or question.stream_id != stream_id:
            raise ApiError(f"no open {kind} {qid[:40]!r} in stream {stream_id[:40]!r} "
                           "(the turn may have ended; reload the chat)", 404)
        if question.answered.is_set():
            raise ApiError(f"this {kind} was already answered or timed out", 409)
        question.answer = answer
        question.answered.set()


def open_approvals(session_id: str) -> list[dict]:
    """The unanswered approvals of ``session_id``: ``[{approval_id, stream_id, tool, command, description}]``."""
    with _LOCK:
        found = [q for q in _QUESTIONS.values()
                 if q.session_id == session_id and q.kind == "approval" and not q.answered.is_set()]
    return [{"approval_id": q.qid, "stream_id": q.stream_id, **q.data} for q in found]


def forget_stream(stream_id: str) -> None:
    """Drop every question of a finished turn (answering one now gives 404)."""
    with _LOCK:
        for qid in [k for k, q in _QUESTIONS.items() if q.stream_id == stream_id]:
            q = _QUESTIONS.pop(qid)
            q.answered.set()


# ---------------------------------------------------------------- unattended turns


UNATTENDED_DENIED = "denied: this scheduled task may not use it (add it to the task's allowed tools)"


class UnattendedPolicy:
    """Answers a turn's questions when nobody is there (a scheduled task's run).

    ``allowed_tools``: the tool names the task may use without asking; any other tool is
    denied at once (no event waits for a person) and recorded in :attr:`denied` as
    ``{tool, command, reason}``. A clarifying question gets an empty answer at once.
    Profile rules (``always``) do not widen it: a task runs with what it declares.
    """

    def __init__(self, allowed_tools):
        self.allowed_tools = frozenset(allowed_tools or ())
        self.denied: list[dict] = []
        self._lock = threading.Lock()

    def decide(self, tool: str, command: str) -> str:
        """``once`` for an allowed tool, else ``deny`` (recorded)."""
        if tool in self.allowed_tools:
            return "once"
        with self._lock:
            self.denied.append({"tool": tool, "command": command, "reason": UNATTENDED_DENIED})
        return "deny"


# ---------------------------------------------------------------- rules


def allowed_by_rule(profile_dir: Path, session_id: str, tool: str, command: str) -> str | None:
    """``"session"`` or ``"always"`` if a rule already grants ``tool`` + ``command``, else None."""
    with _LOCK:
        if (tool, command) in _SESSION_RULES.get(session_id, ()):
            return "session"
    if any(r["tool"] == tool and r["command"] == command for r in always_rules(profile_dir)):
        return "always"
    return None


def remember(profile_dir: Path, session_id: str, tool: str, command: str, choice: str) -> None:
    """Record a ``session`` or ``always`` answer (``always`` atomically on disk)."""
    if choice == "session":
        with _LOCK:
            _SESSION_RULES.setdefault(session_id, set()).add((tool, command))
    elif choice == "always":
        with _RULES_LOCK:
            rules = always_rules(profile_dir)
            if not any(r["tool"] == tool and r["command"] == command for r in rules):
                rules.append({"tool": tool, "command": command, "created_at": time.time()})
                _write_rules(profile_dir, rules[-MAX_ALWAYS_RULES:])


def forget_session(session_id: str) -> None:
    """Drop a deleted session's ``session`` rules."""
    with _LOCK:
        _SESSION_RULES.pop(session_id, None)


def always_rules(profile_dir: Path) -> list[dict]:
    """The profile's ``always`` rules, oldest first (an unreadable file grants nothing)."""
    try:
        raw = json.loads((Path(profile_dir) / RULES_FILE).read_text(encoding="utf-8"))
        rules = raw.get("always") if isinstance(raw, dict) else None
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", Path(profile_dir) / RULES_FILE, exc)
        return []
    return [{"tool": r["tool"], "command": r["command"], "created_at": r.get("created_at")}
            for r in rules or [] if isinstance(r, dict) and isinstance(r.get("tool"), str)
            and isinstance(r.get("command"), str)]


def revoke_always(profile_dir: Path, tool: str, command: str) -> bool:
    """Remove an ``always`` rule; False if there was none."""
    with _RULES_LOCK:
        rules = always_rules(profile_dir)
        kept = [r for r in rules if not (r["tool"] == tool and r["command"] == command)]
        if len(kept) == len(rules):
            return False
        _write_rules(profile_dir, kept)
        return True


def _write_rules(profile_dir: Path, rules: list[dict]) -> None:
    Path(profile_dir).mkdir(parents=True, exist_ok=True)
    body = json.dumps({"always": rules}, ensure_ascii=False, indent=1) + "\n"
    atomic_write_bytes(Path(profile_dir) / RULES_FILE, body.encode("utf-8"))
