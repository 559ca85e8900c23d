"""Two processes, one state dir: the second is refused, so two servers can never run
turns on the same session files (issue 10; ``api/statelock.py``)."""
from __future__ import annotations

import os
import subprocess
import sys

from ..helpers import ROOT, SERVER, stream_events


def _run_second(state_dir, home, *argv, module=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", module] if module else [sys.executable, str(SERVER), "--port", "0", "--agent", "fake"]
    return subprocess.run(cmd + ["--state-dir", str(state_dir), *argv], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_second_server_on_the_same_state_dir_is_refused_with_a_clear_message(make_server):
    first = make_server().start()
    sid = first.new_session(title="owned by the first")
    stream_events(first, first.start_chat(sid, "before"))

    second = _run_second(first.state_dir, first.home)
    assert second.returncode == 3, second.stdout + second.stderr
    assert "another hermes-webui process is already using" in second.stderr
    assert str(first.state_dir) in second.stderr
    assert "listening on" not in second.stdout

    # the first one never noticed
    assert first.get("/health").json()["status"] == "ok"
    stream_events(first, first.start_chat(sid, "after"))
    s = first.session(sid)
    assert [m["content"] for m in s["messages"]] == ["before", "echo: before", "after", "echo: after"]


def test_repair_is_refused_while_a_server_runs(make_server):
    first = make_server().start()
    first.new_session()
    repair = _run_second(first.state_dir, first.home, "--repair", module="api.session_recovery")
    assert repair.returncode == 2
    assert "already using" in repair.stderr
    assert first.get("/health").status_code == 200


def test_the_lock_dies_with_a_killed_server_so_a_restart_is_never_blocked(make_server):
    server = make_server().start()
    sid = server.new_session(title="survivor")
    server.kill()  # SIGKILL: no clean-up, the lock file stays on disk
    server.start()
    assert server.session(sid)["title"] == "survivor"
    # and the restarted one holds the lock in turn
    assert _run_second(server.state_dir, server.home).returncode == 3
