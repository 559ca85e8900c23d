"""The turn engine (docs/architecture.md §4): start a turn, run its worker, checkpoint, finish, cancel.

A turn's life on disk:

1. :func:`start_turn`, under the session lock: the journal ``<sid>.turn.jsonl``
   (:mod:`api.journal`) is written with the user message, then the session file gets
   ``active_stream_id``; the channel is registered in ``STREAMS`` *before* the lock is
   released, so whoever takes the lock next sees a live stream.
2. The worker thread runs the backend; every event goes to the channel and into the
   partial reply. A timer appends what is new to the journal every
   ``checkpoint_seconds`` (and each tool completion at once), whatever the backend
   does: text the user has been sent is on disk within that time even while the
   backend is silent. A checkpoint costs O(new text): the session file is not touched.
3. :meth:`Turn.finish` (worker at the end, or :func:`cancel_turn`), under the session
   lock, re-reads the file and writes back only if ``active_stream_id`` is still this
   stream: the user message and the reply are appended, the stream field clears, the
   journal is removed. The first finisher wins; a cancelled worker's result is dropped.

If the process dies in between, the file still names the stream; the next reader's
``_clear_stale_stream_state`` settles it from the journal
(:meth:`api.models.SessionStore.settle_turn`).
"""
from __future__ import annotations

import logging
import secrets
import threading
import time

from . import approvals, instructions, streams, titles
from .agents.base import AgentBackend, BackendError, TurnContext
from .codec import clean_text
from .errors import ApiError, SessionError, SessionNotFound, TooLarge, TurnConflict
from .journal import (ASK_FIELDS, MAX_ASKS, JournalWriter, add_usage, answer_record, ask_record, asks_fields,
                      reasoning_runs_field, remove_journal)
from .models import (CLEARED_STREAM_FIELDS, Session, SessionStore,
                     check_meta_string, public_metadata)
from .streams import StreamChannel, session_lock
from .titles import AUTO_TITLE_CHARS, _cut_whole, _extends, auto_title, first_message_title  # noqa: F401 (their home is api.titles)

log = logging.getLogger(__name__)
DEFAULT_MAX_TOOL_RESULT_BYTES = 16 * 1024 * 1024
DEFAULT_APPROVAL_TIMEOUT = 300.0
CONTINUABLE = ("truncated", "interrupted")


def _cap_text(value, limit: int):
    """A tool result or reasoning text cut to ``limit`` UTF-8 bytes, with a note."""
    if not isinstance(value, str) or len(value) * 4 <= limit:
        return value
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return value
    kept = raw[:limit].decode("utf-8", "ignore")
    return kept + f"\n[… {len(raw) - len(kept.encode('utf-8', 'surrogatepass')):,} more bytes not kept]"


class Turn:
    """One running turn: the backend call, its channel, its partial reply and journal."""

    def __init__(self, store: SessionStore, backend: AgentBackend, channel: StreamChannel,
                 user: dict, journal: JournalWriter, checkpoint_seconds: float,
                 max_tool_result_bytes: int = DEFAULT_MAX_TOOL_RESULT_BYTES, attachments: list | None = None):
        self.store = store
        self.backend = backend
        self.channel = channel
        self.session_id = channel.session_id
        self.stream_id = channel.stream_id
        self.user = user
        self.user_text = user["content"]
        self.attachments = list(attachments or [])   # api.attachment_store.AttachmentFile
        self.checkpoint_seconds = checkpoint_seconds
        self.max_tool_result_bytes = max_tool_result_bytes
        self._lock = threading.Lock()        # the reply's state
        self._journal_lock = threading.Lock()  # the journal's fd: appends and close
        self._journal = journal
        self._content: list[str] = []
        self._content_chars = 0   # len("".join(self._content)), kept as it grows
        self._reasoning: list[str] = []
        self._reasoning_bytes = 0
        self._reasoning_chars = 0   # len("".join(self._reasoning))
        self._runs: list[dict] = []  # where each run of reasoning began (api.journal.reasoning_runs_field)
        self._in_run = False        # the last event was reasoning (no text or tool since)
        self._tools: dict[str, dict] = {}
        self._saved_content = self._saved_reasoning = self._saved_runs = 0  # pieces already in the journal
        self._dirty_tools: set[str] = set()
        self._asks: dict[str, dict] = {}     # approvals and clarifying questions (api.journal.ask_record)
        self._dirty_asks: set[str] = set()
        self._finished = False
        self._stop = threading.Event()
        self.checkpoints = 0
        # agent control (docs/api.md): set by :meth:`configure`
        self.continues: int | None = None    # index of the reply this turn extends
        self.approval_timeout = DEFAULT_APPROVAL_TIMEOUT
        self.ctx = TurnContext(ask_approval=self.ask_approval, ask_clarify=self.ask_clarify)
        self.approval_policy = None          # api.approvals.UnattendedPolicy of a scheduled run

    def configure(self, *, model: str | None = None, config=None, continues: int | None = None,
                  home=None, profile: str = "default", approval_policy=None) -> "Turn":
        """Set what the turn runs on: the model id, the reply it continues (an index),
        the approval timeout (``config.approval_timeout``) and the profile's agent home.
        ``approval_policy`` (an :class:`api.approvals.UnattendedPolicy`): nobody is asked;
        the policy answers (a scheduled task's run)."""
        self.approval_policy = approval_policy
        self.ctx.model = model
        self.ctx.home = home
        self.ctx.profile = profile
        self.continues = continues
        self.approval_timeout = float(getattr(config, "approval_timeout", DEFAULT_APPROVAL_TIMEOUT))
        self.config = config
        return self

    # -- human in the loop (api.approvals) --------------------------------------

    def ask_approval(self, tool: str, command: str, description: str = "", timeout: float | None = None) -> str:
        """``once``, ``session``, ``always`` or ``deny`` for running ``tool`` with ``command``.

        A ``session`` or ``always`` rule answers at once; otherwise an ``approval`` event is
        emitted and the worker waits (``timeout`` or ``--approval-timeout``); no answer is
        ``deny``. ``session`` / ``always`` answers are remembered.
        """
        if self.approval_policy is not None:
            return self._answer_unattended("approval", {"tool": tool, "command": command,
                                                        "description": description},
                                           self.approval_policy.decide(tool, command))
        profile_dir = self.store.dir.parent
        granted = approvals.allowed_by_rule(profile_dir, self.session_id, tool, command)
        if granted:
            return granted
        wait = self.approval_timeout if timeout is None else timeout
        self.checkpoint()  # what streamed is on disk before a wait that may be long
        choice = approvals.ask("approval", self.stream_id, self.session_id,
                               {"tool": tool, "command": command, "description": description},
                               self.emit, self.channel.cancel_event, wait, default="deny")
        if choice in ("session", "always"):
            try:
                approvals.remember(profile_dir, self.session_id, tool, command, choice)
            except OSError as exc:
                log.error("could not store the approval rule for %s: %s", tool, exc)
        return choice

    def ask_clarify(self, question: str, choices: list | None = None, timeout: float | None = None) -> str:
        """The user's answer to ``question`` (``""`` if none comes within the timeout)."""
        data = {"question": question}
        if choices:
            data["choices"] = [str(c) for c in choices]
        if self.approval_policy is not None:
            return self._answer_unattended("clarify", data, "")
        wait = self.approval_timeout if timeout is None else timeout
        self.checkpoint()
        return approvals.ask("clarify", self.stream_id, self.session_id, data, self.emit,
                             self.channel.cancel_event, wait, default="")

    def _answer_unattended(self, kind: str, data: dict, answer: str) -> str:
        """The question and the policy's answer as events (marked ``unattended``), at once."""
        qid = secrets.token_hex(8)
        self.emit(kind, {f"{kind}_id": qid, **data, "unattended": True})
        self.emit(f"{kind}_answered", {f"{kind}_id": qid, "answer": answer, "timed_out": False,
                                       "unattended": True})
        return answer

    # -- events from the backend (worker thread) ------------------------------

    def emit(self, event: str, data: dict) -> None:
        """The ``emit`` callback handed to the backend. Ignored once the turn is finished.

        Tool results and reasoning are kept whole up to ``max_tool_result_bytes`` (16 MiB
        by default); past it they are cut with a note, in the stream and on disk alike.
        """
        with self._lock:
            if self._finished:
                return
            if event == "token":
                self._content.append(str(data.get("text", "")))
                self._content_chars += len(self._content[-1])
                self._in_run = self._in_run and not self._content[-1]
            elif event == "reasoning":
                text = str(data.get("text", ""))
                room = self.max_tool_result_bytes - self._reasoning_bytes
                if room <= 0 or not text:
                    return
                text = _cap_text(text, room)
                self._reasoning_bytes += len(text.encode("utf-8", "surrogatepass"))
                data = dict(data, text=text)
                if not self._in_run:   # reasoning after text or a tool: a new run, where it began
                    self._runs.append({"offset": self._content_chars, "start": self._reasoning_chars,
                                       "tools_before": len(self._tools)})
                    self._in_run = True
                self._reasoning.append(text)
                self._reasoning_chars += len(text)
            elif event == "tool":
                self._in_run = False
                key = str(data.get("id"))
                # where in the reply the tool ran: characters (code points) of content before it
                data = dict(data, offset=self._content_chars)
                self._tools[key] = {"id": data.get("id"), "name": data.get("name"), "args": data.get("args"),
                                    "offset": self._content_chars}
                self._dirty_tools.add(key)
            elif event == "tool_complete":
                data = dict(data, result=_cap_text(data.get("result"), self.max_tool_result_bytes))
                key = str(data.get("id"))
                record = self._tools.setdefault(key, {"id": data.get("id"), "name": data.get("name")})
                record.update(result=data.get("result"), duration_ms=data.get("duration_ms"),
                              is_error=bool(data.get("is_error")))
                self._dirty_tools.add(key)
            elif event.removesuffix("_answered") in ASK_FIELDS:
                self._record_ask(event, data)
            self.channel.emit(event, data)
        if event == "tool_complete" or event.removesuffix("_answered") in ASK_FIELDS:
            self.checkpoint()   # a question and its answer are on disk before the wait / what follows

    def _record_ask(self, event: str, data: dict) -> None:
        """Keep a question (``approval``/``clarify``) where the reply had got to, and its
        answer (``<kind>_answered``), for the saved reply (call with ``self._lock`` held)."""
        kind = event.removesuffix("_answered")
        key = f"{kind}:{data.get(kind + '_id')}"
        if event == kind:
            if len(self._asks) < MAX_ASKS:
                self._asks[key] = ask_record(kind, data, self._content_chars, len(self._tools))
                self._dirty_asks.add(key)
        elif key in self._asks:
            self._asks[key].update(answer_record(kind, data))
            self._dirty_asks.add(key)

    def reply(self, status: str) -> dict:
        """The assistant message as it stands (call with ``self._lock`` held)."""
        msg = {"role": "assistant", "content": "".join(self._content), "timestamp": time.time(), "status": status}
        if self._reasoning:
            msg["reasoning"] = "".join(self._reasoning)
            runs = reasoning_runs_field(self._runs)
            if runs:
                msg["reasoning_runs"] = runs
        if self._tools:
            msg["tool_calls"] = [dict(t) for t in self._tools.values()]
        model = self.ctx.model or getattr(self.backend, "model", None)
        if model:
            msg["model"] = model
        policy = self.approval_policy
        if policy is not None and policy.denied:   # an unattended run: what it was not allowed to do
            msg["denied_tools"] = [dict(d) for d in policy.denied]
        msg.update(asks_fields(self._asks.values()))
        return msg

    def checkpoint(self) -> bool:
        """Append what streamed since the last checkpoint to the journal (O(new text)).

        Safe from any thread; a no-op once the turn is finished (the fd is closed then).
        On a failed write (a full disk) the journal is cut back to its last whole
        checkpoint and the same text is tried again next time. Returns True if it wrote.
        """
        with self._journal_lock:
            with self._lock:
                if self._finished:
                    return False
                records = []
                if self._saved_content < len(self._content):
                    records.append({"c": "".join(self._content[self._saved_content:])})
                if self._saved_reasoning < len(self._reasoning):
                    records.append({"r": "".join(self._reasoning[self._saved_reasoning:])})
                records.extend({"run": dict(r)} for r in self._runs[self._saved_runs:])
                records.extend({"tool": dict(self._tools[k])} for k in sorted(self._dirty_tools))
                records.extend({"ask": dict(self._asks[k])} for k in self._asks if k in self._dirty_asks)
                marks = (len(self._content), len(self._reasoning), set(self._dirty_tools), len(self._runs),
                         set(self._dirty_asks))
            if not records:
                return False
            try:
                self._journal.append(records)
            except OSError as exc:
                log.warning("checkpoint of %s failed: %s", self.session_id, exc)
                self._journal.rollback()
                return False
            with self._lock:
                self._saved_content, self._saved_reasoning, self._saved_runs = marks[0], marks[1], marks[3]
                self._dirty_tools -= marks[2]
                self._dirty_asks -= marks[4]
            self.checkpoints += 1
            return True

    def _checkpoint_loop(self) -> None:
        while not self._stop.wait(self.checkpoint_seconds):
            self.checkpoint()

    # -- the worker -------------------------------------------------------------

    def run(self) -> None:
        """Worker thread body: run the backend, then finish (always) and unregister."""
        status, error, usage = "complete", None, None
        threading.Thread(target=self._checkpoint_loop, name=f"checkpoint-{self.stream_id}", daemon=True).start()
        try:
            history, text = self.store.load(self.session_id).messages, self.user_text
            if self.continues is not None:
                history, text = self._continuation(history)
            extra = {"attachments": self.attachments} if self.attachments else {}
            result = self.backend.run_turn(history, text, self.emit, self.channel.cancel_event,
                                           ctx=self.ctx, **extra)
            usage = _usage((result or {}).get("usage"))
            if self.channel.cancel_event.is_set():
                status = "cancelled"
            elif (result or {}).get("finish_reason") == "length":
                status = "truncated"
        except BackendError as exc:
            status, error = "error", {"message": exc.message, "type": exc.type}
        except SessionNotFound:
            status, error = "error", {"message": "the session was deleted", "type": "not_found"}
        except Exception as exc:  # a backend bug must still end the turn cleanly
            log.exception("turn %s failed", self.stream_id)
            status, error = "error", {"message": f"{type(exc).__name__}: {exc}", "type": "internal"}
        finally:
            try:
                self.finish(status, error=error, usage=usage)
            finally:
                streams.unregister(self.stream_id)

    def _continuation(self, messages: list[dict]) -> tuple[list[dict], str]:
        """``(history, user text)`` for continuing the reply at ``self.continues``: the
        messages before its user message and that message's text; ``ctx.continue_text``
        gets the reply's text so far."""
        idx = self.continues
        if idx is None or idx != len(messages) - 1 or messages[idx].get("role") != "assistant":
            raise BackendError("the reply to continue is no longer the last message: reload the chat",
                               type="conflict")
        u = next((i for i in range(idx - 1, -1, -1) if messages[i].get("role") == "user"), None)
        old = messages[idx].get("content")
        self.ctx.continue_text = old if isinstance(old, str) else ""
        if u is None:
            return messages[:idx], ""
        text = messages[u].get("content")
        return messages[:u], text if isinstance(text, str) else ""

    def finish(self, status: str, *, error: dict | None = None, usage: dict | None = None) -> bool:
        """End the turn once: write it back if this stream still owns the session, then
        emit ``done`` / ``cancel`` / ``apperror`` and ``stream_end`` and close the channel.

        Returns False if the turn had already finished (so cancel is idempotent).
        """
        saved_meta = None
        with session_lock(self.session_id):
            with self._lock:
                if self._finished:
                    return False
                self._finished = True
                reply = self.reply(status)
            self._stop.set()
            if error:
                reply["error"] = error["message"]
            if usage:
                reply["usage"] = usage
            approvals.forget_stream(self.stream_id)
            try:
                stub = self.store.load_metadata_only(self.session_id)
                if stub.active_stream_id == self.stream_id:
                    changes = dict(CLEARED_STREAM_FIELDS)
                    if usage:  # the session's running total (docs/api.md "Usage")
                        changes["usage"] = add_usage(stub.meta.get("usage"), usage)
                    if self.continues is None:
                        saved_meta = self.store.append_messages(self.session_id, [dict(self.user), reply], changes)
                    else:
                        saved_meta = self.store.replace_reply(self.session_id, self.continues, reply, changes)
                    remove_journal(self.store.journal_path(self.session_id))
                else:
                    log.info("stream %s no longer owns %s; its result is dropped", self.stream_id, self.session_id)
            except SessionNotFound:
                log.info("session %s was deleted during stream %s", self.session_id, self.stream_id)
            except (SessionError, OSError) as exc:
                log.error("could not save turn %s of %s: %s", self.stream_id, self.session_id, exc)
                if isinstance(exc, OSError) and saved_meta is None:
                    # Kept with its own status; written by the next settle once the disk takes it.
                    streams.keep_unsaved_reply(self.session_id, self.stream_id, reply)
                error = error or {"message": f"could not save the reply: {exc}", "type": "save_failed"}
                if status == "complete":
                    status = "error"
        with self._journal_lock:
            self._journal.close()
        ch = self.channel
        if status == "cancelled":
            ch.emit("cancel", {"session_id": self.session_id})
        elif error:
            ch.emit("apperror", error)
        if saved_meta is not None and status not in ("cancelled", "interrupted"):
            ch.emit("done", {"session": public_metadata(saved_meta), "usage": usage})
        if saved_meta is not None and status in ("complete", "truncated") and self.continues is None:  # own thread
            titles.after_first_reply(self.store, self.backend, self.session_id, saved_meta, self.user_text,
                                     reply.get("content") or "", model=self.ctx.model)
        ch.emit("stream_end", {"status": status})
        ch.close()
        streams.unregister(self.stream_id)
        if status != "interrupted":  # a message queued during the turn starts now (not at shutdown)
            self._start_queued()
        return True

    def _start_queued(self) -> None:
        from . import message_queue
        try:
            message_queue.start_next(self.store, self.backend, self.session_id, getattr(self, "config", None),
                                     {"home": self.ctx.home, "profile": self.ctx.profile})
        except Exception:  # never let the queue break the end of a turn
            log.exception("could not start the queued message of %s", self.session_id)


def _usage(raw) -> dict | None:
    """A backend's usage report reduced to ``{prompt_tokens, completion_tokens}`` (None
    if it reported neither)."""
    if not isinstance(raw, dict):
        return None
    out = {k: raw[k] for k in ("prompt_tokens", "completion_tokens")
           if isinstance(raw.get(k), int) and not isinstance(raw.get(k), bool)}
    return {"prompt_tokens": out.get("prompt_tokens", 0), "completion_tokens": out.get("completion_tokens", 0)} \
        if out else None


def check_message(text: str, limit: int, *, allow_empty: bool = False) -> str:
    """A user message as it will be stored: lone surrogates replaced by U+FFFD.

    Raises ApiError 400 if it is empty (or only white space) unless ``allow_empty`` (a
    message that carries attachments), and TooLarge 413 if it is over ``limit`` UTF-8
    bytes (the sentence names the size, the limit and what to do).
    """
    text = clean_text(text)
    if not text.strip() and not allow_empty:
        raise ApiError("the message is empty")
    size = len(text.encode("utf-8"))
    if size > limit:
        raise TooLarge(f"the message is {size:,} bytes, over this server's limit of {limit:,} bytes "
                       "(--max-message-bytes): attach it as a file or send it in parts")
    return text


def settle_stale_stream(session: Session) -> bool:
    """Settle a session whose file names a stream that no longer runs (docs/architecture.md §4).

    In this order: (1) a stream alive in ``STREAMS`` is left alone; (2) a metadata-only
    stub is reloaded in full, and if that fails nothing is cleared (a stale flag is
    recoverable, lost messages are not); (3) under the session lock the file is re-read,
    since a chat start may have just set a live stream; (4) the user message and the
    partial reply of the dead turn (from its journal, or from an earlier version's
    metadata) become messages marked ``interrupted``, the stream field clears, and the
    file is written without touching ``updated_at``
    (:meth:`api.models.SessionStore.settle_turn`). The caller's ``session`` is updated
    in place so its response is fresh. Returns True if it cleared.
    """
    stream_id = session.active_stream_id
    if not stream_id or streams.is_alive(stream_id):                      # (1)
        return False
    store, sid = session._store, session.session_id
    if session._loaded_metadata_only:                                     # (2)
        try:
            store.load(sid)
        except (SessionError, OSError) as exc:
            log.warning("stale stream on %s left in place: full reload failed: %s", sid, exc)
            return False
    with session_lock(sid):                                               # (3)
        try:
            fresh = store.load_metadata_only(sid)
        except (SessionError, OSError) as exc:
            log.warning("stale stream on %s left in place: re-read failed: %s", sid, exc)
            return False
        active = fresh.active_stream_id
        cleared = bool(active) and not streams.is_alive(active)
        if cleared:                                                       # (4)
            try:  # a reply whose own save failed (full disk) is written instead of its checkpoint
                store.settle_turn(sid, active, streams.take_unsaved_reply(sid, active))
            except (SessionError, OSError) as exc:  # e.g. a full disk: the flag stays, the file is intact
                log.warning("could not settle interrupted stream of %s yet: %s", sid, exc)
                return False
            streams.drop_unsaved_reply(sid)
            log.info("settled interrupted stream %s of session %s", active, sid)
            fresh = store.load_metadata_only(sid) if session._loaded_metadata_only else store.load(sid)
    session.meta = dict(fresh.meta)
    if not session._loaded_metadata_only and not fresh._loaded_metadata_only:
        session.messages = fresh.messages
    return cleared


def load_settled(store: SessionStore, session_id: str) -> Session:
    """Metadata-only stub of ``session_id`` with any stale stream settled first.
    Raises InvalidSessionId, SessionNotFound, SessionUnreadable."""
    stub = store.load_metadata_only(session_id)
    settle_stale_stream(stub)
    return stub


def ensure_idle(session, expected_message_count: int | None = None) -> None:
    """Raise TurnConflict (409) unless ``session`` (read under its lock) can change now:
    no stream recorded, and ``expected_message_count`` (if given) is its message count."""
    if session.active_stream_id:
        if streams.is_alive(session.active_stream_id):
            raise TurnConflict("a reply is streaming in this session: wait for it or cancel it first")
        raise TurnConflict("the session's last turn was interrupted and could not be settled yet")
    if expected_message_count is not None and expected_message_count != session.message_count:
        raise TurnConflict(f"the session has {session.message_count} messages, not {expected_message_count}: "
                           "it changed in another tab; reload it")


def _workspace(store: SessionStore, meta: dict, config):
    """The session's workspace folder (``TurnContext.workspace``), None if unusable."""
    from .workspace import turn_workspace
    return turn_workspace(store.dir.parent, config, meta)


def start_turn(store: SessionStore, backend: AgentBackend, session_id: str, text: str, *,
               config=None, expected_message_count: int | None = None,
               model: str | None = None, replace_messages: list | None = None,
               attachments: list | None = None, agent_home: dict | None = None,
               approval_policy=None) -> str:
    """Begin a turn and return its stream id.

    ``model``: the model id the turn runs on (the saved reply records it; the session's
    default is not changed). ``agent_home``: ``{home, profile}`` of the request's profile.
    ``approval_policy``: answers approvals without asking (:meth:`Turn.configure`).

    ``attachments``: ids of files uploaded to this session (:mod:`api.attachment_store`),
    resolved under the session lock before anything is written (an id unknown here, or
    of another session, raises AttachmentNotFound 404); the user message records them
    as ``attachments: [{id, name, size, mime}]``, in the journal from the start.

    ``config`` (an :class:`api.config.Config`) gives ``checkpoint_seconds`` and
    ``max_tool_result_bytes``; None uses their defaults (1 s, 16 MiB).

    The user message is on disk (the journal) before this returns. ``replace_messages``
    (retry, edit) replaces the transcript in the same atomic write that records the
    running turn, as a deliberate shrink: a crash can never leave the trimmed transcript
    without the user's new message. ``expected_message_count`` is checked against the
    transcript before that replacement.
    Raises SessionNotFound / SessionUnreadable / InvalidSessionId, ValueError for a
    ``model`` over the metadata limit, OSError if the disk refuses (nothing changed), and
    TurnConflict if a live stream owns the session, a stale stream could not be settled,
    or ``expected_message_count`` does not match the file.
    """
    check_meta_string("model", model)
    checkpoint_seconds = getattr(config, "checkpoint_seconds", 1.0)
    max_tool_result_bytes = getattr(config, "max_tool_result_bytes", DEFAULT_MAX_TOOL_RESULT_BYTES)
    with session_lock(session_id):
        session = store.load_metadata_only(session_id)
        ensure_idle(session, expected_message_count)
        system = instructions.system_prompt(store.dir.parent, session.meta)  # the profile's and project's
        files = store.attachments.resolve(session_id, attachments) if attachments else []
        if not text.strip() and not files:
            raise ApiError("the message is empty")
        stream_id = secrets.token_hex(8)
        started = time.time()
        user = {"role": "user", "content": text, "timestamp": started}
        if files:
            user["attachments"] = [f.record() for f in files]
        changes = {**CLEARED_STREAM_FIELDS, "active_stream_id": stream_id}  # drops legacy pending keys
        if not session.meta.get("manual_title") and (session.message_count == 0 or replace_messages == []):
            changes.update(first_message_title(session.meta, text))
        journal = JournalWriter.create(store.journal_path(session_id), stream_id, user, started)
        try:
            if replace_messages is None:
                store.patch_metadata(session_id, changes)
            else:
                full = store.load(session_id)
                full.messages = list(replace_messages)
                full.meta.update(changes)
                full.save(intentional_shrink=True)
        except BaseException:
            journal.close()
            remove_journal(journal.path)
            raise
        channel = StreamChannel(stream_id, session_id)
        turn = Turn(store, backend, channel, user, journal, checkpoint_seconds, max_tool_result_bytes, files)
        turn.configure(model=model, config=config, approval_policy=approval_policy, **(agent_home or {}))
        turn.ctx.system_prompt = system
        turn.ctx.workspace = _workspace(store, session.meta, config)
        channel.turn = turn
        streams.register(channel)
    threading.Thread(target=turn.run, name=f"turn-{stream_id}", daemon=True).start()
    return stream_id


def start_continue(store: SessionStore, backend: AgentBackend, session_id: str, *, config=None,
                   model: str | None = None, agent_home: dict | None = None) -> str:
    """Extend the session's last reply in place and return the new stream id (docs/api.md).

    The last message must be an assistant reply saved ``truncated`` or ``interrupted``
    (TurnConflict 409 otherwise, or while a stream runs). No user message is added: the
    journal records the index of the reply and, as the turn streams, only the new part;
    finishing (or settling after a crash) writes the old text plus the new part into that
    same message, with the new turn's status.
    """
    check_meta_string("model", model)
    with session_lock(session_id):
        session = store.load_metadata_only(session_id)
        ensure_idle(session)
        system = instructions.system_prompt(store.dir.parent, session.meta)
        _meta, window, offset = store.read_window(session_id, 2, None)
        last = window[-1] if window else None
        if not last or last.get("role") != "assistant" or last.get("status") not in CONTINUABLE:
            raise TurnConflict("there is no cut-off reply to continue: the last reply is "
                               f"{(last or {}).get('status') or 'missing'}, not truncated or interrupted")
        index = offset + len(window) - 1
        user = next((dict(m) for m in reversed(window[:-1]) if m.get("role") == "user"),
                    {"role": "user", "content": "", "timestamp": time.time()})
        stream_id = secrets.token_hex(8)
        journal = JournalWriter.create(store.journal_path(session_id), stream_id, user, time.time(), continues=index)
        try:
            store.patch_metadata(session_id, {**CLEARED_STREAM_FIELDS, "active_stream_id": stream_id})
        except BaseException:
            journal.close()
            remove_journal(journal.path)
            raise
        channel = StreamChannel(stream_id, session_id)
        turn = Turn(store, backend, channel, user, journal, getattr(config, "checkpoint_seconds", 1.0),
                    getattr(config, "max_tool_result_bytes", DEFAULT_MAX_TOOL_RESULT_BYTES))
        turn.configure(model=model, config=config, continues=index, **(agent_home or {}))
        turn.ctx.system_prompt = system
        turn.ctx.workspace = _workspace(store, session.meta, config)
        channel.turn = turn
        streams.register(channel)
    threading.Thread(target=turn.run, name=f"turn-{stream_id}", daemon=True).start()
    return stream_id


def cancel_turn(stream_id: str) -> bool:
    """Stop a turn, keep its partial reply marked ``cancelled`` and free the session now.

    Returns True if this call cancelled it; False if it was unknown or already over.
    """
    channel = streams.get_stream(stream_id)
    turn = getattr(channel, "turn", None)
    if channel is None or turn is None or channel.closed:
        return False
    channel.cancel_event.set()
    return turn.finish("cancelled")


def interrupt_all_turns() -> int:
    """Finish every live turn as ``interrupted`` (clean shutdown); returns how many.

    Each turn's partial reply is written back like a cancel, so a SIGTERM loses nothing
    that had streamed, and each follower receives ``stream_end``.
    """
    with streams.STREAMS_LOCK:
        channels = list(streams.STREAMS.values())
    done = 0
    for channel in channels:
        turn = getattr(channel, "turn", None)
        if turn is not None:
            channel.cancel_event.set()
            done += turn.finish("interrupted")
    return done
