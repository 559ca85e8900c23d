"""Scheduled tasks: their definitions, schedules and run histories (Flask-free; the
routes are :mod:`api.task_routes`, the clock-driven runner :mod:`api.scheduler`).

A profile's tasks live in ``<profile dir>/tasks.json``::

    {"tasks": [{"id", "name", "prompt", "schedule", "cron", "timezone", "enabled",
                "session_mode": "new"|"continue", "session_id", "model", "missed":
                "skip"|"run_once", "allowed_tools": [str], "created_at", "updated_at"}]}

and each task's history and scheduling state in ``<profile dir>/task_runs/<id>.json``::

    {"next_due": <epoch seconds or null>, "runs": [{"run_id", "started_at",
     "finished_at", "status", "session_id", "reason", "note", "denied": [{tool, command}]}]}

(the newest :data:`MAX_RUNS` runs, oldest first). Both are written atomically
(:mod:`api.atomic`: temp file, fsync, rename, fsync of the folder), so a crash leaves the
previous version. A damaged ``tasks.json`` reads as no tasks and is never overwritten
(a save answers 409 then), like a damaged session file.

``schedule`` is what the user typed: a five-field cron expression (minute hour day month
weekday, croniter's syntax) or a preset, which :func:`resolve_schedule` turns into cron:
``hourly``, ``daily at HH:MM``, ``weekdays at HH:MM``, ``weekly DAY at HH:MM`` (DAY:
monday…sunday or mon…sun). Times are wall-clock times in ``timezone`` (an IANA
Area/Location name, ``Etc/…`` or ``UTC``; see :func:`check_zone`): croniter walks the wall
clock, :mod:`zoneinfo` places each time on the time line, and the daylight-saving rule
follows cronie/Vixie cron:

- a time skipped by a spring-forward runs as much later as the clock jumped (02:30 runs at
  03:30 when 02:00 becomes 03:00); a time the shift makes coincide with another runs once;
- in the hour a fall-back repeats, a schedule whose hour field is a wildcard or a step
  (``*``, ``*/2``: ``hourly``, ``*/30 * * * *``) follows real elapsed time and runs in both
  occurrences (01:00 EDT and 01:00 EST), while a fixed hour (``daily at 01:30``,
  ``30 1 * * *``) runs once, at the first occurrence.

Due times are strictly increasing: never two runs at one real instant.
"""
from __future__ import annotations

import functools
import heapq
import itertools
import json
import os
import re
import secrets
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
import zoneinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from .atomic import atomic_write_text, fsync_dir
from .codec import clean_text
from .errors import ApiError

FILE_NAME = "tasks.json"
RUNS_DIR = "task_runs"
NAME_MAX = 128
MAX_TASKS = 200
MAX_RUNS = 100
MAX_ALLOWED_TOOLS = 64
TOOL_NAME_MAX = 128
ZONE_MAX = 64
PREVIEW_RUNS = 5
PROMPT_PREVIEW_CHARS = 200
TASK_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
SESSION_MODES = ("new", "continue")
MISSED_POLICIES = ("skip", "run_once")
RUN_STATUSES = ("running", "complete", "error", "interrupted", "skipped")
_HHMM = r"(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)"
_PRESETS = [
    (re.compile(r"hourly"), lambda m: "0 * * * *"),
    (re.compile(rf"daily at {_HHMM}"), lambda m: f"{int(m['m'])} {int(m['h'])} * * *"),
    (re.compile(rf"weekdays at {_HHMM}"), lambda m: f"{int(m['m'])} {int(m['h'])} * * 1-5"),
    (re.compile(rf"weekly (?P<d>[a-z]+) at {_HHMM}"),
     lambda m: f"{int(m['m'])} {int(m['h'])} * * {_day(m['d'])}"),
]
_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _day(name: str) -> int:
    """Cron's number of a day named in full or by its first three letters."""
    for number, full in enumerate(("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")):
        if name in (full, full[:3]):
            return number
    raise ApiError(f"unknown day {name[:20]!r}: write monday … sunday (or mon … sun)")


# ---------------------------------------------------------------- validation


def resolve_schedule(schedule) -> str:
    """The five-field cron expression of ``schedule`` (a preset or cron). ApiError 400
    if it is neither: the sentence lists the presets."""
    if not isinstance(schedule, str) or not schedule.strip():
        raise ApiError("a task needs a schedule: cron (e.g. '0 8 * * 1-5') or a preset "
                       "(hourly, daily at 08:00, weekdays at 08:00, weekly monday at 08:00)")
    text = " ".join(schedule.lower().split())
    if len(text) > 200:
        raise ApiError("the schedule is longer than 200 characters")
    for pattern, to_cron in _PRESETS:
        m = pattern.fullmatch(text)
        if m:
            return to_cron(m)
    fields = text.split(" ")
    if len(fields) != 5 or not croniter.is_valid(text):
        raise ApiError(f"{schedule.strip()[:80]!r} is not a schedule: use five cron fields (minute hour "
                       "day-of-month month day-of-week, e.g. '30 7 * * 1-5') or a preset: hourly, "
                       "daily at HH:MM, weekdays at HH:MM, weekly DAY at HH:MM")
    try:
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)   # e.g. '0 0 31 2 *' never happens
    except Exception:  # croniter raises its own errors for impossible dates
        raise ApiError(f"{schedule.strip()[:80]!r} never happens (no such date)") from None
    return text


@functools.lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    """The zones :func:`check_zone` accepts: IANA Area/Location names (``Europe/Paris``,
    ``Etc/GMT+5``, backward links such as ``US/Eastern``) and ``UTC``; not the tz database's
    files that are no place (``localtime``, ``Factory``, ``posixrules``) nor bare legacy
    names (``EST5EDT``, ``Japan``)."""
    return frozenset({"UTC"} | {n for n in zoneinfo.available_timezones()
                               if "/" in n and not n.startswith(("posix/", "right/", "SystemV/"))})


def check_zone(name) -> str:
    """``name`` if it is an IANA time zone this machine knows (see :func:`_zone_names`);
    ApiError 400 otherwise."""
    if not isinstance(name, str) or not name or len(name) > ZONE_MAX:
        raise ApiError("'timezone' must be an IANA time zone name such as Europe/Paris")
    if name not in _zone_names():
        raise ApiError(f"unknown time zone {name[:ZONE_MAX]!r}: use an IANA name such as "
                       "Europe/Paris or America/New_York (or UTC)")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ApiError(f"unknown time zone {name[:ZONE_MAX]!r}: use an IANA name such as "
                       "Europe/Paris or America/New_York") from None
    return name


def local_zone_name() -> str:
    """This machine's IANA time zone (``$TZ``, the ``/etc/localtime`` link, or
    ``/etc/timezone``), or ``UTC`` when none can be named."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        link = os.readlink("/etc/localtime")
        if "zoneinfo/" in link:
            candidates.append(link.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    try:
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    except OSError:
        pass
    for name in candidates:
        try:
            return check_zone(name)
        except ApiError:
            continue
    return "UTC"


_UTC = timezone.utc
_LOOKBACK = range(0, 27 * 3600, 3600)   # how far ahead a fall-back can repeat wall times (<= 26 h)


def _naive_utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, _UTC).replace(tzinfo=None)


def _instants(cron: str, zone: str, after: float):
    """Every time (epoch seconds, strictly increasing, each > ``after``) that ``cron``
    names on the wall clock of ``zone``, under the daylight-saving rule of the module
    docstring. Walks croniter's wall times in order; each gives one instant, or two for a
    repeated wall time when the hour field is a wildcard/step. Instants of later wall
    times are never earlier than ``wall - max(offsets of this wall time)``, so a small
    heap yields them in order."""
    tz = ZoneInfo(zone)
    every_hour = cron.split(" ")[1].startswith("*")
    # Start early enough to see the second occurrence of wall times a fall-back soon after
    # ``after`` repeats (their wall time can be earlier than that of ``after``).
    lowest = min(datetime.fromtimestamp(after + d, tz).utcoffset() for d in _LOOKBACK)
    it = croniter(cron, _naive_utc(after) + lowest)
    heap: list[float] = []
    last = after
    while True:
        wall = it.get_next(datetime)
        first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
        o0, o1 = first.utcoffset(), second.utcoffset()
        heapq.heappush(heap, first.timestamp())        # a skipped time: as much later as the jump
        if o0 > o1 and every_hour:                      # repeated: the second occurrence too
            heapq.heappush(heap, second.timestamp())
        bound = (wall - max(o0, o1)).replace(tzinfo=_UTC).timestamp()
        while heap and heap[0] <= bound:
            t = heapq.heappop(heap)
            if t > last:
                last = t
                yield t


def due_times(cron: str, zone: str, after: float, count: int) -> list[float]:
    """The next ``count`` times (epoch seconds, strictly increasing, strictly after
    ``after``) that ``cron`` names on the wall clock of ``zone`` (DST rule: module docstring)."""
    return list(itertools.islice(_instants(cron, zone, after), count))


def next_due(cron: str, zone: str, after: float) -> float:
    """The first time after ``after`` (epoch seconds) that the schedule names."""
    return due_times(cron, zone, after, 1)[0]


def count_due(cron: str, zone: str, start: float, end: float, cap: int = 10_000) -> int:
    """How many scheduled times fall in ``[start, end]`` (at most ``cap``)."""
    n = 0
    for t in _instants(cron, zone, start - 1):
        if t > end or n >= cap:
            break
        n += t >= start
    return n


def iso(t: float, zone: str) -> str:
    """``t`` (epoch seconds) as ISO 8601 with the offset of ``zone`` at that time."""
    return datetime.fromtimestamp(t, ZoneInfo(zone)).isoformat()


def clean_task(body: dict, existing: dict | None, *, check_prompt, check_model, default_zone: str) -> dict:
    """A task as stored from a save request ``body`` (see :mod:`api.task_routes`),
    starting from ``existing`` (an edit) or a new task. ``check_prompt(text)`` and
    ``check_model(id)`` return the cleaned value or raise (413/400). Nothing is written.
    Raises ApiError 400 for a bad field."""
    allowed = {"id", "name", "prompt", "schedule", "timezone", "model", "enabled", "session_mode",
               "missed", "allowed_tools", "profile"}
    unknown = set(body) - allowed
    if unknown:
        raise ApiError(f"unknown field {sorted(unknown)[0]!r}")
    task = dict(existing) if existing else {
        "id": secrets.token_hex(6), "name": "", "prompt": "", "schedule": "", "cron": "", "timezone": default_zone,
        "enabled": True, "session_mode": "new", "session_id": None, "model": None, "missed": "skip",
        "allowed_tools": [], "created_at": time.time()}

    def given(key):
        return key in body and body[key] is not None

    if given("name") or not existing:
        name = body.get("name")
        if not isinstance(name, str) or not " ".join(clean_text(name).split()):
            raise ApiError("a task needs a name")
        task["name"] = " ".join(clean_text(name).split())[:NAME_MAX]
    if given("prompt") or not existing:
        if not isinstance(body.get("prompt"), str) or not clean_text(body["prompt"]).strip():
            raise ApiError("a task needs a prompt: the message it sends at each run")
        task["prompt"] = check_prompt(body["prompt"])
    if given("schedule") or not existing:
        task["cron"] = resolve_schedule(body.get("schedule"))
        task["schedule"] = " ".join(body["schedule"].split())
    if given("timezone"):
        task["timezone"] = check_zone(body["timezone"])
    if "model" in body:
        model = body["model"]
        if model is not None and not isinstance(model, str):
            raise ApiError("'model' must be a model id from GET /api/models, or null for the default")
        task["model"] = check_model(model) if model else None
    if given("enabled"):
        if not isinstance(body["enabled"], bool):
            raise ApiError("'enabled' must be true or false")
        task["enabled"] = body["enabled"]
    if given("session_mode"):
        if body["session_mode"] not in SESSION_MODES:
            raise ApiError("'session_mode' must be 'new' (a new chat per run) or 'continue' (one chat)")
        if body["session_mode"] != task.get("session_mode"):
            task["session_id"] = None
        task["session_mode"] = body["session_mode"]
    if given("missed"):
        if body["missed"] not in MISSED_POLICIES:
            raise ApiError("'missed' must be 'skip' or 'run_once' (what to do about runs missed while "
                           "the server was stopped)")
        task["missed"] = body["missed"]
    if given("allowed_tools"):
        tools = body["allowed_tools"]
        if not isinstance(tools, list) or not all(isinstance(t, str) and 0 < len(t.strip()) <= TOOL_NAME_MAX
                                                  for t in tools):
            raise ApiError(f"'allowed_tools' must be a list of tool names (1-{TOOL_NAME_MAX} characters each)")
        if len(tools) > MAX_ALLOWED_TOOLS:
            raise ApiError(f"at most {MAX_ALLOWED_TOOLS} allowed tools")
        task["allowed_tools"] = list(dict.fromkeys(t.strip() for t in tools))
    task["updated_at"] = time.time()
    return task


def prompt_preview(prompt: str) -> str:
    """The first :data:`PROMPT_PREVIEW_CHARS` characters (code points, so never half an
    emoji) of ``prompt``, the whole of a shorter one."""
    return prompt[:PROMPT_PREVIEW_CHARS]


def public_task(task: dict, state: dict, now: float, *, full_prompt: bool = True) -> dict:
    """The ``GET /api/tasks`` shape of ``task``: its fields plus ``prompt_preview`` (see
    :func:`prompt_preview`), ``prompt_bytes`` (UTF-8 size of ``prompt``), ``next_runs``
    (ISO 8601, the next five; none while paused) and ``last_run`` ``{run_id, started_at,
    status}``. ``full_prompt=False`` leaves ``prompt`` out (the light list a page polls)."""
    out = {k: task.get(k) for k in ("id", "name", "prompt", "schedule", "cron", "timezone", "enabled",
                                    "session_mode", "session_id", "model", "missed", "allowed_tools",
                                    "created_at", "updated_at")}
    prompt = out["prompt"] if isinstance(out["prompt"], str) else ""
    out["prompt_preview"] = prompt_preview(prompt)
    out["prompt_bytes"] = len(prompt.encode("utf-8", "surrogatepass"))
    if not full_prompt:
        del out["prompt"]
    try:
        out["next_runs"] = [iso(t, task["timezone"]) for t in
                            due_times(task["cron"], task["timezone"], now, PREVIEW_RUNS)] if task.get("enabled") else []
    except Exception:  # a hand-edited file with a bad schedule: shown, never run
        out["next_runs"] = []
    runs = state.get("runs") or []
    if runs:
        last = runs[-1]
        out["last_run"] = {"run_id": last.get("run_id"), "started_at": last.get("started_at"),
                           "status": last.get("status")}
    return out


# ---------------------------------------------------------------- the store


def _lock(path: Path) -> threading.RLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(path), threading.RLock())


class TaskStore:
    """The tasks of one profile directory (thread-safe: one lock per profile)."""

    def __init__(self, profile_dir: Path):
        self.dir = Path(profile_dir)
        self.path = self.dir / FILE_NAME
        self.lock = _lock(self.path)

    def _read(self) -> list[dict] | None:
        """The stored tasks; None if the file exists but cannot be read as tasks."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            return None
        tasks = doc.get("tasks") if isinstance(doc, dict) else None
        if not isinstance(tasks, list):
            return None
        return [t for t in tasks if isinstance(t, dict) and isinstance(t.get("id"), str)
                and TASK_ID_RE.fullmatch(t["id"])]

    def list(self) -> list[dict]:
        """Every task, in creation order (a damaged file reads as none)."""
        return self._read() or []

    def get(self, task_id: str) -> dict | None:
        return next((t for t in self.list() if t["id"] == task_id), None)

    def require(self, task_id) -> dict:
        """The task ``task_id``; ApiError 400 for a malformed id, 404 unknown."""
        if not isinstance(task_id, str) or not TASK_ID_RE.fullmatch(task_id):
            raise ApiError("'task_id' must be a task id from GET /api/tasks")
        task = self.get(task_id)
        if task is None:
            raise ApiError(f"no task {task_id!r} (it may have been deleted)", 404)
        return task

    def _write(self, tasks: list[dict]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"tasks": tasks}, ensure_ascii=False, indent=1) + "\n")

    def put(self, task: dict, *, create: bool) -> None:
        """Store ``task`` (a new one, or replacing the one with its id). ApiError 409 when
        the file is damaged or holds :data:`MAX_TASKS`, 404 when an edited task is gone,
        400 when a new or renamed task takes another task's name (names are unique per
        profile, compared without case, so each row's buttons say which task they act on)."""
        with self.lock:
            tasks = self._read()
            if tasks is None:
                raise ApiError(f"{self.path} is damaged; repair or remove it, then save again", 409)
            key = task["name"].casefold()
            was = next((t for t in tasks if t["id"] == task["id"]), None)
            if (was is None or str(was.get("name", "")).casefold() != key) and any(
                    t["id"] != task["id"] and str(t.get("name", "")).casefold() == key for t in tasks):
                raise ApiError(f"there is already a task named {task['name'][:NAME_MAX]!r}: choose another name")
            if create:
                if len(tasks) >= MAX_TASKS:
                    raise ApiError(f"at most {MAX_TASKS} tasks per profile", 409)
                tasks.append(task)
            else:
                at = next((i for i, t in enumerate(tasks) if t["id"] == task["id"]), None)
                if at is None:
                    raise ApiError(f"no task {task['id']!r} (it may have been deleted)", 404)
                tasks[at] = task
            self._write(tasks)

    def update(self, task_id: str, changes: dict) -> dict:
        """Apply ``changes`` to a stored task (ApiError 404 if it is gone); returns it."""
        with self.lock:
            task = dict(self.require(task_id), **changes)
            self.put(task, create=False)
            return task

    def delete(self, task_id: str) -> None:
        """Remove the task and its history. ApiError 404 unknown."""
        with self.lock:
            self.require(task_id)
            self._write([t for t in self.list() if t["id"] != task_id])
            try:
                self.runs_path(task_id).unlink()
                fsync_dir(self.runs_path(task_id).parent)
            except FileNotFoundError:
                pass

    # -- runs and scheduling state --------------------------------------------

    def runs_path(self, task_id: str) -> Path:
        return self.dir / RUNS_DIR / f"{task_id}.json"

    def state(self, task_id: str) -> dict:
        """``{next_due, runs}`` of a task (empty when never scheduled or unreadable)."""
        try:
            doc = json.loads(self.runs_path(task_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = {}
        runs = doc.get("runs") if isinstance(doc, dict) else None
        next_t = doc.get("next_due") if isinstance(doc, dict) else None
        return {"next_due": float(next_t) if isinstance(next_t, (int, float)) and not isinstance(next_t, bool)
                else None,
                "runs": [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []}

    def change_state(self, task_id: str, change) -> dict | None:
        """Read-modify-write the task's state: ``change(state)`` edits the dict in place.
        Nothing is written (and None returned) if the task no longer exists, so a run
        that ends after its task was deleted does not bring its history back."""
        with self.lock:
            if self.get(task_id) is None:
                return None
            state = self.state(task_id)
            change(state)
            state["runs"] = state["runs"][-MAX_RUNS:]
            path = self.runs_path(task_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(state, ensure_ascii=False, indent=1) + "\n")
            return state

    def update_run(self, task_id: str, run_id: str, changes: dict) -> dict | None:
        """Merge ``changes`` into one run record; returns the state (None: task gone)."""
        def change(state):
            for run in state["runs"]:
                if run.get("run_id") == run_id:
                    run.update(changes)
        return self.change_state(task_id, change)
