"""Scheduled tasks over HTTP (docs/api.md "Scheduled tasks"; the store is :mod:`api.tasks`,
the runner :mod:`api.scheduler`). Tasks belong to the request's profile.

- ``GET /api/tasks`` → ``{tasks: [{id, name, prompt, schedule, cron, timezone, enabled,
  session_mode, session_id, model, missed, allowed_tools, created_at, updated_at,
  prompt_preview, prompt_bytes, next_runs: [iso8601 × 5], last_run?: {run_id, started_at,
  status}}]}``; ``next_runs`` is empty while the task is paused; times in ``*_at`` are epoch
  seconds; ``prompt_preview`` is the prompt's first 200 characters, ``prompt_bytes`` its
  UTF-8 size. ``?prompt=preview`` leaves out each ``prompt`` (what the page polls while a
  run goes: a long prompt is not sent every 3 s); ``?task_id`` lists that task alone.
- ``GET /api/tasks/preview?schedule&timezone?`` → ``{cron, timezone, next_runs}``: what a
  save would store and the next five times (400 for a bad schedule or zone).
- ``POST /api/tasks/save {id?, name, prompt, schedule, timezone?, model?, enabled?,
  session_mode?: new|continue, missed?: skip|run_once, allowed_tools?: [str], profile?}``
  → ``{task}`` (the ``GET`` shape). Without ``id`` it creates a task; with one it changes
  the fields given. ``timezone`` defaults to the server's zone; ``profile`` (default: the
  request's) must exist. ``continue``: the task's one chat is created now. An invalid
  schedule, zone, model, profile or field → 400; a prompt over ``--max-message-bytes`` →
  413; an unknown ``id`` → 404; nothing is stored then.
- ``POST /api/tasks/delete {task_id}`` → ``{ok: true}`` (its history goes; its chats stay).
- ``POST /api/tasks/run {task_id}`` → ``{ok: true, run_id, session_id}``: a run now, an
  ordinary turn in the task's chat (follow it like any chat); 409 while one runs.
- ``POST /api/tasks/pause {task_id, paused: bool}`` → ``{ok: true}``.
- ``GET /api/tasks/runs?task_id`` → ``{runs: [{run_id, started_at, finished_at, status:
  running|complete|error|interrupted|skipped, session_id, reason: scheduled|missed|manual,
  note, denied: [{tool, command}]}]}``, newest first, at most 100.

With ``HERMES_WEBUI_TEST_CLOCK=1`` only: ``POST /api/tasks/test-clock {now}`` (epoch
seconds) sets the scheduler's clock and ticks once → ``{now, next_wake}``.
"""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify, request

from . import model_catalog, turns
from .app import app_state
from .errors import TooLarge
from .httputil import ApiError, arg_str, field, json_body
from .profiles import current_profile, current_store
from .scheduler import ManualClock, Scheduler
from .streams import session_lock
from .tasks import check_zone, clean_task, due_times, iso, local_zone_name, next_due, public_task, \
    resolve_schedule, PREVIEW_RUNS

bp = Blueprint("tasks", __name__)


def scheduler() -> Scheduler:
    """The app's :class:`api.scheduler.Scheduler`."""
    return current_app.extensions["hermes_scheduler"]


def _home_of(profile: str):
    """The agent home of ``profile`` whose model list a task's model is checked against
    (None without profiles: the server's own list)."""
    if current_app.extensions.get("hermes_profiles") is None:
        return None
    from .profiles import agent_home
    return agent_home(profile)["home"]


def _profile_of(body: dict) -> str:
    name = body.get("profile")
    if name is None:
        return current_profile()
    registry = current_app.extensions.get("hermes_profiles")
    if not isinstance(name, str) or registry is None or not registry.exists(name):
        raise ApiError(f"no profile {str(name)[:64]!r}: create it first, or leave 'profile' out")
    return name


def _task_id(body: dict) -> str:
    return field(body, "task_id", str)


@bp.get("/api/tasks")
def list_tasks():
    """The request's profile's tasks (shape in the module docstring), in creation order.
    ``?prompt=preview``: without each full ``prompt`` (``prompt_preview`` and
    ``prompt_bytes`` stay), the light list a page polls; ``?task_id``: just that task
    (404 unknown), e.g. its full prompt for an editor. Another ``prompt`` value → 400."""
    sched = scheduler()
    ts = sched.task_store(current_profile())
    now = sched.clock.now()
    mode = request.args.get("prompt", "full")
    if mode not in ("full", "preview"):
        raise ApiError("'prompt' must be 'full' (the default) or 'preview'")
    chosen = [ts.require(request.args["task_id"])] if "task_id" in request.args else ts.list()
    return jsonify(tasks=[public_task(t, ts.state(t["id"]), now, full_prompt=mode == "full") for t in chosen])


@bp.get("/api/tasks/preview")
def preview():
    """``?schedule&timezone?`` → ``{cron, timezone, next_runs}`` (five ISO 8601 times).
    Judged as a save judges them: an empty schedule or a given but empty zone → 400 with
    the save's sentence; no ``timezone`` at all → the server's zone."""
    cron = resolve_schedule(request.args.get("schedule", ""))
    zone = check_zone(request.args["timezone"] if "timezone" in request.args else local_zone_name())
    runs = due_times(cron, zone, scheduler().clock.now(), PREVIEW_RUNS)
    return jsonify(cron=cron, timezone=zone, next_runs=[iso(t, zone) for t in runs])


def _check_prompt(text: str, limit: int) -> str:
    """A task's prompt as a chat message is checked (:func:`api.turns.check_message`), with
    the 413 sentence saying what a task can do about it."""
    try:
        return turns.check_message(text, limit)
    except TooLarge:
        size = len(text.encode("utf-8", "surrogatepass"))
        raise TooLarge(f"the prompt is {size:,} bytes, over this server's limit of {limit:,} bytes "
                       "(--max-message-bytes): shorten it, or keep the long text in a workspace file "
                       "and ask the task to read it") from None


@bp.post("/api/tasks/save")
def save_task():
    """Create or change a task → ``{task}``; see the module docstring for fields and errors."""
    body = json_body()
    st = app_state()
    sched = scheduler()
    profile = _profile_of(body)
    ts = sched.task_store(profile)
    task_id = body.get("id")
    existing = ts.require(task_id) if task_id is not None else None
    task = clean_task(body, existing,
                      check_prompt=lambda text: _check_prompt(text, st.config.max_message_bytes),
                      check_model=lambda model: model_catalog.resolve(st.backend, model, home=_home_of(profile)),
                      default_zone=local_zone_name())
    made_chat = None
    if task["session_mode"] == "continue" and not task.get("session_id"):
        registry = current_app.extensions.get("hermes_profiles")
        made_chat = registry.store(profile) if registry is not None else current_store()
        task["session_id"] = made_chat.create(title=task["name"]).session_id
    with ts.lock:
        try:
            ts.put(task, create=existing is None)
        except ApiError:   # refused (a damaged file, too many tasks, deleted meanwhile): no chat left behind
            if made_chat is not None:
                with session_lock(task["session_id"]):
                    made_chat.delete(task["session_id"])
            raise
        reschedule = existing is None or any(existing.get(k) != task.get(k) for k in ("cron", "timezone", "enabled"))
        if reschedule:
            upcoming = next_due(task["cron"], task["timezone"], sched.clock.now())
            ts.change_state(task["id"], lambda s: s.update(next_due=upcoming))
    sched.wake()
    return jsonify(task=public_task(task, ts.state(task["id"]), sched.clock.now()))


@bp.post("/api/tasks/delete")
def delete_task():
    """``{task_id}`` → ``{ok: true}``; 404 unknown. A run in progress goes on to its end."""
    body = json_body()
    scheduler().task_store(current_profile()).delete(_task_id(body))
    scheduler().wake()
    return jsonify(ok=True)


@bp.post("/api/tasks/run")
def run_task():
    """``{task_id}`` → ``{ok: true, run_id, session_id}``: start a run now (paused or not).
    409 while a run of the task is in progress, or with the reason it could not start
    (e.g. its model is no longer offered)."""
    body = json_body()
    sched = scheduler()
    profile = current_profile()
    task = sched.task_store(profile).require(_task_id(body))
    if sched.running_run(profile, task["id"]):
        raise ApiError("this task is already running; wait for that run to end", 409)
    run = sched.fire(profile, task, "manual")
    if run["status"] in ("error", "skipped"):   # recorded in the history too
        raise ApiError(run.get("note") or "the run could not start", 409)
    return jsonify(ok=True, run_id=run["run_id"], session_id=run["session_id"])


@bp.post("/api/tasks/pause")
def pause_task():
    """``{task_id, paused: bool}`` → ``{ok: true}``. Resuming schedules from now on: runs
    due while it was paused are not made up."""
    body = json_body()
    paused = field(body, "paused", bool)
    sched = scheduler()
    ts = sched.task_store(current_profile())
    with ts.lock:
        task = ts.update(_task_id(body), {"enabled": not paused})
        if not paused:
            upcoming = next_due(task["cron"], task["timezone"], sched.clock.now())
            ts.change_state(task["id"], lambda s: s.update(next_due=upcoming))
    sched.wake()
    return jsonify(ok=True)


@bp.get("/api/tasks/runs")
def list_runs():
    """``?task_id`` → ``{runs: [...]}``, newest first (shape in the module docstring); 404 unknown."""
    ts = scheduler().task_store(current_profile())
    task = ts.require(arg_str("task_id"))
    return jsonify(runs=list(reversed(ts.state(task["id"])["runs"])))


def _test_clock():
    """``{now}`` (epoch seconds) → ``{now, next_wake}``: set the manual clock, tick once."""
    now = field(json_body(), "now", (int, float))
    sched = scheduler()
    sched.clock.set(now)
    return jsonify(now=now, next_wake=sched.tick())


def init_app(app: Flask) -> None:
    """Register the blueprint and start the app's scheduler (``app.extensions["hermes_scheduler"]``);
    with ``config.test_clock``, on a :class:`ManualClock` with the test hook route."""
    config = app.extensions["hermes"].config
    manual = bool(getattr(config, "test_clock", False))
    if manual:
        bp_hook = Blueprint("tasks_test_clock", __name__)
        bp_hook.add_url_rule("/api/tasks/test-clock", view_func=_test_clock, methods=["POST"])
        app.register_blueprint(bp_hook)
    app.register_blueprint(bp)
    sched = Scheduler(app, ManualClock() if manual else None, automatic=not manual)
    app.extensions["hermes_scheduler"] = sched
    sched.start()
