"""The page's offer to migrate from the upstream web UI (:mod:`api.migrate`).

- ``GET /api/migrate/status`` → ``{available, source, sessions, migrated, running, done,
  total, report, error}``: ``available`` when the upstream's default state dir
  (:func:`api.migrate.default_source`) holds sessions and is not our own state dir;
  ``migrated`` once a migration has run to its end here; ``report`` is the last run's
  (:meth:`api.migrate.Report.as_dict`).
- ``POST /api/migrate {dry_run?: bool}`` → 202 ``{started: true}``: runs in the
  background into the running server's own stores (so the list shows the sessions at
  once); 404 when there is nothing to migrate, 409 while a run is going.

The source is always the upstream's default folder: the page cannot name another path
(the command line can: ``hermes-webui migrate SRC``).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from flask import Blueprint, Flask, current_app, jsonify

from .app import app_state
from .httputil import ApiError, field, json_body
from .migrate import MigrationError, default_source, load_record, looks_like_upstream, migrate, source_files

log = logging.getLogger(__name__)
bp = Blueprint("migrate", __name__)


class _Run:
    def __init__(self):
        self.lock = threading.Lock()
        self.running = False
        self.done = self.total = 0
        self.report: dict | None = None
        self.error: str | None = None


def _run() -> _Run:
    return current_app.extensions.setdefault("hermes_migration", _Run())


def _source_info(state_dir: Path) -> dict:
    src = default_source()
    available = looks_like_upstream(src) and src.resolve() != Path(state_dir).resolve()
    count = 0
    if available:
        count = len(source_files(src))  # what a run will go through
    return {"available": available, "source": str(src), "sessions": count}


@bp.get("/api/migrate/status")
def status():
    state_dir = app_state().config.state_dir
    run = _run()
    info = _source_info(state_dir)
    record = load_record(state_dir)
    # ``source`` is recorded when a run ends: a server killed mid-run offers the rest again
    info.update(migrated="source" in record, running=run.running,
                done=run.done, total=run.total, report=run.report, error=run.error)
    return jsonify(info)


@bp.post("/api/migrate")
def start():
    body = json_body()
    unknown = set(body) - {"dry_run"}
    if unknown:
        raise ApiError(f"unknown field {sorted(unknown)[0]!r}")
    dry_run = field(body, "dry_run", bool, required=False, default=False)
    state = app_state()
    if not _source_info(state.config.state_dir)["available"]:
        raise ApiError(f"nothing to migrate: no upstream sessions in {default_source()}", 404)
    run = _run()
    registry = current_app.extensions.get("hermes_profiles")
    store_for = registry.store if registry is not None else (lambda _name: state.store)
    with run.lock:
        if run.running:
            raise ApiError("a migration is already running", 409)
        run.running, run.done, run.total, run.report, run.error = True, 0, 0, None, None

    def progress(done: int, total: int, _name: str) -> None:
        run.done, run.total = done, total

    def work():
        try:
            report = migrate(default_source(), state.config.state_dir, dry_run=dry_run, store_for=store_for,
                             progress=progress)
            run.report = report.as_dict()
            log.info("migration from %s: %s", report.source, report.summary().splitlines()[0])
        except (MigrationError, OSError) as exc:
            run.error = str(exc)
        except Exception as exc:  # the page must learn that it ended
            log.exception("migration failed")
            run.error = f"the migration failed: {exc}"
        finally:
            run.running = False

    threading.Thread(target=work, name="migrate", daemon=True).start()
    resp = jsonify(started=True)
    resp.status_code = 202
    return resp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
