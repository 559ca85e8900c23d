"""The turn journal: a running turn's user message and partial reply, beside the session.

docs/architecture.md §3 invariant 8 keeps a session file's metadata part small, so a running turn's
content does not live there. It lives in ``sessions/<sid>.turn.jsonl``, one JSON object
per line:

- line 1, written atomically when the turn starts (before ``/api/chat/start``
  answers): ``{"v": 1, "stream_id", "started_at", "user": {role, content, timestamp}}``;
- then appended as the reply streams, each batch followed by ``fdatasync``:
  ``{"c": text}`` (reply text), ``{"r": text}`` (reasoning), ``{"tool": {id, name, …}}``
  (a tool record, merged into the earlier one with the same id), ``{"model": id}``,
  ``{"run": {offset, start, tools_before}}`` (a reasoning run began: see
  :func:`reasoning_runs_field`), ``{"ask": {kind, approval_id|clarify_id, …}}`` (an
  approval or clarifying question, then its answer, merged by id: see :func:`ask_record`).

A turn that continues a cut reply (``POST /api/session/continue``) has ``"continues":
<index of that reply>`` in line 1 (its ``user`` is the original user message, for
reference); its records are the appended part only, and settling it extends that reply
in place (:func:`extend_reply`) instead of appending messages.

A checkpoint therefore costs O(new text), whatever the transcript's size. Reading stops
at the first line that does not parse (a write torn by a crash), so a journal always
yields the user message and every checkpoint before the last. When the turn ends the
user message and the reply are appended to the session file and the journal is removed;
a journal whose ``stream_id`` is not the session's ``active_stream_id`` is a leftover
(the process died between those two steps) and is deleted unread.

Never imports Flask.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_write_bytes

SUFFIX = ".turn.jsonl"
VERSION = 1


def journal_path(sessions_dir: Path, session_id: str) -> Path:
    """Where ``session_id``'s journal lives (the id must already be validated)."""
    return Path(sessions_dir) / f"{session_id}{SUFFIX}"


def _line(obj) -> bytes:
    try:
        text = json.dumps(obj, ensure_ascii=False)
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape it rather than fail the turn
        return (json.dumps(obj, ensure_ascii=True) + "\n").encode("utf-8")


@dataclass
class PendingTurn:
    """What a journal holds: the turn's stream, its user message and the partial reply."""

    stream_id: str
    started_at: float
    user: dict
    content: str = ""
    reasoning: str = ""
    tools: dict = field(default_factory=dict)
    model: str | None = None
    continues: int | None = None  # index of the reply this turn extends, or None
    runs: list = field(default_factory=list)  # reasoning runs, see reasoning_runs_field
    asks: dict = field(default_factory=dict)  # "<kind>:<id>" -> ask record, see ask_record

    def reply(self, status: str) -> dict | None:
        """The partial reply as an assistant message, or None if nothing was streamed."""
        if not (self.content or self.reasoning or self.tools or self.asks):
            return None
        msg = {"role": "assistant", "content": self.content, "timestamp": time.time(), "status": status}
        if self.reasoning:
            msg["reasoning"] = self.reasoning
            runs = reasoning_runs_field(self.runs)
            if runs:
                msg["reasoning_runs"] = runs
        if self.tools:
            msg["tool_calls"] = list(self.tools.values())
        if self.model:
            msg["model"] = self.model
        msg.update(asks_fields(self.asks.values()))
        return msg


class JournalWriter:
    """The appending side, held by a running turn (one writer per journal).

    :meth:`create` writes line 1 atomically and durably; :meth:`append` adds lines and
    ``fdatasync``s them. Not thread-safe: the turn serialises its calls.
    """

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd: int | None = fd
        self._size = os.fstat(fd).st_size  # end of the last whole append

    @classmethod
    def create(cls, path: Path, stream_id: str, user: dict, started_at: float, *,
               continues: int | None = None) -> "JournalWriter":
        """Start a journal for ``stream_id`` (replacing any leftover); ``continues``: the
        index of the reply this turn extends. Raises OSError."""
        head = {"v": VERSION, "stream_id": stream_id, "started_at": started_at, "user": user}
        if continues is not None:
            head["continues"] = continues
        atomic_write_bytes(path, _line(head))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0))
        return cls(path, fd)

    def append(self, records: list[dict]) -> int:
        """Append ``records`` as lines and flush them to disk; returns the bytes written.
        Raises OSError (e.g. ENOSPC); a torn last line is ignored by :func:`read_journal`."""
        if self._fd is None or not records:
            return 0
        data = b"".join(_line(r) for r in records)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        os.fdatasync(self._fd)
        self._size += len(data)
        return len(data)

    def rollback(self) -> None:
        """After a failed :meth:`append`: cut off what it may have written, so the next
        append starts on a line boundary (best effort; a reader stops at a torn line)."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_journal(path: Path, *, head_only: bool = False) -> PendingTurn | None:
    """Parse a journal; None if it is missing or its first line is unreadable.

    ``head_only`` reads just line 1 (the user message): what a status check needs.
    """
    try:
        with open(path, "rb") as f:
            first = f.readline()
            rest = b"" if head_only else f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    try:
        head = json.loads(first.decode("utf-8"))
        pending = PendingTurn(stream_id=str(head["stream_id"]), started_at=float(head.get("started_at") or 0),
                              user=dict(head["user"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not first.endswith(b"\n"):
        return None
    cont = head.get("continues")
    pending.continues = cont if isinstance(cont, int) and not isinstance(cont, bool) and cont >= 0 else None
    content, reasoning = [], []
    for raw in rest.split(b"\n")[:-1]:  # the part after the last newline is torn or empty
        try:
            rec = json.loads(raw.decode("utf-8"))
        except ValueError:
            break
        if not isinstance(rec, dict):
            break
        if isinstance(rec.get("c"), str):
            content.append(rec["c"])
        if isinstance(rec.get("r"), str):
            reasoning.append(rec["r"])
        tool = rec.get("tool")
        if isinstance(tool, dict):
            pending.tools.setdefault(str(tool.get("id")), {}).update(tool)
        if isinstance(rec.get("model"), str):
            pending.model = rec["model"]
        if _valid_run(rec.get("run")):
            pending.runs.append(dict(rec["run"]))
        ask = rec.get("ask")
        if isinstance(ask, dict) and ask.get("kind") in ASK_FIELDS:
            key = f"{ask['kind']}:{ask.get(ask['kind'] + '_id')}"
            if key in pending.asks or len(pending.asks) < MAX_ASKS:
                pending.asks.setdefault(key, {}).update(ask)
    pending.content = "".join(content)
    pending.reasoning = "".join(reasoning)
    return pending


RUN_KEYS = ("offset", "start", "tools_before")


def _valid_run(run) -> bool:
    return isinstance(run, dict) and all(isinstance(run.get(k), int) and not isinstance(run.get(k), bool)
                                         and run[k] >= 0 for k in RUN_KEYS)


def reasoning_runs_field(runs: list) -> list | None:
    """The ``reasoning_runs`` a saved reply records, or None when it needs none.

    A reply's ``reasoning`` is all its reasoning text, joined (what every reader shows). A
    *run* is reasoning that came without reply text or a tool call in between;
    ``reasoning_runs: [{offset, start, tools_before}]`` says where each run sat: it began
    when the reply text was ``offset`` characters (code points) long, after
    ``tools_before`` of the reply's ``tool_calls``, and its text is ``reasoning`` from
    character ``start`` to the next run's ``start`` (the last: to the end). The field is
    left out for the common case, one run before everything else (``[{0, 0, 0}]``): a
    reader without it shows the reasoning first, as readers that ignore it always do."""
    runs = [dict((k, r[k]) for k in RUN_KEYS) for r in runs if _valid_run(r)]
    if not runs or (len(runs) == 1 and runs[0] == {"offset": 0, "start": 0, "tools_before": 0}):
        return None
    return runs


def runs_of(msg: dict) -> list[dict]:
    """A saved reply's reasoning runs: its ``reasoning_runs``, or the one run at the start
    that a reply without the field has (none without reasoning)."""
    runs = msg.get("reasoning_runs")
    if isinstance(runs, list) and runs and all(_valid_run(r) for r in runs):
        return [dict(r) for r in runs]
    return [{"offset": 0, "start": 0, "tools_before": 0}] if msg.get("reasoning") else []


# ---------------------------------------------------------------- approvals and clarifying questions

ASK_FIELDS = {"approval": "approvals", "clarify": "clarifications"}   # event kind -> saved reply field
MAX_ASKS = 200                 # questions kept per reply (more are asked, not recorded)
MAX_ASK_TEXT_BYTES = 8 * 1024  # a command, description, question, choice or answer, cut with a note
MAX_ASK_CHOICES = 50


def _cap(value, limit: int = MAX_ASK_TEXT_BYTES) -> str:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text
    kept = raw[:limit].decode("utf-8", "ignore")
    return kept + f"[… {len(raw) - len(kept.encode('utf-8', 'surrogatepass')):,} more bytes not kept]"


def ask_record(kind: str, data: dict, offset: int, tools_before: int) -> dict:
    """The record of a question event (``approval {approval_id, tool, command,
    description}`` or ``clarify {clarify_id, question, choices?}``) asked when the reply
    text was ``offset`` characters (code points) long, after ``tools_before`` of its tool
    calls; texts capped at 8 KiB (with a note), at most 50 choices. ``kind`` is kept for the
    journal and dropped by :func:`asks_fields`."""
    qid = f"{kind}_id"
    rec = {"kind": kind, qid: _cap(data.get(qid), 64), "offset": offset, "tools_before": tools_before}
    if kind == "approval":
        rec.update(tool=_cap(data.get("tool"), 256), command=_cap(data.get("command")),
                   description=_cap(data.get("description")))
    else:
        rec["question"] = _cap(data.get("question"))
        if isinstance(data.get("choices"), list):
            rec["choices"] = [_cap(c, 1024) for c in data["choices"][:MAX_ASK_CHOICES]]
    if data.get("unattended"):
        rec["unattended"] = True
    return rec


def answer_record(kind: str, data: dict) -> dict:
    """What a ``<kind>_answered {answer, timed_out}`` event adds to its question's record:
    ``choice`` (approval: once|session|always|deny) or ``answer`` (clarify), ``timed_out``."""
    key = "choice" if kind == "approval" else "answer"
    return {key: _cap(data.get("answer")), "timed_out": bool(data.get("timed_out"))}


def asks_fields(asks) -> dict:
    """A saved reply's ``approvals: [{approval_id, tool, command, description, choice,
    timed_out, offset, tools_before, unattended?, unanswered?}]`` and ``clarifications:
    [{clarify_id, question, choices?, answer, timed_out, offset, tools_before, unattended?,
    unanswered?}]``, in the order asked (each left out when empty). A question the turn
    ended without an answer to (a crash or restart while it waited) is ``unanswered: true``,
    and an approval so left is ``choice: "deny"``: never taken as granted."""
    out: dict[str, list] = {}
    for rec in asks:
        kind = rec.get("kind")
        if kind not in ASK_FIELDS:
            continue
        item = {k: v for k, v in rec.items() if k != "kind"}
        key = "choice" if kind == "approval" else "answer"
        if key not in item:
            item.update({key: "deny" if kind == "approval" else "", "timed_out": False, "unanswered": True})
        out.setdefault(ASK_FIELDS[kind], []).append(item)
    return out


def remove_journal(path: Path) -> None:
    """Delete a journal (missing is fine). Raises OSError for other failures."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def extend_reply(old: dict, part: dict | None) -> dict:
    """The reply ``old`` extended by ``part`` (the reply of a turn that continued it):
    text, reasoning and tool calls appended (their ``offset`` moved past the old text, and
    reasoning runs past the old reasoning and tool calls),
    usage added up; status, model, error and
    timestamp are the new part's. ``part`` None (nothing streamed) leaves ``old`` as it was."""
    if part is None:
        return dict(old)
    merged = dict(old)
    before = old.get("content") if isinstance(old.get("content"), str) else ""
    merged["content"] = before + part.get("content", "")
    if part.get("reasoning"):
        old_reasoning = old.get("reasoning") if isinstance(old.get("reasoning"), str) else ""
        merged["reasoning"] = old_reasoning + part["reasoning"]
        n_tools = len(old.get("tool_calls") or [])
        moved = [{"offset": r["offset"] + len(before), "start": r["start"] + len(old_reasoning),
                  "tools_before": r["tools_before"] + n_tools} for r in runs_of(part)]
        runs = reasoning_runs_field(runs_of(old) + moved)
        merged.pop("reasoning_runs", None)
        if runs:
            merged["reasoning_runs"] = runs
    if part.get("tool_calls"):  # a tool's offset counts from the start of the whole reply
        moved = [dict(t, offset=t["offset"] + len(before)) if isinstance(t, dict) and isinstance(t.get("offset"), int)
                 else t for t in part["tool_calls"]]
        merged["tool_calls"] = list(old.get("tool_calls") or []) + moved
    n_tools = len(old.get("tool_calls") or [])
    for name in ASK_FIELDS.values():  # questions: offsets past the old text, after its tool calls
        if part.get(name):
            num = lambda v: v if isinstance(v, int) and not isinstance(v, bool) else 0  # noqa: E731
            moved = [dict(q, offset=num(q.get("offset")) + len(before), tools_before=num(q.get("tools_before")) + n_tools)
                     for q in part[name] if isinstance(q, dict)]
            merged[name] = list(old.get(name) or []) + moved
    for key in ("status", "model", "timestamp"):
        if key in part:
            merged[key] = part[key]
    merged.pop("error", None)
    if part.get("error"):
        merged["error"] = part["error"]
    usage = add_usage(old.get("usage"), part.get("usage"))
    if usage:
        merged["usage"] = usage
    return merged


def add_usage(a, b) -> dict | None:
    """``{prompt_tokens, completion_tokens}`` of two usage records added up (either may be None)."""
    if not isinstance(a, dict) and not isinstance(b, dict):
        return None
    out = {}
    for key in ("prompt_tokens", "completion_tokens"):
        total = sum(u.get(key) for u in (a, b) if isinstance(u, dict) and isinstance(u.get(key), int)
                    and not isinstance(u.get(key), bool))
        out[key] = total
    return out
