"""The scheduler: runs each profile's tasks (:mod:`api.tasks`) at their times, inside the server.

One daemon thread per app (``task-scheduler``), started by :func:`api.task_routes.init_app`
(so by :func:`api.create_app`) and stopped by the server at shutdown before the running
turns are saved as interrupted. It sleeps until the earliest due time (at most a minute)
or until :meth:`Scheduler.wake` (a task saved, paused or deleted).

A run is an ordinary turn (:func:`api.turns.start_turn`, as ``POST /api/chat/start``
does it: same journal, checkpoints, stream and live view) with the task's prompt, in a
new chat per run (``session_mode: new``) or the task's one chat (``continue``), on the
task's model, with an :class:`api.approvals.UnattendedPolicy`: the task's
``allowed_tools`` run without asking, anything else is denied at once and recorded.

Promises, each with a test in tests/test_tasks.py:

- **At most one run of a task at a time.** A run due while the previous one still runs
  is recorded ``skipped``; ``POST /api/tasks/run`` answers 409 then.
- **Never run twice.** A run's record (status ``running``) and the task's advanced
  ``next_due`` are written in one atomic write before its turn starts. A run found
  ``running`` at start-up belonged to a server that died (the state-dir lock keeps a
  second server out): it is marked ``interrupted`` and not run again.
- **Missed runs** (due more than :data:`GRACE_SECONDS` ago: the server was stopped, or
  the machine slept) follow the task's ``missed`` policy: ``skip`` records one
  ``skipped`` run saying how many were missed; ``run_once`` makes one run. Never more.
  A time due within the grace period is not missed: under ``skip`` it still runs.
- Pausing stops runs; resuming schedules from then on (no runs are made up for the pause).

Time comes from a :class:`Clock`. Tests run the server with ``HERMES_WEBUI_TEST_CLOCK=1``
(``Config.test_clock``): the clock is then a :class:`ManualClock`, the thread does not
tick on its own, and ``POST /api/tasks/test-clock {now}`` sets the time and ticks once
(no test sleeps until eight o'clock).
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from . import approvals, model_catalog, streams, turns
from .errors import AppError, TurnConflict
from .errors import SessionError
from .tasks import TaskStore, count_due, next_due

log = logging.getLogger(__name__)
GRACE_SECONDS = 120.0    # a run this late is still "on time"; later, the missed policy applies
IDLE_SECONDS = 60.0      # the longest sleep between two looks at the tasks
INTERRUPTED_NOTE = "the server stopped during this run; it is not run again"
_TURN_STATUS = {"complete": "complete", "truncated": "complete", "error": "error",
                "cancelled": "interrupted", "interrupted": "interrupted"}


class Clock:
    """The time a scheduler sees: :meth:`now` in epoch seconds (the real time)."""

    def now(self) -> float:
        return time.time()


class ManualClock(Clock):
    """A clock that moves only when told (:meth:`set`): the tests' clock."""

    def __init__(self, start: float | None = None):
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def set(self, now: float) -> None:
        with self._lock:
            self._now = float(now)


class Scheduler:
    """Runs the tasks of every profile of ``app`` (see the module docstring).

    ``automatic``: the thread ticks by itself (False with a :class:`ManualClock`: only
    :meth:`tick` calls, from the test hook, move it).
    """

    def __init__(self, app, clock: Clock | None = None, *, automatic: bool = True):
        self.app = app
        self.clock = clock or Clock()
        self.automatic = automatic
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._tick_lock = threading.Lock()
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], str] = {}    # (profile, task id) → run id
        self._watchers: list[threading.Thread] = []
        self._thread: threading.Thread | None = None

    # -- profiles -------------------------------------------------------------

    def _registry(self):
        return self.app.extensions.get("hermes_profiles")

    def _profiles(self) -> list[str]:
        reg = self._registry()
        return reg.names() if reg is not None else ["default"]

    def task_store(self, profile: str) -> TaskStore:
        """The task store of ``profile``."""
        reg = self._registry()
        if reg is None:
            return TaskStore(self.app.extensions["hermes"].config.state_dir)
        return TaskStore(reg.directory(profile))

    def _session_store(self, profile: str):
        reg = self._registry()
        return reg.store(profile) if reg is not None else self.app.extensions["hermes"].store

    # -- life cycle -----------------------------------------------------------

    def start(self) -> "Scheduler":
        """Mark the runs a dead server left ``running`` as ``interrupted``, then start the thread."""
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="task-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """No run starts after this; the thread ends at its next wake (at once)."""
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Look at the tasks again now (one was saved, paused or deleted)."""
        self._wake.set()

    def recover(self) -> int:
        """Runs recorded ``running`` that no turn of this process owns → ``interrupted``
        (never run again). Returns how many."""
        found = 0
        for profile in self._profiles():
            ts = self.task_store(profile)
            for task in ts.list():
                stale = [r["run_id"] for r in ts.state(task["id"])["runs"]
                         if r.get("status") == "running"
                         and self._running.get((profile, task["id"])) != r.get("run_id")]
                for run_id in stale:
                    ts.update_run(task["id"], run_id, {"status": "interrupted", "note": INTERRUPTED_NOTE,
                                                       "finished_at": self.clock.now()})
                    found += 1
        if found:
            log.warning("marked %d scheduled run(s) interrupted: the server stopped during them", found)
        return found

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            wait = IDLE_SECONDS
            if self.automatic:
                try:
                    earliest = self.tick()
                    if earliest is not None:
                        wait = min(IDLE_SECONDS, max(0.5, earliest - self.clock.now()))
                except Exception:  # a bad file must not stop the scheduler
                    log.exception("the scheduler's tick failed")
            self._wake.wait(wait)

    # -- ticking --------------------------------------------------------------

    def tick(self) -> float | None:
        """Start every run that is due now; returns the earliest next due time (or None)."""
        with self._tick_lock:
            now = self.clock.now()
            earliest = None
            for profile in self._profiles():
                if self._stop.is_set():
                    return None
                ts = self.task_store(profile)
                for task in ts.list():
                    try:
                        due = self._consider(profile, ts, task, now)
                    except Exception:
                        log.exception("task %s of profile %s could not be scheduled", task.get("id"), profile)
                        continue
                    if due is not None and (earliest is None or due < earliest):
                        earliest = due
            return earliest

    def _consider(self, profile: str, ts: TaskStore, task: dict, now: float) -> float | None:
        """Run ``task`` if it is due; returns its next due time."""
        if not task.get("enabled"):
            return None
        cron, zone, tid = task["cron"], task["timezone"], task["id"]
        due = ts.state(tid)["next_due"]
        upcoming = next_due(cron, zone, now)
        if due is None:   # never scheduled (a file from elsewhere): from now on
            ts.change_state(tid, lambda s: s.update(next_due=upcoming))
            return upcoming
        if due > now:
            return due
        if now - due <= GRACE_SECONDS:
            self.fire(profile, task, "scheduled", advance_to=upcoming)
        else:
            # A time within the grace window is on time even when earlier ones were missed
            # (a server back at 8:01 after a weekend still runs the 8:00 run); only the
            # times before it are missed.
            recent = next_due(cron, zone, now - GRACE_SECONDS)
            on_time = recent <= now
            missed = count_due(cron, zone, due, recent - 1 if on_time else now)
            what = f"{missed} run{'s' if missed != 1 else ''} missed (the server was stopped or asleep)"
            if task.get("missed") == "run_once":
                self.fire(profile, task, "missed", advance_to=upcoming, note=f"{what}: this run makes up for them")
            else:
                self._record(ts, tid, self._new_run("missed", now, status="skipped",
                                                     note=f"{what}: skipped (the task's policy)"), upcoming)
                if on_time:
                    self.fire(profile, task, "scheduled", advance_to=upcoming)
        return upcoming

    # -- runs -----------------------------------------------------------------

    @staticmethod
    def _new_run(reason: str, now: float, *, status: str = "running", note: str | None = None) -> dict:
        return {"run_id": secrets.token_hex(6), "started_at": now,
                "finished_at": None if status == "running" else now, "status": status,
                "session_id": None, "reason": reason, "note": note, "denied": []}

    @staticmethod
    def _record(ts: TaskStore, tid: str, run: dict, advance_to: float | None) -> None:
        def change(state):
            state["runs"].append(run)
            if advance_to is not None:
                state["next_due"] = advance_to
        ts.change_state(tid, change)

    def running_run(self, profile: str, task_id: str) -> str | None:
        """The id of the task's run in progress in this process, or None."""
        with self._lock:
            return self._running.get((profile, task_id))

    def fire(self, profile: str, task: dict, reason: str, *, advance_to: float | None = None,
             note: str | None = None) -> dict:
        """Start a run of ``task`` now (``reason``: scheduled, missed or manual) and return
        its record. ``advance_to``: the task's next due time, written with the record.
        Records ``skipped`` if a run of the task is in progress, ``error`` if it cannot
        start (an unknown model, an unwritable disk)."""
        ts = self.task_store(profile)
        tid = task["id"]
        now = self.clock.now()
        run = self._new_run(reason, now, note=note)
        key = (profile, tid)
        with self._lock:
            busy = self._stop.is_set() or key in self._running
            if not busy:
                self._running[key] = run["run_id"]
        if busy:
            run.update(status="skipped", finished_at=now,
                       note="the previous run was still going" if not self._stop.is_set() else "the server is stopping")
            self._record(ts, tid, run, advance_to)
            return run
        recorded = False
        try:
            state = self.app.extensions["hermes"]
            store = self._session_store(profile)
            with self.app.app_context():
                from .profiles import agent_home
                home = agent_home(profile) if self._registry() is not None else None
            # the model is checked against the task's profile's own list (its agent home)
            model = model_catalog.resolve(state.backend, task.get("model"), home=home and home["home"])
            run["session_id"] = self._session_for(profile, ts, task, store, now)
            policy = approvals.UnattendedPolicy(task.get("allowed_tools"))
            # The record and the advanced due time reach the disk before the turn starts:
            # a crash from here on leaves "running", read at start-up as interrupted.
            self._record(ts, tid, run, advance_to)
            recorded = True
            stream_id = turns.start_turn(store, state.backend, run["session_id"], task["prompt"],
                                         config=state.config, model=model, agent_home=home,
                                         approval_policy=policy)
        except Exception as exc:
            busy_chat = isinstance(exc, TurnConflict)
            message = exc.message if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, (AppError, OSError)):
                log.exception("task %s could not start", tid)
            changes = {"status": "skipped" if busy_chat else "error", "finished_at": self.clock.now(),
                       "note": ("the task's chat was busy with another reply: " if busy_chat
                                else "the run could not start: ") + message}
            run.update(changes)
            if recorded:
                ts.update_run(tid, run["run_id"], changes)
            else:
                self._record(ts, tid, run, advance_to)
            with self._lock:
                self._running.pop(key, None)
            return run
        watcher = threading.Thread(target=self._watch, args=(profile, ts, tid, run["run_id"], stream_id, policy),
                                   name=f"task-run-{run['run_id']}", daemon=True)
        self._watchers = [w for w in self._watchers if w.is_alive()] + [watcher]
        watcher.start()
        return run

    def _session_for(self, profile: str, ts: TaskStore, task: dict, store, now: float) -> str:
        """The chat a run writes to: a new one (titled with the task's name and the time),
        or the task's continuing chat (made again, and remembered, if it was deleted)."""
        if task.get("session_mode") == "continue":
            sid = task.get("session_id")
            if sid:
                try:
                    store.load_metadata_only(sid)
                    return sid
                except SessionError:
                    pass
            sid = store.create(title=task["name"]).session_id
            ts.update(task["id"], {"session_id": sid})
            return sid
        when = datetime.fromtimestamp(now, ZoneInfo(task["timezone"])).strftime("%Y-%m-%d %H:%M")
        return store.create(title=f"{task['name']} · {when}").session_id

    def _watch(self, profile: str, ts: TaskStore, tid: str, run_id: str, stream_id: str, policy) -> None:
        """Follow a run's stream to its end and record its outcome."""
        status, note, seq = None, None, 0
        channel = streams.get_stream(stream_id)
        while channel is not None:
            batch, finished = channel.events_after(seq, 5.0)
            for s, event, data in batch:
                seq = s
                if event == "stream_end":
                    status = json.loads(data).get("status")
                elif event == "apperror":
                    note = json.loads(data).get("message")
            if finished:
                break
        outcome = _TURN_STATUS.get(status, "interrupted")
        if outcome == "interrupted" and not note:
            note = "stopped before it finished" if status else INTERRUPTED_NOTE
        denied = [{"tool": d["tool"], "command": d["command"]} for d in policy.denied]
        changes = {"status": outcome, "finished_at": self.clock.now(), "denied": denied}
        if note:   # else the note the run started with (e.g. why it was made up) stays
            changes["note"] = note
        try:
            ts.update_run(tid, run_id, changes)
        except OSError as exc:   # the record stays "running": interrupted at the next start
            log.error("could not record the end of run %s of task %s: %s", run_id, tid, exc)
        finally:
            with self._lock:
                if self._running.get((profile, tid)) == run_id:
                    self._running.pop((profile, tid), None)
